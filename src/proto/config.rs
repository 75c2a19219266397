//! Limits and options of one connection, each with a documented default.

use std::time::Duration;

use crate::frame::{MAX_FRAME_SIZE, ReassemblyLimits};

/// Options for a [`super::Connection`]. Every limit has a default tuned for a
/// service that talks to a handful of peers with many small calls in flight.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Our `host_port` init header: where we listen, or `0.0.0.0:0` when we
    /// accept no connections. Default `0.0.0.0:0`.
    pub host_port: String,
    /// Our `process_name` init header. Default `tchan[<pid>]`.
    pub process_name: String,
    /// Largest frame we send and accept (at most 65535). Default 65535.
    pub max_frame_size: usize,
    /// Time allowed for the init handshake. Default 5 s (tchannel-go's).
    pub handshake_timeout: Duration,
    /// Most inbound calls (the peer's requests) in flight; beyond it a new
    /// request is answered busy (0x03). Default 16384.
    pub max_inbound_calls: usize,
    /// Most outbound calls (our requests) in flight; beyond it a new call
    /// fails locally with busy. Default 16384.
    pub max_outbound_calls: usize,
    /// Most arg bytes held for inbound requests still in flight, counted as
    /// they arrive (zero-copy slices keep their read buffers alive until the
    /// call ends). A request that would go over is answered busy. Default 256 MiB.
    pub max_inbound_bytes: u64,
    /// Per-message limits: arg1 length, total arg bytes, frames; and whether a
    /// bad transport header fails the call (strict, the default).
    pub reassembly: ReassemblyLimits,
    /// Largest ttl we send, and the longest deadline we give an inbound call.
    /// Default 2 minutes (node's and tchannel-go's relay cap).
    pub max_ttl: Duration,
    /// How long ids of finished calls are remembered so late frames are
    /// dropped quietly. Default 3 s (tchannel-go's).
    pub tombstone_ttl: Duration,
    /// Most remembered ids per connection. Default 30000.
    pub max_tombstones: usize,
    /// Send a cancel frame (0xc0) when a caller gives up on a call.
    /// Default false (opt-in, as in tchannel-go).
    pub send_cancel: bool,
    /// Keepalive pings: send one every `interval` and close after
    /// `max_unanswered` in a row go unanswered. Default off.
    pub keepalive: Option<Keepalive>,
}

/// Keepalive settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Time between pings.
    pub interval: Duration,
    /// Unanswered pings in a row that close the connection.
    pub max_unanswered: u32,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            host_port: "0.0.0.0:0".into(),
            process_name: format!("tchan[{}]", std::process::id()),
            max_frame_size: MAX_FRAME_SIZE,
            handshake_timeout: Duration::from_secs(5),
            max_inbound_calls: 16384,
            max_outbound_calls: 16384,
            max_inbound_bytes: 256 * 1024 * 1024,
            reassembly: ReassemblyLimits::default(),
            max_ttl: Duration::from_secs(120),
            tombstone_ttl: Duration::from_secs(3),
            max_tombstones: 30_000,
            send_cancel: false,
            keepalive: None,
        }
    }
}
