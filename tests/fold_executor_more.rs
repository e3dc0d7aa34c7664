//! The remaining `watch_applied` executor tests (docs/watch-applied.md, "Executor tests"), on a scripted
//! watcher (updates fed by the test, one at a time) and the memory backend:
//! every flush trigger, unknown versions, the fail-stop, export handling, the
//! store hand-back, in-process resume, the bounded store close, abort-on-drop,
//! and the tracing span and notice events.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kvfold::{
    BatchConfig, Connection, ExportManifest, ExportRequest, FoldProgress, KvEntry, KvError,
    KvStore, KvUpdate, KvWatcher, MemoryConnection, SnapshotError, SnapshotStore, StoreConfig,
    VersionToken, WatchCursor, WatchEnd, WatchScope, watch_applied, watch_applied_owned,
};
use tokio::sync::mpsc::Sender;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const HOUR: u64 = 3_600_000;

// ---------------------------------------------------------------------------
// A scripted watcher: the test feeds it steps; it records its calls and how
// many of its watch futures are alive.
// ---------------------------------------------------------------------------

enum Step {
    Update(KvUpdate),
    End(Result<(), KvError>),
    Panic(&'static str),
}

struct Scripted {
    steps: Mutex<Option<mpsc::UnboundedReceiver<Step>>>,
    calls: Mutex<Vec<String>>,
    live: Arc<AtomicUsize>,
}

/// The test's end of a scripted watcher. Dropping it does not end the watch:
/// once the steps run out the watch waits forever.
struct Feed(mpsc::UnboundedSender<Step>);

impl Feed {
    fn send(&self, update: KvUpdate) {
        self.0.send(Step::Update(update)).unwrap();
    }

    fn all(&self, updates: impl IntoIterator<Item = KvUpdate>) {
        for u in updates {
            self.send(u);
        }
    }

    fn end(&self, result: Result<(), KvError>) {
        self.0.send(Step::End(result)).unwrap();
    }

