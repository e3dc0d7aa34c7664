//! Reusable backend checks (feature `conformance`, docs/semantics.md, "The conformance
//! suite"): plain `pub async fn`s that take any [`Connection`] plus a [`Profile`] of what
//! it supports and panic, naming the check, when the backend breaks a rule of
//! docs/semantics.md.
//!
//! **Not covered by semver.** The set of checks, their names and the `Profile` and
//! `Hooks` shapes change whenever the semantics are pinned more tightly (a new
//! check is how a newly found backend bug is kept found); a minor release may add,
//! rename or tighten checks. Depend on the feature for integration testing only,
//! as with `object_store`'s integration checks.
//!
//! # Running the suite
//!
//! ```no_run
//! # async fn demo() {
//! use kvfold::conformance::{self, Outcome, Profile};
//! use kvfold::{Connection, MemoryConnection};
//!
//! let conn = MemoryConnection::new();
//! conn.connect().await.unwrap();
//! let faults = conn.faults();
//! let profile = Profile::new(conn.capabilities());
//! let results = conformance::run_all(&conn, &profile, Some(&faults)).await;
//! assert!(results.iter().all(|(_, outcome)| *outcome == Outcome::Passed));
//! # }
//! ```
//!
//! The suite holds the checks of docs/semantics.md, "The conformance suite", plus further
//! ones, so that every rule of docs/semantics.md is asserted by at least one named check;
//! [`CHECKS`] lists them all in run order.
//!
//! Rules every check follows:
//!
//! - The connection must be connected, and the checks must run inside a tokio
//!   runtime with the time driver enabled (watch calls are spawned as tasks and
//!   every wait is a tokio timeout).
//! - Each check creates its own buckets, named `<prefix>-<check>-<n>` with `n`
//!   random per bucket, so checks can share a server and run concurrently.
//!   Buckets are left behind (the `Connection` trait cannot delete them).
//! - A check whose capability flag, profile expectation or hook is missing
//!   returns [`Outcome::Skipped`]; a check never passes vacuously.
//! - Waits are bounded by [`Profile::delivery_timeout`]; "nothing more arrives" is asserted
//!   by waiting that long. Reads that must observe a write poll until they do (bounded the
//!   same way), because replicated NATS buckets are not read-after-write (docs/semantics.md,
//!   "Reads and visibility").
//! - [`lifecycle`] shuts the connection down and reconnects it, so
//!   [`run_all`] runs it last.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;

use crate::kv::KvError;
use crate::stores::{Connection, ConnectionCapabilities};

mod basics;
mod limits;
mod listing;
mod memory_hooks;
mod reads;
mod resume;
mod size_limits;
pub mod snapshot;
mod support;
mod ttl;
mod watch;
mod writes;

pub use basics::{
    capabilities_consistent, config_validation, lifecycle, put_get_entry,
    rejected_writes_consume_no_revision, revisions_every_write, store_idempotent, watcher_metadata,
};
pub use limits::{first_last_edges, history_holes, history_limit, retention_report, status_report};
pub use listing::{key_validation, listing_many_keys, listing_order, prefix_semantics};
pub use reads::{
    binary_values, empty_bucket, empty_value_visibility, reads_latest_only, version_write_times,
};
pub use resume::{
    marker_purge_visibility, recreate_restarts_revisions, watch_ends_on_recreate,
    watch_floor_guard, watch_from_ahead, watch_from_below_floor, watch_from_recreated,
    watch_from_supersession_only, watch_interrupt_resume, watch_prefix_resume_checks,
};
pub use size_limits::{
    discard_new_counts_removed, discard_new_full, discard_old_evicts, key_and_value_limits,
    max_payload,
};
pub use ttl::{
    create_with_ttl_rules, limit_marker_expiry, max_age_expiry, put_with_ttl_rollup, ttl_bounds,
    ttl_expiry,
};
pub use watch::{
    watch_backpressure, watch_from_delta, watch_prefix_filters, watch_prefix_long_gap,
    watch_prefixes_union, watch_receiver_drop, watch_resume_chain, watch_state_sync,
};
pub use writes::{
    cas_token_validation, create_over_marker_race, create_rules, delete_semantics, fenced_writes,
    purge_semantics, tombstone_counts_history, tombstone_semantics, update_cas, update_over_marker,
    update_race,
};

/// What a backend supports and what the suite may expect of it.
///
/// Build it from the connection's capabilities and narrow or widen the
/// expectations; kvfold runs the suite against both of its backends with the
/// same profile.
#[derive(Debug, Clone)]
pub struct Profile {
    caps: ConnectionCapabilities,
    bucket_prefix: String,
    expect_retention: bool,
    expect_status: bool,
    expect_resume_checks: bool,
    delivery_timeout: Duration,
    quiet_window: Option<Duration>,
    many_keys: usize,
    burst_bytes: usize,
    replicas: Option<usize>,
}

