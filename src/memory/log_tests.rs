//! Unit tests of the bucket log core (docs/memory-backend.md, "Tests"). Byte sizes are
//! computed by hand from the byte-accounting formulas; bucket `b` and one-letter keys give
//! a 7-byte subject (`$KV.b.k`), so a Persistent `put(k, "hello")` is 30 + 7 + 5 = 42 bytes
//! and `put(k, "v")` 38.

use super::*;
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
    pub fn put(key: &str, value: &str) -> WriteOp {
        WriteOp::Put { key: key.into(), value: value.into() }
    }
    pub fn create(key: &str, value: &str) -> WriteOp {
        WriteOp::Create { key: key.into(), value: value.into(), ttl: None }
    }
    pub fn create_ttl(key: &str, value: &str, ttl: Duration) -> WriteOp {
        WriteOp::Create { key: key.into(), value: value.into(), ttl: Some(ttl) }
    }
    pub fn update(key: &str, value: &str, expected: u64) -> WriteOp {
        WriteOp::Update { key: key.into(), value: value.into(), expected }
    }
    pub fn delete(key: &str) -> WriteOp {
        WriteOp::Delete { key: key.into() }
    }
    pub fn delete_v(key: &str, expected: u64) -> WriteOp {
        WriteOp::DeleteWithVersion { key: key.into(), expected }
    }
    pub fn purge(key: &str) -> WriteOp {
        WriteOp::Purge { key: key.into() }
    }
    pub fn put_ttl(key: &str, value: &str, ttl: Duration) -> WriteOp {
        WriteOp::PutWithTtl { key: key.into(), value: value.into(), ttl }
    }
    pub fn put_fenced(key: &str, value: &str, fence: &str, fence_revision: u64) -> WriteOp {
        WriteOp::PutFenced { key: key.into(), value: value.into(), fence_key: fence.into(), fence_revision }
    }
    pub fn delete_fenced(key: &str, fence: &str, fence_revision: u64) -> WriteOp {
        WriteOp::DeleteFenced { key: key.into(), fence_key: fence.into(), fence_revision }
    }
}
use op::*;

// ---- entries -------------------------------------------------------------------

#[test]
fn put_at_max_history_removes_the_keys_oldest_entry() {
    let mut log = bucket().history(2).log();
    ok(&mut log, put("k", "a"));
    ok(&mut log, put("o", "x"));
    ok(&mut log, put("k", "b"));
    let e = ok(&mut log, put("k", "c"));
    assert_eq!((e.revision, e.kind, &e.value[..]), (4, Value, &b"c"[..]));
    assert_eq!(e.expires_at_ms, None);
    assert_eq!(revisions(&log), vec![2, 3, 4]);
}

#[test]
fn create_update_and_delete_at_max_history_remove_the_oldest() {
    let mut log = bucket().history(2).log();
    ok(&mut log, create("k", "a"));
    ok(&mut log, update("k", "b", 1));
    let d = ok(&mut log, delete("k"));
    assert_eq!((d.kind, d.value.len()), (DeleteMarker, 0));
    assert_eq!(revisions(&log), vec![2, 3]);
    let c = ok(&mut log, create("k", "c"));
    assert_eq!((c.revision, c.kind), (4, Value));
    assert_eq!(revisions(&log), vec![3, 4]);
    ok(&mut log, update("k", "d", 4));
    assert_eq!(revisions(&log), vec![4, 5]);
}

#[test]
fn delete_with_version_writes_an_empty_value_that_counts_against_history() {
    let mut log = bucket().history(2).log();
    ok(&mut log, put("k", "a"));
    ok(&mut log, put("k", "b"));
    let t = ok(&mut log, delete_v("k", 2));
    assert_eq!(shape(&t), (3, Value, 0));
    assert_eq!(revisions(&log), vec![2, 3]);
    assert_eq!(log.latest("k").map(|e| e.revision), Some(3));
}

#[test]
fn purge_writes_a_purge_marker_rolling_up_every_earlier_entry_of_the_key() {
    let mut log = bucket().history(5).log();
    ok(&mut log, put("k", "hello"));
    ok(&mut log, put("o", "hello"));
    ok(&mut log, put("k", "hello"));
    ok(&mut log, delete("k"));
    let p = ok(&mut log, purge("k"));
    assert_eq!(shape(&p), (5, PurgeMarker, 0));
    assert_eq!(revisions(&log), vec![2, 5]);
    assert_eq!((log.bytes(), log.first_revision()), (42 + 92, 2));
}

#[test]
fn put_with_ttl_rolls_up_every_earlier_entry_and_expires_at_stamp_plus_ttl() {
    let mut log = bucket().history(5).ttl().log();
    ok(&mut log, put("k", "a"));
    ok(&mut log, put("k", "b"));
    let e = ok_at(&mut log, put_ttl("k", "c", secs(5)), 3_000);
    assert_eq!((e.revision, e.kind, e.stamp_ms), (3, Value, 3_000));
    assert_eq!(e.expires_at_ms, Some(8_000));
    assert_eq!(revisions(&log), vec![3]);
}

#[test]
fn create_with_ttl_removes_only_the_oldest_at_max_history() {
    let mut log = bucket().history(2).ttl().log();
    ok(&mut log, put("k", "a"));
    ok(&mut log, delete("k"));
    let e = ok_at(&mut log, create_ttl("k", "b", secs(5)), 2_500);
    assert_eq!((e.revision, e.kind), (3, Value));
    assert_eq!(e.expires_at_ms, Some(7_500));
    assert_eq!(revisions(&log), vec![2, 3]);
}

#[test]
fn an_expired_value_over_older_entries_leaves_no_marker() {
    // nats-server 2.15 (tests/nats_pinned.rs): an expiry marker is written only when
    // the removal empties the key's subject. Here the delete marker and the first
    // value are still retained, so the key falls back to its delete marker.
    let mut log = bucket().history(3).markers(secs(2)).log();
    ok(&mut log, put("k", "a"));
    ok(&mut log, delete("k"));
    ok(&mut log, create_ttl("k", "b", secs(5)));
    assert!(log.apply_due(6_999).is_empty());
    assert_eq!(revisions(&log), vec![1, 2, 3]);
    assert!(log.apply_due(7_000).is_empty());
    assert_eq!(revisions(&log), vec![1, 2]);
    assert_eq!(log.latest("k").map(|e| e.kind), Some(DeleteMarker));
    assert_eq!(log.last_revision(), 3);
}

