//! Fold checks (SC-01, SC-06…SC-12): what `apply` folds and which cursor it
//! makes durable, compared with the reference fold live and after a reopen.

use super::support::{
    Ctx, Model, apply, cur, del, ensure, expect_state, open, open_fresh, purge, put, range_rows,
    reopen, same_cursor, show_rows,
};
use super::{Outcome, SnapshotHarness};
use crate::kv::{KvEntry, KvUpdate, VersionToken, WatchCursor};
use crate::snapshot::SnapshotStore;

/// SC-01: a mixed stream (puts, an overwrite, a delete, a purge, an empty value,
/// a key deleted and written again inside one batch) with its cursor reads back
/// equal to the reference fold, live and after a reopen; a second batch applied
/// to the reopened store survives another reopen.
pub fn sc_01_round_trip(h: &impl SnapshotHarness) -> Outcome {
    let cx = Ctx::new("sc_01_round_trip", "SC-01");
    let (path, mut store) = open_fresh(&cx, h, "new store");
    let mut model = Model::new();
    let first = [
        put("a", b"1", 1),
        put("b", b"2", 2),
        put("a", b"one", 3),
        put("c", b"", 4),
        put("d", b"4", 5),
        del("b", 6),
        purge("d", 7),
        put("e", &[0, 159, 146, 150, 255], 8),
        put("f", b"first", 9),
        del("f", 10),
        put("f", b"again", 11),
        del("never-written", 12),
    ];
    apply(&cx, &mut store, &mut model, &first, &cur(12), "first batch");
    expect_state(&cx, &store, &model, "after the first batch");
    let mut store = reopen(&cx, h, store, &path, &model, "first reopen");
    let second = [
        del("a", 13),
        put("b", b"back", 14),
        put("c", b"no longer empty", 15),
        purge("e", 16),
        put("g", b"7", 17),
    ];
    apply(
        &cx,
        &mut store,
        &mut model,
        &second,
        &cur(17),
        "second batch",
    );
    expect_state(&cx, &store, &model, "after the second batch");
    reopen(&cx, h, store, &path, &model, "second reopen");
    Outcome::Passed
}

/// SC-06: `cursor()` is none on a new store, equals the cursor of the last
/// `apply` after each call, and survives a reopen (also as the cursor `open`
/// returns).
pub fn sc_06_cursor_tracks_apply(h: &impl SnapshotHarness) -> Outcome {
    let cx = Ctx::new("sc_06_cursor_tracks_apply", "SC-06");
    let (path, mut store) = open_fresh(&cx, h, "new store");
    let mut model = Model::new();
    for (rev, batch) in [
        (1u64, vec![put("k", b"1", 1)]),
        (5, vec![put("k", b"2", 5)]),
        (9, vec![del("k", 9)]),
    ] {
        apply(&cx, &mut store, &mut model, &batch, &cur(rev), "apply");
        let got = store.cursor();
        ensure!(
            cx,
            same_cursor(&got, &cur(rev)),
            "after apply with cursor {rev}: cursor() is {got:?}"
        );
    }
    let mut store = reopen(&cx, h, store, &path, &model, "reopen");
    apply(
        &cx,
        &mut store,
        &mut model,
        &[put("k", b"3", 12)],
        &cur(12),
        "apply after reopen",
    );
    reopen(&cx, h, store, &path, &model, "second reopen");
    Outcome::Passed
}

/// SC-07: `apply(&[], c)` makes `c` durable: on a store with entries (which
/// stay as they are) and on a new store, the reopened cursor is `c`.
pub fn sc_07_empty_batch_advances_cursor(h: &impl SnapshotHarness) -> Outcome {
    let cx = Ctx::new("sc_07_empty_batch_advances_cursor", "SC-07");
    let (path, mut store) = open_fresh(&cx, h, "store with entries");
    let mut model = Model::new();
    apply(
        &cx,
        &mut store,
        &mut model,
        &[put("k", b"v", 1), put("e", b"", 2)],
        &cur(2),
        "data batch",
    );
    apply(&cx, &mut store, &mut model, &[], &cur(10), "empty batch");
    expect_state(&cx, &store, &model, "after the empty batch");
    let mut store = reopen(&cx, h, store, &path, &model, "reopen after the empty batch");
    apply(
        &cx,
        &mut store,
        &mut model,
        &[],
        &cur(11),
        "second empty batch",
    );
    reopen(
        &cx,
        h,
        store,
        &path,
        &model,
        "reopen after the second empty batch",
    );

    let (path, mut store) = open_fresh(&cx, h, "new store");
    let mut model = Model::new();
    apply(
        &cx,
        &mut store,
        &mut model,
        &[],
        &cur(7),
        "empty batch on a new store",
    );
    expect_state(&cx, &store, &model, "new store after the empty batch");
    reopen(
        &cx,
        h,
        store,
        &path,
        &model,
        "reopen of a store that only saw an empty batch",
    );
    Outcome::Passed
}

