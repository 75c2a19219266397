//! Choosing a peer for an attempt: power of two choices (the default), least
//! pending, round robin, or peak EWMA; with ramp-up for new and recovering
//! peers and avoidance of the peers a call already tried.
//!
//! The pool hands the [`Selector`] one [`Candidate`] per peer that may take a
//! call now (its breaker admits it and it is not waiting out a reconnect
//! backoff), and the selector returns an index into that slice. In order:
//!
//! 1. **Avoid tried peers.** Peers this call already tried are dropped, unless
//!    that leaves none (a retry may then go back to a tried peer).
//! 2. **Ramp up.** A peer with ramp weight `w < 1` (see [`ramp_weight`]) stays
//!    in with probability `w`, unless that leaves none. A peer that has just
//!    joined or recovered thus takes a growing share of calls instead of all
//!    the calls the others would have taken while it was away.
//! 3. **Strategy.** See [`Strategy`].
//!
//! The RNG is a parameter, so a seeded one makes every choice reproducible.

use std::time::{Duration, Instant};

use rand::Rng;

/// How a peer is chosen among the candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// Sample two distinct candidates at random and take the one with fewer
    /// calls in flight (tower's `p2c_ready_index`). Nearly as good as least
    /// pending, without herding every caller onto the same peer. The default.
    #[default]
    PowerOfTwoChoices,
    /// The candidate with the fewest calls in flight; ties rotate.
    LeastPending,
    /// Each candidate in turn.
    RoundRobin,
    /// Power of two choices on latency: the cost of a peer is its peak-EWMA
    /// round-trip estimate times (calls in flight + 1), as in tower's
    /// `PeakEwma` and Finagle's. Steers away from slow peers even when calls
    /// are sequential.
    PeakEwma,
}

/// What the selector knows about one peer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Calls in flight to the peer from this pool (including attempts still
    /// waiting for a connection).
    pub in_flight: usize,
    /// Round-trip estimate ([`PeakEwma::estimate`]); used by
    /// [`Strategy::PeakEwma`].
    pub rtt: Duration,
    /// Ramp weight in `(0, 1]` ([`ramp_weight`]); 1 for a peer at full share.
    pub weight: f64,
    /// The current call already tried this peer.
    pub tried: bool,
    /// Relative share of the calls (a DNS SRV weight): the two candidates of
    /// power of two choices (and of peak EWMA) are drawn in proportion to
    /// it. When every candidate has the same share they are drawn
    /// uniformly; the other strategies ignore it.
    pub share: u32,
}

impl Candidate {
    /// A fully ramped, untried candidate with this many calls in flight.
    pub fn with_in_flight(in_flight: usize) -> Candidate {
        Candidate {
            in_flight,
            rtt: Duration::ZERO,
            weight: 1.0,
            tried: false,
            share: 1,
        }
    }
}

/// Picks peers; holds the round-robin position and scratch space.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    strategy: Strategy,
    cursor: usize,
    pool: Vec<usize>,
    kept: Vec<usize>,
}

impl Selector {
    /// A selector using `strategy`.
    pub fn new(strategy: Strategy) -> Selector {
        Selector {
            strategy,
            ..Selector::default()
        }
    }

