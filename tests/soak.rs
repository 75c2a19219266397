//! The soak: a long mixed run over loopback TCP that proves nothing leaks
//! with time. Ignored by default (it runs for minutes); run it with
//!
//! ```sh
//! cargo test --release --test soak -- --ignored --nocapture   # TCHAN_SOAK_SECS=180
//! ```
//!
//! Several clients call several servers through the peer pool: 64 B and
//! 1 MiB calls, streamed args both ways, timeouts, cancels, handler errors,
//! busy from load shedding, and a peer that stalls in the middle of a frame,
//! while connections are killed and servers restarted every few seconds. At
//! checkpoints it prints calls by outcome, resident memory and descriptors.
//! It fails when a call has no outcome (or a wrong answer), when a table,
//! handler or descriptor is left over once the load stops, or when resident
//! memory at the last checkpoint is more than 10% above the first.

#[path = "support/raw_server.rs"]
mod raw_server;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use tchan::frame::ErrorCode;
use tchan::peer::PeerPool;
use tchan::server::shed::ConcurrencyLimit;
use tchan::{
    Body, CallRequest, Channel, ChannelConfig, Client, Error, PoolConfig, Request, Response,
};

const MIB: usize = 1024 * 1024;
const SERVERS: usize = 3;
const CLIENTS: usize = 3;
/// Calls each client keeps in flight.
const WORKERS: usize = 24;

/// glibc's tunable for the size from which blocks are mapped on their own.
const MMAP_THRESHOLD: &str = "MALLOC_MMAP_THRESHOLD_";

fn soak_secs() -> u64 {
    std::env::var("TCHAN_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180)
}

// ===== what the process holds =====

/// Counts the heap bytes in use, to tell live data apart from what the
/// allocator keeps (resident memory is both).
struct Tracking;

static HEAP: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to the system allocator unchanged; the
// counter is only an atomic add or subtract of the layout's size.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for Tracking {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        HEAP.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: std::alloc::Layout) -> *mut u8 {
        HEAP.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, new: usize) -> *mut u8 {
        HEAP.fetch_add(new, Ordering::Relaxed);
        HEAP.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.realloc(p, l, new) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        HEAP.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

fn heap_bytes() -> usize {
    HEAP.load(Ordering::Relaxed)
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

// ===== outcomes =====

/// What became of a call: each call issued adds exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Ok,
    /// The answer did not match what was sent.
    Wrong,
    Timeout,
    /// The caller dropped the call before it finished.
    Cancelled,
    Busy,
    Declined,
    Unexpected,
    Network,
    Other(u8),
    /// No outcome within the call's timeout and a wide margin.
    Hung,
}

fn outcome(r: Result<(), Error>) -> Outcome {
    match r {
        Ok(()) => Outcome::Ok,
        Err(e) => match e.code() {
            ErrorCode::TIMEOUT => Outcome::Timeout,
            ErrorCode::BUSY => Outcome::Busy,
            ErrorCode::DECLINED => Outcome::Declined,
            ErrorCode::UNEXPECTED => Outcome::Unexpected,
            ErrorCode::NETWORK => Outcome::Network,
            c => Outcome::Other(c.0),
        },
    }
}

#[derive(Default)]
struct Tally {
    issued: AtomicU64,
    by_outcome: Mutex<BTreeMap<(Kind, Outcome), u64>>,
}

impl Tally {
    fn record(&self, kind: Kind, o: Outcome) {
        let mut m = self.by_outcome.lock().unwrap();
        *m.entry((kind, o)).or_insert(0) += 1;
    }

    fn outcomes(&self) -> u64 {
        self.by_outcome.lock().unwrap().values().sum()
    }

    fn count(&self, f: impl Fn(Kind, Outcome) -> bool) -> u64 {
        let m = self.by_outcome.lock().unwrap();
        m.iter()
            .filter(|((k, o), _)| f(*k, *o))
            .map(|(_, n)| n)
            .sum()
    }
}

/// The kinds of call in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Small,
    Large,
    Streamed,
    Slow,
    Cancel,
    Fail,
    Shed,
    Stalled,
}

