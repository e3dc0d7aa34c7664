//! Store handles of the embedded backend: `MemoryStore` (a `KvStore`) and the
//! bucket handle behind every trait object it hands out. Each call validates its
//! input, passes the fault gate, then runs against the bucket log under the
//! bucket mutex. Watches are delegated to `watch`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc::Sender;

use super::faults::MemoryOp;
use super::log::{BucketLog, Entry, WriteOp};
use super::registry::BucketCell;
use super::server::ConnInner;
use super::watch::{WatchSpec, run_watch};
use crate::kv::{
    BucketStatus, KvEntry, KvError, KvFencedWriter, KvPurge, KvReader, KvTtl, KvUpdate, KvWatcher,
    KvWriter, LeaseFence, Retention, VersionToken, WatchCursor,
};
use crate::protocol::refusal::{
    cas_revision, fence_revision, require_key as check_key, require_prefix,
};
use crate::protocol::resume::guard_mode;
use crate::stores::KvStore;

/// A bucket of the embedded server, bound to its name.
pub(crate) struct MemoryStore {
    pub(crate) handle: Arc<BucketHandle>,
    pub(crate) ttl: bool,
    pub(crate) fenced: bool,
}

impl KvStore for MemoryStore {
    fn name(&self) -> &str {
        &self.handle.name
    }

    fn reader(&self) -> Arc<dyn KvReader> {
        Arc::clone(&self.handle) as Arc<dyn KvReader>
    }

    fn watcher(&self) -> Option<Arc<dyn KvWatcher>> {
        Some(Arc::clone(&self.handle) as Arc<dyn KvWatcher>)
    }

    fn writer(&self) -> Option<Arc<dyn KvWriter>> {
        Some(Arc::clone(&self.handle) as Arc<dyn KvWriter>)
    }

    fn purge_writer(&self) -> Option<Arc<dyn KvPurge>> {
        Some(Arc::clone(&self.handle) as Arc<dyn KvPurge>)
    }

    fn ttl_writer(&self) -> Option<Arc<dyn KvTtl>> {
        self.ttl.then(|| Arc::clone(&self.handle) as Arc<dyn KvTtl>)
    }

    fn fenced_writer(&self) -> Option<Arc<dyn KvFencedWriter>> {
        self.fenced
            .then(|| Arc::clone(&self.handle) as Arc<dyn KvFencedWriter>)
    }
}

/// The handle behind every trait object of one bucket: a connection and a name.
pub(crate) struct BucketHandle {
    pub(crate) conn: Arc<ConnInner>,
    pub(crate) name: String,
}

fn check_prefix(prefix: &str) -> Result<(), KvError> {
    require_prefix(prefix).map_err(KvError::OperationFailed)
}

impl BucketHandle {
    /// Partition and fault checks, then the live bucket: `(cell, after-commit error)`.
    fn enter(&self, op: MemoryOp) -> Result<(Arc<BucketCell>, Option<KvError>), KvError> {
        if self.conn.is_partitioned() {
            return Err(KvError::Timeout);
        }
        let after = self.conn.server.gate(self.conn.id, op)?;
        let cell = self.conn.server.bucket(&self.name)?;
        Ok((cell, after))
    }

    fn read<T>(&self, op: MemoryOp, f: impl FnOnce(&BucketLog) -> T) -> Result<T, KvError> {
        let (cell, _) = self.enter(op)?;
        Ok(cell.read(self.conn.server.now_ms(), f))
    }

    fn write(&self, op: MemoryOp, write: WriteOp) -> Result<Arc<Entry>, KvError> {
        let (cell, after) = self.enter(op)?;
        let server = &self.conn.server;
        let result = cell.commit(write, server.now_ms(), server.max_payload());
        server.kick_driver(cell.next_deadline_ms());
        let entry = result?;
        match after {
            Some(error) => Err(error),
            None => Ok(entry),
        }
    }

    /// The version a writer gets back: no write time, as on NATS.
    fn written(entry: &Entry) -> VersionToken {
        VersionToken::from_u64(entry.revision)
    }

