//! Tests of the relist I/O: listing into the sorter, the merge-join, delete chunks.

use super::*;
use crate::kv::KvError;
use crate::repair::SORT_RUN_BYTES;
use crate::repair::test_support::{RecordingReader, append_log, entry, memory_bucket};

fn strings(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

fn sorted_listing(keys: &[&str]) -> SortedKeys {
    let mut sorter = KeySorter::new(RepairKind::Relist, None, 1);
    for k in keys {
        sorter.push(k.to_string()).unwrap();
    }
    sorter.finish().unwrap()
}

#[tokio::test]
async fn listing_sorts_every_scope_key_once_and_visits_overlapping_prefixes_once() {
    // Written out of order: the memory backend lists in revision order.
    let bucket = memory_bucket(&["b.2", "a.z", "c.1", "a.b.1", "b.1", "a.a", "ab"]).await;
    let reader = RecordingReader::new(bucket.reader(), None);
    let scope = strings(&["a.b", "b.", "a.", "a.", "b.1"]);
    for run_bytes in [1, 64, SORT_RUN_BYTES] {
        reader.listed.lock().unwrap().clear();
        let sorted = sort_listing(RepairKind::Relist, &reader, &scope, None, run_bytes)
            .await
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert_eq!(sorted, strings(&["a.a", "a.b.1", "a.z", "b.1", "b.2"]));
        assert_eq!(*reader.listed.lock().unwrap(), strings(&["a.", "b."]));
    }
}

#[tokio::test]
async fn a_listing_error_fails_with_the_prefix_named() {
    let bucket = memory_bucket(&["a.1", "b.1"]).await;
    let reader = RecordingReader::new(bucket.reader(), Some("b."));
    let err = sort_listing(
        RepairKind::Relist,
        &reader,
        &strings(&["a.", "b."]),
        None,
        1,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, RepairIoError::Listing { prefix, source: KvError::Timeout, .. } if prefix == "b."),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "relist: listing prefix \"b.\" failed: timed out"
    );
}

#[tokio::test]
async fn a_backend_listing_fault_fails_the_sort() {
    let conn = crate::memory::MemoryConnection::new();
    use crate::stores::Connection as _;
    conn.connect().await.unwrap();
    let store = conn.store("repair").await.unwrap();
    store.writer().unwrap().put("a.1", b"v").await.unwrap();
    conn.faults()
        .fail_next(crate::memory::MemoryOp::Keys, 1, KvError::Timeout);
    let err = sort_listing(
        RepairKind::Restore,
        store.reader().as_ref(),
        &strings(&["a."]),
        None,
        SORT_RUN_BYTES,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("restore: listing prefix \"a.\" failed"),
        "{err}"
    );
}

/// A reader listing a fixed key list under every prefix.
struct Fixed(Vec<String>);
#[async_trait::async_trait]
impl KvReader for Fixed {
    async fn get(&self, _: &str) -> Result<Option<crate::kv::KvEntry>, KvError> {
        Ok(None)
    }
    async fn keys(&self, _: &str) -> Result<Vec<String>, KvError> {
        Ok(self.0.clone())
    }
    async fn scan(&self, _: &str) -> Result<Vec<crate::kv::KvEntry>, KvError> {
        Ok(vec![])
    }
    async fn entry(&self, _: &str) -> Result<Option<crate::kv::KvEntry>, KvError> {
        Ok(None)
    }
}

#[tokio::test]
async fn a_key_the_sorter_refuses_fails_the_listing_without_hanging() {
    let long = "a.".to_string() + &"k".repeat(super::super::spill::SPILL_KEY_BYTES_MAX);
    // More keys than the channel holds after the refused one: the listing must not block.
    let mut keys: Vec<String> = vec![long];
    keys.extend((0..LISTING_CHANNEL_KEYS * 2).map(|i| format!("a.{i:06}")));
    let err = sort_listing(RepairKind::Relist, &Fixed(keys), &strings(&["a."]), None, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, RepairIoError::KeyTooLong { .. }), "{err:?}");
}

