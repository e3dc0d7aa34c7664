//! The reference tracker: facts about what was fed to the fold machine (received updates
//! and corrections, completions, requests), recorded as each accepted event arrives;
//! `commands.rs` judges what the machine asked for against them
//! (docs/protocols/fold-machine.md, "Invariants") after every command and every step. It
//! records facts only: what the machine should decide next is never computed here.

use std::fmt;

mod commands;

pub(in crate::fuzz_bodies::fold_script) use commands::Observed;

use super::Item;
use crate::kv::{KvUpdate, VersionToken, WatchCursor};
use crate::protocol::fold::{
    ChunkSource, FoldConfig, FoldEvent, RepairIo, RepairKind, StoreOutcome, TaskEnd, TaskOutcome,
};
use crate::protocol::time::Millis;

/// A broken invariant: docs/protocols/fold-machine.md, "Invariants" number (0 = the
/// drive-loop contract of docs/architecture.md, "Kernels and machines" /
/// docs/watch-applied.md, "The drive loop"), the step it broke at, and what happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// docs/protocols/fold-machine.md, "Invariants" invariant number, or 0 for the
    /// drive-loop contract.
    pub invariant: u8,
    /// The step (1-based; 0 = construction).
    pub step: usize,
    /// What the checker saw.
    pub detail: String,
    /// The last steps of the run (events, results, commands), oldest first.
    pub trace: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.invariant {
            0 => "drive-loop contract",
            1 => "cursor-after-apply",
            2 => "store cursor never covers a hole",
            3 => "high-water only from known versions",
            4 => "rejected parses advance",
            5 => "failed batch re-queued, fail-stop at 16",
            6 => "one outstanding effect",
            7 => "flush first",
            8 => "drain and settle before a repair",
            9 => "ack/reply barrier",
            10 => "restore never moves backward",
            11 => "empty batch persists the cursor",
            12 => "memo never clears",
            13 => "store authority",
            14 => "finished is final",
            15 => "rejection is pure",
            16 => "window bound",
            _ => "?",
        };
        writeln!(
            f,
            "fold invariant {} ({name}) broken at step {}: {}",
            self.invariant, self.step, self.detail
        )?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// One update the machine received: a stream update or a repair correction.
#[derive(Clone, Debug)]
struct Received {
    update: KvUpdate,
    /// `parse`'s result: the update's unique id, or `None` (rejected).
    item: Option<Item>,
    correction: bool,
    /// The `Apply` holding `item` was performed (trivially true without one).
    applied: bool,
    /// The last step whose `StoreApply` carried this raw update.
    sent_step: Option<usize>,
}

/// The completion the tracker waits for (from the commands, not the machine).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    Store,
    Export,
    Diff(RepairCommand),
    Chunk(ChunkSource),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RepairCommand {
    DiffRelist,
    DiffRestore,
    FilterListedLive,
    ReadRetention,
}

/// The outstanding `StoreApply`.
#[derive(Clone, Debug)]
struct InFlight {
    raw: Vec<KvUpdate>,
    cursor: WatchCursor,
}

/// How the run was asked to end.
#[derive(Clone, Debug)]
enum Ending {
    Shutdown,
    Watch(TaskEnd),
}

/// What the accepted event of the current step was (for attributing `Finish`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fed {
    Other,
    StoreFailed,
    StoreLost,
    ExportDone,
    ExportPanicked,
    RepairFailed,
}

/// Facts about the repair being folded in.
#[derive(Clone, Debug)]
struct Repair {
    kind: RepairKind,
    drained_step: Option<usize>,
    /// The applied cursor when the first repair-body command came.
    body_from: Option<WatchCursor>,
    corrections: usize,
    exhausted: Vec<ChunkSource>,
    exhausted_step: Option<usize>,
    retention_read: bool,
    final_store_apply: bool,
}

