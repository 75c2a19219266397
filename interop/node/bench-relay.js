'use strict';
// A node tchannel 4.0.1 relay for benchmarks (benches/relay.sh): the
// package's own RelayHandler (lazy relaying on, as Hyperbahn ran it).
//
//   node bench-relay.js SERVICE HOST:PORT
//
// Prints `listening on 127.0.0.1:PORT` first; relays SERVICE to HOST:PORT.

var TChannel = require('tchannel');
var RelayHandler = require('tchannel/relay_handler');

var service = process.argv[2];
var peer = process.argv[3];
var relay = new TChannel({logger: null, useLazyRelaying: true});
var sub = relay.makeSubChannel({serviceName: service, peers: [peer]});
sub.handler = new RelayHandler(sub);

relay.listen(0, '127.0.0.1', function listening() {
    var a = relay.address();
    process.stdout.write('listening on ' + a.address + ':' + a.port + '\n');
});

function stop() {
    relay.close(function closed() {
        process.exit(0);
    });
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
