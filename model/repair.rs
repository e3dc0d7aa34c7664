//! The `repair` model (docs/verification.md, "Stateright models"; docs/protocols/repair.md): the
//! production [`FoldMachine`](kvfold::protocol::fold::FoldMachine) and
//! [`RepairMachine`](kvfold::protocol::repair::RepairMachine), each driven the way its
//! executor drives it (the fold loop of `watch_applied` with its repair slot, and the
//! watch task), against a bucket that removes messages (superseded ones, purged delete
//! markers and, while it evicts, current values), an operator who turns eviction off, a
//! fleet that publishes artifacts, a snapshot store that can fail, crash before or after
//! a commit or tear a write, and process crashes. The machines' logic is never
//! re-implemented here; the per-key restore rule is the production kernel
//! `protocol::restore_key`. Mutations are model-side wrappers that alter one executor
//! decision (docs/verification.md, "Mutations").
//!
//! Shared by the `model` test target (`mod repair;`).

use std::fmt;

use kvfold::protocol::RepairMode;
use kvfold::protocol::fold::{FoldPhase, Wants};
use stateright::{Model, Property};

#[path = "repair/env.rs"]
mod env;
#[path = "repair/executor.rs"]
mod executor;
#[cfg(test)]
#[path = "repair/tests.rs"]
mod tests;

pub use env::{Artifact, Bucket, Slot, Store, Trim, WatchStep};
pub use executor::{Job, Request, Run};

// ===========================================================================
// Configuration: bounds, mutation
// ===========================================================================

/// Every limit of one run of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bounds {
    /// The configured repair (`ExpiryRepair`'s mode; a store is always attached).
    pub mode: RepairMode,
    /// Distinct keys written.
    pub keys: u8,
    /// Writes to the bucket over the whole run.
    pub writes: u8,
    /// `BatchConfig::max` (and the repairs' chunk size).
    pub max: usize,
    /// Transient store apply failures.
    pub failures: u8,
    /// Process crashes (plain, or a store apply that crashes before, after or in the
    /// middle of its write).
    pub crashes: u8,
    /// Artifacts published by the fleet.
    pub publishes: u8,
    /// Retention polls that fire (each moves the watch task's clock 60 s on).
    pub polls: u8,
    /// Runs restarted after they ended with an error (the service's restart loop).
    pub restarts: u8,
    /// The bucket starts out evicting current values.
    pub evicting: bool,
    /// The operator may turn eviction off.
    pub eviction_off: bool,
    /// The update channel's capacity.
    pub channel: usize,
    /// The run starts with key 0 written once and folded (store and domain at cursor 1);
    /// `writes` counts that write.
    pub seeded: bool,
    /// The service starts at any point of the run (`Boot`) instead of before the
    /// first write: a cursor-less start on a bucket that may have evicted, and a
    /// repair before any crash.
    pub late_start: bool,
}

impl Bounds {
    /// Auto repair on an evicting bucket whose operator may turn eviction off: the
    /// restore, the memo and, after eviction is off, the relist (seconds).
    pub const AUTO: Bounds = Bounds {
        mode: RepairMode::Auto,
        keys: 2,
        writes: 3,
        max: 1,
        failures: 0,
        crashes: 1,
        publishes: 1,
        polls: 0,
        restarts: 1,
        evicting: true,
        eviction_off: true,
        channel: 1,
        seeded: false,
        late_start: true,
    };

    /// Relist repair on a bucket that never evicts current values (superseded messages
    /// and delete markers still go), with a failing store.
    pub const RELIST: Bounds = Bounds {
        mode: RepairMode::Relist,
        keys: 2,
        writes: 3,
        max: 1,
        failures: 1,
        crashes: 1,
        publishes: 1,
        polls: 0,
        restarts: 1,
        evicting: false,
        eviction_off: false,
        channel: 1,
        seeded: false,
        late_start: true,
    };

