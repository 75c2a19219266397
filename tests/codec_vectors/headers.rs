//! Headers, init, tracing, constructors.

use super::*;

#[test]
pub(crate) fn transport_headers_are_kept_as_received() {
    // [HDR-2] the decoder keeps every pair in wire order: empty, duplicate and long keys
    // [HDR-7] the last occurrence of a key is its value; [HDR-4] validation is separate
    let bytes = cat(&[
        &[0x00, 0x59],             // size = 89
        &[0x03],                   // type = call req
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x02], // id = 2
        &[0; 8],                   // reserved
        &[0x00],                   // flags
        &[0x00, 0x00, 0x00, 0x01], // ttl = 1
        &[0; 25],                  // tracing
        &[0x03],                   // service length
        b"svc",                    // service
        &[0x04],                   // nh = 4
        &[0x00],                   // key length = 0 (empty key)
        &[0x01],                   // value length
        b"x",                      // value
        &[0x02],                   // key length
        b"as",                     // key
        &[0x03],                   // value length
        b"raw",                    // value
        &[0x02],                   // key length
        b"as",                     // key (duplicate)
        &[0x04],                   // value length
        b"json",                   // value
        &[0x11],                   // key length = 17 (over the limit)
        b"abcdefghijklmnopq",      // key
        &[0x00],                   // value length = 0
        &[0x00],                   // csumtype = none; no chunks
    ]);
    let frame = decode_roundtrip(&bytes);
    let Frame::CallReq(f) = &frame else { panic!() };
    let pairs: Vec<_> = f.headers.iter().collect();
    assert_eq!(
        pairs,
        [
            (&b""[..], &b"x"[..]),
            (b"as", b"raw"),
            (b"as", b"json"),
            (b"abcdefghijklmnopq", b""),
        ]
    );
    assert_eq!(f.headers.get(b"as"), Some(&b"json"[..]));
    assert_eq!(f.headers.validate(), Err(HeaderViolation::EmptyKey));
}

#[test]
pub(crate) fn init_required_and_repeated_headers() {
    // [INIT-4] only host_port and process_name are required
    // [INIT-5] other keys are ignored; a repeated key's last occurrence is used
    let init = |pairs: &[(&str, &str)]| tchan::frame::Init {
        id: 1,
        version: 2,
        headers: tchan::frame::InitHeaders::from_pairs(pairs.iter().copied()).unwrap(),
        trailing: Bytes::new(),
    };
    assert_eq!(
        init(&[("host_port", "0.0.0.0:0"), ("process_name", "p")]).missing_required_header(),
        None
    );
    assert_eq!(
        init(&[
            ("tchannel_language", "rust"),
            ("tchannel_language_version", "1"),
            ("tchannel_version", "0.1"),
            ("process_name", "p"),
        ])
        .missing_required_header(),
        Some("host_port")
    );
    assert_eq!(
        init(&[("host_port", "0.0.0.0:0"), ("whatever", "x")]).missing_required_header(),
        Some("process_name")
    );
    let i = init(&[
        ("host_port", "1.2.3.4:1"),
        ("process_name", "p"),
        ("host_port", "5.6.7.8:2"),
    ]);
    assert_eq!(i.headers.get(b"host_port"), Some(&b"5.6.7.8:2"[..]));
    let frame = Frame::InitReq(i);
    assert_eq!(decode_roundtrip(&encode(&frame)), frame);
}

#[test]
pub(crate) fn tracing_child_and_sampled_flag() {
    // [TRACE-7] a child call keeps the trace id, takes a new span id, the inbound span as
    // parent, and the inbound flags; [TRACE-3] bit 0x01 means sampled
    let child = TRACING.child(0x9999);
    assert_eq!(
        child,
        Tracing {
            span_id: 0x9999,
            parent_id: TRACING.span_id,
            trace_id: TRACING.trace_id,
            flags: TRACING.flags,
        }
    );
    assert_eq!(Tracing::SAMPLED, 0x01);
    assert_eq!(TRACING.flags & Tracing::SAMPLED, Tracing::SAMPLED);
}

#[test]
pub(crate) fn constructors_add_no_trailer() {
    // [MSG-4] tchan never adds a trailer to a body it creates
    let e = tchan::frame::ErrorFrame::new(3, ErrorCode::BUSY, TRACING, "busy");
    assert!(e.trailing.is_empty());
    assert_eq!(Frame::Error(e).encoded_len(), 16 + 1 + 25 + 2 + 4);
    let p = Ping::new(3);
    assert!(p.trailing.is_empty());
    assert_eq!(Frame::PingReq(p).encoded_len(), 16);
}

#[test]
pub(crate) fn error_frame_new_keeps_a_long_message_encodable() {
    // [MSG-8] [FRAME-5] an error frame built with a long message still fits in a frame
    let e = tchan::frame::ErrorFrame::new(3, ErrorCode::UNEXPECTED, TRACING, vec![b'x'; 70_000]);
    let frame = Frame::Error(e);
    let bytes = frame
        .to_bytes()
        .expect("an error frame from ErrorFrame::new must encode");
    assert_eq!(bytes.len(), 65535);
}

#[test]
pub(crate) fn encode_refuses_what_the_wire_cannot_hold() {
    // [FRAME-5] no frame over 65535 is written, and nothing is written on refusal
    // [HDR-1] header keys and values are at most 255 bytes; [CALL-10] service at most 255
    let mut dst = BytesMut::from(&b"keep"[..]);
    let big = Frame::Unknown(Opaque {
        frame_type: FrameType(0x55),
        id: 1,
        payload: Bytes::from(vec![0; 65535 - 16 + 1]),
    });
    assert_eq!(
        big.encode(&mut dst),
        Err(EncodeError::FrameTooLarge {
            size: 65536,
            max: 65535
        })
    );
    let Frame::CallReq(mut f) = call_req(0, ChecksumField::NONE, &[b"a", b"b", b"c"]) else {
        panic!()
    };
    f.service = Bytes::from(vec![b's'; 256]);
    assert_eq!(
        Frame::CallReq(f).encode(&mut dst),
        Err(EncodeError::FieldTooLong {
            field: "service",
            len: 256,
            max: 255
        })
    );
    assert_eq!(&dst[..], b"keep");
    assert!(matches!(
        TransportHeaders::from_pairs([("k", vec![b'v'; 256])]),
        Err(EncodeError::FieldTooLong {
            len: 256,
            max: 255,
            ..
        })
    ));
}

#[test]
pub(crate) fn encode_refuses_an_unknown_checksum_type_in_a_first_frame() {
    // [CSUM-1] [CSUM-3] only 0x00..=0x03 have a known csum length; continue frames are
    // already refused, first frames should be too
    let cont = req_continue(0, csum(ChecksumType(7), 1), &[b"x"]);
    assert_eq!(cont.to_bytes(), Err(EncodeError::UnknownChecksumType(7)));
    let first = call_req(0, csum(ChecksumType(7), 1), &[b"a", b"b", b"c"]);
    assert_eq!(first.to_bytes(), Err(EncodeError::UnknownChecksumType(7)));
}
