//! The small frames: cancel (0xc0), claim (0xc1), ping (0xd0/0xd1), error
//! (0xff), and the opaque frame that keeps types this crate does not know.

use std::fmt;

use bytes::{BufMut, Bytes};

use super::error::DecodeError;
use super::tracing::{TRACING_LEN, Tracing};
use super::wire::Reader;
use super::{FrameHeader, FrameType, HEADER_LEN};

/// Cancel (0xc0): `ttl:4 tracing:25 why~2`. The id is the cancelled call's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancel {
    /// Id of the call being cancelled.
    pub id: u32,
    /// Time to live in ms (unused by known peers).
    pub ttl: u32,
    /// Tracing of the cancelled call.
    pub tracing: Tracing,
    /// Why the call was cancelled.
    pub why: Bytes,
    /// Bytes after the body, kept for exact re-encoding.
    pub trailing: Bytes,
}

impl Cancel {
    /// Decodes a cancel payload.
    pub fn decode(header: FrameHeader, payload: &Bytes) -> Result<Cancel, DecodeError> {
        let mut r = Reader::new(payload, header.frame_type);
        let ttl = r.u32("ttl")?;
        let tracing = Tracing::read(&mut r)?;
        let why = r.prefixed_u16("why")?;
        Ok(Cancel {
            id: header.id,
            ttl,
            tracing,
            why: r.slice(why),
            trailing: r.rest(),
        })
    }

    /// Total frame size, header included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + 4 + TRACING_LEN + 2 + self.why.len() + self.trailing.len()
    }

    pub(crate) fn encode_payload(&self, dst: &mut impl BufMut) {
        dst.put_u32(self.ttl);
        self.tracing.encode(dst);
        dst.put_u16(self.why.len() as u16);
        dst.put_slice(&self.why);
        dst.put_slice(&self.trailing);
    }
}

/// Claim (0xc1): `ttl:4 tracing:25`. Decoded and re-encoded; tchan gives it no
/// behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Message id.
    pub id: u32,
    /// Time to live in ms.
    pub ttl: u32,
    /// The trace being claimed.
    pub tracing: Tracing,
    /// Bytes after the body, kept for exact re-encoding.
    pub trailing: Bytes,
}

impl Claim {
    /// Decodes a claim payload.
    pub fn decode(header: FrameHeader, payload: &Bytes) -> Result<Claim, DecodeError> {
        let mut r = Reader::new(payload, header.frame_type);
        let ttl = r.u32("ttl")?;
        let tracing = Tracing::read(&mut r)?;
        Ok(Claim {
            id: header.id,
            ttl,
            tracing,
            trailing: r.rest(),
        })
    }

    /// Total frame size, header included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + 4 + TRACING_LEN + self.trailing.len()
    }

    pub(crate) fn encode_payload(&self, dst: &mut impl BufMut) {
        dst.put_u32(self.ttl);
        self.tracing.encode(dst);
        dst.put_slice(&self.trailing);
    }
}

/// Ping req (0xd0) or ping res (0xd1): no body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    /// Message id (a ping res reuses the req's).
    pub id: u32,
    /// Bytes in the (normally empty) body, kept for exact re-encoding.
    pub trailing: Bytes,
}

impl Ping {
    /// A ping with an empty body.
    pub fn new(id: u32) -> Ping {
        Ping {
            id,
            trailing: Bytes::new(),
        }
    }

    /// Decodes a ping payload.
    pub fn decode(header: FrameHeader, payload: &Bytes) -> Result<Ping, DecodeError> {
        Ok(Ping {
            id: header.id,
            trailing: payload.clone(),
        })
    }

    /// Total frame size, header included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.trailing.len()
    }

    pub(crate) fn encode_payload(&self, dst: &mut impl BufMut) {
        dst.put_slice(&self.trailing);
    }
}

/// A system error code, as carried by error frames. Unknown codes are kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub u8);

