//! What the core tells the application: events and call errors.

use std::fmt;
use std::time::Instant;

use bytes::Bytes;

use crate::Error;

use crate::frame::{
    ChecksumType, FrameChunks, InitHeaders, ResponseCode, Tracing, TransportHeaders,
};

/// The peer's init headers, once the handshake is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's `host_port` (`0.0.0.0:0` when it does not listen).
    pub host_port: String,
    /// The peer's `process_name`.
    pub process_name: String,
    /// All of the peer's init headers, in wire order.
    pub headers: InitHeaders,
}

/// The first frame of a request from the peer.
#[derive(Debug, Clone)]
pub struct RequestStart {
    /// The request's id (in the peer's id space).
    pub id: u32,
    /// The service asked for.
    pub service: Bytes,
    /// Transport headers.
    pub headers: TransportHeaders,
    /// Tracing, as sent.
    pub tracing: Tracing,
    /// The ttl as sent, in ms.
    pub ttl_ms: u32,
    /// When the call expires on this side (now + ttl, capped).
    pub deadline: Instant,
    /// The checksum type; the response will use the same.
    pub checksum: ChecksumType,
    /// The chunks of this first frame.
    pub chunks: FrameChunks,
}

/// The first frame of a response to one of our calls.
#[derive(Debug, Clone)]
pub struct ResponseStart {
    /// Our call's id.
    pub id: u32,
    /// 0x00 ok, anything else an application error.
    pub code: ResponseCode,
    /// Transport headers.
    pub headers: TransportHeaders,
    /// Tracing, as sent.
    pub tracing: Tracing,
    /// The chunks of this first frame.
    pub chunks: FrameChunks,
}

/// A call message that arrived whole in one frame and passed every check:
/// what [`super::Connection::handle_frame_bytes`] hands back at once instead
/// of an event (the usual call: one frame each way).
#[derive(Debug, Clone)]
pub enum Whole {
    /// A request from the peer: as [`Event::Request`] with all its args.
    Request(WholeRequest),
    /// The response to one of our calls: as [`Event::Response`] with all its
    /// args; the call is finished.
    Response(WholeResponse),
}

/// A request from the peer, whole.
#[derive(Debug, Clone)]
pub struct WholeRequest {
    /// The request's id (in the peer's id space).
    pub id: u32,
    /// The service asked for.
    pub service: Bytes,
    /// Transport headers (already checked).
    pub headers: TransportHeaders,
    /// The `as` header alone, as a header list of its own: what the response
    /// sends back.
    pub scheme: Option<TransportHeaders>,
    /// Tracing, as sent.
    pub tracing: Tracing,
    /// The ttl as sent, in ms.
    pub ttl_ms: u32,
    /// When the call expires on this side (now + ttl, capped).
    pub deadline: Instant,
    /// The checksum type; the response will use the same.
    pub checksum: ChecksumType,
    /// arg1 (the method), arg2 and arg3: slices of the frame.
    pub args: [Bytes; 3],
}

/// The response to one of our calls, whole.
#[derive(Debug, Clone)]
pub struct WholeResponse {
    /// Our call's id.
    pub id: u32,
    /// 0x00 ok, anything else an application error.
    pub code: ResponseCode,
    /// Transport headers.
    pub headers: TransportHeaders,
    /// Tracing, as sent.
    pub tracing: Tracing,
    /// arg2 and arg3 (arg1 of a response is empty): slices of the frame.
    pub arg2: Bytes,
    /// See `arg2`.
    pub arg3: Bytes,
}

/// Why a connection closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// Drained: no call left in flight after [`super::Connection::drain`].
    Drained,
    /// The application closed it.
    Local,
    /// The peer sent a fatal protocol error (0xff).
    PeerProtocolError(String),
    /// We found a protocol violation, sent 0xff and closed.
    ProtocolError(String),
    /// The handshake did not finish in time.
    HandshakeTimeout,
    /// The peer failed the handshake with an error frame.
    HandshakeFailed(Error),
    /// Keepalive pings went unanswered.
    KeepaliveTimeout,
    /// The drain deadline passed with calls still in flight.
    DrainTimeout,
    /// The transport failed (reported by the driver through
    /// [`super::Connection::transport_closed`]).
    Transport(String),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Drained => f.write_str("drained"),
            CloseReason::Local => f.write_str("closed locally"),
            CloseReason::PeerProtocolError(m) => write!(f, "peer sent a protocol error: {m}"),
            CloseReason::ProtocolError(m) => write!(f, "protocol error: {m}"),
            CloseReason::HandshakeTimeout => f.write_str("handshake timed out"),
            CloseReason::HandshakeFailed(e) => write!(f, "handshake failed: {e}"),
            CloseReason::KeepaliveTimeout => f.write_str("keepalive pings went unanswered"),
            CloseReason::DrainTimeout => f.write_str("drain timed out"),
            CloseReason::Transport(m) => write!(f, "transport: {m}"),
        }
    }
}

/// Something the application must know about. Drain them with
/// [`super::Connection::poll_event`] after every input.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The handshake finished; calls may flow.
    Ready(PeerInfo),
    /// A request from the peer started.
    Request(RequestStart),
    /// More chunks of a request.
    RequestContinue {
        /// The request's id.
        id: u32,
        /// The arg bytes this frame carried, and whether the request is now
        /// complete.
        chunks: FrameChunks,
    },
    /// The peer cancelled one of its requests; it was answered cancelled (0x02).
    RequestCancelled {
        /// The request's id.
        id: u32,
    },
    /// A request ended without a response from us: it expired (answered
    /// timeout 0x01), was refused (limits, bad input, answered with an error
    /// frame), or the connection closed. The handler should stop.
    RequestAborted {
        /// The request's id.
        id: u32,
        /// Why it ended: its code is what the peer was answered with.
        error: Error,
    },
    /// A response to one of our calls started.
    Response(ResponseStart),
    /// More chunks of a response.
    ResponseContinue {
        /// Our call's id.
        id: u32,
        /// The arg bytes this frame carried, and whether the response is now
        /// complete.
        chunks: FrameChunks,
    },
    /// One of our calls failed: error frame, deadline, bad response, or the
    /// connection closed. Each call gets exactly one of `Response` (then its
    /// chunks until the message completes) or `CallFailed`, or `CallFailed`
    /// after a partial response.
    CallFailed {
        /// Our call's id.
        id: u32,
        /// What went wrong.
        error: Error,
    },
    /// A ping we sent was answered.
    Pong {
        /// The ping's id.
        id: u32,
    },
    /// The peer asked for no new calls on this connection (an error frame with
    /// id 0xffffffff and a code other than 0xff; node sends declined while it
    /// drains).
    PeerDraining(Error),
    /// The connection is closed. Nothing else follows.
    Closed(CloseReason),
}
