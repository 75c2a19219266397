// The IDL of tchan's typed Thrift example (examples/thrift-echo).
include "shared.thrift"

enum Mood {
    CALM = 1,
    LOUD = 2,
}

struct EchoRequest {
    1: required string message,
    2: optional i32 times = 1,
    3: optional Mood mood,
    4: optional list<shared.Tag> tags,
}

struct EchoResponse {
    1: required string message,
    2: required i64 length,
}

exception EchoError {
    1: required string reason,
}

service Echo extends shared.Base {
    EchoResponse echo(1: EchoRequest req) throws (1: EchoError failure),
    void ping(),
}
