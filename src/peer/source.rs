//! Where the pool's peer list comes from: a static list, a file re-read when
//! it changes, or any [`Stream`] of [`PeerSet`]s (DNS, Consul, ...).

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{BoxStream, Stream, StreamExt};

/// One peer of a [`PeerSet`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PeerEntry {
    /// `host:port`.
    pub addr: String,
    /// Lower is preferred: the pool uses the lowest priority that has an
    /// available peer (DNS SRV's rule). Default 0.
    pub priority: u16,
    /// Share of calls relative to the other peers of the same priority.
    /// Default 1; 0 means "only when no other peer of this priority can be used".
    pub weight: u16,
}

impl PeerEntry {
    /// A peer with the default priority (0) and weight (1).
    pub fn new(addr: impl Into<String>) -> PeerEntry {
        PeerEntry {
            addr: addr.into(),
            priority: 0,
            weight: 1,
        }
    }

    /// The same peer with this priority and weight.
    pub fn ranked(mut self, priority: u16, weight: u16) -> PeerEntry {
        self.priority = priority;
        self.weight = weight;
        self
    }
}

/// The whole current set of peers, as a source delivers it: the pool adds
/// the new ones, drains the ones missing (no new calls; calls in flight
/// finish) and takes the others' new rank ([`super::PeerPool::follow`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerSet {
    entries: Vec<PeerEntry>,
}

impl PeerSet {
    /// A set of these entries (duplicates of an address: the first is kept).
    pub fn new(entries: impl IntoIterator<Item = PeerEntry>) -> PeerSet {
        let mut seen = std::collections::HashSet::new();
        PeerSet {
            entries: entries
                .into_iter()
                .filter(|e| seen.insert(e.addr.clone()))
                .collect(),
        }
    }

    /// The entries, in the order given.
    pub fn entries(&self) -> &[PeerEntry] {
        &self.entries
    }

    /// The addresses, in the order given.
    pub fn addrs(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.addr.as_str())
    }

    /// True when the set has no peer.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

impl<S: Into<String>> FromIterator<S> for PeerSet {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> PeerSet {
        PeerSet::new(iter.into_iter().map(PeerEntry::new))
    }
}

impl From<Vec<String>> for PeerSet {
    fn from(v: Vec<String>) -> PeerSet {
        v.into_iter().collect()
    }
}

/// A feed of peer sets: any `Stream` of [`PeerSet`]s that is `Send`,
/// `Unpin` and `'static`. The stream ending leaves the pool with the last
/// set.
///
/// ```
/// use std::time::Duration;
/// use futures::StreamExt;
/// use tchan::peer::{PeerSet, PeerSource};
///
/// /// Resolves a name every 30 s.
/// fn dns(name: String) -> impl PeerSource {
///     futures::stream::unfold(name, |name| async move {
///         tokio::time::sleep(Duration::from_secs(30)).await;
///         let addrs = tokio::net::lookup_host(name.as_str()).await.ok()?;
///         let set: PeerSet = addrs.map(|a| a.to_string()).collect();
///         Some((set, name))
///     })
///     .boxed()
/// }
/// ```
pub trait PeerSource: Stream<Item = PeerSet> + Send + Unpin + 'static {}

impl<S: Stream<Item = PeerSet> + Send + Unpin + 'static> PeerSource for S {}

/// A fixed list, delivered once.
#[derive(Debug, Clone)]
pub struct StaticPeers(Option<PeerSet>);

impl StaticPeers {
    /// This list.
    pub fn new(peers: impl IntoIterator<Item = impl Into<String>>) -> StaticPeers {
        StaticPeers(Some(peers.into_iter().collect()))
    }
}

impl From<PeerSet> for StaticPeers {
    /// This set, with its ranks.
    fn from(set: PeerSet) -> StaticPeers {
        StaticPeers(Some(set))
    }
}

impl Stream for StaticPeers {
    type Item = PeerSet;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<PeerSet>> {
        Poll::Ready(self.get_mut().0.take())
    }
}

/// The union of several sources: the entries of the last set of each, in
/// the order the sources were added (an address in two sets keeps the first
/// one's rank). The first union is delivered once every source has
/// delivered (so that a pool does not drop, then take back, the peers of a
/// slower source), then one each time a source delivers. A source that ends
/// keeps its last set; the union ends when all of them have ended.
///
/// ```
/// use tchan::peer::{PeerFile, StaticPeers, UnionPeers};
///
/// let peers = UnionPeers::new()
///     .with(StaticPeers::new(["10.0.0.1:4040"]))
///     .with(PeerFile::new("/etc/tchan/peers.json"));
/// # drop(peers);
/// ```
#[derive(Default)]
pub struct UnionPeers {
    sources: Vec<Member>,
    /// The first union has been delivered.
    started: bool,
}

struct Member {
    stream: BoxStream<'static, PeerSet>,
    last: Option<PeerSet>,
    done: bool,
}

impl std::fmt::Debug for UnionPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnionPeers")
            .field("sources", &self.sources.len())
            .finish_non_exhaustive()
    }
}

impl UnionPeers {
    /// No source yet.
    pub fn new() -> UnionPeers {
        UnionPeers::default()
    }

