//! The expiry path: a resumed watch reports `CursorExpired`.

use super::*;
use crate::common::expiring::{CREATED_MS as CREATED, Expiring, status};
use crate::common::updates::put;

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
    let watcher = Arc::new(Expiring::new(
        Vec::new(),
        vec![put("new", 1), put("newer", 2995)],
        vec![status(CREATED, 1, 3200), status(CREATED + 5_000, 1, 2995)],
    ));
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
    let watcher = Arc::new(Expiring::new(
        Vec::new(),
        vec![put("a", 4000), put("b", 4001)],
        vec![status(CREATED, 4000, 4001)],
    ));
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
