//! Key, prefix and bucket-name rules shared by every backend (docs/operations.md, "Key and value limits"), the
//! key and value size limits both backends enforce before any I/O, plus scope
//! matching and the NATS subject filters that cover a prefix set. Pure.

use std::fmt;

/// Longest key, in bytes, that either backend accepts (and longest prefix:
/// a longer prefix could not begin a key).
///
/// Why 3072: nats-server refuses a client protocol line whose arguments
/// exceed `max_control_line` (4096 bytes by default) with
/// `-ERR 'maximum control line exceeded'` and closes the connection. The
/// longest line kvfold sends for a key is the direct get
/// `PUB $JS.API.DIRECT.GET.KV_<bucket>.$KV.<bucket>.<key> <reply> 0`, which
/// names the bucket twice; a put (`HPUB $KV.<bucket>.<key> <reply> <hdr> <total>`)
/// is shorter. Measured against nats-server 2.15.1 with the longest bucket name
/// the server accepts (252 bytes: stream names stop at 255, `KV_` included) and
/// async-nats' 52-byte reply inbox, the direct get works up to a 3509-byte key
/// and the put up to 3780 bytes. 3072 keeps 437 bytes of that margin for a
/// longer custom inbox prefix (`NatsConnection::from_client`), and is far
/// below the snapshot log's [`MAX_KEY_LEN`](crate::protocol::log::MAX_KEY_LEN)
/// (65 535), so every key a backend accepts is storable by the append log.
/// docs/operations.md ("Key and value limits") has the table.
pub const MAX_KEY_BYTES: usize = 3072;

/// Longest value, in bytes, that either backend accepts: the snapshot log's
/// [`MAX_VALUE_LEN`](crate::protocol::log::MAX_VALUE_LEN) (64 MiB), so every
/// value a backend accepts is storable by the append log. The server's
/// `max_payload` (1 MiB by default) usually refuses far smaller values first;
/// this cap also holds for a server configured above 64 MiB and for a memory
/// backend with `max_payload(0)`.
pub const MAX_VALUE_BYTES: usize = crate::protocol::log::MAX_VALUE_LEN;

const _: () = assert!(MAX_KEY_BYTES <= crate::protocol::log::MAX_KEY_LEN);

/// Why a key (or prefix) is refused: the key rule it breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// The key is empty.
    Empty,
    /// Longer than [`MAX_KEY_BYTES`]; carries the length in bytes.
    TooLong {
        /// The key's length in bytes.
        len_bytes: usize,
    },
    /// A byte outside `A–Z a–z 0–9 - / _ = .`; carries its offset.
    BadByte {
        /// Byte offset of the first refused byte.
        at: usize,
    },
    /// Starts with `.`.
    LeadingDot,
    /// Ends with `.` (keys only; a prefix may end in `.`).
    TrailingDot,
    /// Holds an empty token (`..`).
    EmptyToken,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Empty => f.write_str("empty"),
            KeyError::TooLong { len_bytes } => write!(
                f,
                "{len_bytes} bytes long, over the {MAX_KEY_BYTES}-byte key limit"
            ),
            KeyError::BadByte { at } => write!(f, "byte {at} is not one of A-Z a-z 0-9 - / _ = ."),
            KeyError::LeadingDot => f.write_str("starts with '.'"),
            KeyError::TrailingDot => f.write_str("ends with '.'"),
            KeyError::EmptyToken => f.write_str("holds an empty token ('..')"),
        }
    }
}

impl std::error::Error for KeyError {}

/// True for a byte allowed in keys and prefixes: `A–Z a–z 0–9 - / _ = .`.
fn key_byte_ok(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'=' | b'.')
}

/// The rules keys and non-empty prefixes share: the length limit first (so a
/// huge key is refused without scanning it), then the bytes, the leading dot
/// and empty tokens.
fn check_common(text: &str) -> Result<(), KeyError> {
    if text.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong {
            len_bytes: text.len(),
        });
    }
    if let Some(at) = text.bytes().position(|b| !key_byte_ok(b)) {
        return Err(KeyError::BadByte { at });
    }
    if text.starts_with('.') {
        return Err(KeyError::LeadingDot);
    }
    if text.contains("..") {
        return Err(KeyError::EmptyToken);
    }
    Ok(())
}

/// Checks a key: non-empty; at most [`MAX_KEY_BYTES`] bytes; characters
/// `A–Z a–z 0–9 - / _ = .`; no leading or trailing `.`; no empty token (`..`).
pub fn check_key(key: &str) -> Result<(), KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    check_common(key)?;
    if key.ends_with('.') {
        return Err(KeyError::TrailingDot);
    }
    Ok(())
}

/// Checks a prefix: empty (every key), or a string that could begin a key (at
/// most [`MAX_KEY_BYTES`] bytes, same characters, no leading `.`, no `..`); it
/// may end in `.`.
pub fn check_prefix(prefix: &str) -> Result<(), KeyError> {
    if prefix.is_empty() {
        return Ok(());
    }
    check_common(prefix)
}

