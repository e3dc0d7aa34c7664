//! Import staging (docs/artifacts.md §3): the trust boundary for artifacts delivered by
//! untrusted transports. Re-verifies the manifest, the listing, every size and
//! digest while copying into a hidden stage, lets the backend check the staged
//! payload's cursor, and only then publishes it onto the destination without ever
//! replacing what is there (a hard link for a file, a rename that refuses a
//! non-empty directory for a tree). Nothing lands at the destination on any failure.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::disk::{
    self, COPY_BUFFER_BYTES, DestRule, PAYLOAD_DIR, StageDir, Streamed, check_destination,
    destination_parent, invalid, manifest_invalid, walk_payload,
};
use super::failpoint::{self, I1, I2, I3, I4, I5, I6, I7, I8, I9, I10, I11, I12};
use super::{ArtifactFile, ExportManifest, fsops};
use crate::fsio;
use crate::kv::WatchCursor;
use crate::protocol::manifest::{
    CopiedFile, ManifestError, check_backend, check_copied_file, check_payload_cursor,
    check_payload_listing, check_single_file,
};
use crate::snapshot::SnapshotError;

/// What an import installs at its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PayloadShape<'a> {
    /// Exactly one payload file, `data/<name>`, installed as the file `dest`;
    /// `dest` must be absent (append log: `SingleFile("fold.snap")`).
    SingleFile(&'a str),
    /// The whole `data/` tree, installed as the directory `dest`; `dest` may be
    /// absent or an empty directory (fjall).
    #[cfg_attr(not(test), allow(dead_code))]
    // the fjall backend (a later phase) installs directories
    Directory,
}

/// [`PayloadShape`] owned by a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    SingleFile(String),
    Directory,
}

impl Shape {
    /// The destination rule for this shape.
    fn dest_rule(&self) -> DestRule {
        match self {
            Shape::SingleFile(_) => DestRule::Absent,
            Shape::Directory => DestRule::AbsentOrEmptyDir,
        }
    }
}

/// Verifies `artifact_dir` and stages a verified copy of its payload beside
/// `dest` (steps I1–I8):
///
/// 1. reads `MANIFEST.json` (a regular file of at most 1 MiB) and decodes it;
/// 2. `manifest.backend == expected_backend`;
/// 3. `check_backend_version(&manifest.backend_version)` (the backend's policy);
/// 4. `dest` is free (see [`PayloadShape`]) and has a parent directory; for
///    `SingleFile(name)` the manifest declares exactly `data/<name>`;
/// 5. walks `<artifact>/data` without following symlinks: any undeclared regular
///    file, any non-regular entry, or a declared path that is a directory is
///    refused (root entries other than `MANIFEST.json` and `data/` are ignored);
/// 6. creates a hidden `.kvfold-artifact-<random>` stage in `dest`'s parent;
/// 7. copies every declared file into the stage while hashing it, never reading
///    more than the declared size, `sync_all`s the copy and checks size and digest;
/// 8. fsyncs every staged directory.
///
/// The caller then runs the cursor gate ([`ImportStage::check_cursor`]) and
/// [`VerifiedImport::finalize`]; [`import_artifact`] does all three.
///
/// # Errors
///
/// `ArtifactInvalid` for anything wrong with the artifact or an occupied
/// destination (docs/artifacts.md §4), `Io` for local failures, and whatever
/// `check_backend_version` returns. The stage is removed on every error; `dest`
/// is untouched.
pub(crate) fn verify_and_stage_import(
    artifact_dir: &Path,
    dest: &Path,
    expected_backend: &str,
    shape: PayloadShape<'_>,
    check_backend_version: impl Fn(&str) -> Result<(), SnapshotError>,
) -> Result<(ExportManifest, ImportStage), SnapshotError> {
    failpoint::hit(I1)?;
    let manifest = disk::read_manifest(artifact_dir)?;
    failpoint::hit(I2)?;
    check_backend(&manifest, expected_backend).map_err(manifest_invalid)?;
    failpoint::hit(I3)?;
    check_backend_version(&manifest.backend_version)?;
    failpoint::hit(I4)?;
    let shape = match shape {
        PayloadShape::SingleFile(name) => Shape::SingleFile(name.to_owned()),
        PayloadShape::Directory => Shape::Directory,
    };
    if let Shape::SingleFile(name) = &shape {
        check_single_file(&manifest, name).map_err(manifest_invalid)?;
    }
    let parent = destination_parent(dest)?;
    check_destination(dest, shape.dest_rule())?;
    failpoint::hit(I5)?;
    let found = walk_payload(artifact_dir)?;
    check_payload_listing(&manifest.files, &found).map_err(manifest_invalid)?;
    failpoint::hit(I6)?;
    let stage = StageDir::create_in(&parent)?;
    failpoint::hit(I7)?;
    let staged_dirs = copy_payload(artifact_dir, stage.path(), &manifest.files)?;
    failpoint::hit(I8)?;
    for dir in staged_dirs.iter().rev() {
        fsops::sync_dir(dir)?;
    }
    let stage = ImportStage {
        stage,
        dest: dest.to_path_buf(),
        parent,
        shape,
        manifest: manifest.clone(),
    };
    Ok((manifest, stage))
}

