//! Peak resident memory of a large fold (docs/performance.md): writes N keys (128 B
//! values, default 1,000,000) into a `MemoryConnection` bucket, folds them with
//! `watch_applied` into a fresh `AppendLogSnapshot` (sync off; `parse` keeps nothing, so
//! the store holds the fold), and prints the process's `VmHWM` (peak RSS) from
//! `/proc/self/status` before and after the fold. Linux only.
//!
//! Run: `cargo run --release --example fold_rss` (`KVFOLD_RSS_KEYS=N` for another size).

use std::time::Instant;

use kvfold::{
    AppendLogSnapshot, BatchConfig, Connection, ExpiryRepair, KvError, KvUpdate, MemoryConnection,
    SnapshotStore, StoreConfig, WatchCursor, WatchScope, watch_applied_owned,
};

/// A `kB` field of `/proc/self/status`, e.g. `VmHWM` or `VmRSS`.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().trim_end_matches("kB").trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("{field} is not in /proc/self/status"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), KvError> {
    let keys: u64 = match std::env::var("KVFOLD_RSS_KEYS") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("KVFOLD_RSS_KEYS={text:?} is not a count")),
        Err(_) => 1_000_000,
    };
    let start_hwm = status_kib("VmHWM");

    let conn = MemoryConnection::new();
    conn.connect().await?;
    let bucket = conn
        .store_with_config(StoreConfig {
            name: "rss".to_string(),
            max_history: Some(1),
            max_bytes: Some(-1),
            ..StoreConfig::default()
        })
        .await?;
    let writer = bucket.writer().expect("the memory backend writes");
    let value = vec![b'v'; 128];
    let started = Instant::now();
    let mut last = 0;
    for i in 0..keys {
        last = writer
            .put(&format!("k.{i:08}"), &value)
            .await?
            .as_u64()
            .expect("memory versions are revisions");
    }
    let wrote = started.elapsed();
    let bucket_hwm = status_kib("VmHWM");

    let dir = tempfile::tempdir().expect("temp dir");
    let (_, store) = AppendLogSnapshot::load(&dir.path().join("fold.snap")).expect("new store");
    let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let end = watch_applied_owned(
        bucket.watcher().expect("the memory backend watches"),
        WatchScope::All,
        None,
        ExpiryRepair::None,
        Some(store),
        None,
        BatchConfig::default(),
        |_: &KvUpdate| None::<()>,
        |_: Vec<()>| {},
        move |cursor: WatchCursor| {
            if cursor.rank() >= last {
                let _ = shutdown_tx.send(true);
            }
        },
        shutdown,
    )
    .await;
    let folded = started.elapsed();
    let cursor = end.result?;
    let store = end.store.expect("the store comes back");
    assert_eq!(store.cursor().rank(), cursor.rank());
    let fold_hwm = status_kib("VmHWM");
    let rss = status_kib("VmRSS");

    println!("keys: {keys} (128 B values)");
    println!(
        "wrote the memory bucket in {:.2} s; folded into AppendLogSnapshot in {:.2} s ({:.0} entries/s)",
        wrote.as_secs_f64(),
        folded.as_secs_f64(),
        keys as f64 / folded.as_secs_f64()
    );
    println!("VmHWM at start:             {:8.1} MiB", mib(start_hwm));
    println!(
        "VmHWM after the bucket:     {:8.1} MiB (the memory backend's copy)",
        mib(bucket_hwm)
    );
    println!("VmHWM after the fold:       {:8.1} MiB", mib(fold_hwm));
    println!(
        "VmHWM growth over the fold: {:8.1} MiB ({:.0} B/key)",
        mib(fold_hwm - bucket_hwm),
        (fold_hwm - bucket_hwm) as f64 * 1024.0 / keys as f64
    );
    println!("VmRSS now (store held):     {:8.1} MiB", mib(rss));
    drop(store);
    conn.shutdown().await?;
    Ok(())
}
