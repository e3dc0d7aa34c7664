//! Read checks (SC-02…SC-05): `get`, `range`, `for_each_in_range` and
//! `has_entries` see exactly the live fold, in ascending key order, before and
//! after a reopen. They never write outside `apply`.

use super::support::{
    Ctx, Model, Row, apply, cur, del, ensure, expect_state, open_fresh, purge, put, range_rows,
    reopen, row_of, show_rows,
};
use super::{Outcome, SnapshotHarness};
use crate::kv::KvUpdate;
use crate::snapshot::{SnapshotError, SnapshotStore};

/// SC-02: `get` returns the live entry (key, value, version) for a present key,
/// `None` for an absent, a deleted, a purged key and for a strict prefix or
/// extension of a live key, and `Some(b"")` for an empty value; the same after
/// a reopen.
pub fn sc_02_get_semantics(h: &impl SnapshotHarness) -> Outcome {
    let cx = Ctx::new("sc_02_get_semantics", "SC-02");
    let (path, mut store) = open_fresh(&cx, h, "new store");
    let mut model = Model::new();
    let batch = [
        put("present", b"value", 1),
        put("empty", b"", 2),
        put("deleted", b"x", 3),
        put("purged", b"y", 4),
        del("deleted", 5),
        purge("purged", 6),
        put("overwritten", b"old", 7),
        put("overwritten", b"new", 8),
    ];
    apply(&cx, &mut store, &mut model, &batch, &cur(8), "mixed batch");
    expect_get(&cx, &store, "live");
    expect_state(&cx, &store, &model, "live");
    let store = reopen(&cx, h, store, &path, &model, "after reopen");
    expect_get(&cx, &store, "after reopen");
    Outcome::Passed
}

/// The `get` expectations of SC-02.
fn expect_get<S: SnapshotStore>(cx: &Ctx, store: &S, when: &str) {
    let get = |key: &str| cx.ok(store.get(key), format_args!("{when}: get({key:?})"));
    let present = get("present");
    ensure!(
        cx,
        present.as_ref().map(row_of)
            == Some((
                "present".to_owned(),
                b"value".to_vec(),
                1u64.to_be_bytes().to_vec()
            )),
        "{when}: get(\"present\") is {present:?}, expected the entry written at revision 1"
    );
    let empty = get("empty");
    ensure!(
        cx,
        empty.as_ref().map(|e| (e.key.as_str(), e.value.as_slice())) == Some(("empty", &b""[..])),
        "{when}: get(\"empty\") is {empty:?}, expected Some with an empty value (empty values are present entries)"
    );
    let overwritten = get("overwritten");
    ensure!(
        cx,
        overwritten.as_ref().map(row_of)
            == Some((
                "overwritten".to_owned(),
                b"new".to_vec(),
                8u64.to_be_bytes().to_vec()
            )),
        "{when}: get(\"overwritten\") is {overwritten:?}, expected the last write (revision 8)"
    );
    for key in [
        "absent", "deleted", "purged", "pres", "presentx", "present.", "Present",
    ] {
        let got = get(key);
        ensure!(
            cx,
            got.is_none(),
            "{when}: get({key:?}) is {got:?}, expected None"
        );
    }
}

/// Keys of SC-03: byte-prefix edge cases, multi-byte UTF-8, and keys whose byte
/// order differs from a naive character comparison.
const RANGE_KEYS: [&str; 16] = [
    "a",
    "a.b",
    "a.c",
    "a.c.d",
    "ab",
    "b",
    "B",
    "a\u{7f}",
    "é",
    "é.x",
    "éa",
    "ÿ",
    "日本",
    "日本.語",
    "日x",
    "\u{10FFFF}",
];

