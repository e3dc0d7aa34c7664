//! Exact sequences of the fold machine's arming step and its expiry row K1
//! (docs/protocols/fold-machine.md, "Arming and expiry"), one scenario per test.

use super::put;
use super::*;
use crate::protocol::RepairMode;
use crate::protocol::identity::IdentityRefusal;
use crate::protocol::repair::ArmRefusal;
use FoldCommand as C;

type M = FoldMachine<u64>;

const CREATED_MS: u64 = 1_767_225_600_000;

fn config(store: Option<u64>, armed: bool) -> FoldConfig {
    FoldConfig {
        window_ms: 10,
        max: 100,
        has_store: store.is_some(),
        repair_armed: armed,
        resume: cur(3),
        store_cursor: store.map(cur),
    }
}

fn cur(rev: u64) -> WatchCursor {
    WatchCursor::from_u64(rev)
}

fn drain(m: &mut M) -> Vec<C<u64>> {
    std::iter::from_fn(|| m.poll_command()).collect()
}

fn notices(m: &mut M) -> Vec<FoldNotice> {
    std::iter::from_fn(|| m.poll_notice()).collect()
}

fn cfg_bucket() -> BucketIdentity {
    BucketIdentity::new("cfg", CREATED_MS)
}

/// A status reading of `cfg` created at `created_ms` with newest revision `last`.
fn reading(created_ms: u64, last: u64) -> BucketFacts {
    BucketFacts {
        identity: BucketIdentity::new("cfg", created_ms),
        last_revision: last,
    }
}

fn expired(now: u64, cursor: u64, bucket: Option<BucketFacts>) -> FoldEvent<u64> {
    FoldEvent::WatchExpired {
        now: Millis(now),
        cursor: cur(cursor),
        started_on: Some(cfg_bucket()),
        bucket,
    }
}

#[test]
fn arming_arms_every_mode_with_a_store_and_refuses_a_restore_without_one() {
    assert_eq!(arm_expiry(RepairMode::None, true), Ok(false));
    assert_eq!(arm_expiry(RepairMode::None, false), Ok(false));
    for mode in [RepairMode::Relist, RepairMode::Restore, RepairMode::Auto] {
        assert_eq!(arm_expiry(mode, true), Ok(true));
    }
    // A relist without a store re-lists alone: nothing is armed.
    assert_eq!(arm_expiry(RepairMode::Relist, false), Ok(false));
    for mode in [RepairMode::Restore, RepairMode::Auto] {
        assert_eq!(arm_expiry(mode, false), Err(ArmRefusal::NeedsStore));
    }
}

#[test]
fn the_repair_machine_runs_the_requested_mode_only_when_armed() {
    for mode in [
        RepairMode::None,
        RepairMode::Relist,
        RepairMode::Restore,
        RepairMode::Auto,
    ] {
        assert_eq!(effective_mode(mode, true), mode);
        assert_eq!(effective_mode(mode, false), RepairMode::None);
    }
}

#[test]
fn an_expired_cursor_below_the_floor_of_the_same_bucket_relists() {
    let mut m = M::new(config(Some(3), false));
    assert!(notices(&mut m).is_empty());
    m.handle(expired(5, 3, Some(reading(CREATED_MS, 4001))))
        .unwrap();
    assert_eq!(drain(&mut m), vec![C::AnswerExpiry(ExpiryAction::Relist)]);
    assert_eq!(
        notices(&mut m),
        vec![FoldNotice::CursorExpired {
            cursor: cur(3),
            action: ExpiryAction::Relist
        }]
    );
    assert_eq!(m.phase(), FoldPhase::Idle);
    assert_eq!(m.wants(), Wants::Any);
    assert_eq!((m.applied(), m.committed()), (&cur(3), &cur(3)));
}

#[test]
fn an_expiry_without_a_status_reading_relists() {
    let mut m = M::new(config(None, false));
    m.handle(expired(0, 3, None)).unwrap();
    assert_eq!(drain(&mut m), vec![C::AnswerExpiry(ExpiryAction::Relist)]);
}

#[test]
fn an_expiry_leaves_the_open_batch_and_its_window_alone() {
    let mut m = M::new(config(None, false));
    m.handle(FoldEvent::Update {
        now: Millis(0),
        update: put(4),
        parsed: Some(4),
    })
    .unwrap();
    assert_eq!(drain(&mut m), vec![C::SetTimer(Some(Millis(10)))]);
    m.handle(expired(2, 3, Some(reading(CREATED_MS, 4001))))
        .unwrap();
    // No flush, no timer change: only the answer.
    assert_eq!(drain(&mut m), vec![C::AnswerExpiry(ExpiryAction::Relist)]);
    assert_eq!(m.phase(), FoldPhase::Batching);
    assert_eq!(m.poll_timeout(), Some(Millis(10)));
    // The re-listed update joins the same batch; the window flushes both.
    m.handle(FoldEvent::Update {
        now: Millis(3),
        update: put(4001),
        parsed: Some(4001),
    })
    .unwrap();
    m.handle(FoldEvent::WindowElapsed { now: Millis(10) })
        .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            C::SetTimer(None),
            C::Apply(vec![4, 4001]),
            C::OnApplied(cur(4001)),
        ]
    );
}

