//! Checks of resume safety: the resume pre-checks (below the floor, ahead of the bucket,
//! recreated bucket, supersession-only), the mid-stream floor guard, interrupted watches,
//! recreated buckets and purged markers (docs/semantics.md, "Watches").

use std::time::Duration;

use super::support::{
    Bucket, Ctx, Need, Scope, WatchRun, brief, config, ensure, expect_err, history,
};
use super::{Hook, Hooks, Outcome, Profile};
use crate::kv::{KvError, VersionToken, WatchCursor};
use crate::protocol::resume::RECREATE_SLACK_MS;
use crate::stores::{Connection, DiscardPolicy, StoreConfig};

/// Asserts that the watch ends with `CursorExpired` having delivered nothing.
async fn expect_expired(cx: &Ctx<'_>, mut run: WatchRun<'_>, what: &str) {
    let (got, result) = run.until_end().await;
    let got: Vec<_> = got.iter().map(brief).collect();
    ensure!(
        cx,
        got.is_empty(),
        "{what}: delivered {got:?} before ending"
    );
    expect_err!(cx, result, KvError::CursorExpired, "{what}");
}

/// The version of `key`'s latest value as read back, with its write time.
async fn read_version(b: &Bucket<'_>, key: &str, value: &[u8]) -> VersionToken {
    let entry = b
        .expect_entry(key, Some(value))
        .await
        .expect("just matched");
    ensure!(
        b.cx,
        entry.version.written_ms().is_some(),
        "entry({key:?}) version {:?} has no write time",
        entry.version
    );
    entry.version
}

/// A bucket whose floor has passed revision 2: `k` written three times with
/// history 1. Returns the bucket and the read-back version of revision 1.
async fn overwritten<'c>(cx: &'c Ctx<'c>, config: StoreConfig) -> (Bucket<'c>, VersionToken) {
    let b = cx.bucket(config).await;
    ensure!(cx, b.put("k", b"1").await == 1, "fresh bucket");
    let v1 = read_version(&b, "k", b"1").await;
    b.put("k", b"2").await;
    b.put("k", b"3").await;
    (b, v1)
}

/// `watch_from_below_floor`: a cursor whose successor is below the bucket's
/// first revision (made with history 1 and overwrites) makes `watch_all_from`
/// fail with `CursorExpired` before delivering anything, with or without a write
/// time; a cursor just at the floor still resumes.
pub async fn watch_from_below_floor(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("watch_from_below_floor", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::ResumeChecks]) {
        return skip;
    }
    let (b, v1) = overwritten(&cx, history(1)).await;
    if cx.has(Need::Retention) {
        let r = b.retention().await;
        ensure!(
            cx,
            r.first_revision == 3,
            "first revision {} after two overwrites",
            r.first_revision
        );
    }
    for cursor in [WatchCursor::from_u64(1), WatchCursor::from_version(v1)] {
        let what = format!("watch_all_from({cursor:?}) below the floor");
        expect_expired(&cx, b.watch(Scope::All, Some(cursor), 8), &what).await;
    }
    let mut at_floor = b.watch(Scope::All, Some(WatchCursor::from_u64(2)), 8);
    let u = at_floor.next().await;
    ensure!(
        cx,
        brief(&u) == ('P', "k".to_string(), Some(3)),
        "resume at the floor delivered {:?}",
        brief(&u)
    );
    Outcome::Passed
}

/// `watch_prefix_resume_checks`: prefix and prefix-set resumed watches run the
/// same pre-checks: below the floor and ahead of the bucket → `CursorExpired`,
/// nothing delivered; a valid cursor resumes.
pub async fn watch_prefix_resume_checks(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("watch_prefix_resume_checks", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::ResumeChecks, Need::PrefixWatch]) {
        return skip;
    }
    let (b, _) = overwritten(&cx, history(1)).await;
    for scope in [Scope::prefix("k"), Scope::prefixes(&["k", "z."])] {
        for (cursor, why) in [
            (1, "below the floor"),
            (4, "ahead of the bucket"),
            (40, "far ahead"),
        ] {
            let what = format!("{scope:?} from {cursor} ({why})");
            expect_expired(
                &cx,
                b.watch(scope.clone(), Some(WatchCursor::from_u64(cursor)), 8),
                &what,
            )
            .await;
        }
        let mut ok = b.watch(scope.clone(), Some(WatchCursor::from_u64(2)), 8);
        let u = ok.next().await;
        ensure!(
            cx,
            brief(&u) == ('P', "k".to_string(), Some(3)),
            "{scope:?} from 2 delivered {:?}",
            brief(&u)
        );
    }
    Outcome::Passed
}

