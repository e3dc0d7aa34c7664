//! The eviction memo and the repair rows (relist, restore, corrections, repair I/O).

use super::*;

#[test]
fn eviction_memo_is_committed_alone_and_never_clears() {
    let mut m = M::new(config(10, 100, Some(5), true));
    m.handle(FoldEvent::RepairRequested {
        now: Millis(1),
        kind: RepairKind::Evicting,
    })
    .unwrap();
    let memo = WatchCursor::none().remembering(true);
    assert_eq!(
        drain(&mut m),
        vec![C::StoreApply {
            raw: vec![],
            cursor: memo.clone()
        }]
    );
    committed(&mut m, 2);
    assert!(
        drain(&mut m).is_empty(),
        "a memo-only commit does not call on_applied"
    );
    assert!(m.committed().seen_evicting());
    update(&mut m, 3, 6, Some(6));
    m.handle(FoldEvent::WindowElapsed { now: Millis(13) })
        .unwrap();
    let commands = drain(&mut m);
    assert!(commands.contains(&C::StoreApply {
        raw: vec![put(6)],
        cursor: cur(6).remembering(true)
    }));
    // A second eviction notice changes nothing.
    committed(&mut m, 14);
    drain(&mut m);
    m.handle(FoldEvent::RepairRequested {
        now: Millis(15),
        kind: RepairKind::Evicting,
    })
    .unwrap();
    assert!(drain(&mut m).is_empty());
}

#[test]
fn repairs_are_rejected_unless_armed() {
    let mut m = M::new(config(10, 100, Some(0), false));
    let before = m.clone();
    assert!(
        m.handle(FoldEvent::RepairRequested {
            now: Millis(1),
            kind: RepairKind::Relist
        })
        .is_err()
    );
    assert_eq!(m, before);
}

#[test]
fn relist_drains_settles_diffs_deletes_and_acks() {
    let mut m = M::new(config(10, 2, Some(4), true));
    update(&mut m, 0, 5, Some(5));
    m.handle(FoldEvent::RepairRequested {
        now: Millis(1),
        kind: RepairKind::Relist,
    })
    .unwrap();
    assert_eq!(m.wants(), Wants::Backlog);
    update(&mut m, 2, 6, Some(6));
    let _ = drain(&mut m);
    // The backlog filled the batch (max 2): flushed and committed, then keep draining.
    committed(&mut m, 3);
    assert_eq!(drain(&mut m), vec![C::OnApplied(cur(6))]);
    assert_eq!(m.wants(), Wants::Backlog);
    m.handle(FoldEvent::BacklogDrained { now: Millis(4) })
        .unwrap();
    assert_eq!(drain(&mut m), vec![C::DiffRelist]);
    m.handle(FoldEvent::RepairIo {
        now: Millis(5),
        result: RepairIo::RelistDiffed { stale: 1 },
    })
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![C::NextChunk {
            source: ChunkSource::StaleDeletes,
            max: 2
        }]
    );
    m.handle(FoldEvent::RepairIo {
        now: Millis(6),
        result: RepairIo::Corrections {
            items: vec![(synthetic_delete("gone"), None)],
        },
    })
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![C::StoreApply {
            raw: vec![synthetic_delete("gone")],
            cursor: cur(6)
        }]
    );
    committed(&mut m, 7);
    assert_eq!(
        drain(&mut m),
        vec![C::NextChunk {
            source: ChunkSource::StaleDeletes,
            max: 2
        }],
        "corrections never move the cursor and never call on_applied"
    );
    m.handle(FoldEvent::RepairIo {
        now: Millis(8),
        result: RepairIo::Corrections { items: vec![] },
    })
    .unwrap();
    assert_eq!(drain(&mut m), vec![C::AckRelist]);
    assert_eq!(m.phase(), FoldPhase::Idle);
}

#[test]
fn restore_not_ahead_is_refused() {
    let mut m = M::new(FoldConfig {
        resume: cur(9),
        ..config(10, 100, Some(9), true)
    });
    m.handle(FoldEvent::RepairRequested {
        now: Millis(1),
        kind: RepairKind::Restore { target: cur(9) },
    })
    .unwrap();
    m.handle(FoldEvent::BacklogDrained { now: Millis(2) })
        .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            C::DropRestored,
            C::ReplyRestore(Err(RestoreRefused::NotAhead {
                artifact: cur(9),
                applied: cur(9)
            }))
        ]
    );
}

