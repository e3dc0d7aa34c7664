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

/// A lease version as the fuzzer picks it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Version {
    /// Revision `n` (0..8): a small palette, so revisions repeat across rounds.
    Small(u8),
    /// Raw version bytes (0..=10; an 8-byte value is a revision too).
    Raw(Vec<u8>),
}

impl Version {
    fn decode(input: &mut Input<'_>) -> Self {
        let tag = input.byte();
        if tag & 0x80 == 0 {
            Version::Small(tag & 0x07)
        } else {
            let len = usize::from(tag & 0x0f).min(VersionToken::MAX_LEN);
            Version::Raw(input.bytes(len).to_vec())
        }
    }

    #[cfg(test)]
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Version::Small(n) => out.push(n & 0x07),
            Version::Raw(bytes) => {
                out.push(0x80 | bytes.len() as u8);
                out.extend_from_slice(bytes);
            }
        }
    }

    fn token(&self) -> VersionToken {
        match self {
            Version::Small(n) => VersionToken::from_u64(u64::from(*n)),
            Version::Raw(bytes) => VersionToken::from_raw(bytes).unwrap_or_default(),
        }
    }
}

/// The value an entry read returns, relative to the round's clocks.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    /// The abandon tombstone.
    Empty,
    /// A record acquired `age_s` before `now_unix` and expiring `expires_delta_s`
    /// around it, by this holder or another, completed or not.
    Around {
        ours: bool,
        completed: bool,
        age_s: u8,
        expires_delta_s: i8,
    },
    /// A record with arbitrary times (saturation, `expires < acquired`).
    Record { acquired: u64, expires: u64 },
    /// Arbitrary bytes (junk, or whatever JSON the fuzzer builds).
    Raw(Vec<u8>),
    /// A JSON array holding a record's fields.
    Array,
    /// An object without `expires_at_unix`.
    MissingField,
    /// An object whose `expires_at_unix` is a string.
    WrongType,
    /// A record with an unknown field, expiring `expires_delta_s` around `now_unix`.
    Extra { expires_delta_s: i8 },
}

impl Value {
    fn decode(input: &mut Input<'_>) -> Self {
        match input.byte() % 8 {
            0 => Value::Empty,
            1 => {
                let flags = input.byte();
                Value::Around {
                    ours: flags & 1 != 0,
                    completed: flags & 2 != 0,
                    age_s: input.byte(),
                    expires_delta_s: input.byte() as i8,
                }
            }
            2 => Value::Record {
                acquired: input.number(),
                expires: input.number(),
            },
            3 => {
                let len = usize::from(input.byte() % (RAW_VALUE_LEN_MAX + 1));
                Value::Raw(input.bytes(len).to_vec())
            }
            4 => Value::Array,
            5 => Value::MissingField,
            6 => Value::WrongType,
            _ => Value::Extra {
                expires_delta_s: input.byte() as i8,
            },
        }
    }

