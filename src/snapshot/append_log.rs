//! `AppendLogSnapshot`, the default `SnapshotStore` (docs/snapshots.md,
//! "`AppendLogSnapshot`"): the whole fold in an in-RAM ordered map, made durable by an
//! append-only log through a `SnapshotWriter`. Export and import stage through
//! `crate::artifact`; every byte decision is `protocol::log`'s.

use std::collections::BTreeMap;
use std::path::Path;

use super::SnapshotError;
use super::compact::compact_to_file;
use super::file::{Access, LogFile, parent_dir};
use super::load::load_locked;
use super::store::SnapshotStore;
use super::writer::{DEFAULT_COMPACT_THRESHOLD, SnapshotWriter};
use crate::artifact::{ExportManifest, ExportStage, PayloadShape, verify_and_stage_import};
use crate::kv::{KvEntry, KvUpdate, WatchCursor};
use crate::protocol::identity::BucketIdentity;
use crate::protocol::log::{LogFormat, Record, Tail, records};

/// The payload file of an append-log artifact, under `data/`.
const PAYLOAD_FILE: &str = "fold.snap";
/// The backend name in manifests.
const BACKEND: &str = "append-log";

/// Tuning of an [`AppendLogSnapshot`]; build with `..Default::default()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendLogConfig {
    /// Compact when the log has grown this many bytes since the last compaction.
    pub compact_threshold: u64,
    /// Fsync every checkpoint (the batch and its cursor are on disk when `apply` returns).
    pub sync: bool,
    /// Format of exported payloads (v3; v2 only for fleets with pre-v3 readers).
    pub artifact_format: LogFormat,
}

impl Default for AppendLogConfig {
    /// [`DEFAULT_COMPACT_THRESHOLD`], no per-checkpoint fsync, v3 artifacts.
    fn default() -> Self {
        Self {
            compact_threshold: DEFAULT_COMPACT_THRESHOLD,
            sync: false,
            artifact_format: LogFormat::V3,
        }
    }
}

fn format_version(format: LogFormat) -> &'static str {
    match format {
        LogFormat::V2 => "2",
        LogFormat::V3 => "3",
    }
}

/// The default snapshot store: an in-RAM fold over an append-only, checksummed log
/// file (`path` is a file).
pub struct AppendLogSnapshot {
    map: BTreeMap<String, KvEntry>,
    cursor: WatchCursor,
    writer: SnapshotWriter,
    config: AppendLogConfig,
    /// After a failed compaction: retry once the log has grown past this many bytes.
    compact_backoff: Option<u64>,
}

impl std::fmt::Debug for AppendLogSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendLogSnapshot")
            .field("path", &self.writer.path())
            .field("entries", &self.map.len())
            .field("cursor", &self.cursor)
            .finish()
    }
}

impl AppendLogSnapshot {
    /// Opens (or creates) the store at `path`; returns the resume cursor (`none` for a new store).
    pub fn open(path: &Path, compact_threshold: u64) -> Result<(WatchCursor, Self), SnapshotError> {
        Self::open_with(
            path,
            AppendLogConfig {
                compact_threshold,
                ..AppendLogConfig::default()
            },
        )
    }

    /// Opens (or creates) the store at `path` with `config`: `load` (upgrading v2,
    /// dropping a torn tail, compacting), then a writer.
    ///
    /// The store holds the log's exclusive advisory lock until it is dropped; a
    /// second open of the same file, in this process or another, is refused with
    /// `SnapshotError::Io` of kind `WouldBlock` naming the path.
    pub fn open_with(
        path: &Path,
        config: AppendLogConfig,
    ) -> Result<(WatchCursor, Self), SnapshotError> {
        // One handle, locked before the first read, carries the load and the
        // writer: no other writer can slip in between them.
        parent_dir(path)?;
        let mut file = LogFile::acquire(path, Access::Create)?
            .ok_or_else(|| SnapshotError::Io(std::io::ErrorKind::NotFound.into()))?;
        let (loaded, clean_len) = load_locked::<BTreeMap<String, KvEntry>>(path, &mut file, false)?;
        let (cursor, map) = loaded.unwrap_or_else(|| (WatchCursor::none(), BTreeMap::new()));
        let writer = SnapshotWriter::from_locked(
            path,
            file,
            clean_len,
            config.compact_threshold,
            config.sync,
        )?;
        Ok((
            cursor.clone(),
            Self {
                map,
                cursor,
                writer,
                config,
                compact_backoff: None,
            },
        ))
    }

