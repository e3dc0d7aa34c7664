//! The `resume` model's executor: it performs the production guard's commands in order,
//! each completely before the next (docs/nats-backend.md, "The watch loop"), records what
//! every forward passed over for the properties, and hosts the mutation wrappers (probe
//! answers altered model-side, never the guard).

use kvfold::protocol::resume::{
    ExpiryCause, GuardCommand, GuardEvent, LogLimits, ResumeGuard, StreamFacts,
};
use kvfold::protocol::time::Millis;

use super::stream::{
    Consumer, Fate, Message, SERVER_CLOCK_BASE_MS, STREAM_CREATED_MS, first_sequence, message,
};
use super::{Mutation, ResumeModel, ResumeState, Scope};

/// What the "trust a clamped start" wrapper claims: an age-only bucket whose age
/// limit dwarfs the cursor's age, i.e. "every message below the floor was
/// superseded".
const CLAIMED_AGE_ONLY_LIMITS: LogLimits = LogLimits {
    max_age_ms: 1 << 40,
    allow_msg_ttl: false,
    discard_old: false,
    max_bytes: 0,
    max_msgs: 0,
};

/// Which check a stream probe answers (known from the event that queued it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Probe {
    /// Before the consumer is created (G1).
    PreCheck,
    /// After the consumer exists (G4).
    PostCheck,
    /// A gapped delivery is held (G9).
    Floor,
    /// The no-traffic backstop (G11).
    Idle,
}

/// The guard command whose completion the executor is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outstanding {
    /// `ProbeStream`.
    Probe(Probe),
    /// `CreateConsumer`.
    Create {
        /// The start sequence the guard asked for.
        start_sequence: u64,
    },
    /// `CreateSnapshotConsumer` (a `fresh` guard's own consumer, G26); the
    /// `StartStateSync` action completes it at once.
    Snapshot,
}

/// `ExpiryCause` without its numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// `BelowFloor`.
    BelowFloor,
    /// `AheadOfStream`.
    AheadOfStream,
    /// `Recreated`.
    Recreated,
    /// `ServerRefused`.
    ServerRefused,
    /// `FloorPassed`.
    FloorPassed,
}

impl Cause {
    fn of(cause: &ExpiryCause) -> Self {
        match cause {
            ExpiryCause::BelowFloor { .. } => Cause::BelowFloor,
            ExpiryCause::AheadOfStream { .. } => Cause::AheadOfStream,
            ExpiryCause::Recreated { .. } => Cause::Recreated,
            ExpiryCause::ServerRefused => Cause::ServerRefused,
            ExpiryCause::FloorPassed { .. } => Cause::FloorPassed,
        }
    }
}

/// How the watch call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum End {
    /// `Expired(cause)`: the call returns `CursorExpired`.
    Expired {
        /// The cause, without its numbers.
        cause: Cause,
        /// The probe whose answer expired the watch.
        at: Option<Probe>,
        /// Whether it was the resume a reconnect started (G16).
        after_reconnect: bool,
    },
    /// `Fail(error)`.
    Failed,
}

/// The history the properties judge, as sticky bits (history lives in the
/// model, never in the machine).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Seen(u16);

