//! Export staging (docs/artifacts.md §2): what a published artifact holds, which
//! destinations are refused, which payloads are refused, scope stamping, and concurrent
//! exports (C4).

use std::fs;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;

use super::*;
use crate::artifact::disk::encode_checked;
use crate::artifact::{ArtifactFile, MANIFEST_FILE, stamp_scope};
use crate::kv::VersionToken;
use crate::protocol::manifest::{decode_manifest, encode_manifest};

#[test]
fn export_publishes_a_complete_schema_1_artifact() {
    let scratch = Scratch::new();
    let dest = scratch.path("artifact");
    let cursor =
        WatchCursor::from_version(VersionToken::from_u64(42).written_at(1_700_000_000_000))
            .remembering(true);
    let manifest = export_log(&dest, &cursor, b"payload body").expect("export");
    let content = payload_bytes(&cursor, b"payload body");
    assert_eq!(
        manifest,
        ExportManifest {
            schema_version: 1,
            backend: LOG_BACKEND.into(),
            backend_version: TEST_VERSION.into(),
            cursor: cursor.clone(),
            created_at_unix: CREATED_AT,
            files: vec![ArtifactFile {
                path: "data/fold.snap".into(),
                size: content.len() as u64,
                blake3: blake3::hash(&content).to_hex().to_string(),
            }],
            scope: None,
        }
    );
    assert_eq!(names(&dest), [MANIFEST_FILE, "data"]);
    assert_eq!(names(&dest.join("data")), [LOG_FILE]);
    assert_eq!(fs::read(dest.join("data/fold.snap")).unwrap(), content);
    let bytes = fs::read(dest.join(MANIFEST_FILE)).unwrap();
    assert_eq!(
        bytes,
        encode_manifest(&manifest),
        "the manifest is written canonically"
    );
    let read = decode_manifest(&bytes).unwrap();
    assert_eq!(read, manifest);
    assert_eq!(read.cursor.written_ms(), Some(1_700_000_000_000));
    assert_no_leftovers(scratch.root.path());
}

#[test]
fn export_into_an_existing_empty_directory() {
    let scratch = Scratch::new();
    let dest = scratch.path("artifact");
    fs::create_dir(&dest).unwrap();
    export_log(&dest, &WatchCursor::from_u64(1), b"x").expect("an empty directory is free");
    assert_eq!(names(&dest), [MANIFEST_FILE, "data"]);
    assert_no_leftovers(scratch.root.path());
}

#[test]
fn export_of_a_directory_payload_lists_every_file_sorted() {
    let scratch = Scratch::new();
    let dest = scratch.path("artifact");
    let manifest = export_tree(&dest, &WatchCursor::from_u64(9)).expect("export");
    let paths: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["data/db/a", "data/db/sub/b", "data/db/z", "data/version"]
    );
    assert_eq!(
        manifest.files[1].size,
        3 * 1024 * 1024 + 5,
        "hashing crosses buffer boundaries"
    );
    assert_eq!(
        manifest.files[1].blake3,
        blake3::hash(&vec![7u8; 3 * 1024 * 1024 + 5])
            .to_hex()
            .to_string()
    );
    assert_eq!(
        manifest.files[2].blake3,
        blake3::hash(b"").to_hex().to_string()
    );
}

#[test]
fn export_without_payload_declares_no_files() {
    let scratch = Scratch::new();
    let dest = scratch.path("artifact");
    let stage = ExportStage::new(&dest).unwrap();
    let manifest = stage
        .seal_and_finalize_at(LOG_BACKEND, TEST_VERSION, &WatchCursor::none(), CREATED_AT)
        .expect("an empty payload is an artifact");
    assert!(manifest.files.is_empty());
    assert_eq!(names(&dest), [MANIFEST_FILE]);
}

#[test]
fn export_refuses_a_non_empty_destination() {
    let scratch = Scratch::new();
    let dest = scratch.path("artifact");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("keep"), b"mine").unwrap();
    let message = expect_invalid(ExportStage::new(&dest));
    assert!(message.contains("exists and is not empty"), "{message}");
    assert_eq!(names(&dest), ["keep"]);
    assert_eq!(fs::read(dest.join("keep")).unwrap(), b"mine");
    assert_no_leftovers(scratch.root.path());
}

