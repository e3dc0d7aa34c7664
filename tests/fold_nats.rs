//! `watch_applied` live against real nats-server processes (docs/verification.md, "Live
//! tests against nats-server", docs/nats-backend.md, "Test harness"): a NATS bucket folded
//! into an `AppendLogSnapshot`; resume from the store's cursor without gaps or repeats; the
//! cursor moving over parse-rejected updates; a kill -9 of the server mid-fold; an R3
//! cluster losing its stream leader mid-fold; export from a live fold, import into a fresh
//! replica and resume it with only the tail.
#![cfg(feature = "nats")]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fold::{batch, export, supervise};
use common::nats::{NatsCluster, NatsServer};
use common::wait::wait_until;
use kvfold::{
    AppendLogSnapshot, Connection, ExportRequest, KvError, KvStore, KvUpdate, KvWatcher, KvWriter,
    SnapshotStore, StoreConfig, VersionToken, WatchCursor, WatchEnd, WatchScope,
    watch_applied_owned,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

fn named(name: &str, replicas: usize) -> StoreConfig {
    common::config::replicated(name, 10, replicas)
}

use crate::common::nats::connected;

/// key → (value, revision).
type State = BTreeMap<String, (Vec<u8>, u64)>;

/// The application's side of a fold: its state, every update `apply` saw (as
/// revisions, in order), and the last `on_applied` cursor.
#[derive(Default)]
struct Domain {
    state: State,
    revisions: Vec<u64>,
    cursor: u64,
}

#[derive(Clone, Default)]
struct Fold(Arc<Mutex<Domain>>);

impl Fold {
    fn cursor(&self) -> u64 {
        self.0.lock().unwrap().cursor
    }

    fn revisions(&self) -> Vec<u64> {
        self.0.lock().unwrap().revisions.clone()
    }

    fn state(&self) -> State {
        self.0.lock().unwrap().state.clone()
    }

    /// Runs `watch_applied_owned` once with this domain's closures; `reject`ed
    /// updates parse to `None`.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        watcher: Arc<dyn KvWatcher>,
        scope: WatchScope,
        resume: Option<WatchCursor>,
        store: AppendLogSnapshot,
        exports: Option<mpsc::Receiver<ExportRequest>>,
        reject: fn(&KvUpdate) -> bool,
        shutdown: watch::Receiver<bool>,
    ) -> impl Future<Output = WatchEnd<AppendLogSnapshot>> + Send + 'static {
        let (applier, notifier) = (self.clone(), self.clone());
        watch_applied_owned(
            watcher,
            scope,
            resume,
            None,
            Some(store),
            exports,
            batch(),
            move |u: &KvUpdate| (!reject(u)).then(|| u.clone()),
            move |updates: Vec<KvUpdate>| {
                let mut domain = applier.0.lock().unwrap();
                for u in updates {
                    domain
                        .revisions
                        .push(u.version().as_u64().expect("NATS versions are revisions"));
                    match u {
                        KvUpdate::Put(e) => {
                            let rev = e.version.as_u64().unwrap();
                            domain.state.insert(e.key, (e.value, rev));
                        }
                        KvUpdate::Delete { key, .. } | KvUpdate::Purge { key, .. } => {
                            domain.state.remove(&key);
                        }
                    }
                }
            },
            move |c: WatchCursor| notifier.0.lock().unwrap().cursor = c.rank(),
            shutdown,
        )
    }

    /// Spawns one run; returns it with its shutdown sender.
    fn spawn(
        &self,
        watcher: Arc<dyn KvWatcher>,
        scope: WatchScope,
        resume: Option<WatchCursor>,
        store: AppendLogSnapshot,
        exports: Option<mpsc::Receiver<ExportRequest>>,
        reject: fn(&KvUpdate) -> bool,
    ) -> (JoinHandle<WatchEnd<AppendLogSnapshot>>, watch::Sender<bool>) {
        let (tx, shutdown) = watch::channel(false);
        let run = tokio::spawn(self.run(watcher, scope, resume, store, exports, reject, shutdown));
        (run, tx)
    }

    /// Runs the fold as a caller would: whenever a run ends with an error, it is
    /// restarted with `resume = end.applied` and the store it handed back, until
    /// `shutdown`. Returns the store and every error a run ended with.
    async fn supervise(
        self,
        watcher: Arc<dyn KvWatcher>,
        path: PathBuf,
        shutdown: watch::Receiver<bool>,
    ) -> (AppendLogSnapshot, Vec<KvError>) {
        supervise(&path, |resume, store| {
            self.run(
                Arc::clone(&watcher),
                WatchScope::All,
                Some(resume),
                store,
                None,
                accept_all,
                shutdown.clone(),
            )
        })
        .await
    }
}

