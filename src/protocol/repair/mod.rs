//! Repair kernels (docs/protocols/repair.md, "Kernels already in place"): the eviction memo rule,
//! retention polling, arming, artifact scope and restore checks, disjoint prefixes and the
//! sorted-listing merge; and the watch-task side of a repair, the sans-IO `RepairMachine`
//! (docs/protocols/repair-machine.md). Pure: no I/O, no clock; the executor decides nothing.

mod machine;
mod types;

pub use machine::RepairMachine;
pub use types::{
    ArtifactView, NoticeLevel, RETENTION_POLL_MS, RepairCommand, RepairEvent, RepairNotice,
    RepairPhase, RepairStart, Scratch, Unexpected,
};

use std::fmt;

use super::{RepairMode, restore_ahead, restore_allowed};
use crate::kv::Retention;

/// Eviction is configured **and** has happened: `Some(r)` with
/// `r.evicts_current_values && r.first_revision > 1`.
pub fn eviction_observed(retention: Option<Retention>) -> bool {
    retention.is_some_and(|r| r.evicts_current_values && r.first_revision > 1)
}

/// Retention is polled only while a relist could still be planned:
/// `!seen_evicting && mode ∈ {Relist, Auto}`.
pub fn retention_polls(seen_evicting: bool, effective_mode: RepairMode) -> bool {
    !seen_evicting && matches!(effective_mode, RepairMode::Relist | RepairMode::Auto)
}

/// Why a repair cannot be armed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArmRefusal {
    /// `Restore` and `Auto` replace the fold: they need a snapshot store.
    NeedsStore,
}

impl fmt::Display for ArmRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArmRefusal::NeedsStore => write!(
                f,
                "a restore repair replaces the fold and needs a snapshot store; pass a store or use ExpiryRepair::None"
            ),
        }
    }
}

/// Whether a repair channel into the fold is created (docs/protocols/repair.md, "Arming a repair"):
/// `None` → `Ok(false)`; with a store → `Ok(true)`; `Restore`/`Auto` without one →
/// `Err(NeedsStore)`; `Relist` without one → `Ok(false)`.
pub fn arm_repair(mode: RepairMode, has_store: bool) -> Result<bool, ArmRefusal> {
    match (mode, has_store) {
        (RepairMode::None, _) => Ok(false),
        (_, true) => Ok(true),
        (RepairMode::Restore | RepairMode::Auto, false) => Err(ArmRefusal::NeedsStore),
        (RepairMode::Relist, false) => Ok(false),
    }
}

/// Every watcher prefix starts with some exporter prefix (conservative: a union of
/// narrower exporter prefixes does not count); `[""]` covers all.
pub fn scope_covers(exporter: &[String], watcher: &[String]) -> bool {
    watcher
        .iter()
        .all(|w| exporter.iter().any(|e| w.starts_with(e.as_str())))
}

/// Why a restore is refused (operator-facing `Display`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RestoreRefusal {
    /// The artifact has no recorded scope: its coverage is unknown.
    NoScope,
    /// The artifact's scope does not cover the watch's.
    ScopeNotCovered {
        /// The exporter's prefixes.
        exporter: Vec<String>,
        /// The watcher's prefixes.
        watcher: Vec<String>,
    },
    /// The artifact is not ahead of the local fold.
    NotAhead {
        /// The artifact's rank.
        artifact: u64,
        /// The local rank.
        local: u64,
    },
    /// Resuming from the artifact would land outside retention.
    OutsideRetention {
        /// The artifact's rank.
        artifact: u64,
        /// The bucket's first revision.
        first_revision: u64,
    },
}

impl fmt::Display for RestoreRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreRefusal::NoScope => write!(
                f,
                "the artifact records no scope (exported outside watch_applied), so its coverage is unknown"
            ),
            RestoreRefusal::ScopeNotCovered { exporter, watcher } => write!(
                f,
                "the artifact's scope {exporter:?} does not cover this watch's scope {watcher:?}"
            ),
            RestoreRefusal::NotAhead { artifact, local } => write!(
                f,
                "the artifact (revision {artifact}) is not ahead of the local fold (revision {local})"
            ),
            RestoreRefusal::OutsideRetention {
                artifact,
                first_revision,
            } => write!(
                f,
                "resuming after the artifact (revision {artifact}) would skip evicted messages: the bucket starts at {first_revision}"
            ),
        }
    }
}

