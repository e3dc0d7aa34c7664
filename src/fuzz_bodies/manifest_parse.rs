//! Fuzz body `manifest_parse` (docs/verification.md, "Fuzz targets" and row 12): the
//! manifest decoder never panics, refuses oversized input unparsed, accepts only
//! well-formed object manifests, and its encoding is canonical.
//!
//! The checks on an accepted input do not re-run the kernel's logic: they read the
//! same bytes with `serde_json::Value` (an independent, lenient reader) and compare.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::artifact::{ArtifactFile, ExportManifest};
use crate::protocol::identity::{BucketIdentity, identity_name_is_valid};
use crate::protocol::manifest::{
    FoundEntry, MAX_MANIFEST_BYTES, ManifestError, check_payload_listing, decode_manifest,
    decode_manifest_with_bucket, encode_manifest, encode_manifest_with_bucket,
    validate_payload_path,
};

/// Top-level keys a manifest may have.
const MANIFEST_KEYS: [&str; 8] = [
    "schema_version",
    "backend",
    "backend_version",
    "cursor_hex",
    "created_at_unix",
    "files",
    "scope",
    "bucket",
];

/// Feeds `data` to `decode_manifest` and checks what it says.
///
/// - never panics (also not while formatting the error);
/// - an input over `MAX_MANIFEST_BYTES` is refused with `TooLarge` (unparsed);
/// - `Ok(m)` ⇒ `data` is JSON whose top level and every `files` element are
///   objects with only schema keys, and `m` holds exactly their values; (schema,
///   scope) is (1, none) or (2, some); every path is valid and unique; `files` is
///   sorted; digests are 64 lowercase hex characters;
/// - round trip: `decode(encode(m)) == Ok(m)` and re-encoding is byte-identical,
///   also with the optional `bucket` (an addition), which `decode_manifest` drops;
/// - the listing check accepts exactly the declared files and refuses an extra
///   file or a declared path found as a directory.
pub fn manifest_parse(data: &[u8]) {
    let decoded = decode_manifest_with_bucket(data);
    assert_eq!(
        decode_manifest(data),
        decoded.clone().map(|(manifest, _)| manifest),
        "decode_manifest is decode_manifest_with_bucket without the bucket"
    );
    if data.len() > MAX_MANIFEST_BYTES {
        assert_eq!(
            decoded,
            Err(ManifestError::TooLarge { len: data.len() }),
            "oversized input must be refused unparsed"
        );
        return;
    }
    let (manifest, bucket) = match decoded {
        Ok(decoded) => decoded,
        Err(err) => {
            let text = err.to_string();
            assert!(
                text.len() < 1024,
                "error text too long: {} bytes",
                text.len()
            );
            return;
        }
    };
    check_against_json(data, &manifest, bucket.as_ref());
    check_accepted_shape(&manifest);
    check_round_trip(&manifest);
    check_round_trip_with_bucket(&manifest, bucket.as_ref());
    check_listing(&manifest);
}