impl Seen {
    /// A forward passed over an in-scope revision that was evicted, never forwarded.
    pub const FORWARD_PAST_EVICTION: Seen = Seen(1);
    /// A forward passed over an in-scope revision that is still retained.
    pub const FORWARD_PAST_RETAINED: Seen = Seen(1 << 1);
    /// A forward of a revision at or below the last one forwarded.
    pub const FORWARD_NOT_INCREASING: Seen = Seen(1 << 2);
    /// A `Skip` dropped a revision above the last one forwarded.
    pub const SKIP_ABOVE_FORWARDED: Seen = Seen(1 << 3);
    /// A `Forward` after `Expired` or `Fail`.
    pub const FORWARD_AFTER_END: Seen = Seen(1 << 4);
    /// A drive-loop contract breach: an event rejected, a command queued behind
    /// one awaiting its completion or behind the end, or a `Forward`/`Skip`
    /// without the matching delivery in hand.
    pub const CONTRACT_BROKEN: Seen = Seen(1 << 5);
    /// Every bit an `always` property forbids.
    pub const VIOLATIONS: Seen = Seen((1 << 6) - 1);
    /// Witness: a forward passed over a superseded in-scope revision.
    pub const BENIGN_GAP_FORWARDED: Seen = Seen(1 << 6);
    /// Witness: a redelivery was skipped.
    pub const REDELIVERY_SKIPPED: Seen = Seen(1 << 7);
    /// Witness: a post-check passed on a resume point above the resume cursor
    /// (`plan_resume` row 4, the supersession-only resume).
    pub const RESUMED_ACROSS_SUPERSEDED_GAP: Seen = Seen(1 << 8);
    /// Witness: a resume started by a reconnect passed both checks (G16).
    pub const RERESUMED: Seen = Seen(1 << 9);
    /// Witness: a reconnect left a state-sync consumer in place (G17).
    pub const KEPT_STATE_SYNC_CONSUMER: Seen = Seen(1 << 10);
    /// Witness: a forward after a resume passed both checks.
    pub const FORWARDED_AFTER_CHECKS: Seen = Seen(1 << 11);
    /// Witness: a consumer fault after a reconnect started a resume (G24).
    pub const FAULT_RERESUMED: Seen = Seen(1 << 12);

    /// Whether any bit of `bits` is set.
    pub fn intersects(self, bits: Seen) -> bool {
        self.0 & bits.0 != 0
    }

    pub(super) fn insert(&mut self, bits: Seen) {
        self.0 |= bits.0;
    }
}

/// The watch call: the production guard plus what its executor holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Watch {
    /// The production machine.
    pub guard: ResumeGuard,
    /// The cursor the call resumed from.
    pub cursor: u64,
    /// The model's own frontier: the last revision forwarded, or the cursor.
    pub forwarded_to: u64,
    /// The command awaiting its completion.
    pub outstanding: Option<Outstanding>,
    /// The consumer, while one exists.
    pub consumer: Option<Consumer>,
    /// The delivery handed to the guard and not yet forwarded or skipped.
    pub in_hand: Option<u64>,
    /// The client reconnected and the executor has not fed `Reconnected` yet.
    pub reconnect_pending: bool,
    /// A resume is between its pre-check and a passing post-check.
    pub resuming: bool,
    /// The watch has a position a reconnect resumes from (a cursor, or a
    /// forwarded delivery of a state-sync watch): a reconnect runs the checks
    /// (G16) rather than keeping the consumer (G17).
    pub anchored: bool,
    /// The watch's scope is judged `Dense` now (a resumed, or re-resumed,
    /// All-scope watch): its checks can see an eviction at any moment. Model
    /// knowledge from the scope and start, never read from the guard.
    pub dense: bool,
    /// The current (or last) resume was started by a reconnect.
    pub after_reconnect: bool,
    /// Resumes that passed both checks.
    pub resumes_passed: u8,
    /// Reconnects so far.
    pub reconnects: u8,
    /// Consumer self-recreations so far.
    pub replays: u8,
    /// Timer expiries so far.
    pub ticks: u8,
    /// (first, last) read by the last pre-check; kept only by the "skip the
    /// post-create re-check" wrapper.
    pub pre_check_facts: Option<(u64, u64)>,
    /// How the call ended.
    pub end: Option<End>,
    /// What the properties judge.
    pub seen: Seen,
}

impl Watch {
    pub(super) fn new(guard: ResumeGuard, cursor: u64) -> Self {
        Self {
            guard,
            cursor,
            forwarded_to: cursor,
            outstanding: None,
            consumer: None,
            in_hand: None,
            reconnect_pending: false,
            resuming: false,
            anchored: false,
            dense: false,
            after_reconnect: false,
            resumes_passed: 0,
            reconnects: 0,
            replays: 0,
            ticks: 0,
            pre_check_facts: None,
            end: None,
            seen: Seen::default(),
        }
    }
}

