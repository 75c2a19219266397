//! A consistent hash ring identical to ringpop's (ringpop-go, and
//! ringpop-node's cross-platform ring), so a tchan caller and a ringpop
//! cluster agree on every shard key's owner (`spec/11-peer-policy.md`
//! POOL-30).
//!
//! Each peer `host:port` has [`REPLICA_POINTS`] points, point `i` at
//! `Fingerprint32("host:port" + decimal i)` (farmhash's platform-independent
//! `Fingerprint32`, never its `hash32`); points are ordered by (hash,
//! address); a key goes to the first point whose hash is at least
//! `Fingerprint32(key)`, wrapping to the smallest.

use crate::frame::fingerprint32;

/// Replica points per peer, ringpop's default.
pub const REPLICA_POINTS: usize = 100;

/// A hash ring over a set of peers. Building it sorts `peers × replica
/// points` entries; a lookup is a binary search and allocates nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashRing {
    /// (hash, peer index), sorted by (hash, address).
    points: Vec<(u32, u32)>,
    /// Peers, deduplicated, in the order first given.
    peers: Vec<String>,
    replica_points: usize,
}

impl HashRing {
    /// The ring of `peers` with [`REPLICA_POINTS`] points each.
    pub fn new<I, S>(peers: I) -> HashRing
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        HashRing::with_replica_points(peers, REPLICA_POINTS)
    }

    /// The ring of `peers` with `replica_points` points each.
    pub fn with_replica_points<I, S>(peers: I, replica_points: usize) -> HashRing
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut list: Vec<String> = Vec::new();
        for p in peers {
            let p = p.into();
            if !list.contains(&p) {
                list.push(p);
            }
        }
        let mut points = Vec::with_capacity(list.len() * replica_points);
        let mut buf = String::new();
        for (i, p) in list.iter().enumerate() {
            for r in 0..replica_points {
                buf.clear();
                buf.push_str(p);
                buf.push_str(&r.to_string());
                points.push((fingerprint32(buf.as_bytes()), i as u32));
            }
        }
        points.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| list[a.1 as usize].cmp(&list[b.1 as usize]))
        });
        HashRing {
            points,
            peers: list,
            replica_points,
        }
    }

    /// The peers on the ring.
    pub fn peers(&self) -> &[String] {
        &self.peers
    }

    /// True when the ring has no peer.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The index into [`HashRing::points`] order where `key` lands.
    fn start(&self, key: &[u8]) -> usize {
        let h = fingerprint32(key);
        let i = self.points.partition_point(|p| p.0 < h);
        if i == self.points.len() { 0 } else { i }
    }

    /// The owner of `key`, `None` on an empty ring.
    pub fn lookup(&self, key: &[u8]) -> Option<&str> {
        if self.points.is_empty() {
            return None;
        }
        let (_, p) = self.points[self.start(key)];
        Some(&self.peers[p as usize])
    }

    /// The next `n` distinct peers for `key`, in ring order from its owner.
    pub fn lookup_n(&self, key: &[u8], n: usize) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::with_capacity(n.min(self.peers.len()));
        if self.points.is_empty() {
            return out;
        }
        let start = self.start(key);
        for k in 0..self.points.len() {
            if out.len() >= n {
                break;
            }
            let (_, p) = self.points[(start + k) % self.points.len()];
            let a = self.peers[p as usize].as_str();
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }

    /// The first peer for `key` in ring order that `ok` accepts (the owner
    /// when it is available), without allocating.
    pub fn lookup_where(&self, key: &[u8], mut ok: impl FnMut(&str) -> bool) -> Option<&str> {
        let i = self.lookup_index_where(key, |i| ok(&self.peers[i]))?;
        Some(&self.peers[i])
    }

    /// [`HashRing::lookup_where`] by index into [`HashRing::peers`] (the
    /// order the peers were first given): what the pool uses, with no string
    /// comparison.
    pub(crate) fn lookup_index_where(
        &self,
        key: &[u8],
        mut ok: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let start = self.start(key);
        let mut tried = 0u128;
        for k in 0..self.points.len() {
            let (_, p) = self.points[(start + k) % self.points.len()];
            if p < 128 {
                if tried & (1 << p) != 0 {
                    continue;
                }
                tried |= 1 << p;
            }
            if ok(p as usize) {
                return Some(p as usize);
            }
        }
        None
    }

    /// The owner's index into [`HashRing::peers`], `None` on an empty ring.
    pub(crate) fn lookup_index(&self, key: &[u8]) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        Some(self.points[self.start(key)].1 as usize)
    }

    /// The ring checksum as ringpop computes it: `Fingerprint32` of the
    /// sorted addresses joined by `;` (to compare with a live cluster).
    pub fn checksum(&self) -> u32 {
        let mut sorted: Vec<&str> = self.peers.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        fingerprint32(sorted.join(";").as_bytes())
    }

    /// Replica points per peer.
    pub fn replica_points(&self) -> usize {
        self.replica_points
    }
}
