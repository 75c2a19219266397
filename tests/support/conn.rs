//! The sans-IO test harness: two `proto::Connection`s back to back on a
//! virtual clock ([`Pair`], [`Side`]), frames built by hand, and readers
//! that summarise events and frames. Used by the `proto` tests and the
//! `connection` fuzz target.
#![allow(dead_code, unused_imports)]

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

pub const SVC: &[u8] = b"svc";
pub const ARGS: [&[u8]; 3] = [b"echo", b"", b"hello"];
pub const MORE: u8 = Flags::MORE_FRAGMENTS;
pub const TRACING: Tracing = Tracing {
    span_id: 0x0102_0304_0506_0708,
    parent_id: 0x1112_1314_1516_1718,
    trace_id: 0x2122_2324_2526_2728,
    flags: 0x01,
};

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn client_config() -> ConnectionConfig {
    {
        let mut c = ConnectionConfig::default();
        c.set_host_port("0.0.0.0:0");
        c.set_process_name("test-client");
        c
    }
}

pub fn server_config() -> ConnectionConfig {
    {
        let mut c = ConnectionConfig::default();
        c.set_host_port("10.0.0.1:4040");
        c.set_process_name("test-server");
        c
    }
}

pub fn th() -> TransportHeaders {
    TransportHeaders::strict([("cn", "test"), ("as", "raw")]).unwrap()
}

pub fn head(deadline: Instant) -> RequestHead {
    head_with(deadline, ChecksumType::CRC32C)
}

pub fn head_with(deadline: Instant, checksum: ChecksumType) -> RequestHead {
    RequestHead {
        service: Bytes::from_static(SVC),
        headers: th(),
        tracing: TRACING,
        deadline,
        checksum,
    }
}

/// Deterministic bytes.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed * 7) as u8)
        .collect()
}

// ----- hand-built frames -----