    /// The strategy in use.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The index of the chosen candidate, or `None` when there is none.
    pub fn select<R: Rng + ?Sized>(
        &mut self,
        candidates: &[Candidate],
        rng: &mut R,
    ) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        if candidates.len() == 1 && candidates[0].weight >= 1.0 {
            // One peer at full weight: every strategy picks it.
            return Some(0);
        }
        // 1. Avoid peers this call already tried, if any other is left.
        self.pool.clear();
        self.pool
            .extend((0..candidates.len()).filter(|&i| !candidates[i].tried));
        if self.pool.is_empty() {
            self.pool.extend(0..candidates.len());
        }
        // 2. Ramp up: a peer at weight w stays in with probability w.
        self.kept.clear();
        for &i in &self.pool {
            let w = candidates[i].weight;
            if w >= 1.0 || rng.random::<f64>() < w {
                self.kept.push(i);
            }
        }
        let pool = if self.kept.is_empty() {
            &self.pool
        } else {
            &self.kept
        };
        // 3. The strategy.
        match self.strategy {
            Strategy::PowerOfTwoChoices => {
                p2c(pool, candidates, rng, |i| candidates[i].in_flight as f64)
            }
            Strategy::PeakEwma => p2c(pool, candidates, rng, |i| {
                let c = &candidates[i];
                c.rtt.as_nanos() as f64 * (c.in_flight as f64 + 1.0)
            }),
            Strategy::LeastPending => {
                let min = pool.iter().map(|&i| candidates[i].in_flight).min()?;
                let ties = pool.iter().filter(|&&i| candidates[i].in_flight == min);
                let nth = self.cursor % ties.clone().count();
                self.cursor = self.cursor.wrapping_add(1);
                ties.copied().nth(nth)
            }
            Strategy::RoundRobin => {
                let pick = pool
                    .iter()
                    .copied()
                    .find(|&i| i >= self.cursor)
                    .or_else(|| pool.first().copied());
                if let Some(i) = pick {
                    self.cursor = i + 1;
                }
                pick
            }
        }
    }
}

/// Power of two choices over `pool` (indices into the candidates): tower's
/// `p2c_ready_index`, with the two drawn in proportion to their shares when
/// these differ (DNS SRV weights).
fn p2c<R: Rng + ?Sized>(
    pool: &[usize],
    candidates: &[Candidate],
    rng: &mut R,
    load: impl Fn(usize) -> f64,
) -> Option<usize> {
    let (a, b) = match pool.len() {
        0 => return None,
        1 => return Some(pool[0]),
        n => {
            let first = candidates[pool[0]].share;
            if pool.iter().all(|&i| candidates[i].share == first) {
                let a = rng.random_range(0..n);
                let mut b = rng.random_range(0..n - 1);
                if b >= a {
                    b += 1;
                }
                (pool[a], pool[b])
            } else {
                let a = weighted_draw(pool, candidates, None, rng);
                let b = weighted_draw(pool, candidates, Some(a), rng);
                (a, b)
            }
        }
    };
    let (la, lb) = (load(a), load(b));
    let chosen = if lb < la { b } else { a };
    tracing::trace!(a, la, b, lb, chosen, "p2c");
    Some(chosen)
}

/// One candidate of `pool` (not `except`) drawn with probability
/// proportional to its share. `pool` has at least two entries, and shares of
/// zero count as zero unless all the others are zero too.
fn weighted_draw<R: Rng + ?Sized>(
    pool: &[usize],
    candidates: &[Candidate],
    except: Option<usize>,
    rng: &mut R,
) -> usize {
    let others = || pool.iter().copied().filter(|&i| Some(i) != except);
    let total: u64 = others().map(|i| u64::from(candidates[i].share)).sum();
    if total == 0 {
        let n = others().count();
        return others().nth(rng.random_range(0..n)).unwrap_or(pool[0]);
    }
    let mut r = rng.random_range(0..total);
    for i in others() {
        let s = u64::from(candidates[i].share);
        if r < s {
            return i;
        }
        r -= s;
    }
    pool[0]
}

/// The share of its normal load a peer may take `now`: rises linearly from
/// `floor` at `since` to 1 at `since + ramp`. A zero `ramp` means no ramp.
pub fn ramp_weight(now: Instant, since: Instant, ramp: Duration, floor: f64) -> f64 {
    if ramp.is_zero() {
        return 1.0;
    }
    let floor = if floor.is_nan() {
        0.0
    } else {
        floor.clamp(0.0, 1.0)
    };
    let frac = now.saturating_duration_since(since).as_secs_f64() / ramp.as_secs_f64();
    (floor + (1.0 - floor) * frac).min(1.0)
}

/// A duration in nanoseconds as an `f64`, without the 128-bit conversion
/// `as_nanos() as f64` costs.
#[inline]
fn nanos_f64(d: Duration) -> f64 {
    d.as_secs() as f64 * 1e9 + f64::from(d.subsec_nanos())
}