/// True iff a value of `len_bytes` bytes is within [`MAX_VALUE_BYTES`].
pub fn value_len_is_valid(len_bytes: usize) -> bool {
    len_bytes <= MAX_VALUE_BYTES
}

/// A key or prefix shortened for an error message: at most 64 bytes of it
/// (cut on a character boundary), then `…` and the full length, so a huge
/// key never floods a log line.
pub fn shown(text: &str) -> String {
    const SHOWN_BYTES_MAX: usize = 64;
    if text.len() <= SHOWN_BYTES_MAX {
        return format!("{text:?}");
    }
    let mut cut = SHOWN_BYTES_MAX;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{:?}… ({} bytes)", &text[..cut], text.len())
}

/// Bucket names: non-empty, `[A-Za-z0-9_-]+`.
pub fn bucket_name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Keys: non-empty; at most [`MAX_KEY_BYTES`] bytes; characters
/// `A–Z a–z 0–9 - / _ = .`; no leading or trailing `.`; no empty token (`..`).
/// [`check_key`] says which rule a refused key breaks.
pub fn key_is_valid(key: &str) -> bool {
    check_key(key).is_ok()
}

/// Prefixes: empty (every key), or a string that could begin a key (at most
/// [`MAX_KEY_BYTES`] bytes, same characters, no leading `.`, no `..`); it may
/// end in `.`. [`check_prefix`] says which rule a refused prefix breaks.
pub fn prefix_is_valid(prefix: &str) -> bool {
    check_prefix(prefix).is_ok()
}

/// Plain string-prefix matching: true iff `key` starts with any of `prefixes`.
/// `[""]` matches every key; `[]` matches none.
pub fn key_in_scope(key: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| key.starts_with(p))
}

/// The smallest set of NATS key patterns (without the `$KV.<bucket>.` part) whose subjects
/// cover every key in scope of `prefixes`, sorted ascending (docs/nats-backend.md,
/// "Subjects and filters"). The executor still filters exactly with [`key_in_scope`].
pub fn filter_patterns(prefixes: &[&str]) -> Vec<String> {
    let mut patterns: Vec<String> = prefixes
        .iter()
        .map(|p| match p.rfind('.') {
            None => ">".to_string(),
            Some(dot) => format!("{}>", &p[..=dot]),
        })
        .collect();
    // Shorter patterns first, so a covering pattern is kept before what it covers.
    patterns.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    patterns.dedup();
    let mut kept: Vec<String> = Vec::with_capacity(patterns.len());
    for pattern in patterns {
        let covered = kept.iter().any(|k| {
            let stem = &k[..k.len() - 1]; // drop the trailing '>'
            pattern.starts_with(stem)
        });
        if !covered {
            kept.push(pattern);
        }
    }
    kept.sort();
    kept
}

