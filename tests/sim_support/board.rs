//! The shared blackboard of one simulation run: the oracle, what each fold node
//! has been seen to do, and every violated invariant. The executor's closures and
//! the store wrapper record into it (never panicking: a panic inside `apply`
//! would unwind the run and look like a crash); the driver reads it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kvfold::{KvUpdate, WatchCursor};

use super::store::{Crash, Fault, Mutation};
use super::truth::{Fold, Seen, Truth, in_scope};

/// Which check a violation comes from (the mutation tests assert on these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// The fold (store contents) differs from the truth in scope, or touched a key out of scope.
    FoldTruth,
    /// The domain state `apply` built differs from the fold.
    DomainFold,
    /// A cursor went backwards, covered a hole, or ran ahead of `apply`.
    Cursor,
    /// `apply` (or the store) saw a revision regress, a phantom write or an out-of-scope key.
    Delivery,
    /// An exported artifact did not resume to the truth, or its manifest was wrong.
    Artifact,
    /// A reopened store did not hold exactly what the crash left on disk.
    Reopen,
    /// The `SnapshotStore` contract (a failed apply left the cursor unchanged).
    Contract,
    /// `WatchEnd` / run results disagree with docs/watch-applied.md.
    RunEnd,
    /// The fold did not catch up once every fault was cleared.
    Liveness,
    /// A repair moved a key to an older revision, deleted a value the truth still
    /// held, or deleted a key the bucket listed as live when the repair listed it.
    Repair,
    /// A key lost to eviction (aged out before the exporter folded it) with no
    /// error or repair warning anywhere in the run: a silent loss.
    Loss,
}

#[derive(Debug, Clone)]
pub struct Violation {
    pub check: Check,
    pub text: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:?}] {}", self.check, self.text)
    }
}

/// What `parse` hands to `apply`: one update of the bucket.
#[derive(Debug, Clone)]
pub struct Item {
    pub key: String,
    pub rev: u64,
    pub value: Option<Vec<u8>>,
    /// A restore's rewrite (the artifact's entry): exempt from the per-run order.
    pub restored: bool,
}

/// Keys ending in `/r` are rejected by `parse` (still bucket state: they reach the store).
pub fn accepted(key: &str) -> bool {
    !key.ends_with("/r")
}

pub fn seen_of(update: &KvUpdate) -> Seen<'_> {
    match update {
        KvUpdate::Put(e) => Seen::Put(&e.value),
        KvUpdate::Delete { .. } => Seen::Delete,
        KvUpdate::Purge { .. } => Seen::Purge,
    }
}

