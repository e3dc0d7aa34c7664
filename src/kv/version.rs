//! Versions and cursors: `VersionToken` (one write) and `WatchCursor` (a resumable
//! position), with the cursor's canonical byte encoding. Pure value types: no I/O.

use std::fmt;
use std::hash::{Hash, Hasher};

/// Opaque version of one write: 0 to 10 bytes, plus a hidden write time.
///
/// Both kvfold backends use 8 bytes, the bucket revision as a big-endian `u64`
/// ([`VersionToken::from_u64`]). The empty token is "unknown": synthetic updates
/// carry it and it never moves a cursor. The hidden write time (server Unix
/// milliseconds, `0` = unknown) is not part of equality, hashing or
/// [`as_bytes`](VersionToken::as_bytes); it travels with the token so a cursor
/// made from it can be checked at resume.
#[derive(Clone, Default)]
pub struct VersionToken {
    len: u8,
    buf: [u8; VersionToken::MAX_LEN],
    written_ms: u64,
}

impl VersionToken {
    /// Longest version a token can hold, in bytes.
    pub const MAX_LEN: usize = 10;

    /// The unknown (empty) version.
    pub fn unknown() -> Self {
        Self::default()
    }

    /// True for the empty token.
    pub fn is_unknown(&self) -> bool {
        self.len == 0
    }

    /// The token of bucket revision `rev`: 8 bytes, big-endian.
    pub fn from_u64(rev: u64) -> Self {
        let mut buf = [0u8; Self::MAX_LEN];
        buf[..8].copy_from_slice(&rev.to_be_bytes());
        Self {
            len: 8,
            buf,
            written_ms: 0,
        }
    }

    /// The revision, when the token is exactly 8 bytes long.
    #[must_use]
    pub fn as_u64(&self) -> Option<u64> {
        let bytes: [u8; 8] = self.as_bytes().try_into().ok()?;
        Some(u64::from_be_bytes(bytes))
    }

    /// The version bytes (0 to 10 of them).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// Wraps raw version bytes; `None` above [`VersionToken::MAX_LEN`] bytes (never truncates).
    #[must_use]
    pub fn from_raw(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > Self::MAX_LEN {
            return None;
        }
        let mut buf = [0u8; Self::MAX_LEN];
        buf[..bytes.len()].copy_from_slice(bytes);
        Some(Self {
            len: u8::try_from(bytes.len()).ok()?,
            buf,
            written_ms: 0,
        })
    }

    /// The same version carrying the server's write time (Unix ms, `0` = unknown).
    #[must_use]
    pub fn written_at(mut self, unix_ms: u64) -> Self {
        self.written_ms = unix_ms;
        self
    }

    /// The write time in Unix milliseconds, when known.
    pub fn written_ms(&self) -> Option<u64> {
        (self.written_ms != 0).then_some(self.written_ms)
    }
}

impl PartialEq for VersionToken {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for VersionToken {}

impl Hash for VersionToken {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for VersionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_unknown() {
            write!(f, "VersionToken(unknown)")
        } else if let Some(rev) = self.as_u64() {
            write!(f, "VersionToken(u64: {rev})")
        } else {
            write!(f, "VersionToken({:?})", self.as_bytes())
        }
    }
}

/// Length of the block form without a write time.
const BLOCK_LEN: usize = 12;
/// Length of the block form with a write time.
const BLOCK_TIMED_LEN: usize = 20;
/// Flag bit: the eviction memo is set.
const FLAG_SEEN_EVICTING: u8 = 0b01;
/// Flag bit: an 8-byte little-endian write time follows.
const FLAG_WRITE_TIME: u8 = 0b10;

/// A resumable position in a watch: every retained write up to this version has
/// been applied.
///
/// Besides the version (with its hidden write time) it carries the **eviction
/// memo** ([`seen_evicting`](WatchCursor::seen_evicting)): once the fold saw the
/// bucket evict current values it is OR-ed into every later cursor and never
/// cleared. Equality and hashing cover the version bytes and the memo, not the
/// write time.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct WatchCursor {
    version: VersionToken,
    seen_evicting: bool,
}

impl WatchCursor {
    /// Longest byte encoding [`to_bytes`](WatchCursor::to_bytes) produces.
    pub const MAX_ENCODED_LEN: usize = 20;

    /// The empty cursor: no position (a watch from it is a full state-sync watch).
    pub fn none() -> Self {
        Self::default()
    }

    /// True when the version is unknown.
    pub fn is_none(&self) -> bool {
        self.version.is_unknown()
    }

