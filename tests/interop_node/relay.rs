//! `tchan relay` (src/relay/) between node tchannel 4.0.1 and tchan, live.
//!
//! The relay runs as a child process (`target/debug/tchan relay`). Node
//! servers advertise themselves to it with the npm package's own
//! `HyperbahnClient` (`interop/node/hyperbahn-server.js`); node clients call
//! through it with the relay as their channel's only peer
//! (`interop/node/relay-client.js`); `tchan serve --advertise` and an
//! in-process tchan `Client` are the tchan ends.
//!
//! - `relay_n2n_*`: node client -> relay -> node server (raw and json echo).
//! - `relay_t2n`: tchan client -> relay -> node server.
//! - `relay_n2t_serve`: node client -> relay -> `tchan serve --advertise`.
//! - `relay_failover_*`: two node servers of one service; one is SIGKILLed
//!   while a node or tchan client calls in a loop.
//!
//! Node's own limit on big bodies: node tchannel 4.0.1 resets a connection
//! when more than 100 frames wait in its socket's user-space write buffer
//! (`MAX_PENDING_SOCKET_WRITE_REQ`, connection.js), whoever the peer is. A
//! 3 MiB arg3 is 49 frames, so a node end can have at most 2 such calls (or
//! answers) in flight on one connection; node to node without any relay
//! already fails at 4. The 3 MiB scenarios therefore run 2 in flight; the
//! 64-in-flight scenarios use 64 B bodies.
//!
//! The tests of this module run one at a time (`SERIAL`): the failover tests
//! measure a 1 s window, and on 2 cores the 3 MiB tests would disturb it.

use std::process::ChildStdin;
use std::time::{SystemTime, UNIX_EPOCH};

use tchan::frame::ArgScheme;

use super::*;

/// One relay test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `tchan` binary cargo built for this test run.
fn tchan_bin() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_tchan") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "the tchan binary was not built for this test run (it needs the `cli` feature, \
             a default one): run `cargo test --test interop_node` with default features"
        ),
    }
}

/// Milliseconds since the epoch: the clock node's `Date.now()` reads, so
/// times from both sides compare.
fn epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// A runtime like `#[tokio::test(flavor = "multi_thread", worker_threads =
/// 2)]`'s, for the tests that hold `SERIAL` (not across an await).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

const SVC_TIMEOUT: Duration = Duration::from_secs(15);

// ===== child processes =====

