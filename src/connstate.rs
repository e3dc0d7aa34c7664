//! The health/handle state of a connection (docs/nats-backend.md, "Connection state"),
//! generic over the client handle so loom can drive it with fake clients. It owns the rule
//! that a late event of a replaced or shut-down client is inert; it performs no I/O and
//! knows nothing about NATS.

use crate::sync::{AtomicBool, AtomicU64, Mutex, Ordering, lock};

struct Slot<H> {
    handle: Option<H>,
    /// The attempt whose client is installed (or a fresh value no client carries).
    generation: u64,
}

/// Health flag plus installed handle of a connection.
///
/// Invariant (docs/verification.md row 11): under any interleaving of `install`, `shutdown`
/// and `on_event` calls of installed, losing and shut-down clients, `is_healthy()` implies
/// a handle is installed and no `Disconnected` event of that handle's client was handled
/// after it became healthy.
#[doc(hidden)]
pub struct ConnState<H> {
    slot: Mutex<Slot<H>>,
    healthy: AtomicBool,
    attempts: AtomicU64,
}

impl<H: Clone> Default for ConnState<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: Clone> ConnState<H> {
    /// No handle, unhealthy.
    pub fn new() -> Self {
        Self {
            slot: Mutex::new(Slot {
                handle: None,
                generation: 0,
            }),
            healthy: AtomicBool::new(false),
            attempts: AtomicU64::new(1),
        }
    }

    /// A fresh attempt number; no two attempts share one.
    pub fn next_generation(&self) -> u64 {
        self.attempts.fetch_add(1, Ordering::SeqCst)
    }

    /// The health flag (lock-free).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    /// True while a handle is installed.
    pub fn has_handle(&self) -> bool {
        lock(&self.slot).handle.is_some()
    }

    /// A clone of the installed handle.
    pub fn handle(&self) -> Option<H> {
        lock(&self.slot).handle.clone()
    }

    /// A client event of attempt `generation`: it changes the flag only while that
    /// attempt's client is the installed one.
    pub fn on_event(&self, generation: u64, connected: bool) {
        let slot = lock(&self.slot);
        if slot.generation == generation && slot.handle.is_some() {
            self.healthy.store(connected, Ordering::SeqCst);
        }
    }

    /// Installs the client of attempt `generation` unless another one is installed
    /// (then the new handle is handed back to be dropped; its events stay inert).
    /// The flag starts from `connected_now`, read under the lock, so an event the
    /// client fired before it was installed is not lost.
    pub fn install(
        &self,
        generation: u64,
        handle: H,
        connected_now: impl FnOnce(&H) -> bool,
    ) -> Result<(), H> {
        let mut slot = lock(&self.slot);
        if slot.handle.is_some() {
            return Err(handle);
        }
        let connected = connected_now(&handle);
        slot.handle = Some(handle);
        slot.generation = generation;
        self.healthy.store(connected, Ordering::SeqCst);
        Ok(())
    }

    /// Unhealthy, no handle, and a generation no client carries; returns the old
    /// handle so the caller drops it outside the lock.
    pub fn shutdown(&self) -> Option<H> {
        let fresh = self.next_generation();
        let mut slot = lock(&self.slot);
        self.healthy.store(false, Ordering::SeqCst);
        slot.generation = fresh;
        slot.handle.take()
    }
}
