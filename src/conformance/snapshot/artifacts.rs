//! Export and import checks (SC-14, SC-15, SC-17): an artifact describes its payload
//! exactly (docs/artifacts.md §1 and §2), imports to the same fold and cursor, and export
//! refuses an occupied destination without touching it.

use std::fs;
use std::path::Path;

use super::support::{
    Ctx, Model, apply, blake3_hex, cur, del, ensure, entries_in, expect_state, fresh_dir, names,
    open_fresh, purge, put, read_manifest, reopen, same_cursor, visible_in,
};
use super::{Outcome, SnapshotHarness};
use crate::artifact::{ExportManifest, MANIFEST_FILE};
use crate::kv::{KvEntry, KvUpdate, VersionToken, WatchCursor};
use crate::snapshot::{SnapshotError, SnapshotStore};

/// The mixed content the export checks start from: overwrites, a delete, a
/// purge, an empty value, binary bytes, multi-byte keys and a 10-byte version.
pub(super) fn export_content() -> (Vec<KvUpdate>, WatchCursor) {
    let long_version = VersionToken::from_raw(&[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]).unwrap_or_default();
    let batch = vec![
        put("config.a", b"1", 1),
        put("config.b", b"2", 2),
        put("config.a", b"one", 3),
        put("config.empty", b"", 4),
        put("data.\u{e9}t\u{e9}", &[0, 255, 1, 254], 5),
        put("data.gone", b"x", 6),
        del("data.gone", 7),
        put("data.purged", b"y", 8),
        purge("data.purged", 9),
        KvUpdate::Put(KvEntry {
            key: "data.long-version".to_owned(),
            value: b"v".to_vec(),
            version: long_version,
        }),
        put("z", &[42u8; 5000], 11),
    ];
    let cursor =
        WatchCursor::from_version(VersionToken::from_u64(40).written_at(1_700_000_000_777));
    (batch, cursor)
}

/// A store at a fresh path holding [`export_content`], and its model.
pub(super) fn exportable_store<H: SnapshotHarness>(cx: &Ctx, h: &H) -> (H::Store, Model) {
    let (_path, mut store) = open_fresh(cx, h, "source store");
    let mut model = Model::new();
    let (batch, cursor) = export_content();
    apply(
        cx,
        &mut store,
        &mut model,
        &batch,
        &cursor,
        "source content",
    );
    (store, model)
}

/// Exports `store` to `<fresh dir>/artifact`; fails unless it succeeds, leaves
/// nothing else in that directory, and the artifact passes [`expect_artifact`].
#[track_caller]
pub(super) fn export<H: SnapshotHarness>(
    cx: &Ctx,
    h: &H,
    store: &mut H::Store,
    what: &str,
) -> (std::path::PathBuf, ExportManifest) {
    let parent = fresh_dir(cx, h);
    let dir = parent.join("artifact");
    let manifest = cx.ok(store.export_to(&dir), format_args!("{what}: export_to"));
    ensure!(
        cx,
        entries_in(cx, &parent) == names(&["artifact"]),
        "{what}: export left {:?} beside the artifact",
        entries_in(cx, &parent)
    );
    expect_artifact(cx, &dir, &manifest, &store.cursor(), what);
    (dir, manifest)
}

