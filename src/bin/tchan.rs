//! The `tchan` command line: serve, call and decode.

use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Parser, Subcommand};

use tchan::frame::{ChecksumType, ErrorCode};
use tchan::inspect::{self, Outcome};
use tchan::transport::HandlerResult;
use tchan::{CallRequest, Channel, Error, Request, Response};

/// Exit status for a local error, usage errors included.
const EXIT_LOCAL: u8 = 125;
/// Exit status for an application error (call res code 0x01).
const EXIT_APPLICATION: u8 = 126;
/// Exit status for a fatal protocol error (0xff).
const EXIT_PROTOCOL: u8 = 127;

const CALL_EXIT_HELP: &str = "\
Exit status:
  0    ok
  1    timeout (0x01)
  2    cancelled (0x02)
  3    busy (0x03)
  4    declined (0x04)
  5    unexpected error (0x05)
  6    bad request (0x06)
  7    network error (0x07), refused connection and failed handshake included
  8    unhealthy (0x08)
  125  local error, usage errors included
  126  application error (call res code 1); arg3 is still printed
  127  fatal protocol error (0xff)";

#[derive(Parser)]
#[command(
    name = "tchan",
    version,
    about = "TChannel RPC tools: serve, call, decode"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a demo server with the methods echo, sleep and fail.
    ///
    /// Prints `listening on HOST:PORT` first; SIGINT or SIGTERM drain
    /// gracefully, then it exits 0.
    Serve(ServeArgs),
    /// Call a method on a peer (a tcurl for tchan).
    #[command(after_help = CALL_EXIT_HELP, override_usage = "tchan call [OPTIONS] [PEER] SERVICE METHOD")]
    Call(Box<CallArgs>),
    /// Closed-loop load against a server: calls/s, latency percentiles, CPU
    /// time per call.
    #[command(override_usage = "tchan bench [OPTIONS] [PEER] SERVICE METHOD")]
    Bench(BenchArgs),
    /// Start a demo server and a bench against it on loopback, and explain
    /// the figures.
    Demo(DemoArgs),
    /// Decode a captured TChannel byte stream into one JSON object per line.
    ///
    /// Exit status: 0 when every byte was decoded (messages still open at the
    /// end are reported as "incomplete"); 1 after a decode_error line; 125 on a
    /// local error (unreadable input, bad usage).
    Decode {
        /// The capture; `-` or absent reads stdin.
        file: Option<PathBuf>,
        /// The input is hex text (whitespace ignored, either case).
        #[arg(long)]
        hex: bool,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Service name to serve.
    #[arg(long, default_value = "tchan")]
    service: String,
    /// Worker threads, each with its own current-thread runtime; accepted
    /// connections are spread over them. Default: one per core.
    #[arg(long)]
    threads: Option<usize>,
}

/// Where calls go: `[PEER] SERVICE METHOD`, `--peer`, `--peer-file`.
#[derive(Args)]
struct Target {
    /// [PEER] SERVICE METHOD: the peer (HOST:PORT) may instead be given with
    /// --peer (repeatable) or --peer-file, but not both ways.
    #[arg(value_names = ["PEER", "SERVICE", "METHOD"], num_args = 2..=3, required = true)]
    target: Vec<String>,
    /// A peer, HOST:PORT; repeat for several (calls go through the peer pool).
    #[arg(long = "peer", value_name = "HOST:PORT")]
    peers: Vec<String>,
    /// A file with one HOST:PORT a line (# comments allowed), re-read when it changes.
    #[arg(long)]
    peer_file: Option<PathBuf>,
}

#[derive(Args)]
struct BenchArgs {
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
}

#[derive(Args)]
struct DemoArgs {
    /// Measured seconds per run.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
}

