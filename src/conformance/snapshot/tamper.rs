//! SC-16: import refuses every tampered artifact and every occupied destination with
//! `ArtifactInvalid` (docs/artifacts.md §3 and §4), leaving nothing at the destination and
//! nothing visible beside it. Each case tampers a fresh copy of one pristine export; the
//! pristine artifact itself is only read.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::artifacts::{expect_artifact, export, exportable_store, import};
use super::support::{
    Ctx, copy_tree, edit_manifest, ensure, entries_in, exists, fresh_dir, names, visible_in,
};
use super::{Outcome, SnapshotHarness};
use crate::artifact::{ExportManifest, MANIFEST_FILE};
use crate::kv::WatchCursor;
use crate::snapshot::{SnapshotError, SnapshotStore};

/// One way to spoil an artifact copy.
type Tamper = Box<dyn Fn(&Ctx, &Path)>;

/// SC-16: import refuses, with `ArtifactInvalid`, nothing at the destination
/// afterwards and no non-hidden leftovers beside it: a tampered payload byte
/// (first, middle, last); a truncated, an extended and a missing payload file;
/// an undeclared extra file (in `data/` and in a subdirectory); a symlink in the
/// payload and a declared file that is a symlink (Unix); a missing and a
/// malformed `MANIFEST.json`; a wrong backend; an unsupported `schema_version`;
/// both schema/scope mismatches; wrong `backend_version`s; a doctored manifest
/// cursor (other revisions, none, the memo set); and an occupied destination (a
/// non-empty directory, a file, and on Unix a symlink), which stays as it was.
/// Controls: an untouched copy and a schema-2 copy with a scope import fine,
/// and the pristine artifact is unchanged at the end.
pub fn sc_16_import_rejects_tampering(h: &impl SnapshotHarness) -> Outcome {
    let cx = Ctx::new("sc_16_import_rejects_tampering", "SC-16");
    let (mut store, model) = exportable_store(&cx, h);
    let (pristine, manifest) = export(&cx, h, &mut store, "export");

    let copy = copy_of(&cx, h, &pristine);
    drop(import(&cx, h, &copy, &model, "control: an untouched copy"));
    let copy = copy_of(&cx, h, &pristine);
    edit_manifest(&cx, &copy, |m| {
        m.schema_version = 2;
        m.scope = Some(vec![String::new()]);
    });
    drop(import(
        &cx,
        h,
        &copy,
        &model,
        "control: a schema-2 copy with a scope",
    ));

    for (label, tamper) in tamper_cases(&cx, &manifest) {
        let copy = copy_of(&cx, h, &pristine);
        tamper(&cx, &copy);
        expect_refused(&cx, h, &copy, &label);
    }
    occupied_destinations(&cx, h, &pristine);
    expect_artifact(
        &cx,
        &pristine,
        &manifest,
        &store.cursor(),
        "the pristine artifact after every case",
    );
    Outcome::Passed
}

/// A fresh copy of the artifact at `pristine`.
fn copy_of<H: SnapshotHarness>(cx: &Ctx, h: &H, pristine: &Path) -> PathBuf {
    let copy = fresh_dir(cx, h).join("artifact");
    copy_tree(cx, pristine, &copy);
    copy
}

/// Imports `artifact` into `<fresh dir>/fold`; fails unless the import is
/// refused with `ArtifactInvalid`, nothing exists at the destination
/// afterwards, and nothing visible was left beside it.
#[track_caller]
fn expect_refused<H: SnapshotHarness>(cx: &Ctx, h: &H, artifact: &Path, label: &str) {
    let parent = fresh_dir(cx, h);
    let dest = parent.join("fold");
    cx.expect_err(
        h.import(artifact, &dest),
        "ArtifactInvalid",
        |e| matches!(e, SnapshotError::ArtifactInvalid(_)),
        format_args!("import of an artifact with {label}"),
    );
    ensure!(
        cx,
        !exists(&dest),
        "{label}: the refused import left something at the destination"
    );
    let left = visible_in(cx, &parent);
    ensure!(
        cx,
        left.is_empty(),
        "{label}: the refused import left {left:?} beside the destination"
    );
}

