//! The file-system seam: every file-system call of the snapshot store (the
//! append-log writer, `load`, compaction, export and import of the payload) goes
//! through the functions of this module, one function per kind of call
//! ([`OpKind`]). In a build without the `failpoints` feature each function is the
//! plain `std` call, inlined: the seam costs nothing.
//!
//! With `failpoints`, [`faults`] (re-exported, doc-hidden, as
//! `kvfold::snapshot::fs_faults`) records the calls made on the current thread
//! and can fail the Nth call of one kind with `EIO` or `ENOSPC`, or make the Nth
//! write short (half the bytes land, and the write after it fails with
//! `ENOSPC`, as on a disk that fills up mid-write). The fault state is
//! per-thread, so parallel tests do not see each other's faults, and the store
//! runs its I/O on the caller's thread.
//!
//! Counting is per call through the seam, not per system call: a whole-file read
//! is one `Read`, a directory fsync (open the directory, fsync it) is one
//! `SyncDir`, a whole-tree removal is one `RemoveDir`, listing a directory is one
//! `ReadDir`. The artifact staging (`src/artifact/`) and the bucket identity
//! sidecar (`src/snapshot/identity.rs`) use the same functions.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// A kind of file-system call made through the seam.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    not(feature = "failpoints"),
    allow(unreachable_pub, reason = "public under the failpoints feature")
)]
pub enum OpKind {
    /// Opening or creating a file.
    Open,
    /// Reading a whole file, or one `read(2)` of a streamed file.
    Read,
    /// One `write(2)` to a file.
    Write,
    /// `fsync`/`fdatasync` of a file.
    SyncFile,
    /// fsync of a directory (making creations and renames in it durable).
    SyncDir,
    /// Renaming a file.
    Rename,
    /// Creating a hard link.
    Link,
    /// Removing a file.
    Remove,
    /// Truncating or extending a file (`set_len`).
    SetLen,
    /// Reading metadata (file length, identity).
    Stat,
    /// Taking an advisory lock.
    Lock,
    /// Creating a directory.
    CreateDir,
    /// Removing a directory (empty, or a whole tree).
    RemoveDir,
    /// Listing a directory.
    ReadDir,
}

#[cfg_attr(
    not(feature = "failpoints"),
    allow(
        dead_code,
        unreachable_pub,
        reason = "used and public under the failpoints feature"
    )
)]
impl OpKind {
    /// Every kind, in declaration order.
    pub const ALL: [OpKind; 14] = [
        OpKind::Open,
        OpKind::Read,
        OpKind::Write,
        OpKind::SyncFile,
        OpKind::SyncDir,
        OpKind::Rename,
        OpKind::Link,
        OpKind::Remove,
        OpKind::SetLen,
        OpKind::Stat,
        OpKind::Lock,
        OpKind::CreateDir,
        OpKind::RemoveDir,
        OpKind::ReadDir,
    ];

    /// The kind's index in [`OpKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Runs the fault check for one call of `kind` (nothing without `failpoints`).
#[inline(always)]
fn check(kind: OpKind) -> io::Result<()> {
    #[cfg(feature = "failpoints")]
    {
        faults::before(kind)
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = kind;
        Ok(())
    }
}

/// Opens `path` with `options`.
#[inline]
pub(crate) fn open(path: &Path, options: &OpenOptions) -> io::Result<File> {
    check(OpKind::Open)?;
    options.open(path)
}

/// Reads `file` from its start to its end (one `Read` call).
#[inline]
pub(crate) fn read_all(file: &mut File) -> io::Result<Vec<u8>> {
    check(OpKind::Read)?;
    file.seek(SeekFrom::Start(0))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads the whole file at `path` (an `Open` and a `Read` call).
#[inline]
pub(crate) fn read_path(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = open(path, OpenOptions::new().read(true))?;
    read_all(&mut file)
}

/// One `read(2)` from `file` into `buf` (one `Read` call): returns how many
/// bytes were read, 0 at the end.
#[inline]
pub(crate) fn read(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    check(OpKind::Read)?;
    file.read(buf)
}

/// Reads `file` from its current position to its end, or to `cap + 1` bytes,
/// whichever comes first (one `Read` call): a file longer than `cap` gives more
/// than `cap` bytes, never the whole of a huge file.
#[inline]
pub(crate) fn read_capped(file: &mut File, cap: u64) -> io::Result<Vec<u8>> {
    check(OpKind::Read)?;
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// A [`Read`] over a file whose every `read` goes through [`read`] (for
/// streaming readers such as the artifact hasher).
#[derive(Debug)]
pub(crate) struct Reader<'a>(pub(crate) &'a mut File);

impl Read for Reader<'_> {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read(self.0, buf)
    }
}

