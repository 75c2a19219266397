//! Decode and encode vectors, one per frame kind.

use super::*;

#[test]
pub(crate) fn init_req() {
    // [FRAME-1] [FRAME-2] [FRAME-3] [INIT-1] header layout, size includes the header, id kept
    // [FRAME-9] a known type decodes with its own layout
    let bytes = cat(&[
        &[0x00, 0x3e],             // size = 62
        &[0x01],                   // type = init req
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x01], // id = 1
        &[0; 8],                   // reserved
        &[0x00, 0x02],             // version = 2
        &[0x00, 0x02],             // nh = 2
        &[0x00, 0x09],             // key length = 9
        b"host_port",              // key
        &[0x00, 0x09],             // value length = 9
        b"0.0.0.0:0",              // value
        &[0x00, 0x0c],             // key length = 12
        b"process_name",           // key
        &[0x00, 0x04],             // value length = 4
        b"test",                   // value
    ]);
    let Frame::InitReq(f) = decode_roundtrip(&bytes) else {
        panic!("not an init req")
    };
    assert_eq!(f.id, 1);
    assert_eq!(f.version, 2);
    let headers: Vec<_> = f.headers.iter().collect();
    assert_eq!(
        headers,
        [
            (&b"host_port"[..], &b"0.0.0.0:0"[..]),
            (&b"process_name"[..], &b"test"[..])
        ]
    );
    assert_eq!(f.missing_required_header(), None);
    assert!(f.trailing.is_empty());
}

#[test]
pub(crate) fn init_res_with_nonzero_reserved_bytes() {
    // [FRAME-7] [FRAME-8] reserved bytes ignored on read, written as zero
    // [INIT-1] init res has the init req layout
    let bytes = cat(&[
        &[0x00, 0x2f],                                     // size = 47
        &[0x02],                                           // type = init res
        &[0xaa],                                           // reserved (non-zero!)
        &[0x00, 0x00, 0x00, 0x01],                         // id = 1
        &[0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08], // reserved (non-zero!)
        &[0x00, 0x02],                                     // version = 2
        &[0x00, 0x01],                                     // nh = 1
        &[0x00, 0x09],                                     // key length = 9
        b"host_port",                                      // key
        &[0x00, 0x0e],                                     // value length = 14
        b"127.0.0.1:4040",                                 // value
    ]);
    let decoded = Frame::decode(Bytes::copy_from_slice(&bytes)).unwrap();
    let Frame::InitRes(f) = &decoded else {
        panic!("not an init res")
    };
    assert_eq!(f.id, 1);
    assert_eq!(f.version, 2);
    assert_eq!(f.headers.get(b"host_port"), Some(&b"127.0.0.1:4040"[..]));
    assert_eq!(f.headers.len(), 1);
    assert_eq!(f.missing_required_header(), Some("process_name"));

    let out = encode(&decoded);
    assert_eq!(out[3], 0, "reserved byte 3 written as zero");
    assert_eq!(
        &out[8..16],
        &[0u8; 8],
        "reserved bytes 8..16 written as zero"
    );
    assert_eq!(out[..3], bytes[..3]);
    assert_eq!(out[4..8], bytes[4..8]);
    assert_eq!(out[16..], bytes[16..]);

    // The same frame with zero reserved bytes decodes to the same value.
    let zeroed = Frame::decode(Bytes::from(zero_reserved(&bytes))).unwrap();
    assert_eq!(zeroed, decoded);
}

