//! Peers from DNS (`spec/11-peer-policy.md` POOL-33, POOL-34), against a
//! real DNS server started in the test process (hickory-server on
//! 127.0.0.1).

#![allow(clippy::disallowed_methods)]

#[path = "support/dns_server.rs"]
mod dns_server;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use hickory_server::proto::rr::RecordType;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tchan::peer::{
    DnsConfig, DnsError, DnsPeers, DnsQuery, DnsResolver, PeerEntry, PeerPool, PeerSet, PoolConfig,
};
use tchan::{CallRequest, Channel, Request, Response};

use dns_server::DnsServer;

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn resolver(server: &DnsServer, tune: impl FnOnce(&mut DnsConfig)) -> DnsResolver {
    let mut c = DnsConfig::default();
    c.set_nameserver(Some(server.addr()))
        .set_lookup_timeout(Duration::from_millis(500));
    tune(&mut c);
    DnsResolver::new(c).unwrap()
}

fn addrs(set: &PeerSet) -> Vec<&str> {
    let mut v: Vec<&str> = set.addrs().collect();
    v.sort();
    v
}

/// The next set the watch delivers, within `limit`.
async fn next(w: &mut DnsPeers, limit: Duration) -> PeerSet {
    tokio::time::timeout(limit, w.next())
        .await
        .expect("a new peer set in time")
        .expect("the watch never ends")
}

/// Waits until `f` holds, polling every 10 ms, for at most `limit`.
async fn until(limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "condition not reached in {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn snapshotter() -> &'static Snapshotter {
    static S: OnceLock<Snapshotter> = OnceLock::new();
    S.get_or_init(|| {
        let r = DebuggingRecorder::new();
        let s = r.snapshotter();
        r.install().expect("the only recorder of this test binary");
        s
    })
}

/// What the tests' tracing events say: a global subscriber (a scoped one
/// misses events when another thread registers the same callsite first).
fn log() -> &'static Log {
    static LOG: OnceLock<Log> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Log::default();
        tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .with_writer(log.clone())
                .with_ansi(false)
                .finish(),
        )
        .expect("the only subscriber of this test binary");
        log
    })
}

/// A tracing writer that keeps what it is given.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = Log;

    fn make_writer(&'a self) -> Log {
        self.clone()
    }
}

/// Lookup failures counted for `query` so far (a snapshot drains the
/// recorder's counters: they are summed here).
fn failures(query: &str) -> u64 {
    static TOTALS: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());
    let mut totals = TOTALS.lock().unwrap();
    for (k, _, _, v) in snapshotter().snapshot().into_vec() {
        let key = k.key();
        let (DebugValue::Counter(n), "tchan_peer_dns_lookup_failures_total") = (v, key.name())
        else {
            continue;
        };
        for l in key.labels().filter(|l| l.key() == "query") {
            match totals.iter_mut().find(|(q, _)| q == l.value()) {
                Some((_, t)) => *t += n,
                None => totals.push((l.value().to_owned(), n)),
            }
        }
    }
    totals
        .iter()
        .find(|(q, _)| q == query)
        .map_or(0, |(_, t)| *t)
}

