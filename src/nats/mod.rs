//! The NATS JetStream backend (feature `nats`): a thin executor over async-nats
//! (docs/nats-backend.md). Every decision that protects data is a `protocol` call: resume
//! checks (`ResumeGuard`), error classification, ACK parsing, message decoding, key and
//! filter rules. This module dials, requests, publishes, subscribes and performs what the
//! kernels decide.

mod auth;
mod bucket;
mod consumer;
mod info;
mod read;
mod request;
mod violations;
mod watch;
mod write;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_nats::jetstream;
use async_trait::async_trait;

use crate::connstate::ConnState;
use crate::kv::KvError;
use crate::stores::{
    Connection, ConnectionCapabilities, KvStore, StoreConfig, StoreOptions, validate_config,
};
use bucket::NatsKvStore;
use request::OP_TIMEOUT;

/// Configuration for a NATS connection.
///
/// `Debug` never shows credentials: `creds` and `creds_file` appear only as
/// presence, and the user info of every URL entry is masked (`[redacted]@host`).
#[derive(Clone)]
pub struct NatsConnectionConfig {
    /// Server URL(s), comma-separated; may carry `user:pass@` or `token@`
    /// (docs/nats-backend.md "URL credentials").
    pub url: String,
    /// Base64 of a `.creds` file's content.
    pub creds: Option<String>,
    /// Path to a `.creds` file.
    pub creds_file: Option<String>,
}

impl fmt::Debug for NatsConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "[redacted]");
        f.debug_struct("NatsConnectionConfig")
            .field("url", &auth::redact_url(&self.url))
            .field("creds", &redacted(&self.creds))
            .field("creds_file", &redacted(&self.creds_file))
            .finish()
    }
}

/// Connects to NATS with kvfold's authentication priority (inline creds, creds
/// file, `user:pass@` in the URL, none), without health tracking.
pub async fn nats_connect(
    url: &str,
    creds: Option<&str>,
    creds_file: Option<&str>,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let plan = auth::build_options(url, creds, creds_file).await?;
    let servers = plan.servers();
    plan.options.connect(servers).await
}

/// A connected client and its JetStream context (timeout 30 s).
#[derive(Clone)]
struct Handle {
    client: async_nats::Client,
    js: jetstream::Context,
}

impl Handle {
    fn new(client: async_nats::Client) -> Self {
        let mut js = jetstream::new(client.clone());
        js.set_timeout(OP_TIMEOUT);
        Self { client, js }
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

/// NATS JetStream KV connection.
///
/// Not connected until [`connect`](Connection::connect); health follows the
/// client's events; reconnectable after `shutdown` (except when built with
/// [`from_client`](NatsConnection::from_client)).
pub struct NatsConnection {
    config: Option<NatsConnectionConfig>,
    state: Arc<ConnState<Handle>>,
    borrowed: bool,
    api_level_1: Arc<AtomicBool>,
    ttl_probed: AtomicBool,
}

impl fmt::Debug for NatsConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self
            .config
            .as_ref()
            .map_or_else(|| "(from_client)".to_string(), |c| auth::redact_url(&c.url));
        f.debug_struct("NatsConnection")
            .field("url", &url)
            .field("healthy", &self.is_healthy())
            .finish()
    }
}

impl NatsConnection {
    /// A connection that dials `config` on [`connect`](Connection::connect).
    pub fn new(config: NatsConnectionConfig) -> Self {
        Self {
            config: Some(config),
            state: Arc::new(ConnState::new()),
            borrowed: false,
            api_level_1: Arc::new(AtomicBool::new(false)),
            ttl_probed: AtomicBool::new(false),
        }
    }

    /// Wraps an already connected client: healthy at once while the client is
    /// connected; cannot reconnect after `shutdown`. The TTL probe runs on the
    /// first `store*` call.
    pub fn from_client(client: async_nats::Client) -> Self {
        let state = Arc::new(ConnState::new());
        let generation = state.next_generation();
        let handle = Handle::new(client);
        let _ = state.install(generation, handle, |_| true);
        Self {
            config: None,
            state,
            borrowed: true,
            api_level_1: Arc::new(AtomicBool::new(false)),
            ttl_probed: AtomicBool::new(false),
        }
    }

