//! Unit tests of the resume kernels (docs/protocols/resume-guard.md, "Kernels") and the
//! `ResumeGuard` transition table G1–G25 ("The machine"). Machine tests feed events and
//! compare the drained commands with the exact expected list (openraft / raft-rs style).

use super::*;
use crate::kv::VersionToken;

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

// ---------------------------------------------------------------------------
// plan_resume / recheck_resume
// ---------------------------------------------------------------------------

type Row = (
    &'static str,
    fn(&ResumeCursor, &StreamFacts) -> bool,
    fn(&ResumeCursor, &StreamFacts) -> Result<u64, ExpiryCause>,
);

/// The pre-check table of docs/protocols/resume-guard.md, "Kernels", written independently
/// of the kernel (wide arithmetic instead of saturating ops). The first matching row wins.
const PLAN_TABLE: [Row; 5] = [
    (
        "1 ahead of stream",
        |c, f| c.revision > f.last_sequence,
        |c, f| {
            Err(ExpiryCause::AheadOfStream {
                revision: c.revision,
                last_sequence: f.last_sequence,
            })
        },
    ),
    (
        "2 recreated",
        |c, f| match (f.created_ms, c.written_ms) {
            (Some(created), Some(written)) => {
                u128::from(created) > u128::from(written) + u128::from(RECREATE_SLACK_MS)
            }
            _ => false,
        },
        |c, f| {
            Err(ExpiryCause::Recreated {
                created_ms: f.created_ms.unwrap_or_default(),
                written_ms: c.written_ms.unwrap_or_default(),
            })
        },
    ),
    (
        "3 window ok",
        |c, f| u128::from(f.first_sequence) <= u128::from(c.revision) + 1,
        |c, _| Ok(c.revision),
    ),
    (
        "4 supersession only",
        |c, f| match (c.written_ms, f.server_now_ms) {
            (Some(written), Some(now)) => {
                let l = f.limits;
                let age_only = l.max_age_ms > 0
                    && !l.allow_msg_ttl
                    && !(l.discard_old && (l.max_bytes > 0 || l.max_msgs > 0));
                let age = u128::from(now.max(written) - written);
                age_only && 2 * age <= u128::from(l.max_age_ms)
            }
            _ => false,
        },
        |c, f| Ok((f.first_sequence - 1).max(c.revision)),
    ),
    (
        "5 below floor",
        |_, _| true,
        |c, f| {
            Err(ExpiryCause::BelowFloor {
                revision: c.revision,
                first_sequence: f.first_sequence,
            })
        },
    ),
];

fn plan_oracle(c: &ResumeCursor, f: &StreamFacts) -> (&'static str, Result<u64, ExpiryCause>) {
    let (name, _, result) = PLAN_TABLE
        .iter()
        .find(|(_, applies, _)| applies(c, f))
        .expect("row 5 always applies");
    (name, result(c, f))
}

