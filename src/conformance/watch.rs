//! Checks of live watches: the state-sync snapshot, prefix filtering and unions, resumed
//! delta watches, resuming across calls, ending on a dropped receiver, and back-pressure
//! without loss (docs/semantics.md, "Watches").

use std::collections::BTreeMap;

use super::support::{Ctx, Need, Scope, WatchRun, brief, config, ensure, history, quiet_all};
use super::{Hooks, Outcome, Profile};
use crate::kv::{KvUpdate, WatchCursor};
use crate::stores::{Connection, StoreConfig};

type Brief = (char, String, Option<u64>);

fn put(key: &str, rev: u64) -> Brief {
    ('P', key.to_string(), Some(rev))
}

fn del(key: &str, rev: u64) -> Brief {
    ('D', key.to_string(), Some(rev))
}

fn purged(key: &str, rev: u64) -> Brief {
    ('X', key.to_string(), Some(rev))
}

/// Takes `expected.len()` updates and compares them with `expected`.
async fn expect_updates(cx: &Ctx<'_>, run: &mut WatchRun<'_>, what: &str, expected: &[Brief]) {
    let got = run.take_brief(expected.len()).await;
    ensure!(
        cx,
        got == expected,
        "{what}: got {got:?}, expected {expected:?}"
    );
}

/// `watch_state_sync`: a state-sync watch first delivers the latest entry of
/// every key (values, CAS tombstones and empty values as `Delete`, surviving
/// delete and purge markers), in revision order, then every later change.
pub async fn watch_state_sync(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("watch_state_sync", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::StreamingWatch]) {
        return skip;
    }
    let b = cx.bucket(history(3)).await;
    let mut latest: BTreeMap<String, Brief> = BTreeMap::new();
    let mut note = |u: Brief| {
        latest.insert(u.1.clone(), u);
    };
    note(put("a", b.put("a", b"1").await));
    note(put("b", b.put("b", b"2").await));
    note(put("a", b.put("a", b"3").await));
    let rc = b.put("c", b"x").await;
    note(put("c", rc));
    if cx.has(Need::Cas) {
        b.tombstone("c", rc).await;
        note(del("c", rc + 1));
    }
    let rd = b.put("d", b"y").await;
    b.delete("d").await;
    note(del("d", rd + 1));
    if cx.has(Need::Purge) {
        let re = b.put("e", b"z").await;
        b.purge("e").await;
        note(purged("e", re + 1));
    }
    let rf = b.put("f", b"").await;
    note(del("f", rf));
    let mut snapshot: Vec<Brief> = latest.into_values().collect();
    snapshot.sort_by_key(|u| u.2);

    let mut sync = b.watch_all();
    let got = sync.take(snapshot.len()).await;
    let briefs: Vec<Brief> = got.iter().map(brief).collect();
    ensure!(
        cx,
        briefs == snapshot,
        "snapshot {briefs:?}, expected {snapshot:?}"
    );
    for u in &got {
        if let KvUpdate::Put(e) = u
            && e.key == "a"
        {
            ensure!(cx, e.value == b"3", "snapshot of a carries {:?}", e.value);
        }
    }
    let g = b.put("g", b"new").await;
    b.delete("a").await;
    b.put("b", b"").await;
    expect_updates(
        &cx,
        &mut sync,
        "live",
        &[put("g", g), del("a", g + 1), del("b", g + 2)],
    )
    .await;
    sync.quiet().await;
    Outcome::Passed
}

/// `watch_prefix_filters`: prefix watches (state-sync and resumed) deliver only
/// keys starting with the prefix, markers included.
pub async fn watch_prefix_filters(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("watch_prefix_filters", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::PrefixWatch]) {
        return skip;
    }
    let b = cx.bucket(config()).await;
    let x1 = b.put("x.1", b"1").await;
    b.put("y.1", b"1").await;
    let x2 = b.put("x.2", b"2").await;
    b.put("xx", b"1").await;
    let x3 = b.put("x.3", b"3").await;
    b.delete("x.3").await;
    let head = x3 + 1;
    let mut sync = b.watch(Scope::prefix("x."), None, 64);
    let mut resumed = b.watch(Scope::prefix("x."), Some(WatchCursor::from_u64(head)), 64);
    let mut all = b.watch(Scope::prefix(""), None, 64);
    expect_updates(
        &cx,
        &mut sync,
        "state-sync x.",
        &[put("x.1", x1), put("x.2", x2), del("x.3", head)],
    )
    .await;
    let everything = all.take(5).await;
    ensure!(cx, everything.len() == 5, "watch_prefix(\"\") snapshot");
    b.put("y.2", b"2").await;
    let x4 = b.put("x.4", b"4").await;
    b.put("xx.1", b"1").await;
    b.delete("x.1").await;
    let live = [put("x.4", x4), del("x.1", x4 + 2)];
    expect_updates(&cx, &mut sync, "live x.", &live).await;
    expect_updates(&cx, &mut resumed, "resumed x.", &live).await;
    let rest = all.take_brief(4).await;
    let keys: Vec<&str> = rest.iter().map(|u| u.1.as_str()).collect();
    ensure!(
        cx,
        keys == ["y.2", "x.4", "xx.1", "x.1"],
        "watch_prefix(\"\") live {keys:?}"
    );
    quiet_all(&cx, &mut [&mut sync, &mut resumed, &mut all]).await;
    Outcome::Passed
}

