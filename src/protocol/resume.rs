//! Resume safety: the retention classification (`LogLimits`), the resume pre- and
//! post-checks (`plan_resume`, `recheck_resume`) and the `ResumeGuard` machine that
//! every backend's watch drives. Pure and sans-IO: facts and time come in as data.

use std::collections::VecDeque;
use std::fmt;

use super::time::Millis;
use super::{gap_holds_no_eviction, resume_start_sequence, resume_window_ok};
use crate::kv::{KvError, WatchCursor};

/// A bucket created more than this long after a cursor's write time cannot hold
/// the cursor's message (it was recreated); the slack absorbs server clock skew.
pub const RECREATE_SLACK_MS: u64 = 60_000;

/// With no traffic, a `Dense` guard asks for a stream probe this often.
pub const FLOOR_PROBE_IDLE_MS: u64 = 30_000;

/// How many times a state-sync guard ([`ResumeGuard::syncing`]) replaces a snapshot
/// consumer that answered from behind its sync point before it ends the watch
/// with a `WatchError` (an addition; reconnects do not count).
pub const MAX_STALE_RESYNCS: u32 = 16;

/// An unfiltered state-sync snapshot that delivers nothing for this long while it
/// still owes revisions up to its sync point is taken for a consumer stuck on a
/// replica behind the stream, and replaced (an addition; counts as a stale resync).
pub const SYNC_STALL_MS: u64 = 5_000;

/// The limits of a bucket's log that decide whether current values can vanish.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LogLimits {
    /// Age limit in ms; 0 = none.
    pub max_age_ms: u64,
    /// Per-message TTLs are allowed.
    pub allow_msg_ttl: bool,
    /// Discard policy is Old.
    pub discard_old: bool,
    /// Byte limit; `<= 0` = unlimited.
    pub max_bytes: i64,
    /// Message limit; `<= 0` = unlimited.
    pub max_msgs: i64,
}

impl LogLimits {
    /// True when the limits can remove a key's latest value while it is live:
    /// an age limit, per-message TTL, or discard-old with a byte or message limit.
    pub fn evicts_current_values(&self) -> bool {
        self.max_age_ms > 0
            || self.allow_msg_ttl
            || (self.discard_old && (self.max_bytes > 0 || self.max_msgs > 0))
    }

    /// True when age is the only thing that can remove a current value.
    pub fn evicts_only_by_age(&self) -> bool {
        self.max_age_ms > 0
            && !self.allow_msg_ttl
            && !(self.discard_old && (self.max_bytes > 0 || self.max_msgs > 0))
    }
}

/// What a probe of the stream (bucket log) reports.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StreamFacts {
    /// Oldest retained sequence (revision).
    pub first_sequence: u64,
    /// Newest sequence ever stored.
    pub last_sequence: u64,
    /// Stream creation time (server clock, Unix ms), if reported.
    pub created_ms: Option<u64>,
    /// Server clock at the probe (Unix ms), if reported.
    pub server_now_ms: Option<u64>,
    /// The stream's limits.
    pub limits: LogLimits,
}

/// A resume position: the revision after which delivery continues, and its write time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResumeCursor {
    /// The last applied revision.
    pub revision: u64,
    /// Its write time (server Unix ms), when known.
    pub written_ms: Option<u64>,
}

impl ResumeCursor {
    /// `None` when the cursor has no u64 revision or revision 0: such a cursor means "full watch".
    pub fn of(cursor: &WatchCursor) -> Option<Self> {
        let revision = cursor.as_u64().filter(|&r| r != 0)?;
        Some(Self {
            revision,
            written_ms: cursor.written_ms(),
        })
    }
}

/// Why a resume point is not usable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExpiryCause {
    /// The cursor's successor is below the stream's first sequence.
    BelowFloor {
        /// The resume revision.
        revision: u64,
        /// The stream's first sequence.
        first_sequence: u64,
    },
    /// The cursor is above the stream's last sequence (lost tail or recreated stream).
    AheadOfStream {
        /// The resume revision.
        revision: u64,
        /// The stream's last sequence.
        last_sequence: u64,
    },
    /// The stream was created more than the slack after the cursor's write.
    Recreated {
        /// Stream creation time (Unix ms).
        created_ms: u64,
        /// The cursor's write time (Unix ms).
        written_ms: u64,
    },
    /// The server refused the start position.
    ServerRefused,
    /// While streaming, the floor passed the frontier's successor.
    FloorPassed {
        /// The last revision forwarded.
        frontier: u64,
        /// The stream's first sequence.
        first_sequence: u64,
    },
}

