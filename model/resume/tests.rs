//! The `resume` model's checks: the production guard keeps every property within
//! the default bounds (state counts pinned so a change in the state space shows
//! up in review), every mutation is caught, and the backstops between the checks
//! are shown. Deep bounds: `cargo test --release --features model-check --test
//! model -- --ignored`.

use crate::check;

use super::names::*;
use super::{Bounds, InHand, Mutation, ResumeModel, Retention, Scope};

fn check_all(model: ResumeModel) -> usize {
    check::check_all("resume", model, &model.bounds)
}

fn counterexample(model: ResumeModel, property: &'static str) -> Option<String> {
    check::counterexample(model, property)
}

fn broken_properties(model: ResumeModel) -> Vec<&'static str> {
    check::broken_properties("resume", model, &model.bounds).0
}

// ---------------------------------------------------------------------------
// The production guard
// ---------------------------------------------------------------------------

#[test]
fn resumed_all_scope_watch_on_a_discard_old_bucket_keeps_every_property() {
    let model = ResumeModel::new(Scope::All, Retention::DiscardOld, Bounds::DISCARD_OLD);
    assert_eq!(check_all(model), 981_685);
}

#[test]
fn resumed_prefix_watch_on_a_discard_old_bucket_keeps_every_property() {
    let model = ResumeModel::new(Scope::Prefix, Retention::DiscardOld, Bounds::DISCARD_OLD);
    assert_eq!(check_all(model), 129_334);
}

#[test]
fn resumed_all_scope_watch_on_an_age_only_bucket_keeps_every_property() {
    let model = ResumeModel::new(Scope::All, Retention::AgeOnly, Bounds::AGE_ONLY);
    assert_eq!(check_all(model), 981_547);
}

#[test]
fn resumed_prefix_watch_on_an_age_only_bucket_keeps_every_property() {
    let model = ResumeModel::new(Scope::Prefix, Retention::AgeOnly, Bounds::AGE_ONLY);
    assert_eq!(check_all(model), 151_083);
}

#[test]
fn state_sync_all_scope_watch_keeps_every_property() {
    let model = ResumeModel::new(Scope::All, Retention::DiscardOld, Bounds::DISCARD_OLD)
        .state_sync()
        .in_hand(InHand::KeptUnlessDropped);
    assert_eq!(check_all(model), 544_823);
}

#[test]
fn state_sync_prefix_watch_keeps_every_property() {
    let model = ResumeModel::new(Scope::Prefix, Retention::DiscardOld, Bounds::DISCARD_OLD)
        .state_sync()
        .in_hand(InHand::KeptUnlessDropped);
    assert_eq!(check_all(model), 78_197);
}

/// A consumer fault after a reconnect (G24) is driven through the production guard:
/// it re-resumes through the same checks as `Reconnected`, and every property holds.
#[test]
fn consumer_faults_after_reconnects_keep_every_property() {
    let all = ResumeModel {
        faults: true,
        ..ResumeModel::new(Scope::All, Retention::DiscardOld, Bounds::DISCARD_OLD)
    };
    assert_eq!(check_all(all), 1_610_705);
    let prefix = ResumeModel {
        faults: true,
        ..ResumeModel::new(Scope::Prefix, Retention::DiscardOld, Bounds::DISCARD_OLD)
    };
    assert_eq!(check_all(prefix), 207_359);
}

// ---------------------------------------------------------------------------
// Mutations (docs/verification.md, "Mutations"): each must be caught
// ---------------------------------------------------------------------------

#[test]
fn mutant_trusting_a_clamped_start_is_caught() {
    let model = ResumeModel::new(Scope::All, Retention::DiscardOld, Bounds::DISCARD_OLD)
        .mutated(Mutation::TrustClampedStart);
    assert!(counterexample(model, NO_FORWARD_PAST_EVICTION).is_some());
}

/// On a prefix watch the post-check is the only defence against an eviction
/// racing the consumer's creation (on an All-scope watch the floor guard backs
/// it up, see `floor_guard_backstops_post_check_and_reconnect_on_an_all_scope_watch`).
#[test]
fn mutant_skipping_the_post_check_is_caught() {
    let model = ResumeModel::new(Scope::Prefix, Retention::DiscardOld, Bounds::DISCARD_OLD)
        .mutated(Mutation::SkipPostCheck);
    assert!(counterexample(model, NO_FORWARD_PAST_EVICTION).is_some());
}

#[test]
fn mutant_without_floor_guard_is_caught() {
    let model = ResumeModel::new(Scope::All, Retention::DiscardOld, Bounds::DISCARD_OLD)
        .mutated(Mutation::NoFloorGuard);
    assert!(counterexample(model, NO_FORWARD_PAST_EVICTION).is_some());
}

