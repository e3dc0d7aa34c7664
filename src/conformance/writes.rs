//! Checks of the write operations and their conditions: create, update, CAS tokens and
//! races, deletes, CAS tombstones, purges and fenced writes (docs/semantics.md, "Writes",
//! "Tombstones and markers" and "Fenced writes").

use super::support::{Ctx, Need, config, ensure, expect_err, history};
use super::{Hooks, Outcome, Profile};
use crate::kv::{KvError, LeaseFence, VersionToken};
use crate::stores::Connection;

/// Asserts that exactly one of `results` is `Ok` and every other is `loser`.
fn one_winner<T: std::fmt::Debug>(
    cx: &Ctx<'_>,
    what: &str,
    results: &[Result<T, KvError>],
    loser: &KvError,
) -> usize {
    let winners: Vec<usize> = (0..results.len()).filter(|&i| results[i].is_ok()).collect();
    ensure!(
        cx,
        winners.len() == 1,
        "{what}: {} racers succeeded: {results:?}",
        winners.len()
    );
    for r in results {
        if let Err(e) = r {
            ensure!(
                cx,
                e == loser,
                "{what}: a loser got {e:?}, expected {loser:?}"
            );
        }
    }
    winners[0]
}

/// `create_rules`: `create` succeeds on an absent key and over delete and purge markers,
/// and fails with `AlreadyExists` over a live value, an empty value and a CAS tombstone
/// (docs/semantics.md, "Writes").
pub async fn create_rules(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("create_rules", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Cas]) {
        return skip;
    }
    let b = cx.bucket(history(3)).await;
    cx.ok(b.w.create("k", b"1").await, "create on an absent key");
    expect_err!(
        cx,
        b.w.create("k", b"2").await,
        KvError::AlreadyExists,
        "create over a live value"
    );
    b.expect_get("k", Some(b"1")).await;
    b.delete("k").await;
    let mut latest = cx.ok(b.w.create("k", b"3").await, "create over a delete marker");
    b.expect_get("k", Some(b"3")).await;
    if cx.has(Need::Purge) {
        b.purge("k").await;
        latest = cx.ok(b.w.create("k", b"4").await, "create over a purge marker");
        b.expect_get("k", Some(b"4")).await;
    }
    b.tombstone("k", cx.rev(&latest, "create")).await;
    expect_err!(
        cx,
        b.w.create("k", b"5").await,
        KvError::AlreadyExists,
        "create over a CAS tombstone"
    );
    b.expect_entry("k", Some(b"")).await;
    cx.ok(b.w.create("e", b"").await, "create with an empty value");
    expect_err!(
        cx,
        b.w.create("e", b"x").await,
        KvError::AlreadyExists,
        "create over an empty value"
    );
    b.expect_entry("e", Some(b"")).await;
    Outcome::Passed
}

/// `create_over_marker_race`: concurrent `create`s of one key, absent or behind
/// a delete marker, let exactly one writer win; the others get `AlreadyExists`.
pub async fn create_over_marker_race(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("create_over_marker_race", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Cas]) {
        return skip;
    }
    let b = cx.bucket(history(3)).await;
    b.put("marked", b"old").await;
    b.delete("marked").await;
    for key in ["absent", "marked"] {
        let w = &b.w;
        let (r0, r1, r2, r3) = tokio::join!(
            w.create(key, b"0"),
            w.create(key, b"1"),
            w.create(key, b"2"),
            w.create(key, b"3")
        );
        let results = [r0, r1, r2, r3];
        let winner = one_winner(
            &cx,
            &format!("create race on {key}"),
            &results,
            &KvError::AlreadyExists,
        );
        let value = winner.to_string();
        b.expect_get(key, Some(value.as_bytes())).await;
    }
    Outcome::Passed
}

