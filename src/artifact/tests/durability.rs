//! Durability review (docs/artifacts.md §9, C1): the recorded operations of export, scope
//! stamping and import show that a file is reachable through a rename or a hard link only
//! after its contents were `sync_all`ed (and every directory it sits in was fsynced after
//! the entry was created), and that every rename or link is followed by an fsync of the
//! directory it landed in. A single-file import publishes with a hard link (no replace);
//! its staged name is removed only after that fsync, so at every instant the installed file
//! has a durable name.

use std::path::Path;

use super::*;
use crate::artifact::fsops::record::{self, Entry, Op};
use crate::artifact::stamp_scope;

/// The C1 violations in one call's log, as readable strings (empty = durable).
fn c1_violations(log: &[Entry]) -> Vec<String> {
    let mut violations = Vec::new();
    for (at, entry) in log.iter().enumerate() {
        let (Entry::Rename(from, to) | Entry::Link(from, to)) = entry else {
            continue;
        };
        let before = &log[..at];
        for (written_at, earlier) in before.iter().enumerate() {
            let window = &before[written_at + 1..];
            // Contents: every write under `from` is followed by a sync_all of that file.
            if let Entry::Op(Op::Write, path) = earlier
                && path.starts_with(from)
                && !window.contains(&Entry::Op(Op::SyncFile, path.clone()))
            {
                violations.push(format!(
                    "{} renamed before its write was synced",
                    path.display()
                ));
            }
            // Entries: every entry created strictly under `from` is followed by an
            // fsync of the directory holding it.
            let created = match earlier {
                Entry::Op(Op::Write | Op::CreateDir, path) => Some(path),
                Entry::Rename(_, landed) | Entry::Link(_, landed) => Some(landed),
                Entry::Op(Op::SyncFile | Op::SyncDir | Op::Remove, _) => None,
            };
            if let Some(path) = created
                && path != from
                && path.starts_with(from)
                && let Some(dir) = path.parent()
                && !window.contains(&Entry::Op(Op::SyncDir, dir.to_path_buf()))
            {
                violations.push(format!(
                    "{} renamed before the entry {} was made durable",
                    from.display(),
                    path.display()
                ));
            }
        }
        // The rename or link itself is followed by an fsync of the directory it
        // landed in.
        let landed_in = to.parent().unwrap_or(Path::new("."));
        let synced_at = log[at + 1..]
            .iter()
            .position(|later| *later == Entry::Op(Op::SyncDir, landed_in.to_path_buf()))
            .map(|offset| at + 1 + offset);
        let Some(synced_at) = synced_at else {
            violations.push(format!(
                "publish onto {} not followed by an fsync of {}",
                to.display(),
                landed_in.display()
            ));
            continue;
        };
        // A linked file keeps its staged name until the new name is durable.
        if matches!(entry, Entry::Link(..)) {
            let removed = Entry::Op(Op::Remove, from.clone());
            if log[at + 1..synced_at].contains(&removed) {
                violations.push(format!(
                    "staged name {} removed before the link onto {} was durable",
                    from.display(),
                    to.display()
                ));
            }
        }
    }
    violations
}

/// Runs `call` with recording on and returns its log.
fn recorded<T>(call: impl FnOnce() -> T) -> (T, Vec<Entry>) {
    record::start();
    let out = call();
    (out, record::take())
}

/// The renames in a log.
fn renames(log: &[Entry]) -> usize {
    log.iter()
        .filter(|entry| matches!(entry, Entry::Rename(..)))
        .count()
}

