//! Reads on NATS (docs/nats-backend.md, "Reads and the listing consumer"): `entry`/`get` by
//! direct get, and the listing consumer behind `keys`, `scan` and `for_each_key`. Message
//! kinds come from `protocol::nats::wire_kind`, revisions from the ACK reply kernels.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::{HeaderMap, StatusCode};
use async_trait::async_trait;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::bucket::NatsBucket;
use super::consumer::{ConsumerSpec, Deliver, PushConsumer, Received};
use super::info::stream_info;
use super::request::{Failure, OP_TIMEOUT, api_once, read_error, request_once, with_retry};
use crate::kv::{KvEntry, KvError, KvReader, VersionToken};
use crate::protocol::nats::{
    ListingNext, ListingSync, ListingVerdict, MessageHeaders, WireKind, after_listing,
    listing_point, sentinel_filter, wire_kind,
};
use crate::protocol::refusal::{require_key, require_prefix};
use crate::protocol::subject::{filter_patterns, key_in_scope};

/// Silence after which the listing asks the server whether it is complete.
const LISTING_STALL_CHECK: Duration = Duration::from_secs(1);

/// The KV headers of a message, borrowed.
pub(crate) fn kv_headers(headers: Option<&HeaderMap>) -> MessageHeaders<'_> {
    let get = |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
    MessageHeaders {
        kv_operation: get("KV-Operation"),
        marker_reason: get("Nats-Marker-Reason"),
        msg_size: get("Nats-Msg-Size"),
    }
}

/// The latest message of a key as a direct get returns it.
pub(crate) struct Latest {
    pub(crate) revision: u64,
    pub(crate) kind: WireKind,
    pub(crate) entry: KvEntry,
}

fn unix_ms(text: &str) -> u64 {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
        .unwrap_or(0)
}

impl NatsBucket {
    /// The key's latest message of any kind (markers included), by direct get.
    pub(crate) async fn latest(&self, key: &str) -> Result<Option<Latest>, KvError> {
        let subject = format!(
            "$JS.API.DIRECT.GET.{}.{}",
            self.stream_name,
            self.subject(key)
        );
        let reply = with_retry(|bound| {
            let subject = subject.clone();
            async move {
                let message = request_once(&self.client, subject, None, Vec::new(), bound).await?;
                match message.status {
                    Some(StatusCode::NOT_FOUND) => Ok(None),
                    Some(status) => Err(Failure::text(format!(
                        "direct get failed: {status} {}",
                        message.description.as_deref().unwrap_or("")
                    ))),
                    None => Ok(Some(message)),
                }
            }
        })
        .await
        .map_err(|failure| read_error(failure, &self.name))?;
        let Some(message) = reply else {
            return Ok(None);
        };
        let headers = message.headers.as_ref();
        let revision = headers
            .and_then(|h| h.get("Nats-Sequence"))
            .and_then(|v| v.as_str().parse::<u64>().ok())
            .filter(|&r| r != 0)
            .ok_or_else(|| {
                KvError::OperationFailed(
                    "direct get reply without a readable Nats-Sequence".to_string(),
                )
            })?;
        let written_ms = headers
            .and_then(|h| h.get("Nats-Time-Stamp"))
            .map_or(0, |v| unix_ms(v.as_str()));
        let kind = wire_kind(&kv_headers(headers), message.payload.len() as u64);
        Ok(Some(Latest {
            revision,
            kind,
            entry: KvEntry {
                key: key.to_string(),
                value: message.payload.to_vec(),
                version: VersionToken::from_u64(revision).written_at(written_ms),
            },
        }))
    }

