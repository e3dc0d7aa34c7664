//! Waiting for a condition in async tests.
#![allow(dead_code)]

use std::time::Duration;

/// Polls `check` every millisecond of tokio time (virtual under a paused
/// clock) until it holds; panics naming `what` once `within` has passed.
pub async fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what} (within {within:?})"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// [`wait_until`] within 5 s: for runs on the memory backend and scripted
/// watchers.
pub async fn wait_for(what: &str, check: impl FnMut() -> bool) {
    wait_until(what, Duration::from_secs(5), check).await;
}
