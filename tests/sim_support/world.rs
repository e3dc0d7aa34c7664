//! One simulated world: a `MemoryServer` on a manual clock, a writer, the fold
//! node under test running the real `watch_applied_owned` over a `SimStore`, and
//! the schedule that drives them. Every choice comes from the scenario's seed.
//! The world never decides anything the executor should decide; it only acts,
//! waits on the paused tokio clock, restarts what died, and records.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kvfold::memory::{ManualClock, MemoryServer};
use kvfold::{
    AppendLogSnapshot, BatchConfig, Connection, DirRestore, DiscardPolicy, ExpiryRepair,
    ExportManifest, ExportRequest, KvError, KvPurge, KvReader, KvWatcher, KvWriter, MemoryConfig,
    MemoryConnection, SnapshotStore, StoreConfig, WatchCursor, WatchEnd, WatchScope,
};
use tokio::sync::oneshot;
use tokio::task::JoinError;

use super::board::{Check, Shared, lock};
use super::restore::{SimReader, SimRestore};
use super::rng::Rng;
use super::scenario::{MAX_AGE_MS, Repair, Scenario, Shape};
use super::store::{Mutation, SimStore, entry, fold_of};
use super::truth::{Fold, Op};

use super::compare::{check_domain, check_fold, domain_of, show};
use super::node::{Node, spawn_run};

pub const BUCKET: &str = "sim";
/// Every key the driver writes: three prefixes; `*/r` keys are rejected by `parse`.
pub const KEYS: [&str; 13] = [
    "a/0", "a/1", "a/2", "a/3", "a/r", "b/0", "b/1", "b/2", "b/r", "c/0", "c/1", "c/2", "c/r",
];
/// The out-of-scope entry seeded into the store before the first run (scopes without `b/`).
pub const FOREIGN_KEY: &str = "b/foreign";
/// Virtual time the final catch-up may take before the fold counts as stuck.
const CONVERGE_ROUNDS: usize = 2_000;

pub struct World {
    pub s: Scenario,
    pub shape: Shape,
    rng: Rng,
    pub board: Shared,
    pub dir: tempfile::TempDir,
    clock: ManualClock,
    server: MemoryServer,
    writer: Arc<dyn KvWriter>,
    purger: Arc<dyn KvPurge>,
    status: Arc<dyn KvWatcher>,
    fold_conn: MemoryConnection,
    fold_watcher: Arc<dyn KvWatcher>,
    /// Lists the bucket for a relist repair, over the fold's connection.
    fold_reader: Arc<dyn KvReader>,
    pub spare_watcher: Arc<dyn KvWatcher>,
    /// Lists the bucket for an artifact replica's relist repair.
    pub spare_reader: Arc<dyn KvReader>,
    pub main: Node,
    /// A restore world's exporter: a fault-free fold of the whole bucket that
    /// publishes artifacts into `artifact_root` (the main node restores from them).
    exporter: Option<Node>,
    exporter_watcher: Option<Arc<dyn KvWatcher>>,
    artifact_root: PathBuf,
    /// Evicted current values already counted (restore worlds).
    evicted_seen: std::collections::BTreeSet<u64>,
    paused: bool,
    partitioned: bool,
    pub artifacts: Vec<(PathBuf, ExportManifest)>,
    exports: u64,
    values: u64,
    pub foreign: Fold,
    /// Set when the world cannot go on (a store that does not reopen).
    pub broken: bool,
}

/// Store files live on a RAM file system when there is one (`/dev/shm`, or
/// `KVFOLD_SIM_TMPDIR`): a simulated crash keeps the page cache by construction,
/// and the compactions, exports and imports of thousands of runs would otherwise
/// wait on real fsyncs.
fn sim_dir() -> tempfile::TempDir {
    let base = std::env::var_os("KVFOLD_SIM_TMPDIR")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()));
    match base {
        Some(base) => tempfile::Builder::new()
            .prefix("kvfold-sim-")
            .tempdir_in(base)
            .or_else(|_| tempfile::tempdir())
            .expect("temp dir"),
        None => tempfile::tempdir().expect("temp dir"),
    }
}

async fn connect(
    server: &MemoryServer,
    config: &StoreConfig,
) -> (MemoryConnection, Arc<dyn kvfold::KvStore>) {
    let conn = server.connection();
    conn.connect().await.expect("memory connect");
    let store = conn
        .store_with_config(config.clone())
        .await
        .expect("memory bucket");
    (conn, store)
}

