//! `LeaseGuard::complete` as a kernel (docs/protocols/export-lease.md, "Completing a
//! round"): the compare-and-swap that records the exported cursor, and what the store's
//! answer means for the caller and for this process's sighting. Pure: the clocks come in as
//! data; the executor performs the write and acts on the outcome.

use super::{LeaseRecord, LeaseSighting, completed_record};
use crate::kv::{KvError, VersionToken, WatchCursor};
use crate::protocol::time::Millis;

/// The write a completion performs: `KvWriter::update(key, value, expected)`.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CompletionWrite {
    /// The completed record's compact JSON (the held record with the cursor and
    /// `completed_at_unix`; the expiry unchanged).
    pub value: Vec<u8>,
    /// The lease key revision the guard holds: the completion lands only while the
    /// key still holds this round.
    pub expected: VersionToken,
}

/// What the answer to a [`CompletionWrite`] means.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CompletionOutcome {
    /// The completed record landed. Keep `sighting` as this process's memory of the
    /// key; `complete` returns `Ok(())`.
    Recorded {
        /// The completion's revision, first seen when the round was acquired.
        sighting: LeaseSighting,
    },
    /// The key moved since the guard's revision (`RevisionMismatch`): the round
    /// overran its lease and was taken over (or the key was rewritten). The round is
    /// over: write nothing more to the key, keep the stored sighting, and return
    /// `Ok(())` with a warning (the export itself stands; at worst it duplicates the
    /// next holder's).
    Overran,
    /// Any other store error: `complete` returns it; the stored sighting is kept.
    Failed(KvError),
}

/// The completion of the round held at `version` with `record`, recording `cursor` at the
/// wall clock `now_unix` (docs/protocols/export-lease.md, "Completing a round").
pub fn completion_write(
    record: &LeaseRecord,
    version: &VersionToken,
    cursor: &WatchCursor,
    now_unix: u64,
) -> CompletionWrite {
    CompletionWrite {
        value: completed_record(record, cursor, now_unix).to_json(),
        expected: version.clone(),
    }
}

/// Judges the store's answer to the [`CompletionWrite`] of a round acquired at the
/// monotonic reading `acquired` (the reading that dated the sighting of the won
/// revision).
///
/// A landed completion is remembered as first seen at `acquired`, not at the answer: the
/// completion replaced this process's own revision by CAS, so it stands for the same lease,
/// whose duration this process knows began no earlier than `acquired`. Its next rounds may
/// then take over their own expired round at `acquired + duration + grace`, as they could
/// have without the completion. Only `RevisionMismatch` means "the lease moved"; every
/// other error (a timeout, `KeyNotFound`, …) is the caller's to see.
pub fn completion_outcome(
    result: Result<VersionToken, KvError>,
    acquired: Millis,
) -> CompletionOutcome {
    match result {
        Ok(revision) => CompletionOutcome::Recorded {
            sighting: LeaseSighting {
                revision,
                first_seen: acquired,
            },
        },
        Err(KvError::RevisionMismatch) => CompletionOutcome::Overran,
        Err(error) => CompletionOutcome::Failed(error),
    }
}