impl fmt::Display for ExpiryCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpiryCause::BelowFloor {
                revision,
                first_sequence,
            } => write!(
                f,
                "cursor {revision} is below the retention floor (first revision {first_sequence})"
            ),
            ExpiryCause::AheadOfStream {
                revision,
                last_sequence,
            } => write!(
                f,
                "cursor {revision} is ahead of the bucket (last revision {last_sequence})"
            ),
            ExpiryCause::Recreated {
                created_ms,
                written_ms,
            } => write!(
                f,
                "bucket created at {created_ms} ms, after the cursor's write at {written_ms} ms: it was recreated"
            ),
            ExpiryCause::ServerRefused => write!(f, "the server refused the start position"),
            ExpiryCause::FloorPassed {
                frontier,
                first_sequence,
            } => write!(
                f,
                "retention floor {first_sequence} passed the watch frontier {frontier}"
            ),
        }
    }
}

/// The pre-check before a resumed consumer is created (docs/protocols/resume-guard.md,
/// "Kernels"): `Ok(e)` = resume after revision `e`.
pub fn plan_resume(cursor: &ResumeCursor, facts: &StreamFacts) -> Result<u64, ExpiryCause> {
    let revision = cursor.revision;
    if revision > facts.last_sequence {
        return Err(ExpiryCause::AheadOfStream {
            revision,
            last_sequence: facts.last_sequence,
        });
    }
    if let (Some(created_ms), Some(written_ms)) = (facts.created_ms, cursor.written_ms)
        && created_ms > written_ms.saturating_add(RECREATE_SLACK_MS)
    {
        return Err(ExpiryCause::Recreated {
            created_ms,
            written_ms,
        });
    }
    if resume_window_ok(revision, facts.first_sequence) {
        return Ok(revision);
    }
    if let (Some(written_ms), Some(now_ms)) = (cursor.written_ms, facts.server_now_ms)
        && gap_holds_no_eviction(
            facts.limits.evicts_only_by_age(),
            facts.limits.max_age_ms,
            now_ms.saturating_sub(written_ms),
        )
    {
        return Ok(facts.first_sequence.saturating_sub(1).max(revision));
    }
    Err(ExpiryCause::BelowFloor {
        revision,
        first_sequence: facts.first_sequence,
    })
}

/// The post-check after the consumer exists (eviction may race its creation).
pub fn recheck_resume(effective: u64, facts: &StreamFacts) -> Result<(), ExpiryCause> {
    if effective > facts.last_sequence {
        return Err(ExpiryCause::AheadOfStream {
            revision: effective,
            last_sequence: facts.last_sequence,
        });
    }
    if !resume_window_ok(effective, facts.first_sequence) {
        return Err(ExpiryCause::BelowFloor {
            revision: effective,
            first_sequence: facts.first_sequence,
        });
    }
    Ok(())
}

/// How a guard judges gaps in delivered revisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GuardMode {
    /// Unfiltered (All-scope) watch: every revision is delivered, so a gap is evidence.
    Dense,
    /// Filtered watch: gaps are expected and cannot be judged.
    Sparse,
}

/// How a watch over `prefixes` is guarded (an addition): [`GuardMode::Dense`]
/// when the scope is unfiltered (some prefix is `""`, so the consumer delivers
/// every revision of the bucket and a gap is evidence of eviction), otherwise
/// [`GuardMode::Sparse`]. Both backends take the mode from here, so
/// `watch_prefix_from("")` is guarded exactly like `watch_all_from`.
pub fn guard_mode(prefixes: &[&str]) -> GuardMode {
    if prefixes.contains(&"") {
        GuardMode::Dense
    } else {
        GuardMode::Sparse
    }
}

