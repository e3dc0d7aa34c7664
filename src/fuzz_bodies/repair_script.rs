//! A scripted drive of the production `RepairMachine` with an invariant checker
//! (docs/protocols/repair-machine.md, "Invariants", invariants 1–7), used by the proptest
//! state machine (`tests/prop_repair_machine.rs`). A [`Script`] is a [`Setup`] plus steps;
//! each step either follows the machine's phase (the completion its last command waits for,
//! with a random [`Outcome`]) or injects an arbitrary event. After every step a tracker of
//! what the executor saw judges the commands that came out. The tracker records facts (what
//! was fed, what was asked for) and calls the same kernels; it never re-implements the
//! machine's transitions.

use std::fmt;

use crate::kv::{KvError, Retention, WatchCursor};
use crate::protocol::repair::{
    ArtifactView, RepairCommand, RepairEvent, RepairMachine, RepairNotice, RepairPhase,
    RepairStart, Scratch, Unexpected,
};
use crate::protocol::time::Millis;
use crate::protocol::{RepairMode, listing_truth};

// ===========================================================================
// The subject: the production machine or a mutant wrapping it
// ===========================================================================

/// What the harness drives. `RepairMachine` implements it directly; test-side mutants
/// wrap it and alter one decision.
pub trait Subject: Clone + fmt::Debug + PartialEq {
    /// `RepairMachine::new`.
    fn new(start: RepairStart) -> Self;
    /// `RepairMachine::handle`.
    fn handle(&mut self, event: RepairEvent) -> Result<(), Unexpected>;
    /// `RepairMachine::poll_command`.
    fn poll_command(&mut self) -> Option<RepairCommand>;
    /// `RepairMachine::poll_notice`.
    fn poll_notice(&mut self) -> Option<RepairNotice>;
    /// `RepairMachine::poll_timeout`.
    fn poll_timeout(&self) -> Option<Millis>;
    /// `RepairMachine::phase`.
    fn phase(&self) -> RepairPhase;
    /// `RepairMachine::memo`.
    fn memo(&self) -> bool;
}

impl Subject for RepairMachine {
    fn new(start: RepairStart) -> Self {
        RepairMachine::new(start)
    }
    fn handle(&mut self, event: RepairEvent) -> Result<(), Unexpected> {
        RepairMachine::handle(self, event)
    }
    fn poll_command(&mut self) -> Option<RepairCommand> {
        RepairMachine::poll_command(self)
    }
    fn poll_notice(&mut self) -> Option<RepairNotice> {
        RepairMachine::poll_notice(self)
    }
    fn poll_timeout(&self) -> Option<Millis> {
        RepairMachine::poll_timeout(self)
    }
    fn phase(&self) -> RepairPhase {
        RepairMachine::phase(self)
    }
    fn memo(&self) -> bool {
        RepairMachine::memo(self)
    }
}

// ===========================================================================
// Scripts
// ===========================================================================

/// The start parameters, in small domains.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The effective mode.
    pub mode: RepairMode,
    /// `None`, or a rank (0 = the none cursor) with a memo.
    pub resume: Option<(u8, bool)>,
    /// The store holds entries without a cursor.
    pub unanchored: bool,
    /// `% 3`: 0 = `[""]`, 1 = `["a."]`, 2 = `["a.", "b."]`.
    pub scope: u8,
}

/// The random outcome a step gives whatever the machine waits for.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    /// Picks the variant: error or success, which watch end, delivered or not.
    pub kind: u8,
    /// An artifact's rank (`% 16`; 0 = the none cursor).
    pub rank: u8,
    /// A retention reading's `evicts_current_values`.
    pub evicts: bool,
    /// A retention reading's floor (`% 12`).
    pub first: u8,
    /// An artifact's scope (`% 8`: 0 none, 1 `["a."]`, else `[""]`).
    pub scope: u8,
    /// The memo of an artifact's or a restored cursor.
    pub memo: bool,
}

/// One step of a script.
#[derive(Clone, Debug)]
pub enum Step {
    /// Feed what the phase waits for, with this outcome.
    Follow(Outcome),
    /// Feed an event of kind `kind % 9` built from the outcome, `back` ms in the past.
    Junk {
        /// The event kind (`% 9`).
        kind: u8,
        /// Its payload.
        outcome: Outcome,
        /// How far before the current clock it is dated, in ms.
        back: u8,
    },
    /// Move the clock.
    Advance(u32),
}

