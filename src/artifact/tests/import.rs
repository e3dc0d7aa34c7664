//! Import staging (docs/artifacts.md §3): a round trip, then every tamper case. Each
//! tampered artifact is refused with `ArtifactInvalid`, the destination is left absent (or
//! exactly as it was), and no stage directory is left behind.

use std::fs;

use super::*;
use crate::artifact::{MANIFEST_FILE, verify_and_stage_import};
use crate::kv::VersionToken;
use crate::protocol::manifest::{MAX_MANIFEST_BYTES, encode_manifest};

/// A scratch root with a fresh `test-log` artifact at `root/artifact`.
fn exported() -> (Scratch, PathBuf, ExportManifest) {
    let scratch = Scratch::new();
    let artifact = scratch.path("artifact");
    let cursor =
        WatchCursor::from_version(VersionToken::from_u64(77).written_at(1_700_000_000_123));
    let manifest = export_log(&artifact, &cursor, b"the fold").expect("export");
    (scratch, artifact, manifest)
}

/// Imports `root/artifact` into `root/fold` and asserts the refusal leaves
/// nothing behind. Returns the refusal message.
#[track_caller]
fn assert_import_refused(scratch: &Scratch) -> String {
    let dest = scratch.path("fold");
    let message = expect_invalid(import_log(&scratch.path("artifact"), &dest));
    assert!(!dest.exists(), "nothing lands on failure ({message})");
    assert_no_leftovers(scratch.root.path());
    message
}

/// Replaces the artifact's manifest with `bytes`.
fn put_manifest(artifact: &Path, bytes: &[u8]) {
    fs::write(artifact.join(MANIFEST_FILE), bytes).unwrap();
}

/// Replaces the artifact's manifest with `base` after `change` (canonically
/// encoded, not validated: the importer must judge it).
fn edit_manifest(artifact: &Path, base: &ExportManifest, change: impl FnOnce(&mut ExportManifest)) {
    let mut manifest = base.clone();
    change(&mut manifest);
    put_manifest(artifact, &encode_manifest(&manifest));
}

#[test]
fn import_round_trip_installs_the_verified_file() {
    let (scratch, artifact, exported) = exported();
    let dest = scratch.path("fold");
    let imported = import_log(&artifact, &dest).expect("import");
    assert_eq!(imported, exported);
    assert_eq!(
        fs::read(&dest).unwrap(),
        fs::read(artifact.join("data/fold.snap")).unwrap()
    );
    assert_eq!(payload_cursor(&dest).unwrap(), exported.cursor);
    assert_no_leftovers(scratch.root.path());
    // A retried import refuses the existing destination; the caller opens it instead.
    let message = expect_invalid(import_log(&artifact, &dest));
    assert!(message.contains("already exists"), "{message}");
    assert_no_leftovers(scratch.root.path());
}

#[test]
fn import_round_trip_installs_a_directory_payload() {
    let scratch = Scratch::new();
    let artifact = scratch.path("artifact");
    let exported = export_tree(&artifact, &WatchCursor::from_u64(3)).unwrap();
    for (name, pre_create) in [("db-new", false), ("db-empty", true)] {
        let dest = scratch.path(name);
        if pre_create {
            fs::create_dir(&dest).unwrap();
        }
        let imported = import_tree(&artifact, &dest).expect("import");
        assert_eq!(imported, exported);
        assert_eq!(
            names(&dest),
            ["db", "version"],
            "empty directories are not carried"
        );
        for file in &exported.files {
            let rel = file.path.strip_prefix("data/").unwrap();
            let bytes = fs::read(dest.join(rel)).unwrap();
            assert_eq!(blake3::hash(&bytes).to_hex().to_string(), file.blake3);
        }
    }
    assert_no_leftovers(scratch.root.path());
}

