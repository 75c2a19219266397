//! Tokio integration tests of the transport: client and server over loopback
//! TCP and in-memory duplex streams.

// Measures wall time: the library's clock rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use bytes::Bytes;
use tchan::frame::{ChecksumType, ErrorCode};
use tchan::{CallOptions, CallRequest, Channel, Request, Response};

async fn echo(req: Request) -> tchan::server::HandlerResult {
    let arg3 = req.arg3.into_bytes().await?;
    Ok(Response::ok(req.arg2, arg3))
}

async fn server() -> (Channel, std::net::SocketAddr) {
    let ch = Channel::new("server");
    ch.register("svc", "echo", echo);
    let addr = ch.listen("127.0.0.1:0").await.unwrap();
    (ch, addr)
}

#[tokio::test]
async fn echo_over_tcp() {
    let (_srv, addr) = server().await;
    let client = Channel::new("client").connect(addr).await.unwrap();
    assert_eq!(client.peer_info().unwrap().host_port, addr.to_string());
    let resp = client
        .call(CallRequest::new("svc", "echo").arg2("head").arg3("body"))
        .await
        .unwrap();
    assert!(resp.is_ok());
    assert_eq!(resp.arg2, Bytes::from_static(b"head"));
    assert_eq!(resp.arg3, Bytes::from_static(b"body"));
    assert_eq!(resp.headers.get(b"as"), Some(&b"raw"[..]));
}

