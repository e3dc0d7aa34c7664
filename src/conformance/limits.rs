//! Checks of bucket limits and readings: history limits and holes, the retention
//! classification, status, first/last revision edges, `max_bytes` with both
//! discard policies, and the server's payload limit (api.md §15.6, §15.8).

use std::time::Duration;

use super::basics::payload_limit;
use super::support::{Bucket, Ctx, Need, config, ensure, expect_err, history};
use super::{Hooks, Outcome, Profile};
use crate::kv::KvError;
use crate::stores::{Connection, DiscardPolicy, StorageType, StoreConfig, StoreOptions};

/// `history_limit`: with `max_history = 3` the 4th entry of a key removes its
/// oldest (`status().values` stays 3 and the first revision moves); markers count
/// against the limit like values.
pub async fn history_limit(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("history_limit", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Status]) {
        return skip;
    }
    let b = cx.bucket(history(3)).await;
    for v in [b"1", b"2", b"3"] {
        b.put("k", v).await;
    }
    let s = b.status().await;
    ensure!(
        cx,
        (s.values, s.first_revision, s.last_revision) == (3, 1, 3),
        "after 3 writes: {s:?}"
    );
    b.put("k", b"4").await;
    let s = b.status().await;
    ensure!(
        cx,
        (s.values, s.first_revision, s.last_revision) == (3, 2, 4),
        "the 4th write did not remove the oldest: values {}, first {}, last {}",
        s.values,
        s.first_revision,
        s.last_revision
    );
    b.expect_get("k", Some(b"4")).await;
    for v in [b"5", b"6", b"7"] {
        b.put("j", v).await;
    }
    b.delete("j").await;
    let s = b.status().await;
    ensure!(
        cx,
        s.values == 6,
        "a delete marker did not push out the oldest entry of its key: {s:?}"
    );
    Outcome::Passed
}

/// `history_holes`: entries removed by the history limit leave holes in the log
/// interior; `first_revision` moves only when the removed entry was the oldest.
pub async fn history_holes(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("history_holes", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Status]) {
        return skip;
    }
    let b = cx.bucket(history(1)).await;
    b.put("a", b"1").await; // 1
    b.put("b", b"1").await; // 2
    b.put("b", b"2").await; // 3 removes 2: an interior hole
    let s = b.status().await;
    ensure!(
        cx,
        (s.first_revision, s.values) == (1, 2),
        "after an interior removal: {s:?}"
    );
    b.put("a", b"2").await; // 4 removes 1: the floor moves past the hole
    let s = b.status().await;
    ensure!(
        cx,
        (s.first_revision, s.values) == (3, 2),
        "after removing the oldest: {s:?}"
    );
    b.put("c", b"1").await; // 5
    b.put("b", b"3").await; // 6 removes 3
    let s = b.status().await;
    ensure!(
        cx,
        (s.first_revision, s.last_revision, s.values) == (4, 6, 3),
        "{s:?}"
    );
    if cx.has(Need::Retention) {
        let r = b.retention().await;
        ensure!(
            cx,
            r.first_revision == 4,
            "retention().first_revision {}",
            r.first_revision
        );
    }
    Outcome::Passed
}