/// What a caller may do after an error code, per the spec's retry guidance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryMeaning {
    /// Never retry (bad request, cancelled, unhealthy, invalid).
    Never,
    /// Safe to retry on another peer (busy, declined).
    Always,
    /// Retry only when the `re` header allows retrying on timeout (`t`).
    IfTimeoutAllowed,
    /// The call may have run: retry only if it is idempotent.
    IfIdempotent,
    /// A connection-level failure: retry when `re` allows connection errors (`c`).
    IfConnectionErrorAllowed,
}

impl ErrorCode {
    /// 0x00: invalid, never sent.
    pub const INVALID: ErrorCode = ErrorCode(0x00);
    /// 0x01: timeout.
    pub const TIMEOUT: ErrorCode = ErrorCode(0x01);
    /// 0x02: cancelled.
    pub const CANCELLED: ErrorCode = ErrorCode(0x02);
    /// 0x03: busy; retry elsewhere.
    pub const BUSY: ErrorCode = ErrorCode(0x03);
    /// 0x04: declined; retry elsewhere.
    pub const DECLINED: ErrorCode = ErrorCode(0x04);
    /// 0x05: unexpected error; the call may have run.
    pub const UNEXPECTED: ErrorCode = ErrorCode(0x05);
    /// 0x06: bad request; never retry.
    pub const BAD_REQUEST: ErrorCode = ErrorCode(0x06);
    /// 0x07: network error.
    pub const NETWORK: ErrorCode = ErrorCode(0x07);
    /// 0x08: unhealthy; do not retry.
    pub const UNHEALTHY: ErrorCode = ErrorCode(0x08);
    /// 0xff: fatal protocol error; the connection closes after this frame.
    pub const PROTOCOL: ErrorCode = ErrorCode(0xff);

    /// The name used by the CLI (`timeout`, `bad_request`, ...), or `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::INVALID => "invalid",
            ErrorCode::TIMEOUT => "timeout",
            ErrorCode::CANCELLED => "cancelled",
            ErrorCode::BUSY => "busy",
            ErrorCode::DECLINED => "declined",
            ErrorCode::UNEXPECTED => "unexpected",
            ErrorCode::BAD_REQUEST => "bad_request",
            ErrorCode::NETWORK => "network",
            ErrorCode::UNHEALTHY => "unhealthy",
            ErrorCode::PROTOCOL => "protocol",
            _ => "unknown",
        }
    }

    /// The spec's retry guidance for this code.
    pub fn retry_meaning(self) -> RetryMeaning {
        match self {
            ErrorCode::BUSY | ErrorCode::DECLINED => RetryMeaning::Always,
            ErrorCode::TIMEOUT => RetryMeaning::IfTimeoutAllowed,
            ErrorCode::UNEXPECTED => RetryMeaning::IfIdempotent,
            ErrorCode::NETWORK | ErrorCode::PROTOCOL => RetryMeaning::IfConnectionErrorAllowed,
            _ => RetryMeaning::Never,
        }
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErrorCode(0x{:02x} {})", self.0, self.name())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02x})", self.name(), self.0)
    }
}

/// Error (0xff): `code:1 tracing:25 message~2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFrame {
    /// Id of the call this error ends, or [`super::NO_MESSAGE_ID`].
    pub id: u32,
    /// The error code.
    pub code: ErrorCode,
    /// Tracing (the request's, or zeros).
    pub tracing: Tracing,
    /// Human-readable message.
    pub message: Bytes,
    /// Bytes after the body, kept for exact re-encoding.
    pub trailing: Bytes,
}

impl ErrorFrame {
    /// The longest message that fits in one error frame.
    pub const MAX_MESSAGE_LEN: usize = super::MAX_FRAME_SIZE - HEADER_LEN - 1 - TRACING_LEN - 2;

