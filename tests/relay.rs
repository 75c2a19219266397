//! `tchan::relay::Relay` over loopback TCP, with tchan channels as callers
//! and destinations (`spec/12-relay.md`).

use std::time::Duration;

use bytes::Bytes;
use tchan::frame::ErrorCode;
use tchan::relay::{Relay, RelayConfig};
use tchan::server::HandlerResult;
use tchan::{CallRequest, Channel, Request, Response};

async fn echo(req: Request) -> HandlerResult {
    let arg3 = req.arg3.into_bytes().await?;
    Ok(Response::ok(req.arg2, arg3))
}

/// A server of `service` with `echo` and `who` (answers its own address).
async fn server(service: &str) -> (Channel, String) {
    let ch = Channel::new(service);
    ch.register(service, "echo", echo);
    let addr = ch.listen("127.0.0.1:0").await.unwrap().to_string();
    let me = addr.clone();
    ch.register(service, "who", move |_req: Request| {
        let me = me.clone();
        async move { Ok(Response::ok(Bytes::new(), Bytes::from(me))) }
    });
    (ch, addr)
}

async fn relay_with_routes(routes: Vec<(String, Vec<String>)>) -> Relay {
    let relay = Relay::bind("127.0.0.1:0", RelayConfig::default())
        .await
        .unwrap();
    relay.with_core(|c| c.set_routes(routes));
    relay
}

#[tokio::test]
async fn calls_go_through_the_relay_by_service_name() {
    // [RELAY-1] [RELAY-3]
    let (_s1, a1) = server("svc").await;
    let (_s2, a2) = server("svc").await;
    let relay = relay_with_routes(vec![("svc".into(), vec![a1.clone(), a2.clone()])]).await;
    let caller = Channel::new("caller");
    let client = caller.connect(relay.local_addr()).await.unwrap();
    let mut seen = std::collections::HashSet::new();
    for i in 0..40 {
        let r = client
            .call(
                CallRequest::new("svc", "echo")
                    .arg2("h")
                    .arg3(format!("body {i}")),
            )
            .await
            .unwrap();
        assert_eq!(r.arg2, Bytes::from_static(b"h"));
        assert_eq!(r.arg3, Bytes::from(format!("body {i}")));
        let who = client.call(CallRequest::new("svc", "who")).await.unwrap();
        seen.insert(String::from_utf8(who.arg3.to_vec()).unwrap());
    }
    assert_eq!(
        seen.len(),
        2,
        "both peers of the service get calls: {seen:?}"
    );
    let sizes = relay.sizes();
    assert_eq!((sizes.calls, sizes.mappings), (0, 0));
    assert!(relay.counters().forwarded >= 80);
}

