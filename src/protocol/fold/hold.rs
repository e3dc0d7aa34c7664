//! The export hold (docs/protocols/fold-machine.md, "The export hold"): after a
//! restore kept local keys because the bucket still lists them live, the fold holds
//! values older than the truth at its cursor until the resumed watch delivers those
//! keys' newer writes. An export in between would publish an artifact whose cursor
//! claims more than its payload holds.

/// Whether an export must be held: a hold up to revision `until` is set and the
/// committed cursor's rank is still below it.
pub fn export_held(committed_rank: u64, hold: Option<u64>) -> bool {
    hold.is_some_and(|until| committed_rank < until)
}

/// The hold after a commit at `committed_rank`: `hold` while the rank is below it,
/// `None` once reached.
pub fn settle_export_hold(hold: Option<u64>, committed_rank: u64) -> Option<u64> {
    hold.filter(|&until| export_held(committed_rank, Some(until)))
}

/// The hold after a restore's commit at the artifact's rank `committed_rank`: the
/// higher of the hold already set and the restore's [`kept_high`] (an earlier
/// restore's kept keys may still be waiting), settled at that rank.
pub fn export_hold_after_restore(
    hold: Option<u64>,
    kept_high: Option<u64>,
    committed_rank: u64,
) -> Option<u64> {
    settle_export_hold(hold.max(kept_high), committed_rank)
}

/// The revision a restore's kept keys wait for, from facts read after the listing:
/// `kept` has, per kept key, the revision the bucket holds it at (`None` = the key
/// is gone again); `last_revision` is the bucket's last revision, read after those
/// reads (`None` = the backend cannot tell).
///
/// `None` when nothing was kept. Otherwise the highest kept revision; a key that is
/// gone again was deleted after the listing, at a revision at most `last_revision`,
/// so that bounds it; without a last revision nothing bounds it and the hold lasts
/// for the rest of the run (`u64::MAX`).
pub fn kept_high(kept: &[Option<u64>], last_revision: Option<u64>) -> Option<u64> {
    kept.iter()
        .map(|revision| match revision {
            Some(revision) => *revision,
            None => last_revision.unwrap_or(u64::MAX),
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_only_below_the_hold() {
        assert!(!export_held(3, None));
        assert!(export_held(3, Some(5)));
        assert!(export_held(4, Some(5)));
        assert!(!export_held(5, Some(5)));
        assert!(!export_held(6, Some(5)));
    }

    #[test]
    fn a_restore_keeps_the_higher_hold_until_a_commit_reaches_it() {
        assert_eq!(export_hold_after_restore(None, None, 20), None);
        assert_eq!(export_hold_after_restore(None, Some(25), 20), Some(25));
        assert_eq!(export_hold_after_restore(Some(30), Some(25), 20), Some(30));
        assert_eq!(export_hold_after_restore(Some(22), None, 20), Some(22));
        assert_eq!(export_hold_after_restore(Some(22), Some(21), 22), None);
        assert_eq!(settle_export_hold(Some(25), 24), Some(25));
        assert_eq!(settle_export_hold(Some(25), 25), None);
        assert_eq!(settle_export_hold(None, 25), None);
    }

    #[test]
    fn kept_high_is_the_highest_kept_revision_or_the_bound_of_a_gone_key() {
        assert_eq!(kept_high(&[], Some(9)), None);
        assert_eq!(kept_high(&[Some(5), Some(7)], Some(9)), Some(7));
        assert_eq!(kept_high(&[Some(5), None], Some(9)), Some(9));
        assert_eq!(kept_high(&[Some(5), None], None), Some(u64::MAX));
        assert_eq!(kept_high(&[Some(5)], None), Some(5));
    }
}
