//! tchan's typed Thrift example: `build.rs` generates, from
//! `idl/echo.thrift`, pilota's types and tchan's `EchoClient`, `EchoServer`
//! and `register_echo`; this program serves the service and calls it.
//!
//! `cargo run --manifest-path examples/thrift-echo/Cargo.toml` (run by
//! `.ci/run`): exits 0 when every call answered what it should.

include!(concat!(env!("OUT_DIR"), "/echo.rs"));
include!(concat!(env!("OUT_DIR"), "/everything.rs"));

use std::sync::Arc;

use echo::echo::{
    EchoClient, EchoEchoException, EchoError, EchoRequest, EchoResponse, EchoServer, Mood,
    register_echo,
};
use tchan::idl::generated::{CallError, ServerError};

use everything::everything::{
    Everything, KitchenClient, KitchenEchoException, KitchenServer, register_kitchen,
};

/// `Kitchen` from the IDL with every Thrift type: echoes.
struct Kitchen;

impl KitchenServer for Kitchen {
    async fn ping(&self) -> Result<pilota::FastStr, ServerError<std::convert::Infallible>> {
        Ok("pong".into())
    }

    async fn echo(&self, e: Everything) -> Result<Everything, ServerError<KitchenEchoException>> {
        Ok(e)
    }

    async fn nothing(&self) -> Result<(), ServerError<std::convert::Infallible>> {
        Ok(())
    }

    async fn fire(
        &self,
        _what: pilota::FastStr,
    ) -> Result<(), ServerError<std::convert::Infallible>> {
        Ok(())
    }

    async fn add(&self, a: i64, b: i64) -> Result<i64, ServerError<std::convert::Infallible>> {
        Ok(a.wrapping_add(b))
    }
}

/// JSON made comparable: arrays sorted (sets and maps come back in hash
/// order), the optional field with an IDL default removed when it holds the
/// default (pilota fills it in on decode, as node does).
fn normalize(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Array(a) => {
            a.iter_mut().for_each(normalize);
            a.sort_by_key(|x| x.to_string());
        }
        serde_json::Value::Object(o) => {
            if o.get("where") == Some(&serde_json::json!({"x": 1, "y": 2})) {
                o.remove("where");
            }
            o.values_mut().for_each(normalize);
        }
        _ => {}
    }
}

/// Node's golden values (`interop/fixtures/thrift/thrift_types.json`)
/// through pilota's generated `Everything`: decoded, echoed by the generated
/// server through the generated client, re-encoded: the same value.
async fn golden(kitchen: &KitchenClient) -> Result<usize, Box<dyn std::error::Error>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let fx: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(format!(
        "{root}/interop/fixtures/thrift/thrift_types.json"
    ))?)?;
    let idl = tchan::idl::Idl::load(std::path::Path::new(&format!(
        "{root}/tests/data/thrift/everything.thrift"
    )))?;
    let fields = idl
        .structs
        .iter()
        .find(|s| s.name == "Everything")
        .ok_or("Everything")?
        .fields
        .clone();
    let mut n = 0;
    for c in fx["cases"].as_array().ok_or("cases")? {
        if c["struct"] != "Everything" {
            continue;
        }
        let bytes = hex::decode(c["hex"].as_str().ok_or("hex")?)?;
        tchan::idl::decode_fields(&idl, "Everything", &fields, &bytes)?;
        let mut b = bytes::Bytes::from(bytes);
        let value = <Everything as pilota::thrift::Message>::decode(
            &mut pilota::thrift::binary::TBinaryProtocol::new(&mut b, false),
        )?;
        let back = kitchen.echo(value.clone()).await?;
        assert_eq!(
            back, value,
            "echoed through the generated client and server"
        );
        let mut out = pilota::BytesMut::new();
        pilota::thrift::Message::encode(
            &back,
            &mut pilota::thrift::binary::TBinaryProtocol::new(&mut out, false),
        )?;
        let mut got = tchan::idl::decode_fields(&idl, "Everything", &fields, &out)?;
        let mut want = c["json"].clone();
        normalize(&mut got);
        normalize(&mut want);
        assert_eq!(got, want, "node's {} through pilota", c["hex"]);
        n += 1;
    }
    Ok(n)
}

/// The server: repeats the message, refuses an empty one.
struct Repeater;

