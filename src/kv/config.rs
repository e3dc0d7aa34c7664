//! Bucket configuration values: `StoreConfig`, `StoreOptions` and their enums.
//! Plain data; the validation lives with the connections (`stores`), and
//! `kvfold::StoreConfig` and friends re-export these.

use std::time::Duration;

/// Storage type for a store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum StorageType {
    /// The server keeps the log in memory.
    Memory,
    /// The server keeps the log on disk (file storage).
    #[default]
    Persistent,
}

/// What a bounded bucket does when it reaches `max_bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum DiscardPolicy {
    /// New writes are rejected (`OperationFailed`, "bucket full").
    #[default]
    New,
    /// The oldest messages are evicted to make room (this evicts current values).
    Old,
}

/// Configuration for creating a store. Applies only at creation: an existing
/// bucket is returned as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreConfig {
    /// Bucket name, `[A-Za-z0-9_-]+`.
    pub name: String,
    /// Where the server keeps the log (default `Persistent`).
    pub storage: StorageType,
    /// Revisions kept per key, markers included (default 1; 1..=64).
    pub max_history: Option<u32>,
    /// Age limit for every message (`None` or zero = none; otherwise ≥ 100 ms).
    pub max_age: Option<Duration>,
    /// Size limit of the whole log (default 10 MiB; `Some(n)` with `n ≤ 0` = unlimited).
    pub max_bytes: Option<i64>,
    /// Server replicas (default 1; `Some(0)` = 1; 1..=5).
    pub num_replicas: Option<usize>,
    /// What happens at `max_bytes` (default `New`).
    pub discard: DiscardPolicy,
}

/// Creation-time bucket settings that [`StoreConfig`] has no field for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Per-message TTL allowed on the bucket (enables `KvTtl`).
    pub ttl: bool,
    /// Keep expiry markers this long (≥ 1 s); implies `ttl`.
    pub limit_marker_ttl: Option<Duration>,
}

impl StoreOptions {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allow per-message TTL on the bucket.
    #[must_use]
    pub fn with_ttl(mut self) -> Self {
        self.ttl = true;
        self
    }

    /// Write a purge marker when a key's last value expires or ages out; the marker
    /// disappears after `marker_ttl`. Also sets `ttl`.
    #[must_use]
    pub fn with_limit_markers(mut self, marker_ttl: Duration) -> Self {
        self.ttl = true;
        self.limit_marker_ttl = Some(marker_ttl);
        self
    }
}