/// A start and the steps that follow it.
#[derive(Clone, Debug)]
pub struct Script {
    /// The start parameters.
    pub setup: Setup,
    /// The steps.
    pub steps: Vec<Step>,
}

/// The watch scope a [`Setup::scope`] code names.
pub fn scope_of(code: u8) -> Vec<String> {
    match code % 3 {
        0 => vec![String::new()],
        1 => vec!["a.".into()],
        _ => vec!["a.".into(), "b.".into()],
    }
}

/// A cursor of `rank` (0 = the none cursor) with the memo.
pub fn cursor(rank: u8, memo: bool) -> WatchCursor {
    let c = if rank == 0 {
        WatchCursor::none()
    } else {
        WatchCursor::from_u64(u64::from(rank))
    };
    c.remembering(memo)
}

impl Outcome {
    fn retention(self) -> Result<Option<Retention>, KvError> {
        match self.kind % 8 {
            0 => Err(KvError::Timeout),
            1 => Ok(None),
            _ => Ok(Some(Retention {
                evicts_current_values: self.evicts,
                first_revision: u64::from(self.first % 12),
            })),
        }
    }

    fn view(self) -> Result<ArtifactView, String> {
        if self.kind.is_multiple_of(8) {
            return Err("artifact store unavailable".into());
        }
        let scope = match self.scope % 8 {
            0 => None,
            1 => Some(vec!["a.".into()]),
            _ => Some(vec![String::new()]),
        };
        Ok(ArtifactView {
            cursor: cursor(self.rank % 16, self.memo),
            scope,
            created_at_unix: 1_700_000_000,
        })
    }

    fn watch_end(self) -> Result<(), KvError> {
        match self.kind % 6 {
            0 => Ok(()),
            1 => Err(KvError::WatchError("stream failed".into())),
            _ => Err(KvError::CursorExpired),
        }
    }
}

// ===========================================================================
// The tracker: what the executor saw, and the invariants over it
// ===========================================================================

/// A broken invariant (numbered as docs/protocols/repair-machine.md, "Invariants").
#[derive(Debug)]
pub struct Violation {
    /// The invariant's number.
    pub invariant: u8,
    /// What happened.
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invariant {}: {}", self.invariant, self.what)
    }
}

fn broken(invariant: u8, what: impl Into<String>) -> Result<(), Violation> {
    Err(Violation {
        invariant,
        what: what.into(),
    })
}

/// Witness counts: the invariants above are not vacuous.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Events rejected with `Unexpected`.
    pub rejected: u64,
    /// Watches started.
    pub watches: u64,
    /// Retention polls while a watch ran.
    pub polls: u64,
    /// `SendEvicting` commands.
    pub evictings: u64,
    /// `SendRelist` commands.
    pub relists: u64,
    /// Relist acks accepted.
    pub acks: u64,
    /// `RelistRefused` notices.
    pub relists_refused: u64,
    /// `PeekLatest` commands.
    pub peeks: u64,
    /// `SendRestore` commands.
    pub restores: u64,
    /// `RestoreRefused` notices.
    pub restores_refused: u64,
    /// `DropFetched` commands.
    pub drops: u64,
    /// Watches resumed from a restored cursor.
    pub resumed_after_restore: u64,
    /// `Finish` commands.
    pub finishes: u64,
}

impl Counts {
    /// Adds another run's counts.
    pub fn add(&mut self, d: &Counts) {
        self.rejected += d.rejected;
        self.watches += d.watches;
        self.polls += d.polls;
        self.evictings += d.evictings;
        self.relists += d.relists;
        self.acks += d.acks;
        self.relists_refused += d.relists_refused;
        self.peeks += d.peeks;
        self.restores += d.restores;
        self.restores_refused += d.restores_refused;
        self.drops += d.drops;
        self.resumed_after_restore += d.resumed_after_restore;
        self.finishes += d.finishes;
    }
}