    /// The ack-barrier scenario: one key, deleted during the gap and re-created before
    /// or after the listing, relist repair, no faults.
    pub const ACK_BARRIER: Bounds = Bounds {
        mode: RepairMode::Relist,
        keys: 2,
        writes: 4,
        max: 1,
        failures: 0,
        crashes: 1,
        publishes: 1,
        polls: 0,
        restarts: 1,
        evicting: false,
        eviction_off: false,
        channel: 1,
        seeded: true,
        late_start: false,
    };

    /// Auto with two artifacts over two writes in batches of two: a restore whose
    /// artifact is superseded, and evicted past, while the fold lists; a torn batch
    /// leaves data ahead of the cursor (seconds).
    pub const AUTO_TWO_ARTIFACTS: Bounds = Bounds {
        writes: 2,
        max: 2,
        publishes: 2,
        ..Bounds::AUTO
    };

    /// Auto over two writes with a retention poll while the watch runs: the memo is
    /// observed mid-watch, eviction is turned off, the node restarts (seconds).
    pub const AUTO_POLLED: Bounds = Bounds {
        writes: 2,
        polls: 1,
        ..Bounds::AUTO
    };

    /// The `#[ignore]`d deep Auto run: batches of two, a retention poll, two restarts.
    pub const DEEP_AUTO: Bounds = Bounds {
        max: 2,
        polls: 1,
        restarts: 2,
        ..Bounds::AUTO
    };

    /// The `#[ignore]`d deep Auto run with three writes and two artifacts.
    pub const DEEP_AUTO_ARTIFACTS: Bounds = Bounds {
        publishes: 2,
        restarts: 2,
        ..Bounds::AUTO
    };

    /// The `#[ignore]`d deep relist run: four writes, batches of two.
    pub const DEEP_RELIST: Bounds = Bounds {
        writes: 4,
        max: 2,
        ..Bounds::RELIST
    };
}

/// A deliberately broken executor decision (docs/verification.md, "Mutations"), injected
/// model-side without touching the production machines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mutation {
    /// The machines and the executors as specified.
    None,
    /// "No drain": the fold executor answers `Wants::Backlog` with `BacklogDrained` at
    /// once, leaving the update channel's backlog to be folded after the repair.
    NoDrain,
    /// "No pre-repair settle": the repair diffs read the store as it was when the backlog
    /// was drained, before the settle flush made a re-queued batch durable.
    NoSettle,
    /// "Cursor moved before the diff": the restore's target cursor is made durable when
    /// the diff starts instead of in the final commit.
    CursorBeforeDiff,
    /// "Relist on an evicting bucket": the planning retention read is reported to the
    /// repair machine as not evicting.
    RelistOnEvicting,
    /// "Unanchored relist": a store with data but no cursor starts as if it were empty
    /// (`RepairStart::unanchored = false`), so the re-list runs without a repair first.
    UnanchoredRelist,
    /// "Restore ignoring versions": the restore diff hands `restore_key` unknown versions.
    RestoreIgnoringVersions,
    /// "Restore ignoring the listing": `FilterListedLive` removes nothing.
    RestoreIgnoringListing,
    /// "No retention re-check after listing": the fold's `ReadRetention` answers unknown.
    NoRetentionRecheck,
    /// "No eviction memo": the `Evicting` hand-off is reported delivered but never sent,
    /// so the memo is never made durable.
    NoEvictionMemo,
    /// "No ack barrier": the watch task feeds `RelistAcked` as soon as the relist is
    /// handed over, so the re-list starts while the fold still repairs.
    NoAckBarrier,
}

