//! The driver: turns script steps into `FoldEvent`s (following `wants()` or
//! injecting), feeds them, performs the drive-loop bookkeeping (every command
//! drained in order, every notice drained) and hands everything to the tracker.
//! A rejected event must leave the machine equal to its clone from before.

use std::collections::VecDeque;
use std::fmt::Write as _;

use super::describe::{describe, describe_command};
use super::tracker::{Counts, Observed, Tracker, event_now};
use super::{End, Event, Item, Rev, Script, Shape, Step, Subject, Target, UpdateKind, Violation};
use crate::kv::{KvEntry, KvError, KvUpdate, VersionToken, WatchCursor};
use crate::protocol::fold::{
    ChunkSource, FoldEvent, FoldMachine, FoldNotice, FoldPhase, Pending, RepairIo, RepairKind,
    StoreOutcome, TaskEnd, TaskOutcome, Wants,
};
use crate::protocol::identity::{BucketFacts, BucketIdentity};
use crate::protocol::time::Millis;

/// Lines of trace a violation carries.
const TRACE_LINES: usize = 40;

/// What a run did (for vacuity witnesses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Steps run.
    pub steps: usize,
    /// Whether the run reached `Finish`.
    pub finished: bool,
    /// What happened.
    pub counts: Counts,
}

/// Runs `script` against the production `FoldMachine`.
pub fn run(script: &Script) -> Result<Summary, Violation> {
    run_with::<FoldMachine<Item>>(script)
}

/// Runs `script` against `M` (the production machine or a test-side wrapper).
pub fn run_with<M: Subject>(script: &Script) -> Result<Summary, Violation> {
    let mut driver = Driver::<M>::new(script)?;
    for (index, step) in script.steps.iter().enumerate() {
        driver.step(index + 1, *step)?;
    }
    driver.close(script.steps.len() + 1)?;
    Ok(Summary {
        steps: script.steps.len(),
        finished: driver.tracker.finished(),
        counts: driver.tracker.counts,
    })
}

/// What the drive-loop contract says about an event in the machine's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// `wants()` asks for it: rejecting it is a contract breach.
    Accept,
    /// The phase does not take it (row Z1/F1): accepting it is a breach.
    Reject,
}

struct Driver<M> {
    machine: M,
    tracker: Tracker,
    armed: bool,
    /// Model time in ms (events carry it, minus a one-shot rewind).
    clock: u64,
    rewind: u64,
    /// Highest revision delivered so far (fresh revisions go above it).
    max_rev: u64,
    next_id: Item,
    trace: VecDeque<String>,
    step: usize,
}

impl<M: Subject> Driver<M> {
    fn new(script: &Script) -> Result<Self, Violation> {
        let config = &script.config;
        let machine = M::new(config.clone());
        let tracker = Tracker::new(config);
        let store_rank = config.store_cursor.as_ref().map_or(0, WatchCursor::rank);
        let mut driver = Self {
            machine,
            tracker,
            armed: config.repair_armed,
            clock: 0,
            rewind: 0,
            max_rev: config.resume.rank().max(store_rank).min(1 << 40),
            next_id: 1,
            trace: VecDeque::new(),
            step: 0,
        };
        driver.log(format!("config {config:?}"));
        // Construction: an idle machine at the start cursors, nothing queued.
        let m = &driver.machine;
        let ok = m.phase() == FoldPhase::Idle
            && m.wants() == Wants::Any
            && m.poll_timeout().is_none()
            && m.store_fail_streak() == 0
            && m.has_store() == config.has_store
            && m.applied() == driver.tracker.applied();
        driver.judge(if ok {
            Ok(())
        } else {
            Err((
                0,
                format!("a new machine is not idle at its start cursors: {m:?}"),
            ))
        })?;
        if let Some(command) = driver.machine.poll_command() {
            return Err(driver.violation(0, format!("{command:?} queued by the constructor")));
        }
        let mut mismatch = false;
        while let Some(notice) = driver.machine.poll_notice() {
            mismatch |= matches!(notice, FoldNotice::ResumeMismatch { .. });
        }
        let expected = config
            .store_cursor
            .as_ref()
            .is_some_and(|store| !config.resume.is_none() && store.rank() != config.resume.rank());
        if mismatch != expected {
            return Err(driver.violation(
                0,
                format!("ResumeMismatch noticed: {mismatch}, expected {expected}"),
            ));
        }
        let observed = driver.observe();
        let applied = driver.machine.applied().clone();
        let committed = driver.machine.committed().clone();
        let check = driver.tracker.after_step(
            &observed.as_ref(&driver.machine),
            &applied,
            &committed,
            false,
        );
        driver.judge(check)?;
        Ok(driver)
    }