/// The restore in progress, as seen through commands and events.
#[derive(Clone, Debug, Default)]
struct RestoreTrack {
    /// The floor of the read performed right before `PeekLatest`.
    floor_before: Option<Option<u64>>,
    /// `Latest(Ok(v))` and whether `v` passed against `floor_before`.
    latest_passed: Option<bool>,
    /// What `Fetched(Ok(v))` delivered.
    fetched: Option<ArtifactView>,
    /// The floor of a read performed after the download.
    floor_after: Option<Option<u64>>,
}

struct Tracker {
    mode: RepairMode,
    scope: Vec<String>,
    now: u64,
    /// `Some(from)` while a watch is active.
    active: Option<Option<WatchCursor>>,
    /// Where the last watch started, for the cursor being repaired.
    last_from: Option<WatchCursor>,
    /// The cursor being repaired: the expired watch's resume point, none before any.
    local: WatchCursor,
    /// Between `SendRelist` and an accepted `RelistAcked`.
    awaiting_ack: bool,
    /// The last accepted retention reading.
    last_read: Option<Option<Retention>>,
    /// A `ReadRetention` is outstanding (its answer not yet accepted).
    read_outstanding: bool,
    restore: RestoreTrack,
    /// The restored cursor a `StartWatch` must resume from.
    restored: Option<WatchCursor>,
    memo: bool,
    finished: bool,
    counts: Counts,
}

impl Tracker {
    fn new(setup: &Setup, memo: bool) -> Self {
        Self {
            mode: setup.mode,
            scope: scope_of(setup.scope),
            now: 0,
            active: None,
            last_from: None,
            local: WatchCursor::none(),
            awaiting_ack: false,
            last_read: None,
            read_outstanding: false,
            restore: RestoreTrack::default(),
            restored: None,
            memo,
            finished: false,
            counts: Counts::default(),
        }
    }

    fn check(&self, view: &ArtifactView, first: Option<u64>) -> bool {
        view.check(&self.local, first, &self.scope).is_ok()
    }

    /// What the executor feeds for this step, if anything.
    fn event<M: Subject>(&mut self, m: &M, step: &Step) -> Option<RepairEvent> {
        match *step {
            Step::Advance(ms) => {
                self.now += u64::from(ms);
                None
            }
            Step::Junk {
                kind,
                outcome,
                back,
            } => Some(junk(
                kind,
                outcome,
                Millis(self.now.saturating_sub(u64::from(back))),
            )),
            Step::Follow(o) => {
                let now = Millis(self.now);
                Some(match m.phase() {
                    RepairPhase::Starting => RepairEvent::Start { now },
                    RepairPhase::CheckingStart
                    | RepairPhase::InitialPoll
                    | RepairPhase::Polling
                    | RepairPhase::Planning
                    | RepairPhase::RestoreFloor
                    | RepairPhase::RestoreRecheck => RepairEvent::Retention {
                        now,
                        result: o.retention(),
                    },
                    RepairPhase::Watching => match (o.kind % 3, m.poll_timeout()) {
                        (0, Some(t)) => {
                            self.now = self.now.max(t.0);
                            RepairEvent::PollDue {
                                now: Millis(self.now),
                            }
                        }
                        _ => RepairEvent::WatchEnded {
                            now,
                            result: o.watch_end(),
                        },
                    },
                    RepairPhase::SendingEvicting => RepairEvent::EvictingSent {
                        now,
                        delivered: !o.kind.is_multiple_of(5),
                    },
                    RepairPhase::AwaitingAck => RepairEvent::RelistAcked { now },
                    RepairPhase::RestoreLatest => RepairEvent::Latest {
                        now,
                        result: o.view(),
                    },
                    RepairPhase::RestoreFetch => RepairEvent::Fetched {
                        now,
                        result: o.view(),
                    },
                    RepairPhase::AwaitingRestoreReply => RepairEvent::RestoreReplied {
                        now,
                        result: match (&self.restore.fetched, o.kind % 4) {
                            (Some(v), 1..) => Ok(v.cursor.clone().remembering(o.memo)),
                            _ => Err(KvError::WatchError(
                                "cursor-expired restore: evicted during listing".into(),
                            )),
                        },
                    },
                    RepairPhase::Finished => junk(o.kind, o, now),
                })
            }
        }
    }

