//! The `Meta` service every channel answers (`spec/08-arg-schemes.md`
//! SCHEME-18, SCHEME-19), byte for byte.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tchan::frame::{ArgScheme, ErrorCode};
use tchan::idl::{Idl, decode_fields};
use tchan::{CallRequest, Channel, Client, HealthKind, Request, Response};

async fn server() -> (Channel, Client) {
    let srv = Channel::new("svc");
    srv.register("svc", "echo", |req: Request| async move {
        let b = req.arg3.into_bytes().await?;
        Ok(Response::ok(req.arg2, b))
    });
    let addr = srv.listen("127.0.0.1:0").await.unwrap();
    let client = Channel::new("caller").connect(addr).await.unwrap();
    (srv, client)
}

async fn meta(
    client: &Client,
    service: &str,
    method: &str,
    arg3: &'static [u8],
) -> Result<tchan::CallResponse, tchan::Error> {
    client
        .call(
            CallRequest::new(service.to_owned(), format!("Meta::{method}"))
                .scheme(ArgScheme::Thrift)
                .arg2(Bytes::from_static(&[0, 0]))
                .arg3(Bytes::from_static(arg3)),
        )
        .await
}

fn meta_idl() -> Idl {
    Idl::parse_str("meta.thrift", tchan::META_IDL).unwrap()
}

#[tokio::test]
async fn the_no_argument_health_call_gets_the_older_answer_byte_for_byte() {
    // [SCHEME-18] [SCHEME-19] node 4.0.1's form: arg2 00 00, arg3 00.
    let (_srv, client) = server().await;
    for service in ["svc", "tchannel"] {
        let r = meta(&client, service, "health", b"\x00").await.unwrap();
        assert!(r.code.is_ok());
        assert_eq!(&r.arg2[..], &[0, 0]);
        assert_eq!(
            &r.arg3[..],
            b"\x0c\x00\x00\x02\x00\x01\x01\x00\x00",
            "{{ok: true}}"
        );
        assert_eq!(r.headers.get(b"as"), Some(&b"thrift"[..]));
    }
    // Not on a service the channel does not serve.
    let e = meta(&client, "other", "health", b"\x00").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::BAD_REQUEST);
}

#[tokio::test]
async fn health_requests_versions_and_idls_in_the_newer_form() {
    // [SCHEME-18]
    let (srv, client) = server().await;
    // HealthRequest{type: TRAFFIC}.
    let r = meta(
        &client,
        "svc",
        "health",
        b"\x0c\x00\x01\x08\x00\x01\x00\x00\x00\x01\x00\x00",
    )
    .await
    .unwrap();
    // HealthStatus{ok: true, state: ACCEPTING}.
    assert_eq!(
        &r.arg3[..],
        b"\x0c\x00\x00\x02\x00\x01\x01\x08\x00\x03\x00\x00\x00\x01\x00\x00"
    );
    let idl = meta_idl();
    let (_, f) = idl.method("Meta::versionInfo").unwrap();
    let r = meta(&client, "tchannel", "versionInfo", b"\x00")
        .await
        .unwrap();
    let v = decode_fields(&idl, "r", &f.result_fields(), &r.arg3).unwrap();
    assert_eq!(v["success"]["language"], "rust");
    assert_eq!(v["success"]["version"], env!("CARGO_PKG_VERSION"));
    let (_, f) = idl.method("Meta::thriftIDL").unwrap();
    let r = meta(&client, "svc", "thriftIDL", b"\x00").await.unwrap();
    let v = decode_fields(&idl, "r", &f.result_fields(), &r.arg3).unwrap();
    assert_eq!(v["success"], json!({"idls": {}, "entryPoint": ""}));
    srv.set_thrift_idls(
        vec![("svc.thrift".into(), "service S {}".into())],
        "svc.thrift",
    );
    let r = meta(&client, "svc", "thriftIDL", b"\x00").await.unwrap();
    let v = decode_fields(&idl, "r", &f.result_fields(), &r.arg3).unwrap();
    assert_eq!(
        v["success"],
        json!({"idls": {"svc.thrift": "service S {}"}, "entryPoint": "svc.thrift"})
    );
    // An args struct that does not decode, or has bytes after it: bad request.
    let e = meta(&client, "svc", "health", b"\x0c\x00\x01")
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BAD_REQUEST);
    let e = meta(&client, "svc", "versionInfo", b"\x00\x00")
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BAD_REQUEST);
    let e = meta(&client, "svc", "nope", b"\x00").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_application_health_check_and_an_own_meta_handler() {
    let (srv, client) = server().await;
    let sick = Arc::new(AtomicBool::new(false));
    {
        let sick = sick.clone();
        srv.set_health_check(move |kind| {
            if sick.load(Ordering::SeqCst) && kind == HealthKind::Process {
                Err("database unreachable".into())
            } else {
                Ok(())
            }
        });
    }
    let idl = meta_idl();
    let (_, f) = idl.method("Meta::health").unwrap();
    let ok = meta(&client, "svc", "health", b"\x00").await.unwrap();
    assert_eq!(&ok.arg3[..], b"\x0c\x00\x00\x02\x00\x01\x01\x00\x00");
    sick.store(true, Ordering::SeqCst);
    let r = meta(&client, "svc", "health", b"\x00").await.unwrap();
    let v = decode_fields(&idl, "r", &f.result_fields(), &r.arg3).unwrap();
    assert_eq!(
        v["success"],
        json!({"ok": false, "message": "database unreachable"})
    );
    // A handler the application registers for Meta::health wins.
    srv.register("svc", "Meta::health", |_req: Request| async move {
        Ok(Response::ok(
            Bytes::from_static(&[0, 0]),
            Bytes::from_static(b"\x00"),
        ))
    });
    let r = meta(&client, "svc", "health", b"\x00").await.unwrap();
    assert_eq!(&r.arg3[..], b"\x00");
}

