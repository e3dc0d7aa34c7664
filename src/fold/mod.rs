//! `watch_applied`: a watch whose cursor moves only after the application has applied what
//! it covers (docs/watch-applied.md). The executor around `protocol::fold`: it owns
//! channels, timers and blocking tasks, and takes no decision of its own.

mod config;
mod identity;
mod progress;
mod repair_slot;
mod run;
mod watch_task;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

pub use config::{BatchConfig, WatchScope};
pub use progress::FoldProgress;

use crate::artifact::ExportManifest;
use crate::kv::{KvError, KvUpdate, KvWatcher, WatchCursor};
use crate::repair::ExpiryRepair;
use crate::snapshot::{SnapshotError, SnapshotStore};

/// A request, sent into a running `watch_applied` loop, to export the fold it owns
/// (see [`SnapshotStore::export_to`]). Served between flushes; the watch continues
/// whatever the outcome.
#[derive(Debug)]
pub struct ExportRequest {
    /// Where the artifact is written (absent or an empty directory).
    pub dest_dir: PathBuf,
    /// Receives the manifest, or the export error.
    pub reply: oneshot::Sender<Result<ExportManifest, SnapshotError>>,
}

/// Why an export was not run: a restore kept local keys the bucket still lists live,
/// and the fold has not yet committed their newer writes (docs/protocols/repair.md, "Exports
/// after a restore"). Retry once the applied cursor reached [`until`](Self::until).
///
/// The export reply carries it as `SnapshotError::Io` of kind
/// [`std::io::ErrorKind::WouldBlock`]; [`ExportHeld::of`] finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error(
    "export held: a restore kept listed-live keys; the fold is exact again at revision {until} (committed: {committed})"
)]
pub struct ExportHeld {
    /// The revision the committed cursor must reach before an export runs.
    pub until: u64,
    /// The committed cursor's rank when the export was refused.
    pub committed: u64,
}

impl ExportHeld {
    /// The hold behind `error`, when it is one.
    pub fn of(error: &SnapshotError) -> Option<&ExportHeld> {
        match error {
            SnapshotError::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                io.get_ref()?.downcast_ref::<ExportHeld>()
            }
            _ => None,
        }
    }
}

impl From<ExportHeld> for SnapshotError {
    fn from(held: ExportHeld) -> Self {
        SnapshotError::Io(std::io::Error::new(std::io::ErrorKind::WouldBlock, held))
    }
}

/// How a `watch_applied_owned` run ended.
pub struct WatchEnd<S> {
    /// `Ok(cursor)` on a clean end or a shutdown; the error otherwise.
    pub result: Result<WatchCursor, KvError>,
    /// The cursor to pass as `resume` next time, error or not (with a store: the
    /// store's committed cursor).
    pub applied: WatchCursor,
    /// The store, intact; `None` when none was given or a blocking task holding it panicked.
    pub store: Option<S>,
}

