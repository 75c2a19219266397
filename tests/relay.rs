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
