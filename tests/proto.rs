//! Tests of the sans-IO protocol core, [`tchan::proto::Connection`].
//!
//! A [`Pair`] wires an initiator ("client") and an acceptor ("server") back to
//! back on a virtual clock, in the spirit of quinn-proto's `tests/util.rs`:
//! `now` only moves when a test advances it, every byte either side writes is
//! split into frames by [`FrameCodec`] and handed to the other side, and timers
//! fire when `poll_timeout() <= now`. Nothing sleeps and nothing runs on tokio,
//! so every test is deterministic.
//!
//! Besides `drive()`, tests can capture what one side writes without
//! delivering it (to inspect, reorder, corrupt or delay frames) and inject
//! frames built by hand (or raw bytes) into one side.
//!
//! Each test cites the spec requirements it checks (`spec/06-connections.md`,
//! `spec/07-calls.md`, `spec/05-fragmentation.md`, ...).

// Measures wall time: the library's clock rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tchan::codec::FrameCodec;
use tchan::frame::{
    ArgChunks, ArgCollector, CallContinue, CallReq, CallRes, Cancel, ChecksumField, ChecksumType,
    Claim, ErrorCode, ErrorFrame, Flags, Frame, HOST_PORT, Init, InitHeaders, NO_MESSAGE_ID,
    PROCESS_NAME, Ping, ResponseCode, TCHANNEL_LANGUAGE, TCHANNEL_LANGUAGE_VERSION,
    TCHANNEL_VERSION, Tracing, TransportHeaders,
};
use tchan::proto::{
    CloseReason, Connection, ConnectionConfig, Event, Keepalive, RequestHead, RequestStart,
};
use tokio_util::codec::Decoder;

// ===== fixtures =====

const SVC: &[u8] = b"svc";
const ARGS: [&[u8]; 3] = [b"echo", b"", b"hello"];
const MORE: u8 = Flags::MORE_FRAGMENTS;
const TRACING: Tracing = Tracing {
    span_id: 0x0102_0304_0506_0708,
    parent_id: 0x1112_1314_1516_1718,
    trace_id: 0x2122_2324_2526_2728,
    flags: 0x01,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn client_config() -> ConnectionConfig {
    {
        let mut c = ConnectionConfig::default();
        c.set_host_port("0.0.0.0:0");
        c.set_process_name("test-client");
        c
    }
}

fn server_config() -> ConnectionConfig {
    {
        let mut c = ConnectionConfig::default();
        c.set_host_port("10.0.0.1:4040");
        c.set_process_name("test-server");
        c
    }
}

fn th() -> TransportHeaders {
    TransportHeaders::strict([("cn", "test"), ("as", "raw")]).unwrap()
}

fn head(deadline: Instant) -> RequestHead {
    head_with(deadline, ChecksumType::CRC32C)
}

fn head_with(deadline: Instant, checksum: ChecksumType) -> RequestHead {
    RequestHead {
        service: Bytes::from_static(SVC),
        headers: th(),
        tracing: TRACING,
        deadline,
        checksum,
    }
}

/// Deterministic bytes.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed * 7) as u8)
        .collect()
}

// ----- hand-built frames -----

fn call_req(id: u32, ttl: u32, flags: u8, chunks: &[&[u8]]) -> Frame {
    Frame::CallReq(CallReq {
        id,
        flags: Flags(flags),
        ttl,
        tracing: TRACING,
        service: Bytes::from_static(SVC),
        headers: th(),
        checksum: ChecksumField::NONE,
        args: ArgChunks::from_chunks(chunks.iter().copied()),
    })
}

fn req_continue(id: u32, flags: u8, chunks: &[&[u8]]) -> Frame {
    Frame::CallReqContinue(CallContinue {
        id,
        flags: Flags(flags),
        checksum: ChecksumField::NONE,
        args: ArgChunks::from_chunks(chunks.iter().copied()),
    })
}

fn call_res(id: u32, flags: u8, chunks: &[&[u8]]) -> Frame {
    Frame::CallRes(CallRes {
        id,
        flags: Flags(flags),
        code: ResponseCode::OK,
        tracing: TRACING,
        headers: th(),
        checksum: ChecksumField::NONE,
        args: ArgChunks::from_chunks(chunks.iter().copied()),
    })
}

fn res_continue(id: u32, flags: u8, chunks: &[&[u8]]) -> Frame {
    Frame::CallResContinue(CallContinue {
        id,
        flags: Flags(flags),
        checksum: ChecksumField::NONE,
        args: ArgChunks::from_chunks(chunks.iter().copied()),
    })
}

fn error_frame(id: u32, code: ErrorCode, message: &'static str) -> Frame {
    Frame::Error(ErrorFrame::new(
        id,
        code,
        Tracing::default(),
        Bytes::from_static(message.as_bytes()),
    ))
}

fn init(id: u32, version: u16, pairs: &[(&str, &str)]) -> Init {
    Init {
        id,
        version,
        headers: InitHeaders::from_pairs(pairs.iter().copied()).unwrap(),
        trailing: Bytes::new(),
    }
}

fn full_init_headers() -> Vec<(&'static str, &'static str)> {
    vec![(HOST_PORT, "10.9.8.7:1234"), (PROCESS_NAME, "raw-peer")]
}

// ===== the harness =====

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Client,
    Server,
}

use Who::{Client, Server};

/// One end of the pair: its connection, the events it produced that the test
/// has not taken yet, and every frame it wrote.
struct Side {
    name: &'static str,
    conn: Connection,
    events: Vec<Event>,
    /// Every frame this side wrote, in order (delivered or captured).
    sent: Vec<Frame>,
    /// Frames sent to a deaf side are lost (a peer that never answers).
    deaf: bool,
    closed: Option<CloseReason>,
    codec: FrameCodec,
}

impl Side {
    fn new(name: &'static str, conn: Connection) -> Side {
        let codec = FrameCodec::with_max_frame_size(conn.config().max_frame_size());
        Side {
            name,
            conn,
            events: Vec::new(),
            sent: Vec::new(),
            deaf: false,
            closed: None,
            codec,
        }
    }

    /// Moves the connection's events into `events`, checking the invariants
    /// every event stream must keep.
    fn collect(&mut self) {
        while let Some(e) = self.conn.poll_event() {
            assert!(
                self.closed.is_none(),
                "{}: event after Closed: {e:?}",
                self.name
            );
            if let Event::Closed(r) = &e {
                self.closed = Some(r.clone());
                // [CONN-21] a closed connection keeps nothing.
                assert_eq!(
                    self.conn.table_sizes(),
                    [0; 5],
                    "{}: tables not empty after close",
                    self.name
                );
                assert!(self.conn.is_closed());
                assert_eq!(self.conn.poll_timeout(), None);
            }
            self.events.push(e);
        }
    }

    /// Takes every queued byte and splits it into frames with the codec (at
    /// most this side's max frame size: [FRAME-5]). A batch must hold whole
    /// frames only.
    fn take_frames(&mut self) -> Vec<Frame> {
        let Some(mut buf) = self.conn.poll_transmit() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        loop {
            match self.codec.decode(&mut buf) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => break,
                Err(e) => panic!("{}: wrote an undecodable frame: {e}", self.name),
            }
        }
        assert!(
            buf.is_empty(),
            "{}: a transmit batch ended inside a frame ({} bytes left)",
            self.name,
            buf.len()
        );
        self.sent.extend(out.iter().cloned());
        out
    }

    /// Fires the timer if it is due; checks it is then re-armed past `now`.
    fn fire(&mut self, now: Instant) -> bool {
        match self.conn.poll_timeout() {
            Some(t) if t <= now => {
                self.conn.handle_timeout(now);
                if let Some(next) = self.conn.poll_timeout() {
                    assert!(next > now, "{}: timer still due after firing", self.name);
                }
                self.collect();
                true
            }
            _ => false,
        }
    }

    fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }
}

struct Pair {
    now: Instant,
    client: Side,
    server: Side,
    /// When one side is closed and flushed, tell the other the transport
    /// closed (what a real socket would do).
    propagate_close: bool,
}

impl Pair {
    /// Two fresh connections; nothing delivered yet.
    fn new(client: ConnectionConfig, server: ConnectionConfig) -> Pair {
        let now = Instant::now();
        Pair {
            now,
            client: Side::new("client", Connection::initiator(client, now)),
            server: Side::new("server", Connection::acceptor(server, now)),
            propagate_close: true,
        }
    }

    /// Two connections past the handshake, with no events pending.
    fn connected(client: ConnectionConfig, server: ConnectionConfig) -> Pair {
        let mut p = Pair::new(client, server);
        p.drive();
        assert_eq!(summary(&p.events(Client)), ["Ready"]);
        assert_eq!(summary(&p.events(Server)), ["Ready"]);
        assert!(p.client.conn.is_ready() && p.server.conn.is_ready());
        p.assert_idle();
        p
    }

    fn up() -> Pair {
        Pair::connected(client_config(), server_config())
    }

    fn side(&mut self, who: Who) -> &mut Side {
        match who {
            Client => &mut self.client,
            Server => &mut self.server,
        }
    }

    /// (from, to)
    fn both(&mut self, from: Who) -> (&mut Side, &mut Side) {
        match from {
            Client => (&mut self.client, &mut self.server),
            Server => (&mut self.server, &mut self.client),
        }
    }

    /// Fires due timers and moves frames both ways until nothing moves.
    fn drive(&mut self) {
        for round in 0.. {
            assert!(round < 100_000, "drive() does not settle");
            let now = self.now;
            let mut progress = self.client.fire(now);
            progress |= self.server.fire(now);
            for from in [Client, Server] {
                let (a, b) = self.both(from);
                a.collect();
                let frames = a.take_frames();
                if frames.is_empty() {
                    continue;
                }
                progress = true;
                if !b.deaf {
                    for f in frames {
                        b.conn.handle_frame(now, f);
                    }
                    b.collect();
                }
            }
            if self.propagate_close {
                for from in [Client, Server] {
                    let (a, b) = self.both(from);
                    if a.is_closed() && a.conn.transmit_len() == 0 && !b.is_closed() {
                        b.conn.transport_closed("peer closed the connection");
                        b.collect();
                        progress = true;
                    }
                }
            }
            if !progress {
                break;
            }
        }
    }

    /// Moves the virtual clock, then drives.
    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.drive();
    }

    /// What `who` wrote since the last drive, decoded and NOT delivered.
    fn capture(&mut self, who: Who) -> Vec<Frame> {
        let s = self.side(who);
        s.collect();
        s.take_frames()
    }

    /// Hands frames to `to` at `now`.
    fn deliver(&mut self, to: Who, frames: impl IntoIterator<Item = Frame>) {
        let now = self.now;
        let s = self.side(to);
        for f in frames {
            s.conn.handle_frame(now, f);
        }
        s.collect();
    }

    fn inject(&mut self, to: Who, frame: Frame) {
        self.deliver(to, [frame]);
    }

    /// Splits raw bytes with the codec and hands the frames to `to`; a decode
    /// error goes to `handle_decode_error`, as a transport would do.
    fn inject_bytes(&mut self, to: Who, bytes: &[u8]) {
        let now = self.now;
        let s = self.side(to);
        let mut buf = BytesMut::from(bytes);
        let mut codec = FrameCodec::new();
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => s.conn.handle_frame(now, f),
                Ok(None) => break,
                Err(tchan::codec::CodecError::Decode(e)) => {
                    s.conn.handle_decode_error(&e);
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        s.collect();
    }

    /// The events `who` produced since the last call.
    fn events(&mut self, who: Who) -> Vec<Event> {
        let s = self.side(who);
        s.collect();
        std::mem::take(&mut s.events)
    }

    /// Starts a whole call from `from` with `deadline_ms` to go.
    fn call(&mut self, from: Who, deadline_ms: u64, args: [&[u8]; 3]) -> u32 {
        let now = self.now;
        self.side(from)
            .conn
            .send_request(now, head(now + ms(deadline_ms)), args)
            .expect("send_request")
    }

    /// `who` answers its inbound call `id` with `[b"", b"", arg3]`.
    fn respond(&mut self, who: Who, id: u32, arg3: &[u8]) {
        self.side(who)
            .conn
            .send_response(id, ResponseCode::OK, th(), [b"", b"", arg3])
            .expect("send_response");
    }

    fn assert_idle(&self) {
        assert_eq!(self.client.conn.table_sizes(), [0; 5], "client tables");
        assert_eq!(self.server.conn.table_sizes(), [0; 5], "server tables");
    }
}

