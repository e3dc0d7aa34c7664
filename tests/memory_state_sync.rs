//! Issue 9, defect 5 on the embedded backend: a state-sync watch that reconnects
//! in its snapshot phase (partition, then heal) keeps delivering latest values and
//! never replays the superseded revisions between its frontier and the snapshot's
//! end (protocol.md §3.4 G22).

use std::sync::Arc;
use std::time::Duration;

use kvfold::{Connection, KvStore, KvUpdate, MemoryConfig, MemoryConnection};
use tokio::sync::mpsc;

mod common;

const WAIT: Duration = Duration::from_secs(5);

fn brief(update: &KvUpdate) -> (String, u64) {
    (
        update.key().to_string(),
        update
            .version()
            .as_u64()
            .expect("memory versions are revisions"),
    )
}

#[tokio::test]
async fn a_state_sync_watch_reconnected_in_its_snapshot_phase_delivers_only_latest_values() {
    let conn = MemoryConnection::with_config(MemoryConfig::new());
    conn.connect().await.unwrap();
    let store: Arc<dyn KvStore> = conn
        .store_with_config(common::config::bucket("sync", 10))
        .await
        .unwrap();
    let writer = store.writer().unwrap();
    // x0..x9 at revisions 1–10, then y three times (11–13) and z (14).
    for i in 0..10 {
        writer.put(&format!("x{i}"), b"x").await.unwrap();
    }
    for v in [b"1", b"2", b"3"] {
        writer.put("y", v).await.unwrap();
    }
    writer.put("z", b"z").await.unwrap();
    let mut expected: Vec<(String, u64)> = (0..10).map(|i| (format!("x{i}"), i + 1)).collect();
    expected.push(("y".into(), 13));
    expected.push(("z".into(), 14));

    let (tx, mut rx) = mpsc::channel(1);
    let watcher = store.watcher().unwrap();
    let task = tokio::spawn(async move { watcher.watch_all(tx).await });
    let mut got = Vec::new();
    let first = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    got.push(brief(&first));
    // The watch is blocked on back-pressure a few entries into its snapshot.
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.faults().partition();
    conn.faults().heal();
    while got.len() < expected.len() {
        let update = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("stalled after {got:?}"))
            .expect("watch runs");
        got.push(brief(&update));
    }
    assert_eq!(
        got, expected,
        "a state-sync watch delivers the latest entry of every key, never history"
    );
    // Nothing else follows (no superseded revision arrives late).
    assert!(
        tokio::time::timeout(Duration::from_millis(200), rx.recv())
            .await
            .is_err(),
        "nothing after the snapshot"
    );
    task.abort();
}