/// SC-08: Purge folds exactly like Delete: the same stream with every Delete
/// replaced by a Purge gives the same state in a second store, live and after a
/// reopen (absent keys, re-puts after the marker, markers in separate batches).
pub fn sc_08_purge_folds_as_delete(h: &impl SnapshotHarness) -> Outcome {
    let cx = Ctx::new("sc_08_purge_folds_as_delete", "SC-08");
    let batches: Vec<(Vec<KvUpdate>, WatchCursor)> = vec![
        (
            vec![put("a", b"1", 1), put("b", b"2", 2), put("c", b"", 3)],
            cur(3),
        ),
        (
            vec![del("a", 4), del("absent", 5), put("b", b"2b", 6)],
            cur(6),
        ),
        (
            vec![del("b", 7), put("a", b"again", 8), del("c", 9)],
            cur(9),
        ),
    ];
    let purged: Vec<(Vec<KvUpdate>, WatchCursor)> = batches
        .iter()
        .map(|(batch, cursor)| {
            let batch = batch
                .iter()
                .map(|update| match update {
                    KvUpdate::Delete { key, version } => KvUpdate::Purge {
                        key: key.clone(),
                        version: version.clone(),
                    },
                    other => other.clone(),
                })
                .collect();
            (batch, cursor.clone())
        })
        .collect();
    let (path_d, mut with_delete) = open_fresh(&cx, h, "store fed Deletes");
    let (path_p, mut with_purge) = open_fresh(&cx, h, "store fed Purges");
    let mut model = Model::new();
    for ((deletes, cursor), (purges, _)) in batches.iter().zip(&purged) {
        cx.ok(with_delete.apply(deletes, cursor), "apply with Deletes");
        cx.ok(with_purge.apply(purges, cursor), "apply with Purges");
        model.apply(deletes, cursor);
        let d = range_rows(&cx, &with_delete, "", "store fed Deletes");
        let p = range_rows(&cx, &with_purge, "", "store fed Purges");
        ensure!(
            cx,
            d == p,
            "Purge folded differently from Delete: {} vs {}",
            show_rows(&p),
            show_rows(&d)
        );
        expect_state(&cx, &with_purge, &model, "store fed Purges");
        expect_state(&cx, &with_delete, &model, "store fed Deletes");
    }
    reopen(
        &cx,
        h,
        with_delete,
        &path_d,
        &model,
        "reopen of the store fed Deletes",
    );
    reopen(
        &cx,
        h,
        with_purge,
        &path_p,
        &model,
        "reopen of the store fed Purges",
    );
    Outcome::Passed
}

/// The update stream of SC-09 and SC-10: 24 updates over 6 keys, with
/// overwrites, deletes, purges, empty values and re-puts.
fn stream() -> Vec<KvUpdate> {
    let mut updates = Vec::new();
    for rev in 1..=24u64 {
        let key = format!("key.{}", rev % 6);
        let update = match rev % 5 {
            0 => del(&key, rev),
            3 if rev.is_multiple_of(2) => purge(&key, rev),
            4 => put(&key, b"", rev),
            _ => put(&key, format!("value {rev}").as_bytes(), rev),
        };
        updates.push(update);
    }
    updates
}

