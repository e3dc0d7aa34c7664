//! The layers of `src/`, enforced (docs/architecture.md, "Layers").
//!
//! # The rule
//!
//! Every top-level module of the library sits in one layer of [`LAYERS`], lowest
//! first. A module may name (`crate::X`, in code, tests included) its own files
//! and the modules of **lower** layers only; two modules of one layer may use each
//! other only where [`PEERS`] lists the pair. `lib.rs` is the root and may re-export
//! anything. On top of that, `src/protocol/` is pure: it may use only `crate::kv`
//! and `crate::protocol` (and std, serde, thiserror), and none of the names in
//! [`PROTOCOL_FORBIDDEN`] (a clock, a lock, shared ownership, a runtime, I/O)
//! appears in its code.
//!
//! Paths through the crate root (`crate::KvError`) are refused in modules: they
//! hide which module an item comes from; name the owning module instead.
//!
//! The checker reads the source text: comments and string literals are removed
//! first, then every `crate::` path (grouped `use crate::{a, b::c}` included) is
//! resolved to its first segment. A module that is not in [`LAYERS`] fails the
//! test too, so a new module has to be placed before it can land.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Layers, lowest first.
const LAYERS: &[&[&str]] = &[
    // 0. The vocabulary: entries, updates, cursors, errors, bucket config values.
    &["kv"],
    // 1. The pure kernels and sans-IO machines.
    &["protocol"],
    // 2. Primitives over std and tokio: the lock shim and the file-system seam.
    &["sync", "fsio"],
    // 3. Connection state and the bucket/connection traits with config validation.
    &["connstate", "stores"],
    // 4. Executors: the two backends and the on-disk stores.
    &["memory", "nats", "snapshot", "artifact"],
    // 5. The fold loop, the export lease, expiry repair.
    &["fold", "lease", "repair"],
    // 6. Test kits shipped with the library (conformance suite, fuzz bodies).
    &["conformance", "fuzz_bodies"],
];

/// Same-layer pairs that may use each other (both directions).
const PEERS: &[(&str, &str)] = &[
    // A store exports and imports through the artifact staging; artifacts report
    // the store's error type.
    ("snapshot", "artifact"),
    // The fold loop arms a repair mode; the repair sources hand back a fold.
    ("fold", "repair"),
];

/// Modules `src/protocol` may use.
const PROTOCOL_MAY_USE: &[&str] = &["kv", "protocol"];

