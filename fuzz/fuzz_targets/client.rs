//! The calling side of one `proto::Connection` against a hostile server.
//!
//! The connection is the initiator on a virtual clock. It sends its init req,
//! is fed a valid init res, and then an `Arbitrary` list of operations
//! interleaves: calls started (whole or streamed, args of 0..=200 KiB made by
//! repetition, any checksum type, any ttl, responses taken whole or as a
//! stream), calls cancelled, time passing, pings, a drain, and bytes "from the
//! server": raw bytes, frames with a valid header for an id in flight and an
//! arbitrary payload, and well-formed call res (fragmented into continues, in
//! part, corrupted or not), error, cancel and ping frames for ids actually in
//! flight. Every byte from the server goes through the transport's path
//! (`FrameCodec::split_frame` + `Connection::handle_frame_bytes`, as
//! `src/transport/driver.rs` does) or the general one (`FrameCodec::decode` +
//! `handle_frame`), in chunks of the sizes the input gives.
//!
//! Oracle (a violation panics, so libFuzzer saves the input):
//! - nothing panics; no event follows `Closed`; a closed connection's tables
//!   are empty and it has no timer (`tests/support/conn.rs`'s checks);
//! - every call started gets at most one outcome (a complete response, or
//!   `CallFailed`, possibly after a partial response; cancelling is the
//!   caller's own outcome and no event may follow it), counted by id; after
//!   the input ends and the transport reports EOF, every call has exactly one;
//! - an event names only calls we started (a continue only a started
//!   response), a `Pong` only a ping we sent, and only once;
//! - `calls_in_flight().0` is the number of calls the model has in flight, and
//!   while any is, a timer is armed no later than the earliest deadline;
//! - after `handle_timeout(now)`, `poll_timeout()` is later than `now`;
//! - `response_bytes() <= max_response_bytes` ([CONN-23]);
//! - every transmitted batch is whole frames within our max frame size, and
//!   the call frames and cancels in it are for calls we started;
//! - no allocation sized by an untrusted length: see `alloc_bound`.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tchan::codec::{CodecError, FrameCodec};
use tchan::frame::{
    CallHead, Cancel, ChecksumType, ErrorCode, ErrorFrame, Frame, HEADER_LEN, HOST_PORT, Init,
    InitHeaders, MAX_FRAME_SIZE, PROCESS_NAME, PROTOCOL_VERSION, Ping, ResHead, ResponseCode,
    Tracing, TransportHeaders, encode_message,
};
use tchan::proto::{Connection, ConnectionConfig, Event, Keepalive, RequestHead, Whole};
use tchan_fuzz::repeat_fill;
use tokio_util::codec::Decoder;

// The invariant checks are the proto tests' own.
#[path = "../../tests/support/conn.rs"]
#[allow(dead_code)]
mod harness;

// ===== the largest single allocation while server bytes are processed =====

struct Peak;

static TRACK: AtomicBool = AtomicBool::new(false);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn note(size: usize) {
    if TRACK.load(Ordering::Relaxed) {
        PEAK.fetch_max(size, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size());
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note(l.size());
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(p, l, new_size) }
    }
}

#[global_allocator]
static ALLOC: Peak = Peak;

