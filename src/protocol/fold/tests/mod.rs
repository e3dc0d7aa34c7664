//! Exact command sequences of the fold machine (docs/protocols/fold-machine.md, "The flush
//! procedure", "Transition table" and "Repair phases"), one scenario per test.

use super::*;
use crate::kv::{KvEntry, VersionToken};
use FoldCommand as C;

type M = FoldMachine<u64>;

fn config(window_ms: u64, max: usize, store: Option<u64>, armed: bool) -> FoldConfig {
    FoldConfig {
        window_ms,
        max,
        has_store: store.is_some(),
        repair_armed: armed,
        resume: WatchCursor::none(),
        store_cursor: store.map(|r| {
            if r == 0 {
                WatchCursor::none()
            } else {
                WatchCursor::from_u64(r)
            }
        }),
    }
}

pub(super) fn put(rev: u64) -> KvUpdate {
    KvUpdate::Put(KvEntry {
        key: format!("k{rev}"),
        value: vec![1],
        version: VersionToken::from_u64(rev),
    })
}

fn unknown_put() -> KvUpdate {
    KvUpdate::Put(KvEntry {
        key: "synthetic".into(),
        value: vec![1],
        version: VersionToken::unknown(),
    })
}

fn synthetic_delete(key: &str) -> KvUpdate {
    KvUpdate::Delete {
        key: key.into(),
        version: VersionToken::unknown(),
    }
}

fn cur(rev: u64) -> WatchCursor {
    WatchCursor::from_u64(rev)
}

fn drain(m: &mut M) -> Vec<C<u64>> {
    std::iter::from_fn(|| m.poll_command()).collect()
}

fn update(m: &mut M, now: u64, rev: u64, parsed: Option<u64>) {
    m.handle(FoldEvent::Update {
        now: Millis(now),
        update: put(rev),
        parsed,
    })
    .unwrap();
}

fn committed(m: &mut M, now: u64) {
    m.handle(FoldEvent::StoreApplied {
        now: Millis(now),
        outcome: StoreOutcome::Committed,
    })
    .unwrap();
}

#[test]
fn first_update_opens_the_window_and_the_deadline_flushes() {
    let mut m = M::new(config(10, 100, None, false));
    update(&mut m, 5, 1, Some(1));
    assert_eq!(drain(&mut m), vec![C::SetTimer(Some(Millis(15)))]);
    assert_eq!(m.poll_timeout(), Some(Millis(15)));
    m.handle(FoldEvent::WindowElapsed { now: Millis(14) })
        .unwrap();
    assert!(drain(&mut m).is_empty(), "a stale timer does nothing");
    m.handle(FoldEvent::WindowElapsed { now: Millis(15) })
        .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![C::SetTimer(None), C::Apply(vec![1]), C::OnApplied(cur(1))]
    );
    assert_eq!(m.phase(), FoldPhase::Idle);
    assert_eq!(m.applied(), &cur(1));
}

#[test]
fn cursor_is_stored_only_after_apply() {
    let mut m = M::new(config(10, 2, Some(0), false));
    update(&mut m, 0, 1, Some(1));
    update(&mut m, 1, 2, Some(2));
    assert_eq!(
        drain(&mut m),
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
    // A streaming flush: the store apply is in flight, the machine receives on.
    assert_eq!(m.wants(), Wants::Any);
    assert!(m.store_in_flight());
    assert_eq!(m.committed(), &WatchCursor::none());
    committed(&mut m, 2);
    assert_eq!(drain(&mut m), vec![C::OnApplied(cur(2))]);
    assert!(!m.store_in_flight());
    assert_eq!(m.committed(), &cur(2));
    assert_eq!(m.resume_cursor(), &cur(2));
}

#[test]
fn rejected_parses_still_advance_the_cursor_and_reach_the_store() {
    let mut m = M::new(config(10, 100, Some(0), false));
    update(&mut m, 0, 1, None);
    update(&mut m, 1, 2, None);
    m.handle(FoldEvent::WindowElapsed { now: Millis(10) })
        .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            C::SetTimer(Some(Millis(10))),
            C::SetTimer(None),
            C::StoreApply {
                raw: vec![put(1), put(2)],
                cursor: cur(2)
            },
        ]
    );
    committed(&mut m, 11);
    assert_eq!(drain(&mut m), vec![C::OnApplied(cur(2))]);
}

