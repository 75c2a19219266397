//! A TChannel server written by hand, for tests of how tchan's calling side
//! copes with a peer that misbehaves: it does the handshake properly, then
//! hands every call req it reads to the test, which writes whatever frames
//! it likes back (a flood, a protocol violation, odd headers).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tchan::codec::FrameCodec;
use tchan::frame::{
    CallHead, CallReq, ChecksumType, Frame, Init, InitHeaders, MessageWriter, ResHead,
    ResponseCode, Tracing, TransportHeaders,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};
use tokio_util::codec::Decoder;

/// Where a test's answers go: bytes of whole frames, written in order.
#[derive(Clone)]
pub struct Wire {
    tx: mpsc::Sender<Bytes>,
    cancelled: Arc<Mutex<std::collections::HashSet<u32>>>,
}

impl Wire {
    /// Queues frames; false once the connection is gone.
    pub async fn send(&self, frames: Bytes) -> bool {
        self.tx.send(frames).await.is_ok()
    }

    /// True once the caller sent a cancel frame for `id`.
    pub async fn is_cancelled(&self, id: u32) -> bool {
        self.cancelled.lock().await.contains(&id)
    }
}

/// The listening server; it stops when dropped.
pub struct RawServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawServer {
    /// Listens on 127.0.0.1; `on_call` gets every call req (first frames
    /// only) with the wire of its connection.
    pub async fn start<F>(on_call: F) -> RawServer
    where
        F: Fn(CallReq, Wire) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let on_call = Arc::new(on_call);
        let task = tokio::spawn(async move {
            // Aborted with the server; finished ones are reaped as new ones
            // come, so a long test does not pile them up.
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((sock, _)) = listener.accept().await {
                while conns.try_join_next().is_some() {}
                let on_call = on_call.clone();
                conns.spawn(async move {
                    let (mut rd, mut wr) = sock.into_split();
                    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
                    let writer = tokio::spawn(async move {
                        while let Some(b) = rx.recv().await {
                            if wr.write_all(&b).await.is_err() {
                                return;
                            }
                        }
                    });
                    let wire = Wire {
                        tx,
                        cancelled: Arc::default(),
                    };
                    let mut codec = FrameCodec::new();
                    let mut buf = BytesMut::new();
                    loop {
                        loop {
                            match codec.decode(&mut buf) {
                                Ok(Some(Frame::InitReq(i))) => {
                                    let _ = wire.send(init_res(i.id)).await;
                                }
                                Ok(Some(Frame::CallReq(c))) => on_call(c, wire.clone()),
                                Ok(Some(Frame::Cancel(c))) => {
                                    wire.cancelled.lock().await.insert(c.id);
                                }
                                Ok(Some(Frame::PingReq(p))) => {
                                    let mut out = BytesMut::new();
                                    Frame::PingRes(tchan::frame::Ping::new(p.id))
                                        .encode(&mut out)
                                        .unwrap();
                                    let _ = wire.send(out.freeze()).await;
                                }
                                Ok(Some(_)) => {}
                                Ok(None) => break,
                                Err(_) => {
                                    writer.abort();
                                    return;
                                }
                            }
                        }
                        match rd.read_buf(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                    drop(wire);
                    let _ = writer.await;
                });
            }
        });
        RawServer { addr, task }
    }
}

fn init_res(id: u32) -> Bytes {
    let mut out = BytesMut::new();
    Frame::InitRes(Init {
        id,
        version: 2,
        headers: InitHeaders::from_pairs([
            ("host_port", "0.0.0.0:0"),
            ("process_name", "raw-server"),
        ])
        .unwrap(),
        trailing: Bytes::new(),
    })
    .encode(&mut out)
    .unwrap();
    out.freeze()
}

/// The method (arg1) of a call req whose arg1 fits its first frame.
pub fn method(c: &CallReq) -> Vec<u8> {
    c.args.iter().next().map(|a| a.to_vec()).unwrap_or_default()
}

/// A whole response to `id`: `headers` as given, args `["", arg2, arg3]`.
pub fn response(id: u32, headers: TransportHeaders, arg2: &[u8], arg3: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    let head = CallHead::Res(ResHead {
        code: ResponseCode::OK,
        tracing: Tracing::default(),
        headers,
    });
    MessageWriter::write_message(
        &mut out,
        id,
        head,
        ChecksumType::NONE,
        65535,
        [b"", arg2, arg3],
    )
    .unwrap();
    out.freeze()
}

/// A response to `id` that never ends: a call res then continue frames of
/// `piece` bytes of arg3, until the caller cancels `id`, `limit` bytes went
/// out, or the connection is gone, waiting `pause` after each piece (zero: at
/// full speed; more: a producer a reader can keep up with). True when it
/// stopped on a cancel.
pub async fn flood_paced(
    wire: Wire,
    id: u32,
    piece: usize,
    limit: u64,
    pause: std::time::Duration,
) -> bool {
    let head = CallHead::Res(ResHead {
        code: ResponseCode::OK,
        tracing: Tracing::default(),
        headers: TransportHeaders::strict([("as", "raw")]).unwrap(),
    });
    let mut w = MessageWriter::new(id, head, ChecksumType::NONE, 65535).unwrap();
    let mut out = BytesMut::new();
    w.end_arg(&mut out).unwrap();
    w.end_arg(&mut out).unwrap();
    let data = vec![0x5au8; piece];
    let mut sent = 0u64;
    while sent < limit {
        if wire.is_cancelled(id).await {
            return true;
        }
        w.write(&mut out, &data).unwrap();
        w.flush(&mut out);
        sent += piece as u64;
        if !wire.send(out.split().freeze()).await {
            return false;
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    w.end_arg(&mut out).unwrap();
    let _ = wire.send(out.freeze()).await;
    false
}