#[test]
fn plan_resume_matches_the_spec_table_exhaustively() {
    let written_options = [None, Some(T0)];
    let created_options = [
        None,
        Some(T0 - 1),
        Some(T0 + RECREATE_SLACK_MS),
        Some(T0 + RECREATE_SLACK_MS + 1),
    ];
    let now_options = [
        None,
        Some(T0 - 5),
        Some(T0 + 30_000),
        Some(T0 + 30_001),
        Some(T0 + 60_000),
    ];
    let limits_options = [AGE_ONLY, COUNT_LIMITS, KEEP_ALL, AGE_AND_TTL];
    let mut rows_hit = std::collections::BTreeSet::new();
    for revision in 0..6 {
        for first_sequence in 0..7 {
            for last_sequence in 0..6 {
                for written_ms in written_options {
                    for created_ms in created_options {
                        for server_now_ms in now_options {
                            for limits in limits_options {
                                let c = ResumeCursor {
                                    revision,
                                    written_ms,
                                };
                                let f = StreamFacts {
                                    first_sequence,
                                    last_sequence,
                                    created_ms,
                                    server_now_ms,
                                    limits,
                                };
                                let (row, expected) = plan_oracle(&c, &f);
                                rows_hit.insert(row);
                                assert_eq!(plan_resume(&c, &f), expected, "row {row}: {c:?} {f:?}");
                                if let Ok(e) = expected {
                                    assert!(e >= revision, "a resume never moves back");
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(rows_hit.len(), 5, "every row was exercised: {rows_hit:?}");
}

#[test]
fn plan_row_1_cursor_ahead_of_stream_expires() {
    assert_eq!(
        plan_resume(&cursor(11), &facts(1, 10)),
        Err(ExpiryCause::AheadOfStream {
            revision: 11,
            last_sequence: 10
        })
    );
    assert_eq!(plan_resume(&cursor(10), &facts(1, 10)), Ok(10));
}

#[test]
fn plan_row_1_wins_over_row_2() {
    let f = StreamFacts {
        created_ms: Some(T0 + RECREATE_SLACK_MS + 1),
        ..facts(1, 4)
    };
    assert_eq!(
        plan_resume(&cursor_at(5, T0), &f),
        Err(ExpiryCause::AheadOfStream {
            revision: 5,
            last_sequence: 4
        })
    );
}

#[test]
fn plan_row_2_recreated_bucket_expires_past_the_slack_only() {
    let at_slack = StreamFacts {
        created_ms: Some(T0 + RECREATE_SLACK_MS),
        ..facts(1, 10)
    };
    assert_eq!(plan_resume(&cursor_at(5, T0), &at_slack), Ok(5));
    let past_slack = StreamFacts {
        created_ms: Some(T0 + RECREATE_SLACK_MS + 1),
        ..facts(1, 10)
    };
    assert_eq!(
        plan_resume(&cursor_at(5, T0), &past_slack),
        Err(ExpiryCause::Recreated {
            created_ms: T0 + RECREATE_SLACK_MS + 1,
            written_ms: T0
        })
    );
    // Row 2 wins over row 3: the window is fine, the bucket is not the same one.
    // A cursor without a write time skips the row.
    assert_eq!(plan_resume(&cursor(5), &past_slack), Ok(5));
    // Neither the slack nor the write time overflow.
    let huge = StreamFacts {
        created_ms: Some(u64::MAX),
        ..facts(1, 10)
    };
    assert_eq!(plan_resume(&cursor_at(5, u64::MAX - 1), &huge), Ok(5));
}

#[test]
fn plan_row_3_window_ok_resumes_after_the_cursor() {
    assert_eq!(plan_resume(&cursor(5), &facts(6, 10)), Ok(5));
    assert_eq!(plan_resume(&cursor(5), &facts(1, 10)), Ok(5));
    assert_eq!(plan_resume(&cursor(5), &facts(0, 5)), Ok(5));
    assert_eq!(
        plan_resume(&cursor(u64::MAX), &facts(u64::MAX, u64::MAX)),
        Ok(u64::MAX)
    );
}

#[test]
fn plan_row_4_supersession_only_resumes_at_the_floor() {
    let f = StreamFacts {
        server_now_ms: Some(T0 + 30_000),
        limits: AGE_ONLY,
        ..facts(10, 20)
    };
    // max(first - 1, revision) = 9: the gap 4..=9 was overwritten, not evicted.
    assert_eq!(plan_resume(&cursor_at(3, T0), &f), Ok(9));
    // One ms past half of max_age: the gap may hold an aged-out write.
    let older = StreamFacts {
        server_now_ms: Some(T0 + 30_001),
        ..f.clone()
    };
    assert_eq!(
        plan_resume(&cursor_at(3, T0), &older),
        Err(ExpiryCause::BelowFloor {
            revision: 3,
            first_sequence: 10
        })
    );
    // Server clock behind the write time: age 0 (saturating), still superseded.
    let skewed = StreamFacts {
        server_now_ms: Some(T0 - 1_000),
        ..f.clone()
    };
    assert_eq!(plan_resume(&cursor_at(3, T0), &skewed), Ok(9));
}

#[test]
fn plan_row_4_needs_write_time_server_clock_and_age_only_limits() {
    let f = StreamFacts {
        server_now_ms: Some(T0 + 1),
        limits: AGE_ONLY,
        ..facts(10, 20)
    };
    let below = Err(ExpiryCause::BelowFloor {
        revision: 3,
        first_sequence: 10,
    });
    assert_eq!(plan_resume(&cursor(3), &f), below);
    let no_clock = StreamFacts {
        server_now_ms: None,
        ..f.clone()
    };
    assert_eq!(plan_resume(&cursor_at(3, T0), &no_clock), below);
    for limits in [COUNT_LIMITS, AGE_AND_TTL, KEEP_ALL] {
        let not_age_only = StreamFacts {
            limits,
            ..f.clone()
        };
        assert_eq!(plan_resume(&cursor_at(3, T0), &not_age_only), below);
    }
}

#[test]
fn plan_row_5_below_floor_expires() {
    assert_eq!(
        plan_resume(&cursor(5), &facts(7, 10)),
        Err(ExpiryCause::BelowFloor {
            revision: 5,
            first_sequence: 7
        })
    );
    assert_eq!(
        plan_resume(&cursor(0), &facts(2, 10)),
        Err(ExpiryCause::BelowFloor {
            revision: 0,
            first_sequence: 2
        })
    );
}

#[test]
fn recheck_resume_matches_the_spec_table_exhaustively() {
    for effective in 0..6 {
        for first_sequence in 0..8 {
            for last_sequence in 0..6 {
                let f = facts(first_sequence, last_sequence);
                let expected = if effective > last_sequence {
                    Err(ExpiryCause::AheadOfStream {
                        revision: effective,
                        last_sequence,
                    })
                } else if first_sequence > effective + 1 {
                    Err(ExpiryCause::BelowFloor {
                        revision: effective,
                        first_sequence,
                    })
                } else {
                    Ok(())
                };
                assert_eq!(recheck_resume(effective, &f), expected, "{effective} {f:?}");
            }
        }
    }
    assert_eq!(recheck_resume(u64::MAX, &facts(u64::MAX, u64::MAX)), Ok(()));
}

#[test]
fn expiry_causes_display_their_numbers() {
    let text = ExpiryCause::FloorPassed {
        frontier: 5,
        first_sequence: 9,
    }
    .to_string();
    assert!(text.contains('5') && text.contains('9'), "{text}");
    let unexpected = Unexpected {
        phase: "Done",
        event: "Tick",
    };
    assert_eq!(
        unexpected.to_string(),
        "resume guard in phase Done does not accept Tick"
    );
}

// ---------------------------------------------------------------------------
// ResumeGuard: G1–G4, the resume sequence
// ---------------------------------------------------------------------------

#[test]
fn g1_resumed_guard_probes_before_anything_else() {
    let mut guard = ResumeGuard::resumed(cursor(5), GuardMode::Dense, Millis(0));
    assert_eq!(drain(&mut guard), vec![GuardCommand::ProbeStream]);
    assert!(!guard.is_streaming());
    assert_eq!(guard.frontier(), None);
    assert_eq!(guard.poll_timeout(), None);
}

#[test]
fn g1_passing_precheck_creates_the_consumer_after_the_cursor() {
    let mut guard = ResumeGuard::resumed(cursor(5), GuardMode::Dense, Millis(0));
    let _ = drain(&mut guard);
    assert_eq!(
        step(&mut guard, probed(1, facts(3, 10))),
        vec![GuardCommand::CreateConsumer { start_sequence: 6 }]
    );
    assert_eq!(
        guard.frontier(),
        None,
        "nothing vouched for before the post-check"
    );
    assert_eq!(guard.poll_timeout(), None);
}

#[test]
fn g1_failing_precheck_expires() {
    let mut guard = ResumeGuard::resumed(cursor(5), GuardMode::Sparse, Millis(0));
    let _ = drain(&mut guard);
    assert_eq!(
        step(&mut guard, probed(1, facts(7, 10))),
        expired(ExpiryCause::BelowFloor {
            revision: 5,
            first_sequence: 7
        })
    );
    assert!(guard.is_done());

    let mut guard = ResumeGuard::resumed(cursor(11), GuardMode::Dense, Millis(0));
    let _ = drain(&mut guard);
    assert_eq!(
        step(&mut guard, probed(1, facts(1, 10))),
        expired(ExpiryCause::AheadOfStream {
            revision: 11,
            last_sequence: 10
        })
    );
    assert!(guard.is_done());
}

#[test]
fn g1_recreated_bucket_expires_before_any_consumer() {
    let mut guard = ResumeGuard::resumed(cursor_at(5, T0), GuardMode::Dense, Millis(0));
    let _ = drain(&mut guard);
    let f = StreamFacts {
        created_ms: Some(T0 + RECREATE_SLACK_MS + 1),
        ..facts(1, 10)
    };
    assert_eq!(
        step(&mut guard, probed(1, f)),
        expired(ExpiryCause::Recreated {
            created_ms: T0 + RECREATE_SLACK_MS + 1,
            written_ms: T0
        })
    );
}

#[test]
fn g1_resume_from_u64_max_fails_instead_of_wrapping() {
    let mut guard = ResumeGuard::resumed(cursor(u64::MAX), GuardMode::Dense, Millis(0));
    let _ = drain(&mut guard);
    assert_eq!(
        step(&mut guard, probed(1, facts(1, u64::MAX))),
        vec![GuardCommand::Fail(KvError::WatchError(
            "resume revision is u64::MAX".to_string()
        ))]
    );
    assert!(guard.is_done());
}

#[test]
fn g1_supersession_only_resume_starts_at_the_floor() {
    let mut guard = ResumeGuard::resumed(cursor_at(3, T0), GuardMode::Dense, Millis(0));
    let _ = drain(&mut guard);
    let f = StreamFacts {
        server_now_ms: Some(T0 + 1_000),
        limits: AGE_ONLY,
        ..facts(10, 20)
    };
    assert_eq!(
        step(&mut guard, probed(1, f.clone())),
        vec![GuardCommand::CreateConsumer { start_sequence: 10 }]
    );
    assert_eq!(
        step(&mut guard, created(2)),
        vec![GuardCommand::ProbeStream]
    );
    assert_eq!(step(&mut guard, probed(3, f)), vec![]);
    assert_eq!(guard.frontier(), Some(9));
}

#[test]
fn g2_created_consumer_is_rechecked() {
    let mut guard = ResumeGuard::resumed(cursor(5), GuardMode::Dense, Millis(0));
    let _ = drain(&mut guard);
    let _ = step(&mut guard, probed(1, facts(1, 10)));
    assert_eq!(
        step(&mut guard, created(2)),
        vec![GuardCommand::ProbeStream]
    );
    assert!(!guard.is_streaming());
    assert_eq!(guard.frontier(), None);
}

#[test]
fn g3_consumer_refusal_reads_expiry_text() {
    let mut guard = ResumeGuard::resumed(cursor(5), GuardMode::Dense, Millis(0));
    let _ = drain(&mut guard);
    let _ = step(&mut guard, probed(1, facts(1, 10)));
    assert_eq!(
        step(
            &mut guard,
            create_failed(2, "optional start sequence 6 is too old")
        ),
        expired(ExpiryCause::ServerRefused)
    );
    assert!(guard.is_done());
}

#[test]
fn g3_other_consumer_errors_fail_the_watch() {
    let mut guard = ResumeGuard::resumed(cursor(5), GuardMode::Sparse, Millis(0));
    let _ = drain(&mut guard);
    let _ = step(&mut guard, probed(1, facts(1, 10)));
    assert_eq!(
        step(&mut guard, create_failed(2, "consumer name already in use")),
        vec![GuardCommand::Fail(KvError::WatchError(
            "consumer name already in use".to_string()
        ))]
    );
    assert!(guard.is_done());
}

#[test]
fn g4_passing_postcheck_starts_streaming_with_the_cursor_as_frontier() {
    let mut guard = ResumeGuard::resumed(cursor(5), GuardMode::Dense, Millis(0));
    let _ = drain(&mut guard);
    let _ = step(&mut guard, probed(1, facts(1, 10)));
    let _ = step(&mut guard, created(2));
    assert_eq!(step(&mut guard, probed(3, facts(6, 10))), vec![]);
    assert!(guard.is_streaming());
    assert_eq!(guard.frontier(), Some(5));
    assert_eq!(guard.poll_timeout(), Some(Millis(3 + FLOOR_PROBE_IDLE_MS)));
}

#[test]
fn g4_sparse_guard_has_no_idle_deadline() {
    let mut guard = ResumeGuard::resumed(cursor(5), GuardMode::Sparse, Millis(0));
    let _ = drain(&mut guard);
    let _ = step(&mut guard, probed(1, facts(1, 10)));
    let _ = step(&mut guard, created(2));
    assert_eq!(step(&mut guard, probed(3, facts(1, 10))), vec![]);
    assert_eq!(guard.frontier(), Some(5));
    assert_eq!(guard.poll_timeout(), None);
}

#[test]
fn g4_eviction_racing_creation_expires() {
    let mut guard = ResumeGuard::resumed(cursor(5), GuardMode::Sparse, Millis(0));
    let _ = drain(&mut guard);
    let _ = step(&mut guard, probed(1, facts(6, 10)));
    let _ = step(&mut guard, created(2));
    assert_eq!(
        step(&mut guard, probed(3, facts(7, 10))),
        expired(ExpiryCause::BelowFloor {
            revision: 5,
            first_sequence: 7
        })
    );
    assert!(guard.is_done());
    assert_eq!(guard.frontier(), None);
}

#[test]
fn g4_stream_losing_its_tail_during_creation_expires() {
    let mut guard = ResumeGuard::resumed(cursor(5), GuardMode::Dense, Millis(0));
    let _ = drain(&mut guard);
    let _ = step(&mut guard, probed(1, facts(1, 10)));
    let _ = step(&mut guard, created(2));
    assert_eq!(
        step(&mut guard, probed(3, facts(1, 4))),
        expired(ExpiryCause::AheadOfStream {
            revision: 5,
            last_sequence: 4
        })
    );
}

// ---------------------------------------------------------------------------
// ResumeGuard: G5–G8, judging deliveries
// ---------------------------------------------------------------------------

#[test]
fn g5_redelivery_at_or_below_the_frontier_is_skipped() {
    for mode in [GuardMode::Dense, GuardMode::Sparse] {
        let mut guard = streaming(5, mode);
        let deadline = guard.poll_timeout();
        assert_eq!(
            step(&mut guard, delivered(10, 1)),
            vec![GuardCommand::Skip { revision: 1 }]
        );
        assert_eq!(
            step(&mut guard, delivered(11, 5)),
            vec![GuardCommand::Skip { revision: 5 }]
        );
        assert_eq!(guard.frontier(), Some(5));
        assert_eq!(guard.poll_timeout(), deadline, "a skip is not traffic");
        assert!(guard.is_streaming());
    }
}

#[test]
fn g6_dense_gap_is_probed_before_forwarding() {
    let mut guard = streaming(5, GuardMode::Dense);
    assert_eq!(
        step(&mut guard, delivered(10, 7)),
        vec![GuardCommand::ProbeStream]
    );
    assert!(!guard.is_streaming());
    assert_eq!(
        guard.frontier(),
        Some(5),
        "the held revision is not vouched for"
    );
    assert_eq!(guard.poll_timeout(), None);
}

#[test]
fn g7_contiguous_delivery_is_forwarded_and_rearms_the_idle_probe() {
    let mut guard = streaming(5, GuardMode::Dense);
    assert_eq!(
        step(&mut guard, delivered(10, 6)),
        vec![GuardCommand::Forward]
    );
    assert_eq!(guard.frontier(), Some(6));
    assert_eq!(guard.poll_timeout(), Some(Millis(10 + FLOOR_PROBE_IDLE_MS)));
    assert_eq!(
        step(&mut guard, delivered(20, 7)),
        vec![GuardCommand::Forward]
    );
    assert_eq!(guard.frontier(), Some(7));
    assert_eq!(guard.poll_timeout(), Some(Millis(20 + FLOOR_PROBE_IDLE_MS)));
}

#[test]
fn g7_sparse_guard_never_probes_on_gaps() {
    let mut guard = streaming(5, GuardMode::Sparse);
    assert_eq!(
        step(&mut guard, delivered(10, 9)),
        vec![GuardCommand::Forward]
    );
    assert_eq!(
        step(&mut guard, delivered(20, 1_000)),
        vec![GuardCommand::Forward]
    );
    assert_eq!(guard.frontier(), Some(1_000));
    assert_eq!(guard.poll_timeout(), None);
    // Nor on time: Sparse has no idle deadline, every tick is stale.
    assert_eq!(step(&mut guard, tick(10 * FLOOR_PROBE_IDLE_MS)), vec![]);
    assert!(guard.is_streaming());
}

#[test]
fn g8_unknown_revision_is_forwarded_unjudged() {
    let mut guard = streaming(5, GuardMode::Dense);
    let deadline = guard.poll_timeout();
    assert_eq!(
        step(&mut guard, delivered_unknown(10)),
        vec![GuardCommand::Forward]
    );
    assert_eq!(guard.frontier(), Some(5));
    assert_eq!(guard.poll_timeout(), deadline, "the frontier did not move");
    // The next judged delivery is still judged against the old frontier.
    assert_eq!(
        step(&mut guard, delivered(11, 7)),
        vec![GuardCommand::ProbeStream]
    );
}

// ---------------------------------------------------------------------------
// ResumeGuard: G9–G11, the floor guard
// ---------------------------------------------------------------------------

#[test]
fn g9_floor_passed_the_frontier_expires() {
    let mut guard = streaming(5, GuardMode::Dense);
    let _ = step(&mut guard, delivered(10, 8));
    assert_eq!(
        step(&mut guard, probed(11, facts(7, 10))),
        expired(ExpiryCause::FloorPassed {
            frontier: 5,
            first_sequence: 7
        })
    );
    assert!(guard.is_done());
    assert_eq!(guard.frontier(), Some(5));
}

#[test]
fn g9_stream_behind_the_frontier_expires() {
    let mut guard = streaming(5, GuardMode::Dense);
    let _ = step(&mut guard, delivered(10, 8));
    assert_eq!(
        step(&mut guard, probed(11, facts(1, 4))),
        expired(ExpiryCause::AheadOfStream {
            revision: 5,
            last_sequence: 4
        })
    );
}

#[test]
fn g9_benign_interior_gap_forwards_the_held_delivery() {
    let mut guard = streaming(5, GuardMode::Dense);
    let _ = step(&mut guard, delivered_at(10, 8, T0 + 8));
    // Floor exactly at frontier + 1: nothing after the frontier was evicted.
    assert_eq!(
        step(&mut guard, probed(12, facts(6, 10))),
        vec![GuardCommand::Forward]
    );
    assert!(guard.is_streaming());
    assert_eq!(guard.frontier(), Some(8));
    assert_eq!(guard.poll_timeout(), Some(Millis(12 + FLOOR_PROBE_IDLE_MS)));
    // The held write time became the frontier's: a reconnect resumes with it.
    let _ = step(&mut guard, reconnected(13));
    let f = StreamFacts {
        created_ms: Some(T0 + 8 + RECREATE_SLACK_MS + 1),
        ..facts(1, 10)
    };
    assert_eq!(
        step(&mut guard, probed(14, f)),
        expired(ExpiryCause::Recreated {
            created_ms: T0 + 8 + RECREATE_SLACK_MS + 1,
            written_ms: T0 + 8
        })
    );
}

#[test]
fn g10_idle_probe_fires_at_the_deadline_not_before() {
    let mut guard = streaming(5, GuardMode::Dense);
    let deadline = guard
        .poll_timeout()
        .expect("dense streaming guard has a deadline");
    assert_eq!(deadline, Millis(FLOOR_PROBE_IDLE_MS));
    let before = guard.clone();
    assert_eq!(step(&mut guard, tick(0)), vec![], "stale tick");
    assert_eq!(
        guard, before,
        "a stale tick at the same time changes nothing"
    );
    assert_eq!(step(&mut guard, tick(deadline.0 - 1)), vec![], "stale tick");
    assert!(guard.is_streaming());
    assert_eq!(guard.poll_timeout(), Some(deadline));
    assert_eq!(
        step(&mut guard, tick(deadline.0)),
        vec![GuardCommand::ProbeStream]
    );
    assert!(!guard.is_streaming());
    assert_eq!(guard.poll_timeout(), None);
}

#[test]
fn g11_passing_idle_probe_rearms_the_deadline() {
    let mut guard = streaming(5, GuardMode::Dense);
    let _ = step(&mut guard, tick(FLOOR_PROBE_IDLE_MS));
    assert_eq!(
        step(&mut guard, probed(FLOOR_PROBE_IDLE_MS + 7, facts(6, 5))),
        vec![]
    );
    assert!(guard.is_streaming());
    assert_eq!(guard.frontier(), Some(5));
    assert_eq!(
        guard.poll_timeout(),
        Some(Millis(2 * FLOOR_PROBE_IDLE_MS + 7))
    );
}

#[test]
fn g11_idle_probe_finds_the_floor_passed() {
    let mut guard = streaming(5, GuardMode::Dense);
    let _ = step(&mut guard, tick(FLOOR_PROBE_IDLE_MS + 1));
    assert_eq!(
        step(&mut guard, probed(FLOOR_PROBE_IDLE_MS + 2, facts(7, 9))),
        expired(ExpiryCause::FloorPassed {
            frontier: 5,
            first_sequence: 7
        })
    );
    assert!(guard.is_done());
}

#[test]
fn g11_idle_probe_finds_the_stream_behind() {
    let mut guard = streaming(5, GuardMode::Dense);
    let _ = step(&mut guard, tick(FLOOR_PROBE_IDLE_MS));
    assert_eq!(
        step(&mut guard, probed(FLOOR_PROBE_IDLE_MS, facts(1, 3))),
        expired(ExpiryCause::AheadOfStream {
            revision: 5,
            last_sequence: 3
        })
    );
}

// ---------------------------------------------------------------------------
// ResumeGuard: G12–G15, failures, stale and unexpected input
// ---------------------------------------------------------------------------

/// A guard in each phase, built through accepted events only.
fn guard_in(phase: &str) -> ResumeGuard {
    let mut guard = ResumeGuard::resumed(cursor(5), GuardMode::Dense, Millis(0));
    let _ = drain(&mut guard);
    if phase == "PreCheck" {
        return guard;
    }
    let _ = step(&mut guard, probed(1, facts(1, 10)));
    if phase == "Creating" {
        return guard;
    }
    let _ = step(&mut guard, created(2));
    if phase == "PostCheck" {
        return guard;
    }
    let _ = step(&mut guard, probed(3, facts(1, 10)));
    match phase {
        "Streaming" => guard,
        "AwaitingFloor" => {
            let _ = step(&mut guard, delivered(4, 8));
            guard
        }
        "IdleProbe" => {
            let _ = step(&mut guard, tick(3 + FLOOR_PROBE_IDLE_MS));
            guard
        }
        "Done" => {
            let _ = step(&mut guard, delivered(4, 8));
            let _ = step(&mut guard, probed(5, facts(9, 10)));
            assert!(guard.is_done());
            guard
        }
        other => panic!("no phase {other}"),
    }
}

const PHASES: [&str; 7] = [
    "PreCheck",
    "Creating",
    "PostCheck",
    "Streaming",
    "AwaitingFloor",
    "IdleProbe",
    "Done",
];

/// One event of each kind, all at a time later than any guard above has seen.
fn every_event(now: u64) -> Vec<(&'static str, GuardEvent)> {
    vec![
        ("StreamProbed", probed(now, facts(1, 10))),
        ("ProbeFailed", probe_failed(now)),
        ("ConsumerCreated", created(now)),
        ("ConsumerFailed", create_failed(now, "boom")),
        ("Delivered", delivered(now, 6)),
        ("Reconnected", reconnected(now)),
        ("ConsumerFault", fault(now, true)),
        ("Tick", tick(now)),
    ]
}

/// The accepted (phase, event) pairs of the table; everything else is G14/G15.
fn accepts(phase: &str, event: &str) -> bool {
    matches!(
        (phase, event),
        (
            "PreCheck" | "PostCheck" | "AwaitingFloor" | "IdleProbe",
            "StreamProbed" | "ProbeFailed"
        ) | ("Creating", "ConsumerCreated" | "ConsumerFailed")
            | ("Streaming", "Delivered" | "Reconnected" | "ConsumerFault")
            | (
                "PreCheck" | "Creating" | "PostCheck" | "Streaming" | "AwaitingFloor" | "IdleProbe",
                "Tick"
            )
    )
}

#[test]
fn g12_failed_probe_ends_the_watch_in_every_probe_phase() {
    for phase in ["PreCheck", "PostCheck", "AwaitingFloor", "IdleProbe"] {
        let mut guard = guard_in(phase);
        assert_eq!(
            step(&mut guard, probe_failed(100_000)),
            vec![GuardCommand::Fail(KvError::Timeout)],
            "{phase}"
        );
        assert!(guard.is_done(), "{phase}");
        assert_eq!(guard.poll_timeout(), None);
    }
}

#[test]
fn g13_ticks_outside_a_due_dense_deadline_are_ignored() {
    for phase in [
        "PreCheck",
        "Creating",
        "PostCheck",
        "AwaitingFloor",
        "IdleProbe",
    ] {
        let mut guard = guard_in(phase);
        let before = guard.clone();
        // At a time the guard has already seen: bit-for-bit unchanged.
        assert_eq!(step(&mut guard, tick(0)), vec![], "{phase}");
        assert_eq!(guard, before, "{phase}");
        // Far in the future: still nothing to do in a phase that awaits a completion.
        assert_eq!(step(&mut guard, tick(u64::MAX)), vec![], "{phase}");
        assert_eq!(guard.frontier(), before.frontier(), "{phase}");
        assert_eq!(guard.poll_timeout(), None, "{phase}");
    }
    let mut sparse = streaming(5, GuardMode::Sparse);
    assert_eq!(step(&mut sparse, tick(u64::MAX)), vec![]);
    assert!(sparse.is_streaming());
}

#[test]
fn g14_done_guard_rejects_everything_unchanged() {
    let mut guard = guard_in("Done");
    let before = guard.clone();
    for (name, event) in every_event(1_000_000) {
        assert_eq!(
            guard.handle(event),
            Err(Unexpected {
                phase: "Done",
                event: name
            })
        );
        assert_eq!(guard, before, "{name} changed a finished guard");
        assert_eq!(guard.poll_command(), None);
    }
}

#[test]
fn g15_unexpected_pairs_are_rejected_bit_for_bit_unchanged() {
    let mut rejected = 0;
    for phase in PHASES {
        for (name, event) in every_event(1_000_000) {
            if accepts(phase, name) {
                continue;
            }
            let mut guard = guard_in(phase);
            let before = guard.clone();
            assert_eq!(
                guard.handle(event),
                Err(Unexpected { phase, event: name }),
                "{phase} / {name}"
            );
            assert_eq!(guard, before, "{phase} / {name}");
            rejected += 1;
        }
    }
    // 7 phases × 8 events − 19 accepted pairs (six live phases × three events, and
    // `ConsumerFault` while streaming).
    assert_eq!(rejected, 56 - 19);
}

#[test]
fn g15_every_accepted_pair_is_accepted() {
    for phase in PHASES {
        for (name, event) in every_event(1_000_000) {
            if accepts(phase, name) {
                let mut guard = guard_in(phase);
                assert_eq!(guard.handle(event), Ok(()), "{phase} / {name}");
            }
        }
    }
}

#[test]
fn g15_delivery_while_a_floor_probe_is_pending_is_rejected() {
    let mut guard = streaming(5, GuardMode::Dense);
    let _ = step(&mut guard, delivered(10, 8));
    let before = guard.clone();
    assert_eq!(
        guard.handle(delivered(11, 9)),
        Err(Unexpected {
            phase: "AwaitingFloor",
            event: "Delivered"
        })
    );
    assert_eq!(guard, before);
    // The held delivery is still the one judged.
    assert_eq!(
        step(&mut guard, probed(12, facts(1, 10))),
        vec![GuardCommand::Forward]
    );
    assert_eq!(guard.frontier(), Some(8));
}

// ---------------------------------------------------------------------------
// ResumeGuard: G16–G17, reconnects
// ---------------------------------------------------------------------------

#[test]
fn g16_reconnect_with_a_frontier_reruns_the_resume_from_it() {
    let mut guard = streaming(5, GuardMode::Dense);
    let _ = step(&mut guard, delivered(10, 6));
    let _ = step(&mut guard, delivered(11, 7));
    assert_eq!(
        step(&mut guard, reconnected(12)),
        vec![GuardCommand::DropConsumer, GuardCommand::ProbeStream]
    );
    assert!(!guard.is_streaming());
    assert_eq!(guard.poll_timeout(), None, "deadline cleared");
    assert_eq!(guard.frontier(), Some(7));
    // G1 from the frontier: the floor moved past 8 while the client was away.
    assert_eq!(
        step(&mut guard, probed(13, facts(9, 12))),
        expired(ExpiryCause::BelowFloor {
            revision: 7,
            first_sequence: 9
        })
    );
}

#[test]
fn g16_full_rerun_goes_through_pre_and_post_check() {
    let mut guard = streaming(5, GuardMode::Sparse);
    let _ = step(&mut guard, delivered(10, 9));
    assert_eq!(
        step(&mut guard, reconnected(11)),
        vec![GuardCommand::DropConsumer, GuardCommand::ProbeStream]
    );
    assert_eq!(
        step(&mut guard, probed(12, facts(3, 12))),
        vec![GuardCommand::CreateConsumer { start_sequence: 10 }]
    );
    // Nothing is judged before the post-check passes.
    assert!(guard.handle(delivered(13, 10)).is_err());
    assert_eq!(
        step(&mut guard, created(13)),
        vec![GuardCommand::ProbeStream]
    );
    assert!(guard.handle(delivered(14, 10)).is_err());
    assert_eq!(step(&mut guard, probed(14, facts(3, 12))), vec![]);
    assert!(guard.is_streaming());
    assert_eq!(guard.frontier(), Some(9));
    assert_eq!(
        step(&mut guard, delivered(15, 9)),
        vec![GuardCommand::Skip { revision: 9 }]
    );
    assert_eq!(
        step(&mut guard, delivered(16, 11)),
        vec![GuardCommand::Forward]
    );
}

#[test]
fn g16_reresume_carries_the_last_delivery_write_time() {
    let mut guard = streaming(5, GuardMode::Dense);
    let _ = step(&mut guard, delivered_at(10, 6, T0 + 6));
    let _ = step(&mut guard, reconnected(11));
    let recreated = StreamFacts {
        created_ms: Some(T0 + 6 + RECREATE_SLACK_MS + 1),
        ..facts(1, 10)
    };
    assert_eq!(
        step(&mut guard, probed(12, recreated)),
        expired(ExpiryCause::Recreated {
            created_ms: T0 + 6 + RECREATE_SLACK_MS + 1,
            written_ms: T0 + 6
        })
    );
}

#[test]
fn g16_reresume_carries_the_cursor_write_time_when_nothing_was_delivered() {
    let mut guard = streaming_from(cursor_at(5, T0), GuardMode::Sparse);
    let _ = step(&mut guard, reconnected(10));
    let recreated = StreamFacts {
        created_ms: Some(T0 + RECREATE_SLACK_MS + 1),
        ..facts(1, 10)
    };
    assert_eq!(
        step(&mut guard, probed(11, recreated)),
        expired(ExpiryCause::Recreated {
            created_ms: T0 + RECREATE_SLACK_MS + 1,
            written_ms: T0
        })
    );
}

#[test]
fn g16_reresume_write_time_enables_the_supersession_rule() {
    // The frontier's write time lets the re-resume use row 4 on an age-only bucket.
    let mut guard = streaming(5, GuardMode::Dense);
    let _ = step(&mut guard, delivered_at(10, 6, T0));
    let _ = step(&mut guard, reconnected(11));
    let f = StreamFacts {
        server_now_ms: Some(T0 + 1_000),
        limits: AGE_ONLY,
        ..facts(9, 12)
    };
    assert_eq!(
        step(&mut guard, probed(12, f)),
        vec![GuardCommand::CreateConsumer { start_sequence: 9 }]
    );
}

#[test]
fn g16_unknown_write_time_after_a_supersession_resume() {
    // G4: after a row-4 resume the frontier is first − 1, whose write time is
    // unknown; the next re-resume cannot use rows 2 or 4 with it.
    let mut guard = ResumeGuard::resumed(cursor_at(3, T0), GuardMode::Dense, Millis(0));
    let _ = drain(&mut guard);
    let age_only = StreamFacts {
        server_now_ms: Some(T0 + 1_000),
        limits: AGE_ONLY,
        ..facts(10, 20)
    };
    let _ = step(&mut guard, probed(1, age_only.clone()));
    let _ = step(&mut guard, created(2));
    let _ = step(&mut guard, probed(3, age_only.clone()));
    assert_eq!(guard.frontier(), Some(9));
    let _ = step(&mut guard, reconnected(4));
    let later = StreamFacts {
        created_ms: Some(T0 + 10 * RECREATE_SLACK_MS),
        first_sequence: 12,
        ..age_only
    };
    assert_eq!(
        step(&mut guard, probed(5, later)),
        expired(ExpiryCause::BelowFloor {
            revision: 9,
            first_sequence: 12
        }),
        "no write time: not Recreated, and no supersession rule"
    );
}

#[test]
fn g16_fresh_guard_judges_sparse_until_a_reconnect_switches_to_dense() {
    let mut guard = ResumeGuard::fresh(GuardMode::Dense, Millis(0));
    assert_eq!(drain(&mut guard), vec![]);
    assert!(guard.is_streaming());
    assert_eq!(guard.frontier(), None);
    assert_eq!(guard.poll_timeout(), None);
    // State-sync deliveries are sparse (last per subject): gaps are not probed.
    assert_eq!(
        step(&mut guard, delivered(1, 3)),
        vec![GuardCommand::Forward]
    );
    assert_eq!(
        step(&mut guard, delivered(2, 9)),
        vec![GuardCommand::Forward]
    );
    assert_eq!(guard.poll_timeout(), None);
    assert_eq!(step(&mut guard, tick(10 * FLOOR_PROBE_IDLE_MS)), vec![]);
    // A reconnect resumes from the frontier as the scope's (Dense) guard.
    assert_eq!(
        step(&mut guard, reconnected(10 * FLOOR_PROBE_IDLE_MS + 1)),
        vec![GuardCommand::DropConsumer, GuardCommand::ProbeStream]
    );
    let now = 10 * FLOOR_PROBE_IDLE_MS + 2;
    assert_eq!(
        step(&mut guard, probed(now, facts(1, 20))),
        vec![GuardCommand::CreateConsumer { start_sequence: 10 }]
    );
    assert_eq!(
        step(&mut guard, created(now)),
        vec![GuardCommand::ProbeStream]
    );
    assert_eq!(step(&mut guard, probed(now, facts(1, 20))), vec![]);
    assert_eq!(
        guard.poll_timeout(),
        Some(Millis(now + FLOOR_PROBE_IDLE_MS))
    );
    assert_eq!(
        step(&mut guard, delivered(now, 12)),
        vec![GuardCommand::ProbeStream],
        "now Dense: a gap is probed"
    );
}

#[test]
fn g16_fresh_sparse_guard_stays_sparse_after_a_reconnect() {
    let mut guard = ResumeGuard::fresh(GuardMode::Sparse, Millis(0));
    let _ = step(&mut guard, delivered(1, 3));
    let _ = step(&mut guard, reconnected(2));
    let _ = step(&mut guard, probed(3, facts(1, 20)));
    let _ = step(&mut guard, created(4));
    assert_eq!(step(&mut guard, probed(5, facts(1, 20))), vec![]);
    assert_eq!(guard.poll_timeout(), None);
    assert_eq!(
        step(&mut guard, delivered(6, 12)),
        vec![GuardCommand::Forward]
    );
}

#[test]
fn g16_fresh_guard_reresume_has_no_write_time_unless_delivered() {
    let mut guard = ResumeGuard::fresh(GuardMode::Sparse, Millis(0));
    let _ = step(&mut guard, delivered_at(1, 3, T0));
    let _ = step(&mut guard, reconnected(2));
    let recreated = StreamFacts {
        created_ms: Some(T0 + RECREATE_SLACK_MS + 1),
        ..facts(1, 20)
    };
    assert_eq!(
        step(&mut guard, probed(3, recreated)),
        expired(ExpiryCause::Recreated {
            created_ms: T0 + RECREATE_SLACK_MS + 1,
            written_ms: T0
        })
    );
}

#[test]
fn g17_reconnect_without_a_frontier_keeps_streaming() {
    let mut guard = ResumeGuard::fresh(GuardMode::Dense, Millis(0));
    let before = guard.clone();
    assert_eq!(step(&mut guard, reconnected(0)), vec![]);
    assert_eq!(guard, before);
    assert!(guard.is_streaming());
    // The client's recreation replays from the start: nothing to skip yet.
    assert_eq!(
        step(&mut guard, delivered(1, 1)),
        vec![GuardCommand::Forward]
    );
    assert_eq!(
        step(&mut guard, delivered(2, 1)),
        vec![GuardCommand::Skip { revision: 1 }]
    );
    // Unknown revisions never give a frontier: a reconnect still keeps streaming.
    let mut unknown_only = ResumeGuard::fresh(GuardMode::Dense, Millis(0));
    let _ = step(&mut unknown_only, delivered_unknown(1));
    assert_eq!(step(&mut unknown_only, reconnected(2)), vec![]);
    assert!(unknown_only.is_streaming());
}

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

#[test]
fn now_is_clamped_non_decreasing() {
    let mut guard = streaming(5, GuardMode::Dense);
    assert_eq!(
        step(&mut guard, delivered(100, 6)),
        vec![GuardCommand::Forward]
    );
    // A delivery stamped earlier arms the deadline from the clamped `now`.
    assert_eq!(
        step(&mut guard, delivered(50, 7)),
        vec![GuardCommand::Forward]
    );
    assert_eq!(
        guard.poll_timeout(),
        Some(Millis(100 + FLOOR_PROBE_IDLE_MS))
    );
}

#[test]
fn tick_due_is_judged_on_the_clamped_now() {
    let mut guard = streaming(5, GuardMode::Dense);
    assert_eq!(guard.poll_timeout(), Some(Millis(FLOOR_PROBE_IDLE_MS)));
    // An unjudged delivery does not re-arm; the guard has now seen 40 s.
    let _ = step(&mut guard, delivered_unknown(40_000));
    // A tick stamped before the deadline arrives after the guard saw a later time:
    // the clamped now is past the deadline, so the probe is due.
    assert_eq!(
        step(&mut guard, tick(20_000)),
        vec![GuardCommand::ProbeStream]
    );
}

#[test]
fn deadline_saturates_at_the_end_of_time() {
    let mut guard = ResumeGuard::resumed(cursor(5), GuardMode::Dense, Millis(0));
    let _ = drain(&mut guard);
    let _ = step(&mut guard, probed(1, facts(1, 10)));
    let _ = step(&mut guard, created(2));
    let _ = step(&mut guard, probed(u64::MAX - 1, facts(1, 10)));
    assert_eq!(guard.poll_timeout(), Some(Millis(u64::MAX)));
    assert_eq!(
        step(&mut guard, tick(u64::MAX)),
        vec![GuardCommand::ProbeStream]
    );
}

#[test]
fn guard_mode_is_dense_exactly_when_the_scope_is_unfiltered() {
    assert_eq!(guard_mode(&[""]), GuardMode::Dense);
    assert_eq!(guard_mode(&["a.", ""]), GuardMode::Dense);
    assert_eq!(guard_mode(&["a."]), GuardMode::Sparse);
    assert_eq!(guard_mode(&["a.", "b"]), GuardMode::Sparse);
    assert_eq!(guard_mode(&[]), GuardMode::Sparse);
}

// ---------------------------------------------------------------------------
// ResumeGuard::syncing: G18–G23, the state-sync snapshot check
// ---------------------------------------------------------------------------

fn snapshot_created(now: u64, pending: u64) -> GuardEvent {
    GuardEvent::SnapshotCreated {
        now: Millis(now),
        pending,
    }
}

/// The bucket of the conformance check `watch_state_sync`: revisions 1–10, whose
/// last-per-subject snapshot is b@2, a@3, c@5 (CAS tombstone), d@7, e@9, f@10.
const SNAPSHOT: [u64; 6] = [2, 3, 5, 7, 9, 10];

/// A syncing guard past its sync probe (sync point 10) and consumer creation.
fn synced(mode: GuardMode, pending: u64) -> ResumeGuard {
    let mut guard = ResumeGuard::syncing(mode, Millis(0));
    assert_eq!(drain(&mut guard), vec![GuardCommand::ProbeStream]);
    assert!(!guard.is_streaming());
    assert!(guard.is_syncing());
    assert_eq!(
        step(&mut guard, probed(1, facts(1, 10))),
        vec![GuardCommand::CreateSnapshotConsumer]
    );
    assert_eq!(step(&mut guard, snapshot_created(2, pending)), vec![]);
    assert!(guard.is_streaming());
    guard
}

#[test]
fn g19_a_caught_up_snapshot_is_forwarded_entry_by_entry_then_live_changes() {
    let mut guard = synced(GuardMode::Dense, 6);
    for r in SNAPSHOT {
        assert!(guard.is_syncing());
        assert_eq!(
            step(&mut guard, delivered(3, r)),
            vec![GuardCommand::Forward]
        );
    }
    assert!(!guard.is_syncing(), "the sync point was delivered");
    assert_eq!(
        step(&mut guard, delivered(4, 11)),
        vec![GuardCommand::Forward]
    );
    assert_eq!(guard.frontier(), Some(11));
    assert_eq!(
        guard.poll_timeout(),
        None,
        "state-sync deliveries stay Sparse"
    );
}

#[test]
fn g21_a_snapshot_consumer_on_a_replica_behind_the_sync_point_syncs_again() {
    // The CI failure (issue 9, defect 5): the consumer's replica had stored nothing
    // when the consumer was created (snapshot of 0), then replayed revisions 1, 2, …
    // as live messages. An unfiltered snapshot ends with the stream's last message,
    // so an empty one below sync point 10 is stale at once: nothing is forwarded.
    let mut guard = ResumeGuard::syncing(GuardMode::Dense, Millis(0));
    let _ = drain(&mut guard);
    let _ = step(&mut guard, probed(1, facts(1, 10)));
    assert_eq!(
        step(&mut guard, snapshot_created(2, 0)),
        vec![GuardCommand::DropConsumer, GuardCommand::ProbeStream]
    );
    assert!(!guard.is_streaming());
    assert_eq!(
        step(&mut guard, probed(4, facts(1, 10))),
        vec![GuardCommand::CreateSnapshotConsumer]
    );
    assert_eq!(step(&mut guard, snapshot_created(5, 6)), vec![]);
    let forwarded: Vec<u64> = SNAPSHOT
        .into_iter()
        .filter(|&r| step(&mut guard, delivered(6, r)) == vec![GuardCommand::Forward])
        .collect();
    assert_eq!(forwarded, SNAPSHOT);
    assert!(!guard.is_syncing());
}

#[test]
fn g21_a_filtered_snapshot_behind_the_sync_point_is_caught_at_its_first_replayed_revision() {
    // A prefix scope's snapshot need not reach the sync point, so an empty one is
    // judged by what follows: revision 1 after the snapshot, at or below 10, is history.
    let mut guard = synced(GuardMode::Sparse, 0);
    assert_eq!(
        step(&mut guard, delivered(3, 1)),
        vec![GuardCommand::DropConsumer, GuardCommand::ProbeStream]
    );
}

#[test]
fn g21_an_unfiltered_snapshot_spent_below_the_sync_point_syncs_again_at_once() {
    // The replica held revisions 1–6: snapshot b@2, a@3, c@5, d@6 (4 entries). Its
    // count is spent at 6 < 10: stale, before any of 7–10 is replayed.
    let mut guard = synced(GuardMode::Dense, 4);
    for r in [2, 3, 5] {
        assert_eq!(
            step(&mut guard, delivered(3, r)),
            vec![GuardCommand::Forward]
        );
    }
    assert_eq!(
        step(&mut guard, delivered(3, 6)),
        vec![
            GuardCommand::Forward,
            GuardCommand::DropConsumer,
            GuardCommand::ProbeStream
        ]
    );
}

#[test]
fn g21_a_partly_behind_replica_syncs_again_and_skips_what_was_forwarded() {
    // The replica had stored revisions 1–6: snapshot b@2, a@3, c@5, d@6 (4 entries),
    // then it replays 7, 8, … as live. 7 ≤ sync point 10 after the snapshot: stale.
    let mut guard = synced(GuardMode::Sparse, 4);
    for r in [2, 3, 5, 6] {
        assert_eq!(
            step(&mut guard, delivered(3, r)),
            vec![GuardCommand::Forward]
        );
    }
    assert_eq!(
        step(&mut guard, delivered(4, 7)),
        vec![GuardCommand::DropConsumer, GuardCommand::ProbeStream]
    );
    assert_eq!(
        step(&mut guard, probed(5, facts(1, 10))),
        vec![GuardCommand::CreateSnapshotConsumer]
    );
    assert_eq!(step(&mut guard, snapshot_created(6, 6)), vec![]);
    let mut commands = Vec::new();
    for r in SNAPSHOT {
        commands.extend(step(&mut guard, delivered(7, r)));
    }
    assert_eq!(
        commands,
        vec![
            GuardCommand::Skip { revision: 2 },
            GuardCommand::Skip { revision: 3 },
            GuardCommand::Skip { revision: 5 },
            GuardCommand::Forward,
            GuardCommand::Forward,
            GuardCommand::Forward,
        ]
    );
    assert_eq!(guard.frontier(), Some(10));
}

#[test]
fn g22_a_reconnect_in_the_snapshot_phase_syncs_again_instead_of_replaying_history() {
    let mut guard = synced(GuardMode::Dense, 6);
    assert_eq!(
        step(&mut guard, delivered(3, 2)),
        vec![GuardCommand::Forward]
    );
    assert_eq!(
        step(&mut guard, delivered(3, 3)),
        vec![GuardCommand::Forward]
    );
    // A resume from the frontier (G16) would deliver 4, 5, 6, … : every revision.
    assert_eq!(
        step(&mut guard, reconnected(4)),
        vec![GuardCommand::DropConsumer, GuardCommand::ProbeStream]
    );
    assert_eq!(
        step(&mut guard, probed(5, facts(1, 12))),
        vec![GuardCommand::CreateSnapshotConsumer]
    );
    // Meanwhile a@11 and g@12 were written: the new snapshot is b@2 c@5 d@7 e@9 f@10 a@11 g@12.
    assert_eq!(step(&mut guard, snapshot_created(6, 7)), vec![]);
    let mut commands = Vec::new();
    for r in [2, 5, 7, 9, 10, 11, 12] {
        commands.extend(step(&mut guard, delivered(7, r)));
    }
    assert_eq!(
        commands,
        vec![
            GuardCommand::Skip { revision: 2 },
            GuardCommand::Forward,
            GuardCommand::Forward,
            GuardCommand::Forward,
            GuardCommand::Forward,
            GuardCommand::Forward,
            GuardCommand::Forward,
        ]
    );
    assert!(!guard.is_syncing());
}

#[test]
fn g22_a_reconnect_before_any_delivery_syncs_again() {
    let mut guard = synced(GuardMode::Dense, 6);
    assert_eq!(
        step(&mut guard, reconnected(3)),
        vec![GuardCommand::DropConsumer, GuardCommand::ProbeStream]
    );
}

#[test]
fn g23_after_the_snapshot_a_reconnect_resumes_from_the_frontier_as_dense() {
    let mut guard = synced(GuardMode::Dense, 6);
    for r in SNAPSHOT {
        let _ = step(&mut guard, delivered(3, r));
    }
    assert_eq!(
        step(&mut guard, reconnected(4)),
        vec![GuardCommand::DropConsumer, GuardCommand::ProbeStream]
    );
    assert_eq!(
        step(&mut guard, probed(5, facts(1, 12))),
        vec![GuardCommand::CreateConsumer { start_sequence: 11 }]
    );
    assert_eq!(
        step(&mut guard, created(6)),
        vec![GuardCommand::ProbeStream]
    );
    assert_eq!(step(&mut guard, probed(7, facts(1, 12))), vec![]);
    assert_eq!(guard.poll_timeout(), Some(Millis(7 + FLOOR_PROBE_IDLE_MS)));
}

#[test]
fn g19_an_empty_bucket_has_nothing_to_sync() {
    let mut guard = ResumeGuard::syncing(GuardMode::Dense, Millis(0));
    let _ = drain(&mut guard);
    let _ = step(&mut guard, probed(1, facts(0, 0)));
    assert_eq!(step(&mut guard, snapshot_created(2, 0)), vec![]);
    assert!(!guard.is_syncing());
    assert_eq!(
        step(&mut guard, delivered(3, 1)),
        vec![GuardCommand::Forward]
    );
    // A stream purged empty (first sequence past the last) has nothing to sync either.
    let mut purged = ResumeGuard::syncing(GuardMode::Dense, Millis(0));
    let _ = drain(&mut purged);
    let _ = step(&mut purged, probed(1, facts(11, 10)));
    assert_eq!(step(&mut purged, snapshot_created(2, 0)), vec![]);
    assert!(!purged.is_syncing());
}

#[test]
fn g21_stale_snapshot_consumers_are_replaced_a_bounded_number_of_times() {
    let mut guard = synced(GuardMode::Sparse, 0);
    for attempt in 0..MAX_STALE_RESYNCS {
        assert_eq!(
            step(&mut guard, delivered(3, 1)),
            vec![GuardCommand::DropConsumer, GuardCommand::ProbeStream],
            "attempt {attempt}"
        );
        let _ = step(&mut guard, probed(4, facts(1, 10)));
        let _ = step(&mut guard, snapshot_created(5, 0));
    }
    let end = step(&mut guard, delivered(6, 1));
    assert!(
        matches!(end.as_slice(), [GuardCommand::DropConsumer, GuardCommand::Fail(KvError::WatchError(text))] if text.contains("behind revision 10")),
        "{end:?}"
    );
    assert!(guard.is_done());
}

#[test]
fn g18_g20_sync_probe_and_creation_failures_end_the_watch() {
    let mut guard = ResumeGuard::syncing(GuardMode::Sparse, Millis(0));
    let _ = drain(&mut guard);
    assert_eq!(
        step(&mut guard, probe_failed(1)),
        vec![GuardCommand::Fail(KvError::Timeout)]
    );
    let mut guard = ResumeGuard::syncing(GuardMode::Sparse, Millis(0));
    let _ = drain(&mut guard);
    let _ = step(&mut guard, probed(1, facts(1, 10)));
    assert_eq!(
        step(&mut guard, create_failed(2, "boom")),
        vec![GuardCommand::Fail(KvError::WatchError("boom".to_string()))]
    );
}

#[test]
fn g15_a_syncing_guard_rejects_events_of_other_phases() {
    let mut guard = ResumeGuard::syncing(GuardMode::Dense, Millis(0));
    let _ = drain(&mut guard);
    assert!(guard.handle(delivered(1, 1)).is_err());
    assert!(guard.handle(reconnected(1)).is_err());
    assert!(guard.handle(fault(1, true)).is_err());
    let _ = step(&mut guard, probed(1, facts(1, 10)));
    assert!(
        guard.handle(created(2)).is_err(),
        "a snapshot consumer reports SnapshotCreated"
    );
    let _ = step(&mut guard, snapshot_created(2, 6));
    let mut resumed = ResumeGuard::resumed(cursor(3), GuardMode::Dense, Millis(0));
    let _ = drain(&mut resumed);
    let _ = step(&mut resumed, probed(1, facts(1, 10)));
    assert!(resumed.handle(snapshot_created(2, 6)).is_err());
}

#[test]
fn g21_an_unfiltered_snapshot_that_stalls_below_the_sync_point_syncs_again() {
    // A consumer on a catching-up replica can report a snapshot and then deliver
    // nothing (seen live); the window owes revisions up to 10, so silence is stale.
    let mut guard = synced(GuardMode::Dense, 6);
    assert_eq!(guard.poll_timeout(), Some(Millis(2 + SYNC_STALL_MS)));
    assert_eq!(
        step(&mut guard, delivered(3, 2)),
        vec![GuardCommand::Forward]
    );
    assert_eq!(guard.poll_timeout(), Some(Millis(3 + SYNC_STALL_MS)));
    assert_eq!(
        step(&mut guard, tick(2 + SYNC_STALL_MS)),
        vec![],
        "not due yet"
    );
    assert_eq!(
        step(&mut guard, tick(3 + SYNC_STALL_MS)),
        vec![GuardCommand::DropConsumer, GuardCommand::ProbeStream]
    );
    // A closed window has no stall timer; a filtered one never had one.
    let mut done = synced(GuardMode::Dense, 6);
    for r in SNAPSHOT {
        let _ = step(&mut done, delivered(3, r));
    }
    assert_eq!(done.poll_timeout(), None);
    let mut sparse = synced(GuardMode::Sparse, 6);
    assert_eq!(sparse.poll_timeout(), None);
    assert_eq!(step(&mut sparse, tick(10 * SYNC_STALL_MS)), vec![]);
}

// ---------------------------------------------------------------------------
// ResumeGuard: G24–G25, consumer faults
// ---------------------------------------------------------------------------

#[test]
fn g25_a_fault_without_a_reconnect_ends_the_watch() {
    let mut guard = streaming(5, GuardMode::Dense);
    let _ = step(&mut guard, delivered(10, 6));
    assert_eq!(step(&mut guard, fault(11, false)), fault_failure());
    assert!(guard.is_done());
    assert_eq!(guard.poll_timeout(), None);
    assert_eq!(
        guard.frontier(),
        Some(6),
        "the fault's delivery is never judged"
    );
}

#[test]
fn g25_a_fault_on_a_fresh_guard_without_a_reconnect_ends_the_watch() {
    let mut guard = ResumeGuard::fresh(GuardMode::Dense, Millis(0));
    assert_eq!(step(&mut guard, fault(1, false)), fault_failure());
    assert!(guard.is_done());
}

#[test]
fn g24_a_fault_after_a_reconnect_reresumes_from_the_frontier() {
    let mut guard = streaming(5, GuardMode::Dense);
    let _ = step(&mut guard, delivered(10, 6));
    let _ = step(&mut guard, delivered(11, 7));
    // The delivery in hand goes with the consumer; the new one delivers it again.
    assert_eq!(
        step(&mut guard, fault(12, true)),
        vec![GuardCommand::DropConsumer, GuardCommand::ProbeStream]
    );
    assert!(!guard.is_streaming());
    assert!(!guard.is_done());
    assert_eq!(guard.poll_timeout(), None, "deadline cleared");
    assert_eq!(
        step(&mut guard, probed(13, facts(1, 12))),
        vec![GuardCommand::CreateConsumer { start_sequence: 8 }]
    );
    assert_eq!(
        step(&mut guard, created(14)),
        vec![GuardCommand::ProbeStream]
    );
    assert_eq!(step(&mut guard, probed(15, facts(1, 12))), vec![]);
    assert!(guard.is_streaming());
    assert_eq!(
        step(&mut guard, delivered(16, 8)),
        vec![GuardCommand::Forward]
    );
}

#[test]
fn g24_a_fault_after_a_reconnect_still_meets_the_pre_check() {
    let mut guard = streaming(5, GuardMode::Sparse);
    let _ = step(&mut guard, delivered(10, 6));
    assert_eq!(
        step(&mut guard, fault(11, true)),
        vec![GuardCommand::DropConsumer, GuardCommand::ProbeStream]
    );
    // The floor moved past 7 while the client was away.
    assert_eq!(
        step(&mut guard, probed(12, facts(9, 12))),
        expired(ExpiryCause::BelowFloor {
            revision: 6,
            first_sequence: 9
        })
    );
}

#[test]
fn g24_a_fault_after_a_reconnect_in_the_snapshot_phase_syncs_again() {
    let mut guard = synced(GuardMode::Dense, 6);
    let _ = step(&mut guard, delivered(3, 2));
    assert_eq!(
        step(&mut guard, fault(4, true)),
        vec![GuardCommand::DropConsumer, GuardCommand::ProbeStream]
    );
    assert!(guard.is_syncing());
    assert_eq!(
        step(&mut guard, probed(5, facts(1, 10))),
        vec![GuardCommand::CreateSnapshotConsumer]
    );
}

#[test]
fn g25_a_fault_after_a_reconnect_that_keeps_the_consumer_ends_the_watch() {
    // G17 keeps a fresh guard's consumer across a reconnect: the fault is that
    // consumer's own.
    let mut guard = ResumeGuard::fresh(GuardMode::Dense, Millis(0));
    assert_eq!(step(&mut guard, fault(1, true)), fault_failure());
    assert!(guard.is_done());
}

#[test]
fn g25_a_fault_in_the_snapshot_phase_without_a_reconnect_ends_the_watch() {
    let mut guard = synced(GuardMode::Dense, 6);
    let _ = step(&mut guard, delivered(3, 2));
    assert_eq!(step(&mut guard, fault(4, false)), fault_failure());
    assert!(guard.is_done());
}
