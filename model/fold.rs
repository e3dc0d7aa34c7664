//! The `fold` model (docs/verification.md, "Stateright models", matrix rows 1 and 2): the
//! production [`FoldMachine`] driven the way the `watch_applied` executor drives it
//! (docs/watch-applied.md, "The drive loop" and "Performing commands") against a NATS-like
//! log, a snapshot store that can fail, crash before or after a commit, or tear a write,
//! process crashes and in-process restarts, and a domain (what `apply` saw). The machine's
//! logic is never re-implemented here; mutations are model-side wrappers that alter one
//! executor decision (docs/verification.md, "Mutations").
//!
//! Shared by the `model` test target (`mod fold;`).

use std::fmt;

use kvfold::protocol::fold::{FoldEvent, FoldPhase, Wants};
use kvfold::protocol::time::Millis;
use stateright::{Model, Property};

#[path = "fold/env.rs"]
mod env;
#[path = "fold/executor.rs"]
mod executor;
#[cfg(test)]
#[path = "fold/tests.rs"]
mod tests;

pub use env::{Slot, Store, Write, WriteKind, fold_of};
pub use executor::{Ending, Job, Run};

// ===========================================================================
// Configuration: bounds, mutation
// ===========================================================================

/// Every limit of one run of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bounds {
    /// Writes to the bucket over the whole run.
    pub writes: u8,
    /// Distinct keys written.
    pub keys: u8,
    /// `BatchConfig::max` of every run.
    pub max: usize,
    /// Writes the watch delivers with an unknown version.
    pub unknown_versions: u8,
    /// Writes `parse` rejects.
    pub rejected_parses: u8,
    /// Transient store apply failures.
    pub failures: u8,
    /// Process crashes (a plain crash, or a store apply that crashes before,
    /// after, or in the middle of its write).
    pub crashes: u8,
    /// Shutdown signals (each followed by an in-process restart).
    pub shutdowns: u8,
    /// Export requests.
    pub exports: u8,
    /// Runs ended by a clean watch end (the log delivered to its end); a run that
    /// ends with the store not holding the bucket is restarted in-process.
    /// `failures + 1` suffices: only a failed final flush leaves the store behind
    /// (a crash during that flush does not count as an end).
    pub ends: u8,
}

impl Bounds {
    /// The `#[ignore]`d three-write run, the base of the deep runs: every store
    /// outcome, a crash, a shutdown, an unknown-version write and a parse rejection
    /// (about a minute on 2 cores).
    pub const THREE_WRITES: Bounds = Bounds {
        writes: 3,
        keys: 2,
        max: 2,
        unknown_versions: 1,
        rejected_parses: 1,
        failures: 1,
        crashes: 1,
        shutdowns: 1,
        exports: 0,
        ends: 2,
    };

    /// The default run (about a second): as [`Bounds::THREE_WRITES`] with two writes,
    /// which still catches every mutation.
    pub const DEFAULT: Bounds = Bounds {
        writes: 2,
        ..Bounds::THREE_WRITES
    };

    /// The default run with an export instead of the odd deliveries (about a second).
    pub const EXPORT: Bounds = Bounds {
        unknown_versions: 0,
        rejected_parses: 0,
        exports: 1,
        ..Bounds::DEFAULT
    };

    /// The `#[ignore]`d three-write run with an export instead of the odd deliveries.
    pub const EXPORT_THREE_WRITES: Bounds = Bounds {
        writes: 3,
        ..Bounds::EXPORT
    };

    /// The `#[ignore]`d deep run: four writes (one with an unknown version).
    pub const DEEP: Bounds = Bounds {
        writes: 4,
        rejected_parses: 0,
        ..Bounds::THREE_WRITES
    };

    /// The `#[ignore]`d deep run over three keys.
    pub const DEEP_KEYS: Bounds = Bounds {
        keys: 3,
        ..Bounds::THREE_WRITES
    };