    fn log(&mut self, line: String) {
        if self.trace.len() == TRACE_LINES {
            self.trace.pop_front();
        }
        self.trace.push_back(line);
    }

    fn violation(&self, invariant: u8, detail: String) -> Violation {
        Violation {
            invariant,
            step: self.step,
            detail,
            trace: self.trace.iter().cloned().collect(),
        }
    }

    fn judge(&self, check: Result<(), (u8, String)>) -> Result<(), Violation> {
        check.map_err(|(invariant, detail)| self.violation(invariant, detail))
    }

    fn now(&mut self) -> Millis {
        let now = self.clock.saturating_sub(std::mem::take(&mut self.rewind));
        Millis(now)
    }

    // -----------------------------------------------------------------------
    // Steps
    // -----------------------------------------------------------------------

    fn step(&mut self, index: usize, step: Step) -> Result<(), Violation> {
        self.step = index;
        self.tracker.begin(index);
        match step {
            Step::Advance(ms) => {
                self.clock += u64::from(ms);
                self.log(format!("#{index} advance {ms} ms -> {}", self.clock));
                Ok(())
            }
            Step::Rewind(ms) => {
                self.rewind = u64::from(ms);
                self.log(format!("#{index} next event {ms} ms in the past"));
                Ok(())
            }
            Step::Follow(selector) => match self.follow(selector) {
                Some(event) => self.feed(event),
                None => Ok(()),
            },
            Step::Inject(event) => {
                let event = self.inject(event);
                self.feed(event)
            }
        }
    }

    /// After the last step: a finished machine rejects everything, unchanged.
    fn close(&mut self, index: usize) -> Result<(), Violation> {
        self.step = index;
        self.tracker.begin(index);
        if self.tracker.finished() {
            let now = Millis(self.clock);
            self.feed(FoldEvent::Shutdown { now })?;
            let (update, parsed) = self.update(Some(self.max_rev + 1), UpdateKind::Put, 0, true);
            self.feed(FoldEvent::Update {
                now,
                update,
                parsed,
            })?;
        }
        Ok(())
    }

    /// A fresh update (unique id) at `revision` (`None` = unknown version).
    fn update(
        &mut self,
        revision: Option<u64>,
        kind: UpdateKind,
        key: u8,
        parsed: bool,
    ) -> (KvUpdate, Option<Item>) {
        let id = self.next_id;
        self.next_id += 1;
        let version = match revision {
            Some(rev) => {
                self.max_rev = self.max_rev.max(rev);
                VersionToken::from_u64(rev)
            }
            None => VersionToken::unknown(),
        };
        let key = format!("k{}", key % 4);
        let update = match kind {
            UpdateKind::Put => KvUpdate::Put(KvEntry {
                key,
                value: id.to_be_bytes().to_vec(),
                version,
            }),
            UpdateKind::Delete => KvUpdate::Delete { key, version },
            UpdateKind::Purge => KvUpdate::Purge { key, version },
        };
        (update, parsed.then_some(id))
    }

