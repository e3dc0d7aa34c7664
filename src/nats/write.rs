//! Writes on NATS (docs/nats-backend.md, "Writes"): every write is one publish with the KV
//! headers kvfold builds itself, awaited for its ack, so all writes share error
//! classification and retries. `create` over markers follows docs/nats-backend.md,
//! "Writes".

use std::time::Duration;

use async_nats::HeaderMap;
use async_trait::async_trait;
use serde_json::Value;

use super::bucket::NatsBucket;
use super::request::{Failure, facts_of_error_json, request_once, with_write_retry, write_error};
use crate::kv::{KvError, KvFencedWriter, KvPurge, KvTtl, KvWriter, LeaseFence, VersionToken};
use crate::protocol::nats::{
    CreateEvent, CreateOverMarkers, CreateStep, CreateVerdict, ErrorClass, TtlError,
    ttl_header_value,
};
use crate::protocol::refusal::{cas_revision, fence_revision, require_key as check_key};
use crate::protocol::subject::{MAX_VALUE_BYTES, value_len_is_valid};

const EXPECTED_SEQ: &str = "Nats-Expected-Last-Subject-Sequence";
const EXPECTED_SEQ_SUBJECT: &str = "Nats-Expected-Last-Subject-Sequence-Subject";

fn ttl_text(ttl: Duration) -> Result<String, KvError> {
    ttl_header_value(ttl).map_err(|e| match e {
        TtlError::TooShort => {
            KvError::OperationFailed(format!("ttl must be at least 1 s (got {ttl:?})"))
        }
        TtlError::TooLong => KvError::OperationFailed(e.to_string()),
    })
}

/// Parses a publish ack: the stream sequence, or the JetStream error.
fn ack_sequence(payload: &[u8]) -> Result<u64, Failure> {
    let reply: Value = serde_json::from_slice(payload)
        .map_err(|e| Failure::text(format!("unreadable publish ack: {e}")))?;
    if let Some(error) = reply.get("error") {
        return Err(Failure::Js(facts_of_error_json(error)));
    }
    reply
        .get("seq")
        .and_then(Value::as_u64)
        .filter(|&s| s != 0)
        .ok_or_else(|| Failure::text("publish ack without a sequence"))
}

impl NatsBucket {
    /// One publish to `$KV.<b>.<key>` with exactly these headers; retried only on
    /// retryable answers (nothing stored).
    async fn publish(
        &self,
        key: &str,
        headers: &[(&str, String)],
        payload: &[u8],
    ) -> Result<u64, Failure> {
        if !value_len_is_valid(payload.len()) {
            return Err(Failure::PayloadTooLarge(format!(
                "payload too large: a {}-byte value is over kvfold's {MAX_VALUE_BYTES}-byte value limit",
                payload.len()
            )));
        }
        let subject = self.subject(key);
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.as_str());
        }
        with_write_retry(|bound| {
            let map = map.clone();
            let subject = subject.clone();
            async move {
                let header = (!map.is_empty()).then_some(map);
                let message =
                    request_once(&self.client, subject, header, payload.to_vec(), bound).await?;
                ack_sequence(&message.payload)
            }
        })
        .await
    }

    async fn write(
        &self,
        key: &str,
        headers: &[(&str, String)],
        payload: &[u8],
        conflict: Option<KvError>,
    ) -> Result<VersionToken, KvError> {
        self.publish(key, headers, payload)
            .await
            .map(VersionToken::from_u64)
            .map_err(|failure| write_error(failure, &self.name, conflict))
    }

    /// `create` and `create_with_ttl` (docs/nats-backend.md, "Create over markers"):
    /// performs the steps of the `protocol::nats::CreateOverMarkers` policy
    /// (expected 0, then over a marker with the marker's revision); the TTL header
    /// goes on every attempt.
    async fn create_over_markers(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<String>,
    ) -> Result<VersionToken, KvError> {
        let headers_for = |expected: u64| {
            let mut headers = vec![(EXPECTED_SEQ, expected.to_string())];
            if let Some(ttl) = &ttl {
                headers.push(("Nats-TTL", ttl.clone()));
            }
            headers
        };
        let is_conflict = |f: &Failure| f.class() == Some(ErrorClass::Conflict);
        let (mut policy, mut step) = CreateOverMarkers::start();
        loop {
            let event = match step {
                CreateStep::Publish { expected } => {
                    match self.publish(key, &headers_for(expected), value).await {
                        Ok(seq) => CreateEvent::Published(seq),
                        Err(failure) if is_conflict(&failure) => CreateEvent::Conflict,
                        Err(failure) => return Err(write_error(failure, &self.name, None)),
                    }
                }
                CreateStep::ReadLatest => CreateEvent::Latest(
                    self.latest(key)
                        .await?
                        .map(|latest| (latest.kind, latest.revision)),
                ),
                CreateStep::Done(CreateVerdict::Created(seq)) => {
                    return Ok(VersionToken::from_u64(seq));
                }
                CreateStep::Done(CreateVerdict::AlreadyExists) => {
                    return Err(KvError::AlreadyExists);
                }
            };
            step = policy.on_event(event);
        }
    }

    fn fence_headers(&self, fence: &LeaseFence) -> Result<Vec<(&'static str, String)>, KvError> {
        let revision = fence_revision(fence, &self.name)?;
        Ok(vec![
            (EXPECTED_SEQ, revision.to_string()),
            (EXPECTED_SEQ_SUBJECT, self.subject(&fence.key)),
        ])
    }
}

