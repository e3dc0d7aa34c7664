//! Whether a NATS listing saw the whole bucket (docs/nats-backend.md, "Complete
//! listings"). An ephemeral consumer on an R3 stream can be placed on a follower
//! that has not yet stored the stream's tail; a last-per-subject listing there
//! ends "complete" by its own pending count while keys written before the call
//! are missing. The rule: before the listing, read the stream's last sequence
//! `P` from the leader (the sync point) and the subject of the message at `P`
//! (the sentinel); the listing's consumer also covers the sentinel's subject, so
//! a replica that holds `P` delivers a message at `P` or above. A replica's log
//! is a prefix of the stream, so seeing `P` proves that the snapshot held
//! everything written before the listing began; not seeing it means the listing
//! is stale and is run again (at most [`MAX_LISTING_ATTEMPTS`] times, then an
//! error — never a short answer).

use crate::protocol::subject::pattern_matches;

/// Listing attempts before a listing that keeps landing on a lagging replica
/// ends with an error.
pub const MAX_LISTING_ATTEMPTS: u32 = 8;

/// The extra key filter the listing consumer needs so that it delivers the
/// sentinel: `None` when one of `patterns` (key patterns, as
/// `protocol::subject::filter_patterns` makes them) already matches
/// `sentinel_key` (a second, overlapping filter would be refused by the
/// server), else the sentinel key itself.
pub fn sentinel_filter(sentinel_key: &str, patterns: &[String]) -> Option<String> {
    if patterns
        .iter()
        .any(|pattern| pattern_matches(pattern, sentinel_key))
    {
        None
    } else {
        Some(sentinel_key.to_string())
    }
}

/// The sync point a listing is judged against: the stream's last sequence when
/// the stream holds messages (`first_sequence <= last_sequence`) and the message
/// there was found (its key is the sentinel); otherwise 0 — unverified, any
/// answer counts. An empty stream has no key to miss; a last message removed on
/// its own (an age limit empties the stream instead) leaves nothing a replica
/// could prove it holds, and listing again would never change that.
pub fn listing_point(first_sequence: u64, last_sequence: u64, sentinel_found: bool) -> u64 {
    if last_sequence == 0 || first_sequence > last_sequence || !sentinel_found {
        0
    } else {
        last_sequence
    }
}

/// How a listing ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListingVerdict {
    /// The consumer delivered the sync point or later: nothing written before
    /// the listing began is missing.
    Complete,
    /// The consumer's replica was behind: it never delivered the sync point.
    Stale {
        /// The stream's last sequence when the listing began.
        point: u64,
        /// The highest stream sequence the consumer delivered (0 = none).
        highest: u64,
    },
}

/// Pause before listing again after stale attempt `n`: `n` times this.
pub const STALE_LISTING_BACKOFF_MS: u64 = 50;

/// What the executor does after a listing attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListingNext {
    /// The answer stands.
    Done,
    /// Drop this attempt's answer and list again after `after_ms`.
    ListAgain {
        /// Pause before the next attempt.
        after_ms: u64,
    },
    /// End with the "listing incomplete" error: the attempts are spent, or the
    /// caller already holds part of this attempt's answer.
    Fail,
}

/// The step after attempt `attempt` (from 1) ended with `verdict`. `restartable`
/// says whether the attempt's answer can still be thrown away (`keys`, `scan`)
/// or was already handed to the caller (`for_each_key`).
pub fn after_listing(verdict: ListingVerdict, attempt: u32, restartable: bool) -> ListingNext {
    match verdict {
        ListingVerdict::Complete => ListingNext::Done,
        ListingVerdict::Stale { .. } if restartable && attempt < MAX_LISTING_ATTEMPTS => {
            ListingNext::ListAgain {
                after_ms: STALE_LISTING_BACKOFF_MS.saturating_mul(u64::from(attempt)),
            }
        }
        ListingVerdict::Stale { .. } => ListingNext::Fail,
    }
}

/// Tracks one listing attempt against its sync point.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListingSync {
    point: u64,
    highest: u64,
}

