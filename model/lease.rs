//! The `lease` model (docs/verification.md, "Stateright models", matrix row 9;
//! docs/protocols/export-lease.md, "Tests"): replicas that each drive the production
//! [`LeaseMachine`] once per round, the way `ExportLease::try_acquire` drives it, against
//! one CAS register (the lease key), with per-node wall clocks offset from real time,
//! monotonic clocks at fixed rates, pauses, crashes, completions and abandons. Neither the
//! takeover rule nor the completion rule (`completion_write`, `completion_outcome`) is
//! re-implemented here; mutations are model-side wrappers around the kernels' inputs or
//! the executor's store calls (docs/verification.md, "Mutations").
//!
//! Shared by the `model` test target (`mod lease;`).

use std::fmt;

use stateright::{Model, Property};

#[path = "lease/executor.rs"]
mod executor;
#[path = "lease/register.rs"]
mod register;
#[cfg(test)]
#[path = "lease/tests.rs"]
mod tests;

pub use executor::{Node, Seen};
pub use register::{Grant, Origin, Register};

// ===========================================================================
// Configuration: start, bounds, mutation
// ===========================================================================

/// What the lease key holds when the run starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Start {
    /// Nothing: the first round's `create` wins.
    Empty,
    /// Bytes that are not a lease record (a stray or corrupt value): it must be
    /// taken over after `first_seen + grace`, never wedge the fleet.
    Junk,
}

/// Every limit of one run of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bounds {
    /// Replicas contending for the key.
    pub nodes: u8,
    /// The lease `ttl` every round asks for (whole seconds, as the record keeps).
    pub ttl_s: u64,
    /// The takeover grace (`with_takeover_grace`).
    pub grace_ms: u64,
    /// Replica 0's wall clock shows real time; every other replica's runs
    /// `0..=skew_s` seconds ahead (chosen per run).
    pub skew_s: u64,
    /// The monotonic rates a replica's clock may run at (ms per real second,
    /// chosen per replica and run; 1000 is real time).
    pub rates_ms_per_s: &'static [u64],
    /// An idle replica runs a round at least this often (it may run one in any
    /// second, at most one per second).
    pub period_s: u64,
    /// A holder resolves its guard (complete or abandon) within this many seconds
    /// of winning, unless paused.
    pub export_s: u64,
    /// Process crashes over the run.
    pub crashes: u8,
    /// Stalls over the run: a replica stops in the middle of `try_acquire` (a
    /// slow store call, a stop-the-world pause) with a command in flight.
    pub stalls: u8,
    /// How long a stall lasts (seconds).
    pub stall_s: u64,
    /// Pauses over the run: a holder stops exporting with its guard held.
    pub pauses: u8,
    /// How long a pause lasts (seconds).
    pub pause_s: u64,
    /// Abandons over the run.
    pub abandons: u8,
    /// Crashes, stalls, pauses and abandons happen at or before this real time,
    /// so the rest of the run can show that the fleet recovers.
    pub faults_until_s: u64,
    /// The run ends at this real time (rounds in flight still finish).
    pub end_s: u64,
}

/// Monotonic clocks at real time.
const REAL_RATE: &[u64] = &[1000];
/// A replica's monotonic clock may run 50 % fast: over a 2 s lease that is the
/// whole 1 s grace.
const WITHIN_GRACE_RATES: &[u64] = &[1000, 1500];
/// A replica's monotonic clock may run three times fast: the local rule's
/// `d + grace` = 3 s of observation pass in 1 s.
const BEYOND_GRACE_RATES: &[u64] = &[1000, 3000];

impl Bounds {
    /// The default run (seconds): two replicas, wall clocks 1 s apart, monotonic
    /// clocks at real rate, a 1 s stall inside `try_acquire` (the grace), a crash,
    /// a 3 s pause of a holder and an abandon.
    pub const DEFAULT: Bounds = Bounds {
        nodes: 2,
        ttl_s: 2,
        grace_ms: 1000,
        skew_s: 1,
        rates_ms_per_s: REAL_RATE,
        period_s: 2,
        export_s: 1,
        crashes: 1,
        stalls: 1,
        stall_s: 1,
        pauses: 1,
        pause_s: 3,
        abandons: 1,
        faults_until_s: 2,
        end_s: 8,
    };

