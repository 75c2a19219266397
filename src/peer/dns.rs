//! Peers from DNS (feature `dns`): the A/AAAA records of a name with a fixed
//! port, or the SRV records of `_service._proto.name` (POOL-33).
//!
//! [`DnsResolver`] looks a [`DnsQuery`] up once ([`DnsResolver::lookup`]) or
//! follows it ([`DnsResolver::watch`]): a [`PeerSource`](super::PeerSource)
//! that looks again when the answer's TTL runs out (kept between a floor and
//! a ceiling), keeps the last good list while lookups fail, and reports an
//! empty answer only once it has stayed empty for a grace period. SRV
//! priorities and weights travel with the peers ([`PeerEntry`]); the pool
//! uses them (POOL-34).
//!
//! The resolver is hickory-resolver, with the system's configuration
//! (`/etc/resolv.conf`) unless a nameserver is given.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{BoxStream, Stream, StreamExt};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolveHosts, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;

use super::now;
use super::source::{PeerEntry, PeerSet};

/// What to look up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DnsQuery {
    /// The A and AAAA records of `name`; every address is a peer on `port`.
    Host {
        /// The name.
        name: String,
        /// The port every peer listens on.
        port: u16,
    },
    /// The SRV records of `name` (`_service._proto.name`): each target's
    /// addresses on the record's port, with its priority and weight (every
    /// address of a target gets the record's whole weight).
    Srv {
        /// The name, `_service._proto.domain`.
        name: String,
    },
}

impl DnsQuery {
    /// The A/AAAA records of `name`, peers on `port`.
    pub fn host(name: impl Into<String>, port: u16) -> DnsQuery {
        DnsQuery::Host {
            name: name.into(),
            port,
        }
    }

    /// The SRV records of `name`.
    pub fn srv(name: impl Into<String>) -> DnsQuery {
        DnsQuery::Srv { name: name.into() }
    }

    /// Parses `NAME:PORT` (the CLI's `--peer-dns`).
    pub fn parse_host(text: &str) -> Result<DnsQuery, String> {
        let (name, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?} is not NAME:PORT"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("{text:?}: {port:?} is not a port"))?;
        if name.is_empty() {
            return Err(format!("{text:?} has no name"));
        }
        Ok(DnsQuery::host(name, port))
    }

    /// Parses `_service._proto.name` (the CLI's `--peer-srv`).
    pub fn parse_srv(text: &str) -> Result<DnsQuery, String> {
        let mut labels = text.split('.');
        let ok = matches!(
            (labels.next(), labels.next(), labels.next()),
            (Some(s), Some(p), Some(d)) if s.len() > 1 && s.starts_with('_')
                && p.len() > 1 && p.starts_with('_') && !d.is_empty()
        );
        if !ok {
            return Err(format!("{text:?} is not _service._proto.name"));
        }
        Ok(DnsQuery::srv(text))
    }

    fn name(&self) -> &str {
        match self {
            DnsQuery::Host { name, .. } | DnsQuery::Srv { name } => name,
        }
    }
}

impl fmt::Display for DnsQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsQuery::Host { name, port } => write!(f, "A/AAAA {name} (port {port})"),
            DnsQuery::Srv { name } => write!(f, "SRV {name}"),
        }
    }
}

/// The shortest wait between two lookups of a name that can be configured.
const MIN_FLOOR: Duration = Duration::from_millis(10);

/// Options of a [`DnsResolver`]; every one has a default.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    nameserver: Option<SocketAddr>,
    ttl_floor: Duration,
    ttl_ceiling: Duration,
    empty_grace: Duration,
    lookup_timeout: Duration,
    max_peers: usize,
}

impl Default for DnsConfig {
    fn default() -> DnsConfig {
        DnsConfig {
            nameserver: None,
            ttl_floor: Duration::from_secs(5),
            ttl_ceiling: Duration::from_secs(300),
            empty_grace: Duration::from_secs(30),
            lookup_timeout: Duration::from_secs(5),
            max_peers: 1000,
        }
    }
}

