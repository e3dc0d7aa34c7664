//! Shared machinery of the snapshot checks: the per-check context and its
//! failure messages, update builders, the reference fold every check compares
//! against, whole-store comparisons, and small filesystem helpers. It asserts no
//! rule of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::SnapshotHarness;
use crate::artifact::{ExportManifest, MANIFEST_FILE};
use crate::kv::{KvEntry, KvUpdate, VersionToken, WatchCursor};
use crate::protocol::manifest::{decode_manifest, encode_manifest};
use crate::snapshot::{SnapshotError, SnapshotStore};

/// Fails the current check unless `cond` holds.
macro_rules! ensure {
    ($cx:expr, $cond:expr, $($arg:tt)+) => {
        if !$cond {
            $cx.fail(format_args!($($arg)+))
        }
    };
}
pub(crate) use ensure;

/// One live entry as the checks compare it: key, value, version bytes. The
/// version's write time is not part of a stored entry (only cursors keep it).
pub(crate) type Row = (String, Vec<u8>, Vec<u8>);

/// One running check: its function name and its id in docs/snapshots.md, "Conformance
/// checks".
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    check: &'static str,
    id: &'static str,
}

impl Ctx {
    /// The context of check `check` (`SC-nn`).
    pub(crate) fn new(check: &'static str, id: &'static str) -> Self {
        Self { check, id }
    }

    /// Ends the check with a message naming it.
    #[track_caller]
    pub(crate) fn fail(&self, message: impl Display) -> ! {
        panic!(
            "snapshot conformance check `{}` ({}) failed: {message}",
            self.check, self.id
        )
    }

    /// The value of `result`, or a failure naming `what`.
    #[track_caller]
    pub(crate) fn ok<T>(&self, result: Result<T, SnapshotError>, what: impl Display) -> T {
        match result {
            Ok(value) => value,
            Err(error) => self.fail(format_args!("{what}: unexpected error {error:?}")),
        }
    }

    /// The value of a filesystem `result` of the check's own set-up, or a failure.
    #[track_caller]
    pub(crate) fn io<T>(&self, result: io::Result<T>, what: impl Display) -> T {
        match result {
            Ok(value) => value,
            Err(error) => self.fail(format_args!("{what}: {error}")),
        }
    }

    /// Fails unless `result` is an `Err` that `expected` accepts; returns nothing
    /// on success, so a wrongly accepted store is dropped at once.
    #[track_caller]
    pub(crate) fn expect_err<T>(
        &self,
        result: Result<T, SnapshotError>,
        expected: &str,
        accept: impl Fn(&SnapshotError) -> bool,
        what: impl Display,
    ) {
        match result {
            Ok(_) => self.fail(format_args!("{what}: expected Err({expected}), got Ok")),
            Err(error) if accept(&error) => {}
            Err(error) => self.fail(format_args!(
                "{what}: expected Err({expected}), got Err({error:?})"
            )),
        }
    }
}

/// A Put of `value` at revision `rev`.
pub(crate) fn put(key: &str, value: &[u8], rev: u64) -> KvUpdate {
    KvUpdate::Put(KvEntry {
        key: key.to_owned(),
        value: value.to_vec(),
        version: VersionToken::from_u64(rev),
    })
}

/// A Delete marker at revision `rev`.
pub(crate) fn del(key: &str, rev: u64) -> KvUpdate {
    KvUpdate::Delete {
        key: key.to_owned(),
        version: VersionToken::from_u64(rev),
    }
}

/// A Purge marker at revision `rev`.
pub(crate) fn purge(key: &str, rev: u64) -> KvUpdate {
    KvUpdate::Purge {
        key: key.to_owned(),
        version: VersionToken::from_u64(rev),
    }
}

/// The cursor at revision `rev`.
pub(crate) fn cur(rev: u64) -> WatchCursor {
    WatchCursor::from_u64(rev)
}

/// Cursor equality as a store must keep it: the version bytes and the memo
/// (`==`), and also the write time (the encoded bytes).
pub(crate) fn same_cursor(a: &WatchCursor, b: &WatchCursor) -> bool {
    a == b && a.to_bytes() == b.to_bytes()
}

/// The reference fold (docs/formats.md §10; docs/snapshots.md, "The store contract
/// (`SnapshotStore`)"): Put inserts or overwrites, Delete and Purge remove, the cursor is
/// the last one applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Model {
    entries: BTreeMap<String, (Vec<u8>, Vec<u8>)>,
    cursor: WatchCursor,
}

impl Model {
    /// A model of an empty fold with cursor none.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Folds `batch`, then takes `cursor`.
    pub(crate) fn apply(&mut self, batch: &[KvUpdate], cursor: &WatchCursor) {
        for update in batch {
            self.fold(update);
        }
        self.cursor = cursor.clone();
    }