impl EchoServer for Repeater {
    async fn echo(&self, req: EchoRequest) -> Result<EchoResponse, ServerError<EchoEchoException>> {
        if req.message.is_empty() {
            return Err(ServerError::Exception(EchoEchoException::Failure(
                EchoError {
                    reason: "empty message".into(),
                },
            )));
        }
        let times = req.times.unwrap_or(1).max(0) as usize;
        let loud = req.mood == Some(Mood::LOUD);
        let mut message = req.message.repeat(times);
        if loud {
            message = message.to_uppercase();
        }
        let length = message.len() as i64;
        Ok(EchoResponse {
            message: message.into(),
            length,
        })
    }

    async fn ping(&self) -> Result<(), ServerError<std::convert::Infallible>> {
        Ok(())
    }

    async fn version(&self) -> Result<pilota::FastStr, ServerError<std::convert::Infallible>> {
        Ok("1.0".into())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = tchan::Channel::new("echo");
    register_echo(&server, "echo", Arc::new(Repeater));
    let addr = server.listen("127.0.0.1:0").await?;

    let client = EchoClient::new(tchan::Channel::new("example").connect(addr).await?, "echo");
    let r = client
        .echo(EchoRequest {
            message: "ab".into(),
            times: Some(3),
            mood: Some(Mood::LOUD),
            tags: None,
        })
        .await?;
    assert_eq!((&*r.message, r.length), ("ABABAB", 6));
    println!("echo: {} ({} bytes)", r.message, r.length);

    match client
        .echo(EchoRequest {
            message: "".into(),
            times: None,
            mood: None,
            tags: None,
        })
        .await
    {
        Err(CallError::Exception(EchoEchoException::Failure(e))) => {
            println!("declared exception: {}", e.reason);
        }
        other => panic!("expected the declared exception, got {other:?}"),
    }
    client.ping().await?;
    assert_eq!(&*client.version().await?, "1.0");
    println!("ping, version: ok");

    // Hostile bytes never reach pilota's decoder: tchan checks them against
    // the IDL first (SCHEME-17). A request whose string claims 2 GiB:
    let raw = tchan::Channel::new("raw").connect(addr).await?;
    let bad = bytes::Bytes::from_static(b"\x0c\x00\x01\x0b\x00\x01\x7f\xff\xff\xff\x00\x00");
    let e = tchan::scheme::thrift::call(&raw, "echo", "Echo::echo", &[], bad, Default::default())
        .await
        .expect_err("a struct that does not decode is refused");
    assert_eq!(e.code(), tchan::frame::ErrorCode::BAD_REQUEST);
    println!("hostile request: {e}");
    // A server whose answer does not decode: the typed client gets an error,
    // not a panic.
    let liar = tchan::Channel::new("liar");
    liar.register(
        "liar",
        "Echo::echo",
        tchan::scheme::thrift::handler(|_req: tchan::scheme::thrift::ThriftRequest| async {
            Ok(tchan::scheme::thrift::Reply::Ok(
                Vec::new(),
                bytes::Bytes::from_static(b"\x0c\x00\x00\x0b\x00\x01\x00\x00\x00\x09ab"),
            ))
        }),
    );
    let liar_addr = liar.listen("127.0.0.1:0").await?;
    let to_liar = EchoClient::new(
        tchan::Channel::new("example").connect(liar_addr).await?,
        "liar",
    );
    match to_liar
        .echo(EchoRequest {
            message: "x".into(),
            times: None,
            mood: None,
            tags: None,
        })
        .await
    {
        Err(CallError::Call(e)) => {
            assert_eq!(e.code(), tchan::frame::ErrorCode::BAD_REQUEST);
            println!("undecodable answer: {e}");
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    // Every Thrift type, against what node encoded.
    register_kitchen(&server, "kitchen", Arc::new(Kitchen));
    let kitchen = KitchenClient::new(
        tchan::Channel::new("example").connect(addr).await?,
        "kitchen",
    );
    assert_eq!(
        &*kitchen.ping().await?,
        "pong",
        "inherited from shared.Base"
    );
    assert_eq!(kitchen.add(i64::MAX, 1).await?, i64::MIN);
    kitchen.nothing().await?;
    let n = golden(&kitchen).await?;
    assert!(n >= 20, "{n} golden values");
    println!("{n} values node encoded: decoded, echoed and re-encoded through the generated code");
    server.close();
    Ok(())
}
