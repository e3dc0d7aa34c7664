//! `watch_applied` executor tests of docs/watch-applied.md, "Executor tests" on a scripted watcher
//! (updates fed by the test, one at a time): every flush trigger (item 1) and
//! updates with an unknown version (item 3).

use std::time::Duration;

use kvfold::{KvError, KvUpdate, SnapshotStore, WatchCursor, WatchScope};
use tokio::sync::mpsc;

mod common;

use common::fold::{
    HOUR, Probe, accept_all, append_log, cfg, export, keys, manifest_scope_on_disk, start,
};
use common::scripted::{Feed, Scripted};
use common::store::{Commit, Shared, TestStore};
use common::updates::{delete_unknown, put, puts};
use common::wait::wait_for;

// ---------------------------------------------------------------------------
// Item 1: Flush triggers.
// ---------------------------------------------------------------------------

fn rejects_k1(u: &KvUpdate) -> bool {
    u.key() == "k1"
}

#[tokio::test(start_paused = true)]
async fn the_window_flushes_a_batch_measured_from_its_first_update() {
    // k1 (parse-rejected) opens the window at t=0; k2 joins at t=50; the window
    // closes at t=100, not 100 ms after the first *parsed* update. k3 at t=150
    // opens a new window that closes at t=250.
    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    let (run, shutdown) = start(
        watcher,
        WatchScope::All,
        None,
        None::<TestStore>,
        None,
        cfg(100, 100),
        &probe,
        rejects_k1,
    );
    feed.send(put("k1", 1));
    tokio::time::sleep(Duration::from_millis(50)).await;
    feed.send(put("k2", 2));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(probe.timed_batches(), vec![(100, keys(&["k2"]))]);
    feed.send(put("k3", 3));
    tokio::time::sleep(Duration::from_millis(200)).await;
    shutdown.send(true).unwrap();
    let end = run.await.unwrap();
    assert_eq!(
        probe.timed_batches(),
        vec![(100, keys(&["k2"])), (250, keys(&["k3"]))]
    );
    assert_eq!(probe.timed_ranks(), vec![(100, 2), (250, 3)]);
    assert_eq!(end.result, Ok(WatchCursor::from_u64(3)));
}

#[tokio::test(start_paused = true)]
async fn max_flushes_on_the_parsed_count() {
    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    let (run, shutdown) = start(
        watcher,
        WatchScope::All,
        None,
        None::<TestStore>,
        None,
        cfg(HOUR, 3),
        &probe,
        accept_all,
    );
    feed.all(puts(1..=7));
    wait_for("seven parsed", || probe.parses() == 7).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        probe.batches(),
        vec![keys(&["k1", "k2", "k3"]), keys(&["k4", "k5", "k6"])],
        "two full batches flushed at once; the seventh waits for the window"
    );
    assert_eq!(probe.ranks(), vec![3, 6]);
    assert!(probe.ms() < 1000);
    shutdown.send(true).unwrap();
    let end = run.await.unwrap();
    assert_eq!(probe.batches().len(), 3);
    assert_eq!(probe.batches()[2], keys(&["k7"]));
    assert_eq!(probe.ranks(), vec![3, 6, 7]);
    assert_eq!(end.result, Ok(WatchCursor::from_u64(7)));
}

#[tokio::test(start_paused = true)]
async fn max_zero_flushes_after_every_update() {
    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    let (run, shutdown) = start(
        watcher,
        WatchScope::All,
        None,
        Some(TestStore::default()),
        None,
        cfg(HOUR, 0),
        &probe,
        accept_all,
    );
    feed.all(puts(1..=3));
    wait_for("three flushes", || probe.ranks().len() == 3).await;
    assert_eq!(
        probe.batches(),
        vec![keys(&["k1"]), keys(&["k2"]), keys(&["k3"])]
    );
    assert_eq!(probe.ranks(), vec![1, 2, 3]);
    assert!(probe.ms() < 1000);
    shutdown.send(true).unwrap();
    assert_eq!(run.await.unwrap().result, Ok(WatchCursor::from_u64(3)));
}

fn rejects_odd(u: &KvUpdate) -> bool {
    u.version().as_u64().is_some_and(|r| r % 2 == 1)
}

