//! A service on three servers, one of which is down, called through a
//! `PeerPool`: calls are spread over the live peers, a refused connection is
//! retried elsewhere, and the pool's statistics show what happened.
//! `cargo run --example pool`.

use tchan::{CallRequest, Channel, Error, PoolConfig, Request, Response};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let mut peers = Vec::new();
    let mut servers = Vec::new();
    for name in ["a", "b"] {
        let server = Channel::new("kv");
        server.register("kv", "whoami", move |_req: Request| async move {
            Ok(Response::ok("", name))
        });
        peers.push(server.listen("127.0.0.1:0").await?.to_string());
        servers.push(server);
    }
    // A peer nobody listens on: bind a port, then let it go.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").map_err(Error::from)?;
    peers.push(gone.local_addr().map_err(Error::from)?.to_string());
    drop(gone);

    let mut config = PoolConfig::default();
    config.set_max_retries(2);
    let pool = Channel::new("example").pool(peers.clone(), config);
    let mut answers = std::collections::BTreeMap::new();
    for _ in 0..40 {
        let resp = pool.call(CallRequest::new("kv", "whoami")).await?;
        *answers
            .entry(String::from_utf8_lossy(&resp.arg3).into_owned())
            .or_insert(0) += 1;
    }
    println!("answers by server: {answers:?}");
    let stats = pool.stats();
    println!(
        "calls {}, attempts {}, retries {}",
        stats.calls, stats.attempts, stats.retries
    );
    for p in pool.peers() {
        println!("peer {}: breaker {:?}", p.addr, p.breaker);
    }
    assert_eq!(answers.values().sum::<i32>(), 40);
    assert!(answers.len() == 2, "both live servers answer");
    Ok(())
}
