//! The export hold (docs/protocols/fold-machine.md, "The export hold"): set at a
//! restore's commit when the listed-live filter kept keys (rows P8, P5), answered
//! without running the export while the committed cursor is below it (row X4),
//! cleared once a commit reaches it.

use super::*;

/// A machine resumed at 3 with a store, through a restore to `target` whose
/// listed-live filter reported `kept_high`; every command drained.
fn restored(target: u64, kept_high: Option<u64>) -> M {
    let mut m = M::new(FoldConfig {
        resume: cur(3),
        ..config(10, 10, Some(3), true)
    });
    m.handle(FoldEvent::RepairRequested {
        now: Millis(1),
        kind: RepairKind::Restore {
            target: cur(target),
        },
    })
    .unwrap();
    m.handle(FoldEvent::BacklogDrained { now: Millis(2) })
        .unwrap();
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
            remaining: 0,
            kept_high,
        },
    })
    .unwrap();
    m.handle(FoldEvent::RepairIo {
        now: Millis(5),
        result: RepairIo::Retention {
            first_revision: Some(1),
        },
    })
    .unwrap();
    assert_eq!(m.export_hold(), None, "no hold before the commit");
    for _ in 0..2 {
        m.handle(FoldEvent::RepairIo {
            now: Millis(6),
            result: RepairIo::Corrections { items: vec![] },
        })
        .unwrap();
    }
    committed(&mut m, 7);
    assert_eq!(
        drain(&mut m),
        vec![
            C::DiffRestore,
            C::FilterListedLive,
            C::ReadRetention,
            C::NextChunk {
                source: ChunkSource::RestorePuts,
                max: 10
            },
            C::NextChunk {
                source: ChunkSource::RestoreDeletes,
                max: 10
            },
            C::StoreApply {
                raw: vec![],
                cursor: cur(target)
            },
            C::OnApplied(cur(target)),
            C::DropRestored,
            C::ReplyRestore(Ok(cur(target))),
        ]
    );
    assert_eq!(m.committed(), &cur(target));
    m
}

fn request_export(m: &mut M, now: u64) {
    m.handle(FoldEvent::ExportRequested { now: Millis(now) })
        .unwrap();
}

#[test]
fn a_restore_that_kept_keys_holds_exports_until_a_commit_reaches_their_revision() {
    let mut m = restored(20, Some(25));
    assert_eq!(m.export_hold(), Some(25));

    // X4: answered at once, the export does not run, the machine is idle again.
    request_export(&mut m, 8);
    assert_eq!(
        drain(&mut m),
        vec![C::ReplyExport(ExportReply::Held {
            until: 25,
            committed: 20
        })]
    );
    assert_eq!(m.phase(), FoldPhase::Idle);

    // A commit below the hold keeps it.
    update(&mut m, 9, 23, Some(23));
    request_export(&mut m, 10);
    assert_eq!(
        drain(&mut m),
        vec![
            C::SetTimer(Some(Millis(19))),
            C::SetTimer(None),
            C::Apply(vec![23]),
            C::StoreApply {
                raw: vec![put(23)],
                cursor: cur(23)
            }
        ]
    );
    committed(&mut m, 11);
    assert_eq!(
        drain(&mut m),
        vec![
            C::OnApplied(cur(23)),
            C::ReplyExport(ExportReply::Held {
                until: 25,
                committed: 23
            })
        ],
        "the export's own flush is committed first, then the hold is judged"
    );
    assert_eq!(m.export_hold(), Some(25));

    // The kept key's newer write arrives: the export's flush commits it and the
    // export runs.
    update(&mut m, 12, 25, Some(25));
    request_export(&mut m, 13);
    drain(&mut m);
    committed(&mut m, 14);
    assert_eq!(drain(&mut m), vec![C::OnApplied(cur(25)), C::RunExport]);
    assert_eq!(m.export_hold(), None);
    m.handle(FoldEvent::ExportFinished {
        now: Millis(15),
        outcome: TaskOutcome::Done { ok: true },
    })
    .unwrap();
    assert_eq!(drain(&mut m), vec![C::ReplyExport(ExportReply::Result)]);
}

#[test]
fn the_hold_clears_on_the_commit_that_reaches_it_without_an_export() {
    let mut m = restored(20, Some(22));
    update(&mut m, 8, 22, Some(22));
    m.handle(FoldEvent::WindowElapsed { now: Millis(18) })
        .unwrap();
    drain(&mut m);
    assert_eq!(m.export_hold(), Some(22), "not before the commit");
    committed(&mut m, 19);
    assert_eq!(drain(&mut m), vec![C::OnApplied(cur(22))]);
    assert_eq!(m.export_hold(), None);
    request_export(&mut m, 20);
    assert_eq!(drain(&mut m), vec![C::RunExport]);
}

#[test]
fn a_restore_that_kept_nothing_or_only_revisions_it_covers_holds_nothing() {
    let mut m = restored(20, None);
    assert_eq!(m.export_hold(), None);
    request_export(&mut m, 8);
    assert_eq!(drain(&mut m), vec![C::RunExport]);

    // A kept key whose current revision is at or below the artifact's cursor.
    let mut m = restored(20, Some(20));
    assert_eq!(m.export_hold(), None);
    request_export(&mut m, 8);
    assert_eq!(drain(&mut m), vec![C::RunExport]);
}

#[test]
fn a_refused_restore_sets_no_hold() {
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
    for result in [
        RepairIo::RestoreDiffed {
            rewrite: 0,
            delete_candidates: 1,
        },
        RepairIo::LiveFiltered {
            remaining: 0,
            kept_high: Some(25),
        },
        RepairIo::Retention {
            first_revision: Some(22),
        },
    ] {
        m.handle(FoldEvent::RepairIo {
            now: Millis(3),
            result,
        })
        .unwrap();
    }
    assert!(drain(&mut m).contains(&C::ReplyRestore(Err(
        RestoreRefused::EvictedDuringListing {
            artifact: cur(20),
            first_revision: 22
        }
    ))));
    assert_eq!(m.export_hold(), None);
    request_export(&mut m, 4);
    assert_eq!(drain(&mut m), vec![C::RunExport]);
}

#[test]
fn a_second_restore_keeps_the_higher_hold() {
    let mut m = restored(20, Some(30));
    // A second restore (to 26) whose filter kept a key at 27: the first hold (30)
    // still stands.
    m.handle(FoldEvent::RepairRequested {
        now: Millis(8),
        kind: RepairKind::Restore { target: cur(26) },
    })
    .unwrap();
    m.handle(FoldEvent::BacklogDrained { now: Millis(9) })
        .unwrap();
    for result in [
        RepairIo::RestoreDiffed {
            rewrite: 0,
            delete_candidates: 1,
        },
        RepairIo::LiveFiltered {
            remaining: 0,
            kept_high: Some(27),
        },
        RepairIo::Retention {
            first_revision: Some(1),
        },
        RepairIo::Corrections { items: vec![] },
        RepairIo::Corrections { items: vec![] },
    ] {
        m.handle(FoldEvent::RepairIo {
            now: Millis(10),
            result,
        })
        .unwrap();
    }
    committed(&mut m, 11);
    drain(&mut m);
    assert_eq!(m.committed(), &cur(26));
    assert_eq!(m.export_hold(), Some(30));
}
