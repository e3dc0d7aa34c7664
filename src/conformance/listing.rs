//! Checks of keys, prefixes and listings: the key and prefix rules, plain string-prefix
//! matching, listing order and large listings (docs/semantics.md, "Reads and visibility"
//! and "Keys, prefixes, bucket names").

use super::support::{Ctx, Need, Scope, config, ensure, expect_err};
use super::{Hooks, Outcome, Profile};
use crate::kv::{KvError, VersionToken, WatchCursor};
use crate::protocol::refusal::require_prefix;
use crate::stores::Connection;

/// Keys every backend must refuse (docs/semantics.md, "Keys, prefixes, bucket names").
const INVALID_KEYS: &[&str] = &[
    "", ".", ".a", "a.", "a..b", "a b", "a*", "a>", "a\u{e4}", "a\n", "$KV", "a\\b", "a,b", "a:b",
    "a\0",
];

/// Prefixes every backend must refuse.
const INVALID_PREFIXES: &[&str] = &[".a", ".", "a..", "a b", "*", ">", "a*", "\u{e4}", "a..b."];

/// `key_validation`: invalid keys fail with `OperationFailed` on every read and
/// write, invalid prefixes with `OperationFailed` on listings and `WatchError`
/// on watches, all before anything is written; the valid edge cases (every
/// allowed character, a trailing `.` on prefixes) are accepted.
pub async fn key_validation(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("key_validation", conn, profile, hooks);
    let b = cx.bucket(config()).await;
    let r = b.put("seed", b"s").await;
    let token = VersionToken::from_u64(r);
    for &key in INVALID_KEYS {
        let what = |op: &str| format!("{op}({key:?})");
        expect_err!(
            cx,
            b.r.get(key).await,
            KvError::OperationFailed(_),
            "{}",
            what("get")
        );
        expect_err!(
            cx,
            b.r.entry(key).await,
            KvError::OperationFailed(_),
            "{}",
            what("entry")
        );
        expect_err!(
            cx,
            b.w.put(key, b"v").await,
            KvError::OperationFailed(_),
            "{}",
            what("put")
        );
        expect_err!(
            cx,
            b.w.create(key, b"v").await,
            KvError::OperationFailed(_),
            "{}",
            what("create")
        );
        expect_err!(
            cx,
            b.w.update(key, b"v", &token).await,
            KvError::OperationFailed(_),
            "{}",
            what("update")
        );
        expect_err!(
            cx,
            b.w.delete(key).await,
            KvError::OperationFailed(_),
            "{}",
            what("delete")
        );
        expect_err!(
            cx,
            b.w.delete_with_version(key, &token).await,
            KvError::OperationFailed(_),
            "{}",
            what("delete_with_version")
        );
        if cx.has(Need::Purge) {
            expect_err!(
                cx,
                b.purger().purge(key).await,
                KvError::OperationFailed(_),
                "{}",
                what("purge")
            );
        }
    }
    for &prefix in INVALID_PREFIXES {
        expect_err!(
            cx,
            b.r.keys(prefix).await,
            KvError::OperationFailed(_),
            "keys({prefix:?})"
        );
        expect_err!(
            cx,
            b.r.scan(prefix).await,
            KvError::OperationFailed(_),
            "scan({prefix:?})"
        );
        let mut sink = |_k: String| {};
        expect_err!(
            cx,
            b.r.for_each_key(prefix, &mut sink).await,
            KvError::OperationFailed(_),
            "for_each_key({prefix:?})"
        );
    }
    if cx.has(Need::StreamingWatch) {
        for &prefix in INVALID_PREFIXES {
            let calls = [
                (Scope::prefix(prefix), None),
                (Scope::prefixes(&["seed", prefix]), None),
                (Scope::prefix(prefix), Some(WatchCursor::from_u64(r))),
                (Scope::prefixes(&[prefix]), Some(WatchCursor::from_u64(r))),
            ];
            for (scope, cursor) in calls {
                let label = format!("{scope:?} from {cursor:?}");
                let mut run = b.watch(scope, cursor, 4);
                let (got, result) = run.until_end().await;
                ensure!(
                    cx,
                    got.is_empty(),
                    "{label} delivered {} updates",
                    got.len()
                );
                // One refusal text on every backend (protocol::refusal).
                let expected = require_prefix(prefix).err();
                match result {
                    Err(KvError::WatchError(text)) if Some(&text) == expected.as_ref() => {}
                    other => cx.fail(format_args!(
                        "{label}: expected Err(WatchError({expected:?})), got {other:?}"
                    )),
                }
            }
        }
    }
    let long = "k".repeat(200);
    let valid = [
        "A-z_0=9/x.y",
        "a/b",
        "=",
        "-",
        "_",
        "a.b.c",
        "1",
        "a.-._",
        long.as_str(),
    ];
    let next = b.put("after-invalid", b"n").await;
    ensure!(
        cx,
        next == r + 1,
        "refused writes took revisions: next write {next}, expected {}",
        r + 1
    );
    for key in valid {
        b.put(key, key.as_bytes()).await;
        b.expect_get(key, Some(key.as_bytes())).await;
        b.expect_keys(key, &[key]).await;
    }
    for prefix in ["", "a.", "a", "A-z_0=9/", "a.b.", "a.-."] {
        cx.ok(b.r.keys(prefix).await, format_args!("keys({prefix:?})"));
        cx.ok(b.r.scan(prefix).await, format_args!("scan({prefix:?})"));
    }
    b.expect_keys("a.b.", &["a.b.c"]).await;
    Outcome::Passed
}