    /// An event was accepted: what the executor now knows.
    fn accepted(&mut self, event: &RepairEvent) {
        match event {
            RepairEvent::Retention { result, .. } => {
                self.read_outstanding = false;
                if let Ok(r) = result {
                    self.last_read = Some(*r);
                    if self.restore.fetched.is_some() && self.restore.floor_after.is_none() {
                        self.restore.floor_after = Some(r.map(|r| r.first_revision));
                    }
                }
            }
            RepairEvent::WatchEnded { result, .. } => {
                self.active = None;
                if result == &Err(KvError::CursorExpired)
                    && let Some(c) = &self.last_from
                {
                    self.local = c.clone();
                }
            }
            RepairEvent::RelistAcked { .. } => {
                self.awaiting_ack = false;
                self.counts.acks += 1;
            }
            RepairEvent::Latest { result, .. } => {
                let floor = self.restore.floor_before.unwrap_or(None);
                self.restore.latest_passed = Some(match result {
                    Ok(v) => self.restore.floor_before.is_some() && self.check(v, floor),
                    Err(_) => false,
                });
            }
            RepairEvent::Fetched { result, .. } => {
                self.restore.fetched = result.as_ref().ok().cloned();
                self.restore.floor_after = None;
            }
            RepairEvent::RestoreReplied { result, .. } => {
                self.restore = RestoreTrack::default();
                self.restored = result.as_ref().ok().cloned();
            }
            RepairEvent::Start { .. }
            | RepairEvent::EvictingSent { .. }
            | RepairEvent::PollDue { .. } => {}
        }
    }

    /// One command, performed in order: the invariants it must respect.
    fn command(&mut self, command: &RepairCommand, memo: bool) -> Result<(), Violation> {
        if self.finished {
            return broken(6, format!("{command:?} after Finish"));
        }
        match command {
            RepairCommand::ReadRetention => {
                if self.read_outstanding {
                    return broken(1, "a second read queued before the first was answered");
                }
                self.read_outstanding = true;
                if self.active.is_some() {
                    self.counts.polls += 1;
                }
            }
            RepairCommand::StartWatch { from } => {
                if self.awaiting_ack {
                    return broken(2, "StartWatch between SendRelist and RelistAcked");
                }
                if self.active.is_some() {
                    return broken(1, "a second watch while one is active");
                }
                if let Some(restored) = self.restored.take() {
                    if from.as_ref() != Some(&restored) {
                        return broken(3, format!("restored {restored:?}, resumed {from:?}"));
                    }
                    self.counts.resumed_after_restore += 1;
                }
                self.active = Some(from.clone());
                self.last_from = from.clone();
                self.counts.watches += 1;
            }
            RepairCommand::SendEvicting => {
                if self.counts.evictings > 0 {
                    return broken(5, "SendEvicting twice");
                }
                if !memo || self.mode == RepairMode::None {
                    return broken(5, "SendEvicting without a memo or without a repair armed");
                }
                self.counts.evictings += 1;
            }
            RepairCommand::SendRelist { scratch } => {
                if self.active.is_some() {
                    return broken(1, "SendRelist while a watch is active");
                }
                let truth = self.last_read.map(|r| listing_truth(r, memo));
                let allowed = match self.mode {
                    // The caller vouched for an unknown listing; never for a lying one.
                    RepairMode::Relist => truth.is_some_and(|t| t != Some(false)),
                    RepairMode::Auto => truth == Some(Some(true)),
                    RepairMode::None | RepairMode::Restore => false,
                };
                if !allowed {
                    return broken(
                        4,
                        format!("relist under {:?} with truth {truth:?}", self.mode),
                    );
                }
                let expected = if self.mode == RepairMode::Auto {
                    Scratch::RestoreSourceDir
                } else {
                    Scratch::SystemTemp
                };
                if *scratch != expected {
                    return broken(4, format!("{scratch:?} under {:?}", self.mode));
                }
                self.awaiting_ack = true;
                self.counts.relists += 1;
            }
            RepairCommand::PeekLatest => {
                if !matches!(self.mode, RepairMode::Restore | RepairMode::Auto) {
                    return broken(4, format!("a restore under {:?}", self.mode));
                }
                let Some(r) = self.last_read else {
                    return broken(3, "PeekLatest without a floor read");
                };
                self.restore = RestoreTrack {
                    floor_before: Some(r.map(|r| r.first_revision)),
                    ..RestoreTrack::default()
                };
                self.counts.peeks += 1;
            }
            RepairCommand::FetchArtifact => {
                if self.restore.latest_passed != Some(true) {
                    return broken(3, "download before the manifest passed its check");
                }
            }
            RepairCommand::DropFetched => {
                if self.restore.fetched.take().is_none() {
                    return broken(3, "DropFetched without a fetched artifact");
                }
                self.counts.drops += 1;
            }
            RepairCommand::SendRestore => {
                if self.active.is_some() {
                    return broken(1, "SendRestore while a watch is active");
                }
                if !matches!(self.mode, RepairMode::Restore | RepairMode::Auto) {
                    return broken(4, format!("a restore under {:?}", self.mode));
                }
                let second = match (&self.restore.fetched, self.restore.floor_after) {
                    (Some(v), Some(first)) => self.check(v, first),
                    _ => false,
                };
                if self.restore.latest_passed != Some(true) || !second {
                    return broken(
                        3,
                        format!("SendRestore without two passing checks: {:?}", self.restore),
                    );
                }
                self.counts.restores += 1;
            }
            RepairCommand::Finish(_) => {
                self.finished = true;
                self.active = None;
                self.counts.finishes += 1;
            }
        }
        Ok(())
    }
}