/// `update_cas`: `update` with the latest revision succeeds; a stale revision,
/// 0 on a key with entries and another key's revision fail with
/// `RevisionMismatch`; 0 on an absent key succeeds; a tombstone can be updated
/// with its own revision; read versions (with write times) work as tokens.
pub async fn update_cas(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("update_cas", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Cas]) {
        return skip;
    }
    let b = cx.bucket(history(3)).await;
    let v1 = cx.ok(b.w.put("k", b"1").await, "put k");
    let v2 = cx.ok(
        b.w.update("k", b"2", &v1).await,
        "update with the latest revision",
    );
    ensure!(
        cx,
        cx.rev(&v2, "update") > cx.rev(&v1, "put"),
        "update did not advance"
    );
    expect_err!(
        cx,
        b.w.update("k", b"x", &v1).await,
        KvError::RevisionMismatch,
        "stale revision"
    );
    expect_err!(
        cx,
        b.w.update("k", b"x", &VersionToken::from_u64(0)).await,
        KvError::RevisionMismatch,
        "expected 0 on a key with entries"
    );
    let far = VersionToken::from_u64(cx.rev(&v2, "update") + 100);
    expect_err!(
        cx,
        b.w.update("k", b"x", &far).await,
        KvError::RevisionMismatch,
        "future revision"
    );
    expect_err!(
        cx,
        b.w.update("absent", b"x", &v2).await,
        KvError::RevisionMismatch,
        "another key's revision on an absent key"
    );
    cx.ok(
        b.w.update("absent", b"a", &VersionToken::from_u64(0)).await,
        "expected 0 on an absent key",
    );
    b.expect_get("absent", Some(b"a")).await;
    b.expect_get("k", Some(b"2")).await;

    let dwv = cx.ok(
        b.w.delete_with_version("k", &v2).await,
        "delete_with_version",
    );
    ensure!(cx, dwv, "delete_with_version returned false");
    let tomb = b.expect_entry("k", Some(b"")).await.expect("just matched");
    let v4 = cx.ok(
        b.w.update("k", b"3", &tomb.version).await,
        "update over a tombstone",
    );
    b.expect_get("k", Some(b"3")).await;
    let read = b.expect_entry("k", Some(b"3")).await.expect("just matched");
    ensure!(
        cx,
        read.version == v4,
        "entry version {:?} != update's {v4:?}",
        read.version
    );
    cx.ok(
        b.w.update("k", b"4", &read.version).await,
        "update with a read version",
    );
    for bad in [
        VersionToken::unknown(),
        VersionToken::from_raw(&[1, 2, 3, 4]).expect("4 bytes"),
    ] {
        expect_err!(
            cx,
            b.w.update("k", b"x", &bad).await,
            KvError::OperationFailed(_),
            "update with non-u64 token {bad:?}"
        );
    }
    b.expect_get("k", Some(b"4")).await;
    Outcome::Passed
}

/// `update_over_marker`: delete and purge markers can be CAS-updated (and CAS-tombstoned)
/// with the marker's revision; expected 0 fails while a marker is retained, because a
/// marker is an entry (docs/semantics.md, "Tombstones and markers").
pub async fn update_over_marker(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("update_over_marker", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Cas]) {
        return skip;
    }
    let b = cx.bucket(history(5)).await;
    let v1 = cx.ok(b.w.put("k", b"1").await, "put k");
    b.delete("k").await;
    let marker = b.put("probe", b"p").await - 1;
    expect_err!(
        cx,
        b.w.update("k", b"x", &VersionToken::from_u64(0)).await,
        KvError::RevisionMismatch,
        "expected 0 over a delete marker"
    );
    expect_err!(
        cx,
        b.w.update("k", b"x", &v1).await,
        KvError::RevisionMismatch,
        "the value under the marker"
    );
    cx.ok(
        b.w.update("k", b"after-delete", &VersionToken::from_u64(marker))
            .await,
        "update over a delete marker with its revision",
    );
    b.expect_get("k", Some(b"after-delete")).await;
    if cx.has(Need::Purge) {
        b.purge("k").await;
        let purge = b.put("probe", b"p").await - 1;
        cx.ok(
            b.w.update("k", b"after-purge", &VersionToken::from_u64(purge))
                .await,
            "update over a purge marker with its revision",
        );
        b.expect_get("k", Some(b"after-purge")).await;
    }
    b.delete("k").await;
    let marker = b.put("probe", b"p").await - 1;
    b.tombstone("k", marker).await;
    b.expect_entry("k", Some(b"")).await;
    Outcome::Passed
}