impl Profile {
    /// A profile for a backend with these capabilities (usually
    /// `conn.capabilities()`), with every expectation on: bucket prefix
    /// `"kvfold-conf"`, retention, status and resume checks expected, a 5 s
    /// delivery timeout, 1500 keys for listings and a 24 MiB watch burst.
    pub fn new(caps: ConnectionCapabilities) -> Self {
        Self {
            caps,
            bucket_prefix: "kvfold-conf".to_string(),
            expect_retention: true,
            expect_status: true,
            expect_resume_checks: true,
            delivery_timeout: Duration::from_secs(5),
            quiet_window: None,
            many_keys: 1500,
            burst_bytes: 24 * 1024 * 1024,
            replicas: None,
        }
    }

    /// Prefix of every bucket the checks create (default `"kvfold-conf"`); it must
    /// itself be a valid bucket name.
    #[must_use]
    pub fn bucket_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.bucket_prefix = prefix.into();
        self
    }

    /// Whether `retention()` must answer `Some` (default true).
    #[must_use]
    pub fn expect_retention(mut self, yes: bool) -> Self {
        self.expect_retention = yes;
        self
    }

    /// Whether `status()` must answer `Some` (default true).
    #[must_use]
    pub fn expect_status(mut self, yes: bool) -> Self {
        self.expect_status = yes;
        self
    }

    /// Whether `_from` watches report `CursorExpired` (default true).
    #[must_use]
    pub fn expect_resume_checks(mut self, yes: bool) -> Self {
        self.expect_resume_checks = yes;
        self
    }

    /// The bound on every wait, and how long "nothing more arrives" is watched
    /// for unless [`quiet_window`](Self::quiet_window) says otherwise (default 5 s).
    #[must_use]
    pub fn delivery_timeout(mut self, d: Duration) -> Self {
        self.delivery_timeout = d;
        self
    }

    /// How long a check watches for "nothing more arrives" after what it expected
    /// (default: the delivery timeout).
    ///
    /// The delivery timeout bounds waits for what must arrive, so it is sized for a
    /// slow, loaded server; a quiet window only has to outlast the latency of a
    /// spurious delivery, so a backend with real clocks can keep it shorter. A
    /// window shorter than that latency could miss an extra delivery; it never makes
    /// a correct backend fail.
    #[must_use]
    pub fn quiet_window(mut self, d: Duration) -> Self {
        self.quiet_window = Some(d);
        self
    }

    /// The quiet window in effect: the one set, else the delivery timeout.
    pub(crate) fn quiet(&self) -> Duration {
        self.quiet_window.unwrap_or(self.delivery_timeout)
    }

    /// How many keys the listing and back-pressure checks write (default 1500,
    /// more than NATS's default `max_ack_pending` of 1000).
    #[must_use]
    pub fn many_keys(mut self, n: usize) -> Self {
        self.many_keys = n;
        self
    }

    /// How many value bytes the floor-guard check writes past a stalled watch
    /// (default 24 MiB: enough to outrun every buffer between the server and the
    /// watch).
    #[must_use]
    pub fn burst_bytes(mut self, n: usize) -> Self {
        self.burst_bytes = n;
        self
    }

    /// Replicas for every bucket the checks create whose configuration leaves
    /// `num_replicas` unset (default: unset), so the whole suite can run on replicated
    /// buckets (e.g. `Some(3)` on a 3-node cluster).
    #[must_use]
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = Some(n);
        self
    }
}

/// A test-harness operation a check may need from [`Hooks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Hook {
    /// [`Hooks::recreate_bucket`].
    RecreateBucket,
    /// [`Hooks::evict_below`].
    EvictBelow,
    /// [`Hooks::purge_markers`].
    PurgeMarkers,
    /// [`Hooks::advance`].
    Advance,
    /// [`Hooks::interrupt_watches`].
    InterruptWatches,
}

/// Harness operations that no KV trait offers; a backend's test harness
/// implements the ones it can (the memory backend's `MemoryFaults` implements
/// all of them).
#[async_trait]
pub trait Hooks: Send + Sync {
    /// Whether `hook` is available; checks that need a missing hook are skipped.
    fn supports(&self, hook: Hook) -> bool;

    /// Deletes the bucket and creates it again with the same configuration.
    async fn recreate_bucket(&self, bucket: &str) -> Result<(), KvError>;

    /// Drops every message with a revision below `revision`.
    async fn evict_below(&self, bucket: &str, revision: u64) -> Result<(), KvError>;

    /// Drops every delete, purge and expiry marker (with the history of its key).
    async fn purge_markers(&self, bucket: &str) -> Result<(), KvError>;

    /// Lets `by` of server time pass (a manual clock, or a real sleep).
    async fn advance(&self, by: Duration);

    /// Breaks every live watch of the bucket; a watch may end with an error or
    /// recover by itself.
    async fn interrupt_watches(&self, bucket: &str) -> Result<(), KvError>;
}