#[test]
fn staged_import_exposes_the_payload_before_finalize() {
    let (scratch, artifact, exported) = exported();
    let dest = scratch.path("fold");
    let (manifest, stage) = verify_and_stage_import(
        &artifact,
        &dest,
        LOG_BACKEND,
        PayloadShape::SingleFile(LOG_FILE),
        accept_test_version,
    )
    .unwrap();
    assert_eq!(manifest, exported);
    let staged = stage.payload();
    assert!(staged.starts_with(scratch.root.path()));
    assert_eq!(payload_cursor(&staged).unwrap(), exported.cursor);
    assert!(!dest.exists(), "nothing lands before finalize");
    // Dropping an unfinalized stage removes it.
    drop(stage);
    assert!(!dest.exists());
    assert_no_leftovers(scratch.root.path());
}

#[test]
fn tamper_byte_flip() {
    let (scratch, artifact, _) = exported();
    let path = artifact.join("data/fold.snap");
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&path, bytes).unwrap();
    assert!(assert_import_refused(&scratch).contains("checksum mismatch"));
}

#[test]
fn tamper_missing_file() {
    let (scratch, artifact, _) = exported();
    fs::remove_file(artifact.join("data/fold.snap")).unwrap();
    assert!(assert_import_refused(&scratch).contains("payload file missing: data/fold.snap"));
    fs::remove_dir(artifact.join("data")).unwrap();
    assert!(assert_import_refused(&scratch).contains("payload file missing"));
}

#[test]
fn tamper_extra_file() {
    let (scratch, artifact, _) = exported();
    fs::write(artifact.join("data/extra"), b"never hashed").unwrap();
    assert!(assert_import_refused(&scratch).contains("undeclared file \"data/extra\""));
}

#[test]
fn extra_root_entries_are_ignored() {
    let (scratch, artifact, _) = exported();
    fs::write(artifact.join(".MANIFEST.json.abc123.tmp"), b"junk").unwrap();
    fs::write(artifact.join("README"), b"junk").unwrap();
    import_log(&artifact, &scratch.path("fold")).expect("root extras are ignored");
}

#[test]
fn tamper_size() {
    let (scratch, artifact, _) = exported();
    let path = artifact.join("data/fold.snap");
    let mut bytes = fs::read(&path).unwrap();
    bytes.push(0);
    fs::write(&path, &bytes).unwrap();
    assert!(assert_import_refused(&scratch).contains("larger than"));
    bytes.truncate(bytes.len() - 2);
    fs::write(&path, &bytes).unwrap();
    let message = assert_import_refused(&scratch);
    assert!(message.contains("bytes, manifest says"), "{message}");
}

#[cfg(unix)]
#[test]
fn tamper_symlinks() {
    use std::os::unix::fs::symlink;
    // The payload file replaced by a link to identical bytes: still refused.
    let (scratch, artifact, _) = exported();
    let file = artifact.join("data/fold.snap");
    let elsewhere = scratch.path("elsewhere");
    fs::rename(&file, &elsewhere).unwrap();
    symlink(&elsewhere, &file).unwrap();
    assert!(assert_import_refused(&scratch).contains("non-regular entry \"data/fold.snap\""));
    // `data` itself a link to a good payload directory.
    let (scratch, artifact, _) = exported();
    let real = scratch.path("real-data");
    fs::rename(artifact.join("data"), &real).unwrap();
    symlink(&real, artifact.join("data")).unwrap();
    assert!(assert_import_refused(&scratch).contains("non-regular entry \"data\""));
    // The manifest a link to a good manifest.
    let (scratch, artifact, _) = exported();
    let real = scratch.path("real-manifest");
    fs::rename(artifact.join(MANIFEST_FILE), &real).unwrap();
    symlink(&real, artifact.join(MANIFEST_FILE)).unwrap();
    assert!(assert_import_refused(&scratch).contains("not a regular file"));
}