    /// The `#[ignore]`d deep run with repeated faults: two failures, two
    /// crashes, two shutdowns.
    pub const DEEP_FAULTS: Bounds = Bounds {
        failures: 2,
        crashes: 2,
        shutdowns: 2,
        ends: 3,
        ..Bounds::THREE_WRITES
    };
}

/// A deliberately broken executor decision (docs/verification.md, "Mutations"), injected
/// model-side without touching the production machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mutation {
    /// The production machine and the executor as specified.
    None,
    /// "Drop the failed batch": a failed store apply is reported to the machine
    /// as committed, so the batch is never retried.
    DropFailedBatch,
    /// "Resume from the in-memory cursor instead of the store's": an in-process
    /// restart passes `applied()` (what `on_applied` saw) as the resume cursor.
    ResumeFromApplied,
    /// "Advance the cursor before apply returns": the executor performs each
    /// `Apply` after the `StoreApply` / `OnApplied` that follows it.
    CursorBeforeApply,
    /// "Move the cursor while the in-flight apply has not committed": the executor
    /// reports each store apply committed as soon as it starts it, while the store
    /// task still runs (it may yet fail, crash or tear).
    CommitBeforeDurable,
}

impl Mutation {
    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Mutation::None => "none",
            Mutation::DropFailedBatch => "drop-failed-batch",
            Mutation::ResumeFromApplied => "resume-from-applied",
            Mutation::CursorBeforeApply => "cursor-before-apply",
            Mutation::CommitBeforeDurable => "commit-before-durable",
        }
    }
}

/// The model: bounds and the executor's decisions (as specified, or one broken).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoldModel {
    /// The run's limits.
    pub bounds: Bounds,
    /// The decision altered, if any.
    pub mutation: Mutation,
}

impl FoldModel {
    /// The production machine under the specified executor.
    pub fn new(bounds: Bounds) -> Self {
        Self {
            bounds,
            mutation: Mutation::None,
        }
    }

    /// The same model with one decision broken.
    pub fn mutated(self, mutation: Mutation) -> Self {
        Self { mutation, ..self }
    }
}

impl fmt::Display for FoldModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fold model, mutation {}", self.mutation.name())
    }
}

// ===========================================================================
// State and actions
// ===========================================================================

/// History the properties judge, as sticky bits (history lives in the model,
/// never in the machine).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Seen(u32);

impl Seen {
    /// A commit moved the store's cursor to a lower revision.
    pub const STORE_CURSOR_BACKWARD: Seen = Seen(1);
    /// `apply` saw a revision at or below one it saw earlier in the same run.
    pub const DOMAIN_BACKWARD: Seen = Seen(1 << 1);
    /// A `StoreApply` or `OnApplied` cursor covered a parsed update whose
    /// `Apply` had not run.
    pub const CURSOR_BEFORE_APPLY: Seen = Seen(1 << 2);
    /// An export's artifact missed a write at or below its cursor.
    pub const ARTIFACT_INCOMPLETE: Seen = Seen(1 << 3);
    /// The machine rejected an event the executor fed, or queued a command
    /// behind one awaiting its completion (or behind `Finish`).
    pub const CONTRACT_BROKEN: Seen = Seen(1 << 4);
    /// `on_applied` announced a cursor while the store apply carrying it was
    /// still in flight.
    pub const ANNOUNCED_IN_FLIGHT: Seen = Seen(1 << 15);
    /// Witness: an update was delivered while a store apply was in flight.
    pub const RECEIVED_IN_FLIGHT: Seen = Seen(1 << 16);
    /// Every bit an `always` property forbids.
    pub const VIOLATIONS: Seen = Seen(((1 << 5) - 1) | (1 << 15));
    /// A process crashed.
    pub const CRASHED: Seen = Seen(1 << 5);
    /// A store write was torn.
    pub const TORN: Seen = Seen(1 << 6);
    /// Witness: a commit after a crash.
    pub const COMMITTED_AFTER_CRASH: Seen = Seen(1 << 7);
    /// Witness: a commit after a torn write.
    pub const COMMITTED_AFTER_TORN: Seen = Seen(1 << 8);
    /// Witness: a failed batch was committed cumulatively with the next one.
    pub const CUMULATIVE_COMMIT: Seen = Seen(1 << 9);
    /// Witness: an export was served.
    pub const EXPORTED: Seen = Seen(1 << 10);
    /// Witness: an in-process restart with the store behind `applied`.
    pub const RESUMED_BEHIND_APPLIED: Seen = Seen(1 << 11);
    /// Witness: an unknown-version update reached the store.
    pub const UNKNOWN_STORED: Seen = Seen(1 << 12);
    /// Witness: a parse-rejected update reached the store.
    pub const REJECTED_STORED: Seen = Seen(1 << 13);
    /// Witness: `apply` saw a write again (after a crash or a restart).
    pub const REDELIVERED: Seen = Seen(1 << 14);

