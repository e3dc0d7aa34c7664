//! Strict, map-only JSON reading of `MANIFEST.json` (docs/artifacts.md §1, reader steps 2–3).
//!
//! serde's derived struct deserializers also accept the *array* form of a struct
//! (`["x", 1, …]`), and `deny_unknown_fields` does not prevent that. So the wire
//! structs here are read by hand-written visitors that implement only `visit_map`
//! (objects), and that refuse unknown, duplicate and missing keys. Type checks are
//! exact: integers must be non-negative JSON integers that fit, strings must be
//! strings. Nothing here judges values (schema, paths, digests, cursor): that is
//! `super::checks`. Never panics.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;

use super::ManifestError;
use super::types::ArtifactFile;
use crate::protocol::identity::BucketIdentity;

/// A manifest exactly as the JSON said, before the value checks.
#[derive(Debug)]
pub(super) struct WireManifest {
    pub(super) schema_version: u32,
    pub(super) backend: String,
    pub(super) backend_version: String,
    pub(super) cursor_hex: String,
    pub(super) created_at_unix: u64,
    pub(super) files: Vec<ArtifactFile>,
    pub(super) scope: Option<Vec<String>>,
    pub(super) bucket: Option<BucketIdentity>,
}

/// Reads `bytes` as one strict manifest object followed only by whitespace.
///
/// The caller has checked the size cap and that the first non-whitespace byte is
/// `{`. Among the refusals of steps 2–3 (a `files` element that is not an object,
/// unknown / duplicate / missing / mistyped fields, malformed JSON) the first one
/// in document order wins, because the document is read in one streaming pass.
pub(super) fn parse(bytes: &[u8]) -> Result<WireManifest, ManifestError> {
    let mut state = ParseState {
        refusal: None,
        at: At::Top,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = ManifestSeed { state: &mut state }
        .deserialize(&mut de)
        .and_then(|manifest| de.end().map(|()| manifest));
    match parsed {
        Ok(manifest) => Ok(manifest),
        Err(err) => Err(state
            .refusal
            .take()
            .unwrap_or_else(|| state.at.refuse(&err))),
    }
}

/// Where the parser is: decides what a serde type error means.
#[derive(Debug, Clone, Copy)]
enum At {
    /// The top-level value.
    Top,
    /// The value of this field (top level or in a `files` element).
    Field(&'static str),
    /// Element `n` of `files`.
    FilesElement(usize),
}

impl At {
    /// Maps a serde error that no visitor claimed: malformed JSON is `Syntax`; a
    /// data error here can only be serde refusing a JSON type no visitor method
    /// accepts, so it is a wrong type at the current position.
    fn refuse(self, err: &serde_json::Error) -> ManifestError {
        match (err.classify(), self) {
            (Category::Data, At::Field(field)) => ManifestError::WrongType { field },
            (Category::Data, At::FilesElement(index)) => ManifestError::NotAnObject {
                at: format!("$.files[{index}]"),
            },
            (Category::Data, At::Top) => ManifestError::NotAnObject { at: "$".into() },
            (Category::Io | Category::Syntax | Category::Eof, _) => ManifestError::Syntax {
                line: err.line(),
                column: err.column(),
            },
        }
    }
}

/// Parser state shared by every visitor of one `parse` call.
struct ParseState {
    /// The first explicit refusal (unknown / duplicate / missing field); it
    /// outranks the serde error it caused.
    refusal: Option<ManifestError>,
    /// The innermost value being read; left in place when an error unwinds.
    at: At,
}

impl ParseState {
    /// Records `refusal` and returns the serde error that aborts the parse.
    fn refuse<E: de::Error>(&mut self, refusal: ManifestError) -> E {
        let err = E::custom(&refusal);
        self.refusal.get_or_insert(refusal);
        err
    }
}

/// The keys of the top-level object, in the order of the field table of docs/artifacts.md §1.
const MANIFEST_FIELDS: [&str; 8] = [
    "schema_version",
    "backend",
    "backend_version",
    "cursor_hex",
    "created_at_unix",
    "files",
    "scope",
    "bucket",
];
/// Index of the optional `scope` key in [`MANIFEST_FIELDS`].
const SCOPE: usize = 6;
/// Index of the optional `bucket` key in [`MANIFEST_FIELDS`] (an addition: the
/// identity of the bucket the fold was folded from).
const BUCKET: usize = 7;

/// The keys of the `bucket` object.
const BUCKET_FIELDS: [&str; 2] = ["name", "created_unix_ms"];

/// The keys of a `files` element.
const FILE_FIELDS: [&str; 3] = ["path", "size", "blake3"];

/// Reads one object key and maps it to its index in `fields`, refusing unknown
/// keys and keys already seen (`seen` is a bit set over `fields`).
struct KeySeed<'s> {
    state: &'s mut ParseState,
    fields: &'static [&'static str],
    seen: &'s mut u8,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a manifest field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<usize, E> {
        let Some(index) = self.fields.iter().position(|name| *name == key) else {
            return Err(self
                .state
                .refuse(ManifestError::UnknownField(key.to_owned())));
        };
        let bit = 1u8 << index;
        if *self.seen & bit != 0 {
            return Err(self
                .state
                .refuse(ManifestError::DuplicateField(key.to_owned())));
        }
        *self.seen |= bit;
        Ok(index)
    }
}

