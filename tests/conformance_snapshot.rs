#![cfg(feature = "conformance")]
//! The `SnapshotStore` conformance checks (`kvfold::conformance::snapshot`,
//! docs/snapshots.md, "Conformance checks") against `AppendLogSnapshot`, plus mutation
//! evidence: a store or harness broken in one specific way must make the check for that
//! rule fail.
//!
//! The harness opens every store with `sync: true` (each checkpoint fsyncs, so
//! an apply has fsync calls to fault) inside a `TempDir`, and wraps it in
//! [`LogStore`], a delegating wrapper that does two things the bare store
//! cannot: arm a one-shot I/O fault for one `apply` (feature `failpoints`), and
//! apply one [`Mutation`] (none for the real run).
//!
//! Fault points of one `apply` (SC-13), with `n` = the batch's records plus its
//! cursor record: point 0 fails the first write outright; point `1 + i` lets the
//! write land up to the middle of record `i` and fails the next write (a short
//! write, leaving a partial record on disk); point `n + 1` fails the fsync of
//! the checkpoint (which poisons the writer: the store must then be reopened).
//! Later points arm nothing, so that apply succeeds and SC-13 stops.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kvfold::conformance::Outcome;
use kvfold::conformance::snapshot::{self, CHECKS, SnapshotHarness};
use kvfold::protocol::log::{LogFormat, MAX_KEY_LEN, MAX_VALUE_LEN};
use kvfold::{
    AppendLogConfig, AppendLogSnapshot, ExportManifest, KvEntry, KvUpdate, SnapshotError,
    SnapshotStore, VersionToken, WatchCursor,
};
use tempfile::TempDir;

/// The fault point armed for the next `apply` of any store of one harness.
type Arm = Arc<Mutex<Option<usize>>>;

/// One deliberate defect, for mutation evidence; `None` is the real store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mutation {
    None,
    /// `apply` persists the cursor but drops every Delete and Purge.
    DropDeletes,
    /// `apply` folds the batch in reverse order (last write no longer wins).
    ReverseBatch,
    /// A Put onto a live key appends to its value (redelivery is not idempotent).
    ConcatOnOverwrite,
    /// `cursor()` moves to the new cursor even when `apply` fails.
    CursorMovesOnFailure,
    /// `cursor()` reports the cursor of the apply before the last one.
    CursorLagsOne,
    /// `apply(&[], c)` only remembers `c` in memory.
    EmptyBatchNotDurable,
    /// `get` hides empty values.
    HideEmptyValues,
    /// `range` returns descending order.
    ReverseRange,
    /// `range` leaves out a key equal to the prefix.
    SkipPrefixKey,
    /// `for_each_in_range` ignores the callback's error and carries on.
    IgnoreCallbackErr,
    /// `has_entries` stays true once anything was ever written.
    StickyHasEntries,
    /// `apply` persists the cursor without its eviction memo.
    LoseMemo,
    /// Versions that are not u64 revisions are stored as unknown.
    TruncateVersions,
    /// Updates over the size limits are dropped silently instead of refused.
    SkipOverLimit,
    /// `apply` refuses keys over 2048 bytes: shorter than the backends' key limit.
    TightKeyLimit,
    /// `export_to` stamps a scope (schema 2) on its manifest.
    ExportStampsScope,
    /// `export_to` clears an occupied destination first.
    ExportClearsDest,
    /// The harness's import copies the payload file without any verification.
    ImportUnverified,
    /// The harness's import returns a store over a copy of the destination.
    ImportOpensCopy,
}

/// `SnapshotHarness` for `AppendLogSnapshot` in a temporary directory.
struct Harness {
    dir: TempDir,
    next: AtomicUsize,
    arm: Arm,
    mutation: Mutation,
}

impl Harness {
    fn new(mutation: Mutation) -> Self {
        Self {
            dir: TempDir::new().expect("temp dir"),
            next: AtomicUsize::new(0),
            arm: Arm::default(),
            mutation,
        }
    }

    fn wrap(&self, (cursor, inner): (WatchCursor, AppendLogSnapshot)) -> (WatchCursor, LogStore) {
        (
            cursor,
            LogStore::new(inner, self.arm.clone(), self.mutation),
        )
    }
}

