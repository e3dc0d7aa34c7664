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
