//! Checks of the connection, bucket creation and the basic read/write round trip:
//! lifecycle, configuration handling, capabilities, revisions and versions, and value
//! visibility (docs/semantics.md, "Connections and store handles", "Store configuration",
//! "Revisions" and "Reads and visibility").

use std::time::Duration;

use super::support::{Bucket, Ctx, Need, config, ensure, expect_err, history};
use super::{Hooks, Outcome, Profile};
use crate::kv::{KvError, VersionToken};
use crate::stores::{Connection, DiscardPolicy, StorageType, StoreConfig, StoreOptions};

/// The default payload limit of NATS and of the memory server (1 MiB).
pub(crate) const DEFAULT_PAYLOAD_LIMIT: usize = 1024 * 1024;

/// The server's payload limit as far as the suite can know it: the layer's own
/// cap when it reports one, else the 1 MiB default of both kvfold backends.
pub(crate) fn payload_limit(profile: &Profile) -> usize {
    match profile.caps.max_value_size {
        0 => DEFAULT_PAYLOAD_LIMIT,
        n => n,
    }
}

/// `lifecycle`: healthy after `connect`; `connect` twice is fine; after
/// `shutdown` the connection is unhealthy and `store*` fail with `NotConnected`
/// while earlier store handles keep working; `shutdown` twice is fine; `connect`
/// again works and sees the same buckets. Runs last in [`run_all`](super::run_all).
pub async fn lifecycle(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("lifecycle", conn, profile, hooks);
    ensure!(
        cx,
        conn.is_healthy(),
        "a connected connection is not healthy"
    );
    cx.ok(conn.connect().await, "connect() on a connected connection");
    ensure!(cx, conn.is_healthy(), "unhealthy after a second connect()");
    let b = cx.bucket(config()).await;
    b.put("k", b"before").await;

    cx.ok(conn.shutdown().await, "shutdown()");
    ensure!(cx, !conn.is_healthy(), "healthy after shutdown()");
    expect_err!(
        cx,
        conn.store(&b.name).await.map(|_| ()),
        KvError::NotConnected,
        "store() after shutdown"
    );
    let named = StoreConfig {
        name: b.name.clone(),
        ..StoreConfig::default()
    };
    expect_err!(
        cx,
        conn.store_with_config(named.clone()).await.map(|_| ()),
        KvError::NotConnected,
        "store_with_config() after shutdown"
    );
    expect_err!(
        cx,
        conn.store_with_options(named, StoreOptions::default())
            .await
            .map(|_| ()),
        KvError::NotConnected,
        "store_with_options() after shutdown"
    );
    // Handles obtained earlier keep working until dropped (docs/semantics.md, "Connections
    // and store handles").
    b.expect_get("k", Some(b"before")).await;
    b.put("k", b"after-shutdown").await;
    cx.ok(conn.shutdown().await, "a second shutdown()");
    ensure!(cx, !conn.is_healthy(), "healthy after a second shutdown()");

    cx.ok(conn.connect().await, "connect() after shutdown()");
    ensure!(cx, conn.is_healthy(), "unhealthy after reconnecting");
    let again = cx.ok(conn.store(&b.name).await, "store() after reconnecting");
    let again = Bucket::of(&cx, again);
    again.expect_get("k", Some(b"after-shutdown")).await;
    again.put("k", b"reconnected").await;
    b.expect_get("k", Some(b"reconnected")).await;
    Outcome::Passed
}

