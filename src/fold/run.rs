//! The `watch_applied` executor (docs/watch-applied.md): it performs exactly what the
//! `FoldMachine` commands, feeds completions back, and selects on what the machine wants.
//! Every decision (when to flush, cursor moves, re-queue, fail-stop) is the machine's.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use super::repair_slot::RepairSlot;
use super::watch_task::{
    ExpiryAnswer, ExpiryReport, RepairPayload, RepairRequest, WatchTask, watch_task,
};
use super::{ExportHeld, ExportRequest, WatchEnd, WatchScope};
use crate::artifact::{ExportManifest, stamp_scope};
use crate::fold::BatchConfig;
use crate::kv::{KvError, KvUpdate, KvWatcher, WatchCursor};
use crate::protocol::fold::{
    ExpiryAction, ExportReply, FoldCommand, FoldConfig, FoldEvent, FoldMachine, FoldNotice,
    Pending, StoreOutcome, TaskEnd, TaskOutcome, Wants, arm_expiry, effective_mode,
};
use crate::protocol::repair::RepairStart;
use crate::protocol::time::Millis;
use crate::repair::ExpiryRepair;
use crate::snapshot::{SnapshotError, SnapshotStore};

/// Aborts the watch task when the run's future is dropped or unwinds.
struct AbortOnDrop(Option<JoinHandle<Result<(), KvError>>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
        }
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

fn join_panic(error: tokio::task::JoinError) -> String {
    if error.is_panic() {
        panic_text(&*error.into_panic())
    } else {
        "task was cancelled".to_string()
    }
}

fn scope_label(scope: &WatchScope) -> String {
    format!("{:?}", scope.prefixes())
}

fn emit(notice: FoldNotice, export_slot: &ExportSlot) {
    match notice {
        FoldNotice::Flushed {
            parsed,
            raw,
            cursor,
        } => {
            tracing::debug!(target: "kvfold::fold", parsed, raw, cursor = cursor.rank(), "flushed");
        }
        FoldNotice::Committed { cursor, raw } => {
            tracing::debug!(target: "kvfold::fold", cursor = cursor.rank(), raw, "committed");
        }
        FoldNotice::StoreApplyFailed { streak, error } => {
            tracing::warn!(target: "kvfold::fold", streak, %error, "store apply failed; batch re-queued");
        }
        FoldNotice::FailStop { streak, error } => {
            tracing::error!(target: "kvfold::fold", streak, %error, "store apply failed too often; stopping");
        }
        FoldNotice::CursorMovedBack { from, to } => {
            tracing::warn!(target: "kvfold::fold", from = from.rank(), to = to.rank(), "cursor moved back");
        }
        FoldNotice::ResumeMismatch { resume, store } => {
            tracing::warn!(target: "kvfold::fold", resume = resume.rank(), store = store.rank(), "resume cursor differs from the store's");
        }
        FoldNotice::EvictionRecorded { cursor } => {
            tracing::info!(target: "kvfold::fold", cursor = cursor.rank(), "eviction memo recorded");
        }
        FoldNotice::RepairStarted { kind, applied } => {
            tracing::warn!(target: "kvfold::fold", ?kind, applied = applied.rank(), "repair started");
        }
        FoldNotice::StaleKeys { count } => {
            if count > 0 {
                tracing::warn!(target: "kvfold::fold", count, "stale keys found");
            }
        }
        FoldNotice::RestoreApplying {
            from,
            to,
            rewrite,
            delete,
        } => {
            tracing::info!(target: "kvfold::fold", from = from.rank(), to = to.rank(), rewrite, delete, "restoring");
        }
        FoldNotice::RepairRefused(reason) => {
            tracing::error!(target: "kvfold::fold", %reason, "repair refused");
        }
        // The watch task's log lines before the expiry moved into the machine (same target).
        // The user-facing expiry warnings are the repair machine's notices (the watch
        // task logs them); the fold machine's identity verdict is logged here.
        FoldNotice::CursorExpired { cursor, action } => match action {
            ExpiryAction::Relist | ExpiryAction::Repair => tracing::debug!(
                target: "kvfold::fold",
                cursor = cursor.rank(),
                "expired cursor belongs to this bucket; the repair machine takes over"
            ),
            ExpiryAction::Refuse(refusal) => tracing::error!(
                target: "kvfold::repair",
                %refusal,
                "expired cursor does not belong to this bucket; not re-listing"
            ),
        },
        FoldNotice::ExportServed { ok } => {
            let dest = export_slot
                .dest
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_default();
            match &export_slot.outcome {
                Some(Ok(cursor)) => {
                    tracing::info!(target: "kvfold::fold", ok, %dest, cursor, "export served");
                }
                Some(Err(error)) => {
                    tracing::warn!(target: "kvfold::fold", ok, %dest, %error, "export failed");
                }
                None => tracing::info!(target: "kvfold::fold", ok, %dest, "export served"),
            }
        }
        FoldNotice::Finished { ok, cursor } => {
            if ok {
                tracing::info!(target: "kvfold::fold", cursor = cursor.rank(), "watch finished");
            } else {
                tracing::error!(target: "kvfold::fold", cursor = cursor.rank(), "watch finished with an error");
            }
        }
    }
}

