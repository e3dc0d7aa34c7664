//! The harness: an executor that follows the drive loop around a [`Guard`],
//! and the checker of the properties after every step.

use std::collections::BTreeSet;
use std::fmt;

use kvfold::KvError;
use kvfold::protocol::resume::{
    ExpiryCause, FLOOR_PROBE_IDLE_MS, GuardCommand, GuardEvent, GuardMode, ResumeCursor,
    StreamFacts,
};
use kvfold::protocol::time::Millis;
use proptest::test_runner::{TestCaseError, TestError};

use crate::common::prop::deterministic_runner;
use crate::guards::*;
use crate::stream::*;

/// The properties checked after every step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Property {
    /// docs/protocols/resume-guard.md, "Invariants": `Skip` never drops a revision above the frontier.
    SkipAboveFrontier,
    /// docs/semantics.md, "Watches": forwarded revisions strictly increase.
    ForwardNotIncreasing,
    /// docs/protocols/resume-guard.md, "Invariants": no `Forward` of a gapped revision (Dense) before a passing probe.
    GapForwardedUnprobed,
    /// Row 4: in Dense mode nothing is forwarded past an evicted, never-delivered revision.
    ForwardPastEviction,
    /// Row 3: a resume never streams past an evicted, never-delivered revision.
    ResumePastEviction,
    /// docs/protocols/resume-guard.md, "Invariants": after `Reconnected` with a frontier, nothing is forwarded before a
    /// passing pre-check and post-check.
    UncheckedAfterReconnect,
    /// A resumed watch streams only after a passing pre-check and post-check.
    StreamingWithoutChecks,
    /// Every delivery is forwarded, skipped or held: none vanishes unjudged.
    DeliveryLost,
    /// Sparse judging never probes and has no idle deadline.
    SparseProbed,
    /// The Dense idle probe fires when due and not before.
    IdleBackstop,
    /// Rejected events leave the guard bit-for-bit unchanged (docs/architecture.md, "Kernels and machines").
    UnexpectedInput,
    /// The drive-loop contract: one completion outstanding, nothing after the end.
    DriveContract,
    /// `frontier()` equals the reference frontier whenever no resume is running.
    FrontierAgrees,
}

#[derive(Clone, Debug)]
pub struct Violation {
    pub property: Property,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.property, self.detail)
    }
}

pub fn violated<T>(property: Property, detail: impl Into<String>) -> Result<T, Violation> {
    Err(Violation {
        property,
        detail: detail.into(),
    })
}

/// How often the interesting paths were taken (vacuity witnesses).
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub forwards: u32,
    pub floor_forwards: u32,
    pub skips: u32,
    pub idle_probes: u32,
    pub reresumes: u32,
    pub supersession_resumes: u32,
    pub rejected: u32,
    pub floor_passed: u32,
    pub below_floor: u32,
    pub ahead: u32,
    pub server_refused: u32,
    pub fails: u32,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.forwards += o.forwards;
        self.floor_forwards += o.floor_forwards;
        self.skips += o.skips;
        self.idle_probes += o.idle_probes;
        self.reresumes += o.reresumes;
        self.supersession_resumes += o.supersession_resumes;
        self.rejected += o.rejected;
        self.floor_passed += o.floor_passed;
        self.below_floor += o.below_floor;
        self.ahead += o.ahead;
        self.server_refused += o.server_refused;
        self.fails += o.fails;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outstanding {
    Nothing,
    Probe,
    Create,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    AwaitPreProbe,
    PreProbe,
    Creating(u64),
    Created(u64),
    PostProbe(u64),
}

/// A resume in progress, as the checker sees it.
#[derive(Clone, Copy, Debug)]
pub struct Resume {
    pub cursor: u64,
    pub stage: Stage,
    pub after_reconnect: bool,
}

/// What produced the commands being drained.
#[derive(Clone, Debug)]
pub enum Cause {
    Start,
    Delivered(Option<u64>),
    Probed(StreamFacts),
    ProbeFailed,
    Created,
    CreateFailed,
    Reconnected,
    Tick { due: bool },
}

