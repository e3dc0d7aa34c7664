//! The `ResumeGuard` machine (docs/protocols/resume-guard.md, "The machine").

use std::collections::VecDeque;

use super::{
    ExpiryCause, GuardCommand, GuardEvent, GuardMode, ResumeCursor, StreamFacts, Unexpected,
    plan_resume, recheck_resume,
};
use crate::kv::KvError;
use crate::protocol::nats::is_cursor_expired_text;
use crate::protocol::time::Millis;
use crate::protocol::{resume_start_sequence, resume_window_ok};

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
    /// A guard in `phase` with nothing vouched for and nothing queued.
    fn blank(phase: Phase, mode: GuardMode, judging: GuardMode, now: Millis) -> Self {
        Self {
            phase,
            scope_mode: mode,
            judging,
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

    /// A guard for a resumed watch from `cursor`; queues the pre-check `ProbeStream`.
    pub fn resumed(cursor: ResumeCursor, mode: GuardMode, now: Millis) -> Self {
        let mut guard = Self::blank(Phase::PreCheck, mode, mode, now);
        guard.cursor = Some(cursor);
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
        let mut guard = Self::blank(Phase::SyncProbe, mode, GuardMode::Sparse, now);
        guard.syncs = true;
        guard.commands.push_back(GuardCommand::ProbeStream);
        guard
    }

    /// A guard for a state-sync watch without the snapshot check: it asks for its
    /// last-per-subject consumer at once (`CreateSnapshotConsumer`, row G26; no sync
    /// point, so the count in `SnapshotCreated` is not used), then streams with no
    /// frontier yet, judging deliveries `Sparse`; `mode` (the scope's) applies
    /// after a reconnect. A failed creation ends the watch (G20).
    pub fn fresh(mode: GuardMode, now: Millis) -> Self {
        let mut guard = Self::blank(Phase::SyncCreating, mode, GuardMode::Sparse, now);
        guard
            .commands
            .push_back(GuardCommand::CreateSnapshotConsumer);
        guard
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
                if is_cursor_expired_text(&error_text) {
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
            // G8 (during the snapshot phase it spends one of the snapshot's deliveries)
            (Phase::Streaming, GuardEvent::Delivered { revision: None, .. }) => {
                if let Some(sync) = self.sync.as_mut() {
                    sync.left = sync.left.saturating_sub(1);
                }
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
