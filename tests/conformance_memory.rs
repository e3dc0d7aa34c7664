//! The conformance suite (`kvfold::conformance`, docs/semantics.md, "The conformance
//! suite") against `MemoryConnection`: once on a `ManualClock` and once on the system
//! clock, with the same `Profile`, every check passing and none skipped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kvfold::conformance::{self, CHECKS, Hook, Hooks, Outcome, Profile};
use kvfold::memory::{Clock, ManualClock, SystemClock};
use kvfold::{
    Connection, ConnectionCapabilities, KvError, MemoryConfig, MemoryConnection, MemoryFaults,
};

/// Small watch queues, so that the floor-guard check's burst overruns them with
/// a 1 MiB burst instead of the 24 MiB a NATS server needs (a memory-only knob,
/// set on the connection, not in the check).
fn memory_config() -> MemoryConfig {
    MemoryConfig::new().watch_queue(64, 256 * 1024)
}

/// The one profile both clock runs use. The delivery timeout is short because
/// memory delivers at once; it bounds every "nothing more arrives" wait.
fn profile(conn: &MemoryConnection) -> Profile {
    Profile::new(conn.capabilities())
        .bucket_prefix("mem")
        .delivery_timeout(Duration::from_millis(300))
        .burst_bytes(1024 * 1024)
}