impl Mutation {
    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Mutation::None => "none",
            Mutation::NoDrain => "no-drain",
            Mutation::NoSettle => "no-settle",
            Mutation::CursorBeforeDiff => "cursor-before-diff",
            Mutation::RelistOnEvicting => "relist-on-evicting",
            Mutation::UnanchoredRelist => "unanchored-relist",
            Mutation::RestoreIgnoringVersions => "restore-ignoring-versions",
            Mutation::RestoreIgnoringListing => "restore-ignoring-listing",
            Mutation::NoRetentionRecheck => "no-retention-recheck",
            Mutation::NoEvictionMemo => "no-eviction-memo",
            Mutation::NoAckBarrier => "no-ack-barrier",
        }
    }
}

/// The model: bounds and the executors' decisions (as specified, or one broken).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepairModel {
    /// The run's limits.
    pub bounds: Bounds,
    /// The decision altered, if any.
    pub mutation: Mutation,
}

impl RepairModel {
    /// The production machines under the specified executors.
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

impl fmt::Display for RepairModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "repair model, {:?}, mutation {}",
            self.bounds.mode,
            self.mutation.name()
        )
    }
}

// ===========================================================================
// State and actions
// ===========================================================================

/// History the properties judge, as sticky bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Seen(u32);

impl Seen {
    /// A commit moved the store's cursor to a lower revision.
    pub const STORE_CURSOR_BACKWARD: Seen = Seen(1);
    /// Within one run, `apply` saw a key at a revision below one it saw for it.
    pub const DOMAIN_BACKWARD: Seen = Seen(1 << 1);
    /// A restore put would move a key below the revision the store holds.
    pub const KEY_REGRESSED: Seen = Seen(1 << 2);
    /// A repair deleted a key that was live in the truth when the bucket was listed.
    pub const CURRENT_DELETED: Seen = Seen(1 << 3);
    /// A machine rejected an event the executor fed.
    pub const CONTRACT_BROKEN: Seen = Seen(1 << 4);
    /// Every bit an `always` property forbids.
    pub const VIOLATIONS: Seen = Seen((1 << 5) - 1);
    /// Witness: a relist deleted a stale key.
    pub const RELISTED: Seen = Seen(1 << 5);
    /// Witness: a restore committed.
    pub const RESTORED: Seen = Seen(1 << 6);
    /// Witness: the eviction memo reached the store.
    pub const MEMO_DURABLE: Seen = Seen(1 << 7);
    /// Witness: the operator turned eviction off.
    pub const EVICTION_OFF: Seen = Seen(1 << 8);
    /// Witness: a process crashed while a repair was under way.
    pub const CRASHED_IN_REPAIR: Seen = Seen(1 << 9);
    /// Witness: a resumed watch expired after the fold applied past its cursor.
    pub const EXPIRED_MID_WATCH: Seen = Seen(1 << 10);
    /// Witness: a current value aged out.
    pub const AGED_OUT: Seen = Seen(1 << 11);
    /// Witness: a run ended with an error and was restarted.
    pub const RESTARTED: Seen = Seen(1 << 12);
    /// Witness: a store apply failed.
    pub const FAILED: Seen = Seen(1 << 13);
    /// Environment bookkeeping: the node says its eviction memo is durable (the store
    /// committed it; the `NoEvictionMemo` mutant says so when it drops the hand-off).
    /// The operator turns eviction off only after that: eviction that starts, drops a
    /// value and stops between two retention reads is the memo's blind spot
    /// (docs/decisions.md 110).
    pub const MEMO_CLAIMED: Seen = Seen(1 << 14);

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
    /// Store failures.
    pub failures: u8,
    /// Crashes.
    pub crashes: u8,
    /// Artifacts published.
    pub publishes: u8,
    /// Retention polls fired.
    pub polls: u8,
    /// Runs restarted after an error.
    pub restarts: u8,
}

/// One state of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RepairState {
    /// The bucket (and the fleet's newest artifact).
    pub bucket: Bucket,
    /// The snapshot store on disk (survives crashes).
    pub store: Store,
    /// What `apply` saw, per key (survives crashes: an external side effect).
    pub domain: Vec<Slot>,
    /// The current run of `watch_applied`; `None` once the service gave up.
    pub run: Option<Run>,
    /// Budgets used.
    pub used: Used,
    /// The service has started.
    pub booted: bool,
    /// History.
    pub seen: Seen,
}

