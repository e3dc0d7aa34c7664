//! Fuzz body `fold_machine` (docs/verification.md, "Fuzz targets" and rows 1–2): the
//! production `FoldMachine` driven by a decoded [`Script`] (a `FoldConfig` and up to 200
//! steps that follow `wants()` or inject arbitrary events), with the invariants 1–16 of
//! docs/protocols/fold-machine.md checked after every step by the tracker in
//! [`fold_script`](super::fold_script).

use super::fold_script::{self, Script};

/// Decodes `data` into a script and runs it; a broken invariant panics with the
/// invariant's number, the step and a trace of the last steps.
pub fn fold_machine(data: &[u8]) {
    let script = Script::decode(data);
    if let Err(violation) = fold_script::run(&script) {
        panic!("{violation}");
    }
}

/// The committed seeds (`fuzz/seeds/fold_machine/`), as scripts: one per
/// interesting path, so the fuzzer starts from every phase of the machine.
/// `KVFOLD_WRITE_SEEDS=1 cargo test --lib fold_machine::seeds -- --ignored`
/// rewrites the files.
#[cfg(test)]
mod seeds {
    use super::fold_script::{End, Event, Rev, Script, Shape, Step, Target, UpdateKind};
    use crate::kv::WatchCursor;
    use crate::protocol::fold::FoldConfig;

    fn config(window_ms: u64, max: usize, store: Option<u64>, armed: bool) -> FoldConfig {
        let store_cursor = store.map(WatchCursor::from_u64);
        FoldConfig {
            window_ms,
            max,
            has_store: store_cursor.is_some(),
            repair_armed: armed,
            resume: store.map_or_else(WatchCursor::none, WatchCursor::from_u64),
            store_cursor,
        }
    }

    fn update(rev: Rev, parsed: bool) -> Step {
        Step::Inject(Event::Update {
            rev,
            kind: UpdateKind::Put,
            key: 0,
            parsed,
        })
    }

    fn flush_by_window() -> [Step; 2] {
        [Step::Advance(60), Step::Inject(Event::Window)]
    }