    /// The junk start: no faults needed, the key is dead from the beginning.
    pub const JUNK: Bounds = Bounds {
        crashes: 0,
        stalls: 0,
        pauses: 0,
        end_s: 6,
        ..Bounds::DEFAULT
    };

    /// Wall clocks skewed beyond a lease duration (3 s against a 2 s `ttl`).
    pub const WALL_SKEW_BEYOND_TTL: Bounds = Bounds {
        skew_s: 3,
        stalls: 0,
        pauses: 0,
        end_s: 10,
        ..Bounds::DEFAULT
    };

    /// One monotonic clock may gain the whole grace over a lease duration.
    pub const RATE_WITHIN_GRACE: Bounds = Bounds {
        rates_ms_per_s: WITHIN_GRACE_RATES,
        crashes: 0,
        stalls: 0,
        pauses: 0,
        ..Bounds::DEFAULT
    };

    /// One monotonic clock may gain more than the grace.
    pub const RATE_BEYOND_GRACE: Bounds = Bounds {
        rates_ms_per_s: BEYOND_GRACE_RATES,
        crashes: 0,
        stalls: 0,
        pauses: 0,
        ..Bounds::DEFAULT
    };

    /// A stall inside `try_acquire` longer than the grace.
    pub const STALL_BEYOND_GRACE: Bounds = Bounds {
        stall_s: 3,
        pauses: 0,
        end_s: 9,
        ..Bounds::DEFAULT
    };

    /// The `#[ignore]`d deep run: three replicas, one crash and one abandon (with
    /// every fault of `DEFAULT` too, three replicas exceed 24 GiB of states).
    pub const DEEP: Bounds = Bounds {
        nodes: 3,
        stalls: 0,
        pauses: 0,
        end_s: 7,
        ..Bounds::DEFAULT
    };

    /// The `#[ignore]`d deep run: two replicas, two of every fault, a longer run.
    pub const DEEP_FAULTS: Bounds = Bounds {
        crashes: 2,
        stalls: 2,
        pauses: 2,
        abandons: 2,
        faults_until_s: 4,
        end_s: 11,
        ..Bounds::DEFAULT
    };

    /// Whether every clock stays within what the local-observation rule assumes:
    /// a monotonic clock gains at most `grace` over a lease duration. (Wall-clock
    /// skew is not part of the assumption: the rule is immune to it. Stalls are
    /// not either: every answer is judged with the clocks read when it arrived.)
    pub fn clocks_within_bound(&self) -> bool {
        let duration_ms = self.ttl_s * 1000;
        self.rates_ms_per_s
            .iter()
            .all(|rate| rate * self.ttl_s <= duration_ms + self.grace_ms)
    }
}

/// A deliberately broken variant (docs/verification.md, "Mutations"), injected model-side
/// without touching the production machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mutation {
    /// The production machine and executor, unaltered.
    None,
    /// "Take over on wall clock alone": every round reads a monotonic clock past
    /// any `takeover_at` (`Millis(u64::MAX)`), so `Settling` becomes `TakeOver`
    /// and only the wall-clock expiry decides.
    WallClockOnly,
    /// "Take over without CAS": the executor performs `CasUpdate` as an
    /// unconditional put instead of `update` on the observed revision.
    TakeOverWithoutCas,
    /// "Treat an unparseable record as live forever" (the wedge): the executor's
    /// read hands the machine a record expiring at `u64::MAX` in place of any
    /// non-empty value that does not decode.
    JunkLiveForever,
    /// "Judge with the round's start clock": the machine as first designed (decision 30),
    /// sighting and deciding with the clocks read before `Create` (`handle` instead of
    /// `handle_at`). A round that stalls before its entry read dates its sighting before
    /// the revision was written and takes over early; the model found this and the
    /// production executor now feeds every answer with the clocks read when it arrived.
    JudgeAtRoundStart,
    /// "Retry an overran completion": the completion kernel's `Overran` row broken. A
    /// `complete` whose CAS finds the key moved re-reads it and writes the completed
    /// record over the latest revision (as for an ordinary CAS conflict) instead of
    /// giving the round up, then stores the landed completion's sighting.
    RetryOverranCompletion,
}

impl Mutation {
    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Mutation::None => "none",
            Mutation::WallClockOnly => "wall-clock-only",
            Mutation::TakeOverWithoutCas => "take-over-without-cas",
            Mutation::JunkLiveForever => "junk-live-forever",
            Mutation::JudgeAtRoundStart => "judge-at-round-start",
            Mutation::RetryOverranCompletion => "retry-overran-completion",
        }
    }
}

