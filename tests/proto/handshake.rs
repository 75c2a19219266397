//! Handshake.

use super::*;

// [CONN-1] [CONN-2] [CONN-3] [INIT-2] [INIT-3] [ID-3]
#[test]
pub(crate) fn handshake_ok_and_peer_info() {
    let mut p = Pair::new(client_config(), server_config());
    // [CONN-1] no call and no ping before the handshake.
    let now = p.now;
    let e = p
        .client
        .conn
        .send_request(now, head(now + ms(1000)), ARGS)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::DECLINED);
    assert!(p.client.conn.ping().is_err());
    // [CONN-2] the acceptor says nothing before it has an init req.
    assert!(p.server.conn.poll_transmit().is_none());
    assert!(!p.client.conn.is_ready() && !p.server.conn.is_ready());

    p.drive();
    assert_eq!(fsummary(&p.client.sent), ["InitReq(1)"]);
    assert_eq!(fsummary(&p.server.sent), ["InitRes(1)"]);
    let (Frame::InitReq(req), Frame::InitRes(res)) = (&p.client.sent[0], &p.server.sent[0]) else {
        unreachable!()
    };
    assert_eq!((req.version, res.version), (2, 2));
    let keys = |i: &Init| -> Vec<Vec<u8>> { i.headers.iter().map(|(k, _)| k.to_vec()).collect() };
    let want: Vec<Vec<u8>> = [
        HOST_PORT,
        PROCESS_NAME,
        TCHANNEL_LANGUAGE,
        TCHANNEL_LANGUAGE_VERSION,
        TCHANNEL_VERSION,
    ]
    .iter()
    .map(|k| k.as_bytes().to_vec())
    .collect();
    assert_eq!(keys(req), want);
    assert_eq!(keys(res), want);

    let ce = p.events(Client);
    let se = p.events(Server);
    let [Event::Ready(server_info)] = &ce[..] else {
        panic!("{ce:?}")
    };
    let [Event::Ready(client_info)] = &se[..] else {
        panic!("{se:?}")
    };
    assert_eq!(server_info.host_port, "10.0.0.1:4040");
    assert_eq!(server_info.process_name, "test-server");
    assert_eq!(client_info.host_port, "0.0.0.0:0");
    assert_eq!(client_info.process_name, "test-client");
    assert_eq!(p.client.conn.peer(), Some(server_info));
    assert_eq!(p.server.conn.peer(), Some(client_info));
    assert_eq!(
        server_info.headers.get(TCHANNEL_LANGUAGE.as_bytes()),
        Some(&b"rust"[..])
    );
    assert!(p.client.conn.accepts_new_calls() && p.server.conn.accepts_new_calls());
    p.assert_idle();
    assert_eq!(p.client.conn.poll_timeout(), None, "no timer once idle");

    // [ID-3] the initiator's init req took id 1, so its first call is 2; the
    // acceptor starts at 1. Pings share the counter.
    let c = p.call(Client, 1000, ARGS);
    let s = p.call(Server, 1000, ARGS);
    let ping = p.client.conn.ping().unwrap();
    assert_eq!((c, s, ping), (2, 1, 3));
    p.drive();
    p.respond(Server, c, b"x");
    p.respond(Client, s, b"y");
    p.drive();
    outcome(&p.events(Client), c).args();
    outcome(&p.events(Server), s).args();
    p.assert_idle();
}

// [CONN-5]
#[test]
pub(crate) fn handshake_timeout_closes_silently() {
    let mut p = Pair::new(client_config(), server_config());
    // The init req is lost: neither side ever completes the handshake.
    assert_eq!(fsummary(&p.capture(Client)), ["InitReq(1)"]);
    p.advance(ms(4999));
    assert!(!p.client.is_closed() && !p.server.is_closed());
    assert!(p.events(Client).is_empty() && p.events(Server).is_empty());
    p.advance(ms(1));
    assert_eq!(summary(&p.events(Client)), ["Closed(HandshakeTimeout)"]);
    assert_eq!(summary(&p.events(Server)), ["Closed(HandshakeTimeout)"]);
    // Closed without sending anything.
    assert!(p.server.sent.is_empty());
    assert_eq!(p.client.sent.len(), 1);
    p.assert_idle();
}

// [CONN-6] [TRACE-8]
#[test]
pub(crate) fn first_frame_not_init_gets_protocol_error_without_id() {
    for first in [
        Frame::PingReq(Ping::new(5)),
        call_req(5, 1000, 0, &ARGS),
        error_frame(5, ErrorCode::BUSY, "busy"),
    ] {
        let mut p = Pair::new(client_config(), server_config());
        p.capture(Client);
        p.inject(Server, first.clone());
        let out = p.capture(Server);
        assert_eq!(fsummary(&out), ["Error(0xffffffff, protocol)"], "{first:?}");
        assert_eq!(errors(&out)[0].tracing, Tracing::default());
        assert_eq!(summary(&p.events(Server)), ["Closed(ProtocolError)"]);
        // Nothing more happens on a closed connection.
        p.inject(Server, Frame::InitReq(init(1, 2, &full_init_headers())));
        assert!(p.capture(Server).is_empty());
        assert!(p.events(Server).is_empty());
    }
}

