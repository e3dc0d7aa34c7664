//! The conformance suite, unchanged, against real nats-server processes: a single node
//! (through a loopback proxy, so watches can be interrupted) and a 3-node cluster with R3
//! buckets (docs/nats-backend.md, "Test harness", docs/memory-backend.md, "Parity with
//! NATS").
#![cfg(all(feature = "nats", feature = "conformance"))]

mod common;

use std::time::Duration;

use common::hooks::NatsHooks;
use common::nats::{NatsCluster, NatsServer, TcpProxy};
use kvfold::conformance::{self, Outcome, Profile};
use kvfold::{Connection, NatsConnection, NatsConnectionConfig};

fn profile(conn: &NatsConnection, prefix: &str, replicated: bool) -> Profile {
    // The same expectations as on the memory backend, with NATS-sized waits.
    Profile::new(conn.capabilities())
        .bucket_prefix(prefix)
        .delivery_timeout(Duration::from_secs(if replicated { 8 } else { 5 }))
        .burst_bytes(4 * 1024 * 1024)
}

async fn run(conn: &NatsConnection, hooks: &NatsHooks, profile: &Profile, label: &str) {
    let results = conformance::run_all(conn, profile, Some(hooks)).await;
    let passed = results
        .iter()
        .filter(|(_, o)| *o == Outcome::Passed)
        .count();
    let skipped: Vec<_> = results
        .iter()
        .filter(|(_, o)| *o != Outcome::Passed)
        .collect();
    println!(
        "conformance on {label}: {passed} of {} checks passed",
        results.len()
    );
    assert!(
        skipped.is_empty(),
        "{label}: checks not passed: {skipped:?}"
    );
    assert_eq!(results.len(), conformance::CHECKS.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_on_a_single_node() {
    let server = NatsServer::start();
    server.require_version(2, 11);
    let proxy = TcpProxy::start(server.addr());
    let conn = NatsConnection::new(NatsConnectionConfig {
        url: proxy.url(),
        creds: None,
        creds_file: None,
    });
    conn.connect().await.unwrap();
    let hooks = NatsHooks::new(&server.url(), Some(proxy)).await;
    let profile = profile(&conn, "single", false);
    run(&conn, &hooks, &profile, "a single nats-server").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_on_a_three_node_cluster_with_r3_buckets() {
    let cluster = NatsCluster::start(3);
    cluster.node(0).require_version(2, 11);
    let conn = NatsConnection::new(NatsConnectionConfig {
        url: cluster.urls(),
        creds: None,
        creds_file: None,
    });
    conn.connect().await.unwrap();
    // No proxy in front of a cluster (clients learn the other nodes): every hook but
    // InterruptWatches; the single-node run covers that one.
    let hooks = NatsHooks::new(&cluster.urls(), None).await;
    let profile = profile(&conn, "cluster", true).replicas(3);
    let results = conformance::run_all(&conn, &profile, Some(&hooks)).await;
    let not_passed: Vec<_> = results
        .iter()
        .filter(|(name, o)| *o != Outcome::Passed && *name != "watch_interrupt_resume")
        .collect();
    println!(
        "conformance on a 3-node cluster: {} of {} checks passed",
        results
            .iter()
            .filter(|(_, o)| *o == Outcome::Passed)
            .count(),
        results.len()
    );
    assert!(
        not_passed.is_empty(),
        "cluster: checks not passed: {not_passed:?}"
    );
}
