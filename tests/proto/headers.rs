//! Required headers and explicit checksum none.

use super::*;

#[test]
pub(crate) fn a_strict_reader_refuses_a_call_req_without_as_or_cn() {
    // [HDR-11] [DEV-18] as and cn are required on a call req; refused with 0x06
    for pairs in [vec![("as", "raw")], vec![("cn", "c")], vec![]] {
        let mut p = Pair::up();
        let Frame::CallReq(mut f) = call_req(5, 1000, 0, &ARGS) else {
            unreachable!()
        };
        f.headers = TransportHeaders::from_pairs(pairs.clone()).unwrap();
        p.inject(Server, Frame::CallReq(f));
        let out = p.capture(Server);
        let errs = errors(&out);
        assert_eq!(errs.len(), 1, "{pairs:?}");
        assert_eq!(errs[0].code, ErrorCode::BAD_REQUEST);
        assert_eq!(errs[0].id, 5);
        assert!(p.events(Server).is_empty(), "no handler sees it");
        assert!(p.server.conn.is_ready(), "the connection stays up");
    }
    // A lenient reader lets it through.
    let mut lenient = server_config();
    lenient.reassembly_mut().set_strict_headers(false);
    let mut p = Pair::connected(client_config(), lenient);
    let Frame::CallReq(mut f) = call_req(6, 1000, 0, &ARGS) else {
        unreachable!()
    };
    f.headers = TransportHeaders::default();
    p.inject(Server, Frame::CallReq(f));
    assert_eq!(summary(&p.events(Server)).len(), 1);
}

#[test]
pub(crate) fn an_explicit_checksum_none_sends_none() {
    // [DEV-3] [CSUM-13] unlike node, a caller's explicit "none" is honoured
    let mut p = Pair::up();
    let now = p.now;
    p.client
        .conn
        .send_request(now, head_with(now + ms(1000), ChecksumType::NONE), ARGS)
        .unwrap();
    let out = p.capture(Client);
    let Frame::CallReq(f) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(f.checksum, ChecksumField::NONE);
}
