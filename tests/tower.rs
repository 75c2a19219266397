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
