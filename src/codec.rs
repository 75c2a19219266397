//! tokio-util glue: a [`Decoder`]/[`Encoder`] for TChannel frames.
//!
//! The decoder reads the 16-byte header, checks `16 <= size <= max`, waits
//! until the whole frame is buffered, then splits it off the read buffer with
//! `split_to(size).freeze()`: the frame's bytes are never copied, and the
//! decoded fields are slices of them.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::{DecodeError, EncodeError, Frame, FrameHeader, HEADER_LEN, MAX_FRAME_SIZE};

/// Errors of the frame codec. Any of them means the stream is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Reading or writing the transport failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A frame could not be decoded.
    #[error("decode: {0}")]
    Decode(#[from] DecodeError),
    /// A frame could not be encoded.
    #[error("encode: {0}")]
    Encode(#[from] EncodeError),
}

/// Splits a byte stream into [`Frame`]s and writes frames back.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_frame_size: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec {
            max_frame_size: MAX_FRAME_SIZE,
        }
    }
}

impl FrameCodec {
    /// A codec that accepts frames up to 65535 bytes.
    pub fn new() -> FrameCodec {
        FrameCodec::default()
    }

    /// A codec that rejects frames over `max` bytes (capped at 65535, at least 16).
    pub fn with_max_frame_size(max: usize) -> FrameCodec {
        FrameCodec {
            max_frame_size: max.clamp(HEADER_LEN, MAX_FRAME_SIZE),
        }
    }

    /// The largest frame accepted.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }
}

impl FrameCodec {
    /// Splits the next whole frame off `src` without decoding its payload:
    /// its header, and the payload as a slice of the read buffer (no copy).
    /// `Ok(None)` means more bytes are needed.
    pub fn split_frame(
        &mut self,
        src: &mut BytesMut,
    ) -> Result<Option<(FrameHeader, Bytes)>, DecodeError> {
        let Some(header) = FrameHeader::parse(src, self.max_frame_size)? else {
            return Ok(None);
        };
        let size = usize::from(header.size);
        if src.len() < size {
            return Ok(None);
        }
        let mut frame = src.split_to(size).freeze();
        frame.advance(HEADER_LEN);
        Ok(Some((header, frame)))
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let Some(header) = FrameHeader::parse(src, self.max_frame_size)? else {
            src.reserve(HEADER_LEN);
            return Ok(None);
        };
        let size = usize::from(header.size);
        if src.len() < size {
            src.reserve(size - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(size);
        frame.advance(HEADER_LEN);
        Ok(Some(Frame::decode_payload(header, frame.freeze())?))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode(&item, dst)
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        let size = item.encoded_len();
        if size > self.max_frame_size {
            return Err(EncodeError::FrameTooLarge {
                size,
                max: self.max_frame_size,
            }
            .into());
        }
        item.encode(dst)?;
        Ok(())
    }
}
