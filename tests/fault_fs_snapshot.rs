//! Every file-system call of the snapshot store fails once (issue 9, "close the
//! class"; feature `failpoints`). Through the file-system seam
//! (`kvfold::snapshot::fs_faults`), an open / apply / compact (low threshold) /
//! reopen workload runs once per fault point: for every kind of call, every N
//! until the workload completes without the fault firing, and each of EIO, ENOSPC
//! and a short write. After each run the store is reopened with real I/O and
//! checked:
//!
//! - every batch whose `apply` returned `Ok` is present;
//! - the cursor never claims a revision whose data is missing (the state is the
//!   model at the cursor, plus at most a prefix of the one batch in flight);
//! - a store that reported an error either keeps working (its retry succeeds) or
//!   refuses every later call (poisoned), never `Ok` again on a broken file;
//! - the reopened store accepts a new batch that survives another reopen.
//!
//! `every_snapshot_fs_call_fails_once` is the CI tier (sync on, a short
//! workload); `every_snapshot_fs_call_fails_deep` (`#[ignore]`, run by hand) walks
//! a longer workload in both sync modes and also with persistent faults.
#![cfg(feature = "failpoints")]

use std::path::Path;

use kvfold::snapshot::fs_faults::{self, Fault, FaultPlan, OpCounts, OpKind};
use kvfold::{
    AppendLogConfig, AppendLogSnapshot, KvUpdate, SnapshotError, SnapshotStore, WatchCursor,
};

mod common;

use common::updates::put_value as put;
use common::workload::{self, Model, PER_BATCH, batch_with, cursor_of, faults_of, fold, state_of};

/// Batch `i` of the shared workload, `u<i>` empty.
fn batch(i: u64) -> Vec<KvUpdate> {
    batch_with(i, 0)
}

fn model_after(batches: u64) -> Model {
    workload::model_after(batches, batch)
}

/// The workload's shape.
#[derive(Debug, Clone, Copy)]
struct Shape {
    config: AppendLogConfig,
    /// Batches applied before the store is closed and reopened.
    first: u64,
    /// Batches applied in all.
    total: u64,
}

/// What a run of the workload acknowledged.
#[derive(Debug, Default)]
struct Outcome {
    /// The highest batch whose `apply` returned `Ok`.
    acked: u64,
    /// The highest batch whose `apply` was called.
    attempted: u64,
    /// Broken promises seen during the run.
    violations: Vec<String>,
}

fn is_poisoned(err: &SnapshotError) -> bool {
    matches!(err, SnapshotError::Io(e) if e.to_string().contains("poisoned"))
}

/// Checks a store just opened at `cursor` against what was acknowledged: the
/// cursor is not behind an acknowledged batch, names a batch that was
/// attempted, and the state is the model at the cursor plus at most a prefix of
/// the next batch (data ahead of the cursor from a failed apply).
fn check_state(
    label: &str,
    cursor: &WatchCursor,
    store: &AppendLogSnapshot,
    acked: u64,
    attempted: u64,
) -> Result<(), String> {
    let rank = cursor.rank();
    if !rank.is_multiple_of(PER_BATCH) {
        return Err(format!("{label}: cursor {rank} is not a batch boundary"));
    }
    let at = rank / PER_BATCH;
    if at < acked {
        return Err(format!(
            "{label}: cursor at batch {at}, but batch {acked} was acknowledged"
        ));
    }
    if at > attempted {
        return Err(format!(
            "{label}: cursor at batch {at}, but only {attempted} were applied"
        ));
    }
    let got = state_of(store);
    let mut want = model_after(at);
    if got == want {
        return Ok(());
    }
    if at < attempted {
        for update in batch(at + 1) {
            fold(&mut want, std::slice::from_ref(&update));
            if got == want {
                return Ok(());
            }
        }
    }
    let model = model_after(at);
    let missing: Vec<&String> = model.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !model.contains_key(*k)).collect();
    Err(format!(
        "{label}: state at cursor batch {at} is not the model (missing {missing:?}, extra {extra:?})"
    ))
}

