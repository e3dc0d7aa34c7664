//! Encoders (docs/formats.md §10): each appends exactly one header or record to a caller's
//! buffer. Limits are checked before any byte is appended; on error the buffer is
//! unchanged. Pure.

use super::header::{v2_header, v3_header};
use super::{
    KIND_CURSOR, KIND_DELETE, KIND_PUT, LogError, LogFormat, MAX_CURSOR_LEN, MAX_KEY_LEN,
    MAX_VALUE_LEN, MAX_VERSION_LEN, V3_RECORD_HEAD_LEN, Violation, invalid,
};
use crate::kv::{VersionToken, WatchCursor};

/// Appends the file header of `format`.
pub fn encode_header(format: LogFormat, out: &mut Vec<u8>) {
    match format {
        LogFormat::V3 => out.extend_from_slice(&v3_header()),
        LogFormat::V2 => out.extend_from_slice(&v2_header()),
    }
}

/// Appends one Put record; returns the number of bytes appended.
///
/// Errors (nothing appended): `KeyTooLong` above 65 535 bytes, `ValueTooLong`
/// above 64 MiB, `VersionTooLong` above 10 bytes.
pub fn encode_put(
    format: LogFormat,
    key: &str,
    value: &[u8],
    version: &VersionToken,
    out: &mut Vec<u8>,
) -> Result<usize, LogError> {
    let version = version.as_bytes();
    check_key_and_version(key, version, out)?;
    if value.len() > MAX_VALUE_LEN {
        return Err(invalid(
            out.len(),
            Violation::ValueTooLong(value.len() as u64),
        ));
    }
    let start = out.len();
    match format {
        LogFormat::V3 => {
            let body_len = 3 + key.len() + version.len() + value.len();
            let at = begin_v3(KIND_PUT, body_len, out);
            push_key_and_version(key, version, out);
            out.extend_from_slice(value);
            finish_v3(at, out);
        }
        LogFormat::V2 => {
            let at = begin_v2(KIND_PUT, out);
            push_key(key, out);
            // value.len() <= MAX_VALUE_LEN < u32::MAX was checked above.
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
            push_version(version, out);
            finish_v2(at, out);
        }
    }
    Ok(out.len() - start)
}

/// Appends one Delete record (also used for Purge); returns the number of bytes
/// appended. Errors as for [`encode_put`] (key and version limits).
pub fn encode_delete(
    format: LogFormat,
    key: &str,
    version: &VersionToken,
    out: &mut Vec<u8>,
) -> Result<usize, LogError> {
    let version = version.as_bytes();
    check_key_and_version(key, version, out)?;
    let start = out.len();
    match format {
        LogFormat::V3 => {
            let body_len = 3 + key.len() + version.len();
            let at = begin_v3(KIND_DELETE, body_len, out);
            push_key_and_version(key, version, out);
            finish_v3(at, out);
        }
        LogFormat::V2 => {
            let at = begin_v2(KIND_DELETE, out);
            push_key(key, out);
            push_version(version, out);
            finish_v2(at, out);
        }
    }
    Ok(out.len() - start)
}

/// Appends one Cursor record holding `cursor.to_bytes()` (empty for the plain none
/// cursor); returns the number of bytes appended. Errors: `CursorTooLong` above
/// 20 bytes (impossible for a cursor built by kvfold).
pub fn encode_cursor(
    format: LogFormat,
    cursor: &WatchCursor,
    out: &mut Vec<u8>,
) -> Result<usize, LogError> {
    let bytes = cursor.to_bytes();
    if bytes.len() > MAX_CURSOR_LEN {
        let len = u8::try_from(bytes.len()).unwrap_or(u8::MAX);
        return Err(invalid(out.len(), Violation::CursorTooLong(len)));
    }
    let start = out.len();
    match format {
        LogFormat::V3 => {
            let at = begin_v3(KIND_CURSOR, bytes.len(), out);
            out.extend_from_slice(&bytes);
            finish_v3(at, out);
        }
        LogFormat::V2 => {
            let at = begin_v2(KIND_CURSOR, out);
            // bytes.len() <= 20 was checked above.
            out.push(bytes.len() as u8);
            out.extend_from_slice(&bytes);
            finish_v2(at, out);
        }
    }
    Ok(out.len() - start)
}

