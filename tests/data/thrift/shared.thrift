// Included by everything.thrift: types used across files.
namespace rs shared

enum Color {
    RED = 1,
    GREEN,
    BLUE = 10,
}

struct Point {
    1: required i32 x,
    2: required i32 y,
}

typedef i64 Timestamp

exception NotFound {
    1: string what,
}

service Base {
    string ping(),
}