    /// Folds one update; the cursor is unchanged.
    pub(crate) fn fold(&mut self, update: &KvUpdate) {
        match update {
            KvUpdate::Put(entry) => {
                self.entries.insert(
                    entry.key.clone(),
                    (entry.value.clone(), entry.version.as_bytes().to_vec()),
                );
            }
            KvUpdate::Delete { key, .. } | KvUpdate::Purge { key, .. } => {
                self.entries.remove(key);
            }
        }
    }

    /// The cursor.
    pub(crate) fn cursor(&self) -> &WatchCursor {
        &self.cursor
    }

    /// Every live row whose key starts with `prefix`, ascending by key bytes.
    pub(crate) fn rows(&self, prefix: &str) -> Vec<Row> {
        self.entries
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(key, (value, version))| (key.clone(), value.clone(), version.clone()))
            .collect()
    }

    /// Every live key.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The live row of `key`.
    pub(crate) fn row(&self, key: &str) -> Option<Row> {
        self.entries
            .get(key)
            .map(|(value, version)| (key.to_owned(), value.clone(), version.clone()))
    }

    /// Whether the fold holds no entry.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One entry as a [`Row`].
pub(crate) fn row_of(entry: &KvEntry) -> Row {
    (
        entry.key.clone(),
        entry.value.clone(),
        entry.version.as_bytes().to_vec(),
    )
}

/// `store.range(prefix)` as rows; fails the check on an error or on a key that
/// does not start with `prefix`.
#[track_caller]
pub(crate) fn range_rows<S: SnapshotStore>(
    cx: &Ctx,
    store: &S,
    prefix: &str,
    what: &str,
) -> Vec<Row> {
    let entries = cx.ok(
        store.range(prefix),
        format_args!("{what}: range({prefix:?})"),
    );
    entries.iter().map(row_of).collect()
}

/// The whole visible state: cursor and every row.
#[track_caller]
pub(crate) fn state_of<S: SnapshotStore>(
    cx: &Ctx,
    store: &S,
    what: &str,
) -> (WatchCursor, Vec<Row>) {
    (store.cursor(), range_rows(cx, store, "", what))
}

/// Fails unless the store's visible state equals `model`: `cursor()` (bytes
/// included), `range("")`, `get` of every model key, and `has_entries`.
#[track_caller]
pub(crate) fn expect_state<S: SnapshotStore>(cx: &Ctx, store: &S, model: &Model, what: &str) {
    let cursor = store.cursor();
    ensure!(
        cx,
        same_cursor(&cursor, model.cursor()),
        "{what}: cursor() is {cursor:?} ({:02x?}), expected {:?} ({:02x?})",
        cursor.to_bytes(),
        model.cursor(),
        model.cursor().to_bytes()
    );
    let rows = range_rows(cx, store, "", what);
    let expected = model.rows("");
    if rows != expected {
        cx.fail(format_args!(
            "{what}: range(\"\") is {}, expected {}",
            show_rows(&rows),
            show_rows(&expected)
        ));
    }
    for key in model.keys() {
        let got = cx.ok(store.get(key), format_args!("{what}: get({key:?})"));
        ensure!(
            cx,
            got.as_ref().map(row_of) == model.row(key),
            "{what}: get({key:?}) is {got:?}, expected {:?}",
            model.row(key)
        );
    }
    let has = cx.ok(store.has_entries(), format_args!("{what}: has_entries()"));
    ensure!(
        cx,
        has != model.is_empty(),
        "{what}: has_entries() is {has}, but the fold holds {} entries",
        expected.len()
    );
}

/// Rows in a short, readable form for failure messages (long values are cut).
pub(crate) fn show_rows(rows: &[Row]) -> String {
    let shown: Vec<String> = rows
        .iter()
        .map(|(key, value, version)| {
            let key = if key.len() > 40 {
                format!("{}…({} bytes)", cut(key, 40), key.len())
            } else {
                key.clone()
            };
            let value = if value.len() > 24 {
                format!(
                    "{:?}…({} bytes)",
                    String::from_utf8_lossy(&value[..24]),
                    value.len()
                )
            } else {
                format!("{:?}", String::from_utf8_lossy(value))
            };
            format!("{key:?}={value}@{version:02x?}")
        })
        .collect();
    format!("[{}]", shown.join(", "))
}

/// Opens the store at `path` through the harness.
#[track_caller]
pub(crate) fn open<H: SnapshotHarness>(
    cx: &Ctx,
    h: &H,
    path: &Path,
    what: &str,
) -> (WatchCursor, H::Store) {
    cx.ok(
        h.open(path),
        format_args!("{what}: open({})", path.display()),
    )
}

/// Opens a new store at a fresh path; fails unless it starts empty with cursor none.
#[track_caller]
pub(crate) fn open_fresh<H: SnapshotHarness>(cx: &Ctx, h: &H, what: &str) -> (PathBuf, H::Store) {
    let path = h.fresh_path();
    let (cursor, store) = open(cx, h, &path, what);
    ensure!(
        cx,
        same_cursor(&cursor, &WatchCursor::none()),
        "{what}: a new store returned resume cursor {cursor:?}, expected none"
    );
    expect_state(cx, &store, &Model::new(), what);
    (path, store)
}