/// Opens the store, retrying a failed open a few times (a transient fault is
/// spent by then); `None` when it keeps failing.
fn open_retrying(path: &Path, shape: &Shape) -> Option<(WatchCursor, AppendLogSnapshot)> {
    for _ in 0..3 {
        if let Ok(opened) = AppendLogSnapshot::open_with(path, shape.config) {
            return Some(opened);
        }
    }
    None
}

/// Runs the workload at `path` (whatever faults are armed on this thread).
fn workload(path: &Path, shape: &Shape, persistent: bool) -> Outcome {
    let mut out = Outcome::default();
    let mut next = 1u64;
    let mut phase_end = shape.first;
    // Reopens after a refusing store, bounded: a persistent fault can make
    // every apply fail, and then the run ends.
    let mut reopens_left = 4u32;
    'phases: while next <= shape.total {
        let Some((cursor, mut store)) = open_retrying(path, shape) else {
            break;
        };
        if let Err(e) = check_state(
            "open during the run",
            &cursor,
            &store,
            out.acked,
            out.attempted,
        ) {
            out.violations.push(e);
        }
        let mut poisoned = false;
        while next <= phase_end {
            out.attempted = out.attempted.max(next);
            match store.apply(&batch(next), &cursor_of(next)) {
                Ok(()) if poisoned => {
                    out.violations.push(format!(
                        "batch {next}: Ok from a store that reported itself poisoned"
                    ));
                    out.acked = next;
                    next += 1;
                }
                Ok(()) => {
                    if store.cursor() != cursor_of(next) {
                        out.violations
                            .push(format!("batch {next}: Ok but cursor() did not move"));
                    }
                    out.acked = next;
                    next += 1;
                }
                Err(err) => {
                    poisoned |= is_poisoned(&err);
                    // The store refuses; retry the same batch once on it, as the
                    // fold does. A poisoned (or persistently failing) store must
                    // keep refusing; then it is closed and reopened.
                    match store.apply(&batch(next), &cursor_of(next)) {
                        Ok(()) if poisoned => {
                            out.violations.push(format!(
                                "batch {next}: retry Ok on a poisoned store ({err})"
                            ));
                            out.acked = next;
                            next += 1;
                        }
                        Ok(()) => {
                            out.acked = next;
                            next += 1;
                        }
                        Err(again) => {
                            if !persistent && !is_poisoned(&again) {
                                out.violations.push(format!(
                                    "batch {next}: a retry after a one-shot fault failed without poisoning: {again}"
                                ));
                            }
                            if !persistent && store.apply(&batch(next), &cursor_of(next)).is_ok() {
                                out.violations.push(format!(
                                    "batch {next}: Ok after the store refused twice"
                                ));
                            }
                            drop(store);
                            if reopens_left == 0 {
                                break 'phases;
                            }
                            reopens_left -= 1;
                            continue 'phases;
                        }
                    }
                }
            }
        }
        drop(store);
        phase_end = shape.total;
    }
    out
}

/// One run with `plan` armed; `None` when the plan never fired (the workload
/// passed every fault point of that kind).
fn run_once(shape: &Shape, plan: Option<FaultPlan>) -> Option<(OpCounts, Vec<String>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fold.snap");
    fs_faults::start(plan);
    let outcome = workload(&path, shape, plan.is_some_and(|p| p.persistent));
    let counts = fs_faults::finish();
    if plan.is_some() && counts.fired == 0 {
        return None;
    }
    let mut violations = outcome.violations;
    let label = format!("{plan:?}");
    match AppendLogSnapshot::open_with(&path, shape.config) {
        Err(e) => violations.push(format!("{label}: reopen with real I/O failed: {e}")),
        Ok((cursor, mut store)) => {
            if let Err(e) = check_state(
                &format!("{label}: reopen"),
                &cursor,
                &store,
                outcome.acked,
                outcome.attempted,
            ) {
                violations.push(e);
            }
            // The file accepts appends again, and they survive.
            let at = cursor.rank() / PER_BATCH;
            match store.apply(&batch(at + 1), &cursor_of(at + 1)) {
                Err(e) => violations.push(format!("{label}: apply after reopen failed: {e}")),
                Ok(()) => {
                    drop(store);
                    match AppendLogSnapshot::open_with(&path, shape.config) {
                        Ok((cursor, store)) => {
                            if let Err(e) = check_state(
                                &format!("{label}: final"),
                                &cursor,
                                &store,
                                at + 1,
                                at + 1,
                            ) {
                                violations.push(e);
                            }
                        }
                        Err(e) => violations.push(format!("{label}: final reopen failed: {e}")),
                    }
                }
            }
        }
    }
    Some((counts, violations))
}

