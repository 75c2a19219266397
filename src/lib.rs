//! tchan: TChannel (protocol v2) for tokio — wire-compatible with the
//! reference implementations (tchannel-go, tchannel-node, tchannel-python).
//!
//! A [`Channel`] is one TChannel endpoint: it serves the handlers registered
//! on it, over the connections it accepts or makes, and it makes calls. A
//! call names a service and a method (arg1) and carries two more args: arg2
//! (application headers) and arg3 (the body), whole or streamed.
//!
//! # Serving
//!
//! ```
//! use tchan::{Channel, Request, Response};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tchan::Error> {
//! let server = Channel::new("kv");
//! server.register("kv", "get", |req: Request| async move {
//!     let key = req.arg3.into_bytes().await?;
//!     Ok(Response::ok(req.arg2, key))
//! });
//! let addr = server.listen("127.0.0.1:0").await?;
//! # let _ = addr;
//! # Ok(()) }
//! ```
//!
//! A handler returns `Err(tchan::Error::new(code, message))` to answer with
//! an error frame, and [`Response::app_error`] for an application error.
//! Handlers run on their connection's task; [`server`] has the [`Handler`]
//! trait, load shedding, and an adapter for any `tower::Service`.
//!
//! # Calling one peer
//!
//! ```
//! use std::time::Duration;
//! use tchan::{CallRequest, Channel, Request, Response};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tchan::Error> {
//! # let server = Channel::new("kv");
//! # server.register("kv", "get", |req: Request| async move { Ok(Response::ok(req.arg2, "v")) });
//! # let addr = server.listen("127.0.0.1:0").await?;
//! let client = Channel::new("caller").connect(addr).await?;
//! let resp = client
//!     .call(CallRequest::new("kv", "get").arg3("key").timeout(Duration::from_millis(200)))
//!     .await?;
//! assert!(resp.is_ok());
//! # Ok(()) }
//! ```
//!
//! A [`Client`] is one connection. Errors are [`Error`]s: a timeout, a
//! refused or lost connection, or an error frame from the peer, each with
//! its TChannel code.
//!
//! # Calling a service: the pool
//!
//! ```
//! use tchan::{CallRequest, Channel, PoolConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tchan::Error> {
//! # let a = Channel::new("kv");
//! # a.register("kv", "get", |req: tchan::Request| async move { Ok(tchan::Response::ok(req.arg2, "v")) });
//! # let (a1, a2) = (a.listen("127.0.0.1:0").await?, a.listen("127.0.0.1:0").await?);
//! let mut config = PoolConfig::default();
//! config.set_max_retries(1);
//! let pool = Channel::new("caller").pool([a1.to_string(), a2.to_string()], config);
//! let resp = pool.call(CallRequest::new("kv", "get").arg3("key")).await?;
//! assert_eq!(&resp.arg3[..], b"v");
//! # Ok(()) }
//! ```
//!
//! The [`PeerPool`] picks a peer per call, retries by TChannel's rules within
//! a budget, and stops sending to failing peers ([`peer`] has the policy; a
//! [`peer::PeerSource`] feeds it peer lists).
//!
//! # Streaming
//!
//! ```
//! use futures::StreamExt;
//! use tchan::{Body, CallRequest, Channel, Request, Response};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tchan::Error> {
//! let server = Channel::new("files");
//! // arg3 arrives chunk by chunk as frames do; the answer streams too.
//! server.register_streaming("files", "count", |req: Request| async move {
//!     let mut chunks = req.arg3.into_stream();
//!     let mut n = 0;
//!     while let Some(chunk) = chunks.next().await {
//!         n += chunk?.len();
//!     }
//!     let out = futures::stream::iter([Ok(bytes::Bytes::from(n.to_string()))]);
//!     Ok(Response::ok("", Body::from_stream(out)))
//! });
//! let addr = server.listen("127.0.0.1:0").await?;
//! let client = Channel::new("caller").connect(addr).await?;
//! let big = futures::stream::iter((0..4).map(|_| Ok(bytes::Bytes::from(vec![0u8; 100_000]))));
//! let resp = client
//!     .call_streaming(CallRequest::new("files", "count").arg3(Body::from_stream(big)))
//!     .await?;
//! assert_eq!(&resp.arg3.into_bytes().await?[..], b"400000");
//! # Ok(()) }
//! ```
//!
//! # JSON
//!
//! ```
//! # #[cfg(feature = "json")] {
//! use serde_json::json;
//! use tchan::scheme::json::{self, Reply};
//! use tchan::{CallOptions, Channel};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tchan::Error> {
//! let server = Channel::new("math");
//! server.register("math", "add", json::handler(|req| async move {
//!     let sum = req.body["a"].as_i64().unwrap_or(0) + req.body["b"].as_i64().unwrap_or(0);
//!     Ok(Reply::Ok(vec![], json!({ "sum": sum })))
//! }));
//! let addr = server.listen("127.0.0.1:0").await?;
//! let client = Channel::new("caller").connect(addr).await?;
//! let reply = json::call(&client, "math", "add", &[], &json!({"a": 2, "b": 3}), CallOptions::default()).await?;
//! assert_eq!(reply, Reply::Ok(vec![], json!({ "sum": 5 })));
//! # Ok(()) }
//! # main().unwrap() }
//! ```
//!
//! # Layers
//!
//! Each layer only uses the ones below it, and each can be used alone:
//!
//! - [`frame`]: the pure codec. Bytes in, typed frames out and back; the
//!   fragmenter and the reassembler; checksums. No I/O, no clock.
//! - [`codec`]: the tokio-util `Decoder`/`Encoder` over [`frame`].
//! - [`proto`]: the sans-IO connection core: handshake, call tables,
//!   deadlines, cancel, ping, drain, limits. Time is always a parameter.
//! - the transport (this crate's root): [`Channel`], [`Client`], handlers,
//!   bodies; one tokio task per connection, nothing spawned per call.
//! - [`client`] and [`server`]: the two sides' types, with the [`PeerPool`]
//!   and [`peer`] policy (selection, retries, budgets, breakers) above the
//!   transport, and [`server::shed`] for load shedding.
//! - [`scheme`]: the json and thrift arg schemes.
//!
//! The wire protocol is written down in the repository's `spec/` folder;
//! tests cite its numbered requirements.
//!
//! # Features
//!
//! `default` = `cli` + `json` + `metrics` + `tower`. With
//! `default-features = false` the library needs neither clap nor serde_json
//! nor the metrics facade: `json` adds [`scheme::json`] and JSON peer files,
//! `metrics` per-call counters and histograms, `tower` the `tower::Service`
//! impls and [`server::ServiceHandler`], `cli` the `tchan` binary.

#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]
// The library reads the clock in one place (`util::now`); its unit tests may
// measure wall time.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod client;
pub mod codec;
pub mod frame;
#[cfg(feature = "thrift")]
pub mod idl;
pub mod peer;
pub mod proto;
#[cfg(feature = "json")]
pub mod relay;
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
#[cfg(feature = "thrift")]
pub use transport::{HealthKind, META_IDL};

// The public handles can be shared across tasks and threads, and printed;
// values that may carry a streamed body can be sent to another task.
const _: () = {
    const fn handle<T: Send + Sync + std::fmt::Debug>() {}
    const fn value<T: Send + std::fmt::Debug>() {}
    handle::<Channel>();
    handle::<Client>();
    handle::<PeerPool>();
    handle::<PoolConfig>();
    handle::<ChannelConfig>();
    handle::<proto::ConnectionConfig>();
    handle::<Error>();
    handle::<CallResponse>();
    handle::<server::RequestParts>();
    value::<CallRequest>();
    value::<StreamingResponse>();
    value::<Request>();
    value::<Response>();
    value::<Body>();
};
