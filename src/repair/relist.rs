//! Relist repair I/O (docs/protocols/repair.md, "Repair I/O: listing, sorting, diffs"): the live
//! key listing streamed into the external sorter, the merge-join of the fold against it,
//! and the correction chunks. The per-key and prefix rules are `protocol::repair`'s.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, sync_channel};

use super::error::{RepairIoError, RepairKind};
use super::sorter::{KeySorter, SortedKeys};
use crate::kv::{KvReader, KvUpdate, VersionToken};
use crate::protocol::repair::{SortedListing, disjoint_prefixes};
use crate::snapshot::{SnapshotError, SnapshotStore};

/// Keys in flight between a listing and its sorter.
pub(crate) const LISTING_CHANNEL_KEYS: usize = 8192;

/// Lists every live key under `disjoint_prefixes(scope)` and sorts the listing on a
/// blocking thread (runs of `run_bytes_max`, spilled into `scratch`, `None` = the system
/// temp dir). The listing pushes into a bounded channel of [`LISTING_CHANNEL_KEYS`]
/// keys: when the sorter falls behind (writing a run), the listing waits for it.
///
/// A listing error fails with the prefix named; a partial listing is never returned.
pub(crate) async fn sort_listing(
    repair: RepairKind,
    reader: &dyn KvReader,
    scope: &[String],
    scratch: Option<PathBuf>,
    run_bytes_max: usize,
) -> Result<SortedKeys, RepairIoError> {
    let (tx, rx) = sync_channel::<String>(LISTING_CHANNEL_KEYS);
    let sorter =
        tokio::task::spawn_blocking(move || sort_received(repair, rx, scratch, run_bytes_max));
    let mut listed = Ok(());
    for prefix in disjoint_prefixes(scope) {
        // A send fails only when the sorter stopped on an error; its join reports it.
        let mut sorter_gone = false;
        let result = reader
            .for_each_key(&prefix, &mut |key| {
                if !sorter_gone && tx.send(key).is_err() {
                    sorter_gone = true;
                }
            })
            .await;
        if let Err(source) = result {
            listed = Err(RepairIoError::Listing {
                repair,
                prefix,
                source,
            });
            break;
        }
        if sorter_gone {
            break;
        }
    }
    drop(tx);
    let sorted = sorter.await.map_err(|e| RepairIoError::Task {
        repair,
        step: "sorting the key listing",
        detail: if e.is_panic() {
            "the sorter thread panicked".to_string()
        } else {
            "the sorter task was cancelled".to_string()
        },
    })?;
    listed?;
    sorted
}

/// The sorter's side of [`sort_listing`]: every received key, then the sorted output.
/// An error drops the receiver, which stops the listing's sends.
fn sort_received(
    repair: RepairKind,
    rx: Receiver<String>,
    scratch: Option<PathBuf>,
    run_bytes_max: usize,
) -> Result<SortedKeys, RepairIoError> {
    let mut sorter = KeySorter::new(repair, scratch, run_bytes_max);
    for key in rx {
        sorter.push(key)?;
    }
    sorter.finish()
}

/// The stale keys of a relist: every fold key under `disjoint_prefixes(scope)` that the
/// ascending `listing` does not hold, ascending. Walks the store once per prefix
/// (ascending, so probes into the listing ascend); holds only the stale keys.
pub(crate) fn relist_stale<S, I>(
    store: &S,
    scope: &[String],
    listing: I,
) -> Result<Vec<String>, RepairIoError>
where
    S: SnapshotStore,
    I: Iterator<Item = Result<String, RepairIoError>>,
{
    let mut listing = SortedListing::new(listing);
    let mut stale = Vec::new();
    for prefix in disjoint_prefixes(scope) {
        let mut listing_error = None;
        let walked = store.for_each_in_range(&prefix, |entry| {
            match listing.contains(&entry.key) {
                Ok(true) => {}
                Ok(false) => stale.push(entry.key),
                Err(e) => {
                    listing_error = Some(e);
                    return Err(SnapshotError::Backend("the sorted listing failed".into()));
                }
            }
            Ok(())
        });
        if let Some(e) = listing_error {
            return Err(e);
        }
        walked.map_err(|source| RepairIoError::Fold {
            repair: RepairKind::Relist,
            step: "reading the local fold",
            source,
        })?;
    }
    Ok(stale)
}

/// Synthetic deletes for keys the fold must drop (relist stale keys, restore delete
/// candidates), in chunks.
#[derive(Debug)]
pub(crate) struct DeleteChunks {
    keys: std::vec::IntoIter<String>,
}

impl DeleteChunks {
    /// Deletes for `keys`, in the given order.
    pub(crate) fn new(keys: Vec<String>) -> Self {
        Self {
            keys: keys.into_iter(),
        }
    }

    #[cfg(test)]
    /// Keys not yet handed out.
    pub(crate) fn remaining(&self) -> usize {
        self.keys.len()
    }

    /// The next at most `max` (at least 1) keys as `Delete { key, unknown version }`
    /// (an unknown version never moves the cursor); empty when all were handed out.
    pub(crate) fn next_chunk(&mut self, max: usize) -> Vec<KvUpdate> {
        self.keys
            .by_ref()
            .take(max.max(1))
            .map(|key| KvUpdate::Delete {
                key,
                version: VersionToken::unknown(),
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "relist_tests.rs"]
mod tests;
