//! Snapshot log costs (docs/performance.md), on real files in a temporary directory:
//! `SnapshotWriter` open of a new log + 100 × 512 B appends + checkpoint (sync off);
//! `load` of a 500-entry log as a fold wrote it and of the same log compacted; compaction
//! of 5000 records over 500 keys; `AppendLogSnapshot` export and import of 100k keys.
//! These have no raw counterpart; their reference is today's figure (docs/performance.md).
//!
//! Run: `cargo bench --bench snapshot`; `KVFOLD_BENCH_EXPORT_KEYS` sets the export/import
//! key count (default 100000).

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput};
use kvfold::snapshot::{DEFAULT_COMPACT_THRESHOLD, SnapshotWriter, load};
use kvfold::{AppendLogSnapshot, KvEntry, KvUpdate, SnapshotStore, VersionToken, WatchCursor};
use tempfile::TempDir;

/// Log file name inside each temporary directory.
const LOG: &str = "fold.snap";

fn main() {
    let export_keys = support::size("KVFOLD_BENCH_EXPORT_KEYS", 100_000, 1_000);
    let mut c = support::criterion();
    append(&mut c);
    load_and_compact(&mut c);
    export_import(&mut c, export_keys);
    c.final_summary();
}

fn put(key: &str, value: &[u8], rev: u64) -> KvUpdate {
    KvUpdate::Put(KvEntry {
        key: key.to_string(),
        value: value.to_vec(),
        version: VersionToken::from_u64(rev),
    })
}

fn cursor(rev: u64) -> WatchCursor {
    WatchCursor::from_version(VersionToken::from_u64(rev))
}

/// Writes `records` puts over `keys` keys (`k.{i % keys}`, revision `i + 1`, values of
/// `value_bytes`), checkpointing after every `batch` of them, as a fold writes its log.
fn write_log(path: &Path, records: u64, keys: u64, batch: u64, value_bytes: usize) {
    let value = vec![b'v'; value_bytes];
    let mut writer = SnapshotWriter::open_with(path, u64::MAX, false).expect("open writer");
    for i in 0..records {
        let update = put(&format!("k.{:06}", i % keys), &value, i + 1);
        writer.write_update(&update).expect("append");
        if (i + 1) % batch == 0 || i + 1 == records {
            let _ = writer.checkpoint(&cursor(i + 1)).expect("checkpoint");
        }
    }
}

/// A fresh temporary directory holding a copy of `template` as its log.
fn copy_of(template: &Path) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(LOG);
    std::fs::copy(template, &path).expect("copy the template log");
    (dir, path)
}

