//! The `tchan` command line: serve, relay, call, bench, demo, ring and decode.
//!
//! One file per subcommand; `loadgen` is the load generator behind `bench`
//! and `demo`, `inspect` the decoder behind `decode`.

// The CLI measures wall time (latency, CPU per call): the library's
// clock rule (clippy.toml) does not apply here.
#![allow(clippy::disallowed_methods)]

mod bench;
mod call;
mod decode;
mod demo;
mod discover;
mod inspect;
mod loadgen;
mod prom;
mod relay;
mod ring;
mod serve;

use std::io::{self, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use tchan::Error;
use tchan::frame::ErrorCode;

/// Exit status for a local error, usage errors included.
pub(crate) const EXIT_LOCAL: u8 = 125;
/// Exit status for an application error (call res code 0x01).
pub(crate) const EXIT_APPLICATION: u8 = 126;
/// Exit status for a fatal protocol error (0xff).
pub(crate) const EXIT_PROTOCOL: u8 = 127;

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
    about = "TChannel RPC tools: serve, relay, call, bench, demo, ring, decode"
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
    Serve(serve::ServeArgs),
    /// Relay calls by service name (Hyperbahn): services advertise
    /// themselves to it, callers call it as if it were every service.
    ///
    /// Prints `listening on HOST:PORT` first (and `metrics on HOST:PORT` with
    /// --metrics-listen); SIGINT or SIGTERM drain, then it exits 0. Usage
    /// errors, an unreadable routes file or a failed listen exit 125.
    Relay(relay::RelayArgs),
    /// Call a method on a peer (a tcurl for tchan).
    #[command(after_help = CALL_EXIT_HELP, override_usage = "tchan call [OPTIONS] [PEER] SERVICE METHOD")]
    Call(Box<call::CallArgs>),
    /// Closed-loop load against a server: calls/s, latency percentiles, CPU
    /// time per call.
    #[command(override_usage = "tchan bench [OPTIONS] [PEER] SERVICE METHOD")]
    Bench(bench::BenchArgs),
    /// Start a demo server and a bench against it on loopback, and explain
    /// the figures.
    Demo(demo::DemoArgs),
    /// Print each key's owner on a ringpop-compatible hash ring of the peers:
    /// `KEY<TAB>OWNER` a line, in the order given (with --n N, N owners in
    /// ring order).
    ///
    /// Exit status: 0; 125 for no peers, no keys, --n below 1 or an
    /// unreadable peer file.
    #[command(
        override_usage = "tchan ring [--peer HOST:PORT]... [--peer-file F] [--n N] [--] KEY..."
    )]
    Ring(ring::RingArgs),
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
        /// Decode thrift call messages through this IDL: a `thrift` key (or
        /// `thrift_error`) on messages whose arg1 names one of its methods.
        #[arg(long, value_name = "FILE.thrift")]
        thrift: Option<PathBuf>,
    },
}

#[derive(Args)]
pub(crate) struct Target {
    /// [PEER] SERVICE METHOD: the peer (HOST:PORT) may instead be given with
    /// --peer (repeatable), --peer-file, --peer-dns or --peer-srv (all of
    /// them together: their union), but not both ways.
    #[arg(value_names = ["PEER", "SERVICE", "METHOD"], num_args = 1..=3, required = true)]
    target: Vec<String>,
    /// A peer, HOST:PORT; repeat for several (calls go through the peer pool).
    #[arg(long = "peer", value_name = "HOST:PORT")]
    peers: Vec<String>,
    /// A file with one HOST:PORT a line (# comments allowed), or a JSON array
    /// of "HOST:PORT" strings, re-read when it changes.
    #[arg(long)]
    peer_file: Option<PathBuf>,
    /// Peers from the A/AAAA records of NAME, each on PORT; repeatable.
    /// `call` looks up once within its --timeout; `bench` follows the records
    /// by their TTL.
    #[arg(long = "peer-dns", value_name = "NAME:PORT")]
    peer_dns: Vec<String>,
    /// Peers from the SRV records of _svc._tcp.NAME (port, priority and weight
    /// from each record); repeatable.
    #[arg(long = "peer-srv", value_name = "_svc._tcp.NAME")]
    peer_srv: Vec<String>,
    /// The DNS server for --peer-dns and --peer-srv (and the SRV targets'
    /// addresses), instead of the system's resolver configuration.
    #[arg(long = "dns-server", value_name = "HOST:PORT")]
    dns_server: Option<String>,
}

