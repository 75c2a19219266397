//! The client call path: options, requests, and the call itself.
//!
//! A call takes the connection lock once to send: it encodes its request
//! straight into the connection's output queue (large args by reference),
//! takes a waiter slot, and wakes the driver only if the queue was empty. It
//! takes the lock once more to collect the response. Header sets and metric
//! handles of plain calls are built once per connection and reused.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use rand::Rng;
use tokio::sync::oneshot;

use super::body::Body;
use super::inbound::current_call;
use super::observe::CallMetrics;
use super::outbound::PendingCall;
pub use super::outbound::{CallResponse, StreamingResponse};
use super::shared::Outcome;
use super::shared::{ConnState, Route, Shared, now};
use super::space::SpaceWait;
use crate::Error;
pub use crate::frame::ArgScheme;
use crate::frame::{ChecksumType, ErrorCode, RetryFlags, Tracing, TransportHeaders};
use crate::proto::{PeerInfo, RequestHead};

/// Per-call options, each with a default. Set them with the builder methods
/// of [`CallRequest`] (or the `set_` methods here).
///
/// The options most calls leave alone live in a shared box made only when
/// one is set, so that a request stays small (it is moved several times per
/// call) and copies of it (a retry's) cost no allocation. The shard key is
/// kept apart, shared: a sharded call given an `Arc<str>` key allocates
/// nothing for it.
#[derive(Debug, Clone)]
pub struct CallOptions {
    timeout: Duration,
    checksum: ChecksumType,
    scheme: ArgScheme,
    shard_key: Option<Arc<str>>,
    extra: Option<Arc<Extra>>,
}

#[derive(Debug, Clone, Default)]
struct Extra {
    headers: TransportHeaders,
    routing_delegate: Option<String>,
    retry_flags: Option<RetryFlags>,
    caller: Option<String>,
    tracing: Option<Tracing>,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            timeout: Duration::from_secs(1),
            checksum: ChecksumType::CRC32C,
            scheme: ArgScheme::Raw,
            shard_key: None,
            extra: None,
        }
    }
}

impl CallOptions {
    fn extra(&mut self) -> &mut Extra {
        Arc::make_mut(self.extra.get_or_insert_with(Default::default))
    }

    /// Time allowed for the whole call; the ttl sent is what is left of it.
    /// Default 1 s. Inside a handler the call also ends no later than the
    /// inbound call's deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sets [`CallOptions::timeout`].
    pub fn set_timeout(&mut self, t: Duration) -> &mut Self {
        self.timeout = t;
        self
    }

    /// The checksum type of every frame of the request. Default crc32c
    /// (node's default).
    pub fn checksum(&self) -> ChecksumType {
        self.checksum
    }

    /// Sets [`CallOptions::checksum`].
    pub fn set_checksum(&mut self, c: ChecksumType) -> &mut Self {
        self.checksum = c;
        self
    }

    /// The arg scheme sent as `as`. Default [`ArgScheme::Raw`].
    pub fn scheme(&self) -> &ArgScheme {
        &self.scheme
    }

    /// Sets [`CallOptions::scheme`].
    pub fn set_scheme(&mut self, s: impl Into<ArgScheme>) -> &mut Self {
        self.scheme = s.into();
        self
    }

    /// Extra transport headers, in order, sent after `cn` and `as` (and
    /// `re`, `rd`, `sk` when set).
    pub fn headers(&self) -> &TransportHeaders {
        static NONE: TransportHeaders = TransportHeaders::new();
        self.extra.as_ref().map_or(&NONE, |e| &e.headers)
    }

    /// Adds a transport header. The rules are checked when the call is sent
    /// (the call then fails locally with bad request): a key is 1 to 16
    /// bytes and appears once, a value at most 255 bytes.
    pub fn add_header(&mut self, k: impl AsRef<[u8]>, v: impl AsRef<[u8]>) -> &mut Self {
        self.extra().headers.push_or_poison(k, v);
        self
    }

    /// Replaces the extra transport headers with `headers`.
    pub fn set_headers(&mut self, headers: TransportHeaders) -> &mut Self {
        self.extra().headers = headers;
        self
    }

    /// The routing delegate (`rd`): a service a router should route this
    /// call to instead of its own service.
    pub fn routing_delegate(&self) -> Option<&str> {
        self.extra.as_ref()?.routing_delegate.as_deref()
    }

