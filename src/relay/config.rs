//! The relay's limits and policy knobs.

use std::time::Duration;

use crate::peer::BreakerConfig;
use crate::peer::Strategy;

/// Limits and policy of a relay. Every limit applies per connection or per
/// call as documented, and is enforced where the bytes arrive.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RelayConfig {
    /// The `host_port` the relay announces in its init frames. The driver sets
    /// it to the listening address.
    pub host_port: String,
    /// The longest ttl forwarded; a call asking for more gets this much
    /// ([RELAY-3]). Default 2 min (tchannel-go's `RelayMaxTimeout`).
    pub max_ttl: Duration,
    /// Bytes of frames queued for one connection's socket and not yet
    /// written. A frame that would go over fails its call with busy
    /// ([RELAY-9]). Default 8 MiB.
    pub max_queued_bytes: usize,
    /// Bytes of frames held for one call while the relay connects to its
    /// destination. Default 1 MiB.
    pub max_held_bytes: usize,
    /// How long the id of a call the relay gave up on is remembered, so late
    /// frames for it are dropped. Default 3 s (tchannel-go's).
    pub tombstone_ttl: Duration,
    /// Most remembered ids per connection and direction; the oldest go first.
    /// Default 30,000 (tchannel-go's `RelayMaxTombs`).
    pub max_tombstones: usize,
    /// Calls in flight from one connection through the relay; a call req
    /// over it is answered busy. Default 16,384 (the connection core's).
    pub max_calls_per_connection: usize,
    /// Calls to the relay itself (`hyperbahn::*`, `Meta::*`) being read on
    /// one connection; one over it is answered busy. Default 16.
    pub max_local_calls: usize,
    /// (service, peer) advertisements held; an `ad` that would add one more
    /// is answered busy, and peers known at all are bounded at four times
    /// this. Default 10,000.
    pub max_advertisements: usize,
    /// Connections at once; more are closed at accept. Default 4096.
    pub max_connections: usize,
    /// How long an advertisement lasts without renewal. Default 150 s.
    pub advert_ttl: Duration,
    /// Largest call the relay answers itself (`hyperbahn::ad`, `unad`),
    /// all args together. Default 64 KiB.
    pub max_local_call_bytes: usize,
    /// Peers tried for one call whose first frame could not be sent (no
    /// connection, connect failed, breaker open). Default 3, at most 4.
    pub connect_attempts: usize,
    /// How long a connect and its handshake may take. Default 2 s.
    pub connect_timeout: Duration,
    /// The breaker of each destination peer.
    pub peer_breaker: BreakerConfig,
    /// The breaker of each caller → service::endpoint edge ([RELAY-14]).
    pub edge_breaker: BreakerConfig,
    /// Most edges with breaker state; past it the relay forgets the edge
    /// that has been idle longest. Default 10,000.
    pub max_edges: usize,
    /// How a destination is chosen among a service's peers.
    pub strategy: Strategy,
    /// Count calls, bytes and latency through the `metrics` facade.
    /// Default off.
    pub metrics: bool,
}

impl Default for RelayConfig {
    fn default() -> RelayConfig {
        RelayConfig {
            host_port: "0.0.0.0:0".to_owned(),
            max_ttl: Duration::from_secs(120),
            max_queued_bytes: 8 << 20,
            max_held_bytes: 1 << 20,
            tombstone_ttl: Duration::from_secs(3),
            max_tombstones: 30_000,
            max_calls_per_connection: 16_384,
            max_local_calls: 16,
            max_advertisements: 10_000,
            max_connections: 4096,
            advert_ttl: Duration::from_secs(150),
            max_local_call_bytes: 64 << 10,
            connect_attempts: 3,
            connect_timeout: Duration::from_secs(2),
            peer_breaker: BreakerConfig::default(),
            edge_breaker: BreakerConfig::default(),
            max_edges: 10_000,
            strategy: Strategy::default(),
            metrics: false,
        }
    }
}
