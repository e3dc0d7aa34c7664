//! Watches on NATS (docs/nats-backend.md, "The watch loop"): a raw push consumer per watch
//! call, every delivery handed to the watch's `ResumeGuard`, and exactly the guard's
//! commands performed. The executor reports reconnects (the client's connect counter),
//! consumer faults and time; whether and from where to resume, and what a fault ends, is the
//! guard's decision (rows G16–G25), and when a silent consumer counts as lost is the push
//! tracker's (`protocol::nats::PushTracker`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::{Instant, Sleep};

use super::bucket::NatsBucket;
use super::consumer::{ConsumerSpec, Deliver, PushConsumer, Received};
use super::info::stream_info;
use super::read::kv_headers;
use super::request::{read_error, watch_error};
use crate::kv::{BucketStatus, KvError, KvUpdate, KvWatcher, Retention, WatchCursor};
use crate::protocol::nats::{Liveness, decode_kv_delivery, delivery_ack};
use crate::protocol::refusal::require_prefix;
use crate::protocol::resume::{GuardEvent, ResumeCursor, ResumeGuard, StreamFacts, guard_mode};
use crate::protocol::subject::{filter_patterns, key_in_scope};
use crate::protocol::time::Millis;
use crate::stores::guard_drive::{self, GuardIo};

/// How often the executor compares the client's connect counter while idle.
pub(crate) const RECONNECT_CHECK_MS: u64 = 5_000;

/// Most forwarded updates held back to be handed to the channel together: the
/// receiver is woken once per batch of what had already arrived, not once per
/// update (docs/decisions.md 95).
pub(crate) const OUTBOX_MAX_UPDATES: usize = 64;

/// What woke the streaming loop.
enum Wake {
    Closed,
    ReconnectCheck,
    Deadline,
    HeartbeatLost,
    Message(Option<async_nats::Message>),
}

/// The watch's I/O: its bucket, filters, consumer and the delivery in hand.
struct NatsWatchIo<'a> {
    bucket: &'a NatsBucket,
    prefixes: &'a [&'a str],
    filters: Vec<String>,
    consumer: Option<PushConsumer>,
    /// The update last handed to the guard, and whether it is in scope.
    held: Option<(KvUpdate, bool)>,
    /// Updates the guard forwarded, not yet in the channel (at most
    /// [`OUTBOX_MAX_UPDATES`]; sent before the watch waits, before any other guard
    /// command and at the end of the call).
    outbox: VecDeque<KvUpdate>,
    started: Instant,
    /// The client's counters, fetched once (read per message for reconnects).
    statistics: Arc<async_nats::Statistics>,
    connects: u64,
}

struct WatchRun<'a> {
    guard: ResumeGuard,
    io: NatsWatchIo<'a>,
}

impl NatsWatchIo<'_> {
    /// `at` on the guard's clock.
    fn millis_at(&self, at: Instant) -> Millis {
        let since = at.saturating_duration_since(self.started);
        Millis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }

    fn connects_now(&self) -> u64 {
        self.statistics.connects.load(Ordering::Relaxed)
    }

    /// Creates the watch's consumer delivering by `deliver` and keeps it: its
    /// pending count at create, or the failure's text for the guard.
    async fn create(&mut self, deliver: Deliver) -> Result<u64, String> {
        let spec = ConsumerSpec {
            filters: self.filters.clone(),
            deliver,
            headers_only: false,
            description: "kvfold watch",
        };
        match PushConsumer::create(&self.bucket.client, &self.bucket.name, &spec).await {
            Ok(consumer) => {
                let pending = consumer.pending_at_create;
                self.consumer = Some(consumer);
                Ok(pending)
            }
            Err(failure) => Err(super::request::failure_text(&failure)),
        }
    }
}

