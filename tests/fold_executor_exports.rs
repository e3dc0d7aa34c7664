//! `watch_applied` executor tests of docs/watch-applied.md, "Executor tests" 5 and 6 on a scripted
//! watcher: export requests, an export task that panics or fails, an empty
//! store's artifact, and a dropped export sender.

use std::time::Duration;

use kvfold::{ExportRequest, KvError, SnapshotStore, WatchCursor, WatchScope};
use tokio::sync::{mpsc, oneshot};

mod common;

use common::fold::{
    HOUR, Probe, accept_all, append_log, cfg, export, keys, manifest_scope_on_disk, start,
};
use common::scripted::Scripted;
use common::store::{ExportMode, TestStore};
use common::updates::put;
use common::wait::wait_for;

// ---------------------------------------------------------------------------
// Exports (items 5 and 6).
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_panicking_export_task_ends_the_run_and_loses_the_store() {
    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    let store = TestStore::default();
    store.ctl.lock().unwrap().export = ExportMode::Panic;
    let commits = store.commits();
    let (export_tx, exports) = mpsc::channel(1);
    let (run, _shutdown) = start(
        watcher,
        WatchScope::All,
        None,
        Some(store),
        Some(exports),
        cfg(HOUR, 100),
        &probe,
        accept_all,
    );
    feed.send(put("k1", 1));
    wait_for("parsed", || probe.parses() == 1).await;
    let (reply, answer) = oneshot::channel();
    export_tx
        .send(ExportRequest {
            dest_dir: std::env::temp_dir().join("kvfold-never-exported"),
            reply,
        })
        .await
        .unwrap();
    let end = run.await.unwrap();
    assert!(answer.await.is_err(), "the request is dropped unanswered");
    match &end.result {
        Err(KvError::WatchError(m)) => {
            assert!(m.starts_with("snapshot export task panicked: "), "{m}");
            assert!(m.contains("export exploded"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert!(end.store.is_none(), "the store died with the task");
    assert_eq!(
        commits.lock().unwrap().clone(),
        vec![(keys(&["k1"]), 1)],
        "flushed first"
    );
    assert_eq!(end.applied.rank(), 1);
}

#[tokio::test]
async fn an_empty_store_exports_and_the_artifact_imports_with_its_scope() {
    let dir = tempfile::tempdir().unwrap();
    let (watcher, _feed) = Scripted::new();
    let probe = Probe::new();
    let (export_tx, exports) = mpsc::channel(1);
    let prefixes = vec!["orders.".to_string(), "users.".to_string()];
    let (run, shutdown) = start(
        watcher,
        WatchScope::Prefixes(prefixes.clone()),
        None,
        Some(append_log(dir.path(), "fold.snap")),
        Some(exports),
        cfg(5, 100),
        &probe,
        accept_all,
    );
    let dest = dir.path().join("artifact");
    let manifest = export(&export_tx, &dest).await.unwrap();
    assert!(manifest.cursor.is_none());
    assert_eq!(manifest.scope, Some(prefixes.clone()));
    assert_eq!(
        manifest_scope_on_disk(&dest),
        serde_json::json!(["orders.", "users."])
    );
    let (cursor, imported) =
        kvfold::AppendLogSnapshot::import(&dest, &dir.path().join("replica.snap"), 1 << 20)
            .unwrap();
    assert!(cursor.is_none());
    assert!(imported.range("").unwrap().is_empty());
    assert!(!imported.has_entries().unwrap());
    shutdown.send(true).unwrap();
    let end = run.await.unwrap();
    assert_eq!(end.result, Ok(WatchCursor::none()));
    assert!(end.store.is_some());
}

#[tokio::test]
async fn an_export_error_leaves_the_run_going() {
    let dir = tempfile::tempdir().unwrap();
    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    let (export_tx, exports) = mpsc::channel(1);
    let (run, shutdown) = start(
        watcher,
        WatchScope::All,
        None,
        Some(append_log(dir.path(), "fold.snap")),
        Some(exports),
        cfg(HOUR, 100),
        &probe,
        accept_all,
    );
    feed.send(put("k1", 1));
    wait_for("parsed", || probe.parses() == 1).await;
    // A non-empty destination is refused; the error goes to the reply only.
    let occupied = dir.path().join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("someone-elses-file"), b"x").unwrap();
    assert!(export(&export_tx, &occupied).await.is_err());
    // A request whose reply receiver is gone is served and ignored.
    let (reply, answer) = oneshot::channel();
    drop(answer);
    export_tx
        .send(ExportRequest {
            dest_dir: dir.path().join("unanswered"),
            reply,
        })
        .await
        .unwrap();
    // The run goes on: it ingests, flushes and serves the next export.
    feed.send(put("k2", 2));
    wait_for("parsed", || probe.parses() == 2).await;
    let manifest = export(&export_tx, &dir.path().join("good")).await.unwrap();
    assert_eq!(manifest.cursor.rank(), 2);
    assert!(!run.is_finished());
    shutdown.send(true).unwrap();
    let end = run.await.unwrap();
    assert_eq!(end.result, Ok(WatchCursor::from_u64(2)));
    assert_eq!(probe.batches().concat(), keys(&["k1", "k2"]));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_export_sender_disarms_exports() {
    // With the arm still armed on a closed channel the loop would spin and the
    // paused clock would never reach the window; disarmed, the window fires.
    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    let (export_tx, exports) = mpsc::channel::<ExportRequest>(1);
    let (run, shutdown) = start(
        watcher,
        WatchScope::All,
        None,
        Some(TestStore::default()),
        Some(exports),
        cfg(100, 100),
        &probe,
        accept_all,
    );
    drop(export_tx);
    tokio::time::sleep(Duration::from_millis(10)).await;
    feed.send(put("k1", 1));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(probe.timed_batches(), vec![(110, keys(&["k1"]))]);
    assert!(
        !run.is_finished(),
        "a closed export channel does not end the run"
    );
    shutdown.send(true).unwrap();
    let end = run.await.unwrap();
    assert_eq!(end.result, Ok(WatchCursor::from_u64(1)));
}
