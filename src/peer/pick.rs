//! The pool's choice, for one attempt, of a peer and of a connection to it:
//! pure functions of what the pool knows (no lock, no clock, no I/O), so
//! that the rules are tested here without tokio and `pool.rs` only gathers
//! the facts and applies the choice.

use rand::Rng;

use super::select::{Candidate, Selector};
use std::time::Duration;

/// What the pool knows about one peer when an attempt starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerFacts {
    /// Its breaker lets calls through (closed, or half-open with a probe
    /// slot).
    pub(crate) available: bool,
    /// It has a connection that accepts new calls.
    pub(crate) usable: bool,
    /// A connect is under way, or one may start (no reconnect backoff).
    pub(crate) can_connect: bool,
    /// Attempts in flight to it.
    pub(crate) in_flight: usize,
    /// Round-trip estimate (peak EWMA only; zero otherwise).
    pub(crate) rtt: Duration,
    /// Ramp-up weight in `(0, 1]`.
    pub(crate) weight: f64,
    /// This call already tried it.
    pub(crate) tried: bool,
    /// Its source's priority: lower is preferred (DNS SRV).
    pub(crate) priority: u16,
    /// Its source's weight within its priority (DNS SRV).
    pub(crate) share: u16,
}

/// The peer for the attempt (an index into `facts`), or why there is none.
/// `candidates` and `index` are scratch space kept across calls.
pub(crate) fn choose_peer<R: Rng + ?Sized>(
    facts: &[PeerFacts],
    selector: &mut Selector,
    rng: &mut R,
    candidates: &mut Vec<Candidate>,
    index: &mut Vec<usize>,
) -> Result<usize, &'static str> {
    if facts.is_empty() {
        return Err("the peer pool is empty");
    }
    candidates.clear();
    index.clear();
    let mut open = 0;
    // [POOL-8] open peers are skipped; [POOL-10] so is a peer waiting out its
    // reconnect backoff.
    let eligible = |p: &PeerFacts| p.available && (p.usable || p.can_connect);
    // [POOL-34] the lowest priority with an eligible peer (one this call has
    // not tried, if there is one), and within it weight 0 only when no
    // other is eligible.
    let (mut lowest, mut lowest_untried) = (None::<u16>, None::<u16>);
    for p in facts {
        if !p.available {
            open += 1;
        }
        if eligible(p) {
            lowest = Some(lowest.map_or(p.priority, |l| l.min(p.priority)));
            if !p.tried {
                lowest_untried = Some(lowest_untried.map_or(p.priority, |l| l.min(p.priority)));
            }
        }
    }
    let group = lowest_untried.or(lowest);
    let in_group = |p: &PeerFacts| eligible(p) && Some(p.priority) == group;
    // The weight-0 rule looks at the peers the selector will prefer: the
    // untried ones, when the group has any.
    let untried_only = lowest_untried.is_some();
    let weighted = facts
        .iter()
        .any(|p| in_group(p) && p.share > 0 && !(untried_only && p.tried));
    for (i, p) in facts.iter().enumerate() {
        if !in_group(p) || (weighted && p.share == 0) {
            continue;
        }
        candidates.push(Candidate {
            in_flight: p.in_flight,
            rtt: p.rtt,
            weight: p.weight,
            tried: p.tried,
            share: u32::from(p.share.max(u16::from(!weighted))),
        });
        index.push(i);
    }
    match selector.select(candidates, rng) {
        Some(c) => Ok(index[c]),
        None if open == facts.len() => Err("every peer's circuit breaker is open"),
        None => Err("no peer can take a call now (circuit breakers open, reconnects backing off)"),
    }
}

/// One connection of the chosen peer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnFacts {
    /// Open and accepting new calls (not draining).
    pub(crate) usable: bool,
    /// Our calls in flight on it.
    pub(crate) in_flight: usize,
}

/// The limits and state that decide whether the peer gets a new connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnRules {
    /// Connections wanted per peer (at least 1).
    pub(crate) per_peer: usize,
    /// No connect to this peer is under way and its reconnect backoff is over.
    pub(crate) may_connect: bool,
    /// Connections open or opening over the whole pool.
    pub(crate) open: usize,
    /// The pool's cap on them.
    pub(crate) max: usize,
}

/// Whether to open one more connection to the chosen peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grow {
    /// No.
    No,
    /// Yes, there is room.
    Connect,
    /// Yes, once an idle connection to another peer is closed to make room
    /// (the pool is at its cap and this peer has no usable connection).
    EvictIdle,
}

