//! Cursor-expiry repair live against a real nats-server (docs/repair.md): a replica
//! away while its cursor's successor left the stream (superseded writes, a purged key)
//! repairs by a relist (the key listing is the truth on a bucket without age or
//! discard-old limits) or by a restore from an artifact another replica exported.
#![cfg(feature = "nats")]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::nats::{NatsServer, connected};
use kvfold::{
    AppendLogSnapshot, Connection, DirRestore, ExpiryRepair, ExportRequest, KvStore, KvUpdate,
    RestoreSource, SnapshotStore, WatchCursor, WatchEnd, WatchScope, watch_applied_owned,
};
use tokio::sync::{mpsc, oneshot, watch};

const WAIT: Duration = Duration::from_secs(30);

fn batch() -> kvfold::BatchConfig {
    kvfold::BatchConfig {
        window: Duration::from_millis(5),
        max: 64,
        channel_capacity: 64,
    }
}

fn open_store(path: &Path) -> AppendLogSnapshot {
    AppendLogSnapshot::open(path, 1 << 20).expect("opens").1
}

fn fold_keys(store: &AppendLogSnapshot) -> Vec<String> {
    store
        .range("")
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect()
}

fn is_synthetic_delete_of(update: &KvUpdate, key: &str) -> bool {
    matches!(update, KvUpdate::Delete { key: k, version } if k == key && version.as_u64().is_none())
}

/// Folds the whole bucket from `resume` with `repair` until `on_applied` reaches `until`;
/// with `export_to`, exports an artifact there once it has, before stopping.
async fn fold_until(
    bucket: &Arc<dyn KvStore>,
    resume: Option<WatchCursor>,
    repair: ExpiryRepair<AppendLogSnapshot>,
    store: AppendLogSnapshot,
    until: u64,
    export_to: Option<&Path>,
) -> (WatchEnd<AppendLogSnapshot>, Vec<KvUpdate>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let applied = Arc::clone(&seen);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (reached_tx, mut reached_rx) = mpsc::unbounded_channel();
    let (exports_tx, exports_rx) = mpsc::channel(1);
    let run = tokio::spawn(watch_applied_owned(
        bucket.watcher().unwrap(),
        WatchScope::All,
        resume,
        repair,
        Some(store),
        Some(exports_rx),
        batch(),
        |u: &KvUpdate| Some(u.clone()),
        move |updates: Vec<KvUpdate>| applied.lock().unwrap().extend(updates),
        move |c: WatchCursor| {
            if c.rank() >= until {
                let _ = reached_tx.send(());
            }
        },
        stop_rx,
    ));
    tokio::time::timeout(WAIT, reached_rx.recv())
        .await
        .expect("the fold reaches its target")
        .expect("the run is still going");
    if let Some(dest) = export_to {
        let (reply, replied) = oneshot::channel();
        exports_tx
            .send(ExportRequest {
                dest_dir: dest.to_path_buf(),
                reply,
            })
            .await
            .unwrap();
        let manifest = tokio::time::timeout(WAIT, replied)
            .await
            .unwrap()
            .unwrap()
            .expect("the export succeeds");
        assert_eq!(manifest.cursor.rank(), until);
    }
    stop_tx.send(true).unwrap();
    let end = tokio::time::timeout(WAIT, run).await.unwrap().unwrap();
    let seen = seen.lock().unwrap().clone();
    (end, seen)
}

/// A replica folds the bucket into a new store at `path` up to `until` and goes away:
/// its resume cursor.
async fn fold_and_leave(bucket: &Arc<dyn KvStore>, path: &Path, until: u64) -> WatchCursor {
    let (end, _) = fold_until(
        bucket,
        None,
        ExpiryRepair::None,
        open_store(path),
        until,
        None,
    )
    .await;
    let cursor = end.result.expect("clean stop");
    assert_eq!(cursor.rank(), until);
    cursor
}

