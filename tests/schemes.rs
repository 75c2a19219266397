//! Arg schemes over a real connection: json and thrift (spec/08-arg-schemes.md),
//! and the transport headers tchan writes (spec/03-headers-and-tracing.md).

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tchan::frame::ErrorCode;
use tchan::scheme::{json as js, thrift};
use tchan::{CallOptions, CallRequest, Channel, Client, Request, Response};

async fn setup() -> (Channel, Client) {
    let srv = Channel::new("server");
    srv.register(
        "svc",
        "echo_json",
        js::handler(|r: js::JsonRequest| async move {
            if r.body == json!("fail") {
                return Ok(js::Reply::AppError(
                    r.headers,
                    js::error_body("Failure", "asked to fail"),
                ));
            }
            Ok(js::Reply::Ok(r.headers, r.body))
        }),
    );
    srv.register(
        "svc",
        "Echo::echo",
        thrift::handler(|r: thrift::ThriftRequest| async move {
            match &r.body[..] {
                b"exception" => Ok(thrift::Reply::Exception(r.headers, r.body)),
                b"undeclared" => Err(tchan::Error::new(
                    ErrorCode::UNEXPECTED,
                    "undeclared exception",
                )),
                _ => Ok(thrift::Reply::Ok(r.headers, r.body)),
            }
        }),
    );
    srv.register("svc", "raw", |req: Request| async move {
        // Echo the transport headers the request carried, as `k=v;` text.
        let mut seen = String::new();
        for (k, v) in req.headers.iter() {
            seen.push_str(&format!(
                "{}={};",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(v)
            ));
        }
        Ok(Response::ok(Bytes::new(), seen.into_bytes()))
    });
    let addr = srv.listen("127.0.0.1:0").await.unwrap();
    let client = Channel::new("caller").connect(addr).await.unwrap();
    (srv, client)
}

fn opts() -> CallOptions {
    let mut o = CallOptions::default();
    o.set_timeout(Duration::from_secs(5));
    o
}

