//! Tests of the sans-IO protocol core, [`tchan::proto::Connection`].
//!
//! A [`Pair`] wires an initiator ("client") and an acceptor ("server") back to
//! back on a virtual clock, in the spirit of quinn-proto's `tests/util.rs`:
//! `now` only moves when a test advances it, every byte either side writes is
//! split into frames by [`FrameCodec`] and handed to the other side, and timers
//! fire when `poll_timeout() <= now`. Nothing sleeps and nothing runs on tokio,
//! so every test is deterministic.
//!
//! Besides `drive()`, tests can capture what one side writes without
//! delivering it (to inspect, reorder, corrupt or delay frames) and inject
//! frames built by hand (or raw bytes) into one side.
//!
//! Each test cites the spec requirements it checks (`spec/06-connections.md`,
//! `spec/07-calls.md`, `spec/05-fragmentation.md`, ...).

// Measures wall time: the library's clock rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use tchan::frame::{
    Cancel, ChecksumField, ChecksumType, Claim, ErrorCode, Frame, HOST_PORT, Init, NO_MESSAGE_ID,
    PROCESS_NAME, Ping, ResponseCode, TCHANNEL_LANGUAGE, TCHANNEL_LANGUAGE_VERSION,
    TCHANNEL_VERSION, Tracing, TransportHeaders,
};
use tchan::proto::{CloseReason, ConnectionConfig, Event, Keepalive};

#[path = "../support/conn.rs"]
mod harness;
use harness::*;

mod calls;
mod cancellation;
mod connection_errors;
mod deadlines;
mod drain;
mod handshake;
mod headers;
mod pings;
mod rejections;
mod reply_budget;
