//! The peer pool (spec/11-peer-policy.md): selection, connections, retries,
//! the retry budget, circuit breakers and load shedding, on in-memory peers
//! with a paused clock; then fault injection over loopback TCP through a
//! proxy that delays, drops, resets and blackholes connections.

#[path = "support/proxy.rs"]
mod proxy;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::{BoxFuture, join_all};
use tchan::Body;
use tchan::frame::ErrorCode;
use tchan::peer::breaker::Class;
use tchan::peer::{
    Backoff, BreakerConfig, BreakerState, BudgetConfig, CallPolicy, Classifier, Connector,
    PeerFile, PeerPool, PoolConfig, StaticPeers, Stop, Strategy,
};
use tchan::server::shed;
use tchan::{CallRequest, CallResponse, Channel, ChannelConfig, Client, Error, Request, Response};

use proxy::{Fault, Proxy};

const MS: Duration = Duration::from_millis(1);

fn tnow() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

// === servers ===

/// What a test server does with each call.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Ok,
    Fail(ErrorCode),
    AppError,
    Sleep(Duration),
    /// Sleep, then fail with the code.
    SleepFail(Duration, ErrorCode),
    /// Fail with the code on `n - 1` calls out of every `n`.
    FailMostly(u32, ErrorCode),
}

#[derive(Clone)]
struct Server {
    name: String,
    channel: Channel,
    mode: Arc<Mutex<Mode>>,
    calls: Arc<AtomicUsize>,
    ttls: Arc<Mutex<Vec<Duration>>>,
}

impl Server {
    fn new(name: &str, mode: Mode) -> Server {
        let s = Server {
            name: name.to_string(),
            channel: Channel::new(name),
            mode: Arc::new(Mutex::new(mode)),
            calls: Arc::new(AtomicUsize::new(0)),
            ttls: Arc::new(Mutex::new(Vec::new())),
        };
        let st = s.clone();
        s.channel
            .register("svc", "m", move |req: Request| serve(st.clone(), req));
        s
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn ttls(&self) -> Vec<Duration> {
        self.ttls.lock().unwrap().clone()
    }
}

async fn serve(st: Server, req: Request) -> tchan::server::HandlerResult {
    let n = st.calls.fetch_add(1, Ordering::SeqCst) as u32;
    st.ttls
        .lock()
        .unwrap()
        .push(req.deadline.saturating_duration_since(tnow()));
    let mode = *st.mode.lock().unwrap();
    let name = st.name.clone();
    let arg3 = req.arg3.into_bytes().await?;
    match mode {
        Mode::Ok => Ok(Response::ok(name, arg3)),
        Mode::Fail(code) => Err(tchan::Error::new(code, "told to fail")),
        Mode::AppError => Ok(Response::app_error(name, "app error")),
        Mode::Sleep(d) => {
            tokio::time::sleep(d).await;
            Ok(Response::ok(name, arg3))
        }
        Mode::SleepFail(d, code) => {
            tokio::time::sleep(d).await;
            Err(tchan::Error::new(code, "told to fail late"))
        }
        Mode::FailMostly(every, code) => {
            if n.is_multiple_of(every) {
                Ok(Response::ok(name, arg3))
            } else {
                Err(tchan::Error::new(code, "told to fail mostly"))
            }
        }
    }
}

/// Who answered a successful call.
fn who(r: &Result<CallResponse, Error>) -> String {
    match r {
        Ok(resp) => String::from_utf8_lossy(&resp.arg2).into_owned(),
        Err(e) => format!("error {}", e.code().name()),
    }
}

fn req() -> CallRequest {
    CallRequest::new("svc", "m").arg3("x")
}

// === in-memory peers ===

/// Connects to in-memory servers by name over `tokio::io::duplex`; peers can
/// be taken down (connects fail, open connections close) and brought back.
#[derive(Clone, Default)]
struct Mem {
    peers: Arc<Mutex<HashMap<String, MemPeer>>>,
}

struct MemPeer {
    channel: Channel,
    up: bool,
    /// Accepts connections and never answers init.
    silent: bool,
    /// The far ends of silent connections, kept open.
    held: Vec<tokio::io::DuplexStream>,
    accepted: Vec<Client>,
    connects: Vec<std::time::Instant>,
}

impl Mem {
    fn serve(&self, addr: &str, server: &Server) {
        self.peers.lock().unwrap().insert(
            addr.to_string(),
            MemPeer {
                channel: server.channel.clone(),
                up: true,
                silent: false,
                held: Vec::new(),
                accepted: Vec::new(),
                connects: Vec::new(),
            },
        );
    }

    fn down(&self, addr: &str) {
        let mut peers = self.peers.lock().unwrap();
        let p = peers.get_mut(addr).unwrap();
        p.up = false;
        for c in p.accepted.drain(..) {
            c.close();
        }
    }

    fn silence(&self, addr: &str) {
        self.peers.lock().unwrap().get_mut(addr).unwrap().silent = true;
    }

    fn up(&self, addr: &str) {
        self.peers.lock().unwrap().get_mut(addr).unwrap().up = true;
    }

    fn connects(&self, addr: &str) -> Vec<std::time::Instant> {
        self.peers.lock().unwrap()[addr].connects.clone()
    }

    fn open_on_server(&self, addr: &str) -> usize {
        let peers = self.peers.lock().unwrap();
        peers[addr]
            .accepted
            .iter()
            .filter(|c| !c.is_closed())
            .count()
    }
}

impl Connector for Mem {
    fn connect(&self, channel: &Channel, addr: &str) -> BoxFuture<'static, Result<Client, Error>> {
        let this = self.clone();
        let channel = channel.clone();
        let addr = addr.to_string();
        Box::pin(async move {
            let server = {
                let mut peers = this.peers.lock().unwrap();
                let Some(p) = peers.get_mut(&addr) else {
                    return Err(Error::new(ErrorCode::NETWORK, "no such peer"));
                };
                p.connects.push(tnow());
                if !p.up {
                    return Err(Error::new(ErrorCode::NETWORK, "connection refused"));
                }
                p.channel.clone()
            };
            let (a, b) = tokio::io::duplex(1 << 16);
            let b = {
                let mut peers = this.peers.lock().unwrap();
                let p = peers.get_mut(&addr).unwrap();
                if p.silent {
                    p.held.push(b);
                    None
                } else {
                    Some(b)
                }
            };
            let Some(b) = b else {
                return channel.connect_io(a, None).await;
            };
            let accepted = server.accept_io(b);
            this.peers
                .lock()
                .unwrap()
                .get_mut(&addr)
                .unwrap()
                .accepted
                .push(accepted);
            channel.connect_io(a, None).await
        })
    }
}

/// In-memory servers `p0`, `p1`, ... in `modes`, and a pool over them.
struct Fleet {
    mem: Mem,
    servers: Vec<Server>,
    pool: PeerPool,
}

fn quiet_breaker() -> BreakerConfig {
    BreakerConfig::disabled()
}

