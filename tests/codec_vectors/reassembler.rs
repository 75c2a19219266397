//! The `Reassembler`.

use super::*;

#[test]
pub(crate) fn reassembly_missing_args() {
    // [FRAG-9] a message ending with fewer than 3 args: `missing_args` (node's DEV-1 output)
    let frames = [call_req(0, ChecksumField::NONE, &[b"echo", b"hdr"])];
    assert_eq!(
        reassemble(&frames).unwrap_err(),
        ReassemblyError::MissingArgs { count: 2 }
    );
}

#[test]
pub(crate) fn reassembly_extra_args() {
    // [FRAG-9] a fourth arg: `extra_args`
    let frames = [call_req(0, ChecksumField::NONE, &[b"a", b"b", b"c", b"d"])];
    assert_eq!(reassemble(&frames).unwrap_err(), ReassemblyError::ExtraArgs);
}

#[test]
pub(crate) fn reassembly_checksum_type_changed() {
    // [CSUM-11] a continue frame with another checksum type: `checksum_type_changed`
    let frames = [
        call_req(
            0x01,
            csum(ChecksumType::CRC32, crc32fast::hash(b"echo")),
            &[b"echo"],
        ),
        req_continue(0x00, ChecksumField::NONE, &[b"", b"", b""]),
    ];
    assert_eq!(
        reassemble(&frames).unwrap_err(),
        ReassemblyError::ChecksumTypeChanged {
            first: ChecksumType::CRC32,
            now: ChecksumType::NONE
        }
    );
}

#[test]
pub(crate) fn reassembly_arg1_over_16_kib() {
    // [FRAG-10] arg1 over 16 KiB (the default limit) is `arg1_too_long`; 16 KiB is fine
    let ok = vec![b'm'; 16 * 1024];
    assert!(reassemble(&[call_req(0, ChecksumField::NONE, &[&ok, b"", b""])]).is_ok());
    let long = vec![b'm'; 16 * 1024 + 1];
    assert_eq!(
        reassemble(&[call_req(0, ChecksumField::NONE, &[&long, b"", b""])]).unwrap_err(),
        ReassemblyError::Arg1TooLong { max: 16 * 1024 }
    );
    // Spread over two frames, it is caught when the limit is crossed.
    let frames = [
        call_req(0x01, ChecksumField::NONE, &[&long[..10_000]]),
        req_continue(0x00, ChecksumField::NONE, &[&long[10_000..], b"", b""]),
    ];
    let mut r = Reassembler::new(ReassemblyLimits::default());
    r.push(fragment(&frames[0])).unwrap();
    assert_eq!(
        r.push(fragment(&frames[1])).unwrap_err(),
        ReassemblyError::Arg1TooLong { max: 16 * 1024 }
    );
}

#[test]
pub(crate) fn reassembly_checksum_mismatch_names_the_frame() {
    // [CSUM-15] every frame is verified as it arrives; [CSUM-16] a mismatch fails the message
    let (a1, a2, a3) = (pattern(50, 1), pattern(70, 2), pattern(90, 3));
    let mut frames = small_frames(ChecksumType::CRC32, [&a1, &a2, &a3]);
    let Frame::CallReqContinue(f) = &mut frames[2] else {
        panic!()
    };
    let good = f.checksum.value;
    f.checksum.value ^= 0x0100_0000;
    let bad = f.checksum.value;
    let mut r = Reassembler::new(ReassemblyLimits::default());
    r.push(fragment(&frames[0])).unwrap();
    r.push(fragment(&frames[1])).unwrap();
    assert_eq!(
        r.push(fragment(&frames[2])).unwrap_err(),
        ReassemblyError::ChecksumMismatch {
            frame: 3,
            carried: bad,
            computed: good
        }
    );
    // farmhash is verified per frame too.
    let mut frames = small_frames(ChecksumType::FARMHASH32, [&a1, &a2, &a3]);
    let Frame::CallReqContinue(f) = &mut frames[1] else {
        panic!()
    };
    f.checksum.value = f.checksum.value.wrapping_add(1);
    assert!(matches!(
        reassemble(&frames).unwrap_err(),
        ReassemblyError::ChecksumMismatch { frame: 2, .. }
    ));
}

#[test]
pub(crate) fn reassembly_response_chain_starts_from_zero() {
    // [CSUM-7] a response starts its own chain from 0
    let frames = [call_res(
        0,
        csum(ChecksumType::CRC32, crc32fast::hash(b"okbody")),
        &[b"", b"ok", b"body"],
    )];
    assert!(reassemble(&frames).is_ok());
}