/// A verified copy of an artifact's payload in a hidden stage beside the
/// destination, waiting for the backend's cursor gate. Dropping it removes the
/// stage.
#[derive(Debug)]
pub(crate) struct ImportStage {
    stage: StageDir,
    dest: PathBuf,
    parent: PathBuf,
    shape: Shape,
    manifest: ExportManifest,
}

impl ImportStage {
    /// The staged payload, exactly what will land at the destination:
    /// `<stage>/data/<name>` for `SingleFile(name)`, `<stage>/data` for `Directory`.
    pub(crate) fn payload(&self) -> PathBuf {
        let data = self.stage.path().join(PAYLOAD_DIR);
        match &self.shape {
            Shape::SingleFile(name) => data.join(name),
            Shape::Directory => data,
        }
    }

    /// The cursor gate (I9): `open` opens the staged payload (the path is
    /// [`payload`](Self::payload)) read-only, runs every backend-specific check
    /// (format generation against `backend_version`, a clean tail, …) and returns
    /// the cursor the payload holds. It must equal the manifest cursor.
    ///
    /// # Errors
    ///
    /// Whatever `open` returns (backends map payload faults to `ArtifactInvalid`),
    /// or `ArtifactInvalid` when the cursors differ. The stage is then removed.
    pub(crate) fn check_cursor(
        self,
        open: impl FnOnce(&Path, &ExportManifest) -> Result<WatchCursor, SnapshotError>,
    ) -> Result<VerifiedImport, SnapshotError> {
        failpoint::hit(I9)?;
        let cursor = open(&self.payload(), &self.manifest)?;
        check_payload_cursor(&self.manifest, &cursor).map_err(manifest_invalid)?;
        Ok(VerifiedImport { stage: self })
    }
}

/// A staged payload that passed the cursor gate; only this can be finalized.
#[derive(Debug)]
pub(crate) struct VerifiedImport {
    stage: ImportStage,
}

