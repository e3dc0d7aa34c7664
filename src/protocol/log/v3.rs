//! Version 3 record decoding (docs/formats.md §1 and §10): rules R1–R4 classify the record
//! at `p` as accepted, torn tail, corrupted or invalid. Pure.
//!
//! A tail is declared only where the failing record was never completely written:
//! the file ends, or turns to zeros for good, before the record's end. A failing
//! record followed by any non-zero byte is corruption.

use super::{
    KIND_CURSOR, KIND_DELETE, KIND_PUT, MAX_CURSOR_LEN, MAX_DELETE_BODY, MAX_PUT_BODY,
    MAX_VALUE_LEN, MAX_VERSION_LEN, Record, Step, Tail, TornKind, V3_RECORD_HEAD_LEN,
    V3_RECORD_OVERHEAD, Violation, corrupted, invalid, read_slice, read_u16, read_u32,
};
use crate::kv::{VersionToken, WatchCursor};

/// The largest body a record of `kind` may declare, or `None` for an unknown kind.
fn max_body(kind: u8) -> Option<usize> {
    match kind {
        KIND_PUT => Some(MAX_PUT_BODY),
        KIND_DELETE => Some(MAX_DELETE_BODY),
        KIND_CURSOR => Some(MAX_CURSOR_LEN),
        _ => None,
    }
}

/// A torn tail starting at `p`.
fn torn(p: usize, kind: TornKind) -> Step<'static> {
    Step::End(Tail::Torn {
        offset: p as u64,
        kind,
    })
}

/// Decodes the record at `p` (`p < bytes.len()`); `z` is the start of the trailing
/// zero run of `bytes`.
pub(super) fn next(bytes: &[u8], p: usize, z: usize) -> Step<'_> {
    let n = bytes.len();
    // R1: nothing but zeros from here on.
    if z <= p {
        return torn(p, TornKind::ZeroFill);
    }
    // R2: not even a record head left.
    if n - p < V3_RECORD_HEAD_LEN {
        return torn(p, TornKind::Partial);
    }
    let (Some(body_len), Some(&kind), Some(head_crc)) =
        (read_u32(bytes, p), bytes.get(p + 4), read_u32(bytes, p + 5))
    else {
        return torn(p, TornKind::Partial); // unreachable: n - p >= 9 was checked
    };
    let head = &bytes[p..p + 5];
    let head_crc_calc = crc32c::crc32c(head);
    if head_crc != head_crc_calc {
        // R4: the head itself does not verify.
        return if z < p + V3_RECORD_HEAD_LEN {
            torn(p, TornKind::Partial)
        } else {
            Step::Fail(corrupted(p))
        };
    }
    // R3a: an authentic head with an impossible kind or length.
    let Some(max) = max_body(kind) else {
        return Step::Fail(invalid(p, Violation::UnknownKind(kind)));
    };
    let body_len = u64::from(body_len);
    if body_len > max as u64 {
        return Step::Fail(invalid(
            p,
            Violation::BodyTooLong {
                kind,
                len: body_len,
            },
        ));
    }
    // body_len <= MAX_PUT_BODY, so these additions cannot overflow.
    let len = body_len as usize;
    let end = p + V3_RECORD_OVERHEAD + len;
    let body_start = p + V3_RECORD_HEAD_LEN;
    let verified = end <= n
        && read_u32(bytes, body_start + len)
            == Some(crc32c::crc32c_append(
                head_crc_calc,
                &bytes[body_start..body_start + len],
            ));
    if !verified {
        // R3c: the record was cut short, or its body does not verify.
        return if z < end {
            torn(p, TornKind::Partial)
        } else {
            Step::Fail(corrupted(p))
        };
    }
    // R3b: accept and parse the body.
    let body = &bytes[body_start..body_start + len];
    match parse_body(kind, body) {
        Ok(record) => Step::Record(record, end),
        Err(violation) => Step::Fail(invalid(p, violation)),
    }
}

/// Parses a verified body of `kind` (one of the three known kinds).
fn parse_body(kind: u8, body: &[u8]) -> Result<Record<'_>, Violation> {
    match kind {
        KIND_PUT => {
            let (key, version, rest) = key_and_version(body)?;
            if rest.len() > MAX_VALUE_LEN {
                return Err(Violation::ValueTooLong(rest.len() as u64));
            }
            Ok(Record::Put {
                key,
                value: rest,
                version,
            })
        }
        KIND_DELETE => {
            let (key, version, rest) = key_and_version(body)?;
            if !rest.is_empty() {
                return Err(Violation::BodyLengthMismatch);
            }
            Ok(Record::Delete { key, version })
        }
        _ => {
            let cursor = WatchCursor::from_bytes(body).ok_or(Violation::CursorUndecodable)?;
            if cursor.to_bytes() != body {
                return Err(Violation::CursorUndecodable);
            }
            Ok(Record::Cursor(cursor))
        }
    }
}

/// Reads `key_len u16, key, ver_len u8, version` from the start of a body and
/// returns the key, the version and the rest of the body.
fn key_and_version(body: &[u8]) -> Result<(&str, VersionToken, &[u8]), Violation> {
    let key_len = usize::from(read_u16(body, 0).ok_or(Violation::BodyLengthMismatch)?);
    let key = read_slice(body, 2, key_len).ok_or(Violation::BodyLengthMismatch)?;
    let ver_at = 2 + key_len;
    let &ver_len = body.get(ver_at).ok_or(Violation::BodyLengthMismatch)?;
    if usize::from(ver_len) > MAX_VERSION_LEN {
        return Err(Violation::VersionTooLong(ver_len));
    }
    let version =
        read_slice(body, ver_at + 1, usize::from(ver_len)).ok_or(Violation::BodyLengthMismatch)?;
    let key = std::str::from_utf8(key).map_err(|_| Violation::KeyNotUtf8)?;
    let version = VersionToken::from_raw(version).ok_or(Violation::VersionTooLong(ver_len))?;
    let rest = &body[ver_at + 1 + usize::from(ver_len)..];
    Ok((key, version, rest))
}
