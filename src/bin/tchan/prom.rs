//! `--metrics-listen`: the Prometheus text format at `/metrics`, served by
//! metrics-exporter-prometheus (the `metrics` facade's exporter).

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

/// Installs the exporter as the process's recorder, listening on `addr`
/// (port 0 picks a free port). Returns the address it listens on.
pub(crate) fn listen(addr: &str) -> Result<SocketAddr, String> {
    let mut target = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    if target.port() == 0 {
        // The exporter binds the exact address it is given: find a free port
        // first (another process could take it in between; then the bind
        // below fails and says so).
        let probe = TcpListener::bind(target).map_err(|e| format!("{addr}: {e}"))?;
        target = probe.local_addr().map_err(|e| format!("{addr}: {e}"))?;
    }
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(target)
        .install()
        .map_err(|e| format!("{target}: {e}"))?;
    Ok(target)
}