/// `watch_prefixes_union`: overlapping and duplicate prefixes deliver each
/// update once (state-sync and resumed); an empty prefix list returns `Ok(())`
/// at once and delivers nothing.
pub async fn watch_prefixes_union(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("watch_prefixes_union", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::PrefixWatch]) {
        return skip;
    }
    let b = cx.bucket(config()).await;
    let prefixes = ["a.", "a.b", "a.", "c"];
    let ab1 = b.put("a.b.1", b"1").await;
    let ac = b.put("a.c", b"1").await;
    b.put("abc", b"1").await;
    let c1 = b.put("c1", b"1").await;
    b.put("d", b"1").await;
    let ab = b.put("a.b", b"1").await;
    let mut sync = b.watch(Scope::prefixes(&prefixes), None, 64);
    let mut resumed = b.watch(
        Scope::prefixes(&prefixes),
        Some(WatchCursor::from_u64(ab)),
        64,
    );
    expect_updates(
        &cx,
        &mut sync,
        "state-sync union",
        &[
            put("a.b.1", ab1),
            put("a.c", ac),
            put("c1", c1),
            put("a.b", ab),
        ],
    )
    .await;
    let ab2 = b.put("a.b.2", b"2").await;
    b.put("d2", b"2").await;
    let c2 = b.put("c2", b"2").await;
    b.put("abc2", b"2").await;
    let live = [put("a.b.2", ab2), put("c2", c2)];
    expect_updates(&cx, &mut sync, "live union", &live).await;
    expect_updates(&cx, &mut resumed, "resumed union", &live).await;

    let mut empty = b.watch(Scope::prefixes(&[]), None, 4);
    let mut empty_from = b.watch(Scope::prefixes(&[]), Some(WatchCursor::from_u64(1)), 4);
    for (label, run) in [
        ("watch_prefixes(&[])", &mut empty),
        ("watch_prefixes_from(&[])", &mut empty_from),
    ] {
        let (got, result) = run.until_end().await;
        ensure!(
            cx,
            got.is_empty(),
            "{label} delivered {} updates",
            got.len()
        );
        ensure!(cx, result.is_ok(), "{label} ended with {result:?}");
    }
    quiet_all(&cx, &mut [&mut sync, &mut resumed]).await;
    Outcome::Passed
}

/// `watch_from_delta`: `_from(c)` watches (all, prefix and prefix-set scopes)
/// deliver exactly the writes after `c` (markers and tombstones included), in
/// order, then live writes; a cursor at the head delivers only new writes; a
/// cursor with revision 0 or none runs the state-sync watch.
pub async fn watch_from_delta(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("watch_from_delta", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::StreamingWatch]) {
        return skip;
    }
    let b = cx.bucket(history(5)).await;
    b.put("a", b"1").await; // 1
    let c = b.put("b", b"1").await; // 2
    b.put("a", b"2").await; // 3
    b.delete("b").await; // 4
    b.put("c", b"").await; // 5
    let head = b.put("a", b"3").await; // 6
    ensure!(cx, (c, head) == (2, 6), "unexpected revisions {c}, {head}");
    let from = |r: u64| Some(WatchCursor::from_u64(r));
    let mut all = b.watch(Scope::All, from(c), 64);
    let mut only_a = b.prefix_capable_watch(&cx, Scope::prefix("a"), from(c));
    let mut b_or_c = b.prefix_capable_watch(&cx, Scope::prefixes(&["b", "c"]), from(c));
    let mut zero = b.watch(Scope::All, from(0), 64);
    let mut none = b.watch(Scope::All, Some(WatchCursor::none()), 64);
    let mut at_head = b.watch(Scope::All, from(head), 64);

    let delta = [put("a", 3), del("b", 4), del("c", 5), put("a", 6)];
    expect_updates(&cx, &mut all, "watch_all_from(2)", &delta).await;
    if let Some(run) = only_a.as_mut() {
        expect_updates(
            &cx,
            run,
            "watch_prefix_from(a, 2)",
            &[put("a", 3), put("a", 6)],
        )
        .await;
    }
    if let Some(run) = b_or_c.as_mut() {
        expect_updates(
            &cx,
            run,
            "watch_prefixes_from([b, c], 2)",
            &[del("b", 4), del("c", 5)],
        )
        .await;
    }
    let snapshot = [del("b", 4), del("c", 5), put("a", 6)];
    expect_updates(&cx, &mut zero, "watch_all_from(0)", &snapshot).await;
    expect_updates(&cx, &mut none, "watch_all_from(none)", &snapshot).await;

    b.put("d", b"1").await; // 7
    b.put("a", b"4").await; // 8
    let live = [put("d", 7), put("a", 8)];
    for (label, run) in [
        ("watch_all_from(2)", &mut all),
        ("watch_all_from(0)", &mut zero),
        ("watch_all_from(none)", &mut none),
        ("watch_all_from(head)", &mut at_head),
    ] {
        expect_updates(&cx, run, label, &live).await;
    }
    if let Some(run) = only_a.as_mut() {
        expect_updates(&cx, run, "watch_prefix_from(a) live", &[put("a", 8)]).await;
    }
    let mut runs: Vec<&mut WatchRun<'_>> = vec![&mut all, &mut zero, &mut none, &mut at_head];
    if let Some(run) = only_a.as_mut() {
        runs.push(run);
    }
    if let Some(run) = b_or_c.as_mut() {
        runs.push(run);
    }
    quiet_all(&cx, &mut runs).await;
    Outcome::Passed
}