/// `store_idempotent`: `store_with_config` twice returns the same bucket; a
/// different configuration (or `store`, or other options) on an existing bucket
/// changes nothing (`status().config`, `status().options`, no TTL writer).
pub async fn store_idempotent(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("store_idempotent", conn, profile, hooks);
    let name = cx.bucket_name();
    let first = StoreConfig {
        name: name.clone(),
        max_history: Some(3),
        max_bytes: Some(256 * 1024),
        ..StoreConfig::default()
    };
    let s1 = cx.ok(conn.store_with_config(first.clone()).await, "first store");
    ensure!(
        cx,
        s1.name() == name,
        "store name {:?} != {name:?}",
        s1.name()
    );
    let b1 = Bucket::of(&cx, s1);
    b1.put("k", b"v1").await;

    let s2 = cx.ok(conn.store_with_config(first).await, "same config again");
    let b2 = Bucket::of(&cx, s2);
    b2.expect_get("k", Some(b"v1")).await;

    let other = StoreConfig {
        name: name.clone(),
        storage: StorageType::Memory,
        max_history: Some(7),
        max_age: Some(Duration::from_secs(3600)),
        max_bytes: Some(-1),
        num_replicas: None,
        discard: DiscardPolicy::Old,
    };
    let s3 = cx.ok(conn.store_with_config(other.clone()).await, "other config");
    let b3 = Bucket::of(&cx, s3);
    b3.expect_get("k", Some(b"v1")).await;
    let s4 = cx.ok(conn.store(&name).await, "store(name)");
    let b4 = Bucket::of(&cx, s4);
    b4.put("k", b"v2").await;
    b1.expect_get("k", Some(b"v2")).await;
    b3.expect_get("k", Some(b"v2")).await;

    if cx.has(Need::Ttl) {
        let s5 = cx.ok(
            conn.store_with_options(other, StoreOptions::new().with_ttl())
                .await,
            "TTL options on an existing bucket",
        );
        ensure!(
            cx,
            s5.ttl_writer().is_none(),
            "an existing bucket without TTL gained a ttl_writer() from later options"
        );
    }
    if cx.has(Need::Status) {
        let status = b3.status().await;
        let expected = StoreConfig {
            name: name.clone(),
            storage: StorageType::Persistent,
            max_history: Some(3),
            max_age: None,
            max_bytes: Some(256 * 1024),
            num_replicas: Some(1),
            discard: DiscardPolicy::New,
        };
        ensure!(
            cx,
            status.config == expected,
            "config changed by a later store call: {:?}, expected {expected:?}",
            status.config
        );
        ensure!(
            cx,
            status.options == StoreOptions::default(),
            "options changed by a later store call: {:?}",
            status.options
        );
        ensure!(cx, status.name == name, "status name {:?}", status.name);
    }
    Outcome::Passed
}

/// `config_validation`: each invalid `StoreConfig` field and bucket name
/// (docs/semantics.md, "Store configuration") fails with `OperationFailed` and creates
/// nothing; the valid edge values are accepted and read back with their defaults applied.
pub async fn config_validation(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("config_validation", conn, profile, hooks);
    for bad in ["", "a.b", "a b", "a*", "a>", "a/b", "a=b", "\u{e4}"] {
        let named = StoreConfig {
            name: bad.to_string(),
            ..StoreConfig::default()
        };
        expect_err!(
            cx,
            conn.store_with_config(named).await.map(|_| ()),
            KvError::OperationFailed(_),
            "bucket name {bad:?}"
        );
        expect_err!(
            cx,
            conn.store(bad).await.map(|_| ()),
            KvError::OperationFailed(_),
            "store({bad:?})"
        );
    }
    let name = cx.bucket_name();
    let named = |edit: fn(&mut StoreConfig)| {
        let mut c = StoreConfig {
            name: name.clone(),
            ..StoreConfig::default()
        };
        edit(&mut c);
        c
    };
    let invalid: [(&str, StoreConfig, StoreOptions); 7] = [
        (
            "max_history 0",
            named(|c| c.max_history = Some(0)),
            StoreOptions::new(),
        ),
        (
            "max_history 65",
            named(|c| c.max_history = Some(65)),
            StoreOptions::new(),
        ),
        (
            "max_age 99 ms",
            named(|c| c.max_age = Some(Duration::from_millis(99))),
            StoreOptions::new(),
        ),
        (
            "max_age 1 ms",
            named(|c| c.max_age = Some(Duration::from_millis(1))),
            StoreOptions::new(),
        ),
        (
            "num_replicas 6",
            named(|c| c.num_replicas = Some(6)),
            StoreOptions::new(),
        ),
        (
            "num_replicas 100",
            named(|c| c.num_replicas = Some(100)),
            StoreOptions::new(),
        ),
        (
            "limit_marker_ttl 999 ms",
            named(|_| {}),
            StoreOptions::new().with_limit_markers(Duration::from_millis(999)),
        ),
    ];
    for (what, cfg, options) in invalid {
        expect_err!(
            cx,
            conn.store_with_options(cfg, options).await.map(|_| ()),
            KvError::OperationFailed(_),
            "{what}"
        );
    }
    // Nothing was created: the first valid call creates the bucket with its config.
    let valid = cx.ok(
        conn.store_with_config(named(|c| c.max_history = Some(2)))
            .await,
        "a valid config after the invalid ones",
    );
    let b = Bucket::of(&cx, valid);
    ensure!(cx, b.put("k", b"v").await == 1, "the bucket was not fresh");
    if cx.has(Need::Status) {
        let status = b.status().await;
        ensure!(
            cx,
            status.config.max_history == Some(2),
            "an invalid call created the bucket: config {:?}",
            status.config
        );
    }

    // Valid edge values, read back with defaults applied.
    let edge = StoreConfig {
        max_history: Some(64),
        max_age: Some(Duration::ZERO),
        max_bytes: Some(0),
        num_replicas: Some(0),
        ..config()
    };
    let e = cx.bucket(edge).await;
    e.put("k", b"v").await;
    let aged = StoreConfig {
        max_history: Some(1),
        max_age: Some(Duration::from_millis(100)),
        ..config()
    };
    let a = cx.bucket(aged).await;
    if cx.has(Need::Status) {
        let c = e.status().await.config;
        ensure!(
            cx,
            c.max_history == Some(64)
                && c.max_age.is_none()
                && c.max_bytes.is_none()
                && c.num_replicas == Some(1),
            "edge config read back as {c:?}"
        );
        let c = a.status().await.config;
        ensure!(
            cx,
            c.max_age == Some(Duration::from_millis(100)) && c.max_bytes == Some(10 * 1024 * 1024),
            "max_age 100 ms config read back as {c:?}"
        );
    }
    Outcome::Passed
}