// ----- reading events and frames -----

fn close_kind(r: &CloseReason) -> &'static str {
    match r {
        CloseReason::Drained => "Drained",
        CloseReason::Local => "Local",
        CloseReason::PeerProtocolError(_) => "PeerProtocolError",
        CloseReason::ProtocolError(_) => "ProtocolError",
        CloseReason::HandshakeTimeout => "HandshakeTimeout",
        CloseReason::HandshakeFailed(_) => "HandshakeFailed",
        CloseReason::KeepaliveTimeout => "KeepaliveTimeout",
        CloseReason::DrainTimeout => "DrainTimeout",
        CloseReason::Transport(_) => "Transport",
        _ => "Other",
    }
}

fn err_summary(e: &tchan::Error) -> String {
    format!(
        "{}{}",
        e.code().name(),
        if e.is_local() { " local" } else { "" }
    )
}

/// One short string per event, for whole-sequence assertions.
fn summary(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Event::Ready(_) => "Ready".to_string(),
            Event::Request(r) => format!("Request({})", r.id),
            Event::RequestContinue { id, .. } => format!("RequestContinue({id})"),
            Event::RequestCancelled { id } => format!("RequestCancelled({id})"),
            Event::RequestAborted { id, error } => {
                format!("RequestAborted({id}, {})", err_summary(error))
            }
            Event::Response(r) => format!("Response({})", r.id),
            Event::ResponseContinue { id, .. } => format!("ResponseContinue({id})"),
            Event::CallFailed { id, error } => format!("CallFailed({id}, {})", err_summary(error)),
            Event::Pong { id } => format!("Pong({id})"),
            Event::PeerDraining(e) => format!("PeerDraining({})", err_summary(e)),
            Event::Closed(r) => format!("Closed({})", close_kind(r)),
            other => format!("{other:?}"),
        })
        .collect()
}

/// One short string per frame.
fn fsummary(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .map(|f| match f {
            Frame::InitReq(i) => format!("InitReq({})", i.id),
            Frame::InitRes(i) => format!("InitRes({})", i.id),
            Frame::CallReq(c) => format!("CallReq({})", c.id),
            Frame::CallRes(c) => format!("CallRes({})", c.id),
            Frame::CallReqContinue(c) => format!("CallReqContinue({})", c.id),
            Frame::CallResContinue(c) => format!("CallResContinue({})", c.id),
            Frame::Cancel(c) => format!("Cancel({})", c.id),
            Frame::Claim(c) => format!("Claim({})", c.id),
            Frame::PingReq(p) => format!("PingReq({})", p.id),
            Frame::PingRes(p) => format!("PingRes({})", p.id),
            Frame::Error(e) => format!("Error({:#x}, {})", e.id, e.code.name()),
            Frame::Unknown(o) => format!("Unknown({})", o.id),
            other => format!("{other:?}"),
        })
        .collect()
}

fn errors(frames: &[Frame]) -> Vec<&ErrorFrame> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Error(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn frames_of(frames: &[Frame], id: u32) -> Vec<Frame> {
    frames.iter().filter(|f| f.id() == id).cloned().collect()
}

/// Round-robin merge: the first frame of each group, then the second, ...
fn interleave(groups: Vec<Vec<Frame>>) -> Vec<Frame> {
    let mut out = Vec::new();
    let longest = groups.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for g in &groups {
            if let Some(f) = g.get(i) {
                out.push(f.clone());
            }
        }
    }
    out
}

/// How one of our calls ended.
#[derive(Debug)]
enum Outcome {
    Response {
        code: ResponseCode,
        args: Vec<Bytes>,
    },
    Failed(tchan::Error),
}

impl Outcome {
    fn args(&self) -> &[Bytes] {
        match self {
            Outcome::Response { args, .. } => args,
            Outcome::Failed(e) => panic!("expected a response, got {e:?}"),
        }
    }

    fn error(&self) -> &tchan::Error {
        match self {
            Outcome::Failed(e) => e,
            Outcome::Response { .. } => panic!("expected a failure, got {self:?}"),
        }
    }
}

/// The outcomes of our calls found in `events`, per id, in order. A response
/// counts once its message is complete.
fn outcomes(events: &[Event]) -> BTreeMap<u32, Vec<Outcome>> {
    let mut partial: HashMap<u32, (ResponseCode, ArgCollector)> = HashMap::new();
    let mut out: BTreeMap<u32, Vec<Outcome>> = BTreeMap::new();
    for e in events {
        match e {
            Event::Response(r) => {
                assert!(!partial.contains_key(&r.id), "second Response for {}", r.id);
                let mut c = ArgCollector::new();
                c.extend(&r.chunks);
                if r.chunks.message_complete() {
                    out.entry(r.id).or_default().push(Outcome::Response {
                        code: r.code,
                        args: c.into_args(),
                    });
                } else {
                    partial.insert(r.id, (r.code, c));
                }
            }
            Event::ResponseContinue { id, chunks } => {
                let (code, mut c) = partial
                    .remove(id)
                    .unwrap_or_else(|| panic!("ResponseContinue({id}) without Response"));
                c.extend(chunks);
                if chunks.message_complete() {
                    out.entry(*id).or_default().push(Outcome::Response {
                        code,
                        args: c.into_args(),
                    });
                } else {
                    partial.insert(*id, (code, c));
                }
            }
            Event::CallFailed { id, error } => {
                partial.remove(id);
                out.entry(*id)
                    .or_default()
                    .push(Outcome::Failed(error.clone()));
            }
            _ => {}
        }
    }
    out
}

/// The single outcome of call `id`; panics unless there is exactly one.
fn outcome(events: &[Event], id: u32) -> Outcome {
    let mut all = outcomes(events);
    let v = all.remove(&id).unwrap_or_default();
    assert_eq!(v.len(), 1, "call {id}: expected one outcome, got {v:?}");
    v.into_iter().next().unwrap()
}

/// A request from the peer as seen through events.
#[derive(Debug, Clone)]
struct InReq {
    start: RequestStart,
    collector: ArgCollector,
    complete: bool,
}

impl InReq {
    fn args(&self) -> Vec<Bytes> {
        self.collector.clone().into_args()
    }
}

/// Requests found in `events`, in order of their first frame.
fn requests(events: &[Event]) -> Vec<InReq> {
    let mut out: Vec<InReq> = Vec::new();
    for e in events {
        match e {
            Event::Request(r) => {
                let mut collector = ArgCollector::new();
                collector.extend(&r.chunks);
                out.push(InReq {
                    start: r.clone(),
                    collector,
                    complete: r.chunks.message_complete(),
                });
            }
            Event::RequestContinue { id, chunks } => {
                let r = out
                    .iter_mut()
                    .rev()
                    .find(|r| r.start.id == *id && !r.complete)
                    .unwrap_or_else(|| panic!("RequestContinue({id}) without Request"));
                r.collector.extend(chunks);
                r.complete = chunks.message_complete();
            }
            _ => {}
        }
    }
    out
}

fn request(events: &[Event], id: u32) -> InReq {
    let found: Vec<InReq> = requests(events)
        .into_iter()
        .filter(|r| r.start.id == id)
        .collect();
    assert_eq!(found.len(), 1, "request {id}: {found:?}");
    found.into_iter().next().unwrap()
}

fn args_eq(got: &[Bytes], want: [&[u8]; 3]) {
    assert_eq!(got.len(), 3, "arg count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g[..] == *w,
            "arg{} differs ({} vs {} bytes)",
            i + 1,
            g.len(),
            w.len()
        );
    }
}

// ===== handshake =====

// [CONN-1] [CONN-2] [CONN-3] [INIT-2] [INIT-3] [ID-3]
#[test]
fn handshake_ok_and_peer_info() {
    let mut p = Pair::new(client_config(), server_config());
    // [CONN-1] no call and no ping before the handshake.
    let now = p.now;
    let e = p
        .client
        .conn
        .send_request(now, head(now + ms(1000)), ARGS)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::DECLINED);
    assert!(p.client.conn.ping().is_err());
    // [CONN-2] the acceptor says nothing before it has an init req.
    assert!(p.server.conn.poll_transmit().is_none());
    assert!(!p.client.conn.is_ready() && !p.server.conn.is_ready());

    p.drive();
    assert_eq!(fsummary(&p.client.sent), ["InitReq(1)"]);
    assert_eq!(fsummary(&p.server.sent), ["InitRes(1)"]);
    let (Frame::InitReq(req), Frame::InitRes(res)) = (&p.client.sent[0], &p.server.sent[0]) else {
        unreachable!()
    };
    assert_eq!((req.version, res.version), (2, 2));
    let keys = |i: &Init| -> Vec<Vec<u8>> { i.headers.iter().map(|(k, _)| k.to_vec()).collect() };
    let want: Vec<Vec<u8>> = [
        HOST_PORT,
        PROCESS_NAME,
        TCHANNEL_LANGUAGE,
        TCHANNEL_LANGUAGE_VERSION,
        TCHANNEL_VERSION,
    ]
    .iter()
    .map(|k| k.as_bytes().to_vec())
    .collect();
    assert_eq!(keys(req), want);
    assert_eq!(keys(res), want);

    let ce = p.events(Client);
    let se = p.events(Server);
    let [Event::Ready(server_info)] = &ce[..] else {
        panic!("{ce:?}")
    };
    let [Event::Ready(client_info)] = &se[..] else {
        panic!("{se:?}")
    };
    assert_eq!(server_info.host_port, "10.0.0.1:4040");
    assert_eq!(server_info.process_name, "test-server");
    assert_eq!(client_info.host_port, "0.0.0.0:0");
    assert_eq!(client_info.process_name, "test-client");
    assert_eq!(p.client.conn.peer(), Some(server_info));
    assert_eq!(p.server.conn.peer(), Some(client_info));
    assert_eq!(
        server_info.headers.get(TCHANNEL_LANGUAGE.as_bytes()),
        Some(&b"rust"[..])
    );
    assert!(p.client.conn.accepts_new_calls() && p.server.conn.accepts_new_calls());
    p.assert_idle();
    assert_eq!(p.client.conn.poll_timeout(), None, "no timer once idle");

    // [ID-3] the initiator's init req took id 1, so its first call is 2; the
    // acceptor starts at 1. Pings share the counter.
    let c = p.call(Client, 1000, ARGS);
    let s = p.call(Server, 1000, ARGS);
    let ping = p.client.conn.ping().unwrap();
    assert_eq!((c, s, ping), (2, 1, 3));
    p.drive();
    p.respond(Server, c, b"x");
    p.respond(Client, s, b"y");
    p.drive();
    outcome(&p.events(Client), c).args();
    outcome(&p.events(Server), s).args();
    p.assert_idle();
}

