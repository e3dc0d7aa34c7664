//! The fold without a server (docs/performance.md): `watch_applied` over the embedded
//! backend (`MemoryConnection`) with no store and into a fresh `AppendLogSnapshot` (sync
//! off), and `watch_applied` over a scripted watcher delivering 1000 updates with no store,
//! paired with a hand-rolled loop doing the same batching over a tokio channel. Each
//! pair ends with a `RATIO` and a `PAIRED` line (docs/performance.md).
//!
//! Run: `cargo bench --bench fold`; `KVFOLD_BENCH_MEM_KEYS` sets the memory bucket's key
//! count (default 100000).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{Criterion, SamplingMode, Throughput};
use kvfold::{
    BatchConfig, Connection as _, KvEntry, KvError, KvUpdate, KvWatcher, MemoryConnection,
    StoreConfig, VersionToken,
};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// Samples per figure.
const SAMPLES: usize = 10;
/// Updates the scripted figure folds.
const SCRIPTED: usize = 1000;

fn main() {
    let keys = support::size("KVFOLD_BENCH_MEM_KEYS", 100_000, 500);
    let rt = support::runtime();
    let mut c = support::criterion();
    memory(&mut c, &rt, keys);
    scripted(&mut c, &rt);
    c.final_summary();
}

/// `watch_applied` over a `MemoryConnection` bucket of `keys` keys (one revision each).
fn memory(c: &mut Criterion, rt: &Runtime, keys: usize) {
    let (conn, watcher, last) = rt.block_on(async {
        let conn = MemoryConnection::new();
        conn.connect().await.expect("connect");
        let store = conn
            .store_with_config(StoreConfig {
                name: "bench_fold".to_string(),
                max_history: Some(1),
                max_bytes: Some(-1),
                ..StoreConfig::default()
            })
            .await
            .expect("bucket");
        let writer = store.writer().expect("memory writes");
        let value = support::value();
        let mut last = 0;
        for i in 0..keys {
            let version = writer.put(&format!("k.{i:08}"), &value).await.expect("put");
            last = version.as_u64().expect("memory versions are revisions");
        }
        (conn, store.watcher().expect("memory watches"), last)
    });
    let figure = "fold/memory";
    let mut g = c.benchmark_group(figure);
    g.sample_size(SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(keys as u64));
    g.bench_function("append_log", |b| {
        b.iter_custom(|iters| {
            support::timed(rt, figure, "append_log", iters, async || {
                support::fold::fold_once(Arc::clone(&watcher), last, true).await
            })
        })
    });
    g.bench_function("no_store", |b| {
        b.iter_custom(|iters| {
            support::timed(rt, figure, "no_store", iters, async || {
                support::fold::fold_once(Arc::clone(&watcher), last, false).await
            })
        })
    });
    g.finish();
    support::report(figure, "append_log", "no_store", keys as u64, SAMPLES);
    support::paired(
        figure,
        ("append_log", "no_store"),
        support::rounds(),
        keys as u64,
        || rt.block_on(support::fold::fold_once(Arc::clone(&watcher), last, true)),
        || rt.block_on(support::fold::fold_once(Arc::clone(&watcher), last, false)),
    );
    drop(conn);
}

/// A watcher whose every watch delivers `updates` in order and then stays open.
struct Scripted {
    updates: Arc<Vec<KvUpdate>>,
}

impl Scripted {
    async fn serve(&self, tx: mpsc::Sender<KvUpdate>) -> Result<(), KvError> {
        for update in self.updates.iter() {
            if tx.send(update.clone()).await.is_err() {
                return Ok(());
            }
        }
        tx.closed().await;
        Ok(())
    }
}

#[async_trait]
impl KvWatcher for Scripted {
    async fn watch_all(&self, tx: mpsc::Sender<KvUpdate>) -> Result<(), KvError> {
        self.serve(tx).await
    }

    async fn watch_prefix(&self, _: &str, tx: mpsc::Sender<KvUpdate>) -> Result<(), KvError> {
        self.serve(tx).await
    }

    async fn watch_prefixes(&self, _: &[&str], tx: mpsc::Sender<KvUpdate>) -> Result<(), KvError> {
        self.serve(tx).await
    }

    fn bucket_name(&self) -> Option<&str> {
        Some("scripted")
    }
}

/// The reference: the same updates cloned into a channel of the same capacity by a
/// spawned task, batched by 100 and handed to an `apply` that does nothing, with the
/// last revision of each batch as its cursor: what `watch_applied` does with no store,
/// without its machine.
async fn channel_loop(updates: Arc<Vec<KvUpdate>>, last: u64) -> Duration {
    let config = BatchConfig::default();
    let start = Instant::now();
    let (tx, mut rx) = mpsc::channel::<KvUpdate>(config.channel_capacity);
    let feeder = tokio::spawn(async move {
        for update in updates.iter() {
            if tx.send(update.clone()).await.is_err() {
                return;
            }
        }
        tx.closed().await;
    });
    let mut batch: Vec<()> = Vec::with_capacity(config.max);
    let mut cursor = 0;
    while let Some(update) = rx.recv().await {
        batch.push(());
        let revision = update.version().as_u64().expect("scripted revisions");
        if batch.len() >= config.max {
            std::hint::black_box(std::mem::take(&mut batch));
            cursor = revision;
            if cursor >= last {
                break;
            }
        }
    }
    let elapsed = start.elapsed();
    assert!(cursor >= last, "the loop covered the script");
    drop(rx);
    feeder.await.expect("feeder");
    elapsed
}

/// `watch_applied`, 1000 scripted updates, no store; against [`channel_loop`].
fn scripted(c: &mut Criterion, rt: &Runtime) {
    let value = support::value();
    let updates: Arc<Vec<KvUpdate>> = Arc::new(
        (1..=SCRIPTED as u64)
            .map(|rev| {
                KvUpdate::Put(KvEntry {
                    key: format!("k.{rev:06}"),
                    value: value.clone(),
                    version: VersionToken::from_u64(rev),
                })
            })
            .collect(),
    );
    let last = SCRIPTED as u64;
    let figure = "fold/scripted_1000";
    let mut g = c.benchmark_group(figure);
    g.sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(SCRIPTED as u64));
    g.bench_function("watch_applied_no_store", |b| {
        b.iter_custom(|iters| {
            support::timed(rt, figure, "watch_applied", iters, async || {
                let watcher: Arc<dyn KvWatcher> = Arc::new(Scripted {
                    updates: Arc::clone(&updates),
                });
                support::fold::fold_once(watcher, last, false).await
            })
        })
    });
    g.bench_function("channel_loop", |b| {
        b.iter_custom(|iters| {
            support::timed(rt, figure, "channel_loop", iters, async || {
                channel_loop(Arc::clone(&updates), last).await
            })
        })
    });
    g.finish();
    support::report(figure, "watch_applied", "channel_loop", SCRIPTED as u64, 20);
    // One run is under a millisecond: many more rounds than the other figures.
    support::paired(
        figure,
        ("watch_applied", "channel_loop"),
        support::rounds() * 10,
        SCRIPTED as u64,
        || {
            let watcher: Arc<dyn KvWatcher> = Arc::new(Scripted {
                updates: Arc::clone(&updates),
            });
            rt.block_on(support::fold::fold_once(watcher, last, false))
        },
        || rt.block_on(channel_loop(Arc::clone(&updates), last)),
    );
}
