//! F1, Z1, the invariants, notice levels and the artifact view.

use super::*;

#[test]
fn nothing_is_accepted_after_finish() {
    let mut m = planning(RepairMode::Auto);
    retention_failed(&mut m, 21);
    assert_eq!(commands(&mut m).len(), 1);
    for event in every_event(99) {
        rejected(&mut m, event);
    }
    assert_eq!(commands(&mut m), [], "exactly one Finish");
}

#[test]
fn an_event_without_a_row_changes_nothing() {
    let phases: Vec<RepairMachine> = vec![
        machine(RepairMode::Auto, None, false),
        {
            let mut m = machine(RepairMode::Auto, None, false);
            start(&mut m, 0);
            m
        },
        watching_auto(),
        planning(RepairMode::Relist),
        restore_at_latest(5, Some(4)),
        restore_fetched(whole(12)),
        seeding_awaiting_reply(),
    ];
    let mut rejections = 0;
    for mut m in phases {
        for event in every_event(50) {
            let before = m.clone();
            match m.clone().handle(event.clone()) {
                Ok(()) => {}
                Err(_) => {
                    rejected(&mut m, event);
                    assert_eq!(m, before);
                    rejections += 1;
                }
            }
        }
    }
    assert!(rejections >= 7 * 7, "{rejections}");
}

#[test]
fn the_clock_never_moves_backward() {
    let mut m = watching_auto();
    feed(
        &mut m,
        E::PollDue {
            now: Millis(10 + POLL),
        },
    );
    commands(&mut m);
    retention(&mut m, 0, keeps(1));
    assert_eq!(
        m.poll_timeout(),
        Some(Millis(10 + POLL + POLL)),
        "a late event's older now is clamped"
    );
}

#[test]
fn handoffs_follow_the_end_of_the_previous_watch() {
    // Invariant 1: SendRelist / SendRestore only while no watch is active.
    let mut m = planning(RepairMode::Relist);
    retention(&mut m, 21, keeps(1));
    assert_eq!(
        commands(&mut m),
        [C::SendRelist {
            scratch: Scratch::SystemTemp
        }]
    );
    let mut m = machine(RepairMode::Restore, Some(5), false);
    start(&mut m, 0);
    assert_eq!(
        commands(&mut m),
        [C::StartWatch {
            from: Some(cursor(5))
        }]
    );
    rejected(
        &mut m,
        E::Retention {
            now: Millis(1),
            result: Ok(None),
        },
    );
}

#[test]
fn a_restore_is_never_attempted_under_relist_nor_a_relist_under_restore() {
    // Invariant 4: Restore mode restores even where a listing would be the truth;
    // Relist mode refuses rather than restoring.
    let mut m = machine(RepairMode::Restore, Some(5), false);
    start(&mut m, 0);
    watch_ended(&mut m, 1, Err(KvError::CursorExpired));
    assert_eq!(
        commands(&mut m),
        [
            C::StartWatch {
                from: Some(cursor(5))
            },
            C::ReadRetention
        ]
    );
    assert_eq!(m.phase(), RepairPhase::RestoreFloor);
    let mut m = planning(RepairMode::Relist);
    retention(&mut m, 21, evicted(3));
    feed(
        &mut m,
        E::EvictingSent {
            now: Millis(22),
            delivered: true,
        },
    );
    let sent = commands(&mut m);
    assert!(
        !sent
            .iter()
            .any(|c| matches!(c, C::PeekLatest | C::FetchArtifact | C::SendRestore)),
        "{sent:?}"
    );
}

#[test]
fn evicting_is_sent_at_most_once_and_the_memo_never_clears() {
    // Invariant 5.
    let mut m = machine(RepairMode::Auto, Some(5), false);
    start(&mut m, 0);
    retention(&mut m, 0, evicted(2));
    feed(
        &mut m,
        E::EvictingSent {
            now: Millis(1),
            delivered: true,
        },
    );
    watch_ended(&mut m, 2, Err(KvError::CursorExpired));
    retention(&mut m, 3, evicted(3));
    retention(&mut m, 4, evicted(3));
    feed(
        &mut m,
        E::Latest {
            now: Millis(5),
            result: Ok(whole(9)),
        },
    );
    feed(
        &mut m,
        E::Fetched {
            now: Millis(6),
            result: Ok(whole(9)),
        },
    );
    retention(&mut m, 7, evicted(3));
    feed(
        &mut m,
        E::RestoreReplied {
            now: Millis(8),
            result: Ok(cursor(9)),
        },
    );
    assert!(
        m.memo(),
        "a restored cursor without the memo does not clear it"
    );
    let sent = commands(&mut m);
    assert_eq!(
        sent.iter().filter(|c| **c == C::SendEvicting).count(),
        1,
        "{sent:?}"
    );
    assert_eq!(
        notices(&mut m)
            .iter()
            .filter(|n| **n == N::EvictionSeen)
            .count(),
        1
    );
}

#[test]
fn notice_levels_follow_the_table() {
    use NoticeLevel::{Error, Info, Warn};
    let table = [
        (N::UnanchoredFold, Warn),
        (N::EvictedBucketSeeding, Warn),
        (N::EvictedBucketNoRepair, Warn),
        (N::EvictionSeen, Info),
        (
            N::RetentionPollFailed {
                error: String::new(),
            },
            Warn,
        ),
        (N::CursorExpired { cursor: cursor(1) }, Warn),
        (N::ReListOnly, Warn),
        (N::RelistPlanned, Warn),
        (N::RestorePlanned, Warn),
        (N::RelistRefused, Error),
        (
            N::RestoreRefused {
                reason: String::new(),
            },
            Error,
        ),
        (
            N::RestoreStarting {
                cursor: cursor(1),
                created_at_unix: 0,
                first: None,
            },
            Info,
        ),
    ];
    for (notice, level) in table {
        assert_eq!(notice.level(), level, "{notice:?}");
    }
}

#[test]
fn artifact_view_reads_cursor_scope_and_age_from_the_manifest() {
    let manifest = ExportManifest {
        schema_version: 2,
        backend: "append-log".into(),
        backend_version: "3".into(),
        cursor: cursor(42).remembering(true),
        created_at_unix: 17,
        files: vec![ArtifactFile {
            path: "data/fold.log".into(),
            size: 1,
            blake3: "0".repeat(64),
        }],
        scope: Some(vec!["a.".into()]),
    };
    assert_eq!(
        ArtifactView::of(&manifest),
        ArtifactView {
            cursor: cursor(42).remembering(true),
            scope: Some(vec!["a.".into()]),
            created_at_unix: 17,
        }
    );
}

#[test]
fn unexpected_names_the_phase_and_the_event() {
    let e = Unexpected {
        phase: RepairPhase::AwaitingAck,
        event: "WatchEnded",
    };
    assert_eq!(
        e.to_string(),
        "repair machine in phase AwaitingAck does not accept WatchEnded"
    );
}