/// Walks every fault point; returns `(kind, fault, points)` rows and panics on
/// any violation.
fn walk(shape: &Shape, persistent: bool) -> Vec<(OpKind, Fault, u64)> {
    let (clean, violations) = run_once(shape, None).expect("a clean run");
    assert!(violations.is_empty(), "fault-free run: {violations:?}");
    let mut rows = Vec::new();
    let mut all = Vec::new();
    for kind in OpKind::ALL {
        let faults = faults_of(kind);
        for &fault in faults {
            let mut points = 0u64;
            for nth in 1..=10_000u64 {
                let plan = FaultPlan {
                    kind,
                    nth,
                    fault,
                    persistent,
                    then_fail: None,
                };
                let Some((_, violations)) = run_once(shape, Some(plan)) else {
                    break;
                };
                points += 1;
                all.extend(violations);
            }
            assert!(
                points >= clean.get(kind).min(1),
                "{kind:?}/{fault:?}: the fault never fired although the clean run made {} calls",
                clean.get(kind)
            );
            rows.push((kind, fault, points));
        }
    }
    let table: Vec<String> = rows
        .iter()
        .map(|(k, f, n)| format!("{k:?}/{f:?}: {n}"))
        .collect();
    eprintln!(
        "fault points (persistent: {persistent}, clean run: {}): {}",
        OpKind::ALL
            .iter()
            .map(|k| format!("{k:?}={}", clean.get(*k)))
            .collect::<Vec<_>>()
            .join(" "),
        table.join(", ")
    );
    assert!(
        all.is_empty(),
        "{} violations:\n{}",
        all.len(),
        all.join("\n")
    );
    rows
}

/// Second faults on the recovery paths: for every call N of `primary` that
/// fails with EIO, the first later call of `second` fails too. Returns how many
/// runs reached a `second` call after the primary fault; panics on violations.
fn walk_second(shape: &Shape, primary: OpKind, second: OpKind) -> u64 {
    let mut reached = 0u64;
    let mut all = Vec::new();
    for nth in 1..=10_000u64 {
        let plan = FaultPlan {
            kind: primary,
            nth,
            fault: Fault::Eio,
            persistent: false,
            then_fail: Some(second),
        };
        let Some((counts, violations)) = run_once(shape, Some(plan)) else {
            break;
        };
        reached += counts.then_fired;
        all.extend(violations);
    }
    eprintln!("second faults: {primary:?} then {second:?}: {reached}");
    assert!(
        all.is_empty(),
        "{} violations:\n{}",
        all.len(),
        all.join("\n")
    );
    reached
}

fn low_threshold(sync: bool) -> AppendLogConfig {
    AppendLogConfig {
        compact_threshold: 150,
        sync,
        ..AppendLogConfig::default()
    }
}

#[test]
fn every_snapshot_fs_call_fails_once() {
    let shape = Shape {
        config: low_threshold(true),
        first: 3,
        total: 6,
    };
    let rows = walk(&shape, false);
    for kind in [
        OpKind::Open,
        OpKind::Read,
        OpKind::Write,
        OpKind::SyncFile,
        OpKind::SyncDir,
        OpKind::Rename,
        OpKind::SetLen,
        OpKind::Stat,
        OpKind::Lock,
    ] {
        assert!(
            rows.iter().any(|(k, _, n)| *k == kind && *n > 0),
            "the workload never reached a {kind:?} call"
        );
    }
}