#[test]
fn restore_rewrites_deletes_rechecks_retention_and_commits_the_target_last() {
    let mut m = M::new(FoldConfig {
        resume: cur(3),
        ..config(10, 10, Some(3), true)
    });
    m.handle(FoldEvent::RepairRequested {
        now: Millis(1),
        kind: RepairKind::Restore { target: cur(20) },
    })
    .unwrap();
    m.handle(FoldEvent::BacklogDrained { now: Millis(2) })
        .unwrap();
    assert_eq!(drain(&mut m), vec![C::DiffRestore]);
    m.handle(FoldEvent::RepairIo {
        now: Millis(3),
        result: RepairIo::RestoreDiffed {
            rewrite: 1,
            delete_candidates: 2,
        },
    })
    .unwrap();
    assert_eq!(drain(&mut m), vec![C::FilterListedLive]);
    m.handle(FoldEvent::RepairIo {
        now: Millis(4),
        result: RepairIo::LiveFiltered {
            remaining: 1,
            kept_high: None,
        },
    })
    .unwrap();
    assert_eq!(drain(&mut m), vec![C::ReadRetention]);
    m.handle(FoldEvent::RepairIo {
        now: Millis(5),
        result: RepairIo::Retention {
            first_revision: Some(15),
        },
    })
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![C::NextChunk {
            source: ChunkSource::RestorePuts,
            max: 10
        }]
    );
    let restored = KvUpdate::Put(KvEntry {
        key: "r".into(),
        value: vec![2],
        version: VersionToken::from_u64(18),
    });
    m.handle(FoldEvent::RepairIo {
        now: Millis(6),
        result: RepairIo::Corrections {
            items: vec![(restored.clone(), Some(18))],
        },
    })
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            C::Apply(vec![18]),
            C::StoreApply {
                raw: vec![restored],
                cursor: cur(3)
            }
        ],
        "a restored put with a known version does not move the cursor"
    );
    committed(&mut m, 7);
    assert_eq!(
        drain(&mut m),
        vec![C::NextChunk {
            source: ChunkSource::RestorePuts,
            max: 10
        }]
    );
    m.handle(FoldEvent::RepairIo {
        now: Millis(8),
        result: RepairIo::Corrections { items: vec![] },
    })
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![C::NextChunk {
            source: ChunkSource::RestoreDeletes,
            max: 10
        }]
    );
    m.handle(FoldEvent::RepairIo {
        now: Millis(9),
        result: RepairIo::Corrections { items: vec![] },
    })
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![C::StoreApply {
            raw: vec![],
            cursor: cur(20)
        }]
    );
    committed(&mut m, 10);
    assert_eq!(
        drain(&mut m),
        vec![
            C::OnApplied(cur(20)),
            C::DropRestored,
            C::ReplyRestore(Ok(cur(20)))
        ]
    );
    assert_eq!(m.committed(), &cur(20));
}

#[test]
fn restore_evicted_during_listing_is_refused_with_nothing_folded() {
    let mut m = M::new(FoldConfig {
        resume: cur(3),
        ..config(10, 10, Some(3), true)
    });
    m.handle(FoldEvent::RepairRequested {
        now: Millis(1),
        kind: RepairKind::Restore { target: cur(20) },
    })
    .unwrap();
    m.handle(FoldEvent::BacklogDrained { now: Millis(2) })
        .unwrap();
    drain(&mut m);
    m.handle(FoldEvent::RepairIo {
        now: Millis(3),
        result: RepairIo::RestoreDiffed {
            rewrite: 0,
            delete_candidates: 1,
        },
    })
    .unwrap();
    m.handle(FoldEvent::RepairIo {
        now: Millis(4),
        result: RepairIo::LiveFiltered {
            remaining: 1,
            kept_high: None,
        },
    })
    .unwrap();
    drain(&mut m);
    m.handle(FoldEvent::RepairIo {
        now: Millis(5),
        result: RepairIo::Retention {
            first_revision: Some(22),
        },
    })
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![
            C::DropRestored,
            C::ReplyRestore(Err(RestoreRefused::EvictedDuringListing {
                artifact: cur(20),
                first_revision: 22
            }))
        ]
    );
    assert_eq!(m.committed(), &cur(3));
}