#[test]
pub(crate) fn reassembly_too_many_frames() {
    // [FRAG-12] more frames than allowed fails, even in lenient mode
    let limits = {
        let mut c = ReassemblyLimits::default();
        c.set_max_frames(2);
        c
    };
    let frames = [
        call_req(0x01, ChecksumField::NONE, &[b"a"]),
        req_continue(0x01, ChecksumField::NONE, &[b"b"]),
        req_continue(0x00, ChecksumField::NONE, &[b"", b"", b""]),
    ];
    for r in [Reassembler::new(limits), Reassembler::lenient(limits)] {
        assert_eq!(
            reassemble_with(r, &frames).unwrap_err(),
            ReassemblyError::TooManyFrames { max: 2 }
        );
    }
    assert!(reassemble(&frames).is_ok());
}

#[test]
pub(crate) fn reassembly_too_many_bytes() {
    // [FRAG-11] more arg bytes than allowed fails (at the crossing frame), even in lenient mode
    let limits = |max| {
        let mut c = ReassemblyLimits::default();
        c.set_max_message_bytes(max);
        c
    };
    let frames = [call_req(
        0,
        ChecksumField::NONE,
        &[b"echo", b"hdr", b"body"],
    )];
    assert!(reassemble_with(Reassembler::new(limits(11)), &frames).is_ok());
    for r in [
        Reassembler::new(limits(10)),
        Reassembler::lenient(limits(10)),
    ] {
        assert_eq!(
            reassemble_with(r, &frames).unwrap_err(),
            ReassemblyError::MessageTooLarge { max: 10 }
        );
    }
}

#[test]
pub(crate) fn reassembly_frame_after_complete() {
    // [FRAG-13] a frame after the message's last frame is a typed error; state unchanged
    let frames = [
        call_req(0, ChecksumField::NONE, &[b"a", b"b", b"c"]),
        req_continue(0, ChecksumField::NONE, &[b"d"]),
    ];
    let mut r = Reassembler::new(ReassemblyLimits::default());
    let chunks = r.push(fragment(&frames[0])).unwrap();
    assert!(chunks.message_complete());
    assert!(r.is_complete());
    let before = (r.frames(), r.arg_count(), r.message_bytes(), r.violations());
    assert_eq!(
        r.push(fragment(&frames[1])).unwrap_err(),
        ReassemblyError::AlreadyComplete
    );
    assert_eq!(
        (r.frames(), r.arg_count(), r.message_bytes(), r.violations()),
        before
    );
    assert!(r.is_complete());
}

#[test]
pub(crate) fn reassembly_continue_before_first_and_second_first() {
    // [FRAG-2] [CALL-8] a message starts with exactly one call req / call res
    let mut r = Reassembler::new(ReassemblyLimits::default());
    let cont = req_continue(0, ChecksumField::NONE, &[b"x"]);
    assert_eq!(
        r.push(fragment(&cont)).unwrap_err(),
        ReassemblyError::NotStarted
    );
    let mut r = Reassembler::new(ReassemblyLimits::default());
    let first = call_req(0x01, ChecksumField::NONE, &[b"a"]);
    r.push(fragment(&first)).unwrap();
    assert_eq!(
        r.push(fragment(&first)).unwrap_err(),
        ReassemblyError::AlreadyStarted
    );
}

#[test]
pub(crate) fn reassembly_lenient_records_violations() {
    // [CSUM-16] [CALL-3] lenient mode (the decode tool) records instead of failing
    let frames = [call_req(
        0,
        csum(ChecksumType::CRC32, 0xdead_beef),
        &[b"echo", b"hdr"],
    )];
    let (args, r) = reassemble_with(Reassembler::lenient(ReassemblyLimits::default()), &frames)
        .expect("lenient");
    assert_eq!(args, [&b"echo"[..], b"hdr"]);
    assert!(r.is_complete());
    assert!(!r.checksum_ok());
    assert!(r.violations().contains(Violation::MissingArgs));
    assert_eq!(
        r.violations()
            .iter()
            .map(Violation::code)
            .collect::<Vec<_>>(),
        ["missing_args"]
    );

    // Several at once: bad flags, changed checksum type, extra args.
    let frames = [
        call_req(0x81, ChecksumField::NONE, &[b"a"]),
        req_continue(0x02, csum(ChecksumType::CRC32, 0), &[b"", b"b", b"c", b"d"]),
    ];
    let (args, r) = reassemble_with(Reassembler::lenient(ReassemblyLimits::default()), &frames)
        .expect("lenient");
    assert_eq!(args, [&b"a"[..], b"b", b"c", b"d"]);
    assert!(!r.checksum_ok());
    let codes: Vec<_> = r.violations().iter().map(Violation::code).collect();
    assert_eq!(codes, ["extra_args", "checksum_type_changed", "bad_flags"]);
}

