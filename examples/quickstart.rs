//! kvfold quickstart on the embedded backend: no server needed.
//!
//! Run with `cargo run --example quickstart`.

use std::time::Duration;

use kvfold::{Connection, KvError, KvUpdate, MemoryConnection, StoreConfig, WatchCursor};

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
