//! Whether a failed attempt is tried again: the error code, the call's `re`
//! header, idempotence, the retry limit, the time left, and the budget.
//!
//! The rules are TChannel's (spec/07-calls.md, ERR-8) with one local input:
//!
//! | failure | retried when |
//! |---|---|
//! | busy (0x03), declined (0x04) | always (on another peer) |
//! | network error (0x07), protocol error (0xff), failed connect | `re` allows connection errors (`c`, the default) |
//! | timeout (0x01), from the peer or local | `re` allows timeouts (`t`) |
//! | unexpected (0x05) | the caller marked the call idempotent |
//! | bad request, cancelled, unhealthy, unknown codes, application errors | never |
//!
//! `re: n` wins over everything. Idempotence is the caller's local knowledge;
//! `re` has no flag for it. A declined that the pool makes itself because no
//! peer is available is final; the pool returns it without asking here.
//!
//! [`decide`] checks the budget last, so a token is only spent on a retry that
//! will really be made.

use std::time::{Duration, Instant};

use super::budget::RetryBudget;
use crate::Error;
use crate::frame::{RetryFlags, RetryMeaning};

/// Less time than this left before the deadline and no attempt is made
/// (TTL-2: tchan never sends a ttl of 0).
pub const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(1);

/// True when `error` may be retried under these `re` flags.
pub fn is_retryable(error: &Error, flags: RetryFlags, idempotent: bool) -> bool {
    if flags.never {
        return false;
    }
    match error.code().retry_meaning() {
        RetryMeaning::Always => true,
        RetryMeaning::IfTimeoutAllowed => flags.timeout,
        RetryMeaning::IfIdempotent => idempotent,
        RetryMeaning::IfConnectionErrorAllowed => flags.connection_error,
        RetryMeaning::Never => false,
    }
}

/// Why a failed call is not retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stop {
    /// The error may not be retried (its code, `re`, or idempotence).
    NotRetryable,
    /// The call used all the retries it was allowed.
    NoRetriesLeft,
    /// Less than [`MIN_ATTEMPT_TIME`] is left before the deadline.
    NoTimeLeft,
    /// The streamed arg3 was already sent and cannot be sent again.
    BodyConsumed,
    /// The retry budget is spent.
    BudgetExhausted,
    /// No peer could take the call (every breaker open, or the pool empty):
    /// the pool declined it (0x04) without trying, or stopped retrying.
    NoPeerAvailable,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Try again (a budget token has been taken).
    Retry,
    /// Give up and return the error.
    Stop(Stop),
}

/// Where a call stands after a failed attempt.
#[derive(Debug, Clone, Copy)]
pub struct RetryContext {
    /// The call's `re` flags.
    pub flags: RetryFlags,
    /// The caller says the call may run twice.
    pub idempotent: bool,
    /// Retries made so far (attempts - 1).
    pub retries: u32,
    /// Most retries allowed for this call.
    pub max_retries: u32,
    /// Time left before the call's deadline.
    pub time_left: Duration,
    /// The request can be sent again (its arg3 is whole, or was never sent).
    pub replayable: bool,
}

