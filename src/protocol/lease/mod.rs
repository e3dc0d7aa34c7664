//! Export-lease kernels and the `LeaseMachine` (docs/protocols/export-lease.md, "The
//! record" and "One round"): the lease record's wire form, liveness, the local-observation
//! takeover rule, one `try_acquire` round as a sans-IO machine, and what a `complete` writes
//! and what its answer means. Pure: clocks come in as data.

mod completion;
mod machine;

use std::fmt;

pub use completion::{CompletionOutcome, CompletionWrite, completion_outcome, completion_write};
pub use machine::{LeaseCommand, LeaseEvent, LeaseMachine, LeaseOutcome, Unexpected};

use crate::kv::{VersionToken, WatchCursor};
use crate::protocol::time::Millis;

/// The lease key's value: who holds (or last held) the round, until when, and —
/// after a completion — what was exported.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct LeaseRecord {
    /// The holder's identity.
    pub holder_id: String,
    /// When the round was acquired (Unix seconds).
    pub acquired_at_unix: u64,
    /// When the round expires (Unix seconds).
    pub expires_at_unix: u64,
    /// Lowercase hex of the exported cursor's version bytes, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_cursor_hex: Option<String>,
    /// When the round completed (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at_unix: Option<u64>,
}

impl LeaseRecord {
    /// `expires_at_unix > now_unix`.
    pub fn is_live_at(&self, now_unix: u64) -> bool {
        self.expires_at_unix > now_unix
    }

    /// The compact JSON stored at the lease key (fields in declaration order).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A record acquired at `now_unix` for `ttl_secs` (expiry saturating).
pub fn lease_record(holder_id: &str, now_unix: u64, ttl_secs: u64) -> LeaseRecord {
    LeaseRecord {
        holder_id: holder_id.to_string(),
        acquired_at_unix: now_unix,
        expires_at_unix: now_unix.saturating_add(ttl_secs),
        completed_cursor_hex: None,
        completed_at_unix: None,
    }
}

/// Decodes a lease value: a JSON **object** only (an array is refused although
/// serde's derived parser accepts one); unknown fields are ignored.
pub fn decode_lease_record(bytes: &[u8]) -> Option<LeaseRecord> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if !value.is_object() {
        return None;
    }
    serde_json::from_value(value).ok()
}

/// The value decodes as a record and `expires_at_unix > now_unix`.
pub fn lease_is_live(value: &[u8], now_unix: u64) -> bool {
    decode_lease_record(value).is_some_and(|r| r.is_live_at(now_unix))
}

/// Lowercase hex of the cursor's version bytes (the memo is not recorded).
pub fn completed_cursor_hex(cursor: &WatchCursor) -> String {
    cursor
        .version()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `record` completed with `cursor` at `now_unix`; the expiry is unchanged.
pub fn completed_record(record: &LeaseRecord, cursor: &WatchCursor, now_unix: u64) -> LeaseRecord {
    LeaseRecord {
        completed_cursor_hex: Some(completed_cursor_hex(cursor)),
        completed_at_unix: Some(now_unix),
        ..record.clone()
    }
}

/// Wall-clock seconds and monotonic milliseconds, read together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LeaseClock {
    /// Wall clock, Unix seconds.
    pub now_unix: u64,
    /// Monotonic clock.
    pub now: Millis,
}

/// The first time this process saw the lease key at `revision`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseSighting {
    /// The lease key revision.
    pub revision: VersionToken,
    /// When it was first seen (monotonic).
    pub first_seen: Millis,
}

/// `previous` unchanged if it saw the same revision, otherwise a new sighting at `now`.
pub fn sight(
    previous: Option<&LeaseSighting>,
    revision: &VersionToken,
    now: Millis,
) -> LeaseSighting {
    match previous {
        Some(p) if &p.revision == revision => p.clone(),
        _ => LeaseSighting {
            revision: revision.clone(),
            first_seen: now,
        },
    }
}

/// What a contender may do with the observed lease value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LeaseDecision {
    /// Live by wall clock: hands off.
    Live {
        /// Its expiry (Unix seconds).
        expires_at_unix: u64,
    },
    /// Expired by wall clock, not yet by local observation.
    Settling {
        /// When the takeover becomes allowed (monotonic).
        takeover_at: Millis,
    },
    /// CAS our record over the observed revision.
    TakeOver,
}

/// The local-observation rule (docs/protocols/export-lease.md, "One round"): an empty value
/// (abandon tombstone) is taken at once; a live record never; an expired or undecodable one
/// only once this process has seen the same revision for the record's duration (0 when
/// undecodable) plus `grace_ms` on its monotonic clock.
pub fn takeover_decision(
    value: &[u8],
    clock: LeaseClock,
    sighting: &LeaseSighting,
    grace_ms: u64,
) -> LeaseDecision {
    if value.is_empty() {
        return LeaseDecision::TakeOver;
    }
    let duration_ms = match decode_lease_record(value) {
        Some(record) if record.is_live_at(clock.now_unix) => {
            return LeaseDecision::Live {
                expires_at_unix: record.expires_at_unix,
            };
        }
        Some(record) => record
            .expires_at_unix
            .saturating_sub(record.acquired_at_unix)
            .saturating_mul(1000),
        None => 0,
    };
    let takeover_at = sighting.first_seen.plus_ms(duration_ms).plus_ms(grace_ms);
    if clock.now >= takeover_at {
        LeaseDecision::TakeOver
    } else {
        LeaseDecision::Settling { takeover_at }
    }
}

impl fmt::Display for LeaseDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaseDecision::Live { expires_at_unix } => write!(f, "live until {expires_at_unix}"),
            LeaseDecision::Settling { takeover_at } => {
                write!(f, "expired, takeover allowed at {} ms", takeover_at.0)
            }
            LeaseDecision::TakeOver => write!(f, "take over"),
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