#[derive(Args)]
struct CallArgs {
    #[command(flatten)]
    to: Target,
    /// Retries allowed (by TChannel's retry rules); default 0: one attempt,
    /// so the exit status reports the first failure.
    #[arg(long, default_value_t = 0)]
    retries: u32,
    /// arg2 as text.
    #[arg(long, conflicts_with = "arg2_file")]
    arg2: Option<String>,
    /// arg2 from a file (`-` reads stdin).
    #[arg(long)]
    arg2_file: Option<PathBuf>,
    /// arg3 as text.
    #[arg(long, conflicts_with = "arg3_file")]
    arg3: Option<String>,
    /// arg3 from a file (`-` reads stdin).
    #[arg(long)]
    arg3_file: Option<PathBuf>,
    /// Send as=json (arg2 defaults to `{}`) and pretty-print the JSON reply.
    #[arg(long)]
    json: bool,
    /// Timeout in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout: u64,
    /// A transport header, k=v (split at the first `=`); repeatable.
    #[arg(long = "header", value_name = "K=V")]
    headers: Vec<String>,
    /// Checksum type: none, crc32, crc32c or farmhash32.
    #[arg(long, default_value = "crc32c")]
    checksum: String,
    /// Shard key (sk header).
    #[arg(long)]
    shard_key: Option<String>,
    /// Caller name (cn header).
    #[arg(long, default_value = "tchan")]
    caller: String,
    /// Write the raw arg3 to PATH and nothing to stdout.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Print the reply's arg2 and headers to stderr.
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_LOCAL } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Decode { file, hex } => decode(file, hex),
        Command::Serve(args) => {
            let workers = worker_runtimes(args.threads.unwrap_or_else(cores));
            run_current_thread(serve(args, workers))
        }
        Command::Call(args) => run_current_thread(call(*args)),
        Command::Bench(args) => bench(args),
        Command::Demo(args) => demo(args),
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Starts `n` threads, each running a current-thread runtime until the
/// process exits, and returns their handles. With `n <= 1` there are none:
/// everything runs on the main runtime.
fn worker_runtimes(n: usize) -> Vec<tokio::runtime::Handle> {
    if n <= 1 {
        return Vec::new();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..n {
        let tx = tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("tchan-worker-{i}"))
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                let _ = tx.send(rt.handle().clone());
                rt.block_on(std::future::pending::<()>());
            });
        if spawned.is_err() {
            break;
        }
    }
    drop(tx);
    rx.iter().take(n).collect()
}

fn run_current_thread(fut: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("tchan: cannot start a runtime: {e}");
            ExitCode::from(EXIT_LOCAL)
        }
    }
}

fn read_input(path: &std::path::Path) -> io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    if path.as_os_str() == "-" {
        io::stdin().read_to_end(&mut raw)?;
    } else {
        std::fs::File::open(path)?.read_to_end(&mut raw)?;
    }
    Ok(raw)
}

fn decode(file: Option<PathBuf>, hex: bool) -> ExitCode {
    let raw = match file {
        None => read_input(std::path::Path::new("-")),
        Some(p) => read_input(&p),
    };
    let raw = match raw {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tchan decode: cannot read input: {e}");
            return ExitCode::from(EXIT_LOCAL);
        }
    };
    let (bytes, hex_error) = if hex {
        inspect::parse_hex(&raw)
    } else {
        (raw, None)
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let outcome = inspect::decode_stream(&bytes, hex_error, &mut out);
    match outcome.and_then(|o| out.flush().map(|()| o)) {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::DecodeError) => ExitCode::from(1),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tchan decode: cannot write output: {e}");
            ExitCode::from(EXIT_LOCAL)
        }
    }
}

// ===== serve =====

/// The demo server's handlers.
pub mod demo {
    use super::*;

    /// `echo`: the request's arg2 and arg3.
    pub async fn echo(req: Request) -> HandlerResult {
        let arg3 = req.arg3.into_bytes().await?;
        Ok(Response::ok(req.arg2, arg3))
    }