/// An input to the [`ResumeGuard`]; every event carries the caller's `now`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GuardEvent {
    /// A stream probe answered.
    StreamProbed {
        /// Caller's time.
        now: Millis,
        /// The stream's facts.
        facts: StreamFacts,
    },
    /// A stream probe failed.
    ProbeFailed {
        /// Caller's time.
        now: Millis,
        /// What failed.
        error: KvError,
    },
    /// The consumer of the last `CreateConsumer` exists.
    ConsumerCreated {
        /// Caller's time.
        now: Millis,
    },
    /// The last-per-subject consumer of the last `CreateSnapshotConsumer` exists
    /// (an addition).
    SnapshotCreated {
        /// Caller's time.
        now: Millis,
        /// How many deliveries its snapshot holds, as the consumer reported at
        /// creation (NATS: `num_pending` of the creation reply).
        pending: u64,
    },
    /// Creating the consumer failed with this server text.
    ConsumerFailed {
        /// Caller's time.
        now: Millis,
        /// The error text.
        error_text: String,
    },
    /// A delivery arrived (revision and write time from its version, when known).
    Delivered {
        /// Caller's time.
        now: Millis,
        /// The delivered revision, when readable.
        revision: Option<u64>,
        /// Its write time (Unix ms), when known.
        written_ms: Option<u64>,
    },
    /// The client (re)connected since the executor last checked.
    Reconnected {
        /// Caller's time.
        now: Millis,
    },
    /// The consumer can no longer guarantee complete, ordered delivery (lost
    /// deliveries, missed heartbeats, an ended subscription). The message it
    /// came with, if any, is not handed in (rows G24, G25).
    ConsumerFault {
        /// Caller's time.
        now: Millis,
        /// The client (re)connected since the executor last reported it: the
        /// fault may be what the reconnect left behind.
        reconnected: bool,
        /// What the executor saw.
        error_text: String,
    },
    /// Time passed.
    Tick {
        /// Caller's time.
        now: Millis,
    },
}

impl GuardEvent {
    fn name(&self) -> &'static str {
        match self {
            GuardEvent::StreamProbed { .. } => "StreamProbed",
            GuardEvent::ProbeFailed { .. } => "ProbeFailed",
            GuardEvent::ConsumerCreated { .. } => "ConsumerCreated",
            GuardEvent::SnapshotCreated { .. } => "SnapshotCreated",
            GuardEvent::ConsumerFailed { .. } => "ConsumerFailed",
            GuardEvent::Delivered { .. } => "Delivered",
            GuardEvent::Reconnected { .. } => "Reconnected",
            GuardEvent::ConsumerFault { .. } => "ConsumerFault",
            GuardEvent::Tick { .. } => "Tick",
        }
    }

    fn now(&self) -> Millis {
        match self {
            GuardEvent::StreamProbed { now, .. }
            | GuardEvent::ProbeFailed { now, .. }
            | GuardEvent::ConsumerCreated { now }
            | GuardEvent::SnapshotCreated { now, .. }
            | GuardEvent::ConsumerFailed { now, .. }
            | GuardEvent::Delivered { now, .. }
            | GuardEvent::Reconnected { now }
            | GuardEvent::ConsumerFault { now, .. }
            | GuardEvent::Tick { now } => *now,
        }
    }
}

/// What the executor must do next for the guard.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GuardCommand {
    /// Read fresh stream facts; feed `StreamProbed` or `ProbeFailed`.
    ProbeStream,
    /// Create the watch's consumer starting at this sequence; feed `ConsumerCreated` or `ConsumerFailed`.
    CreateConsumer {
        /// First sequence to deliver.
        start_sequence: u64,
    },
    /// Create the watch's last-per-subject consumer (the latest entry of every key
    /// in scope, in revision order, then live changes); feed `SnapshotCreated` or
    /// `ConsumerFailed`. Only a [`ResumeGuard::syncing`] guard asks for it (an addition).
    CreateSnapshotConsumer,
    /// Drop the consumer and any delivery not yet handed in.
    DropConsumer,
    /// Pass the last delivered entry on.
    Forward,
    /// Drop the last delivered entry: it is at or below the frontier.
    Skip {
        /// The dropped revision.
        revision: u64,
    },
    /// End the watch with `KvError::CursorExpired`.
    Expired(ExpiryCause),
    /// End the watch with this error.
    Fail(KvError),
}

/// An event the guard's current phase does not accept; the guard is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Unexpected {
    /// The phase the guard was in.
    pub phase: &'static str,
    /// The event it was fed.
    pub event: &'static str,
}