    /// Sets [`CallOptions::routing_delegate`].
    pub fn set_routing_delegate(&mut self, rd: impl Into<String>) -> &mut Self {
        self.extra().routing_delegate = Some(rd.into());
        self
    }

    /// The shard key (`sk`).
    pub fn shard_key(&self) -> Option<&str> {
        self.shard_key.as_deref()
    }

    /// Sets [`CallOptions::shard_key`]: a `&str`, a `String`, or an
    /// `Arc<str>` (shared, not copied: a caller with a fixed set of keys
    /// allocates nothing per call for them).
    pub fn set_shard_key(&mut self, sk: impl Into<Arc<str>>) -> &mut Self {
        self.shard_key = Some(sk.into());
        self
    }

    /// The retry flags sent as `re`; `None` sends no `re` header, which peers
    /// read as "retry on connection errors" ([`RetryFlags::parse`]).
    pub fn retry_flags(&self) -> Option<RetryFlags> {
        self.extra.as_ref()?.retry_flags
    }

    /// Sets [`CallOptions::retry_flags`].
    pub fn set_retry_flags(&mut self, f: impl Into<RetryFlags>) -> &mut Self {
        self.extra().retry_flags = Some(f.into());
        self
    }

    /// The caller name (`cn`); `None` means the channel's service name.
    pub fn caller(&self) -> Option<&str> {
        self.extra.as_ref()?.caller.as_deref()
    }

    /// Sets [`CallOptions::caller`].
    pub fn set_caller(&mut self, cn: impl Into<String>) -> &mut Self {
        self.extra().caller = Some(cn.into());
        self
    }

    /// The tracing to send; `None` means: inside a handler, a child of the
    /// handler's call; elsewhere a new random trace.
    pub fn tracing(&self) -> Option<Tracing> {
        self.extra.as_ref()?.tracing
    }

    /// Sets [`CallOptions::tracing`].
    pub fn set_tracing(&mut self, t: Tracing) -> &mut Self {
        self.extra().tracing = Some(t);
        self
    }

    /// True when the call sends `cn`, `as` and at most `sk`: the set cached
    /// per route, plus one pair for a sharded call.
    fn plain_but_shard_key(&self) -> bool {
        self.extra.as_ref().is_none_or(|e| {
            e.retry_flags.is_none() && e.routing_delegate.is_none() && e.headers.is_empty()
        })
    }
}

/// A call to make: service, method (arg1), arg2, arg3 and options.
#[derive(Debug)]
pub struct CallRequest {
    /// Destination service.
    pub service: Bytes,
    /// arg1: the method (endpoint).
    pub method: Bytes,
    /// arg2 (application headers; the format depends on the scheme).
    pub arg2: Bytes,
    /// arg3, whole or streamed.
    pub arg3: Body,
    /// Options; the builder methods below set them.
    pub options: CallOptions,
}

impl CallRequest {
    /// A raw call with empty args and default options. A `&'static str`
    /// service or method costs no allocation.
    pub fn new(service: impl Into<Bytes>, method: impl Into<Bytes>) -> CallRequest {
        CallRequest {
            service: service.into(),
            method: method.into(),
            arg2: Bytes::new(),
            arg3: Body::empty(),
            options: CallOptions::default(),
        }
    }

    /// Sets arg2.
    pub fn arg2(mut self, b: impl Into<Bytes>) -> CallRequest {
        self.arg2 = b.into();
        self
    }

    /// Sets arg3.
    pub fn arg3(mut self, b: impl Into<Body>) -> CallRequest {
        self.arg3 = b.into();
        self
    }

    /// Sets every option at once.
    pub fn options(mut self, o: CallOptions) -> CallRequest {
        self.options = o;
        self
    }

    /// Sets the timeout ([`CallOptions::timeout`]).
    pub fn timeout(mut self, t: Duration) -> CallRequest {
        self.options.set_timeout(t);
        self
    }

    /// Sets the arg scheme (`as`).
    pub fn scheme(mut self, s: impl Into<ArgScheme>) -> CallRequest {
        self.options.set_scheme(s);
        self
    }

    /// Sets the checksum type.
    pub fn checksum(mut self, c: ChecksumType) -> CallRequest {
        self.options.set_checksum(c);
        self
    }