impl VerifiedImport {
    /// Installs the payload (I10) without ever replacing anything at the
    /// destination: re-checks it ([`check_destination`]), publishes, fsyncs the
    /// parent. The re-check alone cannot stop an importer racing in after it, so
    /// the publish itself refuses an occupied destination:
    ///
    /// - `SingleFile`: `link(2)` makes the destination a second name of the staged
    ///   file (it fails if the name exists), the parent is fsynced, then the staged
    ///   name is removed and the stage with it. A filesystem that cannot hard-link
    ///   makes the import fail (`Io`); there is no replacing fallback.
    /// - `Directory`: `rename(2)` of the staged `data/` directory, which replaces
    ///   at most an *empty* directory and fails on a non-empty one or a file.
    ///
    /// # Errors
    ///
    /// `ArtifactInvalid` ("already exists" / "exists and is not empty", as from the
    /// first check) when the destination was occupied meanwhile, also when that
    /// is found by the publish itself; `Io` for a refused link or rename or a
    /// failed fsync. Before the publish nothing lands; after it, the destination
    /// is the complete verified payload even when an error is returned.
    pub(crate) fn finalize(self) -> Result<(), SnapshotError> {
        let stage = self.stage;
        check_destination(&stage.dest, stage.shape.dest_rule())?;
        failpoint::hit(I11)?;
        let payload = stage.payload();
        let single_file = match stage.shape {
            Shape::SingleFile(_) => {
                publish_file(&payload, &stage.dest)?;
                true
            }
            Shape::Directory => {
                publish_dir(&payload, &stage.dest)?;
                false
            }
        };
        failpoint::hit(I10)?;
        fsops::sync_dir(&stage.parent)?;
        if single_file {
            failpoint::hit(I12)?;
            // Clean-up only: the payload is installed and durable. A staged name
            // left behind (this failed, or a crash came first) is a second link to
            // the installed file inside a hidden stage, safe to delete (C3).
            if let Err(err) = fsops::remove_file(&payload) {
                tracing::warn!(stage = %payload.display(), %err, "could not remove the staged name of an installed import");
            }
        }
        Ok(())
    }
}

/// `ArtifactInvalid` for a destination found occupied by the publish: the message
/// [`check_destination`] gives for the same situation.
fn occupied(dest: &Path, not_empty: bool) -> SnapshotError {
    if not_empty {
        invalid(format!(
            "destination {} exists and is not empty",
            dest.display()
        ))
    } else {
        invalid(format!("destination {} already exists", dest.display()))
    }
}

/// Publishes the staged file `staged` as `dest` without replacing: a hard link,
/// which fails when `dest` exists (even as a dangling symlink). Where the
/// filesystem has no hard links (`EPERM`, `ENOTSUP`, …) the import is refused
/// with `Io`: a `rename` would replace a store a racing import just installed.
fn publish_file(staged: &Path, dest: &Path) -> Result<(), SnapshotError> {
    match fsops::link(staged, dest) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Err(occupied(dest, false)),
        Err(err) => Err(SnapshotError::Io(io::Error::new(
            err.kind(),
            format!(
                "cannot install {} without replacing: the filesystem refused a hard link \
                 from the stage ({err}); kvfold has no replacing fallback",
                dest.display()
            ),
        ))),
    }
}

/// Publishes the staged directory `staged` as `dest` (absent or checked empty).
/// POSIX `rename` replaces only an empty directory and fails on a non-empty one
/// or a file, so a racing importer's installed tree is never replaced; those
/// refusals are reported as the occupied destination they are.
fn publish_dir(staged: &Path, dest: &Path) -> Result<(), SnapshotError> {
    #[cfg(not(unix))]
    let published = if fsio::metadata(dest).is_ok_and(|meta| meta.is_dir()) {
        // Platforms whose rename cannot replace a directory: remove the (checked
        // empty) destination first; `remove_dir` refuses a non-empty one.
        fsio::remove_dir(dest).and_then(|()| fsops::rename(staged, dest))
    } else {
        fsops::rename(staged, dest)
    };
    #[cfg(unix)]
    let published = fsops::rename(staged, dest);
    match published {
        Ok(()) => Ok(()),
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty
            ) =>
        {
            Err(occupied(dest, true))
        }
        Err(err) if err.kind() == io::ErrorKind::NotADirectory => Err(occupied(dest, false)),
        Err(err) => Err(err.into()),
    }
}

