//! The expiry path: a resumed watch reports `CursorExpired`.

use std::collections::VecDeque;

use async_trait::async_trait;
use kvfold::{BucketStatus, KvEntry, Retention, VersionToken};
use tokio::sync::mpsc::Sender;

use super::*;

const CREATED: u64 = 1_767_225_600_000;

/// A bucket whose resumed watch always reports the cursor expired, whose
/// state-sync watch delivers `listing`, and whose status readings are
/// `statuses` in turn (the last one repeats).
struct Expiring {
    statuses: Mutex<VecDeque<BucketStatus>>,
    listing: Vec<KvUpdate>,
}

fn status(created: u64, first: u64, last: u64) -> BucketStatus {
    BucketStatus::new(
        "cfg",
        first,
        last,
        created,
        Retention {
            evicts_current_values: false,
            first_revision: first,
        },
    )
}

fn put(key: &str, rev: u64) -> KvUpdate {
    KvUpdate::Put(KvEntry {
        key: key.to_string(),
        value: b"v".to_vec(),
        version: VersionToken::from_u64(rev),
    })
}

#[async_trait]
impl KvWatcher for Expiring {
    async fn watch_all(&self, tx: Sender<KvUpdate>) -> Result<(), KvError> {
        for update in &self.listing {
            if tx.send(update.clone()).await.is_err() {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn watch_prefix(&self, _p: &str, tx: Sender<KvUpdate>) -> Result<(), KvError> {
        self.watch_all(tx).await
    }

    async fn watch_prefixes(&self, _p: &[&str], tx: Sender<KvUpdate>) -> Result<(), KvError> {
        self.watch_all(tx).await
    }

    async fn watch_all_from(
        &self,
        _cursor: &WatchCursor,
        _tx: Sender<KvUpdate>,
    ) -> Result<(), KvError> {
        Err(KvError::CursorExpired)
    }

    fn bucket_name(&self) -> Option<&str> {
        Some("cfg")
    }

    async fn status(&self) -> Result<Option<BucketStatus>, KvError> {
        let mut statuses = self.statuses.lock().unwrap();
        let next = if statuses.len() > 1 {
            statuses.pop_front()
        } else {
            statuses.front().cloned()
        };
        Ok(next)
    }
}

/// A store at cursor 3123 that recorded `cfg` created at `CREATED`.
fn store_at_3123(path: &Path) -> AppendLogSnapshot {
    let (_, mut store) = open(path);
    store
        .record_bucket_identity(&BucketIdentity::new("cfg", CREATED))
        .unwrap();
    store
        .apply(&[put("old", 3000)], &WatchCursor::from_u64(3123))
        .unwrap();
    store
}

#[tokio::test]
async fn a_bucket_recreated_after_the_start_check_is_refused_on_expiry_not_relisted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    let store = store_at_3123(&path);
    // At start the bucket is still the recorded one (head 3200); by the time
    // the resumed watch runs it was recreated and holds revisions 1..=2995.
    let watcher = Arc::new(Expiring {
        statuses: Mutex::new(VecDeque::from([
            status(CREATED, 1, 3200),
            status(CREATED + 5_000, 1, 2995),
        ])),
        listing: vec![put("new", 1), put("newer", 2995)],
    });
    let cursor = WatchCursor::from_u64(3123);
    let (end, seen) = run(watcher, Some(cursor.clone()), store, 2995, None).await;
    assert_identity_refusal(&end);
    assert_eq!(seen.count(), 0, "nothing re-listed");
    assert_eq!(end.applied, cursor, "the committed cursor never moves back");
    let store = end.store.expect("store back");
    assert_eq!(store.cursor(), cursor);
    assert_eq!(store.range("new").unwrap().len(), 0, "no keys mixed in");
}

#[tokio::test]
async fn a_cursor_below_the_floor_of_the_same_bucket_still_relists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    let store = store_at_3123(&path);
    let watcher = Arc::new(Expiring {
        statuses: Mutex::new(VecDeque::from([status(CREATED, 4000, 4001)])),
        listing: vec![put("a", 4000), put("b", 4001)],
    });
    let (end, seen) = run(
        watcher,
        Some(WatchCursor::from_u64(3123)),
        store,
        4001,
        None,
    )
    .await;
    assert_eq!(end.result, Ok(WatchCursor::from_u64(4001)));
    assert_eq!(seen.count(), 2);
}