#[test]
fn an_expired_value_that_was_its_keys_only_entry_leaves_a_marker() {
    // History 1: the delete removed the value and the create removed the delete
    // marker, so the TTL'd value is the key's only entry when it expires.
    let mut log = bucket().history(1).markers(secs(2)).log();
    ok(&mut log, put("k", "a"));
    ok(&mut log, delete("k"));
    ok(&mut log, create_ttl("k", "b", secs(5)));
    assert_eq!(revisions(&log), vec![3]);
    let markers = log.apply_due(7_000);
    assert_eq!(markers.len(), 1);
    let m = &markers[0];
    assert_eq!(shape(m), (4, ExpiryMarker, 0));
    assert_eq!((m.stamp_ms, m.expires_at_ms), (7_000, Some(9_000)));
    assert_eq!(revisions(&log), vec![4]);
}

#[test]
fn ttl_in_milliseconds_is_rounded_up() {
    let mut log = bucket().ttl().log();
    let e = ok(
        &mut log,
        put_ttl("k", "v", Duration::from_micros(1_500_001)),
    );
    assert_eq!(e.expires_at_ms, Some(3_501));
    // Nats-TTL: 1501ms → 10 + (8 + 6 + 4) + rollup 18 + 2.
    assert_eq!(e.header_len, 48);
}

// ---- commit procedure ------------------------------------------------------------

#[test]
fn invalid_key_is_operation_failed_and_consumes_no_revision() {
    let mut log = bucket().log();
    for key in ["", ".a", "a.", "a..b", "a b", "a*", "a>"] {
        let invalid = |err: KvError| matches!(err, KvError::OperationFailed(_));
        assert!(invalid(refused(&mut log, put(key, "v"))), "{key:?}");
        assert!(invalid(refused(&mut log, delete(key))), "{key:?}");
    }
    assert_eq!((log.first_revision(), log.last_revision()), (0, 0));
}

#[test]
fn key_check_precedes_ttl_checks() {
    let mut log = bucket().log();
    let KvError::OperationFailed(msg) = refused(&mut log, put_ttl("a..b", "v", secs(5))) else {
        panic!("expected OperationFailed");
    };
    assert!(msg.contains("invalid key"), "{msg}");
}

#[test]
fn ttl_write_on_a_bucket_without_ttl_is_refused_before_the_ttl_length_check() {
    let mut log = bucket().log();
    let disabled =
        failed("per-message TTL is disabled on bucket b; create it with StoreOptions::with_ttl");
    assert_eq!(refused(&mut log, put_ttl("k", "v", secs(5))), disabled);
    assert_eq!(refused(&mut log, create_ttl("k", "v", secs(5))), disabled);
    let short = Duration::from_millis(500);
    assert_eq!(refused(&mut log, put_ttl("k", "v", short)), disabled);
}

#[test]
fn ttl_below_one_second_is_refused_before_the_condition() {
    let mut log = bucket().ttl().log();
    let too_short = failed("ttl must be at least 1 s");
    let short = Duration::from_millis(999);
    assert_eq!(refused(&mut log, put_ttl("k", "v", short)), too_short);
    ok(&mut log, put("k", "live"));
    // create_with_ttl over a live value: the TTL step runs before the condition.
    assert_eq!(refused(&mut log, create_ttl("k", "v", short)), too_short);
    let e = ok(&mut log, put_ttl("k", "v", secs(1)));
    assert_eq!(e.expires_at_ms, Some(3_000));
    // Beyond i64::MAX nanoseconds no Nats-TTL header exists either.
    let too_long = refused(&mut log, put_ttl("k", "v", Duration::MAX));
    assert!(matches!(too_long, KvError::OperationFailed(_)));
}

#[test]
fn create_over_an_absent_key_expects_zero() {
    let mut log = bucket().log();
    let e = ok(&mut log, create("k", "v"));
    assert_eq!((e.revision, e.kind), (1, Value));
    // Nats-Expected-Last-Subject-Sequence: 0 → 10 + (35 + 1 + 4) + 2.
    assert_eq!(e.header_len, 52);
}

#[test]
fn create_over_a_delete_or_purge_marker_succeeds() {
    let mut log = bucket().log();
    ok(&mut log, put("k", "a"));
    ok(&mut log, delete("k"));
    assert_eq!(ok(&mut log, create("k", "b")).revision, 3);
    ok(&mut log, purge("k"));
    assert_eq!(ok(&mut log, create("k", "c")).revision, 5);
    assert_eq!(revisions(&log), vec![5]);
}

#[test]
fn create_over_an_expiry_marker_succeeds() {
    // TTL = marker TTL = 1 s: the value goes at 3000, its marker lives until 4000.
    let mut log = bucket().markers(secs(1)).log();
    ok(&mut log, put_ttl("k", "a", secs(1)));
    let (due, result) = log.commit(create("k", "b"), 3_000, MAX_PAYLOAD);
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].revision, due[0].kind), (2, ExpiryMarker));
    assert_eq!(due[0].expires_at_ms, Some(4_000));
    assert_eq!(result.map(|e| e.revision), Ok(3));
}

#[test]
fn create_over_a_value_is_already_exists() {
    let mut log = bucket().ttl().log();
    ok(&mut log, put("k", "a"));
    assert_eq!(refused(&mut log, create("k", "b")), KvError::AlreadyExists);
    let err = refused(&mut log, create_ttl("k", "b", secs(5)));
    assert_eq!(err, KvError::AlreadyExists);
}

#[test]
fn create_over_a_tombstone_is_already_exists() {
    let mut log = bucket().log();
    ok(&mut log, put("k", "a"));
    ok(&mut log, delete_v("k", 1));
    assert_eq!(refused(&mut log, create("k", "b")), KvError::AlreadyExists);
    ok(&mut log, put("e", ""));
    assert_eq!(refused(&mut log, create("e", "b")), KvError::AlreadyExists);
}

#[test]
fn update_requires_the_keys_latest_revision() {
    let mut log = bucket().log();
    ok(&mut log, put("k", "a"));
    ok(&mut log, put("o", "x"));
    assert_eq!(ok(&mut log, update("k", "b", 1)).revision, 3);
    mismatch(&mut log, update("k", "c", 1));
    // Another key's revision does not satisfy the condition.
    mismatch(&mut log, update("k", "c", 2));
    assert_eq!(ok(&mut log, update("k", "c", 3)).revision, 4);
}

#[test]
fn update_expecting_zero_requires_no_retained_entry() {
    let mut log = bucket().log();
    assert_eq!(ok(&mut log, update("k", "a", 0)).revision, 1);
    mismatch(&mut log, update("k", "b", 0));
    ok(&mut log, delete("k"));
    mismatch(&mut log, update("k", "b", 0));
    log.evict_below(3);
    assert_eq!(ok(&mut log, update("k", "c", 0)).revision, 3);
}

