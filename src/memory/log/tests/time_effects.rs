//! Time effects: max age, TTL, expiry and limit markers.

use super::*;

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
