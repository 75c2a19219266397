//! The caller's side of a call once its request is queued: the response as
//! the caller receives it, the future that waits for it, cancel-on-drop, and
//! how the driver fills a waiter from the core's events.
//!
//! A waiter is a slot in [`Waiters`] (no oneshot, no allocation per call in
//! steady state). The driver, holding the connection lock, puts the outcome
//! in the slot and collects the slot's waker; it wakes the callers after
//! releasing the lock. The caller's [`PendingCall`] takes the outcome and
//! frees the slot. Dropping it before then gives up on the call.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;

use super::body::{Abandon, Body, arg_stream, arg_stream_counted};
use super::observe::CallMetrics;
use super::shared::{Assembly, ConnState, Outcome, Shared, WaitState, now};
use crate::Error;
use crate::frame::{
    ArgChunk, ArgCollector, ErrorCode, FrameChunks, ResponseCode, Tracing, TransportHeaders,
};
use crate::proto::{ResponseStart, WholeResponse};

/// A response: success (code 0x00) or an application error (code 0x01),
/// both carrying args. Transport failures are `Err(Error)` instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallResponse {
    /// 0x00 ok; anything else is an application error.
    pub code: ResponseCode,
    /// Transport headers of the response.
    pub headers: TransportHeaders,
    /// Tracing echoed by the server.
    pub tracing: Tracing,
    /// arg2: the application's headers, in the call's arg scheme.
    pub arg2: Bytes,
    /// arg3: the body, whole (for a large one, use
    /// [`crate::Client::call_streaming`]).
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

/// A response whose arg3 arrives as a stream ([`super::Client::call_streaming`]).
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

// ===== the caller's future =====

/// A call whose request is (being) sent: resolves to its outcome. Dropping it
/// first gives up on the call (the core forgets it, remembers its id, and
/// sends a cancel frame when configured).
pub(crate) struct PendingCall<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) slot: u32,
    pub(crate) generation: u32,
    pub(crate) done: bool,
    pub(crate) metrics: Option<std::sync::Arc<CallMetrics>>,
    pub(crate) start: Instant,
}

impl PendingCall<'_> {
    /// Records the call's end and turns the outcome into the caller's result.
    fn finish(&self, outcome: Outcome) -> Result<Outcome, Error> {
        let (code, at) = match &outcome {
            Outcome::Response { code, at, .. } | Outcome::Streaming { code, at, .. } => {
                (Ok(*code), *at)
            }
            Outcome::Failed(e, at) => (Err(e), *at),
            Outcome::Taken => {
                return Err(Error::new(ErrorCode::NETWORK, "call already finished"));
            }
        };
        if let Some(m) = &self.metrics {
            m.done(code, at.saturating_duration_since(self.start));
        }
        match outcome {
            Outcome::Failed(e, _) => Err(e),
            o => Ok(o),
        }
    }
}

impl Future for PendingCall<'_> {
    type Output = Result<Outcome, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut st = this.shared.lock();
        let Some(w) = st.waiters.get(this.slot, this.generation) else {
            this.done = true;
            return Poll::Ready(Err(Error::new(ErrorCode::NETWORK, "connection closed")));
        };
        if let WaitState::Done(o) = &mut w.state {
            let outcome = std::mem::replace(o, Outcome::Taken);
            st.waiters.release(this.slot);
            drop(st);
            this.done = true;
            return Poll::Ready(this.finish(outcome));
        }
        match &w.waker {
            Some(old) if old.will_wake(cx.waker()) => {}
            _ => w.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut st = self.shared.lock();
        let st = &mut *st;
        let Some(w) = st.waiters.get(self.slot, self.generation) else {
            return;
        };
        let id = w.id;
        let live = !matches!(w.state, WaitState::Done(_));
        let state = std::mem::replace(&mut w.state, WaitState::Idle { streaming: false });
        release_collected(st, &state);
        st.waiters.release(self.slot);
        if live {
            let was_empty = st.conn.transmit_len() == 0;
            st.conn.cancel_call(now(), id, "caller gave up");
            st.streams.remove(&id);
            if was_empty {
                self.shared.driver.wake();
            }
        }
    }
}

// ===== filling waiters from the core's events (driver, under the lock) =====

/// A streamed call's waiter state is going away: the response bytes it
/// collected no longer count against the connection's budget.
pub(crate) fn release_collected(st: &mut ConnState, state: &WaitState) {
    if let WaitState::Waiting(a) = state
        && a.streaming
    {
        st.conn.release_response_bytes(a.bytes);
    }
}

/// A response that arrived whole (the usual call): the call is done.
pub(crate) fn on_whole_response(
    st: &mut ConnState,
    r: WholeResponse,
    at: Instant,
    wake: &mut Vec<Waker>,
) {
    let WholeResponse {
        id,
        code,
        headers,
        tracing,
        arg2,
        arg3,
    } = r;
    let Some(w) = st.waiters.unroute(id) else {
        return;
    };
    w.state = WaitState::Done(match w.state {
        WaitState::Idle { streaming: true } => {
            let (sender, body) = arg_stream();
            sender.push(arg3);
            sender.finish();
            Outcome::Streaming {
                code,
                headers,
                tracing,
                arg2,
                body,
                at,
            }
        }
        _ => Outcome::Response {
            code,
            headers,
            tracing,
            arg2,
            arg3,
            at,
        },
    });
    wake.extend(w.waker.take());
}

