//! First/last revisions, evictions, reads, status, retention and stream facts.

use super::*;

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
