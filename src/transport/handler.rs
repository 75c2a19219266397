//! Server side: requests, responses and the handlers that turn one into the other.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;

use super::body::Body;
use super::inbound::CallHandle;
use crate::Error;
use crate::frame::{ErrorCode, ResponseCode, Tracing, TransportHeaders};
use crate::util::HashMap;

/// A request as a handler sees it.
#[derive(Debug)]
pub struct Request {
    /// The service the caller asked for.
    pub service: Bytes,
    /// arg1: the method (endpoint) name.
    pub method: Bytes,
    /// arg2: application headers (format depends on the `as` scheme).
    pub arg2: Bytes,
    /// arg3: the body. Whole for a handler registered with
    /// [`super::Channel::register`] (as the frame slices it arrived in when
    /// it spans frames); streamed for [`super::Channel::register_streaming`].
    pub arg3: Body,
    /// Transport headers as sent.
    pub headers: TransportHeaders,
    /// Tracing as sent. Calls made inside the handler carry this trace with
    /// this span as their parent.
    pub tracing: Tracing,
    /// When the caller's ttl runs out here.
    pub deadline: Instant,
    /// The peer's `host_port`.
    pub peer: Arc<str>,
    pub(crate) cancel: CallHandle,
}

impl Request {
    /// A transport header's value, if present and UTF-8.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .get(key.as_bytes())
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The arg scheme (`as` header), e.g. `raw`, `json`, `thrift`.
    pub fn scheme(&self) -> Option<&str> {
        self.header("as")
    }

    /// The method name as text (lossy).
    pub fn method_str(&self) -> String {
        String::from_utf8_lossy(&self.method).into_owned()
    }

    /// Resolves once the call is over: cancelled by the caller, past its
    /// deadline, its connection closed, or answered. The handler's future is
    /// dropped on the first three anyway; this lets work the handler started
    /// elsewhere (a spawned task) stop too.
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + 'static {
        let token = self.cancel.token();
        async move {
            if let Some(t) = token {
                t.cancelled_owned().await;
            }
        }
    }

    /// True once the call is over (see [`Request::cancelled`]).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_over()
    }

    /// Takes arg3 out, leaving an empty body, so that it can be consumed
    /// while the rest of the request is still borrowed.
    pub fn take_arg3(&mut self) -> Body {
        std::mem::replace(&mut self.arg3, Body::empty())
    }

    /// Splits the request into everything but arg3, and arg3.
    pub fn into_parts(self) -> (RequestParts, Body) {
        let Request {
            service,
            method,
            arg2,
            arg3,
            headers,
            tracing,
            deadline,
            peer,
            cancel,
        } = self;
        let parts = RequestParts {
            service,
            method,
            arg2,
            headers,
            tracing,
            deadline,
            peer,
            cancel,
        };
        (parts, arg3)
    }
}

/// A [`Request`] without its arg3 ([`Request::into_parts`]).
#[derive(Debug)]
pub struct RequestParts {
    /// The service the caller asked for.
    pub service: Bytes,
    /// arg1: the method (endpoint) name.
    pub method: Bytes,
    /// arg2: application headers (format depends on the `as` scheme).
    pub arg2: Bytes,
    /// Transport headers as sent.
    pub headers: TransportHeaders,
    /// Tracing as sent.
    pub tracing: Tracing,
    /// When the caller's ttl runs out here.
    pub deadline: Instant,
    /// The peer's `host_port`.
    pub peer: Arc<str>,
    cancel: CallHandle,
}

impl RequestParts {
    /// A transport header's value, if present and UTF-8.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .get(key.as_bytes())
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Resolves once the call is over ([`Request::cancelled`]).
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + 'static {
        let token = self.cancel.token();
        async move {
            if let Some(t) = token {
                t.cancelled_owned().await;
            }
        }
    }

    /// True once the call is over.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_over()
    }
}

/// A handler's answer.
#[derive(Debug)]
pub struct Response {
    /// 0x00 ok, 0x01 application error.
    pub code: ResponseCode,
    /// Extra transport headers (`as` is copied from the request when absent).
    /// Checked when the response is sent: one that breaks the rules turns
    /// the answer into an unexpected-error frame.
    pub headers: TransportHeaders,
    /// arg2: the application's headers, in the request's arg scheme.
    pub arg2: Bytes,
    /// arg3, whole or streamed.
    pub arg3: Body,
}

impl Response {
    /// A success.
    pub fn ok(arg2: impl Into<Bytes>, arg3: impl Into<Body>) -> Response {
        Response {
            code: ResponseCode::OK,
            headers: TransportHeaders::new(),
            arg2: arg2.into(),
            arg3: arg3.into(),
        }
    }

    /// An application error (call res code 0x01), with args describing it.
    pub fn app_error(arg2: impl Into<Bytes>, arg3: impl Into<Body>) -> Response {
        Response {
            code: ResponseCode::ERROR,
            ..Response::ok(arg2, arg3)
        }
    }

    /// Adds a transport header.
    pub fn with_header(mut self, k: impl AsRef<[u8]>, v: impl AsRef<[u8]>) -> Response {
        self.headers.push_or_poison(k, v);
        self
    }
}