async fn history_1_bucket(conn: &kvfold::NatsConnection, name: &str) -> Arc<dyn KvStore> {
    conn.store_with_config(common::config::bucket(name, 1))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_on_nats_removes_a_key_purged_while_the_cursor_was_expired() {
    let server = NatsServer::start();
    let conn = connected(server.url()).await;
    let bucket = history_1_bucket(&conn, "relist").await;
    let w = bucket.writer().unwrap();
    w.put("a", b"1").await.unwrap(); // 1
    w.put("b", b"1").await.unwrap(); // 2
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    let cursor = fold_and_leave(&bucket, &path, 2).await;
    // Away: `a` deleted then purged (its marker gone), `b` rewritten: the stream now
    // starts after the cursor's successor.
    w.delete("a").await.unwrap(); // 3
    w.put("b", b"2").await.unwrap(); // 4
    bucket
        .purge_writer()
        .expect("NATS purges")
        .purge("a")
        .await
        .unwrap(); // 5

    let (end, seen) = fold_until(
        &bucket,
        Some(cursor),
        ExpiryRepair::Relist(bucket.reader()),
        open_store(&path),
        5,
        None,
    )
    .await;
    assert!(end.result.is_ok(), "{:?}", end.result);
    assert!(
        seen.iter().any(|u| is_synthetic_delete_of(u, "a")),
        "the relist deleted a before the re-list: {seen:?}"
    );
    let store = end.store.expect("store back");
    assert_eq!(fold_keys(&store), ["b"]);
    assert_eq!(store.cursor().rank(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_on_nats_takes_the_artifact_and_resumes_after_it() {
    let server = NatsServer::start();
    let conn = connected(server.url()).await;
    let bucket = history_1_bucket(&conn, "restore").await;
    let w = bucket.writer().unwrap();
    w.put("a", b"1").await.unwrap(); // 1
    w.put("b", b"1").await.unwrap(); // 2
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    let cursor = fold_and_leave(&bucket, &path, 2).await;
    w.put("c", b"1").await.unwrap(); // 3
    w.delete("a").await.unwrap(); // 4
    // Another replica exports at 4.
    let artifacts = tempfile::tempdir().unwrap();
    let (end, _) = fold_until(
        &bucket,
        None,
        ExpiryRepair::None,
        open_store(&dir.path().join("exporter.snap")),
        4,
        Some(&artifacts.path().join("at-4")),
    )
    .await;
    assert!(end.result.is_ok(), "{:?}", end.result);
    w.put("b", b"2").await.unwrap(); // 5
    w.put("c", b"2").await.unwrap(); // 6
    bucket
        .purge_writer()
        .expect("NATS purges")
        .purge("a")
        .await
        .unwrap(); // 7

    let source: Arc<dyn RestoreSource<AppendLogSnapshot>> =
        Arc::new(DirRestore::new(artifacts.path()));
    let (end, seen) = fold_until(
        &bucket,
        Some(cursor),
        ExpiryRepair::Restore {
            reader: bucket.reader(),
            restore: source,
        },
        open_store(&path),
        7,
        None,
    )
    .await;
    assert!(end.result.is_ok(), "{:?}", end.result);
    let c_from_artifact = seen
        .iter()
        .position(
            |u| matches!(u, KvUpdate::Put(e) if e.key == "c" && e.version.as_u64() == Some(3)),
        )
        .expect("c taken from the artifact");
    let a_deleted = seen
        .iter()
        .position(|u| is_synthetic_delete_of(u, "a"))
        .expect("a deleted by the restore");
    assert!(c_from_artifact < a_deleted, "puts, then deletes: {seen:?}");
    let store = end.store.expect("store back");
    assert_eq!(fold_keys(&store), ["b", "c"]);
    assert_eq!(store.cursor().rank(), 7);
    let c = store.get("c").unwrap().expect("c");
    assert_eq!(
        c.value, b"2",
        "the resume delivered the write after the artifact"
    );
}