#[test]
fn an_expiry_on_a_recreated_bucket_is_refused_and_the_watch_end_finishes_after_a_flush() {
    let mut m = M::new(config(Some(3), false));
    m.handle(FoldEvent::Update {
        now: Millis(0),
        update: put(4),
        parsed: Some(4),
    })
    .unwrap();
    let _ = drain(&mut m);
    m.handle(expired(1, 3, Some(reading(CREATED_MS + 5_000, 2))))
        .unwrap();
    let refusal = IdentityRefusal::Recreated {
        recorded: cfg_bucket(),
        actual: BucketIdentity::new("cfg", CREATED_MS + 5_000),
    };
    assert_eq!(
        drain(&mut m),
        vec![C::AnswerExpiry(ExpiryAction::Refuse(refusal.clone()))]
    );
    assert_eq!(m.phase(), FoldPhase::Batching);
    // The watch task ends with the refusal; everything received before it is flushed.
    m.handle(FoldEvent::WatchEnded {
        now: Millis(2),
        end: TaskEnd::Failed(refusal.clone().into()),
    })
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            C::SetTimer(None),
            C::Apply(vec![4]),
            C::StoreApply {
                raw: vec![put(4)],
                cursor: cur(4)
            },
        ]
    );
    m.handle(FoldEvent::StoreApplied {
        now: Millis(3),
        outcome: StoreOutcome::Committed,
    })
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![C::OnApplied(cur(4)), C::Finish(Err(refusal.into()))]
    );
}

#[test]
fn an_expired_cursor_ahead_of_the_bucket_is_refused_unless_a_repair_is_armed() {
    let ahead = || Some(reading(CREATED_MS, 2));
    let mut m = M::new(config(Some(3), false));
    m.handle(expired(0, 3, ahead())).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![C::AnswerExpiry(ExpiryAction::Refuse(
            IdentityRefusal::CursorAhead {
                revision: 3,
                last_revision: 2
            }
        ))]
    );
    let mut m = M::new(config(Some(3), true));
    m.handle(expired(0, 3, ahead())).unwrap();
    assert_eq!(drain(&mut m), vec![C::AnswerExpiry(ExpiryAction::Repair)]);
}

#[test]
fn an_armed_repair_answers_repair_but_another_bucket_is_always_refused() {
    let mut m = M::new(config(Some(3), true));
    m.handle(expired(0, 3, Some(reading(CREATED_MS, 4001))))
        .unwrap();
    assert_eq!(drain(&mut m), vec![C::AnswerExpiry(ExpiryAction::Repair)]);
    assert_eq!(
        notices(&mut m),
        vec![FoldNotice::CursorExpired {
            cursor: cur(3),
            action: ExpiryAction::Repair
        }]
    );
    let other = BucketFacts {
        identity: BucketIdentity::new("big", CREATED_MS),
        last_revision: 4001,
    };
    m.handle(expired(1, 3, Some(other))).unwrap();
    assert_eq!(
        drain(&mut m),
        vec![C::AnswerExpiry(ExpiryAction::Refuse(
            IdentityRefusal::OtherBucket {
                recorded: cfg_bucket(),
                actual: BucketIdentity::new("big", CREATED_MS),
            }
        ))]
    );
}

#[test]
fn an_expiry_is_rejected_unchanged_while_a_completion_is_outstanding_or_after_finish() {
    let mut m = M::new(config(Some(3), false));
    m.handle(FoldEvent::ExportRequested { now: Millis(0) })
        .unwrap();
    assert_eq!(drain(&mut m), vec![C::RunExport]);
    let before = m.clone();
    assert_eq!(
        m.handle(expired(1, 3, None)),
        Err(Unexpected {
            phase: FoldPhase::AwaitingExport,
            event: "WatchExpired"
        })
    );
    assert_eq!(m, before);
    m.handle(FoldEvent::ExportFinished {
        now: Millis(2),
        outcome: TaskOutcome::Done { ok: true },
    })
    .unwrap();
    m.handle(FoldEvent::Shutdown { now: Millis(3) }).unwrap();
    let _ = drain(&mut m);
    assert_eq!(
        m.handle(expired(4, 3, None)),
        Err(Unexpected {
            phase: FoldPhase::Finished,
            event: "WatchExpired"
        })
    );
    assert_eq!(m.poll_command(), None);
}
