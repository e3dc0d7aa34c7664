//! Tables of the lease kernels and exact command sequences of the `LeaseMachine`
//! (docs/protocols/export-lease.md, "Tests", "Kernel").

use super::*;
use crate::kv::{KvEntry, KvError};

fn v(rev: u64) -> VersionToken {
    VersionToken::from_u64(rev)
}

fn clock(now_unix: u64, now_ms: u64) -> LeaseClock {
    LeaseClock {
        now_unix,
        now: Millis(now_ms),
    }
}

fn seen(rev: u64, at_ms: u64) -> LeaseSighting {
    LeaseSighting {
        revision: v(rev),
        first_seen: Millis(at_ms),
    }
}

fn record_json(acquired: u64, expires: u64) -> Vec<u8> {
    LeaseRecord {
        holder_id: "other".into(),
        acquired_at_unix: acquired,
        expires_at_unix: expires,
        completed_cursor_hex: None,
        completed_at_unix: None,
    }
    .to_json()
}

#[test]
fn wire_format_is_compact_json_in_declaration_order() {
    let r = lease_record("node-a", 1_767_225_600, 3600);
    assert_eq!(
        String::from_utf8(r.to_json()).unwrap(),
        r#"{"holder_id":"node-a","acquired_at_unix":1767225600,"expires_at_unix":1767229200}"#
    );
    let done = completed_record(&r, &WatchCursor::from_u64(42), 1_767_225_842);
    assert_eq!(
        String::from_utf8(done.to_json()).unwrap(),
        r#"{"holder_id":"node-a","acquired_at_unix":1767225600,"expires_at_unix":1767229200,"completed_cursor_hex":"000000000000002a","completed_at_unix":1767225842}"#
    );
    assert_eq!(
        lease_record("x", u64::MAX - 1, 10).expires_at_unix,
        u64::MAX
    );
}

