//! Helpers for driving `watch_applied`: batch configs, a memory bucket, the
//! recording closures of a [`Probe`], spawning a run, and export requests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvfold::{
    AppendLogSnapshot, BatchConfig, Connection, ExportManifest, ExportRequest, KvError, KvStore,
    KvUpdate, KvWatcher, MemoryConnection, SnapshotError, SnapshotStore, WatchCursor, WatchEnd,
    WatchScope, watch_applied_owned,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::store::Shared;

/// Revisions `apply` saw, in order.
pub type Revs = Arc<Mutex<Vec<u64>>>;

/// An hour in ms: a batch window that never fires by itself.
pub const HOUR: u64 = 3_600_000;

/// Batches flushed every `window_ms` or at `max` parsed updates, over a
/// channel of `channel_capacity` updates.
pub fn batch_config(window_ms: u64, max: usize, channel_capacity: usize) -> BatchConfig {
    BatchConfig {
        window: Duration::from_millis(window_ms),
        max,
        channel_capacity,
    }
}

/// [`batch_config`] over a 16-slot channel.
pub fn cfg(window_ms: u64, max: usize) -> BatchConfig {
    batch_config(window_ms, max, 16)
}

/// A live fold's batches: a 5 ms window, at most 100 updates, a 256-slot
/// channel.
pub fn batch() -> BatchConfig {
    batch_config(5, 100, 256)
}

/// What `parse`, `apply` and `on_applied` saw, with the tokio time (ms since
/// the probe was made) of each apply / on_applied.
#[derive(Clone)]
pub struct Probe {
    t0: Instant,
    parses: Arc<AtomicUsize>,
    batches: Shared<(u64, Vec<String>)>,
    cursors: Arc<Mutex<Vec<(u64, WatchCursor)>>>,
}

impl Probe {
    pub fn new() -> Self {
        Probe {
            t0: Instant::now(),
            parses: Arc::default(),
            batches: Arc::default(),
            cursors: Arc::default(),
        }
    }

    pub fn ms(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_millis()).unwrap()
    }

    /// Parses an update to its key; `reject` updates parse to `None`.
    pub fn parse(
        &self,
        reject: fn(&KvUpdate) -> bool,
    ) -> impl FnMut(&KvUpdate) -> Option<String> + Send + 'static {
        let parses = Arc::clone(&self.parses);
        move |u: &KvUpdate| {
            parses.fetch_add(1, Ordering::SeqCst);
            (!reject(u)).then(|| u.key().to_string())
        }
    }

    pub fn apply(&self) -> impl FnMut(Vec<String>) + Send + 'static {
        let me = self.clone();
        move |batch: Vec<String>| {
            let at = me.ms();
            me.batches.lock().unwrap().push((at, batch));
        }
    }

    pub fn on_applied(&self) -> impl FnMut(WatchCursor) + Send + 'static {
        let me = self.clone();
        move |cursor: WatchCursor| {
            let at = me.ms();
            me.cursors.lock().unwrap().push((at, cursor));
        }
    }

    pub fn parses(&self) -> usize {
        self.parses.load(Ordering::SeqCst)
    }

    pub fn batches(&self) -> Vec<Vec<String>> {
        self.batches
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }

    pub fn timed_batches(&self) -> Vec<(u64, Vec<String>)> {
        self.batches.lock().unwrap().clone()
    }

    pub fn ranks(&self) -> Vec<u64> {
        self.cursors
            .lock()
            .unwrap()
            .iter()
            .map(|(_, c)| c.rank())
            .collect()
    }

    pub fn timed_ranks(&self) -> Vec<(u64, u64)> {
        self.cursors
            .lock()
            .unwrap()
            .iter()
            .map(|(t, c)| (*t, c.rank()))
            .collect()
    }
}

/// A `reject` for [`Probe::parse`] that rejects nothing.
pub fn accept_all(_: &KvUpdate) -> bool {
    false
}

/// Owned copies of `names`.
pub fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_string()).collect()
}

/// Spawns `watch_applied_owned` with the probe's closures; returns the run and
/// its shutdown sender.
#[allow(clippy::too_many_arguments)]
pub fn start<S: SnapshotStore + Send + 'static>(
    watcher: Arc<dyn KvWatcher>,
    scope: WatchScope,
    resume: Option<WatchCursor>,
    store: Option<S>,
    exports: Option<mpsc::Receiver<ExportRequest>>,
    config: BatchConfig,
    probe: &Probe,
    reject: fn(&KvUpdate) -> bool,
) -> (JoinHandle<WatchEnd<S>>, watch::Sender<bool>) {
    let (shutdown_tx, shutdown) = watch::channel(false);
    let run = tokio::spawn(watch_applied_owned(
        watcher,
        scope,
        resume,
        None,
        store,
        exports,
        config,
        probe.parse(reject),
        probe.apply(),
        probe.on_applied(),
        shutdown,
    ));
    (run, shutdown_tx)
}

/// A fresh `AppendLogSnapshot` in `dir/name`.
pub fn append_log(dir: &Path, name: &str) -> kvfold::AppendLogSnapshot {
    let (cursor, store) = kvfold::AppendLogSnapshot::load(&dir.join(name)).unwrap();
    assert!(cursor.is_none(), "a fresh store");
    store
}

/// Sends one export request for `dest` and waits for its answer.
pub async fn export(
    tx: &mpsc::Sender<ExportRequest>,
    dest: &Path,
) -> Result<ExportManifest, SnapshotError> {
    let (reply, answer) = oneshot::channel();
    tx.send(ExportRequest {
        dest_dir: dest.to_path_buf(),
        reply,
    })
    .await
    .unwrap();
    answer.await.expect("the export is answered")
}

/// The `scope` object of the manifest written at `dest`.
pub fn manifest_scope_on_disk(dest: &Path) -> serde_json::Value {
    let text = std::fs::read(dest.join(kvfold::MANIFEST_FILE)).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&text).unwrap();
    json["scope"].clone()
}

/// A connected memory backend and its bucket `name` (history 10, no byte
/// limit).
pub async fn memory_bucket(name: &str) -> (MemoryConnection, Arc<dyn KvStore>) {
    let conn = MemoryConnection::new();
    conn.connect().await.unwrap();
    let store = conn
        .store_with_config(super::config::bucket(name, 10))
        .await
        .unwrap();
    (conn, store)
}

/// Runs a fold as a service would: whenever a run ends with an error, it is
/// restarted (after 100 ms) with `resume = end.applied` and the store it
/// handed back, starting from the append log at `path`; checks that every run
/// hands the store back at its cursor. Returns the store and every error a
/// run ended with, once a run ends `Ok`.
pub async fn supervise<F, Fut>(path: &Path, mut run: F) -> (AppendLogSnapshot, Vec<KvError>)
where
    F: FnMut(WatchCursor, AppendLogSnapshot) -> Fut,
    Fut: Future<Output = WatchEnd<AppendLogSnapshot>>,
{
    let (mut resume, mut store) = AppendLogSnapshot::load(path).unwrap();
    let mut errors = Vec::new();
    loop {
        let end = run(resume, store).await;
        store = end.store.expect("the store comes back from every run");
        assert_eq!(end.applied, store.cursor(), "applied is the store's cursor");
        match end.result {
            Ok(_) => return (store, errors),
            Err(e) => {
                println!(
                    "fold run ended with {e:?}; restarting from {}",
                    end.applied.rank()
                );
                errors.push(e);
                resume = end.applied;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
