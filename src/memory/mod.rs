//! The embedded default backend: an in-process server with the semantics of a NATS
//! JetStream KV bucket as far as kvfold's traits can observe them (docs/memory-backend.md).
//! Executor code: it feeds the pure log core (`log`) and the `protocol` kernels and never
//! takes a resume decision itself.

pub(crate) mod clock;
mod faults;
#[cfg(feature = "testkit")]
#[doc(hidden)]
pub mod log;
#[cfg(not(feature = "testkit"))]
#[allow(unreachable_pub, reason = "public under the testkit feature")]
mod log;
#[cfg(feature = "testkit")]
#[doc(hidden)]
pub mod registry;
#[cfg(not(feature = "testkit"))]
#[allow(unreachable_pub, reason = "public under the testkit feature")]
mod registry;
mod server;
mod store;
mod watch;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;

pub use clock::{Clock, ManualClock, SystemClock};
pub use faults::{MemoryFaults, MemoryOp};
pub use server::MemoryServer;

use crate::kv::KvError;
use crate::stores::{
    Connection, ConnectionCapabilities, KvStore, StoreConfig, StoreOptions, validate_config,
};
use server::ConnInner;
use store::{BucketHandle, MemoryStore};

/// Default `max_payload`: 1 MiB, the nats-server default.
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;
/// Default per-watcher queue length.
pub const DEFAULT_WATCH_QUEUE_LEN: usize = 1024;
/// Default per-watcher queue bytes (8 MiB).
pub const DEFAULT_WATCH_QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// Configuration of a [`MemoryServer`].
#[derive(Debug, Clone)]
pub struct MemoryConfig {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) max_payload: usize,
    pub(crate) ttl_supported: bool,
    pub(crate) watch_len_max: usize,
    pub(crate) watch_bytes_max: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryConfig {
    /// The defaults: `SystemClock`, 1 MiB payloads, TTL supported, 1024-entry / 8 MiB watch queues.
    pub fn new() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            max_payload: DEFAULT_MAX_PAYLOAD,
            ttl_supported: true,
            watch_len_max: DEFAULT_WATCH_QUEUE_LEN,
            watch_bytes_max: DEFAULT_WATCH_QUEUE_BYTES,
        }
    }

    /// Use this clock for time and timers.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Use this manual clock; advancing it applies the server's time effects synchronously.
    #[must_use]
    pub fn manual_clock(mut self, clock: &ManualClock) -> Self {
        self.clock = Arc::new(clock.clone());
        self
    }

    /// Largest header block + value a write may carry; 0 = no limit.
    #[must_use]
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Play a server with per-message TTL (nats-server ≥ 2.11) or without (2.10).
    #[must_use]
    pub fn ttl_supported(mut self, yes: bool) -> Self {
        self.ttl_supported = yes;
        self
    }

    /// Per-watcher queue bounds (both clamped to at least 1).
    #[must_use]
    pub fn watch_queue(mut self, len_max: usize, bytes_max: usize) -> Self {
        self.watch_len_max = len_max.max(1);
        self.watch_bytes_max = bytes_max.max(1);
        self
    }
}

/// A connection to a [`MemoryServer`]; the embedded default backend.
///
/// Starts **not connected**, like a NATS connection: call
/// [`connect`](Connection::connect) first. Clones share one connection.
#[derive(Clone)]
pub struct MemoryConnection {
    pub(crate) inner: Arc<ConnInner>,
}

impl fmt::Debug for MemoryConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryConnection")
            .field("id", &self.inner.id)
            .field("healthy", &self.is_healthy())
            .finish()
    }
}

impl Default for MemoryConnection {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryConnection {
    /// A connection to a new private server with the default configuration.
    pub fn new() -> Self {
        MemoryServer::new(MemoryConfig::default()).connection()
    }

    /// A connection to a new private server with this configuration.
    pub fn with_config(config: MemoryConfig) -> Self {
        MemoryServer::new(config).connection()
    }

    /// The server this connection talks to.
    pub fn server(&self) -> &MemoryServer {
        &self.inner.server
    }

    /// Faults scoped to this connection (bucket faults still affect every connection).
    pub fn faults(&self) -> MemoryFaults {
        MemoryFaults::new(self.inner.server.clone(), Some(self.inner.id))
    }
}

#[async_trait]
impl Connection for MemoryConnection {
    async fn connect(&self) -> Result<(), KvError> {
        self.inner.server.gate(self.inner.id, MemoryOp::Store)?;
        self.inner.connected.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), KvError> {
        self.inner.connected.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn is_healthy(&self) -> bool {
        self.inner.connected.load(Ordering::SeqCst) && !self.inner.is_partitioned()
    }

    async fn store_with_config(&self, config: StoreConfig) -> Result<Arc<dyn KvStore>, KvError> {
        self.store_with_options(config, StoreOptions::default())
            .await
    }

    fn capabilities(&self) -> ConnectionCapabilities {
        ConnectionCapabilities::jetstream_kv(self.inner.server.inner.config.ttl_supported)
    }

    async fn store_with_options(
        &self,
        config: StoreConfig,
        options: StoreOptions,
    ) -> Result<Arc<dyn KvStore>, KvError> {
        if !self.inner.connected.load(Ordering::SeqCst) {
            return Err(KvError::NotConnected);
        }
        let effective = validate_config(&config, &options)?;
        let ttl_supported = self.inner.server.inner.config.ttl_supported;
        if effective.allow_msg_ttl && !ttl_supported {
            return Err(KvError::OperationFailed(
                "per-key TTL needs a server with per-message TTL (nats-server >= 2.11)".to_string(),
            ));
        }
        if self.inner.is_partitioned() {
            return Err(KvError::Timeout);
        }
        self.inner.server.gate(self.inner.id, MemoryOp::Store)?;
        let cell = self.inner.server.get_or_create(effective);
        let ttl = cell.config().allow_msg_ttl;
        let handle = Arc::new(BucketHandle {
            conn: Arc::clone(&self.inner),
            name: cell.name().to_string(),
        });
        Ok(Arc::new(MemoryStore {
            handle,
            ttl,
            fenced: ttl_supported,
        }))
    }
}