    /// `count` correction items of `shape` (parsed where `mask` has the bit).
    fn corrections(&mut self, count: u8, mask: u8, shape: Shape) -> RepairIo<Item> {
        let planned = match self.tracker.chunk_source() {
            Some(ChunkSource::RestorePuts) | None => Shape::Put,
            Some(ChunkSource::StaleDeletes | ChunkSource::RestoreDeletes) => Shape::SyntheticDelete,
        };
        let shape = if shape == Shape::Planned {
            planned
        } else {
            shape
        };
        let items = (0..count)
            .map(|i| {
                let parsed = mask >> (i % 8) & 1 == 1;
                let (kind, revision) = match shape {
                    Shape::Put | Shape::Planned => (UpdateKind::Put, Some(u64::from(i) + 1)),
                    Shape::SyntheticDelete => (UpdateKind::Delete, None),
                    Shape::KnownDelete => (UpdateKind::Delete, Some(u64::from(i) + 1)),
                };
                // Corrections do not move the stream's revisions.
                let max_rev = self.max_rev;
                let item = self.update(revision, kind, i, parsed);
                self.max_rev = max_rev;
                item
            })
            .collect();
        RepairIo::Corrections { items }
    }

    fn target(&self, target: Target) -> WatchCursor {
        match target {
            Target::Ahead(n) => {
                WatchCursor::from_u64(self.tracker.applied().rank() + 1 + u64::from(n))
            }
            Target::At(n) => WatchCursor::from_u64(u64::from(n)),
            Target::None => WatchCursor::none(),
        }
    }

    /// A store apply's outcome chosen by `sel`: mostly committed, sometimes failed
    /// (with the in-flight batch), `0x7F` lost.
    fn store_outcome(&self, sel: u8) -> StoreOutcome {
        match sel % 16 {
            _ if sel == 0x7F => StoreOutcome::Lost {
                panic: "store task panicked".into(),
            },
            0..=10 => StoreOutcome::Committed,
            _ => StoreOutcome::Failed {
                raw: self.in_flight_raw(),
                error: "disk full".into(),
            },
        }
    }

    fn in_flight_raw(&self) -> Vec<KvUpdate> {
        self.tracker
            .in_flight_raw()
            .map(<[_]>::to_vec)
            .unwrap_or_default()
    }

    /// A plausible event for what the machine wants, chosen by `sel`; `None` =
    /// nothing to feed (time may pass instead).
    fn follow(&mut self, sel: u8) -> Option<FoldEvent<Item>> {
        let now = Millis(self.clock);
        let event = match self.machine.wants() {
            Wants::Nothing => return None,
            Wants::Completion(Pending::Store) => FoldEvent::StoreApplied {
                now,
                outcome: self.store_outcome(sel),
            },
            Wants::Completion(Pending::Export) => {
                let outcome = if sel == 0x7F {
                    TaskOutcome::Panicked {
                        panic: "export task panicked".into(),
                    }
                } else {
                    TaskOutcome::Done { ok: sel & 1 == 0 }
                };
                FoldEvent::ExportFinished { now, outcome }
            }
            Wants::Completion(Pending::RepairIo) => {
                let result = self.follow_repair_io(sel);
                FoldEvent::RepairIo { now, result }
            }
            Wants::Backlog => {
                if sel.is_multiple_of(4) {
                    FoldEvent::BacklogDrained { now }
                } else if sel % 8 == 1 && self.tracker.in_flight_raw().is_some() {
                    // The store apply in flight completes while the backlog drains.
                    FoldEvent::StoreApplied {
                        now,
                        outcome: self.store_outcome(sel),
                    }
                } else {
                    self.follow_update(sel)
                }
            }
            Wants::Any => match sel {
                27 => FoldEvent::Shutdown { now },
                59 => FoldEvent::WatchEnded {
                    now,
                    end: TaskEnd::Clean,
                },
                91 => FoldEvent::WatchEnded {
                    now,
                    end: TaskEnd::Failed(KvError::WatchError("stream failed".into())),
                },
                123 => FoldEvent::WatchEnded {
                    now,
                    end: TaskEnd::Panicked("watch task panicked".into()),
                },
                155 => self.expired(now, 1),
                187 => self.expired(now, 2),
                219 => self.expired(now, 0),
                251 => self.expired(now, 3),
                _ => match sel % 32 {
                    16..=19 => {
                        // The executor's sleep fires at the deadline.
                        if let Some(deadline) = self.machine.poll_timeout() {
                            self.clock = self.clock.max(deadline.0);
                        }
                        FoldEvent::WindowElapsed {
                            now: Millis(self.clock),
                        }
                    }
                    20 | 21 => {
                        let ms = u64::from(sel % 7) + 1;
                        self.clock += ms;
                        self.log(format!("#{} advance {ms} ms -> {}", self.step, self.clock));
                        return None;
                    }
                    22 | 23 => FoldEvent::ExportRequested { now },
                    // The store apply in flight completes while the fold receives.
                    28..=30 if self.tracker.in_flight_raw().is_some() => FoldEvent::StoreApplied {
                        now,
                        outcome: self.store_outcome(sel),
                    },
                    24..=26 if self.armed => {
                        let kind = match sel % 32 {
                            24 => RepairKind::Evicting,
                            25 => RepairKind::Relist,
                            _ => {
                                let n = sel >> 5;
                                let target = if n == 7 {
                                    Target::At(1)
                                } else {
                                    Target::Ahead(n)
                                };
                                RepairKind::Restore {
                                    target: self.target(target),
                                }
                            }
                        };
                        FoldEvent::RepairRequested { now, kind }
                    }
                    _ => self.follow_update(sel),
                },
            },
        };
        Some(event)
    }

