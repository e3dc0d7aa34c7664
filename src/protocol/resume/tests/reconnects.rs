//! ResumeGuard rows G16–G17 (reconnects) and time.

use super::*;

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
    let mut guard = fresh_streaming(GuardMode::Dense);
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
    let mut guard = fresh_streaming(GuardMode::Sparse);
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
    let mut guard = fresh_streaming(GuardMode::Sparse);
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
    let mut guard = fresh_streaming(GuardMode::Dense);
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
    let mut unknown_only = fresh_streaming(GuardMode::Dense);
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
