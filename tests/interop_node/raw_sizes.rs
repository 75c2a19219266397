//! Raw echo sizes.

use super::*;

pub(crate) const SIZES: [(&str, usize); 4] = [
    ("0B", 0),
    ("1B", 1),
    ("200KiB", 200 * KIB),
    ("5MiB", 5 * MIB),
];

// [SCHEME-2] [FRAG-15] [FRAG-16] [FRAG-19]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn t2n_raw_echo_sizes() {
    let node = NodeServer::start();
    let client = connect(node.addr).await;
    for (name, n) in SIZES {
        let (a2, a3) = (pattern(n, 1), pattern(n, 2));
        let r = call(
            &client,
            raw("echo")
                .arg2(a2.clone())
                .arg3(a3.clone())
                .timeout(Duration::from_secs(20)),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e:?}\nnode stderr: {}", node.stderr()));
        assert!(r.is_ok(), "{name}");
        assert!(r.arg2 == a2, "{name}: arg2 differs");
        assert!(r.arg3 == a3, "{name}: arg3 differs");
    }
    let seen = node.requests_for("echo", 4).await;
    let lens: Vec<_> = seen
        .iter()
        .map(|r| r["arg3_len"].as_u64().unwrap())
        .collect();
    assert_eq!(lens, vec![0, 1, 200 * 1024, 5 * 1024 * 1024]);
}

// [SCHEME-2] [FRAG-14]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn n2t_raw_echo_sizes() {
    let srv = default_tchan_server().await;
    let calls: Vec<Value> = SIZES
        .iter()
        .map(|(name, n)| {
            json!({"id": name, "method": "echo", "timeout": 20000,
                   "arg2": {"pattern": n, "seed": 1}, "arg3": {"pattern": n, "seed": 2}})
        })
        .collect();
    let run = run_client(srv.addr, json!({"calls": calls}), CLIENT_LIMIT).await;
    for (name, _) in SIZES {
        run.assert_echoed(name);
    }
    assert_eq!(run.get("5MiB")["arg3"]["len"], 5 * MIB);
    assert_eq!(srv.seen.count("echo"), 4);
}
