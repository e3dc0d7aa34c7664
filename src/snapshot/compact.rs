//! `compact_to_file` (docs/snapshots.md, "Compaction"): rewrite a log as a compact file
//! through a temp file in the same directory, fsync it, rename it over the target, fsync
//! the directory. A crash at any step leaves either the old file or the new one, never a
//! mix; leftover `.kvfold-compact-*` files are never read.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::SnapshotError;
use super::file::{CrashPoint, LogFile, parent_dir};
use crate::fsio;
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

/// Whether [`compact_renamed`] fsyncs the directory after its rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameSync {
    /// Fsync the directory: the rename is durable when `dir_synced` is `Ok`.
    Now,
    /// Leave the rename's durability to the caller's next directory fsync. Only
    /// for a rewrite whose new file holds the same logical state as the file it
    /// replaces (`load`): a power loss that undoes the rename brings back the old
    /// file, which reads as that same state (docs/decisions.md 99).
    Later,
}

/// A compacted file that has been renamed over its target: from here on the file
/// on disk at the target is this one.
#[derive(Debug)]
pub(crate) struct Renamed {
    /// The new file's handle: read and append, holding the log's lock.
    pub(crate) file: LogFile,
    /// The new file's length.
    pub(crate) len: u64,
    /// The directory fsync that makes the rename durable. An `Err` here means
    /// the rename happened but its durability is unknown.
    pub(crate) dir_synced: Result<(), SnapshotError>,
}

/// Rewrites `path` as a compact log in `format`: the header, one Put per entry in
/// the order given (pass ascending key order, e.g. a `BTreeMap`'s: the same state
/// then always gives the same bytes), then one Cursor record iff
/// `cursor.to_bytes()` is non-empty (a none cursor carrying the eviction memo
/// survives). Returns the new file length.
///
/// On error the temp file is removed (best effort) and `path` is unchanged, except
/// for an error of the directory fsync after the rename.
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
    let renamed = compact_renamed(
        path,
        entries,
        cursor,
        format,
        CrashPoint::Never,
        NameSync::Now,
    )?;
    renamed.dir_synced?;
    Ok(renamed.len)
}

/// [`compact_to_file`] for a live log: returns the renamed file's locked handle,
/// which the caller switches to (the old handle points at the replaced file),
/// and the directory fsync's outcome separately. `Err`: nothing was renamed and
/// `path` is unchanged. `crash` stops as a crashed process would (fault
/// injection; `CrashPoint::Never` in production): `BeforeRename` returns `Err`
/// with the written temp file left behind, `AfterRename` returns the renamed
/// file with a failed directory fsync. `name`: whether the directory is fsynced
/// after the rename ([`NameSync`]).
pub(crate) fn compact_renamed<'e, I>(
    path: &Path,
    entries: I,
    cursor: &WatchCursor,
    format: LogFormat,
    crash: CrashPoint,
    name: NameSync,
) -> Result<Renamed, SnapshotError>
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
    let (temp_path, mut temp) = create_temp(&dir)?;
    if crash == CrashPoint::BeforeRename {
        // The injected crash leaves the temp file behind, fully written.
        write_temp(&mut temp, estimate, entries, cursor, format)?;
        return Err(crashed("before rename"));
    }
    let written = write_temp(&mut temp, estimate, entries, cursor, format).and_then(|len| {
        fsio::rename(&temp_path, path)?;
        Ok(len)
    });
    let len = match written {
        Ok(len) => len,
        Err(err) => {
            drop(temp);
            let _ = fsio::remove_file(&temp_path);
            return Err(err);
        }
    };
    // Renamed: `path` now names `temp`'s file, whatever happens next.
    let dir_synced = if crash == CrashPoint::AfterRename {
        Err(crashed("after rename"))
    } else if name == NameSync::Later {
        Ok(())
    } else {
        fsio::sync_dir(&dir).map_err(SnapshotError::from)
    };
    Ok(Renamed {
        file: temp,
        len,
        dir_synced,
    })
}

/// The error an injected crash returns.
fn crashed(at: &str) -> SnapshotError {
    SnapshotError::Io(io::Error::other(format!("injected crash {at}")))
}

/// Creates a new, unique, locked temp file in `dir`.
fn create_temp(dir: &Path) -> Result<(PathBuf, LogFile), SnapshotError> {
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
        match LogFile::create_locked(&temp_path) {
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
    temp: &mut LogFile,
    estimate: usize,
    entries: impl Iterator<Item = (&'e str, &'e [u8], &'e VersionToken)>,
    cursor: &WatchCursor,
    format: LogFormat,
) -> Result<u64, SnapshotError> {
    let capacity = estimate.clamp(BUFFER_MIN_BYTES, BUFFER_MAX_BYTES);
    let mut out = BufWriter::with_capacity(capacity, &mut *temp);
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
    temp.sync_all()?;
    Ok(len)
}

/// An entry over the limits (impossible for replayed state).
fn limit_error(err: LogError) -> SnapshotError {
    SnapshotError::InvalidFormat(err.to_string())
}