/// Decides whether the call is tried again after `error`; takes a token
/// from `budget` when it is.
pub fn decide(
    error: &Error,
    ctx: &RetryContext,
    budget: &mut RetryBudget,
    now: Instant,
) -> Decision {
    if !is_retryable(error, ctx.flags, ctx.idempotent) {
        return Decision::Stop(Stop::NotRetryable);
    }
    if ctx.retries >= ctx.max_retries {
        return Decision::Stop(Stop::NoRetriesLeft);
    }
    if ctx.time_left < MIN_ATTEMPT_TIME {
        return Decision::Stop(Stop::NoTimeLeft);
    }
    if !ctx.replayable {
        return Decision::Stop(Stop::BodyConsumed);
    }
    if !budget.try_withdraw(now) {
        return Decision::Stop(Stop::BudgetExhausted);
    }
    Decision::Retry
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::ErrorCode;
    use crate::peer::budget::BudgetConfig;

    fn flags(re: Option<&str>) -> RetryFlags {
        RetryFlags::parse(re.map(str::as_bytes))
    }

    fn remote(code: ErrorCode) -> Error {
        Error::from_peer(code, "x")
    }

    #[test]
    fn the_retry_table() {
        // [POOL-14] [ERR-8] [DEV-19]: busy and declined always, unexpected only
        // when idempotent (node retries it regardless), timeouts only with `t`,
        // connection errors with `c` (the default), `n` never.
        let cases: &[(ErrorCode, Option<&str>, bool, bool)] = &[
            (ErrorCode::BUSY, None, false, true),
            (ErrorCode::BUSY, Some("t"), false, true),
            (ErrorCode::DECLINED, None, false, true),
            (ErrorCode::BUSY, Some("n"), true, false),
            (ErrorCode::DECLINED, Some("n"), true, false),
            (ErrorCode::NETWORK, None, false, true),
            (ErrorCode::NETWORK, Some("c"), false, true),
            (ErrorCode::NETWORK, Some("t"), false, false),
            (ErrorCode::NETWORK, Some("n"), false, false),
            (ErrorCode::PROTOCOL, None, false, true),
            (ErrorCode::TIMEOUT, None, true, false),
            (ErrorCode::TIMEOUT, Some("c"), true, false),
            (ErrorCode::TIMEOUT, Some("t"), false, true),
            (ErrorCode::TIMEOUT, Some("ct"), false, true),
            (ErrorCode::UNEXPECTED, None, false, false),
            (ErrorCode::UNEXPECTED, Some("ct"), false, false),
            (ErrorCode::UNEXPECTED, None, true, true),
            (ErrorCode::UNEXPECTED, Some("n"), true, false),
            (ErrorCode::BAD_REQUEST, Some("ct"), true, false),
            (ErrorCode::CANCELLED, Some("ct"), true, false),
            (ErrorCode::UNHEALTHY, Some("ct"), true, false),
            (ErrorCode::INVALID, Some("ct"), true, false),
            (ErrorCode(0x42), Some("ct"), true, false),
        ];
        for &(code, re, idem, want) in cases {
            assert_eq!(
                is_retryable(&remote(code), flags(re), idem),
                want,
                "{code} re={re:?} idempotent={idem}"
            );
            let local = Error::new(code, "x");
            assert_eq!(is_retryable(&local, flags(re), idem), want, "local {code}");
        }
    }

    fn ctx() -> RetryContext {
        RetryContext {
            flags: flags(None),
            idempotent: false,
            retries: 0,
            max_retries: 2,
            time_left: Duration::from_millis(500),
            replayable: true,
        }
    }

    #[test]
    fn limits_in_order_and_budget_last() {
        // [POOL-17] [POOL-16]
        let t0 = Instant::now();
        let mut budget = RetryBudget::new(BudgetConfig::default(), t0);
        let busy = remote(ErrorCode::BUSY);
        assert_eq!(decide(&busy, &ctx(), &mut budget, t0), Decision::Retry);
        let c = RetryContext {
            retries: 2,
            ..ctx()
        };
        assert_eq!(
            decide(&busy, &c, &mut budget, t0),
            Decision::Stop(Stop::NoRetriesLeft)
        );
        let c = RetryContext {
            time_left: Duration::from_micros(999),
            ..ctx()
        };
        assert_eq!(
            decide(&busy, &c, &mut budget, t0),
            Decision::Stop(Stop::NoTimeLeft)
        );
        let c = RetryContext {
            replayable: false,
            ..ctx()
        };
        assert_eq!(
            decide(&busy, &c, &mut budget, t0),
            Decision::Stop(Stop::BodyConsumed)
        );
        assert_eq!(
            decide(&remote(ErrorCode::BAD_REQUEST), &ctx(), &mut budget, t0),
            Decision::Stop(Stop::NotRetryable)
        );
        // Only the one retry granted above was taken from the budget.
        assert_eq!(budget.remaining(t0), 99);
    }

    #[test]
    fn an_empty_budget_stops_retries() {
        // [POOL-18]
        let t0 = Instant::now();
        let mut budget = RetryBudget::new(
            BudgetConfig {
                window: Duration::from_secs(10),
                retry_ratio: 0.0,
                min_retries_per_sec: 0,
            },
            t0,
        );
        assert_eq!(
            decide(&remote(ErrorCode::BUSY), &ctx(), &mut budget, t0),
            Decision::Stop(Stop::BudgetExhausted)
        );
    }
}