/// Open a new log, append 100 × 512 B, checkpoint; sync off.
fn append(c: &mut Criterion) {
    let value = vec![b'v'; 512];
    let updates: Vec<KvUpdate> = (1..=100)
        .map(|rev| put(&format!("k.{rev:06}"), &value, rev))
        .collect();
    let figure = "snapshot/open_append_100x512_checkpoint";
    let mut g = c.benchmark_group(figure);
    g.sample_size(20).throughput(Throughput::Elements(100));
    g.bench_function("sync_off", |b| {
        b.iter_batched(
            || tempfile::tempdir().expect("temp dir"),
            |dir| {
                let start = std::time::Instant::now();
                let mut writer = SnapshotWriter::open_with(
                    &dir.path().join(LOG),
                    DEFAULT_COMPACT_THRESHOLD,
                    false,
                )
                .expect("open a new log");
                for update in &updates {
                    writer.write_update(update).expect("append");
                }
                let _ = writer.checkpoint(&cursor(100)).expect("checkpoint");
                support::record(figure, "kvfold", 1, start.elapsed());
                (dir, writer)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    support::report_single(figure, "kvfold", 100, 20);
}

/// `load` of 500 entries as a fold wrote them (50 batches of 10, one Cursor record each:
/// not compact, so `load` rewrites it), of the same 500 compacted, and compaction of
/// 5000 records (10 writes to each of 500 keys, batches of 100) down to 500.
fn load_and_compact(c: &mut Criterion) {
    let templates = tempfile::tempdir().expect("temp dir");
    let folded = templates.path().join("folded.snap");
    write_log(&folded, 500, 500, 10, 128);
    let compacted = templates.path().join("compacted.snap");
    write_log(&compacted, 500, 500, 10, 128);
    let loaded = load(&compacted).expect("load").expect("entries");
    assert_eq!(loaded.entries.len(), 500);
    let overwritten = templates.path().join("overwritten.snap");
    write_log(&overwritten, 5000, 500, 100, 128);

    let mut g = c.benchmark_group("snapshot/load");
    g.sample_size(20).throughput(Throughput::Elements(500));
    for (name, template) in [("500_as_folded", &folded), ("500_compacted", &compacted)] {
        let figure = format!("snapshot/load/{name}");
        g.bench_function(name, |b| {
            b.iter_batched(
                || copy_of(template),
                |(dir, path)| {
                    let start = std::time::Instant::now();
                    let snapshot = load(&path).expect("load").expect("entries");
                    support::record(&figure, "kvfold", 1, start.elapsed());
                    assert_eq!(snapshot.entries.len(), 500);
                    (dir, snapshot)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
    support::report_single("snapshot/load/500_as_folded", "kvfold", 500, 20);
    support::report_single("snapshot/load/500_compacted", "kvfold", 500, 20);

    let figure = "snapshot/compact_5000_to_500";
    let mut g = c.benchmark_group(figure);
    g.sample_size(20).throughput(Throughput::Elements(5000));
    g.bench_function("kvfold", |b| {
        b.iter_batched(
            || {
                let (dir, path) = copy_of(&overwritten);
                let writer =
                    SnapshotWriter::open_with(&path, u64::MAX, false).expect("open writer");
                (dir, writer)
            },
            |(dir, mut writer)| {
                let start = std::time::Instant::now();
                writer.compact().expect("compact");
                support::record(figure, "kvfold", 1, start.elapsed());
                (dir, writer)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    support::report_single(figure, "kvfold", 5000, 20);
}

/// `AppendLogSnapshot::export_to` of `keys` keys (128 B values) into a fresh directory,
/// and `AppendLogSnapshot::import` of that artifact into a fresh store.
fn export_import(c: &mut Criterion, keys: usize) {
    let source_dir = tempfile::tempdir().expect("temp dir");
    let (_, mut store) = AppendLogSnapshot::load(&source_dir.path().join(LOG)).expect("open");
    let value = support::value();
    let batch: Vec<KvUpdate> = (0..keys as u64)
        .map(|i| put(&format!("k.{i:08}"), &value, i + 1))
        .collect();
    for (n, chunk) in batch.chunks(1000).enumerate() {
        let last = ((n + 1) * 1000).min(keys) as u64;
        store.apply(chunk, &cursor(last)).expect("apply");
    }
    drop(batch);
    let artifact_root = tempfile::tempdir().expect("temp dir");
    let artifact = artifact_root.path().join("artifact");
    store
        .export_to(&artifact)
        .expect("export the import template");

    let mut g = c.benchmark_group("snapshot/artifact");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(keys as u64));
    let figure = "snapshot/artifact/export";
    g.bench_function("export", |b| {
        b.iter_batched(
            || tempfile::tempdir().expect("temp dir"),
            |dest| {
                let start = std::time::Instant::now();
                store.export_to(&dest.path().join("a")).expect("export");
                support::record(figure, "kvfold", 1, start.elapsed());
                dest
            },
            BatchSize::PerIteration,
        )
    });
    let import_figure = "snapshot/artifact/import";
    g.bench_function("import", |b| {
        b.iter_batched(
            || tempfile::tempdir().expect("temp dir"),
            |dest| {
                let start = std::time::Instant::now();
                let (cursor, imported) =
                    AppendLogSnapshot::import(&artifact, &dest.path().join(LOG), u64::MAX)
                        .expect("import");
                support::record(import_figure, "kvfold", 1, start.elapsed());
                assert_eq!(cursor.rank(), keys as u64);
                (dest, imported)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    support::report_single(figure, "kvfold", keys as u64, 10);
    support::report_single(import_figure, "kvfold", keys as u64, 10);
}
