//! The `fold` model's checks: the production machine keeps every property within
//! the default bounds (state count pinned so a change in the state space shows
//! up in review), and every mutation is caught. Deep bounds: `cargo test
//! --release --features model-check --test model -- --ignored`.

use crate::check;

use super::names::*;
use super::{Bounds, FoldModel, Mutation};

fn check_all(model: FoldModel) -> usize {
    check::check_all("fold", model, &model.bounds)
}

fn counterexample(model: FoldModel, property: &'static str) -> Option<String> {
    check::counterexample(model, property)
}

// ---------------------------------------------------------------------------
// The production machine
// ---------------------------------------------------------------------------

#[test]
fn production_fold_machine_keeps_every_property() {
    assert_eq!(check_all(FoldModel::new(Bounds::DEFAULT)), 130_810);
}

#[test]
fn production_fold_machine_keeps_every_property_with_exports() {
    assert_eq!(check_all(FoldModel::new(Bounds::EXPORT)), 133_314);
}

// ---------------------------------------------------------------------------
// Mutations (docs/verification.md, "Mutations"): each must be caught
// ---------------------------------------------------------------------------

#[test]
fn mutant_dropping_the_failed_batch_is_caught() {
    let model = FoldModel::new(Bounds::DEFAULT).mutated(Mutation::DropFailedBatch);
    assert!(counterexample(model, STORE_COMPLETE).is_some());
}

#[test]
fn mutant_resuming_from_the_in_memory_cursor_is_caught() {
    let model = FoldModel::new(Bounds::DEFAULT).mutated(Mutation::ResumeFromApplied);
    assert!(counterexample(model, STORE_COMPLETE).is_some());
}

#[test]
fn mutant_advancing_the_cursor_before_apply_is_caught() {
    let model = FoldModel::new(Bounds::DEFAULT).mutated(Mutation::CursorBeforeApply);
    assert!(counterexample(model, CURSOR_AFTER_APPLY).is_some());
}

#[test]
fn mutant_moving_the_cursor_before_the_in_flight_apply_committed_is_caught() {
    let model = FoldModel::new(Bounds::DEFAULT).mutated(Mutation::CommitBeforeDurable);
    assert!(counterexample(model, ANNOUNCED_AFTER_COMMIT).is_some());
}

/// The store mutants also break convergence on a path where every `always`
/// property holds: the store ends up missing a write for good (a state where
/// an `always` property failed counts as converged, see `converged`).
#[test]
fn store_mutants_also_break_convergence() {
    for mutation in [Mutation::DropFailedBatch, Mutation::ResumeFromApplied] {
        let model = FoldModel::new(Bounds::DEFAULT).mutated(mutation);
        assert!(counterexample(model, CONVERGES).is_some(), "{mutation:?}");
    }
}

// ---------------------------------------------------------------------------
// Deep bounds (`#[ignore]`: run by hand in release)
// ---------------------------------------------------------------------------

#[test]
#[ignore = "deep bounds: cargo test --release --features model-check --test model -- --ignored"]
fn deep_three_writes_keep_every_property() {
    assert_eq!(check_all(FoldModel::new(Bounds::THREE_WRITES)), 2_713_684);
}

#[test]
#[ignore = "deep bounds: cargo test --release --features model-check --test model -- --ignored"]
fn deep_three_writes_keep_every_property_with_exports() {
    assert_eq!(
        check_all(FoldModel::new(Bounds::EXPORT_THREE_WRITES)),
        1_821_122
    );
}

#[test]
#[ignore = "deep bounds: cargo test --release --features model-check --test model -- --ignored"]
fn deep_four_writes_keep_every_property() {
    assert_eq!(check_all(FoldModel::new(Bounds::DEEP)), 13_611_512);
}

#[test]
#[ignore = "deep bounds: cargo test --release --features model-check --test model -- --ignored"]
fn deep_repeated_failures_and_crashes_keep_every_property() {
    assert_eq!(check_all(FoldModel::new(Bounds::DEEP_FAULTS)), 23_903_253);
}

#[test]
#[ignore = "deep bounds: cargo test --release --features model-check --test model -- --ignored"]
fn deep_three_keys_keep_every_property() {
    assert_eq!(check_all(FoldModel::new(Bounds::DEEP_KEYS)), 9_646_033);
}