    #[cfg(test)]
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Empty => out.push(0),
            Value::Around {
                ours,
                completed,
                age_s,
                expires_delta_s,
            } => {
                out.push(1);
                out.push(u8::from(*ours) | (u8::from(*completed) << 1));
                out.push(*age_s);
                out.push(*expires_delta_s as u8);
            }
            Value::Record { acquired, expires } => {
                out.push(2);
                encode_number(*acquired, out);
                encode_number(*expires, out);
            }
            Value::Raw(bytes) => {
                out.push(3);
                out.push(bytes.len() as u8);
                out.extend_from_slice(bytes);
            }
            Value::Array => out.push(4),
            Value::MissingField => out.push(5),
            Value::WrongType => out.push(6),
            Value::Extra { expires_delta_s } => {
                out.push(7);
                out.push(*expires_delta_s as u8);
            }
        }
    }

    /// The bytes, for a round of `holder` at `now_unix`.
    fn bytes(&self, holder: &str, now_unix: u64) -> Vec<u8> {
        let around = |delta: i8| now_unix.saturating_add_signed(i64::from(delta));
        match self {
            Value::Empty => Vec::new(),
            Value::Around {
                ours,
                completed,
                age_s,
                expires_delta_s,
            } => {
                let record = LeaseRecord {
                    holder_id: if *ours { holder.to_string() } else { "other".to_string() },
                    acquired_at_unix: now_unix.saturating_sub(u64::from(*age_s)),
                    expires_at_unix: around(*expires_delta_s),
                    completed_cursor_hex: None,
                    completed_at_unix: None,
                };
                if *completed {
                    completed_record(&record, &WatchCursor::from_u64(42), now_unix).to_json()
                } else {
                    record.to_json()
                }
            }
            Value::Record { acquired, expires } => LeaseRecord {
                holder_id: "other".to_string(),
                acquired_at_unix: *acquired,
                expires_at_unix: *expires,
                completed_cursor_hex: None,
                completed_at_unix: None,
            }
            .to_json(),
            Value::Raw(bytes) => bytes.clone(),
            Value::Array => format!(r#"["other",{now_unix},{}]"#, around(10)).into_bytes(),
            Value::MissingField => {
                format!(r#"{{"holder_id":"other","acquired_at_unix":{now_unix}}}"#).into_bytes()
            }
            Value::WrongType => format!(
                r#"{{"holder_id":"other","acquired_at_unix":{now_unix},"expires_at_unix":"{}"}}"#,
                around(10)
            )
            .into_bytes(),
            Value::Extra { expires_delta_s } => format!(
                r#"{{"future":[1,{{"a":null}}],"holder_id":"other","acquired_at_unix":{now_unix},"expires_at_unix":{},"completed_at_unix":null}}"#,
                around(*expires_delta_s)
            )
            .into_bytes(),
        }
    }
}

/// Which event a step feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The completion of the command the machine awaits (none after `Finish`).
    Follow,
    /// `Created`, whatever the machine awaits.
    Created,
    /// `EntryRead`, whatever the machine awaits.
    EntryRead,
    /// `Updated`, whatever the machine awaits.
    Updated,
}

/// How a step feeds its event: which clocks, if any, come with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tick {
    /// `handle(event)`: no clocks (judged with the clocks last brought in).
    Plain,
    /// `handle_at(event, clock)` with the clocks read when the answer arrived: the
    /// monotonic clock `advance_units × STEP_UNIT_MS` past the last reading (0: the
    /// same reading), the wall clock `wall_s` seconds past it (negative: set back).
    Fresh { advance_units: u8, wall_s: i8 },
    /// `handle_at(event, clock)` with a monotonic reading `1 + back_units ×
    /// STEP_UNIT_MS` ms older than the one the machine holds (to be ignored) and a
    /// wall clock `wall_s` seconds around the present one.
    Stale { back_units: u8, wall_s: i8 },
}

impl Tick {
    /// Decodes the clock bytes for `mode` (the step head's high nibble): 0 plain,
    /// 13..=15 stale, anything else fresh.
    fn decode(mode: u8, input: &mut Input<'_>) -> Self {
        match mode {
            0 => Tick::Plain,
            13.. => Tick::Stale {
                back_units: input.byte(),
                wall_s: input.byte() as i8,
            },
            _ => Tick::Fresh {
                advance_units: input.byte(),
                wall_s: input.byte() as i8,
            },
        }
    }

    /// The head's high nibble (canonical).
    #[cfg(test)]
    fn mode(&self) -> u8 {
        match self {
            Tick::Plain => 0,
            Tick::Fresh { .. } => 1,
            Tick::Stale { .. } => 15,
        }
    }

    #[cfg(test)]
    fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Tick::Plain => {}
            Tick::Fresh {
                advance_units: units,
                wall_s,
            }
            | Tick::Stale {
                back_units: units,
                wall_s,
            } => {
                out.push(units);
                out.push(wall_s as u8);
            }
        }
    }

    /// The clocks this step brings in (`None`: plain `handle`), given the present
    /// `real` clocks (moved forward by a fresh reading) and the `held` ones.
    fn reading(&self, real: &mut LeaseClock, held: LeaseClock) -> Option<LeaseClock> {
        match *self {
            Tick::Plain => None,
            Tick::Fresh {
                advance_units,
                wall_s,
            } => {
                real.now = real.now.plus_ms(u64::from(advance_units) * STEP_UNIT_MS);
                real.now_unix = real.now_unix.saturating_add_signed(i64::from(wall_s));
                Some(*real)
            }
            Tick::Stale { back_units, wall_s } => Some(LeaseClock {
                now_unix: real.now_unix.saturating_add_signed(i64::from(wall_s)),
                now: Millis(
                    held.now
                        .0
                        .saturating_sub(1 + u64::from(back_units) * STEP_UNIT_MS),
                ),
            }),
        }
    }
}

