//! One writer per snapshot log, enforced (issue 9, defect 8): every writable
//! append-log store (`AppendLogSnapshot`, `SnapshotWriter`) holds an exclusive
//! advisory lock on its log file for its lifetime, and a second open of the same
//! file, in this process or another, is refused with `SnapshotError::Io` of kind
//! `WouldBlock` whose message names the path. `load`, which rewrites the file,
//! is refused the same way. The lock follows the log across compaction (the new
//! file is locked before it is renamed over the old one).
//!
//! Cross-process checks re-execute this test binary as a child
//! (`lock_child`, driven by `KVFOLD_LOCK_CHILD`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use kvfold::snapshot::{DEFAULT_COMPACT_THRESHOLD, SnapshotWriter, load};
use kvfold::{
    AppendLogConfig, AppendLogSnapshot, KvEntry, KvUpdate, SnapshotError, SnapshotStore,
    VersionToken, WatchCursor,
};

const CHILD_ENV: &str = "KVFOLD_LOCK_CHILD";

fn put(key: &str, rev: u64) -> KvUpdate {
    KvUpdate::Put(KvEntry {
        key: key.to_owned(),
        value: vec![rev as u8; 40],
        version: VersionToken::from_u64(rev),
    })
}

/// Applies batches `from..=to` (one put each, cursor = revision).
fn apply_range(store: &mut AppendLogSnapshot, from: u64, to: u64) {
    for rev in from..=to {
        store
            .apply(&[put(&format!("k{rev}"), rev)], &WatchCursor::from_u64(rev))
            .expect("apply");
    }
}

/// Every-checkpoint compaction: the lock must survive each rename.
fn compacting() -> AppendLogConfig {
    AppendLogConfig {
        compact_threshold: 1,
        ..AppendLogConfig::default()
    }
}

/// `Err` unless `result` is the lock refusal naming `path`.
fn refused<T>(what: &str, path: &Path, result: Result<T, SnapshotError>) -> Result<(), String> {
    match result {
        Ok(_) => Err(format!(
            "{what}: a second writer was let in on {}",
            path.display()
        )),
        Err(SnapshotError::Io(e))
            if e.kind() == std::io::ErrorKind::WouldBlock
                && e.to_string().contains(&path.display().to_string()) =>
        {
            Ok(())
        }
        Err(other) => Err(format!("{what}: refused with the wrong error: {other:?}")),
    }
}

/// Every way of opening `path` for writing is refused. Each refusal first waits out the
/// bounded lock wait (about a second), so the four attempts run side by side, each on its
/// own thread and its own descriptor.
fn all_refused(path: &Path) -> Result<(), String> {
    std::thread::scope(|scope| {
        let attempts = [
            scope.spawn(|| {
                refused(
                    "AppendLogSnapshot::open",
                    path,
                    AppendLogSnapshot::open(path, DEFAULT_COMPACT_THRESHOLD),
                )
            }),
            scope.spawn(|| {
                refused(
                    "AppendLogSnapshot::load",
                    path,
                    <AppendLogSnapshot as SnapshotStore>::load(path),
                )
            }),
            scope.spawn(|| {
                refused(
                    "SnapshotWriter::open",
                    path,
                    SnapshotWriter::open(path, DEFAULT_COMPACT_THRESHOLD),
                )
            }),
            scope.spawn(|| refused("snapshot::load", path, load(path))),
        ];
        attempts
            .into_iter()
            .map(|attempt| attempt.join().expect("an open attempt panicked"))
            .collect::<Result<Vec<()>, String>>()
            .map(|_| ())
    })
}

#[test]
fn a_second_open_in_this_process_is_refused_with_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fold.snap");
    let (_, mut store) = AppendLogSnapshot::open(&path, DEFAULT_COMPACT_THRESHOLD).expect("open");
    apply_range(&mut store, 1, 3);
    all_refused(&path).unwrap_or_else(|e| panic!("{e}"));
    // The refused opens changed nothing: the first store goes on, and after it
    // is dropped the file opens again with everything it acknowledged.
    apply_range(&mut store, 4, 4);
    drop(store);
    let (cursor, store) =
        AppendLogSnapshot::open(&path, DEFAULT_COMPACT_THRESHOLD).expect("reopen");
    assert_eq!(cursor, WatchCursor::from_u64(4));
    assert_eq!(store.range("").expect("range").len(), 4);
}

#[test]
fn a_snapshot_writer_holds_the_lock_too() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fold.snap");
    let writer = SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD).expect("open");
    all_refused(&path).unwrap_or_else(|e| panic!("{e}"));
    drop(writer);
    drop(SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD).expect("free after drop"));
    assert!(load(&path).expect("load after drop").is_none());
}

#[test]
fn the_lock_follows_the_log_across_compaction() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fold.snap");
    let (_, mut store) = AppendLogSnapshot::open_with(&path, compacting()).expect("open");
    for rev in 1..=5 {
        apply_range(&mut store, rev, rev);
        all_refused(&path).unwrap_or_else(|e| panic!("after compaction {rev}: {e}"));
    }
    drop(store);
    let (cursor, _store) = AppendLogSnapshot::open_with(&path, compacting()).expect("reopen");
    assert_eq!(cursor, WatchCursor::from_u64(5));
}

