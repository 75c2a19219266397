//! The pool's options ([`PoolConfig`]) and the per-call ones ([`CallPolicy`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::backoff::Backoff;
use super::breaker::{BreakerConfig, Classifier, DefaultClassifier};
use super::budget::BudgetConfig;
use super::connect::{Connector, TcpConnector};
use super::select::Strategy;
use crate::Error;
use crate::frame::ErrorCode;

/// Options of a [`PeerPool`](super::PeerPool); every one has a default.
#[derive(Clone)]
pub struct PoolConfig {
    /// How a peer is chosen. Default [`Strategy::PowerOfTwoChoices`].
    pub(crate) selection: Strategy,
    /// Retries per call at most (attempts = 1 + retries). Default 2.
    /// A call can lower or raise it ([`CallPolicy::max_retries`]).
    pub(crate) max_retries: u32,
    /// The retry budget shared by every call of the pool. Default 20% of
    /// calls plus 10 a second, over 10 s.
    pub(crate) retry_budget: BudgetConfig,
    /// Per-peer circuit breakers. Default: open after 5 failures in a row or
    /// under 80% success over 30 s (20 calls at least); 1 s to 60 s open;
    /// 3 probes.
    pub(crate) breaker: BreakerConfig,
    /// What counts as a failure for the breakers. Default [`DefaultClassifier`].
    pub(crate) classifier: Arc<dyn Classifier>,
    /// Longest time one attempt may take (its ttl is the smaller of this and
    /// what is left of the call's timeout). Default none: the first attempt
    /// may use the whole timeout.
    pub(crate) attempt_timeout: Option<Duration>,
    /// Connections kept to each peer; a new one is opened (in the background)
    /// when every existing one has calls in flight. Default 1.
    pub(crate) connections_per_peer: usize,
    /// Connections (open or opening) over all peers at most. When the cap is
    /// reached, an idle connection to another peer is closed to make room;
    /// without one, the attempt fails locally with busy (and may be retried
    /// on a peer that has a connection). Default 1024.
    pub(crate) max_connections: usize,
    /// Time allowed to open a connection, handshake included (the channel's
    /// handshake timeout applies too). Default 3 s.
    pub(crate) connect_timeout: Duration,
    /// Delay before connecting again to a peer whose last connect failed.
    /// Default 100 ms doubling to 10 s, half random.
    pub(crate) reconnect: Backoff,
    /// Connections with no calls for this long are closed by the sweep.
    /// `None` keeps them. Default 5 minutes.
    pub(crate) idle_timeout: Option<Duration>,
    /// How often the sweep runs (idle connections, removed peers' connections,
    /// breaker timers). Default 10 s.
    pub(crate) sweep_interval: Duration,
    /// Active health checks: interval and the service to ask (opt-in).
    pub(crate) health_check: Option<(Duration, String)>,
    /// Calls with a shard key go to its owner on the hash ring (opt-in).
    pub(crate) shard_routing: Option<ShardRouting>,
    /// Time over which a peer added at runtime, or whose breaker just
    /// closed, grows to its full share of calls. Zero turns ramp-up off.
    /// Default 10 s.
    pub(crate) ramp_up: Duration,
    /// Share of its load a ramping peer starts with. Default 0.1.
    pub(crate) ramp_up_floor: f64,
    /// Round-trip estimate of a peer not yet measured ([`Strategy::PeakEwma`]).
    /// Default 30 ms.
    pub(crate) default_rtt: Duration,
    /// Decay time of the round-trip estimate. Default 10 s.
    pub(crate) rtt_decay: Duration,
    /// Opens connections. Default [`TcpConnector`].
    pub(crate) connector: Arc<dyn Connector>,
    /// Seed of the pool's random choices; `None` seeds from the OS. Set it to
    /// make selection reproducible in tests.
    pub(crate) seed: Option<u64>,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            selection: Strategy::default(),
            max_retries: 2,
            retry_budget: BudgetConfig::default(),
            breaker: BreakerConfig::default(),
            classifier: Arc::new(DefaultClassifier),
            attempt_timeout: None,
            connections_per_peer: 1,
            max_connections: 1024,
            connect_timeout: Duration::from_secs(3),
            reconnect: Backoff::default(),
            idle_timeout: Some(Duration::from_secs(300)),
            sweep_interval: Duration::from_secs(10),
            health_check: None,
            shard_routing: None,
            ramp_up: Duration::from_secs(10),
            ramp_up_floor: 0.1,
            default_rtt: Duration::from_millis(30),
            rtt_decay: Duration::from_secs(10),
            connector: Arc::new(TcpConnector),
            seed: None,
        }
    }
}

impl PoolConfig {
    /// How a peer is chosen. Default [`Strategy::PowerOfTwoChoices`].
    pub fn selection(&self) -> Strategy {
        self.selection
    }

    /// Sets [`PoolConfig::selection`].
    pub fn set_selection(&mut self, value: Strategy) -> &mut Self {
        self.selection = value;
        self
    }

