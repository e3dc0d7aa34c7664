//! `plan_resume` and `recheck_resume`: the plan table, exhaustively and row by row.

use super::*;

// ---------------------------------------------------------------------------
// plan_resume / recheck_resume
// ---------------------------------------------------------------------------

type Row = (
    &'static str,
    fn(&ResumeCursor, &StreamFacts) -> bool,
    fn(&ResumeCursor, &StreamFacts) -> Result<u64, ExpiryCause>,
);

/// The pre-check table of docs/protocols/resume-guard.md, "Kernels", written independently
/// of the kernel (wide arithmetic instead of saturating ops). The first matching row wins.
const PLAN_TABLE: [Row; 5] = [
    (
        "1 ahead of stream",
        |c, f| c.revision > f.last_sequence,
        |c, f| {
            Err(ExpiryCause::AheadOfStream {
                revision: c.revision,
                last_sequence: f.last_sequence,
            })
        },
    ),
    (
        "2 recreated",
        |c, f| match (f.created_ms, c.written_ms) {
            (Some(created), Some(written)) => {
                u128::from(created) > u128::from(written) + u128::from(RECREATE_SLACK_MS)
            }
            _ => false,
        },
        |c, f| {
            Err(ExpiryCause::Recreated {
                created_ms: f.created_ms.unwrap_or_default(),
                written_ms: c.written_ms.unwrap_or_default(),
            })
        },
    ),
    (
        "3 window ok",
        |c, f| u128::from(f.first_sequence) <= u128::from(c.revision) + 1,
        |c, _| Ok(c.revision),
    ),
    (
        "4 supersession only",
        |c, f| match (c.written_ms, f.server_now_ms) {
            (Some(written), Some(now)) => {
                let l = f.limits;
                let age_only = l.max_age_ms > 0
                    && !l.allow_msg_ttl
                    && !(l.discard_old && (l.max_bytes > 0 || l.max_msgs > 0));
                let age = u128::from(now.max(written) - written);
                age_only && 2 * age <= u128::from(l.max_age_ms)
            }
            _ => false,
        },
        |c, f| Ok((f.first_sequence - 1).max(c.revision)),
    ),
    (
        "5 below floor",
        |_, _| true,
        |c, f| {
            Err(ExpiryCause::BelowFloor {
                revision: c.revision,
                first_sequence: f.first_sequence,
            })
        },
    ),
];

fn plan_oracle(c: &ResumeCursor, f: &StreamFacts) -> (&'static str, Result<u64, ExpiryCause>) {
    let (name, _, result) = PLAN_TABLE
        .iter()
        .find(|(_, applies, _)| applies(c, f))
        .expect("row 5 always applies");
    (name, result(c, f))
}

