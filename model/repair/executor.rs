//! The `repair` model's executors, as `src/fold/run.rs` (the fold loop),
//! `src/fold/repair_slot.rs` (its repair I/O) and `src/fold/watch_task.rs` (the watch
//! task) perform the two machines' commands: every command in order, a command with a
//! completion left outstanding until the environment (or the other task) answers. The
//! watch task performs its bucket reads at once and waits only where it waits on the
//! fold loop (a full repair channel, the relist ack, the restore reply, the expiry
//! answer) or on its watch. The mutation wrappers alter one executor decision and
//! never a machine.

use std::collections::VecDeque;

use kvfold::protocol::fold::{
    ChunkSource, ExpiryAction, FoldCommand, FoldConfig, FoldEvent, FoldMachine, RepairIo,
    RepairKind, StoreOutcome, TaskEnd, arm_expiry, effective_mode, kept_high,
};
use kvfold::protocol::repair::{
    ArtifactView, RepairCommand, RepairEvent, RepairMachine, RepairPhase, RepairStart,
};
use kvfold::protocol::time::Millis;
use kvfold::protocol::{KeyRestore, KeyState, restore_key};
use kvfold::{KvError, KvUpdate, Retention, WatchCursor};

use super::env::{
    Artifact, Item, Slot, Watch, WatchStep, parse, rank, synthetic_delete, update_of,
};
use super::{Mutation, RepairModel, RepairState, Seen};

/// The window the model's fold machines use, in ms (the clock moves only by `Tick`).
const WINDOW_MS: u64 = 1;

/// A repair hand-off in the repair channel (`RepairRequest`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Request {
    /// Record the eviction memo.
    Evicting,
    /// Diff the fold against the listing.
    Relist,
    /// Restore from this artifact.
    Restore(Artifact),
}

/// The fold loop's outstanding completion.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Job {
    /// `StoreApply`: the blocking store task runs with this batch and cursor.
    Store {
        /// The raw batch.
        raw: Vec<KvUpdate>,
        /// The cursor to make durable with it.
        cursor: WatchCursor,
    },
    /// A repair step that reads the bucket.
    Io(Io),
}

/// A repair step that reads the bucket (the others read only the store and the
/// artifact fold and complete at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Io {
    /// `DiffRelist`: list the bucket, diff the store against it.
    DiffRelist,
    /// `FilterListedLive`: list the bucket, drop listed delete candidates.
    FilterListedLive,
    /// `ReadRetention`: the floor after the listing.
    ReadRetention,
}

/// The fold loop's repair slot (`RepairSlot`): the repair in hand and its sources.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RepairSlot {
    /// The artifact of the restore in hand.
    pub restored: Option<Artifact>,
    /// Relist: stale keys, ascending.
    pub stale: VecDeque<u8>,
    /// Restore: keys taking the artifact's entry, ascending.
    pub rewrites: VecDeque<u8>,
    /// Restore: delete candidates, ascending.
    pub candidates: VecDeque<u8>,
    /// Ghost: per key, live in the truth when the bucket was listed.
    pub live_at_listing: Vec<bool>,
    /// A relist is in hand (environment bookkeeping).
    pub relisting: bool,
}

/// The watch task: the repair machine, its active watch and what it waits for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Task {
    /// The production machine.
    pub machine: RepairMachine,
    /// The active watch.
    pub watch: Option<Watch>,
    /// A hand-off waiting for room in the repair channel.
    pub blocked: Option<RepairCommand>,
    /// Waiting for the relist ack (`true`) or the restore reply.
    pub awaiting: Option<bool>,
    /// The fetched artifact.
    pub fetched: Option<Artifact>,
    /// The task returned this.
    pub ended: Option<Result<(), KvError>>,
    /// Milliseconds since the task started.
    pub clock: u64,
}

impl Task {
    /// The machine waits on its watch.
    pub fn watching(&self) -> bool {
        self.machine.phase() == RepairPhase::Watching && self.ended.is_none()
    }
}

