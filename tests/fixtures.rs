//! Every capture from node tchannel 4.0.1 in `interop/fixtures/`: split,
//! decode, re-encode, reassemble, re-fragment, and `tchan decode`, each checked
//! against the fixture's own record of what was on the wire.

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use tokio_util::codec::Decoder;

// The decoder is CLI code (src/bin/tchan/inspect.rs); the tests compile it in.
#[path = "../src/bin/tchan/inspect.rs"]
#[allow(dead_code)]
mod inspect;
use tchan::codec::FrameCodec;
use tchan::frame::{
    ArgCollector, CallFragment, CallHead, ChecksumType, Frame, MessageWriter, Reassembler,
    ReassemblyError, ReassemblyLimits, ReqHead, ResHead, ResponseCode, Tracing, TransportHeaders,
};

struct Fixture {
    name: String,
    json: Value,
    stream: Vec<u8>,
}

fn fixtures() -> Vec<Fixture> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/fixtures");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("interop/fixtures exists") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let stream = hex::decode(json["stream_hex"].as_str().unwrap()).unwrap();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        out.push(Fixture { name, json, stream });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        out.len() >= 78,
        "expected the 78 captures, found {}",
        out.len()
    );
    out
}

/// Node's fragmentation bug: these requests end with only two args.
fn node_bug(name: &str) -> bool {
    name.starts_with("raw_arg2_ends_exactly_at_frame_end.c2s")
        || name.starts_with("raw_arg2_leaves_1_byte.c2s")
}

/// Splits a stream with the tokio-util codec, feeding it in odd-sized reads.
fn split(stream: &[u8], read_size: usize) -> Vec<Frame> {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in stream.chunks(read_size) {
        buf.extend_from_slice(chunk);
        while let Some(f) = codec.decode(&mut buf).unwrap() {
            frames.push(f);
        }
    }
    assert!(buf.is_empty(), "bytes left over");
    frames
}

fn tracing_matches(t: &Tracing, v: &Value) {
    assert_eq!(format!("{:016x}", t.span_id), v["span_id_hex"]);
    assert_eq!(format!("{:016x}", t.parent_id), v["parent_id_hex"]);
    assert_eq!(format!("{:016x}", t.trace_id), v["trace_id_hex"]);
    assert_eq!(t.flags, v["trace_flags"].as_u64().unwrap() as u8);
}

fn pairs<'a>(it: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Vec<(String, String)> {
    it.map(|(k, v)| {
        (
            String::from_utf8_lossy(k).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        )
    })
    .collect()
}

