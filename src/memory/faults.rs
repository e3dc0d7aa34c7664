//! Fault controls of the embedded server (docs/memory-backend.md, "Fault controls
//! (`MemoryFaults`)"): bucket faults (evictions, marker purges, recreate, delete, pause,
//! interrupt) and connection faults (fail the next operations, partition, heal).
//! Test-facing wiring only.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::server::MemoryServer;
use crate::kv::KvError;
use crate::stores::{StoreConfig, StoreOptions, validate_config};

/// An operation class that fault rules match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MemoryOp {
    /// Every trait call.
    Any,
    /// Every read (`Get`, `Entry`, `Keys`, `Scan`, `Status`).
    AnyRead,
    /// Every write (`Put` … `CreateWithTtl`).
    AnyWrite,
    /// `get`.
    Get,
    /// `entry`.
    Entry,
    /// `keys` and `for_each_key`.
    Keys,
    /// `scan`.
    Scan,
    /// `status`, `retention`, `last_revision`.
    Status,
    /// `put` (and `put_fenced`).
    Put,
    /// `create`.
    Create,
    /// `update`.
    Update,
    /// `delete` (and `delete_fenced`).
    Delete,
    /// `delete_with_version`.
    DeleteWithVersion,
    /// `purge`.
    Purge,
    /// `put_with_ttl`.
    PutWithTtl,
    /// `create_with_ttl`.
    CreateWithTtl,
    /// Watch setup.
    Watch,
    /// `connect`, `store`, `store_with_config`, `store_with_options`.
    Store,
}

impl MemoryOp {
    /// True for the read group.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            MemoryOp::Get | MemoryOp::Entry | MemoryOp::Keys | MemoryOp::Scan | MemoryOp::Status
        )
    }

    /// True for the write group.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            MemoryOp::Put
                | MemoryOp::Create
                | MemoryOp::Update
                | MemoryOp::Delete
                | MemoryOp::DeleteWithVersion
                | MemoryOp::Purge
                | MemoryOp::PutWithTtl
                | MemoryOp::CreateWithTtl
        )
    }

    /// True when a rule for `self` matches the concrete operation `op`.
    pub(crate) fn covers(self, op: MemoryOp) -> bool {
        match self {
            MemoryOp::Any => true,
            MemoryOp::AnyRead => op.is_read(),
            MemoryOp::AnyWrite => op.is_write(),
            other => other == op,
        }
    }
}

/// A queued failure rule.
#[derive(Debug, Clone)]
pub(crate) struct FailRule {
    pub(crate) scope: Option<u64>,
    pub(crate) op: MemoryOp,
    pub(crate) remaining: u32,
    pub(crate) error: KvError,
    pub(crate) after_commit: bool,
}

/// Fault controls. From [`MemoryConnection::faults`](super::MemoryConnection::faults)
/// connection faults affect that connection; from
/// [`MemoryServer::faults`](super::MemoryServer::faults) every connection. Bucket
/// faults always affect every connection. All take effect before they return.
#[derive(Debug, Clone)]
pub struct MemoryFaults {
    server: MemoryServer,
    scope: Option<u64>,
}

impl MemoryFaults {
    pub(crate) fn new(server: MemoryServer, scope: Option<u64>) -> Self {
        Self { server, scope }
    }

    /// The server these faults act on.
    #[cfg(feature = "conformance")]
    pub(crate) fn server(&self) -> &MemoryServer {
        &self.server
    }

    /// Removes every entry with revision below `revision`; returns the new first revision.
    pub fn evict_below(&self, bucket: &str, revision: u64) -> Result<u64, KvError> {
        let cell = self.server.bucket(bucket)?;
        Ok(cell.mutate(self.server.now_ms(), |log| log.evict_below(revision)))
    }

    /// Removes the `count` lowest-revision entries; returns the new first revision.
    pub fn evict_head(&self, bucket: &str, count: usize) -> Result<u64, KvError> {
        let cell = self.server.bucket(bucket)?;
        Ok(cell.mutate(self.server.now_ms(), |log| log.evict_head(count)))
    }