impl World {
    pub async fn new(s: &Scenario, board: Shared) -> Self {
        let shape = Shape::for_scenario(s);
        let clock = ManualClock::new(1_700_000_000_000);
        let server = MemoryServer::new(
            MemoryConfig::new()
                .manual_clock(&clock)
                .watch_queue(shape.watch_queue_len, 8 * 1024 * 1024),
        );
        let config = StoreConfig {
            name: BUCKET.to_string(),
            max_history: Some(shape.max_history),
            max_age: shape.max_age_ms.map(Duration::from_millis),
            max_bytes: shape.max_bytes.or(StoreConfig::default().max_bytes),
            discard: if shape.max_bytes.is_some() {
                DiscardPolicy::Old
            } else {
                DiscardPolicy::default()
            },
            ..StoreConfig::default()
        };
        let (_writer_conn, writer_store) = connect(&server, &config).await;
        let (fold_conn, fold_store) = connect(&server, &config).await;
        let (_spare_conn, spare_store) = connect(&server, &config).await;
        let dir = sim_dir();
        {
            let mut b = lock(&board);
            b.prefixes = shape.scope_prefixes();
            b.mutation = s.mutation;
            b.repairing = s.repair != Repair::None;
            b.restore = s.repair.restores();
            b.loud_base = super::trace::current().loud;
            b.stats.byte_limited_runs += u64::from(shape.max_bytes.is_some());
        }
        let id = lock(&board).add_node(WatchCursor::none());
        {
            let mut b = lock(&board);
            b.nodes[id].plan = s.plan.clone();
            b.nodes[id].armed = true;
        }
        let path = dir.path().join("fold.snap");
        let (cursor, inner) =
            AppendLogSnapshot::open(&path, shape.compact_threshold).expect("fresh store");
        let mut store = SimStore::new(inner, &path, id, Arc::clone(&board), s.seed);
        let mut foreign = Fold::new();
        if shape.seeds_foreign() {
            store.seed_entries(&[entry(FOREIGN_KEY, 999_999, b"untouched")]);
            foreign.insert(FOREIGN_KEY.to_string(), (999_999, b"untouched".to_vec()));
        }
        lock(&board).nodes[id].domain = domain_of(&store.fold());
        let artifact_root = dir.path().join("artifacts");
        let (exporter, exporter_watcher) = if s.repair.restores() {
            std::fs::create_dir_all(&artifact_root).expect("mkdir artifacts");
            std::fs::create_dir_all(dir.path().join("scratch")).expect("mkdir scratch");
            let (_conn, exporter_store) = connect(&server, &config).await;
            let eid = lock(&board).add_node(WatchCursor::none());
            lock(&board).exporter = Some(eid);
            let epath = dir.path().join("exporter.snap");
            let (ecursor, einner) =
                AppendLogSnapshot::open(&epath, shape.compact_threshold).expect("fresh store");
            let estore = SimStore::new(einner, &epath, eid, Arc::clone(&board), s.seed);
            (
                Some(Node {
                    id: eid,
                    path: epath,
                    store: Some(estore),
                    resume: Some(ecursor),
                    run: None,
                }),
                Some(exporter_store.watcher().expect("memory watcher")),
            )
        } else {
            (None, None)
        };
        let fold_reader: Arc<dyn KvReader> = Arc::new(SimReader {
            inner: fold_store.reader(),
            board: Arc::clone(&board),
        });
        Self {
            s: s.clone(),
            shape,
            rng: Rng::derived(s.seed, 1),
            board,
            dir,
            clock,
            server,
            writer: writer_store.writer().expect("memory writer"),
            purger: writer_store.purge_writer().expect("memory purge"),
            status: writer_store.watcher().expect("memory watcher"),
            fold_watcher: fold_store.watcher().expect("memory watcher"),
            fold_reader,
            spare_watcher: spare_store.watcher().expect("memory watcher"),
            spare_reader: spare_store.reader(),
            fold_conn,
            main: Node {
                id,
                path,
                store: Some(store),
                resume: Some(cursor),
                run: None,
            },
            exporter,
            exporter_watcher,
            artifact_root,
            evicted_seen: std::collections::BTreeSet::new(),
            paused: false,
            partitioned: false,
            artifacts: Vec::new(),
            exports: 0,
            values: 0,
            foreign,
            broken: false,
        }
    }

    pub fn config(&self) -> BatchConfig {
        BatchConfig {
            window: Duration::from_millis(self.shape.window_ms),
            max: self.s.batch_max,
            channel_capacity: self.shape.channel_capacity,
        }
    }

