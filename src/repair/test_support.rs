//! Test helpers of the repair toolkit's unit tests: folds built from entry lists (an
//! `AppendLogSnapshot` on disk, or a map-backed store for exhaustive sweeps), memory
//! buckets, and readers that record or fail listings. Tests only.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::artifact::ExportManifest;
use crate::kv::{KvEntry, KvError, KvReader, KvUpdate, VersionToken, WatchCursor};
use crate::memory::MemoryConnection;
use crate::snapshot::{AppendLogSnapshot, SnapshotError, SnapshotStore};
use crate::stores::{Connection, KvStore, StoreConfig};

/// An entry `key` at revision `rev` with value `value`.
pub(crate) fn entry(key: &str, rev: u64, value: &str) -> KvEntry {
    KvEntry {
        key: key.to_string(),
        value: value.as_bytes().to_vec(),
        version: VersionToken::from_u64(rev),
    }
}

/// An append log at `dir/name` holding exactly `entries`.
pub(crate) fn append_log(dir: &Path, name: &str, entries: &[KvEntry]) -> AppendLogSnapshot {
    let (_, mut store) = AppendLogSnapshot::load(&dir.join(name)).unwrap();
    let batch: Vec<KvUpdate> = entries.iter().cloned().map(KvUpdate::Put).collect();
    let high = entries
        .iter()
        .filter_map(|e| e.version.as_u64())
        .max()
        .unwrap_or(0);
    store
        .apply(&batch, &WatchCursor::from_u64(high.max(1)))
        .unwrap();
    store
}

/// A fold in a map: the store contract's reads and applies, nothing durable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MapStore(pub(crate) BTreeMap<String, KvEntry>);

impl MapStore {
    /// A fold holding `entries`.
    pub(crate) fn of(entries: &[KvEntry]) -> Self {
        Self(entries.iter().map(|e| (e.key.clone(), e.clone())).collect())
    }

    /// Folds one update as a snapshot store does.
    pub(crate) fn fold(&mut self, update: &KvUpdate) {
        match update {
            KvUpdate::Put(e) => {
                self.0.insert(e.key.clone(), e.clone());
            }
            KvUpdate::Delete { key, .. } | KvUpdate::Purge { key, .. } => {
                self.0.remove(key);
            }
        }
    }
}

impl SnapshotStore for MapStore {
    fn load(_: &Path) -> Result<(WatchCursor, Self), SnapshotError> {
        Ok((WatchCursor::none(), Self::default()))
    }

    fn apply(&mut self, batch: &[KvUpdate], _: &WatchCursor) -> Result<(), SnapshotError> {
        batch.iter().for_each(|u| self.fold(u));
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<KvEntry>, SnapshotError> {
        Ok(self.0.get(key).cloned())
    }

    fn range(&self, prefix: &str) -> Result<Vec<KvEntry>, SnapshotError> {
        Ok(self
            .0
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e.clone())
            .collect())
    }

    fn cursor(&self) -> WatchCursor {
        WatchCursor::none()
    }

    fn export_to(&mut self, _: &Path) -> Result<ExportManifest, SnapshotError> {
        Err(SnapshotError::Backend(
            "a test map store does not export".into(),
        ))
    }
}

/// A connected memory bucket holding `keys` (written in the given order, value `v`).
pub(crate) async fn memory_bucket(keys: &[&str]) -> Arc<dyn KvStore> {
    let conn = MemoryConnection::new();
    conn.connect().await.unwrap();
    let store = conn
        .store_with_config(StoreConfig {
            name: "repair".to_string(),
            ..StoreConfig::default()
        })
        .await
        .unwrap();
    let writer = store.writer().expect("the memory backend writes");
    for key in keys {
        writer.put(key, b"v").await.unwrap();
    }
    store
}

/// A reader that records the prefixes it lists and can fail one prefix's listing.
pub(crate) struct RecordingReader {
    inner: Arc<dyn KvReader>,
    /// Every prefix listed, in order.
    pub(crate) listed: Mutex<Vec<String>>,
    /// Listing this prefix fails with `Timeout` after delivering its keys.
    pub(crate) fail_prefix: Option<String>,
}

impl RecordingReader {
    /// Records listings of `inner`.
    pub(crate) fn new(inner: Arc<dyn KvReader>, fail_prefix: Option<&str>) -> Self {
        Self {
            inner,
            listed: Mutex::new(Vec::new()),
            fail_prefix: fail_prefix.map(str::to_string),
        }
    }
}

#[async_trait]
impl KvReader for RecordingReader {
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
        self.listed.lock().unwrap().push(prefix.to_string());
        self.inner.for_each_key(prefix, f).await?;
        if self.fail_prefix.as_deref() == Some(prefix) {
            return Err(KvError::Timeout);
        }
        Ok(())
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<KvEntry>, KvError> {
        self.inner.scan(prefix).await
    }

    async fn entry(&self, key: &str) -> Result<Option<KvEntry>, KvError> {
        self.inner.entry(key).await
    }
}