impl GuardIo for NatsWatchIo<'_> {
    const BACKEND: &'static str = "NATS";

    fn now(&self) -> Millis {
        self.millis_at(Instant::now())
    }

    fn bucket(&self) -> &str {
        &self.bucket.name
    }

    async fn probe(&mut self) -> Result<StreamFacts, KvError> {
        stream_info(&self.bucket.client, &self.bucket.name)
            .await
            .map(|info| info.facts())
            .map_err(|failure| watch_error(failure, &self.bucket.name))
    }

    async fn create_consumer(&mut self, start_sequence: u64) -> Result<(), String> {
        self.create(Deliver::From(start_sequence)).await.map(drop)
    }

    async fn create_snapshot_consumer(&mut self) -> Result<u64, String> {
        self.create(Deliver::LastPerSubject).await
    }

    async fn drop_consumer(&mut self) {
        self.held = None;
        if let Some(consumer) = self.consumer.take() {
            consumer.delete().await;
        }
    }

    async fn forward(&mut self, tx: &Sender<KvUpdate>) -> Option<Result<(), KvError>> {
        if let Some((update, in_scope)) = self.held.take()
            && in_scope
        {
            self.outbox.push_back(update);
            if self.outbox.len() >= OUTBOX_MAX_UPDATES {
                return self.flush(tx).await;
            }
        }
        None
    }

    async fn flush(&mut self, tx: &Sender<KvUpdate>) -> Option<Result<(), KvError>> {
        while let Some(update) = self.outbox.pop_front() {
            // Room in the channel: no wait, nothing to race (docs/decisions.md 95).
            let update = match tx.try_send(update) {
                Ok(()) => continue,
                Err(TrySendError::Closed(_)) => return Some(Ok(())),
                Err(TrySendError::Full(update)) => update,
            };
            tokio::select! {
                biased;
                () = tx.closed() => return Some(Ok(())),
                sent = tx.send(update) => {
                    if sent.is_err() {
                        return Some(Ok(()));
                    }
                }
            }
            // Time spent waiting on the application (back-pressure): the
            // tracker restarts its silence timer.
            if let Some(consumer) = self.consumer.as_mut() {
                consumer.paused();
            }
        }
        None
    }

    fn skip(&mut self) {
        self.held = None;
    }
}

/// A timer kept across the drive loop's turns (docs/decisions.md 95): registered
/// with the runtime once and moved only when a kernel's deadline comes before the
/// armed one, instead of a fresh timer per message. An alarm armed earlier than
/// the kernel's current deadline fires early; the kernel, judging the time
/// itself, finds nothing due, and the alarm is armed again for its deadline.
struct Alarm {
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl Alarm {
    fn new() -> Self {
        Self {
            // Not registered with the timer until first polled (only when armed).
            sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
            armed: None,
        }
    }

    /// Wants a wake-up at `deadline` (`None`: none wanted).
    fn arm(&mut self, deadline: Option<Instant>) {
        match deadline {
            None => self.armed = None,
            Some(at) => {
                if self.armed.is_none_or(|armed| at < armed) {
                    self.sleep.as_mut().reset(at);
                    self.armed = Some(at);
                }
            }
        }
    }

    fn is_armed(&self) -> bool {
        self.armed.is_some()
    }

    /// The alarm rang and was handled: the next turn arms it afresh.
    fn rang(&mut self) {
        self.armed = None;
    }
}

impl WatchRun<'_> {
    fn feed(&mut self, event: GuardEvent) {
        guard_drive::feed::<NatsWatchIo<'_>>(&mut self.guard, event);
    }

    /// Performs every queued guard command; `Some(result)` ends the call.
    async fn perform(&mut self, tx: &Sender<KvUpdate>) -> Option<Result<(), KvError>> {
        guard_drive::perform(&mut self.guard, &mut self.io, tx).await
    }

    /// Reports a grown connect counter to the guard (only while it streams).
    fn check_reconnect(&mut self) -> bool {
        let connects = self.io.connects_now();
        if connects != self.io.connects && self.guard.is_streaming() {
            self.io.connects = connects;
            let now = self.io.now();
            self.feed(GuardEvent::Reconnected { now });
            return true;
        }
        false
    }

    /// Reports a consumer fault (lost deliveries, silence) to the guard, with
    /// whether the client reconnected since the last report; the guard decides
    /// (G24 re-resume, G25 end the watch).
    fn fault(&mut self, error_text: String) {
        let connects = self.io.connects_now();
        let reconnected = connects != self.io.connects;
        self.io.connects = connects;
        tracing::debug!(bucket = %self.io.bucket.name, %error_text, reconnected, "watch consumer fault");
        let now = self.io.now();
        self.feed(GuardEvent::ConsumerFault {
            now,
            reconnected,
            error_text,
        });
    }

