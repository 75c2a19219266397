//! The relay's tokio driver: a listener, a reader and a writer task per
//! connection, a timer task, all around one [`RelayCore`] behind a mutex.
//!
//! A reader reads as much as the socket has, hands every whole frame to the
//! core under one lock, then wakes the writers of the connections that got
//! frames and yields so they run. A writer writes what is queued for its
//! connection with one vectored write per batch: forwarded frames go out as
//! their rewritten head and the original bytes, never copied.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::Notify;

use super::config::RelayConfig;
use super::core::{Action, ConnId, Out, RelayCore, RelayCounters, RelaySizes};
use crate::codec::FrameCodec;
use crate::frame::{
    ErrorCode, ErrorFrame, Frame, FrameHeader, FrameType, HOST_PORT, Init, InitHeaders,
    NO_MESSAGE_ID, PROCESS_NAME, PROTOCOL_VERSION, TCHANNEL_LANGUAGE, TCHANNEL_LANGUAGE_VERSION,
    TCHANNEL_VERSION, Tracing,
};
use crate::util::{HashMap, now};

/// How long a peer may take to send its init req.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most slices handed to one vectored write (Linux's `IOV_MAX` is 1024):
/// a batch of 64 small frames is two slices each.
const MAX_IOV: usize = 1024;

struct ConnIo {
    write: Notify,
    stop: Notify,
    closing: AtomicBool,
}

struct Inner {
    core: Mutex<RelayCore>,
    conns: Mutex<HashMap<ConnId, Arc<ConnIo>>>,
    timer: Notify,
    stopped: AtomicBool,
    stop: Notify,
    process_name: String,
    /// Peer relays told of every advertisement received here, and the
    /// channel that calls them.
    peer_relays: Mutex<Vec<String>>,
    fanout: crate::Channel,
    fanout_clients: Mutex<HashMap<String, crate::Client>>,
    /// Accepted connections still in their handshake: they count against
    /// `max_connections` too ([RELAY-9]).
    handshaking: AtomicUsize,
}

