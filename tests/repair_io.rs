//! `DirRestore`, the local-directory restore source: which artifact `latest` reports,
//! what `fetch` imports, which entries are skipped, and the typed errors when none fits.

use std::fs;
use std::path::Path;

use kvfold::{
    AppendLogSnapshot, DirRestore, KvEntry, KvUpdate, RestoreSource, SnapshotError, SnapshotStore,
    VersionToken, WatchCursor,
};

fn put(key: &str, rev: u64, value: &str) -> KvUpdate {
    KvUpdate::Put(KvEntry {
        key: key.to_string(),
        value: value.as_bytes().to_vec(),
        version: VersionToken::from_u64(rev),
    })
}

/// Exports a fold at cursor `rank` holding `key.<rank>` to `root/name`.
fn export(work: &Path, root: &Path, name: &str, rank: u64) {
    let log = work.join(format!("{name}.snap"));
    let (_, mut store) = AppendLogSnapshot::load(&log).unwrap();
    store
        .apply(
            &[
                put("k.common", rank, &format!("v{rank}")),
                put(&format!("k.{rank}"), rank, "x"),
            ],
            &WatchCursor::from_u64(rank),
        )
        .unwrap();
    store.export_to(&root.join(name)).unwrap();
}

struct Fixture {
    work: tempfile::TempDir,
    root: tempfile::TempDir,
    scratch: tempfile::TempDir,
}

fn fixture() -> Fixture {
    Fixture {
        work: tempfile::tempdir().unwrap(),
        root: tempfile::tempdir().unwrap(),
        scratch: tempfile::tempdir().unwrap(),
    }
}

impl Fixture {
    fn export(&self, name: &str, rank: u64) {
        export(self.work.path(), self.root.path(), name, rank);
    }

    fn source(&self) -> DirRestore {
        DirRestore::new(self.root.path()).with_scratch_dir(self.scratch.path())
    }

    /// Junk that must be skipped: a stage in progress, a file, a directory without a
    /// manifest, a garbled manifest, and a manifest of another backend.
    fn junk(&self, newest_rank: u64) {
        let root = self.root.path();
        // A hidden stage holding a complete-looking, newer artifact.
        export(
            self.work.path(),
            root,
            ".kvfold-artifact-inprogress",
            newest_rank + 10,
        );
        fs::write(root.join("notes.txt"), b"not an artifact").unwrap();
        fs::create_dir(root.join("empty")).unwrap();
        fs::create_dir(root.join("garbled")).unwrap();
        fs::write(root.join("garbled").join("MANIFEST.json"), b"{").unwrap();
        export(self.work.path(), root, "other-backend", newest_rank + 20);
        let manifest = root.join("other-backend").join("MANIFEST.json");
        let text = fs::read_to_string(&manifest).unwrap();
        fs::write(&manifest, text.replace("\"append-log\"", "\"fjall\"")).unwrap();
    }
}

#[tokio::test]
async fn latest_is_the_highest_cursor_among_valid_artifacts() {
    let f = fixture();
    f.export("b-old", 5);
    f.export("a-new", 9);
    f.export("c-mid", 7);
    f.junk(9);
    let latest = f.source().latest().await.unwrap();
    assert_eq!(latest.cursor, WatchCursor::from_u64(9));
    assert_eq!(f.source().scratch_dir().as_deref(), Some(f.scratch.path()));
    assert_eq!(DirRestore::new(f.root.path()).scratch_dir(), None);
}

#[tokio::test]
async fn fetch_imports_the_newest_into_a_scratch_dir_removed_on_drop() {
    let f = fixture();
    f.export("old", 3);
    f.export("new", 8);
    f.junk(8);
    let restored = f.source().fetch().await.unwrap();
    assert_eq!(restored.manifest().cursor, WatchCursor::from_u64(8));
    let fold = restored.fold();
    assert_eq!(fold.cursor(), WatchCursor::from_u64(8));
    assert_eq!(fold.get("k.common").unwrap().unwrap().value, b"v8");
    assert!(fold.get("k.8").unwrap().is_some());
    assert!(fold.get("k.3").unwrap().is_none());
    let scratch = restored
        .scratch()
        .expect("the fetch sets the spill dir")
        .clone();
    assert_eq!(scratch.parent(), Some(f.scratch.path()));
    assert!(scratch.exists());
    drop(restored);
    assert!(
        !scratch.exists(),
        "the guard removes the scratch dir after the fold"
    );
    assert_eq!(fs::read_dir(f.scratch.path()).unwrap().count(), 0);
    // The artifacts themselves are untouched.
    assert!(f.root.path().join("new").join("MANIFEST.json").exists());
}

#[tokio::test]
async fn fetch_skips_an_artifact_whose_payload_fails_verification() {
    let f = fixture();
    f.export("good", 4);
    f.export("tampered", 6);
    let data = f
        .root
        .path()
        .join("tampered")
        .join("data")
        .join("fold.snap");
    let mut bytes = fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&data, bytes).unwrap();
    // The manifest is fine, so `latest` names it; the import refuses it.
    assert_eq!(
        f.source().latest().await.unwrap().cursor,
        WatchCursor::from_u64(6)
    );
    let restored = f.source().fetch().await.unwrap();
    assert_eq!(restored.manifest().cursor, WatchCursor::from_u64(4));
    assert_eq!(restored.fold().cursor(), WatchCursor::from_u64(4));
    drop(restored);
    assert_eq!(
        fs::read_dir(f.scratch.path()).unwrap().count(),
        0,
        "refused imports leave nothing"
    );
}

#[tokio::test]
async fn no_valid_artifact_is_a_typed_error() {
    let f = fixture();
    let empty = f.source();
    assert!(matches!(
        empty.latest().await,
        Err(SnapshotError::ArtifactInvalid(_))
    ));
    assert!(matches!(
        empty.fetch().await,
        Err(SnapshotError::ArtifactInvalid(_))
    ));
    f.junk(1);
    match f.source().latest().await {
        Err(SnapshotError::ArtifactInvalid(why)) => {
            assert!(why.contains("no valid append-log artifact"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        f.source().fetch().await,
        Err(SnapshotError::ArtifactInvalid(_))
    ));
    let missing = DirRestore::new(f.root.path().join("missing"));
    assert!(matches!(missing.latest().await, Err(SnapshotError::Io(_))));
}

#[tokio::test]
async fn a_root_over_the_entry_cap_is_refused_not_read_in_part() {
    let f = fixture();
    f.export("only", 2);
    for i in 0..DirRestore::ENTRIES_MAX {
        fs::write(f.root.path().join(format!("junk-{i}")), b"").unwrap();
    }
    match f.source().latest().await {
        Err(SnapshotError::ArtifactInvalid(why)) => assert!(why.contains("prune"), "{why}"),
        other => panic!("{other:?}"),
    }
    fs::remove_file(f.root.path().join("junk-0")).unwrap();
    assert_eq!(
        f.source().latest().await.unwrap().cursor,
        WatchCursor::from_u64(2)
    );
}
