//! tchan's calling side against a server written by hand that misbehaves:
//! replies that never end, protocol violations, headers chosen to grow
//! caches. Over loopback TCP.

#[path = "support/raw_server.rs"]
mod raw_server;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use raw_server::{RawServer, flood_paced, method, response};
use tchan::frame::{
    CallHead, ChecksumType, ErrorCode, MessageWriter, ResHead, ResponseCode, Tracing,
    TransportHeaders,
};
use tchan::{CallRequest, Channel, ChannelConfig};

const MIB: u64 = 1024 * 1024;

/// Peak resident memory of this process, from /proc.
fn vm_hwm() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// A server: `flood` answers with a reply that never ends (until the caller
/// cancels; `trickle` the same, 64 KiB a millisecond), `echo` answers at once, `violate` starts a reply and then sends
/// a second call res for the same id, `hold` never answers, `headers` answers
/// with a different `as` and header set every time.
async fn hostile() -> RawServer {
    hostile_counting().await.0
}

/// [`hostile`], and a count of the floods the caller cancelled.
async fn hostile_counting() -> (RawServer, Arc<tokio::sync::Notify>) {
    let cancelled = Arc::new(tokio::sync::Notify::new());
    let signal = cancelled.clone();
    let server = RawServer::start(move |c, wire| {
        let id = c.id;
        let m = method(&c);
        let signal = signal.clone();
        tokio::spawn(async move {
            match &m[..] {
                b"flood" | b"trickle" => {
                    let pause = match &m[..] {
                        b"trickle" => Duration::from_millis(1),
                        _ => Duration::ZERO,
                    };
                    if flood_paced(wire, id, 64 * 1024, 1 << 40, pause).await {
                        signal.notify_one();
                    }
                }
                b"echo" => {
                    let h = TransportHeaders::strict([("as", "raw")]).unwrap();
                    wire.send(response(id, h, b"", b"pong")).await;
                }
                b"violate" => {
                    let head = CallHead::Res(ResHead {
                        code: ResponseCode::OK,
                        tracing: Tracing::default(),
                        headers: TransportHeaders::strict([("as", "raw")]).unwrap(),
                    });
                    let mut w = MessageWriter::new(id, head, ChecksumType::NONE, 65535).unwrap();
                    let mut out = BytesMut::new();
                    w.end_arg(&mut out).unwrap();
                    w.end_arg(&mut out).unwrap();
                    w.write(&mut out, b"part of arg3").unwrap();
                    w.flush(&mut out);
                    wire.send(out.freeze()).await;
                    let h = TransportHeaders::strict([("as", "raw")]).unwrap();
                    wire.send(response(id, h, b"", b"again")).await;
                }
                b"headers" => {
                    let n = id.to_string();
                    let h = TransportHeaders::strict([
                        ("as", format!("scheme-{n}").as_str()),
                        ("cn", n.as_str()),
                        ("x", n.as_str()),
                    ])
                    .unwrap();
                    wire.send(response(id, h, n.as_bytes(), b"")).await;
                }
                _ => {}
            }
        });
    })
    .await;
    (server, cancelled)
}

#[tokio::test]
async fn replies_held_on_a_connection_stay_within_its_budget() {
    // [CONN-23] 64 calls whose replies never end: the client holds at most
    // the budget, every one of them fails with bad request naming it, and
    // the connection goes on serving other calls. The client runs in a
    // process of its own (this test binary again, in client mode) so its
    // peak memory is its own, not the flooding server's or other tests'.
    if let Ok(addr) = std::env::var(CLIENT_MODE) {
        return flooded_client(addr.parse().unwrap()).await;
    }
    let server = hostile().await;
    let addr = server.addr.to_string();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "replies_held_on_a_connection_stay_within_its_budget",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CLIENT_MODE, addr);
    // The server runs on this runtime while the child calls it.
    let out = tokio::task::spawn_blocking(move || child.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the client failed");
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "the client did not run"
    );
}

const CLIENT_MODE: &str = "TCHAN_TEST_FLOODED_CLIENT";

