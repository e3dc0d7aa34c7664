//! Shared machinery of the checks: the per-check context (needs, bucket naming,
//! failure messages), bucket handles with polling reads, and bounded watch
//! collection that enforces per-call ordering. It asserts no rule of its own.

use std::collections::hash_map::RandomState;
use std::fmt::Display;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Hook, Hooks, Outcome, Profile};
use crate::kv::{
    BucketStatus, KvEntry, KvError, KvPurge, KvReader, KvUpdate, KvWatcher, KvWriter, VersionToken,
    WatchCursor,
};
use crate::stores::{Connection, KvStore, StoreConfig, StoreOptions};

/// How often polling reads retry.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Fails the current check unless `cond` holds.
macro_rules! ensure {
    ($cx:expr, $cond:expr, $($arg:tt)+) => {
        if !$cond {
            $cx.fail(format_args!($($arg)+))
        }
    };
}
pub(crate) use ensure;

/// Fails the current check unless `res` is `Err` matching `pat`.
macro_rules! expect_err {
    ($cx:expr, $res:expr, $pat:pat, $($arg:tt)+) => {
        match $res {
            Err($pat) => {}
            other => $cx.fail(format_args!(
                "{}: expected Err({}), got {:?}",
                format_args!($($arg)+),
                stringify!($pat),
                other
            )),
        }
    };
}
pub(crate) use expect_err;

/// Something a check needs before it can run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Need {
    Cas,
    Purge,
    Ttl,
    StreamingWatch,
    PrefixWatch,
    ResumeChecks,
    Retention,
    Status,
    Hook(Hook),
}

impl Need {
    fn reason(self) -> &'static str {
        match self {
            Need::Cas => "needs capability `cas`",
            Need::Purge => "needs capability `purge`",
            Need::Ttl => "needs capability `ttl`",
            Need::StreamingWatch => "needs capability `streaming_watch`",
            Need::PrefixWatch => "needs capability `prefix_watch`",
            Need::ResumeChecks => "the profile does not expect resume checks",
            Need::Retention => "the profile does not expect retention()",
            Need::Status => "the profile does not expect status()",
            Need::Hook(Hook::RecreateBucket) => "needs the RecreateBucket hook",
            Need::Hook(Hook::EvictBelow) => "needs the EvictBelow hook",
            Need::Hook(Hook::PurgeMarkers) => "needs the PurgeMarkers hook",
            Need::Hook(Hook::Advance) => "needs the Advance hook",
            Need::Hook(Hook::InterruptWatches) => "needs the InterruptWatches hook",
        }
    }
}

/// A random bucket suffix: `RandomState` keys are random per process and the
/// counter and clock make every call differ.
fn random_suffix() -> u32 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = RandomState::new().hash_one((nanos, COUNTER.fetch_add(1, Ordering::Relaxed)));
    (n ^ (n >> 32)) as u32
}