/// `capabilities_consistent`: `capabilities()` is stable; `purge` ⇔
/// `purge_writer()` is `Some`; `ttl` ⇔ a TTL bucket can be created and has a
/// working `ttl_writer()` (never on a plain bucket); `cas` ⇔ CAS conflicts are
/// reported; `streaming_watch` ⇒ `watcher()` is `Some`; a layer value cap is enforced.
pub async fn capabilities_consistent(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("capabilities_consistent", conn, profile, hooks);
    let caps = conn.capabilities();
    ensure!(cx, caps == conn.capabilities(), "capabilities() changed");
    let b = cx.bucket(config()).await;
    ensure!(
        cx,
        caps.purge == b.store.purge_writer().is_some(),
        "purge = {} but purge_writer().is_some() = {}",
        caps.purge,
        b.store.purge_writer().is_some()
    );
    ensure!(
        cx,
        b.store.ttl_writer().is_none(),
        "ttl_writer() is Some on a bucket created without TTL"
    );
    if caps.streaming_watch {
        ensure!(
            cx,
            b.store.watcher().is_some(),
            "streaming_watch but no watcher()"
        );
    }
    if caps.purge {
        b.put("p", b"v").await;
        b.purge("p").await;
        b.expect_get("p", None).await;
    }

    let ttl_name = cx.bucket_name();
    let ttl_config = StoreConfig {
        name: ttl_name.clone(),
        ..StoreConfig::default()
    };
    let created = conn
        .store_with_options(ttl_config.clone(), StoreOptions::new().with_ttl())
        .await;
    if caps.ttl {
        let store = cx.ok(created, "creating a TTL bucket with capability ttl");
        let Some(ttl) = store.ttl_writer() else {
            cx.fail("ttl = true but ttl_writer() is None on a TTL bucket");
        };
        cx.ok(
            ttl.put_with_ttl("t", b"v", Duration::from_secs(60)).await,
            "put_with_ttl on a TTL bucket",
        );
        Bucket::of(&cx, store).expect_get("t", Some(b"v")).await;
    } else {
        expect_err!(
            cx,
            created.map(|_| ()),
            KvError::OperationFailed(_),
            "TTL options without capability ttl"
        );
        let markers = StoreOptions::new().with_limit_markers(Duration::from_secs(1));
        expect_err!(
            cx,
            conn.store_with_options(ttl_config, markers)
                .await
                .map(|_| ()),
            KvError::OperationFailed(_),
            "limit markers without capability ttl"
        );
    }

    if caps.cas {
        let v1 = cx.ok(b.w.create("c", b"1").await, "create on an absent key");
        expect_err!(
            cx,
            b.w.create("c", b"2").await,
            KvError::AlreadyExists,
            "create twice"
        );
        let v2 = cx.ok(
            b.w.update("c", b"3", &v1).await,
            "update with the latest version",
        );
        expect_err!(
            cx,
            b.w.update("c", b"4", &v1).await,
            KvError::RevisionMismatch,
            "update with a stale version"
        );
        ensure!(cx, v2 != v1, "update returned the old version");
    }
    if caps.max_value_size > 0 {
        let big = vec![7u8; caps.max_value_size + 1];
        expect_err!(
            cx,
            b.w.put("big", &big).await,
            KvError::OperationFailed(_),
            "a value over max_value_size"
        );
    }
    Outcome::Passed
}

