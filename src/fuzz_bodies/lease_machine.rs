//! Fuzz body `lease_machine` (docs/verification.md, "Fuzz targets" and row 9;
//! docs/protocols/export-lease.md, "Tests"): rounds of the production `LeaseMachine` for
//! one holder, each built with the sighting the previous round left, fed a decoded sequence
//! of completions (create ok / exists / error; entry none / some / error; CAS ok / conflict
//! / error) that either answer the awaited command or arrive out of order, with clock
//! advances between rounds.
//!
//! Each completion is fed as the executor feeds it, `handle_at(event, clock)` with
//! the clocks read when it arrived: the monotonic clock moved forward 0..10 s
//! since the last reading, the wall clock by its own step (possibly backward);
//! now and then a monotonic reading older than the one the machine holds (to be
//! ignored); now and then plain `handle(event)` (no clock: judged with the clocks
//! last brought in). The oracle tracks the clock the machine must judge with: the
//! round's start clock, replaced by every clock an *accepted* event brings in
//! whose monotonic reading is not older than the held one. Time read within a
//! round carries over to the next round's start.
//!
//! Checked after every step: nothing panics; a rejected event leaves the machine
//! (its clocks included) equal to its clone from before; an accepted event queues
//! exactly one command; `Won` comes only right after a successful create or CAS
//! and carries this holder's record stamped with the round's **start** clock
//! (expiring at `now + ttl`, saturating), and the sighting it stores is first
//! seen at the start clock's `now`; an entry read is sighted and judged with the
//! judging clock (the sighting rule and `takeover_decision` at that clock); a CAS
//! comes only right after an entry was read, only when `takeover_decision` says
//! `TakeOver`, with `expected` = that entry's version and the start clock's
//! record, never while `lease_is_live(value, judging now_unix)` and never before
//! `first_seen + d + grace` on the judging monotonic clock unless the value is
//! empty (the rule restated here as an oracle); a round finishes exactly once and
//! queues nothing after `Finish`.

use super::input::Input;
use crate::kv::{KvEntry, KvError, VersionToken, WatchCursor};
use crate::protocol::lease::{
    LeaseClock, LeaseCommand, LeaseDecision, LeaseEvent, LeaseMachine, LeaseOutcome, LeaseRecord,
    LeaseSighting, completed_record, decode_lease_record, lease_is_live, lease_record, sight,
    takeover_decision,
};
use crate::protocol::time::Millis;

mod script;
#[cfg(test)]
mod seeds;

use script::*;

/// Rounds per input.
const MAX_ROUNDS: u8 = 8;
/// Steps per round.
const MAX_STEPS: u8 = 12;
/// Longest holder id, in bytes.
const HOLDER_LEN_MAX: u8 = 15;
/// Longest raw value, in bytes.
const RAW_VALUE_LEN_MAX: u8 = 64;
/// Monotonic advance per unit of the advance byte.
const ADVANCE_UNIT_MS: u64 = 250;
/// Monotonic advance (or, for a stale reading, age) per unit of a step's clock
/// byte: 0..10.2 s per step.
const STEP_UNIT_MS: u64 = 40;

/// Decodes `data` into a script and runs it; a broken property panics naming the
/// round, the step and the event.
pub fn lease_machine(data: &[u8]) {
    let script = Script::decode(data);
    if let Err(violation) = run(&script) {
        panic!("{violation}");
    }
}

// ===========================================================================
// The script: decoded from bytes, encodable for the seeds
// ===========================================================================

/// What a run did, for the seeds' log.
#[derive(Debug, Default)]
struct Summary {
    won: usize,
    lost: usize,
    failed: usize,
    cas: usize,
    rejected: usize,
    /// Accepted events fed with `handle_at`.
    timed: usize,
    /// Of those, the ones whose older monotonic reading was ignored.
    ignored: usize,
    /// Entries judged with clocks other than the round's start clocks.
    judged_late: usize,
}

/// The rule restated as an oracle (docs/protocols/export-lease.md, "One round"): when a CAS
/// over `value` may come at the earliest.
fn earliest_takeover(value: &[u8], first_seen: Millis, grace_ms: u64) -> Option<Millis> {
    if value.is_empty() {
        return None;
    }
    let duration_ms = decode_lease_record(value).map_or(0, |record| {
        record
            .expires_at_unix
            .saturating_sub(record.acquired_at_unix)
            .saturating_mul(1000)
    });
    Some(first_seen.plus_ms(duration_ms).plus_ms(grace_ms))
}

