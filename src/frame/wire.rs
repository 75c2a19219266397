//! The only place that speaks `nom`: a bounds-checked cursor over one frame.
//!
//! Parsers elsewhere in `frame/` read fields through [`Reader`], which turns every
//! nom failure into a [`DecodeError`] naming the field and its offset, and hands out
//! sub-slices as positions so callers can lift them into `Bytes` without copying.

use std::ops::Range;

use bytes::Bytes;
use nom::IResult;
use nom::Parser;
use nom::bytes::complete::take;
use nom::number::complete::{be_u8, be_u16, be_u32};

use super::error::{DecodeError, DecodeErrorKind};
use super::{FrameType, HEADER_LEN};

type NomErr<'a> = nom::error::Error<&'a [u8]>;

/// A cursor over a frame payload. Offsets in errors are counted from the start
/// of the frame, header included.
pub(crate) struct Reader<'a> {
    payload: &'a Bytes,
    pos: usize,
    frame_type: FrameType,
    base: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    pub(crate) fn new(payload: &'a Bytes, frame_type: FrameType) -> Self {
        Reader {
            payload,
            pos: 0,
            frame_type,
            base: HEADER_LEN,
        }
    }

    /// A reader over a buffer that is not a frame payload: offsets count from 0.
    #[inline]
    pub(crate) fn detached(payload: &'a Bytes) -> Self {
        Reader {
            payload,
            pos: 0,
            frame_type: FrameType(0),
            base: 0,
        }
    }

    /// Bytes not yet read.
    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.payload.len() - self.pos
    }

    #[inline]
    pub(crate) fn error(&self, field: &'static str, kind: DecodeErrorKind) -> DecodeError {
        self.error_at(self.pos, field, kind)
    }

    #[inline]
    pub(crate) fn error_at(
        &self,
        pos: usize,
        field: &'static str,
        kind: DecodeErrorKind,
    ) -> DecodeError {
        DecodeError::new(
            (self.base == HEADER_LEN).then_some(self.frame_type),
            field,
            self.base + pos,
            kind,
        )
    }

    #[inline]
    fn run<T>(
        &mut self,
        field: &'static str,
        needed: usize,
        mut parser: impl Parser<&'a [u8], Output = T, Error = NomErr<'a>>,
    ) -> Result<T, DecodeError> {
        let input: &'a [u8] = &self.payload[self.pos..];
        let res: IResult<&'a [u8], T, NomErr<'a>> = parser.parse(input);
        match res {
            Ok((rest, v)) => {
                self.pos += input.len() - rest.len();
                Ok(v)
            }
            Err(_) => Err(self.error(
                field,
                DecodeErrorKind::Truncated {
                    needed,
                    remaining: input.len(),
                },
            )),
        }
    }

    #[inline]
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.run(field, 1, be_u8)
    }

    #[inline]
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.run(field, 2, be_u16)
    }

    #[inline]
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.run(field, 4, be_u32)
    }

    /// Reads `N` bytes as an array.
    #[inline]
    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let range = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.payload[range]);
        Ok(out)
    }

    /// Skips `n` bytes and returns their position in the payload.
    #[inline]
    pub(crate) fn take(
        &mut self,
        n: usize,
        field: &'static str,
    ) -> Result<Range<usize>, DecodeError> {
        let start = self.pos;
        self.run(field, n, take(n))?;
        Ok(start..self.pos)
    }

    /// Reads an `x~1` field (one length byte, then that many bytes).
    #[inline]
    pub(crate) fn prefixed_u8(&mut self, field: &'static str) -> Result<Range<usize>, DecodeError> {
        let start = self.pos;
        let n = self.u8(field)?;
        self.take(usize::from(n), field)
            .map_err(|e| self.at(start, e))
    }

    /// Moves an error's offset to `pos` (the start of a length-prefixed field).
    #[cold]
    fn at(&self, pos: usize, e: DecodeError) -> DecodeError {
        DecodeError::new(e.frame_type(), e.field(), self.base + pos, e.kind())
    }

    /// Reads an `x~2` field (a big-endian u16 length, then that many bytes).
    #[inline]
    pub(crate) fn prefixed_u16(
        &mut self,
        field: &'static str,
    ) -> Result<Range<usize>, DecodeError> {
        let start = self.pos;
        let n = self.u16(field)?;
        self.take(usize::from(n), field)
            .map_err(|e| self.at(start, e))
    }

    /// Lifts a position into a `Bytes` that shares the payload's allocation.
    #[inline]
    pub(crate) fn slice(&self, range: Range<usize>) -> Bytes {
        self.payload.slice(range)
    }

    /// Everything not yet read, as a shared slice; the cursor moves to the end.
    #[inline]
    pub(crate) fn rest(&mut self) -> Bytes {
        let b = self.payload.slice(self.pos..);
        self.pos = self.payload.len();
        b
    }

    /// Everything not yet read, as a slice (the cursor does not move).
    #[inline]
    pub(crate) fn rest_slice(&self) -> &'a [u8] {
        let payload: &'a Bytes = self.payload;
        &payload[self.pos..]
    }

    /// Current offset within the payload.
    #[inline]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }
}
