//! `tchan call --health`: `Meta::health` from the command line, against
//! `tchan serve`, `tchan relay` and a channel with its own health check
//! (`spec/08-arg-schemes.md` SCHEME-19).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use tchan::{Channel, HealthKind};

const BIN: &str = env!("CARGO_BIN_EXE_tchan");

struct Proc(Child, String);

impl Proc {
    fn start(args: &[&str]) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap()
            .to_owned();
        Proc(child, addr)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn health(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .arg("call")
            .args(args)
            .arg("--health")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_ok_for_serve_and_for_the_relay() {
    // [SCHEME-19]
    let serve = Proc::start(&["serve", "--service", "demo", "--threads", "1"]);
    let out = health(s(&[&serve.1, "demo"])).await;
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(0), &b"OK\n"[..]),
        "{out:?}"
    );
    let out = health(s(&["demo", "--peer", &serve.1])).await;
    assert_eq!(out.stdout, b"OK\n");
    // [SCHEME-18] The relay answers for itself, on tchannel and hyperbahn.
    let relay = Proc::start(&["relay"]);
    for svc in ["tchannel", "hyperbahn"] {
        let out = health(s(&[&relay.1, svc])).await;
        assert_eq!(
            (out.status.code(), out.stdout.as_slice()),
            (Some(0), &b"OK\n"[..]),
            "{svc}: {out:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ok_exits_124_with_the_peers_message_and_no_answer_exits_125() {
    let srv = Channel::new("sick");
    srv.register("sick", "echo", |_req: tchan::Request| async move {
        Ok(tchan::Response::ok(
            bytes::Bytes::new(),
            bytes::Bytes::new(),
        ))
    });
    srv.set_health_check(|kind| match kind {
        HealthKind::Process => Err("disk full".into()),
        _ => Ok(()),
    });
    let addr = srv.listen("127.0.0.1:0").await.unwrap().to_string();
    let out = health(s(&[&addr, "sick"])).await;
    assert_eq!(out.status.code(), Some(124));
    assert_eq!(out.stdout, b"NOT OK: disk full\n");
    // A service the peer does not have: an error frame, no answer.
    let out = health(s(&[&addr, "nobody"])).await;
    assert_eq!(out.status.code(), Some(125));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("NOT OK: ") && text.contains("nobody"),
        "{text}"
    );
    // Nothing listening.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let out = health(s(&[&dead, "sick"])).await;
    assert_eq!(out.status.code(), Some(125));
    assert!(out.stdout.starts_with(b"NOT OK: "));
    // METHOD is not given in this mode.
    let out = health(s(&[&addr, "sick", "echo"])).await;
    assert_eq!(out.status.code(), Some(125));
}