#[test]
fn update_and_delete_with_version_of_a_missing_key_are_revision_mismatch() {
    let mut log = bucket().log();
    ok(&mut log, put("o", "x"));
    mismatch(&mut log, update("k", "a", 1));
    mismatch(&mut log, delete_v("k", 1));
    // Expected 0 on a missing key holds: the tombstone is written.
    let t = ok(&mut log, delete_v("k", 0));
    assert_eq!(shape(&t), (2, Value, 0));
    assert_eq!(t.header_len, 52);
}

#[test]
fn delete_with_version_requires_the_keys_latest_revision() {
    let mut log = bucket().log();
    ok(&mut log, put("k", "a"));
    ok(&mut log, put("k", "b"));
    mismatch(&mut log, delete_v("k", 1));
    mismatch(&mut log, delete_v("k", 0));
    assert_eq!(ok(&mut log, delete_v("k", 2)).revision, 3);
}

#[test]
fn update_over_a_marker_or_tombstone_with_its_revision_succeeds() {
    let mut log = bucket().log();
    ok(&mut log, put("k", "a"));
    ok(&mut log, delete("k"));
    assert_eq!(ok(&mut log, update("k", "b", 2)).revision, 3);
    ok(&mut log, purge("k"));
    mismatch(&mut log, update("k", "c", 3));
    assert_eq!(ok(&mut log, update("k", "c", 4)).revision, 5);
    ok(&mut log, delete_v("k", 5));
    assert_eq!(ok(&mut log, update("k", "d", 6)).revision, 7);
}

#[test]
fn fenced_writes_require_the_fence_keys_latest_revision() {
    let mut log = bucket().log();
    ok(&mut log, put("f", "lease"));
    mismatch(&mut log, put_fenced("k", "v", "f", 2));
    let e = ok(&mut log, put_fenced("k", "v", "f", 1));
    assert_eq!((e.revision, e.key.as_str(), e.kind), (2, "k", Value));
    assert_eq!(log.latest("f").map(|e| e.revision), Some(1));
    let d = ok(&mut log, delete_fenced("k", "f", 1));
    assert_eq!((d.revision, d.key.as_str(), d.kind), (3, "k", DeleteMarker));
    mismatch(&mut log, delete_fenced("k", "f", 3));
    // A missing fence key holds only for 0.
    assert_eq!(ok(&mut log, put_fenced("k", "v", "g", 0)).revision, 4);
    mismatch(&mut log, put_fenced("k", "v", "g", 1));
    let bad_fence = put_fenced("k", "v", "a..b", 0);
    assert!(matches!(
        refused(&mut log, bad_fence),
        KvError::OperationFailed(_)
    ));
}

#[test]
fn fenced_writes_count_tombstones_and_markers_as_the_fence_keys_latest() {
    let mut log = bucket().log();
    ok(&mut log, put("f", "lease"));
    ok(&mut log, delete_v("f", 1));
    mismatch(&mut log, put_fenced("k", "v", "f", 1));
    assert_eq!(ok(&mut log, put_fenced("k", "v", "f", 2)).revision, 3);
    ok(&mut log, delete("f"));
    mismatch(&mut log, delete_fenced("k", "f", 0));
    assert_eq!(ok(&mut log, delete_fenced("k", "f", 4)).revision, 5);
    ok(&mut log, purge("f"));
    assert_eq!(ok(&mut log, put_fenced("k", "v", "f", 6)).revision, 7);
}

#[test]
fn payload_limit_counts_the_header_block() {
    let mut log = bucket().log();
    let x = |n: usize| "x".repeat(n);
    let at = |log: &mut BucketLog, op, max| log.commit(op, NOW, max).1;
    assert!(at(&mut log, put("k", &x(100)), 100).is_ok());
    let err = at(&mut log, put("k", &x(101)), 100).expect_err("over the limit");
    assert_eq!(err, failed("payload too large: 101 > 100 bytes"));
    // create carries a 52-byte header block: 52 + 48 fits, 52 + 49 does not.
    assert!(at(&mut log, create("c", &x(48)), 100).is_ok());
    let err = at(&mut log, create("d", &x(49)), 100).expect_err("over the limit");
    assert_eq!(err, failed("payload too large: 101 > 100 bytes"));
    // The condition step runs before the payload step.
    let err = at(&mut log, create("c", &x(500)), 100).expect_err("exists");
    assert_eq!(err, KvError::AlreadyExists);
    // max_payload 0 = no limit.
    assert!(at(&mut log, put("k", &x(10_000)), 0).is_ok());
    assert_eq!(log.last_revision(), 3);
}

#[test]
fn payload_limit_is_checked_before_the_size_limit() {
    let mut log = bucket().max_bytes(50).log();
    let err = log.commit(put("k", &"x".repeat(60)), NOW, 40).1;
    assert_eq!(err, Err(failed("payload too large: 60 > 40 bytes")));
}

#[test]
fn discard_new_accepts_an_exact_fit_and_refuses_one_byte_more() {
    let mut log = bucket().max_bytes(80).log();
    assert_eq!(ok(&mut log, put("a", "hello")).size, 42);
    assert_eq!(refused(&mut log, put("b", "xx")), full(80));
    let e = ok(&mut log, put("b", "x"));
    assert_eq!((e.revision, e.size, log.bytes()), (2, 38, 80));
}

// nats-server 2.15's discard-new rule (pinned by tests/differential.rs and the live
// probes of docs/decisions.md): a write that does not fit is accepted only when its key
// is at the history limit and the key's oldest message, which the write replaces, is
// at least as large. Removals are never "freed" up front otherwise.

#[test]
fn discard_new_accepts_a_replacement_no_larger_than_the_oldest_of_a_full_key() {
    let mut log = bucket().max_bytes(80).log();
    ok(&mut log, put("a", "hello"));
    ok(&mut log, put("b", "x"));
    // Full: b is at its history limit (1) and its oldest (38) ≥ the new one (38).
    assert_eq!(ok(&mut log, put("b", "y")).revision, 3);
    assert_eq!(log.bytes(), 80);
    assert_eq!(refused(&mut log, put("b", "yy")), full(80));
}

#[test]
fn discard_new_refuses_below_the_history_limit() {
    let mut log = bucket().max_bytes(80).history(2).log();
    ok(&mut log, put("a", "hello"));
    ok(&mut log, put("b", "x"));
    assert_eq!(refused(&mut log, put("b", "y")), full(80));
}

