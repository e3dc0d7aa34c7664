//! The manifest kernel through the public API (docs/artifacts.md §1): the example manifest
//! there byte for byte, and the committed fuzz inputs: every `ok_*` seed is accepted and
//! re-encodes canonically, every `bad_*` input is refused with the error its name promises.

use std::fs;
use std::path::{Path, PathBuf};

use kvfold::protocol::manifest::{ManifestError, PathFault, decode_manifest, encode_manifest};
use kvfold::{ArtifactFile, ExportManifest, WatchCursor};

/// `fuzz/<kind>/manifest_parse/` files named `<prefix>*`, sorted.
fn corpus(kind: &str, prefix: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join("manifest_parse");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(prefix))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn spec_example_is_the_canonical_encoding() {
    let manifest = ExportManifest {
        schema_version: 2,
        backend: "append-log".into(),
        backend_version: "3".into(),
        cursor: WatchCursor::from_u64(42),
        created_at_unix: 1_767_225_600,
        files: vec![ArtifactFile {
            path: "data/fold.snap".into(),
            size: 4096,
            blake3: "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262".into(),
        }],
        scope: Some(vec!["config.".into()]),
    };
    let seed = corpus("seeds", "ok_schema2_spec_example");
    assert_eq!(seed.len(), 1);
    let bytes = fs::read(&seed[0]).unwrap();
    assert_eq!(encode_manifest(&manifest), bytes);
    assert_eq!(decode_manifest(&bytes), Ok(manifest));
}

#[test]
fn ok_seeds_are_accepted_and_round_trip() {
    let seeds = corpus("seeds", "ok_");
    assert!(seeds.len() >= 2, "schema-1 and schema-2 seeds");
    let mut schemas = Vec::new();
    for path in seeds {
        let bytes = fs::read(&path).unwrap();
        let manifest =
            decode_manifest(&bytes).unwrap_or_else(|e| panic!("{} refused: {e}", path.display()));
        let encoded = encode_manifest(&manifest);
        assert_eq!(decode_manifest(&encoded).as_ref(), Ok(&manifest));
        schemas.push(manifest.schema_version);
    }
    assert!(schemas.contains(&1) && schemas.contains(&2), "{schemas:?}");
}

#[test]
fn bad_regressions_are_refused_as_named() {
    let bad = corpus("regressions", "bad_");
    assert!(bad.len() >= 4);
    for path in bad {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap()
            .to_owned();
        let got = decode_manifest(&fs::read(&path).unwrap());
        let ok = match name.as_str() {
            "bad_array_form" => got == Err(ManifestError::NotAnObject { at: "$".into() }),
            "bad_files_element_array" => {
                got == Err(ManifestError::NotAnObject {
                    at: "$.files[0]".into(),
                })
            }
            "bad_traversal_path" => matches!(
                &got,
                Err(ManifestError::BadPath {
                    reason: PathFault::NotNormal,
                    ..
                })
            ),
            "bad_duplicate_keys" => got == Err(ManifestError::DuplicateField("backend".into())),
            "bad_bucket_unknown_key" => got == Err(ManifestError::UnknownField("extra".into())),
            _ => got.is_err(),
        };
        assert!(ok, "{name}: {got:?}");
    }
}
