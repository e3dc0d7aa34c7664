//! Helpers for the append-log crash and bit-rot contract tests: sample records, a reference
//! fold, v3 logs built with kvfold's encoders, and v2 logs built byte by byte from the
//! documented layout (docs/formats.md §2) without kvfold's encoder.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kvfold::protocol::log::{self, LogFormat};
use kvfold::snapshot::{DEFAULT_COMPACT_THRESHOLD, Snapshot, SnapshotWriter, load};
use kvfold::{KvEntry, KvUpdate, SnapshotError, VersionToken, WatchCursor};

/// One record of a test log.
#[derive(Debug, Clone)]
pub enum Rec {
    Put(&'static str, Vec<u8>, u64),
    Del(&'static str, u64),
    Cur(WatchCursor),
}

impl Rec {
    /// The update this record stands for (`None` for a cursor).
    pub fn update(&self) -> Option<KvUpdate> {
        match self {
            Rec::Put(k, v, r) => Some(KvUpdate::Put(KvEntry {
                key: (*k).to_owned(),
                value: v.clone(),
                version: VersionToken::from_u64(*r),
            })),
            Rec::Del(k, r) => Some(KvUpdate::Delete {
                key: (*k).to_owned(),
                version: VersionToken::from_u64(*r),
            }),
            Rec::Cur(_) => None,
        }
    }
}

/// A fold state: entries and the cursor (compared by its bytes, memo included).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Model {
    pub entries: BTreeMap<String, (Vec<u8>, Vec<u8>)>,
    pub cursor: Vec<u8>,
}

impl Model {
    pub fn apply(&mut self, rec: &Rec) {
        match rec {
            Rec::Put(k, v, r) => {
                self.entries
                    .insert((*k).to_owned(), (v.clone(), r.to_be_bytes().to_vec()));
            }
            Rec::Del(k, _) => {
                self.entries.remove(*k);
            }
            Rec::Cur(c) => self.cursor = c.to_bytes(),
        }
    }
}

/// The reference fold of `recs` (last write wins, latest cursor wins).
pub fn model(recs: &[Rec]) -> Model {
    let mut m = Model::default();
    for r in recs {
        m.apply(r);
    }
    m
}

/// The state `load` returned (`None` = empty with the none cursor).
pub fn state(snapshot: Option<Snapshot>) -> Model {
    let Some(s) = snapshot else {
        return Model::default();
    };
    Model {
        entries: s
            .entries
            .into_values()
            .map(|e| (e.key, (e.value, e.version.as_bytes().to_vec())))
            .collect(),
        cursor: s.cursor.to_bytes(),
    }
}

/// The state a pure replay of `bytes` gives.
pub fn replayed(bytes: &[u8]) -> Model {
    let r = log::replay(bytes).expect("replays");
    Model {
        entries: r
            .entries
            .iter()
            .map(|(k, (v, ver))| ((*k).to_owned(), (v.to_vec(), ver.as_bytes().to_vec())))
            .collect(),
        cursor: r.cursor.to_bytes(),
    }
}

/// A v3 log of `recs` built with kvfold's encoders, and the end offset of each record.
pub fn v3_log(recs: &[Rec]) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    log::encode_header(LogFormat::V3, &mut out);
    let mut ends = Vec::new();
    for r in recs {
        match r {
            Rec::Put(k, v, rev) => {
                log::encode_put(LogFormat::V3, k, v, &VersionToken::from_u64(*rev), &mut out)
            }
            Rec::Del(k, rev) => {
                log::encode_delete(LogFormat::V3, k, &VersionToken::from_u64(*rev), &mut out)
            }
            Rec::Cur(c) => log::encode_cursor(LogFormat::V3, c, &mut out),
        }
        .expect("within limits");
        ends.push(out.len());
    }
    (out, ends)
}

/// A v2 log of `recs` built byte by byte from docs/formats.md §2 (not with kvfold's
/// encoder): header `"PGSS"` + u16 2; records `crc u32 | type u8 | payload` with CRC-32
/// (IEEE) over type and payload.
pub fn v2_log_by_hand(recs: &[Rec]) -> (Vec<u8>, Vec<usize>) {
    let mut out = b"PGSS".to_vec();
    out.extend_from_slice(&2u16.to_le_bytes());
    let mut ends = Vec::new();
    for r in recs {
        let mut body = Vec::new();
        match r {
            Rec::Put(k, v, rev) => {
                body.push(0x01);
                body.extend_from_slice(&(k.len() as u16).to_le_bytes());
                body.extend_from_slice(k.as_bytes());
                body.extend_from_slice(&(v.len() as u32).to_le_bytes());
                body.extend_from_slice(v);
                body.push(8);
                body.extend_from_slice(&rev.to_be_bytes());
            }
            Rec::Del(k, rev) => {
                body.push(0x02);
                body.extend_from_slice(&(k.len() as u16).to_le_bytes());
                body.extend_from_slice(k.as_bytes());
                body.push(8);
                body.extend_from_slice(&rev.to_be_bytes());
            }
            Rec::Cur(c) => {
                let bytes = c.to_bytes();
                body.push(0x03);
                body.push(bytes.len() as u8);
                body.extend_from_slice(&bytes);
            }
        }
        out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        out.extend_from_slice(&body);
        ends.push(out.len());
    }
    (out, ends)
}

/// Records of mixed kinds and value sizes (0, 1, 40 bytes), ending in a cursor.
pub fn prefix_records() -> Vec<Rec> {
    vec![
        Rec::Put("a", vec![], 1),
        Rec::Put("b", b"x".to_vec(), 2),
        Rec::Cur(WatchCursor::from_u64(2)),
        Rec::Put("c", vec![9; 40], 3),
        Rec::Del("a", 4),
    ]
}

/// Candidate last records, one per kind and value size.
pub fn last_records() -> Vec<Rec> {
    vec![
        Rec::Put("d", vec![], 5),
        Rec::Put("d", b"y".to_vec(), 5),
        Rec::Put("e", vec![7; 40], 5),
        Rec::Del("b", 5),
        Rec::Cur(WatchCursor::from_u64(5)),
        Rec::Cur(WatchCursor::from_u64(5).remembering(true)),
    ]
}

/// A fresh temp dir and the log path inside it.
pub fn temp_log() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fold.log");
    (dir, path)
}

/// Writes `bytes` as the whole file at `path`.
pub fn put_file(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write test file");
}

/// The file's bytes.
pub fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read test file")
}

/// Names in `dir` other than `keep`.
pub fn other_files(dir: &Path, keep: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p != keep)
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `bytes` is a compact v3 log (what `load` leaves behind).
pub fn assert_compact_v3(bytes: &[u8]) {
    let r = log::replay(bytes).expect("replays");
    assert_eq!(r.format, Some(LogFormat::V3));
    assert_eq!(r.tail, log::Tail::Clean);
    assert!(r.already_compact, "file left compact");
}

/// Both readers, `load` and `SnapshotWriter::open`, refuse the file at `path`
/// as corrupted.
pub fn assert_refused_as_corrupted(path: &Path) {
    assert!(matches!(load(path), Err(SnapshotError::Corrupted)));
    assert!(matches!(
        SnapshotWriter::open(path, DEFAULT_COMPACT_THRESHOLD),
        Err(SnapshotError::Corrupted)
    ));
}
