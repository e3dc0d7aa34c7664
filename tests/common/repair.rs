//! Helpers for the repair tests (`tests/fold_repair*.rs`): a fold of a whole bucket
//! into an append log that stops at a target revision (exporting an artifact there
//! when asked), and what to read back from it.
#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvfold::{
    AppendLogSnapshot, BatchConfig, ExpiryRepair, ExportRequest, KvStore, KvUpdate, SnapshotStore,
    WatchCursor, WatchEnd, WatchScope, watch_applied_owned,
};
use tokio::sync::{mpsc, oneshot, watch};

/// How long a repair test waits for a run.
pub const WAIT: Duration = Duration::from_secs(30);

/// The batching every repair test folds with.
pub fn batch() -> BatchConfig {
    BatchConfig {
        window: Duration::from_millis(2),
        max: 64,
        channel_capacity: 16,
    }
}

/// A new (or existing) append log at `path`.
pub fn open_store(path: &Path) -> AppendLogSnapshot {
    AppendLogSnapshot::open(path, 1 << 20).expect("opens").1
}

/// Every key the store holds, ascending.
pub fn fold_keys(store: &AppendLogSnapshot) -> Vec<String> {
    store
        .range("")
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect()
}

/// A relist's or restore's delete: the key with an unknown version.
pub fn is_synthetic_delete_of(update: &KvUpdate, key: &str) -> bool {
    matches!(update, KvUpdate::Delete { key: k, version } if k == key && version.as_u64().is_none())
}

/// Folds the whole bucket from `resume` with `repair` until `on_applied` reaches
/// `until` (or the run ends by itself); with `export_to`, exports an artifact there
/// once it has, before stopping. Returns the end and every update `apply` saw.
pub async fn fold_until(
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
    // `None`: the run ended by itself before reaching `until`.
    let reached = tokio::time::timeout(WAIT, reached_rx.recv())
        .await
        .expect("the fold reaches its target or ends");
    if reached.is_some()
        && let Some(dest) = export_to
    {
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
    let _ = stop_tx.send(true);
    let end = tokio::time::timeout(WAIT, run).await.unwrap().unwrap();
    let seen = seen.lock().unwrap().clone();
    (end, seen)
}

/// A replica folds the bucket into a new store at `path` up to `until` and goes away:
/// its resume cursor.
pub async fn fold_and_leave(bucket: &Arc<dyn KvStore>, path: &Path, until: u64) -> WatchCursor {
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

/// Another replica folds the bucket into a new store at `store_path` up to `until`,
/// exports an artifact into `dest` and stops.
pub async fn export_at(bucket: &Arc<dyn KvStore>, store_path: &Path, dest: &Path, until: u64) {
    let (end, _) = fold_until(
        bucket,
        None,
        ExpiryRepair::None,
        open_store(store_path),
        until,
        Some(dest),
    )
    .await;
    assert!(end.result.is_ok(), "{:?}", end.result);
}
