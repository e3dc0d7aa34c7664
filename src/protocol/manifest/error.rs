//! The typed refusals of the manifest kernel: `ManifestError` and `PathFault`.
//! Plain data with short lowercase `Display` texts; nothing here inspects bytes.

use std::fmt;

use crate::kv::WatchCursor;

/// Longest excerpt of an offending key or path that a `Display` text quotes.
const SHOWN_CHARS_MAX: usize = 96;

/// Why a manifest (or a payload listing) was refused (docs/artifacts.md §1).
///
/// Every variant maps to `SnapshotError::ArtifactInvalid(<Display>)` at the
/// executor boundary (docs/artifacts.md §4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The input is longer than `MAX_MANIFEST_BYTES`; refused before parsing.
    #[error(
        "manifest is {len} bytes, over the {} byte cap",
        super::MAX_MANIFEST_BYTES
    )]
    TooLarge {
        /// Length of the refused input, in bytes.
        len: usize,
    },
    /// Malformed JSON, invalid UTF-8 in a string, or trailing non-whitespace.
    #[error("manifest is not valid json (line {line}, column {column})")]
    Syntax {
        /// 1-based line of the error (0 when unknown).
        line: usize,
        /// 1-based column of the error (0 when unknown).
        column: usize,
    },
    /// A value that must be a JSON object is something else (an array included).
    #[error("manifest value at {at} is not a json object")]
    NotAnObject {
        /// Where: `"$"` for the top level, `"$.files[3]"` for a `files` element.
        at: String,
    },
    /// A key the schema does not define (top level or in a `files` element).
    #[error("unknown manifest field {}", Shown(.0))]
    UnknownField(String),
    /// A key that occurs twice in the same object.
    #[error("duplicate manifest field {}", Shown(.0))]
    DuplicateField(String),
    /// A required key is absent.
    #[error("missing manifest field {0:?}")]
    MissingField(&'static str),
    /// A value of the wrong JSON type, or an integer out of range (negative,
    /// fractional, too large).
    #[error("manifest field {field:?} has the wrong type")]
    WrongType {
        /// The field whose value was refused.
        field: &'static str,
    },
    /// A `schema_version` this kernel does not read (only 1 and 2 exist).
    #[error("unsupported manifest schema_version {0}")]
    UnsupportedSchema(u32),
    /// Schema 1 carrying a `scope`, or schema 2 without one.
    #[error(
        "manifest schema_version {schema_version} {}",
        if *has_scope { "must not carry a scope" } else { "requires a scope" }
    )]
    ScopeMismatch {
        /// The declared schema version (1 or 2).
        schema_version: u32,
        /// Whether a non-null `scope` was present.
        has_scope: bool,
    },
    /// The optional `bucket` names an empty bucket or one longer than
    /// `protocol::identity::BUCKET_NAME_BYTES_MAX` bytes (an addition).
    #[error("manifest bucket name is empty or too long")]
    BadBucketName,
    /// `cursor_hex` is not even-length hex of at most 40 characters, or its bytes
    /// are refused by `WatchCursor::from_bytes`.
    #[error("manifest cursor_hex is not a valid cursor encoding")]
    BadCursorHex,
    /// A payload path that could escape or misname the payload directory.
    #[error("payload path {} is invalid: {reason}", Shown(path))]
    BadPath {
        /// The refused path, as declared.
        path: String,
        /// Which rule it broke.
        reason: PathFault,
    },
    /// The same payload path is declared twice.
    #[error("payload path {} is declared twice", Shown(.0))]
    DuplicatePath(String),
    /// One declared file path is a directory prefix of another
    /// (`data/a` and `data/a/b`): it cannot be both a file and a directory.
    #[error(
        "payload path {} is declared as a file and as a directory of {}",
        Shown(file),
        Shown(dir)
    )]
    PathConflict {
        /// The shorter path, declared as a file.
        file: String,
        /// The longer path, which needs `file` to be a directory.
        dir: String,
    },
    /// A `blake3` value that is not exactly 64 lowercase hex characters.
    #[error("payload file {} has a malformed blake3 digest", Shown(path))]
    BadDigest {
        /// The path of the file whose digest was refused.
        path: String,
    },
    /// The payload directory holds a regular file the manifest does not declare.
    #[error("payload holds undeclared file {}", Shown(.0))]
    UndeclaredFile(String),
    /// The payload directory holds a symlink, FIFO, socket or device.
    #[error("payload holds non-regular entry {}", Shown(.0))]
    NotRegular(String),
    /// A declared file exists as a directory in the payload.
    #[error("declared payload file {} is a directory", Shown(.0))]
    DeclaredIsDirectory(String),
    /// The artifact was written by another backend than the importer's.
    #[error("artifact backend is {}, expected {expected:?}", Shown(found))]
    WrongBackend {
        /// The manifest's `backend`.
        found: String,
        /// The importing backend.
        expected: String,
    },
    /// A single-file backend's artifact does not hold exactly its one payload file.
    #[error(
        "{} artifact must hold exactly one payload file, {expected}",
        Shown(backend)
    )]
    NotSingleFile {
        /// The manifest's `backend`.
        backend: String,
        /// The one path it must declare (`data/<name>`).
        expected: String,
    },
    /// A declared payload file is absent from the artifact (checked paths only).
    #[error("payload file missing: {0}")]
    PayloadMissing(String),
    /// A declared payload file streamed past its declared size.
    #[error("payload file {path} is larger than the {declared} bytes the manifest says")]
    PayloadTooLarge {
        /// The declared (checked) path.
        path: String,
        /// The manifest's `size`.
        declared: u64,
    },
    /// A declared payload file ended before its declared size.
    #[error("payload file {path} is {actual} bytes, manifest says {declared}")]
    SizeMismatch {
        /// The declared (checked) path.
        path: String,
        /// The manifest's `size`.
        declared: u64,
        /// The bytes read.
        actual: u64,
    },
    /// A payload file's BLAKE3 digest differs from the declared one.
    #[error("payload file {0} checksum mismatch")]
    DigestMismatch(String),
    /// Two declared paths name one file (only on a case-insensitive file system).
    #[error("payload path {0} collides with another on this filesystem")]
    PathCollision(String),
    /// The payload holds another cursor than the manifest declares.
    #[error("payload cursor {payload:?} differs from the manifest cursor {manifest:?}")]
    CursorMismatch {
        /// The cursor the backend read from the staged payload.
        payload: WatchCursor,
        /// The manifest's cursor.
        manifest: WatchCursor,
    },
}

/// Which payload-path rule a path broke (docs/artifacts.md §1, reader step 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PathFault {
    /// Does not start with `data/`, or is exactly `data/` (absolute paths land here).
    NotUnderData,
    /// Contains a backslash (a separator on some platforms).
    Backslash,
    /// Has an empty, `.` or `..` component (`//`, a trailing `/`, traversal).
    NotNormal,
    /// Contains a NUL byte.
    Nul,
    /// Longer than 4096 bytes, or a component longer than 255 bytes.
    TooLong,
}

impl fmt::Display for PathFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathFault::NotUnderData => "not under data/",
            PathFault::Backslash => "contains a backslash",
            PathFault::NotNormal => "has an empty, . or .. component",
            PathFault::Nul => "contains a nul byte",
            PathFault::TooLong => "too long",
        })
    }
}

/// A key or path quoted in an error text: escaped like `{:?}` and cut after
/// [`SHOWN_CHARS_MAX`] characters, so a hostile 1 MiB key never becomes a 1 MiB
/// log line.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(SHOWN_CHARS_MAX) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => write!(f, "{:?}…", &self.0[..cut]),
        }
    }
}
