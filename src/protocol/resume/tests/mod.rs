//! Unit tests of the resume kernels (docs/protocols/resume-guard.md, "Kernels") and the
//! `ResumeGuard` transition table G1–G26 ("The machine"). Machine tests feed events and
//! compare the drained commands with the exact expected list (openraft / raft-rs style).

use super::*;
use crate::kv::{KvError, VersionToken, WatchCursor};
use crate::protocol::time::Millis;

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// A bucket kvfold creates: discard-old with a byte limit (never age-only).
const COUNT_LIMITS: LogLimits = LogLimits {
    max_age_ms: 0,
    allow_msg_ttl: false,
    discard_old: true,
    max_bytes: 1 << 20,
    max_msgs: 0,
};

/// An age-only bucket (one minute).
const AGE_ONLY: LogLimits = LogLimits {
    max_age_ms: 60_000,
    allow_msg_ttl: false,
    discard_old: false,
    max_bytes: 0,
    max_msgs: 0,
};

/// Nothing can vanish.
const KEEP_ALL: LogLimits = LogLimits {
    max_age_ms: 0,
    allow_msg_ttl: false,
    discard_old: false,
    max_bytes: 0,
    max_msgs: 0,
};

/// Age limit plus per-message TTLs: evicting, but not only by age.
const AGE_AND_TTL: LogLimits = LogLimits {
    max_age_ms: 60_000,
    allow_msg_ttl: true,
    discard_old: false,
    max_bytes: 0,
    max_msgs: 0,
};

/// Server write time of "old" messages in these tests (Unix ms).
const T0: u64 = 1_700_000_000_000;

fn facts(first_sequence: u64, last_sequence: u64) -> StreamFacts {
    StreamFacts {
        first_sequence,
        last_sequence,
        created_ms: None,
        server_now_ms: None,
        limits: COUNT_LIMITS,
    }
}

fn cursor(revision: u64) -> ResumeCursor {
    ResumeCursor {
        revision,
        written_ms: None,
    }
}

fn cursor_at(revision: u64, written_ms: u64) -> ResumeCursor {
    ResumeCursor {
        revision,
        written_ms: Some(written_ms),
    }
}

fn probed(now: u64, facts: StreamFacts) -> GuardEvent {
    GuardEvent::StreamProbed {
        now: Millis(now),
        facts,
    }
}

fn probe_failed(now: u64) -> GuardEvent {
    GuardEvent::ProbeFailed {
        now: Millis(now),
        error: KvError::Timeout,
    }
}

fn created(now: u64) -> GuardEvent {
    GuardEvent::ConsumerCreated { now: Millis(now) }
}

fn create_failed(now: u64, text: &str) -> GuardEvent {
    GuardEvent::ConsumerFailed {
        now: Millis(now),
        error_text: text.to_string(),
    }
}

fn delivered(now: u64, revision: u64) -> GuardEvent {
    GuardEvent::Delivered {
        now: Millis(now),
        revision: Some(revision),
        written_ms: None,
    }
}

fn delivered_at(now: u64, revision: u64, written_ms: u64) -> GuardEvent {
    GuardEvent::Delivered {
        now: Millis(now),
        revision: Some(revision),
        written_ms: Some(written_ms),
    }
}

fn delivered_unknown(now: u64) -> GuardEvent {
    GuardEvent::Delivered {
        now: Millis(now),
        revision: None,
        written_ms: None,
    }
}

fn reconnected(now: u64) -> GuardEvent {
    GuardEvent::Reconnected { now: Millis(now) }
}

fn fault(now: u64, reconnected: bool) -> GuardEvent {
    GuardEvent::ConsumerFault {
        now: Millis(now),
        reconnected,
        error_text: "push consumer lost deliveries".to_string(),
    }
}

fn fault_failure() -> Vec<GuardCommand> {
    vec![GuardCommand::Fail(KvError::WatchError(
        "push consumer lost deliveries".to_string(),
    ))]
}

fn tick(now: u64) -> GuardEvent {
    GuardEvent::Tick { now: Millis(now) }
}

/// Every command the guard has queued, in order.
fn drain(guard: &mut ResumeGuard) -> Vec<GuardCommand> {
    std::iter::from_fn(|| guard.poll_command()).collect()
}

/// Feeds `event` (which must be accepted) and returns the commands it queued.
fn step(guard: &mut ResumeGuard, event: GuardEvent) -> Vec<GuardCommand> {
    guard.handle(event).expect("event accepted");
    drain(guard)
}

/// A resumed guard that passed G1–G4 at `now` = 0 against `facts(1, 100)`:
/// `Streaming` with frontier `cursor.revision`.
fn streaming_from(cursor: ResumeCursor, mode: GuardMode) -> ResumeGuard {
    let mut guard = ResumeGuard::resumed(cursor, mode, Millis(0));
    assert_eq!(drain(&mut guard), vec![GuardCommand::ProbeStream]);
    assert_eq!(
        step(&mut guard, probed(0, facts(1, 100))),
        vec![GuardCommand::CreateConsumer {
            start_sequence: cursor.revision + 1
        }]
    );
    assert_eq!(
        step(&mut guard, created(0)),
        vec![GuardCommand::ProbeStream]
    );
    assert_eq!(step(&mut guard, probed(0, facts(1, 100))), vec![]);
    assert!(guard.is_streaming());
    assert_eq!(guard.frontier(), Some(cursor.revision));
    guard
}

