//! Policy at the edge: kill switches, rate limits and a circuit breaker per
//! caller → service::endpoint edge (Hyperbahn's list, `spec/12-relay.md`
//! section 4).

use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

use crate::frame::ErrorCode;
use crate::peer::Class;
use crate::peer::breaker::{Admission, Breaker, BreakerConfig};
use crate::util::{HashMap, HashSet};

/// A caller → service::endpoint edge: one buffer holding the three names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EdgeKey {
    buf: Bytes,
    service_at: usize,
    endpoint_at: usize,
}

impl EdgeKey {
    /// The edge of a call from `caller` to `service::endpoint`.
    pub fn new(caller: &[u8], service: &[u8], endpoint: &[u8]) -> EdgeKey {
        let mut b = BytesMut::with_capacity(caller.len() + service.len() + endpoint.len());
        b.put_slice(caller);
        b.put_slice(service);
        b.put_slice(endpoint);
        EdgeKey {
            buf: b.freeze(),
            service_at: caller.len(),
            endpoint_at: caller.len() + service.len(),
        }
    }

    /// The caller's name (`cn`), empty when it gave none.
    pub fn caller(&self) -> &[u8] {
        &self.buf[..self.service_at]
    }

    /// The service routed to.
    pub fn service(&self) -> &[u8] {
        &self.buf[self.service_at..self.endpoint_at]
    }

    /// The endpoint (arg1).
    pub fn endpoint(&self) -> &[u8] {
        &self.buf[self.endpoint_at..]
    }

    /// The service, for messages.
    pub fn service_str(&self) -> String {
        String::from_utf8_lossy(self.service()).into_owned()
    }
}

impl std::fmt::Display for EdgeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}->{}::{}",
            String::from_utf8_lossy(self.caller()),
            String::from_utf8_lossy(self.service()),
            String::from_utf8_lossy(self.endpoint())
        )
    }
}

/// What the policy says about a new call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it.
    Pass,
    /// Answer it with this error.
    Reject(ErrorCode, String),
}

/// Requests per second over a sliding window of one second: the count of
/// the previous second, weighted by how much of it is still in the window,
/// plus the count of this one.
#[derive(Debug, Clone)]
struct RateLimiter {
    rps: f64,
    start: Option<Instant>,
    prev: u32,
    cur: u32,
}

impl RateLimiter {
    fn new(rps: f64) -> RateLimiter {
        RateLimiter {
            rps,
            start: None,
            prev: 0,
            cur: 0,
        }
    }

    fn allow(&mut self, now: Instant) -> bool {
        const SEC: Duration = Duration::from_secs(1);
        let start = *self.start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= 2 * SEC {
            self.prev = 0;
            self.cur = 0;
            self.start = Some(now);
        } else if elapsed >= SEC {
            self.prev = self.cur;
            self.cur = 0;
            self.start = Some(start + SEC);
        }
        let since = now.saturating_duration_since(self.start.unwrap_or(now));
        let frac = since.as_secs_f64().min(1.0);
        let estimate = f64::from(self.prev) * (1.0 - frac) + f64::from(self.cur);
        if estimate + 1.0 > self.rps {
            return false;
        }
        self.cur += 1;
        true
    }
}

/// A rate limit: per service, or per caller → service edge.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    /// The caller (`cn`) it applies to; `None` for every caller.
    pub caller: Option<String>,
    /// The service.
    pub service: String,
    /// Requests per second.
    pub rps: f64,
}

impl std::str::FromStr for RateLimit {
    type Err = String;

    /// `SERVICE=RPS` or `CALLER->SERVICE=RPS`.
    fn from_str(s: &str) -> Result<RateLimit, String> {
        let (edge, rps) = s.rsplit_once('=').ok_or_else(|| {
            format!("rate limit {s:?}: expected SERVICE=RPS or CALLER->SERVICE=RPS")
        })?;
        let rps: f64 = rps
            .trim()
            .parse()
            .ok()
            .filter(|r: &f64| r.is_finite() && *r >= 0.0)
            .ok_or_else(|| {
                format!("rate limit {s:?}: {rps:?} is not a number of requests per second")
            })?;
        let (caller, service) = parse_edge(edge).map_err(|e| format!("rate limit {s:?}: {e}"))?;
        Ok(RateLimit {
            caller,
            service,
            rps,
        })
    }
}

/// Parses `SERVICE` or `CALLER->SERVICE`.
pub fn parse_edge(s: &str) -> Result<(Option<String>, String), String> {
    let (caller, service) = match s.split_once("->") {
        Some((c, s)) => (Some(c.trim().to_owned()), s.trim().to_owned()),
        None => (None, s.trim().to_owned()),
    };
    if service.is_empty() || caller.as_deref() == Some("") {
        return Err("empty caller or service name".to_owned());
    }
    Ok((caller, service))
}

struct EdgeState {
    breaker: Breaker,
    used: Instant,
}

/// A caller → service::endpoint edge as the policy keys it: a seeded hash
/// of the three names (computed once per call, no allocation).
pub type EdgeId = u64;

