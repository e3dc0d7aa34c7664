//! Consumers of the NATS backend on a live nats-server (issue 9, defects 5 and 6):
//! a state-sync watch cut off in its snapshot phase syncs again instead of
//! replaying history, and a watch or listing dropped mid-stream deletes its
//! server-side consumer at once instead of leaving it for the 300 s inactive
//! threshold.
#![cfg(feature = "nats")]

mod common;

use common::state_sync::{brief, receive_until, write_superseded_history};
use common::watch::watch_all;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::config::bucket;
use common::nats::{
    NatsCluster, NatsServer, Stopped, TcpProxy, consumer_count, wait_consumer_count,
};
use common::wait::wait_until;
use kvfold::{Connection, KvStore, StoreConfig, WatchCursor};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);
/// How long a dropped consumer may outlive its watch or listing.
const CLEANUP_WITHIN: Duration = Duration::from_secs(10);

use crate::common::nats::connected;

/// [`wait_until`] within 30 s.
async fn wait_for(what: &str, check: impl FnMut() -> bool) {
    wait_until(what, Duration::from_secs(30), check).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_sync_watch_cut_off_in_its_snapshot_phase_delivers_only_latest_values() {
    let server = NatsServer::start();
    let proxy = TcpProxy::start(server.addr());
    let conn = connected(proxy.url()).await;
    let store = conn.store_with_config(bucket("sync", 10)).await.unwrap();
    let writer = store.writer().unwrap();
    // x0..x9 at revisions 1–10, then y three times (11–13) and z (14).
    let expected = write_superseded_history(writer.as_ref()).await;

    let (mut rx, task) = watch_all(&store, None, 1);
    let mut got = Vec::new();
    receive_until(&mut rx, &mut got, 1, WAIT).await;
    // The watch now waits on back-pressure a few entries into its snapshot, with
    // the rest of the snapshot pushed to the client. Reconnect under it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.cut();
    wait_for("the client notices the cut", || !conn.is_healthy()).await;
    proxy.heal();
    wait_for("the client reconnects", || conn.is_healthy()).await;
    receive_until(&mut rx, &mut got, expected.len(), WAIT).await;
    assert_eq!(
        got, expected,
        "a state-sync watch delivers the latest entry of every key, never history"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(500), rx.recv())
            .await
            .is_err(),
        "nothing after the snapshot"
    );
    task.abort();
}

/// Writes `n` keys `k00000…` (one revision each) through a raw JetStream context.
async fn fill(client: &async_nats::Client, bucket: &str, n: usize) {
    let js = async_nats::jetstream::new(client.clone());
    // In chunks: the context bounds the acks in flight.
    for chunk in (0..n).collect::<Vec<_>>().chunks(256) {
        let mut acks = Vec::with_capacity(chunk.len());
        for i in chunk {
            acks.push(
                js.publish(format!("$KV.{bucket}.k{i:05}"), "value".into())
                    .await
                    .unwrap(),
            );
        }
        for ack in acks {
            ack.await.unwrap();
        }
    }
}