    /// Sets `bits`.
    pub fn insert(&mut self, bits: Seen) {
        self.0 |= bits.0;
    }

    /// Whether every bit of `bits` is set.
    pub fn contains(self, bits: Seen) -> bool {
        self.0 & bits.0 == bits.0
    }

    /// Whether any bit of `bits` is set.
    pub fn intersects(self, bits: Seen) -> bool {
        self.0 & bits.0 != 0
    }
}

/// Budgets used so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Used {
    /// Unknown-version writes.
    pub unknown_versions: u8,
    /// Parse-rejected writes.
    pub rejected_parses: u8,
    /// Store failures.
    pub failures: u8,
    /// Crashes.
    pub crashes: u8,
    /// Shutdowns.
    pub shutdowns: u8,
    /// Exports.
    pub exports: u8,
    /// Runs ended by a clean watch end.
    pub ends: u8,
}

/// One state of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FoldState {
    /// The bucket: revision `i + 1` is `log[i]`.
    pub log: Vec<Write>,
    /// The snapshot store on disk (survives crashes).
    pub store: Store,
    /// What `apply` saw, per key (survives crashes: an external side effect).
    pub domain: Vec<Slot>,
    /// The current run of `watch_applied_owned`.
    pub run: Run,
    /// Budgets used.
    pub used: Used,
    /// The service stopped for good (the last run ended caught up).
    pub stopped: bool,
    /// History.
    pub seen: Seen,
}

/// A step of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A client writes `key`: a new revision at the end of the log.
    Write {
        /// The key.
        key: u8,
        /// How the write appears to the fold.
        kind: WriteKind,
    },
    /// The watch delivers its next revision (`Update`).
    Deliver,
    /// The window timer fires: the clock moves to the deadline (`WindowElapsed`).
    Tick,
    /// The outstanding store apply commits.
    Commit,
    /// The outstanding store apply fails (transient; the batch comes back).
    Fail,
    /// The process crashes before the store wrote anything.
    CrashBefore,
    /// The store commits, then the process crashes before the machine learns it.
    CrashAfter,
    /// The process crashes mid-write: the first `keep` updates of the batch are durable,
    /// the cursor is not (docs/snapshots.md, "The store contract (`SnapshotStore`)": data
    /// ahead of the cursor).
    Torn {
        /// Updates that reached the disk.
        keep: u8,
    },
    /// An export is requested (`ExportRequested`).
    Export,
    /// The outstanding export finishes.
    ExportDone,
    /// Shutdown is signalled; the caller restarts in-process from `WatchEnd::applied`.
    Shutdown,
    /// The watch ends cleanly with the log delivered (`WatchEnded { Clean }`).
    End,
    /// The process crashes (outside a store apply).
    Crash,
}

// ===========================================================================
// The model
// ===========================================================================

