//! Fuzz body `cursor_decode` (docs/verification.md, "Fuzz targets" and row 14): cursor byte
//! decoding is total, canonical and round-trips, for raw bytes and for cursors built from
//! structured input.

use super::input::Input;
use crate::kv::{VersionToken, WatchCursor};

/// Length of a bare encoding that is refused (one past the longest version).
const REFUSED_LEN: usize = VersionToken::MAX_LEN + 1;

/// Feeds `data` to `WatchCursor::from_bytes` as raw bytes, then reads it as a
/// structured cursor (version ≤ 10 bytes, memo, write time) and round-trips that.
///
/// Raw: never panics; `Some(c)` ⇒ `to_bytes(c).len() <= 20`, `to_bytes(c) == data`
/// (canonical decoding, docs/semantics.md, "Version tokens and cursors") and
/// `from_bytes(to_bytes(c)) == Some(c)` with the same memo and write time; input ≤ 10 bytes
/// ⇒ decodes, no memo, no write time, `to_bytes(c) == data`; an 11-byte input ⇒ `None`.
/// Structured: every cursor round-trips, and the bare form is written exactly when the memo
/// is clear and the write time unknown.
pub fn cursor_decode(data: &[u8]) {
    check_raw(data);
    check_structured(data);
}

/// The raw-bytes properties.
fn check_raw(data: &[u8]) {
    let decoded = WatchCursor::from_bytes(data);
    if data.len() <= VersionToken::MAX_LEN {
        let cursor = decoded
            .as_ref()
            .expect("every input of at most 10 bytes decodes (bare form)");
        assert!(!cursor.seen_evicting(), "a bare cursor carries no memo");
        assert_eq!(
            cursor.written_ms(),
            None,
            "a bare cursor carries no write time"
        );
        assert_eq!(cursor.version().as_bytes(), data);
        assert_eq!(cursor.is_none(), data.is_empty());
    }
    if data.len() == REFUSED_LEN {
        assert!(decoded.is_none(), "an 11-byte input must be refused");
    }
    let Some(cursor) = decoded else {
        return;
    };
    let encoded = cursor.to_bytes();
    assert!(
        encoded.len() <= WatchCursor::MAX_ENCODED_LEN,
        "encoding of {cursor:?} is {} bytes",
        encoded.len()
    );
    assert_eq!(encoded, data, "decoding must be canonical for {cursor:?}");
    let back = WatchCursor::from_bytes(&encoded).expect("an encoding decodes");
    assert_same(&back, &cursor);
}

/// The structured properties: a cursor built through the public constructors.
///
/// Layout: byte 0 = version length (low nibble, mod 11), memo (bit 4), write time
/// present (bit 5); then the version bytes, the write time (8 bytes LE), and a
/// revision for the `from_u64` path.
fn check_structured(data: &[u8]) {
    let mut input = Input::new(data);
    let head = input.byte();
    let version_len = usize::from(head & 0x0f) % (VersionToken::MAX_LEN + 1);
    let memo = head & 0x10 != 0;
    let timed = head & 0x20 != 0;
    let version = input.bytes(version_len);
    let written_ms = if timed { input.u64_le() } else { 0 };
    let token = VersionToken::from_raw(version)
        .expect("at most 10 bytes always make a token")
        .written_at(written_ms);
    let cursor = WatchCursor::from_version(token).remembering(memo);
    let encoded = round_trip(&cursor);
    if !memo && written_ms == 0 {
        assert_eq!(encoded, version, "bare form expected for {cursor:?}");
    } else {
        let block_len = if written_ms == 0 { 12 } else { 20 };
        assert_eq!(
            encoded.len(),
            block_len,
            "block form expected for {cursor:?}"
        );
    }
    assert_eq!(cursor.version().as_bytes(), version);
    assert_eq!(cursor.seen_evicting(), memo);

    let revision = input.number();
    let cursor = WatchCursor::from_version(VersionToken::from_u64(revision).written_at(written_ms))
        .remembering(memo);
    round_trip(&cursor);
    assert_eq!(cursor.as_u64(), Some(revision));
    assert_eq!(cursor.rank(), revision);
}

/// Encodes `cursor`, checks the bound and the round trip, returns the encoding.
fn round_trip(cursor: &WatchCursor) -> Vec<u8> {
    let encoded = cursor.to_bytes();
    assert!(
        encoded.len() <= WatchCursor::MAX_ENCODED_LEN,
        "encoding of {cursor:?} is {} bytes",
        encoded.len()
    );
    let back = WatchCursor::from_bytes(&encoded)
        .unwrap_or_else(|| panic!("{cursor:?} does not round-trip: {encoded:?}"));
    assert_same(&back, cursor);
    encoded
}

/// Equal in everything a cursor carries, including the write time that `==` ignores.
fn assert_same(got: &WatchCursor, want: &WatchCursor) {
    assert_eq!(got, want);
    assert_eq!(got.version().as_bytes(), want.version().as_bytes());
    assert_eq!(got.seen_evicting(), want.seen_evicting());
    assert_eq!(
        got.written_ms(),
        want.written_ms(),
        "write time lost for {want:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_accepts_edge_inputs() {
        cursor_decode(&[]);
        cursor_decode(&[0; 10]);
        cursor_decode(&[0; 11]);
        cursor_decode(&[0xff; 12]);
        cursor_decode(&[0xff; 64]);
        cursor_decode(&WatchCursor::from_u64(42).remembering(true).to_bytes());
        let timed = WatchCursor::from_version(VersionToken::from_u64(5).written_at(7));
        cursor_decode(&timed.to_bytes());
    }
}