#[test]
fn mutant_with_periodic_probe_only_is_caught() {
    let model = ResumeModel::new(Scope::All, Retention::DiscardOld, Bounds::DISCARD_OLD)
        .mutated(Mutation::PeriodicProbeOnly);
    assert!(counterexample(model, NO_FORWARD_PAST_EVICTION).is_some());
}

/// On a prefix watch only the re-resume (G16) sees an eviction made while the
/// client was away.
#[test]
fn mutant_ignoring_reconnects_is_caught() {
    let model = ResumeModel::new(Scope::Prefix, Retention::DiscardOld, Bounds::DISCARD_OLD)
        .mutated(Mutation::IgnoreReconnect);
    assert!(counterexample(model, NO_FORWARD_PAST_EVICTION).is_some());
}

// ---------------------------------------------------------------------------
// Defence in depth: what each check backs up
// ---------------------------------------------------------------------------

/// The floor only rises, so a pre-check that trusts a lowered floor is still
/// stopped by the post-check (the "trust a clamped start" mutant must defeat
/// both, which is why it claims the gap was superseded).
#[test]
fn post_check_backstops_a_pre_check_that_trusts_a_lowered_floor() {
    for scope in [Scope::All, Scope::Prefix] {
        let model = ResumeModel::new(scope, Retention::DiscardOld, Bounds::DISCARD_OLD)
            .mutated(Mutation::PreCheckTrustsLoweredFloor);
        assert_eq!(broken_properties(model), Vec::<&str>::new(), "{model}");
    }
}

/// A `Dense` watch judges every delivery: an eviction that raced the consumer's
/// creation, or happened while the client was away, shows up as a gap at the
/// next delivery and the floor guard expires the watch.
#[test]
fn floor_guard_backstops_post_check_and_reconnect_on_an_all_scope_watch() {
    for mutation in [Mutation::SkipPostCheck, Mutation::IgnoreReconnect] {
        let model =
            ResumeModel::new(Scope::All, Retention::DiscardOld, Bounds::BACKSTOP).mutated(mutation);
        assert_eq!(broken_properties(model), Vec::<&str>::new(), "{model}");
    }
}

// ---------------------------------------------------------------------------
// A defect in the first NATS executor design (docs/decisions.md 15)
// ---------------------------------------------------------------------------

/// The NATS executor as first designed discards the delivery in hand when it notices a
/// reconnect ("it will be delivered again"). That holds after G16, which drops the consumer
/// and resumes from the frontier; after G17 (a state-sync watch that has delivered nothing
/// keeps its consumer) the discarded message is never delivered again: a retained value is
/// lost silently. This test pins the counterexample of that design; `src/nats/watch.rs` now
/// hands the delivery in after G17 (as `InHand::KeptUnlessDropped`, the memory executor's
/// order, does: `state_sync_*_watch_keeps_every_property`).
#[test]
fn nats_executor_discarding_the_delivery_in_hand_loses_a_state_sync_message() {
    let model = ResumeModel::new(Scope::All, Retention::DiscardOld, Bounds::DISCARD_OLD)
        .state_sync()
        .in_hand(InHand::Discarded);
    let actions =
        counterexample(model, NO_FORWARD_PAST_RETAINED).expect("the discarded delivery is lost");
    assert!(actions.contains("Reconnect"), "{actions}");
}

/// The explorer selects mutants by name.
#[test]
fn mutation_names_round_trip() {
    for mutation in Mutation::ALL {
        assert_eq!(Mutation::named(mutation.name()), Some(mutation));
    }
}

// ---------------------------------------------------------------------------
// Deep bounds (run by hand)
// ---------------------------------------------------------------------------

#[test]
#[ignore = "deep bounds: cargo test --release --features model-check --test model -- --ignored"]
fn deep_resumed_watches_keep_every_property() {
    for (retention, bounds) in [
        (Retention::DiscardOld, Bounds::DEEP_DISCARD_OLD),
        (Retention::DiscardOld, Bounds::DEEP_WIDE),
        (Retention::AgeOnly, Bounds::DEEP_AGE_ONLY),
    ] {
        for scope in [Scope::All, Scope::Prefix] {
            check_all(ResumeModel::new(scope, retention, bounds));
        }
    }
}

#[test]
#[ignore = "deep bounds: cargo test --release --features model-check --test model -- --ignored"]
fn deep_state_sync_watches_keep_every_property() {
    for scope in [Scope::All, Scope::Prefix] {
        let model = ResumeModel::new(scope, Retention::DiscardOld, Bounds::DEEP_DISCARD_OLD)
            .state_sync()
            .in_hand(InHand::KeptUnlessDropped);
        check_all(model);
    }
}
