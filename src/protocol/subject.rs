//! Key, prefix and bucket-name rules shared by every backend (api.md §15.5), plus
//! scope matching and the NATS subject filters that cover a prefix set. Pure.

/// True for a byte allowed in keys and prefixes: `A–Z a–z 0–9 - / _ = .`.
fn key_byte_ok(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'=' | b'.')
}

/// Bucket names: non-empty, `[A-Za-z0-9_-]+`.
pub fn bucket_name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Keys: non-empty; characters `A–Z a–z 0–9 - / _ = .`; no leading or trailing
/// `.`; no empty token (`..`).
pub fn key_is_valid(key: &str) -> bool {
    !key.is_empty()
        && key.bytes().all(key_byte_ok)
        && !key.starts_with('.')
        && !key.ends_with('.')
        && !key.contains("..")
}

/// Prefixes: empty (every key), or a string that could begin a key (same
/// characters, no leading `.`, no `..`); it may end in `.`.
pub fn prefix_is_valid(prefix: &str) -> bool {
    prefix.is_empty()
        || (prefix.bytes().all(key_byte_ok) && !prefix.starts_with('.') && !prefix.contains(".."))
}

/// Plain string-prefix matching: true iff `key` starts with any of `prefixes`.
/// `[""]` matches every key; `[]` matches none.
pub fn key_in_scope(key: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| key.starts_with(p))
}

/// The smallest set of NATS key patterns (without the `$KV.<bucket>.` part) whose
/// subjects cover every key in scope of `prefixes`, sorted ascending
/// (nats-backend.md §5.2). The executor still filters exactly with [`key_in_scope`].
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
    }
}