#[test]
fn discard_new_refuses_a_larger_replacement_even_when_it_would_fit_after_removal() {
    // 42 + 38 = 80 of 120: b at its limit (1), oldest 38 < new 59 → refused although
    // 80 − 38 + 59 = 101 would fit.
    let mut log = bucket().max_bytes(120).log();
    ok(&mut log, put("a", "hello"));
    ok(&mut log, put("b", "x"));
    assert_eq!(refused(&mut log, put("b", &"y".repeat(22))), full(120));
    // A replacement that fits outright is fine.
    assert_eq!(ok(&mut log, put("b", "yy")).revision, 3);
}

#[test]
fn discard_new_does_not_count_rollup_removals() {
    let mut log = bucket().max_bytes(92).history(5).ttl().log();
    ok(&mut log, put("k", "hello"));
    ok(&mut log, put("k", "hello"));
    // 84 + 92 (purge marker) > 92 and k (2 of 5) is not at its history limit.
    assert_eq!(refused(&mut log, purge("k")), full(92));
    assert_eq!(refused(&mut log, put_ttl("k", "hello", secs(1))), full(92));
    // With history 1 the key is at its limit: a rollup replacing a larger oldest fits.
    let mut log = bucket().max_bytes(92).ttl().log();
    ok(&mut log, put("k", &"v".repeat(55)));
    assert_eq!(ok(&mut log, purge("k")).size, 92);
    assert_eq!(log.bytes(), 92);
}

#[test]
fn unlimited_max_bytes_never_refuses() {
    let mut log = bucket().max_bytes(-1).log();
    for key in ["a", "b"] {
        let result = log.commit(put(key, &"x".repeat(6_000_000)), NOW, 0).1;
        assert!(result.is_ok());
    }
    assert_eq!(log.bytes(), 2 * (30 + 7 + 6_000_000));
}

#[test]
fn commit_stamps_stay_monotone_when_the_clock_steps_back() {
    let mut log = bucket().ttl().log();
    // Never before the bucket's creation.
    assert_eq!(ok_at(&mut log, put("a", "v"), 500).stamp_ms, CREATED);
    assert_eq!(ok_at(&mut log, put("a", "v"), 5_000).stamp_ms, 5_000);
    assert_eq!(ok_at(&mut log, put("b", "v"), 3_000).stamp_ms, 5_000);
    let t = ok_at(&mut log, put_ttl("c", "v", secs(2)), 3_000);
    assert_eq!((t.stamp_ms, t.expires_at_ms), (5_000, Some(7_000)));
    assert_eq!(ok_at(&mut log, put("b", "v"), 6_000).stamp_ms, 6_000);
    assert_eq!(log.last_stamp_ms(), 6_000);
}

#[test]
fn discard_old_evicts_the_oldest_entries_until_the_log_fits() {
    let mut log = bucket().max_bytes(100).discard_old().log();
    ok(&mut log, put("a", "hello"));
    ok(&mut log, put("b", "hello"));
    // The history limit removes a's rev 1 first (step 8): 84 fits, b survives.
    ok(&mut log, put("a", "hello"));
    assert_eq!((revisions(&log), log.bytes()), (vec![2, 3], 84));
    assert_eq!(ok(&mut log, put("c", "hello")).revision, 4);
    assert_eq!((revisions(&log), log.bytes()), (vec![3, 4], 84));
    assert_eq!((log.first_revision(), log.last_revision()), (3, 4));
}

#[test]
fn discard_old_commits_and_evicts_a_single_entry_larger_than_max_bytes() {
    let mut log = bucket().max_bytes(100).discard_old().log();
    ok(&mut log, put("a", "hello"));
    let e = ok(&mut log, put("big", &"x".repeat(100)));
    assert_eq!((e.revision, e.size), (2, 30 + 9 + 100));
    assert_eq!(log.latest("big"), None);
    assert_eq!((log.values(), log.bytes()), (0, 0));
    assert_eq!((log.first_revision(), log.last_revision()), (3, 2));
}

#[test]
fn rollup_happens_after_discard_old_eviction() {
    // nats-server order: store, history limit, discard-old eviction, then the rollup.
    // o 42 + k 42 + k 42 = 126; the purge marker (34 + 7 + 51 = 92) makes 218 > 176.
    let mut log = bucket().history(5).max_bytes(176).discard_old().log();
    ok(&mut log, put("o", "hello")); // 1
    ok(&mut log, put("k", "hello")); // 2
    ok(&mut log, put("k", "hello")); // 3
    let p = ok(&mut log, purge("k"));
    assert_eq!((p.revision, p.size), (4, 92));
    // Eviction first removes o's rev 1 (218 − 42 = 176 fits), then the rollup removes
    // k's revs 2 and 3: 92 left. Rollup first would have left 126 − 84 + 92 = 134 ≤
    // 176 with nothing to evict: revisions [1, 4], o still live.
    assert_eq!((revisions(&log), log.bytes()), (vec![4], 92));
    assert_eq!(log.latest("o"), None);
    assert_eq!((log.first_revision(), log.last_revision()), (4, 4));
}

#[test]
fn commit_returns_due_effects_even_when_the_write_fails() {
    // TTL 5 s = marker TTL: the value is due at 7000, its marker at 12000.
    let mut log = bucket().markers(secs(5)).log();
    ok(&mut log, put_ttl("k", "v", secs(5)));
    let (due, result) = log.commit(put("a..b", "v"), 8_000, MAX_PAYLOAD);
    assert!(matches!(result, Err(KvError::OperationFailed(_))));
    let due: Vec<_> = due
        .iter()
        .map(|m| (m.revision, m.kind, m.stamp_ms))
        .collect();
    assert_eq!(due, vec![(2, ExpiryMarker, 7_000)]);
    assert_eq!(revisions(&log), vec![2]);
}

#[test]
fn an_expired_entry_cannot_satisfy_a_condition() {
    let mut log = bucket().ttl().log();
    ok(&mut log, create_ttl("k", "v", secs(1)));
    let stale = commit(&mut log, update("k", "w", 1), 3_000);
    assert_eq!(stale, Err(KvError::RevisionMismatch));
    assert_eq!(ok_at(&mut log, create("k", "w"), 3_000).revision, 2);
}

// ---- byte accounting --------------------------------------------------------------