/// Returns the first key of `fields` whose bit is not in `seen`, skipping the
/// optional ones in `optional` (a bit set).
fn first_missing(fields: &'static [&'static str], seen: u8, optional: u8) -> Option<&'static str> {
    fields
        .iter()
        .enumerate()
        .find(|(index, _)| (seen | optional) & (1u8 << index) == 0)
        .map(|(_, name)| *name)
}

/// Reads the top-level manifest object.
struct ManifestSeed<'s> {
    state: &'s mut ParseState,
}

impl<'de> DeserializeSeed<'de> for ManifestSeed<'_> {
    type Value = WireManifest;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<WireManifest, D::Error> {
        self.state.at = At::Top;
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ManifestSeed<'_> {
    type Value = WireManifest;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a manifest object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireManifest, A::Error> {
        let state = self.state;
        let mut seen = 0u8;
        let mut schema_version = 0u32;
        let mut backend = String::new();
        let mut backend_version = String::new();
        let mut cursor_hex = String::new();
        let mut created_at_unix = 0u64;
        let mut files = Vec::new();
        let mut scope = None;
        let mut bucket = None;
        loop {
            let key = KeySeed {
                state: &mut *state,
                fields: &MANIFEST_FIELDS,
                seen: &mut seen,
            };
            let Some(index) = map.next_key_seed(key)? else {
                break;
            };
            let field = MANIFEST_FIELDS[index];
            // A type error while reading this value is a wrong type of `field`.
            state.at = At::Field(field);
            match index {
                0 => {
                    let value = map.next_value_seed(U64Seed)?;
                    schema_version = u32::try_from(value).map_err(|_| {
                        state.refuse::<A::Error>(ManifestError::WrongType { field })
                    })?;
                }
                1 => backend = map.next_value_seed(StringSeed)?,
                2 => backend_version = map.next_value_seed(StringSeed)?,
                3 => cursor_hex = map.next_value_seed(StringSeed)?,
                4 => created_at_unix = map.next_value_seed(U64Seed)?,
                5 => files = map.next_value_seed(FilesSeed { state: &mut *state })?,
                SCOPE => scope = map.next_value_seed(ScopeSeed)?,
                _ => bucket = map.next_value_seed(BucketSeed { state: &mut *state })?,
            }
        }
        if let Some(missing) = first_missing(&MANIFEST_FIELDS, seen, (1 << SCOPE) | (1 << BUCKET)) {
            return Err(state.refuse(ManifestError::MissingField(missing)));
        }
        Ok(WireManifest {
            schema_version,
            backend,
            backend_version,
            cursor_hex,
            created_at_unix,
            files,
            scope,
            bucket,
        })
    }
}

/// Reads the `files` array, element by element.
struct FilesSeed<'s> {
    state: &'s mut ParseState,
}

