//! The client call path: options, responses, and the call itself.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::oneshot;

use super::body::Body;
use super::driver::{CURRENT_CALL, CallGuard, Reply, Shared, Waiter, now};
use crate::frame::{ChecksumType, ErrorCode, ResponseCode, Tracing, TransportHeaders};
use crate::proto::{CallError, PeerInfo, RequestHead};
use tracing::Instrument;

/// Per-call options.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// Time allowed for the whole call; the ttl sent is what is left of it.
    /// Default 1 s. Inside a handler the call also ends no later than the
    /// inbound call's deadline.
    pub timeout: Duration,
    /// Arg scheme sent as `as`: `raw` (default), `json`, `thrift`.
    pub scheme: String,
    /// Extra transport headers, in order, after `cn` and `as`.
    pub headers: Vec<(String, String)>,
    /// Checksum type. Default crc32c (node's default).
    pub checksum: ChecksumType,
    /// Routing delegate (`rd`).
    pub routing_delegate: Option<String>,
    /// Shard key (`sk`).
    pub shard_key: Option<String>,
    /// Retry flags (`re`): `n`, `c`, `t`, `ct`. Sent only when set.
    pub retry_flags: Option<String>,
    /// Caller name (`cn`); default the channel's service name.
    pub caller: Option<String>,
    /// Tracing to send. Default: inside a handler, a child of the handler's
    /// call; elsewhere a new random trace.
    pub tracing: Option<Tracing>,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            timeout: Duration::from_secs(1),
            scheme: "raw".into(),
            headers: Vec::new(),
            checksum: ChecksumType::CRC32C,
            routing_delegate: None,
            shard_key: None,
            retry_flags: None,
            caller: None,
            tracing: None,
        }
    }
}

/// A call to make: service, method (arg1), arg2, arg3 and options.
#[derive(Debug)]
pub struct CallRequest {
    /// Destination service.
    pub service: String,
    /// arg1.
    pub method: Bytes,
    /// arg2.
    pub arg2: Bytes,
    /// arg3, whole or streamed.
    pub arg3: Body,
    /// Options.
    pub options: CallOptions,
}

impl CallRequest {
    /// A raw call with empty args and default options.
    pub fn new(service: impl Into<String>, method: impl Into<Bytes>) -> CallRequest {
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

    /// Sets the timeout.
    pub fn timeout(mut self, t: Duration) -> CallRequest {
        self.options.timeout = t;
        self
    }

    /// Sets the arg scheme (`as`).
    pub fn scheme(mut self, s: impl Into<String>) -> CallRequest {
        self.options.scheme = s.into();
        self
    }

    /// Sets the checksum type.
    pub fn checksum(mut self, c: ChecksumType) -> CallRequest {
        self.options.checksum = c;
        self
    }

    /// Adds a transport header.
    pub fn header(mut self, k: impl Into<String>, v: impl Into<String>) -> CallRequest {
        self.options.headers.push((k.into(), v.into()));
        self
    }
}

/// A response: success (code 0x00) or an application error (code 0x01),
/// both carrying args. Transport failures are `Err(CallError)` instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallResponse {
    /// 0x00 ok; anything else is an application error.
    pub code: ResponseCode,
    /// Transport headers of the response.
    pub headers: TransportHeaders,
    /// Tracing echoed by the server.
    pub tracing: Tracing,
    /// arg2.
    pub arg2: Bytes,
    /// arg3.
    pub arg3: Bytes,
}

impl CallResponse {
    /// True for code 0x00.
    pub fn is_ok(&self) -> bool {
        self.code.is_ok()
    }

    /// True for an application error (code not 0x00).
    pub fn is_application_error(&self) -> bool {
        !self.code.is_ok()
    }
}

/// A response whose arg3 arrives as a stream ([`Client::call_streaming`]).
#[derive(Debug)]
pub struct StreamingResponse {
    /// 0x00 ok; anything else is an application error.
    pub code: ResponseCode,
    /// Transport headers of the response.
    pub headers: TransportHeaders,
    /// Tracing echoed by the server.
    pub tracing: Tracing,
    /// arg2, whole.
    pub arg2: Bytes,
    /// arg3, chunk by chunk as frames arrive.
    pub arg3: Body,
}

/// A response's code, whichever way it was delivered.
trait HasCode {
    fn code(&self) -> ResponseCode;
}

impl HasCode for CallResponse {
    fn code(&self) -> ResponseCode {
        self.code
    }
}

impl HasCode for StreamingResponse {
    fn code(&self) -> ResponseCode {
        self.code
    }
}

/// A handle on one connection, for making calls.
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