#[test]
fn a_second_fault_on_the_recovery_path_loses_nothing() {
    let shape = Shape {
        config: low_threshold(true),
        first: 3,
        total: 6,
    };
    // The truncate back to the checkpoint after a failed write or a failed
    // compaction write; the removal of a compaction temp file after a failed
    // write, fsync or rename.
    assert!(walk_second(&shape, OpKind::Write, OpKind::SetLen) > 0);
    assert!(walk_second(&shape, OpKind::Write, OpKind::Remove) > 0);
    assert!(walk_second(&shape, OpKind::Rename, OpKind::Remove) > 0);
}

#[test]
#[ignore = "deep tier, run by hand: cargo test --all-features --test fault_fs_snapshot -- --ignored"]
fn every_snapshot_fs_call_fails_deep() {
    for sync in [true, false] {
        let shape = Shape {
            config: low_threshold(sync),
            first: 8,
            total: 16,
        };
        walk(&shape, false);
        walk(&shape, true);
        for primary in [OpKind::Write, OpKind::SyncFile, OpKind::Rename] {
            for second in [OpKind::SetLen, OpKind::Remove, OpKind::SyncDir] {
                walk_second(&shape, primary, second);
            }
        }
    }
}

/// Defect 1 of issue 9: compaction renamed the new file into place, the
/// directory fsync failed, and the writer kept appending to the old, unlinked
/// file while `apply` returned `Ok`; the next compaction read the new file by
/// path and dropped those batches but kept the newer cursor (seen: `k3`, `k4`
/// gone, cursor 5). Every acknowledged batch must survive a reopen.
#[test]
fn batches_acknowledged_after_a_failed_directory_fsync_survive_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fold.snap");
    // Every checkpoint is over the threshold: every apply compacts.
    let config = AppendLogConfig {
        compact_threshold: 1,
        ..AppendLogConfig::default()
    };
    let (_, mut store) = AppendLogSnapshot::open_with(&path, config).expect("open");
    for i in 1..=2 {
        store
            .apply(&[put(&format!("k{i}"), b"v", i)], &WatchCursor::from_u64(i))
            .expect("apply");
    }
    // The next directory fsync (the one after batch 3's compaction renamed) fails.
    fs_faults::start(Some(FaultPlan {
        kind: OpKind::SyncDir,
        nth: 1,
        fault: Fault::Eio,
        persistent: false,
        then_fail: None,
    }));
    let mut acked = Vec::new();
    for i in 3..=6 {
        if store
            .apply(&[put(&format!("k{i}"), b"v", i)], &WatchCursor::from_u64(i))
            .is_ok()
        {
            acked.push(i);
        }
    }
    let counts = fs_faults::finish();
    assert_eq!(counts.fired, 1, "the directory fsync fault fired");
    drop(store);
    let (cursor, store) = AppendLogSnapshot::open_with(&path, config).expect("reopen");
    for i in acked.iter().copied().chain([1, 2]) {
        assert!(
            store.get(&format!("k{i}")).expect("get").is_some(),
            "k{i} was acknowledged (acked {acked:?}) but is gone after reopen; cursor {}",
            cursor.rank()
        );
    }
    let at = cursor.rank();
    for i in 1..=at {
        assert!(
            store.get(&format!("k{i}")).expect("get").is_some(),
            "the cursor claims {at} but k{i} is missing"
        );
    }
}

// ---------------------------------------------------------------------------
// A new log's creation (issue 11 item 4, docs/decisions.md 98): no fsync at
// creation; with `sync` the first checkpoint makes the header and the name
// durable before it returns.

use kvfold::snapshot::{SnapshotWriter, load};

/// The v3 header of an empty log, as the writer creates it.
fn v3_header() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fold.snap");
    drop(SnapshotWriter::open_with(&path, u64::MAX, false).expect("create"));
    let header = std::fs::read(&path).expect("read");
    assert_eq!(header.len(), 12, "a new log is its 12-byte header");
    header
}