impl fmt::Display for Unexpected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "resume guard in phase {} does not accept {}",
            self.phase, self.event
        )
    }
}

impl std::error::Error for Unexpected {}

/// The snapshot phase of a [`ResumeGuard::syncing`] guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SyncWindow {
    /// The stream's last sequence before the consumer was created: every delivery at
    /// or below it must come from the consumer's snapshot.
    point: u64,
    /// Deliveries of the snapshot not yet handed in (the consumer's own count).
    left: u64,
}

/// A revision the guard has vouched for, with its write time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Mark {
    revision: u64,
    written_ms: Option<u64>,
}

/// Phases, named for what they wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Phase {
    /// Waiting for the probe that fixes a state-sync snapshot's sync point.
    SyncProbe,
    /// Waiting for the last-per-subject consumer to exist.
    SyncCreating,
    /// Waiting for the pre-check probe.
    PreCheck,
    /// Waiting for the consumer to exist.
    Creating,
    /// Waiting for the post-check probe.
    PostCheck,
    /// Waiting for deliveries.
    Streaming,
    /// Waiting for the probe that judges a held, gapped delivery.
    AwaitingFloor,
    /// Waiting for the no-traffic probe.
    IdleProbe,
    /// Finished; accepts nothing.
    Done,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::SyncProbe => "SyncProbe",
            Phase::SyncCreating => "SyncCreating",
            Phase::PreCheck => "PreCheck",
            Phase::Creating => "Creating",
            Phase::PostCheck => "PostCheck",
            Phase::Streaming => "Streaming",
            Phase::AwaitingFloor => "AwaitingFloor",
            Phase::IdleProbe => "IdleProbe",
            Phase::Done => "Done",
        }
    }
}

/// The resume sequence and ordering filter of one watch call
/// (docs/protocols/resume-guard.md, "The machine"): pre-check, consumer creation,
/// post-check, then per-delivery judgement with the floor guard in `Dense` mode, and a
/// re-resume after a client reconnect.
///
/// Drive it by feeding [`GuardEvent`]s to [`handle`](ResumeGuard::handle) and
/// performing every [`GuardCommand`] from [`poll_command`](ResumeGuard::poll_command)
/// in order; sleep until [`poll_timeout`](ResumeGuard::poll_timeout) and feed `Tick`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResumeGuard {
    phase: Phase,
    /// The scope's mode: what a resume (initial or after a reconnect) judges with.
    scope_mode: GuardMode,
    /// How deliveries are judged right now.
    judging: GuardMode,
    /// The cursor of the pending or last pre-check.
    cursor: Option<ResumeCursor>,
    /// The planned resume revision between pre- and post-check.
    effective: u64,
    /// The highest revision vouched for (forwarded or resumed after).
    frontier: Option<Mark>,
    /// A gapped delivery waiting for the floor probe.
    held: Option<Mark>,
    /// Idle probe deadline (Dense, Streaming).
    deadline: Option<Millis>,
    /// True for a [`ResumeGuard::syncing`] guard: a reconnect before the snapshot
    /// is complete re-syncs instead of resuming from the frontier.
    syncs: bool,
    /// The sync point fixed by the last `SyncProbe`.
    sync_point: u64,
    /// The snapshot phase, while it lasts.
    sync: Option<SyncWindow>,
    /// Snapshot consumers replaced because they answered from behind the sync point.
    stale_resyncs: u32,
    /// When an open unfiltered snapshot window counts as stalled.
    sync_deadline: Option<Millis>,
    now: Millis,
    commands: VecDeque<GuardCommand>,
}

impl ResumeGuard {
    /// A guard for a resumed watch from `cursor`; queues the pre-check `ProbeStream`.
    pub fn resumed(cursor: ResumeCursor, mode: GuardMode, now: Millis) -> Self {
        let mut guard = Self {
            phase: Phase::PreCheck,
            scope_mode: mode,
            judging: mode,
            cursor: Some(cursor),
            effective: 0,
            frontier: None,
            held: None,
            deadline: None,
            syncs: false,
            sync_point: 0,
            sync: None,
            stale_resyncs: 0,
            sync_deadline: None,
            now,
            commands: VecDeque::new(),
        };
        guard.commands.push_back(GuardCommand::ProbeStream);
        guard
    }

