//! The async shell: peers, their connections, and the call loop that ties
//! selection, the breakers, retries and the budget together.
//!
//! One mutex holds the whole pool state ([`State`]); it is taken twice per
//! attempt (to pick a peer, and to record the result) and never across an
//! `.await`. Connects run in their own tasks so that an attempt that gives up
//! does not abandon a half-made connection, and several attempts waiting for
//! the same peer share one connect.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::breaker::{Admission, Breaker, BreakerState, Class, Transition};
use super::budget::RetryBudget;
use super::config::{CallPolicy, PoolConfig};
use super::now;
use super::pick::{ConnFacts, ConnRules, Grow, PeerFacts, choose_conn, choose_peer};
use super::retry::{self, Decision, MIN_ATTEMPT_TIME, RetryContext, Stop};
use super::select::{Candidate, PeakEwma, Selector, Strategy, ramp_weight};
use super::source::{PeerEntry, PeerSet, PeerSource};
use super::stats::{CallStats, PeerStatus, PoolStats};
use crate::Error;
use crate::frame::{ErrorCode, RetryFlags};
use crate::transport::{Body, CallRequest, CallResponse, Channel, Client};

type Connecting = Shared<BoxFuture<'static, Result<(u64, Client), Error>>>;

struct Conn {
    id: u64,
    client: Client,
    in_flight: usize,
    last_used: Instant,
}

struct Peer {
    id: u64,
    addr: Arc<str>,
    conns: Vec<Conn>,
    connecting: Option<Connecting>,
    connect_failures: u32,
    reconnect_at: Option<Instant>,
    breaker: Breaker,
    in_flight: usize,
    ewma: PeakEwma,
    /// Start of the ramp-up; `None` once at full share.
    ramp_since: Option<Instant>,
    times_opened: u64,
    times_recovered: u64,
    /// The last active health check's verdict.
    healthy: Option<bool>,
    /// Its source's rank (DNS SRV priority and weight; 0 and 1 otherwise).
    priority: u16,
    share: u16,
}

struct State {
    peers: Vec<Peer>,
    next_id: u64,
    selector: Selector,
    rng: SmallRng,
    budget: RetryBudget,
    /// Connections of removed peers, closed once our calls on them end.
    retiring: Vec<Client>,
    candidates: Vec<Candidate>,
    index: Vec<usize>,
    facts: Vec<PeerFacts>,
    conn_facts: Vec<ConnFacts>,
    /// The shard-key ring of the peers, rebuilt when they change (POOL-31).
    ring: Option<super::ring::HashRing>,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    attempts: AtomicU64,
    retries: AtomicU64,
    budget_exhausted: AtomicU64,
    declined: AtomicU64,
    connects: AtomicU64,
    connect_failures: AtomicU64,
}

struct Inner {
    channel: Channel,
    config: PoolConfig,
    state: Mutex<State>,
    counters: Counters,
    shutdown: CancellationToken,
}

/// A fleet of peers behind one call: selection, connections, retries, retry
/// budget and circuit breakers. Cheap to clone; clones share everything.
///
/// ```no_run
/// # async fn f() -> Result<(), tchan::Error> {
/// use tchan::peer::{PeerPool, PoolConfig};
/// use tchan::{CallRequest, Channel};
///
/// let pool = PeerPool::new(
///     Channel::new("caller"),
///     ["10.0.0.1:4040", "10.0.0.2:4040"],
///     PoolConfig::default(),
/// );
/// let resp = pool.call(CallRequest::new("svc", "echo").arg3("hi")).await?;
/// # Ok(()) }
/// ```
///
/// Must be created inside a tokio runtime (it starts a sweep task, which ends
/// when the last clone is dropped; dropping the pool also closes its
/// connections).
#[derive(Clone)]
pub struct PeerPool {
    inner: Arc<Inner>,
}

impl fmt::Debug for PeerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerPool")
            .field("peers", &self.inner.lock().peers.len())
            .finish_non_exhaustive()
    }
}

// === impl PeerPool ===

impl PeerPool {
    /// A pool over `peers` (`host:port`), connecting lazily through
    /// `channel`. The initial peers start at full share (no ramp-up).
    pub fn new(
        channel: Channel,
        peers: impl IntoIterator<Item = impl Into<String>>,
        config: PoolConfig,
    ) -> PeerPool {
        let t = now();
        let seed = config.seed.unwrap_or_else(rand::random);
        let state = State {
            peers: Vec::new(),
            next_id: 1,
            selector: Selector::new(config.selection),
            rng: SmallRng::seed_from_u64(seed),
            budget: RetryBudget::new(config.retry_budget, t),
            retiring: Vec::new(),
            candidates: Vec::new(),
            index: Vec::new(),
            facts: Vec::new(),
            conn_facts: Vec::new(),
            ring: None,
        };
        let inner = Arc::new(Inner {
            channel,
            config,
            state: Mutex::new(state),
            counters: Counters::default(),
            shutdown: CancellationToken::new(),
        });
        {
            let mut st = inner.lock();
            for p in peers {
                inner.add(&mut st, t, p.into(), false);
            }
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(sweep_loop(
                Arc::downgrade(&inner),
                inner.config.sweep_interval,
                inner.shutdown.clone(),
            ));
            #[cfg(feature = "thrift")]
            if let Some((interval, service)) = inner.config.health_check.clone() {
                rt.spawn(health_loop(
                    Arc::downgrade(&inner),
                    interval,
                    service,
                    inner.shutdown.clone(),
                ));
            }
        }
        PeerPool { inner }
    }

