//! The connection state machine.
//!
//! ```text
//!   initiator:  AwaitInitRes --init res--> Ready --drain()--> Draining --no calls--> Closed
//!   acceptor:   AwaitInitReq --init req--> Ready                  \--deadline--> Closed
//!   any state --fatal error / close()--> Closed
//! ```
//!
//! How to drive it (the tokio transport does exactly this):
//! 1. inputs: [`Connection::handle_frame`] for every decoded frame,
//!    [`Connection::handle_decode_error`] when the byte stream is corrupt,
//!    [`Connection::handle_timeout`] when [`Connection::poll_timeout`] passes,
//!    [`Connection::transport_closed`] when the socket dies, and the
//!    application's calls (`send_request`, `send_response`, ...);
//! 2. after any input, drain [`Connection::poll_event`] and write out
//!    [`Connection::poll_transmit`] (one buffer holding every queued frame),
//!    then re-arm the one timer at [`Connection::poll_timeout`].
//!
//! `now` is always a parameter: nothing here reads a clock, owns a socket or
//! spawns a task.

use std::collections::VecDeque;

use crate::util::HashSet;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::config::ConnectionConfig;
use super::event::{
    CloseReason, Event, PeerInfo, RequestStart, ResponseStart, Whole, WholeRequest, WholeResponse,
};
use super::table::{CallRef, CallTable, InId, OutId};
use super::timers::{Deadlines, Dir};
use super::transmit::Transmit;
use crate::Error;
use crate::frame::{
    CallContinue, CallFragment, CallHead, CallReq, CallRes, Cancel, Checksum, ChecksumType,
    DecodeError, EncodeError, ErrorCode, ErrorFrame, Frame, FrameHeader, FrameSink, FrameType,
    HOST_PORT, Init, InitHeaders, MessageArg, MessageWriter, NO_MESSAGE_ID, PROCESS_NAME,
    PROTOCOL_VERSION, Ping, Reassembler, ReassemblyError, ReqHead, ResHead, ResponseCode,
    TCHANNEL_LANGUAGE, TCHANNEL_LANGUAGE_VERSION, TCHANNEL_VERSION, Tracing, TransportHeaders,
    WholeCall, encode_message,
};

mod handshake;
mod inbound;
mod outbound;
mod time;
mod writer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitInitReq,
    AwaitInitRes { id: u32 },
    Ready,
    Draining { deadline: Instant },
    Closed,
}

/// What the caller gives to start a request.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// Destination service.
    pub service: Bytes,
    /// Transport headers (checked strictly).
    pub headers: TransportHeaders,
    /// Tracing to send.
    pub tracing: Tracing,
    /// When the caller gives up; the ttl sent is the time left.
    pub deadline: Instant,
    /// Checksum type for every frame of the request.
    pub checksum: ChecksumType,
}

#[derive(Debug)]
struct OutCall {
    deadline: Instant,
    tracing: Tracing,
    phase: OutPhase,
    /// Arg bytes of the response counted against `max_response_bytes`.
    bytes: u64,
    /// The caller takes the response as a stream: its bytes stay counted
    /// after the call ends, until the transport releases them.
    streamed: bool,
}

/// Where one of our calls is: the request goes out whole or streamed, then
/// the response comes back (a response before the request is complete is a
/// protocol error).
#[derive(Debug)]
enum OutPhase {
    /// The request's args are still being written.
    Writing(Box<MessageWriter>),
    /// The request is sent; no response yet.
    Sent,
    /// The response has started and is still arriving.
    Receiving(Box<Reassembler>),
}

#[derive(Debug)]
struct InCall {
    tracing: Tracing,
    checksum: ChecksumType,
    /// While the request is still arriving.
    request: Option<Box<Reassembler>>,
    /// Arg bytes received, counted against `max_inbound_bytes`.
    bytes: u64,
    /// While the response is being written.
    writer: Option<Box<MessageWriter>>,
}

/// A sans-IO TChannel connection: frames and time in, frames and events out.
#[derive(Debug)]
pub struct Connection {
    config: ConnectionConfig,
    state: State,
    handshake_deadline: Option<Instant>,
    next_id: u32,
    out_calls: CallTable<OutId, OutCall>,
    in_calls: CallTable<InId, InCall>,
    inbound_bytes: u64,
    /// Arg bytes held for the responses to our calls ([CONN-23]).
    response_bytes: u64,
    /// Call deadlines, earliest first (entries of calls that ended are
    /// dropped lazily, see `timers.rs`).
    deadlines: Deadlines,
    tombstones: VecDeque<(Instant, Dir, u32)>,
    tombstone_set: HashSet<(Dir, u32)>,
    transmit: Transmit,
    events: VecDeque<Event>,
    peer: Option<PeerInfo>,
    peer_draining: bool,
    pings: HashSet<u32>,
    keepalive_next: Option<Instant>,
    keepalive_ping: Option<u32>,
    keepalive_unanswered: u32,
    /// True when the peer opened this connection.
    acceptor: bool,
    /// The latest `now` seen, for work done from application calls that
    /// take no time (remembering ids of calls they end).
    last_now: Instant,
}

