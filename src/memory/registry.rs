//! One bucket's shared state: its `BucketLog` and the watcher registry, under one mutex so
//! that watch registration is atomic with commits (docs/memory-backend.md, "Watches",
//! W1–W7). Synchronous and loom-checked; the async watch loop only waits for a wake-up and
//! calls [`BucketCell::take`]. No protocol decision lives here.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use tokio::sync::Notify;

use super::log::{BucketLog, Entry, WriteOp};
use crate::kv::KvError;
use crate::protocol::resume::StreamFacts;
use crate::protocol::subject::key_in_scope;
use crate::sync::{Mutex, lock};

/// Per-watcher queue bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most entries a queue holds.
    pub len_max: usize,
    /// Most bytes a queue holds (unless it holds a single entry).
    pub bytes_max: usize,
}

/// How many log entries one lagging `take` examines at most (bounds the time a
/// take holds the bucket lock).
const LAGGING_SCAN_MAX: usize = 4096;

/// Identifies a watcher slot within its bucket.
pub type SlotId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotMode {
    /// New commits are pushed to the queue.
    Queue,
    /// The queue overflowed; the watcher reads the log from `next` at its own pace.
    Lagging { next: u64 },
}

struct Slot {
    scope: Vec<String>,
    mode: SlotMode,
    queue: VecDeque<Arc<Entry>>,
    queue_bytes: usize,
    ended: Option<KvError>,
    wake: Arc<Notify>,
}

impl Slot {
    fn in_scope(&self, key: &str) -> bool {
        let prefixes: Vec<&str> = self.scope.iter().map(String::as_str).collect();
        key_in_scope(key, &prefixes)
    }
}

/// The state behind one bucket's mutex.
pub struct BucketState {
    log: BucketLog,
    deleted: bool,
    paused: bool,
    slots: BTreeMap<SlotId, Slot>,
    next_slot: SlotId,
    limits: QueueLimits,
}

impl BucketState {
    /// Pushes committed entries to every matching slot (docs/memory-backend.md, "Watches").
    fn fan_out(&mut self, entries: &[Arc<Entry>]) {
        if entries.is_empty() {
            return;
        }
        let limits = self.limits;
        for slot in self.slots.values_mut() {
            if slot.ended.is_some() {
                continue;
            }
            let mut changed = false;
            for entry in entries {
                if !slot.in_scope(&entry.key) {
                    continue;
                }
                if slot.mode != SlotMode::Queue {
                    continue;
                }
                let size = usize::try_from(entry.size).unwrap_or(usize::MAX);
                let room = slot.queue.len() < limits.len_max
                    && (slot.queue.is_empty()
                        || slot.queue_bytes.saturating_add(size) <= limits.bytes_max);
                if room {
                    slot.queue.push_back(Arc::clone(entry));
                    slot.queue_bytes = slot.queue_bytes.saturating_add(size);
                } else {
                    slot.mode = SlotMode::Lagging {
                        next: entry.revision,
                    };
                }
                changed = true;
            }
            if changed {
                slot.wake.notify_one();
            }
        }
    }

    fn new_slot(&mut self, scope: Vec<String>, mode: SlotMode, wake: Arc<Notify>) -> SlotId {
        let id = self.next_slot;
        self.next_slot += 1;
        self.slots.insert(
            id,
            Slot {
                scope,
                mode,
                queue: VecDeque::new(),
                queue_bytes: 0,
                ended: None,
                wake,
            },
        );
        id
    }

    fn run_due(&mut self, now_ms: u64) {
        let due = self.log.apply_due(now_ms);
        self.fan_out(&due);
    }
}

/// What a state-sync registration saw.
#[derive(Debug)]
pub struct Registration {
    /// The new slot.
    pub slot: SlotId,
    /// `R`: the last revision at registration.
    #[cfg_attr(
        not(any(test, feature = "testkit")),
        allow(dead_code, reason = "read by the loom tests and verifiers")
    )]
    pub last_revision: u64,
    /// The latest retained entry of each in-scope key at `R`, ascending revision.
    pub snapshot: Vec<Arc<Entry>>,
}

/// What a [`BucketCell::take`] found.
#[derive(Debug)]
pub enum Taken {
    /// Entries for the watcher, ascending revision (possibly none).
    Entries(Vec<Arc<Entry>>),
    /// Delivery is paused on this bucket.
    Paused,
    /// The slot was ended (fault, bucket deleted) with this error, or is gone.
    Ended(KvError),
}

/// A bucket: its log and watcher registry under one mutex.
pub struct BucketCell {
    name: String,
    state: Mutex<BucketState>,
}

impl std::fmt::Debug for BucketCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketCell")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn deleted_error(name: &str) -> KvError {
    KvError::WatchError(format!("bucket {name} was deleted"))
}