    /// The channel calls go out through.
    pub fn channel(&self) -> &Channel {
        &self.inner.channel
    }

    /// The pool's options.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// Adds a peer; false if it is already in the pool (or empty). It ramps
    /// up unless the pool had no peer.
    pub fn add_peer(&self, addr: impl Into<String>) -> bool {
        let mut st = self.inner.lock();
        let ramp = !st.peers.is_empty();
        self.inner.add(&mut st, now(), addr.into(), ramp)
    }

    /// Removes a peer; false if it was not in the pool. It takes no new
    /// calls; its connections close once the pool's calls on them end.
    pub fn remove_peer(&self, addr: &str) -> bool {
        let mut st = self.inner.lock();
        Inner::remove(&mut st, addr.trim())
    }

    /// Makes the pool's peers exactly `peers`: adds the new ones (ramping up,
    /// unless the pool was empty) and removes the missing ones.
    pub fn set_peers(&self, peers: impl IntoIterator<Item = impl Into<String>>) {
        let set = PeerSet::new(peers.into_iter().map(|p| PeerEntry::new(p)));
        self.set_peer_set(&set);
    }

    /// Makes the pool's peers exactly those of `set`, with their priorities
    /// and weights (POOL-34): adds the new ones (ramping up, unless the pool
    /// was empty), re-ranks the others, and drains the missing ones: they
    /// take no new call, and each of their connections closes once the
    /// pool's calls on it have ended (never mid-call).
    pub fn set_peer_set(&self, set: &PeerSet) {
        let want: Vec<PeerEntry> = set
            .entries()
            .iter()
            .map(|e| PeerEntry {
                addr: e.addr.trim().to_string(),
                ..e.clone()
            })
            .filter(|e| !e.addr.is_empty())
            .collect();
        let t = now();
        let mut st = self.inner.lock();
        let gone: Vec<Arc<str>> = st
            .peers
            .iter()
            .filter(|p| !want.iter().any(|w| *w.addr == *p.addr))
            .map(|p| p.addr.clone())
            .collect();
        for addr in &gone {
            Inner::remove(&mut st, addr);
        }
        let ramp = !st.peers.is_empty();
        let mut added = 0;
        for e in want {
            added += usize::from(self.inner.add(&mut st, t, e.addr.clone(), ramp));
            if let Some(p) = st.peers.iter_mut().find(|p| *p.addr == *e.addr) {
                p.priority = e.priority;
                p.share = e.weight;
            }
        }
        if added > 0 || !gone.is_empty() {
            tracing::info!(
                target: "tchan::peer",
                added,
                removed = gone.len(),
                peers = st.peers.len(),
                "peer list changed"
            );
        }
    }

    /// Gives the pool a connection it did not open (for example one that the
    /// peer opened to us, from [`Channel::accept_io`]), adding the peer if
    /// needed. Returns false if the connection is already closed.
    pub fn adopt(&self, addr: &str, client: Client) -> bool {
        if client.is_closed() {
            return false;
        }
        let t = now();
        let mut st = self.inner.lock();
        let ramp = !st.peers.is_empty();
        self.inner.add(&mut st, t, addr.to_string(), ramp);
        let id = st.next_id;
        st.next_id += 1;
        let Some(p) = st.peers.iter_mut().find(|p| *p.addr == *addr.trim()) else {
            return false;
        };
        p.conns.push(Conn {
            id,
            client,
            in_flight: 0,
            last_used: t,
        });
        true
    }

