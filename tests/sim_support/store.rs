//! `SimStore`: a fault-injecting `SnapshotStore` wrapper around the real
//! `AppendLogSnapshot`. At a planned store-apply call it fails transiently, or
//! "crashes" the process before, after, or in the middle of (torn) the write:
//! the RAM store is dropped, the disk keeps exactly what a dead process left,
//! and the blocking task panics so the executor loses the store as it would lose
//! the process. Mutations (deliberately broken variants) live here too, off by default.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use kvfold::protocol::log::{LogFormat, encode_cursor, encode_delete, encode_put};
use kvfold::{
    AppendLogSnapshot, ExportManifest, KvEntry, KvUpdate, RestoredFold, SnapshotError,
    SnapshotStore, WatchCursor,
};

use super::board::{Board, Check, Shared, lock};
use super::rng::Rng;
use super::truth::Fold;

/// A store fault planned at one store-apply call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// `apply` returns an error without touching the store.
    Transient,
    /// This call and the next `n - 1` fail (16 in a row end the run).
    Burst(u32),
    /// The process dies before the write reaches the disk.
    CrashBefore,
    /// The process dies right after the write returned (data and cursor durable).
    CrashAfter,
    /// The process dies mid-write: a random prefix of the batch's bytes is on disk.
    Torn,
}

impl Fault {
    pub fn label(self) -> String {
        match self {
            Fault::Transient => "fail".to_string(),
            Fault::Burst(n) => format!("burst{n}"),
            Fault::CrashBefore => "before".to_string(),
            Fault::CrashAfter => "after".to_string(),
            Fault::Torn => "torn".to_string(),
        }
    }

    pub fn parse(label: &str) -> Option<Self> {
        Some(match label {
            "fail" => Fault::Transient,
            "before" => Fault::CrashBefore,
            "after" => Fault::CrashAfter,
            "torn" => Fault::Torn,
            other => Fault::Burst(other.strip_prefix("burst")?.parse().ok()?),
        })
    }
}

/// Deliberately broken behaviour, to prove the checks have teeth (docs/verification.md,
/// "Mutations").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mutation {
    #[default]
    None,
    /// The store silently drops Delete and Purge updates.
    DropDeletes,
    /// A failing `apply` still moves the cursor (persists it with no data).
    CursorOnError,
    /// The caller resumes in-process from the last `on_applied` cursor instead of `WatchEnd::applied`.
    ResumeFromOnApplied,
    /// The main node's store drops a repair's synthetic deletes (unknown versions):
    /// a repair that keeps stale keys.
    RepairKeepsStale,
    /// The main node's repair listing reports no key (`sim_support/restore.rs`,
    /// `SimReader`): a repair that deletes keys the bucket lists as live.
    ListingHidesKeys,
}

/// What a crash left on disk: the cursor and fold a reopen must find.
#[derive(Debug, Clone)]
pub struct Crash {
    pub call: u64,
    pub fault: Fault,
    pub cursor: WatchCursor,
    pub state: Fold,
    pub detail: String,
}

/// The panic payload of a simulated process death (silenced by the panic hook).
#[derive(Debug)]
pub struct SimCrash;

pub fn fold_of(store: &impl SnapshotStore) -> Fold {
    store
        .range("")
        .expect("AppendLogSnapshot::range reads RAM")
        .into_iter()
        .map(|e| (e.key, (e.version.as_u64().unwrap_or(0), e.value)))
        .collect()
}

fn fold_update(fold: &mut Fold, update: &KvUpdate) {
    match update {
        KvUpdate::Put(e) => {
            fold.insert(
                e.key.clone(),
                (e.version.as_u64().unwrap_or(0), e.value.clone()),
            );
        }
        KvUpdate::Delete { key, .. } | KvUpdate::Purge { key, .. } => {
            fold.remove(key);
        }
    }
}

/// The v3 bytes `apply(batch, cursor)` appends, and the end offset of each data record.
fn batch_bytes(batch: &[KvUpdate], cursor: &WatchCursor) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    let mut ends = Vec::with_capacity(batch.len());
    for update in batch {
        match update {
            KvUpdate::Put(e) => encode_put(LogFormat::V3, &e.key, &e.value, &e.version, &mut out),
            KvUpdate::Delete { key, version } | KvUpdate::Purge { key, version } => {
                encode_delete(LogFormat::V3, key, version, &mut out)
            }
        }
        .expect("simulation keys and values are within the log limits");
        ends.push(out.len());
    }
    encode_cursor(LogFormat::V3, cursor, &mut out).expect("kvfold cursors fit");
    (out, ends)
}