/// One write of every kind on bucket `b` (history 64, unlimited, 90 s limit markers);
/// returns `(revision, header_len, size)` of each committed entry, and the log. The
/// TTL'd values expire at their own deadlines (t at 3500, c at 7000), each the only
/// entry of its key, so each leaves an expiry marker; the 90 s marker TTL gives the
/// marker header the minutes form `1m30s`.
fn every_write_kind(storage: StorageType) -> (Vec<(u64, u32, u64)>, BucketLog) {
    let make = bucket().storage(storage).history(64).max_bytes(-1);
    let mut log = make.markers(secs(90)).log();
    let ops = [
        put("k", "hello"),                                   // 1
        create("a", "hello"),                                // 2
        delete("a"),                                         // 3
        create("a", "hi"),                                   // 4: over marker 3
        update("a", "hey", 4),                               // 5
        delete_v("a", 5),                                    // 6
        purge("k"),                                          // 7: removes 1
        put_ttl("t", "hello", secs(5)),                      // 8
        put_ttl("t", "hello", Duration::from_millis(1_500)), // 9: removes 8, expires 3500
        create_ttl("c", "hello", secs(5)),                   // 10: expires 7000
        put_fenced("p", "v", "a", 6),                        // 11
        delete_fenced("p", "a", 6),                          // 12
        delete("d"),                                         // 13
        create("d", "x"),                                    // 14: over marker 13
    ];
    let mut out = Vec::new();
    for op in ops {
        let e = ok(&mut log, op);
        out.push((e.revision, e.header_len, e.size));
    }
    // Nothing is due before the first TTL deadline.
    assert!(log.apply_due(3_499).is_empty());
    for m in log.apply_due(7_000) {
        assert_eq!(m.kind, ExpiryMarker);
        out.push((m.revision, m.header_len, m.size));
    }
    (out, log)
}

/// Header blocks of `every_write_kind`: expected-seq "0".."9" 52, "13" 53; DEL 31;
/// PURGE + rollup 51; TTL "5" + rollup 43; "1500ms" + rollup 48; expected "0" +
/// TTL "5" 65; fence (seq "6", subject "$KV.b.a") 106; fence + DEL 125;
/// marker (MaxAge, "1m30s", rollup) 75.
const HEADERS: [u32; 16] = [
    0, 52, 31, 52, 52, 52, 51, 43, 48, 65, 106, 125, 31, 53, 75, 75,
];

fn table(sizes: [u64; 16]) -> Vec<(u64, u32, u64)> {
    (1..=16)
        .zip(HEADERS)
        .zip(sizes)
        .map(|((r, h), s)| (r, h, s))
        .collect()
}

#[test]
fn persistent_storage_sizes_follow_the_file_store_formula() {
    let (entries, log) = every_write_kind(StorageType::Persistent);
    // 30 + 7 + len(value) without headers, else 34 + 7 + H + len(value).
    let sizes = [
        42, 98, 72, 95, 96, 93, 92, 89, 94, 111, 148, 166, 72, 95, 116, 116,
    ];
    assert_eq!(entries, table(sizes));
    // Retained: a 2..=6, k 7, p 11 12, d 13 14, markers 15 16.
    assert_eq!(
        revisions(&log),
        vec![2, 3, 4, 5, 6, 7, 11, 12, 13, 14, 15, 16]
    );
    assert_eq!((log.bytes(), log.status().bytes), (1_259, 1_259));
}

#[test]
fn memory_storage_sizes_follow_the_memory_store_formula() {
    let (entries, log) = every_write_kind(StorageType::Memory);
    // 16 + 7 + H + len(value).
    let sizes = [
        28, 80, 54, 77, 78, 75, 74, 71, 76, 93, 130, 148, 54, 77, 98, 98,
    ];
    assert_eq!(entries, table(sizes));
    assert_eq!(log.bytes(), 1_043);
}

#[test]
fn subject_length_counts_the_bucket_name_and_key() {
    let mut log = bucket().named("orders");
    // "$KV.orders.user.42" = 18 bytes.
    assert_eq!(ok(&mut log, put("user.42", "hello")).size, 30 + 18 + 5);
    // The fence subject header names this bucket: "$KV.orders.f" (12).
    let e = ok(&mut log, put_fenced("k", "v", "f", 0));
    assert_eq!(e.header_len, 10 + 40 + (43 + 12 + 4) + 2);
    assert_eq!(header_block_len(&[]), 0);
}

// ---- time effects -------------------------------------------------------------------

#[test]
fn time_effects_run_in_deadline_order_with_ties_by_lower_revision() {
    // Marker TTL 1 s ≤ every TTL used, so each value keeps its own deadline.
    let mut log = bucket().markers(secs(1)).log();
    ok(&mut log, create_ttl("a", "v", secs(3))); // deadline 5000
    ok(&mut log, put_ttl("b", "v", secs(1))); // 3000
    ok(&mut log, put_ttl("c", "v", secs(1))); // 3000
    assert_eq!(log.next_deadline_ms(), Some(3_000));
    // Order: b 3000, c 3000 (tie → lower revision), markers 4 and 5 at 4000, a 5000.
    let markers = log.apply_due(5_000);
    assert_eq!(keys_of(&markers), vec!["b", "c", "a"]);
    let stamps: Vec<(u64, u64)> = markers.iter().map(|m| (m.revision, m.stamp_ms)).collect();
    assert_eq!(stamps, vec![(4, 3_000), (5, 3_000), (6, 5_000)]);
    assert_eq!(revisions(&log), vec![6]);
    assert_eq!(log.next_deadline_ms(), Some(6_000));
}

#[test]
fn an_entry_is_due_exactly_at_its_deadline() {
    let mut log = bucket().ttl().log();
    ok(&mut log, put_ttl("k", "v", secs(1)));
    assert!(log.apply_due(2_999).is_empty());
    assert_eq!(revisions(&log), vec![1]);
    assert!(log.apply_due(3_000).is_empty());
    assert_eq!(revisions(&log), Vec::<u64>::new());
    assert_eq!(log.next_deadline_ms(), None);
}

#[test]
fn max_age_removes_values_tombstones_and_markers_silently_without_limit_markers() {
    let mut log = bucket().max_age(secs(1)).log();
    ok_at(&mut log, put("a", "v"), 2_000);
    ok_at(&mut log, put("b", "v"), 2_500);
    ok_at(&mut log, delete_v("b", 2), 2_600);
    ok_at(&mut log, delete("c"), 2_700);
    assert_eq!(log.next_deadline_ms(), Some(3_000));
    assert!(log.apply_due(3_000).is_empty());
    assert_eq!(revisions(&log), vec![3, 4]);
    assert!(log.apply_due(3_700).is_empty());
    assert_eq!((log.values(), log.bytes()), (0, 0));
    assert_eq!((log.first_revision(), log.last_revision()), (5, 4));
}

