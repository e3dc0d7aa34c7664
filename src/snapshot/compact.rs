//! `compact_to_file` (snapshot.md §5): rewrite a log as a compact file through a
//! temp file in the same directory, fsync it, rename it over the target, fsync the
//! directory. A crash at any step leaves either the old file or the new one, never
//! a mix; leftover `.kvfold-compact-*` files are never read.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::SnapshotError;
use super::file::{CrashPoint, parent_dir, sync_dir};
use crate::fsio::{self, SeamWriter};
use crate::kv::{VersionToken, WatchCursor};
use crate::protocol::log::{
    LogError, LogFormat, V3_HEADER_LEN, V3_RECORD_OVERHEAD, encode_cursor, encode_header,
    encode_put,
};

/// Prefix of compaction temp files.
pub(crate) const TEMP_PREFIX: &str = ".kvfold-compact-";
/// Bounds of the compaction write buffer, in bytes.
const BUFFER_MIN_BYTES: usize = 8 * 1024;
const BUFFER_MAX_BYTES: usize = 1024 * 1024;
/// Attempts at finding an unused temp file name.
const TEMP_NAME_ATTEMPTS: u32 = 16;

/// Distinguishes temp files created by this process.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Rewrites `path` as a compact log in `format`: the header, one Put per entry in
/// the order given (pass ascending key order, e.g. a `BTreeMap`'s: the same state
/// then always gives the same bytes), then one Cursor record iff
/// `cursor.to_bytes()` is non-empty (a none cursor carrying the eviction memo
/// survives). Returns the new file length.
///
/// On error the temp file is removed (best effort) and `path` is unchanged.
pub(crate) fn compact_to_file<'e, I>(
    path: &Path,
    entries: I,
    cursor: &WatchCursor,
    format: LogFormat,
) -> Result<u64, SnapshotError>
where
    I: IntoIterator<Item = (&'e str, &'e [u8], &'e VersionToken)>,
    I::IntoIter: Clone,
{
    compact_with_crash(path, entries, cursor, format, CrashPoint::Never)
}

/// [`compact_to_file`] that can stop at `crash` as a crashed process would
/// (fault injection; `CrashPoint::Never` in production).
pub(crate) fn compact_with_crash<'e, I>(
    path: &Path,
    entries: I,
    cursor: &WatchCursor,
    format: LogFormat,
    crash: CrashPoint,
) -> Result<u64, SnapshotError>
where
    I: IntoIterator<Item = (&'e str, &'e [u8], &'e VersionToken)>,
    I::IntoIter: Clone,
{
    let dir = parent_dir(path)?;
    let entries = entries.into_iter();
    let estimate = entries.clone().fold(
        V3_HEADER_LEN + 2 * V3_RECORD_OVERHEAD + 20,
        |sum, (k, v, ver)| {
            sum.saturating_add(V3_RECORD_OVERHEAD + 3 + k.len() + v.len() + ver.as_bytes().len())
        },
    );
    let (temp_path, temp) = create_temp(&dir)?;
    if crash == CrashPoint::BeforeRename {
        // The injected crash leaves the temp file behind, fully written.
        write_temp(temp, estimate, entries, cursor, format)?;
        return Err(crashed("before rename"));
    }
    let result = write_temp(temp, estimate, entries, cursor, format).and_then(|len| {
        fsio::rename(&temp_path, path)?;
        Ok(len)
    });
    let len = match result {
        Ok(len) => len,
        Err(err) => {
            let _ = fsio::remove_file(&temp_path);
            return Err(err);
        }
    };
    if crash == CrashPoint::AfterRename {
        return Err(crashed("after rename"));
    }
    sync_dir(&dir)?;
    Ok(len)
}

/// The error an injected crash returns.
fn crashed(at: &str) -> SnapshotError {
    SnapshotError::Io(io::Error::other(format!("injected crash {at}")))
}

/// Creates a new, unique temp file in `dir`.
fn create_temp(dir: &Path) -> Result<(PathBuf, File), SnapshotError> {
    let mut last = None;
    for _ in 0..TEMP_NAME_ATTEMPTS {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "{TEMP_PREFIX}{}-{}-{nanos:08x}",
            std::process::id(),
            TEMP_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let temp_path = dir.join(name);
        match fsio::open(&temp_path, OpenOptions::new().write(true).create_new(true)) {
            Ok(file) => return Ok((temp_path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last
        .unwrap_or_else(|| io::Error::other("no free compaction temp name"))
        .into())
}

/// Writes the compact log into `temp`, flushes and fsyncs it; returns its length.
fn write_temp<'e>(
    mut temp: File,
    estimate: usize,
    entries: impl Iterator<Item = (&'e str, &'e [u8], &'e VersionToken)>,
    cursor: &WatchCursor,
    format: LogFormat,
) -> Result<u64, SnapshotError> {
    let capacity = estimate.clamp(BUFFER_MIN_BYTES, BUFFER_MAX_BYTES);
    let mut out = BufWriter::with_capacity(capacity, SeamWriter(&mut temp));
    let mut scratch = Vec::with_capacity(BUFFER_MIN_BYTES);
    let mut len = 0u64;
    encode_header(format, &mut scratch);
    for (key, value, version) in entries {
        encode_put(format, key, value, version, &mut scratch).map_err(limit_error)?;
        if scratch.len() >= BUFFER_MIN_BYTES {
            out.write_all(&scratch)?;
            len += scratch.len() as u64;
            scratch.clear();
        }
    }
    if !cursor.to_bytes().is_empty() {
        encode_cursor(format, cursor, &mut scratch).map_err(limit_error)?;
    }
    out.write_all(&scratch)?;
    len += scratch.len() as u64;
    out.into_inner().map_err(io::IntoInnerError::into_error)?;
    fsio::sync_all(&temp)?;
    Ok(len)
}

/// An entry over the limits (impossible for replayed state).
fn limit_error(err: LogError) -> SnapshotError {
    SnapshotError::InvalidFormat(err.to_string())
}
