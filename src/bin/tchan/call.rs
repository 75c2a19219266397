//! `tchan call`: one call through the peer pool, like tcurl.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;

use tchan::frame::ChecksumType;
use tchan::{CallRequest, Channel};

use crate::{EXIT_APPLICATION, EXIT_LOCAL, Target, exit_for, read_input, resolve_target};

#[derive(Args)]
pub(crate) struct CallArgs {
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
    /// Send as=thrift, METHOD being `Service::method` of this IDL: --arg3 is
    /// the args as a JSON object, --arg2 a JSON object of string headers
    /// (default `{}`); prints the return value as JSON (void: `null`), or
    /// `{"<exception>": {...}}` and exits 126 for a declared exception.
    #[arg(long, value_name = "FILE.thrift", conflicts_with = "json")]
    thrift: Option<PathBuf>,
    /// Timeout in milliseconds (default 5000; 1000 with --health).
    #[arg(long)]
    timeout: Option<u64>,
    /// Ask the peer's `Meta::health` (no METHOD: `[PEER] SERVICE`): prints
    /// `OK` (exit 0) or `NOT OK: <message>` (exit 124 when the peer answers
    /// not ok, 125 when no answer could be had).
    #[arg(long, conflicts_with_all = ["json", "thrift", "arg2", "arg2_file", "arg3", "arg3_file", "output"])]
    health: bool,
    /// A transport header, k=v (split at the first `=`); repeatable.
    #[arg(long = "header", value_name = "K=V")]
    headers: Vec<String>,
    /// Checksum type: none, crc32, crc32c or farmhash32.
    #[arg(long, default_value = "crc32c")]
    checksum: String,
    /// Shard key (sk header); with several peers the call goes to the key's
    /// owner on a ringpop-compatible hash ring of them.
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

/// The pool for a one-shot call to the peers of `static_peers` and, with
/// --peer-dns/--peer-srv, those DNS gives within `timeout` (POOL-36; no peer
/// at all: exit 7, naming the lookups); and what is left of `timeout`.
pub(crate) async fn pool_for(
    a: &CallArgs,
    static_peers: Vec<String>,
    timeout: Duration,
) -> Result<(tchan::peer::PeerPool, Duration), ExitCode> {
    let started = std::time::Instant::now();
    let mut peers = tchan::peer::PeerSet::from(static_peers);
    if let Some(dns) = crate::discover::from_target("call", &a.to, timeout)? {
        peers = dns.lookup_all().await.after("call", &peers)?;
    }
    let left = timeout
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(1));
    let pool = tchan::peer::PeerPool::new(Channel::new(a.caller.clone()), Vec::<String>::new(), {
        let mut c = tchan::peer::PoolConfig::default();
        c.set_max_retries(a.retries);
        // [POOL-31] with several peers, a shard key goes to its owner.
        if a.shard_key.is_some() && (peers.len() > 1 || a.to.peer_file.is_some()) {
            c.set_shard_routing(Some(tchan::peer::ShardRouting::NextOnRing));
        }
        c
    });
    pool.set_peer_set(&peers);
    if let Some(path) = &a.to.peer_file {
        // The file as it changes, with every other peer kept (POOL-36).
        pool.follow(
            tchan::peer::UnionPeers::new()
                .with(tchan::peer::StaticPeers::from(peers))
                .with(tchan::peer::PeerFile::new(path.clone())),
        );
    }
    Ok((pool, left))
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("tchan call: {msg}");
    ExitCode::from(EXIT_LOCAL)
}