/// `watcher_metadata`: `KvStore::name`, `KvWatcher::bucket_name` (`None` or the
/// name), `last_revision` and `status().name` / `retention()` agree with the bucket.
pub async fn watcher_metadata(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("watcher_metadata", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::StreamingWatch]) {
        return skip;
    }
    let b = cx.bucket(config()).await;
    let w = b.watcher();
    if let Some(name) = w.bucket_name() {
        ensure!(cx, name == b.name, "bucket_name() {name:?} != {:?}", b.name);
    }
    b.put("a", b"1").await;
    let head = b.put("b", b"2").await;
    if cx.has(Need::Status) {
        let last = cx.ok(w.last_revision().await, "last_revision()");
        ensure!(
            cx,
            last == Some(head),
            "last_revision() = {last:?}, expected {head}"
        );
        let status = b.status().await;
        ensure!(
            cx,
            status.name == b.name,
            "status().name = {:?}",
            status.name
        );
        ensure!(cx, status.last_revision == head, "status {status:?}");
        if cx.has(Need::Retention) {
            let retention = b.retention().await;
            ensure!(
                cx,
                retention == status.retention,
                "retention() {retention:?} != status().retention {:?}",
                status.retention
            );
        }
    }
    Outcome::Passed
}

/// `put_get_entry`: put/get/entry round trip with matching 8-byte versions;
/// revisions start at 1 on a fresh bucket and grow by one per write, per bucket.
pub async fn put_get_entry(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("put_get_entry", conn, profile, hooks);
    let b = cx.bucket(config()).await;
    let v1 = cx.ok(b.w.put("a", b"1").await, "put a");
    ensure!(
        cx,
        v1.as_bytes().len() == 8,
        "version {v1:?} is not 8 bytes"
    );
    ensure!(
        cx,
        v1.as_u64() == Some(1),
        "first revision is {v1:?}, not 1"
    );
    ensure!(cx, b.put("b", b"2").await == 2, "second revision is not 2");
    let v3 = cx.ok(b.w.put("a", b"3").await, "put a again");
    ensure!(
        cx,
        v3.as_u64() == Some(3),
        "third revision is {v3:?}, not 3"
    );
    let got = b.expect_get("a", Some(b"3")).await;
    ensure!(
        cx,
        got.as_ref().map(|e| &e.version) == Some(&v3),
        "get(a) version {:?} != put version {v3:?}",
        got.map(|e| e.version)
    );
    let entry = b.expect_entry("a", Some(b"3")).await;
    ensure!(
        cx,
        entry.as_ref().map(|e| &e.version) == Some(&v3),
        "entry(a) version {:?} != {v3:?}",
        entry.map(|e| e.version)
    );
    let got_b = b.expect_get("b", Some(b"2")).await;
    ensure!(
        cx,
        got_b.and_then(|e| e.version.as_u64()) == Some(2),
        "get(b) has the wrong version"
    );
    b.expect_get("missing", None).await;
    b.expect_entry("missing", None).await;
    // The counter is per bucket.
    let other = cx.bucket(config()).await;
    ensure!(
        cx,
        other.put("a", b"x").await == 1,
        "a second bucket did not start at 1"
    );
    ensure!(
        cx,
        b.put("c", b"4").await == 4,
        "the first bucket did not continue at 4"
    );
    Outcome::Passed
}

