//! Deadlines.

use super::*;

pub(crate) fn ttl_of(frames: &[Frame], id: u32) -> u32 {
    frames
        .iter()
        .find_map(|f| match f {
            Frame::CallReq(c) if c.id == id => Some(c.ttl),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no call req {id}"))
}

// [TTL-1] [TTL-4] [TTL-5]
#[test]
pub(crate) fn ttl_sent_is_time_left() {
    let mut p = Pair::up();
    let t0 = p.now;
    let a = p
        .client
        .conn
        .send_request(t0, head(t0 + ms(1500)), ARGS)
        .unwrap();
    // 250 ms later, with 1250.9 ms left: rounded down.
    p.now += ms(250);
    let now = p.now;
    let b = p
        .client
        .conn
        .send_request(now, head(t0 + ms(1500) + Duration::from_micros(900)), ARGS)
        .unwrap();
    // Ten minutes: clamped to the 2-minute maximum.
    let c = p
        .client
        .conn
        .send_request(now, head(now + Duration::from_secs(600)), ARGS)
        .unwrap();
    let frames = p.capture(Client);
    assert_eq!(ttl_of(&frames, a), 1500);
    assert_eq!(ttl_of(&frames, b), 1250);
    assert_eq!(ttl_of(&frames, c), 120_000);
    p.deliver(Server, frames);
    let se = p.events(Server);
    for (id, ttl) in [(a, 1500), (b, 1250), (c, 120_000)] {
        let r = request(&se, id);
        assert_eq!(r.start.ttl_ms, ttl);
        // [TTL-5] the inbound deadline is arrival + ttl.
        assert_eq!(r.start.deadline, p.now + ms(u64::from(ttl)));
    }
    for id in [a, b, c] {
        p.respond(Server, id, b"");
    }
    p.drive();
    assert_eq!(outcomes(&p.events(Client)).len(), 3);
    p.assert_idle();
}

// [TTL-2]
#[test]
pub(crate) fn deadline_under_one_ms_fails_locally() {
    let mut p = Pair::up();
    let now = p.now;
    let past = now.checked_sub(ms(5)).unwrap();
    for deadline in [now + Duration::from_micros(999), now, past] {
        let e = p
            .client
            .conn
            .send_request(now, head(deadline), ARGS)
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::TIMEOUT);
        assert!(e.is_local());
        let e = p
            .client
            .conn
            .start_request(now, head(deadline))
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::TIMEOUT);
    }
    // Nothing was sent and nothing is tracked.
    assert!(p.capture(Client).is_empty());
    assert!(p.events(Client).is_empty());
    p.assert_idle();
    // Exactly 1 ms left is fine: ttl 1.
    let id = p
        .client
        .conn
        .send_request(now, head(now + ms(1)), ARGS)
        .unwrap();
    let frames = p.capture(Client);
    assert_eq!(ttl_of(&frames, id), 1);
    p.deliver(Server, frames);
    p.drive();
    p.respond(Server, id, b"just in time");
    p.drive();
    outcome(&p.events(Client), id).args();
    p.assert_idle();
}

// [TTL-8] [CONN-17] [CANCEL-2] [ID-3]
#[test]
pub(crate) fn outbound_timeout_and_late_response_dropped() {
    let mut p = Pair::up();
    let stale = p.call(Client, 100, [b"slow", b"", b""]);
    // The request reaches the server 50 ms late (its deadline: t=150).
    let held = p.capture(Client);
    p.advance(ms(50));
    p.deliver(Server, held);
    assert_eq!(summary(&p.events(Server)), [format!("Request({stale})")]);
    p.advance(ms(49));
    assert!(p.events(Client).is_empty());
    p.advance(ms(1));
    let ce = p.events(Client);
    assert_eq!(
        summary(&ce),
        [format!("CallFailed({stale}, timeout local)")]
    );
    assert_eq!(
        p.client.conn.table_sizes(),
        [0, 0, 0, 1, 0],
        "one tombstone"
    );
    assert!(
        !p.client.sent.iter().any(|f| matches!(f, Frame::Cancel(_))),
        "send_cancel is off by default"
    );

    // A new call never reuses the stale id, and never gets its response.
    let fresh = p.call(Client, 1000, [b"fast", b"", b""]);
    assert_ne!(fresh, stale);
    p.drive();
    p.events(Server);
    p.respond(Server, stale, b"stale answer");
    p.respond(Server, fresh, b"fresh answer");
    let sent_before = p.client.sent.len();
    p.drive();
    let ce = p.events(Client);
    assert_eq!(summary(&ce), [format!("Response({fresh})")]);
    assert_eq!(&outcome(&ce, fresh).args()[2][..], b"fresh answer");
    // Dropped quietly: the client wrote nothing in reply.
    assert_eq!(p.client.sent.len(), sent_before);
    assert!(!p.client.is_closed());
    // [CONN-17] tombstones age out.
    p.advance(Duration::from_secs(5));
    p.assert_idle();
}

// [TTL-4] [TTL-6] [ERR-2] [ERR-7] [TRACE-5]
#[test]
pub(crate) fn inbound_deadline_answers_timeout() {
    let mut p = Pair::connected(client_config(), {
        let mut c = server_config();
        c.set_max_ttl(ms(50));
        c
    });
    let id = p.call(Client, 1000, ARGS);
    p.drive();
    let r = request(&p.events(Server), id);
    assert_eq!(r.start.ttl_ms, 1000);
    // [TTL-4] the server caps the deadline it gives the call.
    assert_eq!(r.start.deadline, p.now + ms(50));
    p.advance(ms(49));
    assert!(p.events(Server).is_empty());
    p.advance(ms(1));
    assert_eq!(
        summary(&p.events(Server)),
        [format!("RequestAborted({id}, timeout local)")]
    );
    let errs = errors(&p.server.sent);
    assert_eq!(errs.len(), 1);
    assert_eq!((errs[0].id, errs[0].code), (id, ErrorCode::TIMEOUT));
    assert_eq!(errs[0].tracing, TRACING);
    // The caller gets the server's timeout.
    let e = outcome(&p.events(Client), id).error().clone();
    assert_eq!(e.code(), ErrorCode::TIMEOUT);
    assert!(!e.is_local());
    // What the handler produces later is discarded.
    assert!(
        p.server
            .conn
            .send_response(id, ResponseCode::OK, th(), ARGS)
            .is_err()
    );
    assert!(
        p.server
            .conn
            .start_response(id, ResponseCode::OK, th())
            .is_err()
    );
    assert!(p.capture(Server).is_empty());
    p.assert_idle();
}

// [TTL-5] [CONN-18]
#[test]
pub(crate) fn inbound_ttl_zero_is_already_expired() {
    let mut p = Pair::up();
    p.inject(Server, call_req(9, 0, 0, &ARGS));
    let out = p.capture(Server);
    assert_eq!(fsummary(&out), ["Error(0x9, timeout)"]);
    assert_eq!(errors(&out)[0].tracing, TRACING);
    assert!(p.events(Server).is_empty(), "the handler never runs");
    p.assert_idle();
    // A multi-frame one: its remaining frames are dropped quietly.
    p.inject(Server, call_req(10, 0, MORE, &[b"m"]));
    assert_eq!(fsummary(&p.capture(Server)), ["Error(0xa, timeout)"]);
    assert_eq!(p.server.conn.table_sizes(), [0, 0, 0, 1, 0]);
    p.inject(Server, req_continue(10, 0, &[b"", b"", b"end"]));
    assert!(p.capture(Server).is_empty());
    assert!(p.events(Server).is_empty());
    assert!(!p.server.is_closed());
}
