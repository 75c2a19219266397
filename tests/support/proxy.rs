//! A TCP proxy for fault injection: it forwards to one upstream address and,
//! on command, delays, drops, resets or blackholes connections, both the ones
//! it holds and the ones it accepts next.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the proxy does to connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward bytes both ways.
    Pass,
    /// Forward, each chunk this much later (latency; throughput is kept).
    Delay(Duration),
    /// Close connections cleanly (FIN): the open ones now, new ones at accept.
    Drop,
    /// Reset connections (RST): the open ones now, new ones at accept.
    Reset,
    /// Accept and read, but forward and answer nothing; open connections
    /// stop forwarding.
    Blackhole,
}

/// A running proxy. Dropping it resets every connection it holds.
pub struct Proxy {
    addr: SocketAddr,
    fault: watch::Sender<Fault>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (fault, rx) = watch::channel(Fault::Pass);
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(sock, upstream, rx.clone()));
            }
        });
        Proxy {
            addr,
            fault,
            accepted,
            task,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes what happens to connections, open and new.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.fault.send_replace(Fault::Reset);
    }
}

async fn serve(client: TcpStream, upstream: SocketAddr, mut fault: watch::Receiver<Fault>) {
    let now = *fault.borrow_and_update();
    match now {
        Fault::Reset => {
            let _ = client.set_zero_linger();
            return;
        }
        Fault::Drop => return,
        Fault::Blackhole => {
            let (rd, _wr) = client.into_split();
            swallow(rd, fault).await;
            return;
        }
        Fault::Pass | Fault::Delay(_) => {}
    }
    let Ok(up) = TcpStream::connect(upstream).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (ur, uw) = up.into_split();
    tokio::spawn(pump(cr, uw, fault.clone()));
    tokio::spawn(pump(ur, cw, fault));
}

/// Reads and discards until the fault says to close (or the proxy is gone).
async fn swallow(mut rd: OwnedReadHalf, mut fault: watch::Receiver<Fault>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            r = rd.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { return },
            c = fault.changed() => {
                let f = *fault.borrow();
                if c.is_err() || f == Fault::Reset {
                    let _ = rd.as_ref().set_zero_linger();
                    return;
                }
                if f == Fault::Drop {
                    return;
                }
            }
        }
    }
}

/// Copies one direction. Chunks are queued with the time they are due, and a
/// writer task sends each when it is due, so a delay adds latency without
/// slowing the stream down.
async fn pump(mut rd: OwnedReadHalf, wr: OwnedWriteHalf, mut fault: watch::Receiver<Fault>) {
    let (tx, rx) = mpsc::unbounded_channel::<(Instant, Option<Bytes>)>();
    let writer = tokio::spawn(write_due(wr, rx));
    let mut buf = vec![0u8; 64 * 1024];
    let mut forwarding = !matches!(*fault.borrow(), Fault::Blackhole);
    loop {
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    let _ = tx.send((Instant::now(), None));
                    break;
                }
                Ok(n) => {
                    if forwarding {
                        let delay = match *fault.borrow() {
                            Fault::Delay(d) => d,
                            _ => Duration::ZERO,
                        };
                        let chunk = Bytes::copy_from_slice(&buf[..n]);
                        let _ = tx.send((Instant::now() + delay, Some(chunk)));
                    }
                }
            },
            c = fault.changed() => {
                let f = *fault.borrow();
                if c.is_err() || f == Fault::Reset {
                    let _ = rd.as_ref().set_zero_linger();
                    writer.abort();
                    return;
                }
                match f {
                    Fault::Drop => {
                        writer.abort();
                        return;
                    }
                    Fault::Blackhole => forwarding = false,
                    Fault::Pass | Fault::Delay(_) => forwarding = true,
                    Fault::Reset => {}
                }
            }
        }
    }
    let _ = writer.await;
}

async fn write_due(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<(Instant, Option<Bytes>)>,
) {
    while let Some((due, chunk)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        match chunk {
            Some(b) => {
                if wr.write_all(&b).await.is_err() {
                    return;
                }
            }
            None => {
                let _ = wr.shutdown().await;
                return;
            }
        }
    }
}