fn pick_kind(r: u32) -> Kind {
    match r % 100 {
        0..=58 => Kind::Small,
        59..=60 => Kind::Large,
        61..=66 => Kind::Streamed,
        67..=73 => Kind::Slow,
        74..=78 => Kind::Cancel,
        79..=85 => Kind::Fail,
        86..=97 => Kind::Shed,
        _ => Kind::Stalled,
    }
}

// ===== servers =====

/// Handlers running now, over every server (each one counts itself in and
/// out with a guard, so a cancelled handler counts out too).
static LIVE_HANDLERS: AtomicUsize = AtomicUsize::new(0);

struct Live;

impl Live {
    fn start() -> Live {
        LIVE_HANDLERS.fetch_add(1, Ordering::Relaxed);
        Live
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        LIVE_HANDLERS.fetch_sub(1, Ordering::Relaxed);
    }
}

fn config() -> ChannelConfig {
    let mut c = ChannelConfig::default();
    c.set_read_timeout(Duration::from_secs(2));
    c.connection_mut()
        .set_send_cancel(true)
        .set_tombstone_ttl(Duration::from_secs(2));
    c
}

fn server_channel() -> Channel {
    let ch = Channel::with_config("soak", config());
    ch.register("soak", "echo", |req: Request| async move {
        let _live = Live::start();
        let body = req.arg3.into_bytes().await?;
        Ok(Response::ok(req.arg2, body))
    });
    ch.register_streaming("soak", "stream", |req: Request| async move {
        let live = Live::start();
        // Chunks go back as they come; the guard lives as long as the
        // response stream.
        let out = req.arg3.into_stream().map(move |c| {
            let _ = &live;
            c
        });
        Ok(Response::ok("", Body::from_stream(out)))
    });
    ch.register("soak", "slow", |req: Request| async move {
        let _live = Live::start();
        let cancelled = req.cancelled();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3)) => Ok(Response::ok("", "late")),
            _ = cancelled => Err(Error::new(ErrorCode::CANCELLED, "cancelled")),
        }
    });
    ch.register("soak", "fail", |_req: Request| async move {
        let _live = Live::start();
        Err::<Response, _>(Error::new(ErrorCode::UNEXPECTED, "the handler failed"))
    });
    let limit = ConcurrencyLimit::new(2);
    ch.register(
        "soak",
        "shed",
        limit.wrap(|_req: Request| async move {
            let _live = Live::start();
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(Response::ok("", "done"))
        }),
    );
    ch
}

/// A server that can be restarted on the same address.
struct Server {
    addr: SocketAddr,
    channel: Mutex<Channel>,
    /// The channels restarts replaced, kept to check that none of their
    /// connections outlives the run.
    retired: Mutex<Vec<Channel>>,
    restarts: AtomicU64,
}

impl Server {
    async fn start() -> Server {
        let channel = server_channel();
        let addr = channel.listen("127.0.0.1:0").await.unwrap();
        Server {
            addr,
            channel: Mutex::new(channel),
            retired: Mutex::new(Vec::new()),
            restarts: AtomicU64::new(0),
        }
    }

    fn channel(&self) -> Channel {
        self.channel.lock().unwrap().clone()
    }

    /// Kills every connection and the listener, and listens again.
    async fn restart(&self) {
        let old = self.channel();
        old.close();
        let fresh = server_channel();
        let until = Instant::now() + Duration::from_secs(10);
        // The old accept loop lets its socket go as soon as it runs.
        loop {
            match fresh.listen(self.addr).await {
                Ok(_) => break,
                Err(_) if Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        }
        let old = std::mem::replace(&mut *self.channel.lock().unwrap(), fresh);
        self.retired.lock().unwrap().push(old);
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }
}

/// A peer that does the handshake, reads calls, and answers each with the
/// first half of a frame, then nothing.
async fn stalled_peer() -> raw_server::RawServer {
    raw_server::RawServer::start(|c, wire| {
        let id = c.id;
        tokio::spawn(async move {
            let h = tchan::frame::TransportHeaders::strict([("as", "raw")]).unwrap();
            let frame = raw_server::response(id, h, b"", &[7u8; 512]);
            wire.send(frame.slice(..frame.len() / 2)).await;
        });
    })
    .await
}

// ===== clients =====

fn payload(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| seed.wrapping_add(i as u8))
            .collect::<Vec<u8>>(),
    )
}

