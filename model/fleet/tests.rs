//! The `fleet` model's checks: the production kernels keep every property within the
//! default bounds (state counts pinned so a change in the state space shows up in
//! review), and every mutation is caught. Deep bounds: `cargo test --release
//! --features model-check --test model fleet -- --ignored`.

use crate::check;

use super::names::*;
use super::{Bounds, FleetModel, Mutation};

/// States of the deep run with the export hold.
const DEEP_STATES: usize = 15_527_908;

fn check_all(model: FleetModel) -> usize {
    check::check_all("fleet", model, &model.bounds)
}

fn counterexample(model: FleetModel, property: &'static str) -> Option<String> {
    check::counterexample(model, property)
}

// ---------------------------------------------------------------------------
// The production kernels
// ---------------------------------------------------------------------------

#[test]
fn production_fleet_loses_nothing_silently_on_an_evicting_bucket() {
    assert_eq!(check_all(FleetModel::new(Bounds::DEFAULT)), 431_532);
}

#[test]
fn production_fleet_loses_nothing_silently_on_a_non_evicting_bucket() {
    assert_eq!(check_all(FleetModel::new(Bounds::NON_EVICTING)), 67_080);
}

#[test]
fn production_fleet_loses_nothing_silently_when_eviction_is_switched_off() {
    assert_eq!(check_all(FleetModel::new(Bounds::EVICTION_OFF)), 430_348);
}

// ---------------------------------------------------------------------------
// Mutations (docs/verification.md, "Mutations"): each must be caught
// ---------------------------------------------------------------------------

#[test]
fn mutant_relisting_an_evicting_bucket_poisons_the_fleet() {
    let model = FleetModel::new(Bounds::DEFAULT).mutated(Mutation::RelistOnEvicting);
    assert!(counterexample(model, NO_SILENT_LOSS).is_some());
}

#[test]
fn mutant_relisting_a_fresh_start_poisons_the_fleet() {
    let model = FleetModel::new(Bounds::DEFAULT).mutated(Mutation::FreshStartRelist);
    assert!(counterexample(model, NO_SILENT_LOSS).is_some());
}

#[test]
fn mutant_without_the_eviction_memo_poisons_the_fleet() {
    let model = FleetModel::new(Bounds::EVICTION_OFF).mutated(Mutation::NoEvictionMemo);
    assert!(counterexample(model, NO_SILENT_LOSS).is_some());
}

#[test]
fn mutant_labelling_an_artifact_behind_its_payload_moves_a_key_backward() {
    let model = FleetModel::new(Bounds::DEFAULT).mutated(Mutation::ArtifactCursorBehind);
    assert!(counterexample(model, NO_BACKWARD).is_some());
}

// ---------------------------------------------------------------------------
// Deep bounds (`#[ignore]`: run by hand in release)
// ---------------------------------------------------------------------------

/// Four writes and two publishes (docs/decisions.md, entries 115 and 125–127).
/// Before the export hold these bounds found a restored node exporting before its
/// resume delivered a kept listed-live key's newer write. The hold removes that
/// path while the run lasts; what is left is the same backward move through a run
/// that ends inside the hold window: the next run starts without the hold (it is
/// not persisted) and exports before its watch delivers the key's newer write. The
/// next test shows that path is the only one left.
#[test]
#[ignore = "deep bounds: cargo test --release --features model-check --test model fleet -- --ignored"]
fn deep_four_writes_break_no_backward_only_through_a_restart_inside_the_hold() {
    let model = FleetModel::new(Bounds::DEEP);
    let (broken, states) = check::broken_properties("fleet", model, &model.bounds);
    assert_eq!(broken, [NO_BACKWARD]);
    assert_eq!(states, 15_525_320);
}

/// With the hold surviving the end of a run (not production: entry 127), every
/// property holds at the deep bounds.
#[test]
#[ignore = "deep bounds: cargo test --release --features model-check --test model fleet -- --ignored"]
fn deep_four_writes_keep_every_property_when_the_hold_survives_restarts() {
    let model = FleetModel::new(Bounds::DEEP).hold_surviving_restarts();
    assert_eq!(check_all(model), DEEP_STATES);
}

/// Mutation: without the hold the deep counterexample comes back, and it is the only
/// broken property.
#[test]
#[ignore = "deep bounds: cargo test --release --features model-check --test model fleet -- --ignored"]
fn deep_mutant_without_the_export_hold_moves_a_key_backward() {
    let model = FleetModel::new(Bounds::DEEP).mutated(Mutation::NoExportHold);
    let (broken, _) = check::broken_properties("fleet", model, &model.bounds);
    assert_eq!(broken, [NO_BACKWARD]);
}

#[test]
#[ignore = "deep bounds: cargo test --release --features model-check --test model fleet -- --ignored"]
fn deep_churn_loses_nothing_silently() {
    assert_eq!(check_all(FleetModel::new(Bounds::DEEP_CHURN)), 15_217_464);
}
