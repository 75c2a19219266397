//! arg2 ending at, 1 byte before and 2 bytes before a 65535-byte frame's end.

use super::*;

/// tchan's request (cn, as; crc32c) with arg2 leaving r bytes in the first
/// frame: node must read tchan's layout, including FRAG-18's empty chunk.
// [FRAG-16] [FRAG-17] [FRAG-18] [FRAG-19]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn t2n_frame_boundary_tchan_request() {
    let node = NodeServer::start();
    let (addr, tap) = Tap::start(node.addr).await;
    let client = connect(addr).await;
    let over = req_overhead(
        "interop",
        &[("cn", CALLER), ("as", "raw")],
        ChecksumType::CRC32C,
        "echo",
    );
    for r in [0usize, 1, 2] {
        let a2 = pattern(MAX_FRAME - over - r, 3);
        let a3 = Bytes::from(format!("tail-after-{r}"));
        let resp = call(&client, raw("echo").arg2(a2.clone()).arg3(a3.clone()))
            .await
            .unwrap_or_else(|e| panic!("r={r}: {e:?}\nnode stderr: {}", node.stderr()));
        assert!(resp.is_ok() && resp.arg2 == a2 && resp.arg3 == a3, "r={r}");
    }
    // What tchan wrote: first frame sizes and chunk layout.
    let c2s = tap.conn(0).c2s();
    let reqs = call_reqs(&c2s, "echo");
    assert_eq!(reqs.len(), 3);
    // Per request: size of its first frame, and (flags, chunk lengths) of each frame.
    type Layout = (usize, Vec<(u8, Vec<usize>)>);
    let layout: Vec<Layout> = reqs
        .iter()
        .map(|req| {
            let msg = message(&c2s, req.id);
            (
                size(&msg[0]),
                msg.iter()
                    .map(|f| {
                        let (fl, _, ch) = call_parts(f);
                        (fl, ch)
                    })
                    .collect(),
            )
        })
        .collect();
    let a2 = MAX_FRAME - over;
    // r = 0: frame full, 0x01, next frame closes arg2 with an empty chunk.
    assert_eq!(
        layout[0],
        (MAX_FRAME, vec![(1, vec![4, a2]), (0, vec![0, 12])])
    );
    // r = 1: frame one byte short, same split.
    assert_eq!(
        layout[1],
        (MAX_FRAME - 1, vec![(1, vec![4, a2 - 1]), (0, vec![0, 12])])
    );
    // r = 2: an empty arg3 chunk fills the frame; arg3 continues.
    assert_eq!(
        layout[2],
        (MAX_FRAME, vec![(1, vec![4, a2 - 2, 0]), (0, vec![12])])
    );
}

/// node's response (as; crc32c) with arg2 leaving r bytes: with r = 0 or 1
/// node drops arg3 (DEV-1); tchan must fail the call, not hang or panic.
// [DEV-1] [FRAG-9] [CONN-21]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn t2n_frame_boundary_node_response() {
    let node = NodeServer::start();
    let (addr, tap) = Tap::start(node.addr).await;
    let over = res_overhead(&[("as", "raw")], ChecksumType::CRC32C);
    let mut outcomes = Vec::new();
    for r in [0usize, 1, 2] {
        let client = connect(addr).await;
        let a2 = pattern(MAX_FRAME - over - r, 4);
        let res = call(
            &client,
            raw("echo")
                .arg2(a2.clone())
                .arg3("tail")
                .timeout(Duration::from_secs(3)),
        )
        .await;
        match r {
            0 | 1 => {
                let e = res.expect_err("node's two-arg response must fail the call");
                assert!(
                    e.code() == ErrorCode::PROTOCOL || e.code() == ErrorCode::NETWORK,
                    "r={r}: {e:?}"
                );
                assert!(
                    eventually(Duration::from_secs(2), || client.is_closed()).await,
                    "r={r}: the connection must be closed"
                );
                observe(
                    "t2n_frame_boundary_node_response",
                    format!("r={r}: call failed {e:?}"),
                );
                outcomes.push(e);
            }
            _ => {
                let resp = res.unwrap_or_else(|e| panic!("r=2: {e:?}"));
                assert!(resp.arg2 == a2 && &resp.arg3[..] == b"tail");
            }
        }
    }
    // On the wire: node's call res with two args and flags 0x00 (r = 0, 1),
    // then tchan's fatal error frame for that id; r = 2 a normal response.
    for (i, r) in [0usize, 1].into_iter().enumerate() {
        let conn = tap.conn(i);
        let s2c = conn.s2c();
        let res = s2c
            .iter()
            .find(|f| matches!(f, Frame::CallRes(_)))
            .expect("node's call res");
        let (flags, _, chunks) = call_parts(res);
        assert_eq!(
            (flags, chunks),
            (0, vec![0, MAX_FRAME - over - r]),
            "r={r}: node's broken layout (DEV-1)"
        );
        let errs = error_frames(&conn.c2s());
        assert!(
            errs.iter()
                .any(|e| e.code == ErrorCode::PROTOCOL && e.id == res.id()),
            "r={r}: tchan should send a protocol error for the message (FRAG-9); got {errs:?}; \
             call failed with {:?}",
            outcomes[i]
        );
    }
    // The node server is still fine.
    let client = connect(node.addr).await;
    assert!(call(&client, raw("echo")).await.unwrap().is_ok());
}

