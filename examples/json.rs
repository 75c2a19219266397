//! The json arg scheme: a handler that takes and returns JSON values, and a
//! typed call to it. `cargo run --example json`.

use serde_json::json;
use tchan::scheme::json::{self, Reply};
use tchan::{CallOptions, Channel, Error};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let server = Channel::new("math");
    server.register(
        "math",
        "divide",
        json::handler(|req| async move {
            let (a, b) = (req.body["a"].as_f64(), req.body["b"].as_f64());
            Ok(match (a, b) {
                (Some(_), Some(0.0)) => {
                    Reply::AppError(vec![], json!({"error": "division by zero"}))
                }
                (Some(a), Some(b)) => Reply::Ok(vec![], json!({"quotient": a / b})),
                _ => Reply::AppError(vec![], json!({"error": "a and b must be numbers"})),
            })
        }),
    );
    let addr = server.listen("127.0.0.1:0").await?;
    let client = Channel::new("example").connect(addr).await?;

    for body in [json!({"a": 7, "b": 2}), json!({"a": 1, "b": 0})] {
        let reply = json::call(
            &client,
            "math",
            "divide",
            &[],
            &body,
            CallOptions::default(),
        )
        .await?;
        println!("{body} -> {reply:?}");
    }
    let ok = json::call(
        &client,
        "math",
        "divide",
        &[],
        &json!({"a": 9, "b": 3}),
        CallOptions::default(),
    )
    .await?;
    assert_eq!(ok, Reply::Ok(vec![], json!({"quotient": 3.0})));
    Ok(())
}
