//! Buckets and connections: `StoreConfig` and its validation, `StoreOptions`,
//! `ConnectionCapabilities`, and the `KvStore` / `Connection` traits. Pure
//! definitions and the shared, I/O-free config validation.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::kv::{KvError, KvFencedWriter, KvPurge, KvReader, KvTtl, KvWatcher, KvWriter};
use crate::protocol::subject::bucket_name_is_valid;

/// The byte limit a bucket gets when `StoreConfig::max_bytes` is `None` (10 MiB).
pub(crate) const DEFAULT_MAX_BYTES: i64 = 10 * 1024 * 1024;
/// The largest `max_history` a bucket accepts.
pub(crate) const MAX_HISTORY_MAX: u32 = 64;
/// The largest `num_replicas` a bucket accepts.
pub(crate) const NUM_REPLICAS_MAX: usize = 5;
/// The smallest non-zero `max_age` a bucket accepts.
pub(crate) const MAX_AGE_MIN: Duration = Duration::from_millis(100);
/// The smallest `limit_marker_ttl` a bucket accepts.
pub(crate) const LIMIT_MARKER_TTL_MIN: Duration = Duration::from_secs(1);

pub use crate::kv::{DiscardPolicy, StorageType, StoreConfig, StoreOptions};

/// The resume guard's command loop, shared by every backend's watch.
pub(crate) mod guard_drive;

/// Advisory capability flags of a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ConnectionCapabilities {
    /// Watches push changes as they happen.
    pub streaming_watch: bool,
    /// Prefix filtering happens server-side.
    pub prefix_watch: bool,
    /// `KvTtl` works on TTL-enabled buckets.
    pub ttl: bool,
    /// `purge_writer()` is `Some`.
    pub purge: bool,
    /// `create` / `update` / `delete_with_version` are atomic.
    pub cas: bool,
    /// Multi-key atomic writes.
    pub transactions: bool,
    /// Value size cap imposed by this layer; 0 = none (the server's payload limit still applies).
    pub max_value_size: usize,
    /// One total order across buckets.
    pub global_ordering: bool,
}

impl ConnectionCapabilities {
    /// What a JetStream KV connection offers (the NATS backend, and the memory
    /// backend that keeps its semantics): streaming and server-side prefix
    /// watches, purge and atomic CAS, no transactions, no value cap of its own,
    /// no order across buckets. `ttl` = per-key TTLs work (server API level ≥ 1).
    pub fn jetstream_kv(ttl: bool) -> Self {
        Self {
            streaming_watch: true,
            prefix_watch: true,
            ttl,
            purge: true,
            cas: true,
            transactions: false,
            max_value_size: 0,
            global_ordering: false,
        }
    }
}

/// A named KV store (bucket). Every accessor returns a cheap handle bound to the
/// bucket's **name**; handles outlive the `KvStore`.
pub trait KvStore: Send + Sync {
    /// The bucket name.
    fn name(&self) -> &str;
    /// A reader of the bucket.
    fn reader(&self) -> Arc<dyn KvReader>;
    /// A watcher of the bucket, when the backend supports watches.
    fn watcher(&self) -> Option<Arc<dyn KvWatcher>> {
        None
    }
    /// A writer of the bucket, when the backend supports writes.
    fn writer(&self) -> Option<Arc<dyn KvWriter>> {
        None
    }
    /// A purging writer, when the backend supports purge.
    fn purge_writer(&self) -> Option<Arc<dyn KvPurge>> {
        None
    }
    /// A TTL writer, when the bucket was created with per-message TTL and the server supports it.
    fn ttl_writer(&self) -> Option<Arc<dyn KvTtl>> {
        None
    }
    /// A fenced writer, when the server supports fencing.
    fn fenced_writer(&self) -> Option<Arc<dyn KvFencedWriter>> {
        None
    }
}

