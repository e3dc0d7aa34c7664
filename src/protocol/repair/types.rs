//! The repair machine's vocabulary (docs/protocols/repair-machine.md, "Events and commands"
//! and "Notices"): start parameters, the artifact view, events, commands, phases, notices
//! with their levels, and the `Unexpected` rejection. Plain data: nothing here decides.

use std::fmt;

use super::{RestoreRefusal, check_restore};
use crate::kv::{KvError, Retention, WatchCursor};
use crate::protocol::manifest::ExportManifest;
use crate::protocol::time::Millis;
use crate::protocol::{RepairMode, cursor_rank};

/// How often retention is re-read while a watch runs and a relist could still be
/// planned (measured from the watch's start, re-armed after each handled poll).
pub const RETENTION_POLL_MS: u64 = 60_000;

/// What the watch task knows when it starts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RepairStart {
    /// The effective repair mode: the configured one when a repair is armed, else
    /// `RepairMode::None`.
    pub mode: RepairMode,
    /// The resume cursor; `Some(c)` with `c.is_none()` counts as no cursor. Its
    /// eviction memo seeds the machine's memo.
    pub resume: Option<WatchCursor>,
    /// The store holds entries although the fold has no cursor.
    pub unanchored: bool,
    /// The watch's prefix list (`[""]` = every key).
    pub scope: Vec<String>,
}

/// The part of an artifact's manifest a restore decision reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ArtifactView {
    /// The cursor the artifact's payload is consistent with.
    pub cursor: WatchCursor,
    /// The exporter's prefixes; `None` = unknown coverage.
    pub scope: Option<Vec<String>>,
    /// When the artifact was exported (Unix seconds; informational).
    pub created_at_unix: u64,
}

impl ArtifactView {
    /// The view of a manifest: its cursor, scope and creation time.
    pub fn of(manifest: &ExportManifest) -> Self {
        Self {
            cursor: manifest.cursor.clone(),
            scope: manifest.scope.clone(),
            created_at_unix: manifest.created_at_unix,
        }
    }

    /// `check_restore` of this artifact against the fold's `local` cursor, the
    /// bucket's floor `first` (when known) and the watch's `scope`: whether it may
    /// restore the fold.
    pub fn check(
        &self,
        local: &WatchCursor,
        first: Option<u64>,
        scope: &[String],
    ) -> Result<(), RestoreRefusal> {
        check_restore(
            cursor_rank(&self.cursor),
            self.scope.as_deref(),
            cursor_rank(local),
            first,
            scope,
        )
    }
}

/// An input: the start, or the completion of the last command, or a poll tick.
/// Every event carries the caller's monotonic `now`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RepairEvent {
    /// The watch task starts.
    Start {
        /// Caller's clock.
        now: Millis,
    },
    /// `ReadRetention` answered.
    Retention {
        /// Caller's clock.
        now: Millis,
        /// The reading (`Ok(None)` = the backend cannot tell).
        result: Result<Option<Retention>, KvError>,
    },
    /// `SendEvicting` was performed.
    EvictingSent {
        /// Caller's clock.
        now: Millis,
        /// The fold loop took the hand-off (`false`: it is gone).
        delivered: bool,
    },
    /// The retention poll deadline ([`RepairMachine::poll_timeout`](super::RepairMachine::poll_timeout)) fired.
    PollDue {
        /// Caller's clock.
        now: Millis,
    },
    /// The active watch ended.
    WatchEnded {
        /// Caller's clock.
        now: Millis,
        /// How it ended.
        result: Result<(), KvError>,
    },
    /// The fold acknowledged the relist, or the hand-off or its ack failed (the
    /// next watch then ends at once).
    RelistAcked {
        /// Caller's clock.
        now: Millis,
    },
    /// `PeekLatest` answered: the newest artifact's view, or the error text.
    Latest {
        /// Caller's clock.
        now: Millis,
        /// The view or the error text.
        result: Result<ArtifactView, String>,
    },
    /// `FetchArtifact` answered: the view of what actually arrived, or the error text.
    Fetched {
        /// Caller's clock.
        now: Millis,
        /// The view or the error text.
        result: Result<ArtifactView, String>,
    },
    /// The fold answered the restore hand-off: the cursor restored to, or why not.
    RestoreReplied {
        /// Caller's clock.
        now: Millis,
        /// The restored cursor (memo included) or the refusal.
        result: Result<WatchCursor, KvError>,
    },
}

impl RepairEvent {
    /// The event's clock.
    pub fn now(&self) -> Millis {
        match self {
            RepairEvent::Start { now }
            | RepairEvent::Retention { now, .. }
            | RepairEvent::EvictingSent { now, .. }
            | RepairEvent::PollDue { now }
            | RepairEvent::WatchEnded { now, .. }
            | RepairEvent::RelistAcked { now }
            | RepairEvent::Latest { now, .. }
            | RepairEvent::Fetched { now, .. }
            | RepairEvent::RestoreReplied { now, .. } => *now,
        }
    }

    /// The variant's name (for [`Unexpected`]).
    pub fn name(&self) -> &'static str {
        match self {
            RepairEvent::Start { .. } => "Start",
            RepairEvent::Retention { .. } => "Retention",
            RepairEvent::EvictingSent { .. } => "EvictingSent",
            RepairEvent::PollDue { .. } => "PollDue",
            RepairEvent::WatchEnded { .. } => "WatchEnded",
            RepairEvent::RelistAcked { .. } => "RelistAcked",
            RepairEvent::Latest { .. } => "Latest",
            RepairEvent::Fetched { .. } => "Fetched",
            RepairEvent::RestoreReplied { .. } => "RestoreReplied",
        }
    }
}