/// The scenario: two handles applying in turns lost an acknowledged
/// apply after compaction. Now the second handle never opens; the one writer's
/// every acknowledged apply survives.
#[test]
fn two_handles_cannot_apply_in_turns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fold.snap");
    let config = AppendLogConfig {
        compact_threshold: 300,
        ..AppendLogConfig::default()
    };
    let (_, mut first) = AppendLogSnapshot::open_with(&path, config).expect("open");
    let second = AppendLogSnapshot::open_with(&path, config);
    refused("second handle", &path, second).unwrap_or_else(|e| panic!("{e}"));
    apply_range(&mut first, 1, 40);
    drop(first);
    let (cursor, store) = AppendLogSnapshot::open_with(&path, config).expect("reopen");
    assert_eq!(cursor, WatchCursor::from_u64(40));
    assert_eq!(store.range("").expect("range").len(), 40);
}

#[test]
fn an_imported_store_holds_the_lock() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("source.snap");
    let (_, mut store) = AppendLogSnapshot::open(&source, DEFAULT_COMPACT_THRESHOLD).expect("open");
    apply_range(&mut store, 1, 3);
    let artifact = dir.path().join("artifact");
    store.export_to(&artifact).expect("export");
    let dest = dir.path().join("dest.snap");
    let (cursor, mut imported) =
        AppendLogSnapshot::import(&artifact, &dest, DEFAULT_COMPACT_THRESHOLD).expect("import");
    assert_eq!(cursor, WatchCursor::from_u64(3));
    all_refused(&dest).unwrap_or_else(|e| panic!("{e}"));
    apply_range(&mut imported, 4, 4);
    drop(imported);
    let (cursor, _) = AppendLogSnapshot::open(&dest, DEFAULT_COMPACT_THRESHOLD).expect("reopen");
    assert_eq!(cursor, WatchCursor::from_u64(4));
}

/// Not a test of its own: what a child process does. Without `CHILD_ENV` (a
/// normal test run) it does nothing.
///
/// - `refused:<path>`: every open of `<path>` must be refused (exit 0) or the
///   child panics (exit 101).
/// - `hold:<path>`: open `<path>` compacting at every apply, apply batches 1–3,
///   print `HOLDING`, then wait for stdin to close; apply batch 4 and exit.
#[test]
fn lock_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mode, path) = spec.split_once(':').expect("<mode>:<path>");
    let path = Path::new(path);
    match mode {
        "refused" => all_refused(path).unwrap_or_else(|e| panic!("child: {e}")),
        "hold" => {
            let (_, mut store) = AppendLogSnapshot::open_with(path, compacting()).expect("open");
            apply_range(&mut store, 1, 3);
            println!("HOLDING");
            std::io::stdout().flush().expect("flush");
            let mut rest = String::new();
            let _ = std::io::stdin().read_line(&mut rest);
            apply_range(&mut store, 4, 4);
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn child(mode: &str, path: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args(["lock_child", "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, format!("{mode}:{}", path.display()));
    command
}

#[test]
fn another_process_is_refused_while_this_one_holds_the_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fold.snap");
    let (_, mut store) = AppendLogSnapshot::open_with(&path, compacting()).expect("open");
    apply_range(&mut store, 1, 3);
    let out = child("refused", &path).output().expect("run the child");
    assert!(
        out.status.success(),
        "the child was let in: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    drop(store);
    // Released: a child that must be refused now fails.
    let out = child("refused", &path).output().expect("run the child");
    assert!(
        !out.status.success(),
        "the child was refused although the store was closed"
    );
}

#[test]
fn this_process_is_refused_while_another_holds_the_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fold.snap");
    let mut holder = child("hold", &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the holder");
    let mut lines = BufReader::new(holder.stdout.take().expect("stdout")).lines();
    let holding = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("HOLDING"));
    assert!(holding, "the holder never opened the store");
    // The holder compacted three times: the lock is on the file the name points at.
    let refusal = all_refused(&path);
    drop(holder.stdin.take());
    let status = holder.wait().expect("wait for the holder");
    refusal.unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "the holder failed: {status:?}");
    let (cursor, store) =
        AppendLogSnapshot::open_with(&path, compacting()).expect("open after exit");
    assert_eq!(cursor, WatchCursor::from_u64(4));
    assert_eq!(store.range("").expect("range").len(), 4);
}

/// A child process forked by another thread holds a copy of every open
/// descriptor until its `exec`, so a store dropped in that window keeps its lock
/// for a moment although no writer is left. Reopening must not be refused then:
/// the opener waits (bounded) for such a lock. Before the wait, this failed with
/// "is locked: another writer holds it" within a few dozen reopens.
#[test]
fn reopening_while_other_threads_spawn_processes_is_not_refused() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fold.snap");
    let stop = Arc::new(AtomicBool::new(false));
    let spawners: Vec<_> = (0..2)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut spawned = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let status = Command::new("true")
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .expect("spawn `true`");
                    assert!(status.success());
                    spawned += 1;
                }
                spawned
            })
        })
        .collect();
    let mut outcome = Ok(());
    for rev in 1..=200u64 {
        match AppendLogSnapshot::open(&path, DEFAULT_COMPACT_THRESHOLD) {
            Ok((cursor, mut store)) => {
                assert_eq!(
                    cursor,
                    if rev == 1 {
                        WatchCursor::none()
                    } else {
                        WatchCursor::from_u64(rev - 1)
                    }
                );
                apply_range(&mut store, rev, rev);
            }
            Err(e) => {
                outcome = Err(format!("reopen {rev} refused: {e}"));
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let spawned: u32 = spawners
        .into_iter()
        .map(|h| h.join().expect("spawner"))
        .sum();
    assert!(
        spawned > 0,
        "no child process was spawned during the reopens"
    );
    if let Err(e) = outcome {
        panic!("{e} (while {spawned} child processes were spawned)");
    }
}