fn config(mem: &Mem) -> PoolConfig {
    {
        let mut c = PoolConfig::default();
        c.set_connector(Arc::new(mem.clone()));
        c.set_seed(Some(7));
        c.set_breaker(quiet_breaker());
        c.set_reconnect(Backoff::new(100 * MS, 1000 * MS).with_jitter(0.0));
        c
    }
}

fn fleet(modes: &[Mode], tweak: impl FnOnce(&mut PoolConfig)) -> Fleet {
    let mem = Mem::default();
    let servers: Vec<Server> = modes
        .iter()
        .enumerate()
        .map(|(i, m)| Server::new(&format!("p{i}"), *m))
        .collect();
    for s in &servers {
        mem.serve(&s.name, s);
    }
    let mut cfg = config(&mem);
    tweak(&mut cfg);
    let pool = PeerPool::new(
        Channel::new("caller"),
        servers.iter().map(|s| s.name.clone()),
        cfg,
    );
    Fleet { mem, servers, pool }
}

// === selection and connections (paused clock, in-memory peers) ===

#[tokio::test(start_paused = true)]
async fn lazy_connect_one_connection_per_peer() {
    // [POOL-9] nothing is opened before the first call; then one connection
    // per peer, reused.
    let f = fleet(&[Mode::Ok, Mode::Ok, Mode::Ok], |_| {});
    let s = f.pool.stats();
    assert_eq!((s.connections, s.connects), (0, 0));
    assert!(f.pool.peers().iter().all(|p| p.connections == 0));
    for _ in 0..30 {
        let (r, st) = f.pool.call_with_stats(req()).await;
        assert!(r.unwrap().is_ok());
        assert_eq!(st.attempts, 1);
    }
    let s = f.pool.stats();
    assert_eq!(
        (s.connections, s.connects, s.calls, s.attempts),
        (3, 3, 30, 30)
    );
    assert!(f.servers.iter().all(|s| s.calls() > 0));
    assert!(f.pool.peers().iter().all(|p| p.connections == 1));
}

#[tokio::test(start_paused = true)]
async fn a_second_connection_when_the_first_is_busy() {
    // [POOL-9]
    let f = fleet(&[Mode::Sleep(100 * MS)], |c| {
        c.set_connections_per_peer(2).unwrap();
    });
    assert!(f.pool.call(req()).await.is_ok());
    assert_eq!(f.pool.stats().connections, 1);
    let calls = (0..10).map(|_| f.pool.call(req()));
    let results = join_all(calls).await;
    assert!(results.iter().all(|r| r.is_ok()));
    let p = &f.pool.peers()[0];
    assert_eq!(p.connections, 2);
    assert_eq!(f.pool.stats().connects, 2);
    assert_eq!(f.mem.connects("p0").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn reconnects_back_off_exponentially() {
    // [POOL-10] 100 ms, 200 ms, 400 ms with jitter 0; a peer waiting out its
    // backoff takes no call (the pool declines at once).
    let f = fleet(&[Mode::Ok], |c| {
        c.set_max_retries(0);
    });
    f.mem.down("p0");
    let t0 = tnow();
    let e = f.pool.call(req()).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NETWORK);
    let e = f.pool.call(req()).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::DECLINED, "{e:?}");
    assert!(e.is_local());
    for wait in [100, 200, 400] {
        tokio::time::sleep(wait * MS).await;
        let e = f.pool.call(req()).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::NETWORK);
    }
    let at: Vec<u128> = f
        .mem
        .connects("p0")
        .iter()
        .map(|t| (*t - t0).as_millis())
        .collect();
    assert_eq!(at, [0, 100, 300, 700]);
    assert_eq!(f.pool.peers()[0].connect_failures, 4);
    f.mem.up("p0");
    tokio::time::sleep(800 * MS).await;
    assert!(f.pool.call(req()).await.is_ok());
    assert_eq!(f.pool.peers()[0].connect_failures, 0);
    assert_eq!(f.pool.stats().connect_failures, 4);
}

#[tokio::test(start_paused = true)]
async fn the_connection_cap_closes_idle_connections() {
    // [POOL-11] three peers, room for two connections.
    let f = fleet(&[Mode::Ok, Mode::Ok, Mode::Ok], |c| {
        c.set_max_connections(2).unwrap();
        c.set_selection(Strategy::RoundRobin);
    });
    for _ in 0..9 {
        assert!(f.pool.call(req()).await.is_ok());
        assert!(f.pool.stats().connections <= 2);
    }
    assert!(f.servers.iter().all(|s| s.calls() == 3));
    // Two slow calls hold both connections; a call that lands on the third
    // peer cannot connect, fails locally with busy, and is retried on a peer
    // that has a connection.
    for s in &f.servers {
        s.set(Mode::Sleep(50 * MS));
    }
    let results = join_all((0..6).map(|_| f.pool.call_with_stats(req()))).await;
    for (r, _) in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    assert!(results.iter().any(|(_, st)| st.attempts > 1));
    assert!(f.pool.stats().connections <= 2);
}

#[tokio::test(start_paused = true)]
async fn idle_connections_are_swept_and_the_sweeper_ends_with_the_pool() {
    // [POOL-12]
    let metrics = tokio::runtime::Handle::current().metrics();
    let base = metrics.num_alive_tasks();
    let caller = Channel::new("caller");
    let mem = Mem::default();
    let srv = Server::new("p0", Mode::Ok);
    mem.serve("p0", &srv);
    let pool = PeerPool::new(caller.clone(), ["p0"], {
        let mut c = config(&mem);
        c.set_idle_timeout(Some(Duration::from_secs(60)));
        c.set_sweep_interval(Duration::from_secs(10))
            .expect("valid");
        c
    });
    assert!(pool.call(req()).await.is_ok());
    assert_eq!(pool.stats().connections, 1);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(pool.stats().connections, 1, "not idle long enough");
    tokio::time::sleep(Duration::from_secs(45)).await;
    assert_eq!(pool.stats().connections, 0);
    tokio::time::sleep(10 * MS).await;
    assert_eq!(mem.open_on_server("p0"), 0);
    // A new call reconnects; dropping the pool closes its connection and
    // ends its sweep task.
    assert!(pool.call(req()).await.is_ok());
    assert_eq!(caller.active_connections(), 1);
    drop(pool);
    tokio::time::sleep(10 * MS).await;
    assert_eq!(caller.active_connections(), 0);
    assert_eq!(mem.open_on_server("p0"), 0);
    assert!(
        metrics.num_alive_tasks() <= base + 1,
        "tasks left: {} (base {base})",
        metrics.num_alive_tasks()
    );
}