#[test]
pub(crate) fn reassembly_bad_flags() {
    // [CALL-3] 0x02 on a continue frame, or any bit of 0xfc, is `bad_flags`
    // [CALL-5] [DEV-8] 0x02 on a first frame is accepted; [CALL-2] 0x01 = more fragments
    let streaming_first = [call_req(0x02, ChecksumField::NONE, &[b"a", b"b", b"c"])];
    assert!(reassemble(&streaming_first).is_ok());

    let frames = [
        call_req(0x01, ChecksumField::NONE, &[b"a"]),
        req_continue(0x02, ChecksumField::NONE, &[b"", b"b", b"c"]),
    ];
    assert_eq!(
        reassemble(&frames).unwrap_err(),
        ReassemblyError::BadFlags { flags: 0x02 }
    );
    for flags in [0x80, 0x04, 0x81] {
        let frames = [call_req(flags, ChecksumField::NONE, &[b"a", b"b", b"c"])];
        assert_eq!(
            reassemble(&frames).unwrap_err(),
            ReassemblyError::BadFlags { flags },
            "flags {flags:#04x}"
        );
    }
}

#[test]
pub(crate) fn reassembly_bad_transport_headers() {
    // [HDR-4] validation reports `bad_header`; [HDR-6] strict rejects, lenient accepts;
    // [DEV-13] tchan is strict by default where tchannel-go checks nothing
    let Frame::CallReq(mut f) = call_req(0, ChecksumField::NONE, &[b"a", b"b", b"c"]) else {
        panic!()
    };
    f.headers = TransportHeaders::from_pairs([("as", "raw"), ("as", "json")]).unwrap();
    let frames = [Frame::CallReq(f)];
    assert!(matches!(
        reassemble(&frames).unwrap_err(),
        ReassemblyError::BadHeader(HeaderViolation::DuplicateKey(_))
    ));
    let lenient_headers = {
        let mut c = ReassemblyLimits::default();
        c.set_strict_headers(false);
        c
    };
    let (args, r) = reassemble_with(Reassembler::new(lenient_headers), &frames).unwrap();
    assert_eq!(args.len(), 3);
    assert!(r.violations().contains(Violation::BadHeader));
}

#[test]
pub(crate) fn reassembly_chunk_indexes() {
    // [FRAG-2] a continue frame's first chunk continues the open arg; others start the next
    // [FRAG-3] an arg is complete when a chunk follows it or the frame has 0x01 clear
    // [FRAG-14] arg1 split across frames, one-byte frames are accepted
    let frames = [
        call_req(0x01, ChecksumField::NONE, &[b"ec"]),
        req_continue(0x01, ChecksumField::NONE, &[b"ho", b"h"]),
        req_continue(0x01, ChecksumField::NONE, &[b"dr"]),
        req_continue(0x00, ChecksumField::NONE, &[b"", b"body"]),
    ];
    let mut r = Reassembler::new(ReassemblyLimits::default());
    let mut seen = Vec::new();
    for f in &frames {
        let chunks = r.push(fragment(f)).unwrap();
        for c in chunks.iter() {
            seen.push((c.index, c.data.to_vec(), c.ends_arg));
        }
    }
    assert_eq!(
        seen,
        [
            (0, b"ec".to_vec(), false),
            (0, b"ho".to_vec(), true),
            (1, b"h".to_vec(), false),
            (1, b"dr".to_vec(), false),
            (1, b"".to_vec(), true),
            (2, b"body".to_vec(), true),
        ]
    );
    assert_eq!(r.arg_count(), 3);
    assert_eq!(r.frames(), 4);
    assert_eq!(r.message_bytes(), 11);
}

#[test]
pub(crate) fn continue_frame_constructors_encode() {
    // [CALL-1] a CallContinue built by hand encodes to the continue layout
    let frame = Frame::CallResContinue(CallContinue {
        id: 0x0102_0304,
        flags: Flags(Flags::MORE_FRAGMENTS),
        checksum: csum(ChecksumType::CRC32C, 0xcafe_babe),
        args: ArgChunks::from_chunks([&b"zz"[..]]),
    });
    let expected = cat(&[
        &[0x00, 0x1a],             // size = 26
        &[0x14],                   // type = call res continue
        &[0x00],                   // reserved
        &[0x01, 0x02, 0x03, 0x04], // id
        &[0; 8],                   // reserved
        &[0x01],                   // flags = more fragments
        &[0x03],                   // csumtype = crc32c
        &[0xca, 0xfe, 0xba, 0xbe], // csum
        &[0x00, 0x02],             // chunk length = 2
        b"zz",                     // chunk
    ]);
    assert_eq!(encode(&frame), expected);
}