#[test]
fn export_refuses_a_file_or_symlink_destination() {
    let scratch = Scratch::new();
    let file = scratch.path("file");
    fs::write(&file, b"x").unwrap();
    let message = expect_invalid(ExportStage::new(&file));
    assert!(message.contains("already exists"), "{message}");
    #[cfg(unix)]
    {
        // A symlink to an empty directory is refused, never followed.
        let empty = scratch.path("empty");
        fs::create_dir(&empty).unwrap();
        let link = scratch.path("link");
        std::os::unix::fs::symlink(&empty, &link).unwrap();
        let message = expect_invalid(ExportStage::new(&link));
        assert!(message.contains("already exists"), "{message}");
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(names(&empty), Vec::<String>::new());
    }
    assert_no_leftovers(scratch.root.path());
}

#[test]
fn export_refuses_a_destination_without_parent() {
    let message = expect_invalid(ExportStage::new(Path::new("/")));
    assert!(message.contains("no parent"), "{message}");
}

#[test]
fn export_into_a_missing_parent_is_io() {
    let scratch = Scratch::new();
    let result = ExportStage::new(&scratch.path("missing/artifact"));
    assert!(matches!(result, Err(SnapshotError::Io(_))), "{result:?}");
}

#[cfg(unix)]
#[test]
fn export_refuses_a_symlink_in_the_payload() {
    let scratch = Scratch::new();
    let dest = scratch.path("artifact");
    let outside = scratch.path("outside");
    fs::write(&outside, b"secret").unwrap();
    let stage = ExportStage::new(&dest).unwrap();
    let data = stage.create_payload_dir().unwrap();
    write_file(&data.join(LOG_FILE), b"ok");
    std::os::unix::fs::symlink(&outside, data.join("link")).unwrap();
    let message =
        expect_invalid(stage.seal_and_finalize(LOG_BACKEND, TEST_VERSION, &WatchCursor::none()));
    assert!(message.contains("non-regular file: data/link"), "{message}");
    assert!(!dest.exists());
    assert_no_leftovers(scratch.root.path());
}

#[cfg(unix)]
#[test]
fn export_refuses_a_fifo_in_the_payload() {
    let scratch = Scratch::new();
    let dest = scratch.path("artifact");
    let stage = ExportStage::new(&dest).unwrap();
    let data = stage.create_payload_dir().unwrap();
    let fifo = data.join("pipe");
    match std::process::Command::new("mkfifo").arg(&fifo).status() {
        Ok(status) if status.success() => {}
        _ => return, // no mkfifo here; the symlink case covers the same walk branch
    }
    let message =
        expect_invalid(stage.seal_and_finalize(LOG_BACKEND, TEST_VERSION, &WatchCursor::none()));
    assert!(message.contains("non-regular file: data/pipe"), "{message}");
    assert!(!dest.exists());
    assert_no_leftovers(scratch.root.path());
}

#[cfg(target_os = "linux")]
#[test]
fn export_refuses_a_non_utf8_name() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let scratch = Scratch::new();
    let dest = scratch.path("artifact");
    let stage = ExportStage::new(&dest).unwrap();
    let data = stage.create_payload_dir().unwrap();
    write_file(&data.join(OsStr::from_bytes(b"bad\xff")), b"x");
    let message =
        expect_invalid(stage.seal_and_finalize(LOG_BACKEND, TEST_VERSION, &WatchCursor::none()));
    assert!(message.contains("not UTF-8"), "{message}");
    assert!(!dest.exists());
    assert_no_leftovers(scratch.root.path());
}

#[test]
fn export_refuses_a_payload_name_a_reader_would_refuse() {
    let scratch = Scratch::new();
    let dest = scratch.path("artifact");
    let stage = ExportStage::new(&dest).unwrap();
    let data = stage.create_payload_dir().unwrap();
    write_file(&data.join("back\\slash"), b"x");
    let message =
        expect_invalid(stage.seal_and_finalize(LOG_BACKEND, TEST_VERSION, &WatchCursor::none()));
    assert!(message.contains("backslash"), "{message}");
    assert!(!dest.exists());
    assert_no_leftovers(scratch.root.path());
}

#[test]
fn export_rechecks_a_destination_taken_meanwhile() {
    let scratch = Scratch::new();
    let dest = scratch.path("artifact");
    let stage = ExportStage::new(&dest).unwrap();
    let data = stage.create_payload_dir().unwrap();
    write_file(&data.join(LOG_FILE), b"x");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("other"), b"someone else's").unwrap();
    let message =
        expect_invalid(stage.seal_and_finalize(LOG_BACKEND, TEST_VERSION, &WatchCursor::none()));
    assert!(message.contains("not empty"), "{message}");
    assert_eq!(names(&dest), ["other"]);
    assert_no_leftovers(scratch.root.path());
}

