//! Helpers shared by the fuzz targets in `fuzz_targets/`.

use bytes::BytesMut;
use tchan::codec::{CodecError, FrameCodec};
use tchan::frame::{CallFragment, DecodeError, Frame, HEADER_LEN};
use tokio_util::codec::Decoder;

/// `frame` with the reserved header bytes (offset 3 and 8..16) set to zero:
/// what `decode` then `encode` must give back.
pub fn zero_reserved(frame: &[u8]) -> Vec<u8> {
    let mut v = frame.to_vec();
    if v.len() >= HEADER_LEN {
        v[3] = 0;
        v[8..HEADER_LEN].fill(0);
    }
    v
}

/// `len` bytes made by repeating `pattern` (or a counter when it is empty).
pub fn repeat_fill(pattern: &[u8], len: usize) -> Vec<u8> {
    if pattern.is_empty() {
        return (0..len).map(|i| i as u8).collect();
    }
    pattern.iter().copied().cycle().take(len).collect()
}

/// The call fragment view of a call frame.
pub fn call_fragment(frame: &Frame) -> Option<CallFragment<'_>> {
    Some(match frame {
        Frame::CallReq(f) => f.into(),
        Frame::CallRes(f) => f.into(),
        Frame::CallReqContinue(f) | Frame::CallResContinue(f) => f.into(),
        _ => return None,
    })
}

/// What a decoder made of a stream.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    /// Frames decoded before the stream ended or failed.
    pub frames: Vec<Frame>,
    /// The error, if decoding failed.
    pub error: Option<DecodeError>,
    /// Bytes left in the read buffer (only compared when there was no error).
    pub rest: Vec<u8>,
}

/// Feeds `chunks` one by one into a read buffer and decodes after each until
/// the codec wants more bytes (`Ok(None)`) or fails. Stops at the first error.
pub fn decode_chunks<'a>(
    codec: &mut FrameCodec,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Outcome {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(CodecError::Decode(e)) => {
                    return Outcome {
                        frames,
                        error: Some(e),
                        rest: Vec::new(),
                    };
                }
                Err(e) => panic!("decoding a buffer gave a non-decode error: {e}"),
            }
        }
    }
    Outcome {
        frames,
        error: None,
        rest: buf.to_vec(),
    }
}
