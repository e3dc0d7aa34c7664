//! `FoldMachine`: the transition table of docs/protocols/fold-machine.md, "Transition
//! table" and "Repair phases" and the flush procedure ("The flush procedure"). Every event
//! is checked first (a rejected event changes nothing), then applied; commands and notices
//! queue FIFO.

use std::collections::VecDeque;

use super::{
    ChunkSource, ExportReply, FoldCommand, FoldConfig, FoldEvent, FoldNotice, FoldPhase,
    MAX_STORE_APPLY_FAILURES, Pending, RepairIo, RepairKind, RestoreRefused, StoreOutcome, TaskEnd,
    TaskOutcome, Unexpected, Wants, expiry_action, export_hold_after_restore, settle_export_hold,
};
use crate::kv::{KvError, KvUpdate, WatchCursor};
use crate::protocol::time::Millis;
use crate::protocol::{restore_ahead, resume_window_ok};

/// What happens after a flush: the continuation k of "flush(k)"
/// (docs/protocols/fold-machine.md, "Transition table").
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Then<U> {
    ToIdle,
    Ingest(KvUpdate, Option<U>),
    Export,
    Shutdown,
    End(TaskEnd),
    Drain,
    Settle,
    NextChunk(ChunkSource),
    RelistDone,
    RestoreCommit(WatchCursor),
    /// A flush that waited for the store apply in flight: flush(k) once it completes.
    Flush(Box<Then<U>>),
}

impl<U> Then<U> {
    /// A streaming continuation: the flush's store apply runs while the machine goes
    /// on receiving (docs/protocols/fold-machine.md, "Store applies in flight").
    fn streams(&self) -> bool {
        matches!(self, Then::ToIdle | Then::Ingest(..))
    }
}

/// The repair I/O step being waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Step {
    RelistDiff,
    RestoreDiff,
    LiveFilter,
    RetentionRecheck,
    Chunk(ChunkSource),
}

/// Phases, named for what they wait for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase<U> {
    Idle,
    Batching,
    AwaitingStore(Then<U>),
    AwaitingExport,
    DrainingBacklog,
    AwaitingRepairIo(Step),
    Finished,
}

/// The outstanding `StoreApply`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct InFlight {
    len: usize,
    cursor: WatchCursor,
    advanced: bool,
    parsed: usize,
}

/// The fold machine (docs/protocols/fold-machine.md). Drive it as the crate docs' drive
/// loop says: perform every command in order, feed completions, select on what
/// [`wants`](FoldMachine::wants) says.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FoldMachine<U> {
    window_ms: u64,
    max: usize,
    has_store: bool,
    repair_armed: bool,
    batch: Vec<U>,
    raw: Vec<KvUpdate>,
    high: Option<WatchCursor>,
    applied: WatchCursor,
    committed: WatchCursor,
    memo_dirty: bool,
    fail_streak: u32,
    in_flight: Option<InFlight>,
    deadline: Option<Millis>,
    phase: Phase<U>,
    repair: Option<RepairKind>,
    /// Applied cursor when the current repair started.
    repair_from: WatchCursor,
    /// Restore counts for the `RestoreApplying` notice: (rewrite, delete).
    restore_counts: (u64, u64),
    /// The current restore's listed-live filter kept keys: the revision they wait for
    /// (row P8); it becomes the export hold at the restore's commit (row P5).
    restore_hold: Option<u64>,
    /// Exports are held until the committed cursor reaches this revision
    /// (docs/protocols/fold-machine.md, "The export hold").
    export_hold: Option<u64>,
    now: Millis,
    commands: VecDeque<FoldCommand<U>>,
    notices: VecDeque<FoldNotice>,
}