/// Fails unless the artifact at `dir` is complete and describes itself exactly:
/// `MANIFEST.json` decodes to `manifest` (schema 1, no scope, `cursor`, a
/// backend and version named), the root holds only `MANIFEST.json` and `data/`,
/// and every declared file exists as a regular file with the declared size and
/// BLAKE3 digest, with no undeclared file under `data/`.
#[track_caller]
pub(super) fn expect_artifact(
    cx: &Ctx,
    dir: &Path,
    manifest: &ExportManifest,
    cursor: &WatchCursor,
    what: &str,
) {
    let on_disk = read_manifest(cx, dir);
    ensure!(
        cx,
        on_disk == *manifest,
        "{what}: export_to returned {manifest:?}, but {MANIFEST_FILE} says {on_disk:?}"
    );
    ensure!(
        cx,
        manifest.schema_version == 1,
        "{what}: export_to wrote schema {}, expected 1",
        manifest.schema_version
    );
    ensure!(
        cx,
        manifest.scope.is_none(),
        "{what}: export_to wrote scope {:?}, expected none",
        manifest.scope
    );
    ensure!(
        cx,
        same_cursor(&manifest.cursor, cursor),
        "{what}: manifest cursor {:?} ({:02x?}) differs from cursor() {cursor:?} ({:02x?})",
        manifest.cursor,
        manifest.cursor.to_bytes(),
        cursor.to_bytes()
    );
    ensure!(
        cx,
        !manifest.backend.is_empty() && !manifest.backend_version.is_empty(),
        "{what}: the manifest must name its backend and format: {:?} {:?}",
        manifest.backend,
        manifest.backend_version
    );
    ensure!(
        cx,
        entries_in(cx, dir) == names(&[MANIFEST_FILE, "data"]),
        "{what}: the artifact root holds {:?}, expected only {MANIFEST_FILE} and data",
        entries_in(cx, dir)
    );
    ensure!(
        cx,
        !manifest.files.is_empty(),
        "{what}: the manifest declares no payload file"
    );
    for file in &manifest.files {
        ensure!(
            cx,
            file.path.starts_with("data/"),
            "{what}: payload path {:?} is not under data/",
            file.path
        );
        let path = dir.join(&file.path);
        let meta = cx.io(
            fs::symlink_metadata(&path),
            format_args!("{what}: declared file {}", file.path),
        );
        ensure!(
            cx,
            meta.is_file(),
            "{what}: declared path {} is not a regular file",
            file.path
        );
        let bytes = cx.io(
            fs::read(&path),
            format_args!("{what}: reading {}", file.path),
        );
        ensure!(
            cx,
            bytes.len() as u64 == file.size && blake3_hex(&bytes) == file.blake3,
            "{what}: {} is {} bytes with digest {}, the manifest says {} bytes, {}",
            file.path,
            bytes.len(),
            blake3_hex(&bytes),
            file.size,
            file.blake3
        );
    }
    let mut found = Vec::new();
    walk_files(cx, &dir.join("data"), "data", &mut found);
    let mut declared: Vec<String> = manifest.files.iter().map(|f| f.path.clone()).collect();
    declared.sort();
    found.sort();
    ensure!(
        cx,
        found == declared,
        "{what}: data/ holds {found:?}, the manifest declares {declared:?}"
    );
}

/// Every non-directory under `dir`, as `/`-joined paths starting with `rel`.
fn walk_files(cx: &Ctx, dir: &Path, rel: &str, out: &mut Vec<String>) {
    for name in entries_in(cx, dir) {
        let path = dir.join(&name);
        let child = format!("{rel}/{name}");
        let meta = cx.io(
            fs::symlink_metadata(&path),
            format_args!("inspecting {child}"),
        );
        if meta.is_dir() {
            walk_files(cx, &path, &child, out);
        } else {
            out.push(child);
        }
    }
}

/// Imports `artifact` to `<fresh dir>/fold`; fails unless it succeeds with
/// `model`'s cursor and state.
#[track_caller]
pub(super) fn import<H: SnapshotHarness>(
    cx: &Ctx,
    h: &H,
    artifact: &Path,
    model: &Model,
    what: &str,
) -> (std::path::PathBuf, H::Store) {
    let dest = fresh_dir(cx, h).join("fold");
    let (cursor, store) = cx.ok(h.import(artifact, &dest), format_args!("{what}: import"));
    ensure!(
        cx,
        same_cursor(&cursor, model.cursor()),
        "{what}: import returned cursor {cursor:?}, expected {:?}",
        model.cursor()
    );
    expect_state(cx, &store, model, what);
    (dest, store)
}

