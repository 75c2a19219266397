//! Per-peer circuit breaker: classify → accrue → gate.
//!
//! ```text
//!             N failures in a row, or success rate
//!             under the threshold (enough calls)
//!   Closed ─────────────────────────────────────▶ Open { until }
//!     ▲                                              │ now >= until
//!     │ `probes` probe calls succeed                 ▼
//!     └──────────────────────────────────────── HalfOpen
//!                                                    │ a probe fails
//!                                                    └──▶ Open (longer backoff)
//! ```
//!
//! *Closed* means traffic flows (the classic names, not linkerd's). The split
//! is linkerd's: a [`Classifier`] turns a call's result into a [`Class`], the
//! [`Breaker`] accrues classes into a state, and the pool's selection is the
//! gate (it skips peers whose breaker is not [`Breaker::is_available`]).
//!
//! The breaker is a pure value driven like quinn-proto's connection: time
//! comes in as `now` ([`Breaker::handle_timeout`] moves Open to HalfOpen) and
//! the random number for the backoff's jitter is a parameter.

use std::fmt;
use std::time::{Duration, Instant};

use super::backoff::Backoff;
pub use super::classify::{Class, Classifier, DefaultClassifier};
use super::window::Window;

/// A breaker's state, as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Traffic flows.
    Closed,
    /// No traffic until the backoff ends.
    Open,
    /// A few probe calls decide between Closed and Open.
    HalfOpen,
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        })
    }
}

/// A change of state, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
}

/// Opening on a low success rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuccessRate {
    /// Open when successes / (successes + failures) falls under this.
    /// Default 0.8.
    pub min_success_rate: f64,
    /// Window over which the rate is measured. Default 30 s.
    pub window: Duration,
    /// Fewest classified calls in the window before the rate can open the
    /// breaker. Default 20.
    pub min_calls: u64,
}

impl Default for SuccessRate {
    fn default() -> SuccessRate {
        SuccessRate {
            min_success_rate: 0.8,
            window: Duration::from_secs(30),
            min_calls: 20,
        }
    }
}

/// Parameters of a [`Breaker`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Open after this many failures in a row; 0 turns the rule off.
    /// Default 5.
    pub consecutive_failures: u32,
    /// Open when the success rate falls too low; `None` turns the rule off.
    /// Default on, see [`SuccessRate`].
    pub success_rate: Option<SuccessRate>,
    /// How long the breaker stays open: the `n`th opening in a row (without
    /// closing in between) lasts `backoff.delay(n)`. Default 1 s doubling to
    /// 60 s, half random.
    pub backoff: Backoff,
    /// Probe calls let through while half-open, all of which must succeed
    /// for the breaker to close. Default 3.
    pub probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 5,
            success_rate: Some(SuccessRate::default()),
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            probes: 3,
        }
    }
}

impl BreakerConfig {
    /// A breaker that never opens.
    pub fn disabled() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 0,
            success_rate: None,
            ..BreakerConfig::default()
        }
    }
}

/// How a call was let through; hand it back with its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Ordinary traffic (the breaker was closed).
    Normal,
    /// A probe while half-open.
    Probe,
}