/// The fault-injecting wrapper.
/// Marks a node's store apply as running, for the in-flight witness; cleared on every
/// exit of `apply`.
struct Applying {
    board: Shared,
    node: usize,
}

impl Applying {
    fn start(board: &Shared, node: usize) -> Self {
        lock(board).nodes[node].applying = true;
        Self {
            board: std::sync::Arc::clone(board),
            node,
        }
    }
}

impl Drop for Applying {
    fn drop(&mut self) {
        lock(&self.board).nodes[self.node].applying = false;
    }
}

pub struct SimStore {
    inner: Option<AppendLogSnapshot>,
    /// An artifact fold a restore reads (`SimStore::artifact`): read-only, no node.
    artifact: Option<RestoredFold<AppendLogSnapshot>>,
    path: PathBuf,
    node: usize,
    board: Shared,
    seed: u64,
}

impl SimStore {
    pub fn new(
        inner: AppendLogSnapshot,
        path: &Path,
        node: usize,
        board: Shared,
        seed: u64,
    ) -> Self {
        Self {
            inner: Some(inner),
            artifact: None,
            path: path.to_path_buf(),
            node,
            board,
            seed,
        }
    }

    /// The read-only view of a fetched artifact fold the restore diff reads.
    pub fn artifact(restored: RestoredFold<AppendLogSnapshot>, board: Shared) -> Self {
        Self {
            inner: None,
            artifact: Some(restored),
            path: PathBuf::new(),
            node: usize::MAX,
            board,
            seed: 0,
        }
    }

    fn inner(&self) -> &AppendLogSnapshot {
        if let Some(restored) = &self.artifact {
            return restored.fold();
        }
        self.inner
            .as_ref()
            .expect("a crashed SimStore is never used again")
    }

    /// The revision this store holds for `key`.
    fn held(&self, key: &str) -> Option<u64> {
        self.inner()
            .get(key)
            .ok()
            .flatten()
            .map(|e| e.version.as_u64().unwrap_or(0))
    }

    /// Repair guarantees at a store batch (docs/protocols/repair.md, "Guarantees"), against
    /// what the store holds before it: no put moves a key to an older revision (G1);
    /// a synthetic delete removes only a value the truth deleted later, and (main
    /// node) never a key live when the repair listed its prefix (G2). Keys lost to
    /// eviction are exempt: the fleet no longer holds their truth.
    fn check_repair(&self, b: &mut Board, call: u64, batch: &[KvUpdate]) {
        let node = self.node;
        let mut view: BTreeMap<&str, Option<u64>> = BTreeMap::new();
        for update in batch {
            let key = update.key();
            let held = *view.entry(key).or_insert_with(|| self.held(key));
            match update {
                KvUpdate::Put(e) => {
                    let rev = e.version.as_u64().unwrap_or(0);
                    if held.is_some_and(|h| h > rev) {
                        let text = format!(
                            "node {node}: store call {call} moves {key:?} back from revision {} to {rev}",
                            held.unwrap_or(0)
                        );
                        b.violate(Check::Repair, text);
                    }
                    view.insert(key, Some(rev));
                }
                KvUpdate::Delete { version, .. } if version.as_u64().is_none() => {
                    view.insert(key, None);
                    let Some(held) = held else { continue };
                    if node == 0 {
                        b.stats.synthetic_deletes += 1;
                    }
                    if b.lost.contains_key(key) {
                        continue;
                    }
                    if !b.truth.deleted_after(key, held) {
                        let text = format!(
                            "node {node}: store call {call} deletes {key:?}@{held}, which the truth never deleted after it"
                        );
                        b.violate(Check::Repair, text);
                    }
                    let listed = b
                        .listings
                        .iter()
                        .filter(|(p, _)| key.starts_with(p.as_str()))
                        .max_by_key(|(p, _)| p.len())
                        .map(|(_, at)| *at);
                    if node == 0
                        && let Some(at) = listed
                        && let Some(live) = b.truth.live_at(key, at)
                    {
                        let text = format!(
                            "node {node}: store call {call} deletes {key:?}, live at {live} when the repair listed the bucket at {at}"
                        );
                        b.violate(Check::Repair, text);
                    }
                }
                KvUpdate::Delete { .. } | KvUpdate::Purge { .. } => {
                    view.insert(key, None);
                }
            }
        }
    }

