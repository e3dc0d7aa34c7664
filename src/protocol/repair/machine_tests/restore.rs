//! Restore rows T1–T10: the floor, the two checks around the download, the reply.

use super::*;

#[test]
fn restore_reads_the_floor_before_peeking_at_the_artifact() {
    let mut m = machine(RepairMode::Restore, Some(5), false);
    start(&mut m, 0);
    commands(&mut m);
    watch_ended(&mut m, 1, Err(KvError::CursorExpired));
    assert_eq!(commands(&mut m), [C::ReadRetention]);
    assert_eq!(m.phase(), RepairPhase::RestoreFloor);
    assert_eq!(
        notices(&mut m),
        [N::CursorExpired { cursor: cursor(5) }, N::RestorePlanned]
    );
    retention(&mut m, 2, evicted(4));
    assert_eq!(commands(&mut m), [C::PeekLatest]);
    assert!(!m.memo(), "a restore's floor read does not feed the memo");
    assert_eq!(notices(&mut m), []);
}

#[test]
fn failed_floor_read_fails_the_run() {
    let mut m = machine(RepairMode::Restore, Some(5), false);
    start(&mut m, 0);
    commands(&mut m);
    watch_ended(&mut m, 1, Err(KvError::CursorExpired));
    commands(&mut m);
    retention_failed(&mut m, 2);
    assert_eq!(commands(&mut m), [C::Finish(Err(KvError::Timeout))]);
}

#[test]
fn latest_artifact_is_checked_before_the_download() {
    let mut m = restore_at_latest(5, Some(4));
    feed(
        &mut m,
        E::Latest {
            now: Millis(7),
            result: Ok(whole(9)),
        },
    );
    assert_eq!(commands(&mut m), [C::FetchArtifact]);
    assert_eq!(m.phase(), RepairPhase::RestoreFetch);
}

#[test]
fn latest_artifact_refusals_name_the_reason() {
    let cases: [(ArtifactView, Option<u64>, &str); 4] = [
        (
            view(9, None),
            Some(4),
            "the artifact records no scope (exported outside watch_applied), so its coverage is unknown",
        ),
        (
            view(9, Some(&["a."])),
            Some(4),
            "the artifact's scope [\"a.\"] does not cover this watch's scope [\"\"]",
        ),
        (
            whole(5),
            Some(4),
            "the artifact (revision 5) is not ahead of the local fold (revision 5)",
        ),
        (
            whole(9),
            Some(11),
            "resuming after the artifact (revision 9) would skip evicted messages: the bucket starts at 11",
        ),
    ];
    for (latest, first, reason) in cases {
        let mut m = restore_at_latest(5, first);
        feed(
            &mut m,
            E::Latest {
                now: Millis(7),
                result: Ok(latest),
            },
        );
        assert_eq!(commands(&mut m), [restore_error(reason)]);
        assert_eq!(
            notices(&mut m),
            [N::RestoreRefused {
                reason: reason.into()
            }]
        );
        assert_eq!(m.phase(), RepairPhase::Finished);
    }
}

#[test]
fn unknown_floor_checks_only_that_the_artifact_is_ahead() {
    let mut m = restore_at_latest(5, None);
    feed(
        &mut m,
        E::Latest {
            now: Millis(7),
            result: Ok(whole(6)),
        },
    );
    assert_eq!(commands(&mut m), [C::FetchArtifact]);
}

#[test]
fn failed_latest_read_refuses_the_restore() {
    let mut m = restore_at_latest(5, Some(4));
    feed(
        &mut m,
        E::Latest {
            now: Millis(7),
            result: Err("bucket gone".into()),
        },
    );
    assert_eq!(
        commands(&mut m),
        [restore_error(
            "reading the latest artifact failed: bucket gone"
        )]
    );
}

#[test]
fn download_is_followed_by_a_fresh_floor_read() {
    let mut m = restore_at_latest(5, Some(4));
    feed(
        &mut m,
        E::Latest {
            now: Millis(7),
            result: Ok(whole(9)),
        },
    );
    assert_eq!(commands(&mut m), [C::FetchArtifact]);
    feed(
        &mut m,
        E::Fetched {
            now: Millis(8),
            result: Ok(whole(11)),
        },
    );
    assert_eq!(commands(&mut m), [C::ReadRetention]);
    assert_eq!(m.phase(), RepairPhase::RestoreRecheck);
    assert_eq!(notices(&mut m), []);
    rejected(&mut m, E::RelistAcked { now: Millis(9) });
}

#[test]
fn failed_fetch_refuses_the_restore() {
    let mut m = restore_at_latest(5, Some(4));
    feed(
        &mut m,
        E::Latest {
            now: Millis(7),
            result: Ok(whole(9)),
        },
    );
    commands(&mut m);
    feed(
        &mut m,
        E::Fetched {
            now: Millis(8),
            result: Err("digest mismatch".into()),
        },
    );
    assert_eq!(
        commands(&mut m),
        [restore_error(
            "fetching the latest artifact failed: digest mismatch"
        )],
        "nothing was kept, nothing to drop"
    );
}

#[test]
fn fetched_artifact_is_rechecked_against_a_floor_read_after_the_download() {
    let mut m = restore_fetched(whole(12));
    retention(&mut m, 9, evicted(13));
    assert_eq!(commands(&mut m), [C::SendRestore]);
    assert_eq!(m.phase(), RepairPhase::AwaitingRestoreReply);
    assert_eq!(
        notices(&mut m),
        [N::RestoreStarting {
            cursor: cursor(12),
            created_at_unix: 1_700_000_000,
            first: Some(13)
        }]
    );
    assert!(!m.memo(), "the re-check's read does not feed the memo");
}

