//! proptest: the production `ResumeGuard` driven against a simulated stream log
//! (docs/protocols/resume-guard.md; docs/verification.md rows 3 and 4), the resume kernels
//! (`gap_holds_no_eviction`, `plan_resume`, `resume_start_sequence`), the subject
//! filters against `key_in_scope` (row 18), and the mutations that show each
//! checker has teeth (docs/verification.md, "The rule" and "Mutations"). Mutations are test-side wrappers
//! around the real kernels; production code is never altered.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use kvfold::KvError;
use kvfold::protocol::resume::{
    ExpiryCause, FLOOR_PROBE_IDLE_MS, GuardCommand, GuardEvent, GuardMode, LogLimits, ResumeCursor,
    ResumeGuard, StreamFacts, Unexpected, plan_resume,
};
use kvfold::protocol::subject::{
    filter_patterns, key_in_scope, key_is_valid, pattern_matches, prefix_is_valid,
};
use kvfold::protocol::time::Millis;
use kvfold::protocol::{gap_holds_no_eviction, resume_start_sequence};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

// ===========================================================================
// The guard under test: production, or a deliberately broken wrapper
// ===========================================================================

/// What the harness drives. `ResumeGuard` implements it directly; the mutants
/// wrap it and alter exactly one decision.
trait Guard: Clone + PartialEq + fmt::Debug {
    fn resumed(cursor: ResumeCursor, mode: GuardMode, now: Millis) -> Self;
    fn fresh(mode: GuardMode, now: Millis) -> Self;
    fn handle(&mut self, event: GuardEvent) -> Result<(), Unexpected>;
    fn poll_command(&mut self) -> Option<GuardCommand>;
    fn poll_timeout(&self) -> Option<Millis>;
    fn is_streaming(&self) -> bool;
    fn frontier(&self) -> Option<u64>;
}

impl Guard for ResumeGuard {
    fn resumed(cursor: ResumeCursor, mode: GuardMode, now: Millis) -> Self {
        ResumeGuard::resumed(cursor, mode, now)
    }
    fn fresh(mode: GuardMode, now: Millis) -> Self {
        ResumeGuard::fresh(mode, now)
    }
    fn handle(&mut self, event: GuardEvent) -> Result<(), Unexpected> {
        ResumeGuard::handle(self, event)
    }
    fn poll_command(&mut self) -> Option<GuardCommand> {
        ResumeGuard::poll_command(self)
    }
    fn poll_timeout(&self) -> Option<Millis> {
        ResumeGuard::poll_timeout(self)
    }
    fn is_streaming(&self) -> bool {
        ResumeGuard::is_streaming(self)
    }
    fn frontier(&self) -> Option<u64> {
        ResumeGuard::frontier(self)
    }
}

/// Mutant "no floor guard": the probe a gapped delivery asks for (G6) is answered
/// inside the wrapper with facts that always pass, so the gap is forwarded at once
/// as if it were contiguous. Everything else (idle probes, resumes) is intact.
#[derive(Clone, Debug, PartialEq)]
struct NoFloorGuard {
    inner: ResumeGuard,
    queue: VecDeque<GuardCommand>,
}

/// Mutant "judge Dense as Sparse": the scope's mode is ignored, so neither gaps
/// nor idle time are ever probed.
#[derive(Clone, Debug, PartialEq)]
struct SparseJudging(ResumeGuard);

/// Mutant "ignore reconnects": `Reconnected` is swallowed while streaming, so the
/// client's own consumer recreation continues without any window check.
#[derive(Clone, Debug, PartialEq)]
struct IgnoresReconnect(ResumeGuard);

/// Mutant "skip the post-create re-check": the post-check probe is answered inside
/// the wrapper with facts that always pass.
#[derive(Clone, Debug, PartialEq)]
struct SkipsPostCheck(ResumeGuard);

macro_rules! delegate_outputs {
    () => {
        fn poll_command(&mut self) -> Option<GuardCommand> {
            self.0.poll_command()
        }
        fn poll_timeout(&self) -> Option<Millis> {
            self.0.poll_timeout()
        }
        fn is_streaming(&self) -> bool {
            self.0.is_streaming()
        }
        fn frontier(&self) -> Option<u64> {
            self.0.frontier()
        }
    };
}

impl NoFloorGuard {
    fn wrap(inner: ResumeGuard) -> Self {
        Self {
            inner,
            queue: VecDeque::new(),
        }
    }
}

impl Guard for NoFloorGuard {
    fn resumed(cursor: ResumeCursor, mode: GuardMode, now: Millis) -> Self {
        Self::wrap(ResumeGuard::resumed(cursor, mode, now))
    }
    fn fresh(mode: GuardMode, now: Millis) -> Self {
        Self::wrap(ResumeGuard::fresh(mode, now))
    }
    fn handle(&mut self, event: GuardEvent) -> Result<(), Unexpected> {
        let delivered_at = match event {
            GuardEvent::Delivered { now, .. } => Some(now),
            _ => None,
        };
        self.inner.handle(event)?;
        while let Some(command) = self.inner.poll_command() {
            match (delivered_at, command) {
                (Some(now), GuardCommand::ProbeStream) => self
                    .inner
                    .handle(GuardEvent::StreamProbed {
                        now,
                        facts: ALWAYS_PASSES,
                    })
                    .expect("AwaitingFloor accepts StreamProbed"),
                (_, command) => self.queue.push_back(command),
            }
        }
        Ok(())
    }
    fn poll_command(&mut self) -> Option<GuardCommand> {
        // The constructor's commands are still inside; `handle` moves the rest out.
        self.queue.pop_front().or_else(|| self.inner.poll_command())
    }
    fn poll_timeout(&self) -> Option<Millis> {
        self.inner.poll_timeout()
    }
    fn is_streaming(&self) -> bool {
        self.inner.is_streaming()
    }
    fn frontier(&self) -> Option<u64> {
        self.inner.frontier()
    }
}

