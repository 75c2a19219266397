//! The 25-byte tracing field carried by call, cancel, claim and error frames.

use bytes::BufMut;

use super::error::DecodeError;
use super::wire::Reader;

/// Length of the tracing field on the wire.
pub const TRACING_LEN: usize = 25;

/// Zipkin-style trace identifiers: `span_id:8 parent_id:8 trace_id:8 flags:1`,
/// in that order on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Tracing {
    /// This call's span.
    pub span_id: u64,
    /// The caller's span (0 at the edge).
    pub parent_id: u64,
    /// The trace the call belongs to.
    pub trace_id: u64,
    /// Trace flags; bit 0x01 means sampled.
    pub flags: u8,
}

impl Tracing {
    /// Flag bit: this trace is sampled.
    pub const SAMPLED: u8 = 0x01;

    #[inline]
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Tracing, DecodeError> {
        if r.remaining() < TRACING_LEN {
            return Self::read_fields(r);
        }
        let b = r.array::<TRACING_LEN>("tracing")?;
        Ok(Tracing::from_wire(&b))
    }

    /// The 25 bytes as they are on the wire.
    #[inline]
    pub(crate) fn from_wire(b: &[u8; TRACING_LEN]) -> Tracing {
        let id = |i: usize| {
            u64::from_be_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        Tracing {
            span_id: id(0),
            parent_id: id(8),
            trace_id: id(16),
            flags: b[24],
        }
    }

    /// Field by field, so a truncated field is named with its offset.
    #[cold]
    fn read_fields(r: &mut Reader<'_>) -> Result<Tracing, DecodeError> {
        let mut id = |field| r.array::<8>(field).map(u64::from_be_bytes);
        let span_id = id("tracing span id")?;
        let parent_id = id("tracing parent id")?;
        let trace_id = id("tracing trace id")?;
        Ok(Tracing {
            span_id,
            parent_id,
            trace_id,
            flags: r.u8("tracing flags")?,
        })
    }

    /// The 25 bytes into `out` (exactly 25 long).
    #[inline]
    pub(crate) fn write_to(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.span_id.to_be_bytes());
        out[8..16].copy_from_slice(&self.parent_id.to_be_bytes());
        out[16..24].copy_from_slice(&self.trace_id.to_be_bytes());
        out[24] = self.flags;
    }

    /// Writes the 25 bytes.
    pub fn encode(&self, dst: &mut impl BufMut) {
        dst.put_u64(self.span_id);
        dst.put_u64(self.parent_id);
        dst.put_u64(self.trace_id);
        dst.put_u8(self.flags);
    }

    /// The tracing a call made on behalf of this one should carry: same trace,
    /// `span_id` new, this span as parent.
    pub fn child(&self, new_span_id: u64) -> Tracing {
        Tracing {
            span_id: new_span_id,
            parent_id: self.span_id,
            trace_id: self.trace_id,
            flags: self.flags,
        }
    }
}
