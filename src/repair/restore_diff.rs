//! Restore repair I/O (docs/protocols/repair.md, "Repair I/O: listing, sorting, diffs"): the diff
//! of the local fold against an artifact fold (keys to rewrite spilled, delete candidates
//! held), the listed-live filter and the rewrite chunks. Every per-key verdict is
//! `protocol::restore_key`'s; the prefix walk is `protocol::repair::disjoint_prefixes`'s.

use std::collections::HashSet;
use std::path::Path;

use super::error::{RepairIoError, RepairKind};
use super::spill::{SpillReader, SpillWriter};
use crate::kv::{KvEntry, KvReader, KvUpdate};
use crate::protocol::repair::disjoint_prefixes;
use crate::protocol::{KeyRestore, KeyState, restore_key};
use crate::snapshot::{SnapshotError, SnapshotStore};

/// What a restore must change in the local fold.
#[derive(Debug)]
pub(crate) struct RestoreDiff {
    /// How many keys take the artifact's entry.
    pub(crate) rewrites: u64,
    /// Those keys, ascending within each prefix, prefixes ascending.
    pub(crate) rewrite_keys: SpillReader,
    /// Local keys the artifact fold does not hold: deleted between the two cursors,
    /// unless the bucket still lists them ([`filter_listed_live`]).
    pub(crate) candidates: HashSet<String>,
}

/// A key's state in a fold: `At(revision)` when present.
fn state_of(entry: Option<&KvEntry>) -> KeyState {
    entry.map_or(KeyState::Absent, |e| KeyState::At(e.version.as_u64()))
}

/// Diffs `local` against `artifact` over `disjoint_prefixes(scope)`. Artifact keys with
/// `restore_key(local, artifact, identical, false) == TakeArtifact` are spilled into
/// `scratch` (`None` = the system temp dir); local keys with
/// `restore_key(At(l), Absent, false, false) == Delete` that the artifact fold lacks
/// become candidates. Keys outside the scope are never read.
pub(crate) fn restore_diff<L, A>(
    local: &L,
    artifact: &A,
    scope: &[String],
    scratch: Option<&Path>,
) -> Result<RestoreDiff, RepairIoError>
where
    L: SnapshotStore,
    A: SnapshotStore,
{
    let mut spill = SpillWriter::create(REPAIR, scratch)?;
    let mut candidates = HashSet::new();
    for prefix in disjoint_prefixes(scope) {
        // An error met inside a walk stops it with a placeholder; `cause` keeps it.
        let mut cause: Option<RepairIoError> = None;
        let walked = artifact.for_each_in_range(&prefix, |theirs| {
            let step = take_artifact(local, &theirs).and_then(|take| {
                if take {
                    spill.push(&theirs.key)?;
                }
                Ok(())
            });
            stop_on(step, &mut cause)
        });
        finish_walk(walked, cause, "reading the artifact fold")?;

        let mut cause: Option<RepairIoError> = None;
        let walked = local.for_each_in_range(&prefix, |ours| {
            let step = delete_candidate(artifact, &ours).map(|delete| {
                if delete {
                    candidates.insert(ours.key);
                }
            });
            stop_on(step, &mut cause)
        });
        finish_walk(walked, cause, "reading the local fold")?;
    }
    Ok(RestoreDiff {
        rewrites: spill.records(),
        rewrite_keys: spill.finish()?,
        candidates,
    })
}

/// Every toolkit error of this file is the restore's.
const REPAIR: RepairKind = RepairKind::Restore;

/// A fold read failure at `step`.
fn fold_error(step: &'static str) -> impl FnOnce(SnapshotError) -> RepairIoError {
    move |source| RepairIoError::Fold {
        repair: REPAIR,
        step,
        source,
    }
}

/// Whether the artifact entry `theirs` replaces the local one:
/// `restore_key(local, At(theirs), identical, false) == TakeArtifact`, where
/// `identical` = same version bytes and same value.
fn take_artifact<L: SnapshotStore>(local: &L, theirs: &KvEntry) -> Result<bool, RepairIoError> {
    let ours = local
        .get(&theirs.key)
        .map_err(fold_error("reading the local fold"))?;
    let identical = ours.as_ref().is_some_and(|o| {
        o.version.as_bytes() == theirs.version.as_bytes() && o.value == theirs.value
    });
    let verdict = restore_key(
        state_of(ours.as_ref()),
        KeyState::At(theirs.version.as_u64()),
        identical,
        false,
    );
    Ok(verdict == KeyRestore::TakeArtifact)
}

