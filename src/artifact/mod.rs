//! Export/import artifacts (artifact.md): the manifest types, and (private) the
//! export and import staging on disk. Manifest bytes are parsed and validated by
//! the pure kernel `protocol::manifest`; this module hashes, fsyncs and renames,
//! and never decides anything about bytes itself.
//!
//! # How a backend exports (artifact.md §5, snapshot.md §9.4)
//!
//! ```text
//! let stage = ExportStage::new(dest_dir)?;          // E1–E3: dest free, hidden stage beside it
//! let data = stage.create_payload_dir()?;           // or let the engine create stage.payload()
//! /* write the payload files under `data` */
//! let manifest = stage.seal_and_finalize("append-log", "3", &cursor)?;   // E4–E8
//! ```
//!
//! `seal_and_finalize` hashes and `sync_all`s every file, fsyncs every payload
//! directory, writes `MANIFEST.json` last (temp, `sync_all`, rename, fsync), then
//! renames the whole stage onto `dest` and fsyncs `dest`'s parent. The fold
//! executor then calls [`stamp_scope`] to record its scope (schema 2).
//!
//! # How a backend imports (artifact.md §6, snapshot.md §9.5)
//!
//! ```text
//! let manifest = import_artifact(
//!     artifact_dir, dest_path, "append-log", PayloadShape::SingleFile("fold.snap"),
//!     |version| policy(version),                      // I3: accepted backend_version values
//!     |staged, manifest| { /* replay the staged file read-only; check its format
//!                              against manifest.backend_version; */ Ok(recovered_cursor) },
//! )?;                                                 // I1–I12; nothing lands on failure
//! /* open the store at dest_path */
//! ```
//!
//! [`import_artifact`] is [`verify_and_stage_import`] (I1–I8), then
//! [`ImportStage::check_cursor`] (I9: the backend's closure opens the staged copy
//! and returns the cursor it holds, which must equal the manifest cursor), then
//! [`VerifiedImport::finalize`] (I10: re-check, publish onto `dest` without replacing
//! (hard link of a file, rename of a directory), parent fsync).
//! The type-state makes the gate impossible to skip. Compared with the spec's
//! sketch, the payload shape is chosen up front ([`PayloadShape`], so an occupied
//! destination is refused before anything is copied) and `finalize` replaces
//! `finalize_file` / `finalize_dir`.
//!
//! # Errors and crashes
//!
//! Every `ManifestError` and every fault of the artifact itself is
//! `SnapshotError::ArtifactInvalid`; local failures are `Io`; a manifest the writer
//! would itself refuse is `Backend` (artifact.md §7). A crash leaves `dest` absent,
//! as it was, or complete; the only leftovers are hidden `.kvfold-artifact-*`
//! directories beside it (artifact.md §8, docs/artifacts.md). Failpoints for each
//! step live in `failpoint` (feature `failpoints`).

// The snapshot backend (`AppendLogSnapshot::export_to` / `import`) and the fold
// executor (`stamp_scope`) are the callers. Until they are wired in only the unit
// tests use the staging API, hence the `allow`s; remove them once it is called.
mod bucket;
mod disk;
mod export;
mod failpoint;
mod fsops;
mod import;

#[cfg(test)]
mod tests;

pub(crate) use bucket::artifact_bucket;
#[cfg_attr(not(test), allow(unused_imports))]
pub(crate) use export::{ExportStage, stamp_scope};
#[allow(
    unused_imports,
    reason = "the type names are for callers that spell them out"
)]
pub(crate) use import::{
    ImportStage, PayloadShape, VerifiedImport, import_artifact, verify_and_stage_import,
};

pub use crate::protocol::manifest::{
    ARTIFACT_SCHEMA_VERSION, ArtifactFile, ExportManifest, MANIFEST_FILE,
};
