//! Export/import artifacts (docs/artifacts.md): the manifest types, and (private) the
//! export and import staging on disk. Manifest bytes are parsed and validated by the pure
//! kernel `protocol::manifest`; this module hashes, fsyncs and renames, and never decides
//! anything about bytes itself.
//!
//! # How a backend exports (docs/artifacts.md §2, docs/snapshots.md, "`AppendLogSnapshot`")
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
//! # How a backend imports (docs/artifacts.md §3, docs/snapshots.md, "`AppendLogSnapshot`")
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
//! [`import_artifact`](import::import_artifact) is [`verify_and_stage_import`] (I1–I8),
//! then [`ImportStage::check_cursor`](import::ImportStage::check_cursor) (I9: the backend's
//! closure opens the staged copy and returns the cursor it holds, which must equal the
//! manifest cursor), then [`VerifiedImport::finalize`](import::VerifiedImport::finalize)
//! (I10: re-check, publish onto `dest` without replacing (hard link of a file, rename of a
//! directory), parent fsync). The type-state makes the gate impossible to skip. The payload
//! shape is chosen up front ([`PayloadShape`], so an occupied destination is refused before
//! anything is copied), and one `finalize` publishes either shape (docs/artifacts.md §6,
//! decision 6).
//!
//! # Errors and crashes
//!
//! Every `ManifestError` and every fault of the artifact itself is
//! `SnapshotError::ArtifactInvalid`; local failures are `Io`; a manifest the writer would
//! itself refuse is `Backend` (docs/artifacts.md §4). A crash leaves `dest` absent, as it
//! was, or complete; the only leftovers are hidden `.kvfold-artifact-*` directories beside
//! it (docs/artifacts.md §4 and §9). Failpoints for each step live in `failpoint` (feature
//! `failpoints`).

// The callers: `AppendLogSnapshot::export_to` / `import_with` (src/snapshot/append_log.rs)
// and the fold executor (`stamp_scope`, src/fold/run.rs). `import_artifact` runs every
// import step in one call; the append log runs the steps itself, so only the unit tests
// call it.
mod bucket;
mod disk;
mod export;
mod failpoint;
mod fsops;
mod import;

#[cfg(test)]
mod tests;

pub(crate) use bucket::artifact_bucket;
pub(crate) use export::{ExportStage, stamp_scope};
#[cfg(test)]
pub(crate) use import::import_artifact;
pub(crate) use import::{PayloadShape, verify_and_stage_import};

pub(crate) use crate::protocol::manifest::{
    ARTIFACT_SCHEMA_VERSION, ArtifactFile, ExportManifest, MANIFEST_FILE,
};