#[tokio::test(start_paused = true)]
async fn peers_come_and_go_at_runtime() {
    // [POOL-1]
    let f = fleet(&[Mode::Sleep(100 * MS), Mode::Ok], |_| {});
    f.pool.set_peers(["p0"]);
    assert_eq!(f.pool.peers().len(), 1);
    // A call in flight on p0 finishes after p0 is removed; then its
    // connection closes, and new calls go to p1 only.
    let pool = f.pool.clone();
    let slow = tokio::spawn(async move { pool.call(req()).await });
    tokio::time::sleep(10 * MS).await;
    assert_eq!(f.servers[0].calls(), 1, "the slow call reached p0");
    assert!(f.pool.add_peer("p1"));
    assert!(!f.pool.add_peer("p1"), "already there");
    let ramp = f.pool.peer("p1").unwrap().ramp;
    assert_eq!(ramp, 0.1, "a peer added at runtime ramps up");
    assert!(f.pool.remove_peer("p0"));
    assert!(!f.pool.remove_peer("p0"));
    assert_eq!(f.pool.peers().len(), 1);
    assert_eq!(f.mem.open_on_server("p0"), 1, "kept while the call runs");
    assert_eq!(who(&slow.await.unwrap()), "p0");
    tokio::time::sleep(10 * MS).await;
    assert_eq!(f.mem.open_on_server("p0"), 0, "closed once the call ended");
    for _ in 0..5 {
        assert_eq!(who(&f.pool.call(req()).await), "p1");
    }
    f.pool.set_peers(Vec::<String>::new());
    let e = f.pool.call(req()).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::DECLINED);
}