    /// Verifies the artifact at `artifact_dir` and installs it as a new store at
    /// `dest_path` (which must not exist); nothing lands on failure.
    pub fn import(
        artifact_dir: &Path,
        dest_path: &Path,
        compact_threshold: u64,
    ) -> Result<(WatchCursor, Self), SnapshotError> {
        Self::import_with(
            artifact_dir,
            dest_path,
            AppendLogConfig {
                compact_threshold,
                ..AppendLogConfig::default()
            },
        )
    }

    /// [`import`](AppendLogSnapshot::import) with `config` for the opened store.
    pub fn import_with(
        artifact_dir: &Path,
        dest_path: &Path,
        config: AppendLogConfig,
    ) -> Result<(WatchCursor, Self), SnapshotError> {
        let check_version = |version: &str| match version {
            "2" | "3" => Ok(()),
            other => Err(SnapshotError::ArtifactInvalid(format!(
                "append-log artifact has format generation {other:?}; this kvfold reads \"2\" and \"3\""
            ))),
        };
        let open_staged = |staged: &Path, manifest: &ExportManifest| {
            let bytes = crate::fsio::read_path(staged)?;
            let invalid = |why: String| SnapshotError::ArtifactInvalid(why);
            // Only the cursor, the format and the tail matter here: walk the
            // records without folding them (the store's open folds them next).
            let decode = |e| invalid(format!("payload does not decode: {e}"));
            let mut iter = records(&bytes).map_err(decode)?;
            let mut cursor = WatchCursor::none();
            for record in &mut iter {
                if let Record::Cursor(next) = record.map_err(decode)? {
                    cursor = next;
                }
            }
            let (_, tail) = iter.end();
            if tail != Tail::Clean {
                return Err(invalid(format!("payload ends in a torn tail ({tail:?})")));
            }
            let format = iter.format();
            let declared = match manifest.backend_version.as_str() {
                "2" => Some(LogFormat::V2),
                _ => Some(LogFormat::V3),
            };
            if format.is_some() && format != declared {
                return Err(invalid(format!(
                    "payload format {format:?} does not match backend_version {:?}",
                    manifest.backend_version
                )));
            }
            Ok(cursor)
        };
        // A record beside a destination that does not exist yet is stale.
        super::identity::clear_stale(dest_path)?;
        let (_, stage) = verify_and_stage_import(
            artifact_dir,
            dest_path,
            BACKEND,
            PayloadShape::SingleFile(PAYLOAD_FILE),
            check_version,
        )?;
        let verified = stage.check_cursor(open_staged)?;
        // The bucket the artifact names is recorded (durably) before the log is published,
        // so a log never lands without it: a failure or a crash after the publish leaves a
        // complete store, identity included (issue 9, docs/ docs/decisions.md 59). If the
        // publish then fails, the record is stale and removed; one left by a second fault
        // or a crash is cleared by the next import, and describes no log meanwhile.
        let bucket = crate::artifact::artifact_bucket(artifact_dir)?;
        if let Some(bucket) = &bucket {
            super::identity::write(dest_path, bucket).inspect_err(|_| {
                let _ = super::identity::clear_stale(dest_path);
            })?;
        }
        if let Err(err) = verified.finalize() {
            if bucket.is_some() && !matches!(err, SnapshotError::ArtifactInvalid(_)) {
                // Not an occupied destination (then the record may be the
                // winner's): clear the record if the log did not land.
                let _ = super::identity::clear_stale(dest_path);
            }
            return Err(err);
        }
        if let Some(bucket) = &bucket {
            // Written again now that this import's log is in place: a racing
            // importer of another artifact that lost the publish may have
            // replaced the record meanwhile. The first record is durable, so a
            // failure here changes nothing.
            if let Err(error) = super::identity::write(dest_path, bucket) {
                tracing::warn!(path = %dest_path.display(), %error, "could not rewrite the bucket identity after the import; the record written before the publish stands");
            }
        }
        Self::open_with(dest_path, config)
    }

    /// The configuration.
    pub fn config(&self) -> AppendLogConfig {
        self.config
    }

    /// Arms fault injection on the log writer (feature `failpoints`; tests only):
    /// the handle is shared, so the caller arms and clears faults on the live store.
    #[cfg(feature = "failpoints")]
    #[doc(hidden)]
    pub fn inject_faults(&mut self, faults: super::file::WriterFaults) {
        self.writer.inject_faults(faults);
    }

