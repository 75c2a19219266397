//! The crate's one clock and one fast hash map.

use std::time::Instant;

/// Maps with foldhash: fast, and seeded per process, so keys a peer chooses
/// (message ids, names) cannot be picked to collide.
pub(crate) type HashMap<K, V> = foldhash::HashMap<K, V>;
/// The set form of [`HashMap`].
pub(crate) type HashSet<K> = foldhash::HashSet<K>;

/// The clock of everything above the sans-IO core, which is always handed
/// `now`: tokio's, so that tests with paused time drive it.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
