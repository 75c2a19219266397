//! Thrift at run time from an IDL (`tchan::idl`): loading with includes and
//! extends, JSON to TBinaryProtocol and back, and hostile bytes
//! (`spec/08-arg-schemes.md` section 3).

use std::path::PathBuf;

use serde_json::json;
use tchan::idl::{Idl, Type, decode_fields, encode_fields};

fn everything() -> Idl {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/thrift/everything.thrift");
    Idl::load(&p).unwrap()
}

#[test]
fn an_idl_loads_with_its_includes_typedefs_and_extends() {
    let idl = everything();
    let (svc, ping) = idl
        .method("Kitchen::ping")
        .expect("inherited from shared.Base");
    assert_eq!(svc.name, "Kitchen");
    assert_eq!(ping.returns, Type::String);
    let (_, echo) = idl.method("Kitchen::echo").unwrap();
    assert_eq!(echo.throws.len(), 2);
    assert_eq!(echo.result_fields()[0].id, 0);
    let (_, nothing) = idl.method("Kitchen::nothing").unwrap();
    assert!(nothing.result_fields().is_empty(), "void: no success field");
    assert!(idl.method("Kitchen::nope").is_none());
    assert!(idl.method("Nope::echo").is_none());
    let e = idl.structs.iter().find(|s| s.name == "Everything").unwrap();
    // typedef Name = string, typedef shared.Timestamp = i64.
    assert_eq!(
        e.fields.iter().find(|f| f.name == "name").unwrap().ty,
        Type::String
    );
    assert_eq!(
        e.fields.iter().find(|f| f.name == "at").unwrap().ty,
        Type::I64
    );
    let color = idl.enums.iter().find(|x| x.name == "shared.Color").unwrap();
    assert_eq!(
        color.values,
        [("RED".into(), 1), ("GREEN".into(), 2), ("BLUE".into(), 10)]
    );
}

