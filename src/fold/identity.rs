//! The bucket-identity step of a fold's setup (issue 9, docs/protocols/fold-machine.md
//! "Bucket identity"): read the bucket's status and the store's recorded identity,
//! feed both to `protocol::identity::judge_start`, and carry out its verdict
//! (refuse, or record the identity in the store before the run starts). Takes no
//! decision of its own.

use tokio::task::JoinError;

use crate::kv::{KvError, KvWatcher, WatchCursor};
use crate::protocol::identity::{
    BucketFacts, BucketIdentity, StartFacts, StartVerdict, judge_start,
};
use crate::snapshot::SnapshotStore;

/// Why the identity step ended the run before it started.
pub(crate) struct Refused<S> {
    /// The run's result.
    pub(crate) error: KvError,
    /// The store, or `None` when the task recording into it panicked.
    pub(crate) store: Option<S>,
}

/// Performs the start check. Returns the identity the bucket reported (the
/// machine compares it again when the watch's cursor expires), or the refusal with
/// the store handed back.
///
/// Nothing is read when there is neither a store nor a resume cursor: a fresh
/// full watch cannot skip or mix anything.
pub(crate) async fn check_start<S>(
    watcher: &dyn KvWatcher,
    store: Option<S>,
    resume: Option<&WatchCursor>,
    repair_armed: bool,
) -> Result<(Option<BucketIdentity>, Option<S>), Refused<S>>
where
    S: SnapshotStore + Send + 'static,
{
    let resume = resume.filter(|c| !c.is_none());
    if store.is_none() && resume.is_none() {
        return Ok((None, store));
    }
    let bucket = match watcher.status().await {
        Ok(status) => status.as_ref().map(BucketFacts::of_status),
        Err(error) => return Err(Refused { error, store }),
    };
    let (recorded, holds_data, store_cursor) = match &store {
        None => (None, false, WatchCursor::none()),
        Some(s) => {
            let recorded = match s.bucket_identity() {
                Ok(recorded) => recorded,
                Err(e) => {
                    return Err(Refused {
                        error: KvError::WatchError(format!(
                            "reading the store's bucket identity failed: {e}"
                        )),
                        store,
                    });
                }
            };
            let cursor = s.cursor();
            let holds_data = if cursor.is_none() {
                match s.has_entries() {
                    Ok(has) => has,
                    Err(e) => {
                        return Err(Refused {
                            error: KvError::WatchError(format!(
                                "reading the fold at start failed: {e}"
                            )),
                            store,
                        });
                    }
                }
            } else {
                true
            };
            (recorded, holds_data, cursor)
        }
    };
    let verdict = judge_start(&StartFacts {
        bucket: bucket.as_ref(),
        has_store: store.is_some(),
        store_holds_data: holds_data,
        store_cursor: &store_cursor,
        recorded: recorded.as_ref(),
        resume,
        repair_armed,
    });
    let started_on = bucket.map(|b| b.identity);
    match verdict {
        StartVerdict::Refuse(refusal) => {
            tracing::error!(target: "kvfold::fold", %refusal, "refusing to fold this bucket");
            Err(Refused {
                error: refusal.into(),
                store,
            })
        }
        StartVerdict::Proceed { record, unverified } => {
            if unverified {
                tracing::warn!(
                    target: "kvfold::fold",
                    bucket = ?started_on,
                    "the snapshot store recorded no bucket identity (written by an earlier kvfold, or a store that keeps none): adopting it unverified"
                );
            }
            let store = match (record, store) {
                (Some(identity), Some(s)) => record_identity(s, identity).await?,
                (_, store) => store,
            };
            Ok((started_on, store))
        }
    }
}

/// Records `identity` in the store on a blocking task (it fsyncs).
async fn record_identity<S>(mut store: S, identity: BucketIdentity) -> Result<Option<S>, Refused<S>>
where
    S: SnapshotStore + Send + 'static,
{
    let joined = tokio::task::spawn_blocking(move || {
        let r = store.record_bucket_identity(&identity);
        (store, identity, r)
    })
    .await;
    match joined {
        Ok((store, identity, Ok(()))) => {
            tracing::debug!(target: "kvfold::fold", %identity, "bucket identity recorded");
            Ok(Some(store))
        }
        Ok((store, _, Err(e))) => Err(Refused {
            error: KvError::WatchError(format!("recording the bucket identity failed: {e}")),
            store: Some(store),
        }),
        Err(e) => Err(Refused {
            error: KvError::WatchError(format!("snapshot store task panicked: {}", join_text(e))),
            store: None,
        }),
    }
}

fn join_text(error: JoinError) -> String {
    if error.is_panic() {
        let payload = error.into_panic();
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string())
    } else {
        "task was cancelled".to_string()
    }
}
