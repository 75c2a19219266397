//! `tchan decode`: the output contract of spec/10-decode-cli.md, line by line.

use std::io::Write;
use std::process::{Command, Stdio};

use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};
// The decoder is CLI code (src/bin/tchan/inspect.rs); the tests compile it in.
#[path = "../src/bin/tchan/inspect.rs"]
#[allow(dead_code)]
mod inspect;
use inspect::{Outcome, decode_stream, parse_hex};
use tchan::frame::{
    ArgChunks, CallContinue, CallReq, ChecksumField, ChecksumType, ErrorCode, ErrorFrame, Flags,
    Frame, Opaque, Ping, Tracing, TransportHeaders,
};

fn run(stream: &[u8]) -> (Vec<Value>, Outcome) {
    let mut out = Vec::new();
    let outcome = decode_stream(stream, None, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    (
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        outcome,
    )
}

fn run_hex(hex: &str) -> (Vec<Value>, Outcome) {
    let (bytes, err) = parse_hex(hex.as_bytes());
    let mut out = Vec::new();
    let outcome = decode_stream(&bytes, err, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    (
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        outcome,
    )
}

fn frames(fs: &[Frame]) -> Vec<u8> {
    let mut b = BytesMut::new();
    for f in fs {
        f.encode(&mut b).unwrap();
    }
    b.to_vec()
}

fn req(id: u32, flags: u8, headers: TransportHeaders, args: &[&[u8]]) -> Frame {
    Frame::CallReq(CallReq {
        id,
        flags: Flags(flags),
        ttl: 500,
        tracing: Tracing::default(),
        service: Bytes::from_static(b"svc"),
        headers,
        checksum: ChecksumField::NONE,
        args: ArgChunks::from_chunks(args),
    })
}

fn cont(id: u32, flags: u8, args: &[&[u8]]) -> Frame {
    Frame::CallReqContinue(CallContinue {
        id,
        flags: Flags(flags),
        checksum: ChecksumField::NONE,
        args: ArgChunks::from_chunks(args),
    })
}

fn raw_headers() -> TransportHeaders {
    TransportHeaders::from_pairs([("cn", "c"), ("as", "raw")]).unwrap()
}

const ZERO_TRACING: &str = r#""tracing":{"span_id":"0000000000000000","parent_id":"0000000000000000","trace_id":"0000000000000000","flags":0}"#;

#[test]
fn node_bug_shape_is_missing_args_exactly_as_the_spec_example() {
    // [CLI-3] [CLI-4] [CLI-5] [CLI-6] [CLI-12] [CLI-25] the spec's example, byte for byte
    let hex = format!(
        "0048030000000002000000000000000000000001f4{}037376630202636e016302617303726177000002616200026364",
        "00".repeat(25)
    );
    let (bytes, _) = parse_hex(hex.as_bytes());
    let mut out = Vec::new();
    assert_eq!(
        decode_stream(&bytes, None, &mut out).unwrap(),
        Outcome::Clean
    );
    let frame = r#"{"kind":"frame","offset":0,"size":72,"type":"0x03","id":2}"#;
    let message = format!(
        r#"{{"kind":"call_req","id":2,"service":"svc","ttl":500,"flags":0,"headers":{{"cn":"c","as":"raw"}},{ZERO_TRACING},"checksum_type":"none","checksum_ok":true,"args":["6162","6364"],"violations":["missing_args"]}}"#
    );
    let want = format!("{frame}\n{message}\n");
    assert_eq!(String::from_utf8(out).unwrap(), want);
}

#[test]
fn extra_args_and_duplicate_header_keys() {
    // [CLI-6] [CLI-7] violations in list order; last duplicate wins, first position kept
    let headers = TransportHeaders::from_pairs([("as", "raw"), ("cn", "a"), ("cn", "b")]).unwrap();
    let (lines, outcome) = run(&frames(&[req(3, 0, headers, &[b"", b"", b"", b"x"])]));
    assert_eq!(outcome, Outcome::Clean);
    assert_eq!(lines[1]["headers"], json!({"as": "raw", "cn": "b"}));
    assert_eq!(
        serde_json::to_string(&lines[1]["headers"]).unwrap(),
        r#"{"as":"raw","cn":"b"}"#
    );
    assert_eq!(lines[1]["args"], json!(["", "", "", "78"]));
    assert_eq!(lines[1]["violations"], json!(["extra_args", "bad_header"]));
}

#[test]
fn unknown_types_and_pings_get_their_own_lines() {
    // [CLI-4] [FRAME-10] single-frame messages: a frame line then the message line
    let stream = frames(&[
        Frame::Unknown(Opaque {
            frame_type: tchan::frame::FrameType(0x42),
            id: 9,
            payload: Bytes::from_static(b"zz"),
        }),
        Frame::PingReq(Ping::new(2)),
    ]);
    let (lines, outcome) = run(&stream);
    assert_eq!(outcome, Outcome::Clean);
    assert_eq!(
        lines,
        vec![
            json!({"kind":"frame","offset":0,"size":18,"type":"0x42","id":9}),
            json!({"kind":"unknown","id":9,"size":18}),
            json!({"kind":"frame","offset":18,"size":16,"type":"0xd0","id":2}),
            json!({"kind":"ping_req","id":2}),
        ]
    );
}

#[test]
fn size_under_16_is_a_decode_error_at_its_frame() {
    // [CLI-14] [CLI-15] [CLI-24] [FRAME-4] decode_error at the frame's offset, even with < 16
    // bytes left; the reason is free text (only checked to name the size)
    let mut stream = frames(&[Frame::PingReq(Ping::new(2))]);
    stream.extend_from_slice(&[0x00, 0x0c, 0xd0]);
    let (lines, outcome) = run(&stream);
    assert_eq!(outcome, Outcome::DecodeError);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["kind"], "decode_error");
    assert_eq!(lines[2]["offset"], 16);
    assert!(lines[2]["reason"].as_str().unwrap().contains("12"));
    assert_eq!(lines[2].as_object().unwrap().len(), 3);
}

fn tiny_frames() -> Vec<Vec<u8>> {
    // spec/05-fragmentation.md §5.5: arg1 split across frames, arg2 closed by an empty chunk.
    let f = [
        req(7, 1, raw_headers(), &[b"ec"]),
        cont(7, 1, &[b"ho", b"hi"]),
        cont(7, 0, &[b"", b"12345678"]),
    ];
    f.iter().map(|f| f.to_bytes().unwrap().to_vec()).collect()
}

#[test]
fn a_message_spread_over_frames_gets_one_line_after_its_last_frame() {
    // [CLI-4] [CLI-16] [FRAG-2] [FRAG-4] continue frames join their open message
    let stream: Vec<u8> = tiny_frames().concat();
    let (lines, outcome) = run(&stream);
    assert_eq!(outcome, Outcome::Clean);
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["frame", "frame", "frame", "call_req"]);
    assert_eq!(lines[3]["flags"], 1, "the first frame's flags");
    assert_eq!(
        lines[3]["args"],
        json!([
            hex::encode("echo"),
            hex::encode("hi"),
            hex::encode("12345678")
        ])
    );
    assert!(lines[3].get("violations").is_none());
}

