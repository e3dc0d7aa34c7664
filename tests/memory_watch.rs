//! The embedded backend's watch loop with a `ManualClock` (docs/memory-backend.md,
//! "Tests"): back-pressure, pause, interrupt, partition/heal resubscribe through the resume
//! checks, the floor guard's idle probe, and how watches end.

use std::sync::Arc;
use std::time::Duration;

use kvfold::memory::{ManualClock, MemoryOp, MemoryServer};
use kvfold::protocol::resume::FLOOR_PROBE_IDLE_MS;
use kvfold::{
    Connection, KvError, KvStore, KvUpdate, MemoryConfig, MemoryConnection, StoreConfig,
    VersionToken, WatchCursor,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

mod common;

use common::config::bucket;
use common::watch::watch_all;

const START_MS: u64 = 1_700_000_000_000;
const WAIT: Duration = Duration::from_secs(5);

async fn setup(config: MemoryConfig, bucket: StoreConfig) -> (MemoryConnection, Arc<dyn KvStore>) {
    let conn = MemoryConnection::with_config(config);
    conn.connect().await.unwrap();
    let store = conn.store_with_config(bucket).await.unwrap();
    (conn, store)
}

async fn recv_revisions(rx: &mut mpsc::Receiver<KvUpdate>, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    while out.len() < n {
        let update = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("update arrives")
            .expect("watch is running");
        out.push(update.version().as_u64().unwrap());
    }
    out
}

async fn nothing_arrives(rx: &mut mpsc::Receiver<KvUpdate>) {
    if let Ok(Some(update)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
        panic!("nothing may arrive, got {update:?}");
    }
}

async fn ended(task: JoinHandle<Result<(), KvError>>) -> Result<(), KvError> {
    tokio::time::timeout(WAIT, task)
        .await
        .expect("watch ends")
        .expect("watch task")
}

#[tokio::test]
async fn slow_receiver_gets_every_commit_in_order_through_a_tiny_queue() {
    let config = MemoryConfig::new().watch_queue(2, 1 << 20);
    let (_conn, store) = setup(config, bucket("bp", 64)).await;
    let writer = store.writer().unwrap();
    writer.put("ready", b"1").await.unwrap();
    let (mut rx, _task) = watch_all(&store, None, 1);
    // The watch is registered once it delivered its snapshot.
    assert_eq!(recv_revisions(&mut rx, 1).await, vec![1]);
    for i in 0..200u32 {
        writer
            .put(&format!("k{}", i % 7), &i.to_be_bytes())
            .await
            .unwrap();
    }
    let got = recv_revisions(&mut rx, 200).await;
    assert_eq!(
        got,
        (2..=201).collect::<Vec<_>>(),
        "back-pressure never drops or reorders"
    );
    nothing_arrives(&mut rx).await;
}

#[tokio::test]
async fn paused_delivery_holds_updates_until_resumed() {
    let (conn, store) = setup(MemoryConfig::new(), bucket("pause", 8)).await;
    let writer = store.writer().unwrap();
    writer.put("other", b"0").await.unwrap();
    let (mut rx, _task) = watch_all(&store, None, 16);
    assert_eq!(recv_revisions(&mut rx, 1).await, vec![1]);
    conn.faults().pause_delivery("pause").unwrap();
    for i in 0..3u8 {
        writer.put("k", &[i + 1]).await.unwrap();
    }
    nothing_arrives(&mut rx).await;
    conn.faults().resume_delivery("pause").unwrap();
    assert_eq!(recv_revisions(&mut rx, 3).await, vec![2, 3, 4]);
}

#[tokio::test]
async fn paused_delivery_also_holds_the_state_sync_snapshot() {
    let (conn, store) = setup(MemoryConfig::new(), bucket("pause2", 8)).await;
    store.writer().unwrap().put("k", b"v").await.unwrap();
    conn.faults().pause_delivery("pause2").unwrap();
    let (mut rx, _task) = watch_all(&store, None, 16);
    nothing_arrives(&mut rx).await;
    conn.faults().resume_delivery("pause2").unwrap();
    assert_eq!(recv_revisions(&mut rx, 1).await, vec![1]);
}

#[tokio::test]
async fn interrupted_watch_returns_the_injected_error() {
    let (conn, store) = setup(MemoryConfig::new(), bucket("intr", 1)).await;
    let (mut rx, task) = watch_all(&store, None, 16);
    store.writer().unwrap().put("k", b"v").await.unwrap();
    assert_eq!(recv_revisions(&mut rx, 1).await, vec![1]);
    let n = conn
        .faults()
        .interrupt_watches("intr", KvError::WatchError("boom".into()))
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(ended(task).await, Err(KvError::WatchError("boom".into())));
}

#[tokio::test]
async fn watch_fault_fails_before_registration() {
    let (conn, store) = setup(MemoryConfig::new(), bucket("wf", 1)).await;
    conn.faults()
        .fail_next(MemoryOp::Watch, 1, KvError::Timeout);
    let (_rx, task) = watch_all(&store, None, 1);
    assert_eq!(ended(task).await, Err(KvError::Timeout));
    // The rule was consumed: the next watch runs.
    let (mut rx, _task) = watch_all(&store, None, 4);
    store.writer().unwrap().put("k", b"v").await.unwrap();
    assert_eq!(recv_revisions(&mut rx, 1).await, vec![1]);
}

#[tokio::test]
async fn deleted_bucket_ends_watches_with_watch_error() {
    let (conn, store) = setup(MemoryConfig::new(), bucket("gone", 1)).await;
    let (_rx, task) = watch_all(&store, None, 4);
    tokio::task::yield_now().await;
    conn.faults().delete_bucket("gone").unwrap();
    assert_eq!(
        ended(task).await,
        Err(KvError::WatchError("bucket gone was deleted".into()))
    );
    let err = store.writer().unwrap().put("k", b"v").await.unwrap_err();
    assert_eq!(
        err,
        KvError::OperationFailed("bucket gone not found".into())
    );
}

#[tokio::test]
async fn healed_partition_resumes_without_loss_or_duplicates() {
    let (conn, store) = setup(MemoryConfig::new(), bucket("heal", 64)).await;
    let writer = store.writer().unwrap();
    for i in 0..3u8 {
        writer.put("k", &[i]).await.unwrap();
    }
    let (mut rx, _task) = watch_all(&store, Some(1), 16);
    assert_eq!(recv_revisions(&mut rx, 2).await, vec![2, 3]);
    conn.faults().partition();
    assert!(!conn.is_healthy());
    assert_eq!(writer.put("k", b"x").await, Err(KvError::Timeout));
    // Another client keeps writing while this one is cut off.
    let other = conn.server().connection();
    other.connect().await.unwrap();
    let other_writer = other.store("heal").await.unwrap().writer().unwrap();
    other_writer.put("k", b"4").await.unwrap();
    other_writer.put("j", b"5").await.unwrap();
    nothing_arrives(&mut rx).await;
    conn.faults().heal();
    assert!(conn.is_healthy());
    assert_eq!(recv_revisions(&mut rx, 2).await, vec![4, 5]);
    nothing_arrives(&mut rx).await;
}

#[tokio::test]
async fn heal_after_eviction_past_the_frontier_reports_cursor_expired() {
    let (conn, store) = setup(MemoryConfig::new(), bucket("evict", 64)).await;
    let writer = store.writer().unwrap();
    writer.put("k", b"1").await.unwrap();
    writer.put("k", b"2").await.unwrap();
    let (mut rx, task) = watch_all(&store, Some(1), 16);
    assert_eq!(recv_revisions(&mut rx, 1).await, vec![2]);
    conn.faults().partition();
    let other = conn.server().connection();
    other.connect().await.unwrap();
    let other_writer = other.store("evict").await.unwrap().writer().unwrap();
    other_writer.put("k", b"3").await.unwrap();
    other_writer.put("k", b"4").await.unwrap();
    // Revision 3 is evicted while the watcher is away.
    conn.faults().evict_below("evict", 4).unwrap();
    conn.faults().heal();
    assert_eq!(ended(task).await, Err(KvError::CursorExpired));
    assert!(rx.try_recv().is_err(), "nothing past the gap was delivered");
}

#[tokio::test(start_paused = true)]
async fn idle_floor_probe_fires_after_the_probe_period() {
    let clock = ManualClock::new(START_MS);
    let (conn, store) = setup(MemoryConfig::new().manual_clock(&clock), bucket("idle", 64)).await;
    let writer = store.writer().unwrap();
    writer.put("k", b"1").await.unwrap();
    writer.put("j", b"2").await.unwrap();
    let (mut rx, task) = watch_all(&store, Some(1), 16);
    assert_eq!(recv_revisions(&mut rx, 1).await, vec![2]);
    // Pause delivery so the next write is not seen, then evict past the frontier.
    conn.faults().pause_delivery("idle").unwrap();
    writer.put("k", b"3").await.unwrap();
    conn.faults().evict_below("idle", 4).unwrap();
    clock.advance(Duration::from_millis(FLOOR_PROBE_IDLE_MS - 1));
    tokio::task::yield_now().await;
    assert!(!task.is_finished(), "no probe before the idle period");
    clock.advance(Duration::from_millis(1));
    assert_eq!(ended(task).await, Err(KvError::CursorExpired));
}

#[tokio::test]
async fn floor_guard_trips_in_band_before_the_post_eviction_message() {
    let config = MemoryConfig::new().watch_queue(1, 1 << 20);
    let (conn, store) = setup(config, bucket("floor", 64)).await;
    let writer = store.writer().unwrap();
    writer.put("k", b"1").await.unwrap();
    let (mut rx, task) = watch_all(&store, Some(1), 1);
    for i in 0..10u8 {
        writer.put("k", &[i]).await.unwrap();
    }
    // The watcher lags; evict a range it has not read yet.
    let first = conn.faults().evict_below("floor", 8).unwrap();
    assert_eq!(first, 8);
    let mut got = Vec::new();
    while let Ok(Some(update)) = tokio::time::timeout(WAIT, rx.recv()).await {
        got.push(update.version().as_u64().unwrap());
    }
    assert_eq!(ended(task).await, Err(KvError::CursorExpired));
    // Whatever was delivered is a contiguous run from the cursor, never past the gap.
    let expected: Vec<u64> = (2..2 + got.len() as u64).collect();
    assert_eq!(got, expected);
    assert!(got.iter().all(|&r| r < 8));
}

/// A resumed prefix watch whose scope is unfiltered (`""`) ends with
/// `CursorExpired` past an eviction and delivers nothing beyond the gap. (On
/// the memory backend the lagging slot's own position check also catches this,
/// so this test does not single out `guard_mode`; its unit test in
/// `src/protocol/resume/tests/` does.)
#[tokio::test]
async fn an_empty_prefix_resume_is_floor_guarded_like_watch_all() {
    for prefixes in [vec![""], vec!["k", ""]] {
        let config = MemoryConfig::new().watch_queue(1, 1 << 20);
        let (conn, store) = setup(config, bucket("floor_prefix", 64)).await;
        let writer = store.writer().unwrap();
        writer.put("k", b"1").await.unwrap();
        let watcher = store.watcher().unwrap();
        let (tx, mut rx) = mpsc::channel(1);
        let scope: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
        let task = tokio::spawn(async move {
            let scope: Vec<&str> = scope.iter().map(String::as_str).collect();
            watcher
                .watch_prefixes_from(&scope, &WatchCursor::from_u64(1), tx)
                .await
        });
        for i in 0..10u8 {
            writer.put("k", &[i]).await.unwrap();
        }
        assert_eq!(conn.faults().evict_below("floor_prefix", 8).unwrap(), 8);
        let mut got = Vec::new();
        while let Ok(Some(update)) = tokio::time::timeout(WAIT, rx.recv()).await {
            got.push(update.version().as_u64().unwrap());
        }
        assert_eq!(
            ended(task).await,
            Err(KvError::CursorExpired),
            "{prefixes:?}"
        );
        let expected: Vec<u64> = (2..2 + got.len() as u64).collect();
        assert_eq!(got, expected, "{prefixes:?}");
    }
}

#[tokio::test]
async fn interior_gap_from_history_limit_passes_the_floor_guard() {
    let (_conn, store) = setup(MemoryConfig::new(), bucket("benign", 1)).await;
    let writer = store.writer().unwrap();
    writer.put("a", b"1").await.unwrap(); // 1
    writer.put("b", b"1").await.unwrap(); // 2
    writer.put("a", b"2").await.unwrap(); // 3 removes 1
    writer.put("b", b"2").await.unwrap(); // 4 removes 2
    writer.put("c", b"1").await.unwrap(); // 5
    writer.put("a", b"3").await.unwrap(); // 6 removes 3
    // Retained: 4, 5, 6. A resume from 3 sees 4, 5, 6; from 2 would need 3 (gone).
    let (mut rx, _task) = watch_all(&store, Some(3), 16);
    assert_eq!(recv_revisions(&mut rx, 3).await, vec![4, 5, 6]);
    let (_rx2, task2) = watch_all(&store, Some(1), 16);
    assert_eq!(ended(task2).await, Err(KvError::CursorExpired));
}

#[tokio::test]
async fn state_sync_watch_without_frontier_keeps_its_slot_after_heal() {
    let (conn, store) = setup(MemoryConfig::new(), bucket("g17", 4)).await;
    let (mut rx, _task) = watch_all(&store, None, 16);
    tokio::task::yield_now().await;
    conn.faults().partition();
    conn.faults().heal();
    let writer = store.writer().unwrap();
    writer.put("k", b"v").await.unwrap();
    assert_eq!(recv_revisions(&mut rx, 1).await, vec![1]);
}

#[tokio::test]
async fn ambiguous_write_is_stored_although_the_caller_sees_an_error() {
    let (conn, store) = setup(MemoryConfig::new(), bucket("amb", 1)).await;
    let writer = store.writer().unwrap();
    conn.faults()
        .fail_next_after_commit(MemoryOp::Put, 1, KvError::Timeout);
    assert_eq!(writer.put("k", b"v").await, Err(KvError::Timeout));
    let entry = store.reader().get("k").await.unwrap().unwrap();
    assert_eq!(entry.version, VersionToken::from_u64(1));
    assert_eq!(writer.put("k", b"w").await, Ok(VersionToken::from_u64(2)));
}

#[tokio::test]
async fn dropped_receiver_ends_an_idle_watch_with_ok() {
    let (_conn, store) = setup(MemoryConfig::new(), bucket("drop", 1)).await;
    let (rx, task) = watch_all(&store, None, 1);
    tokio::task::yield_now().await;
    drop(rx);
    assert_eq!(ended(task).await, Ok(()));
}

#[tokio::test]
async fn servers_share_buckets_between_connections() {
    let server = MemoryServer::new(MemoryConfig::new());
    let a = server.connection();
    let b = server.connection();
    a.connect().await.unwrap();
    b.connect().await.unwrap();
    a.store("shared")
        .await
        .unwrap()
        .writer()
        .unwrap()
        .put("k", b"v")
        .await
        .unwrap();
    let got = b
        .store("shared")
        .await
        .unwrap()
        .reader()
        .get("k")
        .await
        .unwrap();
    assert_eq!(got.unwrap().value, b"v");
    assert_eq!(server.bucket_names(), vec!["shared".to_string()]);
}
