//! Shared helpers for integration tests. Include with `mod common;`.

#[cfg(feature = "nats")]
pub mod nats;

#[cfg(all(feature = "nats", feature = "conformance"))]
pub mod hooks;

pub mod config;
pub mod expiring;
pub mod fold;
pub mod prop;
pub mod repair;
pub mod scripted;
pub mod state_sync;
pub mod store;
pub mod updates;
pub mod wait;
pub mod watch;
pub mod workload;
