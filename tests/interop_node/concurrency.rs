//! Concurrency, ping.

use super::*;

// [CONN-13] [ID-1] [ID-3]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn t2n_concurrent_100() {
    let node = NodeServer::start();
    let (addr, tap) = Tap::start(node.addr).await;
    let client = connect(addr).await;
    let calls = (0..100usize).map(|i| {
        let client = client.clone();
        async move {
            let n = if i % 10 == 0 { 100 * KIB + i } else { i * 7 };
            let a3 = pattern(n, i as u8);
            let r = call(
                &client,
                raw("echo")
                    .arg2(format!("call-{i}"))
                    .arg3(a3.clone())
                    .timeout(Duration::from_secs(15)),
            )
            .await
            .unwrap_or_else(|e| panic!("call {i}: {e:?}"));
            assert!(
                r.arg3 == a3 && r.arg2 == format!("call-{i}").into_bytes(),
                "call {i}"
            );
        }
    });
    futures::future::join_all(calls).await;
    assert_eq!(node.requests_for("echo", 100).await.len(), 100);
    assert_eq!(tap.conns().len(), 1, "one connection");
    // 100 distinct ids on the one connection (ID-3).
    let ids: std::collections::BTreeSet<u32> = call_reqs(&tap.conn(0).c2s(), "echo")
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids.len(), 100);
}

// [CONN-13] [ID-5]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn n2t_concurrent_100() {
    let srv = default_tchan_server().await;
    let (addr, tap) = Tap::start(srv.addr).await;
    let calls: Vec<Value> = (0..100usize)
        .map(|i| {
            let n = if i % 10 == 0 { 100 * KIB + i } else { i * 7 };
            json!({"id": format!("c{i}"), "method": "echo", "timeout": 15000,
                   "arg2": format!("call-{i}"), "arg3": {"pattern": n, "seed": i}})
        })
        .collect();
    let run = run_client(
        addr,
        json!({"parallel": true, "calls": calls}),
        CLIENT_LIMIT,
    )
    .await;
    for i in 0..100 {
        run.assert_echoed(&format!("c{i}"));
    }
    assert_eq!(run.summary["connections"], 1, "{}", run.summary);
    assert_eq!(tap.conns().len(), 1, "one connection");
    assert_eq!(srv.seen.count("echo"), 100);
}

// [CONN-15]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn t2n_ping() {
    let node = NodeServer::start();
    let (addr, tap) = Tap::start(node.addr).await;
    let client = connect(addr).await;
    for _ in 0..3 {
        client.ping(Duration::from_secs(2)).await.unwrap();
    }
    let conn = tap.conn(0);
    let reqs: Vec<u32> = ping_ids(&conn.c2s(), true);
    let ress: Vec<u32> = ping_ids(&conn.s2c(), false);
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs, ress, "node answers each ping with its id");
}

// [CONN-15]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn n2t_ping() {
    let srv = default_tchan_server().await;
    let (addr, tap) = Tap::start(srv.addr).await;
    let plan = json!({"calls": [
        {"id": "ping1", "kind": "ping"},
        {"id": "ping2", "kind": "ping"},
    ]});
    let run = run_client(addr, plan, CLIENT_LIMIT).await;
    assert_eq!(run.get("ping1")["pong"], true, "{}", run.get("ping1"));
    assert_eq!(run.get("ping2")["pong"], true, "{}", run.get("ping2"));
    let conn = tap.conn(0);
    let reqs: Vec<u32> = ping_ids(&conn.c2s(), true);
    let ress: Vec<u32> = ping_ids(&conn.s2c(), false);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs, ress);
}