/// A running relay: accepts connections, forwards calls by service name,
/// answers `hyperbahn::ad`/`unad` (`spec/12-relay.md`).
///
/// Cheap to clone; every clone is the same relay.
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// Listens on `addr` and starts relaying on the current tokio runtime.
    /// The relay's `host_port` becomes the bound address.
    pub async fn bind(addr: impl ToSocketAddrs, mut config: RelayConfig) -> io::Result<Relay> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        config.host_port = local.to_string();
        let inner = Arc::new(Inner {
            core: Mutex::new(RelayCore::new(config)),
            conns: Mutex::new(HashMap::default()),
            timer: Notify::new(),
            stopped: AtomicBool::new(false),
            stop: Notify::new(),
            process_name: format!("tchan-relay[{}]", std::process::id()),
            peer_relays: Mutex::new(Vec::new()),
            fanout: crate::Channel::new("tchan-relay"),
            fanout_clients: Mutex::new(HashMap::default()),
            handshaking: AtomicUsize::new(0),
        });
        let relay = Relay { inner, addr: local };
        tokio::spawn(relay.clone().accept_loop(listener));
        tokio::spawn(relay.clone().timer_loop());
        Ok(relay)
    }

    /// The address the relay listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs `f` on the core (to set routes, the edge policy, or read its
    /// state), then carries out what it asked for.
    pub fn with_core<R>(&self, f: impl FnOnce(&mut RelayCore) -> R) -> R {
        let mut core = self.lock();
        let r = f(&mut core);
        self.effects(core);
        r
    }

    /// Sizes of the core's tables.
    pub fn sizes(&self) -> RelaySizes {
        self.lock().sizes()
    }

    /// The core's counters.
    pub fn counters(&self) -> RelayCounters {
        self.lock().counters()
    }

    /// Stops accepting, waits up to `timeout` for the calls in flight to
    /// end, then closes every connection.
    pub async fn drain(&self, timeout: Duration) {
        #[cfg(feature = "thrift")]
        self.lock().meta().draining();
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.stop.notify_waiters();
        let deadline = tokio::time::Instant::now() + timeout;
        while self.lock().sizes().calls > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.close();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while self.lock().sizes().connections > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Closes every connection now (calls in flight end as on a disconnect).
    pub fn close(&self) {
        #[cfg(feature = "thrift")]
        self.lock().meta().stopped();
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.stop.notify_waiters();
        let conns: Vec<Arc<ConnIo>> = self.conns().values().cloned().collect();
        for io in conns {
            io.closing.store(true, Ordering::SeqCst);
            io.stop.notify_one();
            io.write.notify_one();
        }
    }

    fn lock(&self) -> MutexGuard<'_, RelayCore> {
        self.inner.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<ConnId, Arc<ConnIo>>> {
        self.inner.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes writers, starts dials and closes, re-arms the timer: what the
    /// core asked for while `core` was held.
    fn effects(&self, mut core: MutexGuard<'_, RelayCore>) {
        let mut wakes = Vec::new();
        core.take_wakes(&mut wakes);
        let mut actions = Vec::new();
        while let Some(a) = core.poll_action() {
            actions.push(a);
        }
        let rearm = core.take_rearm();
        let adverts = core.take_advertised();
        let connect_timeout = core.config().connect_timeout;
        drop(core);
        if rearm {
            self.inner.timer.notify_one();
        }
        if !wakes.is_empty() || actions.iter().any(|a| matches!(a, Action::Close(_))) {
            let conns = self.conns();
            for w in wakes {
                if let Some(io) = conns.get(&w) {
                    io.write.notify_one();
                }
            }
            for a in &actions {
                if let Action::Close(c) = a
                    && let Some(io) = conns.get(c)
                {
                    io.closing.store(true, Ordering::SeqCst);
                    io.write.notify_one();
                }
            }
        }
        if !adverts.is_empty() {
            self.tell_peer_relays(adverts);
        }
        for a in actions {
            if let Action::Dial(hp) = a {
                tokio::spawn(self.clone().dial(hp, connect_timeout));
            }
        }
    }

    /// Shares every advertisement received here with the relay at `addr`
    /// (`hyperbahn::relay-ad`, [RELAY-13]).
    pub fn add_peer_relay(&self, addr: String) {
        self.inner
            .peer_relays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(addr);
    }

    fn tell_peer_relays(&self, adverts: Vec<(Bytes, String, bool)>) {
        let peers = self
            .inner
            .peer_relays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if peers.is_empty() {
            return;
        }
        let ads: Vec<super::advert::RelayAd> = adverts
            .into_iter()
            .map(|(s, hp, ad)| super::advert::RelayAd {
                service: String::from_utf8_lossy(&s).into_owned(),
                host_port: hp,
                ad,
            })
            .collect();
        let body = super::advert::relay_ads_body(&ads);
        let this = self.clone();
        tokio::spawn(async move {
            for peer in peers {
                let r = async {
                    let cached = this
                        .inner
                        .fanout_clients
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(&peer)
                        .filter(|c| c.accepts_new_calls())
                        .cloned();
                    let client = match cached {
                        Some(c) => c,
                        None => {
                            let c = this.inner.fanout.connect(peer.as_str()).await?;
                            this.inner
                                .fanout_clients
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(peer.clone(), c.clone());
                            c
                        }
                    };
                    client
                        .call(
                            crate::CallRequest::new(super::HYPERBAHN_SERVICE, "relay-ad")
                                .scheme(crate::frame::ArgScheme::Json)
                                .arg2("null")
                                .arg3(body.clone())
                                .timeout(Duration::from_secs(2)),
                        )
                        .await
                };
                if let Err(e) = r.await {
                    tracing::warn!(peer, error = %e, "relay: cannot tell a peer relay of advertisements");
                }
            }
        });
    }

    async fn accept_loop(self, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = self.inner.stop.notified() => return,
            };
            if self.inner.stopped.load(Ordering::SeqCst) {
                return;
            }
            match accepted {
                Ok((sock, _)) => {
                    let max = self.lock().config().max_connections;
                    let handshaking = self.inner.handshaking.load(Ordering::SeqCst);
                    if self.conns().len() + handshaking >= max {
                        tracing::warn!("relay: too many connections; closing");
                        drop(sock);
                        continue;
                    }
                    let _ = sock.set_nodelay(true);
                    self.inner.handshaking.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(self.clone().accept_one(sock));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "relay: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    async fn accept_one(self, mut sock: TcpStream) {
        let hp = self.lock().config().host_port.clone();
        let r = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            handshake_acceptor(&mut sock, &hp, &self.inner.process_name),
        )
        .await;
        match r {
            Ok(Ok((peer_hp, buf))) => self.start_conn(sock, buf, &peer_hp, None),
            Ok(Err(e)) => tracing::debug!(error = %e, "relay: handshake failed"),
            Err(_) => tracing::debug!("relay: handshake timed out"),
        }
        // Counted from here as a connection (or not at all).
        self.inner.handshaking.fetch_sub(1, Ordering::SeqCst);
    }

    async fn dial(self, hp: String, timeout: Duration) {
        let own = self.lock().config().host_port.clone();
        let r = tokio::time::timeout(timeout, async {
            let mut sock = TcpStream::connect(hp.as_str()).await?;
            let _ = sock.set_nodelay(true);
            let buf = handshake_initiator(&mut sock, &own, &self.inner.process_name).await?;
            Ok::<_, io::Error>((sock, buf))
        })
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")));
        match r {
            Ok((sock, buf)) => self.start_conn(sock, buf, &hp, Some(&hp)),
            Err(e) => {
                let mut core = self.lock();
                core.on_connect_failed(&hp, &e.to_string(), now());
                self.effects(core);
            }
        }
    }

    fn start_conn(&self, sock: TcpStream, buf: BytesMut, host_port: &str, dialled: Option<&str>) {
        let io = Arc::new(ConnIo {
            write: Notify::new(),
            stop: Notify::new(),
            closing: AtomicBool::new(false),
        });
        let mut core = self.lock();
        let id = core.add_connection(host_port);
        self.conns().insert(id, io.clone());
        if let Some(peer) = dialled {
            core.on_connected(peer, id, now());
        }
        let max_frame = crate::frame::MAX_FRAME_SIZE;
        drop(core);
        let (rd, wr) = sock.into_split();
        tokio::spawn(self.clone().writer(id, io.clone(), wr));
        tokio::spawn(self.clone().reader(id, io, rd, buf, max_frame));
        // Frames may have been queued for this connection already.
        let core = self.lock();
        self.effects(core);
    }

    async fn reader(
        self,
        id: ConnId,
        io: Arc<ConnIo>,
        mut rd: OwnedReadHalf,
        mut buf: BytesMut,
        max_frame: usize,
    ) {
        let mut codec = FrameCodec::with_max_frame_size(max_frame);
        let mut last_read = 0;
        let reason = 'read: loop {
            // Frames already buffered (after the handshake, or a full read).
            if !buf.is_empty() {
                if let Err(e) = self.process(id, &mut codec, &mut buf) {
                    tracing::debug!(conn = id, error = %e, "relay: undecodable frame from peer");
                    break 'read "undecodable frame";
                }
                // After a big read more is likely waiting: let the writers
                // drain what this one queued before reading on, so a fast
                // sender does not fill a destination's queue in one go.
                if last_read >= 32 * 1024 {
                    tokio::task::yield_now().await;
                }
            }
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(64 * 1024);
            }
            let n = tokio::select! {
                r = rd.read_buf(&mut buf) => r,
                _ = io.stop.notified() => break 'read "closed",
            };
            match n {
                Ok(0) => break 'read "eof",
                Ok(n) => last_read = n,
                Err(_) => break 'read "read error",
            }
        };
        tracing::debug!(conn = id, reason, "relay: connection closed");
        io.closing.store(true, Ordering::SeqCst);
        io.write.notify_one();
        if reason == "undecodable frame" {
            // Let the writer send the fatal error frame first.
            let _ = tokio::time::timeout(Duration::from_secs(1), io.stop.notified()).await;
        }
        let mut core = self.lock();
        core.on_closed(id, now());
        self.conns().remove(&id);
        self.effects(core);
    }

    /// Hands every whole frame in `buf` to the core, under one lock.
    fn process(
        &self,
        id: ConnId,
        codec: &mut FrameCodec,
        buf: &mut BytesMut,
    ) -> Result<(), String> {
        let t = now();
        let mut core = self.lock();
        let r = loop {
            match codec.split_frame(buf) {
                Ok(Some((h, p))) => core.on_frame(id, h, p, t),
                Ok(None) => break Ok(()),
                Err(e) => {
                    // [RELAY-4] A stream that does not frame: a fatal error
                    // frame, then close.
                    core.fatal(id, &format!("undecodable frame: {e}"));
                    break Err(e.to_string());
                }
            }
        };
        self.effects(core);
        r
    }

    async fn writer(self, id: ConnId, io: Arc<ConnIo>, mut wr: OwnedWriteHalf) {
        let mut q: VecDeque<Out> = VecDeque::new();
        loop {
            let alive = self.lock().swap_output(id, &mut q);
            if q.is_empty() {
                if !alive || io.closing.load(Ordering::SeqCst) {
                    break;
                }
                io.write.notified().await;
                continue;
            }
            let bytes: usize = q.iter().map(Out::len).sum();
            let r = write_outs(&mut wr, &q).await;
            q.clear();
            if r.is_err() {
                break;
            }
            self.lock().on_written(id, bytes);
        }
        let _ = wr.shutdown().await;
        io.stop.notify_one();
    }

    async fn timer_loop(self) {
        loop {
            let next = self.lock().poll_timeout();
            let tick = tokio::time::Instant::now() + Duration::from_secs(1);
            let at = next
                .map(|n| tokio::time::Instant::from_std(n).min(tick))
                .unwrap_or(tick);
            tokio::select! {
                _ = tokio::time::sleep_until(at) => {
                    let mut core = self.lock();
                    core.handle_timeout(now());
                    self.effects(core);
                }
                _ = self.inner.timer.notified() => {}
                _ = self.inner.stop.notified(), if self.inner.stopped.load(Ordering::SeqCst) => {}
            }
            if self.inner.stopped.load(Ordering::SeqCst) && self.lock().sizes().connections == 0 {
                return;
            }
        }
    }
}

