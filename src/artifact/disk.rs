//! On-disk helpers shared by export and import staging: the hidden stage directory
//! (removed on every error path), the destination rules (E1), reading and durably
//! writing `MANIFEST.json`, walking `data/` without following symlinks, and
//! streaming BLAKE3. Decisions about bytes and listings belong to
//! `protocol::manifest`; this file only performs I/O and maps errors.

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::fsops;
use super::{ExportManifest, MANIFEST_FILE};
use crate::fsio;
use crate::protocol::manifest::{
    FoundEntry, MAX_MANIFEST_BYTES, ManifestError, decode_manifest, encode_manifest,
};
use crate::snapshot::SnapshotError;

/// The payload directory at the artifact (and stage) root.
pub(crate) const PAYLOAD_DIR: &str = "data";
/// Name prefix of stage directories; the only leftovers a crash can leave (C3).
pub(crate) const STAGE_PREFIX: &str = ".kvfold-artifact-";
/// Streaming buffer for hashing and copying payload files.
pub(crate) const COPY_BUFFER_BYTES: usize = 1 << 20;
/// Most entries a payload walk collects; a manifest within `MAX_MANIFEST_BYTES`
/// cannot declare nearly this many files.
const WALK_ENTRIES_MAX: usize = 1 << 20;
/// Attempts at a fresh stage (or temp file) name before giving up.
const NAME_ATTEMPTS_MAX: u32 = 16;
/// Length of the random part of a stage name.
const NAME_SUFFIX_LEN: usize = 6;

/// `ArtifactInvalid` with `message`.
pub(crate) fn invalid(message: impl Into<String>) -> SnapshotError {
    SnapshotError::ArtifactInvalid(message.into())
}

/// Every `ManifestError` is `ArtifactInvalid(<Display>)` (docs/artifacts.md §4).
pub(crate) fn manifest_invalid(err: ManifestError) -> SnapshotError {
    SnapshotError::ArtifactInvalid(err.to_string())
}

/// A fresh random-looking name suffix (`[0-9A-Za-z]{6}`): std's randomly keyed
/// hasher over a process-wide counter and the attempt number.
fn unique_suffix(attempt: u32) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(attempt);
    hasher.write_u32(std::process::id());
    let mut bits = hasher.finish();
    let mut out = String::with_capacity(NAME_SUFFIX_LEN);
    for _ in 0..NAME_SUFFIX_LEN {
        out.push(char::from(ALPHABET[(bits % 62) as usize]));
        bits /= 62;
    }
    out
}

/// A hidden `.kvfold-artifact-<random>` directory, removed (recursively, without
/// following symlinks) when dropped unless disarmed: every error path cleans up.
#[derive(Debug)]
pub(crate) struct StageDir {
    path: PathBuf,
    armed: bool,
}

impl StageDir {
    /// Creates a fresh stage directory in `parent` (the destination's parent, so
    /// the final rename stays on one filesystem and is atomic).
    pub(crate) fn create_in(parent: &Path) -> io::Result<Self> {
        for attempt in 0..NAME_ATTEMPTS_MAX {
            let path = parent.join(format!("{STAGE_PREFIX}{}", unique_suffix(attempt)));
            match fsops::create_dir(&path) {
                Ok(()) => return Ok(Self { path, armed: true }),
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(err),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free stage directory name",
        ))
    }

    /// The stage directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory: its contents were renamed away or it was published.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for StageDir {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: a leftover hidden stage is harmless (C3).
            let _ = fsio::remove_dir_all(&self.path);
        }
    }
}

/// What may already be at a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DestRule {
    /// Absent, or an empty directory (directory-shaped results: artifacts, fjall).
    AbsentOrEmptyDir,
    /// Absent only (file-shaped results: the append log).
    Absent,
}

/// The directory a destination lives in (`.` for a bare name).
pub(crate) fn destination_parent(dest: &Path) -> Result<PathBuf, SnapshotError> {
    match dest.parent() {
        None => Err(invalid("destination has no parent directory")),
        Some(parent) if parent.as_os_str().is_empty() => Ok(PathBuf::from(".")),
        Some(parent) => Ok(parent.to_path_buf()),
    }
}

/// The E1 rules (docs/artifacts.md §2), looked at with `symlink_metadata` so a symlink is
/// refused, never followed.
pub(crate) fn check_destination(dest: &Path, rule: DestRule) -> Result<(), SnapshotError> {
    let meta = match fsio::symlink_metadata(dest) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    if meta.is_dir() && rule == DestRule::AbsentOrEmptyDir {
        if fsio::read_dir(dest)?.next().is_none() {
            return Ok(());
        }
        return Err(invalid(format!(
            "destination {} exists and is not empty",
            dest.display()
        )));
    }
    Err(invalid(format!(
        "destination {} already exists",
        dest.display()
    )))
}

/// Reads and decodes `<dir>/MANIFEST.json` (I1): a regular file of at most
/// `MAX_MANIFEST_BYTES`, never read whole when larger.
pub(crate) fn read_manifest(dir: &Path) -> Result<ExportManifest, SnapshotError> {
    decode_manifest(&read_manifest_bytes(dir)?).map_err(manifest_invalid)
}

