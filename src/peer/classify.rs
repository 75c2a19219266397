//! What a call's result says about a peer's health: the breaker's input,
//! kept apart so that the breaker itself stays a pure state machine over
//! [`Class`]es.

use crate::Error;
use crate::client::CallResponse;
use crate::frame::ErrorCode;

/// What a call's result says about the peer's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Class {
    /// The peer answered: counts toward closing, resets the failure streak.
    Success,
    /// The peer failed: counts toward opening.
    Failure,
    /// Says nothing about the peer (the caller gave up, the peer declined).
    Ignore,
}

/// Decides what counts as a failure. Implement it to count, say,
/// application errors as failures too.
pub trait Classifier: Send + Sync + 'static {
    /// Classifies one attempt's result. A failed connect arrives as a local
    /// network error (0x07).
    fn classify(&self, result: Result<&CallResponse, &Error>) -> Class;
}

/// The default classifier. Any response (application errors included) is a
/// success. Timeout, busy, network, unexpected and protocol errors are
/// failures. Bad request, cancelled, declined, unhealthy and unknown codes are
/// ignored: they say nothing about whether the peer is healthy.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultClassifier;

impl Classifier for DefaultClassifier {
    fn classify(&self, result: Result<&CallResponse, &Error>) -> Class {
        match result {
            Ok(_) => Class::Success,
            Err(e) => match e.code() {
                ErrorCode::TIMEOUT
                | ErrorCode::BUSY
                | ErrorCode::NETWORK
                | ErrorCode::UNEXPECTED
                | ErrorCode::PROTOCOL => Class::Failure,
                _ => Class::Ignore,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_classifier() {
        // [POOL-23]
        let c = DefaultClassifier;
        let resp = CallResponse {
            code: crate::frame::ResponseCode::ERROR,
            headers: crate::frame::TransportHeaders::new(),
            tracing: crate::frame::Tracing::default(),
            arg2: bytes::Bytes::new(),
            arg3: bytes::Bytes::new(),
        };
        assert_eq!(c.classify(Ok(&resp)), Class::Success);
        for (code, want) in [
            (ErrorCode::TIMEOUT, Class::Failure),
            (ErrorCode::BUSY, Class::Failure),
            (ErrorCode::NETWORK, Class::Failure),
            (ErrorCode::UNEXPECTED, Class::Failure),
            (ErrorCode::PROTOCOL, Class::Failure),
            (ErrorCode::BAD_REQUEST, Class::Ignore),
            (ErrorCode::CANCELLED, Class::Ignore),
            (ErrorCode::DECLINED, Class::Ignore),
            (ErrorCode::UNHEALTHY, Class::Ignore),
        ] {
            assert_eq!(
                c.classify(Err(&Error::from_peer(code, "x"))),
                want,
                "{code}"
            );
        }
    }
}
