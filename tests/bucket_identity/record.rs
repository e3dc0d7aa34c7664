//! The append log's identity record.

use super::*;

fn sidecar(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".bucket");
    PathBuf::from(name)
}

#[test]
fn the_record_survives_a_reopen_and_is_replaced_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    let (_, mut store) = open(&path);
    assert_eq!(store.bucket_identity().unwrap(), None);
    store
        .record_bucket_identity(&BucketIdentity::new("a", 1))
        .unwrap();
    store
        .record_bucket_identity(&BucketIdentity::new("b", 2))
        .unwrap();
    drop(store);
    let (_, store) = open(&path);
    assert_eq!(
        store.bucket_identity().unwrap(),
        Some(BucketIdentity::new("b", 2))
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.ends_with(".tmp")),
        "no temp file left: {names:?}"
    );
}

#[tokio::test]
async fn a_corrupt_record_refuses_the_run_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    let (_, store) = open(&path);
    drop(store);
    std::fs::write(sidecar(&path), b"{\"name\":\"cfg\"").unwrap();
    let (_, store) = open(&path);
    assert!(matches!(
        store.bucket_identity(),
        Err(kvfold::SnapshotError::InvalidFormat(_))
    ));
    let conn = memory().await;
    let cfg = bucket(&conn, "cfg").await;
    put_n(&cfg, "k", 1).await;
    let (end, seen) = run(watcher(&cfg), None, store, 1, None).await;
    assert!(
        matches!(&end.result, Err(KvError::WatchError(m)) if m.contains("bucket identity")),
        "{:?}",
        end.result
    );
    assert_eq!(seen.count(), 0);
    assert!(end.store.is_some());
}

#[tokio::test]
async fn an_import_replaces_a_stale_record_and_a_direct_export_names_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let conn = memory().await;
    let path = dir.path().join("fold.snap");
    let (mut store, cfg_id) = fold_cfg(&conn, &path).await;
    // A direct export names the bucket too (schema 1, no scope).
    let direct = dir.path().join("direct");
    store.export_to(&direct).unwrap();
    let bytes = std::fs::read(direct.join(MANIFEST_FILE)).unwrap();
    let (manifest, named) = decode_manifest_with_bucket(&bytes).unwrap();
    assert_eq!((manifest.schema_version, named), (1, Some(cfg_id.clone())));
    // A stale record beside the import destination is replaced.
    let replica = dir.path().join("replica.snap");
    std::fs::write(
        sidecar(&replica),
        b"{\"name\":\"stale\",\"created_unix_ms\":1}\n",
    )
    .unwrap();
    let (_, imported) = AppendLogSnapshot::import(&direct, &replica, THRESHOLD).unwrap();
    assert_eq!(imported.bucket_identity().unwrap(), Some(cfg_id));
    // An artifact that names no bucket (an older one) leaves no record behind.
    let older = dir.path().join("older");
    std::fs::create_dir(&older).unwrap();
    std::fs::create_dir(older.join("data")).unwrap();
    std::fs::copy(direct.join("data/fold.snap"), older.join("data/fold.snap")).unwrap();
    let plain = kvfold::protocol::manifest::encode_manifest(&manifest);
    std::fs::write(older.join(MANIFEST_FILE), plain).unwrap();
    let second = dir.path().join("second.snap");
    std::fs::write(
        sidecar(&second),
        b"{\"name\":\"stale\",\"created_unix_ms\":1}\n",
    )
    .unwrap();
    let (_, imported) = AppendLogSnapshot::import(&older, &second, THRESHOLD).unwrap();
    assert_eq!(imported.bucket_identity().unwrap(), None);
    assert!(!sidecar(&second).exists());
}