#[derive(Clone, Debug)]
pub struct Consumer {
    pub next: u64,
    pub delivered_any: bool,
}

pub struct Run<G> {
    pub guard: G,
    pub stream: Stream,
    pub scope: GuardMode,
    pub now: u64,
    pub consumer: Option<Consumer>,
    pub outstanding: Outstanding,
    pub done: bool,
    pub reconnect_pending: bool,
    /// The checker's own frontier: the last forwarded revision or resume point.
    pub vouched: Option<u64>,
    /// The checker's own judging mode: Dense only after a resume of a Dense scope.
    pub dense: bool,
    pub resume: Option<Resume>,
    pub held: Option<u64>,
    /// Revisions that reached the guard (known or unknown version).
    pub received: BTreeSet<u64>,
    pub stats: Stats,
}

impl<G: Guard> Run<G> {
    pub fn start(setup: &Setup, pre: &[EnvAction]) -> Result<Self, Violation> {
        let mut stream = Stream::new(setup.retain, setup.scope);
        let mut now = 0;
        for action in pre {
            stream.apply(&mut now, action);
        }
        let (guard, consumer, vouched, resume) = match setup.start {
            // The guard asks for its own consumer (G26); `pump` creates it.
            None => (G::fresh(setup.scope, Millis(now)), None, None, None),
            Some((pick, with_time)) => {
                let revision = cursor_revision(&stream, pick);
                let written_ms = if with_time {
                    stream.written.get(&revision).copied()
                } else {
                    None
                };
                let cursor = ResumeCursor {
                    revision,
                    written_ms,
                };
                let resume = Resume {
                    cursor: revision,
                    stage: Stage::AwaitPreProbe,
                    after_reconnect: false,
                };
                (
                    G::resumed(cursor, setup.scope, Millis(now)),
                    None,
                    Some(revision),
                    Some(resume),
                )
            }
        };
        let mut run = Self {
            guard,
            stream,
            scope: setup.scope,
            now,
            consumer,
            outstanding: Outstanding::Nothing,
            done: false,
            reconnect_pending: false,
            vouched,
            dense: false,
            resume,
            held: None,
            received: BTreeSet::new(),
            stats: Stats::default(),
        };
        run.pump(&Cause::Start)?;
        Ok(run)
    }

    pub fn feed(&mut self, event: GuardEvent) -> Result<(), Violation> {
        let name = format!("{event:?}");
        match self.guard.handle(event) {
            Ok(()) => Ok(()),
            Err(e) => violated(
                Property::DriveContract,
                format!("the guard rejected {name} that the drive loop may feed: {e}"),
            ),
        }
    }

    pub fn step(&mut self, action: &Action) -> Result<(), Violation> {
        match action {
            Action::Env(env) => {
                self.stream.apply(&mut self.now, env);
                Ok(())
            }
            Action::Respond { variant } => self.respond(*variant),
            Action::Deliver => self.deliver(true),
            Action::DeliverUnknown => self.deliver(false),
            Action::Replay { back } => {
                if let Some(consumer) = &mut self.consumer {
                    consumer.next = match back {
                        0 => 0,
                        n => consumer.next.saturating_sub(u64::from(*n)),
                    };
                }
                Ok(())
            }
            Action::Reconnect => {
                // async-nats recreates the consumer after its last delivery, or
                // replays everything when it had delivered nothing (G5's case).
                if let Some(consumer) = &mut self.consumer
                    && !consumer.delivered_any
                {
                    consumer.next = 0;
                }
                self.reconnect_pending = true;
                Ok(())
            }
            Action::Tick { jump } => {
                let deadline = self.guard.poll_timeout();
                if *jump {
                    if let Some(d) = deadline {
                        let ms = d.0.saturating_sub(self.now);
                        self.stream
                            .apply(&mut self.now, &EnvAction::AdvanceClock { ms });
                    } else if self.dense
                        && self.guard.is_streaming()
                        && self.resume.is_none()
                        && self.outstanding == Outstanding::Nothing
                    {
                        return violated(
                            Property::IdleBackstop,
                            "a Dense streaming guard has no idle deadline",
                        );
                    }
                }
                let due = deadline.is_some_and(|d| Millis(self.now) >= d);
                self.feed(GuardEvent::Tick {
                    now: Millis(self.now),
                })?;
                self.pump(&Cause::Tick { due })
            }
            Action::Inject { kind } => self.inject(*kind),
        }
    }