/// SC-14: export then import round-trips contents and cursor (memo and write
/// time included); the manifest is schema 1 with no scope, names a backend and
/// a format version (the same on a second export), carries `cursor()`, and
/// describes its payload exactly; the source store is unchanged and still
/// usable; the imported store survives a reopen.
pub fn sc_14_export_import_round_trip(h: &impl SnapshotHarness) -> Outcome {
    let cx = Ctx::new("sc_14_export_import_round_trip", "SC-14");
    let (mut store, mut model) = exportable_store(&cx, h);
    let memo = store.cursor().remembering(true);
    cx.ok(store.apply(&[], &memo), "apply(&[]) with a memo cursor");
    model.apply(&[], &memo);
    let (artifact, manifest) = export(&cx, h, &mut store, "first export");
    expect_state(&cx, &store, &model, "source store after export");
    let (_again, second) = export(&cx, h, &mut store, "second export");
    ensure!(
        cx,
        (second.backend.as_str(), second.backend_version.as_str())
            == (manifest.backend.as_str(), manifest.backend_version.as_str()),
        "two exports of one store name different formats: {:?}/{:?} vs {:?}/{:?}",
        manifest.backend,
        manifest.backend_version,
        second.backend,
        second.backend_version
    );
    let (dest, imported) = import(&cx, h, &artifact, &model, "import");
    let imported = reopen(
        &cx,
        h,
        imported,
        &dest,
        &model,
        "reopen of the imported store",
    );
    drop(imported);
    ensure!(
        cx,
        read_manifest(&cx, &artifact) == manifest,
        "import changed the artifact's manifest"
    );
    let mut source_model = model.clone();
    apply(
        &cx,
        &mut store,
        &mut source_model,
        &[put("after.export", b"1", 41)],
        &cur(41),
        "source apply after export",
    );
    Outcome::Passed
}

/// SC-15: a store installed by import keeps folding: overwrites, deletes and
/// purges of imported keys, new keys and an empty batch, then a reopen; the
/// source store is unaffected; and the imported store exports and imports again
/// to the same fold.
pub fn sc_15_import_then_apply(h: &impl SnapshotHarness) -> Outcome {
    let cx = Ctx::new("sc_15_import_then_apply", "SC-15");
    let (mut source, model) = exportable_store(&cx, h);
    let (artifact, _) = export(&cx, h, &mut source, "export");
    let (dest, mut store) = import(&cx, h, &artifact, &model, "import");
    let mut model2 = model.clone();
    let batch = [
        put("config.a", b"after import", 41),
        del("config.b", 42),
        purge("z", 43),
        put("new.key", b"", 44),
        put("data.gone", b"back", 45),
    ];
    apply(
        &cx,
        &mut store,
        &mut model2,
        &batch,
        &cur(45),
        "first batch after import",
    );
    apply(
        &cx,
        &mut store,
        &mut model2,
        &[],
        &cur(46),
        "empty batch after import",
    );
    expect_state(&cx, &store, &model2, "after applying to the imported store");
    let mut store = reopen(
        &cx,
        h,
        store,
        &dest,
        &model2,
        "reopen of the imported store",
    );
    apply(
        &cx,
        &mut store,
        &mut model2,
        &[del("config.a", 47), put("config.c", b"3", 48)],
        &cur(48),
        "batch after reopen",
    );
    let mut store = reopen(
        &cx,
        h,
        store,
        &dest,
        &model2,
        "second reopen of the imported store",
    );
    expect_state(
        &cx,
        &source,
        &model,
        "source store after the import side moved on",
    );
    let (artifact2, _) = export(&cx, h, &mut store, "export of the imported store");
    let (dest3, mut third) = import(&cx, h, &artifact2, &model2, "import of the re-export");
    apply(
        &cx,
        &mut third,
        &mut model2,
        &[put("third", b"3", 49)],
        &cur(49),
        "apply on the second import",
    );
    reopen(
        &cx,
        h,
        third,
        &dest3,
        &model2,
        "reopen of the second import",
    );
    Outcome::Passed
}

