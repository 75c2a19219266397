//! json and thrift.

use super::*;

// [SCHEME-3] [SCHEME-4] [SCHEME-5] [SCHEME-6] [SCHEME-7]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn t2n_json() {
    let node = NodeServer::start();
    let client = connect(node.addr).await;
    let opts = tchan::CallOptions::default();
    let headers = vec![("tenant".to_string(), "blue".to_string())];
    let body = json!({"n": 1, "list": [1, "two", null], "nested": {"ok": true}});
    let r = sjson::call(
        &client,
        "interop",
        "json_echo",
        &headers,
        &body,
        opts.clone(),
    )
    .await
    .unwrap();
    assert_eq!(r, sjson::Reply::Ok(headers.clone(), body.clone()));
    // No headers: tchan writes `{}` (SCHEME-5); node reads it as an empty head.
    let r = sjson::call(
        &client,
        "interop",
        "json_echo",
        &[],
        &json!(null),
        opts.clone(),
    )
    .await
    .unwrap();
    assert_eq!(r, sjson::Reply::Ok(vec![], json!(null)));
    // node's application error: code 1, arg3 = the error's own properties.
    match sjson::call(&client, "interop", "json_fail", &headers, &body, opts)
        .await
        .unwrap()
    {
        sjson::Reply::AppError(h, v) => {
            assert_eq!(h, vec![("reason".to_string(), "refused".to_string())]);
            assert_eq!(v["type"], "interop.json-refused", "{v}");
            assert_eq!(v["detail"], "json_fail always fails", "{v}");
        }
        other => panic!("expected an application error: {other:?}"),
    }
    let heads = |want: &str| {
        node.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(want))
            .count()
    };
    let want = r#""head":{"tenant":"blue"}"#;
    assert!(
        eventually(Duration::from_secs(2), || heads(want) == 2).await,
        "node read the head of json_echo and json_fail: {:?}",
        node.lines.lock().unwrap()
    );
}

// [SCHEME-4] [SCHEME-5] [SCHEME-6] [SCHEME-7]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn n2t_json() {
    let srv = default_tchan_server().await;
    let body = json!({"n": 1, "list": [1, "two", null]});
    let plan = json!({"calls": [
        {"id": "echo", "kind": "json", "method": "json_echo", "head": {"tenant": "blue"}, "body": body},
        // No head: node sends the JSON text `null` as arg2 (SCHEME-4).
        {"id": "null_head", "kind": "json", "method": "json_echo", "body": "x"},
        {"id": "fail", "kind": "json", "method": "json_fail", "head": {}, "body": 1},
    ]});
    let run = run_client(srv.addr, plan, CLIENT_LIMIT).await;
    let r = run.get("echo");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["head"], json!({"tenant": "blue"}));
    assert_eq!(r["body"], json!({"echo": body}));
    let r = run.get("null_head");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["head"], json!({}), "tchan answers `{{}}` (SCHEME-5)");
    let r = run.get("fail");
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["head"], json!({"reason": "refused"}));
    assert_eq!(r["body"]["type"], "interop.json-refused", "{r}");
    assert_eq!(r["body"]["message"], "refused by the interop server", "{r}");
}

pub(crate) fn thrift_args(value: &str, count: i32) -> Bytes {
    t_encode(&[(1, s(value)), (2, TVal::I32(count))]).into()
}

// [SCHEME-8] [SCHEME-9] [SCHEME-11] [SCHEME-12]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn t2n_thrift() {
    let node = NodeServer::start();
    let (addr, tap) = Tap::start(node.addr).await;
    let client = connect(addr).await;
    let opts = tchan::CallOptions::default();
    let headers = vec![
        ("someHeader".to_string(), "headerValue".to_string()),
        ("second".to_string(), "2".to_string()),
    ];
    let r = sthrift::call(
        &client,
        "interop-thrift",
        "Echo::echo",
        &headers,
        thrift_args("some-string", 3),
        opts.clone(),
    )
    .await
    .unwrap();
    match r {
        sthrift::Reply::Ok(h, b) => {
            assert_eq!(h, headers, "arg2 header map echoed");
            assert_eq!(
                t_decode(&b),
                vec![(0, TVal::Struct(vec![(1, s("some-string x3"))]))]
            );
        }
        other => panic!("{other:?}"),
    }
    // No headers: tchan sends `00 00` (SCHEME-9).
    let r = sthrift::call(
        &client,
        "interop-thrift",
        "Echo::echo",
        &[],
        thrift_args("boom", 1),
        opts,
    )
    .await
    .unwrap();
    match r {
        sthrift::Reply::Exception(h, b) => {
            assert_eq!(h, vec![("x-fail".to_string(), "yes".to_string())]);
            assert_eq!(
                t_decode(&b),
                vec![(
                    1,
                    TVal::Struct(vec![(1, s("bad value: boom")), (2, TVal::I32(42))])
                )]
            );
        }
        other => panic!("{other:?}"),
    }
    let c2s = tap.conn(0).c2s();
    let reqs = call_reqs(&c2s, "Echo::echo");
    let arg2_of = |id| {
        let msg = message(&c2s, id);
        match &msg[0] {
            Frame::CallReq(c) => c.args.iter().nth(1).unwrap(),
            _ => unreachable!(),
        }
    };
    assert_eq!(
        &arg2_of(reqs[1].id)[..],
        &[0, 0],
        "SCHEME-9: empty map is 00 00"
    );
    assert_eq!(reqs[0].headers.get(b"as"), Some(&b"thrift"[..]));
}

// [SCHEME-8] [SCHEME-10] [SCHEME-11] [SCHEME-12]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node; see interop/README.md"]
pub(crate) async fn n2t_thrift() {
    let srv = default_tchan_server().await;
    let plan = json!({"calls": [
        {"id": "echo", "kind": "thrift", "method": "Echo::echo",
         "head": {"someHeader": "headerValue", "second": "2"},
         "body": {"value": "some-string", "count": 3}},
        {"id": "no_head", "kind": "thrift", "method": "Echo::echo",
         "body": {"value": "x", "count": 1}},
        {"id": "boom", "kind": "thrift", "method": "Echo::echo",
         "head": {}, "body": {"value": "boom", "count": 3}},
    ]});
    let run = run_client(srv.addr, plan, CLIENT_LIMIT).await;
    let r = run.get("echo");
    assert_eq!(r["ok"], true, "{r}\n{}", run.stderr);
    assert_eq!(
        r["head"],
        json!({"someHeader": "headerValue", "second": "2"})
    );
    assert_eq!(r["body"], json!({"value": "some-string x3"}));
    let r = run.get("no_head");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["body"], json!({"value": "x x1"}));
    let r = run.get("boom");
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["typeName"], "failure");
    assert_eq!(r["head"], json!({"x-fail": "yes"}));
    assert_eq!(r["body"]["reason"], "bad value: boom");
    assert_eq!(r["body"]["code"], 42);
}
