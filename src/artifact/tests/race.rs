//! Concurrent imports onto one destination (docs/artifacts.md §8): at most one
//! succeeds, the loser gets `ArtifactInvalid` ("already exists" / "exists and is
//! not empty", as for a destination taken before the import), and the destination
//! holds the winner's payload, whole. The publish never replaces: a file appears
//! only through `link(2)`, which refuses an existing name, and a directory only
//! through a `rename(2)` that refuses a non-empty one.
//!
//! Two kinds of test: a thread race whose cursor gates wait on one barrier (so
//! both importers re-check the destination and publish at the same moment), and,
//! with the `failpoints` feature, a deterministic one where a racing import runs
//! to completion in the window between the re-check and the publish (`I11`).

use std::sync::{Arc, Barrier};
use std::thread;

use super::*;
use crate::artifact::import_artifact;

/// Two `test-log` artifacts with different cursors and bodies under `root`.
fn two_log_artifacts(scratch: &Scratch) -> [PathBuf; 2] {
    [0u8, 1].map(|worker| {
        let artifact = scratch.path(&format!("artifact-{worker}"));
        let cursor = WatchCursor::from_u64(u64::from(worker) + 1);
        export_log(&artifact, &cursor, &[worker; 64]).expect("export");
        artifact
    })
}

/// Two `test-tree` artifacts with different cursors under `root`.
fn two_tree_artifacts(scratch: &Scratch) -> [PathBuf; 2] {
    [0u64, 1].map(|worker| {
        let artifact = scratch.path(&format!("tree-{worker}"));
        export_tree(&artifact, &WatchCursor::from_u64(worker + 1)).expect("export");
        artifact
    })
}

/// Imports `artifact` onto `dest` with `shape`; the cursor gate waits on `barrier`
/// after it read the staged cursor, so both racers leave it together.
fn gated_import(
    artifact: &Path,
    dest: &Path,
    tree: bool,
    barrier: &Barrier,
) -> Result<ExportManifest, SnapshotError> {
    let (backend, shape) = if tree {
        (TREE_BACKEND, PayloadShape::Directory)
    } else {
        (LOG_BACKEND, PayloadShape::SingleFile(LOG_FILE))
    };
    import_artifact(
        artifact,
        dest,
        backend,
        shape,
        accept_test_version,
        |staged, _| {
            let cursor = if tree {
                payload_cursor(&staged.join("version"))
            } else {
                payload_cursor(staged)
            };
            barrier.wait();
            cursor
        },
    )
}

/// The message a loser must get: the destination-occupied refusal.
fn assert_lost_to_an_occupied_destination(loser: &SnapshotError) {
    match loser {
        SnapshotError::ArtifactInvalid(message)
            if message.contains("already exists") || message.contains("is not empty") => {}
        other => panic!("expected ArtifactInvalid for the occupied destination, got {other:?}"),
    }
}

/// C4 for one shape: `iterations` two-thread races onto fresh destinations.
fn race(tree: bool, iterations: usize) {
    let scratch = Scratch::new();
    let artifacts = if tree {
        two_tree_artifacts(&scratch)
    } else {
        two_log_artifacts(&scratch)
    };
    let dests = scratch.path("dests");
    fs::create_dir(&dests).unwrap();
    let mut both_won = 0;
    for iteration in 0..iterations {
        let dest = dests.join(format!("fold-{iteration}"));
        let barrier = Arc::new(Barrier::new(2));
        let workers: Vec<_> = artifacts
            .iter()
            .map(|artifact| {
                let (artifact, dest, barrier) = (artifact.clone(), dest.clone(), barrier.clone());
                thread::spawn(move || gated_import(&artifact, &dest, tree, &barrier))
            })
            .collect();
        let results: Vec<_> = workers
            .into_iter()
            .map(|worker| worker.join().expect("no panic"))
            .collect();
        let winners: Vec<&ExportManifest> =
            results.iter().filter_map(|r| r.as_ref().ok()).collect();
        if winners.len() != 1 {
            assert!(!winners.is_empty(), "iteration {iteration}: {results:?}");
            both_won += 1;
            continue;
        }
        for loser in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_lost_to_an_occupied_destination(loser);
        }
        // The destination is the winner's payload, whole and unmixed.
        let installed = if tree {
            dest.join("version")
        } else {
            dest.clone()
        };
        assert_eq!(payload_cursor(&installed).unwrap(), winners[0].cursor);
    }
    assert_eq!(
        both_won, 0,
        "both imports succeeded in {both_won} of {iterations} races"
    );
    assert_no_leftovers(&dests);
}