#[test]
fn decoding_is_lenient_but_object_only() {
    let with_extra = br#"{"holder_id":"a","acquired_at_unix":1,"expires_at_unix":2,"future":true}"#;
    assert_eq!(decode_lease_record(with_extra).unwrap().holder_id, "a");
    for junk in [
        &br#"["a",1,2]"#[..],
        br#"{"holder_id":"a"}"#,
        br#"{"holder_id":1,"acquired_at_unix":1,"expires_at_unix":2}"#,
        b"",
        b"not json",
    ] {
        assert_eq!(
            decode_lease_record(junk),
            None,
            "{:?}",
            String::from_utf8_lossy(junk)
        );
    }
    assert!(lease_is_live(&record_json(1, 10), 9));
    assert!(!lease_is_live(&record_json(1, 10), 10));
    assert!(!lease_is_live(br#"["a",1,10]"#, 5));
}

#[test]
fn cursor_hex_is_the_version_bytes_only() {
    assert_eq!(
        completed_cursor_hex(&WatchCursor::from_u64(42)),
        "000000000000002a"
    );
    assert_eq!(
        completed_cursor_hex(&WatchCursor::from_u64(42).remembering(true)),
        "000000000000002a"
    );
    assert_eq!(completed_cursor_hex(&WatchCursor::none()), "");
}

#[test]
fn sight_keeps_the_first_sighting_of_an_unchanged_revision() {
    let first = sight(None, &v(3), Millis(100));
    assert_eq!(first, seen(3, 100));
    assert_eq!(sight(Some(&first), &v(3), Millis(900)), seen(3, 100));
    assert_eq!(sight(Some(&first), &v(4), Millis(900)), seen(4, 900));
}

#[test]
fn takeover_decision_table() {
    let s = seen(3, 1_000);
    // Tombstone: at once.
    assert_eq!(
        takeover_decision(b"", clock(0, 0), &s, 2_000),
        LeaseDecision::TakeOver
    );
    // Live by wall clock.
    assert_eq!(
        takeover_decision(&record_json(100, 160), clock(150, 999_999), &s, 2_000),
        LeaseDecision::Live {
            expires_at_unix: 160
        }
    );
    // Expired by wall clock: d = 60 s, takeover at 1 000 + 60 000 + 2 000.
    let expired = record_json(100, 160);
    assert_eq!(
        takeover_decision(&expired, clock(200, 62_999), &s, 2_000),
        LeaseDecision::Settling {
            takeover_at: Millis(63_000)
        }
    );
    assert_eq!(
        takeover_decision(&expired, clock(200, 63_000), &s, 2_000),
        LeaseDecision::TakeOver
    );
    // Junk and arrays: duration 0.
    for junk in [&b"junk"[..], br#"["other",100,160]"#] {
        assert_eq!(
            takeover_decision(junk, clock(200, 2_999), &s, 2_000),
            LeaseDecision::Settling {
                takeover_at: Millis(3_000)
            }
        );
        assert_eq!(
            takeover_decision(junk, clock(200, 3_000), &s, 2_000),
            LeaseDecision::TakeOver
        );
    }
    // expires < acquired: duration saturates at 0.
    assert_eq!(
        takeover_decision(&record_json(500, 100), clock(600, 3_000), &s, 2_000),
        LeaseDecision::TakeOver
    );
    // Saturation at u64::MAX never wraps into an early takeover.
    let huge = record_json(0, u64::MAX);
    assert!(matches!(
        takeover_decision(
            &huge,
            clock(u64::MAX, u64::MAX - 1),
            &seen(3, u64::MAX - 1),
            u64::MAX
        ),
        LeaseDecision::Settling {
            takeover_at: Millis(u64::MAX)
        }
    ));
}

/// The holder's wall clock runs 30 s behind the observer's: its record looks
/// expired 30 s early. The observer must not take over before its own
/// `first_seen + d + grace`; a wall-clock-only rule would.
#[test]
fn wall_clock_skew_cannot_cause_an_early_steal() {
    // Holder acquired at its wall time 1 000 for 60 s (real expiry at observer time 1 090).
    let value = record_json(1_000, 1_060);
    // The observer first sees the revision at observer wall 1 070 / monotonic 0.
    let s = seen(7, 0);
    let observer_wall = 1_070;
    // 10 s later (observer wall 1 080): expired by the observer's wall clock...
    let at = clock(observer_wall + 10, 10_000);
    assert!(!lease_is_live(&value, at.now_unix));
    let wall_clock_only = !lease_is_live(&value, at.now_unix);
    assert!(
        wall_clock_only,
        "the mutation (wall clock alone) would steal now"
    );
    // ...but the local rule waits for first_seen + 60 s + grace.
    assert_eq!(
        takeover_decision(&value, at, &s, 2_000),
        LeaseDecision::Settling {
            takeover_at: Millis(62_000)
        }
    );
    assert_eq!(
        takeover_decision(&value, clock(1_200, 62_000), &s, 2_000),
        LeaseDecision::TakeOver
    );
}

fn drain(m: &mut LeaseMachine) -> Vec<LeaseCommand> {
    std::iter::from_fn(|| m.poll_command()).collect()
}

fn entry(value: &[u8], rev: u64) -> Option<KvEntry> {
    Some(KvEntry {
        key: "lease".into(),
        value: value.to_vec(),
        version: v(rev),
    })
}

#[test]
fn create_wins_and_records_the_sighting() {
    let mut m = LeaseMachine::new("me", 60, clock(1_000, 5), None, 2_000);
    let record = lease_record("me", 1_000, 60);
    assert_eq!(
        drain(&mut m),
        vec![LeaseCommand::Create {
            value: record.to_json()
        }]
    );
    m.handle_at(
        LeaseEvent::Created { result: Ok(v(1)) },
        clock(1_003, 3_000),
    )
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![LeaseCommand::Finish(LeaseOutcome::Won {
            version: v(1),
            record
        })]
    );
    // The won revision and a later completion are dated at the round's start clock,
    // not at the answer's.
    assert_eq!(m.sighting(), Some(&seen(1, 5)));
    assert_eq!(m.acquired(), Millis(5));
    assert!(m.is_done());
    let before = m.clone();
    assert!(m.handle(LeaseEvent::Created { result: Ok(v(2)) }).is_err());
    assert_eq!(m, before);
}

#[test]
fn a_live_lease_is_lost_without_a_cas() {
    let mut m = LeaseMachine::new("me", 60, clock(1_000, 5), None, 2_000);
    drain(&mut m);
    m.handle(LeaseEvent::Created {
        result: Err(KvError::AlreadyExists),
    })
    .unwrap();
    assert_eq!(drain(&mut m), vec![LeaseCommand::ReadEntry]);
    m.handle(LeaseEvent::EntryRead {
        result: Ok(entry(&record_json(990, 1_050), 4)),
    })
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![LeaseCommand::Finish(LeaseOutcome::Lost)]
    );
    assert_eq!(m.sighting(), Some(&seen(4, 5)));
}

