//! SC-19: every key and value a backend accepts is storable by the store. The
//! longest key and the largest value the embedded backend accepts (the limits
//! of `protocol::subject`, which the NATS backend shares) go through
//! `watch_applied` into the store and read back after a reopen.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::support::{Ctx, ensure, open, open_fresh};
use super::{Outcome, SnapshotHarness};
use crate::fold::{BatchConfig, WatchScope, watch_applied};
use crate::kv::{KvError, KvReader, KvUpdate, KvWatcher, WatchCursor};
use crate::memory::{MemoryConfig, MemoryConnection};
use crate::protocol::subject::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
use crate::snapshot::{AppendLogSnapshot, SnapshotError, SnapshotStore};
use crate::stores::{Connection, StoreConfig};

/// How long SC-19's fold may take to reach the last revision.
const FOLD_WITHIN: Duration = Duration::from_secs(120);

/// The longest key both backends accept: `MAX_KEY_BYTES` bytes, dotted so that
/// it spans several subject tokens.
pub(crate) fn limit_key() -> String {
    let head = "limit.";
    format!("{head}{}", "k".repeat(MAX_KEY_BYTES - head.len()))
}

/// A value of `len` bytes whose content depends on the position, so a shifted or
/// truncated copy does not compare equal.
pub(crate) fn patterned_value(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Runs `watch_applied` over every key of `watcher` from the start, applying each
/// batch to `store` with its cursor (what the fold does with a store), until the
/// cursor reaches `last_revision`; bounded by `within`. The store is borrowed,
/// so it goes through the application's `on_applied` rather than the fold's
/// `store` argument, which needs an owned `'static` store.
///
/// Returns the fold's final cursor, or what went wrong: a store error, the
/// fold's own error, or the timeout.
pub(crate) async fn fold_into<S: SnapshotStore>(
    watcher: Arc<dyn KvWatcher>,
    store: &mut S,
    last_revision: u64,
    within: Duration,
) -> Result<WatchCursor, String> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // (store, updates applied by the app but not yet by the store, first store error)
    let cell = Mutex::new((store, Vec::<KvUpdate>::new(), None::<SnapshotError>));
    let fold = watch_applied(
        watcher,
        WatchScope::All,
        None,
        None::<Arc<dyn KvReader>>,
        None::<AppendLogSnapshot>,
        None,
        BatchConfig::default(),
        |update: &KvUpdate| Some(update.clone()),
        |batch: Vec<KvUpdate>| {
            let mut guard = cell.lock().unwrap_or_else(PoisonError::into_inner);
            guard.1.extend(batch);
        },
        |cursor: WatchCursor| {
            let mut guard = cell.lock().unwrap_or_else(PoisonError::into_inner);
            let (store, pending, error) = &mut *guard;
            if error.is_some() {
                return;
            }
            let batch = std::mem::take(pending);
            match store.apply(&batch, &cursor) {
                Ok(()) => {
                    if cursor.as_u64().is_some_and(|r| r >= last_revision) {
                        // The receiver lives as long as the fold; a closed channel
                        // only means the fold already ended.
                        let _ = stop_tx.send(true);
                    }
                }
                Err(e) => {
                    *error = Some(e);
                    let _ = stop_tx.send(true);
                }
            }
        },
        stop_rx,
    );
    let ended = tokio::time::timeout(within, fold).await;
    let (_, _, error) = cell.into_inner().unwrap_or_else(PoisonError::into_inner);
    if let Some(error) = error {
        return Err(format!("the store refused a batch: {error:?}"));
    }
    match ended {
        Err(_) => Err(format!(
            "the fold did not reach revision {last_revision} within {within:?}"
        )),
        Ok(Err(error)) => Err(format!("the fold failed: {error:?}")),
        Ok(Ok(cursor)) => Ok(cursor),
    }
}

/// An owned store for `watch_applied`'s `store` argument that ends the fold
/// (through `stop`) once its own `apply` made revision `last` durable; until
/// then, and on any error, it only delegates. (`on_applied` cannot tell: the
/// fold calls it for the application's cursor even while a failed store apply
/// is re-queued.)
pub(crate) struct StopWhenDurable<S> {
    inner: S,
    last: u64,
    stop: tokio::sync::watch::Sender<bool>,
}

impl<S> StopWhenDurable<S> {
    /// Wraps `inner`; `stop` is the sender of the fold's shutdown channel.
    pub(crate) fn new(inner: S, last: u64, stop: tokio::sync::watch::Sender<bool>) -> Self {
        Self { inner, last, stop }
    }
}

impl<S: SnapshotStore> SnapshotStore for StopWhenDurable<S> {
    fn load(_path: &std::path::Path) -> Result<(WatchCursor, Self), SnapshotError> {
        Err(SnapshotError::Backend(
            "StopWhenDurable wraps an open store; it cannot load one".to_string(),
        ))
    }

