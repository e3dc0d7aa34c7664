//! Value types and the KV traits (`KvReader`, `KvWatcher`, `KvWriter`, `KvTtl`,
//! `KvPurge`, `KvFencedWriter`). Definitions only: no backend behaviour lives here.

mod config;
mod traits;
mod types;
mod version;

pub use config::{DiscardPolicy, StorageType, StoreConfig, StoreOptions};
pub use traits::{KvFencedWriter, KvPurge, KvReader, KvTtl, KvWatcher, KvWriter};
#[cfg(feature = "nats")]
pub(crate) use types::PERMISSION_DENIED_PREFIX;
pub use types::{BucketStatus, KvEntry, KvError, KvUpdate, LeaseFence, Retention};
pub use version::{VersionToken, WatchCursor};
