//! The embedded server: the bucket map, connection registry, fault rules and the
//! time-effect driver. It owns shared state and wiring only; bucket semantics are
//! the log core's and resume decisions are `protocol`'s.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

use super::clock::{Clock, TimeListener};
use super::faults::{FailRule, MemoryOp};
use super::log::BucketLog;
use super::registry::{BucketCell, QueueLimits};
use super::{MemoryConfig, MemoryConnection};
use crate::kv::KvError;
use crate::stores::EffectiveConfig;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The live state of one connection.
pub(crate) struct ConnInner {
    pub(crate) id: u64,
    pub(crate) server: MemoryServer,
    pub(crate) connected: AtomicBool,
    pub(crate) partitioned: AtomicBool,
    /// Reconnect epoch: grows on every `heal()` (plays a NATS client reconnect).
    pub(crate) epoch: AtomicU64,
}

impl ConnInner {
    pub(crate) fn is_partitioned(&self) -> bool {
        self.partitioned.load(Ordering::SeqCst)
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }
}

struct Buckets {
    map: BTreeMap<String, Arc<BucketCell>>,
    /// The newest stamp any deleted bucket handed out.
    retired_stamp_ms: u64,
}

pub(crate) struct ServerInner {
    pub(crate) config: MemoryConfig,
    buckets: Mutex<Buckets>,
    conns: Mutex<Vec<Weak<ConnInner>>>,
    next_conn: AtomicU64,
    rules: Mutex<VecDeque<FailRule>>,
    driver: Mutex<Option<tokio::task::JoinHandle<()>>>,
    driver_kick: Arc<Notify>,
    closed: Arc<AtomicBool>,
}

impl Drop for ServerInner {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        self.driver_kick.notify_one();
    }
}

impl TimeListener for ServerInner {
    fn on_time(&self, now_ms: u64) {
        self.run_due_at(now_ms);
    }
}

/// An in-process NATS-KV-equivalent server. Buckets live in it; several
/// connections on one server play several clients. Clones share one server.
#[derive(Clone)]
pub struct MemoryServer {
    pub(crate) inner: Arc<ServerInner>,
}

impl fmt::Debug for MemoryServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryServer")
            .field("buckets", &self.bucket_names())
            .field("config", &self.inner.config)
            .finish()
    }
}

impl MemoryServer {
    /// A new server with this configuration.
    pub fn new(config: MemoryConfig) -> Self {
        let inner = Arc::new(ServerInner {
            config,
            buckets: Mutex::new(Buckets {
                map: BTreeMap::new(),
                retired_stamp_ms: 0,
            }),
            conns: Mutex::new(Vec::new()),
            next_conn: AtomicU64::new(1),
            rules: Mutex::new(VecDeque::new()),
            driver: Mutex::new(None),
            driver_kick: Arc::new(Notify::new()),
            closed: Arc::new(AtomicBool::new(false)),
        });
        if let Some(manual) = inner.config.clock.as_manual() {
            let listener: Arc<dyn TimeListener> = Arc::clone(&inner) as Arc<dyn TimeListener>;
            manual.register(Arc::downgrade(&listener));
        }
        Self { inner }
    }

    /// A new connection to this server, not yet connected.
    pub fn connection(&self) -> MemoryConnection {
        let conn = Arc::new(ConnInner {
            id: self.inner.next_conn.fetch_add(1, Ordering::SeqCst),
            server: self.clone(),
            connected: AtomicBool::new(false),
            partitioned: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
        });
        let mut conns = lock(&self.inner.conns);
        conns.retain(|w| w.strong_count() > 0);
        conns.push(Arc::downgrade(&conn));
        MemoryConnection { inner: conn }
    }

    /// Faults scoped to every connection of this server.
    pub fn faults(&self) -> super::MemoryFaults {
        super::MemoryFaults::new(self.clone(), None)
    }

