//! Property tests for the frame codec: round trips for every frame kind,
//! decoding arbitrary bytes, and fragmenting then reassembling whole messages
//! through the stream codec.
//!
//! Requirement IDs in comments refer to `spec/*.md`.

mod support;

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use tchan::codec::FrameCodec;
use tchan::frame::{
    ArgChunks, ArgCollector, CallContinue, CallHead, CallReq, CallRes, Cancel, ChecksumField,
    ChecksumType, Claim, ErrorCode, ErrorFrame, Flags, Frame, FrameType, Init, InitHeaders,
    MessageWriter, Opaque, Ping, Reassembler, ReassemblyLimits, ReqHead, ResHead, ResponseCode,
    Tracing, TransportHeaders,
};
use tokio_util::codec::Decoder;

use support::*;

// ===== strategies =====

fn bytes_up_to(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

/// Lengths that are mostly small, sometimes up to `max`.
fn len_up_to(max: usize) -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0..=max.min(8), 3 => 0..=max.min(40), 1 => 0..=max]
}

fn sized_bytes(max: usize) -> impl Strategy<Value = Bytes> {
    len_up_to(max).prop_flat_map(|n| vec(any::<u8>(), n).prop_map(Bytes::from))
}

fn arb_tracing() -> impl Strategy<Value = Tracing> {
    (any::<u64>(), any::<u64>(), any::<u64>(), any::<u8>()).prop_map(
        |(span_id, parent_id, trace_id, flags)| Tracing {
            span_id,
            parent_id,
            trace_id,
            flags,
        },
    )
}

/// Any transport header list the wire can carry (empty, duplicate and long
/// keys included: the decoder keeps them, HDR-2).
fn arb_transport_headers() -> impl Strategy<Value = TransportHeaders> {
    vec((sized_bytes(255), sized_bytes(255)), 0..6)
        .prop_map(|pairs| TransportHeaders::from_pairs(pairs).unwrap())
}

fn arb_init_headers() -> impl Strategy<Value = InitHeaders> {
    vec((sized_bytes(300), sized_bytes(300)), 0..6)
        .prop_map(|pairs| InitHeaders::from_pairs(pairs).unwrap())
}

fn arb_checksum() -> impl Strategy<Value = ChecksumField> {
    (0u8..=3, any::<u32>()).prop_map(|(t, v)| ChecksumField {
        ty: ChecksumType(t),
        value: if t == 0 { 0 } else { v },
    })
}

fn arb_chunks() -> impl Strategy<Value = ArgChunks> {
    prop_oneof![
        4 => vec(sized_bytes(300), 0..8),
        1 => (vec(sized_bytes(64), 0..3), len_up_to(30_000))
            .prop_map(|(mut v, n)| { v.push(Bytes::from(pattern(n, n as u8))); v }),
    ]
    .prop_map(ArgChunks::from_chunks)
}

fn arb_flags() -> impl Strategy<Value = Flags> {
    prop_oneof![3 => 0u8..=3, 1 => any::<u8>()].prop_map(Flags)
}

fn arb_call_req() -> impl Strategy<Value = Frame> {
    (
        any::<u32>(),
        arb_flags(),
        any::<u32>(),
        arb_tracing(),
        sized_bytes(255),
        arb_transport_headers(),
        arb_checksum(),
        arb_chunks(),
    )
        .prop_map(
            |(id, flags, ttl, tracing, service, headers, checksum, args)| {
                Frame::CallReq(CallReq {
                    id,
                    flags,
                    ttl,
                    tracing,
                    service,
                    headers,
                    checksum,
                    args,
                })
            },
        )
}

fn arb_call_res() -> impl Strategy<Value = Frame> {
    (
        any::<u32>(),
        arb_flags(),
        any::<u8>(),
        arb_tracing(),
        arb_transport_headers(),
        arb_checksum(),
        arb_chunks(),
    )
        .prop_map(|(id, flags, code, tracing, headers, checksum, args)| {
            Frame::CallRes(CallRes {
                id,
                flags,
                code: ResponseCode(code),
                tracing,
                headers,
                checksum,
                args,
            })
        })
}