/// Writes every queued frame, vectored, `MAX_IOV` slices at a time: the
/// rewritten heads and the original bytes, without copying either.
async fn write_outs(wr: &mut OwnedWriteHalf, q: &VecDeque<Out>) -> io::Result<()> {
    // Position: frame, part of it (head or rest), offset in the part.
    let mut pos = (0usize, 0usize, 0usize);
    loop {
        let mut iov: Vec<IoSlice<'_>> = Vec::with_capacity((2 * q.len()).min(MAX_IOV));
        let (mut i, mut part, mut off) = pos;
        while i < q.len() && iov.len() < MAX_IOV {
            let parts = q[i].parts();
            while part < 2 && iov.len() < MAX_IOV {
                let s = &parts[part][off..];
                off = 0;
                if !s.is_empty() {
                    iov.push(IoSlice::new(s));
                }
                part += 1;
            }
            if part == 2 {
                part = 0;
                i += 1;
            }
        }
        if iov.is_empty() {
            return Ok(());
        }
        let mut written = wr.write_vectored(&iov).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let (mut i, mut part, mut off) = pos;
        while written > 0 && i < q.len() {
            let len = q[i].parts()[part].len();
            let rem = len - off;
            if written >= rem {
                written -= rem;
                off = 0;
                part += 1;
                if part == 2 {
                    part = 0;
                    i += 1;
                }
            } else {
                off += written;
                written = 0;
            }
        }
        pos = (i, part, off);
    }
}