// [CONN-5]
#[test]
fn handshake_timeout_closes_silently() {
    let mut p = Pair::new(client_config(), server_config());
    // The init req is lost: neither side ever completes the handshake.
    assert_eq!(fsummary(&p.capture(Client)), ["InitReq(1)"]);
    p.advance(ms(4999));
    assert!(!p.client.is_closed() && !p.server.is_closed());
    assert!(p.events(Client).is_empty() && p.events(Server).is_empty());
    p.advance(ms(1));
    assert_eq!(summary(&p.events(Client)), ["Closed(HandshakeTimeout)"]);
    assert_eq!(summary(&p.events(Server)), ["Closed(HandshakeTimeout)"]);
    // Closed without sending anything.
    assert!(p.server.sent.is_empty());
    assert_eq!(p.client.sent.len(), 1);
    p.assert_idle();
}

// [CONN-6] [TRACE-8]
#[test]
fn first_frame_not_init_gets_protocol_error_without_id() {
    for first in [
        Frame::PingReq(Ping::new(5)),
        call_req(5, 1000, 0, &ARGS),
        error_frame(5, ErrorCode::BUSY, "busy"),
    ] {
        let mut p = Pair::new(client_config(), server_config());
        p.capture(Client);
        p.inject(Server, first.clone());
        let out = p.capture(Server);
        assert_eq!(fsummary(&out), ["Error(0xffffffff, protocol)"], "{first:?}");
        assert_eq!(errors(&out)[0].tracing, Tracing::default());
        assert_eq!(summary(&p.events(Server)), ["Closed(ProtocolError)"]);
        // Nothing more happens on a closed connection.
        p.inject(Server, Frame::InitReq(init(1, 2, &full_init_headers())));
        assert!(p.capture(Server).is_empty());
        assert!(p.events(Server).is_empty());
    }
}

// [CONN-6] [INIT-4] [DEV-16]
#[test]
fn init_req_missing_required_header_gets_protocol_error_with_its_id() {
    for pairs in [
        vec![(HOST_PORT, "1.2.3.4:5")],
        vec![(PROCESS_NAME, "nameless")],
        vec![],
    ] {
        let mut p = Pair::new(client_config(), server_config());
        p.capture(Client);
        p.inject(Server, Frame::InitReq(init(42, 2, &pairs)));
        let out = p.capture(Server);
        assert_eq!(fsummary(&out), ["Error(0x2a, protocol)"], "{pairs:?}");
        assert_eq!(errors(&out)[0].tracing, Tracing::default());
        assert_eq!(summary(&p.events(Server)), ["Closed(ProtocolError)"]);
        assert!(p.server.conn.peer().is_none());
    }
}

// [CONN-4] [CONN-6] [INIT-5]
#[test]
fn acceptor_version_rules() {
    // Below 2 fails the handshake.
    let mut p = Pair::new(client_config(), server_config());
    p.capture(Client);
    p.inject(Server, Frame::InitReq(init(7, 1, &full_init_headers())));
    assert_eq!(fsummary(&p.capture(Server)), ["Error(0x7, protocol)"]);
    assert_eq!(summary(&p.events(Server)), ["Closed(ProtocolError)"]);

    // Above 2 is accepted and answered with 2; unknown headers are ignored.
    let mut p = Pair::new(client_config(), server_config());
    p.capture(Client);
    let mut pairs = full_init_headers();
    pairs.push(("x-unknown", "whatever"));
    p.inject(Server, Frame::InitReq(init(7, 3, &pairs)));
    let out = p.capture(Server);
    let [Frame::InitRes(res)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!((res.id, res.version), (7, 2));
    let ev = p.events(Server);
    let [Event::Ready(info)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(info.host_port, "10.9.8.7:1234");
    assert_eq!(info.process_name, "raw-peer");
}

// [CONN-3] [CONN-4] [CONN-6]
#[test]
fn initiator_rejects_bad_init_res() {
    let bad = [
        init(1, 3, &full_init_headers()),            // wrong version
        init(1, 1, &full_init_headers()),            // wrong version
        init(9, 2, &full_init_headers()),            // wrong id
        init(1, 2, &[(HOST_PORT, "10.0.0.1:4040")]), // no process_name
    ];
    for res in bad {
        let mut p = Pair::new(client_config(), server_config());
        p.capture(Client);
        p.inject(Client, Frame::InitRes(res.clone()));
        let out = p.capture(Client);
        assert_eq!(out.len(), 1, "{res:?}");
        assert_eq!(errors(&out)[0].code, ErrorCode::PROTOCOL);
        assert_eq!(summary(&p.events(Client)), ["Closed(ProtocolError)"]);
        assert!(p.client.conn.peer().is_none());
        let now = p.now;
        let e = p
            .client
            .conn
            .send_request(now, head(now + ms(100)), ARGS)
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::NETWORK);
    }
    // Any frame other than init res (or an error) fails it too, with no id.
    let mut p = Pair::new(client_config(), server_config());
    p.capture(Client);
    p.inject(Client, Frame::PingReq(Ping::new(1)));
    assert_eq!(
        fsummary(&p.capture(Client)),
        ["Error(0xffffffff, protocol)"]
    );
    assert_eq!(summary(&p.events(Client)), ["Closed(ProtocolError)"]);
}

// [CONN-7]
#[test]
fn error_frame_during_handshake_fails_it_quietly() {
    let mut p = Pair::new(client_config(), server_config());
    p.capture(Client);
    p.inject(
        Client,
        error_frame(1, ErrorCode::BUSY, "too many connections"),
    );
    let ev = p.events(Client);
    let [Event::Closed(CloseReason::HandshakeFailed(e))] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(e.code(), ErrorCode::BUSY);
    assert_eq!(e.message(), "too many connections");
    assert!(!e.is_local());
    // Closed without answering.
    assert!(p.capture(Client).is_empty());
}

// [CONN-8] [CONN-14]
#[test]
fn init_after_handshake_is_a_protocol_error() {
    let mut p = Pair::up();
    let id = p.call(Client, 1000, ARGS);
    p.drive();
    p.events(Server);
    p.inject(Server, Frame::InitReq(init(9, 2, &full_init_headers())));
    assert_eq!(fsummary(&p.capture(Server)), ["Error(0x9, protocol)"]);
    assert_eq!(
        summary(&p.events(Server)),
        [
            format!("RequestAborted({id}, network local)"),
            "Closed(ProtocolError)".into()
        ]
    );
    // The same check on the initiator, with the peer hearing the 0xff.
    let mut p = Pair::up();
    p.inject(Client, Frame::InitRes(init(1, 2, &full_init_headers())));
    p.drive();
    assert_eq!(summary(&p.events(Client)), ["Closed(ProtocolError)"]);
    assert_eq!(summary(&p.events(Server)), ["Closed(PeerProtocolError)"]);
    p.assert_idle();
}

// ===== calls =====

// [CONN-10] [ID-4] [TRACE-5] [CALL-6]
#[test]
fn request_response_round_trip() {
    let mut p = Pair::up();
    let big = pattern(100_000, 1);
    let id = p.call(Client, 2000, [b"method", b"headers", &big]);
    p.drive();
    let ev = p.events(Server);
    let r = request(&ev, id);
    assert!(r.complete);
    assert_eq!(&r.start.service[..], SVC);
    assert_eq!(r.start.headers, th());
    assert_eq!(r.start.tracing, TRACING);
    assert_eq!(r.start.ttl_ms, 2000);
    assert_eq!(r.start.checksum, ChecksumType::CRC32C);
    args_eq(&r.args(), [b"method", b"headers", &big]);
    // The request is still the server's until it answers.
    assert_eq!(p.server.conn.calls_in_flight(), (0, 1));
    assert_eq!(p.client.conn.calls_in_flight(), (1, 0));

    let res_headers = TransportHeaders::strict([("as", "raw")]).unwrap();
    p.server
        .conn
        .send_response(
            id,
            ResponseCode::ERROR,
            res_headers.clone(),
            [b"", b"oops", &big],
        )
        .unwrap();
    p.drive();
    // The response carries the request's tracing.
    for f in &p.server.sent {
        if let Frame::CallRes(c) = f {
            assert_eq!((c.id, c.tracing), (id, TRACING));
        }
    }
    let ev = p.events(Client);
    let Some(Event::Response(start)) = ev.first() else {
        panic!("{ev:?}")
    };
    assert_eq!(start.code, ResponseCode::ERROR);
    assert_eq!(start.headers, res_headers);
    let Outcome::Response { code, args } = outcome(&ev, id) else {
        panic!()
    };
    assert_eq!(code, ResponseCode::ERROR);
    args_eq(&args, [b"", b"oops", &big]);
    p.assert_idle();

    // [CONN-10] the acceptor may start calls too.
    let sid = p.call(Server, 500, [b"reverse", b"", b"call"]);
    p.drive();
    args_eq(
        &request(&p.events(Client), sid).args(),
        [b"reverse", b"", b"call"],
    );
    p.respond(Client, sid, b"done");
    p.drive();
    assert_eq!(&outcome(&p.events(Server), sid).args()[2][..], b"done");
    p.assert_idle();
}

// [ID-1] [CONN-11]
#[test]
fn same_id_in_both_directions_are_different_calls() {
    let mut p = Pair::up();
    let c = p.call(Client, 1000, [b"from-client", b"", b""]);
    let s1 = p.call(Server, 1000, [b"from-server-1", b"", b""]);
    let s2 = p.call(Server, 1000, [b"from-server-2", b"", b""]);
    assert_eq!((c, s1, s2), (2, 1, 2), "id 2 is in use both ways at once");
    p.drive();
    let se = p.events(Server);
    let ce = p.events(Client);
    assert_eq!(&request(&se, 2).args()[0][..], b"from-client");
    assert_eq!(&request(&ce, 2).args()[0][..], b"from-server-2");
    assert_eq!(p.client.conn.calls_in_flight(), (1, 2));
    assert_eq!(p.server.conn.calls_in_flight(), (2, 1));
    p.respond(Client, 2, b"client answers server's 2");
    p.respond(Client, 1, b"client answers server's 1");
    p.respond(Server, 2, b"server answers client's 2");
    p.drive();
    let se = p.events(Server);
    let ce = p.events(Client);
    assert_eq!(&outcome(&ce, 2).args()[2][..], b"server answers client's 2");
    assert_eq!(&outcome(&se, 2).args()[2][..], b"client answers server's 2");
    assert_eq!(&outcome(&se, 1).args()[2][..], b"client answers server's 1");
    p.assert_idle();
}

// [CONN-13] [ID-3] [ID-5]
#[test]
fn thousand_calls_answered_in_reverse_order() {
    let mut p = Pair::up();
    let mut ids = Vec::new();
    for i in 0..1000u32 {
        let arg3 = i.to_be_bytes();
        ids.push(p.call(Client, 10_000, [b"m", b"", &arg3]));
    }
    let distinct: HashSet<u32> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 1000, "ids must be distinct");
    assert!(!distinct.contains(&NO_MESSAGE_ID));
    p.drive();
    let reqs = requests(&p.events(Server));
    assert_eq!(reqs.len(), 1000);
    assert_eq!(p.server.conn.calls_in_flight(), (0, 1000));
    for r in reqs.iter().rev() {
        // Echo arg3 and say which id the server saw.
        let mut body = r.args()[2].to_vec();
        body.extend_from_slice(&r.start.id.to_be_bytes());
        p.respond(Server, r.start.id, &body);
    }
    p.drive();
    let ev = p.events(Client);
    let all = outcomes(&ev);
    assert_eq!(all.len(), 1000);
    for (i, id) in ids.iter().enumerate() {
        let v = &all[id];
        assert_eq!(v.len(), 1, "call {id}: exactly one outcome");
        let mut want = (i as u32).to_be_bytes().to_vec();
        want.extend_from_slice(&id.to_be_bytes());
        assert_eq!(
            &v[0].args()[2][..],
            &want[..],
            "call {id} got another's answer"
        );
    }
    // Responses arrived in reverse order of the calls.
    let order: Vec<u32> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Response(r) => Some(r.id),
            _ => None,
        })
        .collect();
    let mut rev = ids.clone();
    rev.reverse();
    assert_eq!(order, rev);
    p.assert_idle();
}

