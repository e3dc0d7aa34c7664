//! [`DirRestore`]: a [`RestoreSource`] over a local directory of exported append-log
//! artifacts (docs/protocols/repair.md, "Repair I/O: listing, sorting, diffs"; docs/decisions.md 105).
//! It picks and imports; whether an artifact may restore a fold is the caller's check.

use std::cmp::Reverse;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::{RestoreSource, RestoredFold};
use crate::artifact::{ExportManifest, MANIFEST_FILE};
use crate::fsio;
use crate::protocol::cursor_rank;
use crate::protocol::manifest::{MAX_MANIFEST_BYTES, check_backend, decode_manifest};
use crate::snapshot::{AppendLogConfig, AppendLogSnapshot, SnapshotError};

/// The append log's backend name in manifests.
const BACKEND: &str = "append-log";
/// The append-log format generations an import accepts.
const BACKEND_VERSIONS: [&str; 2] = ["2", "3"];
/// The fold file's name inside a fetch's scratch directory.
const FOLD_FILE: &str = "fold.snap";
/// Name prefix of a fetch's scratch directory.
const SCRATCH_PREFIX: &str = ".kvfold-restore-";
/// Name attempts when creating a scratch directory.
const NAME_ATTEMPTS_MAX: u32 = 16;

/// A restore source over a local directory (`root`) whose subdirectories are exported
/// append-log artifacts (`<root>/<any name>/MANIFEST.json` + `data/`), e.g. the
/// destinations of successive `export_to` calls.
///
/// - [`latest`](RestoreSource::latest): the manifest of the newest *valid* artifact:
///   highest cursor rank, then newest `created_at_unix`, then greatest name. Entries
///   whose name starts with `.` (export stages in progress) and non-directories are
///   ignored; a directory whose manifest is missing, unreadable or not an append-log
///   manifest is skipped with a warning. None valid → `ArtifactInvalid`.
/// - [`fetch`](RestoreSource::fetch): imports the candidates in that order, verifying
///   every payload byte, into a fresh scratch directory; a candidate the import refuses
///   as invalid is skipped with a warning (so the result may be older than `latest`
///   said; the caller re-checks it). The returned fold removes its scratch directory
///   when dropped.
/// - [`scratch_dir`](RestoreSource::scratch_dir): the directory set with
///   [`with_scratch_dir`](DirRestore::with_scratch_dir) (fetches and repair spills go
///   there), else `None` (the system temp dir).
///
/// Bounded: a root with more than [`DirRestore::ENTRIES_MAX`] entries is refused
/// (`ArtifactInvalid`: prune old artifacts) instead of being read in part.
#[derive(Debug, Clone)]
pub struct DirRestore {
    root: PathBuf,
    scratch: Option<PathBuf>,
    config: AppendLogConfig,
}

/// One valid artifact found under the root.
#[derive(Debug, Clone)]
struct Candidate {
    dir: PathBuf,
    name: String,
    manifest: ExportManifest,
}

impl Candidate {
    /// Newest first: rank, then creation time, then name.
    fn order_key(&self) -> Reverse<(u64, u64, String)> {
        Reverse((
            cursor_rank(&self.manifest.cursor),
            self.manifest.created_at_unix,
            self.name.clone(),
        ))
    }
}

impl DirRestore {
    /// The most directory entries of the root considered.
    pub const ENTRIES_MAX: usize = 4096;