    /// An error frame with the given fields and no trailing bytes. The message
    /// is cut to [`ErrorFrame::MAX_MESSAGE_LEN`] bytes so the frame always fits.
    pub fn new(id: u32, code: ErrorCode, tracing: Tracing, message: impl Into<Bytes>) -> Self {
        let mut message: Bytes = message.into();
        message.truncate(Self::MAX_MESSAGE_LEN);
        ErrorFrame {
            id,
            code,
            tracing,
            message,
            trailing: Bytes::new(),
        }
    }

    /// Decodes an error payload.
    pub fn decode(header: FrameHeader, payload: &Bytes) -> Result<ErrorFrame, DecodeError> {
        let mut r = Reader::new(payload, header.frame_type);
        let code = ErrorCode(r.u8("code")?);
        let tracing = Tracing::read(&mut r)?;
        let message = r.prefixed_u16("message")?;
        Ok(ErrorFrame {
            id: header.id,
            code,
            tracing,
            message: r.slice(message),
            trailing: r.rest(),
        })
    }

    /// Total frame size, header included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + 1 + TRACING_LEN + 2 + self.message.len() + self.trailing.len()
    }

    pub(crate) fn encode_payload(&self, dst: &mut impl BufMut) {
        dst.put_u8(self.code.0);
        self.tracing.encode(dst);
        dst.put_u16(self.message.len() as u16);
        dst.put_slice(&self.message);
        dst.put_slice(&self.trailing);
    }
}

/// A frame of a type this crate does not know, kept byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opaque {
    /// Its type byte.
    pub frame_type: FrameType,
    /// Message id.
    pub id: u32,
    /// The payload, undecoded.
    pub payload: Bytes,
}

impl Opaque {
    /// Total frame size, header included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_their_retry_meaning() {
        // [ERR-4] [ERR-8] the table of codes and what a caller may do after each
        let table = [
            (
                ErrorCode::TIMEOUT,
                0x01,
                "timeout",
                RetryMeaning::IfTimeoutAllowed,
            ),
            (ErrorCode::CANCELLED, 0x02, "cancelled", RetryMeaning::Never),
            (ErrorCode::BUSY, 0x03, "busy", RetryMeaning::Always),
            (ErrorCode::DECLINED, 0x04, "declined", RetryMeaning::Always),
            (
                ErrorCode::UNEXPECTED,
                0x05,
                "unexpected",
                RetryMeaning::IfIdempotent,
            ),
            (
                ErrorCode::BAD_REQUEST,
                0x06,
                "bad_request",
                RetryMeaning::Never,
            ),
            (
                ErrorCode::NETWORK,
                0x07,
                "network",
                RetryMeaning::IfConnectionErrorAllowed,
            ),
            // [DEV-20] unhealthy is decoded and never retried
            (ErrorCode::UNHEALTHY, 0x08, "unhealthy", RetryMeaning::Never),
            (
                ErrorCode::PROTOCOL,
                0xff,
                "protocol",
                RetryMeaning::IfConnectionErrorAllowed,
            ),
        ];
        for (code, byte, name, meaning) in table {
            assert_eq!(code.0, byte);
            assert_eq!(code.name(), name);
            assert_eq!(code.retry_meaning(), meaning, "{name}");
        }
    }

    #[test]
    fn unknown_codes_round_trip_and_are_never_retried() {
        // [ERR-6] a code outside the table (0x00 included) keeps its value
        for byte in [0x00u8, 0x09, 0x42, 0xfe] {
            let f = ErrorFrame::new(7, ErrorCode(byte), Tracing::default(), "x");
            let bytes = super::super::Frame::Error(f.clone()).to_bytes().unwrap();
            assert_eq!(bytes[16], byte);
            let back = super::super::Frame::decode(bytes).unwrap();
            assert_eq!(back, super::super::Frame::Error(f));
            assert_eq!(ErrorCode(byte).retry_meaning(), RetryMeaning::Never);
        }
    }
}