    /// The sync point of a listing (`protocol::nats::listing_point`) and its
    /// sentinel key: the stream's last sequence, read from the stream leader, and
    /// the key of the message there.
    async fn sync_point(&self) -> Result<(u64, Option<String>), KvError> {
        let facts = stream_info(&self.client, &self.name)
            .await
            .map_err(|failure| read_error(failure, &self.name))?
            .facts();
        let (first, last) = (facts.first_sequence, facts.last_sequence);
        if listing_point(first, last, true) == 0 {
            return Ok((0, None));
        }
        let api = format!("STREAM.MSG.GET.{}", self.stream_name);
        let body = serde_json::json!({ "seq": last });
        let reply = with_retry(|bound| {
            let (api, body) = (&api, &body);
            async move {
                match api_once(&self.client, api, body, bound).await {
                    Ok(reply) => Ok(Some(reply)),
                    Err(Failure::Js(facts)) if facts.err_code == NO_MESSAGE_FOUND => Ok(None),
                    Err(failure) => Err(failure),
                }
            }
        })
        .await
        .map_err(|failure| read_error(failure, &self.name))?;
        let key = reply.and_then(|reply| {
            let subject = reply.get("message")?.get("subject")?.as_str()?;
            subject
                .strip_prefix(&self.subject_prefix())
                .map(str::to_string)
        });
        Ok((listing_point(first, last, key.is_some()), key))
    }

    /// One listing attempt over `prefix`, calling `f` for every key whose latest
    /// message is a non-empty value, in revision order, and judging at the end
    /// whether the consumer's replica held everything written before the
    /// listing began (`protocol::nats::ListingSync`).
    async fn listing(
        &self,
        prefix: &str,
        headers_only: bool,
        f: &mut (dyn FnMut(KvEntry) + Send),
    ) -> Result<ListingVerdict, KvError> {
        require_prefix(prefix).map_err(KvError::OperationFailed)?;
        let (point, sentinel) = self.sync_point().await?;
        let patterns = filter_patterns(&[prefix]);
        let mut keys = patterns.clone();
        if let Some(sentinel) = sentinel {
            keys.extend(sentinel_filter(&sentinel, &patterns));
        }
        let filters: Vec<String> = keys
            .into_iter()
            .map(|p| format!("$KV.{}.{p}", self.name))
            .collect();
        let spec = ConsumerSpec {
            filters,
            deliver: Deliver::LastPerSubject,
            headers_only,
            description: "kvfold listing",
        };
        let mut consumer = PushConsumer::create(&self.client, &self.name, &spec)
            .await
            .map_err(|failure| read_error(failure, &self.name))?;
        let mut sync = ListingSync::new(point);
        let result = self
            .drain_listing(&mut consumer, prefix, &mut sync, f)
            .await;
        consumer.delete().await;
        result.map(|()| sync.verdict())
    }

