//! The `fold` model's environment: the bucket's log (a NATS-like stream of
//! writes to a few keys), the watch consumer that delivers it, the snapshot
//! store on disk and the domain (what `apply` saw). Ghost data — which write a
//! store slot or a domain slot holds — is kept so the properties can be judged;
//! the production machine never sees it.

use kvfold::protocol::fold::FoldEvent;
use kvfold::protocol::time::Millis;
use kvfold::{KvEntry, KvUpdate, VersionToken, WatchCursor};

/// What `parse` makes of an update: the write it came from (read back from the
/// value or the version), its key and whether it is a put.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Item {
    /// The revision of the write.
    pub rev: u8,
    /// The key index.
    pub key: u8,
    /// A put (`true`) or a delete.
    pub live: bool,
}

/// How a write appears to the fold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WriteKind {
    /// A put, delivered with its version, accepted by `parse`.
    Put,
    /// A delete marker, delivered with its version, accepted by `parse`.
    Delete,
    /// A put the watch delivers with `VersionToken::unknown()`.
    PutUnknownVersion,
    /// A put `parse` rejects (still bucket state: it goes to the store).
    PutRejected,
}

/// One write in the bucket's log (revision = index + 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Write {
    /// The key index.
    pub key: u8,
    /// How it appears.
    pub kind: WriteKind,
}

/// What a store or domain holds for one key: the revision of the last write
/// folded into it (0 = none) and whether that write was a put.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Slot {
    /// Revision of the write folded last (0 = never written).
    pub rev: u8,
    /// The key is live (the write was a put).
    pub live: bool,
}

/// The key names.
const KEYS: [&str; 3] = ["k0", "k1", "k2"];

fn key_index(key: &str) -> u8 {
    KEYS.iter()
        .position(|k| *k == key)
        .map_or(u8::MAX, |i| i as u8)
}

/// The update the watch delivers for revision `rev`, and what `parse` returns.
pub fn delivery(log: &[Write], rev: u8) -> (KvUpdate, Option<Item>) {
    let write = log[usize::from(rev) - 1];
    let key = KEYS[usize::from(write.key)].to_string();
    let version = match write.kind {
        WriteKind::PutUnknownVersion => VersionToken::unknown(),
        _ => VersionToken::from_u64(u64::from(rev)),
    };
    let update = match write.kind {
        WriteKind::Delete => KvUpdate::Delete { key, version },
        // The value names the write, so a store or the domain can be judged.
        _ => KvUpdate::Put(KvEntry {
            key,
            value: vec![rev],
            version,
        }),
    };
    let parsed = (write.kind != WriteKind::PutRejected).then_some(Item {
        rev,
        key: write.key,
        live: write.kind != WriteKind::Delete,
    });
    (update, parsed)
}

/// The write an update came from (a ghost read: the version, or the value).
pub fn revision_of(update: &KvUpdate) -> u8 {
    match update.version().as_u64() {
        Some(rev) => u8::try_from(rev).unwrap_or(u8::MAX),
        None => match update {
            KvUpdate::Put(entry) => entry.value.first().copied().unwrap_or(0),
            KvUpdate::Delete { .. } | KvUpdate::Purge { .. } => 0,
        },
    }
}

/// The fold of `log[..upto]` per key (`keys` keys), restricted to the writes
/// `keep` admits.
pub fn fold_of(log: &[Write], upto: usize, keys: u8, keep: impl Fn(&Write) -> bool) -> Vec<Slot> {
    let mut slots = vec![Slot::default(); usize::from(keys)];
    for (index, write) in log.iter().take(upto).enumerate() {
        if keep(write) {
            slots[usize::from(write.key)] = Slot {
                rev: index as u8 + 1,
                live: write.kind != WriteKind::Delete,
            };
        }
    }
    slots
}

/// Whether the write at `rev` is the latest of its key among revisions `..= head`.
fn latest_of_key(log: &[Write], rev: u8, head: u8) -> bool {
    let key = log[usize::from(rev) - 1].key;
    !log[usize::from(rev)..usize::from(head)]
        .iter()
        .any(|w| w.key == key)
}

/// The watch consumer: resumed (`next` onward) or state-sync (the latest write of each key
/// up to `sync_head`, markers included, ascending, then every later write), as the memory
/// backend registers it (docs/memory-backend.md, "Watches").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Consumer {
    /// The next revision it may deliver.
    pub next: u8,
    /// The snapshot's head revision for a state-sync watch.
    pub sync_head: Option<u8>,
}

impl Consumer {
    /// The consumer a watch from `resume` registers on `log`: `_from(c)` when the
    /// cursor has a revision above 0, state-sync otherwise.
    pub fn start(resume: &WatchCursor, log: &[Write]) -> Self {
        match resume.as_u64() {
            Some(rev) if rev > 0 => Consumer {
                next: u8::try_from(rev + 1).unwrap_or(u8::MAX),
                sync_head: None,
            },
            _ => Consumer {
                next: 1,
                sync_head: Some(log.len() as u8),
            },
        }
    }

    /// The revision it delivers next, if any.
    pub fn deliverable(&self, log: &[Write]) -> Option<u8> {
        (self.next..=log.len() as u8).find(|&rev| match self.sync_head {
            Some(head) if rev <= head => latest_of_key(log, rev, head),
            _ => true,
        })
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
            let key = usize::from(key_index(update.key()));
            if let Some(slot) = self.slots.get_mut(key) {
                *slot = Slot {
                    rev: revision_of(update),
                    live: matches!(update, KvUpdate::Put(_)),
                };
            }
        }
    }

    /// "Store contents complete up to the store cursor", as docs/snapshots.md, "The store
    /// contract (`SnapshotStore`)" states it: the fold at cursor C plus a resume from C
    /// equals the bucket. A resume delivers every write above C, so every key without a
    /// write above C must already hold its latest write; a key written above C may hold
    /// anything (data ahead of the cursor after a torn write or an unknown-version put, or
    /// nothing yet after a state-sync snapshot skipped a superseded write).
    pub fn complete(&self, log: &[Write]) -> bool {
        let upto = usize::try_from(self.cursor.rank())
            .unwrap_or(usize::MAX)
            .min(log.len());
        let truth = fold_of(log, log.len(), self.slots.len() as u8, |_| true);
        self.slots
            .iter()
            .zip(&truth)
            .enumerate()
            .all(|(key, (held, due))| {
                let written_above = log[upto..].iter().any(|w| usize::from(w.key) == key);
                written_above || held == due
            })
    }
}

/// The event carrying revision `rev` to the machine.
pub fn update_event(log: &[Write], rev: u8, now: u64) -> FoldEvent<Item> {
    let (update, parsed) = delivery(log, rev);
    FoldEvent::Update {
        now: Millis(now),
        update,
        parsed,
    }
}
