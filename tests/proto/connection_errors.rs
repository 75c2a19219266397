//! Connection-level errors.

use super::*;

// [CONN-16] [MSG-8]
#[test]
pub(crate) fn peer_draining_error_stops_new_calls_only() {
    let mut p = Pair::up();
    let id = p.call(Client, 1000, ARGS);
    p.drive();
    p.events(Server);
    p.inject(
        Client,
        error_frame(NO_MESSAGE_ID, ErrorCode::DECLINED, "draining"),
    );
    let ev = p.events(Client);
    let [Event::PeerDraining(e)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(e.code(), ErrorCode::DECLINED);
    assert!(!e.is_local());
    assert!(!p.client.conn.accepts_new_calls());
    assert!(p.client.conn.is_ready());
    let now = p.now;
    let e = p
        .client
        .conn
        .send_request(now, head(now + ms(100)), ARGS)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::DECLINED);
    assert!(
        p.client
            .conn
            .start_request(now, head(now + ms(100)))
            .is_err()
    );
    assert!(p.capture(Client).is_empty());
    // The call in flight still completes; pings still work.
    let ping = p.client.conn.ping().unwrap();
    p.respond(Server, id, b"still answered");
    p.drive();
    let ce = p.events(Client);
    assert_eq!(&outcome(&ce, id).args()[2][..], b"still answered");
    assert!(summary(&ce).contains(&format!("Pong({ping})")));
    assert!(!p.client.is_closed());
    p.assert_idle();
}

// [CONN-14] [CONN-21] [ERR-5]
#[test]
pub(crate) fn peer_protocol_error_closes_and_fails_every_call_once() {
    let mut p = Pair::up();
    let ids: Vec<u32> = (0..3).map(|_| p.call(Client, 5000, ARGS)).collect();
    let s = p.call(Server, 5000, ARGS);
    p.drive();
    p.events(Server);
    p.events(Client);
    let ping = p.client.conn.ping().unwrap();
    p.capture(Client);
    p.inject(
        Client,
        error_frame(NO_MESSAGE_ID, ErrorCode::PROTOCOL, "you broke it"),
    );
    let ev = p.events(Client);
    let all = outcomes(&ev);
    assert_eq!(all.len(), 3);
    for id in &ids {
        let e = outcome(&ev, *id).error().clone();
        assert_eq!(e.code(), ErrorCode::PROTOCOL, "[CONN-22]");
        assert!(e.is_local());
    }
    assert_eq!(
        summary(&ev)[3..],
        [
            format!("RequestAborted({s}, protocol local)"),
            "Closed(PeerProtocolError)".into()
        ]
    );
    let Some(Event::Closed(CloseReason::PeerProtocolError(m))) = ev.last() else {
        unreachable!()
    };
    assert_eq!(m, "you broke it");
    // [CONN-21] no further frames, and nothing more happens.
    assert!(p.capture(Client).is_empty());
    p.inject(Client, call_res(ids[0], 0, &ARGS));
    p.inject(Client, Frame::PingRes(Ping::new(ping)));
    assert!(p.events(Client).is_empty());
    let now = p.now;
    assert_eq!(
        p.client
            .conn
            .send_request(now, head(now + ms(100)), ARGS)
            .unwrap_err()
            .code(),
        ErrorCode::NETWORK
    );
    assert!(p.client.conn.ping().is_err());
    assert!(
        p.client
            .conn
            .send_response(s, ResponseCode::OK, th(), ARGS)
            .is_err()
    );
    assert!(p.capture(Client).is_empty());
    assert_eq!(p.client.conn.poll_timeout(), None);
}

// [CONN-14]
#[test]
pub(crate) fn protocol_error_for_a_call_fails_it_and_closes() {
    let mut p = Pair::up();
    let a = p.call(Client, 5000, ARGS);
    let b = p.call(Client, 5000, ARGS);
    p.drive();
    p.inject(Client, error_frame(a, ErrorCode::PROTOCOL, "bad call"));
    let ev = p.events(Client);
    let ea = outcome(&ev, a).error().clone();
    assert_eq!(
        ea.code(),
        ErrorCode::PROTOCOL,
        "the call gets the error itself"
    );
    assert!(!ea.is_local());
    assert_eq!(outcome(&ev, b).error().code(), ErrorCode::PROTOCOL);
    assert_eq!(summary(&ev).last().unwrap(), "Closed(PeerProtocolError)");
}

