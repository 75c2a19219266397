//! Limits and options of one connection, each with a documented default.

use std::time::Duration;

use crate::frame::{MAX_FRAME_SIZE, ReassemblyLimits};

/// The smallest `max_frame_size` a connection accepts: room for a call's
/// fixed fields, a few headers and the start of its args.
pub const MIN_FRAME_SIZE: usize = 128;

/// Options for a [`super::Connection`]. Every limit has a default tuned for a
/// service that talks to a handful of peers with many small calls in flight.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Our `host_port` init header: where we listen, or `0.0.0.0:0` when we
    /// accept no connections. Default `0.0.0.0:0`.
    pub(crate) host_port: String,
    /// Our `process_name` init header. Default `tchan[<pid>]`.
    pub(crate) process_name: String,
    /// Largest frame we send and accept (at most 65535). Default 65535.
    pub(crate) max_frame_size: usize,
    /// Time allowed for the init handshake. Default 5 s (tchannel-go's).
    pub(crate) handshake_timeout: Duration,
    /// Most inbound calls (the peer's requests) in flight; beyond it a new
    /// request is answered busy (0x03). Default 16384.
    pub(crate) max_inbound_calls: usize,
    /// Most outbound calls (our requests) in flight; beyond it a new call
    /// fails locally with busy. Default 16384.
    pub(crate) max_outbound_calls: usize,
    /// Most arg bytes held for inbound requests still in flight, counted as
    /// they arrive (zero-copy slices keep their read buffers alive until the
    /// call ends). A request that would go over is answered busy. Default 256 MiB.
    pub(crate) max_inbound_bytes: u64,
    /// Most arg bytes held for the responses to our calls.
    pub(crate) max_response_bytes: u64,
    /// Per-message limits: arg1 length, total arg bytes, frames; and whether a
    /// bad transport header fails the call (strict, the default).
    pub(crate) reassembly: ReassemblyLimits,
    /// Largest ttl we send, and the longest deadline we give an inbound call.
    /// Default 2 minutes (node's and tchannel-go's relay cap).
    pub(crate) max_ttl: Duration,
    /// How long ids of finished calls are remembered so late frames are
    /// dropped quietly. Default 3 s (tchannel-go's).
    pub(crate) tombstone_ttl: Duration,
    /// Most remembered ids per connection. Default 30000.
    pub(crate) max_tombstones: usize,
    /// Send a cancel frame (0xc0) when a caller gives up on a call.
    /// Default false (opt-in, as in tchannel-go).
    pub(crate) send_cancel: bool,
    /// Keepalive pings: send one every `interval` and close after
    /// `max_unanswered` in a row go unanswered. Default off.
    pub(crate) keepalive: Option<Keepalive>,
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
            max_response_bytes: 256 * 1024 * 1024,
            reassembly: ReassemblyLimits::default(),
            max_ttl: Duration::from_secs(120),
            tombstone_ttl: Duration::from_secs(3),
            max_tombstones: 30_000,
            send_cancel: false,
            keepalive: None,
        }
    }
}

impl ConnectionConfig {
    /// Our `host_port` init header: where we listen, or `0.0.0.0:0` when we
    /// accept no connections. Default `0.0.0.0:0`.
    pub fn host_port(&self) -> &str {
        &self.host_port
    }

    /// Sets [`ConnectionConfig::host_port`].
    pub fn set_host_port(&mut self, value: impl Into<String>) -> &mut Self {
        self.host_port = value.into();
        self
    }

    /// Our `process_name` init header. Default `tchan[<pid>]`.
    pub fn process_name(&self) -> &str {
        &self.process_name
    }

    /// Sets [`ConnectionConfig::process_name`].
    pub fn set_process_name(&mut self, value: impl Into<String>) -> &mut Self {
        self.process_name = value.into();
        self
    }

    /// Largest frame we send and accept, from [`MIN_FRAME_SIZE`] to 65535
    /// (an error outside that). Default 65535.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Sets [`ConnectionConfig::max_frame_size`].
    pub fn set_max_frame_size(&mut self, value: usize) -> Result<&mut Self, crate::Error> {
        if !(MIN_FRAME_SIZE..=MAX_FRAME_SIZE).contains(&value) {
            return Err(crate::Error::new(
                crate::frame::ErrorCode::BAD_REQUEST,
                format!("max_frame_size {value} is outside {MIN_FRAME_SIZE}..={MAX_FRAME_SIZE}"),
            ));
        }
        self.max_frame_size = value;
        Ok(self)
    }

    /// Time allowed for the init handshake. Default 5 s (tchannel-go's).
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Sets [`ConnectionConfig::handshake_timeout`].
    pub fn set_handshake_timeout(&mut self, value: Duration) -> &mut Self {
        self.handshake_timeout = value;
        self
    }