    fn maybe_compact(&mut self, due: bool) {
        if !due {
            return;
        }
        let grown = self.writer.bytes_since_compact();
        if let Some(retry_at) = self.compact_backoff
            && grown < retry_at
        {
            return;
        }
        match self.writer.compact() {
            Ok(()) => self.compact_backoff = None,
            Err(error) => {
                tracing::warn!(path = %self.writer.path().display(), %error, "compaction failed; the batch is durable, retrying later");
                self.compact_backoff = Some(grown.saturating_add(self.config.compact_threshold));
            }
        }
    }
}

impl SnapshotStore for AppendLogSnapshot {
    fn load(path: &Path) -> Result<(WatchCursor, Self), SnapshotError> {
        Self::open(path, DEFAULT_COMPACT_THRESHOLD)
    }

    fn apply(&mut self, batch: &[KvUpdate], cursor: &WatchCursor) -> Result<(), SnapshotError> {
        for update in batch {
            self.writer.write_update(update)?;
        }
        let due = self.writer.checkpoint(cursor)?;
        // Only now mirror the batch: readers never see data whose log write failed.
        for update in batch {
            match update {
                KvUpdate::Put(entry) => {
                    self.map.insert(entry.key.clone(), entry.clone());
                }
                KvUpdate::Delete { key, .. } | KvUpdate::Purge { key, .. } => {
                    self.map.remove(key);
                }
            }
        }
        self.cursor = cursor.clone();
        self.maybe_compact(due);
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<KvEntry>, SnapshotError> {
        Ok(self.map.get(key).cloned())
    }

    fn range(&self, prefix: &str) -> Result<Vec<KvEntry>, SnapshotError> {
        Ok(self
            .map
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(_, entry)| entry.clone())
            .collect())
    }

    fn has_entries(&self) -> Result<bool, SnapshotError> {
        Ok(!self.map.is_empty())
    }

    fn cursor(&self) -> WatchCursor {
        self.cursor.clone()
    }

    fn export_to(&mut self, dest_dir: &Path) -> Result<ExportManifest, SnapshotError> {
        let format = self.config.artifact_format;
        let stage = ExportStage::new(dest_dir)?;
        let data = stage.create_payload_dir()?;
        let payload = data.join(PAYLOAD_FILE);
        let entries = self
            .map
            .values()
            .map(|e| (e.key.as_str(), e.value.as_slice(), &e.version));
        compact_to_file(&payload, entries, &self.cursor, format)?;
        // Verify the written payload against the live fold before sealing it.
        let bytes = crate::fsio::read_path(&payload)?;
        let disagree = |why: String| {
            SnapshotError::ArtifactInvalid(format!(
                "exported payload disagrees with the live fold: {why}"
            ))
        };
        // Record by record against the map, in its (ascending) order, without
        // folding the payload into a second map.
        let mut iter = records(&bytes).map_err(|e| disagree(e.to_string()))?;
        let mut live = self.map.values();
        let mut written = 0usize;
        let mut cursor = WatchCursor::none();
        let mut cursor_records = 0usize;
        for record in &mut iter {
            match record.map_err(|e| disagree(e.to_string()))? {
                Record::Put {
                    key,
                    value,
                    version,
                } if cursor_records == 0 => {
                    written += 1;
                    let same = live
                        .next()
                        .is_some_and(|e| e.key == key && e.value == value && e.version == version);
                    if !same {
                        return Err(disagree(format!("entry {written} (key {key:?}) differs")));
                    }
                }
                Record::Cursor(next) if cursor_records == 0 => {
                    cursor = next;
                    cursor_records += 1;
                }
                other => {
                    return Err(disagree(format!("unexpected record {other:?}")));
                }
            }
        }
        let (_, tail) = iter.end();
        if iter.format() != Some(format) || tail != Tail::Clean {
            return Err(disagree(format!(
                "format {:?}, tail {tail:?}",
                iter.format()
            )));
        }
        if cursor != self.cursor || written != self.map.len() {
            return Err(disagree(format!(
                "cursor {:?} vs {:?}, {} vs {} entries",
                cursor,
                self.cursor,
                written,
                self.map.len()
            )));
        }
        let bucket = super::identity::read(self.writer.path())?;
        stage
            .with_bucket(bucket)
            .seal_and_finalize(BACKEND, format_version(format), &self.cursor)
    }

    fn bucket_identity(&self) -> Result<Option<BucketIdentity>, SnapshotError> {
        super::identity::read(self.writer.path())
    }

    fn record_bucket_identity(&mut self, identity: &BucketIdentity) -> Result<(), SnapshotError> {
        super::identity::write(self.writer.path(), identity)
    }
}
