//! The relay's forwarding engine without I/O (`RelayCore`): frames in,
//! frames out, `now` a parameter (`spec/12-relay.md`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tchan::frame::{
    ArgChunks, CallContinue, CallReq, CallRes, ChecksumField, ErrorCode, Flags, Frame, FrameHeader,
    MAX_FRAME_SIZE, ResponseCode, Tracing, TransportHeaders,
};
use tchan::relay::{Action, ConnId, Out, RelayConfig, RelayCore};

fn split(bytes: Bytes) -> (FrameHeader, Bytes) {
    let h = FrameHeader::parse(&bytes, MAX_FRAME_SIZE).unwrap().unwrap();
    (h, bytes.slice(16..))
}

fn req(id: u32, service: &str, flags: u8, ttl: u32, args: &[&[u8]]) -> Bytes {
    let mut th = TransportHeaders::new();
    th.push("cn", "caller").unwrap();
    th.push("as", "raw").unwrap();
    Frame::CallReq(CallReq {
        id,
        flags: Flags(flags),
        ttl,
        tracing: Tracing {
            span_id: 1,
            parent_id: 2,
            trace_id: 3,
            flags: 0,
        },
        service: Bytes::copy_from_slice(service.as_bytes()),
        headers: th,
        checksum: ChecksumField::NONE,
        args: ArgChunks::from_chunks(args.iter().map(|a| Bytes::copy_from_slice(a))),
    })
    .to_bytes()
    .unwrap()
}

fn cont(id: u32, flags: u8, args: &[&[u8]]) -> Bytes {
    Frame::CallReqContinue(CallContinue {
        id,
        flags: Flags(flags),
        checksum: ChecksumField::NONE,
        args: ArgChunks::from_chunks(args.iter().map(|a| Bytes::copy_from_slice(a))),
    })
    .to_bytes()
    .unwrap()
}

fn res(id: u32, flags: u8, args: &[&[u8]]) -> Bytes {
    Frame::CallRes(CallRes {
        id,
        flags: Flags(flags),
        code: ResponseCode::OK,
        tracing: Tracing::default(),
        headers: TransportHeaders::new(),
        checksum: ChecksumField::NONE,
        args: ArgChunks::from_chunks(args.iter().map(|a| Bytes::copy_from_slice(a))),
    })
    .to_bytes()
    .unwrap()
}

/// The frames queued for `conn`, decoded.
fn take(core: &mut RelayCore, conn: ConnId) -> Vec<Frame> {
    let mut q = VecDeque::new();
    core.swap_output(conn, &mut q);
    let n: usize = q.iter().map(Out::len).sum();
    core.on_written(conn, n);
    q.iter()
        .map(|o| {
            let mut b = BytesMut::new();
            for p in o.parts() {
                b.extend_from_slice(p);
            }
            Frame::decode(b.freeze()).unwrap()
        })
        .collect()
}

fn take_raw(core: &mut RelayCore, conn: ConnId) -> Vec<Out> {
    let mut q = VecDeque::new();
    core.swap_output(conn, &mut q);
    let n: usize = q.iter().map(Out::len).sum();
    core.on_written(conn, n);
    q.into_iter().collect()
}

fn error_of(f: &Frame) -> (u32, ErrorCode, String) {
    match f {
        Frame::Error(e) => (
            e.id,
            e.code,
            String::from_utf8_lossy(&e.message).into_owned(),
        ),
        other => panic!("expected an error frame, got {other:?}"),
    }
}

/// A core with a caller connection and a destination connection already up
/// for `svc` at `10.0.0.2:4000`.
fn setup(config: RelayConfig) -> (RelayCore, ConnId, ConnId, Instant) {
    let t0 = tokio::time::Instant::now().into_std();
    let mut core = RelayCore::new(config);
    let caller = core.add_connection("10.0.0.1:5000");
    let dst = core.add_connection("10.0.0.2:4000");
    core.set_routes([("svc".to_owned(), vec!["10.0.0.2:4000".to_owned()])]);
    (core, caller, dst, t0)
}

fn feed(core: &mut RelayCore, conn: ConnId, frame: Bytes, now: Instant) {
    let (h, p) = split(frame);
    core.on_frame(conn, h, p, now);
}

