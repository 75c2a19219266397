//! tchan: a TChannel (protocol v2) implementation.
//!
//! # Layout
//!
//! - [`frame`]: the pure codec. Bytes in, typed frames out and back; the
//!   fragmenter and the reassembler. No I/O, no clock.
//! - [`codec`]: the tokio-util `Decoder`/`Encoder` that splits frames out of a
//!   read buffer without copying them.
//!
//! The wire protocol is written down in the repository's `spec/` folder; tests
//! cite its numbered requirements.

#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]
// The library reads the clock in one place (`util::now`); its unit tests may
// measure wall time.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod client;
pub mod codec;
pub mod frame;
pub mod peer;
pub mod proto;
pub mod scheme;
pub mod server;

mod error;
mod transport;
mod util;

pub use client::{
    ArgScheme, CallOptions, CallRequest, CallResponse, Client, PeerPool, PoolConfig,
    StreamingResponse,
};
pub use error::Error;
pub use server::{Handler, HandlerResult, Request, Response};
pub use transport::{ArgStream, Body, Channel, ChannelConfig};
