//! The spec's and node's examples.

use super::*;

#[test]
pub(crate) fn spec_example_tiny_frames() {
    // Spec 05 §5.5: three tiny frames, written by a flushing writer.
    // [FRAG-2] [FRAG-3] [FRAG-4] [FRAG-14] arg1 split over frames, a 0-length chunk closes arg2
    // [CSUM-5] crc32 chained: CRC-32("ec"), CRC-32("echohi"), CRC-32("echohi12345678")
    let frame1 = cat(&[
        &[0x00, 0x4d],             // size = 77
        &[0x03],                   // type = call req
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x07], // id = 7
        &[0; 8],                   // reserved
        &[0x01],                   // flags = more fragments
        &[0x00, 0x00, 0x03, 0xe8], // ttl = 1000
        &SPAN_ID,                  // tracing: span id
        &PARENT_ID,                // tracing: parent id
        &TRACE_ID,                 // tracing: trace id
        &TRACE_FLAGS,              // tracing: flags (sampled)
        &[0x03],                   // service length
        b"svc",                    // service
        &[0x02],                   // nh = 2
        &[0x02],                   // key length
        b"cn",                     // key
        &[0x06],                   // value length
        b"caller",                 // value
        &[0x02],                   // key length
        b"as",                     // key
        &[0x03],                   // value length
        b"raw",                    // value
        &[0x01],                   // csumtype = crc32
        &[0x8d, 0xe8, 0xbd, 0xff], // csum = CRC-32("ec")
        &[0x00, 0x02],             // chunk length = 2
        b"ec",                     // arg1, open
    ]);
    let frame2 = cat(&[
        &[0x00, 0x1e],             // size = 30
        &[0x13],                   // type = call req continue
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x07], // id = 7
        &[0; 8],                   // reserved
        &[0x01],                   // flags = more fragments
        &[0x01],                   // csumtype = crc32
        &[0x13, 0x3a, 0x59, 0x75], // csum = CRC-32("echohi")
        &[0x00, 0x02],             // chunk length = 2
        b"ho",                     // continues arg1 -> "echo", closed
        &[0x00, 0x02],             // chunk length = 2
        b"hi",                     // starts arg2, open at the frame end
    ]);
    let frame3 = cat(&[
        &[0x00, 0x22],             // size = 34
        &[0x13],                   // type = call req continue
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x07], // id = 7
        &[0; 8],                   // reserved
        &[0x00],                   // flags = last frame
        &[0x01],                   // csumtype = crc32
        &[0x4a, 0xbc, 0x20, 0xa6], // csum = CRC-32("echohi12345678")
        &[0x00, 0x00],             // chunk length = 0: closes arg2
        &[0x00, 0x08],             // chunk length = 8
        b"12345678",               // arg3
    ]);
    assert_eq!(crc32fast::hash(b"ec"), 0x8de8_bdff);
    assert_eq!(crc32fast::hash(b"echohi"), 0x133a_5975);
    assert_eq!(crc32fast::hash(b"echohi12345678"), 0x4abc_20a6);
    let frames: Vec<Frame> = [&frame1, &frame2, &frame3]
        .iter()
        .map(|b| decode_roundtrip(b))
        .collect();
    assert_eq!(
        reassemble(&frames).unwrap(),
        [&b"echo"[..], b"hi", b"12345678"]
    );

    // tchan's writer, flushed at the same points, gives the same bytes.
    let head = req_head("svc", &[("cn", "caller"), ("as", "raw")]);
    let mut w = MessageWriter::new(7, head, ChecksumType::CRC32, 65535).unwrap();
    let mut dst = BytesMut::new();
    w.write(&mut dst, b"ec").unwrap();
    w.flush(&mut dst);
    w.write(&mut dst, b"ho").unwrap();
    w.end_arg(&mut dst).unwrap();
    w.write(&mut dst, b"hi").unwrap();
    w.flush(&mut dst);
    w.end_arg(&mut dst).unwrap();
    w.write(&mut dst, b"12345678").unwrap();
    assert!(w.end_arg(&mut dst).unwrap());
    assert_eq!(
        hex::encode(&dst),
        hex::encode([frame1, frame2, frame3].concat())
    );
}

/// Tracing of node's `raw_echo_small` call: span = trace, parent 0, not sampled.
pub(crate) const NODE_TRACING: Tracing = Tracing {
    span_id: 0x0b9b_348c_b5ea_33ec,
    parent_id: 0,
    trace_id: 0x0b9b_348c_b5ea_33ec,
    flags: 0,
};