fn arb_continue() -> impl Strategy<Value = Frame> {
    (
        any::<bool>(),
        any::<u32>(),
        arb_flags(),
        arb_checksum(),
        arb_chunks(),
    )
        .prop_map(|(req, id, flags, checksum, args)| {
            let c = CallContinue {
                id,
                flags,
                checksum,
                args,
            };
            if req {
                Frame::CallReqContinue(c)
            } else {
                Frame::CallResContinue(c)
            }
        })
}

fn arb_init() -> impl Strategy<Value = Frame> {
    (
        any::<bool>(),
        any::<u32>(),
        any::<u16>(),
        arb_init_headers(),
        bytes_up_to(20),
    )
        .prop_map(|(req, id, version, headers, trailing)| {
            let i = Init {
                id,
                version,
                headers,
                trailing,
            };
            if req {
                Frame::InitReq(i)
            } else {
                Frame::InitRes(i)
            }
        })
}

fn arb_small_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (
            any::<u32>(),
            any::<u32>(),
            arb_tracing(),
            sized_bytes(2000),
            bytes_up_to(20)
        )
            .prop_map(|(id, ttl, tracing, why, trailing)| Frame::Cancel(Cancel {
                id,
                ttl,
                tracing,
                why,
                trailing
            })),
        (any::<u32>(), any::<u32>(), arb_tracing(), bytes_up_to(20)).prop_map(
            |(id, ttl, tracing, trailing)| Frame::Claim(Claim {
                id,
                ttl,
                tracing,
                trailing
            })
        ),
        (any::<bool>(), any::<u32>(), bytes_up_to(20)).prop_map(|(req, id, trailing)| {
            let p = Ping { id, trailing };
            if req {
                Frame::PingReq(p)
            } else {
                Frame::PingRes(p)
            }
        }),
        (
            any::<u32>(),
            any::<u8>(),
            arb_tracing(),
            sized_bytes(2000),
            bytes_up_to(20)
        )
            .prop_map(|(id, code, tracing, message, trailing)| {
                Frame::Error(ErrorFrame {
                    id,
                    code: ErrorCode(code),
                    tracing,
                    message,
                    trailing,
                })
            }),
        (unknown_type(), any::<u32>(), sized_bytes(3000)).prop_map(|(t, id, payload)| {
            Frame::Unknown(Opaque {
                frame_type: t,
                id,
                payload,
            })
        }),
    ]
}

const KNOWN: [u8; 11] = [
    0x01, 0x02, 0x03, 0x04, 0x13, 0x14, 0xc0, 0xc1, 0xd0, 0xd1, 0xff,
];

fn unknown_type() -> impl Strategy<Value = FrameType> {
    any::<u8>()
        .prop_filter("unknown type", |t| !KNOWN.contains(t))
        .prop_map(FrameType)
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        arb_call_req(),
        arb_call_res(),
        arb_continue(),
        arb_init(),
        arb_small_frame(),
    ]
}

/// Read sizes for feeding a stream to the codec: tiny, medium and big.
fn read_sizes() -> impl Strategy<Value = Vec<usize>> {
    vec(
        prop_oneof![1 => 1usize..16, 2 => 16usize..4096, 3 => 4096usize..140_000],
        1..6,
    )
}

/// Feeds `stream` to a `FrameCodec` in reads of the given sizes (cycled) and
/// returns every frame, checking that nothing is left over.
fn decode_in_reads(stream: &[u8], sizes: &[usize]) -> Vec<Frame> {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let n = sizes[i % sizes.len()].min(stream.len() - pos);
        i += 1;
        buf.extend_from_slice(&stream[pos..pos + n]);
        pos += n;
        while let Some(f) = codec.decode(&mut buf).expect("codec decode") {
            out.push(f);
        }
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    out
}

