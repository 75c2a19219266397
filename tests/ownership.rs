//! Shard-key ownership on the serving side (`spec/11-peer-policy.md`
//! POOL-32): a call for a key this process does not own is forwarded once
//! to the owner.

use std::sync::Arc;

use bytes::Bytes;
use tchan::frame::ArgScheme;
use tchan::peer::ownership::FORWARD_KEYS_HEADER;
use tchan::peer::{HashRing, Ownership};
use tchan::{CallRequest, Channel, Request, Response};

/// A server whose `who` answers its own address (and arg2), for keys (the
/// `sk` header) it owns according to `ring_peers`.
async fn server(
    ring_peers: Option<Vec<String>>,
) -> (Channel, String, Arc<std::sync::OnceLock<Ownership>>) {
    let ch = Channel::new("svc");
    let addr = ch.listen("127.0.0.1:0").await.unwrap().to_string();
    let own: Arc<std::sync::OnceLock<Ownership>> = Arc::default();
    if let Some(p) = ring_peers {
        let _ = own.set(Ownership::new(Channel::new("svc"), addr.clone(), p));
    }
    let (me, o) = (addr.clone(), own.clone());
    ch.register("svc", "who", move |req: Request| {
        let (me, o) = (me.clone(), o.clone());
        async move {
            let key = req.header("sk").unwrap_or_default().as_bytes().to_vec();
            let local = |req: Request| async move { Ok(Response::ok(req.arg2, Bytes::from(me))) };
            match o.get() {
                Some(own) => own.handle(req, &key, local).await,
                None => local(req).await,
            }
        }
    });
    (ch, addr, own)
}

#[tokio::test]
async fn a_call_for_a_key_owned_elsewhere_is_answered_by_the_owner() {
    // [POOL-32]
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(server(None).await);
    }
    let addrs: Vec<String> = servers.iter().map(|s| s.1.clone()).collect();
    for s in &servers {
        let _ = s.2.set(Ownership::new(
            Channel::new("svc"),
            s.1.clone(),
            addrs.clone(),
        ));
    }
    let ring = HashRing::new(addrs.clone());
    let to_first = Channel::new("c").connect(addrs[0].as_str()).await.unwrap();
    let own = servers[0].2.get().unwrap();
    for i in 0..30 {
        let key = format!("k{i}");
        let r = to_first
            .call(CallRequest::new("svc", "who").shard_key(key.clone()))
            .await
            .unwrap();
        let owner = ring.lookup(key.as_bytes()).unwrap();
        assert_eq!(r.arg3, Bytes::from(owner.to_owned()), "{key}");
        assert_eq!(own.owns(key.as_bytes()), owner == addrs[0]);
    }
    // json: the forwarded call carries ringpop-forward-keys in arg2.
    let key = (0..100)
        .map(|i| format!("j{i}"))
        .find(|k| ring.lookup(k.as_bytes()) != Some(addrs[0].as_str()))
        .unwrap();
    let r = to_first
        .call(
            CallRequest::new("svc", "who")
                .scheme(ArgScheme::Json)
                .arg2("{}")
                .arg3("{}")
                .shard_key(key.clone()),
        )
        .await
        .unwrap();
    let head: serde_json::Value = serde_json::from_slice(&r.arg2).unwrap();
    assert_eq!(head[FORWARD_KEYS_HEADER], key.as_str());
}

#[tokio::test]
async fn a_forwarded_call_is_not_forwarded_again() {
    // [POOL-32] Two servers whose rings disagree (each thinks the other owns
    // everything): a call is forwarded once and answered there.
    let (a_ch, a, a_own) = server(None).await;
    let (b_ch, b, b_own) = server(None).await;
    let _ = a_own.set(Ownership::new(Channel::new("svc"), a.clone(), [b.clone()]));
    let _ = b_own.set(Ownership::new(Channel::new("svc"), b.clone(), [a.clone()]));
    let to_a = Channel::new("c").connect(a.as_str()).await.unwrap();
    let r = to_a
        .call(CallRequest::new("svc", "who").shard_key("x"))
        .await
        .unwrap();
    assert_eq!(
        r.arg3,
        Bytes::from(b.clone()),
        "forwarded to b, answered by b"
    );
    // b leaves a's ring: a's connection to it (for forwards) closes.
    assert_eq!(b_ch.connections().len(), 1, "a's forwarding connection");
    a_own.get().unwrap().set_peers([a.clone()]);
    let end = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !b_ch.connections().is_empty() {
        assert!(
            tokio::time::Instant::now() < end,
            "a kept its connection to b"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    drop((a_ch, b_ch));
}
