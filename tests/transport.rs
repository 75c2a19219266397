//! Tokio integration tests of the transport: client and server over loopback
//! TCP and in-memory duplex streams.

use std::time::Duration;

use bytes::Bytes;
use tchan::frame::{ChecksumType, ErrorCode};
use tchan::{CallRequest, Channel, Request, Response};

async fn echo(req: Request) -> tchan::transport::HandlerResult {
    let arg3 = req.arg3.into_bytes().await?;
    Ok(Response::ok(req.arg2, arg3))
}

async fn server() -> (Channel, std::net::SocketAddr) {
    let ch = Channel::new("server");
    ch.register("svc", "echo", echo);
    let addr = ch.listen("127.0.0.1:0").await.unwrap();
    (ch, addr)
}

#[tokio::test]
async fn echo_over_tcp() {
    let (_srv, addr) = server().await;
    let client = Channel::new("client").connect(addr).await.unwrap();
    assert_eq!(client.peer_info().unwrap().host_port, addr.to_string());
    let resp = client
        .call(CallRequest::new("svc", "echo").arg2("head").arg3("body"))
        .await
        .unwrap();
    assert!(resp.is_ok());
    assert_eq!(resp.arg2, Bytes::from_static(b"head"));
    assert_eq!(resp.arg3, Bytes::from_static(b"body"));
    assert_eq!(resp.headers.get(b"as"), Some(&b"raw"[..]));
}

#[tokio::test]
async fn unknown_service_and_method_are_bad_requests() {
    let (_srv, addr) = server().await;
    let client = Channel::new("client").connect(addr).await.unwrap();
    let e = client
        .call(CallRequest::new("nope", "echo"))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BAD_REQUEST);
    let e = client
        .call(CallRequest::new("svc", "nope"))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BAD_REQUEST);
}

#[tokio::test]
async fn large_args_every_checksum() {
    let (_srv, addr) = server().await;
    let client = Channel::new("client").connect(addr).await.unwrap();
    let big: Bytes = (0..3 * 1024 * 1024)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    for ty in [
        ChecksumType::NONE,
        ChecksumType::CRC32,
        ChecksumType::FARMHASH32,
        ChecksumType::CRC32C,
    ] {
        let resp = client
            .call(
                CallRequest::new("svc", "echo")
                    .arg2(big.slice(..100_000))
                    .arg3(big.clone())
                    .checksum(ty)
                    .timeout(Duration::from_secs(10)),
            )
            .await
            .unwrap();
        assert_eq!(resp.arg3, big);
        assert_eq!(resp.arg2.len(), 100_000);
    }
}

#[tokio::test]
async fn many_concurrent_calls() {
    let (_srv, addr) = server().await;
    let client = Channel::new("client").connect(addr).await.unwrap();
    let mut futs = Vec::new();
    for i in 0..2000u32 {
        let c = client.clone();
        futs.push(async move {
            let r = c
                .call(
                    CallRequest::new("svc", "echo")
                        .arg3(i.to_string().into_bytes())
                        .timeout(Duration::from_secs(10)),
                )
                .await
                .unwrap();
            assert_eq!(r.arg3, i.to_string().into_bytes());
        });
    }
    futures::future::join_all(futs).await;
    assert!(
        client.table_sizes().iter().take(3).all(|&n| n == 0),
        "{:?}",
        client.table_sizes()
    );
}