/// The kind of completion a command awaits.
fn awaited(command: &LeaseCommand) -> Option<Kind> {
    match command {
        LeaseCommand::Create { .. } => Some(Kind::Created),
        LeaseCommand::ReadEntry => Some(Kind::EntryRead),
        LeaseCommand::CasUpdate { .. } => Some(Kind::Updated),
        LeaseCommand::Finish(_) => None,
    }
}

fn kind_of(event: &LeaseEvent) -> Kind {
    match event {
        LeaseEvent::Created { .. } => Kind::Created,
        LeaseEvent::EntryRead { .. } => Kind::EntryRead,
        LeaseEvent::Updated { .. } => Kind::Updated,
    }
}

/// Runs every round; the first broken property is returned as text.
fn run(script: &Script) -> Result<Summary, String> {
    let holder = String::from_utf8_lossy(&script.holder).into_owned();
    let mut clock = LeaseClock {
        now_unix: script.now_unix,
        now: Millis(script.now_ms),
    };
    let mut stored = script
        .previous
        .as_ref()
        .map(|(version, first_seen)| LeaseSighting {
            revision: version.token(),
            first_seen: Millis(*first_seen),
        });
    let mut summary = Summary::default();
    for (index, round) in script.rounds.iter().enumerate() {
        if index > 0 {
            clock.now_unix = clock
                .now_unix
                .saturating_add_signed(i64::from(round.advance_unix_s));
            clock.now = clock
                .now
                .plus_ms(u64::from(round.advance_units) * ADVANCE_UNIT_MS);
        }
        let checked = RoundCheck::new(&holder, script, clock, stored.clone());
        (stored, clock) = checked
            .run(&round.steps, &mut summary)
            .map_err(|e| format!("round {index}: {e}"))?;
    }
    Ok(summary)
}

/// One round under check.
struct RoundCheck<'a> {
    holder: &'a str,
    ttl_secs: u64,
    grace_ms: u64,
    /// The clocks the round started with (`new`'s): they stamp the record and the
    /// sighting of a won revision.
    start: LeaseClock,
    /// The clocks the machine judges the next entry with: `start`, replaced by
    /// every clock an accepted event brought in that is not older (monotonic).
    judging: LeaseClock,
    /// The present: moved forward by every fresh reading.
    real: LeaseClock,
    previous: Option<LeaseSighting>,
    machine: LeaseMachine,
    expected_record: LeaseRecord,
}

impl<'a> RoundCheck<'a> {
    fn new(
        holder: &'a str,
        script: &Script,
        clock: LeaseClock,
        previous: Option<LeaseSighting>,
    ) -> Self {
        let machine = LeaseMachine::new(
            holder,
            script.ttl_secs,
            clock,
            previous.clone(),
            script.grace_ms,
        );
        let expected_record = LeaseRecord {
            holder_id: holder.to_string(),
            acquired_at_unix: clock.now_unix,
            expires_at_unix: clock.now_unix.saturating_add(script.ttl_secs),
            completed_cursor_hex: None,
            completed_at_unix: None,
        };
        Self {
            holder,
            ttl_secs: script.ttl_secs,
            grace_ms: script.grace_ms,
            start: clock,
            judging: clock,
            real: clock,
            previous,
            machine,
            expected_record,
        }
    }