    /// Follows a peer source: every set it delivers replaces the pool's
    /// ([`PeerPool::set_peer_set`]). The task ends with the source or the
    /// pool.
    pub fn follow(&self, mut source: impl PeerSource) -> tokio::task::JoinHandle<()> {
        use futures::StreamExt;
        let weak = Arc::downgrade(&self.inner);
        let shutdown = self.inner.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let list = tokio::select! {
                    l = source.next() => l,
                    _ = shutdown.cancelled() => return,
                };
                let (Some(list), Some(inner)) = (list, weak.upgrade()) else {
                    return;
                };
                PeerPool { inner }.set_peer_set(&list);
            }
        })
    }

    /// Every peer's state.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let t = now();
        let mut st = self.inner.lock();
        st.peers
            .iter_mut()
            .map(|p| {
                if let Some(tr) = p.breaker.handle_timeout(t) {
                    note(p, tr, t);
                }
                p.status(t, &self.inner.config)
            })
            .collect()
    }

    /// One peer's state.
    pub fn peer(&self, addr: &str) -> Option<PeerStatus> {
        self.peers().into_iter().find(|p| p.addr == addr)
    }

    /// Counters over the pool's life.
    pub fn stats(&self) -> PoolStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PoolStats {
            calls: get(&c.calls),
            attempts: get(&c.attempts),
            retries: get(&c.retries),
            budget_exhausted: get(&c.budget_exhausted),
            declined: get(&c.declined),
            connects: get(&c.connects),
            connect_failures: get(&c.connect_failures),
            connections: self.inner.lock().connections(),
        }
    }

    /// Retries the budget allows now.
    pub fn retry_budget_remaining(&self) -> u64 {
        self.inner.lock().budget.remaining(now())
    }

    /// Runs the sweep now (it also runs every [`PoolConfig::sweep_interval`]).
    pub fn sweep(&self) {
        self.inner.sweep(now());
    }

    /// Makes a call on some peer, retrying as the pool's options and the
    /// call's `re` header allow. The pool allocates nothing per call.
    pub async fn call(&self, req: CallRequest) -> Result<CallResponse, Error> {
        self.call_inner(req, CallPolicy::default(), false).await.0
    }

    /// [`PeerPool::call`], also saying how many attempts it took and which
    /// peers they went to (the list of peers costs an allocation).
    pub async fn call_with_stats(
        &self,
        req: CallRequest,
    ) -> (Result<CallResponse, Error>, CallStats) {
        self.call_inner(req, CallPolicy::default(), true).await
    }

    /// [`PeerPool::call`] that also counts the attempts, without the list of
    /// peers ([`CallStats::peers`] stays empty): what a load generator wants.
    pub async fn call_counting(
        &self,
        req: CallRequest,
    ) -> (Result<CallResponse, Error>, CallStats) {
        self.call_inner(req, CallPolicy::default(), false).await
    }

    /// Makes a call with per-call choices ([`CallPolicy`]).
    ///
    /// Each attempt goes to a peer chosen by the selection strategy, skipping
    /// peers whose breaker is open and those this call already tried. An
    /// attempt's ttl is what is left of the call's timeout (capped by the
    /// attempt timeout). A failed attempt is retried when [`retry::decide`]
    /// says so. When no peer can take the call, it fails at once with a local
    /// declined (0x04), which is never retried.
    pub async fn call_with(
        &self,
        req: CallRequest,
        policy: CallPolicy,
    ) -> (Result<CallResponse, Error>, CallStats) {
        self.call_inner(req, policy, true).await
    }

    async fn call_inner(
        &self,
        req: CallRequest,
        policy: CallPolicy,
        record_peers: bool,
    ) -> (Result<CallResponse, Error>, CallStats) {
        let inner = &self.inner;
        let start = now();
        let deadline = start + req.options.timeout();
        let flags = req
            .options
            .retry_flags()
            .unwrap_or_else(|| RetryFlags::parse(None));
        let max_retries = policy.max_retries.unwrap_or(inner.config.max_retries);
        let attempt_timeout = policy.attempt_timeout.or(inner.config.attempt_timeout);
        let mut req = req;
        // A streamed arg3 can be sent once; a whole one on every attempt.
        let mut stream_sent = false;
        inner.counters.calls.fetch_add(1, Ordering::Relaxed);
        let mut stats = CallStats::default();
        let mut tried = Tried::default();
        let mut last: Option<Error> = None;
        loop {
            let t = if stats.attempts == 0 { start } else { now() };
            let sk = req.options.shard_key().map(str::as_bytes);
            let pick = match inner.pick(t, &tried, stats.attempts == 0, sk) {
                Ok(p) => p,
                Err(declined) => {
                    // [POOL-15] tchan's own declined is final.
                    stats.stop = Some(Stop::NoPeerAvailable);
                    let err = match last {
                        Some(e) => e,
                        None => {
                            inner.counters.declined.fetch_add(1, Ordering::Relaxed);
                            declined
                        }
                    };
                    return (Err(err), stats);
                }
            };
            tried.push(pick.guard.peer);
            tried.last_addr = Some(pick.addr.clone());
            stats.attempts += 1;
            if record_peers {
                stats.peers.push(pick.addr.to_string());
            }
            inner.counters.attempts.fetch_add(1, Ordering::Relaxed);
            let left = deadline.saturating_duration_since(t);
            let ttl = attempt_timeout.map_or(left, |a| a.min(left));
            let err = match attempt(pick, &mut req, &mut stream_sent, t, ttl).await {
                Ok(resp) => return (Ok(resp), stats),
                Err(e) => e,
            };
            let t = now();
            let ctx = RetryContext {
                flags,
                idempotent: policy.idempotent,
                retries: stats.attempts - 1,
                max_retries,
                time_left: deadline.saturating_duration_since(t),
                replayable: !stream_sent,
            };
            let decision = retry::decide(&err, &ctx, &mut inner.lock().budget, t);
            match decision {
                Decision::Retry => {
                    inner.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        target: "tchan::peer",
                        peer = tried.last_addr.as_deref().unwrap_or(""),
                        error = %err,
                        attempt = stats.attempts,
                        "retrying on another peer"
                    );
                    last = Some(err);
                }
                Decision::Stop(why) => {
                    if why == Stop::BudgetExhausted {
                        inner
                            .counters
                            .budget_exhausted
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    stats.stop = Some(why);
                    return (Err(err), stats);
                }
            }
        }
    }
}