// [CONN-13] [FRAG-14] [FRAG-15] [FRAG-19] [FRAME-5]
#[test]
fn interleaved_multi_frame_messages_both_ways() {
    let small = |c: ConnectionConfig| {
        let mut c = c;
        c.set_max_frame_size(256).expect("valid");
        c
    };
    let mut p = Pair::connected(small(client_config()), small(server_config()));
    let a3 = pattern(3000, 1);
    let b3 = pattern(5000, 2);
    let s3 = pattern(4000, 3);
    let a2 = pattern(300, 4);
    let a = p.call(Client, 10_000, [b"method-a", &a2, &a3]);
    let b = p.call(Client, 10_000, [b"method-b", b"", &b3]);
    let s = p.call(Server, 10_000, [b"method-s", b"x", &s3]);
    let cf = p.capture(Client);
    let sf = p.capture(Server);
    for f in cf.iter().chain(&sf) {
        assert!(f.encoded_len() <= 256, "frame over the max size");
    }
    let fa = frames_of(&cf, a);
    let fb = frames_of(&cf, b);
    assert!(fa.len() > 12 && fb.len() > 20, "{} {}", fa.len(), fb.len());
    // Frames of a and b alternate on the wire, and the server's own request
    // crosses them.
    p.deliver(Server, interleave(vec![fa, fb]));
    p.deliver(Client, sf);
    let se = p.events(Server);
    let ce = p.events(Client);
    args_eq(&request(&se, a).args(), [b"method-a", &a2, &a3]);
    args_eq(&request(&se, b).args(), [b"method-b", b"", &b3]);
    args_eq(&request(&ce, s).args(), [b"method-s", b"x", &s3]);
    // Request events really were interleaved.
    let kinds = summary(&se);
    assert_eq!(kinds[0], format!("Request({a})"));
    assert_eq!(kinds[1], format!("Request({b})"));
    assert_eq!(kinds[2], format!("RequestContinue({a})"));

    // Large responses, answered b first, interleaved again, while the client
    // answers the server's call.
    let ra = pattern(2500, 5);
    let rb = pattern(3500, 6);
    let rs = pattern(1500, 7);
    p.respond(Server, b, &rb);
    p.respond(Server, a, &ra);
    p.respond(Client, s, &rs);
    let sf = p.capture(Server);
    let cf = p.capture(Client);
    for f in cf.iter().chain(&sf) {
        assert!(f.encoded_len() <= 256);
    }
    p.deliver(
        Client,
        interleave(vec![frames_of(&sf, a), frames_of(&sf, b)]),
    );
    p.deliver(Server, cf);
    let ce = p.events(Client);
    let se = p.events(Server);
    args_eq(outcome(&ce, a).args(), [b"", b"", &ra]);
    args_eq(outcome(&ce, b).args(), [b"", b"", &rb]);
    args_eq(outcome(&se, s).args(), [b"", b"", &rs]);
    p.assert_idle();
}

// [CONN-13] [FRAG-2] [FRAG-4] [FRAG-19]
#[test]
fn streamed_request_with_other_traffic_in_between() {
    let mut p = Pair::connected(
        {
            let mut c = client_config();
            c.set_max_frame_size(1000).expect("valid");
            c
        },
        server_config(),
    );
    let now = p.now;
    let id = p
        .client
        .conn
        .start_request(now, head(now + ms(5000)))
        .unwrap();
    p.drive();
    assert!(p.events(Server).is_empty(), "nothing written yet");
    p.client.conn.write_request(id, b"ec").unwrap();
    p.drive();
    // The first frame went out at once: the handler can start.
    let se = p.events(Server);
    assert_eq!(summary(&se), [format!("Request({id})")]);
    let mut seen = se;
    p.client.conn.write_request(id, b"ho").unwrap();
    p.drive();
    p.client.conn.end_request_arg(id).unwrap();
    p.drive();
    // Another call and a ping go out between the frames of this one.
    let other = p.call(Client, 5000, [b"other", b"", b"call"]);
    let ping = p.client.conn.ping().unwrap();
    p.drive();
    p.client.conn.write_request(id, b"arg2").unwrap();
    p.client.conn.end_request_arg(id).unwrap();
    p.drive();
    let big = pattern(3000, 9);
    for part in big.chunks(700) {
        p.client.conn.write_request(id, part).unwrap();
        p.drive();
    }
    p.client.conn.end_request_arg(id).unwrap();
    // After the third arg the request is complete.
    assert!(p.client.conn.write_request(id, b"more").is_err());
    assert!(p.client.conn.end_request_arg(id).is_err());
    p.drive();
    seen.extend(p.events(Server));
    args_eq(&request(&seen, id).args(), [b"echo", b"arg2", &big]);
    assert!(request(&seen, id).complete);
    args_eq(&request(&seen, other).args(), [b"other", b"", b"call"]);
    assert!(
        summary(&p.events(Client)).contains(&format!("Pong({ping})")),
        "ping answered"
    );
    p.respond(Server, id, b"streamed ok");
    p.respond(Server, other, b"other ok");
    p.drive();
    let ce = p.events(Client);
    assert_eq!(&outcome(&ce, id).args()[2][..], b"streamed ok");
    assert_eq!(&outcome(&ce, other).args()[2][..], b"other ok");
    p.assert_idle();
}

// [CONN-13] [ERR-1] [FRAG-19]
#[test]
fn streamed_response_with_other_traffic_in_between() {
    let mut p = Pair::connected(client_config(), {
        let mut c = server_config();
        c.set_max_frame_size(1000).expect("valid");
        c
    });
    let id = p.call(Client, 5000, ARGS);
    let other = p.call(Client, 5000, [b"other", b"", b""]);
    p.drive();
    p.events(Server);
    p.server
        .conn
        .start_response(id, ResponseCode::OK, th())
        .unwrap();
    // A second start is refused.
    assert!(
        p.server
            .conn
            .start_response(id, ResponseCode::OK, th())
            .is_err()
    );
    p.server.conn.end_response_arg(id).unwrap(); // empty arg1
    p.drive();
    p.server.conn.write_response(id, b"res-").unwrap();
    p.drive();
    let ce = p.events(Client);
    assert_eq!(summary(&ce)[0], format!("Response({id})"));
    let mut seen = ce;
    p.server.conn.write_response(id, b"headers").unwrap();
    p.server.conn.end_response_arg(id).unwrap();
    p.drive();
    p.respond(Server, other, b"in between");
    p.drive();
    let big = pattern(2500, 3);
    for part in big.chunks(600) {
        p.server.conn.write_response(id, part).unwrap();
        p.drive();
    }
    assert_eq!(p.client.conn.calls_in_flight(), (1, 0), "still streaming");
    p.server.conn.end_response_arg(id).unwrap();
    assert!(p.server.conn.write_response(id, b"late").is_err());
    p.drive();
    seen.extend(p.events(Client));
    args_eq(outcome(&seen, id).args(), [b"", b"res-headers", &big]);
    args_eq(outcome(&seen, other).args(), [b"", b"", b"in between"]);
    p.assert_idle();

    // [ERR-1] an error frame may end a response that already started: the
    // caller gets one CallFailed after its partial Response.
    let id = p.call(Client, 5000, ARGS);
    p.drive();
    p.events(Server);
    p.server
        .conn
        .start_response(id, ResponseCode::OK, th())
        .unwrap();
    p.server.conn.write_response(id, b"partial").unwrap();
    p.drive();
    p.server
        .conn
        .send_error(id, ErrorCode::UNEXPECTED, "handler panicked")
        .unwrap();
    p.drive();
    let ce = p.events(Client);
    assert_eq!(
        summary(&ce),
        [
            format!("Response({id})"),
            format!("CallFailed({id}, unexpected)")
        ]
    );
    assert_eq!(outcome(&ce, id).error().code(), ErrorCode::UNEXPECTED);
    p.assert_idle();
}

// ===== deadlines =====

fn ttl_of(frames: &[Frame], id: u32) -> u32 {
    frames
        .iter()
        .find_map(|f| match f {
            Frame::CallReq(c) if c.id == id => Some(c.ttl),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no call req {id}"))
}

// [TTL-1] [TTL-4] [TTL-5]
#[test]
fn ttl_sent_is_time_left() {
    let mut p = Pair::up();
    let t0 = p.now;
    let a = p
        .client
        .conn
        .send_request(t0, head(t0 + ms(1500)), ARGS)
        .unwrap();
    // 250 ms later, with 1250.9 ms left: rounded down.
    p.now += ms(250);
    let now = p.now;
    let b = p
        .client
        .conn
        .send_request(now, head(t0 + ms(1500) + Duration::from_micros(900)), ARGS)
        .unwrap();
    // Ten minutes: clamped to the 2-minute maximum.
    let c = p
        .client
        .conn
        .send_request(now, head(now + Duration::from_secs(600)), ARGS)
        .unwrap();
    let frames = p.capture(Client);
    assert_eq!(ttl_of(&frames, a), 1500);
    assert_eq!(ttl_of(&frames, b), 1250);
    assert_eq!(ttl_of(&frames, c), 120_000);
    p.deliver(Server, frames);
    let se = p.events(Server);
    for (id, ttl) in [(a, 1500), (b, 1250), (c, 120_000)] {
        let r = request(&se, id);
        assert_eq!(r.start.ttl_ms, ttl);
        // [TTL-5] the inbound deadline is arrival + ttl.
        assert_eq!(r.start.deadline, p.now + ms(u64::from(ttl)));
    }
    for id in [a, b, c] {
        p.respond(Server, id, b"");
    }
    p.drive();
    assert_eq!(outcomes(&p.events(Client)).len(), 3);
    p.assert_idle();
}

// [TTL-2]
#[test]
fn deadline_under_one_ms_fails_locally() {
    let mut p = Pair::up();
    let now = p.now;
    let past = now.checked_sub(ms(5)).unwrap();
    for deadline in [now + Duration::from_micros(999), now, past] {
        let e = p
            .client
            .conn
            .send_request(now, head(deadline), ARGS)
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::TIMEOUT);
        assert!(e.is_local());
        let e = p
            .client
            .conn
            .start_request(now, head(deadline))
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::TIMEOUT);
    }
    // Nothing was sent and nothing is tracked.
    assert!(p.capture(Client).is_empty());
    assert!(p.events(Client).is_empty());
    p.assert_idle();
    // Exactly 1 ms left is fine: ttl 1.
    let id = p
        .client
        .conn
        .send_request(now, head(now + ms(1)), ARGS)
        .unwrap();
    let frames = p.capture(Client);
    assert_eq!(ttl_of(&frames, id), 1);
    p.deliver(Server, frames);
    p.drive();
    p.respond(Server, id, b"just in time");
    p.drive();
    outcome(&p.events(Client), id).args();
    p.assert_idle();
}