#[test]
fn a_tombstone_is_taken_over_by_cas_on_its_revision() {
    let mut m = LeaseMachine::new("me", 60, clock(1_000, 5), None, 2_000);
    drain(&mut m);
    m.handle(LeaseEvent::Created {
        result: Err(KvError::AlreadyExists),
    })
    .unwrap();
    drain(&mut m);
    m.handle(LeaseEvent::EntryRead {
        result: Ok(entry(b"", 9)),
    })
    .unwrap();
    let record = lease_record("me", 1_000, 60);
    assert_eq!(
        drain(&mut m),
        vec![LeaseCommand::CasUpdate {
            value: record.to_json(),
            expected: v(9)
        }]
    );
    let refused = m
        .handle(LeaseEvent::EntryRead { result: Ok(None) })
        .unwrap_err();
    assert_eq!((refused.phase, refused.event), ("Updating", "EntryRead"));
    m.handle(LeaseEvent::Updated {
        result: Err(KvError::RevisionMismatch),
    })
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![LeaseCommand::Finish(LeaseOutcome::Lost)]
    );
}

#[test]
fn an_expired_lease_settles_then_is_taken_over_in_a_later_round() {
    let value = record_json(900, 960);
    let mut first = LeaseMachine::new("me", 60, clock(1_000, 1_000), None, 2_000);
    drain(&mut first);
    first
        .handle(LeaseEvent::Created {
            result: Err(KvError::AlreadyExists),
        })
        .unwrap();
    drain(&mut first);
    first
        .handle(LeaseEvent::EntryRead {
            result: Ok(entry(&value, 4)),
        })
        .unwrap();
    assert_eq!(
        drain(&mut first),
        vec![LeaseCommand::Finish(LeaseOutcome::Lost)]
    );
    assert_eq!(
        first.decision(),
        Some(&LeaseDecision::Settling {
            takeover_at: Millis(63_000)
        })
    );
    let kept = first.sighting().cloned();
    let mut later = LeaseMachine::new("me", 60, clock(1_070, 63_000), kept, 2_000);
    drain(&mut later);
    later
        .handle(LeaseEvent::Created {
            result: Err(KvError::AlreadyExists),
        })
        .unwrap();
    drain(&mut later);
    later
        .handle(LeaseEvent::EntryRead {
            result: Ok(entry(&value, 4)),
        })
        .unwrap();
    assert!(matches!(
        drain(&mut later)[..],
        [LeaseCommand::CasUpdate { .. }]
    ));
    later
        .handle(LeaseEvent::Updated { result: Ok(v(5)) })
        .unwrap();
    assert!(matches!(
        drain(&mut later)[..],
        [LeaseCommand::Finish(LeaseOutcome::Won { .. })]
    ));
    assert_eq!(later.sighting(), Some(&seen(5, 63_000)));
}

#[test]
fn errors_and_vanished_keys_end_the_round() {
    let mut m = LeaseMachine::new("me", 60, clock(1_000, 5), None, 0);
    drain(&mut m);
    m.handle(LeaseEvent::Created {
        result: Err(KvError::Timeout),
    })
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![LeaseCommand::Finish(LeaseOutcome::Failed(KvError::Timeout))]
    );

    let mut m = LeaseMachine::new("me", 60, clock(1_000, 5), None, 0);
    drain(&mut m);
    m.handle(LeaseEvent::Created {
        result: Err(KvError::AlreadyExists),
    })
    .unwrap();
    drain(&mut m);
    m.handle(LeaseEvent::EntryRead { result: Ok(None) })
        .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![LeaseCommand::Finish(LeaseOutcome::Lost)]
    );

    let mut m = LeaseMachine::new("me", 60, clock(1_000, 5), None, 0);
    drain(&mut m);
    m.handle(LeaseEvent::Created {
        result: Err(KvError::AlreadyExists),
    })
    .unwrap();
    drain(&mut m);
    m.handle(LeaseEvent::EntryRead {
        result: Err(KvError::Timeout),
    })
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![LeaseCommand::Finish(LeaseOutcome::Failed(KvError::Timeout))]
    );

    let mut m = LeaseMachine::new("me", 60, clock(1_000, 5), None, 0);
    drain(&mut m);
    m.handle(LeaseEvent::Created {
        result: Err(KvError::AlreadyExists),
    })
    .unwrap();
    drain(&mut m);
    m.handle(LeaseEvent::EntryRead {
        result: Ok(entry(b"", 2)),
    })
    .unwrap();
    drain(&mut m);
    m.handle(LeaseEvent::Updated {
        result: Err(KvError::Timeout),
    })
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![LeaseCommand::Finish(LeaseOutcome::Failed(KvError::Timeout))]
    );
}