/// The bytes of `<dir>/MANIFEST.json`: a regular file of at most
/// `MAX_MANIFEST_BYTES`, never read whole when larger (`ArtifactInvalid` when it
/// is missing, not a regular file or too large; `Io` for local failures).
pub(crate) fn read_manifest_bytes(dir: &Path) -> Result<Vec<u8>, SnapshotError> {
    let path = dir.join(MANIFEST_FILE);
    let meta = match fsio::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(invalid(format!("no {MANIFEST_FILE} in {}", dir.display())));
        }
        Err(err) => return Err(err.into()),
    };
    if !meta.is_file() {
        return Err(invalid(format!(
            "{MANIFEST_FILE} in {} is not a regular file",
            dir.display()
        )));
    }
    let cap = u64::try_from(MAX_MANIFEST_BYTES).unwrap_or(u64::MAX);
    if meta.len() > cap {
        return Err(manifest_invalid(ManifestError::TooLarge {
            len: usize::try_from(meta.len()).unwrap_or(usize::MAX),
        }));
    }
    // One byte past the cap: a file that grew since the stat is still refused.
    let mut file = fsio::open(&path, File::options().read(true))?;
    Ok(fsio::read_capped(&mut file, cap)?)
}

/// Canonical manifest bytes, self-checked: kvfold never writes a manifest it would itself
/// refuse, or one that does not read back as `manifest` (docs/artifacts.md §1).
pub(crate) fn encode_checked(manifest: &ExportManifest) -> Result<Vec<u8>, SnapshotError> {
    let bytes = encode_manifest(manifest);
    match decode_manifest(&bytes) {
        Ok(back) if back == *manifest => Ok(bytes),
        Ok(_) => Err(SnapshotError::Backend(
            "refusing to write an invalid manifest: it does not read back unchanged".into(),
        )),
        Err(err) => Err(SnapshotError::Backend(format!(
            "refusing to write an invalid manifest: {err}"
        ))),
    }
}

/// Writes `bytes` as `<dir>/MANIFEST.json`: a temp file in `dir`, `sync_all`, then
/// rename. The caller fsyncs `dir` afterwards. On failure the temp file is removed
/// on a best-effort basis.
pub(crate) fn write_manifest(dir: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    let (tmp, mut file) = create_temp_file(dir)?;
    let written = fsops::write_all(&mut file, &tmp, bytes)
        .and_then(|()| fsops::sync_file(&file, &tmp))
        .and_then(|()| {
            drop(file);
            fsops::rename(&tmp, &dir.join(MANIFEST_FILE))
        });
    if let Err(err) = written {
        let _ = fsio::remove_file(&tmp);
        return Err(err.into());
    }
    Ok(())
}

/// A new hidden `.MANIFEST.json.<random>.tmp` file in `dir`.
fn create_temp_file(dir: &Path) -> io::Result<(PathBuf, File)> {
    for attempt in 0..NAME_ATTEMPTS_MAX {
        let path = dir.join(format!(".{MANIFEST_FILE}.{}.tmp", unique_suffix(attempt)));
        match fsops::create_new(&path) {
            Ok(file) => return Ok((path, file)),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free manifest temp file name",
    ))
}

/// Lists `<root>/data` without following symlinks, as `FoundEntry`s named by
/// their `/`-path from `root` (`data/…`), sorted by path. A missing `data` is
/// empty; a `data` that is a file or a symlink is reported as that entry.
///
/// # Errors
///
/// `ArtifactInvalid` for a name that is not UTF-8 or more than `WALK_ENTRIES_MAX`
/// entries; `Io` when a directory cannot be read.
pub(crate) fn walk_payload(root: &Path) -> Result<Vec<FoundEntry>, SnapshotError> {
    let data = root.join(PAYLOAD_DIR);
    let meta = match fsio::symlink_metadata(&data) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err.into()),
    };
    let file_type = meta.file_type();
    if !file_type.is_dir() {
        let name = PAYLOAD_DIR.to_owned();
        return Ok(vec![if file_type.is_file() {
            FoundEntry::File(name)
        } else {
            FoundEntry::Other(name)
        }]);
    }
    let mut found = Vec::new();
    let mut pending = vec![(data, PAYLOAD_DIR.to_owned())];
    while let Some((dir, rel_dir)) = pending.pop() {
        for entry in fsio::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(invalid(format!(
                    "payload entry name is not UTF-8: {}",
                    entry.path().display()
                )));
            };
            let rel = format!("{rel_dir}/{name}");
            // `DirEntry::file_type` does not follow symlinks.
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                pending.push((entry.path(), rel.clone()));
                found.push(FoundEntry::Dir(rel));
            } else if file_type.is_file() {
                found.push(FoundEntry::File(rel));
            } else {
                found.push(FoundEntry::Other(rel));
            }
            if found.len() > WALK_ENTRIES_MAX {
                return Err(invalid(format!(
                    "payload holds more than {WALK_ENTRIES_MAX} entries"
                )));
            }
        }
    }
    found.sort_by(|a, b| a.path().cmp(b.path()));
    Ok(found)
}

/// What streaming a payload file through BLAKE3 found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Streamed {
    /// The whole stream: its length and lowercase hex digest.
    Complete {
        /// Bytes read.
        size: u64,
        /// BLAKE3 digest, 64 lowercase hex characters.
        blake3: String,
    },
    /// More than the limit was read; streaming stopped there.
    OverLimit,
}

/// Streams `reader` through BLAKE3 with the caller's buffer, handing every chunk
/// to `sink` (the copy, on import). Stops with `OverLimit` as soon as more than
/// `limit` bytes were read, before that chunk reaches `sink`: a copy is never
/// longer than declared.
pub(crate) fn hash_stream(
    reader: &mut impl Read,
    buf: &mut [u8],
    limit: u64,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<Streamed> {
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    loop {
        let read = match reader.read(buf) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        size = size.saturating_add(u64::try_from(read).unwrap_or(u64::MAX));
        if size > limit {
            return Ok(Streamed::OverLimit);
        }
        let chunk = &buf[..read];
        hasher.update(chunk);
        sink(chunk)?;
    }
    Ok(Streamed::Complete {
        size,
        blake3: hasher.finalize().to_hex().to_string(),
    })
}
