//! The tokio-util `FrameCodec`.

use super::*;

#[test]
pub(crate) fn codec_decodes_a_stream_of_three_frames() {
    // [FRAME-1] nothing separates frames; [FRAME-13] no partial frame is consumed
    let ping = Frame::PingReq(Ping::new(1));
    let call = call_req(0, ChecksumField::NONE, &[b"echo", b"", b"hi"]);
    let error = Frame::Error(tchan::frame::ErrorFrame::new(
        7,
        ErrorCode::TIMEOUT,
        TRACING,
        "late",
    ));
    let mut stream = BytesMut::new();
    for f in [&ping, &call, &error] {
        FrameCodec::new().encode(f, &mut stream).unwrap();
    }
    let total = stream.len();
    let mut codec = FrameCodec::new();
    assert_eq!(codec.decode(&mut stream).unwrap(), Some(ping));
    assert_eq!(stream.len(), total - 16);
    assert_eq!(codec.decode(&mut stream).unwrap(), Some(call));
    assert_eq!(codec.decode(&mut stream).unwrap(), Some(error));
    assert_eq!(codec.decode(&mut stream).unwrap(), None);
    assert!(stream.is_empty());
    assert_eq!(codec.decode_eof(&mut stream).unwrap(), None);
}

#[test]
pub(crate) fn codec_partial_input_is_need_more_data() {
    // [FRAME-13] "need more data" while the frame is not complete; nothing consumed
    let frame = call_req(0, ChecksumField::NONE, &[b"echo", b"hdr", b"hello"]);
    let bytes = encode(&frame);
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            assert_eq!(buf.len(), i, "nothing consumed before the frame is whole");
        }
        assert_eq!(codec.decode(&mut buf).unwrap(), None, "after {i} bytes");
        buf.extend_from_slice(&[*b]);
    }
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(frame));
    assert!(buf.is_empty());
}

#[test]
pub(crate) fn codec_configured_max_rejects_a_larger_frame() {
    // [FRAME-15] typed error with kind, field and offset (brief: a frame over the codec's
    // configured maximum is rejected; see the FRAME-6 note in the report)
    let frame = call_req(0, ChecksumField::NONE, &[b"echo", b"", &[b'x'; 50]]);
    let bytes = encode(&frame);
    assert!(bytes.len() > 64);
    let mut codec = FrameCodec::with_max_frame_size(64);
    assert_eq!(codec.max_frame_size(), 64);
    // Rejected as soon as the header is in, before the body arrives.
    let mut buf = BytesMut::from(&bytes[..16]);
    let err = codec.decode(&mut buf).unwrap_err();
    let CodecError::Decode(e) = err else {
        panic!("not a decode error: {err:?}")
    };
    assert_eq!(
        e.kind(),
        DecodeErrorKind::SizeTooLarge {
            size: bytes.len() as u16,
            max: 64
        }
    );
    assert_eq!(e.field(), "size");
    assert_eq!(e.offset(), 0);
    // Encoding over the max is refused too.
    let err = codec.encode(&frame, &mut BytesMut::new()).unwrap_err();
    assert!(matches!(
        err,
        CodecError::Encode(EncodeError::FrameTooLarge { max: 64, .. })
    ));
}

#[test]
pub(crate) fn codec_default_accepts_16_to_65535() {
    // [FRAME-6] frames of size 16..=65535 are accepted by the default codec
    // [FRAME-2] size = 16 is an empty payload
    let big = Frame::Unknown(Opaque {
        frame_type: FrameType(0x77),
        id: 1,
        payload: Bytes::from(vec![0xab; 65535 - 16]),
    });
    let mut buf = BytesMut::new();
    let mut codec = FrameCodec::new();
    codec.encode(&big, &mut buf).unwrap();
    codec
        .encode(Frame::PingRes(Ping::new(2)), &mut buf)
        .unwrap();
    assert_eq!(buf.len(), 65535 + 16);
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(big));
    assert_eq!(
        codec.decode(&mut buf).unwrap(),
        Some(Frame::PingRes(Ping::new(2)))
    );
}

#[test]
pub(crate) fn codec_size_under_16_stops_the_stream() {
    // [FRAME-4] size < 16 is an error (with a whole header buffered)
    let mut buf = BytesMut::from(&[0x00, 0x0f, 0xd0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0][..]);
    let err = FrameCodec::new().decode(&mut buf).unwrap_err();
    let CodecError::Decode(e) = err else {
        panic!("{err:?}")
    };
    assert_eq!(e.kind(), DecodeErrorKind::SizeTooSmall { size: 15 });
    assert_eq!(e.field(), "size");
    assert_eq!(e.offset(), 0);
}

#[test]
pub(crate) fn codec_size_under_16_is_reported_after_two_bytes() {
    // [FRAME-4] reported as soon as the two size bytes are available
    // [FRAME-13] "need more data" only while fewer than 2 bytes, or fewer than size >= 16
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::from(&[0x00][..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(&[0x0f]);
    let err = codec.decode(&mut buf).unwrap_err();
    let CodecError::Decode(e) = err else {
        panic!("{err:?}")
    };
    assert_eq!(e.kind(), DecodeErrorKind::SizeTooSmall { size: 15 });
}

#[test]
pub(crate) fn codec_decodes_without_copying() {
    // [FRAME-14] the body is decoded from exactly the frame's bytes; fields are slices of them
    let arg3 = pattern(60 * 1024, 7);
    let frame = call_req(0, ChecksumField::NONE, &[b"echo", b"", &arg3]);
    let bytes = encode(&frame);
    let mut buf = BytesMut::with_capacity(bytes.len() + 100);
    buf.extend_from_slice(&bytes);
    buf.extend_from_slice(&encode(&Frame::PingReq(Ping::new(3))));
    let start = buf.as_ptr() as usize;
    let input = start..start + bytes.len();

    let mut codec = FrameCodec::new();
    let decoded = codec.decode(&mut buf).unwrap().unwrap();
    let Frame::CallReq(f) = &decoded else {
        panic!()
    };
    let got = f.args.iter().nth(2).unwrap();
    assert_eq!(&got[..], &arg3[..]);
    let p = got.as_ptr() as usize;
    assert!(
        input.contains(&p) && p + got.len() <= input.end,
        "arg3 at {p:#x}..{:#x} is outside the input {input:x?}",
        p + got.len()
    );
    // Exactly where the arg3 bytes were in the input buffer.
    assert_eq!(p - start, bytes.len() - arg3.len());
    let svc = f.service.as_ptr() as usize;
    assert!(input.contains(&svc));
    // The rest of the buffer is still there, undisturbed.
    assert_eq!(
        codec.decode(&mut buf).unwrap(),
        Some(Frame::PingReq(Ping::new(3)))
    );
}