/// What a handler returns: a response, or an error frame with this code.
pub type HandlerResult = Result<Response, Error>;

/// A boxed handler future, for handlers whose future type cannot be named.
pub type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send + 'static>>;

/// Turns requests into responses. Any `Fn(Request) -> impl Future<Output =
/// HandlerResult>` is a handler.
///
/// Handlers run on the connection's own task, polled in place: no task is
/// spawned per call, and a handler whose future is ready at once is answered
/// in the same pass over the read batch. The futures live in slots the
/// connection keeps and reuses, so a call allocates nothing for them.
/// Dropping the future is how a call is cancelled. A handler that blocks or
/// burns CPU should move that work elsewhere (`tokio::task::spawn_blocking`,
/// or `tokio::spawn` and await the join handle).
pub trait Handler: Send + Sync + 'static {
    /// The future `call` returns.
    type Future: Future<Output = HandlerResult> + Send + 'static;

    /// Handles one request.
    fn call(&self, req: Request) -> Self::Future;
}

impl<F, Fut> Handler for F
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    type Future = Fut;

    fn call(&self, req: Request) -> Fut {
        self(req)
    }
}

// ===== slots: handler futures without an allocation per call =====

/// Where one call's handler future lives while it runs. A connection keeps
/// finished slots and reuses them for later calls to the same handler.
pub(crate) trait HandlerSlot: Send {
    /// Creates the handler's future for `req` in this slot.
    fn start(&mut self, req: Request);
    /// Polls it; once it is ready the slot is empty again.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<HandlerResult>;
    /// Drops the future (the call was cancelled).
    fn clear(&mut self);
}

struct Slot<H: Handler> {
    handler: Arc<H>,
    /// Pinned once, for the slot's whole life; `Pin::set` replaces the
    /// future in place.
    fut: Pin<Box<Option<H::Future>>>,
}

impl<H: Handler> HandlerSlot for Slot<H> {
    fn start(&mut self, req: Request) {
        let fut = self.handler.call(req);
        self.fut.set(Some(fut));
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<HandlerResult> {
        let Some(fut) = self.fut.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(Error::new(
                ErrorCode::UNEXPECTED,
                "handler polled after it finished",
            )));
        };
        let res = std::task::ready!(fut.poll(cx));
        self.fut.set(None);
        Poll::Ready(res)
    }

    fn clear(&mut self) {
        self.fut.set(None);
    }
}

/// Makes slots for one registered handler.
pub(crate) trait SlotFactory: Send + Sync {
    fn new_slot(&self) -> Box<dyn HandlerSlot>;
}

impl<H: Handler> SlotFactory for Arc<H> {
    fn new_slot(&self) -> Box<dyn HandlerSlot> {
        Box::new(Slot {
            handler: self.clone(),
            fut: Box::pin(None),
        })
    }
}

// ===== the registry =====

/// One registered handler.
#[derive(Clone)]
pub(crate) struct Registered {
    /// Its index in the registry (slots are kept per index).
    pub(crate) index: u32,
    pub(crate) factory: Arc<dyn SlotFactory>,
    pub(crate) streaming: bool,
}

/// Handlers by (service, method).
#[derive(Default)]
pub(crate) struct Registry {
    map: RwLock<HashMap<Bytes, HashMap<Bytes, Registered>>>,
    /// The `Meta` service's handler, answered for `Meta::*` on every served
    /// service and on `tchannel` when no handler of the application's own
    /// takes the method (SCHEME-18).
    meta: Option<Registered>,
    count: AtomicU64,
    /// Changes on every registration, so connections drop cached lookups.
    generation: AtomicU64,
}

pub(crate) enum Lookup {
    Found(Registered),
    NoService,
    NoMethod,
}

impl Registry {
    pub(crate) fn insert<H: Handler>(&self, service: &str, method: &str, h: H, streaming: bool) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let index = self.count.fetch_add(1, Ordering::Relaxed) as u32;
        let r = Registered {
            index,
            factory: Arc::new(Arc::new(h)),
            streaming,
        };
        map.entry(Bytes::copy_from_slice(service.as_bytes()))
            .or_default()
            .insert(Bytes::copy_from_slice(method.as_bytes()), r);
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn lookup(&self, service: &[u8], method: &[u8]) -> Lookup {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let found = match map.get(service) {
            None => Lookup::NoService,
            Some(m) => match m.get(method) {
                Some(r) => return Lookup::Found(r.clone()),
                None => Lookup::NoMethod,
            },
        };
        match &self.meta {
            Some(meta)
                if method.starts_with(b"Meta::")
                    && (service == b"tchannel" || map.contains_key(service)) =>
            {
                Lookup::Found(meta.clone())
            }
            _ => found,
        }
    }

    /// A registry that answers `Meta::*` with `h`.
    #[cfg(feature = "thrift")]
    pub(crate) fn with_meta<H: Handler>(h: H) -> Registry {
        let r = Registry::default();
        Registry {
            meta: Some(Registered {
                index: r.count.fetch_add(1, Ordering::Relaxed) as u32,
                factory: Arc::new(Arc::new(h)),
                streaming: false,
            }),
            ..r
        }
    }
}