/// Payloads made once and shared, so the test's own allocations do not
/// churn the heap it measures.
struct Payloads {
    small: Vec<Bytes>,
    large: Vec<Bytes>,
    /// Streamed uploads: `PIECES` chunks of `chunks[(k + i) % n]`, and the
    /// bytes they add up to, for each k.
    chunks: Vec<Bytes>,
    streams: Vec<Bytes>,
}

const PIECES: usize = 16;

fn payloads() -> &'static Payloads {
    static P: std::sync::OnceLock<Payloads> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let chunks: Vec<Bytes> = (0..PIECES as u8).map(|i| payload(16 * 1024, i)).collect();
        let streams = (0..PIECES)
            .map(|k| {
                let mut all = Vec::new();
                for i in 0..PIECES {
                    all.extend_from_slice(&chunks[(k + i) % PIECES]);
                }
                Bytes::from(all)
            })
            .collect();
        Payloads {
            small: (0..16).map(|i| payload(64, i)).collect(),
            large: (0..4).map(|i| payload(MIB, i)).collect(),
            chunks,
            streams,
        }
    })
}

struct Caller {
    pool: PeerPool,
    /// For streamed calls: a direct connection to one server, made again
    /// when it closes.
    direct: Option<Client>,
    servers: Vec<SocketAddr>,
    stalled: SocketAddr,
    /// A connection to the stalled peer, made again when it closes (its
    /// read timeout closes it).
    to_stalled: Option<Client>,
}

/// The soak's own failures (timeouts of `slow`, `fail`, busy) are what it
/// asked for, not signs of a sick peer: only connection-level errors open a
/// breaker, so the pool keeps calling every server.
struct ConnectionErrorsOnly;

impl tchan::peer::Classifier for ConnectionErrorsOnly {
    fn classify(&self, result: Result<&tchan::CallResponse, &Error>) -> tchan::peer::Class {
        match result {
            Err(e) if matches!(e.code(), ErrorCode::NETWORK | ErrorCode::PROTOCOL) => {
                tchan::peer::Class::Failure
            }
            Err(_) => tchan::peer::Class::Ignore,
            Ok(_) => tchan::peer::Class::Success,
        }
    }
}

impl Caller {
    async fn direct(&mut self, rng: &mut impl Rng) -> Result<Client, Error> {
        if let Some(c) = &self.direct
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let addr = self.servers[rng.random_range(0..self.servers.len())];
        let c = self.pool.channel().connect(addr).await?;
        self.direct = Some(c.clone());
        Ok(c)
    }

