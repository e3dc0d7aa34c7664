//! Stream info of a bucket's stream (`$JS.API.STREAM.INFO.KV_<b>`), read fresh on every
//! call: the facts a resume guard's probe needs and the bucket status
//! (docs/nats-backend.md, "The watch loop"; docs/protocols/resume-guard.md, "Kernels").
//! Parsing only; the retention rule is `protocol::resume::LogLimits`.

use std::time::Duration;

use async_nats::Client;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::request::{Failure, api_once, with_retry};
use crate::kv::{BucketStatus, Retention};
use crate::protocol::resume::{LogLimits, StreamFacts};
use crate::stores::{DiscardPolicy, StorageType, StoreConfig, StoreOptions};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct ConfigJson {
    max_msgs_per_subject: i64,
    max_msgs: i64,
    max_bytes: i64,
    max_age: i64,
    num_replicas: usize,
    discard: String,
    storage: String,
    allow_msg_ttl: bool,
    subject_delete_marker_ttl: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct StateJson {
    messages: u64,
    bytes: u64,
    first_seq: u64,
    last_seq: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct InfoJson {
    config: ConfigJson,
    state: StateJson,
    created: String,
    ts: Option<String>,
}

/// A parsed stream info reply.
#[derive(Debug, Clone)]
pub(crate) struct StreamInfo {
    info: InfoJson,
    created_ms: Option<u64>,
    server_now_ms: Option<u64>,
}

fn unix_ms(text: &str) -> Option<u64> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

fn ns_to_duration(ns: i64) -> Option<Duration> {
    (ns > 0).then(|| Duration::from_nanos(ns as u64))
}

impl StreamInfo {
    /// Parses a STREAM.INFO reply.
    pub(crate) fn parse(reply: serde_json::Value) -> Result<Self, Failure> {
        let info: InfoJson = serde_json::from_value(reply)
            .map_err(|e| Failure::text(format!("unreadable stream info: {e}")))?;
        let created_ms = unix_ms(&info.created);
        let server_now_ms = info.ts.as_deref().and_then(unix_ms);
        Ok(Self {
            info,
            created_ms,
            server_now_ms,
        })
    }

    /// The stream's limits as the retention kernel sees them.
    pub(crate) fn limits(&self) -> LogLimits {
        let c = &self.info.config;
        LogLimits {
            max_age_ms: u64::try_from(c.max_age.max(0) / 1_000_000).unwrap_or(0),
            allow_msg_ttl: c.allow_msg_ttl,
            discard_old: c.discard.eq_ignore_ascii_case("old"),
            max_bytes: c.max_bytes,
            max_msgs: c.max_msgs,
        }
    }

    /// The facts a guard probe feeds.
    pub(crate) fn facts(&self) -> StreamFacts {
        StreamFacts {
            first_sequence: self.info.state.first_seq,
            last_sequence: self.info.state.last_seq,
            created_ms: self.created_ms,
            server_now_ms: self.server_now_ms,
            limits: self.limits(),
        }
    }

    /// Per-message TTL allowed on the stream.
    pub(crate) fn allows_msg_ttl(&self) -> bool {
        self.info.config.allow_msg_ttl
    }

    /// The retention reading.
    pub(crate) fn retention(&self) -> Retention {
        Retention {
            evicts_current_values: self.limits().evicts_current_values(),
            first_revision: self.info.state.first_seq,
        }
    }

    /// The bucket status (config read back from the stream).
    pub(crate) fn status(&self, bucket: &str) -> BucketStatus {
        let c = &self.info.config;
        let config = StoreConfig {
            name: bucket.to_string(),
            storage: if c.storage.eq_ignore_ascii_case("memory") {
                StorageType::Memory
            } else {
                StorageType::Persistent
            },
            max_history: u32::try_from(c.max_msgs_per_subject.max(1)).ok(),
            max_age: ns_to_duration(c.max_age),
            max_bytes: (c.max_bytes > 0).then_some(c.max_bytes),
            num_replicas: Some(c.num_replicas.max(1)),
            discard: if c.discard.eq_ignore_ascii_case("old") {
                DiscardPolicy::Old
            } else {
                DiscardPolicy::New
            },
        };
        let options = StoreOptions {
            ttl: c.allow_msg_ttl,
            limit_marker_ttl: c.subject_delete_marker_ttl.and_then(ns_to_duration),
        };
        BucketStatus::new(
            bucket,
            self.info.state.first_seq,
            self.info.state.last_seq,
            self.created_ms.unwrap_or(0),
            self.retention(),
        )
        .with_counts(self.info.state.messages, self.info.state.bytes)
        .with_config(config, options)
    }
}

/// Reads the stream info of bucket `bucket` fresh (30 s bound, retries).
pub(crate) async fn stream_info(client: &Client, bucket: &str) -> Result<StreamInfo, Failure> {
    let api = format!("STREAM.INFO.KV_{bucket}");
    let empty = serde_json::json!({});
    let reply = with_retry(|bound| api_once(client, &api, &empty, bound)).await?;
    StreamInfo::parse(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_facts_and_status() {
        let reply = serde_json::json!({
            "config": {"name": "KV_b", "max_msgs_per_subject": 3, "max_msgs": -1, "max_bytes": 1024,
                       "max_age": 2_000_000_000i64, "num_replicas": 1, "discard": "old", "storage": "memory",
                       "allow_msg_ttl": true, "subject_delete_marker_ttl": 5_000_000_000i64},
            "state": {"messages": 4, "bytes": 300, "first_seq": 2, "last_seq": 9},
            "created": "2026-01-01T00:00:00.5Z",
            "ts": "2026-01-01T00:00:10Z"
        });
        let info = StreamInfo::parse(reply).unwrap();
        let facts = info.facts();
        assert_eq!((facts.first_sequence, facts.last_sequence), (2, 9));
        assert_eq!(facts.created_ms, Some(1_767_225_600_500));
        assert_eq!(facts.server_now_ms, Some(1_767_225_610_000));
        assert_eq!(facts.limits.max_age_ms, 2000);
        assert!(facts.limits.discard_old);
        let status = info.status("b");
        assert_eq!(status.config.max_history, Some(3));
        assert_eq!(status.config.storage, StorageType::Memory);
        assert_eq!(status.config.discard, DiscardPolicy::Old);
        assert_eq!(
            status.options.limit_marker_ttl,
            Some(Duration::from_secs(5))
        );
        assert!(status.retention.evicts_current_values);
        assert_eq!((status.values, status.bytes), (4, 300));
    }
}