#[test]
fn tamper_declared_file_is_a_directory() {
    let (scratch, artifact, _) = exported();
    fs::remove_file(artifact.join("data/fold.snap")).unwrap();
    fs::create_dir(artifact.join("data/fold.snap")).unwrap();
    assert!(assert_import_refused(&scratch).contains("is a directory"));
}

#[test]
fn tamper_wrong_backend() {
    let (scratch, artifact, base) = exported();
    edit_manifest(&artifact, &base, |m| m.backend = "fjall".into());
    let message = assert_import_refused(&scratch);
    assert!(
        message.contains("artifact backend is \"fjall\", expected \"test-log\""),
        "{message}"
    );
}

#[test]
fn tamper_wrong_backend_version() {
    let (scratch, artifact, base) = exported();
    edit_manifest(&artifact, &base, |m| m.backend_version = "9".into());
    assert!(assert_import_refused(&scratch).contains("format generation \"9\""));
}

#[test]
fn tamper_wrong_schema() {
    let (scratch, artifact, base) = exported();
    edit_manifest(&artifact, &base, |m| m.schema_version = 3);
    assert!(assert_import_refused(&scratch).contains("unsupported manifest schema_version 3"));
    edit_manifest(&artifact, &base, |m| m.schema_version = 2);
    assert!(assert_import_refused(&scratch).contains("requires a scope"));
    edit_manifest(&artifact, &base, |m| {
        m.schema_version = 1;
        m.scope = Some(vec![String::new()]);
    });
    assert!(assert_import_refused(&scratch).contains("must not carry a scope"));
}

#[test]
fn tamper_cursor_mismatch_is_caught_by_the_gate() {
    let (scratch, artifact, base) = exported();
    edit_manifest(&artifact, &base, |m| m.cursor = WatchCursor::from_u64(78));
    let message = assert_import_refused(&scratch);
    assert!(
        message.contains("differs from the manifest cursor"),
        "{message}"
    );
    // The memo is part of the cursor too.
    edit_manifest(&artifact, &base, |m| {
        m.cursor = base.cursor.clone().remembering(true)
    });
    assert!(assert_import_refused(&scratch).contains("differs from the manifest cursor"));
}

#[test]
fn tamper_hostile_paths() {
    for path in [
        "data/../fold.snap",
        "/etc/passwd",
        "data\\fold.snap",
        "../../x",
        "data/./fold.snap",
    ] {
        let (scratch, artifact, base) = exported();
        // A file where a traversal would land, so a bug would be observable.
        fs::write(scratch.path("fold.snap"), b"outside").unwrap();
        edit_manifest(&artifact, &base, |m| m.files[0].path = path.into());
        let message = assert_import_refused(&scratch);
        assert!(message.contains("is invalid"), "{path}: {message}");
    }
}