    pub fn fold(&self) -> Fold {
        fold_of(self.inner())
    }

    /// Seeds the store outside any watch (the "foreign", out-of-scope entries).
    pub fn seed_entries(&mut self, entries: &[KvEntry]) {
        let batch: Vec<KvUpdate> = entries.iter().cloned().map(KvUpdate::Put).collect();
        self.inner
            .as_mut()
            .expect("fresh store")
            .apply(&batch, &WatchCursor::none())
            .expect("seeding a fresh store");
    }

    /// Kills the process here: drop the RAM store, leave the disk as `write_disk`
    /// makes it, record what a reopen must find, and unwind the blocking task.
    fn die(&mut self, crash: Crash, repair: bool, write_disk: impl FnOnce(&Path)) -> ! {
        drop(self.inner.take());
        write_disk(&self.path);
        lock(&self.board).crashed(self.node, crash, repair);
        std::panic::panic_any(SimCrash)
    }
}

impl Drop for SimStore {
    /// Records what the store held when it was dropped (a killed run drops it
    /// wherever it was), then closes it.
    fn drop(&mut self) {
        if self.artifact.is_some() {
            return;
        }
        let held = self
            .inner
            .as_ref()
            .map(|inner| (inner.cursor(), fold_of(inner)));
        drop(self.inner.take());
        let mut b = lock(&self.board);
        let n = &mut b.nodes[self.node];
        n.closed = true;
        if held.is_some() {
            n.dropped = held;
        }
    }
}

impl SnapshotStore for SimStore {
    fn load(_path: &Path) -> Result<(WatchCursor, Self), SnapshotError> {
        Err(SnapshotError::Backend(
            "SimStore is opened by the simulation driver".to_string(),
        ))
    }

    fn apply(&mut self, batch: &[KvUpdate], cursor: &WatchCursor) -> Result<(), SnapshotError> {
        if self.artifact.is_some() {
            return Err(SnapshotError::Backend(
                "sim: an artifact fold is read-only".to_string(),
            ));
        }
        let _applying = Applying::start(&self.board, self.node);
        // A store call of a repair: a synthetic delete, or any call while a
        // fetched restore is pending or applying.
        let repair = batch
            .iter()
            .any(|u| matches!(u, KvUpdate::Delete { version, .. } if version.as_u64().is_none()))
            || lock(&self.board).nodes[self.node].restoring.is_some();
        let (call, fault, mutation) = {
            let board = std::sync::Arc::clone(&self.board);
            let mut b = lock(&board);
            let call = b.nodes[self.node].calls;
            b.nodes[self.node].calls += 1;
            b.check_store_batch(self.node, call, batch, cursor);
            if b.repairing {
                self.check_repair(&mut b, call, batch);
            }
            let fault = b.next_fault(self.node, call);
            (call, fault, b.mutation)
        };
        let effective: Vec<KvUpdate> = match mutation {
            Mutation::DropDeletes => batch
                .iter()
                .filter(|u| matches!(u, KvUpdate::Put(_)))
                .cloned()
                .collect(),
            Mutation::RepairKeepsStale if self.node == 0 => batch
                .iter()
                .filter(|u| !matches!(u, KvUpdate::Delete { version, .. } if version.as_u64().is_none()))
                .cloned()
                .collect(),
            _ => batch.to_vec(),
        };
        let before_cursor = self.inner().cursor();
        match fault {
            None => {
                let inner = self.inner.as_mut().expect("live store");
                let result = inner.apply(&effective, cursor);
                let after = inner.cursor();
                let mut b = lock(&self.board);
                match &result {
                    Ok(()) => b.committed(self.node, call, batch, cursor),
                    Err(e) => {
                        b.failed(self.node, call, batch, cursor, &e.to_string());
                        if after != before_cursor {
                            b.violate(
                                Check::Contract,
                                format!("a failed apply moved the cursor at call {call}"),
                            );
                        }
                    }
                }
                result
            }
            Some(Fault::Transient | Fault::Burst(_)) => {
                let inner = self.inner.as_mut().expect("live store");
                if mutation == Mutation::CursorOnError {
                    let _ = inner.apply(&[], cursor);
                }
                let after = inner.cursor();
                let mut b = lock(&self.board);
                b.failed(self.node, call, batch, cursor, "injected");
                if after != before_cursor {
                    b.violate(
                        Check::Contract,
                        format!(
                            "store call {call} failed but its cursor moved {} -> {}",
                            before_cursor.rank(),
                            after.rank()
                        ),
                    );
                    // The disk now holds the moved cursor: that is what a crash keeps.
                    b.nodes[self.node].committed = after;
                }
                Err(SnapshotError::Backend(format!(
                    "sim: injected failure at store call {call}"
                )))
            }
            Some(Fault::CrashBefore) => {
                let crash = Crash {
                    call,
                    fault: Fault::CrashBefore,
                    cursor: before_cursor,
                    state: self.fold(),
                    detail: format!("{} updates never written", batch.len()),
                };
                self.die(crash, repair, |_| {})
            }
            Some(Fault::CrashAfter) => {
                let inner = self.inner.as_mut().expect("live store");
                inner
                    .apply(&effective, cursor)
                    .expect("a store apply without injected faults succeeds");
                lock(&self.board).committed(self.node, call, batch, cursor);
                let crash = Crash {
                    call,
                    fault: Fault::CrashAfter,
                    cursor: self.inner().cursor(),
                    state: self.fold(),
                    detail: format!("{} updates durable", batch.len()),
                };
                self.die(crash, repair, |_| {})
            }
            Some(Fault::Torn) => {
                let (bytes, ends) = batch_bytes(&effective, cursor);
                // Any proper prefix: the cursor record (last) is never complete.
                let mut rng = Rng::derived(self.seed, 0x7042_0000 + call);
                let cut = usize::try_from(rng.below(u64::try_from(bytes.len()).expect("small")))
                    .expect("fits");
                let whole = ends.iter().take_while(|end| **end <= cut).count();
                let mut state = self.fold();
                for update in &effective[..whole] {
                    fold_update(&mut state, update);
                }
                let crash = Crash {
                    call,
                    fault: Fault::Torn,
                    cursor: before_cursor,
                    state,
                    detail: format!(
                        "{cut} of {} bytes, {whole} of {} records whole",
                        bytes.len(),
                        effective.len()
                    ),
                };
                self.die(crash, repair, |path| {
                    let mut file = std::fs::OpenOptions::new()
                        .append(true)
                        .open(path)
                        .expect("the store file exists");
                    file.write_all(&bytes[..cut])
                        .expect("append the torn prefix");
                })
            }
        }
    }