    fn panic(&self, message: &'static str) {
        self.0.send(Step::Panic(message)).unwrap();
    }
}

/// Decrements the live count when the watch future holding it is dropped.
struct Alive(Arc<AtomicUsize>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Scripted {
    fn new() -> (Arc<Scripted>, Feed) {
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = Arc::new(Scripted {
            steps: Mutex::new(Some(rx)),
            calls: Mutex::new(Vec::new()),
            live: Arc::new(AtomicUsize::new(0)),
        });
        (watcher, Feed(tx))
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    async fn serve(&self, call: String, tx: Sender<KvUpdate>) -> Result<(), KvError> {
        self.calls.lock().unwrap().push(call);
        self.live.fetch_add(1, Ordering::SeqCst);
        let _alive = Alive(Arc::clone(&self.live));
        let steps = self.steps.lock().unwrap().take();
        let Some(mut steps) = steps else {
            return std::future::pending().await;
        };
        loop {
            match steps.recv().await {
                Some(Step::Update(update)) => {
                    if tx.send(update).await.is_err() {
                        return Ok(());
                    }
                }
                Some(Step::End(result)) => return result,
                Some(Step::Panic(message)) => panic!("{message}"),
                None => return std::future::pending().await,
            }
        }
    }
}

#[async_trait]
impl KvWatcher for Scripted {
    async fn watch_all(&self, tx: Sender<KvUpdate>) -> Result<(), KvError> {
        self.serve("all".into(), tx).await
    }

    async fn watch_prefix(&self, prefix: &str, tx: Sender<KvUpdate>) -> Result<(), KvError> {
        self.serve(format!("prefix {prefix:?}"), tx).await
    }

    async fn watch_prefixes(&self, prefixes: &[&str], tx: Sender<KvUpdate>) -> Result<(), KvError> {
        if prefixes.is_empty() {
            // The trait contract: an empty list returns at once.
            self.calls.lock().unwrap().push("prefixes []".into());
            return Ok(());
        }
        self.serve(format!("prefixes {prefixes:?}"), tx).await
    }

    async fn watch_all_from(
        &self,
        cursor: &WatchCursor,
        tx: Sender<KvUpdate>,
    ) -> Result<(), KvError> {
        self.serve(format!("all from {}", cursor.rank()), tx).await
    }

    async fn watch_prefix_from(
        &self,
        prefix: &str,
        cursor: &WatchCursor,
        tx: Sender<KvUpdate>,
    ) -> Result<(), KvError> {
        self.serve(format!("prefix {prefix:?} from {}", cursor.rank()), tx)
            .await
    }

    async fn watch_prefixes_from(
        &self,
        prefixes: &[&str],
        cursor: &WatchCursor,
        tx: Sender<KvUpdate>,
    ) -> Result<(), KvError> {
        if prefixes.is_empty() {
            self.calls
                .lock()
                .unwrap()
                .push(format!("prefixes [] from {}", cursor.rank()));
            return Ok(());
        }
        self.serve(format!("prefixes {prefixes:?} from {}", cursor.rank()), tx)
            .await
    }

    fn bucket_name(&self) -> Option<&str> {
        Some("scripted")
    }
}

fn put(key: &str, rev: u64) -> KvUpdate {
    KvUpdate::Put(KvEntry {
        key: key.to_string(),
        value: format!("v{rev}").into_bytes(),
        version: VersionToken::from_u64(rev),
    })
}

fn delete_unknown(key: &str) -> KvUpdate {
    KvUpdate::Delete {
        key: key.to_string(),
        version: VersionToken::unknown(),
    }
}

/// `k1@1 .. kn@n`.
fn puts(range: std::ops::RangeInclusive<u64>) -> Vec<KvUpdate> {
    range.map(|i| put(&format!("k{i}"), i)).collect()
}

fn cfg(window_ms: u64, max: usize) -> BatchConfig {
    BatchConfig {
        window: Duration::from_millis(window_ms),
        max,
        channel_capacity: 16,
    }
}

// ---------------------------------------------------------------------------
// Recording closures.
// ---------------------------------------------------------------------------

/// A list shared between a run's closures (or a store) and the test.
type Shared<T> = Arc<Mutex<Vec<T>>>;

/// One store commit: the keys of its batch and its cursor's rank.
type Commit = (Vec<String>, u64);

/// What `parse`, `apply` and `on_applied` saw, with the tokio time (ms since
/// the probe was made) of each apply / on_applied.
#[derive(Clone)]
struct Probe {
    t0: Instant,
    parses: Arc<AtomicUsize>,
    batches: Shared<(u64, Vec<String>)>,
    cursors: Arc<Mutex<Vec<(u64, WatchCursor)>>>,
}

impl Probe {
    fn new() -> Self {
        Probe {
            t0: Instant::now(),
            parses: Arc::default(),
            batches: Arc::default(),
            cursors: Arc::default(),
        }
    }

    fn ms(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_millis()).unwrap()
    }

    /// Parses an update to its key; `reject` updates parse to `None`.
    fn parse(
        &self,
        reject: fn(&KvUpdate) -> bool,
    ) -> impl FnMut(&KvUpdate) -> Option<String> + Send + 'static {
        let parses = Arc::clone(&self.parses);
        move |u: &KvUpdate| {
            parses.fetch_add(1, Ordering::SeqCst);
            (!reject(u)).then(|| u.key().to_string())
        }
    }

    fn apply(&self) -> impl FnMut(Vec<String>) + Send + 'static {
        let me = self.clone();
        move |batch: Vec<String>| {
            let at = me.ms();
            me.batches.lock().unwrap().push((at, batch));
        }
    }