/// The client side of [`replies_held_on_a_connection_stay_within_its_budget`].
async fn flooded_client(addr: std::net::SocketAddr) {
    let budget = 32 * MIB;
    let mut config = ChannelConfig::default();
    config
        .connection_mut()
        .set_max_response_bytes(budget)
        .set_send_cancel(true);
    let before = vm_hwm();
    let client = Channel::with_config("caller", config)
        .connect(addr)
        .await
        .unwrap();
    let calls = (0..64)
        .map(|_| client.call(CallRequest::new("svc", "flood").timeout(Duration::from_secs(60))));
    let results = futures::future::join_all(calls).await;
    let after = vm_hwm();
    for r in &results {
        let e = r
            .as_ref()
            .expect_err("a reply that never ends cannot succeed");
        assert_eq!(
            (e.code(), e.is_local()),
            (ErrorCode::BAD_REQUEST, true),
            "{e}"
        );
        assert!(e.message().contains("max_response_bytes"), "{e}");
    }
    println!(
        "client peak RSS before {} MiB, after {} MiB (budget {} MiB)",
        before / MIB,
        after / MIB,
        budget / MIB
    );
    assert!(
        after <= before + budget + 64 * MIB,
        "peak RSS grew by {} MiB for a budget of {} MiB",
        (after - before) / MIB,
        budget / MIB
    );
    let ok = client
        .call(CallRequest::new("svc", "echo").timeout(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(&ok.arg3[..], b"pong");
}

#[tokio::test]
async fn a_streamed_reply_counts_only_what_its_consumer_has_not_taken() {
    // [CONN-23] a consumer that keeps reading takes far more than the
    // budget from one streamed reply; one that stops reading gets the error
    // once the chunks it left pile up to the budget. [CANCEL-1] dropping the
    // reply's body gives up on the call: the server sees a cancel.
    use futures::StreamExt;
    let (server, cancelled) = hostile_counting().await;
    let mut config = ChannelConfig::default();
    config
        .connection_mut()
        .set_max_response_bytes(4 * MIB)
        .set_send_cancel(true);
    let client = Channel::with_config("caller", config)
        .connect(server.addr)
        .await
        .unwrap();
    let flood = || CallRequest::new("svc", "flood").timeout(Duration::from_secs(60));
    // A reply paced so that the reader keeps up (one at full speed can
    // outrun a reader on the same thread by more than the budget: then the
    // call fails, as the next part shows).
    let trickle = CallRequest::new("svc", "trickle").timeout(Duration::from_secs(60));
    let resp = client.call_streaming(trickle).await.unwrap();
    let mut body = resp.arg3.into_stream();
    let mut taken = 0u64;
    while taken < 40 * MIB {
        taken += body.next().await.unwrap().unwrap().len() as u64;
    }
    drop(body);
    cancelled.notified().await; // dropping the stream gave up on the call
    // A reader that takes one chunk and stops.
    let resp = client.call_streaming(flood()).await.unwrap();
    let mut body = resp.arg3.into_stream();
    assert!(!body.next().await.unwrap().unwrap().is_empty());
    // The call fails when the chunks left reach the budget (the client then
    // cancels it, which the server sees).
    tokio::time::timeout(Duration::from_secs(30), cancelled.notified())
        .await
        .expect("the unread reply reached the budget");
    let mut queued = 0u64;
    let e = loop {
        match body.next().await {
            Some(Ok(c)) => queued += c.len() as u64,
            Some(Err(e)) => break e,
            None => panic!("the reply ended"),
        }
    };
    assert_eq!(e.code(), ErrorCode::BAD_REQUEST, "{e}");
    assert!(queued <= 4 * MIB, "{queued} bytes were held for the reader");
    let ok = client
        .call(CallRequest::new("svc", "echo").timeout(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(&ok.arg3[..], b"pong");
}

#[tokio::test]
async fn a_protocol_violation_by_the_server_fails_every_call_with_a_protocol_error() {
    // [CONN-22] a second call res while the first is still arriving: tchan
    // closes the connection, and every call on it fails with 0xff and why.
    let server = hostile().await;
    let client = Channel::new("caller").connect(server.addr).await.unwrap();
    let hold = {
        let c = client.clone();
        tokio::spawn(async move {
            c.call(CallRequest::new("svc", "hold").timeout(Duration::from_secs(30)))
                .await
        })
    };
    // Let the held call reach the server first.
    let ok = client.call(CallRequest::new("svc", "echo")).await.unwrap();
    assert_eq!(&ok.arg3[..], b"pong");
    let e = client
        .call(CallRequest::new("svc", "violate").timeout(Duration::from_secs(30)))
        .await
        .unwrap_err();
    assert_eq!((e.code(), e.is_local()), (ErrorCode::PROTOCOL, true), "{e}");
    assert!(e.message().contains("unexpected call res"), "{e}");
    let held = hold.await.unwrap().unwrap_err();
    assert_eq!(held.code(), ErrorCode::PROTOCOL, "{held}");
    client.closed().await;
}

#[tokio::test]
async fn nothing_the_peer_sends_grows_a_cache_or_changes_our_headers() {
    // The headers we send come from our application only: a server that
    // answers every call with new `as`, `cn` and other headers changes
    // neither what we send next nor the size of any cache.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = RawServer::start(move |c, wire| {
        let headers: Vec<(Vec<u8>, Vec<u8>)> = c
            .headers
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        log.lock().unwrap().push(headers);
        let id = c.id;
        tokio::spawn(async move {
            let n = id.to_string();
            let h = TransportHeaders::strict([
                ("as", format!("scheme-{n}").as_str()),
                ("cn", n.as_str()),
                ("rd", n.as_str()),
            ])
            .unwrap();
            wire.send(response(id, h, n.as_bytes(), b"")).await;
        });
    })
    .await;
    let client = Channel::new("caller").connect(server.addr).await.unwrap();
    for _ in 0..300 {
        let r = client
            .call(CallRequest::new("svc", "m").arg3("x"))
            .await
            .unwrap();
        assert!(r.headers.get(b"as").unwrap().starts_with(b"scheme-"));
    }
    assert_eq!(client.cached_routes(), 1, "one route: ours");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 300);
    let want: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"cn".to_vec(), b"caller".to_vec()),
        (b"as".to_vec(), b"raw".to_vec()),
    ];
    assert!(seen.iter().all(|h| *h == want), "{:?}", &seen[..3]);
}

#[tokio::test]
async fn the_cli_exits_6_on_a_reply_over_budget_and_127_on_a_protocol_error() {
    let server = hostile().await;
    let addr = server.addr.to_string();
    let bin = env!("CARGO_BIN_EXE_tchan");
    let run = |m: &str| {
        let addr = addr.clone();
        let m = m.to_string();
        tokio::task::spawn_blocking(move || {
            Command::new(bin)
                .args(["call", &addr, "svc", &m, "--timeout", "30000"])
                .output()
                .unwrap()
        })
    };
    let flood = run("flood").await.unwrap();
    assert_eq!(
        flood.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&flood.stderr)
    );
    assert!(String::from_utf8_lossy(&flood.stderr).contains("max_response_bytes"));
    let bad = run("violate").await.unwrap();
    assert_eq!(
        bad.status.code(),
        Some(127),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