/// The peers a call has tried, for avoiding them on a retry: a few inline
/// (no allocation for the usual one to three attempts), more in a `Vec`.
#[derive(Default)]
struct Tried {
    inline: [u64; 4],
    n: usize,
    more: Vec<u64>,
    /// The address of the last one (for logs).
    last_addr: Option<Arc<str>>,
}

impl Tried {
    fn push(&mut self, peer: u64) {
        if self.n < self.inline.len() {
            self.inline[self.n] = peer;
        } else {
            self.more.push(peer);
        }
        self.n += 1;
    }

    fn contains(&self, peer: &u64) -> bool {
        self.inline[..self.n.min(self.inline.len())].contains(peer) || self.more.contains(peer)
    }
}

/// One attempt on the picked peer: wait for a connection if needed, send,
/// record the result. A whole arg3 is sent by reference (the request stays
/// with the call for a retry); a streamed one is moved out, once.
async fn attempt(
    pick: Pick,
    req: &mut CallRequest,
    stream_sent: &mut bool,
    t: Instant,
    ttl: Duration,
) -> Result<CallResponse, Error> {
    let Pick {
        mut guard,
        route,
        addr,
    } = pick;
    let attempt_deadline = t + ttl;
    // Time passes only while waiting for a connection.
    let mut sent = t;
    let client = match route {
        Route::Ready(client) => client,
        Route::Refused(e) => {
            guard.finish(Class::Ignore, None);
            return Err(e);
        }
        Route::Wait(connecting) => {
            let until = tokio::time::Instant::from_std(attempt_deadline);
            match tokio::time::timeout_at(until, connecting).await {
                Ok(Ok((conn, client))) => {
                    guard.attach(conn);
                    sent = now();
                    client
                }
                Ok(Err(e)) => {
                    guard.finish_with(Err(&e), None);
                    return Err(e);
                }
                Err(_) => {
                    // Nothing was sent: a connection error, safe to retry.
                    let e = Error::new(
                        ErrorCode::NETWORK,
                        format!("no connection to {addr} within the attempt's time"),
                    );
                    guard.finish_with(Err(&e), None);
                    return Err(e);
                }
            }
        }
    };
    let left = attempt_deadline.saturating_duration_since(sent);
    if left < MIN_ATTEMPT_TIME {
        guard.finish(Class::Ignore, None);
        return Err(Error::new(
            ErrorCode::TIMEOUT,
            "the deadline passed before the call could be sent",
        ));
    }
    let result = if matches!(req.arg3, Body::Stream(_)) {
        if std::mem::replace(stream_sent, true) {
            guard.finish(Class::Ignore, None);
            return Err(Error::new(
                ErrorCode::BAD_REQUEST,
                "the streamed arg3 was already sent",
            ));
        }
        let mut options = req.options.clone();
        options.set_timeout(left);
        let once = CallRequest {
            service: req.service.clone(),
            method: req.method.clone(),
            arg2: req.arg2.clone(),
            arg3: std::mem::replace(&mut req.arg3, Body::empty()),
            options,
        };
        client.call(once).await
    } else {
        client.call_ref(req, left).await
    };
    let done = now();
    guard.finish_with_at(
        result.as_ref(),
        Some(done.saturating_duration_since(sent)),
        done,
    );
    result
}

/// How the picked attempt reaches its peer.
enum Route {
    /// On this open connection.
    Ready(Client),
    /// Once this connect finishes.
    Wait(Connecting),
    /// Not at all: the pool's connection cap (local busy, retryable).
    Refused(Error),
}

struct Pick {
    guard: AttemptGuard,
    route: Route,
    addr: Arc<str>,
}

/// An attempt's claim on its peer (in-flight count, breaker admission);
/// released with the result, or as ignored if the caller goes away.
struct AttemptGuard {
    inner: Arc<Inner>,
    peer: u64,
    conn: Option<u64>,
    admission: Admission,
    done: bool,
}