    /// The cursor just after the write `token` (keeps the token's write time).
    pub fn from_version(token: VersionToken) -> Self {
        Self {
            version: token,
            seen_evicting: false,
        }
    }

    /// The cursor just after bucket revision `rev`.
    pub fn from_u64(rev: u64) -> Self {
        Self::from_version(VersionToken::from_u64(rev))
    }

    /// The canonical byte encoding: the bare version bytes when the memo is
    /// clear and the write time unknown, otherwise the 12- or 20-byte block form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let written = self.version.written_ms();
        if !self.seen_evicting && written.is_none() {
            return self.version.as_bytes().to_vec();
        }
        let mut out = Vec::with_capacity(Self::MAX_ENCODED_LEN);
        let version = self.version.as_bytes();
        out.extend_from_slice(version);
        out.resize(VersionToken::MAX_LEN, 0);
        out.push(self.version.len);
        let mut flags = 0u8;
        if self.seen_evicting {
            flags |= FLAG_SEEN_EVICTING;
        }
        if written.is_some() {
            flags |= FLAG_WRITE_TIME;
        }
        out.push(flags);
        if let Some(ms) = written {
            out.extend_from_slice(&ms.to_le_bytes());
        }
        out
    }

    /// Decodes [`to_bytes`](WatchCursor::to_bytes) output (and every earlier
    /// encoding); strict: anything that is not exactly canonical is `None`.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() <= VersionToken::MAX_LEN {
            return Some(Self::from_version(VersionToken::from_raw(bytes)?));
        }
        if bytes.len() != BLOCK_LEN && bytes.len() != BLOCK_TIMED_LEN {
            return None;
        }
        let version_len = usize::from(bytes[10]);
        if version_len > VersionToken::MAX_LEN {
            return None;
        }
        if bytes[version_len..VersionToken::MAX_LEN]
            .iter()
            .any(|&b| b != 0)
        {
            return None;
        }
        let flags = bytes[11];
        if flags == 0 || flags & !(FLAG_SEEN_EVICTING | FLAG_WRITE_TIME) != 0 {
            return None;
        }
        let has_time = flags & FLAG_WRITE_TIME != 0;
        let mut version = VersionToken::from_raw(&bytes[..version_len])?;
        match (has_time, bytes.len()) {
            (false, BLOCK_LEN) => {}
            (true, BLOCK_TIMED_LEN) => {
                let tail: [u8; 8] = bytes[BLOCK_LEN..].try_into().ok()?;
                let ms = u64::from_le_bytes(tail);
                if ms == 0 {
                    return None;
                }
                version = version.written_at(ms);
            }
            _ => return None,
        }
        Some(Self {
            version,
            seen_evicting: flags & FLAG_SEEN_EVICTING != 0,
        })
    }

    /// The revision, when the version is a u64 token.
    #[must_use]
    pub fn as_u64(&self) -> Option<u64> {
        self.version.as_u64()
    }

    /// The single ordering kvfold uses: the revision, or 0 without one.
    pub fn rank(&self) -> u64 {
        self.as_u64().unwrap_or(0)
    }

    /// The eviction memo: the fold has seen this bucket evict current values.
    pub fn seen_evicting(&self) -> bool {
        self.seen_evicting
    }

    /// The same cursor with the memo OR-ed with `seen` (a set memo is never cleared).
    #[must_use]
    pub fn remembering(mut self, seen: bool) -> Self {
        self.seen_evicting |= seen;
        self
    }

    /// The write time of the cursor's version, when known.
    pub fn written_ms(&self) -> Option<u64> {
        self.version.written_ms()
    }

    /// The cursor's version.
    pub fn version(&self) -> &VersionToken {
        &self.version
    }
}

