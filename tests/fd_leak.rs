//! Opening and killing 1,000 connections leaves no file descriptor behind.
//! In its own test binary so that no other test's sockets are counted.

use std::time::Duration;

use bytes::Bytes;
use tchan::{CallRequest, Channel, Request, Response};
use tokio::io::AsyncWriteExt;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

async fn settle(channels: &[&Channel]) {
    for _ in 0..1000 {
        if channels.iter().all(|c| c.active_connections() == 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!(
        "connections still open: {:?}",
        channels
            .iter()
            .map(|c| c.active_connections())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_thousand_killed_connections_leave_no_descriptor_behind() {
    // [CONN-21] every stream tied to a connection closes with it
    let srv = Channel::new("server");
    srv.register("svc", "echo", |req: Request| async move {
        let arg3 = req.arg3.into_bytes().await?;
        Ok(Response::ok(req.arg2, arg3))
    });
    // A handler that never answers: its call is in flight when the socket dies.
    srv.register("svc", "hang", |_req: Request| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(Response::ok(Bytes::new(), Bytes::new()))
    });
    let addr = srv.listen("127.0.0.1:0").await.unwrap();
    let cli = Channel::new("client");
    // Warm up so lazily opened runtime descriptors are already counted.
    let c = cli.connect(addr).await.unwrap();
    c.call(CallRequest::new("svc", "echo")).await.unwrap();
    c.close();
    c.closed().await;
    settle(&[&srv, &cli]).await;
    let before = open_fds();

    for i in 0..1000 {
        match i % 3 {
            0 => {
                // A clean call, then the client closes.
                let c = cli.connect(addr).await.unwrap();
                let r = c
                    .call(CallRequest::new("svc", "echo").arg3("x"))
                    .await
                    .unwrap();
                assert_eq!(&r.arg3[..], b"x");
                c.close();
            }
            1 => {
                // A call left in flight on both sides when the client closes.
                let c = cli.connect(addr).await.unwrap();
                let pending = {
                    let c = c.clone();
                    tokio::spawn(async move {
                        c.call(CallRequest::new("svc", "hang").timeout(Duration::from_secs(60)))
                            .await
                    })
                };
                tokio::task::yield_now().await;
                c.close();
                let e = pending.await.unwrap().unwrap_err();
                assert_eq!(e.code(), tchan::frame::ErrorCode::NETWORK);
            }
            _ => {
                // A raw socket that sends half a frame and disappears.
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                s.write_all(&[0x00, 0x40, 0x01, 0x00, 0, 0]).await.unwrap();
                drop(s);
            }
        }
    }
    settle(&[&srv, &cli]).await;
    // Give the runtime a moment to release sockets it closed on other tasks.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        open_fds(),
        before,
        "descriptors before and after 1000 connections"
    );
}
