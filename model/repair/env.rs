//! The `repair` model's environment: the bucket's log (every write ever made, so the
//! truth can be judged), the floor below which the bucket no longer holds messages, the
//! bucket's eviction setting, the newest published artifact, the snapshot store on disk
//! and the domain (what `apply` saw). Ghost data — which write a slot holds — is kept so
//! the properties can be judged; the production machines never see it.

use kvfold::{KvEntry, KvUpdate, Retention, VersionToken, WatchCursor};

/// What `parse` makes of an update: the write it came from (0 for a synthetic delete,
/// which carries no version), its key and whether it is a put.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Item {
    /// The revision of the write (0 = a repair's synthetic delete).
    pub rev: u8,
    /// The key index.
    pub key: u8,
    /// A put (`true`) or a delete.
    pub live: bool,
}

/// One write in the bucket's log (revision = index + 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Write {
    /// The key index.
    pub key: u8,
    /// A put (`true`) or a delete.
    pub live: bool,
}

/// What a store, a domain or an artifact holds for one key: the revision of the last
/// write folded into it (0 = none, or a synthetic delete) and whether it is live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Slot {
    /// Revision of the write folded last (0 = none or a synthetic delete).
    pub rev: u8,
    /// The key holds a value.
    pub live: bool,
}

impl Slot {
    /// The same value: both absent, or both live at the same revision (a delete
    /// marker and a synthetic delete both leave the key absent).
    pub fn same(self, other: Slot) -> bool {
        (!self.live && !other.live) || self == other
    }
}

/// The key names (ascending, the order of every key walk).
pub const KEYS: [&str; 3] = ["k0", "k1", "k2"];

/// The key index of a key name.
pub fn key_index(key: &str) -> u8 {
    KEYS.iter()
        .position(|k| *k == key)
        .map_or(u8::MAX, |i| i as u8)
}

/// The write an update came from (a ghost read: the version, or 0 without one).
pub fn revision_of(update: &KvUpdate) -> u8 {
    update
        .version()
        .as_u64()
        .map_or(0, |rev| u8::try_from(rev).unwrap_or(u8::MAX))
}

/// `parse`: every update is accepted; the item names its write.
pub fn parse(update: &KvUpdate) -> Item {
    Item {
        rev: revision_of(update),
        key: key_index(update.key()),
        live: matches!(update, KvUpdate::Put(_)),
    }
}

/// The update carrying `slot` of key `key` (a put with its version and a value naming
/// its write, or a delete).
pub fn update_of(key: u8, slot: Slot) -> KvUpdate {
    let key = KEYS[usize::from(key)].to_string();
    let version = VersionToken::from_u64(u64::from(slot.rev));
    if slot.live {
        KvUpdate::Put(KvEntry {
            key,
            value: vec![slot.rev],
            version,
        })
    } else {
        KvUpdate::Delete { key, version }
    }
}

/// A repair's synthetic delete of `key` (unknown version).
pub fn synthetic_delete(key: u8) -> KvUpdate {
    KvUpdate::Delete {
        key: KEYS[usize::from(key)].to_string(),
        version: VersionToken::unknown(),
    }
}

/// The cursor of revision `rev` (none for 0).
pub fn cursor_at(rev: u8) -> WatchCursor {
    if rev == 0 {
        WatchCursor::none()
    } else {
        WatchCursor::from_u64(u64::from(rev))
    }
}

/// The cursor's revision (0 for none).
pub fn rank(cursor: &WatchCursor) -> u8 {
    u8::try_from(cursor.rank()).unwrap_or(u8::MAX)
}

/// A published artifact: a node's fold at `rank` (the truth at that revision).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Artifact {
    /// Its cursor's revision.
    pub rank: u8,
    /// Its cursor carries the eviction memo.
    pub memo: bool,
    /// Per key, what it holds.
    pub slots: Vec<Slot>,
}

impl Artifact {
    /// The artifact's cursor.
    pub fn cursor(&self) -> WatchCursor {
        cursor_at(self.rank).remembering(self.memo)
    }
}

/// The bucket: its whole history, what it still holds and how it is configured.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Bucket {
    /// Revision `i + 1` is `log[i]` (ghost: the bucket holds only `floor..`).
    pub log: Vec<Write>,
    /// The first revision the bucket still holds (1 = nothing removed).
    pub floor: u8,
    /// The configuration can remove a key's current value (age or size limits).
    pub evicting: bool,
    /// The newest published artifact.
    pub artifact: Option<Artifact>,
}

impl Bucket {
    /// The head revision.
    pub fn head(&self) -> u8 {
        self.log.len() as u8
    }

    /// The fold of the whole log: every write minus every real delete.
    pub fn truth(&self, keys: u8) -> Vec<Slot> {
        let mut slots = vec![Slot::default(); usize::from(keys)];
        for (index, write) in self.log.iter().enumerate() {
            slots[usize::from(write.key)] = Slot {
                rev: index as u8 + 1,
                live: write.live,
            };
        }
        slots
    }

