//! Append-log crash and bit-rot contracts (docs/snapshots.md, "Crash and bit-rot
//! contracts", CT-01…CT-13) over real files in temp directories, through the real `load`
//! and `SnapshotWriter` (real fsync). Logs are small (5–6 records, values of 0, 1 and 40
//! bytes) so that every offset and every bit can be tried.
//!
//! Fault-injection contracts (CT-10, CT-11 with injected crashes, poisoning) are
//! in `snapshot_log/faults.rs`, compiled with the `failpoints` feature.

#[path = "snapshot_log/support.rs"]
mod support;

#[cfg(feature = "failpoints")]
#[path = "snapshot_log/faults.rs"]
mod faults;

use kvfold::protocol::log::{self, LogFormat, Tail};
use kvfold::snapshot::{DEFAULT_COMPACT_THRESHOLD, SnapshotWriter, load};
use kvfold::{KvEntry, KvUpdate, Retention, SnapshotError, VersionToken, WatchCursor};
use support::*;

/// The update written after recovery to prove the log accepts appends again.
fn fresh_put() -> Rec {
    Rec::Put("z", b"after".to_vec(), 99)
}

/// Writes `rec` and a cursor through `writer`.
fn append(writer: &mut SnapshotWriter, rec: &Rec, cursor: u64) {
    writer
        .write_update(&rec.update().expect("an update"))
        .expect("write");
    let _ = writer
        .checkpoint(&WatchCursor::from_u64(cursor))
        .expect("checkpoint");
}

#[test]
fn ct01_ct02_torn_last_record_at_every_offset_recovers_the_prefix_through_load() {
    let prefix = prefix_records();
    let (_dir, path) = temp_log();
    for last in last_records() {
        let mut all = prefix.clone();
        all.push(last.clone());
        let (bytes, ends) = v3_log(&all);
        let cut_from = ends[ends.len() - 2];
        let want = model(&prefix);
        for k in cut_from..bytes.len() {
            for fill in [0usize, 1, 7, 4096] {
                let mut file = bytes[..k].to_vec();
                file.resize(k + fill, 0);
                put_file(&path, &file);
                let got = load(&path).unwrap_or_else(|e| panic!("{last:?} cut {k}+{fill}: {e}"));
                assert_eq!(state(got), want, "{last:?} cut {k}+{fill}");
                let after = file_bytes(&path);
                if file.len() != cut_from || fill != 0 {
                    assert_compact_v3(&after);
                }
                assert_eq!(replayed(&after), want, "the rewrite holds the prefix");
            }
        }
    }
}

#[test]
fn ct01_ct02_torn_last_record_at_every_offset_is_truncated_by_open() {
    let prefix = prefix_records();
    let (_dir, path) = temp_log();
    for last in last_records() {
        let mut all = prefix.clone();
        all.push(last.clone());
        let (bytes, ends) = v3_log(&all);
        let cut_from = ends[ends.len() - 2];
        for k in cut_from..bytes.len() {
            for fill in [0usize, 1, 7, 4096] {
                let mut file = bytes[..k].to_vec();
                file.resize(k + fill, 0);
                put_file(&path, &file);
                let writer = SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD)
                    .unwrap_or_else(|e| panic!("{last:?} cut {k}+{fill}: {e}"));
                assert_eq!(writer.committed_len(), cut_from as u64);
                drop(writer);
                assert_eq!(
                    file_bytes(&path),
                    &bytes[..cut_from],
                    "truncated to the prefix"
                );
            }
        }
        // A new apply after the truncation is visible after reopen.
        let mut file = bytes[..bytes.len() - 1].to_vec();
        file.resize(file.len() + 7, 0);
        put_file(&path, &file);
        let mut writer = SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD).unwrap();
        append(&mut writer, &fresh_put(), 99);
        drop(writer);
        let mut want_recs = prefix.clone();
        want_recs.push(fresh_put());
        want_recs.push(Rec::Cur(WatchCursor::from_u64(99)));
        assert_eq!(state(load(&path).unwrap()), model(&want_recs), "{last:?}");
    }
}

