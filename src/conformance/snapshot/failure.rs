//! Failed-apply checks (SC-13, SC-18): an `apply` that fails, from an injected
//! I/O fault or from a size limit, leaves `cursor()` and the visible fold as they
//! were; a retry succeeds; a reopen never shows a cursor ahead of its data.

use super::support::{
    Ctx, Model, Row, apply, cur, del, ensure, expect_state, open, open_fresh, purge, put,
    range_rows, reopen, same_cursor, show_rows, state_of,
};
use super::{Outcome, SnapshotHarness};
use crate::kv::{KvUpdate, WatchCursor};
use crate::protocol::log::{MAX_KEY_LEN, MAX_VALUE_LEN};
use crate::snapshot::{SnapshotError, SnapshotStore};

/// An upper bound on the fault points SC-13 walks through.
const FAULT_POINTS_MAX: usize = 64;

/// SC-13: for every fault point the harness can arm (each write or fsync of one
/// `apply`, [`SnapshotHarness::inject_io_fault`]), twice: the faulted `apply`
/// fails, and `cursor()` and the visible state are unchanged. Then either a
/// retry of the same batch succeeds (on the same store, or, when the store
/// reports that it is unusable with `Io`, after a reopen) and a reopen shows
/// the retried state; or (second round) the store is reopened at once, as
/// after a crash, and shows either the old cursor, with at most a prefix of the
/// batch folded as data ahead of it, or the new cursor with all of the batch
/// (never a cursor ahead of its data), and the retry there succeeds and
/// survives a reopen.
///
/// Skipped when the harness cannot inject faults.
pub fn sc_13_failed_apply_changes_nothing(h: &impl SnapshotHarness) -> Outcome {
    let cx = Ctx::new("sc_13_failed_apply_changes_nothing", "SC-13");
    let scenario = FaultScenario::new();
    let mut failed = 0usize;
    'points: for at_call in 0..FAULT_POINTS_MAX {
        for reopen_first in [false, true] {
            match fault_round(&cx, h, &scenario, at_call, reopen_first) {
                Round::Faulted => failed += 1,
                Round::NotArmed if failed == 0 => {
                    return Outcome::Skipped(
                        "the harness cannot inject I/O faults (inject_io_fault returned false)",
                    );
                }
                Round::NotArmed | Round::PastLastPoint => break 'points,
            }
        }
    }
    ensure!(cx, failed > 0, "no armed fault ever made apply fail");
    Outcome::Passed
}

/// The fixed data of SC-13: a base batch every round starts from, and the batch
/// that is faulted, with the models of the fold before and after it.
struct FaultScenario {
    base: Vec<KvUpdate>,
    batch: Vec<KvUpdate>,
    before: Model,
    after: Model,
}

impl FaultScenario {
    fn new() -> Self {
        let base = vec![
            put("keep", b"1", 1),
            put("gone", b"2", 2),
            put("purged", b"3", 3),
            put("empty", b"", 4),
        ];
        let batch = vec![
            put("keep", b"overwritten by the faulted batch", 5),
            put("new", &[7u8; 3000], 6),
            del("gone", 7),
            purge("purged", 8),
            put("empty", b"now with bytes", 9),
            put("fresh-empty", b"", 10),
        ];
        let mut before = Model::new();
        before.apply(&base, &cur(4));
        let mut after = before.clone();
        after.apply(&batch, &cur(10));
        Self {
            base,
            batch,
            before,
            after,
        }
    }
}

/// How one round of SC-13 went.
enum Round {
    /// The armed fault made `apply` fail, and every expectation held.
    Faulted,
    /// The harness armed nothing.
    NotArmed,
    /// The armed point lay beyond the apply's calls: it succeeded normally.
    PastLastPoint,
}

