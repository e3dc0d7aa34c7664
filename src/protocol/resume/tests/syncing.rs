//! ResumeGuard::syncing rows G18–G23: the state-sync snapshot check.

use super::*;

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
pub(super) fn synced(mode: GuardMode, pending: u64) -> ResumeGuard {
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

/// A stream holding one message (first = last) has a sync point: a snapshot
/// spent before reaching it is behind (only a stream with first > last is empty).
#[test]
fn g18_a_single_message_stream_has_a_sync_point() {
    let mut guard = ResumeGuard::syncing(GuardMode::Dense, Millis(0));
    let _ = drain(&mut guard);
    let _ = step(&mut guard, probed(1, facts(7, 7)));
    assert_eq!(
        step(&mut guard, snapshot_created(2, 0)),
        vec![GuardCommand::DropConsumer, GuardCommand::ProbeStream]
    );
}

/// A delivery without a readable revision (G8) still spends one of the snapshot's
/// deliveries: what comes after the count at or below the sync point is history.
#[test]
fn g8_an_unreadable_snapshot_delivery_spends_the_snapshot_count() {
    let mut guard = synced(GuardMode::Sparse, 1);
    assert_eq!(
        step(&mut guard, delivered_unknown(3)),
        vec![GuardCommand::Forward]
    );
    assert_eq!(
        step(&mut guard, delivered(4, 5)),
        vec![GuardCommand::DropConsumer, GuardCommand::ProbeStream]
    );
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
// ResumeGuard::fresh: G26, the guard asks for its own consumer
// ---------------------------------------------------------------------------

#[test]
fn g26_a_fresh_guard_asks_for_its_last_per_subject_consumer() {
    let mut guard = ResumeGuard::fresh(GuardMode::Dense, Millis(0));
    assert_eq!(
        drain(&mut guard),
        vec![GuardCommand::CreateSnapshotConsumer]
    );
    assert!(!guard.is_streaming());
    assert_eq!(guard.poll_timeout(), None);
    // Nothing is delivered before the consumer exists.
    let before = guard.clone();
    assert_eq!(
        guard.handle(delivered(1, 1)),
        Err(Unexpected {
            phase: "SyncCreating",
            event: "Delivered"
        })
    );
    assert_eq!(guard, before, "a refused event changes nothing");
    // No sync point: the snapshot count opens no window and arms no stall timer.
    assert_eq!(step(&mut guard, snapshot_created(2, 6)), vec![]);
    assert!(guard.is_streaming());
    assert!(!guard.is_syncing());
    assert_eq!(guard.poll_timeout(), None);
    assert_eq!(guard.frontier(), None);
    // Deliveries are judged Sparse until a reconnect: no probe on a gap.
    assert_eq!(
        step(&mut guard, delivered(3, 4)),
        vec![GuardCommand::Forward]
    );
    assert_eq!(
        step(&mut guard, delivered(4, 9)),
        vec![GuardCommand::Forward]
    );
    assert_eq!(guard.frontier(), Some(9));
}

#[test]
fn g26_g20_a_fresh_guard_whose_consumer_fails_ends_the_watch() {
    let mut guard = ResumeGuard::fresh(GuardMode::Sparse, Millis(0));
    assert_eq!(
        drain(&mut guard),
        vec![GuardCommand::CreateSnapshotConsumer]
    );
    assert_eq!(
        step(&mut guard, create_failed(1, "no responders")),
        vec![GuardCommand::Fail(KvError::WatchError(
            "no responders".into()
        ))]
    );
    assert!(guard.is_done());
}
