//! The std/loom shim: structures that really share memory between threads take
//! their `Mutex` and atomics from here, so loom can explore their interleavings
//! when built with `--cfg kvfold_loom`. Nothing else belongs here.

// The atomics serve the connection-state cell, which only the NATS backend (and
// the test kit) compiles.
#[cfg(kvfold_loom)]
#[cfg_attr(not(any(feature = "nats", feature = "testkit")), allow(unused_imports))]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(kvfold_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(kvfold_loom))]
#[cfg_attr(not(any(feature = "nats", feature = "testkit")), allow(unused_imports))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(not(kvfold_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, recovering the data from a poisoned lock: every critical section
/// in kvfold leaves its data consistent before anything that can panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