    async fn watch(
        &self,
        prefixes: &[&str],
        cursor: Option<&WatchCursor>,
        tx: Sender<KvUpdate>,
    ) -> Result<(), KvError> {
        if self.conn.is_partitioned() {
            return Err(KvError::Timeout);
        }
        self.conn.server.gate(self.conn.id, MemoryOp::Watch)?;
        for prefix in prefixes {
            require_prefix(prefix).map_err(KvError::WatchError)?;
        }
        if prefixes.is_empty() {
            return Ok(());
        }
        let cell = self
            .conn
            .server
            .find_bucket(&self.name)
            .ok_or_else(|| KvError::WatchError(format!("bucket {} not found", self.name)))?;
        let spec = WatchSpec {
            conn: Arc::clone(&self.conn),
            cell,
            scope: prefixes.iter().map(|p| (*p).to_string()).collect(),
            cursor: cursor.cloned(),
            mode: guard_mode(prefixes),
        };
        run_watch(spec, tx).await
    }
}

#[async_trait]
impl KvReader for BucketHandle {
    async fn get(&self, key: &str) -> Result<Option<KvEntry>, KvError> {
        check_key(key)?;
        self.read(MemoryOp::Get, |log| {
            log.latest(key)
                .filter(|e| e.is_live_value())
                .and_then(|e| e.to_kv_entry())
        })
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        check_prefix(prefix)?;
        self.read(MemoryOp::Keys, |log| {
            log.live_in_prefix(prefix).map(|e| e.key.clone()).collect()
        })
    }

    async fn for_each_key(
        &self,
        prefix: &str,
        f: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), KvError> {
        check_prefix(prefix)?;
        let mut live: Vec<(u64, String)> = self.read(MemoryOp::Keys, |log| {
            log.live_in_prefix(prefix)
                .map(|e| (e.revision, e.key.clone()))
                .collect()
        })?;
        live.sort_unstable_by_key(|(revision, _)| *revision);
        for (_, key) in live {
            f(key);
        }
        Ok(())
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<KvEntry>, KvError> {
        check_prefix(prefix)?;
        self.read(MemoryOp::Scan, |log| {
            log.live_in_prefix(prefix)
                .filter_map(|e| e.to_kv_entry())
                .collect()
        })
    }

    async fn entry(&self, key: &str) -> Result<Option<KvEntry>, KvError> {
        check_key(key)?;
        self.read(MemoryOp::Entry, |log| {
            log.latest(key).and_then(|e| e.to_kv_entry())
        })
    }
}

#[async_trait]
impl KvWatcher for BucketHandle {
    async fn watch_all(&self, tx: Sender<KvUpdate>) -> Result<(), KvError> {
        self.watch(&[""], None, tx).await
    }

    async fn watch_prefix(&self, prefix: &str, tx: Sender<KvUpdate>) -> Result<(), KvError> {
        self.watch(&[prefix], None, tx).await
    }

    async fn watch_prefixes(&self, prefixes: &[&str], tx: Sender<KvUpdate>) -> Result<(), KvError> {
        self.watch(prefixes, None, tx).await
    }

    async fn watch_all_from(
        &self,
        cursor: &WatchCursor,
        tx: Sender<KvUpdate>,
    ) -> Result<(), KvError> {
        self.watch(&[""], Some(cursor), tx).await
    }

    async fn watch_prefix_from(
        &self,
        prefix: &str,
        cursor: &WatchCursor,
        tx: Sender<KvUpdate>,
    ) -> Result<(), KvError> {
        self.watch(&[prefix], Some(cursor), tx).await
    }

    async fn watch_prefixes_from(
        &self,
        prefixes: &[&str],
        cursor: &WatchCursor,
        tx: Sender<KvUpdate>,
    ) -> Result<(), KvError> {
        self.watch(prefixes, Some(cursor), tx).await
    }

    async fn retention(&self) -> Result<Option<Retention>, KvError> {
        self.read(MemoryOp::Status, |log| Some(log.retention()))
    }

    fn bucket_name(&self) -> Option<&str> {
        Some(&self.name)
    }

    async fn last_revision(&self) -> Result<Option<u64>, KvError> {
        self.read(MemoryOp::Status, |log| Some(log.last_revision()))
    }