    pub fn respond(&mut self, variant: u8) -> Result<(), Violation> {
        let now = Millis(self.now);
        match self.outstanding {
            Outstanding::Nothing => Ok(()),
            Outstanding::Probe => {
                self.outstanding = Outstanding::Nothing;
                if variant.is_multiple_of(32) {
                    self.feed(GuardEvent::ProbeFailed {
                        now,
                        error: KvError::Timeout,
                    })?;
                    self.pump(&Cause::ProbeFailed)
                } else {
                    let facts = self.stream.facts(self.now);
                    self.feed(GuardEvent::StreamProbed {
                        now,
                        facts: facts.clone(),
                    })?;
                    self.pump(&Cause::Probed(facts))
                }
            }
            Outstanding::Create => {
                self.outstanding = Outstanding::Nothing;
                let Some(Resume {
                    stage: Stage::Creating(start),
                    ..
                }) = self.resume
                else {
                    return violated(Property::DriveContract, "a consumer outside a resume");
                };
                let text = match variant % 24 {
                    0 => Some("optional start sequence is too old"),
                    1 => Some("consumer name already in use"),
                    _ => None,
                };
                if let Some(error_text) = text {
                    self.feed(GuardEvent::ConsumerFailed {
                        now,
                        error_text: error_text.to_string(),
                    })?;
                    return self.pump(&Cause::CreateFailed);
                }
                // nats-server starts silently at the first retained message at or after `start`.
                self.consumer = Some(Consumer {
                    next: start,
                    delivered_any: false,
                });
                if let Some(resume) = &mut self.resume {
                    resume.stage = Stage::Created(start);
                }
                self.feed(GuardEvent::ConsumerCreated { now })?;
                self.pump(&Cause::Created)
            }
        }
    }

    pub fn deliver(&mut self, readable: bool) -> Result<(), Violation> {
        if !self.guard.is_streaming()
            || self.outstanding != Outstanding::Nothing
            || self.reconnect_pending
        {
            return Ok(());
        }
        let Some(consumer) = &mut self.consumer else {
            return Ok(());
        };
        let Some(revision) = self
            .stream
            .log
            .range(consumer.next..)
            .find(|&(_, &in_scope)| in_scope)
            .map(|(&r, _)| r)
        else {
            return Ok(());
        };
        consumer.next = revision + 1;
        consumer.delivered_any = true;
        self.received.insert(revision);
        let (known, written_ms) = if readable {
            (Some(revision), self.stream.written.get(&revision).copied())
        } else {
            (None, None)
        };
        self.feed(GuardEvent::Delivered {
            now: Millis(self.now),
            revision: known,
            written_ms,
        })?;
        self.pump(&Cause::Delivered(known))
    }

    pub fn feed_reconnect(&mut self) -> Result<(), Violation> {
        self.reconnect_pending = false;
        self.feed(GuardEvent::Reconnected {
            now: Millis(self.now),
        })?;
        if let Some(cursor) = self.vouched {
            self.resume = Some(Resume {
                cursor,
                stage: Stage::AwaitPreProbe,
                after_reconnect: true,
            });
        }
        self.pump(&Cause::Reconnected)
    }

