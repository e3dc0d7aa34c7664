//! Start rows S1–S5 and the initial poll I1–I2: the cursor-less start check, the
//! repair-first decision and its warnings.

use super::*;

#[test]
fn cursorless_start_reads_retention_before_deciding() {
    for (mode, unanchored) in [
        (RepairMode::None, false),
        (RepairMode::None, true),
        (RepairMode::Restore, false),
        (RepairMode::Auto, false),
    ] {
        let mut m = machine(mode, None, unanchored);
        start(&mut m, 0);
        assert_eq!(commands(&mut m), [C::ReadRetention], "{mode:?}");
        assert_eq!(m.phase(), RepairPhase::CheckingStart);
        assert_eq!(notices(&mut m), []);
    }
}

#[test]
fn a_none_resume_cursor_counts_as_no_cursor() {
    let mut m = RepairMachine::new(RepairStart {
        mode: RepairMode::Auto,
        resume: Some(WatchCursor::none()),
        unanchored: false,
        scope: all(),
    });
    start(&mut m, 0);
    assert_eq!(commands(&mut m), [C::ReadRetention]);
    assert_eq!(m.phase(), RepairPhase::CheckingStart);
}

#[test]
fn cursorless_relist_start_polls_without_a_start_check() {
    let mut m = machine(RepairMode::Relist, None, false);
    start(&mut m, 0);
    assert_eq!(commands(&mut m), [C::ReadRetention]);
    assert_eq!(m.phase(), RepairPhase::InitialPoll);
    retention(&mut m, 3, keeps(1));
    assert_eq!(commands(&mut m), [C::StartWatch { from: None }]);
    assert_eq!(m.poll_timeout(), Some(Millis(3 + POLL)));
}

#[test]
fn unanchored_fold_repairs_before_any_watch() {
    let mut m = machine(RepairMode::Restore, None, true);
    start(&mut m, 0);
    assert_eq!(commands(&mut m), [C::ReadRetention]);
    assert_eq!(m.phase(), RepairPhase::RestoreFloor);
    assert_eq!(
        notices(&mut m),
        [
            N::UnanchoredFold,
            N::CursorExpired {
                cursor: WatchCursor::none()
            },
            N::RestorePlanned
        ]
    );
}

#[test]
fn unanchored_relist_fold_plans_after_its_initial_poll() {
    let mut m = machine(RepairMode::Relist, None, true);
    start(&mut m, 0);
    assert_eq!(notices(&mut m), [N::UnanchoredFold]);
    assert_eq!(commands(&mut m), [C::ReadRetention]);
    assert_eq!(m.phase(), RepairPhase::InitialPoll);
    retention(&mut m, 1, keeps(1));
    assert_eq!(commands(&mut m), [C::ReadRetention]);
    assert_eq!(m.phase(), RepairPhase::Planning);
    retention(&mut m, 2, keeps(1));
    assert_eq!(
        commands(&mut m),
        [C::SendRelist {
            scratch: Scratch::SystemTemp
        }]
    );
    assert_eq!(
        notices(&mut m),
        [
            N::CursorExpired {
                cursor: WatchCursor::none()
            },
            N::RelistPlanned
        ]
    );
}

#[test]
fn resumed_start_watches_from_the_cursor_without_a_start_check() {
    let mut m = machine(RepairMode::Restore, Some(7), false);
    start(&mut m, 0);
    assert_eq!(
        commands(&mut m),
        [C::StartWatch {
            from: Some(cursor(7))
        }]
    );
    assert_eq!(m.phase(), RepairPhase::Watching);
    assert_eq!(m.poll_timeout(), None, "Restore never polls");
    assert_eq!(notices(&mut m), []);
}

#[test]
fn resumed_auto_start_polls_once_before_watching() {
    let mut m = machine(RepairMode::Auto, Some(7), false);
    start(&mut m, 0);
    assert_eq!(commands(&mut m), [C::ReadRetention]);
    assert_eq!(m.phase(), RepairPhase::InitialPoll);
}