    fn on_applied(&self) -> impl FnMut(WatchCursor) + Send + 'static {
        let me = self.clone();
        move |cursor: WatchCursor| {
            let at = me.ms();
            me.cursors.lock().unwrap().push((at, cursor));
        }
    }

    fn parses(&self) -> usize {
        self.parses.load(Ordering::SeqCst)
    }

    fn batches(&self) -> Vec<Vec<String>> {
        self.batches
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }

    fn timed_batches(&self) -> Vec<(u64, Vec<String>)> {
        self.batches.lock().unwrap().clone()
    }

    fn ranks(&self) -> Vec<u64> {
        self.cursors
            .lock()
            .unwrap()
            .iter()
            .map(|(_, c)| c.rank())
            .collect()
    }

    fn timed_ranks(&self) -> Vec<(u64, u64)> {
        self.cursors
            .lock()
            .unwrap()
            .iter()
            .map(|(t, c)| (*t, c.rank()))
            .collect()
    }
}

fn accept_all(_: &KvUpdate) -> bool {
    false
}

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_string()).collect()
}

/// Spawns `watch_applied_owned` with the probe's closures; returns the run and
/// its shutdown sender.
#[allow(clippy::too_many_arguments)]
fn start<S: SnapshotStore + Send + 'static>(
    watcher: Arc<dyn KvWatcher>,
    scope: WatchScope,
    resume: Option<WatchCursor>,
    store: Option<S>,
    exports: Option<mpsc::Receiver<ExportRequest>>,
    config: BatchConfig,
    probe: &Probe,
    reject: fn(&KvUpdate) -> bool,
) -> (JoinHandle<WatchEnd<S>>, watch::Sender<bool>) {
    let (shutdown_tx, shutdown) = watch::channel(false);
    let run = tokio::spawn(watch_applied_owned(
        watcher,
        scope,
        resume,
        None,
        store,
        exports,
        config,
        probe.parse(reject),
        probe.apply(),
        probe.on_applied(),
        shutdown,
    ));
    (run, shutdown_tx)
}

/// Polls `check` every (possibly virtual) millisecond, at most 5000 times.
async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..5000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("timed out waiting for {what}");
}

// ---------------------------------------------------------------------------
// Test stores.
// ---------------------------------------------------------------------------

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum ExportMode {
    #[default]
    Refuse,
    Panic,
}

/// Failure injection shared between the test and a `TestStore`.
#[derive(Default)]
struct Ctl {
    /// Fail this many next applies.
    fail_next: u32,
    /// `Some(n)`: succeed `n` more times, then fail every apply.
    ok_budget: Option<usize>,
    export: ExportMode,
    has_entries_fails: bool,
}

/// An in-memory `SnapshotStore` that records each commit as (keys, cursor rank).
#[derive(Default)]
struct TestStore {
    entries: BTreeMap<String, KvEntry>,
    cursor: WatchCursor,
    ctl: Arc<Mutex<Ctl>>,
    commits: Shared<Commit>,
}

impl TestStore {
    fn at(rank: u64) -> Self {
        TestStore {
            cursor: WatchCursor::from_u64(rank),
            ..TestStore::default()
        }
    }

    fn commits(&self) -> Shared<Commit> {
        Arc::clone(&self.commits)
    }
}

impl SnapshotStore for TestStore {
    fn load(_path: &Path) -> Result<(WatchCursor, Self), SnapshotError> {
        Ok((WatchCursor::none(), TestStore::default()))
    }