/// One run of `watch_applied`: both tasks and the channels between them. A crash or a
/// restart replaces it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Run {
    /// The production fold machine.
    pub fold: FoldMachine<Item>,
    /// The watch task.
    pub task: Task,
    /// The update channel.
    pub updates: VecDeque<KvUpdate>,
    /// The repair channel (capacity 1).
    pub request: Option<Request>,
    /// The expiry report channel: the cursor of the expired watch.
    pub expiry: Option<WatchCursor>,
    /// The fold loop's outstanding completion.
    pub job: Option<Job>,
    /// The repair in hand.
    pub slot: RepairSlot,
    /// The fold loop's clock (ms).
    pub clock: u64,
    /// Per key, the highest revision `apply` saw in this run.
    pub key_high: Vec<u8>,
    /// The `NoSettle` mutant's view of the store, taken when the backlog drained.
    pub drained_view: Option<Vec<Slot>>,
    /// The highest revision the fold received in this run (witness bookkeeping).
    pub received: u8,
    /// The service asked this run to shut down.
    pub stopping: bool,
}

impl RepairModel {
    // -----------------------------------------------------------------------
    // Runs
    // -----------------------------------------------------------------------

    /// Starts a run as `watch_applied` does after a (re)start: arming, the unanchored
    /// check, both machines, the watch task's `Start`.
    pub(super) fn start_run(&self, state: &mut RepairState) {
        let mode = self.bounds.mode;
        let resume = state.store.cursor.clone();
        let armed = arm_expiry(mode, true).unwrap_or(false);
        let unanchored = resume.is_none()
            && state.store.has_entries()
            && self.mutation != Mutation::UnanchoredRelist;
        let config = FoldConfig {
            window_ms: WINDOW_MS,
            max: self.bounds.max,
            has_store: true,
            repair_armed: armed,
            resume: resume.clone(),
            store_cursor: Some(resume.clone()),
        };
        let mut fold = FoldMachine::new(config);
        while fold.poll_notice().is_some() {}
        let machine = RepairMachine::new(RepairStart {
            mode: effective_mode(mode, armed),
            resume: Some(resume),
            unanchored,
            scope: vec![String::new()],
        });
        state.run = Some(Run {
            fold,
            task: Task {
                machine,
                watch: None,
                blocked: None,
                awaiting: None,
                fetched: None,
                ended: None,
                clock: 0,
            },
            updates: VecDeque::new(),
            request: None,
            expiry: None,
            job: None,
            slot: RepairSlot::default(),
            clock: 0,
            key_high: vec![0; usize::from(self.bounds.keys)],
            drained_view: None,
            received: 0,
            stopping: false,
        });
        self.task_feed(state, RepairEvent::Start { now: Millis(0) });
        self.task_drive(state);
    }

    /// A process crash: memory is lost, the store and the domain keep what they hold;
    /// the next process resumes from the store's cursor.
    pub(super) fn crash(&self, state: &mut RepairState) {
        state.used.crashes += 1;
        if state
            .run
            .as_ref()
            .is_some_and(|run| run.task.awaiting.is_some())
        {
            state.seen.insert(Seen::CRASHED_IN_REPAIR);
        }
        // The application's state is in-process: the new process rebuilds it from the
        // store (docs/decisions.md 109).
        state.domain = state.store.slots.clone();
        self.start_run(state);
    }

    /// The fold machine finished: the service restarts the run from the store, or
    /// gives up once its restarts are used.
    fn restart(&self, state: &mut RepairState) {
        if state.used.restarts >= self.bounds.restarts {
            state.run = None;
            return;
        }
        state.used.restarts += 1;
        state.seen.insert(Seen::RESTARTED);
        self.start_run(state);
    }

    // -----------------------------------------------------------------------
    // The fold loop
    // -----------------------------------------------------------------------

    fn fold_feed(&self, state: &mut RepairState, event: FoldEvent<Item>) {
        let Some(run) = state.run.as_mut() else {
            return;
        };
        if run.fold.handle(event).is_err() {
            state.seen.insert(Seen::CONTRACT_BROKEN);
        }
    }

    /// Feeds one event and performs every command it queued.
    fn fold_step(&self, state: &mut RepairState, event: FoldEvent<Item>) {
        self.fold_feed(state, event);
        self.fold_perform(state);
    }

