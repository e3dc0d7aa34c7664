//! # kvfold
//!
//! A backend-agnostic key-value API for services that keep a durable local copy
//! ("fold") of a NATS JetStream key-value bucket, with an embedded in-process
//! backend as the default.
//!
//! ## Layers
//!
//! ```text
//!  watch_applied, ExportLease, ExpiryRepair                         the fold loop and its helpers
//!  MemoryConnection (embedded, default)  NatsConnection (feature    executors feeding `protocol`
//!  `nats`)  AppendLogSnapshot, artifacts (snapshot stores on disk)
//!  KvStore, Connection                                              bucket handles, lifecycle, capabilities
//!  protocol: pure kernels and sans-IO machines (ResumeGuard, …)     every decision that protects data
//!  KvReader  KvWatcher  KvWriter  KvTtl  KvPurge  KvFencedWriter    the KV traits and value types
//! ```
//!
//! Each layer uses only the layers below it; `tests/layering.rs` enforces it
//! (docs/architecture.md, "Layers").
//!
//! Every decision that protects data lives in [`protocol`] as a pure function or a
//! sans-IO state machine: no I/O, no clock, no locks, no async. Backends are thin
//! executors that feed real events into those machines and carry out the commands
//! they return. The verifiers (loom, proptest) drive the same code.
//!
//! ## Quickstart (embedded backend, no server)
//!
//! ```
//! use kvfold::{Connection, KvError, MemoryConnection, StoreConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), KvError> {
//! let conn = MemoryConnection::new();
//! conn.connect().await?;
//! let store = conn.store("settings").await?;
//! let writer = store.writer().expect("memory buckets are writable");
//! let v1 = writer.put("color", b"blue").await?;
//! // Compare-and-swap: only the holder of the latest version wins.
//! writer.update("color", b"green", &v1).await?;
//! assert_eq!(writer.update("color", b"red", &v1).await, Err(KvError::RevisionMismatch));
//! let entry = store.reader().get("color").await?.expect("present");
//! assert_eq!(entry.value, b"green");
//! # Ok(())
//! # }
//! ```
//!
//! ## Driving a sans-IO machine (the drive-loop contract)
//!
//! Every machine in [`protocol`] is driven the same way; the executors do exactly
//! this and nothing else (here for [`protocol::resume::ResumeGuard`], which every
//! backend's watch drives):
//!
//! 1. Build the machine with the caller's `now` (`ResumeGuard::resumed` for a
//!    `_from` watch with a usable cursor, `ResumeGuard::syncing` for a state-sync watch;
//!    `ResumeGuard::fresh` is the older state-sync guard without the snapshot check).
//! 2. Poll commands with `poll_command()` and perform each completely, in order:
//!    `ProbeStream` reads fresh stream facts, `CreateConsumer` subscribes at the given
//!    sequence, `CreateSnapshotConsumer` subscribes last-per-subject, `DropConsumer` drops the subscription and anything not yet handed in,
//!    `Forward` sends the last delivered update, `Skip` drops it, `Expired` and `Fail`
//!    end the watch with `CursorExpired` or the given error.
//! 3. Feed the completion of every command that has one (`StreamProbed` /
//!    `ProbeFailed`, `ConsumerCreated` / `SnapshotCreated` / `ConsumerFailed`) with
//!    `handle`, then go back to 2.
//! 4. While streaming, hand every delivery to `handle(Delivered { .. })` before sending
//!    anything, then go back to 2.
//! 5. When the client reconnected since the last check (memory: `MemoryFaults::heal`),
//!    feed `Reconnected` while the guard is streaming, then go back to 2.
//! 6. Sleep until `poll_timeout()` (if any), a delivery, or a dropped receiver; on the
//!    deadline feed `Tick { now }`.
//! 7. `handle` returning `Err(Unexpected)` is an executor bug: the executor fed an
//!    event the machine's phase does not accept.
//!
//! Time always comes in as an argument; machines report their next deadline.
//!
//! ## The fold loop (`watch_applied`)
//!
//! [`watch_applied`] drives [`protocol::fold::FoldMachine`] the same way, exactly
//! as follows, and takes no decision of its own:
//!
//! 1. **Drain commands.** Perform every command in order: `SetTimer` re-arms the
//!    single window timer, `Apply` calls `apply`, `StoreApply` moves the store into a
//!    blocking task and leaves it in flight (its `StoreApplied` — committed, failed
//!    with the batch handed back, or lost on a panic — is fed when the select sees it
//!    finish or when the machine waits for it), `OnApplied` calls `on_applied`, `RunExport` exports
//!    on a blocking task and feeds `ExportFinished`, `ReplyExport` answers the request,
//!    `AnswerExpiry` tells the watch task what to do about its expired cursor
//!    (hand it to the repair machine, or refuse), the repair commands (`DiffRelist`,
//!    `DiffRestore`, `FilterListedLive`, `ReadRetention`, `NextChunk`) run the repair
//!    I/O on blocking tasks holding the store and feed `RepairIo`, `DropRestored`,
//!    `AckRelist` and `ReplyRestore` answer the watch task, `Finish` aborts the
//!    watch task and ends the loop.
//! 2. **Drain notices** into `tracing` events (target `kvfold::fold`).
//! 3. **Ask `wants()`**: `Nothing` ends the loop; `Completion(Store)` awaits the
//!    store apply in flight; `Backlog` takes one queued update (or feeds
//!    `BacklogDrained`); `Any` feeds a finished store apply or the next update already
//!    taken from the channel, else waits on a biased select — shutdown, the window
//!    deadline, repair requests from the watch task (feeds `RepairRequested`),
//!    export requests, the watch task's expiry report (feeds `WatchExpired`), the
//!    store apply in flight, updates taken with `recv_many` (a
//!    closed update channel feeds `WatchEnded` with the watch task's outcome).
//! 4. Every event carries `now`, the milliseconds since the loop started.
//! 5. `handle` returning `Err(Unexpected)` is an executor bug: panic.
//!
//! The fold's watch task drives [`protocol::repair::RepairMachine`] the same way:
//! perform each command (`ReadRetention`, `StartWatch`, `SendEvicting`, `SendRelist`
//! and wait for the ack, `PeekLatest`, `FetchArtifact`, `DropFetched`, `SendRestore`
//! and wait for the reply, `Finish`), log each notice at the level it carries
//! (target `kvfold::repair`), and while the machine watches, wait on the watch and on
//! `poll_timeout()`. An expired resume goes to the fold loop's identity check first.
//!
//! ## Crate features
//!
//! - `nats` (default): the NATS JetStream backend (`NatsConnection`).
//! - `conformance`: the reusable backend checks in `kvfold::conformance`.
//! - `model-check`: the Stateright models (`cargo test --features model-check`).
//! - `failpoints`: test-only fault injection in snapshot and artifact staging.
//! - `testkit`: test-only code for kvfold's own tests, fuzz targets and models
//!   (the fuzz bodies and invariant checkers, the memory backend's log core and
//!   registry, the connection-state cell, lease clock injection); implies
//!   `failpoints`. Not part of the public API and not covered by semver; a plain
//!   `cargo build` compiles none of it.
#![forbid(unsafe_code)]
#![deny(unused_must_use)]
#![warn(missing_docs)]
#![warn(unreachable_pub, unused_qualifications)]