#[test]
fn forwarded_frames_differ_only_in_id_and_ttl_and_share_the_bytes_that_arrived() {
    // [RELAY-3]
    let (mut core, caller, dst, t0) = setup(RelayConfig::default());
    let first = req(77, "svc", 0x01, 5000, &[b"method", b"arg2"]);
    let (h, p) = split(first.clone());
    core.on_frame(caller, h, p.clone(), t0);
    let out = take_raw(&mut core, dst);
    assert_eq!(out.len(), 1);
    let Out::Forward(f) = &out[0] else {
        panic!("expected a forwarded frame")
    };
    // Everything after the ttl is the same memory, not a copy.
    assert_eq!(f.rest().as_ptr(), p[5..].as_ptr());
    let mut got = BytesMut::new();
    got.extend_from_slice(f.head());
    got.extend_from_slice(f.rest());
    let new_id = u32::from_be_bytes(got[4..8].try_into().unwrap());
    let mut want = first.to_vec();
    want[4..8].copy_from_slice(&new_id.to_be_bytes());
    assert_eq!(
        &got[..],
        &want[..],
        "same frame but for the id (ttl unchanged at t0)"
    );
    // A continuation and the response frames map through.
    feed(&mut core, caller, cont(77, 0, &[b"", b"arg3"]), t0);
    let c = take(&mut core, dst);
    assert_eq!(c[0].id(), new_id);
    feed(&mut core, dst, res(new_id, 0x01, &[b"", b"r2"]), t0);
    feed(
        &mut core,
        dst,
        res_cont(new_id, 0, &[b"r2 more", b"r3"]),
        t0,
    );
    let back = take(&mut core, caller);
    assert_eq!(back.len(), 2);
    assert!(back.iter().all(|f| f.id() == 77));
    let s = core.sizes();
    assert_eq!(
        (s.calls, s.mappings),
        (0, 0),
        "the last response frame ends the call"
    );
}

fn res_cont(id: u32, flags: u8, args: &[&[u8]]) -> Bytes {
    Frame::CallResContinue(CallContinue {
        id,
        flags: Flags(flags),
        checksum: ChecksumField::NONE,
        args: ArgChunks::from_chunks(args.iter().map(|a| Bytes::copy_from_slice(a))),
    })
    .to_bytes()
    .unwrap()
}

