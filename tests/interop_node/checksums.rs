//! Checksums.

use super::*;

pub(crate) const CHECKSUMS: [ChecksumType; 4] = [
    ChecksumType::NONE,
    ChecksumType::CRC32,
    ChecksumType::FARMHASH32,
    ChecksumType::CRC32C,
];

/// tchan sends each type; node verifies it and answers with the same type.
// [CSUM-2] [CSUM-8] [CSUM-9] [CSUM-10] [CSUM-13] [CSUM-14]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn t2n_checksums() {
    let node = NodeServer::start();
    let (addr, tap) = Tap::start(node.addr).await;
    let client = connect(addr).await;
    for ty in CHECKSUMS {
        for n in [13usize, 200 * KIB] {
            let (a2, a3) = (pattern(n / 2, 7), pattern(n, 8));
            let r = call(
                &client,
                raw("echo").arg2(a2.clone()).arg3(a3.clone()).checksum(ty),
            )
            .await
            .unwrap_or_else(|e| panic!("{ty}, {n} B: {e:?}\nnode: {}", node.stderr()));
            assert!(r.arg2 == a2 && r.arg3 == a3, "{ty}, {n} B");
        }
    }
    let seen: Vec<u64> = node
        .requests_for("echo", 8)
        .await
        .iter()
        .map(|r| r["checksumType"].as_u64().unwrap())
        .collect();
    assert_eq!(seen, vec![0, 0, 1, 1, 2, 2, 3, 3], "types node read");
    // Every frame of each response carries the request's type.
    let conn = tap.conn(0);
    let (c2s, s2c) = (conn.c2s(), conn.s2c());
    for req in call_reqs(&c2s, "echo") {
        let sent = req.checksum.ty;
        let res = message(&s2c, req.id);
        assert!(!res.is_empty());
        for f in &res {
            assert_eq!(call_parts(f).1, sent, "node's response type");
        }
    }
}

/// node sends each type (channel requestDefaults); tchan verifies and mirrors.
// [CSUM-8] [CSUM-9] [CSUM-10] [CSUM-12] [DEV-2] [DEV-3]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn n2t_checksums() {
    let srv = default_tchan_server().await;
    for ty in CHECKSUMS {
        let (addr, tap) = Tap::start(srv.addr).await;
        let mut plan = json!({"calls": [
            {"id": "small", "method": "echo", "arg2": "csum-arg2", "arg3": "checksum"},
            {"id": "200KiB", "method": "echo", "arg2": {"pattern": 100 * KIB, "seed": 9},
             "arg3": {"pattern": 200 * KIB, "seed": 10}},
        ]});
        if ty == ChecksumType::CRC32C {
            // No channel default: a per-request 0 falls back to crc32c (DEV-3).
            plan["calls"].as_array_mut().unwrap().push(
                json!({"id": "per_request_0", "method": "echo", "checksumType": 0,
                             "arg3": "asked for none"}),
            );
        } else {
            plan["checksumType"] = json!(ty.0);
        }
        let run = run_client(addr, plan, CLIENT_LIMIT).await;
        run.assert_echoed("small");
        run.assert_echoed("200KiB");
        let conn = tap.conn(0);
        let (c2s, s2c) = (conn.c2s(), conn.s2c());
        let reqs = call_reqs(&c2s, "echo");
        for req in &reqs {
            for f in message(&c2s, req.id) {
                assert_eq!(call_parts(&f).1, ty, "node's request type ({ty})");
            }
            let res = message(&s2c, req.id);
            assert!(!res.is_empty(), "{ty}: a response");
            for f in &res {
                assert_eq!(call_parts(f).1, ty, "tchan mirrors the type (CSUM-12)");
            }
        }
        if ty == ChecksumType::CRC32C {
            run.assert_echoed("per_request_0");
            assert_eq!(reqs.len(), 3);
        }
    }
}
