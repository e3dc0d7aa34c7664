//! The restore world's wiring (docs/verification.md, "Deterministic simulation"):
//! `SimRestore`, the real `DirRestore` over the exporter's artifact directory
//! handing the fetched fold to the executor as a read-only `SimStore`; and
//! `SimReader`, the main node's repair listing, which records when each prefix was
//! listed (the board's G2 check) and carries the `ListingHidesKeys` mutation.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use kvfold::{
    DirRestore, ExportManifest, KvEntry, KvError, KvReader, RestoreSource, RestoredFold,
    SnapshotError,
};

use super::board::{Shared, lock};
use super::store::{Mutation, SimStore};

/// The main node's `RestoreSource`: `DirRestore` picks, verifies and imports the
/// newest artifact; the executor reads it through `SimStore::artifact`.
pub struct SimRestore {
    pub inner: DirRestore,
    pub board: Shared,
}

#[async_trait]
impl RestoreSource<SimStore> for SimRestore {
    async fn latest(&self) -> Result<ExportManifest, SnapshotError> {
        RestoreSource::latest(&self.inner).await
    }

    async fn fetch(&self) -> Result<RestoredFold<SimStore>, SnapshotError> {
        let restored = RestoreSource::fetch(&self.inner).await?;
        let manifest = restored.manifest().clone();
        lock(&self.board).nodes[0].restoring = Some(manifest.cursor.rank());
        let view = SimStore::artifact(restored, Arc::clone(&self.board));
        let fold = RestoredFold::new(manifest, view);
        Ok(match self.scratch_dir() {
            Some(dir) => fold.scratch_in(dir),
            None => fold,
        })
    }

    fn scratch_dir(&self) -> Option<PathBuf> {
        RestoreSource::scratch_dir(&self.inner)
    }
}

/// The main node's repair listing over its own connection.
pub struct SimReader {
    pub inner: Arc<dyn KvReader>,
    pub board: Shared,
}

#[async_trait]
impl KvReader for SimReader {
    async fn get(&self, key: &str) -> Result<Option<KvEntry>, KvError> {
        self.inner.get(key).await
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        self.inner.keys(prefix).await
    }

    async fn for_each_key(
        &self,
        prefix: &str,
        f: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), KvError> {
        let hide = {
            let mut b = lock(&self.board);
            let at = b.truth.last();
            b.listings.insert(prefix.to_string(), at);
            b.mutation == Mutation::ListingHidesKeys
        };
        if hide {
            return self.inner.for_each_key(prefix, &mut |_| {}).await;
        }
        self.inner.for_each_key(prefix, f).await
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<KvEntry>, KvError> {
        self.inner.scan(prefix).await
    }

    async fn entry(&self, key: &str) -> Result<Option<KvEntry>, KvError> {
        self.inner.entry(key).await
    }
}