/// The accepted bytes, read by the lenient `Value` parser, hold exactly `m`.
fn check_against_json(data: &[u8], m: &ExportManifest, bucket: Option<&BucketIdentity>) {
    let value: Value = serde_json::from_slice(data).expect("an accepted manifest is valid JSON");
    let top = value
        .as_object()
        .expect("the top level of an accepted manifest is an object");
    for key in top.keys() {
        assert!(
            MANIFEST_KEYS.contains(&key.as_str()),
            "accepted unknown key {key:?}"
        );
    }
    assert_eq!(
        top["schema_version"].as_u64(),
        Some(u64::from(m.schema_version))
    );
    assert_eq!(top["backend"].as_str(), Some(m.backend.as_str()));
    assert_eq!(
        top["backend_version"].as_str(),
        Some(m.backend_version.as_str())
    );
    assert_eq!(top["created_at_unix"].as_u64(), Some(m.created_at_unix));
    let hex = top["cursor_hex"].as_str().expect("cursor_hex is a string");
    assert_eq!(hex.to_ascii_lowercase(), lower_hex(&m.cursor.to_bytes()));
    let scope = match top.get("scope") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|item| item.as_str().expect("scope items are strings").to_owned())
                .collect::<Vec<_>>(),
        ),
        Some(other) => panic!("accepted scope {other}"),
    };
    assert_eq!(scope, m.scope);
    let read_bucket = match top.get("bucket") {
        None | Some(Value::Null) => None,
        Some(Value::Object(object)) => {
            assert_eq!(object.len(), 2, "a bucket object has exactly two keys");
            let name = object["name"]
                .as_str()
                .expect("the bucket name is a string");
            assert!(
                identity_name_is_valid(name),
                "accepted bucket name {name:?}"
            );
            Some(BucketIdentity::new(
                name,
                object["created_unix_ms"]
                    .as_u64()
                    .expect("created_unix_ms is a u64"),
            ))
        }
        Some(other) => panic!("accepted bucket {other}"),
    };
    assert_eq!(read_bucket.as_ref(), bucket);
    let elements = top["files"].as_array().expect("files is an array");
    let mut files: Vec<ArtifactFile> = elements
        .iter()
        .map(|element| {
            let object = element
                .as_object()
                .expect("every files element is an object");
            assert_eq!(object.len(), 3, "a files element has exactly three keys");
            ArtifactFile {
                path: object["path"]
                    .as_str()
                    .expect("path is a string")
                    .to_owned(),
                size: object["size"].as_u64().expect("size is a u64"),
                blake3: object["blake3"]
                    .as_str()
                    .expect("blake3 is a string")
                    .to_owned(),
            }
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(files, m.files);
}

/// Schema/scope pair, paths, order and digests of an accepted manifest.
fn check_accepted_shape(m: &ExportManifest) {
    assert!(
        matches!(
            (m.schema_version, m.scope.is_some()),
            (1, false) | (2, true)
        ),
        "accepted schema {} with scope {:?}",
        m.schema_version,
        m.scope
    );
    let mut seen = BTreeSet::new();
    for file in &m.files {
        assert_eq!(validate_payload_path(&file.path), Ok(()));
        assert!(
            seen.insert(file.path.as_str()),
            "duplicate path {:?}",
            file.path
        );
        assert!(
            !m.files
                .iter()
                .any(|other| other.path.starts_with(&format!("{}/", file.path))),
            "{:?} is also a directory",
            file.path
        );
        assert!(
            file.blake3.len() == 64
                && file
                    .blake3
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "digest {:?}",
            file.blake3
        );
    }
    assert!(
        m.files.windows(2).all(|pair| pair[0].path < pair[1].path),
        "files are returned sorted by path"
    );
}

/// `decode(encode(m)) == m`, and encoding is idempotent byte for byte.
fn check_round_trip(m: &ExportManifest) {
    let encoded = encode_manifest(m);
    assert!(encoded.len() <= MAX_MANIFEST_BYTES * 4, "encoding blew up");
    assert!(!encoded.ends_with(b"\n"), "no trailing newline");
    let again = match decode_manifest(&encoded) {
        Ok(again) => again,
        // Canonical re-encoding may exceed the cap only when the input was near it
        // and used denser escapes than the writer's; nothing else may fail.
        Err(ManifestError::TooLarge { .. }) => return,
        Err(err) => panic!("own encoding refused: {err}"),
    };
    assert_eq!(&again, m);
    assert_eq!(again.cursor.written_ms(), m.cursor.written_ms());
    assert_eq!(
        encode_manifest(&again),
        encoded,
        "re-encoding is byte-identical"
    );
}

/// The same round trip with the bucket: decoding the encoding gives both back,
/// and without a bucket the bytes are exactly `encode_manifest`'s.
fn check_round_trip_with_bucket(m: &ExportManifest, bucket: Option<&BucketIdentity>) {
    let encoded = encode_manifest_with_bucket(m, bucket);
    if bucket.is_none() {
        assert_eq!(encoded, encode_manifest(m), "no bucket, no extra bytes");
    }
    match decode_manifest_with_bucket(&encoded) {
        Ok((again, again_bucket)) => {
            assert_eq!(&again, m);
            assert_eq!(again_bucket.as_ref(), bucket);
            assert_eq!(
                encode_manifest_with_bucket(&again, again_bucket.as_ref()),
                encoded,
                "re-encoding with the bucket is byte-identical"
            );
        }
        Err(ManifestError::TooLarge { .. }) => {}
        Err(err) => panic!("own encoding with a bucket refused: {err}"),
    }
}

/// The listing kernel against the declared files.
fn check_listing(m: &ExportManifest) {
    let mut found: Vec<FoundEntry> = m
        .files
        .iter()
        .map(|file| FoundEntry::File(file.path.clone()))
        .collect();
    for file in &m.files {
        let mut dir = file.path.as_str();
        while let Some((parent, _)) = dir.rsplit_once('/') {
            if parent == "data" {
                break;
            }
            found.push(FoundEntry::Dir(parent.to_owned()));
            dir = parent;
        }
    }
    assert_eq!(check_payload_listing(&m.files, &found), Ok(()));
    let extra = "data/\u{1}undeclared".to_owned();
    if !m.files.iter().any(|file| file.path == extra) {
        let mut with_extra = found.clone();
        with_extra.push(FoundEntry::File(extra.clone()));
        assert_eq!(
            check_payload_listing(&m.files, &with_extra),
            Err(ManifestError::UndeclaredFile(extra))
        );
    }
    if let Some(first) = m.files.first() {
        let as_dir = [FoundEntry::Dir(first.path.clone())];
        assert_eq!(
            check_payload_listing(&m.files, &as_dir),
            Err(ManifestError::DeclaredIsDirectory(first.path.clone()))
        );
    }
}

/// Lowercase hex, written independently of the kernel's encoder.
fn lower_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