/// Drives a watch with cursor-after-apply semantics.
///
/// Batches updates by `config.window` or `config.max`, hands each batch to `apply`, then
/// persists the raw updates and the cursor into `store` (when given) and calls `on_applied`
/// — never before `apply` returned. Serves `exports` between flushes. Returns the applied
/// cursor on shutdown (`true` sent on `shutdown`, or its sender dropped) or when the watch
/// ends; the store is closed off the runtime (at most 30 s). See the crate docs for the
/// drive loop, and docs/watch-applied.md for the contract.
///
/// # Examples
///
/// Fold a bucket of the embedded backend into an in-memory map, without a snapshot store,
/// and stop once everything written is applied:
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::{Arc, Mutex};
///
/// use kvfold::{
///     AppendLogSnapshot, BatchConfig, Connection, ExpiryRepair, KvUpdate, MemoryConnection,
///     StoreConfig, WatchCursor, WatchScope, watch_applied,
/// };
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), kvfold::KvError> {
/// let conn = MemoryConnection::new();
/// conn.connect().await?;
/// let bucket = conn
///     .store_with_config(StoreConfig { name: "docs".into(), ..StoreConfig::default() })
///     .await?;
/// let writer = bucket.writer().expect("the memory backend writes");
/// writer.put("color", b"blue").await?;
/// writer.put("size", b"L").await?;
/// writer.delete("size").await?; // revision 3
///
/// // The domain: the latest value of every live key.
/// let domain = Arc::new(Mutex::new(BTreeMap::<String, Vec<u8>>::new()));
/// let fold_into = Arc::clone(&domain);
/// let (applied_tx, mut applied_rx) = tokio::sync::mpsc::channel::<WatchCursor>(16);
/// let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
/// let fold = tokio::spawn(watch_applied(
///     bucket.watcher().expect("the memory backend watches"),
///     WatchScope::All,
///     None,                      // no cursor yet: start with a state-sync watch
///     ExpiryRepair::None,
///     None::<AppendLogSnapshot>, // no snapshot store: the domain is the fold
///     None,                      // no export requests
///     BatchConfig::default(),
///     |update: &KvUpdate| Some(update.clone()),
///     move |batch: Vec<KvUpdate>| {
///         let mut domain = fold_into.lock().unwrap();
///         for update in batch {
///             match update {
///                 KvUpdate::Put(entry) => {
///                     domain.insert(entry.key, entry.value);
///                 }
///                 other => {
///                     domain.remove(other.key());
///                 }
///             }
///         }
///     },
///     // Called only after `apply` returned for everything the cursor covers.
///     move |cursor: WatchCursor| {
///         let _ = applied_tx.try_send(cursor);
///     },
///     shutdown,
/// ));
///
/// while let Some(cursor) = applied_rx.recv().await {
///     if cursor.rank() >= 3 {
///         break;
///     }
/// }
/// shutdown_tx.send(true).expect("the fold is running");
/// let cursor = fold.await.expect("the fold did not panic")?;
/// assert_eq!(cursor.rank(), 3); // resume from here next time
/// let domain = domain.lock().unwrap();
/// assert_eq!(domain.get("color").map(Vec::as_slice), Some(&b"blue"[..]));
/// assert!(!domain.contains_key("size"));
/// # Ok(())
/// # }
/// ```
#[allow(clippy::too_many_arguments)]
pub async fn watch_applied<U, S, P, A, O, R>(
    watcher: Arc<dyn KvWatcher>,
    scope: WatchScope,
    resume: Option<WatchCursor>,
    repair: R,
    store: Option<S>,
    exports: Option<mpsc::Receiver<ExportRequest>>,
    config: BatchConfig,
    parse: P,
    apply: A,
    on_applied: O,
    shutdown: watch::Receiver<bool>,
) -> Result<WatchCursor, KvError>
where
    U: Send,
    S: SnapshotStore + Send + 'static,
    P: FnMut(&KvUpdate) -> Option<U> + Send,
    A: FnMut(Vec<U>) + Send,
    O: FnMut(WatchCursor) + Send,
    R: Into<ExpiryRepair<S>>,
{
    let end = watch_applied_owned(
        watcher, scope, resume, repair, store, exports, config, parse, apply, on_applied, shutdown,
    )
    .await;
    if let Some(store) = end.store {
        run::close_store(store).await;
    }
    end.result
}

/// The same loop as [`watch_applied`], handing the store back in [`WatchEnd`] on
/// every exit for an in-process resume (`resume = Some(end.applied)`).
#[allow(clippy::too_many_arguments)]
pub async fn watch_applied_owned<U, S, P, A, O, R>(
    watcher: Arc<dyn KvWatcher>,
    scope: WatchScope,
    resume: Option<WatchCursor>,
    repair: R,
    store: Option<S>,
    exports: Option<mpsc::Receiver<ExportRequest>>,
    config: BatchConfig,
    parse: P,
    apply: A,
    on_applied: O,
    shutdown: watch::Receiver<bool>,
) -> WatchEnd<S>
where
    U: Send,
    S: SnapshotStore + Send + 'static,
    P: FnMut(&KvUpdate) -> Option<U> + Send,
    A: FnMut(Vec<U>) + Send,
    O: FnMut(WatchCursor) + Send,
    R: Into<ExpiryRepair<S>>,
{
    run::run_owned(
        watcher, scope, resume, repair, store, exports, config, parse, apply, on_applied, shutdown,
    )
    .await
}