/// Reopens `path` every way a fold does, expecting an empty log with no error,
/// and checks that it then takes a batch that survives another reopen.
fn assert_reopens_empty(path: &Path, label: &str) {
    assert!(
        load(path)
            .unwrap_or_else(|e| panic!("{label}: load: {e}"))
            .is_none(),
        "{label}: load sees entries"
    );
    let config = AppendLogConfig::default();
    let (cursor, mut store) =
        AppendLogSnapshot::open_with(path, config).unwrap_or_else(|e| panic!("{label}: open: {e}"));
    assert!(cursor.is_none(), "{label}: cursor {cursor:?}");
    assert!(!store.has_entries().expect("has_entries"), "{label}");
    store
        .apply(&[put("k", b"v", 1)], &WatchCursor::from_u64(1))
        .unwrap_or_else(|e| panic!("{label}: apply: {e}"));
    drop(store);
    let (cursor, store) = AppendLogSnapshot::open_with(path, config).expect("reopen");
    assert_eq!(cursor.rank(), 1, "{label}");
    assert!(store.get("k").expect("get").is_some(), "{label}");
}

/// Index of the last call of `kind` in `trace`.
fn last_of(trace: &[OpKind], kind: OpKind) -> Option<usize> {
    trace.iter().rposition(|k| *k == kind)
}

#[test]
fn with_sync_off_a_new_log_is_never_fsynced_by_open_append_or_checkpoint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fold.snap");
    fs_faults::start(None);
    let mut writer = SnapshotWriter::open_with(&path, u64::MAX, false).expect("open");
    for i in 1..=100u64 {
        writer
            .write_update(&put(&format!("k{i}"), &[b'v'; 512], i))
            .expect("append");
    }
    let _ = writer
        .checkpoint(&WatchCursor::from_u64(100))
        .expect("checkpoint");
    let counts = fs_faults::finish();
    assert_eq!(counts.get(OpKind::SyncFile), 0, "file fsyncs with sync off");
    assert_eq!(
        counts.get(OpKind::SyncDir),
        0,
        "directory fsyncs with sync off"
    );
    drop(writer);
    let (cursor, store) =
        AppendLogSnapshot::open_with(&path, AppendLogConfig::default()).expect("reopen");
    assert_eq!(cursor.rank(), 100);
    assert!(store.get("k100").expect("get").is_some());
}

/// A crash right after a sync-off creation: nothing was fsynced, so the disk may
/// hold no file, an empty one, or any prefix of the header, zero-filled or not.
/// Each reopens as an empty log, with no error (H2 of docs/formats.md §10; the
/// kernel cases are `every_header_prefix_optionally_zero_filled_is_a_torn_creation`
/// and `empty_input_is_a_torn_creation` in src/protocol/log/tests.rs).
#[test]
fn with_sync_off_a_crash_right_after_creation_reopens_as_an_empty_log() {
    let header = v3_header();
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.snap");
    assert_reopens_empty(&missing, "missing file");
    for cut in 0..=header.len() {
        for zero_filled in [false, true] {
            let mut bytes = header[..cut].to_vec();
            if zero_filled {
                bytes.resize(header.len(), 0);
            }
            let path = dir.path().join(format!("cut{cut}-{zero_filled}.snap"));
            std::fs::write(&path, &bytes).expect("write the crash image");
            assert_reopens_empty(
                &path,
                &format!("header cut at {cut}, zero-filled {zero_filled}"),
            );
        }
    }
}

/// A crash after a sync-off first checkpoint (still nothing fsynced): any prefix
/// of the written bytes, and any prefix followed by zeros up to the file's
/// length, reopens without error at a consistent state (empty or the
/// checkpoint's), never an error, with one exception: when not even the header
/// reached the disk but the file's length did (a filesystem that zero-fills
/// unwritten blocks), the file is a header prefix followed by zeros past the
/// header's 12 bytes, which the format refuses (`InvalidFormat`, or `Corrupted`
/// once the magic is complete: loudly, never read as empty). docs/decisions.md 98 weighs this case.
/// Appends k1..k3 (revisions 1..3) and checkpoints at cursor 3.
fn three_puts_and_a_checkpoint(writer: &mut SnapshotWriter) {
    for i in 1..=3u64 {
        writer
            .write_update(&put(&format!("k{i}"), b"value", i))
            .expect("append");
    }
    let _ = writer
        .checkpoint(&WatchCursor::from_u64(3))
        .expect("checkpoint");
}