/// One running check: what it is called and what it may use.
pub(crate) struct Ctx<'a> {
    pub(crate) conn: &'a dyn Connection,
    pub(crate) profile: &'a Profile,
    hooks: Option<&'a dyn Hooks>,
    pub(crate) check: &'static str,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(
        check: &'static str,
        conn: &'a dyn Connection,
        profile: &'a Profile,
        hooks: Option<&'a dyn Hooks>,
    ) -> Self {
        Self {
            conn,
            profile,
            hooks,
            check,
        }
    }

    /// `Some(Skipped(reason))` for the first missing need.
    pub(crate) fn skip_unless(&self, needs: &[Need]) -> Option<Outcome> {
        needs
            .iter()
            .find(|&&need| !self.has(need))
            .map(|need| Outcome::Skipped(need.reason()))
    }

    /// Whether one need is met.
    pub(crate) fn has(&self, need: Need) -> bool {
        let caps = &self.profile.caps;
        match need {
            Need::Cas => caps.cas,
            Need::Purge => caps.purge,
            Need::Ttl => caps.ttl,
            Need::StreamingWatch => caps.streaming_watch,
            Need::PrefixWatch => caps.prefix_watch && caps.streaming_watch,
            Need::ResumeChecks => self.profile.expect_resume_checks && caps.streaming_watch,
            Need::Retention => self.profile.expect_retention,
            Need::Status => self.profile.expect_status,
            Need::Hook(hook) => self.hooks.is_some_and(|h| h.supports(hook)),
        }
    }

    /// The hooks, for a check that made sure the hook it calls is supported.
    pub(crate) fn hooks(&self) -> &'a dyn Hooks {
        match self.hooks {
            Some(h) => h,
            None => self.fail("a hook was used without checking that it is supported"),
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.profile.delivery_timeout
    }

    /// How long "nothing more arrives" is watched for (`Profile::quiet_window`).
    pub(crate) fn quiet_window(&self) -> Duration {
        self.profile.quiet()
    }

    /// Ends the check with a message naming it.
    #[track_caller]
    pub(crate) fn fail(&self, message: impl Display) -> ! {
        panic!("conformance check `{}` failed: {message}", self.check)
    }

    /// The value of `result`, or a failure naming `what`.
    #[track_caller]
    pub(crate) fn ok<T>(&self, result: Result<T, KvError>, what: impl Display) -> T {
        match result {
            Ok(value) => value,
            Err(error) => self.fail(format_args!("{what}: unexpected error {error:?}")),
        }
    }

    /// The u64 revision of a version token.
    #[track_caller]
    pub(crate) fn rev(&self, version: &VersionToken, what: impl Display) -> u64 {
        match version.as_u64() {
            Some(r) => r,
            None => self.fail(format_args!(
                "{what}: version {version:?} is not a u64 revision"
            )),
        }
    }

    /// A fresh bucket name `<prefix>-<check>-<n>`.
    pub(crate) fn bucket_name(&self) -> String {
        format!(
            "{}-{}-{:08x}",
            self.profile.bucket_prefix,
            self.check,
            random_suffix()
        )
    }

    /// A fresh bucket with this configuration (its name is filled in).
    pub(crate) async fn bucket<'c>(&'c self, config: StoreConfig) -> Bucket<'c>
    where
        'a: 'c,
    {
        self.bucket_with(config, StoreOptions::default()).await
    }

    /// A fresh bucket with this configuration and these options.
    pub(crate) async fn bucket_with<'c>(
        &'c self,
        mut config: StoreConfig,
        options: StoreOptions,
    ) -> Bucket<'c>
    where
        'a: 'c,
    {
        config.name = self.bucket_name();
        if config.num_replicas.is_none() {
            config.num_replicas = self.profile.replicas;
        }
        let what = format!("creating bucket {}", config.name);
        let store = self.ok(self.conn.store_with_options(config, options).await, &what);
        Bucket::of(self, store)
    }

    /// Runs `hooks.advance(by)`.
    pub(crate) async fn advance(&self, by: Duration) {
        self.hooks().advance(by).await;
    }
}

/// A store configuration with only these fields set.
pub(crate) fn config() -> StoreConfig {
    StoreConfig::default()
}

/// A store configuration keeping `n` revisions per key.
pub(crate) fn history(n: u32) -> StoreConfig {
    StoreConfig {
        max_history: Some(n),
        ..StoreConfig::default()
    }
}

/// Which watch call to make.
#[derive(Debug, Clone)]
pub(crate) enum Scope {
    All,
    Prefix(String),
    Prefixes(Vec<String>),
}

impl Scope {
    pub(crate) fn prefix(p: &str) -> Self {
        Scope::Prefix(p.to_string())
    }

    pub(crate) fn prefixes(ps: &[&str]) -> Self {
        Scope::Prefixes(ps.iter().map(|p| (*p).to_string()).collect())
    }
}

/// A bucket under test with all its handles.
pub(crate) struct Bucket<'a> {
    pub(crate) cx: &'a Ctx<'a>,
    pub(crate) name: String,
    pub(crate) store: Arc<dyn KvStore>,
    pub(crate) r: Arc<dyn KvReader>,
    pub(crate) w: Arc<dyn KvWriter>,
}

