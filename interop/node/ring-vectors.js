'use strict';
// Ring vectors for tchan's shard-key hash ring (tests/ring.rs, spec POOL-30):
// ringpop's rules computed with npm farmhash's fingerprint32 (the function
// ringpop-node's cross-platform ring uses).
//
//   (cd /tmp/fh && npm install farmhash@3.3.1)
//   NODE_PATH=/tmp/fh/node_modules node interop/node/ring-vectors.js > tests/data/ring_vectors.json
//
// Rules: 100 replica points per peer, point i of "host:port" at
// fingerprint32("host:port" + i); points sorted by (hash, address); a key
// goes to the first point whose hash is >= fingerprint32(key), wrapping.

var farmhash = require('farmhash');

var peers = [];
for (var i = 1; i <= 10; i++) {
    peers.push('10.0.0.' + i + ':' + (3000 + i));
}

function ring(addrs) {
    var points = [];
    addrs.forEach(function each(a) {
        for (var r = 0; r < 100; r++) {
            points.push({hash: farmhash.fingerprint32(a + r), addr: a});
        }
    });
    points.sort(function cmp(x, y) {
        if (x.hash !== y.hash) return x.hash - y.hash;
        return x.addr < y.addr ? -1 : (x.addr > y.addr ? 1 : 0);
    });
    return points;
}

function lookupN(points, key, n) {
    var h = farmhash.fingerprint32(key);
    var lo = 0;
    var hi = points.length;
    while (lo < hi) {
        var mid = (lo + hi) >> 1;
        if (points[mid].hash < h) lo = mid + 1; else hi = mid;
    }
    var out = [];
    for (var k = 0; k < points.length && out.length < n; k++) {
        var p = points[(lo + k) % points.length];
        if (out.indexOf(p.addr) < 0) out.push(p.addr);
    }
    return out;
}

var points = ring(peers);
var keys = ['', 'a', 'hello', 'user:42', 'shard-key-with-some-length', '\u00fcn\u00efcode'];
for (var j = 0; j < 30; j++) keys.push('key' + j);
var cases = keys.map(function m(k) {
    return {key: k, fingerprint32: farmhash.fingerprint32(k), owners: lookupN(points, k, 3)};
});
var sorted = peers.slice().sort();
process.stdout.write(JSON.stringify({
    peers: peers,
    replica_points: 100,
    checksum: farmhash.fingerprint32(sorted.join(';')),
    first_points: points.slice(0, 5),
    cases: cases
}, null, 1) + '\n');