#[test]
fn ct03_no_single_bit_flip_in_a_v3_file_is_silently_accepted() {
    let mut recs = prefix_records();
    recs.push(Rec::Put("e", vec![7; 40], 5));
    recs.push(Rec::Cur(WatchCursor::from_u64(5)));
    let (bytes, ends) = v3_log(&recs);
    let last_start = ends[ends.len() - 2];
    let all_but_last = model(&recs[..recs.len() - 1]);
    let (_dir, path) = temp_log();
    let mut accepted = 0;
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        // through load
        put_file(&path, &flipped);
        match load(&path) {
            Err(SnapshotError::Corrupted | SnapshotError::InvalidFormat(_)) => {
                assert_eq!(
                    file_bytes(&path),
                    flipped,
                    "bit {bit}: a refused file is untouched"
                );
            }
            Err(other) => panic!("bit {bit}: unexpected {other}"),
            Ok(got) => {
                accepted += 1;
                assert!(
                    bit / 8 >= last_start,
                    "bit {bit} before the last record accepted"
                );
                assert_eq!(
                    state(got),
                    all_but_last,
                    "bit {bit}: only the last record dropped"
                );
            }
        }
        // through open
        put_file(&path, &flipped);
        match SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD) {
            Err(SnapshotError::Corrupted | SnapshotError::InvalidFormat(_)) => {
                assert_eq!(
                    file_bytes(&path),
                    flipped,
                    "bit {bit}: a refused file is untouched"
                );
            }
            Err(other) => panic!("bit {bit}: unexpected {other}"),
            Ok(writer) => {
                assert!(
                    bit / 8 >= last_start,
                    "bit {bit} before the last record accepted"
                );
                drop(writer);
                assert_eq!(file_bytes(&path), &bytes[..last_start]);
            }
        }
    }
    // Only flips that zero the last bytes of the last record may read as a tail.
    assert!(accepted < 8, "accepted {accepted}");
}

#[test]
fn ct04_a_mid_file_body_len_pointing_past_eof_is_corruption() {
    let recs = prefix_records();
    let (mut bytes, ends) = v3_log(&recs);
    let p = ends[1];
    bytes[p..p + 4].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
    let (_dir, path) = temp_log();
    put_file(&path, &bytes);
    assert_refused_as_corrupted(&path);
    assert_eq!(file_bytes(&path), bytes);
}

#[test]
fn ct05_trailing_zeros_after_a_complete_record_are_dropped() {
    let recs = prefix_records();
    let (bytes, _) = v3_log(&recs);
    let (_dir, path) = temp_log();
    let mut file = bytes.clone();
    file.resize(bytes.len() + 4096, 0);
    put_file(&path, &file);
    let writer = SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD).unwrap();
    drop(writer);
    assert_eq!(file_bytes(&path), bytes, "the writer truncates the zeros");
    put_file(&path, &file);
    assert_eq!(state(load(&path).unwrap()), model(&recs));
    assert_compact_v3(&file_bytes(&path));
}

#[test]
fn ct06_a_mid_file_zero_hole_is_corruption_and_left_untouched() {
    let recs = prefix_records();
    let (mut bytes, ends) = v3_log(&recs);
    bytes[ends[0]..ends[2]].fill(0);
    let (_dir, path) = temp_log();
    put_file(&path, &bytes);
    assert_refused_as_corrupted(&path);
    assert_eq!(file_bytes(&path), bytes, "never repaired automatically");
}

/// The canonical empty v3 log.
fn empty_v3() -> Vec<u8> {
    let mut out = Vec::new();
    log::encode_header(LogFormat::V3, &mut out);
    out
}

#[test]
fn ct07_torn_creations_are_empty_and_rewritten() {
    let header = empty_v3();
    let (_dir, path) = temp_log();
    for k in 0..header.len() {
        for fill_to in [k, header.len()] {
            let mut file = header[..k].to_vec();
            file.resize(fill_to, 0);
            put_file(&path, &file);
            assert!(
                load(&path).unwrap().is_none(),
                "prefix {k} filled to {fill_to}"
            );
            assert_eq!(file_bytes(&path), header, "load rewrites a torn creation");
            put_file(&path, &file);
            let mut writer = SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD).unwrap();
            assert_eq!(writer.bytes_since_compact(), 0);
            append(&mut writer, &fresh_put(), 99);
            drop(writer);
            let want = model(&[fresh_put(), Rec::Cur(WatchCursor::from_u64(99))]);
            assert_eq!(state(load(&path).unwrap()), want);
        }
    }
    // A missing file: load says None and creates nothing; open creates the header.
    let (dir, path) = temp_log();
    assert!(load(&path).unwrap().is_none());
    assert!(!path.exists());
    drop(SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD).unwrap());
    assert_eq!(file_bytes(&path), header);
    assert!(other_files(dir.path(), &path).is_empty());
}