/// `watch_from_supersession_only`: on an age-only bucket a cursor below the
/// floor whose write is younger than half of `max_age` resumes (nothing in the
/// gap can have aged out); a cursor without a write time, or the same cursor on
/// a bucket that can also evict by size, fails with `CursorExpired`.
pub async fn watch_from_supersession_only(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("watch_from_supersession_only", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::ResumeChecks]) {
        return skip;
    }
    let age_only = StoreConfig {
        max_age: Some(Duration::from_secs(3600)),
        ..history(1)
    };
    let (b, v1) = overwritten(&cx, age_only.clone()).await;
    let mut resumed = b.watch(Scope::All, Some(WatchCursor::from_version(v1.clone())), 8);
    let u = resumed.next().await;
    ensure!(
        cx,
        brief(&u) == ('P', "k".to_string(), Some(3)),
        "supersession-only resume delivered {:?}",
        brief(&u)
    );
    let r4 = b.put("k", b"4").await;
    let u = resumed.next().await;
    ensure!(
        cx,
        u.version().as_u64() == Some(r4),
        "live update {:?}",
        brief(&u)
    );
    expect_expired(
        &cx,
        b.watch(Scope::All, Some(WatchCursor::from_u64(1)), 8),
        "a cursor without a write time",
    )
    .await;

    let sized = StoreConfig {
        discard: DiscardPolicy::Old,
        max_bytes: Some(1024 * 1024),
        ..age_only
    };
    let (s, v1) = overwritten(&cx, sized).await;
    expect_expired(
        &cx,
        s.watch(Scope::All, Some(WatchCursor::from_version(v1)), 8),
        "a young cursor on a bucket that also evicts by size",
    )
    .await;
    Outcome::Passed
}

/// `watch_from_ahead`: a cursor above the bucket's last revision makes every
/// resumed watch fail with `CursorExpired`; a cursor at the last revision waits
/// for the next write.
pub async fn watch_from_ahead(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("watch_from_ahead", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::ResumeChecks]) {
        return skip;
    }
    let b = cx.bucket(config()).await;
    for key in ["a", "b", "c"] {
        b.put(key, b"v").await;
    }
    let written = read_version(&b, "c", b"v").await;
    let ahead = VersionToken::from_u64(10).written_at(written.written_ms().unwrap_or(0));
    for cursor in [
        WatchCursor::from_u64(4),
        WatchCursor::from_u64(10),
        WatchCursor::from_version(ahead),
    ] {
        let what = format!("watch_all_from({cursor:?}) with last revision 3");
        expect_expired(&cx, b.watch(Scope::All, Some(cursor), 8), &what).await;
    }
    let mut at_head = b.watch(Scope::All, Some(WatchCursor::from_version(written)), 8);
    at_head.quiet().await;
    let r = b.put("d", b"v").await;
    let u = at_head.next().await;
    ensure!(
        cx,
        brief(&u) == ('P', "d".to_string(), Some(r)),
        "resume at the head delivered {:?}",
        brief(&u)
    );
    Outcome::Passed
}