/// The result of a check that did not fail (a failing check panics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every rule the check covers held.
    Passed,
    /// The check could not run: this capability, expectation or hook is missing.
    Skipped(&'static str),
}

/// Declares the run order once: `CHECKS` and the dispatcher come from one list.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        /// Every check name, in the order [`run_all`] runs them; `lifecycle` is last
        /// because it shuts the connection down and reconnects it.
        pub const CHECKS: &[&str] = &[$(stringify!($name)),*];

        /// Runs the check named `name`; `None` for an unknown name.
        async fn run_named(
            name: &str,
            conn: &dyn Connection,
            profile: &Profile,
            hooks: Option<&dyn Hooks>,
        ) -> Option<Outcome> {
            match name {
                $(stringify!($name) => Some($name(conn, profile, hooks).await),)*
                _ => None,
            }
        }
    };
}

suite![
    store_idempotent,
    config_validation,
    capabilities_consistent,
    watcher_metadata,
    put_get_entry,
    revisions_every_write,
    rejected_writes_consume_no_revision,
    version_write_times,
    binary_values,
    empty_bucket,
    empty_value_visibility,
    reads_latest_only,
    create_rules,
    create_over_marker_race,
    update_cas,
    update_over_marker,
    update_race,
    cas_token_validation,
    delete_semantics,
    tombstone_semantics,
    tombstone_counts_history,
    purge_semantics,
    fenced_writes,
    history_limit,
    history_holes,
    key_validation,
    prefix_semantics,
    listing_order,
    listing_many_keys,
    watch_state_sync,
    watch_prefix_filters,
    watch_prefixes_union,
    watch_from_delta,
    watch_resume_chain,
    watch_receiver_drop,
    watch_backpressure,
    watch_prefix_long_gap,
    watch_from_below_floor,
    watch_prefix_resume_checks,
    watch_from_supersession_only,
    watch_from_ahead,
    watch_from_recreated,
    watch_ends_on_recreate,
    recreate_restarts_revisions,
    watch_floor_guard,
    watch_interrupt_resume,
    marker_purge_visibility,
    retention_report,
    status_report,
    first_last_edges,
    discard_new_full,
    discard_new_counts_removed,
    discard_old_evicts,
    max_payload,
    key_and_value_limits,
    max_age_expiry,
    ttl_bounds,
    ttl_expiry,
    limit_marker_expiry,
    put_with_ttl_rollup,
    create_with_ttl_rules,
    lifecycle,
];

/// Runs every check of [`CHECKS`] in order, one at a time, and returns each
/// outcome.
///
/// A failing check does not stop the run: the remaining checks still run, and
/// `run_all` then panics with one message listing every failed check and its
/// reason (each failure's own panic message is also printed as it happens).
pub async fn run_all(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Vec<(&'static str, Outcome)> {
    run_checks(conn, profile, hooks, CHECKS).await
}

/// Runs the checks named in `names` (each one of [`CHECKS`]), in that order, one at
/// a time, and returns each outcome; failures are reported as by [`run_all`].
///
/// A harness can split [`CHECKS`] into groups and run the groups side by side, on
/// separate connections and buckets, when one check spends most of its time
/// waiting (a real clock passing the recreate slack, say). `lifecycle` shuts its
/// connection down, so it belongs last in its group.
///
/// # Panics
///
/// If a name is not one of [`CHECKS`], or if any check failed.
pub async fn run_checks(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
    names: &[&str],
) -> Vec<(&'static str, Outcome)> {
    let mut outcomes = Vec::with_capacity(names.len());
    let mut failures: Vec<String> = Vec::new();
    for &wanted in names {
        let Some(&name) = CHECKS.iter().find(|&&c| c == wanted) else {
            panic!("conformance: no check is named {wanted:?}");
        };
        let run = CatchUnwind(Box::pin(run_named(name, conn, profile, hooks)));
        match run.await {
            Ok(Some(outcome)) => {
                tracing::debug!(check = name, ?outcome, "conformance check done");
                outcomes.push((name, outcome));
            }
            Ok(None) => unreachable!("CHECKS and the dispatcher come from one list"),
            Err(panic) => failures.push(format!("{name}: {}", panic_message(&*panic))),
        }
    }
    if !failures.is_empty() {
        panic!(
            "conformance: {} of {} checks failed:\n  {}",
            failures.len(),
            names.len(),
            failures.join("\n  ")
        );
    }
    outcomes
}

/// The text of a panic payload.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "(non-text panic payload)".to_string()
    }
}

/// Polls a future, turning a panic during any poll into `Err(payload)`.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.get_mut().0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// The suite's futures are `Send`, so callers can run them on any runtime.
#[allow(dead_code)]
fn assert_send(conn: &dyn Connection, profile: &Profile, hooks: Option<&dyn Hooks>) {
    fn is_send<T: Send>(_: &T) {}
    is_send(&run_all(conn, profile, hooks));
}
