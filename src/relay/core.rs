//! The relay's forwarding engine, without I/O.
//!
//! [`RelayCore`] holds every connection the relay has (to callers and to
//! destinations: one connection can be both), every call in flight through
//! it, the services it knows and their peers. The driver hands it each frame
//! as it arrives ([`RelayCore::on_frame`]) and the time; the core answers by
//! queueing frames on connections ([`RelayCore::swap_output`]) and asking for
//! connects and closes ([`RelayCore::poll_action`]). It never blocks and never
//! copies an arg byte: forwarded frames are a rewritten header and a slice of
//! the frame that arrived (`spec/12-relay.md`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::config::RelayConfig;
use super::frame::{Forward, RelayHead, lowered_ttl};
use super::policy::{EdgeId, EdgeKey, Policy, Verdict};
use crate::frame::{
    CallContinue, CallFragment, CallHead, CallReq, Cancel, ChecksumType, ErrorCode, ErrorFrame,
    Frame, FrameHeader, FrameType, MAX_FRAME_SIZE, NO_MESSAGE_ID, Ping, Reassembler,
    ReassemblyLimits, ResHead, ResponseCode, Tracing, TransportHeaders, encode_message,
};
use crate::peer::Class;
use crate::peer::breaker::{Admission, Breaker};
use crate::peer::select::{Candidate, Selector, ramp_weight};
use crate::util::HashMap;

/// A connection's handle in the core. Never reused.
pub type ConnId = u64;

type CallKey = usize;
type PeerIdx = u32;

/// The most peers one call tries, whatever `connect_attempts` says: as many
/// as [`Tried`] remembers.
const MAX_ATTEMPTS: usize = 4;

/// The peers one call tried, inline (a call tries at most a few).
#[derive(Clone, Copy, Default)]
struct Tried {
    ids: [PeerIdx; MAX_ATTEMPTS],
    len: u8,
    attempts: u8,
}

impl Tried {
    fn push(&mut self, p: PeerIdx) {
        self.attempts = self.attempts.saturating_add(1);
        if usize::from(self.len) < self.ids.len() {
            self.ids[usize::from(self.len)] = p;
            self.len += 1;
        }
    }

    fn contains(&self, p: PeerIdx) -> bool {
        self.ids[..usize::from(self.len)].contains(&p)
    }
}

/// Calls by key: a vector of slots and a free list, so a call costs no
/// hashing and no allocation once the relay has warmed up.
#[derive(Default)]
struct Slab {
    slots: Vec<Option<Call>>,
    free: Vec<usize>,
    len: usize,
}

impl Slab {
    fn insert(&mut self, call: Call) -> CallKey {
        self.len += 1;
        match self.free.pop() {
            Some(k) => {
                self.slots[k] = Some(call);
                k
            }
            None => {
                self.slots.push(Some(call));
                self.slots.len() - 1
            }
        }
    }

    fn get(&self, k: CallKey) -> Option<&Call> {
        self.slots.get(k).and_then(Option::as_ref)
    }

    fn get_mut(&mut self, k: CallKey) -> Option<&mut Call> {
        self.slots.get_mut(k).and_then(Option::as_mut)
    }

    fn remove(&mut self, k: CallKey) -> Option<Call> {
        let c = self.slots.get_mut(k)?.take()?;
        self.free.push(k);
        self.len -= 1;
        Some(c)
    }

    fn contains(&self, k: CallKey) -> bool {
        self.get(k).is_some()
    }
}

/// The service a relay answers itself ([RELAY-10]).
pub const HYPERBAHN_SERVICE: &[u8] = b"hyperbahn";

/// The service name on which a relay answers `Meta::*` for itself, as on
/// `hyperbahn` (SCHEME-18).
pub const TCHANNEL_SERVICE: &[u8] = b"tchannel";

/// A frame queued for a connection's socket.
#[derive(Debug, Clone)]
pub enum Out {
    /// A forwarded frame: a rewritten head and the rest of the original.
    Forward(Forward),
    /// A frame the relay made (errors, pings, its own responses).
    Own(Bytes),
}

impl Out {
    /// The frame's bytes, as at most two slices to write in order.
    pub fn parts(&self) -> [&[u8]; 2] {
        match self {
            Out::Forward(f) => [f.head(), f.rest()],
            Out::Own(b) => [b, &[]],
        }
    }

    /// Frame length.
    pub fn len(&self) -> usize {
        match self {
            Out::Forward(f) => f.len(),
            Out::Own(b) => b.len(),
        }
    }

    /// Never true: a frame has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// What the driver must do for the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a connection to `host_port` and report it with
    /// [`RelayCore::add_connection`] (then [`RelayCore::on_connected`]) or
    /// [`RelayCore::on_connect_failed`].
    Dial(String),
    /// Close this connection (after writing what is queued).
    Close(ConnId),
}

/// Counters of the relay, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayCounters {
    /// Calls whose first frame was forwarded.
    pub forwarded: u64,
    /// Frames forwarded, both ways.
    pub frames_forwarded: u64,
    /// Arg bytes (payload bytes of forwarded frames) forwarded by reference.
    pub bytes_forwarded: u64,
    /// Bytes of forwarded frames the relay copied: the rewritten headers
    /// (16 bytes, 21 for a call req) and nothing else.
    pub bytes_copied: u64,
    /// Calls the relay answered with an error frame itself.
    pub answered_locally: u64,
    /// Frames dropped because their call had already ended (tombstones).
    pub late_dropped: u64,
    /// Frames dropped whose id the relay never knew.
    pub unknown_dropped: u64,
}

/// Sizes of the core's tables, to check that nothing leaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelaySizes {
    /// Connections.
    pub connections: usize,
    /// Calls in flight.
    pub calls: usize,
    /// Id mappings over all connections (two per forwarded call).
    pub mappings: usize,
    /// Calls the relay is reading to answer itself.
    pub local_calls: usize,
    /// Remembered ids over all connections.
    pub tombstones: usize,
    /// Bytes queued for sockets over all connections.
    pub queued_bytes: usize,
    /// Peers known (advertised, routed or dialled).
    pub peers: usize,
    /// Deadline entries in the timer heap.
    pub timers: usize,
}

enum Dst {
    /// Waiting for a connection; the frames so far are held.
    Waiting {
        first: Option<(FrameHeader, Bytes)>,
        held: Vec<(FrameHeader, Bytes)>,
        held_bytes: usize,
    },
    /// Forwarded on `conn` as `id`.
    Sent { conn: ConnId, id: u32 },
}

struct Call {
    src: ConnId,
    src_id: u32,
    dst: Dst,
    arrived: Instant,
    deadline: Instant,
    ttl: u32,
    tracing: Tracing,
    /// The service routed to (a clone of the routing table's key: no copy).
    service: Bytes,
    edge: EdgeId,
    /// The edge's names, kept only when metrics are on.
    names: Option<Box<EdgeKey>>,
    tried: Tried,
    /// The peer chosen (last), and how its breaker let the call through.
    peer: Option<PeerIdx>,
    peer_admission: Option<Admission>,
    edge_admission: Option<Admission>,
    bytes_in: u64,
    bytes_out: u64,
    /// Arg1 ended the first frame: the next frame must not continue it.
    arg1_open: bool,
    span: tracing::Span,
}