    /// The fold loop's command drain (`run.rs`, step 1).
    fn fold_perform(&self, state: &mut RepairState) {
        loop {
            let Some(run) = state.run.as_mut() else {
                return;
            };
            while run.fold.poll_notice().is_some() {}
            let Some(command) = run.fold.poll_command() else {
                return;
            };
            // While a store apply is in flight only timers and the expiry answer may be
            // queued (the machine receives on); nothing may follow a repair step
            // awaiting its completion.
            let awaited = match &run.job {
                Some(Job::Store { .. }) => !matches!(
                    command,
                    FoldCommand::SetTimer(_) | FoldCommand::AnswerExpiry(_)
                ),
                Some(Job::Io(_)) => true,
                None => false,
            };
            if awaited {
                state.seen.insert(Seen::CONTRACT_BROKEN);
                return;
            }
            let now = Millis(run.clock);
            match command {
                FoldCommand::SetTimer(_) | FoldCommand::OnApplied(_) => {}
                FoldCommand::Apply(items) => apply(state, &items),
                FoldCommand::StoreApply { raw, cursor } => {
                    run.job = Some(Job::Store { raw, cursor });
                }
                FoldCommand::RunExport | FoldCommand::ReplyExport(_) => {
                    state.seen.insert(Seen::CONTRACT_BROKEN);
                }
                FoldCommand::DiffRelist => run.job = Some(Job::Io(Io::DiffRelist)),
                FoldCommand::FilterListedLive => run.job = Some(Job::Io(Io::FilterListedLive)),
                FoldCommand::ReadRetention => run.job = Some(Job::Io(Io::ReadRetention)),
                FoldCommand::DiffRestore => {
                    let result = self.diff_restore(state);
                    self.fold_feed(state, FoldEvent::RepairIo { now, result });
                }
                FoldCommand::NextChunk { source, max } => {
                    let result = self.next_chunk(state, source, max);
                    self.fold_feed(state, FoldEvent::RepairIo { now, result });
                }
                FoldCommand::DropRestored => run.slot.restored = None,
                FoldCommand::AckRelist => {
                    run.slot = RepairSlot::default();
                    run.drained_view = None;
                    if run.task.awaiting == Some(true) {
                        run.task.awaiting = None;
                        let now = Millis(run.task.clock);
                        self.task_feed(state, RepairEvent::RelistAcked { now });
                        self.task_drive(state);
                    }
                }
                FoldCommand::ReplyRestore(reply) => {
                    run.slot = RepairSlot::default();
                    run.drained_view = None;
                    run.task.awaiting = None;
                    if reply.is_ok() {
                        state.seen.insert(Seen::RESTORED);
                    }
                    let result = reply.map_err(|refusal| {
                        KvError::WatchError(format!("cursor-expired restore: {refusal}"))
                    });
                    let now = Millis(run.task.clock);
                    self.task_feed(state, RepairEvent::RestoreReplied { now, result });
                    self.task_drive(state);
                }
                FoldCommand::AnswerExpiry(action) => {
                    let result = match action {
                        ExpiryAction::Relist | ExpiryAction::Repair => Err(KvError::CursorExpired),
                        ExpiryAction::Refuse(refusal) => Err(refusal.into()),
                    };
                    let now = Millis(run.task.clock);
                    self.task_feed(state, RepairEvent::WatchEnded { now, result });
                    self.task_drive(state);
                }
                FoldCommand::Finish(_) => {
                    if run.stopping && run.fold.store_fail_streak() == 0 {
                        // The final flush committed: the service stops for good.
                        state.run = None;
                    } else if run.stopping {
                        // The final flush failed: the caller restarts in-process.
                        self.start_run(state);
                    } else {
                        self.restart(state);
                    }
                    return;
                }
            }
        }
    }

    /// The active watch delivers its next revision, or ends with `CursorExpired` and
    /// reports it to the fold loop (`judge_expiry`).
    pub(super) fn deliver(&self, state: &mut RepairState) {
        let Some(run) = state.run.as_mut() else {
            return;
        };
        let Some(watch) = run.task.watch.as_mut() else {
            return;
        };
        match watch.step(&state.bucket) {
            Some(WatchStep::Deliver(rev)) => {
                watch.next = rev + 1;
                let write = state.bucket.log[usize::from(rev) - 1];
                let slot = Slot {
                    rev,
                    live: write.live,
                };
                run.updates.push_back(update_of(write.key, slot));
            }
            Some(WatchStep::Expire) => {
                let cursor = watch.from.clone().unwrap_or_default();
                if run.received > rank(&cursor) {
                    state.seen.insert(Seen::EXPIRED_MID_WATCH);
                }
                run.task.watch = None;
                run.expiry = Some(cursor);
            }
            None => {}
        }
    }

