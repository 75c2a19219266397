//! More reassembly.

use super::*;

#[test]
pub(crate) fn reassembly_continue_frames_without_chunks() {
    // [FRAG-6] a continue frame with no chunk leaves the args unchanged; with 0x01 clear it
    // ends the message; [CSUM-6] it carries the previous frame's CRC
    let value = crc32fast::hash(b"abc");
    let frames = [
        call_req(0x01, csum(ChecksumType::CRC32, value), &[b"a", b"b", b"c"]),
        req_continue(0x01, csum(ChecksumType::CRC32, value), &[]),
        req_continue(0x00, csum(ChecksumType::CRC32, value), &[]),
    ];
    assert_eq!(reassemble(&frames).unwrap(), [&b"a"[..], b"b", b"c"]);
    // A first frame without chunks: the next frame's first chunk starts arg1.
    let frames = [
        call_req(0x01, ChecksumField::NONE, &[]),
        req_continue(0x00, ChecksumField::NONE, &[b"a", b"b", b"c"]),
    ];
    assert_eq!(reassemble(&frames).unwrap(), [&b"a"[..], b"b", b"c"]);
}

#[test]
pub(crate) fn reassembly_default_arg1_limit() {
    // [FRAG-10] the default arg1 limit is 16384
    assert_eq!(ReassemblyLimits::default().max_arg1_len(), 16384);
    assert!(
        ReassemblyLimits::default().strict_headers(),
        "HDR-6 default strict"
    );
}

#[test]
pub(crate) fn reassembly_default_limits_match_the_spec() {
    // [FRAG-11] default 256 MiB of arg bytes per message; [FRAG-12] default 65536 frames
    let l = ReassemblyLimits::default();
    assert_eq!(l.max_message_bytes(), 256 * 1024 * 1024);
    assert_eq!(l.max_frames(), 65536);
}

#[test]
pub(crate) fn writer_refuses_arg1_over_16_kib() {
    // [FRAG-20] a call req whose arg1 is over 16384 bytes is refused locally
    let arg1 = vec![b'm'; 16385];
    let mut dst = BytesMut::new();
    let r = MessageWriter::write_message(
        &mut dst,
        1,
        bare_req(),
        ChecksumType::NONE,
        65535,
        [&arg1, b"", b""],
    );
    assert!(
        matches!(
            r,
            Err(EncodeError::FieldTooLong {
                field: "arg1",
                len: 16385,
                max: 16384
            })
        ),
        "arg1 of 16385 bytes: {r:?}"
    );
    // 16384 is fine.
    let mut dst = BytesMut::new();
    MessageWriter::write_message(
        &mut dst,
        1,
        bare_req(),
        ChecksumType::NONE,
        65535,
        [&arg1[..16384], b"", b""],
    )
    .unwrap();
}