#[test]
fn tamper_array_form_json() {
    let (scratch, artifact, _) = exported();
    put_manifest(&artifact, br#"["x",1]"#);
    assert!(assert_import_refused(&scratch).contains("value at $ is not a json object"));
    let (scratch, artifact, manifest) = exported();
    let file = &manifest.files[0];
    let as_array = format!(
        r#"{{"schema_version":1,"backend":"test-log","backend_version":"1","cursor_hex":"","created_at_unix":0,"files":[["{}",{},"{}"]]}}"#,
        file.path, file.size, file.blake3
    );
    put_manifest(&artifact, as_array.as_bytes());
    assert!(assert_import_refused(&scratch).contains("$.files[0] is not a json object"));
}

#[test]
fn tamper_manifest_missing_or_oversized() {
    let (scratch, artifact, _) = exported();
    let good = fs::read(artifact.join(MANIFEST_FILE)).unwrap();
    let mut padded = good.clone();
    padded.resize(MAX_MANIFEST_BYTES + 1, b' ');
    put_manifest(&artifact, &padded);
    assert!(assert_import_refused(&scratch).contains("over the 1048576 byte cap"));
    fs::remove_file(artifact.join(MANIFEST_FILE)).unwrap();
    assert!(assert_import_refused(&scratch).contains("no MANIFEST.json in"));
    let message = expect_invalid(import_log(&scratch.path("nowhere"), &scratch.path("fold")));
    assert!(message.contains("no MANIFEST.json"), "{message}");
}

#[test]
fn tamper_single_file_shape() {
    let (scratch, artifact, base) = exported();
    edit_manifest(&artifact, &base, |m| {
        m.files[0].path = "data/other.snap".into()
    });
    assert!(assert_import_refused(&scratch).contains("exactly one payload file, data/fold.snap"));
    let tree = scratch.path("tree");
    export_tree(&tree, &WatchCursor::from_u64(1)).unwrap();
    let dest = scratch.path("fold");
    let message = expect_invalid(import_artifact(
        &tree,
        &dest,
        TREE_BACKEND,
        PayloadShape::SingleFile(LOG_FILE),
        accept_test_version,
        |staged, _| payload_cursor(staged),
    ));
    assert!(message.contains("exactly one payload file"), "{message}");
    assert!(!dest.exists());
}

#[test]
fn import_refuses_an_occupied_destination() {
    let (scratch, artifact, _) = exported();
    // Non-empty directory, left exactly as it was.
    let dest = scratch.path("occupied");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("keep"), b"mine").unwrap();
    assert!(expect_invalid(import_tree_as_log(&artifact, &dest)).contains("not empty"));
    assert!(expect_invalid(import_log(&artifact, &dest)).contains("already exists"));
    assert_eq!(names(&dest), ["keep"]);
    // A file-shaped import refuses even an empty directory.
    let empty = scratch.path("empty");
    fs::create_dir(&empty).unwrap();
    assert!(expect_invalid(import_log(&artifact, &empty)).contains("already exists"));
    assert_eq!(names(&empty), Vec::<String>::new());
    // A file.
    let file = scratch.path("file");
    fs::write(&file, b"mine").unwrap();
    assert!(expect_invalid(import_log(&artifact, &file)).contains("already exists"));
    assert_eq!(fs::read(&file).unwrap(), b"mine");
    assert_no_leftovers(scratch.root.path());
}

/// A directory-shaped import of a single-file artifact (for destination rules).
fn import_tree_as_log(artifact: &Path, dest: &Path) -> Result<ExportManifest, SnapshotError> {
    import_artifact(
        artifact,
        dest,
        LOG_BACKEND,
        PayloadShape::Directory,
        accept_test_version,
        |staged, _| payload_cursor(&staged.join(LOG_FILE)),
    )
}

#[test]
fn import_destination_taken_before_finalize_is_refused() {
    let (scratch, artifact, _) = exported();
    let dest = scratch.path("fold");
    let (_, stage) = verify_and_stage_import(
        &artifact,
        &dest,
        LOG_BACKEND,
        PayloadShape::SingleFile(LOG_FILE),
        accept_test_version,
    )
    .unwrap();
    let verified = stage
        .check_cursor(|staged, _| payload_cursor(staged))
        .unwrap();
    fs::write(&dest, b"raced").unwrap();
    assert!(expect_invalid(verified.finalize()).contains("already exists"));
    assert_eq!(fs::read(&dest).unwrap(), b"raced");
    assert_no_leftovers(scratch.root.path());
}

#[test]
fn gate_errors_pass_through_and_clean_up() {
    let (scratch, artifact, _) = exported();
    let dest = scratch.path("fold");
    let result = import_artifact(
        &artifact,
        &dest,
        LOG_BACKEND,
        PayloadShape::SingleFile(LOG_FILE),
        accept_test_version,
        |_, _| {
            Err(SnapshotError::ArtifactInvalid(
                "payload has a torn tail".into(),
            ))
        },
    );
    assert_eq!(expect_invalid(result), "payload has a torn tail");
    assert!(!dest.exists());
    assert_no_leftovers(scratch.root.path());
}