// ===== round trips =====

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_frame_kind_round_trips(frame in arb_frame()) {
        // [FRAME-12] encode -> decode gives the same value and the same bytes
        // [FRAME-3] ids kept; [FRAME-10] unknown types kept; [MSG-3] trailers kept
        // [MSG-9] any error code kept; [CALL-3] flags kept; [CALL-6] any code kept
        // [HDR-2] any header list kept in order; [CSUM-1] csum present iff type != 0
        // [TRACE-3] [TRACE-4] any tracing content kept
        let bytes = encode(&frame);
        prop_assert_eq!(bytes.len(), frame.encoded_len());
        prop_assert_eq!(usize::from(u16::from_be_bytes([bytes[0], bytes[1]])), bytes.len());
        prop_assert_eq!(bytes[2], frame.frame_type().0);
        prop_assert_eq!(&bytes[4..8], &frame.id().to_be_bytes());
        prop_assert_eq!(bytes[3], 0);
        prop_assert_eq!(&bytes[8..16], &[0u8; 8]);
        let back = Frame::decode(Bytes::from(bytes.clone())).unwrap();
        prop_assert_eq!(&back, &frame);
        prop_assert_eq!(encode(&back), bytes);
    }

    #[test]
    fn frames_round_trip_through_the_stream_codec(
        frames in vec(arb_frame(), 1..6),
        sizes in read_sizes(),
    ) {
        // [FRAME-1] frames follow each other with nothing between them
        // [FRAME-13] any split of the input gives the same frames
        let mut stream = Vec::new();
        for f in &frames {
            stream.extend_from_slice(&encode(f));
        }
        prop_assert_eq!(decode_in_reads(&stream, &sizes), frames);
    }
}

// ===== arbitrary bytes =====

/// A frame-like byte string: a header with a known or random type, random
/// reserved bytes, a size that is usually right, and a random payload.
fn frame_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![2 => proptest::sample::select(&KNOWN[..]), 1 => any::<u8>()],
        any::<u32>(),
        any::<u8>(),
        any::<u64>(),
        vec(any::<u8>(), 0..200),
        prop_oneof![8 => Just(None), 1 => any::<u16>().prop_map(Some)],
    )
        .prop_map(|(ty, id, r1, r8, payload, size)| {
            let size = size.unwrap_or((16 + payload.len()) as u16);
            let mut v = Vec::with_capacity(16 + payload.len());
            v.extend_from_slice(&size.to_be_bytes());
            v.push(ty);
            v.push(r1);
            v.extend_from_slice(&id.to_be_bytes());
            v.extend_from_slice(&r8.to_be_bytes());
            v.extend_from_slice(&payload);
            v
        })
}

/// A valid frame with a few bytes overwritten, or cut short (size fixed up).
fn mutated_frame_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        arb_frame(),
        vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        prop_oneof![3 => Just(None), 1 => any::<prop::sample::Index>().prop_map(Some)],
    )
        .prop_map(|(frame, edits, cut)| {
            let mut v = encode(&frame);
            if let Some(cut) = cut {
                let n = 16 + cut.index(v.len() - 16 + 1);
                v.truncate(n);
                let size = (n as u16).to_be_bytes();
                v[..2].copy_from_slice(&size);
            }
            for (at, byte) in edits {
                // Leave the size bytes alone so the frame is still whole.
                let i = 2 + at.index(v.len() - 2);
                v[i] = byte;
            }
            v
        })
}

fn check_arbitrary(bytes: &[u8]) -> Result<(), TestCaseError> {
    // Never panics; success means the re-encoding is the input with zeroed reserved bytes.
    if let Ok(frame) = Frame::decode(Bytes::copy_from_slice(bytes)) {
        prop_assert_eq!(
            hex::encode(encode(&frame)),
            hex::encode(zero_reserved(bytes))
        );
    }
    // The stream codec never panics either.
    let mut buf = BytesMut::from(bytes);
    let mut codec = FrameCodec::new();
    while let Ok(Some(_)) = codec.decode(&mut buf) {}
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn decoding_random_bytes_never_panics(bytes in vec(any::<u8>(), 0..300)) {
        // [FRAME-12] [FRAME-14] no panic; a successful decode re-encodes exactly
        check_arbitrary(&bytes)?;
    }

    #[test]
    fn decoding_frame_like_bytes_never_panics(bytes in frame_like_bytes()) {
        // [FRAME-8] [FRAME-12] reserved bytes normalised, everything else reproduced
        // [FRAME-14] malformed bodies are errors, never panics
        check_arbitrary(&bytes)?;
    }

    #[test]
    fn decoding_mutated_frames_never_panics(bytes in mutated_frame_bytes()) {
        // [FRAME-12] [FRAME-16] [MSG-1] every length checked against the frame end
        check_arbitrary(&bytes)?;
    }
}

