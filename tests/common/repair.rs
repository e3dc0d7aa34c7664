//! Helpers for the repair tests (`tests/fold_repair*.rs`): a fold of a whole bucket
//! into an append log that stops at a target revision (exporting an artifact there
//! when asked), a fold kept running in the background ([`Replica`]) whose `apply` a
//! test can hold ([`ApplyGate`]), and what to read back from a fold or a bucket.
#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use kvfold::{
    AppendLogSnapshot, BatchConfig, Connection, DiscardPolicy, ExpiryRepair, ExportManifest,
    ExportRequest, KvStore, KvUpdate, MemoryConnection, SnapshotStore, StoreConfig, WatchCursor,
    WatchEnd, WatchScope, watch_applied_owned,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::wait::wait_until;

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

/// A bucket on the embedded backend `conn` (connected first); `evicting` makes it one
/// whose limits can remove current values (discard-old under a size limit), so its key
/// listing is not the truth once it evicted.
pub async fn memory_bucket(
    conn: &MemoryConnection,
    name: &str,
    evicting: bool,
) -> Arc<dyn KvStore> {
    conn.connect().await.unwrap();
    let config = StoreConfig {
        name: name.to_string(),
        max_bytes: evicting.then_some(1 << 20),
        discard: if evicting {
            DiscardPolicy::Old
        } else {
            DiscardPolicy::New
        },
        ..StoreConfig::default()
    };
    conn.store_with_config(config).await.unwrap()
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
    let replica = Replica::start(bucket, resume, repair, store);
    wait_until("the fold to reach its target or end", WAIT, || {
        replica.applied() >= until || replica.run.is_finished()
    })
    .await;
    // Not reached: the run ended by itself first.
    if replica.applied() >= until
        && let Some(dest) = export_to
    {
        let manifest = replica.export(dest).await;
        assert_eq!(manifest.cursor.rank(), until);
    }
    replica.stop().await
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

/// One key of a fold or a bucket as the repair tests compare them: key, value and
/// revision.
pub type Entry = (String, Vec<u8>, Option<u64>);

/// Every entry the store holds, ascending by key.
pub fn fold_entries(store: &AppendLogSnapshot) -> Vec<Entry> {
    store
        .range("")
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.value, e.version.as_u64()))
        .collect()
}

/// Every live entry of the bucket (its key listing with values), ascending by key.
pub async fn bucket_entries(bucket: &Arc<dyn KvStore>) -> Vec<Entry> {
    let mut entries: Vec<Entry> = bucket
        .reader()
        .scan("")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.value, e.version.as_u64()))
        .collect();
    entries.sort();
    entries
}

/// Holds every `apply` call of a [`Replica`] started with it while closed. The fold
/// stops taking updates, its channel fills, and the watch stops reading its consumer.
/// The wait runs in `tokio::task::block_in_place`, which hands the worker's queued
/// tasks to another thread (a plain blocking wait would strand a task in the worker's
/// unstealable next-task slot, say the client's connection task): the runtime must be
/// a multi-thread one.
#[derive(Default)]
pub struct ApplyGate {
    closed: Mutex<bool>,
    opened: Condvar,
    holding: AtomicBool,
}

impl ApplyGate {
    /// A closed gate.
    pub fn closed() -> Arc<Self> {
        let gate = Self::default();
        *gate.closed.lock().unwrap() = true;
        Arc::new(gate)
    }

    /// Lets every held and later `apply` through.
    pub fn open(&self) {
        *self.closed.lock().unwrap() = false;
        self.opened.notify_all();
    }

    /// Whether an `apply` has waited at the closed gate.
    pub fn has_held(&self) -> bool {
        self.holding.load(Ordering::SeqCst)
    }

    /// A guard that opens the gate when dropped: a test that panics while the gate
    /// is closed must not leave a runtime worker parked in `apply` forever (the
    /// runtime's shutdown would wait for it).
    pub fn open_on_drop(self: &Arc<Self>) -> OpenOnDrop {
        OpenOnDrop(Arc::clone(self))
    }

