//! The export lease on both backends (docs/protocols/export-lease.md, "Tests"): the
//! embedded backend and a real nats-server, with an injected clock.

#[cfg(feature = "nats")]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kvfold::protocol::time::Millis;
use kvfold::{
    Connection, ExportLease, KvError, KvStore, LeaseClockSource, MemoryConnection, StoreConfig,
    WatchCursor,
};

/// A clock the test moves: wall seconds and monotonic milliseconds.
#[derive(Default)]
struct TestClock {
    wall: AtomicU64,
    mono: AtomicU64,
}

impl TestClock {
    fn at(wall: u64) -> Arc<Self> {
        Arc::new(Self {
            wall: AtomicU64::new(wall),
            mono: AtomicU64::new(0),
        })
    }

    fn advance(&self, secs: u64) {
        self.wall.fetch_add(secs, Ordering::SeqCst);
        self.mono.fetch_add(secs * 1000, Ordering::SeqCst);
    }
}

impl LeaseClockSource for TestClock {
    fn now_unix(&self) -> u64 {
        self.wall.load(Ordering::SeqCst)
    }

    fn now(&self) -> Millis {
        Millis(self.mono.load(Ordering::SeqCst))
    }
}

const TTL: Duration = Duration::from_secs(60);
const KEY: &str = "export-lease";

fn lease(store: &Arc<dyn KvStore>, holder: &str, clock: &Arc<TestClock>) -> ExportLease {
    ExportLease::new(&**store, KEY, holder)
        .unwrap()
        .with_clock(Arc::clone(clock) as Arc<dyn LeaseClockSource>)
        .with_takeover_grace(Duration::from_secs(2))
}