/// node's request (cn, as, re; crc32c) with arg2 leaving r bytes: with r = 0
/// or 1 node drops arg3 and tchan answers with a protocol error and closes.
// [DEV-1] [FRAG-9] [ERR-5] [FRAG-14]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn n2t_frame_boundary_node_request() {
    let srv = default_tchan_server().await;
    let (addr, tap) = Tap::start(srv.addr).await;
    let over = req_overhead(
        "interop",
        &[("cn", NODE_CALLER), ("as", "raw"), ("re", "c")],
        ChecksumType::CRC32C,
        "echo",
    );
    // One node process (so one connection) per case: node takes an error
    // 0xff with a call id as that call's failure only, and would send the
    // next call on the connection tchan is closing.
    let mut runs = Vec::new();
    for r in [0usize, 1, 2] {
        // direct: no retry wrapper (through the tap node would retry the
        // protocol error on the connection tchan is closing).
        let call = json!({"id": "call", "method": "echo", "timeout": 3000, "direct": true,
                          "arg2": {"pattern": MAX_FRAME - over - r, "seed": 5},
                          "arg3": format!("tail-after-{r}")});
        runs.push(run_client(addr, json!({"calls": [call]}), CLIENT_LIMIT).await);
    }
    let after = json!({"calls": [{"id": "call", "method": "echo", "arg3": "still here"}]});
    run_client(addr, after, CLIENT_LIMIT)
        .await
        .assert_echoed("call");
    runs[2].assert_echoed("call");
    assert_eq!(
        srv.seen.count("echo"),
        2,
        "only r=2 and the last call reach the handler"
    );
    // On the wire: node's two-arg call req, tchan's 0xff error with its id.
    for r in [0usize, 1] {
        let conn = tap.conn(r);
        let c2s = conn.c2s();
        let req = call_reqs(&c2s, "echo")[0];
        let (flags, _, chunks) = call_parts(&Frame::CallReq(req.clone()));
        assert_eq!(
            (flags, chunks),
            (0, vec![4, MAX_FRAME - over - r]),
            "r={r}: node's broken layout (DEV-1)"
        );
        let errs = error_frames(&conn.s2c());
        assert!(
            errs.iter()
                .any(|e| e.code == ErrorCode::PROTOCOL && e.id == req.id),
            "r={r}: expected error 0xff for id {}: {errs:?}",
            req.id
        );
        observe(
            "n2t_frame_boundary_node_request",
            format!(
                "r={r}: tchan sent {errs:?}; node got {}",
                runs[r].get("call")["err"]
            ),
        );
        assert_eq!(
            runs[r].err_code("call"),
            "ProtocolError",
            "node reports tchan's error frame"
        );
    }
    assert_eq!(tap.conns().len(), 4);
    assert!(
        eventually(Duration::from_secs(3), || srv.channel.active_connections()
            == 0)
        .await,
        "tchan closed the broken connections"
    );
}

/// tchan's response (as; crc32c) with arg2 leaving r bytes: node must read
/// tchan's layout (FRAG-18's empty chunk opens the continue frame).
// [FRAG-16] [FRAG-17] [FRAG-18]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn n2t_frame_boundary_tchan_response() {
    let srv = default_tchan_server().await;
    let (addr, tap) = Tap::start(srv.addr).await;
    let over = res_overhead(&[("as", "raw")], ChecksumType::CRC32C);
    let calls: Vec<Value> = [0usize, 1, 2]
        .iter()
        .map(|r| {
            json!({"id": format!("r{r}"), "method": "echo",
                   "arg2": {"pattern": MAX_FRAME - over - r, "seed": 6},
                   "arg3": format!("tail-after-{r}")})
        })
        .collect();
    let run = run_client(addr, json!({"calls": calls}), CLIENT_LIMIT).await;
    for r in ["r0", "r1", "r2"] {
        run.assert_echoed(r);
    }
    let s2c = tap.conn(0).s2c();
    let firsts: Vec<(usize, u8, Vec<usize>)> = s2c
        .iter()
        .filter(|f| matches!(f, Frame::CallRes(_)))
        .map(|f| {
            let (fl, _, ch) = call_parts(f);
            (size(f), fl, ch)
        })
        .collect();
    let a2 = MAX_FRAME - over;
    assert_eq!(
        firsts,
        vec![
            (MAX_FRAME, 1, vec![0, a2]),
            (MAX_FRAME - 1, 1, vec![0, a2 - 1]),
            (MAX_FRAME, 1, vec![0, a2 - 2, 0]),
        ]
    );
}
