//! Drain and close.

use super::*;

// [CONN-19] [CONN-15] [CONN-16] [DEV-21]
#[test]
pub(crate) fn drain_declines_new_calls_and_closes_when_idle() {
    let mut p = Pair::up();
    let a = p.call(Client, 60_000, ARGS);
    let s = p.call(Server, 60_000, ARGS);
    p.drive();
    p.events(Server);
    p.events(Client);
    let now = p.now;
    p.server.conn.drain(now, now + Duration::from_secs(10));
    assert!(!p.server.conn.accepts_new_calls());
    let e = p
        .server
        .conn
        .send_request(now, head(now + ms(100)), ARGS)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::DECLINED);
    // (1) the peer is told with one error frame 0xffffffff declined.
    let out = p.capture(Server);
    assert_eq!(fsummary(&out), ["Error(0xffffffff, declined)"]);
    assert_eq!(errors(&out)[0].tracing, Tracing::default());
    p.deliver(Client, out);
    assert_eq!(summary(&p.events(Client)), ["PeerDraining(declined)"]);
    assert!(!p.client.conn.accepts_new_calls());
    // (3) a new inbound call is declined with its id and tracing.
    p.inject(Server, call_req(99, 1000, 0, &ARGS));
    let out = p.capture(Server);
    assert_eq!(fsummary(&out), ["Error(0x63, declined)"]);
    assert_eq!(errors(&out)[0].tracing, TRACING);
    assert!(p.events(Server).is_empty());
    // Pings are still answered while draining.
    let ping = p.client.conn.ping().unwrap();
    p.drive();
    assert_eq!(summary(&p.events(Client)), [format!("Pong({ping})")]);
    // (4) calls in flight in both directions finish.
    p.respond(Server, a, b"a done");
    p.drive();
    assert_eq!(&outcome(&p.events(Client), a).args()[2][..], b"a done");
    assert!(!p.server.is_closed(), "the server's own call is still out");
    p.respond(Client, s, b"s done");
    p.drive();
    // (5) then it closes.
    let se = p.events(Server);
    assert_eq!(&outcome(&se, s).args()[2][..], b"s done");
    assert_eq!(summary(&se).last().unwrap(), "Closed(Drained)");
    assert_eq!(summary(&p.events(Client)), ["Closed(Transport)"]);
    p.assert_idle();
}

// [CONN-19]
#[test]
pub(crate) fn drain_with_nothing_in_flight_closes_at_once() {
    let mut p = Pair::up();
    let now = p.now;
    p.client.conn.drain(now, now + Duration::from_secs(10));
    assert_eq!(summary(&p.events(Client)), ["Closed(Drained)"]);
    p.drive();
    assert_eq!(
        fsummary(&p.client.sent[1..]),
        ["Error(0xffffffff, declined)"]
    );
    let se = p.events(Server);
    assert_eq!(
        summary(&se),
        ["PeerDraining(declined)", "Closed(Transport)"]
    );
    p.assert_idle();
    // Draining before the handshake just closes.
    let mut p = Pair::new(client_config(), server_config());
    let now = p.now;
    p.server.conn.drain(now, now + Duration::from_secs(10));
    assert_eq!(summary(&p.events(Server)), ["Closed(Drained)"]);
}

// [CONN-19] [CONN-21]
#[test]
pub(crate) fn drain_deadline_closes_and_fails_calls() {
    let mut p = Pair::up();
    let a = p.call(Client, 60_000, ARGS);
    let s = p.call(Server, 60_000, ARGS);
    p.drive();
    p.events(Server);
    p.events(Client);
    let now = p.now;
    p.server.conn.drain(now, now + Duration::from_secs(1));
    p.drive();
    assert_eq!(summary(&p.events(Client)), ["PeerDraining(declined)"]);
    p.advance(ms(999));
    assert!(!p.server.is_closed());
    p.advance(ms(1));
    assert_eq!(
        summary(&p.events(Server)),
        [
            format!("CallFailed({s}, network local)"),
            format!("RequestAborted({a}, network local)"),
            "Closed(DrainTimeout)".into()
        ]
    );
    // The peer sees the transport go away: its calls fail once too.
    assert_eq!(
        summary(&p.events(Client)),
        [
            format!("CallFailed({a}, network local)"),
            format!("RequestAborted({s}, network local)"),
            "Closed(Transport)".into()
        ]
    );
    p.assert_idle();
}