/// Where a relist sorts its key listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scratch {
    /// The restore source's scratch directory (`Auto`), falling back to the system
    /// temp dir when it names none.
    RestoreSourceDir,
    /// The system temp dir (`Relist`).
    SystemTemp,
}

/// What the executor must do next, in order. A command with a completion is the
/// last one queued until its completion is fed back.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RepairCommand {
    /// Read the bucket's retention live; feed `Retention`.
    ReadRetention,
    /// Start the watch for the scope and keep it as the active watch (do not await
    /// it here); feed `WatchEnded` when it ends.
    StartWatch {
        /// `Some(c)`: the `_from` watch resuming after `c`; `None`: the full-scope
        /// state-sync watch.
        from: Option<WatchCursor>,
    },
    /// Hand `Evicting` to the fold; feed `EvictingSent`.
    SendEvicting,
    /// Hand `Relist` to the fold and await its ack; feed `RelistAcked`.
    SendRelist {
        /// Where the relist sorts its listing.
        scratch: Scratch,
    },
    /// Read the newest artifact's manifest; feed `Latest`.
    PeekLatest,
    /// Download and open the newest artifact, keep it; feed `Fetched`.
    FetchArtifact,
    /// Drop the kept artifact fold off the runtime and await that (no event).
    DropFetched,
    /// Hand the kept artifact fold to the fold and await its reply; feed
    /// `RestoreReplied`.
    SendRestore,
    /// The watch task ends with this result; nothing follows.
    Finish(Result<(), KvError>),
}

/// What the machine waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RepairPhase {
    /// `Start`.
    Starting,
    /// The retention read of a cursor-less start.
    CheckingStart,
    /// The first retention poll before the watch starts.
    InitialPoll,
    /// The active watch's end, or the poll deadline.
    Watching,
    /// A retention poll while the watch is parked.
    Polling,
    /// The retention read that plans a repair after an expiry.
    Planning,
    /// The fold taking the eviction memo.
    SendingEvicting,
    /// The fold's relist ack.
    AwaitingAck,
    /// The floor read before a restore looks at the newest artifact.
    RestoreFloor,
    /// The newest artifact's manifest.
    RestoreLatest,
    /// The artifact download.
    RestoreFetch,
    /// The floor read after the download.
    RestoreRecheck,
    /// The fold's restore reply.
    AwaitingRestoreReply,
    /// Nothing: the run is over.
    Finished,
}

/// How loud a notice is; the executor maps it to a tracing level and decides nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NoticeLevel {
    /// Progress worth a line in the log.
    Info,
    /// Something the operator should know; the run goes on.
    Warn,
    /// The run fails because of it.
    Error,
}

/// Informational notices (log target `kvfold::repair`), FIFO.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RepairNotice {
    /// The fold has data but no cursor; it is repaired like an expiry first.
    UnanchoredFold,
    /// No cursor and the bucket already evicted; seeding from an artifact.
    EvictedBucketSeeding,
    /// No cursor, nothing armed, and the bucket already evicted: the re-list is
    /// incomplete for good.
    EvictedBucketNoRepair,
    /// The eviction memo is set; this fold never trusts the listing again.
    EvictionSeen,
    /// A retention poll failed (or the fold could not take the memo); retried at
    /// the next poll.
    RetentionPollFailed {
        /// What failed.
        error: String,
    },
    /// The cursor expired (at resume or mid-watch).
    CursorExpired {
        /// The cursor being repaired (none for a cursor-less repair).
        cursor: WatchCursor,
    },
    /// No repair armed: a full re-list; keys deleted during the gap may persist.
    ReListOnly,
    /// A relist repair was chosen.
    RelistPlanned,
    /// A restore repair was chosen.
    RestorePlanned,
    /// The listing is not the truth and the mode is `Relist`: the run fails.
    RelistRefused,
    /// A restore check failed: the run fails.
    RestoreRefused {
        /// The operator-facing reason.
        reason: String,
    },
    /// A checked artifact is handed to the fold (the executor adds its age from the
    /// wall clock).
    RestoreStarting {
        /// The artifact's cursor.
        cursor: WatchCursor,
        /// When the artifact was exported (Unix seconds).
        created_at_unix: u64,
        /// The floor read after the download, when known.
        first: Option<u64>,
    },
}

impl RepairNotice {
    /// The notice's level (docs/protocols/repair-machine.md, "Notices").
    pub fn level(&self) -> NoticeLevel {
        match self {
            RepairNotice::EvictionSeen | RepairNotice::RestoreStarting { .. } => NoticeLevel::Info,
            RepairNotice::UnanchoredFold
            | RepairNotice::EvictedBucketSeeding
            | RepairNotice::EvictedBucketNoRepair
            | RepairNotice::RetentionPollFailed { .. }
            | RepairNotice::CursorExpired { .. }
            | RepairNotice::ReListOnly
            | RepairNotice::RelistPlanned
            | RepairNotice::RestorePlanned => NoticeLevel::Warn,
            RepairNotice::RelistRefused | RepairNotice::RestoreRefused { .. } => NoticeLevel::Error,
        }
    }
}

/// An event the phase does not accept; the machine is unchanged. For an executor
/// this is a bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Unexpected {
    /// The phase the machine was in.
    pub phase: RepairPhase,
    /// The event's name.
    pub event: &'static str,
}

impl fmt::Display for Unexpected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "repair machine in phase {:?} does not accept {}",
            self.phase, self.event
        )
    }
}

impl std::error::Error for Unexpected {}