#[test]
fn ct07_a_v2_header_with_a_short_first_record_is_a_v2_torn_tail() {
    let (bytes, _) = v2_log_by_hand(&[Rec::Put("a", b"x".to_vec(), 1)]);
    let (_dir, path) = temp_log();
    for extra in 1..=4 {
        let file = &bytes[..6 + extra];
        assert_eq!(log::scan(file).unwrap().format, Some(LogFormat::V2));
        put_file(&path, file);
        assert!(load(&path).unwrap().is_none());
        assert_eq!(
            file_bytes(&path),
            empty_v3(),
            "rewritten as an empty v3 log"
        );
    }
}

#[test]
fn ct07_short_foreign_files_are_refused_and_left_untouched() {
    let (_dir, path) = temp_log();
    for file in [&b"hello"[..], b"{\"json\": 1}", b"KVFX", b"\x01"] {
        put_file(&path, file);
        assert!(
            matches!(load(&path), Err(SnapshotError::InvalidFormat(_))),
            "{file:?}"
        );
        assert!(matches!(
            SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD),
            Err(SnapshotError::InvalidFormat(_))
        ));
        assert_eq!(file_bytes(&path), file);
    }
}

#[test]
fn ct07_every_header_bit_flip_in_a_log_with_records_is_an_error() {
    let (bytes, _) = v3_log(&prefix_records());
    let (_dir, path) = temp_log();
    for bit in 0..12 * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        put_file(&path, &flipped);
        assert!(
            matches!(
                load(&path),
                Err(SnapshotError::Corrupted | SnapshotError::InvalidFormat(_))
            ),
            "bit {bit}"
        );
        assert_eq!(file_bytes(&path), flipped);
    }
}

#[test]
fn ct08_v2_fixture_decodes_to_the_exact_state() {
    let recs = vec![
        Rec::Put("a", b"x".to_vec(), 1),
        Rec::Put("k", vec![], 3),
        Rec::Put("long", vec![4; 40], 4),
        Rec::Del("a", 5),
        Rec::Cur(WatchCursor::from_u64(5)),
    ];
    let (bytes, _) = v2_log_by_hand(&recs);
    // The hand-built bytes are the golden vectors (docs/formats.md §3) where they overlap.
    assert_eq!(
        &bytes[..28],
        &[
            0x50, 0x47, 0x53, 0x53, 0x02, 0x00, 0x70, 0x9a, 0x64, 0x40, 0x01, 0x01, 0x00, 0x61,
            0x01, 0x00, 0x00, 0x00, 0x78, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x01
        ]
    );
    let (_dir, path) = temp_log();
    put_file(&path, &bytes);
    let got = load(&path).unwrap().unwrap();
    assert_eq!(got.entries.len(), 2);
    assert_eq!(
        got.entries["k"],
        KvEntry {
            key: "k".into(),
            value: vec![],
            version: VersionToken::from_u64(3)
        }
    );
    assert_eq!(got.entries["long"].value, vec![4; 40]);
    assert_eq!(got.cursor, WatchCursor::from_u64(5));
}

