//! Peers from DNS for `call` and `bench`: `--peer-dns NAME:PORT`,
//! `--peer-srv _svc._tcp.NAME` and `--dns-server HOST:PORT`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use tchan::peer::{DnsAnswer, DnsConfig, DnsPeers, DnsQuery, DnsResolver, PeerEntry, PeerSet};

use crate::{Target, usage_for};

/// The DNS queries of a command line, with their resolver.
#[derive(Clone)]
pub(crate) struct Dns {
    resolver: DnsResolver,
    config: DnsConfig,
    queries: Vec<DnsQuery>,
}

/// The DNS part of `to`: `None` without --peer-dns or --peer-srv; a usage
/// error (exit 125) for a malformed one, or --dns-server alone.
pub(crate) fn from_target(
    cmd: &str,
    to: &Target,
    lookup_timeout: Duration,
) -> Result<Option<Dns>, ExitCode> {
    let mut queries = Vec::new();
    for text in &to.peer_dns {
        queries.push(
            DnsQuery::parse_host(text).map_err(|e| usage_for(cmd, format!("--peer-dns: {e}")))?,
        );
    }
    for text in &to.peer_srv {
        queries.push(
            DnsQuery::parse_srv(text).map_err(|e| usage_for(cmd, format!("--peer-srv: {e}")))?,
        );
    }
    if queries.is_empty() {
        return match &to.dns_server {
            Some(_) => Err(usage_for(
                cmd,
                "--dns-server needs --peer-dns or --peer-srv",
            )),
            None => Ok(None),
        };
    }
    let mut config = DnsConfig::default();
    config.set_lookup_timeout(lookup_timeout);
    if let Some(server) = &to.dns_server {
        config.set_nameserver(Some(nameserver(server).map_err(|e| usage_for(cmd, e))?));
    }
    let resolver = DnsResolver::new(config.clone()).map_err(|e| usage_for(cmd, e))?;
    Ok(Some(Dns {
        resolver,
        config,
        queries,
    }))
}

fn nameserver(text: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    text.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("--dns-server {text:?} is not HOST:PORT"))
}

impl Dns {
    /// Looks every query up once, together, each within the lookup timeout:
    /// the peers found, a message for each query that gave none, and each
    /// query's answer (for [`Dns::watches`]).
    pub(crate) async fn lookup_all(&self) -> Found {
        let answers =
            futures::future::join_all(self.queries.iter().map(|q| self.resolver.lookup(q))).await;
        let mut entries: Vec<PeerEntry> = Vec::new();
        let mut problems = Vec::new();
        for (q, a) in self.queries.iter().zip(&answers) {
            match a {
                Ok(a) if a.peers.is_empty() => {
                    problems.push(format!("DNS lookup of {q}: no target with an address"))
                }
                Ok(a) => entries.extend(a.peers.entries().iter().cloned()),
                Err(e) => problems.push(e.to_string()),
            }
        }
        Found {
            peers: PeerSet::new(entries),
            problems,
            answers: answers.into_iter().map(Result::ok).collect(),
        }
    }

    /// A watch of every query (for a pool that follows them), each starting
    /// from its answer in `found` when there is one, through a resolver of
    /// its own: a resolver's sockets belong to the runtime that first uses
    /// them, and `bench` runs one runtime per thread.
    pub(crate) fn watches(&self, found: &Found) -> Vec<DnsPeers> {
        let resolver = match DnsResolver::new(self.config.clone()) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("tchan: {e}; the DNS peers found at the start stay");
                return Vec::new();
            }
        };
        self.queries
            .iter()
            .zip(&found.answers)
            .map(|(q, a)| match a {
                Some(a) => resolver.watch_from(q.clone(), a.clone()),
                None => resolver.watch(q.clone()),
            })
            .collect()
    }
}

/// What [`Dns::lookup_all`] found.
#[derive(Clone)]
pub(crate) struct Found {
    /// Every peer found.
    peers: PeerSet,
    /// Why each query that gave no peer gave none.
    pub(crate) problems: Vec<String>,
    /// Each query's answer, `None` where the lookup failed.
    answers: Vec<Option<DnsAnswer>>,
}

impl Found {
    /// The peers of `others` and these (POOL-36: their union); none at all:
    /// exit 7, naming each lookup and why it gave no peer.
    pub(crate) fn after(&self, cmd: &str, others: &PeerSet) -> Result<PeerSet, ExitCode> {
        let set = PeerSet::new(others.entries().iter().chain(self.peers.entries()).cloned());
        if set.is_empty() {
            eprintln!("tchan {cmd}: no peer: {}", self.problems.join("; "));
            return Err(ExitCode::from(7));
        }
        Ok(set)
    }
}
