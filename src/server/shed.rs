//! Server-side load shedding: handler wrappers that answer busy (0x03) instead
//! of queueing work the server cannot keep up with.
//!
//! Busy tells the caller the work was not started and that it may retry on
//! another peer (ERR-8), which a [`crate::PeerPool`] does at once. Shedding
//! early keeps latency bounded for the calls that are accepted.
//!
//! ```no_run
//! use tchan::server::shed::{ConcurrencyLimit, RateLimit};
//! use tchan::{Channel, Request, Response};
//!
//! async fn get(_req: Request) -> tchan::server::HandlerResult {
//!     Ok(Response::ok("", "value"))
//! }
//! async fn put(_req: Request) -> tchan::server::HandlerResult {
//!     Ok(Response::ok("", ""))
//! }
//!
//! let ch = Channel::new("kv");
//! // At most 100 calls at once to the whole "kv" service, shared by its methods.
//! let kv = ConcurrencyLimit::new(100);
//! ch.register("kv", "get", kv.wrap(get));
//! // Writes also at most 50 per second, with bursts of 10.
//! ch.register("kv", "put", kv.wrap(RateLimit::new(50.0, 10).wrap(put)));
//! // One method alone: the free functions.
//! ch.register("other", "m", tchan::server::shed::limit(get, 8));
//! ```
//!
//! A call counts against the concurrency limit until its handler's future
//! finishes (or is dropped, when the caller cancels or the deadline passes).
//! For a handler that returns a streamed body, streaming the body happens
//! after that.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::Error;
use crate::frame::ErrorCode;
use crate::server::{Handler, HandlerFuture, Request};

fn busy(why: &'static str) -> HandlerFuture {
    Box::pin(async move { Err::<_, Error>(Error::new(ErrorCode::BUSY, why)) })
}

/// A limit on calls in flight, shared by every handler it wraps.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimit {
    max: usize,
    current: Arc<AtomicUsize>,
}

impl ConcurrencyLimit {
    /// At most `max` calls at once.
    pub fn new(max: usize) -> ConcurrencyLimit {
        ConcurrencyLimit {
            max,
            current: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }

    /// `handler`, answering busy while this limit is reached.
    pub fn wrap<H: Handler>(&self, handler: H) -> Limited<H> {
        Limited {
            handler,
            limit: self.clone(),
        }
    }

    fn try_acquire(&self) -> Option<Permit> {
        self.current
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Permit {
                current: self.current.clone(),
            })
    }
}

struct Permit {
    current: Arc<AtomicUsize>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.current.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A handler behind a [`ConcurrencyLimit`].
#[derive(Debug, Clone)]
pub struct Limited<H> {
    handler: H,
    limit: ConcurrencyLimit,
}

impl<H: Handler> Handler for Limited<H> {
    type Future = HandlerFuture;

    fn call(&self, req: Request) -> HandlerFuture {
        let Some(permit) = self.limit.try_acquire() else {
            return busy("too many calls in flight");
        };
        let fut = self.handler.call(req);
        Box::pin(async move {
            let _permit = permit;
            fut.await
        })
    }
}

/// `handler` with at most `max_concurrent` calls in flight; more are answered
/// busy (0x03).
pub fn limit<H: Handler>(handler: H, max_concurrent: usize) -> Limited<H> {
    ConcurrencyLimit::new(max_concurrent).wrap(handler)
}

/// A token bucket: `rate` tokens a second, holding at most `burst`; starts
/// full. Pure: time comes in as `now`.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_sec: f64, burst: u32) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: if per_sec.is_finite() {
                per_sec.max(0.0)
            } else {
                0.0
            },
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// Takes a token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A rate limit shared by every handler it wraps.
#[derive(Debug, Clone)]
pub struct RateLimit {
    bucket: Arc<Mutex<TokenBucket>>,
}

impl RateLimit {
    /// `per_sec` calls a second on average, bursts of up to `burst`.
    pub fn new(per_sec: f64, burst: u32) -> RateLimit {
        RateLimit {
            bucket: Arc::new(Mutex::new(TokenBucket::new(per_sec, burst))),
        }
    }

    /// `handler`, answering busy when no token is left.
    pub fn wrap<H: Handler>(&self, handler: H) -> RateLimited<H> {
        RateLimited {
            handler,
            limit: self.clone(),
        }
    }

    fn try_take(&self) -> bool {
        let now = crate::util::now();
        self.bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_take(now)
    }
}

/// A handler behind a [`RateLimit`].
#[derive(Debug, Clone)]
pub struct RateLimited<H> {
    handler: H,
    limit: RateLimit,
}

impl<H: Handler> Handler for RateLimited<H> {
    type Future = HandlerFuture;

    fn call(&self, req: Request) -> HandlerFuture {
        if !self.limit.try_take() {
            return busy("rate limit reached");
        }
        Box::pin(self.handler.call(req))
    }
}

/// `handler` limited to `per_sec` calls a second with bursts of `burst`; the
/// rest are answered busy (0x03).
pub fn rate_limit<H: Handler>(handler: H, per_sec: f64, burst: u32) -> RateLimited<H> {
    RateLimit::new(per_sec, burst).wrap(handler)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn token_bucket() {
        // [POOL-26]
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 3);
        assert_eq!((0..5).filter(|_| b.try_take(t0)).count(), 3);
        // 10 per second: one token every 100 ms, never more than the burst.
        assert!(!b.try_take(t0 + Duration::from_millis(50)));
        assert!(b.try_take(t0 + Duration::from_millis(100)));
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..5).filter(|_| b.try_take(later)).count(), 3);
    }

    #[test]
    fn concurrency_permits() {
        // [POOL-25]
        let l = ConcurrencyLimit::new(2);
        let a = l.try_acquire();
        let b = l.try_acquire();
        assert!(a.is_some() && b.is_some());
        assert!(l.try_acquire().is_none());
        drop(a);
        assert_eq!(l.in_flight(), 1);
        assert!(l.try_acquire().is_some());
    }
}
