//! The output queue: frames waiting for the wire, in order.
//!
//! Small frames and frame headers are encoded into one growing buffer; a large
//! arg is queued by reference (a `Bytes` slice of the caller's buffer), so it
//! reaches the socket through a vectored write without ever being copied.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use crate::frame::FrameSink;

/// Frames queued for writing: earlier parts as shared `Bytes` segments, then
/// the buffer currently being appended to.
#[derive(Debug, Default)]
pub struct Transmit {
    segs: VecDeque<Bytes>,
    seg_len: usize,
    buf: BytesMut,
}

impl Transmit {
    /// An empty queue.
    pub fn new() -> Transmit {
        Transmit::default()
    }

    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.seg_len + self.buf.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.seg_len == 0 && self.buf.is_empty()
    }

    /// Moves everything queued here to the end of `dst`, copying nothing.
    /// When `dst` is empty the two swap, so both keep their buffers'
    /// capacity for the next batch.
    pub fn append_to(&mut self, dst: &mut Transmit) {
        if self.is_empty() {
            return;
        }
        if dst.is_empty() {
            std::mem::swap(self, dst);
            return;
        }
        dst.freeze_buf();
        dst.seg_len += self.seg_len;
        dst.segs.append(&mut self.segs);
        self.seg_len = 0;
        if !self.buf.is_empty() {
            let b = self.buf.split().freeze();
            dst.seg_len += b.len();
            dst.segs.push_back(b);
        }
    }

    fn freeze_buf(&mut self) {
        if !self.buf.is_empty() {
            let b = self.buf.split().freeze();
            self.seg_len += b.len();
            self.segs.push_back(b);
        }
    }

    /// The queued bytes when they are one contiguous buffer (the usual case:
    /// no arg was queued by reference).
    pub fn as_contiguous(&self) -> Option<&[u8]> {
        self.segs.is_empty().then_some(&self.buf[..])
    }

    /// Fills `dst` with slices of the queued bytes, in order; returns how
    /// many were filled.
    pub fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let parts = self
            .segs
            .iter()
            .map(|b| &b[..])
            .chain(std::iter::once(&self.buf[..]))
            .filter(|p| !p.is_empty());
        let mut n = 0;
        for (slot, part) in dst.iter_mut().zip(parts) {
            *slot = IoSlice::new(part);
            n += 1;
        }
        n
    }

    /// Drops the first `n` bytes (they were written).
    pub fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.segs.front_mut() else {
                break;
            };
            let k = n.min(front.len());
            front.advance(k);
            self.seg_len -= k;
            n -= k;
            if front.is_empty() {
                self.segs.pop_front();
            }
        }
        let k = n.min(self.buf.len());
        self.buf.advance(k);
        if self.buf.is_empty() {
            // Keep the capacity: the next batch is encoded in place.
            self.buf.clear();
        }
    }

    /// Drops everything queued.
    pub fn clear(&mut self) {
        self.segs.clear();
        self.seg_len = 0;
        self.buf.clear();
    }

    /// Everything queued as one buffer (a copy when args were queued by
    /// reference); the queue is left empty.
    pub fn take_bytes(&mut self) -> BytesMut {
        if self.segs.is_empty() {
            return self.buf.split();
        }
        let mut out = BytesMut::with_capacity(self.len());
        for s in self.segs.drain(..) {
            out.extend_from_slice(&s);
        }
        out.extend_from_slice(&self.buf);
        self.seg_len = 0;
        self.buf.clear();
        out
    }
}

impl FrameSink for Transmit {
    fn buf(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    fn put_shared(&mut self, data: Bytes) {
        self.freeze_buf();
        self.seg_len += data.len();
        self.segs.push_back(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_across_shared_parts_and_partial_writes() {
        let mut q = Transmit::new();
        q.buf().extend_from_slice(b"head");
        q.put_shared(Bytes::from_static(b"-big-"));
        q.buf().extend_from_slice(b"tail");
        assert_eq!(q.len(), 13);
        assert!(q.as_contiguous().is_none());
        let mut other = Transmit::new();
        other.buf().extend_from_slice(b"first:");
        q.append_to(&mut other);
        assert!(q.is_empty());
        other.advance(3);
        let mut slices = [IoSlice::new(&[]); 8];
        let n = other.io_slices(&mut slices);
        let joined: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(joined, b"st:head-big-tail");
        other.advance(9);
        assert_eq!(&other.take_bytes()[..], b"ig-tail");
        assert!(other.is_empty());
    }
}
