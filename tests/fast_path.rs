//! The core's fast path for whole call messages
//! (`Connection::handle_frame_bytes`) against its general path
//! (`Connection::handle_frame` on the decoded frame): for thousands of call
//! req and call res frames, well-formed and not (bad flags, header rule
//! violations, missing `as`/`cn`, wrong checksums, ttl 0, unknown checksum
//! types, fragments, over-long arg1, reused ids, unknown response ids, bytes
//! that do not parse), two connections in the same state are fed the same
//! bytes, one through each path. They must answer with the same bytes, end
//! in the same state, and report the same call: a `Whole` from the fast path
//! is the general path's complete `Request`/`Response` event.

// Measures wall time: the library's clock rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tchan::codec::FrameCodec;
use tchan::frame::{
    CallHead, ChecksumType, Frame, MessageWriter, ReqHead, ResHead, ResponseCode, Tracing,
    TransportHeaders,
};
use tchan::proto::{Connection, ConnectionConfig, Event, RequestHead, Whole};

/// A tiny deterministic generator (no dependency, reproducible cases).
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

fn handshake(now: Instant) -> (Connection, Connection) {
    let mut client = Connection::initiator(ConnectionConfig::default(), now);
    let mut server = Connection::acceptor(ConnectionConfig::default(), now);
    let mut codec = FrameCodec::new();
    for (from, to) in [(0, 1), (1, 0)] {
        let (a, b) = if from == 0 {
            (&mut client, &mut server)
        } else {
            (&mut server, &mut client)
        };
        let mut buf = a.poll_transmit().expect("init frame");
        while let Some((h, p)) = codec.split_frame(&mut buf).expect("frame") {
            b.handle_frame_bytes(now, h, p);
        }
        let _ = to;
    }
    while client.poll_event().is_some() {}
    while server.poll_event().is_some() {}
    (client, server)
}

fn headers(g: &mut Gen) -> TransportHeaders {
    let mut pairs: Vec<(String, String)> = Vec::new();
    if !g.chance(8) {
        pairs.push(("cn".into(), "caller".into()));
    }
    if !g.chance(8) {
        pairs.push((
            "as".into(),
            ["raw", "json", "thrift", "other"][g.below(4) as usize].into(),
        ));
    }
    for i in 0..g.below(4) {
        pairs.push((format!("k{i}"), "v".repeat(g.below(5) as usize)));
    }
    match g.below(12) {
        0 => pairs.push(("cn".into(), "dup".into())),
        1 => pairs.push((String::new(), "empty key".into())),
        2 => pairs.push(("k".repeat(17), "long key".into())),
        3 => {
            for i in 0..9 {
                pairs.push((format!("m{i}"), String::new()));
            }
        }
        _ => {}
    }
    TransportHeaders::from_pairs(pairs).expect("fits")
}

fn checksum(g: &mut Gen) -> ChecksumType {
    [
        ChecksumType::NONE,
        ChecksumType::CRC32,
        ChecksumType::FARMHASH32,
        ChecksumType::CRC32C,
    ][g.below(4) as usize]
}

/// One call frame's bytes (the first frame of the message, possibly
/// corrupted), as a peer might send it.
fn frame_bytes(g: &mut Gen, request: bool, id: u32) -> Vec<u8> {
    let head = if request {
        CallHead::Req(ReqHead {
            ttl: 1 + g.below(5000) as u32,
            tracing: Tracing {
                span_id: g.next(),
                parent_id: g.next(),
                trace_id: g.next(),
                flags: g.below(2) as u8,
            },
            service: Bytes::from_static(b"svc"),
            headers: TransportHeaders::strict([("cn", "c"), ("as", "raw")]).expect("ok"),
        })
    } else {
        CallHead::Res(ResHead {
            code: ResponseCode(g.below(3) as u8),
            tracing: Tracing::default(),
            headers: TransportHeaders::strict([("as", "raw")]).expect("ok"),
        })
    };
    let arg1 = if request {
        vec![
            b'm';
            if g.chance(30) {
                17000
            } else {
                g.below(20) as usize
            }
        ]
    } else {
        Vec::new()
    };
    let arg2 = vec![2u8; g.below(40) as usize];
    let arg3 = vec![
        3u8;
        if g.chance(10) {
            70_000
        } else {
            g.below(300) as usize
        }
    ];
    let mut out = BytesMut::new();
    let ty = checksum(g);
    // The writer only writes what it would accept; write headers by hand.
    let mut w = MessageWriter::new(id, head, ty, 65535).expect("writer");
    for a in [&arg1[..], &arg2, &arg3] {
        let _ = w.write(&mut out, a);
        let _ = w.end_arg(&mut out);
    }
    // Only the first frame: the rest of a fragmented message is not sent.
    let size = usize::from(u16::from_be_bytes([out[0], out[1]]));
    let mut f = out[..size].to_vec();
    // Swap in random transport headers (the writer refuses bad ones).
    let h = headers(g);
    let start = if request {
        16 + 1 + 4 + 25 + 1 + 3
    } else {
        16 + 1 + 1 + 25
    };
    let old_len = 1 + if request {
        2 + 1 + 1 + 2 + 1 + 1 + 1 + 3
    } else {
        2 + 1 + 1 + 3
    };
    let mut enc = BytesMut::new();
    h.encode(&mut enc);
    if f.len() - old_len + enc.len() <= 65535 {
        f.splice(start..start + old_len, enc.iter().copied());
        let len = f.len() as u16;
        f[0..2].copy_from_slice(&len.to_be_bytes());
    } else {
        enc.clear();
        enc.extend_from_slice(&f[start..start + old_len]);
    }
    if request && g.chance(20) {
        f[17..21].copy_from_slice(&0u32.to_be_bytes()); // ttl 0
    }
    match g.below(14) {
        0 => f[16] |= 0x04, // unknown flag bit
        1 => {
            // flip a byte in the args (checksum mismatch, or a length)
            let i = f.len() - 1 - g.below(f.len() as u64 / 3) as usize;
            f[i] ^= 0x5a;
        }
        2 => f.push(7), // a stray byte after the args
        3 => {
            // truncate: the size field says more than is there is caught by
            // the codec; here the frame is shorter with a matching size
            let cut = 1 + g.below(f.len() as u64 - 17) as usize;
            f.truncate(f.len() - cut.min(f.len() - 17));
            let len = f.len() as u16;
            f[0..2].copy_from_slice(&len.to_be_bytes());
        }
        4 => {
            // an unknown checksum type byte
            let csum_at = start + enc.len();
            if csum_at < f.len() {
                f[csum_at] = 9;
            }
        }
        _ => {}
    }
    f
}

