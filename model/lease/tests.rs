//! The `lease` model's checks: the production machine keeps every property
//! within the default bounds (state counts pinned so a change in the state space
//! shows up in review), clocks beyond the bound cost only duplicate work, and
//! every mutation is caught. Deep bounds: `cargo test --release --features
//! model-check --test model lease -- --ignored`.

use crate::check;

use super::names::*;
use super::{Bounds, LeaseModel, Mutation, Start};

fn check_all(model: LeaseModel) -> usize {
    check::check_all("lease", model, &model.bounds)
}

fn counterexample(model: LeaseModel, property: &'static str) -> Option<String> {
    check::counterexample(model, property)
}

fn broken_properties(model: LeaseModel) -> (Vec<&'static str>, usize) {
    check::broken_properties("lease", model, &model.bounds)
}

// ---------------------------------------------------------------------------
// The production lease, clocks within the bound
// ---------------------------------------------------------------------------

#[test]
fn production_lease_keeps_every_property_through_crash_stall_pause_and_abandon() {
    assert!(Bounds::DEFAULT.clocks_within_bound());
    let model = LeaseModel::new(Start::Empty, Bounds::DEFAULT);
    assert_eq!(check_all(model), 780_404);
}

#[test]
fn production_lease_takes_over_junk() {
    let model = LeaseModel::new(Start::Junk, Bounds::JUNK);
    assert_eq!(check_all(model), 13_682);
}

/// The grace absorbs a monotonic clock that gains up to the grace over a lease
/// duration.
#[test]
fn production_lease_keeps_every_property_with_a_fast_clock_within_the_grace() {
    assert!(Bounds::RATE_WITHIN_GRACE.clocks_within_bound());
    let model = LeaseModel::new(Start::Empty, Bounds::RATE_WITHIN_GRACE);
    assert_eq!(check_all(model), 179_185);
}

/// The local-observation rule never compares wall clocks across replicas for a
/// takeover's timing, so wall skew beyond a whole lease duration delays
/// takeovers but never makes one premature.
#[test]
fn wall_skew_beyond_the_lease_duration_only_delays_takeovers() {
    let model = LeaseModel::new(Start::Empty, Bounds::WALL_SKEW_BEYOND_TTL);
    assert_eq!(check_all(model), 664_274);
}

// ---------------------------------------------------------------------------
// Beyond the bound: the only harm is duplicate work
// ---------------------------------------------------------------------------

/// A monotonic clock that gains more than the grace over a lease duration breaks
/// the rule's one assumption: a replica takes over early and two replicas hold
/// at once. The harm stops there: every takeover still replaces the revision it
/// judged (CAS decides), the machine keeps its contract, and no round is lost
/// (the fleet never wedges).
#[test]
fn clock_rate_beyond_the_grace_costs_only_duplicate_work() {
    assert!(!Bounds::RATE_BEYOND_GRACE.clocks_within_bound());
    let model = LeaseModel::new(Start::Empty, Bounds::RATE_BEYOND_GRACE);
    let (broken, count) = broken_properties(model);
    assert_eq!(broken, vec![NO_PREMATURE_TAKEOVER, ONE_LIVE_HOLDER]);
    assert_eq!(count, 261_471);
    // The shortest early takeover, for the reader.
    assert!(counterexample(model, NO_PREMATURE_TAKEOVER).is_some());
}

// ---------------------------------------------------------------------------
// Stalls inside try_acquire
// ---------------------------------------------------------------------------

/// A round that stalls (a slow store call, a process pause) between its clock
/// read and its entry read for longer than the grace: the production executor
/// judges the entry with the clocks read when it arrived, so the stall never
/// makes a takeover premature.
#[test]
fn production_lease_survives_stalls_longer_than_the_grace() {
    assert!(Bounds::STALL_BEYOND_GRACE.clocks_within_bound());
    let model = LeaseModel::new(Start::Empty, Bounds::STALL_BEYOND_GRACE);
    assert_eq!(check_all(model), 699_201);
}

// ---------------------------------------------------------------------------
// Mutations (docs/verification.md, "Mutations"): each must be caught
// ---------------------------------------------------------------------------

#[test]
fn mutant_taking_over_on_wall_clock_alone_is_caught() {
    let model = LeaseModel::new(Start::Empty, Bounds::DEFAULT).mutated(Mutation::WallClockOnly);
    assert!(counterexample(model, NO_PREMATURE_TAKEOVER).is_some());
}

#[test]
fn mutant_taking_over_without_cas_is_caught() {
    let model =
        LeaseModel::new(Start::Empty, Bounds::DEFAULT).mutated(Mutation::TakeOverWithoutCas);
    assert!(counterexample(model, ONE_LIVE_HOLDER).is_some());
    assert!(counterexample(model, TAKEOVER_REPLACES_JUDGED).is_some());
}

/// The defect the model found in the machine as first specified: sighting and
/// judging with the round's start clock lets a stalled round take over early.
#[test]
fn mutant_judging_at_the_round_start_is_caught() {
    let model = LeaseModel::new(Start::Empty, Bounds::STALL_BEYOND_GRACE)
        .mutated(Mutation::JudgeAtRoundStart);
    let actions = counterexample(model, NO_PREMATURE_TAKEOVER).expect("the early takeover");
    assert!(actions.contains("Stall"), "{actions}");
}

#[test]
fn mutant_treating_junk_as_live_forever_is_caught() {
    let model = LeaseModel::new(Start::Junk, Bounds::JUNK).mutated(Mutation::JunkLiveForever);
    assert!(counterexample(model, EVENTUALLY_HELD).is_some());
}

/// The completion kernel's `Overran` row: a completion that finds the key moved gives the
/// round up. Retrying it over the latest revision overwrites the next holder's live record
/// with an expired one, which its writer then takes over at once.
#[test]
fn mutant_retrying_an_overran_completion_is_caught() {
    let model =
        LeaseModel::new(Start::Empty, Bounds::DEFAULT).mutated(Mutation::RetryOverranCompletion);
    let actions = counterexample(model, ONE_LIVE_HOLDER).expect("two live holders");
    assert!(actions.contains("Pause"), "{actions}");
    assert!(actions.contains("Complete"), "{actions}");
}

// ---------------------------------------------------------------------------
// Deep bounds
// ---------------------------------------------------------------------------

#[test]
#[ignore = "deep tier: cargo test --release --features model-check --test model lease -- --ignored"]
fn deep_three_replicas_keep_every_property() {
    let model = LeaseModel::new(Start::Empty, Bounds::DEEP);
    assert_eq!(check_all(model), 7_233_962);
}

#[test]
#[ignore = "deep tier: cargo test --release --features model-check --test model lease -- --ignored"]
fn deep_two_of_every_fault_keep_every_property() {
    let model = LeaseModel::new(Start::Empty, Bounds::DEEP_FAULTS);
    assert_eq!(check_all(model), 49_331_234);
}
