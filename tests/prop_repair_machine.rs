//! proptest state machine for the production `RepairMachine` (docs/protocols/repair-machine.md,
//! "Invariants"; docs/verification.md row 5): random scripts, each step either follows the
//! machine's phase (the completion its last command waits for, with a random outcome) or
//! injects an arbitrary event, drive the machine while a tracker of what the executor saw
//! checks invariants 1–7 after every step (the driver and tracker live in
//! `kvfold::fuzz_bodies::repair_script`). Mutations are test-side wrappers that break one
//! decision; each must be caught (docs/verification.md, "Mutations").

use std::collections::VecDeque;

use kvfold::Retention;
use kvfold::fuzz_bodies::repair_script::{
    Counts, Outcome, Script, Setup, Step, Subject, Violation, run_with,
};
use kvfold::protocol::RepairMode;
use kvfold::protocol::repair::{
    ArtifactView, RETENTION_POLL_MS, RepairCommand, RepairEvent, RepairMachine, RepairNotice,
    RepairPhase, RepairStart, Unexpected,
};
use kvfold::protocol::time::Millis;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestError, TestRunner};

mod common;

// ===========================================================================
// Strategies
// ===========================================================================

fn mode() -> impl Strategy<Value = RepairMode> {
    prop_oneof![
        Just(RepairMode::None),
        Just(RepairMode::Relist),
        Just(RepairMode::Restore),
        Just(RepairMode::Auto),
    ]
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        mode(),
        prop_oneof![2 => Just(None), 3 => (0u8..12, any::<bool>()).prop_map(Some)],
        any::<bool>(),
        0u8..3,
    )
        .prop_map(|(mode, resume, unanchored, scope)| Setup {
            mode,
            resume,
            unanchored,
            scope,
        })
}

fn outcome() -> impl Strategy<Value = Outcome> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<bool>(),
        any::<u8>(),
        any::<u8>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(kind, rank, evicts, first, scope, memo)| Outcome {
            kind,
            rank,
            evicts,
            first,
            scope,
            memo,
        })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        16 => outcome().prop_map(Step::Follow),
        3 => (any::<u8>(), outcome(), 0u8..4).prop_map(|(kind, outcome, back)| Step::Junk {
            kind,
            outcome,
            back
        }),
        2 => prop_oneof![Just(1u32), Just(RETENTION_POLL_MS as u32)].prop_map(Step::Advance),
    ]
}

fn script() -> impl Strategy<Value = Script> {
    (setup(), vec(step(), 0..60)).prop_map(|(setup, steps)| Script { setup, steps })
}

// ===========================================================================
// The production machine
// ===========================================================================

proptest! {
    // Default config: 256 cases unless PROPTEST_CASES says otherwise.
    #[test]
    fn repair_machine_keeps_every_invariant(s in script()) {
        if let Err(v) = run_with::<RepairMachine>(&s) {
            prop_assert!(false, "{}", v);
        }
    }
}

fn deterministic_runner(cases: u32) -> TestRunner {
    common::prop::deterministic_runner_shrinking(cases, 4_000)
}

#[test]
fn scripts_reach_every_interesting_path() {
    let mut runner = deterministic_runner(512);
    let total = std::cell::RefCell::new(Counts::default());
    runner
        .run(&script(), |s| {
            let d =
                run_with::<RepairMachine>(&s).map_err(|v| TestCaseError::fail(v.to_string()))?;
            total.borrow_mut().add(&d);
            Ok(())
        })
        .expect("the production machine keeps every invariant");
    let c = total.into_inner();
    println!("witnesses over 512 scripts: {c:?}");
    assert!(c.rejected > 0 && c.watches > 0 && c.polls > 0, "{c:?}");
    assert!(c.evictings > 0, "the memo was handed to the fold: {c:?}");
    assert!(
        c.relists > 0 && c.acks > 0 && c.relists_refused > 0,
        "relists sent, acknowledged and refused: {c:?}"
    );
    assert!(
        c.restores > 0 && c.restores_refused > 0 && c.drops > 0,
        "restores sent, refused, and a fetched artifact dropped: {c:?}"
    );
    assert!(
        c.resumed_after_restore > 0,
        "a watch resumed from a restored cursor: {c:?}"
    );
    assert!(c.finishes > 0, "{c:?}");
}

// ===========================================================================
// Mutations: test-side wrappers that break one decision
// ===========================================================================

/// Forwards the getters to the wrapped production machine.
macro_rules! forward_getters {
    () => {
        fn poll_notice(&mut self) -> Option<RepairNotice> {
            self.inner.poll_notice()
        }
        fn poll_timeout(&self) -> Option<Millis> {
            self.inner.poll_timeout()
        }
        fn phase(&self) -> RepairPhase {
            self.inner.phase()
        }
        fn memo(&self) -> bool {
            self.inner.memo()
        }
    };
}