impl DnsConfig {
    /// The nameserver asked (UDP, then TCP for a truncated answer). Default
    /// none: the system's configuration.
    pub fn nameserver(&self) -> Option<SocketAddr> {
        self.nameserver
    }

    /// Asks this nameserver only, instead of the system's.
    pub fn set_nameserver(&mut self, value: Option<SocketAddr>) -> &mut Self {
        self.nameserver = value;
        self
    }

    /// The shortest time between two lookups of a name, whatever the TTL.
    /// Default 5 s.
    pub fn ttl_floor(&self) -> Duration {
        self.ttl_floor
    }

    /// Sets [`DnsConfig::ttl_floor`] (at least 10 ms; the ceiling is raised
    /// to it if needed).
    pub fn set_ttl_floor(&mut self, value: Duration) -> &mut Self {
        self.ttl_floor = value.max(MIN_FLOOR);
        self.ttl_ceiling = self.ttl_ceiling.max(value);
        self
    }

    /// The longest time between two lookups of a name, whatever the TTL.
    /// Default 300 s.
    pub fn ttl_ceiling(&self) -> Duration {
        self.ttl_ceiling
    }

    /// Sets [`DnsConfig::ttl_ceiling`] (at least 10 ms; the floor is lowered
    /// to it if needed).
    pub fn set_ttl_ceiling(&mut self, value: Duration) -> &mut Self {
        self.ttl_ceiling = value.max(MIN_FLOOR);
        self.ttl_floor = self.ttl_floor.min(value);
        self
    }

    /// How long an answer with no peer must last before a watch delivers
    /// the empty set (until then the last list stays). Default 30 s.
    pub fn empty_grace(&self) -> Duration {
        self.empty_grace
    }

    /// Sets [`DnsConfig::empty_grace`].
    pub fn set_empty_grace(&mut self, value: Duration) -> &mut Self {
        self.empty_grace = value;
        self
    }

    /// The longest one lookup may take, SRV targets included. Default 5 s.
    pub fn lookup_timeout(&self) -> Duration {
        self.lookup_timeout
    }

    /// Sets [`DnsConfig::lookup_timeout`] (at least 1 ms).
    pub fn set_lookup_timeout(&mut self, value: Duration) -> &mut Self {
        self.lookup_timeout = value.max(Duration::from_millis(1));
        self
    }

    /// The most peers one answer gives (A/AAAA addresses, or SRV records in
    /// priority order, each target's addresses counted): the rest are left
    /// out, and a warning is logged. Default 1000.
    pub fn max_peers(&self) -> usize {
        self.max_peers
    }

    /// Sets [`DnsConfig::max_peers`] (at least 1).
    pub fn set_max_peers(&mut self, value: usize) -> &mut Self {
        self.max_peers = value.max(1);
        self
    }

    /// The wait before the next lookup, for an answer with this TTL.
    fn refresh_after(&self, ttl: Duration) -> Duration {
        ttl.clamp(self.ttl_floor, self.ttl_ceiling)
    }
}

/// Why a lookup gave no peer list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The resolver could not be set up (for example, no usable
    /// `/etc/resolv.conf`).
    #[error("cannot set up the DNS resolver: {0}")]
    Config(String),
    /// The name exists with no such records (NOERROR, empty), or does not
    /// exist (NXDOMAIN). Other answer codes are [`DnsError::Failed`].
    #[error("DNS lookup of {query} via {via}: no records")]
    NoRecords {
        /// The query, as text.
        query: String,
        /// The nameserver asked.
        via: String,
    },
    /// No answer in time.
    #[error("DNS lookup of {query} via {via}: no answer within {timeout:?}")]
    Timeout {
        /// The query, as text.
        query: String,
        /// The nameserver asked.
        via: String,
        /// The time allowed.
        timeout: Duration,
    },
    /// Any other failure (server failure, refused, unreachable...).
    #[error("DNS lookup of {query} via {via}: {message}")]
    Failed {
        /// The query, as text.
        query: String,
        /// The nameserver asked.
        via: String,
        /// The resolver's reason.
        message: String,
    },
}

