//! `tchan decode`: turns a captured byte stream into one JSON object per line.
//!
//! The output format is a contract that outside scripts parse; it is written
//! down in `spec/10-decode-cli.md`. This module only uses the pure codec.

use std::collections::HashMap;
use std::io::{self, Write};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use tchan::frame::{
    ArgCollector, CallFragment, ChecksumType, Frame, FrameHeader, HEADER_LEN, Headers,
    MAX_FRAME_SIZE, Reassembler, ReassemblyLimits, Tracing, Width,
};

/// A problem found while reading hex text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HexError {
    /// Number of whole bytes decoded before the problem.
    pub byte_offset: usize,
    /// What was wrong.
    pub reason: String,
}

/// Decodes hex text, ignoring whitespace, either case. Returns the bytes
/// before the first problem, and the problem if there was one.
pub fn parse_hex(text: &[u8]) -> (Vec<u8>, Option<HexError>) {
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut high: Option<u8> = None;
    for &c in text {
        if c.is_ascii_whitespace() {
            continue;
        }
        let Some(v) = (c as char).to_digit(16) else {
            let reason = if c.is_ascii_graphic() {
                format!("invalid hex character {:?}", c as char)
            } else {
                format!("invalid hex byte 0x{c:02x}")
            };
            let byte_offset = out.len();
            return (
                out,
                Some(HexError {
                    byte_offset,
                    reason,
                }),
            );
        };
        match high.take() {
            None => high = Some(v as u8),
            Some(h) => out.push(h << 4 | v as u8),
        }
    }
    if high.is_some() {
        let byte_offset = out.len();
        return (
            out,
            Some(HexError {
                byte_offset,
                reason: "odd number of hex digits".into(),
            }),
        );
    }
    (out, None)
}

/// How a decode run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every byte was split into frames and parsed (exit status 0).
    Clean,
    /// A `decode_error` line was written and decoding stopped (exit status 1).
    DecodeError,
}

struct OpenMessage {
    order: u64,
    line: Map<String, Value>,
    reassembler: Reassembler,
    args: ArgCollector,
}

/// Decodes `input` (a stream of frames) and writes the JSON lines to `out`.
/// `hex_error`, from [`parse_hex`], is reported when the bytes run out.
#[allow(dead_code)] // the tests that include this file call it
pub fn decode_stream(
    input: &[u8],
    hex_error: Option<HexError>,
    out: &mut impl Write,
) -> io::Result<Outcome> {
    decode_stream_with(input, hex_error, None, out)
}

