//! The fold loop's side of a repair: it keeps the payload of the repair the watch task
//! handed over (the reader, the ack or reply, the artifact fold) and performs the fold
//! machine's repair commands with the repair I/O of `src/repair/`. It decides nothing:
//! which command comes next, and what a result means, is the fold machine's.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::watch_task::{RepairRequest, drop_off_runtime};
use crate::kv::{KvError, KvReader, KvUpdate, KvWatcher, WatchCursor};
use crate::protocol::fold::{ChunkSource, RepairIo, RepairKind, RestoreRefused, kept_high};
use crate::repair::{
    DeleteChunks, RepairKind as IoRepair, RestoredFold, RewriteChunks, SORT_RUN_BYTES,
    filter_listed_live, relist_stale, restore_diff, sort_listing,
};
use crate::snapshot::SnapshotStore;

/// The repair in hand.
enum Active<S> {
    Relist {
        reader: Arc<dyn KvReader>,
        scratch: Option<PathBuf>,
        ack: Option<oneshot::Sender<()>>,
    },
    Restore {
        /// `None` only while a blocking step holds it, or after it was dropped.
        restored: Option<RestoredFold<S>>,
        reader: Arc<dyn KvReader>,
        watcher: Arc<dyn KvWatcher>,
        reply: Option<oneshot::Sender<Result<WatchCursor, KvError>>>,
    },
}

/// The payload of the repair in hand and the state of its correction sources.
pub(crate) struct RepairSlot<S> {
    active: Option<Active<S>>,
    /// Relist: the stale keys, as synthetic deletes.
    stale: Option<DeleteChunks>,
    /// Restore: the keys taking the artifact's entry.
    rewrites: Option<RewriteChunks>,
    /// Restore: local keys the artifact lacks, before they become `deletes`.
    candidates: HashSet<String>,
    /// Restore: the candidates left after the listing, as synthetic deletes.
    deletes: Option<DeleteChunks>,
}

impl<S> Default for RepairSlot<S> {
    fn default() -> Self {
        Self {
            active: None,
            stale: None,
            rewrites: None,
            candidates: HashSet::new(),
            deletes: None,
        }
    }
}

fn failed<U>(error: impl ToString, store_lost: bool) -> RepairIo<U> {
    RepairIo::Failed {
        error: error.to_string(),
        store_lost,
    }
}

fn join_text(e: tokio::task::JoinError) -> String {
    if e.is_panic() {
        "the repair's blocking task panicked".to_string()
    } else {
        "the repair's blocking task was cancelled".to_string()
    }
}

