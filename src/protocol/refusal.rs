//! Refusals of bad caller input that both backends give with one text: an invalid
//! key or prefix, a CAS token that is not a revision, a fence from another bucket
//! (docs/semantics.md, "Keys, prefixes, bucket names" and "Fenced writes"). Pure:
//! the backends call these before any I/O, so the same input gets the same
//! `KvError` from the memory backend and from NATS.

use super::subject::{KeyError, MAX_KEY_BYTES, check_key, check_prefix, shown};
use crate::kv::{KvError, LeaseFence, VersionToken};

/// The text of a refused key, naming the rule it breaks and the key rules.
pub fn invalid_key_text(key: &str, why: KeyError) -> String {
    format!(
        "invalid key {}: {why} (keys: 1 to {MAX_KEY_BYTES} bytes of A-Z a-z 0-9 - / _ = . with no \
         leading, trailing or doubled '.')",
        shown(key)
    )
}

/// `Ok` for a valid key; otherwise `OperationFailed` with [`invalid_key_text`].
///
/// # Errors
///
/// `KvError::OperationFailed` when `key` breaks a key rule.
pub fn require_key(key: &str) -> Result<(), KvError> {
    check_key(key).map_err(|why| KvError::OperationFailed(invalid_key_text(key, why)))
}

/// `Ok` for a valid prefix (the empty prefix included); otherwise the text of
/// the refusal, naming the rule (a listing reports it as `OperationFailed`, a
/// watch as `WatchError`).
///
/// # Errors
///
/// The refusal text when `prefix` could not begin a key.
pub fn require_prefix(prefix: &str) -> Result<(), String> {
    check_prefix(prefix).map_err(|why| {
        format!(
            "invalid prefix {}: {why} (a prefix is empty or could begin a key: at most \
             {MAX_KEY_BYTES} bytes of A-Z a-z 0-9 - / _ = . with no leading or doubled '.')",
            shown(prefix)
        )
    })
}

/// The revision a CAS token stands for; anything but an 8-byte revision token is
/// refused before anything is sent.
///
/// # Errors
///
/// `KvError::OperationFailed` naming the token.
pub fn cas_revision(token: &VersionToken) -> Result<u64, KvError> {
    token.as_u64().ok_or_else(|| {
        KvError::OperationFailed(format!(
            "version token {token:?} is not a revision (kvfold CAS needs a u64 token)"
        ))
    })
}

/// The fence revision of a fenced write to `bucket`: the fence must name this
/// bucket, a valid key and a revision token.
///
/// # Errors
///
/// `KvError::OperationFailed` for a fence of another bucket, an invalid fence
/// key, or a fence revision that is not a revision.
pub fn fence_revision(fence: &LeaseFence, bucket: &str) -> Result<u64, KvError> {
    if fence.bucket != bucket {
        return Err(KvError::OperationFailed(format!(
            "fence of bucket {} cannot guard a write to bucket {bucket}",
            fence.bucket
        )));
    }
    require_key(&fence.key)?;
    fence.revision.as_u64().ok_or_else(|| {
        KvError::OperationFailed(format!(
            "fence revision {:?} is not a revision",
            fence.revision
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fence(bucket: &str, key: &str, revision: VersionToken) -> LeaseFence {
        LeaseFence {
            bucket: bucket.to_string(),
            key: key.to_string(),
            revision,
        }
    }

    #[test]
    fn keys_and_prefixes_are_refused_with_the_rule() {
        assert_eq!(require_key("a.b"), Ok(()));
        let Err(KvError::OperationFailed(text)) = require_key("a..b") else {
            panic!("a doubled dot is refused");
        };
        assert!(text.starts_with("invalid key \"a..b\": "), "{text}");
        assert!(
            text.contains(&format!("1 to {MAX_KEY_BYTES} bytes")),
            "{text}"
        );
        assert_eq!(require_prefix(""), Ok(()));
        assert_eq!(require_prefix("a."), Ok(()));
        let text = require_prefix(".a").unwrap_err();
        assert!(text.starts_with("invalid prefix \".a\": "), "{text}");
        assert!(text.contains("could begin a key"), "{text}");
    }

    #[test]
    fn only_revision_tokens_are_cas_tokens() {
        assert_eq!(cas_revision(&VersionToken::from_u64(7)), Ok(7));
        let Err(KvError::OperationFailed(text)) = cas_revision(&VersionToken::unknown()) else {
            panic!("an unknown token is refused");
        };
        assert!(text.contains("is not a revision"), "{text}");
    }

    #[test]
    fn a_fence_must_be_this_buckets_valid_key_and_revision() {
        let rev = VersionToken::from_u64(4);
        assert_eq!(
            fence_revision(&fence("b", "lease", rev.clone()), "b"),
            Ok(4)
        );
        let other = fence_revision(&fence("c", "lease", rev.clone()), "b");
        assert_eq!(
            other,
            Err(KvError::OperationFailed(
                "fence of bucket c cannot guard a write to bucket b".to_string()
            ))
        );
        assert!(matches!(
            fence_revision(&fence("b", "bad..key", rev), "b"),
            Err(KvError::OperationFailed(text)) if text.starts_with("invalid key")
        ));
        assert!(matches!(
            fence_revision(&fence("b", "lease", VersionToken::unknown()), "b"),
            Err(KvError::OperationFailed(text)) if text.contains("fence revision")
        ));
    }
}
