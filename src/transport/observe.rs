//! Observability: a `tracing` span per call and counters and latency
//! histograms through the `metrics` facade, named after TChannel's metrics
//! conventions (`outbound.calls.*`, `inbound.calls.*`). Labels: `service`,
//! `method` (arg1, lossy UTF-8) and `peer` (the peer's `host_port`, or its
//! socket address when it does not listen); system errors add `type` (the
//! error code's name).
//!
//! Metric handles are registered once per (service, method) on each
//! connection and kept, so a call costs a map lookup and a few atomic adds,
//! not label allocations. Without an installed recorder the handles are
//! no-ops. A channel can turn metrics off (`ChannelConfig::metrics`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
#[cfg(feature = "metrics")]
use metrics::{Counter, Histogram, counter, histogram};

use crate::Error;
use crate::frame::ResponseCode;
use crate::util::HashMap;

/// Most (service, method) pairs cached per connection and direction; calls
/// beyond it are recorded without caching.
const MAX_CACHED: usize = 256;

/// The metric handles of one (service, method, peer) in one direction.
#[cfg(feature = "metrics")]
pub(crate) struct CallMetrics {
    outbound: bool,
    labels: [(&'static str, String); 3],
    started: Counter,
    success: Counter,
    app_errors: Counter,
    latency: Histogram,
}

/// Without the `metrics` feature: nothing to record.
#[cfg(not(feature = "metrics"))]
pub(crate) struct CallMetrics;

#[cfg(not(feature = "metrics"))]
impl CallMetrics {
    pub(crate) fn new(
        _outbound: bool,
        _service: &[u8],
        _method: &[u8],
        _peer: &str,
    ) -> CallMetrics {
        CallMetrics
    }

    pub(crate) fn started(&self) {}

    pub(crate) fn done(&self, _r: Result<ResponseCode, &Error>, _took: Duration) {}
}

#[cfg(feature = "metrics")]
impl CallMetrics {
    pub(crate) fn new(outbound: bool, service: &[u8], method: &[u8], peer: &str) -> CallMetrics {
        let labels = [
            ("service", String::from_utf8_lossy(service).into_owned()),
            ("method", String::from_utf8_lossy(method).into_owned()),
            ("peer", peer.to_owned()),
        ];
        let (started, success, app_errors, latency) = if outbound {
            (
                counter!("outbound.calls.send", &labels),
                counter!("outbound.calls.success", &labels),
                counter!("outbound.calls.app-errors", &labels),
                histogram!("outbound.calls.latency", &labels),
            )
        } else {
            (
                counter!("inbound.calls.recvd", &labels),
                counter!("inbound.calls.success", &labels),
                counter!("inbound.calls.app-errors", &labels),
                histogram!("inbound.calls.latency", &labels),
            )
        };
        CallMetrics {
            outbound,
            labels,
            started,
            success,
            app_errors,
            latency,
        }
    }

    /// Records a call starting (sent, or received by its handler).
    pub(crate) fn started(&self) {
        self.started.increment(1);
    }

    /// Records a call's end.
    pub(crate) fn done(&self, r: Result<ResponseCode, &Error>, took: Duration) {
        match r {
            Ok(c) if c.is_ok() => self.success.increment(1),
            Ok(_) => self.app_errors.increment(1),
            Err(e) => {
                // Rare: registered on the spot with the extra `type` label.
                let [a, b, c] = self.labels.clone();
                let labels = [a, b, c, ("type", e.code().name().to_string())];
                if self.outbound {
                    counter!("outbound.calls.system-errors", &labels).increment(1);
                } else {
                    counter!("inbound.calls.system-errors", &labels).increment(1);
                }
            }
        }
        self.latency.record(took.as_secs_f64() * 1000.0);
    }
}

/// Cached handles for one connection and direction, found by a hash of
/// (service, method) without building a key.
#[derive(Default)]
pub(crate) struct MetricsCache {
    hasher: foldhash::fast::RandomState,
    map: HashMap<u64, Vec<(Bytes, Bytes, Arc<CallMetrics>)>>,
    len: usize,
}

impl MetricsCache {
    /// The handles for (service, method) towards/from `peer`.
    pub(crate) fn get(
        &mut self,
        outbound: bool,
        service: &Bytes,
        method: &Bytes,
        peer: impl FnOnce() -> String,
    ) -> Arc<CallMetrics> {
        use std::hash::BuildHasher;
        let h = self.hasher.hash_one((&service[..], &method[..]));
        if let Some(hit) = self
            .map
            .get(&h)
            .and_then(|v| v.iter().find(|(s, m, _)| s == service && m == method))
        {
            return hit.2.clone();
        }
        let m = Arc::new(CallMetrics::new(outbound, service, method, &peer()));
        if self.len < MAX_CACHED {
            self.len += 1;
            self.map
                .entry(h)
                .or_default()
                .push((service.clone(), method.clone(), m.clone()));
        }
        m
    }
}