    /// One call of the given kind; `Ok(())` only for a right answer.
    async fn call(&mut self, kind: Kind, rng: &mut impl Rng) -> Outcome {
        let seed: u8 = rng.random();
        let req = |method: &'static str, t: u64| {
            CallRequest::new("soak", method).timeout(Duration::from_millis(t))
        };
        match kind {
            Kind::Small | Kind::Large => {
                let p = payloads();
                let body = if kind == Kind::Small {
                    p.small[usize::from(seed) % p.small.len()].clone()
                } else {
                    p.large[usize::from(seed) % p.large.len()].clone()
                };
                let t = if kind == Kind::Small { 2_000 } else { 10_000 };
                let r = self.pool.call(req("echo", t).arg3(body.clone())).await;
                checked(r, |resp| resp.arg3 == body)
            }
            Kind::Streamed => {
                let client = match self.direct(rng).await {
                    Ok(c) => c,
                    Err(e) => return outcome(Err(e)),
                };
                let p = payloads();
                let k = usize::from(seed) % PIECES;
                let want = &p.streams[k];
                let up = futures::stream::iter(
                    (0..PIECES).map(move |i| Ok::<_, Error>(p.chunks[(k + i) % PIECES].clone())),
                );
                // The answer is compared as it streams in, without keeping it.
                let r = async {
                    let resp = client
                        .call_streaming(req("stream", 10_000).arg3(Body::from_stream(up)))
                        .await?;
                    let mut at = 0;
                    let mut same = true;
                    let mut s = resp.arg3.into_stream();
                    while let Some(c) = s.next().await {
                        let c = c?;
                        same &= want.get(at..at + c.len()) == Some(&c[..]);
                        at += c.len();
                    }
                    Ok(same && at == want.len())
                }
                .await;
                checked(r, |same| *same)
            }
            Kind::Slow => outcome(self.pool.call(req("slow", 200)).await.map(|_| ())),
            Kind::Cancel => {
                let call = self.pool.call(req("slow", 5_000));
                match tokio::time::timeout(Duration::from_millis(rng.random_range(1..50)), call)
                    .await
                {
                    Ok(r) => outcome(r.map(|_| ())),
                    Err(_) => Outcome::Cancelled,
                }
            }
            Kind::Fail => outcome(self.pool.call(req("fail", 2_000)).await.map(|_| ())),
            Kind::Shed => outcome(self.pool.call(req("shed", 2_000)).await.map(|_| ())),
            Kind::Stalled => {
                let r = async {
                    let c = match &self.to_stalled {
                        Some(c) if !c.is_closed() => c.clone(),
                        _ => {
                            let c = self.pool.channel().connect(self.stalled).await?;
                            self.to_stalled = Some(c.clone());
                            c
                        }
                    };
                    c.call(req("echo", 300)).await.map(|_| ())
                }
                .await;
                outcome(r)
            }
        }
    }
}

