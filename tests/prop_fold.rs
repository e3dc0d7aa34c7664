//! proptest state machine for the production `FoldMachine` (docs/protocols/fold-machine.md,
//! "Invariants"; docs/verification.md rows 1–2 and "proptest"): random step sequences (each
//! step follows `wants()` or injects an arbitrary event) drive the machine through the
//! checker in `kvfold::fuzz_bodies::fold_script`, whose tracker of received, applied and
//! committed updates is the small reference model. Mutations are test-side wrappers that
//! break one decision; each must be caught (docs/verification.md, "Mutations").

use std::collections::VecDeque;

use kvfold::WatchCursor;
use kvfold::fuzz_bodies::fold_script::{
    End, Event, Item, Rev, Script, Shape, Step, Subject, Summary, Target, UpdateKind, Violation,
    run, run_with,
};
use kvfold::protocol::fold::{
    FoldCommand, FoldConfig, FoldEvent, FoldMachine, FoldNotice, FoldPhase, RepairKind,
    StoreOutcome, Unexpected, Wants,
};
use kvfold::protocol::time::Millis;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestError, TestRunner};

mod common;

// ===========================================================================
// Strategies
// ===========================================================================

fn cursor() -> impl Strategy<Value = WatchCursor> {
    prop_oneof![
        2 => Just(WatchCursor::none()),
        4 => (0u64..20).prop_map(WatchCursor::from_u64),
        1 => (0u64..20).prop_map(|r| WatchCursor::from_u64(r).remembering(true)),
        1 => Just(WatchCursor::none().remembering(true)),
    ]
}

fn config() -> impl Strategy<Value = FoldConfig> {
    (
        0u64..=50,
        0usize..=5,
        any::<bool>(),
        any::<bool>(),
        cursor(),
        prop_oneof![2 => cursor().prop_map(Some), 1 => Just(None)],
    )
        .prop_map(|(window_ms, max, store, armed, resume, store_cursor)| {
            let store_cursor = store.then(|| store_cursor.unwrap_or_else(|| resume.clone()));
            FoldConfig {
                window_ms,
                max,
                has_store: store_cursor.is_some(),
                repair_armed: armed,
                resume,
                store_cursor,
            }
        })
}

fn rev() -> impl Strategy<Value = Rev> {
    prop_oneof![6 => Just(Rev::Next), 2 => Just(Rev::Unknown), 1 => (0u8..24).prop_map(Rev::At)]
}

