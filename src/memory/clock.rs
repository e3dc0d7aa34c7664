//! Clocks for the embedded server: `SystemClock` (wall clock, tokio timers) and
//! `ManualClock` (moves only when told; runs due time effects synchronously on
//! every server configured with it). No bucket logic lives here.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// The embedded server's source of wall-clock time and timers.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Wall-clock time, Unix milliseconds.
    fn now_unix_ms(&self) -> u64;

    /// Completes once `now_unix_ms() >= unix_ms`.
    fn sleep_until(&self, unix_ms: u64) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

    /// The manual clock behind this clock, if it is one (servers register with it so
    /// advancing it applies their time effects synchronously).
    #[doc(hidden)]
    fn as_manual(&self) -> Option<&ManualClock> {
        None
    }
}

/// The system wall clock; sleeps with tokio timers and re-checks after waking
/// because the wall clock can step.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    fn read() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

impl Clock for SystemClock {
    fn now_unix_ms(&self) -> u64 {
        Self::read()
    }

    fn sleep_until(&self, unix_ms: u64) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(async move {
            loop {
                let now = Self::read();
                if now >= unix_ms {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(unix_ms - now)).await;
            }
        })
    }
}

/// Something whose due time effects must run when a manual clock moves.
pub(crate) trait TimeListener: Send + Sync {
    /// Apply every effect due at `now_ms`.
    fn on_time(&self, now_ms: u64);
}

struct ManualInner {
    now: watch::Sender<u64>,
    listeners: Mutex<Vec<Weak<dyn TimeListener>>>,
}

/// A clock that moves only when told. Clones share one clock.
///
/// [`advance`](ManualClock::advance) and [`set_unix_ms`](ManualClock::set_unix_ms)
/// apply the due time effects of every server configured with this clock before
/// they return, then wake sleepers whose deadline has passed.
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManualClock({} ms)", self.now_unix_ms())
    }
}

impl ManualClock {
    /// A clock reading `start_unix_ms`.
    pub fn new(start_unix_ms: u64) -> Self {
        let (now, _) = watch::channel(start_unix_ms);
        Self {
            inner: Arc::new(ManualInner {
                now,
                listeners: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The current reading, Unix ms.
    pub fn now_unix_ms(&self) -> u64 {
        *self.inner.now.borrow()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by_ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.set_unix_ms(self.now_unix_ms().saturating_add(by_ms));
    }

    /// Sets the clock (it may move backwards, like a stepped wall clock).
    pub fn set_unix_ms(&self, unix_ms: u64) {
        // Publish the new time without waking sleepers yet.
        self.inner.now.send_if_modified(|now| {
            *now = unix_ms;
            false
        });
        let listeners: Vec<Arc<dyn TimeListener>> = {
            let mut list = self
                .inner
                .listeners
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            list.retain(|w| w.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        for listener in listeners {
            listener.on_time(unix_ms);
        }
        // Wake sleepers after the effects are visible.
        self.inner.now.send_modify(|_| {});
    }

    pub(crate) fn register(&self, listener: Weak<dyn TimeListener>) {
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(listener);
    }
}

impl Clock for ManualClock {
    fn now_unix_ms(&self) -> u64 {
        ManualClock::now_unix_ms(self)
    }

    fn sleep_until(&self, unix_ms: u64) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let mut rx = self.inner.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as any clone of the clock; if every clone is
            // gone, time can never move again and the sleeper never wakes.
            if rx.wait_for(|&now| now >= unix_ms).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }

    fn as_manual(&self) -> Option<&ManualClock> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_sleep_completes_when_advanced() {
        let clock = ManualClock::new(1_000);
        let sleeper = clock.sleep_until(1_500);
        let handle = tokio::spawn(sleeper);
        tokio::task::yield_now().await;
        assert!(!handle.is_finished());
        clock.advance(Duration::from_millis(499));
        tokio::task::yield_now().await;
        assert!(!handle.is_finished());
        clock.advance(Duration::from_millis(1));
        handle.await.unwrap();
        assert_eq!(clock.now_unix_ms(), 1_500);
    }

    #[tokio::test]
    async fn past_deadline_completes_at_once() {
        let clock = ManualClock::new(10);
        clock.sleep_until(5).await;
        SystemClock.sleep_until(0).await;
    }
}