impl<S: SnapshotStore + Send + 'static> RepairSlot<S> {
    /// Keeps the payload of `request`; the kind is what the machine is fed
    /// (`RepairRequested`).
    pub(crate) fn receive(&mut self, request: RepairRequest<S>) -> RepairKind {
        match request {
            RepairRequest::Evicting => RepairKind::Evicting,
            RepairRequest::Relist {
                reader,
                scratch,
                ack,
            } => {
                self.active = Some(Active::Relist {
                    reader,
                    scratch,
                    ack: Some(ack),
                });
                RepairKind::Relist
            }
            RepairRequest::Restore {
                restored,
                reader,
                watcher,
                reply,
            } => {
                let target = restored.manifest().cursor.clone();
                self.active = Some(Active::Restore {
                    restored: Some(restored),
                    reader,
                    watcher,
                    reply: Some(reply),
                });
                RepairKind::Restore { target }
            }
        }
    }

    /// `DiffRelist`: sort the listing, then merge it against the store on a blocking
    /// thread holding the store.
    pub(crate) async fn diff_relist<U>(
        &mut self,
        store: &mut Option<S>,
        prefixes: &[String],
    ) -> RepairIo<U> {
        let Some(Active::Relist {
            reader, scratch, ..
        }) = &self.active
        else {
            unreachable!("the fold machine diffs a relist only with one in hand");
        };
        let (reader, scratch) = (Arc::clone(reader), scratch.clone());
        let sorted = match sort_listing(
            IoRepair::Relist,
            &*reader,
            prefixes,
            scratch,
            SORT_RUN_BYTES,
        )
        .await
        {
            Ok(sorted) => sorted,
            Err(e) => return failed(e, false),
        };
        let Some(s) = store.take() else {
            unreachable!("the fold machine repairs only with a store");
        };
        let prefixes = prefixes.to_vec();
        let joined = tokio::task::spawn_blocking(move || {
            let r = relist_stale(&s, &prefixes, sorted);
            (s, r)
        })
        .await;
        match joined {
            Ok((s, r)) => {
                *store = Some(s);
                match r {
                    Ok(stale) => {
                        let count = stale.len() as u64;
                        self.stale = Some(DeleteChunks::new(stale));
                        RepairIo::RelistDiffed { stale: count }
                    }
                    Err(e) => failed(e, false),
                }
            }
            Err(e) => failed(join_text(e), true),
        }
    }

    /// `DiffRestore`: the per-key diff on a blocking thread holding the store and the
    /// artifact fold.
    pub(crate) async fn diff_restore<U>(
        &mut self,
        store: &mut Option<S>,
        prefixes: &[String],
    ) -> RepairIo<U> {
        let Some(Active::Restore { restored, .. }) = &mut self.active else {
            unreachable!("the fold machine diffs a restore only with one in hand");
        };
        let Some(artifact) = restored.take() else {
            return failed("restore: the artifact fold is gone", false);
        };
        let Some(s) = store.take() else {
            unreachable!("the fold machine repairs only with a store");
        };
        let prefixes = prefixes.to_vec();
        let joined = tokio::task::spawn_blocking(move || {
            let r = restore_diff(
                &s,
                artifact.fold(),
                &prefixes,
                artifact.scratch().map(|p| p.as_path()),
            );
            (s, artifact, r)
        })
        .await;
        match joined {
            Ok((s, artifact, r)) => {
                *store = Some(s);
                *restored = Some(artifact);
                match r {
                    Ok(diff) => {
                        let delete_candidates = diff.candidates.len() as u64;
                        self.candidates = diff.candidates;
                        self.rewrites = Some(RewriteChunks::new(diff.rewrite_keys));
                        RepairIo::RestoreDiffed {
                            rewrite: diff.rewrites,
                            delete_candidates,
                        }
                    }
                    Err(e) => failed(e, false),
                }
            }
            Err(e) => failed(join_text(e), true),
        }
    }

    /// `FilterListedLive`: drop every candidate the bucket still lists, then read the
    /// kept keys' current revisions (and, when one is gone again, the bucket's last
    /// revision) for the machine's export hold ([`kept_high`]).
    pub(crate) async fn filter_listed_live<U>(&mut self, prefixes: &[String]) -> RepairIo<U> {
        let Some(Active::Restore {
            reader, watcher, ..
        }) = &self.active
        else {
            unreachable!("the fold machine filters candidates only during a restore");
        };
        let (reader, watcher) = (Arc::clone(reader), Arc::clone(watcher));
        let mut kept = match filter_listed_live(&*reader, prefixes, &mut self.candidates).await {
            Ok(kept) => kept,
            Err(e) => return failed(e, false),
        };
        kept.sort_unstable();
        let mut revisions = Vec::with_capacity(kept.len());
        for key in &kept {
            match reader.entry(key).await {
                Ok(entry) => revisions.push(entry.and_then(|e| e.version.as_u64())),
                Err(e) => {
                    return failed(
                        format!("restore: reading the kept key {key:?} failed: {e}"),
                        false,
                    );
                }
            }
        }
        let last_revision = if revisions.iter().any(Option::is_none) {
            match watcher.last_revision().await {
                Ok(last) => last,
                Err(e) => {
                    return failed(
                        format!("restore: reading the bucket's last revision failed: {e}"),
                        false,
                    );
                }
            }
        } else {
            None
        };
        RepairIo::LiveFiltered {
            remaining: self.candidates.len() as u64,
            kept_high: kept_high(&revisions, last_revision),
        }
    }

    /// `ReadRetention`: the floor, read with the restore's watcher.
    pub(crate) async fn read_retention<U>(&mut self) -> RepairIo<U> {
        let Some(Active::Restore { watcher, .. }) = &self.active else {
            unreachable!("the fold machine reads retention only during a restore");
        };
        let watcher = Arc::clone(watcher);
        match watcher.retention().await {
            Ok(r) => RepairIo::Retention {
                first_revision: r.map(|r| r.first_revision),
            },
            Err(e) => failed(
                format!("restore: reading the bucket's retention failed: {e}"),
                false,
            ),
        }
    }

    /// `NextChunk{source, max}`: the next corrections, each passed through `parse`.
    pub(crate) async fn next_chunk<U, P>(
        &mut self,
        source: ChunkSource,
        max: usize,
        parse: &mut P,
    ) -> RepairIo<U>
    where
        P: FnMut(&KvUpdate) -> Option<U>,
    {
        let updates = match source {
            ChunkSource::StaleDeletes => self
                .stale
                .as_mut()
                .map(|chunks| chunks.next_chunk(max))
                .unwrap_or_default(),
            ChunkSource::RestoreDeletes => {
                let deletes = self.deletes.get_or_insert_with(|| {
                    let mut keys: Vec<String> =
                        std::mem::take(&mut self.candidates).into_iter().collect();
                    keys.sort_unstable();
                    DeleteChunks::new(keys)
                });
                deletes.next_chunk(max)
            }
            ChunkSource::RestorePuts => match self.next_rewrites(max).await {
                Ok(updates) => updates,
                Err(e) => return failed(e, false),
            },
        };
        let items = updates
            .into_iter()
            .map(|update| {
                let parsed = parse(&update);
                (update, parsed)
            })
            .collect();
        RepairIo::Corrections { items }
    }

    /// The next restore puts, read from the spill and the artifact fold on a blocking
    /// thread.
    async fn next_rewrites(&mut self, max: usize) -> Result<Vec<KvUpdate>, String> {
        let Some(Active::Restore { restored, .. }) = &mut self.active else {
            unreachable!("the fold machine asks for restore puts only during a restore");
        };
        let (Some(artifact), Some(mut rewrites)) = (restored.take(), self.rewrites.take()) else {
            return Err("restore: the artifact fold is gone".to_string());
        };
        let joined = tokio::task::spawn_blocking(move || {
            let r = rewrites.next_chunk(artifact.fold(), max);
            (artifact, rewrites, r)
        })
        .await;
        match joined {
            Ok((artifact, rewrites, r)) => {
                *restored = Some(artifact);
                self.rewrites = Some(rewrites);
                r.map_err(|e| e.to_string())
            }
            Err(e) => Err(join_text(e)),
        }
    }

    /// `DropRestored`: the artifact fold is dropped on a blocking thread.
    pub(crate) async fn drop_restored(&mut self) {
        if let Some(Active::Restore { restored, .. }) = &mut self.active
            && let Some(artifact) = restored.take()
        {
            drop_off_runtime(artifact).await;
        }
        self.rewrites = None;
    }

    /// `AckRelist`: the relist is folded; the watch task may start the re-list.
    pub(crate) fn ack_relist(&mut self) {
        if let Some(Active::Relist { ack, .. }) = &mut self.active
            && let Some(ack) = ack.take()
        {
            let _ = ack.send(());
        }
        *self = Self::default();
    }

    /// `ReplyRestore(r)`.
    pub(crate) fn reply_restore(&mut self, result: Result<WatchCursor, RestoreRefused>) {
        if let Some(Active::Restore { reply, .. }) = &mut self.active
            && let Some(reply) = reply.take()
        {
            let answer = result.map_err(|refusal| {
                KvError::WatchError(format!("cursor-expired restore: {refusal}"))
            });
            let _ = reply.send(answer);
        }
        self.active = None;
        self.stale = None;
        self.rewrites = None;
        self.deletes = None;
        self.candidates.clear();
    }

    /// At the end of the run: whatever is left is dropped off the runtime.
    pub(crate) async fn clear(&mut self) {
        self.drop_restored().await;
        *self = Self::default();
    }
}