// [CONN-21]
#[test]
pub(crate) fn close_now_fails_everything_exactly_once() {
    let mut p = Pair::connected(client_config(), {
        let mut c = server_config();
        c.set_max_frame_size(200).expect("valid");
        c
    });
    let plain = p.call(Client, 5000, ARGS);
    let partial = p.call(Client, 5000, ARGS);
    let now = p.now;
    let streaming = p
        .client
        .conn
        .start_request(now, head(now + ms(5000)))
        .unwrap();
    p.client.conn.write_request(streaming, b"half").unwrap();
    let inbound = p.call(Server, 5000, ARGS);
    p.drive();
    p.events(Server);
    p.events(Client);
    // A response that stops halfway.
    p.server
        .conn
        .start_response(partial, ResponseCode::OK, th())
        .unwrap();
    p.server
        .conn
        .write_response(partial, &pattern(50, 1))
        .unwrap();
    p.drive();
    assert_eq!(summary(&p.events(Client)), [format!("Response({partial})")]);
    // A ping that never gets its answer.
    p.client.conn.ping().unwrap();
    assert_eq!(p.capture(Client).len(), 1);
    p.client.conn.close_now();
    let ev = p.events(Client);
    let all = outcomes(&ev);
    for id in [plain, partial, streaming] {
        assert_eq!(all[&id].len(), 1, "call {id}");
        assert_eq!(all[&id][0].error().code(), ErrorCode::NETWORK);
    }
    assert_eq!(
        summary(&ev),
        [
            format!("CallFailed({plain}, network local)"),
            format!("CallFailed({partial}, network local)"),
            format!("CallFailed({streaming}, network local)"),
            format!("RequestAborted({inbound}, network local)"),
            "Closed(Local)".into(),
        ]
    );
    assert!(p.capture(Client).is_empty(), "nothing sent on close");
    // Closing again, timers, frames and app calls do nothing.
    p.client.conn.close_now();
    p.client.conn.transport_closed("again");
    p.client
        .conn
        .handle_timeout(p.now + Duration::from_secs(100));
    assert!(p.client.conn.write_request(streaming, b"more").is_err());
    assert!(p.events(Client).is_empty());
    p.drive();
    let se = p.events(Server);
    let all = outcomes(&se);
    assert_eq!(all[&inbound].len(), 1);
    assert_eq!(summary(&se).last().unwrap(), "Closed(Transport)");
    p.assert_idle();
}

// [CONN-17] [CONN-18]
#[test]
pub(crate) fn tombstones_are_bounded_in_number_and_age() {
    let mut p = Pair::connected(
        {
            let mut c = client_config();
            c.set_max_tombstones(3);
            c.set_tombstone_ttl(Duration::from_secs(1));
            c
        },
        server_config(),
    );
    p.server.deaf = true;
    let ids: Vec<u32> = (0..5).map(|_| p.call(Client, 100, ARGS)).collect();
    p.advance(ms(100));
    let ev = p.events(Client);
    for id in &ids {
        assert_eq!(outcome(&ev, *id).error().code(), ErrorCode::TIMEOUT);
    }
    assert_eq!(
        p.client.conn.table_sizes(),
        [0, 0, 0, 3, 0],
        "oldest dropped first"
    );
    // Late responses, whether remembered or already forgotten, are dropped
    // quietly and never confused with a live call.
    let live = p.call(Client, 5000, ARGS);
    assert!(!ids.contains(&live));
    p.drive();
    for id in &ids {
        p.inject(Client, call_res(*id, 0, &[b"", b"", b"late"]));
    }
    assert!(p.events(Client).is_empty());
    assert!(p.capture(Client).is_empty());
    assert!(!p.client.is_closed());
    p.inject(Client, call_res(live, 0, &[b"", b"", b"live"]));
    assert_eq!(&outcome(&p.events(Client), live).args()[2][..], b"live");
    // They age out.
    p.advance(ms(999));
    assert_eq!(p.client.conn.table_sizes()[3], 3);
    p.advance(ms(1));
    assert_eq!(p.client.conn.table_sizes(), [0; 5]);
}