/// The largest single allocation the library may make while it processes
/// server bytes, when `fed` bytes have been fed in all so far. Nothing the
/// server *claims* (a frame size, an arg or header length, a header count)
/// enters it, only what it actually sent:
/// - a read buffer grows to hold at most the bytes fed plus one frame the
///   codec reserves room for (a frame is at most `MAX_FRAME_SIZE` by its u16
///   size field), and a `Vec`/`BytesMut` at most doubles when it grows:
///   `2 * (fed + MAX_FRAME_SIZE)`;
/// - args gathered from the second frame of a response on live in one buffer
///   that starts at twice the bytes held and doubles: at most twice the
///   response bytes received, so within `2 * fed`; the frames queued in reply
///   (ping res, errors, cancels) are fewer bytes than the frames that caused
///   them, and the transmit queue is drained before every feed;
/// - an error message the server sent (at most 65535 bytes) is copied as
///   lossy UTF-8 (at most 3 times it: a bad byte becomes U+FFFD) and into
///   strings formatted from that copy (a `String` may have twice the
///   capacity it needs): at most `6 * MAX_FRAME_SIZE`, 2 of which are within
///   `2 * fed` (the frame was fed), the other 4 in `SLACK`, whose last 4 KiB
///   cover the event queue and tables (bounded by the at most `MAX_OPS`
///   calls and pings the input started).
///
/// Measured over the corpus, the largest allocation is under 0.8 of this
/// bound with `SLACK` at 64 KiB (a read buffer reserving a 64 KiB frame after
/// 21 bytes, a 4x copy of a 64 KiB error message). A decoder that reserved
/// what a length or count field claims beyond a frame (`Vec::with_capacity`
/// of a u16 header count times an entry of 8 bytes or more, or the total a
/// message's frames announce) exceeds it even when the input is small.
fn alloc_bound(fed: usize) -> usize {
    2 * (fed + MAX_FRAME_SIZE) + SLACK
}

const SLACK: usize = 4 * MAX_FRAME_SIZE + 4096;

// ===== the input =====

const MAX_OPS: usize = 96;
const MAX_ARG: usize = 200 * 1024;

/// `len` bytes made by repeating `pattern` (at most its first 8 bytes).
#[derive(Arbitrary, Debug)]
struct Fill {
    pattern: Vec<u8>,
    len: u32,
}