/// One lookup's result.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DnsAnswer {
    /// The peers found; may be empty (SRV records whose targets have no
    /// address, or a target of `.`).
    pub peers: PeerSet,
    /// The smallest TTL among the records used.
    pub ttl: Duration,
}

/// A DNS resolver for peer lists. Cheap to clone; clones share the resolver
/// (whose sockets belong to the tokio runtime that first uses it).
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use tchan::Channel;
/// use tchan::peer::{DnsConfig, DnsQuery, DnsResolver, PeerPool, PoolConfig};
///
/// let mut config = DnsConfig::default();
/// config.set_nameserver(Some("127.0.0.1:5353".parse()?));
/// let dns = DnsResolver::new(config)?;
/// let pool = PeerPool::new(Channel::new("caller"), Vec::<String>::new(), PoolConfig::default());
/// pool.follow(dns.watch(DnsQuery::srv("_svc._tcp.fleet.example")));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DnsResolver {
    inner: Arc<ResolverInner>,
}

struct ResolverInner {
    resolver: TokioResolver,
    config: DnsConfig,
    /// The nameserver, for messages.
    via: String,
}

impl fmt::Debug for DnsResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsResolver")
            .field("via", &self.inner.via)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl DnsResolver {
    /// A resolver with these options. Fails when the system's configuration
    /// is needed and cannot be read.
    pub fn new(config: DnsConfig) -> Result<DnsResolver, DnsError> {
        let provider = TokioConnectionProvider::default();
        let (mut builder, via) = match config.nameserver {
            Some(addr) => {
                let group = NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true);
                let cfg = ResolverConfig::from_parts(None, Vec::new(), group);
                (
                    TokioResolver::builder_with_config(cfg, provider),
                    addr.to_string(),
                )
            }
            None => (
                TokioResolver::builder(provider).map_err(|e| DnsError::Config(e.to_string()))?,
                "the system's resolver".to_owned(),
            ),
        };
        let opts = builder.options_mut();
        // Every lookup asks the server: the refresh follows the TTL itself.
        opts.cache_size = 0;
        // tchan's own timeout covers the whole lookup; hickory's is a little
        // longer, so that a slow server reads as "no answer within ...".
        opts.timeout = config.lookup_timeout + Duration::from_millis(250);
        opts.attempts = 1;
        if config.nameserver.is_some() {
            // An explicit server answers for every name: no /etc/hosts.
            opts.use_hosts_file = ResolveHosts::Never;
        }
        Ok(DnsResolver {
            inner: Arc::new(ResolverInner {
                resolver: builder.build(),
                config,
                via,
            }),
        })
    }

    /// The options.
    pub fn config(&self) -> &DnsConfig {
        &self.inner.config
    }

    /// Looks `query` up once, within [`DnsConfig::lookup_timeout`]. For SRV,
    /// each target's addresses are looked up too (through the same
    /// nameserver); a target that has none is left out.
    pub async fn lookup(&self, query: &DnsQuery) -> Result<DnsAnswer, DnsError> {
        let timeout = self.inner.config.lookup_timeout;
        tokio::time::timeout(timeout, self.lookup_inner(query))
            .await
            .unwrap_or_else(|_| Err(self.error(query, &Failure::Timeout)))
    }

    /// Follows `query`: a [`PeerSource`](super::PeerSource) for
    /// [`PeerPool::follow`](super::PeerPool::follow).
    pub fn watch(&self, query: DnsQuery) -> DnsPeers {
        DnsPeers {
            stream: watch(self.clone(), query, None),
        }
    }

    /// [`DnsResolver::watch`] that starts from an answer already in hand
    /// (a [`DnsResolver::lookup`] of the same query): it delivers those peers
    /// at once, and looks up next when that answer's TTL runs out; from
    /// there on, a failed lookup or an empty answer is judged against them,
    /// as against any earlier answer.
    pub fn watch_from(&self, query: DnsQuery, answer: DnsAnswer) -> DnsPeers {
        DnsPeers {
            stream: watch(self.clone(), query, Some(answer)),
        }
    }

    fn error(&self, query: &DnsQuery, e: &Failure) -> DnsError {
        let (query, via) = (query.to_string(), self.inner.via.clone());
        match e {
            Failure::NoRecords => DnsError::NoRecords { query, via },
            Failure::Timeout => DnsError::Timeout {
                query,
                via,
                timeout: self.inner.config.lookup_timeout,
            },
            Failure::Other(message) => DnsError::Failed {
                query,
                via,
                message: message.clone(),
            },
        }
    }

    /// With an explicit nameserver every name is absolute (no search list).
    fn fqdn(&self, name: &str) -> String {
        if self.inner.config.nameserver.is_some() && !name.ends_with('.') {
            format!("{name}.")
        } else {
            name.to_owned()
        }
    }

    /// The A and AAAA records of `name`, asked separately: both must be
    /// answered (records, or none), so that a failed half never passes for
    /// a smaller list. (An answer holds at most what one DNS message does.)
    async fn lookup_ips(&self, name: &str) -> Result<(Vec<IpAddr>, u32), Failure> {
        use hickory_resolver::proto::rr::{RData, RecordType};
        let fqdn = self.fqdn(name);
        let r = &self.inner.resolver;
        let both = futures::join!(
            r.lookup(fqdn.as_str(), RecordType::A),
            r.lookup(fqdn.as_str(), RecordType::AAAA)
        );
        let (mut ips, mut ttl, mut any) = (Vec::new(), u32::MAX, false);
        for half in [both.0, both.1] {
            match half {
                Ok(found) => {
                    any = true;
                    ttl = ttl.min(min_ttl(&found));
                    ips.extend(found.iter().filter_map(RData::ip_addr));
                }
                Err(e) => Failure::of(&e).unless_no_records()?,
            }
        }
        if !any {
            return Err(Failure::NoRecords);
        }
        ips.sort();
        ips.dedup();
        Ok((ips, ttl))
    }

    async fn lookup_inner(&self, query: &DnsQuery) -> Result<DnsAnswer, DnsError> {
        let max = self.inner.config.max_peers;
        let (entries, ttl, found) = match query {
            DnsQuery::Host { name, port } => {
                let (ips, ttl) = self
                    .lookup_ips(name)
                    .await
                    .map_err(|e| self.error(query, &e))?;
                let found = ips.len();
                let entries: Vec<PeerEntry> = ips
                    .into_iter()
                    .take(max)
                    .map(|ip| PeerEntry::new(SocketAddr::new(ip, *port).to_string()))
                    .collect();
                (entries, ttl, found)
            }
            DnsQuery::Srv { name } => {
                let srv = self
                    .inner
                    .resolver
                    .srv_lookup(self.fqdn(name))
                    .await
                    .map_err(|e| self.error(query, &Failure::of(&e)))?;
                let mut ttl = min_ttl(srv.as_lookup());
                let mut records: Vec<_> = srv
                    .iter()
                    .map(|r| {
                        (
                            r.priority(),
                            std::cmp::Reverse(r.weight()),
                            r.port(),
                            r.target().to_ascii(),
                        )
                    })
                    // A target of "." says the service is not offered there.
                    .filter(|(.., target)| target != "." && !target.is_empty())
                    .collect();
                // Preferred first (lowest priority, then heaviest), so that
                // a cut keeps the records that matter.
                records.sort();
                let found = records.len();
                records.truncate(max);
                // Each distinct target once, a few at a time. A target with
                // no address is left out; one whose lookup fails fails the
                // whole lookup (the last list stays), rather than passing
                // for a smaller fleet.
                let mut targets: Vec<String> = records.iter().map(|r| r.3.clone()).collect();
                targets.sort();
                targets.dedup();
                let looked_up: Vec<_> = futures::stream::iter(targets)
                    .map(|t| async move {
                        let r = self.lookup_ips(&t).await;
                        (t, r)
                    })
                    .buffer_unordered(16)
                    .collect()
                    .await;
                let mut addrs: std::collections::HashMap<String, Vec<IpAddr>> =
                    std::collections::HashMap::new();
                for (target, r) in looked_up {
                    match r {
                        Ok((ips, t)) => {
                            ttl = ttl.min(t);
                            addrs.insert(target, ips);
                        }
                        Err(Failure::NoRecords) => tracing::debug!(
                            target: "tchan::peer",
                            query = %query,
                            srv_target = %target,
                            "an SRV target has no address; left out"
                        ),
                        Err(e) => {
                            let e = match e {
                                Failure::Other(m) => {
                                    Failure::Other(format!("SRV target {target}: {m}"))
                                }
                                other => other,
                            };
                            return Err(self.error(query, &e));
                        }
                    }
                }
                let mut entries = Vec::new();
                'records: for (priority, weight, port, target) in records {
                    for ip in addrs.get(&target).into_iter().flatten() {
                        if entries.len() == max {
                            break 'records;
                        }
                        entries.push(
                            PeerEntry::new(SocketAddr::new(*ip, port).to_string())
                                .ranked(priority, weight.0),
                        );
                    }
                }
                (entries, ttl, found)
            }
        };
        if found > max {
            tracing::warn!(
                target: "tchan::peer",
                query = %query,
                found,
                max,
                "the DNS answer has more peers than max_peers; the rest are left out"
            );
        }
        Ok(DnsAnswer {
            peers: PeerSet::new(entries),
            ttl: Duration::from_secs(u64::from(if ttl == u32::MAX { 0 } else { ttl })),
        })
    }
}

