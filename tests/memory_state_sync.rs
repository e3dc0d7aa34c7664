//! Issue 9, defect 5 on the embedded backend: a state-sync watch that reconnects in its
//! snapshot phase (partition, then heal) keeps delivering latest values and never replays
//! the superseded revisions between its frontier and the snapshot's end
//! (docs/protocols/resume-guard.md, "The machine" G22).

use std::sync::Arc;
use std::time::Duration;

use kvfold::{Connection, KvStore, MemoryConfig, MemoryConnection};

mod common;

use common::state_sync::{receive_until, write_superseded_history};
use common::watch::watch_all;

const WAIT: Duration = Duration::from_secs(5);

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
    let expected = write_superseded_history(writer.as_ref()).await;

    let (mut rx, task) = watch_all(&store, None, 1);
    let mut got = Vec::new();
    receive_until(&mut rx, &mut got, 1, WAIT).await;
    // The watch is blocked on back-pressure a few entries into its snapshot.
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.faults().partition();
    conn.faults().heal();
    receive_until(&mut rx, &mut got, expected.len(), WAIT).await;
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
