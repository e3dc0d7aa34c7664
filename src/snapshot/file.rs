//! File plumbing shared by the snapshot executor: the log file handle (with
//! fault injection under the `failpoints` feature), directory fsync, the parent
//! directory rule, and the mapping of kernel errors onto [`SnapshotError`]. Never
//! decides anything about bytes: that is `protocol::log`'s job.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::SnapshotError;
use crate::fsio;
use crate::protocol::log::LogError;

/// The directory holding `path`: an empty parent means `"."`; no parent at all
/// (a root or an empty path) is `InvalidFormat`.
pub(crate) fn parent_dir(path: &Path) -> Result<PathBuf, SnapshotError> {
    match path.parent() {
        None => Err(SnapshotError::InvalidFormat(
            "snapshot path has no parent".to_owned(),
        )),
        Some(dir) if dir.as_os_str().is_empty() => Ok(PathBuf::from(".")),
        Some(dir) => Ok(dir.to_path_buf()),
    }
}

/// Makes the directory entries of `dir` durable (creations, renames).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    fsio::sync_dir(dir)
}

/// Maps a kernel error onto the executor's error. `Corrupted` is a unit variant,
/// so the path and offset are logged at `error` level first.
pub(crate) fn map_log_error(path: &Path, err: LogError) -> SnapshotError {
    match err {
        LogError::Corrupted { offset } => {
            tracing::error!(path = %path.display(), offset, "snapshot log corrupted (checksum mismatch)");
            SnapshotError::Corrupted
        }
        other => SnapshotError::InvalidFormat(format!("{}: {other}", path.display())),
    }
}

/// Fault injection for crash and failure tests (feature `failpoints`): a shared
/// handle, so a test can arm faults on a live writer. Not part of the stable API.
#[cfg(feature = "failpoints")]
#[derive(Debug, Clone, Default)]
pub struct WriterFaults {
    state: std::sync::Arc<std::sync::Mutex<FaultState>>,
}

/// Where an injected crash stops a compaction.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrashPoint {
    /// No crash.
    #[default]
    Never,
    /// After the temp file is written and fsynced, before the rename (the temp
    /// file is left behind, as a crash would leave it).
    BeforeRename,
    /// After the rename, before the directory fsync.
    AfterRename,
}

#[cfg(feature = "failpoints")]
#[derive(Debug, Default)]
struct FaultState {
    write_budget_bytes: Option<u64>,
    fail_sync: bool,
    fail_truncate: bool,
    fail_reopen: bool,
    crash: CrashPoint,
}

#[cfg(feature = "failpoints")]
impl WriterFaults {
    fn with<T>(&self, f: impl FnOnce(&mut FaultState) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }

    /// Writes fail once `bytes` more bytes have reached the file; the write that
    /// crosses the budget lands partially, as a short write would.
    pub fn fail_writes_after(&self, bytes: u64) {
        self.with(|s| s.write_budget_bytes = Some(bytes));
    }

    /// `sync_data`/`sync_all` of the log file fail while set.
    pub fn fail_sync(&self, on: bool) {
        self.with(|s| s.fail_sync = on);
    }

    /// `set_len` of the log file fails while set.
    pub fn fail_truncate(&self, on: bool) {
        self.with(|s| s.fail_truncate = on);
    }

    /// Reopening the log after a compaction fails while set.
    pub fn fail_reopen(&self, on: bool) {
        self.with(|s| s.fail_reopen = on);
    }

    /// The next compaction through the writer stops at `point`, as a crash would.
    pub fn crash_compaction(&self, point: CrashPoint) {
        self.with(|s| s.crash = point);
    }

    /// Disarms every fault.
    pub fn clear(&self) {
        self.with(|s| *s = FaultState::default());
    }
}

/// An injected failure.
#[cfg(feature = "failpoints")]
fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected fault: {what}"))
}

/// The open log file, appended to. Under `failpoints` it consults the fault
/// handle before every write, sync and truncate.
#[derive(Debug)]
pub(crate) struct LogFile {
    file: File,
    #[cfg(feature = "failpoints")]
    pub(crate) faults: WriterFaults,
}

impl LogFile {
    /// Opens (creating if missing) `path` for reading and appending.
    pub(crate) fn open_append(path: &Path) -> io::Result<Self> {
        let file = fsio::open(
            path,
            OpenOptions::new().read(true).append(true).create(true),
        )?;
        Ok(Self {
            file,
            #[cfg(feature = "failpoints")]
            faults: WriterFaults::default(),
        })
    }

    /// The whole file, read through this handle.
    pub(crate) fn read_all(&mut self) -> io::Result<Vec<u8>> {
        fsio::read_all(&mut self.file)
    }

    /// The current file length.
    pub(crate) fn len(&self) -> io::Result<u64> {
        fsio::len(&self.file)
    }

    /// Truncates (or extends) the file to `len`.
    pub(crate) fn set_len(&self, len: u64) -> io::Result<()> {
        #[cfg(feature = "failpoints")]
        if self.faults.with(|s| s.fail_truncate) {
            return Err(injected("set_len"));
        }
        fsio::set_len(&self.file, len)
    }

    /// `fdatasync`.
    pub(crate) fn sync_data(&self) -> io::Result<()> {
        #[cfg(feature = "failpoints")]
        if self.faults.with(|s| s.fail_sync) {
            return Err(injected("sync_data"));
        }
        fsio::sync_data(&self.file)
    }

    /// `fsync`.
    pub(crate) fn sync_all(&self) -> io::Result<()> {
        #[cfg(feature = "failpoints")]
        if self.faults.with(|s| s.fail_sync) {
            return Err(injected("sync_all"));
        }
        fsio::sync_all(&self.file)
    }

    /// Closes this handle, then opens `path` again for appending (after a
    /// compaction replaced the file this handle points at).
    pub(crate) fn reopen(self, path: &Path) -> io::Result<Self> {
        #[cfg(feature = "failpoints")]
        let faults = self.faults.clone();
        drop(self);
        #[cfg(feature = "failpoints")]
        {
            if faults.with(|s| s.fail_reopen) {
                return Err(injected("reopen"));
            }
            let mut file = Self::open_append(path)?;
            file.faults = faults;
            Ok(file)
        }
        #[cfg(not(feature = "failpoints"))]
        Self::open_append(path)
    }

    /// Takes the armed compaction crash point (it fires once).
    #[cfg(feature = "failpoints")]
    pub(crate) fn take_crash(&self) -> CrashPoint {
        self.faults.with(|s| std::mem::take(&mut s.crash))
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(feature = "failpoints")]
        {
            let budget = self.faults.with(|s| s.write_budget_bytes);
            if let Some(budget) = budget {
                if budget == 0 {
                    return Err(injected("write"));
                }
                let len = buf.len().min(usize::try_from(budget).unwrap_or(usize::MAX));
                let written = fsio::write(&mut self.file, &buf[..len])?;
                self.faults
                    .with(|s| s.write_budget_bytes = Some(budget - written as u64));
                return Ok(written);
            }
        }
        fsio::write(&mut self.file, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
