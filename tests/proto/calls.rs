//! Calls.

use super::*;

// [CONN-10] [ID-4] [TRACE-5] [CALL-6]
#[test]
pub(crate) fn request_response_round_trip() {
    let mut p = Pair::up();
    let big = pattern(100_000, 1);
    let id = p.call(Client, 2000, [b"method", b"headers", &big]);
    p.drive();
    let ev = p.events(Server);
    let r = request(&ev, id);
    assert!(r.complete);
    assert_eq!(&r.start.service[..], SVC);
    assert_eq!(r.start.headers, th());
    assert_eq!(r.start.tracing, TRACING);
    assert_eq!(r.start.ttl_ms, 2000);
    assert_eq!(r.start.checksum, ChecksumType::CRC32C);
    args_eq(&r.args(), [b"method", b"headers", &big]);
    // The request is still the server's until it answers.
    assert_eq!(p.server.conn.calls_in_flight(), (0, 1));
    assert_eq!(p.client.conn.calls_in_flight(), (1, 0));

    let res_headers = TransportHeaders::strict([("as", "raw")]).unwrap();
    p.server
        .conn
        .send_response(
            id,
            ResponseCode::ERROR,
            res_headers.clone(),
            [b"", b"oops", &big],
        )
        .unwrap();
    p.drive();
    // The response carries the request's tracing.
    for f in &p.server.sent {
        if let Frame::CallRes(c) = f {
            assert_eq!((c.id, c.tracing), (id, TRACING));
        }
    }
    let ev = p.events(Client);
    let Some(Event::Response(start)) = ev.first() else {
        panic!("{ev:?}")
    };
    assert_eq!(start.code, ResponseCode::ERROR);
    assert_eq!(start.headers, res_headers);
    let Outcome::Response { code, args } = outcome(&ev, id) else {
        panic!()
    };
    assert_eq!(code, ResponseCode::ERROR);
    args_eq(&args, [b"", b"oops", &big]);
    p.assert_idle();

    // [CONN-10] the acceptor may start calls too.
    let sid = p.call(Server, 500, [b"reverse", b"", b"call"]);
    p.drive();
    args_eq(
        &request(&p.events(Client), sid).args(),
        [b"reverse", b"", b"call"],
    );
    p.respond(Client, sid, b"done");
    p.drive();
    assert_eq!(&outcome(&p.events(Server), sid).args()[2][..], b"done");
    p.assert_idle();
}

// [ID-1] [CONN-11]
#[test]
pub(crate) fn same_id_in_both_directions_are_different_calls() {
    let mut p = Pair::up();
    let c = p.call(Client, 1000, [b"from-client", b"", b""]);
    let s1 = p.call(Server, 1000, [b"from-server-1", b"", b""]);
    let s2 = p.call(Server, 1000, [b"from-server-2", b"", b""]);
    assert_eq!((c, s1, s2), (2, 1, 2), "id 2 is in use both ways at once");
    p.drive();
    let se = p.events(Server);
    let ce = p.events(Client);
    assert_eq!(&request(&se, 2).args()[0][..], b"from-client");
    assert_eq!(&request(&ce, 2).args()[0][..], b"from-server-2");
    assert_eq!(p.client.conn.calls_in_flight(), (1, 2));
    assert_eq!(p.server.conn.calls_in_flight(), (2, 1));
    p.respond(Client, 2, b"client answers server's 2");
    p.respond(Client, 1, b"client answers server's 1");
    p.respond(Server, 2, b"server answers client's 2");
    p.drive();
    let se = p.events(Server);
    let ce = p.events(Client);
    assert_eq!(&outcome(&ce, 2).args()[2][..], b"server answers client's 2");
    assert_eq!(&outcome(&se, 2).args()[2][..], b"client answers server's 2");
    assert_eq!(&outcome(&se, 1).args()[2][..], b"client answers server's 1");
    p.assert_idle();
}