#[test]
pub(crate) fn call_req_with_transport_headers_and_crc32() {
    // [CALL-1] call req layout (spec 02 §3.1); [HDR-1] nh:1 (k~1 v~1){nh}
    // [TRACE-1] span, parent, trace, flags; [CSUM-1] [CSUM-2] crc32 over arg bytes
    // [CSUM-4] only arg bytes are covered; [FRAG-1] chunks to the frame end
    let bytes = cat(&[
        &[0x00, 0x5b],             // size = 91
        &[0x03],                   // type = call req
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x02], // id = 2
        &[0; 8],                   // reserved
        &[0x00],                   // flags
        &[0x00, 0x00, 0x03, 0xe8], // ttl = 1000 ms
        &SPAN_ID,                  // tracing: span id
        &PARENT_ID,                // tracing: parent id
        &TRACE_ID,                 // tracing: trace id
        &TRACE_FLAGS,              // tracing: flags (sampled)
        &[0x03],                   // service length = 3
        b"svc",                    // service
        &[0x02],                   // nh = 2
        &[0x02],                   // key length = 2
        b"as",                     // key
        &[0x03],                   // value length = 3
        b"raw",                    // value
        &[0x02],                   // key length = 2
        b"cn",                     // key
        &[0x06],                   // value length = 6
        b"client",                 // value
        &[0x01],                   // csumtype = crc32
        &[0x89, 0xd7, 0x09, 0x16], // csum = crc32("echo" "hdr" "hello")
        &[0x00, 0x04],             // arg1 length = 4
        b"echo",                   // arg1
        &[0x00, 0x03],             // arg2 length = 3
        b"hdr",                    // arg2
        &[0x00, 0x05],             // arg3 length = 5
        b"hello",                  // arg3
    ]);
    let frame = decode_roundtrip(&bytes);
    let Frame::CallReq(f) = &frame else {
        panic!("not a call req")
    };
    assert_eq!(f.id, 2);
    assert_eq!(f.flags, Flags(0));
    assert!(!f.flags.more_fragments());
    assert_eq!(f.ttl, 1000);
    assert_eq!(f.tracing, TRACING);
    assert_eq!(&f.service[..], b"svc");
    let headers: Vec<_> = f.headers.iter().collect();
    assert_eq!(
        headers,
        [(&b"as"[..], &b"raw"[..]), (&b"cn"[..], &b"client"[..])]
    );
    assert_eq!(f.headers.validate(), Ok(()));
    assert_eq!(f.checksum.ty, ChecksumType::CRC32);
    assert_eq!(f.checksum.value, 0x89d7_0916);
    assert_eq!(f.checksum.value, crc32fast::hash(b"echohdrhello"));
    assert_eq!(f.args.len(), 3);
    assert_eq!(f.args.data_len(), 12);
    assert_eq!(chunks_of(&frame), [&b"echo"[..], b"hdr", b"hello"]);
    // The strict reassembler verifies the value too.
    assert_eq!(
        reassemble(&[frame]).unwrap(),
        [&b"echo"[..], b"hdr", b"hello"]
    );
}

#[test]
pub(crate) fn call_res_with_code_1_and_crc32c() {
    // [CALL-1] call res layout (spec 02 §3.2); [CALL-6] code 0x01 = application error, kept
    // [CALL-7] empty arg1 in a call res; [CSUM-1] crc32c value present
    let bytes = cat(&[
        &[0x00, 0x46],             // size = 70
        &[0x04],                   // type = call res
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x02], // id = 2
        &[0; 8],                   // reserved
        &[0x00],                   // flags
        &[0x01],                   // code = 0x01 (application error)
        &SPAN_ID,                  // tracing: span id
        &PARENT_ID,                // tracing: parent id
        &TRACE_ID,                 // tracing: trace id
        &TRACE_FLAGS,              // tracing: flags
        &[0x01],                   // nh = 1
        &[0x02],                   // key length = 2
        b"as",                     // key
        &[0x03],                   // value length = 3
        b"raw",                    // value
        &[0x03],                   // csumtype = crc32c
        &[0x87, 0x15, 0x1e, 0xa2], // csum = crc32c("" "oops" "boom")
        &[0x00, 0x00],             // arg1 length = 0
        &[0x00, 0x04],             // arg2 length = 4
        b"oops",                   // arg2
        &[0x00, 0x04],             // arg3 length = 4
        b"boom",                   // arg3
    ]);
    let frame = decode_roundtrip(&bytes);
    let Frame::CallRes(f) = &frame else {
        panic!("not a call res")
    };
    assert_eq!(f.id, 2);
    assert_eq!(f.flags, Flags(0));
    assert_eq!(f.code, ResponseCode::ERROR);
    assert!(!f.code.is_ok());
    assert_eq!(f.tracing, TRACING);
    assert_eq!(f.headers.get(b"as"), Some(&b"raw"[..]));
    assert_eq!(f.checksum.ty, ChecksumType::CRC32C);
    assert_eq!(f.checksum.value, crc32c::crc32c(b"oopsboom"));
    assert_eq!(chunks_of(&frame), [&b""[..], b"oops", b"boom"]);
    assert_eq!(reassemble(&[frame]).unwrap(), [&b""[..], b"oops", b"boom"]);
}

