//! Properties of the append log (docs/snapshots.md, "Properties and fuzzing",
//! docs/verification.md row 13 and "proptest"): record round trips (v2 and v3), the torn
//! tail at every offset, the pure fold through the real `SnapshotWriter` and `load`, and
//! the crash cut (truncate at any offset, optionally zero-fill, reopen: the state is the
//! reference fold of the whole records before the cut). Each property is checked by a
//! function that takes the decoder; `checks_have_teeth` shows those functions reject broken
//! decoders built around the real kernel.

use std::collections::BTreeMap;

use kvfold::protocol::log::{self, LogError, LogFormat, Record, Tail};
use kvfold::snapshot::{SnapshotWriter, load};
use kvfold::{KvEntry, KvUpdate, VersionToken, WatchCursor};
use proptest::prelude::*;

/// One record to write, owning its data.
#[derive(Debug, Clone)]
enum Op {
    Put(String, Vec<u8>, VersionToken),
    Delete(String, VersionToken),
    Cursor(WatchCursor),
}

impl Op {
    fn record(&self) -> Record<'_> {
        match self {
            Op::Put(k, v, ver) => Record::Put {
                key: k,
                value: v,
                version: ver.clone(),
            },
            Op::Delete(k, ver) => Record::Delete {
                key: k,
                version: ver.clone(),
            },
            Op::Cursor(c) => Record::Cursor(c.clone()),
        }
    }

    fn encode(&self, format: LogFormat, out: &mut Vec<u8>) {
        match self {
            Op::Put(k, v, ver) => log::encode_put(format, k, v, ver, out),
            Op::Delete(k, ver) => log::encode_delete(format, k, ver, out),
            Op::Cursor(c) => log::encode_cursor(format, c, out),
        }
        .expect("generated records are within the limits");
    }
}

/// The reference fold: key → (value, version bytes), and the cursor's bytes.
type State = (BTreeMap<String, (Vec<u8>, Vec<u8>)>, Vec<u8>);

fn model(ops: &[Op]) -> State {
    let mut entries = BTreeMap::new();
    let mut cursor = Vec::new();
    for op in ops {
        match op {
            Op::Put(k, v, ver) => {
                entries.insert(k.clone(), (v.clone(), ver.as_bytes().to_vec()));
            }
            Op::Delete(k, _) => {
                entries.remove(k);
            }
            Op::Cursor(c) => cursor = c.to_bytes(),
        }
    }
    (entries, cursor)
}

fn state_of_replay(r: &log::Replay<'_>) -> State {
    let entries = r
        .entries
        .iter()
        .map(|(k, (v, ver))| ((*k).to_owned(), (v.to_vec(), ver.as_bytes().to_vec())))
        .collect();
    (entries, r.cursor.to_bytes())
}

fn state_of_load(s: Option<kvfold::snapshot::Snapshot>) -> State {
    let Some(s) = s else {
        return (BTreeMap::new(), Vec::new());
    };
    let entries = s
        .entries
        .into_values()
        .map(|e| (e.key, (e.value, e.version.as_bytes().to_vec())))
        .collect();
    (entries, s.cursor.to_bytes())
}

/// A log of `ops` in `format`, and each record's end offset.
fn encode_log(format: LogFormat, ops: &[Op]) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    log::encode_header(format, &mut out);
    let ends = ops
        .iter()
        .map(|op| {
            op.encode(format, &mut out);
            out.len()
        })
        .collect();
    (out, ends)
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[abc]{0,2}",
        1 => "\\PC{0,12}",
    ]
}

fn version() -> impl Strategy<Value = VersionToken> {
    prop_oneof![
        3 => (0u64..50).prop_map(VersionToken::from_u64),
        1 => proptest::collection::vec(any::<u8>(), 0..=10)
            .prop_map(|b| VersionToken::from_raw(&b).expect("at most 10 bytes")),
    ]
}

fn cursor() -> impl Strategy<Value = WatchCursor> {
    (
        version(),
        any::<bool>(),
        prop_oneof![Just(0u64), any::<u64>()],
    )
        .prop_map(|(v, memo, ms)| WatchCursor::from_version(v.written_at(ms)).remembering(memo))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (key(), proptest::collection::vec(any::<u8>(), 0..48), version())
            .prop_map(|(k, v, ver)| Op::Put(k, v, ver)),
        2 => (key(), version()).prop_map(|(k, ver)| Op::Delete(k, ver)),
        2 => cursor().prop_map(Op::Cursor),
    ]
}

fn format() -> impl Strategy<Value = LogFormat> {
    prop_oneof![Just(LogFormat::V3), Just(LogFormat::V2)]
}

/// Decoded records, or the error (what a decoder under test returns).
type Decoded<'a> = Result<(Vec<Record<'a>>, Tail), LogError>;