/// Every store fsyncs its checkpoints, so an apply has an fsync to fault.
fn config() -> AppendLogConfig {
    AppendLogConfig {
        sync: true,
        ..AppendLogConfig::default()
    }
}

impl SnapshotHarness for Harness {
    type Store = LogStore;

    fn fresh_path(&self) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir.path().join(format!("p{n:04}"))
    }

    fn open(&self, path: &Path) -> Result<(WatchCursor, LogStore), SnapshotError> {
        AppendLogSnapshot::open_with(path, config()).map(|opened| self.wrap(opened))
    }

    fn import(
        &self,
        artifact: &Path,
        dest: &Path,
    ) -> Result<(WatchCursor, LogStore), SnapshotError> {
        match self.mutation {
            Mutation::ImportUnverified => {
                std::fs::copy(artifact.join("data/fold.snap"), dest)?;
                self.open(dest)
            }
            Mutation::ImportOpensCopy => {
                AppendLogSnapshot::import_with(artifact, dest, config())?;
                let copy = dest.with_extension("copy");
                std::fs::copy(dest, &copy)?;
                self.open(&copy)
            }
            _ => AppendLogSnapshot::import_with(artifact, dest, config())
                .map(|opened| self.wrap(opened)),
        }
    }

    #[cfg(feature = "failpoints")]
    fn inject_io_fault(&self, at_call: usize) -> bool {
        *self.arm.lock().expect("arm lock") = Some(at_call);
        true
    }
}

/// `AppendLogSnapshot` behind a delegating wrapper: one-shot fault arming per
/// `apply` (feature `failpoints`) and, for mutation evidence, one defect.
struct LogStore {
    inner: AppendLogSnapshot,
    arm: Arm,
    mutation: Mutation,
    /// What `cursor()` reports instead of the inner cursor (some mutations).
    shown_cursor: Option<WatchCursor>,
    previous_cursor: WatchCursor,
    ever_written: bool,
    #[cfg(feature = "failpoints")]
    faults: kvfold::snapshot::WriterFaults,
}

impl LogStore {
    fn new(mut inner: AppendLogSnapshot, arm: Arm, mutation: Mutation) -> Self {
        #[cfg(feature = "failpoints")]
        let faults = kvfold::snapshot::WriterFaults::default();
        #[cfg(feature = "failpoints")]
        inner.inject_faults(faults.clone());
        #[cfg(not(feature = "failpoints"))]
        let _ = &mut inner;
        Self {
            previous_cursor: inner.cursor(),
            inner,
            arm,
            mutation,
            shown_cursor: None,
            ever_written: false,
            #[cfg(feature = "failpoints")]
            faults,
        }
    }

    /// The inner apply, with the armed fault (if any) in place for exactly this call.
    fn apply_armed(
        &mut self,
        batch: &[KvUpdate],
        cursor: &WatchCursor,
    ) -> Result<(), SnapshotError> {
        let armed = self.arm.lock().expect("arm lock").take();
        #[cfg(feature = "failpoints")]
        if let Some(at_call) = armed {
            arm_fault(&self.faults, at_call, batch, cursor);
        }
        #[cfg(not(feature = "failpoints"))]
        let _ = armed;
        let result = self.inner.apply(batch, cursor);
        #[cfg(feature = "failpoints")]
        self.faults.clear();
        result
    }
}

/// Arms fault point `at_call` of an apply of `batch` with `cursor` (see the
/// module docs): record lengths come from kvfold's own v3 encoders.
#[cfg(feature = "failpoints")]
fn arm_fault(
    faults: &kvfold::snapshot::WriterFaults,
    at_call: usize,
    batch: &[KvUpdate],
    cursor: &WatchCursor,
) {
    use kvfold::protocol::log::{encode_cursor, encode_delete, encode_put};
    let mut lens = Vec::new();
    for update in batch {
        let mut out = Vec::new();
        let encoded = match update {
            KvUpdate::Put(e) => encode_put(LogFormat::V3, &e.key, &e.value, &e.version, &mut out),
            KvUpdate::Delete { key, version } | KvUpdate::Purge { key, version } => {
                encode_delete(LogFormat::V3, key, version, &mut out)
            }
        };
        match encoded {
            Ok(len) => lens.push(len as u64),
            Err(_) => return, // the apply fails on the limits anyway
        }
    }
    let mut out = Vec::new();
    lens.push(encode_cursor(LogFormat::V3, cursor, &mut out).expect("cursor encodes") as u64);
    match at_call {
        0 => faults.fail_writes_after(0),
        n if n <= lens.len() => {
            let before: u64 = lens[..n - 1].iter().sum();
            faults.fail_writes_after(before + lens[n - 1] / 2);
        }
        n if n == lens.len() + 1 => faults.fail_sync(true),
        _ => {}
    }
}

