'use strict';
// A node tchannel 4.0.1 thrift client over an IDL loaded at run time
// (thriftrw), for tests/interop_node/thrift_idl.rs. Two modes:
//
//   node thrift-idl-client.js < plan.json
//
// The plan (JSON on stdin; integers beyond 2^53 are read exactly):
//   {"peer": "127.0.0.1:PORT", "idl": FILE (default everything.thrift),
//    "calls": [call, ...]}
// A call:
//   {"id": "label", "service": "kitchen", "method": "Kitchen::echo",
//    "head": {k: v},              // thrift arg2 headers
//    "args": {...},               // the args struct as tchan's JSON
//    "echo": "e"}                 // optional: check that the return value
//                                 // equals args[echo]
// `Meta::*` methods are called with node's own meta IDL
// (node_modules/tchannel/as/meta.thrift: the no-argument health()).
//
// Output: one JSON line per call, then {"summary": {...}}:
//   {"id", "ok", "typeName", "head", "body": the return value (or the
//    exception) as tchan's JSON, "sent": the args as node wrote them, as
//    tchan's JSON, "sent_hex": the args bytes node wrote,
//    "echo_equal": bool, "defaults_filled": n}   (echo calls)
//   {"id", "err": {type, codeName, isErrorFrame, message}}
// `echo_equal` compares the value node sent with the value it read back,
// after taking out the fields thriftrw fills in from IDL defaults when it
// reads a struct without them (counted in `defaults_filled`).
//
//   node thrift-idl-client.js golden < fixture.json
//
// Reads interop/fixtures/thrift_types.json ({"idl", "cases": [{"struct",
// "json"}]}), encodes every case's json with thriftrw and prints the fixture
// again with each case's "hex" (the bytes node wrote). Exits 1 when node
// cannot encode a case. When thriftrw reading its own bytes back does not
// give the case's json (IDL defaults it fills in aside), the case also gets
// "node_reads_back": what it read, as tchan's JSON.

var path = require('path');
var lib = require('./thrift-idl-server');

function readStdin(cb) {
    var input = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', function onData(d) {
        input += d;
    });
    process.stdin.on('end', function onEnd() {
        cb(lib.parseJson(input));
    });
}

function emit(obj) {
    process.stdout.write(lib.stringifyJson(obj) + '\n');
}

function idlPath(p) {
    if (!p) {
        return lib.DEFAULT_IDL;
    }
    return path.isAbsolute(p) ? p : path.join(__dirname, '..', '..', p);
}

function golden(fixture) {
    var thrift = lib.loadIdl(idlPath(fixture.idl));
    var failed = false;
    var cases = fixture.cases.map(function each(c, i) {
        var out = {struct: c.struct, json: c.json};
        var t = lib.typeNamed(thrift, c.struct);
        var value = lib.fromJson(t, c.json, c.struct);
        var res = t.toBufferResult(value);
        if (res.err) {
            process.stderr.write('case ' + i + ' (' + c.struct + '): node cannot encode: ' +
                res.err.message + '\n');
            failed = true;
            out.hex = null;
            return out;
        }
        out.hex = res.value.toString('hex');
        var back = t.fromBufferResult(res.value);
        if (back.err) {
            process.stderr.write('case ' + i + ': node cannot read its own bytes: ' +
                back.err.message + '\n');
            failed = true;
            return out;
        }
        var got = lib.toJson(t, back.value);
        lib.dropDefaults(t, c.json, got);
        if (lib.canon(got) !== lib.canon(lib.toJson(t, value))) {
            // Kept in the fixture: what node's own reader makes of its bytes
            // (thriftrw 3.12 reads byte/i8 unsigned: -2 comes back as 254).
            out.node_reads_back = got;
        }
        return out;
    });
    process.stdout.write(lib.stringifyJson({idl: fixture.idl, cases: cases}, 2) + '\n');
    process.exit(failed ? 1 : 0);
}

function run(plan) {
    var TChannel = require('tchannel');
    var TChannelAsThrift = require('tchannel/as/thrift');
    var common = require('./common');

    var thrift = lib.loadIdl(idlPath(plan.idl));
    var meta = lib.loadIdl(lib.META_THRIFT);
    var channel = new TChannel({logger: common.stderrLogger('node-thrift-idl-client', false)});
    var subs = {};
    var asThrift = {};

    function sub(service) {
        if (!subs[service]) {
            subs[service] = channel.makeSubChannel({
                serviceName: service,
                peers: [plan.peer],
                requestDefaults: {headers: {cn: 'interop-thrift-idl-client'}, hasNoParent: true}
            });
        }
        return subs[service];
    }

    function call(c, done) {
        var out = {id: c.id};
        var service = c.service || 'kitchen';
        var isMeta = c.method.indexOf('Meta::') === 0;
        var spec = isMeta ? meta : thrift;
        var key = service + (isMeta ? '/meta' : '');
        var chan = sub(service);
        asThrift[key] = asThrift[key] || TChannelAsThrift({
            compiledSpec: spec,
            channel: chan,
            logParseFailures: true
        });
        var argsType = spec.getType(c.method + '_args');
        var resultType = spec.getType(c.method + '_result');
        var args = lib.fromJson(argsType, c.args || {}, c.method + ' args');
        out.sent = lib.toJson(argsType, args);
        var bytes = argsType.toBufferResult(args);
        out.sent_hex = bytes.err ? null : bytes.value.toString('hex');
        var req = asThrift[key].request({
            serviceName: service,
            hasNoParent: true,
            timeout: c.timeout || 3000,
            retryLimit: 0,
            headers: {cn: 'interop-thrift-idl-client'}
        });
        req.send(c.method, c.head || {}, args, function onResponse(err, res) {
            if (err) {
                out.err = common.errorJson(err);
                emit(out);
                return done();
            }
            out.ok = res.ok;
            out.typeName = res.typeName || null;
            out.head = res.head;
            var field = res.ok ? resultType.fieldsByName.success :
                resultType.fieldsByName[res.typeName];
            var body = field ? lib.toJson(field.valueType, res.body) : undefined;
            out.body = body === undefined ? null : body;
            if (c.echo && res.ok) {
                var eType = argsType.fieldsByName[c.echo].valueType;
                var sent = out.sent[c.echo];
                var got = lib.parseJson(lib.stringifyJson(body));
                out.defaults_filled = lib.dropDefaults(eType, sent, got);
                out.echo_equal = lib.canon(got) === lib.canon(sent);
            }
            emit(out);
            done();
        });
    }

    var calls = plan.calls || [];
    var i = 0;
    function next() {
        if (i >= calls.length) {
            var peer = channel.peers.get(plan.peer);
            emit({summary: {
                calls: calls.length,
                connections: peer ? peer.connections.length : 0
            }});
            setTimeout(function exit() {
                process.exit(0);
            }, 20);
            return;
        }
        var c = calls[i++];
        try {
            call(c, next);
        } catch (e) {
            emit({id: c.id, err: {type: 'client.exception', message: String(e && e.stack || e)}});
            next();
        }
    }
    next();
}

readStdin(function onInput(input) {
    if (process.argv[2] === 'golden') {
        golden(input);
    } else {
        run(input);
    }
});