/// What the store task of a `StoreApply` hands back: the store, the raw batch (for a
/// failure's re-queue) and the result.
type StoreDone<S> = (S, Vec<KvUpdate>, Result<(), SnapshotError>);

/// The store task of the `StoreApply` in flight.
type StoreJoin<S> = JoinHandle<StoreDone<S>>;

/// Feeds a finished store task to the machine as `StoreApplied` (putting the store
/// back) and records the committed cursor on the span.
fn feed_store_applied<U, S>(
    m: &mut FoldMachine<U>,
    joined: Result<StoreDone<S>, tokio::task::JoinError>,
    store: &mut Option<S>,
    now: Millis,
    span: &tracing::Span,
) {
    let outcome = match joined {
        Ok((s, _, Ok(()))) => {
            *store = Some(s);
            StoreOutcome::Committed
        }
        Ok((s, raw, Err(e))) => {
            *store = Some(s);
            StoreOutcome::Failed {
                raw,
                error: e.to_string(),
            }
        }
        Err(e) => StoreOutcome::Lost {
            panic: join_panic(e),
        },
    };
    feed(m, FoldEvent::StoreApplied { now, outcome });
    span.record("committed", m.committed().rank());
}

/// The pending export request and its result.
#[derive(Default)]
struct ExportSlot {
    request: Option<ExportRequest>,
    dest: Option<PathBuf>,
    result: Option<Result<ExportManifest, SnapshotError>>,
    /// What the last export produced, for its log line (the result itself is
    /// handed to the requester before notices are drained): the artifact's
    /// cursor rank, or the error text.
    outcome: Option<Result<u64, String>>,
}

