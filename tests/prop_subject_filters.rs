//! proptest: the NATS subject filters of a scope (`filter_patterns`) never
//! exclude a key in scope (`key_in_scope`; docs/verification.md row 18), checked
//! with a matcher written from the server's rules, and a mutation that shows
//! the checker has teeth.

use std::collections::BTreeSet;

use kvfold::protocol::subject::{
    filter_patterns, key_in_scope, key_is_valid, pattern_matches, prefix_is_valid,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{TestCaseError, TestError};

mod common;

use common::prop::{MUTANT_CASES, deterministic_runner};

// ===========================================================================
// Row 18: filter_patterns never exclude a key in scope
// ===========================================================================

/// NATS subject matching, written from the server's rules: tokens split on `.`,
/// `*` matches one token, `>` (a whole last token) matches one or more.
fn nats_subject_matches(filter: &str, subject: &str) -> bool {
    let f: Vec<&str> = filter.split('.').collect();
    let s: Vec<&str> = subject.split('.').collect();
    for (i, token) in f.iter().enumerate() {
        match *token {
            ">" => return i + 1 == f.len() && s.len() > i,
            "*" if i < s.len() => {}
            literal if s.get(i) == Some(&literal) => {}
            _ => return false,
        }
    }
    f.len() == s.len()
}

/// The pattern's literal tokens, when it is `t1.….tn.>` (or `>`).
fn pattern_stem(pattern: &str) -> Option<Vec<&str>> {
    let stem = if pattern == ">" {
        ""
    } else {
        pattern.strip_suffix(".>")?
    };
    Some(if stem.is_empty() {
        Vec::new()
    } else {
        stem.split('.').collect()
    })
}

type FilterKernel = fn(&[&str]) -> Vec<String>;

/// Which part of row 18 a pattern set breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
enum FilterFault {
    /// A key in scope is matched by no pattern (the server would never send it).
    ExcludesKeyInScope(String),
    /// Not sorted ascending, or a duplicate.
    NotSortedUnique(String),
    /// Not of the `stem.>` shape, or one pattern covers another (the server
    /// rejects overlapping filter subjects).
    Overlapping(String),
}

/// docs/verification.md row 18 / docs/semantics.md, "Keys, prefixes, bucket names", against an independent NATS matcher.
fn check_filters(
    patterns_of: FilterKernel,
    prefixes: &[String],
    keys: &[String],
) -> Result<(), FilterFault> {
    let prefixes: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    let patterns = patterns_of(&prefixes);
    for key in keys {
        if key_in_scope(key, &prefixes) {
            let subject = format!("$KV.b.{key}");
            let matched = patterns.iter().any(|p| {
                nats_subject_matches(&format!("$KV.b.{p}"), &subject) && pattern_matches(p, key)
            });
            if !matched {
                return Err(FilterFault::ExcludesKeyInScope(format!(
                    "{key:?} in scope of {prefixes:?}, matched by none of {patterns:?}"
                )));
            }
        }
    }
    if prefixes.is_empty() != patterns.is_empty() {
        return Err(FilterFault::ExcludesKeyInScope(format!(
            "{prefixes:?} → {patterns:?}"
        )));
    }
    if !patterns.windows(2).all(|w| w[0] < w[1]) {
        return Err(FilterFault::NotSortedUnique(format!("{patterns:?}")));
    }
    for p in &patterns {
        let Some(stem) = pattern_stem(p) else {
            return Err(FilterFault::Overlapping(format!("{p:?} is not `stem.>`")));
        };
        if stem.iter().any(|t| t.is_empty() || t.contains(['*', '>'])) {
            return Err(FilterFault::Overlapping(format!(
                "{p:?} has an empty or wildcard token"
            )));
        }
        for q in &patterns {
            if p != q && pattern_stem(q).is_some_and(|q_stem| q_stem.starts_with(&stem)) {
                return Err(FilterFault::Overlapping(format!("{p:?} covers {q:?}")));
            }
        }
    }
    Ok(())
}

/// Mutant: the naive filter, each prefix glued to `>`, kept where the production
/// rule agrees (empty and `.`-ending prefixes). The server reads `app>` as a
/// literal token, so it silently matches nothing.
fn glued_patterns(prefixes: &[&str]) -> Vec<String> {
    let (aligned, ragged): (Vec<&str>, Vec<&str>) = prefixes
        .iter()
        .partition(|p| p.is_empty() || p.ends_with('.'));
    let mut patterns: BTreeSet<String> = filter_patterns(&aligned).into_iter().collect();
    patterns.extend(ragged.iter().map(|p| format!("{p}>")));
    patterns.into_iter().collect()
}

fn token() -> impl Strategy<Value = String> {
    "[ab0_=/-]{1,3}"
}

fn key() -> impl Strategy<Value = String> {
    vec(token(), 1..4).prop_map(|tokens| tokens.join("."))
}

fn prefix() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        4 => (key(), any::<Index>()).prop_map(|(k, cut)| k[..cut.index(k.len() + 1)].to_string()),
        1 => key().prop_map(|k| format!("{k}.")),
    ]
}

