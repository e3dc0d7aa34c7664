//! Checks of time-driven removal: `max_age`, per-key TTL (`KvTtl`) with its bounds, rollup
//! and create rules, and limit markers (docs/semantics.md, "Limits, eviction and expiry"
//! and "Store configuration"). Time passes only through `Hooks::advance`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::support::{Bucket, Ctx, Need, brief, config, ensure, expect_err, history, quiet_all};
use super::{Hook, Hooks, Outcome, Profile};
use crate::kv::{KvError, KvTtl, VersionToken, WatchCursor};
use crate::stores::{Connection, StoreConfig, StoreOptions};

/// The TTL (and age limit) the checks use: the smallest allowed, to keep real
/// waits short.
const TTL: Duration = Duration::from_secs(1);

/// How far past a deadline the checks advance time.
const PAST: Duration = Duration::from_millis(100);

fn ttl_writer(b: &Bucket<'_>) -> Arc<dyn KvTtl> {
    match b.store.ttl_writer() {
        Some(t) => t,
        None => b.cx.fail(format_args!(
            "bucket {} was created with TTL but has no ttl_writer()",
            b.name
        )),
    }
}

/// `max_age_expiry`: entries older than `max_age` are removed, current values
/// included (reads, listings, retention and status follow); with limit markers
/// a watch sees a `Purge` for the aged-out key.
pub async fn max_age_expiry(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("max_age_expiry", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Hook(Hook::Advance)]) {
        return skip;
    }
    let aged = StoreConfig {
        max_age: Some(TTL),
        ..history(1)
    };
    let b = cx.bucket(aged.clone()).await;
    b.put("a", b"1").await;
    let head = b.put("b", b"2").await;
    b.expect_get("a", Some(b"1")).await;
    let marked = if cx.has(Need::Ttl) && cx.has(Need::StreamingWatch) {
        let m = cx
            .bucket_with(
                aged,
                StoreOptions::new().with_limit_markers(Duration::from_secs(5)),
            )
            .await;
        let r = m.put("m", b"1").await;
        let run = m.watch_from(WatchCursor::from_u64(r));
        Some((m, r, run))
    } else {
        None
    };
    cx.advance(TTL + PAST).await;
    b.expect_get("a", None).await;
    b.expect_get("b", None).await;
    b.expect_keys("", &[]).await;
    if cx.has(Need::Retention) {
        let r = b.retention().await;
        ensure!(
            cx,
            r.evicts_current_values && r.first_revision == head + 1,
            "after aging out: {r:?}"
        );
    }
    if cx.has(Need::Status) {
        let s = b.status().await;
        ensure!(
            cx,
            s.values == 0 && s.last_revision == head,
            "after aging out: {s:?}"
        );
    }
    if let Some((m, r, mut run)) = marked {
        let u = run.next().await;
        ensure!(
            cx,
            brief(&u) == ('X', "m".to_string(), Some(r + 1)),
            "limit marker for an aged-out value: {:?}",
            brief(&u)
        );
        m.expect_get("m", None).await;
    }
    let c = b.put("c", b"3").await;
    ensure!(cx, c == head + 1, "revisions after aging out: {c}");
    b.expect_get("c", Some(b"3")).await;
    Outcome::Passed
}

/// `ttl_bounds`: `put_with_ttl` and `create_with_ttl` refuse a TTL below 1 s
/// with `OperationFailed` before writing anything; 1 s and fractional TTLs above
/// it are accepted.
pub async fn ttl_bounds(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("ttl_bounds", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Ttl]) {
        return skip;
    }
    let b = cx
        .bucket_with(config(), StoreOptions::new().with_ttl())
        .await;
    let t = ttl_writer(&b);
    let r = b.put("seed", b"s").await;
    for short in [
        Duration::ZERO,
        Duration::from_millis(1),
        Duration::from_millis(999),
    ] {
        expect_err!(
            cx,
            t.put_with_ttl("k", b"v", short).await,
            KvError::OperationFailed(_),
            "put_with_ttl({short:?})"
        );
        expect_err!(
            cx,
            t.create_with_ttl("k", b"v", short).await,
            KvError::OperationFailed(_),
            "create_with_ttl({short:?})"
        );
    }
    ensure!(
        cx,
        b.put("probe", b"p").await == r + 1,
        "refused TTL writes took revisions"
    );
    b.expect_get("k", None).await;
    let v = cx.ok(t.put_with_ttl("k", b"v", TTL).await, "put_with_ttl(1 s)");
    ensure!(cx, v.as_u64() == Some(r + 2), "put_with_ttl version {v:?}");
    cx.ok(
        t.create_with_ttl("c", b"v", Duration::from_millis(1500))
            .await,
        "create_with_ttl(1.5 s)",
    );
    cx.ok(
        t.put_with_ttl("f", b"v", Duration::from_millis(2250)).await,
        "put_with_ttl(2.25 s)",
    );
    b.expect_get("k", Some(b"v")).await;
    b.expect_get("c", Some(b"v")).await;
    Outcome::Passed
}

