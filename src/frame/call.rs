//! Call frames: call req (0x03), call res (0x04) and their continuations
//! (0x13, 0x14).
//!
//! ```text
//! call req:          flags:1 ttl:4 tracing:25 service~1 nh:1 (hk~1 hv~1){nh} csumtype:1 (csum:4){0,1} (arg~2)*
//! call res:          flags:1 code:1 tracing:25          nh:1 (hk~1 hv~1){nh} csumtype:1 (csum:4){0,1} (arg~2)*
//! call req/res cont: flags:1                                                 csumtype:1 (csum:4){0,1} (arg~2)*
//! ```

use std::fmt;

use bytes::{BufMut, Bytes};

use super::args::{ArgChunks, ChecksumField};
use super::error::DecodeError;
use super::headers::TransportHeaders;
use super::tracing::{TRACING_LEN, Tracing};
use super::wire::Reader;
use super::{FrameHeader, FrameType, HEADER_LEN};

/// The flags byte of a call frame.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags(pub u8);

impl Flags {
    /// 0x01: more frames of this message follow.
    pub const MORE_FRAGMENTS: u8 = 0x01;
    /// 0x02: streaming request (defined by the spec, used by no known peer).
    pub const STREAMING: u8 = 0x02;

    /// True when more frames of this message follow.
    pub fn more_fragments(self) -> bool {
        self.0 & Self::MORE_FRAGMENTS != 0
    }

    /// True when the streaming bit is set.
    pub fn streaming(self) -> bool {
        self.0 & Self::STREAMING != 0
    }

    /// Bits the spec does not define.
    pub fn unknown_bits(self) -> u8 {
        self.0 & !(Self::MORE_FRAGMENTS | Self::STREAMING)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flags(0x{:02x})", self.0)
    }
}

/// The code of a call res: 0x00 ok, anything else not ok (0x01 is the usual
/// application error).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseCode(pub u8);

impl ResponseCode {
    /// 0x00: success.
    pub const OK: ResponseCode = ResponseCode(0x00);
    /// 0x01: application error; the args describe it.
    pub const ERROR: ResponseCode = ResponseCode(0x01);

    /// True for 0x00.
    pub fn is_ok(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponseCode(0x{:02x})", self.0)
    }
}

/// Call req (0x03): the first frame of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallReq {
    /// Message id.
    pub id: u32,
    /// Flags (0x01 more fragments, 0x02 streaming).
    pub flags: Flags,
    /// Time to live in milliseconds.
    pub ttl: u32,
    /// Tracing: span, parent and trace ids and flags (`tracing:25`).
    pub tracing: Tracing,
    /// Destination service (`service~1`).
    pub service: Bytes,
    /// Transport headers.
    pub headers: TransportHeaders,
    /// Checksum type and value.
    pub checksum: ChecksumField,
    /// Arg chunks in this frame.
    pub args: ArgChunks,
}

/// Call res (0x04): the first frame of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRes {
    /// Message id (the request's).
    pub id: u32,
    /// Flags (0x01 more fragments).
    pub flags: Flags,
    /// Response code.
    pub code: ResponseCode,
    /// Tracing: span, parent and trace ids and flags (`tracing:25`).
    pub tracing: Tracing,
    /// Transport headers.
    pub headers: TransportHeaders,
    /// Checksum type and value.
    pub checksum: ChecksumField,
    /// Arg chunks in this frame.
    pub args: ArgChunks,
}

/// Call req continue (0x13) or call res continue (0x14): a later frame of a
/// message. The [`super::Frame`] variant says which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallContinue {
    /// Message id.
    pub id: u32,
    /// Flags (0x01 more fragments).
    pub flags: Flags,
    /// Checksum type and value.
    pub checksum: ChecksumField,
    /// Arg chunks in this frame.
    pub args: ArgChunks,
}

// ===== impl CallReq =====

/// Lifts `part`, a sub-slice of `payload`, into a `Bytes` sharing its buffer.
#[inline]
fn lift(payload: &Bytes, part: &[u8]) -> Bytes {
    if part.is_empty() {
        Bytes::new()
    } else {
        payload.slice_ref(part)
    }
}

/// The checksum field and the arg chunks that end every call frame, read in
/// one pass over the raw bytes.
#[inline]
fn scan_tail(payload: &Bytes, rest: &[u8]) -> Option<(ChecksumField, ArgChunks)> {
    let (checksum, args) = ChecksumField::scan(rest)?;
    let count = ArgChunks::scan(args)?;
    Some((
        checksum,
        ArgChunks::from_scanned(lift(payload, args), count),
    ))
}

impl CallReq {
    /// Decodes the payload of a call req frame.
    pub fn decode(header: FrameHeader, payload: &Bytes) -> Result<CallReq, DecodeError> {
        match Self::scan(header.id, payload) {
            Some(f) => Ok(f),
            None => Self::read(header, payload),
        }
    }

