//! `MemoryFaults` as the conformance suite's `Hooks` (docs/memory-backend.md, "Conformance
//! hooks"): every hook is supported and maps onto one fault control. Test wiring only; it
//! takes no bucket decision of its own.

use std::time::Duration;

use async_trait::async_trait;

use super::{Hook, Hooks};
use crate::kv::KvError;
use crate::memory::MemoryFaults;

#[async_trait]
impl Hooks for MemoryFaults {
    fn supports(&self, _hook: Hook) -> bool {
        true
    }

    /// [`MemoryFaults::recreate_bucket`] with the previous configuration and options.
    async fn recreate_bucket(&self, bucket: &str) -> Result<(), KvError> {
        MemoryFaults::recreate_bucket(self, bucket, None, None)
    }

    /// [`MemoryFaults::evict_below`].
    async fn evict_below(&self, bucket: &str, revision: u64) -> Result<(), KvError> {
        MemoryFaults::evict_below(self, bucket, revision).map(|_| ())
    }

    /// [`MemoryFaults::purge_markers`] of every marker, whatever its age.
    async fn purge_markers(&self, bucket: &str) -> Result<(), KvError> {
        MemoryFaults::purge_markers(self, bucket, Duration::ZERO).map(|_| ())
    }

    /// [`ManualClock::advance`](crate::memory::ManualClock::advance) when the server runs on
    /// a manual clock (time effects apply before it returns); otherwise a real
    /// sleep followed by [`MemoryFaults::run_due`].
    async fn advance(&self, by: Duration) {
        let clock = self.server().clock();
        match clock.as_manual() {
            Some(manual) => manual.advance(by),
            None => {
                tokio::time::sleep(by).await;
                self.run_due();
            }
        }
    }

    /// [`MemoryFaults::interrupt_watches`] with `WatchError("interrupted")`.
    async fn interrupt_watches(&self, bucket: &str) -> Result<(), KvError> {
        let error = KvError::WatchError("interrupted".to_string());
        MemoryFaults::interrupt_watches(self, bucket, error).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::conformance::{Hook, Hooks};
    use crate::kv::{KvError, StoreConfig, StoreOptions, WatchCursor};
    use crate::memory::{ManualClock, MemoryConfig, MemoryConnection};
    use crate::stores::Connection;

    async fn connected(config: MemoryConfig) -> MemoryConnection {
        let conn = MemoryConnection::with_config(config);
        conn.connect().await.expect("memory connect");
        conn
    }

    fn named(name: &str, history: u32) -> StoreConfig {
        StoreConfig {
            name: name.to_string(),
            max_history: Some(history),
            ..StoreConfig::default()
        }
    }

    #[tokio::test]
    async fn every_hook_is_supported() {
        let faults = MemoryConnection::new().faults();
        for hook in [
            Hook::RecreateBucket,
            Hook::EvictBelow,
            Hook::PurgeMarkers,
            Hook::Advance,
            Hook::InterruptWatches,
        ] {
            assert!(Hooks::supports(&faults, hook), "{hook:?}");
        }
    }

    #[tokio::test]
    async fn advance_moves_a_manual_clock_and_applies_expiry_before_returning() {
        let clock = ManualClock::new(10_000);
        let conn = connected(MemoryConfig::new().manual_clock(&clock)).await;
        let store = conn
            .store_with_options(named("t", 1), StoreOptions::new().with_ttl())
            .await
            .unwrap();
        let ttl = store.ttl_writer().unwrap();
        ttl.put_with_ttl("k", b"v", Duration::from_secs(1))
            .await
            .unwrap();
        let faults = conn.faults();
        Hooks::advance(&faults, Duration::from_millis(999)).await;
        assert_eq!(clock.now_unix_ms(), 10_999);
        let status = |s: &std::sync::Arc<dyn crate::stores::KvStore>| {
            let w = s.watcher().unwrap();
            async move { w.status().await.unwrap().unwrap() }
        };
        assert_eq!(status(&store).await.values, 1);
        Hooks::advance(&faults, Duration::from_millis(1)).await;
        assert_eq!(status(&store).await.values, 0);
    }

    #[tokio::test]
    async fn advance_on_a_system_clock_sleeps() {
        let conn = connected(MemoryConfig::new()).await;
        let started = std::time::Instant::now();
        Hooks::advance(&conn.faults(), Duration::from_millis(30)).await;
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[tokio::test]
    async fn bucket_hooks_map_to_the_fault_controls() {
        let conn = connected(MemoryConfig::new()).await;
        let faults = conn.faults();
        let store = conn.store_with_config(named("b", 3)).await.unwrap();
        let (w, watcher) = (store.writer().unwrap(), store.watcher().unwrap());
        w.put("a", b"1").await.unwrap();
        w.delete("a").await.unwrap();
        w.put("c", b"2").await.unwrap();
        Hooks::purge_markers(&faults, "b").await.unwrap();
        assert_eq!(watcher.status().await.unwrap().unwrap().values, 1);
        w.put("d", b"3").await.unwrap();
        Hooks::evict_below(&faults, "b", 4).await.unwrap();
        assert_eq!(watcher.status().await.unwrap().unwrap().first_revision, 4);

        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let live = std::sync::Arc::clone(&watcher);
        let call =
            tokio::spawn(async move { live.watch_all_from(&WatchCursor::from_u64(3), tx).await });
        assert!(rx.recv().await.is_some());
        Hooks::interrupt_watches(&faults, "b").await.unwrap();
        assert_eq!(
            call.await.unwrap(),
            Err(KvError::WatchError("interrupted".to_string()))
        );

        Hooks::recreate_bucket(&faults, "b").await.unwrap();
        let status = watcher.status().await.unwrap().unwrap();
        assert_eq!(
            (status.last_revision, status.config.max_history),
            (0, Some(3))
        );
        assert!(Hooks::recreate_bucket(&faults, "missing").await.is_err());
    }
}