/// SC-03: `range(prefix)` holds exactly the live entries whose key starts with
/// `prefix` (byte prefix), in ascending byte order, each once: `""` is
/// everything, a prefix without a match gives nothing, a key equal to the prefix
/// is included, and multi-byte UTF-8 keys and prefixes behave as bytes. The same
/// after a reopen.
pub fn sc_03_range_semantics(h: &impl SnapshotHarness) -> Outcome {
    let cx = Ctx::new("sc_03_range_semantics", "SC-03");
    let (path, mut store) = open_fresh(&cx, h, "new store");
    let mut model = Model::new();
    let mut batch: Vec<KvUpdate> = Vec::new();
    let mut rev = 0;
    for key in RANGE_KEYS {
        rev += 1;
        batch.push(put(key, key.as_bytes(), rev));
    }
    // Deleted and purged keys never show up in a range.
    for key in ["a.gone", "é.gone"] {
        rev += 1;
        batch.push(put(key, b"x", rev));
        rev += 1;
        batch.push(del(key, rev));
    }
    rev += 1;
    batch.push(purge("ab", rev));
    apply(&cx, &mut store, &mut model, &batch, &cur(rev), "key set");
    expect_ranges(&cx, &store, &model, "live");
    let store = reopen(&cx, h, store, &path, &model, "after reopen");
    expect_ranges(&cx, &store, &model, "after reopen");
    Outcome::Passed
}

/// Prefixes SC-03 and SC-04 query (the expected rows come from the model).
const PREFIXES: [&str; 17] = [
    "",
    "a",
    "a.",
    "a.c",
    "a.c.d",
    "a.c.d.e",
    "ab",
    "b",
    "B",
    "q",
    "zz",
    "é",
    "é.",
    "日",
    "日本",
    "\u{10FFFF}",
    "a.gone",
];

/// The `range` expectations of SC-03.
fn expect_ranges<S: SnapshotStore>(cx: &Ctx, store: &S, model: &Model, when: &str) {
    for prefix in PREFIXES {
        let rows = range_rows(cx, store, prefix, when);
        let expected = model.rows(prefix);
        if rows != expected {
            cx.fail(format_args!(
                "{when}: range({prefix:?}) is {}, expected {}",
                show_rows(&rows),
                show_rows(&expected)
            ));
        }
    }
    // Spot checks that do not trust the model's own filter.
    let keys = |prefix: &str| -> Vec<String> {
        range_rows(cx, store, prefix, when)
            .into_iter()
            .map(|r| r.0)
            .collect()
    };
    ensure!(
        cx,
        keys("a.c") == ["a.c", "a.c.d"],
        "{when}: range(\"a.c\") must include the key equal to the prefix: {:?}",
        keys("a.c")
    );
    ensure!(
        cx,
        keys("q").is_empty(),
        "{when}: range(\"q\") must be empty: {:?}",
        keys("q")
    );
    ensure!(
        cx,
        keys("日") == ["日x", "日本", "日本.語"],
        "{when}: range(\"日\") in byte order: {:?}",
        keys("日")
    );
    let all = keys("");
    ensure!(
        cx,
        all.windows(2)
            .all(|pair| pair[0].as_bytes() < pair[1].as_bytes()),
        "{when}: range(\"\") is not strictly ascending by key bytes: {all:?}"
    );
    ensure!(
        cx,
        all.len() == RANGE_KEYS.len() - 1,
        "{when}: range(\"\") has {} keys, expected {}",
        all.len(),
        RANGE_KEYS.len() - 1
    );
}

/// SC-04: `for_each_in_range` streams the same entries in the same order as
/// `range` for every prefix; the first `Err` from the callback stops the scan
/// (the callback is not called again) and is returned as is.
pub fn sc_04_for_each_in_range(h: &impl SnapshotHarness) -> Outcome {
    let cx = Ctx::new("sc_04_for_each_in_range", "SC-04");
    let (path, mut store) = open_fresh(&cx, h, "new store");
    let mut model = Model::new();
    let batch: Vec<KvUpdate> = RANGE_KEYS
        .iter()
        .zip(1u64..)
        .map(|(key, rev)| put(key, key.as_bytes(), rev))
        .collect();
    apply(
        &cx,
        &mut store,
        &mut model,
        &batch,
        &cur(batch.len() as u64),
        "key set",
    );
    expect_streams(&cx, &store, "live");
    let store = reopen(&cx, h, store, &path, &model, "after reopen");
    expect_streams(&cx, &store, "after reopen");
    Outcome::Passed
}

