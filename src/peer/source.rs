//! Where the pool's peer list comes from: a static list, a file re-read when
//! it changes, or anything that implements [`PeerSource`] (DNS, Consul, ...).

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::BoxFuture;

/// A feed of peer lists. Each list is the whole current set of peers
/// (`host:port` strings); the pool adds the new ones and removes the ones
/// missing ([`super::PeerPool::set_peers`]).
///
/// ```
/// use futures::future::BoxFuture;
/// use tchan::peer::PeerSource;
///
/// /// Resolves a name every 30 s.
/// struct Dns(String);
///
/// impl PeerSource for Dns {
///     fn next(&mut self) -> BoxFuture<'_, Option<Vec<String>>> {
///         Box::pin(async move {
///             tokio::time::sleep(std::time::Duration::from_secs(30)).await;
///             let addrs = tokio::net::lookup_host(self.0.as_str()).await.ok()?;
///             Some(addrs.map(|a| a.to_string()).collect())
///         })
///     }
/// }
/// ```
pub trait PeerSource: Send + 'static {
    /// Waits for the next list. `None` ends the feed (the pool keeps the last
    /// list).
    fn next(&mut self) -> BoxFuture<'_, Option<Vec<String>>>;
}

/// A fixed list, delivered once.
#[derive(Debug, Clone)]
pub struct StaticPeers(Option<Vec<String>>);

impl StaticPeers {
    /// This list.
    pub fn new(peers: impl IntoIterator<Item = impl Into<String>>) -> StaticPeers {
        StaticPeers(Some(peers.into_iter().map(Into::into).collect()))
    }
}

impl PeerSource for StaticPeers {
    fn next(&mut self) -> BoxFuture<'_, Option<Vec<String>>> {
        let list = self.0.take();
        Box::pin(async move { list })
    }
}

/// A file of peers, re-read every `interval`; a new list is delivered when
/// its contents change.
///
/// The file holds either a JSON array of `"host:port"` strings (the format of
/// tchannel-node's and Hyperbahn's host files) or one `host:port` per line,
/// with blank lines and `#` comments ignored. While the file cannot be read
/// or parsed, the last good list stays in force (a warning is logged).
/// The file is small and read with blocking I/O on the runtime's thread.
#[derive(Debug, Clone)]
pub struct PeerFile {
    path: PathBuf,
    interval: Duration,
    last: Option<Vec<String>>,
    started: bool,
    warned: bool,
}

impl PeerFile {
    /// Watches `path`, checking every second.
    pub fn new(path: impl Into<PathBuf>) -> PeerFile {
        PeerFile {
            path: path.into(),
            interval: Duration::from_secs(1),
            last: None,
            started: false,
            warned: false,
        }
    }

    /// Checks every `interval` instead.
    pub fn interval(mut self, interval: Duration) -> PeerFile {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Reads and parses a peer file once.
    pub fn read(path: impl AsRef<Path>) -> std::io::Result<Vec<String>> {
        let text = std::fs::read_to_string(path)?;
        parse_peer_list(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

impl PeerSource for PeerFile {
    fn next(&mut self) -> BoxFuture<'_, Option<Vec<String>>> {
        Box::pin(async move {
            loop {
                if self.started {
                    tokio::time::sleep(self.interval).await;
                }
                self.started = true;
                match PeerFile::read(&self.path) {
                    Ok(mut list) => {
                        self.warned = false;
                        list.sort();
                        list.dedup();
                        if self.last.as_ref() != Some(&list) {
                            self.last = Some(list.clone());
                            return Some(list);
                        }
                    }
                    Err(e) => {
                        if !self.warned {
                            tracing::warn!(
                                target: "tchan::peer",
                                path = %self.path.display(),
                                error = %e,
                                "cannot read the peer file; keeping the last list"
                            );
                            self.warned = true;
                        }
                    }
                }
            }
        })
    }
}

#[cfg(feature = "json")]
fn json_list(text: &str) -> Result<Vec<String>, String> {
    Ok(serde_json::from_str::<Vec<String>>(text)
        .map_err(|e| format!("not a JSON array of strings: {e}"))?
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

#[cfg(not(feature = "json"))]
fn json_list(_text: &str) -> Result<Vec<String>, String> {
    Err("a JSON peer list needs tchan's `json` feature".into())
}

/// Parses a peer list: a JSON array of strings, or one `host:port` per line
/// (blank lines and `#` comments ignored). Entries are trimmed; an entry
/// without a `:port` is an error.
pub fn parse_peer_list(text: &str) -> Result<Vec<String>, String> {
    let trimmed = text.trim_start();
    let entries: Vec<String> = if trimmed.starts_with('[') {
        json_list(trimmed)?
    } else {
        text.lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    for e in &entries {
        let port = e.rsplit_once(':').map(|(_, p)| p);
        if port.is_none_or(|p| p.parse::<u16>().is_err()) {
            return Err(format!("{e:?} is not host:port"));
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats() {
        // [POOL-2]
        let lines = "# fleet\n10.0.0.1:4040\n\n  host-b:4041  # the other one\n";
        assert_eq!(
            parse_peer_list(lines).unwrap(),
            ["10.0.0.1:4040", "host-b:4041"]
        );
        let json = r#" ["10.0.0.1:4040", "[::1]:4041"] "#;
        assert_eq!(
            parse_peer_list(json).unwrap(),
            ["10.0.0.1:4040", "[::1]:4041"]
        );
        assert_eq!(parse_peer_list("").unwrap(), Vec::<String>::new());
        assert!(parse_peer_list("host-without-port").is_err());
        assert!(parse_peer_list("h:99999").is_err());
        assert!(parse_peer_list("[1, 2]").is_err());
    }
}