    /// The server's clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.inner.config.clock)
    }

    /// The names of every bucket, ascending.
    pub fn bucket_names(&self) -> Vec<String> {
        lock(&self.inner.buckets).map.keys().cloned().collect()
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.inner.config.clock.now_unix_ms()
    }

    pub(crate) fn max_payload(&self) -> usize {
        self.inner.config.max_payload
    }

    fn queue_limits(&self) -> QueueLimits {
        QueueLimits {
            len_max: self.inner.config.watch_len_max,
            bytes_max: self.inner.config.watch_bytes_max,
        }
    }

    /// The live bucket named `name`.
    pub(crate) fn bucket(&self, name: &str) -> Result<Arc<BucketCell>, KvError> {
        lock(&self.inner.buckets)
            .map
            .get(name)
            .cloned()
            .ok_or_else(|| KvError::OperationFailed(format!("bucket {name} not found")))
    }

    /// The bucket named `name` if it exists, without error mapping.
    pub(crate) fn find_bucket(&self, name: &str) -> Option<Arc<BucketCell>> {
        lock(&self.inner.buckets).map.get(name).cloned()
    }

    /// A creation stamp later than every stamp the server ever gave.
    fn creation_stamp(&self, buckets: &Buckets) -> u64 {
        let newest = buckets
            .map
            .values()
            .map(|cell| cell.last_stamp_ms())
            .chain(std::iter::once(buckets.retired_stamp_ms))
            .max()
            .unwrap_or(0);
        let now = self.now_ms();
        if newest == 0 {
            now
        } else {
            now.max(newest.saturating_add(1))
        }
    }

    /// Returns the bucket, creating it with `config` when it does not exist.
    pub(crate) fn get_or_create(&self, config: EffectiveConfig) -> Arc<BucketCell> {
        let mut buckets = lock(&self.inner.buckets);
        if let Some(cell) = buckets.map.get(&config.name) {
            return Arc::clone(cell);
        }
        let created = self.creation_stamp(&buckets);
        let name = config.name.clone();
        let cell = Arc::new(BucketCell::new(
            BucketLog::with_effective(config, created),
            self.queue_limits(),
        ));
        buckets.map.insert(name, Arc::clone(&cell));
        cell
    }

    /// Deletes the bucket; its live watches end with `WatchError`.
    pub(crate) fn delete_bucket(&self, name: &str) -> Result<Arc<BucketCell>, KvError> {
        let mut buckets = lock(&self.inner.buckets);
        let cell = buckets
            .map
            .remove(name)
            .ok_or_else(|| KvError::OperationFailed(format!("bucket {name} not found")))?;
        buckets.retired_stamp_ms = buckets.retired_stamp_ms.max(cell.last_stamp_ms());
        drop(buckets);
        cell.delete();
        Ok(cell)
    }

    /// Deletes and creates the bucket again with `config`, in one step.
    pub(crate) fn recreate_bucket(
        &self,
        name: &str,
        config: Option<EffectiveConfig>,
    ) -> Result<(), KvError> {
        let mut buckets = lock(&self.inner.buckets);
        let old = buckets
            .map
            .remove(name)
            .ok_or_else(|| KvError::OperationFailed(format!("bucket {name} not found")))?;
        buckets.retired_stamp_ms = buckets.retired_stamp_ms.max(old.last_stamp_ms());
        let config = config.unwrap_or_else(|| old.config());
        let created = self.creation_stamp(&buckets);
        let cell = Arc::new(BucketCell::new(
            BucketLog::with_effective(config, created),
            self.queue_limits(),
        ));
        buckets.map.insert(name.to_string(), cell);
        drop(buckets);
        old.delete();
        Ok(())
    }

    pub(crate) fn all_buckets(&self) -> Vec<Arc<BucketCell>> {
        lock(&self.inner.buckets).map.values().cloned().collect()
    }

    /// The live connections a fault scope covers.
    pub(crate) fn connections(&self, scope: Option<u64>) -> Vec<Arc<ConnInner>> {
        lock(&self.inner.conns)
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|c| scope.is_none_or(|id| c.id == id))
            .collect()
    }

    pub(crate) fn push_rule(&self, rule: FailRule) {
        lock(&self.inner.rules).push_back(rule);
    }

    pub(crate) fn clear_rules(&self, scope: Option<u64>) {
        lock(&self.inner.rules).retain(|r| scope.is_some() && r.scope != scope);
    }

    /// Consumes the oldest rule matching `op` for connection `conn`:
    /// `Err(e)` = fail before any effect; `Ok(Some(e))` = fail after the commit.
    pub(crate) fn gate(&self, conn: u64, op: MemoryOp) -> Result<Option<KvError>, KvError> {
        let mut rules = lock(&self.inner.rules);
        let Some(index) = rules
            .iter()
            .position(|r| r.scope.is_none_or(|id| id == conn) && r.op.covers(op))
        else {
            return Ok(None);
        };
        let rule = &mut rules[index];
        rule.remaining = rule.remaining.saturating_sub(1);
        let error = rule.error.clone();
        let after_commit = rule.after_commit && op.is_write();
        if rule.remaining == 0 {
            rules.remove(index);
        }
        if after_commit {
            Ok(Some(error))
        } else {
            Err(error)
        }
    }

    /// Applies every time effect due now on every bucket.
    pub(crate) fn run_due(&self) {
        self.inner.run_due_at(self.now_ms());
    }

    /// After a commit: make sure someone will apply the next deadline on time.
    pub(crate) fn kick_driver(&self, deadline: Option<u64>) {
        if deadline.is_none() || self.inner.config.clock.as_manual().is_some() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut driver = lock(&self.inner.driver);
        let running = driver.as_ref().is_some_and(|h| !h.is_finished());
        if !running {
            let weak = Arc::downgrade(&self.inner);
            let kick = Arc::clone(&self.inner.driver_kick);
            let closed = Arc::clone(&self.inner.closed);
            let clock = Arc::clone(&self.inner.config.clock);
            *driver = Some(runtime.spawn(drive_time(weak, kick, closed, clock)));
        }
        drop(driver);
        self.inner.driver_kick.notify_one();
    }
}

impl ServerInner {
    fn run_due_at(&self, now_ms: u64) {
        let cells: Vec<Arc<BucketCell>> = lock(&self.buckets).map.values().cloned().collect();
        for cell in cells {
            cell.run_due(now_ms);
        }
    }

    fn next_deadline_ms(&self) -> Option<u64> {
        let cells: Vec<Arc<BucketCell>> = lock(&self.buckets).map.values().cloned().collect();
        cells.iter().filter_map(|c| c.next_deadline_ms()).min()
    }
}

/// The time-effect driver of a server on a non-manual clock: sleeps until the
/// earliest deadline (re-armed by kicks) and applies what is due.
async fn drive_time(
    server: Weak<ServerInner>,
    kick: Arc<Notify>,
    closed: Arc<AtomicBool>,
    clock: Arc<dyn Clock>,
) {
    loop {
        if closed.load(Ordering::SeqCst) {
            return;
        }
        let deadline = match server.upgrade() {
            Some(inner) => inner.next_deadline_ms(),
            None => return,
        };
        match deadline {
            Some(at) => {
                tokio::select! {
                    () = clock.sleep_until(at) => {}
                    () = kick.notified() => continue,
                }
            }
            None => {
                kick.notified().await;
                continue;
            }
        }
        match server.upgrade() {
            Some(inner) => inner.run_due_at(clock.now_unix_ms()),
            None => return,
        }
    }
}