/// One round of SC-13 on a new store: base batch, fault at `at_call`, checks,
/// then a retry on the same store or (`reopen_first`) after a reopen.
fn fault_round<H: SnapshotHarness>(
    cx: &Ctx,
    h: &H,
    s: &FaultScenario,
    at_call: usize,
    reopen_first: bool,
) -> Round {
    let what = format!(
        "fault point {at_call}{}",
        if reopen_first {
            ", reopened at once"
        } else {
            ""
        }
    );
    let (path, mut store) = open_fresh(cx, h, &what);
    let mut before = Model::new();
    apply(
        cx,
        &mut store,
        &mut before,
        &s.base,
        &cur(4),
        &format!("{what}: base batch"),
    );
    if !h.inject_io_fault(at_call) {
        return Round::NotArmed;
    }
    let error = match store.apply(&s.batch, &cur(10)) {
        Ok(()) => {
            ensure!(
                cx,
                at_call > 0,
                "an I/O fault armed at point 0 did not make apply fail"
            );
            expect_state(
                cx,
                &store,
                &s.after,
                &format!("{what}: apply past the last fault point"),
            );
            reopen(
                cx,
                h,
                store,
                &path,
                &s.after,
                &format!("{what}: reopen after the unfaulted apply"),
            );
            return Round::PastLastPoint;
        }
        Err(error) => error,
    };
    expect_state(
        cx,
        &store,
        &s.before,
        &format!("{what}: after the failed apply ({error:?})"),
    );
    if !reopen_first {
        match store.apply(&s.batch, &cur(10)) {
            Ok(()) => {
                expect_state(cx, &store, &s.after, &format!("{what}: after the retry"));
                reopen(cx, h, store, &path, &s.after, &format!("{what}: reopen after the retry"));
                return Round::Faulted;
            }
            // The store declared itself unusable (a poisoned writer): it must
            // still show the old state, and reopening is the cure.
            Err(SnapshotError::Io(retry_error)) => {
                expect_state(cx, &store, &s.before, &format!("{what}: after a refused retry ({retry_error})"));
            }
            Err(other) => cx.fail(format_args!(
                "{what}: the retry after an injected fault failed with {other:?} (only Io, meaning \"reopen me\", is acceptable)"
            )),
        }
    }
    drop(store);
    let (resumed, mut store) = open(cx, h, &path, &format!("{what}: reopen after the failure"));
    expect_durable_prefix(cx, &store, &resumed, &s.before, &s.batch, &s.after, &what);
    cx.ok(
        store.apply(&s.batch, &cur(10)),
        format_args!("{what}: retry on the reopened store"),
    );
    expect_state(
        cx,
        &store,
        &s.after,
        &format!("{what}: after the retry on the reopened store"),
    );
    reopen(
        cx,
        h,
        store,
        &path,
        &s.after,
        &format!("{what}: reopen after the retry"),
    );
    Round::Faulted
}

/// Fails unless a store reopened after a failed apply holds what a crash at
/// that point may leave: the old cursor with the old state plus at most a
/// prefix of `batch` (data ahead of the cursor), or the new cursor with all of
/// `batch`.
#[track_caller]
fn expect_durable_prefix<S: SnapshotStore>(
    cx: &Ctx,
    store: &S,
    resumed: &WatchCursor,
    before: &Model,
    batch: &[KvUpdate],
    after: &Model,
    what: &str,
) {
    let (cursor, rows) = state_of(cx, store, what);
    ensure!(
        cx,
        same_cursor(&cursor, resumed),
        "{what}: open returned cursor {resumed:?} but cursor() is {cursor:?}"
    );
    if same_cursor(&cursor, after.cursor()) {
        ensure!(
            cx,
            rows == after.rows(""),
            "{what}: the reopened store has the new cursor but not all of its batch: {}",
            show_rows(&rows)
        );
        return;
    }
    ensure!(
        cx,
        same_cursor(&cursor, before.cursor()),
        "{what}: the reopened store has cursor {cursor:?}, neither the old {:?} nor the new {:?}",
        before.cursor(),
        after.cursor()
    );
    let mut prefix = before.clone();
    let mut allowed: Vec<Vec<Row>> = vec![prefix.rows("")];
    for update in batch {
        prefix.fold(update);
        allowed.push(prefix.rows(""));
    }
    ensure!(
        cx,
        allowed.contains(&rows),
        "{what}: the reopened store at the old cursor holds {}, which is not the old state plus a prefix of the failed batch",
        show_rows(&rows)
    );
}

