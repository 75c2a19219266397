//! Errors of the pure codec: what was wrong, in which field, at which byte.

use std::fmt;

use super::FrameType;

/// Why a frame could not be decoded.
///
/// Every variant is about the bytes of one frame. The offset in [`DecodeError`]
/// says where, counted from the first byte of the frame's 16-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The frame's `size` field is under 16, the size of the header alone.
    SizeTooSmall {
        /// The size the header claims.
        size: u16,
    },
    /// The frame's `size` field is over the configured maximum frame size.
    SizeTooLarge {
        /// The size the header claims.
        size: u16,
        /// The configured maximum.
        max: usize,
    },
    /// The buffer handed to the decoder is not exactly `size` bytes long.
    SizeMismatch {
        /// The size the header claims.
        size: u16,
        /// The number of bytes actually given.
        actual: usize,
    },
    /// A field (or the value a length prefix announced) runs past the end of the frame.
    Truncated {
        /// How many bytes the field needed.
        needed: usize,
        /// How many bytes were left in the frame.
        remaining: usize,
    },
    /// The checksum type is not one of 0x00..=0x03, so the length of the
    /// checksum field, and everything after it, is unknown.
    UnknownChecksumType(u8),
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeErrorKind::SizeTooSmall { size } => {
                write!(f, "frame size {size} is under the 16-byte header")
            }
            DecodeErrorKind::SizeTooLarge { size, max } => {
                write!(f, "frame size {size} is over the maximum of {max}")
            }
            DecodeErrorKind::SizeMismatch { size, actual } => {
                write!(
                    f,
                    "frame size field says {size} but {actual} bytes were given"
                )
            }
            DecodeErrorKind::Truncated { needed, remaining } => write!(
                f,
                "needs {needed} bytes but only {remaining} remain in the frame"
            ),
            DecodeErrorKind::UnknownChecksumType(t) => {
                write!(f, "unknown checksum type 0x{t:02x}")
            }
        }
    }
}

/// A frame that could not be decoded: what was wrong, in which field, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    frame_type: Option<FrameType>,
    field: &'static str,
    offset: usize,
    kind: DecodeErrorKind,
}

impl DecodeError {
    pub(crate) fn new(
        frame_type: Option<FrameType>,
        field: &'static str,
        offset: usize,
        kind: DecodeErrorKind,
    ) -> Self {
        DecodeError {
            frame_type,
            field,
            offset,
            kind,
        }
    }

    /// The type of the frame, when the header could be read.
    pub fn frame_type(&self) -> Option<FrameType> {
        self.frame_type
    }

    /// The name of the field that was being read (for example `"arg chunk"`).
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Byte offset of the field, counted from the start of the frame header.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// What was wrong.
    pub fn kind(&self) -> DecodeErrorKind {
        self.kind
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.kind)?;
        write!(f, " (at byte {} of the frame", self.offset)?;
        if let Some(t) = self.frame_type {
            write!(f, ", type {t}")?;
        }
        write!(f, ")")
    }
}

impl std::error::Error for DecodeError {}

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The frame would be larger than the maximum frame size.
    #[error("frame of {size} bytes is over the maximum of {max}")]
    FrameTooLarge {
        /// The size the frame would have.
        size: usize,
        /// The maximum allowed.
        max: usize,
    },
    /// A length-prefixed field is longer than its prefix can express.
    #[error("{field} is {len} bytes, over its limit of {max}")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The most its length prefix (or the spec) allows.
        max: usize,
    },
    /// A set of transport headers breaks a rule of the spec.
    #[error("transport headers: {0}")]
    BadHeader(#[from] super::HeaderViolation),
    /// A call request may never carry a ttl of 0.
    #[error("a call request may not be sent with a ttl of 0")]
    ZeroTtl,
    /// The fields that must sit in the first frame do not fit there.
    #[error("the call's fixed fields ({size} bytes) do not fit in a frame of {max}")]
    HeadTooLarge {
        /// Bytes the first frame needs before any argument data.
        size: usize,
        /// The maximum frame size.
        max: usize,
    },
    /// The checksum type is not one tchan can compute.
    #[error("cannot compute checksum type 0x{0:02x}")]
    UnknownChecksumType(u8),
    /// A write came after the message's last argument was finished.
    #[error("the message is already complete")]
    MessageComplete,
}
