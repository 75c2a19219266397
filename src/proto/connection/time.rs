//! Time: deadlines of calls, remembered ids of finished ones, keepalive.

use std::time::Instant;

use super::*;

impl Connection {
    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        if self.state == State::Closed {
            return;
        }
        if self.handshake_deadline.is_some_and(|d| d <= now) {
            return self.close(CloseReason::HandshakeTimeout);
        }
        if let State::Draining { deadline } = self.state
            && deadline <= now
        {
            return self.close(CloseReason::DrainTimeout);
        }
        while let Some((_, dir, r)) = self.deadlines.pop_due(now) {
            let Some(id) = self.live_id(dir, r) else {
                continue;
            };
            match dir {
                Dir::Out => {
                    let tracing = self
                        .out_calls
                        .get(OutId(id))
                        .map(|c| c.tracing)
                        .unwrap_or_default();
                    self.remove_outbound(OutId(id));
                    self.tombstone(now, Dir::Out, id);
                    if self.config.send_cancel {
                        self.send_cancel(id, 0, tracing, "timeout");
                    }
                    self.events.push_back(Event::CallFailed {
                        id,
                        error: Error::new(ErrorCode::TIMEOUT, "deadline passed"),
                    });
                }
                Dir::In => self.abort_inbound(id, ErrorCode::TIMEOUT, "deadline passed", now),
            }
        }
        while let Some(&(at, dir, id)) = self.tombstones.front() {
            if at > now {
                break;
            }
            self.tombstones.pop_front();
            self.tombstone_set.remove(&(dir, id));
        }
        if let (Some(next), Some(k)) = (self.keepalive_next, self.config.keepalive)
            && next <= now
        {
            if let Some(unanswered) = self.keepalive_ping.take() {
                // Only our own keepalive ping counts; pings the
                // application sent keep waiting for their answer.
                self.pings.remove(&unanswered);
                self.keepalive_unanswered += 1;
                if self.keepalive_unanswered >= k.max_unanswered {
                    return self.close(CloseReason::KeepaliveTimeout);
                }
            }
            let id = self.alloc_id();
            self.pings.insert(id);
            self.keepalive_ping = Some(id);
            self.queue(Frame::PingReq(Ping::new(id)));
            self.keepalive_next = Some(now + k.interval);
        }
        self.maybe_drained();
    }

    pub(super) fn tombstone(&mut self, now: Instant, dir: Dir, id: u32) {
        if !self.tombstone_set.insert((dir, id)) {
            return;
        }
        self.tombstones
            .push_back((now + self.config.tombstone_ttl, dir, id));
        while self.tombstones.len() > self.config.max_tombstones {
            if let Some((_, d, i)) = self.tombstones.pop_front() {
                self.tombstone_set.remove(&(d, i));
            }
        }
    }

    /// The id of the call a deadline entry names, if it is still in flight.
    pub(super) fn live_id(&self, dir: Dir, r: CallRef) -> Option<u32> {
        match dir {
            Dir::Out => self.out_calls.live_id(r).map(|i| i.0),
            Dir::In => self.in_calls.live_id(r).map(|i| i.0),
        }
    }

    /// Drops deadlines of calls that ended (see `timers.rs`), so the queues
    /// stay O(live calls).
    pub(super) fn prune_deadlines(&mut self) {
        let live = self.out_calls.len() + self.in_calls.len();
        let (out, inb) = (&self.out_calls, &self.in_calls);
        self.deadlines.prune(live, |&(_, dir, r)| match dir {
            Dir::Out => out.live_id(r).is_some(),
            Dir::In => inb.live_id(r).is_some(),
        });
    }
}
