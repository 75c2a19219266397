//! The tokio transport: drives [`crate::proto::Connection`]s over sockets and
//! gives the public [`Channel`], [`Client`] and handler API.
//!
//! One task per connection does everything for it (see `driver.rs`): reads a
//! batch, runs the core, polls handlers in place, writes one batch. Nothing
//! is spawned per call, so a connection and its calls stay on one thread; to
//! use more cores, run one current-thread runtime per core.

mod body;
mod channel;
mod client;
mod driver;
mod handler;
mod inbound;
#[cfg(feature = "thrift")]
pub(crate) mod meta;
mod observe;
mod outbound;
mod shared;
mod space;

pub use body::{ArgStream, Body};
pub use channel::{Channel, ChannelConfig};
pub use client::{ArgScheme, CallOptions, CallRequest, CallResponse, Client, StreamingResponse};
pub use handler::{Handler, HandlerFuture, HandlerResult, Request, RequestParts, Response};
#[cfg(feature = "thrift")]
pub use meta::{HealthKind, META_IDL};
