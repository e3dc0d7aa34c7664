//! Truth tables of the root kernels (docs/architecture.md, "Kernels and machines"),
//! exhaustive where small.

use super::*;

#[test]
fn pointer_publish_never_regresses() {
    assert!(pointer_publish_allowed(&PointerState::Absent, 0));
    assert!(pointer_publish_allowed(
        &PointerState::Present { rank: None },
        0
    ));
    let at5 = PointerState::Present { rank: Some(5) };
    assert!(!pointer_publish_allowed(&at5, 4));
    assert!(pointer_publish_allowed(&at5, 5));
    assert!(pointer_publish_allowed(&at5, 6));
}

#[test]
fn payload_prunable_table() {
    for rank in [None, Some(0), Some(9)] {
        for aged in [false, true] {
            assert!(!payload_prunable(rank, 5, true, aged));
        }
        assert!(!payload_prunable(rank, 5, false, false));
    }
    assert!(!payload_prunable(None, 5, false, true));
    assert!(payload_prunable(Some(4), 5, false, true));
    assert!(!payload_prunable(Some(5), 5, false, true));
    assert!(!payload_prunable(Some(6), 5, false, true));
}

#[test]
fn resume_window_examples() {
    assert!(resume_window_ok(5, 6));
    assert!(!resume_window_ok(5, 7));
    assert!(resume_window_ok(0, 1));
    assert!(!resume_window_ok(0, 2));
    assert!(resume_window_ok(u64::MAX, u64::MAX));
    assert!(resume_window_ok(u64::MAX, 0));
}

#[test]
fn restore_guards() {
    assert!(restore_ahead(6, 5));
    assert!(!restore_ahead(5, 5));
    assert!(restore_allowed(6, 5, 7));
    assert!(!restore_allowed(6, 5, 8));
    assert!(!restore_allowed(5, 5, 1));
}

#[test]
fn listing_is_truth_exhaustive() {
    for seen in [false, true] {
        for evicts in [false, true] {
            for first in [0, 1, 2] {
                let expected = !seen && (!evicts || first <= 1);
                assert_eq!(listing_is_truth(evicts, first, seen), expected);
            }
        }
    }
}

#[test]
fn listing_truth_table() {
    let r = Retention {
        evicts_current_values: true,
        first_revision: 3,
    };
    assert_eq!(listing_truth(Some(r), false), Some(false));
    assert_eq!(listing_truth(None, true), Some(false));
    assert_eq!(listing_truth(None, false), None);
    let plain = Retention {
        evicts_current_values: false,
        first_revision: 3,
    };
    assert_eq!(listing_truth(Some(plain), false), Some(true));
    assert_eq!(listing_truth(Some(plain), true), Some(false));
}

#[test]
fn plan_repair_exhaustive() {
    use RepairMode as M;
    use RepairPlan as P;
    let truths = [Some(true), Some(false), None];
    let table = [
        (M::None, [P::ReListOnly, P::ReListOnly, P::ReListOnly]),
        (M::Relist, [P::Relist, P::RefuseRelist, P::Relist]),
        (M::Restore, [P::Restore, P::Restore, P::Restore]),
        (M::Auto, [P::Relist, P::Restore, P::Restore]),
    ];
    for (mode, plans) in table {
        for (truth, plan) in truths.iter().zip(plans) {
            assert_eq!(plan_repair(mode, *truth), plan, "{mode:?} {truth:?}");
        }
    }
}

#[test]
fn cursorless_start_exhaustive() {
    use RepairMode as M;
    for truth in [Some(true), Some(false), None] {
        for data in [false, true] {
            assert!(!cursorless_start_needs_repair(M::None, data, truth));
            for mode in [M::Relist, M::Restore, M::Auto] {
                let expected = data || (mode != M::Relist && truth == Some(false));
                assert_eq!(
                    cursorless_start_needs_repair(mode, data, truth),
                    expected,
                    "{mode:?} {data} {truth:?}"
                );
            }
        }
    }
}

#[test]
fn restore_key_table() {
    use KeyRestore as R;
    use KeyState as S;
    assert_eq!(
        restore_key(S::At(Some(5)), S::At(Some(4)), false, false),
        R::Keep
    );
    assert_eq!(
        restore_key(S::At(Some(4)), S::At(Some(5)), true, false),
        R::TakeArtifact
    );
    assert_eq!(
        restore_key(S::At(Some(4)), S::At(Some(4)), true, false),
        R::Keep
    );
    assert_eq!(
        restore_key(S::At(Some(4)), S::At(Some(4)), false, false),
        R::TakeArtifact
    );
    assert_eq!(
        restore_key(S::At(None), S::At(Some(4)), true, false),
        R::Keep
    );
    assert_eq!(
        restore_key(S::At(Some(4)), S::At(None), false, false),
        R::TakeArtifact
    );
    assert_eq!(
        restore_key(S::Absent, S::At(None), false, false),
        R::TakeArtifact
    );
    assert_eq!(restore_key(S::At(Some(1)), S::Absent, false, true), R::Keep);
    assert_eq!(
        restore_key(S::At(Some(1)), S::Absent, false, false),
        R::Delete
    );
    assert_eq!(restore_key(S::Absent, S::Absent, false, false), R::Keep);
}

#[test]
fn restore_key_never_regresses_or_deletes_listed_live() {
    let states = [
        KeyState::Absent,
        KeyState::At(None),
        KeyState::At(Some(1)),
        KeyState::At(Some(2)),
    ];
    for local in states {
        for artifact in states {
            for identical in [false, true] {
                for listed in [false, true] {
                    let r = restore_key(local, artifact, identical, listed);
                    if let (KeyState::At(Some(l)), KeyState::At(Some(a))) = (local, artifact)
                        && l > a
                    {
                        assert_eq!(r, KeyRestore::Keep);
                    }
                    if listed {
                        assert_ne!(r, KeyRestore::Delete);
                    }
                }
            }
        }
    }
}

#[test]
fn gap_holds_no_eviction_boundaries() {
    assert!(gap_holds_no_eviction(true, 100, 50));
    assert!(!gap_holds_no_eviction(true, 100, 51));
    assert!(!gap_holds_no_eviction(false, 100, 0));
    assert!(!gap_holds_no_eviction(true, 0, 0));
    assert!(!gap_holds_no_eviction(true, 101, 51));
    assert!(gap_holds_no_eviction(true, 101, 50));
}

#[test]
fn resume_start_sequence_never_wraps() {
    assert_eq!(resume_start_sequence(0), Some(1));
    assert_eq!(resume_start_sequence(41), Some(42));
    assert_eq!(resume_start_sequence(u64::MAX), None);
}

#[test]
fn cursor_rank_is_revision_or_zero() {
    assert_eq!(cursor_rank(&WatchCursor::from_u64(3)), 3);
    assert_eq!(cursor_rank(&WatchCursor::none()), 0);
}
