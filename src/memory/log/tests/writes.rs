//! Entries kept and removed by each write kind, and the commit procedure (checks, conditions, limits).

use super::*;

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
