//! Thrift through IDLs loaded at run time, live against node tchannel
//! 4.0.1 and its bundled thriftrw (3.12.0): `tchan::idl` (JSON <->
//! TBinaryProtocol), `scheme::thrift`, the `Meta` service and the CLI's
//! `--thrift` / `--health`, all with `tests/data/thrift/everything.thrift`.
//!
//! - `node interop/node/thrift-idl-server.js` serves `Kitchen` from that IDL
//!   (thriftrw loads it and its include), plus node's own `Meta::health`;
//!   it prints every request's args as it read them, as tchan's JSON.
//! - `node interop/node/thrift-idl-client.js` calls a tchan server through
//!   thriftrw and checks the echo itself; `... golden` encodes the samples
//!   of the fixture below with thriftrw.
//! - `interop/fixtures/thrift/thrift_types.json`: for each Thrift type,
//!   sample values (tchan's JSON) and the bytes node wrote for them.
//!
//! What thriftrw 3.12.0 gets wrong, and the tests allow for (and check):
//! - `byte`/`i8` is read unsigned: node reads the byte `fe` (-2) as 254,
//!   and then refuses to write 254 back (range -128..127), so echoing a
//!   negative byte ends in node's `UnexpectedError` "Could not serialize
//!   thrift".
//! - It fills in a field's IDL default when it reads a struct without it:
//!   node echoes `Everything` without `where` back with `where = {x: 1,
//!   y: 2}` (tchan ignores IDL defaults: it sends and returns what it has).
//! - A map with `i32` keys is a JS object in thriftrw, so node writes it
//!   back with its keys in JS object order (non-negative keys ascending,
//!   then the others in insertion order); comparisons sort such maps.
//! - thriftrw's strict mode (its default) refuses the IDL: a field neither
//!   required, optional nor defaulted (`shared.NotFound.what`). The node
//!   scripts load it with `strict: false`.

// `#[cfg]` rather than a Cargo.toml change: this target only requires `json`.
#![cfg(feature = "thrift")]

use std::path::Path;

use tchan::idl::{Field, Idl, Type, decode_fields, encode_fields};

use super::*;

/// The golden vectors (see the module doc). Not directly in
/// `interop/fixtures/`: tests/fixtures.rs and tests/relay_frame.rs read every
/// `*.json` there as a frame capture (`stream_hex`).
const FIXTURE: &str = "interop/fixtures/thrift/thrift_types.json";
const IDL: &str = "tests/data/thrift/everything.thrift";
const SERVICE: &str = "kitchen";
/// Served by the node server with a health check that fails.
const SICK: &str = "kitchen-sick";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn everything() -> Arc<Idl> {
    Arc::new(Idl::load(&repo().join(IDL)).unwrap_or_else(|e| panic!("{IDL}: {e}")))
}

fn meta_idl() -> Idl {
    Idl::parse_str("meta.thrift", tchan::META_IDL).expect("tchan::META_IDL parses")
}

/// The fields of a struct by the fixture's names: `Everything`,
/// `shared.Point`, `Kitchen::echo_args`, `Kitchen::echo_result`.
fn fields_of(idl: &Idl, name: &str) -> Vec<Field> {
    if name.contains("::") {
        if let Some(m) = name.strip_suffix("_args") {
            return idl
                .method(m)
                .unwrap_or_else(|| panic!("no {m}"))
                .1
                .args
                .clone();
        }
        if let Some(m) = name.strip_suffix("_result") {
            return idl
                .method(m)
                .unwrap_or_else(|| panic!("no {m}"))
                .1
                .result_fields();
        }
    }
    idl.structs
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no struct {name}"))
        .fields
        .clone()
}

/// `v` with every map whose keys are not strings (`[[k, v], ...]`) sorted by
/// key, through the struct with `fields`: node may write such maps back in
/// another order (see the module doc).
fn norm(idl: &Idl, fields: &[Field], v: &Value) -> Value {
    let Value::Object(o) = v else {
        return v.clone();
    };
    let out = o
        .iter()
        .map(|(k, x)| {
            let x = match fields.iter().find(|f| f.name == *k) {
                Some(f) => norm_ty(idl, &f.ty, x),
                None => x.clone(),
            };
            (k.clone(), x)
        })
        .collect();
    Value::Object(out)
}

