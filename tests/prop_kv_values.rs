//! proptest: byte round trips of `VersionToken` and `WatchCursor` (docs/semantics.md,
//! "Version tokens and cursors", docs/verification.md row 14): the cursor decoder is total,
//! canonical and strict.

use kvfold::{VersionToken, WatchCursor};
use proptest::prelude::*;

fn version_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=VersionToken::MAX_LEN)
}

proptest! {
    #[test]
    fn version_token_raw_round_trip(bytes in version_bytes(), written in any::<u64>()) {
        let token = VersionToken::from_raw(&bytes).expect("at most 10 bytes").written_at(written);
        prop_assert_eq!(token.as_bytes(), &bytes[..]);
        prop_assert_eq!(token.is_unknown(), bytes.is_empty());
        prop_assert_eq!(token.written_ms(), (written != 0).then_some(written));
        prop_assert_eq!(token.as_u64().is_some(), bytes.len() == 8);
    }

    #[test]
    fn version_token_refuses_long_input(bytes in prop::collection::vec(any::<u8>(), 11..40)) {
        prop_assert!(VersionToken::from_raw(&bytes).is_none());
    }

    #[test]
    fn u64_token_round_trip(rev in any::<u64>()) {
        let token = VersionToken::from_u64(rev);
        prop_assert_eq!(token.as_u64(), Some(rev));
        prop_assert_eq!(token.as_bytes(), &rev.to_be_bytes()[..]);
        prop_assert_eq!(WatchCursor::from_version(token).rank(), rev);
    }

    #[test]
    fn structured_cursor_round_trips(bytes in version_bytes(), memo in any::<bool>(), written in any::<u64>()) {
        let version = VersionToken::from_raw(&bytes).expect("at most 10 bytes").written_at(written);
        let cursor = WatchCursor::from_version(version).remembering(memo);
        let encoded = cursor.to_bytes();
        prop_assert!(encoded.len() <= WatchCursor::MAX_ENCODED_LEN);
        let decoded = WatchCursor::from_bytes(&encoded).expect("own encoding decodes");
        prop_assert_eq!(&decoded, &cursor);
        prop_assert_eq!(decoded.written_ms(), cursor.written_ms());
        prop_assert_eq!(decoded.seen_evicting(), memo);
        prop_assert_eq!(decoded.to_bytes(), encoded);
    }

    #[test]
    fn cursor_decoding_is_total_and_canonical(bytes in prop::collection::vec(any::<u8>(), 0..=24)) {
        match WatchCursor::from_bytes(&bytes) {
            Some(cursor) => {
                prop_assert_eq!(cursor.to_bytes(), bytes.clone(), "accepted input must re-encode byte for byte");
                prop_assert!(bytes.len() <= WatchCursor::MAX_ENCODED_LEN);
                if bytes.len() <= VersionToken::MAX_LEN {
                    prop_assert!(!cursor.seen_evicting());
                }
            }
            None => prop_assert!(bytes.len() > VersionToken::MAX_LEN, "bare inputs always decode"),
        }
        if bytes.len() == 11 {
            prop_assert!(WatchCursor::from_bytes(&bytes).is_none());
        }
    }

    #[test]
    fn block_form_decodes_when_well_formed(bytes in version_bytes(), flags in 1u8..=3, written in 1u64..) {
        let mut block = bytes.clone();
        block.resize(10, 0);
        block.push(bytes.len() as u8);
        block.push(flags);
        if flags & 0b10 != 0 {
            block.extend_from_slice(&written.to_le_bytes());
        }
        let cursor = WatchCursor::from_bytes(&block).expect("well-formed block");
        prop_assert_eq!(cursor.version().as_bytes(), &bytes[..]);
        prop_assert_eq!(cursor.seen_evicting(), flags & 1 != 0);
        prop_assert_eq!(cursor.written_ms(), (flags & 0b10 != 0).then_some(written));
    }
}
