//! `ExportLease`: "at most one export per round" across the replicas of a fold, by CAS on
//! one key (docs/protocols/export-lease.md). The executor of
//! `protocol::lease::LeaseMachine` and of the completion kernel
//! (`protocol::lease::completion_outcome`): it reads, writes and reports; the takeover
//! decision and what a completion's answer means are the kernels'.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::kv::{
    KvError, KvFencedWriter, KvReader, KvWriter, LeaseFence, VersionToken, WatchCursor,
};
use crate::protocol::lease::{
    CompletionOutcome, LeaseClock, LeaseCommand, LeaseEvent, LeaseMachine, LeaseOutcome,
    LeaseRecord, LeaseSighting, completion_outcome, completion_write, decode_lease_record,
};
use crate::protocol::time::Millis;
use crate::stores::KvStore;

/// How long past a record's own duration a takeover waits (clock-rate drift and the
/// one-second rounding of timestamps).
pub const DEFAULT_TAKEOVER_GRACE: Duration = Duration::from_secs(2);

/// Where a lease reads time; the default is the system clocks.
#[doc(hidden)]
#[cfg_attr(
    not(feature = "testkit"),
    allow(unreachable_pub, reason = "public under the testkit feature")
)]
pub trait LeaseClockSource: Send + Sync {
    /// Wall clock, Unix seconds; before the epoch → 0.
    fn now_unix(&self) -> u64;
    /// Monotonic milliseconds since a fixed origin.
    fn now(&self) -> Millis;
}

/// The system clocks.
struct SystemLeaseClock {
    origin: Instant,
}