impl<U> FoldMachine<U> {
    /// A machine at the start of a run.
    pub fn new(config: FoldConfig) -> Self {
        let store_memo = config
            .store_cursor
            .as_ref()
            .is_some_and(WatchCursor::seen_evicting);
        let applied = config.resume.clone().remembering(store_memo);
        let committed = match &config.store_cursor {
            Some(store) => store.clone(),
            None => config.resume.clone(),
        };
        let mut notices = VecDeque::new();
        if let Some(store) = &config.store_cursor
            && !config.resume.is_none()
            && store.rank() != config.resume.rank()
        {
            notices.push_back(FoldNotice::ResumeMismatch {
                resume: config.resume.clone(),
                store: store.clone(),
            });
        }
        Self {
            window_ms: config.window_ms,
            max: config.max,
            has_store: config.has_store,
            repair_armed: config.repair_armed,
            batch: Vec::new(),
            raw: Vec::new(),
            high: None,
            repair_from: applied.clone(),
            applied,
            committed,
            memo_dirty: false,
            fail_streak: 0,
            in_flight: None,
            deadline: None,
            phase: Phase::Idle,
            repair: None,
            restore_counts: (0, 0),
            restore_hold: None,
            export_hold: None,
            now: Millis(0),
            commands: VecDeque::new(),
            notices,
        }
    }

    /// The next command, FIFO.
    pub fn poll_command(&mut self) -> Option<FoldCommand<U>> {
        self.commands.pop_front()
    }

    /// The next notice, FIFO (docs/watch-applied.md, "Notices").
    pub fn poll_notice(&mut self) -> Option<FoldNotice> {
        self.notices.pop_front()
    }

    /// The window deadline while a batch is open.
    pub fn poll_timeout(&self) -> Option<Millis> {
        match self.phase {
            Phase::Batching => self.deadline,
            _ => None,
        }
    }

    /// What the machine waits for.
    pub fn wants(&self) -> Wants {
        match self.phase {
            Phase::Idle | Phase::Batching => Wants::Any,
            Phase::AwaitingStore(_) => Wants::Completion(Pending::Store),
            Phase::AwaitingExport => Wants::Completion(Pending::Export),
            Phase::DrainingBacklog => Wants::Backlog,
            Phase::AwaitingRepairIo(_) => Wants::Completion(Pending::RepairIo),
            Phase::Finished => Wants::Nothing,
        }
    }

    /// The public phase.
    pub fn phase(&self) -> FoldPhase {
        match self.phase {
            Phase::Idle => FoldPhase::Idle,
            Phase::Batching => FoldPhase::Batching,
            Phase::AwaitingStore(_) => FoldPhase::AwaitingStore,
            Phase::AwaitingExport => FoldPhase::AwaitingExport,
            Phase::DrainingBacklog => FoldPhase::DrainingBacklog,
            Phase::AwaitingRepairIo(_) => FoldPhase::AwaitingRepairIo,
            Phase::Finished => FoldPhase::Finished,
        }
    }

    /// The last cursor advanced to (what `on_applied` saw).
    pub fn applied(&self) -> &WatchCursor {
        &self.applied
    }

    /// The cursor of the last successful store commit (the start cursor before one).
    pub fn committed(&self) -> &WatchCursor {
        &self.committed
    }

    /// Where to resume: `committed` with a store, `applied` without.
    pub fn resume_cursor(&self) -> &WatchCursor {
        if self.has_store {
            &self.committed
        } else {
            &self.applied
        }
    }

    /// The export hold: exports are answered [`ExportReply::Held`] until the committed
    /// cursor reaches this revision (docs/protocols/fold-machine.md, "The export
    /// hold"). `None` once it is reached, and before any restore kept a key.
    pub fn export_hold(&self) -> Option<u64> {
        self.export_hold
    }

    /// Consecutive failed store applies.
    pub fn store_fail_streak(&self) -> u32 {
        self.fail_streak
    }

    /// True while a store is attached (it is lost when a task holding it panics).
    pub fn has_store(&self) -> bool {
        self.has_store
    }

    /// True while a `StoreApply` is outstanding. A streaming flush (row U0, U2, W1,
    /// E1) does not wait for its store apply: while [`wants`](FoldMachine::wants) is
    /// [`Wants::Any`] the executor also selects on the completion and feeds
    /// `StoreApplied` when it comes; the next flush waits for it
    /// ([`Wants::Completion`]) (docs/protocols/fold-machine.md, "Store applies in
    /// flight").
    pub fn store_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    fn batch_cap(&self) -> usize {
        self.max.max(1)
    }

    fn late(&self) -> bool {
        matches!(self.phase, Phase::Batching) && self.deadline.is_some_and(|d| self.now >= d)
    }