    fn scripts() -> Vec<(&'static str, Script)> {
        use Event::*;
        let mut out = Vec::new();
        out.push((
            "follow_store",
            Script {
                config: config(5, 3, Some(2), true),
                steps: (0..120u8)
                    .map(|i| Step::Follow(i.wrapping_mul(37)))
                    .collect(),
            },
        ));
        out.push((
            "follow_no_store",
            Script {
                config: config(0, 0, None, false),
                steps: (0..80u8)
                    .map(|i| Step::Follow(i.wrapping_mul(53)))
                    .collect(),
            },
        ));
        let mut steps = vec![update(Rev::Next, true), update(Rev::Unknown, false)];
        steps.extend(flush_by_window());
        steps.push(Step::Inject(StoreFailed));
        steps.push(update(Rev::Next, false));
        steps.extend(flush_by_window());
        steps.push(Step::Inject(StoreCommitted));
        steps.push(Step::Inject(Shutdown));
        out.push((
            "failure_then_cumulative_commit",
            Script {
                config: config(10, 5, Some(0), false),
                steps,
            },
        ));
        let mut steps = Vec::new();
        for _ in 0..16 {
            steps.push(update(Rev::Next, true));
            steps.extend(flush_by_window());
            steps.push(Step::Inject(StoreFailed));
        }
        out.push((
            "fail_stop_after_16",
            Script {
                config: config(10, 5, Some(0), false),
                steps,
            },
        ));
        out.push((
            "late_update_closes_the_window_first",
            Script {
                config: config(3, 5, Some(1), false),
                steps: vec![
                    update(Rev::Next, true),
                    Step::Advance(5),
                    update(Rev::Next, true),
                    Step::Inject(StoreCommitted),
                    Step::Rewind(9),
                    update(Rev::At(1), true),
                    Step::Inject(WatchEnded(End::Clean)),
                    Step::Inject(StoreCommitted),
                ],
            },
        ));
        out.push((
            "relist_repair",
            Script {
                config: config(10, 2, Some(3), true),
                steps: vec![
                    update(Rev::Next, true),
                    Step::Inject(Relist),
                    update(Rev::Next, false),
                    update(Rev::Next, true),
                    Step::Inject(StoreFailed),
                    Step::Inject(BacklogDrained),
                    Step::Inject(StoreCommitted),
                    Step::Inject(StoreCommitted),
                    Step::Inject(RelistDiffed { stale: 2 }),
                    Step::Inject(Corrections {
                        count: 2,
                        parsed_mask: 1,
                        shape: Shape::Planned,
                    }),
                    Step::Inject(StoreFailed),
                    Step::Inject(Corrections {
                        count: 0,
                        parsed_mask: 0,
                        shape: Shape::Planned,
                    }),
                    Step::Inject(StoreCommitted),
                    Step::Inject(Shutdown),
                ],
            },
        ));
        out.push((
            "restore_repair",
            Script {
                config: config(10, 3, Some(3), true),
                steps: vec![
                    Step::Inject(Restore {
                        target: Target::Ahead(5),
                    }),
                    Step::Inject(BacklogDrained),
                    Step::Inject(RestoreDiffed {
                        rewrite: 1,
                        delete_candidates: 2,
                    }),
                    Step::Inject(LiveFiltered { remaining: 1 }),
                    Step::Inject(Retention { first: Some(4) }),
                    Step::Inject(Corrections {
                        count: 1,
                        parsed_mask: 1,
                        shape: Shape::Planned,
                    }),
                    Step::Inject(StoreCommitted),
                    Step::Inject(Corrections {
                        count: 0,
                        parsed_mask: 0,
                        shape: Shape::Planned,
                    }),
                    Step::Inject(Corrections {
                        count: 1,
                        parsed_mask: 0,
                        shape: Shape::SyntheticDelete,
                    }),
                    Step::Inject(StoreCommitted),
                    Step::Inject(Corrections {
                        count: 0,
                        parsed_mask: 0,
                        shape: Shape::Planned,
                    }),
                    Step::Inject(StoreCommitted),
                    Step::Inject(Restore {
                        target: Target::At(1),
                    }),
                    Step::Inject(BacklogDrained),
                ],
            },
        ));
        out.push((
            "exports_memo_and_endings",
            Script {
                config: config(4, 4, Some(7), true),
                steps: vec![
                    update(Rev::Next, true),
                    Step::Inject(ExportRequested),
                    Step::Inject(StoreCommitted),
                    Step::Inject(ExportDone { ok: false }),
                    Step::Inject(Evicting),
                    Step::Inject(StoreFailed),
                    Step::Inject(Evicting),
                    update(Rev::Unknown, true),
                    Step::Inject(ExportRequested),
                    Step::Inject(StoreCommitted),
                    Step::Inject(ExportPanicked),
                ],
            },
        ));
        let injected = [
            Window,
            StoreCommitted,
            StoreFailed,
            StoreFailedWrongLength,
            StoreLost,
            ExportDone { ok: true },
            ExportPanicked,
            BacklogDrained,
            RelistDiffed { stale: 1 },
            Corrections {
                count: 7,
                parsed_mask: 0,
                shape: Shape::KnownDelete,
            },
            RepairFailed { store_lost: true },
            Relist,
            Evicting,
            Restore {
                target: Target::None,
            },
            ExportRequested,
            WatchEnded(End::Failed),
            Shutdown,
        ];
        out.push((
            "inject_everything",
            Script {
                config: config(0, 1, None, false),
                steps: injected.into_iter().map(Step::Inject).collect(),
            },
        ));
        out
    }

    #[test]
    fn seed_scripts_keep_every_invariant() {
        for (name, script) in scripts() {
            let bytes = script.encode();
            assert_eq!(Script::decode(&bytes), script, "{name} round-trips");
            match super::fold_script::run(&script) {
                Ok(summary) => eprintln!("{name}: {summary:?}"),
                Err(violation) => panic!("{name}: {violation}"),
            }
        }
    }

    #[test]
    #[ignore = "writes fuzz/seeds/fold_machine/ (set KVFOLD_WRITE_SEEDS=1)"]
    fn write_seed_files() {
        if std::env::var_os("KVFOLD_WRITE_SEEDS").is_none() {
            return;
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/fold_machine");
        std::fs::create_dir_all(&dir).expect("create the seed directory");
        for (name, script) in scripts() {
            std::fs::write(dir.join(name), script.encode()).expect("write a seed");
        }
    }
}