mod artifact;
#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "testkit")]
#[doc(hidden)]
pub mod connstate;
#[cfg(all(feature = "nats", not(feature = "testkit")))]
#[allow(unreachable_pub, reason = "public under the testkit feature")]
mod connstate;
mod fold;
pub(crate) mod fsio;
#[cfg(feature = "testkit")]
#[doc(hidden)]
pub mod fuzz_bodies;
mod kv;
mod lease;
pub mod memory;
#[cfg(feature = "nats")]
mod nats;
pub mod protocol;
mod repair;
pub mod snapshot;
mod stores;
mod sync;

pub use fold::{
    BatchConfig, ExportHeld, ExportRequest, FoldProgress, WatchEnd, WatchScope, watch_applied,
    watch_applied_owned,
};
pub use kv::{
    BucketStatus, KvEntry, KvError, KvFencedWriter, KvPurge, KvReader, KvTtl, KvUpdate, KvWatcher,
    KvWriter, LeaseFence, Retention, VersionToken, WatchCursor,
};
#[cfg(feature = "testkit")]
#[doc(hidden)]
pub use lease::LeaseClockSource;
pub use lease::{DEFAULT_TAKEOVER_GRACE, ExportLease, LeaseGuard};
pub use memory::{MemoryConfig, MemoryConnection, MemoryFaults};
#[cfg(feature = "nats")]
pub use nats::{NatsConnection, NatsConnectionConfig, nats_connect};
pub use protocol::lease::LeaseRecord;
pub use protocol::manifest::{
    ARTIFACT_SCHEMA_VERSION, ArtifactFile, ExportManifest, MANIFEST_FILE,
};
#[cfg(feature = "testkit")]
#[doc(hidden)]
pub use repair::sort_keys_external;
pub use repair::{DirRestore, ExpiryRepair, RestoreSource, RestoredFold};
pub use snapshot::{AppendLogConfig, AppendLogSnapshot, SnapshotError, SnapshotStore};
pub use stores::{
    Connection, ConnectionCapabilities, DiscardPolicy, KvStore, StorageType, StoreConfig,
    StoreOptions,
};