/// Verifies, stages, gates and installs an artifact in one call: the whole of
/// docs/artifacts.md §3 for a backend that needs nothing between the steps.
/// `open` is the cursor gate of [`ImportStage::check_cursor`].
///
/// # Errors
///
/// As [`verify_and_stage_import`], [`ImportStage::check_cursor`] and
/// [`VerifiedImport::finalize`].
#[cfg_attr(not(test), allow(dead_code))] // the append log runs the steps itself
pub(crate) fn import_artifact(
    artifact_dir: &Path,
    dest: &Path,
    expected_backend: &str,
    shape: PayloadShape<'_>,
    check_backend_version: impl Fn(&str) -> Result<(), SnapshotError>,
    open: impl FnOnce(&Path, &ExportManifest) -> Result<WatchCursor, SnapshotError>,
) -> Result<ExportManifest, SnapshotError> {
    let (manifest, stage) = verify_and_stage_import(
        artifact_dir,
        dest,
        expected_backend,
        shape,
        check_backend_version,
    )?;
    stage.check_cursor(open)?.finalize()?;
    Ok(manifest)
}

/// I7: copies every declared file into `stage` while hashing it. Returns every
/// staged directory, parents before children (`data` first).
fn copy_payload(
    artifact_dir: &Path,
    stage: &Path,
    files: &[ArtifactFile],
) -> Result<Vec<PathBuf>, SnapshotError> {
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    dirs.insert(PAYLOAD_DIR.to_owned());
    for file in files {
        let mut rel = file.path.as_str();
        while let Some((parent, _)) = rel.rsplit_once('/') {
            dirs.insert(parent.to_owned());
            rel = parent;
        }
    }
    // BTreeSet order puts every directory after its parent ("data" < "data/a").
    let staged_dirs: Vec<PathBuf> = dirs.iter().map(|rel| stage.join(rel)).collect();
    for dir in &staged_dirs {
        fsops::create_dir(dir)?;
    }
    let mut buf = vec![0u8; COPY_BUFFER_BYTES];
    for file in files {
        copy_verified(artifact_dir, stage, file, &mut buf)?;
    }
    Ok(staged_dirs)
}

/// Copies one declared file (its path was validated by the manifest kernel, so
/// joining it cannot escape either root), checking size and digest.
fn copy_verified(
    artifact_dir: &Path,
    stage: &Path,
    file: &ArtifactFile,
    buf: &mut [u8],
) -> Result<(), SnapshotError> {
    let source = artifact_dir.join(&file.path);
    // Looked at without following links again: the listing may be stale.
    match fsio::symlink_metadata(&source) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => {
            return Err(manifest_invalid(ManifestError::NotRegular(
                file.path.clone(),
            )));
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(manifest_invalid(ManifestError::PayloadMissing(
                file.path.clone(),
            )));
        }
        Err(err) => return Err(err.into()),
    }
    let mut input = match fsio::open(&source, File::options().read(true)) {
        Ok(input) => input,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(manifest_invalid(ManifestError::PayloadMissing(
                file.path.clone(),
            )));
        }
        Err(err) => return Err(err.into()),
    };
    let target = stage.join(&file.path);
    let mut output = match fsops::create_new(&target) {
        Ok(output) => output,
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            // Only on a case-insensitive filesystem: two declared paths, one file.
            return Err(manifest_invalid(ManifestError::PathCollision(
                file.path.clone(),
            )));
        }
        Err(err) => return Err(err.into()),
    };
    let streamed = disk::hash_stream(&mut fsio::Reader(&mut input), buf, file.size, |chunk| {
        fsops::write_all(&mut output, &target, chunk)
    })?;
    let copied = match streamed {
        Streamed::Complete { size, blake3 } => CopiedFile::Complete { size, blake3 },
        Streamed::OverLimit => CopiedFile::OverLimit,
    };
    if matches!(copied, CopiedFile::Complete { .. }) {
        fsops::sync_file(&output, &target)?;
    }
    check_copied_file(file, &copied).map_err(manifest_invalid)?;
    Ok(())
}