    async fn drain_listing(
        &self,
        consumer: &mut PushConsumer,
        prefix: &str,
        sync: &mut ListingSync,
        f: &mut (dyn FnMut(KvEntry) + Send),
    ) -> Result<(), KvError> {
        let expected = consumer.pending_at_create;
        let key_prefix = self.subject_prefix();
        let mut received = 0u64;
        let mut silent_since = tokio::time::Instant::now();
        while received < expected {
            let message = match tokio::time::timeout(LISTING_STALL_CHECK, consumer.raw_next()).await
            {
                Ok(Some(message)) => message,
                Ok(None) => return Ok(()),
                Err(_) => {
                    // The pending count can be stale: ask whether anything is left.
                    let pending = consumer
                        .num_pending()
                        .await
                        .map_err(|f| read_error(f, &self.name))?;
                    if pending == 0 {
                        return Ok(());
                    }
                    if silent_since.elapsed() >= OP_TIMEOUT {
                        return Err(KvError::Timeout);
                    }
                    continue;
                }
            };
            silent_since = tokio::time::Instant::now();
            let fields = match consumer
                .receive(&message, tokio::time::Instant::now())
                .await
            {
                Ok(Received::Control) => continue,
                Ok(Received::Data(fields)) => fields,
                Err(text) => {
                    return Err(KvError::OperationFailed(format!(
                        "listing interrupted: {text}"
                    )));
                }
            };
            received += 1;
            if let Some(fields) = fields {
                sync.on_delivery(fields.stream_sequence);
            }
            let Some(key) = message.subject.as_str().strip_prefix(&key_prefix) else {
                continue;
            };
            if !key_in_scope(key, &[prefix]) {
                continue;
            }
            let headers = kv_headers(message.headers.as_ref());
            let len = headers
                .msg_size
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(message.payload.len() as u64);
            if wire_kind(&headers, len) != WireKind::Value {
                continue;
            }
            let version = match fields {
                Some(fields) => VersionToken::from_u64(fields.stream_sequence)
                    .written_at(fields.timestamp_ns.map_or(0, |ns| ns / 1_000_000)),
                None => VersionToken::unknown(),
            };
            f(KvEntry {
                key: key.to_string(),
                value: message.payload.to_vec(),
                version,
            });
            if fields.and_then(|d| d.pending) == Some(0) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Every key in scope with its latest value, by key: listing attempts until
    /// one is complete, each collected afresh (a stale attempt's keys are
    /// dropped, not merged).
    async fn sorted_listing(
        &self,
        prefix: &str,
        headers_only: bool,
    ) -> Result<Vec<KvEntry>, KvError> {
        let mut attempt = 1;
        loop {
            let mut by_key: BTreeMap<String, KvEntry> = BTreeMap::new();
            let mut keep = |entry: KvEntry| {
                let newer = by_key
                    .get(&entry.key)
                    .is_none_or(|old| old.version.as_u64() <= entry.version.as_u64());
                if newer {
                    by_key.insert(entry.key.clone(), entry);
                }
            };
            let verdict = self.listing(prefix, headers_only, &mut keep).await?;
            match after_listing(verdict, attempt, true) {
                ListingNext::Done => return Ok(by_key.into_values().collect()),
                ListingNext::Fail => return Err(stale_listing(&verdict)),
                ListingNext::ListAgain { after_ms } => {
                    tracing::debug!(
                        target: "kvfold::nats",
                        bucket = %self.name,
                        attempt,
                        ?verdict,
                        "listing consumer was behind the stream; listing again"
                    );
                    tokio::time::sleep(Duration::from_millis(after_ms)).await;
                    attempt += 1;
                }
            }
        }
    }
}

/// JetStream's "no message found" (`err_code` 10037).
const NO_MESSAGE_FOUND: i64 = 10037;

/// The error of a listing that never saw its sync point.
fn stale_listing(verdict: &ListingVerdict) -> KvError {
    let (point, highest) = match verdict {
        ListingVerdict::Stale { point, highest } => (*point, *highest),
        ListingVerdict::Complete => (0, 0),
    };
    KvError::OperationFailed(format!(
        "listing incomplete: the consumer's replica was behind the stream (saw up to \
         revision {highest} of {point}); retry"
    ))
}

#[async_trait]
impl KvReader for NatsBucket {
    async fn get(&self, key: &str) -> Result<Option<KvEntry>, KvError> {
        Ok(self.entry(key).await?.filter(|e| !e.value.is_empty()))
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        Ok(self
            .sorted_listing(prefix, true)
            .await?
            .into_iter()
            .map(|e| e.key)
            .collect())
    }

    async fn for_each_key(
        &self,
        prefix: &str,
        f: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), KvError> {
        // A last-per-subject consumer delivers each key once: memory stays bounded by one
        // key. Keys already passed cannot be taken back, so a stale attempt is an error
        // (the keys so far are a partial list), never a short answer.
        let mut each = |entry: KvEntry| f(entry.key);
        let verdict = self.listing(prefix, true, &mut each).await?;
        match after_listing(verdict, 1, false) {
            ListingNext::Done => Ok(()),
            ListingNext::Fail | ListingNext::ListAgain { .. } => Err(stale_listing(&verdict)),
        }
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<KvEntry>, KvError> {
        self.sorted_listing(prefix, false).await
    }

    async fn entry(&self, key: &str) -> Result<Option<KvEntry>, KvError> {
        require_key(key)?;
        Ok(self
            .latest(key)
            .await?
            .filter(|l| matches!(l.kind, WireKind::Value | WireKind::EmptyValue))
            .map(|l| l.entry))
    }
}
