//! Checks of the size limits: `max_bytes` with both discard policies, the
//! server's payload limit (docs/operations.md, "Key and value limits"), and the key
//! and value limits both backends share (`protocol::subject`), folded end to end.

use std::sync::Arc;
use std::time::Duration;

use super::basics::payload_limit;
use super::snapshot::limits::{StopWhenDurable, limit_key, patterned_value};
use super::support::{
    Bucket, Ctx, Need, Scope, brief, config, ensure, expect_err, history, value_of,
};
use super::{Hooks, Outcome, Profile};
use crate::fold::{BatchConfig, WatchScope, watch_applied};
use crate::kv::{KvError, KvReader, KvUpdate, VersionToken, WatchCursor};
use crate::protocol::subject::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
use crate::snapshot::{AppendLogSnapshot, SnapshotStore};
use crate::stores::{Connection, DiscardPolicy, StoreConfig};

/// Bucket bytes limit of the discard-new checks.
const FULL_MAX_BYTES: u64 = 4096;

/// Fills a fresh `discard: New` bucket (history 1) exactly to
/// [`FULL_MAX_BYTES`] with `k0` (100 bytes) and `k1`; returns `k1`'s value length.
/// On the way, checks that one byte more than the fit is refused and writes nothing.
async fn fill_exactly(b: &Bucket<'_>) -> usize {
    let cx = b.cx;
    b.put("k0", &[b'0'; 100]).await;
    let s0 = b.status().await;
    let overhead = s0
        .bytes
        .checked_sub(100)
        .unwrap_or_else(|| cx.fail(format_args!("a 100-byte value accounts {} bytes", s0.bytes)));
    let room = FULL_MAX_BYTES.saturating_sub(s0.bytes);
    ensure!(cx, room > overhead, "no room for a second message: {s0:?}");
    let fit = (room - overhead) as usize;
    expect_err!(
        cx,
        b.w.put("k1", &vec![b'1'; fit + 1]).await,
        KvError::OperationFailed(_),
        "a write one byte over max_bytes"
    );
    let s = b.status().await;
    ensure!(
        cx,
        s.last_revision == s0.last_revision && s.bytes == s0.bytes,
        "a refused write changed the bucket: {s:?}"
    );
    b.expect_get("k1", None).await;
    b.put("k1", &vec![b'1'; fit]).await;
    let s = b.status().await;
    ensure!(
        cx,
        s.bytes == FULL_MAX_BYTES,
        "an exact fit left {} of {FULL_MAX_BYTES} bytes used",
        s.bytes
    );
    fit
}

fn discard_new() -> StoreConfig {
    StoreConfig {
        max_bytes: Some(FULL_MAX_BYTES as i64),
        discard: DiscardPolicy::New,
        ..history(1)
    }
}

/// `discard_new_full`: a small `max_bytes` bucket with `discard: New` rejects a
/// write that does not fit with `OperationFailed` (writing nothing, taking no
/// revision) and accepts an exact fit; a full bucket refuses even a 1-byte write.
pub async fn discard_new_full(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("discard_new_full", conn, profile, hooks);
    let b = cx.bucket(discard_new()).await;
    let big = vec![b'x'; FULL_MAX_BYTES as usize];
    expect_err!(
        cx,
        b.w.put("big", &big).await,
        KvError::OperationFailed(_),
        "a value as large as max_bytes"
    );
    b.expect_get("big", None).await;
    ensure!(
        cx,
        b.put("probe", b"p").await == 1,
        "the refused write took a revision"
    );
    if cx.has(Need::Status) {
        let e = cx.bucket(discard_new()).await;
        fill_exactly(&e).await;
        expect_err!(
            cx,
            e.w.put("k2", b"1").await,
            KvError::OperationFailed(_),
            "a 1-byte write to a full bucket"
        );
        e.expect_get("k2", None).await;
        let s = e.status().await;
        ensure!(
            cx,
            s.last_revision == 2 && s.bytes == FULL_MAX_BYTES,
            "the full bucket changed: {s:?}"
        );
    }
    Outcome::Passed
}

