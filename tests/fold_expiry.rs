//! The fold machine's arming step and its expiry row K1, end to end through
//! `watch_applied_owned` (docs/protocols/fold-machine.md, "Arming and expiry"):
//! a restore without a store is refused at start with the arming text; on `CursorExpired` the watch task reports, the
//! machine answers, and what the resumed watch forwarded before the expiry is
//! applied and committed ahead of a re-list, or before the run ends with an
//! identity refusal.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kvfold::protocol::identity::{BucketIdentity, is_identity_refusal};
use kvfold::{
    AppendLogSnapshot, BatchConfig, ExpiryRepair, ExportManifest, KvError, KvUpdate,
    MemoryConnection, RestoreSource, RestoredFold, SnapshotError, SnapshotStore, WatchCursor,
    WatchEnd, WatchScope, watch_applied_owned,
};
use tokio::sync::watch;

mod common;

use common::expiring::{CREATED_MS, Expiring, status};
use common::updates::put;

fn keys(updates: &[KvUpdate]) -> Vec<String> {
    updates.iter().map(|u| u.key().to_string()).collect()
}

/// A store at cursor 3 that recorded `cfg` created at `CREATED_MS`.
fn store_at_3(path: &Path) -> AppendLogSnapshot {
    let (_, mut store) = AppendLogSnapshot::open(path, 1 << 20).expect("opens");
    store
        .record_bucket_identity(&BucketIdentity::new("cfg", CREATED_MS))
        .unwrap();
    store
        .apply(&[put("old", 3)], &WatchCursor::from_u64(3))
        .unwrap();
    store
}

/// Runs with a store from cursor 3, until `on_applied` reaches `until` (a
/// shutdown) or the run ends by itself; returns the end and what `apply` saw.
async fn run(
    watcher: Arc<Expiring>,
    repair: ExpiryRepair<AppendLogSnapshot>,
    store: Option<AppendLogSnapshot>,
    until: u64,
) -> (WatchEnd<AppendLogSnapshot>, Vec<KvUpdate>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let applied = Arc::clone(&seen);
    let (stop_tx, stop_rx) = watch::channel(false);
    let fut = watch_applied_owned(
        watcher,
        WatchScope::All,
        Some(WatchCursor::from_u64(3)),
        repair,
        store,
        None,
        BatchConfig {
            window: Duration::from_millis(5),
            max: 64,
            channel_capacity: 16,
        },
        |u: &KvUpdate| Some(u.clone()),
        move |updates: Vec<KvUpdate>| applied.lock().unwrap().extend(updates),
        move |c: WatchCursor| {
            if c.rank() >= until {
                let _ = stop_tx.send(true);
            }
        },
        stop_rx,
    );
    let end = tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("the run ends within 20 s");
    let seen = seen.lock().unwrap().clone();
    (end, seen)
}

#[tokio::test]
async fn updates_forwarded_before_an_expiry_are_applied_ahead_of_the_relist() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_at_3(&dir.path().join("fold.snap"));
    let watcher = Arc::new(Expiring::new(
        vec![put("a", 4), put("b", 5)],
        vec![put("c", 10), put("d", 11)],
        vec![status(CREATED_MS, 8, 11)],
    ));
    let (end, seen) = run(Arc::clone(&watcher), ExpiryRepair::None, Some(store), 11).await;
    assert_eq!(end.result, Ok(WatchCursor::from_u64(11)));
    assert_eq!(keys(&seen), ["a", "b", "c", "d"]);
    assert_eq!(
        watcher.watches.load(Ordering::SeqCst),
        2,
        "resumed, then re-listed"
    );
    let store = end.store.expect("store back");
    assert_eq!(store.cursor(), WatchCursor::from_u64(11));
    for key in ["a", "b", "c", "d"] {
        assert_eq!(store.range(key).unwrap().len(), 1, "{key} is in the fold");
    }
}

#[tokio::test]
async fn a_refused_expiry_commits_what_came_before_it_and_never_relists() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_at_3(&dir.path().join("fold.snap"));
    // At start the bucket is the recorded one; at the expiry it was recreated.
    let watcher = Arc::new(Expiring::new(
        vec![put("a", 4), put("b", 5)],
        vec![put("new", 1)],
        vec![status(CREATED_MS, 1, 5), status(CREATED_MS + 5_000, 1, 1)],
    ));
    let (end, seen) = run(Arc::clone(&watcher), ExpiryRepair::None, Some(store), 99).await;
    match &end.result {
        Err(e) if is_identity_refusal(e) => {}
        other => panic!("expected a bucket identity refusal, got {other:?}"),
    }
    assert_eq!(keys(&seen), ["a", "b"], "nothing re-listed");
    assert_eq!(watcher.watches.load(Ordering::SeqCst), 1);
    assert_eq!(end.applied, WatchCursor::from_u64(5));
    let store = end.store.expect("store back");
    assert_eq!(store.cursor(), WatchCursor::from_u64(5));
    assert_eq!(store.range("new").unwrap().len(), 0);
}

/// A restore source that is never asked (the run is refused before it starts).
struct NoArtifacts;

#[async_trait]
impl RestoreSource<AppendLogSnapshot> for NoArtifacts {
    async fn latest(&self) -> Result<ExportManifest, SnapshotError> {
        Err(SnapshotError::Backend("no artifacts".into()))
    }

    async fn fetch(&self) -> Result<RestoredFold<AppendLogSnapshot>, SnapshotError> {
        Err(SnapshotError::Backend("no artifacts".into()))
    }
}

#[tokio::test]
async fn a_restore_or_auto_repair_without_a_store_is_refused_before_anything_is_watched() {
    let conn = MemoryConnection::new();
    kvfold::Connection::connect(&conn).await.unwrap();
    let bucket = kvfold::Connection::store(&conn, "refused").await.unwrap();
    let reader = bucket.reader();
    let source: Arc<dyn RestoreSource<AppendLogSnapshot>> = Arc::new(NoArtifacts);
    let needs_store = "a restore repair replaces the fold and needs a snapshot store; pass a \
                       store or use ExpiryRepair::None";
    let modes: Vec<ExpiryRepair<AppendLogSnapshot>> = vec![
        ExpiryRepair::Restore {
            reader: Arc::clone(&reader),
            restore: Arc::clone(&source),
        },
        ExpiryRepair::Auto {
            reader: Arc::clone(&reader),
            restore: Arc::clone(&source),
        },
    ];
    for repair in modes {
        let watcher = Arc::new(Expiring::new(
            vec![],
            vec![],
            vec![status(CREATED_MS, 1, 5)],
        ));
        let (end, seen) = run(Arc::clone(&watcher), repair, None, 99).await;
        assert_eq!(
            end.result,
            Err(KvError::WatchError(needs_store.to_string()))
        );
        assert_eq!(end.applied, WatchCursor::from_u64(3));
        assert!(seen.is_empty());
        assert_eq!(watcher.watches.load(Ordering::SeqCst), 0, "nothing watched");
        assert!(end.store.is_none());
    }
}
