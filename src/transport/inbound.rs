//! Server dispatch: the peer's requests, from their first frame to the answer.
//!
//! The driver owns one [`Dispatch`] per connection (nothing here is shared
//! with other tasks but the wakers). Under the connection lock the driver
//! hands it the core's request events; a request whose args are complete
//! becomes a [`Start`]. After the lock is released each start gets a handler
//! slot and is polled once, in place: a handler that is ready at once (most
//! are) is answered in the same batch, and its slot goes back to the free
//! list. One that is pending keeps its slot in a task table, with a waker of
//! its own that puts it on the ready list. Dropping a slot's future is the
//! cancel: no token is made unless the handler asks for one.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::body::{ArgSender, Body, arg_stream};
use super::handler::{HandlerResult, HandlerSlot, Lookup, Registry, Request, SlotFactory};
use super::observe::CallMetrics;
use super::shared::{ConnState, IdMap, Shared, same_bytes};
use super::space::SpaceWait;
use crate::Error;
use crate::frame::{ArgChunk, ArgCollector, ErrorCode, FrameChunks, Tracing, TransportHeaders};
use crate::proto::{RequestStart, WholeRequest};

// ===== the inbound call a handler's outbound calls inherit =====

/// What a handler's outbound calls inherit from the inbound call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallContext {
    pub(crate) tracing: Tracing,
    pub(crate) deadline: Instant,
}

thread_local! {
    /// The inbound call whose handler is being polled on this thread.
    static CURRENT: Cell<Option<CallContext>> = const { Cell::new(None) };
}

/// The inbound call whose handler is running here, if any.
pub(crate) fn current_call() -> Option<CallContext> {
    CURRENT.with(Cell::get)
}

/// Runs `f` (a poll of a handler's future) with `ctx` as the current call.
fn in_call<R>(ctx: CallContext, f: impl FnOnce() -> R) -> R {
    let prev = CURRENT.with(|c| c.replace(Some(ctx)));
    let r = f();
    CURRENT.with(|c| c.set(prev));
    r
}

// ===== wakers and cancel handles, one per task entry =====

/// The ready list: task entries whose wakers fired, for the driver to poll.
pub(crate) struct ReadyList {
    list: Mutex<Vec<u32>>,
    /// True while `list` may be non-empty (checked without the lock).
    pending: AtomicBool,
    shared: Arc<Shared>,
}

/// The waker of one task entry (made once per entry, reused by every call
/// that occupies it), and the cancel state of the call in it.
pub(crate) struct TaskWake {
    index: u32,
    ready: Arc<ReadyList>,
    queued: AtomicBool,
    /// Changes when the call in this entry is over.
    generation: AtomicU64,
    has_token: AtomicBool,
    token: Mutex<Option<(u64, CancellationToken)>>,
}

impl Wake for TaskWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready
                .list
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(self.index);
            self.ready.pending.store(true, Ordering::Release);
            self.ready.shared.driver.wake();
        }
    }
}

impl TaskWake {
    /// The call in this entry is over: handles given to it see that, and a
    /// token it asked for is cancelled.
    fn end_call(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if self.has_token.swap(false, Ordering::AcqRel) {
            let token = self.token.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some((_, t)) = token {
                t.cancel();
            }
        }
    }
}

/// A request's link to its call's fate ([`Request::cancelled`]).
#[derive(Clone)]
pub(crate) struct CallHandle {
    wake: Arc<TaskWake>,
    generation: u64,
}

impl std::fmt::Debug for CallHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallHandle")
            .field("over", &self.is_over())
            .finish()
    }
}

impl CallHandle {
    pub(crate) fn is_over(&self) -> bool {
        self.wake.generation.load(Ordering::Acquire) != self.generation
    }

    /// A token cancelled when the call is over, made on first use; `None`
    /// when it is over already.
    pub(crate) fn token(&self) -> Option<CancellationToken> {
        let mut slot = self.wake.token.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_over() {
            return None;
        }
        let t = match &*slot {
            Some((g, t)) if *g == self.generation => t.clone(),
            _ => {
                let t = CancellationToken::new();
                *slot = Some((self.generation, t.clone()));
                t
            }
        };
        self.wake.has_token.store(true, Ordering::Release);
        drop(slot);
        // The call may have ended between the check and the store.
        if self.is_over() {
            t.cancel();
        }
        Some(t)
    }
}