/// Counts of what happened, for vacuity witnesses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Events accepted.
    pub accepted: u64,
    /// Events rejected (`Unexpected`).
    pub rejected: u64,
    /// `Apply` commands.
    pub applies: u64,
    /// `StoreApply` commands.
    pub store_applies: u64,
    /// `StoreApply` commands with an empty batch.
    pub empty_store_applies: u64,
    /// Store applies committed.
    pub commits: u64,
    /// Store applies failed (re-queued).
    pub store_failures: u64,
    /// Commits of a batch that held a re-queued failed batch.
    pub cumulative_commits: u64,
    /// Runs ended by 16 consecutive failures.
    pub fail_stops: u64,
    /// `OnApplied` commands.
    pub on_applied: u64,
    /// Updates that arrived after their window expired (row U0).
    pub late_updates: u64,
    /// Exports run or answered.
    pub exports: u64,
    /// Relists acknowledged.
    pub relists: u64,
    /// Restores committed.
    pub restores: u64,
    /// Restores refused.
    pub refusals: u64,
    /// Correction items folded.
    pub corrections: u64,
    /// Eviction memos recorded.
    pub memos: u64,
    /// Runs finished.
    pub finishes: u64,
    /// `CursorMovedBack` notices.
    pub moved_back: u64,
    /// Cursor expiries answered (row K1).
    pub expiries: u64,
    /// Updates received while a store apply was in flight.
    pub received_in_flight: u64,
    /// Store applies that completed after the machine received beside them.
    pub in_flight_completions: u64,
}

/// The tracker.
#[derive(Clone, Debug)]
pub(super) struct Tracker {
    window_ms: u64,
    cap: usize,
    armed: bool,
    has_store: bool,
    /// Everything ingested, in ingest order.
    received: Vec<Received>,
    /// A late update (row U0) accepted but not yet ingested: the expired window
    /// closes first; it is ingested when its new window opens.
    deferred: Option<Received>,
    /// Indexes into `received` of raw updates not yet committed, in receive order.
    uncommitted: Vec<usize>,
    in_flight: Option<InFlight>,
    outstanding: Option<Effect>,
    /// Version of the latest ingested stream update with a known version since the
    /// cursor last moved.
    last_known: Option<VersionToken>,
    /// A `StoreApply` moved the cursor; its `OnApplied` is owed.
    advance_owed: Option<WatchCursor>,
    /// What the machine's applied cursor must be.
    applied: WatchCursor,
    /// The store's cursor (what the last committed `StoreApply` carried).
    committed: WatchCursor,
    /// The memo was recorded in this run and not committed yet.
    memo_dirty: bool,
    /// The step that recorded the memo (row E1 flushes it at once).
    memo_step: Option<usize>,
    last_store_apply_step: Option<usize>,
    fail_streak: u32,
    /// `fail_streak` before the current `Failed` (a commit in between resets it).
    requeued_pending: bool,
    deadline: Option<Millis>,
    finished: bool,
    ending: Option<(Ending, usize)>,
    export_step: Option<usize>,
    late_step: Option<usize>,
    repair: Option<Repair>,
    /// The source the last `NextChunk` asked for.
    last_chunk: Option<ChunkSource>,
    fed: Fed,
    now: Millis,
    step: usize,
    /// The commands of the current step so far.
    step_commands: usize,
    /// A `WatchExpired` was accepted in this step; its `AnswerExpiry` is owed.
    expiry_owed: bool,
    /// An event other than its completion was accepted beside the store apply in
    /// flight (witness bookkeeping).
    overlapped: bool,
    pub(super) counts: Counts,
}

type Check = Result<(), (u8, String)>;

fn fail(invariant: u8, detail: impl Into<String>) -> Check {
    Err((invariant, detail.into()))
}

fn ensure(ok: bool, invariant: u8, detail: impl FnOnce() -> String) -> Check {
    if ok {
        Ok(())
    } else {
        Err((invariant, detail()))
    }
}