/// A step of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A client writes `key` (a put, or a delete when `live` is false).
    Write {
        /// The key.
        key: u8,
        /// A put.
        live: bool,
    },
    /// The bucket removes the message at its floor.
    Trim,
    /// The operator turns eviction off.
    EvictionOff,
    /// The fleet publishes an artifact of the truth at the head.
    Publish,
    /// The active watch delivers its next revision into the update channel, or finds its
    /// cursor expired.
    Deliver,
    /// The watch task's retention poll fires.
    PollDue,
    /// The fold loop takes the next update from the channel.
    Receive,
    /// The fold loop finds the channel empty while it drains.
    Drained,
    /// The window timer fires.
    Tick,
    /// The fold loop takes the repair hand-off.
    TakeRepair,
    /// The fold loop takes the watch task's expiry report.
    TakeExpiry,
    /// The update channel closed: the watch task ended.
    TaskEnded,
    /// The outstanding store apply commits.
    Commit,
    /// The outstanding store apply fails (transient).
    Fail,
    /// The process crashes before the store wrote anything.
    CrashBefore,
    /// The store commits, then the process crashes.
    CrashAfter,
    /// The process crashes mid-write: the first `keep` updates are durable, the cursor
    /// is not.
    Torn {
        /// Updates that reached the disk.
        keep: u8,
    },
    /// The outstanding repair I/O (listing, retention read) completes.
    Io,
    /// The process crashes (outside a store apply).
    Crash,
    /// The service starts.
    Boot,
    /// Quiescence (every write delivered, nothing outstanding): the service shuts the
    /// run down (`Shutdown`) and stops once its final flush committed.
    Shutdown,
}

// ===========================================================================
// The model
// ===========================================================================

/// Property names (the tests look them up by these).
pub mod names {
    /// While the store cursor is resumable, store + tail = truth.
    pub const STORE_COMPLETE: &str = "while the store cursor is resumable, store + tail = truth";
    /// The store's cursor is monotone.
    pub const STORE_CURSOR_MONOTONE: &str = "the store cursor never moves backward";
    /// Within one run, `apply` never sees a key's revision go backward.
    pub const DOMAIN_MONOTONE: &str = "the domain never sees a revision go backward";
    /// A repair never moves a key to an older revision.
    pub const NO_REGRESS: &str = "a repair never moves a key to an older revision";
    /// A repair never deletes a current value.
    pub const NO_CURRENT_DELETED: &str = "a repair never deletes a current value";
    /// The executors keep both machines' drive-loop contracts.
    pub const DRIVE_LOOP: &str = "the machines keep their drive-loop contracts";
    /// Every maximal run converges.
    pub const CONVERGES: &str = "every maximal run ends with store = domain = truth";
    /// Witness.
    pub const RELISTED: &str = "a relist deletes a stale key";
    /// Witness.
    pub const RESTORED: &str = "a restore commits";
    /// Witness.
    pub const MEMO_DURABLE: &str = "the eviction memo reaches the store";
    /// Witness.
    pub const EVICTION_OFF: &str = "eviction is turned off after a value aged out";
    /// Witness.
    pub const CRASHED_IN_REPAIR: &str = "a process crashes during a repair";
    /// Witness.
    pub const EXPIRED_MID_WATCH: &str = "a watch expires after the fold applied past its cursor";
    /// Witness.
    pub const RESTARTED: &str = "a run ends with an error and is restarted";
}

impl RepairModel {
    /// Whether `state` has no successor.
    fn is_terminal(&self, state: &RepairState) -> bool {
        let mut actions = Vec::new();
        self.actions(state, &mut actions);
        actions.is_empty()
    }