impl Guard for SparseJudging {
    fn resumed(cursor: ResumeCursor, _mode: GuardMode, now: Millis) -> Self {
        Self(ResumeGuard::resumed(cursor, GuardMode::Sparse, now))
    }
    fn fresh(_mode: GuardMode, now: Millis) -> Self {
        Self(ResumeGuard::fresh(GuardMode::Sparse, now))
    }
    fn handle(&mut self, event: GuardEvent) -> Result<(), Unexpected> {
        self.0.handle(event)
    }
    delegate_outputs!();
}

impl Guard for IgnoresReconnect {
    fn resumed(cursor: ResumeCursor, mode: GuardMode, now: Millis) -> Self {
        Self(ResumeGuard::resumed(cursor, mode, now))
    }
    fn fresh(mode: GuardMode, now: Millis) -> Self {
        Self(ResumeGuard::fresh(mode, now))
    }
    fn handle(&mut self, event: GuardEvent) -> Result<(), Unexpected> {
        if matches!(event, GuardEvent::Reconnected { .. }) && self.0.is_streaming() {
            return Ok(());
        }
        self.0.handle(event)
    }
    delegate_outputs!();
}

impl Guard for SkipsPostCheck {
    fn resumed(cursor: ResumeCursor, mode: GuardMode, now: Millis) -> Self {
        Self(ResumeGuard::resumed(cursor, mode, now))
    }
    fn fresh(mode: GuardMode, now: Millis) -> Self {
        Self(ResumeGuard::fresh(mode, now))
    }
    fn handle(&mut self, event: GuardEvent) -> Result<(), Unexpected> {
        let created_at = match event {
            GuardEvent::ConsumerCreated { now } => Some(now),
            _ => None,
        };
        self.0.handle(event)?;
        if let Some(now) = created_at
            && self.0.poll_command() == Some(GuardCommand::ProbeStream)
        {
            self.0
                .handle(GuardEvent::StreamProbed {
                    now,
                    facts: ALWAYS_PASSES,
                })
                .expect("PostCheck accepts StreamProbed");
        }
        Ok(())
    }
    delegate_outputs!();
}

// ===========================================================================
// The environment: a simulated stream log
// ===========================================================================

/// Server Unix ms at harness time 0 (write times are never 0 = unknown).
const BASE_MS: u64 = 1_700_000_000_000;

/// What the mutants answer a swallowed probe with: every check passes.
const ALWAYS_PASSES: StreamFacts = StreamFacts {
    first_sequence: 0,
    last_sequence: u64::MAX,
    created_ms: None,
    server_now_ms: None,
    limits: COUNT_LIMITS,
};

/// discard-old with a byte limit, as kvfold creates buckets: never age-only.
const COUNT_LIMITS: LogLimits = LogLimits {
    max_age_ms: 0,
    allow_msg_ttl: false,
    discard_old: true,
    max_bytes: 1 << 20,
    max_msgs: 0,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retain {
    /// Head eviction by count/bytes (`EvictHead`), never by age.
    Count,
    /// Age-only: messages older than `max_age_ms` leave the head as the clock moves.
    Age { max_age_ms: u64 },
}

/// Why a revision left the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// A newer write to the same key removed it (per-key history): benign.
    Superseded,
    /// A limit removed it from the head: loss, unless someone received it first.
    Evicted,
}

#[derive(Clone, Debug)]
struct Stream {
    retain: Retain,
    /// Every delivery of an All-scope watch is in scope.
    all_in_scope: bool,
    /// Retained revisions → in scope of the watch.
    log: BTreeMap<u64, bool>,
    /// Every revision ever written → server write time.
    written: BTreeMap<u64, u64>,
    /// Every removed revision → why.
    fate: BTreeMap<u64, Fate>,
    last: u64,
}

impl Stream {
    fn new(retain: Retain, scope: GuardMode) -> Self {
        Self {
            retain,
            all_in_scope: scope == GuardMode::Dense,
            log: BTreeMap::new(),
            written: BTreeMap::new(),
            fate: BTreeMap::new(),
            last: 0,
        }
    }

    /// NATS reports `last + 1` for an empty stream.
    fn first(&self) -> u64 {
        self.log.keys().next().copied().unwrap_or(self.last + 1)
    }

    fn limits(&self) -> LogLimits {
        match self.retain {
            Retain::Count => COUNT_LIMITS,
            Retain::Age { max_age_ms } => LogLimits {
                max_age_ms,
                allow_msg_ttl: false,
                discard_old: false,
                max_bytes: 0,
                max_msgs: 0,
            },
        }
    }

    fn facts(&self, now: u64) -> StreamFacts {
        StreamFacts {
            first_sequence: self.first(),
            last_sequence: self.last,
            created_ms: Some(BASE_MS - 1),
            server_now_ms: Some(BASE_MS + now),
            limits: self.limits(),
        }
    }

    fn append(&mut self, now: u64, in_scope: bool) {
        self.last += 1;
        self.log.insert(self.last, in_scope || self.all_in_scope);
        self.written.insert(self.last, BASE_MS + now);
    }