// ===== fragment, stream, reassemble =====

/// Arg lengths: mostly small, some medium, a few up to 1 MiB.
fn arg_len(max: usize) -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0..=64usize.min(max),
        3 => 0..=5000usize.min(max),
        1 => 0..=max,
    ]
}

fn arg(max: usize) -> impl Strategy<Value = Vec<u8>> {
    (arg_len(max), any::<u8>()).prop_map(|(n, seed)| pattern(n, seed))
}

/// Transport headers that pass validation (HDR-3): unique keys of 1..=16 bytes.
fn valid_headers() -> impl Strategy<Value = TransportHeaders> {
    proptest::collection::btree_map(vec(any::<u8>(), 1..=16), vec(any::<u8>(), 0..40), 0..5)
        .prop_map(|m| TransportHeaders::strict(m).unwrap())
}

fn arb_head() -> impl Strategy<Value = CallHead> {
    prop_oneof![
        (
            1u32..,
            arb_tracing(),
            vec(any::<u8>(), 1..=60),
            valid_headers()
        )
            .prop_map(|(ttl, tracing, service, headers)| CallHead::Req(ReqHead {
                ttl,
                tracing,
                service: service.into(),
                headers,
            })),
        (any::<u8>(), arb_tracing(), valid_headers()).prop_map(|(code, tracing, headers)| {
            CallHead::Res(ResHead {
                code: ResponseCode(code),
                tracing,
                headers,
            })
        }),
    ]
}

fn max_frame_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => 64usize..=256,
        2 => 256usize..=8192,
        2 => 8192usize..=65535,
        1 => Just(65535usize),
    ]
}

