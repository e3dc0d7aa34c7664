//! Listings on an R3 bucket whose consumer lands on a replica behind the stream
//! (docs/nats-backend.md, "Complete listings"): `keys`, `scan` and
//! `for_each_key` never answer with fewer keys than were written before the call.
#![cfg(feature = "nats")]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::config::bucket;
use common::nats::{NatsCluster, Stopped, connected};
use kvfold::{Connection, KvStore, StoreConfig};

/// Keys written while one follower is stopped.
const KEYS: usize = 3000;
/// Listings of each kind started as the follower resumes.
const LISTINGS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_started_while_a_replica_catches_up_miss_no_key() {
    let cluster = NatsCluster::start(3);
    let conn = connected(cluster.urls()).await;
    let store: Arc<dyn KvStore> = conn
        .store_with_config(StoreConfig {
            num_replicas: Some(3),
            ..bucket("lst", 1)
        })
        .await
        .unwrap();
    let writer = store.writer().unwrap();
    writer.put("grp.base", b"0").await.unwrap();
    let leader = cluster.stream_leader("KV_lst");
    let follower = (leader + 1) % 3;
    let raw = async_nats::connect(cluster.url(leader)).await.unwrap();
    let js = async_nats::jetstream::new(raw.clone());
    let stopped = Stopped::stop(cluster.node(follower).pid().expect("running"));
    let mut acks = Vec::new();
    for i in 0..KEYS {
        acks.push(
            js.publish(format!("$KV.lst.grp.k{i:04}"), "v".into())
                .await
                .unwrap(),
        );
    }
    // The stream's last message is outside the `grp.` listings' scope: their
    // consumers must still see it (the sentinel filter).
    acks.push(js.publish("$KV.lst.zzz", "v".into()).await.unwrap());
    for ack in acks {
        ack.await.unwrap();
    }
    let grp: BTreeSet<String> = std::iter::once("grp.base".to_string())
        .chain((0..KEYS).map(|i| format!("grp.k{i:04}")))
        .collect();
    let mut all = grp.clone();
    all.insert("zzz".to_string());
    drop(stopped);

    let mut tasks = Vec::new();
    for n in 0..LISTINGS {
        let reader = store.reader();
        tasks.push(tokio::spawn(async move {
            let keys = reader.keys("grp.").await;
            (
                "keys(grp.)",
                n,
                keys.map(|k| k.into_iter().collect::<BTreeSet<_>>()),
            )
        }));
        let reader = store.reader();
        tasks.push(tokio::spawn(async move {
            let scan = reader.scan("").await;
            (
                "scan()",
                n,
                scan.map(|e| e.into_iter().map(|e| e.key).collect()),
            )
        }));
        let reader = store.reader();
        tasks.push(tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            let mut each = |key: String| {
                seen.insert(key);
            };
            let result = reader.for_each_key("grp.", &mut each).await;
            ("for_each_key(grp.)", n, result.map(|()| seen))
        }));
    }
    let mut errors = 0;
    for task in tasks {
        let (what, n, result) = task.await.unwrap();
        let want = if what == "scan()" { &all } else { &grp };
        match result {
            Ok(got) => assert_eq!(
                got.len(),
                want.len(),
                "{what} #{n} answered Ok with {} of {} keys; missing: {:?}",
                got.len(),
                want.len(),
                want.difference(&got).take(5).collect::<Vec<_>>()
            ),
            // A stale `for_each_key` may end with an error (its keys so far cannot
            // be taken back); a short `Ok` is the bug.
            Err(e) => {
                println!("{what} #{n}: {e:?}");
                errors += 1;
            }
        }
    }
    println!("{errors} of {} listings ended with an error", 3 * LISTINGS);
}