/// Mutant "no ack barrier": the re-list watch starts together with the relist
/// hand-off instead of after the fold's ack (invariant 2).
#[derive(Clone, Debug, PartialEq)]
struct NoAckBarrier {
    inner: RepairMachine,
    queue: VecDeque<RepairCommand>,
    /// The production re-list start, already performed early, is dropped.
    started_early: bool,
}

impl Subject for NoAckBarrier {
    fn new(start: RepairStart) -> Self {
        Self {
            inner: RepairMachine::new(start),
            queue: VecDeque::new(),
            started_early: false,
        }
    }
    fn handle(&mut self, event: RepairEvent) -> Result<(), Unexpected> {
        self.inner.handle(event)
    }
    fn poll_command(&mut self) -> Option<RepairCommand> {
        if let Some(command) = self.queue.pop_front() {
            return Some(command);
        }
        match self.inner.poll_command()? {
            RepairCommand::SendRelist { scratch } => {
                self.queue
                    .push_back(RepairCommand::StartWatch { from: None });
                self.started_early = true;
                Some(RepairCommand::SendRelist { scratch })
            }
            RepairCommand::StartWatch { from: None } if self.started_early => {
                self.started_early = false;
                self.inner.poll_command()
            }
            command => Some(command),
        }
    }
    forward_getters!();
}

/// Mutant "trust the manifest": the re-check judges what `latest` announced
/// instead of what the download delivered (invariant 3).
#[derive(Clone, Debug, PartialEq)]
struct TrustsTheManifest {
    inner: RepairMachine,
    announced: Option<ArtifactView>,
}

impl Subject for TrustsTheManifest {
    fn new(start: RepairStart) -> Self {
        Self {
            inner: RepairMachine::new(start),
            announced: None,
        }
    }
    fn handle(&mut self, event: RepairEvent) -> Result<(), Unexpected> {
        let event = match (event, &self.announced) {
            (RepairEvent::Fetched { now, result: Ok(_) }, Some(announced)) => {
                RepairEvent::Fetched {
                    now,
                    result: Ok(announced.clone()),
                }
            }
            (event, _) => event,
        };
        let announced = match &event {
            RepairEvent::Latest { result: Ok(v), .. } => Some(v.clone()),
            _ => None,
        };
        self.inner.handle(event)?;
        if announced.is_some() {
            self.announced = announced;
        }
        Ok(())
    }
    fn poll_command(&mut self) -> Option<RepairCommand> {
        self.inner.poll_command()
    }
    forward_getters!();
}

/// Mutant "relist on an evicting bucket": the planning read is taken as a bucket
/// that never evicts, so the listing looks like the truth (invariant 4).
#[derive(Clone, Debug, PartialEq)]
struct RelistsOnEvicting {
    inner: RepairMachine,
}

impl Subject for RelistsOnEvicting {
    fn new(start: RepairStart) -> Self {
        Self {
            inner: RepairMachine::new(start),
        }
    }
    fn handle(&mut self, event: RepairEvent) -> Result<(), Unexpected> {
        let event = match event {
            RepairEvent::Retention {
                now,
                result: Ok(Some(r)),
            } if self.inner.phase() == RepairPhase::Planning => RepairEvent::Retention {
                now,
                result: Ok(Some(Retention {
                    evicts_current_values: false,
                    ..r
                })),
            },
            event => event,
        };
        self.inner.handle(event)
    }
    fn poll_command(&mut self) -> Option<RepairCommand> {
        self.inner.poll_command()
    }
    forward_getters!();
}

/// Searches random scripts for a violation of `invariant` by `M`.
fn find_violation<M: Subject>(cases: u32, invariant: u8) -> Option<Violation> {
    let mut runner = deterministic_runner(cases);
    let result = runner.run(&script(), |s| match run_with::<M>(&s) {
        Err(v) if v.invariant == invariant => Err(TestCaseError::fail(v.to_string())),
        _ => Ok(()),
    });
    match result {
        Ok(()) => None,
        Err(TestError::Fail(_, script)) => {
            let violation = run_with::<M>(&script).expect_err("the shrunk script still fails");
            eprintln!("counterexample: {script:?}\n{violation}");
            Some(violation)
        }
        Err(TestError::Abort(reason)) => panic!("runner aborted: {reason}"),
    }
}

#[test]
fn mutant_without_the_ack_barrier_is_caught() {
    let v = find_violation::<NoAckBarrier>(common::prop::MUTANT_CASES, 2).expect("found");
    assert_eq!(v.invariant, 2, "{v}");
}

#[test]
fn mutant_trusting_the_manifest_over_the_download_is_caught() {
    let v = find_violation::<TrustsTheManifest>(common::prop::MUTANT_CASES, 3).expect("found");
    assert_eq!(v.invariant, 3, "{v}");
}

#[test]
fn mutant_relisting_on_an_evicting_bucket_is_caught() {
    let v = find_violation::<RelistsOnEvicting>(common::prop::MUTANT_CASES, 4).expect("found");
    assert_eq!(v.invariant, 4, "{v}");
}
