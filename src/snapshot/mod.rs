//! Append-only snapshot log for KV state: the durable half of a fold (docs/snapshots.md).
//! The byte format is decided by the pure kernel `protocol::log`; this module reads and
//! writes files and carries out what the kernel reports.
//!
//! - [`load`] reads a whole log into a [`Snapshot`], rewriting it compact (v3)
//!   when it is not: a v2 upgrade, a torn tail, overwritten keys.
//! - [`SnapshotWriter`] appends updates and checkpoints to a log, truncates a torn
//!   tail at open, refuses mid-file corruption, and compacts on request.
//! - Compaction writes a temp file in the same directory, fsyncs it, renames it
//!   over the log and fsyncs the directory (docs/formats.md has the crash
//!   argument). Once the rename happened the writer appends to the new file;
//!   a failure after it poisons the writer.
//! - One writer per file: every writable store holds an exclusive advisory lock
//!   on its log file; a second open, in this process or another, is refused
//!   with `SnapshotError::Io` of kind `WouldBlock` naming the path.
//! - All file work goes through one seam (`crate::fsio`), where tests built
//!   with `failpoints` fail any call (`fs_faults`, doc-hidden).

mod append_log;
mod compact;
mod file;
mod identity;
mod load;
mod store;
mod writer;

/// Fault injection at the file-system seam (feature `failpoints`; tests only):
/// fail the Nth call of one kind made on the current thread.
#[cfg(feature = "failpoints")]
#[doc(hidden)]
pub use crate::fsio::faults as fs_faults;
pub use append_log::{AppendLogConfig, AppendLogSnapshot};
#[allow(unused_imports)] // used by the AppendLogSnapshot store built on this module
pub(crate) use compact::{TEMP_PREFIX, compact_to_file};
#[cfg(feature = "failpoints")]
#[doc(hidden)]
pub use file::{CrashPoint, WriterFaults};
#[allow(unused_imports)]
pub(crate) use file::{map_log_error, parent_dir, sync_dir};
pub use load::{Snapshot, load};
pub use store::SnapshotStore;
pub use writer::{DEFAULT_COMPACT_THRESHOLD, SnapshotWriter};

/// Errors of snapshot stores, snapshot files and artifacts.
///
/// Exactly these five variants (callers match exhaustively); not `Clone`, and `Io`
/// keeps its source chain.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The OS refused (permission, no space, I/O error, missing directory), or the
    /// writer is poisoned after a failed reopen; also an export `watch_applied` held
    /// (kind `WouldBlock`, see [`crate::ExportHeld`]).
    #[error("snapshot I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Bytes that break the format (bad magic, unsupported version, unknown record
    /// kind, limit exceeded, non-UTF-8 key), or a value or key over the limits.
    #[error("invalid snapshot format: {0}")]
    InvalidFormat(String),
    /// A checksum failed where a torn tail is impossible: bit rot, or a hole mid-file.
    #[error("snapshot corrupted (checksum mismatch)")]
    Corrupted,
    /// An engine error from a pluggable backend, or an internal failure.
    #[error("snapshot backend error: {0}")]
    Backend(String),
    /// An artifact failed validation.
    #[error("invalid snapshot artifact: {0}")]
    ArtifactInvalid(String),
}