#[async_trait]
impl KvWriter for NatsBucket {
    async fn put(&self, key: &str, value: &[u8]) -> Result<VersionToken, KvError> {
        check_key(key)?;
        self.write(key, &[], value, None).await
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        check_key(key)?;
        self.write(key, &[("KV-Operation", "DEL".to_string())], &[], None)
            .await
            .map(|_| true)
    }

    async fn create(&self, key: &str, value: &[u8]) -> Result<VersionToken, KvError> {
        check_key(key)?;
        self.create_over_markers(key, value, None).await
    }

    async fn update(
        &self,
        key: &str,
        value: &[u8],
        expected: &VersionToken,
    ) -> Result<VersionToken, KvError> {
        check_key(key)?;
        let expected = cas_revision(expected)?;
        self.write(
            key,
            &[(EXPECTED_SEQ, expected.to_string())],
            value,
            Some(KvError::RevisionMismatch),
        )
        .await
    }

    async fn delete_with_version(
        &self,
        key: &str,
        expected: &VersionToken,
    ) -> Result<bool, KvError> {
        check_key(key)?;
        let expected = cas_revision(expected)?;
        self.write(
            key,
            &[(EXPECTED_SEQ, expected.to_string())],
            &[],
            Some(KvError::RevisionMismatch),
        )
        .await
        .map(|_| true)
    }
}

#[async_trait]
impl KvPurge for NatsBucket {
    async fn purge(&self, key: &str) -> Result<(), KvError> {
        check_key(key)?;
        let headers = [
            ("KV-Operation", "PURGE".to_string()),
            ("Nats-Rollup", "sub".to_string()),
        ];
        self.write(key, &headers, &[], None).await.map(|_| ())
    }
}

#[async_trait]
impl KvTtl for NatsBucket {
    async fn put_with_ttl(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<VersionToken, KvError> {
        check_key(key)?;
        let ttl = ttl_text(ttl)?;
        let headers = [("Nats-TTL", ttl), ("Nats-Rollup", "sub".to_string())];
        self.write(key, &headers, value, None).await
    }

    async fn create_with_ttl(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<VersionToken, KvError> {
        check_key(key)?;
        let ttl = ttl_text(ttl)?;
        self.create_over_markers(key, value, Some(ttl)).await
    }
}

#[async_trait]
impl KvFencedWriter for NatsBucket {
    async fn put_fenced(
        &self,
        key: &str,
        value: &[u8],
        fence: &LeaseFence,
    ) -> Result<VersionToken, KvError> {
        check_key(key)?;
        let headers = self.fence_headers(fence)?;
        self.write(key, &headers, value, Some(KvError::RevisionMismatch))
            .await
    }

    async fn delete_fenced(&self, key: &str, fence: &LeaseFence) -> Result<bool, KvError> {
        check_key(key)?;
        let mut headers = self.fence_headers(fence)?;
        headers.push(("KV-Operation", "DEL".to_string()));
        self.write(key, &headers, &[], Some(KvError::RevisionMismatch))
            .await
            .map(|_| true)
    }
}