/// Every artifact tampering of SC-16, labelled.
fn tamper_cases(cx: &Ctx, manifest: &ExportManifest) -> Vec<(String, Tamper)> {
    let Some(payload) = manifest
        .files
        .iter()
        .max_by_key(|f| f.size)
        .filter(|f| f.size > 1)
    else {
        cx.fail(format_args!(
            "the export declares no payload file of 2 bytes or more: {:?}",
            manifest.files
        ));
    };
    let rel = payload.path.clone();
    let size = payload.size;
    let mut cases: Vec<(String, Tamper)> = Vec::new();
    for (at, name) in [(0, "first"), (size / 2, "middle"), (size - 1, "last")] {
        let rel = rel.clone();
        cases.push((
            format!("the {name} byte of {rel} flipped"),
            Box::new(move |cx, dir| flip_byte(cx, &dir.join(&rel), at)),
        ));
    }
    for (len, name) in [(size - 1, "by one byte"), (size / 2, "to half")] {
        let rel = rel.clone();
        cases.push((
            format!("{rel} truncated {name}"),
            Box::new(move |cx, dir| {
                let file = cx.io(
                    OpenOptions::new().write(true).open(dir.join(&rel)),
                    "opening the payload",
                );
                cx.io(file.set_len(len), "truncating the payload");
            }),
        ));
    }
    let r = rel.clone();
    cases.push((
        format!("{rel} extended by one byte"),
        Box::new(move |cx, dir| {
            let mut file = cx.io(
                OpenOptions::new().append(true).open(dir.join(&r)),
                "opening the payload",
            );
            cx.io(file.write_all(b"\0"), "extending the payload");
        }),
    ));
    let r = rel.clone();
    cases.push((
        format!("{rel} missing"),
        Box::new(move |cx, dir| cx.io(fs::remove_file(dir.join(&r)), "removing the payload")),
    ));
    cases.push((
        "an undeclared file data/extra.bin".to_owned(),
        Box::new(|cx, dir| {
            cx.io(
                fs::write(dir.join("data/extra.bin"), b"extra"),
                "adding a file",
            )
        }),
    ));
    cases.push((
        "an undeclared file data/sub/extra.bin".to_owned(),
        Box::new(|cx, dir| {
            cx.io(
                fs::create_dir_all(dir.join("data/sub")),
                "adding a directory",
            );
            cx.io(
                fs::write(dir.join("data/sub/extra.bin"), b"extra"),
                "adding a file",
            );
        }),
    ));
    #[cfg(unix)]
    {
        let r = rel.clone();
        cases.push((
            "a symlink data/link to the payload".to_owned(),
            Box::new(move |cx, dir| {
                cx.io(
                    std::os::unix::fs::symlink(dir.join(&r), dir.join("data/link")),
                    "adding a symlink",
                );
            }),
        ));
        let r = rel.clone();
        cases.push((
            format!("{rel} replaced by a symlink to an identical file"),
            Box::new(move |cx, dir| {
                let outside = dir.join("outside.bin");
                cx.io(fs::rename(dir.join(&r), &outside), "moving the payload");
                cx.io(
                    std::os::unix::fs::symlink(&outside, dir.join(&r)),
                    "linking the payload",
                );
            }),
        ));
    }
    cases.push((
        format!("no {MANIFEST_FILE}"),
        Box::new(|cx, dir| {
            cx.io(
                fs::remove_file(dir.join(MANIFEST_FILE)),
                "removing the manifest",
            )
        }),
    ));
    cases.push((
        format!("a malformed {MANIFEST_FILE}"),
        Box::new(|cx, dir| {
            cx.io(
                fs::write(dir.join(MANIFEST_FILE), b"{\"schema_version\": 1,"),
                "writing the manifest",
            )
        }),
    ));
    manifest_cases(manifest, &mut cases);
    cases
}

