//! proptest: the resume kernels (`gap_holds_no_eviction`, `plan_resume`,
//! `resume_start_sequence`) against histories of a simulated stream log
//! (docs/protocols/resume-guard.md; docs/verification.md row 3), and the mutations that show each
//! checker has teeth. Mutations are test-side wrappers around the real
//! kernels; production code is never altered.

use std::collections::BTreeSet;

use kvfold::protocol::resume::{ExpiryCause, LogLimits, ResumeCursor, StreamFacts, plan_resume};
use kvfold::protocol::{gap_holds_no_eviction, resume_start_sequence};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestError};

mod common;
#[path = "prop_resume_guard/stream.rs"]
mod stream;

use common::prop::{MUTANT_CASES, deterministic_runner};
use stream::*;

// ===========================================================================
// Kernel properties
// ===========================================================================

type GapKernel = fn(bool, u64, u64) -> bool;

/// Monotone: true at age `t` ⇒ true at every `t' < t`.
fn check_gap_monotone(
    f: GapKernel,
    age_only: bool,
    max_age_ms: u64,
    t: u64,
    earlier: u64,
) -> Result<(), String> {
    let t2 = earlier.min(t);
    if f(age_only, max_age_ms, t) && !f(age_only, max_age_ms, t2) {
        return Err(format!("true at {t}, false at {t2} (max_age {max_age_ms})"));
    }
    Ok(())
}

fn small_or_any() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..200_000, any::<u64>()]
}

type PlanKernel = fn(&ResumeCursor, &StreamFacts) -> Result<u64, ExpiryCause>;

/// `Ok(e)` never moves back, never passes the stream's end, and never starts past
/// an evicted revision (every revision after the cursor that is gone was superseded).
fn check_plan(plan: PlanKernel, setup: &Setup, pre: &[EnvAction]) -> Result<(), String> {
    let (cursor, facts, stream) = resume_point(setup, pre);
    if let Ok(e) = plan(&cursor, &facts) {
        if e < cursor.revision {
            return Err(format!("Ok({e}) behind cursor {cursor:?}"));
        }
        if e > facts.last_sequence {
            return Err(format!("Ok({e}) past the stream's end {facts:?}"));
        }
        if let Some(lost) = stream.lost_between(cursor.revision, u64::MAX, &BTreeSet::new()) {
            return Err(format!(
                "Ok({e}) from {cursor:?} skips evicted {lost}; {facts:?}"
            ));
        }
    }
    Ok(())
}

/// Mutant "silent clamp": treat row 5 (below floor) as a resume at the floor.
fn silent_clamp(cursor: &ResumeCursor, facts: &StreamFacts) -> Result<u64, ExpiryCause> {
    match plan_resume(cursor, facts) {
        Err(ExpiryCause::BelowFloor { .. }) => {
            Ok(facts.first_sequence.saturating_sub(1).max(cursor.revision))
        }
        other => other,
    }
}

proptest! {
    #[test]
    fn gap_holds_no_eviction_is_monotone_in_age(
        age_only in any::<bool>(),
        max_age_ms in small_or_any(),
        t in small_or_any(),
        earlier in small_or_any(),
    ) {
        prop_assert!(check_gap_monotone(gap_holds_no_eviction, age_only, max_age_ms, t, earlier).is_ok());
    }

    #[test]
    fn plan_resume_never_skips_an_evicted_gap((setup, pre) in history()) {
        let verdict = check_plan(plan_resume, &setup, &pre);
        prop_assert!(verdict.is_ok(), "{:?}", verdict);
    }

    #[test]
    fn plan_resume_never_moves_back_or_leaves_the_window(
        revision in small_or_any(),
        first in small_or_any(),
        span in small_or_any(),
        written in proptest::option::of(small_or_any()),
        created in proptest::option::of(small_or_any()),
        server_now in proptest::option::of(small_or_any()),
        max_age_ms in small_or_any(),
        age_only in any::<bool>(),
    ) {
        // Any real stream has first ≤ last + 1.
        let last = first.saturating_sub(1).saturating_add(span);
        let limits = if age_only {
            LogLimits { max_age_ms, allow_msg_ttl: false, discard_old: false, max_bytes: 0, max_msgs: 0 }
        } else {
            LogLimits { max_age_ms, ..COUNT_LIMITS }
        };
        let cursor = ResumeCursor { revision, written_ms: written };
        let facts = StreamFacts {
            first_sequence: first,
            last_sequence: last,
            created_ms: created,
            server_now_ms: server_now,
            limits,
        };
        if let Ok(e) = plan_resume(&cursor, &facts) {
            prop_assert!(e >= revision);
            prop_assert!(e <= last);
            prop_assert!(first <= e.saturating_add(1), "the start is inside the window");
        }
    }

    #[test]
    fn resume_start_sequence_never_wraps(revision in prop_oneof![any::<u64>(), Just(u64::MAX), Just(0)]) {
        match resume_start_sequence(revision) {
            Some(start) => {
                prop_assert_eq!(u128::from(start), u128::from(revision) + 1);
                prop_assert!(start > revision && start != 0);
            }
            None => prop_assert_eq!(revision, u64::MAX),
        }
    }
}

#[test]
fn mutant_non_monotone_gap_rule_is_caught() {
    let old_enough: GapKernel =
        |age_only, max_age_ms, t| age_only && max_age_ms > 0 && t.saturating_mul(2) >= max_age_ms;
    let mut runner = deterministic_runner(MUTANT_CASES);
    let strategy = (any::<bool>(), 0u64..1_000, 0u64..1_000, 0u64..1_000);
    let result = runner.run(&strategy, |(a, m, t, e)| {
        check_gap_monotone(old_enough, a, m, t, e).map_err(TestCaseError::fail)
    });
    assert!(matches!(result, Err(TestError::Fail(..))), "{result:?}");
    let mut runner = deterministic_runner(MUTANT_CASES);
    assert!(
        runner
            .run(&strategy, |(a, m, t, e)| {
                check_gap_monotone(gap_holds_no_eviction, a, m, t, e).map_err(TestCaseError::fail)
            })
            .is_ok()
    );
}

#[test]
fn mutant_silent_clamp_is_caught() {
    let mut runner = deterministic_runner(MUTANT_CASES);
    let result = runner.run(&history(), |(setup, pre)| {
        check_plan(silent_clamp, &setup, &pre).map_err(TestCaseError::fail)
    });
    let Err(TestError::Fail(reason, (setup, pre))) = result else {
        panic!("silent clamp survived: {result:?}");
    };
    println!("silent clamp caught: {reason}\n{setup:?} {pre:?}");
}
