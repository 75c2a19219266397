//! Closed-loop load generation for `tchan bench` (and `tchan demo`).
//!
//! `threads` current-thread runtimes, each on its own OS thread, each with
//! its own [`PeerPool`] over all the peers (so connections and calls stay on
//! their thread), share the `concurrency` workers. A worker makes one call at
//! a time, back to back, until the run ends; the pool picks the peer and
//! retries by its rules, and the retries are counted. Each runtime records
//! into its own histogram, merged at the end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use tchan::frame::{ChecksumType, ErrorCode};
use tchan::peer::{PeerPool, PeerSet, PoolConfig, ShardRouting, UnionPeers};
use tchan::{CallRequest, Channel};

/// Makes the peer source each thread's pool follows.
pub type SourceFactory = Arc<dyn Fn() -> UnionPeers + Send + Sync>;

/// What to run.
#[derive(Clone)]
pub struct LoadConfig {
    /// Peers at the start, with their ranks.
    pub peers: PeerSet,
    /// What each pool follows afterwards (a peer file, DNS), if anything.
    pub follow: Option<SourceFactory>,
    /// With N > 0, every call has a shard key, one of `key-0` ..
    /// `key-(N-1)` drawn uniformly, and goes to its owner on the ring when
    /// there are several peers.
    pub shard_keys: usize,
    /// Retries per call at most (the pool's budget also applies).
    pub max_retries: u32,
    /// Service to call.
    pub service: String,
    /// Method (arg1).
    pub method: String,
    /// Calls in flight in total.
    pub concurrency: usize,
    /// Measured time.
    pub duration: Duration,
    /// Time before measuring starts.
    pub warmup: Duration,
    /// arg3 bytes (arg2 is empty, `as=raw`).
    pub size: usize,
    /// TCP connections.
    pub connections: usize,
    /// Runtimes (threads).
    pub threads: usize,
    /// Checksum type.
    pub checksum: ChecksumType,
    /// Per-call timeout.
    pub timeout: Duration,
    /// Caller name (`cn`).
    pub caller: String,
}

/// Live counters, readable while the run goes on (for a progress line).
#[derive(Debug, Default)]
pub struct Progress {
    /// Successful calls so far (measured window only).
    pub calls: AtomicU64,
    /// Failed calls so far (measured window only).
    pub errors: AtomicU64,
    /// True once warm-up is over.
    pub measuring: std::sync::atomic::AtomicBool,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Successful calls.
    pub calls: u64,
    /// Failed calls (application errors included).
    pub errors: u64,
    /// Failed calls by code name (`timeout`, ..., `application`).
    pub errors_by_code: BTreeMap<&'static str, u64>,
    /// Attempts beyond the first.
    pub retries: u64,
    /// Successful calls per second of measured time.
    pub calls_per_sec: f64,
    /// Latency percentiles of successful calls, in microseconds.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Process CPU time per successful call, in microseconds.
    pub cpu_us_per_call: f64,
}

/// The code names used in [`Report::errors_by_code`], in order.
pub const ERROR_NAMES: [&str; 10] = [
    "timeout",
    "cancelled",
    "busy",
    "declined",
    "unexpected",
    "bad_request",
    "network",
    "unhealthy",
    "protocol",
    "application",
];

fn code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::TIMEOUT => "timeout",
        ErrorCode::CANCELLED => "cancelled",
        ErrorCode::BUSY => "busy",
        ErrorCode::DECLINED => "declined",
        ErrorCode::BAD_REQUEST => "bad_request",
        ErrorCode::NETWORK => "network",
        ErrorCode::UNHEALTHY => "unhealthy",
        ErrorCode::PROTOCOL => "protocol",
        _ => "unexpected",
    }
}

struct ThreadResult {
    hist: Histogram<u64>,
    errors: BTreeMap<&'static str, u64>,
    retries: u64,
}