    async fn status(&self) -> Result<Option<BucketStatus>, KvError> {
        self.read(MemoryOp::Status, |log| Some(log.status()))
    }
}

#[async_trait]
impl KvWriter for BucketHandle {
    async fn put(&self, key: &str, value: &[u8]) -> Result<VersionToken, KvError> {
        check_key(key)?;
        let op = WriteOp::Put {
            key: key.to_string(),
            value: value.to_vec(),
        };
        self.write(MemoryOp::Put, op).map(|e| Self::written(&e))
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        check_key(key)?;
        let op = WriteOp::Delete {
            key: key.to_string(),
        };
        self.write(MemoryOp::Delete, op).map(|_| true)
    }

    async fn create(&self, key: &str, value: &[u8]) -> Result<VersionToken, KvError> {
        check_key(key)?;
        let op = WriteOp::Create {
            key: key.to_string(),
            value: value.to_vec(),
            ttl: None,
        };
        self.write(MemoryOp::Create, op).map(|e| Self::written(&e))
    }

    async fn update(
        &self,
        key: &str,
        value: &[u8],
        expected: &VersionToken,
    ) -> Result<VersionToken, KvError> {
        check_key(key)?;
        let expected = cas_revision(expected)?;
        let op = WriteOp::Update {
            key: key.to_string(),
            value: value.to_vec(),
            expected,
        };
        self.write(MemoryOp::Update, op).map(|e| Self::written(&e))
    }

    async fn delete_with_version(
        &self,
        key: &str,
        expected: &VersionToken,
    ) -> Result<bool, KvError> {
        check_key(key)?;
        let expected = cas_revision(expected)?;
        let op = WriteOp::DeleteWithVersion {
            key: key.to_string(),
            expected,
        };
        self.write(MemoryOp::DeleteWithVersion, op).map(|_| true)
    }
}

#[async_trait]
impl KvPurge for BucketHandle {
    async fn purge(&self, key: &str) -> Result<(), KvError> {
        check_key(key)?;
        let op = WriteOp::Purge {
            key: key.to_string(),
        };
        self.write(MemoryOp::Purge, op).map(|_| ())
    }
}

fn check_ttl(ttl: Duration) -> Result<(), KvError> {
    if ttl < Duration::from_secs(1) {
        return Err(KvError::OperationFailed(
            "ttl must be at least 1 s".to_string(),
        ));
    }
    Ok(())
}

#[async_trait]
impl KvTtl for BucketHandle {
    async fn put_with_ttl(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<VersionToken, KvError> {
        check_key(key)?;
        check_ttl(ttl)?;
        let op = WriteOp::PutWithTtl {
            key: key.to_string(),
            value: value.to_vec(),
            ttl,
        };
        self.write(MemoryOp::PutWithTtl, op)
            .map(|e| Self::written(&e))
    }

    async fn create_with_ttl(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<VersionToken, KvError> {
        check_key(key)?;
        check_ttl(ttl)?;
        let op = WriteOp::Create {
            key: key.to_string(),
            value: value.to_vec(),
            ttl: Some(ttl),
        };
        self.write(MemoryOp::CreateWithTtl, op)
            .map(|e| Self::written(&e))
    }
}

impl BucketHandle {
    fn fence_revision(&self, fence: &LeaseFence) -> Result<u64, KvError> {
        fence_revision(fence, &self.name)
    }
}

#[async_trait]
impl KvFencedWriter for BucketHandle {
    async fn put_fenced(
        &self,
        key: &str,
        value: &[u8],
        fence: &LeaseFence,
    ) -> Result<VersionToken, KvError> {
        check_key(key)?;
        let fence_revision = self.fence_revision(fence)?;
        let op = WriteOp::PutFenced {
            key: key.to_string(),
            value: value.to_vec(),
            fence_key: fence.key.clone(),
            fence_revision,
        };
        self.write(MemoryOp::Put, op).map(|e| Self::written(&e))
    }

    async fn delete_fenced(&self, key: &str, fence: &LeaseFence) -> Result<bool, KvError> {
        check_key(key)?;
        let fence_revision = self.fence_revision(fence)?;
        let op = WriteOp::DeleteFenced {
            key: key.to_string(),
            fence_key: fence.key.clone(),
            fence_revision,
        };
        self.write(MemoryOp::Delete, op).map(|_| true)
    }
}
