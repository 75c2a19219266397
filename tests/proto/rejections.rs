//! Message-level rejections.

use super::*;

// [CSUM-16] [CONN-20] [CONN-18] [CONN-17]
#[test]
pub(crate) fn checksum_mismatch_is_bad_request_and_connection_stays_up() {
    let mut p = Pair::up();
    let Frame::CallReq(mut f) = call_req(21, 1000, 0, &ARGS) else {
        unreachable!()
    };
    f.checksum = ChecksumField {
        ty: ChecksumType::CRC32,
        value: 0xdead_beef,
    };
    p.inject(Server, Frame::CallReq(f));
    let out = p.capture(Server);
    assert_eq!(fsummary(&out), ["Error(0x15, bad_request)"]);
    assert_eq!(errors(&out)[0].tracing, TRACING);
    assert!(p.events(Server).is_empty(), "the handler never runs");
    assert!(!p.server.is_closed());
    p.assert_idle();

    // A bad checksum in a later frame: the started handler is aborted, the
    // caller gets bad request, the remaining frames are dropped quietly.
    let mut p = Pair::connected(
        {
            let mut c = client_config();
            c.set_max_frame_size(256).expect("valid");
            c
        },
        server_config(),
    );
    let big = pattern(2000, 1);
    let id = p.call(Client, 5000, [b"m", b"", &big]);
    let mut frames = p.capture(Client);
    assert!(frames.len() > 4);
    let Frame::CallReqContinue(c) = &mut frames[1] else {
        panic!("{:?}", frames[1])
    };
    c.checksum.value ^= 1;
    p.deliver(Server, frames);
    assert_eq!(
        summary(&p.events(Server)),
        [
            format!("Request({id})"),
            format!("RequestAborted({id}, bad_request local)")
        ]
    );
    let out = p.capture(Server);
    assert_eq!(fsummary(&out), [format!("Error({id:#x}, bad_request)")]);
    assert!(!p.server.is_closed());
    p.deliver(Client, out);
    let e = outcome(&p.events(Client), id).error().clone();
    assert_eq!((e.code(), e.is_local()), (ErrorCode::BAD_REQUEST, false));
    // Still usable.
    let ok = p.call(Client, 5000, ARGS);
    p.drive();
    p.events(Server);
    p.respond(Server, ok, b"fine");
    p.drive();
    outcome(&p.events(Client), ok).args();
    assert_eq!(p.client.conn.table_sizes(), [0; 5]);

    // [CSUM-16] a response that fails its checksum fails the call locally;
    // the connection stays up.
    let id = p.call(Client, 5000, ARGS);
    p.drive();
    p.events(Server);
    let Frame::CallRes(mut r) = call_res(id, 0, &ARGS) else {
        unreachable!()
    };
    r.checksum = ChecksumField {
        ty: ChecksumType::CRC32C,
        value: 1,
    };
    p.inject(Client, Frame::CallRes(r));
    let e = outcome(&p.events(Client), id).error().clone();
    assert!(e.is_local());
    assert!(e.message().contains("checksum"), "{e:?}");
    assert!(!p.client.is_closed());
    assert!(
        p.capture(Client).is_empty(),
        "no error frame for a response"
    );
}

// [FRAME-11] [MSG-6] [CANCEL-5] [DEV-11] [DEV-12]
#[test]
pub(crate) fn unknown_frame_types_and_claims_are_ignored() {
    let mut p = Pair::up();
    let id = p.call(Client, 1000, ARGS);
    p.drive();
    p.events(Server);
    // Type 0x50 with id = the call's and a 3-byte payload.
    let mut raw = vec![0x00, 19, 0x50, 0x00];
    raw.extend_from_slice(&id.to_be_bytes());
    raw.extend_from_slice(&[0; 8]);
    raw.extend_from_slice(&[1, 2, 3]);
    p.inject_bytes(Server, &raw);
    p.inject(
        Server,
        Frame::Claim(Claim {
            id,
            ttl: 100,
            tracing: TRACING,
            trailing: Bytes::new(),
        }),
    );
    p.inject_bytes(Client, &raw);
    assert!(p.events(Server).is_empty() && p.events(Client).is_empty());
    assert!(p.capture(Server).is_empty() && p.capture(Client).is_empty());
    assert_eq!(p.server.conn.calls_in_flight(), (0, 1));
    p.respond(Server, id, b"unaffected");
    p.drive();
    assert_eq!(&outcome(&p.events(Client), id).args()[2][..], b"unaffected");
    p.assert_idle();
}

// [CONN-17] [CANCEL-4] [FRAG-13]
#[test]
pub(crate) fn frames_for_unknown_calls_are_dropped_quietly() {
    let mut p = Pair::up();
    let id = p.call(Client, 1000, ARGS);
    p.drive();
    p.events(Server);
    let junk_for_client = [
        call_res(500, 0, &ARGS),
        res_continue(501, 0, &[b"x"]),
        error_frame(502, ErrorCode::TIMEOUT, "late"),
        Frame::PingRes(Ping::new(503)),
    ];
    let junk_for_server = [
        req_continue(600, 0, &[b"x"]),
        Frame::Cancel(Cancel {
            id: 601,
            ttl: 0,
            tracing: TRACING,
            why: Bytes::from_static(b"late"),
            trailing: Bytes::new(),
        }),
        error_frame(602, ErrorCode::BUSY, "an error for a call we never made"),
    ];
    p.deliver(Client, junk_for_client);
    p.deliver(Server, junk_for_server);
    assert!(p.events(Client).is_empty() && p.events(Server).is_empty());
    assert!(p.capture(Client).is_empty() && p.capture(Server).is_empty());
    assert!(!p.client.is_closed() && !p.server.is_closed());
    p.respond(Server, id, b"");
    p.drive();
    outcome(&p.events(Client), id).args();
    // A cancel for a call already answered is ignored too.
    p.inject(
        Server,
        Frame::Cancel(Cancel {
            id,
            ttl: 0,
            tracing: TRACING,
            why: Bytes::new(),
            trailing: Bytes::new(),
        }),
    );
    assert!(p.events(Server).is_empty() && p.capture(Server).is_empty());
    p.assert_idle();
}