/// Counters reported by the tiers.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub runs: u64,
    pub store_calls: u64,
    pub commits: u64,
    pub crashes_before: u64,
    pub crashes_after: u64,
    pub crashes_torn: u64,
    pub transient_failures: u64,
    pub fail_stops: u64,
    pub kills: u64,
    pub expired_ends: u64,
    pub watch_runs: u64,
    pub exports_ok: u64,
    pub exports_refused: u64,
    pub replicas_verified: u64,
    pub kept_by_expiry: u64,
    pub domain_kept_by_expiry: u64,
    pub evictions: u64,
    pub relists: u64,
    pub guard_expiries: u64,
    pub stale_key_repairs: u64,
    pub relists_planned: u64,
    pub cursor_moved_back: u64,
    /// Updates parsed while the node's store apply was running (store applies in flight).
    pub parsed_in_flight: u64,
    /// Restores that started applying (`restoring`).
    pub restores: u64,
    /// Restore rewrites (artifact entries) the main node parsed.
    pub restored_puts: u64,
    /// Synthetic deletes the main node's store applied.
    pub synthetic_deletes: u64,
    /// Repairs refused (`repair refused`, error level).
    pub repair_refusals: u64,
    /// Keys' latest writes (current values, markers) evicted and seen gone.
    pub values_evicted: u64,
    /// Runs of restore worlds whose bucket also has a byte limit (discard old).
    pub byte_limited_runs: u64,
    /// In-process restarts whose domain had run ahead of the store
    /// (restore worlds rebuild it from the store).
    pub domain_rebuilt: u64,
    /// Crashes (before / after / torn) at a store call of a relist or restore.
    pub repair_crashes: u64,
    /// Keys lost: their latest write was evicted before the exporter folded it.
    pub lost: u64,
    /// Final-fold keys that differ from the truth only by such a loss (loudly).
    pub lost_excused: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.runs += o.runs;
        self.store_calls += o.store_calls;
        self.commits += o.commits;
        self.crashes_before += o.crashes_before;
        self.crashes_after += o.crashes_after;
        self.crashes_torn += o.crashes_torn;
        self.transient_failures += o.transient_failures;
        self.fail_stops += o.fail_stops;
        self.kills += o.kills;
        self.expired_ends += o.expired_ends;
        self.watch_runs += o.watch_runs;
        self.exports_ok += o.exports_ok;
        self.exports_refused += o.exports_refused;
        self.replicas_verified += o.replicas_verified;
        self.kept_by_expiry += o.kept_by_expiry;
        self.domain_kept_by_expiry += o.domain_kept_by_expiry;
        self.evictions += o.evictions;
        self.relists += o.relists;
        self.guard_expiries += o.guard_expiries;
        self.stale_key_repairs += o.stale_key_repairs;
        self.relists_planned += o.relists_planned;
        self.cursor_moved_back += o.cursor_moved_back;
        self.parsed_in_flight += o.parsed_in_flight;
        self.restores += o.restores;
        self.restored_puts += o.restored_puts;
        self.synthetic_deletes += o.synthetic_deletes;
        self.repair_refusals += o.repair_refusals;
        self.values_evicted += o.values_evicted;
        self.lost += o.lost;
        self.repair_crashes += o.repair_crashes;
        self.domain_rebuilt += o.domain_rebuilt;
        self.byte_limited_runs += o.byte_limited_runs;
        self.lost_excused += o.lost_excused;
    }
}

/// What one fold node (a process with its store) has been seen to do.
#[derive(Debug, Default)]
pub struct NodeObs {
    /// Its store's `apply` is running (on the blocking thread).
    pub applying: bool,
    // Per watch run (reset by `begin_run`).
    pub pending: BTreeSet<u64>,
    pub received: BTreeSet<u64>,
    pub stored: BTreeSet<u64>,
    pub last_parsed: Option<u64>,
    pub last_applied: Option<u64>,
    pub last_on_applied_rank: Option<u64>,
    pub fail_streak: u32,
    /// The cursor rank of the artifact this run fetched for a restore (set by
    /// `SimRestore::fetch`, cleared by the commit that reaches it or the next run):
    /// puts at or below it may be the restore's rewrites, in key order.
    pub restoring: Option<u64>,
    // Per process (reset on a reboot).
    pub domain: Fold,
    pub last_on_applied: Option<WatchCursor>,
    // Per store file (what the disk holds survives crashes).
    pub committed: WatchCursor,
    pub calls: u64,
    pub plan: BTreeMap<u64, Fault>,
    pub burst_left: u32,
    pub armed: bool,
    pub crash: Option<Crash>,
    pub closed: bool,
    /// Cursor and fold of the last live store of this node that was dropped.
    pub dropped: Option<(WatchCursor, Fold)>,
}