/// The model: a start, bounds, and the decisions
/// (production, or one broken by a mutation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseModel {
    /// What the key holds at the start.
    pub start: Start,
    /// The run's limits.
    pub bounds: Bounds,
    /// The decision altered, if any.
    pub mutation: Mutation,
}

impl LeaseModel {
    /// The production lease from `start` within `bounds`.
    pub fn new(start: Start, bounds: Bounds) -> Self {
        Self {
            start,
            bounds,
            mutation: Mutation::None,
        }
    }

    /// The same model with one decision broken.
    pub fn mutated(self, mutation: Mutation) -> Self {
        Self { mutation, ..self }
    }
}

impl fmt::Display for LeaseModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} start, {} nodes, skew {} s, rates {:?}, stall {} s, mutation {}",
            self.start,
            self.bounds.nodes,
            self.bounds.skew_s,
            self.bounds.rates_ms_per_s,
            self.bounds.stall_s,
            self.mutation.name()
        )
    }
}

// ===========================================================================
// State and actions
// ===========================================================================

/// The junk a `Start::Junk` key holds: a truncated record.
pub const JUNK: &[u8] = br#"{"holder_id":"node-9","acquired_at_unix":17"#;

/// One state of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseState {
    /// Real time (seconds).
    pub now_s: u64,
    /// The lease key.
    pub register: Register,
    /// The replicas.
    pub nodes: Vec<Node>,
    /// Won rounds still live in real time and not abandoned (sorted), crashed
    /// holders' rounds included: nobody can tell a crashed holder from a paused one.
    pub holders: Vec<Grant>,
    /// Crashes so far.
    pub crashes: u8,
    /// Stalls so far.
    pub stalls: u8,
    /// Pauses so far.
    pub pauses: u8,
    /// Abandons so far.
    pub abandons: u8,
    /// History bits for the properties.
    pub seen: Seen,
}

impl LeaseState {
    /// Whether the process that won `grant` is still running.
    pub fn writer_alive(&self, grant: Grant) -> bool {
        self.nodes
            .get(usize::from(grant.node))
            .is_some_and(|node| node.life == grant.life)
    }

    /// Whether the key holds a record written by a process still running.
    pub fn held_by_live_replica(&self) -> bool {
        self.register
            .entry
            .as_ref()
            .and_then(|stored| stored.origin.grant())
            .is_some_and(|grant| self.writer_alive(grant))
    }
}

/// A step of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Real time moves one second.
    Tick,
    /// The replica starts `try_acquire`: it reads its clocks, builds the machine
    /// and performs `Create`.
    StartRound(u8),
    /// The replica performs its round's pending command (`ReadEntry` or
    /// `CasUpdate`) and feeds the completion.
    Perform(u8),
    /// The holder's `complete(cursor)`.
    Complete(u8),
    /// The holder's `abandon()`.
    Abandon(u8),
    /// The replica's process crashes and restarts empty.
    Crash(u8),
    /// The replica stops in the middle of its round for `stall_s`.
    Stall(u8),
    /// The holder stops doing anything for `pause_s`.
    Pause(u8),
}

// ===========================================================================
// The model
// ===========================================================================

