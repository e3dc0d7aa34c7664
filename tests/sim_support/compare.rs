//! Comparing what a node holds with the truth: the fold against the truth in
//! scope, the domain against the fold.

use super::board::{Check, Shared, accepted, lock};
use super::truth::Fold;

/// A fold value as `value@revision`, or `absent`.
pub fn show(fold: Option<&(u64, Vec<u8>)>) -> String {
    match fold {
        None => "absent".to_string(),
        Some((rev, v)) => format!("{}@{rev}", String::from_utf8_lossy(v)),
    }
}

/// The fold must equal the truth in scope plus the untouched foreign entries;
/// the only tolerated difference is the `ExpiryRepair::None` exception, and under
/// a relist repair none is.
pub fn check_fold(board: &Shared, what: &str, fold: &Fold, foreign: &Fold) {
    let mut b = lock(board);
    let mut expected = b.truth.live_in(&b.prefixes);
    expected.extend(foreign.iter().map(|(k, v)| (k.clone(), v.clone())));
    let keys: std::collections::BTreeSet<&String> = expected.keys().chain(fold.keys()).collect();
    for key in keys {
        let (want, got) = (expected.get(key), fold.get(key));
        if want == got {
            continue;
        }
        if let Some(&lost_at) = b.lost.get(key.as_str())
            && super::truth::in_scope(&b.prefixes, key)
            && got.is_none_or(|(rev, value)| *rev < lost_at && b.truth.was_put(key, *rev, value))
        {
            // Its write aged out before the exporter folded it: what the fleet still
            // holds is absent or an older value the key really had. That is allowed
            // only loudly (docs/protocols/repair.md, "Guarantees").
            b.stats.lost_excused += 1;
            if super::trace::current().loud == b.loud_base {
                let text = format!(
                    "{what}: key {key:?} lost its write at {lost_at} (fold {}) and nothing said so",
                    show(got)
                );
                b.violate(Check::Loss, text);
            }
            continue;
        }
        if let (None, Some((rev, value))) = (want, got)
            && !b.repairing
            && super::truth::in_scope(&b.prefixes, key)
            && b.truth.kept_by_expiry(key, *rev, value)
        {
            b.stats.kept_by_expiry += 1;
            continue;
        }
        let text = format!(
            "{what}: key {key:?}: truth {}, fold {}",
            show(want),
            show(got)
        );
        b.violate(Check::FoldTruth, text);
    }
}

/// The domain state must equal the fold restricted to what `parse` accepts. One
/// divergence is tolerated, and only where the truth itself tolerates one: after a
/// store failure the domain runs ahead of the store (docs/protocols/fold-machine.md, "The flush procedure"), and when the
/// cursor then expires, `ExpiryRepair::None`'s re-list cannot re-deliver a delete
/// whose marker was evicted, so each side may keep a different value the key
/// really had before that delete. Under a relist repair nothing is tolerated.
pub fn check_domain(board: &Shared, what: &str, domain: &Fold, fold: &Fold) {
    let expected = domain_of(fold);
    let mut b = lock(board);
    let truth = b.truth.live_in(&b.prefixes);
    let keys: std::collections::BTreeSet<&String> = expected.keys().chain(domain.keys()).collect();
    let mut diff = Vec::new();
    let mut tolerated = 0;
    for key in keys {
        let (want, got) = (expected.get(key), domain.get(key));
        if want == got {
            continue;
        }
        // Tolerated only for a key the truth deleted: each side absent or holding
        // a value the exception allows.
        let kept = |v: Option<&(u64, Vec<u8>)>| {
            v.is_none_or(|(rev, value)| b.truth.kept_by_expiry(key, *rev, value))
        };
        if !b.repairing && !truth.contains_key(key) && kept(want) && kept(got) {
            tolerated += 1;
        } else {
            diff.push(format!("{key}: fold {} domain {}", show(want), show(got)));
        }
    }
    b.stats.domain_kept_by_expiry += tolerated;
    if !diff.is_empty() {
        b.violate(Check::DomainFold, format!("{what}: {}", diff.join("; ")));
    }
}

/// The fold restricted to what `parse` accepts.
pub fn domain_of(fold: &Fold) -> Fold {
    fold.iter()
        .filter(|(k, _)| accepted(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