/// Runs the load and blocks until it is done. Fails only when no connection
/// could be made at all.
pub fn run(config: &LoadConfig, progress: Arc<Progress>) -> Result<Report, tchan::Error> {
    let threads = config.threads.max(1).min(config.connections.max(1));
    let concurrency = config.concurrency.max(1);
    // Fail fast, before any thread starts, when no peer answers at all.
    let reachable = config.peers.addrs().any(|p| {
        use std::net::ToSocketAddrs;
        p.to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .is_some_and(|a| {
                std::net::TcpStream::connect_timeout(&a, Duration::from_secs(3)).is_ok()
            })
    });
    if !reachable {
        return Err(tchan::Error::new(
            ErrorCode::NETWORK,
            format!(
                "cannot connect to any of {:?}",
                config.peers.addrs().collect::<Vec<_>>()
            ),
        ));
    }
    let start = Instant::now();
    let measure_from = start + config.warmup;
    let end = measure_from + config.duration;
    let per_thread_conns = config.connections.max(1).div_ceil(threads);
    // One shared set of keys (no allocation per call for them, and a small
    // working set).
    let keys: Arc<[Arc<str>]> = (0..config.shard_keys)
        .map(|i| Arc::from(format!("key-{i}")))
        .collect();
    let mut joins = Vec::new();
    for t in 0..threads {
        let workers = (t..concurrency).step_by(threads).count();
        let config = config.clone();
        let progress = progress.clone();
        let keys = keys.clone();
        joins.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let pool =
                    PeerPool::new(Channel::new(config.caller.clone()), Vec::<String>::new(), {
                        let mut c = PoolConfig::default();
                        c.set_max_retries(config.max_retries);
                        c.set_connections_per_peer(per_thread_conns).expect("valid");
                        // [POOL-31] shard keys go to their owners.
                        if config.shard_keys > 0
                            && (config.peers.len() > 1 || config.follow.is_some())
                        {
                            c.set_shard_routing(Some(ShardRouting::NextOnRing));
                        }
                        c
                    });
                pool.set_peer_set(&config.peers);
                if let Some(make) = &config.follow {
                    pool.follow(make());
                }
                let payload = Bytes::from(vec![0x5a; config.size]);
                let tasks = (0..workers).map(|_| {
                    worker(
                        pool.clone(),
                        config.clone(),
                        keys.clone(),
                        payload.clone(),
                        measure_from,
                        end,
                        progress.clone(),
                    )
                });
                let results = futures::future::join_all(tasks).await;
                let mut total = ThreadResult {
                    hist: new_hist(),
                    errors: BTreeMap::new(),
                    retries: 0,
                };
                for r in results {
                    let _ = total.hist.add(&r.hist);
                    total.retries += r.retries;
                    for (k, v) in r.errors {
                        *total.errors.entry(k).or_insert(0) += v;
                    }
                }
                Some(total)
            })
        }));
    }
    // CPU time over the measured window only.
    let now = Instant::now();
    if measure_from > now {
        std::thread::sleep(measure_from - now);
    }
    progress.measuring.store(true, Ordering::Relaxed);
    let cpu_measured = cpu_time::ProcessTime::now();
    let now = Instant::now();
    if end > now {
        std::thread::sleep(end - now);
    }
    let cpu = cpu_measured.elapsed();
    let mut hist = new_hist();
    let mut errors_by_code: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut retries = 0;
    for j in joins {
        if let Ok(Some(r)) = j.join() {
            let _ = hist.add(&r.hist);
            retries += r.retries;
            for (k, v) in r.errors {
                *errors_by_code.entry(k).or_insert(0) += v;
            }
        }
    }
    let calls = hist.len();
    let errors = errors_by_code.values().sum();
    let secs = config.duration.as_secs_f64().max(1e-9);
    Ok(Report {
        calls,
        errors,
        errors_by_code,
        retries,
        calls_per_sec: calls as f64 / secs,
        p50_us: hist.value_at_quantile(0.50),
        p90_us: hist.value_at_quantile(0.90),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        cpu_us_per_call: if calls == 0 {
            0.0
        } else {
            cpu.as_secs_f64() * 1e6 / calls as f64
        },
    })
}

fn new_hist() -> Histogram<u64> {
    // 1 µs to 1 hour, 3 significant digits: valid bounds, so this cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

async fn worker(
    pool: PeerPool,
    config: LoadConfig,
    keys: Arc<[Arc<str>]>,
    payload: Bytes,
    measure_from: Instant,
    end: Instant,
    progress: Arc<Progress>,
) -> ThreadResult {
    let mut hist = new_hist();
    let mut errors = BTreeMap::new();
    let mut retries = 0u64;
    let service = Bytes::from(config.service.clone().into_bytes());
    let method = Bytes::from(config.method.clone().into_bytes());
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let mut req = CallRequest::new(service.clone(), method.clone())
            .arg3(payload.clone())
            .checksum(config.checksum)
            .timeout(config.timeout);
        if !keys.is_empty() {
            req = req.shard_key(keys[rng.random_range(0..keys.len())].clone());
        }
        let (r, stats) = pool.call_counting(req).await;
        let t1 = Instant::now();
        if t0 < measure_from || t1 > end {
            continue;
        }
        retries += u64::from(stats.retries());
        match r {
            Ok(resp) if resp.is_ok() => {
                let us = u64::try_from(t1.duration_since(t0).as_micros()).unwrap_or(u64::MAX);
                let _ = hist.record(us.max(1));
                progress.calls.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {
                *errors.entry("application").or_insert(0) += 1;
                progress.errors.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                *errors.entry(code_name(e.code())).or_insert(0) += 1;
                progress.errors.fetch_add(1, Ordering::Relaxed);
                if e.code() == ErrorCode::NETWORK || e.code() == ErrorCode::DECLINED {
                    // Nothing answers right now: do not spin.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    ThreadResult {
        hist,
        errors,
        retries,
    }
}
