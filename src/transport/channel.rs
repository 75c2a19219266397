//! The public entry point: a [`Channel`] listens, connects, and holds handlers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use super::client::Client;
use super::driver::Driver;
use super::handler::{Handler, Registry};
use super::shared::{DriverConfig, Shared, now};
use crate::Error;
use crate::frame::ErrorCode;
use crate::proto::{Connection, ConnectionConfig};

/// Options of a [`Channel`]; every limit has a default.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// Options of each connection (limits, timeouts, init headers).
    pub(crate) connection: ConnectionConfig,
    /// Most inbound connections at once; more are closed at accept. Default 4096.
    pub(crate) max_inbound_connections: usize,
    /// A peer that sends part of a frame and then nothing for this long is
    /// disconnected; so is one that reads nothing for this long while our
    /// write queue is over its hard limit. Default 30 s.
    pub(crate) read_timeout: Duration,
    /// Bytes queued for writing on one connection beyond which callers wait
    /// (up to their deadline) before adding a request. Reading goes on, so two
    /// peers that both write faster than they read cannot deadlock; only past
    /// four times this (bytes queued by answering the peer) does reading
    /// pause, and a peer that then reads nothing for `read_timeout` is
    /// disconnected. Default 8 MiB.
    pub(crate) max_write_queue: usize,
    /// Time a drain may take before connections are closed. Default 10 s.
    pub(crate) drain_timeout: Duration,
    /// Record per-call counters and latency histograms through the `metrics`
    /// facade (a no-op without an installed recorder). Default true.
    pub(crate) metrics: bool,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            connection: ConnectionConfig::default(),
            max_inbound_connections: 4096,
            read_timeout: Duration::from_secs(30),
            max_write_queue: 8 * 1024 * 1024,
            drain_timeout: Duration::from_secs(10),
            metrics: true,
        }
    }
}

impl ChannelConfig {
    /// Options of each connection (limits, timeouts, init headers).
    pub fn connection(&self) -> &ConnectionConfig {
        &self.connection
    }

    /// Sets [`ChannelConfig::connection`].
    pub fn set_connection(&mut self, value: ConnectionConfig) -> &mut Self {
        self.connection = value;
        self
    }

    /// The options of each connection, to change one in place.
    pub fn connection_mut(&mut self) -> &mut ConnectionConfig {
        &mut self.connection
    }

    /// Most inbound connections at once; more are closed at accept. Default 4096.
    pub fn max_inbound_connections(&self) -> usize {
        self.max_inbound_connections
    }

    /// Sets [`ChannelConfig::max_inbound_connections`].
    pub fn set_max_inbound_connections(&mut self, value: usize) -> &mut Self {
        self.max_inbound_connections = value;
        self
    }

    /// A peer that sends part of a frame and then nothing for this long is
    /// disconnected; so is one that reads nothing for this long while our
    /// write queue is over its hard limit. Default 30 s.
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// Sets [`ChannelConfig::read_timeout`].
    pub fn set_read_timeout(&mut self, value: Duration) -> &mut Self {
        self.read_timeout = value;
        self
    }

    /// Bytes queued for writing on one connection beyond which callers wait
    /// (up to their deadline) before adding a request. Reading goes on, so two
    /// peers that both write faster than they read cannot deadlock; only past
    /// four times this (bytes queued by answering the peer) does reading
    /// pause, and a peer that then reads nothing for `read_timeout` is
    /// disconnected. Default 8 MiB.
    pub fn max_write_queue(&self) -> usize {
        self.max_write_queue
    }

    /// Sets [`ChannelConfig::max_write_queue`].
    pub fn set_max_write_queue(&mut self, value: usize) -> Result<&mut Self, Error> {
        if value == 0 {
            return Err(Error::new(
                ErrorCode::BAD_REQUEST,
                "max_write_queue must be at least 1 byte",
            ));
        }
        self.max_write_queue = value;
        Ok(self)
    }

    /// Time a drain may take before connections are closed. Default 10 s.
    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    /// Sets [`ChannelConfig::drain_timeout`].
    pub fn set_drain_timeout(&mut self, value: Duration) -> &mut Self {
        self.drain_timeout = value;
        self
    }

