//! Waiting for room in a connection's write queue, first come first served.
//!
//! A caller that finds the queue over its limit, or others already waiting,
//! takes a ticket and waits its turn. The driver wakes only the first in
//! line when writes make room; each caller served wakes the next while room
//! lasts. So waiters are served in arrival order, none is starved by later
//! callers, and a drained queue does not wake them all at once.

use std::future::poll_fn;
use std::task::Poll;
use std::time::Instant;

use super::shared::{ConnState, Shared};
use crate::Error;
use crate::frame::ErrorCode;

/// A caller's place in the line (none until it has to wait).
pub(crate) struct SpaceWait<'a> {
    shared: &'a Shared,
    ticket: Option<u64>,
}

impl<'a> SpaceWait<'a> {
    pub(crate) fn new(shared: &'a Shared) -> SpaceWait<'a> {
        SpaceWait {
            shared,
            ticket: None,
        }
    }

    /// Under the lock: true when this caller may add to the write queue now.
    /// Otherwise it joins the line.
    pub(crate) fn may_go(&mut self, st: &mut ConnState) -> bool {
        if st.closed.is_some() {
            return true;
        }
        let first = match self.ticket {
            None => st.space.is_empty(),
            Some(t) => st.space.is_first(t),
        };
        if first && !self.shared.write_queue_full(st) {
            return true;
        }
        if self.ticket.is_none() {
            self.ticket = Some(st.space.join());
        }
        false
    }

    /// Under the lock, after adding to the queue: leaves the line, waking the
    /// next caller if room remains.
    pub(crate) fn done(&mut self, st: &mut ConnState) {
        if let Some(t) = self.ticket.take() {
            let room = !self.shared.write_queue_full(st);
            st.space.leave(t, room);
        }
    }

    /// Waits (without the lock) for this caller's turn, up to `deadline`.
    pub(crate) async fn wait(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        let Some(ticket) = self.ticket else {
            return Ok(());
        };
        let shared = self.shared;
        let turn = poll_fn(|cx| {
            let mut st = shared.lock();
            if st.closed.is_some() || st.space.is_first(ticket) && !shared.write_queue_full(&st) {
                return Poll::Ready(());
            }
            st.space.park(ticket, cx.waker());
            Poll::Pending
        });
        match deadline {
            None => {
                turn.await;
                Ok(())
            }
            Some(d) => {
                let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(d));
                tokio::select! {
                    () = turn => Ok(()),
                    () = sleep => Err(Error::new(
                        ErrorCode::TIMEOUT,
                        "write queue stayed full until the deadline",
                    )),
                }
            }
        }
    }

    /// Waits for room (no lock held on return) with no deadline: for writers
    /// of streamed args, whose call's deadline ends them anyway.
    pub(crate) async fn until_room(shared: &'a Shared) -> Result<(), Error> {
        let mut w = SpaceWait::new(shared);
        loop {
            {
                let mut st = shared.lock();
                if w.may_go(&mut st) {
                    w.done(&mut st);
                    return match st.closed {
                        Some(_) => Err(Error::new(ErrorCode::NETWORK, "connection closed")),
                        None => Ok(()),
                    };
                }
            }
            w.wait(None).await?;
        }
    }
}

impl Drop for SpaceWait<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            let mut st = self.shared.lock();
            let room = !self.shared.write_queue_full(&st);
            st.space.leave(t, room);
        }
    }
}
