//! An arbitrary sequence of call frames pushed into a strict and a lenient
//! `Reassembler` with small limits.
//!
//! Oracle, after every push: once a push failed or completed the message,
//! every later push fails; after an Ok push `frames() <= max_frames`,
//! `message_bytes() <= max_message_bytes`, and the `ArgCollector` holds
//! `arg_count()` args totalling `message_bytes()`. Strict: an Ok push never
//! leaves arg1 over its limit, more than 3 args, bad flags, a strict header
//! violation, a changed checksum type or a wrong checksum, and completes with
//! exactly 3 args. Lenient: `checksum_ok()` is false exactly when a frame
//! carried a wrong checksum or changed type, and violations are recorded.
//! When the strict run accepts every frame, the lenient one agrees with it.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tchan::frame::{
    ArgChunks, ArgCollector, CallFragment, Checksum, ChecksumField, ChecksumType, Flags,
    Reassembler, ReassemblyLimits, TransportHeaders, Violation,
};
use tchan_fuzz::repeat_fill;

const MAX_TOTAL: usize = 70 * 1024;

/// All-zero input bytes give a well-formed message; each field can break it.
#[derive(Arbitrary, Debug)]
struct Input {
    /// `None` for a generous limit.
    max_arg1_len: Option<u16>,
    max_message_bytes: Option<u32>,
    max_frames: Option<u8>,
    lax_headers: bool,
    frames: Vec<FrameDesc>,
}

#[derive(Arbitrary, Debug)]
struct FrameDesc {
    /// Flip `first` (normally true for the first frame only).
    flip_first: bool,
    /// `None`: 0x01 (more fragments) except on the last frame.
    flags: Option<u8>,
    /// 0..=3; `None` repeats the previous frame's type.
    checksum_type: Option<u8>,
    /// `None` carries the right value.
    checksum_value: Option<u32>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    chunks: Vec<Chunk>,
}

#[derive(Arbitrary, Debug)]
enum Chunk {
    Bytes(Vec<u8>),
    Repeat(Vec<u8>, u16),
}

/// A frame as pushed, minus its checksum value (which depends on the run).
struct Built {
    first: bool,
    flags: Flags,
    ty: ChecksumType,
    value: Option<u32>,
    headers: Option<TransportHeaders>,
    args: ArgChunks,
}

fn build(input: &Input) -> Vec<Built> {
    let mut total = 0;
    let mut ty = 0;
    let mut out = Vec::new();
    let n = input.frames.len().min(12);
    for (i, f) in input.frames.iter().take(n).enumerate() {
        let first = (i == 0) != f.flip_first;
        ty = f.checksum_type.map_or(ty, |t| t % 4);
        let mut chunks = Vec::new();
        for c in f.chunks.iter().take(5) {
            let mut data = match c {
                Chunk::Bytes(b) => b.clone(),
                Chunk::Repeat(p, n) => repeat_fill(p, usize::from(*n)),
            };
            data.truncate(65535.min(MAX_TOTAL - total));
            total += data.len();
            chunks.push(data);
        }
        let headers = first.then(|| {
            let pairs = f
                .headers
                .iter()
                .take(6)
                .map(|(k, v)| (&k[..k.len().min(20)], &v[..v.len().min(40)]));
            TransportHeaders::from_pairs(pairs).expect("short pairs always encode")
        });
        out.push(Built {
            first,
            flags: Flags(f.flags.unwrap_or(u8::from(i + 1 < n))),
            ty: ChecksumType(ty),
            value: f.checksum_value,
            headers,
            args: ArgChunks::from_chunks(chunks),
        });
    }
    out
}

/// The limits a run uses, kept to check the reassembler against them.
#[derive(Clone, Copy)]
struct Limits {
    max_arg1_len: usize,
    max_message_bytes: u64,
    max_frames: u32,
    strict_headers: bool,
}

impl Limits {
    fn config(&self) -> ReassemblyLimits {
        let mut c = ReassemblyLimits::default();
        c.set_max_arg1_len(self.max_arg1_len)
            .set_max_message_bytes(self.max_message_bytes)
            .set_max_frames(self.max_frames)
            .set_strict_headers(self.strict_headers);
        c
    }
}