#[test]
pub(crate) fn writer_reproduces_node_raw_echo_small() {
    // raw_echo_small.c2s.json frame 1 and raw_echo_small.s2c.json frame 1 (spec 05 §5.1)
    // [FRAG-15] tchan's layout is node's for the same message; [HDR-1] [HDR-9] header order
    // [CSUM-4] crc32c over the arg bytes only; [CALL-7] empty arg1 in the response
    let node_req = cat(&[
        &[0x00, 0x78],                                     // size = 120
        &[0x03],                                           // type = call req
        &[0x00],                                           // reserved
        &[0x00, 0x00, 0x00, 0x02],                         // id = 2
        &[0; 8],                                           // reserved
        &[0x00],                                           // flags
        &[0x00, 0x00, 0x07, 0xca],                         // ttl = 1994
        &[0x0b, 0x9b, 0x34, 0x8c, 0xb5, 0xea, 0x33, 0xec], // span id
        &[0; 8],                                           // parent id
        &[0x0b, 0x9b, 0x34, 0x8c, 0xb5, 0xea, 0x33, 0xec], // trace id
        &[0x00],                                           // trace flags
        &[0x07],                                           // service length
        b"interop",                                        // service
        &[0x03],                                           // nh = 3
        &[0x02],                                           // key length
        b"cn",                                             // key
        &[0x0e],                                           // value length
        b"interop-client",                                 // value
        &[0x02],                                           // key length
        b"as",                                             // key
        &[0x03],                                           // value length
        b"raw",                                            // value
        &[0x02],                                           // key length
        b"re",                                             // key
        &[0x01],                                           // value length
        b"c",                                              // value
        &[0x03],                                           // csumtype = crc32c
        &[0xc5, 0xd9, 0x2e, 0xb8],                         // csum
        &[0x00, 0x04],                                     // arg1 length
        b"echo",                                           // arg1
        &[0x00, 0x09],                                     // arg2 length
        b"hdr-bytes",                                      // arg2
        &[0x00, 0x0b],                                     // arg3 length
        b"hello world",                                    // arg3
    ]);
    let node_res = cat(&[
        &[0x00, 0x52],                                     // size = 82
        &[0x04],                                           // type = call res
        &[0x00],                                           // reserved
        &[0x00, 0x00, 0x00, 0x02],                         // id = 2
        &[0; 8],                                           // reserved
        &[0x00],                                           // flags
        &[0x00],                                           // code = ok
        &[0x0b, 0x9b, 0x34, 0x8c, 0xb5, 0xea, 0x33, 0xec], // span id
        &[0; 8],                                           // parent id
        &[0x0b, 0x9b, 0x34, 0x8c, 0xb5, 0xea, 0x33, 0xec], // trace id
        &[0x00],                                           // trace flags
        &[0x01],                                           // nh = 1
        &[0x02],                                           // key length
        b"as",                                             // key
        &[0x03],                                           // value length
        b"raw",                                            // value
        &[0x03],                                           // csumtype = crc32c
        &[0x1f, 0x4c, 0x8b, 0x09],                         // csum
        &[0x00, 0x00],                                     // arg1 length = 0
        &[0x00, 0x09],                                     // arg2 length
        b"hdr-bytes",                                      // arg2
        &[0x00, 0x0b],                                     // arg3 length
        b"hello world",                                    // arg3
    ]);
    assert_eq!(crc32c::crc32c(b"echohdr-byteshello world"), 0xc5d9_2eb8);
    assert_eq!(crc32c::crc32c(b"hdr-byteshello world"), 0x1f4c_8b09);

    let req = CallHead::Req(ReqHead {
        ttl: 1994,
        tracing: NODE_TRACING,
        service: Bytes::from_static(b"interop"),
        headers: TransportHeaders::strict([("cn", "interop-client"), ("as", "raw"), ("re", "c")])
            .unwrap(),
    });
    let mut out = BytesMut::new();
    MessageWriter::write_message(
        &mut out,
        2,
        req,
        ChecksumType::CRC32C,
        65535,
        [b"echo", b"hdr-bytes", b"hello world"],
    )
    .unwrap();
    assert_eq!(hex::encode(&out), hex::encode(&node_req));

    let res = CallHead::Res(ResHead {
        code: ResponseCode::OK,
        tracing: NODE_TRACING,
        headers: TransportHeaders::strict([("as", "raw")]).unwrap(),
    });
    let mut out = BytesMut::new();
    MessageWriter::write_message(
        &mut out,
        2,
        res,
        ChecksumType::CRC32C,
        65535,
        [b"", b"hdr-bytes", b"hello world"],
    )
    .unwrap();
    assert_eq!(hex::encode(&out), hex::encode(&node_res));
    for bytes in [&node_req, &node_res] {
        let frame = decode_roundtrip(bytes);
        assert_eq!(reassemble(&[frame]).unwrap().len(), 3);
    }
}