    /// `WatchExpired` for the run's resume cursor with the facts `facts % 4`
    /// selects (see `Event::WatchExpired`).
    fn expired(&self, now: Millis, facts: u8) -> FoldEvent<Item> {
        let started = BucketIdentity::new("b", 1_000);
        let cursor = self.machine.resume_cursor().clone();
        let past = cursor.as_u64().unwrap_or(0) + 10;
        let (started_on, bucket) = match facts % 4 {
            0 => (None, None),
            1 => (Some(started.clone()), Some((started, past))),
            2 => (Some(started), Some((BucketIdentity::new("b", 9_000), past))),
            _ => (Some(started.clone()), Some((started, 0))),
        };
        FoldEvent::WatchExpired {
            now,
            cursor,
            started_on,
            bucket: bucket.map(|(identity, last_revision)| BucketFacts {
                identity,
                last_revision,
            }),
        }
    }

    fn follow_update(&mut self, sel: u8) -> FoldEvent<Item> {
        self.clock += u64::from(sel >> 6);
        let revision = match sel % 16 {
            0..=11 => Some(self.max_rev + 1),
            12 | 13 => None,
            14 => Some(self.max_rev),
            _ => Some(self.max_rev.saturating_sub(2)),
        };
        let kind = match (sel >> 5) % 4 {
            0 | 1 => UpdateKind::Put,
            2 => UpdateKind::Delete,
            _ => UpdateKind::Purge,
        };
        let parsed = (sel >> 4) & 1 == 0;
        let (update, parsed) = self.update(revision, kind, sel >> 2, parsed);
        FoldEvent::Update {
            now: Millis(self.clock),
            update,
            parsed,
        }
    }

