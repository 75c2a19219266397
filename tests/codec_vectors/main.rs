//! Byte-literal vectors for the frame codec, annotated field by field.
//!
//! Each decode vector is written as one field per line, decoded, checked field
//! by field, and encoded back to the same bytes. Then: decode errors with
//! their kind, field and offset; the tokio-util `FrameCodec`; zero-copy
//! decoding; the fragmenter (`MessageWriter`) and the reassembler.
//!
//! Requirement IDs in comments refer to `spec/*.md`.

#[path = "../support/mod.rs"]
mod support;

use bytes::{Bytes, BytesMut};
use tchan::codec::{CodecError, FrameCodec};
use tchan::frame::{
    ArgChunks, CallContinue, CallHead, ChecksumField, ChecksumType, DecodeError, DecodeErrorKind,
    EncodeError, ErrorCode, Flags, Frame, FrameType, HeaderViolation, MessageWriter, Opaque, Ping,
    Reassembler, ReassemblyError, ReassemblyLimits, ReqHead, ResHead, ResponseCode, Tracing,
    TransportHeaders, Violation, fingerprint32,
};
use tokio_util::codec::{Decoder, Encoder};

use support::*;

mod decode_errors;
mod examples;
mod frame_codec;
mod headers;
mod more_reassembly;
mod reassembler;
mod vectors;
mod writer;
use writer::{bare_req, small_frames};
