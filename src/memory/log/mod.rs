//! The bucket log core: one bucket's committed log with NATS KV semantics
//! (revisions, per-key history, markers, CAS, rollups, limits, expiry and byte
//! accounting). Pure and deterministic: time is an argument, nothing here locks,
//! sleeps or performs I/O. It models the *server*, so it is not a kvfold decision
//! and does not live in `protocol`; models and simulations embed it as their NATS.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::kv::{BucketStatus, KvError, Retention};
#[cfg(any(test, feature = "testkit"))]
use crate::kv::{StoreConfig, StoreOptions};
use crate::protocol::nats::{TtlError, go_duration_string, ttl_header_value, ttl_ms_rounded_up};
use crate::protocol::refusal::require_key;
use crate::protocol::resume::{LogLimits, StreamFacts};
use crate::protocol::subject::{MAX_VALUE_BYTES, key_in_scope, value_len_is_valid};
use crate::stores::{DiscardPolicy, EffectiveConfig};

mod entry;
mod prepare;

pub use entry::{Entry, EntryKind, WriteOp, header_block_len, message_size};

/// Header names of the messages nats-server writes.
const EXPECTED_SEQ: &str = "Nats-Expected-Last-Subject-Sequence";
const EXPECTED_SEQ_SUBJECT: &str = "Nats-Expected-Last-Subject-Sequence-Subject";
const KV_OPERATION: &str = "KV-Operation";
const ROLLUP: &str = "Nats-Rollup";
const TTL: &str = "Nats-TTL";
const MARKER_REASON: &str = "Nats-Marker-Reason";

/// What a write leaves behind for its key before it is appended.
enum Removal {
    /// The oldest entries beyond the history limit.
    History,
    /// Every earlier entry of the key.
    Rollup,
}

/// A validated write, ready to append.
struct Prepared {
    key: String,
    kind: EntryKind,
    value: Vec<u8>,
    ttl_ms: Option<u64>,
    headers: Vec<(&'static str, String)>,
    removal: Removal,
}

/// One bucket's committed log (docs/memory-backend.md, "The bucket log (`BucketLog`)").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketLog {
    config: EffectiveConfig,
    created_ms: u64,
    entries: BTreeMap<u64, Arc<Entry>>,
    by_key: BTreeMap<String, VecDeque<u64>>,
    /// `(deadline_ms, revision)` of every entry with an age or TTL deadline.
    deadlines: BTreeSet<(u64, u64)>,
    last_revision: u64,
    last_stamp: u64,
    bytes: u64,
}

impl BucketLog {
    /// A fresh, empty bucket created at `created_ms`. `config` is assumed validated
    /// (`stores::validate_config`); defaults are applied here.
    #[cfg(any(test, feature = "testkit"))]
    pub fn new(name: &str, config: &StoreConfig, options: &StoreOptions, created_ms: u64) -> Self {
        let mut effective = EffectiveConfig::of(config, options);
        effective.name = name.to_string();
        Self::with_effective(effective, created_ms)
    }

    /// A fresh bucket from an already effective configuration.
    #[doc(hidden)]
    pub fn with_effective(config: EffectiveConfig, created_ms: u64) -> Self {
        Self {
            config,
            created_ms,
            entries: BTreeMap::new(),
            by_key: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            last_revision: 0,
            last_stamp: created_ms,
            bytes: 0,
        }
    }

    /// The bucket name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The effective configuration.
    #[doc(hidden)]
    pub fn effective_config(&self) -> &EffectiveConfig {
        &self.config
    }