#[test]
fn out_of_order_events_are_rejected_unchanged() {
    let mut m = LeaseMachine::new("me", 60, clock(1_000, 5), None, 0);
    assert!(!m.is_done());
    let before = m.clone();
    let refused = m
        .handle(LeaseEvent::EntryRead { result: Ok(None) })
        .unwrap_err();
    assert_eq!((refused.phase, refused.event), ("Creating", "EntryRead"));
    assert_eq!(
        refused.to_string(),
        "lease machine in phase Creating does not accept EntryRead"
    );
    let refused = m
        .handle(LeaseEvent::Updated { result: Ok(v(1)) })
        .unwrap_err();
    assert_eq!(refused.event, "Updated");
    assert_eq!(m, before);
    drain(&mut m);
    m.handle(LeaseEvent::Created {
        result: Err(KvError::AlreadyExists),
    })
    .unwrap();
    let refused = m
        .handle(LeaseEvent::Created { result: Ok(v(1)) })
        .unwrap_err();
    assert_eq!((refused.phase, refused.event), ("Reading", "Created"));
    m.handle(LeaseEvent::EntryRead {
        result: Ok(entry(&record_json(990, 1_050), 4)),
    })
    .unwrap();
    let refused = m
        .handle(LeaseEvent::Updated { result: Ok(v(5)) })
        .unwrap_err();
    assert_eq!((refused.phase, refused.event), ("Done", "Updated"));
}

/// An entry is judged at the clock its answer arrived with, not at the round's
/// start: a lease live at the start but expired when its entry was read is not
/// reported live (the sighting is dated at the read).
#[test]
fn an_entry_is_judged_at_the_clock_of_its_answer() {
    let mut m = LeaseMachine::new("me", 60, clock(1_000, 5), None, 2_000);
    drain(&mut m);
    m.handle_at(
        LeaseEvent::Created {
            result: Err(KvError::AlreadyExists),
        },
        clock(1_000, 5),
    )
    .unwrap();
    let _ = drain(&mut m);
    m.handle_at(
        LeaseEvent::EntryRead {
            result: Ok(entry(&record_json(990, 1_050), 4)),
        },
        clock(1_100, 100_000),
    )
    .unwrap();
    assert!(
        !matches!(m.decision(), Some(LeaseDecision::Live { .. })),
        "{:?}",
        m.decision()
    );
    assert_eq!(m.sighting(), Some(&seen(4, 100_000)));
}

// ---------------------------------------------------------------------------
// Completing a round (`completion_write`, `completion_outcome`)
// ---------------------------------------------------------------------------

/// Wins a round by `create` at `clock` and returns the won record and revision.
fn won_by_create(clock_at: LeaseClock, rev: u64) -> (LeaseRecord, VersionToken, LeaseMachine) {
    let mut m = LeaseMachine::new("me", 60, clock_at, None, 2_000);
    drain(&mut m);
    m.handle(LeaseEvent::Created { result: Ok(v(rev)) })
        .unwrap();
    let [LeaseCommand::Finish(LeaseOutcome::Won { version, record })] = &drain(&mut m)[..] else {
        panic!("create wins");
    };
    (record.clone(), version.clone(), m)
}

#[test]
fn completion_write_is_the_completed_record_cas_over_the_held_revision() {
    let record = lease_record("me", 1_000, 60);
    let write = completion_write(&record, &v(7), &WatchCursor::from_u64(42), 1_030);
    assert_eq!(
        write,
        CompletionWrite {
            value: br#"{"holder_id":"me","acquired_at_unix":1000,"expires_at_unix":1060,"completed_cursor_hex":"000000000000002a","completed_at_unix":1030}"#.to_vec(),
            expected: v(7),
        }
    );
    // The memo is not recorded, the expiry is kept even when the wall clock is past it.
    let late = completion_write(
        &record,
        &v(7),
        &WatchCursor::from_u64(42).remembering(true),
        5_000,
    );
    let landed = decode_lease_record(&late.value).unwrap();
    assert_eq!(landed.expires_at_unix, 1_060);
    assert_eq!(landed.completed_at_unix, Some(5_000));
    assert_eq!(
        landed.completed_cursor_hex.as_deref(),
        Some("000000000000002a")
    );
}

#[test]
fn completion_outcome_table() {
    let acquired = Millis(5_000);
    // Landed: the completion's revision, dated at the acquisition (not at the answer).
    assert_eq!(
        completion_outcome(Ok(v(8)), acquired),
        CompletionOutcome::Recorded {
            sighting: seen(8, 5_000)
        }
    );
    // The key moved: the round overran its lease; tolerated, nothing to remember.
    assert_eq!(
        completion_outcome(Err(KvError::RevisionMismatch), acquired),
        CompletionOutcome::Overran
    );
    // Every other answer is the caller's error, `KeyNotFound` and `AlreadyExists` too
    // (only `RevisionMismatch` means "the lease moved").
    for error in [
        KvError::KeyNotFound,
        KvError::AlreadyExists,
        KvError::Timeout,
        KvError::OperationFailed("store closed".into()),
    ] {
        assert_eq!(
            completion_outcome(Err(error.clone()), acquired),
            CompletionOutcome::Failed(error)
        );
    }
}

