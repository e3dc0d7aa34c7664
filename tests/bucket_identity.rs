//! A fold checks which bucket it folds (issue 9, defect 9): a store records the
//! identity of its bucket (name + creation time) on its first run, every artifact
//! names it in `MANIFEST.json`, and `watch_applied` refuses, with an identity
//! error and without touching the store or the bucket, to resume or start a fold
//! on another bucket or on a recreated one, and to resume a cursor that is ahead
//! of the bucket. The scenarios are generic over `Connection` and run on the
//! embedded backend here and on a live nats-server (`nats_*` tests, feature
//! `nats`).

#[cfg(feature = "nats")]
mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvfold::protocol::identity::{BucketIdentity, is_identity_refusal};
use kvfold::protocol::manifest::decode_manifest_with_bucket;
use kvfold::{
    AppendLogSnapshot, BatchConfig, Connection, ExportRequest, KvError, KvStore, KvUpdate,
    KvWatcher, MANIFEST_FILE, MemoryConnection, SnapshotStore, StoreConfig, WatchCursor, WatchEnd,
    WatchScope, watch_applied_owned,
};
use tokio::sync::{mpsc, oneshot, watch};

const THRESHOLD: u64 = 1 << 20;

fn batch() -> BatchConfig {
    common::fold::batch_config(5, 64, 256)
}

fn config(name: &str) -> StoreConfig {
    common::config::bucket(name, 5)
}

async fn bucket(conn: &dyn Connection, name: &str) -> Arc<dyn KvStore> {
    conn.store_with_config(config(name))
        .await
        .unwrap_or_else(|e| panic!("bucket {name}: {e}"))
}

/// Writes `n` keys `<prefix><i>`; returns the last revision.
async fn put_n(store: &Arc<dyn KvStore>, prefix: &str, n: usize) -> u64 {
    let writer = store.writer().expect("a writer");
    let mut last = 0;
    for i in 0..n {
        last = writer
            .put(&format!("{prefix}{i}"), format!("v{i}").as_bytes())
            .await
            .expect("put")
            .as_u64()
            .expect("revisions");
    }
    last
}

fn watcher(store: &Arc<dyn KvStore>) -> Arc<dyn KvWatcher> {
    store.watcher().expect("a watcher")
}

/// What `apply` saw.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<KvUpdate>>>);

