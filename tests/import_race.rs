//! Concurrent imports onto one destination (docs/artifacts.md §9, C4; issue 9 defect 2): at
//! most one import succeeds, the loser gets a typed error, and the file at the destination
//! is the winner's store, whole: the winner's later applies survive a reopen. Before the
//! no-replace publish, `rename(2)` let a racing importer replace a store another importer
//! had just published and opened, so both imports returned `Ok` and the first one's store
//! appended to an unlinked file.
//!
//! The race check is written once, generic over the store ([`race_imports`] takes
//! the backend's import as a closure), and runs here for `AppendLogSnapshot`,
//! with two threads and with two processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use kvfold::{AppendLogSnapshot, SnapshotError, SnapshotStore, WatchCursor};

mod common;

use common::updates::put_value as put;

/// A backend's import: verify the artifact at `.0` and install it at `.1`.
type ImportResult<S> = Result<(WatchCursor, S), SnapshotError>;

/// The compaction threshold the append-log imports here open with.
const COMPACT_THRESHOLD: u64 = 1 << 20;
/// Environment variable that turns `child_import` into one racing importer:
/// `<artifact>|<dest>|<go file>`.
const CHILD_ENV: &str = "KVFOLD_IMPORT_RACE_CHILD";
/// Marks a child's report line on its stdout (libtest prints around it).
const REPORT: &str = "import-race-report: ";
/// How long a child waits for the parent's start signal.
const CHILD_START_WAIT: Duration = Duration::from_secs(20);

/// The cursor importer `worker`'s artifact holds.
fn artifact_rev(worker: usize) -> u64 {
    10 * (worker as u64 + 1)
}

/// The key only importer `worker`'s artifact holds.
fn own_key(worker: usize) -> String {
    format!("w{worker}/key")
}

/// Exports, for each of the two importers, an artifact of its own (its own key and
/// cursor, so a mixed or replaced destination is visible) under `root`, through
/// the store's own `load`, `apply` and `export_to`.
fn export_two<S: SnapshotStore>(root: &Path) -> [PathBuf; 2] {
    [0, 1].map(|worker| {
        let store_path = root.join(format!("source-{worker}"));
        let (_, mut store) = S::load(&store_path).expect("open the source store");
        let rev = artifact_rev(worker);
        let batch = [put(&own_key(worker), &[worker as u8; 100], rev)];
        store
            .apply(&batch, &WatchCursor::from_u64(rev))
            .expect("apply to the source store");
        let artifact = root.join(format!("artifact-{worker}"));
        store.export_to(&artifact).expect("export");
        artifact
    })
}

/// Checks the winner of one race: its store holds its own artifact, later applies
/// through it survive a reopen of `dest` (so `dest` is the file it appends to),
/// and nothing of the other artifact is there.
fn check_winner<S: SnapshotStore>(dest: &Path, winner: usize, cursor: &WatchCursor, mut store: S) {
    let rev = artifact_rev(winner);
    assert_eq!(cursor, &WatchCursor::from_u64(rev), "winner's cursor");
    let after = WatchCursor::from_u64(rev + 1);
    store
        .apply(&[put("after", b"applied by the winner", rev + 1)], &after)
        .expect("the winner's store keeps working");
    drop(store);
    let (reopened, store) = S::load(dest).expect("reopen the destination");
    assert_eq!(
        reopened, after,
        "the destination is the winner's store: its apply survives a reopen"
    );
    assert!(store.get(&own_key(winner)).unwrap().is_some());
    assert!(store.get("after").unwrap().is_some());
    assert_eq!(
        store.get(&own_key(1 - winner)).unwrap(),
        None,
        "nothing of the loser's artifact"
    );
}

/// Hidden stage directories left in `dir`.
fn stages_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.starts_with(".kvfold-artifact-"))
        .collect()
}

/// The outcome of one two-importer race, as the checks see it.
#[derive(Debug, Default)]
struct RaceTally {
    /// Iterations in which both imports returned `Ok` (must stay 0).
    both_won: usize,
    /// Every loser's error.
    losers: Vec<SnapshotError>,
}