impl Fill {
    /// Mostly small, sometimes up to `MAX_ARG`: the top 2 bits pick the scale.
    fn size(&self) -> usize {
        let v = (self.len & 0x3fff_ffff) as usize;
        match self.len >> 30 {
            0 => v % 65,
            1 => v % 4097,
            2 => v % 65_537,
            _ => v % (MAX_ARG + 1),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let p = &self.pattern[..self.pattern.len().min(8)];
        repeat_fill(p, self.size())
    }
}

/// Which id a server frame names.
#[derive(Arbitrary, Debug)]
enum Target {
    /// One of the calls in flight (or any call started, when none is).
    Live(u8),
    /// Any id at all.
    Any(u32),
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A whole request (`send_request`, or `send_request_shared`).
    Call {
        arg1: Fill,
        arg2: Fill,
        arg3: Fill,
        checksum: u8,
        ttl_ms: u16,
        shared: bool,
        stream_response: bool,
    },
    /// A streamed request: `start_request`, then arg1 written in part.
    Stream {
        arg1: Fill,
        checksum: u8,
        ttl_ms: u16,
    },
    /// More of a streamed request's current arg, and maybe its end.
    StreamMore {
        pick: u8,
        data: Fill,
        end_arg: bool,
    },
    Cancel {
        pick: u8,
    },
    Advance {
        ms: u16,
    },
    Ping,
    Drain {
        ms: u16,
    },
    /// The consumer of streamed responses took `n` bytes.
    Release {
        n: u32,
    },
    /// Answers one of the requests the server sent us.
    Answer {
        pick: u8,
        error: bool,
    },
    /// Server bytes, as they are.
    Raw {
        bytes: Vec<u8>,
    },
    /// One frame with a valid header for `target`: a call res or call res
    /// continue with a valid fixed part (no headers, no checksum) and `body`
    /// as its args, or any frame type with `body` as its payload.
    RawFrame {
        target: Target,
        kind: u8,
        flags: u8,
        body: Vec<u8>,
    },
    /// A well-formed response for `target`, fragmented at the server's frame
    /// size; the first `frames` frames (0: all) are sent now, the rest kept
    /// for `Continue`. `corrupt` flips a byte of what is sent now.
    Respond {
        target: Target,
        code: u8,
        checksum: u8,
        arg1: Fill,
        arg2: Fill,
        arg3: Fill,
        frames: u8,
        corrupt: Option<(u32, u8)>,
    },
    /// The next `frames` (0: all) kept frames of one response.
    Continue {
        pick: u8,
        frames: u8,
    },
    Error {
        target: Target,
        code: u8,
        message: Fill,
    },
    CancelFrame {
        target: Target,
    },
    PingReq {
        id: u32,
    },
    /// A ping res for one of the pings we sent (or any id).
    PingRes {
        pick: u8,
        any: Option<u32>,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Our max frame size (clamped to 128..=65535).
    max_frame: u16,
    /// The server's frame size for the responses built here.
    peer_frame: u16,
    send_cancel: bool,
    /// Picks `max_response_bytes`.
    response_limit: u8,
    lenient_headers: bool,
    keepalive: Option<(u16, u8)>,
    /// Chunk sizes the server's bytes are cut into, in turn; the top bit
    /// picks the general path for that chunk, 0 means the rest at once.
    cuts: Vec<u16>,
    ops: Vec<Op>,
}

// ===== the model =====

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// Sent (or being written); no response yet.
    Open,
    /// A response started and is not complete.
    Partial,
    /// A complete response or `CallFailed`.
    Done,
    /// The caller cancelled it.
    Cancelled,
}

struct Call {
    st: St,
    deadline: Instant,
    streamed_response: bool,
}

struct Client {
    conn: Connection,
    now: Instant,
    codec: FrameCodec,
    /// Our max frame size: no frame we write is longer ([FRAME-5]).
    max_frame: usize,
    inbox: BytesMut,
    /// A decode error ended the read side (the driver stops reading).
    read_closed: bool,
    fed: usize,
    closed: bool,
    calls: BTreeMap<u32, Call>,
    /// Streamed requests still being written: args ended so far.
    writing: BTreeMap<u32, u8>,
    /// Pings seen on the wire, and whether their pong came.
    pings: BTreeMap<u32, bool>,
    /// Requests the server sent us.
    inbound: BTreeSet<u32>,
    /// Response frames kept back, per id.
    kept: BTreeMap<u32, VecDeque<Bytes>>,
    /// Streamed response bytes received and not released.
    held: u64,
    max_response: u64,
    cuts: Vec<u16>,
    cut: usize,
    /// What happened, when `CLIENT_STATS` is set (to judge depth).
    stats: Option<BTreeMap<String, u32>>,
}

impl Client {
    fn stat(&mut self, what: impl Into<String>) {
        if let Some(s) = &mut self.stats {
            *s.entry(what.into()).or_default() += 1;
        }
    }

    fn live(&self) -> Vec<u32> {
        self.calls
            .iter()
            .filter(|(_, c)| matches!(c.st, St::Open | St::Partial))
            .map(|(id, _)| *id)
            .collect()
    }

    fn target(&self, t: &Target) -> u32 {
        match *t {
            Target::Any(id) => id,
            Target::Live(i) => {
                let mut ids = self.live();
                if ids.is_empty() {
                    ids = self.calls.keys().copied().collect();
                }
                if ids.is_empty() {
                    2
                } else {
                    ids[usize::from(i) % ids.len()]
                }
            }
        }
    }

    fn started(&mut self, id: u32, deadline: Instant, streamed_response: bool) {
        if let Some(c) = self.calls.get(&id) {
            assert!(
                matches!(c.st, St::Done | St::Cancelled),
                "id {id} reused while in flight"
            );
        }
        self.calls.insert(
            id,
            Call {
                st: St::Open,
                deadline,
                streamed_response,
            },
        );
    }

    fn call_state(&self, id: u32) -> St {
        self.calls
            .get(&id)
            .unwrap_or_else(|| panic!("event for call {id}, never started"))
            .st
    }

    fn set(&mut self, id: u32, st: St) {
        self.calls.get_mut(&id).expect("known").st = st;
        if st != St::Open {
            self.writing.remove(&id);
        }
    }

    fn response(&mut self, id: u32, complete: bool, data: usize) {
        let st = self.call_state(id);
        assert_eq!(st, St::Open, "response for call {id} in state {st:?}");
        self.set(id, if complete { St::Done } else { St::Partial });
        self.count_held(id, data);
    }

