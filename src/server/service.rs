//! Any `tower::Service<Request>` as a handler.

use std::future::poll_fn;

use tower::BoxError;
use tower_service::Service;

use crate::Error;
use crate::frame::ErrorCode;
use crate::server::{Handler, HandlerFuture, Request, Response};

/// A handler made of a `tower::Service<Request, Response = Response>`, so
/// that timeouts, load shedding and rate limits are ordinary tower layers.
///
/// Each call clones the service, waits for `poll_ready` and calls it. The
/// service's error becomes the error frame: a [`crate::Error`] is sent as it
/// is; tower's `Overloaded` (from `load_shed`) is busy, so callers retry
/// elsewhere; tower's `Elapsed` (from `timeout`) is timeout; anything else
/// is unexpected, with the error's text. The future is boxed (one
/// allocation per call, which closures registered directly avoid).
///
/// ```
/// use std::time::Duration;
/// use tchan::server::ServiceHandler;
/// use tchan::{Channel, Request, Response};
///
/// let handler = tower::ServiceBuilder::new()
///     .load_shed()
///     .concurrency_limit(64)
///     .timeout(Duration::from_millis(500))
///     .service_fn(|req: Request| async move {
///         let body = req.arg3.into_bytes().await?;
///         Ok::<_, tchan::Error>(Response::ok(req.arg2, body))
///     });
/// let channel = Channel::new("echo");
/// channel.register("echo", "echo", ServiceHandler::new(handler));
/// ```
#[derive(Debug, Clone)]
pub struct ServiceHandler<S> {
    service: S,
}

impl<S> ServiceHandler<S> {
    /// Wraps `service`.
    pub fn new(service: S) -> ServiceHandler<S> {
        ServiceHandler { service }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.service
    }
}

impl<S> Handler for ServiceHandler<S>
where
    S: Service<Request, Response = Response> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Future = HandlerFuture;

    fn call(&self, req: Request) -> HandlerFuture {
        let mut service = self.service.clone();
        Box::pin(async move {
            poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(into_error)?;
            service.call(req).await.map_err(into_error)
        })
    }
}

/// The error frame for a service's error.
fn into_error(e: impl Into<BoxError>) -> Error {
    let e = e.into();
    let e = match e.downcast::<Error>() {
        Ok(e) => return *e,
        Err(e) => e,
    };
    if e.is::<tower::load_shed::error::Overloaded>() {
        return Error::new(ErrorCode::BUSY, "overloaded");
    }
    if e.is::<tower::timeout::error::Elapsed>() {
        return Error::new(ErrorCode::TIMEOUT, "the handler timed out");
    }
    Error::new(ErrorCode::UNEXPECTED, e.to_string())
}
