//! Reusable [`SnapshotStore`] checks (docs/snapshots.md, "Conformance checks";
//! docs/semantics.md, "The conformance suite"): one plain `pub fn` per check SC-01…SC-18
//! (plus SC-19, an addition), generic over a [`SnapshotHarness`] that opens, imports and
//! (optionally) fault-injects the backend under test. A check panics with a message naming
//! it (`snapshot conformance check `sc_nn_…` (SC-nn) failed: …`) when the backend breaks a
//! rule of docs/snapshots.md, "The store contract (`SnapshotStore`)".
//!
//! # Running the checks
//!
//! ```no_run
//! use std::path::{Path, PathBuf};
//! use std::sync::atomic::{AtomicUsize, Ordering};
//!
//! use kvfold::conformance::Outcome;
//! use kvfold::conformance::snapshot::{self, SnapshotHarness};
//! use kvfold::{AppendLogSnapshot, SnapshotError, WatchCursor};
//!
//! struct Harness { dir: PathBuf, next: AtomicUsize }
//!
//! impl SnapshotHarness for Harness {
//!     type Store = AppendLogSnapshot;
//!     fn fresh_path(&self) -> PathBuf {
//!         self.dir.join(format!("p{}", self.next.fetch_add(1, Ordering::Relaxed)))
//!     }
//!     fn open(&self, path: &Path) -> Result<(WatchCursor, AppendLogSnapshot), SnapshotError> {
//!         AppendLogSnapshot::open(path, 1 << 20)
//!     }
//!     fn import(&self, artifact: &Path, dest: &Path)
//!         -> Result<(WatchCursor, AppendLogSnapshot), SnapshotError> {
//!         AppendLogSnapshot::import(artifact, dest, 1 << 20)
//!     }
//! }
//!
//! let h = Harness { dir: PathBuf::from("/tmp/kvfold-sc"), next: AtomicUsize::new(0) };
//! let results = snapshot::run_all(&h);
//! // SC-13 is skipped: this harness injects no I/O faults.
//! assert!(results.iter().all(|(name, outcome)| *outcome == Outcome::Passed
//!     || *name == "sc_13_failed_apply_changes_nothing"));
//! ```
//!
//! Rules every check follows:
//!
//! - Every path a check uses comes from [`SnapshotHarness::fresh_path`]; a check
//!   never touches anything else. It leaves its stores, artifacts and directories
//!   behind (the harness's directory is the place to clean up).
//! - A check opens at most a few stores at a time, and closes a store (drops it)
//!   before opening the same path again, as one writer per store requires.
//! - A check that cannot run returns [`Outcome::Skipped`] with the reason; a
//!   check never passes vacuously. Only SC-13 can skip (it needs
//!   [`SnapshotHarness::inject_io_fault`]).
//! - Checks are synchronous and blocking, like [`SnapshotStore`] itself. SC-18
//!   holds one 64 MiB value (plus the backend's own copies) in memory at a time.
//! - SC-19 (an addition) runs the embedded backend and `watch_applied` on a
//!   tokio runtime of its own (on a scoped thread), folding the longest key and
//!   the largest value a backend accepts into the store; it holds about three
//!   copies of a 64 MiB value at once.
//!
//! [`CHECKS`] lists every check in run order; the name starts with the check id
//! (`sc_01_…` is SC-01).

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use super::Outcome;
use crate::kv::WatchCursor;
use crate::snapshot::{SnapshotError, SnapshotStore};

mod artifacts;
mod failure;
mod fold;
pub(crate) mod limits;
mod reads;
mod support;
mod tamper;

pub use artifacts::{
    sc_14_export_import_round_trip, sc_15_import_then_apply, sc_17_export_destination_rules,
};
pub use failure::{sc_13_failed_apply_changes_nothing, sc_18_size_limits};
pub use fold::{
    sc_01_round_trip, sc_06_cursor_tracks_apply, sc_07_empty_batch_advances_cursor,
    sc_08_purge_folds_as_delete, sc_09_pure_fold, sc_10_idempotent_redelivery,
    sc_11_cursor_memo_round_trip, sc_12_long_version_round_trip,
};
pub use limits::sc_19_backend_limits_round_trip;
pub use reads::{
    sc_02_get_semantics, sc_03_range_semantics, sc_04_for_each_in_range, sc_05_has_entries,
};
pub use tamper::sc_16_import_rejects_tampering;

/// What the checks need from a backend's test set-up: fresh paths, open, import, and
/// optionally I/O fault injection (docs/semantics.md, "The conformance suite").
pub trait SnapshotHarness {
    /// The backend under test.
    type Store: SnapshotStore;

    /// A path nothing exists at yet, whose parent directory exists and may be
    /// filled by the check. Every call returns a different path. Checks use it
    /// as a store path (`open`, `import` destination), as an artifact
    /// directory (`export_to`), or create a directory there to hold several.
    fn fresh_path(&self) -> PathBuf;