#[test]
fn with_sync_off_a_crash_after_the_first_checkpoint_reopens_consistent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("fold.snap");
    let mut writer = SnapshotWriter::open_with(&source, u64::MAX, false).expect("open");
    three_puts_and_a_checkpoint(&mut writer);
    drop(writer);
    let written = std::fs::read(&source).expect("read");
    let image = dir.path().join("image.snap");
    for cut in 0..=written.len() {
        for zero_filled in [false, true] {
            let mut bytes = written[..cut].to_vec();
            if zero_filled {
                bytes.resize(written.len(), 0);
            }
            let label = format!("cut at {cut}, zero-filled {zero_filled}");
            std::fs::write(&image, &bytes).expect("write the crash image");
            if cut < 12 && zero_filled {
                let refused = load(&image);
                assert!(
                    matches!(
                        refused,
                        Err(SnapshotError::InvalidFormat(_) | SnapshotError::Corrupted)
                    ),
                    "{label}: a header prefix and zeros past the header: {refused:?}"
                );
                continue;
            }
            let loaded = load(&image).unwrap_or_else(|e| panic!("{label}: {e}"));
            match loaded {
                None => assert!(
                    cut < written.len(),
                    "{label}: the whole file reads as empty"
                ),
                // Records after the last cursor fold too: a cut inside the
                // checkpoint's Cursor record keeps the records before it, at
                // no cursor.
                Some(snapshot) if cut < written.len() => {
                    assert!(snapshot.cursor.is_none(), "{label}: {:?}", snapshot.cursor);
                    assert!(snapshot.entries.len() <= 3, "{label}");
                }
                Some(snapshot) => {
                    assert_eq!(snapshot.cursor.rank(), 3, "{label}");
                    assert_eq!(snapshot.entries.len(), 3, "{label}");
                }
            }
        }
    }
}

#[test]
fn with_sync_on_the_first_checkpoint_fsyncs_the_new_log_and_its_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fold.snap");
    fs_faults::start(None);
    let mut writer = SnapshotWriter::open_with(&path, u64::MAX, true).expect("open");
    let opened = fs_faults::trace();
    assert!(
        !opened.contains(&OpKind::SyncFile) && !opened.contains(&OpKind::SyncDir),
        "creation fsyncs nothing: {opened:?}"
    );
    three_puts_and_a_checkpoint(&mut writer);
    let first = fs_faults::trace();
    // The power-loss argument: the header and the records were all written
    // before the file's fsync, and the directory fsync came after the file's
    // creation, so once the checkpoint returned both are durable: a power loss
    // now leaves exactly this file under this name.
    let last_write = last_of(&first, OpKind::Write).expect("the checkpoint wrote");
    let file_sync =
        last_of(&first, OpKind::SyncFile).expect("the first checkpoint fsyncs the file");
    let dir_sync =
        last_of(&first, OpKind::SyncDir).expect("the first checkpoint fsyncs the directory");
    assert!(
        opened.len() <= last_write && last_write < file_sync && last_write < dir_sync,
        "the fsyncs follow the checkpoint's writes: {:?}",
        &first[opened.len()..]
    );
    assert_eq!(first.iter().filter(|k| **k == OpKind::SyncDir).count(), 1);
    // Later checkpoints: one fdatasync each, no directory fsync.
    writer
        .write_update(&put("k4", b"value", 4))
        .expect("append");
    let _ = writer
        .checkpoint(&WatchCursor::from_u64(4))
        .expect("checkpoint");
    let counts = fs_faults::finish();
    assert_eq!(counts.get(OpKind::SyncFile), 2);
    assert_eq!(counts.get(OpKind::SyncDir), 1);
    drop(writer);
    let (cursor, store) = AppendLogSnapshot::open_with(
        &path,
        AppendLogConfig {
            sync: true,
            ..AppendLogConfig::default()
        },
    )
    .expect("reopen");
    assert_eq!(cursor.rank(), 4);
    assert_eq!(state_of(&store).len(), 4);
}

