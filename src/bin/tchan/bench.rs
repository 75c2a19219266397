//! `tchan bench`: closed-loop load against a server.

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use tchan::Error;
use tchan::frame::ChecksumType;
use tchan::peer::{PeerFile, PeerSet, StaticPeers, UnionPeers};

use crate::loadgen;
use crate::{Target, cores, exit_for, resolve_target, usage_for};

#[derive(Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    to: Target,
    /// Retries per call at most (the pool's retry budget also applies).
    #[arg(long, default_value_t = 2)]
    retries: u32,
    /// Calls in flight.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Measured seconds (fractional allowed).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of warm-up, not counted.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// arg3 bytes (arg2 is empty; as=raw).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// TCP connections.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Threads, each with its own current-thread runtime. Default: one per core.
    #[arg(long)]
    threads: Option<usize>,
    /// Checksum type: none, crc32, crc32c or farmhash32.
    #[arg(long, default_value = "crc32c")]
    checksum: String,
    /// Per-call timeout in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout: u64,
    /// Print one JSON object on stdout instead of the summary.
    #[arg(long)]
    json: bool,
    /// Give every call a shard key, one of key-0 .. key-(N-1) drawn
    /// uniformly at random; with several peers it goes to the key's owner on
    /// a ringpop-compatible hash ring of them.
    #[arg(long, value_name = "N", default_value_t = 0)]
    shard_keys: usize,
}

pub(crate) fn seconds(s: f64, what: &str) -> Result<Duration, ExitCode> {
    if s.is_finite() && s >= 0.0 {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(usage_for(
            "bench",
            format!("--{what} must be a number of seconds >= 0"),
        ))
    }
}

pub(crate) fn bench(a: BenchArgs) -> ExitCode {
    let Some(checksum) = ChecksumType::from_name(&a.checksum) else {
        return usage_for("bench", format!("unknown checksum {:?}", a.checksum));
    };
    let (duration, warmup) = match (seconds(a.duration, "duration"), seconds(a.warmup, "warmup")) {
        (Ok(d), Ok(w)) => (d, w),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    if a.concurrency == 0 || a.connections == 0 || a.threads == Some(0) {
        return usage_for(
            "bench",
            "--concurrency, --connections and --threads must be at least 1",
        );
    }
    let (peers, service, method) = match resolve_target("bench", &a.to) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let (peers, follow) = match with_sources(&a.to, peers) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let config = loadgen::LoadConfig {
        peers,
        follow,
        shard_keys: a.shard_keys,
        max_retries: a.retries,
        service,
        method,
        concurrency: a.concurrency,
        duration,
        warmup,
        size: a.size,
        connections: a.connections,
        threads: a.threads.unwrap_or_else(cores),
        checksum,
        timeout: Duration::from_millis(a.timeout),
        caller: "tchan-bench".into(),
    };
    match run_load(&config) {
        Ok(report) => {
            if a.json {
                println!("{}", report_json(&report));
            } else {
                print_summary(&config, &report);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tchan bench: {e}");
            ExitCode::from(exit_for(&e))
        }
    }
}

/// Runs the load with a live progress line on stderr when it is a terminal.
/// The peers at the start (the static ones, then DNS's first answers), and,
/// with --peer-file or DNS, what each pool follows afterwards: the union of
/// the --peer list, the file and the DNS watches. No peer at all: exit 7.
fn with_sources(
    to: &crate::Target,
    peers: Vec<String>,
) -> Result<(PeerSet, Option<loadgen::SourceFactory>), ExitCode> {
    let dns = crate::discover::from_target("bench", to, Duration::from_secs(5))?;
    if dns.is_none() && to.peer_file.is_none() {
        return Ok((PeerSet::from(peers), None));
    }
    let mut set = PeerSet::from(peers);
    let mut found = None;
    if let Some(dns) = &dns {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| usage_for("bench", format!("cannot start a runtime: {e}")))?;
        let f = rt.block_on(dns.lookup_all());
        set = f.after("bench", &set)?;
        for p in &f.problems {
            eprintln!("tchan bench: {p}");
        }
        found = Some(f);
    }
    let flags = to.peers.clone();
    let file = to.peer_file.clone();
    let make = move || {
        let mut u = UnionPeers::new().with(StaticPeers::new(flags.clone()));
        if let Some(path) = &file {
            u = u.with(PeerFile::new(path.clone()));
        }
        if let (Some(dns), Some(found)) = (&dns, &found) {
            // Each watch starts from the answer found above.
            for w in dns.watches(found) {
                u = u.with(w);
            }
        }
        u
    };
    Ok((set, Some(std::sync::Arc::new(make))))
}

pub(crate) fn run_load(config: &loadgen::LoadConfig) -> Result<loadgen::Report, Error> {
    use std::io::IsTerminal;
    use std::sync::atomic::Ordering;
    let progress = std::sync::Arc::new(loadgen::Progress::default());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = io::stderr().is_terminal().then(|| {
        let progress = progress.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let bar = indicatif::ProgressBar::new_spinner();
            let mut last = (std::time::Instant::now(), 0u64);
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                let calls = progress.calls.load(Ordering::Relaxed);
                let errors = progress.errors.load(Ordering::Relaxed);
                let now = std::time::Instant::now();
                let rate = (calls - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
                last = (now, calls);
                if progress.measuring.load(Ordering::Relaxed) {
                    bar.set_message(format!("{rate:.0} calls/s, {errors} errors so far"));
                } else {
                    bar.set_message("warming up".to_string());
                }
                bar.tick();
            }
            bar.finish_and_clear();
        })
    });
    let r = loadgen::run(config, progress);
    done.store(true, Ordering::Relaxed);
    if let Some(t) = ticker {
        let _ = t.join();
    }
    r
}