/// Pushes every frame; returns the collected args if every push was Ok.
fn run(lenient: bool, limits: Limits, frames: &[Built]) -> Option<(Vec<Bytes>, Reassembler)> {
    let mut r = if lenient {
        Reassembler::lenient(limits.config())
    } else {
        Reassembler::new(limits.config())
    };
    let mut collector = ArgCollector::new();
    let mut model: Option<Checksum> = None; // the running checksum of accepted frames
    let mut expect_checksum_ok = true;
    let mut dead = false;
    let mut failed = false;
    for b in frames {
        // The right value for this frame, given the frames accepted so far.
        let mut next = model.clone().or_else(|| Checksum::new(b.ty));
        let same_type = next.as_ref().map(|c| c.checksum_type()) == Some(b.ty);
        let right = match next.as_mut().filter(|_| same_type) {
            Some(c) => {
                b.args.iter().for_each(|a| c.update(&a));
                c.finish_frame(&b.args.last().unwrap_or_default())
            }
            None => 0,
        };
        let value = b.value.unwrap_or(right);
        let fragment = CallFragment {
            first: b.first,
            flags: b.flags,
            checksum: ChecksumField { ty: b.ty, value },
            headers: b.headers.as_ref(),
            args: &b.args,
        };
        let res = r.push(fragment);
        if dead {
            assert!(
                res.is_err(),
                "push after an error or completion returned Ok: {res:?}"
            );
            continue;
        }
        let Ok(chunks) = res else {
            (dead, failed) = (true, true);
            continue;
        };
        let wrong = b.ty != ChecksumType::NONE && value != right;
        if same_type {
            model = next;
        }
        expect_checksum_ok &= same_type && !wrong;
        collector.extend(&chunks);
        let args = collector.clone().into_args();
        let bad_flags = b.flags.unknown_bits() != 0 || (!b.first && b.flags.streaming());
        let bad_headers = b.headers.as_ref().is_some_and(|h| h.validate().is_err());

        assert!(r.frames() <= limits.max_frames);
        assert!(r.message_bytes() <= limits.max_message_bytes);
        assert_eq!(args.len(), r.arg_count());
        assert_eq!(
            args.iter().map(|a| a.len() as u64).sum::<u64>(),
            r.message_bytes()
        );
        assert_eq!(chunks.message_complete(), !b.flags.more_fragments());
        assert_eq!(r.is_complete(), chunks.message_complete());
        if lenient {
            assert_eq!(r.checksum_ok(), expect_checksum_ok);
            assert!(!bad_flags || r.violations().contains(Violation::BadFlags));
            assert!(!bad_headers || r.violations().contains(Violation::BadHeader));
            assert!(args.len() <= 3 || r.violations().contains(Violation::ExtraArgs));
        } else {
            assert!(
                args.first().is_none_or(|a| a.len() <= limits.max_arg1_len),
                "arg1 over the limit"
            );
            assert!(args.len() <= 3, "more than 3 args");
            assert!(!bad_flags, "bad flags accepted");
            assert!(
                !(bad_headers && limits.strict_headers),
                "bad headers accepted"
            );
            assert!(same_type, "checksum type change accepted");
            assert!(
                !wrong,
                "wrong checksum accepted: carried {value:#x}, right {right:#x}"
            );
            assert!(
                !r.is_complete() || args.len() == 3,
                "completed without 3 args"
            );
        }
        dead = r.is_complete();
    }
    (!failed).then(|| (collector.into_args(), r))
}

fuzz_target!(|input: Input| {
    let limits = Limits {
        max_arg1_len: input
            .max_arg1_len
            .map_or(16 * 1024, |n| usize::from(n % 512)),
        max_message_bytes: input
            .max_message_bytes
            .map_or(1 << 20, |n| u64::from(n % (MAX_TOTAL as u32 + 1024))),
        max_frames: input.max_frames.map_or(64, |n| u32::from(n % 12)),
        strict_headers: !input.lax_headers,
    };
    let frames = build(&input);
    let strict = run(false, limits, &frames);
    let lenient = run(true, limits, &frames);
    if let Some((strict_args, s)) = strict {
        let (lenient_args, l) = lenient.expect("lenient failed where strict did not");
        assert_eq!(strict_args, lenient_args);
        assert!(l.checksum_ok());
        assert!(
            l.violations()
                .iter()
                .all(|v| v == Violation::BadHeader && !limits.strict_headers)
        );
        assert_eq!(s.violations(), l.violations());
    }
});