#[test]
pub(crate) fn call_res_unknown_code_kept() {
    // [CALL-6] a receiver keeps the exact non-zero code
    let frame = Frame::CallRes(tchan::frame::CallRes {
        id: 9,
        flags: Flags(0),
        code: ResponseCode(0x7f),
        tracing: Tracing::default(),
        headers: TransportHeaders::new(),
        checksum: ChecksumField::NONE,
        args: ArgChunks::from_chunks([b"", b"", b""]),
    });
    let bytes = encode(&frame);
    assert_eq!(bytes[16 + 1], 0x7f, "code at payload offset 1");
    let Frame::CallRes(back) = decode_roundtrip(&bytes) else {
        panic!()
    };
    assert_eq!(back.code, ResponseCode(0x7f));
    assert!(!back.code.is_ok());
}

#[test]
pub(crate) fn call_req_continue_with_empty_chunks() {
    // [CALL-1] continue layout (spec 02 §3.3); [CSUM-1] no csum with type 0x00
    // [FRAG-1] [FRAG-5] 0-length chunks are legal and kept as chunks
    let bytes = cat(&[
        &[0x00, 0x1b],             // size = 27
        &[0x13],                   // type = call req continue
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x03], // id = 3
        &[0; 8],                   // reserved
        &[0x00],                   // flags
        &[0x00],                   // csumtype = none (no csum field)
        &[0x00, 0x00],             // chunk length = 0 (ends the open arg)
        &[0x00, 0x03],             // chunk length = 3
        b"abc",                    // chunk
        &[0x00, 0x00],             // chunk length = 0
    ]);
    let frame = decode_roundtrip(&bytes);
    let Frame::CallReqContinue(f) = &frame else {
        panic!("not a call req continue")
    };
    assert_eq!(f.id, 3);
    assert_eq!(f.flags, Flags(0));
    assert_eq!(f.checksum, ChecksumField::NONE);
    assert_eq!(f.args.len(), 3);
    assert_eq!(f.args.data_len(), 3);
    assert_eq!(chunks_of(&frame), [&b""[..], b"abc", b""]);
    assert_eq!(f.args.last().unwrap(), Bytes::new());
}

#[test]
pub(crate) fn call_res_continue_with_farmhash() {
    // [CALL-1] call res continue; [CSUM-8] farmhash32 = Fingerprint32 of the last chunk
    let bytes = cat(&[
        &[0x00, 0x1d],             // size = 29
        &[0x14],                   // type = call res continue
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x03], // id = 3
        &[0; 8],                   // reserved
        &[0x01],                   // flags = more fragments
        &[0x02],                   // csumtype = farmhash32
        &[0x79, 0x96, 0x93, 0x66], // csum = Fingerprint32("hello") (npm farmhash)
        &[0x00, 0x05],             // chunk length = 5
        b"hello",                  // chunk
    ]);
    let frame = decode_roundtrip(&bytes);
    let Frame::CallResContinue(f) = &frame else {
        panic!("not a call res continue")
    };
    assert_eq!(f.id, 3);
    assert!(f.flags.more_fragments());
    assert_eq!(f.checksum.ty, ChecksumType::FARMHASH32);
    assert_eq!(f.checksum.value, 0x7996_9366);
    assert_eq!(fingerprint32(b"hello"), 0x7996_9366);
    assert_eq!(chunks_of(&frame), [&b"hello"[..]]);
}