#[tokio::test(start_paused = true)]
async fn a_connection_the_peer_opened_can_be_adopted() {
    // [POOL-9] the pool uses a connection it did not open (here one the
    // peer opened to us) instead of connecting.
    let backend = Server::new("backend", Mode::Ok);
    let ours = Channel::new("caller");
    let (a, b) = tokio::io::duplex(1 << 16);
    let inbound = ours.accept_io(b);
    let _outbound = backend.channel.connect_io(a, None).await.unwrap();
    // A connector that knows no peer: connecting would fail.
    let pool = PeerPool::new(ours, Vec::<String>::new(), config(&Mem::default()));
    assert!(pool.adopt("backend:4040", inbound));
    for _ in 0..3 {
        assert_eq!(who(&pool.call(req()).await), "backend");
    }
    let s = pool.stats();
    assert_eq!((s.connects, s.connections), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn peer_lists_from_a_file_and_a_static_source() {
    // [POOL-2]
    let path = std::env::temp_dir().join(format!("tchan-peers-{}.txt", std::process::id()));
    std::fs::write(&path, "# the fleet\np0:1\n").unwrap();
    let f = fleet(&[], |_| {});
    let task = f.pool.follow(PeerFile::new(&path).interval(100 * MS));
    let addrs = |p: &PeerPool| -> Vec<String> { p.peers().into_iter().map(|s| s.addr).collect() };
    tokio::time::sleep(50 * MS).await;
    assert_eq!(addrs(&f.pool), ["p0:1"]);
    std::fs::write(&path, r#"["p0:1", "p1:2"]"#).unwrap();
    tokio::time::sleep(150 * MS).await;
    assert_eq!(addrs(&f.pool), ["p0:1", "p1:2"]);
    // A file that cannot be parsed or read leaves the list as it was.
    std::fs::write(&path, "not a peer").unwrap();
    tokio::time::sleep(150 * MS).await;
    assert_eq!(addrs(&f.pool), ["p0:1", "p1:2"]);
    std::fs::remove_file(&path).unwrap();
    tokio::time::sleep(150 * MS).await;
    assert_eq!(addrs(&f.pool), ["p0:1", "p1:2"]);
    std::fs::write(&path, "p1:2\n").unwrap();
    tokio::time::sleep(150 * MS).await;
    assert_eq!(addrs(&f.pool), ["p1:2"]);
    std::fs::remove_file(&path).ok();
    // The follower ends with the pool.
    let Fleet { pool, .. } = f;
    drop(pool);
    tokio::time::sleep(10 * MS).await;
    assert!(task.is_finished());

    let f = fleet(&[], |_| {});
    f.pool
        .follow(StaticPeers::new(["a:1", "b:2"]))
        .await
        .unwrap();
    assert_eq!(addrs(&f.pool), ["a:1", "b:2"]);
}

#[tokio::test(start_paused = true)]
async fn a_new_peer_ramps_up() {
    // [POOL-6] under steady concurrent load, a peer added at runtime takes a
    // small share at first and an even share once ramped.
    let f = fleet(&[Mode::Sleep(50 * MS), Mode::Sleep(50 * MS)], |c| {
        c.set_ramp_up(Duration::from_secs(4));
    });
    f.pool.set_peers(["p0"]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let pool = f.pool.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    assert!(pool.call(req()).await.is_ok());
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    f.pool.add_peer("p1");
    let share = |a0: usize, a1: usize| {
        let d0 = f.servers[0].calls() - a0;
        let d1 = f.servers[1].calls() - a1;
        d1 as f64 / (d0 + d1) as f64
    };
    let (a0, a1) = (f.servers[0].calls(), f.servers[1].calls());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let early = share(a0, a1);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (a0, a1) = (f.servers[0].calls(), f.servers[1].calls());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let late = share(a0, a1);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert!(early < 0.3, "early share {early}");
    assert!(late > 0.4, "late share {late}");
}

#[tokio::test(start_paused = true)]
async fn peak_ewma_avoids_a_slow_peer() {
    // [POOL-5] calls one at a time: calls in flight cannot tell the peers
    // apart, latency can.
    let f = fleet(&[Mode::Sleep(50 * MS), Mode::Sleep(MS)], |c| {
        c.set_selection(Strategy::PeakEwma);
    });
    for _ in 0..100 {
        assert!(f.pool.call(req()).await.is_ok());
    }
    assert!(f.servers[1].calls() >= 90, "{}", f.servers[1].calls());
    let p = f.pool.peers();
    // The slow peer's peak shows at once; the fast one's estimate falls
    // from the 30 ms default only as fast as the 10 s decay allows.
    assert!(
        p[0].rtt >= 45 * MS && p[0].rtt > p[1].rtt,
        "{:?} vs {:?}",
        p[0].rtt,
        p[1].rtt
    );
}

#[tokio::test(start_paused = true)]
async fn p2c_sends_fewer_calls_to_a_loaded_peer() {
    // [POOL-3]
    let f = fleet(
        &[
            Mode::Sleep(200 * MS),
            Mode::Sleep(5 * MS),
            Mode::Sleep(5 * MS),
        ],
        |_| {},
    );
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let pool = f.pool.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    assert!(pool.call(req()).await.is_ok());
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let slow = f.servers[0].calls();
    assert!(slow < 300 / 10, "the slow peer got {slow} of 300 calls");
}

// === retries ===

/// Two peers: p0 in `mode`, p1 fine; round robin starts on p0.
async fn sleepy(req: Request) -> tchan::server::HandlerResult {
    tokio::time::sleep(100 * MS).await;
    Ok(Response::ok(Bytes::new(), req.arg3.into_bytes().await?))
}

async fn first_fails(
    mode: Mode,
    re: Option<&str>,
    idempotent: bool,
) -> (Result<CallResponse, Error>, u32) {
    let f = fleet(&[mode, Mode::Ok], |c| {
        c.set_selection(Strategy::RoundRobin);
    });
    let mut r = req();
    if let Some(re) = re {
        r.options.set_retry_flags(re);
    }
    let policy = CallPolicy {
        idempotent,
        ..CallPolicy::default()
    };
    let (res, st) = f.pool.call_with(r, policy).await;
    assert_eq!(f.servers[0].calls(), 1);
    (res, st.attempts)
}

#[tokio::test(start_paused = true)]
async fn the_retry_rules() {
    // [POOL-14] [ERR-8] [DEV-19]: busy and declined from a peer are retried
    // on another peer; unexpected only for idempotent calls (node retries it
    // anyway); timeouts only with `re: t`; `re: n` never; bad request,
    // cancelled and application errors never.
    use ErrorCode as C;
    let cases: &[(Mode, Option<&str>, bool, u32)] = &[
        (Mode::Fail(C::BUSY), None, false, 2),
        (Mode::Fail(C::DECLINED), None, false, 2),
        (Mode::Fail(C::BUSY), Some("n"), true, 1),
        (Mode::Fail(C::UNEXPECTED), None, false, 1),
        (Mode::Fail(C::UNEXPECTED), Some("ct"), false, 1),
        (Mode::Fail(C::UNEXPECTED), None, true, 2),
        (Mode::Fail(C::TIMEOUT), None, false, 1),
        (Mode::Fail(C::TIMEOUT), Some("c"), true, 1),
        (Mode::Fail(C::TIMEOUT), Some("t"), false, 2),
        (Mode::Fail(C::TIMEOUT), Some("ct"), false, 2),
        (Mode::Fail(C::BAD_REQUEST), Some("ct"), true, 1),
        (Mode::Fail(C::CANCELLED), Some("ct"), true, 1),
        (Mode::AppError, Some("ct"), true, 1),
    ];
    for &(mode, re, idem, want) in cases {
        let (res, attempts) = first_fails(mode, re, idem).await;
        assert_eq!(
            attempts, want,
            "{mode:?} re={re:?} idempotent={idem}: {res:?}"
        );
        match (want, mode) {
            (2, _) => assert_eq!(who(&res), "p1"),
            (_, Mode::AppError) => assert!(res.unwrap().is_application_error()),
            (_, Mode::Fail(code)) => assert_eq!(res.unwrap_err().code(), code),
            _ => unreachable!(),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn connection_errors_are_retried_unless_re_forbids() {
    // [POOL-14] [POOL-13] a peer that refuses connections, or drops one in
    // the middle of a call.
    let f = fleet(&[Mode::Ok, Mode::Ok], |c| {
        c.set_selection(Strategy::RoundRobin);
    });
    f.mem.down("p0");
    let (r, st) = f.pool.call_with_stats(req()).await;
    assert_eq!(who(&r), "p1");
    assert_eq!(st.peers, ["p0", "p1"]);

    let f = fleet(&[Mode::Sleep(Duration::from_secs(1)), Mode::Ok], |c| {
        c.set_selection(Strategy::RoundRobin);
    });
    let pool = f.pool.clone();
    let call = tokio::spawn(async move {
        let mut r = req();
        r.options.set_timeout(Duration::from_secs(5));
        pool.call_with_stats(r).await
    });
    tokio::time::sleep(10 * MS).await;
    f.mem.down("p0");
    let (r, st) = call.await.unwrap();
    assert_eq!(who(&r), "p1");
    assert_eq!(st.attempts, 2);

    let f = fleet(&[Mode::Ok, Mode::Ok], |c| {
        c.set_selection(Strategy::RoundRobin);
    });
    f.mem.down("p0");
    let mut r = req();
    r.options.set_retry_flags("n");
    let (r, st) = f.pool.call_with_stats(r).await;
    assert_eq!(r.unwrap_err().code(), ErrorCode::NETWORK);
    assert_eq!((st.attempts, st.stop), (1, Some(Stop::NotRetryable)));
}

#[tokio::test(start_paused = true)]
async fn retries_avoid_peers_already_tried() {
    // [POOL-7]
    let f = fleet(&[Mode::Fail(ErrorCode::BUSY); 3], |_| {});
    for _ in 0..10 {
        let (r, st) = f.pool.call_with_stats(req()).await;
        assert_eq!(r.unwrap_err().code(), ErrorCode::BUSY);
        let mut peers = st.peers.clone();
        peers.sort();
        assert_eq!(peers, ["p0", "p1", "p2"]);
        assert_eq!(st.stop, Some(Stop::NoRetriesLeft));
    }
}

#[tokio::test(start_paused = true)]
async fn each_attempt_gets_what_is_left_of_the_deadline() {
    // [POOL-16] p0 answers busy after 400 ms of a 1 s call: p1 gets 600 ms.
    let f = fleet(
        &[Mode::SleepFail(400 * MS, ErrorCode::BUSY), Mode::Ok],
        |c| {
            c.set_selection(Strategy::RoundRobin);
        },
    );
    let t0 = tnow();
    assert_eq!(who(&f.pool.call(req()).await), "p1");
    assert_eq!(tnow() - t0, 400 * MS);
    assert_eq!(f.servers[0].ttls(), [1000 * MS]);
    assert_eq!(f.servers[1].ttls(), [600 * MS]);

    // With a per-attempt timeout of 300 ms and `re: ct`, a peer that never
    // answers costs 300 ms, and the next attempt gets 300 ms too.
    let f = fleet(&[Mode::Sleep(Duration::from_secs(10)), Mode::Ok], |c| {
        c.set_selection(Strategy::RoundRobin);
        c.set_attempt_timeout(Some(300 * MS));
    });
    let mut r = req();
    r.options.set_retry_flags("ct");
    let t0 = tnow();
    let (res, st) = f.pool.call_with_stats(r).await;
    assert_eq!(who(&res), "p1");
    assert_eq!(st.attempts, 2);
    assert_eq!(tnow() - t0, 300 * MS);
    assert_eq!(f.servers[0].ttls(), [300 * MS]);
    assert_eq!(f.servers[1].ttls(), [300 * MS]);

    // Without `t`, the timeout is final.
    let (res, st) = f.pool.call_with_stats(req()).await;
    assert_eq!(res.unwrap_err().code(), ErrorCode::TIMEOUT);
    assert_eq!((st.attempts, st.stop), (1, Some(Stop::NotRetryable)));

    // A timeout that uses the whole deadline leaves nothing to retry with.
    let f = fleet(&[Mode::Sleep(Duration::from_secs(10)), Mode::Ok], |c| {
        c.set_selection(Strategy::RoundRobin);
    });
    let mut r = req();
    r.options.set_retry_flags("ct");
    let t0 = tnow();
    let (res, st) = f.pool.call_with_stats(r).await;
    assert_eq!(res.unwrap_err().code(), ErrorCode::TIMEOUT);
    assert_eq!((st.attempts, st.stop), (1, Some(Stop::NoTimeLeft)));
    assert_eq!(tnow() - t0, 1000 * MS);
}

#[tokio::test(start_paused = true)]
async fn retry_limits_and_streamed_bodies() {
    // [POOL-17] [POOL-19]
    let f = fleet(&[Mode::Fail(ErrorCode::BUSY); 3], |c| {
        c.set_max_retries(1);
    });
    let (_, st) = f.pool.call_with_stats(req()).await;
    assert_eq!((st.attempts, st.retries()), (2, 1));
    let one = CallPolicy {
        max_retries: Some(0),
        ..CallPolicy::default()
    };
    let (_, st) = f.pool.call_with(req(), one).await;
    assert_eq!((st.attempts, st.stop), (1, Some(Stop::NoRetriesLeft)));
    let s = f.pool.stats();
    assert_eq!((s.calls, s.attempts, s.retries), (2, 3, 1));

    // A streamed arg3 cannot be sent twice...
    let stream = || {
        let chunks = futures::stream::iter([Ok(Bytes::from_static(b"chunk"))]);
        CallRequest::new("svc", "m").arg3(Body::from_stream(chunks))
    };
    let (r, st) = f.pool.call_with_stats(stream()).await;
    assert_eq!(r.unwrap_err().code(), ErrorCode::BUSY);
    assert_eq!((st.attempts, st.stop), (1, Some(Stop::BodyConsumed)));
    // ...but one that was never sent (the connect failed) can.
    let f = fleet(&[Mode::Ok, Mode::Ok], |c| {
        c.set_selection(Strategy::RoundRobin);
    });
    f.mem.down("p0");
    let (r, st) = f.pool.call_with_stats(stream()).await;
    assert_eq!(r.unwrap().arg3, Bytes::from_static(b"chunk"));
    assert_eq!(st.attempts, 2);
}

// === circuit breakers ===

/// Collects the pool's tracing events (target `tchan::peer`) as text.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        m.target() == "tchan::peer"
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        let mut f = Fields(String::new());
        e.record(&mut f);
        self.0.lock().unwrap().push(f.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn breaker(consecutive: u32) -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: consecutive,
        success_rate: None,
        backoff: Backoff::new(100 * MS, 1000 * MS).with_jitter(0.0),
        probes: 2,
    }
}

#[tokio::test(start_paused = true)]
async fn a_breaker_opens_fails_fast_probes_and_closes() {
    // [POOL-20] [POOL-8] [POOL-15] [POOL-22] [POOL-24]
    let capture = Capture::default();
    // With a single (thread-scoped) dispatcher registered, tracing asks only
    // the registering thread's dispatcher about a new callsite, so a test on
    // another thread could mark the pool's callsites "never". A second
    // dispatcher makes tracing ask every registered one.
    let _second = tracing::Dispatch::new(Capture::default());
    let _guard = tracing::subscriber::set_default(capture.clone());
    let f = fleet(&[Mode::Fail(ErrorCode::UNEXPECTED)], |c| {
        c.set_breaker(breaker(3));
    });
    for _ in 0..3 {
        let e = f.pool.call(req()).await.unwrap_err();
        assert_eq!((e.code(), e.is_local()), (ErrorCode::UNEXPECTED, false));
    }
    assert_eq!(f.pool.peer("p0").unwrap().breaker, BreakerState::Open);
    // Every peer open: declined at once, locally, with no attempt, and no
    // retry even though retries are left.
    let t0 = tnow();
    let mut r = req();
    r.options.set_retry_flags("ct");
    let (res, st) = f.pool.call_with_stats(r).await;
    let e = res.unwrap_err();
    assert_eq!((e.code(), e.is_local()), (ErrorCode::DECLINED, true));
    assert_eq!((st.attempts, st.stop), (0, Some(Stop::NoPeerAvailable)));
    assert_eq!(tnow(), t0);
    assert_eq!(f.servers[0].calls(), 3);
    assert_eq!(f.pool.stats().declined, 1);
    // After the backoff: half-open, two probes, closed.
    f.servers[0].set(Mode::Ok);
    tokio::time::sleep(100 * MS).await;
    assert_eq!(f.pool.peer("p0").unwrap().breaker, BreakerState::HalfOpen);
    assert!(f.pool.call(req()).await.is_ok());
    assert_eq!(f.pool.peer("p0").unwrap().breaker, BreakerState::HalfOpen);
    assert!(f.pool.call(req()).await.is_ok());
    let p = f.pool.peer("p0").unwrap();
    assert_eq!(p.breaker, BreakerState::Closed);
    assert_eq!((p.times_opened, p.times_recovered), (1, 1));
    assert!(p.ramp < 1.0, "a recovered peer ramps up");
    let events = capture.0.lock().unwrap().clone();
    let changes: Vec<&String> = events
        .iter()
        .filter(|e| e.contains("circuit breaker state changed"))
        .collect();
    assert_eq!(changes.len(), 3, "{events:#?}");
    assert!(changes[0].contains("from=closed") && changes[0].contains("to=open"));
    assert!(changes[1].contains("to=half-open"));
    assert!(changes[2].contains("from=half-open") && changes[2].contains("to=closed"));
    assert!(changes.iter().all(|e| e.contains("peer=p0")));
}

#[tokio::test(start_paused = true)]
async fn a_failing_probe_reopens_the_breaker() {
    // [POOL-22] [POOL-8] the open peer is skipped while the other takes
    // every call.
    let f = fleet(&[Mode::Fail(ErrorCode::BUSY), Mode::Ok], |c| {
        c.set_breaker(breaker(2));
        c.set_selection(Strategy::RoundRobin);
        c.set_ramp_up(Duration::ZERO);
    });
    // Busy is retried on p1, so every call succeeds; p0 opens after 2.
    for _ in 0..4 {
        assert_eq!(who(&f.pool.call(req()).await), "p1");
    }
    assert_eq!(f.servers[0].calls(), 2);
    assert_eq!(f.pool.peer("p0").unwrap().breaker, BreakerState::Open);
    tokio::time::sleep(100 * MS).await;
    // The probe fails (and is retried on p1); open again for 200 ms.
    for _ in 0..4 {
        assert_eq!(who(&f.pool.call(req()).await), "p1");
    }
    assert_eq!(f.servers[0].calls(), 3);
    assert_eq!(f.pool.peer("p0").unwrap().times_opened, 2);
    tokio::time::sleep(150 * MS).await;
    assert_eq!(f.pool.peer("p0").unwrap().breaker, BreakerState::Open);
    tokio::time::sleep(50 * MS).await;
    assert_eq!(f.pool.peer("p0").unwrap().breaker, BreakerState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn a_low_success_rate_opens_the_breaker() {
    // [POOL-21] one success in three, never three failures in a row.
    let f = fleet(&[Mode::FailMostly(3, ErrorCode::UNEXPECTED)], |c| {
        c.set_breaker(BreakerConfig {
            consecutive_failures: 3,
            success_rate: Some(tchan::peer::SuccessRate {
                min_success_rate: 0.5,
                window: Duration::from_secs(10),
                min_calls: 10,
            }),
            ..breaker(3)
        });
    });
    let mut n = 0;
    while f.pool.peer("p0").unwrap().breaker == BreakerState::Closed {
        let _ = f.pool.call(req()).await;
        n += 1;
        assert!(n < 100);
    }
    assert_eq!(
        n, 11,
        "opens once 10 calls are in the window (the 10th succeeded)"
    );
}

/// Counts application errors as failures too.
struct StrictClassifier;

impl Classifier for StrictClassifier {
    fn classify(&self, result: Result<&CallResponse, &Error>) -> Class {
        match result {
            Ok(r) if r.is_ok() => Class::Success,
            _ => Class::Failure,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_classifier_is_pluggable() {
    // [POOL-23] by default application errors, bad requests and declines do
    // not open a breaker; a custom classifier can count them.
    for mode in [
        Mode::AppError,
        Mode::Fail(ErrorCode::BAD_REQUEST),
        Mode::Fail(ErrorCode::DECLINED),
        Mode::Fail(ErrorCode::CANCELLED),
    ] {
        let f = fleet(&[mode], |c| {
            c.set_breaker(breaker(3));
            c.set_max_retries(0);
        });
        for _ in 0..10 {
            let _ = f.pool.call(req()).await;
        }
        assert_eq!(
            f.pool.peer("p0").unwrap().breaker,
            BreakerState::Closed,
            "{mode:?}"
        );
    }
    for code in [ErrorCode::TIMEOUT, ErrorCode::BUSY, ErrorCode::UNEXPECTED] {
        let f = fleet(&[Mode::Fail(code)], |c| {
            c.set_breaker(breaker(3));
            c.set_max_retries(0);
        });
        for _ in 0..3 {
            let _ = f.pool.call(req()).await;
        }
        assert_eq!(
            f.pool.peer("p0").unwrap().breaker,
            BreakerState::Open,
            "{code}"
        );
    }
    let f = fleet(&[Mode::AppError], |c| {
        c.set_breaker(breaker(3));
        c.set_classifier(Arc::new(StrictClassifier));
    });
    for _ in 0..3 {
        assert!(f.pool.call(req()).await.unwrap().is_application_error());
    }
    assert_eq!(f.pool.peer("p0").unwrap().breaker, BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_gives_up_releases_its_peer() {
    // [POOL-27] the attempt's in-flight count and half-open probe slot come
    // back when the caller drops the call.
    let f = fleet(&[Mode::Fail(ErrorCode::BUSY)], |c| {
        c.set_breaker(BreakerConfig {
            probes: 1,
            ..breaker(1)
        });
        c.set_max_retries(0);
    });
    let _ = f.pool.call(req()).await;
    tokio::time::sleep(100 * MS).await;
    assert_eq!(f.pool.peer("p0").unwrap().breaker, BreakerState::HalfOpen);
    f.servers[0].set(Mode::Sleep(Duration::from_secs(10)));
    let mut r = req();
    r.options.set_timeout(Duration::from_secs(20));
    let gave_up = tokio::time::timeout(50 * MS, f.pool.call(r)).await;
    assert!(gave_up.is_err());
    let p = f.pool.peer("p0").unwrap();
    assert_eq!((p.in_flight, p.breaker), (0, BreakerState::HalfOpen));
    // The probe slot is free again.
    f.servers[0].set(Mode::Ok);
    assert!(f.pool.call(req()).await.is_ok());
    assert_eq!(f.pool.peer("p0").unwrap().breaker, BreakerState::Closed);
}

// === load shedding ===

#[tokio::test(start_paused = true)]
async fn shedding_answers_busy_and_the_pool_goes_elsewhere() {
    // [POOL-25] [POOL-26]
    let srv = Channel::new("server");
    let limit = shed::ConcurrencyLimit::new(2);
    srv.register("svc", "m", limit.wrap(sleepy));
    srv.register("svc", "other", limit.wrap(sleepy));
    srv.register("svc", "rated", shed::rate_limit(sleepy, 10.0, 2));
    srv.register("svc", "one", shed::limit(sleepy, 1));
    let (a, b) = tokio::io::duplex(1 << 16);
    srv.accept_io(b);
    let client = Channel::new("c").connect_io(a, None).await.unwrap();

    // The limit is shared by both methods it wraps.
    let calls = (0..5).map(|i| {
        let method = if i % 2 == 0 { "m" } else { "other" };
        client.call(CallRequest::new("svc", method))
    });
    let results = join_all(calls).await;
    let busy = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e.code() == ErrorCode::BUSY && !e.is_local()))
        .count();
    assert_eq!((results.len() - busy, busy), (2, 3));
    assert_eq!(limit.in_flight(), 0);
    let results = join_all((0..3).map(|_| client.call(CallRequest::new("svc", "one")))).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);

    // Token bucket: a burst of 2, then one every 100 ms.
    let results = join_all((0..4).map(|_| client.call(CallRequest::new("svc", "rated")))).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 2);
    // Those calls took 100 ms; 50 ms more makes 1.5 tokens.
    tokio::time::sleep(50 * MS).await;
    let results = join_all((0..4).map(|_| client.call(CallRequest::new("svc", "rated")))).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);

    // Through a pool, a shedding peer's busy goes to another peer.
    let f = fleet(&[Mode::Ok], |c| {
        c.set_selection(Strategy::RoundRobin);
        c.set_ramp_up(Duration::ZERO);
    });
    let shedding = Server::new("shed", Mode::Ok);
    shedding
        .channel
        .register("svc", "m", shed::limit(sleepy, 1));
    f.mem.serve("shed", &shedding);
    f.pool.set_peers(["shed", "p0"]);
    let results = join_all((0..6).map(|_| f.pool.call(req()))).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
}

// === fault injection ===
//
// Over the in-memory connector on paused time: peers are taken down (open
// connections close, connects are refused), slowed, or made silent (they
// accept and never answer init), and every wait is virtual time, so the
// counts below do not depend on how busy the machine is. One test runs over
// loopback TCP through a proxy that resets connections, and judges only by
// what the servers and the pool counted.

/// Runs `workers` tasks calling the pool until `stop`; returns (ok, failed)
/// per task. Every call is counted exactly once.
fn load(
    pool: &PeerPool,
    workers: usize,
    stop: &Arc<std::sync::atomic::AtomicBool>,
    make: fn() -> CallRequest,
) -> Vec<tokio::task::JoinHandle<(usize, Vec<Error>)>> {
    (0..workers)
        .map(|_| {
            let pool = pool.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    match pool.call(make()).await {
                        Ok(_) => ok += 1,
                        Err(e) => failed.push(e),
                    }
                }
                (ok, failed)
            })
        })
        .collect()
}

async fn finish(
    stop: &Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(usize, Vec<Error>)>>,
) -> (usize, Vec<Error>) {
    stop.store(true, Ordering::Relaxed);
    let mut ok = 0;
    let mut failed = Vec::new();
    for t in tasks {
        let (o, f) = tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .expect("a call hung")
            .unwrap();
        ok += o;
        failed.extend(f);
    }
    (ok, failed)
}

/// Waits (in virtual time, polling every millisecond) until `done`; panics
/// after `limit` of virtual time.
async fn until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "never happened: {what}");
        tokio::time::sleep(MS).await;
    }
}

fn fault_pool(mem: &Mem, peers: &[&str], tweak: impl FnOnce(&mut PoolConfig)) -> PeerPool {
    let mut cfg = {
        let mut c = PoolConfig::default();
        c.set_connector(Arc::new(mem.clone()));
        c.set_seed(Some(11));
        c.set_connect_timeout(Duration::from_millis(500));
        c.set_reconnect(Backoff::new(20 * MS, 200 * MS));
        c
    };
    tweak(&mut cfg);
    PeerPool::new(Channel::new("caller"), peers.iter().copied(), cfg)
}

fn servers(mem: &Mem, modes: &[Mode]) -> Vec<Server> {
    modes
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let s = Server::new(&format!("p{i}"), *m);
            mem.serve(&s.name, &s);
            s
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn fault_a_peer_killed_under_load() {
    // [POOL-27] [POOL-14] calls in flight on the killed peer fail with
    // network errors and are retried on the others: no call fails.
    let mem = Mem::default();
    let s = servers(&mem, &[Mode::Sleep(2 * MS); 3]);
    let pool = fault_pool(&mem, &["p0", "p1", "p2"], |_| {});
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks = load(&pool, 8, &stop, req);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = s[0].calls();
    assert!(before > 50, "p0 served {before}");
    mem.down("p0");
    let others = s[1].calls() + s[2].calls();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok, failed) = finish(&stop, tasks).await;
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)]
    );
    let stats = pool.stats();
    assert_eq!(stats.calls as usize, ok);
    assert!(
        s[1].calls() + s[2].calls() > others + 500,
        "calls went on elsewhere"
    );
    assert_eq!(s[0].calls(), before, "the dead peer got calls");
    assert!(stats.retries > 0, "the calls in flight on p0 were retried");
}

