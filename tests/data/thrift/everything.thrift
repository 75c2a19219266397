// One IDL with every kind of Thrift type: tests and the CLI's --thrift.
include "shared.thrift"

typedef string Name
typedef list<shared.Point> Path

const i32 LIMIT = 10
const string GREETING = "hello"

union Shape {
    1: shared.Point point,
    2: Path path,
    3: double radius,
}

struct Everything {
    1: required bool flag,
    2: byte small,
    3: i16 medium,
    4: i32 number,
    5: i64 big,
    6: double ratio,
    7: Name name,
    8: binary blob,
    9: list<string> tags,
    10: set<i32> ids,
    11: map<string, i64> counts,
    12: map<i32, string> names,
    13: shared.Color color,
    14: optional shared.Point where = {"x": 1, "y": 2},
    15: Shape shape,
    16: shared.Timestamp at,
    17: list<list<i32>> grid,
    18: optional Everything next,
}

exception Invalid {
    1: string message,
    2: i32 code,
}

service Kitchen extends shared.Base {
    Everything echo(1: Everything e) throws (1: Invalid invalid, 2: shared.NotFound missing),
    void nothing(),
    oneway void fire(1: string what),
    i64 add(1: i64 a, 2: i64 b),
}

service Echo {
    string echo(1: string s, 2: i32 n),
}