/// True iff a NATS key pattern from [`filter_patterns`] matches `key`
/// (`>` matches one or more trailing tokens). Used by verifiers and tests.
pub fn pattern_matches(pattern: &str, key: &str) -> bool {
    match pattern.strip_suffix('>') {
        Some(stem) => key.len() > stem.len() && key.starts_with(stem),
        None => pattern == key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_rule_table() {
        for ok in ["a", "a.b", "A-z_0/9=x", "a.b.c", "-", "=", "/", "_"] {
            assert!(key_is_valid(ok), "{ok}");
        }
        for bad in [
            "", ".a", "a.", "a..b", "a b", "a*", "a>", "ä", "a\n", ".", "..",
        ] {
            assert!(!key_is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn prefix_rule_table() {
        for ok in ["", "a", "a.", "a.b.", "app", "a-b/c="] {
            assert!(prefix_is_valid(ok), "{ok}");
        }
        for bad in [".", ".a", "a..", "a..b", "a b", "a*", ">"] {
            assert!(!prefix_is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn bucket_name_rule_table() {
        for ok in ["a", "A-b_9"] {
            assert!(bucket_name_is_valid(ok));
        }
        for bad in ["", "a.b", "a b", "a/b", "a=b", "a*"] {
            assert!(!bucket_name_is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn scope_is_string_prefix() {
        assert!(key_in_scope("app", &["ap"]));
        assert!(key_in_scope("app.x", &["app."]));
        assert!(!key_in_scope("ap", &["app"]));
        assert!(key_in_scope("anything", &[""]));
        assert!(!key_in_scope("anything", &[]));
    }

    #[test]
    fn filter_patterns_table() {
        assert_eq!(filter_patterns(&[""]), vec![">"]);
        assert_eq!(filter_patterns(&["app"]), vec![">"]);
        assert_eq!(filter_patterns(&["a.b.c"]), vec!["a.b.>"]);
        assert_eq!(filter_patterns(&["a."]), vec!["a.>"]);
        assert_eq!(filter_patterns(&["a.", "a.b.", "a.b.c"]), vec!["a.>"]);
        assert_eq!(filter_patterns(&["b.", "a.", "a."]), vec!["a.>", "b.>"]);
        assert_eq!(filter_patterns(&["b.", "x"]), vec![">"]);
        assert!(filter_patterns(&[]).is_empty());
        // "ab." must not be covered by "a." (different first token).
        assert_eq!(filter_patterns(&["a.", "ab."]), vec!["a.>", "ab.>"]);
    }

    #[test]
    fn pattern_matching() {
        assert!(pattern_matches(">", "a"));
        assert!(pattern_matches("a.>", "a.b"));
        assert!(!pattern_matches("a.>", "a"));
        assert!(!pattern_matches("a.>", "ab.c"));
        // `>` needs at least one token after the stem: the stem alone is no match.
        assert!(!pattern_matches("a.>", "a."));
        assert!(pattern_matches("a.>", "a.b.c"));
        // A pattern without `>` matches exactly its own key.
        assert!(pattern_matches("a.b", "a.b"));
        assert!(!pattern_matches("a.b", "a.c"));
        assert!(!pattern_matches("a.b", "a.b.c"));
    }

    #[test]
    fn key_length_limit_is_exact() {
        let at_limit = "k".repeat(MAX_KEY_BYTES);
        assert_eq!(check_key(&at_limit), Ok(()));
        assert!(key_is_valid(&at_limit));
        let over = "k".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(
            check_key(&over),
            Err(KeyError::TooLong {
                len_bytes: MAX_KEY_BYTES + 1
            })
        );
        assert!(!key_is_valid(&over));
        assert_eq!(
            check_key(&"k".repeat(70_000)),
            Err(KeyError::TooLong { len_bytes: 70_000 })
        );
        // Dotted keys count every byte, dots included.
        let dotted = format!("{}.b", "a".repeat(MAX_KEY_BYTES - 2));
        assert_eq!(dotted.len(), MAX_KEY_BYTES);
        assert!(key_is_valid(&dotted));
        assert!(!key_is_valid(&format!("x{dotted}")));
    }

    #[test]
    fn key_length_is_checked_before_the_other_rules() {
        // An over-long key with bad bytes reports its length: the limit is
        // decided before the bytes are scanned.
        let over = format!(".{}", "ä".repeat(MAX_KEY_BYTES));
        assert_eq!(
            check_key(&over),
            Err(KeyError::TooLong {
                len_bytes: 1 + 2 * MAX_KEY_BYTES
            })
        );
    }

    #[test]
    fn prefix_length_limit_is_exact() {
        assert!(prefix_is_valid(&"p".repeat(MAX_KEY_BYTES)));
        let dotted = format!("{}.", "p".repeat(MAX_KEY_BYTES - 1));
        assert!(prefix_is_valid(&dotted));
        assert_eq!(
            check_prefix(&"p".repeat(MAX_KEY_BYTES + 1)),
            Err(KeyError::TooLong {
                len_bytes: MAX_KEY_BYTES + 1
            })
        );
        assert_eq!(check_prefix(""), Ok(()));
    }

    #[test]
    fn key_error_table() {
        assert_eq!(check_key(""), Err(KeyError::Empty));
        assert_eq!(check_key("ab c"), Err(KeyError::BadByte { at: 2 }));
        assert_eq!(check_key(".a"), Err(KeyError::LeadingDot));
        assert_eq!(check_key("a."), Err(KeyError::TrailingDot));
        assert_eq!(check_key("a..b"), Err(KeyError::EmptyToken));
        assert_eq!(check_prefix("a."), Ok(()));
        assert_eq!(check_prefix("a..b"), Err(KeyError::EmptyToken));
        assert_eq!(check_prefix(".a"), Err(KeyError::LeadingDot));
        assert_eq!(
            KeyError::TooLong { len_bytes: 3073 }.to_string(),
            "3073 bytes long, over the 3072-byte key limit"
        );
    }

    #[test]
    fn value_length_limit_is_exact_and_storable() {
        assert!(value_len_is_valid(0));
        assert!(value_len_is_valid(MAX_VALUE_BYTES));
        assert!(!value_len_is_valid(MAX_VALUE_BYTES + 1));
        assert_eq!(MAX_VALUE_BYTES, crate::protocol::log::MAX_VALUE_LEN);
    }

    #[test]
    fn shown_keys_are_bounded() {
        assert_eq!(shown("abc"), "\"abc\"");
        let long = "k".repeat(70_000);
        let text = shown(&long);
        assert!(text.len() < 100, "{text}");
        assert!(text.ends_with("… (70000 bytes)"), "{text}");
        // A cut never splits a character.
        let wide = "ä".repeat(100);
        assert!(shown(&wide).starts_with("\"ää"));
        // Byte 64 inside a character: the cut steps back to byte 63.
        let odd = format!("a{}", "ä".repeat(100));
        assert_eq!(shown(&odd), format!("{:?}… (201 bytes)", &odd[..63]));
        // Exactly 64 bytes are shown whole.
        let full = "k".repeat(64);
        assert_eq!(shown(&full), format!("{full:?}"));
    }
}