    /// The fold loop takes the next update from the channel.
    pub(super) fn receive(&self, state: &mut RepairState) {
        let Some(run) = state.run.as_mut() else {
            return;
        };
        let Some(update) = run.updates.pop_front() else {
            return;
        };
        let parsed = parse(&update);
        run.received = run.received.max(parsed.rev);
        let now = Millis(run.clock);
        self.fold_step(
            state,
            FoldEvent::Update {
                now,
                update,
                parsed: Some(parsed),
            },
        );
    }

    /// `BacklogDrained` (the `NoSettle` mutant keeps its stale view of the store).
    pub(super) fn drained(&self, state: &mut RepairState) {
        let Some(run) = state.run.as_mut() else {
            return;
        };
        if self.mutation == Mutation::NoSettle {
            run.drained_view = Some(state.store.slots.clone());
        }
        let now = Millis(run.clock);
        self.fold_step(state, FoldEvent::BacklogDrained { now });
    }

    /// The window timer fires: the clock moves to the deadline.
    pub(super) fn tick(&self, state: &mut RepairState) {
        let Some(run) = state.run.as_mut() else {
            return;
        };
        let Some(deadline) = run.fold.poll_timeout() else {
            return;
        };
        run.clock = run.clock.max(deadline.0);
        let now = Millis(run.clock);
        self.fold_step(state, FoldEvent::WindowElapsed { now });
    }

    /// The fold loop takes the repair hand-off (`RepairSlot::receive`); a hand-off
    /// waiting for room goes in.
    pub(super) fn take_repair(&self, state: &mut RepairState) {
        let Some(run) = state.run.as_mut() else {
            return;
        };
        let Some(request) = run.request.take() else {
            return;
        };
        let kind = match request {
            Request::Evicting => RepairKind::Evicting,
            Request::Relist => {
                run.slot.relisting = true;
                RepairKind::Relist
            }
            Request::Restore(artifact) => {
                let target = artifact.cursor();
                run.slot.restored = Some(artifact);
                RepairKind::Restore { target }
            }
        };
        let now = Millis(run.clock);
        self.fold_step(state, FoldEvent::RepairRequested { now, kind });
        self.task_drive(state);
    }

    /// The fold loop takes the expiry report (row K1; the model's bucket reports no
    /// identity).
    pub(super) fn take_expiry(&self, state: &mut RepairState) {
        let Some(run) = state.run.as_mut() else {
            return;
        };
        let Some(cursor) = run.expiry.take() else {
            return;
        };
        let now = Millis(run.clock);
        self.fold_step(
            state,
            FoldEvent::WatchExpired {
                now,
                cursor,
                started_on: None,
                bucket: None,
            },
        );
    }

    /// The update channel closed after the watch task returned.
    pub(super) fn task_ended(&self, state: &mut RepairState) {
        let Some(run) = state.run.as_mut() else {
            return;
        };
        let Some(result) = run.task.ended.clone() else {
            return;
        };
        let end = match result {
            Ok(()) => TaskEnd::Clean,
            Err(e) => TaskEnd::Failed(e),
        };
        let now = Millis(run.clock);
        self.fold_step(state, FoldEvent::WatchEnded { now, end });
    }

    /// The service shuts the run down.
    pub(super) fn shutdown(&self, state: &mut RepairState) {
        let Some(run) = state.run.as_mut() else {
            return;
        };
        run.stopping = true;
        let now = Millis(run.clock);
        self.fold_step(state, FoldEvent::Shutdown { now });
    }

    /// The store task committed the batch: data and cursor durable together.
    pub(super) fn store_commit(
        &self,
        state: &mut RepairState,
        raw: &[KvUpdate],
        cursor: WatchCursor,
    ) {
        if cursor.rank() < state.store.cursor.rank() {
            state.seen.insert(Seen::STORE_CURSOR_BACKWARD);
        }
        if cursor.seen_evicting() {
            state.seen.insert(Seen::MEMO_DURABLE);
            state.seen.insert(Seen::MEMO_CLAIMED);
        }
        state.store.fold(raw);
        state.store.cursor = cursor;
    }

