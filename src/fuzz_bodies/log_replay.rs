//! Fuzz body `log_replay` (docs/verification.md, "Fuzz targets" and row 13;
//! docs/snapshots.md, "Properties and fuzzing"): the append-log decoder never panics,
//! classifies every input exactly once and consistently across `scan`, `records` and
//! `replay`, re-encodes what it accepts, and never drops a record silently.

use super::input::Input;
use crate::kv::{VersionToken, WatchCursor};
use crate::protocol::log::{
    LogError, LogFormat, Record, Tail, TornKind, V2_HEADER_LEN, V3_HEADER_LEN, encode_compact,
    encode_cursor, encode_delete, encode_header, encode_put, records, replay, scan,
};

/// Feeds `data` to the decoder as raw bytes, then reads it as a structured log (records
/// encoded as v2 or v3, cut at an offset, zero-filled and/or bit-flipped) and checks the
/// cut and bit-flip contract of docs/formats.md §10 on that.
///
/// Raw: `scan`, `records` and `replay` never panic and agree (same error, or the
/// same format, `valid_len`, tail and record count); a tail is consistent with
/// `valid_len`; the valid prefix alone decodes clean to the same records;
/// re-encoding the decoded v3 records reproduces the valid prefix byte for byte,
/// and re-encoding decoded v2 records decodes to the same records; the compact v3
/// re-encoding of a replay replays to the same state with `already_compact`.
///
/// Structured: a cut (with or without zero fill) of a valid log is never an error
/// and keeps every record lying entirely before the cut; a flipped bit never loses
/// a record that ends before the flipped byte without an error; in v3 a decode
/// never returns a record that differs from the one written, and never the record
/// holding the flipped bit.
pub fn log_replay(data: &[u8]) {
    check_raw(data);
    check_structured(data);
}

/// The raw-bytes properties.
fn check_raw(bytes: &[u8]) {
    let scanned = scan(bytes);
    let replayed = replay(bytes);
    let listed = list(bytes);
    match (&scanned, &replayed, &listed) {
        (Err(s), Err(r), Err(l)) => {
            assert_eq!(s, r, "scan and replay disagree on the error");
            assert_eq!(s, l, "scan and records disagree on the error");
            let offset = match s {
                LogError::InvalidFormat { offset, .. } | LogError::Corrupted { offset } => *offset,
            };
            assert!(offset <= bytes.len() as u64, "error offset past EOF");
        }
        (Ok(s), Ok(r), Ok((format, decoded, valid_len, tail))) => {
            assert_eq!(
                (s.format, s.valid_len, s.tail),
                (r.format, r.valid_len, r.tail),
                "replay Ok must match scan"
            );
            assert_eq!(
                (s.format, s.valid_len, s.tail, s.records),
                (*format, *valid_len, *tail, decoded.len() as u64),
                "records must match scan"
            );
            check_tail(bytes.len(), s.format, s.valid_len, s.tail, decoded.len());
            check_prefix(bytes, s.format, s.valid_len, decoded);
            check_reencoding(bytes, s.format, s.valid_len, decoded);
            check_compact(r);
        }
        _ => panic!(
            "scan {scanned:?}, replay Ok = {}, records Ok = {} disagree",
            replayed.is_ok(),
            listed.is_ok()
        ),
    }
}

/// Every record of `bytes` through the iterator, with the format and the end.
type Listing<'a> = (Option<LogFormat>, Vec<Record<'a>>, u64, Tail);

/// Collects the records iterator, or its first error.
fn list(bytes: &[u8]) -> Result<Listing<'_>, LogError> {
    let mut iter = records(bytes)?;
    let mut out = Vec::new();
    for record in &mut iter {
        out.push(record?);
    }
    assert!(iter.next().is_none(), "the iterator is fused");
    let (valid_len, tail) = iter.end();
    Ok((iter.format(), out, valid_len, tail))
}