    /// The store holds every key's current value.
    fn store_converged(&self, state: &RepairState) -> bool {
        let truth = state.bucket.truth(self.bounds.keys);
        state
            .store
            .slots
            .iter()
            .zip(&truth)
            .all(|(s, t)| s.same(*t))
            && state.domain.iter().zip(&truth).all(|(d, t)| d.same(*t))
    }

    /// At the end of every maximal run: store = domain = truth. A state where an
    /// `always` property already failed ends its path and counts as converged, so a
    /// discovery of this property is never a mere echo of another one.
    fn converged(&self, state: &RepairState) -> bool {
        if self.violated(state) {
            return true;
        }
        self.is_terminal(state) && self.store_converged(state)
    }

    /// An `always` property failed.
    fn violated(&self, state: &RepairState) -> bool {
        state.seen.intersects(Seen::VIOLATIONS)
            || (state.store.resumable(&state.bucket) && !state.store.complete(&state.bucket))
    }

    /// A relist is between its planning retention read and the fold's ack. That read
    /// vouches for the listing, and the listing for the re-list: the model lets no
    /// current value age out and no current delete marker be purged meanwhile (the
    /// relist takes seconds, an age limit or a marker's life hours; docs/decisions.md
    /// 110).
    fn relisting(&self, state: &RepairState) -> bool {
        state.run.as_ref().is_some_and(|run| {
            run.task.machine.phase() == kvfold::protocol::repair::RepairPhase::AwaitingAck
                || run.request == Some(Request::Relist)
                || run.slot.relisting
        })
    }

    /// A full (state-sync) watch is active and has not delivered past the floor: the
    /// bucket removing its floor message now would lose it unseen (an unguarded watch
    /// relies on retention far above its lag; docs/decisions.md 110).
    fn full_watch_behind(&self, state: &RepairState) -> bool {
        state.run.as_ref().is_some_and(|run| {
            run.task
                .watch
                .as_ref()
                .is_some_and(|w| w.from.is_none() && w.next <= state.bucket.floor)
        })
    }
}

impl Model for RepairModel {
    type State = RepairState;
    type Action = Action;

    fn init_states(&self) -> Vec<Self::State> {
        let mut bucket = Bucket {
            log: Vec::new(),
            floor: 1,
            evicting: self.bounds.evicting,
            artifact: None,
        };
        let mut store = Store::new(self.bounds.keys);
        if self.bounds.seeded {
            bucket.log.push(env::Write { key: 0, live: true });
            store.slots = bucket.truth(self.bounds.keys);
            store.cursor = env::cursor_at(1);
        }
        let mut state = RepairState {
            bucket,
            domain: store.slots.clone(),
            store,
            run: None,
            used: Used::default(),
            booted: !self.bounds.late_start,
            seen: Seen::default(),
        };
        if state.booted {
            self.start_run(&mut state);
        }
        vec![state]
    }