/// Drops `store` (closing it) and opens `path` again; fails unless the returned
/// cursor and the visible state equal `model`.
#[track_caller]
pub(crate) fn reopen<H: SnapshotHarness>(
    cx: &Ctx,
    h: &H,
    store: H::Store,
    path: &Path,
    model: &Model,
    what: &str,
) -> H::Store {
    drop(store);
    let (cursor, store) = open(cx, h, path, what);
    ensure!(
        cx,
        same_cursor(&cursor, model.cursor()),
        "{what}: reopening returned resume cursor {cursor:?}, expected {:?}",
        model.cursor()
    );
    expect_state(cx, &store, model, what);
    store
}

/// Applies `batch` with `cursor` to both the store and the model; fails on an error.
#[track_caller]
pub(crate) fn apply<S: SnapshotStore>(
    cx: &Ctx,
    store: &mut S,
    model: &mut Model,
    batch: &[KvUpdate],
    cursor: &WatchCursor,
    what: &str,
) {
    cx.ok(store.apply(batch, cursor), format_args!("{what}: apply"));
    model.apply(batch, cursor);
}

/// A fresh, existing, empty directory from the harness.
#[track_caller]
pub(crate) fn fresh_dir<H: SnapshotHarness>(cx: &Ctx, h: &H) -> PathBuf {
    let dir = h.fresh_path();
    cx.io(
        fs::create_dir_all(&dir),
        format_args!("creating {}", dir.display()),
    );
    dir
}

/// Every entry name in `dir` (hidden ones included).
#[track_caller]
pub(crate) fn entries_in(cx: &Ctx, dir: &Path) -> BTreeSet<String> {
    let read = cx.io(fs::read_dir(dir), format_args!("listing {}", dir.display()));
    read.map(|entry| {
        let entry = cx.io(entry, format_args!("listing {}", dir.display()));
        entry.file_name().to_string_lossy().into_owned()
    })
    .collect()
}

/// The entry names in `dir` that are not hidden (do not start with `.`).
#[track_caller]
pub(crate) fn visible_in(cx: &Ctx, dir: &Path) -> BTreeSet<String> {
    entries_in(cx, dir)
        .into_iter()
        .filter(|name| !name.starts_with('.'))
        .collect()
}

/// A set of names, for comparisons with [`entries_in`].
pub(crate) fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|name| (*name).to_owned()).collect()
}

/// Whether anything (a file, a directory or a link) exists at `path`.
pub(crate) fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Copies the tree at `src` (directories and regular files) to `dst`.
#[track_caller]
pub(crate) fn copy_tree(cx: &Ctx, src: &Path, dst: &Path) {
    cx.io(
        fs::create_dir_all(dst),
        format_args!("creating {}", dst.display()),
    );
    let read = cx.io(fs::read_dir(src), format_args!("listing {}", src.display()));
    for entry in read {
        let entry = cx.io(entry, format_args!("listing {}", src.display()));
        let kind = cx.io(
            entry.file_type(),
            format_args!("inspecting {:?}", entry.path()),
        );
        let target = dst.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(cx, &entry.path(), &target);
        } else if kind.is_file() {
            cx.io(
                fs::copy(entry.path(), &target),
                format_args!("copying {:?}", entry.path()),
            );
        } else {
            cx.fail(format_args!(
                "{:?} in an exported artifact is neither a file nor a directory",
                entry.path()
            ));
        }
    }
}

/// The decoded `MANIFEST.json` of the artifact at `dir`.
#[track_caller]
pub(crate) fn read_manifest(cx: &Ctx, dir: &Path) -> ExportManifest {
    let path = dir.join(MANIFEST_FILE);
    let bytes = cx.io(fs::read(&path), format_args!("reading {}", path.display()));
    match decode_manifest(&bytes) {
        Ok(manifest) => manifest,
        Err(error) => cx.fail(format_args!("{} does not decode: {error}", path.display())),
    }
}

/// Rewrites the artifact's `MANIFEST.json` with `edit` applied (canonical bytes,
/// even when the edit makes the manifest invalid).
#[track_caller]
pub(crate) fn edit_manifest(cx: &Ctx, dir: &Path, edit: impl FnOnce(&mut ExportManifest)) {
    let mut manifest = read_manifest(cx, dir);
    edit(&mut manifest);
    let path = dir.join(MANIFEST_FILE);
    cx.io(
        fs::write(&path, encode_manifest(&manifest)),
        format_args!("writing {}", path.display()),
    );
}

/// Lowercase hex BLAKE3 digest of `bytes`.
pub(crate) fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// The longest prefix of `text` of at most `max_bytes` bytes that ends on a
/// character boundary.
fn cut(text: &str, max_bytes: usize) -> &str {
    let mut end = max_bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