/// Appends a whole compact log: the header, one Put per entry in the order given
/// (pass ascending key order, e.g. a `BTreeMap`'s, so that the same state always
/// gives the same bytes), then one Cursor record iff `cursor.to_bytes()` is
/// non-empty (a none cursor carrying the eviction memo survives). Returns the
/// number of bytes appended; on error `out` is unchanged.
///
/// This is the byte layout `compact_to_file` streams to disk, and the payload an artifact
/// in `format` holds. For v2 it writes only the header, Put records and at most one Cursor
/// record (docs/formats.md §2).
pub fn encode_compact<'e, I>(
    format: LogFormat,
    entries: I,
    cursor: &WatchCursor,
    out: &mut Vec<u8>,
) -> Result<usize, LogError>
where
    I: IntoIterator<Item = (&'e str, &'e [u8], &'e VersionToken)>,
{
    let start = out.len();
    let result = (|| {
        encode_header(format, out);
        for (key, value, version) in entries {
            encode_put(format, key, value, version, out)?;
        }
        if !cursor.to_bytes().is_empty() {
            encode_cursor(format, cursor, out)?;
        }
        Ok(out.len() - start)
    })();
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Checks the key and version limits shared by Put and Delete.
fn check_key_and_version(key: &str, version: &[u8], out: &[u8]) -> Result<(), LogError> {
    if key.len() > MAX_KEY_LEN {
        return Err(invalid(out.len(), Violation::KeyTooLong(key.len())));
    }
    if version.len() > MAX_VERSION_LEN {
        let len = u8::try_from(version.len()).unwrap_or(u8::MAX);
        return Err(invalid(out.len(), Violation::VersionTooLong(len)));
    }
    Ok(())
}

/// Appends a v3 record head for `kind` and `body_len`; returns the record start.
fn begin_v3(kind: u8, body_len: usize, out: &mut Vec<u8>) -> usize {
    let at = out.len();
    // body_len <= MAX_PUT_BODY < u32::MAX: every caller checked its limits.
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.push(kind);
    let head_crc = crc32c::crc32c(&out[at..at + 5]);
    out.extend_from_slice(&head_crc.to_le_bytes());
    at
}

/// Appends the `body_crc` of the v3 record starting at `at` (head ‖ body, without
/// the `head_crc`).
fn finish_v3(at: usize, out: &mut Vec<u8>) {
    let head_crc = crc32c::crc32c(&out[at..at + 5]);
    let body_crc = crc32c::crc32c_append(head_crc, &out[at + V3_RECORD_HEAD_LEN..]);
    out.extend_from_slice(&body_crc.to_le_bytes());
}

/// Appends a v2 record prefix (CRC placeholder and type); returns the record start.
fn begin_v2(kind: u8, out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    at
}

/// Fills in the CRC-32 of the v2 record starting at `at` (type to end).
fn finish_v2(at: usize, out: &mut [u8]) {
    let crc = crc32fast::hash(&out[at + 4..]);
    out[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Appends `key_len u16` and the key (length checked by the caller).
fn push_key(key: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
}

/// Appends `ver_len u8` and the version (length checked by the caller).
fn push_version(version: &[u8], out: &mut Vec<u8>) {
    out.push(version.len() as u8);
    out.extend_from_slice(version);
}

/// Appends the v3 body prefix shared by Put and Delete.
fn push_key_and_version(key: &str, version: &[u8], out: &mut Vec<u8>) {
    push_key(key, out);
    push_version(version, out);
}
