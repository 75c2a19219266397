//! `MessageWriter`, the fragmenter.

use super::*;

pub(crate) fn write(head: CallHead, ty: ChecksumType, max: usize, args: [&[u8]; 3]) -> Vec<u8> {
    let mut dst = BytesMut::new();
    MessageWriter::write_message(&mut dst, 2, head, ty, max, args).expect("write_message");
    dst.to_vec()
}

/// A req head with service "svc" and no headers: 52 bytes before the first chunk.
pub(crate) fn bare_req() -> CallHead {
    req_head("svc", &[])
}

/// The first 52 bytes of a call req written by `bare_req()` with id 2, checksum none.
pub(crate) fn bare_req_prefix(size: u16, flags: u8) -> Vec<u8> {
    cat(&[
        &size.to_be_bytes(),       // size
        &[0x03],                   // type = call req
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x02], // id = 2
        &[0; 8],                   // reserved
        &[flags],                  // flags
        &[0x00, 0x00, 0x03, 0xe8], // ttl = 1000
        &SPAN_ID,                  // tracing: span id
        &PARENT_ID,                // tracing: parent id
        &TRACE_ID,                 // tracing: trace id
        &TRACE_FLAGS,              // tracing: flags
        &[0x03],                   // service length = 3
        b"svc",                    // service
        &[0x00],                   // nh = 0
        &[0x00],                   // csumtype = none
    ])
}

/// The header and checksum of a call req continue frame (id 2, checksum none).
pub(crate) fn continue_prefix(size: u16, flags: u8) -> Vec<u8> {
    cat(&[
        &size.to_be_bytes(),       // size
        &[0x13],                   // type = call req continue
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x02], // id = 2
        &[0; 8],                   // reserved
        &[flags],                  // flags
        &[0x00],                   // csumtype = none
    ])
}

#[test]
pub(crate) fn writer_small_request_fits_one_frame() {
    // [CALL-4] a single-frame message has flags 0; [HDR-9] headers in the given order
    // [CSUM-4] crc32c over echo+hdr+hello; [FRAG-15] three args, one chunk each
    let out = write(
        req_head("svc", &[("cn", "client"), ("as", "raw")]),
        ChecksumType::CRC32C,
        65535,
        [b"echo", b"hdr", b"hello"],
    );
    let expected = cat(&[
        &[0x00, 0x5b],             // size = 91
        &[0x03],                   // type = call req
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x02], // id = 2
        &[0; 8],                   // reserved
        &[0x00],                   // flags = 0 (last frame)
        &[0x00, 0x00, 0x03, 0xe8], // ttl = 1000
        &SPAN_ID,                  // tracing: span id
        &PARENT_ID,                // tracing: parent id
        &TRACE_ID,                 // tracing: trace id
        &TRACE_FLAGS,              // tracing: flags
        &[0x03],                   // service length = 3
        b"svc",                    // service
        &[0x02],                   // nh = 2
        &[0x02],                   // key length
        b"cn",                     // key
        &[0x06],                   // value length
        b"client",                 // value
        &[0x02],                   // key length
        b"as",                     // key
        &[0x03],                   // value length
        b"raw",                    // value
        &[0x03],                   // csumtype = crc32c
        &[0x24, 0x03, 0x2b, 0x9c], // csum = crc32c("echohdrhello")
        &[0x00, 0x04],             // arg1 length
        b"echo",                   // arg1
        &[0x00, 0x03],             // arg2 length
        b"hdr",                    // arg2
        &[0x00, 0x05],             // arg3 length
        b"hello",                  // arg3
    ]);
    assert_eq!(hex::encode(&out), hex::encode(&expected));
    assert_eq!(crc32c::crc32c(b"echohdrhello"), 0x2403_2b9c);
    decode_roundtrip(&out);
}