    /// A source over the artifacts under `root`; fetched folds open with the default
    /// [`AppendLogConfig`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            scratch: None,
            config: AppendLogConfig::default(),
        }
    }

    /// Fetches import into (and repairs spill into) `dir`, which must exist; put it on
    /// the fold's filesystem.
    #[must_use]
    pub fn with_scratch_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.scratch = Some(dir.into());
        self
    }

    /// Fetched folds open with `config`.
    #[must_use]
    pub fn with_config(mut self, config: AppendLogConfig) -> Self {
        self.config = config;
        self
    }

    /// The directory holding the artifacts.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The valid artifacts under the root, newest first.
    fn candidates(&self) -> Result<Vec<Candidate>, SnapshotError> {
        let mut found = Vec::new();
        let mut seen = 0usize;
        for entry in fsio::read_dir(&self.root)? {
            let entry = entry?;
            seen += 1;
            if seen > Self::ENTRIES_MAX {
                return Err(SnapshotError::ArtifactInvalid(format!(
                    "{} holds more than {} entries; prune old artifacts",
                    self.root.display(),
                    Self::ENTRIES_MAX
                )));
            }
            let Ok(name) = entry.file_name().into_string() else {
                tracing::warn!(target: "kvfold::repair", root = %self.root.display(), "skipping an artifact directory whose name is not UTF-8");
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let dir = entry.path();
            match fsio::symlink_metadata(&dir) {
                Ok(meta) if meta.is_dir() => {}
                // Not an artifact directory, or removed since the listing (pruned).
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
            match read_append_log_manifest(&dir) {
                Ok(manifest) => found.push(Candidate {
                    dir,
                    name,
                    manifest,
                }),
                Err(error) => {
                    tracing::warn!(target: "kvfold::repair", artifact = %dir.display(), %error, "skipping an invalid artifact");
                }
            }
        }
        found.sort_by_key(Candidate::order_key);
        Ok(found)
    }

    /// No valid artifact under the root.
    fn none_valid(&self) -> SnapshotError {
        SnapshotError::ArtifactInvalid(format!(
            "no valid append-log artifact in {}",
            self.root.display()
        ))
    }

    /// Imports the newest candidate the import accepts into a fresh scratch directory.
    fn fetch_blocking(&self) -> Result<RestoredFold<AppendLogSnapshot>, SnapshotError> {
        let candidates = self.candidates()?;
        for candidate in candidates {
            let scratch = ScratchDir::create_in(self.scratch.as_deref())?;
            let dest = scratch.path().join(FOLD_FILE);
            match AppendLogSnapshot::import_with(&candidate.dir, &dest, self.config) {
                Ok((cursor, fold)) => {
                    // The manifest may have been re-stamped (scope recorded) since it
                    // was listed; the payload cannot have changed. Report what is there.
                    let manifest = read_append_log_manifest(&candidate.dir)
                        .ok()
                        .filter(|m| m.cursor == cursor)
                        .unwrap_or(candidate.manifest);
                    let path = scratch.path().to_path_buf();
                    return Ok(RestoredFold::new(manifest, fold)
                        .scratch_in(path)
                        .holding(scratch));
                }
                Err(SnapshotError::ArtifactInvalid(why)) => {
                    tracing::warn!(target: "kvfold::repair", artifact = %candidate.dir.display(), error = %why, "skipping an artifact the import refused");
                }
                Err(other) => return Err(other),
            }
        }
        Err(self.none_valid())
    }
}

/// Reads `<dir>/MANIFEST.json` (at most `MAX_MANIFEST_BYTES`, never read whole when
/// larger), decodes it, and requires an append-log manifest of a readable generation.
fn read_append_log_manifest(dir: &Path) -> Result<ExportManifest, SnapshotError> {
    let invalid = |why: String| SnapshotError::ArtifactInvalid(why);
    let path = dir.join(MANIFEST_FILE);
    let meta = match fsio::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(invalid(format!("no {MANIFEST_FILE} in {}", dir.display())));
        }
        Err(e) => return Err(e.into()),
    };
    if !meta.is_file() {
        return Err(invalid(format!("{} is not a regular file", path.display())));
    }
    let cap = u64::try_from(MAX_MANIFEST_BYTES).expect("the manifest cap fits in u64");
    let mut file = fsio::open(&path, OpenOptions::new().read(true))?;
    let bytes = fsio::read_capped(&mut file, cap)?;
    let manifest =
        decode_manifest(&bytes).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    check_backend(&manifest, BACKEND).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    if !BACKEND_VERSIONS.contains(&manifest.backend_version.as_str()) {
        return Err(invalid(format!(
            "{}: append-log format generation {:?} is not readable",
            path.display(),
            manifest.backend_version
        )));
    }
    Ok(manifest)
}

/// A fetch's scratch directory, removed (with the imported fold's files) when dropped.
#[derive(Debug)]
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// A fresh `.kvfold-restore-*` directory in `parent` (`None` = the system temp dir).
    fn create_in(parent: Option<&Path>) -> Result<Self, SnapshotError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        for attempt in 0..NAME_ATTEMPTS_MAX {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = parent.join(format!(
                "{SCRATCH_PREFIX}{}-{n}-{nanos}-{attempt}",
                std::process::id()
            ));
            match fsio::create_dir(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(SnapshotError::Io(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free restore scratch directory name",
        )))
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(error) = fsio::remove_dir_all(&self.path) {
            tracing::warn!(target: "kvfold::repair", path = %self.path.display(), %error, "could not remove a restore scratch directory");
        }
    }
}

/// Runs blocking file work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SnapshotError> + Send + 'static,
) -> Result<T, SnapshotError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SnapshotError::Backend(format!("a restore source task failed: {e}")))?
}

#[async_trait]
impl RestoreSource<AppendLogSnapshot> for DirRestore {
    async fn latest(&self) -> Result<ExportManifest, SnapshotError> {
        let this = self.clone();
        blocking(move || {
            this.candidates()?
                .into_iter()
                .next()
                .map(|c| c.manifest)
                .ok_or_else(|| this.none_valid())
        })
        .await
    }

    async fn fetch(&self) -> Result<RestoredFold<AppendLogSnapshot>, SnapshotError> {
        let this = self.clone();
        blocking(move || this.fetch_blocking()).await
    }

    fn scratch_dir(&self) -> Option<PathBuf> {
        self.scratch.clone()
    }
}
