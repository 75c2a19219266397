//! Tracing, transport headers.

use super::*;

// [TRACE-1] [TRACE-3] [TRACE-5] [TRACE-6]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn t2n_tracing() {
    let node = NodeServer::start();
    let client = connect(node.addr).await;
    let mut req = raw("info");
    req.options.set_tracing(FIXED);
    let r = call(&client, req).await.unwrap();
    assert_eq!(
        r.tracing, FIXED,
        "node's call res carries the request's tracing"
    );
    let seen: Value = serde_json::from_slice(&r.arg3).unwrap();
    assert_eq!(seen["tracing"], tracing_json(&FIXED));

    // tchan's default for a new call: span = trace, parent 0, not sampled.
    let r = call(&client, raw("info")).await.unwrap();
    let seen: Value = serde_json::from_slice(&r.arg3).unwrap();
    assert_eq!(seen["tracing"], tracing_json(&r.tracing));
    assert_eq!(r.tracing.span_id, r.tracing.trace_id);
    assert_ne!(r.tracing.trace_id, 0);
    assert_eq!((r.tracing.parent_id, r.tracing.flags), (0, 0));
}

// [TRACE-4] [TRACE-5]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn n2t_tracing() {
    let srv = default_tchan_server().await;
    let (addr, tap) = Tap::start(srv.addr).await;
    let plan = json!({"traceSample": 1, "calls": [
        {"id": "fixed", "method": "info", "tracing": tracing_json(&FIXED)},
        {"id": "default", "method": "info", "trace": false},
        {"id": "sampled", "method": "info", "trace": true},
    ]});
    let run = run_client(addr, plan, CLIENT_LIMIT).await;
    let seen = |id: &str| -> Value {
        let r = run.get(id);
        assert_eq!(r["ok"], true, "{r}");
        serde_json::from_str(r["arg3"]["text"].as_str().unwrap()).unwrap()
    };
    assert_eq!(seen("fixed")["tracing"], tracing_json(&FIXED));
    let d = seen("default")["tracing"].clone();
    assert_eq!(d["span"], d["trace"], "{d}");
    assert_eq!(
        (d["parent"].clone(), d["flags"].clone()),
        (json!("0000000000000000"), json!(0))
    );
    let t = seen("sampled")["tracing"].clone();
    assert_eq!(t["flags"], 1, "{t}");
    // tchan's responses carry each request's 25 bytes unchanged.
    let conn = tap.conn(0);
    let s2c = conn.s2c();
    for req in call_reqs(&conn.c2s(), "info") {
        let res = message(&s2c, req.id);
        match &res[0] {
            Frame::CallRes(c) => assert_eq!(c.tracing, req.tracing),
            other => panic!("{other:?}"),
        }
    }
}

// [HDR-10] [HDR-12] [HDR-13] [HDR-15]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn t2n_transport_headers() {
    let node = NodeServer::start();
    let (addr, tap) = Tap::start(node.addr).await;
    let client = connect(addr).await;
    let mut req = raw("info").header("x-lab", "custom-value");
    req.options.set_retry_flags("ct");
    req.options.set_routing_delegate("interop-rd");
    req.options.set_shard_key("shard-7");
    let r = call(&client, req).await.unwrap();
    let seen: Value = serde_json::from_slice(&r.arg3).unwrap();
    assert_eq!(
        seen["headers"],
        json!({"cn": CALLER, "as": "raw", "re": "ct", "rd": "interop-rd",
               "sk": "shard-7", "x-lab": "custom-value"})
    );
    // node's response carries `as` only.
    let keys: Vec<Vec<u8>> = r.headers.iter().map(|(k, _)| k.to_vec()).collect();
    assert_eq!(keys, vec![b"as".to_vec()]);
    assert_eq!(r.headers.get(b"as"), Some(&b"raw"[..]));
    // Without retry flags tchan sends no `re` (HDR-15).
    let _ = call(&client, raw("info")).await.unwrap();
    let c2s = tap.conn(0).c2s();
    let plain = call_reqs(&c2s, "info")[1];
    assert_eq!(plain.headers.get(b"re"), None);
    assert_eq!(
        node.requests_for("info", 2).await[1]["headers"],
        json!({"cn": CALLER, "as": "raw"})
    );
}

// [HDR-11] [HDR-12] [HDR-13] [HDR-14]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn n2t_transport_headers() {
    let srv = default_tchan_server().await;
    let plan = json!({"calls": [
        {"id": "full", "method": "info",
         "retryFlags": {"onConnectionError": true, "onTimeout": true},
         "headers": {"rd": "interop-rd", "sk": "shard-7", "se": "2", "fd": "fd-west",
                     "x-lab": "custom-value"}},
        {"id": "never", "method": "info", "retryFlags": {"never": true}},
    ]});
    let run = run_client(srv.addr, plan, CLIENT_LIMIT).await;
    let seen = |id: &str| -> Value {
        let r = run.get(id);
        assert_eq!(r["ok"], true, "{r}");
        serde_json::from_str(r["arg3"]["text"].as_str().unwrap()).unwrap()
    };
    let full = seen("full");
    assert_eq!(
        full["headers"],
        json!({"cn": NODE_CALLER, "as": "raw", "re": "ct", "rd": "interop-rd", "sk": "shard-7",
               "se": "2", "fd": "fd-west", "x-lab": "custom-value"}),
        "{full}"
    );
    assert_eq!(seen("never")["headers"]["re"], "n");
    // tchan's response headers: `as` only.
    assert_eq!(run.get("full")["headers"], json!({"as": "raw"}));
}

/// The helpers themselves (runs without node).
#[test]
pub(crate) fn helpers() {
    assert_eq!(pattern(3, 250).to_vec(), vec![250, 251, 252]);
    assert_eq!(
        t_decode(&t_encode(&[(1, s("a")), (2, TVal::I32(-1))])),
        vec![(1, s("a")), (2, TVal::I32(-1))]
    );
    // tchan's request overhead for `echo` to `interop` as tchan-interop.
    assert_eq!(
        req_overhead(
            "interop",
            &[("cn", CALLER), ("as", "raw")],
            ChecksumType::CRC32C,
            "echo"
        ),
        92
    );
}
