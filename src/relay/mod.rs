//! Relaying calls by service name (Hyperbahn's job), above the transport and
//! the peer pool.
//!
//! Started: [`frame`] is what a relay reads from a call's first frame and how
//! it rewrites frames for the other connection without copying their args
//! (`spec/12-relay.md`). The forwarding engine, advertisement and the
//! `tchan relay` command build on it.

pub mod frame;

pub use frame::{Forward, RelayHead, RelayParseError, lowered_ttl};