#[tokio::test]
async fn a_records_give_one_peer_per_address_on_the_fixed_port() {
    // [POOL-33]
    let server = DnsServer::start().await;
    server.set_a(
        "svc.test",
        &[Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 1)],
        30,
    );
    let r = resolver(&server, |_| {});
    let a = r.lookup(&DnsQuery::host("svc.test", 4040)).await.unwrap();
    assert_eq!(addrs(&a.peers), ["10.0.0.1:4040", "10.0.0.2:4040"]);
    assert_eq!(a.ttl, Duration::from_secs(30));
    assert!(
        a.peers
            .entries()
            .iter()
            .all(|e| e.priority == 0 && e.weight == 1)
    );
    // At most max_peers from one answer.
    let many: Vec<Ipv4Addr> = (1..=5).map(|i| Ipv4Addr::new(10, 0, 1, i)).collect();
    server.set_a("many.test", &many, 30);
    let capped = resolver(&server, |c| {
        c.set_max_peers(3);
    });
    let a = capped
        .lookup(&DnsQuery::host("many.test", 1))
        .await
        .unwrap();
    assert_eq!(a.peers.len(), 3);
    // A name with no records, and one that does not exist.
    server.set_srv("only-srv.test", &[(0, 1, 1, "svc.test")], 30);
    for name in ["only-srv.test", "nope.test"] {
        let e = r.lookup(&DnsQuery::host(name, 1)).await.unwrap_err();
        assert!(matches!(e, DnsError::NoRecords { .. }), "{name}: {e}");
        let text = e.to_string();
        assert!(
            text.contains(name) && text.contains(&server.addr().to_string()),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_watch_follows_records_added_and_removed() {
    // [POOL-33]
    let server = DnsServer::start().await;
    server.set_a("grow.test", &[Ipv4Addr::new(10, 0, 0, 1)], 0);
    let r = resolver(&server, |c| {
        c.set_ttl_floor(Duration::from_millis(50));
    });
    let mut w = r.watch(DnsQuery::host("grow.test", 7));
    let limit = Duration::from_secs(5);
    assert_eq!(addrs(&next(&mut w, limit).await), ["10.0.0.1:7"]);
    server.set_a(
        "grow.test",
        &[Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 3)],
        0,
    );
    assert_eq!(
        addrs(&next(&mut w, limit).await),
        ["10.0.0.1:7", "10.0.0.3:7"]
    );
    server.set_a("grow.test", &[Ipv4Addr::new(10, 0, 0, 3)], 0);
    assert_eq!(addrs(&next(&mut w, limit).await), ["10.0.0.3:7"]);
    // An unchanged answer delivers nothing new, however often it is asked.
    let asked = server.queries("grow.test", RecordType::A).len();
    let end = Instant::now() + limit;
    while server.queries("grow.test", RecordType::A).len() < asked + 3 {
        assert!(Instant::now() < end, "no new lookups");
        let got = tokio::time::timeout(Duration::from_millis(100), w.next()).await;
        assert!(got.is_err(), "{got:?}");
    }
}

/// The gaps between the queries for `name`, once `n` have arrived.
async fn gaps(server: &DnsServer, name: &str, n: usize) -> Vec<Duration> {
    until(Duration::from_secs(10), || {
        server.queries(name, RecordType::A).len() >= n
    })
    .await;
    let q = server.queries(name, RecordType::A);
    q.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test]
async fn lookups_follow_the_ttl_between_the_floor_and_the_ceiling() {
    // [POOL-33]
    let server = DnsServer::start().await;
    let ip = [Ipv4Addr::new(10, 0, 0, 1)];
    server.set_a("ttl.test", &ip, 1);
    server.set_a("floor.test", &ip, 0);
    server.set_a("ceiling.test", &ip, 3600);
    let tuned = |floor: u64, ceiling: u64| {
        resolver(&server, move |c| {
            c.set_ttl_floor(Duration::from_millis(floor))
                .set_ttl_ceiling(Duration::from_millis(ceiling));
        })
    };
    let mut watches = [
        tuned(100, 60_000).watch(DnsQuery::host("ttl.test", 1)),
        tuned(600, 60_000).watch(DnsQuery::host("floor.test", 1)),
        tuned(100, 500).watch(DnsQuery::host("ceiling.test", 1)),
    ];
    // The watches run while they are polled.
    let poll = tokio::spawn(async move {
        loop {
            for w in &mut watches {
                let _ = w.next().now_or_never();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    for (name, least) in [
        ("ttl.test", 1000),
        ("floor.test", 600),
        ("ceiling.test", 500),
    ] {
        let g = gaps(&server, name, 3).await;
        assert!(
            g.iter().all(|g| *g >= Duration::from_millis(least)),
            "{name}: {g:?}"
        );
    }
    // The ceiling and the TTL bound the wait from above too: a 3600 s TTL
    // was asked again within the test's few seconds.
    poll.abort();
}

#[tokio::test]
async fn a_failed_lookup_keeps_the_last_list_and_is_logged_and_counted() {
    // [POOL-33]
    let mut server = DnsServer::start().await;
    server.set_a("flaky.test", &[Ipv4Addr::new(10, 0, 0, 1)], 0);
    let r = resolver(&server, |c| {
        c.set_ttl_floor(Duration::from_millis(50))
            .set_lookup_timeout(Duration::from_millis(200));
    });
    let q = DnsQuery::host("flaky.test", 9);
    let label = q.to_string();
    let mut w = r.watch(q);
    let limit = Duration::from_secs(5);
    assert_eq!(addrs(&next(&mut w, limit).await), ["10.0.0.1:9"]);
    let log = log();
    server.stop().await;
    let before = failures(&label);
    // Lookups fail (and are counted); the list stays: nothing is delivered.
    let stream = tokio::spawn(async move {
        let got = w.next().await;
        (w, got)
    });
    until(limit, || failures(&label) >= before + 3).await;
    assert!(!stream.is_finished(), "a failed lookup delivered a set");
    let text: Vec<String> = log
        .text()
        .lines()
        .filter(|l| l.contains("flaky.test"))
        .map(str::to_owned)
        .collect();
    // Once until a lookup succeeds again, not once per failure.
    assert_eq!(text.len(), 1, "{text:?}");
    assert!(
        text[0].contains("DNS lookup failed; keeping the last peer list")
            && text[0].contains("WARN"),
        "{text:?}"
    );
    // Back, with a change: the watch picks it up.
    server.set_a("flaky.test", &[Ipv4Addr::new(10, 0, 0, 2)], 0);
    server.restart().await;
    let (_w, got) = tokio::time::timeout(limit, stream).await.unwrap().unwrap();
    assert_eq!(addrs(&got.unwrap()), ["10.0.0.2:9"]);
}

#[tokio::test]
async fn a_server_failure_is_a_failed_lookup_not_an_empty_answer() {
    // [POOL-33] SERVFAIL keeps the last list past the grace period, as
    // any failure does; so does an SRV target whose address lookup fails.
    let server = DnsServer::start().await;
    server.set_a("sick.test", &[Ipv4Addr::new(10, 0, 0, 1)], 0);
    let grace = Duration::from_millis(200);
    let r = resolver(&server, |c| {
        c.set_ttl_floor(Duration::from_millis(20))
            .set_empty_grace(grace);
    });
    let q = DnsQuery::host("sick.test", 9);
    let label = q.to_string();
    let mut w = r.watch(q.clone());
    let limit = Duration::from_secs(5);
    assert_eq!(addrs(&next(&mut w, limit).await), ["10.0.0.1:9"]);
    server.set_failing("sick.test", true);
    let e = r.lookup(&q).await.unwrap_err();
    assert!(
        matches!(&e, DnsError::Failed { message, .. } if message.contains("Server Failure")),
        "{e:?}"
    );
    let before = failures(&label);
    let failed_since = Instant::now();
    // Well past the grace period, and nothing delivered.
    while failed_since.elapsed() < 3 * grace || failures(&label) < before + 3 {
        assert!(failed_since.elapsed() < limit, "too few failed lookups");
        let got = tokio::time::timeout(Duration::from_millis(50), w.next()).await;
        assert!(got.is_err(), "delivered {got:?} while the server failed");
    }
    // SRV: one target's address lookup fails: the whole lookup fails.
    server.set_a("ok.test", &[Ipv4Addr::new(10, 0, 0, 2)], 30);
    server.set_srv(
        "_svc._tcp.half.test",
        &[(0, 1, 1, "ok.test"), (0, 1, 2, "sick.test")],
        30,
    );
    let e = r
        .lookup(&DnsQuery::srv("_svc._tcp.half.test"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, DnsError::Failed { message, .. } if message.contains("sick.test")),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_watch_can_start_from_an_answer_in_hand() {
    // [POOL-33] no lookup for the first delivery; the next one after the
    // answer's TTL.
    let server = DnsServer::start().await;
    server.set_a("seed.test", &[Ipv4Addr::new(10, 0, 0, 1)], 1);
    let r = resolver(&server, |c| {
        c.set_ttl_floor(Duration::from_millis(20));
    });
    let q = DnsQuery::host("seed.test", 9);
    let answer = r.lookup(&q).await.unwrap();
    let mut w = r.watch_from(q, answer);
    let limit = Duration::from_secs(5);
    assert_eq!(addrs(&next(&mut w, limit).await), ["10.0.0.1:9"]);
    assert_eq!(server.queries("seed.test", RecordType::A).len(), 1);
    let started = Instant::now();
    server.set_a("seed.test", &[Ipv4Addr::new(10, 0, 0, 2)], 1);
    assert_eq!(addrs(&next(&mut w, limit).await), ["10.0.0.2:9"]);
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn an_empty_answer_counts_only_after_the_grace_period() {
    // [POOL-33]
    let server = DnsServer::start().await;
    server.set_a("going.test", &[Ipv4Addr::new(10, 0, 0, 1)], 0);
    let grace = Duration::from_millis(800);
    let r = resolver(&server, |c| {
        c.set_ttl_floor(Duration::from_millis(50))
            .set_empty_grace(grace);
    });
    let mut w = r.watch(DnsQuery::host("going.test", 9));
    let limit = Duration::from_secs(5);
    assert_eq!(addrs(&next(&mut w, limit).await), ["10.0.0.1:9"]);
    let removed = Instant::now();
    server.remove("going.test");
    let empty = next(&mut w, limit).await;
    assert!(empty.is_empty(), "{empty:?}");
    let waited = removed.elapsed();
    assert!(waited >= grace, "empty after {waited:?}");
    // A watch whose first answer is empty says so at once: no grace at the
    // start.
    let mut fresh = r.watch(DnsQuery::host("never.test", 9));
    let first = next(&mut fresh, limit).await;
    assert!(first.is_empty());
    assert_eq!(server.queries("never.test", RecordType::A).len(), 1);
}

#[tokio::test]
async fn srv_records_give_their_targets_ports_priorities_and_weights() {
    // [POOL-33]
    let server = DnsServer::start().await;
    server.set_a("a.test", &[LOCAL], 60);
    server.set_a("b.test", &[Ipv4Addr::new(10, 0, 0, 2)], 20);
    server.set_srv(
        "_svc._tcp.fleet.test",
        &[
            (10, 5, 4001, "a.test"),
            (20, 0, 4002, "b.test"),
            // No address: left out. A target of ".": not offered.
            (10, 1, 4003, "gone.test"),
            (10, 1, 4004, "."),
        ],
        40,
    );
    let r = resolver(&server, |_| {});
    let a = r
        .lookup(&DnsQuery::parse_srv("_svc._tcp.fleet.test").unwrap())
        .await
        .unwrap();
    let want = PeerSet::new([
        PeerEntry::new("127.0.0.1:4001").ranked(10, 5),
        PeerEntry::new("10.0.0.2:4002").ranked(20, 0),
    ]);
    assert_eq!(a.peers, want);
    // The smallest TTL of the SRV records and their targets' addresses.
    assert_eq!(a.ttl, Duration::from_secs(20));
    // Targets are looked up through the same nameserver.
    assert_eq!(server.queries("b.test", RecordType::A).len(), 1);
    assert!(DnsQuery::parse_srv("fleet.test").is_err());
    assert!(DnsQuery::parse_host("fleet.test").is_err());
    assert_eq!(
        DnsQuery::parse_host("fleet.test:80").unwrap(),
        DnsQuery::host("fleet.test", 80)
    );
}

/// A server whose `who` method counts its calls and answers its address.
async fn counting_server(calls: Arc<Mutex<HashMap<String, usize>>>) -> (Channel, u16) {
    let ch = Channel::new("svc");
    let addr = ch.listen("127.0.0.1:0").await.unwrap();
    let me = addr.to_string();
    ch.register("svc", "who", move |_req: Request| {
        let (me, calls) = (me.clone(), calls.clone());
        async move {
            *calls.lock().unwrap().entry(me.clone()).or_default() += 1;
            Ok(Response::ok(Bytes::new(), Bytes::from(me)))
        }
    });
    (ch, addr.port())
}

#[tokio::test]
async fn the_pool_uses_the_lowest_srv_priority_and_draws_by_weight() {
    // [POOL-34]
    let server = DnsServer::start().await;
    server.set_a("local.test", &[LOCAL], 60);
    let calls = Arc::new(Mutex::new(HashMap::new()));
    let (a, pa) = counting_server(calls.clone()).await;
    let (b, pb) = counting_server(calls.clone()).await;
    let (_c, pc) = counting_server(calls.clone()).await;
    server.set_srv(
        "_svc._tcp.prio.test",
        &[
            (0, 1, pa, "local.test"),
            (0, 3, pb, "local.test"),
            (1, 1, pc, "local.test"),
        ],
        60,
    );
    let r = resolver(&server, |_| {});
    let pool = PeerPool::new(
        Channel::new("caller"),
        Vec::<String>::new(),
        PoolConfig::default(),
    );
    let mut w = r.watch(DnsQuery::srv("_svc._tcp.prio.test"));
    let first = next(&mut w, Duration::from_secs(5)).await;
    pool.set_peer_set(&first);
    let status = pool.peer(&format!("127.0.0.1:{pb}")).unwrap();
    assert_eq!((status.priority, status.weight), (0, 3));
    let call = || CallRequest::new("svc", "who").timeout(Duration::from_secs(2));
    // One at a time: at equal loads p2c's first draw wins, so the calls
    // follow the weights.
    for _ in 0..800 {
        pool.call(call()).await.unwrap();
    }
    let (na, nb, nc) = {
        let m = calls.lock().unwrap();
        let get = |p: u16| m.get(&format!("127.0.0.1:{p}")).copied().unwrap_or(0);
        (get(pa), get(pb), get(pc))
    };
    assert_eq!(nc, 0, "priority 1 took calls: {na} {nb} {nc}");
    assert!((140..260).contains(&na), "{na} {nb}");
    assert!((540..660).contains(&nb), "{na} {nb}");
    // Priority 0 gone: priority 1 takes the calls.
    a.close();
    b.close();
    drop((a, b));
    let mut ok = 0;
    for _ in 0..100 {
        if pool.call(call()).await.is_ok() {
            ok += 1;
        }
    }
    let nc = calls
        .lock()
        .unwrap()
        .get(&format!("127.0.0.1:{pc}"))
        .copied()
        .unwrap_or(0);
    assert!(ok >= 95 && nc == ok, "{ok} succeeded, {nc} on priority 1");
}

#[tokio::test]
async fn peers_leaving_dns_are_drained_not_cut() {
    // [POOL-33] a peer that leaves the answer takes no new call, and the
    // call it has in flight finishes.
    let server = DnsServer::start().await;
    server.set_a("local.test", &[LOCAL], 60);
    let (release, wait) = tokio::sync::watch::channel(false);
    let slow = Channel::new("svc");
    let ps = slow.listen("127.0.0.1:0").await.unwrap().port();
    slow.register("svc", "slow", move |_req: Request| {
        let mut wait = wait.clone();
        async move {
            let _ = wait.wait_for(|go| *go).await;
            Ok(Response::ok(Bytes::new(), Bytes::from_static(b"finished")))
        }
    });
    let calls = Arc::new(Mutex::new(HashMap::new()));
    let (_other, po) = counting_server(calls.clone()).await;
    let name = "_svc._tcp.drain.test";
    server.set_srv(name, &[(0, 1, ps, "local.test")], 0);
    let r = resolver(&server, |c| {
        c.set_ttl_floor(Duration::from_millis(50));
    });
    let pool = PeerPool::new(
        Channel::new("caller"),
        Vec::<String>::new(),
        PoolConfig::default(),
    );
    pool.follow(r.watch(DnsQuery::srv(name)));
    let slow_addr = format!("127.0.0.1:{ps}");
    until(Duration::from_secs(5), || pool.peer(&slow_addr).is_some()).await;
    let in_flight = {
        let pool = pool.clone();
        tokio::spawn(async move {
            pool.call(CallRequest::new("svc", "slow").timeout(Duration::from_secs(10)))
                .await
        })
    };
    until(Duration::from_secs(5), || {
        slow.connections()
            .iter()
            .any(|c| c.calls_in_flight().1 == 1)
    })
    .await;
    // The answer moves to the other server.
    server.set_srv(name, &[(0, 1, po, "local.test")], 0);
    until(Duration::from_secs(5), || pool.peer(&slow_addr).is_none()).await;
    let r = pool
        .call(CallRequest::new("svc", "who").timeout(Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(r.arg3, format!("127.0.0.1:{po}").as_bytes());
    assert!(!in_flight.is_finished());
    release.send(true).unwrap();
    let done = in_flight.await.unwrap().unwrap();
    assert_eq!(done.arg3, &b"finished"[..]);
}
