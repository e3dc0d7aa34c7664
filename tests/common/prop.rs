//! proptest helpers shared by the property suites.
#![allow(dead_code)]

use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// How many generated cases a mutation search runs before it gives up.
pub const MUTANT_CASES: u32 = 1_024;

/// A fixed-seed runner, independent of `PROPTEST_CASES`, so mutation evidence
/// and vacuity witnesses never shrink to nothing; it shrinks at most 2 000
/// times.
pub fn deterministic_runner(cases: u32) -> TestRunner {
    deterministic_runner_shrinking(cases, 2_000)
}

/// [`deterministic_runner`] with its own bound on shrink iterations.
pub fn deterministic_runner_shrinking(cases: u32, max_shrink_iters: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}