#[test]
fn ct08_v2_torn_tail_at_every_offset_and_zero_fill() {
    let mut recs = prefix_records();
    let (_dir, path) = temp_log();
    for last in last_records() {
        recs.truncate(5);
        recs.push(last.clone());
        let (bytes, ends) = v2_log_by_hand(&recs);
        let cut_from = ends[ends.len() - 2];
        for k in cut_from..bytes.len() {
            for fill in [0usize, 1, 7, 4096] {
                let mut file = bytes[..k].to_vec();
                file.resize(k + fill, 0);
                let r = log::replay(&file).unwrap_or_else(|e| panic!("{last:?} {k}+{fill}: {e}"));
                assert_eq!(r.valid_len, cut_from as u64, "{last:?} {k}+{fill}");
                if fill == 0 && k == cut_from {
                    continue;
                }
                assert!(matches!(r.tail, Tail::Torn { .. }));
                put_file(&path, &file);
                assert_eq!(state(load(&path).unwrap()), model(&recs[..5]));
                assert_compact_v3(&file_bytes(&path));
            }
        }
    }
}

#[test]
fn ct08_v2_known_limitation_a_length_past_eof_reads_as_a_tail() {
    let recs = prefix_records();
    let (mut bytes, ends) = v2_log_by_hand(&recs);
    // Record 1 is Put "b": crc(4) type(1) key_len(2) key(1) value_len(4).
    let p = ends[0];
    bytes[p + 8..p + 12].copy_from_slice(&10_000u32.to_le_bytes());
    let r = log::replay(&bytes).unwrap();
    assert_eq!(
        r.valid_len, p as u64,
        "everything from the damaged record is dropped"
    );
    assert_eq!(r.format, Some(LogFormat::V2));
    assert!(matches!(r.tail, Tail::Torn { .. }));
}

#[test]
fn ct09_load_and_open_upgrade_v2_to_v3_with_equal_state() {
    let recs = prefix_records();
    let (bytes, _) = v2_log_by_hand(&recs);
    let (_dir, path) = temp_log();
    put_file(&path, &bytes);
    assert_eq!(state(load(&path).unwrap()), model(&recs));
    let upgraded = file_bytes(&path);
    assert_eq!(&upgraded[..4], b"KVFL");
    assert_compact_v3(&upgraded);
    assert_eq!(replayed(&upgraded), model(&recs));

    put_file(&path, &bytes);
    let mut writer = SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD).unwrap();
    let opened = file_bytes(&path);
    assert_eq!(
        &opened[..4],
        b"KVFL",
        "compacted to v3 before the first append"
    );
    assert_eq!(replayed(&opened), model(&recs));
    append(&mut writer, &fresh_put(), 99);
    drop(writer);
    let after = file_bytes(&path);
    assert_eq!(&after[..4], b"KVFL", "never appended to as v2");
    assert_eq!(log::scan(&after).unwrap().format, Some(LogFormat::V3));
    let mut want = recs.clone();
    want.push(fresh_put());
    want.push(Rec::Cur(WatchCursor::from_u64(99)));
    assert_eq!(replayed(&after), model(&want));
}

#[test]
fn ct09_an_already_compact_v2_file_is_still_rewritten_as_v3() {
    let recs = vec![
        Rec::Put("a", b"1".to_vec(), 1),
        Rec::Cur(WatchCursor::from_u64(1)),
    ];
    let (bytes, _) = v2_log_by_hand(&recs);
    let (_dir, path) = temp_log();
    put_file(&path, &bytes);
    assert_eq!(state(load(&path).unwrap()), model(&recs));
    assert_compact_v3(&file_bytes(&path));
}

#[test]
fn ct09_a_torn_v2_file_upgrades_to_its_prefix() {
    let recs = prefix_records();
    let (bytes, ends) = v2_log_by_hand(&recs);
    let (_dir, path) = temp_log();
    put_file(&path, &bytes[..bytes.len() - 3]);
    assert_eq!(state(load(&path).unwrap()), model(&recs[..4]));
    assert_compact_v3(&file_bytes(&path));
    put_file(&path, &bytes[..ends[3] + 2]);
    drop(SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD).unwrap());
    assert_eq!(replayed(&file_bytes(&path)), model(&recs[..4]));
}

#[test]
fn ct09_a_corrupted_v2_file_is_refused_and_left_untouched() {
    let recs = prefix_records();
    let (mut bytes, ends) = v2_log_by_hand(&recs);
    bytes[ends[0] + 7] ^= 0x20; // the key byte of record 1, with records after it
    let (_dir, path) = temp_log();
    put_file(&path, &bytes);
    assert_refused_as_corrupted(&path);
    assert_eq!(file_bytes(&path), bytes);
}

