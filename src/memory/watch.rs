//! The watch loop of the embedded backend (docs/memory-backend.md, "Watches"): it registers
//! with the bucket, takes entries, hands each to the watch's `ResumeGuard` and performs
//! exactly the commands the guard returns. The guard decides every resume, skip and expiry;
//! this loop only carries them out.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::sync::mpsc::Sender;

use super::clock::Clock;
use super::log::Entry;
use super::registry::{BucketCell, SlotId, Taken};
use super::server::ConnInner;
use crate::kv::{KvError, KvUpdate, WatchCursor};
use crate::protocol::resume::{GuardEvent, GuardMode, ResumeCursor, ResumeGuard, StreamFacts};
use crate::protocol::time::Millis;
use crate::stores::guard_drive::{self, GuardIo};

/// Most entries one take hands to the loop.
const TAKE_BATCH_MAX: usize = 256;

/// What a watch call asked for.
pub(crate) struct WatchSpec {
    pub(crate) conn: Arc<ConnInner>,
    pub(crate) cell: Arc<BucketCell>,
    pub(crate) scope: Vec<String>,
    pub(crate) cursor: Option<WatchCursor>,
    pub(crate) mode: GuardMode,
}

/// Runs one watch call to its end (docs/memory-backend.md, "Watches").
pub(crate) async fn run_watch(spec: WatchSpec, tx: Sender<KvUpdate>) -> Result<(), KvError> {
    let mut run = WatchRun::start(spec)?;
    run.drive(&tx).await
}

/// What the next step of the loop has to work with.
enum Next {
    Entry(Arc<Entry>),
    /// Nothing now, but the slot still has log to read: take again.
    Again,
    Wait,
    Ended(KvError),
}

/// The watch's I/O: its registration with the bucket, what it has taken, and the
/// delivery in hand.
struct MemoryWatchIo {
    conn: Arc<ConnInner>,
    cell: Arc<BucketCell>,
    clock: Arc<dyn Clock>,
    scope: Vec<String>,
    slot: Option<SlotId>,
    snapshot: VecDeque<Arc<Entry>>,
    batch: VecDeque<Arc<Entry>>,
    /// The entry last handed to the guard, until it says `Forward` or `Skip`.
    held: Option<Arc<Entry>>,
    wake: Arc<Notify>,
    epoch: u64,
}

struct WatchRun {
    guard: ResumeGuard,
    io: MemoryWatchIo,
}

impl Drop for MemoryWatchIo {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.cell.deregister(slot);
        }
    }
}

fn message_of(error: KvError) -> String {
    match error {
        KvError::WatchError(m) | KvError::OperationFailed(m) | KvError::ConnectionFailed(m) => m,
        other => other.to_string(),
    }
}

impl WatchRun {
    fn start(spec: WatchSpec) -> Result<Self, KvError> {
        let clock = spec.conn.server.clock();
        let now = Millis(clock.now_unix_ms());
        let epoch = spec.conn.epoch();
        let wake = Arc::new(Notify::new());
        let io = MemoryWatchIo {
            conn: spec.conn,
            cell: spec.cell,
            clock,
            scope: spec.scope,
            slot: None,
            snapshot: VecDeque::new(),
            batch: VecDeque::new(),
            held: None,
            wake,
            epoch,
        };
        // A state-sync watch takes its snapshot through the guard (G18–G19), so a
        // reconnect in the snapshot phase syncs again instead of replaying history.
        let guard = match spec.cursor.as_ref().and_then(ResumeCursor::of) {
            Some(cursor) => ResumeGuard::resumed(cursor, spec.mode, now),
            None => ResumeGuard::syncing(spec.mode, now),
        };
        Ok(Self { guard, io })
    }

    fn feed(&mut self, event: GuardEvent) {
        // The loop feeds only events the guard's phase accepts (docs/memory-backend.md,
        // "Watches").
        guard_drive::feed::<MemoryWatchIo>(&mut self.guard, event);
    }

    /// Performs every queued guard command; `Some(result)` ends the call.
    async fn perform(&mut self, tx: &Sender<KvUpdate>) -> Option<Result<(), KvError>> {
        guard_drive::perform(&mut self.guard, &mut self.io, tx).await
    }
}

impl MemoryWatchIo {
    /// Sends one update with back-pressure; notices an interrupt while blocked.
    async fn send(
        &mut self,
        tx: &Sender<KvUpdate>,
        update: KvUpdate,
    ) -> Option<Result<(), KvError>> {
        loop {
            tokio::select! {
                biased;
                permit = tx.reserve() => {
                    return match permit {
                        Ok(permit) => {
                            permit.send(update);
                            None
                        }
                        Err(_) => Some(Ok(())),
                    };
                }
                () = self.wake.notified() => {
                    if let Some(slot) = self.slot
                        && let Some(error) = self.cell.ended(slot)
                    {
                        return Some(Err(error));
                    }
                }
            }
        }
    }

