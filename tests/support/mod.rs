//! Shared builders for the codec tests (`codec_vectors`, `codec_props`).
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use tchan::codec::FrameCodec;
use tchan::frame::{
    ArgChunks, ArgCollector, CallContinue, CallFragment, CallHead, CallReq, CallRes, ChecksumField,
    ChecksumType, Flags, Frame, Reassembler, ReassemblyError, ReassemblyLimits, ReqHead, ResHead,
    ResponseCode, Tracing, TransportHeaders,
};
use tokio_util::codec::Decoder;

/// The tracing ids of `tracing_fixed_ids.c2s.json` (spec 03 §4).
pub const TRACING: Tracing = Tracing {
    span_id: 0x0102_0304_0506_0708,
    parent_id: 0x1112_1314_1516_1718,
    trace_id: 0x2122_2324_2526_2728,
    flags: 0x01,
};
/// `TRACING` on the wire, field by field.
pub const SPAN_ID: [u8; 8] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
pub const PARENT_ID: [u8; 8] = [0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18];
pub const TRACE_ID: [u8; 8] = [0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28];
pub const TRACE_FLAGS: [u8; 1] = [0x01];

/// Concatenates wire fields, written one per line by the caller.
pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Encodes a frame into a fresh buffer.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    frame.encode(&mut out).expect("encode");
    assert_eq!(out.len(), frame.encoded_len(), "encoded_len");
    out.to_vec()
}

/// `input` with the reserved header bytes (frame offsets 3 and 8..16) zeroed.
pub fn zero_reserved(input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    if v.len() >= 16 {
        v[3] = 0;
        v[8..16].fill(0);
    }
    v
}

/// Decodes one whole frame and checks that it encodes back to the input
/// (reserved bytes zeroed).
pub fn decode_roundtrip(input: &[u8]) -> Frame {
    let frame = Frame::decode(Bytes::copy_from_slice(input)).expect("decode");
    assert_eq!(
        hex::encode(encode(&frame)),
        hex::encode(zero_reserved(input)),
        "re-encoded bytes"
    );
    frame
}

/// Splits a stream into frames with `FrameCodec`, all at once.
pub fn split_frames(stream: &[u8]) -> Vec<Frame> {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::from(stream);
    let mut out = Vec::new();
    while let Some(f) = codec.decode(&mut buf).expect("codec decode") {
        out.push(f);
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    out
}

/// The reassembler's view of a call frame; panics on other frames.
pub fn fragment(frame: &Frame) -> CallFragment<'_> {
    match frame {
        Frame::CallReq(f) => f.into(),
        Frame::CallRes(f) => f.into(),
        Frame::CallReqContinue(f) | Frame::CallResContinue(f) => f.into(),
        other => panic!("not a call frame: {other:?}"),
    }
}

/// The checksum field of a call frame.
pub fn checksum_of(frame: &Frame) -> ChecksumField {
    fragment(frame).checksum
}

/// The arg chunks of a call frame, as vectors.
pub fn chunks_of(frame: &Frame) -> Vec<Vec<u8>> {
    fragment(frame).args.iter().map(|c| c.to_vec()).collect()
}

/// The flags of a call frame.
pub fn flags_of(frame: &Frame) -> u8 {
    fragment(frame).flags.0
}

/// Pushes frames through a reassembler and gathers the args.
pub fn reassemble_with(
    mut r: Reassembler,
    frames: &[Frame],
) -> Result<(Vec<Bytes>, Reassembler), ReassemblyError> {
    let mut args = ArgCollector::new();
    for f in frames {
        let chunks = r.push(fragment(f))?;
        args.extend(&chunks);
    }
    Ok((args.into_args(), r))
}

/// Strict reassembly with default limits.
pub fn reassemble(frames: &[Frame]) -> Result<Vec<Bytes>, ReassemblyError> {
    reassemble_with(Reassembler::new(ReassemblyLimits::default()), frames).map(|(a, _)| a)
}

pub fn req_head(service: &str, headers: &[(&str, &str)]) -> CallHead {
    CallHead::Req(ReqHead {
        ttl: 1000,
        tracing: TRACING,
        service: Bytes::copy_from_slice(service.as_bytes()),
        headers: TransportHeaders::strict(headers.iter().copied()).expect("headers"),
    })
}

pub fn res_head(code: u8, headers: &[(&str, &str)]) -> CallHead {
    CallHead::Res(ResHead {
        code: ResponseCode(code),
        tracing: TRACING,
        headers: TransportHeaders::strict(headers.iter().copied()).expect("headers"),
    })
}

/// A call req frame for reassembler tests (no transport headers).
pub fn call_req(flags: u8, checksum: ChecksumField, chunks: &[&[u8]]) -> Frame {
    Frame::CallReq(CallReq {
        id: 7,
        flags: Flags(flags),
        ttl: 1000,
        tracing: TRACING,
        service: Bytes::from_static(b"svc"),
        headers: TransportHeaders::new(),
        checksum,
        args: ArgChunks::from_chunks(chunks),
    })
}

/// A call res frame for reassembler tests.
pub fn call_res(flags: u8, checksum: ChecksumField, chunks: &[&[u8]]) -> Frame {
    Frame::CallRes(CallRes {
        id: 7,
        flags: Flags(flags),
        code: ResponseCode::OK,
        tracing: TRACING,
        headers: TransportHeaders::new(),
        checksum,
        args: ArgChunks::from_chunks(chunks),
    })
}

/// A call req continue frame for reassembler tests.
pub fn req_continue(flags: u8, checksum: ChecksumField, chunks: &[&[u8]]) -> Frame {
    Frame::CallReqContinue(CallContinue {
        id: 7,
        flags: Flags(flags),
        checksum,
        args: ArgChunks::from_chunks(chunks),
    })
}

pub fn csum(ty: ChecksumType, value: u32) -> ChecksumField {
    ChecksumField { ty, value }
}

/// `len` bytes of a repeating pattern that depends on `seed` (cheap for big args).
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let block: Vec<u8> = (0..251u16)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        let n = (len - v.len()).min(block.len());
        v.extend_from_slice(&block[..n]);
    }
    v
}