/// Words that never appear in `src/protocol` code.
const PROTOCOL_FORBIDDEN: &[&str] = &[
    "tokio",
    "Instant",
    "SystemTime",
    "Mutex",
    "RwLock",
    "Arc",
    "async",
    "await",
    "thread",
    "std::fs",
    "std::net",
    "std::io",
    "std::env",
    "rand",
    "loom",
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`None` for `lib.rs`).
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src_dir()).expect("under src");
    let first = rel
        .components()
        .next()?
        .as_os_str()
        .to_string_lossy()
        .to_string();
    if first == "lib.rs" {
        return None;
    }
    Some(first.trim_end_matches(".rs").to_string())
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The code of a Rust file with comments, string and char literals blanked
/// (newlines kept, so line numbers still match).
fn strip(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let blank = |out: &mut String, text: &str| {
        for ch in text.chars() {
            out.push(if ch == '\n' { '\n' } else { ' ' });
        }
    };
    while i < bytes.len() {
        let rest = &source[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest.starts_with("/*") {
            let mut depth = 0usize;
            let mut j = 0;
            let rb = rest.as_bytes();
            while j < rb.len() {
                if rb[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if rb[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, &rest[..j]);
            i += j;
        } else if let Some(len) = raw_string_len(rest) {
            blank(&mut out, &rest[..len]);
            i += len;
        } else if rest.starts_with('"') || rest.starts_with("b\"") {
            let start = usize::from(rest.starts_with('b'));
            let rb = rest.as_bytes();
            let mut j = start + 1;
            while j < rb.len() && rb[j] != b'"' {
                j += if rb[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if let Some(len) = char_literal_len(rest) {
            blank(&mut out, &rest[..len]);
            i += len;
        } else {
            let ch = rest.chars().next().expect("non-empty");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Length of a raw string literal (`r"…"`, `r#"…"#`, `br#"…"#`) at the start.
fn raw_string_len(rest: &str) -> Option<usize> {
    let after_b = rest.strip_prefix('b').unwrap_or(rest);
    let prefix = rest.len() - after_b.len();
    let after_r = after_b.strip_prefix('r')?;
    let hashes = after_r.len() - after_r.trim_start_matches('#').len();
    let body = after_r[hashes..].strip_prefix('"')?;
    let closing = format!("\"{}", "#".repeat(hashes));
    let end = body.find(&closing)?;
    Some(prefix + 1 + hashes + 1 + end + closing.len())
}

/// Length of a char literal (`'a'`, `'\n'`, `'\u{1F980}'`) at the start; `None`
/// for a lifetime.
fn char_literal_len(rest: &str) -> Option<usize> {
    let body = rest.strip_prefix('\'')?;
    if let Some(escaped) = body.strip_prefix('\\') {
        let end = escaped.find('\'')?;
        return Some(2 + end + 1);
    }
    let ch = body.chars().next()?;
    body[ch.len_utf8()..]
        .starts_with('\'')
        .then(|| 1 + ch.len_utf8() + 1)
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Every module named through `crate::` in stripped code, with its line.
fn crate_uses(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let start = from + at;
        from = start + "crate::".len();
        if start > 0 && (is_ident_byte(bytes[start - 1]) || bytes[start - 1] == b'$') {
            continue;
        }
        let line = code[..start].matches('\n').count() + 1;
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`: the first segment of each top-level item.
            let mut depth = 0usize;
            let mut item_start = true;
            for (k, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => {
                        let name: String = group[k..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        found.push((line, name));
                        item_start = false;
                    }
                    c if c.is_whitespace() => {}
                    _ => item_start = false,
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((line, name));
            }
        }
    }
    found
}

/// Whole-word (or whole-path) occurrences of `word` in stripped code.
fn word_lines(code: &str, word: &str) -> Vec<usize> {
    let bytes = code.as_bytes();
    let mut lines = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(word) {
        let start = from + at;
        let end = start + word.len();
        from = end;
        let before_ok = start == 0 || !is_ident_byte(bytes[start - 1]);
        let after_ok = end == bytes.len() || !is_ident_byte(bytes[end]);
        if before_ok && after_ok {
            lines.push(code[..start].matches('\n').count() + 1);
        }
    }
    lines
}

fn may_use(user: &str, used: &str) -> bool {
    if user == used {
        return true;
    }
    let (Some(lu), Some(ld)) = (layer_of(user), layer_of(used)) else {
        return false;
    };
    if user == "protocol" {
        return PROTOCOL_MAY_USE.contains(&used);
    }
    ld < lu
        || (ld == lu
            && PEERS
                .iter()
                .any(|&(a, b)| (a, b) == (user, used) || (b, a) == (user, used)))
}

/// Every layering fault of the source tree under `src`, as readable lines.
fn faults() -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    assert!(
        files.len() > 50,
        "expected the library sources, found {files:?}"
    );
    let mut faults = Vec::new();
    let mut seen_modules = BTreeSet::new();
    for path in &files {
        let Some(module) = module_of(path) else {
            continue;
        };
        seen_modules.insert(module.clone());
        let rel = path.strip_prefix(src_dir()).expect("under src").display();
        if layer_of(&module).is_none() {
            faults.push(format!("src/{rel}: module `{module}` is in no layer"));
            continue;
        }
        let source = fs::read_to_string(path).expect("read source");
        let code = strip(&source);
        for (line, used) in crate_uses(&code) {
            if !may_use(&module, &used) {
                faults.push(format!(
                    "src/{rel}:{line}: `{module}` (layer {}) uses `crate::{used}` (layer {})",
                    layer_of(&module).expect("placed"),
                    layer_of(&used).map_or("none".to_string(), |l| l.to_string()),
                ));
            }
        }
        if module == "protocol" {
            for word in PROTOCOL_FORBIDDEN {
                for line in word_lines(&code, word) {
                    faults.push(format!("src/{rel}:{line}: `{word}` in src/protocol"));
                }
            }
        }
    }
    for layer in LAYERS {
        for module in *layer {
            if !seen_modules.contains(*module) {
                faults.push(format!("layer table names `{module}`, which has no source"));
            }
        }
    }
    faults
}

#[test]
fn every_import_points_down_and_protocol_is_pure() {
    let faults = faults();
    assert!(
        faults.is_empty(),
        "{} layering fault(s):\n{}",
        faults.len(),
        faults.join("\n")
    );
}

#[test]
fn the_checker_sees_what_it_must() {
    let code = strip(
        "use crate::{kv::X, fold::{a, b}};\n// crate::memory\nlet s = \"crate::nats\";\n\
         let c = '\"'; crate::lease::f(); my_crate::artifact; r#\"crate::repair\"#; \
         let t: Arc<Mutex<u8>>; let i = Instant::now(); let l: &'static str;",
    );
    let used: Vec<String> = crate_uses(&code).into_iter().map(|(_, m)| m).collect();
    assert_eq!(used, ["kv", "fold", "lease"]);
    assert_eq!(word_lines(&code, "Arc"), [4]);
    assert_eq!(word_lines(&code, "Mutex"), [4]);
    assert_eq!(word_lines(&code, "Instant"), [4]);
    assert!(word_lines(&code, "memory").is_empty());
    assert!(!may_use("protocol", "stores"));
    assert!(!may_use("kv", "stores"));
    assert!(!may_use("memory", "nats"));
    assert!(!may_use("memory", "conformance"));
    assert!(may_use("snapshot", "artifact") && may_use("artifact", "snapshot"));
    assert!(may_use("fold", "snapshot") && !may_use("snapshot", "fold"));
    assert!(!may_use("unknown", "kv"));
}
