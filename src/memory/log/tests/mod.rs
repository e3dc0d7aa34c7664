//! Unit tests of the bucket log core (docs/memory-backend.md, "Tests"). Byte sizes are
//! computed by hand from the byte-accounting formulas; bucket `b` and one-letter keys give
//! a 7-byte subject (`$KV.b.k`), so a Persistent `put(k, "hello")` is 30 + 7 + 5 = 42 bytes
//! and `put(k, "v")` 38.

use super::*;
use crate::kv::KvUpdate;
use crate::stores::StorageType;
use EntryKind::{DeleteMarker, ExpiryMarker, PurgeMarker, Value};

const CREATED: u64 = 1_000;
const NOW: u64 = 2_000;
const MAX_PAYLOAD: usize = 1 << 20;

/// Bucket `b` created at `CREATED`, configured by chained setters; defaults as
/// `StoreConfig::default()` (Persistent, history 1, 10 MiB, discard New).
struct Make(StoreConfig, StoreOptions);

fn bucket() -> Make {
    let config = StoreConfig {
        name: "b".to_string(),
        ..StoreConfig::default()
    };
    Make(config, StoreOptions::new())
}

#[rustfmt::skip]
impl Make {
    fn history(mut self, n: u32) -> Self { self.0.max_history = Some(n); self }
    fn max_bytes(mut self, n: i64) -> Self { self.0.max_bytes = Some(n); self }
    fn discard_old(mut self) -> Self { self.0.discard = DiscardPolicy::Old; self }
    fn max_age(mut self, d: Duration) -> Self { self.0.max_age = Some(d); self }
    fn storage(mut self, s: StorageType) -> Self { self.0.storage = s; self }
    fn replicas(mut self, n: usize) -> Self { self.0.num_replicas = Some(n); self }
    fn ttl(mut self) -> Self { self.1 = self.1.with_ttl(); self }
    fn markers(mut self, d: Duration) -> Self { self.1 = self.1.with_limit_markers(d); self }
    fn log(self) -> BucketLog { self.named("b") }
    fn named(self, name: &str) -> BucketLog { BucketLog::new(name, &self.0, &self.1, CREATED) }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn commit(log: &mut BucketLog, op: WriteOp, now: u64) -> Result<Arc<Entry>, KvError> {
    log.commit(op, now, MAX_PAYLOAD).1
}

fn ok_at(log: &mut BucketLog, op: WriteOp, now: u64) -> Arc<Entry> {
    commit(log, op, now).expect("the write is allowed")
}

fn ok(log: &mut BucketLog, op: WriteOp) -> Arc<Entry> {
    ok_at(log, op, NOW)
}

/// Commits an op at `NOW` that must fail, and checks that it changed nothing.
fn refused(log: &mut BucketLog, op: WriteOp) -> KvError {
    let before = log.clone();
    let (due, result) = log.commit(op, NOW, MAX_PAYLOAD);
    assert!(due.is_empty(), "no due effects expected");
    assert_eq!(*log, before, "a refused write changes nothing");
    result.expect_err("the write is refused")
}

/// A write at `NOW` that must fail with `RevisionMismatch` and change nothing.
fn mismatch(log: &mut BucketLog, op: WriteOp) {
    assert_eq!(refused(log, op), KvError::RevisionMismatch);
}

/// `(revision, kind, value length)` of an entry.
fn shape(e: &Entry) -> (u64, EntryKind, usize) {
    (e.revision, e.kind, e.value.len())
}

fn failed(msg: &str) -> KvError {
    KvError::OperationFailed(msg.to_string())
}

fn full(max: i64) -> KvError {
    failed(&format!("bucket b is full (max_bytes {max}, discard new)"))
}

fn revisions(log: &BucketLog) -> Vec<u64> {
    log.entries_from(0).map(|e| e.revision).collect()
}

fn keys_of(entries: &[Arc<Entry>]) -> Vec<&str> {
    entries.iter().map(|e| e.key.as_str()).collect()
}

#[rustfmt::skip]
mod op {
    use super::*;
    pub(super) fn put(key: &str, value: &str) -> WriteOp {
        WriteOp::Put { key: key.into(), value: value.into() }
    }
    pub(super) fn create(key: &str, value: &str) -> WriteOp {
        WriteOp::Create { key: key.into(), value: value.into(), ttl: None }
    }
    pub(super) fn create_ttl(key: &str, value: &str, ttl: Duration) -> WriteOp {
        WriteOp::Create { key: key.into(), value: value.into(), ttl: Some(ttl) }
    }
    pub(super) fn update(key: &str, value: &str, expected: u64) -> WriteOp {
        WriteOp::Update { key: key.into(), value: value.into(), expected }
    }
    pub(super) fn delete(key: &str) -> WriteOp {
        WriteOp::Delete { key: key.into() }
    }
    pub(super) fn delete_v(key: &str, expected: u64) -> WriteOp {
        WriteOp::DeleteWithVersion { key: key.into(), expected }
    }
    pub(super) fn purge(key: &str) -> WriteOp {
        WriteOp::Purge { key: key.into() }
    }
    pub(super) fn put_ttl(key: &str, value: &str, ttl: Duration) -> WriteOp {
        WriteOp::PutWithTtl { key: key.into(), value: value.into(), ttl }
    }
    pub(super) fn put_fenced(key: &str, value: &str, fence: &str, fence_revision: u64) -> WriteOp {
        WriteOp::PutFenced { key: key.into(), value: value.into(), fence_key: fence.into(), fence_revision }
    }
    pub(super) fn delete_fenced(key: &str, fence: &str, fence_revision: u64) -> WriteOp {
        WriteOp::DeleteFenced { key: key.into(), fence_key: fence.into(), fence_revision }
    }
}
use op::*;

mod accounting;
mod reads;
mod time_effects;
mod writes;
