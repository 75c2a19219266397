//! How the pool opens connections: the [`Connector`] trait and its TCP
//! default.

use futures::future::BoxFuture;

use crate::{Channel, Client, Error};

/// Opens connections for the pool. The default, [`TcpConnector`], is
/// [`Channel::connect`]; tests plug in in-memory streams, and a caller may
/// add TLS or a proxy here.
pub trait Connector: Send + Sync + 'static {
    /// Connects to `addr` (`host:port`) and finishes the handshake.
    fn connect(&self, channel: &Channel, addr: &str) -> BoxFuture<'static, Result<Client, Error>>;
}

/// Reuses a connection the peer opened to us when there is one
/// ([`Channel::inbound_client`]: same announced `host_port`, still open), and
/// otherwise connects over TCP with [`Channel::connect`] (which resolves host
/// names).
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    fn connect(&self, channel: &Channel, addr: &str) -> BoxFuture<'static, Result<Client, Error>> {
        if let Some(client) = channel.inbound_client(addr.trim()) {
            return Box::pin(async move { Ok(client) });
        }
        let channel = channel.clone();
        let addr = addr.to_string();
        Box::pin(async move { channel.connect(addr).await })
    }
}