    /// A guard for a state-sync watch that checks its snapshot (an addition; the
    /// NATS executor uses it, docs/nats-backend.md "State-sync snapshots", rows G18–G23): it probes the stream
    /// first (the sync point: its last sequence), then asks for a last-per-subject
    /// consumer (`CreateSnapshotConsumer`). Every delivery at or below the sync point
    /// must come from that consumer's snapshot; one that arrives after the snapshot
    /// count is exhausted shows a consumer answering from a replica that had not yet
    /// stored the stream up to the sync point, and replaying history: the guard drops
    /// it and syncs again, skipping what it already forwarded. A reconnect before the
    /// snapshot is complete syncs again the same way; after it, the watch resumes
    /// from its frontier as a resumed watch does (G16). Deliveries are judged `Sparse`.
    pub fn syncing(mode: GuardMode, now: Millis) -> Self {
        let mut guard = Self::fresh(mode, now);
        guard.syncs = true;
        guard.phase = Phase::SyncProbe;
        guard.commands.push_back(GuardCommand::ProbeStream);
        guard
    }

    /// A guard for a state-sync watch: streaming at once, no frontier yet,
    /// deliveries judged `Sparse`; `mode` (the scope's) applies after a reconnect.
    pub fn fresh(mode: GuardMode, now: Millis) -> Self {
        Self {
            phase: Phase::Streaming,
            scope_mode: mode,
            judging: GuardMode::Sparse,
            cursor: None,
            effective: 0,
            frontier: None,
            held: None,
            deadline: None,
            syncs: false,
            sync_point: 0,
            sync: None,
            stale_resyncs: 0,
            sync_deadline: None,
            now,
            commands: VecDeque::new(),
        }
    }

    /// The highest revision the guard has vouched for.
    pub fn frontier(&self) -> Option<u64> {
        self.frontier.map(|m| m.revision)
    }

    /// True while the guard waits for deliveries (the only phase that accepts
    /// `Delivered`, `Reconnected` and `ConsumerFault`).
    pub fn is_streaming(&self) -> bool {
        self.phase == Phase::Streaming
    }

    /// True while a [`syncing`](ResumeGuard::syncing) guard's snapshot is incomplete.
    pub fn is_syncing(&self) -> bool {
        matches!(self.phase, Phase::SyncProbe | Phase::SyncCreating) || self.sync.is_some()
    }

    /// True once the guard has ended the watch.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The next command to perform, in order.
    pub fn poll_command(&mut self) -> Option<GuardCommand> {
        self.commands.pop_front()
    }

    /// The idle probe deadline (only while streaming in `Dense` mode).
    pub fn poll_timeout(&self) -> Option<Millis> {
        if self.phase != Phase::Streaming {
            return None;
        }
        if self.sync.is_some() {
            return self.sync_deadline;
        }
        if self.judging == GuardMode::Dense {
            self.deadline
        } else {
            None
        }
    }

    /// Restarts the stall timer of an open unfiltered snapshot window.
    fn arm_sync_stall(&mut self) {
        self.sync_deadline = (self.sync.is_some() && self.scope_mode == GuardMode::Dense)
            .then(|| self.now.plus_ms(SYNC_STALL_MS));
    }

    fn unexpected(&self, event: &GuardEvent) -> Unexpected {
        Unexpected {
            phase: self.phase.name(),
            event: event.name(),
        }
    }

    fn finish(&mut self, command: GuardCommand) {
        self.commands.push_back(command);
        self.phase = Phase::Done;
        self.deadline = None;
        self.held = None;
    }

    fn arm_idle(&mut self) {
        if self.judging == GuardMode::Dense {
            self.deadline = Some(self.now.plus_ms(FLOOR_PROBE_IDLE_MS));
        }
    }

    /// G21 for an unfiltered (`Dense`) scope: its snapshot ends with the stream's
    /// last message, so a snapshot count spent below the sync point shows a replica
    /// behind the stream at once, before it delivers any of the missing messages
    /// (a catching-up replica may not deliver them for a long time).
    fn check_spent_snapshot(&mut self) {
        let spent_short = self.scope_mode == GuardMode::Dense
            && self
                .sync
                .is_some_and(|w| w.left == 0 && self.frontier.map_or(0, |m| m.revision) < w.point);
        if spent_short {
            self.stale_snapshot();
        }
    }