/// Writes all of `buf` to `file`, one [`write()`] call per `write(2)`: a short
/// write is continued, a write that lands nothing is `WriteZero`.
#[inline]
pub(crate) fn write_all(file: &mut File, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match write(file, buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// One write to `file`: returns how many bytes landed.
#[inline]
pub(crate) fn write(file: &mut File, buf: &[u8]) -> io::Result<usize> {
    #[cfg(feature = "failpoints")]
    if let Some(short) = faults::before_write(buf.len())? {
        return file.write(&buf[..short]);
    }
    file.write(buf)
}

/// `fsync` of `file`: data and metadata.
#[inline]
pub(crate) fn sync_all(file: &File) -> io::Result<()> {
    check(OpKind::SyncFile)?;
    file.sync_all()
}

/// `fdatasync` of `file`.
#[inline]
pub(crate) fn sync_data(file: &File) -> io::Result<()> {
    check(OpKind::SyncFile)?;
    file.sync_data()
}

/// fsync of the directory `dir`: entries created, removed or renamed in it are
/// durable. A no-op where directories cannot be opened (not Unix): the rename
/// is still atomic there.
#[inline]
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    check(OpKind::SyncDir)?;
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Renames `from` onto `to` (atomic on one filesystem; replaces `to`).
#[inline]
pub(crate) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    check(OpKind::Rename)?;
    std::fs::rename(from, to)
}

/// Creates the hard link `to` for `from`; refuses an existing `to`.
#[inline]
pub(crate) fn hard_link(from: &Path, to: &Path) -> io::Result<()> {
    check(OpKind::Link)?;
    std::fs::hard_link(from, to)
}

/// Removes the file `path`.
#[inline]
pub(crate) fn remove_file(path: &Path) -> io::Result<()> {
    check(OpKind::Remove)?;
    std::fs::remove_file(path)
}

/// Creates the directory `path` (its parent must exist; refuses an existing one).
#[inline]
pub(crate) fn create_dir(path: &Path) -> io::Result<()> {
    check(OpKind::CreateDir)?;
    std::fs::create_dir(path)
}

/// Removes the empty directory `path`.
#[cfg_attr(unix, allow(dead_code))] // only where rename cannot replace a directory
#[inline]
pub(crate) fn remove_dir(path: &Path) -> io::Result<()> {
    check(OpKind::RemoveDir)?;
    std::fs::remove_dir(path)
}

/// Removes the directory `path` and everything under it, without following
/// symlinks (one `RemoveDir` call).
#[inline]
pub(crate) fn remove_dir_all(path: &Path) -> io::Result<()> {
    check(OpKind::RemoveDir)?;
    std::fs::remove_dir_all(path)
}

/// Lists the directory `path` (one `ReadDir` call; reading the entries is not
/// counted again).
#[inline]
pub(crate) fn read_dir(path: &Path) -> io::Result<std::fs::ReadDir> {
    check(OpKind::ReadDir)?;
    std::fs::read_dir(path)
}

/// The metadata of `path` itself, not following a symlink (a `Stat` call).
#[inline]
pub(crate) fn symlink_metadata(path: &Path) -> io::Result<std::fs::Metadata> {
    check(OpKind::Stat)?;
    std::fs::symlink_metadata(path)
}

/// The metadata of what `path` names, following symlinks (a `Stat` call).
#[cfg_attr(unix, allow(dead_code))] // only where rename cannot replace a directory
#[inline]
pub(crate) fn metadata(path: &Path) -> io::Result<std::fs::Metadata> {
    check(OpKind::Stat)?;
    std::fs::metadata(path)
}

/// Truncates or extends `file` to `len` bytes.
#[inline]
pub(crate) fn set_len(file: &File, len: u64) -> io::Result<()> {
    check(OpKind::SetLen)?;
    file.set_len(len)
}

/// The length of `file`.
#[inline]
pub(crate) fn len(file: &File) -> io::Result<u64> {
    check(OpKind::Stat)?;
    Ok(file.metadata()?.len())
}

/// Whether `path` still names the file `file` is open on (Unix: same device
/// and inode; elsewhere always true). `NotFound` when `path` is gone.
#[inline]
pub(crate) fn names_file(path: &Path, file: &File) -> io::Result<bool> {
    check(OpKind::Stat)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let open = file.metadata()?;
        let named = std::fs::metadata(path)?;
        Ok(open.dev() == named.dev() && open.ino() == named.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = (path, file);
        Ok(true)
    }
}

/// Tries to take the exclusive advisory lock of `file` (`flock(LOCK_EX |
/// LOCK_NB)` on Unix) without waiting: `Ok(false)` when another open file
/// description holds it, in this process or another.
#[inline]
pub(crate) fn try_lock(file: &File) -> io::Result<bool> {
    check(OpKind::Lock)?;
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(err)) => Err(err),
    }
}

