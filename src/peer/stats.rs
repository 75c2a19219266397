//! What the pool reports: per call ([`CallStats`]), over its life
//! ([`PoolStats`]) and per peer ([`PeerStatus`]).

use std::time::Duration;

use super::breaker::BreakerState;
use super::retry::Stop;

/// What happened to one call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Attempts made (0 when the pool declined at once).
    pub attempts: u32,
    /// The peers tried, in order (left empty by [`PeerPool::call_counting`](super::PeerPool::call_counting)).
    pub peers: Vec<String>,
    /// Why the last failure was not retried (`None` on success).
    pub stop: Option<Stop>,
}

impl CallStats {
    /// Attempts after the first.
    pub fn retries(&self) -> u32 {
        self.attempts.saturating_sub(1)
    }
}

/// Counters over the pool's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Calls made.
    pub calls: u64,
    /// Attempts made (calls plus retries, minus calls declined at once).
    pub attempts: u64,
    /// Retries made.
    pub retries: u64,
    /// Retries the budget refused.
    pub budget_exhausted: u64,
    /// Calls declined at once because no peer could take them.
    pub declined: u64,
    /// Connects started.
    pub connects: u64,
    /// Connects that failed.
    pub connect_failures: u64,
    /// Connections open or opening now.
    pub connections: usize,
}

/// One peer as the pool sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStatus {
    /// `host:port`.
    pub addr: String,
    /// Its breaker's state.
    pub breaker: BreakerState,
    /// Attempts in flight (including those waiting for a connection).
    pub in_flight: usize,
    /// Open connections.
    pub connections: usize,
    /// A connect is under way.
    pub connecting: bool,
    /// Connects that failed in a row.
    pub connect_failures: u32,
    /// Round-trip estimate (peak EWMA).
    pub rtt: Duration,
    /// Ramp-up weight, 1 at full share.
    pub ramp: f64,
    /// Times its breaker opened.
    pub times_opened: u64,
    /// Times its breaker closed again after probing.
    pub times_recovered: u64,
    /// The last active health check's verdict (`None`: none yet, or checks
    /// are off); `Some(false)` keeps the peer out of selection.
    pub healthy: Option<bool>,
    /// Its source's priority (lower is preferred; 0 unless a source such as
    /// DNS SRV gave one).
    pub priority: u16,
    /// Its source's weight within its priority (1 unless a source gave one).
    pub weight: u16,
}