    /// A snapshot consumer answered from behind the sync point: sync again, or end
    /// the watch once [`MAX_STALE_RESYNCS`] replacements were spent.
    fn stale_snapshot(&mut self) {
        let point = self.sync.map_or(self.sync_point, |w| w.point);
        if self.stale_resyncs >= MAX_STALE_RESYNCS {
            self.commands.push_back(GuardCommand::DropConsumer);
            self.finish(GuardCommand::Fail(KvError::WatchError(format!(
                "state-sync snapshot: {} consumers in a row answered from a replica behind revision {point}",
                self.stale_resyncs + 1
            ))));
        } else {
            self.stale_resyncs += 1;
            self.resync();
        }
    }

    /// Drops the consumer and syncs again from a fresh sync point (G21, G22).
    fn resync(&mut self) {
        self.commands.push_back(GuardCommand::DropConsumer);
        self.sync = None;
        self.sync_deadline = None;
        self.held = None;
        self.deadline = None;
        self.commands.push_back(GuardCommand::ProbeStream);
        self.phase = Phase::SyncProbe;
    }

    /// The client reconnected while streaming. G22: a syncing guard whose snapshot
    /// is incomplete (or that has no frontier) syncs again. G16 / G23: with a
    /// frontier, drop the consumer (and the delivery in hand) and re-resume from
    /// it. G17: without one, keep the consumer (a replay from the start loses
    /// nothing).
    fn reconnected(&mut self) {
        if self.syncs && (self.sync.is_some() || self.frontier.is_none()) {
            self.resync();
        } else if let Some(frontier) = self.frontier {
            self.commands.push_back(GuardCommand::DropConsumer);
            self.cursor = Some(ResumeCursor {
                revision: frontier.revision,
                written_ms: frontier.written_ms,
            });
            self.judging = self.scope_mode;
            self.deadline = None;
            self.commands.push_back(GuardCommand::ProbeStream);
            self.phase = Phase::PreCheck;
        }
    }

    /// The G9 / G11 floor checks against the frontier.
    fn floor_check(&self, facts: &StreamFacts) -> Result<(), ExpiryCause> {
        let frontier = self.frontier.map_or(0, |m| m.revision);
        if !resume_window_ok(frontier, facts.first_sequence) {
            return Err(ExpiryCause::FloorPassed {
                frontier,
                first_sequence: facts.first_sequence,
            });
        }
        if frontier > facts.last_sequence {
            return Err(ExpiryCause::AheadOfStream {
                revision: frontier,
                last_sequence: facts.last_sequence,
            });
        }
        Ok(())
    }