impl Tracker {
    pub(super) fn new(config: &FoldConfig) -> Self {
        let store_memo = config
            .store_cursor
            .as_ref()
            .is_some_and(WatchCursor::seen_evicting);
        Self {
            window_ms: config.window_ms,
            cap: config.max.max(1),
            armed: config.repair_armed,
            has_store: config.has_store,
            received: Vec::new(),
            deferred: None,
            uncommitted: Vec::new(),
            in_flight: None,
            outstanding: None,
            last_known: None,
            advance_owed: None,
            applied: config.resume.clone().remembering(store_memo),
            committed: config
                .store_cursor
                .clone()
                .unwrap_or_else(|| config.resume.clone()),
            memo_dirty: false,
            memo_step: None,
            last_store_apply_step: None,
            fail_streak: 0,
            requeued_pending: false,
            deadline: None,
            finished: false,
            ending: None,
            export_step: None,
            late_step: None,
            repair: None,
            last_chunk: None,
            fed: Fed::Other,
            now: Millis(0),
            step: 0,
            step_commands: 0,
            expiry_owed: false,
            overlapped: false,
            counts: Counts::default(),
        }
    }

    /// The latest `now` the machine accepted (it clamps to it).
    pub(super) fn now(&self) -> Millis {
        self.now
    }

    pub(super) fn finished(&self) -> bool {
        self.finished
    }

    pub(super) fn cap(&self) -> usize {
        self.cap
    }

    /// The raw batch of the outstanding `StoreApply` (to feed it back as failed).
    pub(super) fn in_flight_raw(&self) -> Option<&[KvUpdate]> {
        self.in_flight.as_ref().map(|f| f.raw.as_slice())
    }

    /// The chunk source an outstanding `NextChunk` asked for.
    pub(super) fn chunk_source(&self) -> Option<ChunkSource> {
        match self.outstanding {
            Some(Effect::Chunk(source)) => Some(source),
            _ => None,
        }
    }

