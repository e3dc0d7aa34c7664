//! One measured fold: `watch_applied_owned` from a state-sync start until the applied
//! cursor reaches `last`; `parse` keeps nothing and `apply` does nothing, so the figure
//! is the fold's own cost (and the store's, when `with_store`). A fresh
//! `AppendLogSnapshot` (sync off) is opened before the clock starts and closed after it
//! stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kvfold::{
    AppendLogSnapshot, BatchConfig, ExpiryRepair, KvUpdate, KvWatcher, SnapshotStore, WatchCursor,
    WatchScope, watch_applied_owned,
};
use tokio::sync::watch;

/// Folds `watcher` until the applied cursor reaches `last`; returns the elapsed time.
pub async fn fold_once(watcher: Arc<dyn KvWatcher>, last: u64, with_store: bool) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = with_store.then(|| {
        AppendLogSnapshot::load(&dir.path().join("fold.snap"))
            .expect("open a new store")
            .1
    });
    let (shutdown_tx, shutdown) = watch::channel(false);
    let start = Instant::now();
    let end = watch_applied_owned(
        watcher,
        WatchScope::All,
        None,
        ExpiryRepair::None,
        store,
        None,
        BatchConfig::default(),
        |_: &KvUpdate| Some(()),
        |_: Vec<()>| {},
        move |cursor: WatchCursor| {
            if cursor.rank() >= last {
                let _ = shutdown_tx.send(true);
            }
        },
        shutdown,
    )
    .await;
    let elapsed = start.elapsed();
    let cursor = end.result.expect("the fold ends cleanly");
    assert!(cursor.rank() >= last, "the fold covered the bucket");
    if let Some(store) = &end.store {
        assert_eq!(store.cursor().rank(), cursor.rank(), "the store committed");
    }
    drop(end.store);
    elapsed
}