/// A `fresh` (state-sync) guard whose own last-per-subject consumer exists
/// (G26, then G19 with no sync point): `Streaming`, no frontier, nothing queued.
fn fresh_streaming(mode: GuardMode) -> ResumeGuard {
    let mut guard = ResumeGuard::fresh(mode, Millis(0));
    assert_eq!(
        drain(&mut guard),
        vec![GuardCommand::CreateSnapshotConsumer]
    );
    assert!(!guard.is_streaming());
    assert_eq!(
        step(
            &mut guard,
            GuardEvent::SnapshotCreated {
                now: Millis(0),
                pending: 3
            }
        ),
        vec![]
    );
    assert!(guard.is_streaming());
    assert!(!guard.is_syncing(), "no sync point: no snapshot window");
    guard
}

fn streaming(revision: u64, mode: GuardMode) -> ResumeGuard {
    streaming_from(cursor(revision), mode)
}

fn expired(cause: ExpiryCause) -> Vec<GuardCommand> {
    vec![GuardCommand::Expired(cause)]
}

// ---------------------------------------------------------------------------
// LogLimits
// ---------------------------------------------------------------------------

/// The `plan_resume` table (docs/protocols/resume-guard.md, "Kernels"): one row per
/// combination of the four conditions. Columns: age limit, TTL allowed, discard-old, a byte
/// or message limit → evicts current values, evicts only by age.
const LIMITS_TABLE: [(bool, bool, bool, bool, bool, bool); 16] = [
    (false, false, false, false, false, false),
    (false, false, false, true, false, false),
    (false, false, true, false, false, false),
    (false, false, true, true, true, false),
    (false, true, false, false, true, false),
    (false, true, false, true, true, false),
    (false, true, true, false, true, false),
    (false, true, true, true, true, false),
    (true, false, false, false, true, true),
    (true, false, false, true, true, true),
    (true, false, true, false, true, true),
    (true, false, true, true, true, false),
    (true, true, false, false, true, false),
    (true, true, false, true, true, false),
    (true, true, true, false, true, false),
    (true, true, true, true, true, false),
];

#[test]
fn log_limits_truth_table_is_exhaustive() {
    for max_age_ms in [0, 1, 60_000] {
        for allow_msg_ttl in [false, true] {
            for discard_old in [false, true] {
                for max_bytes in [i64::MIN, -1, 0, 1, 1 << 20] {
                    for max_msgs in [i64::MIN, -1, 0, 1, 1_000] {
                        let limits = LogLimits {
                            max_age_ms,
                            allow_msg_ttl,
                            discard_old,
                            max_bytes,
                            max_msgs,
                        };
                        let key = (
                            max_age_ms > 0,
                            allow_msg_ttl,
                            discard_old,
                            max_bytes > 0 || max_msgs > 0,
                        );
                        let row = LIMITS_TABLE
                            .iter()
                            .find(|r| (r.0, r.1, r.2, r.3) == key)
                            .expect("the table covers every combination");
                        assert_eq!(limits.evicts_current_values(), row.4, "{limits:?}");
                        assert_eq!(limits.evicts_only_by_age(), row.5, "{limits:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn limits_of_a_kvfold_bucket_always_evict() {
    assert!(COUNT_LIMITS.evicts_current_values());
    assert!(!COUNT_LIMITS.evicts_only_by_age());
    assert!(AGE_ONLY.evicts_only_by_age());
    assert!(!KEEP_ALL.evicts_current_values());
    assert!(!AGE_AND_TTL.evicts_only_by_age());
}

// ---------------------------------------------------------------------------
// ResumeCursor::of
// ---------------------------------------------------------------------------

#[test]
fn resume_cursor_of_needs_a_nonzero_u64_revision() {
    assert_eq!(ResumeCursor::of(&WatchCursor::none()), None);
    assert_eq!(ResumeCursor::of(&WatchCursor::from_u64(0)), None);
    let four_bytes = VersionToken::from_raw(&[0, 0, 0, 7]).expect("short token");
    assert_eq!(
        ResumeCursor::of(&WatchCursor::from_version(four_bytes)),
        None
    );
    assert_eq!(ResumeCursor::of(&WatchCursor::from_u64(7)), Some(cursor(7)));
    assert_eq!(
        ResumeCursor::of(&WatchCursor::from_u64(u64::MAX)),
        Some(cursor(u64::MAX))
    );
}

#[test]
fn resume_cursor_of_keeps_the_write_time() {
    let token = VersionToken::from_u64(7).written_at(T0);
    assert_eq!(
        ResumeCursor::of(&WatchCursor::from_version(token)),
        Some(cursor_at(7, T0))
    );
    // The memo does not change the resume position.
    let remembered =
        WatchCursor::from_version(VersionToken::from_u64(7).written_at(T0)).remembering(true);
    assert_eq!(ResumeCursor::of(&remembered), Some(cursor_at(7, T0)));
    // Write time 0 means unknown.
    let zero = VersionToken::from_u64(7).written_at(0);
    assert_eq!(
        ResumeCursor::of(&WatchCursor::from_version(zero)),
        Some(cursor(7))
    );
}

mod consumer_faults;
mod floor;
mod plan;
mod reconnects;
mod sequence;
mod syncing;
