//! A raw ephemeral push consumer (docs/nats-backend.md, "Reads and the listing consumer"
//! and "The watch loop"): subscribe first, then create the consumer, then read deliveries
//! while answering flow control and watching heartbeats. Every delivery's consumer sequence
//! goes through `protocol::nats::PushTracker`, so a dropped delivery is an error, never a
//! silent skip; the tracker also owns the heartbeat-loss deadline. This file only converts
//! `Instant` to `Millis` and performs the I/O.

use std::time::Duration;

use async_nats::{Client, Message, StatusCode, Subscriber};
use futures_util::{FutureExt as _, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::request::{Failure, api_once, with_retry};
use crate::protocol::nats::{
    ClientLink, DeliveryFields, Liveness, PushTracker, PushVerdict, parse_delivery,
};
use crate::protocol::time::Millis;

/// Idle heartbeat the server sends on a quiet consumer.
const IDLE_HEARTBEAT: Duration = Duration::from_secs(1);
/// Silence after which the consumer is taken for gone (three missed heartbeats):
/// a deleted bucket or consumer sends nothing more, so this is how a watch learns
/// of it.
pub(crate) const HEARTBEAT_LOSS_MS: u64 = 3_500;
/// Server-side cleanup of a consumer whose client went away.
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(300);
/// Bound on the consumer delete a dropped [`PushConsumer`] sends from a spawned task.
pub(crate) const DROP_DELETE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where delivery starts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Deliver {
    /// The last message of every matching subject, then new ones.
    LastPerSubject,
    /// Every message from this stream sequence (the server clamps a start below its first).
    From(u64),
}

/// What to create.
pub(crate) struct ConsumerSpec {
    /// Full filter subjects (`$KV.<b>.<pattern>`), at least one.
    pub(crate) filters: Vec<String>,
    pub(crate) deliver: Deliver,
    pub(crate) headers_only: bool,
    pub(crate) description: &'static str,
}

/// What one received message was.
pub(crate) enum Received {
    /// A data delivery: its reply subject's fields, read once here (`None` when
    /// unreadable); the message itself stays with the caller.
    Data(Option<DeliveryFields>),
    /// Flow control or heartbeat, handled.
    Control,
}

/// A live push consumer and its subscription.
pub(crate) struct PushConsumer {
    client: Client,
    stream: String,
    name: String,
    subscriber: Subscriber,
    tracker: PushTracker,
    /// Pending messages reported when the consumer was created.
    pub(crate) pending_at_create: u64,
    /// The zero of the tracker's `Millis` clock.
    epoch: Instant,
    /// Set once [`delete`](PushConsumer::delete) ran: `Drop` has nothing left to do.
    deleted: bool,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `kvfold_<unique inbox token>`: unique per consumer, and a legal consumer name
/// (the inbox's last token is alphanumeric).
fn consumer_name(inbox: &str) -> String {
    let token = inbox.rsplit('.').next().unwrap_or(inbox);
    let clean: String = token.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("kvfold_{clean}")
}

impl PushConsumer {
    /// Subscribes to a fresh inbox, then creates the consumer on `KV_<bucket>`.
    pub(crate) async fn create(
        client: &Client,
        bucket: &str,
        spec: &ConsumerSpec,
    ) -> Result<Self, Failure> {
        let stream = format!("KV_{bucket}");
        let inbox = client.new_inbox();
        let subscriber = client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| Failure::text(format!("subscribe failed: {e}")))?;
        let mut config = json!({
            "deliver_subject": inbox,
            "ack_policy": "none",
            "replay_policy": "instant",
            "flow_control": true,
            "idle_heartbeat": nanos(IDLE_HEARTBEAT),
            "inactive_threshold": nanos(INACTIVE_THRESHOLD),
            "mem_storage": true,
            "num_replicas": 1,
            "max_deliver": 1,
            "headers_only": spec.headers_only,
            "description": spec.description,
        });
        let object = config
            .as_object_mut()
            .expect("json! of an object is an object");
        match spec.deliver {
            Deliver::LastPerSubject => {
                object.insert("deliver_policy".into(), json!("last_per_subject"));
            }
            Deliver::From(start) => {
                object.insert("deliver_policy".into(), json!("by_start_sequence"));
                object.insert("opt_start_seq".into(), json!(start));
            }
        }
        if let [single] = spec.filters.as_slice() {
            object.insert("filter_subject".into(), json!(single));
        } else {
            object.insert("filter_subjects".into(), json!(spec.filters));
        }
        // Every attempt gets a fresh client-chosen name, and every name sent is
        // remembered, so that the consumers of attempts not kept (a reply lost, a
        // retry, this future dropped while a create is in flight) are deleted.
        // One name for all attempts would make a re-send find the consumer the
        // first attempt made, which during an election may sit on a dead peer and
        // stall its listing for the whole deadline (docs/decisions.md 61).
        let base = consumer_name(&inbox);
        let mut sent = SentNames::new(client, &stream);
        let body = json!({ "stream_name": stream, "config": config });
        let (reply, name) = with_retry(|bound| {
            let name = format!("{base}_{}", sent.names.len());
            sent.names.push(name.clone());
            let mut body = body.clone();
            body["config"]["name"] = json!(name);
            let api = format!("CONSUMER.CREATE.{stream}.{name}");
            let client = client.clone();
            async move {
                api_once(&client, &api, &body, bound)
                    .await
                    .map(|reply| (reply, name))
            }
        })
        .await?;
        if reply.get("name").and_then(Value::as_str) != Some(name.as_str()) {
            return Err(Failure::text(
                "consumer create reply without the consumer's name",
            ));
        }
        sent.keep(&name);
        let pending_at_create = reply
            .get("num_pending")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Ok(Self {
            client: client.clone(),
            stream,
            name,
            subscriber,
            tracker: PushTracker::new(HEARTBEAT_LOSS_MS, Millis(0)),
            pending_at_create,
            epoch: Instant::now(),
            deleted: false,
        })
    }

    /// Now on the tracker's clock.
    fn now(&self) -> Millis {
        self.millis_at(Instant::now())
    }

    /// `at` on the tracker's clock (the executor reads the clock once per message).
    fn millis_at(&self, at: Instant) -> Millis {
        let since = at.saturating_duration_since(self.epoch);
        Millis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }

    /// The executor did not read between the last message and now (it waited on
    /// the application); the tracker restarts its silence timer.
    pub(crate) fn paused(&mut self) {
        let now = self.now();
        self.tracker.on_paused(now);
    }

    /// The tracker's heartbeat-loss deadline as an `Instant`.
    pub(crate) fn heartbeat_deadline(&self) -> Option<Instant> {
        self.tracker
            .poll_timeout()
            .map(|at| self.epoch + Duration::from_millis(at.0))
    }

    /// The heartbeat-loss deadline passed: the tracker's verdict, given whether the
    /// client is connected.
    pub(crate) fn heartbeat_timeout(&mut self, connected: bool) -> Liveness {
        let link = if connected {
            ClientLink::Connected
        } else {
            ClientLink::Away
        };
        let now = self.now();
        self.tracker.handle_timeout(now, link)
    }

    /// The next raw message of the subscription (cancel-safe); `None` when it ended.
    pub(crate) async fn raw_next(&mut self) -> Option<Message> {
        self.subscriber.next().await
    }

    /// The next raw message if one is already buffered, without waiting:
    /// `Some(Some(message))`, `Some(None)` when the subscription ended, `None` when
    /// nothing is buffered (or the task's cooperative budget is spent). The caller
    /// waits on [`raw_next`](Self::raw_next) before it sleeps, so no wake-up is lost.
    pub(crate) fn ready_next(&mut self) -> Option<Option<Message>> {
        self.subscriber.next().now_or_never()
    }

    /// Classifies and handles one raw message received at `at`: answers flow
    /// control, checks heartbeats and consumer sequences. `Err` = the consumer can
    /// no longer guarantee complete, ordered delivery.
    pub(crate) async fn receive(
        &mut self,
        message: &Message,
        at: Instant,
    ) -> Result<Received, String> {
        let now = self.millis_at(at);
        match message.status {
            None => {
                let fields = message.reply.as_deref().and_then(parse_delivery);
                match fields {
                    Some(f) => {
                        if let PushVerdict::Gap { expected, got } =
                            self.tracker.on_message(now, f.consumer_sequence)
                        {
                            return Err(format!(
                                "push consumer lost deliveries: expected consumer sequence {expected}, got {got}"
                            ));
                        }
                    }
                    None => self.tracker.on_unreadable(now),
                }
                Ok(Received::Data(fields))
            }
            Some(StatusCode::IDLE_HEARTBEAT) => {
                // Flow control and heartbeats alike show the consumer alive.
                self.tracker.on_control(now);
                if let Some(reply) = message.reply.clone() {
                    // Flow control request: answer it so the server keeps sending.
                    self.client
                        .publish(reply, Vec::new().into())
                        .await
                        .map_err(|e| format!("flow control reply failed: {e}"))?;
                    return Ok(Received::Control);
                }
                let headers = message.headers.as_ref();
                if let Some(stalled) = headers.and_then(|h| h.get("Nats-Consumer-Stalled")) {
                    self.client
                        .publish(stalled.as_str().to_string(), Vec::new().into())
                        .await
                        .map_err(|e| format!("flow control reply failed: {e}"))?;
                }
                let last = headers
                    .and_then(|h| h.get("Nats-Last-Consumer"))
                    .and_then(|v| v.as_str().parse::<u64>().ok());
                match self.tracker.on_heartbeat(now, last) {
                    PushVerdict::InOrder => Ok(Received::Control),
                    PushVerdict::Gap { expected, got } => Err(format!(
                        "push consumer lost deliveries (heartbeat): expected consumer sequence {expected}, server is at {got}"
                    )),
                }
            }
            Some(status) => {
                self.tracker.on_control(now);
                Err(format!(
                    "push consumer ended: {status} {}",
                    message.description.as_deref().unwrap_or("")
                ))
            }
        }
    }

    /// Deletes the consumer, best effort (a failure only warns; the inactive
    /// threshold removes it later).
    pub(crate) async fn delete(mut self) {
        self.deleted = true;
        let api = format!("CONSUMER.DELETE.{}.{}", self.stream, self.name);
        let result = api_once(&self.client, &api, &json!({}), DROP_DELETE_TIMEOUT).await;
        if let Err(failure) = result {
            tracing::debug!(consumer = %self.name, ?failure, "consumer delete failed; the server removes it later");
        }
    }

    /// The consumer's current `num_pending` (for the listing's stall check).
    pub(crate) async fn num_pending(&self) -> Result<u64, Failure> {
        let api = format!("CONSUMER.INFO.{}.{}", self.stream, self.name);
        let empty = json!({});
        let reply = with_retry(|bound| api_once(&self.client, &api, &empty, bound)).await?;
        Ok(reply
            .get("num_pending")
            .and_then(Value::as_u64)
            .unwrap_or(0))
    }
}

/// A consumer dropped without [`delete`](PushConsumer::delete) (its watch or listing
/// future was dropped mid-stream) is deleted from a task spawned on the current
/// tokio runtime, bounded by [`DROP_DELETE_TIMEOUT`]; `Drop` never blocks. Outside a
/// runtime, or when the delete fails, the server's inactive threshold removes it.
impl Drop for PushConsumer {
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(consumer = %self.name, "consumer dropped outside a runtime; the server removes it later");
            return;
        };
        spawn_delete(&runtime, &self.client, &self.stream, &self.name);
    }
}

