//! The watch task of a fold: it runs the watch the scope names and feeds the bounded update
//! channel. With `ExpiryRepair::None` (the only mode this version arms), an expired cursor
//! falls back to a full state-sync watch with a warning (docs/repair.md, "What this version
//! does: `ExpiryRepair::None`": re-list only). No decision about resume safety is taken
//! here: the backend's `ResumeGuard` decides when a cursor is expired.

use std::sync::Arc;

use tokio::sync::mpsc::Sender;

use super::WatchScope;
use super::identity::check_expired;
use crate::kv::{KvError, KvUpdate, KvWatcher, WatchCursor};
use crate::protocol::identity::BucketIdentity;

async fn full_watch(
    watcher: &dyn KvWatcher,
    scope: &WatchScope,
    tx: Sender<KvUpdate>,
) -> Result<(), KvError> {
    match scope {
        WatchScope::All => watcher.watch_all(tx).await,
        WatchScope::Prefix(p) => watcher.watch_prefix(p, tx).await,
        WatchScope::Prefixes(ps) => {
            let refs: Vec<&str> = ps.iter().map(String::as_str).collect();
            watcher.watch_prefixes(&refs, tx).await
        }
    }
}

async fn resumed_watch(
    watcher: &dyn KvWatcher,
    scope: &WatchScope,
    cursor: &WatchCursor,
    tx: Sender<KvUpdate>,
) -> Result<(), KvError> {
    match scope {
        WatchScope::All => watcher.watch_all_from(cursor, tx).await,
        WatchScope::Prefix(p) => watcher.watch_prefix_from(p, cursor, tx).await,
        WatchScope::Prefixes(ps) => {
            let refs: Vec<&str> = ps.iter().map(String::as_str).collect();
            watcher.watch_prefixes_from(&refs, cursor, tx).await
        }
    }
}

/// Runs the watch of `scope` from `resume` (or state-sync without one) into `tx`.
///
/// An expired cursor re-lists only when `protocol::identity::judge_expired` says
/// the bucket is still the one the run started on (`started_on`) and the cursor
/// is not ahead of it; otherwise the task ends with the identity refusal, so the
/// cursor never moves backward onto another bucket's revisions.
pub(crate) async fn watch_task(
    watcher: Arc<dyn KvWatcher>,
    scope: WatchScope,
    resume: Option<WatchCursor>,
    started_on: Option<BucketIdentity>,
    repair_armed: bool,
    tx: Sender<KvUpdate>,
) -> Result<(), KvError> {
    let resume = resume.filter(|c| !c.is_none());
    let Some(cursor) = resume else {
        return full_watch(&*watcher, &scope, tx).await;
    };
    match resumed_watch(&*watcher, &scope, &cursor, tx.clone()).await {
        Err(KvError::CursorExpired) => {
            check_expired(&*watcher, &cursor, started_on.as_ref(), repair_armed).await?;
            tracing::warn!(
                target: "kvfold::repair",
                cursor = cursor.rank(),
                "watch cursor expired; re-listing with a full state-sync watch (ExpiryRepair::None): \
                 keys deleted while their markers were evicted may stay in the fold"
            );
            full_watch(&*watcher, &scope, tx).await
        }
        other => other,
    }
}
