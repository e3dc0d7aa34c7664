//! Checks of what reads show: versions and their write times, arbitrary bytes, empty
//! buckets, empty values and tombstones, and that only the latest entry of a key is ever
//! visible (docs/semantics.md, "Reads and visibility").

use super::support::{Ctx, Need, Scope, brief, config, ensure, history, value_of};
use super::{Hooks, Outcome, Profile};
use crate::kv::{KvUpdate, VersionToken, WatchCursor};
use crate::stores::Connection;

/// `version_write_times`: versions read back (`get`, `entry`, `scan`, state-sync
/// and resumed watches) carry the write's revision and one server write time,
/// non-decreasing with the revision, which a cursor made from them keeps.
pub async fn version_write_times(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("version_write_times", conn, profile, hooks);
    let b = cx.bucket(config()).await;
    let put_a = cx.ok(b.w.put("a", b"1").await, "put a");
    b.put("b", b"2").await;
    let put_a2 = cx.ok(b.w.put("a", b"3").await, "put a again");
    let written = |what: &str, v: &VersionToken| -> u64 {
        match v.written_ms() {
            Some(t) if t > 0 => t,
            other => cx.fail(format_args!(
                "{what}: version {v:?} has write time {other:?}"
            )),
        }
    };
    let a = b.expect_get("a", Some(b"3")).await.expect("just matched");
    ensure!(
        cx,
        a.version == put_a2,
        "get(a) version {:?} != {put_a2:?}",
        a.version
    );
    ensure!(
        cx,
        a.version != put_a,
        "get(a) returned the superseded version"
    );
    let t_a = written("get(a)", &a.version);
    let e = b.expect_entry("a", Some(b"3")).await.expect("just matched");
    ensure!(
        cx,
        written("entry(a)", &e.version) == t_a,
        "entry(a) write time differs"
    );
    let scan = b.expect_scan("", &[("a", b"3"), ("b", b"2")]).await;
    ensure!(
        cx,
        scan[0].version == a.version && written("scan a", &scan[0].version) == t_a,
        "scan(a) version {:?} != get(a) {:?}",
        scan[0].version,
        a.version
    );
    ensure!(
        cx,
        scan[1].version.as_u64() == Some(2),
        "scan(b) {:?}",
        scan[1].version
    );
    let t_b = written("scan b", &scan[1].version);
    ensure!(
        cx,
        t_b <= t_a,
        "write time of revision 2 ({t_b}) > revision 3 ({t_a})"
    );
    let cursor = WatchCursor::from_version(scan[1].version.clone());
    ensure!(
        cx,
        cursor.written_ms() == Some(t_b),
        "cursor lost the write time"
    );

    if cx.has(Need::StreamingWatch) {
        let mut sync = b.watch_all();
        let got = sync.take(2).await;
        for u in &got {
            let expected = if u.key() == "a" { t_a } else { t_b };
            ensure!(
                cx,
                written("state-sync update", u.version()) == expected,
                "state-sync update {:?} has another write time",
                brief(u)
            );
        }
        let mut resumed = b.watch(Scope::All, Some(cursor), 16);
        let u = resumed.next().await;
        ensure!(
            cx,
            u.version() == &a.version && written("resumed update", u.version()) == t_a,
            "resumed watch delivered {:?}",
            brief(&u)
        );
    }
    Outcome::Passed
}

