//! The bucket identity an `AppendLogSnapshot` records (issue 9). The v3 log
//! format is byte-exact, so the identity lives in a sidecar file beside the log,
//! `<log>.bucket`, written atomically (temp file, `sync_all`, rename, directory
//! fsync). The bytes are `protocol::identity`'s; this file only reads and writes.
//!
//! The sidecar is advisory metadata, never data: a missing one means "no identity
//! recorded" (a store written by an earlier kvfold), and the fold kernel decides
//! what that means. A store that holds no fold is rebound by the kernel, so a stale
//! sidecar left beside a deleted log cannot mix two buckets.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::SnapshotError;
use super::file::{parent_dir, sync_dir};
use crate::fsio;
use crate::protocol::identity::{
    BucketIdentity, MAX_IDENTITY_BYTES, decode_identity, encode_identity,
};

/// Suffix of the sidecar file name: `<log file name>.bucket`.
const SIDECAR_SUFFIX: &str = ".bucket";
/// Temp-name attempts before giving up.
const TEMP_ATTEMPTS_MAX: u32 = 16;

/// The sidecar path of the log at `log`.
pub(crate) fn sidecar_path(log: &Path) -> PathBuf {
    let mut name = log.file_name().unwrap_or_default().to_os_string();
    name.push(SIDECAR_SUFFIX);
    log.with_file_name(name)
}

/// The identity recorded beside `log`, or `None` when there is no sidecar.
///
/// # Errors
///
/// `InvalidFormat` when the sidecar is not a regular file or its bytes are
/// refused by `protocol::identity::decode_identity`; `Io` for local failures.
pub(crate) fn read(log: &Path) -> Result<Option<BucketIdentity>, SnapshotError> {
    let path = sidecar_path(log);
    let meta = match fsio::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    if !meta.is_file() {
        return Err(SnapshotError::InvalidFormat(format!(
            "bucket identity {} is not a regular file",
            path.display()
        )));
    }
    let cap = u64::try_from(MAX_IDENTITY_BYTES).unwrap_or(u64::MAX);
    let mut file = fsio::open(&path, OpenOptions::new().read(true))?;
    let bytes = fsio::read_capped(&mut file, cap)?;
    decode_identity(&bytes)
        .map(Some)
        .map_err(|e| SnapshotError::InvalidFormat(format!("{}: {e}", path.display())))
}

/// Records `identity` beside `log`, replacing any earlier record atomically: a
/// new temp file in the same directory, written and `sync_all`ed, renamed over
/// the sidecar, then the directory fsynced. On failure the temp file is removed
/// (best effort) and the earlier record, if any, is still in place.
///
/// # Errors
///
/// `Io` for local failures; `InvalidFormat` for a path without a parent.
pub(crate) fn write(log: &Path, identity: &BucketIdentity) -> Result<(), SnapshotError> {
    let dir = parent_dir(log)?;
    let target = sidecar_path(log);
    let (tmp, mut file) = create_temp(&dir, &target)?;
    let written = fsio::write_all(&mut file, &encode_identity(identity))
        .and_then(|()| fsio::sync_all(&file))
        .and_then(|()| {
            drop(file);
            fsio::rename(&tmp, &target)
        });
    if let Err(err) = written {
        let _ = fsio::remove_file(&tmp);
        return Err(err.into());
    }
    sync_dir(&dir)?;
    Ok(())
}

/// Before an import installs a fold at `log`: when `log` does not exist, removes
/// a record left beside it (it described a log that is gone, and the artifact may
/// name no bucket or another one), and fsyncs the directory when something was
/// removed. An existing `log` is left alone (the import refuses it anyway).
///
/// # Errors
///
/// `Io` for local failures other than "not found".
pub(crate) fn clear_stale(log: &Path) -> Result<(), SnapshotError> {
    match fsio::symlink_metadata(log) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err.into()),
        Ok(_) => return Ok(()),
    }
    match fsio::remove_file(&sidecar_path(log)) {
        Ok(()) => {
            sync_dir(&parent_dir(log)?)?;
            Ok(())
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// A new hidden temp file `.<sidecar name>.<pid>-<nanos>-<attempt>.tmp` in `dir`.
fn create_temp(dir: &Path, target: &Path) -> io::Result<(PathBuf, File)> {
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    for attempt in 0..TEMP_ATTEMPTS_MAX {
        let tmp = dir.join(format!(
            ".{name}.{}-{nanos:08x}-{attempt}.tmp",
            std::process::id()
        ));
        match fsio::open(&tmp, OpenOptions::new().write(true).create_new(true)) {
            Ok(file) => return Ok((tmp, file)),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free bucket identity temp file name",
    ))
}
