//! The 16-byte header that starts every frame.

use std::fmt;

use bytes::BufMut;

use super::error::{DecodeError, DecodeErrorKind};

/// Length of the frame header in bytes.
pub const HEADER_LEN: usize = 16;

/// The largest frame the protocol can express: `size` is a u16 that counts the header.
pub const MAX_FRAME_SIZE: usize = u16::MAX as usize;

/// The message id reserved for errors that belong to no call (for example a
/// protocol error before the handshake finished).
pub const NO_MESSAGE_ID: u32 = 0xffff_ffff;

/// A frame's type byte. Unknown values are kept as they are, so a frame of a
/// type this crate does not know still decodes (as [`super::Opaque`]) and re-encodes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameType(pub u8);

impl FrameType {
    /// 0x01: init req, the first frame on every connection.
    pub const INIT_REQ: FrameType = FrameType(0x01);
    /// 0x02: init res, the answer to init req.
    pub const INIT_RES: FrameType = FrameType(0x02);
    /// 0x03: call req, the first frame of a request.
    pub const CALL_REQ: FrameType = FrameType(0x03);
    /// 0x04: call res, the first frame of a response.
    pub const CALL_RES: FrameType = FrameType(0x04);
    /// 0x13: call req continue, a later frame of a request.
    pub const CALL_REQ_CONTINUE: FrameType = FrameType(0x13);
    /// 0x14: call res continue, a later frame of a response.
    pub const CALL_RES_CONTINUE: FrameType = FrameType(0x14);
    /// 0xc0: cancel an outstanding call.
    pub const CANCEL: FrameType = FrameType(0xc0);
    /// 0xc1: claim (speculative execution); decoded, no behaviour.
    pub const CLAIM: FrameType = FrameType(0xc1);
    /// 0xd0: ping req.
    pub const PING_REQ: FrameType = FrameType(0xd0);
    /// 0xd1: ping res.
    pub const PING_RES: FrameType = FrameType(0xd1);
    /// 0xff: error.
    pub const ERROR: FrameType = FrameType(0xff);

    /// A short lowercase name (`"call_req"`), or `"unknown"`.
    pub fn name(self) -> &'static str {
        match self {
            FrameType::INIT_REQ => "init_req",
            FrameType::INIT_RES => "init_res",
            FrameType::CALL_REQ => "call_req",
            FrameType::CALL_RES => "call_res",
            FrameType::CALL_REQ_CONTINUE => "call_req_continue",
            FrameType::CALL_RES_CONTINUE => "call_res_continue",
            FrameType::CANCEL => "cancel",
            FrameType::CLAIM => "claim",
            FrameType::PING_REQ => "ping_req",
            FrameType::PING_RES => "ping_res",
            FrameType::ERROR => "error",
            _ => "unknown",
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:02x}", self.0)
    }
}

impl fmt::Debug for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FrameType(0x{:02x} {})", self.0, self.name())
    }
}

/// The fields of the 16-byte frame header that carry meaning.
///
/// Layout: `size:2 type:1 reserved:1 id:4 reserved:8`. The reserved bytes are
/// ignored when read and written as zero, so they are not kept here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Total frame length, header included.
    pub size: u16,
    /// The frame type.
    pub frame_type: FrameType,
    /// The message id.
    pub id: u32,
}

impl FrameHeader {
    /// Reads a header from the first 16 bytes of `buf`, checking that
    /// `16 <= size <= max_frame_size`. Returns `Ok(None)` when fewer than 16
    /// bytes are available.
    pub fn parse(buf: &[u8], max_frame_size: usize) -> Result<Option<FrameHeader>, DecodeError> {
        let Some(&[hi, lo]) = buf.get(..2).and_then(|b| <&[u8; 2]>::try_from(b).ok()) else {
            return Ok(None);
        };
        let size = u16::from_be_bytes([hi, lo]);
        let frame_type = FrameType(buf.get(2).copied().unwrap_or(0));
        // [FRAME-4] a bad size is reported as soon as its two bytes are there
        // (without the type, which may not have arrived: the error must not
        // depend on how the bytes were cut into reads).
        let known = None;
        if usize::from(size) < HEADER_LEN {
            return Err(DecodeError::new(
                known,
                "size",
                0,
                DecodeErrorKind::SizeTooSmall { size },
            ));
        }
        if usize::from(size) > max_frame_size {
            return Err(DecodeError::new(
                known,
                "size",
                0,
                DecodeErrorKind::SizeTooLarge {
                    size,
                    max: max_frame_size,
                },
            ));
        }
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let id = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        Ok(Some(FrameHeader {
            size,
            frame_type,
            id,
        }))
    }

    /// Writes the 16 header bytes, reserved bytes as zero.
    pub fn encode(&self, dst: &mut impl BufMut) {
        dst.put_u16(self.size);
        dst.put_u8(self.frame_type.0);
        dst.put_u8(0);
        dst.put_u32(self.id);
        dst.put_u64(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_fields_and_ignores_reserved() {
        // [FRAME-1] layout: size:2 type:1 reserved:1 id:4 reserved:8
        let bytes = [
            0x00, 0x78, // size = 120
            0x03, // type = call req
            0xaa, // reserved (ignored)
            0x00, 0x00, 0x00, 0x02, // id = 2
            1, 2, 3, 4, 5, 6, 7, 8, // reserved (ignored)
        ];
        let h = FrameHeader::parse(&bytes, MAX_FRAME_SIZE).unwrap().unwrap();
        assert_eq!(h.size, 120);
        assert_eq!(h.frame_type, FrameType::CALL_REQ);
        assert_eq!(h.id, 2);
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(&out[..8], &[0x00, 0x78, 0x03, 0x00, 0, 0, 0, 2]);
        assert_eq!(&out[8..], &[0u8; 8]);
    }

    #[test]
    fn rejects_sizes_outside_the_limits() {
        let mut bytes = [0u8; 16];
        bytes[1] = 15;
        let e = FrameHeader::parse(&bytes, MAX_FRAME_SIZE).unwrap_err();
        assert_eq!(e.kind(), DecodeErrorKind::SizeTooSmall { size: 15 });
        bytes[0] = 0x10;
        bytes[1] = 0x01;
        let e = FrameHeader::parse(&bytes, 4096).unwrap_err();
        assert_eq!(
            e.kind(),
            DecodeErrorKind::SizeTooLarge {
                size: 0x1001,
                max: 4096
            }
        );
        // [FRAME-4] the size is judged from its two bytes alone.
        assert!(FrameHeader::parse(&bytes[..2], 4096).is_err());
        bytes[0] = 0;
        bytes[1] = 40;
        assert_eq!(FrameHeader::parse(&bytes[..15], 4096).unwrap(), None);
        assert_eq!(FrameHeader::parse(&bytes[..1], 4096).unwrap(), None);
    }
}