impl Target {
    /// Peers are given by DNS flags.
    pub(crate) fn has_dns(&self) -> bool {
        !self.peer_dns.is_empty() || !self.peer_srv.is_empty()
    }

    /// Peers are given by flags rather than as PEER.
    fn flagged(&self) -> bool {
        !self.peers.is_empty() || self.peer_file.is_some() || self.has_dns()
    }
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
        Command::Decode { file, hex, thrift } => decode::decode(file, hex, thrift),
        Command::Serve(args) => {
            let workers = worker_runtimes(args.threads.unwrap_or_else(cores));
            run_current_thread(serve::serve(args, workers))
        }
        Command::Relay(args) => run_current_thread(relay::relay(args)),
        Command::Call(args) => run_current_thread(call::call(*args)),
        Command::Bench(args) => bench::bench(args),
        Command::Demo(args) => demo::demo(args),
        Command::Ring(args) => ring::ring(args),
    }
}

pub(crate) fn cores() -> usize {
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

pub(crate) fn read_input(path: &std::path::Path) -> io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    if path.as_os_str() == "-" {
        io::stdin().read_to_end(&mut raw)?;
    } else {
        std::fs::File::open(path)?.read_to_end(&mut raw)?;
    }
    Ok(raw)
}

/// The peers, service and method from `[PEER] SERVICE METHOD`, `--peer` and
/// `--peer-file`; a usage error when the peer is given both ways or not at all.
/// With --peer-dns or --peer-srv the list may be empty (DNS adds to it).
pub(crate) fn resolve_target(
    cmd: &str,
    to: &Target,
) -> Result<(Vec<String>, String, String), ExitCode> {
    let (target, peers, peer_file) = (&to.target[..], &to.peers[..], &to.peer_file);
    let flagged = to.flagged();
    let (list, service, method) = match (target, flagged) {
        ([peer, service, method], false) => (vec![peer.clone()], service, method),
        ([_, _, _], true) => {
            return Err(usage_for(
                cmd,
                "give the peer as PEER or with --peer/--peer-file/--peer-dns/--peer-srv, not both",
            ));
        }
        ([service, method], true) => (peers.to_vec(), service, method),
        ([_, _], false) => {
            return Err(usage_for(
                cmd,
                "no peer: give PEER, --peer, --peer-file, --peer-dns or --peer-srv",
            ));
        }
        _ => return Err(usage_for(cmd, "expected [PEER] SERVICE METHOD")),
    };
    let list = with_peer_file(cmd, list, peer_file, to.has_dns())?;
    Ok((list, service.clone(), method.clone()))
}

/// The peers and service from `[PEER] SERVICE` (`tchan call --health`: no
/// METHOD), `--peer` and `--peer-file`.
pub(crate) fn resolve_service_target(
    cmd: &str,
    to: &Target,
) -> Result<(Vec<String>, String), ExitCode> {
    let (target, peers, peer_file) = (&to.target[..], &to.peers[..], &to.peer_file);
    let flagged = to.flagged();
    let (list, service) = match (target, flagged) {
        ([peer, service], false) => (vec![peer.clone()], service),
        ([service], true) => (peers.to_vec(), service),
        ([_], false) => {
            return Err(usage_for(
                cmd,
                "no peer: give PEER, --peer, --peer-file, --peer-dns or --peer-srv",
            ));
        }
        _ => {
            return Err(usage_for(
                cmd,
                "expected [PEER] SERVICE with --health (no METHOD; the peer as PEER or with --peer/--peer-file, not both)",
            ));
        }
    };
    let list = with_peer_file(cmd, list, peer_file, to.has_dns())?;
    Ok((list, service.clone()))
}

fn with_peer_file(
    cmd: &str,
    mut list: Vec<String>,
    peer_file: &Option<PathBuf>,
    dns: bool,
) -> Result<Vec<String>, ExitCode> {
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
    if list.is_empty() && !dns {
        return Err(usage_for(cmd, "the peer list is empty"));
    }
    Ok(list)
}

pub(crate) fn exit_for(e: &Error) -> u8 {
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

pub(crate) fn usage_for(cmd: &str, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("tchan {cmd}: {msg}");
    ExitCode::from(EXIT_LOCAL)
}