/// The connection for the attempt: the least busy usable one, if any; and
/// whether to open another: when none is usable, or (in the background)
/// when all are busy and the peer has fewer than `per_peer`.
pub(crate) fn choose_conn(conns: &[ConnFacts], rules: ConnRules) -> (Option<usize>, Grow) {
    let mut best: Option<(usize, usize)> = None;
    let mut usable = 0;
    for (k, c) in conns.iter().enumerate() {
        if c.usable {
            usable += 1;
            if best.is_none_or(|(_, load)| c.in_flight < load) {
                best = Some((k, c.in_flight));
            }
        }
    }
    let wants_more = rules.may_connect
        && usable < rules.per_peer.max(1)
        && best.is_none_or(|(_, load)| load > 0);
    let grow = if !wants_more {
        Grow::No
    } else if rules.open < rules.max {
        Grow::Connect
    } else if best.is_none() {
        // [POOL-11] room is made by closing an idle connection elsewhere.
        Grow::EvictIdle
    } else {
        Grow::No
    };
    (best.map(|(k, _)| k), grow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::Strategy;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn peer() -> PeerFacts {
        PeerFacts {
            available: true,
            usable: true,
            can_connect: true,
            in_flight: 0,
            rtt: Duration::ZERO,
            weight: 1.0,
            tried: false,
            priority: 0,
            share: 1,
        }
    }

    fn choose(facts: &[PeerFacts]) -> Result<usize, &'static str> {
        let mut sel = Selector::new(Strategy::LeastPending);
        let mut rng = SmallRng::seed_from_u64(7);
        choose_peer(facts, &mut sel, &mut rng, &mut Vec::new(), &mut Vec::new())
    }

    #[test]
    fn open_breakers_and_backing_off_peers_are_skipped() {
        // [POOL-8] [POOL-10]
        let open = PeerFacts {
            available: false,
            ..peer()
        };
        let backing_off = PeerFacts {
            usable: false,
            can_connect: false,
            ..peer()
        };
        let busy = PeerFacts {
            in_flight: 5,
            ..peer()
        };
        assert_eq!(choose(&[open, backing_off, busy]), Ok(2));
        assert_eq!(choose(&[]), Err("the peer pool is empty"));
        assert_eq!(
            choose(&[open, open]),
            Err("every peer's circuit breaker is open")
        );
        assert_eq!(
            choose(&[open, backing_off]),
            Err("no peer can take a call now (circuit breakers open, reconnects backing off)")
        );
        // Least pending among the rest.
        let idle = peer();
        assert_eq!(choose(&[busy, open, idle]), Ok(2));
        // A peer without a usable connection is still a candidate while it
        // may connect.
        let connecting = PeerFacts {
            usable: false,
            ..peer()
        };
        assert_eq!(choose(&[open, connecting]), Ok(1));
    }

    #[test]
    fn the_lowest_priority_with_an_eligible_peer_is_used() {
        // [POOL-34]
        let at = |priority: u16, share: u16| PeerFacts {
            priority,
            share,
            ..peer()
        };
        let open = PeerFacts {
            available: false,
            ..at(0, 1)
        };
        // Priority 0 wins while one of its peers is eligible.
        assert_eq!(choose(&[at(1, 1), open, at(0, 1)]), Ok(2));
        // Then the next priority.
        assert_eq!(choose(&[at(2, 1), open, at(1, 1)]), Ok(2));
        // A retry moves to the next priority when the first is all tried.
        let tried = PeerFacts {
            tried: true,
            ..at(0, 1)
        };
        assert_eq!(choose(&[tried, at(1, 1)]), Ok(1));
        // ... and back to a tried one only when nothing else is left.
        assert_eq!(choose(&[tried, open]), Ok(0));
        // Weight 0 only when no other of its priority is eligible.
        let busy_weighted = PeerFacts {
            in_flight: 50,
            ..at(0, 5)
        };
        assert_eq!(choose(&[at(0, 0), busy_weighted]), Ok(1));
        let weighted_open = PeerFacts {
            available: false,
            ..at(0, 5)
        };
        assert_eq!(choose(&[at(0, 0), weighted_open, at(1, 5)]), Ok(0));
        // A retry takes the untried weight-0 peer over the weighted one it
        // already tried.
        let tried_weighted = PeerFacts {
            tried: true,
            ..at(0, 5)
        };
        assert_eq!(choose(&[tried_weighted, at(0, 0), at(1, 5)]), Ok(1));
    }

    fn rules(per_peer: usize, open: usize, max: usize) -> ConnRules {
        ConnRules {
            per_peer,
            may_connect: true,
            open,
            max,
        }
    }

    const IDLE: ConnFacts = ConnFacts {
        usable: true,
        in_flight: 0,
    };

    #[test]
    fn the_least_busy_usable_connection_is_chosen() {
        let busy = ConnFacts {
            usable: true,
            in_flight: 3,
        };
        let draining = ConnFacts {
            usable: false,
            in_flight: 0,
        };
        let light = ConnFacts {
            usable: true,
            in_flight: 1,
        };
        assert_eq!(
            choose_conn(&[busy, draining, light], rules(1, 3, 10)).0,
            Some(2)
        );
        assert_eq!(choose_conn(&[draining], rules(1, 1, 10)).0, None);
    }

    #[test]
    fn a_peer_grows_to_its_share_only_when_its_connections_are_busy() {
        let busy = ConnFacts {
            usable: true,
            in_flight: 2,
        };
        // None yet: connect.
        assert_eq!(choose_conn(&[], rules(1, 0, 10)), (None, Grow::Connect));
        // One idle connection: use it, nothing more.
        assert_eq!(choose_conn(&[IDLE], rules(2, 1, 10)), (Some(0), Grow::No));
        // All busy and under the share: use it and grow in the background.
        assert_eq!(
            choose_conn(&[busy], rules(2, 1, 10)),
            (Some(0), Grow::Connect)
        );
        // At the share: no more.
        assert_eq!(choose_conn(&[busy, busy], rules(2, 2, 10)).1, Grow::No);
        // A connect already under way or a backoff: no more.
        let waiting = ConnRules {
            may_connect: false,
            ..rules(2, 1, 10)
        };
        assert_eq!(choose_conn(&[], waiting), (None, Grow::No));
    }

    #[test]
    fn at_the_cap_only_a_peer_without_a_connection_evicts() {
        // [POOL-11]
        let busy = ConnFacts {
            usable: true,
            in_flight: 2,
        };
        assert_eq!(choose_conn(&[], rules(1, 10, 10)), (None, Grow::EvictIdle));
        assert_eq!(choose_conn(&[busy], rules(2, 10, 10)), (Some(0), Grow::No));
    }
}
