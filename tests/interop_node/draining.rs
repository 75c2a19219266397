//! Draining.

use super::*;

/// node drains: it sends error 0x04 with id 0xffffffff; tchan starts no new
/// calls on that connection, and the call in flight completes.
// [CONN-16] [DEV-21] [TRACE-8]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn t2n_node_drain() {
    let node = NodeServer::start();
    let (addr, tap) = Tap::start(node.addr).await;
    let client = connect(addr).await;
    let slow = {
        let client = client.clone();
        tokio::spawn(async move { call(&client, raw("sleep").arg3("500")).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        call(&client, raw("drain").arg3("now"))
            .await
            .unwrap()
            .is_ok()
    );
    assert!(
        eventually(Duration::from_secs(2), || !client.accepts_new_calls()).await,
        "tchan should stop starting calls after node's 0xffffffff declined"
    );
    let e = call(&client, raw("echo")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::DECLINED, "{e:?}");
    observe("t2n_node_drain", format!("call after the notice: {e:?}"));
    let r = slow.await.unwrap().expect("the call in flight completes");
    assert!(r.is_ok());
    let errs = error_frames(&tap.conn(0).s2c());
    let e = errs
        .iter()
        .find(|e| e.id == NO_MESSAGE_ID)
        .unwrap_or_else(|| panic!("no 0xffffffff error frame from node: {errs:?}"));
    assert_eq!(e.code, ErrorCode::DECLINED);
    assert_eq!(&e.message[..], b"draining: interop drain");
    assert_eq!(e.tracing, Tracing::default());

    // A new connection to the draining node: it announces the drain right
    // after the handshake, and a call on it is declined one way or the other.
    let (addr2, tap2) = Tap::start(node.addr).await;
    let client2 = connect(addr2).await;
    let e = call(&client2, raw("echo")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::DECLINED, "{e:?}");
    observe("t2n_node_drain", format!("call on a new connection: {e:?}"));
    let errs = error_frames(&tap2.conn(0).s2c());
    assert!(errs.iter().any(|e| e.id == NO_MESSAGE_ID), "{errs:?}");
}

/// tchan drains while node's client has a call in flight and sends another.
// [CONN-19] [TRACE-8] [DEV-21]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn n2t_tchan_drain() {
    let srv = default_tchan_server().await;
    let (addr, tap) = Tap::start(srv.addr).await;
    let plan = json!({"parallel": true, "calls": [
        {"id": "slow", "method": "sleep", "arg3": "1000", "direct": true},
        {"id": "drain", "method": "drain_soon", "at": 100, "direct": true},
        {"id": "late", "method": "echo", "arg3": "x", "at": 500, "direct": true},
    ]});
    let run = run_client(addr, plan, CLIENT_LIMIT).await;
    assert_eq!(
        run.get("slow")["ok"],
        true,
        "in-flight call completes: {}",
        run.get("slow")
    );
    assert_eq!(run.get("drain")["ok"], true, "{}", run.get("drain"));
    // node understands tchan's notice ("draining: ..."), so it refuses the
    // late call itself instead of sending it.
    assert_eq!(
        run.get("late")["err"]["type"],
        "tchannel.request.drained",
        "{}",
        run.get("late")
    );
    let conn = tap.conn(0);
    let errs = error_frames(&conn.s2c());
    let conn_err = errs
        .iter()
        .find(|e| e.id == NO_MESSAGE_ID)
        .unwrap_or_else(|| panic!("no 0xffffffff frame: {errs:?}"));
    // [CONN-19] [DEV-21] the notice: declined, id 0xffffffff, zero tracing
    assert_eq!(conn_err.code, ErrorCode::DECLINED);
    assert_eq!(conn_err.tracing, Tracing::default());
    assert!(
        call_reqs(&conn.c2s(), "echo").is_empty(),
        "node sent no call after the notice"
    );
    assert!(
        eventually(Duration::from_secs(3), || srv.channel.active_connections()
            == 0)
        .await,
        "tchan closes the drained connection"
    );
    observe(
        "n2t_tchan_drain",
        format!("tchan sent {errs:?}; node got {}", run.get("late")["err"]),
    );
}
