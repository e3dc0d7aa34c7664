//! Key spill files for the repairs: unlinked temporary files of `u32` LE length +
//! UTF-8 key records, written and read buffered through the file-system seam
//! (`crate::fsio`). Reading never trusts a length prefix; nothing here decides anything.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::{RepairIoError, RepairKind};
use crate::fsio;

/// The longest key a spill record may hold. Far above any key a fold or a bucket can
/// hold (the append log caps keys at 64 KiB), and far below `u32::MAX`, so a garbled
/// length prefix can never make a reader allocate gigabytes.
pub(crate) const SPILL_KEY_BYTES_MAX: usize = 1 << 20;

/// Buffer size of spill readers and writers.
const SPILL_BUFFER_BYTES: usize = 64 << 10;

/// Name attempts when creating a spill file.
const NAME_ATTEMPTS_MAX: u32 = 16;

/// Name prefix of spill files (visible only between creation and unlinking).
const SPILL_PREFIX: &str = ".kvfold-spill-";

/// An open spill file on the seam: every read and write is one seam call. On Unix the
/// file is unlinked right after creation, so a crash leaves nothing on disk; elsewhere
/// it is removed when dropped.
#[derive(Debug)]
struct SpillFile {
    file: File,
    /// Where the file still has a name (not Unix): removed on drop.
    named: Option<PathBuf>,
}

impl Read for SpillFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        fsio::read(&mut self.file, buf)
    }
}

impl Write for SpillFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        fsio::write(&mut self.file, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        if let Some(path) = self.named.take() {
            // Best effort: only where an open file cannot be unlinked.
            let _ = fsio::remove_file(&path);
        }
    }
}

/// A fresh name suffix: pid, a process-wide counter and the attempt.
fn spill_name(attempt: u32) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{SPILL_PREFIX}{}-{n}-{nanos}-{attempt}", std::process::id())
}

/// Creates an unlinked read-write file in `dir` (`None` = the system temp dir).
fn create_spill_file(dir: Option<&Path>) -> io::Result<SpillFile> {
    let dir = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
    for attempt in 0..NAME_ATTEMPTS_MAX {
        let path = dir.join(spill_name(attempt));
        let file = match fsio::open(
            &path,
            OpenOptions::new().read(true).write(true).create_new(true),
        ) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        };
        let spill = SpillFile {
            file,
            named: Some(path),
        };
        return unlink_open(spill);
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free spill file name",
    ))
}

/// Unlinks the file while it stays open (Unix); on error the drop removes it.
#[cfg(unix)]
fn unlink_open(mut spill: SpillFile) -> io::Result<SpillFile> {
    let path = spill
        .named
        .clone()
        .expect("a freshly created spill file still has its name");
    fsio::remove_file(&path)?;
    spill.named = None;
    Ok(spill)
}

/// Elsewhere an open file cannot be unlinked: it is removed on drop.
#[cfg(not(unix))]
fn unlink_open(spill: SpillFile) -> io::Result<SpillFile> {
    Ok(spill)
}

/// Writes keys to a new spill file; [`finish`](SpillWriter::finish) turns it into a
/// [`SpillReader`] positioned at the first record.
#[derive(Debug)]
pub(crate) struct SpillWriter {
    repair: RepairKind,
    out: BufWriter<SpillFile>,
    records: u64,
}

impl SpillWriter {
    /// A new, empty spill file in `dir` (`None` = the system temp dir).
    pub(crate) fn create(repair: RepairKind, dir: Option<&Path>) -> Result<Self, RepairIoError> {
        let file = create_spill_file(dir)
            .map_err(|e| RepairIoError::spill(repair, "creating a spill file", e))?;
        Ok(Self {
            repair,
            out: BufWriter::with_capacity(SPILL_BUFFER_BYTES, file),
            records: 0,
        })
    }

    /// Appends one record: `key.len()` as `u32` LE, then the key's bytes.
    pub(crate) fn push(&mut self, key: &str) -> Result<(), RepairIoError> {
        let len = checked_key_len(self.repair, key)?;
        let write = |out: &mut BufWriter<SpillFile>| {
            out.write_all(&len.to_le_bytes())?;
            out.write_all(key.as_bytes())
        };
        write(&mut self.out)
            .map_err(|e| RepairIoError::spill(self.repair, "writing a spill file", e))?;
        self.records += 1;
        Ok(())
    }

    /// How many records were pushed.
    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    /// Flushes the buffer and rewinds: a reader over every pushed record, in order.
    pub(crate) fn finish(self) -> Result<SpillReader, RepairIoError> {
        let repair = self.repair;
        let file = self
            .out
            .into_inner()
            .map_err(|e| RepairIoError::spill(repair, "writing a spill file", e.into_error()))?;
        SpillReader::open(repair, file)
    }
}

