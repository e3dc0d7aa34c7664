//! The `resume` model's environment: a NATS-like stream (revisions, per-key
//! history, head eviction by a limit, age eviction as the clock moves) and the
//! server-side consumer, which silently clamps a start below the first sequence.

use kvfold::protocol::resume::{FLOOR_PROBE_IDLE_MS, LogLimits};

use super::{ResumeModel, ResumeState, Retention};

/// One clock step: the guard's idle-probe period.
pub const CLOCK_STEP_MS: u64 = FLOOR_PROBE_IDLE_MS;

/// The `AgeOnly` bucket's age limit: one clock step. A message leaves two steps
/// after its write; `plan_resume` row 4 accepts a cursor written in the current
/// step (its age times two must not exceed the limit).
pub const MAX_AGE_MS: u64 = CLOCK_STEP_MS;

/// The server clock (Unix ms) at model time 0. Model times are offsets from it.
pub(super) const SERVER_CLOCK_BASE_MS: u64 = 1_700_000_000_000;

/// The stream was created before every write the model makes.
pub(super) const STREAM_CREATED_MS: u64 = SERVER_CLOCK_BASE_MS - 1_000;

/// A bucket kvfold creates: discard-old with a byte limit (evicting, never
/// age-only, so `plan_resume` row 4 never applies to it).
pub(super) const DISCARD_OLD_LIMITS: LogLimits = LogLimits {
    max_age_ms: 0,
    allow_msg_ttl: false,
    discard_old: true,
    max_bytes: 1 << 20,
    max_msgs: 0,
};

/// An age-only bucket.
pub(super) const AGE_ONLY_LIMITS: LogLimits = LogLimits {
    max_age_ms: MAX_AGE_MS,
    allow_msg_ttl: false,
    discard_old: false,
    max_bytes: 0,
    max_msgs: 0,
};

/// Why a message is (or is no longer) in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fate {
    /// Still in the log.
    Retained,
    /// Removed by a later write of the same key (per-key history): benign.
    Superseded,
    /// Removed by a limit (head eviction or age): lost to a watch that had not
    /// forwarded it.
    Evicted,
}

/// One revision of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Message {
    /// The key written.
    pub key: u8,
    /// Model time of the write (ms).
    pub written_ms: u64,
    /// Whether it is still retained.
    pub fate: Fate,
}

impl Message {
    /// The server write time (Unix ms) a delivery or cursor carries.
    pub(super) fn written_unix_ms(&self) -> u64 {
        SERVER_CLOCK_BASE_MS + self.written_ms
    }
}

/// The revision of `log[index]`.
pub(super) fn revision_at(index: usize) -> u64 {
    index as u64 + 1
}

/// The message of `revision` (revisions start at 1).
pub(super) fn message(log: &[Message], revision: u64) -> Option<&Message> {
    let index = usize::try_from(revision.checked_sub(1)?).ok()?;
    log.get(index)
}

/// The oldest retained revision (NATS `first_sequence`; `last + 1` when empty).
pub(super) fn first_sequence(log: &[Message]) -> u64 {
    log.iter()
        .position(|m| m.fate == Fate::Retained)
        .map_or(revision_at(log.len()), revision_at)
}

/// The server-side consumer: it delivers the retained in-scope messages from
/// `next` on, in order. A start below the first sequence is silently clamped (it
/// simply delivers the first retained message), as nats-server does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Consumer {
    /// The lowest sequence it may deliver next.
    pub next: u64,
    /// Whether it has delivered anything yet.
    pub delivered_any: bool,
}

impl ResumeModel {
    /// The message the consumer delivers next, if any.
    pub(super) fn deliverable(&self, log: &[Message], consumer: &Consumer) -> Option<u64> {
        let from = usize::try_from(consumer.next.saturating_sub(1)).unwrap_or(usize::MAX);
        log.iter()
            .enumerate()
            .skip(from)
            .find(|(_, m)| m.fate == Fate::Retained && self.in_scope(m.key))
            .map(|(index, _)| revision_at(index))
    }

    /// The revisions a limit would remove if the clock moved to `clock_ms`.
    pub(super) fn aged_out(&self, log: &[Message], clock_ms: u64) -> impl Iterator<Item = usize> {
        let age_only = self.retention == Retention::AgeOnly;
        log.iter()
            .enumerate()
            .filter(move |(_, m)| {
                age_only
                    && m.fate == Fate::Retained
                    && clock_ms.saturating_sub(m.written_ms) > MAX_AGE_MS
            })
            .map(|(index, _)| index)
    }

    pub(super) fn move_clock(&self, state: &mut ResumeState, clock_ms: u64) {
        let aged: Vec<usize> = self.aged_out(&state.log, clock_ms).collect();
        for index in aged {
            state.log[index].fate = Fate::Evicted;
        }
        state.clock_ms = clock_ms;
    }

    /// Whether removing `indices` now is an eviction the watch's checks can see:
    /// any, while the guard judges the All scope `Dense`; otherwise (a prefix
    /// scope, a state-sync watch) only before the watch, during a resume, while
    /// the client is away, or one that removes nothing the watch still needs
    /// (see [`super::Scope::Prefix`]).
    pub(super) fn eviction_allowed(
        &self,
        state: &ResumeState,
        mut indices: impl Iterator<Item = usize>,
    ) -> bool {
        match &state.watch {
            None => true,
            Some(w) => {
                w.dense
                    || w.resuming
                    || (w.reconnect_pending && w.anchored)
                    || indices.all(|index| {
                        !self.in_scope(state.log[index].key) || revision_at(index) <= w.forwarded_to
                    })
            }
        }
    }

    pub(super) fn write(&self, state: &mut ResumeState, key: u8) {
        let log = &mut state.log;
        let held = log
            .iter()
            .filter(|m| m.key == key && m.fate == Fate::Retained)
            .count();
        if held >= usize::from(self.bounds.history.max(1))
            && let Some(oldest) = log
                .iter_mut()
                .find(|m| m.key == key && m.fate == Fate::Retained)
        {
            oldest.fate = Fate::Superseded;
        }
        // Write times decide nothing on a `DiscardOld` bucket (the stream is
        // older than every write, so `Recreated` cannot fire, and row 4 needs
        // age-only limits): stamping them all at 0 keeps the state space small.
        let written_ms = match self.retention {
            Retention::DiscardOld => 0,
            Retention::AgeOnly => state.clock_ms,
        };
        log.push(Message {
            key,
            written_ms,
            fate: Fate::Retained,
        });
    }
}