/// One completion: every field is decoded, the kind decides which are used.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Step {
    kind: Kind,
    /// 0: success (`Ok(v)`, `Ok(None)` for a read); 1: the expected failure
    /// (`AlreadyExists`; `Ok(Some(entry))`; a conflict); 2: another error.
    choice: u8,
    version: Version,
    value: Value,
    /// Picks the conflict or the error.
    error: u8,
    /// The clocks fed with the event.
    tick: Tick,
}

impl Step {
    /// Head byte: bits 0–1 the kind, bits 2–3 the choice (mod 3), bits 4–7 the
    /// tick's mode; then the version, the value, the error byte and the tick's
    /// bytes (none for a plain step, so heads below 16 read as before ticks).
    fn decode(input: &mut Input<'_>) -> Self {
        let head = input.byte();
        let kind = match head & 3 {
            0 => Kind::Follow,
            1 => Kind::Created,
            2 => Kind::EntryRead,
            _ => Kind::Updated,
        };
        Step {
            kind,
            choice: ((head >> 2) & 3) % 3,
            version: Version::decode(input),
            value: Value::decode(input),
            error: input.byte(),
            tick: Tick::decode(head >> 4, input),
        }
    }

    #[cfg(test)]
    fn encode(&self, out: &mut Vec<u8>) {
        let kind = match self.kind {
            Kind::Follow => 0,
            Kind::Created => 1,
            Kind::EntryRead => 2,
            Kind::Updated => 3,
        };
        out.push(kind | ((self.choice % 3) << 2) | (self.tick.mode() << 4));
        self.version.encode(out);
        self.value.encode(out);
        out.push(self.error);
        self.tick.encode(out);
    }

    fn error(&self) -> KvError {
        match self.error % 5 {
            0 => KvError::Timeout,
            1 => KvError::OperationFailed("injected".to_string()),
            2 => KvError::NotConnected,
            3 => KvError::SerializationError("injected".to_string()),
            _ => KvError::WatchError("injected".to_string()),
        }
    }

    fn conflict(&self) -> KvError {
        match self.error % 3 {
            0 => KvError::RevisionMismatch,
            1 => KvError::AlreadyExists,
            _ => KvError::KeyNotFound,
        }
    }

    /// The event for a machine awaiting `awaited` (`None` after `Finish`).
    fn event(&self, awaited: Option<Kind>, holder: &str, now_unix: u64) -> LeaseEvent {
        let kind = match self.kind {
            Kind::Follow => awaited.unwrap_or(Kind::Created),
            other => other,
        };
        let version = self.version.token();
        match (kind, self.choice) {
            (Kind::Created, 0) => LeaseEvent::Created {
                result: Ok(version),
            },
            (Kind::Created, 1) => LeaseEvent::Created {
                result: Err(KvError::AlreadyExists),
            },
            (Kind::Created, _) => LeaseEvent::Created {
                result: Err(self.error()),
            },
            (Kind::EntryRead, 0) => LeaseEvent::EntryRead { result: Ok(None) },
            (Kind::EntryRead, 1) => LeaseEvent::EntryRead {
                result: Ok(Some(KvEntry {
                    key: "lease".to_string(),
                    value: self.value.bytes(holder, now_unix),
                    version,
                })),
            },
            (Kind::EntryRead, _) => LeaseEvent::EntryRead {
                result: Err(self.error()),
            },
            (_, 0) => LeaseEvent::Updated {
                result: Ok(version),
            },
            (_, 1) => LeaseEvent::Updated {
                result: Err(self.conflict()),
            },
            (_, _) => LeaseEvent::Updated {
                result: Err(self.error()),
            },
        }
    }
}

/// One round: the clock advance before it (none before the first) and its steps.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Round {
    /// Wall-clock step in seconds (negative: the wall clock was set back).
    advance_unix_s: i8,
    /// Monotonic step in `ADVANCE_UNIT_MS` units.
    advance_units: u8,
    steps: Vec<Step>,
}

/// A whole input.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Script {
    holder: Vec<u8>,
    ttl_secs: u64,
    now_unix: u64,
    now_ms: u64,
    grace_ms: u64,
    previous: Option<(Version, u64)>,
    rounds: Vec<Round>,
}

