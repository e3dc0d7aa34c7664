//! Tests of the restore I/O: the diff, the listed-live filter and the chunks, swept over
//! every small local/artifact/listing combination.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;

use super::*;
use crate::kv::{KvError, VersionToken, WatchCursor};
use crate::repair::relist::DeleteChunks;
use crate::repair::test_support::{MapStore, RecordingReader, append_log, entry, memory_bucket};

/// A reader listing a fixed set of live keys.
struct Listed(BTreeSet<String>);

#[async_trait]
impl KvReader for Listed {
    async fn get(&self, _: &str) -> Result<Option<KvEntry>, KvError> {
        Ok(None)
    }
    async fn keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        Ok(self
            .0
            .iter()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
    async fn scan(&self, _: &str) -> Result<Vec<KvEntry>, KvError> {
        Ok(vec![])
    }
    async fn entry(&self, _: &str) -> Result<Option<KvEntry>, KvError> {
        Ok(None)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn scope() -> Vec<String> {
    // Overlapping on purpose: "s.b" is covered by "s.".
    vec!["s.b".to_string(), "s.".to_string()]
}

/// The restore's whole correction stream: rewrite chunks, then delete chunks, `max` 2.
/// Also checks the diff's own shape: rewrite keys ascending, each once.
fn corrections<L: SnapshotStore, A: SnapshotStore>(
    rt: &tokio::runtime::Runtime,
    local: &L,
    artifact: &A,
    reader: &dyn KvReader,
    scratch: Option<&Path>,
) -> Vec<KvUpdate> {
    let diff = restore_diff(local, artifact, &scope(), scratch).unwrap();
    let rewrites = diff.rewrites;
    let mut candidates = diff.candidates;
    rt.block_on(filter_listed_live(reader, &scope(), &mut candidates))
        .unwrap();
    let mut updates = Vec::new();
    let mut puts = RewriteChunks::new(diff.rewrite_keys);
    loop {
        let chunk = puts.next_chunk(artifact, 2).unwrap();
        if chunk.is_empty() {
            break;
        }
        updates.extend(chunk);
    }
    let put_keys: Vec<&str> = updates.iter().map(KvUpdate::key).collect();
    assert_eq!(put_keys.len() as u64, rewrites);
    assert!(
        put_keys.windows(2).all(|w| w[0] < w[1]),
        "rewrites ascend, each once: {put_keys:?}"
    );
    let mut candidates: Vec<String> = candidates.into_iter().collect();
    candidates.sort();
    let mut deletes = DeleteChunks::new(candidates);
    loop {
        let chunk = deletes.next_chunk(2);
        if chunk.is_empty() {
            break;
        }
        updates.extend(chunk);
    }
    updates
}

fn rev(e: &KvEntry) -> u64 {
    e.version.as_u64().expect("test entries have revisions")
}

fn in_scope(key: &str) -> bool {
    key.starts_with("s.")
}

/// The guarantees of a completed restore of `before` from `artifact`, given the listing.
fn check_end_state(
    before: &BTreeMap<String, KvEntry>,
    artifact: &BTreeMap<String, KvEntry>,
    listed: &BTreeSet<String>,
    after: &BTreeMap<String, KvEntry>,
) {
    let ctx =
        || format!("before {before:?}\nartifact {artifact:?}\nlisted {listed:?}\nafter {after:?}");
    for (key, old) in before {
        if !in_scope(key) {
            assert_eq!(
                after.get(key),
                Some(old),
                "out of scope untouched: {}",
                ctx()
            );
            continue;
        }
        if let Some(new) = after.get(key) {
            assert!(rev(new) >= rev(old), "no revision regresses: {}", ctx());
        }
        if listed.contains(key) {
            assert!(
                after.contains_key(key),
                "a listed-live key stays: {}",
                ctx()
            );
        }
        if !artifact.contains_key(key) && !listed.contains(key) {
            assert!(
                !after.contains_key(key),
                "deleted between cursors: {}",
                ctx()
            );
        }
    }
    for (key, theirs) in artifact.iter().filter(|(k, _)| in_scope(k)) {
        let new = after
            .get(key)
            .unwrap_or_else(|| panic!("artifact key taken: {}", ctx()));
        assert!(
            rev(new) >= rev(theirs),
            "at least the artifact's: {}",
            ctx()
        );
        if rev(new) == rev(theirs) {
            assert_eq!(
                new.value,
                theirs.value,
                "same revision, artifact's value: {}",
                ctx()
            );
        }
    }
    for key in after.keys() {
        assert!(
            before.contains_key(key) || (in_scope(key) && artifact.contains_key(key)),
            "nothing appears from nowhere: {}",
            ctx()
        );
    }
}

/// One key's sides: local `None`/`Some(rev)`, artifact `None`/`Some((rev, same value))`.
type KeyCase = (Option<u64>, Option<(u64, bool)>, bool);

fn key_cases() -> Vec<KeyCase> {
    // The artifact's value matters only at the local revision (identical or not), and
    // the listing only for keys the fold holds: every other variant decides alike.
    let mut out = vec![(None, None, false)];
    for v in 1..=3 {
        out.push((None, Some((v, false)), false));
    }
    for l in 1..=3 {
        let mut artifacts = vec![None, Some((l, true))];
        artifacts.extend((1..=3).map(|v| Some((v, false))));
        for a in artifacts {
            for listed in [false, true] {
                out.push((Some(l), a, listed));
            }
        }
    }
    out
}

/// Builds the local entries, artifact entries and listing of one combination, plus
/// fixed keys outside the scope (which differ between the sides).
fn build(case: &[KeyCase]) -> (Vec<KvEntry>, Vec<KvEntry>, BTreeSet<String>) {
    let mut local = vec![entry("t", 1, "L"), entry("s", 2, "L")];
    let mut artifact = vec![entry("t", 3, "A"), entry("r.x", 2, "A"), entry("s", 3, "A")];
    let mut listed: BTreeSet<String> = ["t".to_string()].into();
    for (key, (l, a, live)) in ["s.a", "s.b", "s.c"].iter().zip(case) {
        if let Some(v) = l {
            local.push(entry(key, *v, "L"));
        }
        if let Some((v, same)) = a {
            artifact.push(entry(key, *v, if *same { "L" } else { "A" }));
        }
        if *live {
            listed.insert(key.to_string());
        }
    }
    (local, artifact, listed)
}

/// Every combination of three scope keys (local absent/1..3 × artifact absent/1..3, an
/// identical copy or another value × listed or not): applying the restore never regresses a
/// revision, never drops a listed-live key, takes the artifact, deletes what was deleted
/// between the cursors, leaves keys outside the scope alone, is idempotent, and applying
/// a prefix of it then re-running reaches the same end state (every cut position).
#[test]
fn restore_diff_is_safe_and_restartable_on_every_small_combination() {
    let rt = runtime();
    let cases = key_cases();
    let mut checked = 0u64;
    for a in &cases {
        for b in &cases {
            for c in &cases {
                let (local, artifact, listed) = build(&[*a, *b, *c]);
                let reader = Listed(listed.clone());
                let artifact = MapStore::of(&artifact);
                let mut store = MapStore::of(&local);
                let before = store.0.clone();
                let updates = corrections(&rt, &store, &artifact, &reader, None);
                for u in &updates {
                    store.fold(u);
                }
                check_end_state(&before, &artifact.0, &listed, &store.0);
                assert!(
                    corrections(&rt, &store, &artifact, &reader, None).is_empty(),
                    "a completed restore has nothing left to do"
                );
                // A crash after `cut` corrections, then the whole restore again.
                let cut = (checked as usize) % (updates.len() + 1);
                let mut partial = MapStore(before.clone());
                for u in &updates[..cut] {
                    partial.fold(u);
                }
                for u in corrections(&rt, &partial, &artifact, &reader, None) {
                    partial.fold(&u);
                }
                assert_eq!(partial, store, "a re-run after {cut} corrections converges");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 34 * 34 * 34);
}

/// The same guarantees on real append-log folds, spilling into a scratch directory,
/// with every cut position of the correction stream.
#[test]
fn restore_diff_on_append_logs_converges_from_every_cut() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let combos: [[KeyCase; 3]; 3] = [
        [
            (Some(1), Some((2, false)), false),
            (Some(3), None, true),
            (Some(2), None, false),
        ],
        [
            (None, Some((1, true)), false),
            (Some(2), Some((2, false)), true),
            (Some(3), Some((1, true)), false),
        ],
        [
            (Some(2), Some((2, true)), false),
            (None, None, true),
            (Some(1), None, false),
        ],
    ];
    let mut n = 0;
    for combo in combos {
        let (local, artifact_entries, listed) = build(&combo);
        let reader = Listed(listed.clone());
        n += 1;
        let artifact = append_log(dir.path(), &format!("art{n}"), &artifact_entries);
        let fresh = append_log(dir.path(), &format!("loc{n}"), &local);
        let before = MapStore::of(&fresh.range("").unwrap()).0;
        let updates = corrections(&rt, &fresh, &artifact, &reader, Some(scratch.path()));
        assert!(!updates.is_empty());
        drop(fresh);
        let mut ends = Vec::new();
        for cut in 0..=updates.len() {
            n += 1;
            let mut store = append_log(dir.path(), &format!("loc{n}"), &local);
            store
                .apply(&updates[..cut], &WatchCursor::from_u64(1))
                .unwrap();
            let rest = corrections(&rt, &store, &artifact, &reader, Some(scratch.path()));
            store.apply(&rest, &WatchCursor::from_u64(1)).unwrap();
            let after = MapStore::of(&store.range("").unwrap()).0;
            check_end_state(&before, &MapStore::of(&artifact_entries).0, &listed, &after);
            ends.push(after);
        }
        assert!(
            ends.windows(2).all(|w| w[0] == w[1]),
            "every cut converges to one state"
        );
        assert_eq!(
            std::fs::read_dir(scratch.path()).unwrap().count(),
            0,
            "spills leave nothing"
        );
    }
}

#[tokio::test]
async fn the_listed_live_filter_lists_each_disjoint_prefix_once_and_fails_with_the_prefix() {
    let bucket = memory_bucket(&["s.a", "s.b.1", "t"]).await;
    let reader = RecordingReader::new(bucket.reader(), None);
    let mut candidates: HashSet<String> = ["s.a", "s.b.1", "s.c", "t"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut kept = filter_listed_live(&reader, &scope(), &mut candidates)
        .await
        .unwrap();
    kept.sort();
    assert_eq!(kept, vec!["s.a".to_string(), "s.b.1".to_string()]);
    let mut left: Vec<_> = candidates.iter().cloned().collect();
    left.sort();
    assert_eq!(left, vec!["s.c".to_string(), "t".to_string()]);
    assert_eq!(*reader.listed.lock().unwrap(), vec!["s.".to_string()]);

    let failing = RecordingReader::new(bucket.reader(), Some("s."));
    let err = filter_listed_live(&failing, &scope(), &mut candidates)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "restore: listing prefix \"s.\" failed: timed out"
    );

    let silent = RecordingReader::new(bucket.reader(), None);
    filter_listed_live(&silent, &scope(), &mut HashSet::new())
        .await
        .unwrap();
    assert!(
        silent.listed.lock().unwrap().is_empty(),
        "no candidates, no listing"
    );
}

#[test]
fn a_key_the_artifact_fold_lost_fails_the_rewrite_chunk() {
    let local = MapStore::default();
    let mut artifact = MapStore::of(&[entry("s.a", 1, "A"), entry("s.b", 2, "A")]);
    let diff = restore_diff(&local, &artifact, &scope(), None).unwrap();
    assert_eq!(diff.rewrites, 2);
    artifact.0.remove("s.b");
    let mut puts = RewriteChunks::new(diff.rewrite_keys);
    assert_eq!(
        puts.next_chunk(&artifact, 1).unwrap(),
        vec![KvUpdate::Put(entry("s.a", 1, "A"))]
    );
    let err = puts.next_chunk(&artifact, 1).unwrap_err();
    assert!(
        matches!(&err, RepairIoError::ArtifactLostKey { key, .. } if key == "s.b"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("artifact fold lost a key mid-restore")
    );
}

/// A store whose reads fail: the diff reports which fold failed.
struct Broken;

impl SnapshotStore for Broken {
    fn load(_: &Path) -> Result<(WatchCursor, Self), SnapshotError> {
        Ok((WatchCursor::none(), Broken))
    }
    fn apply(&mut self, _: &[KvUpdate], _: &WatchCursor) -> Result<(), SnapshotError> {
        Ok(())
    }
    fn get(&self, _: &str) -> Result<Option<KvEntry>, SnapshotError> {
        Err(SnapshotError::Corrupted)
    }
    fn range(&self, _: &str) -> Result<Vec<KvEntry>, SnapshotError> {
        Err(SnapshotError::Corrupted)
    }
    fn cursor(&self) -> WatchCursor {
        WatchCursor::none()
    }
    fn export_to(&mut self, _: &Path) -> Result<crate::artifact::ExportManifest, SnapshotError> {
        Err(SnapshotError::Corrupted)
    }
}

#[test]
fn fold_read_errors_name_the_fold() {
    let fine = MapStore::of(&[entry("s.a", 1, "v")]);
    let err = restore_diff(&fine, &Broken, &scope(), None).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("restore: reading the artifact fold failed"),
        "{err}"
    );
    let err = restore_diff(&Broken, &fine, &scope(), None).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("restore: reading the local fold failed"),
        "{err}"
    );
    let _ = VersionToken::unknown();
}