/// `prefix_semantics`: `keys`, `scan`, `for_each_key` and prefix watches use plain
/// string-prefix matching, also for prefixes that do not end at a `.`; listings are sorted
/// by key and hold each key once (docs/semantics.md, "Reads and visibility" and "Keys,
/// prefixes, bucket names").
pub async fn prefix_semantics(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("prefix_semantics", conn, profile, hooks);
    let b = cx.bucket(config()).await;
    // Written out of order, so sorted output is not an accident of write order.
    let write_order = [
        "zz",
        "app.y.z",
        "b.app",
        "apple",
        "ap",
        "application/1",
        "app.x",
        "app",
    ];
    for key in write_order {
        b.put(key, key.as_bytes()).await;
    }
    // A rewrite must not list a key twice; it moves "apple" to the end of revision order.
    b.put("apple", b"apple").await;
    let revision_order = [
        "zz",
        "app.y.z",
        "b.app",
        "ap",
        "application/1",
        "app.x",
        "app",
        "apple",
    ];
    let cases: [(&str, &[&str]); 9] = [
        (
            "app",
            &["app", "app.x", "app.y.z", "apple", "application/1"],
        ),
        ("app.", &["app.x", "app.y.z"]),
        ("appl", &["apple", "application/1"]),
        ("app.y", &["app.y.z"]),
        (
            "a",
            &["ap", "app", "app.x", "app.y.z", "apple", "application/1"],
        ),
        (
            "",
            &[
                "ap",
                "app",
                "app.x",
                "app.y.z",
                "apple",
                "application/1",
                "b.app",
                "zz",
            ],
        ),
        ("b.", &["b.app"]),
        ("zzz", &[]),
        ("apple", &["apple"]),
    ];
    for (prefix, expected) in cases {
        b.expect_keys(prefix, expected).await;
        let pairs: Vec<(&str, &[u8])> = expected.iter().map(|k| (*k, k.as_bytes())).collect();
        b.expect_scan(prefix, &pairs).await;
        let in_revision_order: Vec<&str> = revision_order
            .iter()
            .copied()
            .filter(|k| expected.contains(k))
            .collect();
        b.expect_for_each(prefix, &in_revision_order).await;
    }
    if cx.has(Need::PrefixWatch) {
        let mut app = b.watch(Scope::prefix("app"), None, 64);
        let mut appl = b.watch(Scope::prefix("appl"), None, 64);
        let got: Vec<String> = app
            .take(5)
            .await
            .iter()
            .map(|u| u.key().to_string())
            .collect();
        let expected = ["app.y.z", "application/1", "app.x", "app", "apple"];
        ensure!(
            cx,
            got == expected,
            "watch_prefix(app) state-sync {got:?}, expected {expected:?}"
        );
        let got: Vec<String> = appl
            .take(2)
            .await
            .iter()
            .map(|u| u.key().to_string())
            .collect();
        ensure!(
            cx,
            got == ["application/1", "apple"],
            "watch_prefix(appl) state-sync {got:?}"
        );
        for key in ["apx", "app.new", "appz", "ap", "b.appl", "applz"] {
            b.put(key, b"live").await;
        }
        let got: Vec<String> = app
            .take(3)
            .await
            .iter()
            .map(|u| u.key().to_string())
            .collect();
        ensure!(
            cx,
            got == ["app.new", "appz", "applz"],
            "watch_prefix(app) live {got:?}"
        );
        let got: Vec<String> = appl
            .take(1)
            .await
            .iter()
            .map(|u| u.key().to_string())
            .collect();
        ensure!(cx, got == ["applz"], "watch_prefix(appl) live {got:?}");
        super::support::quiet_all(&cx, &mut [&mut app, &mut appl]).await;
    }
    Outcome::Passed
}