    /// The fast path: every field over the raw bytes, `None` on anything
    /// that does not fit (then [`CallReq::read`] names it).
    #[inline]
    fn scan(id: u32, payload: &Bytes) -> Option<CallReq> {
        let (&flags, rest) = payload.split_first()?;
        let (ttl, rest) = rest.split_first_chunk::<4>()?;
        let (tracing, rest) = rest.split_first_chunk::<TRACING_LEN>()?;
        let (&n, rest) = rest.split_first()?;
        let (service, rest) = rest.split_at_checked(usize::from(n))?;
        let (count, headers, rest) = TransportHeaders::scan(rest)?;
        let (checksum, args) = scan_tail(payload, rest)?;
        Some(CallReq {
            id,
            flags: Flags(flags),
            ttl: u32::from_be_bytes(*ttl),
            tracing: Tracing::from_wire(tracing),
            service: lift(payload, service),
            headers: TransportHeaders::from_scanned(lift(payload, headers), count),
            checksum,
            args,
        })
    }

    /// Field by field, naming the field that does not fit.
    #[cold]
    fn read(header: FrameHeader, payload: &Bytes) -> Result<CallReq, DecodeError> {
        let mut r = Reader::new(payload, header.frame_type);
        let flags = Flags(r.u8("flags")?);
        let ttl = r.u32("ttl")?;
        let tracing = Tracing::read(&mut r)?;
        let service = r.prefixed_u8("service")?;
        let service = r.slice(service);
        let headers = TransportHeaders::read(&mut r)?;
        let checksum = ChecksumField::read(&mut r)?;
        let args = ArgChunks::read(&mut r)?;
        Ok(CallReq {
            id: header.id,
            flags,
            ttl,
            tracing,
            service,
            headers,
            checksum,
            args,
        })
    }

    /// Bytes before the checksum field in the payload.
    pub(crate) fn head_len(service_len: usize, headers: &TransportHeaders) -> usize {
        1 + 4 + TRACING_LEN + 1 + service_len + headers.encoded_len()
    }

    /// Total frame size, header included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            + Self::head_len(self.service.len(), &self.headers)
            + self.checksum.encoded_len()
            + self.args.encoded_len()
    }

    pub(crate) fn encode_payload(&self, dst: &mut impl BufMut) {
        dst.put_u8(self.flags.0);
        dst.put_u32(self.ttl);
        self.tracing.encode(dst);
        dst.put_u8(self.service.len() as u8);
        dst.put_slice(&self.service);
        self.headers.encode(dst);
        self.checksum.encode(dst);
        self.args.encode(dst);
    }
}

// ===== impl CallRes =====

impl CallRes {
    /// Decodes the payload of a call res frame.
    pub fn decode(header: FrameHeader, payload: &Bytes) -> Result<CallRes, DecodeError> {
        match Self::scan(header.id, payload) {
            Some(f) => Ok(f),
            None => Self::read(header, payload),
        }
    }

    #[inline]
    fn scan(id: u32, payload: &Bytes) -> Option<CallRes> {
        let (&[flags, code], rest) = payload.split_first_chunk::<2>()?;
        let (tracing, rest) = rest.split_first_chunk::<TRACING_LEN>()?;
        let (count, headers, rest) = TransportHeaders::scan(rest)?;
        let (checksum, args) = scan_tail(payload, rest)?;
        Some(CallRes {
            id,
            flags: Flags(flags),
            code: ResponseCode(code),
            tracing: Tracing::from_wire(tracing),
            headers: TransportHeaders::from_scanned(lift(payload, headers), count),
            checksum,
            args,
        })
    }

    #[cold]
    fn read(header: FrameHeader, payload: &Bytes) -> Result<CallRes, DecodeError> {
        let mut r = Reader::new(payload, header.frame_type);
        let flags = Flags(r.u8("flags")?);
        let code = ResponseCode(r.u8("code")?);
        let tracing = Tracing::read(&mut r)?;
        let headers = TransportHeaders::read(&mut r)?;
        let checksum = ChecksumField::read(&mut r)?;
        let args = ArgChunks::read(&mut r)?;
        Ok(CallRes {
            id: header.id,
            flags,
            code,
            tracing,
            headers,
            checksum,
            args,
        })
    }

    pub(crate) fn head_len(headers: &TransportHeaders) -> usize {
        1 + 1 + TRACING_LEN + headers.encoded_len()
    }

    /// Total frame size, header included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            + Self::head_len(&self.headers)
            + self.checksum.encoded_len()
            + self.args.encoded_len()
    }

    pub(crate) fn encode_payload(&self, dst: &mut impl BufMut) {
        dst.put_u8(self.flags.0);
        dst.put_u8(self.code.0);
        self.tracing.encode(dst);
        self.headers.encode(dst);
        self.checksum.encode(dst);
        self.args.encode(dst);
    }
}

// ===== impl CallContinue =====

impl CallContinue {
    /// Decodes the payload of a call req continue or call res continue frame.
    pub fn decode(header: FrameHeader, payload: &Bytes) -> Result<CallContinue, DecodeError> {
        let scanned = payload.split_first().and_then(|(&flags, rest)| {
            let (checksum, args) = scan_tail(payload, rest)?;
            Some(CallContinue {
                id: header.id,
                flags: Flags(flags),
                checksum,
                args,
            })
        });
        match scanned {
            Some(f) => Ok(f),
            None => Self::read(header, payload),
        }
    }

