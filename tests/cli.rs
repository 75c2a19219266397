//! The `tchan serve`, `tchan call` and `tchan bench` contracts, through the
//! binary itself: output lines, JSON keys and exit statuses.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tchan");

/// A `tchan serve` child, killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .unwrap();
        let addr = first
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line was {first:?}"))
            .to_string();
        assert!(!addr.ends_with(":0"), "the real port: {addr}");
        Server { child, addr }
    }

    fn signal(&mut self, sig: &str) -> std::process::ExitStatus {
        Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(args: &[&str]) -> std::process::Output {
    Command::new(BIN).arg("call").args(args).output().unwrap()
}

#[test]
fn serve_prints_its_address_and_drains_on_sigterm_and_sigint() {
    for sig in ["-TERM", "-INT"] {
        let mut s = Server::start(&["--service", "demo", "--threads", "2"]);
        let out = call(&[&s.addr, "demo", "echo", "--arg3", "x"]);
        assert_eq!(out.status.code(), Some(0));
        let status = s.signal(sig);
        assert_eq!(status.code(), Some(0), "{sig}");
    }
}

#[test]
fn call_prints_arg3_exactly_and_maps_errors_to_exit_statuses() {
    let s = Server::start(&[]);
    let a = s.addr.as_str();
    // arg3 exactly as received, no newline added.
    let out = call(&[a, "tchan", "echo", "--arg2", "head", "--arg3", "body"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"body");
    // -v: arg2 and headers on stderr.
    let out = call(&[a, "tchan", "echo", "--arg2", "head", "--arg3", "body", "-v"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("head") && err.contains("as"), "{err}");
    // An application error still prints arg3; exit 126.
    let out = call(&[a, "tchan", "fail", "--arg3", "oops"]);
    assert_eq!(out.status.code(), Some(126));
    assert_eq!(out.stdout, b"oops");
    // sleep past the timeout: 1; non-numeric: bad request 6; unknown service 6.
    assert_eq!(
        call(&[a, "tchan", "sleep", "--arg3", "2000", "--timeout", "100"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        call(&[a, "tchan", "sleep", "--arg3", "soon"]).status.code(),
        Some(6)
    );
    assert_eq!(call(&[a, "nosuch", "echo"]).status.code(), Some(6));
    assert_eq!(call(&[a, "tchan", "nosuch"]).status.code(), Some(6));
    // sleep shorter than the timeout succeeds and echoes.
    let out = call(&[a, "tchan", "sleep", "--arg3", "20"]);
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(0), &b"20"[..])
    );
    // Usage errors: 125 (not clap's 2).
    assert_eq!(call(&[a, "tchan"]).status.code(), Some(125));
    assert_eq!(
        call(&[a, "tchan", "echo", "--header", "novalue"])
            .status
            .code(),
        Some(125)
    );
    assert_eq!(
        call(&[a, "tchan", "echo", "--checksum", "md5"])
            .status
            .code(),
        Some(125)
    );
    // A refused connection: network, 7.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    assert_eq!(call(&[&dead_addr, "tchan", "echo"]).status.code(), Some(7));
    // --help lists the exit statuses.
    let help = String::from_utf8(call(&["--help"]).stdout).unwrap();
    assert!(
        help.contains("126") && help.contains("127") && help.contains("125"),
        "{help}"
    );
}

#[test]
fn call_reads_files_and_stdin_writes_output_files_and_pretty_prints_json() {
    let s = Server::start(&[]);
    let a = s.addr.as_str();
    let dir = std::env::temp_dir().join(format!("tchan-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.bin");
    std::fs::write(&input, [0u8, 1, 2, 255]).unwrap();
    let output = dir.join("out.bin");
    let out = call(&[
        a,
        "tchan",
        "echo",
        "--arg3-file",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read(&output).unwrap(), [0u8, 1, 2, 255]);
    // arg3 from stdin.
    let mut child = Command::new(BIN)
        .args(["call", a, "tchan", "echo", "--arg3-file", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"from stdin");
    // --json: as=json, arg3 pretty-printed.
    let out = call(&[a, "tchan", "echo", "--json", "--arg3", r#"{"a":[1,2]}"#]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\n  \"a\": [\n    1,\n    2\n  ]\n}\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_json_is_one_line_with_exactly_the_contracted_keys() {
    let s = Server::start(&["--threads", "1"]);
    let out = Command::new(BIN)
        .args([
            "bench",
            &s.addr,
            "tchan",
            "echo",
            "--concurrency",
            "4",
            "--duration",
            "0.5",
            "--warmup",
            "0.2",
            "--threads",
            "1",
            "--json",
        ])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        out.stderr.is_empty(),
        "no progress line when stderr is not a terminal"
    );
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "calls",
            "errors",
            "errors_by_code",
            "retries",
            "calls_per_sec",
            "p50_us",
            "p90_us",
            "p99_us",
            "p999_us",
            "cpu_us_per_call"
        ]
    );
    let codes: Vec<&str> = v["errors_by_code"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        codes,
        [
            "timeout",
            "cancelled",
            "busy",
            "declined",
            "unexpected",
            "bad_request",
            "network",
            "unhealthy",
            "protocol",
            "application"
        ]
    );
    assert!(v["calls"].as_u64().unwrap() > 0);
    assert_eq!(v["errors"], 0);
    for k in ["p50_us", "p90_us", "p99_us", "p999_us"] {
        assert!(v[k].is_u64(), "{k} is an integer");
    }
    assert!(v["p50_us"].as_u64() <= v["p99_us"].as_u64());
    // Application errors count as errors, by code.
    let out = Command::new(BIN)
        .args([
            "bench",
            &s.addr,
            "tchan",
            "fail",
            "--duration",
            "0.3",
            "--warmup",
            "0",
            "--json",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["calls"], 0);
    assert!(v["errors"].as_u64().unwrap() > 0);
    assert_eq!(v["errors_by_code"]["application"], v["errors"]);
}

#[test]
fn bench_prints_a_human_summary() {
    let s = Server::start(&["--threads", "1"]);
    let out = Command::new(BIN)
        .args([
            "bench",
            &s.addr,
            "tchan",
            "echo",
            "--duration",
            "0.3",
            "--warmup",
            "0.1",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for part in [
        "calls", "errors", "calls/s", "p50", "p90", "p99", "p99.9", "cpu",
    ] {
        assert!(text.contains(part), "{part} missing from:\n{text}");
    }
}

fn dead_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap().to_string();
    drop(l);
    a
}

#[test]
fn call_and_bench_take_several_peers_through_the_pool() {
    // [POOL-1] the CLI goes through the peer pool
    let s1 = Server::start(&["--threads", "1"]);
    let s2 = Server::start(&["--threads", "1"]);
    let out = call(&[
        "--peer", &s1.addr, "--peer", &s2.addr, "tchan", "echo", "--arg3", "hi",
    ]);
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(0), &b"hi"[..])
    );
    // A peer file, with a dead peer in it: retries reach a live one.
    let dir = std::env::temp_dir().join(format!("tchan-peers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("peers.txt");
    std::fs::write(&file, format!("# fleet\n{}\n{}\n", dead_addr(), s1.addr)).unwrap();
    for _ in 0..5 {
        let out = call(&[
            "--peer-file",
            file.to_str().unwrap(),
            "tchan",
            "echo",
            "--retries",
            "3",
            "--arg3",
            "ok",
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // bench over both servers counts its retries in the JSON.
    let out = Command::new(BIN)
        .args([
            "bench",
            "--peer",
            &s1.addr,
            "--peer",
            &s2.addr,
            "tchan",
            "echo",
            "--duration",
            "0.3",
            "--warmup",
            "0",
            "--concurrency",
            "4",
            "--json",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["calls"].as_u64().unwrap() > 0);
    assert_eq!(v["retries"], 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn peer_given_both_ways_or_not_at_all_is_a_usage_error() {
    let s = Server::start(&["--threads", "1"]);
    let both = call(&[&s.addr, "tchan", "echo", "--peer", &s.addr]);
    assert_eq!(both.status.code(), Some(125));
    let none = call(&["tchan", "echo"]);
    assert_eq!(none.status.code(), Some(125));
    let bench_both = Command::new(BIN)
        .args(["bench", &s.addr, "tchan", "echo", "--peer", &s.addr])
        .output()
        .unwrap();
    assert_eq!(bench_both.status.code(), Some(125));
}

#[test]
fn a_failed_handshake_is_a_network_error() {
    // A listener that accepts and closes at once.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let t = std::thread::spawn(move || {
        for s in l.incoming().take(1) {
            drop(s);
        }
    });
    let out = call(&[&addr, "tchan", "echo", "--timeout", "2000"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.join().unwrap();
}