    #[cfg(any(test, feature = "testkit"))]
    /// The creation stamp (Unix ms).
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }

    /// The newest stamp this bucket handed out (at least its creation stamp).
    pub fn last_stamp_ms(&self) -> u64 {
        self.last_stamp
    }

    /// The newest revision ever stored.
    pub fn last_revision(&self) -> u64 {
        self.last_revision
    }

    /// The oldest retained revision; `last + 1` when drained; 0 when never written.
    pub fn first_revision(&self) -> u64 {
        match self.entries.keys().next() {
            Some(&first) => first,
            None if self.last_revision == 0 => 0,
            None => self.last_revision.saturating_add(1),
        }
    }

    /// Number of retained messages.
    pub fn values(&self) -> u64 {
        self.entries.len() as u64
    }

    #[cfg(any(test, feature = "testkit"))]
    /// Bytes accounted for the retained messages.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn subject_len(&self, key: &str) -> usize {
        // "$KV." + bucket + "." + key
        4 + self.config.name.len() + 1 + key.len()
    }

    /// The log limits (same classification kernel as NATS).
    pub fn limits(&self) -> LogLimits {
        LogLimits {
            max_age_ms: self.config.max_age_ms,
            allow_msg_ttl: self.config.allow_msg_ttl,
            discard_old: self.config.discard == DiscardPolicy::Old,
            max_bytes: self.config.max_bytes,
            max_msgs: -1,
        }
    }

    /// The retention reading.
    pub fn retention(&self) -> Retention {
        Retention {
            evicts_current_values: self.limits().evicts_current_values(),
            first_revision: self.first_revision(),
        }
    }

    /// The stream facts a resume guard's probe reads, with `now_ms` as server time.
    pub fn facts(&self, now_ms: u64) -> StreamFacts {
        StreamFacts {
            first_sequence: self.first_revision(),
            last_sequence: self.last_revision,
            created_ms: Some(self.created_ms),
            server_now_ms: Some(now_ms),
            limits: self.limits(),
        }
    }

    /// The bucket status.
    pub fn status(&self) -> BucketStatus {
        BucketStatus::new(
            self.config.name.clone(),
            self.first_revision(),
            self.last_revision,
            self.created_ms,
            self.retention(),
        )
        .with_counts(self.values(), self.bytes)
        .with_config(self.config.store_config(), self.config.store_options())
    }

    /// The latest retained entry of `key`, of any kind.
    pub fn latest(&self, key: &str) -> Option<&Arc<Entry>> {
        let revision = *self.by_key.get(key)?.back()?;
        self.entries.get(&revision)
    }

    /// Every retained entry with revision ≥ `revision`, ascending.
    pub fn entries_from(&self, revision: u64) -> impl Iterator<Item = &Arc<Entry>> {
        self.entries.range(revision..).map(|(_, e)| e)
    }

    /// The latest retained entry of each in-scope key (markers included), ascending revision.
    pub fn latest_in_scope(&self, prefixes: &[&str]) -> Vec<Arc<Entry>> {
        let mut out: Vec<Arc<Entry>> = self
            .by_key
            .iter()
            .filter(|(key, _)| key_in_scope(key, prefixes))
            .filter_map(|(_, revs)| revs.back().and_then(|r| self.entries.get(r)).cloned())
            .collect();
        out.sort_by_key(|e| e.revision);
        out
    }

    /// Keys starting with `prefix` whose latest entry is a non-empty value, ascending
    /// by key, with that entry.
    pub fn live_in_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Entry>> + 'a {
        self.by_key
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(key, _)| key.starts_with(prefix))
            .filter_map(|(_, revs)| revs.back().and_then(|r| self.entries.get(r)))
            .filter(|e| e.is_live_value())
    }

    /// The earliest age or TTL deadline of any retained entry.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.deadlines.first().map(|&(deadline, _)| deadline)
    }

    fn deadline_of(&self, entry: &Entry) -> Option<u64> {
        let age = (self.config.max_age_ms > 0)
            .then(|| entry.stamp_ms.saturating_add(self.config.max_age_ms));
        match (age, entry.expires_at_ms) {
            (Some(a), Some(t)) => Some(a.min(t)),
            (a, t) => a.or(t),
        }
    }

    fn remove(&mut self, revision: u64) -> Option<Arc<Entry>> {
        let entry = self.entries.remove(&revision)?;
        if let Some(revs) = self.by_key.get_mut(&entry.key) {
            revs.retain(|&r| r != revision);
            if revs.is_empty() {
                self.by_key.remove(&entry.key);
            }
        }
        if let Some(deadline) = self.deadline_of(&entry) {
            self.deadlines.remove(&(deadline, revision));
        }
        self.bytes = self.bytes.saturating_sub(entry.size);
        Some(entry)
    }

    /// Revisions a write to `key` removes: the oldest beyond the history limit, or all.
    fn removed_by(&self, key: &str, removal: &Removal) -> Vec<u64> {
        let Some(revs) = self.by_key.get(key) else {
            return Vec::new();
        };
        match removal {
            Removal::Rollup => revs.iter().copied().collect(),
            Removal::History => {
                let max = self.config.max_history as usize;
                let excess = (revs.len() + 1).saturating_sub(max);
                revs.iter().copied().take(excess).collect()
            }
        }
    }

    fn append(&mut self, prepared: Prepared, stamp_floor: u64) -> Arc<Entry> {
        let Prepared {
            key,
            kind,
            value,
            ttl_ms,
            headers,
            removal,
        } = prepared;
        // nats-server order: store, per-subject history limit, byte limit (discard
        // old), then the rollup purge of the key's earlier messages (pinned by the
        // differential test).
        let removed = self.removed_by(&key, &Removal::History);
        let rollup = matches!(removal, Removal::Rollup);
        let header_len = header_block_len(&headers);
        let size = message_size(
            self.config.storage,
            self.subject_len(&key),
            header_len,
            value.len(),
        );
        self.last_revision += 1;
        let stamp = stamp_floor.max(self.last_stamp);
        self.last_stamp = stamp;
        let entry = Arc::new(Entry {
            revision: self.last_revision,
            key: key.clone(),
            kind,
            value,
            stamp_ms: stamp,
            expires_at_ms: ttl_ms.map(|t| stamp.saturating_add(t)),
            header_len,
            size,
        });
        if let Some(deadline) = self.deadline_of(&entry) {
            self.deadlines.insert((deadline, entry.revision));
        }
        self.entries.insert(entry.revision, Arc::clone(&entry));
        self.by_key
            .entry(key)
            .or_default()
            .push_back(entry.revision);
        self.bytes += size;
        for revision in removed {
            self.remove(revision);
        }
        self.discard_old();
        if rollup {
            let earlier: Vec<u64> = self
                .by_key
                .get(&entry.key)
                .map(|revs| {
                    revs.iter()
                        .copied()
                        .filter(|&r| r < entry.revision)
                        .collect()
                })
                .unwrap_or_default();
            for revision in earlier {
                self.remove(revision);
            }
        }
        entry
    }

    /// Discard-old eviction: drop the oldest messages until the log fits.
    fn discard_old(&mut self) {
        if self.config.discard != DiscardPolicy::Old || self.config.max_bytes <= 0 {
            return;
        }
        let max = self.config.max_bytes as u64;
        while self.bytes > max {
            let Some(&first) = self.entries.keys().next() else {
                break;
            };
            self.remove(first);
        }
    }

    /// Applies every time effect due at `now_ms` (TTL, `max_age`, marker expiry) in
    /// deadline order; returns the expiry markers it committed.
    pub fn apply_due(&mut self, now_ms: u64) -> Vec<Arc<Entry>> {
        let mut committed = Vec::new();
        while let Some(&(deadline, revision)) = self.deadlines.first() {
            if deadline > now_ms {
                break;
            }
            // nats-server writes an expiry marker only when the removal empties the
            // key's subject (pinned on 2.15 by tests/nats_pinned.rs): a removed
            // latest value with older entries still retained leaves no marker.
            let was_only = self
                .entries
                .get(&revision)
                .and_then(|e| self.by_key.get(&e.key))
                .is_some_and(|revs| revs.len() == 1 && revs.front() == Some(&revision));
            let Some(removed) = self.remove(revision) else {
                self.deadlines.remove(&(deadline, revision));
                continue;
            };
            if let (true, EntryKind::Value, Some(marker_ttl_ms)) =
                (was_only, removed.kind, self.config.limit_marker_ttl_ms)
            {
                let marker_ttl = Duration::from_millis(marker_ttl_ms);
                let marker = Prepared {
                    key: removed.key.clone(),
                    kind: EntryKind::ExpiryMarker,
                    value: Vec::new(),
                    ttl_ms: Some(marker_ttl_ms),
                    headers: vec![
                        (MARKER_REASON, "MaxAge".to_string()),
                        (TTL, go_duration_string(marker_ttl)),
                        (ROLLUP, "sub".to_string()),
                    ],
                    removal: Removal::Rollup,
                };
                committed.push(self.append(marker, deadline));
            }
        }
        committed
    }

    /// Commits one write at `now_ms` (docs/memory-backend.md, "The bucket log
    /// (`BucketLog`)"). Returns the entries committed by due time effects first, then the
    /// write's outcome; a failed write changes nothing but the due effects.
    pub fn commit(
        &mut self,
        op: WriteOp,
        now_ms: u64,
        max_payload: usize,
    ) -> (Vec<Arc<Entry>>, Result<Arc<Entry>, KvError>) {
        let due = self.apply_due(now_ms);
        let result = self.commit_prepared(op, now_ms, max_payload);
        (due, result)
    }

    fn commit_prepared(
        &mut self,
        op: WriteOp,
        now_ms: u64,
        max_payload: usize,
    ) -> Result<Arc<Entry>, KvError> {
        let prepared = self.prepare(op)?;
        if !value_len_is_valid(prepared.value.len()) {
            return Err(KvError::OperationFailed(format!(
                "payload too large: a {}-byte value is over kvfold's {MAX_VALUE_BYTES}-byte value limit",
                prepared.value.len()
            )));
        }
        let header_len = header_block_len(&prepared.headers);
        let payload = header_len as usize + prepared.value.len();
        if max_payload > 0 && payload > max_payload {
            return Err(KvError::OperationFailed(format!(
                "payload too large: {payload} > {max_payload} bytes"
            )));
        }
        if self.config.discard == DiscardPolicy::New && self.config.max_bytes > 0 {
            let size = message_size(
                self.config.storage,
                self.subject_len(&prepared.key),
                header_len,
                prepared.value.len(),
            );
            // nats-server's rule (pinned by the differential test against 2.15): a
            // write that does not fit is still accepted when its key is at the
            // history limit and the key's oldest message, which the write replaces,
            // is at least as large as the new one.
            let fits = self.bytes + size <= self.config.max_bytes as u64;
            let replaces_larger = self.by_key.get(&prepared.key).is_some_and(|revs| {
                revs.len() >= self.config.max_history as usize
                    && revs
                        .front()
                        .and_then(|r| self.entries.get(r))
                        .is_some_and(|oldest| oldest.size >= size)
            });
            if !fits && !replaces_larger {
                return Err(KvError::OperationFailed(format!(
                    "bucket {} is full (max_bytes {}, discard new)",
                    self.config.name, self.config.max_bytes
                )));
            }
        }
        Ok(self.append(prepared, now_ms))
    }

    /// Removes every entry with revision below `revision` (no markers); returns the
    /// new first revision.
    pub fn evict_below(&mut self, revision: u64) -> u64 {
        let doomed: Vec<u64> = self.entries.range(..revision).map(|(&r, _)| r).collect();
        for r in doomed {
            self.remove(r);
        }
        self.first_revision()
    }

    /// Removes the `count` lowest-revision entries; returns the new first revision.
    pub fn evict_head(&mut self, count: usize) -> u64 {
        let doomed: Vec<u64> = self.entries.keys().take(count).copied().collect();
        for r in doomed {
            self.remove(r);
        }
        self.first_revision()
    }

    /// For every key whose latest entry is a marker stamped at or before
    /// `now_ms - older_than_ms` (every such key when `older_than_ms` is 0), removes
    /// all its entries; returns how many keys.
    pub fn purge_markers(&mut self, older_than_ms: u64, now_ms: u64) -> usize {
        // `now - older_than` before the epoch: no stamp is old enough.
        let cutoff = now_ms.checked_sub(older_than_ms);
        let keys: Vec<String> = self
            .by_key
            .iter()
            .filter_map(|(key, revs)| {
                let latest = self.entries.get(revs.back()?)?;
                let old_enough =
                    older_than_ms == 0 || cutoff.is_some_and(|cutoff| latest.stamp_ms <= cutoff);
                (latest.kind.is_marker() && old_enough).then(|| key.clone())
            })
            .collect();
        for key in &keys {
            let revs: Vec<u64> = self
                .by_key
                .get(key)
                .map(|r| r.iter().copied().collect())
                .unwrap_or_default();
            for r in revs {
                self.remove(r);
            }
        }
        keys.len()
    }
}

#[cfg(test)]
mod tests;