#[test]
pub(crate) fn writer_response_with_empty_arg1() {
    // [CALL-7] a call res with an empty arg1; [CSUM-9] farmhash of an empty last chunk
    let out = write(
        res_head(0, &[("as", "raw")]),
        ChecksumType::FARMHASH32,
        65535,
        [b"", b"", b""],
    );
    let expected = cat(&[
        &[0x00, 0x3e],             // size = 62
        &[0x04],                   // type = call res
        &[0x00],                   // reserved
        &[0x00, 0x00, 0x00, 0x02], // id = 2
        &[0; 8],                   // reserved
        &[0x00],                   // flags
        &[0x00],                   // code = ok
        &SPAN_ID,                  // tracing: span id
        &PARENT_ID,                // tracing: parent id
        &TRACE_ID,                 // tracing: trace id
        &TRACE_FLAGS,              // tracing: flags
        &[0x01],                   // nh = 1
        &[0x02],                   // key length
        b"as",                     // key
        &[0x03],                   // value length
        b"raw",                    // value
        &[0x02],                   // csumtype = farmhash32
        &[0xdc, 0x56, 0xd1, 0x7a], // csum = Fingerprint32("") (CSUM-9)
        &[0x00, 0x00],             // arg1 length = 0
        &[0x00, 0x00],             // arg2 length = 0
        &[0x00, 0x00],             // arg3 length = 0
    ]);
    assert_eq!(hex::encode(&out), hex::encode(&expected));
}

#[test]
pub(crate) fn writer_arg2_ends_exactly_at_the_frame_end() {
    // [FRAG-18] [CALL-4] 0 bytes left after arg2: the frame is sent with 0x01 and the next
    // frame starts with an empty chunk that ends arg2, then arg3 (unlike node, DEV-1)
    // [FRAG-4] receiver side: the 0-length chunk terminates arg2
    let arg2 = [b'b'; 40];
    let out = write(
        bare_req(),
        ChecksumType::NONE,
        100,
        [b"echo", &arg2, b"xyz"],
    );
    let expected = cat(&[
        &bare_req_prefix(100, 0x01), // first frame: size 100, more fragments
        &[0x00, 0x04],               // arg1 length = 4
        b"echo",                     // arg1
        &[0x00, 0x28],               // arg2 length = 40
        &arg2,                       // arg2, up to the frame end
        &continue_prefix(25, 0x00),  // second frame: size 25, last
        &[0x00, 0x00],               // chunk of 0 bytes: arg2 ends
        &[0x00, 0x03],               // arg3 length = 3
        b"xyz",                      // arg3
    ]);
    assert_eq!(hex::encode(&out), hex::encode(&expected));
    let frames = split_frames(&out);
    assert_eq!(reassemble(&frames).unwrap(), [&b"echo"[..], &arg2, b"xyz"]);
}

#[test]
pub(crate) fn writer_arg2_leaves_1_byte() {
    // [FRAG-18] [CALL-4] 1 byte left is not enough for a chunk length: same as 0 left,
    // the frame is one byte short of the max (DEV-1)
    let arg2 = [b'b'; 39];
    let out = write(
        bare_req(),
        ChecksumType::NONE,
        100,
        [b"echo", &arg2, b"xyz"],
    );
    let expected = cat(&[
        &bare_req_prefix(99, 0x01), // first frame: size 99, more fragments
        &[0x00, 0x04],              // arg1 length = 4
        b"echo",                    // arg1
        &[0x00, 0x27],              // arg2 length = 39
        &arg2,                      // arg2 (1 byte short of the max)
        &continue_prefix(25, 0x00), // second frame: size 25, last
        &[0x00, 0x00],              // chunk of 0 bytes: arg2 ends
        &[0x00, 0x03],              // arg3 length = 3
        b"xyz",                     // arg3
    ]);
    assert_eq!(hex::encode(&out), hex::encode(&expected));
    let frames = split_frames(&out);
    assert_eq!(reassemble(&frames).unwrap(), [&b"echo"[..], &arg2, b"xyz"]);
}