#[tokio::test]
async fn fault_a_peer_reset_under_load_over_tcp() {
    // [POOL-27] the same over loopback TCP, with the connections reset by a
    // proxy: judged by counts, not by time.
    async fn tcp_peer(name: &str) -> (Server, Proxy) {
        let s = Server::new(name, Mode::Sleep(2 * MS));
        let addr = s.channel.listen("127.0.0.1:0").await.unwrap();
        (s, Proxy::start(addr).await)
    }
    let (s0, p0) = tcp_peer("p0").await;
    let (s1, p1) = tcp_peer("p1").await;
    let (s2, p2) = tcp_peer("p2").await;
    let mut cfg = PoolConfig::default();
    cfg.set_seed(Some(11))
        .set_reconnect(Backoff::new(20 * MS, 200 * MS));
    let addrs = [&p0, &p1, &p2].map(|p| p.addr().to_string());
    let pool = PeerPool::new(Channel::new("caller"), addrs, cfg);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks = load(&pool, 8, &stop, req);
    tokio::time::timeout(Duration::from_secs(20), until_real(|| s0.calls() >= 30))
        .await
        .expect("p0 served 30 calls");
    p0.set(Fault::Reset);
    let others = s1.calls() + s2.calls();
    tokio::time::timeout(
        Duration::from_secs(20),
        until_real(|| s1.calls() + s2.calls() >= others + 100),
    )
    .await
    .expect("the others served 100 more calls");
    let (ok, failed) = finish(&stop, tasks).await;
    assert!(failed.is_empty(), "{:?}", &failed[..failed.len().min(5)]);
    assert_eq!(pool.stats().calls as usize, ok);
    drop(pool);
}