#[cfg(feature = "failpoints")]
pub mod faults {
    //! Fault injection through the seam (feature `failpoints`; tests only).
    //!
    //! [`start`] begins recording the current thread's calls, optionally with one
    //! [`FaultPlan`]; [`finish`] stops and returns the [`OpCounts`]. Without a
    //! recording in progress every call passes.

    use std::cell::RefCell;
    use std::io;

    pub use super::OpKind;

    /// What an armed fault does.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Fault {
        /// The call fails with `EIO`.
        Eio,
        /// The call fails with `ENOSPC`.
        Enospc,
        /// A write lands half its bytes (none if it had one), and the next write
        /// fails with `ENOSPC`. On other kinds the call fails with `ENOSPC`.
        ShortWrite,
    }

    /// Fail call number `nth` (1-based, counted per kind on this thread) of `kind`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct FaultPlan {
        /// The kind of call to fail.
        pub kind: OpKind,
        /// Which call of that kind fails (1 = the first).
        pub nth: u64,
        /// How it fails.
        pub fault: Fault,
        /// `false`: only call `nth` fails (a transient fault). `true`: call `nth`
        /// and every later call of `kind` fail (a device that stays broken).
        pub persistent: bool,
        /// Once this plan has fired, the next call of this kind fails too (with
        /// `EIO`): a second fault on the recovery path (the truncate after a
        /// failed write, the removal of a compaction temp file).
        pub then_fail: Option<OpKind>,
    }

    /// What a recording saw.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct OpCounts {
        counts: [u64; OpKind::ALL.len()],
        /// How many calls the plan failed (or made short).
        pub fired: u64,
        /// How many calls the plan's `then_fail` failed.
        pub then_fired: u64,
    }

    impl OpCounts {
        /// Calls of `kind` made while recording.
        pub fn get(&self, kind: OpKind) -> u64 {
            self.counts[kind.index()]
        }
    }

    /// The longest call sequence a recording keeps ([`trace`]); later calls are
    /// counted but not appended.
    pub const TRACE_LIMIT: usize = 1 << 16;

    #[derive(Debug, Default)]
    struct State {
        plan: Option<FaultPlan>,
        seen: OpCounts,
        /// The calls in the order they were made (at most [`TRACE_LIMIT`]).
        trace: Vec<OpKind>,
        /// A short write happened: the next write fails with `ENOSPC`.
        short_pending: bool,
    }

    thread_local! {
        static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
    }

    /// Starts recording this thread's calls through the seam (dropping an earlier
    /// recording), with `plan` armed if given.
    pub fn start(plan: Option<FaultPlan>) {
        STATE.with(|s| {
            *s.borrow_mut() = Some(State {
                plan,
                ..State::default()
            })
        });
    }

    /// Stops recording and returns what was recorded (zeros if nothing was).
    pub fn finish() -> OpCounts {
        STATE.with(|s| s.borrow_mut().take().map(|s| s.seen).unwrap_or_default())
    }

    /// The calls recorded so far (zeros when not recording).
    pub fn current() -> OpCounts {
        STATE.with(|s| s.borrow().as_ref().map(|s| s.seen).unwrap_or_default())
    }

    /// The kinds of the calls recorded so far, in the order they were made (the
    /// first [`TRACE_LIMIT`]; empty when not recording). Crash tests read
    /// durability orderings off it, e.g. "a `SyncFile` and a `SyncDir` after the
    /// last `Write` before the checkpoint returned".
    pub fn trace() -> Vec<OpKind> {
        STATE.with(|s| {
            s.borrow()
                .as_ref()
                .map(|s| s.trace.clone())
                .unwrap_or_default()
        })
    }

    fn injected(fault: Fault) -> io::Error {
        #[cfg(unix)]
        {
            // EIO and ENOSPC have these numbers on every Unix kvfold targets.
            match fault {
                Fault::Eio => io::Error::from_raw_os_error(5),
                Fault::Enospc | Fault::ShortWrite => io::Error::from_raw_os_error(28),
            }
        }
        #[cfg(not(unix))]
        {
            match fault {
                Fault::Eio => io::Error::other("injected EIO"),
                Fault::Enospc | Fault::ShortWrite => {
                    io::Error::new(io::ErrorKind::StorageFull, "injected ENOSPC")
                }
            }
        }
    }

    /// Counts one call of `kind`; `Some(fault)` when the plan fails it.
    fn count(state: &mut State, kind: OpKind) -> Option<Fault> {
        state.seen.counts[kind.index()] += 1;
        if state.trace.len() < TRACE_LIMIT {
            state.trace.push(kind);
        }
        let n = state.seen.counts[kind.index()];
        let plan = state.plan?;
        if plan.then_fail == Some(kind) && state.seen.fired > 0 && state.seen.then_fired == 0 {
            state.seen.then_fired += 1;
            return Some(Fault::Eio);
        }
        let hit = plan.kind == kind && (n == plan.nth || (plan.persistent && n > plan.nth));
        if hit {
            state.seen.fired += 1;
            Some(plan.fault)
        } else {
            None
        }
    }

    /// The check before a non-write call of `kind`.
    pub(super) fn before(kind: OpKind) -> io::Result<()> {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let Some(state) = s.as_mut() else {
                return Ok(());
            };
            match count(state, kind) {
                Some(fault) => Err(injected(fault)),
                None => Ok(()),
            }
        })
    }

    /// The check before a write of `len` bytes: `Ok(Some(n))` lands only `n`.
    pub(super) fn before_write(len: usize) -> io::Result<Option<usize>> {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let Some(state) = s.as_mut() else {
                return Ok(None);
            };
            let fault = count(state, OpKind::Write);
            if std::mem::take(&mut state.short_pending) {
                return Err(injected(Fault::Enospc));
            }
            match fault {
                None => Ok(None),
                Some(Fault::ShortWrite) if len / 2 > 0 => {
                    state.short_pending = true;
                    Ok(Some(len / 2))
                }
                Some(fault) => Err(injected(fault)),
            }
        })
    }
}