#[tokio::test]
async fn an_unknown_service_is_declined_by_name() {
    // [RELAY-8]
    let relay = relay_with_routes(vec![]).await;
    let caller = Channel::new("caller");
    let client = caller.connect(relay.local_addr()).await.unwrap();
    let e = client
        .call(CallRequest::new("nobody", "echo"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::DECLINED);
    assert!(e.message().contains("nobody"), "{e}");
    assert_eq!(relay.sizes().calls, 0);
}

#[tokio::test]
async fn large_calls_stream_through_without_reassembly() {
    let (_s1, a1) = server("svc").await;
    let relay = relay_with_routes(vec![("svc".into(), vec![a1])]).await;
    let caller = Channel::new("caller");
    let client = caller.connect(relay.local_addr()).await.unwrap();
    let body: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let r = client
        .call(
            CallRequest::new("svc", "echo")
                .arg3(body.clone())
                .timeout(Duration::from_secs(10)),
        )
        .await
        .unwrap();
    assert_eq!(r.arg3.len(), body.len());
    assert!(r.arg3 == body);
    let c = relay.counters();
    // Only the rewritten headers were copied: 16 bytes a frame, 21 for the call req.
    assert!(c.frames_forwarded > 90, "{c:?}");
    assert!(c.bytes_copied <= c.frames_forwarded * 21, "{c:?}");
}

// ===== helpers =====

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::StreamExt;
use tchan::{Body, ChannelConfig};

/// Waits for `f` to hold (a state the code exposes), up to 10 s.
async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..2000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A server with `hold` (never answers; sets the flag when its future is
/// dropped), `slow` (answers after arg3 ms), `boom` (unexpected error).
async fn holding_server(service: &str) -> (Channel, String, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let ch = Channel::new(service);
    let dropped = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    {
        let (dropped, started) = (dropped.clone(), started.clone());
        ch.register(service, "hold", move |_req: Request| {
            let flag = DropFlag(dropped.clone());
            started.fetch_add(1, Ordering::SeqCst);
            async move {
                let _flag = flag;
                std::future::pending::<()>().await;
                Ok(Response::ok(Bytes::new(), Bytes::new()))
            }
        });
    }
    ch.register(service, "slow", |req: Request| async move {
        let arg3 = req.arg3.into_bytes().await?;
        let ms: u64 = std::str::from_utf8(&arg3).unwrap().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Response::ok(Bytes::new(), arg3))
    });
    ch.register(service, "boom", |_req: Request| async move {
        Err(tchan::Error::new(ErrorCode::UNEXPECTED, "boom"))
    });
    ch.register(service, "echo", echo);
    let addr = ch.listen("127.0.0.1:0").await.unwrap().to_string();
    (ch, addr, dropped, started)
}

fn cancelling_channel(name: &str) -> Channel {
    let mut config = ChannelConfig::default();
    config.connection_mut().set_send_cancel(true);
    Channel::with_config(name, config)
}

#[tokio::test]
async fn ids_stay_with_their_callers_with_10000_calls_answered_in_reverse() {
    // [RELAY-3] 8 callers, 10,000 calls in flight on one relay → server
    // connection; the server answers them last-first.
    const CALLERS: usize = 8;
    const PER: usize = 1250;
    const N: usize = CALLERS * PER;
    let srv = Channel::new("svc");
    let waiting: Arc<std::sync::Mutex<Vec<tokio::sync::oneshot::Sender<()>>>> = Arc::default();
    let all_in = Arc::new(tokio::sync::Notify::new());
    {
        let (waiting, all_in) = (waiting.clone(), all_in.clone());
        srv.register("svc", "echo", move |req: Request| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let n = {
                let mut w = waiting.lock().unwrap();
                w.push(tx);
                w.len()
            };
            if n == N {
                all_in.notify_one();
            }
            async move {
                let arg3 = req.arg3.into_bytes().await?;
                let _ = rx.await;
                Ok(Response::ok(req.arg2, arg3))
            }
        });
    }
    let addr = srv.listen("127.0.0.1:0").await.unwrap().to_string();
    let relay = relay_with_routes(vec![("svc".into(), vec![addr])]).await;
    let releaser = {
        let waiting = waiting.clone();
        tokio::spawn(async move {
            all_in.notified().await;
            let txs: Vec<_> = std::mem::take(&mut *waiting.lock().unwrap());
            for tx in txs.into_iter().rev() {
                let _ = tx.send(());
                tokio::task::yield_now().await;
            }
        })
    };
    let mut tasks = Vec::new();
    for c in 0..CALLERS {
        let client = Channel::new(format!("caller{c}"))
            .connect(relay.local_addr())
            .await
            .unwrap();
        for i in 0..PER {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let body = format!("{c}/{i}");
                let r = client
                    .call(
                        CallRequest::new("svc", "echo")
                            .arg2(format!("caller{c}"))
                            .arg3(body.clone())
                            .timeout(Duration::from_secs(60)),
                    )
                    .await
                    .unwrap();
                assert_eq!(r.arg3, Bytes::from(body));
                assert_eq!(r.arg2, Bytes::from(format!("caller{c}")));
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    releaser.await.unwrap();
    let sizes = relay.sizes();
    assert_eq!((sizes.calls, sizes.mappings), (0, 0), "{sizes:?}");
    assert_eq!(relay.counters().forwarded, N as u64);
}

#[tokio::test]
async fn a_call_whose_ttl_runs_out_in_the_relay_gets_a_timeout_and_the_late_answer_is_dropped() {
    // [RELAY-5]
    let (_srv, addr, _, _) = holding_server("svc").await;
    let mut config = RelayConfig::default();
    config.max_ttl = Duration::from_millis(100);
    let relay = Relay::bind("127.0.0.1:0", config).await.unwrap();
    relay.with_core(|c| c.set_routes([("svc".to_owned(), vec![addr])]));
    let client = Channel::new("c").connect(relay.local_addr()).await.unwrap();
    // The caller allows 5 s; the relay clamps the ttl to 100 ms, times the
    // call out itself, and drops the server's late answer.
    let e = client
        .call(
            CallRequest::new("svc", "slow")
                .arg3("400")
                .timeout(Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::TIMEOUT);
    assert!(e.message().contains("relay"), "{e}");
    until("the late response to be dropped", || {
        relay.counters().late_dropped >= 1
    })
    .await;
    assert_eq!(relay.counters().unknown_dropped, 0);
    let sizes = relay.sizes();
    assert_eq!((sizes.calls, sizes.mappings), (0, 0));
    // The connection still works.
    let r = client
        .call(CallRequest::new("svc", "echo").arg3("x"))
        .await
        .unwrap();
    assert_eq!(&r.arg3[..], b"x");
}

#[tokio::test]
async fn a_cancel_is_forwarded_and_the_handler_stops() {
    // [RELAY-6]
    let (_srv, addr, dropped, started) = holding_server("svc").await;
    let relay = relay_with_routes(vec![("svc".into(), vec![addr])]).await;
    let client = cancelling_channel("c")
        .connect(relay.local_addr())
        .await
        .unwrap();
    let call = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .call(CallRequest::new("svc", "hold").timeout(Duration::from_secs(30)))
                .await
        })
    };
    until("the handler to start", || {
        started.load(Ordering::SeqCst) == 1
    })
    .await;
    call.abort();
    until("the server to drop the handler", || {
        dropped.load(Ordering::SeqCst)
    })
    .await;
    until("the relay to forget the call", || relay.sizes().calls == 0).await;
    assert_eq!(relay.sizes().mappings, 0);
}