#[test]
fn the_ttl_is_lowered_by_the_time_spent_connecting_and_clamped() {
    // [RELAY-3] [RELAY-8] [DEV-24]
    let mut config = RelayConfig::default();
    config.max_ttl = Duration::from_secs(2);
    let t0 = tokio::time::Instant::now().into_std();
    let mut core = RelayCore::new(config);
    let caller = core.add_connection("10.0.0.1:5000");
    core.set_routes([("svc".to_owned(), vec!["10.0.0.9:4000".to_owned()])]);
    feed(
        &mut core,
        caller,
        req(1, "svc", 0, 1000, &[b"m", b"", b""]),
        t0,
    );
    feed(
        &mut core,
        caller,
        req(2, "svc", 0, 60_000, &[b"m", b"", b""]),
        t0,
    );
    assert_eq!(
        core.poll_action(),
        Some(Action::Dial("10.0.0.9:4000".into()))
    );
    assert_eq!(core.poll_action(), None, "one dial for both calls");
    let t1 = t0 + Duration::from_millis(250);
    let dst = core.add_connection("10.0.0.9:4000");
    core.on_connected("10.0.0.9:4000", dst, t1);
    let out = take(&mut core, dst);
    let ttls: Vec<u32> = out
        .iter()
        .map(|f| match f {
            Frame::CallReq(r) => r.ttl,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ttls, [750, 2000]);
}

#[test]
fn a_call_whose_peer_cannot_be_reached_tries_another_then_fails_with_network_error() {
    // [RELAY-8]
    let t0 = tokio::time::Instant::now().into_std();
    let mut core = RelayCore::new(RelayConfig::default());
    let caller = core.add_connection("10.0.0.1:5000");
    core.set_routes([(
        "svc".to_owned(),
        vec!["10.0.0.8:1".to_owned(), "10.0.0.9:1".to_owned()],
    )]);
    feed(
        &mut core,
        caller,
        req(1, "svc", 0, 1000, &[b"m", b"", b""]),
        t0,
    );
    let Some(Action::Dial(first)) = core.poll_action() else {
        panic!("expected a dial")
    };
    core.on_connect_failed(&first, "refused", t0);
    let Some(Action::Dial(second)) = core.poll_action() else {
        panic!("expected a second dial")
    };
    assert_ne!(first, second, "another peer");
    core.on_connect_failed(&second, "refused", t0);
    // Both tried; the third attempt may go back to either; when it fails
    // too, the caller gets a network error.
    while let Some(Action::Dial(p)) = core.poll_action() {
        core.on_connect_failed(&p, "refused", t0);
    }
    let out = take(&mut core, caller);
    let (id, code, msg) = error_of(&out[0]);
    assert_eq!((id, code), (1, ErrorCode::NETWORK));
    assert!(msg.contains("refused"), "{msg}");
    assert_eq!(core.sizes().calls, 0);
}

#[test]
fn malformed_and_unroutable_call_reqs_get_an_error_frame_for_their_id() {
    // [RELAY-2] [RELAY-8] [DEV-24]
    let (mut core, caller, dst, t0) = setup(RelayConfig::default());
    // Cut inside its headers: does not decode.
    let whole = req(5, "svc", 0, 1000, &[b"m", b"", b""]);
    let (h, p) = split(whole);
    let mut cut = BytesMut::from(&p[..20]);
    let mut hb = h;
    hb.size = 16 + 20;
    core.on_frame(caller, hb, cut.split().freeze(), t0);
    let (id, code, _) = error_of(&take(&mut core, caller)[0]);
    assert_eq!((id, code), (5, ErrorCode::BAD_REQUEST));
    // Unknown service: declined, naming it.
    feed(
        &mut core,
        caller,
        req(6, "nobody", 0, 1000, &[b"m", b"", b""]),
        t0,
    );
    let (id, code, msg) = error_of(&take(&mut core, caller)[0]);
    assert_eq!((id, code), (6, ErrorCode::DECLINED));
    assert!(msg.contains("nobody"));
    // Arg1 split over frames: forwarded with the first frame, refused at the
    // second, and the destination told.
    feed(&mut core, caller, req(7, "svc", 0x01, 1000, &[b"meth"]), t0);
    let fwd = take(&mut core, dst);
    assert_eq!(fwd.len(), 1);
    feed(&mut core, caller, cont(7, 0, &[b"od", b"", b""]), t0);
    let (id, code, msg) = error_of(&take(&mut core, caller)[0]);
    assert_eq!((id, code), (7, ErrorCode::BAD_REQUEST));
    assert!(msg.contains("arg1"), "{msg}");
    assert!(matches!(take(&mut core, dst)[0], Frame::Cancel(_)));
    // Arg1 that ended exactly at the first frame's end is fine.
    feed(
        &mut core,
        caller,
        req(8, "svc", 0x01, 1000, &[b"method"]),
        t0,
    );
    feed(&mut core, caller, cont(8, 0, &[b"", b"", b""]), t0);
    assert_eq!(take(&mut core, dst).len(), 2);
    assert!(take(&mut core, caller).is_empty());
    // Frames of the refused calls are dropped as late, not unknown.
    feed(&mut core, caller, cont(7, 0, &[b"more"]), t0);
    assert!(take(&mut core, dst).is_empty());
    assert_eq!(core.counters().late_dropped, 1);
}

#[test]
fn a_full_destination_queue_answers_busy_without_blocking_other_calls() {
    // [RELAY-9]
    let mut config = RelayConfig::default();
    config.max_queued_bytes = 4096;
    let (mut core, caller, dst, t0) = setup(config);
    core.set_routes([
        ("svc".to_owned(), vec!["10.0.0.2:4000".to_owned()]),
        ("other".to_owned(), vec!["10.0.0.3:4000".to_owned()]),
    ]);
    let other = core.add_connection("10.0.0.3:4000");
    let big = vec![b'x'; 3000];
    // Nothing is written to dst: its queue fills.
    feed(
        &mut core,
        caller,
        req(1, "svc", 0, 1000, &[b"m", b"", &big]),
        t0,
    );
    feed(
        &mut core,
        caller,
        req(2, "svc", 0, 1000, &[b"m", b"", &big]),
        t0,
    );
    let (id, code, msg) = error_of(&take(&mut core, caller)[0]);
    assert_eq!((id, code), (2, ErrorCode::BUSY));
    assert!(msg.contains("write queue"), "{msg}");
    // A call to another destination on the same caller connection goes on.
    feed(
        &mut core,
        caller,
        req(3, "other", 0, 1000, &[b"m", b"", &big]),
        t0,
    );
    assert_eq!(take(&mut core, other).len(), 1);
    // Once dst's socket takes the queue, calls to it go again.
    let _ = take(&mut core, dst);
    feed(
        &mut core,
        caller,
        req(4, "svc", 0, 1000, &[b"m", b"", &big]),
        t0,
    );
    assert_eq!(take(&mut core, dst).len(), 1);
}

#[test]
fn timed_out_calls_are_answered_and_their_tombstones_are_bounded() {
    // [RELAY-5]
    let mut config = RelayConfig::default();
    config.max_tombstones = 10;
    let (mut core, caller, dst, t0) = setup(config);
    for id in 1..=20 {
        feed(
            &mut core,
            caller,
            req(id, "svc", 0, 100, &[b"m", b"", b""]),
            t0,
        );
    }
    let fwd = take(&mut core, dst);
    assert_eq!(fwd.len(), 20);
    assert_eq!(core.poll_timeout(), Some(t0 + Duration::from_millis(100)));
    core.handle_timeout(t0 + Duration::from_millis(100));
    let out = take(&mut core, caller);
    assert_eq!(out.len(), 20);
    assert!(out.iter().all(|f| error_of(f).1 == ErrorCode::TIMEOUT));
    let s = core.sizes();
    assert_eq!((s.calls, s.mappings), (0, 0));
    assert!(s.tombstones <= 20, "at most 10 a direction: {s:?}");
    // A late response for the newest is dropped quietly.
    let last = fwd[19].id();
    feed(
        &mut core,
        dst,
        res(last, 0, &[b"", b"", b""]),
        t0 + Duration::from_millis(150),
    );
    assert!(take(&mut core, caller).is_empty());
    assert_eq!(core.counters().late_dropped, 1);
    // After the tombstone ttl, none are left.
    core.handle_timeout(t0 + Duration::from_secs(10));
    assert_eq!(core.sizes().tombstones, 0);
}

#[test]
fn advertisements_route_calls_back_on_the_advertisers_connection_and_lapse() {
    // [RELAY-10] [RELAY-11]
    let mut config = RelayConfig::default();
    config.advert_ttl = Duration::from_secs(150);
    let t0 = tokio::time::Instant::now().into_std();
    let mut core = RelayCore::new(config);
    let service = core.add_connection("10.0.0.5:7000");
    let caller = core.add_connection("10.0.0.1:5000");
    let body = br#"{"services":[{"serviceName":"adsvc","cost":0}]}"#;
    let mut th = TransportHeaders::new();
    th.push("as", "json").unwrap();
    let ad = Frame::CallReq(CallReq {
        id: 1,
        flags: Flags(0),
        ttl: 1000,
        tracing: Tracing::default(),
        service: Bytes::from_static(b"hyperbahn"),
        headers: th,
        checksum: ChecksumField::NONE,
        args: ArgChunks::from_chunks([
            Bytes::from_static(b"ad"),
            Bytes::from_static(b"null"),
            Bytes::from_static(body),
        ]),
    })
    .to_bytes()
    .unwrap();
    feed(&mut core, service, ad, t0);
    let out = take(&mut core, service);
    let Frame::CallRes(r) = &out[0] else {
        panic!("{:?}", out[0])
    };
    let args: Vec<Bytes> = r.args.iter().collect();
    assert_eq!(&args[2][..], br#"{"connectionCount":1}"#);
    assert_eq!(core.peers_of(b"adsvc", t0), ["10.0.0.5:7000"]);
    // A call for it goes on the advertiser's own connection: no dial.
    feed(
        &mut core,
        caller,
        req(9, "adsvc", 0, 1000, &[b"m", b"", b""]),
        t0,
    );
    assert_eq!(core.poll_action(), None);
    assert_eq!(take(&mut core, service).len(), 1);
    // Without renewal it lapses.
    core.handle_timeout(t0 + Duration::from_secs(151));
    assert!(
        core.peers_of(b"adsvc", t0 + Duration::from_secs(151))
            .is_empty()
    );
}

#[test]
fn pings_are_answered_and_init_after_the_handshake_is_fatal() {
    let (mut core, caller, _dst, t0) = setup(RelayConfig::default());
    feed(
        &mut core,
        caller,
        Frame::PingReq(tchan::frame::Ping::new(42))
            .to_bytes()
            .unwrap(),
        t0,
    );
    let out = take(&mut core, caller);
    assert!(matches!(&out[0], Frame::PingRes(p) if p.id == 42));
    let init = Frame::InitReq(tchan::frame::Init {
        id: 1,
        version: 2,
        headers: tchan::frame::InitHeaders::from_pairs([
            ("host_port", "a:1"),
            ("process_name", "p"),
        ])
        .unwrap(),
        trailing: Bytes::new(),
    })
    .to_bytes()
    .unwrap();
    feed(&mut core, caller, init, t0);
    let (_, code, _) = error_of(&take(&mut core, caller)[0]);
    assert_eq!(code, ErrorCode::PROTOCOL);
    assert_eq!(core.poll_action(), Some(Action::Close(caller)));
}

#[test]
fn a_destination_that_drops_opens_neither_the_edge_nor_the_other_peers() {
    // [RELAY-14] [RELAY-7]
    let t0 = tokio::time::Instant::now().into_std();
    let mut core = RelayCore::new(RelayConfig::default());
    let caller = core.add_connection("10.0.0.1:5000");
    let a = core.add_connection("10.0.0.2:4000");
    let b = core.add_connection("10.0.0.3:4000");
    core.set_routes([(
        "svc".to_owned(),
        vec!["10.0.0.2:4000".to_owned(), "10.0.0.3:4000".to_owned()],
    )]);
    for id in 1..=20 {
        feed(
            &mut core,
            caller,
            req(id, "svc", 0, 10_000, &[b"m", b"", b""]),
            t0,
        );
    }
    let on_a = take(&mut core, a).len();
    assert!(on_a >= 5, "enough calls on a to open a breaker: {on_a}");
    let _ = take(&mut core, b);
    core.on_closed(a, t0);
    let failed = take(&mut core, caller);
    assert_eq!(failed.len(), on_a);
    assert!(failed.iter().all(|f| error_of(f).1 == ErrorCode::NETWORK));
    // The edge stays closed: new calls go to b, none is declined.
    for id in 100..120 {
        feed(
            &mut core,
            caller,
            req(id, "svc", 0, 10_000, &[b"m", b"", b""]),
            t0,
        );
    }
    assert!(take(&mut core, caller).is_empty(), "no call refused");
    assert_eq!(take(&mut core, b).len(), 20);
}

fn ad_frame(id: u32, flags: u8, services: &[&str]) -> Bytes {
    let body = format!(
        "{{\"services\":[{}]}}",
        services
            .iter()
            .map(|s| format!("{{\"serviceName\":\"{s}\",\"cost\":0}}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut th = TransportHeaders::new();
    th.push("as", "json").unwrap();
    let args: Vec<Bytes> = if flags & 1 == 1 {
        vec![Bytes::from_static(b"ad")]
    } else {
        vec![
            Bytes::from_static(b"ad"),
            Bytes::from_static(b"null"),
            Bytes::from(body),
        ]
    };
    Frame::CallReq(CallReq {
        id,
        flags: Flags(flags),
        ttl: 1000,
        tracing: Tracing::default(),
        service: Bytes::from_static(b"hyperbahn"),
        headers: th,
        checksum: ChecksumField::NONE,
        args: ArgChunks::from_chunks(args),
    })
    .to_bytes()
    .unwrap()
}

#[test]
fn calls_local_calls_and_advertisements_are_bounded() {
    // [RELAY-9] [RELAY-10]
    let mut config = RelayConfig::default();
    config.max_calls_per_connection = 2;
    config.max_local_calls = 1;
    config.max_advertisements = 1;
    let (mut core, caller, dst, t0) = setup(config);
    feed(
        &mut core,
        caller,
        req(1, "svc", 0, 1000, &[b"m", b"", b""]),
        t0,
    );
    feed(
        &mut core,
        caller,
        req(2, "svc", 0, 1000, &[b"m", b"", b""]),
        t0,
    );
    feed(
        &mut core,
        caller,
        req(3, "svc", 0, 1000, &[b"m", b"", b""]),
        t0,
    );
    assert_eq!(take(&mut core, dst).len(), 2);
    let (id, code, _) = error_of(&take(&mut core, caller)[0]);
    assert_eq!((id, code), (3, ErrorCode::BUSY));
    // A second unfinished call to the relay itself on one connection.
    let svc = core.add_connection("10.0.0.7:7000");
    feed(&mut core, svc, ad_frame(1, 0x01, &[]), t0);
    feed(&mut core, svc, ad_frame(2, 0x01, &[]), t0);
    let (id, code, _) = error_of(&take(&mut core, svc)[0]);
    assert_eq!((id, code), (2, ErrorCode::BUSY));
    // One advertisement at most: the first is taken, a second service busy.
    let other = core.add_connection("10.0.0.8:7000");
    feed(&mut core, other, ad_frame(1, 0, &["one"]), t0);
    assert!(matches!(take(&mut core, other)[0], Frame::CallRes(_)));
    feed(&mut core, other, ad_frame(2, 0, &["two"]), t0);
    let (_, code, msg) = error_of(&take(&mut core, other)[0]);
    assert_eq!(code, ErrorCode::BUSY, "{msg}");
    assert!(core.peers_of(b"two", t0).is_empty());
    // Renewing the one held is fine.
    feed(&mut core, other, ad_frame(3, 0, &["one"]), t0);
    assert!(matches!(take(&mut core, other)[0], Frame::CallRes(_)));
}

#[test]
fn a_call_that_ends_while_waiting_for_a_connect_leaves_nothing_behind_for_the_next() {
    // [RELAY-8] the ended call's slot is reused: the connect it waited for
    // must not send (or re-route) the call that took the slot.
    let t0 = tokio::time::Instant::now().into_std();
    let mut core = RelayCore::new(RelayConfig::default());
    let caller = core.add_connection("10.0.0.1:5000");
    core.set_routes([
        ("slow".to_owned(), vec!["10.0.0.9:4000".to_owned()]),
        ("other".to_owned(), vec!["10.0.0.8:4000".to_owned()]),
    ]);
    feed(
        &mut core,
        caller,
        req(1, "slow", 0, 100, &[b"m", b"", b""]),
        t0,
    );
    assert_eq!(
        core.poll_action(),
        Some(Action::Dial("10.0.0.9:4000".into()))
    );
    // It times out while the dial is under way.
    let t1 = t0 + Duration::from_millis(150);
    core.handle_timeout(t1);
    let (id, code, _) = error_of(&take(&mut core, caller)[0]);
    assert_eq!((id, code), (1, ErrorCode::TIMEOUT));
    // The next call takes the slot and waits for another peer.
    feed(
        &mut core,
        caller,
        req(2, "other", 0, 5000, &[b"m", b"", b""]),
        t1,
    );
    assert_eq!(
        core.poll_action(),
        Some(Action::Dial("10.0.0.8:4000".into()))
    );
    // The first dial ends, either way: the second call is not touched.
    let slow = core.add_connection("10.0.0.9:4000");
    core.on_connected("10.0.0.9:4000", slow, t1);
    assert!(
        take(&mut core, slow).is_empty(),
        "a call was sent to the wrong peer"
    );
    core.on_connect_failed("10.0.0.9:4000", "refused", t1);
    assert_eq!(core.poll_action(), None, "the second call was re-routed");
    let other = core.add_connection("10.0.0.8:4000");
    core.on_connected("10.0.0.8:4000", other, t1);
    let sent = take(&mut core, other);
    assert!(
        matches!(sent.as_slice(), [Frame::CallReq(r)] if r.service == "other"),
        "{sent:?}"
    );
}
