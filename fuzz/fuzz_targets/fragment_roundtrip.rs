//! Three arbitrary args -> `MessageWriter` (whole or incremental, with
//! flushes) -> `FrameCodec::with_max_frame_size(max)` -> strict `Reassembler`.
//!
//! Oracle: the writer refuses exactly the heads that cannot fit; the output
//! splits into whole frames of at most `max` bytes, a call req/res then
//! continues of the same kind and id, each re-encoding to its bytes; an arg1
//! over `MAX_ARG1_LEN` is refused without writing anything; the
//! strict reassembler accepts every frame (checksums verify, arg boundaries
//! and 0/1 byte slack handled by the rules) and gives back the three args and
//! the head. Without flushes every frame but the last is full to within one
//! byte and no continue frame is a lone empty chunk.
#![no_main]

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tchan::codec::FrameCodec;
use tchan::frame::{
    ArgCollector, CallHead, ChecksumType, EncodeError, Frame, FrameType, MAX_ARG1_LEN,
    MessageWriter, Reassembler, ReassemblyLimits, ReqHead, ResHead, ResponseCode, Tracing,
    TransportHeaders,
};
use tchan_fuzz::{call_fragment, decode_chunks, repeat_fill};

#[derive(Arbitrary, Debug)]
struct Input {
    args: [ArgDesc; 3],
    checksum: u8,
    max_frame: u16,
    id: u32,
    request: bool,
    ttl: u32,
    code: u8,
    tracing: (u64, u64, u64, u8),
    service: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// `None`: `write_message`; otherwise write in pieces of these sizes.
    steps: Option<Vec<(u16, bool)>>,
}

#[derive(Arbitrary, Debug)]
struct ArgDesc {
    pattern: Vec<u8>,
    big: bool,
    len: u32,
}

/// Writes `data`; an arg1 over `MAX_ARG1_LEN` must be refused without
/// writing anything (then `None`).
fn put(
    w: &mut MessageWriter,
    dst: &mut BytesMut,
    data: &[u8],
    arg1_so_far: &mut usize,
) -> Option<()> {
    let before = dst.len();
    let res = w.write(dst, data);
    if w.current_arg() == 0 {
        *arg1_so_far += data.len();
        if *arg1_so_far > MAX_ARG1_LEN {
            assert!(
                matches!(res, Err(EncodeError::FieldTooLong { field: "arg1", .. })),
                "{res:?}"
            );
            assert_eq!(dst.len(), before, "a refused write wrote bytes");
            return None;
        }
    }
    res.unwrap();
    Some(())
}

/// Writes the message; `Some(flushed)`, or `None` when arg1 was refused.
fn write(
    input: &Input,
    w: &mut MessageWriter,
    dst: &mut BytesMut,
    args: &[Vec<u8>; 3],
) -> Option<bool> {
    let mut arg1 = 0;
    let Some(steps) = &input.steps else {
        for a in args {
            put(w, dst, a, &mut arg1)?;
            w.end_arg(dst).unwrap();
        }
        return Some(false);
    };
    let mut flushed = false;
    for (i, arg) in args.iter().enumerate() {
        let mut rest = &arg[..];
        for &(size, flush) in steps.iter().cycle().take(steps.len().min(64) * 4) {
            let (now, later) = rest.split_at(usize::from(size).min(rest.len()));
            put(w, dst, now, &mut arg1)?;
            rest = later;
            if flush {
                w.flush(dst);
                flushed = true;
            }
            if rest.is_empty() {
                break;
            }
        }
        put(w, dst, rest, &mut arg1)?;
        assert_eq!(w.current_arg(), i);
        assert_eq!(w.end_arg(dst).unwrap(), i == 2);
    }
    assert!(w.is_complete());
    assert_eq!(w.write(dst, b"x"), Err(EncodeError::MessageComplete));
    Some(flushed)
}