    /// Opens (or creates) the store at `path`, returning its resume cursor
    /// (`none` for a new store): what `SnapshotStore::load` or the backend's
    /// own constructor does. The checks close a store (drop it) before opening
    /// its path again.
    fn open(&self, path: &Path) -> Result<(WatchCursor, Self::Store), SnapshotError>;

    /// Verifies the artifact at `artifact` and installs it as a new store at
    /// `dest`, returning the store and its cursor: the backend's import
    /// (for example `AppendLogSnapshot::import`).
    fn import(
        &self,
        artifact: &Path,
        dest: &Path,
    ) -> Result<(WatchCursor, Self::Store), SnapshotError>;

    /// Arms one I/O fault for the **next `apply`** on a store this harness
    /// opened: that apply's `at_call`-th (0-based) fault point fails with an
    /// I/O error. Fault points are the writes and fsyncs the apply issues, in
    /// order; the harness says how it maps them onto its backend (a write may
    /// land partially first, as a short write would). The fault is disarmed
    /// when that `apply` returns, whether it fired or not.
    ///
    /// Returns whether a fault was armed. The default, `false`, means the
    /// harness cannot inject faults, and SC-13 is skipped. A harness may also
    /// return `false` for an `at_call` past its last fault point; SC-13 stops
    /// there, as it does when an armed `apply` succeeds (the point lay beyond
    /// the calls that apply made).
    fn inject_io_fault(&self, _at_call: usize) -> bool {
        false
    }
}

/// Declares the run order once: `CHECKS` and the dispatcher come from one list.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        /// Every check name, in the order [`run_all`] runs them. Each name starts with its
        /// id in docs/snapshots.md, "Conformance checks": `sc_01_round_trip` is SC-01.
        pub const CHECKS: &[&str] = &[$(stringify!($name)),*];

        /// Runs the check named `name`; `None` for an unknown name.
        fn run_named<H: SnapshotHarness>(name: &str, h: &H) -> Option<Outcome> {
            match name {
                $(stringify!($name) => Some($name(h)),)*
                _ => None,
            }
        }
    };
}

suite![
    sc_01_round_trip,
    sc_02_get_semantics,
    sc_03_range_semantics,
    sc_04_for_each_in_range,
    sc_05_has_entries,
    sc_06_cursor_tracks_apply,
    sc_07_empty_batch_advances_cursor,
    sc_08_purge_folds_as_delete,
    sc_09_pure_fold,
    sc_10_idempotent_redelivery,
    sc_11_cursor_memo_round_trip,
    sc_12_long_version_round_trip,
    sc_13_failed_apply_changes_nothing,
    sc_14_export_import_round_trip,
    sc_15_import_then_apply,
    sc_16_import_rejects_tampering,
    sc_17_export_destination_rules,
    sc_18_size_limits,
    sc_19_backend_limits_round_trip,
];

/// The id in docs/snapshots.md, "Conformance checks" (`"SC-07"`) of a check name from
/// [`CHECKS`] (`"sc_07_empty_batch_advances_cursor"`); `None` for any other name.
pub fn check_id(name: &str) -> Option<&'static str> {
    const IDS: [&str; 19] = [
        "SC-01", "SC-02", "SC-03", "SC-04", "SC-05", "SC-06", "SC-07", "SC-08", "SC-09", "SC-10",
        "SC-11", "SC-12", "SC-13", "SC-14", "SC-15", "SC-16", "SC-17", "SC-18", "SC-19",
    ];
    let index = CHECKS.iter().position(|&check| check == name)?;
    IDS.get(index).copied()
}

/// Runs every check of [`CHECKS`] in order, one at a time, and returns each
/// outcome.
///
/// A failing check does not stop the run: the remaining checks still run, and
/// `run_all` then panics with one message listing every failed check and its
/// reason (each failure's own panic message is also printed as it happens).
pub fn run_all(h: &impl SnapshotHarness) -> Vec<(&'static str, Outcome)> {
    let mut outcomes = Vec::with_capacity(CHECKS.len());
    let mut failures: Vec<String> = Vec::new();
    for &name in CHECKS {
        match std::panic::catch_unwind(AssertUnwindSafe(|| run_named(name, h))) {
            Ok(Some(outcome)) => {
                tracing::debug!(check = name, ?outcome, "snapshot conformance check done");
                outcomes.push((name, outcome));
            }
            Ok(None) => unreachable!("CHECKS and the dispatcher come from one list"),
            Err(panic) => failures.push(format!("{name}: {}", super::panic_message(&*panic))),
        }
    }
    if !failures.is_empty() {
        panic!(
            "snapshot conformance: {} of {} checks failed:\n  {}",
            failures.len(),
            CHECKS.len(),
            failures.join("\n  ")
        );
    }
    outcomes
}
