//! `FrameCodec` fed a stream all at once vs. chunk by chunk.
//!
//! Input layout (read from the front, so seeds are easy to write):
//! `k:1  split sizes:k  max:2  stream...`. Chunk sizes cycle through the
//! split sizes (0 feeds an empty chunk); `max == 0` means `FrameCodec::new()`,
//! anything else `FrameCodec::with_max_frame_size(max)`.
//!
//! Oracle: both feeds give the same frames, the same error (or none) after
//! the same frames, and the same leftover bytes; every frame is within the
//! max, equals `Frame::decode` of its bytes, and re-encodes (through the
//! codec's `Encoder`) to those bytes with reserved header bytes zeroed.
#![no_main]

use arbitrary::Unstructured;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tchan::codec::FrameCodec;
use tchan::frame::{Frame, HEADER_LEN, MAX_FRAME_SIZE};
use tchan_fuzz::{decode_chunks, zero_reserved};
use tokio_util::codec::Encoder;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let k = usize::from(u.arbitrary::<u8>().unwrap_or(0) % 64);
    let splits = u.bytes(k.min(u.len())).unwrap_or(&[]).to_vec();
    let max = u16::from_be_bytes(u.arbitrary::<[u8; 2]>().unwrap_or_default());
    let stream = u.take_rest();

    let make = || match max {
        0 => FrameCodec::new(),
        n => FrameCodec::with_max_frame_size(usize::from(n)),
    };
    let limit = make().max_frame_size();
    let expected = match max {
        0 => MAX_FRAME_SIZE,
        n => usize::from(n).clamp(HEADER_LEN, MAX_FRAME_SIZE),
    };
    assert_eq!(limit, expected);

    let whole = decode_chunks(&mut make(), [stream]);

    // Cut the stream at the split sizes, cycling; the tail goes in one piece
    // once the sizes are used up 64 times.
    let mut chunks = Vec::new();
    let mut rest = stream;
    for &s in splits.iter().cycle().take(splits.len() * 64) {
        let n = usize::from(s).min(rest.len());
        let (a, b) = rest.split_at(n);
        chunks.push(a);
        rest = b;
        if rest.is_empty() {
            break;
        }
    }
    chunks.push(rest);
    let chunked = decode_chunks(&mut make(), chunks.iter().copied());

    assert_eq!(whole.frames, chunked.frames, "frames differ between feeds");
    // The same error, except that a size error seen with only the 2 size
    // bytes buffered cannot name the frame type (see README, known issues).
    match (&whole.error, &chunked.error) {
        (None, None) => {}
        (Some(a), Some(b)) => {
            assert_eq!(
                (a.kind(), a.field(), a.offset()),
                (b.kind(), b.field(), b.offset())
            );
            let types = (a.frame_type(), b.frame_type());
            assert!(
                types.0 == types.1 || types.0.is_none() || types.1.is_none(),
                "{a} vs {b}"
            );
        }
        (a, b) => panic!("errors differ between feeds: {a:?} vs {b:?}"),
    }
    assert_eq!(
        whole.rest, chunked.rest,
        "leftover bytes differ between feeds"
    );

    let mut pos = 0;
    for f in &whole.frames {
        let len = f.encoded_len();
        assert!(len <= limit, "frame of {len} bytes passed a max of {limit}");
        let raw = &stream[pos..pos + len];
        assert_eq!(Frame::decode(Bytes::copy_from_slice(raw)).as_ref(), Ok(f));
        let mut out = BytesMut::new();
        make()
            .encode(f, &mut out)
            .expect("a decoded frame must re-encode");
        assert_eq!(&out[..], &zero_reserved(raw)[..]);
        pos += len;
    }
    if whole.error.is_none() {
        assert_eq!(
            &whole.rest[..],
            &stream[pos..],
            "leftover is not the undecoded tail"
        );
    }
});