async fn one_winner_among_many(store: Arc<dyn KvStore>) {
    let clock = TestClock::at(1_000);
    let contenders: Vec<_> = (0..8)
        .map(|i| {
            let lease = lease(&store, &format!("node-{i}"), &clock);
            tokio::spawn(async move {
                let guard = lease.try_acquire(TTL).await.unwrap();
                guard.map(|g| {
                    let holder = g.record().holder_id.clone();
                    // Keep the round held: resolve by completing later in the test.
                    std::mem::forget(g);
                    holder
                })
            })
        })
        .collect();
    let mut winners = Vec::new();
    for c in contenders {
        if let Some(holder) = c.await.unwrap() {
            winners.push(holder);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner: {winners:?}");
    let current = lease(&store, "observer", &clock)
        .current()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.holder_id, winners[0]);
    assert_eq!(current.expires_at_unix, 1_060);
}

async fn held_blocks_then_expiry_allows_takeover(store: Arc<dyn KvStore>) {
    let clock_a = TestClock::at(1_000);
    let clock_b = TestClock::at(1_000);
    let a = lease(&store, "a", &clock_a);
    let b = lease(&store, "b", &clock_b);
    let guard = a.try_acquire(TTL).await.unwrap().expect("create wins");
    assert!(
        b.try_acquire(TTL).await.unwrap().is_none(),
        "a held lease blocks"
    );
    // Expired by wall clock, but b has not watched it for d + grace yet.
    clock_b.advance(61);
    assert!(
        b.try_acquire(TTL).await.unwrap().is_none(),
        "expired but still settling"
    );
    clock_b.advance(2);
    let taken = b
        .try_acquire(TTL)
        .await
        .unwrap()
        .expect("taken over after d + grace");
    assert_eq!(taken.record().holder_id, "b");
    // a completes late: tolerated, and b's record is untouched.
    guard.complete(&WatchCursor::from_u64(9)).await.unwrap();
    let current = b.current().await.unwrap().unwrap();
    assert_eq!(current.holder_id, "b");
    assert_eq!(current.completed_cursor_hex, None);
    taken.abandon().await;
}

async fn complete_publishes_the_cursor_and_abandon_frees_at_once(store: Arc<dyn KvStore>) {
    let clock = TestClock::at(5_000);
    let a = lease(&store, "a", &clock);
    let b = lease(&store, "b", &clock);
    let guard = a.try_acquire(TTL).await.unwrap().unwrap();
    clock.advance(3);
    guard.complete(&WatchCursor::from_u64(42)).await.unwrap();
    let record = a.current().await.unwrap().unwrap();
    assert_eq!(
        record.completed_cursor_hex.as_deref(),
        Some("000000000000002a")
    );
    assert_eq!(record.completed_at_unix, Some(5_003));
    assert_eq!(record.expires_at_unix, 5_060, "complete keeps the expiry");
    assert!(
        b.try_acquire(TTL).await.unwrap().is_none(),
        "a completed round is held until it expires"
    );
    // Next round: a wins again after expiry + grace, then abandons; b wins at once.
    clock.advance(120);
    let again = a
        .try_acquire(TTL)
        .await
        .unwrap()
        .expect("a's own completed round expired");
    again.abandon().await;
    assert_eq!(
        a.current().await.unwrap(),
        None,
        "the abandon tombstone reads as no lease"
    );
    let b_guard = b
        .try_acquire(TTL)
        .await
        .unwrap()
        .expect("a tombstone is taken over at once");
    b_guard.abandon().await;
}

async fn corrupt_lease_is_taken_over_and_current_reports_it(store: Arc<dyn KvStore>) {
    let writer = store.writer().unwrap();
    writer
        .put(KEY, b"[\"not\", \"a\", \"record\"]")
        .await
        .unwrap();
    let clock = TestClock::at(1_000);
    let a = lease(&store, "a", &clock);
    assert!(matches!(
        a.current().await,
        Err(KvError::SerializationError(_))
    ));
    assert!(
        a.try_acquire(TTL).await.unwrap().is_none(),
        "junk settles for the grace first"
    );
    clock.advance(2);
    let guard = a
        .try_acquire(TTL)
        .await
        .unwrap()
        .expect("junk is taken over after the grace");
    assert_eq!(a.current().await.unwrap().unwrap().holder_id, "a");
    guard.abandon().await;
}

async fn fencing_rejects_writes_after_the_lease_moved(store: Arc<dyn KvStore>) {
    let Some(fenced) = store.fenced_writer() else {
        panic!("this backend must support fencing (memory with TTL support, nats-server >= 2.11)");
    };
    let clock = TestClock::at(1_000);
    let a = lease(&store, "a", &clock);
    let b = lease(&store, "b", &clock);
    let guard = a.try_acquire(TTL).await.unwrap().unwrap();
    let fence = guard.fence();
    fenced
        .put_fenced("artifact-pointer", b"v1", &fence)
        .await
        .unwrap();
    guard.abandon().await;
    let _taken = b
        .try_acquire(TTL)
        .await
        .unwrap()
        .expect("tombstone taken over");
    assert_eq!(
        fenced.put_fenced("artifact-pointer", b"v2", &fence).await,
        Err(KvError::RevisionMismatch),
        "the lease moved: stop"
    );
    assert_eq!(
        store
            .reader()
            .get("artifact-pointer")
            .await
            .unwrap()
            .unwrap()
            .value,
        b"v1"
    );
}

fn config(name: &str) -> StoreConfig {
    StoreConfig {
        name: name.to_string(),
        ..StoreConfig::default()
    }
}

async fn memory_store(name: &str) -> Arc<dyn KvStore> {
    let conn = MemoryConnection::new();
    conn.connect().await.unwrap();
    conn.store_with_config(config(name)).await.unwrap()
}

#[tokio::test]
async fn memory_one_winner_among_many() {
    one_winner_among_many(memory_store("l1").await).await;
}

#[tokio::test]
async fn memory_held_blocks_then_expiry_allows_takeover() {
    held_blocks_then_expiry_allows_takeover(memory_store("l2").await).await;
}

#[tokio::test]
async fn memory_complete_and_abandon() {
    complete_publishes_the_cursor_and_abandon_frees_at_once(memory_store("l3").await).await;
}

#[tokio::test]
async fn memory_corrupt_lease_is_taken_over() {
    corrupt_lease_is_taken_over_and_current_reports_it(memory_store("l4").await).await;
}

#[tokio::test]
async fn memory_fencing_rejects_writes_after_the_lease_moved() {
    fencing_rejects_writes_after_the_lease_moved(memory_store("l5").await).await;
}

#[test]
fn a_store_without_a_writer_is_refused() {
    struct ReadOnly(Arc<dyn KvStore>);
    impl KvStore for ReadOnly {
        fn name(&self) -> &str {
            self.0.name()
        }
        fn reader(&self) -> Arc<dyn kvfold::KvReader> {
            self.0.reader()
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(memory_store("ro"));
    match ExportLease::new(&ReadOnly(store), KEY, "a") {
        Err(KvError::OperationFailed(m)) => assert!(m.contains("no writer"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[cfg(feature = "nats")]
mod nats {
    use super::*;
    use crate::common::nats::NatsServer;
    use kvfold::{NatsConnection, NatsConnectionConfig};

    async fn nats_store(server: &NatsServer, name: &str) -> Arc<dyn KvStore> {
        let conn = NatsConnection::new(NatsConnectionConfig {
            url: server.url(),
            creds: None,
            creds_file: None,
        });
        conn.connect().await.unwrap();
        conn.store_with_config(config(name)).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nats_lease_contract() {
        let server = NatsServer::start();
        server.require_version(2, 11);
        one_winner_among_many(nats_store(&server, "l1").await).await;
        held_blocks_then_expiry_allows_takeover(nats_store(&server, "l2").await).await;
        complete_publishes_the_cursor_and_abandon_frees_at_once(nats_store(&server, "l3").await)
            .await;
        corrupt_lease_is_taken_over_and_current_reports_it(nats_store(&server, "l4").await).await;
        fencing_rejects_writes_after_the_lease_moved(nats_store(&server, "l5").await).await;
    }
}
