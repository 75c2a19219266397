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
    #[command(after_help = CALL_EXIT_HELP)]
    Call(Box<CallArgs>),
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
}

#[derive(Args)]
struct CallArgs {
    /// The peer, HOST:PORT.
    peer: String,
    /// The service to call.
    service: String,
    /// The method (arg1).
    method: String,
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
        Command::Serve(args) => run_current_thread(serve(args)),
        Command::Call(args) => run_current_thread(call(*args)),
    }
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
                tchan::transport::handler_error(
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

async fn serve(args: ServeArgs) -> ExitCode {
    let channel = Channel::new(args.service.clone());
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

fn exit_for(e: &Error) -> u8 {
    match e.code {
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
    let mut req = CallRequest::new(
        a.service.clone(),
        Bytes::from(a.method.clone().into_bytes()),
    )
    .arg2(arg2)
    .arg3(arg3)
    .timeout(Duration::from_millis(a.timeout))
    .checksum(checksum)
    .scheme(if a.json { "json" } else { "raw" });
    req.options.caller = Some(a.caller.clone());
    req.options.shard_key = a.shard_key.clone();
    for h in &a.headers {
        let Some((k, v)) = h.split_once('=') else {
            return usage(format!("--header {h:?} is not k=v"));
        };
        req.options.headers.push((k.to_string(), v.to_string()));
    }
    // Header rules are checked before anything is sent: a violation is local.
    let mut check: Vec<(&str, &str)> = vec![("cn", ""), ("as", "")];
    if let Some(sk) = &a.shard_key {
        check.push(("sk", sk));
    }
    check.extend(
        req.options
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    if let Err(e) = tchan::frame::TransportHeaders::strict(check) {
        return usage(format!("bad --header: {e}"));
    }
    let channel = Channel::new(a.caller.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_millis(a.timeout);
    let client = match tokio::time::timeout_at(deadline, channel.connect(a.peer.as_str())).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            eprintln!("tchan call: cannot connect to {}: {e}", a.peer);
            return ExitCode::from(exit_for(&e));
        }
        Err(_) => {
            eprintln!("tchan call: connecting to {} timed out", a.peer);
            return ExitCode::from(1);
        }
    };
    req.options.timeout = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .max(Duration::from_millis(1));
    let resp = match client.call(req).await {
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
    client.close();
    if resp.is_application_error() {
        ExitCode::from(EXIT_APPLICATION)
    } else {
        ExitCode::SUCCESS
    }
}