// ===== the dispatch table =====

/// A request whose handler can start.
pub(crate) struct Start {
    id: u32,
    handler: Found,
    req: Request,
    scheme: Option<TransportHeaders>,
    at: Instant,
}

/// A handler's result, to be sent under the lock. Its task entry stays
/// reserved until then: a streamed response is written from it, and the call
/// is over only once that is done.
pub(crate) struct Answer {
    id: u32,
    task: u32,
    result: HandlerResult,
    scheme: Option<TransportHeaders>,
    metrics: Option<Arc<CallMetrics>>,
    at: Instant,
}

/// A handler found for (service, method), with what the connection keeps
/// for it.
#[derive(Clone)]
struct Found {
    index: u32,
    factory: Arc<dyn SlotFactory>,
    streaming: bool,
    metrics: Option<Arc<CallMetrics>>,
}

/// A lookup this connection made before: (service, method) as registered.
struct Cached {
    service: Bytes,
    method: Bytes,
    found: Found,
}

/// Most lookups cached per connection (registered handlers only).
const MAX_CACHED: usize = 64;

/// A request that has not reached its handler yet (its args are still
/// arriving), or whose handler is running.
enum Inbound {
    Arriving(Box<Arriving>),
    /// The handler runs in task entry `task`; `body` feeds a streaming
    /// handler's arg3.
    Running {
        task: u32,
        body: Option<ArgSender>,
    },
    /// The handler finished; a streaming arg3 is still arriving.
    Draining {
        body: ArgSender,
    },
}

struct Arriving {
    service: Bytes,
    headers: TransportHeaders,
    tracing: Tracing,
    deadline: Instant,
    args: ArgCollector,
    arg1_done: bool,
    arg2_done: bool,
    handler: Option<Found>,
    at: Instant,
}

/// A running handler, or the writer of a streamed response.
enum Task {
    Handler {
        id: u32,
        handler: u32,
        slot: Box<dyn HandlerSlot>,
        ctx: CallContext,
        scheme: Option<TransportHeaders>,
        metrics: Option<Arc<CallMetrics>>,
        at: Instant,
    },
    Respond {
        id: u32,
        fut: Pin<Box<dyn Future<Output = ()> + Send>>,
    },
}

struct TaskEntry {
    wake: Arc<TaskWake>,
    waker: Waker,
    task: Option<Task>,
}

/// The server side of one connection.
pub(crate) struct Dispatch {
    shared: Arc<Shared>,
    registry: Arc<Registry>,
    generation: u64,
    cache: Vec<Cached>,
    next_victim: usize,
    peer: Arc<str>,
    calls: IdMap<Inbound>,
    tasks: Vec<TaskEntry>,
    free_tasks: Vec<u32>,
    ready: Arc<ReadyList>,
    polling: Vec<u32>,
    /// Finished slots by handler index, for reuse.
    free_slots: Vec<Vec<Box<dyn HandlerSlot>>>,
    starts: Vec<Start>,
    answers: Vec<Answer>,
    metrics: bool,
}

impl Dispatch {
    pub(crate) fn new(shared: Arc<Shared>, registry: Arc<Registry>) -> Dispatch {
        let ready = Arc::new(ReadyList {
            list: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            shared: shared.clone(),
        });
        let metrics = shared.config.metrics;
        Dispatch {
            shared,
            generation: registry.generation(),
            registry,
            cache: Vec::new(),
            next_victim: 0,
            peer: Arc::from(""),
            calls: IdMap::default(),
            tasks: Vec::new(),
            free_tasks: Vec::new(),
            ready,
            polling: Vec::new(),
            free_slots: Vec::new(),
            starts: Vec::new(),
            answers: Vec::new(),
            metrics,
        }
    }

    /// The handshake is done: calls from now on come from `host_port`.
    pub(crate) fn set_peer(&mut self, host_port: Arc<str>) {
        self.peer = host_port;
        self.cache.clear();
    }

