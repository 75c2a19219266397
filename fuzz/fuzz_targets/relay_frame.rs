//! Any bytes -> the relay's first-frame reader and frame rewriting
//! (`tchan::relay`). Input: `id:4 ttl:4` for the rewrite, then one frame.
//! Oracle: no panic; `RelayHead::parse` accepts only a call req that
//! `CallReq::decode` accepts, with the same id, ttl, service, headers and
//! first arg chunk, arg1 marked open exactly when it ends a frame that has
//! more to follow ([RELAY-2]), and a non-empty service; a
//! forwarded frame is the input with only its id (and, for a call req, its
//! ttl) replaced and its reserved header bytes zeroed ([RELAY-3]), and the
//! payload after the rewritten bytes is shared with the input, not copied.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tchan::frame::{CallReq, FrameHeader, FrameType, HEADER_LEN, MAX_FRAME_SIZE};
use tchan::relay::{Forward, RelayHead};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let id = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    let ttl = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    let frame = Bytes::copy_from_slice(&data[8..]);
    let Ok(Some(h)) = FrameHeader::parse(&frame, MAX_FRAME_SIZE) else {
        return;
    };
    let size = usize::from(h.size);
    if frame.len() < size {
        return;
    }
    let payload = frame.slice(HEADER_LEN..size);

    match RelayHead::parse(h, &payload) {
        Ok(head) => {
            assert_eq!(h.frame_type, FrameType::CALL_REQ);
            let req = CallReq::decode(h, &payload).expect("parse accepted what decode refuses");
            assert_eq!((head.id, head.ttl), (req.id, req.ttl));
            assert_eq!(head.service, req.service);
            assert!(!head.service.is_empty());
            assert_eq!(head.headers, req.headers);
            let mut args = req.args.iter();
            assert_eq!(args.next(), Some(head.arg1.clone()));
            // Arg1 is open exactly when it ends the frame and more follow.
            let open = args.next().is_none() && req.flags.more_fragments();
            assert_eq!(head.arg1_open, open);
            let route = head.route();
            assert!(route == &head.service[..] || Some(route) == head.headers.get(b"rd"));
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
        }
    }

    let expect = |ttl: Option<u32>| {
        let mut b = BytesMut::from(&frame[..size]);
        b[3] = 0;
        b[4..8].copy_from_slice(&id.to_be_bytes());
        b[8..16].fill(0);
        if let Some(t) = ttl {
            b[17..21].copy_from_slice(&t.to_be_bytes());
        }
        b.freeze()
    };
    let check = |f: &Forward, want: Bytes| {
        let mut got = BytesMut::from(f.head());
        got.extend_from_slice(f.rest());
        assert_eq!(got.len(), f.len());
        assert_eq!(got.freeze(), want);
        let range = frame.as_ptr_range();
        assert!(f.rest().is_empty() || range.contains(&f.rest().as_ptr()));
    };
    check(&Forward::with_id(h, payload.clone(), id), expect(None));
    match Forward::call_req(h, payload.clone(), id, ttl) {
        Some(f) => {
            assert_eq!(h.frame_type, FrameType::CALL_REQ);
            check(&f, expect(Some(ttl)));
        }
        None => assert!(h.frame_type != FrameType::CALL_REQ || payload.len() < 5),
    }
});
