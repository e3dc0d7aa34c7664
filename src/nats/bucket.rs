//! Buckets on NATS: get-or-create with the settings mapping (docs/nats-backend.md,
//! "Buckets"), and the store handle every trait object of one bucket shares. The create
//! reply is classified by `protocol::nats::classify_stream_create`; every create is
//! followed by the mandatory re-verify.

use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream;
use serde_json::{Value, json};

use super::info::{StreamInfo, stream_info};
use super::request::{Failure, bucket_error, failure_text, unless_denied, with_retry};
use crate::kv::KvError;
use crate::kv::{KvFencedWriter, KvPurge, KvReader, KvTtl, KvWatcher, KvWriter};
use crate::protocol::nats::{CreateOutcome, classify_stream_create};
use crate::stores::{DiscardPolicy, EffectiveConfig, KvStore, StorageType};

/// One bucket as the NATS executor addresses it: by name, with its own client.
pub(crate) struct NatsBucket {
    pub(crate) client: Client,
    pub(crate) name: String,
    /// `KV_<name>`.
    pub(crate) stream_name: String,
}

impl NatsBucket {
    /// `$KV.<bucket>.`
    pub(crate) fn subject_prefix(&self) -> String {
        format!("$KV.{}.", self.name)
    }

    /// `$KV.<bucket>.<key>`
    pub(crate) fn subject(&self, key: &str) -> String {
        format!("$KV.{}.{key}", self.name)
    }
}

/// A bucket of a NATS connection; every accessor is a cheap clone.
pub(crate) struct NatsKvStore {
    pub(crate) bucket: Arc<NatsBucket>,
    pub(crate) ttl: bool,
    pub(crate) fenced: bool,
}

impl KvStore for NatsKvStore {
    fn name(&self) -> &str {
        &self.bucket.name
    }

    fn reader(&self) -> Arc<dyn KvReader> {
        Arc::clone(&self.bucket) as Arc<dyn KvReader>
    }

    fn watcher(&self) -> Option<Arc<dyn KvWatcher>> {
        Some(Arc::clone(&self.bucket) as Arc<dyn KvWatcher>)
    }

    fn writer(&self) -> Option<Arc<dyn KvWriter>> {
        Some(Arc::clone(&self.bucket) as Arc<dyn KvWriter>)
    }

    fn purge_writer(&self) -> Option<Arc<dyn KvPurge>> {
        Some(Arc::clone(&self.bucket) as Arc<dyn KvPurge>)
    }

    fn ttl_writer(&self) -> Option<Arc<dyn KvTtl>> {
        self.ttl.then(|| Arc::clone(&self.bucket) as Arc<dyn KvTtl>)
    }