impl ResumeModel {
    /// Feeds one event, then performs every command it queued, in order.
    pub(super) fn feed(
        &self,
        watch: &mut Watch,
        log: &[Message],
        event: GuardEvent,
        answered: Option<Probe>,
    ) {
        // Which check a `ProbeStream` queued by this event performs.
        let asks = match event {
            GuardEvent::ConsumerCreated { .. } => Probe::PostCheck,
            GuardEvent::Delivered { .. } => Probe::Floor,
            GuardEvent::Tick { .. } => Probe::Idle,
            _ => Probe::PreCheck,
        };
        if watch.guard.handle(event).is_err() {
            // The executor feeds only what the guard's phase accepts
            // (docs/protocols/resume-guard.md).
            watch.seen.insert(Seen::CONTRACT_BROKEN);
            return;
        }
        self.perform_commands(watch, log, asks, answered);
    }

    pub(super) fn perform_commands(
        &self,
        watch: &mut Watch,
        log: &[Message],
        asks: Probe,
        answered: Option<Probe>,
    ) {
        while let Some(command) = watch.guard.poll_command() {
            if watch.outstanding.is_some() || watch.end.is_some() {
                // A command with a completion is the last one queued until it
                // completes; nothing follows the end.
                watch.seen.insert(Seen::CONTRACT_BROKEN);
            }
            match command {
                GuardCommand::ProbeStream => watch.outstanding = Some(Outstanding::Probe(asks)),
                GuardCommand::CreateConsumer { start_sequence } => {
                    watch.outstanding = Some(Outstanding::Create { start_sequence });
                }
                // A `fresh` guard asks for it once, at the start (G26).
                GuardCommand::CreateSnapshotConsumer => {
                    watch.outstanding = Some(Outstanding::Snapshot);
                }
                GuardCommand::DropConsumer => {
                    watch.consumer = None;
                    watch.in_hand = None;
                }
                GuardCommand::Forward => self.forward(watch, log),
                GuardCommand::Skip { revision } => {
                    if watch.in_hand != Some(revision) {
                        watch.seen.insert(Seen::CONTRACT_BROKEN);
                    }
                    watch.seen.insert(if revision > watch.forwarded_to {
                        Seen::SKIP_ABOVE_FORWARDED
                    } else {
                        Seen::REDELIVERY_SKIPPED
                    });
                    watch.in_hand = None;
                }
                GuardCommand::Expired(cause) => {
                    watch.end = Some(End::Expired {
                        cause: Cause::of(&cause),
                        at: answered,
                        after_reconnect: watch.after_reconnect,
                    });
                    watch.consumer = None;
                    watch.resuming = false;
                }
                GuardCommand::Fail(_) => {
                    watch.end = Some(End::Failed);
                    watch.consumer = None;
                    watch.resuming = false;
                }
            }
        }
    }

    /// The executor saw the connect counter grow: it feeds `Reconnected` (unless
    /// the "ignore reconnects" mutant) and performs what the guard asks. Returns
    /// whether the guard left streaming to resume (G16); the model reads that off
    /// the guard, never predicts it.
    pub(super) fn notice_reconnect(&self, watch: &mut Watch, log: &[Message], now: Millis) -> bool {
        watch.reconnect_pending = false;
        if self.mutation == Mutation::IgnoreReconnect {
            return false;
        }
        self.feed(watch, log, GuardEvent::Reconnected { now }, None);
        self.after_reconnect(watch)
    }

