'use strict';
// A closed-loop node tchannel 4.0.1 client for benchmarks (benches/compare.sh).
//
//   node bench-client.js PEER --concurrency C --duration S --warmup S --size N
//
// Calls service `bench`, raw method `echo`, with an N-byte arg3, keeping C
// calls in flight over one connection, for S seconds after a warm-up. Prints
// one JSON line like `tchan bench --json`: calls, errors, calls_per_sec,
// p50_us, p90_us, p99_us, p999_us, cpu_us_per_call. Retries are off.

var TChannel = require('tchannel');

function arg(name, dflt) {
    var i = process.argv.indexOf('--' + name);
    return i > 0 ? Number(process.argv[i + 1]) : dflt;
}

var peer = process.argv[2];
var concurrency = arg('concurrency', 1);
var duration = arg('duration', 5) * 1000;
var warmup = arg('warmup', 1) * 1000;
var size = arg('size', 64);

var channel = new TChannel({logger: null});
var sub = channel.makeSubChannel({
    serviceName: 'bench',
    peers: [peer],
    requestDefaults: {headers: {cn: 'node-bench', as: 'raw'}, hasNoParent: true}
});
var payload = Buffer.alloc(size, 0x5a);
var lat = [];
var calls = 0;
var errors = 0;
var t0 = Date.now();
var measureFrom = t0 + warmup;
var end = measureFrom + duration;
var cpuStart = null;
var finished = 0;

function now() {
    var t = process.hrtime();
    return t[0] * 1e6 + t[1] / 1e3;
}

function worker() {
    var start = now();
    var startMs = Date.now();
    if (startMs >= end) {
        finished++;
        if (finished === concurrency) {
            report();
        }
        return;
    }
    var req;
    try {
        req = sub.request({serviceName: 'bench', timeout: 5000, retryLimit: 0, host: peer});
    } catch (e) {
        // node sometimes reports the peer identified before its connection is.
        setTimeout(worker, 10);
        return;
    }
    req.send('echo', '', payload, function done(err, res) {
            var stop = now();
            var stopMs = Date.now();
            if (startMs >= measureFrom && stopMs <= end) {
                if (cpuStart === null) {
                    cpuStart = process.cpuUsage();
                }
                if (err || !res.ok) {
                    errors++;
                } else {
                    calls++;
                    lat.push(stop - start);
                }
            }
            setImmediate(worker);
        });
}

function pct(sorted, q) {
    if (sorted.length === 0) {
        return 0;
    }
    var i = Math.min(sorted.length - 1, Math.floor(q * sorted.length));
    return Math.round(sorted[i]);
}

function report() {
    if (reported) {
        return;
    }
    reported = true;
    var cpu = process.cpuUsage(cpuStart || undefined);
    lat.sort(function cmp(a, b) {
        return a - b;
    });
    var out = {
        calls: calls,
        errors: errors,
        calls_per_sec: calls / (duration / 1000),
        p50_us: pct(lat, 0.5),
        p90_us: pct(lat, 0.9),
        p99_us: pct(lat, 0.99),
        p999_us: pct(lat, 0.999),
        cpu_us_per_call: calls ? (cpu.user + cpu.system) / calls : 0
    };
    process.stdout.write(JSON.stringify(out) + '\n');
    channel.close(function closed() {
        process.exit(0);
    });
}

// node can leave calls unanswered under heavy load (seen with 64 calls of
// 256 KiB in flight): report what was measured at end + 10 s regardless.
var reported = false;
setTimeout(function watchdog() {
    if (!reported) {
        process.stderr.write('some calls never finished; reporting what was measured\n');
        report();
    }
}, end - Date.now() + 10000).unref();

var p = channel.peers.add(peer);
p.waitForIdentified(function identified(err) {
    if (err) {
        process.stderr.write('cannot connect: ' + err.message + '\n');
        process.exit(7);
    }
    for (var i = 0; i < concurrency; i++) {
        worker();
    }
});
