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
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::config::ConnectionConfig;
use super::event::{
    CloseReason, Event, PeerInfo, RequestStart, ResponseStart, Whole, WholeRequest, WholeResponse,
};
use super::table::{CallRef, CallTable};
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
    /// While the request is still being written.
    writer: Option<Box<MessageWriter>>,
    /// Once the response started.
    response: Option<Box<Reassembler>>,
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
    out_calls: CallTable<OutCall>,
    in_calls: CallTable<InCall>,
    inbound_bytes: u64,
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

    fn init_headers(&self) -> InitHeaders {
        // [INIT-2] host_port and process_name required; the others sent too.
        InitHeaders::from_pairs([
            (HOST_PORT, self.config.host_port.as_str()),
            (PROCESS_NAME, self.config.process_name.as_str()),
            (TCHANNEL_LANGUAGE, "rust"),
            (TCHANNEL_LANGUAGE_VERSION, rustc_version()),
            (TCHANNEL_VERSION, env!("CARGO_PKG_VERSION")),
        ])
        .unwrap_or_default()
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
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Connection::handle_timeout`] must next be called.
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

    /// The fast path of `on_call_req`: only a request that the general path
    /// would accept with no violation, whole in this frame.
    #[inline]
    fn whole_request(&mut self, now: Instant, id: u32, payload: &Bytes) -> Option<Whole> {
        let w = WholeCall::scan(true, payload)?;
        let limits = &self.config.reassembly;
        let [a1, a2, a3] = w.args;
        let bytes = (a1.len() + a2.len() + a3.len()) as u64;
        if w.ttl == 0
            || self.in_calls.contains(id)
            || self.in_calls.len() >= self.config.max_inbound_calls
            || (!self.tombstone_set.is_empty() && self.tombstone_set.contains(&(Dir::In, id)))
            || limits.max_frames == 0
            || a1.len() > limits.max_arg1_len
            || bytes > limits.max_message_bytes
            || self.inbound_bytes + bytes > self.config.max_inbound_bytes
        {
            return None;
        }
        let scan = TransportHeaders::scan_few(w.headers, w.header_count)?;
        if limits.strict_headers && (scan.as_pair.is_none() || !scan.has_cn) {
            return None;
        }
        if !checksum_ok(&w) {
            return None;
        }
        let ttl = Duration::from_millis(u64::from(w.ttl)).min(self.config.max_ttl);
        let deadline = now + ttl;
        self.inbound_bytes += bytes;
        let r = self.in_calls.insert(
            id,
            InCall {
                tracing: w.tracing,
                checksum: w.checksum.ty,
                request: None,
                bytes,
                writer: None,
            },
        );
        self.deadlines.push((deadline, Dir::In, r));
        let lift = |part: &[u8]| lift(payload, part);
        Some(Whole::Request(WholeRequest {
            id,
            service: lift(w.service),
            headers: TransportHeaders::from_checked(lift(w.headers), w.header_count),
            scheme: scan.as_pair.map(|p| scheme_pair(payload, p)),
            tracing: w.tracing,
            ttl_ms: w.ttl,
            deadline,
            checksum: w.checksum.ty,
            args: [lift(a1), lift(a2), lift(a3)],
        }))
    }

    /// The fast path of `on_call_res`: a response the general path would
    /// accept with no violation, whole in this frame.
    #[inline]
    fn whole_response(&mut self, id: u32, payload: &Bytes) -> Option<Whole> {
        let call = self.out_calls.get(id)?;
        if call.response.is_some() || call.writer.is_some() {
            return None;
        }
        let w = WholeCall::scan(false, payload)?;
        let limits = &self.config.reassembly;
        let [a1, a2, a3] = w.args;
        if limits.max_frames == 0
            || a1.len() > limits.max_arg1_len
            || (a1.len() + a2.len() + a3.len()) as u64 > limits.max_message_bytes
        {
            return None;
        }
        TransportHeaders::scan_few(w.headers, w.header_count)?;
        if !checksum_ok(&w) {
            return None;
        }
        self.remove_outbound(id);
        Some(Whole::Response(WholeResponse {
            id,
            code: ResponseCode(w.code),
            headers: TransportHeaders::from_checked(lift(payload, w.headers), w.header_count),
            tracing: w.tracing,
            arg2: lift(payload, a2),
            arg3: lift(payload, a3),
        }))
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

    fn handle_init_req(&mut self, now: Instant, frame: Frame) {
        let Frame::InitReq(init) = frame else {
            // [CONN-3] the first frame must be init req.
            return self.fatal(
                NO_MESSAGE_ID,
                Tracing::default(),
                format!(
                    "expected init req, got a frame of type {}",
                    frame.frame_type()
                ),
            );
        };
        if init.version < PROTOCOL_VERSION {
            return self.fatal(
                init.id,
                Tracing::default(),
                format!("unsupported protocol version {}", init.version),
            );
        }
        if let Some(h) = init.missing_required_header() {
            return self.fatal(init.id, Tracing::default(), format!("init req lacks {h}"));
        }
        let res = Init {
            id: init.id,
            version: PROTOCOL_VERSION,
            headers: self.init_headers(),
            trailing: Bytes::new(),
        };
        self.queue(Frame::InitRes(res));
        self.ready(now, &init);
    }

    fn handle_init_res(&mut self, now: Instant, id: u32, frame: Frame) {
        match frame {
            Frame::InitRes(init) if init.id == id && init.version == PROTOCOL_VERSION => {
                if let Some(h) = init.missing_required_header() {
                    return self.fatal(init.id, Tracing::default(), format!("init res lacks {h}"));
                }
                self.ready(now, &init);
            }
            Frame::InitRes(init) => self.fatal(
                init.id,
                Tracing::default(),
                format!("bad init res (id {}, version {})", init.id, init.version),
            ),
            Frame::Error(e) => {
                let err =
                    Error::from_peer(e.code, String::from_utf8_lossy(&e.message).into_owned());
                self.close(CloseReason::HandshakeFailed(err));
            }
            other => self.fatal(
                NO_MESSAGE_ID,
                Tracing::default(),
                format!(
                    "expected init res, got a frame of type {}",
                    other.frame_type()
                ),
            ),
        }
    }

    fn ready(&mut self, now: Instant, init: &Init) {
        let get = |k: &str| {
            String::from_utf8_lossy(init.headers.get(k.as_bytes()).unwrap_or_default()).into_owned()
        };
        let info = PeerInfo {
            host_port: get(HOST_PORT),
            process_name: get(PROCESS_NAME),
            headers: init.headers.clone(),
        };
        self.peer = Some(info.clone());
        self.state = State::Ready;
        self.handshake_deadline = None;
        self.keepalive_next = self.config.keepalive.map(|k| now + k.interval);
        self.events.push_back(Event::Ready(info));
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

    fn on_call_req(&mut self, now: Instant, f: CallReq) {
        let id = f.id;
        if self.in_calls.contains(id) {
            return self.fatal(
                id,
                f.tracing,
                format!("call req {id} while a request with that id is in flight"),
            );
        }
        // A reused id starts a new call; forget the old one's tombstone.
        if self.tombstone_set.remove(&(Dir::In, id)) {
            self.tombstones.retain(|t| !(t.1 == Dir::In && t.2 == id));
        }
        let refuse = if matches!(self.state, State::Draining { .. }) {
            Some((ErrorCode::DECLINED, "connection draining".to_string()))
        } else if self.in_calls.len() >= self.config.max_inbound_calls {
            Some((ErrorCode::BUSY, "too many calls in flight".to_string()))
        } else if self.config.reassembly.strict_headers
            && (f.headers.get(b"as").is_none() || f.headers.get(b"cn").is_none())
        {
            // [HDR-11] a strict reader requires `as` and `cn` on a call req.
            Some((
                ErrorCode::BAD_REQUEST,
                "call req lacks the required transport header as or cn".to_string(),
            ))
        } else if f.ttl == 0 {
            // [TTL-4] an inbound ttl of 0 has already expired.
            Some((ErrorCode::TIMEOUT, "ttl of 0: already expired".to_string()))
        } else {
            None
        };
        if let Some((code, msg)) = refuse {
            self.send_error_frame(id, code, f.tracing, &msg);
            if f.flags.more_fragments() {
                self.tombstone(now, Dir::In, id);
            }
            return;
        }
        let ttl = Duration::from_millis(u64::from(f.ttl)).min(self.config.max_ttl);
        let deadline = now + ttl;
        // A message whole in this frame is checked in one pass; any other
        // (or one that breaks a rule) goes through a reassembler.
        let (chunks, reassembler) =
            match Reassembler::check_whole(&self.config.reassembly, CallFragment::from(&f)) {
                Some(c) => (c, None),
                None => {
                    let mut r = Reassembler::new(self.config.reassembly);
                    match r.push(CallFragment::from(&f)) {
                        Ok(c) => (c, Some(r)),
                        Err(e) => {
                            return self.reject_request(
                                now,
                                id,
                                f.tracing,
                                e,
                                !f.flags.more_fragments(),
                            );
                        }
                    }
                }
            };
        let bytes = chunks.data_len() as u64;
        if self.inbound_bytes + bytes > self.config.max_inbound_bytes {
            self.send_error_frame(id, ErrorCode::BUSY, f.tracing, "too many bytes in flight");
            if !chunks.message_complete() {
                self.tombstone(now, Dir::In, id);
            }
            return;
        }
        self.inbound_bytes += bytes;
        let complete = chunks.message_complete();
        let r = self.in_calls.insert(
            id,
            InCall {
                tracing: f.tracing,
                checksum: f.checksum.ty,
                request: reassembler.filter(|_| !complete).map(Box::new),
                bytes,
                writer: None,
            },
        );
        self.deadlines.push((deadline, Dir::In, r));
        self.events.push_back(Event::Request(RequestStart {
            id,
            service: f.service,
            headers: f.headers,
            tracing: f.tracing,
            ttl_ms: f.ttl,
            deadline,
            checksum: f.checksum.ty,
            chunks,
        }));
    }

    /// A request that breaks a rule: a protocol error for arg-count problems
    /// ([FRAG-10]), bad request for the rest; the call is forgotten.
    fn reject_request(
        &mut self,
        now: Instant,
        id: u32,
        tracing: Tracing,
        e: ReassemblyError,
        ended: bool,
    ) {
        if matches!(
            e,
            ReassemblyError::MissingArgs { .. } | ReassemblyError::ExtraArgs
        ) {
            return self.fatal(id, tracing, format!("bad request message: {e}"));
        }
        self.send_error_frame(id, ErrorCode::BAD_REQUEST, tracing, &e.to_string());
        if !ended {
            self.tombstone(now, Dir::In, id);
        }
    }

    fn on_call_req_continue(&mut self, now: Instant, f: CallContinue) {
        let id = f.id;
        let Some(call) = self.in_calls.get_mut(id) else {
            return; // unknown or finished: dropped quietly ([CONN-15])
        };
        let Some(r) = call.request.as_mut() else {
            // The request already ended; a continue frame now is a violation.
            let tracing = call.tracing;
            return self.fatal(
                id,
                tracing,
                format!("call req continue {id} after the request ended"),
            );
        };
        let before = r.message_bytes();
        let result = r.push(CallFragment::from(&f));
        let added = r.message_bytes() - before;
        call.bytes += added;
        let tracing = call.tracing;
        self.inbound_bytes += added;
        match result {
            Ok(chunks) => {
                if self.inbound_bytes > self.config.max_inbound_bytes {
                    self.abort_inbound(id, ErrorCode::BUSY, "too many bytes in flight", now);
                    return;
                }
                if chunks.message_complete()
                    && let Some(c) = self.in_calls.get_mut(id)
                {
                    c.request = None;
                }
                self.events.push_back(Event::RequestContinue { id, chunks });
            }
            Err(e) => {
                let ended = !f.flags.more_fragments();
                let code = if matches!(
                    e,
                    ReassemblyError::MissingArgs { .. } | ReassemblyError::ExtraArgs
                ) {
                    ErrorCode::PROTOCOL
                } else {
                    ErrorCode::BAD_REQUEST
                };
                self.remove_inbound(id);
                self.events.push_back(Event::RequestAborted {
                    id,
                    error: Error::new(code, e.to_string()),
                });
                if code == ErrorCode::PROTOCOL {
                    return self.fatal(id, tracing, format!("bad request message: {e}"));
                }
                self.send_error_frame(id, code, tracing, &e.to_string());
                if !ended {
                    self.tombstone(now, Dir::In, id);
                }
            }
        }
    }

    fn on_call_res(&mut self, f: CallRes) {
        let id = f.id;
        let Some(call) = self.out_calls.get_mut(id) else {
            return; // late or unknown: dropped quietly ([CONN-15])
        };
        if call.response.is_some() || call.writer.is_some() {
            let tracing = call.tracing;
            return self.fatal(id, tracing, format!("unexpected call res {id}"));
        }
        if let Some(chunks) =
            Reassembler::check_whole(&self.config.reassembly, CallFragment::from(&f))
        {
            self.remove_outbound(id);
            self.events.push_back(Event::Response(ResponseStart {
                id,
                code: f.code,
                headers: f.headers,
                tracing: f.tracing,
                chunks,
            }));
            return;
        }
        let mut r = Reassembler::new(self.config.reassembly);
        match r.push(CallFragment::from(&f)) {
            Ok(chunks) => {
                if chunks.message_complete() {
                    self.remove_outbound(id);
                } else {
                    call.response = Some(Box::new(r));
                }
                self.events.push_back(Event::Response(ResponseStart {
                    id,
                    code: f.code,
                    headers: f.headers,
                    tracing: f.tracing,
                    chunks,
                }));
            }
            Err(e) => self.response_failed(id, e),
        }
    }

    fn on_call_res_continue(&mut self, f: CallContinue) {
        let id = f.id;
        let Some(call) = self.out_calls.get_mut(id) else {
            return;
        };
        let Some(r) = call.response.as_mut() else {
            let tracing = call.tracing;
            return self.fatal(
                id,
                tracing,
                format!("call res continue {id} before call res"),
            );
        };
        match r.push(CallFragment::from(&f)) {
            Ok(chunks) => {
                if chunks.message_complete() {
                    self.remove_outbound(id);
                }
                self.events
                    .push_back(Event::ResponseContinue { id, chunks });
            }
            Err(e) => self.response_failed(id, e),
        }
    }

    fn response_failed(&mut self, id: u32, e: ReassemblyError) {
        let tracing = self
            .out_calls
            .get(id)
            .map(|c| c.tracing)
            .unwrap_or_default();
        self.remove_outbound(id);
        let protocol = matches!(
            e,
            ReassemblyError::MissingArgs { .. } | ReassemblyError::ExtraArgs
        );
        let code = if protocol {
            ErrorCode::PROTOCOL
        } else {
            ErrorCode::BAD_REQUEST
        };
        self.events.push_back(Event::CallFailed {
            id,
            error: Error::new(code, format!("bad response: {e}")),
        });
        if protocol {
            self.fatal(id, tracing, format!("bad response message: {e}"));
        }
    }

    fn on_cancel(&mut self, f: Cancel) {
        let id = f.id;
        let Some(call) = self.in_calls.get(id) else {
            return; // crossed with our response: fine ([CANCEL-3])
        };
        if call.writer.as_ref().is_some_and(|w| w.frames() > 0) {
            return; // [CANCEL-4] our response has started: ignored
        }
        let tracing = call.tracing;
        self.remove_inbound(id);
        self.send_error_frame(id, ErrorCode::CANCELLED, tracing, "cancelled by the caller");
        self.events.push_back(Event::RequestCancelled { id });
    }

    fn on_error(&mut self, f: ErrorFrame) {
        let message = String::from_utf8_lossy(&f.message).into_owned();
        if f.code == ErrorCode::PROTOCOL {
            // [CONN-14] a 0xff for one of our calls fails it with that error,
            // then closes like any other 0xff.
            if f.id != NO_MESSAGE_ID && self.out_calls.contains(f.id) {
                self.remove_outbound(f.id);
                self.events.push_back(Event::CallFailed {
                    id: f.id,
                    error: Error::from_peer(f.code, message.clone()),
                });
            }
            return self.close(CloseReason::PeerProtocolError(message));
        }
        if f.id == NO_MESSAGE_ID {
            // [CONN-12] no new calls on this connection.
            self.peer_draining = true;
            self.events
                .push_back(Event::PeerDraining(Error::from_peer(f.code, message)));
            return;
        }
        if self.out_calls.contains(f.id) {
            self.remove_outbound(f.id);
            self.events.push_back(Event::CallFailed {
                id: f.id,
                error: Error::from_peer(f.code, message),
            });
        } else if self.pings.remove(&f.id) {
            // An error for one of our pings: nothing waits for it.
        }
    }
}

// ===== inputs: time =====

impl Connection {
    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        if self.state == State::Closed {
            return;
        }
        if self.handshake_deadline.is_some_and(|d| d <= now) {
            return self.close(CloseReason::HandshakeTimeout);
        }
        if let State::Draining { deadline } = self.state
            && deadline <= now
        {
            return self.close(CloseReason::DrainTimeout);
        }
        while let Some((_, dir, r)) = self.deadlines.pop_due(now) {
            let Some(id) = self.live_id(dir, r) else {
                continue;
            };
            match dir {
                Dir::Out => {
                    let tracing = self
                        .out_calls
                        .get(id)
                        .map(|c| c.tracing)
                        .unwrap_or_default();
                    self.remove_outbound(id);
                    self.tombstone(now, Dir::Out, id);
                    if self.config.send_cancel {
                        self.send_cancel(id, 0, tracing, "timeout");
                    }
                    self.events.push_back(Event::CallFailed {
                        id,
                        error: Error::new(ErrorCode::TIMEOUT, "deadline passed"),
                    });
                }
                Dir::In => self.abort_inbound(id, ErrorCode::TIMEOUT, "deadline passed", now),
            }
        }
        while let Some(&(at, dir, id)) = self.tombstones.front() {
            if at > now {
                break;
            }
            self.tombstones.pop_front();
            self.tombstone_set.remove(&(dir, id));
        }
        if let (Some(next), Some(k)) = (self.keepalive_next, self.config.keepalive)
            && next <= now
        {
            if let Some(unanswered) = self.keepalive_ping.take() {
                // Only our own keepalive ping counts; pings the
                // application sent keep waiting for their answer.
                self.pings.remove(&unanswered);
                self.keepalive_unanswered += 1;
                if self.keepalive_unanswered >= k.max_unanswered {
                    return self.close(CloseReason::KeepaliveTimeout);
                }
            }
            let id = self.alloc_id();
            self.pings.insert(id);
            self.keepalive_ping = Some(id);
            self.queue(Frame::PingReq(Ping::new(id)));
            self.keepalive_next = Some(now + k.interval);
        }
        self.maybe_drained();
    }
}

// ===== application calls: requests =====

impl Connection {
    fn check_can_call(&self) -> Result<(), Error> {
        match self.state {
            State::Ready if !self.peer_draining => {}
            State::Ready => return Err(Error::new(ErrorCode::DECLINED, "peer is draining")),
            State::Draining { .. } => {
                return Err(Error::new(ErrorCode::DECLINED, "connection draining"));
            }
            State::Closed => return Err(Error::new(ErrorCode::NETWORK, "connection closed")),
            _ => {
                return Err(Error::new(ErrorCode::DECLINED, "handshake not finished"));
            }
        }
        if self.out_calls.len() >= self.config.max_outbound_calls {
            return Err(Error::new(ErrorCode::BUSY, "too many calls in flight"));
        }
        Ok(())
    }

    fn alloc_id(&mut self) -> u32 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            // [ID-3] 0xffffffff is reserved; ids still in use or remembered are skipped.
            if id != NO_MESSAGE_ID
                && !self.out_calls.contains(id)
                && !self.pings.contains(&id)
                && !self.tombstone_set.contains(&(Dir::Out, id))
            {
                return id;
            }
        }
    }

    fn ttl_ms(&self, now: Instant, deadline: Instant) -> Result<u32, Error> {
        let left = deadline
            .saturating_duration_since(now)
            .min(self.config.max_ttl);
        let ms = left.as_millis();
        if ms < 1 {
            // [TTL-2] never send a ttl of 0: fail locally.
            return Err(Error::new(
                ErrorCode::TIMEOUT,
                "less than 1 ms left before the deadline",
            ));
        }
        Ok(u32::try_from(ms).unwrap_or(u32::MAX))
    }

    /// The first frame's fields of a request, with the ttl left at `now`.
    fn request_head(&self, now: Instant, head: RequestHead) -> Result<CallHead, Error> {
        let ttl = self.ttl_ms(now, head.deadline)?;
        Ok(CallHead::Req(ReqHead {
            ttl,
            tracing: head.tracing,
            service: head.service,
            headers: head.headers,
        }))
    }

    /// Sends a whole request and returns its id. Its outcome arrives as
    /// [`Event::Response`] (and continues) or [`Event::CallFailed`].
    pub fn send_request(
        &mut self,
        now: Instant,
        head: RequestHead,
        args: [&[u8]; 3],
    ) -> Result<u32, Error> {
        self.send_request_with(now, head, args)
    }

    /// [`Connection::send_request`] with args in shared buffers: large ones
    /// are queued by reference (written with a vectored write), not copied.
    pub fn send_request_shared(
        &mut self,
        now: Instant,
        head: RequestHead,
        args: [&Bytes; 3],
    ) -> Result<u32, Error> {
        self.send_request_with(now, head, args)
    }

    fn send_request_with<A: MessageArg>(
        &mut self,
        now: Instant,
        head: RequestHead,
        args: [A; 3],
    ) -> Result<u32, Error> {
        self.check_can_call()?;
        let id = self.alloc_id();
        let (deadline, tracing, checksum) = (head.deadline, head.tracing, head.checksum);
        let call_head = self.request_head(now, head)?;
        encode_message(
            &mut self.transmit,
            id,
            &call_head,
            checksum,
            self.config.max_frame_size,
            args,
        )
        .map_err(encode_error)?;
        self.register_outbound(id, deadline, tracing, None);
        Ok(id)
    }

    /// Starts a request whose args will be written piece by piece with
    /// [`Connection::write_request`] and [`Connection::end_request_arg`].
    pub fn start_request(&mut self, now: Instant, head: RequestHead) -> Result<u32, Error> {
        self.check_can_call()?;
        let id = self.alloc_id();
        let (deadline, tracing, checksum) = (head.deadline, head.tracing, head.checksum);
        let call_head = self.request_head(now, head)?;
        let w = MessageWriter::new(id, call_head, checksum, self.config.max_frame_size)
            .map_err(encode_error)?;
        self.register_outbound(id, deadline, tracing, Some(w));
        Ok(id)
    }

    fn register_outbound(
        &mut self,
        id: u32,
        deadline: Instant,
        tracing: Tracing,
        writer: Option<MessageWriter>,
    ) {
        let r = self.out_calls.insert(
            id,
            OutCall {
                deadline,
                tracing,
                writer: writer.map(Box::new),
                response: None,
            },
        );
        self.deadlines.push((deadline, Dir::Out, r));
    }

    /// Appends bytes to the current arg of a streamed request. Whole frames
    /// are queued; a partial frame is flushed so other calls can interleave.
    pub fn write_request(&mut self, id: u32, data: &[u8]) -> Result<(), Error> {
        let call = self
            .out_calls
            .get_mut(id)
            .ok_or_else(|| Error::new(ErrorCode::NETWORK, "call is no longer in flight"))?;
        let w = call
            .writer
            .as_mut()
            .ok_or_else(|| Error::new(ErrorCode::BAD_REQUEST, "request already sent"))?;
        w.write(self.transmit.buf(), data).map_err(encode_error)?;
        w.flush(self.transmit.buf());
        Ok(())
    }

    /// Ends the current arg of a streamed request; after the third the
    /// request is complete.
    pub fn end_request_arg(&mut self, id: u32) -> Result<(), Error> {
        let call = self
            .out_calls
            .get_mut(id)
            .ok_or_else(|| Error::new(ErrorCode::NETWORK, "call is no longer in flight"))?;
        let w = call
            .writer
            .as_mut()
            .ok_or_else(|| Error::new(ErrorCode::BAD_REQUEST, "request already sent"))?;
        if w.end_arg(self.transmit.buf()).map_err(encode_error)? {
            call.writer = None;
        } else {
            // Close the frame end_arg left open: the transmit buffer must only
            // hold whole frames (other calls and pings are appended to it).
            w.flush(self.transmit.buf());
        }
        Ok(())
    }

    /// The caller gave up on a call: forget it, remember its id so late
    /// frames are dropped, and send a cancel frame if configured ([CANCEL-1]).
    pub fn cancel_call(&mut self, now: Instant, id: u32, why: &str) {
        let Some(call) = self.out_calls.get(id) else {
            return;
        };
        let tracing = call.tracing;
        // [TTL-9] the cancel carries the call's remaining time.
        let left = call
            .deadline
            .saturating_duration_since(now)
            .min(self.config.max_ttl);
        let ttl = u32::try_from(left.as_millis()).unwrap_or(u32::MAX);
        self.remove_outbound(id);
        self.tombstone(now, Dir::Out, id);
        if self.config.send_cancel && self.state != State::Closed {
            self.send_cancel(id, ttl, tracing, why);
        }
        self.maybe_drained();
    }

    fn send_cancel(&mut self, id: u32, ttl: u32, tracing: Tracing, why: &str) {
        let mut why = Bytes::copy_from_slice(why.as_bytes());
        why.truncate(usize::from(u16::MAX));
        self.queue(Frame::Cancel(Cancel {
            id,
            ttl,
            tracing,
            why,
            trailing: Bytes::new(),
        }));
    }

    /// Sends a ping; the answer arrives as [`Event::Pong`].
    pub fn ping(&mut self) -> Result<u32, Error> {
        if !self.is_ready() {
            return Err(Error::new(ErrorCode::NETWORK, "connection not ready"));
        }
        let id = self.alloc_id();
        self.pings.insert(id);
        self.queue(Frame::PingReq(Ping::new(id)));
        Ok(id)
    }
}

// ===== application calls: responses =====

impl Connection {
    fn inbound_writer(&mut self, id: u32) -> Result<&mut InCall, Error> {
        self.in_calls
            .get_mut(id)
            .ok_or_else(|| Error::new(ErrorCode::CANCELLED, "request is no longer in flight"))
    }

    fn response_head(call: &InCall, code: ResponseCode, headers: TransportHeaders) -> CallHead {
        CallHead::Res(ResHead {
            code,
            tracing: call.tracing,
            headers,
        })
    }

    /// Answers a request with a whole response, in the request's checksum
    /// type ([CSUM-12]). The call is then finished.
    pub fn send_response(
        &mut self,
        id: u32,
        code: ResponseCode,
        headers: TransportHeaders,
        args: [&[u8]; 3],
    ) -> Result<(), Error> {
        self.send_response_with(id, code, headers, args)
    }

    /// [`Connection::send_response`] with args in shared buffers: large ones
    /// are queued by reference, not copied.
    pub fn send_response_shared(
        &mut self,
        id: u32,
        code: ResponseCode,
        headers: TransportHeaders,
        args: [&Bytes; 3],
    ) -> Result<(), Error> {
        self.send_response_with(id, code, headers, args)
    }

    fn send_response_with<A: MessageArg>(
        &mut self,
        id: u32,
        code: ResponseCode,
        headers: TransportHeaders,
        args: [A; 3],
    ) -> Result<(), Error> {
        let call = self.inbound_writer(id)?;
        if call.writer.is_some() {
            return Err(Error::new(
                ErrorCode::BAD_REQUEST,
                "response already started",
            ));
        }
        let head = Self::response_head(call, code, headers);
        let checksum = call.checksum;
        encode_message(
            &mut self.transmit,
            id,
            &head,
            checksum,
            self.config.max_frame_size,
            args,
        )
        .map_err(encode_error)?;
        self.finish_inbound(id);
        Ok(())
    }

    /// Starts a streamed response; write it with [`Connection::write_response`]
    /// and [`Connection::end_response_arg`].
    pub fn start_response(
        &mut self,
        id: u32,
        code: ResponseCode,
        headers: TransportHeaders,
    ) -> Result<(), Error> {
        let call = self.inbound_writer(id)?;
        if call.writer.is_some() {
            return Err(Error::new(
                ErrorCode::BAD_REQUEST,
                "response already started",
            ));
        }
        let max_frame = self.config.max_frame_size;
        let call = self.inbound_writer(id)?;
        let head = Self::response_head(call, code, headers);
        let w = MessageWriter::new(id, head, call.checksum, max_frame).map_err(encode_error)?;
        call.writer = Some(Box::new(w));
        Ok(())
    }

    /// Appends bytes to the current arg of a streamed response.
    pub fn write_response(&mut self, id: u32, data: &[u8]) -> Result<(), Error> {
        let call = self.in_calls.get_mut(id).ok_or_else(gone)?;
        let w = call
            .writer
            .as_mut()
            .ok_or_else(|| Error::new(ErrorCode::BAD_REQUEST, "response not started"))?;
        w.write(self.transmit.buf(), data).map_err(encode_error)?;
        w.flush(self.transmit.buf());
        Ok(())
    }

    /// Ends the current arg of a streamed response; after the third the call
    /// is finished.
    pub fn end_response_arg(&mut self, id: u32) -> Result<(), Error> {
        let call = self.in_calls.get_mut(id).ok_or_else(gone)?;
        let w = call
            .writer
            .as_mut()
            .ok_or_else(|| Error::new(ErrorCode::BAD_REQUEST, "response not started"))?;
        if w.end_arg(self.transmit.buf()).map_err(encode_error)? {
            self.finish_inbound(id);
        } else {
            // As in end_request_arg: never leave an open frame queued.
            w.flush(self.transmit.buf());
        }
        Ok(())
    }

    /// Answers a request with an error frame (also after part of a streamed
    /// response went out: the error frame ends it); the call is then finished.
    pub fn send_error(&mut self, id: u32, code: ErrorCode, message: &str) -> Result<(), Error> {
        let call = self.in_calls.get(id).ok_or_else(gone)?;
        let tracing = call.tracing;
        self.send_error_frame(id, code, tracing, message);
        self.finish_inbound(id);
        Ok(())
    }

    fn finish_inbound(&mut self, id: u32) {
        let still_arriving = self.remove_inbound(id).is_some_and(|c| c.request.is_some());
        if still_arriving {
            // Continue frames may still come; drop them quietly.
            self.tombstone(self.last_now, Dir::In, id);
        }
        self.maybe_drained();
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
        for id in self.out_calls.sorted_ids() {
            self.events.push_back(Event::CallFailed {
                id,
                error: Error::new(ErrorCode::NETWORK, format!("connection closed: {why}")),
            });
        }
        for id in self.in_calls.sorted_ids() {
            self.events.push_back(Event::RequestAborted {
                id,
                error: Error::new(ErrorCode::NETWORK, format!("connection closed: {why}")),
            });
        }
        self.out_calls.clear();
        self.in_calls.clear();
        self.inbound_bytes = 0;
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
        let frame = ErrorFrame::new(
            id,
            code,
            tracing,
            Bytes::copy_from_slice(message.as_bytes()),
        );
        self.queue(Frame::Error(frame));
    }

    fn abort_inbound(&mut self, id: u32, code: ErrorCode, message: &str, now: Instant) {
        let Some(call) = self.in_calls.get(id) else {
            return;
        };
        let tracing = call.tracing;
        let arriving = call.request.is_some();
        self.remove_inbound(id);
        self.send_error_frame(id, code, tracing, message);
        if arriving {
            self.tombstone(now, Dir::In, id);
        }
        self.events.push_back(Event::RequestAborted {
            id,
            error: Error::new(code, message.to_owned()),
        });
        self.maybe_drained();
    }

    fn remove_inbound(&mut self, id: u32) -> Option<InCall> {
        let c = self.in_calls.remove(id)?;
        self.inbound_bytes = self.inbound_bytes.saturating_sub(c.bytes);
        self.prune_deadlines();
        Some(c)
    }

    fn remove_outbound(&mut self, id: u32) {
        if self.out_calls.remove(id).is_some() {
            self.prune_deadlines();
        }
    }

    /// The id of the call a deadline entry names, if it is still in flight.
    fn live_id(&self, dir: Dir, r: CallRef) -> Option<u32> {
        match dir {
            Dir::Out => self.out_calls.live_id(r),
            Dir::In => self.in_calls.live_id(r),
        }
    }

    /// Drops deadlines of calls that ended (see `timers.rs`), so the queues
    /// stay O(live calls).
    fn prune_deadlines(&mut self) {
        let live = self.out_calls.len() + self.in_calls.len();
        let (out, inb) = (&self.out_calls, &self.in_calls);
        self.deadlines.prune(live, |&(_, dir, r)| match dir {
            Dir::Out => out.live_id(r).is_some(),
            Dir::In => inb.live_id(r).is_some(),
        });
    }

    fn tombstone(&mut self, now: Instant, dir: Dir, id: u32) {
        if !self.tombstone_set.insert((dir, id)) {
            return;
        }
        self.tombstones
            .push_back((now + self.config.tombstone_ttl, dir, id));
        while self.tombstones.len() > self.config.max_tombstones {
            if let Some((_, d, i)) = self.tombstones.pop_front() {
                self.tombstone_set.remove(&(d, i));
            }
        }
    }
}

/// The `as` pair of a request as a header list of its own: a static one for
/// the usual schemes (no slice of the frame kept), else a slice.
#[inline]
fn scheme_pair(payload: &Bytes, pair: &[u8]) -> TransportHeaders {
    const RAW: &[u8] = b"\x02as\x03raw";
    const JSON: &[u8] = b"\x02as\x04json";
    const THRIFT: &[u8] = b"\x02as\x06thrift";
    let known = match pair.len() {
        7 => RAW,
        8 => JSON,
        10 => THRIFT,
        _ => &[],
    };
    if !known.is_empty() && pair == known {
        TransportHeaders::from_static_pair(known)
    } else {
        TransportHeaders::from_checked(lift(payload, pair), 1)
    }
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
            0,
            OutCall {
                deadline: now,
                tracing: Tracing::default(),
                writer: None,
                response: None,
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