#[test]
pub(crate) fn writer_arg2_leaves_2_bytes() {
    // [FRAG-17] [CALL-4] 2 bytes left: arg3's (empty) chunk header goes in the same frame,
    // arg3 continues in the next (node does the same: raw_arg2_leaves_2_bytes)
    // [FRAG-4] [FRAG-5] receiver side: the empty chunk at the frame end is not a terminator
    let arg2 = [b'b'; 38];
    let out = write(
        bare_req(),
        ChecksumType::NONE,
        100,
        [b"echo", &arg2, b"xyz"],
    );
    let expected = cat(&[
        &bare_req_prefix(100, 0x01), // first frame: size 100, more fragments
        &[0x00, 0x04],               // arg1 length = 4
        b"echo",                     // arg1
        &[0x00, 0x26],               // arg2 length = 38
        &arg2,                       // arg2
        &[0x00, 0x00],               // arg3 length = 0 (in this frame)
        &continue_prefix(23, 0x00),  // second frame: size 23, last
        &[0x00, 0x03],               // arg3 continues: 3 bytes
        b"xyz",                      // arg3
    ]);
    assert_eq!(hex::encode(&out), hex::encode(&expected));
    let frames = split_frames(&out);
    assert_eq!(reassemble(&frames).unwrap(), [&b"echo"[..], &arg2, b"xyz"]);
}

#[test]
pub(crate) fn writer_arg3_ends_exactly_at_the_frame_end() {
    // [CALL-4] [FRAG-19] a last arg that ends exactly at the frame end needs no extra frame
    let arg3 = [b'c'; 36];
    let out = write(bare_req(), ChecksumType::NONE, 100, [b"echo", b"ab", &arg3]);
    let expected = cat(&[
        &bare_req_prefix(100, 0x00), // one frame: size 100, flags 0
        &[0x00, 0x04],               // arg1 length = 4
        b"echo",                     // arg1
        &[0x00, 0x02],               // arg2 length = 2
        b"ab",                       // arg2
        &[0x00, 0x24],               // arg3 length = 36
        &arg3,                       // arg3, up to the frame end
    ]);
    assert_eq!(hex::encode(&out), hex::encode(&expected));
}

#[test]
pub(crate) fn writer_frame_of_exactly_65535() {
    // [FRAME-5] never over 65535; [CALL-4] exactly full last frame: flags 0, one frame
    let arg3 = pattern(65535 - 52 - 2 - 4 - 2 - 2, 1);
    let out = write(bare_req(), ChecksumType::NONE, 65535, [b"echo", b"", &arg3]);
    assert_eq!(out.len(), 65535);
    assert_eq!(&out[..2], &[0xff, 0xff]);
    let frames = split_frames(&out);
    assert_eq!(frames.len(), 1);
    assert_eq!(flags_of(&frames[0]), 0);
}

#[test]
pub(crate) fn writer_65536_spills_1_byte() {
    // [FRAME-5] [FRAG-16] [CALL-4] one byte more than fits: 65535 bytes with 0x01, then a
    // continue frame carrying the last byte of arg3
    let arg3 = pattern(65535 - 52 - 2 - 4 - 2 - 2 + 1, 1);
    let out = write(bare_req(), ChecksumType::NONE, 65535, [b"echo", b"", &arg3]);
    let frames = split_frames(&out);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].encoded_len(), 65535);
    assert_eq!(flags_of(&frames[0]), 0x01);
    assert_eq!(
        chunks_of(&frames[0])
            .iter()
            .map(Vec::len)
            .collect::<Vec<_>>(),
        [4, 0, arg3.len() - 1]
    );
    let expected_second = cat(&[
        &continue_prefix(21, 0x00), // size 21, last frame
        &[0x00, 0x01],              // chunk length = 1 (arg3 continues)
        &[*arg3.last().unwrap()],   // the last byte of arg3
    ]);
    assert_eq!(out[65535..], expected_second[..]);
    assert_eq!(reassemble(&frames).unwrap(), [&b"echo"[..], b"", &arg3]);
}

/// Writes a message over small frames and returns the decoded frames.
pub(crate) fn small_frames(ty: ChecksumType, args: [&[u8]; 3]) -> Vec<Frame> {
    let out = write(bare_req(), ty, 80, args);
    let frames = split_frames(&out);
    assert!(frames.len() >= 4, "{} frames", frames.len());
    assert!(frames.iter().all(|f| f.encoded_len() <= 80));
    frames
}

