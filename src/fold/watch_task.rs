//! The watch task of a fold: the executor of `protocol::repair::RepairMachine`
//! (docs/protocols/repair-machine.md). It runs the watch the machine starts, reads
//! retention, hands repairs to the fold loop and reports what happened; every decision
//! (when to poll, which repair, whether an artifact may be restored) is the machine's.
//! An expired resume is first judged by the fold machine (bucket identity, row K1).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc::Sender;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::WatchScope;
use crate::kv::{KvError, KvReader, KvUpdate, KvWatcher, WatchCursor};
use crate::protocol::identity::{BucketFacts, BucketIdentity};
use crate::protocol::repair::{
    ArtifactView, NoticeLevel, RepairCommand, RepairEvent, RepairMachine, RepairNotice,
    RepairStart, Scratch,
};
use crate::protocol::time::Millis;
use crate::repair::{ExpiryRepair, RestoreSource, RestoredFold};

/// What the watch task does after its expiry report, as the fold loop translates the
/// fold machine's `AnswerExpiry`.
#[derive(Debug)]
pub(crate) enum ExpiryAnswer {
    /// Same bucket: the repair machine handles the expiry (re-list or repair).
    Proceed,
    /// End the task with this error (it reaches the fold machine as `WatchEnded{Failed}`).
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

/// A repair handed from the watch task to the fold loop (fed to the fold machine as
/// `RepairRequested`).
pub(crate) enum RepairRequest<S> {
    /// The bucket was seen evicting current values: record the memo.
    Evicting,
    /// Diff the fold against the key listing; answer on `ack` when done.
    Relist {
        reader: Arc<dyn KvReader>,
        scratch: Option<PathBuf>,
        ack: oneshot::Sender<()>,
    },
    /// Restore the fold from `restored`; answer with the new cursor.
    Restore {
        restored: RestoredFold<S>,
        reader: Arc<dyn KvReader>,
        watcher: Arc<dyn KvWatcher>,
        reply: oneshot::Sender<Result<WatchCursor, KvError>>,
    },
}

/// What a repair needs from the caller's `ExpiryRepair`.
pub(crate) struct RepairPayload<S> {
    pub(crate) reader: Option<Arc<dyn KvReader>>,
    pub(crate) restore: Option<Arc<dyn RestoreSource<S>>>,
}

impl<S> RepairPayload<S> {
    /// What `repair` carries for the watch task.
    pub(crate) fn of(repair: ExpiryRepair<S>) -> Self {
        match repair {
            ExpiryRepair::None => Self {
                reader: None,
                restore: None,
            },
            ExpiryRepair::Relist(reader) => Self {
                reader: Some(reader),
                restore: None,
            },
            ExpiryRepair::Restore { reader, restore } | ExpiryRepair::Auto { reader, restore } => {
                Self {
                    reader: Some(reader),
                    restore: Some(restore),
                }
            }
        }
    }
}

type WatchFuture = Pin<Box<dyn Future<Output = Result<(), KvError>> + Send>>;

fn start_watch(
    watcher: &Arc<dyn KvWatcher>,
    scope: &WatchScope,
    from: Option<WatchCursor>,
    tx: Sender<KvUpdate>,
) -> WatchFuture {
    let watcher = Arc::clone(watcher);
    let scope = scope.clone();
    Box::pin(async move {
        match (&scope, from) {
            (WatchScope::All, None) => watcher.watch_all(tx).await,
            (WatchScope::Prefix(p), None) => watcher.watch_prefix(p, tx).await,
            (WatchScope::Prefixes(ps), None) => {
                let refs: Vec<&str> = ps.iter().map(String::as_str).collect();
                watcher.watch_prefixes(&refs, tx).await
            }
            (WatchScope::All, Some(c)) => watcher.watch_all_from(&c, tx).await,
            (WatchScope::Prefix(p), Some(c)) => watcher.watch_prefix_from(p, &c, tx).await,
            (WatchScope::Prefixes(ps), Some(c)) => {
                let refs: Vec<&str> = ps.iter().map(String::as_str).collect();
                watcher.watch_prefixes_from(&refs, &c, tx).await
            }
        }
    })
}

/// Everything the watch task owns.
pub(crate) struct WatchTask<S> {
    pub(crate) watcher: Arc<dyn KvWatcher>,
    pub(crate) scope: WatchScope,
    pub(crate) start: RepairStart,
    pub(crate) payload: RepairPayload<S>,
    pub(crate) repairs: Option<Sender<RepairRequest<S>>>,
    pub(crate) started_on: Option<BucketIdentity>,
    pub(crate) expiry: Sender<ExpiryReport>,
    pub(crate) tx: Sender<KvUpdate>,
}

fn feed(m: &mut RepairMachine, event: RepairEvent) {
    if let Err(unexpected) = m.handle(event) {
        panic!("watch task executor bug: {unexpected}");
    }
}

/// Runs the repair machine's drive loop until it finishes (docs/protocols/repair-machine.md,
/// "The drive loop").
pub(crate) async fn watch_task<S: Send + 'static>(task: WatchTask<S>) -> Result<(), KvError> {
    let WatchTask {
        watcher,
        scope,
        start,
        payload,
        repairs,
        started_on,
        expiry,
        tx,
    } = task;
    let started = Instant::now();
    let now = move || Millis(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
    let mut m = RepairMachine::new(start);
    feed(&mut m, RepairEvent::Start { now: now() });
    let mut active: Option<(WatchFuture, Option<WatchCursor>)> = None;
    let mut fetched: Option<RestoredFold<S>> = None;
    let poll = tokio::time::sleep_until(started);
    tokio::pin!(poll);
    loop {
        // Notices first, before the command that follows them: a notice queued in the
        // same step as `Finish` (a refusal, say) is logged before the task returns.
        while let Some(command) = {
            emit_notices(&mut m);
            m.poll_command()
        } {
            match command {
                RepairCommand::ReadRetention => {
                    let result = watcher.retention().await;
                    feed(&mut m, RepairEvent::Retention { now: now(), result });
                }
                RepairCommand::StartWatch { from } => {
                    let watch = start_watch(&watcher, &scope, from.clone(), tx.clone());
                    active = Some((watch, from));
                }
                RepairCommand::SendEvicting => {
                    let delivered = match &repairs {
                        Some(repairs) => repairs.send(RepairRequest::Evicting).await.is_ok(),
                        None => false,
                    };
                    feed(
                        &mut m,
                        RepairEvent::EvictingSent {
                            now: now(),
                            delivered,
                        },
                    );
                }
                RepairCommand::SendRelist { scratch } => {
                    let scratch = match scratch {
                        Scratch::RestoreSourceDir => {
                            payload.restore.as_ref().and_then(|r| r.scratch_dir())
                        }
                        Scratch::SystemTemp => None,
                    };
                    // A missing channel or reader, a failed send or a dropped ack: the
                    // fold loop is gone, so the next watch ends at once.
                    if let (Some(repairs), Some(reader)) = (&repairs, &payload.reader) {
                        let (ack, acked) = oneshot::channel();
                        let request = RepairRequest::Relist {
                            reader: Arc::clone(reader),
                            scratch,
                            ack,
                        };
                        if repairs.send(request).await.is_ok() {
                            let _ = acked.await;
                        }
                    }
                    feed(&mut m, RepairEvent::RelistAcked { now: now() });
                }
                RepairCommand::PeekLatest => {
                    let result = match &payload.restore {
                        None => Err("no restore source is configured".to_string()),
                        Some(source) => source
                            .latest()
                            .await
                            .map(|manifest| ArtifactView::of(&manifest))
                            .map_err(|e| e.to_string()),
                    };
                    feed(&mut m, RepairEvent::Latest { now: now(), result });
                }
                RepairCommand::FetchArtifact => {
                    let result = match &payload.restore {
                        None => Err("no restore source is configured".to_string()),
                        Some(source) => match source.fetch().await {
                            Ok(restored) => {
                                let view = ArtifactView::of(restored.manifest());
                                fetched = Some(restored);
                                Ok(view)
                            }
                            Err(e) => Err(e.to_string()),
                        },
                    };
                    feed(&mut m, RepairEvent::Fetched { now: now(), result });
                }
                RepairCommand::DropFetched => {
                    if let Some(restored) = fetched.take() {
                        drop_off_runtime(restored).await;
                    }
                }
                RepairCommand::SendRestore => {
                    let result = send_restore(&repairs, &payload, &watcher, fetched.take()).await;
                    feed(&mut m, RepairEvent::RestoreReplied { now: now(), result });
                }
                RepairCommand::Finish(result) => {
                    if let Some(restored) = fetched.take() {
                        drop_off_runtime(restored).await;
                    }
                    return result;
                }
            }
        }
        emit_notices(&mut m);
        // Only `Watching` waits on the world; every other phase issued a command above.
        let Some((watch, from)) = active.as_mut() else {
            panic!("watch task executor bug: the repair machine waits with no watch running");
        };
        let deadline = m.poll_timeout();
        if let Some(at) = deadline {
            poll.as_mut()
                .reset(started + std::time::Duration::from_millis(at.0));
        }
        tokio::select! {
            biased;
            result = watch => {
                let from = from.take();
                active = None;
                let result = match (result, from) {
                    (Err(KvError::CursorExpired), Some(cursor)) => {
                        judge_expiry(&*watcher, cursor, started_on.clone(), &expiry).await
                    }
                    (result, _) => result,
                };
                feed(&mut m, RepairEvent::WatchEnded { now: now(), result });
            }
            () = &mut poll, if deadline.is_some() => {
                feed(&mut m, RepairEvent::PollDue { now: now() });
            }
        }
    }
}

/// The fold machine judges an expired resume first (row K1: same bucket, or refuse).
/// `Proceed` hands the expiry to the repair machine unchanged; `End(e)` ends the watch
/// with `e`.
async fn judge_expiry(
    watcher: &dyn KvWatcher,
    cursor: WatchCursor,
    started_on: Option<BucketIdentity>,
    expiry: &Sender<ExpiryReport>,
) -> Result<(), KvError> {
    let bucket = watcher.status().await?.as_ref().map(BucketFacts::of_status);
    let (answer, answered) = oneshot::channel();
    let report = ExpiryReport {
        cursor,
        started_on,
        bucket,
        answer,
    };
    let gone = || {
        KvError::WatchError("the fold loop ended before answering the cursor expiry".to_string())
    };
    if expiry.send(report).await.is_err() {
        return Err(gone());
    }
    match answered.await.map_err(|_| gone())? {
        ExpiryAnswer::Proceed => Err(KvError::CursorExpired),
        ExpiryAnswer::End(error) => Err(error),
    }
}

async fn send_restore<S: Send + 'static>(
    repairs: &Option<Sender<RepairRequest<S>>>,
    payload: &RepairPayload<S>,
    watcher: &Arc<dyn KvWatcher>,
    restored: Option<RestoredFold<S>>,
) -> Result<WatchCursor, KvError> {
    let ended = || KvError::WatchError("fold loop ended during a restore".to_string());
    let (Some(repairs), Some(reader), Some(restored)) = (repairs, &payload.reader, restored) else {
        return Err(ended());
    };
    let (reply, replied) = oneshot::channel();
    let request = RepairRequest::Restore {
        restored,
        reader: Arc::clone(reader),
        watcher: Arc::clone(watcher),
        reply,
    };
    if let Err(unsent) = repairs.send(request).await {
        if let RepairRequest::Restore { restored, .. } = unsent.0 {
            drop_off_runtime(restored).await;
        }
        return Err(ended());
    }
    replied.await.unwrap_or_else(|_| {
        Err(KvError::WatchError(
            "fold loop dropped a restore reply".to_string(),
        ))
    })
}