    /// Most inbound calls (the peer's requests) in flight; beyond it a new
    /// request is answered busy (0x03). Default 16384.
    pub fn max_inbound_calls(&self) -> usize {
        self.max_inbound_calls
    }

    /// Sets [`ConnectionConfig::max_inbound_calls`].
    pub fn set_max_inbound_calls(&mut self, value: usize) -> &mut Self {
        self.max_inbound_calls = value;
        self
    }

    /// Most outbound calls (our requests) in flight; beyond it a new call
    /// fails locally with busy. Default 16384.
    pub fn max_outbound_calls(&self) -> usize {
        self.max_outbound_calls
    }

    /// Sets [`ConnectionConfig::max_outbound_calls`].
    pub fn set_max_outbound_calls(&mut self, value: usize) -> &mut Self {
        self.max_outbound_calls = value;
        self
    }

    /// Most arg bytes held for inbound requests still in flight, counted as
    /// they arrive (zero-copy slices keep their read buffers alive until the
    /// call ends). A request that would go over is answered busy. Default 256 MiB.
    pub fn max_inbound_bytes(&self) -> u64 {
        self.max_inbound_bytes
    }

    /// Sets [`ConnectionConfig::max_inbound_bytes`].
    pub fn set_max_inbound_bytes(&mut self, value: u64) -> &mut Self {
        self.max_inbound_bytes = value;
        self
    }

    /// Most arg bytes held, together, for the responses to our calls on one
    /// connection: those of responses still arriving, and of streamed
    /// responses what their consumers have not taken yet. The call whose
    /// response would go over fails locally with bad request (0x06); the
    /// connection stays open for the others. Default 256 MiB.
    pub fn max_response_bytes(&self) -> u64 {
        self.max_response_bytes
    }

    /// Sets [`ConnectionConfig::max_response_bytes`].
    pub fn set_max_response_bytes(&mut self, value: u64) -> &mut Self {
        self.max_response_bytes = value;
        self
    }

    /// Per-message limits: arg1 length, total arg bytes, frames; and whether a
    /// bad transport header fails the call (strict, the default).
    pub fn reassembly(&self) -> ReassemblyLimits {
        self.reassembly
    }

    /// Sets [`ConnectionConfig::reassembly`].
    pub fn set_reassembly(&mut self, value: ReassemblyLimits) -> &mut Self {
        self.reassembly = value;
        self
    }

    /// The per-message limits, to change one in place.
    pub fn reassembly_mut(&mut self) -> &mut ReassemblyLimits {
        &mut self.reassembly
    }

    /// Largest ttl we send, and the longest deadline we give an inbound call.
    /// Default 2 minutes (node's and tchannel-go's relay cap).
    pub fn max_ttl(&self) -> Duration {
        self.max_ttl
    }

    /// Sets [`ConnectionConfig::max_ttl`].
    pub fn set_max_ttl(&mut self, value: Duration) -> &mut Self {
        self.max_ttl = value;
        self
    }

    /// How long ids of finished calls are remembered so late frames are
    /// dropped quietly. Default 3 s (tchannel-go's).
    pub fn tombstone_ttl(&self) -> Duration {
        self.tombstone_ttl
    }

    /// Sets [`ConnectionConfig::tombstone_ttl`].
    pub fn set_tombstone_ttl(&mut self, value: Duration) -> &mut Self {
        self.tombstone_ttl = value;
        self
    }

    /// Most remembered ids per connection. Default 30000.
    pub fn max_tombstones(&self) -> usize {
        self.max_tombstones
    }

    /// Sets [`ConnectionConfig::max_tombstones`].
    pub fn set_max_tombstones(&mut self, value: usize) -> &mut Self {
        self.max_tombstones = value;
        self
    }

    /// Send a cancel frame (0xc0) when a caller gives up on a call.
    /// Default false (opt-in, as in tchannel-go).
    pub fn send_cancel(&self) -> bool {
        self.send_cancel
    }

    /// Sets [`ConnectionConfig::send_cancel`].
    pub fn set_send_cancel(&mut self, value: bool) -> &mut Self {
        self.send_cancel = value;
        self
    }

    /// Keepalive pings: send one every `interval` and close after
    /// `max_unanswered` in a row go unanswered. Default off.
    pub fn keepalive(&self) -> Option<Keepalive> {
        self.keepalive
    }

    /// Sets [`ConnectionConfig::keepalive`].
    pub fn set_keepalive(&mut self, value: Option<Keepalive>) -> &mut Self {
        self.keepalive = value;
        self
    }
}