/// With `sync`, a failure of either fsync of the first checkpoint is an error
/// and poisons the writer: no cursor is acknowledged while the new log or its
/// name may not be durable. A crash then reopens without error, at no cursor or
/// at that checkpoint's (the bytes reached the file), never an error; the
/// reopened store makes its next checkpoint durable.
#[test]
fn with_sync_on_a_failed_first_checkpoint_fsync_acknowledges_nothing() {
    let config = AppendLogConfig {
        sync: true,
        ..AppendLogConfig::default()
    };
    for kind in [OpKind::SyncFile, OpKind::SyncDir] {
        for fault in [Fault::Eio, Fault::Enospc] {
            let label = format!("{kind:?}/{fault:?}");
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("fold.snap");
            let (_, mut store) = AppendLogSnapshot::open_with(&path, config).expect("open");
            fs_faults::start(Some(FaultPlan {
                kind,
                nth: 1,
                fault,
                persistent: false,
                then_fail: None,
            }));
            let first = store.apply(&[put("k1", b"v", 1)], &WatchCursor::from_u64(1));
            let retry = store.apply(&[put("k1", b"v", 1)], &WatchCursor::from_u64(1));
            let counts = fs_faults::finish();
            assert_eq!(counts.fired, 1, "{label}: the fault fired");
            assert!(first.is_err(), "{label}: the checkpoint was acknowledged");
            assert!(
                retry.as_ref().is_err_and(is_poisoned),
                "{label}: the writer is not poisoned: {retry:?}"
            );
            drop(store);
            let (cursor, mut store) = AppendLogSnapshot::open_with(&path, config)
                .unwrap_or_else(|e| panic!("{label}: reopen: {e}"));
            assert!(cursor.rank() <= 1, "{label}: cursor {}", cursor.rank());
            fs_faults::start(None);
            store
                .apply(&[put("k2", b"v", 2)], &WatchCursor::from_u64(2))
                .expect("apply after reopen");
            let counts = fs_faults::finish();
            assert!(
                counts.get(OpKind::SyncFile) >= 1,
                "{label}: no fsync after reopen"
            );
        }
    }
}

/// The store's open reads its log once: the writer it opens on the handle `load`
/// just read (and, when not compact, rewrote) does not read and scan it again.
/// Either way the reopened store appends where the log ends.
#[test]
fn a_store_open_reads_its_log_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fold.snap");
    let config = AppendLogConfig::default();
    let (_, mut store) = AppendLogSnapshot::open_with(&path, config).expect("open");
    for i in 1..=3u64 {
        store
            .apply(&[put(&format!("k{i}"), b"v", i)], &WatchCursor::from_u64(i))
            .expect("apply");
    }
    drop(store);
    // Not compact (three cursors): the open rewrites it; then it is compact and
    // the next open takes it as it is.
    for round in ["rewritten", "compact"] {
        fs_faults::start(None);
        let (cursor, mut store) = AppendLogSnapshot::open_with(&path, config).expect("reopen");
        let counts = fs_faults::finish();
        assert_eq!(counts.get(OpKind::Read), 1, "{round}: reads of the log");
        assert_eq!(
            counts.get(OpKind::Rename),
            u64::from(round == "rewritten"),
            "{round}: rewrites"
        );
        assert_eq!(cursor.rank(), 3, "{round}");
        if round == "compact" {
            store
                .apply(&[put("k4", b"v", 4)], &WatchCursor::from_u64(4))
                .expect("apply after reopen");
        }
    }
    let snapshot = load(&path).expect("load").expect("entries");
    assert_eq!(snapshot.cursor.rank(), 4);
    assert_eq!(snapshot.entries.len(), 4);
}