#[test]
fn concurrent_file_imports_to_one_destination_have_one_winner() {
    race(false, 200);
}

#[test]
fn concurrent_directory_imports_to_one_destination_have_one_winner() {
    race(true, 20);
}

#[cfg(feature = "failpoints")]
mod deterministic {
    use super::*;
    use crate::artifact::failpoint::{self, I11};

    /// Runs `import` with a whole racing import of `racer` onto `dest` played in
    /// the window between its destination re-check and its publish (`I11`).
    fn with_racer_after_the_recheck<T>(
        racer: impl FnOnce() -> Result<ExportManifest, SnapshotError> + 'static,
        import: impl FnOnce() -> T,
    ) -> T {
        failpoint::arm_hook(I11, move || {
            racer().expect("the racing import wins");
        });
        let out = import();
        failpoint::disarm_all();
        out
    }

    #[test]
    fn a_file_import_never_replaces_a_store_published_after_its_recheck() {
        let scratch = Scratch::new();
        let [mine, theirs] = two_log_artifacts(&scratch);
        let dest = scratch.path("fold");
        let (racer_artifact, racer_dest) = (theirs.clone(), dest.clone());
        let result = with_racer_after_the_recheck(
            move || import_log(&racer_artifact, &racer_dest),
            || import_log(&mine, &dest),
        );
        let message = expect_invalid(result);
        assert!(message.contains("already exists"), "{message}");
        assert_eq!(
            fs::read(&dest).unwrap(),
            fs::read(theirs.join("data/fold.snap")).unwrap(),
            "the racing importer's store stays"
        );
        assert_no_leftovers(scratch.root.path());
        // Elsewhere the artifact still imports.
        import_log(&mine, &scratch.path("other")).expect("retry elsewhere");
    }

    #[test]
    fn a_file_import_never_replaces_a_file_created_after_its_recheck() {
        let scratch = Scratch::new();
        let [mine, _] = two_log_artifacts(&scratch);
        let dest = scratch.path("fold");
        let racer_dest = dest.clone();
        failpoint::arm_hook(I11, move || fs::write(&racer_dest, b"raced").unwrap());
        let result = import_log(&mine, &dest);
        failpoint::disarm_all();
        assert!(expect_invalid(result).contains("already exists"));
        assert_eq!(fs::read(&dest).unwrap(), b"raced");
        assert_no_leftovers(scratch.root.path());
    }

    #[test]
    fn a_directory_import_never_replaces_a_tree_published_after_its_recheck() {
        let scratch = Scratch::new();
        let [mine, theirs] = two_tree_artifacts(&scratch);
        let dest = scratch.path("db");
        let (racer_artifact, racer_dest) = (theirs.clone(), dest.clone());
        let result = with_racer_after_the_recheck(
            move || import_tree(&racer_artifact, &racer_dest),
            || import_tree(&mine, &dest),
        );
        let message = expect_invalid(result);
        assert!(message.contains("is not empty"), "{message}");
        assert_eq!(
            payload_cursor(&dest.join("version")).unwrap(),
            WatchCursor::from_u64(2),
            "the racing importer's tree stays"
        );
        assert_no_leftovers(scratch.root.path());
    }

    #[test]
    fn a_refused_link_fails_closed_without_a_replacing_fallback() {
        // A filesystem without hard links answers `link(2)` with EPERM. Linux
        // does the same for a directory source, which `rename(2)` would happily
        // move: swap the staged file for a directory in the window at `I11`, so
        // only a replacing fallback could make this import succeed.
        let scratch = Scratch::new();
        let [mine, _] = two_log_artifacts(&scratch);
        let dest = scratch.path("fold");
        let root = scratch.root.path().to_path_buf();
        failpoint::arm_hook(I11, move || {
            let stage = root.join(&stages_in(&root)[0]);
            let staged = stage.join("data").join(LOG_FILE);
            fs::remove_file(&staged).unwrap();
            fs::create_dir(&staged).unwrap();
        });
        let result = import_log(&mine, &dest);
        failpoint::disarm_all();
        match result {
            Err(SnapshotError::Io(err)) => {
                assert!(err.to_string().contains("without replacing"), "{err}");
            }
            other => panic!("expected Io for the refused link, got {other:?}"),
        }
        assert!(
            fs::symlink_metadata(&dest).is_err(),
            "nothing lands at the destination"
        );
        assert_no_leftovers(scratch.root.path());
        import_log(&mine, &dest).expect("a retry succeeds");
    }
}
