//! Arbitrary operation sequences against two `proto::Connection`s wired back
//! to back on a virtual clock: calls started, answered, cancelled and timed
//! out, frames delivered late, dropped or corrupted, time passing, drains and
//! closes.
//!
//! Invariants checked after every step:
//! - nothing panics;
//! - no event follows `Closed`, and a closed side's tables are all empty;
//! - every outbound call gets at most one outcome (a response that completes,
//!   or `CallFailed`), and once both sides are closed or idle, every call has
//!   exactly one;
//! - `poll_timeout` after `handle_timeout(now)` is later than `now`;
//! - every transmitted batch splits into whole frames.
//!
//! Frames are delivered through both of the core's inputs in turn: the
//! general `handle_frame` and the fast `handle_frame_bytes`.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tchan::codec::FrameCodec;
use tchan::frame::{ChecksumType, ErrorCode, ResponseCode, Tracing, TransportHeaders};
use tchan::proto::{Connection, ConnectionConfig, Event, RequestHead, Whole};
use tokio_util::codec::Decoder;

// The invariant checks are the proto tests' own.
#[path = "../../tests/support/conn.rs"]
mod harness;

#[derive(Arbitrary, Debug)]
enum Op {
    Advance(u16),
    Call {
        side: bool,
        deadline_ms: u16,
        arg3: u16,
        checksum: u8,
    },
    Respond {
        side: bool,
        pick: u16,
        arg3: u16,
        error: bool,
    },
    Cancel {
        side: bool,
        pick: u16,
    },
    Deliver {
        side: bool,
        frames: u8,
    },
    DropPending {
        side: bool,
    },
    Corrupt {
        side: bool,
        at: u16,
        byte: u8,
    },
    Inject {
        side: bool,
        bytes: Vec<u8>,
    },
    Ping {
        side: bool,
    },
    Drain {
        side: bool,
        ms: u16,
    },
    Close {
        side: bool,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    max_frame: u16,
    send_cancel: bool,
    ops: Vec<Op>,
}

struct Side {
    conn: Connection,
    /// Bytes written and not yet delivered to the other side.
    pending: BytesMut,
    codec: FrameCodec,
    inbox: BytesMut,
    closed: bool,
    /// Our calls and whether they have an outcome yet.
    calls: HashMap<u32, bool>,
    /// Calls with a response that started but did not finish yet.
    partial: HashSet<u32>,
    /// Inbound requests we may answer.
    inbound: Vec<u32>,
}

impl Side {
    fn new(conn: Connection) -> Side {
        Side {
            conn,
            pending: BytesMut::new(),
            codec: FrameCodec::new(),
            inbox: BytesMut::new(),
            closed: false,
            calls: HashMap::new(),
            partial: HashSet::new(),
            inbound: Vec::new(),
        }
    }

    fn collect(&mut self) {
        if let Some(b) = self.conn.poll_transmit() {
            harness::whole_frames(&mut FrameCodec::new(), b.clone(), "side");
            self.pending.extend_from_slice(&b);
        }
        while let Some(ev) = self.conn.poll_event() {
            assert!(!self.closed, "event after Closed: {ev:?}");
            match ev {
                Event::Closed(_) => {
                    self.closed = true;
                    harness::check_closed(&self.conn, "side");
                }
                Event::Response(r) => {
                    let done = r.chunks.message_complete();
                    self.outcome(r.id, done);
                }
                Event::ResponseContinue { id, chunks } => {
                    assert!(
                        self.partial.contains(&id),
                        "continue for a finished response"
                    );
                    if chunks.message_complete() {
                        self.partial.remove(&id);
                        if let Some(o) = self.calls.get_mut(&id) {
                            *o = true;
                        }
                    }
                }
                Event::CallFailed { id, .. } => {
                    if !self.partial.remove(&id) {
                        let had = self.calls.insert(id, true);
                        assert_eq!(had, Some(false), "second outcome for call {id}");
                    } else {
                        self.calls.insert(id, true);
                    }
                }
                Event::Request(r) => self.inbound.push(r.id),
                Event::RequestCancelled { id } | Event::RequestAborted { id, .. } => {
                    self.inbound.retain(|i| *i != id)
                }
                _ => {}
            }
        }
    }