// [CONN-6] [INIT-4] [DEV-16]
#[test]
pub(crate) fn init_req_missing_required_header_gets_protocol_error_with_its_id() {
    for pairs in [
        vec![(HOST_PORT, "1.2.3.4:5")],
        vec![(PROCESS_NAME, "nameless")],
        vec![],
    ] {
        let mut p = Pair::new(client_config(), server_config());
        p.capture(Client);
        p.inject(Server, Frame::InitReq(init(42, 2, &pairs)));
        let out = p.capture(Server);
        assert_eq!(fsummary(&out), ["Error(0x2a, protocol)"], "{pairs:?}");
        assert_eq!(errors(&out)[0].tracing, Tracing::default());
        assert_eq!(summary(&p.events(Server)), ["Closed(ProtocolError)"]);
        assert!(p.server.conn.peer().is_none());
    }
}

// [CONN-4] [CONN-6] [INIT-5]
#[test]
pub(crate) fn acceptor_version_rules() {
    // Below 2 fails the handshake.
    let mut p = Pair::new(client_config(), server_config());
    p.capture(Client);
    p.inject(Server, Frame::InitReq(init(7, 1, &full_init_headers())));
    assert_eq!(fsummary(&p.capture(Server)), ["Error(0x7, protocol)"]);
    assert_eq!(summary(&p.events(Server)), ["Closed(ProtocolError)"]);

    // Above 2 is accepted and answered with 2; unknown headers are ignored.
    let mut p = Pair::new(client_config(), server_config());
    p.capture(Client);
    let mut pairs = full_init_headers();
    pairs.push(("x-unknown", "whatever"));
    p.inject(Server, Frame::InitReq(init(7, 3, &pairs)));
    let out = p.capture(Server);
    let [Frame::InitRes(res)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!((res.id, res.version), (7, 2));
    let ev = p.events(Server);
    let [Event::Ready(info)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(info.host_port, "10.9.8.7:1234");
    assert_eq!(info.process_name, "raw-peer");
}

// [CONN-3] [CONN-4] [CONN-6]
#[test]
pub(crate) fn initiator_rejects_bad_init_res() {
    let bad = [
        init(1, 3, &full_init_headers()),            // wrong version
        init(1, 1, &full_init_headers()),            // wrong version
        init(9, 2, &full_init_headers()),            // wrong id
        init(1, 2, &[(HOST_PORT, "10.0.0.1:4040")]), // no process_name
    ];
    for res in bad {
        let mut p = Pair::new(client_config(), server_config());
        p.capture(Client);
        p.inject(Client, Frame::InitRes(res.clone()));
        let out = p.capture(Client);
        assert_eq!(out.len(), 1, "{res:?}");
        assert_eq!(errors(&out)[0].code, ErrorCode::PROTOCOL);
        assert_eq!(summary(&p.events(Client)), ["Closed(ProtocolError)"]);
        assert!(p.client.conn.peer().is_none());
        let now = p.now;
        let e = p
            .client
            .conn
            .send_request(now, head(now + ms(100)), ARGS)
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::NETWORK);
    }
    // Any frame other than init res (or an error) fails it too, with no id.
    let mut p = Pair::new(client_config(), server_config());
    p.capture(Client);
    p.inject(Client, Frame::PingReq(Ping::new(1)));
    assert_eq!(
        fsummary(&p.capture(Client)),
        ["Error(0xffffffff, protocol)"]
    );
    assert_eq!(summary(&p.events(Client)), ["Closed(ProtocolError)"]);
}

// [CONN-7]
#[test]
pub(crate) fn error_frame_during_handshake_fails_it_quietly() {
    let mut p = Pair::new(client_config(), server_config());
    p.capture(Client);
    p.inject(
        Client,
        error_frame(1, ErrorCode::BUSY, "too many connections"),
    );
    let ev = p.events(Client);
    let [Event::Closed(CloseReason::HandshakeFailed(e))] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(e.code(), ErrorCode::BUSY);
    assert_eq!(e.message(), "too many connections");
    assert!(!e.is_local());
    // Closed without answering.
    assert!(p.capture(Client).is_empty());
}

// [CONN-8] [CONN-14]
#[test]
pub(crate) fn init_after_handshake_is_a_protocol_error() {
    let mut p = Pair::up();
    let id = p.call(Client, 1000, ARGS);
    p.drive();
    p.events(Server);
    p.inject(Server, Frame::InitReq(init(9, 2, &full_init_headers())));
    assert_eq!(fsummary(&p.capture(Server)), ["Error(0x9, protocol)"]);
    assert_eq!(
        summary(&p.events(Server)),
        [
            format!("RequestAborted({id}, protocol local)"),
            "Closed(ProtocolError)".into()
        ]
    );
    // The same check on the initiator, with the peer hearing the 0xff.
    let mut p = Pair::up();
    p.inject(Client, Frame::InitRes(init(1, 2, &full_init_headers())));
    p.drive();
    assert_eq!(summary(&p.events(Client)), ["Closed(ProtocolError)"]);
    assert_eq!(summary(&p.events(Server)), ["Closed(PeerProtocolError)"]);
    p.assert_idle();
}
