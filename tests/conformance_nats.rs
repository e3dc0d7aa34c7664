//! The conformance suite, unchanged, against real nats-server processes: a single node
//! (through a loopback proxy, so watches can be interrupted) and a 3-node cluster with R3
//! buckets (docs/nats-backend.md, "Test harness", docs/memory-backend.md, "Parity with
//! NATS").
//!
//! `watch_from_recreated` waits out the 60 s recreate slack on the server's real clock,
//! so it runs beside the other checks, on its own connection and hooks, rather than
//! before them: the suite's wall time is then the longer of the two groups, not the sum.
#![cfg(all(feature = "nats", feature = "conformance"))]

mod common;

use std::time::Duration;

use common::hooks::NatsHooks;
use common::nats::{NatsCluster, NatsServer, TcpProxy};
use kvfold::conformance::{self, Outcome, Profile};
use kvfold::{Connection, NatsConnection, NatsConnectionConfig};

/// The checks that mostly wait on the server's clock, run as their own group.
const WAITING: &[&str] = &["watch_from_recreated"];

fn nats_profile(conn: &NatsConnection, prefix: &str, replicated: bool) -> Profile {
    // The same expectations as on the memory backend, with NATS-sized waits. A spurious
    // delivery on loopback arrives in milliseconds, so "nothing more arrives" is watched
    // for 1 s rather than the whole delivery timeout.
    Profile::new(conn.capabilities())
        .bucket_prefix(prefix)
        .delivery_timeout(Duration::from_secs(if replicated { 8 } else { 5 }))
        .quiet_window(Duration::from_secs(1))
        .burst_bytes(4 * 1024 * 1024)
}

async fn connect(url: String) -> NatsConnection {
    let conn = NatsConnection::new(NatsConnectionConfig {
        url,
        creds: None,
        creds_file: None,
    });
    conn.connect().await.unwrap();
    conn
}

/// Runs every check: `WAITING` on `waiting` (its own connection and hooks) beside the
/// rest on `main`, and returns the outcomes of both groups.
async fn run_split(
    main: (&NatsConnection, &NatsHooks, &Profile),
    waiting: (&NatsConnection, &NatsHooks, &Profile),
) -> Vec<(&'static str, Outcome)> {
    let rest: Vec<&str> = conformance::CHECKS
        .iter()
        .copied()
        .filter(|name| !WAITING.contains(name))
        .collect();
    let (mut outcomes, waited) = tokio::join!(
        conformance::run_checks(main.0, main.2, Some(main.1), &rest),
        conformance::run_checks(waiting.0, waiting.2, Some(waiting.1), WAITING),
    );
    outcomes.extend(waited);
    assert_eq!(outcomes.len(), conformance::CHECKS.len());
    outcomes
}

fn passed(results: &[(&'static str, Outcome)]) -> usize {
    results
        .iter()
        .filter(|(_, o)| *o == Outcome::Passed)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_on_a_single_node() {
    let server = NatsServer::start();
    server.require_version(2, 11);
    let proxy = TcpProxy::start(server.addr());
    let conn = connect(proxy.url()).await;
    let hooks = NatsHooks::new(&server.url(), Some(proxy)).await;
    let profile = nats_profile(&conn, "single", false);
    // The waiting group dials the server directly: the proxy cut of
    // `watch_interrupt_resume` belongs to the main group alone.
    let direct = connect(server.url()).await;
    let direct_hooks = NatsHooks::new(&server.url(), None).await;
    let direct_profile = nats_profile(&direct, "single-wait", false);
    let results = run_split(
        (&conn, &hooks, &profile),
        (&direct, &direct_hooks, &direct_profile),
    )
    .await;
    let not_passed: Vec<_> = results
        .iter()
        .filter(|(_, o)| *o != Outcome::Passed)
        .collect();
    println!(
        "conformance on a single nats-server: {} of {} checks passed",
        passed(&results),
        results.len()
    );
    assert!(
        not_passed.is_empty(),
        "a single nats-server: checks not passed: {not_passed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_on_a_three_node_cluster_with_r3_buckets() {
    let cluster = NatsCluster::start(3);
    cluster.node(0).require_version(2, 11);
    let conn = connect(cluster.urls()).await;
    // No proxy in front of a cluster (clients learn the other nodes): every hook but
    // InterruptWatches; the single-node run covers that one.
    let hooks = NatsHooks::new(&cluster.urls(), None).await;
    let profile = nats_profile(&conn, "cluster", true).replicas(3);
    let waiting = connect(cluster.urls()).await;
    let waiting_hooks = NatsHooks::new(&cluster.urls(), None).await;
    let waiting_profile = nats_profile(&waiting, "cluster-wait", true).replicas(3);
    let results = run_split(
        (&conn, &hooks, &profile),
        (&waiting, &waiting_hooks, &waiting_profile),
    )
    .await;
    let not_passed: Vec<_> = results
        .iter()
        .filter(|(name, o)| *o != Outcome::Passed && *name != "watch_interrupt_resume")
        .collect();
    println!(
        "conformance on a 3-node cluster: {} of {} checks passed",
        passed(&results),
        results.len()
    );
    assert!(
        not_passed.is_empty(),
        "cluster: checks not passed: {not_passed:?}"
    );
}