/// Yields (1 ms real sleeps) until `done`.
async fn until_real(mut done: impl FnMut() -> bool) {
    while !done() {
        tokio::time::sleep(MS).await;
    }
}

#[tokio::test(start_paused = true)]
async fn fault_a_slow_peer() {
    // [POOL-3] [POOL-20] p0 turns slow: its calls time out (per-attempt
    // timeout, retried with `re: ct`), selection steers away and its breaker
    // opens on the timeouts.
    let mem = Mem::default();
    let s = servers(&mem, &[Mode::Sleep(MS); 3]);
    let pool = fault_pool(&mem, &["p0", "p1", "p2"], |c| {
        c.set_attempt_timeout(Some(Duration::from_millis(100)));
        c.set_breaker(BreakerConfig {
            consecutive_failures: 3,
            backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(5)),
            ..BreakerConfig::default()
        });
    });
    // Warm up: one connection to each.
    for _ in 0..30 {
        assert!(pool.call(req()).await.is_ok());
    }
    assert_eq!(pool.stats().connections, 3);
    s[0].set(Mode::Sleep(Duration::from_millis(250)));
    let before = s[0].calls();
    let fast_before = s[1].calls() + s[2].calls();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let make = || req().retry_flags("ct");
    let tasks = load(&pool, 6, &stop, make);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (ok, failed) = finish(&stop, tasks).await;
    assert!(failed.is_empty(), "{failed:?}");
    let slow = s[0].calls() - before;
    let fast = s[1].calls() + s[2].calls() - fast_before;
    assert!(
        fast > 1000 && slow * 100 < fast,
        "slow peer {slow}, fast peers {fast}, ok {ok}"
    );
    let p = pool.peer("p0").unwrap();
    assert_eq!(p.breaker, BreakerState::Open);
    assert!(p.rtt >= Duration::from_millis(50), "{:?}", p.rtt);
}