// ===== construction and getters =====

impl Connection {
    fn new(config: ConnectionConfig, state: State, now: Instant) -> Connection {
        let handshake_deadline = Some(now + config.handshake_timeout);
        Connection {
            config,
            state,
            handshake_deadline,
            next_id: 1,
            out_calls: CallTable::default(),
            in_calls: CallTable::default(),
            inbound_bytes: 0,
            response_bytes: 0,
            deadlines: Deadlines::default(),
            tombstones: VecDeque::new(),
            tombstone_set: HashSet::default(),
            transmit: Transmit::new(),
            events: VecDeque::new(),
            peer: None,
            peer_draining: false,
            pings: HashSet::default(),
            keepalive_next: None,
            keepalive_ping: None,
            keepalive_unanswered: 0,
            last_now: now,
            acceptor: false,
        }
    }

    /// The side that opened the TCP connection: sends init req (id 1) now.
    pub fn initiator(config: ConnectionConfig, now: Instant) -> Connection {
        let mut c = Connection::new(config, State::AwaitInitRes { id: 1 }, now);
        c.next_id = 2;
        let init = Init {
            id: 1,
            version: PROTOCOL_VERSION,
            headers: c.init_headers(),
            trailing: Bytes::new(),
        };
        c.queue(Frame::InitReq(init));
        c
    }

    /// The side that accepted the TCP connection: waits for init req.
    pub fn acceptor(config: ConnectionConfig, now: Instant) -> Connection {
        let mut c = Connection::new(config, State::AwaitInitReq, now);
        c.acceptor = true;
        c
    }

    /// True on the side that accepted the connection (the peer opened it).
    pub fn is_acceptor(&self) -> bool {
        self.acceptor
    }

    /// The configuration.
    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    /// The peer's init headers, once the handshake is done.
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    /// True once the handshake is done and until the connection closes.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready | State::Draining { .. })
    }

    /// True once closed; nothing more will happen.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// True when new calls may be sent: ready, not draining, and the peer has
    /// not asked us to stop.
    pub fn accepts_new_calls(&self) -> bool {
        self.state == State::Ready && !self.peer_draining
    }

    /// Outbound (ours) and inbound (the peer's) calls in flight.
    pub fn calls_in_flight(&self) -> (usize, usize) {
        (self.out_calls.len(), self.in_calls.len())
    }

    /// Entries in every internal table: calls, deadlines, remembered ids and
    /// pings. All zero on a closed connection (tests assert it).
    pub fn table_sizes(&self) -> [usize; 5] {
        [
            self.out_calls.len(),
            self.in_calls.len(),
            self.deadlines.len(),
            self.tombstones.len(),
            self.pings.len(),
        ]
    }

    /// Bytes queued for the wire.
    pub fn transmit_len(&self) -> usize {
        self.transmit.len()
    }
}

fn rustc_version() -> &'static str {
    option_env!("CARGO_PKG_RUST_VERSION")
        .filter(|v| !v.is_empty())
        .unwrap_or("stable")
}

// ===== outputs =====