    fn apply(&mut self, now: &mut u64, action: &EnvAction) {
        match *action {
            EnvAction::Append { count, scope_bits } => {
                for i in 0..count {
                    self.append(*now, scope_bits >> i & 1 == 1);
                }
            }
            EnvAction::Overwrite { pick } => {
                // A new write to the key of a retained message removes that message;
                // a quarter of the picks overwrite the oldest one (the floor moves).
                let index = if pick < 64 {
                    0
                } else {
                    usize::from(pick) % self.log.len().max(1)
                };
                let old = self.log.iter().nth(index).map(|(&r, &s)| (r, s));
                match old {
                    Some((revision, in_scope)) => {
                        self.log.remove(&revision);
                        self.fate.insert(revision, Fate::Superseded);
                        self.append(*now, in_scope);
                    }
                    None => self.append(*now, true),
                }
            }
            EnvAction::EvictHead { count } => {
                if self.retain == Retain::Count {
                    for _ in 0..count {
                        if let Some((revision, _)) = self.log.pop_first() {
                            self.fate.insert(revision, Fate::Evicted);
                        }
                    }
                }
            }
            EnvAction::AdvanceClock { ms } => {
                *now += ms;
                if let Retain::Age { max_age_ms } = self.retain {
                    let server_now = BASE_MS + *now;
                    while let Some((&revision, _)) = self.log.first_key_value() {
                        if server_now - self.written[&revision] <= max_age_ms {
                            break;
                        }
                        self.log.remove(&revision);
                        self.fate.insert(revision, Fate::Evicted);
                    }
                }
            }
        }
    }

    /// The lowest revision in `(after, before)` that was evicted without ever
    /// reaching the guard.
    fn lost_between(&self, after: u64, before: u64, received: &BTreeSet<u64>) -> Option<u64> {
        let low = after.saturating_add(1);
        if low >= before {
            return None;
        }
        self.fate
            .range(low..before)
            .find(|&(r, f)| *f == Fate::Evicted && !received.contains(r))
            .map(|(&r, _)| r)
    }
}

// ===========================================================================
// Scenarios
// ===========================================================================

/// A resume cursor on the history: often just around the retention floor (where
/// the interesting decisions are), sometimes anywhere, sometimes one past the
/// stream's end (a lost tail or a recreated bucket).
fn cursor_revision(stream: &Stream, pick: u8) -> u64 {
    let last = stream.last;
    match pick % 8 {
        _ if last == 0 => 1,
        0 => last + 1,
        1..=4 => (stream.first() + u64::from(pick / 8 % 4))
            .saturating_sub(2)
            .clamp(1, last),
        _ => 1 + u64::from(pick) % last,
    }
}

#[derive(Clone, Debug)]
enum EnvAction {
    Append { count: u8, scope_bits: u8 },
    Overwrite { pick: u8 },
    EvictHead { count: u8 },
    AdvanceClock { ms: u64 },
}

#[derive(Clone, Debug)]
enum Action {
    Env(EnvAction),
    /// Complete the outstanding command (`variant` picks success or a failure).
    Respond {
        variant: u8,
    },
    Deliver,
    /// A delivery whose revision is unreadable (consumes a message).
    DeliverUnknown,
    /// The consumer redelivers: moves back `back` revisions (0 = from the stream start).
    Replay {
        back: u8,
    },
    /// The client reconnects; its consumer is recreated without any check.
    Reconnect,
    /// Feed `Tick`; with `jump`, first move the clock to the guard's deadline.
    Tick {
        jump: bool,
    },
    /// Feed an event the guard's phase must reject.
    Inject {
        kind: u8,
    },
}

#[derive(Clone, Debug)]
struct Setup {
    retain: Retain,
    scope: GuardMode,
    /// `None`: state-sync (`fresh`); else a cursor pick and whether it carries a write time.
    start: Option<(u8, bool)>,
}

#[derive(Clone, Debug)]
struct Scenario {
    setup: Setup,
    /// History before the watch starts.
    pre: Vec<EnvAction>,
    run: Vec<Action>,
}

fn env_action() -> impl Strategy<Value = EnvAction> {
    prop_oneof![
        4 => (1u8..=3, any::<u8>())
            .prop_map(|(count, scope_bits)| EnvAction::Append { count, scope_bits }),
        3 => any::<u8>().prop_map(|pick| EnvAction::Overwrite { pick }),
        2 => (1u8..=3).prop_map(|count| EnvAction::EvictHead { count }),
        2 => prop_oneof![Just(1_000u64), Just(10_000), Just(25_000), Just(40_000)]
            .prop_map(|ms| EnvAction::AdvanceClock { ms }),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => env_action().prop_map(Action::Env),
        8 => any::<u8>().prop_map(|variant| Action::Respond { variant }),
        10 => Just(Action::Deliver),
        1 => Just(Action::DeliverUnknown),
        1 => (0u8..=3).prop_map(|back| Action::Replay { back }),
        2 => Just(Action::Reconnect),
        2 => any::<bool>().prop_map(|jump| Action::Tick { jump }),
        1 => any::<u8>().prop_map(|kind| Action::Inject { kind }),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let retain = prop_oneof![
        Just(Retain::Count),
        Just(Retain::Age { max_age_ms: 60_000 }),
        Just(Retain::Age {
            max_age_ms: 100_000
        }),
    ];
    let scope = prop_oneof![Just(GuardMode::Dense), Just(GuardMode::Sparse)];
    let start = prop_oneof![1 => Just(None), 3 => any::<(u8, bool)>().prop_map(Some)];
    (
        (retain, scope, start).prop_map(|(retain, scope, start)| Setup {
            retain,
            scope,
            start,
        }),
        vec(env_action(), 0..16),
        vec(action(), 0..64),
    )
        .prop_map(|(setup, pre, run)| Scenario { setup, pre, run })
}

// ===========================================================================
// The harness: an executor that follows the drive loop, plus the checker
// ===========================================================================

/// The properties checked after every step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Property {
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
struct Violation {
    property: Property,
    detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.property, self.detail)
    }
}

fn violated<T>(property: Property, detail: impl Into<String>) -> Result<T, Violation> {
    Err(Violation {
        property,
        detail: detail.into(),
    })
}