/// `retention_report`: `retention()` classifies a plain, an age-limited, a
/// size-limited `discard: Old`, an unlimited `discard: Old`, a size-limited
/// `discard: New` and (with capability ttl) TTL buckets, agrees with
/// `status().retention`, and its `first_revision` tracks eviction and supersession.
pub async fn retention_report(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("retention_report", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Retention]) {
        return skip;
    }
    let old_sized = StoreConfig {
        discard: DiscardPolicy::Old,
        max_bytes: Some(2048),
        ..config()
    };
    let mut cases: Vec<(&str, StoreConfig, StoreOptions, bool)> = vec![
        ("plain", config(), StoreOptions::new(), false),
        (
            "max_age",
            StoreConfig {
                max_age: Some(Duration::from_secs(3600)),
                ..config()
            },
            StoreOptions::new(),
            true,
        ),
        (
            "discard Old with max_bytes",
            old_sized.clone(),
            StoreOptions::new(),
            true,
        ),
        (
            "discard Old unlimited",
            StoreConfig {
                discard: DiscardPolicy::Old,
                max_bytes: Some(-1),
                ..config()
            },
            StoreOptions::new(),
            false,
        ),
        (
            "discard New with max_bytes",
            StoreConfig {
                max_bytes: Some(2048),
                ..config()
            },
            StoreOptions::new(),
            false,
        ),
    ];
    if cx.has(Need::Ttl) {
        cases.push(("ttl", config(), StoreOptions::new().with_ttl(), true));
        cases.push((
            "limit markers",
            config(),
            StoreOptions::new().with_limit_markers(Duration::from_secs(5)),
            true,
        ));
    }
    for (what, cfg, options, evicts) in cases {
        let b = cx.bucket_with(cfg, options).await;
        let r = b.retention().await;
        ensure!(
            cx,
            r.evicts_current_values == evicts && r.first_revision == 0,
            "{what} bucket: {r:?}, expected evicts_current_values = {evicts}, first_revision 0"
        );
        b.put("k", b"v").await;
        let r = b.retention().await;
        ensure!(
            cx,
            r.first_revision == 1,
            "{what} bucket after one write: {r:?}"
        );
        if cx.has(Need::Status) {
            let s = b.status().await;
            ensure!(
                cx,
                s.retention == r,
                "{what}: status().retention {:?} != {r:?}",
                s.retention
            );
        }
    }
    let b = cx.bucket(old_sized).await;
    let value = [b'v'; 200];
    let mut last = 0;
    for i in 0..20 {
        last = b.put(&format!("k{i:02}"), &value).await;
    }
    let r = b.retention().await;
    ensure!(
        cx,
        r.evicts_current_values && r.first_revision > 1 && r.first_revision <= last,
        "after size eviction: {r:?}"
    );
    if cx.has(Need::Status) {
        let s = b.status().await;
        ensure!(
            cx,
            s.first_revision == r.first_revision,
            "status {s:?} vs retention {r:?}"
        );
    }
    let h = cx.bucket(history(1)).await;
    h.put("a", b"1").await;
    h.put("a", b"2").await;
    let r = h.retention().await;
    ensure!(
        cx,
        r.first_revision == 2,
        "after superseding the oldest entry: {r:?}"
    );
    Outcome::Passed
}

