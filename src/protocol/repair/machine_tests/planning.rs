//! Planning rows P1–P2 and the ack barrier A1: relist, refusal, restore chosen.

use super::*;

#[test]
fn relist_planned_when_the_listing_is_the_truth() {
    let mut m = planning(RepairMode::Relist);
    retention(&mut m, 21, keeps(1));
    assert_eq!(
        commands(&mut m),
        [C::SendRelist {
            scratch: Scratch::SystemTemp
        }]
    );
    assert_eq!(m.phase(), RepairPhase::AwaitingAck);
    assert_eq!(notices(&mut m), [N::RelistPlanned]);

    let mut m = planning(RepairMode::Auto);
    retention(&mut m, 21, evicted(1));
    assert_eq!(
        commands(&mut m),
        [C::SendRelist {
            scratch: Scratch::RestoreSourceDir
        }],
        "eviction configured but unused: the listing is still the truth"
    );
}

#[test]
fn relist_trusts_an_unknown_retention_on_the_callers_word() {
    let mut m = planning(RepairMode::Relist);
    retention(&mut m, 21, None);
    assert_eq!(
        commands(&mut m),
        [C::SendRelist {
            scratch: Scratch::SystemTemp
        }]
    );
}

#[test]
fn relist_refused_when_the_listing_lies() {
    let mut m = planning(RepairMode::Relist);
    retention(&mut m, 21, evicted(3));
    assert_eq!(commands(&mut m), [C::SendEvicting]);
    feed(
        &mut m,
        E::EvictingSent {
            now: Millis(22),
            delivered: true,
        },
    );
    assert_eq!(
        commands(&mut m),
        [C::Finish(Err(KvError::WatchError(RELIST_REFUSED.into())))]
    );
    assert_eq!(notices(&mut m), [N::EvictionSeen, N::RelistRefused]);
    for choice in [
        "ExpiryRepair::Restore",
        "ExpiryRepair::Auto",
        "ExpiryRepair::None",
    ] {
        assert!(RELIST_REFUSED.contains(choice), "{choice}");
    }
}

#[test]
fn relist_refused_on_a_remembered_eviction_without_a_new_read_of_it() {
    let mut m = RepairMachine::new(RepairStart {
        mode: RepairMode::Relist,
        resume: Some(cursor(5).remembering(true)),
        unanchored: false,
        scope: all(),
    });
    start(&mut m, 0);
    commands(&mut m);
    watch_ended(&mut m, 1, Err(KvError::CursorExpired));
    commands(&mut m);
    retention(&mut m, 2, keeps(1));
    assert_eq!(
        commands(&mut m),
        [C::Finish(Err(KvError::WatchError(RELIST_REFUSED.into())))],
        "the memo alone makes the listing a lie; no second SendEvicting"
    );
}

#[test]
fn auto_restores_when_the_listing_lies_or_is_unknown() {
    for r in [evicted(3), None] {
        let mut m = planning(RepairMode::Auto);
        retention(&mut m, 21, r);
        if r.is_some() {
            assert_eq!(commands(&mut m), [C::SendEvicting]);
            feed(
                &mut m,
                E::EvictingSent {
                    now: Millis(22),
                    delivered: true,
                },
            );
        }
        assert_eq!(commands(&mut m), [C::ReadRetention], "{r:?}");
        assert_eq!(m.phase(), RepairPhase::RestoreFloor);
        assert_eq!(notices(&mut m).last(), Some(&N::RestorePlanned));
    }
}

#[test]
fn failed_planning_read_fails_the_run() {
    let mut m = planning(RepairMode::Auto);
    retention_failed(&mut m, 21);
    assert_eq!(commands(&mut m), [C::Finish(Err(KvError::Timeout))]);
}

#[test]
fn relist_starts_only_after_the_ack() {
    let mut m = planning(RepairMode::Relist);
    retention(&mut m, 21, keeps(1));
    commands(&mut m);
    rejected(&mut m, E::PollDue { now: Millis(99) });
    rejected(
        &mut m,
        E::WatchEnded {
            now: Millis(99),
            result: Ok(()),
        },
    );
    assert_eq!(commands(&mut m), [], "nothing starts before the ack");
    feed(&mut m, E::RelistAcked { now: Millis(100) });
    assert_eq!(commands(&mut m), [C::StartWatch { from: None }]);
    assert_eq!(m.phase(), RepairPhase::Watching);
    assert_eq!(m.poll_timeout(), Some(Millis(100 + POLL)));
    // The re-list is a full watch: its expiry is not repaired again.
    watch_ended(&mut m, 101, Err(KvError::CursorExpired));
    assert_eq!(commands(&mut m), [C::Finish(Err(KvError::CursorExpired))]);
}