    fn log(&self, line: String) {
        lock(&self.board).trace.push(format!("-- {line}"));
    }

    pub fn start(&mut self) {
        if self.main.run.is_none() && !self.broken {
            let (watcher, scope, config) = (
                Arc::clone(&self.fold_watcher),
                self.shape.scope.clone(),
                self.config(),
            );
            let reader = Arc::clone(&self.fold_reader);
            let restore = || -> Arc<dyn kvfold::RestoreSource<SimStore>> {
                Arc::new(SimRestore {
                    inner: DirRestore::new(&self.artifact_root)
                        .with_scratch_dir(self.dir.path().join("scratch")),
                    board: Arc::clone(&self.board),
                })
            };
            let repair = match self.s.repair {
                Repair::None => ExpiryRepair::None,
                Repair::Relist => ExpiryRepair::Relist(reader),
                Repair::Restore => ExpiryRepair::Restore {
                    reader,
                    restore: restore(),
                },
                Repair::Auto => ExpiryRepair::Auto {
                    reader,
                    restore: restore(),
                },
            };
            spawn_run(&mut self.main, watcher, scope, config, repair, &self.board);
        }
        self.start_exporter();
    }

    /// Starts the exporter's run when it has none (restore worlds).
    fn start_exporter(&mut self) {
        let config = self.config();
        if let (Some(node), Some(watcher)) = (self.exporter.as_mut(), &self.exporter_watcher)
            && node.run.is_none()
            && node.store.is_some()
        {
            spawn_run(
                node,
                Arc::clone(watcher),
                WatchScope::All,
                config,
                ExpiryRepair::None,
                &self.board,
            );
        }
    }

    /// Restarts the exporter's run if it ended (it has no faults: it never crashes).
    async fn reap_exporter(&mut self) {
        let Some(node) = self.exporter.as_mut() else {
            return;
        };
        if !node.run.as_ref().is_some_and(|r| r.handle.is_finished()) {
            return;
        }
        let run = node.run.take().expect("checked");
        match run.handle.await {
            Ok(end) => {
                let text = match &end.result {
                    Ok(c) => format!("Ok({})", c.rank()),
                    Err(e) => format!("Err({e})"),
                };
                node.resume = Some(end.applied.clone());
                node.store = end.store;
                self.log(format!("exporter run ended: {text}"));
            }
            Err(e) => {
                lock(&self.board).violate(Check::RunEnd, format!("the exporter panicked: {e}"));
                self.broken = true;
            }
        }
        self.start_exporter();
    }

    /// Waits (virtual time) until the exporter folded every retained write.
    async fn exporter_catch_up(&mut self) {
        let Some(id) = self.exporter.as_ref().map(|n| n.id) else {
            return;
        };
        for _ in 0..500 {
            let (at, target) = {
                let b = lock(&self.board);
                (
                    b.nodes[id].committed.rank(),
                    b.truth.target(&[String::new()]),
                )
            };
            if at >= target {
                return;
            }
            tokio::time::sleep(Duration::from_millis(self.shape.window_ms + 2)).await;
            self.reap_exporter().await;
        }
        self.log("the exporter did not catch up".to_string());
    }

    /// Restore worlds: reads the bucket's floor; every key's latest write below it
    /// (a current value or the marker of a deleted key) was evicted, and one the
    /// exporter never received is lost.
    async fn observe(&mut self) {
        if !self.s.repair.restores() {
            return;
        }
        let Ok(Some(retention)) = self.status.retention().await else {
            return;
        };
        let first = retention.first_revision;
        let mut lost = Vec::new();
        {
            let mut b = lock(&self.board);
            b.truth.set_floor(first);
            for (key, rev) in b.truth.evicted_latest(first) {
                if !self.evicted_seen.insert(rev) {
                    continue;
                }
                b.stats.values_evicted += 1;
                if !b.exporter_received.contains(&rev) {
                    b.stats.lost += 1;
                    b.lost.insert(key.clone(), rev);
                    lost.push(format!("{key}@{rev}"));
                }
            }
        }
        if !lost.is_empty() {
            self.log(format!(
                "lost before the exporter folded them: {}",
                lost.join(", ")
            ));
        }
    }

    async fn advance_clock(&mut self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
        self.log(format!("manual clock +{ms} ms"));
        self.observe().await;
    }

    /// Restarts the run if it ended on its own.
    async fn reap(&mut self) {
        let finished = self
            .main
            .run
            .as_ref()
            .is_some_and(|r| r.handle.is_finished());
        if finished {
            let run = self.main.run.take().expect("checked");
            let end = run.handle.await;
            self.after_run(end, false);
            self.start();
        }
        self.reap_exporter().await;
    }