/// Property names (the tests look them up by these).
pub mod names {
    /// Row 2: the store never holds a cursor over a missing update.
    pub const STORE_COMPLETE: &str = "store contents complete up to the store cursor";
    /// The store's cursor is monotone.
    pub const STORE_CURSOR_MONOTONE: &str = "the store cursor never moves backward";
    /// Within one run, `apply` sees revisions in increasing order.
    pub const DOMAIN_MONOTONE: &str = "the domain never sees a revision go backward within one run";
    /// Row 1: cursor-after-apply.
    pub const CURSOR_AFTER_APPLY: &str =
        "a stored or announced cursor never covers an unapplied update";
    /// Exports hand out a complete fold.
    pub const ARTIFACT_COMPLETE: &str = "every exported artifact is complete up to its cursor";
    /// Store applies in flight: a cursor is announced only once the store apply
    /// carrying it completed.
    pub const ANNOUNCED_AFTER_COMMIT: &str =
        "on_applied never announces a cursor whose store apply is still in flight";
    /// Witness.
    pub const RECEIVED_IN_FLIGHT: &str = "an update is received while a store apply is in flight";
    /// The executor contract (docs/architecture.md, "Kernels and machines").
    pub const DRIVE_LOOP: &str = "the machine keeps the drive-loop contract";
    /// Every maximal run converges.
    pub const CONVERGES: &str = "at quiescence store = domain = bucket";
    /// Witness.
    pub const CUMULATIVE_COMMIT: &str = "a failure is followed by a cumulative commit";
    /// Witness.
    pub const CRASH_RESUME: &str = "a crash is followed by a resume that commits";
    /// Witness.
    pub const TORN_REFOLDED: &str = "a torn write is followed by a commit";
    /// Witness.
    pub const EXPORTED: &str = "an export is served";
    /// Witness.
    pub const RESUMED_BEHIND: &str = "an in-process restart resumes with the store behind applied";
    /// Witness.
    pub const UNKNOWN_STORED: &str = "an unknown-version update reaches the store";
    /// Witness.
    pub const REJECTED_STORED: &str = "a parse-rejected update reaches the store";
    /// Witness.
    pub const REDELIVERED: &str = "the domain sees a write again after a restart";
}

impl FoldModel {
    /// The store's bucket truth: the fold of the whole log.
    fn bucket(&self, state: &FoldState) -> Vec<Slot> {
        fold_of(&state.log, state.log.len(), self.bounds.keys, |_| true)
    }

    /// Whether `state` has no successor.
    fn is_terminal(&self, state: &FoldState) -> bool {
        let mut actions = Vec::new();
        self.actions(state, &mut actions);
        actions.is_empty()
    }

    /// At the end of every maximal run: the store holds the bucket; the domain
    /// holds the bucket on every key whose latest write `parse` accepts (on the
    /// others it holds an older write or nothing). A state where an `always`
    /// property already failed ends its path and counts as converged, so a
    /// discovery of this property is never a mere echo of another one.
    fn converged(&self, state: &FoldState) -> bool {
        if state.seen.intersects(Seen::VIOLATIONS) || !state.store.complete(&state.log) {
            return true;
        }
        if !self.is_terminal(state) {
            return false;
        }
        let bucket = self.bucket(state);
        state.store.slots == bucket
            && bucket.iter().zip(&state.domain).all(|(truth, seen)| {
                let rejected = truth.rev > 0
                    && state.log[usize::from(truth.rev) - 1].kind == WriteKind::PutRejected;
                if rejected {
                    seen.rev < truth.rev
                } else {
                    seen == truth
                }
            })
    }
}

impl Model for FoldModel {
    type State = FoldState;
    type Action = Action;

    fn init_states(&self) -> Vec<Self::State> {
        let store = Store::new(self.bounds.keys);
        let run = Run::start(self, &[], &store, store.cursor.clone());
        vec![FoldState {
            log: Vec::new(),
            domain: vec![Slot::default(); usize::from(self.bounds.keys)],
            store,
            run,
            used: Used::default(),
            stopped: false,
            seen: Seen::default(),
        }]
    }