#[tokio::test(start_paused = true)]
async fn fault_a_flapping_peer() {
    // [POOL-22] [POOL-27] p0 goes down and up twice: its breaker opens,
    // probes, and closes each time; callers see no failure.
    let mem = Mem::default();
    let s = servers(&mem, &[Mode::Sleep(MS); 2]);
    let pool = fault_pool(&mem, &["p0", "p1"], |c| {
        c.set_breaker(BreakerConfig {
            consecutive_failures: 2,
            success_rate: None,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_millis(200))
                .with_jitter(0.0),
            probes: 2,
        });
        c.set_reconnect(Backoff::new(10 * MS, 40 * MS).with_jitter(0.0));
        c.set_ramp_up(Duration::from_millis(100));
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks = load(&pool, 4, &stop, || req().timeout(Duration::from_secs(2)));
    let breaker = |pool: &PeerPool| pool.peer("p0").unwrap().breaker;
    for round in 1..=2u64 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        mem.down("p0");
        until(Duration::from_secs(3), "p0's breaker opens", || {
            breaker(&pool) == BreakerState::Open
        })
        .await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        mem.up("p0");
        let served = s[0].calls();
        until(Duration::from_secs(3), "p0's breaker closes", || {
            breaker(&pool) == BreakerState::Closed
        })
        .await;
        assert!(s[0].calls() >= served + 2, "the probes reached p0");
        let p = pool.peer("p0").unwrap();
        assert!(
            p.times_opened >= round && p.times_recovered == round,
            "{p:?}"
        );
    }
    let (ok, failed) = finish(&stop, tasks).await;
    assert!(
        failed.is_empty(),
        "{} failed of {}: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 500);
}

#[tokio::test(start_paused = true)]
async fn fault_all_peers_down() {
    // [POOL-8] [POOL-15] [POOL-27] once every breaker is open, calls fail at
    // once with a local declined: no hang, nothing queued, no attempt made.
    use futures::FutureExt;
    let mem = Mem::default();
    let _s = servers(&mem, &[Mode::Ok; 3]);
    let pool = fault_pool(&mem, &["p0", "p1", "p2"], |c| {
        c.set_breaker(BreakerConfig {
            consecutive_failures: 3,
            backoff: Backoff::new(Duration::from_secs(10), Duration::from_secs(10)),
            ..BreakerConfig::default()
        });
    });
    for _ in 0..10 {
        assert!(pool.call(req()).await.is_ok());
    }
    for p in ["p0", "p1", "p2"] {
        mem.down(p);
    }
    // The first calls find the connections closed and the reconnects
    // refused; each fails (network error) after at most three attempts,
    // and within a few calls every breaker is open.
    let mut n = 0;
    while pool.peers().iter().any(|p| p.breaker != BreakerState::Open) {
        let e = pool.call(req()).await.unwrap_err();
        assert!(
            e.code() == ErrorCode::NETWORK || e.code() == ErrorCode::DECLINED,
            "{e:?}"
        );
        n += 1;
        // Peers backing off a reconnect are skipped until the backoff ends.
        assert!(n < 500, "breakers never all opened: {:?}", pool.peers());
        tokio::time::sleep(10 * MS).await;
    }
    let attempts = pool.stats().attempts;
    // Each call is answered on its first poll: it never waits for anything.
    for _ in 0..2000 {
        let r = pool
            .call(req().timeout(Duration::from_secs(5)))
            .now_or_never()
            .expect("a call with every breaker open is answered at once");
        let e = r.unwrap_err();
        assert!(e.code() == ErrorCode::DECLINED && e.is_local(), "{e:?}");
    }
    assert_eq!(pool.stats().attempts, attempts, "no attempt was made");
    assert!(
        pool.peers()
            .iter()
            .all(|p| p.breaker == BreakerState::Open && p.in_flight == 0)
    );
    assert!(pool.stats().connections <= 3);
}

#[tokio::test(start_paused = true)]
async fn fault_a_retry_storm_stays_within_the_budget() {
    // [POOL-18] [DEV-19] every peer answers busy; without a budget each call
    // would make 4 attempts. The budget allows 20% plus 1 a second over 10 s.
    let mem = Mem::default();
    let s = servers(&mem, &[Mode::Fail(ErrorCode::BUSY); 3]);
    let pool = fault_pool(&mem, &["p0", "p1", "p2"], |c| {
        c.set_breaker(BreakerConfig::disabled());
        c.set_max_retries(3);
        c.set_retry_budget(BudgetConfig {
            window: Duration::from_secs(10),
            retry_ratio: 0.2,
            min_retries_per_sec: 1,
        });
    });
    let mut outcomes = 0;
    for _ in 0..10 {
        let results = join_all((0..50).map(|_| pool.call_with_stats(req()))).await;
        for (r, _) in &results {
            assert_eq!(r.as_ref().unwrap_err().code(), ErrorCode::BUSY);
            outcomes += 1;
        }
    }
    assert_eq!(outcomes, 500);
    let st = pool.stats();
    assert_eq!(st.calls, 500);
    assert!(st.retries <= 10 + 100, "retries {}", st.retries);
    assert!(st.retries >= 100, "the budget was used: {}", st.retries);
    assert!(st.budget_exhausted > 0);
    assert_eq!(st.attempts, 500 + st.retries);
    assert_eq!(
        (s[0].calls() + s[1].calls() + s[2].calls()) as u64,
        st.attempts
    );
}

#[tokio::test(start_paused = true)]
async fn fault_a_peer_that_never_answers_init() {
    // [POOL-13] the handshake times out, then the next peer answers; the
    // silent peer then waits out its reconnect backoff.
    let mem = Mem::default();
    let _s = servers(&mem, &[Mode::Ok; 2]);
    mem.silence("p0");
    let mut cc = ChannelConfig::default();
    cc.connection_mut()
        .set_handshake_timeout(Duration::from_millis(200));
    let mut cfg = {
        let mut c = PoolConfig::default();
        c.set_connector(Arc::new(mem.clone()));
        c.set_seed(Some(3));
        c.set_selection(Strategy::RoundRobin);
        c.set_reconnect(Backoff::new(Duration::from_secs(5), Duration::from_secs(5)));
        c
    };
    let t0 = tokio::time::Instant::now();
    let pool = PeerPool::new(
        Channel::with_config("caller", cc),
        ["p0", "p1"],
        cfg.clone(),
    );
    let (res, st) = pool
        .call_with_stats(req().timeout(Duration::from_secs(2)))
        .await;
    assert_eq!(who(&res), "p1");
    assert_eq!(st.attempts, 2);
    assert_eq!(
        t0.elapsed(),
        Duration::from_millis(200),
        "the handshake timeout"
    );
    assert_eq!(mem.connects("p0").len(), 1);
    let t1 = tokio::time::Instant::now();
    let (res, st) = pool.call_with_stats(req()).await;
    assert_eq!((who(&res).as_str(), st.attempts), ("p1", 1));
    assert_eq!(t1.elapsed(), Duration::ZERO, "p0 is backing off");
    assert_eq!(mem.connects("p0").len(), 1);

    // The pool's own connect timeout applies when it is the shorter one.
    cfg.set_connect_timeout(Duration::from_millis(100));
    let pool = PeerPool::new(Channel::new("caller"), ["p0", "p1"], cfg);
    let t0 = tokio::time::Instant::now();
    let (res, st) = pool.call_with_stats(req()).await;
    assert_eq!((who(&res).as_str(), st.attempts), ("p1", 2));
    assert_eq!(
        t0.elapsed(),
        Duration::from_millis(100),
        "the connect timeout"
    );
}

// [POOL-28] a connection the peer opened to us is reused, not doubled
#[tokio::test]
async fn the_pool_reuses_a_connection_the_peer_opened_to_us() {
    use tchan::peer::{PeerPool, PoolConfig};
    use tchan::{CallRequest, Channel, Request, Response};
    let a = Channel::new("a");
    let b = Channel::new("b");
    b.register("b", "who", |_req: Request| async move {
        Ok(Response::ok(bytes::Bytes::new(), "b"))
    });
    let a_addr = a.listen("127.0.0.1:0").await.unwrap();
    let b_addr = b.listen("127.0.0.1:0").await.unwrap();
    // b dials a: a now holds an inbound connection from b, announced as b_addr.
    let _b_to_a = b.connect(a_addr).await.unwrap();
    for _ in 0..100 {
        if a.inbound_client(&b_addr.to_string()).is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(a.inbound_client(&b_addr.to_string()).is_some());
    let pool = PeerPool::new(a.clone(), [b_addr.to_string()], PoolConfig::default());
    let r = pool.call(CallRequest::new("b", "who")).await.unwrap();
    assert_eq!(&r.arg3[..], b"b");
    // b accepted no second connection: the call went over the one b opened.
    assert_eq!(b.active_connections(), 1);
    assert_eq!(a.active_connections(), 1);
}
