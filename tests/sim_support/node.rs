//! A fold process of the simulation (`Node`) and a run of the real
//! `watch_applied_owned` on it, wired to the board's closures.

use std::path::PathBuf;
use std::sync::Arc;

use kvfold::{
    BatchConfig, ExpiryRepair, ExportRequest, KvUpdate, KvWatcher, WatchCursor, WatchEnd,
    WatchScope, watch_applied_owned,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::board::{Item, Shared, lock};
use super::store::SimStore;

/// A run of `watch_applied_owned` on a node: its task, its shutdown sender and
/// its export sender.
pub struct Running {
    pub handle: JoinHandle<WatchEnd<SimStore>>,
    pub shutdown: watch::Sender<bool>,
    pub exports: mpsc::Sender<ExportRequest>,
}

/// A fold process: its store file, the store while no run holds it, and the run.
pub struct Node {
    pub id: usize,
    pub path: PathBuf,
    pub store: Option<SimStore>,
    pub resume: Option<WatchCursor>,
    pub run: Option<Running>,
}

/// Spawns a run of the real executor on `node` (taking its store), with the
/// board's closures.
pub fn spawn_run(
    node: &mut Node,
    watcher: Arc<dyn KvWatcher>,
    scope: WatchScope,
    config: BatchConfig,
    repair: ExpiryRepair<SimStore>,
    board: &Shared,
) {
    lock(board).begin_run(node.id);
    let id = node.id;
    let (b_parse, b_apply, b_applied) = (Arc::clone(board), Arc::clone(board), Arc::clone(board));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (exports, exports_rx) = mpsc::channel(1);
    let handle = tokio::spawn(watch_applied_owned(
        watcher,
        scope,
        node.resume.clone(),
        repair,
        node.store.take(),
        Some(exports_rx),
        config,
        move |u: &KvUpdate| lock(&b_parse).parse(id, u),
        move |items: Vec<Item>| lock(&b_apply).apply(id, items),
        move |c: WatchCursor| lock(&b_applied).on_applied(id, c),
        shutdown_rx,
    ));
    node.run = Some(Running {
        handle,
        shutdown,
        exports,
    });
}
