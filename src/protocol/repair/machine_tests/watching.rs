//! Watching rows W1–W6 and the eviction hand-off V1–V3: polls, stale ticks, expiry.

use super::*;

#[test]
fn stale_poll_ticks_are_ignored() {
    let mut m = watching_auto();
    let before = m.clone();
    feed(
        &mut m,
        E::PollDue {
            now: Millis(10 + POLL - 1),
        },
    );
    assert_eq!(commands(&mut m), []);
    assert_eq!(m.phase(), RepairPhase::Watching);
    assert_eq!(m.poll_timeout(), before.poll_timeout());

    let mut m = machine(RepairMode::Restore, Some(5), false);
    start(&mut m, 0);
    commands(&mut m);
    feed(&mut m, E::PollDue { now: Millis(1) });
    assert_eq!(commands(&mut m), [], "no deadline: every tick is stale");
}

#[test]
fn due_poll_parks_the_watch_and_reads_retention() {
    let mut m = watching_auto();
    feed(
        &mut m,
        E::PollDue {
            now: Millis(10 + POLL),
        },
    );
    assert_eq!(commands(&mut m), [C::ReadRetention]);
    assert_eq!(m.phase(), RepairPhase::Polling);
    assert_eq!(m.poll_timeout(), None);
    rejected(
        &mut m,
        E::WatchEnded {
            now: Millis(10 + POLL),
            result: Ok(()),
        },
    );
}

#[test]
fn poll_rearms_sixty_seconds_after_it_was_handled() {
    let mut m = watching_auto();
    feed(
        &mut m,
        E::PollDue {
            now: Millis(10 + POLL),
        },
    );
    commands(&mut m);
    retention(&mut m, 10 + POLL + 7, keeps(3));
    assert_eq!(commands(&mut m), []);
    assert_eq!(m.phase(), RepairPhase::Watching);
    assert_eq!(m.poll_timeout(), Some(Millis(10 + POLL + 7 + POLL)));
}

#[test]
fn poll_that_sees_eviction_stops_polling_for_good() {
    let mut m = watching_auto();
    feed(
        &mut m,
        E::PollDue {
            now: Millis(10 + POLL),
        },
    );
    commands(&mut m);
    retention(&mut m, 10 + POLL, evicted(4));
    assert_eq!(commands(&mut m), [C::SendEvicting]);
    feed(
        &mut m,
        E::EvictingSent {
            now: Millis(10 + POLL + 1),
            delivered: true,
        },
    );
    assert_eq!(commands(&mut m), []);
    assert_eq!(m.phase(), RepairPhase::Watching);
    assert_eq!(m.poll_timeout(), None);
    assert_eq!(notices(&mut m), [N::EvictionSeen]);
}

#[test]
fn failed_poll_only_warns_and_retries_later() {
    let mut m = watching_auto();
    feed(
        &mut m,
        E::PollDue {
            now: Millis(10 + POLL),
        },
    );
    commands(&mut m);
    retention_failed(&mut m, 10 + POLL + 2);
    assert_eq!(commands(&mut m), []);
    assert_eq!(m.phase(), RepairPhase::Watching);
    assert_eq!(m.poll_timeout(), Some(Millis(10 + POLL + 2 + POLL)));
    assert_eq!(
        notices(&mut m),
        [N::RetentionPollFailed {
            error: KvError::Timeout.to_string()
        }]
    );
}

#[test]
fn fold_gone_while_polling_only_warns() {
    let mut m = watching_auto();
    feed(
        &mut m,
        E::PollDue {
            now: Millis(10 + POLL),
        },
    );
    commands(&mut m);
    retention(&mut m, 10 + POLL, evicted(4));
    commands(&mut m);
    notices(&mut m);
    feed(
        &mut m,
        E::EvictingSent {
            now: Millis(10 + POLL),
            delivered: false,
        },
    );
    assert_eq!(commands(&mut m), []);
    assert_eq!(m.phase(), RepairPhase::Watching);
    assert_eq!(
        notices(&mut m),
        [N::RetentionPollFailed {
            error: EVICTING_LOST.to_string()
        }]
    );
}

#[test]
fn fold_gone_while_recording_eviction_elsewhere_fails_the_run() {
    let mut m = machine(RepairMode::Relist, Some(5), false);
    start(&mut m, 0);
    commands(&mut m);
    retention(&mut m, 1, evicted(2));
    commands(&mut m);
    feed(
        &mut m,
        E::EvictingSent {
            now: Millis(2),
            delivered: false,
        },
    );
    assert_eq!(
        commands(&mut m),
        [C::Finish(Err(KvError::WatchError(
            EVICTING_LOST.to_string()
        )))]
    );
    assert_eq!(m.phase(), RepairPhase::Finished);
}

#[test]
fn expired_resume_plans_a_repair_from_a_fresh_retention_read() {
    let mut m = watching_auto();
    watch_ended(&mut m, 20, Err(KvError::CursorExpired));
    assert_eq!(commands(&mut m), [C::ReadRetention]);
    assert_eq!(m.phase(), RepairPhase::Planning);
    assert_eq!(m.poll_timeout(), None);
    assert_eq!(notices(&mut m), [N::CursorExpired { cursor: cursor(5) }]);
}

#[test]
fn expiry_without_a_repair_relists_with_a_warning() {
    let mut m = machine(RepairMode::None, Some(5), false);
    start(&mut m, 0);
    commands(&mut m);
    watch_ended(&mut m, 20, Err(KvError::CursorExpired));
    assert_eq!(commands(&mut m), [C::StartWatch { from: None }]);
    assert_eq!(
        notices(&mut m),
        [N::CursorExpired { cursor: cursor(5) }, N::ReListOnly]
    );
    // The full watch's own expiry ends the run (the restart re-lists).
    watch_ended(&mut m, 30, Err(KvError::CursorExpired));
    assert_eq!(commands(&mut m), [C::Finish(Err(KvError::CursorExpired))]);
}

#[test]
fn any_other_watch_end_finishes_the_run() {
    for result in [Ok(()), Err(KvError::WatchError("gone".into()))] {
        let mut m = watching_auto();
        watch_ended(&mut m, 20, result.clone());
        assert_eq!(commands(&mut m), [C::Finish(result)]);
        assert_eq!(m.phase(), RepairPhase::Finished);
        assert_eq!(m.poll_timeout(), None);
    }
}