/// The sighting a landed completion leaves lets this process take over its own expired,
/// completed round exactly at `acquired + duration + grace` — never earlier, and no later
/// than it could have taken over the uncompleted round.
#[test]
fn a_completed_round_is_taken_over_by_its_holder_at_acquired_plus_duration_plus_grace() {
    let (record, version, won) = won_by_create(clock(1_000, 5_000), 1);
    assert_eq!(won.sighting(), Some(&seen(1, 5_000)));
    assert_eq!(won.acquired(), Millis(5_000));
    let write = completion_write(&record, &version, &WatchCursor::from_u64(42), 1_030);
    assert_eq!(write.expected, v(1));
    // The completion lands at revision 2 (whenever its answer arrives, the sighting is
    // dated at the acquisition).
    let CompletionOutcome::Recorded { sighting } = completion_outcome(Ok(v(2)), won.acquired())
    else {
        panic!("a landed completion is recorded");
    };
    assert_eq!(sighting, seen(2, 5_000));
    let round = |at: LeaseClock| {
        let mut m = LeaseMachine::new("me", 60, at, Some(sighting.clone()), 2_000);
        drain(&mut m);
        m.handle(LeaseEvent::Created {
            result: Err(KvError::AlreadyExists),
        })
        .unwrap();
        assert_eq!(drain(&mut m), vec![LeaseCommand::ReadEntry]);
        m.handle(LeaseEvent::EntryRead {
            result: Ok(entry(&write.value, 2)),
        })
        .unwrap();
        (drain(&mut m), m)
    };
    // Expired by wall clock, one millisecond before 5 000 + 60 000 + 2 000: settling.
    let (commands, m) = round(clock(1_061, 66_999));
    assert_eq!(commands, vec![LeaseCommand::Finish(LeaseOutcome::Lost)]);
    assert_eq!(
        m.decision(),
        Some(&LeaseDecision::Settling {
            takeover_at: Millis(67_000)
        })
    );
    // At 67 000: the CAS over the completion's revision.
    let (commands, _) = round(clock(1_062, 67_000));
    assert_eq!(
        commands,
        vec![LeaseCommand::CasUpdate {
            value: lease_record("me", 1_062, 60).to_json(),
            expected: v(2)
        }]
    );
}

/// An overran completion leaves no sighting: the process keeps what it had, and the
/// revision that replaced its round is judged fresh by the next round (sighted when read).
#[test]
fn an_overran_completion_leaves_the_next_round_to_sight_the_new_revision() {
    let (record, version, won) = won_by_create(clock(1_000, 5_000), 1);
    let kept = won.sighting().cloned();
    let write = completion_write(&record, &version, &WatchCursor::from_u64(42), 1_090);
    assert_eq!(write.expected, v(1));
    assert_eq!(
        completion_outcome(Err(KvError::RevisionMismatch), won.acquired()),
        CompletionOutcome::Overran
    );
    // Another replica took the round over at revision 3 (its record runs to 1 150).
    let taker = lease_record("other", 1_090, 60);
    let mut m = LeaseMachine::new("me", 60, clock(1_095, 95_000), kept, 2_000);
    drain(&mut m);
    m.handle(LeaseEvent::Created {
        result: Err(KvError::AlreadyExists),
    })
    .unwrap();
    drain(&mut m);
    m.handle(LeaseEvent::EntryRead {
        result: Ok(entry(&taker.to_json(), 3)),
    })
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![LeaseCommand::Finish(LeaseOutcome::Lost)]
    );
    assert_eq!(m.sighting(), Some(&seen(3, 95_000)));
    assert_eq!(
        m.decision(),
        Some(&LeaseDecision::Live {
            expires_at_unix: 1_150
        })
    );
}

#[test]
fn decision_texts() {
    let texts = [
        LeaseDecision::Live {
            expires_at_unix: 1_700,
        }
        .to_string(),
        LeaseDecision::Settling {
            takeover_at: Millis(2_500),
        }
        .to_string(),
        LeaseDecision::TakeOver.to_string(),
    ];
    assert_eq!(
        texts,
        [
            "live until 1700",
            "expired, takeover allowed at 2500 ms",
            "take over",
        ]
    );
}