/// `discard_new_counts_removed`: on a full `discard: New` bucket, a write that
/// replaces a key's only message is judged against what it replaces: a
/// replacement one byte larger than the message it replaces is refused and
/// changes nothing; a same-size replacement or a purge either succeeds (a single
/// server lets a key at its history limit replace a message at least as large)
/// or is refused (replicated NATS streams enforce the byte limit first), and
/// either way the bucket never holds more than `max_bytes` and reads show the
/// outcome.
pub async fn discard_new_counts_removed(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("discard_new_counts_removed", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Status]) {
        return skip;
    }
    let b = cx.bucket(discard_new()).await;
    let fit = fill_exactly(&b).await;
    expect_err!(
        cx,
        b.w.put("k0", &[b'4'; 101]).await,
        KvError::OperationFailed(_),
        "a replacement one byte larger than what it replaces"
    );
    b.expect_get("k0", Some(&[b'0'; 100])).await;
    let replaced = match b.w.put("k1", &vec![b'2'; fit]).await {
        Ok(_) => true,
        Err(KvError::OperationFailed(_)) => false,
        Err(other) => cx.fail(format_args!("same-size replacement: unexpected {other:?}")),
    };
    let s = b.status().await;
    ensure!(
        cx,
        s.bytes == FULL_MAX_BYTES && s.values == 2,
        "after a same-size replacement (accepted: {replaced}): {s:?}"
    );
    let k1 = if replaced { b'2' } else { b'1' };
    b.expect_get("k1", Some(&vec![k1; fit])).await;
    if cx.has(Need::Purge) {
        let purged = match b.purger().purge("k1").await {
            Ok(()) => true,
            Err(KvError::OperationFailed(_)) => false,
            Err(other) => cx.fail(format_args!("purge on a full bucket: unexpected {other:?}")),
        };
        let s = b.status().await;
        ensure!(
            cx,
            s.bytes <= FULL_MAX_BYTES && s.values == 2,
            "purge on a full bucket (accepted: {purged}): {s:?}"
        );
        if purged {
            ensure!(cx, s.bytes < FULL_MAX_BYTES, "a purge freed nothing: {s:?}");
            b.expect_get("k1", None).await;
        } else {
            b.expect_get("k1", Some(&vec![k1; fit])).await;
        }
    }
    Outcome::Passed
}

/// `discard_old_evicts`: `discard: Old` evicts the oldest messages, current
/// values included; `first_revision` moves and retention says evicting; a single
/// message larger than `max_bytes` gets a revision and is evicted at once.
pub async fn discard_old_evicts(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("discard_old_evicts", conn, profile, hooks);
    let cfg = StoreConfig {
        max_bytes: Some(2048),
        discard: DiscardPolicy::Old,
        ..history(1)
    };
    let b = cx.bucket(cfg).await;
    let value = [b'v'; 200];
    let mut last = 0;
    for i in 0..20 {
        last = b.put(&format!("k{i:02}"), &value).await;
    }
    ensure!(
        cx,
        last == 20,
        "writes to a discard-old bucket were refused or skipped: last {last}"
    );
    b.expect_get("k00", None).await;
    b.expect_get("k19", Some(&value)).await;
    let keys = cx.ok(b.r.keys("").await, "keys(\"\")");
    ensure!(
        cx,
        !keys.is_empty() && keys.len() < 20 && keys.last().map(String::as_str) == Some("k19"),
        "keys after eviction: {keys:?}"
    );
    if cx.has(Need::Retention) {
        let r = b.retention().await;
        ensure!(
            cx,
            r.evicts_current_values && r.first_revision > 1,
            "retention {r:?}"
        );
        ensure!(
            cx,
            r.first_revision == last + 1 - keys.len() as u64,
            "first_revision {} does not match the {} keys left",
            r.first_revision,
            keys.len()
        );
    }
    if cx.has(Need::Status) {
        let s = b.status().await;
        ensure!(
            cx,
            s.bytes <= 2048 && s.values == keys.len() as u64,
            "status {s:?}"
        );
    }
    let big = b.put("big", &[b'x'; 4096]).await;
    ensure!(
        cx,
        big == last + 1,
        "the oversized write got revision {big}, expected {}",
        last + 1
    );
    b.expect_get("big", None).await;
    b.expect_get("k19", None).await;
    if cx.has(Need::Status) {
        let s = b.status().await;
        ensure!(
            cx,
            (s.values, s.bytes, s.first_revision) == (0, 0, big + 1),
            "an oversized message was not evicted at once: {s:?}"
        );
    }
    b.put("after", b"a").await;
    b.expect_get("after", Some(b"a")).await;
    Outcome::Passed
}

