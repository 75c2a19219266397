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
    let channel = Channel::new(args.service.clone());
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
