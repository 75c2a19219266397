//! The pure frame codec: bytes in, typed frames out, and back.
//!
//! Nothing here does I/O, reads a clock or keeps connection state. Decoding
//! takes a whole frame as `Bytes` (the tokio glue in [`crate::codec`] splits
//! frames out of the read buffer) and returns fields that borrow from it:
//! service names, header lists, error messages and argument chunks are `Bytes`
//! slices of the input, never copies.
//!
//! One type per frame kind, each with `decode`, `encoded_len` and (through
//! [`Frame::encode`]) encoding. [`Frame`] only dispatches.
//!
//! Round trips: every field of the input is kept except the reserved header
//! bytes (offsets 3 and 8..16), which are ignored on read and written as zero.
//! Bytes after a fixed-layout body are kept in a `trailing` field. So
//! `decode` then `encode` gives back the input with its reserved bytes zeroed.

mod args;
mod call;
mod checksum;
mod control;
mod error;
mod farmhash;
mod fragment;
mod header;
mod headers;
mod init;
mod reassembly;
mod tracing;
mod wire;

use bytes::{BufMut, Bytes, BytesMut};

pub use args::{ArgChunks, ChecksumField, ChunkIter, SliceIter};
pub(crate) use call::WholeCall;
pub use call::{CallContinue, CallFragment, CallReq, CallRes, Flags, ResponseCode};
pub use checksum::{Checksum, ChecksumType, fingerprint32};
pub use control::{Cancel, Claim, ErrorCode, ErrorFrame, Opaque, Ping, RetryMeaning};
pub use error::{DecodeError, DecodeErrorKind, EncodeError};
pub use fragment::{
    CallHead, FrameSink, MAX_ARG1_LEN, MessageArg, MessageWriter, ReqHead, ResHead, encode_message,
};
pub use header::{FrameHeader, FrameType, HEADER_LEN, MAX_FRAME_SIZE, NO_MESSAGE_ID};
pub use headers::{
    ArgScheme, HeaderIter, HeaderViolation, Headers, InitHeaders, MAX_TRANSPORT_HEADER_KEY_LEN,
    MAX_TRANSPORT_HEADERS, RetryFlags, ThriftHeaders, TransportHeaders, W1, W2, Width,
};
pub use init::{
    HOST_PORT, Init, PROCESS_NAME, PROTOCOL_VERSION, TCHANNEL_LANGUAGE, TCHANNEL_LANGUAGE_VERSION,
    TCHANNEL_VERSION, is_ephemeral, parse_host_port,
};
pub use reassembly::{
    ArgChunk, ArgCollector, FrameChunks, Reassembler, ReassemblyError, ReassemblyLimits, Violation,
    Violations,
};
pub use tracing::{TRACING_LEN, Tracing};

/// Any TChannel frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// Type 0x01: opens the handshake.
    InitReq(Init),
    /// Type 0x02: answers init req.
    InitRes(Init),
    /// Type 0x03: the first frame of a request.
    CallReq(CallReq),
    /// Type 0x04: the first frame of a response.
    CallRes(CallRes),
    /// Type 0x13: a later frame of a request.
    CallReqContinue(CallContinue),
    /// Type 0x14: a later frame of a response.
    CallResContinue(CallContinue),
    /// Type 0xc0: the caller gives up on a call.
    Cancel(Cancel),
    /// Type 0xc1: claim (read and ignored).
    Claim(Claim),
    /// Type 0xd0: a ping.
    PingReq(Ping),
    /// Type 0xd1: a ping's answer.
    PingRes(Ping),
    /// Type 0xff: an error for one call, or for the connection.
    Error(ErrorFrame),
    /// Any other type, kept byte for byte.
    Unknown(Opaque),
}

impl Frame {
    /// Decodes one whole frame (16-byte header included). `frame` must be
    /// exactly `size` bytes long; the returned fields share its allocation.
    pub fn decode(frame: Bytes) -> Result<Frame, DecodeError> {
        let header = FrameHeader::parse(&frame, MAX_FRAME_SIZE)?.ok_or_else(|| {
            DecodeError::new(
                None,
                "header",
                0,
                DecodeErrorKind::Truncated {
                    needed: HEADER_LEN,
                    remaining: frame.len(),
                },
            )
        })?;
        if usize::from(header.size) != frame.len() {
            return Err(DecodeError::new(
                Some(header.frame_type),
                "size",
                0,
                DecodeErrorKind::SizeMismatch {
                    size: header.size,
                    actual: frame.len(),
                },
            ));
        }
        Self::decode_payload(header, frame.slice(HEADER_LEN..))
    }

    /// Decodes a payload whose header was already parsed.
    pub fn decode_payload(header: FrameHeader, payload: Bytes) -> Result<Frame, DecodeError> {
        let p = &payload;
        Ok(match header.frame_type {
            FrameType::INIT_REQ => Frame::InitReq(Init::decode(header, p)?),
            FrameType::INIT_RES => Frame::InitRes(Init::decode(header, p)?),
            FrameType::CALL_REQ => Frame::CallReq(CallReq::decode(header, p)?),
            FrameType::CALL_RES => Frame::CallRes(CallRes::decode(header, p)?),
            FrameType::CALL_REQ_CONTINUE => {
                Frame::CallReqContinue(CallContinue::decode(header, p)?)
            }
            FrameType::CALL_RES_CONTINUE => {
                Frame::CallResContinue(CallContinue::decode(header, p)?)
            }
            FrameType::CANCEL => Frame::Cancel(Cancel::decode(header, p)?),
            FrameType::CLAIM => Frame::Claim(Claim::decode(header, p)?),
            FrameType::PING_REQ => Frame::PingReq(Ping::decode(header, p)?),
            FrameType::PING_RES => Frame::PingRes(Ping::decode(header, p)?),
            FrameType::ERROR => Frame::Error(ErrorFrame::decode(header, p)?),
            frame_type => Frame::Unknown(Opaque {
                frame_type,
                id: header.id,
                payload,
            }),
        })
    }