/// Property names (the tests look them up by these).
pub mod names {
    /// docs/protocols/export-lease.md, "Tests", docs/verification.md row 9.
    pub const NO_PREMATURE_TAKEOVER: &str =
        "never a takeover while the holder's lease is live in real time";
    /// Row 9 ("at most one live lease holder per round under bounded skew").
    pub const ONE_LIVE_HOLDER: &str = "no two replicas hold a live lease at once";
    /// CAS decides (docs/protocols/export-lease.md, "The executor (`ExportLease`)"
    /// guarantees).
    pub const TAKEOVER_REPLACES_JUDGED: &str = "a takeover replaces exactly the revision it judged";
    /// The executor contract (docs/architecture.md, "Kernels and machines";
    /// docs/protocols/export-lease.md, "One round").
    pub const DRIVE_LOOP: &str = "the lease machine keeps the drive-loop contract";
    /// No lost round: the lease never wedges.
    pub const EVENTUALLY_HELD: &str =
        "a dead, abandoned or junk round is eventually taken over by a live replica";
    /// Witness.
    pub const TAKEOVER: &str = "an expired record is taken over";
    /// Witness.
    pub const CRASHED_ROUND_TAKEN_OVER: &str = "a crashed holder's round is taken over";
    /// Witness.
    pub const ABANDON_TAKEN_OVER_AT_ONCE: &str = "an abandon leads to an immediate takeover";
    /// Witness.
    pub const JUNK_TAKEN_OVER: &str = "junk at the key is taken over";
    /// Witness.
    pub const COMPLETED: &str = "a completion lands";
    /// Witness.
    pub const COMPLETION_SKIPPED: &str = "a completion after a takeover is skipped";
    /// Witness.
    pub const SETTLING: &str = "a record expired by wall clock waits for local observation";
    /// Witness.
    pub const CAS_RACE_LOST: &str = "two contenders judge one revision and the CAS decides";
    /// Witness.
    pub const DUPLICATE_EXPORT: &str = "a paused holder exports while another replica holds";
}

impl LeaseModel {
    /// Whether the replica must act before real time may move on (fairness: a
    /// running replica finishes its round, resolves its guard within `export_s`,
    /// and runs a round every `period_s`).
    fn must_act(&self, state: &LeaseState, node: &Node) -> bool {
        if node.is_paused() {
            return false;
        }
        if node.round.is_some() {
            return true;
        }
        if let Some(guard) = &node.guard {
            return state.now_s >= guard.won_s + self.bounds.export_s;
        }
        node.last_round_s
            .is_none_or(|last| state.now_s >= last + self.bounds.period_s)
    }

    /// The eventual goal: the run is over and the key holds a live replica's record.
    fn ends_held(&self, state: &LeaseState) -> bool {
        state.now_s == self.bounds.end_s && state.held_by_live_replica()
    }
}

impl Model for LeaseModel {
    type State = LeaseState;
    type Action = Action;

    fn init_states(&self) -> Vec<Self::State> {
        let register = match self.start {
            Start::Empty => Register::empty(),
            Start::Junk => Register::holding(JUNK.to_vec(), Origin::Junk),
        };
        let mut fleets: Vec<Vec<Node>> = vec![Vec::new()];
        for index in 0..self.bounds.nodes {
            let offsets = if index == 0 { 0 } else { self.bounds.skew_s };
            let clocks: Vec<(u64, u64)> = (0..=offsets)
                .flat_map(|offset| {
                    self.bounds
                        .rates_ms_per_s
                        .iter()
                        .map(move |&rate| (offset, rate))
                })
                .collect();
            fleets = fleets
                .into_iter()
                .flat_map(|fleet| {
                    clocks.iter().map(move |&(offset, rate)| {
                        let mut fleet = fleet.clone();
                        fleet.push(Node::new(offset, rate));
                        fleet
                    })
                })
                .collect();
        }
        fleets
            .into_iter()
            .map(|nodes| LeaseState {
                now_s: 0,
                register: register.clone(),
                nodes,
                holders: Vec::new(),
                crashes: 0,
                stalls: 0,
                pauses: 0,
                abandons: 0,
                seen: Seen::default(),
            })
            .collect()
    }

    fn actions(&self, state: &Self::State, actions: &mut Vec<Self::Action>) {
        let b = &self.bounds;
        let running = state.now_s < b.end_s;
        let faults = state.now_s <= b.faults_until_s;
        for (index, node) in state.nodes.iter().enumerate() {
            let id = index as u8;
            if node.is_paused() {
                continue;
            }
            if node.round.is_some() {
                actions.push(Action::Perform(id));
            } else if node.guard.is_some() {
                if running {
                    actions.push(Action::Complete(id));
                }
                if running && faults && state.abandons < b.abandons {
                    actions.push(Action::Abandon(id));
                }
            } else if running && node.last_round_s != Some(state.now_s) {
                actions.push(Action::StartRound(id));
            }
            if running && faults {
                if state.crashes < b.crashes {
                    actions.push(Action::Crash(id));
                }
                if state.stalls < b.stalls && node.round.as_ref().is_some_and(|r| !r.stalled) {
                    actions.push(Action::Stall(id));
                }
                if state.pauses < b.pauses && node.guard.is_some() {
                    actions.push(Action::Pause(id));
                }
            }
        }
        if running && !state.nodes.iter().any(|n| self.must_act(state, n)) {
            actions.push(Action::Tick);
        }
    }

