//! Fault-injection contracts (feature `failpoints`): CT-10 (a write failing after every
//! byte count within a batch), CT-11 (injected crashes inside compaction), and poisoning
//! (docs/formats.md §5 item 4).

use kvfold::snapshot::{CrashPoint, DEFAULT_COMPACT_THRESHOLD, SnapshotWriter, WriterFaults, load};
use kvfold::{KvUpdate, SnapshotError, WatchCursor};

use super::support::*;

fn batch_a() -> Vec<Rec> {
    vec![Rec::Put("a", b"1".to_vec(), 1), Rec::Put("b", vec![], 2)]
}

fn batch_b() -> Vec<Rec> {
    vec![
        Rec::Put("c", vec![3; 40], 3),
        Rec::Del("a", 4),
        Rec::Put("b", b"x".to_vec(), 5),
    ]
}

fn updates(recs: &[Rec]) -> Vec<KvUpdate> {
    recs.iter().filter_map(Rec::update).collect()
}

/// Writes `batch` (flushing after the first update) and checkpoints `cursor`.
fn write_batch(
    writer: &mut SnapshotWriter,
    batch: &[KvUpdate],
    cursor: u64,
) -> Result<bool, SnapshotError> {
    for (i, update) in batch.iter().enumerate() {
        writer.write_update(update)?;
        if i == 0 {
            writer.flush()?;
        }
    }
    writer.checkpoint(&WatchCursor::from_u64(cursor))
}

#[test]
fn ct10_a_write_failing_after_any_byte_count_rolls_back_to_the_checkpoint() {
    let (bytes_b, _) = v3_log(&{
        let mut b = batch_b();
        b.push(Rec::Cur(WatchCursor::from_u64(5)));
        b
    });
    let batch_len = (bytes_b.len() - 12) as u64;
    let mut want = batch_a();
    want.push(Rec::Cur(WatchCursor::from_u64(2)));
    want.extend(batch_b());
    want.push(Rec::Cur(WatchCursor::from_u64(5)));
    let (_dir, path) = temp_log();
    for budget in 0..batch_len {
        let _ = std::fs::remove_file(&path);
        let mut writer = SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD).unwrap();
        write_batch(&mut writer, &updates(&batch_a()), 2).unwrap();
        let committed = file_bytes(&path);
        let faults = WriterFaults::default();
        writer.inject_faults(faults.clone());
        faults.fail_writes_after(budget);
        let err = write_batch(&mut writer, &updates(&batch_b()), 5)
            .expect_err("the budget ends inside the batch");
        assert!(
            matches!(err, SnapshotError::Io(_)),
            "budget {budget}: {err}"
        );
        assert!(!writer.is_poisoned());
        assert_eq!(
            file_bytes(&path),
            committed,
            "budget {budget}: truncated to the checkpoint"
        );
        assert_eq!(writer.committed_len(), committed.len() as u64);
        faults.clear();
        write_batch(&mut writer, &updates(&batch_b()), 5).expect("the retry succeeds");
        drop(writer);
        let bytes = file_bytes(&path);
        assert_eq!(
            kvfold::protocol::log::scan(&bytes).unwrap().tail,
            kvfold::protocol::log::Tail::Clean
        );
        assert_eq!(replayed(&bytes), model(&want), "budget {budget}");
    }
}

#[test]
fn a_failed_checkpoint_fsync_poisons_the_writer_until_reopened() {
    let (_dir, path) = temp_log();
    let mut writer = SnapshotWriter::open_with(&path, DEFAULT_COMPACT_THRESHOLD, true).unwrap();
    write_batch(&mut writer, &updates(&batch_a()), 2).unwrap();
    let faults = WriterFaults::default();
    writer.inject_faults(faults.clone());
    faults.fail_sync(true);
    assert!(matches!(
        write_batch(&mut writer, &updates(&batch_b()), 5),
        Err(SnapshotError::Io(_))
    ));
    assert!(writer.is_poisoned());
    faults.clear();
    let update = &updates(&batch_b())[0];
    let poisoned = |r: Result<(), SnapshotError>| match r {
        Err(SnapshotError::Io(e)) => assert!(e.to_string().contains("poisoned"), "{e}"),
        other => panic!("expected poisoned, got {other:?}"),
    };
    poisoned(writer.write_update(update));
    poisoned(writer.checkpoint(&WatchCursor::from_u64(9)).map(|_| ()));
    poisoned(writer.flush());
    poisoned(writer.compact());
    drop(writer);
    // Reopening re-validates the file; the writer is usable again.
    let mut writer = SnapshotWriter::open_with(&path, DEFAULT_COMPACT_THRESHOLD, true).unwrap();
    write_batch(&mut writer, &updates(&batch_b()), 5).unwrap();
    drop(writer);
    let mut want = batch_a();
    want.extend(batch_b());
    want.push(Rec::Cur(WatchCursor::from_u64(5)));
    assert_eq!(state(load(&path).unwrap()), model(&want));
}