    /// Record per-call counters and latency histograms through the `metrics`
    /// facade (a no-op without an installed recorder). Default true.
    pub fn metrics(&self) -> bool {
        self.metrics
    }

    /// Sets [`ChannelConfig::metrics`].
    pub fn set_metrics(&mut self, value: bool) -> &mut Self {
        self.metrics = value;
        self
    }
}

struct ChannelInner {
    name: Arc<str>,
    config: Mutex<ChannelConfig>,
    registry: Arc<Registry>,
    #[cfg(feature = "thrift")]
    meta: Arc<super::meta::MetaState>,
    conns: Mutex<Vec<Weak<Shared>>>,
    inbound: AtomicUsize,
    active: AtomicUsize,
    idle: Notify,
    stop_accepting: CancellationToken,
    /// Runtimes that accepted connections are spread over (round robin).
    workers: Mutex<Vec<tokio::runtime::Handle>>,
    next_worker: AtomicUsize,
}

/// A TChannel endpoint: named by the service it calls as (`cn`), it serves
/// registered handlers on the connections it accepts or makes, and makes calls.
#[derive(Clone)]
pub struct Channel {
    inner: Arc<ChannelInner>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.inner.name)
            .finish()
    }
}

impl Channel {
    /// A channel with default options.
    pub fn new(name: impl Into<String>) -> Channel {
        Channel::with_config(name, ChannelConfig::default())
    }

    /// A channel with the given options.
    pub fn with_config(name: impl Into<String>, config: ChannelConfig) -> Channel {
        let name: String = name.into();
        #[cfg(feature = "thrift")]
        let meta = Arc::new(super::meta::MetaState::default());
        #[cfg(feature = "thrift")]
        let registry = {
            let m = meta.clone();
            Registry::with_meta(move |req: crate::Request| super::meta::handle(m.clone(), req))
        };
        #[cfg(not(feature = "thrift"))]
        let registry = Registry::default();
        Channel {
            inner: Arc::new(ChannelInner {
                name: name.into(),
                config: Mutex::new(config),
                registry: Arc::new(registry),
                #[cfg(feature = "thrift")]
                meta,
                conns: Mutex::new(Vec::new()),
                inbound: AtomicUsize::new(0),
                active: AtomicUsize::new(0),
                idle: Notify::new(),
                stop_accepting: CancellationToken::new(),
                workers: Mutex::new(Vec::new()),
                next_worker: AtomicUsize::new(0),
            }),
        }
    }

    /// The service name this channel calls as.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    fn config(&self) -> ChannelConfig {
        self.inner
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Registers a handler for (service, method). Args arrive whole.
    pub fn register(&self, service: &str, method: &str, handler: impl Handler) {
        self.inner.registry.insert(service, method, handler, false);
    }

    /// Registers a handler whose arg3 arrives as a stream of chunks
    /// ([`super::Body::Stream`]), as soon as arg1 and arg2 are complete.
    pub fn register_streaming(&self, service: &str, method: &str, handler: impl Handler) {
        self.inner.registry.insert(service, method, handler, true);
    }

    /// Spreads the connections this channel accepts over these runtimes,
    /// round robin (each connection then stays on its runtime's thread). With
    /// one current-thread runtime per core, a server uses every core without
    /// moving calls between threads. Without workers, connections run on the
    /// runtime that accepted them.
    pub fn spread_connections_over(&self, workers: Vec<tokio::runtime::Handle>) {
        *self.inner.workers.lock().unwrap_or_else(|e| e.into_inner()) = workers;
    }