/// A child process with its output collected line by line; SIGKILLed (and
/// reaped) on drop.
struct Proc {
    name: String,
    child: Child,
    /// Kept open: the node scripts exit when it closes.
    _stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        collect_lines(child.stdout.take().unwrap(), stdout.clone());
        collect_lines(child.stderr.take().unwrap(), stderr.clone());
        Proc {
            name: name.to_string(),
            _stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
        }
    }

    fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits up to `limit` for a line of stdout (or stderr) that `pick`
    /// accepts; panics with both streams when the child exits first or the
    /// time runs out.
    fn wait_for<T>(
        &mut self,
        on_stderr: bool,
        limit: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            let lines = if on_stderr {
                self.stderr.lock().unwrap().clone()
            } else {
                self.stdout()
            };
            if let Some(t) = lines.iter().find_map(|l| pick(l)) {
                return t;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                panic!(
                    "{} exited ({status}) before it was ready\nstdout: {:#?}\nstderr: {}",
                    self.name,
                    self.stdout(),
                    self.stderr()
                );
            }
            if start.elapsed() > limit {
                panic!(
                    "{} not ready after {limit:?}\nstdout: {:#?}\nstderr: {}",
                    self.name,
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `tchan relay --listen 127.0.0.1:0`.
struct TchanRelay {
    _proc: Proc,
    addr: SocketAddr,
}

impl TchanRelay {
    fn start() -> TchanRelay {
        let mut proc = Proc::spawn(
            "tchan relay",
            Command::new(tchan_bin()).args(["relay", "--listen", "127.0.0.1:0"]),
        );
        let addr = proc.wait_for(false, SVC_TIMEOUT, |l| {
            l.strip_prefix("listening on ")
                .map(|a| a.parse::<SocketAddr>().expect("relay address"))
        });
        TchanRelay { _proc: proc, addr }
    }
}

/// `node interop/node/hyperbahn-server.js SERVICE RELAY`: a node server that
/// advertised SERVICE to the relay with HyperbahnClient.
struct HyperbahnServer {
    proc: Proc,
    addr: SocketAddr,
}

impl HyperbahnServer {
    fn start(service: &str, relay: SocketAddr) -> HyperbahnServer {
        require_node();
        let mut proc = Proc::spawn(
            &format!("node hyperbahn-server.js {service}"),
            Command::new("node")
                .arg("hyperbahn-server.js")
                .arg(service)
                .arg(relay.to_string())
                .current_dir(node_dir()),
        );
        let advertised: Value = proc.wait_for(false, SVC_TIMEOUT, |l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| v.get("advertised").cloned())
        });
        let addr: SocketAddr = advertised["hostPort"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("advertised line without hostPort: {advertised}"));
        // The relay's answer to `ad`, as HyperbahnClient received it.
        assert!(
            advertised["result"]["connectionCount"].as_u64() >= Some(1),
            "the relay's answer to ad: {advertised}"
        );
        observe(
            "relay",
            format_args!("node HyperbahnClient advertised {service}: {advertised}"),
        );
        HyperbahnServer { proc, addr }
    }

    /// The echo requests it served so far, each {"as", "arg2_len", "arg3_len"}.
    fn requests(&self) -> Vec<Value> {
        self.proc
            .stdout()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v.get("req").cloned())
            .collect()
    }

    fn count(&self) -> usize {
        self.requests().len()
    }

    /// [RELAY-11] The relay sends calls on the connection the server
    /// advertised on, so it should never have accepted one.
    fn assert_no_inbound(&self) {
        let inbound: Vec<String> = self
            .proc
            .stdout()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["inbound"].as_str().map(String::from))
            .collect();
        assert!(
            inbound.is_empty(),
            "the node server accepted connections {inbound:?}: the relay dialled it instead \
             of using the connection it advertised on"
        );
    }

    /// Waits (up to 2 s) until it has served at least `n` requests, then
    /// returns the count per `as`: its stdout may lag behind the answers.
    fn counts_by_scheme(&self, n: usize) -> HashMap<String, usize> {
        let start = Instant::now();
        while self.count() < n && start.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut m = HashMap::new();
        for r in self.requests() {
            *m.entry(r["as"].as_str().unwrap_or("none").to_string())
                .or_insert(0) += 1;
        }
        m
    }
}

/// `tchan serve --service S --advertise RELAY --threads 1`, once it said it
/// advertised.
struct TchanServe {
    _proc: Proc,
}

impl TchanServe {
    fn start(service: &str, relay: SocketAddr) -> TchanServe {
        let relay = relay.to_string();
        let mut proc = Proc::spawn(
            "tchan serve",
            Command::new(tchan_bin()).args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--service",
                service,
                "--advertise",
                &relay,
                "--threads",
                "1",
            ]),
        );
        proc.wait_for(false, SVC_TIMEOUT, |l| {
            l.strip_prefix("listening on ").map(|_| ())
        });
        let want = format!("tchan serve: advertised {service} to {relay}");
        proc.wait_for(true, SVC_TIMEOUT, |l| (l == want).then_some(()));
        TchanServe { _proc: proc }
    }
}

// ===== the node client =====

/// One run of `node interop/node/relay-client.js`.
struct RelayRun {
    summary: Value,
    /// The per-call lines (plan `perCall`).
    calls: Vec<Value>,
    stderr: String,
}

impl RelayRun {
    /// Every one of `n` calls answered ok, with exactly what was sent.
    fn assert_all_echoed(&self, what: &str, n: u64) {
        let s = &self.summary;
        assert!(
            s["calls"] == n && s["echoed"] == n && s["failed"] == 0 && s["mismatched"] == 0,
            "{what}: {n} calls through the relay, not all echoed exactly: {s}\nstderr: {}",
            cut_str(&self.stderr, 4000)
        );
        assert_eq!(
            s["connections"], 1,
            "{what}: one connection to the relay: {s}"
        );
    }
}