#[test]
pub(crate) fn cancel_with_trailing_bytes() {
    // [MSG-5] cancel body ttl:4 tracing:25 why~2; [MSG-3] trailing bytes kept and re-encoded
    let bytes = cat(&[
        &[0x00, 0x38],             // size = 56
        &[0xc0],                   // type = cancel
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x02], // id = 2 (the cancelled call)
        &[0; 8],                   // reserved
        &[0x00, 0x00, 0x01, 0xf4], // ttl = 500
        &SPAN_ID,                  // tracing: span id
        &PARENT_ID,                // tracing: parent id
        &TRACE_ID,                 // tracing: trace id
        &TRACE_FLAGS,              // tracing: flags
        &[0x00, 0x07],             // why length = 7
        b"timeout",                // why
        &[0xde, 0xad],             // trailing bytes (kept)
    ]);
    let Frame::Cancel(f) = decode_roundtrip(&bytes) else {
        panic!("not a cancel")
    };
    assert_eq!(f.id, 2);
    assert_eq!(f.ttl, 500);
    assert_eq!(f.tracing, TRACING);
    assert_eq!(&f.why[..], b"timeout");
    assert_eq!(&f.trailing[..], &[0xde, 0xad]);
}

#[test]
pub(crate) fn claim() {
    // [MSG-6] claim body ttl:4 tracing:25
    let bytes = cat(&[
        &[0x00, 0x2d],             // size = 45
        &[0xc1],                   // type = claim
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x04], // id = 4
        &[0; 8],                   // reserved
        &[0x00, 0x00, 0x00, 0x64], // ttl = 100
        &SPAN_ID,                  // tracing: span id
        &PARENT_ID,                // tracing: parent id
        &TRACE_ID,                 // tracing: trace id
        &[0x00],                   // tracing: flags (not sampled)
    ]);
    let Frame::Claim(f) = decode_roundtrip(&bytes) else {
        panic!("not a claim")
    };
    assert_eq!(f.id, 4);
    assert_eq!(f.ttl, 100);
    assert_eq!(
        f.tracing,
        Tracing {
            flags: 0,
            ..TRACING
        }
    );
    assert!(f.trailing.is_empty());
}

#[test]
pub(crate) fn ping_req() {
    // [MSG-7] [FRAME-2] a 16-byte frame with an empty payload
    let bytes = cat(&[
        &[0x00, 0x10],             // size = 16
        &[0xd0],                   // type = ping req
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x02], // id = 2
        &[0; 8],                   // reserved
    ]);
    let frame = decode_roundtrip(&bytes);
    assert_eq!(frame, Frame::PingReq(Ping::new(2)));
    assert_eq!(frame.frame_type(), FrameType::PING_REQ);
    assert_eq!(frame.id(), 2);
}

#[test]
pub(crate) fn ping_res_with_trailing_bytes() {
    // [MSG-7] ping res; [MSG-3] bytes in a ping body are kept as a trailer
    let bytes = cat(&[
        &[0x00, 0x12],             // size = 18
        &[0xd1],                   // type = ping res
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x02], // id = 2 (the ping req's)
        &[0; 8],                   // reserved
        &[0x01, 0x02],             // trailing bytes (kept)
    ]);
    let Frame::PingRes(f) = decode_roundtrip(&bytes) else {
        panic!("not a ping res")
    };
    assert_eq!(f.id, 2);
    assert_eq!(&f.trailing[..], &[0x01, 0x02]);
}