/// The canonical bytes `Input::number` reads back as `value`.
#[cfg(test)]
fn encode_number(value: u64, out: &mut Vec<u8>) {
    if value < 256 {
        out.extend_from_slice(&[0, value as u8]);
    } else if value >= u64::MAX - 255 {
        out.extend_from_slice(&[1, (u64::MAX - value) as u8]);
    } else {
        out.push(2);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

impl Script {
    fn decode(data: &[u8]) -> Self {
        let mut input = Input::new(data);
        let holder_len = usize::from(input.byte() % (HOLDER_LEN_MAX + 1));
        let holder = input.bytes(holder_len).to_vec();
        let ttl_secs = input.number();
        let now_unix = input.number();
        let now_ms = input.number();
        let grace_ms = input.number();
        let previous = if input.byte() & 1 == 1 {
            let version = Version::decode(&mut input);
            Some((version, input.number()))
        } else {
            None
        };
        let round_count = 1 + input.byte() % MAX_ROUNDS;
        let mut rounds = Vec::new();
        for _ in 0..round_count {
            let advance_unix_s = input.byte() as i8;
            let advance_units = input.byte();
            let step_count = input.byte() % (MAX_STEPS + 1);
            let steps = (0..step_count).map(|_| Step::decode(&mut input)).collect();
            rounds.push(Round {
                advance_unix_s,
                advance_units,
                steps,
            });
        }
        Script {
            holder,
            ttl_secs,
            now_unix,
            now_ms,
            grace_ms,
            previous,
            rounds,
        }
    }

    #[cfg(test)]
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.holder.len() as u8];
        out.extend_from_slice(&self.holder);
        for n in [self.ttl_secs, self.now_unix, self.now_ms, self.grace_ms] {
            encode_number(n, &mut out);
        }
        match &self.previous {
            None => out.push(0),
            Some((version, first_seen)) => {
                out.push(1);
                version.encode(&mut out);
                encode_number(*first_seen, &mut out);
            }
        }
        out.push((self.rounds.len() as u8).saturating_sub(1));
        for round in &self.rounds {
            out.push(round.advance_unix_s as u8);
            out.push(round.advance_units);
            out.push(round.steps.len() as u8);
            for step in &round.steps {
                step.encode(&mut out);
            }
        }
        out
    }
}

// ===========================================================================
// The run and its checks
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

/// The committed seeds (`fuzz/seeds/lease_machine/`), as scripts: one per
/// interesting path. `KVFOLD_WRITE_SEEDS=1 cargo test --lib lease_machine::seeds
/// -- --ignored` rewrites the files.
#[cfg(test)]
mod seeds {
    use super::*;

    const NOW: u64 = 1_767_225_600;

    fn step(kind: Kind, choice: u8) -> Step {
        Step {
            kind,
            choice,
            version: Version::Small(3),
            value: Value::Empty,
            error: 0,
            tick: Tick::Plain,
        }
    }

    fn read(value: Value, version: Version) -> Step {
        Step {
            kind: Kind::Follow,
            choice: 1,
            version,
            value,
            error: 0,
            tick: Tick::Plain,
        }
    }

    impl Step {
        /// Fed with `handle_at`, the monotonic clock `advance_units × 40 ms` and
        /// the wall clock `wall_s` past the last reading.
        fn at(mut self, advance_units: u8, wall_s: i8) -> Step {
            self.tick = Tick::Fresh {
                advance_units,
                wall_s,
            };
            self
        }

        /// Fed with `handle_at` and a monotonic reading older than the held one.
        fn stale(mut self, back_units: u8, wall_s: i8) -> Step {
            self.tick = Tick::Stale { back_units, wall_s };
            self
        }
    }

    fn round(advance_unix_s: i8, advance_units: u8, steps: Vec<Step>) -> Round {
        Round {
            advance_unix_s,
            advance_units,
            steps,
        }
    }

    fn script(previous: Option<(Version, u64)>, rounds: Vec<Round>) -> Script {
        Script {
            holder: b"node-a".to_vec(),
            ttl_secs: 60,
            now_unix: NOW,
            now_ms: 10_000,
            grace_ms: 2000,
            previous,
            rounds,
        }
    }

    fn exists() -> Step {
        step(Kind::Follow, 1)
    }

    fn expired_record() -> Value {
        Value::Around {
            ours: false,
            completed: false,
            age_s: 60,
            expires_delta_s: 0,
        }
    }