fn accept_all(_: &KvUpdate) -> bool {
    false
}

/// The bucket's live state through the reader. A listing that times out is
/// retried (a read has no side effect): after an R3 leader loss a listing
/// consumer can stay silent until the 30 s bound (see the report in the
/// R3 test below).
async fn bucket_state(bucket: &Arc<dyn KvStore>, prefix: &str) -> State {
    for attempt in 1..=3 {
        let started = Instant::now();
        match bucket.reader().scan(prefix).await {
            Ok(entries) => {
                return entries
                    .into_iter()
                    .map(|e| (e.key, (e.value, e.version.as_u64().unwrap())))
                    .collect();
            }
            Err(KvError::Timeout) => {
                println!(
                    "scan attempt {attempt} timed out after {:?}",
                    started.elapsed()
                );
            }
            Err(e) => panic!("scan failed: {e:?}"),
        }
    }
    panic!("scan timed out three times");
}

fn store_state(store: &AppendLogSnapshot) -> State {
    store
        .range("")
        .unwrap()
        .into_iter()
        .map(|e| (e.key, (e.value, e.version.as_u64().unwrap())))
        .collect()
}

async fn put(writer: &dyn KvWriter, key: &str, value: &str) -> u64 {
    writer
        .put(key, value.as_bytes())
        .await
        .unwrap()
        .as_u64()
        .unwrap()
}

/// Closes a store handed back by a run (off the runtime) and reopens it from disk.
async fn reopen(store: AppendLogSnapshot, path: &Path) -> (WatchCursor, AppendLogSnapshot) {
    tokio::task::spawn_blocking(move || drop(store))
        .await
        .unwrap();
    AppendLogSnapshot::load(path).unwrap()
}

fn strictly_increasing(revisions: &[u64]) -> bool {
    revisions.windows(2).all(|w| w[0] < w[1])
}

// ---------------------------------------------------------------------------
// (a) End to end.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_folds_into_an_append_log_end_to_end() {
    let server = NatsServer::start();
    let conn = connected(server.url()).await;
    let bucket = conn.store_with_config(named("e2e", 1)).await.unwrap();
    let writer = bucket.writer().unwrap();
    // Before the fold: values, overwrites and a delete (state-sync delivers them).
    for i in 1..=10 {
        put(&*writer, &format!("a.{i}"), &format!("a{i}")).await;
    }
    put(&*writer, "a.1", "a1-again").await;
    writer.delete("a.3").await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    let (cursor, store) = AppendLogSnapshot::load(&path).unwrap();
    assert!(cursor.is_none());
    let fold = Fold::default();
    let (run, shutdown) = fold.spawn(
        bucket.watcher().unwrap(),
        WatchScope::All,
        Some(cursor),
        store,
        None,
        accept_all,
    );
    // While it runs: more values, a delete, an overwrite.
    for i in 1..=10 {
        put(&*writer, &format!("b.{i}"), &format!("b{i}")).await;
    }
    writer.delete("a.4").await.unwrap();
    let last = put(&*writer, "a.5", "a5-again").await;
    wait_until(
        "the fold reaches the last write",
        Duration::from_secs(10),
        || fold.cursor() == last,
    )
    .await;
    shutdown.send(true).unwrap();
    let end = run.await.unwrap();
    assert_eq!(end.result, Ok(WatchCursor::from_u64(last)));
    assert_eq!(end.applied, WatchCursor::from_u64(last));

    let truth = bucket_state(&bucket, "").await;
    assert_eq!(truth.len(), 18, "a.1..a.10 minus a.3, a.4, plus b.1..b.10");
    assert_eq!(fold.state(), truth, "the domain equals the bucket");
    let store = end.store.unwrap();
    assert_eq!(store.cursor().rank(), last);
    assert_eq!(store_state(&store), truth, "the store equals the bucket");
    assert!(
        strictly_increasing(&fold.revisions()),
        "{:?}",
        fold.revisions()
    );
    // And so does what is on disk.
    let (cursor, reopened) = reopen(store, &path).await;
    assert_eq!(cursor.rank(), last);
    assert_eq!(store_state(&reopened), truth);
}

