'use strict';
// A node tchannel 4.0.1 server of `Kitchen` from an IDL loaded at run time
// (thriftrw, as tchannel/as/thrift uses it), for tests/interop_node/thrift_idl.rs.
//
//   node thrift-idl-server.js [--idl FILE.thrift]
//
// --idl defaults to tests/data/thrift/everything.thrift (it includes
// shared.thrift). thriftrw loads it with `strict: false`: in strict mode
// thriftrw refuses a struct field that is neither required, optional nor
// defaulted (shared.NotFound.what, ...), which Apache Thrift allows.
//
// Listens on 127.0.0.1 with an ephemeral port and prints
// `listening on 127.0.0.1:PORT` as its first stdout line. Then one JSON line
// per request a handler sees:
//   {"req": {"service", "method", "headers": transport headers,
//            "head": thrift arg2 headers, "args": the args as tchan's JSON}}
// (tchan's JSON mapping, SCHEME-15: binary base64, i64 exact numbers, enums
// by name, maps with other than string keys as [key, value] arrays.)
//
// Services:
//   kitchen: Kitchen::echo (returns its `e`; throws Invalid when e.name is
//     "invalid", shared.NotFound when it is "missing"), Kitchen::nothing
//     (void), Kitchen::add (i64 sum, wrapping), Kitchen::ping (inherited from
//     shared.Base: "pong from node"), and node's own Meta::health /
//     Meta::thriftIDL (tchannel/as/thrift's isHealthy, node_modules/tchannel/
//     as/meta.thrift: the older no-argument health()).
//   kitchen-sick: the same, but Meta::health answers
//     {ok: false, message: "node kitchen is sick"}.
//
// Also a library for thrift-idl-client.js: loading the IDL, tchan-JSON <->
// thriftrw values, JSON text with integers beyond 2^53.

var path = require('path');
var thriftrw = require('thriftrw');

var DEFAULT_IDL = path.join(__dirname, '..', '..', 'tests', 'data', 'thrift', 'everything.thrift');
var META_THRIFT = path.join(__dirname, 'node_modules', 'tchannel', 'as', 'meta.thrift');

function loadIdl(file) {
    return new thriftrw.Thrift({
        entryPoint: path.resolve(file || DEFAULT_IDL),
        allowFilesystemAccess: true,
        strict: false
    });
}

// A struct type by tchan's name: `Everything`, `shared.Point` (a type of an
// included file), `Kitchen::echo_args`, `Kitchen::echo_result`.
function typeNamed(thrift, name) {
    var dot = name.indexOf('.');
    if (name.indexOf('::') < 0 && dot > 0) {
        var mod = thrift.modules[name.slice(0, dot)];
        if (!mod) {
            throw new Error('no included file ' + name.slice(0, dot));
        }
        return mod.getType(name.slice(dot + 1));
    }
    return thrift.getType(name);
}

// ----- JSON text with exact big integers -----

var MARK = '@@tchan-i64@@';

// Parses JSON; integers that a double cannot hold exactly become BigInt.
function parseJson(text) {
    var out = '';
    var num = /-?\d+(\.\d+)?([eE][+-]?\d+)?/y;
    var i = 0;
    while (i < text.length) {
        var c = text[i];
        if (c === '"') {
            var j = i + 1;
            while (j < text.length && text[j] !== '"') {
                j += text[j] === '\\' ? 2 : 1;
            }
            out += text.slice(i, j + 1);
            i = j + 1;
            continue;
        }
        if (c === '-' || (c >= '0' && c <= '9')) {
            num.lastIndex = i;
            var m = num.exec(text);
            if (m) {
                var tok = m[0];
                var isInt = !m[1] && !m[2];
                if (isInt && !Number.isSafeInteger(Number(tok))) {
                    out += '"' + MARK + tok + '"';
                } else {
                    out += tok;
                }
                i += tok.length;
                continue;
            }
        }
        out += c;
        i++;
    }
    return JSON.parse(out, function revive(k, v) {
        if (typeof v === 'string' && v.indexOf(MARK) === 0) {
            return BigInt(v.slice(MARK.length));
        }
        return v;
    });
}

// JSON.stringify with BigInt written as plain digits.
function stringifyJson(v, indent) {
    var text = JSON.stringify(v, function replace(k, x) {
        return typeof x === 'bigint' ? MARK + x.toString() : x;
    }, indent);
    return text.replace(new RegExp('"' + MARK + '(-?\\d+)"', 'g'), '$1');
}

// Text that is equal for equal values: object keys sorted, integers (Number
// or BigInt) as digits.
function canon(v) {
    if (typeof v === 'bigint') {
        return v.toString();
    }
    if (Array.isArray(v)) {
        return '[' + v.map(canon).join(',') + ']';
    }
    if (v && typeof v === 'object') {
        return '{' + Object.keys(v).sort().map(function each(k) {
            return JSON.stringify(k) + ':' + canon(v[k]);
        }).join(',') + '}';
    }
    return JSON.stringify(v);
}