impl Seen {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// One run of `watch_applied_owned`, ended by a shutdown once `until` revisions
/// are applied (or by the run itself when it refuses). Bounded: 20 s.
async fn run(
    watcher: Arc<dyn KvWatcher>,
    resume: Option<WatchCursor>,
    store: AppendLogSnapshot,
    until: u64,
    exports: Option<mpsc::Receiver<ExportRequest>>,
) -> (WatchEnd<AppendLogSnapshot>, Seen) {
    let seen = Seen::default();
    let applied = seen.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let stopper = Arc::clone(&stop_tx);
    let fut = watch_applied_owned(
        watcher,
        WatchScope::All,
        resume,
        None,
        Some(store),
        exports,
        batch(),
        |u: &KvUpdate| Some(u.clone()),
        move |updates: Vec<KvUpdate>| applied.0.lock().unwrap().extend(updates),
        move |c: WatchCursor| {
            if c.rank() >= until {
                let _ = stopper.send(true);
            }
        },
        stop_rx,
    );
    let end = tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("the run ends within 20 s");
    drop(stop_tx);
    (end, seen)
}

fn open(path: &Path) -> (WatchCursor, AppendLogSnapshot) {
    AppendLogSnapshot::open(path, THRESHOLD).expect("opens")
}

fn assert_identity_refusal(end: &WatchEnd<AppendLogSnapshot>) {
    match &end.result {
        Err(e) if is_identity_refusal(e) => {}
        other => panic!("expected a bucket identity refusal, got {other:?}"),
    }
}

async fn identity_of(store: &Arc<dyn KvStore>) -> BucketIdentity {
    let status = watcher(store)
        .status()
        .await
        .expect("status")
        .expect("the backend reports a status");
    BucketIdentity::of_status(&status)
}

/// Folds `cfg` (9 writes) into a fresh store at `path`; returns the store and
/// `cfg`'s identity.
async fn fold_cfg(conn: &dyn Connection, path: &Path) -> (AppendLogSnapshot, BucketIdentity) {
    let cfg = bucket(conn, "cfg").await;
    assert_eq!(put_n(&cfg, "cfg.", 9).await, 9);
    let (_, store) = open(path);
    let (end, seen) = run(watcher(&cfg), None, store, 9, None).await;
    assert_eq!(end.result, Ok(WatchCursor::from_u64(9)));
    assert_eq!(seen.count(), 9);
    let store = end.store.expect("store back");
    let id = identity_of(&cfg).await;
    assert_eq!(
        store.bucket_identity().expect("reads"),
        Some(id.clone()),
        "the store recorded cfg's identity"
    );
    (store, id)
}

/// The store's log and identity files, byte for byte.
fn files_of(path: &Path) -> (Vec<u8>, Vec<u8>) {
    let mut sidecar = path.as_os_str().to_owned();
    sidecar.push(".bucket");
    (
        std::fs::read(path).expect("log"),
        std::fs::read(PathBuf::from(sidecar)).expect("identity record"),
    )
}

// ---- scenarios (generic over the backend) ----

async fn cursor_from_another_bucket_is_refused(conn: &dyn Connection, dir: &Path) {
    let path = dir.join("fold.snap");
    let (store, cfg_id) = fold_cfg(conn, &path).await;
    drop(store);
    let big = bucket(conn, "big").await;
    assert_eq!(put_n(&big, "big.", 20).await, 20);
    let (cursor, store) = open(&path);
    let before = files_of(&path);
    assert_eq!(cursor, WatchCursor::from_u64(9));
    let (end, seen) = run(watcher(&big), Some(cursor.clone()), store, 20, None).await;
    assert_identity_refusal(&end);
    assert_eq!(seen.count(), 0, "nothing of big was applied");
    assert_eq!(end.applied, cursor);
    let store = end.store.expect("the store is handed back");
    assert_eq!(store.cursor(), cursor);
    assert_eq!(store.range("big.").unwrap().len(), 0);
    assert_eq!(store.bucket_identity().unwrap(), Some(cfg_id));
    drop(store);
    assert_eq!(files_of(&path), before, "the store's files are untouched");
    assert_eq!(
        watcher(&big).last_revision().await.unwrap(),
        Some(20),
        "big untouched"
    );
}

async fn store_of_another_bucket_without_a_cursor_is_refused(conn: &dyn Connection, dir: &Path) {
    let path = dir.join("fold.snap");
    let (store, _) = fold_cfg(conn, &path).await;
    drop(store);
    let other = bucket(conn, "other").await;
    put_n(&other, "other.", 3).await;
    let (_, store) = open(&path);
    let before = files_of(&path);
    let (end, seen) = run(watcher(&other), None, store, 3, None).await;
    assert_identity_refusal(&end);
    assert_eq!(seen.count(), 0);
    let store = end.store.expect("store back");
    assert_eq!(store.range("other.").unwrap().len(), 0, "no keys mixed in");
    assert_eq!(store.range("cfg.").unwrap().len(), 9);
    drop(store);
    assert_eq!(files_of(&path), before);
}

async fn imported_artifact_resumed_on_another_bucket_is_refused(conn: &dyn Connection, dir: &Path) {
    let path = dir.join("fold.snap");
    let (store, cfg_id) = fold_cfg(conn, &path).await;
    let cfg = bucket(conn, "cfg").await;
    // Export through a running fold (the manifest is stamped with the scope).
    let (export_tx, export_rx) = mpsc::channel(1);
    let artifact = dir.join("artifact");
    let (reply_tx, reply_rx) = oneshot::channel();
    export_tx
        .send(ExportRequest {
            dest_dir: artifact.clone(),
            reply: reply_tx,
        })
        .await
        .unwrap();
    let exporter = tokio::spawn(run(
        watcher(&cfg),
        Some(store.cursor()),
        store,
        10,
        Some(export_rx),
    ));
    let manifest = tokio::time::timeout(Duration::from_secs(20), reply_rx)
        .await
        .expect("export within 20 s")
        .expect("reply")
        .expect("export ok");
    assert_eq!(manifest.cursor, WatchCursor::from_u64(9));
    put_n(&cfg, "late.", 1).await; // lets the exporting run reach revision 10 and stop
    let (end, _) = exporter.await.unwrap();
    assert_eq!(end.result, Ok(WatchCursor::from_u64(10)));
    let bytes = std::fs::read(artifact.join(MANIFEST_FILE)).unwrap();
    let (_, named) = decode_manifest_with_bucket(&bytes).expect("valid manifest");
    assert_eq!(named, Some(cfg_id.clone()), "the manifest names the bucket");

    let replica = dir.join("replica.snap");
    let (cursor, imported) =
        AppendLogSnapshot::import(&artifact, &replica, THRESHOLD).expect("imports");
    assert_eq!(cursor, WatchCursor::from_u64(9));
    assert_eq!(imported.bucket_identity().unwrap(), Some(cfg_id));
    let big = bucket(conn, "big").await;
    put_n(&big, "big.", 20).await;
    let (end, seen) = run(watcher(&big), Some(cursor.clone()), imported, 20, None).await;
    assert_identity_refusal(&end);
    assert_eq!(seen.count(), 0);
    assert_eq!(end.store.expect("store back").cursor(), cursor);

    // The same replica resumes on its own bucket: only the tail (revision 10).
    let (cursor, imported) = open(&replica);
    let (end, seen) = run(watcher(&cfg), Some(cursor), imported, 10, None).await;
    assert_eq!(end.result, Ok(WatchCursor::from_u64(10)));
    assert_eq!(seen.count(), 1);
}

/// `recreate` deletes `cfg` and creates it again, empty.
async fn cursor_ahead_of_a_recreated_bucket_is_refused<F, Fut>(
    conn: &dyn Connection,
    dir: &Path,
    recreate: F,
) where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let path = dir.join("fold.snap");
    let (store, _) = fold_cfg(conn, &path).await;
    let cfg = bucket(conn, "cfg").await;
    put_n(&cfg, "more.", 21).await;
    let (end, _) = run(watcher(&cfg), Some(store.cursor()), store, 30, None).await;
    assert_eq!(end.result, Ok(WatchCursor::from_u64(30)));
    drop(end.store);

