//! Store applies in flight (docs/protocols/fold-machine.md, "Store applies in flight"):
//! a streaming flush does not wait for its store apply; the next flush does (row F0);
//! the completion arrives in any receiving phase (row S2).

use super::*;

fn failed(m: &mut M, now: u64, raw: Vec<KvUpdate>) {
    m.handle(FoldEvent::StoreApplied {
        now: Millis(now),
        outcome: StoreOutcome::Failed {
            raw,
            error: "disk full".into(),
        },
    })
    .unwrap();
}

/// The commit of the first batch (cursor 2) announces it; the flush that waited
/// for it then writes k3 (cursor 3).
fn announce_2_then_flush_3() -> Vec<C<u64>> {
    vec![
        C::OnApplied(cur(2)),
        C::SetTimer(None),
        C::Apply(vec![3]),
        C::StoreApply {
            raw: vec![put(3)],
            cursor: cur(3),
        },
    ]
}

/// Two updates fill a batch (max 2): the flush's store apply goes in flight.
fn first_batch_in_flight(m: &mut M) {
    update(m, 0, 1, Some(1));
    update(m, 1, 2, Some(2));
    assert_eq!(
        drain(m),
        vec![
            C::SetTimer(Some(Millis(10))),
            C::SetTimer(None),
            C::Apply(vec![1, 2]),
            C::StoreApply {
                raw: vec![put(1), put(2)],
                cursor: cur(2)
            },
        ]
    );
    assert!(m.store_in_flight());
    assert_eq!(m.phase(), FoldPhase::Idle);
}

#[test]
fn the_next_batch_is_received_while_the_store_writes() {
    let mut m = M::new(config(10, 2, Some(0), false));
    first_batch_in_flight(&mut m);
    update(&mut m, 2, 3, Some(3));
    assert_eq!(drain(&mut m), vec![C::SetTimer(Some(Millis(12)))]);
    assert_eq!(m.phase(), FoldPhase::Batching);
    assert_eq!(m.wants(), Wants::Any);
    assert_eq!(m.applied(), &cur(2));
    assert_eq!(m.committed(), &WatchCursor::none());
    // The completion does not close the open batch, and only announces its own cursor.
    committed(&mut m, 3);
    assert_eq!(drain(&mut m), vec![C::OnApplied(cur(2))]);
    assert_eq!(m.phase(), FoldPhase::Batching);
    assert_eq!(m.poll_timeout(), Some(Millis(12)));
    assert_eq!(m.committed(), &cur(2));
    // The open batch's high-water survived the completion.
    m.handle(FoldEvent::WindowElapsed { now: Millis(12) })
        .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            C::SetTimer(None),
            C::Apply(vec![3]),
            C::StoreApply {
                raw: vec![put(3)],
                cursor: cur(3)
            },
        ]
    );
}

#[test]
fn a_flush_waits_for_the_apply_in_flight_then_runs_whole() {
    let mut m = M::new(config(10, 2, Some(0), false));
    first_batch_in_flight(&mut m);
    update(&mut m, 2, 3, Some(3));
    update(&mut m, 3, 4, None);
    // Full again: no second store apply, no Apply either; the machine waits (F0).
    assert_eq!(drain(&mut m), vec![C::SetTimer(Some(Millis(12)))]);
    assert_eq!(m.wants(), Wants::Completion(Pending::Store));
    assert_eq!(m.phase(), FoldPhase::AwaitingStore);
    assert!(
        m.handle(FoldEvent::Update {
            now: Millis(4),
            update: put(5),
            parsed: Some(5),
        })
        .is_err(),
        "nothing is received while a flush waits"
    );
    committed(&mut m, 5);
    assert_eq!(
        drain(&mut m),
        vec![
            C::OnApplied(cur(2)),
            C::SetTimer(None),
            C::Apply(vec![3]),
            C::StoreApply {
                raw: vec![put(3), put(4)],
                cursor: cur(4)
            },
        ]
    );
    assert_eq!(m.phase(), FoldPhase::Idle);
    assert!(m.store_in_flight());
    committed(&mut m, 6);
    assert_eq!(drain(&mut m), vec![C::OnApplied(cur(4))]);
    assert_eq!(m.committed(), &cur(4));
}

