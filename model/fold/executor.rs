//! The `fold` model's executor: the drive loop of docs/watch-applied.md, "The drive loop"
//! over the production `FoldMachine` (every command performed in order, a command with a
//! completion left outstanding until the environment answers), restarts (a crash rebuilds
//! the machine from the store's cursor; an in-process restart resumes from
//! `WatchEnd::applied`), and the mutation wrappers, which alter one executor-side decision
//! and never the machine.

use kvfold::protocol::fold::{
    FoldCommand, FoldConfig, FoldEvent, FoldMachine, StoreOutcome, TaskEnd, TaskOutcome,
};
use kvfold::protocol::time::Millis;
use kvfold::{KvUpdate, WatchCursor};

use super::env::{Consumer, Item, Slot, Store, WriteKind, fold_of, revision_of, update_event};
use super::{FoldModel, FoldState, Mutation, Seen};

/// The window the model's machines use, in ms (the clock moves only by `Tick`).
pub const WINDOW_MS: u64 = 1;

/// A command whose completion the environment has not given yet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Job {
    /// `StoreApply`: the blocking store task runs with this batch and cursor.
    Store {
        /// The raw batch.
        raw: Vec<KvUpdate>,
        /// The cursor to make durable with it.
        cursor: WatchCursor,
        /// The `CommitBeforeDurable` mutant already reported it committed: its
        /// outcome never reaches the machine.
        reported: bool,
    },
    /// `RunExport`: the export task runs.
    Export,
}

/// How the current run was asked to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ending {
    /// `Shutdown`.
    Shutdown,
    /// `WatchEnded { Clean }` (the log was delivered to its end).
    WatchEnd,
}

/// One run of `watch_applied_owned`: the production machine and the executor's
/// own bookkeeping. A crash or a restart replaces it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Run {
    /// The production machine.
    pub machine: FoldMachine<Item>,
    /// The watch consumer feeding it.
    pub consumer: Consumer,
    /// Milliseconds since the run's loop started (docs/watch-applied.md, "The drive loop"
    /// step 4).
    pub clock: u64,
    /// Parsed revisions fed to the machine whose `Apply` has not run yet.
    pub pending: Vec<u8>,
    /// Highest revision `apply` saw in this run (0 = none).
    pub high: u8,
    /// The outstanding completion.
    pub job: Option<Job>,
    /// How this run was asked to end.
    pub ending: Option<Ending>,
    /// A failed batch is waiting to be retried (witness bookkeeping).
    pub requeued: bool,
}

impl Run {
    /// A run over `store` resuming from `resume` (the caller's cursor).
    pub fn start(
        model: &FoldModel,
        log: &[super::env::Write],
        store: &Store,
        resume: WatchCursor,
    ) -> Self {
        let config = FoldConfig {
            window_ms: WINDOW_MS,
            max: model.bounds.max,
            has_store: true,
            repair_armed: false,
            resume: resume.clone(),
            store_cursor: Some(store.cursor.clone()),
        };
        let mut machine = FoldMachine::new(config);
        while machine.poll_notice().is_some() {}
        Run {
            machine,
            consumer: Consumer::start(&resume, log),
            clock: 0,
            pending: Vec::new(),
            high: 0,
            job: None,
            ending: None,
            requeued: false,
        }
    }
}

impl FoldModel {
    /// Feeds one event and performs what it queued. A rejected event breaks the
    /// drive-loop contract (the executor only feeds what `wants()` asks for).
    pub(super) fn feed(&self, state: &mut FoldState, event: FoldEvent<Item>) {
        if state.run.machine.handle(event).is_err() {
            state.seen.insert(Seen::CONTRACT_BROKEN);
            return;
        }
        self.perform(state);
    }

    /// The executor's queue drain: the machine's commands in order, or, for the
    /// "cursor before apply" mutant, each `Apply` moved behind the cursor command
    /// (`StoreApply` / `OnApplied`) that follows it.
    fn drain(&self, machine: &mut FoldMachine<Item>) -> Vec<FoldCommand<Item>> {
        let mut commands = Vec::new();
        let mut held = None;
        while let Some(command) = machine.poll_command() {
            match command {
                FoldCommand::Apply(_)
                    if self.mutation == Mutation::CursorBeforeApply && held.is_none() =>
                {
                    held = Some(command);
                }
                cursor @ (FoldCommand::StoreApply { .. } | FoldCommand::OnApplied(_)) => {
                    commands.push(cursor);
                    commands.extend(held.take());
                }
                command => commands.push(command),
            }
        }
        commands.extend(held);
        commands
    }

