//! State shared by a connection's driver and the handles that make calls on
//! it: the protocol core, the callers waiting for responses, and the callers
//! waiting for room in the write queue. One mutex guards it; nobody holds it
//! across an `.await`, and the driver takes it once per batch.
//!
//! This module is a leaf: it knows the data, not the logic. The caller's side
//! of a call (sending, waiting, cancelling on drop) is in `outbound.rs`; the
//! driver feeds it from `driver.rs`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::task::AtomicWaker;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::{Notify, oneshot};

use super::body::ArgSender;
use super::observe::MetricsCache;
use crate::Error;
use crate::frame::{ArgCollector, ArgScheme, ResponseCode, Tracing, TransportHeaders};
use crate::proto::table::{CallTable, OutId};
use crate::proto::{CloseReason, Connection, PeerInfo};

pub(crate) use crate::util::now;

/// Maps keyed by message ids (which the peer chooses, hence a seeded hasher).
pub(crate) type IdMap<V> = crate::util::HashMap<u32, V>;

/// Transport limits of one connection.
#[derive(Debug, Clone)]
pub(crate) struct DriverConfig {
    pub(crate) read_timeout: Duration,
    pub(crate) max_write_queue: usize,
    pub(crate) metrics: bool,
}

/// What the driver and every handle on the connection share.
pub(crate) struct Shared {
    pub(crate) state: Mutex<ConnState>,
    /// Wakes the driver: new frames queued, a handler woke, a close.
    pub(crate) driver: AtomicWaker,
    /// Bytes the driver took from the core and has not written yet.
    pub(crate) queued: AtomicUsize,
    pub(crate) config: DriverConfig,
    pub(crate) peer_addr: Option<SocketAddr>,
    pub(crate) finished: AtomicBool,
    pub(crate) finished_notify: Notify,
    /// Inbound calls the driver's dispatch tracks (for `table_sizes`).
    pub(crate) inbound_calls: AtomicUsize,
    /// The connection's state for readers that do not take the lock (the
    /// pool asks on every call): `CLOSED`, `ACCEPTS`.
    flags: AtomicU8,
}

const CLOSED: u8 = 1;
const ACCEPTS: u8 = 2;

/// The mutable part, behind [`Shared::state`].
pub(crate) struct ConnState {
    pub(crate) conn: Connection,
    /// Callers waiting for responses, by slot.
    pub(crate) waiters: Waiters,
    /// Streamed responses whose head was delivered: arg3 goes here.
    pub(crate) streams: IdMap<ArgSender>,
    /// Callers waiting for room in the write queue, served in order.
    pub(crate) space: SpaceQueue,
    /// Header sets and metric handles of the calls we make, by what our own
    /// application sends (never by anything the peer sent).
    pub(crate) routes: RouteCache,
    pub(crate) rng: SmallRng,
    pub(crate) ready: Vec<oneshot::Sender<Result<PeerInfo, Error>>>,
    pub(crate) pongs: IdMap<oneshot::Sender<()>>,
    pub(crate) closed: Option<CloseReason>,
    /// The peer's `host_port` (the metrics' `peer` label source).
    pub(crate) peer_host_port: Arc<str>,
    /// Bytes of streamed responses their consumers took or dropped, to be
    /// released from the core's `max_response_bytes` budget by the driver.
    pub(crate) taken: Arc<std::sync::atomic::AtomicU64>,
    /// The [`Shared`] this state is in (for a streamed response's body to
    /// give up on its call when it is dropped).
    pub(crate) me: std::sync::Weak<Shared>,
}