#[test]
fn open_messages_are_incomplete_at_the_end_and_truncation_is_an_error() {
    // [CLI-13] [CLI-19] [CLI-20]
    let f = tiny_frames();
    let two = [f[0].clone(), f[1].clone()].concat();
    let (lines, outcome) = run(&two);
    assert_eq!(outcome, Outcome::Clean);
    assert_eq!(lines.last().unwrap(), &json!({"kind":"incomplete","id":7}));
    let mut truncated = two.clone();
    truncated.extend_from_slice(&f[2][..10]);
    let (lines, outcome) = run(&truncated);
    assert_eq!(outcome, Outcome::DecodeError);
    assert_eq!(lines.last().unwrap()["kind"], "decode_error");
    assert_eq!(lines.last().unwrap()["offset"], two.len());
    assert!(lines.iter().all(|l| l["kind"] != "incomplete"));
}

#[test]
fn reused_keys_report_the_old_message_incomplete_at_the_end_in_open_order() {
    // [CLI-18] [CLI-19]
    let stream = frames(&[
        req(1, 1, raw_headers(), &[b"a"]),
        req(2, 1, raw_headers(), &[b"b"]),
        req(1, 0, raw_headers(), &[b"x", b"y", b"z"]),
    ]);
    let (lines, _) = run(&stream);
    let tail: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "incomplete").collect();
    assert_eq!(
        tail,
        [
            &json!({"kind":"incomplete","id":1}),
            &json!({"kind":"incomplete","id":2})
        ]
    );
    assert_eq!(lines[lines.len() - 3]["kind"], "call_req");
}