/// Store connection lifecycle and store factory.
#[async_trait]
pub trait Connection: Send + Sync {
    /// Connects; idempotent.
    async fn connect(&self) -> Result<(), KvError>;
    /// Disconnects; always succeeds. `connect` afterwards works again.
    async fn shutdown(&self) -> Result<(), KvError>;
    /// The live connection state.
    fn is_healthy(&self) -> bool;
    /// `store_with_config` with `StoreConfig { name, ..Default }` (provided).
    async fn store(&self, name: &str) -> Result<Arc<dyn KvStore>, KvError> {
        self.store_with_config(StoreConfig {
            name: name.to_string(),
            ..StoreConfig::default()
        })
        .await
    }
    /// Gets the bucket, or creates it with this configuration.
    async fn store_with_config(&self, config: StoreConfig) -> Result<Arc<dyn KvStore>, KvError>;
    /// Advisory capability flags.
    fn capabilities(&self) -> ConnectionCapabilities;
    /// Gets the bucket, or creates it with this configuration and these options.
    /// The default accepts only default options.
    async fn store_with_options(
        &self,
        config: StoreConfig,
        options: StoreOptions,
    ) -> Result<Arc<dyn KvStore>, KvError> {
        if options == StoreOptions::default() {
            self.store_with_config(config).await
        } else {
            Err(KvError::OperationFailed(
                "store options are not supported by this backend".to_string(),
            ))
        }
    }
}

/// A bucket configuration with every default applied: what a backend creates.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(
    not(feature = "testkit"),
    allow(unreachable_pub, reason = "reachable through the testkit memory log")
)]
pub struct EffectiveConfig {
    /// Bucket name.
    pub name: String,
    /// Storage type.
    pub storage: StorageType,
    /// Revisions kept per key.
    pub max_history: u32,
    /// Age limit in ms; 0 = none.
    pub max_age_ms: u64,
    /// Byte limit; -1 = unlimited.
    pub max_bytes: i64,
    /// Replicas.
    pub num_replicas: usize,
    /// Discard policy.
    pub discard: DiscardPolicy,
    /// Per-message TTL allowed.
    pub allow_msg_ttl: bool,
    /// Expiry marker lifetime in ms, when limit markers are on.
    pub limit_marker_ttl_ms: Option<u64>,
}

#[cfg_attr(
    not(feature = "testkit"),
    allow(unreachable_pub, reason = "reachable through the testkit memory log")
)]
impl EffectiveConfig {
    /// Applies the defaults of docs/semantics.md, "Store configuration" without validating (out-of-range values are
    /// clamped); backends call [`validate_config`] first.
    pub fn of(config: &StoreConfig, options: &StoreOptions) -> Self {
        let max_age_ms = config
            .max_age
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            name: config.name.clone(),
            storage: config.storage,
            max_history: config.max_history.unwrap_or(1).clamp(1, MAX_HISTORY_MAX),
            max_age_ms,
            max_bytes: match config.max_bytes {
                None => DEFAULT_MAX_BYTES,
                Some(n) if n <= 0 => -1,
                Some(n) => n,
            },
            num_replicas: match config.num_replicas {
                None | Some(0) => 1,
                Some(n) => n.min(NUM_REPLICAS_MAX),
            },
            discard: config.discard,
            allow_msg_ttl: options.ttl || options.limit_marker_ttl.is_some(),
            limit_marker_ttl_ms: options
                .limit_marker_ttl
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// The configuration as a backend reports it back (`status().config`).
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            name: self.name.clone(),
            storage: self.storage,
            max_history: Some(self.max_history),
            max_age: (self.max_age_ms > 0).then(|| Duration::from_millis(self.max_age_ms)),
            max_bytes: (self.max_bytes > 0).then_some(self.max_bytes),
            num_replicas: Some(self.num_replicas),
            discard: self.discard,
        }
    }

    /// The options as a backend reports them back (`status().options`).
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            ttl: self.allow_msg_ttl,
            limit_marker_ttl: self.limit_marker_ttl_ms.map(Duration::from_millis),
        }
    }
}

fn invalid(detail: impl std::fmt::Display) -> KvError {
    KvError::OperationFailed(format!("invalid store config: {detail}"))
}