#[test]
fn ct11_a_compaction_leftover_is_ignored() {
    // A crash between the temp write and the rename leaves the old file and a
    // complete (or partial) `.kvfold-compact-*` file next to it.
    let mut recs = prefix_records();
    recs.push(Rec::Put("b", b"new".to_vec(), 6));
    let (bytes, _) = v3_log(&recs);
    let (dir, path) = temp_log();
    put_file(&path, &bytes);
    let leftover = dir.path().join(".kvfold-compact-1234-0-deadbeef");
    put_file(&leftover, &bytes[..bytes.len() / 2]);
    assert_eq!(state(load(&path).unwrap()), model(&recs));
    let mut writer = SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD).unwrap();
    writer.compact().unwrap();
    append(&mut writer, &fresh_put(), 99);
    drop(writer);
    let mut want = recs.clone();
    want.push(fresh_put());
    want.push(Rec::Cur(WatchCursor::from_u64(99)));
    assert_eq!(state(load(&path).unwrap()), model(&want));
    assert_eq!(
        file_bytes(&leftover),
        &bytes[..bytes.len() / 2],
        "never read or touched"
    );
}

#[test]
fn ct12_a_memo_only_none_cursor_survives_compact_and_load() {
    let memo = WatchCursor::none().remembering(true);
    let (_dir, path) = temp_log();
    let mut writer = SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD).unwrap();
    let _ = writer.checkpoint(&memo).unwrap();
    writer.compact().unwrap();
    drop(writer);
    let got = load(&path)
        .unwrap()
        .expect("a cursor with bytes is not empty");
    assert!(got.entries.is_empty());
    assert!(got.cursor.seen_evicting());
    assert!(got.cursor.is_none());
    assert_eq!(got.cursor, memo);
    // ... and a plain none cursor with no entries is an empty log.
    let mut writer = SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD).unwrap();
    let _ = writer.checkpoint(&WatchCursor::none()).unwrap();
    drop(writer);
    assert!(
        load(&path).unwrap().is_none(),
        "the latest (plain none) cursor wins"
    );
}

#[test]
fn ct13_golden_v3_file_loads() {
    let hex = |s: &str| -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    };
    let mut file = hex("4b 56 46 4c 03 00 00 00 7f 01 71 8b");
    file.extend(hex(
        "0d 00 00 00 01 bb 2f 2a aa 01 00 61 08 00 00 00 00 00 00 00 01 78 25 ca b2 15",
    ));
    file.extend(hex(
        "0c 00 00 00 01 17 40 3b 92 01 00 6b 08 00 00 00 00 00 00 00 03 03 38 a8 c3",
    ));
    file.extend(hex(
        "08 00 00 00 03 50 8e 45 93 00 00 00 00 00 00 00 02 e3 6c b2 c7",
    ));
    let (_dir, path) = temp_log();
    put_file(&path, &file);
    let got = load(&path).unwrap().unwrap();
    assert_eq!(got.entries["a"].value, b"x");
    assert_eq!(got.entries["k"].value, b"");
    assert_eq!(got.cursor, WatchCursor::from_u64(2));
    assert_eq!(file_bytes(&path), file, "a compact file is never rewritten");
}

#[test]
fn checkpoint_reports_compaction_due_strictly_above_the_threshold() {
    let (_dir, path) = temp_log();
    let mut writer = SnapshotWriter::open(&path, 60).unwrap();
    let put = KvUpdate::Put(KvEntry {
        key: "k".into(),
        value: vec![1; 10],
        version: VersionToken::from_u64(1),
    });
    writer.write_update(&put).unwrap(); // 13 + 3 + 1 + 8 + 10 = 35 bytes
    assert!(!writer.checkpoint(&WatchCursor::none()).unwrap()); // + 13 = 48
    writer.write_update(&put).unwrap(); // 83
    assert!(writer.checkpoint(&WatchCursor::from_u64(1)).unwrap());
    writer.compact().unwrap();
    assert_eq!(writer.bytes_since_compact(), 0);
    assert_eq!(
        file_bytes(&path).len() as u64,
        writer.committed_len(),
        "committed_len is the new length"
    );
    drop(writer);
    // At open, bytes past the header count.
    let writer = SnapshotWriter::open(&path, 60).unwrap();
    assert_eq!(writer.bytes_since_compact(), writer.committed_len() - 12);
}

