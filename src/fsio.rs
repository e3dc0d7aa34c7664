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
//! `SyncDir`. The artifact code can adopt the same functions later.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// A kind of file-system call made through the seam.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    /// Opening or creating a file.
    Open,
    /// Reading a whole file.
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
}

#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
impl OpKind {
    /// Every kind, in declaration order.
    pub const ALL: [OpKind; 11] = [
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
#[allow(dead_code)] // for the artifact code's no-replace publish
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

    #[derive(Debug, Default)]
    struct State {
        plan: Option<FaultPlan>,
        seen: OpCounts,
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