/// SC-09: the fold is a pure function of the stream: applying it in separate
/// batches (with a reopen in the middle) and reopening gives exactly the state
/// and cursor of a new store fed everything in one batch (compared as full
/// dumps).
pub fn sc_09_pure_fold(h: &impl SnapshotHarness) -> Outcome {
    let cx = Ctx::new("sc_09_pure_fold", "SC-09");
    let updates = stream();
    let last = cur(updates.len() as u64);
    let (path_a, mut split) = open_fresh(&cx, h, "store fed in batches");
    let mut model = Model::new();
    let sizes = [1usize, 5, 0, 7, 3, 8];
    let mut at = 0;
    for (i, size) in sizes.iter().enumerate() {
        let batch = &updates[at..at + size];
        at += size;
        apply(&cx, &mut split, &mut model, batch, &cur(at as u64), "batch");
        if i == 2 {
            split = reopen(&cx, h, split, &path_a, &model, "reopen between batches");
        }
    }
    ensure!(cx, at == updates.len(), "the batches must cover the stream");
    let split = reopen(&cx, h, split, &path_a, &model, "reopen after all batches");
    let (path_b, mut whole) = open_fresh(&cx, h, "store fed one batch");
    cx.ok(whole.apply(&updates, &last), "one batch");
    let whole = reopen(
        &cx,
        h,
        whole,
        &path_b,
        &model,
        "reopen of the one-batch store",
    );
    let a = range_rows(&cx, &split, "", "store fed in batches");
    let b = range_rows(&cx, &whole, "", "store fed one batch");
    ensure!(
        cx,
        a == b,
        "split and whole folds differ: {} vs {}",
        show_rows(&a),
        show_rows(&b)
    );
    ensure!(
        cx,
        same_cursor(&split.cursor(), &whole.cursor()),
        "cursors differ: {:?} vs {:?}",
        split.cursor(),
        whole.cursor()
    );
    Outcome::Passed
}

/// SC-10: redelivery is idempotent: applying the same batch with the same
/// cursor again, live or after a reopen (the resume case), changes nothing.
pub fn sc_10_idempotent_redelivery(h: &impl SnapshotHarness) -> Outcome {
    let cx = Ctx::new("sc_10_idempotent_redelivery", "SC-10");
    let updates = stream();
    let (path, mut store) = open_fresh(&cx, h, "new store");
    let mut model = Model::new();
    apply(
        &cx,
        &mut store,
        &mut model,
        &updates[..10],
        &cur(10),
        "first batch",
    );
    let second = &updates[10..];
    apply(
        &cx,
        &mut store,
        &mut model,
        second,
        &cur(24),
        "second batch",
    );
    cx.ok(store.apply(second, &cur(24)), "redelivered second batch");
    expect_state(&cx, &store, &model, "after a live redelivery");
    let mut store = reopen(&cx, h, store, &path, &model, "reopen");
    cx.ok(
        store.apply(second, &cur(24)),
        "second batch redelivered after a reopen",
    );
    expect_state(&cx, &store, &model, "after a redelivery following a reopen");
    // A resume re-delivers a batch that straddles the cursor: older updates again.
    let straddle: Vec<KvUpdate> = updates[20..].to_vec();
    cx.ok(
        store.apply(&straddle, &cur(24)),
        "batch overlapping the cursor",
    );
    expect_state(&cx, &store, &model, "after an overlapping redelivery");
    reopen(&cx, h, store, &path, &model, "final reopen");
    Outcome::Passed
}

/// SC-11: cursors carrying the eviction memo and a write time keep both through
/// `apply` and a reopen (compared by their encoded bytes): with entries, on a
/// store with no entries, as the memo-only none cursor, and with a write time
/// but no memo.
pub fn sc_11_cursor_memo_round_trip(h: &impl SnapshotHarness) -> Outcome {
    let cx = Ctx::new("sc_11_cursor_memo_round_trip", "SC-11");
    let written_ms = 1_700_000_123_456;
    let memo_and_time = WatchCursor::from_version(VersionToken::from_u64(5).written_at(written_ms))
        .remembering(true);
    let time_only = WatchCursor::from_version(VersionToken::from_u64(6).written_at(written_ms + 1));
    let memo_only_none = WatchCursor::none().remembering(true);
    let memo_bare = WatchCursor::from_u64(8).remembering(true);
    let cases: [(&str, WatchCursor, Vec<KvUpdate>); 5] = [
        (
            "memo and write time, with entries",
            memo_and_time.clone(),
            vec![put("k", b"v", 5)],
        ),
        ("memo and write time, no entries", memo_and_time, vec![]),
        ("write time without memo", time_only, vec![put("k", b"", 6)]),
        ("memo-only none cursor, no entries", memo_only_none, vec![]),
        (
            "memo without write time, entries deleted",
            memo_bare,
            vec![put("k", b"v", 7), del("k", 8)],
        ),
    ];
    for (label, cursor, batch) in cases {
        ensure!(
            cx,
            WatchCursor::from_bytes(&cursor.to_bytes()).as_ref() == Some(&cursor),
            "{label}: test cursor must encode"
        );
        let (path, mut store) = open_fresh(&cx, h, label);
        let mut model = Model::new();
        apply(&cx, &mut store, &mut model, &batch, &cursor, label);
        expect_memo(&cx, &store.cursor(), &cursor, label);
        drop(store);
        let (resumed, store) = open(&cx, h, &path, label);
        expect_memo(
            &cx,
            &resumed,
            &cursor,
            &format!("{label}: resume cursor returned by open"),
        );
        expect_memo(
            &cx,
            &store.cursor(),
            &cursor,
            &format!("{label}: cursor() after reopen"),
        );
        expect_state(&cx, &store, &model, label);
    }
    Outcome::Passed
}