#[test]
fn orphan_continue_frames_get_only_a_frame_line() {
    // [CLI-17]
    let (lines, outcome) = run(&frames(&[cont(5, 0, &[b"x"])]));
    assert_eq!(outcome, Outcome::Clean);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["kind"], "frame");
}

#[test]
fn a_malformed_body_replaces_the_frame_line_with_a_decode_error() {
    // [CLI-23] [FRAG-7] a chunk that runs past its frame
    let mut bad = req(4, 0, raw_headers(), &[b"abc", b"", b""])
        .to_bytes()
        .unwrap()
        .to_vec();
    let n = bad.len();
    bad[n - 8] = 0x09; // arg1 length (low byte) now runs past the end
    let mut stream = frames(&[Frame::PingReq(Ping::new(1))]);
    stream.extend_from_slice(&bad);
    let (lines, outcome) = run(&stream);
    assert_eq!(outcome, Outcome::DecodeError);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["kind"], "decode_error");
    assert_eq!(lines[2]["offset"], 16);
}

#[test]
fn unknown_checksum_type_is_a_decode_error() {
    // [CLI-21] [CSUM-3]
    let mut f = req(4, 0, raw_headers(), &[b"a", b"b", b"c"])
        .to_bytes()
        .unwrap()
        .to_vec();
    // csumtype sits right before the args: 3 chunks of 1 byte = 9 bytes, then the type byte.
    let n = f.len();
    f[n - 10] = 0x07;
    let (lines, outcome) = run(&f);
    assert_eq!(outcome, Outcome::DecodeError);
    assert_eq!(
        lines,
        vec![json!({"kind":"decode_error","offset":0,"reason":lines[0]["reason"]})]
    );
}

#[test]
fn bad_hex_is_a_decode_error_at_the_frame_being_read() {
    // [CLI-1] [CLI-22] whitespace and case ignored; odd length or bad digit is an error
    let ping = hex::encode(frames(&[Frame::PingReq(Ping::new(3))]));
    let (lines, outcome) = run_hex(&format!(" {}\n{}", ping.to_uppercase(), "0"));
    assert_eq!(outcome, Outcome::DecodeError);
    assert_eq!(
        lines[2],
        json!({"kind":"decode_error","offset":16,"reason":lines[2]["reason"]})
    );
    let (lines, outcome) = run_hex(&format!("{ping}00zz"));
    assert_eq!(outcome, Outcome::DecodeError);
    assert_eq!(lines[2]["offset"], 16);
}

#[test]
fn empty_input_prints_nothing() {
    // [CLI-28]
    let (lines, outcome) = run(b"");
    assert!(lines.is_empty());
    assert_eq!(outcome, Outcome::Clean);
    let (lines, outcome) = run_hex(" \n\t");
    assert!(lines.is_empty());
    assert_eq!(outcome, Outcome::Clean);
}

#[test]
fn bad_checksums_are_reported_not_fatal() {
    // [CLI-10] [CLI-11] [CSUM-16] checksum_ok false, exit status 0
    let f = Frame::CallReq(CallReq {
        id: 8,
        flags: Flags(0),
        ttl: 10,
        tracing: Tracing::default(),
        service: Bytes::from_static(b"svc"),
        headers: raw_headers(),
        checksum: ChecksumField {
            ty: ChecksumType::CRC32C,
            value: 0xdead_beef,
        },
        args: ArgChunks::from_chunks([b"a", b"b", b"c"]),
    });
    let (lines, outcome) = run(&frames(&[f]));
    assert_eq!(outcome, Outcome::Clean);
    assert_eq!(lines[1]["checksum_type"], "crc32c");
    assert_eq!(lines[1]["checksum_ok"], false);
}