fn over_limit(update: &KvUpdate) -> bool {
    update.key().len() > MAX_KEY_LEN
        || matches!(update, KvUpdate::Put(e) if e.value.len() > MAX_VALUE_LEN)
}

impl SnapshotStore for LogStore {
    fn load(path: &Path) -> Result<(WatchCursor, Self), SnapshotError> {
        let (cursor, inner) = AppendLogSnapshot::load(path)?;
        Ok((cursor, Self::new(inner, Arm::default(), Mutation::None)))
    }

    fn apply(&mut self, batch: &[KvUpdate], cursor: &WatchCursor) -> Result<(), SnapshotError> {
        let mut batch = batch.to_vec();
        let mut cursor = cursor.clone();
        match self.mutation {
            Mutation::DropDeletes => batch.retain(|u| matches!(u, KvUpdate::Put(_))),
            Mutation::ReverseBatch => batch.reverse(),
            Mutation::ConcatOnOverwrite => {
                for update in &mut batch {
                    if let KvUpdate::Put(entry) = update
                        && let Ok(Some(old)) = self.inner.get(&entry.key)
                    {
                        entry.value = [old.value, entry.value.clone()].concat();
                    }
                }
            }
            Mutation::CursorMovesOnFailure => self.shown_cursor = Some(cursor.clone()),
            Mutation::EmptyBatchNotDurable if batch.is_empty() => {
                self.shown_cursor = Some(cursor);
                return Ok(());
            }
            Mutation::LoseMemo => cursor = WatchCursor::from_version(cursor.version().clone()),
            Mutation::TruncateVersions => {
                for update in &mut batch {
                    if let KvUpdate::Put(entry) = update
                        && entry.version.as_u64().is_none()
                    {
                        entry.version = VersionToken::unknown();
                    }
                }
            }
            Mutation::SkipOverLimit => batch.retain(|u| !over_limit(u)),
            Mutation::TightKeyLimit if batch.iter().any(|u| u.key().len() > 2048) => {
                return Err(SnapshotError::InvalidFormat(
                    "key over 2048 bytes".to_string(),
                ));
            }
            _ => {}
        }
        if !batch.is_empty() {
            self.ever_written = true;
        }
        let before = self.inner.cursor();
        let result = self.apply_armed(&batch, &cursor);
        if result.is_ok() {
            self.previous_cursor = before;
            if self.mutation == Mutation::EmptyBatchNotDurable {
                self.shown_cursor = None;
            }
        }
        result
    }

    fn get(&self, key: &str) -> Result<Option<KvEntry>, SnapshotError> {
        let entry = self.inner.get(key)?;
        Ok(match self.mutation {
            Mutation::HideEmptyValues => entry.filter(|e| !e.value.is_empty()),
            _ => entry,
        })
    }

    fn range(&self, prefix: &str) -> Result<Vec<KvEntry>, SnapshotError> {
        let mut entries = self.inner.range(prefix)?;
        match self.mutation {
            Mutation::ReverseRange => entries.reverse(),
            Mutation::SkipPrefixKey => entries.retain(|e| e.key != prefix),
            _ => {}
        }
        Ok(entries)
    }

    fn for_each_in_range(
        &self,
        prefix: &str,
        mut f: impl FnMut(KvEntry) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        if self.mutation == Mutation::IgnoreCallbackErr {
            for entry in self.range(prefix)? {
                let _ = f(entry);
            }
            return Ok(());
        }
        for entry in self.range(prefix)? {
            f(entry)?;
        }
        Ok(())
    }

