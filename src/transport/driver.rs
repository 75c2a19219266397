//! The connection driver: one future per connection that reads, runs the
//! protocol core, polls handlers in place and writes, all on one task.
//!
//! Each turn reads what the socket has (one read), hands every whole frame to
//! the core under one lock, dispatches the resulting events (handlers become
//! futures in this driver's own set, not spawned tasks), polls those futures,
//! fires timers, and writes everything queued in one write. Callers on other
//! tasks encode their frames straight into the core's output buffer and wake
//! the driver.

type HashMap<K, V> = foldhash::HashMap<K, V>;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, oneshot};
use tokio::time::Sleep;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::body::{ArgSender, Body, arg_stream};
use super::client::{CallResponse, StreamingResponse};
use super::handler::{HandlerResult, Lookup, Registered, Registry, Request};
use super::observe;
use crate::codec::{CodecError, FrameCodec};
use crate::frame::{
    ArgChunk, ArgCollector, ErrorCode, FrameChunks, ResponseCode, Tracing, TransportHeaders,
};
use crate::proto::{CallError, CloseReason, Connection, Event, PeerInfo, ResponseStart};

/// What a handler's outbound calls inherit from the inbound call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallContext {
    pub(crate) tracing: Tracing,
    pub(crate) deadline: Instant,
}

tokio::task_local! {
    /// The inbound call whose handler is running.
    pub(crate) static CURRENT_CALL: CallContext;
}

/// The clock the transport feeds the core (tokio's, so paused-time tests work).
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Transport limits.
#[derive(Debug, Clone)]
pub(crate) struct DriverConfig {
    pub(crate) read_timeout: Duration,
    pub(crate) max_write_queue: usize,
    pub(crate) metrics: bool,
}

/// State shared between the driver and the handles that make calls on it.
pub(crate) struct Shared {
    pub(crate) state: Mutex<ConnState>,
    pub(crate) waker: AtomicWaker,
    /// Woken when the write queue drains below its limit.
    pub(crate) space: Notify,
    /// Bytes accepted by the driver and not yet written.
    pub(crate) queued: AtomicUsize,
    pub(crate) config: DriverConfig,
    pub(crate) registry: Arc<Registry>,
    pub(crate) peer_addr: Option<SocketAddr>,
    pub(crate) finished: AtomicBool,
    pub(crate) finished_notify: Notify,
    /// Metric handles: (outbound, inbound).
    metrics: Mutex<(observe::MetricsCache, observe::MetricsCache)>,
    /// Header sets used on most calls, built once: by a key of their fields.
    headers: Mutex<Vec<(Bytes, TransportHeaders)>>,
}

pub(crate) struct ConnState {
    pub(crate) conn: Connection,
    pub(crate) waiters: HashMap<u32, Waiter>,
    pub(crate) inbound: HashMap<u32, Inbound>,
    pub(crate) ready: Vec<oneshot::Sender<Result<PeerInfo, CallError>>>,
    pub(crate) pongs: HashMap<u32, oneshot::Sender<()>>,
    pub(crate) closed: Option<CloseReason>,
}

/// Where a response goes: whole to `call`, or head first then arg3 as a
/// stream to `call_streaming`.
pub(crate) enum Reply {
    Whole(oneshot::Sender<Result<CallResponse, CallError>>),
    Streaming(oneshot::Sender<Result<StreamingResponse, CallError>>),
    /// The head was delivered; arg3 chunks go here.
    Streamed(ArgSender),
}

/// A caller waiting for the response to one of its calls.
pub(crate) struct Waiter {
    pub(crate) reply: Reply,
    pub(crate) head: Option<(ResponseCode, TransportHeaders, Tracing)>,
    pub(crate) args: ArgCollector,
    arg2_done: bool,
}

impl Waiter {
    pub(crate) fn new(reply: Reply) -> Waiter {
        Waiter {
            reply,
            head: None,
            args: ArgCollector::new(),
            arg2_done: false,
        }
    }