/// The byte at `index` of SC-18's large value: a pattern that no shifted or
/// truncated copy reproduces.
fn big_byte(index: usize) -> u8 {
    let mixed = (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 56) as u8 ^ (index >> 20) as u8
}

/// Whether `value` is exactly the first `len` bytes of the pattern.
fn is_big_value(value: &[u8], len: usize) -> bool {
    value.len() == len && value.iter().enumerate().all(|(i, &b)| b == big_byte(i))
}

/// SC-18: a 64 MiB value and a 65 535-byte key (three-byte UTF-8 characters
/// filling it exactly) round-trip through `apply` and a reopen, a Delete with a
/// key at the limit folds, and one byte over either limit makes `apply` fail
/// with `InvalidFormat`, the store unchanged (live and after a reopen) and still
/// usable.
pub fn sc_18_size_limits(h: &impl SnapshotHarness) -> Outcome {
    let cx = Ctx::new("sc_18_size_limits", "SC-18");
    let long_a = "日".repeat(MAX_KEY_LEN / 3);
    let long_b = "本".repeat(MAX_KEY_LEN / 3);
    ensure!(
        cx,
        long_a.len() == MAX_KEY_LEN,
        "the limit key must be exactly {MAX_KEY_LEN} bytes"
    );
    let over_key = "k".repeat(MAX_KEY_LEN + 1);
    let mut value: Vec<u8> = (0..=MAX_VALUE_LEN).map(big_byte).collect();

    // Over the limits: InvalidFormat, nothing changes.
    let (path, mut store) = open_fresh(&cx, h, "new store");
    let mut model = Model::new();
    apply(
        &cx,
        &mut store,
        &mut model,
        &[put("small", b"s", 1)],
        &cur(1),
        "small batch",
    );
    let over_value = [KvUpdate::Put(crate::kv::KvEntry {
        key: "big".to_owned(),
        value: std::mem::take(&mut value),
        version: crate::kv::VersionToken::from_u64(2),
    })];
    let cases: [(&str, &[KvUpdate]); 4] = [
        ("a value one byte over 64 MiB", &over_value),
        ("a Put key one byte over 65 535", &[put(&over_key, b"v", 2)]),
        ("a Delete key one byte over 65 535", &[del(&over_key, 2)]),
        (
            "a valid Put followed by an over-limit key",
            &[put("small", b"changed", 2), put(&over_key, b"v", 3)],
        ),
    ];
    for (label, batch) in cases {
        cx.expect_err(
            store.apply(batch, &cur(3)),
            "InvalidFormat",
            |e| matches!(e, SnapshotError::InvalidFormat(_)),
            format_args!("apply of {label}"),
        );
        expect_state(
            &cx,
            &store,
            &model,
            &format!("after the refused apply of {label}"),
        );
    }
    let [KvUpdate::Put(entry)] = over_value else {
        unreachable!("a one-Put batch")
    };
    value = entry.value;
    drop(store);
    let (resumed, store) = open(&cx, h, &path, "reopen after the refused applies");
    // The last case put a valid update before the bad one; it may be durable
    // ahead of the cursor, but the cursor must not have moved.
    let mut ahead = model.clone();
    ahead.fold(&put("small", b"changed", 2));
    let rows = range_rows(&cx, &store, "", "reopen after the refused applies");
    ensure!(
        cx,
        same_cursor(&resumed, &cur(1)) && same_cursor(&store.cursor(), &cur(1)),
        "after refused applies and a reopen the cursor is {resumed:?} / {:?}, expected revision 1",
        store.cursor()
    );
    ensure!(
        cx,
        rows == model.rows("") || rows == ahead.rows(""),
        "after refused applies and a reopen the store holds {}",
        show_rows(&rows)
    );
    let mut store = store;
    if rows != model.rows("") {
        model = ahead;
    }
    apply(
        &cx,
        &mut store,
        &mut model,
        &[put("after", b"usable", 4)],
        &cur(4),
        "apply after the refusals",
    );
    let store = reopen(
        &cx,
        h,
        store,
        &path,
        &model,
        "reopen after the usable apply",
    );
    drop(store);

    // At the limits: everything round-trips.
    value.truncate(MAX_VALUE_LEN);
    let (path, mut store) = open_fresh(&cx, h, "store for values at the limit");
    let at_limit = vec![
        put(&long_a, b"a", 1),
        put(&long_b, b"b", 2),
        KvUpdate::Put(crate::kv::KvEntry {
            key: "big".to_owned(),
            value,
            version: crate::kv::VersionToken::from_u64(3),
        }),
    ];
    cx.ok(
        store.apply(&at_limit, &cur(3)),
        "apply of a 64 MiB value and two 65 535-byte keys",
    );
    drop(at_limit);
    expect_big(&cx, &store, &cur(3), (&long_a, &long_b), true, "live");
    cx.ok(
        store.apply(&[del(&long_b, 4)], &cur(4)),
        "apply of a Delete with a 65 535-byte key",
    );
    expect_big(
        &cx,
        &store,
        &cur(4),
        (&long_a, &long_b),
        false,
        "after the Delete",
    );
    drop(store);
    let (resumed, store) = open(&cx, h, &path, "reopen with values at the limit");
    ensure!(
        cx,
        same_cursor(&resumed, &cur(4)),
        "reopen returned cursor {resumed:?}, expected revision 4"
    );
    expect_big(
        &cx,
        &store,
        &cur(4),
        (&long_a, &long_b),
        false,
        "after reopen",
    );
    Outcome::Passed
}