    fn get(&self, key: &str) -> Result<Option<KvEntry>, SnapshotError> {
        self.inner().get(key)
    }

    fn range(&self, prefix: &str) -> Result<Vec<KvEntry>, SnapshotError> {
        self.inner().range(prefix)
    }

    fn has_entries(&self) -> Result<bool, SnapshotError> {
        self.inner().has_entries()
    }

    fn cursor(&self) -> WatchCursor {
        self.inner().cursor()
    }

    fn export_to(&mut self, dest_dir: &Path) -> Result<ExportManifest, SnapshotError> {
        let Some(inner) = self.inner.as_mut() else {
            return Err(SnapshotError::Backend(
                "sim: an artifact fold does not export".to_string(),
            ));
        };
        let manifest = inner.export_to(dest_dir)?;
        if manifest.cursor != inner.cursor() {
            lock(&self.board).violate(
                Check::Artifact,
                format!(
                    "export manifest cursor {} differs from the store's {}",
                    manifest.cursor.rank(),
                    inner.cursor().rank()
                ),
            );
        }
        Ok(manifest)
    }
}

/// Builds entries for `seed_entries`.
pub fn entry(key: &str, rev: u64, value: &[u8]) -> KvEntry {
    KvEntry {
        key: key.to_string(),
        value: value.to_vec(),
        version: kvfold::VersionToken::from_u64(rev),
    }
}

/// Parses `before@3,torn@7,burst17@2` into a plan.
pub fn parse_plan(text: &str) -> Option<BTreeMap<u64, Fault>> {
    let mut plan = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (label, at) = part.split_once('@')?;
        plan.insert(at.parse().ok()?, Fault::parse(label)?);
    }
    Some(plan)
}

pub fn plan_label(plan: &BTreeMap<u64, Fault>) -> String {
    if plan.is_empty() {
        return "none".to_string();
    }
    plan.iter()
        .map(|(at, f)| format!("{}@{at}", f.label()))
        .collect::<Vec<_>>()
        .join(",")
}