#[test]
pub(crate) fn writer_crc_chains_across_frames() {
    // [CSUM-5] frame N carries the CRC of the arg bytes of frames 1..=N
    // [CSUM-4] only arg bytes (no lengths) are covered; [CSUM-2] crc32 is zlib's CRC-32
    let (a1, a2, a3) = (pattern(50, 1), pattern(70, 2), pattern(90, 3));
    for ty in [ChecksumType::CRC32, ChecksumType::CRC32C] {
        let frames = small_frames(ty, [&a1, &a2, &a3]);
        let mut so_far = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            for c in chunks_of(f) {
                so_far.extend_from_slice(&c);
            }
            let want = if ty == ChecksumType::CRC32 {
                crc32fast::hash(&so_far)
            } else {
                crc32c::crc32c(&so_far)
            };
            assert_eq!(checksum_of(f), csum(ty, want), "{ty:?} frame {}", i + 1);
        }
        assert_eq!(reassemble(&frames).unwrap(), [&a1, &a2, &a3]);
    }
}

#[test]
pub(crate) fn writer_frame_with_only_an_empty_chunk_repeats_the_crc() {
    // [CSUM-6] a frame with no arg bytes carries the previous frame's value
    let arg2 = [b'b'; 40];
    let out = write(bare_req(), ChecksumType::CRC32, 104, [b"echo", &arg2, b""]);
    let frames = split_frames(&out);
    assert_eq!(frames.len(), 2);
    assert_eq!(chunks_of(&frames[1]), [&b""[..], b""]);
    assert_eq!(checksum_of(&frames[1]), checksum_of(&frames[0]));
    let mut all = b"echo".to_vec();
    all.extend_from_slice(&arg2);
    assert_eq!(checksum_of(&frames[1]).value, crc32fast::hash(&all));
}

#[test]
pub(crate) fn writer_farmhash_is_per_frame_last_chunk() {
    // [CSUM-8] [DEV-2] farmhash32: Fingerprint32 of the frame's last chunk, no chaining
    // [CSUM-10] tchan computes the values it sends that way
    let (a1, a2, a3) = (pattern(10, 1), pattern(70, 2), pattern(90, 3));
    let frames = small_frames(ChecksumType::FARMHASH32, [&a1, &a2, &a3]);
    for (i, f) in frames.iter().enumerate() {
        let chunks = chunks_of(f);
        let last = chunks.last().unwrap();
        assert_eq!(
            checksum_of(f),
            csum(ChecksumType::FARMHASH32, fingerprint32(last)),
            "frame {}",
            i + 1
        );
    }
    // The first frame has two chunks; only the last one counts.
    let first = chunks_of(&frames[0]);
    assert_eq!(first.len(), 2);
    assert_ne!(
        checksum_of(&frames[0]).value,
        fingerprint32(&first.concat())
    );
    assert_eq!(reassemble(&frames).unwrap(), [&a1, &a2, &a3]);
}

#[test]
pub(crate) fn writer_farmhash_matches_node() {
    // [CSUM-8] the fixture value from checksum_farmhash32.c2s.json (spec 04 §7)
    let out = write(
        bare_req(),
        ChecksumType::FARMHASH32,
        65535,
        [b"echo", b"csum-arg2", b"checksum farmhash"],
    );
    let frames = split_frames(&out);
    assert_eq!(
        checksum_of(&frames[0]),
        csum(ChecksumType::FARMHASH32, 0x57cf_153b)
    );
}

#[test]
pub(crate) fn writer_rejects_ttl_0() {
    // [TTL-2] a call req is never sent with a ttl of 0
    let head = CallHead::Req(ReqHead {
        ttl: 0,
        tracing: TRACING,
        service: Bytes::from_static(b"svc"),
        headers: TransportHeaders::new(),
    });
    assert_eq!(
        MessageWriter::new(1, head, ChecksumType::NONE, 65535).unwrap_err(),
        EncodeError::ZeroTtl
    );
}