    fn has_entries(&self) -> Result<bool, SnapshotError> {
        if self.mutation == Mutation::StickyHasEntries && self.ever_written {
            return Ok(true);
        }
        self.inner.has_entries()
    }

    fn cursor(&self) -> WatchCursor {
        if self.mutation == Mutation::CursorLagsOne {
            return self.previous_cursor.clone();
        }
        self.shown_cursor
            .clone()
            .unwrap_or_else(|| self.inner.cursor())
    }

    fn export_to(&mut self, dest_dir: &Path) -> Result<ExportManifest, SnapshotError> {
        if self.mutation == Mutation::ExportClearsDest {
            if dest_dir.is_dir() {
                std::fs::remove_dir_all(dest_dir)?;
            } else if dest_dir.symlink_metadata().is_ok() {
                std::fs::remove_file(dest_dir)?;
            }
        }
        let manifest = self.inner.export_to(dest_dir)?;
        if self.mutation == Mutation::ExportStampsScope {
            let mut stamped = manifest;
            stamped.schema_version = 2;
            stamped.scope = Some(vec![String::new()]);
            let bytes = kvfold::protocol::manifest::encode_manifest(&stamped);
            std::fs::write(dest_dir.join(kvfold::MANIFEST_FILE), bytes)?;
            return Ok(stamped);
        }
        Ok(manifest)
    }
}

// ---------------------------------------------------------------------------
// The real run.

/// The outcome every check must have on `AppendLogSnapshot`: all pass; SC-13
/// can only run with fault injection (feature `failpoints`).
fn expected_outcome(name: &str) -> Outcome {
    if name == "sc_13_failed_apply_changes_nothing" && !cfg!(feature = "failpoints") {
        Outcome::Skipped("the harness cannot inject I/O faults (inject_io_fault returned false)")
    } else {
        Outcome::Passed
    }
}

#[test]
fn every_check_passes_on_append_log() {
    let h = Harness::new(Mutation::None);
    let started = Instant::now();
    let results = snapshot::run_all(&h);
    assert_eq!(results.len(), CHECKS.len(), "every check ran");
    for (name, outcome) in &results {
        assert_eq!(*outcome, expected_outcome(name), "{name}");
    }
    println!(
        "snapshot conformance on AppendLogSnapshot: {} checks in {:?} (failpoints: {})",
        results.len(),
        started.elapsed(),
        cfg!(feature = "failpoints")
    );
}

#[test]
fn check_names_carry_their_ids() {
    assert_eq!(CHECKS.len(), 19);
    for (i, name) in CHECKS.iter().enumerate() {
        let id = format!("SC-{:02}", i + 1);
        assert_eq!(snapshot::check_id(name), Some(id.as_str()), "{name}");
        assert!(name.starts_with(&format!("sc_{:02}_", i + 1)), "{name}");
    }
    assert_eq!(snapshot::check_id("round_trip"), None);
}

/// One test per check, so a failure names its check on its own.
macro_rules! per_check {
    ($($name:ident),* $(,)?) => {
        mod per_check {
            use super::*;
            $(
                #[test]
                fn $name() {
                    let h = Harness::new(Mutation::None);
                    assert_eq!(snapshot::$name(&h), expected_outcome(stringify!($name)));
                }
            )*
        }
    };
}