fn gone() -> CallError {
    CallError::local(ErrorCode::NETWORK, "call already sent")
}

fn random_tracing() -> Tracing {
    let id: u64 = rand::random();
    Tracing {
        span_id: id,
        parent_id: 0,
        trace_id: id,
        flags: 0,
    }
}

impl Client {
    /// The peer's init headers.
    pub fn peer_info(&self) -> Option<PeerInfo> {
        self.shared.lock().conn.peer().cloned()
    }

    /// True once the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().conn.is_closed()
    }

    /// True when new calls may go on this connection.
    pub fn accepts_new_calls(&self) -> bool {
        self.shared.lock().conn.accepts_new_calls()
    }

    /// Calls in flight: (ours, the peer's).
    pub fn calls_in_flight(&self) -> (usize, usize) {
        self.shared.lock().conn.calls_in_flight()
    }

    /// Entries in every table of the connection core and transport (calls,
    /// deadlines, remembered ids, pings, waiters, inbound dispatch). Used by
    /// tests to prove nothing leaks.
    pub fn table_sizes(&self) -> Vec<usize> {
        let st = self.shared.lock();
        let mut v = st.conn.table_sizes().to_vec();
        v.push(st.waiters.len());
        v.push(st.inbound.len());
        v
    }

    /// Closes the connection now: calls in flight fail with network error.
    pub fn close(&self) {
        self.shared.lock().conn.close_now();
        self.shared.waker.wake();
    }

    /// Waits until the connection's driver has finished.
    pub async fn closed(&self) {
        self.shared.wait_finished().await
    }

    /// Sends a ping and waits for the answer.
    pub async fn ping(&self, timeout: Duration) -> Result<(), CallError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.shared.lock();
            let id = st.conn.ping()?;
            st.pongs.insert(id, tx);
        }
        self.shared.waker.wake();
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(CallError::local(ErrorCode::NETWORK, "connection closed")),
            Err(_) => Err(CallError::local(ErrorCode::TIMEOUT, "ping timed out")),
        }
    }

    fn headers(&self, o: &CallOptions) -> Result<TransportHeaders, CallError> {
        let caller = o.caller.as_deref().unwrap_or(&self.caller);
        let plain = o.retry_flags.is_none()
            && o.routing_delegate.is_none()
            && o.shard_key.is_none()
            && o.headers.is_empty();
        if plain {
            // Most calls carry only cn and as: built once per connection.
            let key = [caller.as_bytes(), b"\0", o.scheme.as_bytes()].concat();
            return self
                .shared
                .header_cache(&key, || {
                    TransportHeaders::strict([("cn", caller), ("as", o.scheme.as_str())])
                })
                .map_err(|e| CallError::local(ErrorCode::BAD_REQUEST, e.to_string()));
        }
        let mut pairs: Vec<(&str, &str)> = vec![("cn", caller), ("as", o.scheme.as_str())];
        if let Some(re) = &o.retry_flags {
            pairs.push(("re", re));
        }
        if let Some(rd) = &o.routing_delegate {
            pairs.push(("rd", rd));
        }
        if let Some(sk) = &o.shard_key {
            pairs.push(("sk", sk));
        }
        for (k, v) in &o.headers {
            pairs.push((k, v));
        }
        TransportHeaders::strict(pairs)
            .map_err(|e| CallError::local(ErrorCode::BAD_REQUEST, e.to_string()))
    }

    /// Makes a call and waits for its response. Application errors come back
    /// as `Ok` with [`CallResponse::is_application_error`]; everything else
    /// (timeout, busy, declined, network, ...) is `Err`. Dropping the future
    /// gives up on the call (and sends a cancel frame if configured).
    pub async fn call(&self, req: CallRequest) -> Result<CallResponse, CallError> {
        let (tx, rx) = oneshot::channel();
        self.send(req, Reply::Whole(tx), rx).await
    }

    /// Makes a call and returns as soon as the response's arg2 is complete;
    /// arg3 then arrives as a stream, so a large response never has to sit
    /// whole in memory.
    pub async fn call_streaming(&self, req: CallRequest) -> Result<StreamingResponse, CallError> {
        let (tx, rx) = oneshot::channel();
        self.send(req, Reply::Streaming(tx), rx).await
    }

    async fn send<T: HasCode>(
        &self,
        req: CallRequest,
        reply: Reply,
        rx: oneshot::Receiver<Result<T, CallError>>,
    ) -> Result<T, CallError> {
        let reply = Some(reply);
        let CallRequest {
            service,
            method,
            arg2,
            arg3,
            options,
        } = req;
        let headers = self.headers(&options)?;
        let inherited = CURRENT_CALL.try_with(|c| *c).ok();
        let tracing = options.tracing.unwrap_or_else(|| match inherited {
            Some(c) => c.tracing.child(rand::random()),
            None => random_tracing(),
        });
        let start = now();
        // [TTL-7] inside a handler, never outlive the inbound call's deadline.
        let mut deadline = start + options.timeout;
        if let Some(c) = inherited {
            deadline = deadline.min(c.deadline);
        }
        let head = RequestHead {
            service: Bytes::from(service),
            headers,
            tracing,
            deadline,
            checksum: options.checksum,
        };
        let metrics = self.shared.config.metrics.then(|| {
            let peer = || {
                let hp = self
                    .shared
                    .lock()
                    .conn
                    .peer()
                    .map(|p| p.host_port.clone())
                    .unwrap_or_default();
                self.shared.peer_label(&hp)
            };
            let mut cache = self.shared.metrics_lock();
            cache.0.get(true, &head.service, &method, peer)
        });
        if let Some(m) = &metrics {
            m.started();
        }
        let span = tracing::debug_span!(
            "outbound call",
            service = %String::from_utf8_lossy(&head.service),
            method = %String::from_utf8_lossy(&method),
            peer = ?self.shared.peer_addr,
        );
        let fut = self.send_inner(method, arg2, arg3, head, deadline, reply, rx);
        let result = if span.is_disabled() {
            fut.await
        } else {
            fut.instrument(span).await
        };
        if let Some(m) = &metrics {
            m.done(result.as_ref().map(HasCode::code), now() - start);
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_inner<T>(
        &self,
        method: Bytes,
        arg2: Bytes,
        arg3: Body,
        head: RequestHead,
        deadline: std::time::Instant,
        reply: Option<Reply>,
        rx: oneshot::Receiver<Result<T, CallError>>,
    ) -> Result<T, CallError> {
        let mut reply = reply;
        let start = now();
        self.wait_for_space(deadline).await?;
        let mut guard = CallGuard {
            shared: self.shared.clone(),
            id: None,
        };
        match arg3 {
            Body::Full(arg3) => {
                let mut st = self.shared.lock();
                let id = st.conn.send_request(start, head, [&method, &arg2, &arg3])?;
                st.waiters
                    .insert(id, Waiter::new(reply.take().ok_or_else(gone)?));
                guard.id = Some(id);
            }
            Body::Stream(mut s) => {
                let id = {
                    let mut st = self.shared.lock();
                    let id = st.conn.start_request(start, head)?;
                    st.waiters
                        .insert(id, Waiter::new(reply.take().ok_or_else(gone)?));
                    guard.id = Some(id);
                    st.conn.write_request(id, &method)?;
                    st.conn.end_request_arg(id)?;
                    st.conn.write_request(id, &arg2)?;
                    st.conn.end_request_arg(id)?;
                    id
                };
                self.shared.waker.wake();
                while let Some(chunk) = s.next().await {
                    let chunk = chunk?;
                    self.wait_for_space(deadline).await?;
                    self.shared.lock().conn.write_request(id, &chunk)?;
                    self.shared.waker.wake();
                }
                self.shared.lock().conn.end_request_arg(id)?;
            }
        }
        self.shared.waker.wake();
        let res = rx.await;
        guard.id = None;
        match res {
            Ok(r) => r,
            Err(_) => Err(CallError::local(ErrorCode::NETWORK, "connection closed")),
        }
    }

    async fn wait_for_space(&self, deadline: std::time::Instant) -> Result<(), CallError> {
        loop {
            let space = self.shared.space.notified();
            {
                let st = self.shared.lock();
                if st.closed.is_some() || !self.shared.write_queue_full(&st) {
                    return Ok(());
                }
            }
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
            tokio::select! {
                _ = space => {}
                _ = sleep => return Err(CallError::local(ErrorCode::TIMEOUT, "write queue stayed full until the deadline")),
            }
        }
    }
}

#[cfg(feature = "tower")]
mod tower_impl {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::{CallError, CallRequest, CallResponse, Client};
    use crate::frame::ErrorCode;

    /// The client call path as a `tower::Service`, so tower layers (timeouts,
    /// retries, rate limits, ...) can wrap it.
    impl tower_service::Service<CallRequest> for Client {
        type Response = CallResponse;
        type Error = CallError;
        type Future = Pin<Box<dyn Future<Output = Result<CallResponse, CallError>> + Send>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), CallError>> {
            if self.is_closed() {
                Poll::Ready(Err(CallError::local(
                    ErrorCode::NETWORK,
                    "connection closed",
                )))
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
