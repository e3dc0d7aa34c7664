//! The `repair` model's checks: the production machines keep every property within the
//! default bounds (state counts pinned so a change in the state space shows up in
//! review), and every mutation is caught. Deep bounds: `cargo test --release --features
//! model-check --test model repair -- --ignored`.

use crate::check;

use super::names::*;
use super::{Bounds, Mutation, RepairModel};

fn check_all(bounds: Bounds) -> usize {
    check::check_all("repair", RepairModel::new(bounds), &bounds)
}

/// The mutant's counterexample to `property` under `bounds`, if any.
fn caught(bounds: Bounds, mutation: Mutation, property: &'static str) -> bool {
    check::counterexample(RepairModel::new(bounds).mutated(mutation), property).is_some()
}

// ---------------------------------------------------------------------------
// The production machines
// ---------------------------------------------------------------------------

#[test]
fn production_machines_keep_every_property_under_auto() {
    assert_eq!(check_all(Bounds::AUTO), 385_490);
}

#[test]
fn production_machines_keep_every_property_under_auto_with_two_artifacts() {
    assert_eq!(check_all(Bounds::AUTO_TWO_ARTIFACTS), 81_087);
}

#[test]
fn production_machines_keep_every_property_under_auto_with_a_poll() {
    assert_eq!(check_all(Bounds::AUTO_POLLED), 69_666);
}

#[test]
fn production_machines_keep_every_property_under_relist() {
    assert_eq!(check_all(Bounds::RELIST), 222_925);
}

/// The ack-barrier scenario: a key deleted during the gap and re-created before or after
/// the listing; every maximal run ends with store = domain = bucket.
#[test]
fn production_machines_keep_every_property_in_the_ack_barrier_scenario() {
    assert_eq!(check_all(Bounds::ACK_BARRIER), 94_919);
}

// ---------------------------------------------------------------------------
// Mutations (docs/verification.md, "Mutations"): each must be caught
// ---------------------------------------------------------------------------

#[test]
fn mutant_without_the_drain_is_caught() {
    assert!(caught(
        Bounds::AUTO,
        Mutation::NoDrain,
        STORE_CURSOR_MONOTONE
    ));
}

#[test]
fn mutant_without_the_pre_repair_settle_is_caught() {
    assert!(caught(Bounds::RELIST, Mutation::NoSettle, CONVERGES));
}

#[test]
fn mutant_moving_the_cursor_before_the_diff_is_caught() {
    assert!(caught(
        Bounds::AUTO,
        Mutation::CursorBeforeDiff,
        STORE_COMPLETE
    ));
}

#[test]
fn mutant_relisting_an_evicting_bucket_is_caught() {
    assert!(caught(
        Bounds::AUTO,
        Mutation::RelistOnEvicting,
        NO_CURRENT_DELETED
    ));
}

#[test]
fn mutant_relisting_an_unanchored_fold_is_caught() {
    assert!(caught(
        Bounds::RELIST,
        Mutation::UnanchoredRelist,
        STORE_COMPLETE
    ));
}

#[test]
fn mutant_restoring_without_versions_is_caught() {
    let bounds = Bounds::AUTO_TWO_ARTIFACTS;
    assert!(caught(
        bounds,
        Mutation::RestoreIgnoringVersions,
        NO_REGRESS
    ));
}

#[test]
fn mutant_restoring_without_the_listing_is_caught() {
    assert!(caught(
        Bounds::AUTO,
        Mutation::RestoreIgnoringListing,
        NO_CURRENT_DELETED
    ));
}

#[test]
fn mutant_without_the_retention_recheck_after_listing_is_caught() {
    let bounds = Bounds::AUTO_TWO_ARTIFACTS;
    assert!(caught(
        bounds,
        Mutation::NoRetentionRecheck,
        NO_CURRENT_DELETED
    ));
}

#[test]
fn mutant_without_the_eviction_memo_is_caught() {
    assert!(caught(
        Bounds::AUTO_POLLED,
        Mutation::NoEvictionMemo,
        NO_CURRENT_DELETED
    ));
}

/// In the ack-barrier scenario the re-list's deliveries, folded before the synthetic
/// deletes are durable, move the store's cursor past a stale key (docs/decisions.md 111).
#[test]
fn mutant_without_the_ack_barrier_is_caught() {
    assert!(caught(
        Bounds::ACK_BARRIER,
        Mutation::NoAckBarrier,
        STORE_COMPLETE
    ));
}

// ---------------------------------------------------------------------------
// Deep bounds (`#[ignore]`: run by hand in release)
// ---------------------------------------------------------------------------

#[test]
#[ignore = "deep bounds: cargo test --release --features model-check --test model repair -- --ignored"]
fn deep_auto_keeps_every_property() {
    assert_eq!(check_all(Bounds::DEEP_AUTO), 2_922_980);
}

#[test]
#[ignore = "deep bounds: cargo test --release --features model-check --test model repair -- --ignored"]
fn deep_auto_with_two_artifacts_keeps_every_property() {
    assert_eq!(check_all(Bounds::DEEP_AUTO_ARTIFACTS), 1_258_150);
}

#[test]
#[ignore = "deep bounds: cargo test --release --features model-check --test model repair -- --ignored"]
fn deep_relist_keeps_every_property() {
    assert_eq!(check_all(Bounds::DEEP_RELIST), 8_791_937);
}