    pub fn inject(&mut self, kind: u8) -> Result<(), Violation> {
        let now = Millis(self.now + 1_000_000);
        let probed = GuardEvent::StreamProbed {
            now,
            facts: self.stream.facts(self.now),
        };
        let probe_failed = GuardEvent::ProbeFailed {
            now,
            error: KvError::Timeout,
        };
        let created = GuardEvent::ConsumerCreated { now };
        let create_failed = GuardEvent::ConsumerFailed {
            now,
            error_text: "too old".to_string(),
        };
        let delivered = GuardEvent::Delivered {
            now,
            revision: Some(self.stream.last + 1),
            written_ms: None,
        };
        let reconnected = GuardEvent::Reconnected { now };
        let choices = match self.outstanding {
            Outstanding::Probe => [delivered, reconnected, created, create_failed],
            Outstanding::Create => [probed, probe_failed, delivered, reconnected],
            Outstanding::Nothing if self.guard.is_streaming() => {
                [probed, probe_failed, created, create_failed]
            }
            Outstanding::Nothing => return Ok(()),
        };
        let event = choices[usize::from(kind) % 4].clone();
        self.reject(event)
    }

    pub fn reject(&mut self, event: GuardEvent) -> Result<(), Violation> {
        let before = self.guard.clone();
        let name = format!("{event:?}");
        match self.guard.handle(event) {
            Ok(()) => violated(Property::UnexpectedInput, format!("accepted {name}")),
            Err(_) if self.guard != before => violated(
                Property::UnexpectedInput,
                format!("rejecting {name} changed the guard"),
            ),
            Err(_) => {
                self.stats.rejected += 1;
                Ok(())
            }
        }
    }

    /// Drains and checks every command the last event produced.
    pub fn pump(&mut self, cause: &Cause) -> Result<(), Violation> {
        let held_before = self.held;
        let mut decisions = 0;
        while let Some(command) = self.guard.poll_command() {
            if self.done {
                return violated(
                    Property::DriveContract,
                    format!("{command:?} after the end"),
                );
            }
            if self.outstanding != Outstanding::Nothing {
                return violated(
                    Property::DriveContract,
                    format!("{command:?} queued behind a command awaiting its completion"),
                );
            }
            match command {
                GuardCommand::ProbeStream => {
                    self.outstanding = Outstanding::Probe;
                    self.on_probe(cause, &mut decisions)?;
                }
                GuardCommand::CreateConsumer { start_sequence } => {
                    self.outstanding = Outstanding::Create;
                    self.on_create(cause, start_sequence)?;
                }
                GuardCommand::CreateSnapshotConsumer => {
                    if !matches!(cause, Cause::Start) || self.resume.is_some() {
                        return violated(
                            Property::DriveContract,
                            "CreateSnapshotConsumer other than a fresh guard's first command",
                        );
                    }
                    // The harness's state-sync consumer replays the stream from its
                    // start (every key's latest entry is in it) and exists at once.
                    self.consumer = Some(Consumer {
                        next: 0,
                        delivered_any: false,
                    });
                    self.feed(GuardEvent::SnapshotCreated {
                        now: Millis(self.now),
                        pending: 0,
                    })?;
                }
                GuardCommand::DropConsumer => {
                    if !matches!(cause, Cause::Reconnected) {
                        return violated(
                            Property::DriveContract,
                            "DropConsumer without a reconnect",
                        );
                    }
                    self.consumer = None;
                }
                GuardCommand::Forward => {
                    let revision = match cause {
                        Cause::Delivered(revision) => *revision,
                        Cause::Probed(_) if self.held.is_some() => self.held.take(),
                        _ => {
                            return violated(
                                Property::DriveContract,
                                "Forward with nothing delivered",
                            );
                        }
                    };
                    decisions += 1;
                    if let Some(r) = revision {
                        self.check_forward(r, cause)?;
                    }
                    self.stats.forwards += 1;
                }
                GuardCommand::Skip { revision } => {
                    if !matches!(cause, Cause::Delivered(Some(r)) if *r == revision) {
                        return violated(
                            Property::DriveContract,
                            format!("Skip of {revision}, which is not the delivery in hand"),
                        );
                    }
                    decisions += 1;
                    if self.vouched.is_none_or(|v| revision > v) {
                        return violated(
                            Property::SkipAboveFrontier,
                            format!("skipped {revision} above the frontier {:?}", self.vouched),
                        );
                    }
                    self.stats.skips += 1;
                }
                GuardCommand::Expired(ref expiry) => {
                    decisions += 1;
                    match expiry {
                        ExpiryCause::FloorPassed { .. } => self.stats.floor_passed += 1,
                        ExpiryCause::BelowFloor { .. } => self.stats.below_floor += 1,
                        ExpiryCause::AheadOfStream { .. } => self.stats.ahead += 1,
                        ExpiryCause::ServerRefused => self.stats.server_refused += 1,
                        ExpiryCause::Recreated { .. } => {}
                    }
                    self.end();
                }
                GuardCommand::Fail(_) => {
                    decisions += 1;
                    self.stats.fails += 1;
                    self.end();
                }
            }
        }
        let judged_delivery = matches!(cause, Cause::Delivered(_))
            || (matches!(cause, Cause::Probed(_)) && held_before.is_some());
        if judged_delivery && decisions != 1 {
            return violated(
                Property::DeliveryLost,
                format!("a delivery got {decisions} decisions ({cause:?})"),
            );
        }
        if let Cause::Tick { due: true } = cause
            && self.outstanding != Outstanding::Probe
        {
            return violated(Property::IdleBackstop, "a due idle probe did not fire");
        }
        self.check_resume_done(cause)?;
        if self.resume.is_none() && !self.done && self.guard.frontier() != self.vouched {
            return violated(
                Property::FrontierAgrees,
                format!(
                    "guard frontier {:?}, reference {:?}",
                    self.guard.frontier(),
                    self.vouched
                ),
            );
        }
        match self.guard.poll_timeout() {
            Some(_) if !self.dense => violated(
                Property::SparseProbed,
                "a Sparse-judging guard armed a deadline",
            ),
            Some(d) if d.0 > self.now + FLOOR_PROBE_IDLE_MS => violated(
                Property::IdleBackstop,
                format!(
                    "deadline {d:?} more than the idle period after {}",
                    self.now
                ),
            ),
            _ => Ok(()),
        }
    }