#[tokio::test]
async fn a_caller_that_disconnects_frees_its_calls_and_cancels_them_downstream() {
    // [RELAY-7]
    let (_srv, addr, dropped, started) = holding_server("svc").await;
    let relay = relay_with_routes(vec![("svc".into(), vec![addr])]).await;
    let caller = Channel::new("c");
    let client = caller.connect(relay.local_addr()).await.unwrap();
    let mut calls = Vec::new();
    for _ in 0..5 {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            client
                .call(CallRequest::new("svc", "hold").timeout(Duration::from_secs(30)))
                .await
        }));
    }
    until("the handlers to start", || {
        started.load(Ordering::SeqCst) == 5
    })
    .await;
    assert_eq!(relay.sizes().calls, 5);
    caller.close();
    for c in calls {
        let e = c.await.unwrap().unwrap_err();
        assert_eq!(e.code(), ErrorCode::NETWORK);
    }
    until("the relay to free the calls", || relay.sizes().calls == 0).await;
    until("the server to drop the handlers", || {
        dropped.load(Ordering::SeqCst)
    })
    .await;
    assert_eq!(relay.sizes().mappings, 0);
}

#[tokio::test]
async fn a_destination_that_drops_mid_call_fails_exactly_its_calls_with_network_error() {
    // [RELAY-7]
    let (srv, addr, _, started) = holding_server("svc").await;
    let (_other, other_addr, _, _) = holding_server("other").await;
    let relay = relay_with_routes(vec![
        ("svc".into(), vec![addr]),
        ("other".into(), vec![other_addr]),
    ])
    .await;
    let client = Channel::new("c").connect(relay.local_addr()).await.unwrap();
    let held = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .call(CallRequest::new("svc", "hold").timeout(Duration::from_secs(30)))
                .await
        })
    };
    let slow_other = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .call(
                    CallRequest::new("other", "slow")
                        .arg3("300")
                        .timeout(Duration::from_secs(30)),
                )
                .await
        })
    };
    until("the handler to start", || {
        started.load(Ordering::SeqCst) == 1
    })
    .await;
    srv.close();
    let e = held.await.unwrap().unwrap_err();
    assert_eq!(e.code(), ErrorCode::NETWORK);
    assert!(e.message().contains("relay"), "{e}");
    // The call to the other service on the same caller connection is untouched.
    let r = slow_other.await.unwrap().unwrap();
    assert_eq!(&r.arg3[..], b"300");
    assert_eq!(relay.sizes().calls, 0);
}