    fn scripts() -> Vec<(&'static str, Script)> {
        let mut out = vec![
            (
                "create_wins",
                script(None, vec![round(0, 0, vec![step(Kind::Follow, 0)])]),
            ),
            (
                "create_fails",
                script(None, vec![round(0, 0, vec![step(Kind::Follow, 2)])]),
            ),
            (
                "entry_vanished",
                script(
                    None,
                    vec![round(0, 0, vec![exists(), step(Kind::Follow, 0)])],
                ),
            ),
            (
                "entry_read_fails",
                script(
                    None,
                    vec![round(0, 0, vec![exists(), step(Kind::Follow, 2)])],
                ),
            ),
        ];
        let live = Value::Around {
            ours: false,
            completed: false,
            age_s: 10,
            expires_delta_s: 50,
        };
        out.push((
            "live_record_is_left_alone",
            script(
                None,
                vec![round(0, 0, vec![exists(), read(live, Version::Small(3))])],
            ),
        ));
        // Expired by wall clock: settles, then rounds later (60 s + grace on the
        // monotonic clock, 4 × 250 ms per advance unit) it is taken over.
        out.push((
            "expired_record_settles_then_is_taken_over",
            script(
                None,
                vec![
                    round(
                        0,
                        0,
                        vec![exists(), read(expired_record(), Version::Small(3))],
                    ),
                    round(
                        30,
                        120,
                        vec![exists(), read(expired_record(), Version::Small(3))],
                    ),
                    round(
                        30,
                        130,
                        vec![
                            exists(),
                            read(expired_record(), Version::Small(3)),
                            step(Kind::Follow, 0),
                        ],
                    ),
                ],
            ),
        ));
        out.push((
            "tombstone_is_taken_over_at_once",
            script(
                None,
                vec![round(
                    0,
                    0,
                    vec![
                        exists(),
                        read(Value::Empty, Version::Small(5)),
                        step(Kind::Follow, 0),
                    ],
                )],
            ),
        ));
        for (name, error) in [
            ("cas_conflict_loses", 0u8),
            ("cas_race_with_create_loses", 1),
            ("cas_key_gone_loses", 2),
        ] {
            let mut conflict = step(Kind::Follow, 1);
            conflict.error = error;
            out.push((
                name,
                script(
                    None,
                    vec![round(
                        0,
                        0,
                        vec![exists(), read(Value::Empty, Version::Small(5)), conflict],
                    )],
                ),
            ));
        }
        out.push((
            "cas_fails",
            script(
                None,
                vec![round(
                    0,
                    0,
                    vec![
                        exists(),
                        read(Value::Empty, Version::Small(5)),
                        step(Kind::Follow, 2),
                    ],
                )],
            ),
        ));
        out.push((
            "junk_settles_for_the_grace_then_is_taken_over",
            script(
                None,
                vec![
                    round(
                        0,
                        0,
                        vec![
                            exists(),
                            read(Value::Raw(b"not a lease".to_vec()), Version::Small(4)),
                        ],
                    ),
                    round(
                        1,
                        8,
                        vec![
                            exists(),
                            read(Value::Raw(b"not a lease".to_vec()), Version::Small(4)),
                            step(Kind::Follow, 0),
                        ],
                    ),
                ],
            ),
        ));
        out.push((
            "array_missing_field_wrong_type_are_junk",
            script(
                Some((Version::Small(6), 0)),
                vec![
                    round(0, 0, vec![exists(), read(Value::Array, Version::Small(6))]),
                    round(
                        0,
                        0,
                        vec![exists(), read(Value::MissingField, Version::Small(6))],
                    ),
                    round(
                        0,
                        0,
                        vec![exists(), read(Value::WrongType, Version::Small(6))],
                    ),
                    round(
                        0,
                        0,
                        vec![
                            exists(),
                            read(
                                Value::Extra {
                                    expires_delta_s: -1,
                                },
                                Version::Small(6),
                            ),
                        ],
                    ),
                ],
            ),
        ));
        out.push((
            "previous_sighting_carries_over",
            script(
                Some((Version::Small(3), 0)),
                vec![round(
                    0,
                    0,
                    vec![
                        exists(),
                        read(
                            Value::Around {
                                ours: false,
                                completed: false,
                                age_s: 5,
                                expires_delta_s: 0,
                            },
                            Version::Small(3),
                        ),
                        step(Kind::Follow, 0),
                    ],
                )],
            ),
        ));
        out.push((
            "own_completed_record_after_a_win",
            script(
                None,
                vec![
                    round(0, 0, vec![step(Kind::Follow, 0)]),
                    round(
                        61,
                        250,
                        vec![
                            exists(),
                            read(
                                Value::Around {
                                    ours: true,
                                    completed: true,
                                    age_s: 61,
                                    expires_delta_s: -1,
                                },
                                Version::Small(3),
                            ),
                            step(Kind::Follow, 0),
                        ],
                    ),
                ],
            ),
        ));
        out.push((
            "out_of_order_events_are_rejected",
            script(
                None,
                vec![round(
                    0,
                    0,
                    vec![
                        step(Kind::EntryRead, 0),
                        step(Kind::Updated, 0),
                        exists(),
                        step(Kind::Created, 0),
                        step(Kind::Updated, 1),
                        read(Value::Empty, Version::Raw(vec![1, 2, 3])),
                        step(Kind::EntryRead, 1),
                        step(Kind::Follow, 0),
                        step(Kind::Follow, 0),
                        step(Kind::Created, 2),
                    ],
                )],
            ),
        ));
        let mut saturated = script(
            Some((Version::Raw(vec![9; 10]), u64::MAX - 1)),
            vec![
                round(
                    0,
                    0,
                    vec![
                        exists(),
                        read(
                            Value::Record {
                                acquired: 0,
                                expires: u64::MAX,
                            },
                            Version::Raw(vec![9; 10]),
                        ),
                    ],
                ),
                round(
                    -128,
                    255,
                    vec![
                        exists(),
                        read(
                            Value::Record {
                                acquired: u64::MAX,
                                expires: 0,
                            },
                            Version::Small(0),
                        ),
                        step(Kind::Follow, 0),
                    ],
                ),
            ],
        );
        saturated.ttl_secs = u64::MAX;
        saturated.now_unix = u64::MAX - 3;
        saturated.now_ms = u64::MAX - 2;
        saturated.grace_ms = u64::MAX;
        out.push(("saturation_at_u64_max", saturated));
        let mut odd_holder = script(None, vec![round(0, 0, vec![step(Kind::Follow, 0)])]);
        odd_holder.holder = b"q\"\\\xff\n".to_vec();
        odd_holder.ttl_secs = 0;
        out.push(("escaped_holder_and_zero_ttl", odd_holder));
        out.extend(timed_scripts());
        out
    }