/// Random valid prefixes, random keys, and keys built on the prefixes (in scope).
fn prefixes_and_keys() -> impl Strategy<Value = (Vec<String>, Vec<String>)> {
    let suffix = prop_oneof![
        Just(String::new()),
        token(),
        token().prop_map(|t| format!(".{t}")),
        (token(), token()).prop_map(|(a, b)| format!("{a}.{b}")),
    ];
    (
        vec(prefix(), 0..5),
        vec(key(), 0..6),
        vec((any::<Index>(), suffix), 0..10),
    )
        .prop_map(|(prefixes, mut keys, derived)| {
            if !prefixes.is_empty() {
                for (i, s) in derived {
                    let k = format!("{}{s}", prefixes[i.index(prefixes.len())]);
                    if key_is_valid(&k) {
                        keys.push(k);
                    }
                }
            }
            (prefixes, keys)
        })
}

proptest! {
    #[test]
    fn filter_patterns_cover_every_key_in_scope((prefixes, keys) in prefixes_and_keys()) {
        for p in &prefixes {
            prop_assert!(prefix_is_valid(p), "generator made an invalid prefix {:?}", p);
        }
        for k in &keys {
            prop_assert!(key_is_valid(k), "generator made an invalid key {:?}", k);
        }
        let verdict = check_filters(filter_patterns, &prefixes, &keys);
        prop_assert!(verdict.is_ok(), "{:?}", verdict);
    }
}

#[test]
fn mutant_glued_filter_is_caught() {
    // The same checker, failing only on the row-18 coverage fault.
    let mut runner = deterministic_runner(MUTANT_CASES);
    let result = runner.run(
        &prefixes_and_keys(),
        |(prefixes, keys)| match check_filters(glued_patterns, &prefixes, &keys) {
            Err(fault @ FilterFault::ExcludesKeyInScope(_)) => {
                Err(TestCaseError::fail(format!("{fault:?}")))
            }
            _ => Ok(()),
        },
    );
    let Err(TestError::Fail(reason, minimal)) = result else {
        panic!("glued filters survived: {result:?}");
    };
    println!("glued filters caught: {reason}\n{minimal:?}");
}

#[test]
fn nats_matcher_follows_the_server_rules() {
    assert!(nats_subject_matches("$KV.b.>", "$KV.b.a"));
    assert!(nats_subject_matches("$KV.b.a.>", "$KV.b.a.x.y"));
    assert!(!nats_subject_matches("$KV.b.a.>", "$KV.b.a"));
    assert!(!nats_subject_matches("$KV.b.app>", "$KV.b.app.x"));
    assert!(!nats_subject_matches("$KV.b.app>", "$KV.b.appx"));
    assert!(nats_subject_matches("$KV.b.*.x", "$KV.b.a.x"));
    assert!(!nats_subject_matches("$KV.b.a", "$KV.b.a.b"));
}
