//! The KV traits every backend implements: reads, watches, writes, TTL writes,
//! purges and fenced writes. Object-safe (`Arc<dyn …>`); no backend logic here.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc::Sender;

use super::types::{BucketStatus, KvEntry, KvError, KvUpdate, LeaseFence, Retention};
use super::version::{VersionToken, WatchCursor};

/// Core read-only KV operations: the minimal interface every store implements.
///
/// Reads see the latest *retained* entry of each key. Key and prefix rules:
/// [`crate::protocol::subject`].
#[async_trait]
pub trait KvReader: Send + Sync {
    /// The key's latest value; `None` when the key is absent, its latest entry is a
    /// marker, or its latest value is empty (a real `b""` and a CAS tombstone look the same).
    async fn get(&self, key: &str) -> Result<Option<KvEntry>, KvError>;

    /// Every key starting with `prefix` whose latest write has a non-empty value,
    /// sorted ascending by key bytes, each key once.
    async fn keys(&self, prefix: &str) -> Result<Vec<String>, KvError>;

    /// The same set as [`keys`](KvReader::keys), streamed in the revision order of
    /// each key's latest write, each key once. The default collects `keys`.
    async fn for_each_key(
        &self,
        prefix: &str,
        f: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), KvError> {
        for key in self.keys(prefix).await? {
            f(key);
        }
        Ok(())
    }

    /// The entries behind [`keys`](KvReader::keys), sorted ascending by key.
    async fn scan(&self, prefix: &str) -> Result<Vec<KvEntry>, KvError>;

    /// The key's latest write **including empty values**; `None` only for absent
    /// keys and markers. Needed to CAS over a tombstone.
    async fn entry(&self, key: &str) -> Result<Option<KvEntry>, KvError>;
}

/// Watch capability: state-sync and resumable watches of a bucket.
///
/// Non-`_from` watches are **state-sync**: first the latest entry of every
/// matching key, then every later change. `_from` watches deliver only writes
/// with a revision above the cursor, or fail with [`KvError::CursorExpired`].
/// A watch runs until its stream ends; dropping the receiver ends it with `Ok(())`.
#[async_trait]
pub trait KvWatcher: Send + Sync {
    /// State-sync watch of every key.
    async fn watch_all(&self, tx: Sender<KvUpdate>) -> Result<(), KvError>;

    /// State-sync watch of the keys starting with `prefix`.
    async fn watch_prefix(&self, prefix: &str, tx: Sender<KvUpdate>) -> Result<(), KvError>;

    /// State-sync watch of the union of `prefixes`, each update once; an empty list
    /// returns `Ok(())` at once.
    async fn watch_prefixes(&self, prefixes: &[&str], tx: Sender<KvUpdate>) -> Result<(), KvError>;

    /// Every write after `cursor`. The default ignores the cursor and runs `watch_all`.
    async fn watch_all_from(
        &self,
        cursor: &WatchCursor,
        tx: Sender<KvUpdate>,
    ) -> Result<(), KvError> {
        let _ = cursor;
        self.watch_all(tx).await
    }

    /// Every write after `cursor` to keys starting with `prefix`. The default runs `watch_prefix`.
    async fn watch_prefix_from(
        &self,
        prefix: &str,
        cursor: &WatchCursor,
        tx: Sender<KvUpdate>,
    ) -> Result<(), KvError> {
        let _ = cursor;
        self.watch_prefix(prefix, tx).await
    }

    /// Every write after `cursor` to keys under any of `prefixes`. The default runs `watch_prefixes`.
    async fn watch_prefixes_from(
        &self,
        prefixes: &[&str],
        cursor: &WatchCursor,
        tx: Sender<KvUpdate>,
    ) -> Result<(), KvError> {
        let _ = cursor;
        self.watch_prefixes(prefixes, tx).await
    }

    /// What the bucket's log keeps; `Ok(None)` = cannot tell (assume current
    /// values may be evicted). The default derives it from [`status`](KvWatcher::status).
    async fn retention(&self) -> Result<Option<Retention>, KvError> {
        Ok(self.status().await?.map(|s| s.retention))
    }

    /// The bucket's name, when the backend knows it.
    fn bucket_name(&self) -> Option<&str> {
        None
    }

    /// The bucket's head revision. The default derives it from [`status`](KvWatcher::status).
    async fn last_revision(&self) -> Result<Option<u64>, KvError> {
        Ok(self.status().await?.map(|s| s.last_revision))
    }

    /// A fresh reading of the bucket's status; `Ok(None)` when the backend cannot tell.
    async fn status(&self) -> Result<Option<BucketStatus>, KvError> {
        Ok(None)
    }
}

/// Write operations.
#[async_trait]
pub trait KvWriter: Send + Sync {
    /// Unconditional write; returns the new version.
    async fn put(&self, key: &str, value: &[u8]) -> Result<VersionToken, KvError>;

    /// Writes a delete marker (history is kept); `Ok(true)`, also for an absent key.
    async fn delete(&self, key: &str) -> Result<bool, KvError>;

    /// Writes only if the key has no entry or its latest entry is a marker;
    /// otherwise [`KvError::AlreadyExists`].
    async fn create(&self, key: &str, value: &[u8]) -> Result<VersionToken, KvError>;

    /// Writes only if the key's latest entry has exactly `expected`'s revision
    /// (0 = no retained entry); otherwise [`KvError::RevisionMismatch`].
    async fn update(
        &self,
        key: &str,
        value: &[u8],
        expected: &VersionToken,
    ) -> Result<VersionToken, KvError>;

    /// CAS-writes an empty value (the CAS tombstone) under the rule of
    /// [`update`](KvWriter::update); [`KvError::RevisionMismatch`] on conflict and
    /// on a missing key.
    async fn delete_with_version(
        &self,
        key: &str,
        expected: &VersionToken,
    ) -> Result<bool, KvError>;
}

/// Per-key expiry, on buckets created with [`crate::StoreOptions::with_ttl`].
#[async_trait]
pub trait KvTtl: KvWriter {
    /// Replaces the key's whole history with this value, which expires `ttl` after
    /// the write; `ttl` must be at least 1 s.
    async fn put_with_ttl(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<VersionToken, KvError>;

    /// `create` plus expiry; keeps the TTL when it writes over a marker.
    async fn create_with_ttl(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<VersionToken, KvError> {
        let _ = (key, value, ttl);
        Err(KvError::OperationFailed(
            "create_with_ttl is not supported by this store".to_string(),
        ))
    }
}

/// Purge support: reclaim a key's storage.
#[async_trait]
pub trait KvPurge: KvWriter {
    /// Removes every retained revision of the key and leaves one purge marker.
    /// Idempotent: purging an absent key succeeds (and writes a marker).
    async fn purge(&self, key: &str) -> Result<(), KvError>;
}

/// Writes that succeed only while a lease fence still holds.
#[async_trait]
pub trait KvFencedWriter: KvWriter {
    /// Put iff the fence key's latest revision is still `fence.revision`;
    /// [`KvError::RevisionMismatch`] means "the lease moved: stop".
    async fn put_fenced(
        &self,
        key: &str,
        value: &[u8],
        fence: &LeaseFence,
    ) -> Result<VersionToken, KvError>;

    /// A delete marker under the same condition as [`put_fenced`](KvFencedWriter::put_fenced).
    async fn delete_fenced(&self, key: &str, fence: &LeaseFence) -> Result<bool, KvError>;
}
