//! Retry policy of JetStream requests (docs/operations.md, "Transient errors and leader elections"; docs/decisions.md 49–50): given
//! the attempt number, the time spent so far and what the failed attempt returned,
//! decide whether to send again and after which delay. Pure: time is an argument,
//! the executor owns the clock and the sleeping.

use super::{KV_OP_TIMEOUT_MS, MAX_RETRIES, retry_delay};
use crate::protocol::time::Millis;

/// Per-attempt bound of an idempotent request, in ms: long enough for a loaded R3
/// cluster to answer, short enough that a request dropped during a leader election
/// is re-sent within seconds instead of waited out for 30 s.
pub const ATTEMPT_TIMEOUT_MS: u64 = 2_000;
/// Cap on the attempts of one idempotent request (the 30 s deadline binds first at
/// `ATTEMPT_TIMEOUT_MS` per attempt; the cap bounds fast transient answers).
pub const MAX_IDEMPOTENT_ATTEMPTS: u32 = 24;

/// What a request does on the server, which decides whether it may be re-sent after
/// an attempt that got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// Reads server state or creates a fresh, unreferenced object (direct get, stream
    /// info, consumer create/info/delete): sending it twice changes nothing the
    /// caller relies on, so an unanswered attempt is re-sent.
    Idempotent,
    /// Stores something (a KV write, a stream create): re-sent only after an answer
    /// that proves nothing was stored; an unanswered attempt ends the request
    /// (its outcome is unknown, docs/operations.md).
    Write,
}

/// What one failed attempt returned, as the executor classified it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttemptOutcome {
    /// No answer within the attempt's bound.
    NoAnswer,
    /// An answer of class `ErrorClass::Retryable`: the server did nothing.
    Transient,
    /// Any other failure: repeating it would give the same answer.
    Final,
}

/// The policy's answer after a failed attempt.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryStep {
    /// Send the request again after this delay.
    RetryAfter(Millis),
    /// Report the attempt's failure as it is (a final answer, or a write without an
    /// answer whose outcome is unknown).
    Report,
    /// The condition was still transient when the attempts or the deadline ran out:
    /// report it as transient (`KvError::Timeout`, decision 50).
    Exhausted,
}

