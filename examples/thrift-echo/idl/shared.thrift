// Included by echo.thrift.
struct Tag {
    1: required string name,
}

service Base {
    string version(),
}
