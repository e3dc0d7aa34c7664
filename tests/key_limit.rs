//! Issue 9, defect 4: one key-length limit for both backends
//! (`protocol::subject::MAX_KEY_BYTES`), enforced before any I/O with
//! `OperationFailed` naming the limit, and a value limit every snapshot store can
//! hold (`MAX_VALUE_BYTES`), so no accepted write can wedge a fold. Memory tests
//! here; the live NATS tests are in the `nats` module (real `nats-server`).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvfold::protocol::subject::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
use kvfold::{
    AppendLogSnapshot, BatchConfig, Connection, ExportManifest, KvEntry, KvError, KvReader,
    KvStore, KvUpdate, MemoryConfig, MemoryConnection, SnapshotError, SnapshotStore, StoreConfig,
    WatchCursor, WatchScope, watch_applied,
};
use tempfile::TempDir;

/// The longest key both backends accept, dotted (several subject tokens).
fn limit_key() -> String {
    format!("big.{}", "k".repeat(MAX_KEY_BYTES - 4))
}

fn unlimited(name: &str) -> StoreConfig {
    StoreConfig {
        name: name.to_string(),
        max_bytes: Some(-1),
        ..StoreConfig::default()
    }
}

async fn memory_bucket(config: MemoryConfig, name: &str) -> Arc<dyn KvStore> {
    let conn = MemoryConnection::with_config(config);
    conn.connect().await.expect("memory connect");
    conn.store_with_config(unlimited(name))
        .await
        .expect("bucket")
}

