//! `tchan relay`: Hyperbahn in one process: routes calls by service name to
//! the peers that advertised it (or that `--routes` lists), forwarding frames
//! without reassembling them (`spec/12-relay.md`).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use tchan::relay::policy::parse_edge;
use tchan::relay::routes::read_routes;
use tchan::relay::{RateLimit, Relay, RelayConfig};

#[derive(Args)]
pub(crate) struct RelayArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Static routes: a JSON object {"SERVICE": ["HOST:PORT", ...]}, re-read
    /// when it changes (a bad file then keeps the last good routes).
    #[arg(long, value_name = "FILE")]
    routes: Option<PathBuf>,
    /// Another relay to share advertisements with; repeat for several.
    #[arg(long = "peer-relay", value_name = "HOST:PORT")]
    peer_relays: Vec<String>,
    /// Seconds an advertisement lasts without renewal.
    #[arg(long, value_name = "S", default_value_t = 150.0)]
    advert_ttl: f64,
    /// Requests per second beyond which calls get busy: SERVICE=RPS, or
    /// CALLER->SERVICE=RPS for one edge. Repeatable.
    #[arg(long = "rate-limit", value_name = "SPEC")]
    rate_limits: Vec<String>,
    /// Reject calls from CALLER to SERVICE (declined) until the relay
    /// restarts. Repeatable.
    #[arg(long = "kill", value_name = "CALLER->SERVICE")]
    kills: Vec<String>,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics.
    #[arg(long, value_name = "HOST:PORT")]
    metrics_listen: Option<String>,
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    crate::usage_for("relay", msg)
}

pub(crate) async fn relay(args: RelayArgs) -> ExitCode {
    let mut config = RelayConfig::default();
    if !(args.advert_ttl.is_finite() && args.advert_ttl > 0.0) {
        return usage(format!(
            "--advert-ttl {}: expected seconds > 0",
            args.advert_ttl
        ));
    }
    config.advert_ttl = Duration::from_secs_f64(args.advert_ttl);
    config.metrics = args.metrics_listen.is_some();
    let mut limits = Vec::new();
    for spec in &args.rate_limits {
        match spec.parse::<RateLimit>() {
            Ok(l) => limits.push(l),
            Err(e) => return usage(format!("--rate-limit: {e}")),
        }
    }
    let mut kills = Vec::new();
    for spec in &args.kills {
        match parse_edge(spec) {
            Ok((Some(caller), service)) => kills.push((caller, service)),
            Ok((None, _)) => return usage(format!("--kill {spec:?}: expected CALLER->SERVICE")),
            Err(e) => return usage(format!("--kill {spec:?}: {e}")),
        }
    }
    for p in &args.peer_relays {
        if tchan::frame::parse_host_port(p).is_none() {
            return usage(format!("--peer-relay {p:?}: expected HOST:PORT"));
        }
    }
    let routes = match &args.routes {
        Some(path) => match read_routes(path) {
            Ok(r) => Some(r),
            Err(e) => return usage(format!("--routes: {e}")),
        },
        None => None,
    };
    let relay = match Relay::bind(args.listen.as_str(), config).await {
        Ok(r) => r,
        Err(e) => return usage(format!("cannot listen on {}: {e}", args.listen)),
    };
    relay.with_core(|core| {
        if let Some(r) = routes {
            core.set_routes(r);
        }
        for l in &limits {
            core.policy_mut().limit(l);
        }
        for (c, s) in &kills {
            core.policy_mut().kill(c, s);
        }
    });
    for p in &args.peer_relays {
        relay.add_peer_relay(p.clone());
    }
    let metrics_addr = match &args.metrics_listen {
        Some(addr) => match crate::prom::listen(addr) {
            Ok(a) => Some(a),
            Err(e) => return usage(format!("--metrics-listen: {e}")),
        },
        None => None,
    };
    {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "listening on {}", relay.local_addr());
        if let Some(m) = metrics_addr {
            let _ = writeln!(out, "metrics on {m}");
        }
        let _ = out.flush();
    }
    if let Some(path) = args.routes.clone() {
        tokio::spawn(watch_routes(relay.clone(), path));
    }
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => return usage(format!("cannot watch SIGTERM: {e}")),
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("tchan relay: draining");
    relay.drain(Duration::from_secs(5)).await;
    ExitCode::SUCCESS
}

/// Re-reads the routes file once a second; applies it when it changed, keeps
/// the last good routes (and says why on stderr) when it does not parse.
async fn watch_routes(relay: Relay, path: PathBuf) {
    let mut last = std::fs::read_to_string(&path).ok();
    let mut warned = false;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let text = std::fs::read_to_string(&path).ok();
        if text == last {
            continue;
        }
        match read_routes(&path) {
            Ok(r) => {
                relay.with_core(|core| core.set_routes(r));
                eprintln!("tchan relay: routes re-read from {}", path.display());
                last = text;
                warned = false;
            }
            Err(e) => {
                if !warned {
                    eprintln!("tchan relay: keeping the last good routes: {e}");
                    warned = true;
                }
            }
        }
    }
}