/// The hard links in a log.
fn links(log: &[Entry]) -> Vec<(PathBuf, PathBuf)> {
    log.iter()
        .filter_map(|entry| match entry {
            Entry::Link(from, to) => Some((from.clone(), to.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn export_publishes_only_synced_bytes() {
    let scratch = Scratch::new();
    for (name, tree) in [("log", false), ("tree", true)] {
        let dest = scratch.path(name);
        let (result, log) = recorded(|| {
            if tree {
                export_tree(&dest, &WatchCursor::from_u64(4))
            } else {
                export_log(&dest, &WatchCursor::from_u64(4), b"body")
            }
        });
        result.expect("export");
        assert_eq!(
            renames(&log),
            2,
            "manifest into the stage, stage onto dest: {log:#?}"
        );
        assert_eq!(c1_violations(&log), Vec::<String>::new(), "{log:#?}");
    }
}

#[test]
fn scope_stamping_replaces_the_manifest_durably() {
    let scratch = Scratch::new();
    let dest = scratch.path("artifact");
    export_log(&dest, &WatchCursor::from_u64(4), b"body").unwrap();
    let (result, log) = recorded(|| stamp_scope(&dest, &["a.".to_owned()]));
    result.expect("stamp");
    assert_eq!(renames(&log), 1);
    assert_eq!(c1_violations(&log), Vec::<String>::new(), "{log:#?}");
}

#[test]
fn import_installs_only_synced_bytes() {
    let scratch = Scratch::new();
    let log_artifact = scratch.path("log-artifact");
    export_log(&log_artifact, &WatchCursor::from_u64(4), b"body").unwrap();
    let tree_artifact = scratch.path("tree-artifact");
    export_tree(&tree_artifact, &WatchCursor::from_u64(4)).unwrap();
    let dest = scratch.path("fold");
    let (result, log) = recorded(|| import_log(&log_artifact, &dest));
    result.expect("import file");
    // A single file is published by a hard link (never a replacing rename), and
    // its staged name is removed afterwards.
    assert_eq!(renames(&log), 0, "{log:#?}");
    let linked_files = links(&log);
    assert_eq!(linked_files.len(), 1, "{log:#?}");
    let (staged, linked) = &linked_files[0];
    assert_eq!(linked, &dest);
    assert_eq!(
        log.last(),
        Some(&Entry::Op(Op::Remove, staged.clone())),
        "the staged name goes last: {log:#?}"
    );
    assert_eq!(c1_violations(&log), Vec::<String>::new(), "{log:#?}");
    let (result, log) = recorded(|| import_tree(&tree_artifact, &scratch.path("db")));
    result.expect("import tree");
    assert_eq!(renames(&log), 1);
    assert!(links(&log).is_empty(), "{log:#?}");
    assert_eq!(c1_violations(&log), Vec::<String>::new(), "{log:#?}");
}

#[test]
fn the_review_catches_unsynced_renames() {
    let stage = PathBuf::from("/p/.kvfold-artifact-x");
    let file = stage.join("data/f");
    let durable = vec![
        Entry::Op(Op::CreateDir, stage.join("data")),
        Entry::Op(Op::Write, file.clone()),
        Entry::Op(Op::SyncFile, file.clone()),
        Entry::Op(Op::SyncDir, stage.join("data")),
        Entry::Op(Op::SyncDir, stage.clone()),
        Entry::Rename(stage.clone(), "/p/dest".into()),
        Entry::Op(Op::SyncDir, "/p".into()),
    ];
    assert_eq!(c1_violations(&durable), Vec::<String>::new());
    // Each mutation removes one step the rule needs.
    for (dropped, expect) in [
        (2, "write was synced"),
        (3, "was made durable"),
        (4, "was made durable"),
        (6, "not followed by an fsync"),
    ] {
        let mut log = durable.clone();
        log.remove(dropped);
        let violations = c1_violations(&log);
        assert!(
            violations.iter().any(|v| v.contains(expect)),
            "dropping step {dropped} must be caught: {violations:?}"
        );
    }
    // A write after the sync is caught too.
    let mut late = durable.clone();
    late.insert(3, Entry::Op(Op::Write, file));
    assert!(!c1_violations(&late).is_empty());
}

#[test]
fn the_review_catches_unsynced_links() {
    let stage = PathBuf::from("/p/.kvfold-artifact-x");
    let file = stage.join("data/f");
    let durable = vec![
        Entry::Op(Op::CreateDir, stage.join("data")),
        Entry::Op(Op::Write, file.clone()),
        Entry::Op(Op::SyncFile, file.clone()),
        Entry::Op(Op::SyncDir, stage.join("data")),
        Entry::Link(file.clone(), "/p/dest".into()),
        Entry::Op(Op::SyncDir, "/p".into()),
        Entry::Op(Op::Remove, file.clone()),
    ];
    assert_eq!(c1_violations(&durable), Vec::<String>::new());
    for (dropped, expect) in [(2, "write was synced"), (5, "not followed by an fsync")] {
        let mut log = durable.clone();
        log.remove(dropped);
        let violations = c1_violations(&log);
        assert!(
            violations.iter().any(|v| v.contains(expect)),
            "dropping step {dropped} must be caught: {violations:?}"
        );
    }
    // Removing the staged name before the link is durable is caught.
    let mut early = durable.clone();
    early.swap(5, 6);
    let violations = c1_violations(&early);
    assert!(
        violations
            .iter()
            .any(|v| v.contains("removed before the link")),
        "{violations:?}"
    );
}