/// The outcome of a call whose answer `right` checks.
fn checked<T>(r: Result<T, Error>, right: impl FnOnce(&T) -> bool) -> Outcome {
    match r {
        Ok(v) if right(&v) => Outcome::Ok,
        Ok(_) => Outcome::Wrong,
        Err(e) => outcome(Err(e)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long: cargo test --release --test soak -- --ignored"]
async fn soak() {
    // glibc moves its mmap threshold up to the size of the largest block
    // freed, after which 1 MiB buffers come from its heaps and resident
    // memory creeps with fragmentation while the heap in use stays flat
    // (measured: +9% in 180 s). With the threshold fixed, resident memory
    // follows what is in use; the soak runs itself again that way.
    if std::env::var_os(MMAP_THRESHOLD).is_none() {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child
            .args([
                "--exact",
                "soak",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(MMAP_THRESHOLD, "131072");
        let out = tokio::task::spawn_blocking(move || child.output().unwrap())
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "the soak failed");
        assert!(
            stdout.contains("test result: ok. 1 passed"),
            "the soak did not run"
        );
        return;
    }
    let secs = soak_secs();
    let fds_at_start = open_fds();
    let mut servers = Vec::new();
    for _ in 0..SERVERS {
        servers.push(Arc::new(Server::start().await));
    }
    let stalled = stalled_peer().await;
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let fds_base = open_fds();
    println!(
        "soak: {secs} s, {SERVERS} servers, {CLIENTS} clients x {WORKERS} calls in flight; \
         {fds_at_start} descriptors before, {fds_base} with the servers listening"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut clients = Vec::new();
    let mut workers = Vec::new();
    for c in 0..CLIENTS {
        let mut pc = PoolConfig::default();
        pc.set_max_retries(1)
            .set_classifier(Arc::new(ConnectionErrorsOnly));
        let channel = Channel::with_config(format!("client-{c}"), config());
        let pool = channel.pool(addrs.iter().map(|a| a.to_string()), pc);
        clients.push(channel);
        for w in 0..WORKERS {
            let mut caller = Caller {
                pool: pool.clone(),
                direct: None,
                servers: addrs.clone(),
                stalled: stalled.addr,
                to_stalled: None,
            };
            let stop = stop.clone();
            let tally = tally.clone();
            workers.push(tokio::spawn(async move {
                let mut rng = rand::rngs::SmallRng::seed_from_u64((c * WORKERS + w) as u64);
                while !stop.load(Ordering::Relaxed) {
                    let kind = pick_kind(rng.random());
                    tally.issued.fetch_add(1, Ordering::Relaxed);
                    // Every call has a timeout; one that outlives it by far
                    // has hung.
                    let o =
                        tokio::time::timeout(Duration::from_secs(30), caller.call(kind, &mut rng))
                            .await
                            .unwrap_or(Outcome::Hung);
                    tally.record(kind, o);
                }
            }));
        }
    }

    // Chaos: a connection killed every second, a server restarted every 5 s.
    let chaos = {
        let servers = servers.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(99);
            let mut kills = 0u64;
            let mut tick = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                tick += 1;
                let s = &servers[rng.random_range(0..servers.len())];
                if tick.is_multiple_of(5) {
                    s.restart().await;
                } else {
                    let conns = s.channel().connections();
                    if !conns.is_empty() {
                        conns[rng.random_range(0..conns.len())].close();
                        kills += 1;
                    }
                }
            }
            kills
        })
    };

    // Checkpoints: six, the first after the warm-up (a sixth of the run, at
    // least 15 s, at most half of it), the others evenly after it. Memory
    // is sampled every 100 ms; a checkpoint keeps the peak since the last
    // one, so the comparison is peak to peak.
    let start = Instant::now();
    let total = Duration::from_secs(secs);
    let warm_up = (total / 6).max(Duration::from_secs(15)).min(total / 2);
    let checkpoints = 6;
    let mut peaks = Vec::new();
    let mut heap_peaks = Vec::new();
    for i in 0..checkpoints {
        let until = start + warm_up + (total - warm_up) * i / (checkpoints - 1);
        let mut peak = 0;
        let mut heap_peak = 0;
        while Instant::now() < until {
            peak = peak.max(rss_bytes());
            heap_peak = heap_peak.max(heap_bytes());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        peaks.push(peak);
        heap_peaks.push(heap_peak);
        let tables: Vec<Vec<usize>> = servers
            .iter()
            .map(|s| s.channel().table_sizes())
            .chain(clients.iter().map(Channel::table_sizes))
            .collect();
        println!(
            "checkpoint {} at {:>4} s: {} calls, peak RSS {} MiB (heap in use {} MiB), {} descriptors, {} handlers running, tables {:?}",
            i + 1,
            start.elapsed().as_secs(),
            tally.issued.load(Ordering::Relaxed),
            peak / MIB as u64,
            heap_peak / MIB,
            open_fds(),
            LIVE_HANDLERS.load(Ordering::Relaxed),
            tables,
        );
    }

    // Stop the load; every worker finishes the call it is in.
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let kills = chaos.await.unwrap();
    let restarts: u64 = servers
        .iter()
        .map(|s| s.restarts.load(Ordering::Relaxed))
        .sum();

    let issued = tally.issued.load(Ordering::Relaxed);
    println!("{issued} calls; {kills} connections killed, {restarts} server restarts; by outcome:");
    for ((kind, o), n) in tally.by_outcome.lock().unwrap().iter() {
        println!("  {kind:?} {o:?}: {n}");
    }

    // Every call has exactly one outcome, none hung, none answered wrong.
    assert_eq!(
        tally.outcomes(),
        issued,
        "calls without exactly one outcome"
    );
    assert_eq!(tally.count(|_, o| o == Outcome::Hung), 0, "hung calls");
    assert_eq!(tally.count(|_, o| o == Outcome::Wrong), 0, "wrong answers");
    // The mix really happened.
    for (what, n) in [
        (
            "64 B ok",
            tally.count(|k, o| k == Kind::Small && o == Outcome::Ok),
        ),
        (
            "1 MiB ok",
            tally.count(|k, o| k == Kind::Large && o == Outcome::Ok),
        ),
        (
            "streamed ok",
            tally.count(|k, o| k == Kind::Streamed && o == Outcome::Ok),
        ),
        (
            "timeouts",
            tally.count(|k, o| k == Kind::Slow && o == Outcome::Timeout),
        ),
        ("cancels", tally.count(|_, o| o == Outcome::Cancelled)),
        (
            "handler errors",
            tally.count(|k, o| k == Kind::Fail && o == Outcome::Unexpected),
        ),
        (
            "busy",
            tally.count(|k, o| k == Kind::Shed && o == Outcome::Busy),
        ),
        (
            "stalled peer timeouts",
            tally.count(|k, o| k == Kind::Stalled && o == Outcome::Timeout),
        ),
        ("network errors", tally.count(|_, o| o == Outcome::Network)),
    ] {
        assert!(n > 0, "no {what} in the mix");
    }

    // Tables back to their base (empty) once the load stopped and
    // remembered ids aged out; no handler left running.
    let all_channels = || {
        servers
            .iter()
            .map(|s| s.channel())
            .chain(clients.iter().cloned())
            .collect::<Vec<_>>()
    };
    let settled = Instant::now() + Duration::from_secs(30);
    loop {
        let tables: Vec<Vec<usize>> = all_channels().iter().map(Channel::table_sizes).collect();
        let empty = tables.iter().flatten().all(|&n| n == 0);
        let live = LIVE_HANDLERS.load(Ordering::Relaxed);
        if empty && live == 0 {
            println!("tables empty, no handler running");
            break;
        }
        assert!(
            Instant::now() < settled,
            "after the load stopped: tables {tables:?}, {live} handlers running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Descriptors back to their base once the clients' connections close.
    for c in &clients {
        c.close();
    }
    let settled = Instant::now() + Duration::from_secs(30);
    loop {
        let fds = open_fds();
        let active: usize = all_channels().iter().map(Channel::active_connections).sum();
        if fds <= fds_base && active == 0 {
            println!("descriptors back to {fds} (base {fds_base})");
            break;
        }
        assert!(
            Instant::now() < settled,
            "after closing: {fds} descriptors (base {fds_base}), {active} connections"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // No connection outlives the run: every connection state, of the
    // current channels and of those restarts replaced, is freed once its
    // handles are gone (a cycle would keep it, and its buffers, forever).
    drop(stalled);
    let every_channel: Vec<Channel> = servers
        .iter()
        .flat_map(|s| {
            let mut v = s.retired.lock().unwrap().clone();
            v.push(s.channel());
            v
        })
        .chain(clients.iter().cloned())
        .collect();
    let settled = Instant::now() + Duration::from_secs(30);
    loop {
        let left: usize = every_channel.iter().map(|c| c.connections().len()).sum();
        if left == 0 {
            println!(
                "no connection state left in {} channels",
                every_channel.len()
            );
            break;
        }
        assert!(
            Instant::now() < settled,
            "{left} connection states still alive after the run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The heap in use flat after the warm-up (what a leak would grow).
    let (first, last) = (heap_peaks[0], heap_peaks[heap_peaks.len() - 1]);
    println!(
        "peak heap in use by checkpoint (MiB): {:?}; last / first = {:.3}",
        heap_peaks.iter().map(|p| p / MIB).collect::<Vec<_>>(),
        last as f64 / first as f64
    );
    assert!(
        last as f64 <= first as f64 * 1.10,
        "heap in use grew: first checkpoint {first} B, last {last} B"
    );

    // Resident memory flat after the warm-up.
    let (first, last) = (peaks[0], peaks[peaks.len() - 1]);
    println!(
        "peak RSS by checkpoint (MiB): {:?}; last / first = {:.3}",
        peaks.iter().map(|p| p / MIB as u64).collect::<Vec<_>>(),
        last as f64 / first as f64
    );
    assert!(
        last as f64 <= first as f64 * 1.10,
        "resident memory grew: first checkpoint {first} B, last {last} B"
    );
}
