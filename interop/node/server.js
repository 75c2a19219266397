'use strict';
// A node tchannel 4.0.1 server for tchan's interop tests.
//
//   node server.js [--verbose]
//
// Listens on 127.0.0.1 with an ephemeral port and prints
// `listening on 127.0.0.1:PORT` as its first stdout line. Then, for every
// request a handler sees, one JSON line {"req": {...}} describing it
// (service, method, transport headers, tracing, checksum type, ttl, arg
// sizes). Warnings from tchannel go to stderr.
//
// Services:
//   interop (raw): echo, sleep (arg3 = milliseconds, then echo), fail (app
//     error: call res code 1 with the args), busy, declined, unexpected (error
//     frames via res.sendError), info (arg3 = the {"req"} JSON), drain (answers,
//     then starts channel.drain)
//   interop (json): json_echo ({head, body} back), json_fail (ok: false)
//   interop-thrift (thrift, echo.thrift): Echo::echo
//   interop-busy: every request is refused busy by the channel's isBusy hook

var TChannel = require('tchannel');
var TChannelJSON = require('tchannel/as/json');
var TChannelAsThrift = require('tchannel/as/thrift');
var States = require('tchannel/reqres_states');
var common = require('./common');

var verbose = process.argv.indexOf('--verbose') >= 0;

var channel = new TChannel({
    logger: common.stderrLogger('node-server', verbose),
    isBusy: function isBusy(req) {
        return req.serviceName === 'interop-busy' ? 'interop server busy' : null;
    }
});

function seen(req, arg2, arg3) {
    return {
        service: req.serviceName,
        method: String(req.arg1),
        headers: req.headers,
        tracing: common.tracingJson(req.tracing),
        checksumType: req.checksum ? req.checksum.type : null,
        ttl: req.timeout,
        arg2_len: arg2 ? arg2.length : null,
        arg3_len: arg3 ? arg3.length : null
    };
}

function record(req, arg2, arg3) {
    var info = seen(req, arg2, arg3);
    common.emit({req: info});
    return info;
}

// ----- raw -----
var raw = channel.makeSubChannel({serviceName: 'interop'});

raw.register('echo', function echo(req, res, arg2, arg3) {
    record(req, arg2, arg3);
    res.headers.as = 'raw';
    res.sendOk(arg2, arg3);
});

raw.register('sleep', function sleep(req, res, arg2, arg3) {
    record(req, arg2, arg3);
    var ms = parseInt(String(arg3), 10) || 0;
    setTimeout(function later() {
        res.headers.as = 'raw';
        // After the ttl ran out node has already answered with a timeout
        // error frame; sending again would only log.
        if (res.state === States.Initial) {
            res.sendOk(arg2, arg3);
        }
    }, ms);
});

raw.register('fail', function fail(req, res, arg2, arg3) {
    record(req, arg2, arg3);
    res.headers.as = 'raw';
    res.sendNotOk(arg2, arg3);
});

raw.register('busy', function busy(req, res, arg2, arg3) {
    record(req, arg2, arg3);
    res.sendError('Busy', 'interop handler busy');
});

raw.register('declined', function declined(req, res, arg2, arg3) {
    record(req, arg2, arg3);
    res.sendError('Declined', 'interop handler declined');
});

raw.register('unexpected', function unexpected(req, res, arg2, arg3) {
    record(req, arg2, arg3);
    res.sendError('UnexpectedError', 'handler exploded');
});

raw.register('info', function info(req, res, arg2, arg3) {
    var i = record(req, arg2, arg3);
    res.headers.as = 'raw';
    res.sendOk(arg2, Buffer.from(JSON.stringify(i)));
});

raw.register('drain', function drain(req, res, arg2, arg3) {
    record(req, arg2, arg3);
    res.headers.as = 'raw';
    res.sendOk(arg2, arg3);
    setImmediate(function startDrain() {
        channel.drain('interop drain', function drained() {
            common.emit({drained: true});
        });
    });
});

// ----- json -----
var tjson = TChannelJSON({logParseFailures: false});

tjson.register(raw, 'json_echo', {}, function jsonEcho(ctx, req, head, body, cb) {
    common.emit({req: seen(req), head: head, body: body});
    cb(null, {ok: true, head: head, body: body});
});

tjson.register(raw, 'json_fail', {}, function jsonFail(ctx, req, head, body, cb) {
    common.emit({req: seen(req), head: head, body: body});
    var err = new Error('refused by the interop server');
    err.type = 'interop.json-refused';
    err.detail = 'json_fail always fails';
    cb(null, {ok: false, head: {reason: 'refused'}, body: err});
});

// ----- thrift -----
var thriftChan = channel.makeSubChannel({serviceName: 'interop-thrift'});
var tthrift = TChannelAsThrift({source: common.thriftSource(), logParseFailures: false});

tthrift.register(thriftChan, 'Echo::echo', {}, function thriftEcho(ctx, req, head, body, cb) {
    common.emit({req: seen(req), head: head, body: body});
    if (body.value === 'boom') {
        cb(null, {
            ok: false,
            typeName: 'failure',
            head: {'x-fail': 'yes'},
            body: {reason: 'bad value: ' + body.value, code: 42}
        });
        return;
    }
    cb(null, {ok: true, head: head, body: {value: body.value + ' x' + body.count}});
});

// isBusy refuses every interop-busy request before dispatch; this handler
// only shows up if it did not.
channel.makeSubChannel({serviceName: 'interop-busy'}).register('echo', function never(req, res) {
    res.sendError('UnexpectedError', 'isBusy should have refused this');
});

channel.listen(0, '127.0.0.1', function onListening() {
    var a = channel.address();
    process.stdout.write('listening on ' + a.address + ':' + a.port + '\n');
});

function stop() {
    process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The test harness closes our stdin when it is done with us.
process.stdin.on('end', stop);
process.stdin.resume();