#[test]
fn unknown_version_never_moves_the_pending_cursor() {
    let mut m = M::new(config(10, 100, None, false));
    update(&mut m, 0, 4, Some(4));
    m.handle(FoldEvent::Update {
        now: Millis(1),
        update: unknown_put(),
        parsed: Some(9),
    })
    .unwrap();
    m.handle(FoldEvent::WindowElapsed { now: Millis(10) })
        .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            C::SetTimer(Some(Millis(10))),
            C::SetTimer(None),
            C::Apply(vec![4, 9]),
            C::OnApplied(cur(4))
        ]
    );
    // Alone, an unknown version applies but moves nothing.
    m.handle(FoldEvent::Update {
        now: Millis(20),
        update: unknown_put(),
        parsed: Some(10),
    })
    .unwrap();
    m.handle(FoldEvent::WindowElapsed { now: Millis(30) })
        .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            C::SetTimer(Some(Millis(30))),
            C::SetTimer(None),
            C::Apply(vec![10])
        ]
    );
    assert_eq!(m.applied(), &cur(4));
}

#[test]
fn a_late_update_closes_the_expired_window_first() {
    let mut m = M::new(config(10, 100, None, false));
    update(&mut m, 0, 1, Some(1));
    update(&mut m, 10, 2, Some(2));
    assert_eq!(
        drain(&mut m),
        vec![
            C::SetTimer(Some(Millis(10))),
            C::SetTimer(None),
            C::Apply(vec![1]),
            C::OnApplied(cur(1)),
            C::SetTimer(Some(Millis(20))),
        ]
    );
    assert_eq!(m.phase(), FoldPhase::Batching);
}

#[test]
fn max_zero_flushes_after_every_update() {
    let mut m = M::new(config(10, 0, None, false));
    update(&mut m, 0, 1, Some(1));
    assert_eq!(
        drain(&mut m),
        vec![
            C::SetTimer(Some(Millis(10))),
            C::SetTimer(None),
            C::Apply(vec![1]),
            C::OnApplied(cur(1))
        ]
    );
}

#[test]
fn a_failed_batch_is_requeued_in_front_and_committed_cumulatively() {
    let mut m = M::new(config(10, 100, Some(0), false));
    update(&mut m, 0, 1, Some(1));
    m.handle(FoldEvent::WindowElapsed { now: Millis(10) })
        .unwrap();
    drain(&mut m);
    m.handle(FoldEvent::StoreApplied {
        now: Millis(11),
        outcome: StoreOutcome::Failed {
            raw: vec![put(1)],
            error: "disk full".into(),
        },
    })
    .unwrap();
    // on_applied still fires: the domain applied the batch.
    assert_eq!(drain(&mut m), vec![C::OnApplied(cur(1))]);
    assert_eq!(m.applied(), &cur(1));
    assert_eq!(m.committed(), &WatchCursor::none());
    assert_eq!(m.resume_cursor(), &WatchCursor::none());
    assert_eq!(m.store_fail_streak(), 1);
    update(&mut m, 20, 2, Some(2));
    m.handle(FoldEvent::WindowElapsed { now: Millis(30) })
        .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            C::SetTimer(Some(Millis(30))),
            C::SetTimer(None),
            C::Apply(vec![2]),
            C::StoreApply {
                raw: vec![put(1), put(2)],
                cursor: cur(2)
            },
        ]
    );
    committed(&mut m, 31);
    assert_eq!(drain(&mut m), vec![C::OnApplied(cur(2))]);
    assert_eq!(m.store_fail_streak(), 0);
    assert_eq!(m.committed(), &cur(2));
}