/// `status_report`: `status()` reads first/last revision, counts and bytes
/// fresh on every call, reads back the configuration and options with defaults
/// applied, and keeps `created_unix_ms` stable.
pub async fn status_report(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("status_report", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Status]) {
        return skip;
    }
    let cfg = StoreConfig {
        storage: StorageType::Memory,
        max_history: Some(4),
        max_age: Some(Duration::from_secs(7200)),
        max_bytes: Some(1024 * 1024),
        num_replicas: None,
        discard: DiscardPolicy::New,
        ..config()
    };
    let b = cx.bucket(cfg.clone()).await;
    let s0 = b.status().await;
    ensure!(cx, s0.name == b.name, "status name {:?}", s0.name);
    ensure!(
        cx,
        (s0.first_revision, s0.last_revision, s0.values, s0.bytes) == (0, 0, 0, 0),
        "fresh: {s0:?}"
    );
    ensure!(cx, s0.created_unix_ms > 0, "created_unix_ms is 0");
    let expected = StoreConfig {
        name: b.name.clone(),
        num_replicas: Some(profile.replicas.unwrap_or(1)),
        ..cfg
    };
    ensure!(
        cx,
        s0.config == expected,
        "config read back as {:?}, expected {expected:?}",
        s0.config
    );
    ensure!(
        cx,
        s0.options == StoreOptions::default(),
        "options {:?}",
        s0.options
    );
    ensure!(
        cx,
        s0.retention.evicts_current_values,
        "a max_age bucket reads as not evicting"
    );

    b.put("a", b"1").await;
    b.put("b", b"2").await;
    b.put("a", b"3").await;
    let s1 = b.status().await;
    ensure!(
        cx,
        (s1.first_revision, s1.last_revision, s1.values) == (1, 3, 3) && s1.bytes > 0,
        "after three writes: {s1:?}"
    );
    let last = cx.ok(b.watcher().last_revision().await, "last_revision()");
    ensure!(cx, last == Some(3), "last_revision() = {last:?}");
    b.put("c", b"4").await;
    let s2 = b.status().await;
    ensure!(
        cx,
        s2.last_revision == 4 && s2.values == 4 && s2.bytes > s1.bytes,
        "status is not fresh: {s1:?} then {s2:?}"
    );
    ensure!(
        cx,
        s0.created_unix_ms == s1.created_unix_ms && s1.created_unix_ms == s2.created_unix_ms,
        "created_unix_ms moved: {} {} {}",
        s0.created_unix_ms,
        s1.created_unix_ms,
        s2.created_unix_ms
    );

    // `store(name)` creates a bucket with the default configuration.
    let name = cx.bucket_name();
    let d = Bucket::of(&cx, cx.ok(conn.store(&name).await, "store(name)"));
    let c = d.status().await.config;
    let expected = StoreConfig {
        name: d.name.clone(),
        storage: StorageType::Persistent,
        max_history: Some(1),
        max_age: None,
        max_bytes: Some(10 * 1024 * 1024),
        num_replicas: Some(1),
        discard: DiscardPolicy::New,
    };
    ensure!(
        cx,
        c == expected,
        "default config read back as {c:?}, expected {expected:?}"
    );
    if cx.has(Need::Ttl) {
        let markers = StoreOptions::new().with_limit_markers(Duration::from_secs(5));
        let t = cx.bucket_with(config(), markers.clone()).await;
        let s = t.status().await;
        ensure!(
            cx,
            s.options == markers,
            "options read back as {:?}, expected {markers:?}",
            s.options
        );
        let t = cx
            .bucket_with(config(), StoreOptions::new().with_ttl())
            .await;
        let s = t.status().await;
        ensure!(
            cx,
            s.options == StoreOptions::new().with_ttl(),
            "TTL options read back as {:?}",
            s.options
        );
    }
    Outcome::Passed
}

/// `first_last_edges`: a bucket that never stored a message reads 0/0; when every
/// message was removed, `first_revision = last_revision + 1` (api.md §15.1).
pub async fn first_last_edges(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("first_last_edges", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Status]) {
        return skip;
    }
    let cfg = StoreConfig {
        discard: DiscardPolicy::Old,
        max_bytes: Some(1024),
        ..config()
    };
    let b = cx.bucket(cfg).await;
    let s = b.status().await;
    ensure!(
        cx,
        (s.first_revision, s.last_revision) == (0, 0),
        "fresh: {s:?}"
    );
    let r = b.put("big", &[b'x'; 2000]).await;
    ensure!(cx, r == 1, "the oversized write got revision {r}");
    let s = b.status().await;
    ensure!(
        cx,
        (s.first_revision, s.last_revision, s.values, s.bytes) == (2, 1, 0, 0),
        "after the only message was evicted: {s:?}, expected first 2, last 1, empty"
    );
    if cx.has(Need::Retention) {
        let r = b.retention().await;
        ensure!(cx, r.first_revision == 2, "retention after draining: {r:?}");
    }
    b.put("small", b"v").await;
    let s = b.status().await;
    ensure!(
        cx,
        (s.first_revision, s.last_revision, s.values) == (2, 2, 1),
        "after refilling: {s:?}"
    );
    Outcome::Passed
}

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