/// Fails unless `got` is `expected` in every part: version, memo, write time, bytes.
#[track_caller]
fn expect_memo(cx: &Ctx, got: &WatchCursor, expected: &WatchCursor, what: &str) {
    ensure!(
        cx,
        same_cursor(got, expected)
            && got.seen_evicting() == expected.seen_evicting()
            && got.written_ms() == expected.written_ms()
            && got.is_none() == expected.is_none(),
        "{what}: cursor {got:?} (bytes {:02x?}, memo {}, written {:?}), expected {expected:?} (bytes {:02x?}, memo {}, written {:?})",
        got.to_bytes(),
        got.seen_evicting(),
        got.written_ms(),
        expected.to_bytes(),
        expected.seen_evicting(),
        expected.written_ms()
    );
}

/// SC-12: version tokens that are not u64 revisions (10 bytes, the maximum, and
/// 3 bytes) round-trip as entry versions and as cursor versions, live and after
/// a reopen.
pub fn sc_12_long_version_round_trip(h: &impl SnapshotHarness) -> Outcome {
    let cx = Ctx::new("sc_12_long_version_round_trip", "SC-12");
    let ten: Vec<u8> = (1..=10).collect();
    let three = [0xAB, 0x00, 0xCD];
    let (Some(v10), Some(v3)) = (VersionToken::from_raw(&ten), VersionToken::from_raw(&three))
    else {
        cx.fail("VersionToken::from_raw refused a token of at most 10 bytes");
    };
    ensure!(
        cx,
        v10.as_u64().is_none() && v3.as_u64().is_none(),
        "test tokens must not be u64 revisions"
    );
    let entry = |key: &str, value: &[u8], version: &VersionToken| {
        KvUpdate::Put(KvEntry {
            key: key.to_owned(),
            value: value.to_vec(),
            version: version.clone(),
        })
    };
    let (path, mut store) = open_fresh(&cx, h, "new store");
    let mut model = Model::new();
    let cursor = WatchCursor::from_version(v10.clone());
    apply(
        &cx,
        &mut store,
        &mut model,
        &[entry("ten", b"10", &v10), entry("three", b"", &v3)],
        &cursor,
        "long versions",
    );
    for (key, version) in [("ten", &v10), ("three", &v3)] {
        let got = cx.ok(store.get(key), format_args!("get({key:?})"));
        ensure!(
            cx,
            got.as_ref().map(|e| e.version.as_bytes()) == Some(version.as_bytes()),
            "get({key:?}) is {got:?}, expected version bytes {:02x?}",
            version.as_bytes()
        );
    }
    ensure!(
        cx,
        store.cursor().version().as_bytes() == &ten[..],
        "cursor() version is {:?}",
        store.cursor()
    );
    let mut store = reopen(&cx, h, store, &path, &model, "reopen");
    let memo =
        WatchCursor::from_version(v3.clone().written_at(1_700_000_000_001)).remembering(true);
    apply(
        &cx,
        &mut store,
        &mut model,
        &[del("three", 0), entry("ten", b"x", &v3)],
        &memo,
        "second batch",
    );
    reopen(&cx, h, store, &path, &model, "second reopen");
    Outcome::Passed
}
