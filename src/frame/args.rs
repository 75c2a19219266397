//! Argument chunks: the `(len:2 bytes:len)*` run that ends every call frame.

use std::fmt;

use bytes::{BufMut, Bytes};

use super::checksum::ChecksumType;
use super::error::{DecodeError, DecodeErrorKind};
use super::wire::Reader;

/// The checksum field of a call frame: `csumtype:1 (csum:4){0,1}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChecksumField {
    /// The checksum type.
    pub ty: ChecksumType,
    /// The value (0 and absent on the wire for [`ChecksumType::NONE`]).
    pub value: u32,
}

impl ChecksumField {
    /// No checksum.
    pub const NONE: ChecksumField = ChecksumField {
        ty: ChecksumType::NONE,
        value: 0,
    };

    /// Fast path of [`ChecksumField::read`]: the field and what follows, or
    /// `None` (unknown type, or too short).
    #[inline]
    pub(crate) fn scan(buf: &[u8]) -> Option<(ChecksumField, &[u8])> {
        let (&ty, rest) = buf.split_first()?;
        let ty = ChecksumType(ty);
        match ty.value_len()? {
            0 => Some((ChecksumField { ty, value: 0 }, rest)),
            _ => {
                let (v, rest) = rest.split_first_chunk::<4>()?;
                Some((
                    ChecksumField {
                        ty,
                        value: u32::from_be_bytes(*v),
                    },
                    rest,
                ))
            }
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.pos();
        let ty = ChecksumType(r.u8("csumtype")?);
        let value = match ty.value_len() {
            Some(0) => 0,
            Some(_) => r.u32("csum")?,
            None => {
                return Err(r.error_at(at, "csumtype", DecodeErrorKind::UnknownChecksumType(ty.0)));
            }
        };
        Ok(ChecksumField { ty, value })
    }

    /// Bytes on the wire.
    pub fn encoded_len(&self) -> usize {
        1 + self.ty.value_len().unwrap_or(4)
    }

    /// Writes the type and, unless it is none, the value.
    pub fn encode(&self, dst: &mut impl BufMut) {
        dst.put_u8(self.ty.0);
        if self.ty != ChecksumType::NONE {
            dst.put_u32(self.value);
        }
    }
}

/// The argument chunks of one call frame, kept as the bytes they arrived in.
///
/// Each chunk is `len:2` then `len` bytes of one argument. Which argument a
/// chunk belongs to depends on the frames before it (spec/05-fragmentation.md);
/// this type only knows the order.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ArgChunks {
    raw: Bytes,
    count: usize,
}

impl ArgChunks {
    /// Reads chunks until the end of the frame. A chunk that runs past the end,
    /// or a single stray byte that cannot hold a length, is an error.
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let start = r.pos();
        let mut count = 0;
        // Fast path: walk the chunks over the raw bytes; on a chunk that does
        // not fit, the field-by-field reader below names it and its offset.
        let mut rest = r.rest_slice();
        while let Some((len, body)) = rest.split_at_checked(2) {
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            let Some((_, tail)) = body.split_at_checked(len) else {
                break;
            };
            rest = tail;
            count += 1;
        }
        let used = r.remaining() - rest.len();
        r.take(used, "arg chunk")?;
        while r.remaining() > 0 {
            let field = if r.remaining() == 1 {
                "arg chunk length"
            } else {
                "arg chunk"
            };
            r.prefixed_u16(field)?;
            count += 1;
        }
        let end = r.pos();
        Ok(ArgChunks {
            raw: r.slice(start..end),
            count,
        })
    }

    /// Fast path of [`ArgChunks::read`]: counts the chunks of `buf` (the rest
    /// of a frame), or `None` when one does not fit.
    #[inline]
    pub(crate) fn scan(buf: &[u8]) -> Option<usize> {
        let mut rest = buf;
        let mut count = 0;
        while let Some((len, body)) = rest.split_first_chunk::<2>() {
            rest = body.get(usize::from(u16::from_be_bytes(*len))..)?;
            count += 1;
        }
        rest.is_empty().then_some(count)
    }

    /// Chunks over `raw`, already counted by [`ArgChunks::scan`].
    #[inline]
    pub(crate) fn from_scanned(raw: Bytes, count: usize) -> ArgChunks {
        ArgChunks { raw, count }
    }

    /// Builds chunks from slices (for tests and tools; the fragmenter writes
    /// frames directly). Panics if a chunk is over 65535 bytes.
    pub fn from_chunks<I, B>(chunks: I) -> ArgChunks
    where
        I: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        let mut raw = Vec::new();
        let mut count = 0;
        for c in chunks {
            let c = c.as_ref();
            let len = u16::try_from(c.len()).expect("arg chunk over 65535 bytes");
            raw.extend_from_slice(&len.to_be_bytes());
            raw.extend_from_slice(c);
            count += 1;
        }
        ArgChunks {
            raw: raw.into(),
            count,
        }
    }

    /// Number of chunks (possibly 0).
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the frame carries no chunk at all.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The chunks as `Bytes` that share the frame's allocation.
    pub fn iter(&self) -> ChunkIter<'_> {
        ChunkIter {
            raw: &self.raw,
            pos: 0,
        }
    }

    /// The chunks as borrowed slices (no reference counting).
    pub fn slices(&self) -> SliceIter<'_> {
        SliceIter { rest: &self.raw }
    }

    /// The last chunk, if any (what node's farmhash covers).
    pub fn last(&self) -> Option<Bytes> {
        self.iter().last()
    }

    /// Total bytes of arg data (length prefixes excluded).
    pub fn data_len(&self) -> usize {
        self.raw.len() - 2 * self.count
    }

    /// Bytes on the wire.
    pub fn encoded_len(&self) -> usize {
        self.raw.len()
    }

    /// Writes the chunks.
    pub fn encode(&self, dst: &mut impl BufMut) {
        dst.put_slice(&self.raw);
    }
}

impl fmt::Debug for ArgChunks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|c| c.len()))
            .finish()
    }
}

/// Iterator over the chunks of an [`ArgChunks`], as slices.
pub struct SliceIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for SliceIter<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        // Lengths were checked when the chunks were read or built.
        let (len, body) = self.rest.split_at_checked(2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (chunk, rest) = body.split_at_checked(len)?;
        self.rest = rest;
        Some(chunk)
    }
}

/// Iterator over the chunks of an [`ArgChunks`].
pub struct ChunkIter<'a> {
    raw: &'a Bytes,
    pos: usize,
}

impl Iterator for ChunkIter<'_> {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        // Lengths were checked when the chunks were read or built.
        let len_bytes = self.raw.get(self.pos..self.pos + 2)?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        let start = self.pos + 2;
        let end = start + len;
        if end > self.raw.len() {
            return None;
        }
        self.pos = end;
        Some(self.raw.slice(start..end))
    }
}
