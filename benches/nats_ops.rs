//! Request/response operations against a real nats-server (docs/performance.md): put,
//! get, CAS update and pipelined put through kvfold's `NatsConnection`, each paired with
//! raw async-nats (`jetstream::kv::Store`) doing the same work on the same bucket of the
//! same server in the same run; every pair ends with a `RATIO` and a `PAIRED`
//! line (docs/performance.md, "How a ratio is measured").
//!
//! Run: `cargo bench --bench nats_ops`. The server is started here (NATS_SERVER_BIN or
//! `nats-server` on PATH) on a free loopback port and killed at the end.

mod support;

#[path = "../tests/common"]
mod common {
    pub mod nats;
}

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use common::nats::NatsServer;
use criterion::{Criterion, Throughput};
use futures_util::StreamExt as _;
use kvfold::{KvReader, KvWriter, NatsConnection};
use tokio::runtime::Runtime;

const BUCKET: &str = "bench_ops";
/// Puts in flight in the pipelined figure.
const WINDOW: usize = 256;
/// Keys the pipelined figure cycles over.
const PIPELINE_KEYS: u64 = 1000;
/// Samples per figure (criterion's sample size, set below).
const SAMPLES: usize = 10;
/// Operations per trial in the interleaved paired trials (sequential figures).
const TRIAL_OPS: u64 = 500;
/// Operations per trial of the pipelined figure: enough to fill the window many times.
const PIPELINED_TRIAL_OPS: u64 = 5000;

/// Both clients of one bucket.
struct Clients {
    kv_writer: Arc<dyn KvWriter>,
    kv_reader: Arc<dyn KvReader>,
    raw: jetstream::kv::Store,
    /// The value every write writes, as kvfold and as async-nats take it.
    value: Vec<u8>,
    raw_value: Bytes,
    /// Keeps kvfold's connection alive.
    _conn: NatsConnection,
}

fn main() {
    let server = NatsServer::start();
    let rt = support::runtime();
    let clients = rt.block_on(connect(&server.url()));
    rt.block_on(async {
        let value = support::value();
        clients
            .kv_writer
            .put("get.kvfold", &value)
            .await
            .expect("put");
        clients.kv_writer.put("get.raw", &value).await.expect("put");
    });
    let mut c = support::criterion();
    let figures: [(&str, Side, Side, u64); 4] = [
        ("nats_ops/put", put_kvfold, put_raw, TRIAL_OPS),
        ("nats_ops/get", get_kvfold, get_raw, TRIAL_OPS),
        ("nats_ops/cas", cas_kvfold, cas_raw, TRIAL_OPS),
        (
            "nats_ops/pipelined_put",
            pipelined_kvfold,
            pipelined_raw,
            PIPELINED_TRIAL_OPS,
        ),
    ];
    for (figure, kvfold, raw, trial_ops) in figures {
        pair(&mut c, &rt, &clients, figure, (kvfold, raw), trial_ops);
    }
    c.final_summary();
    println!(
        "nats-server {} (single node, file storage), {} B values",
        server.version(),
        support::VALUE_BYTES
    );
    drop(clients);
    drop(rt);
    drop(server);
}

async fn connect(url: &str) -> Clients {
    let support::bucket::Bucket { store, raw, conn } = support::bucket::open(url, BUCKET).await;
    Clients {
        kv_writer: store.writer().expect("NATS writes"),
        kv_reader: store.reader(),
        raw,
        value: support::value(),
        raw_value: Bytes::from(support::value()),
        _conn: conn,
    }
}

/// One side of a figure: `n` operations, timed; returns the elapsed time.
type Side = for<'a> fn(&'a Clients, u64) -> Pin<Box<dyn Future<Output = Duration> + Send + 'a>>;

/// Criterion runs of both sides (each ends with a `RATIO` line of their medians), then
/// interleaved paired trials of `trial_ops` operations (a `PAIRED` line).
fn pair(
    c: &mut Criterion,
    rt: &Runtime,
    clients: &Clients,
    figure: &str,
    (kvfold, raw): (Side, Side),
    trial_ops: u64,
) {
    let mut g = c.benchmark_group(figure);
    g.sample_size(SAMPLES).throughput(Throughput::Elements(1));
    for (side, run) in [("kvfold", kvfold), ("raw", raw)] {
        g.bench_function(side, |b| {
            b.iter_custom(|iters| {
                let elapsed = rt.block_on(run(clients, iters));
                support::record(figure, side, iters, elapsed);
                elapsed
            })
        });
    }
    g.finish();
    support::report(figure, "kvfold", "raw", 1, SAMPLES);
    support::paired(
        figure,
        ("kvfold", "raw"),
        support::rounds(),
        trial_ops,
        || rt.block_on(kvfold(clients, trial_ops)),
        || rt.block_on(raw(clients, trial_ops)),
    );
}