/// SC-17: `export_to` refuses, with `ArtifactInvalid`, a non-empty directory, a
/// file and (on Unix) a symlink to an empty directory, leaving each exactly as
/// it was and nothing visible beside it; it accepts an existing empty
/// directory; the store is unchanged by the refusals. A new (empty) store
/// exports and imports to an empty store with cursor none, an emptied store to
/// an empty store with its cursor, and a store holding only the memo-only none
/// cursor to the same.
pub fn sc_17_export_destination_rules(h: &impl SnapshotHarness) -> Outcome {
    let cx = Ctx::new("sc_17_export_destination_rules", "SC-17");
    let (mut store, model) = exportable_store(&cx, h);
    let parent = fresh_dir(&cx, h);
    let nonempty = parent.join("nonempty");
    cx.io(fs::create_dir(&nonempty), "creating a directory");
    cx.io(
        fs::write(nonempty.join("keep.txt"), b"keep"),
        "creating a file in it",
    );
    let file = parent.join("file");
    cx.io(fs::write(&file, b"occupied"), "creating a file");
    let mut expected_visible = vec!["file", "nonempty"];
    let invalid = |e: &SnapshotError| matches!(e, SnapshotError::ArtifactInvalid(_));
    cx.expect_err(
        store.export_to(&nonempty),
        "ArtifactInvalid",
        invalid,
        "export_to a non-empty directory",
    );
    ensure!(
        cx,
        entries_in(&cx, &nonempty) == names(&["keep.txt"])
            && fs::read(nonempty.join("keep.txt")).ok().as_deref() == Some(&b"keep"[..]),
        "a refused export changed the non-empty destination: {:?}",
        entries_in(&cx, &nonempty)
    );
    cx.expect_err(
        store.export_to(&file),
        "ArtifactInvalid",
        invalid,
        "export_to a file",
    );
    ensure!(
        cx,
        fs::read(&file).ok().as_deref() == Some(&b"occupied"[..]),
        "a refused export changed the file at the destination"
    );
    #[cfg(unix)]
    {
        let target = parent.join("target");
        let link = parent.join("link");
        cx.io(fs::create_dir(&target), "creating a link target");
        cx.io(
            std::os::unix::fs::symlink(&target, &link),
            "creating a symlink",
        );
        cx.expect_err(
            store.export_to(&link),
            "ArtifactInvalid",
            invalid,
            "export_to a symlink to an empty directory",
        );
        let still_link = fs::symlink_metadata(&link)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        ensure!(
            cx,
            still_link && entries_in(&cx, &target).is_empty(),
            "a refused export through a symlink changed it or its target ({:?})",
            entries_in(&cx, &target)
        );
        expected_visible.extend(["link", "target"]);
    }
    ensure!(
        cx,
        visible_in(&cx, &parent) == names(&expected_visible),
        "refused exports left {:?} in the destination directory",
        visible_in(&cx, &parent)
    );
    expect_state(&cx, &store, &model, "store after refused exports");

    let empty_dir = fresh_dir(&cx, h);
    let manifest = cx.ok(
        store.export_to(&empty_dir),
        "export_to an existing empty directory",
    );
    expect_artifact(
        &cx,
        &empty_dir,
        &manifest,
        &store.cursor(),
        "export to an empty directory",
    );
    drop(import(
        &cx,
        h,
        &empty_dir,
        &model,
        "import of the export to an empty directory",
    ));

    let (_path, mut fresh) = open_fresh(&cx, h, "new store");
    let (artifact, manifest) = export(&cx, h, &mut fresh, "export of a new store");
    ensure!(
        cx,
        manifest.cursor.is_none(),
        "a new store exported cursor {:?}, expected none",
        manifest.cursor
    );
    let (dest, imported) = import(
        &cx,
        h,
        &artifact,
        &Model::new(),
        "import of an empty artifact",
    );
    reopen(
        &cx,
        h,
        imported,
        &dest,
        &Model::new(),
        "reopen of the empty import",
    );

    let (_path, mut emptied) = open_fresh(&cx, h, "store to empty");
    let mut emptied_model = Model::new();
    apply(
        &cx,
        &mut emptied,
        &mut emptied_model,
        &[put("k", b"v", 1), del("k", 2)],
        &cur(2),
        "put and delete",
    );
    let (artifact, _) = export(&cx, h, &mut emptied, "export of an emptied store");
    let (dest, imported) = import(
        &cx,
        h,
        &artifact,
        &emptied_model,
        "import of an emptied store",
    );
    reopen(
        &cx,
        h,
        imported,
        &dest,
        &emptied_model,
        "reopen of the emptied import",
    );

    let (_path, mut memo_only) = open_fresh(&cx, h, "store with only a memo");
    let mut memo_model = Model::new();
    let memo = WatchCursor::none().remembering(true);
    apply(
        &cx,
        &mut memo_only,
        &mut memo_model,
        &[],
        &memo,
        "memo-only none cursor",
    );
    let (artifact, _) = export(&cx, h, &mut memo_only, "export of a memo-only store");
    let (dest, imported) = import(
        &cx,
        h,
        &artifact,
        &memo_model,
        "import of a memo-only store",
    );
    reopen(
        &cx,
        h,
        imported,
        &dest,
        &memo_model,
        "reopen of the memo-only import",
    );
    Outcome::Passed
}