// [TTL-8] [CONN-17] [CANCEL-2] [ID-3]
#[test]
fn outbound_timeout_and_late_response_dropped() {
    let mut p = Pair::up();
    let stale = p.call(Client, 100, [b"slow", b"", b""]);
    // The request reaches the server 50 ms late (its deadline: t=150).
    let held = p.capture(Client);
    p.advance(ms(50));
    p.deliver(Server, held);
    assert_eq!(summary(&p.events(Server)), [format!("Request({stale})")]);
    p.advance(ms(49));
    assert!(p.events(Client).is_empty());
    p.advance(ms(1));
    let ce = p.events(Client);
    assert_eq!(
        summary(&ce),
        [format!("CallFailed({stale}, timeout local)")]
    );
    assert_eq!(
        p.client.conn.table_sizes(),
        [0, 0, 0, 1, 0],
        "one tombstone"
    );
    assert!(
        !p.client.sent.iter().any(|f| matches!(f, Frame::Cancel(_))),
        "send_cancel is off by default"
    );

    // A new call never reuses the stale id, and never gets its response.
    let fresh = p.call(Client, 1000, [b"fast", b"", b""]);
    assert_ne!(fresh, stale);
    p.drive();
    p.events(Server);
    p.respond(Server, stale, b"stale answer");
    p.respond(Server, fresh, b"fresh answer");
    let sent_before = p.client.sent.len();
    p.drive();
    let ce = p.events(Client);
    assert_eq!(summary(&ce), [format!("Response({fresh})")]);
    assert_eq!(&outcome(&ce, fresh).args()[2][..], b"fresh answer");
    // Dropped quietly: the client wrote nothing in reply.
    assert_eq!(p.client.sent.len(), sent_before);
    assert!(!p.client.is_closed());
    // [CONN-17] tombstones age out.
    p.advance(Duration::from_secs(5));
    p.assert_idle();
}

// [TTL-4] [TTL-6] [ERR-2] [ERR-7] [TRACE-5]
#[test]
fn inbound_deadline_answers_timeout() {
    let mut p = Pair::connected(client_config(), {
        let mut c = server_config();
        c.set_max_ttl(ms(50));
        c
    });
    let id = p.call(Client, 1000, ARGS);
    p.drive();
    let r = request(&p.events(Server), id);
    assert_eq!(r.start.ttl_ms, 1000);
    // [TTL-4] the server caps the deadline it gives the call.
    assert_eq!(r.start.deadline, p.now + ms(50));
    p.advance(ms(49));
    assert!(p.events(Server).is_empty());
    p.advance(ms(1));
    assert_eq!(
        summary(&p.events(Server)),
        [format!("RequestAborted({id}, timeout local)")]
    );
    let errs = errors(&p.server.sent);
    assert_eq!(errs.len(), 1);
    assert_eq!((errs[0].id, errs[0].code), (id, ErrorCode::TIMEOUT));
    assert_eq!(errs[0].tracing, TRACING);
    // The caller gets the server's timeout.
    let e = outcome(&p.events(Client), id).error().clone();
    assert_eq!(e.code(), ErrorCode::TIMEOUT);
    assert!(!e.is_local());
    // What the handler produces later is discarded.
    assert!(
        p.server
            .conn
            .send_response(id, ResponseCode::OK, th(), ARGS)
            .is_err()
    );
    assert!(
        p.server
            .conn
            .start_response(id, ResponseCode::OK, th())
            .is_err()
    );
    assert!(p.capture(Server).is_empty());
    p.assert_idle();
}

// [TTL-5] [CONN-18]
#[test]
fn inbound_ttl_zero_is_already_expired() {
    let mut p = Pair::up();
    p.inject(Server, call_req(9, 0, 0, &ARGS));
    let out = p.capture(Server);
    assert_eq!(fsummary(&out), ["Error(0x9, timeout)"]);
    assert_eq!(errors(&out)[0].tracing, TRACING);
    assert!(p.events(Server).is_empty(), "the handler never runs");
    p.assert_idle();
    // A multi-frame one: its remaining frames are dropped quietly.
    p.inject(Server, call_req(10, 0, MORE, &[b"m"]));
    assert_eq!(fsummary(&p.capture(Server)), ["Error(0xa, timeout)"]);
    assert_eq!(p.server.conn.table_sizes(), [0, 0, 0, 1, 0]);
    p.inject(Server, req_continue(10, 0, &[b"", b"", b"end"]));
    assert!(p.capture(Server).is_empty());
    assert!(p.events(Server).is_empty());
    assert!(!p.server.is_closed());
}

// ===== cancellation =====

