//! Shard-key routing through the peer pool (`spec/11-peer-policy.md`
//! POOL-31): a call with `sk` goes to the key's owner on the ring.

use std::time::Duration;

use bytes::Bytes;
use tchan::frame::ErrorCode;
use tchan::peer::{HashRing, PeerPool, PoolConfig, ShardRouting};
use tchan::{CallRequest, Channel, Request, Response};

async fn server() -> (Channel, String) {
    let ch = Channel::new("svc");
    let addr = ch.listen("127.0.0.1:0").await.unwrap().to_string();
    let me = addr.clone();
    ch.register("svc", "who", move |_req: Request| {
        let me = me.clone();
        async move { Ok(Response::ok(Bytes::new(), Bytes::from(me))) }
    });
    (ch, addr)
}

async fn who(pool: &PeerPool, key: &str) -> Result<String, tchan::Error> {
    let r = pool
        .call(
            CallRequest::new("svc", "who")
                .shard_key(key.to_owned())
                .timeout(Duration::from_secs(2)),
        )
        .await?;
    Ok(String::from_utf8(r.arg3.to_vec()).unwrap())
}

#[tokio::test]
async fn calls_with_a_shard_key_go_to_its_owner_then_the_next_on_the_ring() {
    // [POOL-31]
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(server().await);
    }
    let addrs: Vec<String> = servers.iter().map(|s| s.1.clone()).collect();
    let ring = HashRing::new(addrs.clone());
    let mut config = PoolConfig::default();
    config.set_shard_routing(Some(ShardRouting::NextOnRing));
    let pool = PeerPool::new(Channel::new("caller"), addrs.clone(), config);
    let keys: Vec<String> = (0..60).map(|i| format!("user-{i}")).collect();
    for k in &keys {
        assert_eq!(
            who(&pool, k).await.unwrap(),
            ring.lookup(k.as_bytes()).unwrap(),
            "{k}"
        );
    }
    // One owner goes away: its keys go to the next peer on the ring, the
    // others stay where they were.
    let (gone, gone_addr) = servers.remove(0);
    gone.close();
    drop(gone);
    for k in &keys {
        let owner = ring.lookup(k.as_bytes()).unwrap();
        let want = if owner == gone_addr {
            ring.lookup_n(k.as_bytes(), 2)[1]
        } else {
            owner
        };
        assert_eq!(who(&pool, k).await.unwrap(), want, "{k}");
    }
    // Strict ownership: a key whose owner is down fails, the others work.
    let mut strict = PoolConfig::default();
    strict.set_shard_routing(Some(ShardRouting::Strict));
    let pool = PeerPool::new(Channel::new("caller"), addrs.clone(), strict);
    let mut refused = 0;
    for k in &keys {
        let owner = ring.lookup(k.as_bytes()).unwrap();
        match who(&pool, k).await {
            Ok(a) => assert_eq!(a, owner, "{k}"),
            Err(e) => {
                assert_eq!(owner, gone_addr, "{k}: {e}");
                assert!(
                    matches!(e.code(), ErrorCode::DECLINED | ErrorCode::NETWORK),
                    "{e}"
                );
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "the down peer owned some keys");
    // Calls without a shard key keep the normal selection.
    let r = pool.call(CallRequest::new("svc", "who")).await.unwrap();
    assert_ne!(String::from_utf8(r.arg3.to_vec()).unwrap(), gone_addr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tchan_call_with_a_shard_key_and_several_peers_goes_to_the_owner() {
    // [POOL-31]
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(server().await);
    }
    let addrs: Vec<String> = servers.iter().map(|s| s.1.clone()).collect();
    let ring = HashRing::new(addrs.clone());
    for key in ["alpha", "beta", "gamma", "delta"] {
        let mut args = vec!["call".to_owned()];
        for a in &addrs {
            args.push("--peer".into());
            args.push(a.clone());
        }
        args.extend(["svc", "who", "--shard-key", key].map(String::from));
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_tchan"))
                .args(args)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            ring.lookup(key.as_bytes()).unwrap()
        );
    }
}