    /// The outcome of the outstanding `StoreApply` reaches the fold machine.
    pub(super) fn store_answered(&self, state: &mut RepairState, committed: bool) {
        let Some(run) = state.run.as_mut() else {
            return;
        };
        let Some(Job::Store { raw, .. }) = run.job.take() else {
            state.seen.insert(Seen::CONTRACT_BROKEN);
            return;
        };
        let outcome = if committed {
            StoreOutcome::Committed
        } else {
            StoreOutcome::Failed {
                raw,
                error: "disk full".into(),
            }
        };
        let now = Millis(run.clock);
        self.fold_step(state, FoldEvent::StoreApplied { now, outcome });
    }

    // -----------------------------------------------------------------------
    // Repair I/O (`RepairSlot`)
    // -----------------------------------------------------------------------

    /// What the repair diffs read as the store: the store, or the `NoSettle` mutant's
    /// view from before the settle.
    fn diff_view(&self, state: &RepairState) -> Vec<Slot> {
        state
            .run
            .as_ref()
            .and_then(|run| run.drained_view.clone())
            .unwrap_or_else(|| state.store.slots.clone())
    }

    /// The truth's live keys now (ghost, recorded with each listing).
    fn live_now(&self, state: &RepairState) -> Vec<bool> {
        state
            .bucket
            .truth(self.bounds.keys)
            .iter()
            .map(|s| s.live)
            .collect()
    }

    /// The outstanding bucket-reading repair step completes.
    pub(super) fn io(&self, state: &mut RepairState) {
        let view = self.diff_view(state);
        let listing = state.bucket.listing(self.bounds.keys);
        let live = self.live_now(state);
        let truth = state.bucket.truth(self.bounds.keys);
        let head = state.bucket.head();
        let floor = state.bucket.floor;
        let Some(run) = state.run.as_mut() else {
            return;
        };
        let Some(Job::Io(io)) = run.job.take() else {
            return;
        };
        let result = match io {
            Io::DiffRelist => {
                // The sorted listing merged against the store's keys, ascending.
                run.slot.stale = (0..self.bounds.keys)
                    .filter(|&k| view[usize::from(k)].live && !listing[usize::from(k)])
                    .collect();
                run.slot.live_at_listing = live;
                RepairIo::RelistDiffed {
                    stale: run.slot.stale.len() as u64,
                }
            }
            Io::FilterListedLive => {
                // `filter_listed_live`: the kernel keeps a listed-live candidate.
                let kept = restore_key(KeyState::At(None), KeyState::Absent, false, true)
                    == KeyRestore::Keep;
                // The slot reads each kept key's current revision (gone again: none)
                // and the bucket's head; the production kernel turns them into the hold.
                let mut kept_revisions = Vec::new();
                if self.mutation != Mutation::RestoreIgnoringListing && kept {
                    for &k in &run.slot.candidates {
                        if listing[usize::from(k)] {
                            let slot = truth[usize::from(k)];
                            kept_revisions.push(slot.live.then_some(u64::from(slot.rev)));
                        }
                    }
                    run.slot.candidates.retain(|&k| !listing[usize::from(k)]);
                }
                run.slot.live_at_listing = live;
                RepairIo::LiveFiltered {
                    remaining: run.slot.candidates.len() as u64,
                    kept_high: kept_high(&kept_revisions, Some(u64::from(head))),
                }
            }
            Io::ReadRetention => RepairIo::Retention {
                first_revision: (self.mutation != Mutation::NoRetentionRecheck)
                    .then_some(u64::from(floor)),
            },
        };
        let now = Millis(run.clock);
        self.fold_step(state, FoldEvent::RepairIo { now, result });
    }

