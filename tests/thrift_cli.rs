//! `tchan call --thrift`: JSON through an IDL to a thrift server and back
//! (`spec/08-arg-schemes.md` SCHEME-15).

use std::path::PathBuf;
use std::process::{Command, Output};

use bytes::Bytes;
use serde_json::{Value, json};
use tchan::Channel;
use tchan::frame::ErrorCode;
use tchan::idl::{Idl, decode_fields, encode_fields};
use tchan::scheme::thrift::{Reply, ThriftRequest, handler};

const BIN: &str = env!("CARGO_BIN_EXE_tchan");

fn idl_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/thrift/everything.thrift")
}

/// A thrift server of `Kitchen` built from the IDL at run time: `echo`
/// returns its argument (or raises `invalid` when its name is "fail"),
/// `nothing` is void, `add` adds.
async fn kitchen() -> (Channel, String) {
    let idl = std::sync::Arc::new(Idl::load(&idl_path()).unwrap());
    let ch = Channel::new("kitchen");
    for m in [
        "Kitchen::echo",
        "Kitchen::nothing",
        "Kitchen::add",
        "Kitchen::ping",
    ] {
        let idl = idl.clone();
        ch.register(
            "kitchen",
            m,
            handler(move |req: ThriftRequest| {
                let idl = idl.clone();
                async move {
                    let (_, f) = idl.method(&req.method).unwrap();
                    let args = decode_fields(&idl, "args", &f.args, &req.body)
                        .map_err(|e| tchan::Error::new(ErrorCode::BAD_REQUEST, e.0))?;
                    let r = f.result_fields();
                    let (result, exception) = match req.method.as_str() {
                        "Kitchen::echo" if args["e"]["name"] == "fail" => {
                            (json!({"invalid": {"message": "no", "code": 7}}), true)
                        }
                        "Kitchen::echo" => (json!({"success": args["e"]}), false),
                        "Kitchen::add" => (
                            json!({"success": args["a"].as_i64().unwrap() + args["b"].as_i64().unwrap()}),
                            false,
                        ),
                        "Kitchen::ping" => (json!({"success": "pong"}), false),
                        _ => (json!({}), false),
                    };
                    let body = Bytes::from(encode_fields(&idl, "result", &r, &result).unwrap());
                    let h = req.headers.clone();
                    Ok(if exception { Reply::Exception(h, body) } else { Reply::Ok(h, body) })
                }
            }),
        );
    }
    let addr = ch.listen("127.0.0.1:0").await.unwrap().to_string();
    (ch, addr)
}

async fn call(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(BIN).arg("call").args(args).output().unwrap())
        .await
        .unwrap()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thrift_calls_from_json_print_json() {
    // [SCHEME-15]
    let (_srv, addr) = kitchen().await;
    let idl = idl_path();
    let idl = idl.to_str().unwrap();
    let e = json!({"flag": true, "big": 9007199254740993i64, "blob": "AAEC/w==", "color": "RED",
                   "names": [[1, "one"]], "counts": {"a": 1}, "tags": ["x"]});
    let out = call(s(&[
        &addr,
        "kitchen",
        "Kitchen::echo",
        "--thrift",
        idl,
        "--arg3",
        &json!({"e": e}).to_string(),
        "--arg2",
        r#"{"h": "v"}"#,
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        printed, e,
        "the return value, i64 exact, binary base64, enums by name"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\n  "),
        "pretty-printed"
    );
    // Numbers for enums on input.
    let out = call(s(&[
        &addr,
        "kitchen",
        "Kitchen::echo",
        "--thrift",
        idl,
        "--arg3",
        r#"{"e": {"flag": false, "color": 10}}"#,
    ]))
    .await;
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["color"], "BLUE");
    // void prints null; an i64 result; an inherited method.
    let out = call(s(&[&addr, "kitchen", "Kitchen::nothing", "--thrift", idl])).await;
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(0), &b"null\n"[..])
    );
    let out = call(s(&[
        &addr,
        "kitchen",
        "Kitchen::add",
        "--thrift",
        idl,
        "--arg3",
        r#"{"a": 2, "b": 40}"#,
    ]))
    .await;
    assert_eq!(out.stdout, b"42\n");
    let out = call(s(&[&addr, "kitchen", "Kitchen::ping", "--thrift", idl])).await;
    assert_eq!(out.stdout, b"\"pong\"\n");
    // A declared exception: printed under its field name, exit 126.
    let out = call(s(&[
        &addr,
        "kitchen",
        "Kitchen::echo",
        "--thrift",
        idl,
        "--arg3",
        r#"{"e": {"flag": true, "name": "fail"}}"#,
    ]))
    .await;
    assert_eq!(out.status.code(), Some(126));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, json!({"invalid": {"message": "no", "code": 7}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thrift_usage_errors_exit_125_naming_the_problem() {
    let (_srv, addr) = kitchen().await;
    let idl = idl_path();
    let idl = idl.to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("tchan-thrift-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.thrift");
    std::fs::write(&broken, "service {").unwrap();
    let broken = broken.to_str().unwrap().to_owned();
    for (args, says) in [
        (
            s(&[
                &addr,
                "kitchen",
                "Kitchen::echo",
                "--thrift",
                idl,
                "--arg3",
                r#"{"nope": 1}"#,
            ]),
            "nope",
        ),
        (
            s(&[&addr, "kitchen", "Kitchen::missing", "--thrift", idl]),
            "Kitchen::missing",
        ),
        (
            s(&[&addr, "kitchen", "Kitchen::echo", "--thrift", &broken]),
            "broken.thrift",
        ),
        (
            s(&[&addr, "kitchen", "Kitchen::echo", "--thrift", idl, "--json"]),
            "--json",
        ),
        (
            s(&[
                &addr,
                "kitchen",
                "Kitchen::echo",
                "--thrift",
                idl,
                "--arg3",
                r#"{"e": {"flag": true}}"#,
                "--arg2",
                "[]",
            ]),
            "--arg2",
        ),
        (
            s(&[
                &addr,
                "kitchen",
                "Kitchen::echo",
                "--thrift",
                idl,
                "--arg3",
                "not json",
            ]),
            "--arg3",
        ),
    ] {
        let out = call(args.clone()).await;
        assert_eq!(out.status.code(), Some(125), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
