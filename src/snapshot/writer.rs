//! `SnapshotWriter` (docs/snapshots.md, "`SnapshotWriter`"): appends v3 records to one log
//! file, checkpoints with a Cursor record, truncates back to the last checkpoint on a
//! failed write, compacts on request, and poisons itself when the file's state is
//! unknowable. Blocking std I/O; every byte decision is `protocol::log`'s.

use std::cell::Cell;
use std::io::{self, BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use super::SnapshotError;
use super::compact::{NameSync, compact_renamed};
#[cfg(feature = "failpoints")]
use super::file::WriterFaults;
use super::file::{Access, CrashPoint, LogFile, map_log_error, parent_dir, sync_dir};
use crate::kv::{KvUpdate, WatchCursor};
use crate::protocol::log::{
    self, LogFormat, Tail, V3_HEADER_LEN, encode_cursor, encode_delete, encode_header, encode_put,
};

/// Default compaction threshold: 10 MiB of appended records.
pub const DEFAULT_COMPACT_THRESHOLD: u64 = 10 * 1024 * 1024;

/// Capacity of the append buffer, in bytes.
const APPEND_BUFFER_BYTES: usize = 64 * 1024;

/// Appends updates and checkpoints to one append-log file (format v3).
///
/// Records written by [`write_update`](Self::write_update) are provisional until
/// the next successful [`checkpoint`](Self::checkpoint), which appends a Cursor
/// record and hands everything to the OS (and, with `sync`, to the disk). Any
/// error from `write_update`, `checkpoint` or `flush` discards every record since
/// the last successful checkpoint, on disk too (the file is truncated back), and
/// leaves the writer usable; the caller writes them again. If the file's state
/// becomes unknowable (a failed truncate or fsync, a failed reopen after
/// compaction) the writer is *poisoned*: every method then returns
/// `SnapshotError::Io`, and the cure is to open the file again.
///
/// One writer per file, enforced: the writer holds an exclusive advisory lock
/// (`flock`) on the log file for its whole lifetime, poisoned or not, and a
/// second writer (or [`load`](super::load)) on the same file, in this process or
/// another, is refused with `SnapshotError::Io` of kind `WouldBlock` naming the
/// path. Compaction hands the lock over to the new file before renaming it. `Send`, not `Sync`; entirely blocking (async
/// callers use `spawn_blocking`). Dropping a writer that is not poisoned flushes
/// its buffer (records ahead of the cursor, which is harmless).
#[derive(Debug)]
pub struct SnapshotWriter {
    path: PathBuf,
    /// `None` exactly when poisoned.
    out: Option<BufWriter<LogFile>>,
    /// While poisoned: the log's handle, kept (unbuffered, never written) so that
    /// the lock is held for the writer's lifetime.
    held: Option<LogFile>,
    poisoned: Option<String>,
    /// File length at the last successful checkpoint (or open, or compaction).
    committed_len: u64,
    /// File length once everything handed to the buffer is written.
    written_len: u64,
    bytes_since_compact: u64,
    compact_threshold: u64,
    sync: bool,
    /// The log was created (or its torn creation rewritten) by this writer and
    /// neither the file nor its directory entry has been fsynced since: the first
    /// checkpoint with `sync` fsyncs both (docs/decisions.md 98).
    creation_unsynced: bool,
    scratch: Vec<u8>,
    _not_sync: PhantomData<Cell<()>>,
}

impl SnapshotWriter {
    /// Opens `path` for appending with checkpoint fsync off (see
    /// [`open_with`](Self::open_with)).
    pub fn open(path: &Path, compact_threshold: u64) -> Result<Self, SnapshotError> {
        Self::open_with(path, compact_threshold, false)
    }

    /// Opens or creates the log at `path` for appending.
    ///
    /// - Missing, empty or a torn creation: written as an empty v3 log (header),
    ///   without an fsync. A crash before anything is durable leaves a missing,
    ///   empty or torn-creation file, which every open and `load` reads as an
    ///   empty log; with `sync`, the first checkpoint fsyncs the file and its
    ///   directory entry before it returns (docs/decisions.md 98).
    /// - v2: replayed and compacted to v3 before the first append (needs free
    ///   space about the size of the live state; on failure the v2 file is left
    ///   untouched).
    /// - v3 with a torn tail: truncated to the valid prefix and fsynced.
    /// - Corruption or an invalid format: refused (`Corrupted` /
    ///   `InvalidFormat`), the file untouched.
    ///
    /// `compact_threshold`: [`checkpoint`](Self::checkpoint) reports that
    /// compaction is due once more than this many bytes were appended since the
    /// last compaction (bytes past the header count at open). `sync = true`
    /// fsyncs (`sync_data`) at every checkpoint, so that every cursor a
    /// successful checkpoint returned survives power loss; `false` survives a
    /// process crash only. Compaction always fsyncs.
    ///
    /// Every open of an existing log fsyncs the parent directory, so that the
    /// log's name is durable before the first append (also after a writer was
    /// poisoned by a failed directory fsync); a log this open creates has its name
    /// made durable by the first checkpoint with `sync` instead. The writer holds the log's exclusive lock until it is
    /// dropped; a log another writer holds is refused (`Io`, kind `WouldBlock`).
    pub fn open_with(
        path: &Path,
        compact_threshold: u64,
        sync: bool,
    ) -> Result<Self, SnapshotError> {
        parent_dir(path)?;
        let file = LogFile::acquire(path, Access::Create)?
            .ok_or_else(|| SnapshotError::Io(io::Error::from(io::ErrorKind::NotFound)))?;
        Self::from_locked(path, file, None, compact_threshold, sync)
    }

    /// [`open_with`](Self::open_with) on a log file already opened and locked by
    /// [`LogFile::acquire`]. `clean_len`: the caller (the store's open, through
    /// `load`) has just read this handle and found a clean, compact v3 log of
    /// this length; the writer then skips reading and scanning it again and only
    /// fsyncs the directory, as for any clean v3 log.
    pub(crate) fn from_locked(
        path: &Path,
        mut file: LogFile,
        clean_len: Option<u64>,
        compact_threshold: u64,
        sync: bool,
    ) -> Result<Self, SnapshotError> {
        let dir = parent_dir(path)?;
        if let Some(len) = clean_len {
            sync_dir(&dir)?;
            return Ok(Self::on(path, file, len, false, compact_threshold, sync));
        }
        // A new (empty) file needs no read: one `fstat` instead.
        let bytes = if file.len()? == 0 {
            Vec::new()
        } else {
            file.read_all()?
        };
        let scan = log::scan(&bytes).map_err(|e| map_log_error(path, e))?;
        let mut creation_unsynced = false;
        let file = match scan.format {
            None => {
                // No fsync here (docs/decisions.md 98): until something is durable
                // a crash leaves a missing, empty or torn-creation file, all read as
                // an empty log; with `sync` the first checkpoint fsyncs the file and
                // the directory before it acknowledges anything.
                file.set_len(0)?;
                let mut header = Vec::with_capacity(V3_HEADER_LEN);
                encode_header(LogFormat::V3, &mut header);
                file.write_all(&header)?;
                creation_unsynced = true;
                file
            }
            Some(LogFormat::V2) => {
                let replay = log::replay(&bytes).map_err(|e| map_log_error(path, e))?;
                tracing::info!(path = %path.display(), entries = replay.entries.len(),
                    "upgrading snapshot log from format v2 to v3");
                if let Tail::Torn { offset, kind } = replay.tail {
                    tracing::warn!(path = %path.display(), offset, dropped_bytes = bytes.len() as u64 - offset,
                        ?kind, "dropping the torn tail of a v2 snapshot log");
                }
                let entries = replay.entries.iter().map(|(k, (v, ver))| (*k, *v, ver));
                let renamed = compact_renamed(
                    path,
                    entries,
                    &replay.cursor,
                    LogFormat::V3,
                    CrashPoint::Never,
                    NameSync::Now,
                )?;
                // The upgraded file is the log now: continue on its (locked) handle.
                drop(file);
                renamed.dir_synced?;
                renamed.file
            }
            Some(LogFormat::V3) => {
                if let Tail::Torn { offset, kind } = scan.tail {
                    tracing::warn!(path = %path.display(), offset, dropped_bytes = bytes.len() as u64 - offset,
                        ?kind, "truncating the torn tail of a snapshot log");
                    file.set_len(scan.valid_len)?;
                    file.sync_all()?;
                }
                sync_dir(&dir)?;
                file
            }
        };
        drop(bytes);
        let len = if creation_unsynced {
            V3_HEADER_LEN as u64
        } else {
            file.len()?
        };
        Ok(Self::on(
            path,
            file,
            len,
            creation_unsynced,
            compact_threshold,
            sync,
        ))
    }

    /// A writer appending to `file`, a valid v3 log of `len` bytes.
    fn on(
        path: &Path,
        file: LogFile,
        len: u64,
        creation_unsynced: bool,
        compact_threshold: u64,
        sync: bool,
    ) -> Self {
        Self {
            path: path.to_path_buf(),
            out: Some(BufWriter::with_capacity(APPEND_BUFFER_BYTES, file)),
            held: None,
            poisoned: None,
            committed_len: len,
            written_len: len,
            bytes_since_compact: len.saturating_sub(V3_HEADER_LEN as u64),
            compact_threshold,
            sync,
            creation_unsynced,
            scratch: Vec::new(),
            _not_sync: PhantomData,
        }
    }

    /// Appends one update to the buffer (Put → Put record; Delete and Purge →
    /// Delete record). Nothing is flushed; the record is provisional until the
    /// next successful checkpoint.
    ///
    /// Errors: a key or value over the limits is `InvalidFormat` and writes
    /// nothing; an I/O error is `Io`. Either way every record since the last
    /// checkpoint is discarded (the writer resets itself and stays usable).
    #[must_use = "I/O errors mean the write was lost"]
    pub fn write_update(&mut self, update: &KvUpdate) -> Result<(), SnapshotError> {
        self.check_poisoned()?;
        self.scratch.clear();
        let encoded = match update {
            KvUpdate::Put(entry) => encode_put(
                LogFormat::V3,
                &entry.key,
                &entry.value,
                &entry.version,
                &mut self.scratch,
            ),
            KvUpdate::Delete { key, version } | KvUpdate::Purge { key, version } => {
                encode_delete(LogFormat::V3, key, version, &mut self.scratch)
            }
        };
        let len = match encoded {
            Ok(len) => len as u64,
            Err(err) => {
                let err = SnapshotError::InvalidFormat(format!("{}: {err}", self.path.display()));
                return Err(self.reset(err));
            }
        };
        self.append_scratch(len)
    }

    /// Appends a Cursor record for `cursor`, hands everything buffered to the OS,
    /// and with `sync` fsyncs it (`sync_data`). On success every record written so
    /// far is committed. Returns whether compaction is due: more than
    /// `compact_threshold` bytes appended since the last compaction.
    ///
    /// Errors: an I/O error while writing resets the writer (every record since
    /// the last checkpoint is gone); a failed fsync poisons it.
    #[must_use = "returns true when compaction is needed"]
    pub fn checkpoint(&mut self, cursor: &WatchCursor) -> Result<bool, SnapshotError> {
        self.check_poisoned()?;
        self.scratch.clear();
        let len = match encode_cursor(LogFormat::V3, cursor, &mut self.scratch) {
            Ok(len) => len as u64,
            Err(err) => {
                let err = SnapshotError::InvalidFormat(format!("{}: {err}", self.path.display()));
                return Err(self.reset(err));
            }
        };
        self.append_scratch(len)?;
        self.flush_buffer()?;
        if self.sync {
            self.sync_checkpoint()?;
        }
        self.committed_len = self.written_len;
        Ok(self.bytes_since_compact > self.compact_threshold)
    }

    /// The fsync of a checkpoint with `sync`: `sync_data`, or for a log this
    /// writer created and nothing has fsynced yet, `sync_all` of the file and an
    /// fsync of its directory (the header and the name become durable with the
    /// first cursor). A failure poisons the writer.
    fn sync_checkpoint(&mut self) -> Result<(), SnapshotError> {
        let Some(out) = &self.out else {
            return Err(self.poisoned_error());
        };
        let file = out.get_ref();
        if !self.creation_unsynced {
            return file.sync_data().map_err(|err| {
                self.poison(format!("fdatasync failed: {err}"));
                err.into()
            });
        }
        if let Err(err) = file.sync_all() {
            self.poison(format!("fsync of the new log failed: {err}"));
            return Err(err.into());
        }
        let synced = parent_dir(&self.path).and_then(|dir| sync_dir(&dir).map_err(Into::into));
        if let Err(err) = synced {
            self.poison(format!(
                "the directory fsync that makes the new log's name durable failed: {err}"
            ));
            return Err(err);
        }
        self.creation_unsynced = false;
        Ok(())
    }

    /// Hands buffered records to the OS: no Cursor record, no fsync. The records
    /// stay provisional (a later failure still discards them). An I/O error resets
    /// the writer as for [`write_update`](Self::write_update).
    #[must_use = "I/O errors mean the flush failed"]
    pub fn flush(&mut self) -> Result<(), SnapshotError> {
        self.check_poisoned()?;
        self.flush_buffer()
    }

    /// Rewrites the log as a compact v3 file (temp file, fsync, rename, directory
    /// fsync), including records not yet checkpointed, and continues on it.
    ///
    /// Synchronous and potentially long: it rewrites the live state. The state
    /// is read through the writer's own handle, never by name. If anything fails
    /// before the rename, the old file and the writer are unchanged. Once the
    /// rename happened the file on disk is the new one, and the writer switches
    /// to it at once (the new file's handle, locked before the rename); if the
    /// directory fsync after the rename fails, the writer is poisoned, because
    /// whether the rename survives power loss is unknowable. Reopening cures it.
    #[must_use = "compaction errors leave the log uncompacted"]
    pub fn compact(&mut self) -> Result<(), SnapshotError> {
        self.check_poisoned()?;
        self.flush_buffer()?;
        let read = match self.out.as_mut() {
            Some(out) => out.get_mut().read_all(),
            None => return Err(self.poisoned_error()),
        };
        let bytes = read?;
        let replay = log::replay(&bytes).map_err(|e| map_log_error(&self.path, e))?;
        let entries = replay.entries.iter().map(|(k, (v, ver))| (*k, *v, ver));
        let crash = self.crash_point();
        let renamed = compact_renamed(
            &self.path,
            entries,
            &replay.cursor,
            LogFormat::V3,
            crash,
            NameSync::Now,
        );
        drop(replay);
        drop(bytes);
        let renamed = match renamed {
            Ok(renamed) => renamed,
            Err(err) => {
                if crash != CrashPoint::Never {
                    // An injected crash: this writer is gone as its process would be.
                    self.poison("injected crash during compaction".to_owned());
                }
                return Err(err);
            }
        };
        // The rename happened: from here on the log is the new file. Switch to
        // its handle before anything else can fail; the old handle points at the
        // replaced file, and writes through it would vanish.
        let Some(old) = self.out.take() else {
            return Err(self.poisoned_error());
        };
        let (old, _empty) = old.into_parts();
        #[cfg_attr(not(feature = "failpoints"), allow(unused_mut))]
        let mut file = renamed.file;
        #[cfg(feature = "failpoints")]
        {
            file.faults = old.faults.clone();
        }
        drop(old);
        self.out = Some(BufWriter::with_capacity(APPEND_BUFFER_BYTES, file));
        self.committed_len = renamed.len;
        self.written_len = renamed.len;
        self.bytes_since_compact = 0;
        // The new file was fsynced before its rename; its name is durable once the
        // directory fsync below succeeded (otherwise the writer is poisoned).
        self.creation_unsynced = false;
        let dir_synced = renamed.dir_synced;
        #[cfg(feature = "failpoints")]
        let dir_synced = match &self.out {
            Some(out) if dir_synced.is_ok() && out.get_ref().take_after_rename_fault() => {
                Err(SnapshotError::Io(io::Error::other(
                    "injected fault after the compaction's rename",
                )))
            }
            _ => dir_synced,
        };
        if crash != CrashPoint::Never {
            self.poison("injected crash during compaction".to_owned());
            return Err(dir_synced
                .err()
                .unwrap_or_else(|| SnapshotError::Io(io::Error::other("injected crash"))));
        }
        if let Err(err) = dir_synced {
            self.poison(format!(
                "the directory fsync after the compaction's rename failed: {err}"
            ));
            return Err(err);
        }
        Ok(())
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file length at the last successful checkpoint, open or compaction:
    /// what a failed write truncates back to.
    pub fn committed_len(&self) -> u64 {
        self.committed_len
    }

    /// Bytes appended since the last compaction (at open: the bytes past the
    /// header), compared with the threshold by [`checkpoint`](Self::checkpoint).
    pub fn bytes_since_compact(&self) -> u64 {
        self.bytes_since_compact
    }

    /// The compaction threshold this writer was opened with, in bytes.
    pub fn compact_threshold(&self) -> u64 {
        self.compact_threshold
    }

    /// Whether the writer is poisoned (every method fails until the file is
    /// opened again).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Arms fault injection on this writer (feature `failpoints`; tests only).
    #[cfg(feature = "failpoints")]
    #[doc(hidden)]
    pub fn inject_faults(&mut self, faults: WriterFaults) {
        if let Some(out) = self.out.as_mut() {
            out.get_mut().faults = faults;
        }
    }

    /// The compaction crash point armed by fault injection.
    fn crash_point(&self) -> CrashPoint {
        #[cfg(feature = "failpoints")]
        if let Some(out) = &self.out {
            return out.get_ref().take_crash();
        }
        CrashPoint::Never
    }

    /// Writes the encoded record in `scratch` to the buffer.
    fn append_scratch(&mut self, len: u64) -> Result<(), SnapshotError> {
        let written = match self.out.as_mut() {
            Some(out) => out.write_all(&self.scratch),
            None => return Err(self.poisoned_error()),
        };
        if let Err(err) = written {
            return Err(self.reset(err.into()));
        }
        self.written_len += len;
        self.bytes_since_compact += len;
        Ok(())
    }

    /// Hands the buffer to the OS; resets on error.
    fn flush_buffer(&mut self) -> Result<(), SnapshotError> {
        let flushed = match self.out.as_mut() {
            Some(out) => out.flush(),
            None => return Err(self.poisoned_error()),
        };
        flushed.map_err(|err| self.reset(err.into()))
    }

    /// docs/formats.md §5 item 4: discard the buffer unflushed, truncate the file back to
    /// the last checkpoint, start a fresh buffer, and return `err`. A failed truncate
    /// poisons the writer instead.
    fn reset(&mut self, err: SnapshotError) -> SnapshotError {
        let Some(out) = self.out.take() else {
            return err;
        };
        let (file, _discarded) = out.into_parts();
        match file.set_len(self.committed_len) {
            Ok(()) => {
                self.out = Some(BufWriter::with_capacity(APPEND_BUFFER_BYTES, file));
                self.written_len = self.committed_len;
                self.bytes_since_compact = self.committed_len.saturating_sub(V3_HEADER_LEN as u64);
            }
            Err(truncate) => {
                self.held = Some(file);
                self.poisoned = Some(format!(
                    "truncate to {} after a failed write failed: {truncate}",
                    self.committed_len
                ));
                tracing::error!(path = %self.path.display(), error = %truncate,
                    "snapshot writer poisoned: truncate after a failed write failed");
            }
        }
        err
    }

    /// Poisons the writer: the buffer is discarded unflushed; the handle is kept,
    /// unused, so that the log stays locked while this writer lives.
    fn poison(&mut self, reason: String) {
        if let Some(out) = self.out.take() {
            let (file, _discarded) = out.into_parts();
            self.held = Some(file);
        }
        tracing::error!(path = %self.path.display(), %reason, "snapshot writer poisoned");
        self.poisoned.get_or_insert(reason);
    }

    /// `Err` when poisoned.
    fn check_poisoned(&self) -> Result<(), SnapshotError> {
        if self.poisoned.is_some() || self.out.is_none() {
            return Err(self.poisoned_error());
        }
        Ok(())
    }

    /// The error every method of a poisoned writer returns.
    fn poisoned_error(&self) -> SnapshotError {
        let reason = self.poisoned.as_deref().unwrap_or("no open file");
        SnapshotError::Io(io::Error::other(format!(
            "snapshot writer poisoned: {reason}"
        )))
    }
}
