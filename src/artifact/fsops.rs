//! The file operations staging performs that matter for durability (create, write,
//! fsync, rename, hard link, remove), in one place. Each delegates to the
//! file-system seam (`crate::fsio`, where faults are injected under the
//! `failpoints` feature); under `cfg(test)` each successful one is also recorded on
//! a per-thread log, so a unit test can review the order "write → `sync_all` →
//! rename or link → fsync of the directory it landed in" (docs/artifacts.md §8, C1) and
//! that a linked stage name is removed only after that fsync.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use crate::fsio;

/// Creates the directory `path` (its parent must exist).
pub(crate) fn create_dir(path: &Path) -> io::Result<()> {
    fsio::create_dir(path)?;
    record::op(record::Op::CreateDir, path);
    Ok(())
}

/// Creates the new file `path` for writing; refuses an existing one.
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
    let file = fsio::open(path, OpenOptions::new().write(true).create_new(true))?;
    record::op(record::Op::Write, path);
    Ok(file)
}

/// Writes all of `bytes` to `file` (named `path`).
pub(crate) fn write_all(file: &mut File, path: &Path, bytes: &[u8]) -> io::Result<()> {
    fsio::write_all(file, bytes)?;
    record::op(record::Op::Write, path);
    Ok(())
}

/// `sync_all` of `file` (named `path`): its contents and metadata are durable.
pub(crate) fn sync_file(file: &File, path: &Path) -> io::Result<()> {
    fsio::sync_all(file)?;
    record::op(record::Op::SyncFile, path);
    Ok(())
}

/// fsync of the directory `path`: entries created, removed or renamed in it are
/// durable. A no-op where directories cannot be opened (not Unix).
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    fsio::sync_dir(path)?;
    record::op(record::Op::SyncDir, path);
    Ok(())
}

/// Renames `from` onto `to` (atomic on one filesystem).
pub(crate) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    fsio::rename(from, to)?;
    record::rename(from, to);
    Ok(())
}

/// Makes `to` a second name of the file `from` (`link(2)`). Never replaces: an
/// existing `to`, even a dangling symlink, fails with `AlreadyExists`. This is the
/// no-replace publish of a single-file import (docs/artifacts.md §3).
pub(crate) fn link(from: &Path, to: &Path) -> io::Result<()> {
    fsio::hard_link(from, to)?;
    record::link(from, to);
    Ok(())
}

/// Removes the file (or symlink) `path`.
pub(crate) fn remove_file(path: &Path) -> io::Result<()> {
    fsio::remove_file(path)?;
    record::op(record::Op::Remove, path);
    Ok(())
}

/// The per-thread operation log behind the durability review (tests only).
pub(crate) mod record {
    use std::path::Path;
    #[cfg(test)]
    use std::path::PathBuf;

    /// A recorded operation kind.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Op {
        /// A directory was created.
        CreateDir,
        /// A file was created or written.
        Write,
        /// A file was `sync_all`ed.
        SyncFile,
        /// A directory was fsynced.
        SyncDir,
        /// A file name was removed.
        Remove,
    }

    /// One entry of the log.
    #[cfg(test)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum Entry {
        /// `op` on `path`.
        Op(Op, PathBuf),
        /// A rename from `.0` to `.1`.
        Rename(PathBuf, PathBuf),
        /// A hard link: `.1` became a second name of the file `.0`.
        Link(PathBuf, PathBuf),
    }

    #[cfg(test)]
    thread_local! {
        /// `Some` while a test records this thread's operations.
        static LOG: std::cell::RefCell<Option<Vec<Entry>>> = const { std::cell::RefCell::new(None) };
    }

    /// Records `op` on `path` when recording is on.
    #[cfg_attr(not(test), inline(always))]
    pub(crate) fn op(op: Op, path: &Path) {
        #[cfg(test)]
        push(Entry::Op(op, path.to_path_buf()));
        #[cfg(not(test))]
        let _ = (op, path);
    }

    /// Records a rename when recording is on.
    #[cfg_attr(not(test), inline(always))]
    pub(crate) fn rename(from: &Path, to: &Path) {
        #[cfg(test)]
        push(Entry::Rename(from.to_path_buf(), to.to_path_buf()));
        #[cfg(not(test))]
        let _ = (from, to);
    }

    /// Records a hard link when recording is on.
    #[cfg_attr(not(test), inline(always))]
    pub(crate) fn link(from: &Path, to: &Path) {
        #[cfg(test)]
        push(Entry::Link(from.to_path_buf(), to.to_path_buf()));
        #[cfg(not(test))]
        let _ = (from, to);
    }

    #[cfg(test)]
    fn push(entry: Entry) {
        LOG.with(|log| {
            if let Some(log) = log.borrow_mut().as_mut() {
                log.push(entry);
            }
        });
    }

    /// Starts recording this thread's operations (drops an earlier log).
    #[cfg(test)]
    pub(crate) fn start() {
        LOG.with(|log| *log.borrow_mut() = Some(Vec::new()));
    }

    /// Stops recording and returns what was recorded.
    #[cfg(test)]
    pub(crate) fn take() -> Vec<Entry> {
        LOG.with(|log| log.borrow_mut().take().unwrap_or_default())
    }
}