#[tokio::test]
async fn rate_limits_answer_busy_past_the_rate() {
    // [RELAY-15]
    let (_srv, addr, _, _) = holding_server("svc").await;
    let relay = relay_with_routes(vec![("svc".into(), vec![addr])]).await;
    relay.with_core(|c| {
        c.policy_mut().limit(&"svc=5".parse().unwrap());
        c.policy_mut().limit(&"vip->svc=1000".parse().unwrap());
    });
    let client = Channel::new("c").connect(relay.local_addr()).await.unwrap();
    let mut ok = 0;
    let mut busy = 0;
    for _ in 0..12 {
        match client.call(CallRequest::new("svc", "echo")).await {
            Ok(_) => ok += 1,
            Err(e) if e.code() == ErrorCode::BUSY => {
                assert!(e.message().contains("rate limit"), "{e}");
                busy += 1
            }
            Err(e) => panic!("{e}"),
        }
    }
    // 12 calls well within one second: 5 pass (a sliding window can let one
    // more through as the second turns).
    assert!((5..=6).contains(&ok), "ok {ok}, busy {busy}");
    assert_eq!(ok + busy, 12);
}

#[tokio::test]
async fn a_killed_edge_is_declined_and_other_callers_go_on() {
    // [RELAY-15]
    let (_srv, addr, _, _) = holding_server("svc").await;
    let relay = relay_with_routes(vec![("svc".into(), vec![addr])]).await;
    relay.with_core(|c| c.policy_mut().kill("bad", "svc"));
    let bad = Channel::new("bad")
        .connect(relay.local_addr())
        .await
        .unwrap();
    let good = Channel::new("good")
        .connect(relay.local_addr())
        .await
        .unwrap();
    let e = bad.call(CallRequest::new("svc", "echo")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::DECLINED);
    assert!(e.message().contains("killed"), "{e}");
    good.call(CallRequest::new("svc", "echo")).await.unwrap();
}