    #[cold]
    fn read(header: FrameHeader, payload: &Bytes) -> Result<CallContinue, DecodeError> {
        let mut r = Reader::new(payload, header.frame_type);
        let flags = Flags(r.u8("flags")?);
        let checksum = ChecksumField::read(&mut r)?;
        let args = ArgChunks::read(&mut r)?;
        Ok(CallContinue {
            id: header.id,
            flags,
            checksum,
            args,
        })
    }

    /// Total frame size, header included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + 1 + self.checksum.encoded_len() + self.args.encoded_len()
    }

    pub(crate) fn encode_payload(&self, dst: &mut impl BufMut) {
        dst.put_u8(self.flags.0);
        self.checksum.encode(dst);
        self.args.encode(dst);
    }
}

/// A borrowed view of any call frame, as the reassembler needs it.
#[derive(Debug, Clone, Copy)]
pub struct CallFragment<'a> {
    /// True for call req / call res, false for a continuation.
    pub first: bool,
    /// The frame's flags: more fragments follow, streaming.
    pub flags: Flags,
    /// Checksum field.
    pub checksum: ChecksumField,
    /// Transport headers (first frames only).
    pub headers: Option<&'a TransportHeaders>,
    /// The frame's pieces of args, in order.
    pub args: &'a ArgChunks,
}

impl<'a> From<&'a CallReq> for CallFragment<'a> {
    fn from(f: &'a CallReq) -> Self {
        CallFragment {
            first: true,
            flags: f.flags,
            checksum: f.checksum,
            headers: Some(&f.headers),
            args: &f.args,
        }
    }
}

impl<'a> From<&'a CallRes> for CallFragment<'a> {
    fn from(f: &'a CallRes) -> Self {
        CallFragment {
            first: true,
            flags: f.flags,
            checksum: f.checksum,
            headers: Some(&f.headers),
            args: &f.args,
        }
    }
}

impl<'a> From<&'a CallContinue> for CallFragment<'a> {
    fn from(f: &'a CallContinue) -> Self {
        CallFragment {
            first: false,
            flags: f.flags,
            checksum: f.checksum,
            headers: None,
            args: &f.args,
        }
    }
}

/// Which frame type a `CallContinue` is, for encoding.
pub(crate) fn continue_type(request: bool) -> FrameType {
    if request {
        FrameType::CALL_REQ_CONTINUE
    } else {
        FrameType::CALL_RES_CONTINUE
    }
}

/// A call req or call res that is a whole message: flags 0 and exactly
/// three arg chunks, read in one pass over the raw bytes. Its fields are
/// slices of the payload; nothing is checked beyond the layout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WholeCall<'a> {
    /// The ttl of a call req (0 for a call res).
    pub(crate) ttl: u32,
    /// The code of a call res (0 for a call req).
    pub(crate) code: u8,
    pub(crate) tracing: Tracing,
    /// The service of a call req (empty for a call res).
    pub(crate) service: &'a [u8],
    pub(crate) header_count: usize,
    /// The header pairs, without the count.
    pub(crate) headers: &'a [u8],
    pub(crate) checksum: ChecksumField,
    pub(crate) args: [&'a [u8]; 3],
}

impl<'a> WholeCall<'a> {
    /// Reads the payload of a call req (`request`) or call res frame, or
    /// `None` when it is not a whole message or does not parse.
    #[inline(always)]
    pub(crate) fn scan(request: bool, payload: &'a [u8]) -> Option<WholeCall<'a>> {
        let (ttl, code, rest) = if request {
            let (&[flags, a, b, c, d], rest) = payload.split_first_chunk::<5>()?;
            if flags != 0 {
                return None;
            }
            (u32::from_be_bytes([a, b, c, d]), 0, rest)
        } else {
            let (&[flags, code], rest) = payload.split_first_chunk::<2>()?;
            if flags != 0 {
                return None;
            }
            (0, code, rest)
        };
        let (tracing, rest) = rest.split_first_chunk::<TRACING_LEN>()?;
        let (service, rest) = if request {
            let (&n, rest) = rest.split_first()?;
            rest.split_at_checked(usize::from(n))?
        } else {
            (&[][..], rest)
        };
        let (header_count, headers, rest) = TransportHeaders::scan(rest)?;
        let (checksum, rest) = ChecksumField::scan(rest)?;
        let mut args: [&[u8]; 3] = [&[]; 3];
        let mut rest = rest;
        for a in &mut args {
            let (len, body) = rest.split_first_chunk::<2>()?;
            let (arg, tail) = body.split_at_checked(usize::from(u16::from_be_bytes(*len)))?;
            *a = arg;
            rest = tail;
        }
        if !rest.is_empty() {
            return None;
        }
        Some(WholeCall {
            ttl,
            code,
            tracing: Tracing::from_wire(tracing),
            service,
            header_count,
            headers,
            checksum,
            args,
        })
    }
}
