//! Decoding entry points (docs/formats.md §10): the [`Records`] iterator, [`scan`]
//! (validate and classify) and [`replay`] (fold last-write-wins). Pure; borrows keys and
//! values from the input and allocates only for live entries.

use std::collections::BTreeMap;

use super::header::{Header, dispatch};
use super::{
    LogError, LogFormat, Record, Step, Tail, TornKind, V2_HEADER_LEN, V3_HEADER_LEN, v2, v3,
    zero_run_start,
};
use crate::kv::{VersionToken, WatchCursor};

/// The classification of a whole input, without folding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The header's format; `None` for an empty file or a torn creation.
    pub format: Option<LogFormat>,
    /// Length of the valid prefix: the end of the last accepted record (the
    /// header's end when there is none; 0 for a torn creation).
    pub valid_len: u64,
    /// How the input ended.
    pub tail: Tail,
    /// Number of accepted records.
    pub records: u64,
}

/// Where the iterator stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// More records may follow.
    Running,
    /// The input ended with this tail.
    Done(Tail),
    /// An error was returned; the iterator is fused.
    Failed,
}

/// The records of a log, in file order, each verified before it is returned.
///
/// Yields `Ok(record)` for every accepted record and ends either with `None` (then
/// [`end`](Records::end) reports the valid length and the tail) or with one
/// `Err` followed by `None` forever.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    bytes: &'a [u8],
    format: Option<LogFormat>,
    pos: usize,
    zero_start: usize,
    state: State,
}

impl<'a> Records<'a> {
    /// The header's format; `None` for an empty file or a torn creation.
    pub fn format(&self) -> Option<LogFormat> {
        self.format
    }

    /// The valid length (end of the last accepted record) and the tail.
    ///
    /// Final once the iterator has returned `None`. Before that, or after an
    /// `Err`, it reports the end of the last accepted record and `Tail::Clean`
    /// (the tail is not known yet, or the input is not a log).
    pub fn end(&self) -> (u64, Tail) {
        match self.state {
            State::Done(tail) => (self.pos as u64, tail),
            State::Running | State::Failed => (self.pos as u64, Tail::Clean),
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.state != State::Running {
            return None;
        }
        let Some(format) = self.format else {
            self.state = State::Done(Tail::Torn {
                offset: 0,
                kind: TornKind::Creation,
            });
            return None;
        };
        if self.pos >= self.bytes.len() {
            self.state = State::Done(Tail::Clean);
            return None;
        }
        let step = match format {
            LogFormat::V3 => v3::next(self.bytes, self.pos, self.zero_start),
            LogFormat::V2 => v2::next(self.bytes, self.pos, self.zero_start),
        };
        match step {
            Step::Record(record, next) => {
                debug_assert!(next > self.pos, "every record has a non-empty frame");
                self.pos = next;
                Some(Ok(record))
            }
            Step::End(tail) => {
                self.state = State::Done(tail);
                None
            }
            Step::Fail(err) => {
                self.state = State::Failed;
                Some(Err(err))
            }
        }
    }
}

impl std::iter::FusedIterator for Records<'_> {}

/// Checks the header (docs/formats.md §10, H1–H6) and returns an iterator over the records.
///
/// A header error (`BadMagic`, `UnsupportedVersion`, a v3 header checksum
/// mismatch, ...) is returned here; record errors come out of the iterator.
pub fn records(bytes: &[u8]) -> Result<Records<'_>, LogError> {
    let (format, pos) = match dispatch(bytes)? {
        Header::Log(LogFormat::V3) => (Some(LogFormat::V3), V3_HEADER_LEN),
        Header::Log(LogFormat::V2) => (Some(LogFormat::V2), V2_HEADER_LEN),
        Header::TornCreation => (None, 0),
    };
    Ok(Records {
        bytes,
        format,
        pos,
        zero_start: zero_run_start(bytes),
        state: State::Running,
    })
}

/// Validates and classifies `bytes` without folding them: ok (`Tail::Clean`), torn
/// tail (`Tail::Torn`), or an error (corrupted or invalid).
pub fn scan(bytes: &[u8]) -> Result<Scan, LogError> {
    let mut iter = records(bytes)?;
    let mut count = 0u64;
    for record in &mut iter {
        record?;
        count += 1;
    }
    let (valid_len, tail) = iter.end();
    Ok(Scan {
        format: iter.format(),
        valid_len,
        tail,
        records: count,
    })
}

/// The folded state of a log (docs/formats.md §10, replay), borrowing keys and values from
/// the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay<'a> {
    /// The header's format; `None` for an empty file or a torn creation.
    pub format: Option<LogFormat>,
    /// Live entries: key → (value, version of the write).
    pub entries: BTreeMap<&'a str, (&'a [u8], VersionToken)>,
    /// The latest Cursor record, or none.
    pub cursor: WatchCursor,
    /// Number of Cursor records seen.
    pub cursor_records: u64,
    /// Length of the valid prefix (see [`Scan::valid_len`]).
    pub valid_len: u64,
    /// How the input ended.
    pub tail: Tail,
    /// True iff the file needs no rewrite: v3, clean tail, no overwritten key, no Delete
    /// record, at most one Cursor record (docs/formats.md §10, compactness).
    pub already_compact: bool,
}

/// Folds a log in file order: Put inserts or overwrites (an empty value is a
/// present entry), Delete removes, each Cursor replaces the previous one, records
/// after the last cursor fold too. A torn tail ends the replay (reported in
/// `tail`); `Corrupted` and `InvalidFormat` abort it with no partial state.
///
/// While the Puts arrive in strictly ascending key order with no Delete between
/// them (a compact log, or a fold's log of new keys) they are collected in
/// order and the map is built from them at once; the first key out of order,
/// or the first Delete, moves them into the map and the fold continues there.
/// The result is the same either way.
pub fn replay(bytes: &[u8]) -> Result<Replay<'_>, LogError> {
    let mut iter = records(bytes)?;
    let mut ascending: Vec<(&str, (&[u8], VersionToken))> = Vec::new();
    let mut folded: Option<BTreeMap<&str, (&[u8], VersionToken)>> = None;
    let mut cursor = WatchCursor::none();
    let mut cursor_records = 0u64;
    let mut overwrote = false;
    let mut deleted = false;
    for record in &mut iter {
        match record? {
            Record::Put {
                key,
                value,
                version,
            } => match &mut folded {
                None if ascending.last().is_none_or(|(last, _)| *last < key) => {
                    ascending.push((key, (value, version)));
                }
                None => {
                    let mut map = BTreeMap::from_iter(ascending.drain(..));
                    overwrote |= map.insert(key, (value, version)).is_some();
                    folded = Some(map);
                }
                Some(map) => overwrote |= map.insert(key, (value, version)).is_some(),
            },
            Record::Delete { key, .. } => {
                folded
                    .get_or_insert_with(|| BTreeMap::from_iter(ascending.drain(..)))
                    .remove(key);
                deleted = true;
            }
            Record::Cursor(next) => {
                cursor = next;
                cursor_records += 1;
            }
        }
    }
    // Strictly ascending keys: distinct, so building the map loses nothing.
    let entries = folded.unwrap_or_else(|| BTreeMap::from_iter(ascending));
    let (valid_len, tail) = iter.end();
    let format = iter.format();
    let already_compact = format == Some(LogFormat::V3)
        && tail == Tail::Clean
        && !overwrote
        && !deleted
        && cursor_records <= 1;
    Ok(Replay {
        format,
        entries,
        cursor,
        cursor_records,
        valid_len,
        tail,
        already_compact,
    })
}