    /// Answers fed with the clocks read when they arrived (`handle_at`).
    fn timed_scripts() -> Vec<(&'static str, Script)> {
        let junk = || Value::Raw(b"not a lease".to_vec());
        let mut out = Vec::with_capacity(5);
        // The model's finding 1: the read answers 3 s after the round's clocks were
        // read; junk is first seen then, not at the start, so it settles until
        // 3 s + grace. The next round (1 s later, its read 1 s after its start) is
        // judged at start + 5 s: taken over, and the record and the won sighting
        // carry that round's start clock.
        out.push((
            "stalled_read_is_sighted_when_it_arrives",
            script(
                None,
                vec![
                    round(
                        3,
                        0,
                        vec![exists().at(0, 0), read(junk(), Version::Small(4)).at(75, 3)],
                    ),
                    round(
                        1,
                        4,
                        vec![
                            exists().at(0, 0),
                            read(junk(), Version::Small(4)).at(25, 1),
                            step(Kind::Follow, 0).at(1, 0),
                        ],
                    ),
                ],
            ),
        ));
        // A reading older than the held clocks is ignored (its wall clock too), a
        // rejected event's clocks are not kept, and a plain `handle` judges with
        // the clocks last brought in: the entry is sighted 2 s after the start.
        let expired = Value::Around {
            ours: false,
            completed: false,
            age_s: 60,
            expires_delta_s: 1,
        };
        out.push((
            "stale_and_rejected_clocks_are_ignored",
            script(
                None,
                vec![round(
                    0,
                    0,
                    vec![
                        exists().at(50, 2),
                        step(Kind::Updated, 0).at(255, 100),
                        step(Kind::Created, 1).stale(0, -100),
                        read(expired.clone(), Version::Small(5)).stale(3, -100),
                        step(Kind::Follow, 0).at(10, 0),
                    ],
                )],
            ),
        ));
        out.push((
            "plain_handle_judges_with_the_last_clock",
            script(
                None,
                vec![round(
                    0,
                    0,
                    vec![
                        exists().at(50, 2),
                        step(Kind::Updated, 0).at(255, 100),
                        read(expired, Version::Small(5)),
                    ],
                )],
            ),
        ));
        // The wall clock moves on its own: an equal monotonic reading brings its
        // wall clock (a record expiring at start + 5 s is expired at + 10 s), and
        // a wall clock set back makes it live again.
        let record = || Value::Around {
            ours: false,
            completed: false,
            age_s: 50,
            expires_delta_s: 5,
        };
        out.push((
            "wall_clock_moves_within_a_round",
            script(
                None,
                vec![
                    round(
                        0,
                        0,
                        vec![
                            exists().at(0, 0),
                            read(record(), Version::Small(3)).at(0, 10),
                        ],
                    ),
                    round(
                        0,
                        0,
                        vec![
                            exists().at(5, -20),
                            read(record(), Version::Small(3)).at(5, 0),
                        ],
                    ),
                ],
            ),
        ));
        // A tombstone read after a long wait is taken over; the CAS still writes
        // the start clock's record, and the won sighting is first seen at start.
        out.push((
            "late_takeover_keeps_the_start_clock",
            script(
                None,
                vec![round(
                    0,
                    0,
                    vec![
                        exists().at(200, 8),
                        read(Value::Empty, Version::Small(5)).at(255, 10),
                        step(Kind::Follow, 0).at(255, -5),
                    ],
                )],
            ),
        ));
        out
    }