#[tokio::test]
async fn json_round_trip_with_headers_and_app_errors() {
    // [SCHEME-3] [SCHEME-4] [SCHEME-5] [SCHEME-6] [SCHEME-7]
    let (_s, c) = setup().await;
    let h = vec![("trace".to_string(), "abc".to_string())];
    let body = json!({"msg": "hi", "n": [1, 2, 3]});
    let r = js::call(&c, "svc", "echo_json", &h, &body, opts())
        .await
        .unwrap();
    assert_eq!(r, js::Reply::Ok(h.clone(), body));
    let r = js::call(&c, "svc", "echo_json", &[], &json!("fail"), opts())
        .await
        .unwrap();
    assert_eq!(
        r,
        js::Reply::AppError(
            vec![],
            json!({"type": "Failure", "message": "asked to fail"})
        )
    );
    // Empty arg2 and `null` arg2 mean no headers; empty arg3 is null.
    for arg2 in ["", "null"] {
        let resp = c
            .call(
                CallRequest::new("svc", "echo_json")
                    .scheme("json")
                    .arg2(arg2)
                    .timeout(Duration::from_secs(5)),
            )
            .await
            .unwrap();
        assert!(resp.is_ok());
        assert_eq!(&resp.arg2[..], b"{}");
        assert_eq!(&resp.arg3[..], b"null");
    }
    // A header that is not a string, or arg3 that is not JSON: bad request.
    for (arg2, arg3) in [(r#"{"a":1}"#, "1"), ("[]", "1"), ("{}", "{nope")] {
        let e = c
            .call(
                CallRequest::new("svc", "echo_json")
                    .scheme("json")
                    .arg2(arg2)
                    .arg3(Bytes::from(arg3))
                    .timeout(Duration::from_secs(5)),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::BAD_REQUEST, "{arg2} {arg3}");
    }
}

#[tokio::test]
async fn an_endpoint_refuses_a_scheme_it_does_not_serve() {
    // [SCHEME-1]
    let (_s, c) = setup().await;
    let e = c
        .call(CallRequest::new("svc", "echo_json").scheme("raw"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BAD_REQUEST);
    let e = c
        .call(CallRequest::new("svc", "Echo::echo").scheme("json"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BAD_REQUEST);
}

#[tokio::test]
async fn thrift_headers_results_and_exceptions() {
    // [SCHEME-8] [SCHEME-9] [SCHEME-11] [SCHEME-12] [SCHEME-13]
    let (_s, c) = setup().await;
    let h = vec![("someHeader".to_string(), "headerValue".to_string())];
    // A bare struct: field 1 (string) "hi", then stop.
    let body = Bytes::from_static(b"\x0b\x00\x01\x00\x00\x00\x02hi\x00");
    let r = thrift::call(&c, "svc", "Echo::echo", &h, body.clone(), opts())
        .await
        .unwrap();
    assert_eq!(r, thrift::Reply::Ok(h.clone(), body));
    let r = thrift::call(
        &c,
        "svc",
        "Echo::echo",
        &[],
        Bytes::from_static(b"exception"),
        opts(),
    )
    .await
    .unwrap();
    assert_eq!(
        r,
        thrift::Reply::Exception(vec![], Bytes::from_static(b"exception"))
    );
    let e = thrift::call(
        &c,
        "svc",
        "Echo::echo",
        &[],
        Bytes::from_static(b"undeclared"),
        opts(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::UNEXPECTED);
    // [SCHEME-14] Unknown thrift method: bad request.
    let e = thrift::call(&c, "svc", "Echo::nope", &[], Bytes::new(), opts())
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BAD_REQUEST);
}

#[test]
fn thrift_header_maps() {
    // [SCHEME-9] [SCHEME-10] [DEV-23] empty map is 00 00; empty arg2 reads as no headers; overruns fail
    assert_eq!(&thrift::encode_headers(&[]).unwrap()[..], b"\x00\x00");
    let h = vec![("k".to_string(), "v".to_string())];
    let enc = thrift::encode_headers(&h).unwrap();
    assert_eq!(&enc[..], b"\x00\x01\x00\x01k\x00\x01v");
    assert_eq!(thrift::parse_headers(&enc).unwrap(), h);
    assert_eq!(thrift::parse_headers(&Bytes::new()).unwrap(), vec![]);
    let dup = Bytes::from_static(b"\x00\x02\x00\x01k\x00\x01a\x00\x01k\x00\x01b");
    assert_eq!(
        thrift::parse_headers(&dup).unwrap(),
        vec![("k".to_string(), "b".to_string())]
    );
    for bad in [&b"\x00\x01\x00\x05k"[..], b"\x00\x00extra", b"\x00"] {
        let e = thrift::parse_headers(&Bytes::copy_from_slice(bad)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn raw_args_are_opaque_and_transport_headers_are_in_order() {
    // [SCHEME-2] [HDR-9] [HDR-10] [HDR-13] [HDR-15] cn and as first, then what the caller set
    let (_s, c) = setup().await;
    let mut req = CallRequest::new("svc", "raw").timeout(Duration::from_secs(5));
    req.options.set_routing_delegate("other");
    req.options.set_shard_key("key1");
    req.options.add_header("fd", "zone-a");
    // [DEV-17] `rk`, which only tchannel-go sends, passes through.
    req.options.add_header("rk", "group");
    let resp = c.call(req).await.unwrap();
    assert_eq!(
        &resp.arg3[..],
        b"cn=caller;as=raw;rd=other;sk=key1;fd=zone-a;rk=group;"
    );
    let mut req = CallRequest::new("svc", "raw").timeout(Duration::from_secs(5));
    req.options.set_retry_flags("n");
    let resp = c.call(req).await.unwrap();
    assert_eq!(&resp.arg3[..], b"cn=caller;as=raw;re=n;");
    // [HDR-12] the response carries the request's `as` and no `cn`.
    assert_eq!(resp.headers.get(b"as"), Some(&b"raw"[..]));
    assert_eq!(resp.headers.get(b"cn"), None);
}

#[tokio::test]
async fn bad_header_sets_are_refused_before_sending() {
    // [HDR-5]
    let (_s, c) = setup().await;
    let e = c
        .call(CallRequest::new("svc", "raw").header("a-key-longer-than-16", "v"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BAD_REQUEST);
    assert!(e.is_local());
    assert_eq!(c.table_sizes().iter().sum::<usize>(), 0);
}
