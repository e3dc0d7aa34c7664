//! Checks of bucket limits and readings: history limits and holes, the retention
//! classification, status and first/last revision edges. The size limits
//! (`max_bytes`, payload, key and value) are in `size_limits`.

use std::time::Duration;

use super::support::{Bucket, Ctx, Need, config, ensure, history};
use super::{Hooks, Outcome, Profile};
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

/// `first_last_edges`: a bucket that never stored a message reads 0/0; when every message
/// was removed, `first_revision = last_revision + 1` (docs/semantics.md, "Revisions").
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