    /// Retries per call at most (attempts = 1 + retries). Default 2.
    /// A call can lower or raise it ([`CallPolicy::max_retries`]).
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// Sets [`PoolConfig::max_retries`].
    pub fn set_max_retries(&mut self, value: u32) -> &mut Self {
        self.max_retries = value;
        self
    }

    /// The retry budget shared by every call of the pool. Default 20% of
    /// calls plus 10 a second, over 10 s.
    pub fn retry_budget(&self) -> BudgetConfig {
        self.retry_budget
    }

    /// Sets [`PoolConfig::retry_budget`].
    pub fn set_retry_budget(&mut self, value: BudgetConfig) -> &mut Self {
        self.retry_budget = value;
        self
    }

    /// Per-peer circuit breakers. Default: open after 5 failures in a row or
    /// under 80% success over 30 s (20 calls at least); 1 s to 60 s open;
    /// 3 probes.
    pub fn breaker(&self) -> BreakerConfig {
        self.breaker
    }

    /// Sets [`PoolConfig::breaker`].
    pub fn set_breaker(&mut self, value: BreakerConfig) -> &mut Self {
        self.breaker = value;
        self
    }

    /// What counts as a failure for the breakers. Default [`DefaultClassifier`].
    pub fn classifier(&self) -> &Arc<dyn Classifier> {
        &self.classifier
    }

    /// Sets [`PoolConfig::classifier`].
    pub fn set_classifier(&mut self, value: Arc<dyn Classifier>) -> &mut Self {
        self.classifier = value;
        self
    }

