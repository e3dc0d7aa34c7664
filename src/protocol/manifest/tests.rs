//! Unit tables for the manifest kernel: the (schema, scope) matrix, payload path
//! cases, strict-JSON refusals, digest and cursor forms, the canonical encoding and
//! the listing check (docs/artifacts.md §1, §3 step I5).

use super::*;
use crate::kv::{VersionToken, WatchCursor};

/// A valid digest (BLAKE3 of the empty input).
const DIGEST: &str = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

/// The example manifest of docs/artifacts.md §1, byte for byte.
const DOC_EXAMPLE: &str = r#"{
  "schema_version": 2,
  "backend": "append-log",
  "backend_version": "3",
  "cursor_hex": "000000000000002a",
  "created_at_unix": 1767225600,
  "files": [
    {
      "path": "data/fold.snap",
      "size": 4096,
      "blake3": "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    }
  ],
  "scope": [
    "config."
  ]
}"#;

/// A manifest document with the given top-level members spliced in as raw JSON.
/// `schema` and `scope` are raw JSON values (`None` omits the key).
fn doc(schema: &str, scope: Option<&str>, files: &str, cursor_hex: &str) -> String {
    let mut out = format!(
        r#"{{"schema_version": {schema}, "backend": "append-log", "backend_version": "3",
            "cursor_hex": "{cursor_hex}", "created_at_unix": 7, "files": {files}"#
    );
    if let Some(scope) = scope {
        out.push_str(&format!(r#", "scope": {scope}"#));
    }
    out.push('}');
    out
}

/// One valid `files` array holding `paths`.
fn files_of(paths: &[&str]) -> String {
    let items: Vec<String> = paths
        .iter()
        .map(|path| format!(r#"{{"path": {path:?}, "size": 1, "blake3": "{DIGEST}"}}"#))
        .collect();
    format!("[{}]", items.join(","))
}

fn decode_str(text: &str) -> Result<ExportManifest, ManifestError> {
    decode_manifest(text.as_bytes())
}

fn sample(schema_version: u32, scope: Option<Vec<String>>) -> ExportManifest {
    ExportManifest {
        schema_version,
        backend: "append-log".into(),
        backend_version: "3".into(),
        cursor: WatchCursor::from_u64(42),
        created_at_unix: 1_767_225_600,
        files: vec![ArtifactFile {
            path: "data/fold.snap".into(),
            size: 4096,
            blake3: DIGEST.into(),
        }],
        scope,
    }
}

#[test]
fn spec_example_decodes_and_reencodes_byte_for_byte() {
    let manifest = decode_str(DOC_EXAMPLE).expect("the documented example is valid");
    assert_eq!(manifest, sample(2, Some(vec!["config.".into()])));
    assert_eq!(encode_manifest(&manifest), DOC_EXAMPLE.as_bytes());
}

#[test]
fn schema_scope_matrix() {
    let files = files_of(&["data/fold.snap"]);
    let cases: [(&str, Option<&str>, Result<(), ManifestError>); 12] = [
        ("1", None, Ok(())),
        ("1", Some("null"), Ok(())),
        (
            "1",
            Some("[]"),
            Err(ManifestError::ScopeMismatch {
                schema_version: 1,
                has_scope: true,
            }),
        ),
        (
            "1",
            Some(r#"[""]"#),
            Err(ManifestError::ScopeMismatch {
                schema_version: 1,
                has_scope: true,
            }),
        ),
        ("2", Some("[]"), Ok(())),
        ("2", Some(r#"["", "a."]"#), Ok(())),
        (
            "2",
            None,
            Err(ManifestError::ScopeMismatch {
                schema_version: 2,
                has_scope: false,
            }),
        ),
        (
            "2",
            Some("null"),
            Err(ManifestError::ScopeMismatch {
                schema_version: 2,
                has_scope: false,
            }),
        ),
        ("0", None, Err(ManifestError::UnsupportedSchema(0))),
        ("3", Some("[]"), Err(ManifestError::UnsupportedSchema(3))),
        (
            "4294967295",
            None,
            Err(ManifestError::UnsupportedSchema(u32::MAX)),
        ),
        (
            "4294967296",
            None,
            Err(ManifestError::WrongType {
                field: "schema_version",
            }),
        ),
    ];
    for (schema, scope, expected) in cases {
        let text = doc(schema, scope, &files, "000000000000002a");
        let got = decode_str(&text).map(|m| {
            assert_eq!(m.scope.is_some(), schema == "2");
        });
        assert_eq!(got, expected, "schema {schema}, scope {scope:?}");
    }
}

#[test]
fn payload_path_table() {
    use PathFault::*;
    let long_component = format!("data/{}", "x".repeat(256));
    let max_component = format!("data/{}", "x".repeat(255));
    let long_path = format!("data/{}", ["y"; 2047].join("/"));
    let max_path = format!("data/{}x", "y/".repeat(2045));
    assert_eq!(max_path.len(), 4096);
    assert!(long_path.len() > 4096);
    let cases: Vec<(&str, Option<PathFault>)> = vec![
        ("data/fold.snap", None),
        ("data/a/b/c", None),
        ("data/.hidden", None),
        ("data/..x", None),
        ("data/x..", None),
        ("data/with space/é", None),
        (max_component.as_str(), None),
        (max_path.as_str(), None),
        ("data/", Some(NotUnderData)),
        ("data", Some(NotUnderData)),
        ("", Some(NotUnderData)),
        ("fold.snap", Some(NotUnderData)),
        ("/data/fold.snap", Some(NotUnderData)),
        ("/etc/passwd", Some(NotUnderData)),
        ("../data/x", Some(NotUnderData)),
        ("./data/x", Some(NotUnderData)),
        ("Data/x", Some(NotUnderData)),
        ("MANIFEST.json", Some(NotUnderData)),
        ("data\\x", Some(NotUnderData)),
        ("data/a\\b", Some(Backslash)),
        ("data/..\\..\\x", Some(Backslash)),
        ("data/a\0b", Some(Nul)),
        ("data/../x", Some(NotNormal)),
        ("data/a/../../x", Some(NotNormal)),
        ("data/..", Some(NotNormal)),
        ("data/.", Some(NotNormal)),
        ("data/./x", Some(NotNormal)),
        ("data//x", Some(NotNormal)),
        ("data/x/", Some(NotNormal)),
        ("data/x//", Some(NotNormal)),
        (long_component.as_str(), Some(TooLong)),
        (long_path.as_str(), Some(TooLong)),
    ];
    for (path, fault) in cases {
        let expected = match fault {
            None => Ok(()),
            Some(reason) => Err(ManifestError::BadPath {
                path: path.to_owned(),
                reason,
            }),
        };
        assert_eq!(validate_payload_path(path), expected, "path {path:?}");
    }
}

#[test]
fn bad_paths_are_refused_inside_a_manifest() {
    for path in [
        "data/../../etc/passwd",
        "/etc/passwd",
        "data\\..\\x",
        "data/a\\..\\..\\b",
    ] {
        let text = doc("1", None, &files_of(&[path]), "");
        assert!(
            matches!(decode_str(&text), Err(ManifestError::BadPath { .. })),
            "{path:?} must be refused"
        );
    }
}

#[test]
fn duplicate_and_conflicting_paths_are_refused() {
    let text = doc("1", None, &files_of(&["data/a", "data/b", "data/a"]), "");
    assert_eq!(
        decode_str(&text),
        Err(ManifestError::DuplicatePath("data/a".into()))
    );
    // "data/a-b" sorts between "data/a" and "data/a/b" byte-wise; still found.
    let text = doc(
        "1",
        None,
        &files_of(&["data/a/b", "data/a-b", "data/a"]),
        "",
    );
    assert_eq!(
        decode_str(&text),
        Err(ManifestError::PathConflict {
            file: "data/a".into(),
            dir: "data/a/b".into()
        })
    );
    let text = doc(
        "1",
        None,
        &files_of(&["data/a", "data/a-b", "data/ab", "data/a.b/c"]),
        "",
    );
    assert!(decode_str(&text).is_ok());
}

#[test]
fn array_forms_are_not_objects() {
    assert_eq!(
        decode_str(r#"["x", 1]"#),
        Err(ManifestError::NotAnObject { at: "$".into() })
    );
    assert_eq!(
        decode_str(r#"  [1, "append-log", "3", "", 0, [], null]"#),
        Err(ManifestError::NotAnObject { at: "$".into() })
    );
    for top in ["\"x\"", "1", "null", "true", "\u{feff}{}"] {
        assert_eq!(
            decode_str(top),
            Err(ManifestError::NotAnObject { at: "$".into() }),
            "{top:?}"
        );
    }
    let element = format!(
        r#"[{{"path": "data/a", "size": 1, "blake3": "{DIGEST}"}}, ["data/b", 1, "{DIGEST}"]]"#
    );
    assert_eq!(
        decode_str(&doc("1", None, &element, "")),
        Err(ManifestError::NotAnObject {
            at: "$.files[1]".into()
        })
    );
    for element in ["[1]", "[\"data/a\"]", "[null]", "[[]]"] {
        assert_eq!(
            decode_str(&doc("1", None, element, "")),
            Err(ManifestError::NotAnObject {
                at: "$.files[0]".into()
            }),
            "{element}"
        );
    }
}

#[test]
fn strict_json_refusals() {
    let files = files_of(&["data/fold.snap"]);
    let base = doc("1", None, &files, "");
    let extra = base.replacen('{', r#"{"extra": 1, "#, 1);
    assert_eq!(
        decode_str(&extra),
        Err(ManifestError::UnknownField("extra".into()))
    );
    let dup = base.replacen('{', r#"{"backend": "fjall", "#, 1);
    assert_eq!(
        decode_str(&dup),
        Err(ManifestError::DuplicateField("backend".into()))
    );
    let dup_scope = doc("2", Some("[]"), &files, "").replacen('{', r#"{"scope": null, "#, 1);
    assert_eq!(
        decode_str(&dup_scope),
        Err(ManifestError::DuplicateField("scope".into()))
    );
    let missing = base.replace(r#""backend_version": "3","#, "");
    assert_eq!(
        decode_str(&missing),
        Err(ManifestError::MissingField("backend_version"))
    );
    assert_eq!(
        decode_str("{}"),
        Err(ManifestError::MissingField("schema_version"))
    );
    let no_files = base.replace(&format!(r#", "files": {files}"#), "");
    assert_eq!(
        decode_str(&no_files),
        Err(ManifestError::MissingField("files"))
    );
    let element_extra = doc("1", None, &files.replacen('{', r#"{"mode": 420, "#, 1), "");
    assert_eq!(
        decode_str(&element_extra),
        Err(ManifestError::UnknownField("mode".into()))
    );
    let element_dup = doc("1", None, &files.replacen('{', r#"{"size": 2, "#, 1), "");
    assert_eq!(
        decode_str(&element_dup),
        Err(ManifestError::DuplicateField("size".into()))
    );
    let element_missing = doc("1", None, r#"[{"path": "data/a", "size": 1}]"#, "");
    assert_eq!(
        decode_str(&element_missing),
        Err(ManifestError::MissingField("blake3"))
    );
    let escaped_dup = base.replacen('{', r#"{"back\u0065nd": "x", "#, 1);
    assert_eq!(
        decode_str(&escaped_dup),
        Err(ManifestError::DuplicateField("backend".into()))
    );
}

#[test]
fn wrong_types_are_refused() {
    let files = files_of(&["data/fold.snap"]);
    let cases: Vec<(String, &str)> = vec![
        (doc("\"1\"", None, &files, ""), "schema_version"),
        (doc("1.0", None, &files, ""), "schema_version"),
        (doc("-1", None, &files, ""), "schema_version"),
        (doc("1e0", None, &files, ""), "schema_version"),
        (doc("1", None, "{}", ""), "files"),
        (doc("1", None, "null", ""), "files"),
        (doc("2", Some("{}"), &files, ""), "scope"),
        (doc("2", Some("[1]"), &files, ""), "scope"),
        (doc("2", Some("\"a\""), &files, ""), "scope"),
        (
            doc("1", None, &files, "").replace("\"append-log\"", "7"),
            "backend",
        ),
        (
            doc("1", None, &files, "").replace("\"3\"", "3"),
            "backend_version",
        ),
        (
            doc("1", None, &files, "").replace("\"cursor_hex\": \"\"", "\"cursor_hex\": null"),
            "cursor_hex",
        ),
        (
            doc("1", None, &files, "").replace(": 7,", ": -7,"),
            "created_at_unix",
        ),
        (
            doc("1", None, &files, "").replace(": 7,", ": 7.5,"),
            "created_at_unix",
        ),
        (
            doc("1", None, &files, "").replace(": 7,", ": 18446744073709551616,"),
            "created_at_unix",
        ),
        (
            doc("1", None, &files.replace("\"size\": 1", "\"size\": -1"), ""),
            "size",
        ),
        (
            doc(
                "1",
                None,
                &files.replace("\"size\": 1", "\"size\": \"1\""),
                "",
            ),
            "size",
        ),
        (
            doc("1", None, &files.replace("\"data/fold.snap\"", "[]"), ""),
            "path",
        ),
        (
            doc("1", None, &files.replace(&format!("\"{DIGEST}\""), "0"), ""),
            "blake3",
        ),
    ];
    for (text, field) in cases {
        assert_eq!(
            decode_str(&text),
            Err(ManifestError::WrongType { field }),
            "{text}"
        );
    }
    let max = doc("1", None, &files, "").replace(": 7,", ": 18446744073709551615,");
    assert_eq!(decode_str(&max).map(|m| m.created_at_unix), Ok(u64::MAX));
}

#[test]
fn syntax_errors_and_trailing_bytes() {
    let base = doc("1", None, &files_of(&["data/a"]), "");
    for text in [
        String::new(),
        "   \n".into(),
        "{".into(),
        format!("{base} x"),
        format!("{base}{{}}"),
        base.replacen(':', "", 1),
        base.replacen('}', "},", 1),
    ] {
        assert!(
            matches!(decode_str(&text), Err(ManifestError::Syntax { .. })),
            "{text:?} → {:?}",
            decode_str(&text)
        );
    }
    assert!(decode_str(&format!("\n\t {base} \r\n")).is_ok());
    let invalid_utf8 = base
        .replace("append-log", "append\u{1}log")
        .replace('\u{1}', "\u{ff}");
    let mut bytes = invalid_utf8.into_bytes();
    let at = bytes
        .iter()
        .position(|&b| b == 0xc3)
        .expect("ÿ is two bytes");
    bytes[at] = 0xff;
    assert!(matches!(
        decode_manifest(&bytes),
        Err(ManifestError::Syntax { .. })
    ));
}

#[test]
fn size_cap_is_checked_before_parsing() {
    let base = doc("1", None, &files_of(&["data/a"]), "");
    let mut exact = base.clone().into_bytes();
    exact.resize(MAX_MANIFEST_BYTES, b' ');
    assert!(decode_manifest(&exact).is_ok(), "exactly 1 MiB is accepted");
    let mut over = base.into_bytes();
    over.resize(MAX_MANIFEST_BYTES + 1, b' ');
    assert_eq!(
        decode_manifest(&over),
        Err(ManifestError::TooLarge {
            len: MAX_MANIFEST_BYTES + 1
        })
    );
    let garbage = vec![b'['; MAX_MANIFEST_BYTES + 1];
    assert_eq!(
        decode_manifest(&garbage),
        Err(ManifestError::TooLarge {
            len: MAX_MANIFEST_BYTES + 1
        })
    );
}

#[test]
fn digest_form_table() {
    let upper = DIGEST.to_uppercase();
    let short = &DIGEST[..63];
    let long = format!("{DIGEST}0");
    let non_hex = DIGEST.replacen('a', "g", 1);
    for bad in [upper.as_str(), short, long.as_str(), non_hex.as_str(), ""] {
        let files = format!(r#"[{{"path": "data/a", "size": 1, "blake3": "{bad}"}}]"#);
        assert_eq!(
            decode_str(&doc("1", None, &files, "")),
            Err(ManifestError::BadDigest {
                path: "data/a".into()
            }),
            "{bad:?}"
        );
    }
}

#[test]
fn cursor_hex_table() {
    let files = files_of(&["data/a"]);
    let memo = WatchCursor::from_u64(42).remembering(true);
    let timed = WatchCursor::from_version(VersionToken::from_u64(9).written_at(1_700_000_000_000));
    let ok: Vec<(String, WatchCursor)> = vec![
        (String::new(), WatchCursor::none()),
        ("000000000000002a".into(), WatchCursor::from_u64(42)),
        ("000000000000002A".into(), WatchCursor::from_u64(42)),
        (
            "ab".into(),
            WatchCursor::from_version(VersionToken::from_raw(&[0xab]).unwrap()),
        ),
        (checks::lower_hex(&memo.to_bytes()), memo),
        (checks::lower_hex(&timed.to_bytes()), timed.clone()),
    ];
    for (hex, cursor) in ok {
        let manifest = decode_str(&doc("1", None, &files, &hex)).expect(&hex);
        assert_eq!(manifest.cursor, cursor, "{hex}");
        assert_eq!(manifest.cursor.written_ms(), cursor.written_ms(), "{hex}");
    }
    for bad in [
        "0",
        "abc",
        "+1",
        "-1",
        "0x2a",
        "zz",
        " 2a",
        &"00".repeat(11),
        &"00".repeat(21),
        "000000000000000000000000",
    ] {
        assert_eq!(
            decode_str(&doc("1", None, &files, bad)),
            Err(ManifestError::BadCursorHex),
            "{bad:?}"
        );
    }
}

#[test]
fn checks_run_in_spec_order() {
    // Schema is judged before paths, paths before digests, digests before cursor.
    let bad_everything = r#"[{"path": "../x", "size": 1, "blake3": "X"}]"#;
    assert_eq!(
        decode_str(&doc("9", None, bad_everything, "zz")),
        Err(ManifestError::UnsupportedSchema(9))
    );
    assert!(matches!(
        decode_str(&doc("1", None, bad_everything, "zz")),
        Err(ManifestError::BadPath { .. })
    ));
    let bad_digest = r#"[{"path": "data/x", "size": 1, "blake3": "X"}]"#;
    assert!(matches!(
        decode_str(&doc("1", None, bad_digest, "zz")),
        Err(ManifestError::BadDigest { .. })
    ));
}

#[test]
fn decode_sorts_files_and_encode_is_canonical() {
    let text = doc(
        "1",
        None,
        &files_of(&["data/b", "data/a/z", "data/a.b"]),
        "2a",
    );
    let manifest = decode_str(&text).expect("valid");
    let paths: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["data/a.b", "data/a/z", "data/b"]);
    let encoded = encode_manifest(&manifest);
    assert_eq!(decode_manifest(&encoded), Ok(manifest.clone()));
    assert_eq!(
        encode_manifest(&decode_manifest(&encoded).unwrap()),
        encoded
    );
    assert!(!encoded.ends_with(b"\n"));
    let text = String::from_utf8(encoded).unwrap();
    assert!(!text.contains("scope"), "None scope is omitted: {text}");
    assert!(text.contains(r#""cursor_hex": "2a""#));
}

#[test]
fn encode_keeps_table_key_order_and_empty_lists() {
    let manifest = ExportManifest {
        files: vec![],
        ..sample(2, Some(vec![]))
    };
    let text = String::from_utf8(encode_manifest(&manifest)).unwrap();
    assert_eq!(
        text,
        "{\n  \"schema_version\": 2,\n  \"backend\": \"append-log\",\n  \"backend_version\": \"3\",\n  \
         \"cursor_hex\": \"000000000000002a\",\n  \"created_at_unix\": 1767225600,\n  \"files\": [],\n  \
         \"scope\": []\n}"
    );
    assert_eq!(decode_str(&text), Ok(manifest));
}

#[test]
fn error_texts_are_short_and_name_the_culprit() {
    let long = "k".repeat(10_000);
    let text = ManifestError::UnknownField(long).to_string();
    assert!(text.len() < 200, "{text}");
    assert!(text.starts_with("unknown manifest field \"kkk"));
    let text = ManifestError::BadPath {
        path: "data/../x".into(),
        reason: PathFault::NotNormal,
    }
    .to_string();
    assert_eq!(
        text,
        r#"payload path "data/../x" is invalid: has an empty, . or .. component"#
    );
    assert_eq!(
        ManifestError::ScopeMismatch {
            schema_version: 1,
            has_scope: true
        }
        .to_string(),
        "manifest schema_version 1 must not carry a scope"
    );
}

#[test]
fn listing_check_table() {
    let declared = vec![
        ArtifactFile {
            path: "data/a".into(),
            size: 1,
            blake3: DIGEST.into(),
        },
        ArtifactFile {
            path: "data/d/b".into(),
            size: 1,
            blake3: DIGEST.into(),
        },
    ];
    let file = |p: &str| FoundEntry::File(p.into());
    let dir = |p: &str| FoundEntry::Dir(p.into());
    let other = |p: &str| FoundEntry::Other(p.into());
    let cases: Vec<(Vec<FoundEntry>, Result<(), ManifestError>)> = vec![
        (
            vec![file("data/a"), dir("data/d"), file("data/d/b")],
            Ok(()),
        ),
        (vec![], Ok(())),
        (vec![file("data/a"), dir("data/empty")], Ok(())),
        (
            vec![file("data/a"), file("data/x")],
            Err(ManifestError::UndeclaredFile("data/x".into())),
        ),
        (
            vec![file("data")],
            Err(ManifestError::UndeclaredFile("data".into())),
        ),
        (
            vec![other("data/link")],
            Err(ManifestError::NotRegular("data/link".into())),
        ),
        (
            vec![other("data/a")],
            Err(ManifestError::NotRegular("data/a".into())),
        ),
        (
            vec![dir("data/a")],
            Err(ManifestError::DeclaredIsDirectory("data/a".into())),
        ),
    ];
    for (found, expected) in cases {
        assert_eq!(
            check_payload_listing(&declared, &found),
            expected,
            "{found:?}"
        );
    }
}

// --- the optional `bucket` key (an addition; docs/artifacts.md "Bucket identity") ---

/// The documented example with a `bucket` member spliced in before the closing brace.
fn with_bucket(bucket_json: &str) -> String {
    let body = DOC_EXAMPLE
        .strip_suffix('}')
        .expect("the example ends with a brace");
    format!("{},\n  \"bucket\": {bucket_json}\n}}", body.trim_end())
}

#[test]
fn a_bucket_round_trips_and_is_written_last() {
    let bucket = BucketIdentity::new("cfg", 1_767_225_600_123);
    let manifest = sample(2, Some(vec!["config.".into()]));
    let bytes = encode_manifest_with_bucket(&manifest, Some(&bucket));
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.ends_with(
            "  \"bucket\": {\n    \"name\": \"cfg\",\n    \"created_unix_ms\": 1767225600123\n  }\n}"
        ),
        "{text}"
    );
    assert_eq!(
        decode_manifest_with_bucket(&bytes),
        Ok((manifest.clone(), Some(bucket)))
    );
    // The plain decoder reads the same manifest; the plain encoder omits the key.
    assert_eq!(decode_manifest(&bytes), Ok(manifest.clone()));
    assert_eq!(
        encode_manifest_with_bucket(&manifest, None),
        DOC_EXAMPLE.as_bytes()
    );
}

#[test]
fn a_manifest_without_a_bucket_still_decodes_with_none() {
    assert_eq!(
        decode_manifest_with_bucket(DOC_EXAMPLE.as_bytes()),
        Ok((sample(2, Some(vec!["config.".into()])), None))
    );
    assert_eq!(
        decode_manifest_with_bucket(with_bucket("null").as_bytes()),
        Ok((sample(2, Some(vec!["config.".into()])), None))
    );
    // Allowed in schema 1 as well.
    let schema1 = format!(
        "{}, \"bucket\": {{\"name\": \"b\", \"created_unix_ms\": 0}}}}",
        doc("1", None, &files_of(&["data/fold.snap"]), "2a")
            .strip_suffix('}')
            .unwrap()
    );
    let (_, bucket) = decode_manifest_with_bucket(schema1.as_bytes()).unwrap();
    assert_eq!(bucket, Some(BucketIdentity::new("b", 0)));
}

#[test]
fn a_malformed_bucket_is_refused_strictly() {
    let cases: [(&str, ManifestError); 8] = [
        (
            r#"{"name": "cfg"}"#,
            ManifestError::MissingField("created_unix_ms"),
        ),
        (
            r#"{"created_unix_ms": 1}"#,
            ManifestError::MissingField("name"),
        ),
        (
            r#"{"name": "cfg", "created_unix_ms": 1, "extra": 0}"#,
            ManifestError::UnknownField("extra".into()),
        ),
        (
            r#"{"name": "cfg", "name": "x", "created_unix_ms": 1}"#,
            ManifestError::DuplicateField("name".into()),
        ),
        (
            r#"{"name": 5, "created_unix_ms": 1}"#,
            ManifestError::WrongType { field: "name" },
        ),
        (
            r#"{"name": "cfg", "created_unix_ms": -1}"#,
            ManifestError::WrongType {
                field: "created_unix_ms",
            },
        ),
        (
            r#"["cfg", 1]"#,
            ManifestError::WrongType { field: "bucket" },
        ),
        (
            r#"{"name": "", "created_unix_ms": 1}"#,
            ManifestError::BadBucketName,
        ),
    ];
    for (bucket, expected) in cases {
        assert_eq!(
            decode_manifest(with_bucket(bucket).as_bytes()),
            Err(expected),
            "bucket {bucket}"
        );
    }
    let long = format!(
        r#"{{"name": "{}", "created_unix_ms": 1}}"#,
        "a".repeat(crate::protocol::identity::BUCKET_NAME_BYTES_MAX + 1)
    );
    assert_eq!(
        decode_manifest(with_bucket(&long).as_bytes()),
        Err(ManifestError::BadBucketName)
    );
    let twice = format!(
        "{}, \"bucket\": null}}",
        with_bucket("null").strip_suffix('}').unwrap()
    );
    assert_eq!(
        decode_manifest(twice.as_bytes()),
        Err(ManifestError::DuplicateField("bucket".into()))
    );
}

#[test]
fn a_found_entry_names_its_path_whatever_its_kind() {
    for entry in [
        FoundEntry::File("data/a".into()),
        FoundEntry::Dir("data/a".into()),
        FoundEntry::Other("data/a".into()),
    ] {
        assert_eq!(entry.path(), "data/a", "{entry:?}");
    }
}
