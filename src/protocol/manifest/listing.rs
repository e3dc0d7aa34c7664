//! The listing check (docs/artifacts.md §3, step I5): compares the files a manifest
//! declares with the entries an importer found under `data/`. Pure: the executor
//! walks the directory (without following symlinks) and hands in what it saw.

use std::collections::BTreeSet;

use super::ManifestError;
use super::types::ArtifactFile;

/// One entry found under an artifact's `data/` directory, named by its relative
/// `/`-separated path from the artifact root (`"data/fold.snap"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FoundEntry {
    /// A regular file.
    File(String),
    /// A directory (never followed through a symlink).
    Dir(String),
    /// Anything else: a symlink, FIFO, socket or device.
    Other(String),
}

impl FoundEntry {
    /// The entry's relative path.
    pub fn path(&self) -> &str {
        match self {
            FoundEntry::File(path) | FoundEntry::Dir(path) | FoundEntry::Other(path) => path,
        }
    }
}

/// Checks what an importer found on disk against what the manifest declares.
///
/// Refuses, for the first offending entry in `found` order:
/// - a regular file that is not declared (`UndeclaredFile`): it was never hashed
///   at export, so nothing vouches for it;
/// - any non-regular entry (`NotRegular`): a symlink would be read as its target;
/// - a declared path that exists as a directory (`DeclaredIsDirectory`).
///
/// A declared file that is absent is not judged here: the copy step reports it
/// (`payload file missing`). Directories that hold no declared file are ignored;
/// they are never copied.
///
/// # Errors
///
/// The refusal for the first offending entry.
pub fn check_payload_listing(
    declared: &[ArtifactFile],
    found: &[FoundEntry],
) -> Result<(), ManifestError> {
    let declared: BTreeSet<&str> = declared.iter().map(|file| file.path.as_str()).collect();
    for entry in found {
        match entry {
            FoundEntry::File(path) if !declared.contains(path.as_str()) => {
                return Err(ManifestError::UndeclaredFile(path.clone()));
            }
            FoundEntry::Other(path) => return Err(ManifestError::NotRegular(path.clone())),
            FoundEntry::Dir(path) if declared.contains(path.as_str()) => {
                return Err(ManifestError::DeclaredIsDirectory(path.clone()));
            }
            FoundEntry::File(_) | FoundEntry::Dir(_) => {}
        }
    }
    Ok(())
}