/// Deletes consumer `name` of `stream` from a task spawned on `runtime`, bounded by
/// [`DROP_DELETE_TIMEOUT`]; a failure only logs (the inactive threshold removes it).
fn spawn_delete(runtime: &tokio::runtime::Handle, client: &Client, stream: &str, name: &str) {
    let client = client.clone();
    let name = name.to_string();
    let api = format!("CONSUMER.DELETE.{stream}.{name}");
    runtime.spawn(async move {
        let result = api_once(&client, &api, &json!({}), DROP_DELETE_TIMEOUT).await;
        if let Err(failure) = result {
            tracing::debug!(consumer = %name, ?failure, "delete of an abandoned consumer failed; the server removes it later");
        }
    });
}

/// The names a consumer create sent, one per attempt. Dropped, it deletes every
/// one of them except the one kept (best effort, from spawned tasks, bounded; a
/// name the server never created costs one "not found" answer).
struct SentNames {
    client: Client,
    stream: String,
    names: Vec<String>,
    kept: Option<String>,
}

impl SentNames {
    fn new(client: &Client, stream: &str) -> Self {
        Self {
            client: client.clone(),
            stream: stream.to_string(),
            names: Vec::new(),
            kept: None,
        }
    }

    /// `name` became the live consumer: it is not deleted.
    fn keep(&mut self, name: &str) {
        self.kept = Some(name.to_string());
    }
}

impl Drop for SentNames {
    fn drop(&mut self) {
        let abandoned: Vec<&String> = self
            .names
            .iter()
            .filter(|name| self.kept.as_ref() != Some(*name))
            .collect();
        if abandoned.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(consumers = ?abandoned, "consumer create abandoned outside a runtime; the server removes them later");
            return;
        };
        for name in abandoned {
            spawn_delete(&runtime, &self.client, &self.stream, name);
        }
    }
}