    /// The outstanding diff-like repair command, by name.
    pub(super) fn outstanding_diff(&self) -> Option<&'static str> {
        match self.outstanding {
            Some(Effect::Diff(RepairCommand::DiffRelist)) => Some("DiffRelist"),
            Some(Effect::Diff(RepairCommand::DiffRestore)) => Some("DiffRestore"),
            Some(Effect::Diff(RepairCommand::FilterListedLive)) => Some("FilterListedLive"),
            Some(Effect::Diff(RepairCommand::ReadRetention)) => Some("ReadRetention"),
            _ => None,
        }
    }

    /// The restore target being folded in, if any.
    pub(super) fn restore_target(&self) -> Option<&WatchCursor> {
        match &self.repair {
            Some(Repair {
                kind: RepairKind::Restore { target },
                ..
            }) => Some(target),
            _ => None,
        }
    }

    /// The applied cursor the machine must report.
    pub(super) fn applied(&self) -> &WatchCursor {
        &self.applied
    }

    // -----------------------------------------------------------------------
    // Events
    // -----------------------------------------------------------------------

    /// Starts a step: `step` is 1-based.
    pub(super) fn begin(&mut self, step: usize) {
        self.step = step;
        self.step_commands = 0;
        self.fed = Fed::Other;
    }

    /// Whether an accepted event must match the completion the tracker waits for;
    /// `None` when nothing is outstanding.
    fn completes(&self, event: &FoldEvent<Item>) -> Option<bool> {
        let effect = self.outstanding?;
        if effect == Effect::Store && !matches!(event, FoldEvent::StoreApplied { .. }) {
            // The machine receives on beside a store apply in flight.
            return None;
        }
        Some(match (effect, event) {
            (Effect::Store, FoldEvent::StoreApplied { .. })
            | (Effect::Export, FoldEvent::ExportFinished { .. }) => true,
            (
                Effect::Diff(_) | Effect::Chunk(_),
                FoldEvent::RepairIo {
                    result: RepairIo::Failed { .. },
                    ..
                },
            ) => true,
            (Effect::Diff(command), FoldEvent::RepairIo { result, .. }) => matches!(
                (command, result),
                (RepairCommand::DiffRelist, RepairIo::RelistDiffed { .. })
                    | (RepairCommand::DiffRestore, RepairIo::RestoreDiffed { .. })
                    | (
                        RepairCommand::FilterListedLive,
                        RepairIo::LiveFiltered { .. }
                    )
                    | (RepairCommand::ReadRetention, RepairIo::Retention { .. })
            ),
            (Effect::Chunk(_), FoldEvent::RepairIo { result, .. }) => {
                matches!(result, RepairIo::Corrections { .. })
            }
            _ => false,
        })
    }

    /// Records an event the machine accepted. `late` = it arrived while a batch was
    /// open and its deadline had passed; `pre_applied` = the machine's applied
    /// cursor before it.
    pub(super) fn accepted(
        &mut self,
        event: &FoldEvent<Item>,
        late: bool,
        pre_applied: &WatchCursor,
    ) -> Check {
        self.counts.accepted += 1;
        ensure(!self.finished, 14, || {
            "an event was accepted after Finish".into()
        })?;
        if self.outstanding == Some(Effect::Store) {
            if matches!(event, FoldEvent::StoreApplied { .. }) {
                if std::mem::take(&mut self.overlapped) {
                    self.counts.in_flight_completions += 1;
                }
            } else {
                self.overlapped = true;
                if matches!(event, FoldEvent::Update { .. }) {
                    self.counts.received_in_flight += 1;
                }
            }
        }
        match self.completes(event) {
            Some(true) => self.outstanding = None,
            Some(false) => {
                return fail(
                    6,
                    format!(
                        "{} accepted while {:?} is outstanding",
                        event_name(event),
                        self.outstanding
                    ),
                );
            }
            None => {
                let completion = matches!(
                    event,
                    FoldEvent::StoreApplied { .. }
                        | FoldEvent::ExportFinished { .. }
                        | FoldEvent::RepairIo { .. }
                );
                ensure(!completion, 0, || {
                    format!("{} accepted with nothing outstanding", event_name(event))
                })?;
            }
        }
        self.now = self.now.max(event_now(event));
        if late {
            // Invariant 16: the batch open now is flushed before the next ingest.
            self.late_step.get_or_insert(self.step);
        }
        match event {
            FoldEvent::Update { update, parsed, .. } => {
                let received = Received {
                    update: update.clone(),
                    item: *parsed,
                    correction: false,
                    applied: parsed.is_none(),
                    sent_step: None,
                };
                if late {
                    self.counts.late_updates += 1;
                    self.deferred = Some(received);
                } else {
                    self.ingest(received)?;
                }
            }
            FoldEvent::WindowElapsed { .. } | FoldEvent::BacklogDrained { .. } => {
                if let FoldEvent::BacklogDrained { .. } = event {
                    let repair = self
                        .repair
                        .as_mut()
                        .ok_or((0, "BacklogDrained accepted without a repair".to_string()))?;
                    repair.drained_step = Some(self.step);
                }
            }
            FoldEvent::StoreApplied { outcome, .. } => self.store_applied(outcome)?,
            FoldEvent::ExportRequested { .. } => self.export_step = Some(self.step),
            FoldEvent::ExportFinished { outcome, .. } => match outcome {
                TaskOutcome::Done { .. } => self.fed = Fed::ExportDone,
                TaskOutcome::Panicked { .. } => {
                    self.fed = Fed::ExportPanicked;
                    self.has_store = false;
                }
            },
            FoldEvent::RepairRequested { kind, .. } => {
                ensure(self.armed, 0, || {
                    "RepairRequested accepted while repair is not armed".into()
                })?;
                match kind {
                    RepairKind::Evicting => {
                        if !pre_applied.seen_evicting() {
                            self.applied = self.applied.clone().remembering(true);
                            self.memo_dirty = self.has_store;
                            self.memo_step = Some(self.step);
                            self.counts.memos += 1;
                        }
                    }
                    kind => {
                        ensure(self.repair.is_none(), 0, || {
                            "a repair was accepted while another runs".into()
                        })?;
                        self.repair = Some(Repair {
                            kind: kind.clone(),
                            drained_step: None,
                            body_from: None,
                            corrections: 0,
                            exhausted: Vec::new(),
                            exhausted_step: None,
                            retention_read: false,
                            final_store_apply: false,
                        });
                    }
                }
            }
            FoldEvent::RepairIo { result, .. } => self.repair_io(result)?,
            FoldEvent::Shutdown { .. } => self.ending = Some((Ending::Shutdown, self.step)),
            FoldEvent::WatchEnded { end, .. } => {
                self.ending = Some((Ending::Watch(end.clone()), self.step));
            }
            // Row K1 decides only (exact rows: src/protocol/fold/tests/expiry.rs): its
            // one command is the answer, in this step.
            FoldEvent::WatchExpired { .. } => self.expiry_owed = true,
        }
        Ok(())
    }

    /// Records that `received` was ingested (stream update or correction).
    fn ingest(&mut self, received: Received) -> Check {
        if !received.correction {
            // Invariant 16: an expired window's batch is flushed before this ingest.
            if let Some(late) = self.late_step {
                self.flushed_since(late, 16, "an update was ingested")?;
                self.late_step = None;
            }
            let version = received.update.version();
            if !version.is_unknown() {
                self.last_known = Some(version.clone());
            }
        }
        if self.has_store {
            self.uncommitted.push(self.received.len());
        }
        self.received.push(received);
        Ok(())
    }

    fn store_applied(&mut self, outcome: &StoreOutcome) -> Check {
        let in_flight = self
            .in_flight
            .take()
            .ok_or((0, "StoreApplied without a StoreApply".to_string()))?;
        match outcome {
            StoreOutcome::Committed => {
                // The committed batch is the front of the uncommitted list (checked
                // when the StoreApply was queued).
                let count = in_flight.raw.len();
                self.uncommitted.drain(..count.min(self.uncommitted.len()));
                if self.requeued_pending {
                    self.counts.cumulative_commits += 1;
                }
                self.requeued_pending = false;
                self.fail_streak = 0;
                // A memo recorded while this apply was in flight is not in its cursor.
                if in_flight.cursor.seen_evicting() {
                    self.memo_dirty = false;
                }
                self.committed = in_flight.cursor;
                self.counts.commits += 1;
            }
            StoreOutcome::Failed { .. } => {
                self.fail_streak += 1;
                self.requeued_pending |= !in_flight.raw.is_empty();
                self.fed = Fed::StoreFailed;
                self.counts.store_failures += 1;
            }
            StoreOutcome::Lost { .. } => {
                self.has_store = false;
                self.fed = Fed::StoreLost;
            }
        }
        Ok(())
    }

    fn repair_io(&mut self, result: &RepairIo<Item>) -> Check {
        let step = self.step;
        let Some(repair) = self.repair.as_mut() else {
            return fail(0, "RepairIo accepted without a repair");
        };
        match result {
            RepairIo::Failed { store_lost, .. } => {
                self.fed = Fed::RepairFailed;
                self.has_store &= !store_lost;
            }
            RepairIo::Retention { .. } => repair.retention_read = true,
            RepairIo::Corrections { items } => {
                let Some(source) = self.last_chunk else {
                    return fail(0, "Corrections without a NextChunk");
                };
                ensure(items.len() <= self.cap, 0, || {
                    format!("{} corrections accepted, max {}", items.len(), self.cap)
                })?;
                if items.is_empty() {
                    repair.exhausted.push(source);
                    repair.exhausted_step = Some(step);
                }
                repair.corrections += items.len();
                self.counts.corrections += items.len() as u64;
                for (update, parsed) in items {
                    self.ingest(Received {
                        update: update.clone(),
                        item: *parsed,
                        correction: true,
                        applied: parsed.is_none(),
                        sent_step: None,
                    })?;
                }
            }
            RepairIo::RelistDiffed { .. }
            | RepairIo::RestoreDiffed { .. }
            | RepairIo::LiveFiltered { .. } => {}
        }
        Ok(())
    }
}

pub(super) fn event_now(event: &FoldEvent<Item>) -> Millis {
    event.now()
}

pub(super) fn event_name(event: &FoldEvent<Item>) -> &'static str {
    event.name()
}