    /// `DiffRestore` (`restore_diff`): per key, ascending, the production per-key rule.
    fn diff_restore(&self, state: &mut RepairState) -> RepairIo<Item> {
        let view = self.diff_view(state);
        let versions = self.mutation != Mutation::RestoreIgnoringVersions;
        let Some(run) = state.run.as_mut() else {
            return RepairIo::Failed {
                error: "no run".into(),
                store_lost: false,
            };
        };
        let Some(artifact) = run.slot.restored.clone() else {
            return RepairIo::Failed {
                error: "restore: the artifact fold is gone".into(),
                store_lost: false,
            };
        };
        if self.mutation == Mutation::CursorBeforeDiff {
            // The mutant makes the target cursor durable before anything is rewritten.
            let cursor = artifact.cursor();
            if cursor.rank() < state.store.cursor.rank() {
                state.seen.insert(Seen::STORE_CURSOR_BACKWARD);
            }
            state.store.cursor = cursor;
        }
        let state_of = |slot: Slot| {
            if !slot.live {
                KeyState::Absent
            } else if versions {
                KeyState::At(Some(u64::from(slot.rev)))
            } else {
                KeyState::At(None)
            }
        };
        let mut rewrites = VecDeque::new();
        let mut candidates = VecDeque::new();
        for key in 0..self.bounds.keys {
            let ours = view[usize::from(key)];
            let theirs = artifact.slots[usize::from(key)];
            if theirs.live {
                let identical = ours.live && ours.rev == theirs.rev;
                if restore_key(state_of(ours), state_of(theirs), identical, false)
                    == KeyRestore::TakeArtifact
                {
                    rewrites.push_back(key);
                }
            } else if ours.live
                && restore_key(state_of(ours), KeyState::Absent, false, false) == KeyRestore::Delete
            {
                candidates.push_back(key);
            }
        }
        run.slot.rewrites = rewrites;
        run.slot.candidates = candidates;
        RepairIo::RestoreDiffed {
            rewrite: run.slot.rewrites.len() as u64,
            delete_candidates: run.slot.candidates.len() as u64,
        }
    }

    /// `NextChunk`: the next corrections, each through `parse`; the ghost checks that no
    /// key moves to an older revision and no current value is deleted.
    fn next_chunk(
        &self,
        state: &mut RepairState,
        source: ChunkSource,
        max: usize,
    ) -> RepairIo<Item> {
        let store = state.store.slots.clone();
        let Some(run) = state.run.as_mut() else {
            return RepairIo::Corrections { items: Vec::new() };
        };
        let slot = &mut run.slot;
        let mut items = Vec::new();
        while items.len() < max.max(1) {
            let update = match source {
                ChunkSource::StaleDeletes | ChunkSource::RestoreDeletes => {
                    let keys = if source == ChunkSource::StaleDeletes {
                        &mut slot.stale
                    } else {
                        &mut slot.candidates
                    };
                    let Some(key) = keys.pop_front() else {
                        break;
                    };
                    if slot.live_at_listing.get(usize::from(key)) == Some(&true) {
                        state.seen.insert(Seen::CURRENT_DELETED);
                    }
                    if source == ChunkSource::StaleDeletes {
                        state.seen.insert(Seen::RELISTED);
                    }
                    synthetic_delete(key)
                }
                ChunkSource::RestorePuts => {
                    let Some(key) = slot.rewrites.pop_front() else {
                        break;
                    };
                    let Some(artifact) = &slot.restored else {
                        return RepairIo::Failed {
                            error: "restore: the artifact fold is gone".into(),
                            store_lost: false,
                        };
                    };
                    let theirs = artifact.slots[usize::from(key)];
                    let ours = store[usize::from(key)];
                    if ours.live && ours.rev > theirs.rev {
                        state.seen.insert(Seen::KEY_REGRESSED);
                    }
                    update_of(key, theirs)
                }
            };
            let parsed = parse(&update);
            items.push((update, Some(parsed)));
        }
        RepairIo::Corrections { items }
    }

    // -----------------------------------------------------------------------
    // The watch task
    // -----------------------------------------------------------------------

    fn task_feed(&self, state: &mut RepairState, event: RepairEvent) {
        let Some(run) = state.run.as_mut() else {
            return;
        };
        if run.task.machine.handle(event).is_err() {
            state.seen.insert(Seen::CONTRACT_BROKEN);
        }
    }

    /// The retention poll fires: the task's clock moves to the deadline.
    pub(super) fn poll_due(&self, state: &mut RepairState) {
        let Some(run) = state.run.as_mut() else {
            return;
        };
        let Some(deadline) = run.task.machine.poll_timeout() else {
            return;
        };
        run.task.clock = run.task.clock.max(deadline.0);
        let now = Millis(run.task.clock);
        self.task_feed(state, RepairEvent::PollDue { now });
        self.task_drive(state);
    }