/// `binary_values`: arbitrary bytes (NUL, 0xFF, every byte value, large values)
/// round-trip through `get`, `entry`, `scan` and watches unchanged.
pub async fn binary_values(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("binary_values", conn, profile, hooks);
    let b = cx.bucket(config()).await;
    let every: Vec<u8> = (0..=255u8).collect();
    let large: Vec<u8> = (0..256 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let values: [(&str, &[u8]); 4] = [
        ("nul", &[0u8]),
        ("ff", &[0xff, 0xfe, 0x00, 0x80]),
        ("every", &every),
        ("large", &large),
    ];
    let mut sync = cx
        .has(Need::StreamingWatch)
        .then(|| b.watch(Scope::All, Some(WatchCursor::from_u64(0)), 16));
    for (key, value) in values {
        b.put(key, value).await;
    }
    for (key, value) in values {
        b.expect_get(key, Some(value)).await;
        b.expect_entry(key, Some(value)).await;
    }
    let mut sorted = values;
    sorted.sort_by_key(|(k, _)| *k);
    b.expect_scan("", &sorted).await;
    if let Some(sync) = sync.as_mut() {
        for (key, value) in values {
            let u = sync.next().await;
            ensure!(
                cx,
                u.key() == key && value_of(&u) == Some(value),
                "watch delivered {:?} instead of {key}",
                brief(&u)
            );
        }
    }
    Outcome::Passed
}

/// `empty_bucket`: a fresh bucket reads empty everywhere (0/0 status, first
/// revision 0), and a state-sync watch of it delivers nothing until the first write.
pub async fn empty_bucket(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("empty_bucket", conn, profile, hooks);
    let b = cx.bucket(config()).await;
    b.expect_get("x", None).await;
    b.expect_entry("x", None).await;
    b.expect_keys("", &[]).await;
    b.expect_scan("", &[]).await;
    b.expect_for_each("", &[]).await;
    if cx.has(Need::Status) {
        let s = b.status().await;
        ensure!(
            cx,
            (s.first_revision, s.last_revision, s.values, s.bytes) == (0, 0, 0, 0),
            "fresh bucket status {s:?}"
        );
        ensure!(cx, s.created_unix_ms > 0, "created_unix_ms is 0");
    }
    if cx.has(Need::Retention) {
        let r = b.retention().await;
        ensure!(cx, r.first_revision == 0, "fresh retention {r:?}");
    }
    if cx.has(Need::StreamingWatch) {
        let mut sync = b.watch_all();
        sync.quiet().await;
        b.put("x", b"1").await;
        let u = sync.next().await;
        ensure!(
            cx,
            brief(&u) == ('P', "x".to_string(), Some(1)),
            "first live update {:?}",
            brief(&u)
        );
    }
    Outcome::Passed
}

/// `empty_value_visibility`: `put(k, b"")` makes `get` → `None`, `entry` → `Some(b"")`, and
/// hides the key from `keys`/`scan`/`for_each_key`; a state-sync watch shows it as `Delete`
/// with its revision (docs/semantics.md, "Reads and visibility").
pub async fn empty_value_visibility(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("empty_value_visibility", conn, profile, hooks);
    let b = cx.bucket(config()).await;
    let live = b.put("live", b"v").await;
    let empty = b.put("empty", b"").await;
    b.put("emptied", b"x").await;
    let emptied = b.put("emptied", b"").await;
    b.expect_get("empty", None).await;
    b.expect_get("emptied", None).await;
    let e = b
        .expect_entry("empty", Some(b""))
        .await
        .expect("just matched");
    ensure!(
        cx,
        e.version.as_u64() == Some(empty),
        "entry(empty) {:?}",
        e.version
    );
    let e = b
        .expect_entry("emptied", Some(b""))
        .await
        .expect("just matched");
    ensure!(
        cx,
        e.version.as_u64() == Some(emptied),
        "entry(emptied) {:?}",
        e.version
    );
    b.expect_keys("", &["live"]).await;
    b.expect_keys("empt", &[]).await;
    b.expect_scan("", &[("live", b"v")]).await;
    b.expect_for_each("", &["live"]).await;
    if cx.has(Need::StreamingWatch) {
        let mut sync = b.watch_all();
        let got = sync.take_brief(3).await;
        let expected = vec![
            ('P', "live".to_string(), Some(live)),
            ('D', "empty".to_string(), Some(empty)),
            ('D', "emptied".to_string(), Some(emptied)),
        ];
        ensure!(
            cx,
            got == expected,
            "state-sync {got:?}, expected {expected:?}"
        );
    }
    Outcome::Passed
}

/// `reads_latest_only`: only a key's latest retained entry is ever visible: older history
/// stays hidden from reads, listings and state-sync watches, also after a delete
/// (docs/semantics.md, "Reads and visibility").
pub async fn reads_latest_only(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("reads_latest_only", conn, profile, hooks);
    let b = cx.bucket(history(5)).await;
    b.put("k", b"1").await;
    b.put("k", b"2").await;
    let r3 = b.put("k", b"3").await;
    b.expect_get("k", Some(b"3")).await;
    b.expect_entry("k", Some(b"3")).await;
    b.expect_keys("", &["k"]).await;
    b.expect_scan("", &[("k", b"3")]).await;
    if cx.has(Need::StreamingWatch) {
        let mut sync = b.watch_all();
        let first = sync.next().await;
        ensure!(
            cx,
            brief(&first) == ('P', "k".to_string(), Some(r3)),
            "state-sync {:?}",
            brief(&first)
        );
        let z = b.put("z", b"z").await;
        let next = sync.next().await;
        ensure!(
            cx,
            brief(&next) == ('P', "z".to_string(), Some(z)),
            "after the snapshot came {:?}",
            brief(&next)
        );
    }
    b.delete("k").await;
    b.expect_get("k", None).await;
    b.expect_entry("k", None).await;
    b.expect_keys("k", &[]).await;
    if cx.has(Need::StreamingWatch) {
        let mut sync = b.watch(Scope::prefix("k"), None, 16);
        let got = sync.next().await;
        ensure!(
            cx,
            got.key() == "k" && matches!(got, KvUpdate::Delete { .. }),
            "state-sync after delete {:?}",
            brief(&got)
        );
        b.put("k2", b"x").await;
        let next = sync.next().await;
        ensure!(
            cx,
            next.key() == "k2",
            "after the snapshot came {:?}",
            brief(&next)
        );
    }
    Outcome::Passed
}
