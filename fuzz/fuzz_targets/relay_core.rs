//! Arbitrary frames and events into the relay's engine (`RelayCore`): three
//! connections (callers and destinations at once), call reqs, continues,
//! responses, cancels and raw bytes with ids from a small range (so they
//! collide), connects that succeed or fail, time passing, sockets written
//! or not, connections closed.
//!
//! Invariants: nothing panics; every frame the relay queues has a header
//! whose size is its length; a forwarded frame's bytes after the rewritten
//! head are the bytes that arrived ([RELAY-3]); once every connection is
//! closed and time has passed, no call, mapping, local call or queued byte
//! is left ([RELAY-7]).
#![no_main]

use std::collections::VecDeque;
use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tchan::frame::{
    ArgChunks, CallContinue, CallReq, CallRes, Cancel, ChecksumField, Flags, Frame, FrameHeader,
    MAX_FRAME_SIZE, ResponseCode, Tracing, TransportHeaders,
};
use tchan::relay::{Action, ConnId, Out, RelayConfig, RelayCore};

#[derive(Arbitrary, Debug)]
enum Op {
    Req { conn: u8, id: u8, flags: u8, service: u8, ttl: u16, args: Vec<Vec<u8>> },
    Cont { conn: u8, id: u8, flags: u8, args: Vec<Vec<u8>> },
    Res { conn: u8, id: u8, flags: u8, args: Vec<Vec<u8>> },
    Cancel { conn: u8, id: u8 },
    Raw { conn: u8, bytes: Vec<u8> },
    Advance { ms: u16 },
    Dialled { ok: bool },
    Write { conn: u8 },
    Close { conn: u8 },
}

const SERVICES: [&str; 4] = ["a", "b", "hyperbahn", "nobody"];

fn chunks(args: &[Vec<u8>]) -> ArgChunks {
    ArgChunks::from_chunks(args.iter().take(4).map(|a| Bytes::copy_from_slice(&a[..a.len().min(300)])))
}

fn drain(core: &mut RelayCore, conn: ConnId, arrived: &[Bytes]) {
    let mut q = VecDeque::new();
    core.swap_output(conn, &mut q);
    let mut n = 0;
    for o in &q {
        n += o.len();
        let [head, _] = o.parts();
        let h = FrameHeader::parse(head, MAX_FRAME_SIZE).ok().flatten();
        assert_eq!(h.map(|h| usize::from(h.size)), Some(o.len()));
        if let Out::Forward(f) = o
            && !f.rest().is_empty()
        {
            let p = f.rest().as_ptr();
            assert!(arrived.iter().any(|a| a.as_ptr_range().contains(&p)), "forwarded bytes were copied");
        }
    }
    core.on_written(conn, n);
}

