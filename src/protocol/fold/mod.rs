//! The fold machine (docs/protocols/fold-machine.md): when to flush, what to apply, when
//! the cursor moves, re-queueing a failed store apply, fail-stop, the fold side of
//! repairs, the repair mode's arming and the answer to an expired cursor (`expiry.rs`).
//! Sans-IO: events in (with `now`), `#[must_use]` commands out, the next deadline
//! reported. The `watch_applied` executor performs the commands.

mod expiry;
mod hold;
mod machine;

use std::fmt;
use std::time::Duration;

pub use expiry::{ExpiryAction, arm_expiry, effective_mode, expiry_action};
pub use hold::{export_held, export_hold_after_restore, kept_high, settle_export_hold};
pub use machine::FoldMachine;

use crate::kv::{KvError, KvUpdate, WatchCursor};
use crate::protocol::identity::{BucketFacts, BucketIdentity};
pub use crate::protocol::time::Millis;

/// Consecutive failed store applies that end the run.
pub const MAX_STORE_APPLY_FAILURES: u32 = 16;

/// The machine's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FoldConfig {
    /// Batch window in whole milliseconds.
    pub window_ms: u64,
    /// Flush when the parsed or raw batch holds this many updates (0 = every update).
    pub max: usize,
    /// A snapshot store is attached.
    pub has_store: bool,
    /// A repair can be requested (a store and a mode other than `None`).
    pub repair_armed: bool,
    /// The caller's resume cursor (`WatchCursor::none()` when none was passed).
    pub resume: WatchCursor,
    /// `SnapshotStore::cursor()` at start; `None` without a store.
    pub store_cursor: Option<WatchCursor>,
}

impl FoldConfig {
    /// `window` and `max` are the batching policy (`BatchConfig::window` and
    /// `BatchConfig::max`); `has_store = store_cursor.is_some()`; the window is
    /// rounded up to whole ms (saturating).
    pub fn new(
        window: Duration,
        max: usize,
        resume: Option<WatchCursor>,
        store_cursor: Option<WatchCursor>,
        repair_armed: bool,
    ) -> Self {
        let nanos = window.as_nanos();
        let window_ms = u64::try_from(nanos.div_ceil(1_000_000)).unwrap_or(u64::MAX);
        Self {
            window_ms,
            max,
            has_store: store_cursor.is_some(),
            repair_armed,
            resume: resume.unwrap_or_default(),
            store_cursor,
        }
    }

    /// Chunk size for repairs: `max(max, 1)`.
    pub fn batch_cap(&self) -> usize {
        self.max.max(1)
    }
}

/// An input to the fold machine; every event carries the caller's `now`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FoldEvent<U> {
    /// A stream update and what `parse` made of it.
    Update {
        /// Caller's time.
        now: Millis,
        /// The raw update.
        update: KvUpdate,
        /// `parse(&update)`; `None` = rejected (still bucket state).
        parsed: Option<U>,
    },
    /// The window timer fired.
    WindowElapsed {
        /// Caller's time.
        now: Millis,
    },
    /// The outstanding `StoreApply` finished.
    StoreApplied {
        /// Caller's time.
        now: Millis,
        /// How it went.
        outcome: StoreOutcome,
    },
    /// An export request arrived.
    ExportRequested {
        /// Caller's time.
        now: Millis,
    },
    /// The outstanding `RunExport` finished.
    ExportFinished {
        /// Caller's time.
        now: Millis,
        /// How it went.
        outcome: TaskOutcome,
    },
    /// The watch task asks for a repair step.
    RepairRequested {
        /// Caller's time.
        now: Millis,
        /// What to repair.
        kind: RepairKind,
    },
    /// The update channel is empty (answer to `Wants::Backlog`).
    BacklogDrained {
        /// Caller's time.
        now: Millis,
    },
    /// The outstanding repair I/O command finished.
    RepairIo {
        /// Caller's time.
        now: Millis,
        /// Its result.
        result: RepairIo<U>,
    },
    /// Shutdown was requested.
    Shutdown {
        /// Caller's time.
        now: Millis,
    },
    /// The watch task ended.
    WatchEnded {
        /// Caller's time.
        now: Millis,
        /// How.
        end: TaskEnd,
    },
    /// The watch task's resumed watch ended with `CursorExpired` (row K1); the task
    /// waits for `AnswerExpiry`.
    WatchExpired {
        /// Caller's time.
        now: Millis,
        /// The cursor the watch resumed from.
        cursor: WatchCursor,
        /// The bucket's identity read at start, when the backend reported one.
        started_on: Option<BucketIdentity>,
        /// A status reading taken after the expiry; `None` when the backend reports none.
        bucket: Option<BucketFacts>,
    },
}