    recreate().await;
    let cfg = bucket(conn, "cfg").await;
    assert_eq!(put_n(&cfg, "new.", 5).await, 5, "revisions start over");

    // With the store (its identity names the earlier bucket; its cursor is ahead).
    let (cursor, store) = open(&path);
    let before = files_of(&path);
    assert_eq!(cursor, WatchCursor::from_u64(30));
    let (end, seen) = run(watcher(&cfg), Some(cursor.clone()), store, 5, None).await;
    assert_identity_refusal(&end);
    assert_eq!(seen.count(), 0);
    assert_eq!(end.applied, cursor, "the committed cursor never moves back");
    let store = end.store.expect("store back");
    assert_eq!(store.cursor(), cursor);
    assert_eq!(store.range("new.").unwrap().len(), 0);
    drop(store);
    assert_eq!(files_of(&path), before);

    // A bare cursor (no store) ahead of the stream is refused as well.
    let (end, seen) = run_without_store(watcher(&cfg), Some(cursor)).await;
    assert!(
        matches!(&end, Err(e) if is_identity_refusal(e)),
        "got {end:?}"
    );
    assert_eq!(seen.count(), 0);
}

async fn run_without_store(
    watcher: Arc<dyn KvWatcher>,
    resume: Option<WatchCursor>,
) -> (Result<WatchCursor, KvError>, Seen) {
    let seen = Seen::default();
    let applied = seen.clone();
    let (_stop_tx, stop_rx) = watch::channel(false);
    let fut = watch_applied_owned::<KvUpdate, AppendLogSnapshot, _, _, _, _>(
        watcher,
        WatchScope::All,
        resume,
        None,
        None,
        None,
        batch(),
        |u: &KvUpdate| Some(u.clone()),
        move |updates: Vec<KvUpdate>| applied.0.lock().unwrap().extend(updates),
        |_c: WatchCursor| {},
        stop_rx,
    );
    let end = tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .expect("a refused run ends at once");
    (end.result, seen)
}

