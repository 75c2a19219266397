//! Relaying calls by service name (Hyperbahn's job), above the transport and
//! the peer pool's policy (`spec/12-relay.md`).
//!
//! - [`frame`]: what a relay reads from a call's first frame, and how it
//!   rewrites frames for the other connection without copying their args.
//! - [`RelayCore`]: the forwarding engine without I/O: id mapping, ttl,
//!   timeouts and tombstones, cancels, retries before the first frame
//!   leaves, back-pressure, advertisement, the edge policy.
//! - [`Relay`]: the tokio driver (`tchan relay`).

pub mod advert;
mod config;
mod core;
pub mod frame;
mod metrics;
pub mod policy;
pub mod routes;
mod server;

pub use self::config::RelayConfig;
pub use self::core::{
    Action, ConnId, HYPERBAHN_SERVICE, Out, RelayCore, RelayCounters, RelaySizes, TCHANNEL_SERVICE,
};
pub use frame::{Forward, RelayHead, RelayParseError, lowered_ttl};
pub use policy::{EdgeKey, Policy, RateLimit, Verdict};
pub use server::Relay;