    /// Drives the round; returns the sighting the executor stores for the next one
    /// and the clocks at the round's end.
    fn run(
        mut self,
        steps: &[Step],
        summary: &mut Summary,
    ) -> Result<(Option<LeaseSighting>, LeaseClock), String> {
        if lease_record(self.holder, self.start.now_unix, self.ttl_secs) != self.expected_record {
            return Err("lease_record does not stamp holder, now and now + ttl".into());
        }
        if self.machine.sighting() != self.previous.as_ref() {
            return Err("a new machine does not start from the stored sighting".into());
        }
        let first = self.machine.poll_command();
        let Some(LeaseCommand::Create { value }) = &first else {
            return Err(format!("a round must open with Create, got {first:?}"));
        };
        if decode_lease_record(value).as_ref() != Some(&self.expected_record) {
            return Err(format!(
                "Create proposes {:?}, not this holder's record at now + ttl",
                String::from_utf8_lossy(value)
            ));
        }
        let mut awaiting = first;
        let mut finishes = 0usize;
        for (index, step) in steps.iter().enumerate() {
            let waits_for = awaiting.as_ref().and_then(awaited);
            let event = step.event(waits_for, self.holder, self.start.now_unix);
            let reading = step.tick.reading(&mut self.real, self.judging);
            // The rule restated: a reading older (monotonic) than the held one is
            // ignored; an equal one replaces it (wall clock included).
            let judging = match reading {
                Some(clock) if clock.now >= self.judging.now => clock,
                _ => self.judging,
            };
            let before = self.machine.clone();
            let accepted = match reading {
                Some(clock) => self.machine.handle_at(event.clone(), clock),
                None => self.machine.handle(event.clone()),
            }
            .is_ok();
            let should_accept = waits_for == Some(kind_of(&event));
            let context = || {
                format!(
                    "step {index}: {event:?} at {reading:?} (judging {judging:?}, start {:?}) awaiting {awaiting:?}",
                    self.start
                )
            };
            if accepted != should_accept {
                return Err(format!(
                    "{}: accepted = {accepted}, but the awaited completion decides",
                    context()
                ));
            }
            if !accepted {
                summary.rejected += 1;
                if self.machine != before {
                    return Err(format!(
                        "{}: a rejected event changed the machine",
                        context()
                    ));
                }
                if self.machine.poll_command().is_some() {
                    return Err(format!("{}: a rejected event queued a command", context()));
                }
                continue;
            }
            if let Some(clock) = reading {
                summary.timed += 1;
                summary.ignored += usize::from(clock != judging);
            }
            if judging != self.start
                && matches!(
                    event,
                    LeaseEvent::EntryRead {
                        result: Ok(Some(_))
                    }
                )
            {
                summary.judged_late += 1;
            }
            self.judging = judging;
            let Some(command) = self.machine.poll_command() else {
                return Err(format!("{}: an accepted event queued nothing", context()));
            };
            if let Some(extra) = self.machine.poll_command() {
                return Err(format!(
                    "{}: a second command {extra:?} was queued",
                    context()
                ));
            }
            self.check_transition(&before, &event, &command)
                .map_err(|e| format!("{}: {e}", context()))?;
            match &command {
                LeaseCommand::Finish(outcome) => {
                    finishes += 1;
                    match outcome {
                        LeaseOutcome::Won { .. } => summary.won += 1,
                        LeaseOutcome::Lost => summary.lost += 1,
                        LeaseOutcome::Failed(_) => summary.failed += 1,
                    }
                }
                LeaseCommand::CasUpdate { .. } => summary.cas += 1,
                _ => {}
            }
            awaiting = Some(command);
        }
        let expected_finishes = usize::from(self.machine.is_done());
        if finishes != expected_finishes {
            return Err(format!(
                "{finishes} Finish commands in a round that is done = {}",
                self.machine.is_done()
            ));
        }
        if self.machine.poll_command().is_some() {
            return Err("a command is queued after the round's last step".into());
        }
        Ok((self.machine.sighting().cloned(), self.real))
    }