#[test]
fn idl_errors_name_the_file_and_the_item() {
    let dir = std::env::temp_dir().join(format!("tchan-idl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.thrift");
    std::fs::write(&bad, "struct S { 1: Missing m }").unwrap();
    let e = Idl::load(&bad).unwrap_err();
    assert!(e.0.contains("unknown type Missing"), "{e}");
    std::fs::write(&bad, "struct S { 1: i32 a, }\nstruct {").unwrap();
    let e = Idl::load(&bad).unwrap_err();
    assert!(e.0.contains("bad.thrift"), "{e}");
    std::fs::write(&bad, "include \"nowhere.thrift\"").unwrap();
    assert!(Idl::load(&bad).unwrap_err().0.contains("nowhere.thrift"));
    std::fs::write(&bad, "struct S { 1: i32 a, 1: i32 b }").unwrap();
    assert!(Idl::load(&bad).unwrap_err().0.contains("used twice"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_echo_fixture_encodes_byte_for_byte() {
    // [SCHEME-11] thrift_echo.c2s.json: Echo::echo(1: string s, 2: i32 n)
    let idl = everything();
    let (_, f) = idl.method("Echo::echo").unwrap();
    let bytes = encode_fields(
        &idl,
        "echo_args",
        &f.args,
        &json!({"s": "some-string", "n": 3}),
    )
    .unwrap();
    let want = b"\x0b\x00\x01\x00\x00\x00\x0bsome-string\x08\x00\x02\x00\x00\x00\x03\x00";
    assert_eq!(bytes, want);
    let back = decode_fields(&idl, "echo_args", &f.args, &bytes).unwrap();
    assert_eq!(back, json!({"s": "some-string", "n": 3}));
    // [SCHEME-12] The void result is the empty struct.
    let (_, nothing) = idl.method("Kitchen::nothing").unwrap();
    assert_eq!(
        encode_fields(&idl, "r", &nothing.result_fields(), &json!({})).unwrap(),
        b"\x00"
    );
}

#[test]
fn every_type_round_trips_through_json() {
    // [SCHEME-15]
    let idl = everything();
    let (_, f) = idl.method("Kitchen::echo").unwrap();
    let e = json!({
        "flag": true, "small": -3, "medium": 300, "number": -70000,
        "big": 9007199254740993i64, "ratio": 0.25, "name": "ünïcode",
        "blob": "AAEC/w==", "tags": ["a", "b"], "ids": [1, 2, 3],
        "counts": {"x": 1, "y": -2}, "names": [[1, "one"], [2, "two"]],
        "color": "BLUE", "where": {"x": 5, "y": 6}, "shape": {"radius": 1.5},
        "at": 1700000000000i64, "grid": [[1], [2, 3], []],
        "next": {"flag": false, "shape": {"path": [{"x": 1, "y": 1}]}}
    });
    let args = json!({"e": e});
    let bytes = encode_fields(&idl, "echo_args", &f.args, &args).unwrap();
    let back = decode_fields(&idl, "echo_args", &f.args, &bytes).unwrap();
    assert_eq!(back, args);
    // An enum given by number decodes to its name; an unknown one stays a number.
    let mut by_number = args.clone();
    by_number["e"]["color"] = json!(2);
    let back = decode_fields(
        &idl,
        "a",
        &f.args,
        &encode_fields(&idl, "a", &f.args, &by_number).unwrap(),
    )
    .unwrap();
    assert_eq!(back["e"]["color"], "GREEN");
    by_number["e"]["color"] = json!(77);
    let back = decode_fields(
        &idl,
        "a",
        &f.args,
        &encode_fields(&idl, "a", &f.args, &by_number).unwrap(),
    )
    .unwrap();
    assert_eq!(back["e"]["color"], 77);
    // A declared exception in the result struct, by field name.
    let r = f.result_fields();
    let ex = json!({"invalid": {"message": "no", "code": 7}});
    let bytes = encode_fields(&idl, "echo_result", &r, &ex).unwrap();
    assert_eq!(bytes[..3], [0x0c, 0x00, 0x01], "field 1");
    assert_eq!(decode_fields(&idl, "echo_result", &r, &bytes).unwrap(), ex);
}

#[test]
fn json_that_does_not_fit_the_idl_is_refused_by_name() {
    let idl = everything();
    let (_, f) = idl.method("Kitchen::echo").unwrap();
    let cases = [
        (json!({"nope": 1}), "no field named \"nope\""),
        (
            json!({"e": {"flag": true, "nope": 1}}),
            "no field named \"nope\"",
        ),
        (json!({"e": {}}), "required field \"flag\""),
        (json!({"e": {"flag": 1}}), "expected a bool"),
        (
            json!({"e": {"flag": true, "small": 300}}),
            "echo_args.e.small",
        ),
        (
            json!({"e": {"flag": true, "color": "PINK"}}),
            "no value \"PINK\"",
        ),
        (json!({"e": {"flag": true, "blob": "***"}}), "not base64"),
        (
            json!({"e": {"flag": true, "shape": {"radius": 1, "point": {"x": 1, "y": 2}}}}),
            "exactly one",
        ),
    ];
    for (v, says) in cases {
        let e = encode_fields(&idl, "echo_args", &f.args, &v).unwrap_err();
        assert!(e.0.contains(says), "{v}: {e}");
    }
}

#[test]
fn hostile_bytes_are_typed_errors_without_allocations_by_claimed_lengths() {
    // [SCHEME-17]
    let idl = everything();
    let (_, f) = idl.method("Kitchen::echo").unwrap();
    let good = encode_fields(
        &idl,
        "a",
        &f.args,
        &json!({"e": {"flag": true, "tags": ["x"]}}),
    )
    .unwrap();
    // Every truncation fails cleanly.
    for cut in 0..good.len() {
        assert!(
            decode_fields(&idl, "a", &f.args, &good[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    // Bytes after the struct.
    let mut extra = good.clone();
    extra.push(0);
    assert!(
        decode_fields(&idl, "a", &f.args, &extra)
            .unwrap_err()
            .0
            .contains("after the struct")
    );
    // A known field with the wrong wire type.
    let wrong = [0x08, 0x00, 0x01, 0, 0, 0, 1, 0x00];
    assert!(
        decode_fields(&idl, "a", &f.args, &wrong)
            .unwrap_err()
            .0
            .contains("wire type")
    );
    // A string whose length runs past the end; a negative one.
    let (_, echo) = idl.method("Echo::echo").unwrap();
    let long = [0x0b, 0x00, 0x01, 0x7f, 0xff, 0xff, 0xff, b'a', 0x00];
    assert!(decode_fields(&idl, "a", &echo.args, &long).is_err());
    let neg = [0x0b, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0x00];
    assert!(decode_fields(&idl, "a", &echo.args, &neg).is_err());
    // A map of 2^31 - 1 entries claimed in 10 bytes: refused before any
    // entry is read (the claim is over the input's length).
    let e_counts = [
        0x0c, 0x00, 0x01, // field 1: Everything
        0x0d, 0x00, 0x0b, 0x0b, 0x0a, 0x7f, 0xff, 0xff, 0xff, // field 11: map<string,i64>
        0x00, 0x00,
    ];
    let err = decode_fields(&idl, "a", &f.args, &e_counts).unwrap_err();
    assert!(!err.0.is_empty());
    // Nesting past the limit (Everything.next.next...): refused, no stack overflow.
    let mut deep = Vec::new();
    deep.extend_from_slice(&[0x0c, 0x00, 0x01]);
    for _ in 0..200 {
        deep.extend_from_slice(&[0x0c, 0x00, 0x12]);
    }
    deep.extend(std::iter::repeat_n(0u8, 202));
    let err = decode_fields(&idl, "a", &f.args, &deep).unwrap_err();
    assert!(err.0.contains("deep") || err.0.contains("depth"), "{err}");
    // Invalid UTF-8 in a string.
    let bad_utf8 = [0x0b, 0x00, 0x01, 0, 0, 0, 2, 0xc3, 0x28, 0x00];
    assert!(decode_fields(&idl, "a", &echo.args, &bad_utf8).is_err());
}

/// The fields of `Struct`, `Service::method_args` or `Service::method_result`.
fn fields_of(idl: &Idl, name: &str) -> Vec<tchan::idl::Field> {
    if let Some(m) = name.strip_suffix("_args").filter(|_| name.contains("::")) {
        return idl.method(m).unwrap().1.args.clone();
    }
    if let Some(m) = name.strip_suffix("_result").filter(|_| name.contains("::")) {
        return idl.method(m).unwrap().1.result_fields();
    }
    idl.structs
        .iter()
        .find(|s| s.name == name)
        .unwrap()
        .fields
        .clone()
}

#[test]
fn node_golden_vectors_encode_and_decode_byte_for_byte() {
    // [SCHEME-11] [SCHEME-15] 54 values encoded by node tchannel 4.0.1's
    // thriftrw (interop/fixtures/thrift/thrift_types.json, captured by
    // interop/node/thrift-idl-client.js golden).
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let fx: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("interop/fixtures/thrift/thrift_types.json")).unwrap(),
    )
    .unwrap();
    let idl = Idl::load(&root.join(fx["idl"].as_str().unwrap())).unwrap();
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 50);
    for c in cases {
        let name = c["struct"].as_str().unwrap();
        let fields = fields_of(&idl, name);
        let want = hex::decode(c["hex"].as_str().unwrap()).unwrap();
        let got = encode_fields(&idl, name, &fields, &c["json"]).unwrap();
        assert_eq!(
            hex::encode(&got),
            hex::encode(&want),
            "{name} {}",
            c["json"]
        );
        assert_eq!(
            decode_fields(&idl, name, &fields, &want).unwrap(),
            c["json"],
            "{name}"
        );
    }
}
