//! Bucket identity (issue 9, docs/protocols/fold-machine.md "Bucket identity"):
//! which bucket a fold, a resume cursor or an artifact belongs to, and the one
//! decision "same bucket or refuse" that the fold executor takes at start and again
//! when a resumed watch reports its cursor expired. Also the byte format of the
//! identity a snapshot store records beside its data. Pure: facts come in as data.
//!
//! A bucket's identity is its name plus its creation time
//! ([`BucketStatus::created_unix_ms`](crate::BucketStatus)): a bucket deleted and
//! created again under the same name is another bucket, whose revisions start
//! over. A cursor or a fold from one bucket says nothing about another, so resuming
//! it there would skip or mix revisions silently.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::resume::RECREATE_SLACK_MS;
use crate::kv::{BucketStatus, KvError, WatchCursor};

/// Longest accepted bucket name in a recorded identity or a manifest, in bytes.
pub const BUCKET_NAME_BYTES_MAX: usize = 256;

/// Hard cap on the bytes of a recorded identity (the store's sidecar file).
pub const MAX_IDENTITY_BYTES: usize = 4096;

/// Every refusal's `Display` (and so the `KvError::WatchError` text the fold
/// returns) starts with this phrase; [`is_identity_refusal`] tests for it.
pub const IDENTITY_MISMATCH: &str = "bucket identity mismatch";

/// The identity of a bucket: its name and its creation time.
///
/// `created_unix_ms == 0` means "creation time unknown" (a backend that does not
/// report it); two identities with a known, different creation time are two
/// buckets even when the names agree.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketIdentity {
    /// The bucket name.
    pub name: String,
    /// When the bucket (NATS: its stream) was created, Unix ms; 0 = unknown.
    pub created_unix_ms: u64,
}

impl BucketIdentity {
    /// An identity from its parts.
    pub fn new(name: impl Into<String>, created_unix_ms: u64) -> Self {
        Self {
            name: name.into(),
            created_unix_ms,
        }
    }

    /// The identity a fresh status reading reports.
    pub fn of_status(status: &BucketStatus) -> Self {
        Self::new(status.name.clone(), status.created_unix_ms)
    }

    /// How `self` (recorded earlier) compares with `actual` (read now).
    pub fn compare(&self, actual: &BucketIdentity) -> Sameness {
        if self.name != actual.name {
            Sameness::OtherName
        } else if self.created_unix_ms != 0
            && actual.created_unix_ms != 0
            && self.created_unix_ms != actual.created_unix_ms
        {
            Sameness::Recreated
        } else {
            Sameness::Same
        }
    }
}

impl fmt::Display for BucketIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} (created at {} ms)",
            self.name, self.created_unix_ms
        )
    }
}

/// The result of [`BucketIdentity::compare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sameness {
    /// Same name, and the creation times agree (or one is unknown).
    Same,
    /// Same name, different known creation times: the bucket was recreated.
    Recreated,
    /// Different names.
    OtherName,
}

/// What a fresh status reading says about the bucket a fold is started on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketFacts {
    /// Its identity.
    pub identity: BucketIdentity,
    /// Its newest revision.
    pub last_revision: u64,
}

impl BucketFacts {
    /// The facts a status reading reports.
    pub fn of_status(status: &BucketStatus) -> Self {
        Self {
            identity: BucketIdentity::of_status(status),
            last_revision: status.last_revision,
        }
    }
}

/// Why a fold refuses to run on a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdentityRefusal {
    /// The store was folded from a bucket with another name.
    OtherBucket {
        /// The identity the store recorded.
        recorded: BucketIdentity,
        /// The bucket the fold was started on.
        actual: BucketIdentity,
    },
    /// The store was folded from an earlier bucket of the same name (deleted and
    /// created again since).
    Recreated {
        /// The identity the store recorded.
        recorded: BucketIdentity,
        /// The bucket the fold was started on.
        actual: BucketIdentity,
    },
    /// A cursor (the resume cursor, or the store's) names a revision the bucket
    /// never reached: it belongs to another or an earlier bucket.
    CursorAhead {
        /// The cursor's revision.
        revision: u64,
        /// The bucket's newest revision.
        last_revision: u64,
    },
    /// The cursor's write is older than the bucket (beyond the clock-skew slack):
    /// it was written into an earlier bucket of this name.
    CursorBeforeCreation {
        /// The cursor's write time, Unix ms.
        written_ms: u64,
        /// The bucket's creation time, Unix ms.
        created_ms: u64,
    },
}

impl fmt::Display for IdentityRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{IDENTITY_MISMATCH}: ")?;
        match self {
            IdentityRefusal::OtherBucket { recorded, actual } => write!(
                f,
                "the snapshot store holds a fold of bucket {recorded}, not of bucket {actual}"
            ),
            IdentityRefusal::Recreated { recorded, actual } => write!(
                f,
                "the snapshot store holds a fold of bucket {recorded}; the bucket was recreated \
                 since ({actual}), so its revisions start over"
            ),
            IdentityRefusal::CursorAhead {
                revision,
                last_revision,
            } => write!(
                f,
                "cursor revision {revision} is ahead of the bucket's last revision \
                 {last_revision}: it belongs to another or a recreated bucket"
            ),
            IdentityRefusal::CursorBeforeCreation {
                written_ms,
                created_ms,
            } => write!(
                f,
                "the cursor was written at {written_ms} ms, before the bucket was created at \
                 {created_ms} ms: it belongs to an earlier bucket of this name"
            ),
        }
    }
}