/// `revisions_every_write`: every stored write takes the next revision: values, `create`,
/// `update`, delete markers, CAS tombstones and purge markers (docs/semantics.md,
/// "Revisions").
pub async fn revisions_every_write(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("revisions_every_write", conn, profile, hooks);
    let b = cx.bucket(history(5)).await;
    let mut expected = 1;
    ensure!(cx, b.put("a", b"1").await == expected, "put");
    if cx.has(Need::Cas) {
        expected += 1;
        let v = cx.ok(b.w.create("b", b"1").await, "create b");
        ensure!(
            cx,
            v.as_u64() == Some(expected),
            "create got {v:?}, expected {expected}"
        );
        expected += 1;
        let v = cx.ok(
            b.w.update("a", b"2", &VersionToken::from_u64(1)).await,
            "update a",
        );
        ensure!(
            cx,
            v.as_u64() == Some(expected),
            "update got {v:?}, expected {expected}"
        );
        expected += 1;
        b.tombstone("b", 2).await;
    }
    expected += 1;
    b.delete("a").await;
    expected += 1;
    b.delete("never-written").await;
    if cx.has(Need::Purge) {
        expected += 1;
        b.purge("c").await;
    }
    if cx.has(Need::Cas) {
        expected += 1;
        let v = cx.ok(
            b.w.create("a", b"again").await,
            "create over a delete marker",
        );
        ensure!(
            cx,
            v.as_u64() == Some(expected),
            "create got {v:?}, expected {expected}"
        );
    }
    expected += 1;
    let last = b.put("z", b"last").await;
    ensure!(
        cx,
        last == expected,
        "a write after markers and tombstones got revision {last}, expected {expected}"
    );
    if cx.has(Need::Status) {
        let status = b.status().await;
        ensure!(cx, status.last_revision == last, "status {status:?}");
    }
    Outcome::Passed
}

/// `rejected_writes_consume_no_revision`: writes refused for a bad key, a bad token, a CAS
/// conflict or an oversized payload change nothing and take no revision (docs/semantics.md,
/// "Revisions").
pub async fn rejected_writes_consume_no_revision(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("rejected_writes_consume_no_revision", conn, profile, hooks);
    let b = cx.bucket(config()).await;
    let r = b.put("a", b"1").await;
    expect_err!(
        cx,
        b.w.put(".bad", b"x").await,
        KvError::OperationFailed(_),
        "put .bad"
    );
    expect_err!(
        cx,
        b.w.delete("bad.").await,
        KvError::OperationFailed(_),
        "delete bad."
    );
    let too_big = vec![1u8; payload_limit(profile) + 1];
    expect_err!(
        cx,
        b.w.put("big", &too_big).await,
        KvError::OperationFailed(_),
        "put over the payload limit"
    );
    if cx.has(Need::Cas) {
        expect_err!(
            cx,
            b.w.create("a", b"x").await,
            KvError::AlreadyExists,
            "create a"
        );
        expect_err!(
            cx,
            b.w.update("a", b"x", &VersionToken::from_u64(r + 7)).await,
            KvError::RevisionMismatch,
            "update with a wrong revision"
        );
        expect_err!(
            cx,
            b.w.delete_with_version("a", &VersionToken::from_u64(0))
                .await,
            KvError::RevisionMismatch,
            "delete_with_version with 0 on a live key"
        );
        expect_err!(
            cx,
            b.w.update("a", b"x", &VersionToken::unknown()).await,
            KvError::OperationFailed(_),
            "update with an unknown token"
        );
    }
    let next = b.put("b", b"2").await;
    ensure!(
        cx,
        next == r + 1,
        "rejected writes consumed revisions: next write got {next}, expected {}",
        r + 1
    );
    b.expect_get("a", Some(b"1")).await;
    b.expect_get("big", None).await;
    Outcome::Passed
}