    async fn drive(&mut self, tx: &Sender<KvUpdate>) -> Result<(), KvError> {
        let mut reconnect_check = tokio::time::interval(Duration::from_millis(RECONNECT_CHECK_MS));
        reconnect_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // One waiter on the receiver's closing for the whole call, not one per wait.
        let closed = tx.closed();
        tokio::pin!(closed);
        let mut guard_alarm = Alarm::new();
        let mut heartbeat_alarm = Alarm::new();
        loop {
            if let Some(end) = self.perform(tx).await {
                return end;
            }
            // Nothing more has arrived: what was forwarded goes out before the wait.
            if let Some(end) = self.io.flush(tx).await {
                return end;
            }
            guard_alarm.arm(
                self.guard
                    .poll_timeout()
                    .map(|at| self.io.started + Duration::from_millis(at.0)),
            );
            heartbeat_alarm.arm(
                self.io
                    .consumer
                    .as_ref()
                    .and_then(PushConsumer::heartbeat_deadline),
            );
            let Some(consumer) = self.io.consumer.as_mut() else {
                // Streaming always has a consumer; without one there is nothing to wait for.
                return Err(KvError::WatchError("watch has no consumer".to_string()));
            };
            let guard_armed = guard_alarm.is_armed();
            let heartbeat_armed = heartbeat_alarm.is_armed();
            let wake = tokio::select! {
                biased;
                () = &mut closed => Wake::Closed,
                _ = reconnect_check.tick() => Wake::ReconnectCheck,
                // Messages already buffered come before the silence verdicts (the
                // guard's idle and snapshot-stall deadlines, heartbeats): a watch that
                // was held up by its receiver must not mistake the backlog for loss.
                next = consumer.raw_next() => Wake::Message(next),
                () = guard_alarm.sleep.as_mut(), if guard_armed => Wake::Deadline,
                () = heartbeat_alarm.sleep.as_mut(), if heartbeat_armed => Wake::HeartbeatLost,
            };
            let mut message = match wake {
                Wake::Closed => return Ok(()),
                Wake::ReconnectCheck => {
                    self.check_reconnect();
                    continue;
                }
                Wake::Deadline => {
                    guard_alarm.rang();
                    let now = self.io.now();
                    self.feed(GuardEvent::Tick { now });
                    continue;
                }
                Wake::HeartbeatLost => {
                    heartbeat_alarm.rang();
                    let connected = self.io.bucket.client.connection_state()
                        == async_nats::connection::State::Connected;
                    let Some(consumer) = self.io.consumer.as_mut() else {
                        continue;
                    };
                    if let Liveness::HeartbeatLost { silent_ms } =
                        consumer.heartbeat_timeout(connected)
                    {
                        self.fault(format!(
                            "watch consumer missed its heartbeats ({silent_ms} ms silent)"
                        ));
                    }
                    continue;
                }
                Wake::Message(None) => return Ok(()),
                Wake::Message(Some(message)) => message,
            };
            // Every message already buffered is taken before waiting again, as the
            // biased wait above would take it first anyway (docs/decisions.md 95).
            loop {
                if let Some(end) = self.delivered(&message, tx).await {
                    return end;
                }
                if let Some(end) = self.perform(tx).await {
                    return end;
                }
                let Some(consumer) = self.io.consumer.as_mut() else {
                    break;
                };
                match consumer.ready_next() {
                    Some(Some(next)) => message = next,
                    Some(None) => return Ok(()),
                    None => break,
                }
            }
        }
    }

    /// One message from the consumer: the push tracker's checks (sequence gaps,
    /// flow control, heartbeats), then the delivery decoded and handed to the
    /// guard. `Some(result)` ends the call.
    async fn delivered(
        &mut self,
        message: &async_nats::Message,
        tx: &Sender<KvUpdate>,
    ) -> Option<Result<(), KvError>> {
        // One clock read per message, for the tracker and the guard.
        let at = Instant::now();
        let Some(consumer) = self.io.consumer.as_mut() else {
            return Some(Err(KvError::WatchError(
                "watch has no consumer".to_string(),
            )));
        };
        let fields = match consumer.receive(message, at).await {
            Ok(Received::Control) => return None,
            Ok(Received::Data(fields)) => fields,
            Err(text) => {
                self.fault(text);
                return None;
            }
        };
        let reply = message.reply.as_deref();
        let update = decode_kv_delivery(
            &self.io.bucket.name,
            message.subject.as_str(),
            delivery_ack(reply, fields.as_ref()),
            &kv_headers(message.headers.as_ref()),
            &message.payload,
        )?;
        let in_scope = key_in_scope(update.key(), self.io.prefixes);
        let revision = update.version().as_u64();
        let written_ms = update.version().written_ms();
        self.io.held = Some((update, in_scope));
        let mut now = self.io.millis_at(at);
        if self.check_reconnect() {
            // A reconnect noticed with a delivery in hand is reported first and its
            // commands performed: a `DropConsumer` (G16, G22) drops the delivery with
            // the consumer and the new consumer delivers it again; without one (G17)
            // it is handed in below.
            if let Some(end) = self.perform(tx).await {
                return Some(end);
            }
            // Dropped with the consumer (G16, G22): nothing to hand in.
            self.io.held.as_ref()?;
            now = self.io.now();
        }
        self.feed(GuardEvent::Delivered {
            now,
            revision,
            written_ms,
        });
        None
    }
}

