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

pub mod codec;
pub mod frame;
pub mod inspect;
pub mod loadgen;
pub mod peer;
pub mod proto;
pub mod scheme;
pub mod transport;

mod error;
pub use error::Error;
pub use transport::{
    ArgScheme, Body, CallOptions, CallRequest, CallResponse, Channel, ChannelConfig, Client,
    Request, Response,
};
