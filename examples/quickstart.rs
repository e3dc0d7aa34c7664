//! kvfold quickstart on the embedded backend: no server needed.
//!
//! Run with `cargo run --example quickstart`.

use std::time::Duration;

use kvfold::{
    AppendLogSnapshot, BatchConfig, Connection, ExportRequest, KvError, KvUpdate, MemoryConnection,
    SnapshotStore, StoreConfig, WatchCursor, WatchScope, watch_applied,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), KvError> {
    // 1. Connect to a private in-process server and open a bucket.
    let conn = MemoryConnection::new();
    conn.connect().await?;
    let store = conn
        .store_with_config(StoreConfig {
            name: "quickstart".to_string(),
            max_history: Some(5),
            ..StoreConfig::default()
        })
        .await?;
    let writer = store.writer().expect("the memory backend can write");
    let reader = store.reader();
    let watcher = store.watcher().expect("the memory backend can watch");

    // 2. Write, then read back.
    let v1 = writer.put("config.color", b"blue").await?;
    println!("put config.color = blue at {v1:?}");
    let got = reader.get("config.color").await?.expect("just written");
    println!(
        "get config.color -> {}",
        String::from_utf8_lossy(&got.value)
    );

    // 3. Compare-and-swap: the stale version loses, the fresh one wins.
    let v2 = writer.update("config.color", b"green", &v1).await?;
    println!("update with {v1:?} -> {v2:?}");
    match writer.update("config.color", b"red", &v1).await {
        Err(KvError::RevisionMismatch) => println!("update with stale {v1:?} -> RevisionMismatch"),
        other => println!("unexpected: {other:?}"),
    }
    match writer.create("config.color", b"red").await {
        Err(KvError::AlreadyExists) => println!("create over a live key -> AlreadyExists"),
        other => println!("unexpected: {other:?}"),
    }

    // 4. Delete, then create works again.
    writer.put("config.size", b"L").await?;
    writer.delete("config.size").await?;
    println!(
        "deleted config.size; get -> {:?}",
        reader.get("config.size").await?
    );
    let v3 = writer.create("config.size", b"XL").await?;
    println!("create config.size = XL after the delete -> {v3:?}");

    // 5. Watch: a state-sync watch delivers the latest entry of every key, then live changes.
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let all = watcher.clone();
    let watch = tokio::spawn(async move { all.watch_all(tx).await });
    writer.put("config.mode", b"fast").await?;
    let mut last = WatchCursor::none();
    for _ in 0..3 {
        let update = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("updates arrive")
            .expect("watch is running");
        print_update("watch", &update);
        last = WatchCursor::from_version(update.version().clone());
    }
    drop(rx);
    watch.await.expect("watch task")?;

    // 6. Resume from the last applied cursor: only what came after it arrives.
    writer.put("config.color", b"purple").await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let resumed = tokio::spawn(async move { watcher.watch_all_from(&last, tx).await });
    let update = rx.recv().await.expect("the write after the cursor");
    print_update("resumed watch", &update);
    drop(rx);
    resumed.await.expect("watch task")?;

    let status = store
        .watcher()
        .expect("watcher")
        .status()
        .await?
        .expect("memory reports status");
    println!(
        "bucket {}: revisions {}..={}, {} messages, {} bytes",
        status.name, status.first_revision, status.last_revision, status.values, status.bytes
    );
    // 7. Fold the bucket into a durable snapshot store with watch_applied: the cursor
    //    moves only after `apply` returned, and the store keeps batch and cursor together.
    let dir = std::env::temp_dir().join(format!("kvfold-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (_, replica_a) = AppendLogSnapshot::load(&dir.join("a.snap")).expect("open replica a");
    let (export_tx, exports) = tokio::sync::mpsc::channel(1);
    let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
    let fold = tokio::spawn(watch_applied(
        store.watcher().expect("watcher"),
        WatchScope::All,
        None,
        None,
        Some(replica_a),
        Some(exports),
        BatchConfig::default(),
        |update: &KvUpdate| Some(update.key().to_string()),
        |batch: Vec<String>| println!("fold a applied {batch:?}"),
        |cursor: WatchCursor| println!("fold a is at revision {}", cursor.rank()),
        shutdown,
    ));

    // 8. Export an artifact from the running fold.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let artifact = dir.join("artifact");
    let (reply, manifest) = tokio::sync::oneshot::channel();
    export_tx
        .send(ExportRequest {
            dest_dir: artifact.clone(),
            reply,
        })
        .await
        .expect("the fold serves exports");
    let manifest = manifest.await.expect("a reply").expect("export succeeds");
    println!(
        "exported an artifact at revision {} with scope {:?}",
        manifest.cursor.rank(),
        manifest.scope
    );
    writer.put("config.after-export", b"tail").await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown_tx.send(true).expect("the fold is running");
    let fold_a_cursor = fold.await.expect("fold task")?;

    // 9. Import the artifact into a second replica and resume it from the artifact's
    //    cursor: only the tail after the export arrives.
    let (cursor_b, replica_b) =
        AppendLogSnapshot::import(&artifact, &dir.join("b.snap"), 1 << 20).expect("import");
    println!("replica b imported at revision {}", cursor_b.rank());
    let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
    let tail = tokio::spawn(kvfold::watch_applied_owned(
        store.watcher().expect("watcher"),
        WatchScope::All,
        Some(cursor_b),
        None,
        Some(replica_b),
        None,
        BatchConfig::default(),
        |update: &KvUpdate| Some(update.key().to_string()),
        |batch: Vec<String>| println!("replica b applied the tail {batch:?}"),
        |_cursor| {},
        shutdown,
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown_tx.send(true).expect("the fold is running");
    let end = tail.await.expect("fold task");
    let replica_b = end.store.expect("the store comes back");
    let (_, replica_a) = AppendLogSnapshot::load(&dir.join("a.snap")).expect("reopen replica a");
    let a = replica_a.range("").expect("read a");
    let b = replica_b.range("").expect("read b");
    println!(
        "replica a at {} and replica b at {} hold {} and {} keys: {}",
        fold_a_cursor.rank(),
        replica_b.cursor().rank(),
        a.len(),
        b.len(),
        if a == b { "they agree" } else { "THEY DIFFER" }
    );
    assert_eq!(a, b, "both replicas hold the same fold");

    // 10. Cursor-expiry repair: replica b goes away at its cursor. Meanwhile a key is
    //     deleted, every other key is rewritten, and the bucket drops the history below
    //     the rewrites (here the embedded backend's fault controls stand in for a
    //     bucket's limits), delete marker included: no watch can deliver that delete
    //     any more. With `ExpiryRepair::Relist`, `watch_applied` lists the bucket,
    //     deletes what is gone from the fold, re-applies what is live and resumes; the
    //     store ends equal to the bucket.
    let away_at = end.result?;
    writer.delete("config.size").await?;
    let mut first_rewrite = None;
    for key in reader.keys("").await? {
        let rewrite = writer.put(&key, b"rewritten").await?;
        first_rewrite.get_or_insert(rewrite.as_u64().expect("memory revisions are numbers"));
    }
    let newest = writer.put("config.region", b"eu").await?;
    let newest = newest.as_u64().expect("memory revisions are numbers");
    let floor = first_rewrite.unwrap_or(newest);
    conn.faults().evict_below("quickstart", floor)?;
    println!(
        "replica b left at revision {}; config.size deleted, history below {floor} evicted",
        away_at.rank()
    );
    let (reached_tx, mut reached) = tokio::sync::mpsc::unbounded_channel();
    let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
    let repaired = tokio::spawn(kvfold::watch_applied_owned(
        store.watcher().expect("watcher"),
        WatchScope::All,
        Some(away_at),
        kvfold::ExpiryRepair::Relist(store.reader()),
        Some(replica_b),
        None,
        BatchConfig::default(),
        |update: &KvUpdate| Some(update.clone()),
        |batch: Vec<KvUpdate>| {
            for update in &batch {
                print_update("replica b repair", update);
            }
        },
        move |cursor: WatchCursor| {
            if cursor.rank() >= newest {
                let _ = reached_tx.send(());
            }
        },
        shutdown,
    ));
    tokio::time::timeout(Duration::from_secs(10), reached.recv())
        .await
        .expect("the repaired fold catches up");
    shutdown_tx.send(true).expect("the fold is running");
    let end = repaired.await.expect("fold task");
    let replica_b = end.store.expect("the store comes back");
    let folded: Vec<String> = replica_b
        .range("")
        .expect("read b")
        .into_iter()
        .map(|entry| entry.key)
        .collect();
    let live = reader.keys("").await?;
    println!(
        "after the repair replica b holds {folded:?} and the bucket {live:?}: {}",
        if folded == live {
            "they agree"
        } else {
            "THEY DIFFER"
        }
    );
    assert_eq!(folded, live, "the repaired fold equals the bucket");
    drop(replica_b);
    std::fs::remove_dir_all(&dir).ok();
    conn.shutdown().await?;
    Ok(())
}

fn print_update(label: &str, update: &KvUpdate) {
    match update {
        KvUpdate::Put(entry) => println!(
            "{label}: put {} = {} at {:?}",
            entry.key,
            String::from_utf8_lossy(&entry.value),
            entry.version
        ),
        KvUpdate::Delete { key, version } => println!("{label}: delete {key} at {version:?}"),
        KvUpdate::Purge { key, version } => println!("{label}: purge {key} at {version:?}"),
    }
}
