//! `watch_applied`: a watch whose cursor moves only after the application has
//! applied what it covers (fold.md). The executor around `protocol::fold`: it owns
//! channels, timers and blocking tasks, and takes no decision of its own.

mod config;
mod identity;
mod progress;
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
/// Batches updates by `config.window` or `config.max`, hands each batch to
/// `apply`, then persists the raw updates and the cursor into `store` (when given)
/// and calls `on_applied` — never before `apply` returned. Serves `exports`
/// between flushes. Returns the applied cursor on shutdown (`true` sent on
/// `shutdown`, or its sender dropped) or when the watch ends; the store is closed
/// off the runtime (at most 30 s). See the crate docs for the drive loop.
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