impl Connection {
    /// Every frame queued since the last call, as one buffer, or `None`
    /// (args queued by reference are copied into it).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<BytesMut> {
        if self.transmit.is_empty() {
            None
        } else {
            Some(self.transmit.take_bytes())
        }
    }

    /// Moves every queued frame to the end of `dst` without copying (for a
    /// driver that keeps its own write queue). Returns the bytes moved.
    pub fn transmit_into(&mut self, dst: &mut Transmit) -> usize {
        let n = self.transmit.len();
        self.transmit.append_to(dst);
        n
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Connection::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let drain = match self.state {
            State::Draining { deadline } => Some(deadline),
            _ => None,
        };
        [
            self.handshake_deadline,
            drain,
            self.deadlines.next(),
            self.tombstones.front().map(|t| t.0),
            self.keepalive_next,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

// ===== inputs: frames =====

impl Connection {
    /// Takes one frame from the peer.
    pub fn handle_frame(&mut self, now: Instant, frame: Frame) {
        self.last_now = self.last_now.max(now);
        match self.state {
            State::Closed => {}
            State::AwaitInitReq => self.handle_init_req(now, frame),
            State::AwaitInitRes { id } => self.handle_init_res(now, id, frame),
            State::Ready | State::Draining { .. } => self.handle_ready(now, frame),
        }
        self.maybe_drained();
    }

    /// Takes one frame from the peer as its header and raw payload. A call
    /// req or call res that is a whole message (the usual call) is checked in
    /// one pass over the bytes and, when it passes, handed back at once; its
    /// effect on the connection is what [`Connection::handle_frame`] would
    /// do, and no event is queued for it. Any other frame, or one that breaks
    /// a rule, is decoded and handled exactly as `handle_frame` handles it
    /// (or as a decode error), with its outcome in events.
    pub fn handle_frame_bytes(
        &mut self,
        now: Instant,
        header: FrameHeader,
        payload: Bytes,
    ) -> Option<Whole> {
        self.last_now = self.last_now.max(now);
        let whole = match header.frame_type {
            FrameType::CALL_REQ if self.state == State::Ready => {
                self.whole_request(now, header.id, &payload)
            }
            FrameType::CALL_RES if self.is_ready() => self.whole_response(header.id, &payload),
            _ => None,
        };
        if whole.is_some() {
            self.maybe_drained();
            return whole;
        }
        match Frame::decode_payload(header, payload) {
            Ok(frame) => self.handle_frame(now, frame),
            Err(e) => self.handle_decode_error(&e),
        }
        None
    }

    /// The byte stream could not be decoded: send a protocol error with id
    /// 0xffffffff and close ([FRAME-8]).
    pub fn handle_decode_error(&mut self, error: &DecodeError) {
        self.fatal(
            NO_MESSAGE_ID,
            Tracing::default(),
            format!("malformed frame: {error}"),
        );
    }

    /// The transport failed or the peer closed the socket.
    pub fn transport_closed(&mut self, reason: impl Into<String>) {
        self.close(CloseReason::Transport(reason.into()));
    }

    fn handle_ready(&mut self, now: Instant, frame: Frame) {
        match frame {
            Frame::CallReq(f) => self.on_call_req(now, f),
            Frame::CallReqContinue(f) => self.on_call_req_continue(now, f),
            Frame::CallRes(f) => self.on_call_res(f),
            Frame::CallResContinue(f) => self.on_call_res_continue(f),
            Frame::Cancel(f) => self.on_cancel(f),
            Frame::Error(f) => self.on_error(f),
            Frame::PingReq(p) => self.queue(Frame::PingRes(Ping::new(p.id))),
            Frame::PingRes(p) => {
                if self.pings.remove(&p.id) {
                    if self.keepalive_ping == Some(p.id) {
                        self.keepalive_ping = None;
                    }
                    self.keepalive_unanswered = 0;
                    self.events.push_back(Event::Pong { id: p.id });
                }
            }
            Frame::InitReq(i) | Frame::InitRes(i) => self.fatal(
                i.id,
                Tracing::default(),
                "init frame after the handshake".into(),
            ),
            // [FRAME-5] [MSG-6] claim and unknown types are ignored.
            Frame::Claim(_) | Frame::Unknown(_) => {}
        }
    }
}

// ===== drain and close =====

impl Connection {
    /// Graceful drain: refuse new calls (declined), let calls in flight
    /// finish, then close; close anyway at `deadline` ([CONN-11]).
    pub fn drain(&mut self, now: Instant, deadline: Instant) {
        self.last_now = self.last_now.max(now);
        match self.state {
            State::Ready => {
                // [CONN-19] (1) tell the peer: one declined error, id 0xffffffff.
                self.send_error_frame(
                    NO_MESSAGE_ID,
                    ErrorCode::DECLINED,
                    Tracing::default(),
                    // node stops sending new calls on a message that starts
                    // with "draining:"; tchan reads any such frame (CONN-16).
                    "draining: tchan is shutting down",
                );
                self.state = State::Draining { deadline };
                self.maybe_drained();
            }
            State::AwaitInitReq | State::AwaitInitRes { .. } => self.close(CloseReason::Drained),
            _ => {}
        }
    }

    /// Closes now: every call in flight fails (network error for ours, an
    /// abort for the peer's), every table is emptied.
    pub fn close_now(&mut self) {
        self.close(CloseReason::Local);
    }

    fn maybe_drained(&mut self) {
        if matches!(self.state, State::Draining { .. })
            && self.out_calls.is_empty()
            && self.in_calls.is_empty()
        {
            self.close(CloseReason::Drained);
        }
    }

    /// Sends a protocol error (0xff) and closes.
    fn fatal(&mut self, id: u32, tracing: Tracing, message: String) {
        if self.state == State::Closed {
            return;
        }
        self.send_error_frame(id, ErrorCode::PROTOCOL, tracing, &message);
        self.close(CloseReason::ProtocolError(message));
    }

    fn close(&mut self, reason: CloseReason) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.handshake_deadline = None;
        self.keepalive_next = None;
        let why = reason.to_string();
        // [CONN-22] a close the peer caused by breaking the protocol fails the
        // calls with that protocol error; any other close is a network error.
        let code = match reason {
            CloseReason::ProtocolError(_) | CloseReason::PeerProtocolError(_) => {
                ErrorCode::PROTOCOL
            }
            _ => ErrorCode::NETWORK,
        };
        for id in self.out_calls.sorted_ids() {
            self.events.push_back(Event::CallFailed {
                id: id.0,
                error: Error::new(code, format!("connection closed: {why}")),
            });
        }
        for id in self.in_calls.sorted_ids() {
            self.events.push_back(Event::RequestAborted {
                id: id.0,
                error: Error::new(code, format!("connection closed: {why}")),
            });
        }
        self.out_calls.clear();
        self.in_calls.clear();
        self.inbound_bytes = 0;
        self.response_bytes = 0;
        self.deadlines.clear();
        self.tombstones.clear();
        self.tombstone_set.clear();
        self.pings.clear();
        self.events.push_back(Event::Closed(reason));
    }
}

// ===== helpers =====

impl Connection {
    fn queue(&mut self, frame: Frame) {
        // Only frames we build reach here, and they always fit (error messages
        // and cancel reasons are cut to 65535 bytes).
        let _ = frame.encode(self.transmit.buf());
    }

    fn send_error_frame(&mut self, id: u32, code: ErrorCode, tracing: Tracing, message: &str) {
        // [FRAME-5] the frame fits our max frame size: the message is cut.
        let room = self
            .config
            .max_frame_size
            .saturating_sub(crate::frame::MAX_FRAME_SIZE - ErrorFrame::MAX_MESSAGE_LEN);
        let message = cut_utf8(message, room);
        let frame = ErrorFrame::new(
            id,
            code,
            tracing,
            Bytes::copy_from_slice(message.as_bytes()),
        );
        self.queue(Frame::Error(frame));
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character
/// boundary (a message cut to fit a frame stays valid UTF-8).
pub(super) fn cut_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A thrift call of the `Meta` service (its `as` header and arg1): it may
/// go both ways on a draining connection, so a load balancer can see the
/// drain (SCHEME-19).
fn is_meta_call(headers: &TransportHeaders, arg1: &[u8]) -> bool {
    headers.get(b"as") == Some(&b"thrift"[..]) && arg1.starts_with(b"Meta::")
}

/// True when a whole message's checksum verifies (or it has none).
#[inline(always)]
fn checksum_ok(w: &WholeCall<'_>) -> bool {
    let ty = w.checksum.ty;
    if ty == ChecksumType::NONE {
        return true;
    }
    let Some(mut c) = Checksum::new(ty) else {
        return false;
    };
    c.update_parts(&w.args);
    c.finish_frame(w.args[2]) == w.checksum.value
}

/// `part` (a sub-slice of `payload`) as a `Bytes` sharing its buffer.
#[inline]
fn lift(payload: &Bytes, part: &[u8]) -> Bytes {
    if part.is_empty() {
        return Bytes::new();
    }
    let start = part.as_ptr() as usize - payload.as_ptr() as usize;
    payload.slice(start..start + part.len())
}

/// The error code for a message that broke a reassembly rule: an arg-count
/// violation breaks the framing itself (protocol error, [FRAG-10]); any
/// other is the one message's fault (bad request).
fn violation_code(e: &ReassemblyError) -> ErrorCode {
    if matches!(
        e,
        ReassemblyError::MissingArgs { .. } | ReassemblyError::ExtraArgs
    ) {
        ErrorCode::PROTOCOL
    } else {
        ErrorCode::BAD_REQUEST
    }
}

fn gone() -> Error {
    Error::new(ErrorCode::CANCELLED, "request is no longer in flight")
}

fn encode_error(e: EncodeError) -> Error {
    let code = match e {
        EncodeError::ZeroTtl => ErrorCode::TIMEOUT,
        EncodeError::FieldTooLong { field: "arg1", .. } => ErrorCode::PROTOCOL,
        _ => ErrorCode::BAD_REQUEST,
    };
    Error::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_skip_the_reserved_value_and_ids_in_use() {
        // [ID-2] [DEV-15] 0xffffffff is never allocated, even when the counter wraps
        let now = Instant::now();
        let mut c = Connection::acceptor(ConnectionConfig::default(), now);
        c.next_id = 0xffff_fffd;
        c.pings.insert(0xffff_fffe);
        c.out_calls.insert(
            OutId(0),
            OutCall {
                deadline: now,
                tracing: Tracing::default(),
                phase: OutPhase::Sent,
                bytes: 0,
                streamed: false,
            },
        );
        assert_eq!(c.alloc_id(), 0xffff_fffd);
        assert_eq!(
            c.alloc_id(),
            1,
            "skips one in use, the reserved id and another in use"
        );
        assert_eq!(c.alloc_id(), 2);
    }
}