    /// Adds a source.
    pub fn with(mut self, source: impl PeerSource) -> UnionPeers {
        self.sources.push(Member {
            stream: source.boxed(),
            last: None,
            done: false,
        });
        self
    }

    fn merged(&self) -> PeerSet {
        PeerSet::new(
            self.sources
                .iter()
                .filter_map(|m| m.last.as_ref())
                .flat_map(|s| s.entries().iter().cloned()),
        )
    }
}

impl Stream for UnionPeers {
    type Item = PeerSet;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PeerSet>> {
        let this = self.get_mut();
        let mut changed = false;
        for m in this.sources.iter_mut().filter(|m| !m.done) {
            loop {
                match m.stream.poll_next_unpin(cx) {
                    Poll::Ready(Some(set)) => {
                        m.last = Some(set);
                        changed = true;
                    }
                    Poll::Ready(None) => {
                        m.done = true;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
        let ready = this.sources.iter().all(|m| m.last.is_some() || m.done);
        if ready && (changed || !this.started) && this.sources.iter().any(|m| m.last.is_some()) {
            this.started = true;
            Poll::Ready(Some(this.merged()))
        } else if this.sources.iter().all(|m| m.done) {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

/// A file of peers, re-read every `interval`; a new set is delivered when
/// its contents change.
///
/// The file holds either a JSON array of `"host:port"` strings (the format of
/// tchannel-node's and Hyperbahn's host files) or one `host:port` per line,
/// with blank lines and `#` comments ignored. While the file cannot be read
/// or parsed, the last good list stays in force (a warning is logged).
/// The file is small and read with blocking I/O on the runtime's thread.
pub struct PeerFile {
    path: PathBuf,
    interval: Duration,
    stream: Option<BoxStream<'static, PeerSet>>,
}

impl std::fmt::Debug for PeerFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerFile")
            .field("path", &self.path)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl PeerFile {
    /// Watches `path`, checking every second.
    pub fn new(path: impl Into<PathBuf>) -> PeerFile {
        PeerFile {
            path: path.into(),
            interval: Duration::from_secs(1),
            stream: None,
        }
    }

    /// Checks every `interval` instead (at least 1 ms).
    pub fn interval(mut self, interval: Duration) -> PeerFile {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Reads and parses a peer file once.
    pub fn read(path: impl AsRef<Path>) -> std::io::Result<Vec<String>> {
        let text = std::fs::read_to_string(path)?;
        parse_peer_list(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    fn watch(path: PathBuf, interval: Duration) -> BoxStream<'static, PeerSet> {
        struct Watch {
            path: PathBuf,
            interval: Duration,
            last: Option<Vec<String>>,
            started: bool,
            warned: bool,
        }
        let w = Watch {
            path,
            interval,
            last: None,
            started: false,
            warned: false,
        };
        futures::stream::unfold(w, |mut w| async move {
            loop {
                if w.started {
                    tokio::time::sleep(w.interval).await;
                }
                w.started = true;
                match PeerFile::read(&w.path) {
                    Ok(mut list) => {
                        w.warned = false;
                        list.sort();
                        list.dedup();
                        if w.last.as_ref() != Some(&list) {
                            w.last = Some(list.clone());
                            return Some((PeerSet::from(list), w));
                        }
                    }
                    Err(e) => {
                        if !w.warned {
                            tracing::warn!(
                                target: "tchan::peer",
                                path = %w.path.display(),
                                error = %e,
                                "cannot read the peer file; keeping the last list"
                            );
                            w.warned = true;
                        }
                    }
                }
            }
        })
        .boxed()
    }
}

impl Stream for PeerFile {
    type Item = PeerSet;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PeerSet>> {
        let this = self.get_mut();
        let (path, interval) = (&this.path, this.interval);
        this.stream
            .get_or_insert_with(|| PeerFile::watch(path.clone(), interval))
            .poll_next_unpin(cx)
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
    fn a_union_waits_for_every_source_then_follows_each() {
        // [POOL-33]
        use futures::FutureExt;
        let (tx, rx) = futures::channel::mpsc::unbounded::<PeerSet>();
        let mut u = UnionPeers::new()
            .with(StaticPeers::new(["a:1", "b:2"]))
            .with(rx);
        assert!(
            u.next().now_or_never().is_none(),
            "delivered before the second source"
        );
        tx.unbounded_send(PeerSet::new([
            PeerEntry::new("b:2").ranked(3, 4),
            PeerEntry::new("c:3").ranked(1, 0),
        ]))
        .unwrap();
        let set = u.next().now_or_never().flatten().unwrap();
        // b:2 keeps the first source's rank.
        assert_eq!(
            set.entries(),
            [
                PeerEntry::new("a:1"),
                PeerEntry::new("b:2"),
                PeerEntry::new("c:3").ranked(1, 0)
            ]
        );
        tx.unbounded_send(PeerSet::default()).unwrap();
        let set = u.next().now_or_never().flatten().unwrap();
        assert_eq!(set.addrs().collect::<Vec<_>>(), ["a:1", "b:2"]);
        drop(tx);
        assert_eq!(u.next().now_or_never(), Some(None));
    }

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