impl LeaseClockSource for SystemLeaseClock {
    fn now_unix(&self) -> u64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs(),
            Err(_) => {
                tracing::warn!("the wall clock is before the Unix epoch; using 0");
                0
            }
        }
    }

    fn now(&self) -> Millis {
        Millis(u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Coordinates "at most one export per round" across every replica of a fold with a
/// compare-and-swap on one key whose value embeds the lease's expiry. Reuse one
/// `ExportLease` per key for the life of the process: its memory of what it saw is what
/// makes the local-observation rule work. The rules: docs/protocols/export-lease.md.
///
/// # Examples
///
/// Two replicas of a fold share a bucket of the embedded backend; in a round exactly one of
/// them wins and exports:
///
/// ```
/// use std::time::Duration;
///
/// use kvfold::{Connection, ExportLease, MemoryConnection, StoreConfig, VersionToken, WatchCursor};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), kvfold::KvError> {
/// let conn = MemoryConnection::new();
/// conn.connect().await?;
/// let bucket = conn
///     .store_with_config(StoreConfig { name: "fleet".into(), ..StoreConfig::default() })
///     .await?;
/// // One `ExportLease` per replica and key, kept for the life of the process.
/// let node_a = ExportLease::new(&*bucket, "export-lease", "node-a")?;
/// let node_b = ExportLease::new(&*bucket, "export-lease", "node-b")?;
///
/// let round = Duration::from_secs(60);
/// let guard = node_a.try_acquire(round).await?.expect("the first caller wins");
/// assert!(node_b.try_acquire(round).await?.is_none(), "the round is held");
///
/// // ... node a exports its fold here, then records what it exported; the
/// // lease stays held until the round's expiry ...
/// let exported = WatchCursor::from_version(VersionToken::from_u64(42));
/// guard.complete(&exported).await?;
/// let record = node_b.current().await?.expect("the lease record");
/// assert_eq!(record.holder_id, "node-a");
/// assert_eq!(record.completed_cursor_hex.as_deref(), Some("000000000000002a"));
/// assert!(node_b.try_acquire(round).await?.is_none());
///
/// // A holder that gives up abandons the round: the next caller wins at once.
/// let other = ExportLease::new(&*bucket, "other-lease", "node-a")?;
/// other.try_acquire(round).await?.expect("free").abandon().await;
/// let taken = ExportLease::new(&*bucket, "other-lease", "node-b")?;
/// assert!(taken.try_acquire(round).await?.is_some());
/// # Ok(())
/// # }
/// ```
pub struct ExportLease {
    reader: Arc<dyn KvReader>,
    writer: Arc<dyn KvWriter>,
    fenced: Option<Arc<dyn KvFencedWriter>>,
    bucket: String,
    key: String,
    holder_id: String,
    grace: Duration,
    clock: Arc<dyn LeaseClockSource>,
    sighting: Arc<Mutex<Option<LeaseSighting>>>,
}

impl std::fmt::Debug for ExportLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportLease")
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .field("holder_id", &self.holder_id)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ExportLease {
    /// A lease on `key` of `store` for `holder_id`; fails with `OperationFailed` when
    /// the store has no writer.
    pub fn new(
        store: &dyn KvStore,
        key: impl Into<String>,
        holder_id: impl Into<String>,
    ) -> Result<Self, KvError> {
        let key = key.into();
        let writer = store.writer().ok_or_else(|| {
            KvError::OperationFailed(format!(
                "store {} has no writer; an export lease needs compare-and-swap writes",
                store.name()
            ))
        })?;
        Ok(Self {
            reader: store.reader(),
            writer,
            fenced: store.fenced_writer(),
            bucket: store.name().to_string(),
            key,
            holder_id: holder_id.into(),
            grace: DEFAULT_TAKEOVER_GRACE,
            clock: Arc::new(SystemLeaseClock {
                origin: Instant::now(),
            }),
            sighting: Arc::new(Mutex::new(None)),
        })
    }

    /// Changes the takeover grace (default [`DEFAULT_TAKEOVER_GRACE`]).
    #[must_use]
    pub fn with_takeover_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Replaces the clocks (tests and simulation).
    #[cfg(feature = "testkit")]
    #[doc(hidden)]
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn LeaseClockSource>) -> Self {
        self.clock = clock;
        self
    }

    /// Tries to win this round: `Some(guard)` for exactly one caller per round,
    /// `None` for everyone else. `ttl` is the round period (whole seconds).
    pub async fn try_acquire(&self, ttl: Duration) -> Result<Option<LeaseGuard>, KvError> {
        if ttl < Duration::from_secs(1) {
            tracing::warn!(key = %self.key, ?ttl, "a lease ttl under one second yields an already expired lease");
        }
        let clock = LeaseClock {
            now_unix: self.clock.now_unix(),
            now: self.clock.now(),
        };
        let previous = lock(&self.sighting).clone();
        let mut machine = LeaseMachine::new(
            &self.holder_id,
            ttl.as_secs(),
            clock,
            previous,
            millis(self.grace),
        );
        let outcome = loop {
            let Some(command) = machine.poll_command() else {
                unreachable!("the lease machine always ends a round with Finish");
            };
            let event = match command {
                LeaseCommand::Create { value } => LeaseEvent::Created {
                    result: self.writer.create(&self.key, &value).await,
                },
                LeaseCommand::ReadEntry => LeaseEvent::EntryRead {
                    result: self.reader.entry(&self.key).await,
                },
                LeaseCommand::CasUpdate { value, expected } => LeaseEvent::Updated {
                    result: self.writer.update(&self.key, &value, &expected).await,
                },
                LeaseCommand::Finish(outcome) => break outcome,
            };
            // Judged with the clocks read after the answer arrived, never the
            // round's start (a stalled round would date its sighting too early).
            let arrived = LeaseClock {
                now_unix: self.clock.now_unix(),
                now: self.clock.now(),
            };
            if let Err(unexpected) = machine.handle_at(event, arrived) {
                panic!("export lease executor bug: {unexpected}");
            }
        };
        *lock(&self.sighting) = machine.sighting().cloned();
        match outcome {
            LeaseOutcome::Won { version, record } => Ok(Some(LeaseGuard {
                writer: Arc::clone(&self.writer),
                fenced: self.fenced.clone(),
                bucket: self.bucket.clone(),
                key: self.key.clone(),
                record,
                version,
                acquired: machine.acquired(),
                clock: Arc::clone(&self.clock),
                sighting: Arc::clone(&self.sighting),
                resolved: false,
            })),
            LeaseOutcome::Lost => {
                tracing::debug!(key = %self.key, decision = ?machine.decision(), "export lease not acquired");
                Ok(None)
            }
            LeaseOutcome::Failed(error) => Err(error),
        }
    }

    /// The current record, without judging liveness: `None` for an absent key, a
    /// marker or the abandon tombstone; `SerializationError` for junk.
    pub async fn current(&self) -> Result<Option<LeaseRecord>, KvError> {
        let Some(entry) = self.reader.get(&self.key).await? else {
            return Ok(None);
        };
        decode_lease_record(&entry.value).map(Some).ok_or_else(|| {
            KvError::SerializationError(format!(
                "lease key {} holds an unparseable value: {}",
                self.key,
                String::from_utf8_lossy(&entry.value)
            ))
        })
    }
}

/// Proof of a won round. Resolve it with [`complete`](LeaseGuard::complete) or
/// [`abandon`](LeaseGuard::abandon); dropping it unresolved logs a warning and the
/// fleet waits out the lease.
pub struct LeaseGuard {
    writer: Arc<dyn KvWriter>,
    fenced: Option<Arc<dyn KvFencedWriter>>,
    bucket: String,
    key: String,
    record: LeaseRecord,
    version: VersionToken,
    acquired: Millis,
    clock: Arc<dyn LeaseClockSource>,
    sighting: Arc<Mutex<Option<LeaseSighting>>>,
    resolved: bool,
}

impl std::fmt::Debug for LeaseGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseGuard")
            .field("key", &self.key)
            .field("version", &self.version)
            .field("record", &self.record)
            .finish()
    }
}

