//! The `lease` model's executor: what `ExportLease` does around the production
//! `LeaseMachine` (docs/protocols/export-lease.md, "The executor (`ExportLease`)"). It
//! reads a replica's clocks, builds one machine per round with the replica's stored
//! sighting, performs each command against the register (one command per model step), feeds
//! the result back, stores the sighting after `Finish`, and performs a holder's `complete`
//! (the production completion kernel's write and outcome) and `abandon`. It records what
//! the properties judge and hosts the mutation wrappers (inputs and store calls altered
//! model-side, never the kernels).

use kvfold::protocol::lease::{
    CompletionOutcome, LeaseClock, LeaseCommand, LeaseDecision, LeaseEvent, LeaseMachine,
    LeaseOutcome, LeaseRecord, LeaseSighting, completion_outcome, completion_write,
    decode_lease_record, lease_record,
};
use kvfold::protocol::time::Millis;
use kvfold::{KvEntry, KvError, VersionToken, WatchCursor};

use super::register::{Grant, Origin, Stored};
use super::{LeaseModel, LeaseState, Mutation};

/// Real time 0 on every wall clock without an offset (2026-01-01T00:00:00Z).
pub const BASE_UNIX: u64 = 1_767_225_600;

/// The cursor every completion records (its value decides nothing here).
const EXPORTED_REVISION: u64 = 42;

/// What the runs have shown so far (history bits for the properties).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Seen(u16);

impl Seen {
    /// A takeover overwrote a record whose lease was live in real time.
    pub const PREMATURE_TAKEOVER: Seen = Seen(1);
    /// A round was won while another round's lease was live in real time.
    pub const TWO_LIVE_HOLDERS: Seen = Seen(1 << 1);
    /// A takeover overwrote a revision other than the one it judged.
    pub const TAKEOVER_OF_UNJUDGED_REVISION: Seen = Seen(1 << 2);
    /// A drive-loop breach: an event rejected, a command missing or queued after
    /// `Finish`, an outcome the store's answers do not explain.
    pub const CONTRACT_BROKEN: Seen = Seen(1 << 3);
    /// Witness: a record (of another round) was taken over.
    pub const TAKEOVER: Seen = Seen(1 << 4);
    /// Witness: a crashed holder's record was taken over.
    pub const CRASHED_ROUND_TAKEN_OVER: Seen = Seen(1 << 5);
    /// Witness: an abandon tombstone was taken over before the abandoned lease
    /// would have expired.
    pub const ABANDON_TAKEN_OVER_AT_ONCE: Seen = Seen(1 << 6);
    /// Witness: junk at the key was taken over.
    pub const JUNK_TAKEN_OVER: Seen = Seen(1 << 7);
    /// Witness: a completion landed.
    pub const COMPLETED: Seen = Seen(1 << 8);
    /// Witness: a completion found its round taken over and was skipped.
    pub const COMPLETION_SKIPPED: Seen = Seen(1 << 9);
    /// Witness: a record expired by wall clock was left alone (`Settling`).
    pub const SETTLING: Seen = Seen(1 << 10);
    /// Witness: two contenders judged the same revision and the CAS decided.
    pub const CAS_RACE_LOST: Seen = Seen(1 << 11);
    /// Witness: two replicas held unresolved guards at once (a paused holder
    /// exporting after its lease moved on: the duplicate export the lease permits).
    pub const DUPLICATE_EXPORT: Seen = Seen(1 << 12);

    /// Whether any bit of `bits` is set.
    pub fn intersects(self, bits: Seen) -> bool {
        self.0 & bits.0 != 0
    }

    pub(super) fn insert(&mut self, bits: Seen) {
        self.0 |= bits.0;
    }
}

/// A round in flight: the production machine and the command being performed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Round {
    /// The production machine.
    pub machine: LeaseMachine,
    /// The command whose completion the next `Perform` step delivers.
    pub pending: LeaseCommand,
    /// Real time of the round's clock read.
    pub started_s: u64,
    /// Whether the round has stalled (a round stalls at most once: the bound is
    /// on a round's whole delay).
    pub stalled: bool,
}