/// [`decode_stream`], with thrift call messages decoded through `thrift`
/// (`tchan decode --thrift`, CLI-30).
pub fn decode_stream_with(
    input: &[u8],
    hex_error: Option<HexError>,
    thrift: Option<&tchan::idl::Idl>,
    out: &mut impl Write,
) -> io::Result<Outcome> {
    let data = Bytes::copy_from_slice(input);
    // Call req id -> its arg1, for the call res of the same id.
    let mut methods: HashMap<u32, String> = HashMap::new();
    let mut open: HashMap<(bool, u32), OpenMessage> = HashMap::new();
    let mut abandoned: Vec<OpenMessage> = Vec::new();
    let mut order = 0u64;
    let mut offset = 0usize;
    let decode_error = |out: &mut dyn Write, offset: usize, reason: String| {
        line(
            out,
            json!({"kind": "decode_error", "offset": offset, "reason": reason}),
        )
        .map(|()| Outcome::DecodeError)
    };
    while offset < data.len() {
        let rest = &data[offset..];
        // [CLI-24] a size under 16 is reported as soon as its two bytes are there.
        if rest.len() >= 2 && usize::from(u16::from_be_bytes([rest[0], rest[1]])) < HEADER_LEN {
            let size = u16::from_be_bytes([rest[0], rest[1]]);
            return decode_error(out, offset, format!("frame size {size} is under 16"));
        }
        let header = match FrameHeader::parse(rest, MAX_FRAME_SIZE) {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(e) => return decode_error(out, offset, e.to_string()),
        };
        let size = usize::from(header.size);
        if rest.len() < size {
            break;
        }
        let payload = data.slice(offset + HEADER_LEN..offset + size);
        let frame = match Frame::decode_payload(header, payload) {
            Ok(f) => f,
            Err(e) => return decode_error(out, offset, e.to_string()),
        };
        line(
            out,
            json!({"kind": "frame", "offset": offset, "size": size,
                   "type": header.frame_type.to_string(), "id": header.id}),
        )?;
        offset += size;
        let id = frame.id();
        let single = |kind: &str, fields: Value| {
            let mut m = Map::new();
            m.insert("kind".into(), kind.into());
            m.insert("id".into(), id.into());
            if let Value::Object(f) = fields {
                m.extend(f);
            }
            Value::Object(m)
        };
        let (key, first) = match &frame {
            Frame::CallReq(f) => {
                let mut m = Map::new();
                m.insert("kind".into(), "call_req".into());
                m.insert("id".into(), id.into());
                m.insert("service".into(), lossy(&f.service).into());
                m.insert("ttl".into(), f.ttl.into());
                m.insert("flags".into(), f.flags.0.into());
                m.insert("headers".into(), headers_json(&f.headers));
                m.insert("tracing".into(), tracing_json(&f.tracing));
                ((true, id), Some(m))
            }
            Frame::CallRes(f) => {
                let mut m = Map::new();
                m.insert("kind".into(), "call_res".into());
                m.insert("id".into(), id.into());
                m.insert("code".into(), f.code.0.into());
                m.insert("flags".into(), f.flags.0.into());
                m.insert("headers".into(), headers_json(&f.headers));
                m.insert("tracing".into(), tracing_json(&f.tracing));
                ((false, id), Some(m))
            }
            Frame::CallReqContinue(_) => ((true, id), None),
            Frame::CallResContinue(_) => ((false, id), None),
            Frame::InitReq(f) | Frame::InitRes(f) => {
                let kind = if matches!(frame, Frame::InitReq(_)) {
                    "init_req"
                } else {
                    "init_res"
                };
                line(
                    out,
                    single(
                        kind,
                        json!({"version": f.version, "headers": headers_json(&f.headers)}),
                    ),
                )?;
                continue;
            }
            Frame::Cancel(f) => {
                line(
                    out,
                    single(
                        "cancel",
                        json!({"ttl": f.ttl, "tracing": tracing_json(&f.tracing), "why": lossy(&f.why)}),
                    ),
                )?;
                continue;
            }
            Frame::Claim(f) => {
                line(
                    out,
                    single(
                        "claim",
                        json!({"ttl": f.ttl, "tracing": tracing_json(&f.tracing)}),
                    ),
                )?;
                continue;
            }
            Frame::PingReq(_) | Frame::PingRes(_) => {
                let kind = if matches!(frame, Frame::PingReq(_)) {
                    "ping_req"
                } else {
                    "ping_res"
                };
                line(out, single(kind, json!({})))?;
                continue;
            }
            Frame::Error(f) => {
                line(
                    out,
                    single(
                        "error",
                        json!({"code": f.code.0, "tracing": tracing_json(&f.tracing),
                               "message": lossy(&f.message)}),
                    ),
                )?;
                continue;
            }
            // Frame types tchan does not know yet are `Unknown` too.
            _ => {
                line(out, single("unknown", json!({"size": size})))?;
                continue;
            }
        };
        let fragment = match &frame {
            Frame::CallReq(f) => CallFragment::from(f),
            Frame::CallRes(f) => CallFragment::from(f),
            Frame::CallReqContinue(f) | Frame::CallResContinue(f) => CallFragment::from(f),
            _ => continue,
        };
        if let Some(m) = first {
            if let Some(old) = open.remove(&key) {
                // [CLI-18] a new first frame for a key still open: the old
                // message can never finish; it is reported at the end.
                abandoned.push(old);
            }
            order += 1;
            open.insert(
                key,
                OpenMessage {
                    order,
                    line: m,
                    reassembler: Reassembler::lenient({
                        let mut c = ReassemblyLimits::default();
                        c.set_max_message_bytes(u64::MAX);
                        c.set_max_frames(u32::MAX);
                        c
                    }),
                    args: ArgCollector::new(),
                },
            );
        }
        // A continue frame with no open message gets only its frame line.
        let Some(msg) = open.get_mut(&key) else {
            continue;
        };
        let chunks = match msg.reassembler.push(fragment) {
            Ok(c) => c,
            Err(e) => return decode_error(out, offset - size, e.to_string()),
        };
        msg.args.extend(&chunks);
        if chunks.message_complete()
            && let Some(msg) = open.remove(&key)
        {
            line(out, Value::Object(finish(msg, thrift, &mut methods)))?;
        }
    }
    if let Some(e) = hex_error {
        return decode_error(out, offset, e.reason);
    }
    if offset < data.len() {
        let rest = data.len() - offset;
        let reason = match FrameHeader::parse(&data[offset..], MAX_FRAME_SIZE) {
            Ok(Some(h)) => format!("truncated frame: {rest} of {} bytes", h.size),
            _ => format!("truncated frame: {rest} bytes, less than a 16-byte header"),
        };
        return decode_error(out, offset, reason);
    }
    let mut left: Vec<OpenMessage> = open.into_values().chain(abandoned).collect();
    left.sort_by_key(|m| m.order);
    for m in left {
        line(out, json!({"kind": "incomplete", "id": m.line["id"]}))?;
    }
    Ok(Outcome::Clean)
}