impl BucketCell {
    /// A bucket holding `log`, with these per-watcher queue bounds.
    pub fn new(log: BucketLog, limits: QueueLimits) -> Self {
        Self {
            name: log.name().to_string(),
            state: Mutex::new(BucketState {
                log,
                deleted: false,
                paused: false,
                slots: BTreeMap::new(),
                next_slot: 1,
                limits: QueueLimits {
                    len_max: limits.len_max.max(1),
                    bytes_max: limits.bytes_max.max(1),
                },
            }),
        }
    }

    /// The bucket name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Commits one write at `now_ms` and fans out every entry it committed (due
    /// expiry markers first, then the write), all in one critical section.
    pub fn commit(
        &self,
        op: WriteOp,
        now_ms: u64,
        max_payload: usize,
    ) -> Result<Arc<Entry>, KvError> {
        let mut state = lock(&self.state);
        let (due, result) = state.log.commit(op, now_ms, max_payload);
        state.fan_out(&due);
        if let Ok(entry) = &result {
            state.fan_out(std::slice::from_ref(entry));
        }
        result
    }

    /// Applies due time effects, then reads the log.
    pub fn read<T>(&self, now_ms: u64, f: impl FnOnce(&BucketLog) -> T) -> T {
        let mut state = lock(&self.state);
        state.run_due(now_ms);
        f(&state.log)
    }

    /// Applies due time effects, then changes the log without committing (faults:
    /// evictions, marker purges). Removals are not fanned out: a lagging watcher
    /// simply never finds them, as on NATS.
    pub fn mutate<T>(&self, now_ms: u64, f: impl FnOnce(&mut BucketLog) -> T) -> T {
        let mut state = lock(&self.state);
        state.run_due(now_ms);
        f(&mut state.log)
    }

    /// Applies every time effect due at `now_ms` and fans out the markers.
    pub fn run_due(&self, now_ms: u64) {
        lock(&self.state).run_due(now_ms);
    }

