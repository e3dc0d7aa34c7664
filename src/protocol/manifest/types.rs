//! The artifact manifest types: what an exported artifact holds, which backend
//! wrote it and the cursor its payload is consistent with (docs/artifacts.md).
//! Plain data; `kvfold::ExportManifest` and friends re-export these.

use crate::kv::WatchCursor;

/// Manifest file name at the artifact root. Written last and fsynced, so its
/// presence (after the atomic rename) means the artifact is complete.
pub const MANIFEST_FILE: &str = "MANIFEST.json";

/// Version of the artifact layout itself (`MANIFEST.json` schema + `data/` payload
/// convention); the payload format is governed by [`ExportManifest::backend_version`].
pub const ARTIFACT_SCHEMA_VERSION: u32 = 2;

/// Manifest of an exported artifact: what is in it, which backend wrote it, and the
/// cursor its payload is consistent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportManifest {
    /// 1 (no scope) or 2 (with scope).
    pub schema_version: u32,
    /// The backend that wrote the payload: `"append-log"` or `"fjall"`.
    pub backend: String,
    /// On-disk format generation of the payload (append-log `"2"`/`"3"`).
    pub backend_version: String,
    /// The cursor the payload is exactly consistent with.
    pub cursor: WatchCursor,
    /// Export wall-clock time, Unix seconds; informational only.
    pub created_at_unix: u64,
    /// Every payload file; import verifies all and rejects extras.
    pub files: Vec<ArtifactFile>,
    /// The exporter's key prefixes (`[""]` = all keys); `None` = unknown coverage.
    pub scope: Option<Vec<String>>,
}

/// One payload file in an [`ExportManifest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactFile {
    /// Relative to the artifact root, `/`-separated, always under `data/`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 digest of the contents, 64 lowercase hex characters.
    pub blake3: String,
}