/// A won round the replica has not resolved yet (`LeaseGuard`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Guard {
    /// The lease key revision held.
    pub version: VersionToken,
    /// The record written.
    pub record: LeaseRecord,
    /// The round's monotonic reading (the guard's `acquired`, from
    /// `LeaseMachine::acquired`).
    pub acquired: Millis,
    /// The round in real time.
    pub grant: Grant,
    /// Real time the round was won (the export starts).
    pub won_s: u64,
}

/// One replica: an `ExportLease` in one process, plus that process's clocks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    /// Wall clock minus real time (seconds), fixed for the run.
    pub wall_offset_s: u64,
    /// Monotonic milliseconds per real second, fixed for the run.
    pub rate_ms_per_s: u64,
    /// The incarnation: a crash restarts the process as the next one.
    pub life: u8,
    /// The `ExportLease`'s stored sighting (lost in a crash).
    pub sighting: Option<LeaseSighting>,
    /// The `try_acquire` in flight.
    pub round: Option<Round>,
    /// The unresolved guard (the export running).
    pub guard: Option<Guard>,
    /// Real time of this process's last round.
    pub last_round_s: Option<u64>,
    /// A pause ends at this real time.
    pub paused_until_s: Option<u64>,
}

impl Node {
    /// A fresh process with these clocks.
    pub fn new(wall_offset_s: u64, rate_ms_per_s: u64) -> Self {
        Self {
            wall_offset_s,
            rate_ms_per_s,
            life: 0,
            sighting: None,
            round: None,
            guard: None,
            last_round_s: None,
            paused_until_s: None,
        }
    }

    /// The holder id of replica `index`.
    pub fn holder_id(index: usize) -> String {
        format!("node-{index}")
    }

    /// The replica's clocks at real time `now_s` (`LeaseClockSource`): the
    /// monotonic clock counts from the process start at its own rate (only
    /// differences within one incarnation are ever compared).
    pub fn clock(&self, now_s: u64) -> LeaseClock {
        LeaseClock {
            now_unix: BASE_UNIX + now_s + self.wall_offset_s,
            now: Millis(now_s * self.rate_ms_per_s),
        }
    }

    /// The process died and restarted: guard, round and sighting are gone.
    pub fn crash(&mut self) {
        *self = Self {
            life: self.life + 1,
            ..Self::new(self.wall_offset_s, self.rate_ms_per_s)
        };
    }

    /// Doing nothing for now (paused).
    pub fn is_paused(&self) -> bool {
        self.paused_until_s.is_some()
    }
}

impl LeaseModel {
    /// The clock the replica's round reads; the "wall clock alone" mutant reads a
    /// monotonic time past every `takeover_at`, so only `lease_is_live` decides.
    fn round_clock(&self, node: &Node, now_s: u64) -> LeaseClock {
        let clock = node.clock(now_s);
        match self.mutation {
            Mutation::WallClockOnly => LeaseClock {
                now: Millis(u64::MAX),
                ..clock
            },
            _ => clock,
        }
    }

    /// `try_acquire` step 1–3: read the clocks, build the machine with the stored
    /// sighting, and perform its first command.
    pub(super) fn start_round(&self, state: &mut LeaseState, index: usize) {
        let now_s = state.now_s;
        let node = &mut state.nodes[index];
        let clock = self.round_clock(node, now_s);
        let mut machine = LeaseMachine::new(
            &Node::holder_id(index),
            self.bounds.ttl_s,
            clock,
            node.sighting.clone(),
            self.bounds.grace_ms,
        );
        node.last_round_s = Some(now_s);
        let Some(pending) = machine.poll_command() else {
            state.seen.insert(Seen::CONTRACT_BROKEN);
            return;
        };
        node.round = Some(Round {
            machine,
            pending,
            started_s: now_s,
            stalled: false,
        });
        self.perform(state, index);
    }