impl AttemptGuard {
    fn attach(&mut self, conn: u64) {
        self.conn = Some(conn);
        let t = now();
        let mut st = self.inner.lock();
        if let Some(c) = st
            .peers
            .iter_mut()
            .find(|p| p.id == self.peer)
            .and_then(|p| p.conns.iter_mut().find(|c| c.id == conn))
        {
            c.in_flight += 1;
            c.last_used = t;
        }
    }

    fn finish_with(&mut self, result: Result<&CallResponse, &Error>, rtt: Option<Duration>) {
        self.finish_with_at(result, rtt, now());
    }

    fn finish_with_at(
        &mut self,
        result: Result<&CallResponse, &Error>,
        rtt: Option<Duration>,
        t: Instant,
    ) {
        let class = self.inner.config.classifier.classify(result);
        self.finish_at(class, rtt, t);
    }

    fn finish(&mut self, class: Class, rtt: Option<Duration>) {
        self.finish_at(class, rtt, now());
    }

    fn finish_at(&mut self, class: Class, rtt: Option<Duration>, t: Instant) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        self.inner
            .release(self.peer, self.conn, self.admission, class, rtt, t);
    }
}

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        // [POOL-27] a caller that gives up releases its slot.
        self.finish(Class::Ignore, None);
    }
}

