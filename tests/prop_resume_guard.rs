//! proptest: the production `ResumeGuard` driven against a simulated stream log
//! (docs/protocols/resume-guard.md; docs/verification.md rows 3 and 4), the resume kernels
//! where the guard's vacuity witnesses reach their rows (the kernels' own
//! properties are in `prop_resume_kernels.rs`, the subject filters' in
//! `prop_subject_filters.rs`), and the mutations that show each
//! checker has teeth (docs/verification.md, "The rule" and "Mutations"). Mutations are test-side wrappers
//! around the real kernels; production code is never altered.

use std::collections::BTreeMap;

use kvfold::protocol::resume::{ExpiryCause, GuardMode, ResumeGuard, plan_resume};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

mod common;
#[path = "prop_resume_guard/guards.rs"]
mod guards;
#[path = "prop_resume_guard/run.rs"]
mod run;
#[path = "prop_resume_guard/stream.rs"]
mod stream;

use common::prop::{MUTANT_CASES, deterministic_runner};
use guards::*;
use run::*;
use stream::*;

// ===========================================================================
// ResumeGuard state machine properties
// ===========================================================================

proptest! {
    // Default config: 256 cases unless PROPTEST_CASES says otherwise.
    #[test]
    fn resume_guard_never_forwards_past_unexamined_loss(s in scenario()) {
        if let Err(v) = run_scenario::<ResumeGuard>(&s) {
            prop_assert!(false, "{}", v);
        }
    }
}

/// A fixed-seed runner, independent of `PROPTEST_CASES`, so mutation evidence

#[test]
fn scenarios_reach_every_interesting_path() {
    let mut runner = deterministic_runner(512);
    let total = std::cell::RefCell::new(Stats::default());
    runner
        .run(&scenario(), |s| {
            let stats =
                run_scenario::<ResumeGuard>(&s).map_err(|v| TestCaseError::fail(v.to_string()))?;
            total.borrow_mut().add(&stats);
            Ok(())
        })
        .expect("the production guard satisfies every property");
    let t = total.into_inner();
    println!("witnesses over 512 scenarios: {t:?}");
    // `sometimes` witnesses: the properties above are not vacuous.
    assert!(t.forwards > 0, "{t:?}");
    assert!(
        t.floor_forwards > 0,
        "benign gaps forwarded after a probe: {t:?}"
    );
    assert!(t.floor_passed > 0, "the floor guard tripped: {t:?}");
    assert!(t.skips > 0, "redeliveries skipped: {t:?}");
    assert!(t.idle_probes > 0, "idle backstop probed: {t:?}");
    assert!(t.reresumes > 0, "re-resumes after a reconnect: {t:?}");
    assert!(t.supersession_resumes > 0, "row-4 resumes: {t:?}");
    assert!(
        t.below_floor > 0 && t.ahead > 0,
        "pre/post-check expiries: {t:?}"
    );
    assert!(t.server_refused > 0 && t.fails > 0, "{t:?}");
    assert!(t.rejected > 0, "unexpected events injected: {t:?}");

    // The plan_resume history property reaches every row that can answer it.
    let mut runner = deterministic_runner(512);
    let rows = std::cell::RefCell::new(BTreeMap::<&str, u32>::new());
    runner
        .run(&history(), |(setup, pre)| {
            let (cursor, facts, _) = resume_point(&setup, &pre);
            let row = match plan_resume(&cursor, &facts) {
                Ok(e) if e == cursor.revision => "window",
                Ok(_) => "supersession",
                Err(ExpiryCause::BelowFloor { .. }) => "below floor",
                Err(ExpiryCause::AheadOfStream { .. }) => "ahead",
                Err(_) => "other",
            };
            *rows.borrow_mut().entry(row).or_default() += 1;
            Ok(())
        })
        .expect("counting only");
    let rows = rows.into_inner();
    println!("plan_resume rows over 512 histories: {rows:?}");
    for row in ["window", "supersession", "below floor", "ahead"] {
        assert!(rows.get(row).is_some_and(|&n| n > 0), "{row}: {rows:?}");
    }
}

// ===========================================================================
// Mutation evidence: each broken wrapper is caught by the same checker
// ===========================================================================

fn assert_caught<G: Guard>(name: &str, properties: &[Property]) {
    for &property in properties {
        let scenario =
            find_counterexample::<G>(MUTANT_CASES, Some(property)).unwrap_or_else(|| {
                panic!("mutant {name} survived {MUTANT_CASES} scenarios of {property:?}")
            });
        let violation = run_scenario::<G>(&scenario).expect_err("the shrunk case still fails");
        assert_eq!(violation.property, property);
        println!("mutant {name} caught: {violation}\nshrunk counterexample: {scenario:?}");
    }
}

#[test]
fn production_guard_survives_the_mutation_search() {
    if let Some(s) = find_counterexample::<ResumeGuard>(MUTANT_CASES, None) {
        panic!("{:?}\n{s:?}", run_scenario::<ResumeGuard>(&s).err());
    }
}

#[test]
fn mutant_without_floor_guard_is_caught() {
    assert_caught::<NoFloorGuard>(
        "no floor guard",
        &[
            Property::ForwardPastEviction,
            Property::GapForwardedUnprobed,
        ],
    );
}

