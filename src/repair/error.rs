//! The repair I/O toolkit's one error type: every failure of a listing, a key sort, a
//! spill file or a fold read during a relist or restore, named by repair and step
//! (docs/protocols/repair.md, "Repair I/O: listing, sorting, diffs"). It decides nothing.

use std::fmt;
use std::io;

use crate::kv::KvError;
use crate::snapshot::SnapshotError;

/// Which repair a toolkit call works for; the first word of every error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RepairKind {
    /// The key-listing diff.
    Relist,
    /// The artifact restore.
    Restore,
}

impl fmt::Display for RepairKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RepairKind::Relist => "relist",
            RepairKind::Restore => "restore",
        })
    }
}

/// A failed repair I/O step. The `Display` reads `<repair>: <step> failed: <cause>`;
/// the fold executor turns it into `KvError::WatchError` with that text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RepairIoError {
    /// Listing the live keys under a prefix failed (a partial listing is never used).
    #[error("{repair}: listing prefix {prefix:?} failed: {source}")]
    Listing {
        /// The repair.
        repair: RepairKind,
        /// The prefix whose listing failed.
        prefix: String,
        /// The backend's error.
        #[source]
        source: KvError,
    },
    /// A spill file could not be created, written, rewound or read.
    #[error("{repair}: {step} failed: {source}")]
    Spill {
        /// The repair.
        repair: RepairKind,
        /// What was being done ("creating a spill file", "writing a spill file", ...).
        step: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A spill file holds bytes the spill writer never writes (a length prefix past
    /// the end of the file or over the record cap, a truncated record, non-UTF-8).
    #[error("{repair}: reading a spill file failed: {detail}")]
    SpillCorrupt {
        /// The repair.
        repair: RepairKind,
        /// What is wrong, and where.
        detail: String,
    },
    /// A key is longer than a spill record may be.
    #[error(
        "{repair}: spilling a key failed: the key is {len_bytes} bytes, over the {max_bytes}-byte record limit"
    )]
    KeyTooLong {
        /// The repair.
        repair: RepairKind,
        /// The key's length.
        len_bytes: usize,
        /// The record cap.
        max_bytes: usize,
    },
    /// Reading the local fold or the artifact fold failed.
    #[error("{repair}: {step} failed: {source}")]
    Fold {
        /// The repair.
        repair: RepairKind,
        /// Which fold was being read, and how.
        step: &'static str,
        /// The store's error.
        #[source]
        source: SnapshotError,
    },
    /// A key the diff chose to rewrite is no longer in the artifact fold.
    #[error(
        "{repair}: reading the artifact fold failed: artifact fold lost a key mid-restore: {key:?}"
    )]
    ArtifactLostKey {
        /// The repair.
        repair: RepairKind,
        /// The missing key.
        key: String,
    },
    /// The sorter's blocking thread panicked or was cancelled.
    #[error("{repair}: {step} failed: {detail}")]
    Task {
        /// The repair.
        repair: RepairKind,
        /// The step the task ran.
        step: &'static str,
        /// What happened to it.
        detail: String,
    },
}

impl RepairIoError {
    /// A spill I/O failure at `step`.
    pub(crate) fn spill(repair: RepairKind, step: &'static str, source: io::Error) -> Self {
        RepairIoError::Spill {
            repair,
            step,
            source,
        }
    }

    /// A spill file with bytes the writer never writes.
    pub(crate) fn corrupt(repair: RepairKind, detail: impl Into<String>) -> Self {
        RepairIoError::SpillCorrupt {
            repair,
            detail: detail.into(),
        }
    }
}

impl From<RepairIoError> for KvError {
    /// Every toolkit failure fails the run as a `WatchError` naming the step.
    fn from(error: RepairIoError) -> Self {
        KvError::WatchError(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_repair_the_step_and_the_cause() {
        let listing = RepairIoError::Listing {
            repair: RepairKind::Relist,
            prefix: "a.".into(),
            source: KvError::Timeout,
        };
        assert_eq!(
            listing.to_string(),
            "relist: listing prefix \"a.\" failed: timed out"
        );
        let lost = RepairIoError::ArtifactLostKey {
            repair: RepairKind::Restore,
            key: "k".into(),
        };
        assert!(lost.to_string().starts_with("restore: "));
        assert!(
            lost.to_string()
                .contains("artifact fold lost a key mid-restore")
        );
        let as_kv: KvError = RepairIoError::spill(
            RepairKind::Restore,
            "writing a spill file",
            io::Error::other("disk gone"),
        )
        .into();
        assert_eq!(
            as_kv,
            KvError::WatchError("restore: writing a spill file failed: disk gone".into())
        );
    }
}
