//! Errors.

use super::*;

// [CALL-6]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn t2n_application_error() {
    let node = NodeServer::start();
    let client = connect(node.addr).await;
    let r = call(&client, raw("fail").arg2("why").arg3("details"))
        .await
        .unwrap();
    assert!(r.is_application_error());
    assert_eq!(r.code.0, 1);
    assert_eq!((&r.arg2[..], &r.arg3[..]), (&b"why"[..], &b"details"[..]));
}

// [CALL-6]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn n2t_application_error() {
    let srv = default_tchan_server().await;
    let plan = json!({"calls": [
        {"id": "fail", "method": "fail", "arg2": "why", "arg3": "details"},
    ]});
    let run = run_client(srv.addr, plan, CLIENT_LIMIT).await;
    let r = run.get("fail");
    assert_eq!(
        (r["ok"].clone(), r["code"].clone()),
        (json!(false), json!(1)),
        "{r}"
    );
    assert_eq!(r["arg2"]["text"], "why");
    assert_eq!(r["arg3"]["text"], "details");
}

// [ERR-4] [ERR-7] [SCHEME-14]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn t2n_unknown_service_and_method() {
    let node = NodeServer::start();
    let client = connect(node.addr).await;
    let e = call(&client, CallRequest::new("no-such-service", "echo"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.is_local()),
        (ErrorCode::BAD_REQUEST, false),
        "{e:?}"
    );
    observe("t2n_unknown_service_and_method", format!("{e:?}"));
    let e = call(&client, raw("no-such-method")).await.unwrap_err();
    assert_eq!(
        (e.code(), e.is_local()),
        (ErrorCode::BAD_REQUEST, false),
        "{e:?}"
    );
    observe("t2n_unknown_service_and_method", format!("{e:?}"));
    let e = sthrift::call(
        &client,
        "interop-thrift",
        "Echo::nope",
        &[],
        thrift_args("x", 1),
        tchan::CallOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BAD_REQUEST, "{e:?}");
    // The connection is still usable.
    assert!(call(&client, raw("echo")).await.unwrap().is_ok());
}

// [ERR-4] [ERR-7] [SCHEME-14]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn n2t_unknown_service_and_method() {
    let srv = default_tchan_server().await;
    let plan = json!({"calls": [
        {"id": "service", "service": "no-such-service", "method": "echo"},
        {"id": "method", "method": "no-such-method"},
        {"id": "thrift_method", "kind": "thrift", "method": "Echo::echo",
         "service": "interop", "body": {"value": "x", "count": 1}},
        {"id": "after", "method": "echo", "arg3": "ok"},
    ]});
    let run = run_client(srv.addr, plan, CLIENT_LIMIT).await;
    assert_eq!(run.err_code("service"), "BadRequest");
    assert_eq!(run.err_code("method"), "BadRequest");
    assert_eq!(run.err_code("thrift_method"), "BadRequest");
    for id in ["service", "method", "thrift_method"] {
        observe("n2t_unknown_service_and_method", run.get(id));
    }
    run.assert_echoed("after");
}

/// tchan's deadline runs out while node's handler sleeps; node also sends
/// its own timeout error once the ttl passes, which tchan drops quietly.
// [TTL-1] [TTL-8] [CONN-17]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn t2n_timeout() {
    let node = NodeServer::start();
    let (addr, tap) = Tap::start(node.addr).await;
    let client = connect(addr).await;
    let start = Instant::now();
    let e = call(
        &client,
        raw("sleep").arg3("400").timeout(Duration::from_millis(150)),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::TIMEOUT, "{e:?}");
    assert!(
        start.elapsed() < Duration::from_millis(390),
        "{:?}",
        start.elapsed()
    );
    observe("t2n_timeout", format!("{e:?} after {:?}", start.elapsed()));
    let ttl = node.requests_for("sleep", 1).await[0]["ttl"]
        .as_u64()
        .unwrap();
    assert!((100..=150).contains(&ttl), "ttl {ttl}");
    // Wait past the handler's end: the connection is still fine.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        call(&client, raw("echo").arg3("after"))
            .await
            .unwrap()
            .is_ok()
    );
    let s2c = tap.conn(0).s2c();
    let errs = error_frames(&s2c);
    assert!(
        errs.iter().any(|e| e.code == ErrorCode::TIMEOUT),
        "node sends error 0x01 at the ttl: {errs:?}"
    );
    observe("t2n_timeout", format!("node's frames: {errs:?}"));
}