    fn next_state(&self, last: &Self::State, action: Self::Action) -> Option<Self::State> {
        let mut state = last.clone();
        match action {
            Action::Tick => {
                state.now_s += 1;
                let now_s = state.now_s;
                for node in &mut state.nodes {
                    if node.paused_until_s.is_some_and(|until| until <= now_s) {
                        node.paused_until_s = None;
                    }
                }
                let ttl_s = self.bounds.ttl_s;
                state.holders.retain(|h| now_s < h.acquired_s + ttl_s);
            }
            Action::StartRound(id) => self.start_round(&mut state, usize::from(id)),
            Action::Perform(id) => self.perform(&mut state, usize::from(id)),
            Action::Complete(id) => self.complete(&mut state, usize::from(id)),
            Action::Abandon(id) => self.abandon(&mut state, usize::from(id)),
            Action::Crash(id) => {
                state.crashes += 1;
                state.nodes[usize::from(id)].crash();
            }
            Action::Stall(id) => {
                state.stalls += 1;
                let node = &mut state.nodes[usize::from(id)];
                node.paused_until_s = Some(state.now_s + self.bounds.stall_s);
                node.round.as_mut()?.stalled = true;
            }
            Action::Pause(id) => {
                state.pauses += 1;
                state.nodes[usize::from(id)].paused_until_s =
                    Some(state.now_s + self.bounds.pause_s);
            }
        }
        Some(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        use names::*;
        let b = &self.bounds;
        let mut properties = vec![
            Property::always(NO_PREMATURE_TAKEOVER, |_, s: &LeaseState| {
                !s.seen.intersects(Seen::PREMATURE_TAKEOVER)
            }),
            Property::always(ONE_LIVE_HOLDER, |_, s: &LeaseState| {
                !s.seen.intersects(Seen::TWO_LIVE_HOLDERS)
            }),
            Property::always(TAKEOVER_REPLACES_JUDGED, |_, s: &LeaseState| {
                !s.seen.intersects(Seen::TAKEOVER_OF_UNJUDGED_REVISION)
            }),
            Property::always(DRIVE_LOOP, |_, s: &LeaseState| {
                !s.seen.intersects(Seen::CONTRACT_BROKEN)
            }),
            Property::eventually(EVENTUALLY_HELD, |m: &LeaseModel, s| m.ends_held(s)),
            Property::sometimes(TAKEOVER, |_, s: &LeaseState| {
                s.seen.intersects(Seen::TAKEOVER)
            }),
            Property::sometimes(COMPLETED, |_, s: &LeaseState| {
                s.seen.intersects(Seen::COMPLETED)
            }),
            Property::sometimes(SETTLING, |_, s: &LeaseState| {
                s.seen.intersects(Seen::SETTLING)
            }),
        ];
        if b.nodes >= 2 {
            properties.push(Property::sometimes(CAS_RACE_LOST, |_, s: &LeaseState| {
                s.seen.intersects(Seen::CAS_RACE_LOST)
            }));
        }
        if b.abandons > 0 {
            properties.push(Property::sometimes(
                ABANDON_TAKEN_OVER_AT_ONCE,
                |_, s: &LeaseState| s.seen.intersects(Seen::ABANDON_TAKEN_OVER_AT_ONCE),
            ));
        }
        if b.crashes > 0 {
            properties.push(Property::sometimes(
                CRASHED_ROUND_TAKEN_OVER,
                |_, s: &LeaseState| s.seen.intersects(Seen::CRASHED_ROUND_TAKEN_OVER),
            ));
        }
        if b.pauses > 0 {
            properties.push(Property::sometimes(
                COMPLETION_SKIPPED,
                |_, s: &LeaseState| s.seen.intersects(Seen::COMPLETION_SKIPPED),
            ));
            properties.push(Property::sometimes(
                DUPLICATE_EXPORT,
                |_, s: &LeaseState| s.seen.intersects(Seen::DUPLICATE_EXPORT),
            ));
        }
        if self.start == Start::Junk {
            properties.push(Property::sometimes(JUNK_TAKEN_OVER, |_, s: &LeaseState| {
                s.seen.intersects(Seen::JUNK_TAKEN_OVER)
            }));
        }
        properties
    }
}