    pub fn end(&mut self) {
        self.done = true;
        self.consumer = None;
        self.held = None;
        self.resume = None;
    }

    pub fn on_probe(&mut self, cause: &Cause, decisions: &mut u32) -> Result<(), Violation> {
        if let Some(resume) = &mut self.resume {
            resume.stage = match (resume.stage, cause) {
                (Stage::AwaitPreProbe, _) => Stage::PreProbe,
                (Stage::Created(start), Cause::Created) => Stage::PostProbe(start),
                (stage, _) => {
                    return violated(
                        Property::DriveContract,
                        format!("ProbeStream during a resume at {stage:?}"),
                    );
                }
            };
            return Ok(());
        }
        match cause {
            Cause::Delivered(Some(r)) => {
                if !self.dense {
                    return violated(
                        Property::SparseProbed,
                        format!("probed on the gap before {r}"),
                    );
                }
                self.held = Some(*r);
                *decisions += 1;
                Ok(())
            }
            Cause::Tick { due } => {
                if !self.dense || !due {
                    return violated(Property::IdleBackstop, "an idle probe that was not due");
                }
                self.stats.idle_probes += 1;
                Ok(())
            }
            other => violated(
                Property::DriveContract,
                format!("ProbeStream after {other:?}"),
            ),
        }
    }

    pub fn on_create(&mut self, cause: &Cause, start: u64) -> Result<(), Violation> {
        let Some(resume) = &mut self.resume else {
            return violated(Property::DriveContract, "CreateConsumer outside a resume");
        };
        if resume.stage != Stage::PreProbe || !matches!(cause, Cause::Probed(_)) {
            return violated(
                Property::StreamingWithoutChecks,
                "CreateConsumer without a passing pre-check",
            );
        }
        if start <= resume.cursor {
            return violated(
                Property::DriveContract,
                format!("resume from {} starts at {start}", resume.cursor),
            );
        }
        if start - 1 > resume.cursor {
            self.stats.supersession_resumes += 1;
        }
        resume.stage = Stage::Creating(start);
        Ok(())
    }

