//! The relay's metrics through the `metrics` facade (when the `metrics`
//! feature is on and [`super::RelayConfig::metrics`] is set).
//!
//! Named after tchannel-go's relay stats (`relay` calls by outcome, with the
//! caller, service and endpoint as tags):
//! `tchan_relay_calls_total{caller,service,endpoint,outcome}`,
//! `tchan_relay_request_bytes_total{service}`,
//! `tchan_relay_response_bytes_total{service}` and
//! `tchan_relay_latency_seconds{service,endpoint}` (a histogram).

use std::time::Duration;

use super::policy::EdgeKey;

#[cfg(feature = "metrics")]
pub(crate) fn call(
    edge: &EdgeKey,
    outcome: &'static str,
    bytes_in: u64,
    bytes_out: u64,
    latency: Duration,
) {
    let caller = String::from_utf8_lossy(edge.caller()).into_owned();
    let service = String::from_utf8_lossy(edge.service()).into_owned();
    let endpoint = String::from_utf8_lossy(edge.endpoint()).into_owned();
    metrics::counter!(
        "tchan_relay_calls_total",
        "caller" => caller,
        "service" => service.clone(),
        "endpoint" => endpoint.clone(),
        "outcome" => outcome
    )
    .increment(1);
    metrics::counter!("tchan_relay_request_bytes_total", "service" => service.clone())
        .increment(bytes_in);
    metrics::counter!("tchan_relay_response_bytes_total", "service" => service.clone())
        .increment(bytes_out);
    metrics::histogram!("tchan_relay_latency_seconds", "service" => service, "endpoint" => endpoint)
        .record(latency.as_secs_f64());
}

#[cfg(not(feature = "metrics"))]
pub(crate) fn call(_: &EdgeKey, _: &'static str, _: u64, _: u64, _: Duration) {}
