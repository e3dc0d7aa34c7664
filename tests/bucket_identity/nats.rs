//! Live nats-server: two buckets on one server, a restart, an R3 leader change.

use super::*;
use common::nats::{NatsCluster, NatsServer, js_request_sync};
use kvfold::NatsConnection;

async fn connected(server: &NatsServer) -> NatsConnection {
    connected_to(server.url()).await
}

use crate::common::nats::connected as connected_to;

/// The identity must not change when nothing was recreated: a restart of the
/// server keeps the stream's creation time, so a fold resumes after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_the_identity_survives_a_server_restart_and_the_fold_resumes() {
    let mut server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    let conn = connected(&server).await;
    let (store, before) = fold_cfg(&conn, &path).await;
    drop(store);
    drop(conn);
    let server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();
    let conn = connected(&server).await;
    let cfg = bucket(&conn, "cfg").await;
    assert_eq!(
        identity_of(&cfg).await,
        before,
        "same stream, same identity"
    );
    put_n(&cfg, "after.", 2).await;
    let (cursor, store) = open(&path);
    let (end, seen) = run(watcher(&cfg), Some(cursor), store, 11, None).await;
    assert_eq!(end.result, Ok(WatchCursor::from_u64(11)));
    assert_eq!(seen.count(), 2, "only the tail");
}

/// On an R3 bucket every leader reports the same creation time: a leader
/// change is not a recreation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_the_identity_is_the_same_after_an_r3_leader_change() {
    let mut cluster = NatsCluster::start(3);
    let conn = connected_to(cluster.urls()).await;
    let cfg = conn
        .store_with_config(StoreConfig {
            num_replicas: Some(3),
            ..config("cfg")
        })
        .await
        .expect("R3 bucket");
    put_n(&cfg, "k.", 3).await;
    let before = identity_of(&cfg).await;
    let created = cluster.stream_info("KV_cfg")["created"].clone();
    let killed = tokio::task::spawn_blocking(move || {
        let killed = cluster.kill_leader("KV_cfg");
        let leader = cluster.stream_leader("KV_cfg");
        assert_ne!(leader, killed);
        let after = cluster.stream_info("KV_cfg")["created"].clone();
        (cluster, after)
    })
    .await
    .unwrap();
    let (_cluster, after) = killed;
    assert_eq!(
        after, created,
        "the new leader reports the same creation time"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match watcher(&cfg).status().await {
            Ok(Some(status)) => {
                assert_eq!(BucketIdentity::of_status(&status), before);
                break;
            }
            other => assert!(
                std::time::Instant::now() < deadline,
                "status after the leader change: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_cursor_from_another_bucket_is_refused_and_both_stay_untouched() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    cursor_from_another_bucket_is_refused(&connected(&server).await, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_store_of_another_bucket_started_without_a_cursor_is_refused() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    store_of_another_bucket_without_a_cursor_is_refused(&connected(&server).await, dir.path())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_an_imported_artifact_resumed_on_another_bucket_is_refused() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    imported_artifact_resumed_on_another_bucket_is_refused(&connected(&server).await, dir.path())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_cursor_ahead_of_a_recreated_bucket_is_refused_and_never_moves_back() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let port = server.port();
    cursor_ahead_of_a_recreated_bucket_is_refused(
        &connected(&server).await,
        dir.path(),
        || async move {
            tokio::task::spawn_blocking(move || {
                js_request_sync(
                    port,
                    "$JS.API.STREAM.DELETE.KV_cfg",
                    &serde_json::Value::Null,
                )
                .expect("stream deleted");
            })
            .await
            .unwrap();
        },
    )
    .await;
}
