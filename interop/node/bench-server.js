'use strict';
// A plain node tchannel 4.0.1 echo server for benchmarks (benches/compare.sh).
//
//   node bench-server.js
//
// Prints `listening on 127.0.0.1:PORT` first. Service `bench`, raw method
// `echo`: answers with the request's arg2 and arg3. No logging per call.

var TChannel = require('tchannel');

var channel = new TChannel({logger: null});
var sub = channel.makeSubChannel({serviceName: 'bench'});
sub.register('echo', function echo(req, res, arg2, arg3) {
    res.headers.as = 'raw';
    res.sendOk(arg2, arg3);
});

channel.listen(0, '127.0.0.1', function listening() {
    var a = channel.address();
    process.stdout.write('listening on ' + a.address + ':' + a.port + '\n');
});

function stop() {
    channel.close(function closed() {
        process.exit(0);
    });
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