#[test]
fn fetched_artifact_failing_the_recheck_is_dropped_and_refused() {
    let mut m = restore_fetched(whole(12));
    retention(&mut m, 9, evicted(14));
    let reason = "resuming after the artifact (revision 12) would skip evicted messages: the bucket starts at 14";
    assert_eq!(commands(&mut m), [C::DropFetched, restore_error(reason)]);

    let mut m = restore_fetched(view(12, Some(&["a."])));
    retention(&mut m, 9, None);
    assert_eq!(commands(&mut m)[0], C::DropFetched, "scope re-checked too");
}

#[test]
fn failed_recheck_read_drops_the_artifact_and_fails() {
    let mut m = restore_fetched(whole(12));
    retention_failed(&mut m, 9);
    assert_eq!(
        commands(&mut m),
        [C::DropFetched, C::Finish(Err(KvError::Timeout))]
    );
}

#[test]
fn restore_resumes_from_the_restored_cursor_with_its_memo() {
    let mut m = machine(RepairMode::Auto, Some(5), false);
    start(&mut m, 0);
    retention(&mut m, 0, keeps(1));
    watch_ended(&mut m, 20, Err(KvError::CursorExpired));
    retention(&mut m, 21, None);
    retention(&mut m, 22, None);
    feed(
        &mut m,
        E::Latest {
            now: Millis(23),
            result: Ok(whole(9)),
        },
    );
    feed(
        &mut m,
        E::Fetched {
            now: Millis(24),
            result: Ok(whole(9)),
        },
    );
    retention(&mut m, 25, None);
    commands(&mut m);
    notices(&mut m);
    let restored = cursor(9).remembering(true);
    feed(
        &mut m,
        E::RestoreReplied {
            now: Millis(26),
            result: Ok(restored.clone()),
        },
    );
    assert!(m.memo(), "the artifact's memo is OR-ed in");
    assert_eq!(
        commands(&mut m),
        [C::StartWatch {
            from: Some(restored.clone())
        }]
    );
    assert_eq!(m.poll_timeout(), None, "memo set: no more polls");
    // The resumed watch can expire again; the next restore is judged against 9.
    watch_ended(&mut m, 30, Err(KvError::CursorExpired));
    assert_eq!(commands(&mut m), [C::ReadRetention]);
    assert_eq!(notices(&mut m), [N::CursorExpired { cursor: restored }]);
    retention(&mut m, 31, None);
    assert_eq!(
        commands(&mut m),
        [C::ReadRetention],
        "memo set: Auto restores"
    );
    retention(&mut m, 32, None);
    feed(
        &mut m,
        E::Latest {
            now: Millis(33),
            result: Ok(whole(9)),
        },
    );
    assert_eq!(
        commands(&mut m),
        [
            C::PeekLatest,
            restore_error("the artifact (revision 9) is not ahead of the local fold (revision 9)")
        ]
    );
}

#[test]
fn failed_restore_reply_fails_the_run_unchanged_with_a_cursor() {
    let mut m = restore_fetched(whole(12));
    retention(&mut m, 9, None);
    commands(&mut m);
    let e = KvError::WatchError("cursor-expired restore: evicted during listing".into());
    feed(
        &mut m,
        E::RestoreReplied {
            now: Millis(10),
            result: Err(e.clone()),
        },
    );
    assert_eq!(commands(&mut m), [C::Finish(Err(e))]);
}

#[test]
fn seeding_a_cursorless_node_restores_then_resumes() {
    let mut m = seeding_awaiting_reply();
    feed(
        &mut m,
        E::RestoreReplied {
            now: Millis(7),
            result: Ok(cursor(9).remembering(true)),
        },
    );
    assert_eq!(
        commands(&mut m),
        [C::StartWatch {
            from: Some(cursor(9).remembering(true))
        }]
    );
}

#[test]
fn failed_restore_reply_of_a_cursorless_node_carries_the_bootstrap_advice() {
    let mut m = seeding_awaiting_reply();
    feed(
        &mut m,
        E::RestoreReplied {
            now: Millis(7),
            result: Err(KvError::WatchError("cursor-expired restore: x".into())),
        },
    );
    assert_eq!(
        commands(&mut m),
        [C::Finish(Err(KvError::WatchError(format!(
            "cursor-expired restore: x{BOOTSTRAP_ADVICE}"
        ))))]
    );
    let mut m = seeding_awaiting_reply();
    feed(
        &mut m,
        E::RestoreReplied {
            now: Millis(7),
            result: Err(KvError::Timeout),
        },
    );
    assert_eq!(
        commands(&mut m),
        [C::Finish(Err(KvError::Timeout))],
        "a variant without a message keeps its meaning"
    );
}

#[test]
fn refusal_of_a_cursorless_node_carries_the_bootstrap_advice() {
    let mut m = machine(RepairMode::Auto, None, true);
    start(&mut m, 0);
    retention(&mut m, 1, keeps(1));
    retention(&mut m, 2, None);
    retention(&mut m, 3, None);
    feed(
        &mut m,
        E::Latest {
            now: Millis(4),
            result: Err("no artifact published".into()),
        },
    );
    let text = format!(
        "cursor-expired restore: reading the latest artifact failed: no artifact published{BOOTSTRAP_ADVICE}"
    );
    assert_eq!(
        commands(&mut m),
        [
            C::ReadRetention,
            C::ReadRetention,
            C::ReadRetention,
            C::PeekLatest,
            C::Finish(Err(KvError::WatchError(text)))
        ]
    );
    assert!(BOOTSTRAP_ADVICE.contains("ExpiryRepair::None"));
}
