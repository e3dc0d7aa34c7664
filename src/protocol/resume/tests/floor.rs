//! ResumeGuard rows G9–G15: the floor guard, failures, stale and unexpected input.

use super::*;

// ---------------------------------------------------------------------------
// ResumeGuard: G9–G11, the floor guard
// ---------------------------------------------------------------------------

#[test]
fn g9_floor_passed_the_frontier_expires() {
    let mut guard = streaming(5, GuardMode::Dense);
    let _ = step(&mut guard, delivered(10, 8));
    assert_eq!(
        step(&mut guard, probed(11, facts(7, 10))),
        expired(ExpiryCause::FloorPassed {
            frontier: 5,
            first_sequence: 7
        })
    );
    assert!(guard.is_done());
    assert_eq!(guard.frontier(), Some(5));
}

#[test]
fn g9_stream_behind_the_frontier_expires() {
    let mut guard = streaming(5, GuardMode::Dense);
    let _ = step(&mut guard, delivered(10, 8));
    assert_eq!(
        step(&mut guard, probed(11, facts(1, 4))),
        expired(ExpiryCause::AheadOfStream {
            revision: 5,
            last_sequence: 4
        })
    );
}

#[test]
fn g9_benign_interior_gap_forwards_the_held_delivery() {
    let mut guard = streaming(5, GuardMode::Dense);
    let _ = step(&mut guard, delivered_at(10, 8, T0 + 8));
    // Floor exactly at frontier + 1: nothing after the frontier was evicted.
    assert_eq!(
        step(&mut guard, probed(12, facts(6, 10))),
        vec![GuardCommand::Forward]
    );
    assert!(guard.is_streaming());
    assert_eq!(guard.frontier(), Some(8));
    assert_eq!(guard.poll_timeout(), Some(Millis(12 + FLOOR_PROBE_IDLE_MS)));
    // The held write time became the frontier's: a reconnect resumes with it.
    let _ = step(&mut guard, reconnected(13));
    let f = StreamFacts {
        created_ms: Some(T0 + 8 + RECREATE_SLACK_MS + 1),
        ..facts(1, 10)
    };
    assert_eq!(
        step(&mut guard, probed(14, f)),
        expired(ExpiryCause::Recreated {
            created_ms: T0 + 8 + RECREATE_SLACK_MS + 1,
            written_ms: T0 + 8
        })
    );
}

#[test]
fn g10_idle_probe_fires_at_the_deadline_not_before() {
    let mut guard = streaming(5, GuardMode::Dense);
    let deadline = guard
        .poll_timeout()
        .expect("dense streaming guard has a deadline");
    assert_eq!(deadline, Millis(FLOOR_PROBE_IDLE_MS));
    let before = guard.clone();
    assert_eq!(step(&mut guard, tick(0)), vec![], "stale tick");
    assert_eq!(
        guard, before,
        "a stale tick at the same time changes nothing"
    );
    assert_eq!(step(&mut guard, tick(deadline.0 - 1)), vec![], "stale tick");
    assert!(guard.is_streaming());
    assert_eq!(guard.poll_timeout(), Some(deadline));
    assert_eq!(
        step(&mut guard, tick(deadline.0)),
        vec![GuardCommand::ProbeStream]
    );
    assert!(!guard.is_streaming());
    assert_eq!(guard.poll_timeout(), None);
}

#[test]
fn g11_passing_idle_probe_rearms_the_deadline() {
    let mut guard = streaming(5, GuardMode::Dense);
    let _ = step(&mut guard, tick(FLOOR_PROBE_IDLE_MS));
    assert_eq!(
        step(&mut guard, probed(FLOOR_PROBE_IDLE_MS + 7, facts(6, 5))),
        vec![]
    );
    assert!(guard.is_streaming());
    assert_eq!(guard.frontier(), Some(5));
    assert_eq!(
        guard.poll_timeout(),
        Some(Millis(2 * FLOOR_PROBE_IDLE_MS + 7))
    );
}

#[test]
fn g11_idle_probe_finds_the_floor_passed() {
    let mut guard = streaming(5, GuardMode::Dense);
    let _ = step(&mut guard, tick(FLOOR_PROBE_IDLE_MS + 1));
    assert_eq!(
        step(&mut guard, probed(FLOOR_PROBE_IDLE_MS + 2, facts(7, 9))),
        expired(ExpiryCause::FloorPassed {
            frontier: 5,
            first_sequence: 7
        })
    );
    assert!(guard.is_done());
}

#[test]
fn g11_idle_probe_finds_the_stream_behind() {
    let mut guard = streaming(5, GuardMode::Dense);
    let _ = step(&mut guard, tick(FLOOR_PROBE_IDLE_MS));
    assert_eq!(
        step(&mut guard, probed(FLOOR_PROBE_IDLE_MS, facts(1, 3))),
        expired(ExpiryCause::AheadOfStream {
            revision: 5,
            last_sequence: 3
        })
    );
}

// ---------------------------------------------------------------------------
// ResumeGuard: G12–G15, failures, stale and unexpected input
// ---------------------------------------------------------------------------

/// A guard in each phase, built through accepted events only.
fn guard_in(phase: &str) -> ResumeGuard {
    let mut guard = ResumeGuard::resumed(cursor(5), GuardMode::Dense, Millis(0));
    let _ = drain(&mut guard);
    if phase == "PreCheck" {
        return guard;
    }
    let _ = step(&mut guard, probed(1, facts(1, 10)));
    if phase == "Creating" {
        return guard;
    }
    let _ = step(&mut guard, created(2));
    if phase == "PostCheck" {
        return guard;
    }
    let _ = step(&mut guard, probed(3, facts(1, 10)));
    match phase {
        "Streaming" => guard,
        "AwaitingFloor" => {
            let _ = step(&mut guard, delivered(4, 8));
            guard
        }
        "IdleProbe" => {
            let _ = step(&mut guard, tick(3 + FLOOR_PROBE_IDLE_MS));
            guard
        }
        "Done" => {
            let _ = step(&mut guard, delivered(4, 8));
            let _ = step(&mut guard, probed(5, facts(9, 10)));
            assert!(guard.is_done());
            guard
        }
        other => panic!("no phase {other}"),
    }
}

