//! Streamed args both ways: the client sends 8 MiB as a stream of chunks,
//! the server hashes it as it arrives and streams back one line per MiB;
//! neither side ever holds the whole body. `cargo run --example streaming`.

use bytes::Bytes;
use futures::StreamExt;
use tchan::{Body, CallRequest, Channel, Error, Request, Response};

const MIB: usize = 1024 * 1024;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let server = Channel::new("store");
    server.register_streaming("store", "put", |req: Request| async move {
        let mut chunks = req.arg3.into_stream();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Error>>(4);
        tokio::spawn(async move {
            let (mut total, mut sum, mut next_report) = (0usize, 0u64, MIB);
            while let Some(chunk) = chunks.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                total += chunk.len();
                sum = chunk
                    .iter()
                    .fold(sum, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)));
                while total >= next_report {
                    let line = format!(
                        "{} MiB received, running sum {sum:016x}\n",
                        next_report / MIB
                    );
                    if tx.send(Ok(Bytes::from(line))).await.is_err() {
                        return;
                    }
                    next_report += MIB;
                }
            }
            let _ = tx
                .send(Ok(Bytes::from(format!("done: {total} bytes\n"))))
                .await;
        });
        let out =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
        Ok(Response::ok("", Body::from_stream(out)))
    });
    let addr = server.listen("127.0.0.1:0").await?;
    let client = Channel::new("example").connect(addr).await?;

    let upload = futures::stream::iter((0..128).map(|i| Ok(Bytes::from(vec![i as u8; 64 * 1024]))));
    let resp = client
        .call_streaming(
            CallRequest::new("store", "put")
                .arg3(Body::from_stream(upload))
                .timeout(std::time::Duration::from_secs(30)),
        )
        .await?;
    let mut lines = 0;
    let mut reply = resp.arg3.into_stream();
    while let Some(chunk) = reply.next().await {
        let chunk = chunk?;
        print!("{}", String::from_utf8_lossy(&chunk));
        lines += chunk.iter().filter(|&&b| b == b'\n').count();
    }
    assert_eq!(lines, 9, "8 progress lines and the total");
    Ok(())
}
