//! The `SnapshotStore` trait: the durable-fold contract every snapshot backend keeps
//! (docs/snapshots.md, "The store contract (`SnapshotStore`)"). Definitions only; backends
//! implement it.

use std::path::Path;

use super::SnapshotError;
use crate::artifact::ExportManifest;
use crate::kv::{KvEntry, KvUpdate, WatchCursor};
use crate::protocol::identity::BucketIdentity;

/// A durable fold: a batch and its cursor become durable together; reads see the
/// fold; `export_to` writes an artifact whose manifest cursor equals `cursor()`.
///
/// Methods are synchronous and may block; `watch_applied` runs `apply` and `export_to` on
/// blocking tasks. Invariants (docs/snapshots.md, "The store contract (`SnapshotStore`)"):
/// fold + tail = truth; data and cursor durable together (a cursor never ahead of its
/// data); a failed apply leaves `cursor()` and the visible state as before; an empty batch
/// still advances the cursor; empty values are present entries; purge folds as delete.
pub trait SnapshotStore: Sized + Send {
    /// Opens or resumes the store at `path` with safe defaults; returns the persisted
    /// cursor (`none` if fresh) and the store.
    fn load(path: &Path) -> Result<(WatchCursor, Self), SnapshotError>;

    /// Folds `batch` (raw, revision-ordered updates since the last flush, including
    /// ones `parse` rejected) and makes `cursor` durable together with it.
    fn apply(&mut self, batch: &[KvUpdate], cursor: &WatchCursor) -> Result<(), SnapshotError>;

    /// The live entry, or `None` if absent or deleted.
    fn get(&self, key: &str) -> Result<Option<KvEntry>, SnapshotError>;

    /// Every live entry whose key starts with `prefix` (byte prefix), ascending by key.
    fn range(&self, prefix: &str) -> Result<Vec<KvEntry>, SnapshotError>;

    /// The same set and order as [`range`](SnapshotStore::range), streamed; an `Err`
    /// from `f` stops the scan and is returned.
    fn for_each_in_range(
        &self,
        prefix: &str,
        mut f: impl FnMut(KvEntry) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        for entry in self.range(prefix)? {
            f(entry)?;
        }
        Ok(())
    }

    /// Whether any entry exists.
    fn has_entries(&self) -> Result<bool, SnapshotError> {
        Ok(!self.range("")?.is_empty())
    }

    /// The last cursor made durable by `apply`, or `none`.
    fn cursor(&self) -> WatchCursor;

    /// Writes an artifact at `dest_dir` (absent or empty); on `Ok` it is complete and
    /// fsynced, and its manifest cursor equals `cursor()`.
    fn export_to(&mut self, dest_dir: &Path) -> Result<ExportManifest, SnapshotError>;

    /// The identity of the bucket this fold was folded from, as last recorded by
    /// [`record_bucket_identity`](SnapshotStore::record_bucket_identity) (or carried
    /// in by an import); `None` when none was recorded. An addition (issue 9): the
    /// default records nothing, so a store that keeps none stays unverified and
    /// `watch_applied` can only check its cursor against the bucket.
    fn bucket_identity(&self) -> Result<Option<BucketIdentity>, SnapshotError> {
        Ok(None)
    }

    /// Durably records the identity of the bucket this fold is folded from,
    /// replacing any earlier one. `watch_applied` calls it before the first apply
    /// of a store that recorded none (or of an empty one), and a backend's
    /// `export_to` names it in the artifact's manifest. An addition (issue 9); the
    /// default keeps nothing.
    fn record_bucket_identity(&mut self, identity: &BucketIdentity) -> Result<(), SnapshotError> {
        let _ = identity;
        Ok(())
    }
}