pub(crate) async fn call(a: CallArgs) -> ExitCode {
    if a.health {
        return health::check(&a).await;
    }
    let timeout = a.timeout.unwrap_or(5000);
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
    let arg2 = match read_arg(
        &a.arg2,
        &a.arg2_file,
        if a.json || a.thrift.is_some() {
            "{}"
        } else {
            ""
        },
    ) {
        Ok(b) => b,
        Err(e) => return usage(format!("cannot read arg2: {e}")),
    };
    let arg3 = match read_arg(&a.arg3, &a.arg3_file, "") {
        Ok(b) => b,
        Err(e) => return usage(format!("cannot read arg3: {e}")),
    };
    // --thrift: the args from JSON through the IDL, before anything is sent.
    let thrift = match &a.thrift {
        Some(path) => match thrift_call::prepare(path, &method, &arg2, &arg3) {
            Ok(t) => Some(t),
            Err(msg) => return usage(msg),
        },
        None => None,
    };
    let (arg2, arg3) = match &thrift {
        Some(t) => (t.arg2.clone(), t.arg3.clone()),
        None => (arg2, arg3),
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
        .timeout(Duration::from_millis(timeout))
        .checksum(checksum)
        .scheme(if a.json {
            "json"
        } else if thrift.is_some() {
            "thrift"
        } else {
            "raw"
        });
    req = req.caller(a.caller.clone());
    if let Some(sk) = &a.shard_key {
        req = req.shard_key(sk.clone());
    }
    for h in &a.headers {
        let Some((k, v)) = h.split_once('=') else {
            return usage(format!("--header {h:?} is not k=v"));
        };
        req = req.header(k, v);
    }
    // Header rules are checked before anything is sent: a violation is local.
    let mut check: Vec<(&[u8], &[u8])> = vec![(b"cn", b""), (b"as", b"")];
    if let Some(sk) = &a.shard_key {
        check.push((b"sk", sk.as_bytes()));
    }
    if let Err(e) = req.options.headers().validate() {
        return usage(format!("bad --header: {e}"));
    }
    check.extend(req.options.headers().iter());
    if let Err(e) = tchan::frame::TransportHeaders::strict(check) {
        return usage(format!("bad --header: {e}"));
    }
    // [POOL-33] DNS peers: one lookup, within the call's timeout.
    let (pool, left) = match pool_for(&a, peers, Duration::from_millis(timeout)).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    req.options.set_timeout(left);
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
    if let (Some(t), None) = (&thrift, &a.output) {
        return thrift_call::print(t, &resp.arg3);
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

/// `tchan call --thrift`: JSON to the method's args struct and its result
/// struct back to JSON, through the IDL (SCHEME-15).
mod thrift_call {
    use std::io::Write;
    use std::path::Path;
    use std::process::ExitCode;

    use bytes::Bytes;
    use serde_json::Value;
    use tchan::idl::{Field, Idl, decode_fields, encode_fields};

    use crate::{EXIT_APPLICATION, EXIT_LOCAL};

    /// A thrift call ready to send, and what reading its answer needs.
    pub(crate) struct Prepared {
        pub(crate) arg2: Bytes,
        pub(crate) arg3: Bytes,
        idl: Idl,
        method: String,
        result: Vec<Field>,
        void: bool,
    }

    pub(crate) fn prepare(
        path: &Path,
        method: &str,
        arg2: &[u8],
        arg3: &[u8],
    ) -> Result<Prepared, String> {
        let idl = Idl::load(path).map_err(|e| format!("--thrift: {e}"))?;
        let Some((_, f)) = idl.method(method) else {
            return Err(format!(
                "--thrift: {} has no method {method:?} (expected Service::method)",
                path.display()
            ));
        };
        let args: Value = if arg3.is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_slice(arg3).map_err(|e| format!("--arg3 is not JSON: {e}"))?
        };
        let body = encode_fields(&idl, &format!("{method} args"), &f.args, &args)
            .map_err(|e| format!("--arg3: {e}"))?;
        let headers: Value =
            serde_json::from_slice(arg2).map_err(|e| format!("--arg2 is not JSON: {e}"))?;
        let Value::Object(h) = headers else {
            return Err("--arg2 with --thrift must be a JSON object of string headers".to_owned());
        };
        let mut pairs = Vec::with_capacity(h.len());
        for (k, v) in h {
            let Value::String(v) = v else {
                return Err(format!("--arg2: header {k:?} is not a string"));
            };
            pairs.push((k, v));
        }
        let arg2 =
            tchan::scheme::thrift::encode_headers(&pairs).map_err(|e| format!("--arg2: {e}"))?;
        Ok(Prepared {
            arg2,
            arg3: Bytes::from(body),
            result: f.result_fields(),
            void: f.returns == tchan::idl::Type::Void,
            method: method.to_owned(),
            idl,
        })
    }

    /// Prints the answer: the return value, or the declared exception
    /// (exit 126).
    pub(crate) fn print(t: &Prepared, arg3: &[u8]) -> ExitCode {
        let v = match decode_fields(&t.idl, &format!("{} result", t.method), &t.result, arg3) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("tchan call: the reply does not decode: {e}");
                return ExitCode::from(EXIT_LOCAL);
            }
        };
        let obj = v.as_object().cloned().unwrap_or_default();
        let (out, code) = match (
            obj.get("success"),
            obj.iter().find(|(k, _)| *k != "success"),
        ) {
            (_, Some((name, ex))) => {
                let mut m = serde_json::Map::new();
                m.insert(name.clone(), ex.clone());
                (Value::Object(m), ExitCode::from(EXIT_APPLICATION))
            }
            (Some(s), None) => (s.clone(), ExitCode::SUCCESS),
            (None, None) => {
                if !t.void {
                    eprintln!("tchan call: the reply has no return value");
                }
                (Value::Null, ExitCode::SUCCESS)
            }
        };
        let mut stdout = std::io::stdout().lock();
        let text = serde_json::to_string_pretty(&out).unwrap_or_default();
        if writeln!(stdout, "{text}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return ExitCode::from(EXIT_LOCAL);
        }
        code
    }
}

