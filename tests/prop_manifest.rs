//! proptest: the manifest JSON round trip (docs/artifacts.md §1, docs/verification.md row
//! 12 and "proptest"). For random valid manifests, `decode(encode(m)) == m` and re-encoding
//! is byte-identical; the encoding keeps the table's key order; file order and `cursor_hex`
//! case in the input do not matter to the decoded value.

use std::collections::BTreeMap;

use kvfold::protocol::manifest::{decode_manifest, encode_manifest, validate_payload_path};
use kvfold::{ArtifactFile, ExportManifest, VersionToken, WatchCursor};
use proptest::prelude::*;

/// A cursor through the public constructors: 0–10 version bytes, memo, write time.
fn cursor() -> impl Strategy<Value = WatchCursor> {
    (
        prop::collection::vec(any::<u8>(), 0..=VersionToken::MAX_LEN),
        any::<bool>(),
        prop_oneof![Just(0u64), any::<u64>()],
    )
        .prop_map(|(bytes, memo, written)| {
            let version = VersionToken::from_raw(&bytes)
                .expect("at most 10 bytes")
                .written_at(written);
            WatchCursor::from_version(version).remembering(memo)
        })
}

/// One path component: any characters but `/`, `\` and NUL, never `.` or `..`.
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_.-]{1,12}",
        "[^/\\\\\u{0}]{1,8}",
        Just("fold.snap".to_owned()),
    ]
    .prop_filter("not . or ..", |c| c != "." && c != "..")
}

/// A payload path under `data/` with 1–4 components.
fn payload_path() -> impl Strategy<Value = String> {
    prop::collection::vec(component(), 1..=4).prop_map(|parts| format!("data/{}", parts.join("/")))
}

/// 0–6 files with unique paths, none a directory of another, sorted by path.
fn files() -> impl Strategy<Value = Vec<ArtifactFile>> {
    prop::collection::vec(
        (
            payload_path(),
            any::<u64>(),
            prop::array::uniform32(any::<u8>()),
        ),
        0..=6,
    )
    .prop_map(|raw| {
        let unique: BTreeMap<String, (u64, [u8; 32])> =
            raw.into_iter().map(|(p, s, d)| (p, (s, d))).collect();
        let paths: Vec<String> = unique.keys().cloned().collect();
        unique
            .into_iter()
            .filter(|(path, _)| {
                !paths
                    .iter()
                    .any(|other| other.starts_with(&format!("{path}/")))
            })
            .map(|(path, (size, digest))| ArtifactFile {
                path,
                size,
                blake3: digest.iter().map(|b| format!("{b:02x}")).collect(),
            })
            .collect()
    })
}

/// Any string, including quotes, escapes, control characters and non-ASCII.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("append-log".to_owned()),
        Just("fjall".to_owned()),
        any::<String>(),
        "[\"\\\\\u{0}-\u{1f}\u{7f}é€😀]{0,6}",
    ]
}

/// A valid manifest: schema 1 without scope or schema 2 with scope.
fn manifest() -> impl Strategy<Value = ExportManifest> {
    (
        any::<bool>(),
        text(),
        text(),
        cursor(),
        any::<u64>(),
        files(),
        prop::collection::vec(text(), 0..=4),
    )
        .prop_map(
            |(scoped, backend, backend_version, cursor, created_at_unix, files, scope)| {
                ExportManifest {
                    schema_version: if scoped { 2 } else { 1 },
                    backend,
                    backend_version,
                    cursor,
                    created_at_unix,
                    files,
                    scope: scoped.then_some(scope),
                }
            },
        )
}

proptest! {
    #[test]
    fn manifest_round_trips_canonically(m in manifest()) {
        for file in &m.files {
            prop_assert_eq!(validate_payload_path(&file.path), Ok(()));
        }
        let encoded = encode_manifest(&m);
        let decoded = decode_manifest(&encoded).expect("a valid manifest decodes");
        prop_assert_eq!(&decoded, &m);
        prop_assert_eq!(decoded.cursor.written_ms(), m.cursor.written_ms());
        prop_assert_eq!(encode_manifest(&decoded), encoded.clone(), "re-encoding is byte-identical");
        prop_assert!(!encoded.ends_with(b"\n"));
    }

    #[test]
    fn encoding_keeps_the_table_key_order(m in manifest()) {
        let text = String::from_utf8(encode_manifest(&m)).expect("UTF-8");
        let keys = ["schema_version", "backend", "backend_version", "cursor_hex", "created_at_unix", "files", "scope"];
        let positions: Vec<usize> = keys
            .iter()
            .filter_map(|key| text.find(&format!("\n  \"{key}\": ")))
            .collect();
        let expected = if m.scope.is_some() { 7 } else { 6 };
        prop_assert_eq!(positions.len(), expected, "{}", text);
        prop_assert!(positions.windows(2).all(|w| w[0] < w[1]), "{}", text);
        prop_assert!(text.starts_with("{\n  \"schema_version\": "), "{}", text);
    }

    #[test]
    fn input_file_order_and_hex_case_do_not_matter(m in manifest(), rotate in 0usize..6) {
        let encoded = String::from_utf8(encode_manifest(&m)).expect("UTF-8");
        let hex_lower: String = m.cursor.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
        let upper = encoded.replacen(
            &format!("\"cursor_hex\": \"{hex_lower}\""),
            &format!("\"cursor_hex\": \"{}\"", hex_lower.to_uppercase()),
            1,
        );
        prop_assert_eq!(decode_manifest(upper.as_bytes()), Ok(m.clone()));
        let mut shuffled = m.clone();
        if !shuffled.files.is_empty() {
            let by = rotate % shuffled.files.len();
            shuffled.files.rotate_left(by);
            shuffled.files.reverse();
        }
        prop_assert_eq!(decode_manifest(&encode_manifest(&shuffled)), Ok(m));
    }
}
