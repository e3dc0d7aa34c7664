//! Cursor-expiry repair end to end (docs/protocols/repair.md): `watch_applied_owned` on the
//! embedded backend with a real append-log store, a real key listing and real
//! artifacts in a directory. A relist removes keys deleted while the cursor was
//! expired; a relist on a bucket that evicted current values is refused; a restore
//! replaces the fold from the newest artifact and resumes after it; a node with no
//! cursor on an evicted bucket seeds from an artifact; a store holding data without a
//! cursor is relisted before its watch.

use std::sync::Arc;

use kvfold::{
    AppendLogSnapshot, DirRestore, ExpiryRepair, KvError, KvUpdate, MemoryConnection,
    RestoreSource, SnapshotStore, WatchCursor, WatchScope, watch_applied_owned,
};
use tokio::sync::watch;

mod common;

use common::repair::{
    batch, export_at, fold_and_leave, fold_keys, fold_until, memory_bucket as bucket, open_store,
};

fn is_delete_of(update: &KvUpdate, key: &str) -> bool {
    matches!(update, KvUpdate::Delete { key: k, .. } if k == key)
}

#[tokio::test]
async fn a_relist_removes_keys_deleted_while_the_cursor_was_expired() {
    let conn = MemoryConnection::new();
    let bucket = bucket(&conn, "relist", false).await;
    let w = bucket.writer().unwrap();
    w.put("a", b"1").await.unwrap(); // 1
    w.put("b", b"1").await.unwrap(); // 2
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    // The replica folded up to 2, then went away.
    let cursor = fold_and_leave(&bucket, &path, 2).await;
    // While it was away: `a` deleted, `c` created, `b` rewritten; the history
    // below 4 (a's delete marker included) is gone.
    w.delete("a").await.unwrap(); // 3
    w.put("c", b"1").await.unwrap(); // 4
    w.put("b", b"2").await.unwrap(); // 5
    conn.faults().evict_below("relist", 4).unwrap();

    let (end, seen) = fold_until(
        &bucket,
        Some(cursor),
        ExpiryRepair::Relist(bucket.reader()),
        open_store(&path),
        5,
        None,
    )
    .await;
    assert_eq!(end.result.as_ref().map(WatchCursor::rank), Ok(5));
    assert!(
        seen.iter().any(|u| is_delete_of(u, "a")),
        "apply saw the synthetic delete of a: {seen:?}"
    );
    let delete_at = seen.iter().position(|u| is_delete_of(u, "a")).unwrap();
    assert!(
        seen[delete_at..].iter().any(|u| u.key() == "c"),
        "the re-list's puts come after the relist's deletes"
    );
    let store = end.store.expect("store back");
    assert_eq!(fold_keys(&store), ["b", "c"]);
    assert_eq!(store.cursor().rank(), 5);
}

#[tokio::test]
async fn a_relist_on_a_bucket_that_evicted_current_values_is_refused_and_touches_nothing() {
    let conn = MemoryConnection::new();
    let bucket = bucket(&conn, "refuse", true).await;
    let w = bucket.writer().unwrap();
    w.put("a", b"1").await.unwrap(); // 1
    w.put("b", b"1").await.unwrap(); // 2
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    let cursor = fold_and_leave(&bucket, &path, 2).await;
    w.put("c", b"1").await.unwrap(); // 3
    w.put("d", b"1").await.unwrap(); // 4
    conn.faults().evict_below("refuse", 4).unwrap();

    let (end, seen) = fold_until(
        &bucket,
        Some(cursor),
        ExpiryRepair::Relist(bucket.reader()),
        open_store(&path),
        u64::MAX,
        None,
    )
    .await;
    match &end.result {
        Err(KvError::WatchError(m)) => {
            assert!(m.contains("evict"), "{m}");
            assert!(m.contains("Restore") && m.contains("Auto"), "{m}");
        }
        other => panic!("expected the relist refusal, got {other:?}"),
    }
    assert!(seen.is_empty(), "nothing was applied: {seen:?}");
    let store = end.store.expect("store back");
    assert_eq!(end.applied, store.cursor(), "applied is the store's cursor");
    assert_eq!(fold_keys(&store), ["a", "b"]);
    assert_eq!(store.cursor().rank(), 2);
}