/// `update_race`: concurrent `update`s (and a `delete_with_version`) with the
/// same expected revision let exactly one win; the rest get `RevisionMismatch`.
pub async fn update_race(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("update_race", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Cas]) {
        return skip;
    }
    let b = cx.bucket(history(3)).await;
    let w = &b.w;
    let v = cx.ok(w.put("k", b"start").await, "put k");
    let (r0, r1, r2, r3) = tokio::join!(
        w.update("k", b"0", &v),
        w.update("k", b"1", &v),
        w.update("k", b"2", &v),
        w.update("k", b"3", &v)
    );
    let results = [r0, r1, r2, r3];
    let winner = one_winner(&cx, "update race", &results, &KvError::RevisionMismatch);
    let value = winner.to_string();
    b.expect_get("k", Some(value.as_bytes())).await;

    let v = results[winner].clone().expect("the winner");
    let (u, d) = tokio::join!(w.update("k", b"u", &v), w.delete_with_version("k", &v));
    let outcomes = [u.map(|_| ()), d.map(|_| ())];
    let winner = one_winner(
        &cx,
        "update vs delete_with_version",
        &outcomes,
        &KvError::RevisionMismatch,
    );
    let expected: &[u8] = if winner == 0 { b"u" } else { b"" };
    b.expect_entry("k", Some(expected)).await;
    Outcome::Passed
}

/// `cas_token_validation`: CAS tokens that are not 8-byte revisions fail with
/// `OperationFailed` before anything is written (docs/semantics.md, "Version tokens and
/// cursors" and "Writes").
pub async fn cas_token_validation(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("cas_token_validation", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Cas]) {
        return skip;
    }
    let b = cx.bucket(config()).await;
    let r = b.put("k", b"v").await;
    let bad = [
        VersionToken::unknown(),
        VersionToken::from_raw(&[0, 0, 0, 1]).expect("4 bytes"),
        VersionToken::from_raw(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]).expect("10 bytes"),
        VersionToken::from_raw(&[0, 0, 0, 0, 0, 0, 0, 0, 1]).expect("9 bytes"),
    ];
    for token in &bad {
        expect_err!(
            cx,
            b.w.update("k", b"x", token).await,
            KvError::OperationFailed(_),
            "update with {token:?}"
        );
        expect_err!(
            cx,
            b.w.delete_with_version("k", token).await,
            KvError::OperationFailed(_),
            "delete_with_version with {token:?}"
        );
        expect_err!(
            cx,
            b.w.update("absent", b"x", token).await,
            KvError::OperationFailed(_),
            "update of an absent key with {token:?}"
        );
    }
    ensure!(
        cx,
        b.put("next", b"n").await == r + 1,
        "refused CAS writes took revisions"
    );
    b.expect_get("k", Some(b"v")).await;
    Outcome::Passed
}

