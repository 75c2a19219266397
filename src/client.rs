//! The calling side.
//!
//! Most callers want a [`PeerPool`] ([`crate::Channel::pool`]): it talks to
//! a service spread over many peers, picks one per call, retries what may be
//! retried and stops sending to failing peers. A [`Client`] is the
//! lower-level handle on one connection ([`crate::Channel::connect`]); the
//! pool is built from them. Both take a [`CallRequest`] and answer with a
//! [`CallResponse`] (or, with `call_streaming`, a [`StreamingResponse`]
//! whose arg3 arrives as a stream), and both are `tower::Service`s
//! (feature `tower`).

pub use crate::peer::{PeerPool, PoolConfig};
pub use crate::transport::{
    ArgScheme, CallOptions, CallRequest, CallResponse, Client, StreamingResponse,
};
