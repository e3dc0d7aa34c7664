//! `KvUpdate` builders.
#![allow(dead_code)]

use kvfold::{KvEntry, KvUpdate, VersionToken};

/// A put of `key` at revision `rev`, value `v<rev>`.
pub fn put(key: &str, rev: u64) -> KvUpdate {
    put_value(key, format!("v{rev}").as_bytes(), rev)
}

/// A delete of `key` whose version is unknown.
pub fn delete_unknown(key: &str) -> KvUpdate {
    KvUpdate::Delete {
        key: key.to_string(),
        version: VersionToken::unknown(),
    }
}

/// `k1@1 .. kn@n`.
pub fn puts(range: std::ops::RangeInclusive<u64>) -> Vec<KvUpdate> {
    range.map(|i| put(&format!("k{i}"), i)).collect()
}

/// A put of `key` at revision `rev` with `value`.
pub fn put_value(key: &str, value: &[u8], rev: u64) -> KvUpdate {
    KvUpdate::Put(KvEntry {
        key: key.to_owned(),
        value: value.to_vec(),
        version: VersionToken::from_u64(rev),
    })
}

/// A delete of `key` at revision `rev`.
pub fn delete(key: &str, rev: u64) -> KvUpdate {
    KvUpdate::Delete {
        key: key.to_owned(),
        version: VersionToken::from_u64(rev),
    }
}