#[test]
fn the_deadline_is_the_earlier_of_max_age_and_ttl() {
    let mut log = bucket().max_age(secs(10)).ttl().log();
    ok(&mut log, put_ttl("short", "v", secs(1))); // ttl 3000 < age 12000
    ok(&mut log, put_ttl("long", "v", secs(60))); // age 12000 < ttl 62000
    assert_eq!(log.next_deadline_ms(), Some(3_000));
    log.apply_due(3_000);
    assert_eq!(log.next_deadline_ms(), Some(12_000));
    log.apply_due(12_000);
    assert_eq!(log.values(), 0);
}

#[test]
fn a_ttl_entry_expires_when_no_longer_the_latest_without_a_marker() {
    // Marker TTL 1 s = the TTL, so rev 1 keeps its own deadline of 3000.
    let mut log = bucket().history(3).markers(secs(1)).log();
    ok_at(&mut log, create_ttl("k", "a", secs(1)), 2_000);
    ok_at(&mut log, put("k", "b"), 2_500);
    assert!(log.apply_due(3_000).is_empty());
    assert_eq!((revisions(&log), log.last_revision()), (vec![2], 2));
}

#[test]
fn an_expiry_marker_is_stamped_at_the_deadline_not_at_now() {
    // TTL 60 s ≥ marker TTL 30 s: the value is due at 62000; effects run at 90000.
    let mut log = bucket().markers(secs(30)).log();
    ok(&mut log, put_ttl("k", "v", secs(60)));
    let markers = log.apply_due(90_000);
    assert_eq!(markers.len(), 1);
    assert_eq!(
        (markers[0].stamp_ms, markers[0].expires_at_ms),
        (62_000, Some(92_000))
    );
    assert_eq!(log.last_stamp_ms(), 62_000);
    // A later write never stamps before the marker.
    assert_eq!(ok_at(&mut log, put("j", "v"), 2_500).stamp_ms, 62_000);
}

#[test]
fn limit_markers_follow_latest_values_and_tombstones_but_never_markers() {
    let mut log = bucket().max_age(secs(1)).markers(secs(5)).log();
    ok(&mut log, put("a", "v")); // 1
    ok(&mut log, put("t", "v")); // 2
    ok(&mut log, delete_v("t", 2)); // 3: tombstone, removes 2
    ok(&mut log, delete("d")); // 4: delete marker
    ok(&mut log, purge("p")); // 5: purge marker
    let markers = log.apply_due(3_000);
    assert_eq!(keys_of(&markers), vec!["a", "t"]);
    assert!(markers.iter().all(|m| m.kind == ExpiryMarker));
    assert_eq!(revisions(&log), vec![6, 7]);
    // Marker TTL "5s": H = 10 + (18 + 6 + 4) + (8 + 2 + 4) + 18 + 2 = 72.
    assert_eq!((markers[0].header_len, markers[0].size), (72, 34 + 7 + 72));
    // The markers age out at 4000 (age before their 8000 TTL) and leave nothing.
    assert_eq!(log.next_deadline_ms(), Some(4_000));
    assert!(log.apply_due(4_000).is_empty());
    assert_eq!((log.first_revision(), log.last_revision()), (8, 7));
}

#[test]
fn no_marker_is_written_without_limit_marker_ttl() {
    let mut log = bucket().ttl().log();
    ok(&mut log, put_ttl("k", "v", secs(1)));
    assert!(log.apply_due(3_000).is_empty());
    assert_eq!((log.first_revision(), log.last_revision()), (2, 1));
}

#[test]
fn an_expiry_marker_expires_after_limit_marker_ttl_without_a_marker() {
    // TTL 5 s ≥ marker TTL 2 s: value due at 7000, its marker at 7000 + 2000.
    let mut log = bucket().markers(secs(2)).log();
    ok(&mut log, put_ttl("k", "v", secs(5)));
    assert_eq!(log.apply_due(7_000).len(), 1);
    assert_eq!(log.next_deadline_ms(), Some(9_000));
    assert!(log.apply_due(8_999).is_empty());
    assert_eq!(revisions(&log), vec![2]);
    assert!(log.apply_due(9_000).is_empty());
    assert_eq!((log.values(), log.bytes()), (0, 0));
    assert_eq!((log.first_revision(), log.last_revision()), (3, 2));
}

// nats-server 2.15 with limit markers: a TTL'd value expires at its own deadline in the
// memory backend. (nats-server may keep it until the marker TTL on buckets with history >
// 1; docs/memory-backend.md, "Allowed differences from NATS" allows that timing
// difference.)

#[test]
fn a_ttl_keeps_its_own_deadline_under_limit_markers() {
    let mut log = bucket().history(2).markers(secs(2)).log();
    let p = ok(&mut log, put_ttl("p", "v", secs(1))); // 1, stamp 2000
    let c = ok(&mut log, create_ttl("c", "v", secs(1))); // 2, stamp 2000
    assert_eq!(
        (p.expires_at_ms, c.expires_at_ms),
        (Some(3_000), Some(3_000))
    );
    // put_ttl 10 + (8 + 1 + 4) + rollup 18 + 2 = 43; create_ttl 10 + expected "0" 40 + 13 + 2 = 65.
    assert_eq!((p.header_len, c.header_len), (43, 65));
    assert!(log.apply_due(2_999).is_empty());
    let markers: Vec<_> = log
        .apply_due(3_000)
        .iter()
        .map(|m| (m.key.clone(), shape(m), m.stamp_ms, m.expires_at_ms))
        .collect();
    let marker = |key: &str, rev| (key.to_string(), (rev, ExpiryMarker, 0), 3_000, Some(5_000));
    assert_eq!(markers, vec![marker("p", 3), marker("c", 4)]);
    assert!(log.apply_due(4_999).is_empty());
    assert!(log.apply_due(5_000).is_empty());
    assert_eq!((log.values(), log.bytes()), (0, 0));
}

#[test]
fn max_age_is_not_raised_by_the_marker_ttl() {
    // Probe: max_age 1.5 s, marker TTL 3 s → the value goes at 1.5 s; its marker,
    // also subject to max_age, at 1.5 s after its stamp (3 s), before its own 3 s TTL.
    let mut log = bucket()
        .max_age(Duration::from_millis(1_500))
        .markers(secs(3))
        .log();
    ok(&mut log, put("k", "v")); // 1, stamp 2000
    assert_eq!(log.next_deadline_ms(), Some(3_500));
    assert!(log.apply_due(3_499).is_empty());
    let m = log.apply_due(3_500).pop().expect("expiry marker");
    assert_eq!((shape(&m), m.stamp_ms), ((2, ExpiryMarker, 0), 3_500));
    assert_eq!(m.expires_at_ms, Some(6_500));
    assert_eq!(log.next_deadline_ms(), Some(5_000));
    assert!(log.apply_due(4_999).is_empty());
    assert_eq!(revisions(&log), vec![2]);
    assert!(log.apply_due(5_000).is_empty());
    assert_eq!((log.values(), log.bytes()), (0, 0));
    assert_eq!((log.first_revision(), log.last_revision()), (3, 2));
}