/// `listing_order`: `keys` and `scan` are sorted ascending by key bytes with the latest
/// revision of each key; `for_each_key` yields the same set in the revision order of each
/// key's latest write (docs/semantics.md, "Reads and visibility").
pub async fn listing_order(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("listing_order", conn, profile, hooks);
    let b = cx.bucket(config()).await;
    let c = b.put("c", b"c1").await;
    b.put("a", b"a1").await;
    let rb = b.put("b", b"b1").await;
    let ra = b.put("a", b"a2").await;
    b.put("d", b"d1").await;
    b.delete("d").await;
    b.put("e", b"").await;
    b.put("B", b"upper").await;
    let rb_upper = ra + 4;
    b.expect_keys("", &["B", "a", "b", "c"]).await;
    let scan = b
        .expect_scan(
            "",
            &[("B", b"upper"), ("a", b"a2"), ("b", b"b1"), ("c", b"c1")],
        )
        .await;
    let revisions: Vec<Option<u64>> = scan.iter().map(|e| e.version.as_u64()).collect();
    let expected = vec![Some(rb_upper), Some(ra), Some(rb), Some(c)];
    ensure!(
        cx,
        revisions == expected,
        "scan revisions {revisions:?}, expected {expected:?}"
    );
    b.expect_for_each("", &["c", "b", "a", "B"]).await;
    Outcome::Passed
}

/// `listing_many_keys`: `keys`, `scan` and `for_each_key` return every one of
/// `many_keys` keys, each once, with the right values, skipping deleted and
/// empty keys and keys outside the prefix.
pub async fn listing_many_keys(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("listing_many_keys", conn, profile, hooks);
    let b = cx.bucket(super::support::history(1)).await;
    let n = profile.many_keys;
    let keys: Vec<String> = (0..n).map(|i| format!("k.{i:06}")).collect();
    b.put("k.zz-deleted", b"x").await;
    for key in &keys {
        b.put(key, key.as_bytes()).await;
    }
    b.delete("k.zz-deleted").await;
    b.put("k.zz-empty", b"").await;
    b.put("m.outside", b"o").await;
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    b.expect_keys("k.", &refs).await;
    b.expect_for_each("k.", &refs).await;
    let pairs: Vec<(&str, &[u8])> = refs.iter().map(|k| (*k, k.as_bytes())).collect();
    let scan = b.expect_scan("k.", &pairs).await;
    for (i, e) in scan.iter().enumerate() {
        ensure!(
            cx,
            e.version.as_u64() == Some(i as u64 + 2),
            "scan entry {} has version {:?}, expected {}",
            e.key,
            e.version,
            i + 2
        );
    }
    let all = cx.ok(b.r.keys("").await, "keys(\"\")");
    ensure!(
        cx,
        all.len() == n + 1,
        "keys(\"\") returned {} keys, expected {}",
        all.len(),
        n + 1
    );
    Outcome::Passed
}