// ---------------------------------------------------------------------------
// (b) Resume from the store's cursor.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_from_the_store_cursor_gets_every_later_write_once() {
    let server = NatsServer::start();
    let conn = connected(server.url()).await;
    let bucket = conn.store_with_config(named("resume", 1)).await.unwrap();
    let writer = bucket.writer().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    for i in 1..=10 {
        put(&*writer, &format!("w.{i}"), "v").await;
    }

    // Run 1: w.1..w.10 by state-sync, w.11..w.20 live.
    let (cursor, store) = AppendLogSnapshot::load(&path).unwrap();
    let first = Fold::default();
    let (run, shutdown) = first.spawn(
        bucket.watcher().unwrap(),
        WatchScope::All,
        Some(cursor),
        store,
        None,
        accept_all,
    );
    for i in 11..=20 {
        put(&*writer, &format!("w.{i}"), "v").await;
    }
    wait_until("run 1 at 20", Duration::from_secs(10), || {
        first.cursor() == 20
    })
    .await;
    shutdown.send(true).unwrap();
    let end = run.await.unwrap();
    assert_eq!(end.result, Ok(WatchCursor::from_u64(20)));
    assert_eq!(first.revisions(), (1..=20).collect::<Vec<u64>>());

    // Stopped: w.21..w.30 are written. The process "restarts": the store is
    // reopened from disk and the run resumes from its cursor.
    for i in 21..=30 {
        put(&*writer, &format!("w.{i}"), "v").await;
    }
    let (cursor, store) = reopen(end.store.unwrap(), &path).await;
    assert_eq!(cursor.rank(), 20);
    let second = Fold::default();
    let (run, shutdown) = second.spawn(
        bucket.watcher().unwrap(),
        WatchScope::All,
        Some(cursor),
        store,
        None,
        accept_all,
    );
    for i in 31..=40 {
        put(&*writer, &format!("w.{i}"), "v").await;
    }
    wait_until("run 2 at 40", Duration::from_secs(10), || {
        second.cursor() == 40
    })
    .await;
    shutdown.send(true).unwrap();
    let end = run.await.unwrap();
    assert_eq!(end.result, Ok(WatchCursor::from_u64(40)));
    assert_eq!(
        second.revisions(),
        (21..=40).collect::<Vec<u64>>(),
        "every later write once: no gap, nothing committed re-delivered"
    );
    let store = end.store.unwrap();
    assert_eq!(store_state(&store), bucket_state(&bucket, "").await);
}

// ---------------------------------------------------------------------------
// (c) Parse-rejected updates.
// ---------------------------------------------------------------------------