// [CONN-13] [ID-3] [ID-5]
#[test]
pub(crate) fn thousand_calls_answered_in_reverse_order() {
    let mut p = Pair::up();
    let mut ids = Vec::new();
    for i in 0..1000u32 {
        let arg3 = i.to_be_bytes();
        ids.push(p.call(Client, 10_000, [b"m", b"", &arg3]));
    }
    let distinct: HashSet<u32> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 1000, "ids must be distinct");
    assert!(!distinct.contains(&NO_MESSAGE_ID));
    p.drive();
    let reqs = requests(&p.events(Server));
    assert_eq!(reqs.len(), 1000);
    assert_eq!(p.server.conn.calls_in_flight(), (0, 1000));
    for r in reqs.iter().rev() {
        // Echo arg3 and say which id the server saw.
        let mut body = r.args()[2].to_vec();
        body.extend_from_slice(&r.start.id.to_be_bytes());
        p.respond(Server, r.start.id, &body);
    }
    p.drive();
    let ev = p.events(Client);
    let all = outcomes(&ev);
    assert_eq!(all.len(), 1000);
    for (i, id) in ids.iter().enumerate() {
        let v = &all[id];
        assert_eq!(v.len(), 1, "call {id}: exactly one outcome");
        let mut want = (i as u32).to_be_bytes().to_vec();
        want.extend_from_slice(&id.to_be_bytes());
        assert_eq!(
            &v[0].args()[2][..],
            &want[..],
            "call {id} got another's answer"
        );
    }
    // Responses arrived in reverse order of the calls.
    let order: Vec<u32> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Response(r) => Some(r.id),
            _ => None,
        })
        .collect();
    let mut rev = ids.clone();
    rev.reverse();
    assert_eq!(order, rev);
    p.assert_idle();
}

// [CONN-13] [FRAG-14] [FRAG-15] [FRAG-19] [FRAME-5]
#[test]
pub(crate) fn interleaved_multi_frame_messages_both_ways() {
    let small = |c: ConnectionConfig| {
        let mut c = c;
        c.set_max_frame_size(256).expect("valid");
        c
    };
    let mut p = Pair::connected(small(client_config()), small(server_config()));
    let a3 = pattern(3000, 1);
    let b3 = pattern(5000, 2);
    let s3 = pattern(4000, 3);
    let a2 = pattern(300, 4);
    let a = p.call(Client, 10_000, [b"method-a", &a2, &a3]);
    let b = p.call(Client, 10_000, [b"method-b", b"", &b3]);
    let s = p.call(Server, 10_000, [b"method-s", b"x", &s3]);
    let cf = p.capture(Client);
    let sf = p.capture(Server);
    for f in cf.iter().chain(&sf) {
        assert!(f.encoded_len() <= 256, "frame over the max size");
    }
    let fa = frames_of(&cf, a);
    let fb = frames_of(&cf, b);
    assert!(fa.len() > 12 && fb.len() > 20, "{} {}", fa.len(), fb.len());
    // Frames of a and b alternate on the wire, and the server's own request
    // crosses them.
    p.deliver(Server, interleave(vec![fa, fb]));
    p.deliver(Client, sf);
    let se = p.events(Server);
    let ce = p.events(Client);
    args_eq(&request(&se, a).args(), [b"method-a", &a2, &a3]);
    args_eq(&request(&se, b).args(), [b"method-b", b"", &b3]);
    args_eq(&request(&ce, s).args(), [b"method-s", b"x", &s3]);
    // Request events really were interleaved.
    let kinds = summary(&se);
    assert_eq!(kinds[0], format!("Request({a})"));
    assert_eq!(kinds[1], format!("Request({b})"));
    assert_eq!(kinds[2], format!("RequestContinue({a})"));

    // Large responses, answered b first, interleaved again, while the client
    // answers the server's call.
    let ra = pattern(2500, 5);
    let rb = pattern(3500, 6);
    let rs = pattern(1500, 7);
    p.respond(Server, b, &rb);
    p.respond(Server, a, &ra);
    p.respond(Client, s, &rs);
    let sf = p.capture(Server);
    let cf = p.capture(Client);
    for f in cf.iter().chain(&sf) {
        assert!(f.encoded_len() <= 256);
    }
    p.deliver(
        Client,
        interleave(vec![frames_of(&sf, a), frames_of(&sf, b)]),
    );
    p.deliver(Server, cf);
    let ce = p.events(Client);
    let se = p.events(Server);
    args_eq(outcome(&ce, a).args(), [b"", b"", &ra]);
    args_eq(outcome(&ce, b).args(), [b"", b"", &rb]);
    args_eq(outcome(&se, s).args(), [b"", b"", &rs]);
    p.assert_idle();
}