/// The smallest TTL of a lookup's records (0 for none).
fn min_ttl(l: &hickory_resolver::lookup::Lookup) -> u32 {
    l.records().iter().map(|r| r.ttl()).min().unwrap_or(0)
}

/// Why one query gave nothing, as the watch needs to know it.
#[derive(Debug)]
enum Failure {
    /// The name does not exist (NXDOMAIN), or has no such records
    /// (NOERROR with an empty answer): a real, empty answer.
    NoRecords,
    /// No answer in time.
    Timeout,
    /// Anything else, server failures (SERVFAIL, REFUSED...) included.
    Other(String),
}

impl Failure {
    fn of(e: &hickory_resolver::ResolveError) -> Failure {
        use hickory_resolver::proto::ProtoErrorKind;
        use hickory_resolver::proto::op::ResponseCode;
        match e.proto().map(|p| p.kind()) {
            Some(ProtoErrorKind::NoRecordsFound { response_code, .. })
                if matches!(
                    *response_code,
                    ResponseCode::NXDomain | ResponseCode::NoError
                ) =>
            {
                Failure::NoRecords
            }
            Some(ProtoErrorKind::NoRecordsFound { response_code, .. }) => {
                Failure::Other(format!("the server answered {response_code}"))
            }
            Some(ProtoErrorKind::Timeout) => Failure::Timeout,
            _ => Failure::Other(e.to_string()),
        }
    }