    /// The consumer faulted after the client reconnected: the executor feeds
    /// `ConsumerFault { reconnected: true }` and performs what the guard asks
    /// (G24 re-resumes, G25 ends the watch).
    pub(super) fn consumer_fault(&self, watch: &mut Watch, log: &[Message], now: Millis) {
        watch.reconnect_pending = false;
        let event = GuardEvent::ConsumerFault {
            now,
            reconnected: true,
            error_text: "push consumer lost deliveries".to_string(),
        };
        self.feed(watch, log, event, None);
        if self.after_reconnect(watch) {
            watch.seen.insert(Seen::FAULT_RERESUMED);
        }
    }

    /// Model bookkeeping after the guard took a reconnect: whether it left
    /// streaming to resume (G16, G24), read off the guard.
    fn after_reconnect(&self, watch: &mut Watch) -> bool {
        let resumes = !watch.guard.is_streaming() && watch.end.is_none();
        if resumes {
            watch.resuming = true;
            watch.after_reconnect = true;
            watch.dense = self.scope == Scope::All;
        } else if watch.end.is_none() {
            watch.seen.insert(Seen::KEPT_STATE_SYNC_CONSUMER);
        }
        resumes
    }

    /// `Forward`: the delivery in hand reaches the application. It is judged
    /// against every in-scope revision it passes over.
    pub(super) fn forward(&self, watch: &mut Watch, log: &[Message]) {
        if watch.end.is_some() {
            watch.seen.insert(Seen::FORWARD_AFTER_END);
        }
        let Some(revision) = watch.in_hand.take() else {
            watch.seen.insert(Seen::CONTRACT_BROKEN);
            return;
        };
        if revision <= watch.forwarded_to {
            watch.seen.insert(Seen::FORWARD_NOT_INCREASING);
            return;
        }
        for passed in watch.forwarded_to + 1..revision {
            let Some(m) = message(log, passed).filter(|m| self.in_scope(m.key)) else {
                continue;
            };
            watch.seen.insert(match m.fate {
                Fate::Evicted => Seen::FORWARD_PAST_EVICTION,
                Fate::Retained => Seen::FORWARD_PAST_RETAINED,
                Fate::Superseded => Seen::BENIGN_GAP_FORWARDED,
            });
        }
        watch.forwarded_to = revision;
        watch.anchored = true;
        if watch.resumes_passed > 0 {
            watch.seen.insert(Seen::FORWARDED_AFTER_CHECKS);
        }
    }

    /// The probe answer as the (possibly broken) executor hands it to the guard.
    pub(super) fn answer(
        &self,
        state: &ResumeState,
        watch: &mut Watch,
        probe: Probe,
    ) -> StreamFacts {
        let mut facts = StreamFacts {
            first_sequence: first_sequence(&state.log),
            last_sequence: state.log.len() as u64,
            created_ms: Some(STREAM_CREATED_MS),
            server_now_ms: Some(SERVER_CLOCK_BASE_MS + state.clock_ms),
            limits: self.limits(),
        };
        match (self.mutation, probe) {
            (Mutation::TrustClampedStart, Probe::PreCheck) => {
                // Row 5 becomes `Ok(first - 1)`: the clamped start is trusted.
                facts.limits = CLAIMED_AGE_ONLY_LIMITS;
                facts.server_now_ms = Some(STREAM_CREATED_MS);
            }
            (Mutation::PreCheckTrustsLoweredFloor, Probe::PreCheck) => facts.first_sequence = 1,
            (Mutation::SkipPostCheck, Probe::PreCheck) => {
                watch.pre_check_facts = Some((facts.first_sequence, facts.last_sequence));
            }
            (Mutation::SkipPostCheck, Probe::PostCheck) => {
                if let Some((first, last)) = watch.pre_check_facts {
                    facts.first_sequence = first;
                    facts.last_sequence = last;
                }
            }
            (Mutation::PeriodicProbeOnly, Probe::Floor) => {
                let frontier = watch.guard.frontier().unwrap_or(0);
                facts.first_sequence = facts.first_sequence.min(frontier.saturating_add(1));
            }
            _ => {}
        }
        facts
    }
}