    fn outcome(&mut self, id: u32, complete: bool) {
        let had = self.calls.get(&id).copied();
        assert_eq!(
            had,
            Some(false),
            "response for call {id} with state {had:?}"
        );
        if complete {
            self.calls.insert(id, true);
        } else {
            self.partial.insert(id);
        }
    }
}

fn head(now: Instant, ms: u16, checksum: u8) -> RequestHead {
    RequestHead {
        service: Bytes::from_static(b"svc"),
        headers: TransportHeaders::strict([("cn", "fuzz"), ("as", "raw")]).unwrap(),
        tracing: Tracing::default(),
        deadline: now + Duration::from_millis(u64::from(ms)),
        checksum: ChecksumType(checksum % 4),
    }
}

fn deliver(from: &mut Side, to: &mut Side, now: Instant, frames: usize) {
    let mut n = 0;
    while n < frames && !from.pending.is_empty() && !to.closed {
        // Move one whole frame (or everything left when it is not a frame).
        let size = if from.pending.len() >= 2 {
            usize::from(u16::from_be_bytes([from.pending[0], from.pending[1]]))
                .clamp(1, from.pending.len())
        } else {
            from.pending.len()
        };
        let chunk = from.pending.split_to(size);
        to.inbox.extend_from_slice(&chunk);
        // Odd deliveries take the driver's path (whole calls handed back at
        // once), even ones the general path; both must keep the invariants.
        let fast = n % 2 == 1;
        loop {
            if fast {
                match to.codec.split_frame(&mut to.inbox) {
                    Ok(Some((h, p))) => match to.conn.handle_frame_bytes(now, h, p) {
                        Some(Whole::Request(r)) => to.inbound.push(r.id),
                        Some(Whole::Response(r)) => to.outcome(r.id, true),
                        None => {}
                    },
                    Ok(None) => break,
                    Err(e) => {
                        to.conn.handle_decode_error(&e);
                        to.inbox.clear();
                        break;
                    }
                }
                continue;
            }
            match to.codec.decode(&mut to.inbox) {
                Ok(Some(f)) => to.conn.handle_frame(now, f),
                Ok(None) => break,
                Err(tchan::codec::CodecError::Decode(e)) => {
                    to.conn.handle_decode_error(&e);
                    to.inbox.clear();
                    break;
                }
                Err(_) => break,
            }
        }
        to.collect();
        n += 1;
    }
}

fuzz_target!(|input: Input| {
    let start = Instant::now();
    let mut now = start;
    let config = {
        let mut c = ConnectionConfig::default();
        c.set_max_frame_size(usize::from(input.max_frame).clamp(512, 65535))
            .expect("valid");
        c.set_send_cancel(input.send_cancel);
        c.set_max_inbound_calls(64);
        c.set_max_tombstones(32);
        c
    };
    let mut sides = [
        Side::new(Connection::initiator(config.clone(), now)),
        Side::new(Connection::acceptor(config, now)),
    ];
    for op in input.ops.into_iter().take(200) {
        let (a, b) = sides.split_at_mut(1);
        let (x, y) = (&mut a[0], &mut b[0]);
        let pick = |s: bool| -> usize { usize::from(s) };
        match op {
            Op::Advance(ms) => {
                now += Duration::from_millis(u64::from(ms % 2000));
                for s in [&mut *x, &mut *y] {
                    s.conn.handle_timeout(now);
                    if let Some(t) = s.conn.poll_timeout() {
                        assert!(t > now, "timer due at {t:?} after handle_timeout({now:?})");
                    }
                    s.collect();
                }
            }
            Op::Call {
                side,
                deadline_ms,
                arg3,
                checksum,
            } => {
                let s = if pick(side) == 0 { &mut *x } else { &mut *y };
                let body = vec![0x5a; usize::from(arg3) * 4];
                if let Ok(id) =
                    s.conn
                        .send_request(now, head(now, deadline_ms, checksum), [b"m", b"", &body])
                {
                    assert!(
                        !s.calls.contains_key(&id) || s.calls[&id],
                        "id {id} reused while in flight"
                    );
                    s.calls.insert(id, false);
                }
                s.collect();
            }
            Op::Respond {
                side,
                pick: p,
                arg3,
                error,
            } => {
                let s = if pick(side) == 0 { &mut *x } else { &mut *y };
                if !s.inbound.is_empty() {
                    let id = s.inbound.remove(usize::from(p) % s.inbound.len());
                    let body = vec![0xa5; usize::from(arg3) * 4];
                    let _ = if error {
                        s.conn.send_error(id, ErrorCode::BUSY, "busy")
                    } else {
                        let h = TransportHeaders::strict([("as", "raw")]).unwrap();
                        s.conn
                            .send_response(id, ResponseCode::OK, h, [b"", b"", &body])
                    };
                }
                s.collect();
            }
            Op::Cancel { side, pick: p } => {
                let s = if pick(side) == 0 { &mut *x } else { &mut *y };
                let open: Vec<u32> = s
                    .calls
                    .iter()
                    .filter(|(_, d)| !**d)
                    .map(|(i, _)| *i)
                    .collect();
                if !open.is_empty() {
                    let id = open[usize::from(p) % open.len()];
                    s.conn.cancel_call(now, id, "fuzz");
                    // The caller gave up: that is the call's outcome.
                    s.calls.insert(id, true);
                    s.partial.remove(&id);
                }
                s.collect();
            }
            Op::Deliver { side, frames } => {
                if pick(side) == 0 {
                    deliver(x, y, now, usize::from(frames));
                } else {
                    deliver(y, x, now, usize::from(frames));
                }
            }
            Op::DropPending { side } => {
                // Lost bytes end a connection in real life: model a reset.
                let (s, o) = if pick(side) == 0 {
                    (&mut *x, &mut *y)
                } else {
                    (&mut *y, &mut *x)
                };
                if !s.pending.is_empty() {
                    s.pending.clear();
                    s.conn.transport_closed("reset");
                    o.conn.transport_closed("reset");
                    s.collect();
                    o.collect();
                }
            }
            Op::Corrupt { side, at, byte } => {
                let s = if pick(side) == 0 { &mut *x } else { &mut *y };
                if !s.pending.is_empty() {
                    let i = usize::from(at) % s.pending.len();
                    s.pending[i] ^= byte;
                }
            }
            Op::Inject { side, bytes } => {
                let s = if pick(side) == 0 { &mut *x } else { &mut *y };
                s.pending.extend_from_slice(&bytes);
            }
            Op::Ping { side } => {
                let s = if pick(side) == 0 { &mut *x } else { &mut *y };
                let _ = s.conn.ping();
                s.collect();
            }
            Op::Drain { side, ms } => {
                let s = if pick(side) == 0 { &mut *x } else { &mut *y };
                s.conn
                    .drain(now, now + Duration::from_millis(u64::from(ms)));
                s.collect();
            }
            Op::Close { side } => {
                let s = if pick(side) == 0 { &mut *x } else { &mut *y };
                s.conn.close_now();
                s.collect();
            }
        }
    }
    // Close both: every call must have exactly one outcome then.
    for s in sides.iter_mut() {
        s.conn.close_now();
        s.collect();
        assert!(s.closed);
        assert_eq!(s.conn.table_sizes(), [0; 5]);
        for (id, done) in &s.calls {
            assert!(*done, "call {id} got no outcome");
        }
    }
});