    /// Listens on `addr` and serves every connection accepted. Returns the
    /// bound address (useful with port 0). Our `host_port` becomes that address.
    pub async fn listen(&self, addr: impl ToSocketAddrs) -> Result<SocketAddr, Error> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        {
            let mut c = self.inner.config.lock().unwrap_or_else(|e| e.into_inner());
            c.connection.host_port = local.to_string();
        }
        let this = self.clone();
        let stop = self.inner.stop_accepting.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop.cancelled() => return,
                };
                let (sock, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let config = this.config();
                if this.inner.inbound.load(Ordering::Relaxed) >= config.max_inbound_connections {
                    tracing::warn!(%peer, "too many inbound connections; closing");
                    drop(sock);
                    continue;
                }
                let _ = sock.set_nodelay(true);
                this.inner.inbound.fetch_add(1, Ordering::Relaxed);
                let worker = {
                    let w = this.inner.workers.lock().unwrap_or_else(|e| e.into_inner());
                    (!w.is_empty()).then(|| {
                        w[this.inner.next_worker.fetch_add(1, Ordering::Relaxed) % w.len()].clone()
                    })
                };
                match worker {
                    None => {
                        let conn = Connection::acceptor(config.connection.clone(), now());
                        drop(this.start(sock, conn, Some(peer), &config, true, None));
                    }
                    Some(handle) => {
                        // The socket moves to the worker's reactor there.
                        let this = this.clone();
                        let std_sock = match sock.into_std() {
                            Ok(s) => s,
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot hand a socket to a worker");
                                this.inner.inbound.fetch_sub(1, Ordering::Relaxed);
                                continue;
                            }
                        };
                        handle.spawn(async move {
                            match TcpStream::from_std(std_sock) {
                                Ok(sock) => {
                                    let conn =
                                        Connection::acceptor(config.connection.clone(), now());
                                    drop(this.start(sock, conn, Some(peer), &config, true, None));
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "worker could not adopt a socket");
                                    this.inner.inbound.fetch_sub(1, Ordering::Relaxed);
                                }
                            }
                        });
                    }
                }
            }
        });
        Ok(local)
    }

    /// Starts a driver for `io` on the current runtime.
    fn start<S>(
        &self,
        io: S,
        conn: Connection,
        peer: Option<SocketAddr>,
        config: &ChannelConfig,
        inbound: bool,
        ready: Option<oneshot::Sender<Result<crate::proto::PeerInfo, Error>>>,
    ) -> Arc<Shared>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Shared::new(
            conn,
            DriverConfig {
                read_timeout: config.read_timeout,
                max_write_queue: config.max_write_queue,
                metrics: config.metrics,
            },
            peer,
        );
        // Registered before the driver runs, so a fast handshake cannot
        // finish before anyone waits for it.
        if let Some(tx) = ready {
            shared.lock().ready.push(tx);
        }
        {
            let mut conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
            conns.retain(|w| w.strong_count() > 0);
            conns.push(Arc::downgrade(&shared));
        }
        self.inner.active.fetch_add(1, Ordering::AcqRel);
        let driver = Driver::new(io, shared.clone(), self.inner.registry.clone());
        let inner = self.inner.clone();
        tokio::spawn(async move {
            driver.await;
            if inbound {
                inner.inbound.fetch_sub(1, Ordering::Relaxed);
            }
            if inner.active.fetch_sub(1, Ordering::AcqRel) == 1 {
                inner.idle.notify_waiters();
            }
        });
        shared
    }

    /// Connects to a peer and finishes the handshake.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> Result<Client, Error> {
        let sock = TcpStream::connect(addr)
            .await
            .map_err(|e| Error::new(ErrorCode::NETWORK, format!("connect: {e}")))?;
        let _ = sock.set_nodelay(true);
        let peer = sock.peer_addr().ok();
        self.connect_io(sock, peer).await
    }

    /// Runs the initiator side of a connection over any byte stream (for
    /// example `tokio::io::duplex` in tests) and finishes the handshake.
    pub async fn connect_io<S>(&self, io: S, peer: Option<SocketAddr>) -> Result<Client, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let config = self.config();
        let conn = Connection::initiator(config.connection.clone(), now());
        let (tx, rx) = oneshot::channel();
        let shared = self.start(io, conn, peer, &config, false, Some(tx));
        match rx.await {
            Ok(Ok(_info)) => Ok(Client {
                shared,
                caller: self.inner.name.clone(),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::new(ErrorCode::NETWORK, "connection closed")),
        }
    }

    /// Serves the acceptor side of a connection over any byte stream; returns
    /// a client handle for calls back to that peer.
    pub fn accept_io<S>(&self, io: S) -> Client
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let config = self.config();
        let conn = Connection::acceptor(config.connection.clone(), now());
        let shared = self.start(io, conn, None, &config, false, None);
        Client {
            shared,
            caller: self.inner.name.clone(),
        }
    }

    /// A connection that the peer at `host_port` opened to this channel and
    /// announced that address on, still open for calls: calls to that peer can
    /// reuse it instead of opening another (the peer pool's default connector
    /// does).
    pub fn inbound_client(&self, host_port: &str) -> Option<Client> {
        let conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.iter().filter_map(Weak::upgrade).find_map(|shared| {
            let usable = {
                let st = shared.lock();
                st.conn.is_acceptor()
                    && st.conn.accepts_new_calls()
                    && st.conn.peer().is_some_and(|p| {
                        !crate::frame::is_ephemeral(&p.host_port) && p.host_port == host_port
                    })
            };
            usable.then(|| Client {
                shared,
                caller: self.inner.name.clone(),
            })
        })
    }

    /// Every connection of this channel not yet dropped, in both directions
    /// (those it accepted and those it made), as handles: to inspect them or
    /// close one.
    pub fn connections(&self) -> Vec<Client> {
        let conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns
            .iter()
            .filter_map(Weak::upgrade)
            .map(|shared| Client {
                shared,
                caller: self.inner.name.clone(),
            })
            .collect()
    }

    /// [`Client::table_sizes`] added up over [`Channel::connections`]: all
    /// zero once no call is in flight and remembered ids have aged out (a
    /// test that proves nothing leaks waits for that).
    pub fn table_sizes(&self) -> Vec<usize> {
        let mut total: Vec<usize> = Vec::new();
        for c in self.connections() {
            let sizes = c.table_sizes();
            if total.len() < sizes.len() {
                total.resize(sizes.len(), 0);
            }
            for (t, n) in total.iter_mut().zip(sizes) {
                *t += n;
            }
        }
        total
    }

    /// Stops accepting and closes every connection now, without draining:
    /// calls in flight on them fail with a network error. The listening
    /// socket is released as soon as the accept loop sees the stop.
    /// [`Channel::drain`] is the graceful way.
    pub fn close(&self) {
        #[cfg(feature = "thrift")]
        self.inner.meta.stopped();
        self.inner.stop_accepting.cancel();
        for c in self.connections() {
            c.close();
        }
    }

    /// Number of connections whose drivers are still running.
    pub fn active_connections(&self) -> usize {
        self.inner.active.load(Ordering::Acquire)
    }

    /// Graceful drain: stop accepting, decline new calls on every connection,
    /// let calls in flight finish (up to the drain timeout), then close them.
    /// Returns when every connection is closed.
    pub async fn drain(&self) {
        #[cfg(feature = "thrift")]
        self.inner.meta.draining();
        self.inner.stop_accepting.cancel();
        let timeout = self.config().drain_timeout;
        let conns: Vec<Arc<Shared>> = {
            let conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
            conns.iter().filter_map(Weak::upgrade).collect()
        };
        let start = now();
        for s in &conns {
            {
                let mut st = s.lock();
                st.conn.drain(start, start + timeout);
                s.refresh_flags(&st.conn);
            }
            s.driver.wake();
        }
        loop {
            let idle = self.inner.idle.notified();
            if self.inner.active.load(Ordering::Acquire) == 0 {
                #[cfg(feature = "thrift")]
                self.inner.meta.stopped();
                return;
            }
            idle.await;
        }
    }

    /// Adds an application health check to `Meta::health` (feature
    /// `thrift`): `Err(message)` makes the channel report not ok, with that
    /// message. The channel's own state still applies (not ok for traffic
    /// while draining, not ok once stopped).
    #[cfg(feature = "thrift")]
    pub fn set_health_check(
        &self,
        check: impl Fn(super::meta::HealthKind) -> Result<(), String> + Send + Sync + 'static,
    ) {
        self.inner.meta.set_check(Some(Arc::new(check)));
    }

    /// The IDLs `Meta::thriftIDL` reports (feature `thrift`): file name to
    /// contents, and the entry point's file name. None by default (an empty
    /// map and `""`).
    #[cfg(feature = "thrift")]
    pub fn set_thrift_idls(&self, idls: Vec<(String, String)>, entry_point: impl Into<String>) {
        self.inner.meta.set_idls(idls, entry_point.into());
    }
}