fuzz_target!(|ops: Vec<Op>| {
    let mut config = RelayConfig::default();
    config.max_queued_bytes = 4096;
    config.max_held_bytes = 2048;
    config.max_tombstones = 16;
    let mut core = RelayCore::new(config);
    let mut now = std::time::Instant::now();
    core.set_routes([
        ("a".to_owned(), vec!["10.0.0.1:1".to_owned(), "10.0.0.2:1".to_owned()]),
        ("b".to_owned(), vec!["10.0.0.3:1".to_owned()]),
    ]);
    let mut conns: Vec<Option<ConnId>> = vec![
        Some(core.add_connection("10.0.0.1:1")),
        Some(core.add_connection("10.0.0.9:9")),
        Some(core.add_connection("0.0.0.0:0")),
    ];
    let mut dials: VecDeque<String> = VecDeque::new();
    let mut arrived: Vec<Bytes> = Vec::new();
    for op in ops.into_iter().take(200) {
        let frame = match op {
            Op::Req { conn, id, flags, service, ttl, args } => Some((conn, Frame::CallReq(CallReq {
                id: u32::from(id % 8),
                flags: Flags(flags & 0x03),
                ttl: u32::from(ttl),
                tracing: Tracing::default(),
                service: Bytes::from_static(SERVICES[usize::from(service) % 4].as_bytes()),
                headers: TransportHeaders::new(),
                checksum: ChecksumField::NONE,
                args: chunks(&args),
            }))),
            Op::Cont { conn, id, flags, args } => Some((conn, Frame::CallReqContinue(CallContinue {
                id: u32::from(id % 8),
                flags: Flags(flags & 0x03),
                checksum: ChecksumField::NONE,
                args: chunks(&args),
            }))),
            Op::Res { conn, id, flags, args } => Some((conn, Frame::CallRes(CallRes {
                id: u32::from(id % 8),
                flags: Flags(flags & 0x03),
                code: ResponseCode::OK,
                tracing: Tracing::default(),
                headers: TransportHeaders::new(),
                checksum: ChecksumField::NONE,
                args: chunks(&args),
            }))),
            Op::Cancel { conn, id } => Some((conn, Frame::Cancel(Cancel {
                id: u32::from(id % 8),
                ttl: 0,
                tracing: Tracing::default(),
                why: Bytes::new(),
                trailing: Bytes::new(),
            }))),
            Op::Raw { conn, bytes } => {
                let b = Bytes::from(bytes);
                if let Ok(Some(h)) = FrameHeader::parse(&b, MAX_FRAME_SIZE)
                    && b.len() >= usize::from(h.size)
                    && let Some(&Some(c)) = conns.get(usize::from(conn) % 3)
                {
                    let p = b.slice(16..usize::from(h.size));
                    arrived.push(b.clone());
                    core.on_frame(c, h, p, now);
                }
                None
            }
            Op::Advance { ms } => {
                now += Duration::from_millis(u64::from(ms));
                core.handle_timeout(now);
                None
            }
            Op::Dialled { ok } => {
                if let Some(peer) = dials.pop_front() {
                    if ok {
                        let c = core.add_connection(&peer);
                        conns.push(Some(c));
                        core.on_connected(&peer, c, now);
                    } else {
                        core.on_connect_failed(&peer, "refused", now);
                    }
                }
                None
            }
            Op::Write { conn } => {
                if let Some(&Some(c)) = conns.get(usize::from(conn) % conns.len().max(1)) {
                    drain(&mut core, c, &arrived);
                }
                None
            }
            Op::Close { conn } => {
                let i = usize::from(conn) % conns.len().max(1);
                if let Some(c) = conns.get_mut(i).and_then(Option::take) {
                    core.on_closed(c, now);
                }
                None
            }
        };
        if let Some((conn, f)) = frame
            && let Ok(b) = f.to_bytes()
            && let Some(&Some(c)) = conns.get(usize::from(conn) % conns.len().max(1))
        {
            let h = FrameHeader::parse(&b, MAX_FRAME_SIZE).unwrap().unwrap();
            arrived.push(b.clone());
            core.on_frame(c, h, b.slice(16..), now);
        }
        while let Some(a) = core.poll_action() {
            match a {
                Action::Dial(p) => dials.push_back(p),
                Action::Close(c) => {
                    if let Some(slot) = conns.iter_mut().find(|s| **s == Some(c)) {
                        *slot = None;
                    }
                    core.on_closed(c, now);
                }
            }
        }
    }
    // Everything closed, connects failed, time passed: nothing is left.
    for c in conns.iter_mut().filter_map(Option::take) {
        core.on_closed(c, now);
    }
    while let Some(peer) = dials.pop_front() {
        core.on_connect_failed(&peer, "refused", now);
        while let Some(a) = core.poll_action() {
            if let Action::Dial(p) = a {
                dials.push_back(p);
            }
        }
    }
    core.handle_timeout(now + Duration::from_secs(600));
    let s = core.sizes();
    assert_eq!((s.connections, s.calls, s.mappings, s.local_calls, s.queued_bytes), (0, 0, 0, 0, 0), "{s:?}");
});