fuzz_target!(|input: Input| {
    let ty = ChecksumType(input.checksum % 4);
    let max = 64 + usize::from(input.max_frame) % (65535 - 64 + 1);
    let mut i = 0;
    let args = input.args.each_ref().map(|a| {
        // arg1 is at most 16 KiB; go a little over to see it refused. Others
        // up to 200 KiB, but at most ~256 frames' worth to keep runs fast.
        let big = if i == 0 {
            MAX_ARG1_LEN + 1024
        } else {
            (200 * 1024).min(max * 256) + 1
        };
        i += 1;
        let len = if a.big {
            a.len as usize % big
        } else {
            a.len as usize % 300
        };
        repeat_fill(&a.pattern, len)
    });
    let (s, p, t, f) = input.tracing;
    let tracing = Tracing {
        span_id: s,
        parent_id: p,
        trace_id: t,
        flags: f,
    };
    let pairs = input
        .headers
        .iter()
        .take(4)
        .map(|(k, v)| (&k[..k.len().min(16)], &v[..v.len().min(64)]));
    let headers = TransportHeaders::strict(pairs).unwrap_or_default();
    let service = bytes::Bytes::copy_from_slice(&input.service[..input.service.len().min(255)]);
    let (head, head_len) = if input.request {
        let h = ReqHead {
            ttl: input.ttl,
            tracing,
            service: service.clone(),
            headers: headers.clone(),
        };
        (
            CallHead::Req(h),
            1 + 4 + 25 + 1 + service.len() + headers.encoded_len(),
        )
    } else {
        let h = ResHead {
            code: ResponseCode(input.code),
            tracing,
            headers: headers.clone(),
        };
        (CallHead::Res(h), 1 + 1 + 25 + headers.encoded_len())
    };
    let first_needs = 16 + head_len + 1 + ty.value_len().unwrap() + 2;

    let zero_ttl = input.request && input.ttl == 0;
    let no_service = input.request && service.is_empty();
    let mut w = match MessageWriter::new(input.id, head.clone(), ty, max) {
        Ok(w) => w,
        Err(EncodeError::ZeroTtl) => {
            assert!(zero_ttl);
            return;
        }
        Err(EncodeError::FieldTooLong {
            field: "service (empty)",
            ..
        }) => {
            assert!(no_service && !zero_ttl);
            return;
        }
        Err(EncodeError::HeadTooLarge { size, .. }) => {
            assert!(size == first_needs && size > max && !zero_ttl && !no_service);
            return;
        }
        Err(e) => panic!("unexpected writer error {e}"),
    };
    assert!(first_needs <= max && !zero_ttl && !no_service);
    let mut dst = BytesMut::new();
    let Some(flushed) = write(&input, &mut w, &mut dst, &args) else {
        return;
    };

    let out = decode_chunks(&mut FrameCodec::with_max_frame_size(max), [&dst[..]]);
    assert_eq!(out.error, None);
    assert!(out.rest.is_empty(), "writer left a partial frame");
    let limits = {
        let mut c = ReassemblyLimits::default();
        c.set_max_arg1_len(usize::MAX);
        c.set_max_message_bytes(u64::MAX);
        c.set_max_frames(u32::MAX);
        c.set_strict_headers(true);
        c
    };
    let mut r = Reassembler::new(limits);
    let mut collector = ArgCollector::new();
    let mut pos = 0;
    let n = out.frames.len();
    for (i, frame) in out.frames.iter().enumerate() {
        let len = frame.encoded_len();
        assert!(len <= max);
        assert_eq!(
            frame.to_bytes().unwrap(),
            dst[pos..pos + len],
            "frame does not re-encode"
        );
        pos += len;
        assert_eq!(frame.id(), input.id);
        let want = match (input.request, i) {
            (true, 0) => FrameType::CALL_REQ,
            (false, 0) => FrameType::CALL_RES,
            (true, _) => FrameType::CALL_REQ_CONTINUE,
            (false, _) => FrameType::CALL_RES_CONTINUE,
        };
        assert_eq!(frame.frame_type(), want);
        let fragment = call_fragment(frame).unwrap();
        if !flushed && i + 1 < n {
            assert!(
                len + 1 >= max,
                "frame {i} of {n} has {} bytes of slack",
                max - len
            );
        }
        if !flushed && i > 0 {
            assert!(
                fragment.args.data_len() > 0 || fragment.args.len() >= 2,
                "needless frame {i}"
            );
        }
        let chunks = r
            .push(fragment)
            .unwrap_or_else(|e| panic!("frame {i} of {n} rejected: {e}"));
        assert_eq!(chunks.message_complete(), i + 1 == n);
        collector.extend(&chunks);
    }
    assert!(r.is_complete());
    assert_eq!(r.checksum_type(), Some(ty));
    assert_eq!(collector.into_args(), args);
    match (&out.frames[0], &head) {
        (Frame::CallReq(f), CallHead::Req(h)) => {
            assert_eq!(
                (f.ttl, f.tracing, &f.service, &f.headers),
                (h.ttl, h.tracing, &h.service, &h.headers)
            );
        }
        (Frame::CallRes(f), CallHead::Res(h)) => {
            assert_eq!(
                (f.code, f.tracing, &f.headers),
                (h.code, h.tracing, &h.headers)
            );
        }
        _ => unreachable!(),
    }
});