#[tokio::test]
async fn a_restore_replaces_the_fold_from_the_newest_artifact_and_resumes_after_it() {
    let conn = MemoryConnection::new();
    let bucket = bucket(&conn, "restore", true).await;
    let w = bucket.writer().unwrap();
    w.put("a", b"1").await.unwrap(); // 1
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    // This replica folded `a` only, then went away.
    let cursor = fold_and_leave(&bucket, &path, 1).await;
    w.put("b", b"1").await.unwrap(); // 2
    w.put("c", b"1").await.unwrap(); // 3
    // Another replica exported at 3.
    let artifacts = tempfile::tempdir().unwrap();
    export_at(
        &bucket,
        &dir.path().join("exporter.snap"),
        &artifacts.path().join("at-3"),
        3,
    )
    .await;
    w.delete("a").await.unwrap(); // 4
    w.put("d", b"1").await.unwrap(); // 5
    conn.faults().evict_below("restore", 4).unwrap();

    let source: Arc<dyn RestoreSource<AppendLogSnapshot>> =
        Arc::new(DirRestore::new(artifacts.path()));
    let (end, seen) = fold_until(
        &bucket,
        Some(cursor),
        ExpiryRepair::Auto {
            reader: bucket.reader(),
            restore: source,
        },
        open_store(&path),
        5,
        None,
    )
    .await;
    assert_eq!(end.result.as_ref().map(WatchCursor::rank), Ok(5));
    let order: Vec<&str> = seen.iter().map(KvUpdate::key).collect();
    assert_eq!(order, ["b", "c", "a", "d"], "restore puts, then the resume");
    assert!(is_delete_of(&seen[2], "a"));
    let store = end.store.expect("store back");
    assert_eq!(fold_keys(&store), ["b", "c", "d"]);
    assert_eq!(store.cursor().rank(), 5);
    assert!(store.cursor().seen_evicting(), "the eviction memo is kept");
}

#[tokio::test]
async fn a_node_without_a_cursor_on_an_evicted_bucket_seeds_from_an_artifact() {
    let conn = MemoryConnection::new();
    let bucket = bucket(&conn, "seed", true).await;
    let w = bucket.writer().unwrap();
    w.put("a", b"1").await.unwrap(); // 1
    w.put("b", b"1").await.unwrap(); // 2
    let dir = tempfile::tempdir().unwrap();
    let artifacts = tempfile::tempdir().unwrap();
    export_at(
        &bucket,
        &dir.path().join("exporter.snap"),
        &artifacts.path().join("at-2"),
        2,
    )
    .await;
    w.put("c", b"1").await.unwrap(); // 3
    // `a`'s only value aged out: a re-list would never deliver it.
    conn.faults().evict_below("seed", 2).unwrap();

    let source: Arc<dyn RestoreSource<AppendLogSnapshot>> =
        Arc::new(DirRestore::new(artifacts.path()));
    let (end, _) = fold_until(
        &bucket,
        None,
        ExpiryRepair::Restore {
            reader: bucket.reader(),
            restore: source,
        },
        open_store(&dir.path().join("fresh.snap")),
        3,
        None,
    )
    .await;
    assert_eq!(end.result.as_ref().map(WatchCursor::rank), Ok(3));
    let store = end.store.expect("store back");
    assert_eq!(
        fold_keys(&store),
        ["a", "b", "c"],
        "a comes from the artifact"
    );
}

#[tokio::test]
async fn a_restore_or_auto_repair_without_a_store_is_refused_at_start() {
    let conn = MemoryConnection::new();
    let bucket = bucket(&conn, "nostore", false).await;
    let artifacts = tempfile::tempdir().unwrap();
    let source: Arc<dyn RestoreSource<AppendLogSnapshot>> =
        Arc::new(DirRestore::new(artifacts.path()));
    for repair in [
        ExpiryRepair::Restore {
            reader: bucket.reader(),
            restore: Arc::clone(&source),
        },
        ExpiryRepair::Auto {
            reader: bucket.reader(),
            restore: Arc::clone(&source),
        },
    ] {
        let (_stop, stop_rx) = watch::channel(false);
        let end = watch_applied_owned(
            bucket.watcher().unwrap(),
            WatchScope::All,
            None,
            repair,
            None::<AppendLogSnapshot>,
            None,
            batch(),
            |u: &KvUpdate| Some(u.clone()),
            |_: Vec<KvUpdate>| {},
            |_: WatchCursor| {},
            stop_rx,
        )
        .await;
        match end.result {
            Err(KvError::WatchError(m)) => assert_eq!(
                m,
                "a restore repair replaces the fold and needs a snapshot store; pass a store \
                 or use ExpiryRepair::None"
            ),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_store_holding_data_without_a_cursor_is_relisted_before_the_watch() {
    let conn = MemoryConnection::new();
    let bucket = bucket(&conn, "unanchored", false).await;
    let w = bucket.writer().unwrap();
    w.put("a", b"1").await.unwrap(); // 1
    w.put("b", b"1").await.unwrap(); // 2
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    // A fold that holds data but no cursor (say, a populated store started without
    // its cursor): `x` is not in the bucket, and a bare re-list never removes it.
    let mut store = open_store(&path);
    let stale = KvUpdate::Put(kvfold::KvEntry {
        key: "x".to_string(),
        value: b"old".to_vec(),
        version: kvfold::VersionToken::from_u64(7),
    });
    store.apply(&[stale], &WatchCursor::none()).unwrap();
    assert_eq!(store.cursor(), WatchCursor::none());

    let (end, seen) = fold_until(
        &bucket,
        None,
        ExpiryRepair::Relist(bucket.reader()),
        store,
        2,
        None,
    )
    .await;
    assert_eq!(end.result.as_ref().map(WatchCursor::rank), Ok(2));
    assert!(
        is_delete_of(&seen[0], "x"),
        "the relist came first: {seen:?}"
    );
    let store = end.store.expect("store back");
    assert_eq!(fold_keys(&store), ["a", "b"]);
}
