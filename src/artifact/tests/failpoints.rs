//! Crash consistency (docs/artifacts.md §9) through the named failpoints (feature
//! `failpoints`):
//! - error mode: each point in turn returns an injected `io::Error`; the call
//!   fails, the destination is absent or complete (C2), and the stage guard left
//!   nothing behind;
//! - crash mode: a child re-executes this test binary with
//!   `KVFOLD_FAILPOINT=<point>=abort`, so it dies at the point without running
//!   destructors; the parent asserts C2 and C3 (only hidden stage directories are
//!   left) and that a present destination is complete and verifies.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use super::*;
use crate::artifact::failpoint::{self, Action};
use crate::artifact::failpoint::{E1, E2, E3, E4, E5, E6, E7, E8, S1};
use crate::artifact::failpoint::{I1, I2, I3, I4, I5, I6, I7, I8, I9, I10, I11, I12};
use crate::artifact::{MANIFEST_FILE, stamp_scope};
use crate::protocol::manifest::decode_manifest;

/// Export points, in step order.
const EXPORT_POINTS: [&str; 8] = [E1, E2, E3, E4, E5, E6, E7, E8];
/// Import points, in step order: finalize re-checks the destination (`I11`),
/// publishes (`I10`), fsyncs the parent and removes the staged name (`I12`).
const IMPORT_POINTS: [&str; 12] = [I1, I2, I3, I4, I5, I6, I7, I8, I9, I11, I10, I12];
/// Import points after the publish: a failure there leaves the installed fold.
const IMPORT_PUBLISHED: [&str; 2] = [I10, I12];
/// The environment variable that turns `crash_child` into a scenario run.
const CHILD_ENV: &str = "KVFOLD_ARTIFACT_CRASH_CHILD";
/// Payload body the scenarios export.
const BODY: &[u8] = b"crash test fold";

fn cursor() -> WatchCursor {
    WatchCursor::from_u64(1234)
}

fn scope() -> Vec<String> {
    vec!["config.".to_owned()]
}

/// Runs `call` with `point` armed to return an injected error on this thread.
fn with_error_at<T>(point: &'static str, call: impl FnOnce() -> T) -> T {
    failpoint::arm(point, Action::Error);
    let out = call();
    failpoint::disarm_all();
    out
}

/// Asserts `result` is the injected error of `point`.
#[track_caller]
fn assert_injected<T: std::fmt::Debug>(point: &str, result: Result<T, SnapshotError>) {
    match result {
        Err(SnapshotError::Io(err)) if err.to_string().contains("injected") => {}
        other => panic!("{point}: expected the injected error, got {other:?}"),
    }
}

/// C2 for an export: `dest` is absent or a complete artifact that imports.
/// Returns whether it is present.
fn export_result_is_absent_or_complete(root: &Path, dest: &Path) -> bool {
    if !dest.exists() {
        return false;
    }
    let check = root.join("check-import");
    let manifest = import_log(dest, &check).expect("a published artifact verifies and imports");
    assert_eq!(manifest.cursor, cursor());
    assert_eq!(payload_cursor(&check).unwrap(), cursor());
    fs::remove_file(&check).unwrap();
    true
}

/// After a failed or crashed import: a retry onto `dest` succeeds when `dest` is
/// absent, and refuses the installed fold (which the caller then opens) when not.
fn retry_import(artifact: &Path, dest: &Path, present: bool) {
    if present {
        let message = expect_invalid(import_log(artifact, dest));
        assert!(message.contains("already exists"), "{message}");
    } else {
        import_log(artifact, dest).expect("a retried import succeeds");
    }
    assert!(import_result_is_absent_or_complete(artifact, dest));
}

/// C2 for an import: `dest` is absent or the verified fold.
fn import_result_is_absent_or_complete(artifact: &Path, dest: &Path) -> bool {
    if !dest.exists() {
        return false;
    }
    assert_eq!(
        payload_cursor(dest).unwrap(),
        cursor(),
        "the fold opens at the manifest cursor"
    );
    assert_eq!(
        fs::read(dest).unwrap(),
        fs::read(artifact.join("data/fold.snap")).unwrap()
    );
    true
}

#[test]
fn export_error_at_every_point() {
    for point in EXPORT_POINTS {
        let scratch = Scratch::new();
        let dest = scratch.path("artifact");
        assert_injected(
            point,
            with_error_at(point, || export_log(&dest, &cursor(), BODY)),
        );
        let present = export_result_is_absent_or_complete(scratch.root.path(), &dest);
        assert_eq!(
            present,
            point == E8,
            "{point}: only a failure after the rename leaves the artifact"
        );
        assert_no_leftovers(scratch.root.path());
    }
}