#[test]
fn sixteen_consecutive_store_failures_end_the_run() {
    let mut m = M::new(config(0, 100, Some(0), false));
    let mut pending = Vec::new();
    for n in 1..=MAX_STORE_APPLY_FAILURES {
        // Each round ingests one more update and flushes: the re-queued batch goes
        // first, then the new update, and the apply fails again.
        let now = u64::from(n) * 10;
        update(&mut m, now, u64::from(n), Some(u64::from(n)));
        m.handle(FoldEvent::WindowElapsed { now: Millis(now) })
            .unwrap();
        pending.push(put(u64::from(n)));
        let commands = drain(&mut m);
        assert_eq!(
            commands.last(),
            Some(&C::StoreApply {
                raw: pending.clone(),
                cursor: cur(u64::from(n))
            }),
            "round {n}"
        );
        m.handle(FoldEvent::StoreApplied {
            now: Millis(now + 1),
            outcome: StoreOutcome::Failed {
                raw: pending.clone(),
                error: "eio".into(),
            },
        })
        .unwrap();
        let after = drain(&mut m);
        if n < MAX_STORE_APPLY_FAILURES {
            assert_eq!(after, vec![C::OnApplied(cur(u64::from(n)))]);
            assert_eq!(m.store_fail_streak(), n);
        } else {
            assert_eq!(
                after,
                vec![C::Finish(Err(KvError::WatchError(
                    "store apply failed 16 consecutive times: eio".into()
                )))]
            );
        }
    }
    assert_eq!(m.phase(), FoldPhase::Finished);
    assert!(
        m.handle(FoldEvent::Shutdown { now: Millis(1_000) })
            .is_err()
    );
}

#[test]
fn a_store_failure_reply_with_the_wrong_length_is_rejected_unchanged() {
    let mut m = M::new(config(0, 100, Some(0), false));
    update(&mut m, 0, 1, Some(1));
    m.handle(FoldEvent::WindowElapsed { now: Millis(0) })
        .unwrap();
    drain(&mut m);
    let before = m.clone();
    let err = m
        .handle(FoldEvent::StoreApplied {
            now: Millis(1),
            outcome: StoreOutcome::Failed {
                raw: vec![],
                error: "x".into(),
            },
        })
        .unwrap_err();
    assert_eq!(err.phase, FoldPhase::Idle);
    assert_eq!(m, before);
}

#[test]
fn a_lost_store_ends_the_run() {
    let mut m = M::new(config(0, 100, Some(0), false));
    update(&mut m, 0, 1, Some(1));
    m.handle(FoldEvent::WindowElapsed { now: Millis(0) })
        .unwrap();
    drain(&mut m);
    lose_the_store(&mut m, 1);
}

/// Feeds `StoreApplied{Lost}`: the run ends with the panic and the store is gone.
fn lose_the_store(m: &mut M, now: u64) {
    m.handle(FoldEvent::StoreApplied {
        now: Millis(now),
        outcome: StoreOutcome::Lost {
            panic: "boom".into(),
        },
    })
    .unwrap();
    assert_eq!(
        drain(m),
        vec![C::Finish(Err(KvError::WatchError(
            "snapshot store task panicked: boom".into()
        )))]
    );
    assert!(!m.has_store());
}

#[test]
fn export_flushes_first_then_runs() {
    let mut m = M::new(config(10, 100, Some(0), false));
    update(&mut m, 0, 1, Some(1));
    m.handle(FoldEvent::ExportRequested { now: Millis(1) })
        .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            C::SetTimer(Some(Millis(10))),
            C::SetTimer(None),
            C::Apply(vec![1]),
            C::StoreApply {
                raw: vec![put(1)],
                cursor: cur(1)
            },
        ]
    );
    committed(&mut m, 2);
    assert_eq!(drain(&mut m), vec![C::OnApplied(cur(1)), C::RunExport]);
    assert_eq!(m.wants(), Wants::Completion(Pending::Export));
    m.handle(FoldEvent::ExportFinished {
        now: Millis(3),
        outcome: TaskOutcome::Done { ok: true },
    })
    .unwrap();
    assert_eq!(drain(&mut m), vec![C::ReplyExport(ExportReply::Result)]);
    assert_eq!(m.phase(), FoldPhase::Idle);
}