    /// Asks the run to stop and waits for its end.
    async fn stop(&mut self) {
        if let Some(run) = self.main.run.take() {
            let _ = run.shutdown.send(true);
            let end = run.handle.await;
            self.after_run(end, true);
        }
    }

    /// Handles a finished run: a crash reboots from disk, anything else resumes
    /// in-process from `WatchEnd::applied` with the store handed back.
    fn after_run(&mut self, end: Result<WatchEnd<SimStore>, JoinError>, stopped: bool) {
        let id = self.main.id;
        let end = match end {
            Ok(end) => end,
            Err(e) => {
                let text = format!("the run future panicked: {e}");
                lock(&self.board).violate(Check::RunEnd, text.clone());
                self.log(text);
                self.reopen(None, "after a panicked run");
                return;
            }
        };
        let (crash, streak, last_on_applied) = {
            let mut b = lock(&self.board);
            let n = &mut b.nodes[id];
            (n.crash.take(), n.fail_streak, n.last_on_applied.clone())
        };
        let result = match &end.result {
            Ok(c) => format!("Ok({})", c.rank()),
            Err(e) => format!("Err({e})"),
        };
        if let Some(crash) = crash {
            self.log(format!(
                "run ended by the crash at store call {}: {result}",
                crash.call
            ));
            if end.store.is_some() {
                lock(&self.board).violate(Check::RunEnd, "a crashed store came back in WatchEnd");
            }
            if !matches!(&end.result, Err(KvError::WatchError(m)) if m.contains("snapshot store task panicked"))
            {
                lock(&self.board).violate(
                    Check::RunEnd,
                    format!("a store crash ended the run with {result}"),
                );
            }
            drop(end);
            self.reopen(Some((crash.cursor, crash.state)), "after the crash");
            return;
        }
        self.log(format!(
            "run ended ({}): {result}, applied {}",
            if stopped { "stopped" } else { "on its own" },
            end.applied.rank()
        ));
        let mut b = lock(&self.board);
        match &end.result {
            // A resumed watch that expires falls back to a full watch; a full
            // (state-sync) watch whose reconnect-resume expires ends the run
            // (docs/protocols/repair.md) and the restart re-lists.
            Err(KvError::CursorExpired) => b.stats.expired_ends += 1,
            Err(KvError::WatchError(m)) if m.contains("consecutive") => {
                b.stats.fail_stops += 1;
                if streak != 16 {
                    b.violate(
                        Check::RunEnd,
                        format!("fail-stop after {streak} consecutive store failures, not 16"),
                    );
                }
            }
            Ok(c) => {
                if !stopped {
                    b.violate(
                        Check::RunEnd,
                        format!("the run ended Ok({}) without a shutdown", c.rank()),
                    );
                }
                if *c != end.applied {
                    b.violate(
                        Check::RunEnd,
                        format!(
                            "result cursor {} != WatchEnd::applied {}",
                            c.rank(),
                            end.applied.rank()
                        ),
                    );
                }
            }
            Err(_) => {}
        }
        drop(b);
        let Some(store) = end.store else {
            lock(&self.board).violate(Check::RunEnd, "the store was lost without a crash");
            self.reopen(None, "after a lost store");
            return;
        };
        if store.cursor() != end.applied {
            let text = format!(
                "WatchEnd::applied {} is not the store's cursor {}",
                end.applied.rank(),
                store.cursor().rank()
            );
            lock(&self.board).violate(Check::RunEnd, text);
        }
        // Restore worlds: a run that ended with a failed, re-queued batch (an error,
        // or a stop whose last flush failed) leaves `apply`'s domain ahead of the
        // store. Resuming redelivers it, but when the cursor has also expired the
        // repair diffs the *store*, which never held it: nothing corrects the domain,
        // and a restore's rewrite can move it back (docs/decisions.md 119). The
        // caller here does what such a caller must: rebuild from the store (only
        // then: the run's last store call failed).
        if self.s.repair.restores() && streak > 0 {
            let want = domain_of(&store.fold());
            let mut b = lock(&self.board);
            if b.nodes[id].domain != want {
                b.nodes[id].domain = want;
                b.stats.domain_rebuilt += 1;
                b.trace
                    .push("-- the domain ran ahead of the store: rebuilt from it".to_string());
            }
        }
        self.main.resume = Some(match (self.s.mutation, last_on_applied) {
            (Mutation::ResumeFromOnApplied, Some(c)) if c.rank() > end.applied.rank() => c,
            _ => end.applied,
        });
        self.main.store = Some(store);
    }