impl From<IdentityRefusal> for KvError {
    /// `WatchError` with the refusal's text (which starts with [`IDENTITY_MISMATCH`]).
    fn from(refusal: IdentityRefusal) -> Self {
        KvError::WatchError(refusal.to_string())
    }
}

/// Whether `error` is a fold's identity refusal (a `WatchError` whose text starts
/// with [`IDENTITY_MISMATCH`]).
pub fn is_identity_refusal(error: &KvError) -> bool {
    matches!(error, KvError::WatchError(text) if text.starts_with(IDENTITY_MISMATCH))
}

/// The facts the fold executor reads before it starts a run.
#[derive(Debug, Clone, Copy)]
pub struct StartFacts<'a> {
    /// The bucket, from a fresh status reading; `None` when the backend reports no
    /// status (nothing can be compared, the run proceeds unverified).
    pub bucket: Option<&'a BucketFacts>,
    /// A store was given.
    pub has_store: bool,
    /// The store holds a fold: its cursor is not `none`, or it has entries.
    pub store_holds_data: bool,
    /// The store's committed cursor (`none` without a store).
    pub store_cursor: &'a WatchCursor,
    /// The identity the store recorded, if any.
    pub recorded: Option<&'a BucketIdentity>,
    /// The caller's resume cursor, if any.
    pub resume: Option<&'a WatchCursor>,
    /// An expiry repair is armed (it handles a recreated bucket itself).
    pub repair_armed: bool,
}

/// The start decision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[must_use]
pub enum StartVerdict {
    /// Run. When `record` is set, the executor records that identity in the store
    /// before the run starts (a store without an identity, or an empty one).
    /// `unverified` = the store holds a fold but recorded no identity (written by
    /// an earlier kvfold): it is adopted for this bucket, which cannot be checked.
    Proceed {
        /// The identity to record in the store, if any.
        record: Option<BucketIdentity>,
        /// The store's data could not be verified (no recorded identity).
        unverified: bool,
    },
    /// Do not run; nothing is written to the store or the bucket.
    Refuse(IdentityRefusal),
}

/// Judges a start: does the store, and do the cursors, belong to this bucket?
///
/// In order (the first refusal wins):
/// 1. no status → `Proceed` without recording (nothing to compare);
/// 2. a store holding a fold with a recorded identity: another name →
///    `OtherBucket` (always); a recreated bucket → `Recreated` (unless a repair is
///    armed);
/// 3. unless a repair is armed, each cursor (the resume cursor, then the store's):
///    its revision above the bucket's last → `CursorAhead`; its write time more
///    than [`RECREATE_SLACK_MS`] before the bucket's creation →
///    `CursorBeforeCreation`;
/// 4. `Proceed`, recording the bucket's identity when there is a store and it
///    recorded none, or recorded another one while holding no fold (a store that
///    holds nothing cannot mix two buckets, so it is rebound).
pub fn judge_start(facts: &StartFacts<'_>) -> StartVerdict {
    let Some(bucket) = facts.bucket else {
        return StartVerdict::Proceed {
            record: None,
            unverified: facts.has_store && facts.store_holds_data && facts.recorded.is_none(),
        };
    };
    let actual = &bucket.identity;
    let held = facts.has_store && facts.store_holds_data;
    if held && let Some(recorded) = facts.recorded {
        match (recorded.compare(actual), facts.repair_armed) {
            (Sameness::OtherName, _) => {
                return StartVerdict::Refuse(IdentityRefusal::OtherBucket {
                    recorded: recorded.clone(),
                    actual: actual.clone(),
                });
            }
            (Sameness::Recreated, false) => {
                return StartVerdict::Refuse(IdentityRefusal::Recreated {
                    recorded: recorded.clone(),
                    actual: actual.clone(),
                });
            }
            (Sameness::Recreated, true) | (Sameness::Same, _) => {}
        }
    }
    if !facts.repair_armed {
        let store_cursor = facts.has_store.then_some(facts.store_cursor);
        for cursor in facts.resume.into_iter().chain(store_cursor) {
            if let Some(refusal) = cursor_refusal(cursor, bucket) {
                return StartVerdict::Refuse(refusal);
            }
        }
    }
    let record = match facts.recorded {
        _ if !facts.has_store => None,
        None => Some(actual.clone()),
        Some(recorded) if !held && recorded != actual => Some(actual.clone()),
        Some(_) => None,
    };
    StartVerdict::Proceed {
        record,
        unverified: held && facts.recorded.is_none(),
    }
}

