//! Round trips through the whole stack: a client and a server in one process
//! over loopback TCP. 64 B echo with 1, 64 and 256 calls in flight on a
//! current_thread runtime and on a multi-thread one; 256 KiB echo with 1 and
//! 64 in flight.
//!
//! Criterion reports the wall time per batch of calls (and calls/s as
//! throughput). After the run, a table gives the CPU time per call of the
//! whole process (client and server together), measured with the process CPU
//! clock over every timed batch.
//!
//! Run: `cargo bench --bench roundtrip`.

// Measures wall time: the library's clock rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cpu_time::ProcessTime;
use criterion::{BenchmarkId, Criterion, Throughput};
use tchan::{CallRequest, Channel, Client, Request, Response};
use tokio::runtime::Runtime;

static CPU: Mutex<BTreeMap<String, (Duration, Duration, u64)>> = Mutex::new(BTreeMap::new());

async fn setup() -> (Channel, Client) {
    let srv = Channel::new("bench-server");
    srv.register("bench", "echo", |req: Request| async move {
        let arg3 = req.arg3.into_bytes().await?;
        Ok(Response::ok(req.arg2, arg3))
    });
    let addr = srv.listen("127.0.0.1:0").await.unwrap();
    let client = Channel::new("bench-client").connect(addr).await.unwrap();
    (srv, client)
}

fn runtime(multi: bool) -> Runtime {
    if multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }
}

fn echo(c: &mut Criterion, multi: bool, size: usize, inflight: usize) {
    let rt = runtime(multi);
    let (_srv, client) = rt.block_on(setup());
    let payload = Bytes::from(vec![0x5au8; size]);
    let rt_name = if multi {
        "multi_thread"
    } else {
        "current_thread"
    };
    let mut g = c.benchmark_group(format!("echo_{size}B_{rt_name}"));
    g.throughput(Throughput::Elements(inflight as u64));
    if size > 64 * 1024 {
        g.sample_size(10);
    }
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_millis(500));
    let key = format!("echo {size} B, {inflight} in flight, {rt_name}");
    g.bench_function(BenchmarkId::new("in_flight", inflight), |b| {
        b.iter_custom(|iters| {
            let client = client.clone();
            let payload = payload.clone();
            let cpu = ProcessTime::now();
            let wall = Instant::now();
            rt.block_on(async move {
                for _ in 0..iters {
                    let calls = (0..inflight).map(|_| {
                        client.call(
                            CallRequest::new("bench", "echo")
                                .arg3(payload.clone())
                                .timeout(Duration::from_secs(30)),
                        )
                    });
                    for r in futures::future::join_all(calls).await {
                        r.unwrap();
                    }
                }
            });
            let took = wall.elapsed();
            let mut m = CPU.lock().unwrap();
            let e = m.entry(key.clone()).or_default();
            e.0 += cpu.elapsed();
            e.1 += took;
            e.2 += iters * inflight as u64;
            took
        })
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    for multi in [false, true] {
        for inflight in [1, 64, 256] {
            echo(&mut c, multi, 64, inflight);
        }
    }
    for inflight in [1, 64] {
        echo(&mut c, false, 256 * 1024, inflight);
    }
    c.final_summary();
    println!("\n{:<50} {:>14} {:>12}", "case", "CPU us/call", "calls/s");
    for (k, (cpu, wall, calls)) in CPU.lock().unwrap().iter() {
        if *calls == 0 {
            continue;
        }
        println!(
            "{:<50} {:>14.2} {:>12.0}",
            k,
            cpu.as_secs_f64() * 1e6 / *calls as f64,
            *calls as f64 / wall.as_secs_f64()
        );
    }
}
