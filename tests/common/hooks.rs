//! `NatsHooks`: the conformance hooks on a real nats-server (docs/nats-backend.md, "Test
//! harness"): recreate a bucket, evict below a revision, purge markers, let time pass, and
//! interrupt watches by cutting the connection through a `TcpProxy`.
#![allow(dead_code)]

use std::time::Duration;

use async_trait::async_trait;
use kvfold::conformance::{Hook, Hooks};
use kvfold::{Connection, KvError, NatsConnection};
use serde_json::json;

use super::nats::{TcpProxy, js_request, stream_delete, stream_purge_below, stream_purge_subject};

/// Hooks over an admin client of the server and, when given, the proxy that the
/// connection under test dials through.
pub struct NatsHooks {
    admin: async_nats::Client,
    /// A connection used to recreate buckets with their recorded configuration.
    creator: NatsConnection,
    proxy: Option<TcpProxy>,
}

fn err(e: impl std::fmt::Display) -> KvError {
    KvError::OperationFailed(e.to_string())
}

impl NatsHooks {
    /// Hooks for the server(s) at `urls` (comma-separated), cutting watches through `proxy`.
    pub async fn new(urls: &str, proxy: Option<TcpProxy>) -> Self {
        let list: Vec<String> = urls.split(',').map(|s| s.trim().to_string()).collect();
        let admin = async_nats::connect(list)
            .await
            .expect("admin client connects");
        let creator = NatsConnection::new(super::nats::client_config(urls));
        creator.connect().await.expect("creator connects");
        Self {
            admin,
            creator,
            proxy,
        }
    }

    /// The proxy's URL (what the connection under test should dial), if any.
    pub fn proxy_url(&self) -> Option<String> {
        self.proxy.as_ref().map(TcpProxy::url)
    }
}

#[async_trait]
impl Hooks for NatsHooks {
    fn supports(&self, hook: Hook) -> bool {
        match hook {
            Hook::InterruptWatches => self.proxy.is_some(),
            _ => true,
        }
    }

    async fn recreate_bucket(&self, bucket: &str) -> Result<(), KvError> {
        let store = self.creator.store(bucket).await?;
        let status = store
            .watcher()
            .expect("NATS watches")
            .status()
            .await?
            .expect("NATS reports status");
        stream_delete(&self.admin, &format!("KV_{bucket}"))
            .await
            .map_err(err)?;
        self.creator
            .store_with_options(status.config, status.options)
            .await
            .map(|_| ())
    }

    async fn evict_below(&self, bucket: &str, revision: u64) -> Result<(), KvError> {
        stream_purge_below(&self.admin, &format!("KV_{bucket}"), revision)
            .await
            .map(|_| ())
            .map_err(err)
    }

    async fn purge_markers(&self, bucket: &str) -> Result<(), KvError> {
        let stream = format!("KV_{bucket}");
        let info = js_request(
            &self.admin,
            &format!("$JS.API.STREAM.INFO.{stream}"),
            &json!({ "subjects_filter": format!("$KV.{bucket}.>") }),
        )
        .await
        .map_err(err)?;
        let subjects: Vec<String> = info["state"]["subjects"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for subject in subjects {
            let reply = self
                .admin
                .request(
                    format!("$JS.API.DIRECT.GET.{stream}.{subject}"),
                    Vec::new().into(),
                )
                .await
                .map_err(err)?;
            let headers = reply.headers.as_ref();
            let marker = headers.is_some_and(|h| {
                h.get("KV-Operation").is_some() || h.get("Nats-Marker-Reason").is_some()
            });
            if marker {
                stream_purge_subject(&self.admin, &stream, &subject, 0)
                    .await
                    .map_err(err)?;
            }
        }
        Ok(())
    }

    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }

    async fn interrupt_watches(&self, _bucket: &str) -> Result<(), KvError> {
        let proxy = self
            .proxy
            .as_ref()
            .ok_or_else(|| KvError::OperationFailed("no proxy to cut".to_string()))?;
        proxy.cut();
        tokio::time::sleep(Duration::from_millis(200)).await;
        proxy.heal();
        Ok(())
    }
}