#[test]
pub(crate) fn error_with_trailing_bytes() {
    // [MSG-8] error body code:1 tracing:25 message~2; [MSG-3] trailer kept
    let bytes = cat(&[
        &[0x00, 0x3e],             // size = 62
        &[0xff],                   // type = error
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x02], // id = 2
        &[0; 8],                   // reserved
        &[0x06],                   // code = bad request
        &SPAN_ID,                  // tracing: span id
        &PARENT_ID,                // tracing: parent id
        &TRACE_ID,                 // tracing: trace id
        &TRACE_FLAGS,              // tracing: flags
        &[0x00, 0x11],             // message length = 17
        b"unknown service x",      // message
        &[0xff],                   // trailing byte (kept)
    ]);
    let Frame::Error(f) = decode_roundtrip(&bytes) else {
        panic!("not an error")
    };
    assert_eq!(f.id, 2);
    assert_eq!(f.code, ErrorCode::BAD_REQUEST);
    assert_eq!(f.tracing, TRACING);
    assert_eq!(&f.message[..], b"unknown service x");
    assert_eq!(&f.trailing[..], &[0xff]);
}

#[test]
pub(crate) fn error_with_unknown_code_and_no_message_id() {
    // [MSG-9] unknown error codes kept; [MSG-8] id 0xffffffff; [TRACE-4] zero tracing accepted
    let bytes = cat(&[
        &[0x00, 0x2c],             // size = 44
        &[0xff],                   // type = error
        &[0x00],                   // reserved
        &[0xff, 0xff, 0xff, 0xff], // id = 0xffffffff (no message)
        &[0; 8],                   // reserved
        &[0x42],                   // code = 0x42 (not a known code)
        &[0; 25],                  // tracing: all zero
        &[0x00, 0x00],             // message length = 0
    ]);
    let Frame::Error(f) = decode_roundtrip(&bytes) else {
        panic!("not an error")
    };
    assert_eq!(f.id, tchan::frame::NO_MESSAGE_ID);
    assert_eq!(f.code, ErrorCode(0x42));
    assert_eq!(f.tracing, Tracing::default());
    assert!(f.message.is_empty());
    assert!(f.trailing.is_empty());
}

#[test]
pub(crate) fn unknown_type_0x55() {
    // [FRAME-10] unknown type kept as an opaque frame; [FRAME-12] re-encodes exactly
    let bytes = cat(&[
        &[0x00, 0x13],             // size = 19
        &[0x55],                   // type = 0x55 (unknown)
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x09], // id = 9
        &[0; 8],                   // reserved
        &[0x01, 0x02, 0x03],       // payload (not interpreted)
    ]);
    let frame = decode_roundtrip(&bytes);
    assert_eq!(
        frame,
        Frame::Unknown(Opaque {
            frame_type: FrameType(0x55),
            id: 9,
            payload: Bytes::from_static(&[1, 2, 3]),
        })
    );
    assert_eq!(frame.frame_type().name(), "unknown");
}

#[test]
pub(crate) fn call_req_with_no_chunks_after_the_checksum() {
    // [FRAG-1] the arg area may hold no chunk at all; [CSUM-1] type 0x00 has no csum
    // [TRACE-2] [TRACE-4] the tracing field is present (all zeros) and accepted
    let bytes = cat(&[
        &[0x00, 0x31],             // size = 49
        &[0x03],                   // type = call req
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x05], // id = 5
        &[0; 8],                   // reserved
        &[0x01],                   // flags = more fragments
        &[0x00, 0x00, 0x00, 0x0a], // ttl = 10
        &[0; 25],                  // tracing: all zero
        &[0x00],                   // service length = 0
        &[0x00],                   // nh = 0
        &[0x00],                   // csumtype = none; the frame ends here
    ]);
    let Frame::CallReq(f) = decode_roundtrip(&bytes) else {
        panic!("not a call req")
    };
    assert!(f.flags.more_fragments());
    assert!(f.service.is_empty());
    assert!(f.headers.is_empty());
    assert_eq!(f.checksum, ChecksumField::NONE);
    assert!(f.args.is_empty());
    assert_eq!(f.args.last(), None);
}