impl<'a> Bucket<'a> {
    pub(crate) fn of(cx: &'a Ctx<'a>, store: Arc<dyn KvStore>) -> Self {
        let name = store.name().to_string();
        let w = match store.writer() {
            Some(w) => w,
            None => cx.fail(format_args!("bucket {name}: writer() is None")),
        };
        Self {
            cx,
            r: store.reader(),
            w,
            name,
            store,
        }
    }

    pub(crate) fn watcher(&self) -> Arc<dyn KvWatcher> {
        match self.store.watcher() {
            Some(w) => w,
            None => self.cx.fail(format_args!(
                "bucket {}: watcher() is None although streaming_watch is set",
                self.name
            )),
        }
    }

    pub(crate) fn purger(&self) -> Arc<dyn KvPurge> {
        match self.store.purge_writer() {
            Some(p) => p,
            None => self.cx.fail(format_args!(
                "bucket {}: purge_writer() is None although purge is set",
                self.name
            )),
        }
    }

    /// `put`, returning the new revision.
    pub(crate) async fn put(&self, key: &str, value: &[u8]) -> u64 {
        let what = format!("put({key:?}, {} bytes)", value.len());
        let version = self.cx.ok(self.w.put(key, value).await, &what);
        self.cx.rev(&version, &what)
    }

    /// `delete`, which must answer `Ok(true)`.
    pub(crate) async fn delete(&self, key: &str) {
        let what = format!("delete({key:?})");
        let done = self.cx.ok(self.w.delete(key).await, &what);
        ensure!(self.cx, done, "{what} returned Ok(false)");
    }

    /// `purge` through the purge writer.
    pub(crate) async fn purge(&self, key: &str) {
        let what = format!("purge({key:?})");
        self.cx.ok(self.purger().purge(key).await, &what);
    }

    /// `delete_with_version` expecting revision `expected`, which must succeed.
    pub(crate) async fn tombstone(&self, key: &str, expected: u64) {
        let what = format!("delete_with_version({key:?}, {expected})");
        let done = self.cx.ok(
            self.w
                .delete_with_version(key, &VersionToken::from_u64(expected))
                .await,
            &what,
        );
        ensure!(self.cx, done, "{what} returned Ok(false)");
    }

    /// The status reading; the check must need `Need::Status`.
    pub(crate) async fn status(&self) -> BucketStatus {
        let what = format!("status() of {}", self.name);
        match self.cx.ok(self.watcher_any().status().await, &what) {
            Some(status) => status,
            None => self.cx.fail(format_args!(
                "{what} is None but the profile expects status"
            )),
        }
    }

