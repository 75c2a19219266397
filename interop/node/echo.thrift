// The Thrift service both interop peers serve (service name "interop-thrift").
// tchan has no Thrift code generation: tests/interop_node.rs writes and reads
// these structs' TBinaryProtocol bytes by hand.

struct EchoResult {
    1: required string value
}

exception EchoFailure {
    1: required string reason
    2: required i32 code
}

service Echo {
    // Returns "<value> x<count>"; throws
    // EchoFailure when value is "boom".
    EchoResult echo(1: required string value, 2: required i32 count)
        throws (1: EchoFailure failure)
}