/// `watch_applied_owned` (docs/watch-applied.md).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_owned<U, S, P, A, O, R>(
    watcher: Arc<dyn KvWatcher>,
    scope: WatchScope,
    resume: Option<WatchCursor>,
    repair: R,
    mut store: Option<S>,
    mut exports: Option<mpsc::Receiver<ExportRequest>>,
    config: BatchConfig,
    mut parse: P,
    mut apply: A,
    mut on_applied: O,
    mut shutdown: watch::Receiver<bool>,
) -> WatchEnd<S>
where
    U: Send,
    S: SnapshotStore + Send + 'static,
    P: FnMut(&KvUpdate) -> Option<U> + Send,
    A: FnMut(Vec<U>) + Send,
    O: FnMut(WatchCursor) + Send,
    R: Into<ExpiryRepair<S>>,
{
    let repair: ExpiryRepair<S> = repair.into();
    let mode = repair.mode();
    let early_applied = |store: &Option<S>| match store {
        Some(s) => s.cursor(),
        None => resume.clone().unwrap_or_default(),
    };
    // 1. Arming: the machine's arming step decides; a refusal is only reported.
    let armed = match arm_expiry(mode, store.is_some()) {
        Ok(armed) => armed,
        Err(refusal) => {
            let applied = early_applied(&store);
            return WatchEnd {
                result: Err(KvError::WatchError(refusal.to_string())),
                applied,
                store,
            };
        }
    };
    // 2. Unanchored check: a store holding data without a usable resume cursor.
    let usable_resume = resume.as_ref().is_some_and(|c| !c.is_none());
    let unanchored = match &store {
        Some(s) if !usable_resume => match s.has_entries() {
            Ok(has) => has,
            Err(e) => {
                let applied = early_applied(&store);
                return WatchEnd {
                    result: Err(KvError::WatchError(format!(
                        "reading the fold at start failed: {e}"
                    ))),
                    applied,
                    store,
                };
            }
        },
        _ => false,
    };
    // 3–4. The machine.
    let store_cursor = store.as_ref().map(SnapshotStore::cursor);
    let mut m = FoldMachine::<U>::new(FoldConfig::new(
        config.window,
        config.max,
        resume.clone(),
        store_cursor,
        armed,
    ));
    // 5. A shutdown already requested ends the run before it starts.
    if *shutdown.borrow_and_update() {
        let cursor = m.resume_cursor().clone();
        return WatchEnd {
            result: Ok(cursor.clone()),
            applied: cursor,
            store,
        };
    }
    // 6. Span, channel, watch task.
    let span = tracing::info_span!(
        "kvfold.watch",
        bucket = watcher.bucket_name().unwrap_or("?"),
        scope = %scope_label(&scope),
        resume = %resume.as_ref().filter(|c| !c.is_none()).map_or_else(|| "none".to_string(), |c| c.rank().to_string()),
        store = store.is_some(),
        repair = ?mode,
        applied = tracing::field::Empty,
        committed = tracing::field::Empty,
    );
    // 6a. Bucket identity (issue 9): same bucket or refuse, before anything is
    // spawned (after the early shutdown, which runs nothing), inside the span.
    let (started_on, checked) =
        match super::identity::check_start(&*watcher, store, resume.as_ref(), armed)
            .instrument(span.clone())
            .await
        {
            Ok(checked) => checked,
            Err(refused) => {
                let applied = early_applied(&refused.store);
                return WatchEnd {
                    result: Err(refused.error),
                    applied,
                    store: refused.store,
                };
            }
        };
    store = checked;
    let (tx, mut rx) = mpsc::channel::<KvUpdate>(config.channel_capacity.max(1));
    // One expiry report at most is outstanding: the task waits for its answer.
    let (expiry_tx, expiry_rx) = mpsc::channel::<ExpiryReport>(1);
    let mut expiry_rx = Some(expiry_rx);
    // The repair channel exists only while a repair is armed; one hand-off at a time.
    let (repairs_tx, mut repairs) = if armed {
        let (repairs_tx, repairs_rx) = mpsc::channel::<RepairRequest<S>>(1);
        (Some(repairs_tx), Some(repairs_rx))
    } else {
        (None, None)
    };
    let task = tokio::spawn(
        watch_task(WatchTask {
            watcher: Arc::clone(&watcher),
            scope: scope.clone(),
            start: RepairStart {
                mode: effective_mode(mode, armed),
                resume: resume.clone(),
                unanchored,
                scope: scope.prefixes(),
            },
            payload: RepairPayload::of(repair),
            repairs: repairs_tx,
            started_on,
            expiry: expiry_tx,
            tx,
        })
        .instrument(span.clone()),
    );
    let mut task = AbortOnDrop(Some(task));
    let prefixes = scope.prefixes();
    let started = Instant::now();
    let now = move || Millis(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
    let mut timer: Option<Millis> = None;
    let mut export_slot = ExportSlot::default();
    let mut repair_slot = RepairSlot::<S>::default();
    let mut expiry_answer: Option<oneshot::Sender<ExpiryAnswer>> = None;
    let mut result: Option<Result<WatchCursor, KvError>> = None;
    // The store apply in flight (the machine lets the fold receive meanwhile).
    let mut in_flight: Option<StoreJoin<S>> = None;
    // Updates taken from the channel in one `recv_many`, reversed (next = last).
    let capacity = config.channel_capacity.max(1);
    let mut inbox: Vec<KvUpdate> = Vec::with_capacity(capacity.min(4096));
    // One window timer, re-armed in place.
    let window = tokio::time::sleep_until(started);
    tokio::pin!(window);

    async {
        loop {
            // 1. Drain commands.
            while let Some(command) = m.poll_command() {
                match command {
                    FoldCommand::SetTimer(t) => {
                        timer = t;
                        if let Some(t) = t {
                            window.as_mut().reset(started + Duration::from_millis(t.0));
                        }
                    }
                    FoldCommand::Apply(batch) => apply(batch),
                    FoldCommand::StoreApply { raw, cursor } => {
                        let Some(mut s) = store.take() else {
                            unreachable!("the machine asks for a store apply only while it has a store");
                        };
                        let task_span = span.clone();
                        // Performed now, completed later: the machine says when it must
                        // be awaited (`Wants::Completion`) and when the fold receives on.
                        in_flight = Some(tokio::task::spawn_blocking(move || {
                            task_span.in_scope(|| {
                                let r = s.apply(&raw, &cursor);
                                (s, raw, r)
                            })
                        }));
                    }
                    FoldCommand::OnApplied(cursor) => {
                        span.record("applied", cursor.rank());
                        on_applied(cursor);
                    }
                    FoldCommand::RunExport => {
                        let Some(mut s) = store.take() else {
                            unreachable!("the machine runs an export only while it has a store");
                        };
                        let dest = export_slot.request.as_ref().map(|r| r.dest_dir.clone());
                        export_slot.dest = dest.clone();
                        let prefixes = prefixes.clone();
                        let task_span = span.clone();
                        let joined = tokio::task::spawn_blocking(move || {
                            task_span.in_scope(|| {
                                let r = match dest {
                                    None => Err(SnapshotError::Backend("no export request is pending".to_string())),
                                    Some(dest) => s.export_to(&dest).and_then(|_| stamp_scope(&dest, &prefixes)),
                                };
                                (s, r)
                            })
                        })
                        .await;
                        let outcome = match joined {
                            Ok((s, r)) => {
                                store = Some(s);
                                let ok = r.is_ok();
                                export_slot.outcome = Some(match &r {
                                    Ok(manifest) => Ok(manifest.cursor.rank()),
                                    Err(error) => Err(error.to_string()),
                                });
                                export_slot.result = Some(r);
                                TaskOutcome::Done { ok }
                            }
                            Err(e) => TaskOutcome::Panicked { panic: join_panic(e) },
                        };
                        feed(&mut m, FoldEvent::ExportFinished { now: now(), outcome });
                    }
                    FoldCommand::ReplyExport(reply) => {
                        let request = export_slot.request.take();
                        let answer = match reply {
                            ExportReply::Result => export_slot.result.take().unwrap_or_else(|| {
                                Err(SnapshotError::Backend("export produced no result".to_string()))
                            }),
                            ExportReply::NoStore => Err(SnapshotError::Backend(
                                "no snapshot store; nothing to export".to_string(),
                            )),
                            ExportReply::Held { until, committed } => {
                                tracing::info!(target: "kvfold::fold", until, committed, "export held after a restore that kept listed-live keys");
                                Err(ExportHeld { until, committed }.into())
                            }
                        };
                        if let Some(request) = request {
                            let _ = request.reply.send(answer);
                        }
                    }
                    FoldCommand::Finish(r) => {
                        if let Some(handle) = task.0.take() {
                            handle.abort();
                            if let Err(e) = handle.await
                                && e.is_panic()
                            {
                                tracing::warn!(target: "kvfold::fold", panic = %join_panic(e), "watch task panicked while ending");
                            }
                        }
                        repair_slot.clear().await;
                        result = Some(r);
                    }
                    FoldCommand::AnswerExpiry(action) => {
                        let answer = match action {
                            // Same bucket: the watch task's repair machine re-lists or repairs.
                            ExpiryAction::Relist | ExpiryAction::Repair => ExpiryAnswer::Proceed,
                            ExpiryAction::Refuse(refusal) => ExpiryAnswer::End(refusal.into()),
                        };
                        // A closed receiver: the task is gone, its end reaches the machine anyway.
                        if let Some(sender) = expiry_answer.take() {
                            let _ = sender.send(answer);
                        }
                    }
                    FoldCommand::DiffRelist => {
                        let result = repair_slot.diff_relist(&mut store, &prefixes).await;
                        feed(&mut m, FoldEvent::RepairIo { now: now(), result });
                    }
                    FoldCommand::DiffRestore => {
                        let result = repair_slot.diff_restore(&mut store, &prefixes).await;
                        feed(&mut m, FoldEvent::RepairIo { now: now(), result });
                    }
                    FoldCommand::FilterListedLive => {
                        let result = repair_slot.filter_listed_live(&prefixes).await;
                        feed(&mut m, FoldEvent::RepairIo { now: now(), result });
                    }
                    FoldCommand::ReadRetention => {
                        let result = repair_slot.read_retention().await;
                        feed(&mut m, FoldEvent::RepairIo { now: now(), result });
                    }
                    FoldCommand::NextChunk { source, max } => {
                        let result = repair_slot.next_chunk(source, max, &mut parse).await;
                        feed(&mut m, FoldEvent::RepairIo { now: now(), result });
                    }
                    FoldCommand::DropRestored => repair_slot.drop_restored().await,
                    FoldCommand::AckRelist => repair_slot.ack_relist(),
                    FoldCommand::ReplyRestore(reply) => repair_slot.reply_restore(reply),
                }
            }
            // 2. Drain notices.
            while let Some(notice) = m.poll_notice() {
                emit(notice, &export_slot);
            }
            // 3. What does the machine want?
            match m.wants() {
                Wants::Nothing => break,
                Wants::Backlog => {
                    let event = match inbox.pop().map_or_else(|| rx.try_recv(), Ok) {
                        Ok(update) => {
                            let parsed = parse(&update);
                            FoldEvent::Update { now: now(), update, parsed }
                        }
                        Err(_) => FoldEvent::BacklogDrained { now: now() },
                    };
                    feed(&mut m, event);
                }
                Wants::Completion(Pending::Store) => {
                    let Some(handle) = in_flight.take() else {
                        unreachable!("the machine awaits a store apply only while one is in flight");
                    };
                    feed_store_applied(&mut m, handle.await, &mut store, now(), &span);
                }
                Wants::Completion(pending) => {
                    unreachable!("the executor awaits every other completion where it is commanded ({pending:?})");
                }
                Wants::Any => {
                    // A finished store apply is fed before anything else.
                    if in_flight.as_ref().is_some_and(JoinHandle::is_finished) {
                        let handle = in_flight.take().expect("checked by is_some_and");
                        feed_store_applied(&mut m, handle.await, &mut store, now(), &span);
                        continue;
                    }
                    // Updates already taken from the channel go first: one wake-up and
                    // one select per `recv_many`, not per update. At most `capacity`
                    // updates pass between two looks at shutdown and the window.
                    if let Some(update) = inbox.pop() {
                        let parsed = parse(&update);
                        feed(&mut m, FoldEvent::Update { now: now(), update, parsed });
                        continue;
                    }
                    let event = tokio::select! {
                        biased;
                        changed = shutdown.changed() => match changed {
                            Err(_) => Some(FoldEvent::Shutdown { now: now() }),
                            Ok(()) if *shutdown.borrow_and_update() => Some(FoldEvent::Shutdown { now: now() }),
                            Ok(()) => None,
                        },
                        () = &mut window, if timer.is_some() => {
                            Some(FoldEvent::WindowElapsed { now: now() })
                        }
                        request = async { repairs.as_mut().expect("guarded by is_some").recv().await }, if repairs.is_some() => {
                            match request {
                                Some(request) => {
                                    let kind = repair_slot.receive(request);
                                    Some(FoldEvent::RepairRequested { now: now(), kind })
                                }
                                None => {
                                    repairs = None;
                                    None
                                }
                            }
                        }
                        request = async { exports.as_mut().expect("guarded by is_some").recv().await }, if exports.is_some() => {
                            match request {
                                Some(request) => {
                                    export_slot.dest = Some(request.dest_dir.clone());
                                    export_slot.request = Some(request);
                                    export_slot.result = None;
                                    export_slot.outcome = None;
                                    Some(FoldEvent::ExportRequested { now: now() })
                                }
                                None => {
                                    exports = None;
                                    None
                                }
                            }
                        }
                        report = async { expiry_rx.as_mut().expect("guarded by is_some").recv().await }, if expiry_rx.is_some() => {
                            match report {
                                Some(ExpiryReport { cursor, started_on, bucket, answer }) => {
                                    expiry_answer = Some(answer);
                                    Some(FoldEvent::WatchExpired { now: now(), cursor, started_on, bucket })
                                }
                                None => {
                                    expiry_rx = None;
                                    None
                                }
                            }
                        }
                        joined = async { in_flight.as_mut().expect("guarded by is_some").await }, if in_flight.is_some() => {
                            in_flight = None;
                            feed_store_applied(&mut m, joined, &mut store, now(), &span);
                            None
                        }
                        received = rx.recv_many(&mut inbox, capacity) => match received {
                            1.. => {
                                inbox.reverse();
                                let update = inbox.pop().expect("recv_many received at least one");
                                let parsed = parse(&update);
                                Some(FoldEvent::Update { now: now(), update, parsed })
                            }
                            0 => {
                                let end = match task.0.take() {
                                    None => TaskEnd::Clean,
                                    Some(handle) => match handle.await {
                                        Ok(Ok(())) => TaskEnd::Clean,
                                        Ok(Err(e)) => TaskEnd::Failed(e),
                                        Err(e) => TaskEnd::Panicked(join_panic(e)),
                                    },
                                };
                                Some(FoldEvent::WatchEnded { now: now(), end })
                            }
                        },
                    };
                    if let Some(event) = event {
                        feed(&mut m, event);
                    }
                }
            }
        }
    }
    .instrument(span.clone())
    .await;
    // The machine finishes only after the store apply in flight completed; should one
    // still run, its store comes back (its cursor is not claimed: at-least-once).
    if let Some(handle) = in_flight.take()
        && let Ok((s, _, _)) = handle.await
    {
        store = Some(s);
    }

    let result = result.unwrap_or_else(|| Ok(m.resume_cursor().clone()));
    WatchEnd {
        result,
        applied: m.resume_cursor().clone(),
        store,
    }
}

/// Feeds an event; a rejection is an executor bug (docs/watch-applied.md, "The drive loop"
/// step 5).
fn feed<U>(m: &mut FoldMachine<U>, event: FoldEvent<U>) {
    if let Err(unexpected) = m.handle(event) {
        panic!("watch_applied executor bug: {unexpected}");
    }
}

/// Drops `store` on a dedicated thread, waiting at most 30 s (docs/watch-applied.md,
/// "Closing the store").
pub(crate) async fn close_store<S: Send + 'static>(store: S) {
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("kvfold-close".to_string())
        .spawn(move || {
            drop(store);
            let _ = done_tx.send(());
        });
    match spawned {
        Ok(_) => {
            if tokio::time::timeout(Duration::from_secs(30), done_rx)
                .await
                .is_err()
            {
                tracing::warn!(target: "kvfold::fold", "closing the snapshot store took more than 30 s; leaving it to finish in the background");
            }
        }
        Err(e) => {
            tracing::warn!(target: "kvfold::fold", error = %e, "could not spawn the store-closing thread; the store was dropped inline");
        }
    }
}