    /// `sleep`: waits arg3 milliseconds, then echoes.
    pub async fn sleep(req: Request) -> HandlerResult {
        let arg3 = req.arg3.into_bytes().await?;
        let ms: u64 = std::str::from_utf8(&arg3)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| {
                tchan::Error::new(
                    ErrorCode::BAD_REQUEST,
                    "sleep: arg3 must be a decimal number of milliseconds",
                )
            })?;
        // Past the deadline or on cancel the connection answers timeout or
        // cancelled and drops this future.
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Response::ok(req.arg2, arg3))
    }

    /// `fail`: an application error carrying the request's arg2 and arg3.
    pub async fn fail(req: Request) -> HandlerResult {
        let arg3 = req.arg3.into_bytes().await?;
        Ok(Response::app_error(req.arg2, arg3))
    }
}

async fn serve(args: ServeArgs, workers: Vec<tokio::runtime::Handle>) -> ExitCode {
    let channel = Channel::new(args.service.clone());
    channel.spread_connections_over(workers);
    channel.register(&args.service, "echo", demo::echo);
    channel.register(&args.service, "sleep", demo::sleep);
    channel.register(&args.service, "fail", demo::fail);
    let addr = match channel.listen(args.listen.as_str()).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tchan serve: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(EXIT_LOCAL);
        }
    };
    {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "listening on {addr}");
        let _ = out.flush();
    }
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tchan serve: cannot watch SIGTERM: {e}");
            return ExitCode::from(EXIT_LOCAL);
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("tchan serve: draining");
    channel.drain().await;
    ExitCode::SUCCESS
}

// ===== call =====

/// The peers, service and method from `[PEER] SERVICE METHOD`, `--peer` and
/// `--peer-file`; a usage error when the peer is given both ways or not at all.
fn resolve_target(cmd: &str, to: &Target) -> Result<(Vec<String>, String, String), ExitCode> {
    let (target, peers, peer_file) = (&to.target[..], &to.peers[..], &to.peer_file);
    let flagged = !peers.is_empty() || peer_file.is_some();
    let (mut list, service, method) = match (target, flagged) {
        ([peer, service, method], false) => (vec![peer.clone()], service, method),
        ([_, _, _], true) => {
            return Err(usage_for(
                cmd,
                "give the peer as PEER or with --peer/--peer-file, not both",
            ));
        }
        ([service, method], true) => (peers.to_vec(), service, method),
        ([_, _], false) => {
            return Err(usage_for(cmd, "no peer: give PEER, --peer or --peer-file"));
        }
        _ => return Err(usage_for(cmd, "expected [PEER] SERVICE METHOD")),
    };
    if let Some(path) = peer_file {
        match tchan::peer::PeerFile::read(path) {
            Ok(more) => list.extend(more),
            Err(e) => {
                return Err(usage_for(
                    cmd,
                    format!("cannot read {}: {e}", path.display()),
                ));
            }
        }
    }
    if list.is_empty() {
        return Err(usage_for(cmd, "the peer list is empty"));
    }
    Ok((list, service.clone(), method.clone()))
}

fn exit_for(e: &Error) -> u8 {
    match e.code() {
        ErrorCode::TIMEOUT => 1,
        ErrorCode::CANCELLED => 2,
        ErrorCode::BUSY => 3,
        ErrorCode::DECLINED => 4,
        ErrorCode::BAD_REQUEST => 6,
        ErrorCode::NETWORK => 7,
        ErrorCode::UNHEALTHY => 8,
        ErrorCode::PROTOCOL => EXIT_PROTOCOL,
        _ => 5,
    }
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("tchan call: {msg}");
    ExitCode::from(EXIT_LOCAL)
}