/// A peak-sensitive moving average of round-trip times (tower's
/// `PeakEwma`): a slower sample replaces the estimate at once, faster samples
/// pull it down gradually, and with no samples it decays toward zero, so a
/// peer that was slow long ago gets another chance.
#[derive(Debug, Clone, Copy)]
pub struct PeakEwma {
    estimate_ns: f64,
    stamp: Instant,
    decay_ns: f64,
}

impl PeakEwma {
    /// An estimate starting at `initial`, with decay time constant `decay`.
    pub fn new(now: Instant, initial: Duration, decay: Duration) -> PeakEwma {
        PeakEwma {
            estimate_ns: initial.as_nanos() as f64,
            stamp: now,
            decay_ns: (decay.as_nanos() as f64).max(1.0),
        }
    }

    fn decay_factor(&self, now: Instant) -> f64 {
        let x = nanos_f64(now.saturating_duration_since(self.stamp)) / self.decay_ns;
        // Samples usually come microseconds apart against a decay of seconds:
        // then exp(-x) is 1 - x to within x²/2 (under 1e-8).
        if x < 1e-4 { 1.0 - x } else { (-x).exp() }
    }

    /// Adds one round-trip sample.
    pub fn observe(&mut self, now: Instant, rtt: Duration) {
        let rtt = nanos_f64(rtt);
        if rtt > self.estimate_ns {
            self.estimate_ns = rtt;
        } else {
            let d = self.decay_factor(now);
            self.estimate_ns = self.estimate_ns * d + rtt * (1.0 - d);
        }
        self.stamp = now;
    }

