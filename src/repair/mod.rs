//! Cursor-expiry repair configuration (docs/protocols/repair.md, "What this version does:
//! `ExpiryRepair::None`"): what `watch_applied` does when its cursor expires, and the
//! restore source it can restore from. The decisions (arming, planning, the per-key rule)
//! are `protocol` kernels.
//!
//! The repair I/O toolkit the fold executor drives (docs/protocols/repair.md, "Repair I/O: listing,
//! sorting, diffs") lives in the submodules: `sorter` and `spill` (the external key
//! sort), `relist` (listing, merge-join, delete chunks), `restore_diff` (the restore diff,
//! the listed-live filter, rewrite chunks), `dir_source` (a local-directory restore
//! source). They carry out decisions; they take none.

mod dir_source;
mod error;
mod relist;
mod restore_diff;
mod sorter;
mod spill;
#[cfg(test)]
mod test_support;

pub use dir_source::DirRestore;
pub(crate) use error::RepairKind;
pub(crate) use relist::{DeleteChunks, relist_stale, sort_listing};
pub(crate) use restore_diff::{RewriteChunks, filter_listed_live, restore_diff};
pub(crate) use sorter::SORT_RUN_BYTES;
#[cfg(feature = "testkit")]
pub use sorter::sort_keys_external;

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use crate::artifact::ExportManifest;
use crate::kv::KvReader;
use crate::protocol::RepairMode;
use crate::snapshot::SnapshotError;

/// What the fold does when its cursor expires.
pub enum ExpiryRepair<S> {
    /// Re-list only (full state-sync watch), with a warning that deletes in the gap may persist.
    None,
    /// Key-listing diff, then re-list; refused on buckets whose listing is not the truth.
    Relist(Arc<dyn KvReader>),
    /// Replace the in-scope fold from the newest artifact.
    Restore {
        /// Lists live keys so a restore never deletes one.
        reader: Arc<dyn KvReader>,
        /// Where artifacts come from.
        restore: Arc<dyn RestoreSource<S>>,
    },
    /// Relist when the listing is the truth, restore otherwise.
    Auto {
        /// Lists live keys.
        reader: Arc<dyn KvReader>,
        /// Where artifacts come from.
        restore: Arc<dyn RestoreSource<S>>,
    },
}

impl<S> ExpiryRepair<S> {
    /// The mode kernel functions take.
    pub(crate) fn mode(&self) -> RepairMode {
        match self {
            ExpiryRepair::None => RepairMode::None,
            ExpiryRepair::Relist(_) => RepairMode::Relist,
            ExpiryRepair::Restore { .. } => RepairMode::Restore,
            ExpiryRepair::Auto { .. } => RepairMode::Auto,
        }
    }
}

impl<S> From<Option<Arc<dyn KvReader>>> for ExpiryRepair<S> {
    /// `None` → `ExpiryRepair::None`, `Some(reader)` → `ExpiryRepair::Relist(reader)`.
    fn from(reader: Option<Arc<dyn KvReader>>) -> Self {
        match reader {
            None => ExpiryRepair::None,
            Some(reader) => ExpiryRepair::Relist(reader),
        }
    }
}

/// A source of artifacts to restore a fold from.
#[async_trait]
pub trait RestoreSource<S: Send>: Send + Sync {
    /// The newest artifact's manifest, without its payload.
    async fn latest(&self) -> Result<ExportManifest, SnapshotError>;
    /// Downloads, verifies and opens the newest artifact as a temporary fold (it may
    /// be newer than what `latest` said).
    async fn fetch(&self) -> Result<RestoredFold<S>, SnapshotError>;
    /// A directory on the fold's filesystem for repair scratch files; `None` = the
    /// system temp dir.
    fn scratch_dir(&self) -> Option<PathBuf> {
        None
    }
}

/// An opened artifact fold plus anything that must outlive it. Dropping it drops
/// the fold first, then the guards (last added first).
pub struct RestoredFold<S> {
    manifest: ExportManifest,
    scratch: Option<PathBuf>,
    fold: Option<S>,
    guards: Vec<Box<dyn Any + Send>>,
}

impl<S> RestoredFold<S> {
    /// An opened artifact fold and its manifest.
    pub fn new(manifest: ExportManifest, fold: S) -> Self {
        Self {
            manifest,
            scratch: None,
            fold: Some(fold),
            guards: Vec::new(),
        }
    }

    /// Where the restore spills keys (put it on the fold's filesystem); last call wins.
    #[must_use]
    pub fn scratch_in(mut self, dir: impl Into<PathBuf>) -> Self {
        self.scratch = Some(dir.into());
        self
    }

    /// Keeps `guard` (e.g. the temporary directory of the fold's files) alive until
    /// after the fold is dropped. Every call adds a guard.
    #[must_use]
    pub fn holding(mut self, guard: impl Any + Send) -> Self {
        self.guards.push(Box::new(guard));
        self
    }

    /// The artifact's manifest.
    pub fn manifest(&self) -> &ExportManifest {
        &self.manifest
    }

    /// The opened fold.
    pub fn fold(&self) -> &S {
        self.fold
            .as_ref()
            .expect("the fold is present until the RestoredFold is dropped")
    }

    /// The scratch directory set with [`scratch_in`](RestoredFold::scratch_in).
    pub fn scratch(&self) -> Option<&PathBuf> {
        self.scratch.as_ref()
    }
}

impl<S> Drop for RestoredFold<S> {
    fn drop(&mut self) {
        drop(self.fold.take());
        while let Some(guard) = self.guards.pop() {
            drop(guard);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::kv::WatchCursor;

    struct Noisy(&'static str, Arc<Mutex<Vec<&'static str>>>);
    impl Drop for Noisy {
        fn drop(&mut self) {
            self.1.lock().unwrap().push(self.0);
        }
    }

    #[test]
    fn fold_drops_before_its_guards_last_added_first() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let manifest = ExportManifest {
            schema_version: 2,
            backend: "append-log".into(),
            backend_version: "3".into(),
            cursor: WatchCursor::from_u64(1),
            created_at_unix: 0,
            files: vec![],
            scope: None,
        };
        let restored = RestoredFold::new(manifest, Noisy("fold", Arc::clone(&log)))
            .holding(Noisy("dir", Arc::clone(&log)))
            .holding(Noisy("lock", Arc::clone(&log)));
        assert_eq!(restored.fold().0, "fold");
        drop(restored);
        assert_eq!(*log.lock().unwrap(), vec!["fold", "lock", "dir"]);
    }

    #[test]
    fn option_reader_converts() {
        let none: ExpiryRepair<()> = None.into();
        assert_eq!(none.mode(), RepairMode::None);
    }
}