#[test]
fn a_failure_in_flight_goes_back_in_front_of_what_came_since() {
    let mut m = M::new(config(10, 2, Some(0), false));
    first_batch_in_flight(&mut m);
    update(&mut m, 2, 3, Some(3));
    drain(&mut m);
    failed(&mut m, 3, vec![put(1), put(2)]);
    // The domain applied the batch: on_applied still fires; the store is behind.
    assert_eq!(drain(&mut m), vec![C::OnApplied(cur(2))]);
    assert_eq!(m.store_fail_streak(), 1);
    assert_eq!(m.committed(), &WatchCursor::none());
    assert_eq!(m.phase(), FoldPhase::Batching);
    m.handle(FoldEvent::WindowElapsed { now: Millis(12) })
        .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            C::SetTimer(None),
            C::Apply(vec![3]),
            C::StoreApply {
                raw: vec![put(1), put(2), put(3)],
                cursor: cur(3)
            },
        ]
    );
    committed(&mut m, 13);
    assert_eq!(m.store_fail_streak(), 0);
    assert_eq!(m.committed(), &cur(3));
}

#[test]
fn a_failure_in_flight_with_nothing_open_waits_for_the_next_flush() {
    let mut m = M::new(config(10, 2, Some(0), false));
    first_batch_in_flight(&mut m);
    failed(&mut m, 2, vec![put(1), put(2)]);
    assert_eq!(drain(&mut m), vec![C::OnApplied(cur(2))]);
    assert_eq!(m.phase(), FoldPhase::Idle);
    assert!(!m.store_in_flight());
    m.handle(FoldEvent::Shutdown { now: Millis(3) }).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![C::StoreApply {
            raw: vec![put(1), put(2)],
            cursor: cur(2)
        }]
    );
    assert_eq!(m.phase(), FoldPhase::AwaitingStore);
    committed(&mut m, 4);
    assert_eq!(drain(&mut m), vec![C::Finish(Ok(cur(2)))]);
}

#[test]
fn a_fail_stop_in_flight_ends_the_run_at_the_committed_cursor() {
    let mut m = M::new(config(10, 1, Some(0), false));
    let mut now = 0;
    for streak in 1..=MAX_STORE_APPLY_FAILURES {
        now += 1;
        update(&mut m, now, u64::from(streak), None);
        let commands = drain(&mut m);
        let Some(C::StoreApply { raw, .. }) = commands.last().cloned() else {
            panic!("each full batch is flushed: {commands:?}");
        };
        assert!(m.store_in_flight());
        failed(&mut m, now, raw);
    }
    let commands = drain(&mut m);
    assert!(
        matches!(commands.last(), Some(C::Finish(Err(KvError::WatchError(e)))) if e.contains("16 consecutive")),
        "{commands:?}"
    );
    assert_eq!(m.phase(), FoldPhase::Finished);
    assert_eq!(m.resume_cursor(), &WatchCursor::none());
}

#[test]
fn a_lost_store_in_flight_ends_the_run() {
    let mut m = M::new(config(10, 2, Some(0), false));
    first_batch_in_flight(&mut m);
    update(&mut m, 2, 3, Some(3));
    drain(&mut m);
    lose_the_store(&mut m, 3);
}