/// `watch_from_recreated`: after the bucket is recreated, a cursor from the old
/// bucket fails with `CursorExpired` while the new bucket is behind it; when
/// more than `RECREATE_SLACK_MS` passed between the cursor's write and the
/// recreate, it also fails after the new bucket passed its revision (a cursor
/// without a write time cannot tell, and a cursor of the new bucket resumes).
pub async fn watch_from_recreated(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("watch_from_recreated", conn, profile, hooks);
    let needs = [
        Need::ResumeChecks,
        Need::Hook(Hook::RecreateBucket),
        Need::Hook(Hook::Advance),
    ];
    if let Some(skip) = cx.skip_unless(&needs) {
        return skip;
    }
    let b = cx.bucket(config()).await;
    for key in ["a", "b", "c"] {
        b.put(key, b"old").await;
    }
    let old = read_version(&b, "c", b"old").await;
    cx.ok(cx.hooks().recreate_bucket(&b.name).await, "recreate_bucket");
    for round in ["empty", "one write"] {
        if round == "one write" {
            ensure!(
                cx,
                b.put("x", b"new").await == 1,
                "the recreated bucket did not restart at 1"
            );
        }
        for cursor in [
            WatchCursor::from_version(old.clone()),
            WatchCursor::from_u64(3),
        ] {
            let what = format!("{cursor:?} of the old bucket, new bucket {round}");
            expect_expired(&cx, b.watch(Scope::All, Some(cursor), 8), &what).await;
        }
    }

    let b = cx.bucket(config()).await;
    for key in ["a", "b", "c"] {
        b.put(key, b"old").await;
    }
    let old = read_version(&b, "c", b"old").await;
    cx.advance(Duration::from_millis(RECREATE_SLACK_MS) + Duration::from_secs(1))
        .await;
    cx.ok(cx.hooks().recreate_bucket(&b.name).await, "recreate_bucket");
    for key in ["n1", "n2", "n3", "n4", "n5"] {
        b.put(key, b"new").await;
    }
    let what = "a cursor written more than the slack before the recreate";
    expect_expired(
        &cx,
        b.watch(Scope::All, Some(WatchCursor::from_version(old)), 8),
        what,
    )
    .await;
    let fresh = read_version(&b, "n3", b"new").await;
    let expected = vec![
        ('P', "n4".to_string(), Some(4)),
        ('P', "n5".to_string(), Some(5)),
    ];
    for cursor in [WatchCursor::from_version(fresh), WatchCursor::from_u64(3)] {
        let mut run = b.watch(Scope::All, Some(cursor.clone()), 8);
        let got = run.take_brief(2).await;
        ensure!(
            cx,
            got == expected,
            "{cursor:?} delivered {got:?}, expected {expected:?}"
        );
    }
    Outcome::Passed
}

/// `watch_ends_on_recreate`: live watches (state-sync, resumed, prefix) of a
/// bucket that is deleted and recreated end with `WatchError` and deliver
/// nothing of the new bucket.
pub async fn watch_ends_on_recreate(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("watch_ends_on_recreate", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::StreamingWatch, Need::Hook(Hook::RecreateBucket)]) {
        return skip;
    }
    let b = cx.bucket(config()).await;
    let first = b.put("a", b"1").await;
    b.put("b", b"2").await;
    let mut runs: Vec<(&str, WatchRun<'_>)> = vec![
        ("state-sync", b.watch_all()),
        ("resumed", b.watch_from(WatchCursor::from_u64(first))),
    ];
    if cx.has(Need::PrefixWatch) {
        runs.push(("prefix", b.watch(Scope::prefix("a"), None, 8)));
    }
    // One delivery each proves the watch is streaming before the recreate.
    runs[0].1.take(2).await;
    for (_, run) in runs.iter_mut().skip(1) {
        run.next().await;
    }
    cx.ok(cx.hooks().recreate_bucket(&b.name).await, "recreate_bucket");
    b.put("a", b"new").await;
    for (label, mut run) in runs {
        let (got, result) = run.until_end().await;
        let got: Vec<_> = got.iter().map(brief).collect();
        ensure!(
            cx,
            got.is_empty(),
            "{label} watch delivered {got:?} after the recreate"
        );
        expect_err!(
            cx,
            result,
            KvError::WatchError(_),
            "{label} watch of a recreated bucket"
        );
    }
    Outcome::Passed
}

/// `recreate_restarts_revisions`: a recreated bucket keeps its configuration, restarts at
/// revision 1 with an empty log and a later `created_unix_ms`, and existing store handles
/// address the new bucket (docs/semantics.md, "Connections and store handles" and
/// "Revisions").
pub async fn recreate_restarts_revisions(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("recreate_restarts_revisions", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Status, Need::Hook(Hook::RecreateBucket)]) {
        return skip;
    }
    let cfg = StoreConfig {
        max_bytes: Some(1024 * 1024),
        ..history(2)
    };
    let b = cx.bucket(cfg).await;
    for key in ["a", "b", "c"] {
        b.put(key, b"old").await;
    }
    let before = b.status().await;
    cx.ok(cx.hooks().recreate_bucket(&b.name).await, "recreate_bucket");
    let after = b.status().await;
    ensure!(
        cx,
        (
            after.first_revision,
            after.last_revision,
            after.values,
            after.bytes
        ) == (0, 0, 0, 0),
        "the recreated bucket is not empty: {after:?}"
    );
    ensure!(
        cx,
        after.created_unix_ms > before.created_unix_ms,
        "created_unix_ms did not move: {} -> {}",
        before.created_unix_ms,
        after.created_unix_ms
    );
    ensure!(
        cx,
        after.config == before.config,
        "config {:?} -> {:?}",
        before.config,
        after.config
    );
    ensure!(
        cx,
        after.options == before.options,
        "options {:?} -> {:?}",
        before.options,
        after.options
    );
    b.expect_get("a", None).await;
    ensure!(
        cx,
        b.put("x", b"new").await == 1,
        "an old handle's write did not get revision 1"
    );
    let again = Bucket::of(&cx, cx.ok(conn.store(&b.name).await, "store(name)"));
    again.expect_get("x", Some(b"new")).await;
    let later = again.status().await;
    ensure!(
        cx,
        later.created_unix_ms == after.created_unix_ms,
        "created_unix_ms is not stable"
    );
    Outcome::Passed
}

