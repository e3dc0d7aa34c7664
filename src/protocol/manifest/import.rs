//! The import gates that judge a parsed manifest against what the importer and
//! the copied payload show (docs/artifacts.md, "Import"): which backend wrote
//! it, the payload's shape, each copied file's size and digest, and the cursor
//! the staged payload holds. Pure: the executor (`artifact/import.rs`) reads,
//! hashes and reports; these functions decide.

use super::error::ManifestError;
use super::types::{ArtifactFile, ExportManifest};
use crate::kv::WatchCursor;

/// The payload directory of an artifact.
const PAYLOAD_DIR: &str = "data";

/// I2: the artifact must come from the importing backend.
///
/// # Errors
///
/// [`ManifestError::WrongBackend`] when `manifest.backend` is not `expected`.
pub fn check_backend(manifest: &ExportManifest, expected: &str) -> Result<(), ManifestError> {
    if manifest.backend == expected {
        Ok(())
    } else {
        Err(ManifestError::WrongBackend {
            found: manifest.backend.clone(),
            expected: expected.to_string(),
        })
    }
}

/// I4 for a single-file backend: the manifest declares exactly one payload
/// file, `data/<name>`.
///
/// # Errors
///
/// [`ManifestError::NotSingleFile`] otherwise.
pub fn check_single_file(manifest: &ExportManifest, name: &str) -> Result<(), ManifestError> {
    let expected = format!("{PAYLOAD_DIR}/{name}");
    match manifest.files.as_slice() {
        [only] if only.path == expected => Ok(()),
        _ => Err(ManifestError::NotSingleFile {
            backend: manifest.backend.clone(),
            expected,
        }),
    }
}

/// What copying one declared payload file produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopiedFile {
    /// The whole file was read: its length and BLAKE3 digest (lowercase hex).
    Complete {
        /// Bytes read.
        size: u64,
        /// Digest of those bytes.
        blake3: String,
    },
    /// The file went on past the declared size; the copy stopped there.
    OverLimit,
}

/// I7: a copied file matches its declaration byte for byte.
///
/// # Errors
///
/// [`ManifestError::PayloadTooLarge`], [`ManifestError::SizeMismatch`] or
/// [`ManifestError::DigestMismatch`].
pub fn check_copied_file(file: &ArtifactFile, copied: &CopiedFile) -> Result<(), ManifestError> {
    match copied {
        CopiedFile::OverLimit => Err(ManifestError::PayloadTooLarge {
            path: file.path.clone(),
            declared: file.size,
        }),
        CopiedFile::Complete { size, .. } if *size != file.size => {
            Err(ManifestError::SizeMismatch {
                path: file.path.clone(),
                declared: file.size,
                actual: *size,
            })
        }
        CopiedFile::Complete { blake3, .. } if *blake3 != file.blake3 => {
            Err(ManifestError::DigestMismatch(file.path.clone()))
        }
        CopiedFile::Complete { .. } => Ok(()),
    }
}

/// I9, the cursor gate: the staged payload holds exactly the manifest's cursor.
///
/// # Errors
///
/// [`ManifestError::CursorMismatch`] otherwise.
pub fn check_payload_cursor(
    manifest: &ExportManifest,
    payload: &WatchCursor,
) -> Result<(), ManifestError> {
    if *payload == manifest.cursor {
        Ok(())
    } else {
        Err(ManifestError::CursorMismatch {
            payload: payload.clone(),
            manifest: manifest.cursor.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

    fn manifest(backend: &str, paths: &[&str]) -> ExportManifest {
        ExportManifest {
            schema_version: 2,
            backend: backend.to_string(),
            backend_version: "3".to_string(),
            cursor: WatchCursor::from_u64(7),
            created_at_unix: 0,
            files: paths
                .iter()
                .map(|path| ArtifactFile {
                    path: (*path).to_string(),
                    size: 3,
                    blake3: DIGEST.to_string(),
                })
                .collect(),
            scope: Some(vec![String::new()]),
        }
    }

    #[test]
    fn the_backend_must_be_the_importers() {
        let m = manifest("append-log", &["data/fold.snap"]);
        assert_eq!(check_backend(&m, "append-log"), Ok(()));
        let err = check_backend(&m, "fjall").unwrap_err();
        assert_eq!(
            err.to_string(),
            "artifact backend is \"append-log\", expected \"fjall\""
        );
    }

    #[test]
    fn a_single_file_backend_takes_exactly_its_file() {
        assert_eq!(
            check_single_file(&manifest("append-log", &["data/fold.snap"]), "fold.snap"),
            Ok(())
        );
        for paths in [
            &[][..],
            &["data/other.snap"][..],
            &["data/fold.snap", "data/extra"][..],
            &["data/x/fold.snap"][..],
        ] {
            let err = check_single_file(&manifest("append-log", paths), "fold.snap").unwrap_err();
            assert_eq!(
                err.to_string(),
                "\"append-log\" artifact must hold exactly one payload file, data/fold.snap",
                "{paths:?}"
            );
        }
    }

    #[test]
    fn a_copied_file_matches_size_and_digest() {
        let file = &manifest("append-log", &["data/fold.snap"]).files[0];
        let complete = |size, blake3: &str| CopiedFile::Complete {
            size,
            blake3: blake3.to_string(),
        };
        assert_eq!(check_copied_file(file, &complete(3, DIGEST)), Ok(()));
        assert_eq!(
            check_copied_file(file, &CopiedFile::OverLimit)
                .unwrap_err()
                .to_string(),
            "payload file data/fold.snap is larger than the 3 bytes the manifest says"
        );
        assert_eq!(
            check_copied_file(file, &complete(2, DIGEST))
                .unwrap_err()
                .to_string(),
            "payload file data/fold.snap is 2 bytes, manifest says 3"
        );
        // A short file is a size fault even when its digest also differs.
        assert!(matches!(
            check_copied_file(file, &complete(2, "00")),
            Err(ManifestError::SizeMismatch { actual: 2, .. })
        ));
        assert_eq!(
            check_copied_file(file, &complete(3, &"0".repeat(64)))
                .unwrap_err()
                .to_string(),
            "payload file data/fold.snap checksum mismatch"
        );
    }

    #[test]
    fn the_payload_cursor_must_equal_the_manifest_cursor() {
        let m = manifest("append-log", &["data/fold.snap"]);
        assert_eq!(check_payload_cursor(&m, &WatchCursor::from_u64(7)), Ok(()));
        for other in [
            WatchCursor::from_u64(6),
            WatchCursor::from_u64(8),
            WatchCursor::none(),
        ] {
            let err = check_payload_cursor(&m, &other).unwrap_err();
            assert_eq!(
                err,
                ManifestError::CursorMismatch {
                    payload: other.clone(),
                    manifest: WatchCursor::from_u64(7)
                }
            );
            assert!(err.to_string().contains("differs from the manifest cursor"));
        }
    }
}