#[test]
fn stamp_error_leaves_a_complete_artifact() {
    let scratch = Scratch::new();
    let dest = scratch.path("artifact");
    export_log(&dest, &cursor(), BODY).unwrap();
    assert_injected(S1, with_error_at(S1, || stamp_scope(&dest, &scope())));
    let manifest = decode_manifest(&fs::read(dest.join(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(
        (manifest.schema_version, manifest.scope),
        (2, Some(scope()))
    );
    assert_eq!(names(&dest), [MANIFEST_FILE, "data"]);
    assert!(export_result_is_absent_or_complete(
        scratch.root.path(),
        &dest
    ));
}

#[test]
fn import_error_at_every_point() {
    for point in IMPORT_POINTS {
        let scratch = Scratch::new();
        let artifact = scratch.path("artifact");
        export_log(&artifact, &cursor(), BODY).unwrap();
        let dest = scratch.path("fold");
        assert_injected(point, with_error_at(point, || import_log(&artifact, &dest)));
        let present = import_result_is_absent_or_complete(&artifact, &dest);
        assert_eq!(
            present,
            IMPORT_PUBLISHED.contains(&point),
            "{point}: only a failure after the publish leaves the fold"
        );
        assert_no_leftovers(scratch.root.path());
        retry_import(&artifact, &dest, present);
    }
}

/// Not a test of its own: the scenario a crash child runs. Without `CHILD_ENV`
/// (a normal test run) it does nothing.
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (scenario, root) = spec.split_once(':').expect("<scenario>:<root>");
    let root = Path::new(root);
    let artifact = root.join("artifact");
    let result = match scenario {
        "export" => export_log(&artifact, &cursor(), BODY).map(drop),
        "stamp" => stamp_scope(&artifact, &scope()).map(drop),
        "import" => import_log(&artifact, &root.join("fold")).map(drop),
        other => panic!("unknown crash scenario {other}"),
    };
    result.expect("the scenario completes unless its failpoint aborts it");
}

/// Runs `scenario` in a child process that aborts at `point`.
fn crash_at(scenario: &str, root: &Path, point: &str) -> ExitStatus {
    let test = format!(
        "{}::crash_child",
        module_path!()
            .split_once("::")
            .expect("crate-qualified path")
            .1
    );
    Command::new(std::env::current_exe().expect("test binary"))
        .args([test.as_str(), "--exact", "--test-threads=1"])
        .env(CHILD_ENV, format!("{scenario}:{}", root.display()))
        .env("KVFOLD_FAILPOINT", format!("{point}=abort"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn the crash child")
}

/// Asserts the child died by `abort()` (it reached its point).
#[track_caller]
fn assert_aborted(point: &str, status: ExitStatus) {
    assert!(
        !status.success(),
        "{point}: the child never reached its failpoint"
    );
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(6),
            "{point}: expected SIGABRT, got {status:?}"
        );
    }
}

/// C3: besides `keep`, only hidden stage directories are in `root`; returns their count.
fn leftover_stages(root: &Path, keep: &[&str]) -> usize {
    let stray: Vec<String> = names(root)
        .into_iter()
        .filter(|name| !keep.contains(&name.as_str()))
        .collect();
    let stages = stages_in(root);
    assert_eq!(stray, stages, "only hidden stage directories may be left");
    stages.len()
}

#[test]
fn export_crash_at_every_point() {
    for point in EXPORT_POINTS {
        let scratch = Scratch::new();
        let root = scratch.root.path();
        assert_aborted(point, crash_at("export", root, point));
        let dest = scratch.path("artifact");
        let present = export_result_is_absent_or_complete(root, &dest);
        assert_eq!(present, point == E8, "{point}");
        let stages = leftover_stages(root, &["artifact"]);
        let expected = usize::from(matches!(point, "E3" | "E4" | "E5" | "E6" | "E7"));
        assert_eq!(stages, expected, "{point}: leftover stages");
    }
}

#[test]
fn stamp_crash_leaves_a_complete_artifact() {
    let scratch = Scratch::new();
    let root = scratch.root.path();
    let dest = scratch.path("artifact");
    export_log(&dest, &cursor(), BODY).unwrap();
    assert_aborted(S1, crash_at("stamp", root, S1));
    let manifest = decode_manifest(&fs::read(dest.join(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(manifest.schema_version, 2);
    assert!(export_result_is_absent_or_complete(root, &dest));
    assert_eq!(leftover_stages(root, &["artifact"]), 0);
}

#[test]
fn import_crash_at_every_point() {
    for point in IMPORT_POINTS {
        let scratch = Scratch::new();
        let root = scratch.root.path();
        let artifact = scratch.path("artifact");
        export_log(&artifact, &cursor(), BODY).unwrap();
        assert_aborted(point, crash_at("import", root, point));
        let dest = scratch.path("fold");
        let present = import_result_is_absent_or_complete(&artifact, &dest);
        assert_eq!(present, IMPORT_PUBLISHED.contains(&point), "{point}");
        let stages = leftover_stages(root, &["artifact", "fold"]);
        let expected = usize::from(matches!(point, "I7" | "I8" | "I9" | "I11" | "I10" | "I12"));
        assert_eq!(stages, expected, "{point}: leftover stages");
        if present {
            // A crash between the link and the removal of the staged name leaves
            // that name in the hidden stage: a second link to the installed fold.
            let staged = root.join(&stages_in(root)[0]).join("data").join(LOG_FILE);
            assert_eq!(fs::read(&staged).unwrap(), fs::read(&dest).unwrap());
        }
        // Leftover stages are safe to delete (C3): the fold at `dest` stays whole.
        for stage in stages_in(root) {
            fs::remove_dir_all(root.join(stage)).unwrap();
        }
        assert_eq!(
            import_result_is_absent_or_complete(&artifact, &dest),
            present
        );
        retry_import(&artifact, &dest, present);
        // The artifact itself is untouched by a crashed import.
        import_log(&artifact, &scratch.path("again")).expect("the artifact still imports");
    }
}
