//! Metrics named after TChannel's conventions, per service, method and peer.
//! In its own binary: it installs a global recorder.

use std::time::Duration;

use bytes::Bytes;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tchan::frame::ErrorCode;
use tchan::{CallRequest, Channel, Request, Response};

#[tokio::test]
async fn calls_are_counted_and_timed_on_both_sides() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let srv = Channel::new("server");
    srv.register("svc", "echo", |req: Request| async move {
        Ok(Response::ok(Bytes::new(), req.arg3.into_bytes().await?))
    });
    srv.register("svc", "fail", |_req: Request| async move {
        Ok(Response::app_error(Bytes::new(), "no"))
    });
    srv.register("svc", "busy", |_req: Request| async move {
        Err(tchan::Error::new(ErrorCode::BUSY, "full"))
    });
    let addr = srv.listen("127.0.0.1:0").await.unwrap();
    let client = Channel::new("client").connect(addr).await.unwrap();
    for _ in 0..3 {
        client.call(CallRequest::new("svc", "echo")).await.unwrap();
    }
    let r = client.call(CallRequest::new("svc", "fail")).await.unwrap();
    assert!(r.is_application_error());
    let e = client
        .call(CallRequest::new("svc", "busy"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BUSY);
    tokio::time::sleep(Duration::from_millis(20)).await;

    let snap = snapshotter.snapshot().into_vec();
    let count = |name: &str, method: &str| -> u64 {
        snap.iter()
            .filter(|(k, _, _, _)| {
                k.key().name() == name
                    && k.key()
                        .labels()
                        .any(|l| l.key() == "method" && l.value() == method)
                    && k.key()
                        .labels()
                        .any(|l| l.key() == "service" && l.value() == "svc")
            })
            .map(|(_, _, _, v)| match v {
                DebugValue::Counter(n) => *n,
                DebugValue::Histogram(h) => h.len() as u64,
                _ => 0,
            })
            .sum()
    };
    assert_eq!(count("outbound.calls.send", "echo"), 3);
    assert_eq!(count("outbound.calls.success", "echo"), 3);
    assert_eq!(count("inbound.calls.recvd", "echo"), 3);
    assert_eq!(count("inbound.calls.success", "echo"), 3);
    assert_eq!(count("outbound.calls.latency", "echo"), 3);
    assert_eq!(count("inbound.calls.latency", "echo"), 3);
    assert_eq!(count("outbound.calls.app-errors", "fail"), 1);
    assert_eq!(count("inbound.calls.app-errors", "fail"), 1);
    assert_eq!(count("outbound.calls.system-errors", "busy"), 1);
    assert_eq!(count("inbound.calls.system-errors", "busy"), 1);
    let peer_labelled = snap.iter().any(|(k, _, _, _)| {
        k.key().name() == "outbound.calls.send"
            && k.key()
                .labels()
                .any(|l| l.key() == "peer" && l.value() == addr.to_string())
    });
    assert!(peer_labelled, "outbound metrics carry the peer");
}
