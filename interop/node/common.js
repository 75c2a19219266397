'use strict';
// Helpers shared by server.js and client.js.

var fs = require('fs');
var path = require('path');

// The deterministic byte pattern both sides use for generated args:
// byte i of pattern(len, seed) is (i % 251 + seed) & 0xff. tests/interop_node.rs
// builds the same bytes.
function pattern(len, seed) {
    var b = Buffer.alloc(len);
    for (var i = 0; i < len; i++) {
        b[i] = (i % 251 + seed) & 0xff;
    }
    return b;
}

// An arg as given in a call spec: a string (UTF-8), {hex: "..."} or
// {pattern: length, seed: n}.
function argFrom(spec) {
    if (spec === undefined || spec === null) {
        return Buffer.alloc(0);
    }
    if (typeof spec === 'string') {
        return Buffer.from(spec, 'utf8');
    }
    if (typeof spec.hex === 'string') {
        return Buffer.from(spec.hex, 'hex');
    }
    if (typeof spec.pattern === 'number') {
        return pattern(spec.pattern, spec.seed || 0);
    }
    throw new Error('bad arg spec: ' + JSON.stringify(spec));
}

// A buffer as reported in results: its length, and its bytes as hex and
// (when printable) text when it is small.
function describe(buf) {
    buf = buf || Buffer.alloc(0);
    var out = {len: buf.length};
    if (buf.length <= 512) {
        out.hex = buf.toString('hex');
        var text = buf.toString('utf8');
        if (/^[\x20-\x7e]*$/.test(text)) {
            out.text = text;
        }
    }
    return out;
}

// An 8-byte tracing id as node keeps it ([hi, lo] u32s) to 16 hex digits.
function idHex(id) {
    id = id || [0, 0];
    function h(n) {
        return ('00000000' + (n >>> 0).toString(16)).slice(-8);
    }
    return h(id[0]) + h(id[1]);
}

function idFromHex(s) {
    return [parseInt(s.slice(0, 8), 16) >>> 0, parseInt(s.slice(8, 16), 16) >>> 0];
}

function tracingJson(t) {
    if (!t) {
        return null;
    }
    return {
        span: idHex(t.spanid),
        parent: idHex(t.parentid),
        trace: idHex(t.traceid),
        flags: t.flags
    };
}

// An error as reported in results.
function errorJson(err) {
    return {
        type: err.type || null,
        codeName: err.codeName || null,
        isErrorFrame: !!err.isErrorFrame,
        message: String(err.message)
    };
}

// tchannel's logger interface; warnings and errors go to stderr, where the
// Rust tests collect them (they explain failures and show node's reactions).
function stderrLogger(prefix, verbose) {
    function log(level) {
        return function write(msg, info) {
            var extra = '';
            if (info) {
                try {
                    var seen = [];
                    extra = ' ' + JSON.stringify(info, function replacer(k, v) {
                        if (typeof v === 'object' && v !== null) {
                            if (seen.indexOf(v) >= 0) {
                                return '[circular]';
                            }
                            seen.push(v);
                        }
                        if (v instanceof Error) {
                            return {type: v.type, message: v.message};
                        }
                        return v;
                    });
                } catch (e) {
                    extra = ' [unprintable info]';
                }
            }
            process.stderr.write(prefix + ' ' + level + ': ' + msg + extra.slice(0, 2000) + '\n');
        };
    }
    function noop() {}
    return {
        debug: noop,
        info: verbose ? log('info') : noop,
        warn: log('warn'),
        error: log('error'),
        fatal: log('fatal')
    };
}

function thriftSource() {
    return fs.readFileSync(path.join(__dirname, 'echo.thrift'), 'utf8');
}

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

module.exports = {
    pattern: pattern,
    argFrom: argFrom,
    describe: describe,
    idHex: idHex,
    idFromHex: idFromHex,
    tracingJson: tracingJson,
    errorJson: errorJson,
    stderrLogger: stderrLogger,
    thriftSource: thriftSource,
    emit: emit
};
