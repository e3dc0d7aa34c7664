//! Export staging (docs/artifacts.md §2): a backend writes its payload into a hidden stage
//! beside the destination; sealing hashes and fsyncs it, writes the manifest last, and
//! publishes the stage with one atomic rename. Scope stamping upgrades a published schema-1
//! artifact to schema 2 by an atomic manifest replacement. Never overwrites a destination,
//! never publishes a partial artifact.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::bucket::{encode_checked_with_bucket, read_manifest_with_bucket};
use super::disk::{
    self, COPY_BUFFER_BYTES, DestRule, PAYLOAD_DIR, StageDir, Streamed, check_destination,
    destination_parent, invalid, manifest_invalid, walk_payload, write_manifest,
};
use super::failpoint::{self, E1, E2, E3, E4, E5, E6, E7, E8, S1};
use super::{ArtifactFile, ExportManifest, fsops};
use crate::fsio;
use crate::kv::WatchCursor;
use crate::protocol::identity::BucketIdentity;
use crate::protocol::manifest::{FoundEntry, validate_payload_path};
use crate::snapshot::SnapshotError;

/// Schema written by `export_to`: no scope (coverage unknown).
const SCHEMA_UNSCOPED: u32 = 1;
/// Schema written by scope stamping.
const SCHEMA_SCOPED: u32 = super::ARTIFACT_SCHEMA_VERSION;

/// An export in progress: a hidden stage directory beside `dest`, removed on
/// every error path (and on drop, if never sealed).
///
/// Use: [`ExportStage::new`], write the payload under [`payload`](Self::payload)
/// (create it, or call [`create_payload_dir`](Self::create_payload_dir)), then
/// [`seal_and_finalize`](Self::seal_and_finalize).
#[derive(Debug)]
pub(crate) struct ExportStage {
    dest: PathBuf,
    parent: PathBuf,
    stage: StageDir,
    /// The bucket the payload was folded from, written as the manifest's optional
    /// `bucket` key (docs/artifacts.md "Bucket identity").
    bucket: Option<BucketIdentity>,
}

impl ExportStage {
    /// Checks `dest` (absent or an empty directory; a file or symlink is refused,
    /// never followed) and creates the hidden stage in its parent (E1–E2).
    ///
    /// # Errors
    ///
    /// `ArtifactInvalid` for an occupied destination or one without a parent
    /// directory; `Io` when the parent cannot be read or written.
    pub(crate) fn new(dest: &Path) -> Result<Self, SnapshotError> {
        failpoint::hit(E1)?;
        let parent = destination_parent(dest)?;
        check_destination(dest, DestRule::AbsentOrEmptyDir)?;
        failpoint::hit(E2)?;
        let stage = StageDir::create_in(&parent)?;
        failpoint::hit(E3)?;
        Ok(Self {
            dest: dest.to_path_buf(),
            parent,
            stage,
            bucket: None,
        })
    }

    /// Names the bucket the payload was folded from in the manifest (`None`: the
    /// key is omitted, as before it existed).
    #[must_use]
    pub(crate) fn with_bucket(mut self, bucket: Option<BucketIdentity>) -> Self {
        self.bucket = bucket;
        self
    }

    /// Where the backend writes its payload: `<stage>/data`. Not created here,
    /// because some engines insist on creating their directory themselves.
    pub(crate) fn payload(&self) -> PathBuf {
        self.stage.path().join(PAYLOAD_DIR)
    }

    /// Creates [`payload`](Self::payload) for backends that do not, and returns it.
    ///
    /// # Errors
    ///
    /// `Io` when the directory cannot be created.
    pub(crate) fn create_payload_dir(&self) -> Result<PathBuf, SnapshotError> {
        let payload = self.payload();
        fsops::create_dir(&payload)?;
        Ok(payload)
    }

    /// Seals the payload and publishes the artifact at `dest` (E4–E8): hashes and
    /// `sync_all`s every payload file, fsyncs every payload directory, writes the
    /// schema-1 manifest last (temp file, `sync_all`, rename, stage fsync),
    /// re-checks `dest`, renames the stage onto it and fsyncs its parent.
    ///
    /// `cursor` is the cursor the payload is exactly consistent with.
    ///
    /// # Errors
    ///
    /// `ArtifactInvalid` when the payload holds a non-regular file (a symlink,
    /// FIFO, …), a name that is not UTF-8 or a path a reader would refuse, or when
    /// `dest` was occupied meanwhile; `Backend` when the manifest would not pass
    /// its own decoder (a writer bug); `Io` for local failures, including a rename
    /// refused because a racing creator took `dest`. On every error before the
    /// rename the stage is removed and `dest` is untouched.
    pub(crate) fn seal_and_finalize(
        self,
        backend: &str,
        backend_version: &str,
        cursor: &WatchCursor,
    ) -> Result<ExportManifest, SnapshotError> {
        self.seal_and_finalize_at(backend, backend_version, cursor, now_unix())
    }