// ---- first/last, evictions -------------------------------------------------------------

#[test]
fn a_fresh_bucket_reports_first_and_last_zero() {
    let log = bucket().log();
    assert_eq!((log.first_revision(), log.last_revision()), (0, 0));
    let status = log.status();
    assert_eq!((status.first_revision, status.last_revision), (0, 0));
    assert_eq!(status.retention.first_revision, 0);
}

#[test]
fn an_interior_hole_does_not_move_first_revision() {
    let mut log = bucket().log();
    ok(&mut log, put("a", "v"));
    ok(&mut log, put("b", "v"));
    ok(&mut log, put("b", "v"));
    assert_eq!((revisions(&log), log.first_revision()), (vec![1, 3], 1));
    ok(&mut log, put("a", "v"));
    assert_eq!((revisions(&log), log.first_revision()), (vec![3, 4], 3));
}

#[test]
fn evict_below_removes_every_lower_revision_and_returns_first() {
    let mut log = bucket().history(5).log();
    for key in ["a", "b", "a", "c", "b"] {
        ok(&mut log, put(key, "hello"));
    }
    assert_eq!(log.evict_below(0), 1);
    assert_eq!(log.evict_below(3), 3);
    assert_eq!((revisions(&log), log.bytes()), (vec![3, 4, 5], 3 * 42));
    assert_eq!(log.latest("a").map(|e| e.revision), Some(3));
    assert_eq!(log.evict_below(3), 3);
    assert_eq!(log.evict_below(100), 6);
    assert_eq!((log.values(), log.bytes(), log.last_revision()), (0, 0, 5));
    assert_eq!(log.latest("b"), None);
}

#[test]
fn evict_head_removes_the_lowest_retained_entries_across_holes() {
    let mut log = bucket().log();
    for key in ["a", "b", "b", "c"] {
        ok(&mut log, put(key, "v"));
    }
    assert_eq!(revisions(&log), vec![1, 3, 4]);
    assert_eq!(log.evict_head(0), 1);
    assert_eq!(log.evict_head(2), 4);
    assert_eq!(revisions(&log), vec![4]);
    assert_eq!(log.evict_head(5), 5);
    assert_eq!(log.last_revision(), 4);
}

#[test]
fn purge_markers_zero_removes_every_key_whose_latest_is_a_marker() {
    // Marker TTL 1 s = x's TTL: x is due at 3000, its marker (stamped 3000) at 4000.
    let mut log = bucket().history(3).markers(secs(1)).log();
    ok(&mut log, put("a", "v")); // 1
    ok(&mut log, delete("a")); // 2
    ok(&mut log, purge("b")); // 3
    ok(&mut log, put("c", "v")); // 4
    ok(&mut log, put("d", "v")); // 5
    ok(&mut log, delete_v("d", 5)); // 6: a tombstone is a value
    ok(&mut log, delete("e")); // 7
    ok(&mut log, put("e", "v")); // 8
    ok(&mut log, put_ttl("x", "v", secs(1))); // 9 → expiry marker 10
    assert_eq!(log.apply_due(3_000).len(), 1);
    // ZERO = all, even markers stamped after `now` (a clock that stepped back).
    assert_eq!(log.purge_markers(0, 1_000), 3);
    assert_eq!(revisions(&log), vec![4, 5, 6, 7, 8]);
    assert_eq!(log.bytes(), 38 + 38 + 93 + 72 + 38);
    assert_eq!((log.first_revision(), log.last_revision()), (4, 10));
    assert_eq!(log.purge_markers(0, 3_000), 0);
}

#[test]
fn purge_markers_older_than_keeps_markers_stamped_after_the_cutoff() {
    let mut log = bucket().log();
    ok_at(&mut log, delete("a"), 2_000);
    ok_at(&mut log, delete("b"), 5_000);
    ok_at(&mut log, put("c", "v"), 5_000);
    assert_eq!(log.purge_markers(2_000, 6_000), 1); // cutoff 4000
    assert_eq!(revisions(&log), vec![2, 3]);
    assert_eq!(log.purge_markers(1_000, 6_000), 1); // cutoff 5000, inclusive
    assert_eq!(revisions(&log), vec![3]);
}

#[test]
fn purge_markers_older_than_now_removes_nothing() {
    let make = bucket();
    let mut log = BucketLog::new("b", &make.0, &make.1, 0);
    ok_at(&mut log, delete("a"), 0);
    assert_eq!(log.purge_markers(1_000, 500), 0);
    assert_eq!(revisions(&log), vec![1]);
}

// ---- reads -----------------------------------------------------------------------------

#[test]
fn latest_is_the_latest_retained_entry_of_any_kind() {
    let mut log = bucket().history(3).log();
    ok(&mut log, put("k", "v"));
    ok(&mut log, delete("k"));
    let latest = log.latest("k").expect("retained");
    assert_eq!((latest.revision, latest.kind), (2, DeleteMarker));
    assert_eq!(log.latest("none"), None);
}

#[test]
fn latest_in_scope_is_in_ascending_revision_and_includes_markers() {
    let mut log = bucket().log();
    ok(&mut log, put("b.1", "v")); // 1, superseded by 5
    ok(&mut log, put("a.1", "v")); // 2
    ok(&mut log, put("c.x", "v")); // 3
    ok(&mut log, delete("a.2")); // 4
    ok(&mut log, put("b.1", "v")); // 5
    let revs = |prefixes: &[&str]| -> Vec<u64> {
        log.latest_in_scope(prefixes)
            .iter()
            .map(|e| e.revision)
            .collect()
    };
    assert_eq!(revs(&["c.", "a."]), vec![2, 3, 4]);
    assert_eq!(revs(&[""]), vec![2, 3, 4, 5]);
    assert_eq!(revs(&["b"]), vec![5]);
    assert_eq!(revs(&[]), Vec::<u64>::new());
}

#[test]
fn live_in_prefix_is_a_string_prefix_ascending_by_key_without_markers_or_empty_values() {
    let mut log = bucket().log();
    for key in ["apz", "apple", "app.x", "app", "ap", "app.d", "app.t"] {
        ok(&mut log, put(key, "v"));
    }
    ok(&mut log, put("app.e", "")); // 8: empty value
    ok(&mut log, delete("app.d")); // 9
    ok(&mut log, delete_v("app.t", 7)); // 10: tombstone
    ok(&mut log, purge("app.p")); // 11
    let keys = |prefix: &str| -> Vec<String> {
        log.live_in_prefix(prefix).map(|e| e.key.clone()).collect()
    };
    assert_eq!(keys("app"), vec!["app", "app.x", "apple"]);
    assert_eq!(keys("app."), vec!["app.x"]);
    assert_eq!(keys(""), vec!["ap", "app", "app.x", "apple", "apz"]);
    assert_eq!(keys("b"), Vec::<String>::new());
}

