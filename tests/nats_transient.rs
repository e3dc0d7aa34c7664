//! Reads, listings and folds ride out R3 leader elections (issue 9 defect 7,
//! decisions 49–50): every read or listing called in a loop across stream-leader
//! step-downs and a leader kill either succeeds or returns the transient error
//! (`KvError::Timeout`, `is_transient()`) after its deadline, never a generic
//! failure, and none waits out a dropped request for the full 30 s; a fold's
//! cursor moves again within seconds of the new leader's election after a kill;
//! writes retried across elections apply once.
#![cfg(feature = "nats")]

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fold::batch;
use common::nats::NatsCluster;
use kvfold::{
    Connection, KvError, KvStore, KvUpdate, KvWatcher, StoreConfig, WatchCursor, WatchScope,
    watch_applied_owned,
};
use tokio::sync::watch;

fn named(name: &str) -> StoreConfig {
    common::config::replicated(name, 10, 3)
}

use crate::common::nats::connected;

/// Runs blocking harness work (cluster control) off the runtime's workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// One finished call of a looped operation.
#[derive(Debug, Clone)]
struct Call {
    /// When it ended, from the test's start.
    ended: Duration,
    took: Duration,
    result: Result<(), KvError>,
}

/// The longest stretch, within `[from, to]`, during which the operation
/// completed no call successfully.
fn longest_without_success(calls: &[Call], from: Duration, to: Duration) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for call in calls.iter().filter(|c| c.result.is_ok()) {
        if call.ended >= from && call.ended <= to {
            longest = longest.max(call.ended - last);
            last = call.ended;
        }
    }
    longest.max(to.saturating_sub(last))
}

/// Calls `op` in a loop until `stop`, recording every call.
fn looped<F, Fut>(
    t0: Instant,
    stop: Arc<AtomicBool>,
    mut op: F,
) -> tokio::task::JoinHandle<Vec<Call>>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), KvError>> + Send,
{
    tokio::spawn(async move {
        let mut calls = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let started = Instant::now();
            let result = op().await;
            calls.push(Call {
                ended: t0.elapsed(),
                took: started.elapsed(),
                result,
            });
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        calls
    })
}

