//! Any bytes -> `tchan::idl::decode_fields` against an IDL with every Thrift
//! type (`tests/data/thrift/everything.thrift`): the args struct of
//! `Kitchen::echo` and its result struct.
//!
//! Oracle: no panic, no stack overflow, no allocation sized by a claimed
//! length (libFuzzer's -rss_limit catches one) ([SCHEME-17]); whatever
//! decodes re-encodes, and the re-encoded bytes decode to the same JSON
//! ([SCHEME-15]).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tchan::idl::{Field, Idl, decode_fields, encode_fields};

fn schema() -> &'static (Idl, Vec<Field>, Vec<Field>) {
    static S: OnceLock<(Idl, Vec<Field>, Vec<Field>)> = OnceLock::new();
    S.get_or_init(|| {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/thrift/everything.thrift");
        let idl = Idl::load(std::path::Path::new(p)).expect("the test IDL loads");
        let (_, f) = idl.method("Kitchen::echo").expect("Kitchen::echo");
        let (args, result) = (f.args.clone(), f.result_fields());
        (idl, args, result)
    })
}

fuzz_target!(|data: &[u8]| {
    let (idl, args, result) = schema();
    for fields in [args, result] {
        if let Ok(v) = decode_fields(idl, "x", fields, data) {
            let again = encode_fields(idl, "x", fields, &v).expect("a decoded value re-encodes");
            let back = decode_fields(idl, "x", fields, &again).expect("re-encoded bytes decode");
            assert_eq!(back, v);
        }
    }
});