    fn actions(&self, state: &Self::State, actions: &mut Vec<Self::Action>) {
        // A stopped service is final; so is a violation, which keeps each
        // counterexample the shortest path to it.
        if state.stopped
            || state.seen.intersects(Seen::VIOLATIONS)
            || !state.store.complete(&state.log)
        {
            return;
        }
        let b = &self.bounds;
        let used = &state.used;
        if state.log.len() < usize::from(b.writes) {
            for key in 0..b.keys {
                actions.push(Action::Write {
                    key,
                    kind: WriteKind::Put,
                });
                actions.push(Action::Write {
                    key,
                    kind: WriteKind::Delete,
                });
                if used.unknown_versions < b.unknown_versions {
                    actions.push(Action::Write {
                        key,
                        kind: WriteKind::PutUnknownVersion,
                    });
                }
                if used.rejected_parses < b.rejected_parses {
                    actions.push(Action::Write {
                        key,
                        kind: WriteKind::PutRejected,
                    });
                }
            }
        }
        let crash_left = used.crashes < b.crashes;
        let run = &state.run;
        match &run.job {
            Some(Job::Store { raw, .. }) => {
                actions.push(Action::Commit);
                if used.failures < b.failures {
                    actions.push(Action::Fail);
                }
                if crash_left {
                    actions.push(Action::CrashBefore);
                    actions.push(Action::CrashAfter);
                    actions.extend((1..=raw.len() as u8).map(|keep| Action::Torn { keep }));
                }
            }
            Some(Job::Export) => {
                actions.push(Action::ExportDone);
                if crash_left {
                    actions.push(Action::Crash);
                }
            }
            None => {}
        }
        // A streaming flush leaves its store apply in flight while the machine
        // receives on (docs/protocols/fold-machine.md, "Store applies in flight").
        if run.machine.wants() == Wants::Any {
            let deliverable = run.consumer.deliverable(&state.log);
            if deliverable.is_some() {
                actions.push(Action::Deliver);
            }
            if run.machine.poll_timeout().is_some() {
                actions.push(Action::Tick);
            }
            if used.exports < b.exports {
                actions.push(Action::Export);
            }
            if used.shutdowns < b.shutdowns {
                actions.push(Action::Shutdown);
            }
            if deliverable.is_none()
                && state.log.len() == usize::from(b.writes)
                && used.ends < b.ends
            {
                actions.push(Action::End);
            }
            // With a store apply in flight, `CrashBefore` is this crash.
            if crash_left && run.job.is_none() {
                actions.push(Action::Crash);
            }
        }
    }