async fn an_empty_store_is_rebound_and_the_same_bucket_resumes(conn: &dyn Connection, dir: &Path) {
    let path = dir.join("fold.snap");
    let (store, cfg_id) = fold_cfg(conn, &path).await;
    drop(store);
    // The log is deleted, its identity record left behind: the store is empty
    // and is rebound to whatever bucket it folds next.
    std::fs::remove_file(&path).unwrap();
    let big = bucket(conn, "big").await;
    put_n(&big, "big.", 4).await;
    let (cursor, store) = open(&path);
    assert!(cursor.is_none());
    assert_eq!(store.bucket_identity().unwrap(), Some(cfg_id));
    let (end, seen) = run(watcher(&big), None, store, 4, None).await;
    assert_eq!(end.result, Ok(WatchCursor::from_u64(4)));
    assert_eq!(seen.count(), 4);
    let store = end.store.unwrap();
    assert_eq!(
        store.bucket_identity().unwrap(),
        Some(identity_of(&big).await)
    );
}

// ---- embedded backend ----

async fn memory() -> MemoryConnection {
    let conn = MemoryConnection::new();
    conn.connect().await.expect("connects");
    conn
}

#[tokio::test]
async fn memory_a_cursor_from_another_bucket_is_refused_and_both_stay_untouched() {
    let dir = tempfile::tempdir().unwrap();
    cursor_from_another_bucket_is_refused(&memory().await, dir.path()).await;
}

#[tokio::test]
async fn memory_a_store_of_another_bucket_started_without_a_cursor_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    store_of_another_bucket_without_a_cursor_is_refused(&memory().await, dir.path()).await;
}

#[tokio::test]
async fn memory_an_imported_artifact_resumed_on_another_bucket_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    imported_artifact_resumed_on_another_bucket_is_refused(&memory().await, dir.path()).await;
}

#[tokio::test]
async fn memory_a_cursor_ahead_of_a_recreated_bucket_is_refused_and_never_moves_back() {
    let dir = tempfile::tempdir().unwrap();
    let conn = memory().await;
    let faults = conn.faults();
    cursor_ahead_of_a_recreated_bucket_is_refused(&conn, dir.path(), || async move {
        faults
            .recreate_bucket("cfg", None, None)
            .expect("recreates");
    })
    .await;
}

#[tokio::test]
async fn memory_an_empty_store_is_rebound_to_the_bucket_it_folds() {
    let dir = tempfile::tempdir().unwrap();
    an_empty_store_is_rebound_and_the_same_bucket_resumes(&memory().await, dir.path()).await;
}

// ---- live nats-server: two buckets on one server ----

#[cfg(feature = "nats")]
#[path = "bucket_identity/nats.rs"]
mod nats;

// ---- the expiry path: a resumed watch reports `CursorExpired` ----

#[path = "bucket_identity/expiry.rs"]
mod expiry;

// ---- the append log's identity record ----

#[path = "bucket_identity/record.rs"]
mod record;

// ---- the recorded bytes: never a panic, canonical round trip ----

#[path = "bucket_identity/bytes.rs"]
mod bytes;
