//! The shard-key hash ring against ringpop's rules computed by npm
//! farmhash's fingerprint32 (`tests/data/ring_vectors.json`, made by
//! `interop/node/ring-vectors.js`; `spec/11-peer-policy.md` POOL-30).

use tchan::frame::fingerprint32;
use tchan::peer::HashRing;

fn vectors() -> serde_json::Value {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ring_vectors.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn the_ring_agrees_with_ringpops_rules_computed_by_npm_farmhash() {
    // [POOL-30]
    let v = vectors();
    let peers: Vec<String> = v["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    let ring = HashRing::new(peers.clone());
    assert_eq!(u64::from(ring.checksum()), v["checksum"].as_u64().unwrap());
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for c in cases {
        let key = c["key"].as_str().unwrap();
        assert_eq!(
            u64::from(fingerprint32(key.as_bytes())),
            c["fingerprint32"].as_u64().unwrap(),
            "fingerprint32({key:?})"
        );
        let owners: Vec<&str> = c["owners"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        assert_eq!(ring.lookup_n(key.as_bytes(), 3), owners, "{key:?}");
        assert_eq!(ring.lookup(key.as_bytes()), Some(owners[0]));
    }
    // The order does not depend on the order peers are given in.
    let mut reversed = peers.clone();
    reversed.reverse();
    let other = HashRing::new(reversed);
    for c in cases {
        let key = c["key"].as_str().unwrap().as_bytes();
        assert_eq!(other.lookup(key), ring.lookup(key));
    }
}

#[test]
fn removing_one_of_ten_peers_moves_only_its_keys() {
    // [POOL-30]
    let peers: Vec<String> = (1..=10).map(|i| format!("10.1.0.{i}:4000")).collect();
    let ring = HashRing::new(peers.clone());
    let gone = &peers[3];
    let smaller = HashRing::new(peers.iter().filter(|p| *p != gone).cloned());
    let keys: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
    let mut moved = 0;
    for k in &keys {
        let before = ring.lookup(k.as_bytes()).unwrap();
        let after = smaller.lookup(k.as_bytes()).unwrap();
        if before != after {
            assert_eq!(before, gone, "{k} moved though its owner stayed");
            moved += 1;
        } else {
            assert_ne!(before, gone.as_str());
        }
    }
    // About a tenth of the keys (the removed peer's share).
    assert!((500..=1600).contains(&moved), "{moved} of 10000 moved");
    // The next peer on the ring takes over when the owner is out.
    for k in keys.iter().take(200) {
        let owner = ring.lookup(k.as_bytes()).unwrap();
        let next = ring.lookup_n(k.as_bytes(), 2)[1];
        assert_eq!(ring.lookup_where(k.as_bytes(), |p| p != owner), Some(next));
    }
    assert_eq!(HashRing::new(Vec::<String>::new()).lookup(b"k"), None);
}