/// `watch_floor_guard`: an All-scope resumed watch whose channel (capacity 1)
/// is not read while `burst_bytes` are written to an unlimited bucket, then
/// evicted past its position, delivers a contiguous run from its cursor and then
/// ends with `CursorExpired`, never delivering past the gap.
pub async fn watch_floor_guard(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("watch_floor_guard", conn, profile, hooks);
    let needs = [Need::ResumeChecks, Need::Hook(Hook::EvictBelow)];
    if let Some(skip) = cx.skip_unless(&needs) {
        return skip;
    }
    let unlimited = StoreConfig {
        max_bytes: Some(-1),
        ..history(1)
    };
    let b = cx.bucket(unlimited).await;
    let start = b.put("start", b"s").await;
    let mut run = b.watch(Scope::All, Some(WatchCursor::from_u64(start)), 1);
    let first = b.put("first", b"f").await;
    let u = run.next().await;
    ensure!(
        cx,
        u.version().as_u64() == Some(first),
        "the watch began with {:?}",
        brief(&u)
    );

    const CHUNK: usize = 32 * 1024;
    let count = profile.burst_bytes.div_ceil(CHUNK).max(2);
    let value = vec![0x5a; CHUNK];
    let mut last = first;
    for i in 0..count {
        last = b.put(&format!("burst.{i:06}"), &value).await;
    }
    cx.ok(cx.hooks().evict_below(&b.name, last).await, "evict_below");
    let tail = b.put("tail", b"t").await;
    let (got, result) = run.until_end_or_idle().await;
    let result = result.unwrap_or(Ok(()));
    let mut previous = first;
    for u in &got {
        let r = u.version().as_u64();
        ensure!(
            cx,
            r == Some(previous + 1),
            "after revision {previous} the watch delivered {:?} (a gap or a repeat)",
            brief(u)
        );
        previous += 1;
    }
    if result != Err(KvError::CursorExpired) {
        let hint = if previous + 1 >= last {
            format!(
                "; it delivered everything up to the gap, so burst_bytes ({}) did not outrun its buffers",
                profile.burst_bytes
            )
        } else {
            String::new()
        };
        cx.fail(format_args!(
            "the watch ended with {result:?} (Ok = still running) after delivering up to \
             {previous} (evicted below {last}, tail at {tail}); expected CursorExpired{hint}"
        ));
    }
    ensure!(
        cx,
        previous < last,
        "the watch delivered {previous}, past the gap below {last}"
    );
    Outcome::Passed
}

