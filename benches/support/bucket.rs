//! The bucket a NATS bench measures: created through kvfold (history 1, no byte
//! limit) and opened by raw async-nats too, so both sides use one stream
//! configuration.

use std::sync::Arc;

use async_nats::jetstream;
use kvfold::{Connection as _, KvStore, NatsConnection, NatsConnectionConfig, StoreConfig};

/// A kvfold connection with `bucket` created, and the raw client's handle on it.
pub struct Bucket {
    /// kvfold's handle.
    pub store: Arc<dyn KvStore>,
    /// Raw async-nats on the same bucket.
    pub raw: jetstream::kv::Store,
    /// Kept open for the bench's lifetime.
    pub conn: NatsConnection,
}

/// Connects both clients to `url` and creates (or opens) `bucket`.
pub async fn open(url: &str, bucket: &str) -> Bucket {
    let conn = NatsConnection::new(NatsConnectionConfig {
        url: url.to_string(),
        creds: None,
        creds_file: None,
    });
    conn.connect().await.expect("kvfold connects");
    let store = conn
        .store_with_config(StoreConfig {
            name: bucket.to_string(),
            max_history: Some(1),
            max_bytes: Some(-1),
            ..StoreConfig::default()
        })
        .await
        .expect("kvfold creates the bucket");
    let client = async_nats::connect(url).await.expect("raw client connects");
    let raw = jetstream::new(client)
        .get_key_value(bucket)
        .await
        .expect("raw client opens the bucket");
    Bucket { store, raw, conn }
}