/// Waits until the bucket has one more consumer than `baseline`, then checks the
/// task is still running (the drop happens mid-stream), aborts it and waits for the
/// count to return to `baseline`.
async fn abort_mid_stream<T: Send + 'static>(
    raw: &async_nats::Client,
    stream: &str,
    baseline: u64,
    what: &str,
    task: tokio::task::JoinHandle<T>,
) -> Duration {
    wait_consumer_count(raw, stream, baseline + 1, WAIT).await;
    assert!(
        !task.is_finished(),
        "{what} finished before it could be dropped mid-stream"
    );
    task.abort();
    let _ = task.await;
    let took = wait_consumer_count(raw, stream, baseline, CLEANUP_WITHIN).await;
    println!("{what}: consumer gone {took:?} after the drop");
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_watches_and_listings_leave_no_consumer_behind() {
    const KEYS: usize = 20_000;
    let server = NatsServer::start();
    let conn = connected(server.url()).await;
    let store: Arc<dyn KvStore> = conn.store_with_config(bucket("drop", 1)).await.unwrap();
    let raw = async_nats::connect(server.url()).await.unwrap();
    let filled = Instant::now();
    fill(&raw, "drop", KEYS).await;
    println!("{KEYS} keys written in {:?}", filled.elapsed());
    let stream = "KV_drop";
    let baseline = consumer_count(&raw, stream).await;
    assert_eq!(baseline, 0);

    // A state-sync watch whose future is dropped while its receiver lags.
    let (tx, mut rx) = mpsc::channel(1);
    let watcher = store.watcher().unwrap();
    let task = tokio::spawn(async move { watcher.watch_all(tx).await });
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    abort_mid_stream(&raw, stream, baseline, "watch_all", task).await;

    // A resumed multi-prefix watch (raw consumer from a start sequence).
    let (tx, mut rx) = mpsc::channel(1);
    let watcher = store.watcher().unwrap();
    let task = tokio::spawn(async move {
        watcher
            .watch_prefixes_from(&["k0", "k1"], &WatchCursor::from_u64(1), tx)
            .await
    });
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    abort_mid_stream(&raw, stream, baseline, "watch_prefixes_from", task).await;

    // Listings: keys, scan, and for_each_key with a slow callback.
    let reader = store.reader();
    let task = tokio::spawn(async move { reader.keys("").await });
    abort_mid_stream(&raw, stream, baseline, "keys", task).await;

    let reader = store.reader();
    let task = tokio::spawn(async move { reader.scan("").await });
    abort_mid_stream(&raw, stream, baseline, "scan", task).await;

    let reader = store.reader();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        let mut slow = |_key: String| {
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1));
        };
        reader.for_each_key("", &mut slow).await
    });
    wait_for("for_each_key calls back", || {
        seen.load(Ordering::SeqCst) > 0
    })
    .await;
    abort_mid_stream(&raw, stream, baseline, "for_each_key", task).await;

    // A watch whose receiver is dropped ends by itself and deletes its consumer.
    let (tx, rx) = mpsc::channel(1);
    let watcher = store.watcher().unwrap();
    let task = tokio::spawn(async move { watcher.watch_prefix("k1", tx).await });
    wait_consumer_count(&raw, stream, baseline + 1, WAIT).await;
    drop(rx);
    assert_eq!(
        tokio::time::timeout(WAIT, task).await.unwrap().unwrap(),
        Ok(())
    );
    wait_consumer_count(&raw, stream, baseline, CLEANUP_WITHIN).await;

    // A complete listing leaves nothing either.
    assert_eq!(store.reader().keys("").await.unwrap().len(), KEYS);
    assert_eq!(consumer_count(&raw, stream).await, baseline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_sync_watches_started_while_a_replica_catches_up_deliver_only_latest_values() {
    // R1 consumers land on any peer of an R3 stream and read that peer's copy. A
    // follower stopped during the writes holds an old copy for a while after it
    // resumes; snapshots taken there must not turn into history.
    const KEYS: u64 = 100;
    const ROUNDS: u64 = 30;
    const WATCHES: usize = 12;
    let cluster = NatsCluster::start(3);
    let conn = connected(cluster.urls()).await;
    let store: Arc<dyn KvStore> = conn
        .store_with_config(StoreConfig {
            num_replicas: Some(3),
            ..bucket("lag", 5)
        })
        .await
        .unwrap();
    let leader = cluster.stream_leader("KV_lag");
    let follower = (leader + 1) % 3;
    let raw = async_nats::connect(cluster.url(leader)).await.unwrap();
    let stopped = Stopped::stop(cluster.node(follower).pid().expect("running"));
    let js = async_nats::jetstream::new(raw.clone());
    for round in 0..ROUNDS {
        let mut acks = Vec::new();
        for i in 0..KEYS {
            acks.push(
                js.publish(format!("$KV.lag.k{i:03}"), round.to_string().into())
                    .await
                    .unwrap(),
            );
        }
        for ack in acks {
            ack.await.unwrap();
        }
    }
    let expected: Vec<(String, u64)> = (0..KEYS)
        .map(|i| (format!("k{i:03}"), (ROUNDS - 1) * KEYS + i + 1))
        .collect();
    drop(stopped);
    let mut tasks = Vec::new();
    for _ in 0..WATCHES {
        let watcher = store.watcher().unwrap();
        let (tx, mut rx) = mpsc::channel(256);
        let watch = tokio::spawn(async move { watcher.watch_all(tx).await });
        let want = expected.clone();
        tasks.push(tokio::spawn(async move {
            // Until every key has arrived at its latest revision.
            let mut latest: std::collections::BTreeMap<String, u64> = Default::default();
            let mut got = Vec::new();
            while want.iter().any(|(k, r)| latest.get(k) != Some(r)) {
                match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
                    Ok(Some(update)) => {
                        let (key, revision) = brief(&update);
                        latest.insert(key.clone(), revision);
                        got.push((key, revision));
                    }
                    other => panic!(
                        "watch ended or stalled after {} updates: {other:?}",
                        got.len()
                    ),
                }
            }
            watch.abort();
            got
        }));
    }
    let mut stale_snapshots = 0;
    for (n, task) in tasks.into_iter().enumerate() {
        let got = task.await.unwrap();
        assert!(
            got.windows(2).all(|w| w[0].1 < w[1].1),
            "watch {n}: revisions strictly increase"
        );
        // A snapshot from a replica behind the stream may be forwarded before the
        // consumer shows it is behind (docs/nats-backend.md "State-sync snapshots");
        // then the watch syncs again: at most one stale entry per key, never the
        // replica's catch-up history.
        assert!(
            got.len() <= 2 * expected.len(),
            "watch {n}: {} updates for {} keys: history instead of latest values",
            got.len(),
            expected.len()
        );
        if got.len() > expected.len() {
            stale_snapshots += 1;
        }
    }
    println!("{stale_snapshots} of {WATCHES} watches started on a replica behind the stream");
}
