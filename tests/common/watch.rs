//! Spawning a watch of a whole bucket.
#![allow(dead_code)]

use std::sync::Arc;

use kvfold::{KvError, KvStore, KvUpdate, WatchCursor};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A spawned watch: its receiver and its task.
pub type Watch = (mpsc::Receiver<KvUpdate>, JoinHandle<Result<(), KvError>>);

/// Spawns a watch of all of `store` over a channel of `capacity` updates:
/// resumed after revision `from`, or a state-sync watch for `None`.
pub fn watch_all(store: &Arc<dyn KvStore>, from: Option<u64>, capacity: usize) -> Watch {
    let watcher = store.watcher().unwrap();
    let (tx, rx) = mpsc::channel(capacity);
    let task = tokio::spawn(async move {
        match from {
            Some(rev) => {
                watcher
                    .watch_all_from(&WatchCursor::from_u64(rev), tx)
                    .await
            }
            None => watcher.watch_all(tx).await,
        }
    });
    (rx, task)
}