    /// `Ok` for an empty answer, the failure otherwise.
    fn unless_no_records(self) -> Result<(), Failure> {
        match self {
            Failure::NoRecords => Ok(()),
            other => Err(other),
        }
    }
}

/// A DNS name followed as a [`PeerSource`](super::PeerSource)
/// ([`DnsResolver::watch`]).
///
/// - The first lookup's result is delivered at once, even an empty one,
///   and even when the lookup failed (then it is empty too: there is no
///   last list to keep yet).
/// - After that a new set is delivered when the answer changes. The next
///   lookup is due when the answer's TTL runs out, kept between
///   [`DnsConfig::ttl_floor`] and [`DnsConfig::ttl_ceiling`] (an answer
///   without a peer: after the floor).
/// - A lookup that fails (timeout, a server failure such as SERVFAIL or
///   REFUSED, an unreachable server, an SRV target whose addresses cannot
///   be looked up) keeps the last list; it is logged (a `tracing` warning, once until a
///   lookup succeeds again) and counted (the metric
///   `tchan_peer_dns_lookup_failures_total`, labelled `query`, with the
///   `metrics` feature). The next try is after the floor.
/// - An answer with no peer (no records, no such name, or SRV targets with
///   no address) keeps the last list until answers have stayed empty for
///   [`DnsConfig::empty_grace`] (lookups meanwhile come at least that
///   often); then the empty set is delivered.
///
/// The stream never ends.
pub struct DnsPeers {
    stream: BoxStream<'static, PeerSet>,
}