/// Drops an artifact fold on a blocking thread (it may close files and remove a
/// scratch directory); a panic there is logged and ignored.
pub(crate) async fn drop_off_runtime<S: Send + 'static>(restored: RestoredFold<S>) {
    if let Err(e) = tokio::task::spawn_blocking(move || drop(restored)).await {
        tracing::warn!(target: "kvfold::repair", error = %e, "dropping an artifact fold failed");
    }
}

/// Logs every queued repair notice, oldest first.
fn emit_notices(m: &mut RepairMachine) {
    while let Some(notice) = m.poll_notice() {
        emit(&notice);
    }
}

/// Each repair notice as one tracing event at the level the machine gives it (target
/// `kvfold::repair`).
fn emit(notice: &RepairNotice) {
    let text = match notice {
        RepairNotice::UnanchoredFold => {
            "the fold holds data but no cursor; repairing it like an expired cursor first".to_string()
        }
        RepairNotice::EvictedBucketSeeding => {
            "no cursor and the bucket already evicted current values; seeding the fold from an artifact".to_string()
        }
        RepairNotice::EvictedBucketNoRepair => {
            "no cursor, no repair armed, and the bucket already evicted current values: the re-list \
             lacks whatever aged out and nothing will repair it (wire a store and ExpiryRepair::Auto)"
                .to_string()
        }
        RepairNotice::EvictionSeen => {
            "the bucket evicted current values; this fold will never trust a key listing again".to_string()
        }
        RepairNotice::RetentionPollFailed { error } => {
            format!("reading the bucket's retention failed ({error}); retrying at the next poll")
        }
        RepairNotice::CursorExpired { cursor } => {
            // The one notice with a field the tests and operators filter on.
            tracing::warn!(target: "kvfold::repair", cursor = cursor.rank(), "watch cursor expired");
            return;
        }
        RepairNotice::ReListOnly => "no expiry repair armed: re-listing with a full state-sync watch; \
             keys deleted while their markers were evicted may stay in the fold"
            .to_string(),
        RepairNotice::RelistPlanned => {
            "repairing the expired cursor by a relist: diff against the key listing, then re-list".to_string()
        }
        RepairNotice::RestorePlanned => {
            "repairing the expired cursor by a restore from the newest artifact".to_string()
        }
        RepairNotice::RelistRefused => "relist refused: the bucket evicts (or evicted) current values, \
             so its key listing cannot tell deleted keys from aged-out ones"
            .to_string(),
        RepairNotice::RestoreRefused { reason } => format!("restore refused: {reason}"),
        RepairNotice::RestoreStarting {
            cursor,
            created_at_unix,
            first,
        } => {
            let age_secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |now| now.as_secs().saturating_sub(*created_at_unix));
            format!(
                "restoring from the artifact at cursor {} (exported {age_secs} s ago; bucket floor {first:?})",
                cursor.rank()
            )
        }
    };
    match notice.level() {
        NoticeLevel::Info => tracing::info!(target: "kvfold::repair", "{text}"),
        NoticeLevel::Warn => tracing::warn!(target: "kvfold::repair", "{text}"),
        NoticeLevel::Error => tracing::error!(target: "kvfold::repair", "{text}"),
    }
}
