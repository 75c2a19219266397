//! `tchan demo`: a server and a bench against it on loopback, explained.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use tchan::Channel;
use tchan::frame::ChecksumType;

use crate::bench::{print_summary, run_load, seconds};
use crate::loadgen;
use crate::serve::handlers;
use crate::{exit_for, usage_for};

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Measured seconds per run.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
}

pub(crate) fn demo(a: DemoArgs) -> ExitCode {
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
            channel.register("demo", "echo", handlers::echo);
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
        let config = loadgen::LoadConfig {
            peers: tchan::peer::PeerSet::from(vec![addr.to_string()]),
            follow: None,
            shard_keys: 0,
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