// === impl Inner ===

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, st: &mut State, t: Instant, addr: String, ramp: bool) -> bool {
        let addr = addr.trim();
        if addr.is_empty() || st.peers.iter().any(|p| *p.addr == *addr) {
            return false;
        }
        st.ring = None;
        let id = st.next_id;
        st.next_id += 1;
        let cfg = &self.config;
        st.peers.push(Peer {
            id,
            addr: addr.into(),
            conns: Vec::new(),
            connecting: None,
            connect_failures: 0,
            reconnect_at: None,
            breaker: Breaker::new(cfg.breaker, t),
            in_flight: 0,
            ewma: PeakEwma::new(t, cfg.default_rtt, cfg.rtt_decay),
            ramp_since: (ramp && !cfg.ramp_up.is_zero()).then_some(t),
            times_opened: 0,
            times_recovered: 0,
            healthy: None,
            priority: 0,
            share: 1,
        });
        true
    }

    fn remove(st: &mut State, addr: &str) -> bool {
        let Some(i) = st.peers.iter().position(|p| *p.addr == *addr) else {
            return false;
        };
        st.ring = None;
        let peer = st.peers.remove(i);
        for c in peer.conns {
            if c.in_flight == 0 && c.client.calls_in_flight().0 == 0 {
                c.client.close();
            } else {
                st.retiring.push(c.client);
            }
        }
        true
    }

    /// Chooses a peer and a way to reach it, under the lock.
    fn pick(
        self: &Arc<Self>,
        t: Instant,
        tried: &Tried,
        first: bool,
        shard_key: Option<&[u8]>,
    ) -> Result<Pick, Error> {
        let cfg = &self.config;
        let mut guard = self.lock();
        let st = &mut *guard;
        if first {
            // Every call deposits into the retry budget (one lock for both).
            st.budget.deposit(t);
        }
        // The facts: breaker timers run, closed connections dropped,
        // finished ramp-ups ended; then the pure choice (pick.rs).
        st.facts.clear();
        for p in st.peers.iter_mut() {
            if let Some(tr) = p.breaker.handle_timeout(t) {
                note(p, tr, t);
            }
            // [POOL-29] a peer that said it is not healthy is out, as an
            // open breaker is.
            let available = p.breaker.is_available() && p.healthy != Some(false);
            if available {
                p.conns.retain(|c| !c.client.is_closed());
            }
            let weight = match p.ramp_since {
                Some(since) => {
                    let w = ramp_weight(t, since, cfg.ramp_up, cfg.ramp_up_floor);
                    if w >= 1.0 {
                        p.ramp_since = None;
                    }
                    w
                }
                None => 1.0,
            };
            st.facts.push(PeerFacts {
                available,
                usable: available && p.conns.iter().any(|c| c.client.accepts_new_calls()),
                can_connect: p.connecting.is_some() || p.reconnect_at.is_none_or(|r| r <= t),
                in_flight: p.in_flight,
                // Only peak EWMA looks at it (and it costs an exp()).
                rtt: if available && cfg.selection == Strategy::PeakEwma {
                    p.ewma.estimate(t)
                } else {
                    Duration::ZERO
                },
                weight,
                tried: tried.contains(&p.id),
                priority: p.priority,
                share: p.share,
            });
        }
        let i = match (cfg.shard_routing, shard_key) {
            (Some(mode), Some(key)) => shard_owner(st, mode, key)?,
            _ => choose_peer(
                &st.facts,
                &mut st.selector,
                &mut st.rng,
                &mut st.candidates,
                &mut st.index,
            )
            .map_err(|why| Error::new(ErrorCode::DECLINED, why))?,
        };

        st.conn_facts.clear();
        let p = &st.peers[i];
        st.conn_facts.extend(p.conns.iter().map(|c| ConnFacts {
            usable: c.client.accepts_new_calls(),
            in_flight: c.in_flight,
        }));
        let rules = ConnRules {
            per_peer: cfg.connections_per_peer,
            may_connect: p.connecting.is_none() && p.reconnect_at.is_none_or(|r| r <= t),
            open: st.connections(),
            max: cfg.max_connections,
        };
        let (best, grow) = choose_conn(&st.conn_facts, rules);
        let start_connect = match grow {
            Grow::No => false,
            Grow::Connect => true,
            Grow::EvictIdle => st.evict_idle(i),
        };
        let peer = &mut st.peers[i];
        let Some(admission) = peer.breaker.admit() else {
            return Err(Error::new(
                ErrorCode::DECLINED,
                "the chosen peer's circuit breaker is open",
            ));
        };
        peer.in_flight += 1;
        if start_connect {
            peer.connecting = Some(self.spawn_connect(peer.id, peer.addr.clone()));
        }
        let mut guard = AttemptGuard {
            inner: self.clone(),
            peer: peer.id,
            conn: None,
            admission,
            done: false,
        };
        let route = if let Some(k) = best {
            let c = &mut peer.conns[k];
            c.in_flight += 1;
            c.last_used = t;
            guard.conn = Some(c.id);
            Route::Ready(c.client.clone())
        } else if let Some(connecting) = &peer.connecting {
            Route::Wait(connecting.clone())
        } else {
            Route::Refused(Error::new(
                ErrorCode::BUSY,
                "the pool's connection limit is reached",
            ))
        };
        Ok(Pick {
            guard,
            route,
            addr: peer.addr.clone(),
        })
    }

    /// Starts a connect in its own task; attempts share its result.
    fn spawn_connect(self: &Arc<Self>, peer: u64, addr: Arc<str>) -> Connecting {
        self.counters.connects.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let fut = self.config.connector.connect(&self.channel, &addr);
        let timeout = self.config.connect_timeout;
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            // [POOL-13] every connect failure is a connection error (0x07).
            let res = match tokio::time::timeout(timeout, fut).await {
                Ok(Ok(c)) => Ok(c),
                Ok(Err(e)) => Err(Error::new(
                    ErrorCode::NETWORK,
                    format!("connect to {addr}: {}", e.message()),
                )),
                Err(_) => Err(Error::new(
                    ErrorCode::NETWORK,
                    format!("connect to {addr}: not connected within {timeout:?}"),
                )),
            };
            let out = match weak.upgrade() {
                Some(inner) => inner.connected(peer, res),
                None => {
                    if let Ok(c) = &res {
                        c.close();
                    }
                    Err(Error::new(ErrorCode::NETWORK, "the pool is gone"))
                }
            };
            let _ = tx.send(out);
        });
        async move {
            rx.await.unwrap_or_else(|_| {
                Err(Error::new(ErrorCode::NETWORK, "the connect was abandoned"))
            })
        }
        .boxed()
        .shared()
    }

    /// Installs a finished connect's result.
    fn connected(&self, peer: u64, res: Result<Client, Error>) -> Result<(u64, Client), Error> {
        let t = now();
        let mut guard = self.lock();
        let st = &mut *guard;
        let id = st.next_id;
        st.next_id += 1;
        let random: f64 = st.rng.random();
        let Some(p) = st.peers.iter_mut().find(|p| p.id == peer) else {
            return match res {
                Ok(c) => {
                    c.close();
                    Err(Error::new(
                        ErrorCode::NETWORK,
                        "the peer left the pool while connecting",
                    ))
                }
                Err(e) => Err(e),
            };
        };
        p.connecting = None;
        match res {
            Ok(client) => {
                p.connect_failures = 0;
                p.reconnect_at = None;
                p.conns.push(Conn {
                    id,
                    client: client.clone(),
                    in_flight: 0,
                    last_used: t,
                });
                Ok((id, client))
            }
            Err(e) => {
                self.counters
                    .connect_failures
                    .fetch_add(1, Ordering::Relaxed);
                p.connect_failures = p.connect_failures.saturating_add(1);
                let delay = self.config.reconnect.delay(p.connect_failures, random);
                p.reconnect_at = Some(t + delay);
                tracing::debug!(
                    target: "tchan::peer",
                    peer = %p.addr,
                    error = %e,
                    failures = p.connect_failures,
                    retry_in = ?delay,
                    "connect failed"
                );
                Err(e)
            }
        }
    }

    /// Records an attempt's end.
    fn release(
        &self,
        peer: u64,
        conn: Option<u64>,
        admission: Admission,
        class: Class,
        rtt: Option<Duration>,
        t: Instant,
    ) {
        let mut guard = self.lock();
        let st = &mut *guard;
        let random: f64 = st.rng.random();
        if let Some(p) = st.peers.iter_mut().find(|p| p.id == peer) {
            p.in_flight = p.in_flight.saturating_sub(1);
            if let Some(c) = conn.and_then(|id| p.conns.iter_mut().find(|c| c.id == id)) {
                c.in_flight = c.in_flight.saturating_sub(1);
                c.last_used = t;
            }
            if let (Some(rtt), true) = (rtt, class != Class::Ignore) {
                p.ewma.observe(t, rtt);
            }
            if let Some(tr) = p.breaker.on_result(t, admission, class, random) {
                note(p, tr, t);
            }
        }
        if !st.retiring.is_empty() {
            st.close_retired();
        }
    }

    fn sweep(&self, t: Instant) {
        let mut st = self.lock();
        let idle = self.config.idle_timeout;
        for p in &mut st.peers {
            if let Some(tr) = p.breaker.handle_timeout(t) {
                note(p, tr, t);
            }
            p.conns.retain(|c| {
                if c.client.is_closed() {
                    return false;
                }
                // [POOL-12] idle connections are closed.
                let idle_long = idle.is_some_and(|d| {
                    c.in_flight == 0 && t.saturating_duration_since(c.last_used) >= d
                });
                if idle_long && c.client.calls_in_flight() == (0, 0) {
                    tracing::debug!(target: "tchan::peer", peer = %p.addr, "closing an idle connection");
                    c.client.close();
                    return false;
                }
                true
            });
        }
        st.close_retired();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for p in &st.peers {
            for c in &p.conns {
                c.client.close();
            }
        }
        for c in &st.retiring {
            c.close();
        }
    }
}