#[test]
fn non_utf8_text_is_replaced_and_error_frames_have_their_fields() {
    // [CLI-7] [CLI-8] [CLI-9]
    let headers = TransportHeaders::from_pairs([(&b"as"[..], &b"r\xffw"[..])]).unwrap();
    let e = ErrorFrame::new(
        0xffff_ffff,
        ErrorCode::DECLINED,
        Tracing {
            span_id: 1,
            parent_id: 2,
            trace_id: 0xabcdef,
            flags: 1,
        },
        Bytes::from_static(b"going \xfe away"),
    );
    let (lines, _) = run(&frames(&[
        req(1, 0, headers, &[b"", b"", b""]),
        Frame::Error(e),
    ]));
    assert_eq!(lines[1]["headers"]["as"], "r\u{fffd}w");
    assert_eq!(
        lines[3],
        json!({"kind":"error","id":4294967295u32,"code":4,
               "tracing":{"span_id":"0000000000000001","parent_id":"0000000000000002",
                          "trace_id":"0000000000abcdef","flags":1},
               "message":"going \u{fffd} away"})
    );
}

#[test]
fn the_binary_exits_125_on_local_errors_and_0_on_help() {
    // [CLI-29]
    let bin = env!("CARGO_BIN_EXE_tchan");
    let st = Command::new(bin)
        .args(["decode", "/nonexistent/capture.bin"])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(125));
    assert!(st.stdout.is_empty());
    let st = Command::new(bin)
        .args(["decode", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(125));
    let st = Command::new(bin)
        .args(["decode", "--help"])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(0));
    // A decode error exits 1.
    let mut child = Command::new(bin)
        .args(["decode"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&[0, 3, 0xd0])
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("decode_error")
    );
}

#[test]
fn a_checksum_type_change_is_a_violation_and_fails_the_checksum() {
    // [CLI-26] [CSUM-11]
    let first = Frame::CallReq(CallReq {
        id: 9,
        flags: Flags(1),
        ttl: 10,
        tracing: Tracing::default(),
        service: Bytes::from_static(b"svc"),
        headers: raw_headers(),
        checksum: ChecksumField::NONE,
        args: ArgChunks::from_chunks([b"a", b"b"]),
    });
    let second = Frame::CallReqContinue(CallContinue {
        id: 9,
        flags: Flags(0),
        checksum: ChecksumField {
            ty: ChecksumType::CRC32,
            value: 0,
        },
        args: ArgChunks::from_chunks([&b""[..], b"c"]),
    });
    let (lines, outcome) = run(&frames(&[first, second]));
    assert_eq!(outcome, Outcome::Clean);
    let msg = lines.last().unwrap();
    assert_eq!(msg["checksum_type"], "none", "named from the first frame");
    assert_eq!(msg["checksum_ok"], false);
    assert_eq!(msg["violations"], json!(["checksum_type_changed"]));
    assert_eq!(msg["args"], json!(["61", "62", "63"]));
}

#[test]
fn no_connection_rules_and_no_size_limits() {
    // [CLI-27] init frames anywhere, ids in any order, a 1 MiB message: all decoded
    use tchan::frame::{CallHead, Init, InitHeaders, MessageWriter, ReqHead};
    let init = Frame::InitRes(Init {
        id: 77,
        version: 2,
        headers: InitHeaders::from_pairs([("host_port", "x")]).unwrap(),
        trailing: Bytes::new(),
    });
    let mut stream = frames(&[req(5, 0, raw_headers(), &[b"", b"", b""]), init]);
    let mut big = BytesMut::new();
    MessageWriter::write_message(
        &mut big,
        1,
        CallHead::Req(ReqHead {
            ttl: 10,
            tracing: Tracing::default(),
            service: Bytes::from_static(b"svc"),
            headers: raw_headers(),
        }),
        ChecksumType::CRC32C,
        65535,
        [b"m", b"", &vec![1u8; 1 << 20]],
    )
    .unwrap();
    stream.extend_from_slice(&big);
    let (lines, outcome) = run(&stream);
    assert_eq!(outcome, Outcome::Clean);
    let kinds: Vec<&str> = lines
        .iter()
        .filter(|l| l["kind"] != "frame")
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["call_req", "init_res", "call_req"]);
    assert_eq!(lines.last().unwrap()["checksum_ok"], true);
}