/// Fails unless `result` is `OperationFailed` naming the key limit, in a message
/// that does not repeat the whole key.
#[track_caller]
fn assert_refused_naming_limit<T: std::fmt::Debug>(result: Result<T, KvError>, what: &str) {
    match result {
        Err(KvError::OperationFailed(message)) => {
            assert!(
                message.contains(&MAX_KEY_BYTES.to_string()),
                "{what}: the message does not name the {MAX_KEY_BYTES}-byte limit: {message}"
            );
            assert!(
                message.len() < 400,
                "{what}: a {}-byte message repeats the key",
                message.len()
            );
        }
        other => panic!("{what}: expected OperationFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn memory_refuses_a_70000_byte_key_with_a_typed_error_naming_the_limit() {
    let bucket = memory_bucket(MemoryConfig::new(), "huge-key").await;
    let w = bucket.writer().expect("writer");
    let r = bucket.reader();
    let huge = "k".repeat(70_000);
    assert_refused_naming_limit(w.put(&huge, b"v").await, "put(70 000-byte key)");
    assert_refused_naming_limit(w.create(&huge, b"v").await, "create(70 000-byte key)");
    assert_refused_naming_limit(r.get(&huge).await, "get(70 000-byte key)");
    let over = "k".repeat(MAX_KEY_BYTES + 1);
    assert_refused_naming_limit(w.put(&over, b"v").await, "put(limit + 1)");
    let first = w
        .put(&limit_key(), b"v")
        .await
        .expect("the limit key is accepted");
    assert_eq!(
        first.as_u64(),
        Some(1),
        "the refused writes took no revision"
    );
}

#[tokio::test]
async fn memory_refuses_a_value_over_the_log_limit_even_without_a_payload_limit() {
    // max_payload(0) = no server limit: kvfold's own value limit still holds, so
    // the value can never be one the append log refuses.
    let bucket = memory_bucket(MemoryConfig::new().max_payload(0), "huge-value").await;
    let w = bucket.writer().expect("writer");
    let over = vec![7u8; MAX_VALUE_BYTES + 1];
    match w.put("v", &over).await {
        Err(KvError::OperationFailed(message)) => assert!(
            message.contains(&MAX_VALUE_BYTES.to_string()),
            "the message does not name the value limit: {message}"
        ),
        other => panic!("put of MAX_VALUE_BYTES + 1: expected OperationFailed, got {other:?}"),
    }
    let first = w.put("v", b"small").await.expect("a small value");
    assert_eq!(
        first.as_u64(),
        Some(1),
        "the refused write took no revision"
    );
}

/// An owned store that ends the fold once its own `apply` made revision `last`
/// durable (`on_applied` cannot tell: it reports the application's cursor even
/// while a failed store apply is re-queued).
struct StopWhenDurable {
    inner: AppendLogSnapshot,
    last: u64,
    stop: tokio::sync::watch::Sender<bool>,
}

impl SnapshotStore for StopWhenDurable {
    fn load(_path: &Path) -> Result<(WatchCursor, Self), SnapshotError> {
        Err(SnapshotError::Backend("wraps an open store".to_string()))
    }

    fn apply(&mut self, batch: &[KvUpdate], cursor: &WatchCursor) -> Result<(), SnapshotError> {
        self.inner.apply(batch, cursor)?;
        if cursor.as_u64().is_some_and(|r| r >= self.last) {
            let _ = self.stop.send(true);
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<KvEntry>, SnapshotError> {
        self.inner.get(key)
    }

    fn range(&self, prefix: &str) -> Result<Vec<KvEntry>, SnapshotError> {
        self.inner.range(prefix)
    }

    fn cursor(&self) -> WatchCursor {
        self.inner.cursor()
    }

    fn export_to(&mut self, dest_dir: &Path) -> Result<ExportManifest, SnapshotError> {
        self.inner.export_to(dest_dir)
    }
}

/// Folds `bucket` with `watch_applied` into a new append log under `dir` until
/// the store made revision `last` durable; returns why not otherwise.
async fn fold_until(bucket: &Arc<dyn KvStore>, dir: &TempDir, last: u64) -> Result<(), String> {
    let (_, inner) = AppendLogSnapshot::open(&dir.path().join("fold.snap"), 1 << 20)
        .map_err(|e| format!("open: {e:?}"))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let store = StopWhenDurable {
        inner,
        last,
        stop: stop_tx,
    };
    let fold = watch_applied(
        bucket.watcher().expect("watcher"),
        WatchScope::All,
        None,
        None::<Arc<dyn KvReader>>,
        Some(store),
        None,
        BatchConfig::default(),
        |u: &KvUpdate| Some(u.key().len()),
        |_: Vec<usize>| {},
        |_: WatchCursor| {},
        stop_rx,
    );
    match tokio::time::timeout(Duration::from_secs(60), fold).await {
        Err(_) => Err(format!("the fold did not reach revision {last} in 60 s")),
        Ok(Err(e)) => Err(format!("the fold stopped: {e:?}")),
        Ok(Ok(_)) => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_over_the_longest_key_and_an_attempted_oversized_key_does_not_wedge() {
    let bucket = memory_bucket(MemoryConfig::new(), "fold-limits").await;
    let w = bucket.writer().expect("writer");
    let key = limit_key();
    let value = vec![b'v'; 1024 * 1024];
    w.put("before", b"b").await.expect("put before");
    // Before the fix the memory backend stored this key, and every fold into an
    // append log then failed the same batch until it gave up.
    let oversized = w.put(&"k".repeat(70_000), b"x").await;
    w.put(&key, &value)
        .await
        .expect("the limit key with a 1 MiB value");
    let last = w.put("after", b"a").await.expect("put after");
    let last = last.as_u64().expect("revision");
    let dir = TempDir::new().expect("temp dir");
    let started = Instant::now();
    if let Err(message) = fold_until(&bucket, &dir, last).await {
        panic!("fold over the bucket: {message}");
    }
    assert!(
        matches!(oversized, Err(KvError::OperationFailed(_))),
        "the 70 000-byte key was accepted: {oversized:?}"
    );
    let (cursor, store) =
        AppendLogSnapshot::open(&dir.path().join("fold.snap"), 1 << 20).expect("reopen");
    assert_eq!(cursor.as_u64(), Some(last), "cursor after reopen");
    let entry = store
        .get(&key)
        .expect("get")
        .expect("the limit key is stored");
    assert_eq!(entry.value, value);
    println!(
        "folded the {MAX_KEY_BYTES}-byte key with a 1 MiB value in {:?}",
        started.elapsed()
    );
}

#[cfg(feature = "nats")]
mod nats {
    use super::*;
    use crate::common::nats::{NatsCluster, NatsServer};

    use crate::common::nats::connected;

    /// The limit key works on a real server (put, get, entry, keys, create) with
    /// a bucket name of the longest length the server accepts (252 bytes), so
    /// the direct-get subject is as long as it gets.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nats_accepts_the_limit_key_with_the_longest_bucket_name() {
        let server = NatsServer::start();
        let conn = connected(server.url()).await;
        let name = "b".repeat(252);
        let bucket = conn
            .store_with_config(unlimited(&name))
            .await
            .expect("bucket");
        let w = bucket.writer().expect("writer");
        let r = bucket.reader();
        let key = limit_key();
        let value = vec![b'x'; 1000];
        let first = w.put(&key, &value).await.expect("put of the limit key");
        let got = r.get(&key).await.expect("get of the limit key");
        assert_eq!(got.map(|e| e.value), Some(value.clone()));
        let entry = r.entry(&key).await.expect("entry of the limit key");
        assert_eq!(entry.map(|e| e.version), Some(first));
        assert_eq!(r.keys(&key).await.expect("keys"), vec![key.clone()]);
        let other = format!("big.{}", "c".repeat(MAX_KEY_BYTES - 4));
        w.create(&other, b"c").await.expect("create of a limit key");
        w.delete(&other).await.expect("delete of a limit key");
        assert!(
            conn.is_healthy(),
            "the connection survived the long subjects"
        );
    }

    /// Keys over the limit are refused before any I/O: with the server stopped,
    /// the refusal is immediate (a valid key would wait for the server), and on
    /// a live server a key longer than the server's control line no longer
    /// breaks the connection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nats_refuses_limit_plus_one_before_any_io() {
        let mut server = NatsServer::start();
        let conn = connected(server.url()).await;
        let bucket = conn
            .store_with_config(unlimited("limits"))
            .await
            .expect("bucket");
        let w = bucket.writer().expect("writer");
        let r = bucket.reader();
        // 5000 bytes: over nats-server's 4096-byte max_control_line.
        for len in [MAX_KEY_BYTES + 1, 5000, 70_000] {
            let key = "k".repeat(len);
            let started = Instant::now();
            let put = tokio::time::timeout(Duration::from_secs(5), w.put(&key, b"v")).await;
            let Ok(put) = put else {
                panic!("put of a {len}-byte key was not refused within 5 s");
            };
            assert_refused_naming_limit(put, &format!("put({len}-byte key)"));
            let get = tokio::time::timeout(Duration::from_secs(5), r.get(&key)).await;
            let Ok(get) = get else {
                panic!("get of a {len}-byte key was not refused within 5 s");
            };
            assert_refused_naming_limit(get, &format!("get({len}-byte key)"));
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{len}: refused late"
            );
        }
        assert!(conn.is_healthy(), "refused keys never reached the server");
        let first = w.put("after", b"a").await.expect("a valid put still works");
        assert_eq!(
            first.as_u64(),
            Some(1),
            "the refused writes took no revision"
        );
        server.kill();
        let over = "k".repeat(MAX_KEY_BYTES + 1);
        let started = Instant::now();
        let put = tokio::time::timeout(Duration::from_secs(5), w.put(&over, b"v")).await;
        let Ok(put) = put else {
            panic!("with the server down, put(limit + 1) waited for the server");
        };
        assert_refused_naming_limit(put, "put(limit + 1) with the server down");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "refused after {:?}",
            started.elapsed()
        );
    }

    /// On an R3 bucket a write reaches the stream leader, and a direct get any
    /// replica, over routes: every node takes the limit key (with the longest
    /// bucket name) from a client on each node, and reads it back on each node.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nats_r3_routes_the_limit_key_between_nodes() {
        let cluster = NatsCluster::start(3);
        let name = "r".repeat(252);
        let mut conns = Vec::new();
        for i in 0..cluster.len() {
            conns.push(connected(cluster.url(i)).await);
        }
        let config = StoreConfig {
            num_replicas: Some(3),
            ..unlimited(&name)
        };
        let mut buckets = Vec::new();
        for conn in &conns {
            buckets.push(
                conn.store_with_config(config.clone())
                    .await
                    .expect("bucket"),
            );
        }
        for (i, bucket) in buckets.iter().enumerate() {
            let key = format!("n{i}.{}", "k".repeat(MAX_KEY_BYTES - 3));
            assert_eq!(key.len(), MAX_KEY_BYTES);
            let w = bucket.writer().expect("writer");
            if let Err(e) = w.put(&key, key.as_bytes()).await {
                panic!("put of the limit key via node {i}: {e:?}");
            }
            for (j, reader) in buckets.iter().enumerate() {
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let got = reader.reader().get(&key).await.expect("get");
                    if got.is_some_and(|e| e.value == key.as_bytes()) {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "node {j} never read the limit key written via node {i}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        for conn in &conns {
            assert!(conn.is_healthy(), "a node closed a connection");
        }
    }
}