    /// Whether the write at `rev` is the latest of its key among revisions `..= head`.
    pub fn latest_of_key(&self, rev: u8, head: u8) -> bool {
        let key = self.log[usize::from(rev) - 1].key;
        !self.log[usize::from(rev)..usize::from(head)]
            .iter()
            .any(|w| w.key == key)
    }

    /// `KvReader::for_each_key`: the keys whose latest write is a put the bucket
    /// still holds.
    pub fn listing(&self, keys: u8) -> Vec<bool> {
        self.truth(keys)
            .iter()
            .map(|slot| slot.live && slot.rev >= self.floor)
            .collect()
    }

    /// `KvWatcher::retention`.
    pub fn retention(&self) -> Option<Retention> {
        Some(Retention {
            evicts_current_values: self.evicting,
            first_revision: u64::from(self.floor),
        })
    }

    /// What removing the message at the floor would remove, or `None` when the bucket
    /// may not remove it: a superseded message or a current delete marker may always
    /// go, a current value only while the bucket evicts; either only once an artifact
    /// at or above it is published (exports run well inside retention;
    /// docs/decisions.md 110).
    pub fn trimmable(&self) -> Option<Trim> {
        let rev = self.floor;
        if rev > self.head() || self.artifact.as_ref().is_none_or(|a| a.rank < rev) {
            return None;
        }
        let write = self.log[usize::from(rev) - 1];
        match (self.latest_of_key(rev, self.head()), write.live) {
            (false, _) => Some(Trim::Superseded),
            (true, false) => Some(Trim::Marker),
            (true, true) if self.evicting => Some(Trim::Value),
            (true, true) => None,
        }
    }
}

/// What leaves the bucket when its floor moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trim {
    /// A message a later write of its key superseded.
    Superseded,
    /// A key's current delete marker (purged).
    Marker,
    /// A key's current value (aged out or discarded).
    Value,
}

/// The watch the watch task started: resumed after `from`, or state-sync (the latest
/// write of each key held up to `sync_head`, then every later write).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Watch {
    /// The resume cursor's revision (`None` = full state-sync watch).
    pub from: Option<WatchCursor>,
    /// The next revision it may deliver.
    pub next: u8,
    /// The snapshot's head revision for a state-sync watch.
    pub sync_head: Option<u8>,
}

/// What the watch does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WatchStep {
    /// Deliver this revision.
    Deliver(u8),
    /// The resumed watch finds its next message gone: `CursorExpired` (the resume
    /// guard, at resume or mid-watch).
    Expire,
}

impl Watch {
    /// The watch a `StartWatch { from }` registers on `bucket`.
    pub fn start(from: Option<WatchCursor>, bucket: &Bucket) -> Self {
        match from {
            Some(c) => Watch {
                next: rank(&c) + 1,
                from: Some(c),
                sync_head: None,
            },
            None => Watch {
                from: None,
                next: bucket.floor,
                sync_head: Some(bucket.head()),
            },
        }
    }

    /// Its next step, if any.
    pub fn step(&self, bucket: &Bucket) -> Option<WatchStep> {
        if self.from.is_some() && self.next < bucket.floor {
            return Some(WatchStep::Expire);
        }
        (self.next.max(bucket.floor)..=bucket.head())
            .find(|&rev| match self.sync_head {
                Some(head) if rev <= head => bucket.latest_of_key(rev, head),
                _ => true,
            })
            .map(WatchStep::Deliver)
    }
}

/// The snapshot store on disk: its cursor and, per key, the write it holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Store {
    /// `SnapshotStore::cursor()`.
    pub cursor: WatchCursor,
    /// Per key, the write folded last.
    pub slots: Vec<Slot>,
}

impl Store {
    /// A fresh store: no cursor, nothing held.
    pub fn new(keys: u8) -> Self {
        Self {
            cursor: WatchCursor::none(),
            slots: vec![Slot::default(); usize::from(keys)],
        }
    }

    /// Folds `raw` into the data (without touching the cursor).
    pub fn fold(&mut self, raw: &[KvUpdate]) {
        for update in raw {
            let item = parse(update);
            if let Some(slot) = self.slots.get_mut(usize::from(item.key)) {
                *slot = Slot {
                    rev: item.rev,
                    live: item.live,
                };
            }
        }
    }

    /// `SnapshotStore::has_entries()`.
    pub fn has_entries(&self) -> bool {
        self.slots.iter().any(|s| s.live)
    }

    /// The cursor is resumable: a resume after it misses nothing the bucket had.
    pub fn resumable(&self, bucket: &Bucket) -> bool {
        kvfold::protocol::resume_window_ok(self.cursor.rank(), u64::from(bucket.floor))
    }

    /// Store + tail = truth: every key without a write above the cursor holds its
    /// current value (a key written above it may hold anything: the resume delivers it).
    pub fn complete(&self, bucket: &Bucket) -> bool {
        let upto = usize::from(rank(&self.cursor)).min(bucket.log.len());
        let truth = bucket.truth(self.slots.len() as u8);
        self.slots
            .iter()
            .zip(&truth)
            .enumerate()
            .all(|(key, (held, due))| {
                let written_above = bucket.log[upto..].iter().any(|w| usize::from(w.key) == key);
                written_above || held.same(*due)
            })
    }
}
