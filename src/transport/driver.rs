//! The connection driver: one future per connection that reads, runs the
//! protocol core, runs handlers in place and writes, all on one task.
//!
//! Each pass: one read (every whole frame in it goes to the core under one
//! lock, and the core's events go to the waiting callers and to the server
//! dispatch), then the handlers that can start run without the lock, then
//! one more lock to send their answers, fire timers and take the queued
//! frames, then one write (vectored when large args are queued by
//! reference). Callers on other tasks encode their requests straight into the
//! core's queue and wake the driver when the queue was empty.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;

use super::handler::Registry;
use super::inbound::Dispatch;
use super::outbound;
use super::shared::{ConnState, Shared, now};
use crate::Error;
use crate::codec::FrameCodec;
use crate::frame::ErrorCode;
use crate::proto::{Event, Transmit, Whole};

/// Smallest and largest read the driver asks the socket for.
const MIN_READ: usize = 64 * 1024;
const MAX_READ: usize = 1024 * 1024;
/// How long a read buffer grown past twice `MIN_READ` stays when empty.
const IDLE_SHRINK: Duration = Duration::from_secs(1);
/// Most slices handed to one vectored write.
const MAX_IOV: usize = 64;

/// Drives one connection until it closes.
pub(crate) struct Driver<S> {
    io: S,
    shared: Arc<Shared>,
    dispatch: Dispatch,
    codec: FrameCodec,
    rbuf: BytesMut,
    /// How much to make room for before a read: grows while reads fill it.
    read_size: usize,
    out: Transmit,
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
    read_closed: bool,
    /// Since when part of a frame has been buffered with no byte read (the
    /// read timeout measures time without read progress).
    partial_since: Option<Instant>,
    /// Since when the read buffer, grown past `MIN_READ` by a burst, has
    /// been empty: after `IDLE_SHRINK` it is let go.
    big_idle_since: Option<Instant>,
    /// Since when writing has made no progress while bytes wait.
    write_stalled_since: Option<Instant>,
    stall_started: bool,
    /// Give up flushing: the peer does not read.
    abandon_writes: bool,
    /// Callers were waiting for room in the write queue at the last pass.
    space_waiters: bool,
    closed: bool,
    /// Wakers collected under the lock, woken after it is released.
    wake: Vec<Waker>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Driver<S> {
    pub(crate) fn new(io: S, shared: Arc<Shared>, registry: Arc<Registry>) -> Driver<S> {
        // [FRAME-6] accept every legal frame size, whatever we send ourselves.
        let dispatch = Dispatch::new(shared.clone(), registry);
        Driver {
            io,
            shared,
            dispatch,
            codec: FrameCodec::new(),
            rbuf: BytesMut::with_capacity(MIN_READ),
            read_size: MIN_READ,
            out: Transmit::new(),
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
            timer_at: None,
            read_closed: false,
            partial_since: None,
            big_idle_since: None,
            write_stalled_since: None,
            stall_started: false,
            abandon_writes: false,
            space_waiters: false,
            closed: false,
            wake: Vec::new(),
        }
    }

    /// One read; every whole frame in the buffer goes to the core.
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
        let free = self.rbuf.capacity() - self.rbuf.len();
        if free < self.read_size / 2 {
            // Reclaims the buffer in place once the frames split off it are
            // gone; allocates a new one only while they are alive.
            self.rbuf.reserve(self.read_size);
        }
        let room = self.rbuf.capacity() - self.rbuf.len();
        let res = tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf);
        let n = match res {
            Poll::Pending => return false,
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => {
                self.read_closed = true;
                self.with_state(|st, _, _, _| st.conn.transport_closed(e.to_string()));
                return true;
            }
        };
        if n == 0 {
            self.read_closed = true;
            self.with_state(|st, _, _, _| st.conn.transport_closed("peer closed the connection"));
            return true;
        }
        // Big reads ask for bigger buffers (fewer reads and, while frames of
        // the last one are still held, fewer new buffers); small ones let
        // the size fall back.
        if n * 2 >= room {
            self.read_size = (self.read_size * 2).min(MAX_READ);
        } else if n * 8 < room {
            self.read_size = (self.read_size / 2).max(MIN_READ);
        }
        let now = now();
        let Driver {
            shared,
            dispatch,
            codec,
            rbuf,
            wake,
            read_closed,
            ..
        } = self;
        {
            let mut st = shared.lock();
            // [CONN-23] what consumers of streamed responses took frees room
            // in the budget before new response bytes are counted.
            let taken = st.taken.swap(0, std::sync::atomic::Ordering::Relaxed);
            if taken > 0 {
                st.conn.release_response_bytes(taken);
            }
            loop {
                match codec.split_frame(rbuf) {
                    Ok(Some((header, payload))) => {
                        match st.conn.handle_frame_bytes(now, header, payload) {
                            Some(Whole::Request(r)) => {
                                if let Some(start) = dispatch.on_whole_request(&mut st, r, now) {
                                    // The handler runs without the lock (it
                                    // may call out on this very connection);
                                    // a ready answer goes out at once.
                                    drop(st);
                                    let answer = dispatch.run_start(start);
                                    st = shared.lock();
                                    if let Some(a) = answer {
                                        dispatch.answer(&mut st, a, now);
                                    }
                                }
                            }
                            Some(Whole::Response(r)) => {
                                outbound::on_whole_response(&mut st, r, now, wake)
                            }
                            None => {}
                        }
                        drain_events(&mut st, dispatch, now, wake);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        st.conn.handle_decode_error(&e);
                        *read_closed = true;
                        break;
                    }
                }
            }
            drain_events(&mut st, dispatch, now, wake);
            shared.refresh_flags(&st.conn);
        }
        self.partial_since = (!self.rbuf.is_empty()).then_some(now);
        if self.rbuf.is_empty() && self.rbuf.capacity() > 2 * self.read_size {
            // Reads got small again after a burst grew the buffer: let it go
            // (frames still held keep their part alive); the next read
            // allocates what `read_size` asks for.
            self.rbuf = BytesMut::new();
        }
        self.big_idle_since =
            (self.rbuf.is_empty() && self.rbuf.capacity() > 2 * MIN_READ).then_some(now);
        self.wake_all();
        true
    }

    /// Runs `f` on the state under the lock, then routes the events it made.
    fn with_state(
        &mut self,
        f: impl FnOnce(&mut ConnState, &mut Dispatch, Instant, &mut Vec<Waker>),
    ) {
        let now = now();
        {
            let mut st = self.shared.lock();
            let st = &mut *st;
            f(st, &mut self.dispatch, now, &mut self.wake);
            drain_events(st, &mut self.dispatch, now, &mut self.wake);
            self.shared.refresh_flags(&st.conn);
        }
        self.wake_all();
    }

    fn wake_all(&mut self) {
        for w in self.wake.drain(..) {
            w.wake();
        }
    }

    /// True when so much waits to be written that reading stops.
    fn paused(&self) -> bool {
        self.shared.queued.load(Ordering::Relaxed)
            > self.shared.config.max_write_queue.saturating_mul(4)
    }

    /// Under one lock: answers from handlers, timers, events, and the frames
    /// queued for writing. Then re-arms the timer. True on progress.
    fn service(&mut self, cx: &mut Context<'_>) -> bool {
        let now = now();
        let read_timeout = self.shared.config.read_timeout;
        let read_deadline = self.partial_since.map(|t| t + read_timeout);
        let paused = self.paused();
        let mut progress = false;
        let next = {
            let mut st = self.shared.lock();
            let st = &mut *st;
            self.dispatch.send_answers(st, now);
            if self.big_idle_since.is_some_and(|t| t + IDLE_SHRINK <= now) {
                // The burst that grew the read buffer is over: let it go, so
                // an idle connection holds little (frames still held keep
                // their part alive); the next read starts small again.
                self.big_idle_since = None;
                if self.rbuf.is_empty() {
                    self.rbuf = BytesMut::new();
                    self.read_size = MIN_READ;
                }
            }
            if read_deadline.is_some_and(|d| d <= now) {
                self.partial_since = None;
                st.conn
                    .transport_closed("read timeout: peer stalled in the middle of a frame");
                progress = true;
            }
            // Writing may stall for long only when it matters: while reading is
            // paused, or while a closed connection flushes its last frames.
            let write_deadline = self
                .write_stalled_since
                .filter(|_| paused || st.conn.is_closed())
                .map(|t| t + read_timeout);
            if write_deadline.is_some_and(|d| d <= now) {
                self.write_stalled_since = None;
                self.abandon_writes = true;
                st.conn
                    .transport_closed("write timeout: the peer stopped reading");
                progress = true;
            }
            if st.conn.poll_timeout().is_some_and(|t| t <= now) {
                st.conn.handle_timeout(now);
            }
            progress |= drain_events(st, &mut self.dispatch, now, &mut self.wake);
            st.conn.transmit_into(&mut self.out);
            self.shared.queued.store(self.out.len(), Ordering::Relaxed);
            self.space_waiters = !st.space.is_empty();
            if self.space_waiters && !self.shared.write_queue_full(st) {
                st.space.wake_first();
            }
            self.closed = st.conn.is_closed();
            self.shared.refresh_flags(&st.conn);
            self.shared
                .inbound_calls
                .store(self.dispatch.len(), Ordering::Release);
            [
                st.conn.poll_timeout(),
                self.partial_since.map(|t| t + read_timeout),
                write_deadline,
                self.big_idle_since.map(|t| t + IDLE_SHRINK),
            ]
            .into_iter()
            .flatten()
            .min()
        };
        self.wake_all();
        match next {
            Some(at) if at <= now => true,
            Some(at) => {
                if self.timer_at != Some(at) {
                    self.timer_at = Some(at);
                    self.timer
                        .as_mut()
                        .reset(tokio::time::Instant::from_std(at));
                }
                if self.timer.as_mut().poll(cx).is_ready() {
                    self.timer_at = None;
                    progress = true;
                }
                progress
            }
            None => progress,
        }
    }

    /// Writes what is queued: one write, vectored when args are queued by
    /// reference. `Err` when the socket failed.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        let before = self.out.len();
        while !self.out.is_empty() {
            let res = match self.out.as_contiguous() {
                Some(buf) => Pin::new(&mut self.io).poll_write(cx, buf),
                None => {
                    let mut slices = [IoSlice::new(&[]); MAX_IOV];
                    let n = self.out.io_slices(&mut slices);
                    Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n])
                }
            };
            match res {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(())),
                Poll::Ready(Ok(n)) => self.out.advance(n),
                Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                Poll::Pending => break,
            }
        }
        let wrote = self.out.len() < before;
        let stalled = match (self.out.is_empty(), wrote) {
            (true, _) | (false, true) => None,
            (false, false) => Some(self.write_stalled_since.unwrap_or_else(now)),
        };
        // A stall that just started must arm the timer: go round once more.
        self.stall_started = stalled.is_some() && self.write_stalled_since.is_none();
        self.write_stalled_since = stalled;
        if wrote && self.out.is_empty() {
            let _ = Pin::new(&mut self.io).poll_flush(cx);
        }
        self.shared.queued.store(self.out.len(), Ordering::Relaxed);
        // Room was made for callers waiting in line: go round to wake one.
        self.stall_started |= wrote && self.space_waiters;
        if self.out.is_empty() {
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
        this.shared.driver.register(cx.waker());
        loop {
            let mut progress = this.poll_read(cx);
            if this.dispatch.has_work() {
                progress |= this.dispatch.run();
            }
            progress |= this.service(cx);
            let write = this.poll_write(cx);
            if let Poll::Ready(Err(())) = write {
                this.out.clear();
                this.read_closed = true;
                this.with_state(|st, _, _, _| st.conn.transport_closed("write failed"));
                continue;
            }
            progress |= std::mem::take(&mut this.stall_started);
            if this.closed && !this.dispatch.has_work() {
                if write.is_pending() && !this.abandon_writes {
                    // Flush the last frames; the write timer bounds the wait.
                    if progress {
                        continue;
                    }
                    return Poll::Pending;
                }
                this.out.clear();
                let _ = Pin::new(&mut this.io).poll_shutdown(cx);
                this.shared.inbound_calls.store(0, Ordering::Release);
                this.shared.finished.store(true, Ordering::Release);
                this.shared.finished_notify.notify_waiters();
                return Poll::Ready(());
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }
}

/// Routes every event the core has to the callers and the server dispatch.
/// True when there was any.
fn drain_events(
    st: &mut ConnState,
    dispatch: &mut Dispatch,
    now: Instant,
    wake: &mut Vec<Waker>,
) -> bool {
    let mut any = false;
    while let Some(ev) = st.conn.poll_event() {
        any = true;
        match ev {
            Event::Ready(info) => {
                let hp: Arc<str> = Arc::from(info.host_port.as_str());
                st.peer_host_port = hp.clone();
                dispatch.set_peer(hp);
                for tx in st.ready.drain(..) {
                    let _ = tx.send(Ok(info.clone()));
                }
            }
            Event::Request(start) => dispatch.on_request(st, start, now),
            Event::RequestContinue { id, chunks } => dispatch.on_continue(st, id, &chunks),
            Event::RequestCancelled { id } => dispatch.on_abort(
                id,
                Error::from_peer(ErrorCode::CANCELLED, "cancelled by the caller"),
            ),
            Event::RequestAborted { id, error } => dispatch.on_abort(id, error),
            Event::Response(r) => outbound::on_response(st, r, now, wake),
            Event::ResponseContinue { id, chunks } => {
                outbound::on_response_continue(st, id, &chunks, now, wake)
            }
            Event::CallFailed { id, error } => outbound::on_call_failed(st, id, error, now, wake),
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
                let err = Error::new(ErrorCode::NETWORK, format!("connection closed: {reason}"));
                for tx in st.ready.drain(..) {
                    let _ = tx.send(Err(err.clone()));
                }
                outbound::on_closed(st, &err, now, wake);
                dispatch.on_closed(&err);
                st.pongs.clear();
                st.closed = Some(reason);
            }
        }
    }
    any
}
