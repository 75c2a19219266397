//! The serving side: what a handler receives and returns, the [`Handler`]
//! trait, and server policy.
//!
//! Register handlers on a [`crate::Channel`] by (service, method); any
//! `Fn(Request) -> impl Future<Output = HandlerResult>` is a handler, and so
//! is any `tower::Service<Request>` wrapped in [`ServiceHandler`] (feature
//! `tower`), which makes timeouts, rate limits and load shedding ordinary
//! tower layers. [`shed`] has tchan's own shedding wrappers, which answer
//! busy without a tower stack.

#[cfg(feature = "tower")]
mod service;
pub mod shed;

pub use crate::transport::{
    Handler, HandlerFuture, HandlerResult, Request, RequestParts, Response,
};
#[cfg(feature = "tower")]
pub use service::ServiceHandler;