    /// Hands `request` to the fold loop if the repair channel has room.
    fn try_send(&self, state: &mut RepairState, command: RepairCommand) -> bool {
        let Some(run) = state.run.as_mut() else {
            return false;
        };
        if run.request.is_some() {
            run.task.blocked = Some(command);
            return false;
        }
        let now = Millis(run.task.clock);
        match command {
            RepairCommand::SendEvicting => {
                if self.mutation == Mutation::NoEvictionMemo {
                    state.seen.insert(Seen::MEMO_CLAIMED);
                } else {
                    run.request = Some(Request::Evicting);
                }
                self.task_feed(
                    state,
                    RepairEvent::EvictingSent {
                        now,
                        delivered: true,
                    },
                );
            }
            RepairCommand::SendRelist { .. } => {
                run.request = Some(Request::Relist);
                if self.mutation == Mutation::NoAckBarrier {
                    self.task_feed(state, RepairEvent::RelistAcked { now });
                } else {
                    run.task.awaiting = Some(true);
                }
            }
            RepairCommand::SendRestore => match run.task.fetched.take() {
                Some(artifact) => {
                    run.request = Some(Request::Restore(artifact));
                    run.task.awaiting = Some(false);
                }
                None => {
                    let result = Err(KvError::WatchError(
                        "fold loop ended during a restore".to_string(),
                    ));
                    self.task_feed(state, RepairEvent::RestoreReplied { now, result });
                }
            },
            _ => state.seen.insert(Seen::CONTRACT_BROKEN),
        }
        true
    }

    /// The watch task's command drain (`watch_task.rs`, step 2).
    fn task_drive(&self, state: &mut RepairState) {
        loop {
            let Some(run) = state.run.as_mut() else {
                return;
            };
            if run.task.ended.is_some() {
                return;
            }
            if let Some(command) = run.task.blocked.take() {
                if !self.try_send(state, command) {
                    return;
                }
                continue;
            }
            while run.task.machine.poll_notice().is_some() {}
            let Some(command) = run.task.machine.poll_command() else {
                return;
            };
            let now = Millis(run.task.clock);
            match command {
                RepairCommand::ReadRetention => {
                    let mut result = state.bucket.retention();
                    if self.mutation == Mutation::RelistOnEvicting
                        && run.task.machine.phase() == RepairPhase::Planning
                    {
                        result = result.map(|r| Retention {
                            evicts_current_values: false,
                            ..r
                        });
                    }
                    self.task_feed(
                        state,
                        RepairEvent::Retention {
                            now,
                            result: Ok(result),
                        },
                    );
                }
                RepairCommand::StartWatch { from } => {
                    run.task.watch = Some(Watch::start(from, &state.bucket));
                }
                RepairCommand::PeekLatest | RepairCommand::FetchArtifact => {
                    let artifact = state.bucket.artifact.clone();
                    let result = artifact
                        .as_ref()
                        .map(|a| ArtifactView {
                            cursor: a.cursor(),
                            scope: Some(vec![String::new()]),
                            created_at_unix: 0,
                        })
                        .ok_or_else(|| "no artifact published".to_string());
                    let event = if command == RepairCommand::PeekLatest {
                        RepairEvent::Latest { now, result }
                    } else {
                        run.task.fetched = artifact;
                        RepairEvent::Fetched { now, result }
                    };
                    self.task_feed(state, event);
                }
                RepairCommand::DropFetched => run.task.fetched = None,
                RepairCommand::SendEvicting
                | RepairCommand::SendRelist { .. }
                | RepairCommand::SendRestore => {
                    if !self.try_send(state, command) {
                        return;
                    }
                }
                RepairCommand::Finish(result) => {
                    run.task.watch = None;
                    run.task.ended = Some(result);
                    return;
                }
            }
        }
    }
}

/// `apply(items)`: the domain folds them; within one run a key's revisions only rise
/// (a synthetic delete carries none).
fn apply(state: &mut RepairState, items: &[Item]) {
    let Some(run) = state.run.as_mut() else {
        return;
    };
    for item in items {
        let key = usize::from(item.key);
        if item.rev != 0 {
            if item.rev < run.key_high[key] {
                state.seen.insert(Seen::DOMAIN_BACKWARD);
            }
            run.key_high[key] = run.key_high[key].max(item.rev);
        }
        state.domain[key] = Slot {
            rev: item.rev,
            live: item.live,
        };
    }
}
