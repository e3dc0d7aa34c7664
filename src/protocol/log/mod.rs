//! The append-log kernel (docs/formats.md §10): header dispatch, record framing and
//! checksums, the classification of any byte string as ok / torn tail / corrupted /
//! invalid, replay (last write wins), compactness, and the encoders.
//!
//! Pure: works on a borrowed `&[u8]` or appends to a caller's `Vec<u8>`. No I/O, no
//! clock, no locks, no logging; never panics on any input, and never allocates from
//! a length field it has not checked against the input. The `snapshot` executor
//! reads files, hands the bytes here, and carries out what comes back (truncate to
//! `valid_len`, rewrite, or fail).
//!
//! # Formats
//!
//! | version | header | checksum | written by kvfold |
//! |---|---|---|---|
//! | v2 | `"PGSS"` + u16 `2` (6 bytes) | CRC-32 (IEEE) over kind + payload | only for artifacts in mixed fleets and test fixtures |
//! | v3 | `"KVFL"` + u16 `3` + u16 flags + CRC-32C (12 bytes) | CRC-32C over the record head, and over head ‖ body | always |
//!
//! A v3 record is `body_len u32 | kind u8 | head_crc u32 | body | body_crc u32`; its length
//! is under a checksum of its own, so a damaged length is corruption, never a torn tail
//! (docs/formats.md §1 and §10).

mod decode;
mod encode;
mod header;
mod v2;
mod v3;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v2;

use crate::kv::{VersionToken, WatchCursor};

pub use decode::{Records, Replay, Scan, records, replay, scan};
pub use encode::{encode_compact, encode_cursor, encode_delete, encode_header, encode_put};

/// Magic of a v2 log: `"PGSS"`.
pub const V2_MAGIC: [u8; 4] = *b"PGSS";
/// Version number of a v2 log.
pub const V2_VERSION: u16 = 2;
/// Length of the v2 file header, in bytes.
pub const V2_HEADER_LEN: usize = 6;
/// Magic of a v3 log: `"KVFL"`.
pub const V3_MAGIC: [u8; 4] = *b"KVFL";
/// Version number of a v3 log.
pub const V3_VERSION: u16 = 3;
/// Length of the v3 file header, in bytes.
pub const V3_HEADER_LEN: usize = 12;
/// Length of a v3 record head (`body_len`, `kind`, `head_crc`), in bytes.
pub const V3_RECORD_HEAD_LEN: usize = 9;
/// Framing bytes of a v3 record: the head plus the trailing `body_crc`.
pub const V3_RECORD_OVERHEAD: usize = 13;
/// Record kind: Put.
pub const KIND_PUT: u8 = 0x01;
/// Record kind: Delete (also used for Purge).
pub const KIND_DELETE: u8 = 0x02;
/// Record kind: Cursor.
pub const KIND_CURSOR: u8 = 0x03;
/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 65_535;
/// Longest value, in bytes (64 MiB).
pub const MAX_VALUE_LEN: usize = 64 * 1024 * 1024;
/// Longest version token, in bytes.
pub const MAX_VERSION_LEN: usize = 10;
/// Longest encoded cursor, in bytes.
pub const MAX_CURSOR_LEN: usize = 20;
/// Longest v3 Put body: `3 + MAX_KEY_LEN + MAX_VERSION_LEN + MAX_VALUE_LEN`.
pub const MAX_PUT_BODY: usize = 67_174_412;
/// Longest v3 Delete body: `3 + MAX_KEY_LEN + MAX_VERSION_LEN`.
pub const MAX_DELETE_BODY: usize = 65_548;
/// A v2 CRC mismatch whose record ends within this many bytes of EOF is a torn tail
/// (docs/formats.md §2).
pub const V2_MIN_TAIL_SLACK: usize = 6;

const _: () = assert!(MAX_PUT_BODY == 3 + MAX_KEY_LEN + MAX_VERSION_LEN + MAX_VALUE_LEN);
const _: () = assert!(MAX_DELETE_BODY == 3 + MAX_KEY_LEN + MAX_VERSION_LEN);
const _: () = assert!(MAX_CURSOR_LEN == WatchCursor::MAX_ENCODED_LEN);
const _: () = assert!(MAX_VERSION_LEN == VersionToken::MAX_LEN);

/// The format generation of a log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogFormat {
    /// Legacy format 2 (magic `"PGSS"`, CRC-32): read, and written only for
    /// artifacts and fixtures.
    V2,
    /// Format 3 (magic `"KVFL"`, CRC-32C, length under its own checksum): what
    /// kvfold writes.
    V3,
}

/// One decoded record, borrowing its key and value from the input bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    /// A write: insert or overwrite `key` (an empty value is a present entry).
    Put {
        /// The key (UTF-8, checked).
        key: &'a str,
        /// The value bytes, possibly empty.
        value: &'a [u8],
        /// Version of the write.
        version: VersionToken,
    },
    /// A delete (or a purge, which is written as a delete): remove `key`.
    Delete {
        /// The key (UTF-8, checked).
        key: &'a str,
        /// Version of the marker; kept in the record, ignored on replay.
        version: VersionToken,
    },
    /// A checkpoint: every record before it is folded up to this cursor.
    Cursor(WatchCursor),
}