/// The restore checks, in order: scope known, scope covers, ahead, inside retention
/// (only when `first_revision` is known).
pub fn check_restore(
    artifact_rank: u64,
    artifact_scope: Option<&[String]>,
    local_rank: u64,
    first_revision: Option<u64>,
    watch_scope: &[String],
) -> Result<(), RestoreRefusal> {
    let Some(exporter) = artifact_scope else {
        return Err(RestoreRefusal::NoScope);
    };
    if !scope_covers(exporter, watch_scope) {
        return Err(RestoreRefusal::ScopeNotCovered {
            exporter: exporter.to_vec(),
            watcher: watch_scope.to_vec(),
        });
    }
    if !restore_ahead(artifact_rank, local_rank) {
        return Err(RestoreRefusal::NotAhead {
            artifact: artifact_rank,
            local: local_rank,
        });
    }
    if let Some(first) = first_revision
        && !restore_allowed(artifact_rank, local_rank, first)
    {
        return Err(RestoreRefusal::OutsideRetention {
            artifact: artifact_rank,
            first_revision: first,
        });
    }
    Ok(())
}

/// Prefixes such that each key is matched by exactly one of them iff some input
/// prefix matches it: shortest first, keep one unless it starts with a kept
/// prefix; sorted ascending, duplicates collapsed.
pub fn disjoint_prefixes(prefixes: &[String]) -> Vec<String> {
    let mut by_length: Vec<&String> = prefixes.iter().collect();
    by_length.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    let mut kept: Vec<String> = Vec::new();
    for p in by_length {
        if !kept.iter().any(|k| p.starts_with(k.as_str())) {
            kept.push(p.clone());
        }
    }
    kept.sort();
    kept
}

/// A merge-join over a listing sorted ascending: probes must ascend.
pub struct SortedListing<I> {
    head: Option<String>,
    rest: I,
}

impl<I, E> SortedListing<I>
where
    I: Iterator<Item = Result<String, E>>,
{
    /// Wraps an ascending listing.
    pub fn new(keys: I) -> Self {
        Self {
            head: None,
            rest: keys,
        }
    }

    /// Advances past listed keys below `key`; true iff the listing holds `key`.
    /// Errors from the listing pass through.
    pub fn contains(&mut self, key: &str) -> Result<bool, E> {
        loop {
            match &self.head {
                Some(head) if head.as_str() >= key => return Ok(head == key),
                _ => match self.rest.next() {
                    None => {
                        self.head = None;
                        return Ok(false);
                    }
                    Some(next) => self.head = Some(next?),
                },
            }
        }
    }
}

