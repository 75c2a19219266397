//! The `tchan relay` and `tchan serve --advertise` contracts, through the
//! binary: output lines, exit statuses, routes files, metrics
//! (`spec/12-relay.md` section 6).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_tchan");

/// A child killed on drop, with its first stdout lines read.
struct Proc {
    child: Child,
    lines: Vec<String>,
    stderr: Option<BufReader<ChildStderr>>,
}

impl Proc {
    fn start(cmd: &str, args: &[&str], stdout_lines: usize) -> Proc {
        let mut child = Command::new(BIN)
            .arg(cmd)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        for _ in 0..stdout_lines {
            let mut l = String::new();
            out.read_line(&mut l).unwrap();
            lines.push(l.trim_end().to_owned());
        }
        let stderr = child.stderr.take().map(BufReader::new);
        Proc {
            child,
            lines,
            stderr,
        }
    }

    fn addr(&self) -> String {
        self.lines[0]
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line was {:?}", self.lines[0]))
            .to_owned()
    }

    /// Reads stderr until a line contains `what`.
    fn wait_stderr(&mut self, what: &str) -> String {
        let err = self.stderr.as_mut().unwrap();
        loop {
            let mut l = String::new();
            if err.read_line(&mut l).unwrap() == 0 {
                panic!("stderr ended before {what:?}");
            }
            if l.contains(what) {
                return l;
            }
        }
    }

    fn signal(&mut self, sig: &str) -> std::process::ExitStatus {
        Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(args: &[&str]) -> std::process::Output {
    Command::new(BIN).arg("call").args(args).output().unwrap()
}

fn relay_exit(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN).arg("relay").args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// Calls until `pred` holds for the exit status, up to 10 s.
fn call_until(args: &[&str], pred: impl Fn(Option<i32>) -> bool) -> std::process::Output {
    for _ in 0..200 {
        let out = call(args);
        if pred(out.status.code()) {
            return out;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    call(args)
}

#[test]
fn relay_serves_advertised_services_metrics_and_drains() {
    // [RELAY-10] [RELAY-16]
    let mut relay = Proc::start("relay", &["--metrics-listen", "127.0.0.1:0"], 2);
    let addr = relay.addr();
    let metrics = relay.lines[1]
        .strip_prefix("metrics on ")
        .unwrap_or_else(|| panic!("second line was {:?}", relay.lines[1]))
        .to_owned();
    assert!(!addr.ends_with(":0") && !metrics.ends_with(":0"));
    let mut server = Proc::start(
        "serve",
        &["--service", "demo", "--threads", "1", "--advertise", &addr],
        1,
    );
    server.wait_stderr("advertised demo to");
    let out = call(&[&addr, "demo", "echo", "--arg3", "through the relay"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"through the relay");
    // An unknown service: declined, exit 4.
    let out = call(&[&addr, "nobody", "echo"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody"));
    let page = http_get(&metrics, "/metrics");
    assert!(
        page.contains(r#"tchan_relay_calls_total{caller="tchan",service="demo",endpoint="echo",outcome="ok"} 1"#),
        "{page}"
    );
    assert!(page.contains(r#"outcome="declined""#), "{page}");
    // The server drains: it withdraws its advertisement first.
    assert_eq!(server.signal("-TERM").code(), Some(0));
    let out = call(&[&addr, "demo", "echo"]);
    assert_eq!(out.status.code(), Some(4), "unad removed it at once");
    assert_eq!(relay.signal("-TERM").code(), Some(0));
}

#[test]
fn relay_usage_errors_exit_125() {
    let dir = std::env::temp_dir().join(format!("tchan-relay-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"svc\": [\"not an address\"]}").unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = busy.local_addr().unwrap().to_string();
    for (args, says) in [
        (vec!["--rate-limit", "svc"], "rate limit"),
        (vec!["--rate-limit", "svc=fast"], "rate limit"),
        (vec!["--kill", "svc"], "CALLER->SERVICE"),
        (vec!["--routes", "/nonexistent/routes.json"], "routes"),
        (vec!["--routes", bad.to_str().unwrap()], "not an address"),
        (vec!["--listen", &taken], "cannot listen"),
        (vec!["--advert-ttl", "0"], "advert-ttl"),
        (vec!["--nope"], ""),
    ] {
        let (code, err) = relay_exit(&args);
        assert_eq!(code, Some(125), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_routes_file_is_re_read_and_a_bad_one_keeps_the_last_good_routes() {
    // [RELAY-12]
    let server = Proc::start("serve", &["--service", "routed", "--threads", "1"], 1);
    let dir = std::env::temp_dir().join(format!("tchan-relay-routes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("routes.json");
    std::fs::write(&file, format!("{{\"routed\": [\"{}\"]}}", server.addr())).unwrap();
    let mut relay = Proc::start("relay", &["--routes", file.to_str().unwrap()], 1);
    let addr = relay.addr();
    let out = call(&[&addr, "routed", "echo", "--arg3", "x"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    std::fs::write(&file, "{ not json").unwrap();
    relay.wait_stderr("keeping the last good routes");
    let out = call(&[&addr, "routed", "echo", "--arg3", "x"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the last good routes still apply"
    );
    std::fs::write(&file, "{}").unwrap();
    let out = call_until(&[&addr, "routed", "echo"], |c| c == Some(4));
    assert_eq!(out.status.code(), Some(4), "the new routes apply");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_keeps_serving_while_its_relay_is_down_and_says_so() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut server = Proc::start(
        "serve",
        &[
            "--service",
            "lonely",
            "--threads",
            "1",
            "--advertise",
            &dead,
        ],
        1,
    );
    let line = server.wait_stderr("cannot advertise");
    assert!(line.contains("retrying"), "{line}");
    let out = call(&[&server.addr(), "lonely", "echo", "--arg3", "still here"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"still here");
    let (code, _) = {
        let out = Command::new(BIN)
            .args(["serve", "--advertise", "nonsense"])
            .output()
            .unwrap();
        (out.status.code(), ())
    };
    assert_eq!(code, Some(125));
}

#[test]
fn serve_metrics_listen_serves_the_channel_metrics() {
    let server = Proc::start(
        "serve",
        &[
            "--service",
            "counted",
            "--threads",
            "1",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        2,
    );
    let metrics = server.lines[1]
        .strip_prefix("metrics on ")
        .unwrap_or_else(|| panic!("second line was {:?}", server.lines[1]))
        .to_owned();
    for _ in 0..3 {
        let out = call(&[&server.addr(), "counted", "echo", "--arg3", "x"]);
        assert_eq!(out.status.code(), Some(0));
    }
    let page = http_get(&metrics, "/metrics");
    // One series per calling connection (the peer is a label): they add up.
    let total: u64 = page
        .lines()
        .filter(|l| l.starts_with("inbound_calls_recvd{") && l.contains("service=\"counted\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(total, 3, "{page}");
}