// [CANCEL-1] [CANCEL-2] [CANCEL-3] [TTL-9] [ID-6] [MSG-5]
#[test]
fn cancel_signals_handler_and_late_error_is_dropped() {
    let mut p = Pair::connected(
        {
            let mut c = client_config();
            c.set_send_cancel(true);
            c
        },
        server_config(),
    );
    let id = p.call(Client, 1000, ARGS);
    p.drive();
    p.events(Server);
    p.now += ms(300);
    let now = p.now;
    p.client.conn.cancel_call(now, id, "caller gave up");
    assert!(p.events(Client).is_empty(), "the caller already knows");
    let out = p.capture(Client);
    let [Frame::Cancel(c)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(c.id, id);
    assert_eq!(c.tracing, TRACING);
    assert_eq!(&c.why[..], b"caller gave up");
    assert_eq!(c.ttl, 700, "the remaining time");
    p.deliver(Server, out);
    assert_eq!(
        summary(&p.events(Server)),
        [format!("RequestCancelled({id})")]
    );
    let out = p.capture(Server);
    assert_eq!(fsummary(&out), [format!("Error({id:#x}, cancelled)")]);
    assert_eq!(errors(&out)[0].tracing, TRACING);
    // The caller drops the cancelled error quietly.
    p.deliver(Client, out);
    assert!(p.events(Client).is_empty());
    assert!(p.capture(Client).is_empty());
    // The handler's later answer goes nowhere.
    assert!(
        p.server
            .conn
            .send_response(id, ResponseCode::OK, th(), ARGS)
            .is_err()
    );
    assert!(p.capture(Server).is_empty());
    // Cancelling twice, or an unknown id, does nothing.
    p.client.conn.cancel_call(now, id, "again");
    p.client.conn.cancel_call(now, 777, "unknown");
    assert!(p.capture(Client).is_empty());
    p.advance(Duration::from_secs(5));
    p.assert_idle();
}

// [CANCEL-4]
#[test]
fn cancel_after_response_started_is_ignored() {
    let mut p = Pair::connected(
        {
            let mut c = client_config();
            c.set_send_cancel(true);
            c
        },
        server_config(),
    );
    let id = p.call(Client, 1000, ARGS);
    p.drive();
    p.events(Server);
    p.server
        .conn
        .start_response(id, ResponseCode::OK, th())
        .unwrap();
    p.server.conn.write_response(id, b"first part").unwrap();
    p.drive();
    assert_eq!(summary(&p.events(Client)), [format!("Response({id})")]);
    let now = p.now;
    p.client.conn.cancel_call(now, id, "too slow");
    p.drive();
    assert!(p.client.sent.iter().any(|f| matches!(f, Frame::Cancel(_))));
    // The server's first response frame is out: the cancel is ignored.
    assert!(p.events(Server).is_empty());
    assert!(errors(&p.server.sent).is_empty());
    p.server.conn.end_response_arg(id).unwrap();
    p.server.conn.end_response_arg(id).unwrap();
    p.server.conn.end_response_arg(id).unwrap();
    p.drive();
    // The rest of the response is dropped quietly by the caller.
    assert!(p.events(Client).is_empty());
    assert!(errors(&p.client.sent).is_empty());
    p.advance(Duration::from_secs(5));
    p.assert_idle();
}

// [CANCEL-1] [CANCEL-2]
#[test]
fn send_cancel_off_sends_no_cancel() {
    let mut p = Pair::up();
    let a = p.call(Client, 100, ARGS);
    let b = p.call(Client, 5000, ARGS);
    p.drive();
    p.events(Server);
    let now = p.now;
    p.client.conn.cancel_call(now, b, "gave up");
    p.drive();
    // The server is not told and keeps working on b (a times out on both
    // sides later).
    assert_eq!(p.server.conn.calls_in_flight(), (0, 2));
    p.advance(ms(100));
    assert_eq!(
        summary(&p.events(Client)),
        [format!("CallFailed({a}, timeout local)")]
    );
    assert_eq!(
        summary(&p.events(Server)),
        [format!("RequestAborted({a}, timeout local)")]
    );
    assert!(!p.client.sent.iter().any(|f| matches!(f, Frame::Cancel(_))));
    p.respond(Server, b, b"nobody listens");
    p.drive();
    assert!(p.events(Client).is_empty());
    p.advance(Duration::from_secs(5));
    p.assert_idle();
}

// [CANCEL-1] [TTL-9]
#[test]
fn timeout_with_send_cancel_sends_cancel_with_ttl_zero() {
    let mut p = Pair::connected(
        {
            let mut c = client_config();
            c.set_send_cancel(true);
            c
        },
        server_config(),
    );
    let id = p.call(Client, 100, ARGS);
    p.drive();
    p.events(Server);
    p.advance(ms(100));
    assert_eq!(
        summary(&p.events(Client)),
        [format!("CallFailed({id}, timeout local)")]
    );
    let cancels: Vec<&Cancel> = p
        .client
        .sent
        .iter()
        .filter_map(|f| match f {
            Frame::Cancel(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(cancels.len(), 1);
    assert_eq!((cancels[0].id, cancels[0].ttl), (id, 0));
    assert_eq!(cancels[0].tracing, TRACING);
    // The server's own deadline fired at the same moment; the crossing cancel
    // and timeout error are both dropped, each call ends exactly once.
    assert_eq!(
        summary(&p.events(Server)),
        [format!("RequestAborted({id}, timeout local)")]
    );
    assert!(!p.client.is_closed() && !p.server.is_closed());
    p.advance(Duration::from_secs(5));
    p.assert_idle();
}

// ===== pings and keepalive =====

// [CONN-15] [ID-3] [ID-4]
#[test]
fn ping_is_answered_automatically() {
    let mut p = Pair::up();
    let c = p.call(Client, 1000, ARGS);
    let ping = p.client.conn.ping().unwrap();
    assert_eq!(ping, c + 1, "pings share the id counter");
    p.drive();
    assert!(
        p.server
            .sent
            .iter()
            .any(|f| *f == Frame::PingRes(Ping::new(ping)))
    );
    assert_eq!(summary(&p.events(Client)), [format!("Pong({ping})")]);
    // The server pings too.
    let sp = p.server.conn.ping().unwrap();
    p.drive();
    assert!(
        p.client
            .sent
            .iter()
            .any(|f| *f == Frame::PingRes(Ping::new(sp)))
    );
    let se = p.events(Server);
    assert!(summary(&se).contains(&format!("Pong({sp})")));
    // A ping res nobody asked for is dropped.
    p.inject(Client, Frame::PingRes(Ping::new(4242)));
    assert!(p.events(Client).is_empty());
    assert!(p.capture(Client).is_empty());
    p.respond(Server, c, b"");
    p.drive();
    p.events(Client);
    p.assert_idle();
}

fn keepalive(c: ConnectionConfig) -> ConnectionConfig {
    {
        let mut c = c;
        c.set_keepalive(Some(Keepalive {
            interval: Duration::from_secs(1),
            max_unanswered: 3,
        }));
        c
    }
}

fn pings_sent(s: &Side) -> Vec<u32> {
    s.sent
        .iter()
        .filter_map(|f| match f {
            Frame::PingReq(p) => Some(p.id),
            _ => None,
        })
        .collect()
}

// [CONN-15] keepalive itself has no spec ID: the issue asks for closing after N
// unanswered pings (ConnectionConfig::keepalive).
#[test]
fn keepalive_closes_after_unanswered_pings() {
    let mut p = Pair::connected(keepalive(client_config()), server_config());
    let id = p.call(Client, 60_000, ARGS);
    p.drive();
    p.events(Server);
    // From now on the peer hears nothing (and so answers nothing).
    p.server.deaf = true;
    for n in 1..=3 {
        p.advance(Duration::from_secs(1));
        assert!(!p.client.is_closed(), "closed after {n} pings");
        assert_eq!(pings_sent(&p.client).len(), n);
    }
    p.advance(Duration::from_secs(1));
    assert_eq!(
        summary(&p.events(Client)),
        [
            format!("CallFailed({id}, network local)"),
            "Closed(KeepaliveTimeout)".into()
        ]
    );
    let ids = pings_sent(&p.client);
    assert_eq!(ids.len(), 3);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 3);
    p.assert_idle();
}

// [CONN-15] (keepalive: issue requirement, no spec ID)
#[test]
fn keepalive_answered_keeps_connection_up() {
    let mut p = Pair::connected(keepalive(client_config()), server_config());
    for _ in 0..10 {
        p.advance(Duration::from_secs(1));
    }
    assert!(!p.client.is_closed());
    let ev = p.events(Client);
    assert_eq!(ev.len(), 10);
    assert!(ev.iter().all(|e| matches!(e, Event::Pong { .. })));
    assert_eq!(p.client.conn.table_sizes(), [0; 5]);
}

// ===== connection-level errors =====

// [CONN-16] [MSG-8]
#[test]
fn peer_draining_error_stops_new_calls_only() {
    let mut p = Pair::up();
    let id = p.call(Client, 1000, ARGS);
    p.drive();
    p.events(Server);
    p.inject(
        Client,
        error_frame(NO_MESSAGE_ID, ErrorCode::DECLINED, "draining"),
    );
    let ev = p.events(Client);
    let [Event::PeerDraining(e)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(e.code(), ErrorCode::DECLINED);
    assert!(!e.is_local());
    assert!(!p.client.conn.accepts_new_calls());
    assert!(p.client.conn.is_ready());
    let now = p.now;
    let e = p
        .client
        .conn
        .send_request(now, head(now + ms(100)), ARGS)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::DECLINED);
    assert!(
        p.client
            .conn
            .start_request(now, head(now + ms(100)))
            .is_err()
    );
    assert!(p.capture(Client).is_empty());
    // The call in flight still completes; pings still work.
    let ping = p.client.conn.ping().unwrap();
    p.respond(Server, id, b"still answered");
    p.drive();
    let ce = p.events(Client);
    assert_eq!(&outcome(&ce, id).args()[2][..], b"still answered");
    assert!(summary(&ce).contains(&format!("Pong({ping})")));
    assert!(!p.client.is_closed());
    p.assert_idle();
}

// [CONN-14] [CONN-21] [ERR-5]
#[test]
fn peer_protocol_error_closes_and_fails_every_call_once() {
    let mut p = Pair::up();
    let ids: Vec<u32> = (0..3).map(|_| p.call(Client, 5000, ARGS)).collect();
    let s = p.call(Server, 5000, ARGS);
    p.drive();
    p.events(Server);
    p.events(Client);
    let ping = p.client.conn.ping().unwrap();
    p.capture(Client);
    p.inject(
        Client,
        error_frame(NO_MESSAGE_ID, ErrorCode::PROTOCOL, "you broke it"),
    );
    let ev = p.events(Client);
    let all = outcomes(&ev);
    assert_eq!(all.len(), 3);
    for id in &ids {
        let e = outcome(&ev, *id).error().clone();
        assert_eq!(e.code(), ErrorCode::NETWORK);
        assert!(e.is_local());
    }
    assert_eq!(
        summary(&ev)[3..],
        [
            format!("RequestAborted({s}, network local)"),
            "Closed(PeerProtocolError)".into()
        ]
    );
    let Some(Event::Closed(CloseReason::PeerProtocolError(m))) = ev.last() else {
        unreachable!()
    };
    assert_eq!(m, "you broke it");
    // [CONN-21] no further frames, and nothing more happens.
    assert!(p.capture(Client).is_empty());
    p.inject(Client, call_res(ids[0], 0, &ARGS));
    p.inject(Client, Frame::PingRes(Ping::new(ping)));
    assert!(p.events(Client).is_empty());
    let now = p.now;
    assert_eq!(
        p.client
            .conn
            .send_request(now, head(now + ms(100)), ARGS)
            .unwrap_err()
            .code(),
        ErrorCode::NETWORK
    );
    assert!(p.client.conn.ping().is_err());
    assert!(
        p.client
            .conn
            .send_response(s, ResponseCode::OK, th(), ARGS)
            .is_err()
    );
    assert!(p.capture(Client).is_empty());
    assert_eq!(p.client.conn.poll_timeout(), None);
}

// [CONN-14]
#[test]
fn protocol_error_for_a_call_fails_it_and_closes() {
    let mut p = Pair::up();
    let a = p.call(Client, 5000, ARGS);
    let b = p.call(Client, 5000, ARGS);
    p.drive();
    p.inject(Client, error_frame(a, ErrorCode::PROTOCOL, "bad call"));
    let ev = p.events(Client);
    let ea = outcome(&ev, a).error().clone();
    assert_eq!(
        ea.code(),
        ErrorCode::PROTOCOL,
        "the call gets the error itself"
    );
    assert!(!ea.is_local());
    assert_eq!(outcome(&ev, b).error().code(), ErrorCode::NETWORK);
    assert_eq!(summary(&ev).last().unwrap(), "Closed(PeerProtocolError)");
}

// [CONN-9]
#[test]
fn undecodable_bytes_get_protocol_error_and_close() {
    let mut p = Pair::up();
    let id = p.call(Server, 1000, ARGS);
    p.drive();
    p.events(Client);
    // A header whose size (5) is below 16.
    let mut raw = vec![0x00, 0x05, 0x03, 0x00, 0, 0, 0, 9];
    raw.extend_from_slice(&[0; 8]);
    p.inject_bytes(Client, &raw);
    assert_eq!(
        fsummary(&p.capture(Client)),
        ["Error(0xffffffff, protocol)"]
    );
    assert_eq!(
        summary(&p.events(Client)),
        [
            format!("RequestAborted({id}, network local)"),
            "Closed(ProtocolError)".into()
        ]
    );
}

// [FRAG-9] [ERR-5] [ERR-7] [TRACE-5]
#[test]
fn request_with_two_args_is_a_protocol_error() {
    let mut p = Pair::up();
    p.inject(Server, call_req(11, 1000, 0, &[b"m", b"h"]));
    let out = p.capture(Server);
    assert_eq!(fsummary(&out), ["Error(0xb, protocol)"]);
    assert_eq!(errors(&out)[0].tracing, TRACING);
    assert_eq!(summary(&p.events(Server)), ["Closed(ProtocolError)"]);
    p.deliver(Client, out);
    assert_eq!(summary(&p.events(Client)), ["Closed(PeerProtocolError)"]);
    p.assert_idle();

    // The same when the message ends in a continue frame: the handler that
    // already started is told, once.
    let mut p = Pair::up();
    p.inject(Server, call_req(12, 1000, MORE, &[b"m"]));
    p.inject(Server, req_continue(12, 0, &[b"", b"h"]));
    assert_eq!(fsummary(&p.capture(Server)), ["Error(0xc, protocol)"]);
    assert_eq!(
        summary(&p.events(Server)),
        [
            "Request(12)",
            "RequestAborted(12, protocol local)",
            "Closed(ProtocolError)"
        ]
    );
}

// [FRAG-9]
#[test]
fn request_with_a_fourth_arg_is_a_protocol_error() {
    let mut p = Pair::up();
    p.inject(
        Server,
        call_req(13, 1000, 0, &[b"m", b"h", b"body", b"extra"]),
    );
    assert_eq!(fsummary(&p.capture(Server)), ["Error(0xd, protocol)"]);
    assert_eq!(summary(&p.events(Server)), ["Closed(ProtocolError)"]);
    assert!(p.server.is_closed());

    // A fourth arg on a response: that call fails with a protocol error, the
    // others with network, and the connection closes.
    let mut p = Pair::up();
    let a = p.call(Client, 5000, ARGS);
    let b = p.call(Client, 5000, ARGS);
    p.drive();
    p.inject(Client, call_res(a, 0, &[b"", b"", b"x", b"y"]));
    let out = p.capture(Client);
    assert_eq!(fsummary(&out), [format!("Error({a:#x}, protocol)")]);
    let ev = p.events(Client);
    assert_eq!(outcome(&ev, a).error().code(), ErrorCode::PROTOCOL);
    assert_eq!(outcome(&ev, b).error().code(), ErrorCode::NETWORK);
    assert_eq!(summary(&ev).last().unwrap(), "Closed(ProtocolError)");
}

// [CONN-12] [ID-5]
#[test]
fn duplicate_in_flight_request_id_is_a_protocol_error() {
    let mut p = Pair::up();
    p.inject(Server, call_req(7, 1000, 0, &ARGS));
    p.respond(Server, 7, b"");
    // A finished id may be reused.
    p.inject(Server, call_req(7, 1000, 0, &ARGS));
    // 0xffffffff is accepted as an ordinary call id.
    p.inject(Server, call_req(NO_MESSAGE_ID, 1000, 0, &ARGS));
    assert_eq!(
        summary(&p.events(Server)),
        ["Request(7)", "Request(7)", "Request(4294967295)"]
    );
    assert_eq!(p.server.conn.calls_in_flight(), (0, 2));
    p.capture(Server);
    // A second call req 7 while 7 is in flight.
    p.inject(Server, call_req(7, 1000, 0, &ARGS));
    let out = p.capture(Server);
    assert_eq!(fsummary(&out), ["Error(0x7, protocol)"]);
    assert_eq!(
        summary(&p.events(Server)),
        [
            "RequestAborted(7, network local)",
            "RequestAborted(4294967295, network local)",
            "Closed(ProtocolError)"
        ]
    );
}

// ===== message-level rejections =====

// [CSUM-16] [CONN-20] [CONN-18] [CONN-17]
#[test]
fn checksum_mismatch_is_bad_request_and_connection_stays_up() {
    let mut p = Pair::up();
    let Frame::CallReq(mut f) = call_req(21, 1000, 0, &ARGS) else {
        unreachable!()
    };
    f.checksum = ChecksumField {
        ty: ChecksumType::CRC32,
        value: 0xdead_beef,
    };
    p.inject(Server, Frame::CallReq(f));
    let out = p.capture(Server);
    assert_eq!(fsummary(&out), ["Error(0x15, bad_request)"]);
    assert_eq!(errors(&out)[0].tracing, TRACING);
    assert!(p.events(Server).is_empty(), "the handler never runs");
    assert!(!p.server.is_closed());
    p.assert_idle();

    // A bad checksum in a later frame: the started handler is aborted, the
    // caller gets bad request, the remaining frames are dropped quietly.
    let mut p = Pair::connected(
        {
            let mut c = client_config();
            c.set_max_frame_size(256).expect("valid");
            c
        },
        server_config(),
    );
    let big = pattern(2000, 1);
    let id = p.call(Client, 5000, [b"m", b"", &big]);
    let mut frames = p.capture(Client);
    assert!(frames.len() > 4);
    let Frame::CallReqContinue(c) = &mut frames[1] else {
        panic!("{:?}", frames[1])
    };
    c.checksum.value ^= 1;
    p.deliver(Server, frames);
    assert_eq!(
        summary(&p.events(Server)),
        [
            format!("Request({id})"),
            format!("RequestAborted({id}, bad_request local)")
        ]
    );
    let out = p.capture(Server);
    assert_eq!(fsummary(&out), [format!("Error({id:#x}, bad_request)")]);
    assert!(!p.server.is_closed());
    p.deliver(Client, out);
    let e = outcome(&p.events(Client), id).error().clone();
    assert_eq!((e.code(), e.is_local()), (ErrorCode::BAD_REQUEST, false));
    // Still usable.
    let ok = p.call(Client, 5000, ARGS);
    p.drive();
    p.events(Server);
    p.respond(Server, ok, b"fine");
    p.drive();
    outcome(&p.events(Client), ok).args();
    assert_eq!(p.client.conn.table_sizes(), [0; 5]);

    // [CSUM-16] a response that fails its checksum fails the call locally;
    // the connection stays up.
    let id = p.call(Client, 5000, ARGS);
    p.drive();
    p.events(Server);
    let Frame::CallRes(mut r) = call_res(id, 0, &ARGS) else {
        unreachable!()
    };
    r.checksum = ChecksumField {
        ty: ChecksumType::CRC32C,
        value: 1,
    };
    p.inject(Client, Frame::CallRes(r));
    let e = outcome(&p.events(Client), id).error().clone();
    assert!(e.is_local());
    assert!(e.message().contains("checksum"), "{e:?}");
    assert!(!p.client.is_closed());
    assert!(
        p.capture(Client).is_empty(),
        "no error frame for a response"
    );
}

// [FRAME-11] [MSG-6] [CANCEL-5] [DEV-11] [DEV-12]
#[test]
fn unknown_frame_types_and_claims_are_ignored() {
    let mut p = Pair::up();
    let id = p.call(Client, 1000, ARGS);
    p.drive();
    p.events(Server);
    // Type 0x50 with id = the call's and a 3-byte payload.
    let mut raw = vec![0x00, 19, 0x50, 0x00];
    raw.extend_from_slice(&id.to_be_bytes());
    raw.extend_from_slice(&[0; 8]);
    raw.extend_from_slice(&[1, 2, 3]);
    p.inject_bytes(Server, &raw);
    p.inject(
        Server,
        Frame::Claim(Claim {
            id,
            ttl: 100,
            tracing: TRACING,
            trailing: Bytes::new(),
        }),
    );
    p.inject_bytes(Client, &raw);
    assert!(p.events(Server).is_empty() && p.events(Client).is_empty());
    assert!(p.capture(Server).is_empty() && p.capture(Client).is_empty());
    assert_eq!(p.server.conn.calls_in_flight(), (0, 1));
    p.respond(Server, id, b"unaffected");
    p.drive();
    assert_eq!(&outcome(&p.events(Client), id).args()[2][..], b"unaffected");
    p.assert_idle();
}

// [CONN-17] [CANCEL-4] [FRAG-13]
#[test]
fn frames_for_unknown_calls_are_dropped_quietly() {
    let mut p = Pair::up();
    let id = p.call(Client, 1000, ARGS);
    p.drive();
    p.events(Server);
    let junk_for_client = [
        call_res(500, 0, &ARGS),
        res_continue(501, 0, &[b"x"]),
        error_frame(502, ErrorCode::TIMEOUT, "late"),
        Frame::PingRes(Ping::new(503)),
    ];
    let junk_for_server = [
        req_continue(600, 0, &[b"x"]),
        Frame::Cancel(Cancel {
            id: 601,
            ttl: 0,
            tracing: TRACING,
            why: Bytes::from_static(b"late"),
            trailing: Bytes::new(),
        }),
        error_frame(602, ErrorCode::BUSY, "an error for a call we never made"),
    ];
    p.deliver(Client, junk_for_client);
    p.deliver(Server, junk_for_server);
    assert!(p.events(Client).is_empty() && p.events(Server).is_empty());
    assert!(p.capture(Client).is_empty() && p.capture(Server).is_empty());
    assert!(!p.client.is_closed() && !p.server.is_closed());
    p.respond(Server, id, b"");
    p.drive();
    outcome(&p.events(Client), id).args();
    // A cancel for a call already answered is ignored too.
    p.inject(
        Server,
        Frame::Cancel(Cancel {
            id,
            ttl: 0,
            tracing: TRACING,
            why: Bytes::new(),
            trailing: Bytes::new(),
        }),
    );
    assert!(p.events(Server).is_empty() && p.capture(Server).is_empty());
    p.assert_idle();
}

// [ERR-7]
#[test]
fn max_inbound_calls_answers_busy() {
    let mut p = Pair::connected(client_config(), {
        let mut c = server_config();
        c.set_max_inbound_calls(2);
        c
    });
    let a = p.call(Client, 1000, ARGS);
    let b = p.call(Client, 1000, ARGS);
    let c = p.call(Client, 1000, ARGS);
    p.drive();
    assert_eq!(
        summary(&p.events(Server)),
        [format!("Request({a})"), format!("Request({b})")]
    );
    assert_eq!(
        fsummary(
            &errors(&p.server.sent)
                .into_iter()
                .cloned()
                .map(Frame::Error)
                .collect::<Vec<_>>()
        ),
        [format!("Error({c:#x}, busy)")]
    );
    let e = outcome(&p.events(Client), c).error().clone();
    assert_eq!((e.code(), e.is_local()), (ErrorCode::BUSY, false));
    // Once one finishes there is room again.
    p.respond(Server, a, b"");
    let d = p.call(Client, 1000, ARGS);
    p.drive();
    assert_eq!(summary(&p.events(Server)), [format!("Request({d})")]);
    p.respond(Server, b, b"");
    p.respond(Server, d, b"");
    p.drive();
    let ce = p.events(Client);
    for id in [a, b, d] {
        outcome(&ce, id).args();
    }
    p.assert_idle();
}

// [ERR-7] (the outbound limit is a config requirement, no spec ID)
#[test]
fn max_outbound_calls_fails_locally_with_busy() {
    let mut p = Pair::connected(
        {
            let mut c = client_config();
            c.set_max_outbound_calls(1);
            c
        },
        server_config(),
    );
    let a = p.call(Client, 1000, ARGS);
    let now = p.now;
    let e = p
        .client
        .conn
        .send_request(now, head(now + ms(1000)), ARGS)
        .unwrap_err();
    assert_eq!((e.code(), e.is_local()), (ErrorCode::BUSY, true));
    p.drive();
    p.events(Server);
    p.respond(Server, a, b"");
    p.drive();
    outcome(&p.events(Client), a).args();
    p.assert_idle();
}

// [ERR-7] [FRAG-11] [CONN-18]
#[test]
fn max_inbound_bytes_answers_busy() {
    let limited = || {
        let mut c = server_config();
        c.set_max_inbound_bytes(1000);
        c
    };
    let mut p = Pair::connected(client_config(), limited());
    // Two 600-byte requests: the second would go over the budget and is
    // answered busy before any handler runs.
    let a = p.call(Client, 5000, [b"", b"", &pattern(600, 1)]);
    let b = p.call(Client, 5000, [b"", b"", &pattern(600, 2)]);
    p.drive();
    assert_eq!(summary(&p.events(Server)), [format!("Request({a})")]);
    assert_eq!(
        fsummary(&p.server.sent[1..]),
        [format!("Error({b:#x}, busy)")]
    );
    let e = outcome(&p.events(Client), b).error().clone();
    assert_eq!((e.code(), e.is_local()), (ErrorCode::BUSY, false));
    // Bytes are released when a call finishes.
    p.respond(Server, a, b"");
    let c = p.call(Client, 5000, [b"", b"", &pattern(900, 3)]);
    p.drive();
    assert!(request(&p.events(Server), c).complete);
    p.respond(Server, c, b"");
    p.drive();
    let ce = p.events(Client);
    outcome(&ce, a).args();
    outcome(&ce, c).args();
    p.assert_idle();

    // A multi-frame request that crosses the limit midway: the started
    // handler is aborted, the caller gets busy, the remaining frames are
    // dropped quietly, and the connection stays up.
    let mut p = Pair::connected(
        {
            let mut c = client_config();
            c.set_max_frame_size(256).expect("valid");
            c
        },
        limited(),
    );
    let big = pattern(3000, 4);
    let id = p.call(Client, 5000, [b"", b"", &big]);
    p.drive();
    let se = summary(&p.events(Server));
    assert_eq!(se[0], format!("Request({id})"));
    assert_eq!(
        se.last().unwrap(),
        &format!("RequestAborted({id}, busy local)")
    );
    assert_eq!(
        fsummary(&p.server.sent[1..]),
        [format!("Error({id:#x}, busy)")]
    );
    let e = outcome(&p.events(Client), id).error().clone();
    assert_eq!((e.code(), e.is_local()), (ErrorCode::BUSY, false));
    assert!(!p.server.is_closed());
    let ok = p.call(Client, 5000, ARGS);
    p.drive();
    p.events(Server);
    p.respond(Server, ok, b"");
    p.drive();
    outcome(&p.events(Client), ok).args();
    p.advance(Duration::from_secs(5));
    p.assert_idle();
}

// ===== drain and close =====

// [CONN-19] [CONN-15] [CONN-16] [DEV-21]
#[test]
fn drain_declines_new_calls_and_closes_when_idle() {
    let mut p = Pair::up();
    let a = p.call(Client, 60_000, ARGS);
    let s = p.call(Server, 60_000, ARGS);
    p.drive();
    p.events(Server);
    p.events(Client);
    let now = p.now;
    p.server.conn.drain(now, now + Duration::from_secs(10));
    assert!(!p.server.conn.accepts_new_calls());
    let e = p
        .server
        .conn
        .send_request(now, head(now + ms(100)), ARGS)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::DECLINED);
    // (1) the peer is told with one error frame 0xffffffff declined.
    let out = p.capture(Server);
    assert_eq!(fsummary(&out), ["Error(0xffffffff, declined)"]);
    assert_eq!(errors(&out)[0].tracing, Tracing::default());
    p.deliver(Client, out);
    assert_eq!(summary(&p.events(Client)), ["PeerDraining(declined)"]);
    assert!(!p.client.conn.accepts_new_calls());
    // (3) a new inbound call is declined with its id and tracing.
    p.inject(Server, call_req(99, 1000, 0, &ARGS));
    let out = p.capture(Server);
    assert_eq!(fsummary(&out), ["Error(0x63, declined)"]);
    assert_eq!(errors(&out)[0].tracing, TRACING);
    assert!(p.events(Server).is_empty());
    // Pings are still answered while draining.
    let ping = p.client.conn.ping().unwrap();
    p.drive();
    assert_eq!(summary(&p.events(Client)), [format!("Pong({ping})")]);
    // (4) calls in flight in both directions finish.
    p.respond(Server, a, b"a done");
    p.drive();
    assert_eq!(&outcome(&p.events(Client), a).args()[2][..], b"a done");
    assert!(!p.server.is_closed(), "the server's own call is still out");
    p.respond(Client, s, b"s done");
    p.drive();
    // (5) then it closes.
    let se = p.events(Server);
    assert_eq!(&outcome(&se, s).args()[2][..], b"s done");
    assert_eq!(summary(&se).last().unwrap(), "Closed(Drained)");
    assert_eq!(summary(&p.events(Client)), ["Closed(Transport)"]);
    p.assert_idle();
}

// [CONN-19]
#[test]
fn drain_with_nothing_in_flight_closes_at_once() {
    let mut p = Pair::up();
    let now = p.now;
    p.client.conn.drain(now, now + Duration::from_secs(10));
    assert_eq!(summary(&p.events(Client)), ["Closed(Drained)"]);
    p.drive();
    assert_eq!(
        fsummary(&p.client.sent[1..]),
        ["Error(0xffffffff, declined)"]
    );
    let se = p.events(Server);
    assert_eq!(
        summary(&se),
        ["PeerDraining(declined)", "Closed(Transport)"]
    );
    p.assert_idle();
    // Draining before the handshake just closes.
    let mut p = Pair::new(client_config(), server_config());
    let now = p.now;
    p.server.conn.drain(now, now + Duration::from_secs(10));
    assert_eq!(summary(&p.events(Server)), ["Closed(Drained)"]);
}

// [CONN-19] [CONN-21]
#[test]
fn drain_deadline_closes_and_fails_calls() {
    let mut p = Pair::up();
    let a = p.call(Client, 60_000, ARGS);
    let s = p.call(Server, 60_000, ARGS);
    p.drive();
    p.events(Server);
    p.events(Client);
    let now = p.now;
    p.server.conn.drain(now, now + Duration::from_secs(1));
    p.drive();
    assert_eq!(summary(&p.events(Client)), ["PeerDraining(declined)"]);
    p.advance(ms(999));
    assert!(!p.server.is_closed());
    p.advance(ms(1));
    assert_eq!(
        summary(&p.events(Server)),
        [
            format!("CallFailed({s}, network local)"),
            format!("RequestAborted({a}, network local)"),
            "Closed(DrainTimeout)".into()
        ]
    );
    // The peer sees the transport go away: its calls fail once too.
    assert_eq!(
        summary(&p.events(Client)),
        [
            format!("CallFailed({a}, network local)"),
            format!("RequestAborted({s}, network local)"),
            "Closed(Transport)".into()
        ]
    );
    p.assert_idle();
}

// [CONN-21]
#[test]
fn close_now_fails_everything_exactly_once() {
    let mut p = Pair::connected(client_config(), {
        let mut c = server_config();
        c.set_max_frame_size(200).expect("valid");
        c
    });
    let plain = p.call(Client, 5000, ARGS);
    let partial = p.call(Client, 5000, ARGS);
    let now = p.now;
    let streaming = p
        .client
        .conn
        .start_request(now, head(now + ms(5000)))
        .unwrap();
    p.client.conn.write_request(streaming, b"half").unwrap();
    let inbound = p.call(Server, 5000, ARGS);
    p.drive();
    p.events(Server);
    p.events(Client);
    // A response that stops halfway.
    p.server
        .conn
        .start_response(partial, ResponseCode::OK, th())
        .unwrap();
    p.server
        .conn
        .write_response(partial, &pattern(50, 1))
        .unwrap();
    p.drive();
    assert_eq!(summary(&p.events(Client)), [format!("Response({partial})")]);
    // A ping that never gets its answer.
    p.client.conn.ping().unwrap();
    assert_eq!(p.capture(Client).len(), 1);
    p.client.conn.close_now();
    let ev = p.events(Client);
    let all = outcomes(&ev);
    for id in [plain, partial, streaming] {
        assert_eq!(all[&id].len(), 1, "call {id}");
        assert_eq!(all[&id][0].error().code(), ErrorCode::NETWORK);
    }
    assert_eq!(
        summary(&ev),
        [
            format!("CallFailed({plain}, network local)"),
            format!("CallFailed({partial}, network local)"),
            format!("CallFailed({streaming}, network local)"),
            format!("RequestAborted({inbound}, network local)"),
            "Closed(Local)".into(),
        ]
    );
    assert!(p.capture(Client).is_empty(), "nothing sent on close");
    // Closing again, timers, frames and app calls do nothing.
    p.client.conn.close_now();
    p.client.conn.transport_closed("again");
    p.client
        .conn
        .handle_timeout(p.now + Duration::from_secs(100));
    assert!(p.client.conn.write_request(streaming, b"more").is_err());
    assert!(p.events(Client).is_empty());
    p.drive();
    let se = p.events(Server);
    let all = outcomes(&se);
    assert_eq!(all[&inbound].len(), 1);
    assert_eq!(summary(&se).last().unwrap(), "Closed(Transport)");
    p.assert_idle();
}

// [CONN-17] [CONN-18]
#[test]
fn tombstones_are_bounded_in_number_and_age() {
    let mut p = Pair::connected(
        {
            let mut c = client_config();
            c.set_max_tombstones(3);
            c.set_tombstone_ttl(Duration::from_secs(1));
            c
        },
        server_config(),
    );
    p.server.deaf = true;
    let ids: Vec<u32> = (0..5).map(|_| p.call(Client, 100, ARGS)).collect();
    p.advance(ms(100));
    let ev = p.events(Client);
    for id in &ids {
        assert_eq!(outcome(&ev, *id).error().code(), ErrorCode::TIMEOUT);
    }
    assert_eq!(
        p.client.conn.table_sizes(),
        [0, 0, 0, 3, 0],
        "oldest dropped first"
    );
    // Late responses, whether remembered or already forgotten, are dropped
    // quietly and never confused with a live call.
    let live = p.call(Client, 5000, ARGS);
    assert!(!ids.contains(&live));
    p.drive();
    for id in &ids {
        p.inject(Client, call_res(*id, 0, &[b"", b"", b"late"]));
    }
    assert!(p.events(Client).is_empty());
    assert!(p.capture(Client).is_empty());
    assert!(!p.client.is_closed());
    p.inject(Client, call_res(live, 0, &[b"", b"", b"live"]));
    assert_eq!(&outcome(&p.events(Client), live).args()[2][..], b"live");
    // They age out.
    p.advance(ms(999));
    assert_eq!(p.client.conn.table_sizes()[3], 3);
    p.advance(ms(1));
    assert_eq!(p.client.conn.table_sizes(), [0; 5]);
}

// [CSUM-12] [CSUM-14]
#[test]
fn response_uses_the_request_checksum_type() {
    let mut p = Pair::connected(client_config(), {
        let mut c = server_config();
        c.set_max_frame_size(200).expect("valid");
        c
    });
    for ty in [
        ChecksumType::NONE,
        ChecksumType::CRC32,
        ChecksumType::FARMHASH32,
        ChecksumType::CRC32C,
    ] {
        let now = p.now;
        let id = p
            .client
            .conn
            .send_request(now, head_with(now + ms(1000), ty), ARGS)
            .unwrap();
        p.drive();
        assert_eq!(request(&p.events(Server), id).start.checksum, ty);
        let body = pattern(1000, 1);
        p.respond(Server, id, &body);
        let frames = p.capture(Server);
        assert!(frames.len() > 3);
        for f in &frames {
            let got = match f {
                Frame::CallRes(r) => r.checksum.ty,
                Frame::CallResContinue(c) => c.checksum.ty,
                other => panic!("{other:?}"),
            };
            assert_eq!(got, ty);
        }
        p.deliver(Client, frames);
        assert_eq!(&outcome(&p.events(Client), id).args()[2][..], &body[..]);
    }
    p.assert_idle();
}

// [CONN-17] [CONN-18] [ERR-1]
#[test]
fn early_answer_drops_the_rest_of_the_request() {
    let mut p = Pair::connected(
        {
            let mut c = client_config();
            c.set_max_frame_size(256).expect("valid");
            c
        },
        server_config(),
    );
    let id = p.call(Client, 5000, [b"m", b"", &pattern(2000, 1)]);
    let frames = p.capture(Client);
    assert!(frames.len() > 4);
    let mut rest = frames.clone();
    let first = rest.remove(0);
    p.deliver(Server, [first]);
    let se = p.events(Server);
    assert!(!request(&se, id).complete);
    // The handler refuses before the request has fully arrived.
    p.server
        .conn
        .send_error(id, ErrorCode::BAD_REQUEST, "no such method")
        .unwrap();
    assert_eq!(p.server.conn.table_sizes(), [0, 0, 0, 1, 0]);
    p.deliver(Server, rest);
    assert!(p.events(Server).is_empty(), "the rest is dropped quietly");
    let out = p.capture(Server);
    assert_eq!(fsummary(&out), [format!("Error({id:#x}, bad_request)")]);
    p.deliver(Client, out);
    let e = outcome(&p.events(Client), id).error().clone();
    assert_eq!((e.code(), e.is_local()), (ErrorCode::BAD_REQUEST, false));
    p.advance(Duration::from_secs(5));
    p.assert_idle();
}

// [CANCEL-3] [CONN-18]
#[test]
fn cancel_while_request_still_arriving() {
    let mut p = Pair::up();
    p.inject(Server, call_req(30, 1000, MORE, &[b"m"]));
    p.inject(
        Server,
        Frame::Cancel(Cancel {
            id: 30,
            ttl: 900,
            tracing: TRACING,
            why: Bytes::from_static(b"nope"),
            trailing: Bytes::new(),
        }),
    );
    assert_eq!(
        summary(&p.events(Server)),
        ["Request(30)", "RequestCancelled(30)"]
    );
    assert_eq!(fsummary(&p.capture(Server)), ["Error(0x1e, cancelled)"]);
    // Its remaining frames are late frames.
    p.inject(Server, req_continue(30, 0, &[b"", b"h", b"b"]));
    assert!(p.events(Server).is_empty());
    assert!(p.capture(Server).is_empty());
    assert!(!p.server.is_closed());
    assert_eq!(p.server.conn.calls_in_flight(), (0, 0));
}

// [CONN-19] [TTL-6]
#[test]
fn drain_finishes_when_the_last_call_times_out() {
    let mut p = Pair::up();
    let id = p.call(Client, 500, ARGS);
    p.drive();
    p.events(Server);
    let now = p.now;
    p.server.conn.drain(now, now + Duration::from_secs(10));
    p.drive();
    assert_eq!(summary(&p.events(Client)), ["PeerDraining(declined)"]);
    p.advance(ms(500));
    assert_eq!(
        summary(&p.events(Server)),
        [
            format!("RequestAborted({id}, timeout local)"),
            "Closed(Drained)".into()
        ]
    );
    // The timeout error went out before the close.
    assert_eq!(
        fsummary(&p.server.sent[1..]),
        [
            "Error(0xffffffff, declined)".to_string(),
            format!("Error({id:#x}, timeout)")
        ]
    );
    let ce = p.events(Client);
    assert_eq!(outcome(&ce, id).error().code(), ErrorCode::TIMEOUT);
    assert_eq!(summary(&ce).last().unwrap(), "Closed(Transport)");
    p.assert_idle();
}

// ===== required headers and explicit checksum none =====

#[test]
fn a_strict_reader_refuses_a_call_req_without_as_or_cn() {
    // [HDR-11] [DEV-18] as and cn are required on a call req; refused with 0x06
    for pairs in [vec![("as", "raw")], vec![("cn", "c")], vec![]] {
        let mut p = Pair::up();
        let Frame::CallReq(mut f) = call_req(5, 1000, 0, &ARGS) else {
            unreachable!()
        };
        f.headers = TransportHeaders::from_pairs(pairs.clone()).unwrap();
        p.inject(Server, Frame::CallReq(f));
        let out = p.capture(Server);
        let errs = errors(&out);
        assert_eq!(errs.len(), 1, "{pairs:?}");
        assert_eq!(errs[0].code, ErrorCode::BAD_REQUEST);
        assert_eq!(errs[0].id, 5);
        assert!(p.events(Server).is_empty(), "no handler sees it");
        assert!(p.server.conn.is_ready(), "the connection stays up");
    }
    // A lenient reader lets it through.
    let mut lenient = server_config();
    lenient.reassembly_mut().set_strict_headers(false);
    let mut p = Pair::connected(client_config(), lenient);
    let Frame::CallReq(mut f) = call_req(6, 1000, 0, &ARGS) else {
        unreachable!()
    };
    f.headers = TransportHeaders::default();
    p.inject(Server, Frame::CallReq(f));
    assert_eq!(summary(&p.events(Server)).len(), 1);
}

#[test]
fn an_explicit_checksum_none_sends_none() {
    // [DEV-3] [CSUM-13] unlike node, a caller's explicit "none" is honoured
    let mut p = Pair::up();
    let now = p.now;
    p.client
        .conn
        .send_request(now, head_with(now + ms(1000), ChecksumType::NONE), ARGS)
        .unwrap();
    let out = p.capture(Client);
    let Frame::CallReq(f) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(f.checksum, ChecksumField::NONE);
}
