//! The `watch_applied` executor (docs/watch-applied.md, "Executor tests") over the embedded
//! backend and an in-memory snapshot store with injectable failures.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvfold::{
    BatchConfig, Connection, ExpiryRepair, ExportRequest, FoldProgress, KvError, KvUpdate,
    KvWatcher, MemoryConnection, RestoreSource, SnapshotError, WatchCursor, WatchScope,
    watch_applied, watch_applied_owned,
};
use tokio::sync::{mpsc, oneshot, watch};

mod common;

use common::fold::{cfg, memory_bucket as bucket};
use common::store::TestStore;
use common::wait::wait_for;

type Seen = Arc<Mutex<Vec<String>>>;

fn parse_value(update: &KvUpdate) -> Option<String> {
    match update {
        KvUpdate::Put(e) => Some(format!("{}={}", e.key, String::from_utf8_lossy(&e.value))),
        KvUpdate::Delete { key, .. } | KvUpdate::Purge { key, .. } => {
            Some(format!("{key}=<deleted>"))
        }
    }
}

#[tokio::test]
async fn on_applied_sees_a_cursor_only_after_apply_returned() {
    let (_conn, store) = bucket("order").await;
    let writer = store.writer().unwrap();
    for i in 0..5 {
        writer.put(&format!("k{i}"), b"v").await.unwrap();
    }
    let log: Seen = Arc::default();
    let (shutdown_tx, shutdown) = watch::channel(false);
    let (apply_log, applied_log) = (Arc::clone(&log), Arc::clone(&log));
    let run = tokio::spawn(watch_applied(
        store.watcher().unwrap(),
        WatchScope::All,
        None,
        None,
        None::<TestStore>,
        None,
        cfg(5, 2),
        parse_value,
        move |batch: Vec<String>| {
            apply_log
                .lock()
                .unwrap()
                .push(format!("apply {}", batch.len()))
        },
        move |c: WatchCursor| {
            applied_log
                .lock()
                .unwrap()
                .push(format!("applied {}", c.rank()))
        },
        shutdown,
    ));
    wait_for("all five applied", || {
        log.lock().unwrap().iter().any(|l| l == "applied 5")
    })
    .await;
    shutdown_tx.send(true).unwrap();
    assert_eq!(
        run.await.unwrap(),
        Ok(WatchCursor::from_u64(5).remembering(false))
    );
    let log = log.lock().unwrap().clone();
    // Every "applied N" follows the apply of the batch that holds revision N.
    let mut applied_count = 0usize;
    for line in &log {
        if let Some(n) = line.strip_prefix("apply ") {
            applied_count += n.parse::<usize>().unwrap();
        } else if let Some(rev) = line.strip_prefix("applied ") {
            assert!(rev.parse::<usize>().unwrap() <= applied_count, "{log:?}");
        }
    }
}

