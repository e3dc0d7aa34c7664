//! `load` and `Snapshot` (docs/snapshots.md, "`load` and `Snapshot`" and "The store
//! contract (`SnapshotStore`)"): read a whole log, replay it through the kernel, rewrite it
//! compact when it is not (v2 upgrade, torn tail, overwrites), and materialise the state.
//! `stale_keys` asks the root kernels whether a key listing may prove deletes.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::SnapshotError;
use super::compact::{NameSync, compact_renamed};
use super::file::{Access, CrashPoint, LogFile, map_log_error};
use crate::kv::{KvEntry, Retention, VersionToken, WatchCursor};
use crate::protocol::log::{self, LogFormat, Tail, V3_HEADER_LEN, encode_header};
use crate::protocol::{RepairMode, RepairPlan, listing_truth, plan_repair};

/// A loaded fold: the cursor it is consistent with and its live entries.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The latest Cursor record of the log (none if the log had none).
    pub cursor: WatchCursor,
    /// Live entries by key.
    pub entries: HashMap<String, KvEntry>,
}

impl Snapshot {
    /// The keys of this snapshot that are absent from `current_keys` (a fresh
    /// listing of the bucket), sorted ascending; or `None` when the listing is not
    /// the truth, so absence from it does not prove a delete.
    ///
    /// The decision is the root kernels': `listing_truth(retention,
    /// cursor.seen_evicting())`, refused when `plan_repair(Relist, truth)` is
    /// `RefuseRelist` (the bucket evicts current values and already has, or the
    /// cursor's memo saw eviction). `retention = None` means the caller vouches
    /// that the bucket never evicts current values.
    pub fn stale_keys<'a, I>(
        &'a self,
        current_keys: I,
        retention: Option<Retention>,
    ) -> Option<Vec<&'a str>>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let truth = listing_truth(retention, self.cursor.seen_evicting());
        if plan_repair(RepairMode::Relist, truth) == RepairPlan::RefuseRelist {
            return None;
        }
        let current: HashSet<&str> = current_keys.into_iter().collect();
        let mut stale: Vec<&str> = self
            .entries
            .keys()
            .map(String::as_str)
            .filter(|key| !current.contains(key))
            .collect();
        stale.sort_unstable();
        Some(stale)
    }
}

/// Loads the log at `path`.
///
/// - Missing file: `Ok(None)`.
/// - No entries and a cursor that encodes to no bytes: `Ok(None)`; the file is
///   rewritten as the canonical empty v3 log unless it already is one (a later
///   writer must never append behind junk or a torn first record).
/// - Otherwise `Ok(Some(snapshot))` (a log with a cursor but no entries gives an
///   empty map). A file that is not already compact (v2, a torn tail,
///   overwritten or deleted keys, several cursors) is rewritten as a compact v3
///   file first: temp file, fsync, rename (the directory fsync is left to the
///   next writer's open: the old and the new file read as the same state,
///   docs/decisions.md 99).
///
/// Errors: `Corrupted` and `InvalidFormat` as the kernel classifies the bytes
/// (the file is left untouched), `Io` from the OS.
///
/// `load` writes to the file (only by renaming a compacted file over it), so it
/// takes the log's exclusive lock for its duration: on a file a live
/// [`SnapshotWriter`](super::SnapshotWriter) or store owns, it is refused with
/// `SnapshotError::Io` of kind `WouldBlock` naming the path.
pub fn load(path: &Path) -> Result<Option<Snapshot>, SnapshotError> {
    let Some(mut file) = LogFile::acquire(path, Access::Existing)? else {
        return Ok(None);
    };
    let (loaded, _) = load_locked(path, &mut file, true)?;
    Ok(loaded.map(|(cursor, entries)| Snapshot { cursor, entries }))
}

/// What [`load_locked`] returns: the cursor and the entries (`None` for an
/// empty log), and the file's length when it is now a clean, compact v3 log.
pub(crate) type Loaded<C> = (Option<(WatchCursor, C)>, Option<u64>);

/// [`load`] through `file`, the log's locked handle, collecting the entries
/// into `C` (a `HashMap` for [`Snapshot`], a `BTreeMap` for the store). A
/// rewrite replaces `file` with the rewritten log's (locked) handle.
/// `rewrite_empty = false` leaves an empty log as it is (a writer opened next
/// rewrites it anyway).
///
/// The second value is the file's length when it is now a clean, compact v3
/// log (it was one, or it was rewritten as one), so that a writer opened on the
/// same locked handle need not read and scan it again; `None` otherwise.
pub(crate) fn load_locked<C>(
    path: &Path,
    file: &mut LogFile,
    rewrite_empty: bool,
) -> Result<Loaded<C>, SnapshotError>
where
    C: FromIterator<(String, KvEntry)>,
{
    let bytes = file.read_all()?;
    let replay = log::replay(&bytes).map_err(|e| map_log_error(path, e))?;
    if let Tail::Torn { offset, kind } = replay.tail {
        tracing::warn!(path = %path.display(), offset, dropped_bytes = bytes.len() as u64 - offset,
            ?kind, "dropping the torn tail of a snapshot log");
    }
    if replay.format == Some(LogFormat::V2) {
        tracing::info!(path = %path.display(), entries = replay.entries.len(),
            "upgrading snapshot log from format v2 to v3");
    }
    if replay.entries.is_empty() && replay.cursor.to_bytes().is_empty() {
        let mut empty = Vec::with_capacity(V3_HEADER_LEN);
        encode_header(LogFormat::V3, &mut empty);
        if rewrite_empty && bytes != empty {
            rewrite(path, file, [], &WatchCursor::none())?;
        }
        return Ok((None, None));
    }
    let clean_len = if replay.already_compact {
        replay.valid_len
    } else {
        let entries = replay.entries.iter().map(|(k, (v, ver))| (*k, *v, ver));
        rewrite(path, file, entries, &replay.cursor)?
    };
    let entries = replay
        .entries
        .iter()
        .map(|(key, (value, version))| {
            let entry = KvEntry {
                key: (*key).to_owned(),
                value: value.to_vec(),
                version: version.clone(),
            };
            ((*key).to_owned(), entry)
        })
        .collect();
    Ok((Some((replay.cursor, entries)), Some(clean_len)))
}

/// Compacts the log at `path` to v3 and switches `file` to the new file, which
/// holds the lock from before its rename.
///
/// The new file is fsynced before the rename, but the directory is not fsynced
/// after it (docs/decisions.md 99): the new file holds exactly the state the old
/// one reads as, so a power loss that undoes the rename loses nothing, and the
/// next writer's open fsyncs the directory before its first append. Returns the
/// new file's length.
fn rewrite<'e, I>(
    path: &Path,
    file: &mut LogFile,
    entries: I,
    cursor: &WatchCursor,
) -> Result<u64, SnapshotError>
where
    I: IntoIterator<Item = (&'e str, &'e [u8], &'e VersionToken)>,
    I::IntoIter: Clone,
{
    let renamed = compact_renamed(
        path,
        entries,
        cursor,
        LogFormat::V3,
        CrashPoint::Never,
        NameSync::Later,
    )?;
    *file = renamed.file;
    renamed.dir_synced?;
    Ok(renamed.len)
}