    fn count_held(&mut self, id: u32, data: usize) {
        if self.calls[&id].streamed_response {
            self.held += data as u64;
        }
    }

    /// Takes every event and transmitted byte, checking the invariants.
    fn collect(&mut self) {
        if let Some(batch) = self.conn.poll_transmit() {
            for f in harness::whole_frames(&mut FrameCodec::new(), batch, "client") {
                let len = f.encoded_len();
                // Init frames cannot be split: they go whole ([FRAME-5]).
                let max = if matches!(f, Frame::InitReq(_) | Frame::InitRes(_)) {
                    MAX_FRAME_SIZE
                } else {
                    self.max_frame
                };
                assert!(
                    len <= max,
                    "wrote a frame of {len} bytes, over our max frame size {} ([FRAME-5]): {:?}",
                    self.max_frame,
                    harness::fsummary(std::slice::from_ref(&f))
                );
                match &f {
                    Frame::CallReq(c) => self.ours(c.id, "call req"),
                    Frame::CallReqContinue(c) => self.ours(c.id, "call req continue"),
                    Frame::Cancel(c) => self.ours(c.id, "cancel"),
                    Frame::PingReq(p) => {
                        assert!(
                            self.pings.insert(p.id, false).is_none(),
                            "ping id {} sent twice",
                            p.id
                        );
                    }
                    _ => {}
                }
            }
        }
        while let Some(ev) = self.conn.poll_event() {
            assert!(!self.closed, "event after Closed: {ev:?}");
            if self.stats.is_some() {
                self.stat(event_kind(&ev));
            }
            match ev {
                Event::Ready(_) => panic!("a second Ready"),
                Event::Response(r) => {
                    self.response(r.id, r.chunks.message_complete(), r.chunks.data_len())
                }
                Event::ResponseContinue { id, chunks } => {
                    let st = self.call_state(id);
                    assert_eq!(st, St::Partial, "continue for call {id} in state {st:?}");
                    if chunks.message_complete() {
                        self.set(id, St::Done);
                    }
                    self.count_held(id, chunks.data_len());
                }
                Event::CallFailed { id, .. } => {
                    let st = self.call_state(id);
                    assert!(
                        matches!(st, St::Open | St::Partial),
                        "CallFailed for call {id} in state {st:?}"
                    );
                    self.set(id, St::Done);
                }
                Event::Pong { id } => {
                    let seen = self.pings.get_mut(&id);
                    assert_eq!(seen.as_deref(), Some(&false), "Pong({id}) unasked or twice");
                    self.pings.insert(id, true);
                }
                Event::Request(r) => {
                    self.inbound.insert(r.id);
                }
                Event::RequestCancelled { id } | Event::RequestAborted { id, .. } => {
                    self.inbound.remove(&id);
                }
                Event::Closed(_) => {
                    self.closed = true;
                    harness::check_closed(&self.conn, "client");
                }
                _ => {}
            }
        }
        self.check();
    }

    fn ours(&self, id: u32, what: &str) {
        assert!(self.calls.contains_key(&id), "{what} for id {id}, not ours");
    }

    fn check(&self) {
        let live: Vec<&Call> = self
            .calls
            .values()
            .filter(|c| matches!(c.st, St::Open | St::Partial))
            .collect();
        assert_eq!(
            self.conn.calls_in_flight().0,
            live.len(),
            "calls in flight: the connection and the model disagree"
        );
        if let Some(first) = live.iter().map(|c| c.deadline).min() {
            let t = self.conn.poll_timeout();
            assert!(
                t.is_some_and(|t| t <= first),
                "calls in flight but the timer ({t:?}) is after their deadline ({first:?})"
            );
        }
        assert!(
            self.conn.response_bytes() <= self.max_response,
            "response bytes {} over max_response_bytes {}",
            self.conn.response_bytes(),
            self.max_response
        );
    }