// [CONN-9]
#[test]
pub(crate) fn undecodable_bytes_get_protocol_error_and_close() {
    let mut p = Pair::up();
    let id = p.call(Server, 1000, ARGS);
    p.drive();
    p.events(Client);
    // A header whose size (5) is below 16.
    let mut raw = vec![0x00, 0x05, 0x03, 0x00, 0, 0, 0, 9];
    raw.extend_from_slice(&[0; 8]);
    p.inject_bytes(Client, &raw);
    assert_eq!(
        fsummary(&p.capture(Client)),
        ["Error(0xffffffff, protocol)"]
    );
    assert_eq!(
        summary(&p.events(Client)),
        [
            format!("RequestAborted({id}, protocol local)"),
            "Closed(ProtocolError)".into()
        ]
    );
}

// [FRAG-9] [ERR-5] [ERR-7] [TRACE-5]
#[test]
pub(crate) fn request_with_two_args_is_a_protocol_error() {
    let mut p = Pair::up();
    p.inject(Server, call_req(11, 1000, 0, &[b"m", b"h"]));
    let out = p.capture(Server);
    assert_eq!(fsummary(&out), ["Error(0xb, protocol)"]);
    assert_eq!(errors(&out)[0].tracing, TRACING);
    assert_eq!(summary(&p.events(Server)), ["Closed(ProtocolError)"]);
    p.deliver(Client, out);
    assert_eq!(summary(&p.events(Client)), ["Closed(PeerProtocolError)"]);
    p.assert_idle();

    // The same when the message ends in a continue frame: the handler that
    // already started is told, once.
    let mut p = Pair::up();
    p.inject(Server, call_req(12, 1000, MORE, &[b"m"]));
    p.inject(Server, req_continue(12, 0, &[b"", b"h"]));
    assert_eq!(fsummary(&p.capture(Server)), ["Error(0xc, protocol)"]);
    assert_eq!(
        summary(&p.events(Server)),
        [
            "Request(12)",
            "RequestAborted(12, protocol local)",
            "Closed(ProtocolError)"
        ]
    );
}

// [FRAG-9]
#[test]
pub(crate) fn request_with_a_fourth_arg_is_a_protocol_error() {
    let mut p = Pair::up();
    p.inject(
        Server,
        call_req(13, 1000, 0, &[b"m", b"h", b"body", b"extra"]),
    );
    assert_eq!(fsummary(&p.capture(Server)), ["Error(0xd, protocol)"]);
    assert_eq!(summary(&p.events(Server)), ["Closed(ProtocolError)"]);
    assert!(p.server.is_closed());

    // A fourth arg on a response: that call fails with a protocol error, the
    // others with network, and the connection closes.
    let mut p = Pair::up();
    let a = p.call(Client, 5000, ARGS);
    let b = p.call(Client, 5000, ARGS);
    p.drive();
    p.inject(Client, call_res(a, 0, &[b"", b"", b"x", b"y"]));
    let out = p.capture(Client);
    assert_eq!(fsummary(&out), [format!("Error({a:#x}, protocol)")]);
    let ev = p.events(Client);
    assert_eq!(outcome(&ev, a).error().code(), ErrorCode::PROTOCOL);
    assert_eq!(outcome(&ev, b).error().code(), ErrorCode::PROTOCOL);
    assert_eq!(summary(&ev).last().unwrap(), "Closed(ProtocolError)");
}

// [CONN-12] [ID-5]
#[test]
pub(crate) fn duplicate_in_flight_request_id_is_a_protocol_error() {
    let mut p = Pair::up();
    p.inject(Server, call_req(7, 1000, 0, &ARGS));
    p.respond(Server, 7, b"");
    // A finished id may be reused.
    p.inject(Server, call_req(7, 1000, 0, &ARGS));
    // 0xffffffff is accepted as an ordinary call id.
    p.inject(Server, call_req(NO_MESSAGE_ID, 1000, 0, &ARGS));
    assert_eq!(
        summary(&p.events(Server)),
        ["Request(7)", "Request(7)", "Request(4294967295)"]
    );
    assert_eq!(p.server.conn.calls_in_flight(), (0, 2));
    p.capture(Server);
    // A second call req 7 while 7 is in flight.
    p.inject(Server, call_req(7, 1000, 0, &ARGS));
    let out = p.capture(Server);
    assert_eq!(fsummary(&out), ["Error(0x7, protocol)"]);
    assert_eq!(
        summary(&p.events(Server)),
        [
            "RequestAborted(7, protocol local)",
            "RequestAborted(4294967295, protocol local)",
            "Closed(ProtocolError)"
        ]
    );
}