#[derive(Debug, Clone, Copy)]
enum Inner {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

/// A circuit breaker for one peer. See the module docs.
#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    inner: Inner,
    consecutive: u32,
    window: Option<Window>,
    /// Openings since the breaker last closed from half-open.
    opens: u32,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig, now: Instant) -> Breaker {
        Breaker {
            config,
            inner: Inner::Closed,
            consecutive: 0,
            window: config.success_rate.map(|r| Window::new(now, r.window, 10)),
            opens: 0,
        }
    }

    /// The current state (an open breaker whose time is up still reads Open
    /// until [`Breaker::handle_timeout`] runs).
    pub fn state(&self) -> BreakerState {
        match self.inner {
            Inner::Closed => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Failures in a row while closed.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    /// When an open breaker will turn half-open.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.inner {
            Inner::Open { until } => Some(until),
            _ => None,
        }
    }

    /// Moves Open to HalfOpen once its time is up.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Transition> {
        match self.inner {
            Inner::Open { until } if now >= until => {
                self.inner = Inner::HalfOpen {
                    in_flight: 0,
                    successes: 0,
                };
                Some(Transition {
                    from: BreakerState::Open,
                    to: BreakerState::HalfOpen,
                })
            }
            _ => None,
        }
    }

    /// True when a call may go to this peer now: closed, or half-open with a
    /// probe slot free.
    pub fn is_available(&self) -> bool {
        match self.inner {
            Inner::Closed => true,
            Inner::Open { .. } => false,
            Inner::HalfOpen {
                in_flight,
                successes,
            } => in_flight < self.config.probes.max(1).saturating_sub(successes),
        }
    }

    /// Lets a call through, or not.
    pub fn admit(&mut self) -> Option<Admission> {
        if !self.is_available() {
            return None;
        }
        match &mut self.inner {
            Inner::Closed => Some(Admission::Normal),
            Inner::HalfOpen { in_flight, .. } => {
                *in_flight += 1;
                Some(Admission::Probe)
            }
            Inner::Open { .. } => None,
        }
    }

    /// Records the result of a call let through by [`Breaker::admit`] (or of
    /// a connect, as [`Admission::Normal`]). `random` in `[0, 1)` jitters the
    /// backoff if the breaker opens.
    pub fn on_result(
        &mut self,
        now: Instant,
        admission: Admission,
        class: Class,
        random: f64,
    ) -> Option<Transition> {
        match (self.inner, admission) {
            (Inner::Closed, Admission::Normal) => {
                match class {
                    Class::Ignore => return None,
                    Class::Success => {
                        self.consecutive = 0;
                        if let Some(w) = &mut self.window {
                            w.add(now, 0, 1);
                        }
                    }
                    Class::Failure => {
                        self.consecutive = self.consecutive.saturating_add(1);
                        if let Some(w) = &mut self.window {
                            w.add(now, 1, 1);
                        }
                    }
                }
                if class == Class::Failure && self.should_open(now) {
                    return Some(self.open(now, BreakerState::Closed, random));
                }
                None
            }
            (
                Inner::HalfOpen {
                    in_flight,
                    successes,
                },
                Admission::Probe,
            ) => {
                let in_flight = in_flight.saturating_sub(1);
                match class {
                    Class::Ignore => {
                        self.inner = Inner::HalfOpen {
                            in_flight,
                            successes,
                        };
                        None
                    }
                    Class::Failure => Some(self.open(now, BreakerState::HalfOpen, random)),
                    Class::Success if successes + 1 >= self.config.probes.max(1) => {
                        self.close(now);
                        Some(Transition {
                            from: BreakerState::HalfOpen,
                            to: BreakerState::Closed,
                        })
                    }
                    Class::Success => {
                        self.inner = Inner::HalfOpen {
                            in_flight,
                            successes: successes + 1,
                        };
                        None
                    }
                }
            }
            // Results of calls let through under an earlier state say
            // nothing about the current one.
            _ => None,
        }
    }

    fn should_open(&mut self, now: Instant) -> bool {
        let cf = self.config.consecutive_failures;
        if cf > 0 && self.consecutive >= cf {
            return true;
        }
        match (self.config.success_rate, &mut self.window) {
            (Some(rate), Some(w)) => {
                let [ok, failed] = w.totals(now);
                let total = ok + failed;
                total >= rate.min_calls.max(1) && (ok as f64) < rate.min_success_rate * total as f64
            }
            _ => false,
        }
    }

    fn open(&mut self, now: Instant, from: BreakerState, random: f64) -> Transition {
        self.opens = self.opens.saturating_add(1);
        let until = now + self.config.backoff.delay(self.opens, random);
        self.inner = Inner::Open { until };
        self.consecutive = 0;
        if let Some(w) = &mut self.window {
            w.clear(now);
        }
        Transition {
            from,
            to: BreakerState::Open,
        }
    }

    fn close(&mut self, now: Instant) {
        self.inner = Inner::Closed;
        self.opens = 0;
        self.consecutive = 0;
        if let Some(w) = &mut self.window {
            w.clear(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn config() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            success_rate: None,
            backoff: Backoff::new(100 * MS, 1000 * MS).with_jitter(0.0),
            probes: 2,
        }
    }

    fn result(b: &mut Breaker, now: Instant, class: Class) -> Option<Transition> {
        let a = b.admit().expect("admitted");
        b.on_result(now, a, class, 0.0)
    }

    #[test]
    fn opens_after_consecutive_failures() {
        // [POOL-20]
        let t0 = Instant::now();
        let mut b = Breaker::new(config(), t0);
        assert_eq!(result(&mut b, t0, Class::Failure), None);
        assert_eq!(result(&mut b, t0, Class::Failure), None);
        // A success resets the streak; ignored results do not.
        assert_eq!(result(&mut b, t0, Class::Success), None);
        assert_eq!(result(&mut b, t0, Class::Failure), None);
        assert_eq!(result(&mut b, t0, Class::Ignore), None);
        assert_eq!(result(&mut b, t0, Class::Failure), None);
        assert_eq!(b.consecutive_failures(), 2);
        assert_eq!(
            result(&mut b, t0, Class::Failure),
            Some(Transition {
                from: BreakerState::Closed,
                to: BreakerState::Open
            })
        );
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.is_available());
        assert_eq!(b.admit(), None);
        assert_eq!(b.poll_timeout(), Some(t0 + 100 * MS));
    }

    #[test]
    fn half_open_probes_then_close() {
        // [POOL-22]
        let t0 = Instant::now();
        let mut b = Breaker::new(config(), t0);
        for _ in 0..3 {
            result(&mut b, t0, Class::Failure);
        }
        assert_eq!(b.handle_timeout(t0 + 99 * MS), None);
        let t1 = t0 + 100 * MS;
        assert_eq!(
            b.handle_timeout(t1),
            Some(Transition {
                from: BreakerState::Open,
                to: BreakerState::HalfOpen
            })
        );
        // Two probe slots, then no more until one finishes.
        let p1 = b.admit().unwrap();
        let p2 = b.admit().unwrap();
        assert_eq!((p1, p2), (Admission::Probe, Admission::Probe));
        assert!(!b.is_available());
        // An ignored probe frees its slot without deciding.
        assert_eq!(b.on_result(t1, p1, Class::Ignore, 0.0), None);
        assert!(b.is_available());
        assert_eq!(b.on_result(t1, p2, Class::Success, 0.0), None);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // Only one more success is needed: one slot.
        let p3 = b.admit().unwrap();
        assert!(!b.is_available());
        assert_eq!(
            b.on_result(t1, p3, Class::Success, 0.0),
            Some(Transition {
                from: BreakerState::HalfOpen,
                to: BreakerState::Closed
            })
        );
        assert!(b.is_available());
        assert_eq!(b.admit(), Some(Admission::Normal));
    }

    #[test]
    fn a_failed_probe_reopens_for_longer() {
        // [POOL-22]
        let t0 = Instant::now();
        let mut b = Breaker::new(config(), t0);
        for _ in 0..3 {
            result(&mut b, t0, Class::Failure);
        }
        let mut t = t0;
        for want in [100, 200, 400, 800, 1000, 1000] {
            assert_eq!(b.poll_timeout(), Some(t + want * MS));
            t += want * MS;
            assert!(b.handle_timeout(t).is_some());
            let p = b.admit().unwrap();
            assert_eq!(
                b.on_result(t, p, Class::Failure, 0.0).map(|x| x.to),
                Some(BreakerState::Open)
            );
        }
        // Closing resets the backoff.
        t += 1000 * MS;
        b.handle_timeout(t);
        for _ in 0..2 {
            result(&mut b, t, Class::Success);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        for _ in 0..3 {
            result(&mut b, t, Class::Failure);
        }
        assert_eq!(b.poll_timeout(), Some(t + 100 * MS));
    }

    #[test]
    fn jitter_shortens_the_open_time() {
        // [POOL-22]
        let t0 = Instant::now();
        let mut c = config();
        c.backoff = c.backoff.with_jitter(0.5);
        let mut b = Breaker::new(c, t0);
        for _ in 0..2 {
            result(&mut b, t0, Class::Failure);
        }
        let a = b.admit().unwrap();
        b.on_result(t0, a, Class::Failure, 0.5);
        assert_eq!(b.poll_timeout(), Some(t0 + 75 * MS));
    }

    #[test]
    fn stale_results_are_ignored() {
        // [POOL-22]
        let t0 = Instant::now();
        let mut b = Breaker::new(config(), t0);
        let late = b.admit().unwrap();
        for _ in 0..3 {
            result(&mut b, t0, Class::Failure);
        }
        // A call let through while closed finishes while open or half-open.
        assert_eq!(b.on_result(t0, late, Class::Success, 0.0), None);
        assert_eq!(b.state(), BreakerState::Open);
        b.handle_timeout(t0 + 100 * MS);
        assert_eq!(b.on_result(t0, late, Class::Failure, 0.0), None);
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn opens_on_a_low_success_rate() {
        // [POOL-21]
        let t0 = Instant::now();
        let mut c = config();
        c.consecutive_failures = 0;
        c.success_rate = Some(SuccessRate {
            min_success_rate: 0.5,
            window: Duration::from_secs(10),
            min_calls: 10,
        });
        let mut b = Breaker::new(c, t0);
        // Alternating 1 success, 2 failures: rate 1/3, but not before 10 calls.
        let mut opened_at = None;
        for i in 0..12 {
            let class = if i % 3 == 0 {
                Class::Success
            } else {
                Class::Failure
            };
            if result(&mut b, t0, class).is_some() {
                opened_at = Some(i + 1);
                break;
            }
        }
        assert_eq!(opened_at, Some(11), "the 10th call is a success");
        // Old results leave the window: a slow trickle of failures among
        // successes never reaches min_calls within it.
        let mut b = Breaker::new(c, t0);
        for i in 0..100u32 {
            let t = t0 + Duration::from_secs(2) * i;
            let class = if i % 2 == 0 {
                Class::Success
            } else {
                Class::Failure
            };
            assert_eq!(result(&mut b, t, class), None);
        }
    }
}
