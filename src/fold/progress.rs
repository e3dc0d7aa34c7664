//! `FoldProgress`: a lag accessor (docs/watch-applied.md, "`FoldProgress`"). Records
//! applied cursors through a wrapped `on_applied` and the bucket head on demand; the fold
//! loop itself never polls the bucket.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::kv::{KvError, KvWatcher, WatchCursor};

/// Applied revision and bucket head of a fold (0 = unknown). Clones share the cells.
#[derive(Clone, Debug, Default)]
pub struct FoldProgress {
    cells: Arc<(AtomicU64, AtomicU64)>,
}

impl FoldProgress {
    /// Nothing known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps an `on_applied` callback: records each cursor's revision, then calls it.
    pub fn track<O>(&self, mut on_applied: O) -> impl FnMut(WatchCursor) + Send + use<O>
    where
        O: FnMut(WatchCursor) + Send,
    {
        let cells = Arc::clone(&self.cells);
        move |cursor: WatchCursor| {
            if let Some(rev) = cursor.as_u64() {
                cells.0.store(rev, Ordering::Relaxed);
            }
            on_applied(cursor);
        }
    }

    /// The last applied revision seen by [`track`](FoldProgress::track).
    pub fn applied_revision(&self) -> Option<u64> {
        Some(self.cells.0.load(Ordering::Relaxed)).filter(|&r| r != 0)
    }

    /// Records the bucket's last revision (kept as a running maximum).
    pub fn record_head(&self, last_revision: u64) {
        self.cells.1.fetch_max(last_revision, Ordering::Relaxed);
    }

    /// The bucket head, when recorded.
    pub fn head_revision(&self) -> Option<u64> {
        Some(self.cells.1.load(Ordering::Relaxed)).filter(|&r| r != 0)
    }

    /// `head − applied`, saturating; `None` until both are known.
    pub fn lag(&self) -> Option<u64> {
        Some(
            self.head_revision()?
                .saturating_sub(self.applied_revision()?),
        )
    }

    /// Records `watcher.last_revision()` when it reports one, then returns [`lag`](FoldProgress::lag).
    pub async fn refresh(&self, watcher: &dyn KvWatcher) -> Result<Option<u64>, KvError> {
        if let Some(head) = watcher.last_revision().await? {
            self.record_head(head);
        }
        Ok(self.lag())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_needs_both_ends() {
        let p = FoldProgress::new();
        assert_eq!(p.lag(), None);
        let mut seen = Vec::new();
        {
            let mut track = p.track(|c: WatchCursor| seen.push(c.rank()));
            track(WatchCursor::from_u64(7));
        }
        assert_eq!(seen, vec![7]);
        assert_eq!(p.lag(), None);
        p.record_head(10);
        p.record_head(9);
        assert_eq!((p.head_revision(), p.lag()), (Some(10), Some(3)));
    }
}