    /// The command `event` produced, against the table (docs/protocols/export-lease.md,
    /// "One round") and the oracle.
    fn check_transition(
        &self,
        before: &LeaseMachine,
        event: &LeaseEvent,
        command: &LeaseCommand,
    ) -> Result<(), String> {
        let won = |version: &VersionToken| -> Result<(), String> {
            let LeaseCommand::Finish(LeaseOutcome::Won { version: v, record }) = command else {
                return Err(format!(
                    "a successful write must finish Won, got {command:?}"
                ));
            };
            if v != version || record != &self.expected_record {
                return Err(format!("Won {v:?} {record:?} is not the write that landed"));
            }
            let sighting = LeaseSighting {
                revision: version.clone(),
                first_seen: self.start.now,
            };
            if self.machine.sighting() != Some(&sighting) {
                return Err(format!(
                    "after Won the stored sighting must be {sighting:?} (the start clock), got {:?}",
                    self.machine.sighting()
                ));
            }
            Ok(())
        };
        let finish = |expected: &LeaseOutcome| -> Result<(), String> {
            match command {
                LeaseCommand::Finish(outcome) if outcome == expected => Ok(()),
                _ => Err(format!("expected Finish({expected:?}), got {command:?}")),
            }
        };
        if !matches!(event, LeaseEvent::EntryRead { .. })
            && !matches!(command, LeaseCommand::Finish(LeaseOutcome::Won { .. }))
            && self.machine.sighting() != before.sighting()
        {
            return Err("only an entry read or a win may change the sighting".into());
        }
        if matches!(command, LeaseCommand::CasUpdate { .. })
            && !matches!(
                event,
                LeaseEvent::EntryRead {
                    result: Ok(Some(_))
                }
            )
        {
            return Err("a CAS only right after an entry was read".into());
        }
        match event {
            LeaseEvent::Created {
                result: Ok(version),
            }
            | LeaseEvent::Updated {
                result: Ok(version),
            } => won(version),
            LeaseEvent::Created {
                result: Err(KvError::AlreadyExists),
            } => match command {
                LeaseCommand::ReadEntry => Ok(()),
                _ => Err(format!(
                    "AlreadyExists must read the entry, got {command:?}"
                )),
            },
            LeaseEvent::Created { result: Err(e) } | LeaseEvent::EntryRead { result: Err(e) } => {
                finish(&LeaseOutcome::Failed(e.clone()))
            }
            LeaseEvent::EntryRead { result: Ok(None) } => finish(&LeaseOutcome::Lost),
            LeaseEvent::EntryRead {
                result: Ok(Some(entry)),
            } => self.check_judgement(entry, command),
            LeaseEvent::Updated {
                result:
                    Err(KvError::RevisionMismatch | KvError::AlreadyExists | KvError::KeyNotFound),
            } => finish(&LeaseOutcome::Lost),
            LeaseEvent::Updated { result: Err(e) } => finish(&LeaseOutcome::Failed(e.clone())),
        }
    }

    /// The judgement of a read entry, at the judging clock: the sighting, the
    /// decision, and the CAS (or the loss) that follows.
    fn check_judgement(&self, entry: &KvEntry, command: &LeaseCommand) -> Result<(), String> {
        let clock = self.judging;
        // The sighting rule restated: keep the first sighting of an unchanged revision.
        let first_seen = match &self.previous {
            Some(p) if p.revision == entry.version => p.first_seen,
            _ => clock.now,
        };
        let sighting = LeaseSighting {
            revision: entry.version.clone(),
            first_seen,
        };
        if sight(self.previous.as_ref(), &entry.version, clock.now) != sighting
            || self.machine.sighting() != Some(&sighting)
        {
            return Err(format!(
                "sighting {:?}, expected {sighting:?}",
                self.machine.sighting()
            ));
        }
        let decision = takeover_decision(&entry.value, clock, &sighting, self.grace_ms);
        if self.machine.decision() != Some(&decision) {
            return Err(format!(
                "decision {:?}, but takeover_decision says {decision:?}",
                self.machine.decision()
            ));
        }
        let live = lease_is_live(&entry.value, clock.now_unix);
        if live != matches!(decision, LeaseDecision::Live { .. }) {
            return Err(format!(
                "{decision:?} disagrees with lease_is_live = {live}"
            ));
        }
        match command {
            LeaseCommand::CasUpdate { value, expected } => {
                if decision != LeaseDecision::TakeOver {
                    return Err(format!("a CAS although the decision is {decision:?}"));
                }
                if expected != &entry.version {
                    return Err(format!(
                        "CAS expects {expected:?}, the entry read was {:?}",
                        entry.version
                    ));
                }
                if live {
                    return Err("a CAS over a value live by the wall clock".into());
                }
                if let Some(earliest) = earliest_takeover(&entry.value, first_seen, self.grace_ms)
                    && clock.now < earliest
                {
                    return Err(format!(
                        "a CAS at {:?}, before first_seen + d + grace = {earliest:?}",
                        clock.now
                    ));
                }
                if decode_lease_record(value).as_ref() != Some(&self.expected_record) {
                    return Err(format!(
                        "the CAS proposes {:?}, not this holder's record at now + ttl",
                        String::from_utf8_lossy(value)
                    ));
                }
                Ok(())
            }
            LeaseCommand::Finish(LeaseOutcome::Lost) if decision != LeaseDecision::TakeOver => {
                Ok(())
            }
            _ => Err(format!("decision {decision:?} led to {command:?}")),
        }
    }
}