/// A response started.
pub(crate) fn on_response(
    st: &mut ConnState,
    r: ResponseStart,
    at: Instant,
    wake: &mut Vec<Waker>,
) {
    let ResponseStart {
        id,
        code,
        headers,
        tracing,
        chunks,
    } = r;
    let Some(w) = st.waiters.by_id(id) else {
        return;
    };
    let streaming = match w.state {
        WaitState::Idle { streaming } => streaming,
        _ => return,
    };
    if !streaming && let Some([_, arg2, arg3]) = chunks.whole_args() {
        // The usual response: one frame.
        w.state = WaitState::Done(Outcome::Response {
            code,
            headers,
            tracing,
            arg2,
            arg3,
            at,
        });
        wake.extend(w.waker.take());
        st.waiters.unroute(id);
        return;
    }
    w.state = WaitState::Waiting(Box::new(Assembly {
        streaming,
        head: Some((code, headers, tracing)),
        args: ArgCollector::new(),
        arg2_done: false,
        bytes: 0,
    }));
    on_response_continue(st, id, &chunks, at, wake);
}

/// More frames of a response.
pub(crate) fn on_response_continue(
    st: &mut ConnState,
    id: u32,
    chunks: &FrameChunks,
    at: Instant,
    wake: &mut Vec<Waker>,
) {
    let complete = chunks.message_complete();
    if let Some(body) = st.streams.get(&id) {
        let mut other = 0;
        for ArgChunk { index, data, .. } in chunks.iter() {
            if index == 2 {
                body.push(data);
            } else {
                other += data.len() as u64;
            }
        }
        st.conn.release_response_bytes(other);
        if complete && let Some(body) = st.streams.remove(&id) {
            body.finish();
        }
        return;
    }
    let Some(w) = st.waiters.by_id(id) else {
        return;
    };
    let WaitState::Waiting(a) = &mut w.state else {
        return;
    };
    for c in chunks.iter() {
        if c.index > 1 || (c.index == 1 && c.ends_arg) {
            a.arg2_done = true;
        }
        a.bytes += c.data.len() as u64;
        a.args.push(c);
    }
    if !(complete || a.streaming && a.arg2_done) {
        return;
    }
    let WaitState::Waiting(a) =
        std::mem::replace(&mut w.state, WaitState::Idle { streaming: false })
    else {
        return;
    };
    let Assembly {
        streaming,
        head,
        args,
        bytes,
        ..
    } = *a;
    let (code, headers, tracing) = head.unwrap_or((
        ResponseCode::OK,
        TransportHeaders::default(),
        Tracing::default(),
    ));
    if streaming {
        let (_, arg2, arg3) = args.into_two_and_chunks();
        // arg1 and arg2 go to the caller now; arg3's chunks count until the
        // consumer takes them from the stream.
        let queued: u64 = arg3.iter().map(|c| c.len() as u64).sum();
        st.conn.release_response_bytes(bytes.saturating_sub(queued));
        let abandon = Abandon {
            shared: st.me.clone(),
            id,
        };
        let (sender, stream) = arg_stream_counted(st.taken.clone(), abandon);
        for c in arg3 {
            sender.push(c);
        }
        if complete {
            sender.finish();
        } else {
            st.streams.insert(id, sender);
        }
        w.state = WaitState::Done(Outcome::Streaming {
            code,
            headers,
            tracing,
            arg2,
            body: stream,
            at,
        });
    } else {
        let [_, arg2, arg3] = args.into_three();
        w.state = WaitState::Done(Outcome::Response {
            code,
            headers,
            tracing,
            arg2,
            arg3,
            at,
        });
    }
    wake.extend(w.waker.take());
    st.waiters.unroute(id);
}

/// One of our calls failed (error frame, deadline, bad response, close).
pub(crate) fn on_call_failed(
    st: &mut ConnState,
    id: u32,
    error: Error,
    at: Instant,
    wake: &mut Vec<Waker>,
) {
    if let Some(body) = st.streams.remove(&id) {
        body.fail(error);
        return;
    }
    if let Some(w) = st.waiters.unroute(id) {
        let state = std::mem::replace(&mut w.state, WaitState::Done(Outcome::Failed(error, at)));
        wake.extend(w.waker.take());
        release_collected(st, &state);
    }
}

/// The connection closed: whoever still waits gets `error`.
pub(crate) fn on_closed(st: &mut ConnState, error: &Error, at: Instant, wake: &mut Vec<Waker>) {
    let slots = st.waiters.drain_routed();
    for slot in slots {
        if let Some(w) = st.waiters.slots.get_mut(slot as usize) {
            w.state = WaitState::Done(Outcome::Failed(error.clone(), at));
            wake.extend(w.waker.take());
        }
    }
    for (_, body) in st.streams.drain() {
        body.fail(error.clone());
    }
    st.space.wake_all();
}

impl Outcome {
    /// The whole response (from `call`).
    pub(crate) fn into_response(self) -> Result<CallResponse, Error> {
        match self {
            Outcome::Response {
                code,
                headers,
                tracing,
                arg2,
                arg3,
                ..
            } => Ok(CallResponse {
                code,
                headers,
                tracing,
                arg2,
                arg3,
            }),
            _ => Err(Error::new(
                ErrorCode::UNEXPECTED,
                "response delivered as a stream",
            )),
        }
    }

    /// The streamed response (from `call_streaming`).
    pub(crate) fn into_streaming(self) -> Result<StreamingResponse, Error> {
        match self {
            Outcome::Streaming {
                code,
                headers,
                tracing,
                arg2,
                body,
                ..
            } => Ok(StreamingResponse {
                code,
                headers,
                tracing,
                arg2,
                arg3: Body::Stream(Box::pin(body)),
            }),
            _ => Err(Error::new(
                ErrorCode::UNEXPECTED,
                "response delivered whole",
            )),
        }
    }
}