/// The expectations of SC-18 on a store holding the large value under `big`,
/// `long_a` → `a` and, when `b_live`, `long_b` → `b`. Compares without keeping
/// a second copy of the value.
#[track_caller]
fn expect_big<S: SnapshotStore>(
    cx: &Ctx,
    store: &S,
    cursor: &WatchCursor,
    (long_a, long_b): (&str, &str),
    b_live: bool,
    when: &str,
) {
    ensure!(
        cx,
        same_cursor(&store.cursor(), cursor),
        "{when}: cursor() is {:?}, expected {cursor:?}",
        store.cursor()
    );
    let big = cx.ok(store.get("big"), format_args!("{when}: get(\"big\")"));
    match big {
        Some(entry) => ensure!(
            cx,
            is_big_value(&entry.value, MAX_VALUE_LEN) && entry.version.as_u64() == Some(3),
            "{when}: the 64 MiB value came back altered ({} bytes, version {:?})",
            entry.value.len(),
            entry.version
        ),
        None => cx.fail(format_args!("{when}: the 64 MiB value is missing")),
    }
    let a = cx.ok(
        store.get(long_a),
        format_args!("{when}: get(65 535-byte key)"),
    );
    ensure!(
        cx,
        a.as_ref().map(|e| (e.key.as_str(), e.value.as_slice())) == Some((long_a, &b"a"[..])),
        "{when}: the 65 535-byte key came back as {:?}",
        a.map(|e| (e.key.len(), e.value))
    );
    let b = cx.ok(
        store.get(long_b),
        format_args!("{when}: get(second 65 535-byte key)"),
    );
    ensure!(
        cx,
        b.as_ref().map(|e| e.value.as_slice()) == b_live.then_some(&b"b"[..]),
        "{when}: the second 65 535-byte key is {:?}, expected it {}",
        b.map(|e| (e.key.len(), e.value)),
        if b_live { "present" } else { "deleted" }
    );
    let mut keys = Vec::new();
    cx.ok(
        store.for_each_in_range("日", |entry| {
            keys.push(entry.key.len());
            Ok(())
        }),
        format_args!("{when}: for_each_in_range(\"日\")"),
    );
    ensure!(
        cx,
        keys == [MAX_KEY_LEN],
        "{when}: range(\"日\") gave keys of lengths {keys:?}"
    );
}