impl fmt::Debug for DnsPeers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsPeers").finish_non_exhaustive()
    }
}

impl Stream for DnsPeers {
    type Item = PeerSet;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PeerSet>> {
        self.get_mut().stream.poll_next_unpin(cx)
    }
}

struct Watch {
    resolver: DnsResolver,
    query: DnsQuery,
    /// The set delivered last (`None` before the first delivery).
    last: Option<PeerSet>,
    /// A set to deliver first, without a lookup ([`DnsResolver::watch_from`]).
    seed: Option<PeerSet>,
    /// Since when answers have been empty while `last` is not.
    empty_since: Option<std::time::Instant>,
    /// The wait before the next lookup (`None`: look up now).
    wait: Option<Duration>,
    warned: bool,
}

fn watch(
    resolver: DnsResolver,
    query: DnsQuery,
    seed: Option<DnsAnswer>,
) -> BoxStream<'static, PeerSet> {
    let wait = seed
        .as_ref()
        .map(|a| resolver.config().refresh_after(a.ttl));
    let w = Watch {
        resolver,
        query,
        last: None,
        seed: seed.map(|a| a.peers),
        empty_since: None,
        wait,
        warned: false,
    };
    futures::stream::unfold(w, |mut w| async move {
        if let Some(seed) = w.seed.take() {
            w.last = Some(seed.clone());
            return Some((seed, w));
        }
        loop {
            if let Some(d) = w.wait.take() {
                tokio::time::sleep(d).await;
            }
            let cfg = w.resolver.config().clone();
            let answer = w.resolver.lookup(&w.query).await;
            let t = now();
            let set = match answer {
                Ok(a) => {
                    w.note_success();
                    // An answer without a peer is looked at again soon,
                    // as an absent name is.
                    w.wait = Some(if a.peers.is_empty() {
                        cfg.ttl_floor
                    } else {
                        cfg.refresh_after(a.ttl)
                    });
                    a.peers
                }
                Err(DnsError::NoRecords { .. }) => {
                    w.wait = Some(cfg.ttl_floor);
                    w.note_success();
                    PeerSet::default()
                }
                Err(e) => {
                    w.wait = Some(cfg.ttl_floor);
                    w.note_failure(&e);
                    if w.last.is_some() {
                        continue;
                    }
                    // Nothing known yet: the pool has no peer from here
                    // either way; say so at once.
                    PeerSet::default()
                }
            };
            if set.is_empty() && w.last.as_ref().is_some_and(|l| !l.is_empty()) {
                // [POOL-33] empty only after the grace period.
                let since = *w.empty_since.get_or_insert(t);
                let waited = t.saturating_duration_since(since);
                if waited < cfg.empty_grace {
                    let left = cfg.empty_grace - waited;
                    w.wait = w.wait.map(|d| d.min(left));
                    continue;
                }
            } else {
                w.empty_since = None;
            }
            if w.last.as_ref() != Some(&set) {
                w.last = Some(set.clone());
                return Some((set, w));
            }
        }
    })
    .boxed()
}

impl Watch {
    fn note_success(&mut self) {
        self.warned = false;
    }

    fn note_failure(&mut self, e: &DnsError) {
        #[cfg(feature = "metrics")]
        metrics::counter!(
            "tchan_peer_dns_lookup_failures_total",
            "query" => self.query.to_string()
        )
        .increment(1);
        if !std::mem::replace(&mut self.warned, true) {
            tracing::warn!(
                target: "tchan::peer",
                query = %self.query,
                name = self.query.name(),
                error = %e,
                "DNS lookup failed; keeping the last peer list"
            );
        }
    }
}