#[tokio::test]
async fn while_draining_meta_calls_are_answered_and_traffic_health_says_stopping() {
    // [SCHEME-19]
    let srv = Channel::new("svc");
    let release = Arc::new(tokio::sync::Notify::new());
    {
        let release = release.clone();
        srv.register("svc", "hold", move |_req: Request| {
            let release = release.clone();
            async move {
                release.notified().await;
                Ok(Response::ok(Bytes::new(), Bytes::new()))
            }
        });
    }
    let addr = srv.listen("127.0.0.1:0").await.unwrap();
    let client = Channel::new("caller").connect(addr).await.unwrap();
    let held = {
        let c = client.clone();
        tokio::spawn(async move {
            c.call(CallRequest::new("svc", "hold").timeout(Duration::from_secs(10)))
                .await
        })
    };
    while client.calls_in_flight().0 == 0 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let drain = {
        let srv = srv.clone();
        tokio::spawn(async move { srv.drain().await })
    };
    // Wait until the connection is draining: a normal call is declined.
    let mut declined = false;
    for _ in 0..200 {
        match client
            .call(CallRequest::new("svc", "hold").timeout(Duration::from_millis(200)))
            .await
        {
            Err(e) if e.code() == ErrorCode::DECLINED => {
                declined = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    assert!(declined, "the drain declines new calls");
    // TRAFFIC: not ok, STOPPING. PROCESS (no argument): still ok.
    let r = meta(
        &client,
        "svc",
        "health",
        b"\x0c\x00\x01\x08\x00\x01\x00\x00\x00\x01\x00\x00",
    )
    .await
    .unwrap();
    let idl = meta_idl();
    let (_, f) = idl.method("Meta::health").unwrap();
    let v = decode_fields(&idl, "r", &f.result_fields(), &r.arg3).unwrap();
    assert_eq!(
        v["success"],
        json!({"ok": false, "message": "draining", "state": "STOPPING"})
    );
    let r = meta(&client, "svc", "health", b"\x00").await.unwrap();
    assert_eq!(&r.arg3[..], b"\x0c\x00\x00\x02\x00\x01\x01\x00\x00");
    release.notify_waiters();
    held.await.unwrap().unwrap();
    drain.await.unwrap();
}

#[tokio::test]
async fn thrift_arg2_is_read_exactly_and_an_empty_one_is_the_empty_map() {
    // [SCHEME-16] [DEV-25]
    let (_srv, client) = server().await;
    let call = |arg2: &'static [u8]| {
        client.call(
            CallRequest::new("svc", "Meta::health")
                .scheme(ArgScheme::Thrift)
                .arg2(Bytes::from_static(arg2))
                .arg3(Bytes::from_static(b"\x00")),
        )
    };
    let r = call(b"").await.unwrap();
    assert_eq!(&r.arg3[..], b"\x0c\x00\x00\x02\x00\x01\x01\x00\x00");
    let e = call(b"\x00\x00\x00").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::BAD_REQUEST);
    let e = call(b"\x00\x01\x00\x05ab").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::BAD_REQUEST);
}
