//! `tchan ring`: which peer owns each key on a ringpop-compatible hash ring.

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use tchan::peer::{HashRing, PeerFile};

use crate::usage_for;

#[derive(Args)]
pub(crate) struct RingArgs {
    /// A peer, HOST:PORT; repeat for several.
    #[arg(long = "peer", value_name = "HOST:PORT")]
    peers: Vec<String>,
    /// A file of peers: one HOST:PORT a line, or a JSON array of strings.
    #[arg(long, value_name = "F")]
    peer_file: Option<PathBuf>,
    /// Print the key's first N owners in ring order (fewer when there are
    /// fewer peers) instead of its owner.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    n: Option<i64>,
    /// The keys, as given (bytes); after `--` a key may start with `-`.
    #[arg(value_name = "KEY")]
    keys: Vec<OsString>,
}

pub(crate) fn ring(a: RingArgs) -> ExitCode {
    let n = match a.n {
        None => 1,
        Some(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
        Some(_) => return usage_for("ring", "--n must be at least 1"),
    };
    let mut peers: Vec<String> = Vec::new();
    for p in &a.peers {
        // As the pool sees its peers: trimmed, and HOST:PORT.
        match tchan::peer::parse_peer_list(p) {
            Ok(list) if list.len() == 1 => peers.extend(list),
            _ => return usage_for("ring", format!("--peer {p:?} is not HOST:PORT")),
        }
    }
    if let Some(path) = &a.peer_file {
        match PeerFile::read(path) {
            Ok(more) => peers.extend(more),
            Err(e) => return usage_for("ring", format!("cannot read {}: {e}", path.display())),
        }
    }
    if peers.is_empty() {
        return usage_for("ring", "no peers: give --peer or --peer-file");
    }
    if a.keys.is_empty() {
        return usage_for("ring", "no keys");
    }
    let ring = HashRing::new(peers);
    let mut out = io::stdout().lock();
    for key in &a.keys {
        let key = key.as_bytes();
        let mut line = Vec::with_capacity(key.len() + 24 * n.min(8));
        line.extend_from_slice(key);
        for owner in ring.lookup_n(key, n) {
            line.push(b'\t');
            line.extend_from_slice(owner.as_bytes());
        }
        line.push(b'\n');
        if out.write_all(&line).is_err() {
            return ExitCode::from(crate::EXIT_LOCAL);
        }
    }
    if out.flush().is_err() {
        return ExitCode::from(crate::EXIT_LOCAL);
    }
    ExitCode::SUCCESS
}