// [CSUM-12] [CSUM-14]
#[test]
pub(crate) fn response_uses_the_request_checksum_type() {
    let mut p = Pair::connected(client_config(), {
        let mut c = server_config();
        c.set_max_frame_size(200).expect("valid");
        c
    });
    for ty in [
        ChecksumType::NONE,
        ChecksumType::CRC32,
        ChecksumType::FARMHASH32,
        ChecksumType::CRC32C,
    ] {
        let now = p.now;
        let id = p
            .client
            .conn
            .send_request(now, head_with(now + ms(1000), ty), ARGS)
            .unwrap();
        p.drive();
        assert_eq!(request(&p.events(Server), id).start.checksum, ty);
        let body = pattern(1000, 1);
        p.respond(Server, id, &body);
        let frames = p.capture(Server);
        assert!(frames.len() > 3);
        for f in &frames {
            let got = match f {
                Frame::CallRes(r) => r.checksum.ty,
                Frame::CallResContinue(c) => c.checksum.ty,
                other => panic!("{other:?}"),
            };
            assert_eq!(got, ty);
        }
        p.deliver(Client, frames);
        assert_eq!(&outcome(&p.events(Client), id).args()[2][..], &body[..]);
    }
    p.assert_idle();
}

// [CONN-17] [CONN-18] [ERR-1]
#[test]
pub(crate) fn early_answer_drops_the_rest_of_the_request() {
    let mut p = Pair::connected(
        {
            let mut c = client_config();
            c.set_max_frame_size(256).expect("valid");
            c
        },
        server_config(),
    );
    let id = p.call(Client, 5000, [b"m", b"", &pattern(2000, 1)]);
    let frames = p.capture(Client);
    assert!(frames.len() > 4);
    let mut rest = frames.clone();
    let first = rest.remove(0);
    p.deliver(Server, [first]);
    let se = p.events(Server);
    assert!(!request(&se, id).complete);
    // The handler refuses before the request has fully arrived.
    p.server
        .conn
        .send_error(id, ErrorCode::BAD_REQUEST, "no such method")
        .unwrap();
    assert_eq!(p.server.conn.table_sizes(), [0, 0, 0, 1, 0]);
    p.deliver(Server, rest);
    assert!(p.events(Server).is_empty(), "the rest is dropped quietly");
    let out = p.capture(Server);
    assert_eq!(fsummary(&out), [format!("Error({id:#x}, bad_request)")]);
    p.deliver(Client, out);
    let e = outcome(&p.events(Client), id).error().clone();
    assert_eq!((e.code(), e.is_local()), (ErrorCode::BAD_REQUEST, false));
    p.advance(Duration::from_secs(5));
    p.assert_idle();
}

// [CANCEL-3] [CONN-18]
#[test]
pub(crate) fn cancel_while_request_still_arriving() {
    let mut p = Pair::up();
    p.inject(Server, call_req(30, 1000, MORE, &[b"m"]));
    p.inject(
        Server,
        Frame::Cancel(Cancel {
            id: 30,
            ttl: 900,
            tracing: TRACING,
            why: Bytes::from_static(b"nope"),
            trailing: Bytes::new(),
        }),
    );
    assert_eq!(
        summary(&p.events(Server)),
        ["Request(30)", "RequestCancelled(30)"]
    );
    assert_eq!(fsummary(&p.capture(Server)), ["Error(0x1e, cancelled)"]);
    // Its remaining frames are late frames.
    p.inject(Server, req_continue(30, 0, &[b"", b"h", b"b"]));
    assert!(p.events(Server).is_empty());
    assert!(p.capture(Server).is_empty());
    assert!(!p.server.is_closed());
    assert_eq!(p.server.conn.calls_in_flight(), (0, 0));
}

// [CONN-19] [TTL-6]
#[test]
pub(crate) fn drain_finishes_when_the_last_call_times_out() {
    let mut p = Pair::up();
    let id = p.call(Client, 500, ARGS);
    p.drive();
    p.events(Server);
    let now = p.now;
    p.server.conn.drain(now, now + Duration::from_secs(10));
    p.drive();
    assert_eq!(summary(&p.events(Client)), ["PeerDraining(declined)"]);
    p.advance(ms(500));
    assert_eq!(
        summary(&p.events(Server)),
        [
            format!("RequestAborted({id}, timeout local)"),
            "Closed(Drained)".into()
        ]
    );
    // The timeout error went out before the close.
    assert_eq!(
        fsummary(&p.server.sent[1..]),
        [
            "Error(0xffffffff, declined)".to_string(),
            format!("Error({id:#x}, timeout)")
        ]
    );
    let ce = p.events(Client);
    assert_eq!(outcome(&ce, id).error().code(), ErrorCode::TIMEOUT);
    assert_eq!(summary(&ce).last().unwrap(), "Closed(Transport)");
    p.assert_idle();
}