#[test]
fn entries_from_is_ascending_from_the_revision_inclusive() {
    let mut log = bucket().log();
    for key in ["a", "b", "b", "c"] {
        ok(&mut log, put(key, "v"));
    }
    let from = |r: u64| -> Vec<u64> { log.entries_from(r).map(|e| e.revision).collect() };
    assert_eq!(from(0), vec![1, 3, 4]);
    assert_eq!(from(2), vec![3, 4]);
    assert_eq!(from(4), vec![4]);
    assert_eq!(from(5), Vec::<u64>::new());
}

#[test]
fn next_deadline_is_none_without_age_or_ttl_and_tracks_the_earliest() {
    let mut log = bucket().ttl().log();
    ok(&mut log, put("a", "v"));
    assert_eq!(log.next_deadline_ms(), None);
    ok(&mut log, put_ttl("b", "v", secs(9)));
    ok(&mut log, put_ttl("c", "v", secs(4)));
    assert_eq!(log.next_deadline_ms(), Some(6_000));
    ok(&mut log, purge("c")); // the rollup removes c's deadline
    assert_eq!(log.next_deadline_ms(), Some(11_000));
}

#[test]
fn entries_read_and_deliver_as_api_15_2_says() {
    // Marker TTL 1 s = x's TTL: x is due at 3000, its marker lives until 4000.
    let mut log = bucket().markers(secs(1)).log();
    let v = ok(&mut log, put("v", "x"));
    let t = ok(&mut log, delete_v("v", 1));
    let d = ok(&mut log, delete("d"));
    let p = ok(&mut log, purge("p"));
    ok(&mut log, put_ttl("x", "x", secs(1)));
    let m = log.apply_due(3_000).pop().expect("expiry marker");
    assert!(v.is_live_value() && !t.is_live_value() && !d.is_live_value());
    assert!(matches!(v.to_update(), KvUpdate::Put(_)));
    assert!(matches!(t.to_update(), KvUpdate::Delete { .. }));
    assert!(matches!(d.to_update(), KvUpdate::Delete { .. }));
    assert!(matches!(p.to_update(), KvUpdate::Purge { .. }));
    assert!(matches!(m.to_update(), KvUpdate::Purge { .. }));
    assert_eq!(t.to_kv_entry().map(|e| e.value), Some(Vec::new()));
    assert_eq!(
        (d.to_kv_entry(), p.to_kv_entry(), m.to_kv_entry()),
        (None, None, None)
    );
    assert_eq!(
        (m.version().as_u64(), m.version().written_ms()),
        (Some(6), Some(3_000))
    );
}

// ---- status, retention, facts ------------------------------------------------------------

#[test]
fn status_reads_back_the_effective_config_with_defaults() {
    let status = bucket().log().status();
    let expected = StoreConfig {
        name: "b".to_string(),
        storage: StorageType::Persistent,
        max_history: Some(1),
        max_age: None,
        max_bytes: Some(10 * 1024 * 1024),
        num_replicas: Some(1),
        discard: DiscardPolicy::New,
    };
    assert_eq!(status.config, expected);
    assert_eq!(status.options, StoreOptions::default());
    assert_eq!(
        (status.name.as_str(), status.created_unix_ms),
        ("b", CREATED)
    );
    assert_eq!((status.values, status.bytes), (0, 0));
    assert!(!status.retention.evicts_current_values);
}

#[test]
fn status_reads_back_unlimited_bytes_as_none_and_the_given_settings() {
    let make = bucket()
        .storage(StorageType::Memory)
        .history(5)
        .max_age(secs(2));
    let log = make
        .max_bytes(0)
        .replicas(3)
        .discard_old()
        .markers(secs(5))
        .log();
    let status = log.status();
    let expected = StoreConfig {
        name: "b".to_string(),
        storage: StorageType::Memory,
        max_history: Some(5),
        max_age: Some(secs(2)),
        max_bytes: None,
        num_replicas: Some(3),
        discard: DiscardPolicy::Old,
    };
    assert_eq!(status.config, expected);
    assert_eq!(
        status.options,
        StoreOptions::new().with_limit_markers(secs(5))
    );
    assert_eq!(bucket().max_bytes(-1).log().status().config.max_bytes, None);
    assert_eq!(
        bucket().replicas(0).log().status().config.num_replicas,
        Some(1)
    );
}

#[test]
fn status_counts_retained_messages_and_their_bytes() {
    let mut log = bucket().history(2).log();
    ok(&mut log, put("a", "hello"));
    ok(&mut log, put("a", "hello"));
    ok(&mut log, delete("a"));
    ok(&mut log, put("b", "hello"));
    let status = log.status();
    assert_eq!((status.first_revision, status.last_revision), (2, 4));
    assert_eq!((status.values, status.bytes), (3, 42 + 72 + 42));
    assert_eq!(status.retention.first_revision, 2);
}

#[test]
fn retention_classifies_what_can_remove_current_values() {
    let evicts = |make: Make| make.log().retention().evicts_current_values;
    assert!(!evicts(bucket()));
    assert!(evicts(bucket().max_age(secs(1))));
    assert!(evicts(bucket().discard_old())); // the 10 MiB default is a byte limit
    assert!(!evicts(bucket().discard_old().max_bytes(-1)));
    assert!(!evicts(bucket().max_bytes(100)));
    assert!(evicts(bucket().ttl()));
    assert!(evicts(bucket().markers(secs(1))));
}

#[test]
fn facts_report_the_stream_as_a_probe_reads_it() {
    let mut log = bucket()
        .max_age(secs(30))
        .discard_old()
        .max_bytes(500)
        .ttl()
        .log();
    for key in ["a", "b", "a"] {
        ok(&mut log, put(key, "v"));
    }
    let limits = LogLimits {
        max_age_ms: 30_000,
        allow_msg_ttl: true,
        discard_old: true,
        max_bytes: 500,
        max_msgs: -1,
    };
    let expected = StreamFacts {
        first_sequence: 2,
        last_sequence: 3,
        created_ms: Some(CREATED),
        server_now_ms: Some(9_000),
        limits,
    };
    assert_eq!(log.facts(9_000), expected);
    assert_eq!(log.limits(), limits);
}