    fn actions(&self, state: &Self::State, actions: &mut Vec<Self::Action>) {
        // A violation is final, which keeps each counterexample the shortest path to it.
        if self.violated(state) {
            return;
        }
        let b = &self.bounds;
        let used = &state.used;
        let bucket = &state.bucket;
        // The environment.
        if bucket.log.len() < usize::from(b.writes) {
            for key in 0..b.keys {
                actions.push(Action::Write { key, live: true });
                actions.push(Action::Write { key, live: false });
            }
        }
        let trim = bucket.trimmable();
        if trim.is_some()
            && !self.full_watch_behind(state)
            && !(trim != Some(Trim::Superseded) && self.relisting(state))
        {
            actions.push(Action::Trim);
        }
        if b.eviction_off
            && bucket.evicting
            && (!state.seen.contains(Seen::AGED_OUT) || state.seen.contains(Seen::MEMO_CLAIMED))
        {
            actions.push(Action::EvictionOff);
        }
        if used.publishes < b.publishes
            && bucket.head() > bucket.artifact.as_ref().map_or(0, |a| a.rank)
        {
            actions.push(Action::Publish);
        }
        if !state.booted {
            actions.push(Action::Boot);
        }
        let Some(run) = &state.run else {
            return;
        };
        let crash_left = used.crashes < b.crashes;
        // The watch task.
        let task = &run.task;
        if task.watching()
            && let Some(watch) = &task.watch
        {
            match watch.step(bucket) {
                Some(WatchStep::Expire) => actions.push(Action::Deliver),
                Some(WatchStep::Deliver(_)) if run.updates.len() < b.channel => {
                    actions.push(Action::Deliver)
                }
                _ => {}
            }
            if task.machine.poll_timeout().is_some() && used.polls < b.polls {
                actions.push(Action::PollDue);
            }
        }
        // The fold loop.
        let wants = run.fold.wants();
        let backlog = wants == Wants::Backlog;
        if !run.updates.is_empty()
            && (wants == Wants::Any || backlog && self.mutation != Mutation::NoDrain)
        {
            actions.push(Action::Receive);
        }
        if backlog && (run.updates.is_empty() || self.mutation == Mutation::NoDrain) {
            actions.push(Action::Drained);
        }
        if wants == Wants::Any {
            if run.fold.poll_timeout().is_some() {
                actions.push(Action::Tick);
            }
            if run.request.is_some() {
                actions.push(Action::TakeRepair);
            }
            if run.expiry.is_some() {
                actions.push(Action::TakeExpiry);
            }
            if task.ended.is_some() && run.updates.is_empty() {
                actions.push(Action::TaskEnded);
            }
            let quiet = run.job.is_none()
                && run.updates.is_empty()
                && run.request.is_none()
                && run.expiry.is_none()
                && task.watching()
                && task
                    .watch
                    .as_ref()
                    .is_some_and(|w| w.step(bucket).is_none());
            if quiet && bucket.log.len() == usize::from(b.writes) {
                actions.push(Action::Shutdown);
            }
        }
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
            Some(Job::Io(_)) => {
                actions.push(Action::Io);
                if crash_left {
                    actions.push(Action::Crash);
                }
            }
            None => {
                if crash_left {
                    actions.push(Action::Crash);
                }
            }
        }
    }

    fn next_state(&self, last: &Self::State, action: Self::Action) -> Option<Self::State> {
        let mut state = last.clone();
        match action {
            Action::Write { key, live } => state.bucket.log.push(env::Write { key, live }),
            Action::Trim => {
                if state.bucket.trimmable()? == Trim::Value {
                    state.seen.insert(Seen::AGED_OUT);
                }
                state.bucket.floor += 1;
            }
            Action::EvictionOff => {
                state.bucket.evicting = false;
                if state.seen.contains(Seen::AGED_OUT) {
                    state.seen.insert(Seen::EVICTION_OFF);
                }
            }
            Action::Publish => {
                state.used.publishes += 1;
                let bucket = &state.bucket;
                state.bucket.artifact = Some(Artifact {
                    rank: bucket.head(),
                    memo: kvfold::protocol::repair::eviction_observed(bucket.retention()),
                    slots: bucket.truth(self.bounds.keys),
                });
            }
            Action::Deliver => self.deliver(&mut state),
            Action::PollDue => {
                state.used.polls += 1;
                self.poll_due(&mut state);
            }
            Action::Receive => self.receive(&mut state),
            Action::Drained => self.drained(&mut state),
            Action::Tick => self.tick(&mut state),
            Action::TakeRepair => self.take_repair(&mut state),
            Action::TakeExpiry => self.take_expiry(&mut state),
            Action::TaskEnded => self.task_ended(&mut state),
            Action::Commit => {
                let Some(Job::Store { raw, cursor }) = state.run.as_ref()?.job.clone() else {
                    return None;
                };
                self.store_commit(&mut state, &raw, cursor);
                self.store_answered(&mut state, true);
            }
            Action::Fail => {
                state.used.failures += 1;
                state.seen.insert(Seen::FAILED);
                self.store_answered(&mut state, false);
            }
            Action::CrashBefore => self.crash(&mut state),
            Action::CrashAfter => {
                let Some(Job::Store { raw, cursor }) = state.run.as_ref()?.job.clone() else {
                    return None;
                };
                self.store_commit(&mut state, &raw, cursor);
                self.crash(&mut state);
            }
            Action::Torn { keep } => {
                let Some(Job::Store { raw, .. }) = state.run.as_ref()?.job.clone() else {
                    return None;
                };
                state.store.fold(&raw[..usize::from(keep)]);
                self.crash(&mut state);
            }
            Action::Io => self.io(&mut state),
            Action::Crash => self.crash(&mut state),
            Action::Shutdown => self.shutdown(&mut state),
            Action::Boot => {
                state.booted = true;
                self.start_run(&mut state);
            }
        }
        if state
            .run
            .as_ref()
            .is_some_and(|run| run.fold.phase() == FoldPhase::Finished)
        {
            // Every Finish is followed by a restart or a stop.
            state.seen.insert(Seen::CONTRACT_BROKEN);
        }
        Some(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        use names::*;
        let b = &self.bounds;
        let mut properties = vec![
            Property::always(STORE_COMPLETE, |_, s: &RepairState| {
                !s.store.resumable(&s.bucket) || s.store.complete(&s.bucket)
            }),
            Property::always(STORE_CURSOR_MONOTONE, |_, s: &RepairState| {
                !s.seen.contains(Seen::STORE_CURSOR_BACKWARD)
            }),
            Property::always(DOMAIN_MONOTONE, |_, s: &RepairState| {
                !s.seen.contains(Seen::DOMAIN_BACKWARD)
            }),
            Property::always(NO_REGRESS, |_, s: &RepairState| {
                !s.seen.contains(Seen::KEY_REGRESSED)
            }),
            Property::always(NO_CURRENT_DELETED, |_, s: &RepairState| {
                !s.seen.contains(Seen::CURRENT_DELETED)
            }),
            Property::always(DRIVE_LOOP, |_, s: &RepairState| {
                !s.seen.contains(Seen::CONTRACT_BROKEN)
            }),
            Property::eventually(CONVERGES, |m: &RepairModel, s| m.converged(s)),
        ];
        type Condition = fn(&RepairModel, &RepairState) -> bool;
        let restores = matches!(b.mode, RepairMode::Restore | RepairMode::Auto);
        let relists = matches!(b.mode, RepairMode::Relist | RepairMode::Auto)
            && (!b.evicting || b.eviction_off);
        let witnesses: [(bool, &'static str, Condition); 7] = [
            (relists, RELISTED, |_, s| s.seen.contains(Seen::RELISTED)),
            (restores, RESTORED, |_, s| s.seen.contains(Seen::RESTORED)),
            (b.evicting && b.polls > 0, MEMO_DURABLE, |_, s| {
                s.seen.contains(Seen::MEMO_DURABLE)
            }),
            (b.eviction_off, EVICTION_OFF, |_, s| {
                s.seen.contains(Seen::EVICTION_OFF)
            }),
            (
                b.crashes > 0 && (b.late_start && restores || b.seeded),
                CRASHED_IN_REPAIR,
                |_, s| s.seen.contains(Seen::CRASHED_IN_REPAIR),
            ),
            (b.writes >= 3, EXPIRED_MID_WATCH, |_, s| {
                s.seen.contains(Seen::EXPIRED_MID_WATCH)
            }),
            (
                b.restarts > 0 && b.publishes > 1 && restores,
                RESTARTED,
                |_, s| s.seen.contains(Seen::RESTARTED),
            ),
        ];
        for (enabled, name, condition) in witnesses {
            if enabled {
                properties.push(Property::sometimes(name, condition));
            }
        }
        properties
    }
}