    /// Performs every queued command (docs/watch-applied.md, "Performing commands"), then
    /// handles a `Finish`.
    fn perform(&self, state: &mut FoldState) {
        let commands = self.drain(&mut state.run.machine);
        while state.run.machine.poll_notice().is_some() {}
        let mut finished = None;
        let mut started_store = false;
        for command in commands {
            // While a store apply is in flight only timers may be queued (the machine
            // receives on); nothing may follow an export awaiting its completion, or
            // Finish.
            let awaited = match &state.run.job {
                Some(Job::Store { reported, .. }) => {
                    !*reported && !matches!(command, FoldCommand::SetTimer(_))
                }
                Some(Job::Export) => true,
                None => false,
            };
            if awaited && self.mutation != Mutation::CursorBeforeApply || finished.is_some() {
                state.seen.insert(Seen::CONTRACT_BROKEN);
                return;
            }
            match command {
                FoldCommand::SetTimer(_) | FoldCommand::ReplyExport(_) => {}
                FoldCommand::Apply(items) => apply(state, &items),
                FoldCommand::StoreApply { raw, cursor } => {
                    check_cursor(state, &cursor);
                    let reported = self.mutation == Mutation::CommitBeforeDurable;
                    state.run.job = Some(Job::Store {
                        raw,
                        cursor,
                        reported,
                    });
                    started_store = true;
                }
                FoldCommand::OnApplied(cursor) => {
                    check_cursor(state, &cursor);
                    if let Some(Job::Store {
                        cursor: writing, ..
                    }) = &state.run.job
                        && cursor.rank() <= writing.rank()
                    {
                        state.seen.insert(Seen::ANNOUNCED_IN_FLIGHT);
                    }
                }
                FoldCommand::RunExport => state.run.job = Some(Job::Export),
                FoldCommand::Finish(result) => finished = Some(result),
                _ => {
                    // Repair commands: repair is not armed in this model.
                    state.seen.insert(Seen::CONTRACT_BROKEN);
                    return;
                }
            }
        }
        if let Some(result) = finished {
            self.restart_in_process(state, result.is_ok());
        } else if started_store && self.mutation == Mutation::CommitBeforeDurable {
            // The mutant reports the store apply committed while it still runs.
            let now = Millis(state.run.clock);
            let outcome = StoreOutcome::Committed;
            self.feed(state, FoldEvent::StoreApplied { now, outcome });
        }
    }

    /// The run ended: the caller restarts it in-process with the same store and
    /// `resume = WatchEnd::applied` (the machine's `resume_cursor()`). The model
    /// stops the service once a watch ended cleanly with the store holding the
    /// whole bucket (or when it has no clean ends left): an environment bound,
    /// not a decision of the system under test.
    fn restart_in_process(&self, state: &mut FoldState, ok: bool) {
        let machine = &state.run.machine;
        let resume = match self.mutation {
            Mutation::ResumeFromApplied => machine.applied().clone(),
            _ => machine.resume_cursor().clone(),
        };
        if machine.committed() != machine.applied() {
            state.seen.insert(Seen::RESUMED_BEHIND_APPLIED);
        }
        let bucket = fold_of(&state.log, state.log.len(), self.bounds.keys, |_| true);
        let caught_up = state.store.slots == bucket;
        let ended = ok && state.run.ending == Some(Ending::WatchEnd);
        if ended {
            // Counted when the run ends, so a crash during its flush costs none.
            state.used.ends += 1;
        }
        if ended && (caught_up || state.used.ends >= self.bounds.ends) {
            state.stopped = true;
            return;
        }
        state.run = Run::start(self, &state.log, &state.store, resume);
    }

    /// A process crash: memory is lost, the store and the domain keep what they
    /// hold; the next process loads the store and resumes from its cursor.
    pub(super) fn crash(&self, state: &mut FoldState) {
        state.used.crashes += 1;
        state.seen.insert(Seen::CRASHED);
        let resume = state.store.cursor.clone();
        state.run = Run::start(self, &state.log, &state.store, resume);
    }