    /// Performs the pending command of the replica's round against the register,
    /// feeds the completion, and takes the next command (or the `Finish`).
    pub(super) fn perform(&self, state: &mut LeaseState, index: usize) {
        let now_s = state.now_s;
        let Some(mut round) = state.nodes[index].round.take() else {
            return;
        };
        let grant = Grant {
            node: index as u8,
            life: state.nodes[index].life,
            acquired_s: round.started_s,
        };
        let mut wrote: Option<(VersionToken, Option<Stored>, VersionToken)> = None;
        let event = match std::mem::replace(&mut round.pending, LeaseCommand::ReadEntry) {
            LeaseCommand::Create { value } => {
                let result = state.register.create(value, Origin::Record(grant));
                LeaseEvent::Created { result }
            }
            LeaseCommand::ReadEntry => LeaseEvent::EntryRead {
                result: Ok(state.register.entry().map(|entry| self.read(entry))),
            },
            LeaseCommand::CasUpdate { value, expected } => {
                let latest = state.register.revision;
                let result = match self.mutation {
                    Mutation::TakeOverWithoutCas => {
                        Ok(state.register.put(value, Origin::Record(grant)))
                    }
                    _ => state
                        .register
                        .update(value, &expected, Origin::Record(grant)),
                };
                if expected.as_u64() != Some(latest) && result.is_ok() {
                    state.seen.insert(Seen::TAKEOVER_OF_UNJUDGED_REVISION);
                }
                if result.is_err() {
                    state.seen.insert(Seen::CAS_RACE_LOST);
                }
                let result = result.map(|(version, previous)| {
                    wrote = Some((version.clone(), previous, expected));
                    version
                });
                LeaseEvent::Updated { result }
            }
            LeaseCommand::Finish(_) => {
                state.seen.insert(Seen::CONTRACT_BROKEN);
                return;
            }
        };
        let created = match &event {
            LeaseEvent::Created { result: Ok(v) } => Some(v.clone()),
            _ => None,
        };
        // try_acquire step 3: each answer is judged with the clocks read when it
        // arrived (the judge-at-round-start mutant keeps the round's start clock).
        let arrived = self.round_clock(&state.nodes[index], now_s);
        let handled = match self.mutation {
            Mutation::JudgeAtRoundStart => round.machine.handle(event),
            _ => round.machine.handle_at(event, arrived),
        };
        if handled.is_err() {
            state.seen.insert(Seen::CONTRACT_BROKEN);
            return;
        }
        if matches!(
            round.machine.decision(),
            Some(LeaseDecision::Settling { .. })
        ) {
            state.seen.insert(Seen::SETTLING);
        }
        let Some(next) = round.machine.poll_command() else {
            state.seen.insert(Seen::CONTRACT_BROKEN);
            return;
        };
        let LeaseCommand::Finish(outcome) = next else {
            round.pending = next;
            state.nodes[index].round = Some(round);
            return;
        };
        if round.machine.poll_command().is_some() {
            state.seen.insert(Seen::CONTRACT_BROKEN);
        }
        // try_acquire step 4: keep the sighting for the next round.
        state.nodes[index].sighting = round.machine.sighting().cloned();
        match outcome {
            LeaseOutcome::Won { version, record } => {
                let just_written = created
                    .clone()
                    .or_else(|| wrote.as_ref().map(|(v, _, _)| v.clone()));
                if just_written.as_ref() != Some(&version) {
                    state.seen.insert(Seen::CONTRACT_BROKEN);
                }
                if let Some((_, previous, _)) = &wrote {
                    self.judge_takeover(state, previous.as_ref());
                }
                self.judge_new_holder(state, grant);
                state.nodes[index].guard = Some(Guard {
                    version,
                    record,
                    acquired: round.machine.acquired(),
                    grant,
                    won_s: now_s,
                });
            }
            LeaseOutcome::Lost => {
                if created.is_some() || wrote.is_some() {
                    state.seen.insert(Seen::CONTRACT_BROKEN);
                }
            }
            LeaseOutcome::Failed(_) => state.seen.insert(Seen::CONTRACT_BROKEN),
        }
    }

    /// `reader.entry(key)` as the executor hands it in; the "junk is live forever"
    /// mutant replaces an undecodable non-empty value with a record that expires at
    /// `u64::MAX`.
    fn read(&self, entry: KvEntry) -> KvEntry {
        let undecodable = !entry.value.is_empty() && decode_lease_record(&entry.value).is_none();
        if self.mutation == Mutation::JunkLiveForever && undecodable {
            return KvEntry {
                value: lease_record("junk", 0, u64::MAX).to_json(),
                ..entry
            };
        }
        entry
    }