/// `tchan call --health`: `Meta::health` as TChannel's CLI tools send it
/// (the no-argument form), `OK` or `NOT OK: ...` (SCHEME-19).
mod health {
    use std::io::Write;
    use std::process::ExitCode;
    use std::time::Duration;

    use bytes::Bytes;
    use serde_json::Value;
    use tchan::CallRequest;
    use tchan::frame::ArgScheme;
    use tchan::idl::{Idl, decode_fields};

    use super::CallArgs;
    use crate::EXIT_LOCAL;

    /// Exit status when the peer answers not ok.
    const EXIT_NOT_OK: u8 = 124;

    fn say(line: &str, code: u8) -> ExitCode {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        ExitCode::from(code)
    }

    pub(crate) async fn check(a: &CallArgs) -> ExitCode {
        let (peers, service) = match crate::resolve_service_target("call", &a.to) {
            Ok(t) => t,
            Err(code) => return code,
        };
        let timeout = Duration::from_millis(a.timeout.unwrap_or(1000));
        let (pool, timeout) = match super::pool_for(a, peers, timeout).await {
            Ok(p) => p,
            Err(code) => return code,
        };
        let req = CallRequest::new(service, "Meta::health")
            .scheme(ArgScheme::Thrift)
            .caller(a.caller.clone())
            .arg2(Bytes::from_static(&[0, 0]))
            .arg3(Bytes::from_static(&[0]))
            .timeout(timeout);
        let resp = match tokio::time::timeout(timeout + Duration::from_millis(100), pool.call(req))
            .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return say(&format!("NOT OK: {e}"), EXIT_LOCAL),
            Err(_) => return say("NOT OK: timed out", EXIT_LOCAL),
        };
        let Ok(idl) = Idl::parse_str("meta.thrift", tchan::META_IDL) else {
            return say("NOT OK: the meta IDL does not parse", EXIT_LOCAL);
        };
        let Some((_, f)) = idl.method("Meta::health") else {
            return say("NOT OK: the meta IDL has no health", EXIT_LOCAL);
        };
        let v = match decode_fields(&idl, "health result", &f.result_fields(), &resp.arg3) {
            Ok(v) => v,
            Err(e) => {
                return say(
                    &format!("NOT OK: the answer does not decode: {e}"),
                    EXIT_LOCAL,
                );
            }
        };
        let Some(status) = v.get("success") else {
            return say("NOT OK: the answer has no health status", EXIT_LOCAL);
        };
        if status.get("ok") == Some(&Value::Bool(true)) {
            return say("OK", 0);
        }
        let why = match (
            status.get("message").and_then(Value::as_str),
            status.get("state"),
        ) {
            (Some(m), _) => m.to_owned(),
            (None, Some(Value::String(s))) => format!("state {s}"),
            (None, Some(other)) => format!("state {other}"),
            (None, None) => "not ok".to_owned(),
        };
        say(&format!("NOT OK: {why}"), EXIT_NOT_OK)
    }
}