fn norm_ty(idl: &Idl, ty: &Type, v: &Value) -> Value {
    match (ty, v) {
        (Type::Struct(i), _) => norm(idl, &idl.structs[*i].fields, v),
        (Type::List(t) | Type::Set(t), Value::Array(a)) => {
            Value::Array(a.iter().map(|x| norm_ty(idl, t, x)).collect())
        }
        (Type::Map(_, vt), Value::Object(o)) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), norm_ty(idl, vt, x)))
                .collect(),
        ),
        (Type::Map(kt, vt), Value::Array(a)) => {
            let mut pairs: Vec<Value> = a
                .iter()
                .map(|p| match p.as_array().map(Vec::as_slice) {
                    Some([k, x]) => json!([norm_ty(idl, kt, k), norm_ty(idl, vt, x)]),
                    _ => p.clone(),
                })
                .collect();
            pairs.sort_by_key(|p| p[0].to_string());
            Value::Array(pairs)
        }
        _ => v.clone(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// `Everything` with every field set, every level with an explicit `where`
/// (node fills in its default otherwise), the byte non-negative (node reads
/// bytes unsigned) and the i32-keyed map out of node's order.
fn sample() -> Value {
    json!({
        "flag": true,
        "small": 7,
        "medium": -300,
        "number": -70000,
        "big": 9_007_199_254_740_993_i64,
        "ratio": 0.25,
        "name": "kitchen sink \u{2713} \u{1f680} \"q\" \\",
        "blob": "AAH/gA==",
        "tags": ["a", "", "\u{e9}t\u{e9}"],
        "ids": [3, 1, -7, 2_147_483_647],
        "counts": {"a": 1, "big": -9_007_199_254_740_993_i64, "max": i64::MAX, "min": i64::MIN},
        "names": [[7, "seven"], [1, "one"], [-3, "minus three"]],
        "color": "BLUE",
        "where": {"x": -5, "y": 0},
        "shape": {"path": [{"x": 0, "y": 0}, {"x": -1, "y": 1}]},
        "at": i64::MIN,
        "grid": [[1, 2], [], [3]],
        "next": {
            "flag": false,
            "where": {"x": 1, "y": 2},
            "shape": {"radius": 1.5},
            "next": {"flag": true, "color": "RED", "where": {"x": 3, "y": 4},
                     "shape": {"point": {"x": 5, "y": 6}}, "at": 1_700_000_000_123_i64}
        }
    })
}

/// The `Everything` to check default filling with: no `where` anywhere.
fn no_defaults() -> Value {
    json!({"flag": true, "name": "no where", "next": {"flag": false, "number": 1}})
}

/// `no_defaults()` as node echoes it: `where` filled in at both levels.
fn defaults_filled() -> Value {
    json!({"flag": true, "name": "no where", "where": {"x": 1, "y": 2},
           "next": {"flag": false, "number": 1, "where": {"x": 1, "y": 2}}})
}

fn everything_fields(idl: &Idl) -> Vec<Field> {
    fields_of(idl, "Everything")
}

// ===== the node side =====

/// `node interop/node/thrift-idl-server.js`, killed on drop.
struct IdlNode {
    child: Child,
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl IdlNode {
    fn start() -> IdlNode {
        require_node();
        let mut child = Command::new("node")
            .arg("thrift-idl-server.js")
            .current_dir(node_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn node thrift-idl-server.js");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        collect_lines(child.stdout.take().unwrap(), lines.clone());
        collect_lines(child.stderr.take().unwrap(), stderr.clone());
        let start = Instant::now();
        let addr = loop {
            let first = lines.lock().unwrap().first().cloned();
            if let Some(l) = first {
                match l.strip_prefix("listening on ") {
                    Some(a) => break a.parse::<SocketAddr>().expect("server address"),
                    None => {
                        let _ = child.kill();
                        panic!("thrift-idl-server.js printed {l:?} first");
                    }
                }
            }
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if exited || start.elapsed() > Duration::from_secs(15) {
                std::thread::sleep(Duration::from_millis(50));
                let _ = child.kill();
                panic!(
                    "node thrift-idl-server.js did not start (exited: {exited}); stderr: {}",
                    stderr.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // Kept in `child`: the server exits when its stdin closes.
        IdlNode {
            child,
            addr,
            lines,
            stderr,
        }
    }

    /// The `{"req": ...}` lines for `method`, waiting (up to 2 s) until
    /// there are at least `n`.
    async fn requests_for(&self, method: &str, n: usize) -> Vec<Value> {
        let get = || -> Vec<Value> {
            self.lines
                .lock()
                .unwrap()
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter_map(|v| v.get("req").cloned())
                .filter(|r| r["method"] == method)
                .collect()
        };
        let start = Instant::now();
        while get().len() < n && start.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        get()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for IdlNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a finished node script printed.
struct ScriptRun {
    stdout: String,
    stderr: String,
}

impl ScriptRun {
    /// The client's per-call lines by id, and its summary.
    fn results(&self) -> (HashMap<String, Value>, Value) {
        let mut out = HashMap::new();
        let mut summary = Value::Null;
        for l in self.stdout.lines() {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("thrift-idl-client.js printed non-JSON {l:?}: {e}"));
            if let Some(s) = v.get("summary") {
                summary = s.clone();
            } else if let Some(id) = v["id"].as_str() {
                out.insert(id.to_string(), v.clone());
            }
        }
        assert!(
            !summary.is_null(),
            "thrift-idl-client.js printed no summary\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        (out, summary)
    }
}

/// Runs `node thrift-idl-client.js ARGS` with `input` on stdin; it must exit
/// 0 within `limit`.
async fn run_idl_client(args: &[&str], input: String, limit: Duration) -> ScriptRun {
    require_node();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new("node")
            .arg("thrift-idl-client.js")
            .args(&args)
            .current_dir(node_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn node thrift-idl-client.js");
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        collect_lines(child.stdout.take().unwrap(), out.clone());
        collect_lines(child.stderr.take().unwrap(), err.clone());
        {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input.as_bytes()).expect("write stdin");
        }
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait thrift-idl-client.js") {
                std::thread::sleep(Duration::from_millis(50));
                break status;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "thrift-idl-client.js still running after {limit:?}\nstdout: {:#?}\nstderr: {}",
                    out.lock().unwrap(),
                    err.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let run = ScriptRun {
            stdout: out.lock().unwrap().join("\n"),
            stderr: err.lock().unwrap().join("\n"),
        };
        assert!(
            status.success(),
            "thrift-idl-client.js {args:?} failed: {status}\nstdout: {}\nstderr: {}",
            run.stdout,
            run.stderr
        );
        run
    })
    .await
    .expect("thrift-idl-client.js runner")
}

// ===== tchan as the client =====

/// A thrift call's answer, decoded with the IDL.
#[derive(Debug)]
enum Answer {
    /// Result struct (as JSON: `{"success": ...}`, `{}` for void).
    Ok(Vec<(String, String)>, Value, Vec<u8>),
    /// A declared exception: `{"<name>": {...}}`.
    Exc(Vec<(String, String)>, Value, Vec<u8>),
}

/// Calls `method` of `idl` on `service`: args encoded with
/// `tchan::idl::encode_fields`, the result decoded with `decode_fields`.
async fn idl_call(
    client: &Client,
    idl: &Idl,
    service: &str,
    method: &str,
    headers: &[(&str, &str)],
    args: &Value,
) -> Result<Answer, tchan::Error> {
    let (_, f) = idl
        .method(method)
        .unwrap_or_else(|| panic!("{IDL} has no {method}"));
    let body = encode_fields(idl, &format!("{method} args"), &f.args, args)
        .unwrap_or_else(|e| panic!("tchan cannot encode the args of {method}: {e}"));
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut opts = tchan::CallOptions::default();
    opts.set_timeout(Duration::from_secs(3));
    let reply = tokio::time::timeout(
        Duration::from_secs(8),
        sthrift::call(client, service, method, &headers, body.into(), opts),
    )
    .await
    .expect("thrift call hung")?;
    let decode = |b: &[u8]| {
        decode_fields(idl, &format!("{method} result"), &f.result_fields(), b).unwrap_or_else(|e| {
            panic!("tchan cannot decode node's {method} result {}: {e}", hex(b))
        })
    };
    Ok(match reply {
        sthrift::Reply::Ok(h, b) => Answer::Ok(h, decode(&b), b.to_vec()),
        sthrift::Reply::Exception(h, b) => Answer::Exc(h, decode(&b), b.to_vec()),
        other => panic!("unexpected reply kind {other:?}"),
    })
}

fn pairs(h: &[(&str, &str)]) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// Scenario 1: tchan -> node's thriftrw server.
// [SCHEME-11] [SCHEME-12] [SCHEME-15]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
async fn t2n_kitchen() {
    let test = "thrift_idl_t2n_kitchen";
    let node = IdlNode::start();
    let idl = everything();
    let ef = everything_fields(&idl);
    let client = connect(node.addr).await;
    let headers = [("tenant", "blue"), ("x-trace", "1")];

    // echo: every type, node echoes its `e`.
    let sent = sample();
    match idl_call(
        &client,
        &idl,
        SERVICE,
        "Kitchen::echo",
        &headers,
        &json!({"e": sent}),
    )
    .await
    .unwrap_or_else(|e| panic!("echo: {e}; node stderr: {}", node.stderr()))
    {
        Answer::Ok(h, v, _) => {
            assert_eq!(h, pairs(&headers), "node echoes the arg2 headers");
            let got = &v["success"];
            assert_eq!(
                norm(&idl, &ef, got),
                norm(&idl, &ef, &sent),
                "node's echo of every type"
            );
            observe(
                test,
                format!(
                    "map<i32,string> sent {} came back {}",
                    sent["names"], got["names"]
                ),
            );
        }
        other => panic!("echo: {other:?}"),
    }
    // What node's thriftrw read from tchan's bytes.
    let reqs = node.requests_for("Kitchen::echo", 1).await;
    let seen = reqs.first().expect("node logged the echo");
    assert_eq!(seen["service"], SERVICE);
    assert_eq!(seen["head"], json!({"tenant": "blue", "x-trace": "1"}));
    assert_eq!(seen["headers"]["as"], "thrift");
    assert_eq!(
        norm(&idl, &ef, &seen["args"]["e"]),
        norm(&idl, &ef, &sent),
        "node read tchan's bytes as sent"
    );

    // An optional field with a default: thriftrw fills it in on read.
    match idl_call(
        &client,
        &idl,
        SERVICE,
        "Kitchen::echo",
        &[],
        &json!({"e": no_defaults()}),
    )
    .await
    .unwrap()
    {
        Answer::Ok(h, v, _) => {
            assert_eq!(h, vec![], "no headers: node answers an empty map");
            assert_eq!(v["success"], defaults_filled(), "node filled in `where`");
        }
        other => panic!("echo without where: {other:?}"),
    }

    // A negative byte: node reads `fe` as 254, then cannot write it back.
    let neg = json!({"flag": true, "small": -2});
    let r = idl_call(
        &client,
        &idl,
        SERVICE,
        "Kitchen::echo",
        &[],
        &json!({"e": neg}),
    )
    .await;
    let reqs = node.requests_for("Kitchen::echo", 3).await;
    assert_eq!(
        reqs[2]["args"]["e"]["small"], 254,
        "thriftrw reads i8 unsigned"
    );
    match r {
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::UNEXPECTED, "{e}");
            observe(test, format!("echo of byte -2: node answered {e}"));
        }
        Ok(a) => panic!("node echoed a negative byte (thriftrw fixed?): {a:?}"),
    }

    // Declared exceptions, both of them.
    let invalid = json!({"e": {"flag": true, "name": "invalid", "number": 42}});
    match idl_call(&client, &idl, SERVICE, "Kitchen::echo", &[], &invalid)
        .await
        .unwrap()
    {
        Answer::Exc(h, v, _) => {
            assert_eq!(h, pairs(&[("x-thrown", "invalid")]));
            assert_eq!(
                v,
                json!({"invalid": {"message": "node refuses invalid", "code": 42}})
            );
        }
        other => panic!("expected Invalid: {other:?}"),
    }
    let missing = json!({"e": {"flag": true, "name": "missing"}});
    match idl_call(&client, &idl, SERVICE, "Kitchen::echo", &[], &missing)
        .await
        .unwrap()
    {
        Answer::Exc(h, v, b) => {
            assert_eq!(h, pairs(&[("x-thrown", "missing")]));
            assert_eq!(v, json!({"missing": {"what": "node has no missing"}}));
            observe(
                test,
                format!("shared.NotFound result from node: {}", hex(&b)),
            );
        }
        other => panic!("expected shared.NotFound: {other:?}"),
    }

    // void.
    match idl_call(
        &client,
        &idl,
        SERVICE,
        "Kitchen::nothing",
        &headers,
        &json!({}),
    )
    .await
    .unwrap()
    {
        Answer::Ok(h, v, b) => {
            assert_eq!(h, pairs(&headers));
            assert_eq!(v, json!({}));
            assert_eq!(b, [0], "a void result is the empty struct");
        }
        other => panic!("nothing: {other:?}"),
    }

    // Inherited from shared.Base.
    match idl_call(&client, &idl, SERVICE, "Kitchen::ping", &[], &json!({}))
        .await
        .unwrap()
    {
        Answer::Ok(_, v, _) => assert_eq!(v, json!({"success": "pong from node"})),
        other => panic!("ping: {other:?}"),
    }

    // i64 arithmetic on node's side: the values, not just the bytes.
    let two53p1 = 9_007_199_254_740_993_i64;
    for (a, b, sum) in [
        (two53p1, two53p1, 18_014_398_509_481_986_i64),
        (i64::MIN, -1, i64::MAX),
        (-two53p1, 2, -9_007_199_254_740_991),
    ] {
        match idl_call(
            &client,
            &idl,
            SERVICE,
            "Kitchen::add",
            &[],
            &json!({"a": a, "b": b}),
        )
        .await
        .unwrap()
        {
            Answer::Ok(_, v, _) => assert_eq!(v, json!({"success": sum}), "{a} + {b}"),
            other => panic!("add: {other:?}"),
        }
    }
    let adds = node.requests_for("Kitchen::add", 3).await;
    assert_eq!(adds[0]["args"], json!({"a": two53p1, "b": two53p1}));
    assert_eq!(adds[1]["args"], json!({"a": i64::MIN, "b": -1}));
    // node logs only its failure to write the byte 254 back.
    let err = node.stderr();
    let (refused, other): (Vec<&str>, Vec<&str>) = err
        .lines()
        .partition(|l| l.contains("Got unexpected unserializable thrift for arg3"));
    assert_eq!((refused.len(), other), (1, vec![]), "node logged: {err}");
}

// ===== tchan as the server =====

/// What the tchan `Kitchen` handlers decoded, per method.
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// A tchan `Channel` serving `Kitchen` on `kitchen` (the same behaviour as
/// thrift-idl-server.js), decoding and encoding through `tchan::idl`.
async fn kitchen_server(idl: Arc<Idl>) -> (Channel, SocketAddr, Seen) {
    let channel = Channel::new("kitchen-tchan");
    let seen: Seen = Arc::default();
    for name in ["echo", "nothing", "add", "ping"] {
        let method = format!("Kitchen::{name}");
        let (idl, seen) = (idl.clone(), seen.clone());
        channel.register(
            SERVICE,
            &method,
            sthrift::handler(move |r: sthrift::ThriftRequest| {
                let (idl, seen) = (idl.clone(), seen.clone());
                async move {
                    let (_, f) = idl.method(&r.method).expect("a Kitchen method");
                    let bad = |e: tchan::idl::ValueError| {
                        tchan::Error::new(ErrorCode::BAD_REQUEST, e.to_string())
                    };
                    let args = decode_fields(&idl, &r.method, &f.args, &r.body).map_err(bad)?;
                    seen.lock().unwrap().push((r.method.clone(), args.clone()));
                    let e = &args["e"];
                    let (ok, result) = match f.name.as_str() {
                        "echo" if e["name"] == "invalid" => (
                            false,
                            json!({"invalid": {"message": "tchan refuses invalid",
                                               "code": e.get("number").cloned().unwrap_or(json!(-1))}}),
                        ),
                        "echo" if e["name"] == "missing" => {
                            (false, json!({"missing": {"what": "tchan has no missing"}}))
                        }
                        "echo" => (true, json!({"success": e})),
                        "nothing" => (true, json!({})),
                        "ping" => (true, json!({"success": "pong from tchan"})),
                        "add" => {
                            let (a, b) = (args["a"].as_i64(), args["b"].as_i64());
                            let sum = a.unwrap_or(0).wrapping_add(b.unwrap_or(0));
                            (true, json!({"success": sum}))
                        }
                        other => unreachable!("{other}"),
                    };
                    let body =
                        encode_fields(&idl, &r.method, &f.result_fields(), &result).map_err(bad)?;
                    Ok(if ok {
                        sthrift::Reply::Ok(r.headers, body.into())
                    } else {
                        let h = vec![("x-thrown".to_string(), "yes".to_string())];
                        sthrift::Reply::Exception(h, body.into())
                    })
                }
            }),
        );
    }
    let addr = channel.listen("127.0.0.1:0").await.unwrap();
    (channel, addr, seen)
}

// Scenario 2: node's thriftrw client -> a tchan server.
// [SCHEME-11] [SCHEME-12] [SCHEME-15]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
async fn n2t_kitchen() {
    let test = "thrift_idl_n2t_kitchen";
    let idl = everything();
    let ef = everything_fields(&idl);
    let (_channel, addr, seen) = kitchen_server(idl.clone()).await;
    let plan = json!({
        "peer": addr.to_string(),
        "idl": IDL,
        "calls": [
            {"id": "echo", "method": "Kitchen::echo", "head": {"tenant": "blue"},
             "args": {"e": sample()}, "echo": "e"},
            {"id": "no_defaults", "method": "Kitchen::echo", "args": {"e": no_defaults()}, "echo": "e"},
            {"id": "neg_byte", "method": "Kitchen::echo",
             "args": {"e": {"flag": true, "small": -2, "medium": -2}}, "echo": "e"},
            {"id": "invalid", "method": "Kitchen::echo",
             "args": {"e": {"flag": true, "name": "invalid", "number": 42}}},
            {"id": "missing", "method": "Kitchen::echo", "args": {"e": {"flag": true, "name": "missing"}}},
            {"id": "nothing", "method": "Kitchen::nothing", "head": {"k": "v"}, "args": {}},
            {"id": "ping", "method": "Kitchen::ping", "args": {}},
            {"id": "add", "method": "Kitchen::add",
             "args": {"a": 9_007_199_254_740_993_i64, "b": i64::MAX}},
        ],
    });
    let run = run_idl_client(&[], plan.to_string(), CLIENT_LIMIT).await;
    let (res, summary) = run.results();
    let get = |id: &str| -> &Value {
        let r = res.get(id).unwrap_or_else(|| {
            panic!(
                "no result for {id}\nstdout: {}\nstderr: {}",
                run.stdout, run.stderr
            )
        });
        assert!(r.get("err").is_none(), "{id}: {r}\nstderr: {}", run.stderr);
        r
    };

    // echo: node checks the round trip itself; tchan decoded what node sent.
    let r = get("echo");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        r["head"],
        json!({"tenant": "blue"}),
        "tchan echoes the headers"
    );
    assert_eq!(r["echo_equal"], true, "node: echoed == sent: {r}");
    assert_eq!(r["defaults_filled"], 0, "{r}");
    assert_eq!(
        norm(&idl, &ef, &r["sent"]["e"]),
        norm(&idl, &ef, &sample()),
        "node sent the sample"
    );
    let seen = seen.lock().unwrap().clone();
    let (m, args) = &seen[0];
    assert_eq!(m, "Kitchen::echo");
    assert_eq!(args, &r["sent"], "tchan decoded exactly what node sent");
    // node's bytes are tchan's bytes for the same value (in node's order).
    let (_, f) = idl.method("Kitchen::echo").unwrap();
    let ours = encode_fields(&idl, "echo args", &f.args, &r["sent"]).unwrap();
    assert_eq!(
        hex(&ours),
        r["sent_hex"].as_str().unwrap(),
        "tchan encodes node's value to node's bytes"
    );

    // The default: tchan returns no `where`, node's reader fills it in.
    let r = get("no_defaults");
    assert_eq!(r["echo_equal"], true, "{r}");
    assert_eq!(r["defaults_filled"], 2, "{r}");
    assert_eq!(r["body"], defaults_filled(), "{r}");
    assert_eq!(seen[1].1, json!({"e": no_defaults()}), "tchan saw no where");

    // A negative byte: tchan reads -2 and writes `fe` back; node reads 254.
    let r = get("neg_byte");
    assert_eq!(seen[2].1["e"]["small"], -2, "tchan decodes the byte signed");
    assert_eq!(r["body"]["small"], 254, "thriftrw reads i8 unsigned: {r}");
    assert_eq!(r["body"]["medium"], -2, "{r}");
    assert_eq!(r["echo_equal"], false, "{r}");
    observe(
        test,
        format!(
            "node read tchan's echo of byte -2 as {}",
            r["body"]["small"]
        ),
    );

    let r = get("invalid");
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["typeName"], "invalid", "{r}");
    assert_eq!(r["head"], json!({"x-thrown": "yes"}), "{r}");
    assert_eq!(
        r["body"],
        json!({"message": "tchan refuses invalid", "code": 42}),
        "{r}"
    );
    let r = get("missing");
    assert_eq!(r["typeName"], "missing", "{r}");
    assert_eq!(r["body"], json!({"what": "tchan has no missing"}), "{r}");

    let r = get("nothing");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["body"], Value::Null, "{r}");
    assert_eq!(r["head"], json!({"k": "v"}), "{r}");
    let r = get("ping");
    assert_eq!(r["body"], "pong from tchan", "{r}");
    let r = get("add");
    assert_eq!(
        r["body"],
        json!(9_007_199_254_740_993_i64.wrapping_add(i64::MAX)),
        "{r}"
    );
    assert_eq!(
        seen.iter().find(|(m, _)| m == "Kitchen::add").unwrap().1,
        json!({"a": 9_007_199_254_740_993_i64, "b": i64::MAX})
    );
    assert_eq!(summary["calls"], 8, "{summary}");
    assert_eq!(summary["connections"], 1, "{summary}");
}

// ===== Meta =====

fn health_result(idl: &Idl, b: &[u8]) -> Value {
    let (_, f) = idl
        .method("Meta::health")
        .expect("META_IDL has Meta::health");
    decode_fields(idl, "health result", &f.result_fields(), b)
        .unwrap_or_else(|e| panic!("node's health answer {} does not decode: {e}", hex(b)))
}

/// `tchan call ARGS` (cwd: the repo), with its stdout, stderr and exit code.
async fn tchan_cli(args: Vec<String>) -> (String, String, i32) {
    let bin = match option_env!("CARGO_BIN_EXE_tchan") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "the tchan binary was not built for this test run (it needs the `cli` feature, \
             a default one): run `cargo test --test interop_node` with default features"
        ),
    };
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(&bin);
        cmd.arg("call").args(&args).current_dir(repo());
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    })
    .await
    .expect("tchan cli runner")
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

