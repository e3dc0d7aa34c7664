//! The recorded bytes: never a panic, canonical round trip.

use kvfold::protocol::identity::{BUCKET_NAME_BYTES_MAX, decode_identity, encode_identity};
use proptest::prelude::*;

use super::*;

proptest! {
    #[test]
    fn any_bytes_decode_to_an_identity_or_a_typed_error(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(identity) = decode_identity(&data) {
            prop_assert!(!identity.name.is_empty() && identity.name.len() <= BUCKET_NAME_BYTES_MAX);
        }
    }

    #[test]
    fn every_valid_identity_round_trips_byte_exactly(name in "\\PC{1,64}", created in any::<u64>()) {
        let identity = BucketIdentity::new(name, created);
        let bytes = encode_identity(&identity);
        prop_assert_eq!(decode_identity(&bytes), Ok(identity.clone()));
        prop_assert_eq!(encode_identity(&decode_identity(&bytes).unwrap()), bytes);
    }
}
