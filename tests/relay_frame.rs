//! What a relay reads from a call's first frame and how it rewrites frames
//! (`src/relay/frame.rs`, `spec/12-relay.md`): against every frame node
//! tchannel 4.0.1 sent in `interop/fixtures/`, and frames built to break the
//! rules.

use std::path::PathBuf;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tchan::frame::{
    ArgChunks, CallHead, CallReq, ChecksumField, ChecksumType, Flags, Frame, FrameHeader,
    MAX_FRAME_SIZE, MessageWriter, ReqHead, Tracing, TransportHeaders,
};
use tchan::relay::{Forward, RelayHead, RelayParseError, lowered_ttl};

/// Every frame of every fixture stream, as (header, payload).
fn fixture_frames() -> Vec<(String, FrameHeader, Bytes)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/fixtures");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let stream = Bytes::from(hex::decode(json["stream_hex"].as_str().unwrap()).unwrap());
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let mut at = 0;
        while at < stream.len() {
            let Ok(Some(h)) = FrameHeader::parse(&stream[at..], MAX_FRAME_SIZE) else {
                break;
            };
            let end = at + usize::from(h.size);
            if end > stream.len() {
                break;
            }
            out.push((name.clone(), h, stream.slice(at + 16..end)));
            at = end;
        }
    }
    out
}

fn whole(f: &Forward) -> Bytes {
    let mut b = BytesMut::new();
    b.extend_from_slice(f.head());
    b.extend_from_slice(f.rest());
    assert_eq!(b.len(), f.len());
    b.freeze()
}

/// The frame's bytes as a relay must forward them: the id (and, for a call
/// req, the ttl) replaced, reserved header bytes zero, nothing else changed.
fn expect(h: FrameHeader, payload: &Bytes, id: u32, ttl: Option<u32>) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + payload.len());
    b.extend_from_slice(&h.size.to_be_bytes());
    b.push(h.frame_type.0);
    b.push(0);
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(payload);
    if let Some(t) = ttl {
        b[17..21].copy_from_slice(&t.to_be_bytes());
    }
    b
}

#[test]
fn every_node_call_req_is_read_and_every_frame_rewritten_in_id_and_ttl_only() {
    // [RELAY-1] [RELAY-3]
    let frames = fixture_frames();
    let mut reqs = 0;
    for (name, h, payload) in &frames {
        let original = Frame::decode_payload(*h, payload.clone()).unwrap();
        if let Frame::CallReq(req) = &original {
            let head = RelayHead::parse(*h, payload);
            let mut args = req.args.iter();
            let arg1 = args.next();
            let arg1_whole =
                arg1.is_some() && (args.next().is_some() || !req.flags.more_fragments());
            match head {
                Ok(head) => {
                    assert_eq!(head.arg1_open, !arg1_whole, "{name}");
                    reqs += 1;
                    assert_eq!((head.id, head.ttl), (req.id, req.ttl), "{name}");
                    assert_eq!(head.service, req.service, "{name}");
                    assert_eq!(Some(head.arg1.clone()), arg1, "{name}");
                    assert_eq!(head.headers, req.headers, "{name}");
                    let want: &[u8] = match req.headers.get(b"rd") {
                        Some(rd) if !rd.is_empty() => rd,
                        _ => &req.service,
                    };
                    assert_eq!(head.route(), want, "{name}");
                    assert_eq!(head.caller(), req.headers.get(b"cn").unwrap_or_default());
                }
                Err(e) => {
                    assert_eq!(e, RelayParseError::Arg1NotInFirstFrame, "{name}");
                    assert!(arg1.is_none(), "{name}");
                }
            }
            let ttl = req.ttl / 2;
            let f = Forward::call_req(*h, payload.clone(), 0x0102_0304, ttl).unwrap();
            assert_eq!(
                whole(&f),
                expect(*h, payload, 0x0102_0304, Some(ttl)),
                "{name}"
            );
            assert!(Frame::decode(whole(&f)).is_ok());
        }
        let f = Forward::with_id(*h, payload.clone(), 77);
        assert_eq!(whole(&f), expect(*h, payload, 77, None), "{name}");
        drop(original);
        // The payload goes on by reference, not copied.
        let range = payload.as_ptr_range();
        assert!(
            f.rest().is_empty() || range.contains(&f.rest().as_ptr()),
            "{name}"
        );
    }
    assert!(reqs > 20, "only {reqs} call reqs in the fixtures");
}

/// A call req frame with the given service, headers, flags and arg chunks.
fn call_req(
    service: &[u8],
    headers: &[(&str, &str)],
    flags: u8,
    args: &[&[u8]],
) -> (FrameHeader, Bytes) {
    let mut th = TransportHeaders::new();
    for (k, v) in headers {
        th.push(k, v).unwrap();
    }
    let req = CallReq {
        id: 9,
        flags: Flags(flags),
        ttl: 1000,
        tracing: Tracing::default(),
        service: Bytes::copy_from_slice(service),
        headers: th,
        checksum: ChecksumField::NONE,
        args: ArgChunks::from_chunks(args.iter().map(|a| Bytes::copy_from_slice(a))),
    };
    let bytes = Frame::CallReq(req).to_bytes().unwrap();
    let h = FrameHeader::parse(&bytes, MAX_FRAME_SIZE).unwrap().unwrap();
    (h, bytes.slice(16..))
}