impl fmt::Debug for WatchCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.seen_evicting {
            write!(f, "WatchCursor({:?}, seen evicting)", self.version)
        } else {
            write!(f, "WatchCursor({:?})", self.version)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_token_is_eight_big_endian_bytes() {
        let t = VersionToken::from_u64(0x0102);
        assert_eq!(t.as_bytes(), &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(t.as_u64(), Some(0x0102));
        assert_eq!(format!("{t:?}"), "VersionToken(u64: 258)");
    }

    #[test]
    fn unknown_token_has_no_revision() {
        let t = VersionToken::unknown();
        assert!(t.is_unknown());
        assert_eq!(t.as_u64(), None);
        assert_eq!(format!("{t:?}"), "VersionToken(unknown)");
    }

    #[test]
    fn from_raw_refuses_more_than_ten_bytes() {
        assert!(VersionToken::from_raw(&[1; 10]).is_some());
        assert!(VersionToken::from_raw(&[1; 11]).is_none());
        let t = VersionToken::from_raw(&[1, 2, 3]).unwrap();
        assert_eq!(t.as_u64(), None);
        assert_eq!(format!("{t:?}"), "VersionToken([1, 2, 3])");
    }

    #[test]
    fn write_time_is_not_part_of_equality() {
        let a = VersionToken::from_u64(7).written_at(1000);
        let b = VersionToken::from_u64(7);
        assert_eq!(a, b);
        assert_eq!(a.written_ms(), Some(1000));
        assert_eq!(b.written_ms(), None);
        assert_eq!(VersionToken::from_u64(7).written_at(0).written_ms(), None);
    }

    #[test]
    fn bare_form_when_no_memo_and_no_write_time() {
        let c = WatchCursor::from_u64(42);
        assert_eq!(c.to_bytes(), 42u64.to_be_bytes().to_vec());
        assert_eq!(WatchCursor::from_bytes(&c.to_bytes()), Some(c));
        assert_eq!(WatchCursor::none().to_bytes(), Vec::<u8>::new());
        assert_eq!(WatchCursor::from_bytes(&[]), Some(WatchCursor::none()));
    }

    #[test]
    fn block_form_carries_memo_and_write_time() {
        let c = WatchCursor::from_version(VersionToken::from_u64(5).written_at(0x1122))
            .remembering(true);
        let bytes = c.to_bytes();
        assert_eq!(bytes.len(), 20);
        assert_eq!(&bytes[..8], &5u64.to_be_bytes());
        assert_eq!(&bytes[8..10], &[0, 0]);
        assert_eq!(bytes[10], 8);
        assert_eq!(bytes[11], 0b11);
        assert_eq!(&bytes[12..], &0x1122u64.to_le_bytes());
        let back = WatchCursor::from_bytes(&bytes).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.written_ms(), Some(0x1122));
        assert!(back.seen_evicting());
    }

    #[test]
    fn block_form_written_for_write_time_alone() {
        let c = WatchCursor::from_version(VersionToken::from_u64(5).written_at(9));
        let bytes = c.to_bytes();
        assert_eq!(bytes.len(), 20);
        assert_eq!(bytes[11], 0b10);
        let memo_only = WatchCursor::from_u64(5).remembering(true).to_bytes();
        assert_eq!(memo_only.len(), 12);
        assert_eq!(memo_only[11], 0b01);
    }

    #[test]
    fn decoder_is_strict() {
        assert_eq!(WatchCursor::from_bytes(&[0; 11]), None);
        let good = WatchCursor::from_u64(5).remembering(true).to_bytes();
        let mut bad = good.clone();
        bad[9] = 1; // padding must be zero
        assert_eq!(WatchCursor::from_bytes(&bad), None);
        let mut bad = good.clone();
        bad[11] = 0; // flags must be non-zero
        assert_eq!(WatchCursor::from_bytes(&bad), None);
        let mut bad = good.clone();
        bad[11] = 0b101; // unknown flag bit
        assert_eq!(WatchCursor::from_bytes(&bad), None);
        let mut bad = good.clone();
        bad[10] = 11; // version length above 10
        assert_eq!(WatchCursor::from_bytes(&bad), None);
        let mut bad = good.clone();
        bad[11] = 0b11; // write time flagged but absent
        assert_eq!(WatchCursor::from_bytes(&bad), None);
        let mut bad = good;
        bad.extend_from_slice(&[0; 8]); // zero write time
        bad[11] = 0b11;
        assert_eq!(WatchCursor::from_bytes(&bad), None);
        assert_eq!(WatchCursor::from_bytes(&[0; 13]), None);
        assert_eq!(WatchCursor::from_bytes(&[0; 21]), None);
    }

    #[test]
    fn remembering_never_clears_the_memo() {
        let c = WatchCursor::from_u64(1)
            .remembering(true)
            .remembering(false);
        assert!(c.seen_evicting());
        assert_eq!(
            format!("{c:?}"),
            "WatchCursor(VersionToken(u64: 1), seen evicting)"
        );
    }

    #[test]
    fn rank_is_revision_or_zero() {
        assert_eq!(WatchCursor::from_u64(9).rank(), 9);
        assert_eq!(WatchCursor::none().rank(), 0);
        let raw = WatchCursor::from_version(VersionToken::from_raw(&[1, 2]).unwrap());
        assert_eq!(raw.rank(), 0);
    }
}
