'use strict';
// Stub for the `metrics` package, which no longer exists on the npm registry.
// tchannel 4.0.1 lists it as a dependency but requires it only from its own
// tests and benchmarks, never from the library code these scripts load.
module.exports = {};