    fn apply(&mut self, batch: &[KvUpdate], cursor: &WatchCursor) -> Result<(), SnapshotError> {
        {
            let mut ctl = self.ctl.lock().unwrap();
            if ctl.fail_next > 0 {
                ctl.fail_next -= 1;
                return Err(SnapshotError::Backend("injected failure".into()));
            }
            match &mut ctl.ok_budget {
                Some(0) => return Err(SnapshotError::Backend("injected lasting failure".into())),
                Some(n) => *n -= 1,
                None => {}
            }
        }
        for update in batch {
            match update {
                KvUpdate::Put(e) => {
                    self.entries.insert(e.key.clone(), e.clone());
                }
                KvUpdate::Delete { key, .. } | KvUpdate::Purge { key, .. } => {
                    self.entries.remove(key);
                }
            }
        }
        self.cursor = cursor.clone();
        self.commits.lock().unwrap().push((
            batch.iter().map(|u| u.key().to_string()).collect(),
            cursor.rank(),
        ));
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<KvEntry>, SnapshotError> {
        Ok(self.entries.get(key).cloned())
    }

    fn range(&self, prefix: &str) -> Result<Vec<KvEntry>, SnapshotError> {
        Ok(self
            .entries
            .values()
            .filter(|e| e.key.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn has_entries(&self) -> Result<bool, SnapshotError> {
        if self.ctl.lock().unwrap().has_entries_fails {
            return Err(SnapshotError::Backend(
                "injected has_entries failure".into(),
            ));
        }
        Ok(!self.entries.is_empty())
    }

    fn cursor(&self) -> WatchCursor {
        self.cursor.clone()
    }

    fn export_to(&mut self, dest_dir: &Path) -> Result<ExportManifest, SnapshotError> {
        match self.ctl.lock().unwrap().export {
            ExportMode::Refuse => Err(SnapshotError::Backend(format!(
                "test store cannot export to {}",
                dest_dir.display()
            ))),
            ExportMode::Panic => panic!("export exploded"),
        }
    }
}

fn append_log(dir: &Path, name: &str) -> kvfold::AppendLogSnapshot {
    let (cursor, store) = kvfold::AppendLogSnapshot::load(&dir.join(name)).unwrap();
    assert!(cursor.is_none(), "a fresh store");
    store
}

async fn export(
    tx: &mpsc::Sender<ExportRequest>,
    dest: &Path,
) -> Result<ExportManifest, SnapshotError> {
    let (reply, answer) = oneshot::channel();
    tx.send(ExportRequest {
        dest_dir: dest.to_path_buf(),
        reply,
    })
    .await
    .unwrap();
    answer.await.expect("the export is answered")
}

fn manifest_scope_on_disk(dest: &Path) -> serde_json::Value {
    let text = std::fs::read(dest.join(kvfold::MANIFEST_FILE)).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&text).unwrap();
    json["scope"].clone()
}

// ---------------------------------------------------------------------------
// Flush triggers (docs/watch-applied.md, "Executor tests" 1).
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
// Unknown versions (docs/watch-applied.md, "Executor tests" 3).
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
// Fail-stop (docs/watch-applied.md, "Executor tests" 4).
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
    assert_eq!(probe.batches().len(), 18);
    assert_eq!(
        probe.parses(),
        18,
        "nothing after the sixteenth failure was ingested"
    );
}

// ---------------------------------------------------------------------------
// Exports (docs/watch-applied.md, "Executor tests" 5 and 6).
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

// ---------------------------------------------------------------------------
// The store comes back; in-process resume (docs/watch-applied.md, "Executor tests" 7).
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
    RepairRefused,
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
    if let Exit::RepairRefused = exit {
        // Relist (a reader) is not available in this version: refused at start.
        let conn = MemoryConnection::new();
        conn.connect().await.unwrap();
        let bucket = conn.store("refused").await.unwrap();
        let (_tx, shutdown) = watch::channel(false);
        return watch_applied_owned(
            watcher,
            scope,
            resume,
            Some(bucket.reader()),
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
        ("repair refused", Exit::RepairRefused, Err("Relist")),
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

async fn memory_bucket(name: &str) -> (MemoryConnection, Arc<dyn KvStore>) {
    let conn = MemoryConnection::new();
    conn.connect().await.unwrap();
    let store = conn
        .store_with_config(StoreConfig {
            name: name.to_string(),
            max_history: Some(10),
            max_bytes: Some(-1),
            ..StoreConfig::default()
        })
        .await
        .unwrap();
    (conn, store)
}

/// Revisions `apply` saw, in order.
type Revs = Arc<Mutex<Vec<u64>>>;

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
// Closing the store, watch_applied only (docs/watch-applied.md, "Executor tests" 8).
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
// Abort-on-drop (docs/watch-applied.md, "Executor tests" 9).
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

// ---------------------------------------------------------------------------
// Span fields, notice events, FoldProgress (docs/watch-applied.md, "Executor tests" 11).
// ---------------------------------------------------------------------------

mod capture {
    use super::*;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    #[derive(Debug, Clone, Default)]
    pub struct SpanRec {
        pub name: String,
        pub field_names: Vec<String>,
        pub values: BTreeMap<String, String>,
    }

    #[derive(Debug, Clone)]
    pub struct EventRec {
        pub target: String,
        pub level: Level,
        pub fields: BTreeMap<String, String>,
        pub span: Option<String>,
    }

    impl EventRec {
        pub fn message(&self) -> &str {
            self.fields.get("message").map_or("", String::as_str)
        }

        pub fn field(&self, name: &str) -> Option<&str> {
            self.fields.get(name).map(String::as_str)
        }
    }

    #[derive(Default)]
    pub struct Captured {
        pub spans: Vec<SpanRec>,
        pub events: Vec<EventRec>,
    }

    /// A minimal collector: every span and event, with its fields as text.
    #[derive(Clone, Default)]
    pub struct Collector {
        pub captured: Arc<Mutex<Captured>>,
    }

    thread_local! {
        static ENTERED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    }

    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl Visit for Fields<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_string(), value.to_string());
        }

        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0
                .insert(field.name().to_string(), format!("{value:?}"));
        }
    }

