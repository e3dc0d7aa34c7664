//! Pure decision kernels and sans-IO machines: every decision that protects data.
//!
//! Nothing in this module performs I/O, reads a clock, draws randomness, takes a
//! lock or awaits: time is an argument and machines report their next deadline.
//! Executors (the backends, the fold loop) and verifiers (models, proptest, fuzz
//! bodies, simulations) call these same items. The root holds the twelve
//! compatibility kernels, their five enums and [`cursor_rank`].

pub mod fold;
pub mod identity;
pub mod lease;
pub mod log;
pub mod manifest;
pub mod nats;
pub mod refusal;
pub mod repair;
pub mod resume;
pub mod subject;
pub mod time;

use crate::kv::{Retention, WatchCursor};

/// The state of a published artifact pointer, as seen by a publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PointerState {
    /// No pointer is published.
    Absent,
    /// A pointer exists; `rank` is `None` when it could not be parsed.
    Present {
        /// The rank of the cursor the pointer names, when readable.
        rank: Option<u64>,
    },
}

/// What a fold does when its cursor expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RepairMode {
    /// Re-list only, with a warning.
    None,
    /// Key-listing diff.
    Relist,
    /// Replace the fold from the newest artifact.
    Restore,
    /// Relist when the listing is the truth, restore otherwise.
    Auto,
}

/// The repair a fold carries out for a mode and a listing-truth reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RepairPlan {
    /// Re-list without deleting anything.
    ReListOnly,
    /// Relist with deletes of unlisted keys.
    Relist,
    /// Restore from an artifact.
    Restore,
    /// Refuse: the listing is not the truth.
    RefuseRelist,
}

/// A key's presence and revision on one side of a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// The key is absent.
    Absent,
    /// The key is present at this revision (`None` = unknown).
    At(Option<u64>),
}

/// What a restore does with one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyRestore {
    /// Keep the local entry.
    Keep,
    /// Take the artifact's entry.
    TakeArtifact,
    /// Delete the local entry.
    Delete,
}

/// The one cursor ordering: the u64 revision, or 0 for a revisionless cursor.
pub fn cursor_rank(cursor: &WatchCursor) -> u64 {
    cursor.as_u64().unwrap_or(0)
}

/// Whether a pointer may move to a candidate of rank `candidate_rank`: never to an
/// older cursor; an unparseable pointer is replaceable.
pub fn pointer_publish_allowed(current: &PointerState, candidate_rank: u64) -> bool {
    match current {
        PointerState::Absent | PointerState::Present { rank: None } => true,
        PointerState::Present { rank: Some(n) } => candidate_rank >= *n,
    }
}

/// Whether a payload may be pruned: never the pointer target, never one not aged
/// out, never one whose name is unparseable, only ranks strictly below the pointer's.
pub fn payload_prunable(
    payload_rank: Option<u64>,
    pointer_rank: u64,
    is_pointer_target: bool,
    aged_out: bool,
) -> bool {
    if is_pointer_target || !aged_out {
        return false;
    }
    payload_rank.is_some_and(|r| r < pointer_rank)
}

/// A resume after `revision` misses nothing: `first_sequence <= revision + 1` (saturating).
pub fn resume_window_ok(revision: u64, first_sequence: u64) -> bool {
    first_sequence <= revision.saturating_add(1)
}

/// A restore moves the fold strictly forward.
pub fn restore_ahead(artifact_revision: u64, local_revision: u64) -> bool {
    artifact_revision > local_revision
}

/// A restore moves forward and lands inside retention.
pub fn restore_allowed(artifact_revision: u64, local_revision: u64, first_sequence: u64) -> bool {
    restore_ahead(artifact_revision, local_revision)
        && resume_window_ok(artifact_revision, first_sequence)
}

/// "Not listed" may be read as "deleted" only when nothing can have aged out.
pub fn listing_is_truth(
    evicts_current_values: bool,
    first_revision: u64,
    seen_evicting: bool,
) -> bool {
    !seen_evicting && (!evicts_current_values || first_revision <= 1)
}

/// [`listing_is_truth`] over an optional retention reading; `None` when unknown.
pub fn listing_truth(retention: Option<Retention>, seen_evicting: bool) -> Option<bool> {
    match retention {
        Some(r) => Some(listing_is_truth(
            r.evicts_current_values,
            r.first_revision,
            seen_evicting,
        )),
        None if seen_evicting => Some(false),
        None => None,
    }
}

/// The repair to run for a mode and a listing-truth reading.
pub fn plan_repair(mode: RepairMode, listing_truth: Option<bool>) -> RepairPlan {
    match (mode, listing_truth) {
        (RepairMode::None, _) => RepairPlan::ReListOnly,
        (RepairMode::Relist, Some(false)) => RepairPlan::RefuseRelist,
        (RepairMode::Relist, _) => RepairPlan::Relist,
        (RepairMode::Restore, _) => RepairPlan::Restore,
        (RepairMode::Auto, Some(true)) => RepairPlan::Relist,
        (RepairMode::Auto, _) => RepairPlan::Restore,
    }
}

/// Whether a start without a cursor must run a repair before it may seed the fold.
pub fn cursorless_start_needs_repair(
    mode: RepairMode,
    fold_has_data: bool,
    listing_truth: Option<bool>,
) -> bool {
    match mode {
        RepairMode::None => false,
        _ if fold_has_data => true,
        RepairMode::Restore | RepairMode::Auto => listing_truth == Some(false),
        RepairMode::Relist => false,
    }
}

/// What a restore does with one key: no key regresses, no live key is deleted.
pub fn restore_key(
    local: KeyState,
    artifact: KeyState,
    identical: bool,
    listed_live: bool,
) -> KeyRestore {
    match (local, artifact) {
        (KeyState::At(Some(l)), KeyState::At(Some(a))) if l > a => KeyRestore::Keep,
        (KeyState::At(Some(l)), KeyState::At(Some(a))) if l < a => KeyRestore::TakeArtifact,
        (KeyState::At(_), KeyState::At(_)) if identical => KeyRestore::Keep,
        (KeyState::At(_), KeyState::At(_)) => KeyRestore::TakeArtifact,
        (KeyState::Absent, KeyState::At(_)) => KeyRestore::TakeArtifact,
        (KeyState::At(_), KeyState::Absent) if listed_live => KeyRestore::Keep,
        (KeyState::At(_), KeyState::Absent) => KeyRestore::Delete,
        (KeyState::Absent, KeyState::Absent) => KeyRestore::Keep,
    }
}

/// On an age-only bucket, a cursor message at most half of `max_age` old proves
/// every message after it that is gone was superseded, not evicted.
pub fn gap_holds_no_eviction(age_only: bool, max_age_ms: u64, cursor_age_ms: u64) -> bool {
    age_only && max_age_ms > 0 && cursor_age_ms.saturating_mul(2) <= max_age_ms
}

/// The first sequence after `revision`; `None` instead of wrapping `u64::MAX` to 0.
pub fn resume_start_sequence(revision: u64) -> Option<u64> {
    revision.checked_add(1)
}

#[cfg(test)]
#[path = "root_tests.rs"]
mod tests;