// Scenario 3: Meta::health both ways, and `tchan call --health`.
// [SCHEME-18] [SCHEME-19]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
async fn meta_health() {
    let test = "thrift_idl_meta_health";
    let node = IdlNode::start();
    let meta = meta_idl();
    let client = connect(node.addr).await;
    let mut opts = tchan::CallOptions::default();
    opts.set_timeout(Duration::from_secs(3));

    // tchan -> node: the no-argument form node 4.0.1 serves.
    let health = |svc: &'static str| {
        let (client, opts) = (client.clone(), opts.clone());
        async move {
            sthrift::call(
                &client,
                svc,
                "Meta::health",
                &[],
                Bytes::from_static(&[0]),
                opts,
            )
            .await
        }
    };
    match health(SERVICE).await.expect("node's Meta::health") {
        sthrift::Reply::Ok(_, b) => {
            assert_eq!(
                hex(&b),
                "0c0000020001010000",
                "node's health answer: {{success: {{ok: true}}}}"
            );
            assert_eq!(health_result(&meta, &b), json!({"success": {"ok": true}}));
        }
        other => panic!("health: {other:?}"),
    }
    match health(SICK).await.expect("node's Meta::health (sick)") {
        sthrift::Reply::Ok(_, b) => {
            assert_eq!(
                health_result(&meta, &b),
                json!({"success": {"ok": false, "message": "node kitchen is sick"}})
            );
        }
        other => panic!("sick health: {other:?}"),
    }
    // Meta::thriftIDL: node's sources, read with tchan's META_IDL.
    match sthrift::call(
        &client,
        SERVICE,
        "Meta::thriftIDL",
        &[],
        Bytes::from_static(&[0]),
        opts.clone(),
    )
    .await
    .expect("node's Meta::thriftIDL")
    {
        sthrift::Reply::Ok(_, b) => {
            let (_, f) = meta.method("Meta::thriftIDL").unwrap();
            let v = decode_fields(&meta, "thriftIDL result", &f.result_fields(), &b).unwrap();
            let s = &v["success"];
            assert_eq!(s["entryPoint"], "everything.thrift", "{s}");
            let text = std::fs::read_to_string(repo().join(IDL)).unwrap();
            assert_eq!(s["idls"]["everything.thrift"], text.as_str());
            assert!(s["idls"]["shared.thrift"].is_string(), "{s}");
            observe(
                test,
                format!(
                    "node's Meta::thriftIDL files: {:?}",
                    s["idls"].as_object().unwrap().keys().collect::<Vec<_>>()
                ),
            );
        }
        other => panic!("thriftIDL: {other:?}"),
    }

    // The CLI against node.
    let a = node.addr.to_string();
    let (out, err, code) = tchan_cli(strings(&[&a, SERVICE, "--health"])).await;
    assert_eq!((out.as_str(), code), ("OK\n", 0), "stderr: {err}");
    let (out, err, code) = tchan_cli(strings(&[&a, SICK, "--health"])).await;
    assert_eq!(
        (out.as_str(), code),
        ("NOT OK: node kitchen is sick\n", 124),
        "stderr: {err}"
    );

    // node -> tchan: node's health call (its meta.thrift) to a tchan channel.
    let (_channel, addr, _) = kitchen_server(everything()).await;
    let plan = json!({"peer": addr.to_string(), "calls": [
        {"id": "health", "method": "Meta::health", "args": {}},
        {"id": "health_tchannel", "service": "tchannel", "method": "Meta::health", "args": {}},
    ]});
    let run = run_idl_client(&[], plan.to_string(), CLIENT_LIMIT).await;
    let (res, _) = run.results();
    for id in ["health", "health_tchannel"] {
        let r = res
            .get(id)
            .unwrap_or_else(|| panic!("no {id}: {}\n{}", run.stdout, run.stderr));
        assert!(r.get("err").is_none(), "{id}: {r}");
        assert_eq!(r["ok"], true, "{id}: {r}");
        assert_eq!(r["body"]["ok"], true, "{id}: tchan says healthy: {r}");
        assert_eq!(r["sent_hex"], "00", "node's no-argument health args");
        assert_eq!(r["head"], json!({}), "{id}: arg2 `00 00`: {r}");
        observe(test, format!("node -> tchan {id}: {}", r["body"]));
    }
    assert!(node.stderr().is_empty(), "node logged: {}", node.stderr());
}

