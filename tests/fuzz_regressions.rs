//! Replays every committed fuzz input (docs/verification.md, "Fuzz targets"): each file
//! under `fuzz/seeds/<target>/` and `fuzz/regressions/<target>/` goes through the same body
//! the fuzz target runs (`kvfold::fuzz_bodies::<target>`). A panic in a body is a finding;
//! this test names the file that caused it.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// One `#[test]` per fuzz target; adding a target is one more name here.
macro_rules! replay_targets {
    ($($target:ident),+ $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target), kvfold::fuzz_bodies::$target);
            }
        )+
    };
}

replay_targets! {
    cursor_decode,
    ack_parse,
    log_replay,
    manifest_parse,
    fold_machine,
    lease_machine,
}

/// Files in `dir` that are fuzz inputs (not the README or hidden files), sorted.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.is_file())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.') && name != "README.md"
        })
        .collect();
    files.sort();
    files
}

/// Runs every seed and regression of `target` through `body`; fails naming each input that panicked.
fn replay(target: &str, body: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let seeds = inputs(&root.join("seeds").join(target));
    assert!(
        !seeds.is_empty(),
        "no seeds under fuzz/seeds/{target}/: every target keeps a few"
    );
    let regressions = inputs(&root.join("regressions").join(target));
    let mut failed = Vec::new();
    for path in seeds.iter().chain(&regressions) {
        let data = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if panic::catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs panicked: {failed:#?}",
        failed.len(),
        seeds.len() + regressions.len()
    );
}