    /// Feeds server bytes in the input's chunk sizes, through the driver's
    /// path or the general one, measuring the largest allocation.
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let cut = if self.cuts.is_empty() {
                0
            } else {
                self.cuts[self.cut % self.cuts.len()]
            };
            self.cut += 1;
            let general = cut & 0x8000 != 0;
            let n = match usize::from(cut & 0x7fff) {
                0 => bytes.len(),
                n => n.min(bytes.len()),
            };
            let (chunk, rest) = bytes.split_at(n);
            bytes = rest;
            if self.read_closed {
                continue;
            }
            self.inbox.extend_from_slice(chunk);
            self.fed += chunk.len();
            self.take_frames(general);
        }
    }

    fn take_frames(&mut self, general: bool) {
        let now = self.now;
        loop {
            TRACK.store(true, Ordering::Relaxed);
            let more = if general {
                match self.codec.decode(&mut self.inbox) {
                    Ok(Some(f)) => {
                        self.conn.handle_frame(now, f);
                        true
                    }
                    Ok(None) => false,
                    Err(CodecError::Decode(e)) => {
                        self.conn.handle_decode_error(&e);
                        self.read_closed = true;
                        false
                    }
                    Err(e) => panic!("decoding a buffer gave a non-decode error: {e}"),
                }
            } else {
                match self.codec.split_frame(&mut self.inbox) {
                    Ok(Some((h, p))) => {
                        let whole = self.conn.handle_frame_bytes(now, h, p);
                        TRACK.store(false, Ordering::Relaxed);
                        match whole {
                            Some(Whole::Response(r)) => {
                                self.stat("Whole::Response");
                                self.response(r.id, true, r.arg2.len() + r.arg3.len())
                            }
                            Some(Whole::Request(r)) => {
                                self.inbound.insert(r.id);
                            }
                            None => {}
                        }
                        true
                    }
                    Ok(None) => false,
                    Err(e) => {
                        self.conn.handle_decode_error(&e);
                        self.read_closed = true;
                        false
                    }
                }
            };
            TRACK.store(false, Ordering::Relaxed);
            let peak = PEAK.load(Ordering::Relaxed);
            assert!(
                peak <= alloc_bound(self.fed),
                "an allocation of {peak} bytes after {} bytes from the server (bound {})",
                self.fed,
                alloc_bound(self.fed)
            );
            self.collect();
            if !more {
                break;
            }
        }
        if self.read_closed {
            self.inbox.clear();
        }
    }

    fn head(&self, ttl_ms: u16, checksum: u8) -> (RequestHead, Instant) {
        let deadline = self.now + Duration::from_millis(u64::from(ttl_ms));
        let head = RequestHead {
            service: Bytes::from_static(b"svc"),
            headers: TransportHeaders::strict([("cn", "fuzz"), ("as", "raw")]).unwrap(),
            tracing: Tracing::default(),
            deadline,
            // 4 is no checksum type: the request is refused.
            checksum: ChecksumType(checksum % 5),
        };
        (head, deadline)
    }
}