impl<U> FoldEvent<U> {
    pub(crate) fn now(&self) -> Millis {
        match self {
            FoldEvent::Update { now, .. }
            | FoldEvent::WindowElapsed { now }
            | FoldEvent::StoreApplied { now, .. }
            | FoldEvent::ExportRequested { now }
            | FoldEvent::ExportFinished { now, .. }
            | FoldEvent::RepairRequested { now, .. }
            | FoldEvent::BacklogDrained { now }
            | FoldEvent::RepairIo { now, .. }
            | FoldEvent::Shutdown { now }
            | FoldEvent::WatchEnded { now, .. }
            | FoldEvent::WatchExpired { now, .. } => *now,
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            FoldEvent::Update { .. } => "Update",
            FoldEvent::WindowElapsed { .. } => "WindowElapsed",
            FoldEvent::StoreApplied { .. } => "StoreApplied",
            FoldEvent::ExportRequested { .. } => "ExportRequested",
            FoldEvent::ExportFinished { .. } => "ExportFinished",
            FoldEvent::RepairRequested { .. } => "RepairRequested",
            FoldEvent::BacklogDrained { .. } => "BacklogDrained",
            FoldEvent::RepairIo { .. } => "RepairIo",
            FoldEvent::Shutdown { .. } => "Shutdown",
            FoldEvent::WatchEnded { .. } => "WatchEnded",
            FoldEvent::WatchExpired { .. } => "WatchExpired",
        }
    }
}

/// How a store apply went.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StoreOutcome {
    /// The batch and its cursor are durable.
    Committed,
    /// The apply failed; the batch comes back to be re-queued.
    Failed {
        /// The raw updates of the failed batch.
        raw: Vec<KvUpdate>,
        /// The error text.
        error: String,
    },
    /// The blocking task panicked; the store is gone.
    Lost {
        /// The panic message.
        panic: String,
    },
}

/// How a blocking task (export) went.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TaskOutcome {
    /// It finished; `ok` = it succeeded.
    Done {
        /// The export succeeded.
        ok: bool,
    },
    /// It panicked (the store it held is gone).
    Panicked {
        /// The panic message.
        panic: String,
    },
}

/// How the watch task ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TaskEnd {
    /// The stream ended cleanly.
    Clean,
    /// The watch failed with this error.
    Failed(KvError),
    /// The watch task panicked.
    Panicked(String),
}

/// A repair the watch task requests (docs/protocols/repair.md).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RepairKind {
    /// The bucket was seen evicting current values: record the memo.
    Evicting,
    /// Relist repair: diff the fold against the listing.
    Relist,
    /// Restore repair up to the artifact's cursor.
    Restore {
        /// The artifact's cursor.
        target: WatchCursor,
    },
}

/// Where a correction chunk comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChunkSource {
    /// Synthetic deletes of keys the listing no longer has.
    StaleDeletes,
    /// Entries taken from the restored artifact.
    RestorePuts,
    /// Deletes of local keys the artifact does not hold.
    RestoreDeletes,
}

/// The result of a repair I/O command.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RepairIo<U> {
    /// `DiffRelist` found this many stale keys.
    RelistDiffed {
        /// Stale keys found.
        stale: u64,
    },
    /// `DiffRestore` found these counts.
    RestoreDiffed {
        /// Keys to take from the artifact.
        rewrite: u64,
        /// Local keys the artifact lacks (candidates for deletion).
        delete_candidates: u64,
    },
    /// `FilterListedLive` left this many delete candidates.
    LiveFiltered {
        /// Candidates left after removing listed-live keys.
        remaining: u64,
        /// When the filter kept a candidate: the revision the fold must commit
        /// before it exports again ([`kept_high`]); `None` when it kept none.
        kept_high: Option<u64>,
    },
    /// `ReadRetention` answered.
    Retention {
        /// The bucket's first revision, when known.
        first_revision: Option<u64>,
    },
    /// `NextChunk` produced these corrections; empty = the source is exhausted.
    Corrections {
        /// The corrections and what `parse` made of them.
        items: Vec<(KvUpdate, Option<U>)>,
    },
    /// The step failed.
    Failed {
        /// The error text.
        error: String,
        /// The store was lost with it.
        store_lost: bool,
    },
}