fn real_decoder(bytes: &[u8]) -> Decoded<'_> {
    let mut iter = log::records(bytes)?;
    let mut out = Vec::new();
    for r in &mut iter {
        out.push(r?);
    }
    Ok((out, iter.end().1))
}

/// Round trip: encode → decode gives the same records, a clean tail, and the
/// replay equals the reference fold.
fn check_round_trip(
    decode: impl for<'a> Fn(&'a [u8]) -> Decoded<'a>,
    format: LogFormat,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let (bytes, _) = encode_log(format, ops);
    let (got, tail) = decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let want: Vec<Record<'_>> = ops.iter().map(Op::record).collect();
    prop_assert_eq!(got, want);
    prop_assert_eq!(tail, Tail::Clean);
    let r = log::replay(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(state_of_replay(&r), model(ops));
    Ok(())
}

/// Torn at every offset: every cut (plus 0, 1 or 7 zeros) decodes to a prefix of
/// the records that holds every record lying entirely before the cut (exactly
/// those without zero fill), never to an error.
fn check_every_cut(
    decode: impl for<'a> Fn(&'a [u8]) -> Decoded<'a>,
    format: LogFormat,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let (bytes, ends) = encode_log(format, ops);
    let header = match format {
        LogFormat::V3 => log::V3_HEADER_LEN,
        LogFormat::V2 => log::V2_HEADER_LEN,
    };
    let want: Vec<Record<'_>> = ops.iter().map(Op::record).collect();
    for k in header..=bytes.len() {
        for fill in [0usize, 1, 7] {
            let mut cut = bytes[..k].to_vec();
            cut.resize(k + fill, 0);
            let (got, tail) =
                decode(&cut).map_err(|e| TestCaseError::fail(format!("cut {k}+{fill}: {e}")))?;
            let whole = ends.iter().filter(|&&e| e <= k).count();
            prop_assert!(got.len() >= whole, "cut {}+{} lost a whole record", k, fill);
            prop_assert_eq!(&got[..], &want[..got.len()], "cut {}+{}", k, fill);
            if fill == 0 {
                prop_assert_eq!(got.len(), whole, "cut {}", k);
                let at_boundary = k == header || ends.contains(&k);
                prop_assert_eq!(tail == Tail::Clean, at_boundary, "cut {}", k);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn records_round_trip_in_both_formats(format in format(), ops in proptest::collection::vec(op(), 0..12)) {
        check_round_trip(real_decoder, format, &ops)?;
    }

    #[test]
    fn torn_at_every_offset_keeps_every_whole_record(format in format(), ops in proptest::collection::vec(op(), 0..6)) {
        check_every_cut(real_decoder, format, &ops)?;
    }

    #[test]
    fn compact_reencoding_replays_to_the_same_state(ops in proptest::collection::vec(op(), 0..12)) {
        let (bytes, _) = encode_log(LogFormat::V3, &ops);
        let r = log::replay(&bytes).unwrap();
        let mut out = Vec::new();
        log::encode_compact(LogFormat::V3, r.entries.iter().map(|(k, (v, ver))| (*k, *v, ver)), &r.cursor, &mut out).unwrap();
        let again = log::replay(&out).unwrap();
        prop_assert!(again.already_compact);
        prop_assert_eq!(state_of_replay(&again), model(&ops));
    }
}

/// A step of a writer session.
#[derive(Debug, Clone)]
enum Step {
    Write(Op),
    Checkpoint(WatchCursor),
    Flush,
    Compact,
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => op().prop_filter_map("updates only", |o| match o {
            Op::Cursor(_) => None,
            other => Some(Step::Write(other)),
        }),
        3 => cursor().prop_map(Step::Checkpoint),
        1 => Just(Step::Flush),
        1 => Just(Step::Compact),
        1 => Just(Step::Reopen),
    ]
}

fn update_of(op: &Op) -> KvUpdate {
    match op {
        Op::Put(k, v, ver) => KvUpdate::Put(KvEntry {
            key: k.clone(),
            value: v.clone(),
            version: ver.clone(),
        }),
        Op::Delete(k, ver) => KvUpdate::Delete {
            key: k.clone(),
            version: ver.clone(),
        },
        Op::Cursor(_) => unreachable!("cursors are checkpoints"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// The pure fold at the log level: whatever sequence of updates, checkpoints,
    /// flushes, compactions and reopens goes through the writer, `load` afterwards
    /// equals a kernel replay of the same records (and the reference fold).
    #[test]
    fn writer_then_load_equals_a_replay_of_the_same_records(steps in proptest::collection::vec(step(), 0..24)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fold.log");
        let mut writer = SnapshotWriter::open(&path, 1 << 20).unwrap();
        let mut written = Vec::new();
        for s in &steps {
            match s {
                Step::Write(op) => {
                    writer.write_update(&update_of(op)).unwrap();
                    written.push(op.clone());
                }
                Step::Checkpoint(c) => {
                    let _ = writer.checkpoint(c).unwrap();
                    written.push(Op::Cursor(c.clone()));
                }
                Step::Flush => writer.flush().unwrap(),
                Step::Compact => writer.compact().unwrap(),
                Step::Reopen => {
                    drop(writer);
                    writer = SnapshotWriter::open(&path, 1 << 20).unwrap();
                }
            }
        }
        drop(writer);
        let (bytes, _) = encode_log(LogFormat::V3, &written);
        let pure = state_of_replay(&log::replay(&bytes).unwrap());
        let loaded = state_of_load(load(&path).unwrap());
        prop_assert_eq!(&loaded, &pure);
        prop_assert_eq!(loaded, model(&written));
    }

    /// Crash cut (docs/snapshots.md, "Properties and fuzzing"): random batches, then the
    /// file is cut at any offset and optionally zero-filled; after reopen the state is the
    /// reference fold of the longest prefix of whole records before the cut, and the cursor
    /// the last surviving cursor record.
    #[test]
    fn a_crash_cut_reopens_at_the_longest_whole_prefix(
        batches in proptest::collection::vec((proptest::collection::vec(op().prop_filter("updates", |o| !matches!(o, Op::Cursor(_))), 0..4), cursor()), 1..5),
        cut_at in any::<prop::sample::Index>(),
        fill in prop_oneof![Just(0usize), Just(1), Just(7), Just(4096)],
        via_writer in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fold.log");
        let mut writer = SnapshotWriter::open(&path, 1 << 20).unwrap();
        let mut written = Vec::new();
        for (updates, c) in &batches {
            for op in updates {
                writer.write_update(&update_of(op)).unwrap();
                written.push(op.clone());
            }
            let _ = writer.checkpoint(c).unwrap();
            written.push(Op::Cursor(c.clone()));
        }
        drop(writer);
        let bytes = std::fs::read(&path).unwrap();
        let (encoded, ends) = encode_log(LogFormat::V3, &written);
        prop_assert_eq!(&bytes, &encoded);
        let k = log::V3_HEADER_LEN + cut_at.index(bytes.len() - log::V3_HEADER_LEN + 1);
        let mut cut = bytes[..k].to_vec();
        cut.resize(k + fill, 0);
        std::fs::write(&path, &cut).unwrap();
        let mut survivors = ends.iter().filter(|&&e| e <= k).count();
        // Zero fill can complete the cut record when its missing bytes were zeros.
        if let Some(&end) = ends.get(survivors)
            && end <= k + fill
            && bytes[k..end].iter().all(|&b| b == 0)
        {
            survivors += 1;
        }
        let want = model(&written[..survivors]);
        if via_writer {
            drop(SnapshotWriter::open(&path, 1 << 20).unwrap());
        }
        prop_assert_eq!(state_of_load(load(&path).unwrap()), want);
    }
}

/// Mutant: a torn tail is reported as corruption.
fn tail_is_corruption(bytes: &[u8]) -> Decoded<'_> {
    match real_decoder(bytes)? {
        (_, Tail::Torn { offset, .. }) => Err(LogError::Corrupted { offset }),
        ok => Ok(ok),
    }
}

/// Mutant: the last accepted record is dropped together with a torn tail.
fn drops_last(bytes: &[u8]) -> Decoded<'_> {
    let (mut records, tail) = real_decoder(bytes)?;
    if tail != Tail::Clean {
        records.pop();
    }
    Ok((records, tail))
}

/// Mutant: the decoder stops one record early.
fn short_read(bytes: &[u8]) -> Decoded<'_> {
    let (mut records, tail) = real_decoder(bytes)?;
    records.pop();
    Ok((records, tail))
}

/// The property checks reject decoders that break the contract: each mutant wraps
/// the real kernel and changes one decision.
#[test]
fn checks_have_teeth() {
    let ops = vec![
        Op::Put("a".into(), b"1".to_vec(), VersionToken::from_u64(1)),
        Op::Put("b".into(), vec![2; 20], VersionToken::from_u64(2)),
        Op::Cursor(WatchCursor::from_u64(2)),
    ];
    for format in [LogFormat::V3, LogFormat::V2] {
        assert!(check_every_cut(real_decoder, format, &ops).is_ok());
        assert!(check_every_cut(tail_is_corruption, format, &ops).is_err());
        assert!(check_every_cut(drops_last, format, &ops).is_err());
        assert!(check_round_trip(real_decoder, format, &ops).is_ok());
        assert!(check_round_trip(short_read, format, &ops).is_err());
    }
}