#[tokio::test]
async fn a_transient_store_failure_requeues_and_the_result_is_the_store_cursor() {
    let (_conn, store) = bucket("fail").await;
    let writer = store.writer().unwrap();
    writer.put("a", b"1").await.unwrap();
    let test_store = TestStore::default();
    let ctl = Arc::clone(&test_store.ctl);
    let batches = test_store.commits();
    ctl.lock().unwrap().fail_next = 1;
    let (shutdown_tx, shutdown) = watch::channel(false);
    let seen: Seen = Arc::default();
    let seen_in = Arc::clone(&seen);
    let run = tokio::spawn(watch_applied_owned(
        store.watcher().unwrap(),
        WatchScope::All,
        None,
        None,
        Some(test_store),
        None,
        cfg(5, 100),
        parse_value,
        move |batch: Vec<String>| seen_in.lock().unwrap().extend(batch),
        |_c| {},
        shutdown,
    ));
    wait_for("the first value applied", || {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    // The failed batch waits for the next flush; a new write triggers one.
    writer.put("b", b"2").await.unwrap();
    wait_for("a cumulative commit", || {
        !batches.lock().unwrap().is_empty()
    })
    .await;
    shutdown_tx.send(true).unwrap();
    let end = run.await.unwrap();
    let batches = batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 1, "one cumulative commit: {batches:?}");
    let keys: Vec<&str> = batches[0].0.iter().map(String::as_str).collect();
    assert_eq!(
        keys,
        vec!["a", "b"],
        "the failed batch first, then the newer update"
    );
    assert_eq!(batches[0].1, 2);
    assert_eq!(end.result.unwrap().rank(), 2);
    assert_eq!(end.applied.rank(), 2);
    assert!(end.store.is_some());
}

#[tokio::test]
async fn a_panicking_store_ends_the_run_and_loses_the_store() {
    let (_conn, store) = bucket("panic").await;
    store.writer().unwrap().put("a", b"1").await.unwrap();
    let test_store = TestStore::default();
    test_store.ctl.lock().unwrap().panic_next = true;
    let (_shutdown_tx, shutdown) = watch::channel(false);
    let end = watch_applied_owned(
        store.watcher().unwrap(),
        WatchScope::All,
        None,
        None,
        Some(test_store),
        None,
        cfg(1, 100),
        parse_value,
        |_b: Vec<String>| {},
        |_c| {},
        shutdown,
    )
    .await;
    match end.result {
        Err(KvError::WatchError(m)) => assert!(m.contains("snapshot store task panicked"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(end.store.is_none());
}

#[tokio::test]
async fn export_without_a_store_replies_an_error_and_the_run_goes_on() {
    let (_conn, store) = bucket("exp").await;
    let (export_tx, exports) = mpsc::channel(1);
    let (shutdown_tx, shutdown) = watch::channel(false);
    let run = tokio::spawn(watch_applied(
        store.watcher().unwrap(),
        WatchScope::All,
        None,
        None,
        None::<TestStore>,
        Some(exports),
        cfg(5, 100),
        parse_value,
        |_b: Vec<String>| {},
        |_c| {},
        shutdown,
    ));
    let (reply, answer) = oneshot::channel();
    export_tx
        .send(ExportRequest {
            dest_dir: std::env::temp_dir().join("kvfold-never-written"),
            reply,
        })
        .await
        .unwrap();
    match answer.await.unwrap() {
        Err(SnapshotError::Backend(m)) => assert!(m.contains("no snapshot store"), "{m}"),
        other => panic!("{other:?}"),
    }
    drop(export_tx);
    store.writer().unwrap().put("k", b"v").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    shutdown_tx.send(true).unwrap();
    assert_eq!(
        run.await.unwrap().unwrap().rank(),
        1,
        "the run went on after the export"
    );
}

#[tokio::test]
async fn a_shutdown_already_requested_returns_at_once() {
    let (_conn, store) = bucket("early").await;
    let (shutdown_tx, shutdown) = watch::channel(true);
    let end = watch_applied_owned(
        store.watcher().unwrap(),
        WatchScope::All,
        Some(WatchCursor::from_u64(7)),
        None,
        None::<TestStore>,
        None,
        BatchConfig::default(),
        parse_value,
        |_b: Vec<String>| panic!("nothing may be applied"),
        |_c| {},
        shutdown,
    )
    .await;
    drop(shutdown_tx);
    assert_eq!(end.result.unwrap().rank(), 7);
}

#[tokio::test]
async fn dropping_the_shutdown_sender_ends_the_run_and_false_does_not() {
    let (_conn, store) = bucket("drop").await;
    let (shutdown_tx, shutdown) = watch::channel(false);
    let run = tokio::spawn(watch_applied(
        store.watcher().unwrap(),
        WatchScope::All,
        None,
        None,
        None::<TestStore>,
        None,
        cfg(5, 100),
        parse_value,
        |_b: Vec<String>| {},
        |_c| {},
        shutdown,
    ));
    shutdown_tx.send(false).unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(
        !run.is_finished(),
        "a change to false does not stop the run"
    );
    drop(shutdown_tx);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .unwrap()
            .unwrap()
            .is_ok()
    );
}

#[tokio::test]
async fn restore_repairs_without_a_store_are_refused_at_start() {
    let (_conn, store) = bucket("refuse").await;
    let (_tx, shutdown) = watch::channel(false);
    let reader = store.reader();
    let source: Arc<dyn RestoreSource<TestStore>> = Arc::new(NoArtifacts);
    let end = watch_applied_owned(
        store.watcher().unwrap(),
        WatchScope::All,
        None,
        ExpiryRepair::Restore {
            reader,
            restore: source,
        },
        None::<TestStore>,
        None,
        BatchConfig::default(),
        parse_value,
        |_b: Vec<String>| {},
        |_c| {},
        shutdown,
    )
    .await;
    match end.result {
        Err(KvError::WatchError(m)) => assert!(m.contains("needs a snapshot store"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// A restore source that is never asked (the run is refused before it starts).
struct NoArtifacts;

#[async_trait::async_trait]
impl RestoreSource<TestStore> for NoArtifacts {
    async fn latest(&self) -> Result<kvfold::ExportManifest, SnapshotError> {
        Err(SnapshotError::Backend("no artifacts".into()))
    }

    async fn fetch(&self) -> Result<kvfold::RestoredFold<TestStore>, SnapshotError> {
        Err(SnapshotError::Backend("no artifacts".into()))
    }
}

#[tokio::test]
async fn an_expired_cursor_falls_back_to_a_full_watch_with_expiry_repair_none() {
    let (conn, store) = bucket("expired").await;
    let writer = store.writer().unwrap();
    for i in 0..4 {
        writer.put("k", format!("{i}").as_bytes()).await.unwrap();
    }
    conn.faults().evict_below("expired", 4).unwrap();
    let seen: Seen = Arc::default();
    let seen_in = Arc::clone(&seen);
    let (shutdown_tx, shutdown) = watch::channel(false);
    let run = tokio::spawn(watch_applied(
        store.watcher().unwrap(),
        WatchScope::All,
        Some(WatchCursor::from_u64(1)),
        None,
        None::<TestStore>,
        None,
        cfg(5, 100),
        parse_value,
        move |batch: Vec<String>| seen_in.lock().unwrap().extend(batch),
        |_c| {},
        shutdown,
    ));
    wait_for("the re-listed value", || {
        seen.lock().unwrap().contains(&"k=3".to_string())
    })
    .await;
    shutdown_tx.send(true).unwrap();
    assert_eq!(run.await.unwrap().unwrap().rank(), 4);
}

#[tokio::test]
async fn fold_progress_tracks_what_on_applied_sees() {
    let (_conn, store) = bucket("lag").await;
    let writer = store.writer().unwrap();
    writer.put("a", b"1").await.unwrap();
    let progress = FoldProgress::new();
    let (shutdown_tx, shutdown) = watch::channel(false);
    let watcher: Arc<dyn KvWatcher> = store.watcher().unwrap();
    let run = tokio::spawn(watch_applied(
        Arc::clone(&watcher),
        WatchScope::All,
        None,
        None,
        None::<TestStore>,
        None,
        cfg(1, 100),
        parse_value,
        |_b: Vec<String>| {},
        progress.track(|_c| {}),
        shutdown,
    ));
    wait_for("applied 1", || progress.applied_revision() == Some(1)).await;
    writer.put("b", b"2").await.unwrap();
    writer.put("c", b"3").await.unwrap();
    let lag = progress.refresh(&*watcher).await.unwrap();
    assert!(lag.is_some_and(|l| l <= 2));
    shutdown_tx.send(true).unwrap();
    run.await.unwrap().unwrap();
}

#[test]
fn the_run_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let conn = MemoryConnection::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        conn.connect().await.unwrap();
        let store = conn.store("send").await.unwrap();
        let (_tx, shutdown) = watch::channel(true);
        let fut = watch_applied(
            store.watcher().unwrap(),
            WatchScope::All,
            None,
            None,
            None::<TestStore>,
            None,
            BatchConfig::default(),
            parse_value,
            |_b: Vec<String>| {},
            |_c| {},
            shutdown,
        );
        assert_send(&fut);
        fut.await.unwrap();
    });
}