    /// The earliest age or TTL deadline in the log.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        lock(&self.state).log.next_deadline_ms()
    }

    /// Stream facts for a guard probe; `None` once the bucket is deleted.
    pub fn probe(&self, now_ms: u64) -> Option<StreamFacts> {
        let mut state = lock(&self.state);
        if state.deleted {
            return None;
        }
        state.run_due(now_ms);
        Some(state.log.facts(now_ms))
    }

    /// State-sync registration (W1, W2): in one critical section, reads
    /// `R = last_revision`, snapshots the latest in-scope entries and installs a
    /// queueing slot. Fails once the bucket is deleted.
    pub fn register_sync(
        &self,
        scope: Vec<String>,
        wake: Arc<Notify>,
    ) -> Result<Registration, KvError> {
        let mut state = lock(&self.state);
        if state.deleted {
            return Err(deleted_error(&self.name));
        }
        let prefixes: Vec<&str> = scope.iter().map(String::as_str).collect();
        let snapshot = state.log.latest_in_scope(&prefixes);
        let last_revision = state.log.last_revision();
        let slot = state.new_slot(scope, SlotMode::Queue, wake);
        Ok(Registration {
            slot,
            last_revision,
            snapshot,
        })
    }

    /// A **broken** state-sync registration that snapshots in one critical section
    /// and installs the slot in another; loom must catch the commits it loses.
    #[cfg(kvfold_loom)]
    #[doc(hidden)]
    pub fn register_sync_split_for_loom(
        &self,
        scope: Vec<String>,
        wake: Arc<Notify>,
    ) -> Registration {
        let (snapshot, last_revision) = {
            let state = lock(&self.state);
            let prefixes: Vec<&str> = scope.iter().map(String::as_str).collect();
            (
                state.log.latest_in_scope(&prefixes),
                state.log.last_revision(),
            )
        };
        let slot = lock(&self.state).new_slot(scope, SlotMode::Queue, wake);
        Registration {
            slot,
            last_revision,
            snapshot,
        }
    }

    /// Resumed registration at `start_sequence`: lagging from it when it is inside
    /// the log, queueing otherwise. Fails once the bucket is deleted.
    pub fn register_from(
        &self,
        scope: Vec<String>,
        start_sequence: u64,
        wake: Arc<Notify>,
    ) -> Result<SlotId, KvError> {
        let mut state = lock(&self.state);
        if state.deleted {
            return Err(deleted_error(&self.name));
        }
        let mode = if start_sequence <= state.log.last_revision() {
            SlotMode::Lagging {
                next: start_sequence,
            }
        } else {
            SlotMode::Queue
        };
        Ok(state.new_slot(scope, mode, wake))
    }

    /// Takes up to `max` entries for `slot` (W3): the queue front, or when the queue
    /// is empty and the slot lags, in-scope log entries from its position; a lagging
    /// slot that reaches the head switches back to queueing in the same critical section.
    pub fn take(&self, slot: SlotId, max: usize) -> Taken {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let paused = state.paused;
        let Some(s) = state.slots.get_mut(&slot) else {
            return Taken::Ended(deleted_error(&self.name));
        };
        if let Some(error) = &s.ended {
            return Taken::Ended(error.clone());
        }
        if paused {
            return Taken::Paused;
        }
        let mut out = Vec::new();
        while out.len() < max.max(1) {
            let Some(entry) = s.queue.pop_front() else {
                break;
            };
            s.queue_bytes = s
                .queue_bytes
                .saturating_sub(usize::try_from(entry.size).unwrap_or(usize::MAX));
            out.push(entry);
        }
        if !out.is_empty() {
            return Taken::Entries(out);
        }
        if let SlotMode::Lagging { next } = s.mode {
            let last = state.log.last_revision();
            let mut position = next;
            let mut examined = 0usize;
            for entry in state.log.entries_from(next) {
                if out.len() >= max.max(1) || examined >= LAGGING_SCAN_MAX {
                    break;
                }
                examined += 1;
                position = entry.revision + 1;
                if s.in_scope(&entry.key) {
                    out.push(Arc::clone(entry));
                }
            }
            if examined < LAGGING_SCAN_MAX && out.len() < max.max(1) {
                // Reached the end of the log: nothing retained up to `last` is left.
                position = last.saturating_add(1).max(position);
            }
            s.mode = if position > last {
                SlotMode::Queue
            } else {
                SlotMode::Lagging { next: position }
            };
        }
        Taken::Entries(out)
    }

    /// True when `slot` has more to take right now (used before waiting).
    pub fn has_pending(&self, slot: SlotId) -> bool {
        let state = lock(&self.state);
        state.slots.get(&slot).is_none_or(|s| {
            s.ended.is_some()
                || (!state.paused
                    && (!s.queue.is_empty() || matches!(s.mode, SlotMode::Lagging { .. })))
        })
    }

    /// The error `slot` was ended with, if any (a missing slot counts as deleted).
    pub fn ended(&self, slot: SlotId) -> Option<KvError> {
        let state = lock(&self.state);
        match state.slots.get(&slot) {
            None => Some(deleted_error(&self.name)),
            Some(s) => s.ended.clone(),
        }
    }

    /// Removes a slot (W7: nothing is pushed to it afterwards).
    pub fn deregister(&self, slot: SlotId) {
        lock(&self.state).slots.remove(&slot);
    }

    /// Ends every live slot with `error` and wakes it; returns how many.
    pub fn end_all(&self, error: &KvError) -> usize {
        let mut state = lock(&self.state);
        let mut count = 0;
        for slot in state.slots.values_mut() {
            if slot.ended.is_none() {
                slot.ended = Some(error.clone());
                slot.queue.clear();
                slot.queue_bytes = 0;
                slot.wake.notify_one();
                count += 1;
            }
        }
        count
    }

    /// Marks the bucket deleted and ends every slot with "bucket <b> was deleted".
    pub fn delete(&self) {
        let error = deleted_error(&self.name);
        self.end_all(&error);
        lock(&self.state).deleted = true;
    }

    /// Pauses or resumes delivery; resuming wakes every slot.
    pub fn set_paused(&self, paused: bool) {
        let mut state = lock(&self.state);
        state.paused = paused;
        if !paused {
            for slot in state.slots.values() {
                slot.wake.notify_one();
            }
        }
    }

    /// True while delivery is paused.
    pub fn is_paused(&self) -> bool {
        lock(&self.state).paused
    }

    /// Wakes every slot (after a heal, so stalled loops re-check).
    pub fn wake_all(&self) {
        for slot in lock(&self.state).slots.values() {
            slot.wake.notify_one();
        }
    }

    /// The newest stamp the bucket handed out (for creation stamps of later buckets).
    pub fn last_stamp_ms(&self) -> u64 {
        lock(&self.state).log.last_stamp_ms()
    }

    /// The bucket's effective configuration.
    pub fn config(&self) -> crate::stores::EffectiveConfig {
        lock(&self.state).log.effective_config().clone()
    }

    #[cfg(any(test, feature = "testkit"))]
    /// A copy of the log (tests and verifiers).
    pub fn log_snapshot(&self) -> BucketLog {
        lock(&self.state).log.clone()
    }

    #[cfg(any(test, feature = "testkit"))]
    /// Number of registered slots (tests).
    pub fn slot_count(&self) -> usize {
        lock(&self.state).slots.len()
    }
}