async fn call(a: CallArgs) -> ExitCode {
    let (peers, service, method) = match resolve_target("call", &a.to) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let read_arg =
        |text: &Option<String>, file: &Option<PathBuf>, default: &str| -> io::Result<Bytes> {
            Ok(match (text, file) {
                (Some(t), _) => Bytes::from(t.clone().into_bytes()),
                (None, Some(p)) => Bytes::from(read_input(p)?),
                (None, None) => Bytes::from(default.as_bytes().to_vec()),
            })
        };
    let arg2 = match read_arg(&a.arg2, &a.arg2_file, if a.json { "{}" } else { "" }) {
        Ok(b) => b,
        Err(e) => return usage(format!("cannot read arg2: {e}")),
    };
    let arg3 = match read_arg(&a.arg3, &a.arg3_file, "") {
        Ok(b) => b,
        Err(e) => return usage(format!("cannot read arg3: {e}")),
    };
    let Some(checksum) = ChecksumType::from_name(&a.checksum) else {
        return usage(format!(
            "unknown checksum {:?} (none, crc32, crc32c, farmhash32)",
            a.checksum
        ));
    };
    let mut req = CallRequest::new(service.clone(), Bytes::from(method.clone().into_bytes()))
        .arg2(arg2)
        .arg3(arg3)
        .timeout(Duration::from_millis(a.timeout))
        .checksum(checksum)
        .scheme(if a.json { "json" } else { "raw" });
    req.options.set_caller(a.caller.clone());
    if let Some(sk) = &a.shard_key {
        req.options.set_shard_key(sk.clone());
    }
    for h in &a.headers {
        let Some((k, v)) = h.split_once('=') else {
            return usage(format!("--header {h:?} is not k=v"));
        };
        req.options.add_header(k, v);
    }
    // Header rules are checked before anything is sent: a violation is local.
    let mut check: Vec<(&str, &str)> = vec![("cn", ""), ("as", "")];
    if let Some(sk) = &a.shard_key {
        check.push(("sk", sk));
    }
    check.extend(
        req.options
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    if let Err(e) = tchan::frame::TransportHeaders::strict(check) {
        return usage(format!("bad --header: {e}"));
    }
    let pool = tchan::peer::PeerPool::new(
        Channel::new(a.caller.clone()),
        peers.clone(),
        tchan::peer::PoolConfig {
            max_retries: a.retries,
            ..tchan::peer::PoolConfig::default()
        },
    );
    if let Some(path) = &a.to.peer_file {
        pool.follow(tchan::peer::PeerFile::new(path.clone()));
    }
    let resp = match pool.call(req).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tchan call: {e}");
            return ExitCode::from(exit_for(&e));
        }
    };
    if a.verbose {
        let mut err = io::stderr().lock();
        for (k, v) in resp.headers.iter() {
            let _ = writeln!(
                err,
                "header {}: {}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(v)
            );
        }
        let _ = writeln!(err, "arg2: {}", String::from_utf8_lossy(&resp.arg2));
    }
    let written = if let Some(path) = &a.output {
        std::fs::write(path, &resp.arg3)
    } else {
        let mut out = io::stdout().lock();
        let pretty = a
            .json
            .then(|| serde_json::from_slice::<serde_json::Value>(&resp.arg3).ok())
            .flatten()
            .and_then(|v| serde_json::to_string_pretty(&v).ok());
        match pretty {
            Some(p) => writeln!(out, "{p}"),
            None => out.write_all(&resp.arg3),
        }
        .and_then(|()| out.flush())
    };
    if let Err(e) = written {
        eprintln!("tchan call: cannot write arg3: {e}");
        return ExitCode::from(EXIT_LOCAL);
    }
    if resp.is_application_error() {
        ExitCode::from(EXIT_APPLICATION)
    } else {
        ExitCode::SUCCESS
    }
}

// ===== bench and demo =====

fn seconds(s: f64, what: &str) -> Result<Duration, ExitCode> {
    if s.is_finite() && s >= 0.0 {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(usage_for(
            "bench",
            format!("--{what} must be a number of seconds >= 0"),
        ))
    }
}

fn usage_for(cmd: &str, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("tchan {cmd}: {msg}");
    ExitCode::from(EXIT_LOCAL)
}

