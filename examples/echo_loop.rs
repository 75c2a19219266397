//! A fixed number of 64-byte echo calls, client and server on one
//! current-thread runtime in one process: a stable workload for profiling
//! with `valgrind --tool=callgrind` (instruction counts do not depend on how
//! busy the machine is).
//!
//! `cargo build --release --example echo_loop && valgrind --tool=callgrind
//! target/release/examples/echo_loop 20000 64` (add `pool` to make the calls
//! through a `PeerPool` of that one server instead of a `Client`).

// Measures wall time: the library's clock rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use tchan::{CallRequest, Channel, Request, Response};

fn main() {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let inflight: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let pooled = args.next().as_deref() == Some("pool");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let srv = Channel::new("server");
        srv.register("bench", "echo", |req: Request| async move {
            let arg3 = req.arg3.into_bytes().await?;
            Ok(Response::ok(req.arg2, arg3))
        });
        let addr = srv.listen("127.0.0.1:0").await.expect("listen");
        let client = Channel::new("client").connect(addr).await.expect("connect");
        let pool = tchan::peer::PeerPool::new(
            Channel::new("client"),
            [addr.to_string()],
            tchan::peer::PoolConfig::default(),
        );
        let payload = Bytes::from(vec![0x5a; 64]);
        let start = Instant::now();
        let per_worker = calls / inflight;
        let workers = (0..inflight).map(|_| {
            let client = client.clone();
            let pool = pool.clone();
            let payload = payload.clone();
            async move {
                for _ in 0..per_worker {
                    let req = CallRequest::new("bench", "echo")
                        .arg3(payload.clone())
                        .timeout(Duration::from_secs(10));
                    if pooled {
                        pool.call(req).await.expect("call");
                    } else {
                        client.call(req).await.expect("call");
                    }
                }
            }
        });
        futures::future::join_all(workers).await;
        let took = start.elapsed();
        let n = per_worker * inflight;
        println!(
            "{n} calls, {inflight} in flight: {:.0} calls/s, {:.2} us/call wall",
            n as f64 / took.as_secs_f64(),
            took.as_secs_f64() * 1e6 / n as f64
        );
    });
}