    fn fenced_writer(&self) -> Option<Arc<dyn KvFencedWriter>> {
        self.fenced
            .then(|| Arc::clone(&self.bucket) as Arc<dyn KvFencedWriter>)
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The raw STREAM.CREATE body of docs/nats-backend.md, "Buckets".
pub(crate) fn stream_config_json(config: &EffectiveConfig) -> Value {
    let name = &config.name;
    let mut body = json!({
        "name": format!("KV_{name}"),
        "subjects": [format!("$KV.{name}.>")],
        "retention": "limits",
        "max_msgs_per_subject": config.max_history,
        "max_msgs": -1,
        "max_bytes": config.max_bytes,
        "max_age": nanos(Duration::from_millis(config.max_age_ms)),
        "max_msg_size": -1,
        "max_consumers": -1,
        "storage": match config.storage { StorageType::Memory => "memory", StorageType::Persistent => "file" },
        "discard": match config.discard { DiscardPolicy::New => "new", DiscardPolicy::Old => "old" },
        "num_replicas": config.num_replicas,
        "allow_rollup_hdrs": true,
        "deny_delete": true,
        "deny_purge": false,
        "allow_direct": true,
    });
    let object = body
        .as_object_mut()
        .expect("json! of an object is an object");
    if config.max_age_ms > 0 {
        let window = Duration::from_millis(config.max_age_ms).min(Duration::from_secs(120));
        object.insert("duplicate_window".into(), json!(nanos(window)));
    }
    if config.allow_msg_ttl {
        object.insert("allow_msg_ttl".into(), json!(true));
    }
    if let Some(ms) = config.limit_marker_ttl_ms {
        object.insert(
            "subject_delete_marker_ttl".into(),
            json!(nanos(Duration::from_millis(ms))),
        );
    }
    body
}

fn kv_config(config: &EffectiveConfig) -> jetstream::kv::Config {
    jetstream::kv::Config {
        bucket: config.name.clone(),
        history: i64::from(config.max_history),
        max_age: Duration::from_millis(config.max_age_ms),
        max_bytes: config.max_bytes,
        storage: match config.storage {
            StorageType::Memory => jetstream::stream::StorageType::Memory,
            StorageType::Persistent => jetstream::stream::StorageType::File,
        },
        num_replicas: config.num_replicas,
        ..Default::default()
    }
}

/// Gets the bucket, or creates it with `config` (docs/nats-backend.md, "Buckets"). Returns
/// the stream info read by the lookup or the re-verify.
pub(crate) async fn get_or_create(
    client: &Client,
    js: &jetstream::Context,
    config: &EffectiveConfig,
    has_options: bool,
) -> Result<StreamInfo, KvError> {
    let name = &config.name;
    // 1. Look up.
    let lookup_error = match stream_info(client, name).await {
        Ok(info) => return Ok(info),
        Err(failure @ Failure::PermissionDenied(_)) => return Err(bucket_error(failure)),
        Err(failure) => {
            let text = failure_text(&failure);
            tracing::debug!(bucket = %name, error = %text, "bucket lookup failed; creating it");
            text
        }
    };
    // 3. Client path.
    let mut created = false;
    if config.discard == DiscardPolicy::New && !has_options {
        let subject = format!("$JS.API.STREAM.CREATE.KV_{name}");
        match unless_denied(client, &subject, js.create_key_value(kv_config(config))).await {
            Ok(Ok(_)) => created = true,
            Ok(Err(error)) => {
                tracing::warn!(bucket = %name, %error, "client bucket create failed; trying the raw create");
            }
            Err(Failure::PermissionDenied(text)) => {
                return Err(bucket_error(Failure::PermissionDenied(text)));
            }
            Err(_) => {
                tracing::warn!(bucket = %name, "client bucket create timed out; trying the raw create");
            }
        }
    }
    // 4. Raw path.
    if !created {
        let body = stream_config_json(config);
        let api = format!("STREAM.CREATE.KV_{name}");
        let reply = with_retry(|bound| {
            let body = body.clone();
            let api = api.clone();
            async move {
                let payload =
                    serde_json::to_vec(&body).map_err(|e| Failure::text(e.to_string()))?;
                let message = super::request::request_once(
                    client,
                    format!("$JS.API.{api}"),
                    None,
                    payload,
                    bound,
                )
                .await?;
                match classify_stream_create(&message.payload) {
                    CreateOutcome::Failed(facts) => Err(Failure::Js(facts)),
                    outcome => Ok((outcome, message.payload.to_vec())),
                }
            }
        })
        .await;
        match reply {
            Ok((CreateOutcome::Unreadable, payload)) => tracing::warn!(
                bucket = %name,
                reply = %String::from_utf8_lossy(&payload),
                "unreadable stream-create reply; re-verifying"
            ),
            Ok((outcome, _)) => {
                tracing::debug!(bucket = %name, ?outcome, "raw stream create answered")
            }
            Err(failure) => return Err(bucket_error(failure)),
        }
    }
    // 5. Re-verify, always.
    stream_info(client, name).await.map_err(|failure| {
        KvError::ConnectionFailed(format!(
            "bucket {name} missing after create: {}; lookup had failed with: {lookup_error}",
            failure_text(&failure)
        ))
    })
}

/// Binds a bucket handle by name.
pub(crate) fn bind(client: Client, name: &str) -> NatsBucket {
    NatsBucket {
        client,
        name: name.to_string(),
        stream_name: format!("KV_{name}"),
    }
}