    /// Inbound calls this side still tracks (arriving, running, draining).
    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }

    /// True when handlers wait to start, answers wait to be sent, or tasks
    /// were woken.
    pub(crate) fn has_work(&self) -> bool {
        !self.starts.is_empty()
            || !self.answers.is_empty()
            || self.ready.pending.load(Ordering::Acquire)
    }

    // ----- under the lock: events from the core -----

    /// A request that arrived whole (the usual call): its handler, ready to
    /// start (the caller runs it with [`Dispatch::run_start`] after
    /// releasing the lock), or `None` when it was answered already.
    pub(crate) fn on_whole_request(
        &mut self,
        st: &mut ConnState,
        w: WholeRequest,
        at: Instant,
    ) -> Option<Start> {
        let WholeRequest {
            id,
            service,
            headers,
            scheme,
            tracing,
            deadline,
            args: [method, arg2, arg3],
            ..
        } = w;
        let found = self.find(st, id, &service, &method)?;
        let arg3 = if found.streaming {
            let (tx, rx) = arg_stream();
            tx.push(arg3);
            tx.finish();
            Body::Stream(Box::pin(rx))
        } else {
            Body::Full(arg3)
        };
        Some(self.start(
            id,
            found,
            [service, method, arg2],
            arg3,
            headers,
            scheme,
            tracing,
            deadline,
            at,
        ))
    }

    /// A request started.
    pub(crate) fn on_request(&mut self, st: &mut ConnState, start: RequestStart, at: Instant) {
        let RequestStart {
            id,
            service,
            headers,
            tracing,
            deadline,
            chunks,
            ..
        } = start;
        if let Some([method, arg2, arg3]) = chunks.whole_args() {
            // The usual call: one frame, args complete.
            let Some(found) = self.find(st, id, &service, &method) else {
                return;
            };
            let arg3 = if found.streaming {
                let (tx, rx) = arg_stream();
                tx.push(arg3);
                tx.finish();
                Body::Stream(Box::pin(rx))
            } else {
                Body::Full(arg3)
            };
            let scheme = headers.pair(b"as");
            let start = self.start(
                id,
                found,
                [service, method, arg2],
                arg3,
                headers,
                scheme,
                tracing,
                deadline,
                at,
            );
            self.starts.push(start);
            return;
        }
        let arriving = Arriving {
            service,
            headers,
            tracing,
            deadline,
            args: ArgCollector::new(),
            arg1_done: false,
            arg2_done: false,
            handler: None,
            at,
        };
        self.calls.insert(id, Inbound::Arriving(Box::new(arriving)));
        self.feed(st, id, &chunks);
    }

    /// More frames of a request.
    pub(crate) fn on_continue(&mut self, st: &mut ConnState, id: u32, chunks: &FrameChunks) {
        self.feed(st, id, chunks);
    }

    /// A request ended without our answer (cancelled, expired, refused, or
    /// the connection closed): its handler's future is dropped.
    pub(crate) fn on_abort(&mut self, id: u32, error: Error) {
        match self.calls.remove(&id) {
            Some(Inbound::Running { task, body }) => {
                if let Some(b) = body {
                    b.fail(error);
                }
                self.end_task(task);
            }
            Some(Inbound::Draining { body }) => body.fail(error),
            Some(Inbound::Arriving(_)) | None => {}
        }
        // A handler about to start for this id is dropped too.
        if let Some(pos) = self.starts.iter().position(|s| s.id == id) {
            let s = self.starts.remove(pos);
            self.release_task(s.req.cancel.wake.index);
        }
    }

    /// The connection closed: every call is over.
    pub(crate) fn on_closed(&mut self, error: &Error) {
        for (_, call) in self.calls.drain() {
            match call {
                Inbound::Running { body: Some(b), .. } | Inbound::Draining { body: b } => {
                    b.fail(error.clone())
                }
                _ => {}
            }
        }
        for i in 0..self.tasks.len() as u32 {
            self.end_task(i);
        }
        for s in std::mem::take(&mut self.starts) {
            self.release_task(s.req.cancel.wake.index);
        }
        for a in std::mem::take(&mut self.answers) {
            self.release_task(a.task);
        }
    }

    fn feed(&mut self, st: &mut ConnState, id: u32, chunks: &FrameChunks) {
        let complete = chunks.message_complete();
        match self.calls.get_mut(&id) {
            Some(Inbound::Running {
                body: Some(body), ..
            }) => {
                push_arg3(body, chunks);
                if complete {
                    body.finish();
                    if let Some(Inbound::Running { task, .. }) = self.calls.remove(&id) {
                        self.calls.insert(id, Inbound::Running { task, body: None });
                    }
                }
                return;
            }
            Some(Inbound::Draining { body }) => {
                push_arg3(body, chunks);
                if complete {
                    body.finish();
                    self.calls.remove(&id);
                }
                return;
            }
            Some(Inbound::Arriving(_)) => {}
            _ => return,
        }
        let Some(Inbound::Arriving(a)) = self.calls.get_mut(&id) else {
            return;
        };
        for c in chunks.iter() {
            if c.index > 0 || c.ends_arg {
                a.arg1_done = true;
            }
            if c.index > 1 || (c.index == 1 && c.ends_arg) {
                a.arg2_done = true;
            }
            a.args.push(c);
        }
        if a.handler.is_none() && a.arg1_done {
            let (service, method) = (a.service.clone(), a.args.peek(0));
            match self.find(st, id, &service, &method) {
                Some(found) => {
                    if let Some(Inbound::Arriving(a)) = self.calls.get_mut(&id) {
                        a.handler = Some(found);
                    }
                }
                None => {
                    self.calls.remove(&id);
                    return;
                }
            }
        }
        let Some(Inbound::Arriving(a)) = self.calls.get(&id) else {
            return;
        };
        let Some(found) = a.handler.clone() else {
            return;
        };
        if !(complete || found.streaming && a.arg2_done) {
            return;
        }
        let Some(Inbound::Arriving(a)) = self.calls.remove(&id) else {
            return;
        };
        let a = *a;
        let (method, arg2, arg3) = a.args.into_two_and_chunks();
        let (arg3, body) = if found.streaming {
            let (tx, rx) = arg_stream();
            for c in arg3 {
                tx.push(c);
            }
            if complete {
                tx.finish();
                (Body::Stream(Box::pin(rx)), None)
            } else {
                (Body::Stream(Box::pin(rx)), Some(tx))
            }
        } else if arg3.len() == 1 {
            (
                Body::Full(arg3.into_iter().next().unwrap_or_default()),
                None,
            )
        } else {
            (Body::Chunks(arg3), None)
        };
        if let Some(body) = body {
            // Frames keep feeding the stream while the handler runs; the
            // entry is marked running once the handler has a task.
            self.calls.insert(id, Inbound::Draining { body });
        }
        let scheme = a.headers.pair(b"as");
        let start = self.start(
            id,
            found,
            [a.service, method, arg2],
            arg3,
            a.headers,
            scheme,
            a.tracing,
            a.deadline,
            a.at,
        );
        self.starts.push(start);
    }

    /// The handler for (service, method), or `None` after answering bad
    /// request for an unknown one ([CALL-12]).
    fn find(
        &mut self,
        st: &mut ConnState,
        id: u32,
        service: &[u8],
        method: &[u8],
    ) -> Option<Found> {
        let generation = self.registry.generation();
        if generation != self.generation {
            self.generation = generation;
            self.cache.clear();
        }
        if let Some(c) = self
            .cache
            .iter()
            .find(|c| same_bytes(&c.method, method) && same_bytes(&c.service, service))
        {
            return Some(c.found.clone());
        }
        match self.registry.lookup(service, method) {
            Lookup::Found(r) => {
                let metrics = self.metrics.then(|| {
                    Arc::new(CallMetrics::new(
                        false,
                        service,
                        method,
                        &self.shared.peer_label(&self.peer),
                    ))
                });
                let found = Found {
                    index: r.index,
                    factory: r.factory,
                    streaming: r.streaming,
                    metrics,
                };
                // Cached under the registered names: the peer's bytes match
                // them exactly, and only registered handlers are cached.
                let cached = Cached {
                    service: Bytes::copy_from_slice(service),
                    method: Bytes::copy_from_slice(method),
                    found: found.clone(),
                };
                if self.cache.len() < MAX_CACHED {
                    self.cache.push(cached);
                } else {
                    let i = self.next_victim % MAX_CACHED;
                    self.next_victim += 1;
                    self.cache[i] = cached;
                }
                Some(found)
            }
            Lookup::NoService => {
                let msg = format!("unknown service {:?}", String::from_utf8_lossy(service));
                let _ = st.conn.send_error(id, ErrorCode::BAD_REQUEST, &msg);
                None
            }
            Lookup::NoMethod => {
                let msg = format!(
                    "no such method {:?} for service {:?}",
                    String::from_utf8_lossy(method),
                    String::from_utf8_lossy(service)
                );
                let _ = st.conn.send_error(id, ErrorCode::BAD_REQUEST, &msg);
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        id: u32,
        found: Found,
        [service, method, arg2]: [Bytes; 3],
        arg3: Body,
        headers: TransportHeaders,
        scheme: Option<TransportHeaders>,
        tracing: Tracing,
        deadline: Instant,
        at: Instant,
    ) -> Start {
        let task = self.alloc_task();
        let entry = &self.tasks[task as usize];
        let cancel = CallHandle {
            wake: entry.wake.clone(),
            generation: entry.wake.generation.load(Ordering::Acquire),
        };
        let req = Request {
            service,
            method,
            arg2,
            arg3,
            headers,
            tracing,
            deadline,
            peer: self.peer.clone(),
            cancel,
        };
        // The task entry is reserved now (its waker and cancel handle are in
        // the request); `run_start` fills it or frees it.
        Start {
            id,
            handler: found,
            req,
            scheme,
            at,
        }
    }

    // ----- outside the lock: handlers run -----

    /// Starts every handler that can start and polls every woken task.
    /// Returns true when anything happened. Answers wait in `answers` for
    /// [`Dispatch::send_answers`].
    pub(crate) fn run(&mut self) -> bool {
        let mut any = false;
        let mut starts = std::mem::take(&mut self.starts);
        for s in starts.drain(..) {
            any = true;
            if let Some(a) = self.run_start(s) {
                self.answers.push(a);
            }
        }
        self.starts = starts;
        if self.ready.pending.swap(false, Ordering::AcqRel) {
            let mut list = self.ready.list.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut *list, &mut self.polling);
        }
        let mut polling = std::mem::take(&mut self.polling);
        for task in polling.drain(..) {
            any = true;
            self.poll_task(task);
        }
        self.polling = polling;
        any
    }

    /// Starts a handler and polls it once, in place; its answer when it is
    /// ready at once (else it waits in its task entry for its waker).
    pub(crate) fn run_start(&mut self, s: Start) -> Option<Answer> {
        let Start {
            id,
            handler,
            req,
            scheme,
            at,
        } = s;
        let task = req.cancel.wake.index;
        let ctx = CallContext {
            tracing: req.tracing,
            deadline: req.deadline,
        };
        if let Some(m) = &handler.metrics {
            m.started();
        }
        let index = handler.index as usize;
        if self.free_slots.len() <= index {
            self.free_slots.resize_with(index + 1, Vec::new);
        }
        let mut slot = self.free_slots[index]
            .pop()
            .unwrap_or_else(|| handler.factory.new_slot());
        let entry = &self.tasks[task as usize];
        entry.wake.queued.store(false, Ordering::Release);
        let mut cx = Context::from_waker(&entry.waker);
        let polled = in_call(ctx, || {
            slot.start(req);
            slot.poll(&mut cx)
        });
        match polled {
            Poll::Ready(result) => {
                self.free_slots[index].push(slot);
                Some(Answer {
                    id,
                    task,
                    result,
                    scheme,
                    metrics: handler.metrics,
                    at,
                })
            }
            Poll::Pending => {
                let body = match self.calls.remove(&id) {
                    Some(Inbound::Draining { body }) => Some(body),
                    _ => None,
                };
                self.calls.insert(id, Inbound::Running { task, body });
                self.tasks[task as usize].task = Some(Task::Handler {
                    id,
                    handler: handler.index,
                    slot,
                    ctx,
                    scheme,
                    metrics: handler.metrics,
                    at,
                });
                None
            }
        }
    }

    fn poll_task(&mut self, task: u32) {
        let Some(entry) = self.tasks.get_mut(task as usize) else {
            return;
        };
        entry.wake.queued.store(false, Ordering::Release);
        let mut cx = Context::from_waker(&entry.waker);
        match &mut entry.task {
            None => {}
            Some(Task::Handler { slot, ctx, .. }) => {
                let ctx = *ctx;
                let Poll::Ready(result) = in_call(ctx, || slot.poll(&mut cx)) else {
                    return;
                };
                let Some(Task::Handler {
                    id,
                    handler,
                    slot,
                    scheme,
                    metrics,
                    at,
                    ..
                }) = entry.task.take()
                else {
                    return;
                };
                self.give_back(handler, slot);
                match self.calls.remove(&id) {
                    Some(Inbound::Running {
                        body: Some(body), ..
                    }) => {
                        self.calls.insert(id, Inbound::Draining { body });
                    }
                    Some(Inbound::Running { .. }) | None => {}
                    Some(other) => {
                        self.calls.insert(id, other);
                    }
                }
                self.answers.push(Answer {
                    id,
                    task,
                    result,
                    scheme,
                    metrics,
                    at,
                });
            }
            Some(Task::Respond { id, fut }) => {
                if fut.as_mut().poll(&mut cx).is_pending() {
                    return;
                }
                let id = *id;
                entry.task = None;
                self.release_task(task);
                match self.calls.remove(&id) {
                    Some(Inbound::Running {
                        body: Some(body), ..
                    }) => {
                        self.calls.insert(id, Inbound::Draining { body });
                    }
                    Some(Inbound::Running { .. }) | None => {}
                    Some(other) => {
                        self.calls.insert(id, other);
                    }
                }
            }
        }
    }

    fn give_back(&mut self, handler: u32, slot: Box<dyn HandlerSlot>) {
        if let Some(list) = self.free_slots.get_mut(handler as usize) {
            list.push(slot);
        }
    }

    fn alloc_task(&mut self) -> u32 {
        if let Some(t) = self.free_tasks.pop() {
            return t;
        }
        let index = self.tasks.len() as u32;
        let wake = Arc::new(TaskWake {
            index,
            ready: self.ready.clone(),
            queued: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            has_token: AtomicBool::new(false),
            token: Mutex::new(None),
        });
        let waker = Waker::from(wake.clone());
        self.tasks.push(TaskEntry {
            wake,
            waker,
            task: None,
        });
        index
    }

    /// The call in entry `task` is over; the entry is free again.
    fn release_task(&mut self, task: u32) {
        if let Some(e) = self.tasks.get(task as usize) {
            e.wake.end_call();
            self.free_tasks.push(task);
        }
    }

    /// Drops whatever runs in entry `task` (the call was cancelled).
    fn end_task(&mut self, task: u32) {
        let Some(entry) = self.tasks.get_mut(task as usize) else {
            return;
        };
        match entry.task.take() {
            Some(Task::Handler {
                handler, mut slot, ..
            }) => {
                slot.clear();
                self.give_back(handler, slot);
                self.release_task(task);
            }
            Some(Task::Respond { .. }) => self.release_task(task),
            None => {}
        }
    }

    // ----- under the lock again: answers go out -----

    /// Sends every answer collected by [`Dispatch::run`]; `now` ends their
    /// latency.
    pub(crate) fn send_answers(&mut self, st: &mut ConnState, now: Instant) {
        let mut answers = std::mem::take(&mut self.answers);
        for a in answers.drain(..) {
            self.answer(st, a, now);
        }
        self.answers = answers;
    }

    /// Sends one handler's answer.
    pub(crate) fn answer(&mut self, st: &mut ConnState, a: Answer, now: Instant) {
        let Answer {
            id,
            task,
            result,
            scheme,
            metrics,
            at,
        } = a;
        if !matches!(&result, Ok(r) if matches!(r.arg3, Body::Stream(_))) {
            self.release_task(task);
        }
        if let Some(m) = &metrics {
            m.done(
                result.as_ref().map(|r| r.code),
                now.saturating_duration_since(at),
            );
        }
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = st.conn.send_error(id, e.code(), e.message());
                return;
            }
        };
        let headers = if resp.headers.is_empty() {
            // The usual answer carries only the request's `as`.
            Ok(scheme.unwrap_or_default())
        } else {
            resp.headers
                .validate()
                .map_err(crate::frame::EncodeError::from)
                .and_then(|()| {
                    let as_ = scheme.as_ref().and_then(|s| s.get(b"as"));
                    let as_ = as_.filter(|_| resp.headers.get(b"as").is_none());
                    let pairs = as_.map(|v| (&b"as"[..], v)).into_iter();
                    TransportHeaders::strict(pairs.chain(resp.headers.iter()))
                })
        };
        let headers = match headers {
            Ok(h) => h,
            Err(e) => {
                let _ = st.conn.send_error(
                    id,
                    ErrorCode::UNEXPECTED,
                    &format!("bad response headers: {e}"),
                );
                return;
            }
        };
        let arg3 = match resp.arg3 {
            Body::Full(b) => b,
            Body::Chunks(c) => super::body::join(c),
            Body::Stream(stream) => {
                let started = st
                    .conn
                    .start_response(id, resp.code, headers)
                    .and_then(|()| st.conn.end_response_arg(id))
                    .and_then(|()| st.conn.write_response(id, &resp.arg2))
                    .and_then(|()| st.conn.end_response_arg(id));
                if started.is_ok() {
                    self.spawn_respond(id, task, stream);
                } else {
                    self.release_task(task);
                }
                return;
            }
        };
        if let Err(e) =
            st.conn
                .send_response_shared(id, resp.code, headers, [&Bytes::new(), &resp.arg2, &arg3])
            && e.code() != ErrorCode::CANCELLED
        {
            let _ = st.conn.send_error(id, ErrorCode::UNEXPECTED, e.message());
        }
    }

    /// Entry `task` (the handler's) goes on to write a streamed response's
    /// arg3 as its stream yields.
    fn spawn_respond(
        &mut self,
        id: u32,
        task: u32,
        stream: Pin<Box<dyn futures::Stream<Item = Result<Bytes, Error>> + Send>>,
    ) {
        let fut = stream_response(self.shared.clone(), id, stream);
        // A streamed request body still arriving keeps its stream.
        let body = match self.calls.remove(&id) {
            Some(Inbound::Draining { body }) => Some(body),
            _ => None,
        };
        self.calls.insert(id, Inbound::Running { task, body });
        let entry = &mut self.tasks[task as usize];
        entry.task = Some(Task::Respond {
            id,
            fut: Box::pin(fut),
        });
        // Poll it on the next pass.
        entry.wake.queued.store(false, Ordering::Release);
        entry.waker.wake_by_ref();
    }
}

fn push_arg3(body: &ArgSender, chunks: &FrameChunks) {
    for ArgChunk { index, data, .. } in chunks.iter() {
        if index == 2 {
            body.push(data);
        }
    }
}

/// Writes a streamed response's arg3, waiting for room in the write queue
/// before taking each chunk from the stream.
async fn stream_response(
    shared: Arc<Shared>,
    id: u32,
    mut stream: Pin<Box<dyn futures::Stream<Item = Result<Bytes, Error>> + Send>>,
) {
    loop {
        if SpaceWait::until_room(&shared).await.is_err() {
            return;
        }
        let next = stream.next().await;
        let mut st = shared.lock();
        match next {
            Some(Ok(chunk)) => {
                if st.conn.write_response(id, &chunk).is_err() {
                    return;
                }
            }
            Some(Err(e)) => {
                let _ = st.conn.send_error(id, ErrorCode::UNEXPECTED, e.message());
                return;
            }
            None => {
                let _ = st.conn.end_response_arg(id);
                return;
            }
        }
        drop(st);
        shared.driver.wake();
    }
}
