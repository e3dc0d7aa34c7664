//! nats-server behaviours the memory backend reproduces, pinned against a real server
//! (nats-server 2.15; docs/memory-backend.md, "Parity with NATS"): if a server release
//! changes one of them, this file fails and the memory backend must follow.
#![cfg(feature = "nats")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::nats::NatsServer;
use kvfold::memory::{ManualClock, MemoryServer};
use kvfold::{
    Connection, KvError, KvStore, KvUpdate, MemoryConfig, NatsConnection, NatsConnectionConfig,
    StoreConfig, StoreOptions,
};

async fn both(server: &NatsServer) -> (NatsConnection, kvfold::MemoryConnection, ManualClock) {
    let nats = NatsConnection::new(NatsConnectionConfig {
        url: server.url(),
        creds: None,
        creds_file: None,
    });
    nats.connect().await.unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let memory = MemoryServer::new(MemoryConfig::new().manual_clock(&clock)).connection();
    memory.connect().await.unwrap();
    (nats, memory, clock)
}

async fn state_sync(store: &Arc<dyn KvStore>) -> Vec<KvUpdate> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let watcher = store.watcher().unwrap();
    let task = tokio::spawn(async move { watcher.watch_all(tx).await });
    let mut got = Vec::new();
    while let Ok(Some(u)) = tokio::time::timeout(Duration::from_millis(400), rx.recv()).await {
        got.push(u);
    }
    task.abort();
    got
}

/// An expiry marker is written only when the expiry empties the key's subject:
/// with older entries still retained (history > 1) the key silently falls back to
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_markers_are_written_only_when_the_key_is_emptied() {
    let server = NatsServer::start();
    server.require_version(2, 11);
    let (nats, memory, clock) = both(&server).await;
    // (history, setup): 0 = put+delete, 1 = delete only, 2 = put+purge.
    let cases = [(3u32, 0), (1, 0), (3, 1), (3, 2), (1, 2)];
    let mut outcomes = Vec::new();
    for (i, (history, setup)) in cases.into_iter().enumerate() {
        let config = StoreConfig {
            name: format!("m{i}"),
            max_history: Some(history),
            ..StoreConfig::default()
        };
        let options = StoreOptions::new().with_limit_markers(Duration::from_secs(1));
        let mut results = Vec::new();
        for conn in [&nats as &dyn Connection, &memory as &dyn Connection] {
            let store = conn
                .store_with_options(config.clone(), options.clone())
                .await
                .unwrap();
            let writer = store.writer().unwrap();
            match setup {
                0 => {
                    writer.put("k", b"a").await.unwrap();
                    writer.delete("k").await.unwrap();
                }
                1 => {
                    writer.delete("k").await.unwrap();
                }
                _ => {
                    writer.put("k", b"a").await.unwrap();
                    store.purge_writer().unwrap().purge("k").await.unwrap();
                }
            }
            store
                .ttl_writer()
                .unwrap()
                .create_with_ttl("k", b"b", Duration::from_secs(1))
                .await
                .unwrap();
            results.push(store);
        }
        // Let the value expire (and, with history 1, its marker too: 1 s + 1 s).
        clock.advance(Duration::from_millis(1_100));
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        let nats_last = results[0].watcher().unwrap().last_revision().await.unwrap();
        let memory_last = results[1].watcher().unwrap().last_revision().await.unwrap();
        let nats_view = state_sync(&results[0]).await;
        clock.advance(Duration::from_secs(2));
        let memory_view = state_sync(&results[1]).await;
        assert_eq!(nats_view, memory_view, "case {i}: what remains of the key");
        outcomes.push((history, setup, nats_last, memory_last));
    }
    for (history, setup, nats_last, memory_last) in &outcomes {
        let marker = nats_last.unwrap() == 4 || (*setup == 1 && nats_last.unwrap() == 3);
        let emptied = *history == 1;
        assert_eq!(
            marker, emptied,
            "history {history}, setup {setup}: marker written iff the key was emptied"
        );
        assert_eq!(nats_last, memory_last, "history {history}, setup {setup}");
    }
}

/// Discard-new admission on a single server: a write that does not fit is
/// accepted only when its key is at the history limit and the message it
/// replaces is at least as large; rollups free nothing up front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_new_admits_only_replacements_of_larger_messages() {
    let server = NatsServer::start();
    let (nats, memory, _clock) = both(&server).await;
    // Sizes on file storage, subject "$KV.bN.k" (8 bytes): put = 38 + len.
    type Step = (&'static str, usize);
    let scenarios: [(i64, u32, &[Step], Step, bool); 6] = [
        // max, history, setup puts, the probe write, accepted on NATS
        (200, 5, &[("k", 50), ("k", 50)], ("purge", 0), false),
        (
            300,
            2,
            &[("k", 10), ("k", 100), ("j", 60)],
            ("k", 20),
            false,
        ),
        (300, 2, &[("k", 100), ("k", 10), ("j", 60)], ("k", 90), true),
        (200, 5, &[("k", 62)], ("j", 62), true),
        (200, 1, &[("k", 62), ("j", 62)], ("k", 63), false),
        (200, 1, &[("k", 62), ("j", 42)], ("k", 72), false),
    ];
    for (i, (max, history, setup, probe, accepted)) in scenarios.iter().enumerate() {
        let config = StoreConfig {
            name: format!("b{i}"),
            max_bytes: Some(*max),
            max_history: Some(*history),
            ..StoreConfig::default()
        };
        let mut outcomes = Vec::new();
        for conn in [&nats as &dyn Connection, &memory as &dyn Connection] {
            let store = conn.store_with_config(config.clone()).await.unwrap();
            let writer = store.writer().unwrap();
            for (key, len) in *setup {
                writer.put(key, &vec![1u8; *len]).await.unwrap();
            }
            let result = match probe {
                ("purge", _) => store.purge_writer().unwrap().purge("k").await.map(|_| ()),
                (key, len) => writer.put(key, &vec![2u8; *len]).await.map(|_| ()),
            };
            let bytes = store
                .watcher()
                .unwrap()
                .status()
                .await
                .unwrap()
                .unwrap()
                .bytes;
            outcomes.push((
                result.map_err(|e| matches!(e, KvError::OperationFailed(_))),
                bytes,
            ));
        }
        assert_eq!(
            outcomes[0].0.is_ok(),
            *accepted,
            "scenario {i} on nats-server"
        );
        assert_eq!(
            outcomes[0], outcomes[1],
            "scenario {i}: memory follows nats-server"
        );
    }
}