    /// A process start: open the store file and rebuild the domain from it.
    fn reopen(&mut self, expect: Option<(WatchCursor, Fold)>, why: &str) {
        let id = self.main.id;
        drop(self.main.store.take());
        match AppendLogSnapshot::open(&self.main.path, self.shape.compact_threshold) {
            Ok((cursor, inner)) => {
                let fold = fold_of(&inner);
                let mut b = lock(&self.board);
                if let Some((want_cursor, want_fold)) = &expect {
                    if cursor != *want_cursor {
                        b.violate(
                            Check::Reopen,
                            format!(
                                "{why}: reopened at cursor {} (memo {}), the disk should hold {}",
                                cursor.rank(),
                                cursor.seen_evicting(),
                                want_cursor.rank()
                            ),
                        );
                    }
                    if fold != *want_fold {
                        let keys: std::collections::BTreeSet<&String> =
                            fold.keys().chain(want_fold.keys()).collect();
                        let diff: Vec<String> = keys
                            .into_iter()
                            .filter(|k| fold.get(*k) != want_fold.get(*k))
                            .map(|k| {
                                format!(
                                    "{k}: want {} got {}",
                                    show(want_fold.get(k)),
                                    show(fold.get(k))
                                )
                            })
                            .collect();
                        b.violate(
                            Check::Reopen,
                            format!("{why}: reopened fold differs: {}", diff.join("; ")),
                        );
                    }
                }
                let before = b.nodes[id].committed.rank();
                if cursor.rank() < before {
                    b.violate(
                        Check::Cursor,
                        format!(
                            "{why}: the store cursor went back across the restart: {before} -> {}",
                            cursor.rank()
                        ),
                    );
                }
                let n = &mut b.nodes[id];
                n.committed = cursor.clone();
                n.domain = domain_of(&fold);
                n.last_on_applied = None;
                drop(b);
                self.log(format!(
                    "process restart {why}: store reopened at {} with {} keys",
                    cursor.rank(),
                    fold.len()
                ));
                self.main.store = Some(SimStore::new(
                    inner,
                    &self.main.path,
                    id,
                    Arc::clone(&self.board),
                    self.s.seed,
                ));
                self.main.resume = Some(cursor);
            }
            Err(e) => {
                lock(&self.board).violate(
                    Check::Reopen,
                    format!("{why}: the store does not reopen: {e}"),
                );
                self.broken = true;
            }
        }
    }

    async fn last_revision(&self) -> u64 {
        self.status
            .last_revision()
            .await
            .expect("memory status")
            .unwrap_or(0)
    }

    async fn write(&mut self, key: &'static str, kind: u64) {
        self.values += 1;
        let (op, rev) = match kind {
            0..=6 => {
                let value = format!("v{}", self.values).into_bytes();
                let token = self.writer.put(key, &value).await.expect("memory put");
                (Op::Put(value), token.as_u64().expect("memory revision"))
            }
            7 | 8 => {
                self.writer.delete(key).await.expect("memory delete");
                (Op::Delete, self.last_revision().await)
            }
            _ => {
                self.purger.purge(key).await.expect("memory purge");
                (Op::Purge, self.last_revision().await)
            }
        };
        self.log(format!(
            "write {key} {op} @{rev}",
            op = match &op {
                Op::Put(v) => format!("put {}", String::from_utf8_lossy(v)),
                Op::Delete => "delete".to_string(),
                Op::Purge => "purge".to_string(),
            }
        ));
        lock(&self.board).truth.record(rev, key, op);
        self.observe().await;
    }

    async fn writes(&mut self, count: u64) {
        for _ in 0..count {
            let key = self.rng.pick(&KEYS);
            let kind = self.rng.below(10);
            self.write(key, kind).await;
        }
    }