/// The blackboard.
#[derive(Debug, Default)]
pub struct Board {
    pub truth: Truth,
    pub prefixes: Vec<String>,
    pub mutation: Mutation,
    pub nodes: Vec<NodeObs>,
    pub violations: Vec<Violation>,
    pub stats: Stats,
    /// Every store call and its outcome, in order (determinism and failure reports).
    pub trace: Vec<String>,
    /// The main node repairs expiries (relist, restore, auto): its synthetic deletes
    /// (unknown versions) are corrections, not deliveries, and no difference from the
    /// truth is tolerated.
    pub repairing: bool,
    /// A restore world: the main node (node 0) restores from an exporter's artifacts.
    pub restore: bool,
    /// The exporter node of a restore world.
    pub exporter: Option<usize>,
    /// Every revision the exporter's `parse` received.
    pub exporter_received: BTreeSet<u64>,
    /// Keys whose latest write (at the revision given) was evicted before the exporter
    /// folded it.
    pub lost: BTreeMap<String, u64>,
    /// The truth's last revision when the main node's repair last listed each prefix.
    pub listings: BTreeMap<String, u64>,
    /// The thread's loud-event count when this run began.
    pub loud_base: u64,
}

pub type Shared = Arc<Mutex<Board>>;

pub fn lock(board: &Shared) -> MutexGuard<'_, Board> {
    board.lock().unwrap_or_else(PoisonError::into_inner)
}

fn revs(batch: &[KvUpdate]) -> Vec<u64> {
    batch
        .iter()
        .map(|u| u.version().as_u64().unwrap_or(0))
        .collect()
}

impl Board {
    pub fn violate(&mut self, check: Check, text: impl Into<String>) {
        let text = text.into();
        self.trace.push(format!("VIOLATION [{check:?}] {text}"));
        self.violations.push(Violation { check, text });
    }

    pub fn add_node(&mut self, committed: WatchCursor) -> usize {
        self.nodes.push(NodeObs {
            committed,
            ..NodeObs::default()
        });
        self.nodes.len() - 1
    }

    /// A new watch run of `node` starts: per-run observations restart.
    pub fn begin_run(&mut self, node: usize) {
        self.stats.watch_runs += 1;
        let n = &mut self.nodes[node];
        n.pending.clear();
        n.received.clear();
        n.stored.clear();
        n.last_parsed = None;
        n.last_applied = None;
        n.last_on_applied_rank = None;
        n.fail_streak = 0;
        n.restoring = None;
    }

    /// A relist's synthetic delete: an unknown-version delete, allowed only under
    /// relist, in scope, of a key the bucket really deleted at some point.
    fn check_correction(&mut self, who: &str, update: &KvUpdate) -> bool {
        let KvUpdate::Delete { key, version } = update else {
            return false;
        };
        if !self.repairing || version.as_u64().is_some() {
            return false;
        }
        if !in_scope(&self.prefixes, key) {
            self.violate(
                Check::Delivery,
                format!("{who}: synthetic delete out of scope {key:?}"),
            );
        } else if !self.truth.ever_deleted(key) && !self.lost.contains_key(key) {
            self.violate(
                Check::Delivery,
                format!("{who}: synthetic delete of {key:?}, which was never deleted"),
            );
        }
        true
    }

    fn check_update(&mut self, node: usize, who: &str, update: &KvUpdate) -> Option<u64> {
        let key = update.key();
        // The exporter folds the whole bucket.
        if Some(node) != self.exporter && !in_scope(&self.prefixes, key) {
            self.violate(Check::Delivery, format!("{who}: out-of-scope key {key:?}"));
        }
        let Some(rev) = update.version().as_u64() else {
            self.violate(
                Check::Delivery,
                format!("{who}: {key:?} without a revision"),
            );
            return None;
        };
        if let Err(e) = self.truth.check_real(key, rev, seen_of(update)) {
            self.violate(Check::Delivery, format!("{who}: phantom: {e}"));
        }
        Some(rev)
    }