fn finish(
    msg: OpenMessage,
    thrift: Option<&tchan::idl::Idl>,
    methods: &mut HashMap<u32, String>,
) -> Map<String, Value> {
    let mut m = msg.line;
    let r = &msg.reassembler;
    let ty = r.checksum_type().unwrap_or(ChecksumType::NONE);
    m.insert("checksum_type".into(), ty.name().into());
    m.insert("checksum_ok".into(), r.checksum_ok().into());
    let raw = msg.args.into_args();
    let args: Vec<Value> = raw.iter().map(|a| Value::String(hex_lower(a))).collect();
    m.insert("args".into(), Value::Array(args));
    if let Some(idl) = thrift {
        // [CLI-30] after `args`, before `violations`.
        let id = m.get("id").and_then(Value::as_u64).unwrap_or(0) as u32;
        let is_req = m.get("kind").and_then(Value::as_str) == Some("call_req");
        let method = if is_req {
            let arg1 = raw.first().map(|a| lossy(a)).unwrap_or_default();
            methods.insert(id, arg1.clone());
            Some(arg1)
        } else {
            methods.remove(&id)
        };
        let found = method.as_deref().and_then(|a1| idl.method(a1));
        if let Some((_, f)) = found {
            let (what, fields) = if is_req {
                (format!("{} args", f.name), f.args.clone())
            } else {
                (format!("{} result", f.name), f.result_fields())
            };
            let arg3 = raw.get(2).map(|a| &a[..]).unwrap_or_default();
            match tchan::idl::decode_fields(idl, &what, &fields, arg3) {
                Ok(v) => m.insert("thrift".into(), v),
                Err(e) => m.insert("thrift_error".into(), Value::String(e.0)),
            };
        }
    }
    let violations = r.violations();
    if !violations.is_empty() {
        m.insert(
            "violations".into(),
            violations.iter().map(|v| Value::from(v.code())).collect(),
        );
    }
    m
}

fn line(out: &mut dyn Write, v: Value) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &v)?;
    out.write_all(b"\n")
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn hex_lower(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[usize::from(x >> 4)] as char);
        s.push(DIGITS[usize::from(x & 0xf)] as char);
    }
    s
}

fn headers_json<W: Width>(h: &Headers<W>) -> Value {
    let mut m = Map::new();
    for (k, v) in h.iter() {
        m.insert(lossy(k), Value::String(lossy(v)));
    }
    Value::Object(m)
}

fn tracing_json(t: &Tracing) -> Value {
    json!({
        "span_id": format!("{:016x}", t.span_id),
        "parent_id": format!("{:016x}", t.parent_id),
        "trace_id": format!("{:016x}", t.trace_id),
        "flags": t.flags,
    })
}