/// Bytes of the first frame before any arg data, plus one chunk length (CALL-9).
fn first_frame_need(head: &CallHead, ty: ChecksumType) -> usize {
    let fixed = match head {
        CallHead::Req(h) => 1 + 4 + 25 + 1 + h.service.len() + h.headers.encoded_len(),
        CallHead::Res(h) => 1 + 1 + 25 + h.headers.encoded_len(),
    };
    16 + fixed + 1 + ty.value_len().unwrap() + 2
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn fragment_stream_and_reassemble(
        id in any::<u32>(),
        head in arb_head(),
        ty in (0u8..=3).prop_map(ChecksumType),
        max in max_frame_size(),
        arg1 in arg(16 * 1024),
        arg2 in arg(1 << 20),
        arg3 in arg(1 << 20),
        sizes in read_sizes(),
    ) {
        // [FRAG-1] [FRAG-2] [FRAG-3] args split over frames come back whole, in order
        // [FRAME-5] no frame over the maximum; [CALL-9] a head that does not fit is refused
        // [FRAG-15] exactly three args; [HDR-5] valid headers are accepted and written as given
        // [CALL-4] 0x01 on every frame but the last, nothing else set
        // [CSUM-5] [CSUM-8] [CSUM-10] [CSUM-15] every frame verifies (strict reassembler)
        // [CSUM-11] one checksum type in all frames; [FRAME-13] any read split works
        let need = first_frame_need(&head, ty);
        let refused = MessageWriter::new(id, head.clone(), ty, max);
        if need > max {
            prop_assert!(
                matches!(refused, Err(tchan::frame::EncodeError::HeadTooLarge { .. })),
                "need {} max {}: {:?}", need, max, refused
            );
        } else {
            prop_assert!(refused.is_ok());
        }
        let max = max.max(need);

        let mut stream = BytesMut::new();
        MessageWriter::write_message(
            &mut stream, id, head.clone(), ty, max, [&arg1, &arg2, &arg3],
        ).unwrap();

        let frames = decode_in_reads(&stream, &sizes);
        let limits = { let mut c = ReassemblyLimits::default(); c.set_max_frames(u32::MAX); c.set_max_message_bytes(u64::MAX); c };
        let mut r = Reassembler::new(limits);
        let mut args = ArgCollector::new();
        let request = matches!(head, CallHead::Req(_));
        for (i, f) in frames.iter().enumerate() {
            prop_assert!(f.encoded_len() <= max, "frame {} is {} > {}", i, f.encoded_len(), max);
            // [FRAG-19] never a frame without chunks
            prop_assert!(!fragment(f).args.is_empty(), "frame {} has no chunk", i);
            // [FRAG-15] [FRAG-16] [FRAG-17] [FRAG-18] greedy: a frame followed by another is
            // full, or one byte short when an arg ended with 1 byte left; then the next frame
            // starts with a 0-length terminator followed by the next arg's chunk.
            if i + 1 < frames.len() {
                let len = f.encoded_len();
                prop_assert!(len == max || len == max - 1, "frame {} of {} is not full ({})", i, frames.len(), len);
                if len == max - 1 {
                    let next = chunks_of(&frames[i + 1]);
                    prop_assert!(next.len() >= 2 && next[0].is_empty(), "frame {} after a short frame: {:?}", i + 1, next.iter().map(Vec::len).collect::<Vec<_>>());
                }
            }
            prop_assert_eq!(f.id(), id);
            let want_type = match (request, i) {
                (true, 0) => FrameType::CALL_REQ,
                (false, 0) => FrameType::CALL_RES,
                (true, _) => FrameType::CALL_REQ_CONTINUE,
                (false, _) => FrameType::CALL_RES_CONTINUE,
            };
            prop_assert_eq!(f.frame_type(), want_type);
            let last = i + 1 == frames.len();
            prop_assert_eq!(flags_of(f), if last { 0 } else { Flags::MORE_FRAGMENTS });
            prop_assert_eq!(checksum_of(f).ty, ty);
            let chunks = r.push(fragment(f)).unwrap();
            prop_assert_eq!(chunks.message_complete(), last);
            args.extend(&chunks);
        }
        prop_assert!(r.is_complete());
        prop_assert!(r.checksum_ok());
        prop_assert!(r.violations().is_empty());
        // The first frame carries the head exactly.
        match (&frames[0], &head) {
            (Frame::CallReq(f), CallHead::Req(h)) => {
                prop_assert_eq!(f.ttl, h.ttl);
                prop_assert_eq!(f.tracing, h.tracing);
                prop_assert_eq!(&f.service, &h.service);
                prop_assert_eq!(&f.headers, &h.headers);
            }
            (Frame::CallRes(f), CallHead::Res(h)) => {
                prop_assert_eq!(f.code, h.code);
                prop_assert_eq!(f.tracing, h.tracing);
                prop_assert_eq!(&f.headers, &h.headers);
            }
            _ => prop_assert!(false, "first frame does not match the head"),
        }
        let got = args.into_args();
        prop_assert_eq!(got.len(), 3);
        prop_assert!(got[0] == arg1, "arg1 differs ({} vs {} bytes)", got[0].len(), arg1.len());
        prop_assert!(got[1] == arg2, "arg2 differs ({} vs {} bytes)", got[1].len(), arg2.len());
        prop_assert!(got[2] == arg3, "arg3 differs ({} vs {} bytes)", got[2].len(), arg3.len());
    }

    #[test]
    fn streamed_writes_reassemble(
        head in arb_head(),
        ty in (0u8..=3).prop_map(ChecksumType),
        max in 200usize..=4096,
        pieces in vec(vec(0usize..3000, 0..5), 3..=3),
        flush_after in vec(any::<bool>(), 15),
    ) {
        // [FRAG-1] an arg written in pieces, with flushes between them, comes back whole
        // [CALL-4] flushed frames carry 0x01; [CSUM-5] [CSUM-8] the checksum survives flushes
        let max = max.max(first_frame_need(&head, ty));
        let mut w = MessageWriter::new(1, head, ty, max).unwrap();
        let mut stream = BytesMut::new();
        let mut want = Vec::new();
        let mut k = 0;
        for (a, lens) in pieces.iter().enumerate() {
            let mut whole = Vec::new();
            for (j, &n) in lens.iter().enumerate() {
                let p = pattern(n, (a * 7 + j) as u8);
                w.write(&mut stream, &p).unwrap();
                whole.extend_from_slice(&p);
                if flush_after[k % flush_after.len()] {
                    w.flush(&mut stream);
                    // Only whole frames now: they decode on their own.
                    let _ = split_frames(&stream);
                }
                k += 1;
            }
            prop_assert_eq!(w.end_arg(&mut stream).unwrap(), a == 2);
            want.push(whole);
        }
        let frames = split_frames(&stream);
        prop_assert!(frames.iter().all(|f| f.encoded_len() <= max));
        let limits = { let mut c = ReassemblyLimits::default(); c.set_max_frames(u32::MAX); c };
        let (got, r) = reassemble_with(Reassembler::new(limits), &frames).unwrap();
        prop_assert!(r.is_complete());
        prop_assert_eq!(got, want);
    }
}