    fn next(&mut self) -> Next {
        if let Some(entry) = self.batch.pop_front() {
            return Next::Entry(entry);
        }
        // A paused bucket holds the snapshot too (docs/memory-backend.md, "Watches" step 2
        // comes before step 3); resuming wakes the slot.
        if !self.snapshot.is_empty() && self.cell.is_paused() {
            return Next::Wait;
        }
        if let Some(entry) = self.snapshot.pop_front() {
            return Next::Entry(entry);
        }
        let Some(slot) = self.slot else {
            return Next::Wait;
        };
        match self.cell.take(slot, TAKE_BATCH_MAX) {
            Taken::Ended(error) => Next::Ended(error),
            Taken::Paused => Next::Wait,
            Taken::Entries(entries) => {
                self.batch = entries.into();
                match self.batch.pop_front() {
                    Some(entry) => Next::Entry(entry),
                    // A lagging take stops after examining its bound of log entries
                    // even when none was in scope. Commits do not wake a lagging
                    // slot, so waiting here would stall the watch: take again.
                    None if self.cell.has_pending(slot) => Next::Again,
                    None => Next::Wait,
                }
            }
        }
    }
}

impl GuardIo for MemoryWatchIo {
    const BACKEND: &'static str = "memory";

    fn now(&self) -> Millis {
        Millis(self.clock.now_unix_ms())
    }

    fn bucket(&self) -> &str {
        self.cell.name()
    }

    async fn probe(&mut self) -> Result<StreamFacts, KvError> {
        let now = self.now();
        self.cell
            .probe(now.0)
            .ok_or_else(|| KvError::WatchError(format!("bucket {} not found", self.cell.name())))
    }

    async fn create_consumer(&mut self, start_sequence: u64) -> Result<(), String> {
        let slot = self
            .cell
            .register_from(self.scope.clone(), start_sequence, Arc::clone(&self.wake))
            .map_err(message_of)?;
        self.slot = Some(slot);
        Ok(())
    }

    async fn create_snapshot_consumer(&mut self) -> Result<u64, String> {
        let registration = self
            .cell
            .register_sync(self.scope.clone(), Arc::clone(&self.wake))
            .map_err(message_of)?;
        self.slot = Some(registration.slot);
        self.snapshot = registration.snapshot.into();
        Ok(u64::try_from(self.snapshot.len()).unwrap_or(u64::MAX))
    }

    async fn drop_consumer(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.cell.deregister(slot);
        }
        self.snapshot.clear();
        self.batch.clear();
        self.held = None;
    }

    async fn forward(&mut self, tx: &Sender<KvUpdate>) -> Option<Result<(), KvError>> {
        let entry = self.held.take()?;
        self.send(tx, entry.to_update()).await
    }

    fn skip(&mut self) {
        self.held = None;
    }
}

impl WatchRun {
    /// Waits for a wake-up, the guard's deadline or a dropped receiver.
    async fn wait(&mut self, tx: &Sender<KvUpdate>) -> Option<Result<(), KvError>> {
        let deadline = if self.io.conn.is_partitioned() {
            None
        } else {
            self.guard.poll_timeout()
        };
        let sleep = deadline.map(|d| self.io.clock.sleep_until(d.0));
        tokio::select! {
            biased;
            () = tx.closed() => Some(Ok(())),
            () = self.io.wake.notified() => None,
            () = async { sleep.expect("branch runs only with a deadline").await }, if sleep.is_some() => {
                let now = self.io.now();
                self.feed(GuardEvent::Tick { now });
                None
            }
        }
    }

    async fn drive(&mut self, tx: &Sender<KvUpdate>) -> Result<(), KvError> {
        loop {
            if let Some(end) = self.perform(tx).await {
                return end;
            }
            // An interrupt ends the watch whatever else is going on
            // (docs/memory-backend.md, "Watches", ending): a partitioned or reconnecting
            // watch must not drop it on the floor.
            if let Some(error) = self.io.slot.and_then(|slot| self.io.cell.ended(slot)) {
                return Err(error);
            }
            if self.guard.is_streaming() && self.io.conn.epoch() != self.io.epoch {
                self.io.epoch = self.io.conn.epoch();
                let now = self.io.now();
                self.feed(GuardEvent::Reconnected { now });
                continue;
            }
            if self.io.conn.is_partitioned() {
                if let Some(end) = self.wait(tx).await {
                    return end;
                }
                continue;
            }
            match self.io.next() {
                Next::Ended(error) => return Err(error),
                Next::Again => tokio::task::yield_now().await,
                Next::Wait => {
                    if let Some(end) = self.wait(tx).await {
                        return end;
                    }
                }
                Next::Entry(entry) => {
                    let now = self.io.now();
                    let event = GuardEvent::Delivered {
                        now,
                        revision: Some(entry.revision),
                        written_ms: Some(entry.stamp_ms),
                    };
                    self.io.held = Some(entry);
                    self.feed(event);
                }
            }
        }
    }
}