/// `n` awaited puts of one key.
fn put_kvfold(cl: &Clients, n: u64) -> Pin<Box<dyn Future<Output = Duration> + Send + '_>> {
    Box::pin(async move {
        let start = Instant::now();
        for _ in 0..n {
            cl.kv_writer
                .put("put.kvfold", &cl.value)
                .await
                .expect("put");
        }
        start.elapsed()
    })
}

fn put_raw(cl: &Clients, n: u64) -> Pin<Box<dyn Future<Output = Duration> + Send + '_>> {
    Box::pin(async move {
        let start = Instant::now();
        for _ in 0..n {
            cl.raw
                .put("put.raw", cl.raw_value.clone())
                .await
                .expect("put");
        }
        start.elapsed()
    })
}

/// `n` gets of an existing key.
fn get_kvfold(cl: &Clients, n: u64) -> Pin<Box<dyn Future<Output = Duration> + Send + '_>> {
    Box::pin(async move {
        let start = Instant::now();
        for _ in 0..n {
            let got = cl.kv_reader.get("get.kvfold").await.expect("get");
            assert!(got.is_some(), "the key was written");
        }
        start.elapsed()
    })
}

fn get_raw(cl: &Clients, n: u64) -> Pin<Box<dyn Future<Output = Duration> + Send + '_>> {
    Box::pin(async move {
        let start = Instant::now();
        for _ in 0..n {
            let got = cl.raw.get("get.raw").await.expect("get");
            assert!(got.is_some(), "the key was written");
        }
        start.elapsed()
    })
}

/// `n` compare-and-swap updates, each on the version the previous returned (the first
/// on a fresh put, untimed).
fn cas_kvfold(cl: &Clients, n: u64) -> Pin<Box<dyn Future<Output = Duration> + Send + '_>> {
    Box::pin(async move {
        let mut version = cl
            .kv_writer
            .put("cas.kvfold", &cl.value)
            .await
            .expect("put");
        let start = Instant::now();
        for _ in 0..n {
            version = cl
                .kv_writer
                .update("cas.kvfold", &cl.value, &version)
                .await
                .expect("update on the latest version");
        }
        start.elapsed()
    })
}

fn cas_raw(cl: &Clients, n: u64) -> Pin<Box<dyn Future<Output = Duration> + Send + '_>> {
    Box::pin(async move {
        let mut revision = cl
            .raw
            .put("cas.raw", cl.raw_value.clone())
            .await
            .expect("put");
        let start = Instant::now();
        for _ in 0..n {
            revision = cl
                .raw
                .update("cas.raw", cl.raw_value.clone(), revision)
                .await
                .expect("update on the latest revision");
        }
        start.elapsed()
    })
}

/// `n` puts with [`WINDOW`] in flight (`buffer_unordered`), over [`PIPELINE_KEYS`] keys.
fn pipelined_kvfold(cl: &Clients, n: u64) -> Pin<Box<dyn Future<Output = Duration> + Send + '_>> {
    Box::pin(async move {
        let start = Instant::now();
        let mut puts = futures_util::stream::iter(0..n)
            .map(|i| async move {
                let key = format!("pipe.kvfold.{}", i % PIPELINE_KEYS);
                cl.kv_writer.put(&key, &cl.value).await
            })
            .buffer_unordered(WINDOW);
        while let Some(done) = puts.next().await {
            done.expect("pipelined put");
        }
        start.elapsed()
    })
}

fn pipelined_raw(cl: &Clients, n: u64) -> Pin<Box<dyn Future<Output = Duration> + Send + '_>> {
    Box::pin(async move {
        let start = Instant::now();
        let mut puts = futures_util::stream::iter(0..n)
            .map(|i| async move {
                let key = format!("pipe.raw.{}", i % PIPELINE_KEYS);
                cl.raw.put(&key, cl.raw_value.clone()).await
            })
            .buffer_unordered(WINDOW);
        while let Some(done) = puts.next().await {
            done.expect("pipelined put");
        }
        start.elapsed()
    })
}