#[test]
fn a_failed_truncate_after_a_failed_write_poisons_and_reopen_drops_the_partial_record() {
    let (_dir, path) = temp_log();
    let mut writer = SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD).unwrap();
    write_batch(&mut writer, &updates(&batch_a()), 2).unwrap();
    let committed = file_bytes(&path);
    let faults = WriterFaults::default();
    writer.inject_faults(faults.clone());
    faults.fail_writes_after(5);
    faults.fail_truncate(true);
    assert!(write_batch(&mut writer, &updates(&batch_b()), 5).is_err());
    assert!(writer.is_poisoned());
    drop(writer);
    assert_eq!(
        file_bytes(&path).len(),
        committed.len() + 5,
        "a partial record is on disk"
    );
    drop(SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD).unwrap());
    assert_eq!(
        file_bytes(&path),
        committed,
        "open truncates the torn record"
    );
}

#[test]
fn a_failed_reopen_after_compaction_poisons_the_writer() {
    let (_dir, path) = temp_log();
    let mut writer = SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD).unwrap();
    write_batch(&mut writer, &updates(&batch_a()), 2).unwrap();
    write_batch(&mut writer, &updates(&batch_b()), 5).unwrap();
    let faults = WriterFaults::default();
    writer.inject_faults(faults.clone());
    faults.fail_reopen(true);
    assert!(matches!(writer.compact(), Err(SnapshotError::Io(_))));
    assert!(writer.is_poisoned());
    assert!(writer.flush().is_err());
    drop(writer);
    assert_compact_v3(&file_bytes(&path));
    let mut want = batch_a();
    want.extend(batch_b());
    want.push(Rec::Cur(WatchCursor::from_u64(5)));
    assert_eq!(state(load(&path).unwrap()), model(&want));
}

#[test]
fn ct11_a_crash_inside_compaction_keeps_the_logical_state() {
    let mut want = batch_a();
    want.push(Rec::Cur(WatchCursor::from_u64(2)));
    want.extend(batch_b());
    want.push(Rec::Cur(WatchCursor::from_u64(5)));
    for point in [CrashPoint::BeforeRename, CrashPoint::AfterRename] {
        let (dir, path) = temp_log();
        let mut writer = SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD).unwrap();
        write_batch(&mut writer, &updates(&batch_a()), 2).unwrap();
        write_batch(&mut writer, &updates(&batch_b()), 5).unwrap();
        let before = file_bytes(&path);
        let faults = WriterFaults::default();
        writer.inject_faults(faults.clone());
        faults.crash_compaction(point);
        assert!(writer.compact().is_err());
        drop(writer);
        let leftovers = other_files(dir.path(), &path);
        if point == CrashPoint::BeforeRename {
            assert_eq!(file_bytes(&path), before, "the old file is untouched");
            assert_eq!(leftovers.len(), 1);
            assert!(leftovers[0].starts_with(".kvfold-compact-"));
        } else {
            assert_compact_v3(&file_bytes(&path));
            assert!(leftovers.is_empty());
        }
        assert_eq!(state(load(&path).unwrap()), model(&want), "{point:?}");
        assert_eq!(
            other_files(dir.path(), &path),
            leftovers,
            "a leftover is ignored"
        );
        let mut writer = SnapshotWriter::open(&path, DEFAULT_COMPACT_THRESHOLD).unwrap();
        write_batch(&mut writer, &updates(&[Rec::Put("z", vec![1], 9)]), 9).unwrap();
        drop(writer);
        let got = load(&path).unwrap().unwrap();
        assert_eq!(got.cursor, WatchCursor::from_u64(9));
    }
}
