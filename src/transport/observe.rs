//! Observability: a `tracing` span per call and counters and latency
//! histograms through the `metrics` facade, named after TChannel's metrics
//! conventions (`outbound.calls.*`, `inbound.calls.*`). Labels: `service`,
//! `method` (arg1, lossy UTF-8) and `peer` (the peer's `host_port`); system
//! errors add `type` (the error code's name).
//!
//! Without an installed `metrics` recorder the calls are no-ops; with one,
//! each call costs a few label allocations, so a channel can turn metrics off
//! (`ChannelConfig::metrics`).

use std::time::Duration;

use metrics::{counter, histogram};

use crate::frame::ResponseCode;
use crate::proto::CallError;

/// The labels of one call.
#[derive(Debug, Clone)]
pub(crate) struct CallLabels {
    pub(crate) service: String,
    pub(crate) method: String,
    pub(crate) peer: String,
}

impl CallLabels {
    pub(crate) fn new(service: &[u8], method: &[u8], peer: &str) -> CallLabels {
        CallLabels {
            service: String::from_utf8_lossy(service).into_owned(),
            method: String::from_utf8_lossy(method).into_owned(),
            peer: peer.to_owned(),
        }
    }
}

fn labels(l: &CallLabels) -> [(&'static str, String); 3] {
    [
        ("service", l.service.clone()),
        ("method", l.method.clone()),
        ("peer", l.peer.clone()),
    ]
}

/// Records the start of an outbound call.
pub(crate) fn outbound_sent(l: &CallLabels) {
    counter!("outbound.calls.send", &labels(l)).increment(1);
}

/// Records the end of an outbound call.
pub(crate) fn outbound_done(l: &CallLabels, r: Result<ResponseCode, &CallError>, took: Duration) {
    record("outbound", l, r, took);
}

/// Records an inbound call reaching its handler.
pub(crate) fn inbound_received(l: &CallLabels) {
    counter!("inbound.calls.recvd", &labels(l)).increment(1);
}

/// Records the end of an inbound call.
pub(crate) fn inbound_done(l: &CallLabels, r: Result<ResponseCode, &CallError>, took: Duration) {
    record("inbound", l, r, took);
}

fn record(dir: &str, l: &CallLabels, r: Result<ResponseCode, &CallError>, took: Duration) {
    let base = labels(l);
    match (dir, r) {
        ("outbound", Ok(c)) if c.is_ok() => counter!("outbound.calls.success", &base).increment(1),
        ("inbound", Ok(c)) if c.is_ok() => counter!("inbound.calls.success", &base).increment(1),
        ("outbound", Ok(_)) => counter!("outbound.calls.app-errors", &base).increment(1),
        ("inbound", Ok(_)) => counter!("inbound.calls.app-errors", &base).increment(1),
        (_, Err(e)) => {
            let [a, b, c] = base.clone();
            let with_type = [a, b, c, ("type", e.code.name().to_string())];
            if dir == "outbound" {
                counter!("outbound.calls.system-errors", &with_type).increment(1);
            } else {
                counter!("inbound.calls.system-errors", &with_type).increment(1);
            }
        }
        _ => {}
    }
    if dir == "outbound" {
        histogram!("outbound.calls.latency", &base).record(took.as_secs_f64() * 1000.0);
    } else {
        histogram!("inbound.calls.latency", &base).record(took.as_secs_f64() * 1000.0);
    }
}