/// The `for_each_in_range` expectations of SC-04.
fn expect_streams<S: SnapshotStore>(cx: &Ctx, store: &S, when: &str) {
    for prefix in PREFIXES {
        let mut streamed: Vec<Row> = Vec::new();
        cx.ok(
            store.for_each_in_range(prefix, |entry| {
                streamed.push(row_of(&entry));
                Ok(())
            }),
            format_args!("{when}: for_each_in_range({prefix:?})"),
        );
        let ranged = range_rows(cx, store, prefix, when);
        if streamed != ranged {
            cx.fail(format_args!(
                "{when}: for_each_in_range({prefix:?}) streamed {}, but range gives {}",
                show_rows(&streamed),
                show_rows(&ranged)
            ));
        }
    }
    // Stop at the first error, after 1 and after 3 entries.
    for stop_after in [1usize, 3] {
        let mut calls = 0usize;
        let result = store.for_each_in_range("", |_| {
            calls += 1;
            if calls == stop_after {
                Err(SnapshotError::Backend(format!("stop marker {stop_after}")))
            } else {
                Ok(())
            }
        });
        match result {
            Err(SnapshotError::Backend(message)) if message == format!("stop marker {stop_after}") => {}
            other => cx.fail(format_args!(
                "{when}: for_each_in_range(\"\") with a callback failing at entry {stop_after} returned {other:?}, expected that error"
            )),
        }
        ensure!(
            cx,
            calls == stop_after,
            "{when}: the callback ran {calls} times, but the scan must stop at the first error (entry {stop_after})"
        );
    }
    // No match: the callback never runs, and its error cannot surface.
    let result = store.for_each_in_range("q", |_| {
        Err(SnapshotError::Backend("must not run".to_owned()))
    });
    ensure!(
        cx,
        result.is_ok(),
        "{when}: for_each_in_range(\"q\") (no match) returned {result:?}"
    );
}

/// SC-05: `has_entries` is false on a new store, true after a put (an empty
/// value counts), false again once everything is deleted or purged, and keeps
/// its answer across a reopen.
pub fn sc_05_has_entries(h: &impl SnapshotHarness) -> Outcome {
    let cx = Ctx::new("sc_05_has_entries", "SC-05");
    let (path, mut store) = open_fresh(&cx, h, "new store");
    let mut model = Model::new();
    expect_has(&cx, &store, false, "new store");
    apply(
        &cx,
        &mut store,
        &mut model,
        &[put("only-empty", b"", 1)],
        &cur(1),
        "put of an empty value",
    );
    expect_has(&cx, &store, true, "after a put of an empty value");
    apply(
        &cx,
        &mut store,
        &mut model,
        &[put("k1", b"v", 2), put("k2", b"v", 3)],
        &cur(3),
        "two puts",
    );
    expect_has(&cx, &store, true, "after puts");
    let store = reopen(&cx, h, store, &path, &model, "reopen with entries");
    expect_has(&cx, &store, true, "after reopen with entries");
    let mut store = store;
    apply(
        &cx,
        &mut store,
        &mut model,
        &[del("only-empty", 4), purge("k1", 5), del("k2", 6)],
        &cur(6),
        "delete everything",
    );
    expect_has(&cx, &store, false, "after deleting everything");
    let mut store = reopen(&cx, h, store, &path, &model, "reopen when empty");
    expect_has(&cx, &store, false, "after reopen when empty");
    apply(
        &cx,
        &mut store,
        &mut model,
        &[put("back", b"1", 7)],
        &cur(7),
        "put after emptying",
    );
    expect_has(&cx, &store, true, "after a put into the emptied store");
    Outcome::Passed
}

/// Fails unless `has_entries()` answers `expected`.
#[track_caller]
fn expect_has<S: SnapshotStore>(cx: &Ctx, store: &S, expected: bool, when: &str) {
    let got = cx.ok(store.has_entries(), format_args!("{when}: has_entries()"));
    ensure!(
        cx,
        got == expected,
        "{when}: has_entries() is {got}, expected {expected}"
    );
}