    #[test]
    fn seed_scripts_keep_every_property() {
        for (name, script) in scripts() {
            let bytes = script.encode();
            assert_eq!(Script::decode(&bytes), script, "{name} round-trips");
            match run(&script) {
                Ok(summary) => eprintln!("{name}: {summary:?}"),
                Err(violation) => panic!("{name}: {violation}"),
            }
        }
    }

    /// The seeds reach every outcome, a CAS and a rejection.
    #[test]
    fn seed_scripts_cover_every_path() {
        let mut total = Summary::default();
        for (_, script) in scripts() {
            let summary = run(&script).expect("seeds keep every property");
            total.won += summary.won;
            total.lost += summary.lost;
            total.failed += summary.failed;
            total.cas += summary.cas;
            total.rejected += summary.rejected;
            total.timed += summary.timed;
            total.ignored += summary.ignored;
            total.judged_late += summary.judged_late;
        }
        assert!(
            total.won > 0 && total.lost > 0 && total.failed > 0,
            "{total:?}"
        );
        assert!(total.cas > 0 && total.rejected > 0, "{total:?}");
        assert!(
            total.timed > 0 && total.ignored > 0 && total.judged_late > 0,
            "{total:?}"
        );
    }

    /// Seeds written before steps carried clocks (heads below 16) read the same.
    #[test]
    fn plain_steps_keep_the_old_encoding() {
        let mut out = Vec::new();
        read(Value::Empty, Version::Small(5)).encode(&mut out);
        assert_eq!(out, [1 << 2, 5, 0, 0]);
        let mut data = vec![0x0b, 3, 0, 9, 7, 0xff];
        let mut input = Input::new(&data);
        let plain = Step::decode(&mut input);
        assert_eq!(plain.tick, Tick::Plain);
        assert_eq!(
            (plain.kind, plain.choice, plain.error),
            (Kind::Updated, 2, 9)
        );
        assert_eq!(input.rest(), &[7, 0xff]);
        data[0] |= 0xd0;
        let stale = Step::decode(&mut Input::new(&data));
        assert_eq!(
            stale.tick,
            Tick::Stale {
                back_units: 7,
                wall_s: -1
            }
        );
        assert_eq!(
            (stale.kind, stale.choice, stale.error),
            (Kind::Updated, 2, 9)
        );
        data[0] = 0x1f;
        let fresh = Step::decode(&mut Input::new(&data));
        assert_eq!(
            (fresh.kind, fresh.choice),
            (Kind::Updated, 0),
            "choice 3 reads as 0"
        );
        assert_eq!(
            fresh.tick,
            Tick::Fresh {
                advance_units: 7,
                wall_s: -1
            }
        );
    }

    #[test]
    #[ignore = "writes fuzz/seeds/lease_machine/ (set KVFOLD_WRITE_SEEDS=1)"]
    fn write_seed_files() {
        if std::env::var_os("KVFOLD_WRITE_SEEDS").is_none() {
            return;
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/lease_machine");
        std::fs::create_dir_all(&dir).expect("create the seed directory");
        for (name, script) in scripts() {
            std::fs::write(dir.join(name), script.encode()).expect("write a seed");
        }
    }
}
