//! A sliding window of two counters, split into slots: the retry budget
//! counts (calls, retries) in one, the breaker (successes, failures) in another.

use std::time::{Duration, Instant};

/// Two counters over the last `window`, kept as `slots` buckets. The oldest
/// bucket is dropped whole, so the window covers between `window - window/slots`
/// and `window` of history.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    slots: Vec<[u64; 2]>,
    slot_len: Duration,
    head: usize,
    head_start: Instant,
    /// `head_start + slot_len`: before it, the head slot is current.
    head_end: Instant,
}

impl Window {
    pub(crate) fn new(now: Instant, window: Duration, slots: usize) -> Window {
        let n = slots.max(1);
        let slot_len = (window / n as u32).max(Duration::from_millis(1));
        Window {
            slots: vec![[0; 2]; n],
            slot_len,
            head: 0,
            head_start: now,
            head_end: now + slot_len,
        }
    }

    /// Moves the head to the slot `now` falls in, clearing the slots passed.
    #[inline]
    fn advance(&mut self, now: Instant) {
        if now < self.head_end {
            return;
        }
        self.advance_slots(now);
    }

    fn advance_slots(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.head_start);
        if elapsed < self.slot_len {
            return;
        }
        let slot_ns = self.slot_len.as_nanos();
        let steps = elapsed.as_nanos() / slot_ns;
        let n = self.slots.len();
        for _ in 0..steps.min(n as u128) {
            self.head = (self.head + 1) % n;
            self.slots[self.head] = [0; 2];
        }
        let rem = Duration::from_nanos((elapsed.as_nanos() % slot_ns) as u64);
        self.head_start = now.checked_sub(rem).unwrap_or(now);
        self.head_end = self.head_start + self.slot_len;
    }

    /// Adds `n` to counter `which` (0 or 1) at `now`.
    pub(crate) fn add(&mut self, now: Instant, which: usize, n: u64) {
        self.advance(now);
        let slot = &mut self.slots[self.head];
        slot[which & 1] = slot[which & 1].saturating_add(n);
    }

    /// Both counters summed over the window as of `now`.
    pub(crate) fn totals(&mut self, now: Instant) -> [u64; 2] {
        self.advance(now);
        self.slots.iter().fold([0, 0], |acc, s| {
            [acc[0].saturating_add(s[0]), acc[1].saturating_add(s[1])]
        })
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self, now: Instant) {
        self.slots.iter_mut().for_each(|s| *s = [0; 2]);
        self.head_start = now;
        self.head_end = now + self.slot_len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_slots_fall_out_of_the_window() {
        let t0 = Instant::now();
        let mut w = Window::new(t0, Duration::from_secs(10), 10);
        w.add(t0, 0, 5);
        w.add(t0 + Duration::from_millis(1500), 1, 2);
        assert_eq!(w.totals(t0 + Duration::from_secs(2)), [5, 2]);
        // 10 s after the first slot began, it is gone; the second is not.
        assert_eq!(w.totals(t0 + Duration::from_secs(10)), [0, 2]);
        assert_eq!(w.totals(t0 + Duration::from_secs(11)), [0, 0]);
        // A long gap clears everything without looping forever.
        w.add(t0 + Duration::from_secs(11), 0, 1);
        assert_eq!(w.totals(t0 + Duration::from_secs(100_000)), [0, 0]);
    }

    #[test]
    fn clear_forgets() {
        let t0 = Instant::now();
        let mut w = Window::new(t0, Duration::from_secs(1), 4);
        w.add(t0, 1, 3);
        w.clear(t0);
        assert_eq!(w.totals(t0), [0, 0]);
    }
}
