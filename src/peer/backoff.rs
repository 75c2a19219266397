//! Exponential backoff with jitter, for reconnects and for how long a circuit
//! breaker stays open.
//!
//! The delay after the `n`th failure in a row is `base * 2^(n-1)`, capped at
//! `max`, and then shortened by a random part of up to `jitter` of itself, so
//! that peers (or callers) that failed together do not all come back at the
//! same instant. The random number is a parameter: the policy stays a pure
//! function, and tests pass 0 (or set `jitter` to 0) to get exact delays.

use std::time::Duration;

/// Exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Fraction of each delay that is random, in `0.0..=1.0`: the delay is
    /// `d * (1 - jitter * r)` with `r` uniform in `[0, 1)`. 0 gives exact delays.
    pub jitter: f64,
}

impl Backoff {
    /// A backoff from `base` to `max` with half of each delay random.
    pub const fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            jitter: 0.5,
        }
    }

    /// The same backoff with another jitter fraction (clamped to `0..=1`).
    pub fn with_jitter(mut self, jitter: f64) -> Backoff {
        self.jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        self
    }

    /// The delay before trying again after `failures` failures in a row
    /// (`failures` of 0 counts as 1). `random` is a sample of `[0, 1)`.
    pub fn delay(&self, failures: u32, random: f64) -> Duration {
        let exp = failures.saturating_sub(1).min(31);
        let full = self
            .base
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max)
            .min(self.max);
        let jitter = if self.jitter.is_nan() {
            0.0
        } else {
            self.jitter.clamp(0.0, 1.0)
        };
        let r = if random.is_nan() {
            0.0
        } else {
            random.clamp(0.0, 1.0)
        };
        full.mul_f64(1.0 - jitter * r)
    }
}

impl Default for Backoff {
    /// 100 ms doubling up to 10 s, half of each delay random: the reconnect
    /// default.
    fn default() -> Backoff {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_up_to_the_cap() {
        // [POOL-10]
        let b = Backoff::new(100 * MS, 1000 * MS).with_jitter(0.0);
        let d: Vec<u128> = (0..7).map(|n| b.delay(n, 0.9).as_millis()).collect();
        assert_eq!(d, [100, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(u32::MAX, 0.0), 1000 * MS);
    }

    #[test]
    fn jitter_shortens_by_at_most_its_fraction() {
        // [POOL-10]
        let b = Backoff::new(100 * MS, 1000 * MS).with_jitter(0.5);
        assert_eq!(b.delay(3, 0.0), 400 * MS);
        assert_eq!(b.delay(3, 0.5), 300 * MS);
        let low = b.delay(3, 0.999_999);
        assert!(low > 200 * MS && low <= 201 * MS, "{low:?}");
        // Nonsense inputs are clamped, never panic.
        assert_eq!(b.delay(3, f64::NAN), 400 * MS);
        assert_eq!(b.with_jitter(7.0).delay(1, 1.0), Duration::ZERO);
    }
}
