//! Any bytes -> `Frame::decode`. Oracle: no panic; a frame that decodes
//! re-encodes to the input with its reserved header bytes zeroed, has
//! `encoded_len() == input.len()`, decodes again to itself, agrees with the
//! header parser and with `FrameCodec` fed the same bytes.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tchan::codec::FrameCodec;
use tchan::frame::{Frame, FrameHeader, HEADER_LEN, MAX_FRAME_SIZE, Reassembler};
use tchan_fuzz::{call_fragment, zero_reserved};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let header = FrameHeader::parse(data, MAX_FRAME_SIZE);
    // A bad size is reported as soon as its two bytes are there.
    let size = (data.len() >= 2).then(|| usize::from(u16::from_be_bytes([data[0], data[1]])));
    match &header {
        Ok(None) => assert!(data.len() < HEADER_LEN && size.is_none_or(|s| s >= HEADER_LEN)),
        Ok(Some(h)) => {
            assert!(usize::from(h.size) >= HEADER_LEN);
            let mut out = Vec::new();
            h.encode(&mut out);
            assert_eq!(out, zero_reserved(&data[..HEADER_LEN]));
        }
        Err(_) => assert!(size.is_some_and(|s| s < HEADER_LEN)),
    }

    let Ok(frame) = Frame::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    let h = header
        .expect("decoded frame has a valid header")
        .expect("decoded frame has a header");
    assert_eq!(usize::from(h.size), data.len());
    assert_eq!(frame.frame_type(), h.frame_type);
    assert_eq!(frame.id(), h.id);
    assert_eq!(frame.encoded_len(), data.len());

    let mut out = BytesMut::new();
    frame
        .encode(&mut out)
        .expect("a decoded frame must re-encode");
    assert_eq!(
        &out[..],
        &zero_reserved(data)[..],
        "decode -> encode changed the frame"
    );
    assert_eq!(frame.to_bytes().unwrap(), out);
    assert_eq!(
        Frame::decode(out.freeze()).unwrap(),
        frame,
        "re-decode differs"
    );

    // The codec, fed exactly this frame, must agree with Frame::decode.
    let mut buf = BytesMut::from(data);
    let via_codec = FrameCodec::new()
        .decode(&mut buf)
        .expect("codec rejects a valid frame");
    assert_eq!(via_codec.as_ref(), Some(&frame));
    assert!(buf.is_empty());

    // A call frame must not panic the reassembler (lenient: only limits fail).
    if let Some(fragment) = call_fragment(&frame) {
        let mut r = Reassembler::lenient(Default::default());
        if let Ok(chunks) = r.push(fragment) {
            let n: usize = chunks.iter().map(|c| c.data.len()).sum();
            assert_eq!(n as u64, r.message_bytes());
            assert_eq!(chunks.message_complete(), !fragment.flags.more_fragments());
        }
    }
});