/// Runs the whole suite and asserts that every check passed (`run_all` itself
/// panics with the list of every failed check and its reason).
async fn run_suite(label: &str, conn: &MemoryConnection, hooks: &dyn Hooks) {
    conn.connect().await.expect("memory connect");
    let started = Instant::now();
    let results = conformance::run_all(conn, &profile(conn), Some(hooks)).await;
    let skipped: Vec<_> = results
        .iter()
        .filter(|(_, outcome)| *outcome != Outcome::Passed)
        .collect();
    assert!(
        skipped.is_empty(),
        "{label}: checks skipped on memory: {skipped:?}"
    );
    assert_eq!(results.len(), CHECKS.len(), "{label}: every check ran");
    println!(
        "memory conformance ({label}): {} checks passed in {:?}",
        results.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_on_manual_clock() {
    let clock = ManualClock::new(1_700_000_000_000);
    let conn = MemoryConnection::with_config(memory_config().manual_clock(&clock));
    let faults = conn.faults();
    run_suite("manual clock", &conn, &faults).await;
}

/// The system wall clock plus a forward step that only `SteppedHooks::advance`
/// moves. It reads `SystemTime` and sleeps on real tokio timers like
/// `SystemClock` (so the server's time-effect driver task runs in real time),
/// but `advance(RECREATE_SLACK_MS + 1 s)` in `watch_from_recreated` steps it
/// instead of sleeping for a minute, the way an NTP step moves a wall clock.
/// `MemoryFaults::advance` on a plain `SystemClock` (a real sleep, then
/// `run_due`) is exercised by `time_checks_pass_on_system_clock` below.
#[derive(Debug, Clone, Default)]
struct SteppedClock {
    step_ms: Arc<AtomicU64>,
}

impl Clock for SteppedClock {
    fn now_unix_ms(&self) -> u64 {
        SystemClock.now_unix_ms() + self.step_ms.load(Ordering::SeqCst)
    }

    fn sleep_until(&self, unix_ms: u64) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let clock = self.clone();
        Box::pin(async move {
            loop {
                let now = clock.now_unix_ms();
                if now >= unix_ms {
                    return;
                }
                // Re-check at least every 50 ms: a step may have passed the deadline.
                tokio::time::sleep(Duration::from_millis((unix_ms - now).min(50))).await;
            }
        })
    }
}

/// `MemoryFaults` for every hook but `advance`, which steps the clock forward
/// and then applies what became due.
struct SteppedHooks {
    faults: MemoryFaults,
    clock: SteppedClock,
}

#[async_trait]
impl Hooks for SteppedHooks {
    fn supports(&self, hook: Hook) -> bool {
        Hooks::supports(&self.faults, hook)
    }

    async fn recreate_bucket(&self, bucket: &str) -> Result<(), KvError> {
        Hooks::recreate_bucket(&self.faults, bucket).await
    }

    async fn evict_below(&self, bucket: &str, revision: u64) -> Result<(), KvError> {
        Hooks::evict_below(&self.faults, bucket, revision).await
    }

    async fn purge_markers(&self, bucket: &str) -> Result<(), KvError> {
        Hooks::purge_markers(&self.faults, bucket).await
    }

    async fn advance(&self, by: Duration) {
        let by_ms = u64::try_from(by.as_millis()).expect("a short step");
        self.clock.step_ms.fetch_add(by_ms, Ordering::SeqCst);
        self.faults.run_due();
    }

    async fn interrupt_watches(&self, bucket: &str) -> Result<(), KvError> {
        Hooks::interrupt_watches(&self.faults, bucket).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_on_system_clock() {
    let clock = SteppedClock::default();
    let conn = MemoryConnection::with_config(memory_config().clock(clock.clone()));
    let hooks = SteppedHooks {
        faults: conn.faults(),
        clock,
    };
    run_suite("system clock", &conn, &hooks).await;
}

/// The checks that let time pass, on a plain `SystemClock` with `MemoryFaults`
/// as the hooks: `advance` really sleeps (about 2.2 s: the checks run concurrently), and expiry is
/// applied by the server's driver task and `run_due`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_checks_pass_on_system_clock() {
    let conn = MemoryConnection::with_config(memory_config());
    conn.connect().await.expect("memory connect");
    let faults = conn.faults();
    let profile = profile(&conn);
    let hooks: &dyn Hooks = &faults;
    // Checks may share a server and run concurrently; this keeps the real waits short.
    let (age, ttl, markers) = tokio::join!(
        conformance::max_age_expiry(&conn, &profile, Some(hooks)),
        conformance::ttl_expiry(&conn, &profile, Some(hooks)),
        conformance::limit_marker_expiry(&conn, &profile, Some(hooks)),
    );
    assert_eq!(
        (age, ttl, markers),
        (Outcome::Passed, Outcome::Passed, Outcome::Passed)
    );
}

/// Without hooks, every check that needs one is skipped, never passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_hooks_skip() {
    let conn = MemoryConnection::with_config(memory_config());
    conn.connect().await.expect("memory connect");
    let profile = profile(&conn);
    for check in [
        conformance::watch_from_recreated(&conn, &profile, None).await,
        conformance::watch_floor_guard(&conn, &profile, None).await,
        conformance::watch_interrupt_resume(&conn, &profile, None).await,
        conformance::marker_purge_visibility(&conn, &profile, None).await,
        conformance::ttl_expiry(&conn, &profile, None).await,
    ] {
        assert!(matches!(check, Outcome::Skipped(_)), "{check:?}");
    }
}

/// With no capability flags, no expectations and no hooks, every check still
/// runs to `Passed` or `Skipped`: the checks touch only what the profile says
/// the backend has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrow_profile_passes_or_skips() {
    let conn = MemoryConnection::with_config(memory_config());
    conn.connect().await.expect("memory connect");
    let narrow = Profile::new(ConnectionCapabilities::default())
        .bucket_prefix("narrow")
        .expect_retention(false)
        .expect_status(false)
        .expect_resume_checks(false)
        .delivery_timeout(Duration::from_millis(300))
        .many_keys(100);
    let results = conformance::run_all(&conn, &narrow, None).await;
    let skipped = results
        .iter()
        .filter(|(_, outcome)| matches!(outcome, Outcome::Skipped(_)))
        .count();
    assert_eq!(results.len(), CHECKS.len());
    assert!(skipped > 20, "only {skipped} checks skipped: {results:?}");
    println!(
        "memory conformance (narrow profile): {} passed, {skipped} skipped",
        results.len() - skipped
    );
}