    /// Adds a transport header.
    pub fn header(mut self, k: impl AsRef<[u8]>, v: impl AsRef<[u8]>) -> CallRequest {
        self.options.add_header(k, v);
        self
    }

    /// Replaces the extra transport headers ([`CallOptions::set_headers`]).
    pub fn headers(mut self, headers: TransportHeaders) -> CallRequest {
        self.options.set_headers(headers);
        self
    }

    /// Sets the routing delegate (`rd`).
    pub fn routing_delegate(mut self, rd: impl Into<String>) -> CallRequest {
        self.options.set_routing_delegate(rd);
        self
    }

    /// Sets the shard key (`sk`; [`CallOptions::set_shard_key`]).
    pub fn shard_key(mut self, sk: impl Into<Arc<str>>) -> CallRequest {
        self.options.set_shard_key(sk);
        self
    }

    /// Sets the retry flags (`re`), e.g. `RetryFlags::NEVER` or `"ct"`.
    pub fn retry_flags(mut self, f: impl Into<RetryFlags>) -> CallRequest {
        self.options.set_retry_flags(f);
        self
    }

    /// Sets the caller name (`cn`).
    pub fn caller(mut self, cn: impl Into<String>) -> CallRequest {
        self.options.set_caller(cn);
        self
    }

    /// Sets the tracing to send.
    pub fn tracing(mut self, t: Tracing) -> CallRequest {
        self.options.set_tracing(t);
        self
    }
}

/// What a request sends, borrowed: everything but a streamed arg3, so it can
/// be held by a future that must be `Send` (a stream need not be `Sync`).
#[derive(Clone, Copy)]
struct Parts<'a> {
    service: &'a Bytes,
    method: &'a Bytes,
    arg2: &'a Bytes,
    options: &'a CallOptions,
}

impl<'a> Parts<'a> {
    fn of(req: &'a CallRequest) -> Parts<'a> {
        Parts {
            service: &req.service,
            method: &req.method,
            arg2: &req.arg2,
            options: &req.options,
        }
    }
}

/// A handle on one connection, for making calls. Clones share the
/// connection.
#[derive(Clone)]
pub struct Client {
    pub(crate) shared: Arc<Shared>,
    pub(crate) caller: Arc<str>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.shared.peer_addr)
            .finish()
    }
}

impl Client {
    /// The peer's init headers.
    pub fn peer_info(&self) -> Option<PeerInfo> {
        self.shared.lock().conn.peer().cloned()
    }

    /// True once the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// True when new calls may go on this connection: the handshake is done,
    /// neither side is draining, and it is not closed.
    pub fn accepts_new_calls(&self) -> bool {
        self.shared.accepts_new_calls()
    }

    /// Calls in flight: (ours, the peer's).
    pub fn calls_in_flight(&self) -> (usize, usize) {
        self.shared.lock().conn.calls_in_flight()
    }

    /// Entries in every table of the connection core and transport (calls,
    /// deadlines, remembered ids, pings, waiters, streamed responses, inbound
    /// dispatch). Used by tests to prove nothing leaks.
    pub fn table_sizes(&self) -> Vec<usize> {
        let st = self.shared.lock();
        let mut v = st.conn.table_sizes().to_vec();
        v.push(st.waiters.len());
        v.push(st.streams.len());
        v.push(
            self.shared
                .inbound_calls
                .load(std::sync::atomic::Ordering::Acquire),
        );
        v
    }

    /// Header sets this connection keeps for the calls it makes, one per
    /// (service, method, caller, scheme) our application used (bounded).
    /// Nothing the peer sends adds to them.
    pub fn cached_routes(&self) -> usize {
        self.shared.lock().routes.routes.len()
    }

    /// Closes the connection now: calls in flight fail with network error.
    pub fn close(&self) {
        {
            let mut st = self.shared.lock();
            st.conn.close_now();
            self.shared.refresh_flags(&st.conn);
        }
        self.shared.driver.wake();
    }

    /// Waits until the connection's driver has finished.
    pub async fn closed(&self) {
        self.shared.wait_finished().await
    }