/// `delete_semantics`: `delete` answers `Ok(true)` for present and absent keys, each marker
/// takes a revision, `get`/`entry`/listings hide the key, and a state-sync watch shows the
/// markers as `Delete` (docs/semantics.md, "Reads and visibility" and "Writes").
pub async fn delete_semantics(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("delete_semantics", conn, profile, hooks);
    let b = cx.bucket(history(2)).await;
    let r1 = b.put("a", b"1").await;
    b.delete("a").await;
    b.delete("absent").await;
    let rc = b.put("c", b"3").await;
    ensure!(
        cx,
        rc == r1 + 3,
        "two delete markers did not take two revisions ({r1} -> {rc})"
    );
    for key in ["a", "absent"] {
        b.expect_get(key, None).await;
        b.expect_entry(key, None).await;
    }
    b.expect_keys("", &["c"]).await;
    b.expect_scan("", &[("c", b"3")]).await;
    b.expect_for_each("", &["c"]).await;
    b.delete("a").await;
    ensure!(
        cx,
        b.put("d", b"4").await == rc + 2,
        "a repeated delete took no revision"
    );
    if cx.has(Need::StreamingWatch) {
        let mut sync = b.watch_all();
        let got = sync.take_brief(4).await;
        let expected = vec![
            ('D', "absent".to_string(), Some(r1 + 2)),
            ('P', "c".to_string(), Some(rc)),
            ('D', "a".to_string(), Some(rc + 1)),
            ('P', "d".to_string(), Some(rc + 2)),
        ];
        ensure!(
            cx,
            got == expected,
            "state-sync {got:?}, expected {expected:?}"
        );
    }
    Outcome::Passed
}

/// `tombstone_semantics`: `delete_with_version` answers `Ok(true)`, writes an empty value
/// visible to `entry` (not `get`/listings), and fails with `RevisionMismatch` on a stale
/// revision and on a missing key; watchers see `Delete` carrying the tombstone's revision
/// (docs/semantics.md, "Writes" and "Tombstones and markers").
pub async fn tombstone_semantics(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("tombstone_semantics", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Cas]) {
        return skip;
    }
    let b = cx.bucket(history(3)).await;
    let v = cx.ok(b.w.put("k", b"1").await, "put k");
    let rv = cx.rev(&v, "put k");
    let mut live = cx.has(Need::StreamingWatch).then(|| b.watch_all());
    if let Some(live) = live.as_mut() {
        let first = live.take_brief(1).await;
        ensure!(
            cx,
            first == vec![('P', "k".to_string(), Some(rv))],
            "state-sync {first:?}"
        );
    }
    let done = cx.ok(
        b.w.delete_with_version("k", &v).await,
        "delete_with_version",
    );
    ensure!(cx, done, "delete_with_version returned false");
    let tomb = b.expect_entry("k", Some(b"")).await.expect("just matched");
    let t = cx.rev(&tomb.version, "tombstone");
    ensure!(
        cx,
        t == rv + 1,
        "tombstone revision {t}, expected {}",
        rv + 1
    );
    b.expect_get("k", None).await;
    b.expect_keys("", &[]).await;
    b.expect_scan("", &[]).await;
    expect_err!(
        cx,
        b.w.delete_with_version("k", &v).await,
        KvError::RevisionMismatch,
        "stale revision"
    );
    for expected in [1, t, t + 5] {
        expect_err!(
            cx,
            b.w.delete_with_version("missing", &VersionToken::from_u64(expected))
                .await,
            KvError::RevisionMismatch,
            "delete_with_version({expected}) of a missing key"
        );
    }
    ensure!(
        cx,
        b.put("probe", b"p").await == t + 1,
        "refused tombstones took revisions"
    );
    if let Some(live) = live.as_mut() {
        let got = live.take_brief(2).await;
        let expected = vec![
            ('D', "k".to_string(), Some(t)),
            ('P', "probe".to_string(), Some(t + 1)),
        ];
        ensure!(
            cx,
            got == expected,
            "live watch {got:?}, expected {expected:?}"
        );
        let mut sync = b.watch_all();
        let got = sync.take_brief(2).await;
        ensure!(
            cx,
            got == expected,
            "state-sync {got:?}, expected {expected:?}"
        );
    }
    Outcome::Passed
}