/// Feeds `bytes` to `conn` through one path; returns what it sent, its
/// events (a `Whole` turned into the event it stands for) and its tables.
fn feed(
    conn: &mut Connection,
    now: Instant,
    bytes: &[u8],
    fast: bool,
) -> (Vec<u8>, String, Vec<usize>) {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::from(bytes);
    let mut seen = String::new();
    match codec.split_frame(&mut buf) {
        Ok(Some((h, p))) => {
            if fast {
                match conn.handle_frame_bytes(now, h, p) {
                    Some(Whole::Request(r)) => {
                        seen += &format!(
                            "request {} {:?} {:?} {:?} {:?} {:?} {:?};",
                            r.id, r.service, r.headers, r.tracing, r.deadline, r.checksum, r.args
                        );
                    }
                    Some(Whole::Response(r)) => {
                        seen += &format!(
                            "response {} {:?} {:?} {:?} {:?} {:?};",
                            r.id, r.code, r.headers, r.tracing, r.arg2, r.arg3
                        );
                    }
                    None => {}
                }
            } else {
                match Frame::decode_payload(h, p) {
                    Ok(f) => conn.handle_frame(now, f),
                    Err(e) => conn.handle_decode_error(&e),
                }
            }
        }
        Ok(None) => {}
        Err(e) => conn.handle_decode_error(&e),
    }
    while let Some(ev) = conn.poll_event() {
        seen += &match ev {
            Event::Request(r) if r.chunks.whole_args().is_some() => {
                let args = r.chunks.whole_args().expect("whole");
                format!(
                    "request {} {:?} {:?} {:?} {:?} {:?} {:?};",
                    r.id, r.service, r.headers, r.tracing, r.deadline, r.checksum, args
                )
            }
            Event::Response(r) if r.chunks.whole_args().is_some() => {
                let [_, a2, a3] = r.chunks.whole_args().expect("whole");
                format!(
                    "response {} {:?} {:?} {:?} {:?} {:?};",
                    r.id, r.code, r.headers, r.tracing, a2, a3
                )
            }
            other => format!("{other:?};"),
        };
    }
    let sent = conn.poll_transmit().map(|b| b.to_vec()).unwrap_or_default();
    (sent, seen, conn.table_sizes().to_vec())
}

#[test]
fn the_fast_path_does_what_the_general_path_does() {
    // [CONN-20] [CONN-12] [CONN-17] [HDR-11] [TTL-4] [CSUM-16] both paths
    let mut g = Gen(0x5eed_1234_abcd_0001);
    let t0 = Instant::now();
    let mut fast_taken = 0;
    for case in 0..3000 {
        let (mut ca, mut sa) = handshake(t0);
        let (mut cb, mut sb) = handshake(t0);
        // Calls of ours the peer may answer (ids 2..6), on both copies.
        let head = || RequestHead {
            service: Bytes::from_static(b"svc"),
            headers: TransportHeaders::strict([("cn", "me"), ("as", "raw")]).expect("ok"),
            tracing: Tracing::default(),
            deadline: t0 + Duration::from_secs(10),
            checksum: ChecksumType::CRC32C,
        };
        for c in [&mut ca, &mut cb] {
            for _ in 0..4 {
                c.send_request(t0, head(), [b"m", b"", b""]).expect("send");
            }
            let _ = c.poll_transmit();
        }
        // Some inbound calls already in flight (ids 100..102) on both.
        for s in [&mut sa, &mut sb] {
            for id in 100..102 {
                let f = frame_bytes(&mut Gen(id as u64), true, id);
                let _ = feed(s, t0, &f, false);
            }
        }
        let now = t0 + Duration::from_millis(g.below(50));
        let request = g.chance(2);
        let (a, b) = if request {
            (&mut sa, &mut sb)
        } else {
            (&mut ca, &mut cb)
        };
        let id = match g.below(4) {
            0 => 100,                // in flight already (requests) / unknown (responses)
            1 => g.below(10) as u32, // maybe ours
            _ => 2 + g.below(4) as u32,
        };
        let bytes = frame_bytes(&mut g, request, id);
        let general = feed(a, now, &bytes, false);
        let fast = feed(b, now, &bytes, true);
        assert_eq!(
            general,
            fast,
            "case {case}: {:02x?}",
            &bytes[..bytes.len().min(80)]
        );
        if general.1.starts_with("request") || general.1.starts_with("response") {
            fast_taken += 1;
        }
    }
    assert!(fast_taken > 300, "only {fast_taken} cases were whole calls");
}