#[tokio::test]
async fn an_endpoint_that_keeps_failing_opens_only_its_edge() {
    // [RELAY-14]
    let (_srv, addr, _, _) = holding_server("svc").await;
    let relay = relay_with_routes(vec![("svc".into(), vec![addr])]).await;
    let client = Channel::new("c").connect(relay.local_addr()).await.unwrap();
    let mut unhealthy = None;
    for _ in 0..20 {
        let e = client
            .call(CallRequest::new("svc", "boom"))
            .await
            .unwrap_err();
        if e.code() == ErrorCode::DECLINED {
            unhealthy = Some(e);
            break;
        }
        assert_eq!(e.code(), ErrorCode::UNEXPECTED);
    }
    let e = unhealthy.expect("the edge never opened");
    assert!(e.message().contains("not healthy"), "{e}");
    // Another endpoint of the service, and another caller of this one, work.
    client.call(CallRequest::new("svc", "echo")).await.unwrap();
    let other = Channel::new("other")
        .connect(relay.local_addr())
        .await
        .unwrap();
    let e = other
        .call(CallRequest::new("svc", "boom"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::UNEXPECTED);
}

#[tokio::test]
async fn a_call_to_a_peer_that_refuses_connections_goes_to_another() {
    // [RELAY-8] retried before its first frame has left the relay
    let (_srv, addr, _, _) = holding_server("svc").await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let relay = relay_with_routes(vec![("svc".into(), vec![dead.clone(), addr])]).await;
    let client = Channel::new("c").connect(relay.local_addr()).await.unwrap();
    for _ in 0..10 {
        client.call(CallRequest::new("svc", "echo")).await.unwrap();
    }
    // With only the dead peer: network error naming it.
    relay.with_core(|c| c.set_routes([("svc".to_owned(), vec![dead.clone()])]));
    let e = client
        .call(CallRequest::new("svc", "echo"))
        .await
        .unwrap_err();
    assert!(
        matches!(e.code(), ErrorCode::NETWORK | ErrorCode::DECLINED),
        "{e}"
    );
    assert_eq!(relay.sizes().calls, 0);
}

#[tokio::test]
async fn continuation_frames_leave_before_the_last_one_arrives_and_memory_stays_flat() {
    // [RELAY-4] a 64 MiB request streamed through the relay to a streaming
    // handler: the handler sees bytes while the caller is still sending, and
    // the relay never holds more than its queue limit.
    stream_through(64 << 20).await;
}

/// The soak's size: `cargo test --release --test relay -- --ignored`
/// (`TCHAN_RELAY_MIB`, default 300), run by `.ci/run`.
#[tokio::test]
#[ignore]
async fn a_300_mib_call_streams_through_the_relay_with_its_memory_flat() {
    // [RELAY-4]
    let mib: usize = std::env::var("TCHAN_RELAY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    stream_through(mib << 20).await;
}

async fn stream_through(total: usize) {
    let mut config = ChannelConfig::default();
    // A destination with raised limits: it takes a message of any size.
    config
        .connection_mut()
        .reassembly_mut()
        .set_max_message_bytes(u64::MAX)
        .set_max_frames(u32::MAX);
    config.connection_mut().set_max_inbound_bytes(u64::MAX);
    let srv = Channel::with_config("svc", config);
    let received = Arc::new(AtomicUsize::new(0));
    {
        let received = received.clone();
        srv.register_streaming("svc", "sink", move |req: Request| {
            let received = received.clone();
            async move {
                let Body::Stream(mut s) = req.arg3 else {
                    panic!("expected a stream")
                };
                while let Some(c) = s.next().await {
                    received.fetch_add(c?.len(), Ordering::SeqCst);
                }
                let n = received.load(Ordering::SeqCst);
                Ok(Response::ok(Bytes::new(), n.to_string()))
            }
        });
    }
    let addr = srv.listen("127.0.0.1:0").await.unwrap().to_string();
    let relay = relay_with_routes(vec![("svc".into(), vec![addr])]).await;
    let client = Channel::new("c").connect(relay.local_addr()).await.unwrap();
    // The first 1 MiB goes at once; the rest only after the handler has seen
    // some of it (which it could not if the relay waited for the last frame).
    let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
    let first = futures::stream::iter((0..16).map(|_| Ok(Bytes::from(vec![1u8; 64 * 1024]))));
    let rest = futures::stream::once(async move {
        let _ = gate_rx.await;
        futures::stream::iter(
            (16..total / (64 * 1024)).map(|_| Ok(Bytes::from(vec![2u8; 64 * 1024]))),
        )
    })
    .flatten();
    let call = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .call(
                    CallRequest::new("svc", "sink")
                        .arg3(Body::from_stream(first.chain(rest)))
                        .timeout(Duration::from_secs(60)),
                )
                .await
        })
    };
    until(
        "the handler to get bytes before the call's end was sent",
        || received.load(Ordering::SeqCst) > 0,
    )
    .await;
    let _ = gate_tx.send(());
    let max_queued = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (relay, max_queued) = (relay.clone(), max_queued.clone());
        tokio::spawn(async move {
            loop {
                let q = relay.sizes().queued_bytes;
                max_queued.fetch_max(q, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let r = call.await.unwrap().unwrap();
    watcher.abort();
    assert_eq!(r.arg3, Bytes::from(total.to_string()));
    let limit = relay.with_core(|c| c.config().max_queued_bytes);
    assert!(
        max_queued.load(Ordering::SeqCst) <= limit,
        "queued {} > {limit}",
        max_queued.load(Ordering::SeqCst)
    );
    let c = relay.counters();
    assert!(c.bytes_forwarded >= total as u64, "{c:?}");
    assert!(c.bytes_copied <= c.frames_forwarded * 21, "{c:?}");
}

#[tokio::test]
async fn an_advertisement_to_one_relay_is_known_to_its_peer_relays_and_survives_one_being_killed() {
    // [RELAY-13] [RELAY-10] [RELAY-11]
    let a = Relay::bind("127.0.0.1:0", RelayConfig::default())
        .await
        .unwrap();
    let b = Relay::bind("127.0.0.1:0", RelayConfig::default())
        .await
        .unwrap();
    a.add_peer_relay(b.local_addr().to_string());
    b.add_peer_relay(a.local_addr().to_string());
    let (srv, _addr) = server("svc").await;
    // The service advertises to relay A only, on a connection it keeps.
    let to_a = srv.connect(a.local_addr()).await.unwrap();
    let r = to_a
        .call(
            CallRequest::new("hyperbahn", "ad")
                .scheme(tchan::frame::ArgScheme::Json)
                .arg2("null")
                .arg3(r#"{"services":[{"serviceName":"svc","cost":0}]}"#),
        )
        .await
        .unwrap();
    assert_eq!(&r.arg3[..], br#"{"connectionCount":1}"#);
    // A call through A goes back on the service's own connection: A dials no one.
    let via_a = Channel::new("c").connect(a.local_addr()).await.unwrap();
    via_a.call(CallRequest::new("svc", "echo")).await.unwrap();
    assert_eq!(a.sizes().connections, 2, "the service's and the caller's");
    // B learns of it from A.
    until("relay B to know svc", || {
        b.with_core(|c| {
            !c.peers_of(b"svc", tokio::time::Instant::now().into_std())
                .is_empty()
        })
    })
    .await;
    let via_b = Channel::new("c").connect(b.local_addr()).await.unwrap();
    // A is killed: calls through B go on.
    a.close();
    for i in 0..10 {
        let r = via_b
            .call(CallRequest::new("svc", "echo").arg3(format!("{i}")))
            .await
            .unwrap();
        assert_eq!(r.arg3, Bytes::from(format!("{i}")));
    }
}

#[tokio::test]
async fn a_256_kib_call_through_the_relay_copies_no_arg_byte() {
    // [RELAY-3] [RELAY-4] Counted by the core: the bytes it forwards by
    // reference and the bytes it writes itself (rewritten heads only).
    let (_s1, a1) = server("svc").await;
    let relay = relay_with_routes(vec![("svc".into(), vec![a1])]).await;
    let client = Channel::new("c").connect(relay.local_addr()).await.unwrap();
    let body = vec![7u8; 256 * 1024];
    let r = client
        .call(CallRequest::new("svc", "echo").arg3(body.clone()))
        .await
        .unwrap();
    assert!(r.arg3 == body);
    let c = relay.counters();
    // Request and response: 5 frames each way (256 KiB over 65535-byte frames).
    assert_eq!(c.forwarded, 1);
    assert!(c.bytes_forwarded > 2 * 256 * 1024, "{c:?}");
    // Every frame's head is 16 bytes, the call req's 21: nothing else copied.
    assert_eq!(c.bytes_copied, 16 * c.frames_forwarded + 5, "{c:?}");
    eprintln!(
        "256 KiB echo through the relay: {} frames, {} bytes forwarded by reference, {} bytes copied (heads)",
        c.frames_forwarded, c.bytes_forwarded, c.bytes_copied
    );
}

/// A peer that finishes the handshake as a server, then never reads again.
async fn stalled_peer() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let me = addr.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let mut got = 0;
            // Read the init req (it fits in one read on loopback).
            while got < 16 || got < usize::from(u16::from_be_bytes([buf[0], buf[1]])) {
                let n = s.read(&mut buf[got..]).await.unwrap();
                assert!(n > 0);
                got += n;
            }
            let id = u32::from_be_bytes(buf[4..8].try_into().unwrap());
            let res = tchan::frame::Frame::InitRes(tchan::frame::Init {
                id,
                version: 2,
                headers: tchan::frame::InitHeaders::from_pairs([
                    ("host_port", me.as_str()),
                    ("process_name", "stalled"),
                ])
                .unwrap(),
                trailing: Bytes::new(),
            })
            .to_bytes()
            .unwrap();
            s.write_all(&res).await.unwrap();
            held.push(s); // never read again
        }
    });
    addr
}

#[tokio::test]
async fn a_destination_that_stops_reading_gets_busy_calls_and_bounded_memory_while_others_go_on() {
    // [RELAY-9]
    let stalled = stalled_peer().await;
    let (_srv, addr, _, _) = holding_server("fine").await;
    let mut config = RelayConfig::default();
    config.max_queued_bytes = 1 << 20;
    let relay = Relay::bind("127.0.0.1:0", config).await.unwrap();
    relay.with_core(|c| {
        c.set_routes([
            ("stuck".to_owned(), vec![stalled]),
            ("fine".to_owned(), vec![addr]),
        ])
    });
    let client = Channel::new("c").connect(relay.local_addr()).await.unwrap();
    // 64 calls of 256 KiB to the peer that does not read: the socket takes
    // a few MiB at most, the relay's queue 1 MiB, the rest is busy.
    let mut stuck = Vec::new();
    for _ in 0..64 {
        let client = client.clone();
        stuck.push(tokio::spawn(async move {
            client
                .call(
                    CallRequest::new("stuck", "echo")
                        .arg3(vec![1u8; 256 * 1024])
                        .timeout(Duration::from_secs(3)),
                )
                .await
        }));
    }
    // Each call ends busy (the queue was full), timed out (it was queued
    // but never answered), or declined once the slow peer's breaker or the
    // edge's opened.
    let (mut busy, mut timeout, mut declined) = (0, 0, 0);
    for t in stuck {
        match t.await.unwrap() {
            Err(e) if e.code() == ErrorCode::BUSY => busy += 1,
            Err(e) if e.code() == ErrorCode::TIMEOUT => timeout += 1,
            Err(e) if e.code() == ErrorCode::DECLINED => declined += 1,
            other => panic!("{other:?}"),
        }
        // Calls to another service on the same caller connection go on.
        let r = client
            .call(CallRequest::new("fine", "echo").arg3("ok"))
            .await
            .unwrap();
        assert_eq!(&r.arg3[..], b"ok");
        assert!(
            relay.sizes().queued_bytes <= (1 << 20) + 64 * 1024,
            "{:?}",
            relay.sizes()
        );
    }
    assert!(
        busy > 0,
        "the full queue answered busy ({busy} busy, {timeout} timeouts, {declined} declined)"
    );
    assert_eq!(busy + timeout + declined, 64);
}

#[tokio::test]
async fn connections_still_in_their_handshake_count_against_max_connections() {
    // [RELAY-9]
    let mut config = RelayConfig::default();
    config.max_connections = 2;
    let relay = Relay::bind("127.0.0.1:0", config).await.unwrap();
    // Two sockets that never send init hold both places.
    let silent: Vec<tokio::net::TcpStream> = vec![
        tokio::net::TcpStream::connect(relay.local_addr())
            .await
            .unwrap(),
        tokio::net::TcpStream::connect(relay.local_addr())
            .await
            .unwrap(),
    ];
    let refused = Channel::new("c").connect(relay.local_addr()).await;
    assert!(refused.is_err(), "a third connection was accepted");
    // Once they go, a connection is accepted again.
    drop(silent);
    let mut tries = 0;
    loop {
        match Channel::new("c").connect(relay.local_addr()).await {
            Ok(_) => break,
            Err(e) => {
                tries += 1;
                assert!(tries < 200, "never accepted again: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