#[test]
pub(crate) fn writer_rejects_invalid_transport_headers() {
    // [HDR-5] tchan is strict when it writes: HDR-3 violations are refused; [HDR-3] limits
    fn try_req(pairs: Vec<(String, String)>) -> Result<MessageWriter, EncodeError> {
        let head = CallHead::Req(ReqHead {
            ttl: 100,
            tracing: TRACING,
            service: Bytes::from_static(b"svc"),
            headers: TransportHeaders::from_pairs(pairs).unwrap(),
        });
        MessageWriter::new(1, head, ChecksumType::NONE, 65535)
    }
    let p = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        try_req(p(&[("", "x")])).unwrap_err(),
        EncodeError::BadHeader(HeaderViolation::EmptyKey)
    );
    assert_eq!(
        try_req(p(&[("as", "raw"), ("as", "json")])).unwrap_err(),
        EncodeError::BadHeader(HeaderViolation::DuplicateKey("as".into()))
    );
    assert!(matches!(
        try_req(vec![("k".repeat(17), String::new())]).unwrap_err(),
        EncodeError::BadHeader(HeaderViolation::KeyTooLong { len: 17, .. })
    ));
    let many: Vec<(String, String)> = (0..129).map(|i| (format!("k{i}"), String::new())).collect();
    assert!(matches!(
        try_req(many).unwrap_err(),
        EncodeError::BadHeader(HeaderViolation::TooMany { count: 129, .. })
    ));
    // The limits themselves are fine.
    let ok: Vec<(String, String)> = (0..128)
        .map(|i| (format!("{i:016}"), "v".repeat(255)))
        .collect();
    assert!(try_req(ok).is_ok());
    // Responses are checked too.
    let head = CallHead::Res(ResHead {
        code: ResponseCode::OK,
        tracing: TRACING,
        headers: TransportHeaders::from_pairs([("", "")]).unwrap(),
    });
    assert!(matches!(
        MessageWriter::new(1, head, ChecksumType::NONE, 65535),
        Err(EncodeError::BadHeader(HeaderViolation::EmptyKey))
    ));
}

#[test]
pub(crate) fn writer_rejects_a_service_over_255_bytes() {
    // [CALL-10] service longer than 255 bytes refused locally
    let head = CallHead::Req(ReqHead {
        ttl: 100,
        tracing: TRACING,
        service: Bytes::from(vec![b's'; 256]),
        headers: TransportHeaders::new(),
    });
    assert_eq!(
        MessageWriter::new(1, head, ChecksumType::NONE, 65535).unwrap_err(),
        EncodeError::FieldTooLong {
            field: "service",
            len: 256,
            max: 255
        }
    );
}

#[test]
pub(crate) fn writer_rejects_an_empty_service() {
    // [CALL-10] a call req with an empty service is refused locally
    let head = CallHead::Req(ReqHead {
        ttl: 100,
        tracing: TRACING,
        service: Bytes::new(),
        headers: TransportHeaders::new(),
    });
    let r = MessageWriter::new(1, head, ChecksumType::NONE, 65535);
    assert!(
        matches!(
            r,
            Err(EncodeError::FieldTooLong {
                field: "service (empty)",
                len: 0,
                ..
            })
        ),
        "{:?}",
        r.err()
    );
}

#[test]
pub(crate) fn writer_rejects_a_head_that_does_not_fit() {
    // [CALL-9] the first frame must hold every field up to csum plus one chunk length
    let head = || req_head("svc", &[("cn", "client"), ("as", "raw")]);
    // 16 + 52 (fixed, headers) + 5 (crc32) + 2 (first chunk length) = 75 bytes
    let need = 16 + (1 + 4 + 25 + 1 + 3 + 1 + 10 + 7) + 5 + 2;
    assert_eq!(
        MessageWriter::new(1, head(), ChecksumType::CRC32, need - 1).unwrap_err(),
        EncodeError::HeadTooLarge {
            size: need,
            max: need - 1
        }
    );
    let mut w = MessageWriter::new(1, head(), ChecksumType::CRC32, need).unwrap();
    let mut dst = BytesMut::new();
    for arg in [&b"a"[..], b"bb", b"ccc"] {
        w.write(&mut dst, arg).unwrap();
        w.end_arg(&mut dst).unwrap();
    }
    let frames = split_frames(&dst);
    assert!(frames.iter().all(|f| f.encoded_len() <= need));
    assert_eq!(reassemble(&frames).unwrap(), [&b"a"[..], b"bb", b"ccc"]);
}