/// C4 for a backend's import: `iterations` times, two threads released by one
/// barrier import two different artifacts onto one fresh destination. At most one
/// may succeed; the loser gets `ArtifactInvalid` or `Io`; the winner's store is the
/// one at the destination. Returns the losers' errors for backend-specific checks.
///
/// # Panics
///
/// When both imports succeed in any iteration (with the count over all iterations),
/// or when a winner or loser breaks the rules above.
fn race_imports<S: SnapshotStore>(
    import: impl Fn(&Path, &Path) -> ImportResult<S> + Sync,
    iterations: usize,
) -> Vec<SnapshotError> {
    let root = tempfile::tempdir().expect("temp dir");
    let artifacts = export_two::<S>(root.path());
    let dests = root.path().join("dests");
    std::fs::create_dir(&dests).unwrap();
    let mut tally = RaceTally::default();
    for iteration in 0..iterations {
        let dest = dests.join(format!("fold-{iteration}"));
        let barrier = Barrier::new(2);
        let results: Vec<ImportResult<S>> = std::thread::scope(|scope| {
            let workers: Vec<_> = artifacts
                .iter()
                .map(|artifact| {
                    let (dest, barrier, import) = (&dest, &barrier, &import);
                    scope.spawn(move || {
                        barrier.wait();
                        import(artifact, dest)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| worker.join().expect("no panic"))
                .collect()
        });
        let mut winners = Vec::new();
        for (worker, result) in results.into_iter().enumerate() {
            match result {
                Ok((cursor, store)) => winners.push((worker, cursor, store)),
                Err(err) => tally.losers.push(err),
            }
        }
        match winners.len() {
            1 => {
                let (winner, cursor, store) = winners.pop().expect("one winner");
                check_winner(&dest, winner, &cursor, store);
            }
            0 => panic!("iteration {iteration}: nobody won: {:?}", tally.losers),
            _ => tally.both_won += 1,
        }
    }
    assert_eq!(
        tally.both_won, 0,
        "both imports succeeded in {} of {iterations} races",
        tally.both_won
    );
    for loser in &tally.losers {
        assert!(
            matches!(
                loser,
                SnapshotError::ArtifactInvalid(_) | SnapshotError::Io(_)
            ),
            "a loser gets ArtifactInvalid or Io: {loser:?}"
        );
    }
    assert_eq!(stages_in(&dests), Vec::<String>::new(), "losers clean up");
    tally.losers
}

/// `AppendLogSnapshot::import` with the threshold used here.
fn append_log_import(artifact: &Path, dest: &Path) -> ImportResult<AppendLogSnapshot> {
    AppendLogSnapshot::import(artifact, dest, COMPACT_THRESHOLD)
}

/// The append log's loser always hears that the destination already exists.
fn assert_append_log_losers(losers: &[SnapshotError]) {
    for loser in losers {
        match loser {
            SnapshotError::ArtifactInvalid(message) if message.contains("already exists") => {}
            other => panic!("expected ArtifactInvalid(\"… already exists\"), got {other:?}"),
        }
    }
}

#[test]
fn concurrent_append_log_imports_to_one_destination_have_one_winner() {
    const ITERATIONS: usize = 300;
    let started = Instant::now();
    let losers = race_imports(append_log_import, ITERATIONS);
    assert_eq!(losers.len(), ITERATIONS, "exactly one loser per race");
    assert_append_log_losers(&losers);
    eprintln!("{ITERATIONS} import races in {:?}", started.elapsed());
}

/// Not a test of its own: one racing importer in a child process. Without
/// `CHILD_ENV` (a normal test run) it does nothing. It waits for the go file,
/// imports, and on success applies one more batch and closes the store; it
/// prints `won` or `lost <error>` after [`REPORT`].
#[test]
fn child_import() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split('|');
    let (Some(artifact), Some(dest), Some(go)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("{CHILD_ENV} is <artifact>|<dest>|<go file>");
    };
    let deadline = Instant::now() + CHILD_START_WAIT;
    while !Path::new(go).exists() {
        assert!(Instant::now() < deadline, "no start signal");
        std::thread::sleep(Duration::from_micros(50));
    }
    match append_log_import(Path::new(artifact), Path::new(dest)) {
        Ok((cursor, mut store)) => {
            let rev = cursor.as_u64().expect("a u64 cursor") + 1;
            store
                .apply(
                    &[put("after", b"applied by the winner", rev)],
                    &WatchCursor::from_u64(rev),
                )
                .expect("the winner's store keeps working");
            println!("\n{REPORT}won");
        }
        Err(err) => println!("\n{REPORT}lost {err:?}"),
    }
}

/// Starts one racing importer process.
fn spawn_importer(artifact: &Path, dest: &Path, go: &Path) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args(["child_import", "--exact", "--test-threads=1", "--nocapture"])
        .env(
            CHILD_ENV,
            format!("{}|{}|{}", artifact.display(), dest.display(), go.display()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn an importer")
}

#[test]
fn concurrent_append_log_imports_from_two_processes_have_one_winner() {
    const ITERATIONS: usize = 150;
    let root = tempfile::tempdir().expect("temp dir");
    let artifacts = export_two::<AppendLogSnapshot>(root.path());
    let dests = root.path().join("dests");
    std::fs::create_dir(&dests).unwrap();
    let mut both_won = 0;
    for iteration in 0..ITERATIONS {
        let dest = dests.join(format!("fold-{iteration}"));
        let go = root.path().join(format!("go-{iteration}"));
        let children: Vec<Child> = artifacts
            .iter()
            .map(|artifact| spawn_importer(artifact, &dest, &go))
            .collect();
        std::fs::write(&go, b"").unwrap();
        let outputs: Vec<String> = children
            .into_iter()
            .map(|child| {
                let out = child.wait_with_output().expect("importer output");
                assert!(out.status.success(), "importer failed: {out:?}");
                let stdout = String::from_utf8_lossy(&out.stdout);
                stdout
                    .lines()
                    .find_map(|line| line.strip_prefix(REPORT))
                    .expect("the importer reports")
                    .to_owned()
            })
            .collect();
        let winners: Vec<usize> = (0..2).filter(|&w| outputs[w] == "won").collect();
        match winners.as_slice() {
            [winner] => {
                let loser = &outputs[1 - winner];
                assert!(
                    loser.starts_with("lost ArtifactInvalid(") && loser.contains("already exists"),
                    "iteration {iteration}: {loser}"
                );
                let (cursor, store) = AppendLogSnapshot::open(&dest, COMPACT_THRESHOLD).unwrap();
                let after = WatchCursor::from_u64(artifact_rev(*winner) + 1);
                assert_eq!(cursor, after, "iteration {iteration}: the winner's file");
                assert!(store.get(&own_key(*winner)).unwrap().is_some());
                assert_eq!(store.get(&own_key(1 - winner)).unwrap(), None);
            }
            [] => panic!("iteration {iteration}: nobody won: {outputs:?}"),
            _ => both_won += 1,
        }
    }
    assert_eq!(
        both_won, 0,
        "both importer processes succeeded in {both_won} of {ITERATIONS} races"
    );
    assert_eq!(stages_in(&dests), Vec::<String>::new(), "losers clean up");
}
