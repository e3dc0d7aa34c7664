//! Cursor-expiry repair live against a real nats-server (docs/protocols/repair.md): a replica
//! away while its cursor's successor left the stream (superseded writes, a purged key)
//! repairs by a relist (the key listing is the truth on a bucket without age or
//! discard-old limits) or by a restore from an artifact another replica exported.
#![cfg(feature = "nats")]

mod common;

use std::sync::Arc;

use common::nats::{NatsServer, connected};
use common::repair::{fold_and_leave, fold_keys, fold_until, is_synthetic_delete_of, open_store};
use kvfold::{
    AppendLogSnapshot, Connection, DirRestore, ExpiryRepair, KvStore, KvUpdate, RestoreSource,
    SnapshotStore,
};

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
