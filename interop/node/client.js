'use strict';
// A node tchannel 4.0.1 client for tchan's interop tests.
//
//   node client.js < plan.json
//
// The plan (JSON on stdin):
//   {
//     "peer": "127.0.0.1:PORT",
//     "checksumType": 0..3,      // optional: channel requestDefaults.checksumType
//     "traceSample": 0..1,       // optional: the channel's trace sample rate
//     "parallel": false,         // true: start every call at once (after its "at")
//     "calls": [ call, ... ]
//   }
// A call:
//   { "id": "label", "kind": "raw" | "json" | "thrift" | "ping",
//     "service": "interop", "method": "echo",
//     "arg2": ARG, "arg3": ARG,          // raw: a string, {hex}, or {pattern, seed}
//     "head": ..., "body": ...,          // json / thrift values
//     "at": ms,                          // delay before the call starts
//     "timeout": ms (default 2000), "retryLimit": n, "retryFlags": {...},
//     "checksumType": n,                 // per request (node ignores 0, see README)
//     "direct": true,                    // send on the peer directly: no retries
//     "headers": {k: v},                 // extra transport headers
//     "tracing": {span, parent, trace: 16 hex digits, flags},  // sent as given
//     "trace": bool }
//
// Output: one JSON line per call when it finishes, then {"summary": ...}.
//   {"id", "ok", "code", "headers", "arg2": {len, hex, text}, "arg3": ...,
//    "arg2_echoed", "arg3_echoed", "ms"}          raw response
//   {"id", "ok", "head", "body", "typeName"}       json / thrift response
//   {"id", "pong": true, "ms"}                     ping
//   {"id", "err": {type, codeName, isErrorFrame, message}, "ms"}

var TChannel = require('tchannel');
var TChannelJSON = require('tchannel/as/json');
var TChannelAsThrift = require('tchannel/as/thrift');
var common = require('./common');

var CALLER = 'interop-client';