    /// Sends a ping and waits for the answer.
    pub async fn ping(&self, timeout: Duration) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.shared.lock();
            let id = st.conn.ping()?;
            st.pongs.insert(id, tx);
        }
        self.shared.driver.wake();
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Error::new(ErrorCode::NETWORK, "connection closed")),
            Err(_) => Err(Error::new(ErrorCode::TIMEOUT, "ping timed out")),
        }
    }

    /// Makes a call and waits for its response. Application errors come back
    /// as `Ok` with [`CallResponse::is_application_error`]; everything else
    /// (timeout, busy, declined, network, ...) is `Err`. Dropping the future
    /// gives up on the call (and sends a cancel frame if configured).
    pub fn call(
        &self,
        req: CallRequest,
    ) -> impl Future<Output = Result<CallResponse, Error>> + Send + '_ {
        Call::new(self, req, false, Outcome::into_response)
    }

    /// Makes a call and returns as soon as the response's arg2 is complete;
    /// arg3 then arrives as a stream, so a large response never has to sit
    /// whole in memory.
    pub fn call_streaming(
        &self,
        req: CallRequest,
    ) -> impl Future<Output = Result<StreamingResponse, Error>> + Send + '_ {
        Call::new(self, req, true, Outcome::into_streaming)
    }

    /// [`Client::call`] of a request the caller keeps (the peer pool, which
    /// may send it again to another peer), with `timeout` instead of the
    /// request's own. Nothing is copied unless the call has to wait for
    /// room in the write queue.
    pub(crate) fn call_ref<'a>(
        &'a self,
        req: &'a CallRequest,
        timeout: Duration,
    ) -> impl Future<Output = Result<CallResponse, Error>> + Send + 'a {
        let state = match &req.arg3 {
            Body::Full(arg3) => CallState::StartRef(Parts::of(req), arg3, timeout),
            // Not a single buffer: the slow path, with a copy of the request.
            _ => {
                let mut owned = CallRequest {
                    service: req.service.clone(),
                    method: req.method.clone(),
                    arg2: req.arg2.clone(),
                    arg3: match &req.arg3 {
                        Body::Chunks(c) => Body::Chunks(c.clone()),
                        _ => Body::empty(),
                    },
                    options: req.options.clone(),
                };
                owned.options.set_timeout(timeout);
                CallState::Slow(Box::pin(self.send(owned, false)))
            }
        };
        Call {
            client: self,
            streaming: false,
            convert: Outcome::into_response,
            state,
        }
    }

    /// The fast path, with no await: a whole arg3 and room in the write
    /// queue (nobody waiting for it). The request goes out and the caller's
    /// waker is registered under one lock. `None` means take the slow path.
    fn try_send(
        &self,
        req: Parts<'_>,
        arg3: &Bytes,
        timeout: Duration,
        streaming: bool,
        waker: &Waker,
    ) -> Option<Result<PendingCall<'_>, Error>> {
        let start = now();
        let inherited = current_call();
        let deadline = call_deadline(start, timeout, inherited);
        let mut st = self.shared.lock();
        if st.closed.is_none() && (!st.space.is_empty() || self.shared.write_queue_full(&st)) {
            return None;
        }
        let sent = self.enqueue(
            &mut st,
            start,
            streaming,
            req,
            Some(arg3),
            inherited,
            deadline,
        );
        if let Ok(p) = &sent
            && let Some(w) = st.waiters.get(p.slot, p.generation)
        {
            w.waker = Some(waker.clone());
        }
        Some(sent)
    }

    /// The slow path: waits in line for room in the write queue, and writes a
    /// streamed arg3 chunk by chunk.
    async fn send(&self, req: CallRequest, streaming: bool) -> Result<PendingCall<'_>, Error> {
        let start = now();
        let inherited = current_call();
        let deadline = call_deadline(start, req.options.timeout(), inherited);
        let mut req = req;
        let (whole, mut stream) = match std::mem::replace(&mut req.arg3, Body::empty()) {
            Body::Full(b) => (Some(b), None),
            Body::Chunks(c) => (Some(super::body::join(c)), None),
            Body::Stream(s) => (None, Some(s)),
        };
        let mut space = SpaceWait::new(&self.shared);
        let pending = loop {
            let sent = {
                let mut st = self.shared.lock();
                let go = space.may_go(&mut st);
                let sent = go.then(|| {
                    self.enqueue(
                        &mut st,
                        start,
                        streaming,
                        Parts::of(&req),
                        whole.as_ref(),
                        inherited,
                        deadline,
                    )
                });
                if go {
                    space.done(&mut st);
                }
                sent
            };
            match sent {
                Some(pending) => break pending?,
                None => space.wait(Some(deadline)).await?,
            }
        };
        drop(space);
        if let Some(s) = stream.take() {
            self.stream_arg3(&pending, s, deadline).await?;
        }
        Ok(pending)
    }

    /// Under the lock: encodes the request into the connection's queue (or
    /// starts it, for a streamed arg3) and takes a waiter slot.
    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &self,
        st: &mut ConnState,
        start: Instant,
        streaming: bool,
        req: Parts<'_>,
        whole: Option<&Bytes>,
        inherited: Option<super::inbound::CallContext>,
        deadline: Instant,
    ) -> Result<PendingCall<'_>, Error> {
        let (method, arg2) = (req.method, req.arg2);
        let (head, metrics) =
            self.head(st, req.service, method, req.options, inherited, deadline)?;
        let was_empty = st.conn.transmit_len() == 0;
        let id = match whole {
            Some(arg3) => st
                .conn
                .send_request_shared(start, head, [method, arg2, arg3])?,
            None => {
                let id = st.conn.start_request(start, head)?;
                let started = st
                    .conn
                    .write_request(id, method)
                    .and_then(|()| st.conn.end_request_arg(id))
                    .and_then(|()| st.conn.write_request(id, arg2))
                    .and_then(|()| st.conn.end_request_arg(id));
                if let Err(e) = started {
                    st.conn
                        .cancel_call(start, id, "request could not be written");
                    return Err(e);
                }
                id
            }
        };
        let (slot, generation) = st.waiters.insert(id, streaming);
        if streaming {
            // [CONN-23] its bytes count until its consumer takes them.
            st.conn.stream_response(id);
        }
        if let Some(m) = &metrics {
            m.started();
        }
        if was_empty {
            self.shared.driver.wake();
        }
        Ok(PendingCall {
            shared: &self.shared,
            slot,
            generation,
            done: false,
            metrics,
            start,
        })
    }

    /// Writes a streamed arg3, waiting for room in the write queue before
    /// each chunk; dropping the call meanwhile cancels it.
    async fn stream_arg3(
        &self,
        call: &PendingCall<'_>,
        mut s: std::pin::Pin<Box<dyn futures::Stream<Item = Result<Bytes, Error>> + Send>>,
        deadline: Instant,
    ) -> Result<(), Error> {
        let id = {
            let mut st = self.shared.lock();
            st.waiters
                .get(call.slot, call.generation)
                .map(|w| w.id)
                .ok_or_else(|| Error::new(ErrorCode::NETWORK, "connection closed"))?
        };
        loop {
            // The next chunk, unless the call's outcome came first (an error
            // frame, a timeout, an early answer): then the rest is not sent
            // and the caller gets that outcome now, not once its stream ends.
            let next = futures::future::poll_fn(|cx| {
                {
                    let mut st = self.shared.lock();
                    match st.waiters.get(call.slot, call.generation) {
                        Some(w) if matches!(w.state, super::shared::WaitState::Done(_)) => {
                            return std::task::Poll::Ready(None);
                        }
                        Some(w) => w.waker = Some(cx.waker().clone()),
                        None => return std::task::Poll::Ready(None),
                    }
                }
                s.poll_next_unpin(cx).map(Some)
            })
            .await;
            let chunk = match next {
                None => return Ok(()),
                Some(None) => break,
                Some(Some(chunk)) => chunk?,
            };
            let mut space = SpaceWait::new(&self.shared);
            loop {
                {
                    let mut st = self.shared.lock();
                    if space.may_go(&mut st) {
                        let r = st.conn.write_request(id, &chunk);
                        space.done(&mut st);
                        r?;
                        break;
                    }
                }
                space.wait(Some(deadline)).await?;
            }
            self.shared.driver.wake();
        }
        self.shared.lock().conn.end_request_arg(id)?;
        self.shared.driver.wake();
        Ok(())
    }

    /// The request's head: headers (a cached set for plain calls), tracing,
    /// deadline, checksum; and the call's metric handles.
    fn head(
        &self,
        st: &mut ConnState,
        service: &Bytes,
        method: &Bytes,
        o: &CallOptions,
        inherited: Option<super::inbound::CallContext>,
        deadline: Instant,
    ) -> Result<(RequestHead, Option<Arc<CallMetrics>>), Error> {
        let caller: &str = o.caller().unwrap_or(&self.caller);
        let (headers, metrics) = if o.plain_but_shard_key() {
            let (mut headers, metrics) = match st.routes.find(service, method, caller, &o.scheme) {
                Some(i) => {
                    let r = &st.routes.routes[i];
                    (r.headers.clone(), r.metrics.clone())
                }
                None => {
                    let headers =
                        TransportHeaders::strict([("cn", caller), ("as", o.scheme.as_str())])
                            .map_err(|e| Error::new(ErrorCode::BAD_REQUEST, e.to_string()))?;
                    let metrics = self.metrics(st, service, method);
                    st.routes.insert(Route {
                        service: service.clone(),
                        method: method.clone(),
                        caller: Arc::from(caller),
                        scheme: o.scheme.clone(),
                        headers: headers.clone(),
                        metrics: metrics.clone(),
                    });
                    (headers, metrics)
                }
            };
            if let Some(sk) = o.shard_key() {
                // The cached `cn`/`as` plus `sk`: one buffer.
                headers = headers
                    .with_pair(b"sk", sk.as_bytes())
                    .map_err(|e| Error::new(ErrorCode::BAD_REQUEST, e.to_string()))?;
            }
            (headers, metrics)
        } else {
            let mut pairs: Vec<(&str, &str)> = vec![("cn", caller), ("as", o.scheme.as_str())];
            if let Some(re) = o.retry_flags() {
                pairs.push(("re", re.value()));
            }
            if let Some(rd) = o.routing_delegate() {
                pairs.push(("rd", rd));
            }
            if let Some(sk) = o.shard_key() {
                pairs.push(("sk", sk));
            }
            o.headers()
                .validate()
                .map_err(|e| Error::new(ErrorCode::BAD_REQUEST, e.to_string()))?;
            let mut pairs: Vec<(&[u8], &[u8])> = pairs
                .into_iter()
                .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
                .collect();
            pairs.extend(o.headers().iter());
            let headers = TransportHeaders::strict(pairs)
                .map_err(|e| Error::new(ErrorCode::BAD_REQUEST, e.to_string()))?;
            let metrics = self.shared.config.metrics.then(|| {
                let label = self.shared.peer_label(&st.peer_host_port);
                st.routes.metrics.get(true, service, method, || label)
            });
            (headers, metrics)
        };
        let tracing = match o.tracing() {
            Some(t) => t,
            None => {
                let id: u64 = st.rng.random();
                match inherited {
                    Some(c) => c.tracing.child(id),
                    None => Tracing {
                        span_id: id,
                        parent_id: 0,
                        trace_id: id,
                        flags: 0,
                    },
                }
            }
        };
        Ok((
            RequestHead {
                service: service.clone(),
                headers,
                tracing,
                deadline,
                checksum: o.checksum,
            },
            metrics,
        ))
    }

    fn metrics(&self, st: &ConnState, service: &Bytes, method: &Bytes) -> Option<Arc<CallMetrics>> {
        self.shared.config.metrics.then(|| {
            Arc::new(CallMetrics::new(
                true,
                service,
                method,
                &self.shared.peer_label(&st.peer_host_port),
            ))
        })
    }
}

