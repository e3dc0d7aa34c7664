//! Value types read from and written to a bucket: entries, watch updates,
//! retention and status readings, and the one error enum of the KV API.

use super::config::{StoreConfig, StoreOptions};
use super::version::VersionToken;

/// One stored value: key, bytes (possibly empty), and the version of the write
/// that stored it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KvEntry {
    /// The key.
    pub key: String,
    /// The value bytes; empty for an empty write or a CAS tombstone.
    pub value: Vec<u8>,
    /// Version of the write that stored this value.
    pub version: VersionToken,
}

/// One event of a watch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KvUpdate {
    /// A write with a non-empty value.
    Put(KvEntry),
    /// A delete marker, or an empty-value write (the CAS tombstone), with that write's version.
    Delete {
        /// The deleted key.
        key: String,
        /// Version of the marker or tombstone.
        version: VersionToken,
    },
    /// A purge marker, or a server-placed expiry marker.
    Purge {
        /// The purged key.
        key: String,
        /// Version of the marker.
        version: VersionToken,
    },
}

impl KvUpdate {
    /// The key this update is about.
    pub fn key(&self) -> &str {
        match self {
            KvUpdate::Put(entry) => &entry.key,
            KvUpdate::Delete { key, .. } | KvUpdate::Purge { key, .. } => key,
        }
    }

    /// The version of the write behind this update.
    pub fn version(&self) -> &VersionToken {
        match self {
            KvUpdate::Put(entry) => &entry.version,
            KvUpdate::Delete { version, .. } | KvUpdate::Purge { version, .. } => version,
        }
    }
}

/// What a bucket's log keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Retention {
    /// The bucket's limits can remove a key's latest value while the key is live
    /// (age limit, per-message TTL, or discard-old with a size or count limit).
    pub evicts_current_values: bool,
    /// The oldest retained revision (0 for a bucket that never held a message;
    /// `last_revision + 1` when everything was removed).
    pub first_revision: u64,
}

/// A fresh reading of a bucket's log; never cached.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BucketStatus {
    /// The bucket name.
    pub name: String,
    /// Oldest retained revision (see [`Retention::first_revision`]).
    pub first_revision: u64,
    /// Newest revision ever stored (0 for a bucket that never held a message).
    pub last_revision: u64,
    /// When the bucket was created (Unix ms): its identity; a recreated bucket has a later one.
    pub created_unix_ms: u64,
    /// Retained messages: values, tombstones, markers and history.
    pub values: u64,
    /// Bytes the log accounts for the retained messages.
    pub bytes: u64,
    /// The effective configuration as the backend reports it.
    pub config: StoreConfig,
    /// The effective creation options.
    pub options: StoreOptions,
    /// The retention classification of the bucket.
    pub retention: Retention,
}

impl BucketStatus {
    /// A status with zero counts, `config` = `StoreConfig` with `name` set, and default options.
    pub fn new(
        name: impl Into<String>,
        first_revision: u64,
        last_revision: u64,
        created_unix_ms: u64,
        retention: Retention,
    ) -> Self {
        let name = name.into();
        Self {
            config: StoreConfig {
                name: name.clone(),
                ..StoreConfig::default()
            },
            name,
            first_revision,
            last_revision,
            created_unix_ms,
            values: 0,
            bytes: 0,
            options: StoreOptions::default(),
            retention,
        }
    }

    /// Sets the message and byte counts.
    #[must_use]
    pub fn with_counts(mut self, values: u64, bytes: u64) -> Self {
        self.values = values;
        self.bytes = bytes;
        self
    }

    /// Sets the effective configuration and options.
    #[must_use]
    pub fn with_config(mut self, config: StoreConfig, options: StoreOptions) -> Self {
        self.config = config;
        self.options = options;
        self
    }
}