/// `max_payload`: a value over the server's payload limit (the layer cap when
/// `max_value_size > 0`, else the 1 MiB default) fails with `OperationFailed`,
/// writing nothing and taking no revision; a value of exactly the limit is stored.
pub async fn max_payload(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("max_payload", conn, profile, hooks);
    let unlimited = StoreConfig {
        max_bytes: Some(-1),
        ..config()
    };
    let b = cx.bucket(unlimited).await;
    let limit = payload_limit(profile);
    let r = b.put("seed", b"s").await;
    let over = vec![b'o'; limit + 1];
    expect_err!(
        cx,
        b.w.put("big", &over).await,
        KvError::OperationFailed(_),
        "put of {} bytes",
        over.len()
    );
    if cx.has(Need::Cas) {
        expect_err!(
            cx,
            b.w.create("big", &over).await,
            KvError::OperationFailed(_),
            "create of {} bytes",
            over.len()
        );
    }
    b.expect_get("big", None).await;
    ensure!(
        cx,
        b.put("probe", b"p").await == r + 1,
        "the refused write took a revision"
    );
    let exact = vec![b'e'; limit];
    b.put("exact", &exact).await;
    b.expect_get("exact", Some(&exact)).await;
    Outcome::Passed
}

/// Fails unless `result` is `OperationFailed` whose message names the key limit.
#[track_caller]
fn refused_at_limit<T: std::fmt::Debug>(cx: &Ctx<'_>, result: Result<T, KvError>, what: &str) {
    match result {
        Err(KvError::OperationFailed(message))
            if message.contains(&MAX_KEY_BYTES.to_string()) => {}
        other => cx.fail(format_args!(
            "{what}: expected OperationFailed naming the {MAX_KEY_BYTES}-byte key limit, got {other:?}"
        )),
    }
}

/// `key_and_value_limits` (an addition): both backends accept keys and
/// prefixes of exactly `protocol::subject::MAX_KEY_BYTES` bytes and refuse one
/// byte more before any I/O, with `OperationFailed` naming the limit (reads,
/// writes, listings) or `WatchError` (watches), taking no revision; and the
/// longest key with the largest value the backend accepts goes through
/// `watch_applied` into an `AppendLogSnapshot` (in a fresh directory under the
/// system temp dir, removed afterwards) and reads back after a reopen, so a
/// fold never wedges on an entry the store cannot hold.
pub async fn key_and_value_limits(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("key_and_value_limits", conn, profile, hooks);
    let b = cx
        .bucket(StoreConfig {
            max_bytes: Some(-1),
            ..config()
        })
        .await;
    let key = limit_key();
    let over = format!("{key}x");
    let seed = b.put("seed", b"s").await;
    let token = VersionToken::from_u64(seed);
    refused_at_limit(&cx, b.r.get(&over).await, "get(limit + 1)");
    refused_at_limit(&cx, b.r.entry(&over).await, "entry(limit + 1)");
    refused_at_limit(&cx, b.w.put(&over, b"v").await, "put(limit + 1)");
    refused_at_limit(&cx, b.w.delete(&over).await, "delete(limit + 1)");
    refused_at_limit(&cx, b.r.keys(&over).await, "keys(prefix limit + 1)");
    refused_at_limit(&cx, b.r.scan(&over).await, "scan(prefix limit + 1)");
    let mut sink = |_k: String| {};
    refused_at_limit(
        &cx,
        b.r.for_each_key(&over, &mut sink).await,
        "for_each_key(prefix limit + 1)",
    );
    if cx.has(Need::Cas) {
        refused_at_limit(&cx, b.w.create(&over, b"v").await, "create(limit + 1)");
        refused_at_limit(
            &cx,
            b.w.update(&over, b"v", &token).await,
            "update(limit + 1)",
        );
        refused_at_limit(
            &cx,
            b.w.delete_with_version(&over, &token).await,
            "delete_with_version(limit + 1)",
        );
    }
    if cx.has(Need::Purge) {
        refused_at_limit(&cx, b.purger().purge(&over).await, "purge(limit + 1)");
    }
    if cx.has(Need::PrefixWatch) {
        let mut run = b.watch(Scope::prefix(&over), None, 4);
        let (got, result) = run.until_end().await;
        ensure!(
            cx,
            got.is_empty(),
            "watch_prefix(limit + 1) delivered {} updates",
            got.len()
        );
        expect_err!(
            cx,
            result,
            KvError::WatchError(_),
            "watch_prefix(limit + 1)"
        );
    }
    let value = patterned_value(payload_limit(profile).min(MAX_VALUE_BYTES));
    let first = b.put(&key, &value).await;
    ensure!(
        cx,
        first == seed + 1,
        "the refused writes took revisions: the limit key got revision {first}, expected {}",
        seed + 1
    );
    b.expect_get(&key, Some(&value)).await;
    b.expect_entry(&key, Some(&value)).await;
    b.expect_keys(&key, &[key.as_str()]).await;
    b.expect_keys("limit.", &[key.as_str()]).await;
    if cx.has(Need::PrefixWatch) {
        let mut run = b.watch(Scope::prefix(&key), None, 4);
        let got = run.next().await;
        ensure!(
            cx,
            got.key() == key && value_of(&got) == Some(value.as_slice()),
            "watch_prefix(limit key) delivered {:?}",
            brief(&got)
        );
    }
    let last = b.put("after", b"a").await;
    if cx.has(Need::StreamingWatch) {
        fold_limit_entry(&cx, &b, &key, &value, last).await;
    }
    Outcome::Passed
}

