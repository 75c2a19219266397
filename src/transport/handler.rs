//! Server side: requests, responses and the handlers that turn one into the other.

type HashMap<K, V> = foldhash::HashMap<K, V>;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::body::Body;
use crate::frame::{ErrorCode, ResponseCode, Tracing, TransportHeaders};
use crate::proto::CallError;

/// A request as a handler sees it.
#[derive(Debug)]
pub struct Request {
    /// The service the caller asked for.
    pub service: Bytes,
    /// arg1: the method (endpoint) name.
    pub method: Bytes,
    /// arg2: application headers (format depends on the `as` scheme).
    pub arg2: Bytes,
    /// arg3: the body; streamed for handlers registered with `streaming`.
    pub arg3: Body,
    /// Transport headers as sent.
    pub headers: TransportHeaders,
    /// Tracing as sent. Calls made inside the handler carry this trace with
    /// this span as their parent.
    pub tracing: Tracing,
    /// When the caller's ttl runs out here.
    pub deadline: Instant,
    /// The peer's `host_port`.
    pub peer: String,
    pub(crate) cancel: CancellationToken,
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

    /// Resolves when the caller cancels, the deadline passes or the connection
    /// closes. The handler's future is dropped then anyway; this lets it stop
    /// work it runs elsewhere.
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + 'static {
        self.cancel.clone().cancelled_owned()
    }

    /// True once the call was cancelled, timed out or lost its connection.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// A handler's answer.
#[derive(Debug)]
pub struct Response {
    /// 0x00 ok, 0x01 application error.
    pub code: ResponseCode,
    /// Extra transport headers (`as` is copied from the request when absent).
    pub headers: Vec<(String, String)>,
    /// arg2.
    pub arg2: Bytes,
    /// arg3, whole or streamed.
    pub arg3: Body,
}

impl Response {
    /// A success.
    pub fn ok(arg2: impl Into<Bytes>, arg3: impl Into<Body>) -> Response {
        Response {
            code: ResponseCode::OK,
            headers: Vec::new(),
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
    pub fn with_header(mut self, k: impl Into<String>, v: impl Into<String>) -> Response {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// What a handler returns: a response, or an error frame with this code.
pub type HandlerResult = Result<Response, CallError>;

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send + 'static>>;

/// Turns requests into responses. Any `Fn(Request) -> impl Future<Output =
/// HandlerResult>` is a handler.
///
/// Handlers run on the connection's own task, polled in place: no task is
/// spawned per call. A handler that blocks or burns CPU should move that work
/// elsewhere (`tokio::task::spawn_blocking`, or `tokio::spawn` and await the
/// join handle).
pub trait Handler: Send + Sync + 'static {
    /// Handles one request.
    fn call(&self, req: Request) -> HandlerFuture;
}

impl<F, Fut> Handler for F
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    fn call(&self, req: Request) -> HandlerFuture {
        Box::pin(self(req))
    }
}

/// A handler error: an error frame with `code`.
pub fn handler_error(code: ErrorCode, message: impl Into<String>) -> CallError {
    CallError::local(code, message)
}

#[derive(Clone)]
pub(crate) struct Registered {
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) streaming: bool,
}

/// Handlers by (service, method).
#[derive(Default)]
pub(crate) struct Registry {
    map: RwLock<HashMap<Bytes, HashMap<Bytes, Registered>>>,
}

pub(crate) enum Lookup {
    Found(Registered),
    NoService,
    NoMethod,
}

impl Registry {
    pub(crate) fn insert(&self, service: &str, method: &str, r: Registered) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        map.entry(Bytes::copy_from_slice(service.as_bytes()))
            .or_default()
            .insert(Bytes::copy_from_slice(method.as_bytes()), r);
    }

    pub(crate) fn lookup(&self, service: &[u8], method: &[u8]) -> Lookup {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        match map.get(service) {
            None => Lookup::NoService,
            Some(m) => match m.get(method) {
                Some(r) => Lookup::Found(r.clone()),
                None => Lookup::NoMethod,
            },
        }
    }
}