#[test]
fn mutant_judging_dense_as_sparse_is_caught() {
    assert_caught::<SparseJudging>(
        "judges Dense as Sparse",
        &[
            Property::ForwardPastEviction,
            Property::GapForwardedUnprobed,
            Property::IdleBackstop,
        ],
    );
}

#[test]
fn mutant_ignoring_reconnects_is_caught() {
    assert_caught::<IgnoresReconnect>(
        "ignores Reconnected",
        &[
            Property::ResumePastEviction,
            Property::UncheckedAfterReconnect,
        ],
    );
}

#[test]
fn mutant_skipping_the_post_check_is_caught() {
    assert_caught::<SkipsPostCheck>(
        "skips the post-create re-check",
        &[
            Property::ResumePastEviction,
            Property::StreamingWithoutChecks,
        ],
    );
}

fn append(count: u8) -> Action {
    Action::Env(EnvAction::Append {
        count,
        scope_bits: 0xff,
    })
}

fn respond() -> Action {
    Action::Respond { variant: 5 }
}

/// Resume an All-scope watch after 3 of 5 revisions; 4 and 5 are evicted before
/// they are delivered; a new write 6 arrives.
fn evicted_gap_scenario() -> Scenario {
    Scenario {
        setup: Setup {
            retain: Retain::Count,
            scope: GuardMode::Dense,
            start: Some((2, false)), // cursor 3
        },
        pre: vec![EnvAction::Append {
            count: 5,
            scope_bits: 0xff,
        }],
        run: vec![
            respond(), // pre-check: first 1 ≤ 4
            respond(), // consumer at 4
            respond(), // post-check
            Action::Env(EnvAction::EvictHead { count: 5 }),
            append(1),
            Action::Deliver, // 6: gapped
            respond(),       // floor probe: first 6 > 4
        ],
    }
}

#[test]
fn fixed_scenario_floor_guard_expires_where_the_mutant_loses_data() {
    let s = evicted_gap_scenario();
    let stats = run_scenario::<ResumeGuard>(&s).expect("production guard is safe");
    assert_eq!(
        stats.floor_passed, 1,
        "the production guard expires: {stats:?}"
    );
    let v = run_scenario::<NoFloorGuard>(&s).expect_err("mutant forwards 6");
    assert_eq!(v.property, Property::ForwardPastEviction, "{v}");
    let v = run_scenario::<SparseJudging>(&s).expect_err("mutant forwards 6");
    assert_eq!(v.property, Property::ForwardPastEviction, "{v}");
}

#[test]
fn fixed_scenario_reconnect_reresumes_where_the_mutant_streams_on() {
    // A Sparse watch delivers 4; while the client is away 5..=6 are evicted; it
    // reconnects and its own consumer recreation would continue at 5, i.e. at 7.
    let s = Scenario {
        setup: Setup {
            retain: Retain::Count,
            scope: GuardMode::Sparse,
            start: Some((2, false)), // cursor 3
        },
        pre: vec![EnvAction::Append {
            count: 6,
            scope_bits: 0xff,
        }],
        run: vec![
            respond(),
            respond(),
            respond(),
            Action::Deliver, // 4
            Action::Env(EnvAction::EvictHead { count: 6 }),
            Action::Reconnect,
            append(1),       // the executor feeds Reconnected first
            Action::Deliver, // production: nothing (re-resume pending); mutant: 7
            respond(),       // production: pre-check from 4 finds first 7 > 5
        ],
    };
    let stats = run_scenario::<ResumeGuard>(&s).expect("production guard is safe");
    assert_eq!(stats.below_floor, 1, "{stats:?}");
    let v = run_scenario::<IgnoresReconnect>(&s).expect_err("mutant streams on");
    assert_eq!(v.property, Property::ResumePastEviction, "{v}");
    // Without the eviction the same mutant is still caught, structurally.
    let mut quiet = s.clone();
    quiet.run.remove(4);
    let v = run_scenario::<IgnoresReconnect>(&quiet).expect_err("mutant streams on");
    assert_eq!(v.property, Property::UncheckedAfterReconnect, "{v}");
}

#[test]
fn fixed_scenario_post_check_catches_eviction_racing_creation() {
    let s = Scenario {
        setup: Setup {
            retain: Retain::Count,
            scope: GuardMode::Sparse,
            start: Some((2, false)), // cursor 3
        },
        pre: vec![EnvAction::Append {
            count: 5,
            scope_bits: 0xff,
        }],
        run: vec![
            respond(), // pre-check passes: first 1
            Action::Env(EnvAction::EvictHead { count: 4 }),
            respond(), // consumer created at 4, stream starts at 5
            respond(), // post-check: first 5 > 4
        ],
    };
    let stats = run_scenario::<ResumeGuard>(&s).expect("production guard is safe");
    assert_eq!(stats.below_floor, 1, "{stats:?}");
    let v = run_scenario::<SkipsPostCheck>(&s).expect_err("mutant streams");
    assert_eq!(v.property, Property::ResumePastEviction, "{v}");
}