/// An event's kind, without ids, for `CLIENT_STATS`.
fn event_kind(e: &Event) -> String {
    match e {
        Event::Response(r) if r.chunks.message_complete() => "Response(whole)".into(),
        Event::Response(_) => "Response(partial)".into(),
        Event::ResponseContinue { chunks, .. } if chunks.message_complete() => {
            "ResponseContinue(last)".into()
        }
        Event::CallFailed { error, .. } => format!("CallFailed({})", error.code().name()),
        Event::Closed(r) => format!("Closed({})", harness::close_kind(r)),
        other => harness::summary(std::slice::from_ref(other))[0]
            .split('(')
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

fn encode(frame: Frame) -> Vec<u8> {
    frame.to_bytes().map(|b| b.to_vec()).unwrap_or_default()
}

/// A frame header: `size:2 type:1 reserved:1 id:4 reserved:8`.
fn header(ty: u8, id: u32, payload_len: usize) -> Vec<u8> {
    let size = (HEADER_LEN + payload_len) as u16;
    let mut h = Vec::with_capacity(HEADER_LEN + payload_len);
    h.extend_from_slice(&size.to_be_bytes());
    h.push(ty);
    h.push(0);
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&[0; 8]);
    h
}

/// The frames of `bytes` (which holds whole frames only), one by one.
fn split_frames(mut bytes: Bytes) -> VecDeque<Bytes> {
    let mut out = VecDeque::new();
    while bytes.len() >= 2 {
        let size = usize::from(u16::from_be_bytes([bytes[0], bytes[1]])).clamp(1, bytes.len());
        out.push_back(bytes.split_to(size));
    }
    out
}

fn config(input: &Input) -> (ConnectionConfig, u64) {
    let mut c = ConnectionConfig::default();
    c.set_host_port("10.0.0.2:4000");
    c.set_process_name("fuzz-client");
    c.set_max_frame_size(usize::from(input.max_frame).clamp(128, MAX_FRAME_SIZE))
        .expect("a valid frame size");
    c.set_send_cancel(input.send_cancel);
    let max_response = match input.response_limit % 4 {
        0 => c.max_response_bytes(),
        1 => 1024,
        2 => 64 * 1024,
        _ => 300 * 1024,
    };
    c.set_max_response_bytes(max_response);
    c.set_max_tombstones(64);
    c.reassembly_mut()
        .set_strict_headers(!input.lenient_headers);
    if let Some((ms, n)) = input.keepalive {
        c.set_keepalive(Some(Keepalive {
            interval: Duration::from_millis(1 + u64::from(ms)),
            max_unanswered: 1 + u32::from(n % 3),
        }));
    }
    (c, max_response)
}

fuzz_target!(|input: Input| {
    PEAK.store(0, Ordering::Relaxed);
    let now = Instant::now();
    let (cfg, max_response) = config(&input);
    let max_frame = cfg.max_frame_size();
    let mut c = Client {
        conn: Connection::initiator(cfg, now),
        now,
        codec: FrameCodec::new(),
        max_frame,
        inbox: BytesMut::new(),
        read_closed: false,
        fed: 0,
        closed: false,
        calls: BTreeMap::new(),
        writing: BTreeMap::new(),
        pings: BTreeMap::new(),
        inbound: BTreeSet::new(),
        kept: BTreeMap::new(),
        held: 0,
        max_response,
        cuts: input.cuts.iter().copied().take(64).collect(),
        cut: 0,
        stats: std::env::var_os("CLIENT_STATS").map(|_| BTreeMap::new()),
    };

    // The handshake: our init req goes out, a valid init res comes back.
    let sent = harness::whole_frames(
        &mut FrameCodec::new(),
        c.conn.poll_transmit().expect("init req"),
        "client",
    );
    assert!(matches!(sent[..], [Frame::InitReq(ref i)] if i.id == 1));
    let res = Init {
        id: 1,
        version: PROTOCOL_VERSION,
        headers: InitHeaders::from_pairs([(HOST_PORT, "10.0.0.1:4040"), (PROCESS_NAME, "srv")])
            .unwrap(),
        trailing: Bytes::new(),
    };
    let mut b = BytesMut::from(&encode(Frame::InitRes(res))[..]);
    let (h, p) = c.codec.split_frame(&mut b).unwrap().unwrap();
    assert!(c.conn.handle_frame_bytes(now, h, p).is_none());
    assert!(matches!(c.conn.poll_event(), Some(Event::Ready(_))));
    assert!(c.conn.is_ready());
    c.collect();

    let peer_frame = usize::from(input.peer_frame).clamp(64, MAX_FRAME_SIZE);
    for op in input.ops.into_iter().take(MAX_OPS) {
        match op {
            Op::Call {
                arg1,
                arg2,
                arg3,
                checksum,
                ttl_ms,
                shared,
                stream_response,
            } => {
                let (head, deadline) = c.head(ttl_ms, checksum);
                let (a1, a2, a3) = (arg1.bytes(), arg2.bytes(), arg3.bytes());
                let now = c.now;
                let r = if shared {
                    let (a1, a2, a3) = (Bytes::from(a1), Bytes::from(a2), Bytes::from(a3));
                    c.conn.send_request_shared(now, head, [&a1, &a2, &a3])
                } else {
                    c.conn.send_request(now, head, [&a1, &a2, &a3])
                };
                if let Ok(id) = r {
                    if stream_response {
                        c.conn.stream_response(id);
                    }
                    c.started(id, deadline, stream_response);
                }
            }
            Op::Stream {
                arg1,
                checksum,
                ttl_ms,
            } => {
                let (head, deadline) = c.head(ttl_ms, checksum);
                let now = c.now;
                if let Ok(id) = c.conn.start_request(now, head) {
                    c.started(id, deadline, false);
                    c.writing.insert(id, 0);
                    let _ = c.conn.write_request(id, &arg1.bytes());
                }
            }
            Op::StreamMore {
                pick,
                data,
                end_arg,
            } => {
                let ids: Vec<u32> = c.writing.keys().copied().collect();
                if !ids.is_empty() {
                    let id = ids[usize::from(pick) % ids.len()];
                    let _ = c.conn.write_request(id, &data.bytes());
                    if end_arg && c.conn.end_request_arg(id).is_ok() {
                        let n = c.writing.get_mut(&id).expect("writing");
                        *n += 1;
                        if *n == 3 {
                            c.writing.remove(&id);
                        }
                    }
                }
            }
            Op::Cancel { pick } => {
                // Any call started, finished or not: cancelling a finished
                // one must do nothing.
                let ids: Vec<u32> = c.calls.keys().copied().collect();
                if !ids.is_empty() {
                    let id = ids[usize::from(pick) % ids.len()];
                    let now = c.now;
                    c.conn.cancel_call(now, id, "fuzz");
                    if matches!(c.calls[&id].st, St::Open | St::Partial) {
                        c.set(id, St::Cancelled);
                    }
                }
            }
            Op::Advance { ms } => {
                c.now += Duration::from_millis(u64::from(ms));
                let now = c.now;
                c.conn.handle_timeout(now);
                if let Some(t) = c.conn.poll_timeout() {
                    assert!(t > now, "timer due at {t:?} after handle_timeout({now:?})");
                }
            }
            Op::Ping => {
                let _ = c.conn.ping();
            }
            Op::Drain { ms } => {
                let now = c.now;
                c.conn
                    .drain(now, now + Duration::from_millis(u64::from(ms)));
            }
            Op::Release { n } => {
                let n = u64::from(n).min(c.held);
                c.held -= n;
                c.conn.release_response_bytes(n);
            }
            Op::Answer { pick, error } => {
                let ids: Vec<u32> = c.inbound.iter().copied().collect();
                if !ids.is_empty() {
                    let id = ids[usize::from(pick) % ids.len()];
                    let r = if error {
                        c.conn.send_error(id, ErrorCode::BUSY, "busy")
                    } else {
                        let h = TransportHeaders::strict([("as", "raw")]).unwrap();
                        c.conn
                            .send_response(id, ResponseCode::OK, h, [b"", b"", b"ok"])
                    };
                    if r.is_ok() {
                        c.inbound.remove(&id);
                    }
                }
            }
            Op::Raw { bytes } => c.feed(&bytes),
            Op::RawFrame {
                target,
                kind,
                flags,
                body,
            } => {
                let id = c.target(&target);
                let (ty, mut payload) = match kind % 3 {
                    // flags:1 code:1 tracing:25 nh:1 csumtype:1, then args.
                    0 => (0x04, [&[flags, 0][..], &[0; 25], &[0, 0]].concat()),
                    // flags:1 csumtype:1, then args.
                    1 => (0x14, vec![flags, 0]),
                    _ => (flags, Vec::new()),
                };
                payload.extend_from_slice(&body);
                payload.truncate(MAX_FRAME_SIZE - HEADER_LEN);
                let mut frame = header(ty, id, payload.len());
                frame.extend_from_slice(&payload);
                c.feed(&frame);
            }
            Op::Respond {
                target,
                code,
                checksum,
                arg1,
                arg2,
                arg3,
                frames,
                corrupt,
            } => {
                let id = c.target(&target);
                let head = CallHead::Res(ResHead {
                    code: ResponseCode(code % 3),
                    tracing: Tracing::default(),
                    headers: TransportHeaders::strict([("as", "raw")]).unwrap(),
                });
                let (a1, a2, a3) = (arg1.bytes(), arg2.bytes(), arg3.bytes());
                let mut out = BytesMut::new();
                let ty = ChecksumType(checksum % 4);
                if encode_message(
                    &mut out,
                    id,
                    &head,
                    ty,
                    peer_frame,
                    [&a1[..], &a2[..], &a3[..]],
                )
                .is_ok()
                {
                    let mut all = split_frames(out.freeze());
                    let n = match usize::from(frames) {
                        0 => all.len(),
                        n => n.min(all.len()),
                    };
                    let mut now: Vec<u8> = all.drain(..n).flat_map(|f| f.to_vec()).collect();
                    if let Some((at, x)) = corrupt
                        && !now.is_empty()
                    {
                        let i = at as usize % now.len();
                        now[i] ^= x;
                    }
                    if !all.is_empty() {
                        c.kept.insert(id, all);
                    }
                    c.feed(&now);
                }
            }
            Op::Continue { pick, frames } => {
                let ids: Vec<u32> = c.kept.keys().copied().collect();
                if !ids.is_empty() {
                    let id = ids[usize::from(pick) % ids.len()];
                    let q = c.kept.get_mut(&id).expect("kept");
                    let n = match usize::from(frames) {
                        0 => q.len(),
                        n => n.min(q.len()),
                    };
                    let now: Vec<u8> = q.drain(..n).flat_map(|f| f.to_vec()).collect();
                    if q.is_empty() {
                        c.kept.remove(&id);
                    }
                    c.feed(&now);
                }
            }
            Op::Error {
                target,
                code,
                message,
            } => {
                let id = c.target(&target);
                let mut m = message.bytes();
                m.truncate(MAX_FRAME_SIZE - HEADER_LEN - 40);
                let f = ErrorFrame::new(id, ErrorCode(code), Tracing::default(), m);
                c.feed(&encode(Frame::Error(f)));
            }
            Op::CancelFrame { target } => {
                let id = c.target(&target);
                let f = Cancel {
                    id,
                    ttl: 100,
                    tracing: Tracing::default(),
                    why: Bytes::from_static(b"fuzz"),
                    trailing: Bytes::new(),
                };
                c.feed(&encode(Frame::Cancel(f)));
            }
            Op::PingReq { id } => c.feed(&encode(Frame::PingReq(Ping::new(id)))),
            Op::PingRes { pick, any } => {
                let ids: Vec<u32> = c.pings.keys().copied().collect();
                let id = match any {
                    Some(id) => id,
                    None if ids.is_empty() => continue,
                    None => ids[usize::from(pick) % ids.len()],
                };
                c.feed(&encode(Frame::PingRes(Ping::new(id))));
            }
        }
        c.collect();
    }

    if let Some(s) = &c.stats {
        eprintln!(
            "stats: calls {} fed {} peak alloc {} {s:?}",
            c.calls.len(),
            c.fed,
            PEAK.load(Ordering::Relaxed)
        );
    }
    // The server goes away: every call must have exactly one outcome then.
    c.conn.transport_closed("eof");
    c.collect();
    assert!(c.closed, "no Closed after EOF");
    assert_eq!(c.conn.table_sizes(), [0; 5]);
    assert_eq!(c.conn.calls_in_flight(), (0, 0));
    for (id, call) in &c.calls {
        assert!(
            matches!(call.st, St::Done | St::Cancelled),
            "call {id} ended in state {:?}",
            call.st
        );
    }
});