/// The future of [`Client::call`] and [`Client::call_streaming`]: sends on
/// its first poll (registering the caller's waker in the same lock), then
/// waits; a full write queue or a streamed arg3 takes the boxed slow path.
struct Call<'a, T> {
    client: &'a Client,
    streaming: bool,
    convert: fn(Outcome) -> Result<T, Error>,
    state: CallState<'a>,
}

type SlowSend<'a> = Pin<Box<dyn Future<Output = Result<PendingCall<'a>, Error>> + Send + 'a>>;

enum CallState<'a> {
    Start(Option<CallRequest>),
    StartRef(Parts<'a>, &'a Bytes, Duration),
    Slow(SlowSend<'a>),
    Waiting(PendingCall<'a>),
    Done,
}

impl<'a, T> Call<'a, T> {
    fn new(
        client: &'a Client,
        req: CallRequest,
        streaming: bool,
        convert: fn(Outcome) -> Result<T, Error>,
    ) -> Call<'a, T> {
        Call {
            client,
            streaming,
            convert,
            state: CallState::Start(Some(req)),
        }
    }
}

// No field is pinned: the state holds a request, a boxed future or a handle.
impl<T> Unpin for Call<'_, T> {}

impl<'a, T> Future for Call<'a, T> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                CallState::StartRef(r, arg3, timeout) => {
                    let (r, arg3, timeout) = (*r, *arg3, *timeout);
                    match this
                        .client
                        .try_send(r, arg3, timeout, this.streaming, cx.waker())
                    {
                        Some(Ok(p)) => {
                            this.state = CallState::Waiting(p);
                            return Poll::Pending;
                        }
                        Some(Err(e)) => {
                            this.state = CallState::Done;
                            return Poll::Ready(Err(e));
                        }
                        None => {
                            let mut owned = CallRequest {
                                service: r.service.clone(),
                                method: r.method.clone(),
                                arg2: r.arg2.clone(),
                                arg3: Body::Full(arg3.clone()),
                                options: r.options.clone(),
                            };
                            owned.options.set_timeout(timeout);
                            let fut = this.client.send(owned, this.streaming);
                            this.state = CallState::Slow(Box::pin(fut));
                        }
                    }
                }
                CallState::Start(req) => {
                    let Some(r) = req.as_ref() else {
                        this.state = CallState::Done;
                        continue;
                    };
                    let sent = match &r.arg3 {
                        Body::Full(arg3) => this.client.try_send(
                            Parts::of(r),
                            arg3,
                            r.options.timeout(),
                            this.streaming,
                            cx.waker(),
                        ),
                        _ => None,
                    };
                    match sent {
                        Some(Ok(p)) => {
                            this.state = CallState::Waiting(p);
                            // The waker is registered: wait for the response.
                            return Poll::Pending;
                        }
                        Some(Err(e)) => {
                            this.state = CallState::Done;
                            return Poll::Ready(Err(e));
                        }
                        None => {
                            let Some(r) = req.take() else {
                                continue;
                            };
                            let fut = this.client.send(r, this.streaming);
                            this.state = CallState::Slow(Box::pin(fut));
                        }
                    }
                }
                CallState::Slow(fut) => match std::task::ready!(fut.as_mut().poll(cx)) {
                    Ok(p) => this.state = CallState::Waiting(p),
                    Err(e) => {
                        this.state = CallState::Done;
                        return Poll::Ready(Err(e));
                    }
                },
                CallState::Waiting(p) => {
                    let outcome = std::task::ready!(Pin::new(p).poll(cx));
                    this.state = CallState::Done;
                    return Poll::Ready(outcome.and_then(this.convert));
                }
                CallState::Done => {
                    return Poll::Ready(Err(Error::new(
                        ErrorCode::NETWORK,
                        "call polled after it finished",
                    )));
                }
            }
        }
    }
}

/// When a call made now with `timeout` gives up: [TTL-7] inside a handler,
/// never later than the inbound call's deadline.
fn call_deadline(
    start: Instant,
    timeout: Duration,
    inherited: Option<super::inbound::CallContext>,
) -> Instant {
    let deadline = start + timeout;
    match inherited {
        Some(c) => deadline.min(c.deadline),
        None => deadline,
    }
}

#[cfg(feature = "tower")]
mod tower_impl {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::{CallRequest, CallResponse, Client, Error};
    use crate::frame::ErrorCode;

    /// The client call path as a `tower::Service`, so tower layers (timeouts,
    /// retries, rate limits, ...) can wrap it.
    impl tower_service::Service<CallRequest> for Client {
        type Response = CallResponse;
        type Error = Error;
        type Future = Pin<Box<dyn Future<Output = Result<CallResponse, Error>> + Send>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
            if self.is_closed() {
                Poll::Ready(Err(Error::new(ErrorCode::NETWORK, "connection closed")))
            } else {
                Poll::Ready(Ok(()))
            }
        }

        fn call(&mut self, req: CallRequest) -> Self::Future {
            let client = self.clone();
            Box::pin(async move { client.call(req).await })
        }
    }
}