    fn follow_repair_io(&mut self, sel: u8) -> RepairIo<Item> {
        if sel % 64 == 63 {
            return RepairIo::Failed {
                error: "listing failed".into(),
                store_lost: sel & 0x40 != 0,
            };
        }
        if self.tracker.chunk_source().is_some() {
            let cap = u8::try_from(self.tracker.cap()).unwrap_or(u8::MAX);
            let count = if sel.is_multiple_of(3) {
                0
            } else {
                1 + sel % cap
            };
            return self.corrections(count, sel >> 2, Shape::Planned);
        }
        let target_rank = self.tracker.restore_target().map_or(0, WatchCursor::rank);
        match self.tracker.outstanding_diff() {
            Some("DiffRelist") => RepairIo::RelistDiffed {
                stale: u64::from(sel % 4),
            },
            Some("DiffRestore") => RepairIo::RestoreDiffed {
                rewrite: u64::from(sel % 3),
                delete_candidates: u64::from((sel / 3) % 3),
            },
            Some("FilterListedLive") => RepairIo::LiveFiltered {
                remaining: u64::from(sel % 3),
                kept_high: None,
            },
            _ => RepairIo::Retention {
                first_revision: match sel % 4 {
                    0 => None,
                    1 => Some(1),
                    2 => Some(target_rank.saturating_add(1)),
                    _ => Some(target_rank.saturating_add(2)),
                },
            },
        }
    }

    /// The event an injected step names, whatever the phase.
    fn inject(&mut self, event: Event) -> FoldEvent<Item> {
        let now = self.now();
        match event {
            Event::Update {
                rev,
                kind,
                key,
                parsed,
            } => {
                let revision = match rev {
                    Rev::Next => Some(self.max_rev + 1),
                    Rev::At(n) => Some(u64::from(n)),
                    Rev::Unknown => None,
                };
                let (update, parsed) = self.update(revision, kind, key, parsed);
                FoldEvent::Update {
                    now,
                    update,
                    parsed,
                }
            }
            Event::Window => FoldEvent::WindowElapsed { now },
            Event::StoreCommitted => FoldEvent::StoreApplied {
                now,
                outcome: StoreOutcome::Committed,
            },
            Event::StoreFailed => FoldEvent::StoreApplied {
                now,
                outcome: StoreOutcome::Failed {
                    raw: self.in_flight_raw(),
                    error: "disk full".into(),
                },
            },
            Event::StoreFailedWrongLength => {
                let mut raw = self.in_flight_raw();
                let (extra, _) = self.update(None, UpdateKind::Delete, 0, false);
                raw.push(extra);
                FoldEvent::StoreApplied {
                    now,
                    outcome: StoreOutcome::Failed {
                        raw,
                        error: "disk full".into(),
                    },
                }
            }
            Event::StoreLost => FoldEvent::StoreApplied {
                now,
                outcome: StoreOutcome::Lost {
                    panic: "store task panicked".into(),
                },
            },
            Event::ExportRequested => FoldEvent::ExportRequested { now },
            Event::ExportDone { ok } => FoldEvent::ExportFinished {
                now,
                outcome: TaskOutcome::Done { ok },
            },
            Event::ExportPanicked => FoldEvent::ExportFinished {
                now,
                outcome: TaskOutcome::Panicked {
                    panic: "export task panicked".into(),
                },
            },
            Event::Evicting => FoldEvent::RepairRequested {
                now,
                kind: RepairKind::Evicting,
            },
            Event::Relist => FoldEvent::RepairRequested {
                now,
                kind: RepairKind::Relist,
            },
            Event::Restore { target } => FoldEvent::RepairRequested {
                now,
                kind: RepairKind::Restore {
                    target: self.target(target),
                },
            },
            Event::BacklogDrained => FoldEvent::BacklogDrained { now },
            Event::RelistDiffed { stale } => FoldEvent::RepairIo {
                now,
                result: RepairIo::RelistDiffed {
                    stale: u64::from(stale),
                },
            },
            Event::RestoreDiffed {
                rewrite,
                delete_candidates,
            } => FoldEvent::RepairIo {
                now,
                result: RepairIo::RestoreDiffed {
                    rewrite: u64::from(rewrite),
                    delete_candidates: u64::from(delete_candidates),
                },
            },
            Event::LiveFiltered { remaining } => FoldEvent::RepairIo {
                now,
                result: RepairIo::LiveFiltered {
                    remaining: u64::from(remaining),
                    kept_high: None,
                },
            },
            Event::Retention { first } => FoldEvent::RepairIo {
                now,
                result: RepairIo::Retention {
                    first_revision: first.map(u64::from),
                },
            },
            Event::Corrections {
                count,
                parsed_mask,
                shape,
            } => FoldEvent::RepairIo {
                now,
                result: self.corrections(count, parsed_mask, shape),
            },
            Event::RepairFailed { store_lost } => FoldEvent::RepairIo {
                now,
                result: RepairIo::Failed {
                    error: "spill read failed".into(),
                    store_lost,
                },
            },
            Event::Shutdown => FoldEvent::Shutdown { now },
            Event::WatchExpired { facts } => self.expired(now, facts),
            Event::WatchEnded(end) => FoldEvent::WatchEnded {
                now,
                end: match end {
                    End::Clean => TaskEnd::Clean,
                    End::Failed => TaskEnd::Failed(KvError::WatchError("stream failed".into())),
                    End::Panicked => TaskEnd::Panicked("watch task panicked".into()),
                },
            },
        }
    }