    /// Longest time one attempt may take (its ttl is the smaller of this and
    /// what is left of the call's timeout). Default none: the first attempt
    /// may use the whole timeout.
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.attempt_timeout
    }

    /// Sets [`PoolConfig::attempt_timeout`].
    pub fn set_attempt_timeout(&mut self, value: Option<Duration>) -> &mut Self {
        self.attempt_timeout = value;
        self
    }

    /// Connections kept to each peer; a new one is opened (in the background)
    /// when every existing one has calls in flight. Default 1.
    pub fn connections_per_peer(&self) -> usize {
        self.connections_per_peer
    }

    /// Sets [`PoolConfig::connections_per_peer`].
    pub fn set_connections_per_peer(&mut self, value: usize) -> Result<&mut Self, Error> {
        if value == 0 {
            return Err(Error::new(
                ErrorCode::BAD_REQUEST,
                "connections_per_peer must be at least 1",
            ));
        }
        self.connections_per_peer = value;
        Ok(self)
    }

    /// Connections (open or opening) over all peers at most. When the cap is
    /// reached, an idle connection to another peer is closed to make room;
    /// without one, the attempt fails locally with busy (and may be retried
    /// on a peer that has a connection). Default 1024.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Sets [`PoolConfig::max_connections`].
    pub fn set_max_connections(&mut self, value: usize) -> Result<&mut Self, Error> {
        if value == 0 {
            return Err(Error::new(
                ErrorCode::BAD_REQUEST,
                "max_connections must be at least 1",
            ));
        }
        self.max_connections = value;
        Ok(self)
    }

    /// Time allowed to open a connection, handshake included (the channel's
    /// handshake timeout applies too). Default 3 s.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Sets [`PoolConfig::connect_timeout`].
    pub fn set_connect_timeout(&mut self, value: Duration) -> &mut Self {
        self.connect_timeout = value;
        self
    }

    /// Delay before connecting again to a peer whose last connect failed.
    /// Default 100 ms doubling to 10 s, half random.
    pub fn reconnect(&self) -> Backoff {
        self.reconnect
    }

    /// Sets [`PoolConfig::reconnect`].
    pub fn set_reconnect(&mut self, value: Backoff) -> &mut Self {
        self.reconnect = value;
        self
    }

    /// Connections with no calls for this long are closed by the sweep.
    /// `None` keeps them. Default 5 minutes.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// Sets [`PoolConfig::idle_timeout`].
    pub fn set_idle_timeout(&mut self, value: Option<Duration>) -> &mut Self {
        self.idle_timeout = value;
        self
    }

    /// How often the sweep runs (idle connections, removed peers' connections,
    /// breaker timers). Default 10 s.
    pub fn sweep_interval(&self) -> Duration {
        self.sweep_interval
    }

    /// Active health checks (POOL-29): every `interval`, each peer with an
    /// open connection is asked `Meta::health` for TRAFFIC, as `service`
    /// (`"tchannel"` reaches any tchan peer); a peer that answers not ok
    /// (a draining one, say) is left out of selection, as an open breaker
    /// is, until it answers ok. An error or no answer changes nothing (the
    /// breaker judges failures). Off by default; needs the `thrift` feature
    /// (without it, a no-op).
    pub fn health_check(&self) -> Option<(Duration, &str)> {
        self.health_check.as_ref().map(|(d, s)| (*d, s.as_str()))
    }

    /// Sets [`PoolConfig::health_check`]; `None` turns it off.
    pub fn set_health_check(
        &mut self,
        value: Option<(Duration, String)>,
    ) -> Result<&mut Self, Error> {
        if value.as_ref().is_some_and(|(d, _)| d.is_zero()) {
            return Err(Error::new(
                ErrorCode::BAD_REQUEST,
                "the health check interval must be over zero",
            ));
        }
        self.health_check = value;
        Ok(self)
    }

    /// Shard-key routing (POOL-31): a call with a shard key (`sk`) goes to
    /// the key's owner on a ringpop-compatible hash ring of the pool's
    /// peers ([`crate::peer::HashRing`]); calls without one keep the normal
    /// selection. `None` (the default) turns it off.
    pub fn shard_routing(&self) -> Option<ShardRouting> {
        self.shard_routing
    }

    /// Sets [`PoolConfig::shard_routing`].
    pub fn set_shard_routing(&mut self, value: Option<ShardRouting>) -> &mut Self {
        self.shard_routing = value;
        self
    }

    /// Sets [`PoolConfig::sweep_interval`].
    pub fn set_sweep_interval(&mut self, value: Duration) -> Result<&mut Self, Error> {
        if value.is_zero() {
            return Err(Error::new(
                ErrorCode::BAD_REQUEST,
                "sweep_interval must be over zero",
            ));
        }
        self.sweep_interval = value;
        Ok(self)
    }

    /// Time over which a peer added at runtime, or whose breaker just
    /// closed, grows to its full share of calls. Zero turns ramp-up off.
    /// Default 10 s.
    pub fn ramp_up(&self) -> Duration {
        self.ramp_up
    }

    /// Sets [`PoolConfig::ramp_up`].
    pub fn set_ramp_up(&mut self, value: Duration) -> &mut Self {
        self.ramp_up = value;
        self
    }

    /// Share of its load a ramping peer starts with. Default 0.1.
    pub fn ramp_up_floor(&self) -> f64 {
        self.ramp_up_floor
    }

    /// Sets [`PoolConfig::ramp_up_floor`].
    pub fn set_ramp_up_floor(&mut self, value: f64) -> Result<&mut Self, Error> {
        if !(value > 0.0 && value <= 1.0) {
            return Err(Error::new(
                ErrorCode::BAD_REQUEST,
                format!("ramp_up_floor {value} is outside (0, 1]"),
            ));
        }
        self.ramp_up_floor = value;
        Ok(self)
    }

    /// Round-trip estimate of a peer not yet measured ([`Strategy::PeakEwma`]).
    /// Default 30 ms.
    pub fn default_rtt(&self) -> Duration {
        self.default_rtt
    }

    /// Sets [`PoolConfig::default_rtt`].
    pub fn set_default_rtt(&mut self, value: Duration) -> &mut Self {
        self.default_rtt = value;
        self
    }

    /// Decay time of the round-trip estimate. Default 10 s.
    pub fn rtt_decay(&self) -> Duration {
        self.rtt_decay
    }

    /// Sets [`PoolConfig::rtt_decay`].
    pub fn set_rtt_decay(&mut self, value: Duration) -> &mut Self {
        self.rtt_decay = value;
        self
    }

    /// Opens connections. Default [`TcpConnector`].
    pub fn connector(&self) -> &Arc<dyn Connector> {
        &self.connector
    }

    /// Sets [`PoolConfig::connector`].
    pub fn set_connector(&mut self, value: Arc<dyn Connector>) -> &mut Self {
        self.connector = value;
        self
    }

    /// Seed of the pool's random choices; `None` seeds from the OS. Set it to
    /// make selection reproducible in tests.
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// Sets [`PoolConfig::seed`].
    pub fn set_seed(&mut self, value: Option<u64>) -> &mut Self {
        self.seed = value;
        self
    }
}

impl fmt::Debug for PoolConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolConfig")
            .field("selection", &self.selection)
            .field("max_retries", &self.max_retries)
            .field("retry_budget", &self.retry_budget)
            .field("breaker", &self.breaker)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("connections_per_peer", &self.connections_per_peer)
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect", &self.reconnect)
            .field("idle_timeout", &self.idle_timeout)
            .field("sweep_interval", &self.sweep_interval)
            .field("ramp_up", &self.ramp_up)
            .field("ramp_up_floor", &self.ramp_up_floor)
            .field("default_rtt", &self.default_rtt)
            .field("rtt_decay", &self.rtt_decay)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

/// Per-call choices that only the caller can make.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallPolicy {
    /// The call may run more than once: unexpected errors (0x05) are then
    /// retried too. Default false.
    pub idempotent: bool,
    /// Overrides [`PoolConfig::max_retries`] for this call.
    pub max_retries: Option<u32>,
    /// Overrides [`PoolConfig::attempt_timeout`] for this call.
    pub attempt_timeout: Option<Duration>,
}

/// What a pool does with a call whose shard key's owner is unavailable
/// (breaker open, not healthy, no connection possible, or already tried).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShardRouting {
    /// The next peer on the ring that is available takes the call.
    NextOnRing,
    /// The call fails with declined (for callers that need strict ownership).
    Strict,
}