#[test]
pub(crate) fn continue_with_no_chunks_after_a_crc32() {
    // [CSUM-1] csum present for 0x01 even with no chunks; [FRAG-1] [FRAG-6] empty arg area
    let bytes = cat(&[
        &[0x00, 0x16],             // size = 22
        &[0x14],                   // type = call res continue
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x05], // id = 5
        &[0; 8],                   // reserved
        &[0x00],                   // flags
        &[0x01],                   // csumtype = crc32
        &[0x12, 0x34, 0x56, 0x78], // csum; the frame ends here
    ]);
    let Frame::CallResContinue(f) = decode_roundtrip(&bytes) else {
        panic!("not a call res continue")
    };
    assert_eq!(f.checksum, csum(ChecksumType::CRC32, 0x1234_5678));
    assert!(f.args.is_empty());
}

#[test]
pub(crate) fn cancel_from_the_node_fixture() {
    // [MSG-5] the cancel built by node's own encoder (cancel_lib_encoded.c2s.json, spec 02 §4.1)
    let bytes = cat(&[
        &[0x00, 0x39],             // size = 57
        &[0xc0],                   // type = cancel
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x02], // id = 2
        &[0; 8],                   // reserved
        &[0x00, 0x00, 0x05, 0xdc], // ttl = 1500
        &SPAN_ID,                  // tracing: span id
        &PARENT_ID,                // tracing: parent id
        &TRACE_ID,                 // tracing: trace id
        &TRACE_FLAGS,              // tracing: flags
        &[0x00, 0x0a],             // why length = 10
        b"lab cancel",             // why
    ]);
    let Frame::Cancel(f) = decode_roundtrip(&bytes) else {
        panic!("not a cancel")
    };
    assert_eq!(f.ttl, 1500);
    assert_eq!(&f.why[..], b"lab cancel");
    assert!(f.trailing.is_empty());
}

#[test]
pub(crate) fn error_busy_from_the_node_fixture() {
    // [MSG-8] [TRACE-1] node's busy answer to call 2 (error_busy.s2c.json, spec 02 §4.4)
    let bytes = cat(&[
        &[0x00, 0x3f],                                     // size = 63
        &[0xff],                                           // type = error
        &[0x00],                                           // reserved
        &[0x00, 0x00, 0x00, 0x02],                         // id = 2
        &[0; 8],                                           // reserved
        &[0x03],                                           // code = busy
        &[0xd1, 0xdb, 0x40, 0x69, 0xf2, 0x6b, 0x1e, 0xa4], // span id
        &[0; 8],                                           // parent id
        &[0xd1, 0xdb, 0x40, 0x69, 0xf2, 0x6b, 0x1e, 0xa4], // trace id
        &[0x00],                                           // trace flags
        &[0x00, 0x13],                                     // message length = 19
        b"interop server busy",                            // message
    ]);
    let Frame::Error(f) = decode_roundtrip(&bytes) else {
        panic!("not an error")
    };
    assert_eq!(f.code, ErrorCode::BUSY);
    assert_eq!(f.tracing.span_id, 0xd1db_4069_f26b_1ea4);
    assert_eq!(f.tracing.parent_id, 0);
    assert_eq!(f.tracing.trace_id, 0xd1db_4069_f26b_1ea4);
    assert_eq!(&f.message[..], b"interop server busy");
}

#[test]
pub(crate) fn text_fields_are_not_validated() {
    // [MSG-2] invalid UTF-8 in service, header and message is not a decode error
    let frame = Frame::CallReq(tchan::frame::CallReq {
        id: 1,
        flags: Flags(0),
        ttl: 1,
        tracing: Tracing::default(),
        service: Bytes::from_static(&[0xff, 0xfe]),
        headers: TransportHeaders::from_pairs([(&[0xc3u8, 0x28][..], &[0x80u8][..])]).unwrap(),
        checksum: ChecksumField::NONE,
        args: ArgChunks::from_chunks([&[0xffu8][..]]),
    });
    let back = decode_roundtrip(&encode(&frame));
    assert_eq!(back, frame);
}