fn report_json(r: &loadgen::Report) -> String {
    let mut by_code = serde_json::Map::new();
    for name in loadgen::ERROR_NAMES {
        by_code.insert(
            name.into(),
            r.errors_by_code.get(name).copied().unwrap_or(0).into(),
        );
    }
    let mut m = serde_json::Map::new();
    m.insert("calls".into(), r.calls.into());
    m.insert("errors".into(), r.errors.into());
    m.insert("errors_by_code".into(), serde_json::Value::Object(by_code));
    m.insert("retries".into(), r.retries.into());
    m.insert("calls_per_sec".into(), round2(r.calls_per_sec));
    m.insert("p50_us".into(), r.p50_us.into());
    m.insert("p90_us".into(), r.p90_us.into());
    m.insert("p99_us".into(), r.p99_us.into());
    m.insert("p999_us".into(), r.p999_us.into());
    m.insert("cpu_us_per_call".into(), round2(r.cpu_us_per_call));
    serde_json::Value::Object(m).to_string()
}

fn round2(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64((x * 100.0).round() / 100.0)
        .map(serde_json::Value::Number)
        .unwrap_or_else(|| 0.into())
}

pub(crate) fn print_summary(c: &loadgen::LoadConfig, r: &loadgen::Report) {
    println!(
        "tchan bench: {} {} {}, {} B arg3, {} connection(s), {} in flight, {} thread(s), {:.1} s measured after {:.1} s warm-up",
        c.peers.addrs().collect::<Vec<_>>().join(","),
        c.service,
        c.method,
        c.size,
        c.connections,
        c.concurrency,
        c.threads.min(c.connections),
        c.duration.as_secs_f64(),
        c.warmup.as_secs_f64()
    );
    if c.shard_keys > 0 {
        println!("shard keys   {}", c.shard_keys);
    }
    println!("calls        {}", r.calls);
    println!("errors       {}", r.errors);
    println!("retries      {}", r.retries);
    for (name, n) in &r.errors_by_code {
        println!("  {name:<11} {n}");
    }
    println!("calls/s      {:.0}", r.calls_per_sec);
    println!(
        "latency      p50 {} us   p90 {} us   p99 {} us   p99.9 {} us",
        r.p50_us, r.p90_us, r.p99_us, r.p999_us
    );
    println!(
        "cpu/call     {:.2} us (this process's CPU time per successful call)",
        r.cpu_us_per_call
    );
}
