//! The CLI's peer discovery and shard keys (`spec/11-peer-policy.md`
//! POOL-30, POOL-31, POOL-33, POOL-35, POOL-36): `tchan ring`,
//! and `--peer-dns`, `--peer-srv`, `--dns-server` and `--shard-keys` on
//! `call` and `bench`, against a real DNS server in the test process.

#![allow(clippy::disallowed_methods)]

#[path = "support/dns_server.rs"]
mod dns_server;

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::os::unix::ffi::OsStringExt;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tchan::peer::HashRing;
use tchan::{Channel, Request, Response};

use dns_server::DnsServer;

const BIN: &str = env!("CARGO_BIN_EXE_tchan");

fn run(args: &[OsString]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

async fn run_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(BIN).args(args).output().unwrap())
        .await
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn ring_prints_each_keys_owners_as_ringpop_does() {
    // [POOL-35] [POOL-30] the vectors computed with npm farmhash, through a
    // JSON host file.
    let v: serde_json::Value =
        serde_json::from_str(include_str!("data/ring_vectors.json")).unwrap();
    let dir = std::env::temp_dir().join(format!("tchan-ring-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hosts = dir.join("hosts.json");
    std::fs::write(&hosts, v["peers"].to_string()).unwrap();
    let cases = v["cases"].as_array().unwrap();
    let mut args = os(&[
        "ring",
        "--peer-file",
        hosts.to_str().unwrap(),
        "--n",
        "3",
        "--",
    ]);
    let mut want = String::new();
    for c in cases {
        let key = c["key"].as_str().unwrap();
        args.push(key.into());
        want.push_str(key);
        for o in c["owners"].as_array().unwrap().iter().take(3) {
            want.push('\t');
            want.push_str(o.as_str().unwrap());
        }
        want.push('\n');
    }
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), want);

    // One owner a line by default, with --peer flags; keys are bytes, and
    // after `--` may start with `-`.
    let peers = ["10.0.0.1:3001", "10.0.0.2:3002", "10.0.0.3:3003"];
    let ring = HashRing::new(peers);
    let raw = vec![b'k', 0xff, b'!'];
    let mut args = os(&["ring"]);
    for p in peers {
        args.extend(os(&["--peer", p]));
    }
    args.extend(os(&["--", "-x", "user:42"]));
    args.push(OsString::from_vec(raw.clone()));
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut want = Vec::new();
    for k in [&b"-x"[..], b"user:42", &raw] {
        want.extend_from_slice(k);
        want.push(b'\t');
        want.extend_from_slice(ring.lookup(k).unwrap().as_bytes());
        want.push(b'\n');
    }
    assert_eq!(out.stdout, want);
    // A peer is trimmed, as the pool trims it.
    let out = run(&os(&[
        "ring",
        "--peer",
        " 10.0.0.1:3001 ",
        "--peer",
        "10.0.0.2:3002",
        "k",
    ]));
    let two = HashRing::new(["10.0.0.1:3001", "10.0.0.2:3002"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("k\t{}\n", two.lookup(b"k").unwrap())
    );
    // --n beyond the peers: fewer columns.
    let out = run(&os(&[
        "ring", "--peer", "a:1", "--peer", "b:2", "--n", "5", "k",
    ]));
    let line = String::from_utf8(out.stdout).unwrap();
    assert_eq!(line.trim_end().split('\t').count(), 3, "{line:?}");

    // Usage errors.
    for bad in [
        &["ring", "k"][..],
        &["ring", "--peer", "a:1"],
        &["ring", "--peer", "a:1", "--n", "0", "k"],
        &["ring", "--peer", "a:1", "--n", "-1", "k"],
        &["ring", "--peer-file", "/nonexistent/hosts.json", "k"],
        &["ring", "--peer", "", "k"],
        &["ring", "--peer", "no-port", "k"],
    ] {
        let out = run(&os(bad));
        assert_eq!(out.status.code(), Some(125), "{bad:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A server whose `who` answers its address and records the shard keys it
/// was sent.
struct Who {
    _ch: Channel,
    addr: String,
    port: u16,
    keys: Arc<Mutex<HashMap<String, usize>>>,
}

async fn who() -> Who {
    let ch = Channel::new("svc");
    let addr = ch.listen("127.0.0.1:0").await.unwrap();
    let me = addr.to_string();
    let keys = Arc::new(Mutex::new(HashMap::new()));
    let k = keys.clone();
    let m = me.clone();
    ch.register("svc", "who", move |req: Request| {
        let (me, keys) = (m.clone(), k.clone());
        async move {
            if let Some(sk) = req.header("sk") {
                *keys.lock().unwrap().entry(sk.to_owned()).or_default() += 1;
            }
            Ok(Response::ok(Bytes::new(), Bytes::from(me)))
        }
    });
    Who {
        _ch: ch,
        addr: me,
        port: addr.port(),
        keys,
    }
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Runs `tchan ARGS...`, expects exit 0, and returns its stdout.
async fn ok(v: &[&str]) -> String {
    let out = run_async(args(v)).await;
    assert_eq!(out.status.code(), Some(0), "{v:?}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_finds_its_peers_in_dns() {
    // [POOL-36] [POOL-33]
    let dns = DnsServer::start().await;
    let ns = dns.addr().to_string();
    let (a, b) = (who().await, who().await);
    dns.set_a("local.test", &[Ipv4Addr::LOCALHOST], 30);
    // A/AAAA with a fixed port.
    let host = format!("local.test:{}", a.port);
    let got = ok(&[
        "call",
        "--peer-dns",
        &host,
        "--dns-server",
        &ns,
        "svc",
        "who",
    ])
    .await;
    assert_eq!(got, a.addr);
    // SRV: the lowest priority wins.
    dns.set_srv(
        "_svc._tcp.fleet.test",
        &[(1, 1, a.port, "local.test"), (0, 1, b.port, "local.test")],
        30,
    );
    let srv = "_svc._tcp.fleet.test";
    for _ in 0..3 {
        let got = ok(&["call", "--peer-srv", srv, "--dns-server", &ns, "svc", "who"]).await;
        assert_eq!(got, b.addr);
    }
    // --health takes the same peers.
    let got = ok(&[
        "call",
        "--peer-srv",
        srv,
        "--dns-server",
        &ns,
        "svc",
        "--health",
    ])
    .await;
    assert_eq!(got, "OK\n");
    // The union with --peer: DNS giving nothing is fine when --peer gives
    // a peer.
    let got = ok(&[
        "call",
        "--peer-srv",
        "_svc._tcp.none.test",
        "--peer",
        &a.addr,
        "--dns-server",
        &ns,
        "svc",
        "who",
    ])
    .await;
    assert_eq!(got, a.addr);
    // With --peer-file too: the ring is the union (a key DNS's peer owns
    // goes there, though the file lists another).
    let file = std::env::temp_dir().join(format!("tchan-dns-union-{}.json", std::process::id()));
    std::fs::write(&file, format!("[\"{}\"]", a.addr)).unwrap();
    let ring = HashRing::new([a.addr.clone(), b.addr.clone()]);
    let key = (0..100)
        .map(|i| format!("k{i}"))
        .find(|k| ring.lookup(k.as_bytes()) == Some(b.addr.as_str()))
        .unwrap();
    let host_b = format!("local.test:{}", b.port);
    let got = ok(&[
        "call",
        "--peer-file",
        file.to_str().unwrap(),
        "--peer-dns",
        &host_b,
        "--dns-server",
        &ns,
        "--shard-key",
        &key,
        "svc",
        "who",
    ])
    .await;
    let _ = std::fs::remove_file(&file);
    assert_eq!(got, b.addr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_without_a_peer_from_dns_exits_7_naming_the_lookup() {
    // [POOL-36]
    let dns = DnsServer::start().await;
    let ns = dns.addr().to_string();
    let out = run_async(args(&[
        "call",
        "--peer-dns",
        "nope.test:4040",
        "--peer-srv",
        "_svc._tcp.nope.test",
        "--dns-server",
        &ns,
        "svc",
        "who",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let err = stderr(&out);
    for part in [
        "DNS lookup of A/AAAA nope.test (port 4040)",
        "DNS lookup of SRV _svc._tcp.nope.test",
        "no records",
        ns.as_str(),
    ] {
        assert!(err.contains(part), "{part:?} not in {err:?}");
    }
    // A server that never answers: the lookup ends with the call's timeout.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let out = run_async(args(&[
        "call",
        "--peer-dns",
        "local.test:4040",
        "--dns-server",
        &silent_addr,
        "--timeout",
        "300",
        "svc",
        "who",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no answer within 300ms"),
        "{}",
        stderr(&out)
    );
    drop(silent);
}

#[test]
fn dns_flags_are_checked_before_anything_is_sent() {
    // [POOL-36]
    for bad in [
        // The positional PEER with a flagged peer.
        &[
            "call",
            "127.0.0.1:1",
            "svc",
            "who",
            "--peer-dns",
            "x.test:1",
        ][..],
        &[
            "bench",
            "127.0.0.1:1",
            "svc",
            "who",
            "--peer-srv",
            "_a._tcp.x.test",
        ],
        // Malformed.
        &["call", "--peer-dns", "x.test", "svc", "who"],
        &["call", "--peer-srv", "x.test", "svc", "who"],
        &[
            "call",
            "--peer-dns",
            "x.test:1",
            "--dns-server",
            "nowhere",
            "svc",
            "who",
        ],
        // --dns-server alone.
        &[
            "call",
            "--peer",
            "127.0.0.1:1",
            "--dns-server",
            "127.0.0.1:53",
            "svc",
            "who",
        ],
    ] {
        let out = run(&os(bad));
        assert_eq!(out.status.code(), Some(125), "{bad:?}: {}", stderr(&out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_takes_its_peers_from_srv_and_sends_each_shard_key_to_its_owner() {
    // [POOL-36] [POOL-31]
    let dns = DnsServer::start().await;
    let ns = dns.addr().to_string();
    let servers = [who().await, who().await, who().await];
    dns.set_a("local.test", &[Ipv4Addr::LOCALHOST], 30);
    let records: Vec<(u16, u16, u16, &str)> = servers
        .iter()
        .map(|s| (0, 1, s.port, "local.test"))
        .collect();
    dns.set_srv("_svc._tcp.bench.test", &records, 30);
    let out = run_async(args(&[
        "bench",
        "--peer-srv",
        "_svc._tcp.bench.test",
        "--dns-server",
        &ns,
        "--shard-keys",
        "50",
        "--duration",
        "0.5",
        "--warmup",
        "0",
        "--concurrency",
        "4",
        "--threads",
        "1",
        "--json",
        "svc",
        "who",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["calls"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["errors"].as_u64(), Some(0), "{report}");
    // Every key went to its owner only, and every server owned some.
    let ring = HashRing::new(servers.iter().map(|s| s.addr.clone()));
    let mut seen = 0;
    for s in &servers {
        let keys = s.keys.lock().unwrap();
        assert!(!keys.is_empty(), "{} got no key", s.addr);
        for k in keys.keys() {
            assert!(
                k.starts_with("key-") && k[4..].parse::<u32>().unwrap() < 50,
                "{k}"
            );
            assert_eq!(ring.lookup(k.as_bytes()), Some(s.addr.as_str()), "{k}");
        }
        seen += keys.len();
    }
    assert!(seen > 40, "only {seen} of the 50 keys were drawn");
}
