//! The environment of the resume-guard properties: a simulated stream log
//! (retention, supersession, eviction, the clock), the scenarios and histories
//! generated over it, and a resume point on a history. Two test binaries use
//! it (`prop_resume_guard.rs`, `prop_resume_kernels.rs`), each a part.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use kvfold::protocol::resume::{GuardMode, LogLimits, ResumeCursor, StreamFacts};
use proptest::collection::vec;
use proptest::prelude::*;

// ===========================================================================
// The environment: a simulated stream log
// ===========================================================================

/// Server Unix ms at harness time 0 (write times are never 0 = unknown).
pub const BASE_MS: u64 = 1_700_000_000_000;

/// What the mutants answer a swallowed probe with: every check passes.
pub const ALWAYS_PASSES: StreamFacts = StreamFacts {
    first_sequence: 0,
    last_sequence: u64::MAX,
    created_ms: None,
    server_now_ms: None,
    limits: COUNT_LIMITS,
};

/// discard-old with a byte limit, as kvfold creates buckets: never age-only.
pub const COUNT_LIMITS: LogLimits = LogLimits {
    max_age_ms: 0,
    allow_msg_ttl: false,
    discard_old: true,
    max_bytes: 1 << 20,
    max_msgs: 0,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retain {
    /// Head eviction by count/bytes (`EvictHead`), never by age.
    Count,
    /// Age-only: messages older than `max_age_ms` leave the head as the clock moves.
    Age { max_age_ms: u64 },
}

/// Why a revision left the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// A newer write to the same key removed it (per-key history): benign.
    Superseded,
    /// A limit removed it from the head: loss, unless someone received it first.
    Evicted,
}

#[derive(Clone, Debug)]
pub struct Stream {
    pub retain: Retain,
    /// Every delivery of an All-scope watch is in scope.
    pub all_in_scope: bool,
    /// Retained revisions → in scope of the watch.
    pub log: BTreeMap<u64, bool>,
    /// Every revision ever written → server write time.
    pub written: BTreeMap<u64, u64>,
    /// Every removed revision → why.
    pub fate: BTreeMap<u64, Fate>,
    pub last: u64,
}

impl Stream {
    pub fn new(retain: Retain, scope: GuardMode) -> Self {
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
    pub fn first(&self) -> u64 {
        self.log.keys().next().copied().unwrap_or(self.last + 1)
    }

    pub fn limits(&self) -> LogLimits {
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

    pub fn facts(&self, now: u64) -> StreamFacts {
        StreamFacts {
            first_sequence: self.first(),
            last_sequence: self.last,
            created_ms: Some(BASE_MS - 1),
            server_now_ms: Some(BASE_MS + now),
            limits: self.limits(),
        }
    }

    pub fn append(&mut self, now: u64, in_scope: bool) {
        self.last += 1;
        self.log.insert(self.last, in_scope || self.all_in_scope);
        self.written.insert(self.last, BASE_MS + now);
    }

    pub fn apply(&mut self, now: &mut u64, action: &EnvAction) {
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
    pub fn lost_between(&self, after: u64, before: u64, received: &BTreeSet<u64>) -> Option<u64> {
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
pub fn cursor_revision(stream: &Stream, pick: u8) -> u64 {
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
pub enum EnvAction {
    Append { count: u8, scope_bits: u8 },
    Overwrite { pick: u8 },
    EvictHead { count: u8 },
    AdvanceClock { ms: u64 },
}

#[derive(Clone, Debug)]
pub enum Action {
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
pub struct Setup {
    pub retain: Retain,
    pub scope: GuardMode,
    /// `None`: state-sync (`fresh`); else a cursor pick and whether it carries a write time.
    pub start: Option<(u8, bool)>,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub setup: Setup,
    /// History before the watch starts.
    pub pre: Vec<EnvAction>,
    pub run: Vec<Action>,
}

pub fn env_action() -> impl Strategy<Value = EnvAction> {
    prop_oneof![
        4 => (1u8..=3, any::<u8>())
            .prop_map(|(count, scope_bits)| EnvAction::Append { count, scope_bits }),
        3 => any::<u8>().prop_map(|pick| EnvAction::Overwrite { pick }),
        2 => (1u8..=3).prop_map(|count| EnvAction::EvictHead { count }),
        2 => prop_oneof![Just(1_000u64), Just(10_000), Just(25_000), Just(40_000)]
            .prop_map(|ms| EnvAction::AdvanceClock { ms }),
    ]
}

pub fn action() -> impl Strategy<Value = Action> {
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

pub fn scenario() -> impl Strategy<Value = Scenario> {
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

/// A stream history and a cursor on it: the scenarios' histories, plus age-only
/// histories rich in overwrites of the oldest message (the supersession-only
/// rule's territory: the floor moves without anything aging out).
pub fn history() -> impl Strategy<Value = (Setup, Vec<EnvAction>)> {
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

/// Builds a stream history and a cursor on it; returns (cursor, facts, stream).
pub fn resume_point(setup: &Setup, pre: &[EnvAction]) -> (ResumeCursor, StreamFacts, Stream) {
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