/// The record length of `key`, or `KeyTooLong`.
pub(crate) fn checked_key_len(repair: RepairKind, key: &str) -> Result<u32, RepairIoError> {
    let too_long = || RepairIoError::KeyTooLong {
        repair,
        len_bytes: key.len(),
        max_bytes: SPILL_KEY_BYTES_MAX,
    };
    if key.len() > SPILL_KEY_BYTES_MAX {
        return Err(too_long());
    }
    u32::try_from(key.len()).map_err(|_| too_long())
}

/// Reads the records of a spill file in the order they were written. After the first
/// error it yields nothing more.
#[derive(Debug)]
pub(crate) struct SpillReader {
    repair: RepairKind,
    input: BufReader<SpillFile>,
    /// Bytes between the read position and the end of the file.
    remaining_bytes: u64,
    /// Bytes read so far (for error messages).
    offset_bytes: u64,
    done: bool,
}

impl SpillReader {
    /// A reader over the whole of `file`, rewound to its start.
    fn open(repair: RepairKind, mut file: SpillFile) -> Result<Self, RepairIoError> {
        let rewind = |file: &mut SpillFile| {
            let len = fsio::len(&file.file)?;
            file.file.seek(SeekFrom::Start(0))?;
            Ok::<u64, io::Error>(len)
        };
        let remaining_bytes = rewind(&mut file)
            .map_err(|e| RepairIoError::spill(repair, "rewinding a spill file", e))?;
        Ok(Self {
            repair,
            input: BufReader::with_capacity(SPILL_BUFFER_BYTES, file),
            remaining_bytes,
            offset_bytes: 0,
            done: false,
        })
    }

    /// A reader over an existing file's bytes (tests feed it garbled spills).
    #[cfg(test)]
    pub(crate) fn from_file(repair: RepairKind, file: File) -> Result<Self, RepairIoError> {
        Self::open(repair, SpillFile { file, named: None })
    }

    /// The next key, `Ok(None)` at the end of the file.
    pub(crate) fn next_key(&mut self) -> Result<Option<String>, RepairIoError> {
        if self.done {
            return Ok(None);
        }
        let next = self.read_record();
        if !matches!(next, Ok(Some(_))) {
            self.done = true;
        }
        next
    }

    fn read_record(&mut self) -> Result<Option<String>, RepairIoError> {
        if self.remaining_bytes == 0 {
            return Ok(None);
        }
        let at = self.offset_bytes;
        if self.remaining_bytes < 4 {
            return Err(RepairIoError::corrupt(
                self.repair,
                format!(
                    "a length prefix at byte {at} is cut short ({} bytes left)",
                    self.remaining_bytes
                ),
            ));
        }
        let mut prefix = [0u8; 4];
        self.read_exact(&mut prefix)?;
        let len = u32::from_le_bytes(prefix);
        let len_bytes = u64::from(len);
        if len_bytes > self.remaining_bytes {
            return Err(RepairIoError::corrupt(
                self.repair,
                format!(
                    "the record at byte {at} claims {len} key bytes but only {} remain",
                    self.remaining_bytes
                ),
            ));
        }
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= SPILL_KEY_BYTES_MAX)
            .ok_or_else(|| {
                RepairIoError::corrupt(
                    self.repair,
                    format!(
                        "the record at byte {at} claims {len} key bytes, over the {SPILL_KEY_BYTES_MAX}-byte record limit"
                    ),
                )
            })?;
        let mut key = vec![0u8; len];
        self.read_exact(&mut key)?;
        String::from_utf8(key).map(Some).map_err(|_| {
            RepairIoError::corrupt(
                self.repair,
                format!("the key of the record at byte {at} is not UTF-8"),
            )
        })
    }

    /// Reads exactly `buf.len()` bytes, which the length bookkeeping says are there.
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), RepairIoError> {
        self.input.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                RepairIoError::corrupt(
                    self.repair,
                    format!("the file ended early at byte {}", self.offset_bytes),
                )
            } else {
                RepairIoError::spill(self.repair, "reading a spill file", e)
            }
        })?;
        let n = u64::try_from(buf.len()).expect("a buffer length fits in u64");
        self.remaining_bytes -= n;
        self.offset_bytes += n;
        Ok(())
    }
}

impl Iterator for SpillReader {
    type Item = Result<String, RepairIoError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_key().transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn spill_of(keys: &[&str], dir: Option<&Path>) -> SpillReader {
        let mut w = SpillWriter::create(RepairKind::Relist, dir).unwrap();
        for k in keys {
            w.push(k).unwrap();
        }
        assert_eq!(w.records(), keys.len() as u64);
        w.finish().unwrap()
    }

    fn garbled(bytes: &[u8]) -> SpillReader {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        SpillReader::from_file(RepairKind::Restore, file).unwrap()
    }