// === impl State ===

impl State {
    /// Connections open or opening, over all peers.
    fn connections(&self) -> usize {
        self.peers
            .iter()
            .map(|p| p.conns.len() + usize::from(p.connecting.is_some()))
            .sum::<usize>()
            + self.retiring.len()
    }

    /// Closes the least recently used idle connection of a peer other than
    /// `except`; false if there is none.
    fn evict_idle(&mut self, except: usize) -> bool {
        let mut oldest: Option<(usize, usize, Instant)> = None;
        for (i, p) in self.peers.iter().enumerate() {
            if i == except {
                continue;
            }
            for (k, c) in p.conns.iter().enumerate() {
                if c.in_flight == 0
                    && oldest.is_none_or(|(_, _, at)| c.last_used < at)
                    && c.client.calls_in_flight() == (0, 0)
                {
                    oldest = Some((i, k, c.last_used));
                }
            }
        }
        let Some((i, k, _)) = oldest else {
            return false;
        };
        let c = self.peers[i].conns.remove(k);
        c.client.close();
        true
    }

    fn close_retired(&mut self) {
        self.retiring.retain(|c| {
            if c.is_closed() {
                return false;
            }
            if c.calls_in_flight().0 == 0 {
                c.close();
                return false;
            }
            true
        });
    }
}

// === impl Peer ===

impl Peer {
    fn status(&self, t: Instant, cfg: &PoolConfig) -> PeerStatus {
        PeerStatus {
            addr: self.addr.to_string(),
            breaker: self.breaker.state(),
            in_flight: self.in_flight,
            connections: self.conns.iter().filter(|c| !c.client.is_closed()).count(),
            connecting: self.connecting.is_some(),
            connect_failures: self.connect_failures,
            rtt: self.ewma.estimate(t),
            ramp: self
                .ramp_since
                .map_or(1.0, |s| ramp_weight(t, s, cfg.ramp_up, cfg.ramp_up_floor)),
            times_opened: self.times_opened,
            times_recovered: self.times_recovered,
            healthy: self.healthy,
            priority: self.priority,
            weight: self.share,
        }
    }
}

/// Records a breaker transition: counters, ramp-up, and a tracing event.
fn note(p: &mut Peer, tr: Transition, t: Instant) {
    match tr.to {
        BreakerState::Open => p.times_opened += 1,
        BreakerState::Closed => {
            p.times_recovered += 1;
            // [POOL-6] a recovered peer ramps up again.
            p.ramp_since = Some(t);
        }
        BreakerState::HalfOpen => {}
    }
    // [POOL-24] breaker state changes are tracing events.
    tracing::info!(
        target: "tchan::peer",
        peer = %p.addr,
        from = %tr.from,
        to = %tr.to,
        "circuit breaker state changed"
    );
}

