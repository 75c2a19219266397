'use strict';
// A node tchannel 4.0.1 client whose channel has a relay as its only peer,
// for tchan's relay interop tests (tests/interop_node/relay.rs).
//
//   node relay-client.js < plan.json
//
// The plan (JSON on stdin):
//   {
//     "peer": "127.0.0.1:PORT",   // the relay: the sub channel's only peer
//     "service": "S",             // called by service name, method "echo"
//     "method": "echo",           // optional
//     "kind": "raw" | "json" | "both",  // both: raw and json alternate
//     "size": 64,                 // bytes of arg3 (raw) or of the json body
//     "calls": 256,               // how many calls ...
//     "durationMs": 5000,         // ... or: keep calling this long instead
//     "parallel": 64,             // calls in flight at once
//     "timeout": 10000,           // ms per call
//     "retryFlags": {...},        // optional, as tchannel takes them; default
//                                 // {never: true}: no retries, so every
//                                 // failure of the relay shows
//     "perCall": false            // true: one line per call
//   }
//
// A raw call i sends arg2 "call-i" and an arg3 of `size` bytes (the pattern
// of common.js, seed 0, with i in its first 4 bytes, big-endian); a json call
// sends head {"i": i} and body {"i": i, "data": "..."} with the body `size`
// bytes as JSON. A call is "echoed" when what came back equals what went.
//
// Output: with perCall, one line per call when it ends:
//   {"call": i, "kind", "start": epoch ms, "end": epoch ms, "ok": bool,
//    "echoed": bool, "err": {type, codeName, isErrorFrame, message}}
// then one summary line:
//   {"summary": {"calls", "ok", "echoed", "mismatched", "failed",
//                "errors": {codeName or type: count}, "firstError",
//                "firstMismatch", "ms", "connections"}}

var TChannel = require('tchannel');
var TChannelJSON = require('tchannel/as/json');
var common = require('./common');

var CALLER = 'relay-interop-client';

function rawBody(base, i) {
    var b = Buffer.from(base);
    if (b.length >= 4) {
        b.writeUInt32BE(i >>> 0, 0);
    }
    return b;
}

// A json body whose serialization is `size` bytes (or as close above as the
// envelope allows).
function jsonBody(size, i) {
    var envelope = JSON.stringify({i: i, data: ''}).length;
    var n = Math.max(0, size - envelope);
    var chars = 'abcdefghijklmnopqrstuvwxyz0123456789';
    var data = '';
    var chunk = '';
    for (var k = 0; k < 251; k++) {
        chunk += chars[(k + i) % chars.length];
    }
    while (data.length + chunk.length <= n) {
        data += chunk;
    }
    data += chunk.slice(0, n - data.length);
    return {i: i, data: data};
}

function main(plan) {
    var channel = new TChannel({
        logger: common.stderrLogger('relay-client', !!plan.verbose),
        trace: false
    });
    var service = plan.service;
    var method = plan.method || 'echo';
    var kind = plan.kind || 'raw';
    var size = plan.size || 0;
    var parallel = plan.parallel || 1;
    var timeout = plan.timeout || 10000;
    var retryFlags = plan.retryFlags ||
        {never: true, onConnectionError: false, onTimeout: false};
    var sub = channel.makeSubChannel({
        serviceName: service,
        peers: [plan.peer],
        requestDefaults: {headers: {cn: CALLER}, hasNoParent: true}
    });
    var tjson = TChannelJSON({logParseFailures: true});
    var base = common.pattern(size, 0);

    var started = Date.now();
    var deadline = plan.durationMs ? started + plan.durationMs : null;
    var total = plan.calls || 0;
    var next = 0;
    var inFlight = 0;
    var s = {calls: 0, ok: 0, echoed: 0, mismatched: 0, failed: 0, errors: {},
        firstError: null, firstMismatch: null};

    function more() {
        return deadline !== null ? Date.now() < deadline : next < total;
    }

    function options(scheme) {
        return {
            serviceName: service,
            hasNoParent: true,
            timeout: timeout,
            headers: {cn: CALLER, as: scheme},
            retryFlags: retryFlags
        };
    }

    function one(i, done) {
        var k = kind === 'both' ? (i % 2 === 0 ? 'raw' : 'json') : kind;
        var out = {call: i, kind: k, start: Date.now()};
        function finish(err, echoed, mismatch) {
            out.end = Date.now();
            s.calls++;
            if (err) {
                out.ok = false;
                out.err = common.errorJson(err);
                s.failed++;
                var name = out.err.codeName || out.err.type || 'unknown';
                s.errors[name] = (s.errors[name] || 0) + 1;
                if (!s.firstError) {
                    s.firstError = {call: i, err: out.err};
                }
            } else {
                out.ok = true;
                out.echoed = echoed;
                s.ok++;
                if (echoed) {
                    s.echoed++;
                } else {
                    s.mismatched++;
                    if (!s.firstMismatch) {
                        s.firstMismatch = {call: i, what: mismatch};
                    }
                }
            }
            if (plan.perCall) {
                common.emit(out);
            }
            done();
        }
        try {
            if (k === 'raw') {
                var arg2 = Buffer.from('call-' + i);
                var arg3 = rawBody(base, i);
                sub.request(options('raw')).send(method, arg2, arg3,
                    function onRaw(err, res, r2, r3) {
                        if (err) {
                            return finish(err);
                        }
                        if (!res.ok) {
                            return finish(null, false, 'not ok: code ' + res.code);
                        }
                        var a2 = Buffer.compare(r2 || Buffer.alloc(0), arg2) === 0;
                        var a3 = Buffer.compare(r3 || Buffer.alloc(0), arg3) === 0;
                        finish(null, a2 && a3, a2 && a3 ? null : {
                            arg2: common.describe(r2).len, arg3: (r3 || []).length,
                            sentArg3: arg3.length, arg2Echoed: a2, arg3Echoed: a3
                        });
                    });
            } else {
                var head = {i: i};
                var body = jsonBody(size, i);
                tjson.send(sub.request(options('json')), method, head, body,
                    function onJson(err, res) {
                        if (err) {
                            return finish(err);
                        }
                        if (!res.ok) {
                            return finish(null, false, {notOk: res.body});
                        }
                        var h = JSON.stringify(res.head) === JSON.stringify(head);
                        var b = !!res.body && res.body.i === i && res.body.data === body.data;
                        finish(null, h && b, h && b ? null : {
                            head: res.head,
                            bodyI: res.body ? res.body.i : null,
                            bodyLen: res.body && typeof res.body.data === 'string' ?
                                res.body.data.length : null,
                            sentLen: body.data.length
                        });
                    });
            }
        } catch (e) {
            finish(e);
        }
    }

    var finished = false;
    function allDone() {
        if (finished) {
            return;
        }
        finished = true;
        s.ms = Date.now() - started;
        var peer = channel.peers.get(plan.peer);
        s.connections = peer ? peer.connections.length : 0;
        common.emit({summary: s});
        setTimeout(function exit() {
            process.exit(0);
        }, 20);
    }

    function pump() {
        while (inFlight < parallel && more()) {
            var i = next++;
            inFlight++;
            one(i, function oneDone() {
                inFlight--;
                if (inFlight === 0 && !more()) {
                    allDone();
                } else {
                    setImmediate(pump);
                }
            });
        }
        if (inFlight === 0 && !more()) {
            allDone();
        }
    }
    pump();
}

var input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', function onData(d) {
    input += d;
});
process.stdin.on('end', function onEnd() {
    main(JSON.parse(input));
});