/// The tail, the format and the valid length agree with each other.
fn check_tail(n: usize, format: Option<LogFormat>, valid_len: u64, tail: Tail, count: usize) {
    assert!(valid_len <= n as u64, "valid_len past EOF");
    match tail {
        Tail::Clean => {
            assert_eq!(valid_len, n as u64, "a clean log ends at EOF");
            assert!(format.is_some(), "a clean log has a header");
        }
        Tail::Torn { offset, kind } => {
            assert_eq!(offset, valid_len, "the tail starts at valid_len");
            assert_eq!(
                kind == TornKind::Creation,
                format.is_none(),
                "format None exactly for a torn creation"
            );
            if kind == TornKind::Creation {
                assert_eq!(valid_len, 0);
                assert_eq!(count, 0, "a torn creation holds no records");
                assert!(n <= V3_HEADER_LEN);
            } else {
                assert!(valid_len < n as u64, "a torn tail discards something");
            }
        }
    }
    match format {
        Some(LogFormat::V3) => assert!(valid_len >= V3_HEADER_LEN as u64),
        Some(LogFormat::V2) => assert!(valid_len >= V2_HEADER_LEN as u64),
        None => {}
    }
}

/// The valid prefix alone decodes clean to the same records.
fn check_prefix(bytes: &[u8], format: Option<LogFormat>, valid_len: u64, decoded: &[Record<'_>]) {
    if format.is_none() {
        return;
    }
    let prefix = &bytes[..valid_len as usize];
    let (f, again, len, tail) = list(prefix).expect("the valid prefix decodes");
    assert_eq!(f, format);
    assert_eq!(tail, Tail::Clean, "the valid prefix is clean");
    assert_eq!(len, valid_len);
    assert_eq!(again, decoded, "the valid prefix holds the same records");
}

/// Appends `record` in `format`; the decoded record is within every limit.
fn encode_record(format: LogFormat, record: &Record<'_>, out: &mut Vec<u8>) {
    let written = match record {
        Record::Put {
            key,
            value,
            version,
        } => encode_put(format, key, value, version, out),
        Record::Delete { key, version } => encode_delete(format, key, version, out),
        Record::Cursor(cursor) => encode_cursor(format, cursor, out),
    };
    written.expect("a decoded record is within the limits");
}

/// v3: the re-encoding is byte-identical; v2: it decodes to the same records.
fn check_reencoding(
    bytes: &[u8],
    format: Option<LogFormat>,
    valid_len: u64,
    decoded: &[Record<'_>],
) {
    let Some(format) = format else {
        return;
    };
    let mut out = Vec::new();
    encode_header(format, &mut out);
    for record in decoded {
        encode_record(format, record, &mut out);
    }
    match format {
        LogFormat::V3 => assert_eq!(
            out,
            &bytes[..valid_len as usize],
            "v3 re-encoding must be byte-identical"
        ),
        LogFormat::V2 => {
            let (f, again, _, tail) = list(&out).expect("a v2 re-encoding decodes");
            assert_eq!(f, Some(LogFormat::V2));
            assert_eq!(tail, Tail::Clean);
            assert_eq!(again, decoded, "v2 re-encoding decodes to the same records");
        }
    }
}

/// The compact v3 re-encoding of a replay replays to the same state.
fn check_compact(r: &crate::protocol::log::Replay<'_>) {
    let mut out = Vec::new();
    let entries = r.entries.iter().map(|(k, (v, ver))| (*k, *v, ver));
    encode_compact(LogFormat::V3, entries, &r.cursor, &mut out)
        .expect("a replayed state is within the limits");
    let again = replay(&out).expect("a compact log replays");
    assert_eq!(again.format, Some(LogFormat::V3));
    assert_eq!(again.tail, Tail::Clean);
    assert!(again.already_compact, "a compact encoding is compact");
    assert_eq!(again.entries, r.entries, "compaction keeps every entry");
    assert_eq!(
        again.cursor.to_bytes(),
        r.cursor.to_bytes(),
        "compaction keeps the cursor"
    );
}

/// One record of a structured log, owning its data.
#[derive(Debug, Clone)]
enum Op {
    Put(String, Vec<u8>, VersionToken),
    Delete(String, VersionToken),
    Cursor(WatchCursor),
}

impl Op {
    fn record(&self) -> Record<'_> {
        match self {
            Op::Put(key, value, version) => Record::Put {
                key,
                value,
                version: version.clone(),
            },
            Op::Delete(key, version) => Record::Delete {
                key,
                version: version.clone(),
            },
            Op::Cursor(cursor) => Record::Cursor(cursor.clone()),
        }
    }
}

/// Key characters: few, so keys collide and overwrite; some multi-byte.
const KEY_CHARS: [char; 5] = ['a', 'b', '/', 'é', '😀'];

fn read_key(input: &mut Input<'_>) -> String {
    let len = usize::from(input.byte() % 4);
    (0..len)
        .map(|_| KEY_CHARS[usize::from(input.byte()) % KEY_CHARS.len()])
        .collect()
}

fn read_version(input: &mut Input<'_>) -> VersionToken {
    let len = usize::from(input.byte()) % (VersionToken::MAX_LEN + 1);
    let bytes = input.bytes(len);
    VersionToken::from_raw(bytes).unwrap_or_default()
}

fn read_cursor(input: &mut Input<'_>) -> WatchCursor {
    let head = input.byte();
    let len = usize::from(head & 0x0f) % (VersionToken::MAX_LEN + 1);
    let version = VersionToken::from_raw(input.bytes(len)).unwrap_or_default();
    let written = if head & 0x20 != 0 { input.u64_le() } else { 0 };
    WatchCursor::from_version(version.written_at(written)).remembering(head & 0x10 != 0)
}

fn read_op(input: &mut Input<'_>) -> Op {
    match input.byte() % 3 {
        0 => {
            let key = read_key(input);
            let len = usize::from(input.byte() % 48);
            let value = input.bytes(len).to_vec();
            Op::Put(key, value, read_version(input))
        }
        1 => Op::Delete(read_key(input), read_version(input)),
        _ => Op::Cursor(read_cursor(input)),
    }
}

/// The structured properties (layout: flags, count, records, cut, fill, flip).
fn check_structured(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let format = if flags & 1 == 0 {
        LogFormat::V3
    } else {
        LogFormat::V2
    };
    let count = usize::from(input.byte() % 9);
    let ops: Vec<Op> = (0..count).map(|_| read_op(&mut input)).collect();
    let mut log = Vec::new();
    encode_header(format, &mut log);
    let header_len = log.len();
    let mut ends = Vec::with_capacity(ops.len());
    for op in &ops {
        encode_record(format, &op.record(), &mut log);
        ends.push(log.len());
    }
    let n = log.len();
    let cut = if flags & 2 != 0 {
        usize::from(u16::from_le_bytes([input.byte(), input.byte()])) % (n + 1)
    } else {
        n
    };
    let mut fill = match (flags >> 3) & 3 {
        0 => 0,
        1 => 1,
        2 => 7,
        _ => usize::from(input.byte()),
    };
    // A header is made durable before any record is appended, so a torn creation is only
    // ever a (zero-filled) prefix no longer than the header (docs/formats.md §10, H2 and
    // H4).
    if cut < header_len {
        let creation_max = match format {
            LogFormat::V3 => V3_HEADER_LEN,
            LogFormat::V2 => V2_HEADER_LEN - 1,
        };
        fill = fill.min(creation_max.saturating_sub(cut));
    }
    let mut bytes = log[..cut].to_vec();
    bytes.resize(cut + fill, 0);
    let flip = if flags & 4 != 0 && !bytes.is_empty() {
        let bit = usize::from(u16::from_le_bytes([input.byte(), input.byte()])) % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        Some(bit / 8)
    } else {
        None
    };
    check_raw(&bytes);
    let originals: Vec<Record<'_>> = ops.iter().map(Op::record).collect();
    let intact_end = flip.map_or(cut, |at| at.min(cut));
    let guaranteed = ends.iter().filter(|&&end| end <= intact_end).count();
    let decoded = list(&bytes);
    let Some(at) = flip else {
        let (f, got, _, _) = decoded.unwrap_or_else(|e| {
            panic!("a cut valid log must decode, got {e} (cut {cut}, fill {fill})")
        });
        if cut < header_len {
            assert_eq!(f, None, "a cut inside the header is a torn creation");
        }
        assert!(got.len() >= guaranteed, "a cut lost a whole record");
        assert_eq!(got, originals[..got.len()], "a cut decodes to a prefix");
        if fill == 0 {
            assert_eq!(
                got.len(),
                guaranteed,
                "a bare cut keeps exactly the whole records"
            );
        }
        return;
    };
    let Ok((_, got, _, _)) = decoded else {
        return; // an error is always an acceptable answer to a flipped bit
    };
    assert!(
        got.len() >= guaranteed,
        "a flipped bit at {at} lost a record before it without an error"
    );
    assert_eq!(got[..guaranteed], originals[..guaranteed]);
    if format == LogFormat::V3 && at < cut {
        // The flipped record (or header) is never accepted, nor anything after it.
        assert_eq!(
            got.len(),
            guaranteed,
            "v3 accepted the record holding bit flip at {at}"
        );
    }
}