#[test]
fn export_without_a_store_replies_no_store() {
    let mut m = M::new(config(10, 100, None, false));
    m.handle(FoldEvent::ExportRequested { now: Millis(1) })
        .unwrap();
    assert_eq!(drain(&mut m), vec![C::ReplyExport(ExportReply::NoStore)]);
}

#[test]
fn a_panicked_export_ends_the_run_and_loses_the_store() {
    let mut m = M::new(config(10, 100, Some(3), false));
    m.handle(FoldEvent::ExportRequested { now: Millis(1) })
        .unwrap();
    assert_eq!(drain(&mut m), vec![C::RunExport]);
    m.handle(FoldEvent::ExportFinished {
        now: Millis(2),
        outcome: TaskOutcome::Panicked { panic: "p".into() },
    })
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![C::Finish(Err(KvError::WatchError(
            "snapshot export task panicked: p".into()
        )))]
    );
    assert!(!m.has_store());
}

#[test]
fn shutdown_flushes_then_finishes_with_the_resume_cursor() {
    let mut m = M::new(config(10, 100, None, false));
    update(&mut m, 0, 7, Some(7));
    m.handle(FoldEvent::Shutdown { now: Millis(1) }).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            C::SetTimer(Some(Millis(10))),
            C::SetTimer(None),
            C::Apply(vec![7]),
            C::OnApplied(cur(7)),
            C::Finish(Ok(cur(7)))
        ]
    );
    assert_eq!(m.wants(), Wants::Nothing);
}

#[test]
fn with_a_store_the_result_is_the_committed_cursor() {
    let mut m = M::new(config(10, 100, Some(3), false));
    update(&mut m, 0, 4, Some(4));
    m.handle(FoldEvent::Shutdown { now: Millis(1) }).unwrap();
    drain(&mut m);
    m.handle(FoldEvent::StoreApplied {
        now: Millis(2),
        outcome: StoreOutcome::Failed {
            raw: vec![put(4)],
            error: "eio".into(),
        },
    })
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![C::OnApplied(cur(4)), C::Finish(Ok(cur(3)))],
        "the store's cursor, not the in-memory one"
    );
}

#[test]
fn an_empty_run_ends_with_the_cursor_it_started_from() {
    let mut m = M::new(FoldConfig {
        resume: cur(9),
        ..config(10, 100, None, false)
    });
    m.handle(FoldEvent::WatchEnded {
        now: Millis(1),
        end: TaskEnd::Clean,
    })
    .unwrap();
    assert_eq!(drain(&mut m), vec![C::Finish(Ok(cur(9)))]);
}

#[test]
fn watch_errors_and_panics_end_the_run_after_a_flush() {
    let mut m = M::new(config(10, 100, None, false));
    update(&mut m, 0, 1, Some(1));
    m.handle(FoldEvent::WatchEnded {
        now: Millis(1),
        end: TaskEnd::Panicked("oops".into()),
    })
    .unwrap();
    let commands = drain(&mut m);
    assert_eq!(
        commands.last(),
        Some(&C::Finish(Err(KvError::WatchError(
            "watch task panicked: oops".into()
        ))))
    );
    assert!(commands.contains(&C::Apply(vec![1])));
}

#[test]
fn resume_mismatch_is_noticed() {
    let mut m = M::new(FoldConfig {
        resume: cur(4),
        ..config(10, 10, Some(6), false)
    });
    assert_eq!(
        m.poll_notice(),
        Some(FoldNotice::ResumeMismatch {
            resume: cur(4),
            store: cur(6)
        })
    );
    assert_eq!(m.resume_cursor(), &cur(6));
}