// [CONN-13] [FRAG-2] [FRAG-4] [FRAG-19]
#[test]
pub(crate) fn streamed_request_with_other_traffic_in_between() {
    let mut p = Pair::connected(
        {
            let mut c = client_config();
            c.set_max_frame_size(1000).expect("valid");
            c
        },
        server_config(),
    );
    let now = p.now;
    let id = p
        .client
        .conn
        .start_request(now, head(now + ms(5000)))
        .unwrap();
    p.drive();
    assert!(p.events(Server).is_empty(), "nothing written yet");
    p.client.conn.write_request(id, b"ec").unwrap();
    p.drive();
    // The first frame went out at once: the handler can start.
    let se = p.events(Server);
    assert_eq!(summary(&se), [format!("Request({id})")]);
    let mut seen = se;
    p.client.conn.write_request(id, b"ho").unwrap();
    p.drive();
    p.client.conn.end_request_arg(id).unwrap();
    p.drive();
    // Another call and a ping go out between the frames of this one.
    let other = p.call(Client, 5000, [b"other", b"", b"call"]);
    let ping = p.client.conn.ping().unwrap();
    p.drive();
    p.client.conn.write_request(id, b"arg2").unwrap();
    p.client.conn.end_request_arg(id).unwrap();
    p.drive();
    let big = pattern(3000, 9);
    for part in big.chunks(700) {
        p.client.conn.write_request(id, part).unwrap();
        p.drive();
    }
    p.client.conn.end_request_arg(id).unwrap();
    // After the third arg the request is complete.
    assert!(p.client.conn.write_request(id, b"more").is_err());
    assert!(p.client.conn.end_request_arg(id).is_err());
    p.drive();
    seen.extend(p.events(Server));
    args_eq(&request(&seen, id).args(), [b"echo", b"arg2", &big]);
    assert!(request(&seen, id).complete);
    args_eq(&request(&seen, other).args(), [b"other", b"", b"call"]);
    assert!(
        summary(&p.events(Client)).contains(&format!("Pong({ping})")),
        "ping answered"
    );
    p.respond(Server, id, b"streamed ok");
    p.respond(Server, other, b"other ok");
    p.drive();
    let ce = p.events(Client);
    assert_eq!(&outcome(&ce, id).args()[2][..], b"streamed ok");
    assert_eq!(&outcome(&ce, other).args()[2][..], b"other ok");
    p.assert_idle();
}

// [CONN-13] [ERR-1] [FRAG-19]
#[test]
pub(crate) fn streamed_response_with_other_traffic_in_between() {
    let mut p = Pair::connected(client_config(), {
        let mut c = server_config();
        c.set_max_frame_size(1000).expect("valid");
        c
    });
    let id = p.call(Client, 5000, ARGS);
    let other = p.call(Client, 5000, [b"other", b"", b""]);
    p.drive();
    p.events(Server);
    p.server
        .conn
        .start_response(id, ResponseCode::OK, th())
        .unwrap();
    // A second start is refused.
    assert!(
        p.server
            .conn
            .start_response(id, ResponseCode::OK, th())
            .is_err()
    );
    p.server.conn.end_response_arg(id).unwrap(); // empty arg1
    p.drive();
    p.server.conn.write_response(id, b"res-").unwrap();
    p.drive();
    let ce = p.events(Client);
    assert_eq!(summary(&ce)[0], format!("Response({id})"));
    let mut seen = ce;
    p.server.conn.write_response(id, b"headers").unwrap();
    p.server.conn.end_response_arg(id).unwrap();
    p.drive();
    p.respond(Server, other, b"in between");
    p.drive();
    let big = pattern(2500, 3);
    for part in big.chunks(600) {
        p.server.conn.write_response(id, part).unwrap();
        p.drive();
    }
    assert_eq!(p.client.conn.calls_in_flight(), (1, 0), "still streaming");
    p.server.conn.end_response_arg(id).unwrap();
    assert!(p.server.conn.write_response(id, b"late").is_err());
    p.drive();
    seen.extend(p.events(Client));
    args_eq(outcome(&seen, id).args(), [b"", b"res-headers", &big]);
    args_eq(outcome(&seen, other).args(), [b"", b"", b"in between"]);
    p.assert_idle();

    // [ERR-1] an error frame may end a response that already started: the
    // caller gets one CallFailed after its partial Response.
    let id = p.call(Client, 5000, ARGS);
    p.drive();
    p.events(Server);
    p.server
        .conn
        .start_response(id, ResponseCode::OK, th())
        .unwrap();
    p.server.conn.write_response(id, b"partial").unwrap();
    p.drive();
    p.server
        .conn
        .send_error(id, ErrorCode::UNEXPECTED, "handler panicked")
        .unwrap();
    p.drive();
    let ce = p.events(Client);
    assert_eq!(
        summary(&ce),
        [
            format!("Response({id})"),
            format!("CallFailed({id}, unexpected)")
        ]
    );
    assert_eq!(outcome(&ce, id).error().code(), ErrorCode::UNEXPECTED);
    p.assert_idle();
}