/// A call to the relay itself, read whole before it is answered.
struct LocalCall {
    reasm: Reassembler,
    args: [BytesMut; 3],
    tracing: Tracing,
    bytes: usize,
}

#[derive(Default)]
struct Tombs {
    expiry: HashMap<u32, Instant>,
    order: VecDeque<(Instant, u32)>,
}

impl Tombs {
    fn insert(&mut self, id: u32, until: Instant, max: usize) {
        if max == 0 {
            return;
        }
        while self.expiry.len() >= max {
            let Some((at, old)) = self.order.pop_front() else {
                break;
            };
            if self.expiry.get(&old) == Some(&at) {
                self.expiry.remove(&old);
            }
        }
        self.expiry.insert(id, until);
        self.order.push_back((until, id));
    }

    fn contains(&self, id: u32, now: Instant) -> bool {
        self.expiry.get(&id).is_some_and(|&until| until > now)
    }

    fn purge(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.order.front() {
            if at > now {
                break;
            }
            self.order.pop_front();
            if self.expiry.get(&id) == Some(&at) {
                self.expiry.remove(&id);
            }
        }
    }

    fn len(&self) -> usize {
        self.expiry.len()
    }
}

struct Conn {
    /// The peer's `host_port` from its init frame.
    host_port: String,
    /// The peer's calls through the relay: its id → call.
    incoming: HashMap<u32, CallKey>,
    /// Calls the relay forwarded on this connection: our id → call.
    outgoing: HashMap<u32, CallKey>,
    local: HashMap<u32, LocalCall>,
    next_id: u32,
    queue: VecDeque<Out>,
    /// Bytes queued and not yet reported written.
    queued: usize,
    woken: bool,
    tombs_in: Tombs,
    tombs_out: Tombs,
    closing: bool,
}

struct Peer {
    host_port: String,
    conn: Option<ConnId>,
    dialing: bool,
    waiting: Vec<CallKey>,
    breaker: Breaker,
    in_flight: usize,
    since: Instant,
}

/// The relay's state: connections, calls, services and peers.
pub struct RelayCore {
    config: RelayConfig,
    policy: Policy,
    conns: HashMap<ConnId, Conn>,
    next_conn: ConnId,
    calls: Slab,
    timers: BinaryHeap<Reverse<(Instant, CallKey)>>,
    armed: Option<Instant>,
    rearm: bool,
    /// Advertised services: service → (peer, expiry).
    ads: HashMap<Bytes, Vec<(PeerIdx, Instant)>>,
    /// Static routes: service → peers.
    routes: HashMap<Bytes, Vec<PeerIdx>>,
    peers: Vec<Peer>,
    peer_index: HashMap<String, PeerIdx>,
    /// The latest `now` the core was given (for peers made without one).
    clock: Instant,
    selector: Selector,
    rng: SmallRng,
    wakes: Vec<ConnId>,
    actions: VecDeque<Action>,
    counters: RelayCounters,
    scratch: Vec<Candidate>,
    scratch_peers: Vec<PeerIdx>,
    scratch_avail: Vec<PeerIdx>,
    /// Services advertised through this relay since the last
    /// [`RelayCore::take_advertised`] (for peer relays).
    advertised: Vec<(Bytes, String, bool)>,
    #[cfg(feature = "thrift")]
    meta: crate::transport::meta::MetaState,
}

impl std::fmt::Debug for RelayCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayCore")
            .field("sizes", &self.sizes())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// The ramp-up of a newly connected peer (as the peer pool's).
const RAMP: Duration = Duration::from_secs(5);
const RAMP_FLOOR: f64 = 0.1;

impl RelayCore {
    /// An empty relay.
    pub fn new(config: RelayConfig) -> RelayCore {
        RelayCore {
            selector: Selector::new(config.strategy),
            policy: Policy::new(config.edge_breaker, config.max_edges),
            config,
            conns: HashMap::default(),
            next_conn: 1,
            calls: Slab::default(),
            timers: BinaryHeap::new(),
            armed: None,
            rearm: false,
            ads: HashMap::default(),
            routes: HashMap::default(),
            peers: Vec::new(),
            peer_index: HashMap::default(),
            clock: crate::util::now(),
            rng: SmallRng::from_os_rng(),
            wakes: Vec::new(),
            actions: VecDeque::new(),
            counters: RelayCounters::default(),
            scratch: Vec::new(),
            scratch_peers: Vec::new(),
            scratch_avail: Vec::new(),
            advertised: Vec::new(),
            #[cfg(feature = "thrift")]
            meta: crate::transport::meta::MetaState::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// The edge policy (kill switches, rate limits), to change at run time.
    pub fn policy_mut(&mut self) -> &mut Policy {
        &mut self.policy
    }

    /// Counters since the relay started.
    pub fn counters(&self) -> RelayCounters {
        self.counters
    }

    /// Sizes of the tables.
    pub fn sizes(&self) -> RelaySizes {
        let mut s = RelaySizes {
            connections: self.conns.len(),
            calls: self.calls.len,
            peers: self.peers.len(),
            timers: self.timers.len(),
            ..RelaySizes::default()
        };
        for c in self.conns.values() {
            s.mappings += c.incoming.len() + c.outgoing.len();
            s.local_calls += c.local.len();
            s.tombstones += c.tombs_in.len() + c.tombs_out.len();
            s.queued_bytes += c.queued;
        }
        s
    }

    // ===== connections =====

    /// Registers a connection whose handshake is done; `host_port` is what
    /// the peer announced. Returns its id.
    pub fn add_connection(&mut self, host_port: &str) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(
            id,
            Conn {
                host_port: host_port.to_owned(),
                incoming: HashMap::default(),
                outgoing: HashMap::default(),
                local: HashMap::default(),
                next_id: 1,
                queue: VecDeque::new(),
                queued: 0,
                woken: false,
                tombs_in: Tombs::default(),
                tombs_out: Tombs::default(),
                closing: false,
            },
        );
        id
    }

    /// A connection the relay dialled to `peer` is up as `conn`: the calls
    /// waiting for it are sent.
    pub fn on_connected(&mut self, peer: &str, conn: ConnId, now: Instant) {
        self.clock = now;
        let Some(&idx) = self.peer_index.get(peer) else {
            return;
        };
        let p = &mut self.peers[idx as usize];
        p.dialing = false;
        if p.conn.is_none() {
            p.conn = Some(conn);
            p.since = now;
        }
        let waiting = std::mem::take(&mut p.waiting);
        for key in waiting {
            self.send_waiting(key, conn, now);
        }
    }

    /// A connect to `peer` failed: its waiting calls try another peer.
    pub fn on_connect_failed(&mut self, peer: &str, reason: &str, now: Instant) {
        self.clock = now;
        let Some(&idx) = self.peer_index.get(peer) else {
            return;
        };
        let p = &mut self.peers[idx as usize];
        p.dialing = false;
        let waiting = std::mem::take(&mut p.waiting);
        let why = format!("connect to {peer} failed: {reason}");
        for key in waiting {
            let Some(call) = self.calls.get_mut(key) else {
                continue;
            };
            let adm = call.peer_admission.take();
            call.peer = None;
            let r: f64 = self.rng.random();
            let p = &mut self.peers[idx as usize];
            p.in_flight = p.in_flight.saturating_sub(1);
            if let Some(adm) = adm {
                p.breaker.on_result(now, adm, Class::Failure, r);
            }
            self.route_waiting(key, &why, now);
        }
    }

    /// The connection is gone (EOF, error, or closed by the relay). Every call
    /// through it ends: calls it made are forgotten, with a cancel to their
    /// destinations; calls forwarded on it fail with a network error to their
    /// callers ([RELAY-7], [RELAY-8]).
    pub fn on_closed(&mut self, conn: ConnId, now: Instant) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        for (_, key) in c.incoming {
            // remove_call also clears the destination's side of the mapping.
            if let Some(call) = self.remove_call(key) {
                self.abandon_downstream(call, "caller disconnected", now, Class::Ignore);
            }
        }
        for (_, key) in c.outgoing {
            if let Some(call) = self.remove_call(key) {
                let msg = format!(
                    "relay: connection to the destination of {} closed mid-call",
                    String::from_utf8_lossy(&call.service)
                );
                // The peer's fault, not the edge's: its breaker counts it
                // (fail_upstream), the caller's edge does not ([RELAY-14]).
                self.fail_upstream(call, ErrorCode::NETWORK, &msg, now, Class::Ignore);
            }
        }
        // Another live connection to the same peer takes over.
        for p in self.peers.iter_mut() {
            if p.conn == Some(conn) {
                p.conn = self
                    .conns
                    .iter()
                    .find(|(_, c)| c.host_port == p.host_port && !c.closing)
                    .map(|(&id, _)| id);
            }
        }
        self.wakes.retain(|&w| w != conn);
    }