impl<U> RepairIo<U> {
    fn name(&self) -> &'static str {
        match self {
            RepairIo::RelistDiffed { .. } => "RepairIo::RelistDiffed",
            RepairIo::RestoreDiffed { .. } => "RepairIo::RestoreDiffed",
            RepairIo::LiveFiltered { .. } => "RepairIo::LiveFiltered",
            RepairIo::Retention { .. } => "RepairIo::Retention",
            RepairIo::Corrections { .. } => "RepairIo::Corrections",
            RepairIo::Failed { .. } => "RepairIo::Failed",
        }
    }
}

/// What the executor must do next.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FoldCommand<U> {
    /// Arm (or disarm) the window timer.
    SetTimer(Option<Millis>),
    /// Call `apply` with this batch.
    Apply(Vec<U>),
    /// Make these updates and this cursor durable together; feed `StoreApplied`.
    StoreApply {
        /// The raw updates, in receive order.
        raw: Vec<KvUpdate>,
        /// The cursor they bring the store to.
        cursor: WatchCursor,
    },
    /// Call `on_applied` with this cursor.
    OnApplied(WatchCursor),
    /// Export the store to the pending request's destination; feed `ExportFinished`.
    RunExport,
    /// Reply to the pending export request.
    ReplyExport(ExportReply),
    /// Relist diff (docs/protocols/fold-machine.md, "Repair phases"); feed `RepairIo::RelistDiffed`.
    DiffRelist,
    /// Restore diff (docs/protocols/fold-machine.md, "Repair phases"); feed `RepairIo::RestoreDiffed`.
    DiffRestore,
    /// Remove listed-live keys from the delete candidates; feed `RepairIo::LiveFiltered`.
    FilterListedLive,
    /// Read the bucket's retention; feed `RepairIo::Retention`.
    ReadRetention,
    /// Produce the next correction chunk; feed `RepairIo::Corrections`.
    NextChunk {
        /// The source.
        source: ChunkSource,
        /// At most this many items.
        max: usize,
    },
    /// Drop the restored fold.
    DropRestored,
    /// Acknowledge the relist to the watch task.
    AckRelist,
    /// Reply to the restore request.
    ReplyRestore(Result<WatchCursor, RestoreRefused>),
    /// Answer the watch task's `WatchExpired` report: what it does next (row K1).
    AnswerExpiry(ExpiryAction),
    /// End the run with this result.
    Finish(Result<WatchCursor, KvError>),
}

/// Which reply an export gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExportReply {
    /// The export's own result.
    Result,
    /// There is no store to export.
    NoStore,
    /// Held (docs/protocols/fold-machine.md, "The export hold"): a restore kept
    /// listed-live keys and the committed cursor has not reached their newer writes.
    Held {
        /// The revision the committed cursor must reach.
        until: u64,
        /// The committed cursor's rank now.
        committed: u64,
    },
}

/// Why a restore was refused on the fold side.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RestoreRefused {
    /// The artifact is not ahead of what the fold has applied.
    NotAhead {
        /// The artifact's cursor.
        artifact: WatchCursor,
        /// The fold's applied cursor.
        applied: WatchCursor,
    },
    /// The bucket evicted past the artifact while the listing ran.
    EvictedDuringListing {
        /// The artifact's cursor.
        artifact: WatchCursor,
        /// The bucket's first revision.
        first_revision: u64,
    },
}

