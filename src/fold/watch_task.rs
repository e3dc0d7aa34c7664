//! The watch task of a fold: it runs the watch the scope names and feeds the bounded update
//! channel. When a resumed watch ends with `CursorExpired` it reads the bucket's status,
//! reports both to the fold loop (`ExpiryReport`, fed to the machine as `WatchExpired`)
//! and performs the machine's answer: re-list with a full state-sync watch, or end with
//! the refusal (docs/protocols/fold-machine.md, "Arming and expiry"). It takes no decision
//! of its own: the backend's `ResumeGuard` decides when a cursor is expired, the
//! `FoldMachine` what happens then.

use std::sync::Arc;

use tokio::sync::mpsc::Sender;
use tokio::sync::oneshot;

use super::WatchScope;
use crate::kv::{KvError, KvUpdate, KvWatcher, WatchCursor};
use crate::protocol::identity::{BucketFacts, BucketIdentity};

/// What the watch task does after its expiry report, as the fold loop translates the
/// machine's `AnswerExpiry`.
#[derive(Debug)]
pub(crate) enum ExpiryAnswer {
    /// Run a full state-sync watch of the scope into the same channel.
    Relist,
    /// End the task with this error (it reaches the machine as `WatchEnded{Failed}`).
    End(KvError),
}

/// The watch task's report of an expired resume, answered on `answer`.
pub(crate) struct ExpiryReport {
    /// The cursor the watch resumed from.
    pub(crate) cursor: WatchCursor,
    /// The bucket's identity read at start.
    pub(crate) started_on: Option<BucketIdentity>,
    /// A status reading taken after the expiry.
    pub(crate) bucket: Option<BucketFacts>,
    /// Where the fold loop sends the machine's answer.
    pub(crate) answer: oneshot::Sender<ExpiryAnswer>,
}

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
/// An expired cursor is reported on `expiry` with the identity read at start
/// (`started_on`) and a fresh status reading (a failed reading ends the task with
/// its error); the task then does what the machine answered. Updates forwarded
/// before the expiry are already in `tx`, ahead of anything a re-list sends.
pub(crate) async fn watch_task(
    watcher: Arc<dyn KvWatcher>,
    scope: WatchScope,
    resume: Option<WatchCursor>,
    started_on: Option<BucketIdentity>,
    expiry: Sender<ExpiryReport>,
    tx: Sender<KvUpdate>,
) -> Result<(), KvError> {
    let resume = resume.filter(|c| !c.is_none());
    let Some(cursor) = resume else {
        return full_watch(&*watcher, &scope, tx).await;
    };
    match resumed_watch(&*watcher, &scope, &cursor, tx.clone()).await {
        Err(KvError::CursorExpired) => {
            let bucket = watcher.status().await?.as_ref().map(BucketFacts::of_status);
            let (answer, answered) = oneshot::channel();
            let report = ExpiryReport {
                cursor,
                started_on,
                bucket,
                answer,
            };
            let gone = || {
                KvError::WatchError(
                    "the fold loop ended before answering the cursor expiry".to_string(),
                )
            };
            if expiry.send(report).await.is_err() {
                return Err(gone());
            }
            match answered.await.map_err(|_| gone())? {
                ExpiryAnswer::Relist => full_watch(&*watcher, &scope, tx).await,
                ExpiryAnswer::End(error) => Err(error),
            }
        }
        other => other,
    }
}