    impl Subscriber for Collector {
        fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
            true
        }

        fn new_span(&self, attrs: &Attributes<'_>) -> Id {
            let mut rec = SpanRec {
                name: attrs.metadata().name().to_string(),
                field_names: attrs
                    .metadata()
                    .fields()
                    .iter()
                    .map(|f| f.name().to_string())
                    .collect(),
                values: BTreeMap::new(),
            };
            attrs.record(&mut Fields(&mut rec.values));
            let mut captured = self.captured.lock().unwrap();
            captured.spans.push(rec);
            Id::from_u64(captured.spans.len() as u64)
        }

        fn record(&self, span: &Id, values: &Record<'_>) {
            let mut captured = self.captured.lock().unwrap();
            let index = usize::try_from(span.into_u64()).unwrap() - 1;
            values.record(&mut Fields(&mut captured.spans[index].values));
        }

        fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

        fn event(&self, event: &Event<'_>) {
            let mut fields = BTreeMap::new();
            event.record(&mut Fields(&mut fields));
            let mut captured = self.captured.lock().unwrap();
            let span = ENTERED.with(|e| e.borrow().last().copied()).map(|id| {
                captured.spans[usize::try_from(id).unwrap() - 1]
                    .name
                    .clone()
            });
            captured.events.push(EventRec {
                target: event.metadata().target().to_string(),
                level: *event.metadata().level(),
                fields,
                span,
            });
        }

        fn enter(&self, span: &Id) {
            ENTERED.with(|e| e.borrow_mut().push(span.into_u64()));
        }

        fn exit(&self, span: &Id) {
            ENTERED.with(|e| {
                let mut entered = e.borrow_mut();
                if let Some(at) = entered.iter().rposition(|&id| id == span.into_u64()) {
                    entered.remove(at);
                }
            });
        }
    }
}

