fn main() {
    // The example's own service.
    tchan_build::compile("idl/echo.thrift", "echo.rs");
    // Every Thrift type, checked against values node encoded.
    tchan_build::compile("../../tests/data/thrift/everything.thrift", "everything.rs");
}