/// Whether the local entry `ours` is a delete candidate:
/// `restore_key(At(ours), Absent, false, false) == Delete` and the artifact fold
/// lacks the key.
fn delete_candidate<A: SnapshotStore>(artifact: &A, ours: &KvEntry) -> Result<bool, RepairIoError> {
    let verdict = restore_key(state_of(Some(ours)), KeyState::Absent, false, false);
    if verdict != KeyRestore::Delete {
        return Ok(false);
    }
    let theirs = artifact
        .get(&ours.key)
        .map_err(fold_error("reading the artifact fold"))?;
    Ok(theirs.is_none())
}

/// Turns a step's error into the placeholder that stops a store walk, keeping the cause.
fn stop_on(
    step: Result<(), RepairIoError>,
    cause: &mut Option<RepairIoError>,
) -> Result<(), SnapshotError> {
    step.map_err(|e| {
        *cause = Some(e);
        SnapshotError::Backend("stopped by a repair step".into())
    })
}

/// The result of a store walk: the kept cause first, else the store's own error.
fn finish_walk(
    walked: Result<(), SnapshotError>,
    cause: Option<RepairIoError>,
    step: &'static str,
) -> Result<(), RepairIoError> {
    match cause {
        Some(cause) => Err(cause),
        None => walked.map_err(fold_error(step)),
    }
}

/// Removes from `candidates` every key the bucket lists as live under
/// `disjoint_prefixes(scope)` (`restore_key(At(_), Absent, false, listed_live = true)
/// == Keep`: its live value is a write after the artifact's cursor, which the resume
/// delivers). Returns the keys it removed (the kept local keys), in listing order.
/// Lists nothing when there are no candidates. A listing error fails with the prefix
/// named.
pub(crate) async fn filter_listed_live(
    reader: &dyn KvReader,
    scope: &[String],
    candidates: &mut HashSet<String>,
) -> Result<Vec<String>, RepairIoError> {
    let mut removed = Vec::new();
    if candidates.is_empty() {
        return Ok(removed);
    }
    let kept = restore_key(KeyState::At(None), KeyState::Absent, false, true) == KeyRestore::Keep;
    for prefix in disjoint_prefixes(scope) {
        let result = reader
            .for_each_key(&prefix, &mut |key| {
                if kept && candidates.remove(&key) {
                    removed.push(key);
                }
            })
            .await;
        result.map_err(|source| RepairIoError::Listing {
            repair: REPAIR,
            prefix,
            source,
        })?;
    }
    Ok(removed)
}

/// The restore's puts: the spilled rewrite keys with the artifact fold's entries.
#[derive(Debug)]
pub(crate) struct RewriteChunks {
    keys: SpillReader,
}

impl RewriteChunks {
    /// Puts for the keys of `diff.rewrite_keys`.
    pub(crate) fn new(keys: SpillReader) -> Self {
        Self { keys }
    }

    /// The next at most `max` (at least 1) keys as `Put(entry from the artifact fold)`;
    /// empty when all were handed out. A key the artifact fold no longer holds fails
    /// ("artifact fold lost a key mid-restore").
    pub(crate) fn next_chunk<A: SnapshotStore>(
        &mut self,
        artifact: &A,
        max: usize,
    ) -> Result<Vec<KvUpdate>, RepairIoError> {
        let mut chunk = Vec::new();
        while chunk.len() < max.max(1) {
            let Some(key) = self.keys.next_key()? else {
                break;
            };
            let entry = artifact
                .get(&key)
                .map_err(fold_error("reading the artifact fold"))?
                .ok_or(RepairIoError::ArtifactLostKey {
                    repair: REPAIR,
                    key,
                })?;
            chunk.push(KvUpdate::Put(entry));
        }
        Ok(chunk)
    }
}

#[cfg(test)]
#[path = "restore_diff_tests.rs"]
mod tests;