fn expected_pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_owned(),
                p[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn chunks_match(args: &tchan::frame::ArgChunks, decoded: &Value) {
    let lens: Vec<u64> = args.iter().map(|c| c.len() as u64).collect();
    let want: Vec<u64> = decoded["arg_chunk_lengths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(lens, want);
    for (c, w) in args.iter().zip(decoded["arg_chunks"].as_array().unwrap()) {
        if let Some(h) = w["hex"].as_str() {
            assert_eq!(hex::encode(&c), h);
        }
    }
}

#[test]
fn every_stream_splits_into_the_recorded_frames_in_any_read_size() {
    // [FRAME-1] [FRAME-2] the 16-byte header and size, whatever the read boundaries
    for fx in fixtures() {
        let frames = fx.json["frames"].as_array().unwrap();
        for read_size in [1usize, 7, 4093, 65536, usize::MAX] {
            if read_size == 1 && fx.stream.len() > 20_000 {
                continue;
            }
            let got = split(&fx.stream, read_size.min(fx.stream.len().max(1)));
            assert_eq!(got.len(), frames.len(), "{}", fx.name);
            for (f, want) in got.iter().zip(frames) {
                assert_eq!(f.frame_type().to_string(), want["type"], "{}", fx.name);
                assert_eq!(u64::from(f.id()), want["id"].as_u64().unwrap());
            }
        }
        assert_eq!(
            frames.len() as u64,
            fx.json["expected"]["frame_count"].as_u64().unwrap()
        );
    }
}

#[test]
fn every_frame_decodes_to_the_recorded_fields_and_reencodes_to_the_same_bytes() {
    for fx in fixtures() {
        for want in fx.json["frames"].as_array().unwrap() {
            let bytes = Bytes::from(hex::decode(want["hex"].as_str().unwrap()).unwrap());
            let frame = Frame::decode(bytes.clone()).unwrap();
            let d = &want["decoded"];
            match &frame {
                Frame::InitReq(f) | Frame::InitRes(f) => {
                    // [INIT-1] version:2 nh:2 (key~2 value~2){nh}
                    assert_eq!(u64::from(f.version), d["version"].as_u64().unwrap());
                    assert_eq!(pairs(f.headers.iter()), expected_pairs(&d["headers"]));
                    assert!(f.trailing.is_empty());
                }
                Frame::CallReq(f) => {
                    // [CALL-1] call req layout
                    assert_eq!(u64::from(f.flags.0), d["flags"].as_u64().unwrap());
                    assert_eq!(u64::from(f.ttl), d["ttl"].as_u64().unwrap());
                    tracing_matches(&f.tracing, &d["tracing"]);
                    assert_eq!(f.service, d["service"].as_str().unwrap().as_bytes());
                    assert_eq!(pairs(f.headers.iter()), expected_pairs(&d["headers"]));
                    assert_eq!(u64::from(f.checksum.ty.0), d["csum_type"].as_u64().unwrap());
                    assert_eq!(u64::from(f.checksum.value), d["csum"].as_u64().unwrap_or(0));
                    chunks_match(&f.args, d);
                }
                Frame::CallRes(f) => {
                    // [CALL-1] [DEV-10] call res is type 0x04
                    assert_eq!(u64::from(f.flags.0), d["flags"].as_u64().unwrap());
                    assert_eq!(u64::from(f.code.0), d["code"].as_u64().unwrap());
                    tracing_matches(&f.tracing, &d["tracing"]);
                    assert_eq!(pairs(f.headers.iter()), expected_pairs(&d["headers"]));
                    assert_eq!(u64::from(f.checksum.ty.0), d["csum_type"].as_u64().unwrap());
                    chunks_match(&f.args, d);
                }
                Frame::CallReqContinue(f) | Frame::CallResContinue(f) => {
                    assert_eq!(u64::from(f.flags.0), d["flags"].as_u64().unwrap());
                    assert_eq!(u64::from(f.checksum.ty.0), d["csum_type"].as_u64().unwrap());
                    chunks_match(&f.args, d);
                }
                Frame::Cancel(f) => {
                    // [MSG-5] [DEV-9] cancel is ttl:4 tracing:25 why~2, not an empty body
                    assert_eq!(u64::from(f.ttl), d["ttl"].as_u64().unwrap());
                    tracing_matches(&f.tracing, &d["tracing"]);
                    assert_eq!(f.why, d["why"].as_str().unwrap().as_bytes());
                }
                Frame::Error(f) => {
                    assert_eq!(u64::from(f.code.0), d["code"].as_u64().unwrap());
                    tracing_matches(&f.tracing, &d["tracing"]);
                    assert_eq!(f.message, d["message"].as_str().unwrap().as_bytes());
                }
                Frame::PingReq(f) | Frame::PingRes(f) => assert!(f.trailing.is_empty()),
                other => panic!("{}: unexpected frame {other:?}", fx.name),
            }
            assert_eq!(frame.encoded_len(), bytes.len());
            assert_eq!(frame.to_bytes().unwrap(), bytes, "{}", fx.name);
        }
    }
}

/// One reassembled message of a fixture.
struct Assembled {
    frames: Vec<usize>,
    result: Result<Vec<Bytes>, ReassemblyError>,
    checksum_type: ChecksumType,
}

fn reassemble(frames: &[Frame]) -> HashMap<(bool, u32), Assembled> {
    let mut open: HashMap<(bool, u32), (Reassembler, ArgCollector, Assembled)> = HashMap::new();
    let mut done = HashMap::new();
    for (i, f) in frames.iter().enumerate() {
        let (key, frag) = match f {
            Frame::CallReq(c) => ((true, c.id), CallFragment::from(c)),
            Frame::CallRes(c) => ((false, c.id), CallFragment::from(c)),
            Frame::CallReqContinue(c) => ((true, c.id), CallFragment::from(c)),
            Frame::CallResContinue(c) => ((false, c.id), CallFragment::from(c)),
            _ => continue,
        };
        let entry = open.entry(key).or_insert_with(|| {
            (
                Reassembler::new(ReassemblyLimits::default()),
                ArgCollector::new(),
                Assembled {
                    frames: Vec::new(),
                    result: Ok(Vec::new()),
                    checksum_type: frag.checksum.ty,
                },
            )
        });
        entry.2.frames.push(i);
        match entry.0.push(frag) {
            Ok(chunks) => {
                entry.1.extend(&chunks);
                if chunks.message_complete() {
                    let (_, args, mut a) = open.remove(&key).unwrap();
                    a.result = Ok(args.into_args());
                    done.insert(key, a);
                }
            }
            Err(e) => {
                let (_, _, mut a) = open.remove(&key).unwrap();
                a.result = Err(e);
                done.insert(key, a);
            }
        }
    }
    assert!(open.is_empty(), "messages left open");
    done
}

#[test]
fn every_message_reassembles_to_the_recorded_args_with_checksums_verified() {
    // [FRAG-1] [CSUM-5] [CSUM-6] [CSUM-7] chunks placed into args; checksums per frame
    let mut checked = 0;
    let mut bug = 0;
    for fx in fixtures() {
        let frames = split(&fx.stream, 65536);
        let msgs = reassemble(&frames);
        for m in fx.json["expected"]["messages"].as_array().unwrap() {
            let kind = m["kind"].as_str().unwrap();
            let req = match kind {
                "call req" => true,
                "call res" => false,
                _ => continue,
            };
            let id = m["id"].as_u64().unwrap() as u32;
            let got = &msgs[&(req, id)];
            let idx: Vec<u64> = m["frame_indices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(
                got.frames.iter().map(|&i| i as u64).collect::<Vec<_>>(),
                idx
            );
            assert_eq!(m["checksum"]["all_verified"], true);
            assert_eq!(
                u64::from(got.checksum_type.0),
                m["checksum"]["type"].as_u64().unwrap()
            );
            if node_bug(&fx.name) {
                // [FRAG-9] [DEV-1] node's boundary bug: the message ends with 2 args.
                assert_eq!(m["arg_count"], 2);
                assert_eq!(
                    got.result.as_ref().unwrap_err(),
                    &ReassemblyError::MissingArgs { count: 2 },
                    "{}",
                    fx.name
                );
                bug += 1;
                continue;
            }
            let args = got
                .result
                .as_ref()
                .unwrap_or_else(|e| panic!("{}: {e}", fx.name));
            assert_eq!(args.len() as u64, m["arg_count"].as_u64().unwrap());
            for (i, a) in args.iter().enumerate() {
                let want = &m[format!("arg{}", i + 1)];
                assert_eq!(a.len() as u64, want["length"].as_u64().unwrap());
                assert_eq!(hex::encode(a), want["hex"].as_str().unwrap(), "{}", fx.name);
            }
            checked += 1;
        }
    }
    assert_eq!(bug, 2);
    assert!(checked >= 80, "only {checked} messages checked");
}

#[test]
fn our_fragmenter_writes_the_same_frames_as_node() {
    // [FRAG-5] [FRAG-6] [FRAG-7] sender rules give node's layout wherever node is right
    let mut compared = 0;
    for fx in fixtures() {
        if node_bug(&fx.name) {
            continue;
        }
        let frames = split(&fx.stream, 65536);
        let msgs = reassemble(&frames);
        for ((req, id), m) in &msgs {
            let Ok(args) = &m.result else { continue };
            let first = &frames[m.frames[0]];
            let head = match (first, req) {
                (Frame::CallReq(f), true) => CallHead::Req(ReqHead {
                    ttl: f.ttl,
                    tracing: f.tracing,
                    service: f.service.clone(),
                    headers: f.headers.clone(),
                }),
                (Frame::CallRes(f), false) => CallHead::Res(ResHead {
                    code: ResponseCode(f.code.0),
                    tracing: f.tracing,
                    headers: TransportHeaders::from_pairs(f.headers.iter()).unwrap(),
                }),
                _ => unreachable!(),
            };
            let mut out = BytesMut::new();
            MessageWriter::write_message(
                &mut out,
                *id,
                head,
                m.checksum_type,
                65535,
                [&args[0], &args[1], &args[2]],
            )
            .unwrap();
            let mut want = Vec::new();
            for &i in &m.frames {
                want.extend_from_slice(&frames[i].to_bytes().unwrap());
            }
            assert_eq!(
                hex::encode(&out),
                hex::encode(&want),
                "{} message {id}",
                fx.name
            );
            compared += 1;
        }
    }
    assert!(compared >= 80, "only {compared} messages compared");
}

fn decode_lines(stream: &[u8]) -> (Vec<Value>, inspect::Outcome) {
    let mut out = Vec::new();
    let outcome = inspect::decode_stream(stream, None, &mut out).unwrap();
    let lines = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, outcome)
}

fn tracing_json(v: &Value) -> Value {
    serde_json::json!({
        "span_id": v["span_id_hex"], "parent_id": v["parent_id_hex"],
        "trace_id": v["trace_id_hex"], "flags": v["trace_flags"],
    })
}

#[test]
fn tchan_decode_agrees_with_every_fixture() {
    // [CLI-1] [CLI-2] [CLI-3] output lines, their order and their fields
    for fx in fixtures() {
        let (lines, outcome) = decode_lines(&fx.stream);
        assert_eq!(outcome, inspect::Outcome::Clean, "{}", fx.name);
        let frames = fx.json["frames"].as_array().unwrap();
        let frame_lines: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "frame").collect();
        assert_eq!(frame_lines.len(), frames.len());
        for (l, f) in frame_lines.iter().zip(frames) {
            assert_eq!(l["offset"], f["offset"]);
            assert_eq!(l["size"], f["size"]);
            assert_eq!(l["type"], f["type"]);
            assert_eq!(l["id"], f["id"]);
            assert_eq!(l.as_object().unwrap().len(), 5);
        }
        let messages: Vec<&Value> = lines.iter().filter(|l| l["kind"] != "frame").collect();
        let expected = &fx.json["expected"];
        let init = &expected["init"];
        assert_eq!(
            messages[0]["kind"],
            if init["kind"] == "init req" {
                "init_req"
            } else {
                "init_res"
            }
        );
        assert_eq!(messages[0]["version"], init["version"]);
        assert_eq!(messages[0]["headers"], init["headers_map"]);
        let want = expected["messages"].as_array().unwrap();
        assert_eq!(messages.len(), want.len() + 1, "{}", fx.name);
        for (got, m) in messages[1..].iter().zip(want) {
            let o = got.as_object().unwrap();
            assert_eq!(got["id"], m["id"]);
            // A message line comes right after the frame line of its last frame.
            let pos = lines.iter().position(|l| std::ptr::eq(l, *got)).unwrap();
            let last = m["frame_indices"].as_array().unwrap().last().unwrap();
            assert_eq!(
                lines[pos - 1]["offset"],
                frames[last.as_u64().unwrap() as usize]["offset"]
            );
            match m["kind"].as_str().unwrap() {
                k @ ("call req" | "call res") => {
                    let req = k == "call req";
                    assert_eq!(got["kind"], if req { "call_req" } else { "call_res" });
                    if req {
                        assert_eq!(got["service"], m["service"]);
                        assert_eq!(got["ttl"], m["ttl"]);
                        assert!(!o.contains_key("code"));
                    } else {
                        assert_eq!(got["code"], m["code"]);
                        assert!(!o.contains_key("service") && !o.contains_key("ttl"));
                    }
                    assert_eq!(got["flags"], m["flags_per_frame"][0]);
                    assert_eq!(got["headers"], m["headers_map"]);
                    assert_eq!(got["tracing"], tracing_json(&m["tracing"]));
                    assert_eq!(got["checksum_type"], m["checksum"]["type_name"]);
                    assert_eq!(got["checksum_ok"], m["checksum"]["all_verified"]);
                    let args = got["args"].as_array().unwrap();
                    assert_eq!(args.len() as u64, m["arg_count"].as_u64().unwrap());
                    for (i, a) in args.iter().enumerate() {
                        assert_eq!(a, &m[format!("arg{}", i + 1)]["hex"]);
                    }
                    if node_bug(&fx.name) {
                        assert_eq!(got["violations"], serde_json::json!(["missing_args"]));
                    } else {
                        assert!(!o.contains_key("violations"), "{}: {got}", fx.name);
                    }
                    assert!(o.values().all(|v| !v.is_null()));
                }
                "error" => {
                    assert_eq!(got["kind"], "error");
                    assert_eq!(got["code"], m["body"]["code"]);
                    assert_eq!(got["message"], m["body"]["message"]);
                    assert_eq!(got["tracing"], tracing_json(&m["body"]["tracing"]));
                    assert_eq!(o.len(), 5);
                }
                "cancel" => {
                    assert_eq!(got["kind"], "cancel");
                    assert_eq!(got["ttl"], m["body"]["ttl"]);
                    assert_eq!(got["why"], m["body"]["why"]);
                    assert_eq!(got["tracing"], tracing_json(&m["body"]["tracing"]));
                    assert_eq!(o.len(), 5);
                }
                k @ ("ping req" | "ping res") => {
                    assert_eq!(got["kind"], k.replace(' ', "_"));
                    assert_eq!(o.len(), 2);
                }
                other => panic!("unexpected kind {other}"),
            }
        }
    }
}

#[test]
fn tchan_decode_binary_reads_files_stdin_and_hex() {
    // [CLI-1] binary or --hex input, from a file or stdin
    use std::io::Write;
    use std::process::{Command, Stdio};
    let bin = env!("CARGO_BIN_EXE_tchan");
    let fx = fixtures()
        .into_iter()
        .find(|f| f.name == "ping.c2s")
        .unwrap();
    let dir = std::env::temp_dir().join(format!("tchan-decode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin_path = dir.join("ping.bin");
    std::fs::write(&bin_path, &fx.stream).unwrap();
    let from_file = Command::new(bin)
        .arg("decode")
        .arg(&bin_path)
        .output()
        .unwrap();
    assert!(from_file.status.success());
    let mut hex_text = hex::encode_upper(&fx.stream);
    hex_text.insert_str(10, " \n\t ");
    for args in [vec!["decode", "--hex", "-"], vec!["decode", "--hex"]] {
        let mut child = Command::new(bin)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(hex_text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, from_file.stdout);
    }
    let text = String::from_utf8(from_file.stdout).unwrap();
    assert!(text.contains(r#"{"kind":"ping_req","id":"#), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
