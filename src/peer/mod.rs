//! The peer pool: makes a fleet of peers look like one reliable service.
//!
//! Callers talk to a service, not to a host. A [`PeerPool`] holds the peers
//! (`host:port`), opens connections to them lazily, picks one per attempt,
//! retries what TChannel says may be retried within the call's deadline and a
//! retry budget, and stops sending to peers whose circuit breaker is open.
//! The requirements are in `spec/11-peer-policy.md` (`POOL-N`).
//!
//! # Layout
//!
//! Every decision is a small pure core, with time passed in as `now` and
//! randomness as a parameter, unit-tested without tokio:
//!
//! - [`select`]: power of two choices (default), least pending, round robin,
//!   peak EWMA; ramp-up; avoiding the peers a call already tried.
//! - [`breaker`]: Closed → Open → HalfOpen, fed by a pluggable [`Classifier`].
//! - [`budget`]: the retry budget over a sliding window.
//! - [`retry`]: whether one failed attempt is tried again.
//! - [`backoff`]: exponential backoff with jitter (reconnects, open breakers).
//! - `pick.rs`: the choice of peer and connection for one attempt, from the
//!   facts the pool gathers under its lock.
//! - `classify.rs`: what a result says about a peer ([`Classifier`]).
//!
//! The thin async shell is `pool.rs` ([`PeerPool`]: connections, the call
//! loop, the sweep task), with its options in `config.rs`, its reports in
//! `stats.rs`, how it connects in `connect.rs`, and `source.rs`
//! ([`PeerSource`]: where peer lists come from), with `dns.rs` (feature
//! `dns`: [`DnsResolver`], peers from A/AAAA and SRV records).

pub mod backoff;
pub mod breaker;
pub mod budget;
mod classify;
mod config;
mod connect;
#[cfg(feature = "dns")]
pub mod dns;
pub mod ownership;
mod pick;
mod pool;
pub mod retry;
pub mod ring;
pub mod select;
mod source;
mod stats;
mod window;

pub use backoff::Backoff;
pub use breaker::{BreakerConfig, BreakerState, Class, Classifier, DefaultClassifier, SuccessRate};
pub use budget::BudgetConfig;
pub use config::{CallPolicy, PoolConfig, ShardRouting};
pub use connect::{Connector, TcpConnector};
#[cfg(feature = "dns")]
pub use dns::{DnsAnswer, DnsConfig, DnsError, DnsPeers, DnsQuery, DnsResolver};
pub use ownership::Ownership;
pub use pool::PeerPool;
pub use retry::Stop;
pub use ring::HashRing;
pub use select::Strategy;
pub use source::{
    PeerEntry, PeerFile, PeerSet, PeerSource, StaticPeers, UnionPeers, parse_peer_list,
};
pub use stats::{CallStats, PeerStatus, PoolStats};

pub(crate) use crate::util::now;