impl<'a> super::support::Bucket<'a> {
    /// A prefix-scoped watch when the backend filters by prefix, else `None`.
    fn prefix_capable_watch(
        &self,
        cx: &Ctx<'_>,
        scope: Scope,
        cursor: Option<WatchCursor>,
    ) -> Option<WatchRun<'a>> {
        cx.has(Need::PrefixWatch)
            .then(|| self.watch(scope, cursor, 64))
    }
}

/// `watch_resume_chain`: resuming from the last delivered update's cursor (also
/// after persisting it as bytes) loses nothing and repeats nothing across calls,
/// whatever the scope of the next call.
pub async fn watch_resume_chain(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("watch_resume_chain", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::StreamingWatch]) {
        return skip;
    }
    let b = cx.bucket(config()).await;
    let mut seen: Vec<u64> = Vec::new();
    for i in 1..=3 {
        b.put(&format!("k.{i}"), b"v").await;
    }
    let mut leg = b.watch(Scope::All, Some(WatchCursor::none()), 16);
    let got = leg.take(3).await;
    seen.extend(got.iter().filter_map(|u| u.version().as_u64()));
    let mut cursor = WatchCursor::from_version(got[2].version().clone());
    leg.drop_receiver();
    let result = leg.result().await;
    ensure!(
        cx,
        result.is_ok(),
        "a watch whose receiver was dropped ended with {result:?}"
    );

    b.put("k.4", b"v").await;
    b.put("k.5", b"v").await;
    let mut leg = b.watch(Scope::All, Some(cursor.clone()), 16);
    let mut got = leg.take(2).await;
    b.put("k.6", b"v").await;
    got.push(leg.next().await);
    seen.extend(got.iter().filter_map(|u| u.version().as_u64()));
    cursor = WatchCursor::from_version(got[2].version().clone());
    leg.drop_receiver();
    let result = leg.result().await;
    ensure!(cx, result.is_ok(), "second leg ended with {result:?}");

    let bytes = cursor.to_bytes();
    let restored = WatchCursor::from_bytes(&bytes);
    ensure!(
        cx,
        restored.as_ref() == Some(&cursor),
        "cursor bytes did not round-trip"
    );
    let restored = restored.expect("just checked");
    let scope = if cx.has(Need::PrefixWatch) {
        Scope::prefixes(&["k.", "x."])
    } else {
        Scope::All
    };
    let mut leg = b.watch(scope, Some(restored), 16);
    b.put("k.7", b"v").await;
    b.put("x.8", b"v").await;
    b.put("k.9", b"v").await;
    let got = leg.take(3).await;
    seen.extend(got.iter().filter_map(|u| u.version().as_u64()));
    let expected: Vec<u64> = (1..=9).collect();
    ensure!(
        cx,
        seen == expected,
        "revisions across calls {seen:?}, expected {expected:?}"
    );
    leg.quiet().await;
    Outcome::Passed
}