/// A violation tchan finds in what the peer sent.
#[derive(Debug, Clone, Copy)]
enum Violation {
    /// Bytes that do not decode as a frame (a size under 16).
    Undecodable,
    /// A second call res for an id whose response is still arriving.
    SecondCallRes,
    /// A continue frame for an id of ours before its call res.
    ContinueFirst,
    /// An init req after the handshake.
    InitAgain,
}

// [CONN-22] Each violation, on either side of the connection (whoever opened
// it): our calls fail with the protocol error and the reason, the peer's
// calls are aborted the same way, and the connection closes having sent
// 0xff. A transport that ends instead stays a network error.
#[test]
pub(crate) fn violations_by_the_peer_fail_every_call_with_the_protocol_error() {
    use Violation::*;
    for who in [Client, Server] {
        let other = match who {
            Client => Server,
            Server => Client,
        };
        for v in [Undecodable, SecondCallRes, ContinueFirst, InitAgain] {
            let mut p = Pair::up();
            let ours = p.call(who, 5000, ARGS);
            let theirs = p.call(other, 5000, ARGS);
            p.drive();
            p.events(who);
            p.events(other);
            p.capture(who);
            match v {
                Undecodable => {
                    p.inject_bytes(who, &[0, 5, 3, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])
                }
                SecondCallRes => {
                    p.inject(who, call_res(ours, 0x01, &[b"", b"", b"part"]));
                    p.inject(who, call_res(ours, 0, &ARGS));
                }
                ContinueFirst => p.inject(who, res_continue(ours, 0, &[b"more"])),
                InitAgain => p.inject(who, Frame::InitReq(init(77, 2, &full_init_headers()))),
            }
            let ev = p.events(who);
            let e = outcome(&ev, ours).error().clone();
            assert_eq!(
                (e.code(), e.is_local()),
                (ErrorCode::PROTOCOL, true),
                "{who:?} {v:?}: {e}"
            );
            assert!(!e.message().is_empty(), "{who:?} {v:?}: no reason");
            let s = summary(&ev);
            assert!(
                s.contains(&format!("RequestAborted({theirs}, protocol local)")),
                "{who:?} {v:?}: {s:?}"
            );
            assert!(
                matches!(
                    ev.last(),
                    Some(Event::Closed(CloseReason::ProtocolError(_)))
                ),
                "{who:?} {v:?}: {s:?}"
            );
            let sent = p.capture(who);
            assert!(
                errors(&sent).iter().any(|f| f.code == ErrorCode::PROTOCOL),
                "{who:?} {v:?}: no 0xff sent: {:?}",
                fsummary(&sent)
            );
        }
        // The peer went away instead: a network error.
        let mut p = Pair::up();
        let ours = p.call(who, 5000, ARGS);
        p.drive();
        p.events(who);
        p.side(who)
            .conn
            .transport_closed("peer closed the connection");
        p.side(who).collect();
        let ev = p.events(who);
        assert_eq!(outcome(&ev, ours).error().code(), ErrorCode::NETWORK);
    }
}

// [FRAME-5] Error and cancel frames fit the sender's max frame size, however
// long their message: it is cut (on a character boundary).
#[test]
pub(crate) fn error_and_cancel_frames_fit_a_small_max_frame_size() {
    let mut config = client_config();
    config.set_max_frame_size(128).unwrap();
    config.set_send_cancel(true);
    let mut p = Pair::connected(config, server_config());
    let id = p.call(Client, 5000, ARGS);
    p.drive();
    p.events(Server);
    p.capture(Client);
    let now = p.now;
    let why = "é".repeat(200);
    p.client.conn.cancel_call(now, id, &why);
    let sent = p.capture(Client);
    let [Frame::Cancel(c)] = &sent[..] else {
        panic!("{:?}", fsummary(&sent))
    };
    assert!(sent[0].encoded_len() <= 128, "{}", sent[0].encoded_len());
    assert!(std::str::from_utf8(&c.why).is_ok_and(|w| w.starts_with('é') && w.len() < why.len()));
    // A decode error: the fatal error frame carries a long message.
    p.inject_bytes(Client, &[0, 5, 3, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    let sent = p.capture(Client);
    let e = errors(&sent);
    assert_eq!(e.len(), 1, "{:?}", fsummary(&sent));
    assert!(
        sent.iter().all(|f| f.encoded_len() <= 128),
        "{:?}",
        fsummary(&sent)
    );
    assert!(!e[0].message.is_empty());
}