/// A chunk may hold exactly `max` corrections; one more is refused.
#[test]
fn a_chunk_of_exactly_max_corrections_is_accepted() {
    let start = || {
        let mut m = M::new(config(10, 2, Some(4), true));
        m.handle(FoldEvent::RepairRequested {
            now: Millis(1),
            kind: RepairKind::Relist,
        })
        .unwrap();
        m.handle(FoldEvent::BacklogDrained { now: Millis(2) })
            .unwrap();
        m.handle(FoldEvent::RepairIo {
            now: Millis(3),
            result: RepairIo::RelistDiffed { stale: 3 },
        })
        .unwrap();
        let _ = drain(&mut m);
        m
    };
    let chunk = |n: usize| RepairIo::Corrections {
        items: (0..n)
            .map(|i| (synthetic_delete(&format!("gone{i}")), None))
            .collect(),
    };
    let mut m = start();
    assert_eq!(
        m.handle(FoldEvent::RepairIo {
            now: Millis(4),
            result: chunk(2),
        }),
        Ok(())
    );
    let mut m = start();
    assert!(
        m.handle(FoldEvent::RepairIo {
            now: Millis(4),
            result: chunk(3),
        })
        .is_err()
    );
}

/// A repair I/O answer of the wrong kind is refused, named by its kind.
#[test]
fn a_repair_io_answer_of_the_wrong_kind_is_named_in_the_refusal() {
    let mut m = M::new(config(10, 2, Some(4), true));
    m.handle(FoldEvent::RepairRequested {
        now: Millis(1),
        kind: RepairKind::Relist,
    })
    .unwrap();
    m.handle(FoldEvent::BacklogDrained { now: Millis(2) })
        .unwrap();
    assert_eq!(drain(&mut m), vec![C::DiffRelist]);
    let wrong: [(RepairIo<u64>, &str); 4] = [
        (
            RepairIo::RestoreDiffed {
                rewrite: 0,
                delete_candidates: 0,
            },
            "RepairIo::RestoreDiffed",
        ),
        (
            RepairIo::LiveFiltered {
                remaining: 0,
                kept_high: None,
            },
            "RepairIo::LiveFiltered",
        ),
        (
            RepairIo::Retention {
                first_revision: None,
            },
            "RepairIo::Retention",
        ),
        (
            RepairIo::Corrections { items: vec![] },
            "RepairIo::Corrections",
        ),
    ];
    for (result, name) in wrong {
        let before = m.clone();
        let refused = m
            .handle(FoldEvent::RepairIo {
                now: Millis(3),
                result,
            })
            .unwrap_err();
        assert_eq!(refused.event, name);
        assert_eq!(m, before);
    }
}

#[test]
fn corrections_of_the_wrong_shape_are_rejected_unchanged() {
    let mut m = M::new(config(10, 1, Some(0), true));
    m.handle(FoldEvent::RepairRequested {
        now: Millis(1),
        kind: RepairKind::Relist,
    })
    .unwrap();
    m.handle(FoldEvent::BacklogDrained { now: Millis(2) })
        .unwrap();
    m.handle(FoldEvent::RepairIo {
        now: Millis(3),
        result: RepairIo::RelistDiffed { stale: 2 },
    })
    .unwrap();
    drain(&mut m);
    let before = m.clone();
    for items in [
        vec![(put(1), None)],
        vec![(synthetic_delete("a"), None), (synthetic_delete("b"), None)],
    ] {
        assert!(
            m.handle(FoldEvent::RepairIo {
                now: Millis(4),
                result: RepairIo::Corrections { items },
            })
            .is_err()
        );
        assert_eq!(m, before);
    }
}

#[test]
fn repair_io_failure_ends_the_run() {
    let mut m = M::new(config(10, 10, Some(0), true));
    m.handle(FoldEvent::RepairRequested {
        now: Millis(1),
        kind: RepairKind::Relist,
    })
    .unwrap();
    m.handle(FoldEvent::BacklogDrained { now: Millis(2) })
        .unwrap();
    drain(&mut m);
    m.handle(FoldEvent::RepairIo {
        now: Millis(3),
        result: RepairIo::Failed {
            error: "listing: timeout".into(),
            store_lost: true,
        },
    })
    .unwrap();
    assert_eq!(
        drain(&mut m),
        vec![C::Finish(Err(KvError::WatchError(
            "listing: timeout".into()
        )))]
    );
    assert!(!m.has_store());
}