#[test]
fn an_abandoned_export_stage_is_removed() {
    let scratch = Scratch::new();
    let stage = ExportStage::new(&scratch.path("artifact")).unwrap();
    let data = stage.create_payload_dir().unwrap();
    write_file(&data.join(LOG_FILE), b"x");
    assert_eq!(stages_in(scratch.root.path()).len(), 1);
    drop(stage);
    assert_no_leftovers(scratch.root.path());
    assert!(!scratch.path("artifact").exists());
}

#[test]
fn writers_refuse_a_manifest_the_reader_would_refuse() {
    let mut manifest = ExportManifest {
        schema_version: 1,
        backend: LOG_BACKEND.into(),
        backend_version: TEST_VERSION.into(),
        cursor: WatchCursor::none(),
        created_at_unix: 0,
        files: vec![ArtifactFile {
            path: "data/x".into(),
            size: 0,
            blake3: "NOT-HEX".into(),
        }],
        scope: None,
    };
    let err = encode_checked(&manifest).unwrap_err();
    assert!(
        matches!(&err, SnapshotError::Backend(m) if m.starts_with("refusing to write an invalid manifest")),
        "{err:?}"
    );
    manifest.files.clear();
    manifest.scope = Some(vec![]);
    assert!(matches!(
        encode_checked(&manifest),
        Err(SnapshotError::Backend(_))
    ));
}

#[test]
fn stamp_scope_upgrades_to_schema_2_atomically() {
    let scratch = Scratch::new();
    let dest = scratch.path("artifact");
    let exported = export_log(&dest, &WatchCursor::from_u64(5), b"body").unwrap();
    let payload_before = fs::read(dest.join("data/fold.snap")).unwrap();
    let scope = vec!["config.".to_owned(), String::new()];
    let stamped = stamp_scope(&dest, &scope).expect("stamp");
    assert_eq!(
        stamped,
        ExportManifest {
            schema_version: 2,
            scope: Some(scope),
            ..exported
        }
    );
    let bytes = fs::read(dest.join(MANIFEST_FILE)).unwrap();
    assert_eq!(bytes, encode_manifest(&stamped));
    assert_eq!(
        fs::read(dest.join("data/fold.snap")).unwrap(),
        payload_before
    );
    assert_eq!(names(&dest), [MANIFEST_FILE, "data"], "no temp file left");
    // A stamped artifact still imports.
    let imported = import_log(&dest, &scratch.path("fold")).expect("import");
    assert_eq!(imported, stamped);
}

#[test]
fn stamp_scope_refuses_a_directory_without_manifest() {
    let scratch = Scratch::new();
    let message = expect_invalid(stamp_scope(scratch.root.path(), &[String::new()]));
    assert!(message.contains("no MANIFEST.json"), "{message}");
}

#[test]
fn concurrent_exports_to_one_destination_have_one_winner() {
    const ITERATIONS: usize = 100;
    let scratch = Scratch::new();
    for iteration in 0..ITERATIONS {
        let dest = scratch.path(&format!("artifact-{iteration}"));
        let barrier = Arc::new(Barrier::new(2));
        let workers: Vec<_> = (0..2u64)
            .map(|worker| {
                let (dest, barrier) = (dest.clone(), Arc::clone(&barrier));
                thread::spawn(move || {
                    let cursor = WatchCursor::from_u64(worker + 1);
                    barrier.wait();
                    export_log(&dest, &cursor, &[worker as u8; 64]).map(|m| m.cursor)
                })
            })
            .collect();
        let results: Vec<_> = workers
            .into_iter()
            .map(|w| w.join().expect("no panic"))
            .collect();
        let winners: Vec<&WatchCursor> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "iteration {iteration}: {results:?}");
        for loser in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(
                matches!(
                    loser,
                    SnapshotError::ArtifactInvalid(_) | SnapshotError::Io(_)
                ),
                "{loser:?}"
            );
        }
        // The published artifact is the winner's, whole and unmixed.
        let imported = import_log(&dest, &scratch.path(&format!("fold-{iteration}"))).unwrap();
        assert_eq!(&imported.cursor, winners[0]);
    }
    assert_no_leftovers(scratch.root.path());
}
