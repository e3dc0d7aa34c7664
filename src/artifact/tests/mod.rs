//! Unit tests of export and import staging with real temp directories and real
//! fsyncs, over two minimal test backends:
//! - `test-log`: one file `data/fold.snap` = cursor length (1 byte), cursor bytes,
//!   body; imported with `PayloadShape::SingleFile("fold.snap")`;
//! - `test-tree`: a directory tree whose `data/version` holds the cursor the same
//!   way; imported with `PayloadShape::Directory`.

mod durability;
mod export;
#[cfg(feature = "failpoints")]
mod failpoints;
mod import;
mod race;

use std::fs;
use std::path::{Path, PathBuf};

use super::disk::{STAGE_PREFIX, invalid};
use super::{ExportManifest, ExportStage, PayloadShape, fsops, import_artifact};
use crate::kv::WatchCursor;
use crate::snapshot::SnapshotError;

/// Backend name of the single-file test backend.
pub(super) const LOG_BACKEND: &str = "test-log";
/// Backend name of the directory test backend.
pub(super) const TREE_BACKEND: &str = "test-tree";
/// The single-file backend's payload file name.
pub(super) const LOG_FILE: &str = "fold.snap";
/// The only `backend_version` the test backends write and accept.
pub(super) const TEST_VERSION: &str = "1";
/// A fixed `created_at_unix` for byte-exact comparisons.
pub(super) const CREATED_AT: u64 = 1_767_225_600;

/// A fresh temp directory.
pub(super) fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Writes a new file through the recording shim (no fsync: sealing must do it).
pub(super) fn write_file(path: &Path, bytes: &[u8]) {
    let mut file = fsops::create_new(path).expect("create payload file");
    fsops::write_all(&mut file, path, bytes).expect("write payload file");
}

/// The test payload encoding: cursor length, cursor bytes, body.
pub(super) fn payload_bytes(cursor: &WatchCursor, body: &[u8]) -> Vec<u8> {
    let encoded = cursor.to_bytes();
    let mut out = vec![u8::try_from(encoded.len()).expect("at most 20 bytes")];
    out.extend_from_slice(&encoded);
    out.extend_from_slice(body);
    out
}

/// The cursor a test payload file holds (the cursor gate's "open").
pub(super) fn payload_cursor(path: &Path) -> Result<WatchCursor, SnapshotError> {
    let bytes = fs::read(path)?;
    let (&len, rest) = bytes
        .split_first()
        .ok_or_else(|| invalid("empty test payload"))?;
    rest.get(..usize::from(len))
        .and_then(WatchCursor::from_bytes)
        .ok_or_else(|| invalid("test payload holds no cursor"))
}

/// The test backends' version policy.
pub(super) fn accept_test_version(version: &str) -> Result<(), SnapshotError> {
    if version == TEST_VERSION {
        Ok(())
    } else {
        Err(invalid(format!(
            "test artifact has format generation {version:?}"
        )))
    }
}

/// Exports a `test-log` artifact holding `cursor` and `body` to `dest`.
pub(super) fn export_log(
    dest: &Path,
    cursor: &WatchCursor,
    body: &[u8],
) -> Result<ExportManifest, SnapshotError> {
    let stage = ExportStage::new(dest)?;
    let data = stage.create_payload_dir()?;
    write_file(&data.join(LOG_FILE), &payload_bytes(cursor, body));
    stage.seal_and_finalize_at(LOG_BACKEND, TEST_VERSION, cursor, CREATED_AT)
}

/// Exports a `test-tree` artifact: `data/version` (the cursor) plus a small tree.
pub(super) fn export_tree(
    dest: &Path,
    cursor: &WatchCursor,
) -> Result<ExportManifest, SnapshotError> {
    let stage = ExportStage::new(dest)?;
    // The engine creates its own directory (the stage does not pre-create it).
    let data = stage.payload();
    fsops::create_dir(&data)?;
    fsops::create_dir(&data.join("db"))?;
    fsops::create_dir(&data.join("db/sub"))?;
    fsops::create_dir(&data.join("empty"))?;
    write_file(&data.join("version"), &payload_bytes(cursor, b""));
    write_file(&data.join("db/a"), b"alpha");
    write_file(&data.join("db/sub/b"), &vec![7u8; 3 * 1024 * 1024 + 5]);
    write_file(&data.join("db/z"), b"");
    stage.seal_and_finalize_at(TREE_BACKEND, TEST_VERSION, cursor, CREATED_AT)
}

/// Imports a `test-log` artifact into the file `dest`.
pub(super) fn import_log(artifact: &Path, dest: &Path) -> Result<ExportManifest, SnapshotError> {
    import_artifact(
        artifact,
        dest,
        LOG_BACKEND,
        PayloadShape::SingleFile(LOG_FILE),
        accept_test_version,
        |staged, _| payload_cursor(staged),
    )
}

/// Imports a `test-tree` artifact into the directory `dest`.
pub(super) fn import_tree(artifact: &Path, dest: &Path) -> Result<ExportManifest, SnapshotError> {
    import_artifact(
        artifact,
        dest,
        TREE_BACKEND,
        PayloadShape::Directory,
        accept_test_version,
        |staged, _| payload_cursor(&staged.join("version")),
    )
}

/// Names in `dir`, sorted.
pub(super) fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Hidden stage directories left in `dir`.
pub(super) fn stages_in(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|name| name.starts_with(STAGE_PREFIX))
        .collect()
}

/// Asserts that no stage directory is left in `dir` (the guard cleaned up).
pub(super) fn assert_no_leftovers(dir: &Path) {
    assert_eq!(
        stages_in(dir),
        Vec::<String>::new(),
        "leftover stages in {}",
        dir.display()
    );
}

/// Asserts `result` is `ArtifactInvalid`, and returns its message.
#[track_caller]
pub(super) fn expect_invalid<T: std::fmt::Debug>(result: Result<T, SnapshotError>) -> String {
    match result {
        Err(SnapshotError::ArtifactInvalid(message)) => message,
        other => panic!("expected ArtifactInvalid, got {other:?}"),
    }
}

/// A scratch layout: `root/artifact` (exported) and `root/dest` (import target).
pub(super) struct Scratch {
    pub(super) root: tempfile::TempDir,
}

impl Scratch {
    /// A fresh scratch root.
    pub(super) fn new() -> Self {
        Self { root: temp() }
    }

    /// `root/<name>`.
    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }
}