    /// The store task committed the batch: data and cursor durable together.
    pub(super) fn store_commit(
        &self,
        state: &mut FoldState,
        raw: &[KvUpdate],
        cursor: WatchCursor,
    ) {
        if cursor.rank() < state.store.cursor.rank() {
            state.seen.insert(Seen::STORE_CURSOR_BACKWARD);
        }
        state.store.fold(raw);
        state.store.cursor = cursor;
        for update in raw {
            let rev = revision_of(update);
            match state
                .log
                .get(usize::from(rev).wrapping_sub(1))
                .map(|w| w.kind)
            {
                Some(WriteKind::PutUnknownVersion) => state.seen.insert(Seen::UNKNOWN_STORED),
                Some(WriteKind::PutRejected) => state.seen.insert(Seen::REJECTED_STORED),
                _ => {}
            }
        }
        if state.seen.contains(Seen::CRASHED) {
            state.seen.insert(Seen::COMMITTED_AFTER_CRASH);
        }
        if state.seen.contains(Seen::TORN) {
            state.seen.insert(Seen::COMMITTED_AFTER_TORN);
        }
    }

    /// The outcome of the outstanding `StoreApply` reaches the machine.
    pub(super) fn store_answered(&self, state: &mut FoldState, committed: bool) {
        let Some(Job::Store { raw, reported, .. }) = state.run.job.take() else {
            state.seen.insert(Seen::CONTRACT_BROKEN);
            return;
        };
        if reported {
            // The mutant told the machine already; a failure is never re-queued.
            return;
        }
        let now = Millis(state.run.clock);
        let outcome = if committed {
            if state.run.requeued {
                state.seen.insert(Seen::CUMULATIVE_COMMIT);
            }
            state.run.requeued = false;
            StoreOutcome::Committed
        } else if self.mutation == Mutation::DropFailedBatch {
            // The executor reports the failure as a commit: the machine drops
            // the batch instead of re-queueing it.
            StoreOutcome::Committed
        } else {
            state.run.requeued |= !raw.is_empty();
            StoreOutcome::Failed {
                raw,
                error: "disk full".into(),
            }
        };
        self.feed(state, FoldEvent::StoreApplied { now, outcome });
    }

    /// The export task finished: the artifact is the store as it is now.
    pub(super) fn export_done(&self, state: &mut FoldState) {
        if state.run.job.take() != Some(Job::Export) {
            state.seen.insert(Seen::CONTRACT_BROKEN);
            return;
        }
        if !state.store.complete(&state.log) {
            state.seen.insert(Seen::ARTIFACT_INCOMPLETE);
        }
        state.seen.insert(Seen::EXPORTED);
        let now = Millis(state.run.clock);
        let outcome = TaskOutcome::Done { ok: true };
        self.feed(state, FoldEvent::ExportFinished { now, outcome });
    }

    /// The consumer delivers its next revision.
    pub(super) fn deliver(&self, state: &mut FoldState, rev: u8) {
        state.run.consumer.next = rev + 1;
        if matches!(state.run.job, Some(Job::Store { .. })) {
            state.seen.insert(Seen::RECEIVED_IN_FLIGHT);
        }
        let event = update_event(&state.log, rev, state.run.clock);
        if let FoldEvent::Update {
            parsed: Some(item), ..
        } = &event
        {
            state.run.pending.push(item.rev);
        }
        self.feed(state, event);
    }

    /// The run is asked to end.
    pub(super) fn end(&self, state: &mut FoldState, ending: Ending) {
        state.run.ending = Some(ending);
        let now = Millis(state.run.clock);
        let event = match ending {
            Ending::Shutdown => FoldEvent::Shutdown { now },
            Ending::WatchEnd => FoldEvent::WatchEnded {
                now,
                end: TaskEnd::Clean,
            },
        };
        self.feed(state, event);
    }
}

/// `apply(items)`: the domain folds them; within one run revisions only rise.
fn apply(state: &mut FoldState, items: &[Item]) {
    for item in items {
        if item.rev <= state.run.high {
            state.seen.insert(Seen::DOMAIN_BACKWARD);
        }
        if state.domain[usize::from(item.key)].rev >= item.rev {
            state.seen.insert(Seen::REDELIVERED);
        }
        state.run.high = state.run.high.max(item.rev);
        state.domain[usize::from(item.key)] = Slot {
            rev: item.rev,
            live: item.live,
        };
        state.run.pending.retain(|&rev| rev != item.rev);
    }
}

/// Cursor-after-apply (docs/protocols/fold-machine.md, "Invariants" invariant 1): a cursor
/// is stored or announced only once `apply` has seen every parsed update it covers.
fn check_cursor(state: &mut FoldState, cursor: &WatchCursor) {
    if state
        .run
        .pending
        .iter()
        .any(|&rev| u64::from(rev) <= cursor.rank())
    {
        state.seen.insert(Seen::CURSOR_BEFORE_APPLY);
    }
}
