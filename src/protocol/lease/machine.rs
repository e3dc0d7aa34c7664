//! `LeaseMachine`: one `ExportLease::try_acquire` round (docs/protocols/export-lease.md,
//! "One round"): create, else read the entry and decide, else CAS over the observed
//! revision. No retry loop, no sleep: create wins, CAS decides races.

use std::collections::VecDeque;
use std::fmt;

use super::{
    LeaseClock, LeaseDecision, LeaseRecord, LeaseSighting, lease_record, sight, takeover_decision,
};
use crate::kv::{KvEntry, KvError, VersionToken};
use crate::protocol::time::Millis;

/// A completion of the last command.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LeaseEvent {
    /// `KvWriter::create` answered.
    Created {
        /// Its result.
        result: Result<VersionToken, KvError>,
    },
    /// `KvReader::entry` answered.
    EntryRead {
        /// Its result.
        result: Result<Option<KvEntry>, KvError>,
    },
    /// `KvWriter::update` answered.
    Updated {
        /// Its result.
        result: Result<VersionToken, KvError>,
    },
}

impl LeaseEvent {
    fn name(&self) -> &'static str {
        match self {
            LeaseEvent::Created { .. } => "Created",
            LeaseEvent::EntryRead { .. } => "EntryRead",
            LeaseEvent::Updated { .. } => "Updated",
        }
    }
}

/// What the executor must do next.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LeaseCommand {
    /// `KvWriter::create(key, value)`.
    Create {
        /// The record's compact JSON.
        value: Vec<u8>,
    },
    /// `KvReader::entry(key)` (sees tombstones).
    ReadEntry,
    /// `KvWriter::update(key, value, expected)`.
    CasUpdate {
        /// The record's compact JSON.
        value: Vec<u8>,
        /// The observed revision.
        expected: VersionToken,
    },
    /// The round is over.
    Finish(LeaseOutcome),
}

/// How a round ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LeaseOutcome {
    /// This process holds the round.
    Won {
        /// The lease key revision held.
        version: VersionToken,
        /// The record written.
        record: LeaseRecord,
    },
    /// Someone else holds it (or won the race).
    Lost,
    /// A store error.
    Failed(KvError),
}

/// An event the phase does not accept; the machine is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Unexpected {
    /// The phase.
    pub phase: &'static str,
    /// The event.
    pub event: &'static str,
}

impl fmt::Display for Unexpected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lease machine in phase {} does not accept {}",
            self.phase, self.event
        )
    }
}

impl std::error::Error for Unexpected {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Phase {
    Creating,
    Reading,
    Updating,
    Done,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Creating => "Creating",
            Phase::Reading => "Reading",
            Phase::Updating => "Updating",
            Phase::Done => "Done",
        }
    }
}

/// One acquisition round.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseMachine {
    phase: Phase,
    record: LeaseRecord,
    /// The clocks read when the round started: the record's times and the
    /// sighting of a won revision.
    clock: LeaseClock,
    /// The clocks the next read is judged with: `clock`, or what
    /// [`handle_at`](LeaseMachine::handle_at) brought in with the event.
    judged_at: LeaseClock,
    previous: Option<LeaseSighting>,
    sighting: Option<LeaseSighting>,
    grace_ms: u64,
    decision: Option<LeaseDecision>,
    commands: VecDeque<LeaseCommand>,
}

impl LeaseMachine {
    /// A round for `holder_id` with a lease of `ttl_secs`, read at `clock`, with this
    /// process's previous sighting; queues `Create`.
    pub fn new(
        holder_id: &str,
        ttl_secs: u64,
        clock: LeaseClock,
        previous: Option<LeaseSighting>,
        grace_ms: u64,
    ) -> Self {
        let record = lease_record(holder_id, clock.now_unix, ttl_secs);
        let mut commands = VecDeque::new();
        commands.push_back(LeaseCommand::Create {
            value: record.to_json(),
        });
        Self {
            phase: Phase::Creating,
            record,
            clock,
            judged_at: clock,
            sighting: previous.clone(),
            previous,
            grace_ms,
            decision: None,
            commands,
        }
    }

    /// The next command.
    pub fn poll_command(&mut self) -> Option<LeaseCommand> {
        self.commands.pop_front()
    }

    /// The sighting to keep for the next round.
    pub fn sighting(&self) -> Option<&LeaseSighting> {
        self.sighting.as_ref()
    }