    /// The `parse` closure: every update the loop receives, in receive order.
    pub fn parse(&mut self, node: usize, update: &KvUpdate) -> Option<Item> {
        if self.check_correction("parse", update) {
            // Revision 0 marks a correction: no real write has it.
            return Some(Item {
                key: update.key().to_string(),
                rev: 0,
                value: None,
                restored: false,
            });
        }
        let rev = self.check_update(node, "parse", update)?;
        let restored = self.nodes[node].restoring.is_some_and(|to| rev <= to)
            && matches!(update, KvUpdate::Put(_));
        if node == 0 && restored {
            self.stats.restored_puts += 1;
        }
        if Some(node) == self.exporter {
            self.exporter_received.insert(rev);
        }
        let last = self.nodes[node].last_parsed;
        if !restored && last.is_some_and(|l| rev <= l) {
            self.violate(
                Check::Delivery,
                format!("node {node}: delivery regressed within a run: {rev} after {last:?}"),
            );
        }
        if self.nodes[node].applying {
            self.stats.parsed_in_flight += 1;
        }
        let n = &mut self.nodes[node];
        if !restored {
            n.last_parsed = Some(rev);
        }
        n.received.insert(rev);
        let key = update.key();
        if !accepted(key) {
            return None;
        }
        n.pending.insert(rev);
        let value = match update {
            KvUpdate::Put(e) => Some(e.value.clone()),
            KvUpdate::Delete { .. } | KvUpdate::Purge { .. } => None,
        };
        Some(Item {
            key: key.to_string(),
            rev,
            value,
            restored,
        })
    }

    /// The `apply` closure: folds the batch into the domain state.
    pub fn apply(&mut self, node: usize, items: Vec<Item>) {
        for item in items {
            if item.rev == 0 {
                self.nodes[node].domain.remove(&item.key);
                continue;
            }
            let last = self.nodes[node].last_applied;
            if item.restored {
                // G1 in the domain: a rewrite never moves a key to an older revision.
                if let Some((held, _)) = self.nodes[node].domain.get(&item.key)
                    && *held > item.rev
                {
                    let text = format!(
                        "node {node}: a restore rewrote {:?} from revision {held} back to {}",
                        item.key, item.rev
                    );
                    self.violate(Check::Repair, text);
                }
            } else if last.is_some_and(|l| item.rev <= l) {
                self.violate(
                    Check::Delivery,
                    format!(
                        "node {node}: apply saw revision {} after {last:?}",
                        item.rev
                    ),
                );
            }
            let n = &mut self.nodes[node];
            if !item.restored {
                n.last_applied = Some(item.rev);
            }
            if !n.pending.remove(&item.rev) {
                self.violate(
                    Check::Delivery,
                    format!(
                        "node {node}: apply got revision {} that parse never accepted",
                        item.rev
                    ),
                );
            }
            let n = &mut self.nodes[node];
            match item.value {
                Some(v) => {
                    n.domain.insert(item.key, (item.rev, v));
                }
                None => {
                    n.domain.remove(&item.key);
                }
            }
        }
    }

    /// The `on_applied` closure.
    pub fn on_applied(&mut self, node: usize, cursor: WatchCursor) {
        let rank = cursor.rank();
        let n = &self.nodes[node];
        if let Some(p) = n.pending.range(..=rank).next() {
            let p = *p;
            self.violate(
                Check::Cursor,
                format!("node {node}: on_applied({rank}) before apply saw revision {p}"),
            );
        }
        let n = &self.nodes[node];
        if let Some(prev) = n.last_on_applied_rank
            && rank < prev
        {
            self.violate(
                Check::Cursor,
                format!("node {node}: on_applied went back {prev} -> {rank}"),
            );
        }
        let n = &mut self.nodes[node];
        n.last_on_applied_rank = Some(rank);
        n.last_on_applied = Some(cursor);
    }

