//! Streaming from a real nats-server (docs/performance.md): a state-sync replay of N keys
//! through kvfold's `watch_all`, and `watch_applied` folding the same bucket (no store, and
//! into a fresh `AppendLogSnapshot` with sync off), each paired with raw async-nats
//! replaying the same N entries (`kv::Store::watch_with_history(">")`, the client's own
//! state-sync watch) in the same run; every pair ends with a `RATIO` and a `PAIRED`
//! line (docs/performance.md, "How a ratio is measured").
//!
//! Run: `cargo bench --bench nats_stream`; `KVFOLD_BENCH_KEYS` sets N (default 20000).

mod support;

#[path = "../tests/common"]
mod common {
    pub mod nats;
}

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use common::nats::NatsServer;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, measurement::WallTime};
use futures_util::StreamExt as _;
use kvfold::{KvUpdate, KvWatcher, NatsConnection};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

const BUCKET: &str = "bench_replay";
/// Samples per figure.
const SAMPLES: usize = 10;
/// Capacity of the channel kvfold's watch hands updates through (`BatchConfig`'s default).
const CHANNEL: usize = 256;

struct Setup {
    watcher: Arc<dyn KvWatcher>,
    raw: jetstream::kv::Store,
    /// Entries a replay delivers (one per key).
    keys: usize,
    /// The bucket's last revision: a fold is done when its cursor reaches it.
    last_revision: u64,
    _conn: NatsConnection,
}

fn main() {
    let keys = support::size("KVFOLD_BENCH_KEYS", 20_000, 200);
    let server = NatsServer::start();
    let rt = support::runtime();
    let setup = rt.block_on(fill(&server.url(), keys));
    let mut c = support::criterion();
    replay(&mut c, &rt, &setup);
    fold(&mut c, &rt, &setup);
    c.final_summary();
    println!(
        "nats-server {} (single node, file storage), {keys} keys of {} B",
        server.version(),
        support::VALUE_BYTES
    );
    drop(setup);
    drop(rt);
    drop(server);
}

/// Creates the bucket (through kvfold, history 1) and writes `keys` keys with raw
/// pipelined puts (not measured).
async fn fill(url: &str, keys: usize) -> Setup {
    let support::bucket::Bucket { store, raw, conn } = support::bucket::open(url, BUCKET).await;
    let value = Bytes::from(support::value());
    let mut puts = futures_util::stream::iter(0..keys)
        .map(|i| {
            let raw = raw.clone();
            let value = value.clone();
            async move { raw.put(format!("k.{i:08}"), value).await }
        })
        .buffer_unordered(256);
    while let Some(done) = puts.next().await {
        done.expect("fill put");
    }
    drop(puts);
    let watcher = store.watcher().expect("NATS watches");
    let last_revision = watcher
        .last_revision()
        .await
        .expect("status")
        .expect("NATS knows its last revision");
    Setup {
        watcher,
        raw,
        keys,
        last_revision,
        _conn: conn,
    }
}

fn group<'a>(c: &'a mut Criterion, name: &str, keys: usize) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(keys as u64));
    g
}

/// One state-sync replay through kvfold's `watch_all`, up to the last key, timed from
/// the call to the last entry received (the watch is then dropped, untimed).
async fn kvfold_replay(setup: &Setup) -> Duration {
    let (tx, mut rx) = mpsc::channel::<KvUpdate>(CHANNEL);
    let watcher = Arc::clone(&setup.watcher);
    let start = Instant::now();
    let task = tokio::spawn(async move { watcher.watch_all(tx).await });
    for _ in 0..setup.keys {
        rx.recv().await.expect("the replay delivers every key");
    }
    let elapsed = start.elapsed();
    drop(rx);
    task.await
        .expect("watch task")
        .expect("the watch ends cleanly");
    elapsed
}

/// The same replay through raw async-nats: `watch_with_history(">")` (last per subject).
async fn raw_replay(setup: &Setup) -> Duration {
    let start = Instant::now();
    let mut watch = setup
        .raw
        .watch_with_history(">")
        .await
        .expect("raw watch starts");
    for _ in 0..setup.keys {
        watch
            .next()
            .await
            .expect("the replay delivers every key")
            .expect("a valid entry");
    }
    let elapsed = start.elapsed();
    drop(watch);
    elapsed
}

fn replay(c: &mut Criterion, rt: &Runtime, setup: &Setup) {
    let figure = "nats_stream/replay";
    let mut g = group(c, figure, setup.keys);
    g.bench_function("kvfold_watch_all", |b| {
        b.iter_custom(|iters| {
            support::timed(rt, figure, "kvfold", iters, async || {
                kvfold_replay(setup).await
            })
        })
    });
    g.bench_function("raw_watch_with_history", |b| {
        b.iter_custom(|iters| {
            support::timed(rt, figure, "raw", iters, async || raw_replay(setup).await)
        })
    });
    g.finish();
    support::report(figure, "kvfold", "raw", setup.keys as u64, SAMPLES);
    support::paired(
        figure,
        ("kvfold", "raw"),
        support::rounds(),
        setup.keys as u64,
        || rt.block_on(kvfold_replay(setup)),
        || rt.block_on(raw_replay(setup)),
    );
}

/// One `watch_applied` run over the bucket until its applied cursor reaches the
/// bucket's last revision (`support::fold::fold_once`).
async fn kvfold_fold(setup: &Setup, with_store: bool) -> Duration {
    support::fold::fold_once(Arc::clone(&setup.watcher), setup.last_revision, with_store).await
}

fn fold(c: &mut Criterion, rt: &Runtime, setup: &Setup) {
    let figure = "nats_stream/fold";
    let mut g = group(c, figure, setup.keys);
    g.bench_function("kvfold_append_log", |b| {
        b.iter_custom(|iters| {
            support::timed(rt, figure, "kvfold_append_log", iters, async || {
                kvfold_fold(setup, true).await
            })
        })
    });
    g.bench_function("kvfold_no_store", |b| {
        b.iter_custom(|iters| {
            support::timed(rt, figure, "kvfold_no_store", iters, async || {
                kvfold_fold(setup, false).await
            })
        })
    });
    g.bench_function("raw_watch_with_history", |b| {
        b.iter_custom(|iters| {
            support::timed(rt, figure, "raw", iters, async || raw_replay(setup).await)
        })
    });
    g.finish();
    let n = setup.keys as u64;
    support::report(figure, "kvfold_append_log", "raw", n, SAMPLES);
    support::report(figure, "kvfold_no_store", "raw", n, SAMPLES);
    for (side, with_store) in [("kvfold_append_log", true), ("kvfold_no_store", false)] {
        support::paired(
            figure,
            (side, "raw"),
            support::rounds(),
            n,
            || rt.block_on(kvfold_fold(setup, with_store)),
            || rt.block_on(raw_replay(setup)),
        );
    }
}