// [TTL-5] [TTL-6] [ERR-7]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn n2t_timeout() {
    let srv = default_tchan_server().await;
    let (addr, tap) = Tap::start(srv.addr).await;
    let plan = json!({"calls": [
        {"id": "slow", "method": "sleep", "arg3": "500", "timeout": 150, "direct": true},
        {"id": "after", "method": "echo", "arg3": "x", "at": 500, "direct": true},
    ]});
    let run = run_client(addr, plan, CLIENT_LIMIT).await;
    let r = run.get("slow");
    assert!(
        r["err"]["codeName"] == "Timeout" || r["err"]["type"] == "tchannel.request.timeout",
        "{r}"
    );
    run.assert_echoed("after");
    let conn = tap.conn(0);
    let id = call_reqs(&conn.c2s(), "sleep")[0].id;
    let errs = error_frames(&conn.s2c());
    assert!(
        errs.iter()
            .any(|e| e.id == id && e.code == ErrorCode::TIMEOUT),
        "tchan answers error 0x01 at the deadline (TTL-6): {errs:?}"
    );
    observe(
        "n2t_timeout",
        format!("node got {}; tchan sent {errs:?}", r["err"]),
    );
    observe("n2t_timeout", format!("node's log: {}", run.stderr));
}

/// Busy, declined and unexpected error frames from node's handlers and from
/// node's `isBusy` hook.
// [ERR-4] [ERR-6]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn t2n_busy_declined_unexpected() {
    let node = NodeServer::start();
    let client = connect(node.addr).await;
    for (req, code) in [
        (raw("busy"), ErrorCode::BUSY),
        (CallRequest::new("interop-busy", "echo"), ErrorCode::BUSY),
        (raw("declined"), ErrorCode::DECLINED),
        (raw("unexpected"), ErrorCode::UNEXPECTED),
    ] {
        let what = format!("{:?}::{:?}", req.service, req.method);
        let e = call(&client, req).await.unwrap_err();
        assert_eq!((e.code(), e.is_local()), (code, false), "{what}: {e:?}");
        observe("t2n_busy_declined_unexpected", format!("{what}: {e:?}"));
    }
    // tchan does not retry on its own: each reached node once.
    assert_eq!(node.requests_for("busy", 1).await.len(), 1);
    assert_eq!(node.requests_for("unexpected", 1).await.len(), 1);
}

/// tchan's handlers answer busy/declined/unexpected, and tchan's own limit
/// answers busy. node's client retries busy and unexpected by itself, but
/// only on a peer it has not tried: through the tap (whose address differs
/// from the host_port tchan announces) it retries 5 more times.
// [ERR-7] (node's retries: DEV-19)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn n2t_busy_declined_unexpected() {
    let srv = default_tchan_server().await;
    let plan = json!({"calls": [
        {"id": "busy", "method": "busy"},
        {"id": "declined", "method": "declined"},
        {"id": "unexpected", "method": "unexpected"},
    ]});
    let run = run_client(srv.addr, plan.clone(), CLIENT_LIMIT).await;
    assert_eq!(run.err_code("busy"), "Busy");
    assert_eq!(run.err_code("declined"), "Declined");
    assert_eq!(run.err_code("unexpected"), "UnexpectedError");
    let direct = [
        srv.seen.count("busy"),
        srv.seen.count("declined"),
        srv.seen.count("unexpected"),
    ];
    assert_eq!(
        direct,
        [1, 1, 1],
        "no retry when the peer is its own host_port"
    );

    let (addr, _tap) = Tap::start(srv.addr).await;
    let run = run_client(addr, plan, CLIENT_LIMIT).await;
    assert_eq!(run.err_code("busy"), "Busy");
    assert_eq!(run.err_code("unexpected"), "UnexpectedError");
    let tapped = [
        srv.seen.count("busy") - 1,
        srv.seen.count("declined") - 1,
        srv.seen.count("unexpected") - 1,
    ];
    assert_eq!(
        tapped,
        [6, 6, 6],
        "node retries 5 more times through the tap"
    );
    observe(
        "n2t_busy_declined_unexpected",
        format!("direct {direct:?}, through the tap {tapped:?}"),
    );

    // retryLimit 0 is "not set" (node's default, 5); 1 allows one retry.
    let before = srv.seen.count("busy");
    let plan = json!({"calls": [
        {"id": "limit0", "method": "busy", "retryLimit": 0},
        {"id": "limit1", "method": "busy", "retryLimit": 1},
    ]});
    let run = run_client(addr, plan, CLIENT_LIMIT).await;
    assert_eq!(run.err_code("limit0"), "Busy");
    assert_eq!(run.err_code("limit1"), "Busy");
    assert_eq!(
        srv.seen.count("busy") - before,
        6 + 2,
        "retryLimit 0 -> 6 tries, 1 -> 2"
    );

    // tchan's own limit: one inbound call at a time.
    let mut config = ChannelConfig::default();
    config.connection_mut().set_max_inbound_calls(1);
    let small = tchan_server(config).await;
    let plan = json!({"parallel": true, "calls": [
        {"id": "slow", "method": "sleep", "arg3": "600", "direct": true},
        {"id": "over", "method": "echo", "at": 200, "direct": true},
    ]});
    let run = run_client(small.addr, plan, CLIENT_LIMIT).await;
    assert_eq!(run.get("slow")["ok"], true, "{}", run.get("slow"));
    assert_eq!(run.err_code("over"), "Busy");
    assert_eq!(small.seen.count("echo"), 0);
}
