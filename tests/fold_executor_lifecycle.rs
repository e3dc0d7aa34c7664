//! `watch_applied` executor tests of docs/watch-applied.md, "Executor tests" on a scripted watcher and the
//! memory backend: the fail-stop (item 4), the store hand-back and in-process
//! resume (item 7), the bounded store close (item 8) and abort-on-drop (item 9).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvfold::{
    ExportManifest, KvEntry, KvError, KvStore, KvUpdate, SnapshotError, SnapshotStore, WatchCursor,
    WatchEnd, WatchScope, watch_applied, watch_applied_owned,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

mod common;

use common::fold::{HOUR, Probe, Revs, accept_all, cfg, keys, memory_bucket, start};
use common::scripted::Scripted;
use common::store::TestStore;
use common::updates::{put, puts};
use common::wait::wait_for;

// ---------------------------------------------------------------------------
// Item 4: Fail-stop.
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn sixteen_consecutive_store_failures_end_the_run_at_the_store_cursor() {
    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    let store = TestStore::default();
    store.ctl.lock().unwrap().ok_budget = Some(2);
    let commits = store.commits();
    let (run, _shutdown) = start(
        watcher,
        WatchScope::All,
        None,
        Some(store),
        None,
        cfg(HOUR, 1),
        &probe,
        accept_all,
    );
    // max 1: every update flushes. k1, k2 commit; k3..k18 fail sixteen times.
    feed.all(puts(1..=30));
    let end = run.await.unwrap();
    match &end.result {
        Err(KvError::WatchError(m)) => assert_eq!(
            m,
            "store apply failed 16 consecutive times: snapshot backend error: injected lasting failure"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        commits.lock().unwrap().clone(),
        vec![(keys(&["k1"]), 1), (keys(&["k2"]), 2)]
    );
    assert_eq!(
        end.applied,
        WatchCursor::from_u64(2),
        "the store's cursor, not the applied one"
    );
    let store = end.store.expect("the store is handed back");
    assert_eq!(store.cursor(), end.applied);
    // on_applied runs ahead of the failing store; the flush that fails for the
    // sixteenth time stops before its on_applied (docs/protocols/fold-machine.md, "The flush procedure" step 7).
    assert_eq!(probe.ranks(), (1..=17).collect::<Vec<u64>>());
    assert_eq!(
        probe.batches().len(),
        18,
        "no apply after the sixteenth failure"
    );
    // While the sixteenth failing write is in flight the fold may take one more
    // update into the flush that waits for it (docs/watch-applied.md, "Store
    // applies in flight"); that flush never runs.
    let parses = probe.parses();
    assert!(
        (18..=19).contains(&parses),
        "at most one update past the failing write was received: {parses}"
    );
}

// ---------------------------------------------------------------------------
// Item 7: The store comes back; in-process resume.
// ---------------------------------------------------------------------------

enum Exit {
    ShutdownValue,
    ShutdownDropped,
    WatchEndedClean,
    WatchFailed,
    WatchPanicked,
    AlreadyShutDown,
    NoPrefixes,
    HasEntriesFails,
}

async fn end_by(exit: Exit) -> WatchEnd<TestStore> {
    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    let store = TestStore::at(4);
    let mut resume = Some(WatchCursor::from_u64(4));
    let mut scope = WatchScope::All;
    match exit {
        Exit::NoPrefixes => scope = WatchScope::Prefixes(vec![]),
        Exit::HasEntriesFails => {
            store.ctl.lock().unwrap().has_entries_fails = true;
            resume = None;
        }
        _ => {}
    }
    if let Exit::AlreadyShutDown = exit {
        let (_tx, shutdown) = watch::channel(true);
        return watch_applied_owned(
            watcher,
            scope,
            resume,
            None,
            Some(store),
            None,
            cfg(HOUR, 100),
            probe.parse(accept_all),
            probe.apply(),
            probe.on_applied(),
            shutdown,
        )
        .await;
    }
    let (run, shutdown) = start(
        watcher,
        scope,
        resume,
        Some(store),
        None,
        cfg(HOUR, 100),
        &probe,
        accept_all,
    );
    match exit {
        Exit::ShutdownValue => {
            feed.send(put("k5", 5));
            wait_for("parsed", || probe.parses() == 1).await;
            shutdown.send(true).unwrap();
        }
        Exit::ShutdownDropped => {
            feed.send(put("k5", 5));
            wait_for("parsed", || probe.parses() == 1).await;
            drop(shutdown);
        }
        Exit::WatchEndedClean => {
            feed.send(put("k5", 5));
            feed.end(Ok(()));
        }
        Exit::WatchFailed => {
            feed.send(put("k5", 5));
            feed.end(Err(KvError::WatchError("stream broke".into())));
        }
        Exit::WatchPanicked => {
            feed.send(put("k5", 5));
            feed.panic("watch exploded");
        }
        _ => {}
    }
    run.await.unwrap()
}

#[tokio::test]
async fn the_store_comes_back_on_every_exit() {
    let cases: Vec<(&str, Exit, Result<u64, &str>)> = vec![
        ("shutdown by value", Exit::ShutdownValue, Ok(5)),
        ("shutdown sender dropped", Exit::ShutdownDropped, Ok(5)),
        ("watch ended cleanly", Exit::WatchEndedClean, Ok(5)),
        (
            "watch failed",
            Exit::WatchFailed,
            Err("watch error: stream broke"),
        ),
        (
            "watch task panicked",
            Exit::WatchPanicked,
            Err("watch task panicked: watch exploded"),
        ),
        ("shutdown already requested", Exit::AlreadyShutDown, Ok(4)),
        ("empty prefix list", Exit::NoPrefixes, Ok(4)),
        (
            "has_entries failed",
            Exit::HasEntriesFails,
            Err("reading the fold at start failed"),
        ),
    ];
    for (label, exit, expected) in cases {
        let end = end_by(exit).await;
        let store = end
            .store
            .unwrap_or_else(|| panic!("{label}: the store is handed back"));
        assert_eq!(
            end.applied,
            store.cursor(),
            "{label}: applied is the store's cursor"
        );
        match (expected, &end.result) {
            (Ok(rank), Ok(cursor)) => {
                assert_eq!(cursor.rank(), rank, "{label}");
                assert_eq!(store.cursor().rank(), rank, "{label}");
            }
            (Err(text), Err(e)) => {
                assert!(e.to_string().contains(text), "{label}: {e}");
            }
            (expected, got) => panic!("{label}: expected {expected:?}, got {got:?}"),
        }
    }
}

fn spawn_memory_run(
    bucket: &Arc<dyn KvStore>,
    resume: Option<WatchCursor>,
    store: TestStore,
    seen: &Revs,
    applied: &Revs,
) -> (JoinHandle<WatchEnd<TestStore>>, watch::Sender<bool>) {
    let (shutdown_tx, shutdown) = watch::channel(false);
    let (seen, applied) = (Arc::clone(seen), Arc::clone(applied));
    let run = tokio::spawn(watch_applied_owned(
        bucket.watcher().unwrap(),
        WatchScope::All,
        resume,
        None,
        Some(store),
        None,
        cfg(2, 100),
        |u: &KvUpdate| u.version().as_u64(),
        move |batch: Vec<u64>| seen.lock().unwrap().extend(batch),
        move |c: WatchCursor| applied.lock().unwrap().push(c.rank()),
        shutdown,
    ));
    (run, shutdown_tx)
}

#[tokio::test]
async fn an_in_process_resume_neither_skips_nor_reorders() {
    let (_conn, bucket) = memory_bucket("resume").await;
    let writer = bucket.writer().unwrap();
    for i in 1..=5 {
        writer.put(&format!("k{i}"), b"v").await.unwrap();
    }
    let store = TestStore::default();
    let ctl = Arc::clone(&store.ctl);

    // Run 1: state-sync of k1..k5.
    let (seen1, applied1): (Revs, Revs) = Default::default();
    let (run, shutdown) = spawn_memory_run(&bucket, None, store, &seen1, &applied1);
    wait_for("run 1 at 5", || applied1.lock().unwrap().last() == Some(&5)).await;
    shutdown.send(true).unwrap();
    let end = run.await.unwrap();
    assert_eq!(end.result, Ok(WatchCursor::from_u64(5)));
    assert_eq!(*seen1.lock().unwrap(), vec![1, 2, 3, 4, 5]);

    // Run 2: resumed from end.applied; k6 was written in between, k7 live. Then the
    // store fails twice: k8 is applied but its commit (and the shutdown retry) fail.
    writer.put("k6", b"v").await.unwrap();
    let (seen2, applied2): (Revs, Revs) = Default::default();
    let (run, shutdown) = spawn_memory_run(
        &bucket,
        Some(end.applied),
        end.store.unwrap(),
        &seen2,
        &applied2,
    );
    writer.put("k7", b"v").await.unwrap();
    wait_for("run 2 at 7", || applied2.lock().unwrap().last() == Some(&7)).await;
    ctl.lock().unwrap().fail_next = 2;
    writer.put("k8", b"v").await.unwrap();
    wait_for("run 2 at 8", || applied2.lock().unwrap().last() == Some(&8)).await;
    shutdown.send(true).unwrap();
    let end = run.await.unwrap();
    assert_eq!(
        *seen2.lock().unwrap(),
        vec![6, 7, 8],
        "nothing skipped, nothing repeated"
    );
    assert_eq!(ctl.lock().unwrap().fail_next, 0, "both failures happened");
    assert_eq!(
        end.result,
        Ok(WatchCursor::from_u64(7)),
        "the store's cursor"
    );
    assert_eq!(end.applied, WatchCursor::from_u64(7));

    // Run 3: resumed from the store's cursor (7): k8 is delivered again (the store
    // never committed it), then k9; in order, nothing skipped.
    let (seen3, applied3): (Revs, Revs) = Default::default();
    let (run, shutdown) = spawn_memory_run(
        &bucket,
        Some(end.applied),
        end.store.unwrap(),
        &seen3,
        &applied3,
    );
    writer.put("k9", b"v").await.unwrap();
    wait_for("run 3 at 9", || applied3.lock().unwrap().last() == Some(&9)).await;
    shutdown.send(true).unwrap();
    let end = run.await.unwrap();
    assert_eq!(*seen3.lock().unwrap(), vec![8, 9]);
    assert_eq!(end.result, Ok(WatchCursor::from_u64(9)));
    let store = end.store.unwrap();
    let folded: Vec<String> = store
        .range("")
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(
        folded,
        keys(&["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"])
    );
    // The commits never skipped over an update: their cursors cover exactly
    // what was committed so far, in revision order.
    let mut committed: Vec<u64> = Vec::new();
    for (batch, cursor) in store.commits.lock().unwrap().iter() {
        committed.extend(batch.iter().map(|k| k[1..].parse::<u64>().unwrap()));
        assert_eq!(
            committed.last(),
            Some(cursor),
            "a commit's cursor is its last update"
        );
    }
    assert_eq!(committed, (1..=9).collect::<Vec<u64>>());
}

// ---------------------------------------------------------------------------
// Item 8: Closing the store (watch_applied only).
// ---------------------------------------------------------------------------

/// A store whose destructor blocks until released (60 s at most, so a
/// regression fails instead of hanging forever), recording its thread's name.
struct HangingStore {
    release: std::sync::mpsc::Receiver<()>,
    dropped_on: Arc<Mutex<Option<String>>>,
    dropped: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for HangingStore {
    fn drop(&mut self) {
        *self.dropped_on.lock().unwrap() = std::thread::current().name().map(str::to_string);
        let _ = self.release.recv_timeout(Duration::from_secs(60));
        self.dropped.store(true, Ordering::SeqCst);
    }
}

impl SnapshotStore for HangingStore {
    fn load(_path: &Path) -> Result<(WatchCursor, Self), SnapshotError> {
        Err(SnapshotError::Backend("not loadable".into()))
    }

    fn apply(&mut self, _batch: &[KvUpdate], _cursor: &WatchCursor) -> Result<(), SnapshotError> {
        Ok(())
    }

    fn get(&self, _key: &str) -> Result<Option<KvEntry>, SnapshotError> {
        Ok(None)
    }

    fn range(&self, _prefix: &str) -> Result<Vec<KvEntry>, SnapshotError> {
        Ok(Vec::new())
    }

    fn cursor(&self) -> WatchCursor {
        WatchCursor::from_u64(1)
    }

    fn export_to(&mut self, _dest_dir: &Path) -> Result<ExportManifest, SnapshotError> {
        Err(SnapshotError::Backend("no export".into()))
    }
}

type HangingParts = (
    HangingStore,
    std::sync::mpsc::Sender<()>,
    Arc<Mutex<Option<String>>>,
    Arc<std::sync::atomic::AtomicBool>,
);

fn hanging_store() -> HangingParts {
    let (release_tx, release) = std::sync::mpsc::channel();
    let dropped_on = Arc::new(Mutex::new(None));
    let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let store = HangingStore {
        release,
        dropped_on: Arc::clone(&dropped_on),
        dropped: Arc::clone(&dropped),
    };
    (store, release_tx, dropped_on, dropped)
}

async fn run_to_close(store: HangingStore) -> Result<WatchCursor, KvError> {
    let (watcher, feed) = Scripted::new();
    feed.end(Ok(()));
    let (_tx, shutdown) = watch::channel(false);
    watch_applied(
        watcher,
        WatchScope::All,
        Some(WatchCursor::from_u64(1)),
        None,
        Some(store),
        None,
        cfg(HOUR, 100),
        |_u: &KvUpdate| Some(()),
        |_b: Vec<()>| {},
        |_c| {},
        shutdown,
    )
    .await
}

#[tokio::test(start_paused = true)]
async fn watch_applied_returns_after_30s_when_the_store_destructor_hangs() {
    // A current-thread runtime (the default of #[tokio::test]) with a paused
    // clock: the 30 s bound elapses in virtual time. Dropping the store inline on
    // this thread would block the runtime itself (and this test, for 60 s).
    let (store, release, dropped_on, dropped) = hanging_store();
    let wall = std::time::Instant::now();
    let t0 = Instant::now();
    let result = run_to_close(store).await;
    let waited = t0.elapsed();
    assert_eq!(result, Ok(WatchCursor::from_u64(1)));
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
        "returned after {waited:?} of tokio time"
    );
    assert!(
        wall.elapsed() < Duration::from_secs(20),
        "took {:?} of wall time",
        wall.elapsed()
    );
    assert!(
        !dropped.load(Ordering::SeqCst),
        "the destructor is still blocked"
    );
    // The paused clock reached 30 s without any wall time passing: the closing
    // thread may not have started the drop yet.
    for _ in 0..500 {
        if dropped_on.lock().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let thread = dropped_on.lock().unwrap().clone();
    assert_eq!(
        thread.as_deref(),
        Some("kvfold-close"),
        "dropped off the runtime"
    );
    release.send(()).unwrap();
    for _ in 0..500 {
        if dropped.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the destructor never finished after its release");
}

/// Real clock: under a paused clock the 30 s bound would elapse at once while the
/// closing thread runs.
#[tokio::test]
async fn watch_applied_waits_for_a_prompt_store_close() {
    let (store, release, dropped_on, dropped) = hanging_store();
    release.send(()).unwrap();
    let t0 = Instant::now();
    let result = run_to_close(store).await;
    assert_eq!(result, Ok(WatchCursor::from_u64(1)));
    assert!(
        dropped.load(Ordering::SeqCst),
        "closed before watch_applied returned"
    );
    let thread = dropped_on.lock().unwrap().clone();
    assert_eq!(thread.as_deref(), Some("kvfold-close"));
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}

// ---------------------------------------------------------------------------
// Item 9: Abort-on-drop.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn dropping_the_run_future_stops_the_watch_task() {
    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    let (_tx, shutdown) = watch::channel(false);
    let run = watch_applied_owned(
        watcher.clone(),
        WatchScope::All,
        None,
        None,
        None::<TestStore>,
        None,
        cfg(1, 100),
        probe.parse(accept_all),
        probe.apply(),
        probe.on_applied(),
        shutdown,
    );
    feed.send(put("k1", 1));
    // The run future is dropped in place when the timeout fires.
    let timed_out = tokio::time::timeout(Duration::from_millis(200), run).await;
    assert!(timed_out.is_err(), "the run goes on until dropped");
    assert_eq!(
        probe.batches(),
        vec![keys(&["k1"])],
        "the watch was running"
    );
    assert_eq!(watcher.calls(), vec!["all".to_string()]);
    wait_for("the watch future dropped", || watcher.live() == 0).await;
}

#[tokio::test]
async fn a_panic_in_apply_unwinds_and_stops_the_watch_task() {
    let (watcher, feed) = Scripted::new();
    let (_tx, shutdown) = watch::channel(false);
    let run = tokio::spawn(watch_applied_owned(
        watcher.clone(),
        WatchScope::All,
        None,
        None,
        None::<TestStore>,
        None,
        cfg(1, 100),
        |u: &KvUpdate| Some(u.key().to_string()),
        |_b: Vec<String>| panic!("apply exploded"),
        |_c| {},
        shutdown,
    ));
    wait_for("the watch started", || watcher.live() == 1).await;
    feed.send(put("k1", 1));
    let joined = run.await;
    assert!(
        joined.is_err_and(|e| e.is_panic()),
        "the panic unwinds out of the run"
    );
    wait_for("the watch future dropped", || watcher.live() == 0).await;
}