// ===== any valid split is accepted =====

/// A hand-made layout of one message over frames.
#[derive(Debug, Clone)]
struct Split {
    /// Per frame, the chunks in it.
    frames: Vec<Vec<Vec<u8>>>,
}

/// Lays three args out over frames in an arbitrary way that follows the
/// receiver rules of spec 05 §2 (not the way tchan's writer does it): args cut
/// into random pieces (empty pieces included), frames cut between any two
/// chunks, a 0-length terminator where an arg ended at a frame end, and
/// now and then an empty continue frame.
fn arb_split() -> impl Strategy<Value = (Vec<Vec<u8>>, Split)> {
    (
        vec(
            prop_oneof![3 => 0usize..20, 2 => 0usize..600, 1 => 0usize..4000],
            3,
        ),
        vec(vec(0usize..1000, 0..4), 3),
        vec(0u8..8, 64),
        any::<u8>(),
    )
        .prop_map(|(lens, cuts, coins, seed)| {
            let args: Vec<Vec<u8>> = lens
                .iter()
                .enumerate()
                .map(|(i, &n)| pattern(n, seed.wrapping_add(i as u8)))
                .collect();
            // Pieces of each arg: cut at the given (sorted, clamped) positions.
            let mut pieces: Vec<(usize, Vec<u8>)> = Vec::new();
            for (a, arg) in args.iter().enumerate() {
                let mut at: Vec<usize> = cuts[a].iter().map(|&c| c.min(arg.len())).collect();
                at.sort_unstable();
                let mut prev = 0;
                for c in at.into_iter().chain([arg.len()]) {
                    pieces.push((a, arg[prev..c].to_vec()));
                    prev = c;
                }
            }
            let mut coin = coins.into_iter().cycle();
            let mut frames: Vec<Vec<Vec<u8>>> = vec![Vec::new()];
            if coin.next() == Some(7) {
                // A first frame without chunks: no arg is open after it.
                frames.push(Vec::new());
            }
            // The arg of the last chunk placed so far.
            let mut last_arg: Option<usize> = None;
            for (a, piece) in pieces {
                let c = coin.next().unwrap();
                // Two chunks in one frame are two args, so a piece that continues the
                // previous chunk's arg must start a new frame; otherwise cut at random.
                if !frames.last().unwrap().is_empty() && (last_arg == Some(a) || c < 3) {
                    frames.push(Vec::new());
                    if coin.next().unwrap() == 0 {
                        // An empty continue frame in between (FRAG-6).
                        frames.push(Vec::new());
                    }
                }
                let continue_frame = frames.len() > 1;
                let frame = frames.last_mut().unwrap();
                if frame.is_empty() && continue_frame && last_arg.is_some() && last_arg != Some(a) {
                    // The first chunk would continue the open arg: close it first with a
                    // 0-length terminator (FRAG-4).
                    frame.push(Vec::new());
                }
                frame.push(piece);
                last_arg = Some(a);
            }
            if coin.next().unwrap() < 2 {
                // The message ends with an empty continue frame (FRAG-6).
                frames.push(Vec::new());
            }
            (args, Split { frames })
        })
}