#[tokio::test(start_paused = true)]
async fn max_flushes_on_the_raw_count_with_a_store() {
    // Odd revisions are parse-rejected: after k1..k3 the parsed batch holds one
    // update but the raw batch three, which is `max`.
    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    let store = TestStore::default();
    let commits = store.commits();
    let (run, shutdown) = start(
        watcher,
        WatchScope::All,
        None,
        Some(store),
        None,
        cfg(HOUR, 3),
        &probe,
        rejects_odd,
    );
    feed.all(puts(1..=7));
    wait_for("seven parsed", || probe.parses() == 7).await;
    wait_for("two commits", || commits.lock().unwrap().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(probe.batches(), vec![keys(&["k2"]), keys(&["k4", "k6"])]);
    assert_eq!(
        commits.lock().unwrap().clone(),
        vec![
            (keys(&["k1", "k2", "k3"]), 3),
            (keys(&["k4", "k5", "k6"]), 6)
        ]
    );
    assert!(probe.ms() < 1000, "flushed by count, not by the window");
    shutdown.send(true).unwrap();
    let end = run.await.unwrap();
    // k7 is rejected: no apply, but it is committed and the cursor covers it.
    assert_eq!(probe.batches().len(), 2);
    assert_eq!(
        commits.lock().unwrap().last().cloned(),
        Some((keys(&["k7"]), 7))
    );
    assert_eq!(probe.ranks(), vec![3, 6, 7]);
    assert_eq!(end.result, Ok(WatchCursor::from_u64(7)));
    assert_eq!(end.store.unwrap().cursor().rank(), 7);
}

#[tokio::test(start_paused = true)]
async fn the_channel_closing_flushes_and_ends_the_run() {
    // A clean end.
    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    let (run, _shutdown) = start(
        watcher,
        WatchScope::All,
        None,
        Some(TestStore::default()),
        None,
        cfg(HOUR, 100),
        &probe,
        accept_all,
    );
    feed.all(puts(1..=2));
    feed.end(Ok(()));
    let end = run.await.unwrap();
    assert_eq!(probe.batches(), vec![keys(&["k1", "k2"])]);
    assert_eq!(probe.ranks(), vec![2]);
    assert_eq!(end.result, Ok(WatchCursor::from_u64(2)));
    assert_eq!(end.store.unwrap().cursor().rank(), 2);
    assert!(probe.ms() < 1000, "ended by the channel, not the window");

    // A failing end: the batch is still flushed, then the error is returned.
    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    let (run, _shutdown) = start(
        watcher,
        WatchScope::All,
        None,
        Some(TestStore::default()),
        None,
        cfg(HOUR, 100),
        &probe,
        accept_all,
    );
    feed.all(puts(1..=2));
    feed.end(Err(KvError::WatchError("stream broke".into())));
    let end = run.await.unwrap();
    assert_eq!(probe.batches(), vec![keys(&["k1", "k2"])]);
    assert_eq!(end.result, Err(KvError::WatchError("stream broke".into())));
    assert_eq!(
        end.applied.rank(),
        2,
        "the flush before the error was committed"
    );
    assert_eq!(end.store.unwrap().cursor().rank(), 2);
}

#[tokio::test(start_paused = true)]
async fn shutdown_by_value_flushes_the_open_batch() {
    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    let (run, shutdown) = start(
        watcher,
        WatchScope::All,
        None,
        Some(TestStore::default()),
        None,
        cfg(HOUR, 100),
        &probe,
        accept_all,
    );
    feed.all(puts(1..=2));
    wait_for("both parsed", || probe.parses() == 2).await;
    assert!(probe.batches().is_empty(), "the batch is still open");
    shutdown.send(true).unwrap();
    let end = run.await.unwrap();
    assert_eq!(probe.batches(), vec![keys(&["k1", "k2"])]);
    assert_eq!(end.result, Ok(WatchCursor::from_u64(2)));
    assert_eq!(end.store.unwrap().cursor().rank(), 2);
    assert!(probe.ms() < 1000);
}

#[tokio::test(start_paused = true)]
async fn shutdown_by_a_dropped_sender_flushes_the_open_batch() {
    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    let (run, shutdown) = start(
        watcher,
        WatchScope::All,
        None,
        Some(TestStore::default()),
        None,
        cfg(HOUR, 100),
        &probe,
        accept_all,
    );
    feed.all(puts(1..=2));
    wait_for("both parsed", || probe.parses() == 2).await;
    assert!(probe.batches().is_empty(), "the batch is still open");
    drop(shutdown);
    let end = run.await.unwrap();
    assert_eq!(probe.batches(), vec![keys(&["k1", "k2"])]);
    assert_eq!(end.result, Ok(WatchCursor::from_u64(2)));
    assert_eq!(end.store.unwrap().cursor().rank(), 2);
    assert!(probe.ms() < 1000);
}

#[tokio::test(start_paused = true)]
async fn an_export_request_flushes_the_open_batch_first() {
    let dir = tempfile::tempdir().unwrap();
    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    let (export_tx, exports) = mpsc::channel(1);
    let prefixes = vec!["k".to_string(), "z.".to_string()];
    let (run, shutdown) = start(
        watcher,
        WatchScope::Prefixes(prefixes.clone()),
        None,
        Some(append_log(dir.path(), "fold.snap")),
        Some(exports),
        cfg(HOUR, 100),
        &probe,
        accept_all,
    );
    feed.all(puts(1..=2));
    wait_for("both parsed", || probe.parses() == 2).await;
    assert!(probe.batches().is_empty(), "the batch is still open");
    let dest = dir.path().join("artifact");
    let manifest = export(&export_tx, &dest).await.unwrap();
    assert_eq!(
        probe.batches(),
        vec![keys(&["k1", "k2"])],
        "applied before the export"
    );
    assert_eq!(
        manifest.cursor.rank(),
        2,
        "the artifact holds the open batch"
    );
    assert_eq!(manifest.scope, Some(prefixes.clone()));
    assert_eq!(manifest.schema_version, 2);
    assert_eq!(
        manifest_scope_on_disk(&dest),
        serde_json::json!(["k", "z."])
    );
    assert!(probe.ms() < 1000);
    // The artifact imports with both entries.
    let (cursor, imported) =
        kvfold::AppendLogSnapshot::import(&dest, &dir.path().join("replica.snap"), 1 << 20)
            .unwrap();
    assert_eq!(cursor.rank(), 2);
    let imported_keys: Vec<String> = imported
        .range("")
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(imported_keys, keys(&["k1", "k2"]));
    shutdown.send(true).unwrap();
    let end = run.await.unwrap();
    assert_eq!(end.result, Ok(WatchCursor::from_u64(2)));
    assert_eq!(
        probe.batches().len(),
        1,
        "nothing left to flush at shutdown"
    );
}

// ---------------------------------------------------------------------------
// Item 3: Unknown versions.
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn an_unknown_version_neither_moves_nor_clobbers_the_pending_cursor() {
    // The pending high-water (5) survives a later unknown-version update in the
    // same batch: the flush still moves the cursor to 5.
    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    let store = TestStore::at(3);
    let commits = store.commits();
    let (run, shutdown) = start(
        watcher,
        WatchScope::All,
        Some(WatchCursor::from_u64(3)),
        Some(store),
        None,
        cfg(HOUR, 100),
        &probe,
        accept_all,
    );
    feed.send(put("a", 5));
    feed.send(delete_unknown("b"));
    wait_for("both parsed", || probe.parses() == 2).await;
    shutdown.send(true).unwrap();
    let end = run.await.unwrap();
    assert_eq!(probe.batches(), vec![keys(&["a", "b"])]);
    assert_eq!(probe.ranks(), vec![5]);
    assert_eq!(end.result, Ok(WatchCursor::from_u64(5)));
    assert_eq!(
        commits.lock().unwrap().clone(),
        vec![(keys(&["a", "b"]), 5)]
    );
    let store = end.store.unwrap();

    // A batch of nothing but an unknown-version update does not move the cursor:
    // no on_applied; the store keeps its cursor (5) while folding the update.
    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    let (run, shutdown) = start(
        watcher.clone(),
        WatchScope::All,
        Some(end.applied),
        Some(store),
        None,
        cfg(HOUR, 100),
        &probe,
        accept_all,
    );
    feed.send(delete_unknown("a"));
    wait_for("parsed", || probe.parses() == 1).await;
    shutdown.send(true).unwrap();
    let end = run.await.unwrap();
    assert_eq!(watcher.calls(), vec!["all from 5".to_string()]);
    assert_eq!(probe.batches(), vec![keys(&["a"])]);
    assert_eq!(probe.ranks(), Vec::<u64>::new(), "on_applied does not fire");
    assert_eq!(end.result, Ok(WatchCursor::from_u64(5)));
    let store = end.store.unwrap();
    assert_eq!(store.cursor().rank(), 5);
    assert_eq!(store.get("a").unwrap(), None, "the delete was folded");
    assert_eq!(
        commits.lock().unwrap().last().cloned(),
        Some((keys(&["a"]), 5))
    );
}

// ---------------------------------------------------------------------------
// Store applies in flight (docs/watch-applied.md, "Store applies in flight").
// ---------------------------------------------------------------------------

/// A run with batches of 2 into a `TestStore` whose first write blocks until
/// `release` sends.
struct Held {
    feed: Feed,
    probe: Probe,
    commits: Shared<Commit>,
    release: std::sync::mpsc::Sender<()>,
    run: tokio::task::JoinHandle<kvfold::WatchEnd<TestStore>>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

fn first_write_held() -> Held {
    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    let store = TestStore::default();
    let commits = store.commits();
    let (release, held) = std::sync::mpsc::channel::<()>();
    store.ctl.lock().unwrap().hold_next = Some(held);
    let (run, shutdown) = start(
        watcher,
        WatchScope::All,
        None,
        Some(store),
        None,
        cfg(HOUR, 2),
        &probe,
        accept_all,
    );
    Held {
        feed,
        probe,
        commits,
        release,
        run,
        shutdown,
    }
}

/// While the store writes one batch, the fold receives and parses the next; the next
/// flush (its `apply` too) waits for that write; `on_applied` announces a cursor only
/// once the store committed it.
#[tokio::test]
async fn the_fold_receives_while_the_store_writes_and_the_cursor_waits_for_the_commit() {
    let h = first_write_held();
    h.feed.all(puts(1..=2));
    wait_for("the first batch applied", || h.probe.batches().len() == 1).await;
    // The store holds the first write; the next update is received and parsed anyway.
    h.feed.send(put("k3", 3));
    wait_for("k3 parsed while the store writes", || h.probe.parses() == 3).await;
    assert!(h.probe.ranks().is_empty(), "no cursor before the commit");
    assert!(h.commits.lock().unwrap().is_empty());
    // A full second batch waits for the write in flight: no apply, no second write.
    h.feed.send(put("k4", 4));
    wait_for("k4 parsed", || h.probe.parses() == 4).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(h.probe.batches(), vec![keys(&["k1", "k2"])]);
    assert!(h.probe.ranks().is_empty());
    h.release.send(()).unwrap();
    wait_for("both batches committed", || h.probe.ranks() == vec![2, 4]).await;
    assert_eq!(
        h.probe.batches(),
        vec![keys(&["k1", "k2"]), keys(&["k3", "k4"])]
    );
    assert_eq!(
        h.commits.lock().unwrap().clone(),
        vec![(keys(&["k1", "k2"]), 2), (keys(&["k3", "k4"]), 4)]
    );
    h.shutdown.send(true).unwrap();
    let end = h.run.await.unwrap();
    assert_eq!(end.result, Ok(WatchCursor::from_u64(4)));
    assert_eq!(
        end.store.map(|s| s.cursor()),
        Some(WatchCursor::from_u64(4))
    );
}

/// A shutdown while a write is in flight waits for it, flushes what came since, and
/// returns the store with the committed cursor.
#[tokio::test]
async fn shutdown_waits_for_the_store_write_in_flight() {
    let h = first_write_held();
    h.feed.all(puts(1..=3));
    wait_for("k3 parsed", || h.probe.parses() == 3).await;
    h.shutdown.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !h.run.is_finished(),
        "the run waits for the write in flight"
    );
    h.release.send(()).unwrap();
    let end = h.run.await.unwrap();
    assert_eq!(h.probe.ranks(), vec![2, 3]);
    assert_eq!(end.result, Ok(WatchCursor::from_u64(3)));
    assert_eq!(
        end.store.map(|s| s.cursor()),
        Some(WatchCursor::from_u64(3))
    );
}
