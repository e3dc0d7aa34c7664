//! The manifest kernel (docs/artifacts.md §1): `MANIFEST.json` bytes in,
//! an [`ExportManifest`] or a typed [`ManifestError`] out; the canonical encoder;
//! payload path rules; and the listing check importers run against the files they
//! found. Pure: no I/O, no clock, never panics. The artifact executor (export and
//! import staging) and the fuzz target `manifest_parse` call these same functions.
//!
//! # What is accepted
//!
//! [`decode_manifest`] checks, in order, and returns the first failure:
//!
//! 1. size: at most [`MAX_MANIFEST_BYTES`], checked before any parsing;
//! 2. objects only: the top level and every `files` element are JSON objects (the
//!    array form serde's derived deserializers would accept is refused);
//! 3. strict JSON: no unknown, duplicate, missing or mistyped key, no trailing
//!    bytes. Steps 2 and 3 are one streaming pass, so among their failures the
//!    first in document order wins;
//! 4. the (schema, scope) matrix: schema 1 without `scope` (absent or `null`),
//!    schema 2 with `scope` (any list), nothing else; then the optional `bucket`
//!    (an addition, allowed in both schemas: absent, `null`, or an object with
//!    exactly `name` and `created_unix_ms`) must name a non-empty bucket of at
//!    most 256 bytes;
//! 5. payload paths ([`validate_payload_path`]), then no duplicate path and no
//!    path that is a directory of another;
//! 6. digests: 64 lowercase hex characters;
//! 7. `cursor_hex`: even-length hex, at most 40 characters, bytes accepted by
//!    [`WatchCursor::from_bytes`](crate::WatchCursor::from_bytes).
//!
//! `backend` and `backend_version` are not judged here; the importer's policy is.
//!
//! # Canonical form
//!
//! [`encode_manifest`] (and [`encode_manifest_with_bucket`], which adds `bucket`
//! as the last key) writes the keys in table order, `files` sorted by path,
//! `cursor_hex` in lower case, pretty-printed as `serde_json::to_vec_pretty` prints
//! it, without a trailing newline. [`decode_manifest`] returns `files` sorted by
//! path as well, so for every accepted input `decode(encode(m)) == m`, and encoding
//! that result again gives the same bytes.

mod checks;
mod error;
mod import;
mod listing;
mod types;
mod wire;

#[cfg(test)]
mod tests;

use serde::Serialize;

pub use checks::validate_payload_path;
pub use error::{ManifestError, PathFault};
pub use import::{
    CopiedFile, check_backend, check_copied_file, check_payload_cursor, check_single_file,
};
pub use listing::{FoundEntry, check_payload_listing};
pub use types::{ARTIFACT_SCHEMA_VERSION, ArtifactFile, ExportManifest, MANIFEST_FILE};

use crate::protocol::identity::BucketIdentity;

/// Hard cap on manifest bytes (1 MiB): larger inputs are refused unparsed, so a
/// small input never causes a large allocation and a large one is refused cheaply.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// Decodes and validates `MANIFEST.json` bytes (docs/artifacts.md §1).
///
/// The returned manifest has its `files` sorted by path (the canonical order).
///
/// # Errors
///
/// The first failed check, in the order of the module docs.
pub fn decode_manifest(bytes: &[u8]) -> Result<ExportManifest, ManifestError> {
    decode_manifest_with_bucket(bytes).map(|(manifest, _)| manifest)
}

/// [`decode_manifest`], also returning the optional `bucket` key (an addition:
/// the identity of the bucket the payload was folded from; `None` when the key is
/// absent or `null`, as in every artifact written before it existed).
///
/// # Errors
///
/// The first failed check, in the order of the module docs.
pub fn decode_manifest_with_bucket(
    bytes: &[u8],
) -> Result<(ExportManifest, Option<BucketIdentity>), ManifestError> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge { len: bytes.len() });
    }
    // Step 2 for the top level, before serde sees anything: an array, string or
    // number document is refused as "not an object" whatever follows it. An empty
    // or all-whitespace input falls through to serde and is a syntax error.
    if let Some(&first) = bytes.iter().find(|b| !b" \t\r\n".contains(b))
        && first != b'{'
    {
        return Err(ManifestError::NotAnObject { at: "$".into() });
    }
    checks::judge(wire::parse(bytes)?)
}

/// Encodes `manifest` canonically (docs/artifacts.md §1): keys in table order, `files`
/// sorted by path, `scope` omitted when `None`, `cursor_hex` lower case, two-space
/// pretty printing, no trailing newline. These are also the remote pointer bytes,
/// so the output depends on nothing but `manifest`.
///
/// Infallible: it does not validate. Writers run [`decode_manifest`] on the result
/// and refuse to write bytes it rejects.
pub fn encode_manifest(manifest: &ExportManifest) -> Vec<u8> {
    encode_manifest_with_bucket(manifest, None)
}

/// [`encode_manifest`] with the optional `bucket` key last (omitted when `None`,
/// so a manifest without one is byte-identical to [`encode_manifest`]'s).
pub fn encode_manifest_with_bucket(
    manifest: &ExportManifest,
    bucket: Option<&BucketIdentity>,
) -> Vec<u8> {
    let mut files: Vec<WireFileOut<'_>> = manifest
        .files
        .iter()
        .map(|file: &ArtifactFile| WireFileOut {
            path: &file.path,
            size: file.size,
            blake3: &file.blake3,
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(b.path));
    let wire = WireManifestOut {
        schema_version: manifest.schema_version,
        backend: &manifest.backend,
        backend_version: &manifest.backend_version,
        cursor_hex: checks::lower_hex(&manifest.cursor.to_bytes()),
        created_at_unix: manifest.created_at_unix,
        files,
        scope: manifest.scope.as_deref(),
        bucket,
    };
    serde_json::to_vec_pretty(&wire)
        .expect("strings, integers and arrays of them always serialize into a Vec")
}

/// The writer's view of a manifest: field order is the wire key order.
#[derive(Serialize)]
struct WireManifestOut<'a> {
    schema_version: u32,
    backend: &'a str,
    backend_version: &'a str,
    cursor_hex: String,
    created_at_unix: u64,
    files: Vec<WireFileOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket: Option<&'a BucketIdentity>,
}

/// The writer's view of one `files` element.
#[derive(Serialize)]
struct WireFileOut<'a> {
    path: &'a str,
    size: u64,
    blake3: &'a str,
}