    fn fail(self, e: CallError) {
        match self.reply {
            Reply::Whole(tx) => {
                let _ = tx.send(Err(e));
            }
            Reply::Streaming(tx) => {
                let _ = tx.send(Err(e));
            }
            Reply::Streamed(s) => s.fail(e),
        }
    }
}

/// An inbound call on its way to (or in) its handler.
pub(crate) struct Inbound {
    service: Bytes,
    headers: TransportHeaders,
    tracing: Tracing,
    deadline: Instant,
    args: ArgCollector,
    arg1_done: bool,
    arg2_done: bool,
    handler: Option<Registered>,
    stream: Option<ArgSender>,
    cancel: CancellationToken,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn new(
        conn: Connection,
        config: DriverConfig,
        registry: Arc<Registry>,
        peer_addr: Option<SocketAddr>,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(ConnState {
                conn,
                waiters: HashMap::default(),
                inbound: HashMap::default(),
                ready: Vec::new(),
                pongs: HashMap::default(),
                closed: None,
            }),
            waker: AtomicWaker::new(),
            space: Notify::new(),
            queued: AtomicUsize::new(0),
            config,
            registry,
            peer_addr,
            finished: AtomicBool::new(false),
            finished_notify: Notify::new(),
            metrics: Mutex::new(Default::default()),
            headers: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn metrics_lock(
        &self,
    ) -> MutexGuard<'_, (observe::MetricsCache, observe::MetricsCache)> {
        self.metrics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `peer` label: the peer's `host_port`, or its socket address when
    /// it does not listen.
    pub(crate) fn peer_label(&self, host_port: &str) -> String {
        if host_port.is_empty() || crate::frame::is_ephemeral(host_port) {
            self.peer_addr
                .map(|a| a.to_string())
                .unwrap_or_else(|| host_port.to_string())
        } else {
            host_port.to_string()
        }
    }

    /// A cached header set for `key`, built with `build` the first time (a
    /// few entries at most: caller and scheme combinations).
    pub(crate) fn header_cache(
        &self,
        key: &[u8],
        build: impl FnOnce() -> Result<TransportHeaders, crate::frame::EncodeError>,
    ) -> Result<TransportHeaders, crate::frame::EncodeError> {
        let mut cache = self.headers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, h)) = cache.iter().find(|(k, _)| k == key) {
            return Ok(h.clone());
        }
        let h = build()?;
        if cache.len() < 16 {
            cache.push((Bytes::copy_from_slice(key), h.clone()));
        }
        Ok(h)
    }

    /// True when the write queue is over its limit.
    pub(crate) fn write_queue_full(&self, st: &ConnState) -> bool {
        self.queued.load(Ordering::Relaxed) + st.conn.transmit_len() > self.config.max_write_queue
    }

    /// Waits until the driver has finished (socket closed).
    pub(crate) async fn wait_finished(&self) {
        loop {
            let n = self.finished_notify.notified();
            if self.finished.load(Ordering::Acquire) {
                return;
            }
            n.await;
        }
    }
}

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Drives one connection until it closes.
pub(crate) struct Driver<S> {
    io: S,
    shared: Arc<Shared>,
    codec: FrameCodec,
    rbuf: BytesMut,
    wbuf: BytesMut,
    tasks: FuturesUnordered<Task>,
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
    read_closed: bool,
    partial_since: Option<Instant>,
    /// Since when writing has made no progress while bytes wait.
    write_stalled_since: Option<Instant>,
    stall_started: bool,
    /// Give up flushing: the peer does not read.
    abandon_writes: bool,
    jobs: Vec<Job>,
}