/// `tombstone_counts_history`: a CAS tombstone is a write, so it takes a slot of
/// `max_history` and is retained as the key's history (docs/semantics.md, "Tombstones and
/// markers").
pub async fn tombstone_counts_history(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("tombstone_counts_history", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Cas, Need::Status]) {
        return skip;
    }
    let b = cx.bucket(history(2)).await;
    let v1 = b.put("k", b"1").await;
    b.tombstone("k", v1).await;
    let s = b.status().await;
    ensure!(
        cx,
        s.values == 2 && s.first_revision == v1,
        "after the tombstone: {s:?}"
    );
    let v3 = b.put("k", b"3").await;
    let s = b.status().await;
    ensure!(
        cx,
        s.values == 2 && s.first_revision == v1 + 1,
        "the tombstone did not count against max_history 2 (values {}, first {}, expected 2 and {})",
        s.values,
        s.first_revision,
        v1 + 1
    );
    b.delete("k").await;
    let s = b.status().await;
    ensure!(
        cx,
        s.values == 2 && s.first_revision == v3,
        "a delete marker did not count against max_history: {s:?}"
    );
    Outcome::Passed
}

/// `purge_semantics`: `purge` removes the key's whole history and leaves one marker
/// (`status().values` and `bytes` drop), takes a revision, is idempotent on absent keys,
/// and reaches watchers as `Purge` (docs/semantics.md, "Tombstones and markers").
pub async fn purge_semantics(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("purge_semantics", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Purge]) {
        return skip;
    }
    let b = cx.bucket(history(5)).await;
    for v in [b"1".as_slice(), b"2", b"3"] {
        b.put("k", &[v, &[b'x'; 100][..]].concat()).await;
    }
    let other = b.put("other", b"o").await;
    let before = if cx.has(Need::Status) {
        Some(b.status().await)
    } else {
        None
    };
    let mut live = cx
        .has(Need::StreamingWatch)
        .then(|| b.watch_from(crate::kv::WatchCursor::from_u64(other)));
    b.purge("k").await;
    let marker = other + 1;
    if let Some(before) = before {
        let after = b.status().await;
        ensure!(
            cx,
            before.values == 4 && after.values == 2,
            "purge did not roll up: values {} -> {}, expected 4 -> 2",
            before.values,
            after.values
        );
        ensure!(
            cx,
            after.bytes < before.bytes,
            "purge reclaimed no bytes: {} -> {}",
            before.bytes,
            after.bytes
        );
    }
    b.expect_get("k", None).await;
    b.expect_entry("k", None).await;
    b.expect_keys("", &["other"]).await;
    b.purge("absent").await;
    let next = b.put("next", b"n").await;
    ensure!(
        cx,
        next == marker + 2,
        "purge markers did not take revisions: next write {next}, expected {}",
        marker + 2
    );
    // Nothing written so far removes an update the live watch is due, however
    // late it registers; the repeated purge below rolls up the first marker.
    if let Some(live) = live.as_mut() {
        let got = live.take_brief(3).await;
        let expected = vec![
            ('X', "k".to_string(), Some(marker)),
            ('X', "absent".to_string(), Some(marker + 1)),
            ('P', "next".to_string(), Some(next)),
        ];
        ensure!(cx, got == expected, "watch {got:?}, expected {expected:?}");
    }
    b.purge("k").await;
    b.purge("absent").await;
    let last = b.put("last", b"l").await;
    ensure!(
        cx,
        last == next + 3,
        "repeated purges did not take revisions: {last}"
    );
    if cx.has(Need::StreamingWatch) {
        let mut sync = b.watch_all();
        let got = sync.take_brief(5).await;
        let expected = vec![
            ('P', "other".to_string(), Some(other)),
            ('P', "next".to_string(), Some(next)),
            ('X', "k".to_string(), Some(next + 1)),
            ('X', "absent".to_string(), Some(next + 2)),
            ('P', "last".to_string(), Some(last)),
        ];
        ensure!(
            cx,
            got == expected,
            "state-sync {got:?}, expected {expected:?}"
        );
    }
    Outcome::Passed
}