    fn next_state(&self, last: &Self::State, action: Self::Action) -> Option<Self::State> {
        let mut state = last.clone();
        match action {
            Action::Write { key, kind } => {
                match kind {
                    WriteKind::PutUnknownVersion => state.used.unknown_versions += 1,
                    WriteKind::PutRejected => state.used.rejected_parses += 1,
                    WriteKind::Put | WriteKind::Delete => {}
                }
                state.log.push(Write { key, kind });
            }
            Action::Deliver => {
                let rev = state.run.consumer.deliverable(&state.log)?;
                self.deliver(&mut state, rev);
            }
            Action::Tick => {
                let deadline = state.run.machine.poll_timeout()?;
                state.run.clock = state.run.clock.max(deadline.0);
                let now = Millis(state.run.clock);
                self.feed(&mut state, FoldEvent::WindowElapsed { now });
            }
            Action::Commit => {
                let Some(Job::Store { raw, cursor, .. }) = state.run.job.clone() else {
                    return None;
                };
                self.store_commit(&mut state, &raw, cursor);
                self.store_answered(&mut state, true);
            }
            Action::Fail => {
                state.used.failures += 1;
                self.store_answered(&mut state, false);
            }
            Action::CrashBefore => self.crash(&mut state),
            Action::CrashAfter => {
                let Some(Job::Store { raw, cursor, .. }) = state.run.job.clone() else {
                    return None;
                };
                self.store_commit(&mut state, &raw, cursor);
                self.crash(&mut state);
            }
            Action::Torn { keep } => {
                let Some(Job::Store { raw, .. }) = state.run.job.clone() else {
                    return None;
                };
                state.store.fold(&raw[..usize::from(keep)]);
                state.seen.insert(Seen::TORN);
                self.crash(&mut state);
            }
            Action::Export => {
                state.used.exports += 1;
                let now = Millis(state.run.clock);
                self.feed(&mut state, FoldEvent::ExportRequested { now });
            }
            Action::ExportDone => self.export_done(&mut state),
            Action::Shutdown => {
                state.used.shutdowns += 1;
                self.end(&mut state, Ending::Shutdown);
            }
            Action::End => self.end(&mut state, Ending::WatchEnd),
            Action::Crash => self.crash(&mut state),
        }
        if state.run.machine.phase() == FoldPhase::Finished && !state.stopped {
            // Every Finish is followed by a restart or a stop (perform()).
            state.seen.insert(Seen::CONTRACT_BROKEN);
        }
        Some(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        use names::*;
        let b = &self.bounds;
        let mut properties = vec![
            Property::always(STORE_COMPLETE, |_, s: &FoldState| s.store.complete(&s.log)),
            Property::always(STORE_CURSOR_MONOTONE, |_, s: &FoldState| {
                !s.seen.contains(Seen::STORE_CURSOR_BACKWARD)
            }),
            Property::always(DOMAIN_MONOTONE, |_, s: &FoldState| {
                !s.seen.contains(Seen::DOMAIN_BACKWARD)
            }),
            Property::always(CURSOR_AFTER_APPLY, |_, s: &FoldState| {
                !s.seen.contains(Seen::CURSOR_BEFORE_APPLY)
            }),
            Property::always(ARTIFACT_COMPLETE, |_, s: &FoldState| {
                !s.seen.contains(Seen::ARTIFACT_INCOMPLETE)
            }),
            Property::always(ANNOUNCED_AFTER_COMMIT, |_, s: &FoldState| {
                !s.seen.contains(Seen::ANNOUNCED_IN_FLIGHT)
            }),
            Property::always(DRIVE_LOOP, |_, s: &FoldState| {
                !s.seen.contains(Seen::CONTRACT_BROKEN)
            }),
            Property::eventually(CONVERGES, |m: &FoldModel, s| m.converged(s)),
        ];
        // Vacuity witnesses, for the paths the bounds allow.
        type Condition = fn(&FoldModel, &FoldState) -> bool;
        let witnesses: [(bool, &'static str, Condition); 9] = [
            (true, RECEIVED_IN_FLIGHT, |_, s| {
                s.seen.contains(Seen::RECEIVED_IN_FLIGHT)
            }),
            (b.failures > 0, CUMULATIVE_COMMIT, |_, s| {
                s.seen.contains(Seen::CUMULATIVE_COMMIT)
            }),
            (b.crashes > 0, CRASH_RESUME, |_, s| {
                s.seen.contains(Seen::COMMITTED_AFTER_CRASH)
            }),
            (b.crashes > 0, TORN_REFOLDED, |_, s| {
                s.seen.contains(Seen::COMMITTED_AFTER_TORN)
            }),
            (b.exports > 0, EXPORTED, |_, s| {
                s.seen.contains(Seen::EXPORTED)
            }),
            (b.failures > 0 && b.shutdowns > 0, RESUMED_BEHIND, |_, s| {
                s.seen.contains(Seen::RESUMED_BEHIND_APPLIED)
            }),
            (b.unknown_versions > 0, UNKNOWN_STORED, |_, s| {
                s.seen.contains(Seen::UNKNOWN_STORED)
            }),
            (b.rejected_parses > 0, REJECTED_STORED, |_, s| {
                s.seen.contains(Seen::REJECTED_STORED)
            }),
            (b.crashes + b.shutdowns > 0, REDELIVERED, |_, s| {
                s.seen.contains(Seen::REDELIVERED)
            }),
        ];
        for (enabled, name, condition) in witnesses {
            if enabled {
                properties.push(Property::sometimes(name, condition));
            }
        }
        properties
    }
}