/// The peer a shard key goes to ([POOL-31]): its owner on the ring, or with
/// [`ShardRouting::NextOnRing`] the next available one.
fn shard_owner(
    st: &mut State,
    mode: super::config::ShardRouting,
    key: &[u8],
) -> Result<usize, Error> {
    if st.ring.is_none() {
        // Built from the peers in order, so ring index = peer index.
        st.ring = Some(super::ring::HashRing::new(
            st.peers.iter().map(|p| p.addr.to_string()),
        ));
    }
    let facts = &st.facts;
    let ok = |i: usize| {
        facts
            .get(i)
            .is_some_and(|f| f.available && (f.usable || f.can_connect) && !f.tried)
    };
    let ring = st
        .ring
        .as_ref()
        .ok_or_else(|| Error::new(ErrorCode::DECLINED, "no peers"))?;
    let chosen = match mode {
        super::config::ShardRouting::Strict => ring.lookup_index(key).filter(|&i| ok(i)),
        _ => ring.lookup_index_where(key, ok),
    };
    chosen.ok_or_else(|| {
        Error::new(
            ErrorCode::DECLINED,
            format!(
                "no available peer for shard key {:?}",
                String::from_utf8_lossy(key)
            ),
        )
    })
}

/// Asks each connected peer `Meta::health` (TRAFFIC) every `interval`
/// ([POOL-29]).
#[cfg(feature = "thrift")]
async fn health_loop(
    weak: Weak<Inner>,
    interval: Duration,
    service: String,
    shutdown: CancellationToken,
) {
    // HealthRequest{type: TRAFFIC}.
    const TRAFFIC: &[u8] = b"\x0c\x00\x01\x08\x00\x01\x00\x00\x00\x01\x00\x00";
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let targets: Vec<(u64, Client)> = {
            let st = inner.lock();
            st.peers
                .iter()
                .filter_map(|p| {
                    p.conns
                        .iter()
                        .find(|c| c.client.accepts_new_calls())
                        .map(|c| (p.id, c.client.clone()))
                })
                .collect()
        };
        drop(inner);
        for (id, client) in targets {
            let req = CallRequest::new(service.clone(), "Meta::health")
                .scheme(crate::frame::ArgScheme::Thrift)
                .arg2(bytes::Bytes::from_static(&[0, 0]))
                .arg3(bytes::Bytes::from_static(TRAFFIC))
                .timeout(interval.min(Duration::from_secs(5)));
            let verdict = match client.call(req).await {
                Ok(r) => health_verdict(&r.arg3),
                Err(_) => None,
            };
            let Some(ok) = verdict else { continue };
            let Some(inner) = weak.upgrade() else {
                return;
            };
            let mut st = inner.lock();
            if let Some(p) = st.peers.iter_mut().find(|p| p.id == id) {
                if p.healthy != Some(ok) {
                    tracing::info!(target: "tchan::peer", peer = %p.addr, healthy = ok, "health check");
                }
                p.healthy = Some(ok);
            }
        }
    }
}

/// `ok` of a `Meta::health` result struct, when it decodes.
#[cfg(feature = "thrift")]
fn health_verdict(arg3: &[u8]) -> Option<bool> {
    let idl = crate::transport::meta::meta_idl();
    let (_, f) = idl.method("Meta::health")?;
    let v = crate::idl::decode_fields(idl, "health", &f.result_fields(), arg3).ok()?;
    v.get("success")?.get("ok")?.as_bool()
}

async fn sweep_loop(weak: Weak<Inner>, interval: Duration, shutdown: CancellationToken) {
    let interval = interval.max(Duration::from_millis(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
        let Some(inner) = weak.upgrade() else {
            return;
        };
        inner.sweep(now());
    }
}

impl Channel {
    /// A [`PeerPool`] over `peers` (`host:port`) that calls as this channel:
    /// the usual way to call a service. Same as [`PeerPool::new`].
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), tchan::Error> {
    /// use tchan::{CallRequest, Channel, PoolConfig};
    ///
    /// let pool = Channel::new("caller").pool(["10.0.0.1:4040", "10.0.0.2:4040"], PoolConfig::default());
    /// let resp = pool.call(CallRequest::new("kv", "get").arg3("key")).await?;
    /// # Ok(()) }
    /// ```
    pub fn pool(
        &self,
        peers: impl IntoIterator<Item = impl Into<String>>,
        config: PoolConfig,
    ) -> PeerPool {
        PeerPool::new(self.clone(), peers, config)
    }
}

#[cfg(feature = "tower")]
mod tower_impl {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::PeerPool;
    use crate::{CallRequest, CallResponse, Error};

    /// The pool as a `tower::Service`: [`PeerPool::call`] for each request.
    /// Always ready: a pool with no usable peer answers each call with an
    /// error rather than waiting.
    impl tower_service::Service<CallRequest> for PeerPool {
        type Response = CallResponse;
        type Error = Error;
        type Future = Pin<Box<dyn Future<Output = Result<CallResponse, Error>> + Send>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: CallRequest) -> Self::Future {
            let pool = self.clone();
            Box::pin(async move { pool.call(req).await })
        }
    }
}
