//! Call deadlines, earliest first, at almost no cost per call.
//!
//! Most calls on a connection use the same timeout, so their deadlines arrive
//! in order: those go to the back of a FIFO (no sift, no search). A deadline
//! earlier than the FIFO's last goes to a heap instead. A call that ends does
//! not look for its entry: stale entries are dropped when they reach the
//! front (where a timer that fires early finds them) or all at once when they
//! outnumber the live calls, so both queues stay O(live calls) and a call
//! that ends before its deadline costs one push.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

use super::table::CallRef;

/// Which table a call id lives in: ids are chosen per direction ([ID-1]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Dir {
    /// Our requests.
    Out,
    /// The peer's requests.
    In,
}

/// One deadline: when, and whose.
pub(super) type Deadline = (Instant, Dir, CallRef);

#[derive(Debug, Default)]
pub(super) struct Deadlines {
    fifo: VecDeque<Deadline>,
    heap: BinaryHeap<Reverse<Deadline>>,
}

impl Deadlines {
    /// Adds a deadline.
    pub(super) fn push(&mut self, d: Deadline) {
        match self.fifo.back() {
            Some(last) if last.0 > d.0 => self.heap.push(Reverse(d)),
            _ => self.fifo.push_back(d),
        }
    }

    /// The earliest deadline, possibly of a call that already ended.
    pub(super) fn next(&self) -> Option<Instant> {
        let a = self.fifo.front().map(|d| d.0);
        let b = self.heap.peek().map(|d| d.0.0);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Removes and returns the earliest deadline if it is at or before `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Deadline> {
        let a = self.fifo.front().filter(|d| d.0 <= now).copied();
        let b = self.heap.peek().filter(|d| d.0.0 <= now).map(|d| d.0);
        match (a, b) {
            (Some(x), Some(y)) if y < x => self.heap.pop().map(|d| d.0),
            (Some(_), _) => self.fifo.pop_front(),
            (None, Some(_)) => self.heap.pop().map(|d| d.0),
            (None, None) => None,
        }
    }

    /// Entries, live or stale.
    pub(super) fn len(&self) -> usize {
        self.fifo.len() + self.heap.len()
    }

    /// Drops stale entries at both fronts, and every stale entry once they
    /// outnumber the `live` calls.
    #[inline]
    pub(super) fn prune(&mut self, live: usize, is_live: impl Fn(&Deadline) -> bool) {
        while self.fifo.front().is_some_and(|d| !is_live(d)) {
            self.fifo.pop_front();
        }
        while self.heap.peek().is_some_and(|d| !is_live(&d.0)) {
            self.heap.pop();
        }
        if self.len() > 2 * live + 64 {
            self.fifo.retain(|d| is_live(d));
            let heap = std::mem::take(&mut self.heap);
            self.heap = heap.into_iter().filter(|d| is_live(&d.0)).collect();
        }
    }

    pub(super) fn clear(&mut self) {
        self.fifo.clear();
        self.heap.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn out_of_order_deadlines_still_come_out_earliest_first() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut d = Deadlines::default();
        let r = |slot| CallRef {
            slot,
            generation: 0,
        };
        for (ms, id) in [(10, 1), (20, 2), (5, 3), (30, 4), (15, 5)] {
            d.push((at(ms), Dir::Out, r(id)));
        }
        assert_eq!(d.next(), Some(at(5)));
        let mut order = Vec::new();
        while let Some((_, _, r)) = d.pop_due(at(100)) {
            order.push(r.slot);
        }
        assert_eq!(order, [3, 1, 5, 2, 4]);
    }

    #[test]
    fn stale_entries_do_not_pile_up() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        for i in 0..10_000u32 {
            let r = CallRef {
                slot: i,
                generation: 0,
            };
            d.push((t0 + Duration::from_millis(u64::from(i)), Dir::In, r));
            // only the last call is live
            d.prune(1, |e| e.2.slot == i);
            assert!(d.len() <= 2 + 64, "{} entries", d.len());
        }
    }
}