#[test]
pub(crate) fn writer_rejects_unknown_checksum_and_writes_after_completion() {
    // [CSUM-3] only types 0x00..=0x03 exist; [CALL-4] nothing after the last frame
    assert_eq!(
        MessageWriter::new(1, bare_req(), ChecksumType(4), 65535).unwrap_err(),
        EncodeError::UnknownChecksumType(4)
    );
    let mut w = MessageWriter::new(1, bare_req(), ChecksumType::NONE, 65535).unwrap();
    let mut dst = BytesMut::new();
    assert!(!w.end_arg(&mut dst).unwrap());
    assert!(!w.end_arg(&mut dst).unwrap());
    assert!(w.end_arg(&mut dst).unwrap());
    assert!(w.is_complete());
    let len = dst.len();
    assert_eq!(w.write(&mut dst, b"x"), Err(EncodeError::MessageComplete));
    assert_eq!(w.end_arg(&mut dst), Err(EncodeError::MessageComplete));
    assert_eq!(dst.len(), len);
    assert_eq!(
        reassemble(&split_frames(&dst)).unwrap(),
        [&b""[..], b"", b""]
    );
}

#[test]
pub(crate) fn writer_flush_mid_arg() {
    // [CALL-4] flushed frames carry 0x01; [FRAG-1] the next frame's first chunk continues
    // the open arg; [CSUM-5] the chain continues across the flush
    let mut w = MessageWriter::new(2, bare_req(), ChecksumType::CRC32, 65535).unwrap();
    let mut dst = BytesMut::new();
    w.write(&mut dst, b"echo").unwrap();
    w.end_arg(&mut dst).unwrap();
    w.write(&mut dst, b"part1-").unwrap();
    w.flush(&mut dst);
    w.flush(&mut dst); // nothing open: no-op
    let first = dst.split().freeze();
    let f1 = split_frames(&first);
    assert_eq!(f1.len(), 1);
    assert_eq!(flags_of(&f1[0]), 0x01);
    assert_eq!(chunks_of(&f1[0]), [&b"echo"[..], b"part1-"]);
    assert_eq!(
        checksum_of(&f1[0]),
        csum(ChecksumType::CRC32, crc32fast::hash(b"echopart1-"))
    );

    w.write(&mut dst, b"part2").unwrap();
    w.end_arg(&mut dst).unwrap();
    // Flush right after end_arg: the frame ends with arg3's empty chunk.
    w.flush(&mut dst);
    let second = dst.split().freeze();
    let f2 = split_frames(&second);
    assert_eq!(chunks_of(&f2[0]), [&b"part2"[..], b""]);
    assert_eq!(flags_of(&f2[0]), 0x01);
    assert_eq!(f2[0].frame_type(), FrameType::CALL_REQ_CONTINUE);

    w.write(&mut dst, b"body").unwrap();
    assert!(w.end_arg(&mut dst).unwrap());
    let f3 = split_frames(&dst);
    assert_eq!(chunks_of(&f3[0]), [&b"body"[..]]);
    assert_eq!(flags_of(&f3[0]), 0x00);
    assert_eq!(
        checksum_of(&f3[0]),
        csum(ChecksumType::CRC32, crc32fast::hash(b"echopart1-part2body"))
    );
    assert_eq!(w.frames(), 3);

    let all: Vec<Frame> = [f1, f2, f3].concat();
    assert_eq!(
        reassemble(&all).unwrap(),
        [&b"echo"[..], b"part1-part2", b"body"]
    );
}

#[test]
pub(crate) fn writer_equal_inputs_give_equal_bytes() {
    // [HDR-9] deterministic: equal inputs give equal bytes
    let go = || {
        write(
            req_head(
                "svc",
                &[("cn", "c"), ("as", "raw"), ("zz", "1"), ("aa", "2")],
            ),
            ChecksumType::CRC32C,
            200,
            [b"m", &pattern(500, 9), b""],
        )
    };
    assert_eq!(go(), go());
    let frames = split_frames(&go());
    let Frame::CallReq(f) = &frames[0] else {
        panic!()
    };
    let keys: Vec<_> = f.headers.iter().map(|(k, _)| k.to_vec()).collect();
    assert_eq!(
        keys,
        [
            b"cn".to_vec(),
            b"as".to_vec(),
            b"zz".to_vec(),
            b"aa".to_vec()
        ]
    );
}