per_check![
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

/// The append log's own manifest facts, which the generic SC-14 cannot know:
/// backend `append-log`, format `"3"` by default and `"2"` when configured.
#[test]
fn append_log_manifest_names_backend_and_format() {
    let dir = TempDir::new().expect("temp dir");
    for (format, version) in [(LogFormat::V3, "3"), (LogFormat::V2, "2")] {
        let config = AppendLogConfig {
            artifact_format: format,
            ..config()
        };
        let path = dir.path().join(format!("fold-{version}"));
        let (_, mut store) = AppendLogSnapshot::open_with(&path, config).expect("open");
        let put = KvUpdate::Put(KvEntry {
            key: "k".to_owned(),
            value: b"v".to_vec(),
            version: VersionToken::from_u64(1),
        });
        store
            .apply(&[put], &WatchCursor::from_u64(1))
            .expect("apply");
        let artifact = dir.path().join(format!("artifact-{version}"));
        let manifest = store.export_to(&artifact).expect("export");
        assert_eq!(
            (manifest.backend.as_str(), manifest.backend_version.as_str()),
            ("append-log", version)
        );
        assert_eq!(manifest.files.len(), 1);
        assert_eq!(manifest.files[0].path, "data/fold.snap");
        let dest = dir.path().join(format!("imported-{version}"));
        let (cursor, imported) =
            AppendLogSnapshot::import(&artifact, &dest, 1 << 20).expect("import");
        assert_eq!(cursor, WatchCursor::from_u64(1));
        assert_eq!(
            imported.get("k").expect("get").map(|e| e.value),
            Some(b"v".to_vec())
        );
    }
}

/// Append-log payload checks behind the digests (docs/snapshots.md, "`AppendLogSnapshot`"
/// step 3), which the generic SC-16 leaves to each backend: a payload re-hashed into the
/// manifest after a bit flip, after a cut mid-record (a torn tail), or written in v2 while
/// the manifest says `"3"`, is refused with `ArtifactInvalid` and nothing lands at the
/// destination.
#[test]
fn append_log_import_checks_the_payload_behind_the_digests() {
    use kvfold::protocol::manifest::{decode_manifest, encode_manifest};
    let dir = TempDir::new().expect("temp dir");
    let export = |name: &str, format: LogFormat| {
        let config = AppendLogConfig {
            artifact_format: format,
            ..config()
        };
        let (_, mut store) =
            AppendLogSnapshot::open_with(&dir.path().join(format!("{name}.fold")), config)
                .expect("open");
        let batch: Vec<KvUpdate> = (1..=4u64)
            .map(|rev| {
                KvUpdate::Put(KvEntry {
                    key: format!("k{rev}"),
                    value: vec![rev as u8; 40],
                    version: VersionToken::from_u64(rev),
                })
            })
            .collect();
        store
            .apply(&batch, &WatchCursor::from_u64(4))
            .expect("apply");
        let artifact = dir.path().join(name);
        store.export_to(&artifact).expect("export");
        artifact
    };
    // Rewrites the payload with `edit` and re-hashes it into the manifest.
    let rehash = |artifact: &Path, edit: &PayloadEdit, version: Option<&str>| {
        let payload = artifact.join("data/fold.snap");
        let mut bytes = std::fs::read(&payload).expect("payload");
        edit(&mut bytes);
        std::fs::write(&payload, &bytes).expect("payload");
        let manifest_path = artifact.join(kvfold::MANIFEST_FILE);
        let mut manifest =
            decode_manifest(&std::fs::read(&manifest_path).expect("manifest")).expect("decode");
        manifest.files[0].size = bytes.len() as u64;
        manifest.files[0].blake3 = blake3_hex(&bytes);
        if let Some(version) = version {
            manifest.backend_version = version.to_owned();
        }
        std::fs::write(&manifest_path, encode_manifest(&manifest)).expect("manifest");
    };
    let cases: [(&str, LogFormat, &PayloadEdit, Option<&str>); 4] = [
        (
            "bit flip mid-file",
            LogFormat::V3,
            &|b: &mut Vec<u8>| b[30] ^= 0x10,
            None,
        ),
        (
            "torn tail",
            LogFormat::V3,
            &|b: &mut Vec<u8>| b.truncate(b.len() - 5),
            None,
        ),
        (
            "v2 payload declared as 3",
            LogFormat::V2,
            &|_: &mut Vec<u8>| {},
            Some("3"),
        ),
        (
            "v3 payload declared as 2",
            LogFormat::V3,
            &|_: &mut Vec<u8>| {},
            Some("2"),
        ),
    ];
    for (i, (label, format, edit, version)) in cases.into_iter().enumerate() {
        let artifact = export(&format!("artifact-{i}"), format);
        rehash(&artifact, edit, version);
        let dest = dir.path().join(format!("dest-{i}"));
        match AppendLogSnapshot::import(&artifact, &dest, 1 << 20) {
            Err(SnapshotError::ArtifactInvalid(_)) => {}
            Err(other) => panic!("{label}: expected ArtifactInvalid, got {other:?}"),
            Ok(_) => panic!("{label}: a broken payload was imported"),
        }
        assert!(
            dest.symlink_metadata().is_err(),
            "{label}: something landed at the destination"
        );
    }
}

/// An in-place change to a payload's bytes.
type PayloadEdit = dyn Fn(&mut Vec<u8>);

/// Lowercase hex BLAKE3 digest.
fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

// ---------------------------------------------------------------------------
// Mutation evidence: each defect makes the check for its rule fail.

/// Runs `check` against a harness with `mutation`; asserts that it panics with
/// a message naming `name`.
fn expect_check_fails(mutation: Mutation, name: &str, check: fn(&Harness) -> Outcome) {
    let h = Harness::new(mutation);
    let result = catch_unwind(AssertUnwindSafe(|| check(&h)));
    let Err(panic) = result else {
        panic!("{name} passed on a store with {mutation:?}: the check misses that defect");
    };
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(
        message.contains(&format!("`{name}`")),
        "{name} with {mutation:?} failed with a message not naming the check: {message}"
    );
}

macro_rules! mutants {
    ($($test:ident: $mutation:ident => $($check:ident),+;)*) => {
        mod mutants {
            use super::*;
            $(
                #[test]
                fn $test() {
                    $(expect_check_fails(Mutation::$mutation, stringify!($check), snapshot::$check);)+
                }
            )*
        }
    };
}

mutants! {
    dropped_deletes: DropDeletes => sc_01_round_trip, sc_02_get_semantics, sc_05_has_entries, sc_08_purge_folds_as_delete;
    reversed_batch: ReverseBatch => sc_01_round_trip, sc_09_pure_fold;
    concat_on_overwrite: ConcatOnOverwrite => sc_10_idempotent_redelivery;
    cursor_moves_on_failure: CursorMovesOnFailure => sc_18_size_limits;
    cursor_lags: CursorLagsOne => sc_06_cursor_tracks_apply;
    empty_batch_not_durable: EmptyBatchNotDurable => sc_07_empty_batch_advances_cursor;
    hidden_empty_values: HideEmptyValues => sc_02_get_semantics;
    reversed_range: ReverseRange => sc_03_range_semantics;
    prefix_key_skipped: SkipPrefixKey => sc_03_range_semantics;
    callback_error_ignored: IgnoreCallbackErr => sc_04_for_each_in_range;
    sticky_has_entries: StickyHasEntries => sc_05_has_entries;
    memo_lost: LoseMemo => sc_11_cursor_memo_round_trip;
    versions_truncated: TruncateVersions => sc_12_long_version_round_trip;
    over_limit_skipped: SkipOverLimit => sc_18_size_limits;
    tight_key_limit: TightKeyLimit => sc_19_backend_limits_round_trip;
    export_stamps_scope: ExportStampsScope => sc_14_export_import_round_trip;
    export_clears_dest: ExportClearsDest => sc_17_export_destination_rules;
    import_unverified: ImportUnverified => sc_16_import_rejects_tampering;
    import_opens_copy: ImportOpensCopy => sc_15_import_then_apply;
}

/// The failed-apply rule under injected I/O faults (needs `failpoints`).
#[cfg(feature = "failpoints")]
#[test]
fn cursor_moving_on_a_faulted_apply_fails_sc_13() {
    expect_check_fails(
        Mutation::CursorMovesOnFailure,
        "sc_13_failed_apply_changes_nothing",
        snapshot::sc_13_failed_apply_changes_nothing,
    );
}

/// `run_all` runs every check and then panics with a list naming each failed one.
#[test]
fn run_all_reports_every_failed_check() {
    let h = Harness::new(Mutation::DropDeletes);
    let Err(panic) = catch_unwind(AssertUnwindSafe(|| snapshot::run_all(&h))) else {
        panic!("run_all passed on a store that drops deletes");
    };
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.starts_with("snapshot conformance: "), "{message}");
    for name in [
        "sc_01_round_trip",
        "sc_02_get_semantics",
        "sc_05_has_entries",
        "sc_08_purge_folds_as_delete",
    ] {
        assert!(
            message.contains(&format!("\n  {name}: ")),
            "run_all's report misses {name}: {message}"
        );
    }
    // A check whose stream has no Delete or Purge still passes: failures stay isolated.
    assert!(
        !message.contains("\n  sc_04_for_each_in_range: "),
        "{message}"
    );
}
