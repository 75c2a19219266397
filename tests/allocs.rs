//! Heap allocations per round trip, counted: a 64-byte echo through
//! `Client::call` and a registered handler, client and server on one
//! current-thread runtime in this process, over loopback TCP. After a
//! warm-up, every allocation made on the runtime's thread is counted; the
//! steady state must stay at or under 2 per round trip (client and server
//! together), at 1 and at 64 calls in flight. Allocation counts do not
//! depend on how busy the machine is, so this is a test, not a benchmark.
//!
//! In its own test binary: it installs a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tchan::{CallRequest, Channel, Request, Response};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Counting is on for this thread (the runtime's).
    static COUNT: Cell<bool> = const { Cell::new(false) };
}

fn counted() {
    // `try_with`: the allocator runs during thread-local teardown too.
    if COUNT.try_with(Cell::get).unwrap_or(false) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator unchanged; the
// counter is only an atomic add.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        counted();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        counted();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        counted();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, new) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One way to make a call.
#[derive(Clone)]
enum Via {
    Client(tchan::Client),
    Pool(tchan::peer::PeerPool),
    /// Through a pool routing by shard key, each call with one of these keys.
    Sharded(tchan::peer::PeerPool, std::sync::Arc<[std::sync::Arc<str>]>),
}

impl Via {
    async fn echo(&self, payload: Bytes) -> Bytes {
        let req = CallRequest::new("svc", "echo").arg3(payload);
        let r = match self {
            Via::Client(c) => c.call(req).await,
            Via::Pool(p) => p.call(req).await,
            Via::Sharded(p, keys) => {
                static NEXT: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(0);
                let i = NEXT.fetch_add(1, Ordering::Relaxed) % keys.len();
                p.call(req.shard_key(keys[i].clone())).await
            }
        };
        r.expect("call").arg3
    }
}

/// `calls` echo calls, `conc` at a time; returns allocations per call.
async fn allocs_per_call(via: &Via, conc: usize, calls: usize) -> f64 {
    let payload = Bytes::from(vec![0x5a; 64]);
    let run = |n: usize| {
        let per = n / conc;
        let workers = (0..conc).map(|_| {
            let via = via.clone();
            let payload = payload.clone();
            async move {
                for _ in 0..per {
                    assert_eq!(via.echo(payload.clone()).await.len(), 64);
                }
            }
        });
        futures::future::join_all(workers)
    };
    run(1_000.max(conc)).await;
    COUNT.with(|c| c.set(true));
    let before = ALLOCS.load(Ordering::Relaxed);
    run(calls).await;
    let after = ALLOCS.load(Ordering::Relaxed);
    COUNT.with(|c| c.set(false));
    (after - before) as f64 / (calls / conc * conc) as f64
}

#[test]
fn a_round_trip_allocates_at_most_twice_in_steady_state() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let srv = Channel::new("server");
        srv.register("svc", "echo", |req: Request| async move {
            Ok(Response::ok(req.arg2, req.arg3.into_bytes().await?))
        });
        let addr = srv.listen("127.0.0.1:0").await.expect("listen");
        let client = Channel::new("client").connect(addr).await.expect("connect");
        let pool = tchan::peer::PeerPool::new(
            Channel::new("pool-client"),
            [addr.to_string()],
            tchan::peer::PoolConfig::default(),
        );
        let mut config = tchan::peer::PoolConfig::default();
        config.set_shard_routing(Some(tchan::peer::ShardRouting::NextOnRing));
        let sharded = tchan::peer::PeerPool::new(
            Channel::new("sharded-client"),
            [addr.to_string()],
            config,
        );
        let keys: std::sync::Arc<[std::sync::Arc<str>]> =
            (0..100).map(|i| std::sync::Arc::from(format!("key-{i}"))).collect();
        for conc in [1, 64] {
            let direct = allocs_per_call(&Via::Client(client.clone()), conc, 10_000).await;
            println!("{conc} in flight: {direct:.3} allocations per round trip");
            assert!(
                direct <= 2.0,
                "{conc} in flight: {direct:.3} allocations per round trip (at most 2)"
            );
            let pooled = allocs_per_call(&Via::Pool(pool.clone()), conc, 10_000).await;
            println!("{conc} in flight, through the peer pool: {pooled:.3}");
            assert!(
                pooled <= direct + 0.02,
                "{conc} in flight: the pool adds allocations ({pooled:.3} vs {direct:.3})"
            );
            // [POOL-31] a sharded call adds one: its header list (the cached
            // cn/as plus sk). The ring lookup and the shared key add none.
            let sharded = allocs_per_call(&Via::Sharded(sharded.clone(), keys.clone()), conc, 10_000).await;
            println!("{conc} in flight, by shard key: {sharded:.3}");
            assert!(
                sharded <= direct + 1.02,
                "{conc} in flight: a sharded call adds more than its header list ({sharded:.3} vs {direct:.3})"
            );
        }
    });
}