fn bench(a: BenchArgs) -> ExitCode {
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
    let config = tchan::loadgen::LoadConfig {
        peers,
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
fn run_load(config: &tchan::loadgen::LoadConfig) -> Result<tchan::loadgen::Report, Error> {
    use std::io::IsTerminal;
    use std::sync::atomic::Ordering;
    let progress = std::sync::Arc::new(tchan::loadgen::Progress::default());
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
    let r = tchan::loadgen::run(config, progress);
    done.store(true, Ordering::Relaxed);
    if let Some(t) = ticker {
        let _ = t.join();
    }
    r
}

fn report_json(r: &tchan::loadgen::Report) -> String {
    let mut by_code = serde_json::Map::new();
    for name in tchan::loadgen::ERROR_NAMES {
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

fn print_summary(c: &tchan::loadgen::LoadConfig, r: &tchan::loadgen::Report) {
    println!(
        "tchan bench: {} {} {}, {} B arg3, {} connection(s), {} in flight, {} thread(s), {:.1} s measured after {:.1} s warm-up",
        c.peers.join(","),
        c.service,
        c.method,
        c.size,
        c.connections,
        c.concurrency,
        c.threads.min(c.connections),
        c.duration.as_secs_f64(),
        c.warmup.as_secs_f64()
    );
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

fn demo(a: DemoArgs) -> ExitCode {
    let duration = match seconds(a.duration, "duration") {
        Ok(d) => d,
        Err(e) => return e,
    };
    // The server: its own thread and current-thread runtime.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            let channel = Channel::new("demo");
            channel.register("demo", "echo", demo::echo);
            match channel.listen("127.0.0.1:0").await {
                Ok(addr) => {
                    let _ = tx.send(Ok(addr));
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
            std::future::pending::<()>().await;
        });
    });
    let addr = match rx.recv() {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return usage_for("demo", format!("cannot listen: {e}")),
        Err(_) => return usage_for("demo", "the server thread failed to start"),
    };
    println!(
        "tchan demo: a tchan server on {addr} (one thread) and tchan bench against it (one thread),"
    );
    println!("both in this process, over loopback TCP, 64-byte echo calls, crc32c checksums.\n");
    let mut results = Vec::new();
    for concurrency in [1usize, 64] {
        let config = tchan::loadgen::LoadConfig {
            peers: vec![addr.to_string()],
            max_retries: 2,
            service: "demo".into(),
            method: "echo".into(),
            concurrency,
            duration,
            warmup: Duration::from_millis(500),
            size: 64,
            connections: 1,
            threads: 1,
            checksum: ChecksumType::CRC32C,
            timeout: Duration::from_secs(5),
            caller: "tchan-demo".into(),
        };
        match run_load(&config) {
            Ok(r) => {
                print_summary(&config, &r);
                println!();
                results.push(r);
            }
            Err(e) => {
                eprintln!("tchan demo: {e}");
                return ExitCode::from(exit_for(&e));
            }
        }
    }
    let (one, many) = (&results[0], &results[1]);
    println!("What this means:");
    println!(
        "- One call at a time, a round trip takes {} us at the median: that is the latency floor of",
        one.p50_us
    );
    println!(
        "  this machine's loopback plus two wake-ups, with the whole TChannel protocol on top."
    );
    println!(
        "- With 64 calls in flight on one connection, {:.0} calls/s ({:.1}x), because frames are",
        many.calls_per_sec,
        many.calls_per_sec / one.calls_per_sec.max(1.0)
    );
    println!(
        "  batched: one read and one write carry many calls, and no task is spawned per call."
    );
    println!(
        "- cpu/call ({:.2} us at 64 in flight) counts client and server together, since both run",
        many.cpu_us_per_call
    );
    println!(
        "  in this process. Errors: {} and {}.",
        one.errors, many.errors
    );
    println!(
        "For load against another server: tchan bench HOST:PORT SERVICE METHOD --concurrency 64"
    );
    ExitCode::SUCCESS
}