    async fn probe_ttl(&self, handle: &Handle) {
        let level =
            request::unless_denied(&handle.client, "$JS.API.INFO", handle.js.query_account()).await;
        let supported = match level {
            Ok(Ok(account)) => account.requests.level >= 1,
            Ok(Err(error)) => {
                tracing::warn!(%error, "JetStream account query failed; per-message TTL assumed unsupported");
                false
            }
            Err(failure) => {
                tracing::warn!(
                    error = %request::failure_text(&failure),
                    "JetStream account query failed; per-message TTL assumed unsupported"
                );
                false
            }
        };
        self.api_level_1.store(supported, Ordering::SeqCst);
        self.ttl_probed.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl Connection for NatsConnection {
    async fn connect(&self) -> Result<(), KvError> {
        if self.state.is_healthy() {
            return Ok(());
        }
        let Some(config) = &self.config else {
            if self.state.has_handle() {
                return Ok(());
            }
            return Err(KvError::ConnectionFailed(
                "a connection built with NatsConnection::from_client keeps no URL or credentials and cannot redial; \
                 build one with NatsConnection::new"
                    .to_string(),
            ));
        };
        if self.state.has_handle() {
            // The installed client reconnects by itself; is_healthy reports the truth.
            return Ok(());
        }
        let generation = self.state.next_generation();
        let plan = auth::build_options(
            &config.url,
            config.creds.as_deref(),
            config.creds_file.as_deref(),
        )
        .await
        .map_err(|e| KvError::ConnectionFailed(e.to_string()))?;
        let weak = Arc::downgrade(&self.state);
        let servers = plan.servers();
        let denied = violations::Violations::new();
        let feed = Arc::clone(&denied);
        let options = plan.options.event_callback(move |event| {
            let weak = weak.clone();
            let feed = Arc::clone(&feed);
            async move {
                if let async_nats::Event::ServerError(async_nats::ServerError::Other(text)) = &event
                {
                    // Before the state check: a request may wait on it after shutdown began.
                    feed.note(text);
                }
                let Some(state) = weak.upgrade() else {
                    return;
                };
                match event {
                    async_nats::Event::Connected => state.on_event(generation, true),
                    async_nats::Event::Disconnected => state.on_event(generation, false),
                    async_nats::Event::ServerError(error) => {
                        tracing::warn!(%error, "NATS server error");
                    }
                    async_nats::Event::LameDuckMode | async_nats::Event::SlowConsumer(_) => {
                        tracing::warn!(%event, "NATS client event");
                    }
                    other => tracing::debug!(event = %other, "NATS client event"),
                }
            }
        });
        let client = options
            .connect(servers)
            .await
            .map_err(|e| KvError::ConnectionFailed(e.to_string()))?;
        violations::register(&client, denied);
        let handle = Handle::new(client);
        match self
            .state
            .install(generation, handle.clone(), Handle::connected)
        {
            Ok(()) => self.probe_ttl(&handle).await,
            Err(losing) => drop(losing),
        }
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), KvError> {
        let old = self.state.shutdown();
        drop(old);
        Ok(())
    }

    fn is_healthy(&self) -> bool {
        if !self.state.is_healthy() {
            return false;
        }
        if self.borrowed {
            return self.state.handle().is_some_and(|h| h.connected());
        }
        true
    }

    async fn store_with_config(&self, config: StoreConfig) -> Result<Arc<dyn KvStore>, KvError> {
        self.store_with_options(config, StoreOptions::default())
            .await
    }

    fn capabilities(&self) -> ConnectionCapabilities {
        ConnectionCapabilities::jetstream_kv(self.api_level_1.load(Ordering::SeqCst))
    }

    async fn store_with_options(
        &self,
        config: StoreConfig,
        options: StoreOptions,
    ) -> Result<Arc<dyn KvStore>, KvError> {
        let Some(handle) = self.state.handle() else {
            return Err(KvError::NotConnected);
        };
        let effective = validate_config(&config, &options)?;
        if !self.ttl_probed.load(Ordering::SeqCst) {
            self.probe_ttl(&handle).await;
        }
        let api_level_1 = self.api_level_1.load(Ordering::SeqCst);
        if effective.allow_msg_ttl && !api_level_1 {
            return Err(KvError::OperationFailed(
                "per-key TTL needs a server with per-message TTL (nats-server >= 2.11)".to_string(),
            ));
        }
        let has_options = options != StoreOptions::default();
        let info =
            bucket::get_or_create(&handle.client, &handle.js, &effective, has_options).await?;
        let bound = bucket::bind(handle.client.clone(), &effective.name);
        Ok(Arc::new(NatsKvStore {
            bucket: Arc::new(bound),
            ttl: info.allows_msg_ttl() && api_level_1,
            fenced: api_level_1,
        }))
    }
}