pub fn call_req(id: u32, ttl: u32, flags: u8, chunks: &[&[u8]]) -> Frame {
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

pub fn req_continue(id: u32, flags: u8, chunks: &[&[u8]]) -> Frame {
    Frame::CallReqContinue(CallContinue {
        id,
        flags: Flags(flags),
        checksum: ChecksumField::NONE,
        args: ArgChunks::from_chunks(chunks.iter().copied()),
    })
}

pub fn call_res(id: u32, flags: u8, chunks: &[&[u8]]) -> Frame {
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

pub fn res_continue(id: u32, flags: u8, chunks: &[&[u8]]) -> Frame {
    Frame::CallResContinue(CallContinue {
        id,
        flags: Flags(flags),
        checksum: ChecksumField::NONE,
        args: ArgChunks::from_chunks(chunks.iter().copied()),
    })
}

pub fn error_frame(id: u32, code: ErrorCode, message: &'static str) -> Frame {
    Frame::Error(ErrorFrame::new(
        id,
        code,
        Tracing::default(),
        Bytes::from_static(message.as_bytes()),
    ))
}

pub fn init(id: u32, version: u16, pairs: &[(&str, &str)]) -> Init {
    Init {
        id,
        version,
        headers: InitHeaders::from_pairs(pairs.iter().copied()).unwrap(),
        trailing: Bytes::new(),
    }
}

pub fn full_init_headers() -> Vec<(&'static str, &'static str)> {
    vec![(HOST_PORT, "10.9.8.7:1234"), (PROCESS_NAME, "raw-peer")]
}

// ===== the harness =====

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Client,
    Server,
}

pub use Who::{Client, Server};

/// The invariant of a closed connection: it keeps nothing ([CONN-21]) and
/// wants no timer.
pub fn check_closed(conn: &Connection, who: &str) {
    assert_eq!(
        conn.table_sizes(),
        [0; 5],
        "{who}: tables not empty after close"
    );
    assert!(conn.is_closed(), "{who}: Closed event but not closed");
    assert_eq!(conn.poll_timeout(), None, "{who}: a timer after close");
}

/// Splits one transmit batch into frames; every batch must hold whole,
/// decodable frames only (within `codec`'s max frame size).
pub fn whole_frames(codec: &mut FrameCodec, mut batch: BytesMut, who: &str) -> Vec<Frame> {
    let mut out = Vec::new();
    loop {
        match codec.decode(&mut batch) {
            Ok(Some(f)) => out.push(f),
            Ok(None) => break,
            Err(e) => panic!("{who}: wrote an undecodable frame: {e}"),
        }
    }
    assert!(
        batch.is_empty(),
        "{who}: a transmit batch ended inside a frame ({} bytes left)",
        batch.len()
    );
    out
}

/// One end of the pair: its connection, the events it produced that the test
/// has not taken yet, and every frame it wrote.
pub struct Side {
    pub name: &'static str,
    pub conn: Connection,
    pub events: Vec<Event>,
    /// Every frame this side wrote, in order (delivered or captured).
    pub sent: Vec<Frame>,
    /// Frames sent to a deaf side are lost (a peer that never answers).
    pub deaf: bool,
    pub closed: Option<CloseReason>,
    pub codec: FrameCodec,
}

impl Side {
    pub fn new(name: &'static str, conn: Connection) -> Side {
        let codec = FrameCodec::new();
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
    pub fn collect(&mut self) {
        while let Some(e) = self.conn.poll_event() {
            assert!(
                self.closed.is_none(),
                "{}: event after Closed: {e:?}",
                self.name
            );
            if let Event::Closed(r) = &e {
                self.closed = Some(r.clone());
                check_closed(&self.conn, self.name);
            }
            self.events.push(e);
        }
    }

    /// Takes every queued byte and splits it into frames. A batch must hold
    /// whole frames only, each at most this side's max frame size but for
    /// init frames ([FRAME-5]).
    pub fn take_frames(&mut self) -> Vec<Frame> {
        let Some(buf) = self.conn.poll_transmit() else {
            return Vec::new();
        };
        let out = whole_frames(&mut self.codec, buf, self.name);
        let max = self.conn.config().max_frame_size();
        for f in &out {
            // Init frames cannot be split: they go whole (FRAME-5).
            if !matches!(f, Frame::InitReq(_) | Frame::InitRes(_)) {
                assert!(
                    f.encoded_len() <= max,
                    "{}: wrote a frame of {} bytes, over its max frame size {max} [FRAME-5]: {:?}",
                    self.name,
                    f.encoded_len(),
                    fsummary(std::slice::from_ref(f))
                );
            }
        }
        self.sent.extend(out.iter().cloned());
        out
    }

    /// Fires the timer if it is due; checks it is then re-armed past `now`.
    pub fn fire(&mut self, now: Instant) -> bool {
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

    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }
}

pub struct Pair {
    pub now: Instant,
    pub client: Side,
    pub server: Side,
    /// When one side is closed and flushed, tell the other the transport
    /// closed (what a real socket would do).
    pub propagate_close: bool,
}

impl Pair {
    /// Two fresh connections; nothing delivered yet.
    pub fn new(client: ConnectionConfig, server: ConnectionConfig) -> Pair {
        let now = Instant::now();
        Pair {
            now,
            client: Side::new("client", Connection::initiator(client, now)),
            server: Side::new("server", Connection::acceptor(server, now)),
            propagate_close: true,
        }
    }

    /// Two connections past the handshake, with no events pending.
    pub fn connected(client: ConnectionConfig, server: ConnectionConfig) -> Pair {
        let mut p = Pair::new(client, server);
        p.drive();
        assert_eq!(summary(&p.events(Client)), ["Ready"]);
        assert_eq!(summary(&p.events(Server)), ["Ready"]);
        assert!(p.client.conn.is_ready() && p.server.conn.is_ready());
        p.assert_idle();
        p
    }

    pub fn up() -> Pair {
        Pair::connected(client_config(), server_config())
    }

    pub fn side(&mut self, who: Who) -> &mut Side {
        match who {
            Client => &mut self.client,
            Server => &mut self.server,
        }
    }

    /// (from, to)
    pub fn both(&mut self, from: Who) -> (&mut Side, &mut Side) {
        match from {
            Client => (&mut self.client, &mut self.server),
            Server => (&mut self.server, &mut self.client),
        }
    }

    /// Fires due timers and moves frames both ways until nothing moves.
    pub fn drive(&mut self) {
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
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.drive();
    }

    /// What `who` wrote since the last drive, decoded and NOT delivered.
    pub fn capture(&mut self, who: Who) -> Vec<Frame> {
        let s = self.side(who);
        s.collect();
        s.take_frames()
    }

    /// Hands frames to `to` at `now`.
    pub fn deliver(&mut self, to: Who, frames: impl IntoIterator<Item = Frame>) {
        let now = self.now;
        let s = self.side(to);
        for f in frames {
            s.conn.handle_frame(now, f);
        }
        s.collect();
    }

    pub fn inject(&mut self, to: Who, frame: Frame) {
        self.deliver(to, [frame]);
    }

    /// Splits raw bytes with the codec and hands the frames to `to`; a decode
    /// error goes to `handle_decode_error`, as a transport would do.
    pub fn inject_bytes(&mut self, to: Who, bytes: &[u8]) {
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
    pub fn events(&mut self, who: Who) -> Vec<Event> {
        let s = self.side(who);
        s.collect();
        std::mem::take(&mut s.events)
    }

    /// Starts a whole call from `from` with `deadline_ms` to go.
    pub fn call(&mut self, from: Who, deadline_ms: u64, args: [&[u8]; 3]) -> u32 {
        let now = self.now;
        self.side(from)
            .conn
            .send_request(now, head(now + ms(deadline_ms)), args)
            .expect("send_request")
    }

    /// `who` answers its inbound call `id` with `[b"", b"", arg3]`.
    pub fn respond(&mut self, who: Who, id: u32, arg3: &[u8]) {
        self.side(who)
            .conn
            .send_response(id, ResponseCode::OK, th(), [b"", b"", arg3])
            .expect("send_response");
    }

    pub fn assert_idle(&self) {
        assert_eq!(self.client.conn.table_sizes(), [0; 5], "client tables");
        assert_eq!(self.server.conn.table_sizes(), [0; 5], "server tables");
    }
}

// ----- reading events and frames -----

pub fn close_kind(r: &CloseReason) -> &'static str {
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

pub fn err_summary(e: &tchan::Error) -> String {
    format!(
        "{}{}",
        e.code().name(),
        if e.is_local() { " local" } else { "" }
    )
}

/// One short string per event, for whole-sequence assertions.
pub fn summary(events: &[Event]) -> Vec<String> {
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
pub fn fsummary(frames: &[Frame]) -> Vec<String> {
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

pub fn errors(frames: &[Frame]) -> Vec<&ErrorFrame> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Error(e) => Some(e),
            _ => None,
        })
        .collect()
}

pub fn frames_of(frames: &[Frame], id: u32) -> Vec<Frame> {
    frames.iter().filter(|f| f.id() == id).cloned().collect()
}

/// Round-robin merge: the first frame of each group, then the second, ...
pub fn interleave(groups: Vec<Vec<Frame>>) -> Vec<Frame> {
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
pub enum Outcome {
    Response {
        code: ResponseCode,
        args: Vec<Bytes>,
    },
    Failed(tchan::Error),
}

impl Outcome {
    pub fn args(&self) -> &[Bytes] {
        match self {
            Outcome::Response { args, .. } => args,
            Outcome::Failed(e) => panic!("expected a response, got {e:?}"),
        }
    }

    pub fn error(&self) -> &tchan::Error {
        match self {
            Outcome::Failed(e) => e,
            Outcome::Response { .. } => panic!("expected a failure, got {self:?}"),
        }
    }
}

/// The outcomes of our calls found in `events`, per id, in order. A response
/// counts once its message is complete.
pub fn outcomes(events: &[Event]) -> BTreeMap<u32, Vec<Outcome>> {
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
pub fn outcome(events: &[Event], id: u32) -> Outcome {
    let mut all = outcomes(events);
    let v = all.remove(&id).unwrap_or_default();
    assert_eq!(v.len(), 1, "call {id}: expected one outcome, got {v:?}");
    v.into_iter().next().unwrap()
}

/// A request from the peer as seen through events.
#[derive(Debug, Clone)]
pub struct InReq {
    pub start: RequestStart,
    pub collector: ArgCollector,
    pub complete: bool,
}

impl InReq {
    pub fn args(&self) -> Vec<Bytes> {
        self.collector.clone().into_args()
    }
}

/// Requests found in `events`, in order of their first frame.
pub fn requests(events: &[Event]) -> Vec<InReq> {
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

pub fn request(events: &[Event], id: u32) -> InReq {
    let found: Vec<InReq> = requests(events)
        .into_iter()
        .filter(|r| r.start.id == id)
        .collect();
    assert_eq!(found.len(), 1, "request {id}: {found:?}");
    found.into_iter().next().unwrap()
}

pub fn args_eq(got: &[Bytes], want: [&[u8]; 3]) {
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