impl fmt::Display for RestoreRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreRefused::NotAhead { artifact, applied } => write!(
                f,
                "the artifact cursor {} is not ahead of the applied cursor {}",
                artifact.rank(),
                applied.rank()
            ),
            RestoreRefused::EvictedDuringListing {
                artifact,
                first_revision,
            } => write!(
                f,
                "the bucket evicted past the artifact cursor {} (first revision {first_revision}) during the listing",
                artifact.rank()
            ),
        }
    }
}

/// What the machine waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wants {
    /// Any event (select over shutdown, window, repair, export, updates).
    Any,
    /// The next update from the channel, or `BacklogDrained`.
    Backlog,
    /// The completion of an outstanding command.
    Completion(Pending),
    /// Nothing: the run is finished.
    Nothing,
}

/// Which completion is outstanding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pending {
    /// `StoreApplied`.
    Store,
    /// `ExportFinished`.
    Export,
    /// `RepairIo`.
    RepairIo,
}

/// The machine's phase, named for what it waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FoldPhase {
    /// No batch open.
    Idle,
    /// A batch is open and its deadline is set.
    Batching,
    /// Waiting for `StoreApplied`.
    AwaitingStore,
    /// Waiting for `ExportFinished`.
    AwaitingExport,
    /// Draining the update channel before a repair.
    DrainingBacklog,
    /// Waiting for a repair I/O result.
    AwaitingRepairIo,
    /// Finished; accepts nothing.
    Finished,
}

/// An event the machine's phase does not accept; the machine is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Unexpected {
    /// The phase the machine was in.
    pub phase: FoldPhase,
    /// The event (or the reason it was refused).
    pub event: &'static str,
}

impl fmt::Display for Unexpected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fold machine in phase {:?} does not accept {}",
            self.phase, self.event
        )
    }
}

impl std::error::Error for Unexpected {}

/// Informational notices, one per event kind of docs/watch-applied.md, "Notices".
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FoldNotice {
    /// A flush moved the cursor.
    Flushed {
        /// Parsed updates applied.
        parsed: usize,
        /// Raw updates flushed.
        raw: usize,
        /// The new applied cursor.
        cursor: WatchCursor,
    },
    /// A store apply committed.
    Committed {
        /// The committed cursor.
        cursor: WatchCursor,
        /// Raw updates committed.
        raw: usize,
    },
    /// A store apply failed; the batch is re-queued.
    StoreApplyFailed {
        /// Consecutive failures so far.
        streak: u32,
        /// The error text.
        error: String,
    },
    /// Too many consecutive failures: the run ends.
    FailStop {
        /// Consecutive failures.
        streak: u32,
        /// The last error text.
        error: String,
    },
    /// A delivered version is below the applied cursor.
    CursorMovedBack {
        /// The applied cursor.
        from: WatchCursor,
        /// The lower version.
        to: WatchCursor,
    },
    /// The resume cursor differs from the store's cursor.
    ResumeMismatch {
        /// The caller's resume cursor.
        resume: WatchCursor,
        /// The store's cursor.
        store: WatchCursor,
    },
    /// The eviction memo was recorded.
    EvictionRecorded {
        /// The cursor carrying it.
        cursor: WatchCursor,
    },
    /// A repair started.
    RepairStarted {
        /// Which repair.
        kind: RepairKind,
        /// The applied cursor at its start.
        applied: WatchCursor,
    },
    /// The relist diff found stale keys.
    StaleKeys {
        /// How many.
        count: u64,
    },
    /// A restore is being folded in.
    RestoreApplying {
        /// The applied cursor before.
        from: WatchCursor,
        /// The artifact's cursor.
        to: WatchCursor,
        /// Keys taken from the artifact.
        rewrite: u64,
        /// Keys deleted.
        delete: u64,
    },
    /// A repair was refused.
    RepairRefused(RestoreRefused),
    /// The resumed watch's cursor expired, and what the watch does about it (row K1).
    CursorExpired {
        /// The expired cursor.
        cursor: WatchCursor,
        /// The answer the watch task gets.
        action: ExpiryAction,
    },
    /// An export was served.
    ExportServed {
        /// It succeeded.
        ok: bool,
    },
    /// The run finished.
    Finished {
        /// It ended without an error.
        ok: bool,
        /// The cursor it ended at.
        cursor: WatchCursor,
    },
}

#[cfg(test)]
mod tests;