#[tokio::test]
async fn span_fields_and_notice_events_are_emitted() {
    use tracing::Level;
    let collector = capture::Collector::default();
    let captured = Arc::clone(&collector.captured);
    let _default = tracing::subscriber::set_default(collector);

    let (watcher, feed) = Scripted::new();
    // Store at 2, resume at 1: a ResumeMismatch notice.
    let store = TestStore::at(2);
    store.ctl.lock().unwrap().fail_next = 1;
    let (export_tx, exports) = mpsc::channel(1);
    let progress = FoldProgress::new();
    let seen: Revs = Arc::default();
    let (seen_in, progress_in) = (Arc::clone(&seen), progress.clone());
    let (shutdown_tx, shutdown) = watch::channel(false);
    let run = tokio::spawn(watch_applied_owned(
        watcher.clone(),
        WatchScope::Prefixes(vec!["a.".into(), "b.".into()]),
        Some(WatchCursor::from_u64(1)),
        None,
        Some(store),
        Some(exports),
        cfg(HOUR, 1),
        |u: &KvUpdate| Some(u.key().to_string()),
        |_b: Vec<String>| {},
        progress.track(move |c: WatchCursor| {
            // FoldProgress records the cursor before calling the wrapped callback.
            assert_eq!(progress_in.applied_revision(), Some(c.rank()));
            seen_in.lock().unwrap().push(c.rank());
        }),
        shutdown,
    ));
    feed.send(put("a.x", 3)); // the commit fails: re-queued
    wait_for("applied 3", || seen.lock().unwrap().last() == Some(&3)).await;
    feed.send(put("b.y", 4)); // the cumulative commit succeeds
    wait_for("applied 4", || seen.lock().unwrap().last() == Some(&4)).await;
    let refused = export(
        &export_tx,
        &std::env::temp_dir().join("kvfold-test-refused"),
    )
    .await;
    assert!(refused.is_err());
    shutdown_tx.send(true).unwrap();
    let end = run.await.unwrap();
    assert_eq!(end.result, Ok(WatchCursor::from_u64(4)));
    assert_eq!(*seen.lock().unwrap(), vec![3, 4]);
    assert_eq!(progress.applied_revision(), Some(4));
    assert_eq!(
        watcher.calls(),
        vec![r#"prefixes ["a.", "b."] from 1"#.to_string()]
    );

    let captured = captured.lock().unwrap();
    let spans: Vec<&capture::SpanRec> = captured
        .spans
        .iter()
        .filter(|s| s.name == "kvfold.watch")
        .collect();
    assert_eq!(spans.len(), 1, "one span per run");
    let span = spans[0];
    assert_eq!(
        span.field_names,
        keys(&[
            "bucket",
            "scope",
            "resume",
            "store",
            "repair",
            "applied",
            "committed"
        ])
    );
    let value = |name: &str| span.values.get(name).map(String::as_str);
    assert_eq!(value("bucket"), Some("scripted"));
    assert_eq!(value("scope"), Some(r#"["a.", "b."]"#));
    assert_eq!(value("resume"), Some("1"));
    assert_eq!(value("store"), Some("true"));
    assert_eq!(value("repair"), Some("None"));
    assert_eq!(value("applied"), Some("4"));
    assert_eq!(value("committed"), Some("4"));

    let fold_events: Vec<&capture::EventRec> = captured
        .events
        .iter()
        .filter(|e| e.target == "kvfold::fold")
        .collect();
    for e in &fold_events {
        assert_eq!(
            e.span.as_deref(),
            Some("kvfold.watch"),
            "emitted inside the span: {e:?}"
        );
    }
    let find = |message: &str| {
        fold_events
            .iter()
            .find(|e| e.message() == message)
            .unwrap_or_else(|| panic!("no {message:?} event in {fold_events:#?}"))
    };
    let mismatch = find("resume cursor differs from the store's");
    assert_eq!(mismatch.level, Level::WARN);
    assert_eq!(
        (mismatch.field("resume"), mismatch.field("store")),
        (Some("1"), Some("2"))
    );

    let failed = find("store apply failed; batch re-queued");
    assert_eq!(failed.level, Level::WARN);
    assert_eq!(failed.field("streak"), Some("1"));
    assert_eq!(
        failed.field("error"),
        Some("snapshot backend error: injected failure")
    );

    let flushed: Vec<_> = fold_events
        .iter()
        .filter(|e| e.message() == "flushed")
        .collect();
    assert_eq!(flushed.len(), 2, "{flushed:#?}");
    // The second flush carries the re-queued update too.
    for (e, (raw, rank)) in flushed.iter().zip([("1", "3"), ("2", "4")]) {
        assert_eq!(e.level, Level::DEBUG);
        assert_eq!(
            (e.field("parsed"), e.field("raw"), e.field("cursor")),
            (Some("1"), Some(raw), Some(rank))
        );
    }

    let committed = find("committed");
    assert_eq!(committed.level, Level::DEBUG);
    assert_eq!(
        (committed.field("cursor"), committed.field("raw")),
        (Some("4"), Some("2"))
    );

    // The export event's level and error/cursor fields: see
    // exports_are_logged_with_their_outcome.
    let served: Vec<_> = fold_events
        .iter()
        .filter(|e| e.field("ok").is_some())
        .collect();
    assert_eq!(served.len(), 1, "{served:#?}");
    assert_eq!(served[0].field("ok"), Some("false"));
    assert!(
        served[0]
            .field("dest")
            .is_some_and(|d| d.ends_with("kvfold-test-refused"))
    );

    let finished = find("watch finished");
    assert_eq!(finished.level, Level::INFO);
    assert_eq!(finished.field("cursor"), Some("4"));
}

/// docs/watch-applied.md, "Notices": `ExportServed` is INFO with the artifact's cursor when the
/// export succeeded and WARN with the error when it failed; the executor adds
/// `dest` and `cursor`/`error` from its export slot.
#[tokio::test]
async fn exports_are_logged_with_their_outcome() {
    use tracing::Level;
    let collector = capture::Collector::default();
    let captured = Arc::clone(&collector.captured);
    let _default = tracing::subscriber::set_default(collector);

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
    let occupied = dir.path().join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("someone-elses-file"), b"x").unwrap();
    let refused = export(&export_tx, &occupied).await.unwrap_err().to_string();
    let dest = dir.path().join("artifact");
    assert_eq!(export(&export_tx, &dest).await.unwrap().cursor.rank(), 1);
    shutdown.send(true).unwrap();
    assert_eq!(run.await.unwrap().result, Ok(WatchCursor::from_u64(1)));

    let captured = captured.lock().unwrap();
    let served: Vec<&capture::EventRec> = captured
        .events
        .iter()
        .filter(|e| e.target == "kvfold::fold" && e.field("ok").is_some())
        .collect();
    assert_eq!(served.len(), 2, "{served:#?}");
    let (failed, ok) = (served[0], served[1]);
    assert_eq!(failed.field("ok"), Some("false"));
    assert_eq!(
        failed.field("dest"),
        Some(occupied.display().to_string().as_str())
    );
    assert_eq!(ok.field("ok"), Some("true"));
    assert_eq!(ok.field("dest"), Some(dest.display().to_string().as_str()));
    assert_eq!(ok.level, Level::INFO);
    // The fields the executor takes from its export slot.
    assert_eq!(
        (failed.level, failed.field("error"), ok.field("cursor")),
        (Level::WARN, Some(refused.as_str()), Some("1")),
        "failed export event: {failed:?}; served export event: {ok:?}"
    );
}

#[tokio::test]
async fn an_expired_cursor_is_logged_by_the_watch_task_inside_the_span() {
    use tracing::Level;
    let collector = capture::Collector::default();
    let captured = Arc::clone(&collector.captured);
    let _default = tracing::subscriber::set_default(collector);

    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    feed.end(Err(KvError::CursorExpired));
    let (run, shutdown) = start(
        watcher.clone(),
        WatchScope::All,
        Some(WatchCursor::from_u64(4)),
        None::<TestStore>,
        None,
        cfg(HOUR, 100),
        &probe,
        accept_all,
    );
    // ExpiryRepair::None: the expired resume falls back to a full watch.
    wait_for("the full watch", || watcher.calls().len() == 2).await;
    assert_eq!(watcher.calls(), keys(&["all from 4", "all"]));
    shutdown.send(true).unwrap();
    assert_eq!(run.await.unwrap().result, Ok(WatchCursor::from_u64(4)));

    let captured = captured.lock().unwrap();
    let expired: Vec<&capture::EventRec> = captured
        .events
        .iter()
        .filter(|e| e.target == "kvfold::repair")
        .collect();
    assert_eq!(expired.len(), 1, "{expired:#?}");
    assert_eq!(expired[0].level, Level::WARN);
    assert_eq!(expired[0].field("cursor"), Some("4"));
    assert_eq!(expired[0].span.as_deref(), Some("kvfold.watch"));
}