// ----- tchan's JSON <-> thriftrw values -----

function kindOf(t) {
    if (t.namesToValues) {
        return 'enum';
    }
    if (t.fields) {
        return 'struct';
    }
    if (t.to) {
        return kindOf(t.to);
    }
    return t.name;
}

function base(t) {
    return t.to ? base(t.to) : t;
}

// As 8 bytes: thriftrw 3.12 also takes 16 hex digits, but throws a
// RangeError (writeInt32BE) when the high word has its top bit set, so a
// negative i64 cannot be written that way.
function i64ToBuffer(v) {
    var b = Buffer.alloc(8);
    b.writeBigInt64BE(BigInt.asIntN(64, BigInt(v)));
    return b;
}

function i64FromBuffer(b) {
    var n = b.readBigInt64BE(0);
    return Number.isSafeInteger(Number(n)) ? Number(n) : n;
}

// tchan JSON -> the value thriftrw writes.
function fromJson(t, v, where) {
    t = base(t);
    where = where || '';
    var k = kindOf(t);
    if (v === null || v === undefined) {
        return null;
    }
    switch (k) {
    case 'boolean':
    case 'i8':
    case 'byte':
    case 'i16':
    case 'i32':
    case 'double':
    case 'string':
        return v;
    case 'i64':
        return i64ToBuffer(v);
    case 'binary':
        return Buffer.from(v, 'base64');
    case 'enum':
        return typeof v === 'number' ? t.valuesToNames[v] : v;
    case 'list':
    case 'set':
        return v.map(function each(x, i) {
            return fromJson(t.valueType, x, where + '[' + i + ']');
        });
    case 'map':
        return mapFromJson(t, v, where);
    case 'struct':
        var out = {};
        Object.keys(v).forEach(function check(name) {
            if (!t.fieldsByName[name]) {
                throw new Error(where + ': ' + t.name + ' has no field ' + name);
            }
        });
        t.fields.forEach(function each(f) {
            if (v[f.name] !== undefined && v[f.name] !== null) {
                out[f.name] = fromJson(f.valueType, v[f.name], where + '.' + f.name);
            }
        });
        return out;
    default:
        throw new Error(where + ': no JSON mapping for thriftrw type ' + k);
    }
}

function mapFromJson(t, v, where) {
    var kt = base(t.rw.ktype);
    var vt = t.rw.vtype;
    var pairs;
    if (kindOf(kt) === 'string') {
        pairs = Object.keys(v).map(function pair(key) {
            return [key, v[key]];
        });
    } else {
        pairs = v;
    }
    if (t.surface === Array) {
        // js.type = "entries": an array of [k, v].
        return pairs.map(function each(p) {
            return [fromJson(kt, p[0], where + ' key'), fromJson(vt, p[1], where + '[' + p[0] + ']')];
        });
    }
    // The default form: an object; thriftrw writes its keys through the key
    // type (so i32 keys go as the strings "1", "-3").
    var out = {};
    pairs.forEach(function each(p) {
        out[String(fromJson(kt, p[0], where + ' key'))] = fromJson(vt, p[1], where + '[' + p[0] + ']');
    });
    return out;
}

// A thriftrw value -> tchan JSON (undefined for an absent field).
function toJson(t, x) {
    t = base(t);
    if (x === null || x === undefined) {
        return undefined;
    }
    var k = kindOf(t);
    switch (k) {
    case 'boolean':
    case 'i8':
    case 'byte':
    case 'i16':
    case 'i32':
    case 'double':
    case 'string':
    case 'enum':
        return x;
    case 'i64':
        if (Buffer.isBuffer(x)) {
            return i64FromBuffer(x);
        }
        if (typeof x === 'string') {
            return i64FromBuffer(Buffer.from(x, 'hex'));
        }
        return x;
    case 'binary':
        return Buffer.from(x).toString('base64');
    case 'list':
    case 'set':
        return x.map(function each(e) {
            return toJson(t.valueType, e);
        });
    case 'map':
        var kt = base(t.rw.ktype);
        var vt = t.rw.vtype;
        var pairs = Array.isArray(x) ? x : Object.keys(x).map(function pair(key) {
            return [key, x[key]];
        });
        if (kindOf(kt) === 'string') {
            var obj = {};
            pairs.forEach(function each(p) {
                obj[p[0]] = toJson(vt, p[1]);
            });
            return obj;
        }
        return pairs.map(function each(p) {
            var key = p[0];
            if (typeof key === 'string' && ['i8', 'byte', 'i16', 'i32', 'double'].indexOf(kindOf(kt)) >= 0) {
                key = Number(key);
            }
            return [toJson(kt, key), toJson(vt, p[1])];
        });
    case 'struct':
        var out = {};
        t.fields.forEach(function each(f) {
            var v = toJson(f.valueType, x[f.name]);
            if (v !== undefined) {
                out[f.name] = v;
            }
        });
        return out;
    default:
        throw new Error('no JSON mapping for thriftrw type ' + k);
    }
}

