//! kvfold (crate docs are written below).
#![forbid(unsafe_code)]
#![deny(unused_must_use)]
#![warn(missing_docs)]

#[cfg(feature = "conformance")]
pub mod conformance;
mod kv;
pub mod memory;
pub mod protocol;
mod stores;
mod sync;

pub use kv::{
    BucketStatus, KvEntry, KvError, KvFencedWriter, KvPurge, KvReader, KvTtl, KvUpdate, KvWatcher,
    KvWriter, LeaseFence, Retention, VersionToken, WatchCursor,
};
pub use memory::{MemoryConfig, MemoryConnection, MemoryFaults};
pub use stores::{
    Connection, ConnectionCapabilities, DiscardPolicy, KvStore, StorageType, StoreConfig,
    StoreOptions,
};