/// Bounds of one request: its kind, the overall deadline, the per-attempt bound and
/// the attempt cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RetryPolicy {
    /// Whether an unanswered attempt may be re-sent.
    pub kind: RequestKind,
    /// Overall bound from the first send, in ms, retries included.
    pub deadline_ms: u64,
    /// Bound of one attempt, in ms (never beyond the overall deadline).
    pub attempt_timeout_ms: u64,
    /// Most attempts of one request (the first send included).
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// Idempotent requests: 2 s per attempt, re-sent under `retry_delay` backoff
    /// (capped at 2 s) until 30 s or 24 attempts.
    pub const fn idempotent() -> Self {
        Self {
            kind: RequestKind::Idempotent,
            deadline_ms: KV_OP_TIMEOUT_MS,
            attempt_timeout_ms: ATTEMPT_TIMEOUT_MS,
            max_attempts: MAX_IDEMPOTENT_ATTEMPTS,
        }
    }

    /// Writes: one attempt may use the whole 30 s; transient answers are repeated
    /// `MAX_RETRIES` times (`retry_delay(1..=6)`, docs/decisions.md 50).
    pub const fn write() -> Self {
        Self {
            kind: RequestKind::Write,
            deadline_ms: KV_OP_TIMEOUT_MS,
            attempt_timeout_ms: KV_OP_TIMEOUT_MS,
            max_attempts: MAX_RETRIES + 1,
        }
    }

    /// The bound of an attempt sent `elapsed` after the first: the per-attempt
    /// bound, cut at the deadline; `None` when the deadline has passed.
    pub fn attempt_bound(&self, elapsed: Millis) -> Option<Millis> {
        let left = self
            .deadline_ms
            .checked_sub(elapsed.0)
            .filter(|&ms| ms > 0)?;
        Some(Millis(left.min(self.attempt_timeout_ms)))
    }

    /// The step after attempt number `attempt` (1 = the first send) failed with
    /// `outcome`, `elapsed` after the first send.
    ///
    /// `Final` → `Report`; a `Write` with `NoAnswer` → `Report`; otherwise
    /// `RetryAfter(retry_delay(n))` with `n = attempt` for writes and
    /// `n = min(attempt, MAX_RETRIES)` for idempotent requests (their delay stays
    /// at 2 s), as long as `attempt < max_attempts`, the delay exists and the
    /// retry would start before the deadline; else `Exhausted`.
    pub fn after_failure(
        &self,
        attempt: u32,
        elapsed: Millis,
        outcome: AttemptOutcome,
    ) -> RetryStep {
        match (self.kind, outcome) {
            (_, AttemptOutcome::Final) | (RequestKind::Write, AttemptOutcome::NoAnswer) => {
                return RetryStep::Report;
            }
            _ => {}
        }
        if attempt >= self.max_attempts {
            return RetryStep::Exhausted;
        }
        let n = match self.kind {
            RequestKind::Write => attempt,
            RequestKind::Idempotent => attempt.min(MAX_RETRIES),
        };
        match retry_delay(n) {
            Some(delay) if elapsed.0.saturating_add(delay.0) < self.deadline_ms => {
                RetryStep::RetryAfter(delay)
            }
            _ => RetryStep::Exhausted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use AttemptOutcome::{Final, NoAnswer, Transient};
    use RetryStep::{Exhausted, Report, RetryAfter};

    #[test]
    fn attempt_bounds_are_cut_at_the_deadline() {
        let p = RetryPolicy::idempotent();
        assert_eq!(p.attempt_bound(Millis(0)), Some(Millis(2_000)));
        assert_eq!(p.attempt_bound(Millis(27_999)), Some(Millis(2_000)));
        assert_eq!(p.attempt_bound(Millis(28_500)), Some(Millis(1_500)));
        assert_eq!(p.attempt_bound(Millis(29_999)), Some(Millis(1)));
        assert_eq!(p.attempt_bound(Millis(30_000)), None);
        assert_eq!(p.attempt_bound(Millis(u64::MAX)), None);
        let w = RetryPolicy::write();
        assert_eq!(w.attempt_bound(Millis(0)), Some(Millis(30_000)));
        assert_eq!(w.attempt_bound(Millis(7_750)), Some(Millis(22_250)));
        assert_eq!(w.attempt_bound(Millis(30_001)), None);
    }

    #[test]
    fn final_answers_are_reported_at_once() {
        for p in [RetryPolicy::idempotent(), RetryPolicy::write()] {
            assert_eq!(p.after_failure(1, Millis(0), Final), Report);
            assert_eq!(p.after_failure(3, Millis(5_000), Final), Report);
        }
    }

    #[test]
    fn an_unanswered_write_is_never_resent() {
        let w = RetryPolicy::write();
        assert_eq!(w.after_failure(1, Millis(30_000), NoAnswer), Report);
        assert_eq!(w.after_failure(1, Millis(10), NoAnswer), Report);
    }

    #[test]
    fn an_unanswered_idempotent_request_is_resent_with_backoff() {
        let p = RetryPolicy::idempotent();
        assert_eq!(
            p.after_failure(1, Millis(2_000), NoAnswer),
            RetryAfter(Millis(250))
        );
        assert_eq!(
            p.after_failure(2, Millis(4_250), NoAnswer),
            RetryAfter(Millis(500))
        );
        assert_eq!(
            p.after_failure(3, Millis(6_750), NoAnswer),
            RetryAfter(Millis(1_000))
        );
        assert_eq!(
            p.after_failure(4, Millis(9_750), NoAnswer),
            RetryAfter(Millis(2_000))
        );
        // Past MAX_RETRIES the delay stays at the cap.
        assert_eq!(
            p.after_failure(9, Millis(20_000), NoAnswer),
            RetryAfter(Millis(2_000))
        );
    }

    /// The full schedule of an idempotent request that never gets an answer: the
    /// executor's view, attempt by attempt, on a simulated clock.
    #[test]
    fn a_silent_cluster_is_retried_until_the_deadline() {
        let p = RetryPolicy::idempotent();
        let mut now = 0u64;
        let mut sends = Vec::new();
        let mut attempt = 0;
        let end = loop {
            let Some(bound) = p.attempt_bound(Millis(now)) else {
                break Exhausted;
            };
            attempt += 1;
            sends.push(now);
            now += bound.0;
            match p.after_failure(attempt, Millis(now), NoAnswer) {
                RetryAfter(delay) => now += delay.0,
                step => break step,
            }
        };
        assert_eq!(end, Exhausted);
        assert_eq!(
            sends,
            vec![
                0, 2_250, 4_750, 7_750, 11_750, 15_750, 19_750, 23_750, 27_750
            ]
        );
        assert!(now <= 30_000, "ends by the deadline: {now}");
    }

    #[test]
    fn fast_transient_answers_stop_at_the_deadline_or_the_cap() {
        let p = RetryPolicy::idempotent();
        // An answer 1 ms after each send: the deadline binds after 18 attempts.
        let mut now = 0u64;
        let mut attempt = 0;
        let end = loop {
            attempt += 1;
            now += 1;
            match p.after_failure(attempt, Millis(now), Transient) {
                RetryAfter(delay) => now += delay.0,
                step => break step,
            }
        };
        assert_eq!(end, Exhausted);
        assert_eq!((attempt, now), (18, 29_768));
        let capped = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::idempotent()
        };
        assert_eq!(
            capped.after_failure(2, Millis(0), Transient),
            RetryAfter(Millis(500))
        );
        assert_eq!(capped.after_failure(3, Millis(0), Transient), Exhausted);
    }

    #[test]
    fn writes_repeat_transient_answers_six_times() {
        let w = RetryPolicy::write();
        let got: Vec<_> = (1..=8)
            .map(|attempt| w.after_failure(attempt, Millis(0), Transient))
            .collect();
        assert_eq!(
            got,
            vec![
                RetryAfter(Millis(250)),
                RetryAfter(Millis(500)),
                RetryAfter(Millis(1_000)),
                RetryAfter(Millis(2_000)),
                RetryAfter(Millis(2_000)),
                RetryAfter(Millis(2_000)),
                Exhausted,
                Exhausted,
            ]
        );
    }

    #[test]
    fn a_retry_must_start_before_the_deadline() {
        for p in [RetryPolicy::idempotent(), RetryPolicy::write()] {
            assert_eq!(
                p.after_failure(1, Millis(29_749), Transient),
                RetryAfter(Millis(250))
            );
            assert_eq!(p.after_failure(1, Millis(29_750), Transient), Exhausted);
            assert_eq!(p.after_failure(1, Millis(u64::MAX), Transient), Exhausted);
        }
    }
}