/// Work found while the state lock was held, done after releasing it.
enum Job {
    Dispatch(u32, Registered, Request),
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Driver<S> {
    pub(crate) fn new(io: S, shared: Arc<Shared>) -> Driver<S> {
        // [FRAME-6] accept every legal frame size, whatever we send ourselves.
        let codec = FrameCodec::new();
        Driver {
            io,
            shared,
            codec,
            rbuf: BytesMut::with_capacity(64 * 1024),
            wbuf: BytesMut::new(),
            tasks: FuturesUnordered::new(),
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
            timer_at: None,
            read_closed: false,
            partial_since: None,
            write_stalled_since: None,
            stall_started: false,
            abandon_writes: false,
            jobs: Vec::new(),
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> bool {
        if self.read_closed {
            return false;
        }
        // Reading goes on while our callers wait for a full write queue: if
        // both peers stopped reading as soon as their writes blocked, neither
        // would drain. Only far past the limit (bytes our callers did not
        // add: answers to the peer's requests and pings) does reading pause,
        // so a peer that never reads cannot grow our buffers without bound;
        // if it still reads nothing for `read_timeout`, the connection closes.
        if self.paused() {
            return false;
        }
        if self.rbuf.capacity() - self.rbuf.len() < 8 * 1024 {
            self.rbuf.reserve(64 * 1024);
        }
        let res = tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf);
        let n = match res {
            Poll::Pending => return false,
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => {
                self.read_closed = true;
                self.shared.lock().conn.transport_closed(e.to_string());
                return true;
            }
        };
        let now = now();
        let mut st = self.shared.lock();
        if n == 0 {
            self.read_closed = true;
            st.conn.transport_closed("peer closed the connection");
            return true;
        }
        loop {
            match self.codec.decode(&mut self.rbuf) {
                Ok(Some(frame)) => st.conn.handle_frame(now, frame),
                Ok(None) => break,
                Err(CodecError::Decode(e)) => {
                    st.conn.handle_decode_error(&e);
                    self.read_closed = true;
                    break;
                }
                Err(e) => {
                    st.conn.transport_closed(e.to_string());
                    self.read_closed = true;
                    break;
                }
            }
        }
        self.partial_since = if self.rbuf.is_empty() {
            None
        } else {
            Some(self.partial_since.unwrap_or(now))
        };
        true
    }

    fn process_events(&mut self) -> bool {
        let mut any = false;
        let mut st = self.shared.lock();
        let st = &mut *st;
        while let Some(ev) = st.conn.poll_event() {
            any = true;
            handle_event(&self.shared, st, ev, &mut self.jobs);
        }
        any
    }

    fn run_jobs(&mut self) {
        for job in self.jobs.drain(..) {
            match job {
                Job::Dispatch(id, registered, req) => {
                    let ctx = CallContext {
                        tracing: req.tracing,
                        deadline: req.deadline,
                    };
                    let cancel = req.cancel.clone();
                    let scheme = req.headers.get_bytes(b"as");
                    let metrics = self.shared.config.metrics.then(|| {
                        let peer = || self.shared.peer_label(&req.peer);
                        let mut cache = self.shared.metrics_lock();
                        cache.1.get(false, &req.service, &req.method, peer)
                    });
                    if let Some(m) = &metrics {
                        m.started();
                    }
                    let span = tracing::debug_span!(
                        "inbound call",
                        service = %String::from_utf8_lossy(&req.service),
                        method = %String::from_utf8_lossy(&req.method),
                        peer = %req.peer,
                        id,
                    );
                    let start = std::time::Instant::now();
                    let fut = registered.handler.call(req);
                    let shared = self.shared.clone();
                    let task = async move {
                        let res = tokio::select! {
                            biased;
                            _ = cancel.cancelled() => return,
                            r = CURRENT_CALL.scope(ctx, fut) => r,
                        };
                        if let Some(m) = &metrics {
                            m.done(res.as_ref().map(|r| r.code), start.elapsed());
                        }
                        respond(&shared, id, res, scheme, &cancel).await;
                    };
                    if span.is_disabled() {
                        self.tasks.push(Box::pin(task));
                    } else {
                        self.tasks.push(Box::pin(task.instrument(span)));
                    }
                }
            }
        }
    }

    /// True when so much waits to be written that reading stops.
    fn paused(&self) -> bool {
        self.shared.queued.load(Ordering::Relaxed)
            > self.shared.config.max_write_queue.saturating_mul(4)
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let now = now();
        let mut st = self.shared.lock();
        let read_deadline = self
            .partial_since
            .map(|t| t + self.shared.config.read_timeout);
        if read_deadline.is_some_and(|d| d <= now) {
            self.partial_since = None;
            st.conn
                .transport_closed("read timeout: peer stalled in the middle of a frame");
            return true;
        }
        // Writing may stall for long only when it matters: while reading is
        // paused, or while a closed connection flushes its last frames.
        let write_deadline = self
            .write_stalled_since
            .filter(|_| self.paused() || st.conn.is_closed())
            .map(|t| t + self.shared.config.read_timeout);
        if write_deadline.is_some_and(|d| d <= now) {
            self.write_stalled_since = None;
            self.abandon_writes = true;
            st.conn
                .transport_closed("write timeout: the peer stopped reading");
            return true;
        }
        let next = [st.conn.poll_timeout(), read_deadline, write_deadline]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(at) if at <= now => {
                st.conn.handle_timeout(now);
                true
            }
            Some(at) => {
                drop(st);
                if self.timer_at != Some(at) {
                    self.timer_at = Some(at);
                    self.timer
                        .as_mut()
                        .reset(tokio::time::Instant::from_std(at));
                }
                if self.timer.as_mut().poll(cx).is_ready() {
                    self.timer_at = None;
                    return true;
                }
                false
            }
            None => false,
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        {
            let mut st = self.shared.lock();
            st.conn.transmit_into(&mut self.wbuf);
        }
        let before = self.wbuf.len();
        while !self.wbuf.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &self.wbuf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(())),
                Poll::Ready(Ok(n)) => self.wbuf.advance(n),
                Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                Poll::Pending => break,
            }
        }
        let wrote = self.wbuf.len() < before;
        let stalled = match (self.wbuf.is_empty(), wrote) {
            (true, _) | (false, true) => None,
            (false, false) => Some(self.write_stalled_since.unwrap_or_else(now)),
        };
        // A stall that just started must arm the timer: go round once more.
        self.stall_started = stalled.is_some() && self.write_stalled_since.is_none();
        self.write_stalled_since = stalled;
        if wrote && self.wbuf.is_empty() {
            let _ = Pin::new(&mut self.io).poll_flush(cx);
        }
        let queued = self.wbuf.len();
        let prev = self.shared.queued.swap(queued, Ordering::Relaxed);
        let limit = self.shared.config.max_write_queue;
        if prev > limit / 2 && queued <= limit / 2 {
            self.shared.space.notify_waiters();
        }
        if self.wbuf.is_empty() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Future for Driver<S> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.shared.waker.register(cx.waker());
        loop {
            let mut progress = this.poll_read(cx);
            progress |= this.process_events();
            if !this.jobs.is_empty() {
                this.run_jobs();
                progress = true;
            }
            while let Poll::Ready(Some(())) = this.tasks.poll_next_unpin(cx) {
                progress = true;
            }
            progress |= this.poll_timer(cx);
            progress |= this.process_events();
            let write = this.poll_write(cx);
            if let Poll::Ready(Err(())) = write {
                this.wbuf.clear();
                this.shared.lock().conn.transport_closed("write failed");
                this.read_closed = true;
                continue;
            }
            progress |= std::mem::take(&mut this.stall_started);
            let closed = this.shared.lock().conn.is_closed();
            if closed && this.jobs.is_empty() {
                // Drain the last events (failures to every waiter), then flush
                // what is queued (a final error frame), then shut down.
                if this.process_events() {
                    continue;
                }
                if write.is_pending() && !this.abandon_writes {
                    // Flush the last frames; the write timer bounds the wait.
                    if this.poll_timer(cx) {
                        continue;
                    }
                    return Poll::Pending;
                }
                this.wbuf.clear();
                let _ = Pin::new(&mut this.io).poll_shutdown(cx);
                this.tasks = FuturesUnordered::new();
                this.shared.finished.store(true, Ordering::Release);
                this.shared.finished_notify.notify_waiters();
                this.shared.space.notify_waiters();
                return Poll::Ready(());
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }
}

fn handle_event(shared: &Shared, st: &mut ConnState, ev: Event, jobs: &mut Vec<Job>) {
    match ev {
        Event::Ready(info) => {
            for tx in st.ready.drain(..) {
                let _ = tx.send(Ok(info.clone()));
            }
        }
        Event::Request(start) => {
            let inbound = Inbound {
                service: start.service,
                headers: start.headers,
                tracing: start.tracing,
                deadline: start.deadline,
                args: ArgCollector::new(),
                arg1_done: false,
                arg2_done: false,
                handler: None,
                stream: None,
                cancel: CancellationToken::new(),
            };
            st.inbound.insert(start.id, inbound);
            feed_inbound(shared, st, start.id, &start.chunks, jobs);
        }
        Event::RequestContinue { id, chunks } => feed_inbound(shared, st, id, &chunks, jobs),
        Event::RequestCancelled { id } => abort_inbound(
            st,
            id,
            CallError::remote(ErrorCode::CANCELLED, "cancelled by the caller"),
        ),
        Event::RequestAborted { id, error } => abort_inbound(st, id, error),
        Event::Response(ResponseStart {
            id,
            code,
            headers,
            tracing,
            chunks,
        }) => {
            if let Some(w) = st.waiters.get_mut(&id) {
                w.head = Some((code, headers, tracing));
            }
            feed_response(st, id, &chunks);
        }
        Event::ResponseContinue { id, chunks } => feed_response(st, id, &chunks),
        Event::CallFailed { id, error } => {
            if let Some(w) = st.waiters.remove(&id) {
                w.fail(error);
            }
        }
        Event::Pong { id } => {
            if let Some(tx) = st.pongs.remove(&id) {
                let _ = tx.send(());
            }
        }
        Event::PeerDraining(e) => {
            tracing::debug!(error = %e, "peer asked for no new calls");
        }
        Event::Closed(reason) => {
            tracing::debug!(%reason, "connection closed");
            let err = CallError::local(ErrorCode::NETWORK, format!("connection closed: {reason}"));
            for tx in st.ready.drain(..) {
                let _ = tx.send(Err(err.clone()));
            }
            for (_, w) in st.waiters.drain() {
                w.fail(err.clone());
            }
            for (_, inb) in st.inbound.drain() {
                inb.cancel.cancel();
                if let Some(s) = inb.stream {
                    s.fail(err.clone());
                }
            }
            st.pongs.clear();
            st.closed = Some(reason);
            shared.space.notify_waiters();
        }
    }
}

fn abort_inbound(st: &mut ConnState, id: u32, error: CallError) {
    if let Some(inb) = st.inbound.remove(&id) {
        inb.cancel.cancel();
        if let Some(s) = inb.stream {
            s.fail(error);
        }
    }
}

fn feed_response(st: &mut ConnState, id: u32, chunks: &FrameChunks) {
    let Some(w) = st.waiters.get_mut(&id) else {
        return;
    };
    let complete = chunks.message_complete();
    for c in chunks.iter() {
        if c.index > 1 || (c.index == 1 && c.ends_arg) {
            w.arg2_done = true;
        }
        match &w.reply {
            Reply::Streamed(s) if c.index == 2 => s.push(c.data),
            _ => w.args.push(c),
        }
    }
    let streaming = matches!(w.reply, Reply::Streaming(_));
    if !(complete || streaming && w.arg2_done) {
        return;
    }
    let Some(mut w) = st.waiters.remove(&id) else {
        return;
    };
    let (code, headers, tracing) = w.head.take().unwrap_or((
        ResponseCode::OK,
        TransportHeaders::default(),
        Tracing::default(),
    ));
    match w.reply {
        Reply::Whole(tx) => {
            let [_, arg2, arg3] = w.args.into_three();
            let _ = tx.send(Ok(CallResponse {
                code,
                headers,
                tracing,
                arg2,
                arg3,
            }));
        }
        Reply::Streaming(tx) => {
            let [_, arg2, arg3] = std::mem::take(&mut w.args).into_three();
            let (sender, stream) = arg_stream();
            sender.push(arg3);
            let _ = tx.send(Ok(StreamingResponse {
                code,
                headers,
                tracing,
                arg2,
                arg3: Body::Stream(Box::pin(stream)),
            }));
            if complete {
                sender.finish();
            } else {
                w.reply = Reply::Streamed(sender);
                st.waiters.insert(id, w);
            }
        }
        Reply::Streamed(sender) => sender.finish(),
    }
}

fn feed_inbound(
    shared: &Shared,
    st: &mut ConnState,
    id: u32,
    chunks: &FrameChunks,
    jobs: &mut Vec<Job>,
) {
    let Some(inb) = st.inbound.get_mut(&id) else {
        return;
    };
    let complete = chunks.message_complete();
    for c in chunks.iter() {
        let ArgChunk {
            index,
            data,
            ends_arg,
        } = c;
        if ends_arg && index == 0 || index > 0 {
            inb.arg1_done = true;
        }
        if ends_arg && index == 1 || index > 1 {
            inb.arg2_done = true;
        }
        match (&inb.stream, index) {
            (Some(s), 2) => s.push(data),
            _ => inb.args.push(ArgChunk {
                index,
                data,
                ends_arg,
            }),
        }
    }
    if inb.stream.is_some() {
        if complete && let Some(s) = inb.stream.take() {
            s.finish();
        }
        return;
    }
    if inb.handler.is_none() && inb.arg1_done {
        let method = inb.args.peek(0);
        match shared.registry.lookup(&inb.service, &method) {
            Lookup::Found(r) => inb.handler = Some(r),
            Lookup::NoService => {
                let msg = format!(
                    "unknown service {:?}",
                    String::from_utf8_lossy(&inb.service)
                );
                st.inbound.remove(&id);
                let _ = st.conn.send_error(id, ErrorCode::BAD_REQUEST, &msg);
                return;
            }
            Lookup::NoMethod => {
                let msg = format!(
                    "no such method {:?} for service {:?}",
                    String::from_utf8_lossy(&method),
                    String::from_utf8_lossy(&inb.service)
                );
                st.inbound.remove(&id);
                let _ = st.conn.send_error(id, ErrorCode::BAD_REQUEST, &msg);
                return;
            }
        }
    }
    let Some(registered) = inb.handler.clone() else {
        return;
    };
    let ready = if registered.streaming {
        inb.arg2_done
    } else {
        complete
    };
    if !ready {
        return;
    }
    let [method, arg2, arg3_sofar] = std::mem::take(&mut inb.args).into_three();
    let arg3 = if registered.streaming {
        let (tx, rx) = arg_stream();
        tx.push(arg3_sofar);
        if complete {
            tx.finish();
        } else {
            inb.stream = Some(tx);
        }
        Body::Stream(Box::pin(rx))
    } else {
        Body::Full(arg3_sofar)
    };
    let peer = st
        .conn
        .peer()
        .map(|p| p.host_port.clone())
        .unwrap_or_default();
    let req = Request {
        service: inb.service.clone(),
        method,
        arg2,
        arg3,
        headers: inb.headers.clone(),
        tracing: inb.tracing,
        deadline: inb.deadline,
        peer,
        cancel: inb.cancel.clone(),
    };
    if inb.stream.is_none() {
        // Nothing more will arrive for it; keep only the cancel token.
        inb.handler = Some(registered.clone());
    }
    jobs.push(Job::Dispatch(id, registered, req));
}

async fn respond(
    shared: &Arc<Shared>,
    id: u32,
    res: HandlerResult,
    scheme: Option<Bytes>,
    cancel: &CancellationToken,
) {
    let resp = match res {
        Ok(r) => r,
        Err(e) => {
            let mut st = shared.lock();
            st.inbound.remove(&id);
            let _ = st.conn.send_error(id, e.code, &e.message);
            return;
        }
    };
    let built = if resp.headers.is_empty() {
        // The usual answer carries only the request's `as`: built once.
        let key = scheme.clone().unwrap_or_default();
        shared.header_cache(&key, || {
            TransportHeaders::strict(scheme.as_ref().map(|s| (&b"as"[..], &s[..])))
        })
    } else {
        let mut pairs: Vec<(Bytes, Bytes)> = Vec::with_capacity(resp.headers.len() + 1);
        if let Some(s) = scheme
            && !resp.headers.iter().any(|(k, _)| k == "as")
        {
            pairs.push((Bytes::from_static(b"as"), s));
        }
        for (k, v) in resp.headers {
            pairs.push((k.into(), v.into()));
        }
        TransportHeaders::strict(pairs)
    };
    let headers = match built {
        Ok(h) => h,
        Err(e) => {
            let mut st = shared.lock();
            st.inbound.remove(&id);
            let _ = st.conn.send_error(
                id,
                ErrorCode::UNEXPECTED,
                &format!("bad response headers: {e}"),
            );
            return;
        }
    };
    match resp.arg3 {
        Body::Full(arg3) => {
            let mut st = shared.lock();
            st.inbound.remove(&id);
            if let Err(e) = st
                .conn
                .send_response(id, resp.code, headers, [b"", &resp.arg2, &arg3])
                && e.code != ErrorCode::CANCELLED
            {
                let _ = st.conn.send_error(id, ErrorCode::UNEXPECTED, &e.message);
            }
        }
        Body::Stream(mut stream) => {
            {
                let mut st = shared.lock();
                let started = st
                    .conn
                    .start_response(id, resp.code, headers)
                    .and_then(|()| st.conn.end_response_arg(id))
                    .and_then(|()| st.conn.write_response(id, &resp.arg2))
                    .and_then(|()| st.conn.end_response_arg(id));
                if started.is_err() {
                    st.inbound.remove(&id);
                    return;
                }
            }
            loop {
                // Wait for room in the write queue before producing more.
                loop {
                    let space = shared.space.notified();
                    let full = {
                        let st = shared.lock();
                        st.closed.is_none() && shared.write_queue_full(&st)
                    };
                    if !full {
                        break;
                    }
                    tokio::select! {
                        _ = space => {}
                        _ = cancel.cancelled() => return,
                    }
                }
                let next = tokio::select! {
                    n = stream.next() => n,
                    _ = cancel.cancelled() => return,
                };
                let mut st = shared.lock();
                match next {
                    Some(Ok(chunk)) => {
                        if st.conn.write_response(id, &chunk).is_err() {
                            st.inbound.remove(&id);
                            return;
                        }
                        drop(st);
                        shared.waker.wake();
                    }
                    Some(Err(e)) => {
                        st.inbound.remove(&id);
                        let _ = st.conn.send_error(id, ErrorCode::UNEXPECTED, &e.message);
                        return;
                    }
                    None => {
                        st.inbound.remove(&id);
                        let _ = st.conn.end_response_arg(id);
                        return;
                    }
                }
            }
        }
    }
}

/// Fails a waiter if its future is dropped before the call finished.
pub(crate) struct CallGuard {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: Option<u32>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let mut st = self.shared.lock();
            st.waiters.remove(&id);
            st.conn.cancel_call(now(), id, "caller gave up");
            drop(st);
            self.shared.waker.wake();
        }
    }
}