    /// The frames queued for `conn`, swapped into `out` (which must be empty).
    /// Report them with [`RelayCore::on_written`] once written.
    pub fn swap_output(&mut self, conn: ConnId, out: &mut VecDeque<Out>) -> bool {
        match self.conns.get_mut(&conn) {
            Some(c) => {
                c.woken = false;
                std::mem::swap(&mut c.queue, out);
                true
            }
            None => false,
        }
    }

    /// `bytes` of `conn`'s queue reached the socket.
    pub fn on_written(&mut self, conn: ConnId, bytes: usize) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.queued = c.queued.saturating_sub(bytes);
        }
    }

    /// Connections with newly queued frames since the last call.
    pub fn take_wakes(&mut self, into: &mut Vec<ConnId>) {
        into.append(&mut self.wakes);
    }

    /// The next thing the driver must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// True once per change of the earliest deadline: re-arm the timer.
    pub fn take_rearm(&mut self) -> bool {
        std::mem::take(&mut self.rearm)
    }

    /// Services newly advertised (`true`) or withdrawn (`false`) here, with
    /// the advertising peer, to tell peer relays.
    pub fn take_advertised(&mut self) -> Vec<(Bytes, String, bool)> {
        std::mem::take(&mut self.advertised)
    }

    // ===== services =====

    /// Replaces the static routes (`--routes`).
    pub fn set_routes(&mut self, routes: impl IntoIterator<Item = (String, Vec<String>)>) {
        let mut table = HashMap::default();
        for (s, hps) in routes {
            let mut ids: Vec<PeerIdx> = Vec::with_capacity(hps.len());
            for hp in &hps {
                let id = self.peer_idx(hp);
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            table.insert(Bytes::from(s), ids);
        }
        self.routes = table;
    }

    /// The index of the peer at `host_port`, made on first use.
    fn peer_idx(&mut self, host_port: &str) -> PeerIdx {
        if let Some(&i) = self.peer_index.get(host_port) {
            return i;
        }
        let i = self.peers.len() as PeerIdx;
        self.peers.push(Peer {
            host_port: host_port.to_owned(),
            conn: None,
            dialing: false,
            waiting: Vec::new(),
            breaker: Breaker::new(self.config.peer_breaker, self.clock),
            in_flight: 0,
            since: self.clock,
        });
        self.peer_index.insert(host_port.to_owned(), i);
        i
    }

    /// Records that `host_port` serves `service` until `now + advert_ttl`
    /// (an advertisement, here or at a peer relay).
    /// `false`, and nothing recorded, when it would be one advertisement
    /// (or peer) over [`RelayConfig::max_advertisements`].
    pub fn advertise(&mut self, service: &[u8], host_port: &str, now: Instant) -> bool {
        self.clock = now;
        let until = now + self.config.advert_ttl;
        let known = self.peer_index.get(host_port).copied();
        let exists = known.is_some_and(|id| {
            self.ads
                .get(service)
                .is_some_and(|l| l.iter().any(|(p, _)| *p == id))
        });
        if !exists {
            let held: usize = self.ads.values().map(Vec::len).sum();
            let too_many_peers =
                known.is_none() && self.peers.len() >= 4 * self.config.max_advertisements;
            if held >= self.config.max_advertisements || too_many_peers {
                return false;
            }
        }
        let id = self.peer_idx(host_port);
        let list = match self.ads.get_mut(service) {
            Some(l) => l,
            None => self.ads.entry(Bytes::copy_from_slice(service)).or_default(),
        };
        match list.iter_mut().find(|(p, _)| *p == id) {
            Some(e) => e.1 = until,
            None => list.push((id, until)),
        }
        true
    }

    /// Removes an advertisement at once (`unad`).
    pub fn unadvertise(&mut self, service: &[u8], host_port: &str) {
        let Some(&id) = self.peer_index.get(host_port) else {
            return;
        };
        if let Some(m) = self.ads.get_mut(service) {
            m.retain(|(p, _)| *p != id);
            if m.is_empty() {
                self.ads.remove(service);
            }
        }
    }

    /// The peers of `service` now: advertised (not lapsed) and routed.
    pub fn peers_of(&self, service: &[u8], now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_peers(service, now, &mut out);
        out.iter()
            .map(|&i| self.peers[i as usize].host_port.clone())
            .collect()
    }

    fn collect_peers(&self, service: &[u8], now: Instant, out: &mut Vec<PeerIdx>) {
        if let Some(m) = self.ads.get(service) {
            out.extend(m.iter().filter(|(_, u)| *u > now).map(|(p, _)| *p));
        }
        if let Some(r) = self.routes.get(service) {
            for p in r {
                if !out.contains(p) {
                    out.push(*p);
                }
            }
        }
    }

    /// The routing table's own copy of a service name (shared, not copied),
    /// when the relay knows the service at all.
    fn service_key(&self, service: &[u8]) -> Option<Bytes> {
        if let Some((k, _)) = self.ads.get_key_value(service) {
            return Some(k.clone());
        }
        self.routes.get_key_value(service).map(|(k, _)| k.clone())
    }

    // ===== frames =====

    /// One frame from `conn`.
    pub fn on_frame(&mut self, conn: ConnId, header: FrameHeader, payload: Bytes, now: Instant) {
        match header.frame_type {
            FrameType::CALL_REQ => self.on_call_req(conn, header, payload, now),
            FrameType::CALL_REQ_CONTINUE => self.on_req_continue(conn, header, payload, now),
            FrameType::CANCEL => self.on_cancel(conn, header, payload, now),
            FrameType::CALL_RES | FrameType::CALL_RES_CONTINUE | FrameType::ERROR => {
                self.on_response(conn, header, payload, now)
            }
            FrameType::PING_REQ => {
                if let Ok(b) = Frame::PingRes(Ping::new(header.id)).to_bytes() {
                    self.push_own(conn, b);
                }
            }
            FrameType::INIT_REQ | FrameType::INIT_RES => {
                self.fatal(conn, "init frame after the handshake");
            }
            // Ping res, claim and unknown types: nothing to do (MSG-6).
            _ => {}
        }
    }

    fn on_call_req(&mut self, conn: ConnId, header: FrameHeader, payload: Bytes, now: Instant) {
        self.clock = now;
        let id = header.id;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.incoming.contains_key(&id) || c.local.contains_key(&id) {
            self.fatal(conn, "call req for an id already in use");
            return;
        }
        if c.incoming.len() + c.local.len() >= self.config.max_calls_per_connection {
            // [RELAY-9] Bounded per connection, like the connection core.
            let tracing = tracing_of(header, &payload);
            let msg = "relay: too many calls in flight on this connection";
            self.reject(conn, id, tracing, ErrorCode::BUSY, msg, now);
            return;
        }
        let head = match RelayHead::parse(header, &payload) {
            Ok(h) => h,
            Err(e) => {
                // [RELAY-2] Never silence. The id is remembered so the rest of
                // the call is dropped.
                let tracing = tracing_of(header, &payload);
                let msg = format!("relay: {e}");
                self.error_to(conn, id, ErrorCode::BAD_REQUEST, tracing, &msg);
                self.entomb_in(conn, id, now);
                return;
            }
        };
        let route = head.route();
        if route == HYPERBAHN_SERVICE || route == TCHANNEL_SERVICE {
            self.start_local(conn, header, payload, head, now);
            return;
        }
        let caller = head.caller();
        let names = || EdgeKey::new(caller, route, &head.arg1);
        if let Verdict::Reject(code, msg) = self.policy.check(caller, route, now) {
            self.reject(conn, id, head.tracing, code, &msg, now);
            self.observe_local(names, code);
            return;
        }
        let Some(service) = self.service_key(route) else {
            // [RELAY-8] No peer for the service.
            let msg = format!(
                "relay: no peers for service {}",
                String::from_utf8_lossy(route)
            );
            self.reject(conn, id, head.tracing, ErrorCode::DECLINED, &msg, now);
            self.observe_local(names, ErrorCode::DECLINED);
            return;
        };
        let edge = self.policy.edge(caller, route, &head.arg1);
        let Some(edge_admission) = self.policy.admit(edge, now) else {
            let msg = format!(
                "relay: service is not healthy: {} (circuit open for {})",
                String::from_utf8_lossy(route),
                names()
            );
            self.reject(conn, id, head.tracing, ErrorCode::DECLINED, &msg, now);
            self.observe_local(names, ErrorCode::DECLINED);
            return;
        };
        let ttl = lowered_ttl(head.ttl, Duration::ZERO, self.config.max_ttl);
        let deadline = now + Duration::from_millis(u64::from(ttl));
        let span = tracing::debug_span!(
            "relay_call",
            service = %String::from_utf8_lossy(&service),
            endpoint = %String::from_utf8_lossy(&head.arg1),
            caller = %String::from_utf8_lossy(caller),
            trace_id = head.tracing.trace_id,
        );
        let call = Call {
            src: conn,
            src_id: id,
            dst: Dst::Waiting {
                first: Some((header, payload)),
                held: Vec::new(),
                held_bytes: usize::from(header.size),
            },
            arrived: now,
            deadline,
            ttl: head.ttl,
            tracing: head.tracing,
            service,
            edge,
            names: self.config.metrics.then(|| Box::new(names())),
            tried: Tried::default(),
            peer: None,
            peer_admission: None,
            edge_admission: Some(edge_admission),
            bytes_in: u64::from(header.size),
            bytes_out: 0,
            arg1_open: head.arg1_open,
            span,
        };
        let key = self.calls.insert(call);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.incoming.insert(id, key);
        }
        self.push_timer(deadline, key);
        self.route_waiting(key, "", now);
    }

    /// Answers a call the relay will not forward, and forgets its id.
    fn reject(
        &mut self,
        conn: ConnId,
        id: u32,
        tracing: Tracing,
        code: ErrorCode,
        msg: &str,
        now: Instant,
    ) {
        self.error_to(conn, id, code, tracing, msg);
        self.entomb_in(conn, id, now);
        self.counters.answered_locally += 1;
    }

    /// Chooses a peer for a call that has not left the relay and sends it,
    /// or dials, or fails it. `why` is the last attempt's failure.
    fn route_waiting(&mut self, key: CallKey, why: &str, now: Instant) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        if usize::from(call.tried.attempts) >= self.config.connect_attempts.clamp(1, MAX_ATTEMPTS) {
            let msg = format!(
                "relay: no peer of {} could be reached ({why})",
                String::from_utf8_lossy(&call.service)
            );
            if let Some(call) = self.remove_call(key) {
                self.fail_upstream(call, ErrorCode::NETWORK, &msg, now, Class::Ignore);
            }
            return;
        }
        let tried = call.tried;
        let mut names = std::mem::take(&mut self.scratch_peers);
        names.clear();
        self.collect_peers(&call.service, now, &mut names);
        if names.is_empty() {
            let msg = format!(
                "relay: no peers for service {}",
                String::from_utf8_lossy(&call.service)
            );
            self.scratch_peers = names;
            if let Some(call) = self.remove_call(key) {
                self.fail_upstream(call, ErrorCode::DECLINED, &msg, now, Class::Ignore);
            }
            return;
        }
        let mut cands = std::mem::take(&mut self.scratch);
        let mut avail = std::mem::take(&mut self.scratch_avail);
        cands.clear();
        avail.clear();
        for &i in &names {
            let p = &mut self.peers[i as usize];
            if p.breaker.poll_timeout().is_some_and(|t| t <= now) {
                p.breaker.handle_timeout(now);
            }
            if !p.breaker.is_available() {
                continue;
            }
            avail.push(i);
            cands.push(Candidate {
                in_flight: p.in_flight,
                rtt: Duration::ZERO,
                weight: if p.conn.is_some() {
                    ramp_weight(now, p.since, RAMP, RAMP_FLOOR)
                } else {
                    1.0
                },
                tried: tried.contains(i),
                share: 1,
            });
        }
        let chosen = self
            .selector
            .select(&cands, &mut self.rng)
            .map(|i| avail[i]);
        self.scratch = cands;
        self.scratch_avail = avail;
        self.scratch_peers = names;
        let Some(idx) = chosen else {
            let msg = format!(
                "relay: every peer of {} is unavailable (circuit open)",
                String::from_utf8_lossy(
                    &self
                        .calls
                        .get(key)
                        .map(|c| c.service.clone())
                        .unwrap_or_default()
                )
            );
            if let Some(call) = self.remove_call(key) {
                self.fail_upstream(call, ErrorCode::DECLINED, &msg, now, Class::Ignore);
            }
            return;
        };
        let p = &mut self.peers[idx as usize];
        let Some(adm) = p.breaker.admit() else {
            if let Some(call) = self.calls.get_mut(key) {
                call.tried.push(idx);
            }
            self.route_waiting(key, "circuit open", now);
            return;
        };
        p.in_flight += 1;
        let conn = p.conn;
        if let Some(call) = self.calls.get_mut(key) {
            call.tried.push(idx);
            call.peer = Some(idx);
            call.peer_admission = Some(adm);
        }
        match conn {
            Some(dst) => self.send_waiting(key, dst, now),
            None => {
                // [RELAY-11] Reuse a connection from that peer when there is one.
                let hp = &self.peers[idx as usize].host_port;
                let inbound = self
                    .conns
                    .iter()
                    .find(|(_, c)| c.host_port == *hp && !c.closing)
                    .map(|(&id, _)| id);
                let p = &mut self.peers[idx as usize];
                if let Some(dst) = inbound {
                    p.conn = Some(dst);
                    p.since = now;
                    self.send_waiting(key, dst, now);
                    return;
                }
                p.waiting.push(key);
                if !p.dialing {
                    p.dialing = true;
                    self.actions.push_back(Action::Dial(p.host_port.clone()));
                }
            }
        }
    }

    /// Sends the held frames of a waiting call on `dst`.
    fn send_waiting(&mut self, key: CallKey, dst: ConnId, now: Instant) {
        let max_queued = self.config.max_queued_bytes;
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let Dst::Waiting {
            first,
            held,
            held_bytes,
        } = &mut call.dst
        else {
            return;
        };
        let Some(d) = self.conns.get_mut(&dst) else {
            return;
        };
        if d.closing {
            return;
        }
        if d.queued + *held_bytes > max_queued {
            let msg = format!(
                "relay: the connection to a peer of {} is not keeping up (write queue full)",
                String::from_utf8_lossy(&call.service)
            );
            if let Some(call) = self.remove_call(key) {
                self.fail_upstream_as(
                    call,
                    ErrorCode::BUSY,
                    &msg,
                    now,
                    Class::Ignore,
                    Class::Failure,
                );
            }
            return;
        }
        let ttl = lowered_ttl(
            call.ttl,
            now.saturating_duration_since(call.arrived),
            self.config.max_ttl,
        );
        if ttl == 0 {
            if let Some(call) = self.remove_call(key) {
                self.fail_upstream(
                    call,
                    ErrorCode::TIMEOUT,
                    "relay: timed out before it could be forwarded",
                    now,
                    Class::Ignore,
                );
            }
            return;
        }
        let id = next_free_id(d, now);
        d.outgoing.insert(id, key);
        let first = first.take();
        let held = std::mem::take(held);
        let frames = first
            .into_iter()
            .map(|(h, p)| Forward::call_req(h, p, id, ttl))
            .chain(
                held.into_iter()
                    .map(|(h, p)| Some(Forward::with_id(h, p, id))),
            );
        for f in frames.flatten() {
            self.counters.frames_forwarded += 1;
            self.counters.bytes_forwarded += f.rest().len() as u64;
            self.counters.bytes_copied += f.head().len() as u64;
            d.queued += f.len();
            d.queue.push_back(Out::Forward(f));
        }
        if !d.woken {
            d.woken = true;
            self.wakes.push(dst);
        }
        call.dst = Dst::Sent { conn: dst, id };
        self.counters.forwarded += 1;
    }

    fn on_req_continue(&mut self, conn: ConnId, header: FrameHeader, payload: Bytes, now: Instant) {
        let id = header.id;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.local.contains_key(&id) {
            self.continue_local(conn, header, payload, now);
            return;
        }
        let Some(&key) = c.incoming.get(&id) else {
            self.drop_unknown(conn, id, now, true);
            return;
        };
        let max_queued = self.config.max_queued_bytes;
        let max_held = self.config.max_held_bytes;
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        call.bytes_in += u64::from(header.size);
        if call.arg1_open {
            // [RELAY-2] The second frame says whether arg1 went on: its first
            // chunk is arg1's, and must be empty.
            call.arg1_open = false;
            let continues = CallContinue::decode(header, &payload)
                .is_ok_and(|c| c.args.iter().next().is_some_and(|a| !a.is_empty()));
            if continues {
                let msg = "relay: arg1 must be whole in the first frame of a relayed call";
                if let Some(call) = self.remove_call(key) {
                    self.cancel_downstream(&call, "arg1 split over frames", now);
                    self.fail_upstream(call, ErrorCode::BAD_REQUEST, msg, now, Class::Ignore);
                }
                return;
            }
        }
        let size = usize::from(header.size);
        match &mut call.dst {
            Dst::Waiting {
                held, held_bytes, ..
            } => {
                if *held_bytes + size > max_held {
                    let msg =
                        "relay: call held too many bytes while its destination was connecting";
                    if let Some(call) = self.remove_call(key) {
                        self.fail_upstream(call, ErrorCode::BUSY, msg, now, Class::Ignore);
                    }
                    return;
                }
                *held_bytes += size;
                held.push((header, payload));
            }
            &mut Dst::Sent {
                conn: dst,
                id: dst_id,
            } => {
                let Some(d) = self.conns.get_mut(&dst) else {
                    return;
                };
                if d.queued + size > max_queued {
                    // [RELAY-9] Never block the caller's connection: this
                    // call fails, the others go on.
                    let msg = format!(
                        "relay: the connection to the destination of {} is not keeping up (write queue full)",
                        String::from_utf8_lossy(&call.service)
                    );
                    if let Some(call) = self.remove_call(key) {
                        self.cancel_downstream(&call, "relay write queue full", now);
                        self.fail_upstream_as(
                            call,
                            ErrorCode::BUSY,
                            &msg,
                            now,
                            Class::Ignore,
                            Class::Failure,
                        );
                    }
                    return;
                }
                let f = Forward::with_id(header, payload, dst_id);
                self.counters.frames_forwarded += 1;
                self.counters.bytes_forwarded += f.rest().len() as u64;
                self.counters.bytes_copied += f.head().len() as u64;
                d.queued += f.len();
                d.queue.push_back(Out::Forward(f));
                if !d.woken {
                    d.woken = true;
                    self.wakes.push(dst);
                }
            }
        }
    }

    fn on_cancel(&mut self, conn: ConnId, header: FrameHeader, payload: Bytes, now: Instant) {
        let id = header.id;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(&key) = c.incoming.get(&id) else {
            // Cancels cross responses: nothing to do (CANCEL-4).
            return;
        };
        let Some(call) = self.calls.get(key) else {
            return;
        };
        match call.dst {
            Dst::Sent {
                conn: dst,
                id: dst_id,
            } => {
                // [RELAY-6] Forwarded; the destination answers it.
                let f = Forward::with_id(header, payload, dst_id);
                self.push_forward_forced(dst, f);
            }
            Dst::Waiting { .. } => {
                if let Some(call) = self.remove_call(key) {
                    self.fail_upstream(
                        call,
                        ErrorCode::CANCELLED,
                        "relay: cancelled by the caller",
                        now,
                        Class::Ignore,
                    );
                }
            }
        }
    }

    fn on_response(&mut self, conn: ConnId, header: FrameHeader, payload: Bytes, now: Instant) {
        let id = header.id;
        if header.frame_type == FrameType::ERROR && id == NO_MESSAGE_ID {
            // A connection-level error: the peer is closing.
            tracing::debug!(conn, "relay: peer sent a connection error");
            self.close(conn);
            return;
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(&key) = c.outgoing.get(&id) else {
            self.drop_unknown(conn, id, now, false);
            return;
        };
        let terminal =
            header.frame_type == FrameType::ERROR || payload.first().is_none_or(|f| f & 0x01 == 0);
        let max_queued = self.config.max_queued_bytes;
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let size = usize::from(header.size);
        call.bytes_out += size as u64;
        let src = call.src;
        let src_id = call.src_id;
        let Some(s) = self.conns.get_mut(&src) else {
            return;
        };
        if s.queued + size > max_queued && !terminal {
            let msg = "relay: the caller is not reading its responses (write queue full)";
            if let Some(call) = self.remove_call(key) {
                self.cancel_downstream(&call, "caller's write queue full", now);
                self.fail_upstream(call, ErrorCode::BUSY, msg, now, Class::Ignore);
            }
            return;
        }
        let class = if header.frame_type == FrameType::ERROR {
            classify_code(payload.first().copied().unwrap_or(0))
        } else {
            Class::Success
        };
        let code = (header.frame_type == FrameType::ERROR)
            .then(|| ErrorCode(payload.first().copied().unwrap_or(0)));
        let app_error = header.frame_type == FrameType::CALL_RES
            && payload.get(1).is_some_and(|&c| c != ResponseCode::OK.0);
        let f = Forward::with_id(header, payload, src_id);
        self.counters.frames_forwarded += 1;
        self.counters.bytes_forwarded += f.rest().len() as u64;
        self.counters.bytes_copied += f.head().len() as u64;
        s.queued += f.len();
        s.queue.push_back(Out::Forward(f));
        if !s.woken {
            s.woken = true;
            self.wakes.push(src);
        }
        if terminal && let Some(call) = self.remove_call(key) {
            self.finish(call, class, now, code, app_error);
        }
    }

    fn drop_unknown(&mut self, conn: ConnId, id: u32, now: Instant, incoming: bool) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let tombs = if incoming {
            &mut c.tombs_in
        } else {
            &mut c.tombs_out
        };
        tombs.purge(now);
        if tombs.contains(id, now) {
            self.counters.late_dropped += 1;
        } else {
            self.counters.unknown_dropped += 1;
            tracing::debug!(conn, id, "relay: frame for an unknown id dropped");
        }
    }

    // ===== the relay's own calls =====

    fn start_local(
        &mut self,
        conn: ConnId,
        header: FrameHeader,
        payload: Bytes,
        head: RelayHead,
        now: Instant,
    ) {
        if self
            .conns
            .get(&conn)
            .is_some_and(|c| c.local.len() >= self.config.max_local_calls)
        {
            let msg = "relay: too many calls to the relay itself in flight on this connection";
            self.reject(conn, header.id, head.tracing, ErrorCode::BUSY, msg, now);
            return;
        }
        let mut limits = ReassemblyLimits::default();
        limits.set_max_message_bytes(self.config.max_local_call_bytes as u64);
        let local = LocalCall {
            reasm: Reassembler::new(limits),
            args: Default::default(),
            tracing: head.tracing,
            bytes: 0,
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.local.insert(header.id, local);
        }
        self.continue_local(conn, header, payload, now);
    }

    fn continue_local(&mut self, conn: ConnId, header: FrameHeader, payload: Bytes, now: Instant) {
        let id = header.id;
        let max = self.config.max_local_call_bytes;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(local) = c.local.get_mut(&id) else {
            return;
        };
        let pushed = match header.frame_type {
            FrameType::CALL_REQ => match CallReq::decode(header, &payload) {
                Ok(req) => local
                    .reasm
                    .push(CallFragment::from(&req))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            _ => match CallContinue::decode(header, &payload) {
                Ok(cont) => local
                    .reasm
                    .push(CallFragment::from(&cont))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
        };
        let chunks = match pushed {
            Ok(ch) => ch,
            Err(e) => {
                let tracing = local.tracing;
                c.local.remove(&id);
                let msg = format!("relay: hyperbahn call: {e}");
                self.error_to(conn, id, ErrorCode::BAD_REQUEST, tracing, &msg);
                self.entomb_in(conn, id, now);
                return;
            }
        };
        for ch in chunks.iter() {
            if ch.index < 3 {
                local.bytes += ch.data.len();
                if local.bytes <= max {
                    local.args[ch.index].extend_from_slice(&ch.data);
                }
            }
        }
        if !chunks.message_complete() {
            return;
        }
        let Some(local) = c.local.remove(&id) else {
            return;
        };
        let [a1, a2, a3] = local.args;
        self.answer_hyperbahn(
            conn,
            id,
            local.tracing,
            [a1.freeze(), a2.freeze(), a3.freeze()],
            now,
        );
    }

    fn answer_hyperbahn(
        &mut self,
        conn: ConnId,
        id: u32,
        tracing: Tracing,
        args: [Bytes; 3],
        now: Instant,
    ) {
        let [arg1, arg2, arg3] = args;
        if arg1.starts_with(b"Meta::") {
            self.answer_meta(conn, id, tracing, &arg1, &arg2, &arg3);
            return;
        }
        let hp = match self.conns.get(&conn) {
            Some(c) => c.host_port.clone(),
            None => return,
        };
        let ad = match &arg1[..] {
            b"ad" => true,
            b"unad" => false,
            b"relay-ad" => {
                // [RELAY-13] From a peer relay: applied here, not passed on.
                match super::advert::parse_relay_ads(&arg3) {
                    Ok(list) => {
                        for a in list {
                            if a.ad {
                                // Over the limit: dropped, as a lapsed one would be.
                                let _ = self.advertise(a.service.as_bytes(), &a.host_port, now);
                            } else {
                                self.unadvertise(a.service.as_bytes(), &a.host_port);
                            }
                        }
                        self.json_response(conn, id, tracing, &arg1, "{}");
                    }
                    Err(e) => {
                        let msg = format!("relay: hyperbahn::relay-ad: {e}");
                        self.error_to(conn, id, ErrorCode::BAD_REQUEST, tracing, &msg);
                    }
                }
                return;
            }
            other => {
                let msg = format!(
                    "relay: no such endpoint hyperbahn::{}",
                    String::from_utf8_lossy(other)
                );
                self.error_to(conn, id, ErrorCode::BAD_REQUEST, tracing, &msg);
                return;
            }
        };
        if crate::frame::is_ephemeral(&hp) || crate::frame::parse_host_port(&hp).is_none() {
            let msg = format!(
                "relay: cannot advertise: the connection's host_port {hp:?} is not an address to reach the service at"
            );
            self.error_to(conn, id, ErrorCode::BAD_REQUEST, tracing, &msg);
            return;
        }
        let services = match super::advert::parse_services(&arg3) {
            Ok(s) => s,
            Err(e) => {
                let msg = format!("relay: hyperbahn::{}: {e}", if ad { "ad" } else { "unad" });
                self.error_to(conn, id, ErrorCode::BAD_REQUEST, tracing, &msg);
                return;
            }
        };
        for s in &services {
            if ad {
                if !self.advertise(s.as_bytes(), &hp, now) {
                    let msg = format!(
                        "relay: too many advertisements (at most {})",
                        self.config.max_advertisements
                    );
                    self.error_to(conn, id, ErrorCode::BUSY, tracing, &msg);
                    return;
                }
            } else {
                self.unadvertise(s.as_bytes(), &hp);
            }
            self.advertised
                .push((Bytes::copy_from_slice(s.as_bytes()), hp.clone(), ad));
        }
        if ad {
            // [RELAY-11] Calls to this peer reuse the connection it advertised on.
            let idx = self.peer_idx(&hp);
            let p = &mut self.peers[idx as usize];
            if p.conn.is_none() {
                p.conn = Some(conn);
                p.since = now;
            }
        }
        let count = self.conns.values().filter(|c| c.host_port == hp).count();
        let body = format!("{{\"connectionCount\":{count}}}");
        self.json_response(conn, id, tracing, &arg1, &body);
    }

    /// `Meta::*` for the relay itself (feature `thrift`; without it, bad
    /// request like any unknown method).
    fn answer_meta(
        &mut self,
        conn: ConnId,
        id: u32,
        tracing: Tracing,
        arg1: &[u8],
        arg2: &Bytes,
        arg3: &[u8],
    ) {
        #[cfg(feature = "thrift")]
        {
            let method = String::from_utf8_lossy(arg1).into_owned();
            let answered = crate::scheme::thrift::parse_headers(arg2)
                .and_then(|_| crate::transport::meta::answer(&self.meta, &method, arg3));
            match answered {
                Ok(body) => self.local_response(conn, id, tracing, "thrift", [b"", &[0, 0], &body]),
                Err(e) => self.error_to(conn, id, e.code(), tracing, e.message()),
            }
        }
        #[cfg(not(feature = "thrift"))]
        {
            let _ = (arg2, arg3);
            let msg = format!(
                "relay: no such method {:?} (built without thrift)",
                String::from_utf8_lossy(arg1)
            );
            self.error_to(conn, id, ErrorCode::BAD_REQUEST, tracing, &msg);
        }
    }

    /// The relay's own `Meta` state: draining, stopped.
    #[cfg(feature = "thrift")]
    pub(crate) fn meta(&self) -> &crate::transport::meta::MetaState {
        &self.meta
    }

    /// Answers a call to the relay itself with `as=json`, arg2 `null`.
    fn json_response(&mut self, conn: ConnId, id: u32, tracing: Tracing, arg1: &[u8], body: &str) {
        self.local_response(conn, id, tracing, "json", [arg1, b"null", body.as_bytes()]);
    }

    /// Answers a call to the relay itself: code ok, `as=scheme`, these args.
    fn local_response(
        &mut self,
        conn: ConnId,
        id: u32,
        tracing: Tracing,
        scheme: &str,
        args: [&[u8]; 3],
    ) {
        let headers = TransportHeaders::from_pairs([("as", scheme)]).unwrap_or_default();
        let head = CallHead::Res(ResHead {
            code: ResponseCode::OK,
            tracing,
            headers,
        });
        let mut buf = BytesMut::new();
        let res = encode_message(
            &mut buf,
            id,
            &head,
            ChecksumType::CRC32,
            MAX_FRAME_SIZE,
            args,
        );
        if res.is_ok() {
            self.push_own(conn, buf.freeze());
        }
    }

    // ===== timers =====

    /// When [`RelayCore::handle_timeout`] must next run.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let next = self.timers.peek().map(|Reverse((at, _))| *at);
        self.armed = next;
        next
    }

    /// Times out calls whose ttl ran out: each gets a timeout error, and its
    /// ids are remembered so late frames are dropped ([RELAY-5]).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, key))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let expired = self.calls.get(key).is_some_and(|c| c.deadline <= now);
            if expired && let Some(call) = self.remove_call(key) {
                let msg = format!(
                    "relay: call to {} timed out after {} ms",
                    String::from_utf8_lossy(&call.service),
                    call.ttl
                );
                self.fail_upstream(call, ErrorCode::TIMEOUT, &msg, now, Class::Failure);
            }
        }
        // Lapsed advertisements.
        self.ads.retain(|_, m| {
            m.retain(|(_, until)| *until > now);
            !m.is_empty()
        });
        for c in self.conns.values_mut() {
            c.tombs_in.purge(now);
            c.tombs_out.purge(now);
        }
    }

    fn push_timer(&mut self, at: Instant, key: CallKey) {
        // Entries of finished calls are dropped lazily; rebuild the heap when
        // they outnumber live calls, so it stays proportional to them.
        if self.timers.len() > 1024 && self.timers.len() > 4 * self.calls.len {
            let calls = &self.calls;
            self.timers.retain(|Reverse((_, k))| calls.contains(*k));
        }
        self.timers.push(Reverse((at, key)));
        if self.armed.is_none_or(|a| at < a) {
            self.armed = Some(at);
            self.rearm = true;
        }
    }

    // ===== ending calls =====

    fn remove_call(&mut self, key: CallKey) -> Option<Call> {
        let call = self.calls.remove(key)?;
        if let Some(c) = self.conns.get_mut(&call.src) {
            c.incoming.remove(&call.src_id);
        }
        match call.dst {
            Dst::Sent { conn, id } => {
                if let Some(d) = self.conns.get_mut(&conn) {
                    d.outgoing.remove(&id);
                }
            }
            // The slot is reused: a peer must not keep the key, or its
            // connect would send (or re-route) the slot's next call.
            Dst::Waiting { .. } => {
                if let Some(p) = call.peer.and_then(|i| self.peers.get_mut(i as usize)) {
                    p.waiting.retain(|&k| k != key);
                }
            }
        }
        Some(call)
    }

    /// The call ended with the destination's answer (already forwarded).
    fn finish(
        &mut self,
        call: Call,
        class: Class,
        now: Instant,
        code: Option<ErrorCode>,
        app_error: bool,
    ) {
        self.settle(&call, class, Class::Success, now);
        self.observe(
            &call,
            now,
            match code {
                Some(c) => outcome_of(c),
                None if app_error => "app-error",
                None => "ok",
            },
        );
    }

    /// Breakers and in-flight counts for a call that ended.
    /// `edge` counts for the caller → service::endpoint breaker, `peer` for
    /// the destination's: a peer that answered is healthy whatever it said;
    /// what an endpoint answers opens only that edge ([RELAY-14]).
    fn settle(&mut self, call: &Call, edge: Class, peer: Class, now: Instant) {
        let r: f64 = self.rng.random();
        if let Some(adm) = call.edge_admission {
            self.policy.on_result(call.edge, adm, edge, now, r);
        }
        if let (Some(adm), Some(hp)) = (call.peer_admission, &call.peer)
            && let Some(p) = self.peers.get_mut(*hp as usize)
        {
            p.in_flight = p.in_flight.saturating_sub(1);
            p.breaker.on_result(now, adm, peer, r);
        }
    }

    /// Answers the caller with an error frame and forgets the call; the
    /// destination side (if any) is remembered so late frames are dropped.
    fn fail_upstream(
        &mut self,
        call: Call,
        code: ErrorCode,
        msg: &str,
        now: Instant,
        class: Class,
    ) {
        let peer = if code == ErrorCode::NETWORK {
            Class::Failure
        } else {
            Class::Ignore
        };
        self.fail_upstream_as(call, code, msg, now, class, peer);
    }

    /// [`Self::fail_upstream`] with the peer's class given: a destination
    /// whose write queue is full is slow, which is the peer's failure, not
    /// the edge's.
    fn fail_upstream_as(
        &mut self,
        call: Call,
        code: ErrorCode,
        msg: &str,
        now: Instant,
        class: Class,
        peer: Class,
    ) {
        let _g = call.span.enter();
        tracing::debug!(code = code.name(), msg, "relay call failed");
        drop(_g);
        self.settle(&call, class, peer, now);
        self.error_to(call.src, call.src_id, code, call.tracing, msg);
        self.entomb_in(call.src, call.src_id, now);
        if let Dst::Sent { conn, id } = call.dst {
            self.entomb_out(conn, id, now);
        }
        self.counters.answered_locally += 1;
        self.observe(&call, now, outcome_of(code));
    }

    /// The caller is gone: tell the destination (a cancel) and forget.
    fn abandon_downstream(&mut self, call: Call, why: &str, now: Instant, class: Class) {
        self.cancel_downstream(&call, why, now);
        self.settle(&call, class, class, now);
        self.observe(&call, now, "caller-gone");
    }

    fn cancel_downstream(&mut self, call: &Call, why: &str, now: Instant) {
        if let Dst::Sent { conn, id } = call.dst {
            let cancel = Frame::Cancel(Cancel {
                id,
                ttl: 0,
                tracing: call.tracing,
                why: Bytes::copy_from_slice(why.as_bytes()),
                trailing: Bytes::new(),
            });
            if let Ok(b) = cancel.to_bytes() {
                self.push_own(conn, b);
            }
            self.entomb_out(conn, id, now);
        }
    }

    fn entomb_in(&mut self, conn: ConnId, id: u32, now: Instant) {
        let (ttl, max) = (self.config.tombstone_ttl, self.config.max_tombstones);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.tombs_in.insert(id, now + ttl, max);
        }
    }

    fn entomb_out(&mut self, conn: ConnId, id: u32, now: Instant) {
        let (ttl, max) = (self.config.tombstone_ttl, self.config.max_tombstones);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.tombs_out.insert(id, now + ttl, max);
        }
    }

    // ===== output =====

    fn error_to(&mut self, conn: ConnId, id: u32, code: ErrorCode, tracing: Tracing, msg: &str) {
        let msg = cut(msg, ErrorFrame::MAX_MESSAGE_LEN);
        let frame = Frame::Error(ErrorFrame::new(
            id,
            code,
            tracing,
            Bytes::copy_from_slice(msg.as_bytes()),
        ));
        if let Ok(b) = frame.to_bytes() {
            self.push_own(conn, b);
        }
    }

    /// Queues a frame the relay made. Small frames the relay owes (errors,
    /// pings, cancels) go past the queue limit: they are how the limit is
    /// reported.
    fn push_own(&mut self, conn: ConnId, b: Bytes) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.queued += b.len();
            c.queue.push_back(Out::Own(b));
            if !c.woken {
                c.woken = true;
                self.wakes.push(conn);
            }
        }
    }

    fn push_forward_forced(&mut self, conn: ConnId, f: Forward) {
        if let Some(c) = self.conns.get_mut(&conn) {
            self.counters.frames_forwarded += 1;
            self.counters.bytes_forwarded += f.rest().len() as u64;
            self.counters.bytes_copied += f.head().len() as u64;
            c.queued += f.len();
            c.queue.push_back(Out::Forward(f));
            if !c.woken {
                c.woken = true;
                self.wakes.push(conn);
            }
        }
    }

    /// A protocol violation by the peer on `conn`: a fatal error frame
    /// (0xff), then close.
    pub fn fatal(&mut self, conn: ConnId, msg: &str) {
        let frame = Frame::Error(ErrorFrame::new(
            NO_MESSAGE_ID,
            ErrorCode::PROTOCOL,
            Tracing::default(),
            Bytes::copy_from_slice(msg.as_bytes()),
        ));
        if let Ok(b) = frame.to_bytes() {
            self.push_own(conn, b);
        }
        self.close(conn);
    }

    /// Asks the driver to close `conn` once its queue is written.
    pub fn close(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn)
            && !c.closing
        {
            c.closing = true;
            self.actions.push_back(Action::Close(conn));
        }
    }

    // ===== observability =====

    fn observe(&self, call: &Call, now: Instant, outcome: &'static str) {
        let Some(names) = &call.names else {
            return;
        };
        super::metrics::call(
            names,
            outcome,
            call.bytes_in,
            call.bytes_out,
            now.saturating_duration_since(call.arrived),
        );
    }

    /// A call the relay refused itself; its names are made only when
    /// metrics are on.
    fn observe_local(&self, edge: impl FnOnce() -> EdgeKey, code: ErrorCode) {
        if self.config.metrics {
            super::metrics::call(&edge(), outcome_of(code), 0, 0, Duration::ZERO);
        }
    }
}

