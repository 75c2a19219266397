'use strict';
// A node tchannel 4.0.1 server that advertises itself to a relay with the
// package's own HyperbahnClient, for tchan's relay interop tests
// (tests/interop_node/relay.rs).
//
//   node hyperbahn-server.js SERVICE RELAY_HOST:PORT [--verbose]
//
// Listens on 127.0.0.1 with an ephemeral port, serves SERVICE::echo, and
// advertises SERVICE to the relay (hostPortList = [RELAY]). stdout:
//   {"listening": "127.0.0.1:PORT"}
//   {"advertised": {"service", "hostPort", "relay", "result"}}   the ready line,
//       printed on the client's first 'advertised' event (result: the
//       relay's answer body, e.g. {"connectionCount": 1})
//   {"req": {"as", "arg2_len", "arg3_len"}}    one per echo request served
//   {"inbound": "HOST:PORT"}    one per connection accepted (a relay that
//       dials back instead of using the connection advertised on)
// HyperbahnClient's warnings and errors (advertisement failures with the
// relay's error) and tchannel's go to stderr.
//
// SERVICE::echo answers by the request's `as` transport header:
//   as=json  a json endpoint (tchannel/as/json): {ok: true, head, body} back
//   other    raw: arg2 and arg3 back as they came, `as` of the request kept

var TChannel = require('tchannel');
var TChannelJSON = require('tchannel/as/json');
var HyperbahnClient = require('tchannel/hyperbahn');
var common = require('./common');

var args = process.argv.slice(2).filter(function notFlag(a) {
    return a.indexOf('--') !== 0;
});
var verbose = process.argv.indexOf('--verbose') >= 0;
if (args.length !== 2) {
    process.stderr.write('usage: node hyperbahn-server.js SERVICE RELAY_HOST:PORT [--verbose]\n');
    process.exit(2);
}
var service = args[0];
var relay = args[1];

var logger = common.stderrLogger('hyperbahn-server[' + service + ']', verbose);
var channel = new TChannel({logger: logger});
var sub = channel.makeSubChannel({serviceName: service});

// The json endpoint as tchannel/as/json builds it, captured so that one arg1
// (`echo`) can serve raw and json calls.
var jsonEcho = null;
TChannelJSON({logParseFailures: true}).register({
    logger: logger,
    register: function capture(name, handler) {
        jsonEcho = handler;
    }
}, 'echo', {}, function echoJson(ctx, req, head, body, cb) {
    cb(null, {ok: true, head: head, body: body});
});

sub.register('echo', function echo(req, res, arg2, arg3) {
    var scheme = req.headers.as;
    common.emit({req: {
        as: scheme || null,
        arg2_len: arg2 ? arg2.length : 0,
        arg3_len: arg3 ? arg3.length : 0
    }});
    if (scheme === 'json') {
        return jsonEcho(req, res, arg2, arg3);
    }
    res.headers.as = scheme || 'raw';
    res.sendOk(arg2, arg3);
});

channel.listen(0, '127.0.0.1', function onListening() {
    var a = channel.address();
    var hostPort = a.address + ':' + a.port;
    common.emit({listening: hostPort});
    channel.serverSocket.on('connection', function onInbound(sock) {
        common.emit({inbound: sock.remoteAddress + ':' + sock.remotePort});
    });

    var hyperbahn = new HyperbahnClient({
        tchannel: channel,
        serviceName: service,
        callerName: service,
        hostPortList: [relay],
        logger: logger,
        // No tcollector behind the relay: spans would only be refused.
        reportTracing: false,
        hardFail: false
    });
    var announced = false;
    hyperbahn.on('advertised', function onAdvertised() {
        if (announced) {
            return;
        }
        announced = true;
        var r = hyperbahn.latestAdvertisementResult;
        common.emit({advertised: {
            service: service,
            hostPort: hostPort,
            relay: relay,
            result: r ? r.body : null
        }});
    });
    hyperbahn.on('error', function onError(err) {
        process.stderr.write('hyperbahn-server[' + service + '] HyperbahnClient error: ' +
            JSON.stringify(common.errorJson(err)) + '\n');
    });
    hyperbahn.advertise();
});

function stop() {
    process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The test harness closes our stdin when it is done with us.
process.stdin.on('end', stop);
process.stdin.resume();
