//! File plumbing shared by the snapshot executor: the log file handle (with
//! fault injection under the `failpoints` feature), directory fsync, the parent
//! directory rule, and the mapping of kernel errors onto [`SnapshotError`]. Never
//! decides anything about bytes: that is `protocol::log`'s job.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
#[cfg_attr(
    not(feature = "failpoints"),
    allow(unreachable_pub, reason = "public under the failpoints feature")
)]
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

    /// The step after the next compaction's rename (the directory fsync) fails
    /// (once). Named for the reopen that step replaced: the writer no longer
    /// reopens the log by name, it appends through the renamed file's handle.
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

/// Attempts at opening and locking a log whose name keeps being re-pointed
/// (another writer compacting it between our open and our lock).
const LOCK_ATTEMPTS: u32 = 8;

/// How long an opener waits for a held lock before it refuses the log.
///
/// A lock can be held for a moment by a process that is not a writer: a child
/// forked (by any thread of this process, e.g. `std::process::Command`) between
/// its `fork` and its `exec` holds a copy of every open descriptor, so a store
/// dropped in that window keeps its `flock` until the child's `exec` closes the
/// copy. A reopen in that window would see "locked" although no writer is left.
/// A second writer holds the lock for its whole life, so waiting this long
/// before refusing changes nothing for it (docs/decisions.md 60).
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(1);

/// Longest pause between two lock attempts while waiting.
const LOCK_POLL_MAX: Duration = Duration::from_millis(50);

/// Takes the exclusive lock of `file`, retrying for up to `wait` while another
/// open file description holds it; `Ok(false)` when it is still held then.
fn lock_within(file: &File, wait: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(1);
    loop {
        if fsio::try_lock(file)? {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(LOCK_POLL_MAX);
    }
}

/// How [`LogFile::acquire`] opens the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read and append; create the file if it is missing (writers).
    Create,
    /// Read only; a missing file is `None` (`load`, which writes only by
    /// renaming a compacted file over the log).
    Existing,
}

/// The error a second writer gets: another open file description holds the
/// log's lock (in this process or another).
pub(crate) fn locked_error(path: &Path) -> SnapshotError {
    SnapshotError::Io(io::Error::new(
        io::ErrorKind::WouldBlock,
        format!(
            "snapshot log {} is locked: another writer holds it (one writer per file)",
            path.display()
        ),
    ))
}

/// The open log file, appended to, holding the log's exclusive advisory lock
/// (`flock`) for as long as it lives. Under `failpoints` it consults the fault
/// handle before every write, sync and truncate.
#[derive(Debug)]
pub(crate) struct LogFile {
    file: File,
    #[cfg(feature = "failpoints")]
    pub(crate) faults: WriterFaults,
}

impl LogFile {
    fn wrap(file: File) -> Self {
        Self {
            file,
            #[cfg(feature = "failpoints")]
            faults: WriterFaults::default(),
        }
    }

    /// Opens the log at `path` and takes its exclusive lock, or refuses with
    /// [`locked_error`] when another writer holds it. `Ok(None)`: the file is
    /// missing and `access` is `Existing`.
    ///
    /// The lock is on the file itself, and compaction renames a new, already
    /// locked file over the name. So after locking, the name must still point at
    /// the file we locked; if it was re-pointed in between (we locked a replaced
    /// file), open again, at most [`LOCK_ATTEMPTS`] times.
    pub(crate) fn acquire(path: &Path, access: Access) -> Result<Option<Self>, SnapshotError> {
        let mut options = OpenOptions::new();
        match access {
            Access::Create => options.read(true).append(true).create(true),
            Access::Existing => options.read(true),
        };
        for _ in 0..LOCK_ATTEMPTS {
            let file = match fsio::open(path, &options) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound && access == Access::Existing => {
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            };
            if !lock_within(&file, LOCK_WAIT)? {
                return Err(locked_error(path));
            }
            match fsio::names_file(path, &file) {
                Ok(true) => return Ok(Some(Self::wrap(file))),
                Ok(false) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if access == Access::Existing {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(SnapshotError::Io(io::Error::other(format!(
            "snapshot log {} was replaced under every one of {LOCK_ATTEMPTS} attempts to open and lock it",
            path.display()
        ))))
    }

    /// Creates the new file `path` (a compaction temp file) for reading and
    /// appending, and locks it: once renamed over a log, it is that log's
    /// locked handle.
    pub(crate) fn create_locked(path: &Path) -> io::Result<Self> {
        let file = fsio::open(
            path,
            OpenOptions::new().read(true).append(true).create_new(true),
        )?;
        let locked = match fsio::try_lock(&file) {
            Ok(true) => return Ok(Self::wrap(file)),
            Ok(false) => io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("new file {} is locked by another writer", path.display()),
            ),
            Err(e) => e,
        };
        // Created but not locked: remove it (best effort).
        drop(file);
        let _ = fsio::remove_file(path);
        Err(locked)
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

    /// Takes the armed "the step after the rename fails" fault (it fires once).
    #[cfg(feature = "failpoints")]
    pub(crate) fn take_after_rename_fault(&self) -> bool {
        self.faults.with(|s| std::mem::take(&mut s.fail_reopen))
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