function main(plan) {
    var chanOpts = {logger: common.stderrLogger('node-client', !!plan.verbose)};
    if (typeof plan.traceSample === 'number') {
        chanOpts.traceSample = plan.traceSample;
    }
    var channel = new TChannel(chanOpts);

    var subs = {};
    function sub(service) {
        if (!subs[service]) {
            var defaults = {headers: {cn: CALLER}, hasNoParent: true};
            if (typeof plan.checksumType === 'number') {
                defaults.checksumType = plan.checksumType;
            }
            subs[service] = channel.makeSubChannel({
                serviceName: service,
                peers: [plan.peer],
                requestDefaults: defaults
            });
        }
        return subs[service];
    }

    function serviceOf(call) {
        return call.service || (call.kind === 'thrift' ? 'interop-thrift' : 'interop');
    }

    var tjson = null;
    var tthrift = {};

    function requestOptions(call, scheme) {
        var o = {
            serviceName: serviceOf(call),
            hasNoParent: true,
            timeout: call.timeout || 2000,
            headers: {cn: CALLER, as: scheme}
        };
        var k;
        for (k in call.headers || {}) {
            o.headers[k] = call.headers[k];
        }
        if (typeof call.retryLimit === 'number') {
            o.retryLimit = call.retryLimit;
        }
        if (call.retryFlags) {
            o.retryFlags = call.retryFlags;
        }
        if (typeof call.checksumType === 'number') {
            o.checksumType = call.checksumType;
        }
        if (typeof call.trace === 'boolean') {
            o.trace = call.trace;
        }
        if (call.direct) {
            o.host = plan.peer;
        }
        if (call.tracing) {
            o.forwardTrace = true;
            o.tracing = {
                spanid: common.idFromHex(call.tracing.span),
                parentid: common.idFromHex(call.tracing.parent),
                traceid: common.idFromHex(call.tracing.trace),
                flags: call.tracing.flags || 0
            };
        }
        return o;
    }

    function run(call, done) {
        var start = Date.now();
        var out = {id: call.id};
        function finish(err) {
            out.ms = Date.now() - start;
            if (err) {
                out.err = common.errorJson(err);
            }
            common.emit(out);
            done();
        }
        if (!call.direct) {
            return send(call, out, finish);
        }
        // peer.request() needs an identified connection.
        var peer = channel.peers.get(plan.peer) || channel.peers.add(plan.peer);
        peer.waitForIdentified(function identified(err) {
            if (err) {
                return finish(err);
            }
            start = Date.now();
            send(call, out, finish);
        });
    }

    function send(call, out, finish) {
        var kind = call.kind || 'raw';
        var chan = sub(serviceOf(call));
        try {
            if (kind === 'raw') {
                var arg2 = common.argFrom(call.arg2);
                var arg3 = common.argFrom(call.arg3);
                chan.request(requestOptions(call, 'raw'))
                    .send(call.method, arg2, arg3, function onRaw(err, res, r2, r3) {
                        if (err) {
                            return finish(err);
                        }
                        out.ok = res.ok;
                        out.code = res.code;
                        out.headers = res.headers;
                        out.checksumType = res.checksum ? res.checksum.type : null;
                        out.arg2 = common.describe(r2);
                        out.arg3 = common.describe(r3);
                        out.arg2_echoed = Buffer.compare(r2 || Buffer.alloc(0), arg2) === 0;
                        out.arg3_echoed = Buffer.compare(r3 || Buffer.alloc(0), arg3) === 0;
                        finish(null);
                    });
            } else if (kind === 'json') {
                tjson = tjson || TChannelJSON({logParseFailures: false});
                var jreq = chan.request(requestOptions(call, 'json'));
                tjson.send(jreq, call.method, call.head, call.body, function onJson(err, res) {
                    if (err) {
                        return finish(err);
                    }
                    out.ok = res.ok;
                    out.head = res.head === undefined ? null : res.head;
                    out.body = res.body === undefined ? null : res.body;
                    finish(null);
                });
            } else if (kind === 'thrift') {
                var svc = serviceOf(call);
                tthrift[svc] = tthrift[svc] || TChannelAsThrift({
                    source: common.thriftSource(),
                    channel: chan,
                    logParseFailures: false
                });
                tthrift[svc].request(requestOptions(call, 'thrift'))
                    .send(call.method, call.head, call.body, function onThrift(err, res) {
                        if (err) {
                            return finish(err);
                        }
                        out.ok = res.ok;
                        out.head = res.head;
                        out.body = res.body;
                        out.typeName = res.typeName || null;
                        finish(null);
                    });
            } else if (kind === 'ping') {
                ping(chan, function onPing(err) {
                    if (!err) {
                        out.pong = true;
                    }
                    finish(err);
                });
            } else {
                finish(new Error('unknown call kind ' + kind));
            }
        } catch (e) {
            finish(e);
        }
    }

    // A ping on the (identified) connection to the peer.
    function ping(chan, cb) {
        var peer = channel.peers.get(plan.peer) || channel.peers.add(plan.peer);
        peer.waitForIdentified(function identified(err) {
            if (err) {
                return cb(err);
            }
            var conn = peer.getIdentifiedOutConnection ?
                peer.getIdentifiedOutConnection() : peer.connections[0];
            var timer = setTimeout(function late() {
                cb(new Error('no ping res within 2 s'));
            }, 2000);
            var id = conn.ping();
            conn.pingResponseEvent.on(function pong(info) {
                if (info && info.id === id) {
                    clearTimeout(timer);
                    cb(null);
                }
            });
        });
    }

    var calls = plan.calls || [];
    var pending = calls.length;
    function allDone() {
        var conns = 0;
        var peer = channel.peers.get(plan.peer);
        if (peer) {
            conns = peer.connections.length;
        }
        common.emit({summary: {calls: calls.length, connections: conns}});
        // Leave the process without waiting for the peer to hang up.
        setTimeout(function exit() {
            process.exit(0);
        }, 20);
    }
    if (pending === 0) {
        return allDone();
    }
    if (plan.parallel) {
        calls.forEach(function each(call) {
            setTimeout(function go() {
                run(call, function one() {
                    if (--pending === 0) {
                        allDone();
                    }
                });
            }, call.at || 0);
        });
    } else {
        var i = 0;
        var next = function next() {
            if (i >= calls.length) {
                return allDone();
            }
            var call = calls[i++];
            setTimeout(function go() {
                run(call, next);
            }, call.at || 0);
        };
        next();
    }
}

var input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', function onData(d) {
    input += d;
});
process.stdin.on('end', function onEnd() {
    main(JSON.parse(input));
});
