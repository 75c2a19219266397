//! The client as a `tower::Service` (feature `tower`).

use std::time::Duration;

use bytes::Bytes;
use tchan::{CallRequest, Channel, Request, Response};
use tower::{Service, ServiceExt};

#[tokio::test]
async fn tower_layers_wrap_the_client() {
    let srv = Channel::new("server");
    srv.register("svc", "echo", |req: Request| async move {
        let arg3 = req.arg3.into_bytes().await?;
        Ok(Response::ok(Bytes::new(), arg3))
    });
    srv.register("svc", "slow", |_req: Request| async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok(Response::ok(Bytes::new(), Bytes::new()))
    });
    let addr = srv.listen("127.0.0.1:0").await.unwrap();
    let client = Channel::new("client").connect(addr).await.unwrap();
    let mut svc = tower::ServiceBuilder::new()
        .timeout(Duration::from_millis(100))
        .service(client.clone());
    let r = svc
        .ready()
        .await
        .unwrap()
        .call(CallRequest::new("svc", "echo").arg3("hi"))
        .await
        .unwrap();
    assert_eq!(&r.arg3[..], b"hi");
    let e = svc
        .ready()
        .await
        .unwrap()
        .call(CallRequest::new("svc", "slow").timeout(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(e.is::<tower::timeout::error::Elapsed>(), "{e}");
    client.close();
    client.closed().await;
    let mut raw = client.clone();
    assert!(
        raw.ready().await.is_err(),
        "a closed connection is not ready"
    );
}

#[tokio::test]
async fn a_tower_service_is_a_handler_and_its_layers_answer_on_the_wire() {
    // load_shed over concurrency_limit(1): while one call holds the permit,
    // the next is shed, and the caller sees busy (retryable elsewhere).
    use tchan::frame::ErrorCode;
    use tchan::server::ServiceHandler;
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let svc = tower::ServiceBuilder::new()
        .load_shed()
        .concurrency_limit(1)
        .timeout(Duration::from_secs(2))
        .service_fn(move |req: Request| {
            let mut release = release_rx.clone();
            async move {
                if &req.method[..] == b"hold" {
                    let _ = release.wait_for(|r| *r).await;
                }
                if &req.method[..] == b"fail" {
                    return Err(tchan::Error::new(ErrorCode::DECLINED, "not today"));
                }
                let body = req.arg3.into_bytes().await?;
                Ok(Response::ok(req.arg2, body))
            }
        });
    let srv = Channel::new("server");
    let handler = ServiceHandler::new(svc);
    srv.register("svc", "hold", handler.clone());
    srv.register("svc", "echo", handler.clone());
    srv.register("svc", "fail", handler);
    let addr = srv.listen("127.0.0.1:0").await.unwrap();
    let client = Channel::new("client").connect(addr).await.unwrap();

    let r = client
        .call(CallRequest::new("svc", "echo").arg3("x"))
        .await
        .unwrap();
    assert_eq!(&r.arg3[..], b"x");
    let e = client
        .call(CallRequest::new("svc", "fail"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message(), e.is_local()),
        (ErrorCode::DECLINED, "not today", false)
    );

    let held = {
        let client = client.clone();
        tokio::spawn(async move { client.call(CallRequest::new("svc", "hold").arg3("h")).await })
    };
    // Wait until the held call has the permit: then an echo is shed.
    let mut shed = None;
    for _ in 0..200 {
        match client.call(CallRequest::new("svc", "echo")).await {
            Err(e) if e.code() == ErrorCode::BUSY => {
                shed = Some(e);
                break;
            }
            Ok(_) => tokio::task::yield_now().await,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    let shed = shed.expect("a call was shed while another held the only permit");
    assert_eq!(shed.message(), "overloaded");
    release_tx.send(true).unwrap();
    let held = held.await.unwrap().unwrap();
    assert_eq!(&held.arg3[..], b"h");
}

#[tokio::test]
async fn the_pool_is_a_tower_service() {
    let srv = Channel::new("server");
    srv.register("svc", "echo", |req: Request| async move {
        let arg3 = req.arg3.into_bytes().await?;
        Ok(Response::ok(Bytes::new(), arg3))
    });
    let addr = srv.listen("127.0.0.1:0").await.unwrap();
    let pool = Channel::new("client").pool([addr.to_string()], tchan::PoolConfig::default());
    let mut svc = tower::ServiceBuilder::new()
        .timeout(Duration::from_secs(1))
        .service(pool.clone());
    let r = svc
        .ready()
        .await
        .unwrap()
        .call(CallRequest::new("svc", "echo").arg3("pooled"))
        .await
        .unwrap();
    assert_eq!(&r.arg3[..], b"pooled");
    assert_eq!(pool.stats().calls, 1);
}