/// `ttl_expiry`: a `put_with_ttl` value is readable and gone after its TTL; with
/// limit markers a watch sees one `Purge` per key the expiry emptied, without them
/// expiry is silent; with history > 1 an older value never resurfaces;
/// `create_with_ttl` over a delete marker keeps its TTL (and, with the marker
/// still retained, expires without a new marker); a TTL entry that is no longer
/// its key's latest expires without a marker; a longer TTL is untouched.
pub async fn ttl_expiry(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("ttl_expiry", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Ttl, Need::Hook(Hook::Advance)]) {
        return skip;
    }
    let marked = cx
        .bucket_with(history(3), StoreOptions::new().with_limit_markers(TTL))
        .await;
    let silent = cx
        .bucket_with(history(3), StoreOptions::new().with_ttl())
        .await;
    let (tm, ts) = (ttl_writer(&marked), ttl_writer(&silent));
    marked.put("old", b"v1").await;
    marked.put("old", b"v2").await;
    cx.ok(
        tm.put_with_ttl("old", b"v3", TTL).await,
        "put_with_ttl over history",
    );
    cx.ok(tm.put_with_ttl("plain", b"x", TTL).await, "put_with_ttl");
    marked.put("cr", b"a").await;
    marked.delete("cr").await;
    cx.ok(
        tm.create_with_ttl("cr", b"b", TTL).await,
        "create_with_ttl over a delete marker",
    );
    // An expiring entry that is no longer the latest leaves no marker.
    cx.ok(
        tm.create_with_ttl("shadowed", b"t", TTL).await,
        "create_with_ttl",
    );
    marked.put("shadowed", b"kept").await;
    let long = cx.ok(
        tm.put_with_ttl("long", b"y", Duration::from_secs(3600))
            .await,
        "put_with_ttl(1 h)",
    );
    let head_m = cx.rev(&long, "put_with_ttl");
    silent.put("s", b"s1").await;
    let head_s = cx.rev(
        &cx.ok(ts.put_with_ttl("s", b"s2", TTL).await, "put_with_ttl"),
        "put_with_ttl",
    );
    for (key, value) in [
        ("old", b"v3".as_slice()),
        ("plain", b"x"),
        ("cr", b"b"),
        ("long", b"y"),
    ] {
        marked.expect_get(key, Some(value)).await;
    }
    silent.expect_get("s", Some(b"s2")).await;
    let watches = cx.has(Need::StreamingWatch).then(|| {
        (
            marked.watch_from(WatchCursor::from_u64(head_m)),
            silent.watch_from(WatchCursor::from_u64(head_s)),
        )
    });

    cx.advance(TTL + PAST).await;
    for key in ["old", "plain", "cr"] {
        marked.expect_get(key, None).await;
        marked.expect_entry(key, None).await;
    }
    marked.expect_get("long", Some(b"y")).await;
    marked.expect_get("shadowed", Some(b"kept")).await;
    marked.expect_keys("", &["long", "shadowed"]).await;
    silent.expect_get("s", None).await;
    silent.expect_entry("s", None).await;
    if let Some((mut wm, mut ws)) = watches {
        // An expiry marker is written only when the expiry empties the key: "cr"
        // still holds its first value and delete marker (history 3), so it falls
        // back to the delete marker silently.
        let got = wm.take(2).await;
        let mut keys = BTreeSet::new();
        for (i, u) in got.iter().enumerate() {
            let (kind, key, rev) = brief(u);
            ensure!(
                cx,
                kind == 'X' && rev.is_some_and(|r| r > head_m && r <= head_m + 2),
                "expiry update {i} is {:?}, expected a Purge after {head_m}",
                brief(u)
            );
            keys.insert(key);
        }
        let expected: BTreeSet<String> = ["old", "plain"].iter().map(|k| k.to_string()).collect();
        ensure!(
            cx,
            keys == expected,
            "expiry markers for {keys:?}, expected {expected:?}"
        );
        quiet_all(&cx, &mut [&mut wm, &mut ws]).await;
    }
    Outcome::Passed
}