    /// Judges the value a takeover replaced.
    fn judge_takeover(&self, state: &mut LeaseState, previous: Option<&Stored>) {
        let Some(previous) = previous else {
            return;
        };
        let ttl_s = self.bounds.ttl_s;
        match previous.origin {
            Origin::Record(old) | Origin::Completed(old) => {
                state.seen.insert(Seen::TAKEOVER);
                if state.now_s < old.acquired_s + ttl_s {
                    state.seen.insert(Seen::PREMATURE_TAKEOVER);
                }
                if !state.writer_alive(old) {
                    state.seen.insert(Seen::CRASHED_ROUND_TAKEN_OVER);
                }
            }
            Origin::Tombstone { abandoned } => {
                if state.now_s < abandoned.acquired_s + ttl_s {
                    state.seen.insert(Seen::ABANDON_TAKEN_OVER_AT_ONCE);
                }
            }
            Origin::Junk => state.seen.insert(Seen::JUNK_TAKEN_OVER),
        }
    }

    /// Judges a newly won round against every round still live in real time, and
    /// records it.
    fn judge_new_holder(&self, state: &mut LeaseState, grant: Grant) {
        let ttl_s = self.bounds.ttl_s;
        if state
            .holders
            .iter()
            .any(|h| *h != grant && state.now_s < h.acquired_s + ttl_s)
        {
            state.seen.insert(Seen::TWO_LIVE_HOLDERS);
        }
        if state.nodes.iter().any(|n| n.guard.is_some()) {
            state.seen.insert(Seen::DUPLICATE_EXPORT);
        }
        if state.now_s < grant.acquired_s + ttl_s {
            state.holders.push(grant);
            state.holders.sort_unstable();
        }
    }

    /// `LeaseGuard::complete`: performs the kernel's `completion_write` against the
    /// register and acts on `completion_outcome` (a landed completion's sighting is
    /// stored, an overrun is only logged). The "retry an overran completion" mutant
    /// answers a `RevisionMismatch` by re-reading the key and writing the completed
    /// record over its latest revision.
    pub(super) fn complete(&self, state: &mut LeaseState, index: usize) {
        let now_s = state.now_s;
        let Some(guard) = state.nodes[index].guard.take() else {
            return;
        };
        let wall_unix = state.nodes[index].clock(now_s).now_unix;
        let cursor = WatchCursor::from_u64(EXPORTED_REVISION);
        let write = completion_write(&guard.record, &guard.version, &cursor, wall_unix);
        let origin = Origin::Completed(guard.grant);
        let mut result = state
            .register
            .update(write.value.clone(), &write.expected, origin);
        if self.mutation == Mutation::RetryOverranCompletion
            && matches!(result, Err(KvError::RevisionMismatch))
        {
            let latest = VersionToken::from_u64(state.register.revision);
            result = state.register.update(write.value, &latest, origin);
        }
        match completion_outcome(result.map(|(version, _)| version), guard.acquired) {
            CompletionOutcome::Recorded { sighting } => {
                state.seen.insert(Seen::COMPLETED);
                state.nodes[index].sighting = Some(sighting);
            }
            CompletionOutcome::Overran => state.seen.insert(Seen::COMPLETION_SKIPPED),
            // The register answers an update only with a revision or a mismatch.
            CompletionOutcome::Failed(_) => state.seen.insert(Seen::CONTRACT_BROKEN),
        }
    }

    /// `LeaseGuard::abandon`: the CAS tombstone over the guard's version (a failure
    /// is only logged); the round is released either way.
    pub(super) fn abandon(&self, state: &mut LeaseState, index: usize) {
        let Some(guard) = state.nodes[index].guard.take() else {
            return;
        };
        state.abandons += 1;
        // A failure means the round moved on; the executor only warns.
        let _ = state
            .register
            .delete_with_version(&guard.version, guard.grant);
        state.holders.retain(|h| *h != guard.grant);
    }
}