/// The edge policy of a relay.
pub struct Policy {
    hasher: foldhash::fast::RandomState,
    kills: HashSet<u64>,
    service_limits: HashMap<Bytes, RateLimiter>,
    edge_limits: HashMap<u64, RateLimiter>,
    breakers: HashMap<EdgeId, EdgeState>,
    breaker_config: BreakerConfig,
    max_edges: usize,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("kills", &self.kills.len())
            .field("edges", &self.breakers.len())
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// No kills, no limits; a breaker per edge with `breaker_config`, for at
    /// most `max_edges` edges.
    pub fn new(breaker_config: BreakerConfig, max_edges: usize) -> Policy {
        Policy {
            hasher: foldhash::fast::RandomState::default(),
            kills: HashSet::default(),
            service_limits: HashMap::default(),
            edge_limits: HashMap::default(),
            breakers: HashMap::default(),
            breaker_config,
            max_edges,
        }
    }

    /// The id of the edge from `caller` to `service::endpoint`.
    pub fn edge(&self, caller: &[u8], service: &[u8], endpoint: &[u8]) -> EdgeId {
        self.hasher.hash_one((caller, service, endpoint))
    }

    fn pair(&self, caller: &[u8], service: &[u8]) -> u64 {
        self.hasher.hash_one((caller, service))
    }

    /// Rejects calls from `caller` to `service` with declined until the
    /// relay restarts (`--kill`).
    pub fn kill(&mut self, caller: &str, service: &str) {
        let k = self.pair(caller.as_bytes(), service.as_bytes());
        self.kills.insert(k);
    }

    /// Adds (or replaces) a rate limit (`--rate-limit`).
    pub fn limit(&mut self, limit: &RateLimit) {
        match &limit.caller {
            Some(c) => {
                let k = self.pair(c.as_bytes(), limit.service.as_bytes());
                self.edge_limits.insert(k, RateLimiter::new(limit.rps));
            }
            None => {
                self.service_limits.insert(
                    Bytes::copy_from_slice(limit.service.as_bytes()),
                    RateLimiter::new(limit.rps),
                );
            }
        }
    }

    /// Kill switches and rate limits for a new call from `caller` to
    /// `service`.
    pub fn check(&mut self, caller: &[u8], service: &[u8], now: Instant) -> Verdict {
        if !self.kills.is_empty() || !self.edge_limits.is_empty() {
            let k = self.pair(caller, service);
            if self.kills.contains(&k) {
                return Verdict::Reject(
                    ErrorCode::DECLINED,
                    format!(
                        "relay: calls from {} to {} are killed",
                        String::from_utf8_lossy(caller),
                        String::from_utf8_lossy(service)
                    ),
                );
            }
            if let Some(l) = self.edge_limits.get_mut(&k)
                && !l.allow(now)
            {
                return Verdict::Reject(
                    ErrorCode::BUSY,
                    format!(
                        "relay: rate limit of {}/s from {} to {} reached",
                        l.rps,
                        String::from_utf8_lossy(caller),
                        String::from_utf8_lossy(service)
                    ),
                );
            }
        }
        if let Some(l) = self.service_limits.get_mut(service)
            && !l.allow(now)
        {
            return Verdict::Reject(
                ErrorCode::BUSY,
                format!(
                    "relay: rate limit of {}/s for {} reached",
                    l.rps,
                    String::from_utf8_lossy(service)
                ),
            );
        }
        Verdict::Pass
    }

    /// Lets a call through the breaker of edge `id`: `None` while it is
    /// open.
    pub fn admit(&mut self, id: EdgeId, now: Instant) -> Option<Admission> {
        if self.max_edges == 0 {
            return Some(Admission::Normal);
        }
        if !self.breakers.contains_key(&id) {
            if self.breakers.len() >= self.max_edges {
                // Forget the edge idle longest.
                if let Some(old) = self
                    .breakers
                    .iter()
                    .min_by_key(|(_, s)| s.used)
                    .map(|(k, _)| *k)
                {
                    self.breakers.remove(&old);
                }
            }
            self.breakers.insert(
                id,
                EdgeState {
                    breaker: Breaker::new(self.breaker_config, now),
                    used: now,
                },
            );
        }
        let st = self.breakers.get_mut(&id)?;
        st.used = now;
        if st.breaker.poll_timeout().is_some_and(|t| t <= now) {
            st.breaker.handle_timeout(now);
        }
        st.breaker.admit()
    }

    /// The result of a call on edge `id`.
    pub fn on_result(&mut self, id: EdgeId, adm: Admission, class: Class, now: Instant, r: f64) {
        if let Some(st) = self.breakers.get_mut(&id) {
            st.breaker.on_result(now, adm, class, r);
        }
    }

    /// Edges with breaker state.
    pub fn edges(&self) -> usize {
        self.breakers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_allows_the_rate_and_no_more() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(10.0);
        let allowed = (0..30).filter(|_| l.allow(t0)).count();
        assert_eq!(allowed, 10);
        // Half a second into the next second, half of the last one counts.
        let t = t0 + Duration::from_millis(1500);
        let allowed = (0..30).filter(|_| l.allow(t)).count();
        assert_eq!(allowed, 5);
        let t = t0 + Duration::from_secs(10);
        assert!(l.allow(t));
    }

    #[test]
    fn rate_limit_specs_parse() {
        let l: RateLimit = "svc=100".parse().unwrap();
        assert_eq!((l.caller, l.service.as_str(), l.rps), (None, "svc", 100.0));
        let l: RateLimit = "me->svc=2.5".parse().unwrap();
        assert_eq!(l.caller.as_deref(), Some("me"));
        assert!("svc".parse::<RateLimit>().is_err());
        assert!("svc=x".parse::<RateLimit>().is_err());
        assert!("->svc=1".parse::<RateLimit>().is_err());
    }
}
