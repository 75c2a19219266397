//! The one error type of tchan.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::frame::{ErrorCode, RetryMeaning};

/// Why a call failed, or connecting, listening, or configuring did.
///
/// Every error carries a TChannel error code: the one of an error frame the
/// peer sent, or the one tchan chose for a failure it found itself — a
/// deadline that passed is [`ErrorCode::TIMEOUT`], a connection that failed
/// or closed is [`ErrorCode::NETWORK`], an argument tchan cannot send is
/// [`ErrorCode::BAD_REQUEST`], a full connection is [`ErrorCode::BUSY`].
/// [`Error::is_local`] tells the two origins apart. An application error (a
/// call res with code 0x01) is not an `Error`: it is a response.
///
/// Cheap to clone (shared) and small to return (one pointer).
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

struct Inner {
    code: ErrorCode,
    message: Cow<'static, str>,
    local: bool,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// An error tchan (or a handler) decides on: for a handler, the error
    /// frame to answer with.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Error {
        Error::build(code, message.into(), true, None)
    }

    /// An error the peer sent (an error frame).
    pub fn from_peer(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Error {
        Error::build(code, message.into(), false, None)
    }

    /// This error, caused by `source` ([`std::error::Error::source`]).
    pub fn with_source(self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        let (code, message, local) = match Arc::try_unwrap(self.inner) {
            Ok(i) => (i.code, i.message, i.local),
            Err(shared) => (shared.code, shared.message.clone(), shared.local),
        };
        Error::build(code, message, local, Some(Box::new(source)))
    }

    fn build(
        code: ErrorCode,
        message: Cow<'static, str>,
        local: bool,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error {
            inner: Arc::new(Inner {
                code,
                message,
                local,
                source,
            }),
        }
    }

    /// The TChannel error code.
    pub fn code(&self) -> ErrorCode {
        self.inner.code
    }

    /// The message: the error frame's, or tchan's own words.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// True when tchan decided this here (a deadline that passed before an
    /// answer, a connection that closed, a limit), false when the peer sent it.
    pub fn is_local(&self) -> bool {
        self.inner.local
    }

    /// The call ran out of time (0x01), here or at the peer.
    pub fn is_timeout(&self) -> bool {
        self.code() == ErrorCode::TIMEOUT
    }

    /// The call was cancelled (0x02).
    pub fn is_cancelled(&self) -> bool {
        self.code() == ErrorCode::CANCELLED
    }

    /// The peer (or this side) was too busy to take the call (0x03).
    pub fn is_busy(&self) -> bool {
        self.code() == ErrorCode::BUSY
    }

    /// The call was declined (0x04): no peer for it, a peer draining, an
    /// open circuit.
    pub fn is_declined(&self) -> bool {
        self.code() == ErrorCode::DECLINED
    }

    /// The call itself was wrong (0x06): never worth retrying.
    pub fn is_bad_request(&self) -> bool {
        self.code() == ErrorCode::BAD_REQUEST
    }

    /// The connection failed or closed (0x07) or broke the protocol (0xff).
    pub fn is_connection_error(&self) -> bool {
        matches!(self.code(), ErrorCode::NETWORK | ErrorCode::PROTOCOL)
    }

    /// What the spec says a caller may do after this error.
    pub fn retry_meaning(&self) -> RetryMeaning {
        self.code().retry_meaning()
    }

    /// True when the call may go to another peer under the default retry
    /// flags (`re` absent, meaning `c`): busy, declined, and connection
    /// errors. Timeouts (`t`) and unexpected errors (idempotent calls only)
    /// need the caller's say; see [`Error::retry_meaning`].
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.retry_meaning(),
            RetryMeaning::Always | RetryMeaning::IfConnectionErrorAllowed
        )
    }
}

impl PartialEq for Error {
    /// Same code, message and origin (the source is not compared).
    fn eq(&self, other: &Error) -> bool {
        self.code() == other.code()
            && self.is_local() == other.is_local()
            && self.message() == other.message()
    }
}

impl Eq for Error {}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Error({}, {:?}{})",
            self.code(),
            self.message(),
            if self.is_local() { ", local" } else { "" }
        )?;
        if let Some(s) = &self.inner.source {
            write!(f, " caused by {s:?}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    /// A network error (0x07), or a timeout for `TimedOut`; the I/O error is
    /// the source.
    fn from(e: std::io::Error) -> Error {
        let code = if e.kind() == std::io::ErrorKind::TimedOut {
            ErrorCode::TIMEOUT
        } else {
            ErrorCode::NETWORK
        };
        Error::new(code, e.to_string()).with_source(e)
    }
}