fn build_frames(split: &Split, request: bool, ty: ChecksumType) -> Vec<Frame> {
    let n = split.frames.len();
    let mut so_far = Vec::new();
    split
        .frames
        .iter()
        .enumerate()
        .map(|(i, chunks)| {
            for c in chunks {
                so_far.extend_from_slice(c);
            }
            let last_chunk: &[u8] = chunks.last().map(Vec::as_slice).unwrap_or(&[]);
            let value = match ty {
                ChecksumType::CRC32 => crc32fast::hash(&so_far),
                ChecksumType::CRC32C => crc32c::crc32c(&so_far),
                ChecksumType::FARMHASH32 => tchan::frame::fingerprint32(last_chunk),
                _ => 0,
            };
            let checksum = ChecksumField { ty, value };
            let flags = Flags(if i + 1 < n { Flags::MORE_FRAGMENTS } else { 0 });
            let args = ArgChunks::from_chunks(chunks);
            match (i, request) {
                (0, true) => Frame::CallReq(CallReq {
                    id: 5,
                    flags,
                    ttl: 100,
                    tracing: TRACING,
                    service: Bytes::from_static(b"svc"),
                    headers: TransportHeaders::new(),
                    checksum,
                    args,
                }),
                (0, false) => Frame::CallRes(CallRes {
                    id: 5,
                    flags,
                    code: ResponseCode::OK,
                    tracing: TRACING,
                    headers: TransportHeaders::new(),
                    checksum,
                    args,
                }),
                (_, true) => Frame::CallReqContinue(CallContinue {
                    id: 5,
                    flags,
                    checksum,
                    args,
                }),
                (_, false) => Frame::CallResContinue(CallContinue {
                    id: 5,
                    flags,
                    checksum,
                    args,
                }),
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_valid_split_reassembles(
        (args, split) in arb_split(),
        request in any::<bool>(),
        ty in (0u8..=3).prop_map(ChecksumType),
        sizes in read_sizes(),
    ) {
        // [FRAG-14] any split that follows the rules is accepted, not only tchan's or node's
        // [FRAG-2] [FRAG-3] [FRAG-4] [FRAG-5] [FRAG-6] chunk assignment, terminators, empty
        // chunks and empty continue frames; [CSUM-5] [CSUM-6] [CSUM-8] [CSUM-15] verified
        let frames = build_frames(&split, request, ty);
        let mut stream = Vec::new();
        for f in &frames {
            stream.extend_from_slice(&encode(f));
        }
        let decoded = decode_in_reads(&stream, &sizes);
        prop_assert_eq!(&decoded, &frames);
        let (got, r) = reassemble_with(Reassembler::new(ReassemblyLimits::default()), &decoded)
            .map_err(|e| TestCaseError::fail(format!("{e} for split {:?}", split.frames.iter().map(|f| f.iter().map(Vec::len).collect::<Vec<_>>()).collect::<Vec<_>>())))?;
        prop_assert!(r.is_complete());
        prop_assert!(r.checksum_ok());
        prop_assert_eq!(got, args);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn header_order_carries_no_meaning(headers in valid_headers(), rotate in 0usize..8) {
        // [DEV-14] [HDR-8] a receiver does not depend on header order: lookups and validation give
        // the same answers for any order of the same (unique-key) pairs; [HDR-3] valid set
        let pairs: Vec<(Vec<u8>, Vec<u8>)> =
            headers.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        let mut moved = pairs.clone();
        if !moved.is_empty() {
            let n = rotate % moved.len();
            moved.rotate_left(n);
            moved.reverse();
        }
        let other = TransportHeaders::from_pairs(moved).unwrap();
        prop_assert_eq!(other.validate(), headers.validate());
        prop_assert_eq!(other.validate(), Ok(()));
        for (k, v) in &pairs {
            prop_assert_eq!(other.get(k), Some(&v[..]));
            prop_assert_eq!(headers.get(k), Some(&v[..]));
        }
    }
}