    /// For every key whose latest entry is a marker at least `older_than` old
    /// (`Duration::ZERO` = every such key), removes all its entries; returns how many keys.
    pub fn purge_markers(&self, bucket: &str, older_than: Duration) -> Result<usize, KvError> {
        let cell = self.server.bucket(bucket)?;
        let older_ms = u64::try_from(older_than.as_millis()).unwrap_or(u64::MAX);
        let now = self.server.now_ms();
        Ok(cell.mutate(now, |log| log.purge_markers(older_ms, now)))
    }

    /// Deletes the bucket and creates it again (with `config`/`options`, or the
    /// previous ones); revisions restart at 1 and live watches end with `WatchError`.
    pub fn recreate_bucket(
        &self,
        bucket: &str,
        config: Option<StoreConfig>,
        options: Option<StoreOptions>,
    ) -> Result<(), KvError> {
        let effective = match (config, options) {
            (None, None) => None,
            (config, options) => {
                let previous = self.server.bucket(bucket)?.config();
                let mut config = config.unwrap_or_else(|| previous.store_config());
                config.name = bucket.to_string();
                let options = options.unwrap_or_else(|| previous.store_options());
                Some(validate_config(&config, &options)?)
            }
        };
        self.server.recreate_bucket(bucket, effective)
    }

    /// Removes the bucket; live watches end with `WatchError` and operations through
    /// existing handles fail with `OperationFailed("bucket <b> not found")`.
    pub fn delete_bucket(&self, bucket: &str) -> Result<(), KvError> {
        self.server.delete_bucket(bucket).map(|_| ())
    }

    /// Watch loops of the bucket stop taking entries; commits continue.
    pub fn pause_delivery(&self, bucket: &str) -> Result<(), KvError> {
        self.server.bucket(bucket)?.set_paused(true);
        Ok(())
    }

    /// Undoes [`pause_delivery`](MemoryFaults::pause_delivery).
    pub fn resume_delivery(&self, bucket: &str) -> Result<(), KvError> {
        self.server.bucket(bucket)?.set_paused(false);
        Ok(())
    }

    /// Every live watch of the bucket returns `Err(error)` at once; returns how many.
    pub fn interrupt_watches(&self, bucket: &str, error: KvError) -> Result<usize, KvError> {
        Ok(self.server.bucket(bucket)?.end_all(&error))
    }

    /// Applies every due time effect on every bucket now.
    pub fn run_due(&self) {
        self.server.run_due();
    }

    /// The next `count` operations matching `op` fail with `error` before any effect.
    pub fn fail_next(&self, op: MemoryOp, count: u32, error: KvError) {
        self.push(op, count, error, false);
    }

    /// The next `count` writes matching `op` are committed and then return `error`
    /// (an ambiguous timeout); other operations fail as with [`fail_next`](MemoryFaults::fail_next).
    pub fn fail_next_after_commit(&self, op: MemoryOp, count: u32, error: KvError) {
        self.push(op, count, error, true);
    }

    fn push(&self, op: MemoryOp, count: u32, error: KvError, after_commit: bool) {
        if count == 0 {
            return;
        }
        self.server.push_rule(FailRule {
            scope: self.scope,
            op,
            remaining: count,
            error,
            after_commit,
        });
    }

    /// Drops every pending failure rule of this scope.
    pub fn clear_failures(&self) {
        self.server.clear_rules(self.scope);
    }

    /// Unhealthy; every operation fails with `Timeout`; live watches stall.
    pub fn partition(&self) {
        for conn in self.server.connections(self.scope) {
            conn.partitioned.store(true, Ordering::SeqCst);
        }
    }

    /// Healthy again; the reconnect epoch grows, so stalled watches with a frontier
    /// resubscribe through the resume checks.
    pub fn heal(&self) {
        for conn in self.server.connections(self.scope) {
            conn.partitioned.store(false, Ordering::SeqCst);
            conn.epoch.fetch_add(1, Ordering::SeqCst);
        }
        for cell in self.server.all_buckets() {
            cell.wake_all();
        }
    }
}