#[test]
fn window_rounds_up_to_whole_milliseconds() {
    let c = FoldConfig::new(Duration::from_micros(1_500), 3, None, None, false);
    assert_eq!((c.window_ms, c.max, c.has_store), (2, 3, false));
    assert_eq!(c.resume, WatchCursor::none());
}

#[test]
fn batch_cap_is_max_but_at_least_one() {
    let cap = |max| FoldConfig::new(Duration::from_millis(1), max, None, None, false).batch_cap();
    assert_eq!((cap(0), cap(1), cap(7)), (1, 1, 7));
}

#[test]
fn refusal_and_unexpected_texts() {
    let texts = [
        RestoreRefused::NotAhead {
            artifact: cur(4),
            applied: cur(9),
        }
        .to_string(),
        RestoreRefused::EvictedDuringListing {
            artifact: cur(4),
            first_revision: 12,
        }
        .to_string(),
        Unexpected {
            phase: FoldPhase::Idle,
            event: "BacklogDrained",
        }
        .to_string(),
    ];
    assert_eq!(
        texts,
        [
            "the artifact cursor 4 is not ahead of the applied cursor 9",
            "the bucket evicted past the artifact cursor 4 (first revision 12) during the listing",
            "fold machine in phase Idle does not accept BacklogDrained",
        ]
    );
}

/// Row U2: a batch filled while batching is flushed, and the machine goes back
/// to idle (not to draining a backlog, row D1); the store is attached.
#[test]
fn a_batch_filled_while_batching_flushes_back_to_idle() {
    let mut m = M::new(config(10, 2, Some(0), false));
    assert!(m.has_store());
    update(&mut m, 0, 1, Some(1));
    update(&mut m, 1, 2, Some(2));
    let _ = drain(&mut m);
    committed(&mut m, 2);
    assert_eq!(drain(&mut m), vec![C::OnApplied(cur(2))]);
    assert_eq!(m.phase(), FoldPhase::Idle);
    assert_eq!(m.wants(), Wants::Any);
}

/// The batch is full when either the parsed items or the raw updates reach
/// `max`: with a store, updates the parser rejected fill it too.
#[test]
fn rejected_parses_fill_the_batch_for_the_store() {
    let mut m = M::new(config(10, 2, Some(0), false));
    update(&mut m, 0, 1, None);
    update(&mut m, 1, 2, None);
    assert_eq!(
        drain(&mut m),
        vec![
            C::SetTimer(Some(Millis(10))),
            C::SetTimer(None),
            C::StoreApply {
                raw: vec![put(1), put(2)],
                cursor: cur(2)
            },
        ]
    );
}

/// `CursorMovedBack` is noticed for a revision below the applied cursor, never
/// for the same revision or a later one.
#[test]
fn only_a_lower_revision_is_noticed_as_moving_back() {
    let mut m = M::new(config(10, 1, None, false));
    update(&mut m, 0, 9, Some(9));
    let _ = drain(&mut m);
    assert_eq!(m.applied(), &cur(9));
    update(&mut m, 1, 9, Some(9));
    update(&mut m, 2, 10, Some(10));
    let notices: Vec<_> = std::iter::from_fn(|| m.poll_notice()).collect();
    assert!(
        !notices
            .iter()
            .any(|n| matches!(n, FoldNotice::CursorMovedBack { .. })),
        "{notices:?}"
    );
    update(&mut m, 3, 4, Some(4));
    let notices: Vec<_> = std::iter::from_fn(|| m.poll_notice()).collect();
    assert!(
        notices.contains(&FoldNotice::CursorMovedBack {
            from: cur(10),
            to: cur(4)
        }),
        "{notices:?}"
    );
}

mod expiry;
mod export_hold;
mod in_flight;
mod repairs;
