//! Version 2 record decoding (docs/formats.md §2), read only. The lengths are read before
//! the CRC-32 is checked and are not protected on their own, so a damaged length that
//! points past EOF reads as a torn tail: the known v2 ambiguity, which lasts until the
//! first upgrade to v3. Pure.

use super::{
    KIND_CURSOR, KIND_DELETE, KIND_PUT, MAX_CURSOR_LEN, MAX_VALUE_LEN, MAX_VERSION_LEN, Record,
    Step, Tail, TornKind, V2_MIN_TAIL_SLACK, Violation, corrupted, invalid, read_slice, read_u16,
    read_u32,
};
use crate::kv::{VersionToken, WatchCursor};

/// Bytes before the payload: `crc` u32 and `type` u8.
const PREFIX_LEN: usize = 5;

/// A torn tail at `p`: zero-fill when nothing but zeros follows, else partial.
fn truncated(p: usize, z: usize) -> Step<'static> {
    let kind = if z <= p {
        TornKind::ZeroFill
    } else {
        TornKind::Partial
    };
    Step::End(Tail::Torn {
        offset: p as u64,
        kind,
    })
}

/// The payload fields of a record, located but not yet verified.
struct Fields<'a> {
    key: &'a [u8],
    value: &'a [u8],
    version: &'a [u8],
    cursor: &'a [u8],
}

/// Why the fields could not be located.
enum Locate {
    /// A field read ran past EOF.
    Truncated,
    /// A length checked before the CRC is out of range.
    Invalid(Violation),
    /// Put `value_len` above the limit: handled as a CRC mismatch ending here.
    Oversized(usize),
}

/// Decodes the record at `p` (`p < bytes.len()`); `z` is the start of the trailing
/// zero run of `bytes`.
pub(super) fn next(bytes: &[u8], p: usize, z: usize) -> Step<'_> {
    let n = bytes.len();
    let (Some(crc), Some(&kind)) = (read_u32(bytes, p), bytes.get(p + 4)) else {
        return truncated(p, z); // fewer than 5 bytes at p
    };
    if !matches!(kind, KIND_PUT | KIND_DELETE | KIND_CURSOR) {
        return unknown_kind(p, z, crc, kind);
    }
    let located = locate(bytes, p + PREFIX_LEN, kind);
    let (fields, end) = match located {
        Ok(found) => found,
        Err(Locate::Truncated) => return truncated(p, z),
        Err(Locate::Invalid(violation)) => return Step::Fail(invalid(p, violation)),
        Err(Locate::Oversized(end)) => return mismatch(p, end.min(n), n, z),
    };
    if crc32fast::hash(&bytes[p + 4..end]) != crc {
        return mismatch(p, end, n, z);
    }
    let record = match kind {
        KIND_PUT | KIND_DELETE => {
            let Ok(key) = std::str::from_utf8(fields.key) else {
                return Step::Fail(invalid(p, Violation::KeyNotUtf8));
            };
            // ver_len <= 10 was checked while locating.
            let version = VersionToken::from_raw(fields.version).unwrap_or_default();
            if kind == KIND_PUT {
                Record::Put {
                    key,
                    value: fields.value,
                    version,
                }
            } else {
                Record::Delete { key, version }
            }
        }
        _ => match WatchCursor::from_bytes(fields.cursor) {
            Some(cursor) => Record::Cursor(cursor),
            None => return Step::Fail(invalid(p, Violation::CursorUndecodable)),
        },
    };
    Step::Record(record, end)
}

/// The outcome for a `type` outside {1, 2, 3}.
fn unknown_kind(p: usize, z: usize, crc: u32, kind: u8) -> Step<'static> {
    if kind == 0 && crc == 0 {
        return if z <= p {
            truncated(p, z)
        } else {
            Step::Fail(invalid(p, Violation::ZeroHole))
        };
    }
    if kind == 0 && z <= p + 4 {
        // A partial CRC followed by zeros only: power loss on a zero-filling
        // filesystem. Nothing valid can follow an all-zero region.
        return Step::End(Tail::Torn {
            offset: p as u64,
            kind: TornKind::ZeroFill,
        });
    }
    Step::Fail(invalid(p, Violation::UnknownKind(kind)))
}

/// The outcome for a CRC mismatch of the record at `p` ending at `end`.
fn mismatch(p: usize, end: usize, n: usize, z: usize) -> Step<'static> {
    if n - end < V2_MIN_TAIL_SLACK {
        Step::End(Tail::Torn {
            offset: p as u64,
            kind: TornKind::Partial,
        })
    } else if z <= end {
        Step::End(Tail::Torn {
            offset: p as u64,
            kind: TornKind::ZeroFill,
        })
    } else {
        Step::Fail(corrupted(p))
    }
}

/// Reads the payload fields of a record of `kind` starting at `at`, in file order,
/// and returns them with the record's end.
fn locate(bytes: &[u8], at: usize, kind: u8) -> Result<(Fields<'_>, usize), Locate> {
    let mut fields = Fields {
        key: &[],
        value: &[],
        version: &[],
        cursor: &[],
    };
    let mut pos = at;
    if kind == KIND_CURSOR {
        let len = *bytes.get(pos).ok_or(Locate::Truncated)?;
        if usize::from(len) > MAX_CURSOR_LEN {
            return Err(Locate::Invalid(Violation::CursorTooLong(len)));
        }
        fields.cursor = read_slice(bytes, pos + 1, usize::from(len)).ok_or(Locate::Truncated)?;
        return Ok((fields, pos + 1 + usize::from(len)));
    }
    let key_len = usize::from(read_u16(bytes, pos).ok_or(Locate::Truncated)?);
    fields.key = read_slice(bytes, pos + 2, key_len).ok_or(Locate::Truncated)?;
    pos += 2 + key_len;
    if kind == KIND_PUT {
        let value_len = read_u32(bytes, pos).ok_or(Locate::Truncated)?;
        pos += 4;
        let value_len = usize::try_from(value_len).unwrap_or(usize::MAX);
        if value_len > MAX_VALUE_LEN {
            return Err(Locate::Oversized(pos));
        }
        fields.value = read_slice(bytes, pos, value_len).ok_or(Locate::Truncated)?;
        pos += value_len;
    }
    let ver_len = *bytes.get(pos).ok_or(Locate::Truncated)?;
    if usize::from(ver_len) > MAX_VERSION_LEN {
        return Err(Locate::Invalid(Violation::VersionTooLong(ver_len)));
    }
    fields.version = read_slice(bytes, pos + 1, usize::from(ver_len)).ok_or(Locate::Truncated)?;
    Ok((fields, pos + 1 + usize::from(ver_len)))
}