    // -----------------------------------------------------------------------
    // Feeding
    // -----------------------------------------------------------------------

    /// What the drive-loop contract says about `event` now: `wants()` names the
    /// events an executor feeds; everything else must be rejected (rows Z1, F1).
    fn expect(&self, event: &FoldEvent<Item>) -> Expect {
        let wanted = match (self.machine.wants(), event) {
            (Wants::Nothing, _) => false,
            // The store apply in flight completes whatever the machine waits for
            // (docs/protocols/fold-machine.md, "Store applies in flight").
            (wants, FoldEvent::StoreApplied { outcome, .. })
                if wants != Wants::Nothing && self.tracker.in_flight_raw().is_some() =>
            {
                match outcome {
                    StoreOutcome::Failed { raw, .. } => {
                        Some(raw.len()) == self.tracker.in_flight_raw().map(<[_]>::len)
                    }
                    StoreOutcome::Committed | StoreOutcome::Lost { .. } => true,
                }
            }
            (Wants::Completion(Pending::Export), FoldEvent::ExportFinished { .. }) => true,
            (Wants::Completion(Pending::RepairIo), FoldEvent::RepairIo { result, .. }) => {
                self.repair_io_fits(result)
            }
            (Wants::Backlog, FoldEvent::Update { .. } | FoldEvent::BacklogDrained { .. }) => true,
            (
                Wants::Any,
                FoldEvent::Update { .. }
                | FoldEvent::WindowElapsed { .. }
                | FoldEvent::ExportRequested { .. }
                | FoldEvent::Shutdown { .. }
                | FoldEvent::WatchEnded { .. }
                | FoldEvent::WatchExpired { .. },
            ) => true,
            (Wants::Any, FoldEvent::RepairRequested { .. }) => self.armed,
            _ => false,
        };
        if wanted {
            Expect::Accept
        } else {
            Expect::Reject
        }
    }

    /// Whether a repair I/O result answers the outstanding command with the shape
    /// docs/protocols/fold-machine.md, "Repair phases" requires.
    fn repair_io_fits(&self, result: &RepairIo<Item>) -> bool {
        if let RepairIo::Failed { .. } = result {
            return true;
        }
        if let Some(source) = self.tracker.chunk_source() {
            let RepairIo::Corrections { items } = result else {
                return false;
            };
            return items.len() <= self.tracker.cap()
                && items.iter().all(|(update, _)| match source {
                    ChunkSource::StaleDeletes | ChunkSource::RestoreDeletes => matches!(
                        update,
                        KvUpdate::Delete { version, .. } if version.is_unknown()
                    ),
                    ChunkSource::RestorePuts => matches!(update, KvUpdate::Put(_)),
                });
        }
        matches!(
            (self.tracker.outstanding_diff(), result),
            (Some("DiffRelist"), RepairIo::RelistDiffed { .. })
                | (Some("DiffRestore"), RepairIo::RestoreDiffed { .. })
                | (Some("FilterListedLive"), RepairIo::LiveFiltered { .. })
                | (Some("ReadRetention"), RepairIo::Retention { .. })
        )
    }