    #[test]
    fn spill_round_trips_keys_in_push_order() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ["b", "", "a.é", "b", &"x".repeat(70_000)];
        let back: Vec<String> = spill_of(&keys, Some(dir.path()))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back, keys);
        let empty: Vec<String> = spill_of(&[], None).collect::<Result<_, _>>().unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn spill_files_leave_nothing_in_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        let reader = spill_of(&["a", "b"], Some(dir.path()));
        #[cfg(unix)]
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        drop(reader);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_missing_spill_directory_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            SpillWriter::create(RepairKind::Relist, Some(&dir.path().join("gone"))).unwrap_err();
        assert!(
            matches!(
                err,
                RepairIoError::Spill {
                    step: "creating a spill file",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_key_over_the_record_cap_is_refused_before_anything_is_written() {
        let mut w = SpillWriter::create(RepairKind::Relist, None).unwrap();
        let long = "k".repeat(SPILL_KEY_BYTES_MAX + 1);
        let err = w.push(&long).unwrap_err();
        assert!(
            matches!(err, RepairIoError::KeyTooLong { len_bytes, .. } if len_bytes == long.len())
        );
        assert_eq!(w.records(), 0);
        assert_eq!(w.finish().unwrap().count(), 0);
        assert!(checked_key_len(RepairKind::Relist, &"k".repeat(SPILL_KEY_BYTES_MAX)).is_ok());
    }

    fn first_error(mut reader: SpillReader) -> RepairIoError {
        loop {
            match reader.next() {
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    assert!(reader.next().is_none(), "a reader stops after an error");
                    return e;
                }
                None => panic!("the garbled spill read to its end"),
            }
        }
    }

    #[test]
    fn a_length_prefix_past_the_end_is_corrupt_not_an_allocation() {
        // A good record, then one claiming u32::MAX bytes.
        let mut bytes = 1u32.to_le_bytes().to_vec();
        bytes.push(b'a');
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(b"abc");
        let err = first_error(garbled(&bytes));
        assert!(
            matches!(&err, RepairIoError::SpillCorrupt { detail, .. } if detail.contains("at byte 5") && detail.contains("only 3 remain")),
            "{err}"
        );
    }

    #[test]
    fn a_length_prefix_over_the_cap_is_corrupt_even_when_the_file_is_long_enough() {
        let len = u32::try_from(SPILL_KEY_BYTES_MAX + 1).unwrap();
        let mut bytes = len.to_le_bytes().to_vec();
        bytes.resize(4 + SPILL_KEY_BYTES_MAX + 1, b'k');
        let err = first_error(garbled(&bytes));
        assert!(
            matches!(&err, RepairIoError::SpillCorrupt { detail, .. } if detail.contains("record limit")),
            "{err}"
        );
    }

    #[test]
    fn a_cut_prefix_and_non_utf8_are_corrupt() {
        let err = first_error(garbled(&[1, 0]));
        assert!(matches!(err, RepairIoError::SpillCorrupt { .. }), "{err}");
        let mut bytes = 2u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        let err = first_error(garbled(&bytes));
        assert!(
            matches!(&err, RepairIoError::SpillCorrupt { detail, .. } if detail.contains("UTF-8")),
            "{err}"
        );
    }

    #[cfg(feature = "failpoints")]
    mod faults {
        use super::*;
        use crate::fsio::faults::{self, Fault, FaultPlan, OpKind};

        fn plan(kind: OpKind, nth: u64) -> Option<FaultPlan> {
            Some(FaultPlan {
                kind,
                nth,
                fault: Fault::Eio,
                persistent: false,
                then_fail: None,
            })
        }

        #[test]
        fn a_failed_spill_write_is_a_typed_error() {
            faults::start(plan(OpKind::Write, 1));
            let mut w = SpillWriter::create(RepairKind::Relist, None).unwrap();
            w.push("a").unwrap(); // buffered
            let err = w.finish().unwrap_err();
            let counts = faults::finish();
            assert_eq!(counts.fired, 1);
            assert!(
                matches!(
                    err,
                    RepairIoError::Spill {
                        step: "writing a spill file",
                        ..
                    }
                ),
                "{err:?}"
            );
            assert!(
                err.to_string()
                    .starts_with("relist: writing a spill file failed: ")
            );
        }

        #[test]
        fn a_failed_spill_read_is_a_typed_error() {
            let reader = spill_of(&["a", "b"], None);
            faults::start(plan(OpKind::Read, 1));
            let err = first_error(reader);
            assert_eq!(faults::finish().fired, 1);
            assert!(
                matches!(
                    err,
                    RepairIoError::Spill {
                        step: "reading a spill file",
                        ..
                    }
                ),
                "{err:?}"
            );
        }

        #[test]
        fn a_failed_spill_creation_is_a_typed_error() {
            faults::start(plan(OpKind::Open, 1));
            let err = SpillWriter::create(RepairKind::Restore, None).unwrap_err();
            assert_eq!(faults::finish().fired, 1);
            assert!(matches!(
                err,
                RepairIoError::Spill {
                    step: "creating a spill file",
                    ..
                }
            ));
        }
    }
}