    /// Checks a batch handed to the store, before any fault: scope, reality,
    /// order, and cursor-after-apply.
    pub fn check_store_batch(
        &mut self,
        node: usize,
        call: u64,
        batch: &[KvUpdate],
        cursor: &WatchCursor,
    ) {
        self.stats.store_calls += 1;
        let restoring = self.nodes[node].restoring;
        let mut prev: Option<u64> = None;
        for update in batch {
            if self.check_correction("store", update) {
                continue;
            }
            if let Some(rev) = self.check_update(node, "store", update) {
                // A restore's rewrites go in key order under the old cursor.
                if restoring.is_some_and(|to| rev <= to) {
                    continue;
                }
                if prev.is_some_and(|p| rev <= p) {
                    self.violate(
                        Check::Delivery,
                        format!("node {node}: store batch out of order at {rev}"),
                    );
                }
                prev = Some(rev);
            }
        }
        let rank = cursor.rank();
        if let Some(p) = self.nodes[node].pending.range(..=rank).next() {
            let p = *p;
            self.violate(
                Check::Cursor,
                format!("node {node}: store call {call} persists cursor {rank} before apply saw revision {p}"),
            );
        }
        if let Some(last) = prev
            && last > rank
        {
            self.violate(
                Check::Cursor,
                format!(
                    "node {node}: store call {call} holds revision {last} beyond its cursor {rank}"
                ),
            );
        }
    }

    /// The fault (if any) to inject at store call `call`.
    pub fn next_fault(&mut self, node: usize, call: u64) -> Option<Fault> {
        let n = &mut self.nodes[node];
        if !n.armed {
            return None;
        }
        if n.burst_left > 0 {
            n.burst_left -= 1;
            return Some(Fault::Transient);
        }
        match n.plan.get(&call).copied() {
            Some(Fault::Burst(k)) => {
                n.burst_left = k.saturating_sub(1);
                Some(Fault::Transient)
            }
            other => other,
        }
    }

    /// A store apply committed (`inner.apply` returned `Ok`).
    pub fn committed(&mut self, node: usize, call: u64, batch: &[KvUpdate], cursor: &WatchCursor) {
        self.stats.commits += 1;
        self.trace.push(format!(
            "n{node} call {call}: commit {:?} @{}",
            revs(batch),
            cursor.rank()
        ));
        let rank = cursor.rank();
        let before = self.nodes[node].committed.rank();
        if rank < before {
            self.violate(
                Check::Cursor,
                format!("node {node}: store cursor moved back {before} -> {rank} at call {call}"),
            );
        }
        let n = &mut self.nodes[node];
        n.fail_streak = 0;
        n.committed = cursor.clone();
        if n.restoring.is_some_and(|to| rank >= to) {
            n.restoring = None;
        }
        n.stored.extend(revs(batch));
        let hole = n
            .received
            .range(..=rank)
            .find(|r| !n.stored.contains(r))
            .copied();
        if let Some(hole) = hole {
            self.violate(
                Check::Cursor,
                format!("node {node}: store cursor {rank} covers revision {hole} that no committed batch held"),
            );
        }
    }

    /// A store apply reported an error.
    pub fn failed(
        &mut self,
        node: usize,
        call: u64,
        batch: &[KvUpdate],
        cursor: &WatchCursor,
        why: &str,
    ) {
        self.stats.transient_failures += 1;
        self.trace.push(format!(
            "n{node} call {call}: FAIL {:?} @{} ({why})",
            revs(batch),
            cursor.rank()
        ));
        self.nodes[node].fail_streak += 1;
    }

    pub fn crashed(&mut self, node: usize, crash: Crash, repairing: bool) {
        if repairing {
            self.stats.repair_crashes += 1;
        }
        match crash.fault {
            Fault::CrashBefore => self.stats.crashes_before += 1,
            Fault::CrashAfter => self.stats.crashes_after += 1,
            _ => self.stats.crashes_torn += 1,
        }
        self.trace.push(format!(
            "n{node} call {}: CRASH {:?} ({}), durable cursor {}",
            crash.call,
            crash.fault,
            crash.detail,
            crash.cursor.rank()
        ));
        self.nodes[node].crash = Some(crash);
    }
}