/// Validates a configuration and options before any I/O (docs/semantics.md, "Store configuration") and
/// applies the defaults. Shared by every kvfold backend.
///
/// Does not check whether the server supports per-message TTL; the backend does.
#[doc(hidden)]
pub(crate) fn validate_config(
    config: &StoreConfig,
    options: &StoreOptions,
) -> Result<EffectiveConfig, KvError> {
    if !bucket_name_is_valid(&config.name) {
        return Err(invalid(format_args!(
            "bucket name {:?} must be non-empty and use only A-Z a-z 0-9 - _",
            config.name
        )));
    }
    if let Some(h) = config.max_history
        && !(1..=MAX_HISTORY_MAX).contains(&h)
    {
        return Err(invalid(format_args!(
            "max_history {h} is outside 1..={MAX_HISTORY_MAX}"
        )));
    }
    if let Some(age) = config.max_age
        && !age.is_zero()
        && age < MAX_AGE_MIN
    {
        return Err(invalid(format_args!(
            "max_age {age:?} is below the minimum of {MAX_AGE_MIN:?}"
        )));
    }
    if let Some(n) = config.num_replicas
        && n > NUM_REPLICAS_MAX
    {
        return Err(invalid(format_args!(
            "num_replicas {n} is outside 1..={NUM_REPLICAS_MAX}"
        )));
    }
    if let Some(ttl) = options.limit_marker_ttl
        && ttl < LIMIT_MARKER_TTL_MIN
    {
        return Err(invalid(format_args!(
            "limit_marker_ttl {ttl:?} is below the minimum of {LIMIT_MARKER_TTL_MIN:?}"
        )));
    }
    Ok(EffectiveConfig::of(config, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> StoreConfig {
        StoreConfig {
            name: name.to_string(),
            ..StoreConfig::default()
        }
    }

    #[test]
    fn defaults_are_applied() {
        let e = validate_config(&named("b"), &StoreOptions::default()).unwrap();
        assert_eq!(e.max_history, 1);
        assert_eq!(e.max_bytes, DEFAULT_MAX_BYTES);
        assert_eq!(e.num_replicas, 1);
        assert_eq!(e.max_age_ms, 0);
        assert_eq!(e.discard, DiscardPolicy::New);
        assert_eq!(e.storage, StorageType::Persistent);
        let back = e.store_config();
        assert_eq!(back.max_bytes, Some(DEFAULT_MAX_BYTES));
        assert_eq!(back.max_history, Some(1));
        assert_eq!(back.num_replicas, Some(1));
        assert_eq!(back.max_age, None);
    }

    #[test]
    fn non_positive_max_bytes_is_unlimited() {
        for n in [0, -1, -100] {
            let c = StoreConfig {
                max_bytes: Some(n),
                ..named("b")
            };
            let e = validate_config(&c, &StoreOptions::default()).unwrap();
            assert_eq!(e.max_bytes, -1);
            assert_eq!(e.store_config().max_bytes, None);
        }
    }

    #[test]
    fn invalid_fields_are_operation_failed() {
        let cases = [
            named(""),
            named("a.b"),
            named("a b"),
            named("a*"),
            StoreConfig {
                max_history: Some(0),
                ..named("b")
            },
            StoreConfig {
                max_history: Some(65),
                ..named("b")
            },
            StoreConfig {
                max_age: Some(Duration::from_millis(99)),
                ..named("b")
            },
            StoreConfig {
                num_replicas: Some(6),
                ..named("b")
            },
        ];
        for c in cases {
            let err = validate_config(&c, &StoreOptions::default()).unwrap_err();
            assert!(
                matches!(&err, KvError::OperationFailed(m) if m.starts_with("invalid store config")),
                "{c:?} gave {err:?}"
            );
        }
        let opts = StoreOptions::new().with_limit_markers(Duration::from_millis(999));
        assert!(validate_config(&named("b"), &opts).is_err());
    }

    #[test]
    fn edge_values_are_accepted() {
        let ok = [
            StoreConfig {
                max_history: Some(64),
                max_age: Some(Duration::from_millis(100)),
                num_replicas: Some(0),
                ..named("A-z_09")
            },
            StoreConfig {
                max_age: Some(Duration::ZERO),
                num_replicas: Some(5),
                ..named("b")
            },
        ];
        for c in ok {
            validate_config(&c, &StoreOptions::default()).unwrap();
        }
    }

    #[test]
    fn limit_markers_imply_ttl() {
        let o = StoreOptions::new().with_limit_markers(Duration::from_secs(1));
        assert!(o.ttl);
        let e = validate_config(
            &named("b"),
            &StoreOptions {
                ttl: false,
                limit_marker_ttl: Some(Duration::from_secs(2)),
            },
        )
        .unwrap();
        assert!(e.allow_msg_ttl);
        assert_eq!(e.limit_marker_ttl_ms, Some(2000));
    }
}
