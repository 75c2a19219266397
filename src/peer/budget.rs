//! The retry budget: retries may add at most a fixed share of the calls made,
//! plus a small floor, over a sliding window.
//!
//! # Why a budget and not only a retry count
//!
//! "Retry up to 3 times" is harmless while one peer misbehaves, and a disaster
//! when the whole fleet is overloaded: every caller multiplies its load by four
//! exactly when the servers can least afford it. A budget bounds the *ratio*
//! instead (Finagle's `RetryBudget`, tower's `TpsBudget`): each call deposits
//! `retry_ratio` of a token, each retry withdraws one, and a floor of
//! `min_retries_per_sec` lets a caller with little traffic still retry. With
//! the defaults (20%, 10 per second, 10 s window), a failing fleet sees at most
//! 1.2 times its normal call rate (plus the floor), never 3 or 4 times.
//!
//! The budget is a pure value: time comes in as `now`.

use std::time::{Duration, Instant};

use super::window::Window;

const CALLS: usize = 0;
const RETRIES: usize = 1;
const SLOTS: usize = 10;

/// Parameters of a [`RetryBudget`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetConfig {
    /// How far back calls and retries are counted. Default 10 s.
    pub window: Duration,
    /// Retries allowed per call made, over the window. Default 0.2 (20%).
    pub retry_ratio: f64,
    /// Retries allowed per second of the window regardless of traffic.
    /// Default 10.
    pub min_retries_per_sec: u32,
}

impl Default for BudgetConfig {
    fn default() -> BudgetConfig {
        BudgetConfig {
            window: Duration::from_secs(10),
            retry_ratio: 0.2,
            min_retries_per_sec: 10,
        }
    }
}

impl BudgetConfig {
    /// A budget that never refuses a retry (the per-call retry limit still
    /// applies).
    pub fn unlimited() -> BudgetConfig {
        BudgetConfig {
            retry_ratio: f64::INFINITY,
            min_retries_per_sec: u32::MAX,
            ..BudgetConfig::default()
        }
    }
}

/// Counts calls and retries over a sliding window and says whether one more
/// retry fits.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    config: BudgetConfig,
    window: Window,
}

impl RetryBudget {
    /// An empty budget (only the floor is available).
    pub fn new(config: BudgetConfig, now: Instant) -> RetryBudget {
        RetryBudget {
            config,
            window: Window::new(now, config.window, SLOTS),
        }
    }

    /// Records one call (a first attempt, not a retry).
    pub fn deposit(&mut self, now: Instant) {
        self.window.add(now, CALLS, 1);
    }

    /// Takes one retry from the budget if there is one left; false means
    /// the retry must not happen.
    pub fn try_withdraw(&mut self, now: Instant) -> bool {
        if self.remaining(now) == 0 {
            return false;
        }
        self.window.add(now, RETRIES, 1);
        true
    }

    /// Retries still allowed now.
    pub fn remaining(&mut self, now: Instant) -> u64 {
        let [calls, retries] = self.window.totals(now);
        let floor = f64::from(self.config.min_retries_per_sec) * self.config.window.as_secs_f64();
        let share = if calls == 0 || self.config.retry_ratio.is_nan() {
            0.0
        } else {
            self.config.retry_ratio.max(0.0) * calls as f64
        };
        // `as` saturates: an infinite ratio allows u64::MAX retries.
        let allowed = (floor + share).floor() as u64;
        allowed.saturating_sub(retries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ratio: f64, floor: u32) -> BudgetConfig {
        BudgetConfig {
            window: Duration::from_secs(10),
            retry_ratio: ratio,
            min_retries_per_sec: floor,
        }
    }

    #[test]
    fn retries_are_a_share_of_calls() {
        // [POOL-18]
        let t0 = Instant::now();
        let mut b = RetryBudget::new(cfg(0.2, 0), t0);
        assert!(!b.try_withdraw(t0), "no calls, no floor: no retries");
        for _ in 0..100 {
            b.deposit(t0);
        }
        let granted = (0..100).filter(|_| b.try_withdraw(t0)).count();
        assert_eq!(granted, 20);
        assert_eq!(b.remaining(t0), 0);
    }

    #[test]
    fn the_floor_allows_retries_without_traffic() {
        // [POOL-18]
        let t0 = Instant::now();
        let mut b = RetryBudget::new(cfg(0.2, 1), t0);
        // 1 per second over a 10 s window.
        let granted = (0..100).filter(|_| b.try_withdraw(t0)).count();
        assert_eq!(granted, 10);
    }

    #[test]
    fn the_window_slides() {
        // [POOL-18]
        let t0 = Instant::now();
        let mut b = RetryBudget::new(cfg(0.5, 0), t0);
        for _ in 0..10 {
            b.deposit(t0);
        }
        assert_eq!((0..10).filter(|_| b.try_withdraw(t0)).count(), 5);
        // 11 s later both the calls and the retries have left the window.
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(b.remaining(t1), 0);
        b.deposit(t1);
        b.deposit(t1);
        assert_eq!(b.remaining(t1), 1);
    }

    #[test]
    fn unlimited_never_refuses() {
        let t0 = Instant::now();
        let mut b = RetryBudget::new(BudgetConfig::unlimited(), t0);
        assert!(b.try_withdraw(t0));
        b.deposit(t0);
        assert!((0..10_000).all(|_| b.try_withdraw(t0)));
    }
}