// `got` (tchan JSON of what thriftrw read) without the fields thriftrw
// filled in from IDL defaults: those `sent` did not have and whose value is
// the default. Returns the number of such fields removed, recursively.
function dropDefaults(t, sent, got) {
    t = base(t);
    var n = 0;
    var k = kindOf(t);
    if (k === 'struct' && got && sent && typeof got === 'object') {
        t.fields.forEach(function each(f) {
            if (!(f.name in got)) {
                return;
            }
            if (!(f.name in sent) && f.defaultValue !== null && f.defaultValue !== undefined &&
                canon(got[f.name]) === canon(toJson(f.valueType, fromJson(f.valueType, f.defaultValue)))) {
                delete got[f.name];
                n++;
            } else if (f.name in sent) {
                n += dropDefaults(f.valueType, sent[f.name], got[f.name]);
            }
        });
    } else if ((k === 'list' || k === 'set') && Array.isArray(sent) && Array.isArray(got)) {
        for (var i = 0; i < got.length && i < sent.length; i++) {
            n += dropDefaults(t.valueType, sent[i], got[i]);
        }
    }
    return n;
}

module.exports = {
    DEFAULT_IDL: DEFAULT_IDL,
    META_THRIFT: META_THRIFT,
    loadIdl: loadIdl,
    typeNamed: typeNamed,
    parseJson: parseJson,
    stringifyJson: stringifyJson,
    canon: canon,
    fromJson: fromJson,
    toJson: toJson,
    dropDefaults: dropDefaults
};

// ----- the server -----

function serve(argv) {
    var TChannel = require('tchannel');
    var TChannelAsThrift = require('tchannel/as/thrift');
    var common = require('./common');

    var at = argv.indexOf('--idl');
    var idlFile = at >= 0 ? argv[at + 1] : DEFAULT_IDL;
    var thrift = loadIdl(idlFile);

    var channel = new TChannel({logger: common.stderrLogger('node-thrift-idl-server', false)});

    function emit(obj) {
        process.stdout.write(stringifyJson(obj) + '\n');
    }

    function kitchen(serviceName, health) {
        var sub = channel.makeSubChannel({serviceName: serviceName});
        var tthrift = TChannelAsThrift({
            compiledSpec: thrift,
            channel: sub,
            isHealthy: health,
            loadMetaAsync: false,
            logParseFailures: true
        });
        // Meta::health and Meta::thriftIDL before we say we listen.
        tthrift.registerHealthSync();

        function handle(method, fn) {
            var endpoint = 'Kitchen::' + method;
            var argsType = thrift.getType(endpoint + '_args');
            tthrift.register(sub, endpoint, {}, function onCall(ctx, req, head, body, cb) {
                emit({req: {
                    service: req.serviceName,
                    method: endpoint,
                    headers: req.headers,
                    head: head,
                    args: toJson(argsType, body)
                }});
                try {
                    fn(head, body, cb);
                } catch (e) {
                    cb(e);
                }
            });
        }

        handle('echo', function echo(head, body, cb) {
            var e = body.e;
            if (e.name === 'invalid') {
                return cb(null, {
                    ok: false,
                    typeName: 'invalid',
                    head: {'x-thrown': 'invalid'},
                    body: {message: 'node refuses ' + e.name, code: e.number === null ? -1 : e.number}
                });
            }
            if (e.name === 'missing') {
                return cb(null, {
                    ok: false,
                    typeName: 'missing',
                    head: {'x-thrown': 'missing'},
                    body: {what: 'node has no ' + e.name}
                });
            }
            cb(null, {ok: true, head: head, body: e});
        });
        handle('nothing', function nothing(head, body, cb) {
            cb(null, {ok: true, head: head, body: null});
        });
        handle('add', function add(head, body, cb) {
            var sum = BigInt.asIntN(64, body.a.readBigInt64BE(0) + body.b.readBigInt64BE(0));
            cb(null, {ok: true, head: head, body: i64ToBuffer(sum)});
        });
        handle('ping', function ping(head, body, cb) {
            cb(null, {ok: true, head: head, body: 'pong from node'});
        });
    }

    kitchen('kitchen', function healthy() {
        return {ok: true};
    });
    kitchen('kitchen-sick', function sick() {
        return {ok: false, message: 'node kitchen is sick'};
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
    process.stdin.on('end', stop);
    process.stdin.resume();
}

if (require.main === module) {
    serve(process.argv.slice(2));
}
