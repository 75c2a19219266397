//! The budget of response bytes held for our calls (`max_response_bytes`).

use super::*;

fn budget(n: u64) -> ConnectionConfig {
    let mut c = client_config();
    c.set_max_response_bytes(n);
    c
}

// [CONN-23]
#[test]
pub(crate) fn a_response_over_the_budget_fails_its_call_and_the_connection_stays_up() {
    let mut p = Pair::connected(budget(1000), server_config());
    let a = p.call(Client, 5000, ARGS);
    let b = p.call(Client, 5000, ARGS);
    p.drive();
    p.events(Server);
    p.events(Client);
    // a's response starts with 600 bytes and goes on; b's 600 would go over.
    p.inject(Client, call_res(a, MORE, &[b"", b"", &pattern(600, 1)]));
    assert_eq!(p.client.conn.response_bytes(), 600);
    p.inject(Client, call_res(b, MORE, &[b"", b"", &pattern(600, 2)]));
    let ev = p.events(Client);
    let e = outcome(&ev, b).error().clone();
    assert_eq!((e.code(), e.is_local()), (ErrorCode::BAD_REQUEST, true));
    assert!(e.message().contains("max_response_bytes"), "{e}");
    assert_eq!(
        p.client.conn.response_bytes(),
        600,
        "b's bytes were not kept"
    );
    // The rest of b's response is dropped quietly; a goes on and finishes.
    p.inject(Client, res_continue(b, 0, &[&pattern(100, 3)]));
    p.inject(Client, res_continue(a, 0, &[&pattern(100, 4)]));
    assert!(
        p.capture(Client).is_empty(),
        "nothing sent back: no protocol error"
    );
    let ev = p.events(Client);
    assert_eq!(summary(&ev), [format!("ResponseContinue({a})")]);
    assert_eq!(p.client.conn.response_bytes(), 0, "released when a ended");
    assert!(!p.client.is_closed());
    // A new call whose response fits works.
    let c = p.call(Client, 5000, ARGS);
    p.drive();
    p.respond(Server, c, &pattern(900, 5));
    p.drive();
    outcome(&p.events(Client), c).args();
    // b's id is remembered for the tombstone time, then forgotten (the
    // server never answered a and b itself: they were answered by hand).
    p.advance(Duration::from_secs(4));
    assert_eq!(p.client.conn.table_sizes(), [0; 5]);
}

// [CONN-23]
#[test]
pub(crate) fn a_streamed_response_counts_until_its_consumer_releases_it() {
    let mut p = Pair::connected(budget(1000), server_config());
    let a = p.call(Client, 5000, ARGS);
    p.client.conn.stream_response(a);
    p.drive();
    p.events(Server);
    p.inject(Client, call_res(a, MORE, &[b"", b"", &pattern(400, 1)]));
    p.inject(Client, res_continue(a, 0, &[&pattern(400, 2)]));
    p.events(Client);
    // The response is complete, but its 800 bytes are still the consumer's
    // to take: they still count.
    assert_eq!(p.client.conn.response_bytes(), 800);
    let b = p.call(Client, 5000, ARGS);
    p.drive();
    p.events(Server);
    p.inject(Client, call_res(b, 0, &[b"", b"", &pattern(300, 3)]));
    let e = outcome(&p.events(Client), b).error().clone();
    assert_eq!(e.code(), ErrorCode::BAD_REQUEST);
    // The consumer took 500: room for the next one.
    p.client.conn.release_response_bytes(500);
    let c = p.call(Client, 5000, ARGS);
    p.drive();
    p.events(Server);
    p.inject(Client, call_res(c, 0, &[b"", b"", &pattern(300, 4)]));
    outcome(&p.events(Client), c).args();
    assert_eq!(p.client.conn.response_bytes(), 300);
    p.client.conn.release_response_bytes(300);
    assert_eq!(p.client.conn.response_bytes(), 0);
}
