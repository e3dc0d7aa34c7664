//! Header dispatch (docs/formats.md §10): which format a byte string is, a torn creation,
//! or an error. The first rule of H1–H6 that matches decides. Pure.

use super::{
    LogError, LogFormat, V2_HEADER_LEN, V2_MAGIC, V2_VERSION, V3_HEADER_LEN, V3_MAGIC, V3_VERSION,
    Violation, corrupted, invalid, read_u16, read_u32,
};

/// What the header says about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Header {
    /// A complete header of this format; records start at its length.
    Log(LogFormat),
    /// A prefix (possibly zero-filled) of a header: no records (H2, H4).
    TornCreation,
}

/// The canonical v3 header: magic, version 3, flags 0, `header_crc`.
pub(super) fn v3_header() -> [u8; V3_HEADER_LEN] {
    let mut header = [0u8; V3_HEADER_LEN];
    header[..4].copy_from_slice(&V3_MAGIC);
    header[4..6].copy_from_slice(&V3_VERSION.to_le_bytes());
    // flags (6..8) stay zero
    let crc = crc32c::crc32c(&header[..8]);
    header[8..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// The v2 header: magic and version 2.
pub(super) fn v2_header() -> [u8; V2_HEADER_LEN] {
    let mut header = [0u8; V2_HEADER_LEN];
    header[..4].copy_from_slice(&V2_MAGIC);
    header[4..].copy_from_slice(&V2_VERSION.to_le_bytes());
    header
}

/// Every byte of `bytes` is zero or equals the byte of `header` at its offset
/// (`bytes` is at most as long as `header`).
fn is_header_prefix(bytes: &[u8], header: &[u8]) -> bool {
    bytes.len() <= header.len() && bytes.iter().zip(header).all(|(&b, &h)| b == 0 || b == h)
}

/// Applies rules H1–H6 (docs/formats.md §10) to the whole input.
pub(super) fn dispatch(bytes: &[u8]) -> Result<Header, LogError> {
    let n = bytes.len();
    let v3 = v3_header();
    let v3_magic = bytes.get(..4) == Some(&V3_MAGIC[..]);
    let crc_ok =
        n >= V3_HEADER_LEN && read_u32(bytes, 8) == Some(crc32c::crc32c(&bytes[..8.min(n)]));
    // H1: a v3 header whose checksum verifies.
    if n >= V3_HEADER_LEN && v3_magic && crc_ok {
        let version = read_u16(bytes, 4).unwrap_or_default();
        if version != V3_VERSION {
            return Err(invalid(4, Violation::UnsupportedVersion(version)));
        }
        let flags = read_u16(bytes, 6).unwrap_or_default();
        if flags != 0 {
            return Err(invalid(6, Violation::NonZeroFlags(flags)));
        }
        return Ok(Header::Log(LogFormat::V3));
    }
    // H2: a (zero-filled) prefix of the v3 header.
    if n <= V3_HEADER_LEN && is_header_prefix(bytes, &v3) {
        return Ok(Header::TornCreation);
    }
    // H3: the complete v2 magic decides for v2, whatever follows.
    if n >= V2_HEADER_LEN && bytes.get(..4) == Some(&V2_MAGIC[..]) {
        let version = read_u16(bytes, 4).unwrap_or_default();
        if version != V2_VERSION {
            return Err(invalid(4, Violation::UnsupportedVersion(version)));
        }
        return Ok(Header::Log(LogFormat::V2));
    }
    // H4: a (zero-filled) prefix of the v2 header.
    if n < V2_HEADER_LEN && is_header_prefix(bytes, &v2_header()) {
        return Ok(Header::TornCreation);
    }
    // H5: the v3 magic with a checksum that fails.
    if n >= V3_HEADER_LEN && v3_magic {
        return Err(corrupted(0));
    }
    // H6: nothing recognisable.
    if n < V3_HEADER_LEN {
        Err(invalid(0, Violation::NotALog))
    } else {
        Err(invalid(0, Violation::BadMagic))
    }
}