    pub fn check_forward(&mut self, r: u64, cause: &Cause) -> Result<(), Violation> {
        if let Some(resume) = self.resume {
            let property = if resume.after_reconnect {
                Property::UncheckedAfterReconnect
            } else {
                Property::StreamingWithoutChecks
            };
            return violated(
                property,
                format!("forwarded {r} during a resume at {:?}", resume.stage),
            );
        }
        if let Some(v) = self.vouched
            && r <= v
        {
            return violated(
                Property::ForwardNotIncreasing,
                format!("forwarded {r} after {v}"),
            );
        }
        if self.dense {
            let v = self.vouched.unwrap_or(0);
            if let Some(lost) = self.stream.lost_between(v, r, &self.received) {
                return violated(
                    Property::ForwardPastEviction,
                    format!("forwarded {r} from frontier {v} past evicted {lost}"),
                );
            }
            if r > v + 1 {
                match cause {
                    Cause::Probed(f) if f.first_sequence <= v + 1 && v <= f.last_sequence => {
                        self.stats.floor_forwards += 1;
                    }
                    _ => {
                        return violated(
                            Property::GapForwardedUnprobed,
                            format!("forwarded {r} after frontier {v} without a passing probe"),
                        );
                    }
                }
            }
        }
        self.vouched = Some(r);
        Ok(())
    }

    /// When a resume's guard streams again: truth first, then the check sequence.
    pub fn check_resume_done(&mut self, cause: &Cause) -> Result<(), Violation> {
        let Some(resume) = self.resume else {
            return Ok(());
        };
        if self.done || !self.guard.is_streaming() {
            return Ok(());
        }
        if let Some(lost) = self
            .stream
            .lost_between(resume.cursor, u64::MAX, &self.received)
        {
            return violated(
                Property::ResumePastEviction,
                format!("resumed from {} while {lost} was evicted", resume.cursor),
            );
        }
        let (Cause::Probed(_), Stage::PostProbe(start)) = (cause, resume.stage) else {
            let property = if resume.after_reconnect {
                Property::UncheckedAfterReconnect
            } else {
                Property::StreamingWithoutChecks
            };
            return violated(property, format!("streaming again at {:?}", resume.stage));
        };
        self.vouched = Some(start - 1);
        self.dense = self.scope == GuardMode::Dense;
        self.resume = None;
        if resume.after_reconnect {
            self.stats.reresumes += 1;
        }
        Ok(())
    }
}

/// Runs one scenario against guard `G`; the first violated property, if any.
pub fn run_scenario<G: Guard>(scenario: &Scenario) -> Result<Stats, Violation> {
    let mut run = Run::<G>::start(&scenario.setup, &scenario.pre)?;
    for action in &scenario.run {
        if run.done {
            break;
        }
        if run.reconnect_pending
            && run.guard.is_streaming()
            && run.outstanding == Outstanding::Nothing
        {
            run.feed_reconnect()?;
            if run.done {
                break;
            }
        }
        run.step(action)?;
    }
    if run.done {
        // G14: a finished guard rejects everything, unchanged.
        let now = Millis(run.now + 1);
        run.reject(GuardEvent::Tick { now })?;
        run.reject(GuardEvent::Reconnected { now })?;
    }
    Ok(run.stats)
}

/// Searches `cases` generated scenarios for one where guard `G` violates
/// `property` (a violation of another property first does not count); returns
/// the shrunk counterexample.
pub fn find_counterexample<G: Guard>(cases: u32, property: Option<Property>) -> Option<Scenario> {
    let mut runner = deterministic_runner(cases);
    let result = runner.run(&scenario(), |s| match run_scenario::<G>(&s) {
        Err(v) if property.is_none_or(|p| p == v.property) => {
            Err(TestCaseError::fail(v.to_string()))
        }
        _ => Ok(()),
    });
    match result {
        Ok(()) => None,
        Err(TestError::Fail(_, scenario)) => Some(scenario),
        Err(TestError::Abort(reason)) => panic!("runner aborted: {reason}"),
    }
}