fn update_kind() -> impl Strategy<Value = UpdateKind> {
    prop_oneof![
        3 => Just(UpdateKind::Put),
        1 => Just(UpdateKind::Delete),
        1 => Just(UpdateKind::Purge),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    let end = prop_oneof![Just(End::Clean), Just(End::Failed), Just(End::Panicked)];
    let target = prop_oneof![
        3 => (0u8..6).prop_map(Target::Ahead),
        1 => (0u8..24).prop_map(Target::At),
        1 => Just(Target::None),
    ];
    let shape = prop_oneof![
        4 => Just(Shape::Planned),
        1 => Just(Shape::Put),
        1 => Just(Shape::SyntheticDelete),
        1 => Just(Shape::KnownDelete),
    ];
    prop_oneof![
        8 => (rev(), update_kind(), 0u8..4, any::<bool>()).prop_map(|(rev, kind, key, parsed)| {
            Event::Update { rev, kind, key, parsed }
        }),
        2 => Just(Event::Window),
        2 => Just(Event::StoreCommitted),
        2 => Just(Event::StoreFailed),
        1 => Just(Event::StoreFailedWrongLength),
        1 => Just(Event::StoreLost),
        1 => Just(Event::ExportRequested),
        1 => any::<bool>().prop_map(|ok| Event::ExportDone { ok }),
        1 => Just(Event::ExportPanicked),
        1 => Just(Event::Evicting),
        1 => Just(Event::Relist),
        1 => target.prop_map(|target| Event::Restore { target }),
        1 => Just(Event::BacklogDrained),
        1 => (0u8..4).prop_map(|stale| Event::RelistDiffed { stale }),
        1 => (0u8..3, 0u8..3).prop_map(|(rewrite, delete_candidates)| {
            Event::RestoreDiffed { rewrite, delete_candidates }
        }),
        1 => (0u8..3).prop_map(|remaining| Event::LiveFiltered { remaining }),
        1 => proptest::option::of(0u8..30).prop_map(|first| Event::Retention { first }),
        2 => (0u8..7, any::<u8>(), shape).prop_map(|(count, parsed_mask, shape)| {
            Event::Corrections { count, parsed_mask, shape }
        }),
        1 => any::<bool>().prop_map(|store_lost| Event::RepairFailed { store_lost }),
        1 => Just(Event::Shutdown),
        1 => end.prop_map(Event::WatchEnded),
        1 => (0u8..4).prop_map(|facts| Event::WatchExpired { facts }),
    ]
}

/// `flushes` flushes in a row whose store applies fail (16 = the fail-stop path).
fn failure_burst(flushes: usize) -> Vec<Step> {
    (0..flushes)
        .flat_map(|_| {
            [
                Step::Inject(Event::Update {
                    rev: Rev::Next,
                    kind: UpdateKind::Put,
                    key: 0,
                    parsed: true,
                }),
                Step::Advance(60),
                Step::Inject(Event::Window),
                Step::Inject(Event::StoreFailed),
            ]
        })
        .collect()
}

/// A run of steps: mostly single steps that follow `wants()`, some injected
/// events and clock moves, and occasionally a burst of failing store applies.
fn segment() -> impl Strategy<Value = Vec<Step>> {
    prop_oneof![
        24 => any::<u8>().prop_map(|s| vec![Step::Follow(s)]),
        4 => (0u8..60).prop_map(|ms| vec![Step::Advance(ms)]),
        1 => (0u8..20).prop_map(|ms| vec![Step::Rewind(ms)]),
        8 => event().prop_map(|e| vec![Step::Inject(e)]),
        1 => prop_oneof![(1usize..16), Just(16usize)].prop_map(failure_burst),
    ]
}

fn script() -> impl Strategy<Value = Script> {
    (config(), vec(segment(), 0..80)).prop_map(|(config, segments)| Script {
        config,
        steps: segments.into_iter().flatten().collect(),
    })
}

// ===========================================================================
// The production machine
// ===========================================================================

proptest! {
    // Default config: 256 cases unless PROPTEST_CASES says otherwise.
    #[test]
    fn fold_machine_keeps_every_invariant(s in script()) {
        if let Err(v) = run(&s) {
            prop_assert!(false, "{}", v);
        }
    }

    /// The fuzz body on arbitrary bytes (the decoder is total).
    #[test]
    fn fuzz_body_accepts_arbitrary_bytes(data in vec(any::<u8>(), 0..600)) {
        kvfold::fuzz_bodies::fold_machine(&data);
    }
}

/// The shared fixed-seed runner (`common::prop`), shrinking up to 4 000
/// times.
fn deterministic_runner(cases: u32) -> TestRunner {
    common::prop::deterministic_runner_shrinking(cases, 4_000)
}

#[test]
fn scripts_reach_every_interesting_path() {
    let mut runner = deterministic_runner(512);
    let total = std::cell::RefCell::new(Summary::default());
    runner
        .run(&script(), |s| {
            let summary = run(&s).map_err(|v| TestCaseError::fail(v.to_string()))?;
            let mut t = total.borrow_mut();
            let c = &mut t.counts;
            let d = summary.counts;
            c.accepted += d.accepted;
            c.rejected += d.rejected;
            c.applies += d.applies;
            c.store_applies += d.store_applies;
            c.empty_store_applies += d.empty_store_applies;
            c.commits += d.commits;
            c.store_failures += d.store_failures;
            c.cumulative_commits += d.cumulative_commits;
            c.fail_stops += d.fail_stops;
            c.on_applied += d.on_applied;
            c.late_updates += d.late_updates;
            c.exports += d.exports;
            c.relists += d.relists;
            c.restores += d.restores;
            c.refusals += d.refusals;
            c.corrections += d.corrections;
            c.memos += d.memos;
            c.finishes += d.finishes;
            c.moved_back += d.moved_back;
            c.expiries += d.expiries;
            c.received_in_flight += d.received_in_flight;
            c.in_flight_completions += d.in_flight_completions;
            Ok(())
        })
        .expect("the production machine keeps every invariant");
    let c = total.into_inner().counts;
    println!("witnesses over 512 scripts: {c:?}");
    // `sometimes` witnesses: the invariants above are not vacuous.
    assert!(c.rejected > 0 && c.applies > 0 && c.on_applied > 0, "{c:?}");
    assert!(
        c.empty_store_applies > 0,
        "an empty batch persisted a cursor: {c:?}"
    );
    assert!(
        c.cumulative_commits > 0,
        "a failure then a cumulative commit: {c:?}"
    );
    assert!(
        c.fail_stops > 0,
        "16 consecutive failures ended a run: {c:?}"
    );
    assert!(c.late_updates > 0, "a late update closed its window: {c:?}");
    assert!(c.exports > 0 && c.memos > 0, "{c:?}");
    assert!(c.relists > 0, "a relist was acknowledged: {c:?}");
    assert!(
        c.expiries > 0,
        "a cursor expiry was answered (row K1): {c:?}"
    );
    assert!(
        c.restores > 0 && c.refusals > 0,
        "restores committed and refused: {c:?}"
    );
    assert!(
        c.corrections > 0 && c.moved_back > 0 && c.finishes > 0,
        "{c:?}"
    );
    assert!(
        c.received_in_flight > 0 && c.in_flight_completions > 0,
        "updates received beside a store apply in flight, which then completed: {c:?}"
    );
}

// ===========================================================================
// Mutations: test-side wrappers that break one decision
// ===========================================================================

/// Forwards every getter to the production machine.
macro_rules! forward_getters {
    () => {
        fn poll_notice(&mut self) -> Option<FoldNotice> {
            self.inner.poll_notice()
        }
        fn poll_timeout(&self) -> Option<Millis> {
            self.inner.poll_timeout()
        }
        fn wants(&self) -> Wants {
            self.inner.wants()
        }
        fn phase(&self) -> FoldPhase {
            self.inner.phase()
        }
        fn applied(&self) -> &WatchCursor {
            self.inner.applied()
        }
        fn committed(&self) -> &WatchCursor {
            self.inner.committed()
        }
        fn store_fail_streak(&self) -> u32 {
            self.inner.store_fail_streak()
        }
        fn has_store(&self) -> bool {
            self.inner.has_store()
        }
    };
}

/// Mutant "drop the failed batch": after a failed store apply the machine
/// re-queues the batch, but the wrapper strips it from the next `StoreApply`, so
/// the next commit advances the store's cursor over it (invariant 2).
#[derive(Clone, Debug, PartialEq)]
struct DropsFailedBatch {
    inner: FoldMachine<Item>,
    /// Raw updates of the last failed apply still to strip.
    strip: usize,
}

impl Subject for DropsFailedBatch {
    fn new(config: FoldConfig) -> Self {
        Self {
            inner: FoldMachine::new(config),
            strip: 0,
        }
    }
    fn handle(&mut self, event: FoldEvent<Item>) -> Result<(), Unexpected> {
        let failed = match &event {
            FoldEvent::StoreApplied {
                outcome: StoreOutcome::Failed { raw, .. },
                ..
            } => raw.len(),
            _ => 0,
        };
        self.inner.handle(event)?;
        self.strip += failed;
        Ok(())
    }
    fn poll_command(&mut self) -> Option<FoldCommand<Item>> {
        match self.inner.poll_command()? {
            FoldCommand::StoreApply { mut raw, cursor } if self.strip > 0 => {
                let dropped = self.strip.min(raw.len());
                raw.drain(..dropped);
                self.strip = 0;
                Some(FoldCommand::StoreApply { raw, cursor })
            }
            command => Some(command),
        }
    }
    fn resume_cursor(&self) -> &WatchCursor {
        self.inner.resume_cursor()
    }
    forward_getters!();
}

/// Mutant "move the cursor before apply": within one drain of the queue, every
/// `Apply` is performed after the cursor command (`StoreApply` / `OnApplied`)
/// that follows it (invariant 1).
#[derive(Clone, Debug, PartialEq)]
struct AppliesAfterCursor {
    inner: FoldMachine<Item>,
    queue: VecDeque<FoldCommand<Item>>,
}

impl Subject for AppliesAfterCursor {
    fn new(config: FoldConfig) -> Self {
        Self {
            inner: FoldMachine::new(config),
            queue: VecDeque::new(),
        }
    }
    fn handle(&mut self, event: FoldEvent<Item>) -> Result<(), Unexpected> {
        self.inner.handle(event)
    }
    fn poll_command(&mut self) -> Option<FoldCommand<Item>> {
        if self.queue.is_empty() {
            let mut held: Option<FoldCommand<Item>> = None;
            while let Some(command) = self.inner.poll_command() {
                match command {
                    FoldCommand::Apply(_) if held.is_none() => held = Some(command),
                    cursor @ (FoldCommand::StoreApply { .. } | FoldCommand::OnApplied(_)) => {
                        self.queue.push_back(cursor);
                        self.queue.extend(held.take());
                    }
                    command => self.queue.push_back(command),
                }
            }
            self.queue.extend(held);
        }
        self.queue.pop_front()
    }
    fn resume_cursor(&self) -> &WatchCursor {
        self.inner.resume_cursor()
    }
    forward_getters!();
}

/// Mutant "move the cursor while the in-flight apply has not committed": every
/// `StoreApply` is followed at once by the `OnApplied` of its cursor, whose real
/// announcement after the commit is dropped (invariant 6: nothing but a timer or an
/// expiry answer beside a store apply in flight).
#[derive(Clone, Debug, PartialEq)]
struct AnnouncesInFlight {
    inner: FoldMachine<Item>,
    queue: VecDeque<FoldCommand<Item>>,
    /// Announced early: the machine's own `OnApplied` of it is dropped.
    announced: Option<WatchCursor>,
}

impl Subject for AnnouncesInFlight {
    fn new(config: FoldConfig) -> Self {
        Self {
            inner: FoldMachine::new(config),
            queue: VecDeque::new(),
            announced: None,
        }
    }
    fn handle(&mut self, event: FoldEvent<Item>) -> Result<(), Unexpected> {
        self.inner.handle(event)
    }
    fn poll_command(&mut self) -> Option<FoldCommand<Item>> {
        if let Some(command) = self.queue.pop_front() {
            return Some(command);
        }
        loop {
            match self.inner.poll_command()? {
                FoldCommand::StoreApply { raw, cursor } => {
                    self.queue.push_back(FoldCommand::OnApplied(cursor.clone()));
                    self.announced = Some(cursor.clone());
                    return Some(FoldCommand::StoreApply { raw, cursor });
                }
                FoldCommand::OnApplied(cursor) if self.announced.as_ref() == Some(&cursor) => {
                    self.announced = None;
                }
                command => return Some(command),
            }
        }
    }
    fn resume_cursor(&self) -> &WatchCursor {
        self.inner.resume_cursor()
    }
    forward_getters!();
}

/// Mutant "resume from the in-memory cursor": with a store, the run reports the
/// applied cursor (what `on_applied` saw) instead of the store's (invariant 13).
#[derive(Clone, Debug, PartialEq)]
struct ResumesFromApplied {
    inner: FoldMachine<Item>,
}

impl Subject for ResumesFromApplied {
    fn new(config: FoldConfig) -> Self {
        Self {
            inner: FoldMachine::new(config),
        }
    }
    fn handle(&mut self, event: FoldEvent<Item>) -> Result<(), Unexpected> {
        self.inner.handle(event)
    }
    fn poll_command(&mut self) -> Option<FoldCommand<Item>> {
        self.inner.poll_command()
    }
    fn resume_cursor(&self) -> &WatchCursor {
        self.inner.applied()
    }
    forward_getters!();
}

/// Mutant "the window does not outrank updates": a late update is handed to the
/// machine with a `now` just before the deadline, so it joins the expired batch
/// instead of closing it first (row U0; invariant 16).
#[derive(Clone, Debug, PartialEq)]
struct IgnoresLateWindow {
    inner: FoldMachine<Item>,
}

impl Subject for IgnoresLateWindow {
    fn new(config: FoldConfig) -> Self {
        Self {
            inner: FoldMachine::new(config),
        }
    }
    fn handle(&mut self, event: FoldEvent<Item>) -> Result<(), Unexpected> {
        let event = match (event, self.inner.poll_timeout()) {
            (
                FoldEvent::Update {
                    now,
                    update,
                    parsed,
                },
                Some(deadline),
            ) if now >= deadline && deadline.0 > 0 => FoldEvent::Update {
                now: Millis(deadline.0 - 1),
                update,
                parsed,
            },
            (event, _) => event,
        };
        self.inner.handle(event)
    }
    fn poll_command(&mut self) -> Option<FoldCommand<Item>> {
        self.inner.poll_command()
    }
    fn resume_cursor(&self) -> &WatchCursor {
        self.inner.resume_cursor()
    }
    forward_getters!();
}

/// Mutant "finish without flushing": once shutdown or the watch's end is fed,
/// the `Apply` of the last batch is never performed (invariant 7).
#[derive(Clone, Debug, PartialEq)]
struct FinishesWithoutApply {
    inner: FoldMachine<Item>,
    ending: bool,
}

impl Subject for FinishesWithoutApply {
    fn new(config: FoldConfig) -> Self {
        Self {
            inner: FoldMachine::new(config),
            ending: false,
        }
    }
    fn handle(&mut self, event: FoldEvent<Item>) -> Result<(), Unexpected> {
        let ending = matches!(
            event,
            FoldEvent::Shutdown { .. } | FoldEvent::WatchEnded { .. }
        );
        self.inner.handle(event)?;
        self.ending |= ending;
        Ok(())
    }
    fn poll_command(&mut self) -> Option<FoldCommand<Item>> {
        loop {
            match self.inner.poll_command()? {
                FoldCommand::Apply(_) if self.ending => {}
                command => return Some(command),
            }
        }
    }
    fn resume_cursor(&self) -> &WatchCursor {
        self.inner.resume_cursor()
    }
    forward_getters!();
}

/// Mutant "no drain": a relist or restore request is followed at once by
/// `BacklogDrained`, as if the update channel were empty, so the repair body
/// starts before the backlog the executor holds was folded (invariant 8).
#[derive(Clone, Debug, PartialEq)]
struct SkipsTheDrain {
    inner: FoldMachine<Item>,
}

impl Subject for SkipsTheDrain {
    fn new(config: FoldConfig) -> Self {
        Self {
            inner: FoldMachine::new(config),
        }
    }
    fn handle(&mut self, event: FoldEvent<Item>) -> Result<(), Unexpected> {
        let repair = match &event {
            FoldEvent::RepairRequested { now, kind } => {
                (!matches!(kind, RepairKind::Evicting)).then_some(*now)
            }
            _ => None,
        };
        self.inner.handle(event)?;
        if let Some(now) = repair {
            // Rejected (and harmless) when a late window made it flush first.
            let _ = self.inner.handle(FoldEvent::BacklogDrained { now });
        }
        Ok(())
    }
    fn poll_command(&mut self) -> Option<FoldCommand<Item>> {
        self.inner.poll_command()
    }
    fn resume_cursor(&self) -> &WatchCursor {
        self.inner.resume_cursor()
    }
    forward_getters!();
}

/// Searches generated scripts for one where `M` breaks `invariant` (another
/// invariant first does not count); returns the shrunk violation.
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

fn store_config(max: usize) -> FoldConfig {
    FoldConfig {
        window_ms: 10,
        max,
        has_store: true,
        repair_armed: false,
        resume: WatchCursor::from_u64(1),
        store_cursor: Some(WatchCursor::from_u64(1)),
    }
}

fn put(parsed: bool) -> Step {
    Step::Inject(Event::Update {
        rev: Rev::Next,
        kind: UpdateKind::Put,
        key: 0,
        parsed,
    })
}

/// A failed batch, a newer update, then a flush that commits.
fn failure_then_flush() -> Script {
    Script {
        config: store_config(5),
        steps: vec![
            put(true),
            Step::Advance(20),
            Step::Inject(Event::Window),
            Step::Inject(Event::StoreFailed),
            put(false),
            Step::Advance(20),
            Step::Inject(Event::Window),
            Step::Inject(Event::StoreCommitted),
            Step::Inject(Event::Shutdown),
        ],
    }
}

#[test]
fn the_scripted_failure_keeps_every_invariant() {
    let summary = run(&failure_then_flush()).expect("the production machine");
    assert_eq!(summary.counts.cumulative_commits, 1, "{summary:?}");
}

#[test]
fn mutant_dropping_the_failed_batch_is_caught() {
    let v = run_with::<DropsFailedBatch>(&failure_then_flush()).expect_err("caught");
    assert_eq!(v.invariant, 2, "{v}");
    let v = find_violation::<DropsFailedBatch>(256, 2).expect("found by search");
    assert_eq!(v.invariant, 2);
}

#[test]
fn mutant_moving_the_cursor_before_apply_is_caught() {
    let script = Script {
        config: store_config(0),
        steps: vec![put(true)],
    };
    let v = run_with::<AppliesAfterCursor>(&script).expect_err("caught");
    assert_eq!(v.invariant, 1, "{v}");
    let v = find_violation::<AppliesAfterCursor>(256, 1).expect("found by search");
    assert_eq!(v.invariant, 1);
}

#[test]
fn mutant_moving_the_cursor_while_the_apply_is_in_flight_is_caught() {
    let script = Script {
        config: store_config(0),
        steps: vec![put(true)],
    };
    let v = run_with::<AnnouncesInFlight>(&script).expect_err("caught");
    assert_eq!(v.invariant, 6, "{v}");
    let v = find_violation::<AnnouncesInFlight>(256, 6).expect("found by search");
    assert_eq!(v.invariant, 6);
}

#[test]
fn mutant_resuming_from_the_in_memory_cursor_is_caught() {
    let v = run_with::<ResumesFromApplied>(&failure_then_flush()).expect_err("caught");
    assert_eq!(v.invariant, 13, "{v}");
    let v = find_violation::<ResumesFromApplied>(256, 13).expect("found by search");
    assert_eq!(v.invariant, 13);
}

#[test]
fn mutant_letting_updates_outrank_the_window_is_caught() {
    let script = Script {
        config: store_config(5),
        steps: vec![put(true), Step::Advance(20), put(true)],
    };
    let v = run_with::<IgnoresLateWindow>(&script).expect_err("caught");
    assert_eq!(v.invariant, 16, "{v}");
    let v = find_violation::<IgnoresLateWindow>(256, 16).expect("found by search");
    assert_eq!(v.invariant, 16);
}

#[test]
fn mutant_finishing_without_a_flush_is_caught() {
    let v = find_violation::<FinishesWithoutApply>(512, 7).expect("found by search");
    assert_eq!(v.invariant, 7);
}

#[test]
fn mutant_skipping_the_backlog_drain_is_caught() {
    let v = find_violation::<SkipsTheDrain>(512, 8).expect("found by search");
    assert_eq!(v.invariant, 8);
}