fn next_free_id(d: &mut Conn, now: Instant) -> u32 {
    loop {
        let id = d.next_id;
        d.next_id = d.next_id.wrapping_add(1);
        if d.next_id == NO_MESSAGE_ID || d.next_id == 0 {
            d.next_id = 1;
        }
        if !d.outgoing.contains_key(&id) && !d.tombs_out.contains(id, now) {
            return id;
        }
    }
}

fn classify_code(code: u8) -> Class {
    match ErrorCode(code) {
        ErrorCode::TIMEOUT
        | ErrorCode::BUSY
        | ErrorCode::NETWORK
        | ErrorCode::UNEXPECTED
        | ErrorCode::PROTOCOL => Class::Failure,
        _ => Class::Ignore,
    }
}

fn outcome_of(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::TIMEOUT => "timeout",
        ErrorCode::CANCELLED => "cancelled",
        ErrorCode::BUSY => "busy",
        ErrorCode::DECLINED => "declined",
        ErrorCode::UNEXPECTED => "unexpected",
        ErrorCode::BAD_REQUEST => "bad-request",
        ErrorCode::NETWORK => "network",
        ErrorCode::UNHEALTHY => "unhealthy",
        ErrorCode::PROTOCOL => "protocol",
        _ => "error",
    }
}

/// The tracing of a call req that did not parse as relayable, when its
/// fixed fields are there (`flags:1 ttl:4 tracing:25`).
fn tracing_of(header: FrameHeader, payload: &Bytes) -> Tracing {
    match CallReq::decode(header, payload) {
        Ok(req) => req.tracing,
        Err(_) => Tracing::default(),
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