/// Every read and listing operation of one bucket, by name, as loopable calls.
fn read_ops(
    bucket: &Arc<dyn KvStore>,
    t0: Instant,
    stop: &Arc<AtomicBool>,
) -> Vec<(&'static str, tokio::task::JoinHandle<Vec<Call>>)> {
    let reader = bucket.reader();
    let watcher = bucket.watcher().unwrap();
    let mut ops = Vec::new();
    let r = Arc::clone(&reader);
    ops.push((
        "get",
        looped(t0, Arc::clone(stop), move || {
            let r = Arc::clone(&r);
            async move { r.get("k1").await.map(|e| assert!(e.is_some())) }
        }),
    ));
    let r = Arc::clone(&reader);
    ops.push((
        "entry",
        looped(t0, Arc::clone(stop), move || {
            let r = Arc::clone(&r);
            async move { r.entry("k2").await.map(|e| assert!(e.is_some())) }
        }),
    ));
    let r = Arc::clone(&reader);
    ops.push((
        "keys",
        looped(t0, Arc::clone(stop), move || {
            let r = Arc::clone(&r);
            async move { r.keys("k").await.map(|k| assert!(k.len() >= 20, "{k:?}")) }
        }),
    ));
    let r = Arc::clone(&reader);
    ops.push((
        "scan",
        looped(t0, Arc::clone(stop), move || {
            let r = Arc::clone(&r);
            async move { r.scan("k").await.map(|e| assert!(e.len() >= 20)) }
        }),
    ));
    let r = Arc::clone(&reader);
    ops.push((
        "for_each_key",
        looped(t0, Arc::clone(stop), move || {
            let r = Arc::clone(&r);
            async move {
                let mut n = 0usize;
                r.for_each_key("k", &mut |_| n += 1).await?;
                assert!(n >= 20, "{n}");
                Ok(())
            }
        }),
    ));
    let w = Arc::clone(&watcher);
    ops.push((
        "status",
        looped(t0, Arc::clone(stop), move || {
            let w = Arc::clone(&w);
            async move { w.status().await.map(|s| assert!(s.is_some())) }
        }),
    ));
    let w = Arc::clone(&watcher);
    ops.push((
        "retention",
        looped(t0, Arc::clone(stop), move || {
            let w = Arc::clone(&w);
            async move { w.retention().await.map(|s| assert!(s.is_some())) }
        }),
    ));
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_and_listing_rides_out_r3_leader_step_downs_and_a_leader_kill() {
    let t0 = Instant::now();
    let cluster = Arc::new(Mutex::new(NatsCluster::start(3)));
    let urls = cluster.lock().unwrap().urls();
    let conn = connected(urls).await;
    let bucket = conn.store_with_config(named("ride")).await.unwrap();
    let stream = "KV_ride";
    let writer = bucket.writer().unwrap();
    for i in 0..20 {
        writer.put(&format!("k{i}"), b"v").await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let ops = read_ops(&bucket, t0, &stop);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut events = Vec::new();
    for round in 1..=2 {
        let c = Arc::clone(&cluster);
        let old = blocking(move || c.lock().unwrap().step_down_leader(stream)).await;
        let c = Arc::clone(&cluster);
        let new = blocking(move || c.lock().unwrap().stream_leader(stream)).await;
        println!("{:?}: step-down {round}: n{old} -> n{new}", t0.elapsed());
        events.push(t0.elapsed());
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    let c = Arc::clone(&cluster);
    let killed = blocking(move || c.lock().unwrap().kill_leader(stream)).await;
    let killed_at = t0.elapsed();
    let c = Arc::clone(&cluster);
    let new = blocking(move || c.lock().unwrap().stream_leader(stream)).await;
    let elected_at = t0.elapsed();
    println!("{killed_at:?}: killed leader n{killed}; n{new} elected by {elected_at:?}");
    events.push(killed_at);
    tokio::time::sleep(Duration::from_secs(20)).await;
    stop.store(true, Ordering::SeqCst);
    let end = t0.elapsed();

    let mut failures = Vec::new();
    for (name, handle) in ops {
        let calls = handle.await.unwrap();
        let ok = calls.iter().filter(|c| c.result.is_ok()).count();
        let transient = calls
            .iter()
            .filter(|c| c.result.as_ref().is_err_and(KvError::is_transient))
            .count();
        let slowest = calls.iter().map(|c| c.took).max().unwrap_or_default();
        let gap = longest_without_success(&calls, events[0], end);
        println!(
            "{name}: {} calls, {ok} ok, {transient} transient, slowest {slowest:?}, longest stretch without a success {gap:?}",
            calls.len()
        );
        for call in &calls {
            match &call.result {
                Ok(()) => {}
                Err(e) if e.is_transient() => {
                    println!(
                        "  {name}: transient {e:?} at {:?} after {:?}",
                        call.ended, call.took
                    )
                }
                Err(e) => failures.push(format!(
                    "{name}: generic failure {e:?} at {:?} after {:?}",
                    call.ended, call.took
                )),
            }
        }
        // A request dropped by an election is re-sent, not waited out for 30 s.
        if gap >= Duration::from_secs(20) {
            failures.push(format!("{name}: no success for {gap:?}"));
        }
        if !calls
            .iter()
            .any(|c| c.result.is_ok() && c.ended > elected_at)
        {
            failures.push(format!("{name}: no success after the new leader"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Folds the bucket into an append log as a service would: a run that ends with an
/// error is restarted from the store's cursor. Publishes the cursor in `cursor`.
async fn supervise(
    watcher: Arc<dyn KvWatcher>,
    path: std::path::PathBuf,
    cursor: Arc<AtomicU64>,
    shutdown: watch::Receiver<bool>,
) -> Vec<KvError> {
    let (_, errors) = common::fold::supervise(&path, |resume, store| {
        let published = Arc::clone(&cursor);
        watch_applied_owned(
            Arc::clone(&watcher),
            WatchScope::All,
            Some(resume),
            None,
            Some(store),
            None,
            batch(),
            |_: &KvUpdate| Some(()),
            |_: Vec<()>| {},
            move |c: WatchCursor| published.store(c.rank(), Ordering::SeqCst),
            shutdown.clone(),
        )
    })
    .await;
    errors
}

/// After a kill -9 of the stream leader, the fold's cursor moves again within
/// seconds of the new leader's election (the figure is printed), while a writer
/// keeps writing distinct keys; afterwards every key holds at most one message
/// (no write applied twice) and every acknowledged write is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_moves_again_within_seconds_of_the_new_leader_after_a_leader_kill() {
    let t0 = Instant::now();
    let cluster = Arc::new(Mutex::new(NatsCluster::start(3)));
    let urls = cluster.lock().unwrap().urls();
    let conn = connected(urls).await;
    let bucket = conn.store_with_config(named("foldr3")).await.unwrap();
    let stream = "KV_foldr3";
    let dir = tempfile::tempdir().unwrap();
    let cursor = Arc::new(AtomicU64::new(0));
    let (stop_fold, shutdown) = watch::channel(false);
    let fold = tokio::spawn(supervise(
        bucket.watcher().unwrap(),
        dir.path().join("fold.snap"),
        Arc::clone(&cursor),
        shutdown,
    ));

    // Writers of distinct keys, one call each (retries are the backend's), started
    // every 20 ms with at most 64 in flight: a write whose publish an election
    // dropped waits out its 30 s (writes are never re-sent unanswered) without
    // stopping the others, so the fold has something to move to.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = bucket.writer().unwrap();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let writes = {
        let (stop, acked) = (Arc::clone(&stop), Arc::clone(&acked));
        tokio::spawn(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(64));
            let mut tasks = tokio::task::JoinSet::new();
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let slot = Arc::clone(&slots).acquire_owned().await.unwrap();
                let (writer, acked) = (Arc::clone(&writer), Arc::clone(&acked));
                let key = format!("w{i:05}");
                tasks.spawn(async move {
                    let result = writer.put(&key, b"v").await;
                    drop(slot);
                    if result.is_ok() {
                        acked.lock().unwrap().insert(key.clone());
                    }
                    (key, result)
                });
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let mut outcomes = (0u32, 0u32, Vec::new());
            while let Some(done) = tasks.join_next().await {
                match done.unwrap() {
                    (_, Ok(_)) => outcomes.0 += 1,
                    (_, Err(e)) if e.is_transient() => outcomes.1 += 1,
                    (key, Err(e)) => outcomes.2.push(format!("{key}: {e:?}")),
                }
            }
            outcomes
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while cursor.load(Ordering::SeqCst) < 30 {
        assert!(Instant::now() < deadline, "the fold reaches 30");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The worst case: the node that leads the stream also hosts the fold's
    // consumer, so the watch must be set up again (stream probe, consumer create)
    // while the cluster elects a new leader.
    let c = Arc::clone(&cluster);
    let host = blocking(move || {
        let cluster = c.lock().unwrap();
        let hosts = cluster.consumer_leaders(stream);
        let host = *hosts.first().expect("the fold's consumer is listed");
        cluster.move_leader(stream, host);
        host
    })
    .await;
    let c = Arc::clone(&cluster);
    let killed = blocking(move || c.lock().unwrap().kill_leader(stream)).await;
    assert_eq!(killed, host, "the killed leader hosts the fold's consumer");
    let killed_at = t0.elapsed();
    let c = Arc::clone(&cluster);
    let new = blocking(move || c.lock().unwrap().stream_leader(stream)).await;
    let elected_at = t0.elapsed();
    let at_election = cursor.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(90);
    while cursor.load(Ordering::SeqCst) <= at_election {
        assert!(Instant::now() < deadline, "the fold moves again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let moved_at = t0.elapsed();
    let recovery = moved_at - elected_at;
    println!(
        "killed leader n{killed} (the consumer's host) at {killed_at:?}; n{new} seen elected at \
         {elected_at:?}; fold cursor moved past {at_election} at {moved_at:?}: {recovery:?} after \
         the election was seen, {:?} after the kill",
        moved_at - killed_at
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let (ok, transient, generic) = writes.await.unwrap();
    println!("writes: {ok} acknowledged, {transient} transient, generic failures: {generic:?}");
    let last = bucket
        .watcher()
        .unwrap()
        .last_revision()
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while cursor.load(Ordering::SeqCst) < last {
        assert!(Instant::now() < deadline, "the fold converges to {last}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_fold.send(true).unwrap();
    let errors = fold.await.unwrap();
    println!("fold runs ended with errors: {errors:?}");

    // No write applied twice: one message per key; every acknowledged key is there.
    let keys: BTreeSet<String> = bucket
        .reader()
        .keys("w")
        .await
        .unwrap()
        .into_iter()
        .collect();
    let status = bucket.watcher().unwrap().status().await.unwrap().unwrap();
    assert_eq!(
        status.values,
        keys.len() as u64,
        "each key written once holds one message"
    );
    let acked = acked.lock().unwrap().clone();
    assert!(acked.is_subset(&keys), "every acknowledged write is stored");
    assert!(generic.is_empty(), "writes failed generically: {generic:?}");
    assert!(
        recovery < Duration::from_secs(15),
        "the fold stood still for {recovery:?} after the new leader's election"
    );
}