#[cfg(test)]
mod machine_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    /// The refusal texts name what is wrong and what to do.
    #[test]
    fn refusal_texts() {
        assert_eq!(
            ArmRefusal::NeedsStore.to_string(),
            "a restore repair replaces the fold and needs a snapshot store; pass a store or use ExpiryRepair::None"
        );
        let texts = [
            RestoreRefusal::NoScope.to_string(),
            RestoreRefusal::ScopeNotCovered {
                exporter: s(&["a."]),
                watcher: s(&[""]),
            }
            .to_string(),
            RestoreRefusal::NotAhead {
                artifact: 3,
                local: 5,
            }
            .to_string(),
            RestoreRefusal::OutsideRetention {
                artifact: 3,
                first_revision: 9,
            }
            .to_string(),
        ];
        assert_eq!(
            texts,
            [
                "the artifact records no scope (exported outside watch_applied), so its coverage is unknown",
                "the artifact's scope [\"a.\"] does not cover this watch's scope [\"\"]",
                "the artifact (revision 3) is not ahead of the local fold (revision 5)",
                "resuming after the artifact (revision 3) would skip evicted messages: the bucket starts at 9",
            ]
        );
    }

    #[test]
    fn eviction_is_observed_only_once_it_happened() {
        let r = |e, f| {
            Some(Retention {
                evicts_current_values: e,
                first_revision: f,
            })
        };
        assert!(!eviction_observed(None));
        assert!(!eviction_observed(r(false, 9)));
        assert!(!eviction_observed(r(true, 1)));
        assert!(eviction_observed(r(true, 2)));
    }

    #[test]
    fn retention_polls_only_while_a_relist_can_be_planned() {
        for mode in [
            RepairMode::None,
            RepairMode::Relist,
            RepairMode::Restore,
            RepairMode::Auto,
        ] {
            let expected = matches!(mode, RepairMode::Relist | RepairMode::Auto);
            assert_eq!(retention_polls(false, mode), expected);
            assert!(!retention_polls(true, mode));
        }
    }

    #[test]
    fn arming_table() {
        assert_eq!(arm_repair(RepairMode::None, true), Ok(false));
        assert_eq!(arm_repair(RepairMode::None, false), Ok(false));
        for mode in [RepairMode::Relist, RepairMode::Restore, RepairMode::Auto] {
            assert_eq!(arm_repair(mode, true), Ok(true));
        }
        assert_eq!(arm_repair(RepairMode::Relist, false), Ok(false));
        assert_eq!(
            arm_repair(RepairMode::Restore, false),
            Err(ArmRefusal::NeedsStore)
        );
        assert_eq!(
            arm_repair(RepairMode::Auto, false),
            Err(ArmRefusal::NeedsStore)
        );
    }

    #[test]
    fn scope_cover_is_conservative() {
        assert!(scope_covers(&s(&[""]), &s(&["a.", "b"])));
        assert!(scope_covers(&s(&["a."]), &s(&["a.b."])));
        assert!(!scope_covers(&s(&["a.b.", "a.c."]), &s(&["a."])));
        assert!(!scope_covers(&s(&["a."]), &s(&[""])));
        assert!(scope_covers(&s(&["a."]), &[]));
    }

    #[test]
    fn restore_checks_in_order() {
        let all = s(&[""]);
        assert_eq!(
            check_restore(5, None, 1, None, &all),
            Err(RestoreRefusal::NoScope)
        );
        assert!(matches!(
            check_restore(5, Some(&s(&["a."])), 1, None, &all),
            Err(RestoreRefusal::ScopeNotCovered { .. })
        ));
        assert_eq!(
            check_restore(5, Some(&all), 5, Some(1), &all),
            Err(RestoreRefusal::NotAhead {
                artifact: 5,
                local: 5
            })
        );
        assert_eq!(
            check_restore(5, Some(&all), 1, Some(7), &all),
            Err(RestoreRefusal::OutsideRetention {
                artifact: 5,
                first_revision: 7
            })
        );
        assert_eq!(check_restore(5, Some(&all), 1, Some(6), &all), Ok(()));
        assert_eq!(check_restore(5, Some(&all), 1, None, &all), Ok(()));
    }

    #[test]
    fn disjoint_prefix_table() {
        assert_eq!(
            disjoint_prefixes(&s(&["a.b", "a.", "c", "a."])),
            s(&["a.", "c"])
        );
        assert_eq!(disjoint_prefixes(&s(&["b", ""])), s(&[""]));
        assert!(disjoint_prefixes(&[]).is_empty());
        assert_eq!(disjoint_prefixes(&s(&["ab", "a"])), s(&["a"]));
    }

    #[test]
    fn sorted_listing_merges_ascending_probes() {
        let keys = ["a", "c", "d"].map(|k| Ok::<_, ()>(k.to_string()));
        let mut listing = SortedListing::new(keys.into_iter());
        assert_eq!(listing.contains("a"), Ok(true));
        assert_eq!(listing.contains("b"), Ok(false));
        assert_eq!(listing.contains("c"), Ok(true));
        assert_eq!(listing.contains("e"), Ok(false));
        assert_eq!(listing.contains("f"), Ok(false));
        let failing = vec![Ok("a".to_string()), Err("io")];
        let mut listing = SortedListing::new(failing.into_iter());
        assert_eq!(listing.contains("a"), Ok(true));
        assert_eq!(listing.contains("b"), Err("io"));
    }
}