    /// [`seal_and_finalize`](Self::seal_and_finalize) with the manifest's
    /// `created_at_unix` given (tests pin it).
    pub(crate) fn seal_and_finalize_at(
        mut self,
        backend: &str,
        backend_version: &str,
        cursor: &WatchCursor,
        created_at_unix: u64,
    ) -> Result<ExportManifest, SnapshotError> {
        failpoint::hit(E4)?;
        let files = hash_payload(self.stage.path())?;
        failpoint::hit(E5)?;
        let manifest = ExportManifest {
            schema_version: SCHEMA_UNSCOPED,
            backend: backend.to_owned(),
            backend_version: backend_version.to_owned(),
            cursor: cursor.clone(),
            created_at_unix,
            files,
            scope: None,
        };
        let bytes = encode_checked_with_bucket(&manifest, self.bucket.as_ref())?;
        write_manifest(self.stage.path(), &bytes)?;
        fsops::sync_dir(self.stage.path())?;
        failpoint::hit(E6)?;
        check_destination(&self.dest, DestRule::AbsentOrEmptyDir)?;
        failpoint::hit(E7)?;
        publish_dir(self.stage.path(), &self.dest)?;
        self.stage.disarm();
        failpoint::hit(E8)?;
        fsops::sync_dir(&self.parent)?;
        Ok(manifest)
    }
}

/// Wall-clock seconds since the epoch; a clock before the epoch gives 0.
fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// E4: hashes and `sync_all`s every payload file in sorted path order, then
/// fsyncs every payload directory (`data/` included). Only regular files and
/// directories are allowed: a symlink would hash as its target but restore as a
/// link.
fn hash_payload(stage: &Path) -> Result<Vec<ArtifactFile>, SnapshotError> {
    let found = walk_payload(stage)?;
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let mut buf = vec![0u8; COPY_BUFFER_BYTES];
    for entry in &found {
        match entry {
            FoundEntry::File(rel) => {
                validate_payload_path(rel).map_err(manifest_invalid)?;
                files.push(hash_and_sync(stage, rel, &mut buf)?);
            }
            FoundEntry::Dir(rel) => dirs.push(stage.join(rel)),
            FoundEntry::Other(rel) => {
                return Err(invalid(format!(
                    "payload contains a non-regular file: {rel}"
                )));
            }
        }
    }
    let data = stage.join(PAYLOAD_DIR);
    // The walk refused a `data` that is anything but a directory; absent, it
    // holds nothing to fsync. Any other failure to look is an error (fail closed).
    match fsio::symlink_metadata(&data) {
        Ok(meta) if meta.is_dir() => dirs.push(data),
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err.into()),
    }
    for dir in &dirs {
        fsops::sync_dir(dir)?;
    }
    Ok(files)
}

/// Streams one staged payload file through BLAKE3, then `sync_all`s it, so the
/// digest describes the bytes that are durable on disk.
fn hash_and_sync(stage: &Path, rel: &str, buf: &mut [u8]) -> Result<ArtifactFile, SnapshotError> {
    let path = stage.join(rel);
    let mut file = fsio::open(&path, File::options().read(true))?;
    let streamed = disk::hash_stream(&mut fsio::Reader(&mut file), buf, u64::MAX, |_| Ok(()))?;
    fsops::sync_file(&file, &path)?;
    match streamed {
        Streamed::Complete { size, blake3 } => Ok(ArtifactFile {
            path: rel.to_owned(),
            size,
            blake3,
        }),
        Streamed::OverLimit => Err(invalid(format!("payload file {rel} is too large"))),
    }
}

/// Renames the complete stage onto `dest` (E7). POSIX `rename` atomically
/// replaces an empty directory and fails on a non-empty one, so a racing creator
/// makes it fail: fail closed, never overwrite.
fn publish_dir(stage: &Path, dest: &Path) -> Result<(), SnapshotError> {
    #[cfg(not(unix))]
    if fsio::metadata(dest).is_ok_and(|meta| meta.is_dir()) {
        // Platforms whose rename cannot replace a directory: remove the (checked
        // empty) destination first; `remove_dir` refuses a non-empty one.
        fsio::remove_dir(dest)?;
    }
    fsops::rename(stage, dest)?;
    Ok(())
}

/// Records the exporting watch's scope in a published artifact (docs/artifacts.md §2):
/// reads and decodes `<dest>/MANIFEST.json` (keeping its optional `bucket`), sets
/// `schema_version = 2` and `scope = Some(prefixes)`, writes the result to a temp file in
/// `dest`, `sync_all`s it, renames it over `MANIFEST.json` and fsyncs `dest`.
///
/// The payload and its digests are untouched, and the rename makes the upgrade
/// atomic: at every instant the artifact is a complete schema-1 or a complete
/// schema-2 artifact. A crash before the rename can leave a hidden
/// `.MANIFEST.json.*.tmp` file in `dest`, which importers ignore.
///
/// # Errors
///
/// `ArtifactInvalid` when `dest` holds no valid manifest; `Backend` when the
/// stamped manifest would not pass its own decoder; `Io` for local failures.
pub(crate) fn stamp_scope(
    dest: &Path,
    prefixes: &[String],
) -> Result<ExportManifest, SnapshotError> {
    // The bucket key, if any, is carried over unchanged.
    let (mut manifest, bucket) = read_manifest_with_bucket(dest)?;
    manifest.schema_version = SCHEMA_SCOPED;
    manifest.scope = Some(prefixes.to_vec());
    let bytes = encode_checked_with_bucket(&manifest, bucket.as_ref())?;
    write_manifest(dest, &bytes)?;
    failpoint::hit(S1)?;
    fsops::sync_dir(dest)?;
    Ok(manifest)
}