fn init_headers(host_port: &str, process_name: &str) -> InitHeaders {
    InitHeaders::from_pairs([
        (HOST_PORT, host_port),
        (PROCESS_NAME, process_name),
        (TCHANNEL_LANGUAGE, "rust"),
        (
            TCHANNEL_LANGUAGE_VERSION,
            option_env!("CARGO_PKG_RUST_VERSION").unwrap_or("stable"),
        ),
        (TCHANNEL_VERSION, env!("CARGO_PKG_VERSION")),
    ])
    .unwrap_or_default()
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads one frame, whole, off `sock` into `buf`.
async fn read_frame(sock: &mut TcpStream, buf: &mut BytesMut) -> io::Result<(FrameHeader, Bytes)> {
    let mut codec = FrameCodec::new();
    loop {
        if let Some(f) = codec.split_frame(buf).map_err(|e| bad(e.to_string()))? {
            return Ok(f);
        }
        buf.reserve(4096);
        if sock.read_buf(buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

async fn write_frame(sock: &mut TcpStream, frame: Frame) -> io::Result<()> {
    let b = frame.to_bytes().map_err(|e| bad(e.to_string()))?;
    sock.write_all(&b).await
}

/// The acceptor's half of the handshake: the peer's `host_port` and the
/// bytes read past its init req.
async fn handshake_acceptor(
    sock: &mut TcpStream,
    host_port: &str,
    process_name: &str,
) -> io::Result<(String, BytesMut)> {
    let mut buf = BytesMut::with_capacity(4096);
    let (h, p) = read_frame(sock, &mut buf).await?;
    let fail = |id: u32, msg: String| {
        Frame::Error(ErrorFrame::new(
            id,
            ErrorCode::PROTOCOL,
            Tracing::default(),
            Bytes::from(msg),
        ))
    };
    if h.frame_type != FrameType::INIT_REQ {
        let msg = format!("expected init req, got a frame of type {}", h.frame_type);
        let _ = write_frame(sock, fail(NO_MESSAGE_ID, msg.clone())).await;
        return Err(bad(msg));
    }
    let init = Init::decode(h, &p).map_err(|e| bad(e.to_string()))?;
    if init.version < PROTOCOL_VERSION {
        let msg = format!("unsupported protocol version {}", init.version);
        let _ = write_frame(sock, fail(init.id, msg.clone())).await;
        return Err(bad(msg));
    }
    if let Some(missing) = init.missing_required_header() {
        let msg = format!("init req lacks {missing}");
        let _ = write_frame(sock, fail(init.id, msg.clone())).await;
        return Err(bad(msg));
    }
    let peer_hp =
        String::from_utf8_lossy(init.headers.get(HOST_PORT.as_bytes()).unwrap_or_default())
            .into_owned();
    let res = Init {
        id: init.id,
        version: PROTOCOL_VERSION,
        headers: init_headers(host_port, process_name),
        trailing: Bytes::new(),
    };
    write_frame(sock, Frame::InitRes(res)).await?;
    Ok((peer_hp, buf))
}

/// The initiator's half: sends init req, waits for init res.
async fn handshake_initiator(
    sock: &mut TcpStream,
    host_port: &str,
    process_name: &str,
) -> io::Result<BytesMut> {
    let req = Init {
        id: 1,
        version: PROTOCOL_VERSION,
        headers: init_headers(host_port, process_name),
        trailing: Bytes::new(),
    };
    write_frame(sock, Frame::InitReq(req)).await?;
    let mut buf = BytesMut::with_capacity(4096);
    let (h, p) = read_frame(sock, &mut buf).await?;
    match h.frame_type {
        FrameType::INIT_RES => {
            let init = Init::decode(h, &p).map_err(|e| bad(e.to_string()))?;
            if init.version != PROTOCOL_VERSION {
                return Err(bad(format!("init res with version {}", init.version)));
            }
            Ok(buf)
        }
        FrameType::ERROR => Err(bad("the peer refused the handshake")),
        t => Err(bad(format!("expected init res, got a frame of type {t}"))),
    }
}