impl LeaseGuard {
    /// The record this guard wrote.
    pub fn record(&self) -> &LeaseRecord {
        &self.record
    }

    /// The lease key revision this guard holds.
    pub fn version(&self) -> &VersionToken {
        &self.version
    }

    /// A fence for writes that must fail once the lease moves (see `KvFencedWriter`).
    pub fn fence(&self) -> LeaseFence {
        LeaseFence {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            revision: self.version.clone(),
        }
    }

    /// The store's fenced writer, when the server supports fencing.
    pub fn fenced_writer(&self) -> Option<Arc<dyn KvFencedWriter>> {
        self.fenced.clone()
    }

    /// Releases the round at once with a CAS tombstone, so the next trigger can win.
    pub async fn abandon(mut self) {
        self.resolved = true;
        if let Err(error) = self
            .writer
            .delete_with_version(&self.key, &self.version)
            .await
        {
            tracing::warn!(key = %self.key, %error, "abandoning the export lease failed; the round waits out its expiry");
        }
    }

    /// Records the exported cursor (lowercase hex of its version) and keeps the lease
    /// until it expires; a lease lost meanwhile is tolerated. The write and the meaning
    /// of its answer are `protocol::lease::completion_write` and `completion_outcome`.
    pub async fn complete(mut self, cursor: &WatchCursor) -> Result<(), KvError> {
        self.resolved = true;
        let write = completion_write(&self.record, &self.version, cursor, self.clock.now_unix());
        let result = self
            .writer
            .update(&self.key, &write.value, &write.expected)
            .await;
        match completion_outcome(result, self.acquired) {
            CompletionOutcome::Recorded { sighting } => {
                *lock(&self.sighting) = Some(sighting);
                Ok(())
            }
            CompletionOutcome::Overran => {
                tracing::warn!(key = %self.key, "round overran its lease; completion record skipped");
                Ok(())
            }
            CompletionOutcome::Failed(error) => Err(error),
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if !self.resolved {
            tracing::warn!(
                key = %self.key,
                "export lease guard dropped without complete() or abandon(); the fleet waits out the lease"
            );
        }
    }
}