#[test]
fn the_routing_delegate_wins_over_the_service() {
    // [RELAY-1]
    let (h, p) = call_req(
        b"svc",
        &[("cn", "me"), ("rd", "other")],
        0,
        &[b"m", b"", b""],
    );
    let head = RelayHead::parse(h, &p).unwrap();
    assert_eq!((head.route(), head.caller()), (&b"other"[..], &b"me"[..]));
    let (h, p) = call_req(b"svc", &[("rd", "")], 0, &[b"m", b"", b""]);
    assert_eq!(RelayHead::parse(h, &p).unwrap().route(), b"svc");
}

#[test]
fn a_call_req_that_cannot_be_routed_by_its_first_frame_is_refused_with_a_reason() {
    // [RELAY-2] arg1 split over frames.
    let head = CallHead::Req(ReqHead {
        ttl: 1000,
        tracing: Tracing::default(),
        service: Bytes::from_static(b"svc"),
        headers: TransportHeaders::strict([("as", "raw")]).unwrap(),
    });
    let mut w = MessageWriter::new(5, head, ChecksumType::NONE, 128).unwrap();
    let mut out = BytesMut::new();
    w.write(&mut out, &[b'x'; 300]).unwrap();
    w.end_arg(&mut out).unwrap();
    w.end_arg(&mut out).unwrap();
    w.end_arg(&mut out).unwrap();
    let h = FrameHeader::parse(&out, MAX_FRAME_SIZE).unwrap().unwrap();
    let first = out.freeze().slice(16..usize::from(h.size));
    // The first frame alone cannot tell: arg1 is open, and the relay refuses
    // the call when the next frame continues it (tests/relay_core.rs).
    let head = RelayHead::parse(h, &first).unwrap();
    assert!(head.arg1_open);
    assert!(head.arg1.iter().all(|&b| b == b'x'));
    // Arg1 whole in the first frame, the rest later: fine.
    let (h, p) = call_req(b"svc", &[], 0x01, &[b"method", b"part of arg2"]);
    let head = RelayHead::parse(h, &p).unwrap();
    assert_eq!((&head.arg1[..], head.arg1_open), (&b"method"[..], false));
    // Arg1 is the only chunk and more frames follow: it may go on.
    let (h, p) = call_req(b"svc", &[], 0x01, &[b"method"]);
    assert!(RelayHead::parse(h, &p).unwrap().arg1_open);
    // No arg chunk at all.
    let (h, p) = call_req(b"svc", &[], 0x01, &[]);
    assert_eq!(
        RelayHead::parse(h, &p),
        Err(RelayParseError::Arg1NotInFirstFrame)
    );
    // No service, arg1 over 16 KiB, a cut payload, not a call req.
    let (h, p) = call_req(b"", &[], 0, &[b"m", b"", b""]);
    assert_eq!(RelayHead::parse(h, &p), Err(RelayParseError::NoService));
    let long = vec![b'a'; 16 * 1024 + 1];
    let (h, p) = call_req(b"svc", &[], 0, &[&long, b"", b""]);
    assert_eq!(
        RelayHead::parse(h, &p),
        Err(RelayParseError::Arg1TooLong(long.len()))
    );
    let (h, p) = call_req(b"svc", &[("cn", "me")], 0, &[b"m", b"", b""]);
    for cut in 0..p.len() - 6 {
        // Cut inside a field: it does not decode. Cut where the args start:
        // no arg1 in the frame.
        let e = RelayHead::parse(h, &p.slice(..cut)).unwrap_err();
        assert!(
            matches!(e, RelayParseError::Malformed(_))
                || (cut == p.len() - 7 && e == RelayParseError::Arg1NotInFirstFrame),
            "cut at {cut} of {}: {e:?}",
            p.len()
        );
        assert!(!e.to_string().is_empty());
    }
    let ping = Frame::PingReq(tchan::frame::Ping::new(3))
        .to_bytes()
        .unwrap();
    let ph = FrameHeader::parse(&ping, MAX_FRAME_SIZE).unwrap().unwrap();
    assert!(matches!(
        RelayHead::parse(ph, &ping.slice(16..)),
        Err(RelayParseError::NotCallReq(_))
    ));
    assert!(Forward::call_req(ph, ping.slice(16..), 1, 1).is_none());
}

#[test]
fn the_ttl_is_lowered_by_the_time_spent_and_clamped() {
    // [RELAY-3]
    let max = Duration::from_secs(120);
    assert_eq!(lowered_ttl(1000, Duration::from_millis(250), max), 750);
    assert_eq!(lowered_ttl(1000, Duration::from_micros(999), max), 1000);
    assert_eq!(lowered_ttl(1000, Duration::from_secs(2), max), 0);
    assert_eq!(lowered_ttl(u32::MAX, Duration::ZERO, max), 120_000);
    assert_eq!(lowered_ttl(5, Duration::MAX, max), 0);
}
