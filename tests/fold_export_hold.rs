//! The export hold end to end (docs/protocols/repair.md, "Exports after a restore"):
//! `watch_applied_owned` on the embedded backend with a real append-log store, a real
//! key listing and real artifacts in directories. A restore keeps a local key the
//! artifact deleted because the bucket still lists it live (its newer write is after
//! the artifact's cursor); an export right after the restore is refused with
//! [`ExportHeld`] naming the revision to wait for; once the resumed watch delivered
//! the key's newer write, an export runs and holds the newer value.

use std::sync::{Arc, Mutex};

use kvfold::{
    AppendLogSnapshot, DirRestore, ExpiryRepair, ExportHeld, ExportManifest, ExportRequest,
    KvUpdate, MemoryConnection, RestoreSource, SnapshotError, SnapshotStore, WatchCursor,
    WatchScope, watch_applied_owned,
};
use tokio::sync::{mpsc, oneshot, watch};

mod common;

use common::repair::{WAIT, batch, export_at, fold_and_leave, memory_bucket, open_store};

type Reply = oneshot::Receiver<Result<ExportManifest, SnapshotError>>;

#[tokio::test]
async fn an_export_after_a_restore_that_kept_a_listed_live_key_waits_for_its_newer_write() {
    let conn = MemoryConnection::new();
    let bucket = memory_bucket(&conn, "hold", true).await;
    let w = bucket.writer().unwrap();
    w.put("k", b"old").await.unwrap(); // 1
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    // This replica folded k@1, then went away.
    let cursor = fold_and_leave(&bucket, &path, 1).await;
    w.delete("k").await.unwrap(); // 2
    w.put("x", b"1").await.unwrap(); // 3
    // Another replica exported at 3: k is deleted there.
    let artifacts = tempfile::tempdir().unwrap();
    export_at(
        &bucket,
        &dir.path().join("exporter.snap"),
        &artifacts.path().join("at-3"),
        3,
    )
    .await;
    w.put("k", b"new").await.unwrap(); // 4
    conn.faults().evict_below("hold", 4).unwrap();

    // The replica comes back: its cursor expired, it restores the artifact at 3 and
    // keeps k (the bucket lists it live, at 4). It asks for an export as soon as the
    // restore committed (cursor 3), and again once the watch delivered k@4.
    let published = tempfile::tempdir().unwrap();
    let (exports_tx, exports_rx) = mpsc::channel(4);
    let replies: Arc<Mutex<Vec<(u64, Reply)>>> = Arc::default();
    let asked = Arc::clone(&replies);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let applied = Arc::clone(&seen);
    let root = published.path().to_path_buf();
    let (reached_tx, mut reached_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let source: Arc<dyn RestoreSource<AppendLogSnapshot>> =
        Arc::new(DirRestore::new(artifacts.path()));
    let run = tokio::spawn(watch_applied_owned(
        bucket.watcher().unwrap(),
        WatchScope::All,
        Some(cursor),
        ExpiryRepair::Auto {
            reader: bucket.reader(),
            restore: source,
        },
        Some(open_store(&path)),
        Some(exports_rx),
        batch(),
        |u: &KvUpdate| Some(u.clone()),
        move |updates: Vec<KvUpdate>| applied.lock().unwrap().extend(updates),
        move |c: WatchCursor| {
            let rank = c.rank();
            if rank == 3 || rank == 4 {
                // Sent from `on_applied`: the request is queued before the loop
                // selects again, so it is served before anything the watch delivers
                // next.
                let (reply, replied) = oneshot::channel();
                exports_tx
                    .try_send(ExportRequest {
                        dest_dir: root.join(format!("at-{rank}")),
                        reply,
                    })
                    .expect("room for the request");
                asked.lock().unwrap().push((rank, replied));
            }
            if rank >= 4 {
                let _ = reached_tx.send(());
            }
        },
        stop_rx,
    ));
    tokio::time::timeout(WAIT, reached_rx.recv())
        .await
        .expect("the fold reaches 4")
        .expect("the run is still going");
    let replies: Vec<(u64, Reply)> = std::mem::take(&mut *replies.lock().unwrap());
    let mut answers = Vec::new();
    for (rank, replied) in replies {
        let answer = tokio::time::timeout(WAIT, replied).await.unwrap().unwrap();
        answers.push((rank, answer));
    }
    let _ = stop_tx.send(true);
    let end = tokio::time::timeout(WAIT, run).await.unwrap().unwrap();
    assert_eq!(end.result.as_ref().map(WatchCursor::rank), Ok(4));

    // What `apply` saw: the restore's put of x, the resume's k@4; k was never deleted.
    let seen = seen.lock().unwrap().clone();
    let order: Vec<&str> = seen.iter().map(KvUpdate::key).collect();
    assert_eq!(order, ["x", "k"]);

    assert_eq!(answers.len(), 2, "{answers:?}");
    // Right after the restore: held until k's newer write (4) is committed.
    let (rank, held) = &answers[0];
    assert_eq!(*rank, 3);
    let err = held
        .as_ref()
        .expect_err("the export after the restore is held");
    assert_eq!(
        ExportHeld::of(err),
        Some(&ExportHeld {
            until: 4,
            committed: 3
        }),
        "{err}"
    );
    assert!(matches!(err, SnapshotError::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock));
    assert!(
        !published.path().join("at-3").exists(),
        "a held export writes nothing"
    );
    // Once k@4 is committed: the export runs and holds the newer value.
    let (rank, served) = &answers[1];
    assert_eq!(*rank, 4);
    let manifest = served.as_ref().expect("the export after k@4 runs");
    assert_eq!(manifest.cursor.rank(), 4);
    let restored = DirRestore::new(published.path()).fetch().await.unwrap();
    let k = restored
        .fold()
        .get("k")
        .unwrap()
        .expect("k is in the artifact");
    assert_eq!(k.value, b"new");
    assert_eq!(k.version.as_u64(), Some(4));
    assert_eq!(
        restored.fold().get("x").unwrap().map(|e| e.value),
        Some(b"1".to_vec())
    );
    let store = end.store.expect("store back");
    assert_eq!(
        store.get("k").unwrap().map(|e| e.value),
        Some(b"new".to_vec())
    );
}