/// `fenced_writes`: `put_fenced`/`delete_fenced` succeed while the fence key's latest
/// revision (tombstones and markers included) is the fence's, fail with `RevisionMismatch`
/// once it moved (writing nothing), and fail with `OperationFailed` for a fence of another
/// bucket or a non-u64 revision (docs/semantics.md, "Fenced writes",
/// docs/protocols/export-lease.md, "Fencing").
pub async fn fenced_writes(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("fenced_writes", conn, profile, hooks);
    let b = cx.bucket(history(3)).await;
    let Some(f) = b.store.fenced_writer() else {
        return Outcome::Skipped("the store has no fenced_writer()");
    };
    let fence = |revision: u64| LeaseFence {
        bucket: b.name.clone(),
        key: "lease".to_string(),
        revision: VersionToken::from_u64(revision),
    };
    let lease = b.put("lease", b"holder-1").await;
    let held = fence(lease);
    let v = cx.ok(
        f.put_fenced("data.a", b"1", &held).await,
        "put_fenced under a held fence",
    );
    ensure!(
        cx,
        v.as_u64() == Some(lease + 1),
        "put_fenced version {v:?}"
    );
    b.expect_get("data.a", Some(b"1")).await;
    b.put("data.c", b"c").await;
    let done = cx.ok(
        f.delete_fenced("data.c", &held).await,
        "delete_fenced under a held fence",
    );
    ensure!(cx, done, "delete_fenced returned false");
    b.expect_get("data.c", None).await;
    let done = cx.ok(
        f.delete_fenced("data.absent", &held).await,
        "delete_fenced of an absent key",
    );
    ensure!(cx, done, "delete_fenced returned false");

    let moved = b.put("lease", b"holder-2").await;
    ensure!(
        cx,
        moved == lease + 5,
        "fenced writes took unexpected revisions: lease moved to {moved}"
    );
    expect_err!(
        cx,
        f.put_fenced("data.a", b"2", &held).await,
        KvError::RevisionMismatch,
        "put_fenced after the lease moved"
    );
    expect_err!(
        cx,
        f.delete_fenced("data.a", &held).await,
        KvError::RevisionMismatch,
        "delete_fenced after the lease moved"
    );
    b.expect_get("data.a", Some(b"1")).await;
    let foreign = LeaseFence {
        bucket: format!("{}-other", b.name),
        ..fence(moved)
    };
    expect_err!(
        cx,
        f.put_fenced("data.a", b"3", &foreign).await,
        KvError::OperationFailed(_),
        "a fence of another bucket"
    );
    expect_err!(
        cx,
        f.delete_fenced("data.a", &foreign).await,
        KvError::OperationFailed(_),
        "delete_fenced with a fence of another bucket"
    );
    for bad in [
        VersionToken::unknown(),
        VersionToken::from_raw(&[9, 9, 9]).expect("3 bytes"),
    ] {
        let odd = LeaseFence {
            revision: bad.clone(),
            ..fence(moved)
        };
        expect_err!(
            cx,
            f.put_fenced("data.a", b"4", &odd).await,
            KvError::OperationFailed(_),
            "fence revision {bad:?}"
        );
        expect_err!(
            cx,
            f.delete_fenced("data.a", &odd).await,
            KvError::OperationFailed(_),
            "delete_fenced with fence revision {bad:?}"
        );
    }
    let r = cx.ok(
        f.put_fenced("data.a", b"5", &fence(moved)).await,
        "put_fenced under the new fence",
    );
    ensure!(
        cx,
        r.as_u64() == Some(moved + 1),
        "refused fenced writes took revisions: {r:?}"
    );

    // Markers and tombstones on the fence key count as its latest revision.
    b.delete("lease").await;
    let marker = moved + 2;
    expect_err!(
        cx,
        f.put_fenced("data.a", b"6", &fence(moved)).await,
        KvError::RevisionMismatch,
        "fence over a delete marker"
    );
    cx.ok(
        f.put_fenced("data.a", b"7", &fence(marker)).await,
        "put_fenced at the marker's revision",
    );
    if cx.has(Need::Cas) {
        b.tombstone("lease", marker).await;
        let tomb = marker + 2;
        cx.ok(
            f.delete_fenced("data.a", &fence(tomb)).await,
            "delete_fenced at the tombstone's revision",
        );
        b.expect_get("data.a", None).await;
    }
    Outcome::Passed
}
