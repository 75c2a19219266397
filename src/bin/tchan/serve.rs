//! `tchan serve`: a demo server with the methods echo, sleep and fail.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use tchan::frame::ErrorCode;
use tchan::server::HandlerResult;
use tchan::{Channel, Request, Response};

use crate::EXIT_LOCAL;

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub(crate) listen: String,
    /// Service name to serve.
    #[arg(long, default_value = "tchan")]
    pub(crate) service: String,
    /// Worker threads, each with its own current-thread runtime; accepted
    /// connections are spread over them. Default: one per core.
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Advertise the service to this relay (Hyperbahn `ad`) and keep
    /// re-advertising about every 60 s; repeat for several relays. While a
    /// relay is down it keeps serving and retries; on drain it sends `unad`.
    #[arg(long = "advertise", value_name = "RELAY:PORT")]
    pub(crate) advertise: Vec<String>,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) metrics_listen: Option<String>,
}

/// The demo server's handlers.
pub(crate) mod handlers {
    use super::*;

    /// `echo`: the request's arg2 and arg3.
    pub(crate) async fn echo(req: Request) -> HandlerResult {
        let arg3 = req.arg3.into_bytes().await?;
        Ok(Response::ok(req.arg2, arg3))
    }

    /// `sleep`: waits arg3 milliseconds, then echoes.
    pub(crate) async fn sleep(req: Request) -> HandlerResult {
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
    pub(crate) async fn fail(req: Request) -> HandlerResult {
        let arg3 = req.arg3.into_bytes().await?;
        Ok(Response::app_error(req.arg2, arg3))
    }
}

pub(crate) async fn serve(args: ServeArgs, workers: Vec<tokio::runtime::Handle>) -> ExitCode {
    for r in &args.advertise {
        if tchan::frame::parse_host_port(r).is_none() {
            eprintln!("tchan serve: --advertise {r:?}: expected HOST:PORT");
            return ExitCode::from(EXIT_LOCAL);
        }
    }
    let metrics_addr = match &args.metrics_listen {
        Some(addr) => match crate::prom::listen(addr) {
            Ok(a) => Some(a),
            Err(e) => {
                eprintln!("tchan serve: --metrics-listen: {e}");
                return ExitCode::from(EXIT_LOCAL);
            }
        },
        None => None,
    };
    let mut config = tchan::ChannelConfig::default();
    config.set_metrics(metrics_addr.is_some());
    let channel = Channel::with_config(args.service.clone(), config);
    channel.spread_connections_over(workers);
    channel.register(&args.service, "echo", handlers::echo);
    channel.register(&args.service, "sleep", handlers::sleep);
    channel.register(&args.service, "fail", handlers::fail);
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
        if let Some(m) = metrics_addr {
            let _ = writeln!(out, "metrics on {m}");
        }
        let _ = out.flush();
    }
    let advertisers: Vec<_> = args
        .advertise
        .iter()
        .map(|relay| {
            tokio::spawn(advertise::keep_advertising(
                channel.clone(),
                relay.clone(),
                args.service.clone(),
            ))
        })
        .collect();
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
    for a in advertisers {
        a.abort();
    }
    for relay in &args.advertise {
        if let Err(e) = advertise::send(&channel, relay, &args.service, "unad").await {
            eprintln!("tchan serve: unad to {relay} failed: {e}");
        }
    }
    channel.drain().await;
    ExitCode::SUCCESS
}

/// Hyperbahn advertisement from `tchan serve` ([RELAY-10]).
mod advertise {
    use std::time::Duration;

    use rand::Rng;
    use std::collections::HashMap;
    use std::sync::{Mutex, MutexGuard, OnceLock};
    use tchan::frame::ArgScheme;

    use tchan::{CallRequest, Channel, Client};

    /// The connection to each relay, kept: the relay sends calls for the
    /// service back on it, and re-advertisements go on it.
    fn cache() -> MutexGuard<'static, HashMap<String, Client>> {
        static CACHE: OnceLock<Mutex<HashMap<String, Client>>> = OnceLock::new();
        CACHE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `hyperbahn::{op}` for `service` to `relay`, on the channel's
    /// connection to it when there is one (the relay sends calls back on it).
    pub(crate) async fn send(
        channel: &Channel,
        relay: &str,
        service: &str,
        op: &str,
    ) -> Result<(), tchan::Error> {
        let existing = cache()
            .get(relay)
            .filter(|c| c.accepts_new_calls())
            .cloned();
        let client = match existing {
            Some(c) => c,
            None => {
                let c = channel.connect(relay).await?;
                cache().insert(relay.to_owned(), c.clone());
                c
            }
        };
        let body = tchan::relay::advert::services_body(&[service]);
        client
            .call(
                CallRequest::new("hyperbahn", op.to_owned())
                    .scheme(ArgScheme::Json)
                    .arg2("null")
                    .arg3(body)
                    .timeout(Duration::from_secs(2)),
            )
            .await
            .map(|_| ())
    }

    /// Advertises every 60 s plus up to 30 s of jitter; while the relay is
    /// down, retries with backoff (1 s doubling to 30 s) and says so.
    pub(crate) async fn keep_advertising(channel: Channel, relay: String, service: String) {
        let mut backoff = Duration::from_secs(1);
        let mut up = false;
        loop {
            match send(&channel, &relay, &service, "ad").await {
                Ok(()) => {
                    if !up {
                        eprintln!("tchan serve: advertised {service} to {relay}");
                        up = true;
                    }
                    backoff = Duration::from_secs(1);
                    let jitter = rand::rng().random_range(0..30_000);
                    tokio::time::sleep(Duration::from_millis(60_000 + jitter)).await;
                }
                Err(e) => {
                    eprintln!(
                        "tchan serve: cannot advertise {service} to {relay}: {e}; retrying in {} s",
                        backoff.as_secs()
                    );
                    up = false;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}
