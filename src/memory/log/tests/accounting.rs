//! Byte accounting per storage type.

use super::*;

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
