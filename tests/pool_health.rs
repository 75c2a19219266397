//! The peer pool's active health checks (`spec/11-peer-policy.md` POOL-29).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tchan::peer::{PeerPool, PoolConfig};
use tchan::{CallRequest, Channel, HealthKind, Request, Response};

async fn server(sick: Arc<AtomicBool>) -> (Channel, String) {
    let ch = Channel::new("svc");
    let me = Arc::new(std::sync::Mutex::new(String::new()));
    {
        let me = me.clone();
        ch.register("svc", "who", move |_req: Request| {
            let me = me.lock().unwrap().clone();
            async move { Ok(Response::ok(Bytes::new(), Bytes::from(me))) }
        });
    }
    ch.set_health_check(move |kind| {
        if kind == HealthKind::Traffic && sick.load(Ordering::SeqCst) {
            Err("maintenance".into())
        } else {
            Ok(())
        }
    });
    let addr = ch.listen("127.0.0.1:0").await.unwrap().to_string();
    *me.lock().unwrap() = addr.clone();
    (ch, addr)
}

#[tokio::test]
async fn a_peer_that_answers_not_ok_leaves_selection_until_it_is_ok_again() {
    // [POOL-29]
    let sick = Arc::new(AtomicBool::new(false));
    let (_a, a) = server(sick.clone()).await;
    let (_b, b) = server(Arc::new(AtomicBool::new(false))).await;
    let mut config = PoolConfig::default();
    config
        .set_health_check(Some((Duration::from_millis(20), "tchannel".into())))
        .unwrap();
    let pool = PeerPool::new(Channel::new("caller"), [a.clone(), b.clone()], config);
    // Until both peers have connections, calls go to either.
    for _ in 0..200 {
        if pool
            .peers()
            .iter()
            .all(|p| p.connections > 0 && p.healthy == Some(true))
        {
            break;
        }
        let _ = pool.call(CallRequest::new("svc", "who")).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        pool.peers().iter().all(|p| p.healthy == Some(true)),
        "{:?}",
        pool.peers()
    );
    sick.store(true, Ordering::SeqCst);
    let status = |addr: &str| pool.peer(addr).unwrap().healthy;
    for _ in 0..400 {
        if status(&a) == Some(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(status(&a), Some(false));
    for _ in 0..30 {
        let r = pool.call(CallRequest::new("svc", "who")).await.unwrap();
        assert_eq!(r.arg3, Bytes::from(b.clone()), "only the healthy peer");
    }
    sick.store(false, Ordering::SeqCst);
    for _ in 0..400 {
        if status(&a) == Some(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(status(&a), Some(true), "back once it answers ok");
    assert!(
        PoolConfig::default()
            .set_health_check(Some((Duration::ZERO, "x".into())))
            .is_err()
    );
}
