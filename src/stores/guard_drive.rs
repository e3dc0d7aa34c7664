//! The resume guard's command loop, written once for every backend's watch (crate docs,
//! "Driving a sans-IO machine", steps 2, 3 and 7): each `GuardCommand` is performed
//! completely through the backend's [`GuardIo`], in order, and its completion is fed back
//! to the `ResumeGuard`. A backend's watch file holds only the I/O (probe, create a
//! consumer, drop it, forward the delivery in hand) and its own wait for the next input.

use tokio::sync::mpsc::Sender;

use crate::kv::{KvError, KvUpdate};
use crate::protocol::resume::{GuardCommand, GuardEvent, ResumeGuard, StreamFacts};
use crate::protocol::time::Millis;

/// The I/O a backend performs for its watch's `ResumeGuard`. Each method does one
/// command's work and reports its outcome; none of them decides anything.
pub(crate) trait GuardIo {
    /// The backend's name in executor-bug panics (`"NATS"`, `"memory"`).
    const BACKEND: &'static str;

    /// The caller's time for the next event.
    fn now(&self) -> Millis;

    /// The bucket's name, for the expiry warning.
    fn bucket(&self) -> &str;

    /// `ProbeStream`: fresh stream facts, or the error that ends the watch.
    async fn probe(&mut self) -> Result<StreamFacts, KvError>;

    /// `CreateConsumer`: a consumer delivering from `start_sequence`, kept as the
    /// watch's consumer; `Err` carries the server's text.
    async fn create_consumer(&mut self, start_sequence: u64) -> Result<(), String>;

    /// `CreateSnapshotConsumer`: a last-per-subject consumer, kept as the watch's
    /// consumer; `Ok` is the number of deliveries its snapshot holds.
    async fn create_snapshot_consumer(&mut self) -> Result<u64, String>;

    /// `DropConsumer`: drop the consumer and any delivery not yet handed in.
    async fn drop_consumer(&mut self);

    /// `Forward`: send the delivery in hand (if in scope); `Some(end)` when the
    /// watch ends while sending (the receiver went away, or the backend ended it).
    async fn forward(&mut self, tx: &Sender<KvUpdate>) -> Option<Result<(), KvError>>;

    /// `Skip`: drop the delivery in hand.
    fn skip(&mut self);

    /// Hands over every update `forward` queued but has not sent yet (a backend
    /// that batches its hand-off); `Some(end)` as for `forward`. [`perform`] calls
    /// it before every command other than `Forward` and `Skip`, so that nothing
    /// the guard vouched for is held back across a probe, a consumer change or
    /// the end of the watch. Backends that send in `forward` have nothing queued.
    async fn flush(&mut self, _tx: &Sender<KvUpdate>) -> Option<Result<(), KvError>> {
        None
    }
}

/// Feeds `event` to `guard`. The drive loops feed only events the guard's phase
/// accepts, so a rejection is an executor bug (step 7).
pub(crate) fn feed<I: GuardIo>(guard: &mut ResumeGuard, event: GuardEvent) {
    if let Err(unexpected) = guard.handle(event) {
        panic!("{} watch executor bug: {unexpected}", I::BACKEND);
    }
}

/// Performs every queued guard command in order, feeding each completion back
/// (steps 2 and 3); `Some(result)` ends the watch call.
pub(crate) async fn perform<I: GuardIo>(
    guard: &mut ResumeGuard,
    io: &mut I,
    tx: &Sender<KvUpdate>,
) -> Option<Result<(), KvError>> {
    while let Some(command) = guard.poll_command() {
        if !matches!(command, GuardCommand::Forward | GuardCommand::Skip { .. })
            && let Some(end) = io.flush(tx).await
        {
            return Some(end);
        }
        match command {
            GuardCommand::ProbeStream => {
                let probed = io.probe().await;
                let now = io.now();
                feed::<I>(
                    guard,
                    match probed {
                        Ok(facts) => GuardEvent::StreamProbed { now, facts },
                        Err(error) => GuardEvent::ProbeFailed { now, error },
                    },
                );
            }
            GuardCommand::CreateConsumer { start_sequence } => {
                let created = io.create_consumer(start_sequence).await;
                let now = io.now();
                feed::<I>(
                    guard,
                    match created {
                        Ok(()) => GuardEvent::ConsumerCreated { now },
                        Err(error_text) => GuardEvent::ConsumerFailed { now, error_text },
                    },
                );
            }
            GuardCommand::CreateSnapshotConsumer => {
                let created = io.create_snapshot_consumer().await;
                let now = io.now();
                feed::<I>(
                    guard,
                    match created {
                        Ok(pending) => GuardEvent::SnapshotCreated { now, pending },
                        Err(error_text) => GuardEvent::ConsumerFailed { now, error_text },
                    },
                );
            }
            GuardCommand::DropConsumer => io.drop_consumer().await,
            GuardCommand::Forward => {
                if let Some(end) = io.forward(tx).await {
                    return Some(end);
                }
            }
            GuardCommand::Skip { .. } => io.skip(),
            GuardCommand::Expired(cause) => {
                tracing::warn!(bucket = io.bucket(), %cause, "watch cursor expired");
                io.drop_consumer().await;
                return Some(Err(KvError::CursorExpired));
            }
            GuardCommand::Fail(error) => {
                io.drop_consumer().await;
                return Some(Err(error));
            }
        }
    }
    None
}