    /// Polls `status()` until `done` holds (time effects may land a little after
    /// the clock passed them); returns that reading, or fails with the last one.
    pub(crate) async fn status_until(
        &self,
        what: &str,
        done: impl Fn(&BucketStatus) -> bool,
    ) -> BucketStatus {
        let deadline = Instant::now() + self.cx.timeout();
        loop {
            let status = self.status().await;
            if done(&status) {
                return status;
            }
            if Instant::now() >= deadline {
                self.cx.fail(format_args!("{what}: status is {status:?}"));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// A watcher handle for status and retention reads (which do not need
    /// streaming watches).
    fn watcher_any(&self) -> Arc<dyn KvWatcher> {
        match self.store.watcher() {
            Some(w) => w,
            None => self.cx.fail(format_args!(
                "bucket {}: watcher() is None, so status() cannot be read",
                self.name
            )),
        }
    }

    /// The retention reading; the check must need `Need::Retention`.
    pub(crate) async fn retention(&self) -> crate::kv::Retention {
        let what = format!("retention() of {}", self.name);
        match self.cx.ok(self.watcher_any().retention().await, &what) {
            Some(r) => r,
            None => self.cx.fail(format_args!(
                "{what} is None but the profile expects retention"
            )),
        }
    }

    /// Polls `get(key)` until its value is `expected` (`None` = no value).
    pub(crate) async fn expect_get(&self, key: &str, expected: Option<&[u8]>) -> Option<KvEntry> {
        let deadline = Instant::now() + self.cx.timeout();
        loop {
            let got = self
                .cx
                .ok(self.r.get(key).await, format_args!("get({key:?})"));
            if got.as_ref().map(|e| e.value.as_slice()) == expected {
                if let Some(e) = &got {
                    ensure!(
                        self.cx,
                        e.key == key,
                        "get({key:?}) returned key {:?}",
                        e.key
                    );
                }
                return got;
            }
            if Instant::now() >= deadline {
                self.cx.fail(format_args!(
                    "get({key:?}): expected {:?}, got {:?}",
                    expected.map(show),
                    got.map(|e| (show(&e.value), e.version))
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Polls `entry(key)` until its value is `expected` (`None` = no entry).
    pub(crate) async fn expect_entry(&self, key: &str, expected: Option<&[u8]>) -> Option<KvEntry> {
        let deadline = Instant::now() + self.cx.timeout();
        loop {
            let got = self
                .cx
                .ok(self.r.entry(key).await, format_args!("entry({key:?})"));
            if got.as_ref().map(|e| e.value.as_slice()) == expected {
                return got;
            }
            if Instant::now() >= deadline {
                self.cx.fail(format_args!(
                    "entry({key:?}): expected {:?}, got {:?}",
                    expected.map(show),
                    got.map(|e| (show(&e.value), e.version))
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Polls `keys(prefix)` until it equals `expected` exactly (order included).
    pub(crate) async fn expect_keys(&self, prefix: &str, expected: &[&str]) {
        let deadline = Instant::now() + self.cx.timeout();
        loop {
            let got = self
                .cx
                .ok(self.r.keys(prefix).await, format_args!("keys({prefix:?})"));
            if got == expected {
                return;
            }
            if Instant::now() >= deadline {
                self.cx.fail(format_args!(
                    "keys({prefix:?}): expected {expected:?}, got {got:?}"
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Polls `scan(prefix)` until its keys and values equal `expected` exactly.
    pub(crate) async fn expect_scan(
        &self,
        prefix: &str,
        expected: &[(&str, &[u8])],
    ) -> Vec<KvEntry> {
        let deadline = Instant::now() + self.cx.timeout();
        loop {
            let got = self
                .cx
                .ok(self.r.scan(prefix).await, format_args!("scan({prefix:?})"));
            let same = got.len() == expected.len()
                && got
                    .iter()
                    .zip(expected)
                    .all(|(e, (k, v))| e.key == *k && e.value == *v);
            if same {
                return got;
            }
            if Instant::now() >= deadline {
                let got: Vec<(String, String)> = got
                    .iter()
                    .map(|e| (e.key.clone(), show(&e.value)))
                    .collect();
                let expected: Vec<(&str, String)> =
                    expected.iter().map(|(k, v)| (*k, show(v))).collect();
                self.cx.fail(format_args!(
                    "scan({prefix:?}): expected {expected:?}, got {got:?}"
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Polls `for_each_key(prefix)` until it yields exactly `expected`, in order.
    pub(crate) async fn expect_for_each(&self, prefix: &str, expected: &[&str]) {
        let deadline = Instant::now() + self.cx.timeout();
        loop {
            let mut got: Vec<String> = Vec::new();
            let mut push = |k: String| got.push(k);
            let result = self.r.for_each_key(prefix, &mut push).await;
            self.cx.ok(result, format_args!("for_each_key({prefix:?})"));
            if got == expected {
                return;
            }
            if Instant::now() >= deadline {
                self.cx.fail(format_args!(
                    "for_each_key({prefix:?}): expected {expected:?}, got {got:?}"
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Starts a watch call as a task, with a channel of `capacity`; `cursor`
    /// `Some` makes it a `_from` call (even for a revisionless cursor).
    pub(crate) fn watch(
        &self,
        scope: Scope,
        cursor: Option<WatchCursor>,
        capacity: usize,
    ) -> WatchRun<'a> {
        let label = format!("{scope:?} from {cursor:?} on {}", self.name);
        let watcher = self.watcher();
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let call = tokio::spawn(async move {
            match (scope, cursor) {
                (Scope::All, None) => watcher.watch_all(tx).await,
                (Scope::All, Some(c)) => watcher.watch_all_from(&c, tx).await,
                (Scope::Prefix(p), None) => watcher.watch_prefix(&p, tx).await,
                (Scope::Prefix(p), Some(c)) => watcher.watch_prefix_from(&p, &c, tx).await,
                (Scope::Prefixes(ps), c) => {
                    let refs: Vec<&str> = ps.iter().map(String::as_str).collect();
                    match c {
                        None => watcher.watch_prefixes(&refs, tx).await,
                        Some(c) => watcher.watch_prefixes_from(&refs, &c, tx).await,
                    }
                }
            }
        });
        WatchRun {
            cx: self.cx,
            label,
            rx: Some(rx),
            call: Some(call),
            last: None,
        }
    }

    /// A state-sync `watch_all` with a roomy channel.
    pub(crate) fn watch_all(&self) -> WatchRun<'a> {
        self.watch(Scope::All, None, 256)
    }

    /// A resumed `watch_all_from(cursor)` with a roomy channel.
    pub(crate) fn watch_from(&self, cursor: WatchCursor) -> WatchRun<'a> {
        self.watch(Scope::All, Some(cursor), 256)
    }
}

/// Short text for a value in failure messages.
pub(crate) fn show(value: &[u8]) -> String {
    if value.len() > 32 {
        format!("<{} bytes>", value.len())
    } else {
        String::from_utf8_lossy(value).into_owned()
    }
}

/// A short description of an update for failure messages and comparisons.
pub(crate) fn brief(update: &KvUpdate) -> (char, String, Option<u64>) {
    let kind = match update {
        KvUpdate::Put(_) => 'P',
        KvUpdate::Delete { .. } => 'D',
        KvUpdate::Purge { .. } => 'X',
    };
    (kind, update.key().to_string(), update.version().as_u64())
}

/// A put update's value, or `None` for markers.
pub(crate) fn value_of(update: &KvUpdate) -> Option<&[u8]> {
    match update {
        KvUpdate::Put(e) => Some(&e.value),
        _ => None,
    }
}

/// One spawned watch call and its receiver. Every received update is checked for strictly
/// increasing revisions (docs/semantics.md, "Watches"). Dropping it aborts the call.
pub(crate) struct WatchRun<'a> {
    cx: &'a Ctx<'a>,
    label: String,
    rx: Option<mpsc::Receiver<KvUpdate>>,
    call: Option<JoinHandle<Result<(), KvError>>>,
    last: Option<u64>,
}

impl Drop for WatchRun<'_> {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.abort();
        }
    }
}

impl WatchRun<'_> {
    fn order(&mut self, update: &KvUpdate) {
        if let Some(r) = update.version().as_u64() {
            if let Some(last) = self.last {
                ensure!(
                    self.cx,
                    r > last,
                    "watch {}: revision {r} delivered after {last} ({:?})",
                    self.label,
                    brief(update)
                );
            }
            self.last = Some(r);
        }
    }

    fn rx(&mut self) -> &mut mpsc::Receiver<KvUpdate> {
        match self.rx.as_mut() {
            Some(rx) => rx,
            None => self.cx.fail("watch receiver used after it was dropped"),
        }
    }

    /// The next update, within the delivery timeout.
    pub(crate) async fn next(&mut self) -> KvUpdate {
        let timeout = self.cx.timeout();
        match tokio::time::timeout(timeout, self.rx().recv()).await {
            Ok(Some(update)) => {
                self.order(&update);
                update
            }
            Ok(None) => {
                let result = self.result().await;
                self.cx.fail(format_args!(
                    "watch {} ended with {result:?} while an update was expected",
                    self.label
                ))
            }
            Err(_) => self.cx.fail(format_args!(
                "watch {}: no update within {timeout:?}",
                self.label
            )),
        }
    }

    /// The next update, or how the call ended; fails if neither happens within
    /// the delivery timeout.
    pub(crate) async fn next_or_end(&mut self) -> Result<KvUpdate, Result<(), KvError>> {
        let timeout = self.cx.timeout();
        match tokio::time::timeout(timeout, self.rx().recv()).await {
            Ok(Some(update)) => {
                self.order(&update);
                Ok(update)
            }
            Ok(None) => Err(self.result().await),
            Err(_) => self.cx.fail(format_args!(
                "watch {}: neither an update nor the end within {timeout:?}",
                self.label
            )),
        }
    }

    /// The next `n` updates.
    pub(crate) async fn take(&mut self, n: usize) -> Vec<KvUpdate> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next().await);
        }
        out
    }

    /// The next `n` updates as `(kind, key, revision)`.
    pub(crate) async fn take_brief(&mut self, n: usize) -> Vec<(char, String, Option<u64>)> {
        self.take(n).await.iter().map(brief).collect()
    }

    /// Fails if anything is already waiting or the call has ended.
    pub(crate) fn assert_quiet_now(&mut self) {
        match self.rx().try_recv() {
            Ok(update) => self.cx.fail(format_args!(
                "watch {}: unexpected update {:?}",
                self.label,
                brief(&update)
            )),
            Err(mpsc::error::TryRecvError::Disconnected) => self.cx.fail(format_args!(
                "watch {} ended while it should keep running",
                self.label
            )),
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        if self.call.as_ref().is_some_and(JoinHandle::is_finished) {
            self.cx.fail(format_args!(
                "watch {} ended while it should keep running",
                self.label
            ));
        }
    }

    /// Waits the quiet window and fails if anything arrives.
    pub(crate) async fn quiet(&mut self) {
        tokio::time::sleep(self.cx.quiet_window()).await;
        self.assert_quiet_now();
    }

    /// Drops the receiver (the call should then end with `Ok(())`).
    pub(crate) fn drop_receiver(&mut self) {
        self.rx = None;
    }

    /// Receives until the call ends, each wait bounded by the delivery timeout;
    /// returns what arrived and how the call ended.
    pub(crate) async fn until_end(&mut self) -> (Vec<KvUpdate>, Result<(), KvError>) {
        let (got, end) = self.until_end_or_idle().await;
        match end {
            Some(result) => (got, result),
            None => self.cx.fail(format_args!(
                "watch {} neither delivered nor ended within {:?} (got {} updates)",
                self.label,
                self.cx.timeout(),
                got.len()
            )),
        }
    }

    /// Receives until the call ends (`Some(result)`) or nothing arrives for the
    /// delivery timeout while it still runs (`None`).
    pub(crate) async fn until_end_or_idle(
        &mut self,
    ) -> (Vec<KvUpdate>, Option<Result<(), KvError>>) {
        let timeout = self.cx.timeout();
        let mut got = Vec::new();
        loop {
            match tokio::time::timeout(timeout, self.rx().recv()).await {
                Ok(Some(update)) => {
                    self.order(&update);
                    got.push(update);
                }
                Ok(None) => break,
                Err(_) => return (got, None),
            }
        }
        let result = self.result().await;
        (got, Some(result))
    }

    /// How the call ended, waiting at most the delivery timeout for it.
    pub(crate) async fn result(&mut self) -> Result<(), KvError> {
        let timeout = self.cx.timeout();
        let Some(call) = self.call.as_mut() else {
            self.cx.fail("watch result read twice");
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(result)) => {
                self.call = None;
                result
            }
            Ok(Err(join)) => self
                .cx
                .fail(format_args!("watch {} task failed: {join}", self.label)),
            Err(_) => self.cx.fail(format_args!(
                "watch {} did not end within {timeout:?}",
                self.label
            )),
        }
    }
}

/// Waits the quiet window once and fails if any of the watches got anything.
pub(crate) async fn quiet_all(cx: &Ctx<'_>, runs: &mut [&mut WatchRun<'_>]) {
    tokio::time::sleep(cx.quiet_window()).await;
    for run in runs.iter_mut() {
        run.assert_quiet_now();
    }
}