fn cut_str(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Runs relay-client.js with `plan`, waiting at most `limit`.
fn run_relay_client(plan: Value, limit: Duration) -> RelayRun {
    require_node();
    let mut proc = Proc::spawn(
        "node relay-client.js",
        Command::new("node")
            .arg("relay-client.js")
            .current_dir(node_dir()),
    );
    {
        let mut stdin = proc._stdin.take().unwrap();
        stdin
            .write_all(plan.to_string().as_bytes())
            .expect("write plan");
    }
    let start = Instant::now();
    loop {
        if let Some(status) = proc.child.try_wait().expect("wait relay-client.js") {
            // Let the reader threads drain the pipes.
            std::thread::sleep(Duration::from_millis(100));
            assert!(
                status.success(),
                "relay-client.js failed: {status}\nstdout: {:#?}\nstderr: {}",
                proc.stdout(),
                proc.stderr()
            );
            break;
        }
        if start.elapsed() > limit {
            proc.kill();
            panic!(
                "relay-client.js still running after {limit:?} (plan {plan})\nstderr: {}",
                cut_str(&proc.stderr(), 4000)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut summary = Value::Null;
    let mut calls = Vec::new();
    for l in proc.stdout() {
        let v: Value = serde_json::from_str(&l)
            .unwrap_or_else(|e| panic!("relay-client.js printed non-JSON {l:?}: {e}"));
        if let Some(s) = v.get("summary") {
            summary = s.clone();
        } else if v.get("call").is_some() {
            calls.push(v);
        }
    }
    let stderr = proc.stderr();
    assert!(
        !summary.is_null(),
        "relay-client.js printed no summary\nstderr: {stderr}"
    );
    RelayRun {
        summary,
        calls,
        stderr,
    }
}

/// The plan of a fixed number of echo calls.
fn echo_plan(
    relay: SocketAddr,
    service: &str,
    kind: &str,
    size: usize,
    calls: usize,
    parallel: usize,
) -> Value {
    json!({"peer": relay.to_string(), "service": service, "kind": kind, "size": size,
           "calls": calls, "parallel": parallel, "timeout": 30_000})
}

/// Node client runs of `kind` x `size` through `relay`, each asserted echoed.
fn node_echo_runs(
    test: &str,
    relay: SocketAddr,
    service: &str,
    runs: &[(&str, usize, usize, usize)],
) {
    for &(kind, size, calls, parallel) in runs {
        let t = Instant::now();
        let run = run_relay_client(
            echo_plan(relay, service, kind, size, calls, parallel),
            Duration::from_secs(120),
        );
        let what = format!("{kind} {size} B x {calls}, {parallel} in flight");
        run.assert_all_echoed(&what, calls as u64);
        observe(
            test,
            format_args!(
                "node client {what}: all echoed in {:?} ({} ms in node)",
                t.elapsed(),
                run.summary["ms"]
            ),
        );
    }
}

// ===== scenario 1: node client -> relay -> node server (HyperbahnClient) =====

#[test]
#[ignore = "needs node; see interop/README.md"]
fn relay_n2n_64b_64_in_flight() {
    let _serial = serial();
    let relay = TchanRelay::start();
    let svc = "relay-n2n-small";
    let srv = HyperbahnServer::start(svc, relay.addr);
    node_echo_runs(
        "relay_n2n_64b_64_in_flight",
        relay.addr,
        svc,
        &[("raw", 64, 512, 64), ("json", 64, 512, 64)],
    );
    let by = srv.counts_by_scheme(1024);
    assert_eq!(
        by.get("raw"),
        Some(&512),
        "raw calls the node server saw: {by:?}"
    );
    assert_eq!(
        by.get("json"),
        Some(&512),
        "json calls the node server saw: {by:?}"
    );
    srv.assert_no_inbound();
    drop(relay);
}

#[test]
#[ignore = "needs node; see interop/README.md"]
fn relay_n2n_3mib() {
    let _serial = serial();
    let relay = TchanRelay::start();
    let svc = "relay-n2n-big";
    let srv = HyperbahnServer::start(svc, relay.addr);
    // 2 in flight: node's own limit (module docs).
    node_echo_runs(
        "relay_n2n_3mib",
        relay.addr,
        svc,
        &[("raw", 3 * MIB, 16, 2), ("json", 3 * MIB, 16, 2)],
    );
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 32, "calls the node server saw");
    for r in reqs.iter().filter(|r| r["as"] == "raw") {
        assert_eq!(r["arg3_len"], 3 * MIB, "raw arg3 at the node server: {r}");
    }
    for r in reqs.iter().filter(|r| r["as"] == "json") {
        assert_eq!(r["arg3_len"], 3 * MIB, "json arg3 at the node server: {r}");
    }
    assert!(
        !srv.proc.stderr().contains("resetting connection"),
        "the node server reset a connection: {}",
        srv.proc.stderr()
    );
    srv.assert_no_inbound();
}

// ===== scenario 2: tchan client -> relay -> node server =====

#[test]
#[ignore = "needs node; see interop/README.md"]
fn relay_t2n() {
    let _serial = serial();
    runtime().block_on(relay_t2n_async());
}

async fn relay_t2n_async() {
    let relay = TchanRelay::start();
    let svc = "relay-t2n";
    let srv = HyperbahnServer::start(svc, relay.addr);
    let client = tokio::time::timeout(
        Duration::from_secs(5),
        Channel::new("c").connect(relay.addr),
    )
    .await
    .expect("connect to the relay hung")
    .expect("connect to the relay");

    // Raw, 64 B, 64 in flight.
    let raw_call = |i: usize, size: usize| {
        let client = client.clone();
        async move {
            let a2 = format!("call-{i}");
            let a3 = pattern(size, i as u8);
            let r = call(
                &client,
                CallRequest::new(svc, "echo")
                    .arg2(a2.clone())
                    .arg3(a3.clone())
                    .timeout(Duration::from_secs(30)),
            )
            .await
            .unwrap_or_else(|e| panic!("raw call {i} ({size} B): {e}"));
            assert!(r.is_ok(), "raw call {i}: code {:?}", r.code);
            assert_eq!(r.arg2, a2.as_bytes(), "raw call {i}: arg2");
            assert!(
                r.arg3 == a3,
                "raw call {i}: arg3 of {} B, not the {size} B sent",
                r.arg3.len()
            );
        }
    };
    futures::future::join_all((0..64).map(|i| raw_call(i, 64))).await;

    // Json, 64 B and 3 MiB bodies: node's json endpoint parses and
    // re-serializes them.
    let json_call = |i: usize, size: usize| {
        let client = client.clone();
        async move {
            let head = json!({"i": i});
            let body = json!({"i": i, "data": "x".repeat(size)});
            let r = call(
                &client,
                CallRequest::new(svc, "echo")
                    .scheme(ArgScheme::Json)
                    .arg2(head.to_string())
                    .arg3(body.to_string())
                    .timeout(Duration::from_secs(30)),
            )
            .await
            .unwrap_or_else(|e| panic!("json call {i} ({size} B): {e}"));
            assert!(r.is_ok(), "json call {i}: code {:?}: {:?}", r.code, r.arg3);
            let h: Value = serde_json::from_slice(&r.arg2).expect("json arg2");
            let b: Value = serde_json::from_slice(&r.arg3).expect("json arg3");
            assert_eq!(h, head, "json call {i}: head");
            assert!(
                b == body,
                "json call {i}: body not echoed ({} B back)",
                r.arg3.len()
            );
        }
    };
    futures::future::join_all((0..64).map(|i| json_call(i, 64))).await;

    // 3 MiB, 2 in flight (node's limit, module docs).
    for pair in 0..4 {
        futures::future::join(
            raw_call(100 + 2 * pair, 3 * MIB),
            raw_call(101 + 2 * pair, 3 * MIB),
        )
        .await;
    }
    for pair in 0..2 {
        futures::future::join(
            json_call(200 + 2 * pair, 3 * MIB),
            json_call(201 + 2 * pair, 3 * MIB),
        )
        .await;
    }
    let by = srv.counts_by_scheme(64 + 64 + 8 + 4);
    assert_eq!(
        by.get("raw"),
        Some(&72),
        "raw calls the node server saw: {by:?}"
    );
    assert_eq!(
        by.get("json"),
        Some(&68),
        "json calls the node server saw: {by:?}"
    );
    srv.assert_no_inbound();
}

// ===== scenario 3: node client -> relay -> tchan serve --advertise =====

#[test]
#[ignore = "needs node; see interop/README.md"]
fn relay_n2t_serve() {
    let _serial = serial();
    let relay = TchanRelay::start();
    let svc = "relay-n2t";
    let serve = TchanServe::start(svc, relay.addr);
    // tchan serve's echo echoes arg2 and arg3 whatever the scheme, so node's
    // json client gets its own JSON back.
    node_echo_runs(
        "relay_n2t_serve",
        relay.addr,
        svc,
        &[
            ("raw", 64, 512, 64),
            ("json", 64, 512, 64),
            ("raw", 3 * MIB, 8, 2),
            ("json", 3 * MIB, 8, 2),
        ],
    );
    drop(serve);
}

// ===== scenario 4: one of two servers killed mid-load =====
//
// The calls in flight to the killed server fail with network errors (0x07);
// they count against that peer's breaker, not the caller -> service::echo
// edge ([RELAY-14]): no call is declined, the survivor takes the rest.
// (Before that rule the edge opened when 5 or more were in flight, and the
// relay declined the whole service for up to a second.)

/// What a failover run saw, for the asserts both variants share.
struct Failover {
    /// (start, end: epoch ms, ok, error code name or "") per call.
    calls: Vec<(i64, i64, bool, String)>,
    killed_at: i64,
    before: (usize, usize),
    after: (usize, usize),
}

/// Calls on the survivor that started at least this long after the kill
/// must all succeed.
const SETTLE_MS: i64 = 1000;

impl Failover {
    fn check(&self, test: &str) {
        let (a, b) = self.before;
        assert!(
            a > 0 && b > 0,
            "both servers got calls before the kill: {a} and {b}"
        );
        assert!(
            self.after.1 > b,
            "the survivor got calls after the kill: {b} before, {} at the end",
            self.after.1
        );
        let k = self.killed_at;
        let late: Vec<_> = self.calls.iter().filter(|c| c.0 >= k + SETTLE_MS).collect();
        let late_failed: Vec<_> = late.iter().filter(|c| !c.2).collect();
        let mut around: HashMap<String, usize> = HashMap::new();
        for c in self.calls.iter().filter(|c| !c.2) {
            *around.entry(c.3.clone()).or_insert(0) += 1;
        }
        let failed_starts: Vec<i64> = self
            .calls
            .iter()
            .filter(|c| !c.2)
            .map(|c| c.0 - k)
            .collect();
        observe(
            test,
            format_args!(
                "{} calls; servers served {a} and {b} before the kill (SIGKILL of the first); \
                 failures by code: {around:?}, starting {:?}..{:?} ms after the kill; \
                 {} calls started >= {SETTLE_MS} ms after it, {} failed",
                self.calls.len(),
                failed_starts.iter().min(),
                failed_starts.iter().max(),
                late.len(),
                late_failed.len()
            ),
        );
        let declined = self
            .calls
            .iter()
            .filter(|c| !c.2 && c.3.to_lowercase().contains("declined"))
            .count();
        assert_eq!(declined, 0, "no call declined: failures by code {around:?}");
        assert!(
            late.len() >= 50,
            "too few calls after the kill + {SETTLE_MS} ms to judge: {}",
            late.len()
        );
        assert!(
            late_failed.is_empty(),
            "{} of {} calls started >= {SETTLE_MS} ms after the kill failed; first (start, end \
             relative to the kill, code): {:?}; failures overall by code: {around:?}",
            late_failed.len(),
            late.len(),
            late_failed
                .iter()
                .take(5)
                .map(|c| (c.0 - k, c.1 - k, c.3.clone()))
                .collect::<Vec<_>>()
        );
    }
}

/// Waits until both servers served at least `n` calls (or `limit` passes),
/// SIGKILLs `a`, and returns (kill time, counts before).
fn kill_when_both_served(
    a: &mut HyperbahnServer,
    b: &HyperbahnServer,
    n: usize,
    limit: Duration,
) -> (i64, (usize, usize)) {
    let start = Instant::now();
    while (a.count() < n || b.count() < n) && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = (a.count(), b.count());
    let at = epoch_ms();
    a.proc.kill();
    (at, before)
}

#[test]
#[ignore = "needs node; see interop/README.md"]
fn relay_failover_node_client() {
    let _serial = serial();
    let relay = TchanRelay::start();
    let svc = "relay-failover-n";
    let mut a = HyperbahnServer::start(svc, relay.addr);
    let b = HyperbahnServer::start(svc, relay.addr);
    assert_ne!(a.addr, b.addr);
    let plan = json!({"peer": relay.addr.to_string(), "service": svc, "kind": "raw",
                      "size": 64, "durationMs": 6000, "parallel": 8, "timeout": 2000,
                      "perCall": true});
    let client = std::thread::spawn(move || run_relay_client(plan, Duration::from_secs(60)));
    let (killed_at, before) = kill_when_both_served(&mut a, &b, 50, Duration::from_secs(4));
    let run = client.join().expect("relay-client.js runner");
    let calls = run
        .calls
        .iter()
        .map(|c| {
            let ok = c["ok"] == true && c["echoed"] == true;
            let code = if ok {
                String::new()
            } else {
                c["err"]["codeName"]
                    .as_str()
                    .or(c["err"]["type"].as_str())
                    .unwrap_or("not echoed")
                    .to_string()
            };
            (
                c["start"].as_i64().unwrap(),
                c["end"].as_i64().unwrap(),
                ok,
                code,
            )
        })
        .collect();
    let f = Failover {
        calls,
        killed_at,
        before,
        after: (a.count(), b.count()),
    };
    f.check("relay_failover_node_client");
    drop(relay);
}

#[test]
#[ignore = "needs node; see interop/README.md"]
fn relay_failover_tchan_client() {
    let _serial = serial();
    runtime().block_on(relay_failover_tchan_client_async());
}

async fn relay_failover_tchan_client_async() {
    let relay = TchanRelay::start();
    let svc = "relay-failover-t";
    let mut a = HyperbahnServer::start(svc, relay.addr);
    let b = HyperbahnServer::start(svc, relay.addr);
    let client = tokio::time::timeout(
        Duration::from_secs(5),
        Channel::new("c").connect(relay.addr),
    )
    .await
    .expect("connect to the relay hung")
    .expect("connect to the relay");
    let stop_at = Instant::now() + Duration::from_secs(6);
    let workers: Vec<_> = (0..8u8)
        .map(|w| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                let mut i = 0usize;
                while Instant::now() < stop_at {
                    let a3 = pattern(64, w.wrapping_add(i as u8));
                    let start = epoch_ms();
                    let r = call(
                        &client,
                        CallRequest::new(svc, "echo")
                            .arg2(format!("w{w}-{i}"))
                            .arg3(a3.clone())
                            .timeout(Duration::from_secs(2)),
                    )
                    .await;
                    let end = epoch_ms();
                    let (ok, code) = match r {
                        Ok(r) if r.is_ok() && r.arg3 == a3 => (true, String::new()),
                        Ok(r) => (false, format!("not echoed (code {:?})", r.code)),
                        Err(e) => (false, format!("{:?}", e.code())),
                    };
                    out.push((start, end, ok, code));
                    i += 1;
                }
                out
            })
        })
        .collect();
    let (killed_at, before) = {
        let b = &b;
        let a = &mut a;
        tokio::task::block_in_place(|| kill_when_both_served(a, b, 50, Duration::from_secs(4)))
    };
    let mut calls = Vec::new();
    for w in workers {
        calls.extend(w.await.expect("caller task"));
    }
    let f = Failover {
        calls,
        killed_at,
        before,
        after: (a.count(), b.count()),
    };
    f.check("relay_failover_tchan_client");
    drop(relay);
}