/// `watch_receiver_drop`: dropping the receiver ends the call with `Ok(())`,
/// whether the watch is idle (state-sync, resumed or prefix-scoped), blocked on
/// a full channel, or has delivered nothing yet.
pub async fn watch_receiver_drop(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("watch_receiver_drop", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::StreamingWatch]) {
        return skip;
    }
    let b = cx.bucket(config()).await;
    let head = b.put("a", b"1").await;
    let mut idle = b.watch(Scope::All, None, 4);
    idle.next().await;
    let mut resumed = b.watch(Scope::All, Some(WatchCursor::from_u64(head)), 4);
    let mut blocked = b.watch(Scope::All, None, 1);
    blocked.next().await;
    for i in 0..8 {
        b.put(&format!("k{i}"), b"v").await;
    }
    let mut scoped = cx
        .has(Need::PrefixWatch)
        .then(|| b.watch(Scope::prefix("nothing."), None, 4));
    let mut runs: Vec<(&str, &mut WatchRun<'_>)> = vec![
        ("idle state-sync", &mut idle),
        ("resumed", &mut resumed),
        ("blocked on a full channel", &mut blocked),
    ];
    if let Some(run) = scoped.as_mut() {
        runs.push(("prefix with nothing delivered", run));
    }
    for (label, run) in runs {
        run.drop_receiver();
        let result = run.result().await;
        ensure!(
            cx,
            result.is_ok(),
            "{label} watch ended with {result:?} after the receiver was dropped"
        );
    }
    b.put("after", b"v").await;
    Outcome::Passed
}

/// `watch_backpressure`: watches whose channel (capacity 1) is not read while
/// `many_keys` writes land still deliver every write exactly once, in order,
/// once read (no retention pressure: nothing may be lost).
pub async fn watch_backpressure(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("watch_backpressure", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::StreamingWatch]) {
        return skip;
    }
    let unlimited = StoreConfig {
        max_bytes: Some(-1),
        ..config()
    };
    let b = cx.bucket(unlimited).await;
    let seed = b.put("seed", b"s").await;
    let mut sync = b.watch(Scope::All, None, 1);
    let mut resumed = b.watch(Scope::All, Some(WatchCursor::from_u64(seed)), 1);
    let first = sync.next().await;
    ensure!(
        cx,
        brief(&first) == put("seed", seed),
        "state-sync began with {:?}",
        brief(&first)
    );
    let n = profile.many_keys;
    for i in 0..n {
        b.put(&format!("k.{i:06}"), format!("{i}").as_bytes()).await;
    }
    for (label, run) in [("state-sync", &mut sync), ("resumed", &mut resumed)] {
        for i in 0..n {
            let u = run.next().await;
            let key = format!("k.{i:06}");
            let rev = seed + 1 + i as u64;
            ensure!(
                cx,
                brief(&u) == put(&key, rev)
                    && super::support::value_of(&u) == Some(format!("{i}").as_bytes()),
                "{label} watch delivered {:?} where {key} at {rev} was due",
                brief(&u)
            );
        }
    }
    Outcome::Passed
}

/// `watch_prefix_long_gap`: prefix watches keep delivering across a long run
/// (3 × `many_keys`) of non-matching writes: a state-sync watch that fell behind
/// on a full channel, and resumed watches started after the run (from before the
/// matching writes and from the start of the gap) deliver every matching write
/// exactly once, in order.
pub async fn watch_prefix_long_gap(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("watch_prefix_long_gap", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::PrefixWatch]) {
        return skip;
    }
    let unlimited = StoreConfig {
        max_bytes: Some(-1),
        ..config()
    };
    let b = cx.bucket(unlimited).await;
    let first = b.put("a.0", b"0").await;
    let mut behind = b.watch(Scope::prefix("a."), None, 1);
    let got = behind.next().await;
    ensure!(
        cx,
        brief(&got) == put("a.0", first),
        "state-sync began with {:?}",
        brief(&got)
    );
    let n = profile.many_keys.max(1);
    let mut expected: Vec<Brief> = Vec::with_capacity(n + 1);
    for i in 1..=n {
        let key = format!("a.{i:06}");
        expected.push(put(&key, b.put(&key, b"in").await));
    }
    for i in 0..3 * n {
        b.put(&format!("b.{i:06}"), b"out").await;
    }
    let gap_start = expected.last().and_then(|u| u.2).unwrap_or(first);
    expected.push(put("a.last", b.put("a.last", b"in").await));
    let mut resumed = b.watch(Scope::prefix("a."), Some(WatchCursor::from_u64(first)), 16);
    let mut at_gap = b.watch(
        Scope::prefix("a."),
        Some(WatchCursor::from_u64(gap_start)),
        16,
    );
    let last = &expected[n..];
    for (label, run, due) in [
        ("resumed before the run", &mut resumed, &expected[..]),
        ("resumed at the start of the gap", &mut at_gap, last),
        ("fallen behind", &mut behind, &expected[..]),
    ] {
        for due in due {
            let got = run.next().await;
            ensure!(
                cx,
                &brief(&got) == due,
                "{label}: delivered {:?} where {due:?} was due",
                brief(&got)
            );
        }
    }
    Outcome::Passed
}
