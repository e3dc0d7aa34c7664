//! The optional `bucket` key of `MANIFEST.json` on disk (issue 9, docs/artifacts.md
//! "Bucket identity"): reading it from a published artifact, and the self-checked
//! encoding that writes it. The byte rules are `protocol::manifest`'s; this file
//! only reads and encodes. Never writes anything but through `disk`.

use std::path::Path;

use super::ExportManifest;
use super::disk::{encode_checked, manifest_invalid};
use crate::protocol::identity::BucketIdentity;
use crate::protocol::manifest::{decode_manifest_with_bucket, encode_manifest_with_bucket};
use crate::snapshot::SnapshotError;

/// Reads and decodes `<dir>/MANIFEST.json` with its optional bucket: a regular
/// file of at most `MAX_MANIFEST_BYTES` (the I1 rules), never read whole when larger.
///
/// # Errors
///
/// `ArtifactInvalid` for a missing, non-regular, oversized or invalid manifest;
/// `Io` for local failures.
pub(crate) fn read_manifest_with_bucket(
    dir: &Path,
) -> Result<(ExportManifest, Option<BucketIdentity>), SnapshotError> {
    let bytes = super::disk::read_manifest_bytes(dir)?;
    decode_manifest_with_bucket(&bytes).map_err(manifest_invalid)
}

/// The bucket an artifact names, or `None` (an artifact written before the key
/// existed, or by `export_to` of a store that recorded no bucket).
///
/// # Errors
///
/// As [`read_manifest_with_bucket`].
pub(crate) fn artifact_bucket(dir: &Path) -> Result<Option<BucketIdentity>, SnapshotError> {
    read_manifest_with_bucket(dir).map(|(_, bucket)| bucket)
}

/// Canonical manifest bytes with the bucket, self-checked like `encode_checked`:
/// kvfold never writes a manifest it would refuse or that reads back differently.
///
/// # Errors
///
/// `Backend` when the bytes would not read back unchanged (a writer bug).
pub(crate) fn encode_checked_with_bucket(
    manifest: &ExportManifest,
    bucket: Option<&BucketIdentity>,
) -> Result<Vec<u8>, SnapshotError> {
    let Some(named) = bucket else {
        // Without a bucket the bytes are exactly `encode_manifest`'s.
        return encode_checked(manifest);
    };
    let bytes = encode_manifest_with_bucket(manifest, Some(named));
    match decode_manifest_with_bucket(&bytes) {
        Ok((back, back_bucket)) if back == *manifest && back_bucket.as_ref() == bucket => Ok(bytes),
        Ok(_) => Err(SnapshotError::Backend(
            "refusing to write an invalid manifest: it does not read back unchanged".into(),
        )),
        Err(err) => Err(SnapshotError::Backend(format!(
            "refusing to write an invalid manifest: {err}"
        ))),
    }
}
