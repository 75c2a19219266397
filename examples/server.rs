//! A server with three handlers — a plain one, one that fails with an error
//! frame, one that answers an application error — and a client that calls
//! each once. `cargo run --example server` (add `--listen` to keep serving:
//! `cargo run --example server -- --listen 127.0.0.1:4040`).

use std::time::Duration;

use tchan::frame::ErrorCode;
use tchan::{CallRequest, Channel, Error, Request, Response};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let server = Channel::new("greeter");
    server.register("greeter", "hello", |req: Request| async move {
        let name = req.arg3.into_bytes().await?;
        let text = format!("hello, {}", String::from_utf8_lossy(&name));
        Ok(Response::ok("", text))
    });
    server.register("greeter", "refuse", |_req: Request| async move {
        Err::<Response, _>(Error::new(ErrorCode::DECLINED, "not taking calls"))
    });
    server.register("greeter", "unknown-user", |req: Request| async move {
        Ok(Response::app_error(req.arg2, "no such user"))
    });

    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("--listen") {
        let at = args.next().unwrap_or_else(|| "127.0.0.1:4040".into());
        let addr = server.listen(at.as_str()).await?;
        println!("listening on {addr}; Ctrl-C drains and exits");
        let _ = tokio::signal::ctrl_c().await;
        server.drain().await;
        return Ok(());
    }

    let addr = server.listen("127.0.0.1:0").await?;
    let client = Channel::new("example").connect(addr).await?;
    let call = |method: &'static str| {
        CallRequest::new("greeter", method)
            .arg3("world")
            .timeout(Duration::from_secs(1))
    };

    let resp = client.call(call("hello")).await?;
    println!("hello: {}", String::from_utf8_lossy(&resp.arg3));
    assert_eq!(&resp.arg3[..], b"hello, world");

    let err = client.call(call("refuse")).await.unwrap_err();
    println!(
        "refuse: {err} (code {}, from the peer: {})",
        err.code().name(),
        !err.is_local()
    );
    assert_eq!(err.code(), ErrorCode::DECLINED);

    let resp = client.call(call("unknown-user")).await?;
    println!(
        "unknown-user: application error {:?}",
        String::from_utf8_lossy(&resp.arg3)
    );
    assert!(resp.is_application_error());

    let err = client.call(call("missing")).await.unwrap_err();
    println!("missing: {err}");
    assert_eq!(err.code(), ErrorCode::BAD_REQUEST);
    Ok(())
}