#[test]
fn compact_includes_records_not_yet_checkpointed() {
    let (dir, path) = temp_log();
    let mut writer = SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD).unwrap();
    append(&mut writer, &Rec::Put("a", b"1".to_vec(), 1), 1);
    writer
        .write_update(&Rec::Put("b", b"2".to_vec(), 2).update().unwrap())
        .unwrap();
    writer
        .write_update(&KvUpdate::Purge {
            key: "a".into(),
            version: VersionToken::from_u64(3),
        })
        .unwrap();
    writer.compact().unwrap();
    drop(writer);
    let got = load(&path).unwrap().unwrap();
    assert_eq!(
        got.cursor,
        WatchCursor::from_u64(1),
        "data ahead of the cursor"
    );
    assert_eq!(
        got.entries.keys().collect::<Vec<_>>(),
        vec!["b"],
        "purge folds as delete"
    );
    assert!(
        other_files(dir.path(), &path).is_empty(),
        "no temp file left"
    );
}

#[test]
fn an_update_over_the_limits_is_invalid_and_discards_the_uncommitted_records() {
    let (_dir, path) = temp_log();
    let mut writer = SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD).unwrap();
    append(&mut writer, &Rec::Put("a", b"1".to_vec(), 1), 1);
    let committed = file_bytes(&path);
    writer
        .write_update(&Rec::Put("b", b"2".to_vec(), 2).update().unwrap())
        .unwrap();
    writer.flush().unwrap();
    let too_long = KvUpdate::Put(KvEntry {
        key: "k".repeat(65_536),
        value: vec![],
        version: VersionToken::from_u64(3),
    });
    assert!(matches!(
        writer.write_update(&too_long),
        Err(SnapshotError::InvalidFormat(_))
    ));
    assert_eq!(file_bytes(&path), committed, "back to the last checkpoint");
    assert!(!writer.is_poisoned());
    append(&mut writer, &Rec::Put("c", b"3".to_vec(), 4), 4);
    drop(writer);
    let got = load(&path).unwrap().unwrap();
    let mut keys: Vec<_> = got.entries.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, vec!["a", "c"]);
}

#[test]
fn a_path_without_a_parent_is_invalid() {
    let root = std::path::Path::new("/");
    assert!(matches!(
        SnapshotWriter::open(root, DEFAULT_COMPACT_THRESHOLD),
        Err(SnapshotError::InvalidFormat(_))
    ));
}

#[test]
fn load_of_a_directory_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(load(dir.path()), Err(SnapshotError::Io(_))));
}

#[test]
fn writer_is_send() {
    fn send<T: Send>() {}
    send::<SnapshotWriter>();
}

fn snapshot_with(keys: &[&str], cursor: WatchCursor) -> kvfold::snapshot::Snapshot {
    kvfold::snapshot::Snapshot {
        cursor,
        entries: keys
            .iter()
            .map(|k| {
                let entry = KvEntry {
                    key: (*k).to_owned(),
                    value: vec![],
                    version: VersionToken::from_u64(1),
                };
                ((*k).to_owned(), entry)
            })
            .collect(),
    }
}

#[test]
fn stale_keys_are_sorted_and_refused_when_the_listing_is_not_the_truth() {
    let snap = snapshot_with(&["c", "a", "b", "d"], WatchCursor::from_u64(9));
    assert_eq!(snap.stale_keys(["b"], None), Some(vec!["a", "c", "d"]));
    let keeps = Retention {
        evicts_current_values: false,
        first_revision: 1,
    };
    assert_eq!(
        snap.stale_keys(["a", "b", "c", "d"], Some(keeps)),
        Some(vec![])
    );
    let evicted = Retention {
        evicts_current_values: true,
        first_revision: 50,
    };
    assert_eq!(snap.stale_keys(["a"], Some(evicted)), None);
    let memo = snapshot_with(&["a"], WatchCursor::from_u64(9).remembering(true));
    assert_eq!(memo.stale_keys([], None), None, "the memo saw eviction");
}