    /// The monotonic reading the round started at: the first sighting of a revision
    /// this round wins, and the `acquired` a completion of that round is judged with
    /// ([`completion_outcome`](super::completion_outcome)).
    pub fn acquired(&self) -> Millis {
        self.clock.now
    }

    /// The takeover decision of this round, when one was made (for logs).
    pub fn decision(&self) -> Option<&LeaseDecision> {
        self.decision.as_ref()
    }

    /// True once the round finished.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    fn finish(&mut self, outcome: LeaseOutcome) {
        self.commands.push_back(LeaseCommand::Finish(outcome));
        self.phase = Phase::Done;
    }

    fn won(&mut self, version: VersionToken) {
        self.sighting = Some(LeaseSighting {
            revision: version.clone(),
            first_seen: self.clock.now,
        });
        let record = self.record.clone();
        self.finish(LeaseOutcome::Won { version, record });
    }

    /// Feeds one completion with the clocks read when it arrived (an addition to
    /// docs/protocols/export-lease.md, "One round").
    ///
    /// An entry is sighted and judged at `clock`, not at the round's start: a round
    /// that stalled between its clock read and the read of the entry (a slow store
    /// call, a process pause) would otherwise date its first sighting of a revision
    /// before that revision was written and take it over early. Found by the
    /// `lease` model (docs/models/lease.md); the executor always feeds events this
    /// way. A clock whose monotonic reading is older than the one already held is
    /// ignored (the monotonic clock only moves forward). The record written and
    /// the sighting of a won revision keep the round's start clock. An event the
    /// phase does not accept is rejected and the machine, clocks included, is
    /// unchanged.
    pub fn handle_at(&mut self, event: LeaseEvent, clock: LeaseClock) -> Result<(), Unexpected> {
        let before = self.judged_at;
        if clock.now >= self.judged_at.now {
            self.judged_at = clock;
        }
        let handled = self.handle(event);
        if handled.is_err() {
            self.judged_at = before;
        }
        handled
    }

    /// Feeds one completion, judged with the clocks last brought in (the round's
    /// start clock unless [`handle_at`](LeaseMachine::handle_at) moved them); an
    /// event the phase does not accept is rejected unchanged.
    pub fn handle(&mut self, event: LeaseEvent) -> Result<(), Unexpected> {
        let accepted = matches!(
            (self.phase, &event),
            (Phase::Creating, LeaseEvent::Created { .. })
                | (Phase::Reading, LeaseEvent::EntryRead { .. })
                | (Phase::Updating, LeaseEvent::Updated { .. })
        );
        if !accepted {
            return Err(Unexpected {
                phase: self.phase.name(),
                event: event.name(),
            });
        }
        match event {
            LeaseEvent::Created {
                result: Ok(version),
            } => self.won(version),
            LeaseEvent::Created {
                result: Err(KvError::AlreadyExists),
            } => {
                self.commands.push_back(LeaseCommand::ReadEntry);
                self.phase = Phase::Reading;
            }
            LeaseEvent::Created { result: Err(e) } => self.finish(LeaseOutcome::Failed(e)),
            LeaseEvent::EntryRead { result: Ok(None) } => self.finish(LeaseOutcome::Lost),
            LeaseEvent::EntryRead {
                result: Ok(Some(entry)),
            } => {
                let sighting = sight(self.previous.as_ref(), &entry.version, self.judged_at.now);
                let decision =
                    takeover_decision(&entry.value, self.judged_at, &sighting, self.grace_ms);
                self.sighting = Some(sighting);
                self.decision = Some(decision.clone());
                if decision == LeaseDecision::TakeOver {
                    self.commands.push_back(LeaseCommand::CasUpdate {
                        value: self.record.to_json(),
                        expected: entry.version,
                    });
                    self.phase = Phase::Updating;
                } else {
                    self.finish(LeaseOutcome::Lost);
                }
            }
            LeaseEvent::EntryRead { result: Err(e) } => self.finish(LeaseOutcome::Failed(e)),
            LeaseEvent::Updated {
                result: Ok(version),
            } => self.won(version),
            LeaseEvent::Updated {
                result:
                    Err(KvError::RevisionMismatch | KvError::AlreadyExists | KvError::KeyNotFound),
            } => self.finish(LeaseOutcome::Lost),
            LeaseEvent::Updated { result: Err(e) } => self.finish(LeaseOutcome::Failed(e)),
        }
        Ok(())
    }
}