/// `limit_marker_expiry`: an expiry marker takes a revision, counts as a
/// retained message, and disappears itself after `limit_marker_ttl`.
pub async fn limit_marker_expiry(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("limit_marker_expiry", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Ttl, Need::Status, Need::Hook(Hook::Advance)]) {
        return skip;
    }
    let b = cx
        .bucket_with(history(2), StoreOptions::new().with_limit_markers(TTL))
        .await;
    let t = ttl_writer(&b);
    cx.ok(t.put_with_ttl("a", b"v", TTL).await, "put_with_ttl");
    b.put("b", b"keep").await;
    cx.advance(TTL + PAST).await;
    b.expect_entry("a", None).await;
    // The marker (revision 3) replaced the expired value and is retained.
    let s = b
        .status_until("waiting for the expiry marker", |s| s.last_revision == 3)
        .await;
    ensure!(
        cx,
        s.values == 2,
        "after expiry, the marker should be retained: {s:?}"
    );
    cx.advance(TTL + PAST).await;
    b.expect_get("b", Some(b"keep")).await;
    let s = b
        .status_until("waiting for the marker to expire", |s| s.values == 1)
        .await;
    ensure!(
        cx,
        (s.last_revision, s.first_revision) == (3, 2),
        "after the marker TTL: {s:?}"
    );
    ensure!(
        cx,
        b.put("c", b"v").await == 4,
        "revisions after the marker expired"
    );
    if cx.has(Need::Cas) {
        cx.ok(
            b.w.update("a", b"again", &VersionToken::from_u64(0)).await,
            "update with 0 once the expired key has no entry left",
        );
    }
    Outcome::Passed
}

/// `put_with_ttl_rollup`: `put_with_ttl` replaces the key's whole history with
/// the one value (`status().values` drops to 1 for the key) at once.
pub async fn put_with_ttl_rollup(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("put_with_ttl_rollup", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Ttl, Need::Status]) {
        return skip;
    }
    let b = cx
        .bucket_with(history(5), StoreOptions::new().with_ttl())
        .await;
    let t = ttl_writer(&b);
    for v in [b"1", b"2", b"3"] {
        b.put("k", v).await;
    }
    b.put("other", b"o").await;
    let s = b.status().await;
    ensure!(cx, s.values == 4, "before the rollup: {s:?}");
    let v = cx.ok(
        t.put_with_ttl("k", b"ttl", Duration::from_secs(3600)).await,
        "put_with_ttl",
    );
    ensure!(cx, v.as_u64() == Some(5), "put_with_ttl version {v:?}");
    let s = b.status().await;
    ensure!(
        cx,
        (s.values, s.first_revision) == (2, 4),
        "put_with_ttl did not roll up: {s:?}"
    );
    b.expect_get("k", Some(b"ttl")).await;
    Outcome::Passed
}

/// `create_with_ttl_rules`: `create_with_ttl` follows the `create` rules: it
/// writes on an absent key and over delete and purge markers, and fails with
/// `AlreadyExists` over a live value, a TTL value or a CAS tombstone.
pub async fn create_with_ttl_rules(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("create_with_ttl_rules", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Ttl, Need::Cas]) {
        return skip;
    }
    let b = cx
        .bucket_with(history(3), StoreOptions::new().with_ttl())
        .await;
    let t = ttl_writer(&b);
    let hour = Duration::from_secs(3600);
    cx.ok(
        t.create_with_ttl("new", b"1", hour).await,
        "create_with_ttl on an absent key",
    );
    expect_err!(
        cx,
        t.create_with_ttl("new", b"2", hour).await,
        KvError::AlreadyExists,
        "over a TTL value"
    );
    expect_err!(
        cx,
        b.w.create("new", b"2").await,
        KvError::AlreadyExists,
        "create over a TTL value"
    );
    b.put("live", b"v").await;
    expect_err!(
        cx,
        t.create_with_ttl("live", b"2", hour).await,
        KvError::AlreadyExists,
        "over a live value"
    );
    let r = b.put("tomb", b"v").await;
    b.tombstone("tomb", r).await;
    expect_err!(
        cx,
        t.create_with_ttl("tomb", b"2", hour).await,
        KvError::AlreadyExists,
        "over a CAS tombstone"
    );
    b.put("del", b"v").await;
    b.delete("del").await;
    cx.ok(
        t.create_with_ttl("del", b"2", hour).await,
        "over a delete marker",
    );
    b.expect_get("del", Some(b"2")).await;
    if cx.has(Need::Purge) {
        b.put("pur", b"v").await;
        b.purge("pur").await;
        cx.ok(
            t.create_with_ttl("pur", b"2", hour).await,
            "over a purge marker",
        );
        b.expect_get("pur", Some(b"2")).await;
    }
    b.expect_get("new", Some(b"1")).await;
    Outcome::Passed
}