    /// The frame's type byte.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::InitReq(_) => FrameType::INIT_REQ,
            Frame::InitRes(_) => FrameType::INIT_RES,
            Frame::CallReq(_) => FrameType::CALL_REQ,
            Frame::CallRes(_) => FrameType::CALL_RES,
            Frame::CallReqContinue(_) => FrameType::CALL_REQ_CONTINUE,
            Frame::CallResContinue(_) => FrameType::CALL_RES_CONTINUE,
            Frame::Cancel(_) => FrameType::CANCEL,
            Frame::Claim(_) => FrameType::CLAIM,
            Frame::PingReq(_) => FrameType::PING_REQ,
            Frame::PingRes(_) => FrameType::PING_RES,
            Frame::Error(_) => FrameType::ERROR,
            Frame::Unknown(o) => o.frame_type,
        }
    }

    /// The message id.
    pub fn id(&self) -> u32 {
        match self {
            Frame::InitReq(f) | Frame::InitRes(f) => f.id,
            Frame::CallReq(f) => f.id,
            Frame::CallRes(f) => f.id,
            Frame::CallReqContinue(f) | Frame::CallResContinue(f) => f.id,
            Frame::Cancel(f) => f.id,
            Frame::Claim(f) => f.id,
            Frame::PingReq(f) | Frame::PingRes(f) => f.id,
            Frame::Error(f) => f.id,
            Frame::Unknown(f) => f.id,
        }
    }

    /// Total encoded size, header included.
    pub fn encoded_len(&self) -> usize {
        match self {
            Frame::InitReq(f) | Frame::InitRes(f) => f.encoded_len(),
            Frame::CallReq(f) => f.encoded_len(),
            Frame::CallRes(f) => f.encoded_len(),
            Frame::CallReqContinue(f) | Frame::CallResContinue(f) => f.encoded_len(),
            Frame::Cancel(f) => f.encoded_len(),
            Frame::Claim(f) => f.encoded_len(),
            Frame::PingReq(f) | Frame::PingRes(f) => f.encoded_len(),
            Frame::Error(f) => f.encoded_len(),
            Frame::Unknown(f) => f.encoded_len(),
        }
    }

    /// Appends the encoded frame to `dst`. Fails, writing nothing, when the
    /// frame would be over 65535 bytes or a field is longer than its length
    /// prefix allows.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let size = self.encoded_len();
        if size > MAX_FRAME_SIZE {
            return Err(EncodeError::FrameTooLarge {
                size,
                max: MAX_FRAME_SIZE,
            });
        }
        self.check_field_lengths()?;
        dst.reserve(size);
        FrameHeader {
            size: size as u16,
            frame_type: self.frame_type(),
            id: self.id(),
        }
        .encode(dst);
        match self {
            Frame::InitReq(f) | Frame::InitRes(f) => f.encode_payload(dst),
            Frame::CallReq(f) => f.encode_payload(dst),
            Frame::CallRes(f) => f.encode_payload(dst),
            Frame::CallReqContinue(f) | Frame::CallResContinue(f) => f.encode_payload(dst),
            Frame::Cancel(f) => f.encode_payload(dst),
            Frame::Claim(f) => f.encode_payload(dst),
            Frame::PingReq(f) | Frame::PingRes(f) => f.encode_payload(dst),
            Frame::Error(f) => f.encode_payload(dst),
            Frame::Unknown(f) => dst.put_slice(&f.payload),
        }
        Ok(())
    }

    /// Encodes into a new buffer.
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut b = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut b)?;
        Ok(b.freeze())
    }

    fn check_field_lengths(&self) -> Result<(), EncodeError> {
        let check = |field, len: usize, max: usize| {
            if len > max {
                Err(EncodeError::FieldTooLong { field, len, max })
            } else {
                Ok(())
            }
        };
        let known = |c: &ChecksumField| match c.ty.value_len() {
            Some(_) => Ok(()),
            None => Err(EncodeError::UnknownChecksumType(c.ty.0)),
        };
        match self {
            Frame::CallReq(f) => check("service", f.service.len(), 255).and(known(&f.checksum)),
            Frame::CallRes(f) => known(&f.checksum),
            Frame::Cancel(f) => check("why", f.why.len(), 65535),
            Frame::Error(f) => check("message", f.message.len(), 65535),
            Frame::CallReqContinue(f) | Frame::CallResContinue(f) => known(&f.checksum),
            _ => Ok(()),
        }
    }
}

macro_rules! impl_from {
    ($($variant:ident($ty:ty)),*) => {
        $(impl From<$ty> for Frame {
            fn from(f: $ty) -> Frame { Frame::$variant(f) }
        })*
    };
}
impl_from!(
    CallReq(CallReq),
    CallRes(CallRes),
    Cancel(Cancel),
    Claim(Claim),
    Error(ErrorFrame),
    Unknown(Opaque)
);
