//! The sans-IO core alone, for instruction counts: two `proto::Connection`s
//! back to back on a fixed clock, N 64-byte echo round trips through the
//! same calls the transport makes (send a whole request, take the frame,
//! answer it, take the response), with no sockets, tasks or allocator
//! traffic of the transport. `valgrind --tool=callgrind
//! target/release/examples/core_loop 100000` then divide by N; the
//! difference of two runs (N and N0) cancels the setup.

// Measures wall time: the library's clock rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tchan::codec::FrameCodec;
use tchan::frame::{ChecksumType, ResponseCode, Tracing, TransportHeaders};
use tchan::proto::{Connection, ConnectionConfig, RequestHead, Transmit, Whole};

fn deliver(
    from: &mut Connection,
    to: &mut Connection,
    now: Instant,
    codec: &mut FrameCodec,
) -> Vec<Whole> {
    let mut out = Transmit::new();
    from.transmit_into(&mut out);
    let mut buf = BytesMut::from(&out.take_bytes()[..]);
    let mut wholes = Vec::new();
    while let Some((h, p)) = codec.split_frame(&mut buf).expect("frame") {
        if let Some(w) = to.handle_frame_bytes(now, h, p) {
            wholes.push(w);
        }
    }
    while to.poll_event().is_some() {}
    wholes
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let checksum = match std::env::args().nth(2).as_deref() {
        Some("none") => ChecksumType::NONE,
        _ => ChecksumType::CRC32C,
    };
    let now = Instant::now();
    let mut codec = FrameCodec::new();
    let mut client = Connection::initiator(ConnectionConfig::default(), now);
    let mut server = Connection::acceptor(ConnectionConfig::default(), now);
    deliver(&mut client, &mut server, now, &mut codec);
    deliver(&mut server, &mut client, now, &mut codec);
    let headers = TransportHeaders::strict([("cn", "caller"), ("as", "raw")]).expect("headers");
    let method = Bytes::from_static(b"echo");
    let payload = Bytes::from(vec![0x5a; 64]);
    let empty = Bytes::new();
    let mut client_out = Transmit::new();
    let mut server_out = Transmit::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut done = 0;
    for i in 0..n {
        let head = RequestHead {
            service: Bytes::from_static(b"echo-service"),
            headers: headers.clone(),
            tracing: Tracing {
                span_id: i as u64,
                parent_id: 0,
                trace_id: i as u64,
                flags: 0,
            },
            deadline: now + Duration::from_secs(1),
            checksum,
        };
        client
            .send_request_shared(now, head, [&method, &empty, &payload])
            .expect("send");
        client.transmit_into(&mut client_out);
        buf.extend_from_slice(client_out.as_contiguous().expect("contiguous"));
        client_out.clear();
        while let Some((h, p)) = codec.split_frame(&mut buf).expect("frame") {
            if let Some(Whole::Request(r)) = server.handle_frame_bytes(now, h, p) {
                let [_, arg2, arg3] = r.args;
                server
                    .send_response_shared(
                        r.id,
                        ResponseCode::OK,
                        r.scheme.unwrap_or_default(),
                        [&empty, &arg2, &arg3],
                    )
                    .expect("respond");
            }
        }
        server.transmit_into(&mut server_out);
        buf.extend_from_slice(server_out.as_contiguous().expect("contiguous"));
        server_out.clear();
        while let Some((h, p)) = codec.split_frame(&mut buf).expect("frame") {
            if let Some(Whole::Response(r)) = client.handle_frame_bytes(now, h, p) {
                done += r.arg3.len() / 64;
            }
        }
    }
    assert_eq!(done, n);
    println!("{n} round trips through the core");
}