/// Every combination of three scope keys being in the fold and/or in the listing, plus
/// keys outside the scope (in the fold, never listed): the stale keys are exactly the
/// in-scope fold keys the listing lacks, ascending.
#[test]
fn relist_stale_is_the_unlisted_fold_keys_in_scope_on_every_small_combination() {
    let dir = tempfile::tempdir().unwrap();
    let alphabet = ["s.a", "s.b", "s.c"];
    let outside = [entry("r", 1, "v"), entry("t.a", 2, "v")];
    let scope = strings(&["s.", "s.b"]);
    let mut case = 0;
    for mask in 0..(1u32 << (2 * alphabet.len())) {
        let mut fold = outside.to_vec();
        let mut listed = vec!["t.a"];
        let mut expected = Vec::new();
        for (i, key) in alphabet.iter().enumerate() {
            let in_fold = mask & (1 << (2 * i)) != 0;
            let in_listing = mask & (1 << (2 * i + 1)) != 0;
            if in_fold {
                fold.push(entry(key, 3 + i as u64, "v"));
            }
            if in_listing {
                listed.push(key);
            }
            if in_fold && !in_listing {
                expected.push(key.to_string());
            }
        }
        listed.reverse();
        case += 1;
        let store = append_log(dir.path(), &format!("f{case}"), &fold);
        let stale = relist_stale(&store, &scope, sorted_listing(&listed)).unwrap();
        assert_eq!(stale, expected, "fold {fold:?}, listed {listed:?}");
    }
}

#[test]
fn a_listing_error_met_during_the_join_fails_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = append_log(dir.path(), "f", &[entry("a", 1, "v"), entry("b", 2, "v")]);
    let listing = vec![
        Ok("a".to_string()),
        Err(RepairIoError::corrupt(RepairKind::Relist, "garbled")),
    ];
    let err = relist_stale(&store, &strings(&[""]), listing.into_iter()).unwrap_err();
    assert!(matches!(err, RepairIoError::SpillCorrupt { .. }), "{err:?}");
}

#[test]
fn delete_chunks_hand_out_every_key_once_with_unknown_versions() {
    let mut chunks = DeleteChunks::new(strings(&["a", "b", "c"]));
    assert_eq!(chunks.remaining(), 3);
    let first = chunks.next_chunk(2);
    assert_eq!(
        first,
        vec![
            KvUpdate::Delete {
                key: "a".into(),
                version: VersionToken::unknown()
            },
            KvUpdate::Delete {
                key: "b".into(),
                version: VersionToken::unknown()
            },
        ]
    );
    assert_eq!(
        chunks.next_chunk(0).len(),
        1,
        "a zero max still makes progress"
    );
    assert!(chunks.next_chunk(5).is_empty());
    assert_eq!(chunks.remaining(), 0);
}

#[tokio::test]
async fn a_relist_end_to_end_finds_the_keys_the_bucket_no_longer_lists() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = memory_bucket(&["k.3", "k.1", "other"]).await;
    let fold = [
        entry("k.1", 1, "v"),
        entry("k.2", 2, "v"),
        entry("k.3", 3, "v"),
        entry("k.4", 4, "v"),
        entry("x", 5, "v"),
    ];
    let store = append_log(dir.path(), "f", &fold);
    let scope = strings(&["k."]);
    let listing = sort_listing(
        RepairKind::Relist,
        bucket.reader().as_ref(),
        &scope,
        Some(dir.path().to_path_buf()),
        1,
    )
    .await
    .unwrap();
    let stale = relist_stale(&store, &scope, listing).unwrap();
    assert_eq!(stale, strings(&["k.2", "k.4"]));
}

/// The fold executor runs these on spawned tasks: their futures must be `Send`.
#[test]
fn the_listing_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let reader = Fixed(vec![]);
    let scope = strings(&["a."]);
    let sorting = sort_listing(RepairKind::Relist, &reader, &scope, None, 1);
    assert_send(&sorting);
    let mut candidates = std::collections::HashSet::new();
    let filtering = crate::repair::filter_listed_live(&reader, &scope, &mut candidates);
    assert_send(&filtering);
}