    /// Checks an event against the phase without changing anything.
    fn check(&self, event: &FoldEvent<U>) -> Result<(), &'static str> {
        let name = event.name();
        let idle_or_batching = matches!(self.phase, Phase::Idle | Phase::Batching);
        let ok = match (&self.phase, event) {
            (Phase::Finished, _) => false,
            (Phase::Idle | Phase::Batching | Phase::DrainingBacklog, FoldEvent::Update { .. }) => {
                true
            }
            (_, FoldEvent::WindowElapsed { .. }) => idle_or_batching,
            // S1 / S2: the outstanding store apply, awaited or in flight.
            (_, FoldEvent::StoreApplied { outcome, .. }) if self.in_flight.is_some() => {
                match outcome {
                    StoreOutcome::Failed { raw, .. } => {
                        if self.in_flight.as_ref().map(|f| f.len) != Some(raw.len()) {
                            return Err("StoreApplied with a wrong batch length");
                        }
                        true
                    }
                    StoreOutcome::Committed | StoreOutcome::Lost { .. } => true,
                }
            }
            (_, FoldEvent::ExportRequested { .. }) => idle_or_batching,
            (Phase::AwaitingExport, FoldEvent::ExportFinished { .. }) => true,
            (_, FoldEvent::RepairRequested { .. }) => {
                if idle_or_batching && !self.repair_armed {
                    return Err("RepairRequested while repair is not armed");
                }
                idle_or_batching
            }
            (Phase::DrainingBacklog, FoldEvent::BacklogDrained { .. }) => true,
            (Phase::AwaitingRepairIo(step), FoldEvent::RepairIo { result, .. }) => {
                return self.check_repair_io(*step, result);
            }
            (
                _,
                FoldEvent::Shutdown { .. }
                | FoldEvent::WatchEnded { .. }
                | FoldEvent::WatchExpired { .. },
            ) => idle_or_batching,
            _ => false,
        };
        if ok { Ok(()) } else { Err(name) }
    }

    fn check_repair_io(&self, step: Step, result: &RepairIo<U>) -> Result<(), &'static str> {
        let ok = match (step, result) {
            (_, RepairIo::Failed { .. }) => true,
            (Step::RelistDiff, RepairIo::RelistDiffed { .. }) => true,
            (Step::RestoreDiff, RepairIo::RestoreDiffed { .. }) => true,
            (Step::LiveFilter, RepairIo::LiveFiltered { .. }) => true,
            (Step::RetentionRecheck, RepairIo::Retention { .. }) => true,
            (Step::Chunk(source), RepairIo::Corrections { items }) => {
                if items.len() > self.batch_cap() {
                    return Err("Corrections with more than max items");
                }
                let shape_ok = items.iter().all(|(update, _)| match source {
                    ChunkSource::StaleDeletes | ChunkSource::RestoreDeletes => {
                        matches!(update, KvUpdate::Delete { version, .. } if version.is_unknown())
                    }
                    ChunkSource::RestorePuts => matches!(update, KvUpdate::Put(_)),
                });
                if !shape_ok {
                    return Err("Corrections with a wrong update shape");
                }
                true
            }
            _ => false,
        };
        if ok { Ok(()) } else { Err(result.name()) }
    }

    /// Feeds one event. An event the phase does not accept returns `Err` and leaves
    /// the machine unchanged.
    pub fn handle(&mut self, event: FoldEvent<U>) -> Result<(), Unexpected> {
        if let Err(event) = self.check(&event) {
            return Err(Unexpected {
                phase: self.phase(),
                event,
            });
        }
        self.now = self.now.max(event.now());
        match event {
            FoldEvent::Update { update, parsed, .. } => match self.phase {
                // U0: an expired window closes before anything else is ingested.
                Phase::Batching if self.late() => self.flush(Then::Ingest(update, parsed)),
                // U1
                Phase::Idle => self.open_and_ingest(update, parsed),
                // U2
                Phase::Batching => {
                    if self.ingest(update, parsed) {
                        self.flush(Then::ToIdle);
                    }
                }
                // D1
                _ => {
                    if self.ingest(update, parsed) {
                        self.flush(Then::Drain);
                    }
                }
            },
            // W1 / W2
            FoldEvent::WindowElapsed { .. } => {
                if self.late() {
                    self.flush(Then::ToIdle);
                }
            }
            // S1 / S2
            FoldEvent::StoreApplied { outcome, .. } => self.store_applied(outcome),
            // X1
            FoldEvent::ExportRequested { .. } => self.flush(Then::Export),
            // X2 / X3
            FoldEvent::ExportFinished { outcome, .. } => match outcome {
                TaskOutcome::Done { ok } => {
                    self.commands
                        .push_back(FoldCommand::ReplyExport(ExportReply::Result));
                    self.notices.push_back(FoldNotice::ExportServed { ok });
                    self.phase = Phase::Idle;
                }
                TaskOutcome::Panicked { panic } => {
                    self.has_store = false;
                    self.finish(Err(KvError::WatchError(format!(
                        "snapshot export task panicked: {panic}"
                    ))));
                }
            },
            FoldEvent::RepairRequested { kind, .. } => self.repair_requested(kind),
            // D2
            FoldEvent::BacklogDrained { .. } => self.flush(Then::Settle),
            FoldEvent::RepairIo { result, .. } => self.repair_io(result),
            // H1
            FoldEvent::Shutdown { .. } => self.flush(Then::Shutdown),
            // C1
            FoldEvent::WatchEnded { end, .. } => self.flush(Then::End(end)),
            // K1: a decision only; no flush, the phase and any open batch stay. Updates
            // received before the expiry stay queued ahead of whatever the answer brings.
            FoldEvent::WatchExpired {
                cursor,
                started_on,
                bucket,
                ..
            } => {
                let action = expiry_action(
                    &cursor,
                    started_on.as_ref(),
                    bucket.as_ref(),
                    self.repair_armed,
                );
                self.notices.push_back(FoldNotice::CursorExpired {
                    cursor,
                    action: action.clone(),
                });
                self.commands.push_back(FoldCommand::AnswerExpiry(action));
            }
        }
        Ok(())
    }

    /// ingest (docs/protocols/fold-machine.md, "Ingest and correct"); returns whether the
    /// batch is full.
    fn ingest(&mut self, update: KvUpdate, parsed: Option<U>) -> bool {
        let version = update.version();
        if !version.is_unknown() {
            let high = WatchCursor::from_version(version.clone());
            if let (Some(new), Some(old)) = (high.as_u64(), self.applied.as_u64())
                && new < old
            {
                self.notices.push_back(FoldNotice::CursorMovedBack {
                    from: self.applied.clone(),
                    to: high.clone(),
                });
            }
            self.high = Some(high);
        }
        self.correct(update, parsed);
        self.batch.len() >= self.max || self.raw.len() >= self.max
    }

    /// correct (docs/protocols/fold-machine.md, "Ingest and correct"): step 2 only; never
    /// touches `high` or the window.
    fn correct(&mut self, update: KvUpdate, parsed: Option<U>) {
        if let Some(u) = parsed {
            self.batch.push(u);
        }
        if self.has_store {
            self.raw.push(update);
        }
    }

    /// Row U1: ingest into a new batch and open its window.
    fn open_and_ingest(&mut self, update: KvUpdate, parsed: Option<U>) {
        let full = self.ingest(update, parsed);
        let deadline = self.now.plus_ms(self.window_ms);
        self.deadline = Some(deadline);
        self.commands
            .push_back(FoldCommand::SetTimer(Some(deadline)));
        self.phase = Phase::Batching;
        if full {
            self.flush(Then::ToIdle);
        }
    }

    /// The flush procedure (docs/protocols/fold-machine.md, "The flush procedure"): the
    /// only place the cursor moves.
    fn flush(&mut self, then: Then<U>) {
        // F0: one store apply at a time; a flush waits for the one in flight.
        if self.in_flight.is_some() {
            self.phase = Phase::AwaitingStore(Then::Flush(Box::new(then)));
            return;
        }
        if self.deadline.take().is_some() {
            self.commands.push_back(FoldCommand::SetTimer(None));
        }
        if self.batch.is_empty() && self.raw.is_empty() && self.high.is_none() && !self.memo_dirty {
            self.proceed(then);
            return;
        }
        let parsed = self.batch.len();
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            self.commands.push_back(FoldCommand::Apply(batch));
        }
        let mut advanced = false;
        if let Some(high) = self.high.take() {
            self.applied = high.remembering(self.applied.seen_evicting());
            advanced = true;
        }
        if self.has_store && (!self.raw.is_empty() || advanced || self.memo_dirty) {
            let raw = std::mem::take(&mut self.raw);
            self.in_flight = Some(InFlight {
                len: raw.len(),
                cursor: self.applied.clone(),
                advanced,
                parsed,
            });
            self.commands.push_back(FoldCommand::StoreApply {
                raw,
                cursor: self.applied.clone(),
            });
            if then.streams() {
                // Step 5s: the store apply stays in flight; steps 8–9 run when it completes.
                self.proceed(then);
            } else {
                self.phase = Phase::AwaitingStore(then);
            }
            return;
        }
        let raw = self.raw.len();
        self.raw.clear();
        let cursor = self.applied.clone();
        self.after_store(advanced, parsed, raw, cursor);
        self.proceed(then);
    }

    /// Step 8 of the flush procedure: the cursor `cursor` of a flush that advanced is
    /// announced.
    fn after_store(&mut self, advanced: bool, parsed: usize, raw: usize, cursor: WatchCursor) {
        if advanced {
            self.commands
                .push_back(FoldCommand::OnApplied(cursor.clone()));
            self.notices.push_back(FoldNotice::Flushed {
                parsed,
                raw,
                cursor,
            });
        }
    }

    /// Step 7 of the flush procedure: rows S1 (awaited: the continuation follows) and S2
    /// (in flight: the phase stays).
    fn store_applied(&mut self, outcome: StoreOutcome) {
        let Some(in_flight) = self.in_flight.take() else {
            debug_assert!(false, "check() admits StoreApplied only with one in flight");
            return;
        };
        let then = match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::AwaitingStore(then) => Some(then),
            phase => {
                self.phase = phase;
                None
            }
        };
        match outcome {
            StoreOutcome::Committed => {
                self.fail_streak = 0;
                // A memo recorded while this apply was in flight is not in its cursor.
                if in_flight.cursor.seen_evicting() {
                    self.memo_dirty = false;
                }
                self.committed = in_flight.cursor.clone();
                self.settle_export_hold();
                self.notices.push_back(FoldNotice::Committed {
                    cursor: in_flight.cursor.clone(),
                    raw: in_flight.len,
                });
            }
            StoreOutcome::Failed { raw, error } => {
                self.fail_streak += 1;
                if self.fail_streak >= MAX_STORE_APPLY_FAILURES {
                    self.notices.push_back(FoldNotice::FailStop {
                        streak: self.fail_streak,
                        error: error.clone(),
                    });
                    self.finish(Err(KvError::WatchError(format!(
                        "store apply failed {} consecutive times: {error}",
                        self.fail_streak
                    ))));
                    return;
                }
                // The failed range goes back in front of anything received since.
                let newer = std::mem::replace(&mut self.raw, raw);
                self.raw.extend(newer);
                self.notices.push_back(FoldNotice::StoreApplyFailed {
                    streak: self.fail_streak,
                    error,
                });
            }
            StoreOutcome::Lost { panic } => {
                self.has_store = false;
                self.finish(Err(KvError::WatchError(format!(
                    "snapshot store task panicked: {panic}"
                ))));
                return;
            }
        }
        self.after_store(
            in_flight.advanced,
            in_flight.parsed,
            in_flight.len,
            in_flight.cursor,
        );
        if let Some(then) = then {
            self.proceed(then);
        }
    }

    /// Carries out a continuation (docs/protocols/fold-machine.md, "The flush procedure"
    /// table).
    fn proceed(&mut self, then: Then<U>) {
        match then {
            Then::ToIdle => self.phase = Phase::Idle,
            Then::Ingest(update, parsed) => {
                self.phase = Phase::Idle;
                self.open_and_ingest(update, parsed);
            }
            Then::Export => {
                self.settle_export_hold();
                if let Some(until) = self.export_hold
                    && self.has_store
                {
                    // X4: held; the export does not run.
                    self.commands
                        .push_back(FoldCommand::ReplyExport(ExportReply::Held {
                            until,
                            committed: self.committed.rank(),
                        }));
                    self.phase = Phase::Idle;
                } else if self.has_store {
                    self.commands.push_back(FoldCommand::RunExport);
                    self.phase = Phase::AwaitingExport;
                } else {
                    self.commands
                        .push_back(FoldCommand::ReplyExport(ExportReply::NoStore));
                    self.phase = Phase::Idle;
                }
            }
            Then::Shutdown => self.finish(Ok(self.resume_cursor().clone())),
            Then::End(end) => {
                let result = match end {
                    TaskEnd::Clean => Ok(self.resume_cursor().clone()),
                    TaskEnd::Failed(error) => Err(error),
                    TaskEnd::Panicked(panic) => {
                        Err(KvError::WatchError(format!("watch task panicked: {panic}")))
                    }
                };
                self.finish(result);
            }
            Then::Drain => self.phase = Phase::DrainingBacklog,
            Then::Settle => {
                if self.raw.is_empty() {
                    self.start_repair_body();
                } else {
                    self.flush(Then::Settle);
                }
            }
            Then::NextChunk(source) => self.next_chunk(source),
            Then::RelistDone => {
                self.commands.push_back(FoldCommand::AckRelist);
                self.repair = None;
                self.phase = Phase::Idle;
            }
            Then::Flush(then) => self.flush(*then),
            Then::RestoreCommit(target) => {
                // The kept keys' hold starts with the commit at the artifact's cursor.
                self.export_hold = export_hold_after_restore(
                    self.export_hold,
                    self.restore_hold.take(),
                    self.committed.rank(),
                );
                self.commands.push_back(FoldCommand::DropRestored);
                self.commands
                    .push_back(FoldCommand::ReplyRestore(Ok(target)));
                self.repair = None;
                self.phase = Phase::Idle;
            }
        }
    }

    /// Clears the export hold once the committed cursor reached it.
    fn settle_export_hold(&mut self) {
        self.export_hold = settle_export_hold(self.export_hold, self.committed.rank());
    }

    fn next_chunk(&mut self, source: ChunkSource) {
        self.commands.push_back(FoldCommand::NextChunk {
            source,
            max: self.batch_cap(),
        });
        self.phase = Phase::AwaitingRepairIo(Step::Chunk(source));
    }

    fn finish(&mut self, result: Result<WatchCursor, KvError>) {
        let ok = result.is_ok();
        let cursor = match &result {
            Ok(cursor) => cursor.clone(),
            Err(_) => self.resume_cursor().clone(),
        };
        self.commands.push_back(FoldCommand::Finish(result));
        self.notices.push_back(FoldNotice::Finished { ok, cursor });
        self.deadline = None;
        self.phase = Phase::Finished;
    }

    /// Rows E1 and R1.
    fn repair_requested(&mut self, kind: RepairKind) {
        match kind {
            RepairKind::Evicting => {
                if self.applied.seen_evicting() {
                    return;
                }
                self.applied = self.applied.clone().remembering(true);
                self.memo_dirty = self.has_store;
                self.notices.push_back(FoldNotice::EvictionRecorded {
                    cursor: self.applied.clone(),
                });
                self.flush(Then::ToIdle);
            }
            kind => {
                self.notices.push_back(FoldNotice::RepairStarted {
                    kind: kind.clone(),
                    applied: self.applied.clone(),
                });
                self.repair = Some(kind);
                self.repair_from = self.applied.clone();
                self.restore_hold = None;
                if self.late() {
                    self.flush(Then::Drain);
                } else {
                    self.phase = Phase::DrainingBacklog;
                }
            }
        }
    }

    /// Rows B1–B3: the repair body, once the backlog is drained and settled.
    fn start_repair_body(&mut self) {
        match self.repair.clone() {
            Some(RepairKind::Relist) => {
                self.commands.push_back(FoldCommand::DiffRelist);
                self.phase = Phase::AwaitingRepairIo(Step::RelistDiff);
            }
            Some(RepairKind::Restore { target }) => {
                if restore_ahead(target.rank(), self.applied.rank()) {
                    self.commands.push_back(FoldCommand::DiffRestore);
                    self.phase = Phase::AwaitingRepairIo(Step::RestoreDiff);
                } else {
                    let refusal = RestoreRefused::NotAhead {
                        artifact: target,
                        applied: self.applied.clone(),
                    };
                    self.refuse_restore(refusal);
                }
            }
            Some(RepairKind::Evicting) | None => {
                debug_assert!(false, "a drain is entered only for Relist or Restore");
                self.repair = None;
                self.phase = Phase::Idle;
            }
        }
    }

    fn refuse_restore(&mut self, refusal: RestoreRefused) {
        self.commands.push_back(FoldCommand::DropRestored);
        self.commands
            .push_back(FoldCommand::ReplyRestore(Err(refusal.clone())));
        self.notices.push_back(FoldNotice::RepairRefused(refusal));
        self.restore_hold = None;
        self.repair = None;
        self.phase = Phase::Idle;
    }

    fn restore_target(&self) -> WatchCursor {
        match &self.repair {
            Some(RepairKind::Restore { target }) => target.clone(),
            _ => {
                debug_assert!(false, "restore steps run only during a restore");
                WatchCursor::none()
            }
        }
    }

    fn restore_applying(&mut self) {
        let (rewrite, delete) = self.restore_counts;
        self.notices.push_back(FoldNotice::RestoreApplying {
            from: self.repair_from.clone(),
            to: self.restore_target(),
            rewrite,
            delete,
        });
        self.next_chunk(ChunkSource::RestorePuts);
    }

    /// Rows P1–P11.
    fn repair_io(&mut self, result: RepairIo<U>) {
        let Phase::AwaitingRepairIo(step) = self.phase else {
            debug_assert!(false, "check() admits RepairIo only while awaiting it");
            return;
        };
        match (step, result) {
            // P11
            (_, RepairIo::Failed { error, store_lost }) => {
                self.has_store &= !store_lost;
                self.finish(Err(KvError::WatchError(error)));
            }
            // P1
            (Step::RelistDiff, RepairIo::RelistDiffed { stale }) => {
                self.notices
                    .push_back(FoldNotice::StaleKeys { count: stale });
                self.next_chunk(ChunkSource::StaleDeletes);
            }
            // P2
            (Step::Chunk(source), RepairIo::Corrections { items }) if !items.is_empty() => {
                for (update, parsed) in items {
                    self.correct(update, parsed);
                }
                self.flush(Then::NextChunk(source));
            }
            // P3
            (Step::Chunk(ChunkSource::StaleDeletes), RepairIo::Corrections { .. }) => {
                self.flush(Then::RelistDone);
            }
            // P4
            (Step::Chunk(ChunkSource::RestorePuts), RepairIo::Corrections { .. }) => {
                self.next_chunk(ChunkSource::RestoreDeletes);
            }
            // P5: the cursor moves to the artifact's only here.
            (Step::Chunk(ChunkSource::RestoreDeletes), RepairIo::Corrections { .. }) => {
                let target = self.restore_target();
                self.high = Some(target.clone());
                self.flush(Then::RestoreCommit(target));
            }
            // P6 / P7
            (
                Step::RestoreDiff,
                RepairIo::RestoreDiffed {
                    rewrite,
                    delete_candidates,
                },
            ) => {
                self.restore_counts = (rewrite, delete_candidates);
                if delete_candidates == 0 {
                    self.restore_applying();
                } else {
                    self.commands.push_back(FoldCommand::FilterListedLive);
                    self.phase = Phase::AwaitingRepairIo(Step::LiveFilter);
                }
            }
            // P8
            (
                Step::LiveFilter,
                RepairIo::LiveFiltered {
                    remaining,
                    kept_high,
                },
            ) => {
                self.restore_counts.1 = remaining;
                self.restore_hold = kept_high;
                self.commands.push_back(FoldCommand::ReadRetention);
                self.phase = Phase::AwaitingRepairIo(Step::RetentionRecheck);
            }
            // P9 / P10
            (Step::RetentionRecheck, RepairIo::Retention { first_revision }) => {
                let target = self.restore_target();
                match first_revision {
                    Some(first) if !resume_window_ok(target.rank(), first) => {
                        self.refuse_restore(RestoreRefused::EvictedDuringListing {
                            artifact: target,
                            first_revision: first,
                        });
                    }
                    _ => self.restore_applying(),
                }
            }
            (_, other) => {
                debug_assert!(false, "check() rejects {}", other.name());
            }
        }
    }
}