    fn apply(&mut self, batch: &[KvUpdate], cursor: &WatchCursor) -> Result<(), SnapshotError> {
        self.inner.apply(batch, cursor)?;
        if cursor.as_u64().is_some_and(|r| r >= self.last) {
            // A closed channel only means the fold already ended.
            let _ = self.stop.send(true);
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<crate::kv::KvEntry>, SnapshotError> {
        self.inner.get(key)
    }

    fn range(&self, prefix: &str) -> Result<Vec<crate::kv::KvEntry>, SnapshotError> {
        self.inner.range(prefix)
    }

    fn cursor(&self) -> WatchCursor {
        self.inner.cursor()
    }

    fn export_to(
        &mut self,
        dest_dir: &std::path::Path,
    ) -> Result<crate::artifact::ExportManifest, SnapshotError> {
        self.inner.export_to(dest_dir)
    }
}

/// What SC-19 wrote through the embedded backend.
struct Written {
    key: String,
    value: Vec<u8>,
    last_revision: u64,
}

/// The backend half of SC-19, on its own runtime: writes the limit key with the
/// largest value, checks that one byte more of either is refused, and folds the
/// bucket into `store`.
async fn write_and_fold<S: SnapshotStore>(store: &mut S) -> Result<Written, String> {
    // max_payload 0: no server limit, so kvfold's own value limit is what applies.
    let conn = MemoryConnection::with_config(MemoryConfig::new().max_payload(0));
    conn.connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let bucket = conn
        .store_with_config(StoreConfig {
            name: "sc19".to_string(),
            max_bytes: Some(-1),
            ..StoreConfig::default()
        })
        .await
        .map_err(|e| format!("bucket: {e:?}"))?;
    let writer = bucket.writer().ok_or("the bucket has no writer")?;
    let key = limit_key();
    let over_key = format!("{key}x");
    match writer.put(&over_key, b"v").await {
        Err(KvError::OperationFailed(_)) => {}
        other => return Err(format!("a {}-byte key: {other:?}", over_key.len())),
    }
    let over_value = vec![0u8; MAX_VALUE_BYTES + 1];
    match writer.put("over-value", &over_value).await {
        Err(KvError::OperationFailed(_)) => {}
        other => return Err(format!("a {}-byte value: {other:?}", over_value.len())),
    }
    drop(over_value);
    let value = patterned_value(MAX_VALUE_BYTES);
    let first = writer
        .put(&key, &value)
        .await
        .map_err(|e| format!("put of the limit key and value: {e:?}"))?;
    let last = writer
        .put("after", b"a")
        .await
        .map_err(|e| format!("put after the limit entry: {e:?}"))?;
    let last_revision = last.as_u64().unwrap_or(0);
    if first.as_u64().map(|r| r + 1) != Some(last_revision) {
        return Err(format!(
            "revisions {first:?} then {last:?}: a refused write took a revision"
        ));
    }
    let watcher = bucket.watcher().ok_or("the bucket has no watcher")?;
    fold_into(watcher, store, last_revision, FOLD_WITHIN).await?;
    Ok(Written {
        key,
        value,
        last_revision,
    })
}

/// SC-19 (an addition): the longest key (`MAX_KEY_BYTES`) and the largest value
/// (`MAX_VALUE_BYTES`) a backend accepts, written through the embedded backend
/// and folded by `watch_applied` into the store, read back equal live and after
/// a reopen, with the cursor at the last revision; a key or value one byte
/// longer is refused by the backend (so it never reaches a fold).
///
/// Runs its own tokio runtime on a scoped thread, so it works from a plain
/// `#[test]` and from inside a runtime. Holds about three copies of the 64 MiB
/// value at once.
pub fn sc_19_backend_limits_round_trip(h: &impl SnapshotHarness) -> Outcome {
    let cx = Ctx::new("sc_19_backend_limits_round_trip", "SC-19");
    let (path, mut store) = open_fresh(&cx, h, "new store");
    let written = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .map_err(|e| format!("tokio runtime: {e}"))?;
                runtime.block_on(write_and_fold(&mut store))
            })
            .join()
    });
    let written = match written {
        Ok(Ok(written)) => written,
        Ok(Err(message)) => cx.fail(message),
        Err(_) => cx.fail("the backend thread panicked"),
    };
    expect_written(&cx, &store, &written, "live");
    drop(store);
    let (cursor, store) = open(&cx, h, &path, "reopen");
    ensure!(
        cx,
        cursor.as_u64() == Some(written.last_revision),
        "reopening returned resume cursor {cursor:?}, expected revision {}",
        written.last_revision
    );
    expect_written(&cx, &store, &written, "after a reopen");
    Outcome::Passed
}

/// Fails unless `store` holds the limit entry of `written` and its cursor.
fn expect_written<S: SnapshotStore>(cx: &Ctx, store: &S, written: &Written, when: &str) {
    let entry = cx.ok(store.get(&written.key), format_args!("get {when}"));
    ensure!(
        cx,
        entry
            .as_ref()
            .is_some_and(|e| e.key == written.key && e.value == written.value),
        "{when}: the limit key does not read back its {}-byte value (got {:?})",
        written.value.len(),
        entry.map(|e| (e.key.len(), e.value.len()))
    );
    ensure!(
        cx,
        store.cursor().as_u64() == Some(written.last_revision),
        "{when}: cursor {:?}, expected revision {}",
        store.cursor(),
        written.last_revision
    );
}
