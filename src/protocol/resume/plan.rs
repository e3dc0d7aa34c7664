//! The resume kernels: what a probe of the stream reports (`StreamFacts`,
//! `LogLimits`), the pre-check (`plan_resume`) and post-check (`recheck_resume`),
//! and the judging mode of a scope (`guard_mode`).

use std::fmt;

use crate::kv::WatchCursor;
use crate::protocol::{gap_holds_no_eviction, resume_window_ok};

/// A bucket created more than this long after a cursor's write time cannot hold
/// the cursor's message (it was recreated); the slack absorbs server clock skew.
pub const RECREATE_SLACK_MS: u64 = 60_000;

/// The limits of a bucket's log that decide whether current values can vanish.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LogLimits {
    /// Age limit in ms; 0 = none.
    pub max_age_ms: u64,
    /// Per-message TTLs are allowed.
    pub allow_msg_ttl: bool,
    /// Discard policy is Old.
    pub discard_old: bool,
    /// Byte limit; `<= 0` = unlimited.
    pub max_bytes: i64,
    /// Message limit; `<= 0` = unlimited.
    pub max_msgs: i64,
}

impl LogLimits {
    /// True when the limits can remove a key's latest value while it is live:
    /// an age limit, per-message TTL, or discard-old with a byte or message limit.
    pub fn evicts_current_values(&self) -> bool {
        self.max_age_ms > 0
            || self.allow_msg_ttl
            || (self.discard_old && (self.max_bytes > 0 || self.max_msgs > 0))
    }

    /// True when age is the only thing that can remove a current value.
    pub fn evicts_only_by_age(&self) -> bool {
        self.max_age_ms > 0
            && !self.allow_msg_ttl
            && !(self.discard_old && (self.max_bytes > 0 || self.max_msgs > 0))
    }
}

/// What a probe of the stream (bucket log) reports.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StreamFacts {
    /// Oldest retained sequence (revision).
    pub first_sequence: u64,
    /// Newest sequence ever stored.
    pub last_sequence: u64,
    /// Stream creation time (server clock, Unix ms), if reported.
    pub created_ms: Option<u64>,
    /// Server clock at the probe (Unix ms), if reported.
    pub server_now_ms: Option<u64>,
    /// The stream's limits.
    pub limits: LogLimits,
}

/// A resume position: the revision after which delivery continues, and its write time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResumeCursor {
    /// The last applied revision.
    pub revision: u64,
    /// Its write time (server Unix ms), when known.
    pub written_ms: Option<u64>,
}

impl ResumeCursor {
    /// `None` when the cursor has no u64 revision or revision 0: such a cursor means "full watch".
    pub fn of(cursor: &WatchCursor) -> Option<Self> {
        let revision = cursor.as_u64().filter(|&r| r != 0)?;
        Some(Self {
            revision,
            written_ms: cursor.written_ms(),
        })
    }
}

/// Why a resume point is not usable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExpiryCause {
    /// The cursor's successor is below the stream's first sequence.
    BelowFloor {
        /// The resume revision.
        revision: u64,
        /// The stream's first sequence.
        first_sequence: u64,
    },
    /// The cursor is above the stream's last sequence (lost tail or recreated stream).
    AheadOfStream {
        /// The resume revision.
        revision: u64,
        /// The stream's last sequence.
        last_sequence: u64,
    },
    /// The stream was created more than the slack after the cursor's write.
    Recreated {
        /// Stream creation time (Unix ms).
        created_ms: u64,
        /// The cursor's write time (Unix ms).
        written_ms: u64,
    },
    /// The server refused the start position.
    ServerRefused,
    /// While streaming, the floor passed the frontier's successor.
    FloorPassed {
        /// The last revision forwarded.
        frontier: u64,
        /// The stream's first sequence.
        first_sequence: u64,
    },
}

impl fmt::Display for ExpiryCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpiryCause::BelowFloor {
                revision,
                first_sequence,
            } => write!(
                f,
                "cursor {revision} is below the retention floor (first revision {first_sequence})"
            ),
            ExpiryCause::AheadOfStream {
                revision,
                last_sequence,
            } => write!(
                f,
                "cursor {revision} is ahead of the bucket (last revision {last_sequence})"
            ),
            ExpiryCause::Recreated {
                created_ms,
                written_ms,
            } => write!(
                f,
                "bucket created at {created_ms} ms, after the cursor's write at {written_ms} ms: it was recreated"
            ),
            ExpiryCause::ServerRefused => write!(f, "the server refused the start position"),
            ExpiryCause::FloorPassed {
                frontier,
                first_sequence,
            } => write!(
                f,
                "retention floor {first_sequence} passed the watch frontier {frontier}"
            ),
        }
    }
}

/// The pre-check before a resumed consumer is created (docs/protocols/resume-guard.md,
/// "Kernels"): `Ok(e)` = resume after revision `e`.
pub fn plan_resume(cursor: &ResumeCursor, facts: &StreamFacts) -> Result<u64, ExpiryCause> {
    let revision = cursor.revision;
    if revision > facts.last_sequence {
        return Err(ExpiryCause::AheadOfStream {
            revision,
            last_sequence: facts.last_sequence,
        });
    }
    if let (Some(created_ms), Some(written_ms)) = (facts.created_ms, cursor.written_ms)
        && created_ms > written_ms.saturating_add(RECREATE_SLACK_MS)
    {
        return Err(ExpiryCause::Recreated {
            created_ms,
            written_ms,
        });
    }
    if resume_window_ok(revision, facts.first_sequence) {
        return Ok(revision);
    }
    if let (Some(written_ms), Some(now_ms)) = (cursor.written_ms, facts.server_now_ms)
        && gap_holds_no_eviction(
            facts.limits.evicts_only_by_age(),
            facts.limits.max_age_ms,
            now_ms.saturating_sub(written_ms),
        )
    {
        return Ok(facts.first_sequence.saturating_sub(1).max(revision));
    }
    Err(ExpiryCause::BelowFloor {
        revision,
        first_sequence: facts.first_sequence,
    })
}

/// The post-check after the consumer exists (eviction may race its creation).
pub fn recheck_resume(effective: u64, facts: &StreamFacts) -> Result<(), ExpiryCause> {
    if effective > facts.last_sequence {
        return Err(ExpiryCause::AheadOfStream {
            revision: effective,
            last_sequence: facts.last_sequence,
        });
    }
    if !resume_window_ok(effective, facts.first_sequence) {
        return Err(ExpiryCause::BelowFloor {
            revision: effective,
            first_sequence: facts.first_sequence,
        });
    }
    Ok(())
}

/// How a guard judges gaps in delivered revisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GuardMode {
    /// Unfiltered (All-scope) watch: every revision is delivered, so a gap is evidence.
    Dense,
    /// Filtered watch: gaps are expected and cannot be judged.
    Sparse,
}

/// How a watch over `prefixes` is guarded (an addition): [`GuardMode::Dense`]
/// when the scope is unfiltered (some prefix is `""`, so the consumer delivers
/// every revision of the bucket and a gap is evidence of eviction), otherwise
/// [`GuardMode::Sparse`]. Both backends take the mode from here, so
/// `watch_prefix_from("")` is guarded exactly like `watch_all_from`.
pub fn guard_mode(prefixes: &[&str]) -> GuardMode {
    if prefixes.contains(&"") {
        GuardMode::Dense
    } else {
        GuardMode::Sparse
    }
}