/// How a decode ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tail {
    /// The last record ends exactly at EOF.
    Clean,
    /// The bytes from `offset` to EOF are a torn write and are discarded.
    Torn {
        /// Start of the discarded range (equals `valid_len`).
        offset: u64,
        /// What the discarded range looks like.
        kind: TornKind,
    },
}

/// The shape of a torn tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TornKind {
    /// A record that was never completely written: the file ends before its end.
    Partial,
    /// Zeros only (a filesystem that zero-fills unwritten blocks after a crash).
    ZeroFill,
    /// A file whose header was never completely written (docs/formats.md §10, H2 and H4):
    /// no records.
    Creation,
}

/// Why bytes are not an acceptable log. At the `snapshot` boundary
/// `InvalidFormat` maps to `SnapshotError::InvalidFormat` and `Corrupted` to
/// `SnapshotError::Corrupted`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The bytes pass their checksum (or were never checksummed) but break the
    /// format. Never repaired automatically.
    #[error("invalid log format at byte {offset}: {violation}")]
    InvalidFormat {
        /// Start of the offending header or record (for encoders: the length of
        /// the output buffer, where the record would have started).
        offset: u64,
        /// The rule that was broken.
        violation: Violation,
    },
    /// A checksum failed where a torn tail is impossible (bit rot, a zero hole).
    #[error("log corrupted at byte {offset}")]
    Corrupted {
        /// Start of the header or record whose checksum failed.
        offset: u64,
    },
}

/// The format rule an input (or an encoder argument) broke.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// The file does not start with a known magic.
    #[error("bad magic")]
    BadMagic,
    /// A known magic with a version this build does not read.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u16),
    /// The reserved v3 header flags are not zero.
    #[error("non-zero header flags {0:#06x}")]
    NonZeroFlags(u16),
    /// Shorter than a header and not a torn creation.
    #[error("not a log")]
    NotALog,
    /// A record kind other than Put, Delete, Cursor.
    #[error("unknown record kind {0:#04x}")]
    UnknownKind(u8),
    /// A v3 `body_len` above the kind's maximum.
    #[error("body of kind {kind:#04x} too long: {len} bytes")]
    BodyTooLong {
        /// The record kind.
        kind: u8,
        /// The declared body length.
        len: u64,
    },
    /// The fields of a v3 body do not add up to `body_len`.
    #[error("body length mismatch")]
    BodyLengthMismatch,
    /// A key that is not valid UTF-8.
    #[error("key is not utf-8")]
    KeyNotUtf8,
    /// A key longer than [`MAX_KEY_LEN`] (encoders).
    #[error("key too long: {0} bytes")]
    KeyTooLong(usize),
    /// A value longer than [`MAX_VALUE_LEN`].
    #[error("value too long: {0} bytes")]
    ValueTooLong(u64),
    /// A version longer than [`MAX_VERSION_LEN`].
    #[error("version too long: {0} bytes")]
    VersionTooLong(u8),
    /// An encoded cursor longer than [`MAX_CURSOR_LEN`].
    #[error("cursor too long: {0} bytes")]
    CursorTooLong(u8),
    /// Cursor bytes that do not decode (v3: that are not canonical).
    #[error("cursor bytes undecodable")]
    CursorUndecodable,
    /// A v2 all-zero record head followed by non-zero bytes.
    #[error("zero hole")]
    ZeroHole,
}

/// Shorthand for an `InvalidFormat` error.
fn invalid(offset: usize, violation: Violation) -> LogError {
    LogError::InvalidFormat {
        offset: offset as u64,
        violation,
    }
}

/// Shorthand for a `Corrupted` error.
fn corrupted(offset: usize) -> LogError {
    LogError::Corrupted {
        offset: offset as u64,
    }
}

/// One step of a record decoder: a record and where the next one starts, the end
/// of the log, or an error.
enum Step<'a> {
    /// A verified record; the next record starts at the given offset.
    Record(Record<'a>, usize),
    /// No more records; the tail from the current offset.
    End(Tail),
    /// The input is corrupted or invalid.
    Fail(LogError),
}

/// The start of the trailing zero run: one past the last non-zero byte, or 0.
fn zero_run_start(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

/// Reads a little-endian `u16` at `at`, if it fits.
fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let end = at.checked_add(2)?;
    let raw: [u8; 2] = bytes.get(at..end)?.try_into().ok()?;
    Some(u16::from_le_bytes(raw))
}

/// Reads a little-endian `u32` at `at`, if it fits.
fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    let raw: [u8; 4] = bytes.get(at..end)?.try_into().ok()?;
    Some(u32::from_le_bytes(raw))
}

/// The `len` bytes at `at`, if they fit.
fn read_slice(bytes: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    bytes.get(at..at.checked_add(len)?)
}