#[test]
fn plan_resume_matches_the_spec_table_exhaustively() {
    let written_options = [None, Some(T0)];
    let created_options = [
        None,
        Some(T0 - 1),
        Some(T0 + RECREATE_SLACK_MS),
        Some(T0 + RECREATE_SLACK_MS + 1),
    ];
    let now_options = [
        None,
        Some(T0 - 5),
        Some(T0 + 30_000),
        Some(T0 + 30_001),
        Some(T0 + 60_000),
    ];
    let limits_options = [AGE_ONLY, COUNT_LIMITS, KEEP_ALL, AGE_AND_TTL];
    let mut rows_hit = std::collections::BTreeSet::new();
    for revision in 0..6 {
        for first_sequence in 0..7 {
            for last_sequence in 0..6 {
                for written_ms in written_options {
                    for created_ms in created_options {
                        for server_now_ms in now_options {
                            for limits in limits_options {
                                let c = ResumeCursor {
                                    revision,
                                    written_ms,
                                };
                                let f = StreamFacts {
                                    first_sequence,
                                    last_sequence,
                                    created_ms,
                                    server_now_ms,
                                    limits,
                                };
                                let (row, expected) = plan_oracle(&c, &f);
                                rows_hit.insert(row);
                                assert_eq!(plan_resume(&c, &f), expected, "row {row}: {c:?} {f:?}");
                                if let Ok(e) = expected {
                                    assert!(e >= revision, "a resume never moves back");
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(rows_hit.len(), 5, "every row was exercised: {rows_hit:?}");
}

#[test]
fn plan_row_1_cursor_ahead_of_stream_expires() {
    assert_eq!(
        plan_resume(&cursor(11), &facts(1, 10)),
        Err(ExpiryCause::AheadOfStream {
            revision: 11,
            last_sequence: 10
        })
    );
    assert_eq!(plan_resume(&cursor(10), &facts(1, 10)), Ok(10));
}

#[test]
fn plan_row_1_wins_over_row_2() {
    let f = StreamFacts {
        created_ms: Some(T0 + RECREATE_SLACK_MS + 1),
        ..facts(1, 4)
    };
    assert_eq!(
        plan_resume(&cursor_at(5, T0), &f),
        Err(ExpiryCause::AheadOfStream {
            revision: 5,
            last_sequence: 4
        })
    );
}

#[test]
fn plan_row_2_recreated_bucket_expires_past_the_slack_only() {
    let at_slack = StreamFacts {
        created_ms: Some(T0 + RECREATE_SLACK_MS),
        ..facts(1, 10)
    };
    assert_eq!(plan_resume(&cursor_at(5, T0), &at_slack), Ok(5));
    let past_slack = StreamFacts {
        created_ms: Some(T0 + RECREATE_SLACK_MS + 1),
        ..facts(1, 10)
    };
    assert_eq!(
        plan_resume(&cursor_at(5, T0), &past_slack),
        Err(ExpiryCause::Recreated {
            created_ms: T0 + RECREATE_SLACK_MS + 1,
            written_ms: T0
        })
    );
    // Row 2 wins over row 3: the window is fine, the bucket is not the same one.
    // A cursor without a write time skips the row.
    assert_eq!(plan_resume(&cursor(5), &past_slack), Ok(5));
    // Neither the slack nor the write time overflow.
    let huge = StreamFacts {
        created_ms: Some(u64::MAX),
        ..facts(1, 10)
    };
    assert_eq!(plan_resume(&cursor_at(5, u64::MAX - 1), &huge), Ok(5));
}

#[test]
fn plan_row_3_window_ok_resumes_after_the_cursor() {
    assert_eq!(plan_resume(&cursor(5), &facts(6, 10)), Ok(5));
    assert_eq!(plan_resume(&cursor(5), &facts(1, 10)), Ok(5));
    assert_eq!(plan_resume(&cursor(5), &facts(0, 5)), Ok(5));
    assert_eq!(
        plan_resume(&cursor(u64::MAX), &facts(u64::MAX, u64::MAX)),
        Ok(u64::MAX)
    );
}

#[test]
fn plan_row_4_supersession_only_resumes_at_the_floor() {
    let f = StreamFacts {
        server_now_ms: Some(T0 + 30_000),
        limits: AGE_ONLY,
        ..facts(10, 20)
    };
    // max(first - 1, revision) = 9: the gap 4..=9 was overwritten, not evicted.
    assert_eq!(plan_resume(&cursor_at(3, T0), &f), Ok(9));
    // One ms past half of max_age: the gap may hold an aged-out write.
    let older = StreamFacts {
        server_now_ms: Some(T0 + 30_001),
        ..f.clone()
    };
    assert_eq!(
        plan_resume(&cursor_at(3, T0), &older),
        Err(ExpiryCause::BelowFloor {
            revision: 3,
            first_sequence: 10
        })
    );
    // Server clock behind the write time: age 0 (saturating), still superseded.
    let skewed = StreamFacts {
        server_now_ms: Some(T0 - 1_000),
        ..f.clone()
    };
    assert_eq!(plan_resume(&cursor_at(3, T0), &skewed), Ok(9));
}

#[test]
fn plan_row_4_needs_write_time_server_clock_and_age_only_limits() {
    let f = StreamFacts {
        server_now_ms: Some(T0 + 1),
        limits: AGE_ONLY,
        ..facts(10, 20)
    };
    let below = Err(ExpiryCause::BelowFloor {
        revision: 3,
        first_sequence: 10,
    });
    assert_eq!(plan_resume(&cursor(3), &f), below);
    let no_clock = StreamFacts {
        server_now_ms: None,
        ..f.clone()
    };
    assert_eq!(plan_resume(&cursor_at(3, T0), &no_clock), below);
    for limits in [COUNT_LIMITS, AGE_AND_TTL, KEEP_ALL] {
        let not_age_only = StreamFacts {
            limits,
            ..f.clone()
        };
        assert_eq!(plan_resume(&cursor_at(3, T0), &not_age_only), below);
    }
}

#[test]
fn plan_row_5_below_floor_expires() {
    assert_eq!(
        plan_resume(&cursor(5), &facts(7, 10)),
        Err(ExpiryCause::BelowFloor {
            revision: 5,
            first_sequence: 7
        })
    );
    assert_eq!(
        plan_resume(&cursor(0), &facts(2, 10)),
        Err(ExpiryCause::BelowFloor {
            revision: 0,
            first_sequence: 2
        })
    );
}

#[test]
fn recheck_resume_matches_the_spec_table_exhaustively() {
    for effective in 0..6 {
        for first_sequence in 0..8 {
            for last_sequence in 0..6 {
                let f = facts(first_sequence, last_sequence);
                let expected = if effective > last_sequence {
                    Err(ExpiryCause::AheadOfStream {
                        revision: effective,
                        last_sequence,
                    })
                } else if first_sequence > effective + 1 {
                    Err(ExpiryCause::BelowFloor {
                        revision: effective,
                        first_sequence,
                    })
                } else {
                    Ok(())
                };
                assert_eq!(recheck_resume(effective, &f), expected, "{effective} {f:?}");
            }
        }
    }
    assert_eq!(recheck_resume(u64::MAX, &facts(u64::MAX, u64::MAX)), Ok(()));
}

#[test]
fn expiry_causes_display_their_numbers() {
    let text = ExpiryCause::FloorPassed {
        frontier: 5,
        first_sequence: 9,
    }
    .to_string();
    assert!(text.contains('5') && text.contains('9'), "{text}");
    let unexpected = Unexpected {
        phase: "Done",
        event: "Tick",
    };
    assert_eq!(
        unexpected.to_string(),
        "resume guard in phase Done does not accept Tick"
    );
}