/// `watch_interrupt_resume`: an interrupted watch either ends with an error
/// (other than `CursorExpired`; the check then resumes from the last delivered
/// cursor) or recovers by itself; either way every write after the start
/// arrives exactly once, in order.
pub async fn watch_interrupt_resume(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("watch_interrupt_resume", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::StreamingWatch, Need::Hook(Hook::InterruptWatches)])
    {
        return skip;
    }
    let b = cx.bucket(config()).await;
    let start = b.put("start", b"s").await;
    let mut cursor = WatchCursor::from_u64(start);
    let mut run = b.watch(Scope::All, Some(cursor.clone()), 64);
    let mut expected: Vec<u64> = Vec::new();
    for i in 1..=3 {
        expected.push(b.put(&format!("w{i}"), b"v").await);
    }
    let mut seen: Vec<u64> = Vec::new();
    for u in run.take(3).await {
        seen.extend(u.version().as_u64());
        cursor = WatchCursor::from_version(u.version().clone());
    }
    cx.ok(
        cx.hooks().interrupt_watches(&b.name).await,
        "interrupt_watches",
    );
    for i in 4..=6 {
        expected.push(b.put(&format!("w{i}"), b"v").await);
    }
    let mut resumes = 0;
    while seen.len() < expected.len() {
        match run.next_or_end().await {
            Ok(u) => {
                seen.extend(u.version().as_u64());
                cursor = WatchCursor::from_version(u.version().clone());
            }
            Err(end) => {
                ensure!(
                    cx,
                    end != Err(KvError::CursorExpired),
                    "the interrupted watch reported CursorExpired"
                );
                resumes += 1;
                ensure!(
                    cx,
                    resumes <= 3,
                    "the watch kept ending after resumes: {end:?}"
                );
                run = b.watch(Scope::All, Some(cursor.clone()), 64);
            }
        }
    }
    let r7 = b.put("w7", b"v").await;
    expected.push(r7);
    match run.next_or_end().await {
        Ok(u) => seen.extend(u.version().as_u64()),
        Err(end) => cx.fail(format_args!(
            "the watch ended with {end:?} after recovering"
        )),
    }
    ensure!(
        cx,
        seen == expected,
        "delivered {seen:?}, expected {expected:?} exactly once each"
    );
    Outcome::Passed
}

/// `marker_purge_visibility`: after delete and purge markers are purged from
/// the log, `entry` is `None`, the key counts as never written (`update` with 0
/// and `create` work) and a state-sync watch no longer shows the markers.
pub async fn marker_purge_visibility(
    conn: &dyn Connection,
    profile: &Profile,
    hooks: Option<&dyn Hooks>,
) -> Outcome {
    let cx = Ctx::new("marker_purge_visibility", conn, profile, hooks);
    if let Some(skip) = cx.skip_unless(&[Need::Hook(Hook::PurgeMarkers)]) {
        return skip;
    }
    let b = cx.bucket(history(3)).await;
    b.put("a", b"1").await;
    b.delete("a").await;
    b.put("b", b"1").await;
    if cx.has(Need::Purge) {
        b.purge("b").await;
    } else {
        b.delete("b").await;
    }
    let rc = b.put("c", b"live").await;
    if cx.has(Need::StreamingWatch) {
        let mut sync = b.watch_all();
        let got: Vec<(char, String)> = sync
            .take(3)
            .await
            .iter()
            .map(|u| (brief(u).0, u.key().to_string()))
            .collect();
        let b_kind = if cx.has(Need::Purge) { 'X' } else { 'D' };
        let expected = vec![
            ('D', "a".to_string()),
            (b_kind, "b".to_string()),
            ('P', "c".to_string()),
        ];
        ensure!(
            cx,
            got == expected,
            "before the marker purge: {got:?}, expected {expected:?}"
        );
    }
    if cx.has(Need::Cas) {
        expect_err!(
            cx,
            b.w.update("a", b"x", &VersionToken::from_u64(0)).await,
            KvError::RevisionMismatch,
            "update with 0 while a marker is retained"
        );
    }
    cx.ok(cx.hooks().purge_markers(&b.name).await, "purge_markers");
    b.expect_entry("a", None).await;
    b.expect_entry("b", None).await;
    b.expect_get("c", Some(b"live")).await;
    if cx.has(Need::Status) {
        let s = b.status().await;
        ensure!(
            cx,
            s.values == 1 && s.first_revision == rc,
            "after the marker purge: {s:?}"
        );
    }
    let mut sync = cx.has(Need::StreamingWatch).then(|| b.watch_all());
    if let Some(sync) = sync.as_mut() {
        let u = sync.next().await;
        ensure!(
            cx,
            brief(&u) == ('P', "c".to_string(), Some(rc)),
            "state-sync after the marker purge began with {:?}",
            brief(&u)
        );
    }
    if cx.has(Need::Cas) {
        cx.ok(
            b.w.update("a", b"x", &VersionToken::from_u64(0)).await,
            "update with 0 after the marker purge",
        );
        cx.ok(b.w.create("b", b"y").await, "create after the marker purge");
        if let Some(sync) = sync.as_mut() {
            let got: Vec<String> = sync
                .take(2)
                .await
                .iter()
                .map(|u| u.key().to_string())
                .collect();
            ensure!(
                cx,
                got == ["a", "b"],
                "live after the marker purge: {got:?}"
            );
        }
    }
    if let Some(sync) = sync.as_mut() {
        sync.quiet().await;
    }
    Outcome::Passed
}