#[tokio::test]
async fn unknown_service_and_method_are_bad_requests() {
    let (_srv, addr) = server().await;
    let client = Channel::new("client").connect(addr).await.unwrap();
    let e = client
        .call(CallRequest::new("nope", "echo"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BAD_REQUEST);
    let e = client
        .call(CallRequest::new("svc", "nope"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BAD_REQUEST);
}

#[tokio::test]
async fn many_concurrent_calls() {
    let (_srv, addr) = server().await;
    let client = Channel::new("client").connect(addr).await.unwrap();
    let mut futs = Vec::new();
    for i in 0..2000u32 {
        let c = client.clone();
        futs.push(async move {
            let r = c
                .call(
                    CallRequest::new("svc", "echo")
                        .arg3(i.to_string().into_bytes())
                        .timeout(Duration::from_secs(10)),
                )
                .await
                .unwrap();
            assert_eq!(r.arg3, i.to_string().into_bytes());
        });
    }
    futures::future::join_all(futs).await;
    assert!(
        client.table_sizes().iter().take(3).all(|&n| n == 0),
        "{:?}",
        client.table_sizes()
    );
}

// ===== helpers =====

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::StreamExt;
use tchan::{Body, server::HandlerResult};
use tchan::{ChannelConfig, Client};

/// Sets a flag when dropped: shows that a handler's future was dropped.
struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Counts drops: shows how many handler futures were stopped.
struct DropCount(Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A client and a server channel joined by an in-memory duplex stream, plus
/// the server's handle for calls back to the client.
async fn duplex_pair(server: &Channel, client: &Channel) -> (Client, Client) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let back = server.accept_io(b);
    let c = client.connect_io(a, None).await.unwrap();
    (c, back)
}

fn empty_tables(c: &Client) -> bool {
    let t = c.table_sizes();
    // calls, calls, deadlines, (tombstones may remain), pings, waiters, inbound
    t[0] == 0 && t[1] == 0 && t[2] == 0 && t[4] == 0 && t[5] == 0 && t[6] == 0
}

// ===== many calls, any order =====

#[tokio::test]
async fn ten_thousand_concurrent_calls_on_one_connection() {
    // [CONN-13] many calls in flight on one connection
    let (_srv, addr) = server().await;
    let client = Channel::new("client").connect(addr).await.unwrap();
    let futs = (0..10_000u32).map(|i| {
        let c = client.clone();
        async move {
            let r = c
                .call(
                    CallRequest::new("svc", "echo")
                        .arg3(i.to_be_bytes().to_vec())
                        .timeout(Duration::from_secs(60)),
                )
                .await
                .unwrap();
            assert_eq!(&r.arg3[..], &i.to_be_bytes());
        }
    });
    futures::future::join_all(futs).await;
    assert!(empty_tables(&client), "{:?}", client.table_sizes());
}

#[tokio::test]
async fn a_server_that_answers_in_reverse_order() {
    // [CONN-13] [ID-1] responses come back in any order and reach the right caller
    const N: usize = 64;
    let srv = Channel::new("server");
    type Gates = Vec<(usize, tokio::sync::oneshot::Sender<()>)>;
    let gates: Arc<std::sync::Mutex<Gates>> = Arc::default();
    let all_in = Arc::new(tokio::sync::Notify::new());
    {
        let gates = gates.clone();
        let all_in = all_in.clone();
        srv.register("svc", "wait", move |req: Request| {
            let gates = gates.clone();
            let all_in = all_in.clone();
            async move {
                let arg3 = req.arg3.into_bytes().await?;
                let i: usize = std::str::from_utf8(&arg3).unwrap().parse().unwrap();
                let (tx, rx) = tokio::sync::oneshot::channel();
                let n = {
                    let mut g = gates.lock().unwrap();
                    g.push((i, tx));
                    g.len()
                };
                if n == N {
                    all_in.notify_one();
                }
                let _ = rx.await;
                Ok(Response::ok(Bytes::new(), arg3))
            }
        });
    }
    let addr = srv.listen("127.0.0.1:0").await.unwrap();
    let client = Channel::new("client").connect(addr).await.unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let calls = (0..N).map(|i| {
        let c = client.clone();
        let order = order.clone();
        async move {
            let r = c
                .call(
                    CallRequest::new("svc", "wait")
                        .arg3(i.to_string().into_bytes())
                        .timeout(Duration::from_secs(30)),
                )
                .await
                .unwrap();
            assert_eq!(r.arg3, i.to_string().into_bytes());
            order.lock().unwrap().push(i);
        }
    });
    let release = async {
        all_in.notified().await;
        let mut g = std::mem::take(&mut *gates.lock().unwrap());
        g.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
        // One at a time: the next answer is released once the caller of the
        // previous one has it, so the order seen is the order released.
        for (k, (_, tx)) in g.into_iter().enumerate() {
            tx.send(()).unwrap();
            while order.lock().unwrap().len() <= k {
                tokio::task::yield_now().await;
            }
        }
    };
    tokio::join!(futures::future::join_all(calls), release);
    let order = order.lock().unwrap().clone();
    assert_eq!(order, (0..N).rev().collect::<Vec<_>>());
}

// ===== big args, every checksum =====

#[tokio::test]
async fn ten_mib_args_both_ways_with_every_checksum_type() {
    // [CSUM-12] [CSUM-14] [FRAG-15] the response uses the request's checksum type
    let srv = Channel::new("server");
    srv.register("svc", "big", |req: Request| async move {
        let arg3 = req.arg3.into_bytes().await?;
        // Answer with a different 10 MiB body so both directions carry new data.
        let reply: Vec<u8> = arg3.iter().map(|b| b.wrapping_add(1)).collect();
        Ok(Response::ok(req.arg2, reply))
    });
    let addr = srv.listen("127.0.0.1:0").await.unwrap();
    let client = Channel::new("client").connect(addr).await.unwrap();
    let big: Bytes = (0..10 * 1024 * 1024)
        .map(|i| (i * 7 % 253) as u8)
        .collect::<Vec<u8>>()
        .into();
    for ty in [
        ChecksumType::NONE,
        ChecksumType::CRC32,
        ChecksumType::FARMHASH32,
        ChecksumType::CRC32C,
    ] {
        let resp = client
            .call(
                CallRequest::new("svc", "big")
                    .arg2(big.slice(..70_000))
                    .arg3(big.clone())
                    .checksum(ty)
                    .timeout(Duration::from_secs(60)),
            )
            .await
            .unwrap();
        assert_eq!(resp.arg2, big.slice(..70_000), "{ty}");
        assert_eq!(resp.arg3.len(), big.len());
        assert!(
            resp.arg3
                .iter()
                .zip(big.iter())
                .all(|(a, b)| *a == b.wrapping_add(1))
        );
    }
}

// ===== streaming =====

#[tokio::test]
async fn streamed_request_and_streamed_response() {
    // [FRAG-14] a handler reads arg3 chunk by chunk and writes its reply the same way
    let srv = Channel::new("server");
    srv.register_streaming("svc", "count", |req: Request| async move {
        let Body::Stream(mut s) = req.arg3 else {
            panic!("streaming handler got a whole body")
        };
        let (mut chunks, mut bytes) = (0usize, 0usize);
        while let Some(c) = s.next().await {
            chunks += 1;
            bytes += c?.len();
        }
        // Reply with 64 chunks of 64 KiB, streamed.
        let out = futures::stream::iter((0..64u8).map(|i| Ok(Bytes::from(vec![i; 64 * 1024]))));
        Ok(Response::ok(
            format!("{chunks} {bytes}"),
            Body::from_stream(out),
        ))
    });
    let addr = srv.listen("127.0.0.1:0").await.unwrap();
    let client = Channel::new("client").connect(addr).await.unwrap();
    let parts = futures::stream::iter((0..50).map(|_| Ok(Bytes::from(vec![7u8; 100 * 1024]))));
    let resp = client
        .call_streaming(
            CallRequest::new("svc", "count")
                .arg2("x")
                .arg3(Body::from_stream(parts))
                .timeout(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    let summary = String::from_utf8(resp.arg2.to_vec()).unwrap();
    let (chunks, bytes) = summary.split_once(' ').unwrap();
    assert_eq!(bytes, (50 * 100 * 1024).to_string());
    assert!(
        chunks.parse::<usize>().unwrap() > 1,
        "arrived in {chunks} chunk(s)"
    );
    let Body::Stream(mut s) = resp.arg3 else {
        panic!("expected a stream")
    };
    let (mut n, mut total) = (0, 0);
    while let Some(c) = s.next().await {
        let c = c.unwrap();
        n += 1;
        total += c.len();
    }
    assert_eq!(total, 64 * 64 * 1024);
    assert!(n > 1);
}

// ===== deadlines, cancellation, limits (paused clock, in-memory streams) =====

/// A handler that never answers in time.
async fn slow(_req: Request) -> HandlerResult {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(Response::ok(Bytes::new(), Bytes::new()))
}

#[tokio::test(start_paused = true)]
async fn timeouts_reach_both_sides_and_the_connection_stays_usable() {
    // [TTL-1] [TTL-5] [TTL-6] [TTL-8] caller and server both time out; no table keeps the call
    let srv = Channel::new("server");
    let dropped = Arc::new(AtomicBool::new(false));
    {
        let dropped = dropped.clone();
        srv.register("svc", "slow", move |_req: Request| {
            let flag = DropFlag(dropped.clone());
            async move {
                let _flag = flag;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(Response::ok(Bytes::new(), Bytes::new()))
            }
        });
    }
    srv.register("svc", "echo", echo);
    let (client, back) = duplex_pair(&srv, &Channel::new("client")).await;
    let e = client
        .call(CallRequest::new("svc", "slow").timeout(Duration::from_millis(100)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::TIMEOUT);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(dropped.load(Ordering::SeqCst), "the handler was stopped");
    let r = client
        .call(CallRequest::new("svc", "echo").arg3("after"))
        .await
        .unwrap();
    assert_eq!(&r.arg3[..], b"after");
    assert!(empty_tables(&client), "{:?}", client.table_sizes());
    assert!(empty_tables(&back), "{:?}", back.table_sizes());
}

#[tokio::test(start_paused = true)]
async fn cancel_both_ways() {
    // [CANCEL-1] [CANCEL-3] a caller that gives up sends cancel; the handler is stopped
    let mut config = ChannelConfig::default();
    config.connection_mut().set_send_cancel(true);
    let srv = Channel::with_config("server", config.clone());
    let cli = Channel::with_config("client", config);
    let dropped = Arc::new(AtomicUsize::new(0));
    for ch in [&srv, &cli] {
        let dropped = dropped.clone();
        ch.register("svc", "slow", move |_req: Request| {
            let guard = DropCount(dropped.clone());
            async move {
                let _guard = guard;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(Response::ok(Bytes::new(), Bytes::new()))
            }
        });
    }
    let (client, back) = duplex_pair(&srv, &cli).await;
    for (caller, expect) in [(&client, 1), (&back, 2)] {
        let r = tokio::time::timeout(
            Duration::from_millis(100),
            caller.call(CallRequest::new("svc", "slow").timeout(Duration::from_secs(10))),
        )
        .await;
        assert!(r.is_err(), "the call should still be running");
        // The cancel frame reaches the other side, which stops the handler.
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(dropped.load(Ordering::SeqCst), expect);
    }
    assert!(empty_tables(&client), "{:?}", client.table_sizes());
    assert!(empty_tables(&back), "{:?}", back.table_sizes());
}

#[tokio::test(start_paused = true)]
async fn over_the_inbound_call_limit_a_call_is_answered_busy() {
    // [ERR-7] busy beyond max calls in flight
    let mut config = ChannelConfig::default();
    config.connection_mut().set_max_inbound_calls(2);
    let srv = Channel::with_config("server", config);
    srv.register("svc", "slow", slow);
    let (client, _back) = duplex_pair(&srv, &Channel::new("client")).await;
    let slow_call = || {
        let c = client.clone();
        async move {
            c.call(CallRequest::new("svc", "slow").timeout(Duration::from_secs(1)))
                .await
        }
    };
    let (a, b, c) = tokio::join!(slow_call(), slow_call(), slow_call());
    let codes: Vec<ErrorCode> = [a, b, c]
        .into_iter()
        .map(|r| r.unwrap_err().code())
        .collect();
    assert_eq!(
        codes.iter().filter(|c| **c == ErrorCode::BUSY).count(),
        1,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == ErrorCode::TIMEOUT).count(),
        2,
        "{codes:?}"
    );
}

// ===== drain and disconnects =====

#[tokio::test(start_paused = true)]
async fn drain_finishes_calls_in_flight_and_declines_new_ones() {
    // [CONN-19] new calls declined, calls in flight finish, then the connection closes
    let srv = Channel::new("server");
    srv.register("svc", "nap", |_req: Request| async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(Response::ok(Bytes::new(), "done"))
    });
    srv.register("svc", "echo", echo);
    let (client, _back) = duplex_pair(&srv, &Channel::new("client")).await;
    let in_flight = {
        let c = client.clone();
        tokio::spawn(async move {
            c.call(CallRequest::new("svc", "nap").timeout(Duration::from_secs(5)))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let drain = {
        let srv = srv.clone();
        tokio::spawn(async move { srv.drain().await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let e = client
        .call(CallRequest::new("svc", "echo"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::DECLINED);
    let done = in_flight.await.unwrap().unwrap();
    assert_eq!(&done.arg3[..], b"done");
    drain.await.unwrap();
    client.closed().await;
    assert_eq!(srv.active_connections(), 0);
    assert!(client.is_closed());
}

#[tokio::test]
async fn a_disconnect_in_the_middle_of_a_fragmented_message_cleans_up_both_sides() {
    // [CONN-21] calls on a dead connection fail with network error, tables end empty
    let srv = Channel::new("server");
    let dropped = Arc::new(AtomicBool::new(false));
    {
        let dropped = dropped.clone();
        srv.register_streaming("svc", "sink", move |req: Request| {
            let flag = DropFlag(dropped.clone());
            async move {
                let _flag = flag;
                let _ = req.arg3.into_bytes().await;
                Ok(Response::ok(Bytes::new(), Bytes::new()))
            }
        });
    }
    let cli = Channel::new("client");
    let (client, back) = duplex_pair(&srv, &cli).await;
    // A request whose arg3 sends one 200 KiB chunk and then never ends.
    let first = futures::stream::iter([Ok(Bytes::from(vec![1u8; 200 * 1024]))]);
    let body = Body::from_stream(first.chain(futures::stream::pending()));
    let call = {
        let c = client.clone();
        tokio::spawn(async move {
            c.call(
                CallRequest::new("svc", "sink")
                    .arg3(body)
                    .timeout(Duration::from_secs(30)),
            )
            .await
        })
    };
    // Wait until the server holds the half-received request.
    for _ in 0..200 {
        if back.calls_in_flight().1 == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(back.calls_in_flight().1, 1);
    back.close();
    back.closed().await;
    client.closed().await;
    assert!(dropped.load(Ordering::SeqCst));
    call.abort();
    let _ = call.await;
    assert!(empty_tables(&back), "{:?}", back.table_sizes());
    assert!(empty_tables(&client), "{:?}", client.table_sizes());
    let e = client
        .call(CallRequest::new("svc", "sink"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NETWORK);
}

#[tokio::test]
async fn a_server_dying_mid_response_fails_the_call_once_with_network_error() {
    // [CONN-21]
    let srv = Channel::new("server");
    // The handler's body says when the driver has taken its first chunk
    // and asks for the next: the response is then under way.
    let started = Arc::new(tokio::sync::Notify::new());
    let signal = started.clone();
    srv.register("svc", "half", move |_req: Request| {
        let signal = signal.clone();
        async move {
            let first = futures::stream::iter([Ok(Bytes::from(vec![9u8; 300 * 1024]))]);
            let then = futures::stream::once(async move {
                signal.notify_one();
                futures::future::pending::<Result<Bytes, tchan::Error>>().await
            });
            Ok(Response::ok(
                Bytes::new(),
                Body::from_stream(first.chain(then)),
            ))
        }
    });
    let (client, back) = duplex_pair(&srv, &Channel::new("client")).await;
    let call = {
        let c = client.clone();
        tokio::spawn(async move {
            c.call(CallRequest::new("svc", "half").timeout(Duration::from_secs(30)))
                .await
        })
    };
    started.notified().await;
    back.close();
    let e = call.await.unwrap().unwrap_err();
    assert_eq!(e.code(), ErrorCode::NETWORK);
    client.closed().await;
    assert!(empty_tables(&client), "{:?}", client.table_sizes());
}

// ===== tracing =====

#[tokio::test]
async fn a_call_made_inside_a_handler_continues_the_trace() {
    // [TRACE-5] [TRACE-6] [TRACE-7] same trace id, the handler's span as parent
    let inner = Channel::new("inner");
    inner.register("svc", "who", |req: Request| async move {
        let t = req.tracing;
        Ok(Response::ok(
            Bytes::new(),
            format!("{:x} {:x} {:x}", t.trace_id, t.parent_id, t.span_id),
        ))
    });
    let inner_addr = inner.listen("127.0.0.1:0").await.unwrap();
    let outer = Channel::new("outer");
    let hop = outer.clone();
    outer.register("svc", "relay", move |req: Request| {
        let hop = hop.clone();
        async move {
            let c = hop.connect(inner_addr).await?;
            let r = c.call(CallRequest::new("svc", "who")).await?;
            let t = req.tracing;
            Ok(Response::ok(
                format!("{:x} {:x}", t.trace_id, t.span_id),
                r.arg3,
            ))
        }
    });
    let outer_addr = outer.listen("127.0.0.1:0").await.unwrap();
    let client = Channel::new("client").connect(outer_addr).await.unwrap();
    let r = client.call(CallRequest::new("svc", "relay")).await.unwrap();
    let mine = String::from_utf8(r.arg2.to_vec()).unwrap();
    let (trace, span) = mine.split_once(' ').unwrap();
    let theirs = String::from_utf8(r.arg3.to_vec()).unwrap();
    let parts: Vec<&str> = theirs.split(' ').collect();
    assert_eq!(parts[0], trace, "same trace id");
    assert_eq!(parts[1], span, "parent is the handler's span");
    assert_ne!(parts[2], span, "a new span id");
    // The root call: span id = trace id, no parent.
    assert_eq!(r.tracing.trace_id, r.tracing.span_id);
    assert_eq!(r.tracing.parent_id, 0);
}

#[tokio::test]
async fn defaults_every_call_has_a_deadline_and_crc32c() {
    // [TTL-3] [CSUM-13] [DEV-5] a 1 s default deadline, crc32c (never farmhash) by default
    let o = CallOptions::default();
    assert_eq!(o.timeout(), Duration::from_secs(1));
    assert_eq!(o.checksum(), ChecksumType::CRC32C);
    let srv = Channel::new("server");
    srv.register("svc", "ttl", |req: Request| async move {
        let left = req
            .deadline
            .saturating_duration_since(std::time::Instant::now());
        Ok(Response::ok(Bytes::new(), left.as_millis().to_string()))
    });
    let addr = srv.listen("127.0.0.1:0").await.unwrap();
    let client = Channel::new("client").connect(addr).await.unwrap();
    let r = client.call(CallRequest::new("svc", "ttl")).await.unwrap();
    let left: u64 = String::from_utf8(r.arg3.to_vec()).unwrap().parse().unwrap();
    assert!(
        left > 500 && left <= 1000,
        "{left} ms left of the default 1 s"
    );
}

#[tokio::test]
async fn a_call_inside_a_handler_inherits_the_deadline() {
    // [TTL-7] the ttl forwarded is what the inbound call has left
    let inner = Channel::new("inner");
    inner.register("svc", "ttl", |req: Request| async move {
        let left = req
            .deadline
            .saturating_duration_since(std::time::Instant::now());
        Ok(Response::ok(Bytes::new(), left.as_millis().to_string()))
    });
    let inner_addr = inner.listen("127.0.0.1:0").await.unwrap();
    let outer = Channel::new("outer");
    let hop = outer.clone();
    outer.register("svc", "relay", move |_req: Request| {
        let hop = hop.clone();
        async move {
            let c = hop.connect(inner_addr).await?;
            // Ask for 60 s; the inbound call has only about 300 ms.
            c.call(CallRequest::new("svc", "ttl").timeout(Duration::from_secs(60)))
                .await
                .map(|r| Response::ok(Bytes::new(), r.arg3))
        }
    });
    let outer_addr = outer.listen("127.0.0.1:0").await.unwrap();
    let client = Channel::new("client").connect(outer_addr).await.unwrap();
    let r = client
        .call(CallRequest::new("svc", "relay").timeout(Duration::from_millis(300)))
        .await
        .unwrap();
    let left: u64 = String::from_utf8(r.arg3.to_vec()).unwrap().parse().unwrap();
    assert!(left <= 300, "the inner call got {left} ms");
}

#[tokio::test]
async fn a_client_that_does_not_listen_is_ephemeral() {
    // [INIT-7] [INIT-3] host_port 0.0.0.0:0 from a channel that does not listen
    let srv = Channel::new("server");
    srv.register("svc", "peer", |req: Request| async move {
        Ok(Response::ok(Bytes::new(), req.peer.to_string()))
    });
    let addr = srv.listen("127.0.0.1:0").await.unwrap();
    let client = Channel::new("client").connect(addr).await.unwrap();
    let r = client.call(CallRequest::new("svc", "peer")).await.unwrap();
    assert_eq!(&r.arg3[..], b"0.0.0.0:0");
    let info = client.peer_info().unwrap();
    assert_eq!(info.host_port, addr.to_string());
    assert_eq!(info.headers.get(b"tchannel_language"), Some(&b"rust"[..]));
}

#[tokio::test]
async fn a_peer_that_stalls_inside_a_frame_is_disconnected() {
    // [FRAME-13] a partial frame may wait, but not forever: the read timeout closes it
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = {
        let mut c = ChannelConfig::default();
        c.set_read_timeout(Duration::from_millis(200));
        c
    };
    let srv = Channel::with_config("server", config);
    let addr = srv.listen("127.0.0.1:0").await.unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Half of a frame header, then silence.
    s.write_all(&[0x00, 0x40, 0x01, 0x00, 0x00]).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("the server closed the connection")
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn inbound_connections_beyond_the_limit_are_refused() {
    let config = {
        let mut c = ChannelConfig::default();
        c.set_max_inbound_connections(2);
        c
    };
    let srv = Channel::with_config("server", config);
    srv.register("svc", "echo", echo);
    let addr = srv.listen("127.0.0.1:0").await.unwrap();
    let cli = Channel::new("client");
    let a = cli.connect(addr).await.unwrap();
    let b = cli.connect(addr).await.unwrap();
    let e = cli.connect(addr).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NETWORK);
    a.close();
    a.closed().await;
    for _ in 0..100 {
        if srv.active_connections() < 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let c = cli.connect(addr).await.unwrap();
    c.call(CallRequest::new("svc", "echo")).await.unwrap();
    b.call(CallRequest::new("svc", "echo")).await.unwrap();
}

#[tokio::test]
async fn both_peers_writing_more_than_the_write_queue_do_not_deadlock() {
    // 64 calls of 256 KiB each way on one runtime: 16 MiB queued against an
    // 8 MiB write queue, on both sides at once.
    let (_srv, addr) = server().await;
    let client = Channel::new("client").connect(addr).await.unwrap();
    let big = Bytes::from(vec![7u8; 256 * 1024]);
    for _ in 0..3 {
        let calls = (0..64).map(|_| {
            client.call(
                CallRequest::new("svc", "echo")
                    .arg3(big.clone())
                    .timeout(Duration::from_secs(20)),
            )
        });
        for r in futures::future::join_all(calls).await {
            assert_eq!(r.unwrap().arg3.len(), big.len());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_reads_cannot_grow_our_buffers_and_is_disconnected() {
    // A raw peer: handshake, then a flood of pings whose answers it never reads.
    use tchan::frame::{Frame, Init, InitHeaders, Ping};
    use tokio::io::AsyncWriteExt;
    let config = {
        let mut c = ChannelConfig::default();
        c.set_max_write_queue(1024).expect("valid");
        c.set_read_timeout(Duration::from_secs(2));
        c
    };
    let srv = Channel::with_config("server", config);
    let (mut peer, ours) = tokio::io::duplex(8 * 1024);
    let back = srv.accept_io(ours);
    let mut out = bytes::BytesMut::new();
    Frame::InitReq(Init {
        id: 1,
        version: 2,
        headers: InitHeaders::from_pairs([("host_port", "0.0.0.0:0"), ("process_name", "rude")])
            .unwrap(),
        trailing: Bytes::new(),
    })
    .encode(&mut out)
    .unwrap();
    for id in 2..50_000u32 {
        Frame::PingReq(Ping::new(id)).encode(&mut out).unwrap();
    }
    let flood = tokio::spawn(async move {
        let _ = peer.write_all(&out).await;
        // Keep the stream open (and unread) until the server gives up.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(peer);
    });
    tokio::time::timeout(Duration::from_secs(60), back.closed())
        .await
        .expect("the server closes a connection whose peer stopped reading");
    assert!(back.is_closed());
    flood.abort();
}

/// The init req a raw test peer sends.
fn raw_init_req() -> Vec<u8> {
    use tchan::frame::{Frame, Init, InitHeaders};
    let mut out = bytes::BytesMut::new();
    Frame::InitReq(Init {
        id: 1,
        version: 2,
        headers: InitHeaders::from_pairs([("host_port", "0.0.0.0:0"), ("process_name", "raw")])
            .unwrap(),
        trailing: Bytes::new(),
    })
    .encode(&mut out)
    .unwrap();
    out.to_vec()
}

/// Reads frames from `r` until one is a call res or error for `id`; bytes
/// past that frame stay in `buf` for the next call.
async fn raw_read_answer(
    r: &mut (impl tokio::io::AsyncRead + Unpin),
    buf: &mut bytes::BytesMut,
    id: u32,
) -> tchan::frame::Frame {
    use tchan::frame::Frame;
    use tokio::io::AsyncReadExt;
    use tokio_util::codec::Decoder;
    let mut codec = tchan::codec::FrameCodec::new();
    loop {
        while let Some(f) = codec.decode(buf).unwrap() {
            match &f {
                Frame::CallRes(c) if c.id == id => return f,
                Frame::Error(e) if e.id == id || e.id == u32::MAX => return f,
                _ => {}
            }
        }
        let n = r.read_buf(buf).await.unwrap();
        assert!(n > 0, "connection closed before the answer to {id}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_long_stream_whose_reads_never_end_on_a_frame_boundary_is_not_cut() {
    // [FRAME-13] the read timeout is time without read progress: a peer that
    // keeps sending, in reads that always end inside a frame, for far longer
    // than the timeout, is not disconnected (it was after 30 s before).
    use tchan::frame::{CallHead, MessageWriter, ReqHead, Tracing, TransportHeaders};
    use tokio::io::AsyncWriteExt;
    let config = {
        let mut c = ChannelConfig::default();
        c.set_read_timeout(Duration::from_secs(1));
        c
    };
    let srv = Channel::with_config("server", config);
    srv.register("svc", "echo", echo);
    let (mut peer, ours) = tokio::io::duplex(1 << 20);
    let _conn = srv.accept_io(ours);
    peer.write_all(&raw_init_req()).await.unwrap();
    // Eight calls of 256 KiB, one after the other: 2 MiB of frames.
    let mut stream = bytes::BytesMut::new();
    let body = vec![0x42u8; 256 * 1024];
    for id in 2..10u32 {
        let head = CallHead::Req(ReqHead {
            ttl: 60_000,
            tracing: Tracing::default(),
            service: Bytes::from_static(b"svc"),
            headers: TransportHeaders::strict([("cn", "raw"), ("as", "raw")]).unwrap(),
        });
        MessageWriter::write_message(
            &mut stream,
            id,
            head,
            ChecksumType::CRC32C,
            65535,
            [b"echo", b"", &body],
        )
        .unwrap();
    }
    // Pieces of 10,007 bytes (never a frame boundary for long), one every
    // 300 ms: the whole stream takes about 60 s, sixty read timeouts.
    let (mut rd, mut wr) = tokio::io::split(peer);
    let writer = tokio::spawn(async move {
        for piece in stream.chunks(10_007) {
            wr.write_all(piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        wr
    });
    let mut buf = bytes::BytesMut::new();
    for id in 2..10u32 {
        match raw_read_answer(&mut rd, &mut buf, id).await {
            tchan::frame::Frame::CallRes(r) => assert!(r.code.is_ok()),
            other => panic!("call {id}: {other:?}"),
        }
    }
    let _wr = writer.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn callers_waiting_for_write_queue_space_go_in_the_order_they_came() {
    // A full write queue makes callers wait; they are served first come first
    // served (one woken at a time as room is made), so their requests reach
    // the server in the order the calls were made and none is starved.
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let srv = Channel::new("server");
    let log = seen.clone();
    srv.register("svc", "log", move |req: Request| {
        let log = log.clone();
        async move {
            let arg3 = req.arg3.into_bytes().await?;
            log.lock()
                .unwrap()
                .push(u32::from_be_bytes([arg3[0], arg3[1], arg3[2], arg3[3]]));
            Ok(Response::ok(Bytes::new(), Bytes::new()))
        }
    });
    let config = {
        let mut c = ChannelConfig::default();
        c.set_max_write_queue(64 * 1024).expect("valid");
        c
    };
    let cli = Channel::with_config("client", config);
    // A small pipe: the client's writes block, its queue fills, callers wait.
    let (a, b) = tokio::io::duplex(16 * 1024);
    let _s = srv.accept_io(b);
    let client = cli.connect_io(a, None).await.unwrap();
    let n = 40u32;
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let c = client.clone();
            let mut body = vec![0u8; 32 * 1024];
            body[..4].copy_from_slice(&i.to_be_bytes());
            tokio::spawn(async move {
                c.call(
                    CallRequest::new("svc", "log")
                        .arg3(body)
                        .timeout(Duration::from_secs(30)),
                )
                .await
            })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, (0..n).collect::<Vec<_>>(), "requests in call order");
}

#[tokio::test]
async fn a_channel_lists_its_connections_adds_up_their_tables_and_closes_them() {
    let (srv, addr) = server().await;
    srv.register("svc", "never", |req: Request| async move {
        req.cancelled().await;
        Err::<Response, _>(tchan::Error::new(ErrorCode::CANCELLED, "cancelled"))
    });
    let caller = Channel::new("client");
    let (a, b) = (
        caller.connect(addr).await.unwrap(),
        caller.connect(addr).await.unwrap(),
    );
    assert_eq!(caller.connections().len(), 2);
    let call = |c: &tchan::Client| {
        let c = c.clone();
        tokio::spawn(async move {
            c.call(CallRequest::new("svc", "never").timeout(Duration::from_secs(30)))
                .await
        })
    };
    let (ca, cb) = (call(&a), call(&b));
    // Both calls are in the client's tables (the first entry counts calls
    // in flight), once each connection has them.
    while caller.table_sizes().first() != Some(&2) {
        tokio::task::yield_now().await;
    }
    while srv.connections().len() != 2 {
        tokio::task::yield_now().await;
    }
    // Closing the server's channel: both calls fail with a network error,
    // and the port can be listened on again.
    srv.close();
    for call in [ca, cb] {
        let e = call.await.unwrap().unwrap_err();
        assert_eq!(e.code(), ErrorCode::NETWORK, "{e}");
    }
    assert!(a.is_closed() && b.is_closed());
    while caller.table_sizes().iter().any(|&n| n > 0) {
        tokio::task::yield_now().await;
    }
    let again = Channel::new("server");
    again.register("svc", "echo", echo);
    let bound = loop {
        match again.listen(addr).await {
            Ok(bound) => break bound,
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };
    assert_eq!(bound, addr);
    let c = caller.connect(addr).await.unwrap();
    let resp = c
        .call(CallRequest::new("svc", "echo").arg3("x"))
        .await
        .unwrap();
    assert_eq!(&resp.arg3[..], b"x");
}

#[tokio::test]
async fn an_error_while_the_request_still_streams_ends_the_call_at_once() {
    // [ERR-9] The peer refuses the call (no such method) after its first
    // frame; the caller's body stream never ends, and the call must not wait
    // for it.
    let srv = Channel::new("server");
    srv.register("svc", "echo", echo);
    let addr = srv.listen("127.0.0.1:0").await.unwrap();
    let client = Channel::new("client").connect(addr).await.unwrap();
    let first = futures::stream::iter([Ok(Bytes::from(vec![1u8; 100 * 1024]))]);
    let body = Body::from_stream(first.chain(futures::stream::pending()));
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        client.call(
            CallRequest::new("svc", "nope")
                .arg3(body)
                .timeout(Duration::from_secs(30)),
        ),
    )
    .await
    .expect("the call ended with the error, not with the stream");
    assert_eq!(r.unwrap_err().code(), ErrorCode::BAD_REQUEST);
    // The connection goes on.
    let ok = client
        .call(CallRequest::new("svc", "echo").arg3("x"))
        .await
        .unwrap();
    assert_eq!(&ok.arg3[..], b"x");
}