// Scenario 4: `tchan call ... --thrift` against node.
// [SCHEME-15]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
async fn cli_t2n() {
    let node = IdlNode::start();
    let idl = everything();
    let ef = everything_fields(&idl);
    let a = node.addr.to_string();
    let call = |method: &str, arg3: Value| {
        let mut v = strings(&[&a, SERVICE, method, "--thrift", IDL, "--arg3"]);
        v.push(arg3.to_string());
        v
    };

    let (out, err, code) = tchan_cli(call("Kitchen::echo", json!({"e": sample()}))).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let got: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        norm(&idl, &ef, &got),
        norm(&idl, &ef, &sample()),
        "stdout: {out}"
    );
    let reqs = node.requests_for("Kitchen::echo", 1).await;
    assert_eq!(
        norm(&idl, &ef, &reqs[0]["args"]["e"]),
        norm(&idl, &ef, &sample())
    );

    // With headers (--arg2), and node's default filled in.
    let mut args = call("Kitchen::echo", json!({"e": no_defaults()}));
    args.extend(strings(&["--arg2", r#"{"tenant":"blue"}"#]));
    let (out, err, code) = tchan_cli(args).await;
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        defaults_filled()
    );
    let reqs = node.requests_for("Kitchen::echo", 2).await;
    assert_eq!(reqs[1]["head"], json!({"tenant": "blue"}));

    let invalid = json!({"e": {"flag": true, "name": "invalid", "number": 9}});
    let (out, err, code) = tchan_cli(call("Kitchen::echo", invalid)).await;
    assert_eq!(
        code, 126,
        "a declared exception: stdout {out}, stderr {err}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"invalid": {"message": "node refuses invalid", "code": 9}})
    );
    let (out, err, code) = tchan_cli(call("Kitchen::nothing", json!({}))).await;
    assert_eq!((out.trim(), code), ("null", 0), "stderr: {err}");
    let (out, err, code) = tchan_cli(call("Kitchen::ping", json!({}))).await;
    assert_eq!(
        (out.trim(), code),
        ("\"pong from node\"", 0),
        "stderr: {err}"
    );
    let add = json!({"a": 9_007_199_254_740_993_i64, "b": 9_007_199_254_740_993_i64});
    let (out, err, code) = tchan_cli(call("Kitchen::add", add)).await;
    assert_eq!(
        (out.trim(), code),
        ("18014398509481986", 0),
        "stderr: {err}"
    );
}

// ===== golden vectors =====

fn fixture() -> Value {
    let path = repo().join(FIXTURE);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{FIXTURE}: {e}"))
}

// tchan's encoder writes node's bytes, and its decoder reads them back.
// [SCHEME-11] [SCHEME-15]
// (Needs no node; ignored with the rest of this target.)
#[test]
#[ignore = "needs node; see interop/README.md"]
fn golden_tchan() {
    let fx = fixture();
    assert_eq!(fx["idl"], IDL);
    let idl = Idl::load(&repo().join(Path::new(fx["idl"].as_str().unwrap()))).unwrap();
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let mut bad = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let name = c["struct"].as_str().unwrap();
        let fields = fields_of(&idl, name);
        let want = c["hex"].as_str().unwrap();
        match encode_fields(&idl, name, &fields, &c["json"]) {
            Ok(b) if hex(&b) == want => {}
            Ok(b) => bad.push(format!(
                "case {i} {name} {}: tchan writes {}, node wrote {want}",
                c["json"],
                hex(&b)
            )),
            Err(e) => bad.push(format!(
                "case {i} {name} {}: tchan cannot encode: {e}",
                c["json"]
            )),
        }
        match decode_fields(&idl, name, &fields, &unhex(want)) {
            Ok(v) if v == c["json"] => {}
            Ok(v) => bad.push(format!(
                "case {i} {name}: tchan reads node's {want} as {v}, not {}",
                c["json"]
            )),
            Err(e) => bad.push(format!(
                "case {i} {name}: tchan cannot read node's {want}: {e}"
            )),
        }
    }
    assert!(
        bad.is_empty(),
        "{} failures:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

// The fixture's bytes are what node's thriftrw writes today.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
async fn golden_node() {
    let fx = fixture();
    let run = run_idl_client(&["golden"], fx.to_string(), CLIENT_LIMIT).await;
    let fresh: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("golden output is not JSON: {e}\n{}", run.stdout));
    let (old, new) = (
        fx["cases"].as_array().unwrap(),
        fresh["cases"].as_array().unwrap(),
    );
    assert_eq!(old.len(), new.len());
    for (i, (o, n)) in old.iter().zip(new).enumerate() {
        assert_eq!(o["json"], n["json"], "case {i}: node changed the sample");
        assert_eq!(
            o["hex"], n["hex"],
            "case {i} {}: node now writes other bytes; regenerate {FIXTURE} with \
             `node interop/node/thrift-idl-client.js golden < {FIXTURE} > new.json` \
             and move new.json there",
            o["json"]
        );
        assert_eq!(
            o.get("node_reads_back"),
            n.get("node_reads_back"),
            "case {i}: what node reads back changed"
        );
    }
    // Only the negative bytes come back otherwise (thriftrw reads i8 unsigned).
    let odd: Vec<usize> = new
        .iter()
        .enumerate()
        .filter(|(_, c)| c.get("node_reads_back").is_some())
        .map(|(i, _)| i)
        .collect();
    for i in &odd {
        let c = &new[*i];
        let small = c["json"]["small"].as_i64().expect("a byte");
        assert!(small < 0, "case {i}: {c}");
        assert_eq!(c["node_reads_back"]["small"], small + 256, "case {i}");
    }
    assert!(
        !odd.is_empty(),
        "thriftrw now reads negative bytes signed: update the notes on i8 here and in the node scripts"
    );
}