/// Folds bucket `b` with `watch_applied` into a new `AppendLogSnapshot` until
/// the store made revision `last` durable, then reopens the store and fails unless `key` reads back
/// `value` with the cursor at `last`.
async fn fold_limit_entry(cx: &Ctx<'_>, b: &Bucket<'_>, key: &str, value: &[u8], last: u64) {
    let dir = std::env::temp_dir().join(format!("kvfold-conf-{}", b.name));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        cx.fail(format_args!("create {}: {e}", dir.display()));
    }
    let path = dir.join("fold.snap");
    let within = cx.timeout() * 6 + Duration::from_secs(10);
    let outcome = fold_and_reopen(b, &path, key, value, last, within).await;
    // Best effort: the directory is the check's own, and a leftover is harmless.
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(message) = outcome {
        cx.fail(message);
    }
}

async fn fold_and_reopen(
    b: &Bucket<'_>,
    path: &std::path::Path,
    key: &str,
    value: &[u8],
    last: u64,
    within: Duration,
) -> Result<(), String> {
    let (_, store) =
        AppendLogSnapshot::open(path, 1 << 20).map_err(|e| format!("open store: {e:?}"))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let fold = watch_applied(
        b.watcher(),
        WatchScope::All,
        None,
        None::<Arc<dyn KvReader>>,
        Some(StopWhenDurable::new(store, last, stop_tx)),
        None,
        BatchConfig::default(),
        |update: &KvUpdate| Some(update.key().len()),
        |_lens: Vec<usize>| {},
        |_cursor: WatchCursor| {},
        stop_rx,
    );
    match tokio::time::timeout(within, fold).await {
        Err(_) => {
            return Err(format!(
                "the fold did not reach revision {last} within {within:?}"
            ));
        }
        Ok(Err(e)) => return Err(format!("the fold failed: {e:?}")),
        Ok(Ok(_)) => {}
    }
    let (cursor, store) =
        AppendLogSnapshot::open(path, 1 << 20).map_err(|e| format!("reopen store: {e:?}"))?;
    if cursor.as_u64() != Some(last) {
        return Err(format!(
            "reopened store at cursor {cursor:?}, expected {last}"
        ));
    }
    let entry = store.get(key).map_err(|e| format!("store get: {e:?}"))?;
    if entry.as_ref().is_none_or(|e| e.value != value) {
        return Err(format!(
            "the reopened store does not hold the {}-byte value of the limit key (got {:?})",
            value.len(),
            entry.map(|e| e.value.len())
        ));
    }
    Ok(())
}