const PHASES: [&str; 7] = [
    "PreCheck",
    "Creating",
    "PostCheck",
    "Streaming",
    "AwaitingFloor",
    "IdleProbe",
    "Done",
];

/// One event of each kind, all at a time later than any guard above has seen.
fn every_event(now: u64) -> Vec<(&'static str, GuardEvent)> {
    vec![
        ("StreamProbed", probed(now, facts(1, 10))),
        ("ProbeFailed", probe_failed(now)),
        ("ConsumerCreated", created(now)),
        ("ConsumerFailed", create_failed(now, "boom")),
        ("Delivered", delivered(now, 6)),
        ("Reconnected", reconnected(now)),
        ("ConsumerFault", fault(now, true)),
        ("Tick", tick(now)),
    ]
}

/// The accepted (phase, event) pairs of the table; everything else is G14/G15.
fn accepts(phase: &str, event: &str) -> bool {
    matches!(
        (phase, event),
        (
            "PreCheck" | "PostCheck" | "AwaitingFloor" | "IdleProbe",
            "StreamProbed" | "ProbeFailed"
        ) | ("Creating", "ConsumerCreated" | "ConsumerFailed")
            | ("Streaming", "Delivered" | "Reconnected" | "ConsumerFault")
            | (
                "PreCheck" | "Creating" | "PostCheck" | "Streaming" | "AwaitingFloor" | "IdleProbe",
                "Tick"
            )
    )
}

#[test]
fn g12_failed_probe_ends_the_watch_in_every_probe_phase() {
    for phase in ["PreCheck", "PostCheck", "AwaitingFloor", "IdleProbe"] {
        let mut guard = guard_in(phase);
        assert_eq!(
            step(&mut guard, probe_failed(100_000)),
            vec![GuardCommand::Fail(KvError::Timeout)],
            "{phase}"
        );
        assert!(guard.is_done(), "{phase}");
        assert_eq!(guard.poll_timeout(), None);
    }
}

#[test]
fn g13_ticks_outside_a_due_dense_deadline_are_ignored() {
    for phase in [
        "PreCheck",
        "Creating",
        "PostCheck",
        "AwaitingFloor",
        "IdleProbe",
    ] {
        let mut guard = guard_in(phase);
        let before = guard.clone();
        // At a time the guard has already seen: bit-for-bit unchanged.
        assert_eq!(step(&mut guard, tick(0)), vec![], "{phase}");
        assert_eq!(guard, before, "{phase}");
        // Far in the future: still nothing to do in a phase that awaits a completion.
        assert_eq!(step(&mut guard, tick(u64::MAX)), vec![], "{phase}");
        assert_eq!(guard.frontier(), before.frontier(), "{phase}");
        assert_eq!(guard.poll_timeout(), None, "{phase}");
    }
    let mut sparse = streaming(5, GuardMode::Sparse);
    assert_eq!(step(&mut sparse, tick(u64::MAX)), vec![]);
    assert!(sparse.is_streaming());
}

#[test]
fn g14_done_guard_rejects_everything_unchanged() {
    let mut guard = guard_in("Done");
    let before = guard.clone();
    for (name, event) in every_event(1_000_000) {
        assert_eq!(
            guard.handle(event),
            Err(Unexpected {
                phase: "Done",
                event: name
            })
        );
        assert_eq!(guard, before, "{name} changed a finished guard");
        assert_eq!(guard.poll_command(), None);
    }
}

#[test]
fn g15_unexpected_pairs_are_rejected_bit_for_bit_unchanged() {
    let mut rejected = 0;
    for phase in PHASES {
        for (name, event) in every_event(1_000_000) {
            if accepts(phase, name) {
                continue;
            }
            let mut guard = guard_in(phase);
            let before = guard.clone();
            assert_eq!(
                guard.handle(event),
                Err(Unexpected { phase, event: name }),
                "{phase} / {name}"
            );
            assert_eq!(guard, before, "{phase} / {name}");
            rejected += 1;
        }
    }
    // 7 phases × 8 events − 19 accepted pairs (six live phases × three events, and
    // `ConsumerFault` while streaming).
    assert_eq!(rejected, 56 - 19);
}

#[test]
fn g15_every_accepted_pair_is_accepted() {
    for phase in PHASES {
        for (name, event) in every_event(1_000_000) {
            if accepts(phase, name) {
                let mut guard = guard_in(phase);
                assert_eq!(guard.handle(event), Ok(()), "{phase} / {name}");
            }
        }
    }
}

#[test]
fn g15_delivery_while_a_floor_probe_is_pending_is_rejected() {
    let mut guard = streaming(5, GuardMode::Dense);
    let _ = step(&mut guard, delivered(10, 8));
    let before = guard.clone();
    assert_eq!(
        guard.handle(delivered(11, 9)),
        Err(Unexpected {
            phase: "AwaitingFloor",
            event: "Delivered"
        })
    );
    assert_eq!(guard, before);
    // The held delivery is still the one judged.
    assert_eq!(
        step(&mut guard, probed(12, facts(1, 10))),
        vec![GuardCommand::Forward]
    );
    assert_eq!(guard.frontier(), Some(8));
}
