//! Thrift from an IDL at run time (feature `thrift`): [`Idl`] loads a
//! `.thrift` file and its includes (pilota-thrift-parser), [`value`] maps
//! JSON to TBinaryProtocol structs and back (Apache thrift's protocol, every
//! limit set to the input's length). The CLI's `--thrift`, `tchan decode
//! --thrift` and the `Meta` service use it (`spec/08-arg-schemes.md`).

pub mod generated;
mod schema;
pub mod value;

pub use schema::{
    EnumDef, Field, Function, Idl, IdlError, Requiredness, Service, StructDef, StructKind, Type,
};
pub use value::{ValueError, decode_fields, encode_fields};