#[test]
fn a_remembered_eviction_skips_polling() {
    let mut m = RepairMachine::new(RepairStart {
        mode: RepairMode::Auto,
        resume: Some(cursor(7).remembering(true)),
        unanchored: false,
        scope: all(),
    });
    assert!(m.memo());
    start(&mut m, 0);
    assert_eq!(
        commands(&mut m),
        [C::StartWatch {
            from: Some(cursor(7).remembering(true))
        }]
    );
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn start_check_sets_the_memo_before_deciding_to_seed() {
    let mut m = machine(RepairMode::Auto, None, false);
    start(&mut m, 0);
    commands(&mut m);
    retention(&mut m, 2, evicted(9));
    assert!(m.memo());
    assert_eq!(commands(&mut m), [C::SendEvicting]);
    assert_eq!(m.phase(), RepairPhase::SendingEvicting);
    assert_eq!(notices(&mut m), [N::EvictionSeen]);
    feed(
        &mut m,
        E::EvictingSent {
            now: Millis(3),
            delivered: true,
        },
    );
    assert_eq!(
        notices(&mut m),
        [
            N::EvictedBucketSeeding,
            N::CursorExpired {
                cursor: WatchCursor::none()
            }
        ]
    );
    assert_eq!(commands(&mut m), [C::ReadRetention]);
    assert_eq!(m.phase(), RepairPhase::Planning);
}

#[test]
fn start_check_on_an_untouched_bucket_starts_the_full_watch_without_a_second_read() {
    let mut m = machine(RepairMode::Auto, None, false);
    start(&mut m, 0);
    commands(&mut m);
    retention(&mut m, 4, keeps(1));
    assert_eq!(commands(&mut m), [C::StartWatch { from: None }]);
    assert_eq!(m.poll_timeout(), Some(Millis(4 + POLL)));
    assert_eq!(notices(&mut m), []);
}

#[test]
fn start_check_without_a_repair_only_warns_on_an_evicted_bucket() {
    let mut m = machine(RepairMode::None, None, false);
    start(&mut m, 0);
    commands(&mut m);
    retention(&mut m, 1, evicted(3));
    assert!(m.memo());
    assert_eq!(commands(&mut m), [C::StartWatch { from: None }]);
    assert_eq!(
        notices(&mut m),
        [N::EvictionSeen, N::EvictedBucketNoRepair],
        "no SendEvicting: nothing is armed"
    );
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn failed_start_check_fails_the_run() {
    let mut m = machine(RepairMode::Restore, None, false);
    start(&mut m, 0);
    commands(&mut m);
    retention_failed(&mut m, 1);
    assert_eq!(commands(&mut m), [C::Finish(Err(KvError::Timeout))]);
    assert_eq!(m.phase(), RepairPhase::Finished);
}

#[test]
fn initial_poll_arms_the_first_poll_from_the_watch_start() {
    let mut m = machine(RepairMode::Relist, Some(5), false);
    start(&mut m, 0);
    assert_eq!(commands(&mut m), [C::ReadRetention]);
    retention(&mut m, 10, keeps(1));
    assert_eq!(
        commands(&mut m),
        [C::StartWatch {
            from: Some(cursor(5))
        }]
    );
    assert_eq!(m.poll_timeout(), Some(Millis(10 + POLL)));
}

#[test]
fn initial_poll_that_sees_eviction_hands_the_memo_over_before_watching() {
    let mut m = machine(RepairMode::Relist, Some(5), false);
    start(&mut m, 0);
    commands(&mut m);
    retention(&mut m, 10, evicted(2));
    assert_eq!(commands(&mut m), [C::SendEvicting]);
    feed(
        &mut m,
        E::EvictingSent {
            now: Millis(11),
            delivered: true,
        },
    );
    assert_eq!(
        commands(&mut m),
        [C::StartWatch {
            from: Some(cursor(5))
        }]
    );
    assert_eq!(m.poll_timeout(), None, "polling stops once the memo is set");
    assert_eq!(notices(&mut m), [N::EvictionSeen]);
}

#[test]
fn failed_initial_poll_only_warns() {
    let mut m = machine(RepairMode::Auto, Some(5), false);
    start(&mut m, 0);
    commands(&mut m);
    retention_failed(&mut m, 2);
    assert_eq!(
        commands(&mut m),
        [C::StartWatch {
            from: Some(cursor(5))
        }]
    );
    assert_eq!(
        notices(&mut m),
        [N::RetentionPollFailed {
            error: KvError::Timeout.to_string()
        }]
    );
    assert_eq!(m.poll_timeout(), Some(Millis(2 + POLL)));
}
