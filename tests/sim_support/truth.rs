//! The oracle: every write the simulation made to the bucket, by revision, and the
//! eviction floor it imposed. It answers "what must the fold hold" and "is this
//! delivered update a real write". It never looks at the fold or the executor.

use std::collections::BTreeMap;

/// A fold as the checks compare it: key → (revision, value).
pub type Fold = BTreeMap<String, (u64, Vec<u8>)>;

/// One write of the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put(Vec<u8>),
    Delete,
    Purge,
}

/// What a delivered update claims to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen<'a> {
    Put(&'a [u8]),
    Delete,
    Purge,
}

pub fn in_scope(prefixes: &[String], key: &str) -> bool {
    prefixes.iter().any(|p| key.starts_with(p.as_str()))
}

/// The bucket's write history as the driver made it.
#[derive(Debug, Default)]
pub struct Truth {
    ops: BTreeMap<u64, (String, Op)>,
    latest: BTreeMap<String, u64>,
    /// Every revision below this was evicted by the simulation (`evict_below`).
    floor: u64,
    last: u64,
}

impl Truth {
    pub fn record(&mut self, rev: u64, key: &str, op: Op) {
        assert!(rev > self.last, "revisions grow: {rev} after {}", self.last);
        self.last = rev;
        self.ops.insert(rev, (key.to_string(), op));
        self.latest.insert(key.to_string(), rev);
    }

    pub fn floor(&self) -> u64 {
        self.floor
    }

    pub fn set_floor(&mut self, floor: u64) {
        self.floor = self.floor.max(floor);
    }

    /// `Ok` when the bucket really holds this write at `rev`: same key, same kind,
    /// same value. A delete the driver never made is a phantom.
    pub fn check_real(&self, key: &str, rev: u64, seen: Seen<'_>) -> Result<(), String> {
        let Some((k, op)) = self.ops.get(&rev) else {
            return Err(format!("no write has revision {rev} (update for {key:?})"));
        };
        let same = k == key
            && match (op, seen) {
                (Op::Put(v), Seen::Put(s)) => v.as_slice() == s,
                (Op::Delete, Seen::Delete) | (Op::Purge, Seen::Purge) => true,
                _ => false,
            };
        if same {
            Ok(())
        } else {
            Err(format!(
                "update {key:?}@{rev} {seen:?} does not match the write at that revision: {k:?} {op:?}"
            ))
        }
    }

    fn latest_op(&self, key: &str) -> Option<(u64, &Op)> {
        let rev = *self.latest.get(key)?;
        Some((rev, &self.ops[&rev].1))
    }

    /// Whether `key` really had `value` at revision `rev`.
    pub fn was_put(&self, key: &str, rev: u64, value: &[u8]) -> bool {
        matches!(self.ops.get(&rev), Some((k, Op::Put(v))) if k == key && v.as_slice() == value)
    }

    /// Whether the truth deleted `key` at a revision above `rev`: the only case
    /// where a repair may delete a value the fold holds at `rev`.
    pub fn deleted_after(&self, key: &str, rev: u64) -> bool {
        self.ops
            .range(rev + 1..)
            .any(|(_, (k, op))| k == key && matches!(op, Op::Delete | Op::Purge))
    }

    /// The latest write of `key` at or below revision `at`: `Some(rev)` when it is a put.
    pub fn live_at(&self, key: &str, at: u64) -> Option<u64> {
        self.ops
            .range(..=at)
            .rev()
            .find(|(_, (k, _))| k == key)
            .and_then(|(rev, (_, op))| matches!(op, Op::Put(_)).then_some(*rev))
    }

    /// The last revision written.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Keys (every scope) whose latest write sits below `first`: gone from the
    /// bucket (with one revision per key, exactly the evicted current values and
    /// the evicted delete markers of deleted keys), with that write's revision.
    pub fn evicted_latest(&self, first: u64) -> Vec<(String, u64)> {
        self.latest
            .iter()
            .filter(|(_, rev)| **rev < first)
            .map(|(k, rev)| (k.clone(), *rev))
            .collect()
    }

    /// Whether `key` was ever deleted or purged: the only keys a relist may delete.
    pub fn ever_deleted(&self, key: &str) -> bool {
        self.ops
            .values()
            .any(|(k, op)| k == key && matches!(op, Op::Delete | Op::Purge))
    }

    /// The live keys in scope with their latest value: what the fold must hold.
    pub fn live_in(&self, prefixes: &[String]) -> Fold {
        self.latest
            .iter()
            .filter(|(k, _)| in_scope(prefixes, k))
            .filter_map(|(k, rev)| match &self.ops[rev].1 {
                Op::Put(v) => Some((k.clone(), (*rev, v.clone()))),
                Op::Delete | Op::Purge => None,
            })
            .collect()
    }

    /// The lowest latest-value revision of any live key (every scope): evicting
    /// below it removes only superseded writes and delete markers, never a live
    /// value, so "the truth" stays every write minus every real delete.
    pub fn safe_floor(&self) -> u64 {
        self.latest
            .values()
            .filter(|rev| matches!(self.ops[rev].1, Op::Put(_)))
            .min()
            .copied()
            .unwrap_or(self.last + 1)
    }

    /// Up to `n` live keys whose latest value is oldest, oldest first.
    pub fn oldest_live(&self, n: usize) -> Vec<String> {
        let mut live: Vec<(u64, &String)> = self
            .latest
            .iter()
            .filter(|(_, rev)| matches!(self.ops[rev].1, Op::Put(_)))
            .map(|(k, rev)| (*rev, k))
            .collect();
        live.sort();
        live.into_iter().take(n).map(|(_, k)| k.clone()).collect()
    }

    /// The documented exception of `ExpiryRepair::None` (docs/protocols/repair.md, "What this version
    /// does: `ExpiryRepair::None`"): a key deleted while its marker was evicted may stay in
    /// the fold — but only with a value it really had before that delete.
    pub fn kept_by_expiry(&self, key: &str, rev: u64, value: &[u8]) -> bool {
        let Some((deleted_at, op)) = self.latest_op(key) else {
            return false;
        };
        let marker_evicted = matches!(op, Op::Delete | Op::Purge) && deleted_at < self.floor;
        let was_real = rev < deleted_at
            && matches!(self.ops.get(&rev), Some((k, Op::Put(v))) if k == key && v.as_slice() == value);
        marker_evicted && was_real
    }

    /// The highest revision a caught-up fold of this scope has committed: the
    /// newest retained latest entry of an in-scope key (0 when there is none).
    pub fn target(&self, prefixes: &[String]) -> u64 {
        self.latest
            .iter()
            .filter(|(k, rev)| in_scope(prefixes, k) && **rev >= self.floor)
            .map(|(_, rev)| *rev)
            .max()
            .unwrap_or(0)
    }
}