/// What a fold's watch does when its resumed watch reports the cursor expired.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[must_use]
pub enum ExpiredVerdict {
    /// The cursor fell below the retention floor of the same bucket: re-list with
    /// a full state-sync watch (docs/protocols/fold-machine.md, `ExpiryRepair::None`).
    Relist,
    /// The bucket is not the one the run started on, or the cursor is ahead of it:
    /// a re-list would move the cursor backward and keep the old bucket's keys.
    Refuse(IdentityRefusal),
}

/// Judges an expired resume: `started_on` is the identity read at start (if the
/// backend reported one), `now` a fresh reading taken after the expiry (`None`
/// when the backend reports no status: the re-list of earlier versions).
///
/// In order: another name → `OtherBucket` (always); unless a repair is armed, a
/// recreated bucket → `Recreated`, then the cursor checks of [`judge_start`]
/// step 3; otherwise `Relist`.
pub fn judge_expired(
    cursor: &WatchCursor,
    started_on: Option<&BucketIdentity>,
    now: Option<&BucketFacts>,
    repair_armed: bool,
) -> ExpiredVerdict {
    let Some(now) = now else {
        return ExpiredVerdict::Relist;
    };
    if let Some(started_on) = started_on {
        match (started_on.compare(&now.identity), repair_armed) {
            (Sameness::OtherName, _) => {
                return ExpiredVerdict::Refuse(IdentityRefusal::OtherBucket {
                    recorded: started_on.clone(),
                    actual: now.identity.clone(),
                });
            }
            (Sameness::Recreated, false) => {
                return ExpiredVerdict::Refuse(IdentityRefusal::Recreated {
                    recorded: started_on.clone(),
                    actual: now.identity.clone(),
                });
            }
            (Sameness::Recreated, true) | (Sameness::Same, _) => {}
        }
    }
    if !repair_armed && let Some(refusal) = cursor_refusal(cursor, now) {
        return ExpiredVerdict::Refuse(refusal);
    }
    ExpiredVerdict::Relist
}

/// A cursor that cannot be from `bucket`: ahead of its last revision, or written
/// before it was created (beyond the slack). A `none` or revisionless cursor
/// passes (it resumes nothing).
fn cursor_refusal(cursor: &WatchCursor, bucket: &BucketFacts) -> Option<IdentityRefusal> {
    if let Some(revision) = cursor.as_u64().filter(|&r| r != 0)
        && revision > bucket.last_revision
    {
        return Some(IdentityRefusal::CursorAhead {
            revision,
            last_revision: bucket.last_revision,
        });
    }
    let created_ms = bucket.identity.created_unix_ms;
    match cursor.written_ms() {
        Some(written_ms)
            if created_ms != 0 && created_ms > written_ms.saturating_add(RECREATE_SLACK_MS) =>
        {
            Some(IdentityRefusal::CursorBeforeCreation {
                written_ms,
                created_ms,
            })
        }
        _ => None,
    }
}

/// Why recorded identity bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityDecodeError {
    /// More than [`MAX_IDENTITY_BYTES`].
    #[error("bucket identity record is {len} bytes, more than the cap")]
    TooLarge {
        /// The length seen.
        len: usize,
    },
    /// Not a JSON object with exactly `name` (string) and `created_unix_ms` (u64).
    #[error("bucket identity record is not a valid JSON object: {0}")]
    Syntax(String),
    /// The name is empty or longer than [`BUCKET_NAME_BYTES_MAX`].
    #[error("bucket identity record has an invalid bucket name")]
    BadName,
}

/// Whether `name` is acceptable in a recorded identity or a manifest: non-empty
/// and at most [`BUCKET_NAME_BYTES_MAX`] bytes.
pub fn identity_name_is_valid(name: &str) -> bool {
    !name.is_empty() && name.len() <= BUCKET_NAME_BYTES_MAX
}

/// The canonical bytes of a recorded identity: compact JSON
/// `{"name":…,"created_unix_ms":…}` followed by one newline.
pub fn encode_identity(identity: &BucketIdentity) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(identity).expect("a string and an integer always serialize");
    bytes.push(b'\n');
    bytes
}

/// Decodes recorded identity bytes: at most [`MAX_IDENTITY_BYTES`], one JSON
/// object with exactly `name` and `created_unix_ms`, and a valid name.
///
/// # Errors
///
/// [`IdentityDecodeError`]; never panics.
pub fn decode_identity(bytes: &[u8]) -> Result<BucketIdentity, IdentityDecodeError> {
    if bytes.len() > MAX_IDENTITY_BYTES {
        return Err(IdentityDecodeError::TooLarge { len: bytes.len() });
    }
    // serde's derived deserializer also accepts the array form; refuse it.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(IdentityDecodeError::Syntax("not an object".into()));
    }
    let identity: BucketIdentity =
        serde_json::from_slice(bytes).map_err(|e| IdentityDecodeError::Syntax(e.to_string()))?;
    if !identity_name_is_valid(&identity.name) {
        return Err(IdentityDecodeError::BadName);
    }
    Ok(identity)
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