fn rejects_skipped(u: &KvUpdate) -> bool {
    u.key().starts_with("skip.")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_cursor_moves_over_parse_rejected_updates() {
    let server = NatsServer::start();
    let conn = connected(server.url()).await;
    let bucket = conn.store_with_config(named("rejects", 1)).await.unwrap();
    let writer = bucket.writer().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    let (cursor, store) = AppendLogSnapshot::load(&path).unwrap();
    let fold = Fold::default();
    let (run, shutdown) = fold.spawn(
        bucket.watcher().unwrap(),
        WatchScope::All,
        Some(cursor),
        store,
        None,
        rejects_skipped,
    );
    let a = put(&*writer, "a", "1").await;
    wait_until("a applied", Duration::from_secs(10), || fold.cursor() == a).await;
    // Only rejected updates from here on.
    let mut last = 0;
    for i in 1..=5 {
        last = put(&*writer, &format!("skip.{i}"), "x").await;
    }
    assert_eq!(last, a + 5);
    wait_until(
        "the cursor over the rejected run",
        Duration::from_secs(10),
        || fold.cursor() == last,
    )
    .await;
    shutdown.send(true).unwrap();
    let end = run.await.unwrap();
    assert_eq!(end.result, Ok(WatchCursor::from_u64(last)));
    assert_eq!(
        fold.revisions(),
        vec![a],
        "apply saw only the accepted update"
    );
    assert_eq!(fold.state().keys().collect::<Vec<_>>(), vec!["a"]);
    let store = end.store.unwrap();
    assert_eq!(store.cursor().rank(), last);
    assert_eq!(
        store_state(&store),
        bucket_state(&bucket, "").await,
        "rejected updates are in the store"
    );
    let (cursor, store) = reopen(store, &path).await;
    assert_eq!(cursor.rank(), last, "and durably so");
    assert_eq!(
        store.get("skip.3").unwrap().map(|e| e.value),
        Some(b"x".to_vec())
    );

    // A restart from that cursor delivers none of them again.
    let again = Fold::default();
    let (run, shutdown) = again.spawn(
        bucket.watcher().unwrap(),
        WatchScope::All,
        Some(cursor),
        store,
        None,
        rejects_skipped,
    );
    let b = put(&*writer, "b", "2").await;
    wait_until("b applied", Duration::from_secs(10), || again.cursor() == b).await;
    shutdown.send(true).unwrap();
    assert_eq!(run.await.unwrap().result, Ok(WatchCursor::from_u64(b)));
    assert_eq!(again.revisions(), vec![b]);
}

// ---------------------------------------------------------------------------
// (d), (e) Faults mid-fold.
// ---------------------------------------------------------------------------

/// Writes `w.<i>` = `i` for i in 0..n, `pause` apart, retrying each until it is
/// acknowledged. A write in flight when its server dies gets no answer until the
/// backend's 30 s bound; like an impatient caller, the writer gives up on an
/// attempt after [`ATTEMPT`] and writes again. An attempt given up on may still
/// have landed: its retry lands again under a later revision, which is the one
/// acknowledged. Returns the number of failed attempts; fills `acked` with every
/// acknowledged (key, value, revision).
fn spawn_writer(
    writer: Arc<dyn KvWriter>,
    n: usize,
    pause: Duration,
    acked: Arc<Mutex<Vec<(String, String, u64)>>>,
    done: Arc<AtomicBool>,
) -> JoinHandle<usize> {
    tokio::spawn(async move {
        let mut failed = 0;
        for i in 0..n {
            let (key, value) = (format!("w.{i}"), i.to_string());
            let deadline = Instant::now() + Duration::from_secs(60);
            let version: VersionToken = loop {
                let attempt =
                    tokio::time::timeout(ATTEMPT, writer.put(&key, value.as_bytes())).await;
                let error = match attempt {
                    Ok(Ok(v)) => break v,
                    Ok(Err(e)) => format!("{e:?}"),
                    Err(_) => format!("no answer within {ATTEMPT:?}"),
                };
                println!("write {i}: {error}");
                assert!(
                    Instant::now() < deadline,
                    "write {i} never acknowledged: {error}"
                );
                failed += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            acked
                .lock()
                .unwrap()
                .push((key, value, version.as_u64().unwrap()));
            tokio::time::sleep(pause).await;
        }
        done.store(true, Ordering::SeqCst);
        failed
    })
}

/// How long the writer waits for one attempt.
const ATTEMPT: Duration = Duration::from_secs(3);

/// The checks after a fault: the fold converged on the bucket, nothing
/// acknowledged is missing, and `apply` saw every revision once, in order.
async fn assert_converged(
    bucket: &Arc<dyn KvStore>,
    fold: &Fold,
    store: &AppendLogSnapshot,
    acked: &[(String, String, u64)],
    last: u64,
) {
    let truth = bucket_state(bucket, "").await;
    let keys: std::collections::BTreeSet<&String> = acked.iter().map(|(k, _, _)| k).collect();
    assert_eq!(truth.len(), keys.len(), "one live key per write");
    assert_eq!(fold.state(), truth, "the domain equals the bucket");
    assert_eq!(store_state(store), truth, "the store equals the bucket");
    assert_eq!(store.cursor().rank(), last);
    for (key, value, revision) in acked {
        let (got, rev) = truth
            .get(key)
            .unwrap_or_else(|| panic!("acknowledged {key} is missing"));
        assert_eq!(got, value.as_bytes(), "{key}");
        assert!(
            rev >= revision,
            "{key}: folded at {rev}, acknowledged at {revision}"
        );
    }
    let revisions = fold.revisions();
    assert_eq!(
        revisions,
        (1..=last).collect::<Vec<u64>>(),
        "apply saw every revision exactly once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_survives_a_kill_9_of_the_server() {
    let mut server = NatsServer::start();
    let conn = connected(server.url()).await;
    let bucket = conn.store_with_config(named("crash", 1)).await.unwrap();
    let watcher = bucket.watcher().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fold = Fold::default();
    let (stop, stopped) = watch::channel(false);
    let supervisor = tokio::spawn(fold.clone().supervise(
        Arc::clone(&watcher),
        dir.path().join("fold.snap"),
        stopped,
    ));

    let acked = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let writes = spawn_writer(
        bucket.writer().unwrap(),
        120,
        Duration::from_millis(10),
        Arc::clone(&acked),
        Arc::clone(&done),
    );
    wait_until("40 writes", Duration::from_secs(20), || {
        acked.lock().unwrap().len() >= 40
    })
    .await;
    let before = fold.cursor();
    tokio::task::block_in_place(|| server.kill());
    println!("killed the server with the fold at {before}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    tokio::task::block_in_place(|| server.restart());
    println!("restarted the server");
    let retries = writes.await.unwrap();
    assert!(done.load(Ordering::SeqCst));
    let last = watcher
        .last_revision()
        .await
        .unwrap()
        .expect("NATS reports the head");
    wait_until("the fold converges", Duration::from_secs(30), || {
        fold.cursor() == last
    })
    .await;
    stop.send(true).unwrap();
    let (store, errors) = supervisor.await.unwrap();
    println!("failed write attempts: {retries}; fold runs ended with errors: {errors:?}");
    let acked = acked.lock().unwrap().clone();
    assert_converged(&bucket, &fold, &store, &acked, last).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_survives_an_r3_stream_leader_loss() {
    let t0 = Instant::now();
    let mut cluster = NatsCluster::start(3);
    println!("{:?}: cluster up", t0.elapsed());
    let conn = connected(cluster.urls()).await;
    let bucket = conn.store_with_config(named("fold_r3", 3)).await.unwrap();
    let watcher = bucket.watcher().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fold = Fold::default();
    let (stop, stopped) = watch::channel(false);
    let supervisor = tokio::spawn(fold.clone().supervise(
        Arc::clone(&watcher),
        dir.path().join("fold.snap"),
        stopped,
    ));

    let acked = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let writes = spawn_writer(
        bucket.writer().unwrap(),
        90,
        Duration::from_millis(10),
        Arc::clone(&acked),
        Arc::clone(&done),
    );
    wait_until("30 writes", Duration::from_secs(30), || {
        acked.lock().unwrap().len() >= 30
    })
    .await;
    let before = fold.cursor();
    let killed = tokio::task::block_in_place(|| cluster.kill_leader("KV_fold_r3"));
    println!(
        "{:?}: killed stream leader n{killed} with the fold at {before}",
        t0.elapsed()
    );
    let retries = writes.await.unwrap();
    println!("{:?}: writes done", t0.elapsed());
    let last = watcher
        .last_revision()
        .await
        .unwrap()
        .expect("NATS reports the head");
    wait_until("the fold converges", Duration::from_secs(60), || {
        fold.cursor() == last
    })
    .await;
    println!("{:?}: the fold converged at {last}", t0.elapsed());
    stop.send(true).unwrap();
    let (store, errors) = supervisor.await.unwrap();
    println!("failed write attempts: {retries}; fold runs ended with errors: {errors:?}");
    let acked = acked.lock().unwrap().clone();
    assert_converged(&bucket, &fold, &store, &acked, last).await;
}

// ---------------------------------------------------------------------------
// (f) Export, import, resume the tail.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_fold_imports_into_a_replica_that_resumes_with_only_the_tail() {
    let server = NatsServer::start();
    let conn = connected(server.url()).await;
    let bucket = conn.store_with_config(named("exports", 1)).await.unwrap();
    let writer = bucket.writer().unwrap();
    let prefixes = vec!["app.".to_string(), "cfg.".to_string()];
    let scope = WatchScope::Prefixes(prefixes.clone());
    let dir = tempfile::tempdir().unwrap();

    // The primary fold, live, with an export channel.
    let (cursor, store) = AppendLogSnapshot::load(&dir.path().join("primary.snap")).unwrap();
    let primary = Fold::default();
    let (export_tx, exports) = mpsc::channel(1);
    let (run, shutdown) = primary.spawn(
        bucket.watcher().unwrap(),
        scope.clone(),
        Some(cursor),
        store,
        Some(exports),
        accept_all,
    );
    let mut head = 0;
    for i in 1..=6 {
        put(&*writer, &format!("other.{i}"), "out of scope").await;
        head = put(&*writer, &format!("app.{i}"), &format!("a{i}")).await;
        if i % 2 == 0 {
            head = put(&*writer, &format!("cfg.{i}"), &format!("c{i}")).await;
        }
    }
    wait_until("the primary at the head", Duration::from_secs(10), || {
        primary.cursor() == head
    })
    .await;
    let at_export = primary.state();

    let artifact = dir.path().join("artifact");
    let manifest = export(&export_tx, &artifact).await.unwrap();
    assert_eq!(manifest.cursor.rank(), head);
    assert_eq!(
        manifest.scope,
        Some(prefixes.clone()),
        "the artifact records the watch's prefix list"
    );
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(artifact.join(kvfold::MANIFEST_FILE)).unwrap())
            .unwrap();
    assert_eq!(on_disk["scope"], serde_json::json!(["app.", "cfg."]));

    // The tail: in-scope writes (new keys, an overwrite, a delete) and out-of-scope noise.
    let mut tail = Vec::new();
    for i in 7..=9 {
        tail.push(put(&*writer, &format!("app.{i}"), &format!("a{i}")).await);
        put(&*writer, &format!("other.{i}"), "out of scope").await;
    }
    let overwrite = put(&*writer, "cfg.2", "c2-again").await;
    tail.push(overwrite);
    writer.delete("app.1").await.unwrap();
    tail.push(overwrite + 1); // the delete marker: the next revision

    // A fresh replica from the artifact, resumed from the artifact's cursor.
    let (cursor, replica_store) =
        AppendLogSnapshot::import(&artifact, &dir.path().join("replica.snap"), 1 << 20).unwrap();
    assert_eq!(cursor, manifest.cursor);
    assert_eq!(
        store_state(&replica_store),
        at_export,
        "the artifact holds the fold as exported"
    );
    let replica = Fold::default();
    let (replica_run, replica_shutdown) = replica.spawn(
        bucket.watcher().unwrap(),
        scope.clone(),
        Some(cursor),
        replica_store,
        None,
        accept_all,
    );
    let last = *tail.last().unwrap();
    wait_until(
        "the replica at the tail's head",
        Duration::from_secs(10),
        || replica.cursor() == last,
    )
    .await;
    wait_until(
        "the primary at the tail's head",
        Duration::from_secs(10),
        || primary.cursor() == last,
    )
    .await;
    replica_shutdown.send(true).unwrap();
    shutdown.send(true).unwrap();
    let replica_end = replica_run.await.unwrap();
    let primary_end = run.await.unwrap();
    assert_eq!(replica_end.result, Ok(WatchCursor::from_u64(last)));
    assert_eq!(primary_end.result, Ok(WatchCursor::from_u64(last)));

    assert_eq!(
        replica.revisions().len(),
        5,
        "exactly the in-scope writes after the export"
    );
    assert_eq!(replica.revisions(), tail, "only the tail, in order");
    let truth: State = bucket_state(&bucket, "app.")
        .await
        .into_iter()
        .chain(bucket_state(&bucket, "cfg.").await)
        .collect();
    assert_eq!(store_state(&replica_end.store.unwrap()), truth);
    assert_eq!(store_state(&primary_end.store.unwrap()), truth);
}
