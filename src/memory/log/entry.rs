//! Log entries, the writes that make them, and the bytes nats-server accounts for them.

use std::time::Duration;

use crate::kv::{KvEntry, KvUpdate, VersionToken};
use crate::stores::StorageType;

/// What kind of message an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A value (empty for a CAS tombstone or an empty put).
    Value,
    /// A delete marker.
    DeleteMarker,
    /// A purge marker.
    PurgeMarker,
    /// A server-placed expiry marker (limit markers); read like a purge marker.
    ExpiryMarker,
}

impl EntryKind {
    /// True for the three marker kinds.
    pub fn is_marker(self) -> bool {
        self != EntryKind::Value
    }
}

/// One retained message of the log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Bucket-wide revision.
    pub revision: u64,
    /// The key.
    pub key: String,
    /// What the message is.
    pub kind: EntryKind,
    /// The value; empty for markers.
    pub value: Vec<u8>,
    /// Write time (Unix ms).
    pub stamp_ms: u64,
    /// TTL or marker TTL deadline (Unix ms).
    pub expires_at_ms: Option<u64>,
    /// NATS header block length this write carries.
    pub header_len: u32,
    /// Bytes accounted for this message.
    pub size: u64,
}

impl Entry {
    /// The version of this write, with its write time.
    pub fn version(&self) -> VersionToken {
        VersionToken::from_u64(self.revision).written_at(self.stamp_ms)
    }

    /// The watch update this entry delivers: a non-empty value is `Put`, an empty
    /// value or delete marker is `Delete`, a purge or expiry marker is `Purge`.
    pub fn to_update(&self) -> KvUpdate {
        let key = self.key.clone();
        let version = self.version();
        match self.kind {
            EntryKind::Value if !self.value.is_empty() => KvUpdate::Put(KvEntry {
                key,
                value: self.value.clone(),
                version,
            }),
            EntryKind::Value | EntryKind::DeleteMarker => KvUpdate::Delete { key, version },
            EntryKind::PurgeMarker | EntryKind::ExpiryMarker => KvUpdate::Purge { key, version },
        }
    }

    /// The entry as read by `entry()`: values (including empty ones); `None` for markers.
    pub fn to_kv_entry(&self) -> Option<KvEntry> {
        (self.kind == EntryKind::Value).then(|| KvEntry {
            key: self.key.clone(),
            value: self.value.clone(),
            version: self.version(),
        })
    }

    /// True for a value with non-empty bytes: what `get`, `keys` and `scan` show.
    pub fn is_live_value(&self) -> bool {
        self.kind == EntryKind::Value && !self.value.is_empty()
    }
}

/// One write request against the log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WriteOp {
    /// Unconditional value.
    Put {
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
    },
    /// Value if the key has no entry or its latest is a marker; optional TTL.
    Create {
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
        /// Expiry after the write.
        ttl: Option<Duration>,
    },
    /// Value if the latest entry has revision `expected` (0 = none).
    Update {
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
        /// Expected latest revision.
        expected: u64,
    },
    /// Delete marker.
    Delete {
        /// Key.
        key: String,
    },
    /// Empty value (CAS tombstone) if the latest entry has revision `expected`.
    DeleteWithVersion {
        /// Key.
        key: String,
        /// Expected latest revision.
        expected: u64,
    },
    /// Purge marker removing every earlier entry of the key.
    Purge {
        /// Key.
        key: String,
    },
    /// Value expiring after `ttl`, removing every earlier entry of the key.
    PutWithTtl {
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
        /// Expiry after the write.
        ttl: Duration,
    },
    /// Value if the fence key's latest revision is `fence_revision`.
    PutFenced {
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
        /// The fence key.
        fence_key: String,
        /// Its required latest revision.
        fence_revision: u64,
    },
    /// Delete marker if the fence key's latest revision is `fence_revision`.
    DeleteFenced {
        /// Key.
        key: String,
        /// The fence key.
        fence_key: String,
        /// Its required latest revision.
        fence_revision: u64,
    },
}

impl WriteOp {
    /// The key written.
    pub fn key(&self) -> &str {
        match self {
            WriteOp::Put { key, .. }
            | WriteOp::Create { key, .. }
            | WriteOp::Update { key, .. }
            | WriteOp::Delete { key }
            | WriteOp::DeleteWithVersion { key, .. }
            | WriteOp::Purge { key }
            | WriteOp::PutWithTtl { key, .. }
            | WriteOp::PutFenced { key, .. }
            | WriteOp::DeleteFenced { key, .. } => key,
        }
    }
}

/// Length of the NATS header block for these headers; 0 when there are none.
pub fn header_block_len(headers: &[(&str, String)]) -> u32 {
    if headers.is_empty() {
        return 0;
    }
    let total: usize = 10
        + headers
            .iter()
            .map(|(name, value)| name.len() + value.len() + 4)
            .sum::<usize>()
        + 2;
    u32::try_from(total).unwrap_or(u32::MAX)
}

/// Bytes nats-server accounts for one message (nats-server 2.15 formulas).
pub fn message_size(
    storage: StorageType,
    subject_len: usize,
    header_len: u32,
    value_len: usize,
) -> u64 {
    let (subject, header, value) = (subject_len as u64, u64::from(header_len), value_len as u64);
    match storage {
        StorageType::Persistent if header == 0 => 30 + subject + value,
        StorageType::Persistent => 34 + subject + header + value,
        StorageType::Memory => 16 + subject + header + value,
    }
}
