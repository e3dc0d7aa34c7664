//! ResumeGuard rows G24–G25: consumer faults.

use super::syncing::synced;
use super::*;

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
    let mut guard = fresh_streaming(GuardMode::Dense);
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
    let mut guard = fresh_streaming(GuardMode::Dense);
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
