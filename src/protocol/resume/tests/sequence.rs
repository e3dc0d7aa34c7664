//! ResumeGuard rows G1–G8: the resume sequence and judging deliveries.

use super::*;

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