/// The frames of a node capture (`interop/fixtures/NAME.json`), as bytes.
fn fixture_bytes(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("interop/fixtures/{name}.json"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let mut out = Vec::new();
    for f in v["frames"].as_array().unwrap() {
        out.extend(hex::decode(f["hex"].as_str().unwrap()).unwrap());
    }
    out
}

fn decode_thrift(stream: &[u8], idl: &str) -> (Vec<Value>, Option<i32>) {
    let dir = std::env::temp_dir().join(format!("tchan-decode-thrift-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("capture.bin");
    std::fs::write(&input, stream).unwrap();
    let idl = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(idl);
    let out = Command::new(env!("CARGO_BIN_EXE_tchan"))
        .args(["decode", "--thrift"])
        .arg(&idl)
        .arg(&input)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, out.status.code())
}

#[test]
fn decode_thrift_adds_the_decoded_structs_after_args() {
    // [CLI-30] node's thrift_echo capture: the request, then the response
    // (same id: its method comes from the request).
    let mut stream = fixture_bytes("thrift_echo.c2s");
    stream.extend(fixture_bytes("thrift_echo.s2c"));
    let (lines, code) = decode_thrift(&stream, "interop/node/echo.thrift");
    assert_eq!(code, Some(0));
    let req = lines.iter().find(|l| l["kind"] == "call_req").unwrap();
    assert_eq!(req["thrift"], json!({"value": "some-string", "count": 3}));
    let keys: Vec<&String> = req.as_object().unwrap().keys().collect();
    let at = |k: &str| keys.iter().position(|x| *x == k).unwrap();
    assert_eq!(at("thrift"), at("args") + 1, "right after args: {keys:?}");
    let res = lines.iter().find(|l| l["kind"] == "call_res").unwrap();
    assert_eq!(
        res["thrift"],
        json!({"success": {"value": "some-string x3"}})
    );
    // A declared exception, by its field name.
    let mut stream = fixture_bytes("thrift_exception.c2s");
    stream.extend(fixture_bytes("thrift_exception.s2c"));
    let (lines, _) = decode_thrift(&stream, "interop/node/echo.thrift");
    let res = lines.iter().find(|l| l["kind"] == "call_res").unwrap();
    assert_eq!(
        res["thrift"],
        json!({"failure": {"reason": "bad value: boom", "code": 42}})
    );
    // An IDL whose Echo::echo returns a string: the request decodes (same
    // field types), the response (a struct in field 0) gets thrift_error.
    let mut stream = fixture_bytes("thrift_echo.c2s");
    stream.extend(fixture_bytes("thrift_echo.s2c"));
    let (lines, code) = decode_thrift(&stream, "tests/data/thrift/everything.thrift");
    assert_eq!(code, Some(0), "exit codes unchanged");
    let req = lines.iter().find(|l| l["kind"] == "call_req").unwrap();
    assert_eq!(req["thrift"], json!({"s": "some-string", "n": 3}));
    let res = lines.iter().find(|l| l["kind"] == "call_res").unwrap();
    assert!(res.get("thrift").is_none(), "{res}");
    assert!(
        res["thrift_error"].as_str().unwrap().contains("wire type"),
        "{res}"
    );
    let (_, code) = decode_thrift(&stream, "tests/data/thrift/no-such-file.thrift");
    assert_eq!(code, Some(125), "an IDL that does not load");
    // A raw call names no method of the IDL: neither key.
    let (lines, _) = decode_thrift(
        &fixture_bytes("error_app_raw.c2s"),
        "interop/node/echo.thrift",
    );
    for l in lines.iter().filter(|l| l["kind"] == "call_req") {
        assert!(
            l.get("thrift").is_none() && l.get("thrift_error").is_none(),
            "{l}"
        );
    }
}