    /// Rewrites the `refresh` oldest live keys (3 = every live key, which lets the
    /// eviction take every delete marker), then evicts below the safe floor.
    ///
    /// Restore worlds evict only the way their bucket does (age, size): `evict_below`
    /// there would remove young delete markers, which is a marker purge, outside
    /// what the resume checks can see (docs/protocols/repair.md, "Limits"). They move the
    /// clock instead, up to the age limit.
    async fn evict(&mut self, refresh: u64) {
        if self.s.repair.restores() {
            let ms = self.rng.between(1, MAX_AGE_MS + 1);
            self.advance_clock(ms).await;
            return;
        }
        let count = if refresh >= 3 {
            KEYS.len()
        } else {
            usize::try_from(refresh).expect("small")
        };
        let stale = lock(&self.board).truth.oldest_live(count);
        for key in stale {
            let key = KEYS
                .iter()
                .find(|k| **k == key)
                .copied()
                .expect("driver keys");
            self.write(key, 0).await;
        }
        let (floor, old) = {
            let b = lock(&self.board);
            (b.truth.safe_floor(), b.truth.floor())
        };
        if floor > old.max(1) {
            let first = self
                .server
                .faults()
                .evict_below(BUCKET, floor)
                .expect("evict");
            {
                let mut b = lock(&self.board);
                b.truth.set_floor(floor);
                b.stats.evictions += 1;
            }
            self.log(format!("evict below {floor} (first revision now {first})"));
            self.observe().await;
        }
    }

    async fn export(&mut self, refused: bool) {
        // A restore world exports from the exporter into the restore source's root.
        let (node, expected_scope) = match self.exporter.as_ref() {
            Some(node) => (node, vec![String::new()]),
            None => (&self.main, lock(&self.board).prefixes.clone()),
        };
        let Some(sender) = node.run.as_ref().map(|r| r.exports.clone()) else {
            return;
        };
        self.exports += 1;
        let dest = if self.exporter.is_some() && !refused {
            self.artifact_root.join(format!("{:04}", self.exports))
        } else {
            self.dir.path().join(format!("artifact-{}", self.exports))
        };
        if refused {
            std::fs::create_dir_all(&dest).expect("mkdir");
            std::fs::write(dest.join("occupied"), b"x").expect("write");
        }
        let (reply, answer) = oneshot::channel();
        if sender
            .send(ExportRequest {
                dest_dir: dest.clone(),
                reply,
            })
            .await
            .is_err()
        {
            self.log("export: the run was gone".to_string());
            return;
        }
        match tokio::time::timeout(Duration::from_secs(600), answer).await {
            Ok(Ok(Ok(manifest))) => {
                let mut b = lock(&self.board);
                if refused {
                    b.violate(
                        Check::Artifact,
                        "an export into a non-empty directory succeeded",
                    );
                }
                if manifest.scope.as_deref() != Some(expected_scope.as_slice()) {
                    let text = format!(
                        "artifact scope {:?}, watch scope {:?}",
                        manifest.scope, expected_scope
                    );
                    b.violate(Check::Artifact, text);
                }
                b.stats.exports_ok += 1;
                drop(b);
                self.log(format!("export at cursor {}", manifest.cursor.rank()));
                if !refused && self.exporter.is_none() {
                    self.artifacts.push((dest, manifest));
                }
            }
            Ok(Ok(Err(e))) => {
                if refused {
                    lock(&self.board).stats.exports_refused += 1;
                } else {
                    lock(&self.board).violate(Check::Artifact, format!("export failed: {e}"));
                }
                let kind = match e {
                    kvfold::SnapshotError::Io(_) => "Io",
                    kvfold::SnapshotError::InvalidFormat(_) => "InvalidFormat",
                    kvfold::SnapshotError::Corrupted => "Corrupted",
                    kvfold::SnapshotError::Backend(_) => "Backend",
                    kvfold::SnapshotError::ArtifactInvalid(_) => "ArtifactInvalid",
                };
                self.log(format!("export refused ({kind})"));
            }
            Ok(Err(_)) => self.log("export abandoned: the run ended".to_string()),
            Err(_) => lock(&self.board).violate(Check::Liveness, "an export reply never came"),
        }
    }