impl Shared {
    pub(crate) fn new(
        conn: Connection,
        config: DriverConfig,
        peer_addr: Option<SocketAddr>,
    ) -> Arc<Shared> {
        Arc::new_cyclic(|me| Shared {
            state: Mutex::new(ConnState {
                me: me.clone(),
                conn,
                waiters: Waiters::default(),
                streams: IdMap::default(),
                space: SpaceQueue::default(),
                routes: RouteCache::default(),
                rng: SmallRng::from_rng(&mut rand::rng()),
                ready: Vec::new(),
                pongs: IdMap::default(),
                closed: None,
                peer_host_port: Arc::from(""),
                taken: Arc::default(),
            }),
            driver: AtomicWaker::new(),
            queued: AtomicUsize::new(0),
            config,
            peer_addr,
            finished: AtomicBool::new(false),
            finished_notify: Notify::new(),
            inbound_calls: AtomicUsize::new(0),
            flags: AtomicU8::new(0),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes the core's state for [`Shared::is_closed`] and
    /// [`Shared::accepts_new_calls`]; called under the lock after anything
    /// that may change it.
    pub(crate) fn refresh_flags(&self, conn: &Connection) {
        let f = if conn.is_closed() { CLOSED } else { 0 }
            | if conn.accepts_new_calls() { ACCEPTS } else { 0 };
        self.flags.store(f, Ordering::Release);
    }

    /// True once the connection is closed (without taking the lock).
    pub(crate) fn is_closed(&self) -> bool {
        self.flags.load(Ordering::Acquire) & CLOSED != 0
    }

    /// True while new calls may go on the connection (without the lock).
    pub(crate) fn accepts_new_calls(&self) -> bool {
        self.flags.load(Ordering::Acquire) & ACCEPTS != 0
    }

    /// True when the write queue is over its limit.
    pub(crate) fn write_queue_full(&self, st: &ConnState) -> bool {
        self.queued.load(Ordering::Relaxed) + st.conn.transmit_len() > self.config.max_write_queue
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

// ===== waiters =====

/// Callers waiting for a response: a slab of slots (reused, so a call
/// allocates nothing in steady state) and the message id of each.
#[derive(Default)]
pub(crate) struct Waiters {
    pub(crate) slots: Vec<Waiter>,
    free: Vec<u32>,
    /// Message id → slot (ids are ours, consecutive: a direct-mapped table).
    by_id: CallTable<OutId, u32>,
}

/// One slot. `generation` changes every time the slot is reused, so a stale handle
/// can never touch another call's slot.
pub(crate) struct Waiter {
    pub(crate) generation: u32,
    pub(crate) id: u32,
    pub(crate) waker: Option<Waker>,
    pub(crate) state: WaitState,
}

/// Where one call's response stands.
pub(crate) enum WaitState {
    /// The slot is unused.
    Free,
    /// Waiting for (the rest of) the response.
    Waiting(Box<Assembly>),
    /// Waiting for the first frame of a single-frame response; nothing to
    /// assemble yet (the common case, kept unboxed).
    Idle { streaming: bool },
    /// The outcome, for the caller to take.
    Done(Outcome),
}

/// A response gathered across frames.
pub(crate) struct Assembly {
    pub(crate) streaming: bool,
    pub(crate) head: Option<(ResponseCode, TransportHeaders, Tracing)>,
    pub(crate) args: ArgCollector,
    pub(crate) arg2_done: bool,
    /// Arg bytes collected so far (a streamed response's are released to the
    /// core's budget by the transport, `max_response_bytes`).
    pub(crate) bytes: u64,
}

/// What a finished call gives its caller.
pub(crate) enum Outcome {
    Response {
        code: ResponseCode,
        headers: TransportHeaders,
        tracing: Tracing,
        arg2: Bytes,
        arg3: Bytes,
        at: Instant,
    },
    /// The head of a streamed response; arg3 follows through the stream.
    Streaming {
        code: ResponseCode,
        headers: TransportHeaders,
        tracing: Tracing,
        arg2: Bytes,
        body: super::body::ArgStream,
        at: Instant,
    },
    Failed(Error, Instant),
    /// Taken by the caller.
    Taken,
}

impl Waiters {
    /// A new slot for a call waiting on message `id`; returns (slot, generation).
    pub(crate) fn insert(&mut self, id: u32, streaming: bool) -> (u32, u32) {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Waiter {
                    generation: 0,
                    id: 0,
                    waker: None,
                    state: WaitState::Free,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let w = &mut self.slots[slot as usize];
        w.generation = w.generation.wrapping_add(1);
        w.id = id;
        w.state = WaitState::Idle { streaming };
        self.by_id.insert(OutId(id), slot);
        (slot, w.generation)
    }

    /// The slot waiting on message `id`, if any.
    pub(crate) fn by_id(&mut self, id: u32) -> Option<&mut Waiter> {
        let slot = *self.by_id.get(OutId(id))?;
        self.slots.get_mut(slot as usize)
    }

    /// Stops routing message `id` to its slot (its outcome is in, or the
    /// caller gave up); returns the slot.
    pub(crate) fn unroute(&mut self, id: u32) -> Option<&mut Waiter> {
        let slot = self.by_id.remove(OutId(id))?;
        self.slots.get_mut(slot as usize)
    }

    /// The slot of a live handle, if the handle is still its owner.
    pub(crate) fn get(&mut self, slot: u32, generation: u32) -> Option<&mut Waiter> {
        self.slots
            .get_mut(slot as usize)
            .filter(|w| w.generation == generation && !matches!(w.state, WaitState::Free))
    }

    /// Frees a slot (its handle is done with it).
    pub(crate) fn release(&mut self, slot: u32) {
        if let Some(w) = self.slots.get_mut(slot as usize) {
            if matches!(w.state, WaitState::Free) {
                return;
            }
            if !matches!(w.state, WaitState::Done(_)) {
                self.by_id.remove(OutId(w.id));
            }
            w.state = WaitState::Free;
            w.waker = None;
            self.free.push(slot);
        }
    }

    /// Message ids still routed to a slot.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Every routed slot (the connection closed: each gets its failure).
    pub(crate) fn drain_routed(&mut self) -> Vec<u32> {
        let ids = self.by_id.sorted_ids();
        ids.into_iter()
            .filter_map(|id| self.by_id.remove(id))
            .collect()
    }
}

// ===== write-queue space =====

/// Callers waiting for the write queue to drain, first come first served: a
/// caller that arrives while others wait queues behind them, and the driver
/// wakes only the first; each caller served wakes the next while room lasts.
#[derive(Default)]
pub(crate) struct SpaceQueue {
    next: u64,
    queue: VecDeque<(u64, Option<Waker>)>,
}

impl SpaceQueue {
    /// True when nobody waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Takes a place at the back of the line.
    pub(crate) fn join(&mut self) -> u64 {
        let t = self.next;
        self.next += 1;
        self.queue.push_back((t, None));
        t
    }

    /// True when `ticket` is first in line.
    pub(crate) fn is_first(&self, ticket: u64) -> bool {
        self.queue.front().is_some_and(|(t, _)| *t == ticket)
    }

    /// Remembers who to wake for `ticket`.
    pub(crate) fn park(&mut self, ticket: u64, waker: &Waker) {
        if let Some((_, w)) = self.queue.iter_mut().find(|(t, _)| *t == ticket) {
            match w {
                Some(w) if w.will_wake(waker) => {}
                _ => *w = Some(waker.clone()),
            }
        }
    }

    /// Leaves the line (served, or gave up); wakes the next caller when the
    /// one leaving was first and `room` says there is space for more.
    pub(crate) fn leave(&mut self, ticket: u64, room: bool) {
        let was_first = self.is_first(ticket);
        self.queue.retain(|(t, _)| *t != ticket);
        if was_first && room {
            self.wake_first();
        }
    }

    /// Wakes the caller first in line.
    pub(crate) fn wake_first(&mut self) {
        if let Some((_, Some(w))) = self.queue.front_mut() {
            w.wake_by_ref();
        }
    }

    /// Wakes everyone (the connection closed).
    pub(crate) fn wake_all(&mut self) {
        for (_, w) in &mut self.queue {
            if let Some(w) = w.take() {
                w.wake();
            }
        }
    }
}

// ===== header sets and metric handles of our calls =====

/// Most routes remembered per connection; beyond it the oldest is replaced.
const MAX_ROUTES: usize = 64;

/// What a plain call (only `cn` and `as`) to one (service, method) sends
/// and records, built once.
pub(crate) struct Route {
    pub(crate) service: Bytes,
    pub(crate) method: Bytes,
    pub(crate) caller: Arc<str>,
    pub(crate) scheme: ArgScheme,
    pub(crate) headers: TransportHeaders,
    pub(crate) metrics: Option<Arc<super::observe::CallMetrics>>,
}

/// Routes by what our application sends, most recent first to look at.
#[derive(Default)]
pub(crate) struct RouteCache {
    pub(crate) routes: Vec<Route>,
    next_victim: usize,
    /// Handles for calls that carry more than `cn` and `as`.
    pub(crate) metrics: MetricsCache,
}

impl RouteCache {
    /// The index of the route matching these values, if remembered.
    pub(crate) fn find(
        &self,
        service: &[u8],
        method: &[u8],
        caller: &str,
        scheme: &ArgScheme,
    ) -> Option<usize> {
        self.routes.iter().position(|r| {
            same_bytes(&r.service, service)
                && same_bytes(&r.method, method)
                && same_bytes(r.caller.as_bytes(), caller.as_bytes())
                && r.scheme == *scheme
        })
    }

    /// Remembers a route; returns its index.
    pub(crate) fn insert(&mut self, route: Route) -> usize {
        if self.routes.len() < MAX_ROUTES {
            self.routes.push(route);
            return self.routes.len() - 1;
        }
        let i = self.next_victim % MAX_ROUTES;
        self.next_victim += 1;
        self.routes[i] = route;
        i
    }
}

/// Equal bytes; cheap when both are the same memory (the same static string
/// passed call after call), which is checked first.
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && (std::ptr::eq(a.as_ptr(), b.as_ptr()) || a == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn space_is_handed_out_first_come_first_served_one_at_a_time() {
        let mut q = SpaceQueue::default();
        let wakes: Vec<Arc<Count>> = (0..3)
            .map(|_| Arc::new(Count(AtomicUsize::new(0))))
            .collect();
        let tickets: Vec<u64> = (0..3).map(|_| q.join()).collect();
        for (t, w) in tickets.iter().zip(&wakes) {
            q.park(*t, &Waker::from(w.clone()));
        }
        assert!(q.is_first(tickets[0]) && !q.is_first(tickets[1]));
        // The driver made room: only the first is woken.
        q.wake_first();
        let n = |i: usize| wakes[i].0.load(Ordering::SeqCst);
        assert_eq!((n(0), n(1), n(2)), (1, 0, 0));
        // It goes, room remains: it wakes the next, not everyone.
        q.leave(tickets[0], true);
        assert_eq!((n(0), n(1), n(2)), (1, 1, 0));
        assert!(q.is_first(tickets[1]));
        // The next goes and fills the queue: nobody else is woken.
        q.leave(tickets[1], false);
        assert_eq!(n(2), 0);
        // A caller that arrives now queues behind the one still waiting.
        let late = q.join();
        assert!(q.is_first(tickets[2]) && !q.is_first(late));
        // One that gives up while not first wakes nobody.
        q.leave(late, true);
        assert_eq!(n(2), 0);
        q.wake_all();
        assert_eq!(n(2), 1);
    }
}
