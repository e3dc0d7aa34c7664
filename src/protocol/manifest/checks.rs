//! The value checks of a parsed manifest (docs/artifacts.md §1, reader steps 4–7): the
//! (schema, scope) matrix, payload paths (no zip-slip), duplicate and conflicting
//! paths, digest form, and `cursor_hex`. Pure; the first failure returns.

use std::cmp::Ordering;

use super::types::{ArtifactFile, ExportManifest};
use super::wire::WireManifest;
use super::{ManifestError, PathFault};
use crate::kv::WatchCursor;
use crate::protocol::identity::{BucketIdentity, identity_name_is_valid};

/// The layout without `scope`.
const SCHEMA_UNSCOPED: u32 = 1;
/// The layout with `scope` (`ARTIFACT_SCHEMA_VERSION`).
const SCHEMA_SCOPED: u32 = super::types::ARTIFACT_SCHEMA_VERSION;
/// Every payload path starts with this (the payload directory and a `/`).
const PAYLOAD_PREFIX: &str = "data/";
/// Longest accepted payload path, in bytes.
const PATH_BYTES_MAX: usize = 4096;
/// Longest accepted path component, in bytes.
const COMPONENT_BYTES_MAX: usize = 255;
/// Length of a BLAKE3 digest in hex characters.
const DIGEST_HEX_LEN: usize = 64;

/// Judges a parsed manifest: steps 4–7 in order. On success the files are in
/// canonical order (sorted by path), so `decode(encode(m)) == m`.
pub(super) fn judge(
    wire: WireManifest,
) -> Result<(ExportManifest, Option<BucketIdentity>), ManifestError> {
    check_schema_scope(wire.schema_version, wire.scope.is_some())?;
    if let Some(bucket) = &wire.bucket
        && !identity_name_is_valid(&bucket.name)
    {
        return Err(ManifestError::BadBucketName);
    }
    let mut files = wire.files;
    check_paths(&files)?;
    if let Some(bad) = files.iter().find(|file| !is_digest_hex(&file.blake3)) {
        return Err(ManifestError::BadDigest {
            path: bad.path.clone(),
        });
    }
    let cursor = decode_cursor_hex(&wire.cursor_hex)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest = ExportManifest {
        schema_version: wire.schema_version,
        backend: wire.backend,
        backend_version: wire.backend_version,
        cursor,
        created_at_unix: wire.created_at_unix,
        files,
        scope: wire.scope,
    };
    Ok((manifest, wire.bucket))
}

/// Step 4, the (schema, scope) matrix: 1 without scope, 2 with scope (any list,
/// `[]` included); any other version is unsupported whatever the scope.
pub(super) fn check_schema_scope(
    schema_version: u32,
    has_scope: bool,
) -> Result<(), ManifestError> {
    match (schema_version, has_scope) {
        (SCHEMA_UNSCOPED, false) | (SCHEMA_SCOPED, true) => Ok(()),
        (SCHEMA_UNSCOPED | SCHEMA_SCOPED, _) => Err(ManifestError::ScopeMismatch {
            schema_version,
            has_scope,
        }),
        (other, _) => Err(ManifestError::UnsupportedSchema(other)),
    }
}

/// Step 5: every path valid on its own, then no duplicates and no path that is a
/// directory of another.
fn check_paths(files: &[ArtifactFile]) -> Result<(), ManifestError> {
    for file in files {
        validate_payload_path(&file.path)?;
    }
    // Component-wise order puts every path right before the paths below it
    // ("data/a" < "data/a/b" < "data/a-b"; byte order would put "data/a-b"
    // between them), so comparing neighbours finds every duplicate and conflict.
    let mut paths: Vec<&str> = files.iter().map(|file| file.path.as_str()).collect();
    paths.sort_unstable_by(|a, b| component_order(a, b));
    for pair in paths.windows(2) {
        let (first, second) = (pair[0], pair[1]);
        if first == second {
            return Err(ManifestError::DuplicatePath(first.to_owned()));
        }
        if second
            .strip_prefix(first)
            .is_some_and(|rest| rest.starts_with('/'))
        {
            return Err(ManifestError::PathConflict {
                file: first.to_owned(),
                dir: second.to_owned(),
            });
        }
    }
    Ok(())
}

/// Orders `/`-separated paths component by component.
fn component_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// Checks one payload path (docs/artifacts.md §1, reader step 5): under `data/` and longer than
/// it; no backslash, no NUL; no empty, `.` or `..` component; at most 4096 bytes
/// in all and 255 per component. A path that passes can be joined to a stage
/// directory without escaping it (no zip-slip).
///
/// # Errors
///
/// `BadPath` naming the path and the first rule it broke, in the order above.
pub fn validate_payload_path(path: &str) -> Result<(), ManifestError> {
    match path_fault(path) {
        None => Ok(()),
        Some(reason) => Err(ManifestError::BadPath {
            path: path.to_owned(),
            reason,
        }),
    }
}

/// The first rule `path` breaks, if any.
fn path_fault(path: &str) -> Option<PathFault> {
    let rest = match path.strip_prefix(PAYLOAD_PREFIX) {
        Some(rest) if !rest.is_empty() => rest,
        _ => return Some(PathFault::NotUnderData),
    };
    if path.contains('\\') {
        return Some(PathFault::Backslash);
    }
    if path.contains('\0') {
        return Some(PathFault::Nul);
    }
    if rest
        .split('/')
        .any(|component| component.is_empty() || component == "." || component == "..")
    {
        return Some(PathFault::NotNormal);
    }
    if path.len() > PATH_BYTES_MAX
        || rest
            .split('/')
            .any(|component| component.len() > COMPONENT_BYTES_MAX)
    {
        return Some(PathFault::TooLong);
    }
    None
}

/// Step 6: exactly 64 characters of `[0-9a-f]`.
fn is_digest_hex(digest: &str) -> bool {
    digest.len() == DIGEST_HEX_LEN
        && digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Step 7: even length, at most 40 characters, only hex digits (either case, no
/// sign), and bytes `WatchCursor::from_bytes` accepts. `""` is the none cursor.
pub(super) fn decode_cursor_hex(hex: &str) -> Result<WatchCursor, ManifestError> {
    if !hex.len().is_multiple_of(2) || hex.len() > 2 * WatchCursor::MAX_ENCODED_LEN {
        return Err(ManifestError::BadCursorHex);
    }
    let bytes = hex
        .as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect::<Option<Vec<u8>>>()
        .ok_or(ManifestError::BadCursorHex)?;
    WatchCursor::from_bytes(&bytes).ok_or(ManifestError::BadCursorHex)
}

/// The value of one hex digit.
fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Lowercase hex of `bytes` (the writer's `cursor_hex`).
pub(super) fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}