/// How often the interesting paths were taken (vacuity witnesses).
#[derive(Clone, Debug, Default)]
struct Stats {
    forwards: u32,
    floor_forwards: u32,
    skips: u32,
    idle_probes: u32,
    reresumes: u32,
    supersession_resumes: u32,
    rejected: u32,
    floor_passed: u32,
    below_floor: u32,
    ahead: u32,
    server_refused: u32,
    fails: u32,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
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
enum Outstanding {
    Nothing,
    Probe,
    Create,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    AwaitPreProbe,
    PreProbe,
    Creating(u64),
    Created(u64),
    PostProbe(u64),
}

/// A resume in progress, as the checker sees it.
#[derive(Clone, Copy, Debug)]
struct Resume {
    cursor: u64,
    stage: Stage,
    after_reconnect: bool,
}

/// What produced the commands being drained.
#[derive(Clone, Debug)]
enum Cause {
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
struct Consumer {
    next: u64,
    delivered_any: bool,
}

struct Run<G> {
    guard: G,
    stream: Stream,
    scope: GuardMode,
    now: u64,
    consumer: Option<Consumer>,
    outstanding: Outstanding,
    done: bool,
    reconnect_pending: bool,
    /// The checker's own frontier: the last forwarded revision or resume point.
    vouched: Option<u64>,
    /// The checker's own judging mode: Dense only after a resume of a Dense scope.
    dense: bool,
    resume: Option<Resume>,
    held: Option<u64>,
    /// Revisions that reached the guard (known or unknown version).
    received: BTreeSet<u64>,
    stats: Stats,
}

impl<G: Guard> Run<G> {
    fn start(setup: &Setup, pre: &[EnvAction]) -> Result<Self, Violation> {
        let mut stream = Stream::new(setup.retain, setup.scope);
        let mut now = 0;
        for action in pre {
            stream.apply(&mut now, action);
        }
        let (guard, consumer, vouched, resume) = match setup.start {
            None => (
                G::fresh(setup.scope, Millis(now)),
                Some(Consumer {
                    next: 0,
                    delivered_any: false,
                }),
                None,
                None,
            ),
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

    fn feed(&mut self, event: GuardEvent) -> Result<(), Violation> {
        let name = format!("{event:?}");
        match self.guard.handle(event) {
            Ok(()) => Ok(()),
            Err(e) => violated(
                Property::DriveContract,
                format!("the guard rejected {name} that the drive loop may feed: {e}"),
            ),
        }
    }

    fn step(&mut self, action: &Action) -> Result<(), Violation> {
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

    fn respond(&mut self, variant: u8) -> Result<(), Violation> {
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

    fn deliver(&mut self, readable: bool) -> Result<(), Violation> {
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

    fn feed_reconnect(&mut self) -> Result<(), Violation> {
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

    fn inject(&mut self, kind: u8) -> Result<(), Violation> {
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

    fn reject(&mut self, event: GuardEvent) -> Result<(), Violation> {
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
    fn pump(&mut self, cause: &Cause) -> Result<(), Violation> {
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
                    return violated(
                        Property::DriveContract,
                        "CreateSnapshotConsumer from a resumed or fresh guard",
                    );
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

    fn end(&mut self) {
        self.done = true;
        self.consumer = None;
        self.held = None;
        self.resume = None;
    }

    fn on_probe(&mut self, cause: &Cause, decisions: &mut u32) -> Result<(), Violation> {
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

    fn on_create(&mut self, cause: &Cause, start: u64) -> Result<(), Violation> {
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

    fn check_forward(&mut self, r: u64, cause: &Cause) -> Result<(), Violation> {
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
    fn check_resume_done(&mut self, cause: &Cause) -> Result<(), Violation> {
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
fn run_scenario<G: Guard>(scenario: &Scenario) -> Result<Stats, Violation> {
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

// ===========================================================================
// ResumeGuard state machine properties
// ===========================================================================

proptest! {
    // Default config: 256 cases unless PROPTEST_CASES says otherwise.
    #[test]
    fn resume_guard_never_forwards_past_unexamined_loss(s in scenario()) {
        if let Err(v) = run_scenario::<ResumeGuard>(&s) {
            prop_assert!(false, "{}", v);
        }
    }
}

/// A fixed-seed runner, independent of `PROPTEST_CASES`, so mutation evidence
/// and vacuity witnesses never shrink to nothing.
fn deterministic_runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

/// Searches `cases` generated scenarios for one where guard `G` violates
/// `property` (a violation of another property first does not count); returns
/// the shrunk counterexample.
fn find_counterexample<G: Guard>(cases: u32, property: Option<Property>) -> Option<Scenario> {
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

#[test]
fn scenarios_reach_every_interesting_path() {
    let mut runner = deterministic_runner(512);
    let total = std::cell::RefCell::new(Stats::default());
    runner
        .run(&scenario(), |s| {
            let stats =
                run_scenario::<ResumeGuard>(&s).map_err(|v| TestCaseError::fail(v.to_string()))?;
            total.borrow_mut().add(&stats);
            Ok(())
        })
        .expect("the production guard satisfies every property");
    let t = total.into_inner();
    println!("witnesses over 512 scenarios: {t:?}");
    // `sometimes` witnesses: the properties above are not vacuous.
    assert!(t.forwards > 0, "{t:?}");
    assert!(
        t.floor_forwards > 0,
        "benign gaps forwarded after a probe: {t:?}"
    );
    assert!(t.floor_passed > 0, "the floor guard tripped: {t:?}");
    assert!(t.skips > 0, "redeliveries skipped: {t:?}");
    assert!(t.idle_probes > 0, "idle backstop probed: {t:?}");
    assert!(t.reresumes > 0, "re-resumes after a reconnect: {t:?}");
    assert!(t.supersession_resumes > 0, "row-4 resumes: {t:?}");
    assert!(
        t.below_floor > 0 && t.ahead > 0,
        "pre/post-check expiries: {t:?}"
    );
    assert!(t.server_refused > 0 && t.fails > 0, "{t:?}");
    assert!(t.rejected > 0, "unexpected events injected: {t:?}");

    // The plan_resume history property reaches every row that can answer it.
    let mut runner = deterministic_runner(512);
    let rows = std::cell::RefCell::new(BTreeMap::<&str, u32>::new());
    runner
        .run(&history(), |(setup, pre)| {
            let (cursor, facts, _) = resume_point(&setup, &pre);
            let row = match plan_resume(&cursor, &facts) {
                Ok(e) if e == cursor.revision => "window",
                Ok(_) => "supersession",
                Err(ExpiryCause::BelowFloor { .. }) => "below floor",
                Err(ExpiryCause::AheadOfStream { .. }) => "ahead",
                Err(_) => "other",
            };
            *rows.borrow_mut().entry(row).or_default() += 1;
            Ok(())
        })
        .expect("counting only");
    let rows = rows.into_inner();
    println!("plan_resume rows over 512 histories: {rows:?}");
    for row in ["window", "supersession", "below floor", "ahead"] {
        assert!(rows.get(row).is_some_and(|&n| n > 0), "{row}: {rows:?}");
    }
}

// ===========================================================================
// Mutation evidence: each broken wrapper is caught by the same checker
// ===========================================================================

const MUTANT_CASES: u32 = 1_024;

fn assert_caught<G: Guard>(name: &str, properties: &[Property]) {
    for &property in properties {
        let scenario =
            find_counterexample::<G>(MUTANT_CASES, Some(property)).unwrap_or_else(|| {
                panic!("mutant {name} survived {MUTANT_CASES} scenarios of {property:?}")
            });
        let violation = run_scenario::<G>(&scenario).expect_err("the shrunk case still fails");
        assert_eq!(violation.property, property);
        println!("mutant {name} caught: {violation}\nshrunk counterexample: {scenario:?}");
    }
}

#[test]
fn production_guard_survives_the_mutation_search() {
    if let Some(s) = find_counterexample::<ResumeGuard>(MUTANT_CASES, None) {
        panic!("{:?}\n{s:?}", run_scenario::<ResumeGuard>(&s).err());
    }
}

#[test]
fn mutant_without_floor_guard_is_caught() {
    assert_caught::<NoFloorGuard>(
        "no floor guard",
        &[
            Property::ForwardPastEviction,
            Property::GapForwardedUnprobed,
        ],
    );
}

#[test]
fn mutant_judging_dense_as_sparse_is_caught() {
    assert_caught::<SparseJudging>(
        "judges Dense as Sparse",
        &[
            Property::ForwardPastEviction,
            Property::GapForwardedUnprobed,
            Property::IdleBackstop,
        ],
    );
}

#[test]
fn mutant_ignoring_reconnects_is_caught() {
    assert_caught::<IgnoresReconnect>(
        "ignores Reconnected",
        &[
            Property::ResumePastEviction,
            Property::UncheckedAfterReconnect,
        ],
    );
}

#[test]
fn mutant_skipping_the_post_check_is_caught() {
    assert_caught::<SkipsPostCheck>(
        "skips the post-create re-check",
        &[
            Property::ResumePastEviction,
            Property::StreamingWithoutChecks,
        ],
    );
}

fn append(count: u8) -> Action {
    Action::Env(EnvAction::Append {
        count,
        scope_bits: 0xff,
    })
}

fn respond() -> Action {
    Action::Respond { variant: 5 }
}

/// Resume an All-scope watch after 3 of 5 revisions; 4 and 5 are evicted before
/// they are delivered; a new write 6 arrives.
fn evicted_gap_scenario() -> Scenario {
    Scenario {
        setup: Setup {
            retain: Retain::Count,
            scope: GuardMode::Dense,
            start: Some((2, false)), // cursor 3
        },
        pre: vec![EnvAction::Append {
            count: 5,
            scope_bits: 0xff,
        }],
        run: vec![
            respond(), // pre-check: first 1 ≤ 4
            respond(), // consumer at 4
            respond(), // post-check
            Action::Env(EnvAction::EvictHead { count: 5 }),
            append(1),
            Action::Deliver, // 6: gapped
            respond(),       // floor probe: first 6 > 4
        ],
    }
}

#[test]
fn fixed_scenario_floor_guard_expires_where_the_mutant_loses_data() {
    let s = evicted_gap_scenario();
    let stats = run_scenario::<ResumeGuard>(&s).expect("production guard is safe");
    assert_eq!(
        stats.floor_passed, 1,
        "the production guard expires: {stats:?}"
    );
    let v = run_scenario::<NoFloorGuard>(&s).expect_err("mutant forwards 6");
    assert_eq!(v.property, Property::ForwardPastEviction, "{v}");
    let v = run_scenario::<SparseJudging>(&s).expect_err("mutant forwards 6");
    assert_eq!(v.property, Property::ForwardPastEviction, "{v}");
}

#[test]
fn fixed_scenario_reconnect_reresumes_where_the_mutant_streams_on() {
    // A Sparse watch delivers 4; while the client is away 5..=6 are evicted; it
    // reconnects and its own consumer recreation would continue at 5, i.e. at 7.
    let s = Scenario {
        setup: Setup {
            retain: Retain::Count,
            scope: GuardMode::Sparse,
            start: Some((2, false)), // cursor 3
        },
        pre: vec![EnvAction::Append {
            count: 6,
            scope_bits: 0xff,
        }],
        run: vec![
            respond(),
            respond(),
            respond(),
            Action::Deliver, // 4
            Action::Env(EnvAction::EvictHead { count: 6 }),
            Action::Reconnect,
            append(1),       // the executor feeds Reconnected first
            Action::Deliver, // production: nothing (re-resume pending); mutant: 7
            respond(),       // production: pre-check from 4 finds first 7 > 5
        ],
    };
    let stats = run_scenario::<ResumeGuard>(&s).expect("production guard is safe");
    assert_eq!(stats.below_floor, 1, "{stats:?}");
    let v = run_scenario::<IgnoresReconnect>(&s).expect_err("mutant streams on");
    assert_eq!(v.property, Property::ResumePastEviction, "{v}");
    // Without the eviction the same mutant is still caught, structurally.
    let mut quiet = s.clone();
    quiet.run.remove(4);
    let v = run_scenario::<IgnoresReconnect>(&quiet).expect_err("mutant streams on");
    assert_eq!(v.property, Property::UncheckedAfterReconnect, "{v}");
}

#[test]
fn fixed_scenario_post_check_catches_eviction_racing_creation() {
    let s = Scenario {
        setup: Setup {
            retain: Retain::Count,
            scope: GuardMode::Sparse,
            start: Some((2, false)), // cursor 3
        },
        pre: vec![EnvAction::Append {
            count: 5,
            scope_bits: 0xff,
        }],
        run: vec![
            respond(), // pre-check passes: first 1
            Action::Env(EnvAction::EvictHead { count: 4 }),
            respond(), // consumer created at 4, stream starts at 5
            respond(), // post-check: first 5 > 4
        ],
    };
    let stats = run_scenario::<ResumeGuard>(&s).expect("production guard is safe");
    assert_eq!(stats.below_floor, 1, "{stats:?}");
    let v = run_scenario::<SkipsPostCheck>(&s).expect_err("mutant streams");
    assert_eq!(v.property, Property::ResumePastEviction, "{v}");
}

// ===========================================================================
// Kernel properties
// ===========================================================================

type GapKernel = fn(bool, u64, u64) -> bool;

/// Monotone: true at age `t` ⇒ true at every `t' < t`.
fn check_gap_monotone(
    f: GapKernel,
    age_only: bool,
    max_age_ms: u64,
    t: u64,
    earlier: u64,
) -> Result<(), String> {
    let t2 = earlier.min(t);
    if f(age_only, max_age_ms, t) && !f(age_only, max_age_ms, t2) {
        return Err(format!("true at {t}, false at {t2} (max_age {max_age_ms})"));
    }
    Ok(())
}

fn small_or_any() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..200_000, any::<u64>()]
}

/// Builds a stream history and a cursor on it; returns (cursor, facts, stream).
/// A stream history and a cursor on it: the scenarios' histories, plus age-only
/// histories rich in overwrites of the oldest message (the supersession-only
/// rule's territory: the floor moves without anything aging out).
fn history() -> impl Strategy<Value = (Setup, Vec<EnvAction>)> {
    let mixed = scenario().prop_map(|s| (s.setup, s.pre));
    let age_step = prop_oneof![
        3 => (1u8..=3, Just(0xff)).prop_map(|(count, scope_bits)| EnvAction::Append { count, scope_bits }),
        3 => (0u8..64).prop_map(|pick| EnvAction::Overwrite { pick }),
        1 => any::<u8>().prop_map(|pick| EnvAction::Overwrite { pick }),
        2 => (1u64..40_000).prop_map(|ms| EnvAction::AdvanceClock { ms }),
    ];
    let age_only = (any::<(u8, bool)>(), vec(age_step, 0..24)).prop_map(|(start, pre)| {
        let setup = Setup {
            retain: Retain::Age { max_age_ms: 60_000 },
            scope: GuardMode::Dense,
            start: Some(start),
        };
        (setup, pre)
    });
    prop_oneof![mixed, age_only]
}

fn resume_point(setup: &Setup, pre: &[EnvAction]) -> (ResumeCursor, StreamFacts, Stream) {
    let mut stream = Stream::new(setup.retain, GuardMode::Dense);
    let mut now = 0;
    for a in pre {
        stream.apply(&mut now, a);
    }
    let (pick, with_time) = setup.start.unwrap_or((1, true));
    let revision = cursor_revision(&stream, pick);
    let written_ms = if with_time {
        stream.written.get(&revision).copied()
    } else {
        None
    };
    let facts = stream.facts(now);
    (
        ResumeCursor {
            revision,
            written_ms,
        },
        facts,
        stream,
    )
}

type PlanKernel = fn(&ResumeCursor, &StreamFacts) -> Result<u64, ExpiryCause>;

/// `Ok(e)` never moves back, never passes the stream's end, and never starts past
/// an evicted revision (every revision after the cursor that is gone was superseded).
fn check_plan(plan: PlanKernel, setup: &Setup, pre: &[EnvAction]) -> Result<(), String> {
    let (cursor, facts, stream) = resume_point(setup, pre);
    if let Ok(e) = plan(&cursor, &facts) {
        if e < cursor.revision {
            return Err(format!("Ok({e}) behind cursor {cursor:?}"));
        }
        if e > facts.last_sequence {
            return Err(format!("Ok({e}) past the stream's end {facts:?}"));
        }
        if let Some(lost) = stream.lost_between(cursor.revision, u64::MAX, &BTreeSet::new()) {
            return Err(format!(
                "Ok({e}) from {cursor:?} skips evicted {lost}; {facts:?}"
            ));
        }
    }
    Ok(())
}

/// Mutant "silent clamp": treat row 5 (below floor) as a resume at the floor.
fn silent_clamp(cursor: &ResumeCursor, facts: &StreamFacts) -> Result<u64, ExpiryCause> {
    match plan_resume(cursor, facts) {
        Err(ExpiryCause::BelowFloor { .. }) => {
            Ok(facts.first_sequence.saturating_sub(1).max(cursor.revision))
        }
        other => other,
    }
}

proptest! {
    #[test]
    fn gap_holds_no_eviction_is_monotone_in_age(
        age_only in any::<bool>(),
        max_age_ms in small_or_any(),
        t in small_or_any(),
        earlier in small_or_any(),
    ) {
        prop_assert!(check_gap_monotone(gap_holds_no_eviction, age_only, max_age_ms, t, earlier).is_ok());
    }

    #[test]
    fn plan_resume_never_skips_an_evicted_gap((setup, pre) in history()) {
        let verdict = check_plan(plan_resume, &setup, &pre);
        prop_assert!(verdict.is_ok(), "{:?}", verdict);
    }

    #[test]
    fn plan_resume_never_moves_back_or_leaves_the_window(
        revision in small_or_any(),
        first in small_or_any(),
        span in small_or_any(),
        written in proptest::option::of(small_or_any()),
        created in proptest::option::of(small_or_any()),
        server_now in proptest::option::of(small_or_any()),
        max_age_ms in small_or_any(),
        age_only in any::<bool>(),
    ) {
        // Any real stream has first ≤ last + 1.
        let last = first.saturating_sub(1).saturating_add(span);
        let limits = if age_only {
            LogLimits { max_age_ms, allow_msg_ttl: false, discard_old: false, max_bytes: 0, max_msgs: 0 }
        } else {
            LogLimits { max_age_ms, ..COUNT_LIMITS }
        };
        let cursor = ResumeCursor { revision, written_ms: written };
        let facts = StreamFacts {
            first_sequence: first,
            last_sequence: last,
            created_ms: created,
            server_now_ms: server_now,
            limits,
        };
        if let Ok(e) = plan_resume(&cursor, &facts) {
            prop_assert!(e >= revision);
            prop_assert!(e <= last);
            prop_assert!(first <= e.saturating_add(1), "the start is inside the window");
        }
    }

    #[test]
    fn resume_start_sequence_never_wraps(revision in prop_oneof![any::<u64>(), Just(u64::MAX), Just(0)]) {
        match resume_start_sequence(revision) {
            Some(start) => {
                prop_assert_eq!(u128::from(start), u128::from(revision) + 1);
                prop_assert!(start > revision && start != 0);
            }
            None => prop_assert_eq!(revision, u64::MAX),
        }
    }
}

#[test]
fn mutant_non_monotone_gap_rule_is_caught() {
    let old_enough: GapKernel =
        |age_only, max_age_ms, t| age_only && max_age_ms > 0 && t.saturating_mul(2) >= max_age_ms;
    let mut runner = deterministic_runner(MUTANT_CASES);
    let strategy = (any::<bool>(), 0u64..1_000, 0u64..1_000, 0u64..1_000);
    let result = runner.run(&strategy, |(a, m, t, e)| {
        check_gap_monotone(old_enough, a, m, t, e).map_err(TestCaseError::fail)
    });
    assert!(matches!(result, Err(TestError::Fail(..))), "{result:?}");
    let mut runner = deterministic_runner(MUTANT_CASES);
    assert!(
        runner
            .run(&strategy, |(a, m, t, e)| {
                check_gap_monotone(gap_holds_no_eviction, a, m, t, e).map_err(TestCaseError::fail)
            })
            .is_ok()
    );
}

#[test]
fn mutant_silent_clamp_is_caught() {
    let mut runner = deterministic_runner(MUTANT_CASES);
    let result = runner.run(&history(), |(setup, pre)| {
        check_plan(silent_clamp, &setup, &pre).map_err(TestCaseError::fail)
    });
    let Err(TestError::Fail(reason, (setup, pre))) = result else {
        panic!("silent clamp survived: {result:?}");
    };
    println!("silent clamp caught: {reason}\n{setup:?} {pre:?}");
}

// ===========================================================================
// Row 18: filter_patterns never exclude a key in scope
// ===========================================================================

/// NATS subject matching, written from the server's rules: tokens split on `.`,
/// `*` matches one token, `>` (a whole last token) matches one or more.
fn nats_subject_matches(filter: &str, subject: &str) -> bool {
    let f: Vec<&str> = filter.split('.').collect();
    let s: Vec<&str> = subject.split('.').collect();
    for (i, token) in f.iter().enumerate() {
        match *token {
            ">" => return i + 1 == f.len() && s.len() > i,
            "*" if i < s.len() => {}
            literal if s.get(i) == Some(&literal) => {}
            _ => return false,
        }
    }
    f.len() == s.len()
}

/// The pattern's literal tokens, when it is `t1.….tn.>` (or `>`).
fn pattern_stem(pattern: &str) -> Option<Vec<&str>> {
    let stem = if pattern == ">" {
        ""
    } else {
        pattern.strip_suffix(".>")?
    };
    Some(if stem.is_empty() {
        Vec::new()
    } else {
        stem.split('.').collect()
    })
}

type FilterKernel = fn(&[&str]) -> Vec<String>;

/// Which part of row 18 a pattern set breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
enum FilterFault {
    /// A key in scope is matched by no pattern (the server would never send it).
    ExcludesKeyInScope(String),
    /// Not sorted ascending, or a duplicate.
    NotSortedUnique(String),
    /// Not of the `stem.>` shape, or one pattern covers another (the server
    /// rejects overlapping filter subjects).
    Overlapping(String),
}

/// docs/verification.md row 18 / docs/semantics.md, "Keys, prefixes, bucket names", against an independent NATS matcher.
fn check_filters(
    patterns_of: FilterKernel,
    prefixes: &[String],
    keys: &[String],
) -> Result<(), FilterFault> {
    let prefixes: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    let patterns = patterns_of(&prefixes);
    for key in keys {
        if key_in_scope(key, &prefixes) {
            let subject = format!("$KV.b.{key}");
            let matched = patterns.iter().any(|p| {
                nats_subject_matches(&format!("$KV.b.{p}"), &subject) && pattern_matches(p, key)
            });
            if !matched {
                return Err(FilterFault::ExcludesKeyInScope(format!(
                    "{key:?} in scope of {prefixes:?}, matched by none of {patterns:?}"
                )));
            }
        }
    }
    if prefixes.is_empty() != patterns.is_empty() {
        return Err(FilterFault::ExcludesKeyInScope(format!(
            "{prefixes:?} → {patterns:?}"
        )));
    }
    if !patterns.windows(2).all(|w| w[0] < w[1]) {
        return Err(FilterFault::NotSortedUnique(format!("{patterns:?}")));
    }
    for p in &patterns {
        let Some(stem) = pattern_stem(p) else {
            return Err(FilterFault::Overlapping(format!("{p:?} is not `stem.>`")));
        };
        if stem.iter().any(|t| t.is_empty() || t.contains(['*', '>'])) {
            return Err(FilterFault::Overlapping(format!(
                "{p:?} has an empty or wildcard token"
            )));
        }
        for q in &patterns {
            if p != q && pattern_stem(q).is_some_and(|q_stem| q_stem.starts_with(&stem)) {
                return Err(FilterFault::Overlapping(format!("{p:?} covers {q:?}")));
            }
        }
    }
    Ok(())
}

/// Mutant: the naive filter, each prefix glued to `>`, kept where the production
/// rule agrees (empty and `.`-ending prefixes). The server reads `app>` as a
/// literal token, so it silently matches nothing.
fn glued_patterns(prefixes: &[&str]) -> Vec<String> {
    let (aligned, ragged): (Vec<&str>, Vec<&str>) = prefixes
        .iter()
        .partition(|p| p.is_empty() || p.ends_with('.'));
    let mut patterns: BTreeSet<String> = filter_patterns(&aligned).into_iter().collect();
    patterns.extend(ragged.iter().map(|p| format!("{p}>")));
    patterns.into_iter().collect()
}

fn token() -> impl Strategy<Value = String> {
    "[ab0_=/-]{1,3}"
}

fn key() -> impl Strategy<Value = String> {
    vec(token(), 1..4).prop_map(|tokens| tokens.join("."))
}

fn prefix() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        4 => (key(), any::<Index>()).prop_map(|(k, cut)| k[..cut.index(k.len() + 1)].to_string()),
        1 => key().prop_map(|k| format!("{k}.")),
    ]
}

/// Random valid prefixes, random keys, and keys built on the prefixes (in scope).
fn prefixes_and_keys() -> impl Strategy<Value = (Vec<String>, Vec<String>)> {
    let suffix = prop_oneof![
        Just(String::new()),
        token(),
        token().prop_map(|t| format!(".{t}")),
        (token(), token()).prop_map(|(a, b)| format!("{a}.{b}")),
    ];
    (
        vec(prefix(), 0..5),
        vec(key(), 0..6),
        vec((any::<Index>(), suffix), 0..10),
    )
        .prop_map(|(prefixes, mut keys, derived)| {
            if !prefixes.is_empty() {
                for (i, s) in derived {
                    let k = format!("{}{s}", prefixes[i.index(prefixes.len())]);
                    if key_is_valid(&k) {
                        keys.push(k);
                    }
                }
            }
            (prefixes, keys)
        })
}

proptest! {
    #[test]
    fn filter_patterns_cover_every_key_in_scope((prefixes, keys) in prefixes_and_keys()) {
        for p in &prefixes {
            prop_assert!(prefix_is_valid(p), "generator made an invalid prefix {:?}", p);
        }
        for k in &keys {
            prop_assert!(key_is_valid(k), "generator made an invalid key {:?}", k);
        }
        let verdict = check_filters(filter_patterns, &prefixes, &keys);
        prop_assert!(verdict.is_ok(), "{:?}", verdict);
    }
}

#[test]
fn mutant_glued_filter_is_caught() {
    // The same checker, failing only on the row-18 coverage fault.
    let mut runner = deterministic_runner(MUTANT_CASES);
    let result = runner.run(
        &prefixes_and_keys(),
        |(prefixes, keys)| match check_filters(glued_patterns, &prefixes, &keys) {
            Err(fault @ FilterFault::ExcludesKeyInScope(_)) => {
                Err(TestCaseError::fail(format!("{fault:?}")))
            }
            _ => Ok(()),
        },
    );
    let Err(TestError::Fail(reason, minimal)) = result else {
        panic!("glued filters survived: {result:?}");
    };
    println!("glued filters caught: {reason}\n{minimal:?}");
}

#[test]
fn nats_matcher_follows_the_server_rules() {
    assert!(nats_subject_matches("$KV.b.>", "$KV.b.a"));
    assert!(nats_subject_matches("$KV.b.a.>", "$KV.b.a.x.y"));
    assert!(!nats_subject_matches("$KV.b.a.>", "$KV.b.a"));
    assert!(!nats_subject_matches("$KV.b.app>", "$KV.b.app.x"));
    assert!(!nats_subject_matches("$KV.b.app>", "$KV.b.appx"));
    assert!(nats_subject_matches("$KV.b.*.x", "$KV.b.a.x"));
    assert!(!nats_subject_matches("$KV.b.a", "$KV.b.a.b"));
}
