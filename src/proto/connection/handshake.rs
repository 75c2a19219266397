//! The init handshake: init req / init res, and the state it leaves.

use std::time::Instant;

use bytes::Bytes;

use super::*;

impl Connection {
    pub(super) fn init_headers(&self) -> InitHeaders {
        // [INIT-2] host_port and process_name required; the others sent too.
        InitHeaders::from_pairs([
            (HOST_PORT, self.config.host_port.as_str()),
            (PROCESS_NAME, self.config.process_name.as_str()),
            (TCHANNEL_LANGUAGE, "rust"),
            (TCHANNEL_LANGUAGE_VERSION, rustc_version()),
            (TCHANNEL_VERSION, env!("CARGO_PKG_VERSION")),
        ])
        .unwrap_or_default()
    }

    pub(super) fn handle_init_req(&mut self, now: Instant, frame: Frame) {
        let Frame::InitReq(init) = frame else {
            // [CONN-3] the first frame must be init req.
            return self.fatal(
                NO_MESSAGE_ID,
                Tracing::default(),
                format!(
                    "expected init req, got a frame of type {}",
                    frame.frame_type()
                ),
            );
        };
        if init.version < PROTOCOL_VERSION {
            return self.fatal(
                init.id,
                Tracing::default(),
                format!("unsupported protocol version {}", init.version),
            );
        }
        if let Some(h) = init.missing_required_header() {
            return self.fatal(init.id, Tracing::default(), format!("init req lacks {h}"));
        }
        let res = Init {
            id: init.id,
            version: PROTOCOL_VERSION,
            headers: self.init_headers(),
            trailing: Bytes::new(),
        };
        self.queue(Frame::InitRes(res));
        self.ready(now, &init);
    }

    pub(super) fn handle_init_res(&mut self, now: Instant, id: u32, frame: Frame) {
        match frame {
            Frame::InitRes(init) if init.id == id && init.version == PROTOCOL_VERSION => {
                if let Some(h) = init.missing_required_header() {
                    return self.fatal(init.id, Tracing::default(), format!("init res lacks {h}"));
                }
                self.ready(now, &init);
            }
            Frame::InitRes(init) => self.fatal(
                init.id,
                Tracing::default(),
                format!("bad init res (id {}, version {})", init.id, init.version),
            ),
            Frame::Error(e) => {
                let err =
                    Error::from_peer(e.code, String::from_utf8_lossy(&e.message).into_owned());
                self.close(CloseReason::HandshakeFailed(err));
            }
            other => self.fatal(
                NO_MESSAGE_ID,
                Tracing::default(),
                format!(
                    "expected init res, got a frame of type {}",
                    other.frame_type()
                ),
            ),
        }
    }

    pub(super) fn ready(&mut self, now: Instant, init: &Init) {
        let get = |k: &str| {
            String::from_utf8_lossy(init.headers.get(k.as_bytes()).unwrap_or_default()).into_owned()
        };
        let info = PeerInfo {
            host_port: get(HOST_PORT),
            process_name: get(PROCESS_NAME),
            headers: init.headers.clone(),
        };
        self.peer = Some(info.clone());
        self.state = State::Ready;
        self.handshake_deadline = None;
        self.keepalive_next = self.config.keepalive.map(|k| now + k.interval);
        self.events.push_back(Event::Ready(info));
    }
}
