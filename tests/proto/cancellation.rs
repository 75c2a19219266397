//! Cancellation.

use super::*;

// [CANCEL-1] [CANCEL-2] [CANCEL-3] [TTL-9] [ID-6] [MSG-5]
#[test]
pub(crate) fn cancel_signals_handler_and_late_error_is_dropped() {
    let mut p = Pair::connected(
        {
            let mut c = client_config();
            c.set_send_cancel(true);
            c
        },
        server_config(),
    );
    let id = p.call(Client, 1000, ARGS);
    p.drive();
    p.events(Server);
    p.now += ms(300);
    let now = p.now;
    p.client.conn.cancel_call(now, id, "caller gave up");
    assert!(p.events(Client).is_empty(), "the caller already knows");
    let out = p.capture(Client);
    let [Frame::Cancel(c)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(c.id, id);
    assert_eq!(c.tracing, TRACING);
    assert_eq!(&c.why[..], b"caller gave up");
    assert_eq!(c.ttl, 700, "the remaining time");
    p.deliver(Server, out);
    assert_eq!(
        summary(&p.events(Server)),
        [format!("RequestCancelled({id})")]
    );
    let out = p.capture(Server);
    assert_eq!(fsummary(&out), [format!("Error({id:#x}, cancelled)")]);
    assert_eq!(errors(&out)[0].tracing, TRACING);
    // The caller drops the cancelled error quietly.
    p.deliver(Client, out);
    assert!(p.events(Client).is_empty());
    assert!(p.capture(Client).is_empty());
    // The handler's later answer goes nowhere.
    assert!(
        p.server
            .conn
            .send_response(id, ResponseCode::OK, th(), ARGS)
            .is_err()
    );
    assert!(p.capture(Server).is_empty());
    // Cancelling twice, or an unknown id, does nothing.
    p.client.conn.cancel_call(now, id, "again");
    p.client.conn.cancel_call(now, 777, "unknown");
    assert!(p.capture(Client).is_empty());
    p.advance(Duration::from_secs(5));
    p.assert_idle();
}

// [CANCEL-4]
#[test]
pub(crate) fn cancel_after_response_started_is_ignored() {
    let mut p = Pair::connected(
        {
            let mut c = client_config();
            c.set_send_cancel(true);
            c
        },
        server_config(),
    );
    let id = p.call(Client, 1000, ARGS);
    p.drive();
    p.events(Server);
    p.server
        .conn
        .start_response(id, ResponseCode::OK, th())
        .unwrap();
    p.server.conn.write_response(id, b"first part").unwrap();
    p.drive();
    assert_eq!(summary(&p.events(Client)), [format!("Response({id})")]);
    let now = p.now;
    p.client.conn.cancel_call(now, id, "too slow");
    p.drive();
    assert!(p.client.sent.iter().any(|f| matches!(f, Frame::Cancel(_))));
    // The server's first response frame is out: the cancel is ignored.
    assert!(p.events(Server).is_empty());
    assert!(errors(&p.server.sent).is_empty());
    p.server.conn.end_response_arg(id).unwrap();
    p.server.conn.end_response_arg(id).unwrap();
    p.server.conn.end_response_arg(id).unwrap();
    p.drive();
    // The rest of the response is dropped quietly by the caller.
    assert!(p.events(Client).is_empty());
    assert!(errors(&p.client.sent).is_empty());
    p.advance(Duration::from_secs(5));
    p.assert_idle();
}

// [CANCEL-1] [CANCEL-2]
#[test]
pub(crate) fn send_cancel_off_sends_no_cancel() {
    let mut p = Pair::up();
    let a = p.call(Client, 100, ARGS);
    let b = p.call(Client, 5000, ARGS);
    p.drive();
    p.events(Server);
    let now = p.now;
    p.client.conn.cancel_call(now, b, "gave up");
    p.drive();
    // The server is not told and keeps working on b (a times out on both
    // sides later).
    assert_eq!(p.server.conn.calls_in_flight(), (0, 2));
    p.advance(ms(100));
    assert_eq!(
        summary(&p.events(Client)),
        [format!("CallFailed({a}, timeout local)")]
    );
    assert_eq!(
        summary(&p.events(Server)),
        [format!("RequestAborted({a}, timeout local)")]
    );
    assert!(!p.client.sent.iter().any(|f| matches!(f, Frame::Cancel(_))));
    p.respond(Server, b, b"nobody listens");
    p.drive();
    assert!(p.events(Client).is_empty());
    p.advance(Duration::from_secs(5));
    p.assert_idle();
}

// [CANCEL-1] [TTL-9]
#[test]
pub(crate) fn timeout_with_send_cancel_sends_cancel_with_ttl_zero() {
    let mut p = Pair::connected(
        {
            let mut c = client_config();
            c.set_send_cancel(true);
            c
        },
        server_config(),
    );
    let id = p.call(Client, 100, ARGS);
    p.drive();
    p.events(Server);
    p.advance(ms(100));
    assert_eq!(
        summary(&p.events(Client)),
        [format!("CallFailed({id}, timeout local)")]
    );
    let cancels: Vec<&Cancel> = p
        .client
        .sent
        .iter()
        .filter_map(|f| match f {
            Frame::Cancel(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(cancels.len(), 1);
    assert_eq!((cancels[0].id, cancels[0].ttl), (id, 0));
    assert_eq!(cancels[0].tracing, TRACING);
    // The server's own deadline fired at the same moment; the crossing cancel
    // and timeout error are both dropped, each call ends exactly once.
    assert_eq!(
        summary(&p.events(Server)),
        [format!("RequestAborted({id}, timeout local)")]
    );
    assert!(!p.client.is_closed() && !p.server.is_closed());
    p.advance(Duration::from_secs(5));
    p.assert_idle();
}