/// Error type for KV operations.
///
/// Exactly these eleven variants; causes are flattened into the message so the
/// error can be cloned and handed to many waiters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum KvError {
    /// The connection is not connected (`store*` before `connect` or after `shutdown`).
    #[error("not connected")]
    NotConnected,
    /// Connecting, or getting or creating a bucket, failed.
    #[error("connection failed: {0}")]
    ConnectionFailed(String),
    /// A CAS target does not exist (kvfold's backends never produce it; treat like `RevisionMismatch`).
    #[error("key not found")]
    KeyNotFound,
    /// `create` found a live value or tombstone.
    #[error("key already exists")]
    AlreadyExists,
    /// A CAS or fence expectation failed.
    #[error("revision mismatch")]
    RevisionMismatch,
    /// A stored value could not be decoded.
    #[error("deserialization error: {0}")]
    DeserializationError(String),
    /// A value could not be encoded, or a lease value is not a lease record.
    #[error("serialization error: {0}")]
    SerializationError(String),
    /// A watch could not start or its stream failed.
    #[error("watch error: {0}")]
    WatchError(String),
    /// The operation was refused or failed for a reason a retry will not fix.
    #[error("operation failed: {0}")]
    OperationFailed(String),
    /// No answer within the operation bound; a write's outcome is unknown.
    #[error("timed out")]
    Timeout,
    /// The resume point is not usable; messages may be missing.
    #[error("watch cursor expired: messages after it may be gone")]
    CursorExpired,
}

/// The message prefix of a refusal for lack of permissions (NATS: the server's
/// permissions violation), in `OperationFailed`, `WatchError` or `ConnectionFailed`.
pub(crate) const PERMISSION_DENIED_PREFIX: &str = "permission denied";

impl KvError {
    /// An addition. Whether the failure is transient: the backend did not answer
    /// in time or was still unavailable (for example during a NATS leader election)
    /// when the operation's bound ran out, so the same call may succeed later.
    /// kvfold's backends report every such case as `Timeout`; for a write it means
    /// the outcome is unknown (re-read before concluding).
    pub fn is_transient(&self) -> bool {
        matches!(self, KvError::Timeout)
    }

    /// An addition. Whether the server refused the operation for lack of
    /// permissions (a NATS permissions violation). Never transient: fix the
    /// user's permissions. The message starts with `permission denied: ` and
    /// carries the server's text.
    pub fn is_permission_denied(&self) -> bool {
        match self {
            KvError::OperationFailed(text)
            | KvError::WatchError(text)
            | KvError::ConnectionFailed(text) => text.starts_with(PERMISSION_DENIED_PREFIX),
            _ => false,
        }
    }
}

/// A lease fence: a write under it succeeds only while `key`'s latest revision in
/// `bucket` is still `revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseFence {
    /// The bucket holding the fence key; must be the writer's bucket.
    pub bucket: String,
    /// The fence key (the export lease key).
    pub key: String,
    /// The fence key revision the write requires.
    pub revision: VersionToken,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_accessors_cover_every_variant() {
        let v = VersionToken::from_u64(3);
        let put = KvUpdate::Put(KvEntry {
            key: "a".into(),
            value: b"x".to_vec(),
            version: v.clone(),
        });
        let del = KvUpdate::Delete {
            key: "b".into(),
            version: v.clone(),
        };
        let purge = KvUpdate::Purge {
            key: "c".into(),
            version: v.clone(),
        };
        assert_eq!((put.key(), del.key(), purge.key()), ("a", "b", "c"));
        assert!([&put, &del, &purge].iter().all(|u| u.version() == &v));
    }

    #[test]
    fn error_helpers() {
        assert!(KvError::Timeout.is_transient());
        assert!(!KvError::OperationFailed("x".into()).is_transient());
        let denied = "permission denied: Permissions Violation for Publish to \"$KV.b.k\"";
        assert!(KvError::OperationFailed(denied.into()).is_permission_denied());
        assert!(KvError::WatchError(denied.into()).is_permission_denied());
        assert!(KvError::ConnectionFailed(denied.into()).is_permission_denied());
        assert!(!KvError::OperationFailed("denied".into()).is_permission_denied());
        assert!(!KvError::Timeout.is_permission_denied());
    }

    #[test]
    fn bucket_status_builder_defaults() {
        let r = Retention {
            evicts_current_values: false,
            first_revision: 1,
        };
        let s = BucketStatus::new("b", 1, 4, 77, r).with_counts(4, 200);
        assert_eq!(s.config.name, "b");
        assert_eq!(s.options, StoreOptions::default());
        assert_eq!((s.values, s.bytes), (4, 200));
    }
}