/// An arbitrary event of kind `kind % 9`.
fn junk(kind: u8, o: Outcome, now: Millis) -> RepairEvent {
    match kind % 9 {
        0 => RepairEvent::Start { now },
        1 => RepairEvent::Retention {
            now,
            result: o.retention(),
        },
        2 => RepairEvent::EvictingSent {
            now,
            delivered: o.evicts,
        },
        3 => RepairEvent::PollDue { now },
        4 => RepairEvent::WatchEnded {
            now,
            result: o.watch_end(),
        },
        5 => RepairEvent::RelistAcked { now },
        6 => RepairEvent::Latest {
            now,
            result: o.view(),
        },
        7 => RepairEvent::Fetched {
            now,
            result: o.view(),
        },
        _ => RepairEvent::RestoreReplied {
            now,
            result: Ok(cursor(o.rank % 16, o.memo)),
        },
    }
}

/// Runs a script against `M`, checking invariants 1–7 after every step.
pub fn run_with<M: Subject>(script: &Script) -> Result<Counts, Violation> {
    let setup = &script.setup;
    let mut m = M::new(RepairStart {
        mode: setup.mode,
        resume: setup.resume.map(|(rank, memo)| cursor(rank, memo)),
        unanchored: setup.unanchored,
        scope: scope_of(setup.scope),
    });
    let mut t = Tracker::new(setup, m.memo());
    for step in &script.steps {
        let Some(event) = t.event(&m, step) else {
            continue;
        };
        let before = m.clone();
        let was_finished = m.phase() == RepairPhase::Finished;
        match m.handle(event.clone()) {
            Err(_) => {
                t.counts.rejected += 1;
                if m != before {
                    return Err(Violation {
                        invariant: 7,
                        what: format!("{event:?} was rejected but changed the machine"),
                    });
                }
            }
            Ok(()) if was_finished => {
                return Err(Violation {
                    invariant: 6,
                    what: format!("{event:?} accepted after Finish"),
                });
            }
            Ok(()) => t.accepted(&event),
        }
        if t.memo && !m.memo() {
            return Err(Violation {
                invariant: 5,
                what: "the memo was cleared".into(),
            });
        }
        t.memo = m.memo();
        while let Some(command) = m.poll_command() {
            t.command(&command, m.memo())?;
        }
        while let Some(notice) = m.poll_notice() {
            match notice {
                RepairNotice::RelistRefused => t.counts.relists_refused += 1,
                RepairNotice::RestoreRefused { .. } => t.counts.restores_refused += 1,
                _ => {}
            }
        }
        if m.phase() == RepairPhase::Finished && t.counts.finishes != 1 {
            return Err(Violation {
                invariant: 6,
                what: format!("Finished after {} Finish commands", t.counts.finishes),
            });
        }
        if m.poll_timeout().is_some() && m.phase() != RepairPhase::Watching {
            return Err(Violation {
                invariant: 1,
                what: format!("a poll deadline in {:?}", m.phase()),
            });
        }
    }
    Ok(t.counts)
}