    fn observe(&self) -> ObservedOwned {
        ObservedOwned {
            wants: self.machine.wants(),
            phase: self.machine.phase(),
            timeout: self.machine.poll_timeout(),
            streak: self.machine.store_fail_streak(),
            has_store: self.machine.has_store(),
        }
    }

    fn feed(&mut self, event: FoldEvent<Item>) -> Result<(), Violation> {
        let expect = self.expect(&event);
        let before = self.machine.clone();
        let pre_phase = before.phase();
        let late = pre_phase == FoldPhase::Batching
            && before
                .poll_timeout()
                .is_some_and(|deadline| self.tracker.now().max(event_now(&event)) >= deadline);
        let committed_event = matches!(
            event,
            FoldEvent::StoreApplied {
                outcome: StoreOutcome::Committed,
                ..
            }
        );
        let label = describe(&event);
        match self.machine.handle(event.clone()) {
            Err(unexpected) => {
                self.tracker.counts.rejected += 1;
                self.log(format!("#{} {label} -> rejected ({unexpected})", self.step));
                if self.machine != before {
                    return Err(self.violation(
                        15,
                        format!(
                            "{unexpected} changed the machine: {before:?} -> {:?}",
                            self.machine
                        ),
                    ));
                }
                if unexpected.phase != pre_phase {
                    return Err(self.violation(
                        0,
                        format!(
                            "Unexpected names phase {:?}, the machine is in {pre_phase:?}",
                            unexpected.phase
                        ),
                    ));
                }
                if expect == Expect::Accept {
                    return Err(self.violation(
                        0,
                        format!(
                            "{label} rejected although wants() is {:?}: {unexpected}",
                            before.wants()
                        ),
                    ));
                }
                Ok(())
            }
            Ok(()) => {
                let mut line = format!("#{} {label} -> ok", self.step);
                if expect == Expect::Reject {
                    self.log(line);
                    let invariant = if self.tracker.finished() {
                        14
                    } else if matches!(before.wants(), Wants::Completion(_)) {
                        6
                    } else {
                        0
                    };
                    return Err(self.violation(
                        invariant,
                        format!("{label} accepted although wants() is {:?}", before.wants()),
                    ));
                }
                let check = self.tracker.accepted(&event, late, before.applied());
                let mut commands = Vec::new();
                while let Some(command) = self.machine.poll_command() {
                    commands.push(command);
                }
                for command in &commands {
                    let _ = write!(line, "; {}", describe_command(command));
                }
                let mut notices = Vec::new();
                while let Some(notice) = self.machine.poll_notice() {
                    notices.push(notice);
                }
                self.log(line);
                self.judge(check)?;
                for command in &commands {
                    let check = self.tracker.command(command);
                    self.judge(check)?;
                }
                for notice in &notices {
                    let check = self.tracker.notice(notice);
                    self.judge(check)?;
                }
                let observed = self.observe();
                let check = self.tracker.after_step(
                    &observed.as_ref(&self.machine),
                    before.applied(),
                    before.committed(),
                    committed_event,
                );
                self.judge(check)
            }
        }
    }
}

/// The machine's getters that return values (the cursors are borrowed later).
struct ObservedOwned {
    wants: Wants,
    phase: FoldPhase,
    timeout: Option<Millis>,
    streak: u32,
    has_store: bool,
}

impl ObservedOwned {
    fn as_ref<'a, M: Subject>(&self, machine: &'a M) -> Observed<'a> {
        Observed {
            wants: self.wants,
            phase: self.phase,
            timeout: self.timeout,
            applied: machine.applied(),
            committed: machine.committed(),
            resume: machine.resume_cursor(),
            streak: self.streak,
            has_store: self.has_store,
        }
    }
}