    /// Feeds one event. An event the phase does not accept returns `Err` and
    /// leaves the guard unchanged.
    pub fn handle(&mut self, event: GuardEvent) -> Result<(), Unexpected> {
        let accepted = match (&self.phase, &event) {
            (Phase::Done, _) => false,
            (_, GuardEvent::Tick { .. }) => true,
            (
                Phase::SyncProbe
                | Phase::PreCheck
                | Phase::PostCheck
                | Phase::AwaitingFloor
                | Phase::IdleProbe,
                GuardEvent::StreamProbed { .. } | GuardEvent::ProbeFailed { .. },
            ) => true,
            (
                Phase::Creating,
                GuardEvent::ConsumerCreated { .. } | GuardEvent::ConsumerFailed { .. },
            ) => true,
            (
                Phase::SyncCreating,
                GuardEvent::SnapshotCreated { .. } | GuardEvent::ConsumerFailed { .. },
            ) => true,
            (
                Phase::Streaming,
                GuardEvent::Delivered { .. }
                | GuardEvent::Reconnected { .. }
                | GuardEvent::ConsumerFault { .. },
            ) => true,
            _ => false,
        };
        if !accepted {
            return Err(self.unexpected(&event));
        }
        self.now = self.now.max(event.now());
        match (self.phase, event) {
            // G18
            (Phase::SyncProbe, GuardEvent::StreamProbed { facts, .. }) => {
                // An empty stream (everything purged) has nothing to sync.
                self.sync_point = if facts.first_sequence > facts.last_sequence {
                    0
                } else {
                    facts.last_sequence
                };
                self.commands
                    .push_back(GuardCommand::CreateSnapshotConsumer);
                self.phase = Phase::SyncCreating;
            }
            // G19
            (Phase::SyncCreating, GuardEvent::SnapshotCreated { pending, .. }) => {
                let vouched = self.frontier.map_or(0, |m| m.revision);
                self.sync = (self.sync_point > vouched).then_some(SyncWindow {
                    point: self.sync_point,
                    left: pending,
                });
                self.phase = Phase::Streaming;
                self.arm_sync_stall();
                self.check_spent_snapshot();
            }
            // G20
            (Phase::SyncCreating, GuardEvent::ConsumerFailed { error_text, .. }) => {
                self.finish(GuardCommand::Fail(KvError::WatchError(error_text)));
            }
            // G21 / G5 / G7 during the snapshot phase
            (
                Phase::Streaming,
                GuardEvent::Delivered {
                    revision: Some(r),
                    written_ms,
                    ..
                },
            ) if self.sync.is_some() => {
                let Some(mut sync) = self.sync else {
                    return Ok(());
                };
                let in_snapshot = sync.left > 0;
                sync.left = sync.left.saturating_sub(1);
                self.sync = Some(sync);
                match self.frontier {
                    Some(f) if r <= f.revision => {
                        self.commands.push_back(GuardCommand::Skip { revision: r });
                    }
                    _ if !in_snapshot && r <= sync.point => {
                        // A consumer past its snapshot delivers a revision the stream
                        // held before the consumer existed: its replica was behind
                        // the sync point and is replaying history.
                        self.stale_snapshot();
                    }
                    _ => {
                        self.frontier = Some(Mark {
                            revision: r,
                            written_ms,
                        });
                        if r >= sync.point {
                            self.sync = None;
                        }
                        self.commands.push_back(GuardCommand::Forward);
                    }
                }
                if self.phase == Phase::Streaming {
                    self.arm_sync_stall();
                    self.check_spent_snapshot();
                }
            }
            // G8 during the snapshot phase
            (Phase::Streaming, GuardEvent::Delivered { revision: None, .. })
                if self.sync.is_some() =>
            {
                if let Some(sync) = self.sync.as_mut() {
                    sync.left = sync.left.saturating_sub(1);
                }
                self.commands.push_back(GuardCommand::Forward);
            }
            // G22 / G23 / G16 / G17
            (Phase::Streaming, GuardEvent::Reconnected { .. }) => self.reconnected(),
            // G24 / G25
            (
                Phase::Streaming,
                GuardEvent::ConsumerFault {
                    reconnected,
                    error_text,
                    ..
                },
            ) => {
                if reconnected {
                    self.reconnected();
                }
                if self.phase == Phase::Streaming {
                    // G25: no reconnect, or one that keeps the consumer (G17): the
                    // fault is the consumer's own, and nothing it delivered after
                    // the fault can be trusted.
                    self.finish(GuardCommand::Fail(KvError::WatchError(error_text)));
                }
                // G24: the reconnect dropped the faulty consumer and its delivery in
                // hand (`DropConsumer`) and re-resumes or re-syncs: the new
                // consumer delivers that message again.
            }
            // G1
            (Phase::PreCheck, GuardEvent::StreamProbed { facts, .. }) => {
                let Some(cursor) = self.cursor else {
                    debug_assert!(false, "PreCheck is entered only with a cursor");
                    self.finish(GuardCommand::Fail(KvError::WatchError(
                        "resume guard has no cursor".to_string(),
                    )));
                    return Ok(());
                };
                match plan_resume(&cursor, &facts) {
                    Err(cause) => self.finish(GuardCommand::Expired(cause)),
                    Ok(effective) => match resume_start_sequence(effective) {
                        None => self.finish(GuardCommand::Fail(KvError::WatchError(
                            "resume revision is u64::MAX".to_string(),
                        ))),
                        Some(start_sequence) => {
                            self.effective = effective;
                            self.commands
                                .push_back(GuardCommand::CreateConsumer { start_sequence });
                            self.phase = Phase::Creating;
                        }
                    },
                }
            }
            // G2
            (Phase::Creating, GuardEvent::ConsumerCreated { .. }) => {
                self.commands.push_back(GuardCommand::ProbeStream);
                self.phase = Phase::PostCheck;
            }
            // G3
            (Phase::Creating, GuardEvent::ConsumerFailed { error_text, .. }) => {
                if super::nats::is_cursor_expired_text(&error_text) {
                    self.finish(GuardCommand::Expired(ExpiryCause::ServerRefused));
                } else {
                    self.finish(GuardCommand::Fail(KvError::WatchError(error_text)));
                }
            }
            // G4
            (Phase::PostCheck, GuardEvent::StreamProbed { facts, .. }) => {
                match recheck_resume(self.effective, &facts) {
                    Err(cause) => self.finish(GuardCommand::Expired(cause)),
                    Ok(()) => {
                        let written_ms = self
                            .cursor
                            .filter(|c| c.revision == self.effective)
                            .and_then(|c| c.written_ms);
                        self.frontier = Some(Mark {
                            revision: self.effective,
                            written_ms,
                        });
                        self.phase = Phase::Streaming;
                        self.arm_idle();
                    }
                }
            }
            // G12
            (
                Phase::SyncProbe
                | Phase::PreCheck
                | Phase::PostCheck
                | Phase::AwaitingFloor
                | Phase::IdleProbe,
                GuardEvent::ProbeFailed { error, .. },
            ) => self.finish(GuardCommand::Fail(error)),
            (
                Phase::Streaming,
                GuardEvent::Delivered {
                    revision: Some(r),
                    written_ms,
                    ..
                },
            ) => {
                let delivered = Mark {
                    revision: r,
                    written_ms,
                };
                match self.frontier {
                    // G5
                    Some(f) if r <= f.revision => {
                        self.commands.push_back(GuardCommand::Skip { revision: r });
                    }
                    // G6
                    Some(f)
                        if self.judging == GuardMode::Dense && r > f.revision.saturating_add(1) =>
                    {
                        self.held = Some(delivered);
                        self.commands.push_back(GuardCommand::ProbeStream);
                        self.phase = Phase::AwaitingFloor;
                    }
                    // G7
                    _ => {
                        self.frontier = Some(delivered);
                        self.commands.push_back(GuardCommand::Forward);
                        self.arm_idle();
                    }
                }
            }
            // G8
            (Phase::Streaming, GuardEvent::Delivered { revision: None, .. }) => {
                self.commands.push_back(GuardCommand::Forward);
            }
            // G9
            (Phase::AwaitingFloor, GuardEvent::StreamProbed { facts, .. }) => {
                match self.floor_check(&facts) {
                    Err(cause) => self.finish(GuardCommand::Expired(cause)),
                    Ok(()) => {
                        self.frontier = self.held.take();
                        self.commands.push_back(GuardCommand::Forward);
                        self.phase = Phase::Streaming;
                        self.arm_idle();
                    }
                }
            }
            // G11
            (Phase::IdleProbe, GuardEvent::StreamProbed { facts, .. }) => {
                match self.floor_check(&facts) {
                    Err(cause) => self.finish(GuardCommand::Expired(cause)),
                    Ok(()) => {
                        self.phase = Phase::Streaming;
                        self.arm_idle();
                    }
                }
            }
            // G21: an open unfiltered snapshot window that went silent
            (Phase::Streaming, GuardEvent::Tick { .. })
                if self.sync.is_some() && self.sync_deadline.is_some_and(|d| self.now >= d) =>
            {
                self.stale_snapshot();
            }
            // G10 / G13
            (phase, GuardEvent::Tick { .. }) => {
                // Judged on the clamped `now` (docs/architecture.md, "Kernels and
                // machines"): a tick stamped before a time the guard has already seen is as
                // late as that time.
                let now = self.now;
                let due = phase == Phase::Streaming
                    && self.judging == GuardMode::Dense
                    && self.deadline.is_some_and(|d| now >= d);
                if due {
                    self.commands.push_back(GuardCommand::ProbeStream);
                    self.phase = Phase::IdleProbe;
                }
            }
            (_, event) => {
                // Every accepted pair is matched above.
                debug_assert!(false, "accepted event {} has no transition", event.name());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "resume_tests/mod.rs"]
mod tests;