/// The manifest edits of SC-16 (each keeps the manifest well-formed JSON).
fn manifest_cases(manifest: &ExportManifest, cases: &mut Vec<(String, Tamper)>) {
    let mut edit = |label: String, f: Box<dyn Fn(&mut ExportManifest)>| {
        cases.push((
            label,
            Box::new(move |cx: &Ctx, dir: &Path| edit_manifest(cx, dir, &f)),
        ));
    };
    let other_backend = if manifest.backend == "append-log" {
        "fjall"
    } else {
        "append-log"
    };
    for backend in [
        other_backend.to_owned(),
        format!("{}-other", manifest.backend),
        String::new(),
    ] {
        edit(
            format!("backend {backend:?}"),
            Box::new(move |m| m.backend = backend.clone()),
        );
    }
    for schema in [0u32, 3, u32::MAX] {
        edit(
            format!("schema_version {schema}"),
            Box::new(move |m| m.schema_version = schema),
        );
    }
    edit(
        "schema_version 1 with a scope".to_owned(),
        Box::new(|m| {
            m.schema_version = 1;
            m.scope = Some(vec![String::new()]);
        }),
    );
    edit(
        "schema_version 2 without a scope".to_owned(),
        Box::new(|m| {
            m.schema_version = 2;
            m.scope = None;
        }),
    );
    let version = manifest.backend_version.clone();
    let mut versions = vec![
        "999".to_owned(),
        String::new(),
        format!("{version}.0"),
        format!("v{version}"),
    ];
    if let Ok(n) = version.parse::<u64>() {
        versions.push((n + 1).to_string());
        if n > 0 {
            versions.push((n - 1).to_string());
        }
    }
    for other in versions.into_iter().filter(|v| *v != version) {
        edit(
            format!("backend_version {other:?}"),
            Box::new(move |m| m.backend_version = other.clone()),
        );
    }
    let cursor = manifest.cursor.clone();
    let rank = cursor.rank();
    let mut cursors = vec![WatchCursor::from_u64(rank + 1), WatchCursor::none()];
    if rank > 1 {
        cursors.push(WatchCursor::from_u64(rank - 1));
    }
    if !cursor.seen_evicting() {
        cursors.push(cursor.clone().remembering(true));
    }
    for other in cursors.into_iter().filter(|c| *c != cursor) {
        edit(
            format!("the manifest cursor doctored to {other:?}"),
            Box::new(move |m| m.cursor = other.clone()),
        );
    }
}

/// Flips the lowest bit of the byte at `at` in `path`.
fn flip_byte(cx: &Ctx, path: &Path, at: u64) {
    let mut bytes = cx.io(fs::read(path), "reading the payload");
    let Some(byte) = usize::try_from(at).ok().and_then(|at| bytes.get_mut(at)) else {
        cx.fail(format_args!("byte {at} lies outside {}", path.display()));
    };
    *byte ^= 0x01;
    cx.io(fs::write(path, bytes), "writing the payload");
}

/// The occupied destinations of SC-16: a non-empty directory, a file, and on
/// Unix a symlink to an empty directory; each is refused and left as it was.
fn occupied_destinations<H: SnapshotHarness>(cx: &Ctx, h: &H, artifact: &Path) {
    let invalid = |e: &SnapshotError| matches!(e, SnapshotError::ArtifactInvalid(_));

    let parent = fresh_dir(cx, h);
    let dest = parent.join("fold");
    cx.io(fs::create_dir(&dest), "creating the destination");
    cx.io(
        fs::write(dest.join("keep.txt"), b"keep"),
        "filling the destination",
    );
    cx.expect_err(
        h.import(artifact, &dest),
        "ArtifactInvalid",
        invalid,
        "import into a non-empty directory",
    );
    ensure!(
        cx,
        entries_in(cx, &dest) == names(&["keep.txt"])
            && fs::read(dest.join("keep.txt")).ok().as_deref() == Some(&b"keep"[..]),
        "a refused import changed the non-empty destination: {:?}",
        entries_in(cx, &dest)
    );
    ensure!(
        cx,
        visible_in(cx, &parent) == names(&["fold"]),
        "a refused import left {:?}",
        visible_in(cx, &parent)
    );

    let parent = fresh_dir(cx, h);
    let dest = parent.join("fold");
    cx.io(
        fs::write(&dest, b"occupied"),
        "creating the destination file",
    );
    cx.expect_err(
        h.import(artifact, &dest),
        "ArtifactInvalid",
        invalid,
        "import onto an existing file",
    );
    ensure!(
        cx,
        fs::read(&dest).ok().as_deref() == Some(&b"occupied"[..]),
        "a refused import changed the existing file"
    );
    ensure!(
        cx,
        visible_in(cx, &parent) == names(&["fold"]),
        "a refused import left {:?}",
        visible_in(cx, &parent)
    );

    #[cfg(unix)]
    {
        let parent = fresh_dir(cx, h);
        let dest = parent.join("fold");
        let target = parent.join("target");
        cx.io(fs::create_dir(&target), "creating a link target");
        cx.io(
            std::os::unix::fs::symlink(&target, &dest),
            "creating the destination symlink",
        );
        cx.expect_err(
            h.import(artifact, &dest),
            "ArtifactInvalid",
            invalid,
            "import onto a symlink to an empty directory",
        );
        let still_link = fs::symlink_metadata(&dest)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        ensure!(
            cx,
            still_link && entries_in(cx, &target).is_empty(),
            "a refused import through a symlink changed it or its target"
        );
        ensure!(
            cx,
            visible_in(cx, &parent) == names(&["fold", "target"]),
            "a refused import left {:?}",
            visible_in(cx, &parent)
        );
    }
}
