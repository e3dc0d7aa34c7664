//! Deterministic simulation of `watch_applied` (docs/verification.md, "Deterministic
//! simulation"): the real executor over `MemoryConnection` with fault controls and a
//! fault-injecting `SnapshotStore` wrapper around `AppendLogSnapshot`, driven by one seed.

pub mod board;
pub mod compare;
pub mod node;
pub mod replica;
pub mod restore;
pub mod rng;
pub mod scenario;
pub mod sim;
pub mod store;
pub mod trace;
pub mod truth;
pub mod world;