    /// Plays the seeded schedule.
    pub async fn play(&mut self) {
        self.start();
        for _ in 0..self.s.steps {
            if self.broken {
                return;
            }
            let action = if self.s.repair.restores() {
                self.rng
                    .weighted(&[30, 14, 3, 4, 3, 2, 3, 2, 3, 3, 4, 2, 2, 4, 2, 4, 1])
            } else {
                self.rng
                    .weighted(&[30, 14, 3, 4, 3, 2, 3, 2, 3, 3, 3, 2, 2, 2, 2])
            };
            match action {
                0 => {
                    let n = self.rng.between(1, 4);
                    self.writes(n).await;
                }
                1 => {
                    let ms = self.rng.between(0, 3 * self.shape.window_ms + 5);
                    self.log(format!("sleep {ms} ms"));
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                2 if !self.paused => {
                    self.server.faults().pause_delivery(BUCKET).expect("pause");
                    self.paused = true;
                    self.log("pause delivery".to_string());
                }
                3 if self.paused => self.resume_delivery(),
                4 => self.interrupt("interrupt watches"),
                5 if !self.partitioned => {
                    self.fold_conn.faults().partition();
                    self.partitioned = true;
                    self.log("partition the fold's connection".to_string());
                }
                // Healing a connection that is not partitioned plays a client reconnect.
                6 => self.heal(),
                7 => {
                    self.fold_conn.faults().fail_next(
                        kvfold::memory::MemoryOp::Watch,
                        1,
                        KvError::WatchError("sim: watch refused".to_string()),
                    );
                    self.interrupt("interrupt watches; the next watch call fails");
                }
                8 => {
                    let refresh = self.rng.between(0, 3);
                    self.evict(refresh).await;
                }
                9 => {
                    let burst = self.rng.between(3, 8);
                    let refresh = self.rng.between(0, 3);
                    let resume = self.rng.chance(50);
                    if !self.paused {
                        self.server.faults().pause_delivery(BUCKET).expect("pause");
                        self.paused = true;
                    }
                    self.log(format!("gap: paused, {burst} writes, evict"));
                    self.writes(burst).await;
                    self.evict(refresh).await;
                    if resume {
                        self.resume_delivery();
                    }
                }
                10 => {
                    let refused = self.rng.chance(20);
                    if self.exporter.is_some() {
                        // A restore reads the artifact directory on blocking threads:
                        // publishing only while the main node is down keeps which
                        // artifact a restore sees a function of the seed.
                        self.log("main node down while the exporter publishes".to_string());
                        self.stop().await;
                        self.export(refused).await;
                        self.start();
                    } else {
                        self.export(refused).await;
                    }
                }
                11 => {
                    self.log("restart in-process".to_string());
                    self.stop().await;
                    self.start();
                }
                12 => {
                    self.log("reboot from disk".to_string());
                    self.reboot().await;
                    self.start();
                }
                13 => {
                    let ms = self.rng.between(1, 20_000);
                    if !self.paused {
                        self.exporter_catch_up().await;
                    }
                    self.advance_clock(ms).await;
                }
                14 => {
                    self.kill().await;
                    self.start();
                }
                15 => self.offline_age_out().await,
                16 => self.lose().await,
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.reap().await;
        }
    }

    /// Restore worlds: the main node goes offline, the bucket moves on, the exporter
    /// publishes, and everything the main node last saw ages out before it returns:
    /// its cursor has expired and it must restore.
    async fn offline_age_out(&mut self) {
        self.log("main node offline".to_string());
        self.stop().await;
        let n = self.rng.between(1, 6);
        self.writes(n).await;
        // Half the time a key is deleted before the export and re-created after
        // the age-out: the restore must keep the main node's copy (the listing
        // shows it live) and let the resume deliver the new value.
        let churn = self.rng.chance(50).then(|| self.rng.pick(&KEYS));
        if let Some(key) = churn {
            self.write(key, 7).await;
        }
        if self.paused {
            self.resume_delivery();
        }
        self.exporter_catch_up().await;
        self.export(false).await;
        let ms = MAX_AGE_MS + self.rng.between(1, 20_000);
        self.advance_clock(ms).await;
        if let Some(key) = churn {
            self.write(key, 0).await;
        }
        self.log("main node back".to_string());
        self.start();
    }

    /// Restore worlds: writes that age out before any node folded them (delivery
    /// paused). Unrecoverable; the fleet must say so.
    async fn lose(&mut self) {
        let was_paused = self.paused;
        if !was_paused {
            self.server.faults().pause_delivery(BUCKET).expect("pause");
            self.paused = true;
        }
        self.log("lose: paused, puts, age out".to_string());
        let n = self.rng.between(1, 2);
        for _ in 0..n {
            let key = self.rng.pick(&KEYS);
            self.write(key, 0).await;
        }
        self.advance_clock(MAX_AGE_MS + 1).await;
        if !was_paused {
            self.resume_delivery();
        }
    }

    fn resume_delivery(&mut self) {
        self.server
            .faults()
            .resume_delivery(BUCKET)
            .expect("resume");
        self.paused = false;
        self.log("resume delivery".to_string());
    }

    fn heal(&mut self) {
        self.fold_conn.faults().heal();
        let what = if self.partitioned {
            "heal the fold's connection"
        } else {
            "reconnect the fold's connection"
        };
        self.partitioned = false;
        self.log(what.to_string());
    }

    fn interrupt(&mut self, what: &str) {
        let n = self
            .server
            .faults()
            .interrupt_watches(BUCKET, KvError::WatchError("sim: interrupted".to_string()))
            .expect("interrupt");
        self.log(format!("{what} ({n} ended)"));
    }

    /// Kills the process wherever the run is (the caller drops the run's future,
    /// docs/watch-applied.md, "Panics and cancellation"): a store inside a blocking task is dropped when that task
    /// ends. The disk must then hold exactly what the store had committed.
    async fn kill(&mut self) {
        let Some(run) = self.main.run.take() else {
            return;
        };
        if run.handle.is_finished() {
            let end = run.handle.await;
            self.after_run(end, false);
            return;
        }
        let id = self.main.id;
        {
            let mut b = lock(&self.board);
            b.nodes[id].closed = false;
            b.nodes[id].dropped = None;
            b.stats.kills += 1;
        }
        run.handle.abort();
        let _ = run.handle.await;
        // A blocking store call still running keeps the store until it returns; a
        // paused clock does not advance while it runs.
        for _ in 0..100_000 {
            if lock(&self.board).nodes[id].closed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let (crash, dropped, committed) = {
            let mut b = lock(&self.board);
            let n = &mut b.nodes[id];
            (n.crash.take(), n.dropped.take(), n.committed.clone())
        };
        self.log("kill the process".to_string());
        match (crash, dropped) {
            (Some(crash), _) => self.reopen(
                Some((crash.cursor, crash.state)),
                "after a crash during a kill",
            ),
            (None, Some((cursor, fold))) => {
                if cursor != committed {
                    let text = format!(
                        "killed store held cursor {}, its last commit was {}",
                        cursor.rank(),
                        committed.rank()
                    );
                    lock(&self.board).violate(Check::Cursor, text);
                }
                self.reopen(Some((cursor, fold)), "after a kill");
            }
            (None, None) => {
                lock(&self.board).violate(Check::Liveness, "a killed run never released its store");
                self.broken = true;
            }
        }
    }

    /// Stops the run, closes the store and reopens it from disk, as a clean process restart.
    async fn reboot(&mut self) {
        self.stop().await;
        if let Some(store) = self.main.store.take() {
            let expect = (store.cursor(), store.fold());
            drop(store);
            self.reopen(Some(expect), "clean reboot");
        }
    }

    /// Clears every fault, lets the fold catch up, stops it and checks the fold,
    /// the domain and a reopen of the final file.
    pub async fn converge(&mut self) {
        if self.broken {
            return;
        }
        if self.paused {
            self.resume_delivery();
        }
        if self.partitioned {
            self.heal();
        }
        self.fold_conn.faults().clear_failures();
        let id = self.main.id;
        lock(&self.board).nodes[id].armed = false;
        self.log("converge: every fault cleared".to_string());
        if self.exporter.is_some() {
            self.stop().await;
            // One more write: after a loss the exporter's newest artifact may sit
            // below the floor (a restore then refuses, loudly, until a newer one
            // exists); folding a new write moves the exporter past the gap.
            self.write("a/r", 0).await;
            self.exporter_catch_up().await;
            self.export(false).await;
        }
        // A batch re-queued after a store failure waits for the next flush
        // (docs/protocols/fold-machine.md, "The flush procedure": with no traffic it
        // waits); the shutdown flush retries it.
        self.stop().await;
        self.start();
        let target = {
            let b = lock(&self.board);
            b.truth.target(&b.prefixes)
        };
        let mut caught_up = false;
        for _ in 0..CONVERGE_ROUNDS {
            tokio::time::sleep(Duration::from_millis(self.shape.window_ms + 2)).await;
            self.reap().await;
            if self.broken {
                return;
            }
            if lock(&self.board).nodes[id].committed.rank() >= target {
                caught_up = true;
                break;
            }
        }
        if !caught_up {
            let at = lock(&self.board).nodes[id].committed.rank();
            lock(&self.board).violate(
                Check::Liveness,
                format!("the fold stayed at {at}, the bucket is at {target}"),
            );
        }
        self.stop().await;
        let Some(store) = self.main.store.take() else {
            return;
        };
        let (cursor, fold) = (store.cursor(), store.fold());
        let domain = lock(&self.board).nodes[id].domain.clone();
        check_fold(&self.board, "final fold", &fold, &self.foreign);
        check_domain(&self.board, "final domain", &domain, &fold);
        drop(store);
        self.reopen(Some((cursor, fold)), "final reopen");
        self.main.store = None;
    }
}
