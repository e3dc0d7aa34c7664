//! The fuzz script of `lease_machine`: what the input bytes decode into (versions,
//! values, steps, rounds) and how a script is encoded back to bytes.

use super::*;

/// A lease version as the fuzzer picks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Version {
    /// Revision `n` (0..8): a small palette, so revisions repeat across rounds.
    Small(u8),
    /// Raw version bytes (0..=10; an 8-byte value is a revision too).
    Raw(Vec<u8>),
}

impl Version {
    pub(super) fn decode(input: &mut Input<'_>) -> Self {
        let tag = input.byte();
        if tag & 0x80 == 0 {
            Version::Small(tag & 0x07)
        } else {
            let len = usize::from(tag & 0x0f).min(VersionToken::MAX_LEN);
            Version::Raw(input.bytes(len).to_vec())
        }
    }

    #[cfg(test)]
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Version::Small(n) => out.push(n & 0x07),
            Version::Raw(bytes) => {
                out.push(0x80 | bytes.len() as u8);
                out.extend_from_slice(bytes);
            }
        }
    }

    pub(super) fn token(&self) -> VersionToken {
        match self {
            Version::Small(n) => VersionToken::from_u64(u64::from(*n)),
            Version::Raw(bytes) => VersionToken::from_raw(bytes).unwrap_or_default(),
        }
    }
}

/// The value an entry read returns, relative to the round's clocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Value {
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
    pub(super) fn decode(input: &mut Input<'_>) -> Self {
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
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
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
    pub(super) fn bytes(&self, holder: &str, now_unix: u64) -> Vec<u8> {
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
pub(super) enum Kind {
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
pub(super) enum Tick {
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
    pub(super) fn decode(mode: u8, input: &mut Input<'_>) -> Self {
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
    pub(super) fn mode(&self) -> u8 {
        match self {
            Tick::Plain => 0,
            Tick::Fresh { .. } => 1,
            Tick::Stale { .. } => 15,
        }
    }

    #[cfg(test)]
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
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
    pub(super) fn reading(&self, real: &mut LeaseClock, held: LeaseClock) -> Option<LeaseClock> {
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
pub(super) struct Step {
    pub(super) kind: Kind,
    /// 0: success (`Ok(v)`, `Ok(None)` for a read); 1: the expected failure
    /// (`AlreadyExists`; `Ok(Some(entry))`; a conflict); 2: another error.
    pub(super) choice: u8,
    pub(super) version: Version,
    pub(super) value: Value,
    /// Picks the conflict or the error.
    pub(super) error: u8,
    /// The clocks fed with the event.
    pub(super) tick: Tick,
}

impl Step {
    /// Head byte: bits 0–1 the kind, bits 2–3 the choice (mod 3), bits 4–7 the
    /// tick's mode; then the version, the value, the error byte and the tick's
    /// bytes (none for a plain step, so heads below 16 read as before ticks).
    pub(super) fn decode(input: &mut Input<'_>) -> Self {
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
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
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

    pub(super) fn error(&self) -> KvError {
        match self.error % 5 {
            0 => KvError::Timeout,
            1 => KvError::OperationFailed("injected".to_string()),
            2 => KvError::NotConnected,
            3 => KvError::SerializationError("injected".to_string()),
            _ => KvError::WatchError("injected".to_string()),
        }
    }

    pub(super) fn conflict(&self) -> KvError {
        match self.error % 3 {
            0 => KvError::RevisionMismatch,
            1 => KvError::AlreadyExists,
            _ => KvError::KeyNotFound,
        }
    }

    /// The event for a machine awaiting `awaited` (`None` after `Finish`).
    pub(super) fn event(&self, awaited: Option<Kind>, holder: &str, now_unix: u64) -> LeaseEvent {
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
pub(super) struct Round {
    /// Wall-clock step in seconds (negative: the wall clock was set back).
    pub(super) advance_unix_s: i8,
    /// Monotonic step in `ADVANCE_UNIT_MS` units.
    pub(super) advance_units: u8,
    pub(super) steps: Vec<Step>,
}

/// A whole input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Script {
    pub(super) holder: Vec<u8>,
    pub(super) ttl_secs: u64,
    pub(super) now_unix: u64,
    pub(super) now_ms: u64,
    pub(super) grace_ms: u64,
    pub(super) previous: Option<(Version, u64)>,
    pub(super) rounds: Vec<Round>,
}

/// The canonical bytes `Input::number` reads back as `value`.
#[cfg(test)]
pub(super) fn encode_number(value: u64, out: &mut Vec<u8>) {
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
    pub(super) fn decode(data: &[u8]) -> Self {
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
    pub(super) fn encode(&self) -> Vec<u8> {
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