#[test]
fn shutdown_and_watch_end_wait_for_the_apply_in_flight() {
    for end in [false, true] {
        let mut m = M::new(config(10, 2, Some(0), false));
        first_batch_in_flight(&mut m);
        update(&mut m, 2, 3, Some(3));
        drain(&mut m);
        let event = if end {
            FoldEvent::WatchEnded {
                now: Millis(3),
                end: TaskEnd::Clean,
            }
        } else {
            FoldEvent::Shutdown { now: Millis(3) }
        };
        m.handle(event).unwrap();
        assert!(drain(&mut m).is_empty());
        assert_eq!(m.wants(), Wants::Completion(Pending::Store));
        committed(&mut m, 4);
        assert_eq!(drain(&mut m), announce_2_then_flush_3());
        // Shutdown and watch end are not streaming: this flush is awaited (S1).
        assert_eq!(m.phase(), FoldPhase::AwaitingStore);
        committed(&mut m, 5);
        assert_eq!(
            drain(&mut m),
            vec![C::OnApplied(cur(3)), C::Finish(Ok(cur(3)))]
        );
    }
}

#[test]
fn a_late_update_while_in_flight_is_held_until_the_window_closes() {
    let mut m = M::new(config(10, 2, Some(0), false));
    first_batch_in_flight(&mut m);
    update(&mut m, 2, 3, Some(3));
    drain(&mut m);
    // Row U0 with an apply in flight: the expired window waits, the update is held.
    update(&mut m, 20, 4, Some(4));
    assert!(drain(&mut m).is_empty());
    assert_eq!(m.wants(), Wants::Completion(Pending::Store));
    committed(&mut m, 21);
    assert_eq!(
        drain(&mut m),
        [
            announce_2_then_flush_3(),
            vec![C::SetTimer(Some(Millis(31)))]
        ]
        .concat()
    );
    assert_eq!(m.phase(), FoldPhase::Batching);
}

#[test]
fn an_export_waits_for_the_apply_in_flight() {
    let mut m = M::new(config(10, 2, Some(0), false));
    first_batch_in_flight(&mut m);
    m.handle(FoldEvent::ExportRequested { now: Millis(2) })
        .unwrap();
    assert!(drain(&mut m).is_empty());
    committed(&mut m, 3);
    assert_eq!(drain(&mut m), vec![C::OnApplied(cur(2)), C::RunExport]);
    assert_eq!(m.phase(), FoldPhase::AwaitingExport);
}

#[test]
fn a_memo_recorded_while_in_flight_is_committed_after_it() {
    let mut m = M::new(config(10, 2, Some(0), true));
    first_batch_in_flight(&mut m);
    m.handle(FoldEvent::RepairRequested {
        now: Millis(2),
        kind: RepairKind::Evicting,
    })
    .unwrap();
    assert!(drain(&mut m).is_empty());
    assert!(m.applied().seen_evicting());
    // The apply in flight carried no memo: committing it leaves the memo owed.
    committed(&mut m, 3);
    assert_eq!(
        drain(&mut m),
        vec![
            C::OnApplied(cur(2)),
            C::StoreApply {
                raw: vec![],
                cursor: cur(2).remembering(true)
            },
        ]
    );
    assert!(!m.committed().seen_evicting());
    committed(&mut m, 4);
    assert!(
        drain(&mut m).is_empty(),
        "a memo-only commit announces nothing"
    );
    assert!(m.committed().seen_evicting());
}

#[test]
fn a_completion_without_an_apply_in_flight_is_rejected_unchanged() {
    let mut m = M::new(config(10, 2, Some(0), false));
    update(&mut m, 0, 1, Some(1));
    drain(&mut m);
    let before = m.clone();
    let err = m
        .handle(FoldEvent::StoreApplied {
            now: Millis(1),
            outcome: StoreOutcome::Committed,
        })
        .unwrap_err();
    assert_eq!(err.phase, FoldPhase::Batching);
    assert_eq!(m, before);
}

#[test]
fn without_a_store_nothing_is_in_flight() {
    let mut m = M::new(config(10, 2, None, false));
    update(&mut m, 0, 1, Some(1));
    update(&mut m, 1, 2, Some(2));
    assert_eq!(
        drain(&mut m),
        vec![
            C::SetTimer(Some(Millis(10))),
            C::SetTimer(None),
            C::Apply(vec![1, 2]),
            C::OnApplied(cur(2)),
        ]
    );
    assert!(!m.store_in_flight());
}