    fn pass(&self) {
        if !*self.closed.lock().unwrap() {
            return;
        }
        tokio::task::block_in_place(|| {
            let mut closed = self.closed.lock().unwrap();
            while *closed {
                self.holding.store(true, Ordering::SeqCst);
                closed = self.opened.wait(closed).unwrap();
            }
        });
    }
}

/// Opens its [`ApplyGate`] when dropped.
pub struct OpenOnDrop(Arc<ApplyGate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// A fold of the whole bucket running in the background: a replica (or an exporter)
/// the test watches apply, asks for an artifact and stops.
pub struct Replica {
    applied: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<KvUpdate>>>,
    stop: watch::Sender<bool>,
    exports: mpsc::Sender<ExportRequest>,
    run: JoinHandle<WatchEnd<AppendLogSnapshot>>,
}

impl Replica {
    /// Starts folding `bucket` from `resume` with `repair` into `store`.
    pub fn start(
        bucket: &Arc<dyn KvStore>,
        resume: Option<WatchCursor>,
        repair: ExpiryRepair<AppendLogSnapshot>,
        store: AppendLogSnapshot,
    ) -> Self {
        Self::start_gated(bucket, resume, repair, store, None)
    }

    /// [`Replica::start`] with every `apply` passing `gate` first.
    pub fn start_gated(
        bucket: &Arc<dyn KvStore>,
        resume: Option<WatchCursor>,
        repair: ExpiryRepair<AppendLogSnapshot>,
        store: AppendLogSnapshot,
        gate: Option<Arc<ApplyGate>>,
    ) -> Self {
        let applied = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop, stop_rx) = watch::channel(false);
        let (exports, exports_rx) = mpsc::channel(1);
        let (ranks, kept) = (Arc::clone(&applied), Arc::clone(&seen));
        let run = tokio::spawn(watch_applied_owned(
            bucket.watcher().unwrap(),
            WatchScope::All,
            resume,
            repair,
            Some(store),
            Some(exports_rx),
            batch(),
            |u: &KvUpdate| Some(u.clone()),
            move |updates: Vec<KvUpdate>| {
                if let Some(gate) = &gate {
                    gate.pass();
                }
                kept.lock().unwrap().extend(updates);
            },
            move |c: WatchCursor| ranks.store(c.rank(), Ordering::SeqCst),
            stop_rx,
        ));
        Self {
            applied,
            seen,
            stop,
            exports,
            run,
        }
    }

    /// The rank `on_applied` last reported (0 before the first).
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::SeqCst)
    }

    /// Every update `apply` saw so far.
    pub fn seen(&self) -> Vec<KvUpdate> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (bounded by [`WAIT`]) until `on_applied` reached `rank`; panics if the
    /// run ended first.
    pub async fn wait_applied(&self, rank: u64) {
        wait_until(&format!("the fold to apply revision {rank}"), WAIT, || {
            self.applied() >= rank || self.run.is_finished()
        })
        .await;
        assert!(
            self.applied() >= rank,
            "the fold ended at {} before applying revision {rank}",
            self.applied()
        );
    }

    /// Exports an artifact into `dest` (bounded by [`WAIT`]).
    pub async fn export(&self, dest: &Path) -> ExportManifest {
        let (reply, replied) = oneshot::channel();
        self.exports
            .send(ExportRequest {
                dest_dir: dest.to_path_buf(),
                reply,
            })
            .await
            .expect("the fold takes export requests");
        tokio::time::timeout(WAIT, replied)
            .await
            .expect("the export finishes")
            .expect("the fold answers the export")
            .expect("the export succeeds")
    }

    /// Asks the fold to stop; its end and every update `apply` saw.
    pub async fn stop(self) -> (WatchEnd<AppendLogSnapshot>, Vec<KvUpdate>) {
        let _ = self.stop.send(true);
        self.ended().await
    }

    /// Waits (bounded by [`WAIT`]) for the run to end by itself.
    pub async fn ended(self) -> (WatchEnd<AppendLogSnapshot>, Vec<KvUpdate>) {
        let end = tokio::time::timeout(WAIT, self.run)
            .await
            .expect("the fold ends")
            .expect("the fold does not panic");
        let seen = self.seen.lock().unwrap().clone();
        (end, seen)
    }
}