// [ERR-7]
#[test]
pub(crate) fn max_inbound_calls_answers_busy() {
    let mut p = Pair::connected(client_config(), {
        let mut c = server_config();
        c.set_max_inbound_calls(2);
        c
    });
    let a = p.call(Client, 1000, ARGS);
    let b = p.call(Client, 1000, ARGS);
    let c = p.call(Client, 1000, ARGS);
    p.drive();
    assert_eq!(
        summary(&p.events(Server)),
        [format!("Request({a})"), format!("Request({b})")]
    );
    assert_eq!(
        fsummary(
            &errors(&p.server.sent)
                .into_iter()
                .cloned()
                .map(Frame::Error)
                .collect::<Vec<_>>()
        ),
        [format!("Error({c:#x}, busy)")]
    );
    let e = outcome(&p.events(Client), c).error().clone();
    assert_eq!((e.code(), e.is_local()), (ErrorCode::BUSY, false));
    // Once one finishes there is room again.
    p.respond(Server, a, b"");
    let d = p.call(Client, 1000, ARGS);
    p.drive();
    assert_eq!(summary(&p.events(Server)), [format!("Request({d})")]);
    p.respond(Server, b, b"");
    p.respond(Server, d, b"");
    p.drive();
    let ce = p.events(Client);
    for id in [a, b, d] {
        outcome(&ce, id).args();
    }
    p.assert_idle();
}

// [ERR-7] (the outbound limit is a config requirement, no spec ID)
#[test]
pub(crate) fn max_outbound_calls_fails_locally_with_busy() {
    let mut p = Pair::connected(
        {
            let mut c = client_config();
            c.set_max_outbound_calls(1);
            c
        },
        server_config(),
    );
    let a = p.call(Client, 1000, ARGS);
    let now = p.now;
    let e = p
        .client
        .conn
        .send_request(now, head(now + ms(1000)), ARGS)
        .unwrap_err();
    assert_eq!((e.code(), e.is_local()), (ErrorCode::BUSY, true));
    p.drive();
    p.events(Server);
    p.respond(Server, a, b"");
    p.drive();
    outcome(&p.events(Client), a).args();
    p.assert_idle();
}

// [ERR-7] [FRAG-11] [CONN-18]
#[test]
pub(crate) fn max_inbound_bytes_answers_busy() {
    let limited = || {
        let mut c = server_config();
        c.set_max_inbound_bytes(1000);
        c
    };
    let mut p = Pair::connected(client_config(), limited());
    // Two 600-byte requests: the second would go over the budget and is
    // answered busy before any handler runs.
    let a = p.call(Client, 5000, [b"", b"", &pattern(600, 1)]);
    let b = p.call(Client, 5000, [b"", b"", &pattern(600, 2)]);
    p.drive();
    assert_eq!(summary(&p.events(Server)), [format!("Request({a})")]);
    assert_eq!(
        fsummary(&p.server.sent[1..]),
        [format!("Error({b:#x}, busy)")]
    );
    let e = outcome(&p.events(Client), b).error().clone();
    assert_eq!((e.code(), e.is_local()), (ErrorCode::BUSY, false));
    // Bytes are released when a call finishes.
    p.respond(Server, a, b"");
    let c = p.call(Client, 5000, [b"", b"", &pattern(900, 3)]);
    p.drive();
    assert!(request(&p.events(Server), c).complete);
    p.respond(Server, c, b"");
    p.drive();
    let ce = p.events(Client);
    outcome(&ce, a).args();
    outcome(&ce, c).args();
    p.assert_idle();

    // A multi-frame request that crosses the limit midway: the started
    // handler is aborted, the caller gets busy, the remaining frames are
    // dropped quietly, and the connection stays up.
    let mut p = Pair::connected(
        {
            let mut c = client_config();
            c.set_max_frame_size(256).expect("valid");
            c
        },
        limited(),
    );
    let big = pattern(3000, 4);
    let id = p.call(Client, 5000, [b"", b"", &big]);
    p.drive();
    let se = summary(&p.events(Server));
    assert_eq!(se[0], format!("Request({id})"));
    assert_eq!(
        se.last().unwrap(),
        &format!("RequestAborted({id}, busy local)")
    );
    assert_eq!(
        fsummary(&p.server.sent[1..]),
        [format!("Error({id:#x}, busy)")]
    );
    let e = outcome(&p.events(Client), id).error().clone();
    assert_eq!((e.code(), e.is_local()), (ErrorCode::BUSY, false));
    assert!(!p.server.is_closed());
    let ok = p.call(Client, 5000, ARGS);
    p.drive();
    p.events(Server);
    p.respond(Server, ok, b"");
    p.drive();
    outcome(&p.events(Client), ok).args();
    p.advance(Duration::from_secs(5));
    p.assert_idle();
}