impl ListingSync {
    /// A listing that began when the stream's last sequence was `point`
    /// (0 = an empty stream: any answer is complete).
    pub fn new(point: u64) -> Self {
        Self { point, highest: 0 }
    }

    /// A delivery at `stream_sequence` (any kind: values, markers, the sentinel
    /// outside the listing's scope).
    pub fn on_delivery(&mut self, stream_sequence: u64) {
        self.highest = self.highest.max(stream_sequence);
    }

    /// The verdict once the consumer reports nothing pending.
    pub fn verdict(&self) -> ListingVerdict {
        if self.highest >= self.point {
            ListingVerdict::Complete
        } else {
            ListingVerdict::Stale {
                point: self.point,
                highest: self.highest,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sentinel_gets_a_filter_only_when_no_pattern_covers_it() {
        let patterns = vec!["k>".to_string()];
        assert_eq!(
            sentinel_filter("other", &patterns),
            Some("other".to_string())
        );
        let all = vec![">".to_string()];
        assert_eq!(sentinel_filter("other", &all), None);
        let exact = vec!["cfg.a".to_string(), "cfg.b.>".to_string()];
        assert_eq!(sentinel_filter("cfg.a", &exact), None);
        assert_eq!(sentinel_filter("cfg.b.x", &exact), None);
        assert_eq!(sentinel_filter("cfg.c", &exact), Some("cfg.c".to_string()));
    }

    #[test]
    fn a_listing_is_complete_only_once_it_saw_the_sync_point() {
        let mut sync = ListingSync::new(20);
        assert_eq!(
            sync.verdict(),
            ListingVerdict::Stale {
                point: 20,
                highest: 0
            }
        );
        for seq in [3, 9, 19] {
            sync.on_delivery(seq);
        }
        assert_eq!(
            sync.verdict(),
            ListingVerdict::Stale {
                point: 20,
                highest: 19
            }
        );
        sync.on_delivery(20);
        assert_eq!(sync.verdict(), ListingVerdict::Complete);
        // A later delivery (a write after the listing began) keeps it complete,
        // and an out-of-order one never lowers what was seen.
        sync.on_delivery(25);
        sync.on_delivery(4);
        assert_eq!(sync.verdict(), ListingVerdict::Complete);
    }

    #[test]
    fn only_a_stream_with_its_last_message_found_has_a_sync_point() {
        assert_eq!(listing_point(1, 20, true), 20);
        assert_eq!(listing_point(20, 20, true), 20);
        // Every message aged out: first = last + 1.
        assert_eq!(listing_point(3, 2, true), 0);
        assert_eq!(listing_point(3, 2, false), 0);
        assert_eq!(listing_point(0, 0, false), 0);
        // The last message is gone on its own.
        assert_eq!(listing_point(1, 20, false), 0);
    }

    #[test]
    fn a_stale_attempt_lists_again_until_the_attempts_are_spent() {
        let stale = ListingVerdict::Stale {
            point: 9,
            highest: 4,
        };
        assert_eq!(
            after_listing(ListingVerdict::Complete, 1, true),
            ListingNext::Done
        );
        assert_eq!(
            after_listing(ListingVerdict::Complete, 1, false),
            ListingNext::Done
        );
        assert_eq!(
            after_listing(stale, 1, true),
            ListingNext::ListAgain { after_ms: 50 }
        );
        assert_eq!(
            after_listing(stale, MAX_LISTING_ATTEMPTS - 1, true),
            ListingNext::ListAgain {
                after_ms: 50 * u64::from(MAX_LISTING_ATTEMPTS - 1)
            }
        );
        assert_eq!(
            after_listing(stale, MAX_LISTING_ATTEMPTS, true),
            ListingNext::Fail
        );
        // Keys already handed to the caller cannot be taken back.
        assert_eq!(after_listing(stale, 1, false), ListingNext::Fail);
    }

    #[test]
    fn an_empty_stream_is_complete_at_once() {
        assert_eq!(ListingSync::new(0).verdict(), ListingVerdict::Complete);
    }
}