impl<'de> DeserializeSeed<'de> for FilesSeed<'_> {
    type Value = Vec<ArtifactFile>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FilesSeed<'_> {
    type Value = Vec<ArtifactFile>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of file objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let state = self.state;
        let mut files = Vec::new();
        loop {
            state.at = At::FilesElement(files.len());
            match seq.next_element_seed(FileSeed { state: &mut *state })? {
                Some(file) => files.push(file),
                None => return Ok(files),
            }
        }
    }
}

/// Reads one `files` element: an object `{ "path", "size", "blake3" }`.
struct FileSeed<'s> {
    state: &'s mut ParseState,
}

impl<'de> DeserializeSeed<'de> for FileSeed<'_> {
    type Value = ArtifactFile;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<ArtifactFile, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_> {
    type Value = ArtifactFile;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a file object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ArtifactFile, A::Error> {
        let state = self.state;
        let mut seen = 0u8;
        let mut path = String::new();
        let mut size = 0u64;
        let mut blake3 = String::new();
        loop {
            let key = KeySeed {
                state: &mut *state,
                fields: &FILE_FIELDS,
                seen: &mut seen,
            };
            let Some(index) = map.next_key_seed(key)? else {
                break;
            };
            // A type error while reading this value is a wrong type of the field.
            state.at = At::Field(FILE_FIELDS[index]);
            match index {
                0 => path = map.next_value_seed(StringSeed)?,
                1 => size = map.next_value_seed(U64Seed)?,
                _ => blake3 = map.next_value_seed(StringSeed)?,
            }
        }
        if let Some(missing) = first_missing(&FILE_FIELDS, seen, 0) {
            return Err(state.refuse(ManifestError::MissingField(missing)));
        }
        Ok(ArtifactFile { path, size, blake3 })
    }
}

/// Reads a JSON string; any other type is a type error.
struct StringSeed;

impl<'de> DeserializeSeed<'de> for StringSeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StringSeed {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<String, E> {
        Ok(value.to_owned())
    }
}

/// Reads a non-negative JSON integer that fits a `u64`. Negative integers and
/// every number written with a fraction or exponent are type errors.
struct U64Seed;

impl<'de> DeserializeSeed<'de> for U64Seed {
    type Value = u64;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for U64Seed {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
        Ok(value)
    }
}

/// Reads `scope`: `null` (absent) or an array of strings.
struct ScopeSeed;

impl<'de> DeserializeSeed<'de> for ScopeSeed {
    type Value = Option<Vec<String>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScopeSeed {
    type Value = Option<Vec<String>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("null or an array of strings")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut prefixes = Vec::new();
        while let Some(prefix) = seq.next_element_seed(StringSeed)? {
            prefixes.push(prefix);
        }
        Ok(Some(prefixes))
    }
}

/// Reads `bucket`: `null` (absent) or an object `{ "name", "created_unix_ms" }`
/// with exactly those keys.
struct BucketSeed<'s> {
    state: &'s mut ParseState,
}

impl<'de> DeserializeSeed<'de> for BucketSeed<'_> {
    type Value = Option<BucketIdentity>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BucketSeed<'_> {
    type Value = Option<BucketIdentity>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("null or a bucket object")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let state = self.state;
        let mut seen = 0u8;
        let mut name = String::new();
        let mut created_unix_ms = 0u64;
        loop {
            let key = KeySeed {
                state: &mut *state,
                fields: &BUCKET_FIELDS,
                seen: &mut seen,
            };
            let Some(index) = map.next_key_seed(key)? else {
                break;
            };
            // A type error while reading this value is a wrong type of the field.
            state.at = At::Field(BUCKET_FIELDS[index]);
            match index {
                0 => name = map.next_value_seed(StringSeed)?,
                _ => created_unix_ms = map.next_value_seed(U64Seed)?,
            }
        }
        if let Some(missing) = first_missing(&BUCKET_FIELDS, seen, 0) {
            return Err(state.refuse(ManifestError::MissingField(missing)));
        }
        Ok(Some(BucketIdentity {
            name,
            created_unix_ms,
        }))
    }
}