    /// The estimate as of `now`.
    pub fn estimate(&self, now: Instant) -> Duration {
        Duration::from_nanos((self.estimate_ns * self.decay_factor(now)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    const MS: Duration = Duration::from_millis(1);

    fn rng() -> SmallRng {
        SmallRng::seed_from_u64(7)
    }

    fn loads(v: &[usize]) -> Vec<Candidate> {
        v.iter().map(|&n| Candidate::with_in_flight(n)).collect()
    }

    fn counts(s: &mut Selector, c: &[Candidate], n: usize) -> Vec<usize> {
        let mut r = rng();
        let mut out = vec![0; c.len()];
        for _ in 0..n {
            out[s.select(c, &mut r).unwrap()] += 1;
        }
        out
    }

    #[test]
    fn p2c_zero_one_many() {
        // [POOL-3]
        let mut s = Selector::new(Strategy::PowerOfTwoChoices);
        let mut r = rng();
        assert_eq!(s.select(&[], &mut r), None);
        assert_eq!(s.select(&loads(&[9]), &mut r), Some(0));
        // The most loaded of three never wins a comparison; the least loaded
        // wins every one it is in (2/3 of them).
        let c = counts(&mut s, &loads(&[0, 5, 10]), 3000);
        assert_eq!(c[2], 0);
        assert!((1900..2100).contains(&c[0]), "{c:?}");
        // Equal loads spread evenly.
        let c = counts(&mut s, &loads(&[1, 1, 1, 1]), 4000);
        assert!(c.iter().all(|&n| (850..1150).contains(&n)), "{c:?}");
    }

    #[test]
    fn p2c_draws_in_proportion_to_share() {
        // [POOL-34] at equal loads the first drawn wins, so the picks follow
        // the shares.
        let mut s = Selector::new(Strategy::PowerOfTwoChoices);
        let mut c = loads(&[0, 0, 0]);
        c[0].share = 1;
        c[1].share = 1;
        c[2].share = 2;
        let n = counts(&mut s, &c, 8000);
        assert!((1800..2200).contains(&n[0]), "{n:?}");
        assert!((1800..2200).contains(&n[1]), "{n:?}");
        assert!((3700..4300).contains(&n[2]), "{n:?}");
        // A share of zero is drawn only as the second of two when it must
        // be: with equal loads it never wins.
        c[2].share = 0;
        let n = counts(&mut s, &c, 4000);
        assert_eq!(n[2], 0, "{n:?}");
        // Load still decides between the two drawn.
        let mut c = loads(&[0, 10]);
        c[1].share = 100;
        assert_eq!(counts(&mut s, &c, 100), [100, 0]);
    }

    #[test]
    fn least_pending_and_round_robin() {
        // [POOL-4]
        let mut s = Selector::new(Strategy::LeastPending);
        assert_eq!(counts(&mut s, &loads(&[3, 1, 2]), 10), [0, 10, 0]);
        // Ties rotate.
        assert_eq!(counts(&mut s, &loads(&[1, 1, 2]), 10), [5, 5, 0]);
        let mut s = Selector::new(Strategy::RoundRobin);
        let mut r = rng();
        let c = loads(&[5, 0, 9]);
        let picks: Vec<usize> = (0..6).map(|_| s.select(&c, &mut r).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn peak_ewma_prefers_fast_peers() {
        // [POOL-5]
        let mut s = Selector::new(Strategy::PeakEwma);
        let mut c = loads(&[0, 0]);
        c[0].rtt = 50 * MS;
        c[1].rtt = 5 * MS;
        assert_eq!(counts(&mut s, &c, 100), [0, 100]);
        // Until the fast one has ten times the calls in flight.
        c[1].in_flight = 10;
        assert_eq!(counts(&mut s, &c, 100), [100, 0]);
    }

    #[test]
    fn peak_ewma_estimate() {
        // [POOL-5]
        let t0 = Instant::now();
        let decay = Duration::from_secs(10);
        let mut e = PeakEwma::new(t0, 30 * MS, decay);
        assert_eq!(e.estimate(t0), 30 * MS);
        // A peak replaces the estimate at once.
        e.observe(t0, 200 * MS);
        assert_eq!(e.estimate(t0), 200 * MS);
        // A fast sample right away moves it little; after a while, more.
        e.observe(t0, MS);
        assert!(e.estimate(t0) >= 199 * MS);
        e.observe(t0 + decay, MS);
        let est = e.estimate(t0 + decay);
        assert!(est > 70 * MS && est < 80 * MS, "{est:?}");
        // With no samples it decays toward zero.
        assert!(e.estimate(t0 + decay * 50) < MS);
    }

    #[test]
    fn retries_avoid_tried_peers() {
        // [POOL-7]
        let mut s = Selector::new(Strategy::PowerOfTwoChoices);
        let mut c = loads(&[0, 10, 10]);
        c[0].tried = true;
        let n = counts(&mut s, &c, 200);
        assert_eq!(n[0], 0);
        assert_eq!(n[1] + n[2], 200);
        // When every peer was tried, any may be chosen again (by load).
        for x in &mut c {
            x.tried = true;
        }
        let n = counts(&mut s, &c, 300);
        assert!((170..230).contains(&n[0]), "{n:?}");
        assert!(n[1] > 0 && n[2] > 0, "{n:?}");
    }

    #[test]
    fn ramping_peers_take_a_share() {
        // [POOL-6]
        let t0 = Instant::now();
        let ramp = Duration::from_secs(10);
        assert_eq!(ramp_weight(t0, t0, ramp, 0.1), 0.1);
        let mid = ramp_weight(t0 + ramp / 2, t0, ramp, 0.1);
        assert!((mid - 0.55).abs() < 1e-9, "{mid}");
        assert_eq!(ramp_weight(t0 + ramp * 2, t0, ramp, 0.1), 1.0);
        assert_eq!(ramp_weight(t0, t0, Duration::ZERO, 0.1), 1.0);
        // A new, idle peer beside a busy one: least pending would send it
        // every call; at weight 0.1 it gets about a tenth of them.
        let mut s = Selector::new(Strategy::LeastPending);
        let mut c = loads(&[0, 5]);
        c[0].weight = 0.1;
        let n = counts(&mut s, &c, 2000);
        assert!((150..250).contains(&n[0]), "{n:?}");
        // Alone, a ramping peer still gets every call.
        c[0].weight = 0.01;
        assert_eq!(counts(&mut s, &c[..1], 100), [100]);
    }
}