impl NatsBucket {
    async fn watch(
        &self,
        prefixes: &[&str],
        cursor: Option<&WatchCursor>,
        tx: Sender<KvUpdate>,
    ) -> Result<(), KvError> {
        for prefix in prefixes {
            require_prefix(prefix).map_err(KvError::WatchError)?;
        }
        if prefixes.is_empty() {
            return Ok(());
        }
        let filters: Vec<String> = filter_patterns(prefixes)
            .into_iter()
            .map(|p| format!("$KV.{}.{p}", self.name))
            .collect();
        let mode = guard_mode(prefixes);
        let started = Instant::now();
        // State-sync watches check their snapshot against a sync point (G18–G23):
        // a consumer answering from a replica behind the stream, or a reconnect in
        // the snapshot phase, syncs again instead of replaying history.
        let guard = match cursor.and_then(ResumeCursor::of) {
            Some(cursor) => ResumeGuard::resumed(cursor, mode, Millis(0)),
            None => ResumeGuard::syncing(mode, Millis(0)),
        };
        let statistics = self.client.statistics();
        let mut run = WatchRun {
            guard,
            io: NatsWatchIo {
                bucket: self,
                prefixes,
                filters,
                consumer: None,
                held: None,
                outbox: VecDeque::with_capacity(OUTBOX_MAX_UPDATES),
                started,
                connects: statistics.connects.load(Ordering::Relaxed),
                statistics,
            },
        };
        let mut result = run.drive(&tx).await;
        // Whatever ended the call, updates the guard forwarded are handed over
        // first (a receiver gone ends it cleanly, as in `forward`).
        if let Some(end) = run.io.flush(&tx).await {
            result = result.and(end);
        }
        run.io.drop_consumer().await;
        result
    }
}

#[async_trait]
impl KvWatcher for NatsBucket {
    async fn watch_all(&self, tx: Sender<KvUpdate>) -> Result<(), KvError> {
        self.watch(&[""], None, tx).await
    }

    async fn watch_prefix(&self, prefix: &str, tx: Sender<KvUpdate>) -> Result<(), KvError> {
        self.watch(&[prefix], None, tx).await
    }

    async fn watch_prefixes(&self, prefixes: &[&str], tx: Sender<KvUpdate>) -> Result<(), KvError> {
        self.watch(prefixes, None, tx).await
    }

    async fn watch_all_from(
        &self,
        cursor: &WatchCursor,
        tx: Sender<KvUpdate>,
    ) -> Result<(), KvError> {
        self.watch(&[""], Some(cursor), tx).await
    }

    async fn watch_prefix_from(
        &self,
        prefix: &str,
        cursor: &WatchCursor,
        tx: Sender<KvUpdate>,
    ) -> Result<(), KvError> {
        self.watch(&[prefix], Some(cursor), tx).await
    }

    async fn watch_prefixes_from(
        &self,
        prefixes: &[&str],
        cursor: &WatchCursor,
        tx: Sender<KvUpdate>,
    ) -> Result<(), KvError> {
        self.watch(prefixes, Some(cursor), tx).await
    }

    async fn retention(&self) -> Result<Option<Retention>, KvError> {
        let info = stream_info(&self.client, &self.name)
            .await
            .map_err(|failure| read_error(failure, &self.name))?;
        Ok(Some(info.retention()))
    }

    fn bucket_name(&self) -> Option<&str> {
        Some(&self.name)
    }

    async fn last_revision(&self) -> Result<Option<u64>, KvError> {
        Ok(self.status().await?.map(|s| s.last_revision))
    }

    async fn status(&self) -> Result<Option<BucketStatus>, KvError> {
        let info = stream_info(&self.client, &self.name)
            .await
            .map_err(|failure| read_error(failure, &self.name))?;
        Ok(Some(info.status(&self.name)))
    }
}
