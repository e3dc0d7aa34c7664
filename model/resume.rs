//! The `resume` model (docs/verification.md, "Stateright models", matrix rows 3 and 4): the
//! production [`ResumeGuard`] driven the way the NATS executor drives it
//! (docs/nats-backend.md, "The watch loop" and "Resume after a reconnect") against a small
//! NATS-like stream and consumer. The guard's logic is never re-implemented here; mutations
//! are model-side wrappers that alter one decision (docs/verification.md, "Mutations").
//!
//! Shared by the `model` test target (`mod resume;`) and the `explore` example
//! (`#[path = "../model/resume.rs"] mod resume;`).

use std::fmt;

use kvfold::protocol::resume::{GuardEvent, GuardMode, LogLimits, ResumeCursor, ResumeGuard};
use kvfold::protocol::time::Millis;
use stateright::{Model, Property};

#[path = "resume/config.rs"]
mod config;
#[path = "resume/executor.rs"]
mod executor;
#[path = "resume/stream.rs"]
mod stream;
#[cfg(test)]
#[path = "resume/tests.rs"]
mod tests;

pub use config::{Bounds, InHand, Mutation, Retention, Scope, Start};
pub use executor::{Cause, End, Outstanding, Probe, Seen, Watch};
use stream::{AGE_ONLY_LIMITS, DISCARD_OLD_LIMITS, first_sequence, message, revision_at};
pub use stream::{CLOCK_STEP_MS, Consumer, Fate, Message};

/// The model: a watch scope, a bucket, bounds, and the guard's decisions
/// (production, or one broken by a mutation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResumeModel {
    /// The watch's scope.
    pub scope: Scope,
    /// The bucket's retention.
    pub retention: Retention,
    /// How the call starts.
    pub start: Start,
    /// The executor's handling of a delivery in hand at a noticed reconnect.
    pub in_hand: InHand,
    /// The run's limits.
    pub bounds: Bounds,
    /// The decision altered, if any.
    pub mutation: Mutation,
    /// The consumer may fault after a reconnect (a consumer-sequence gap of a raw
    /// push consumer whose deliveries were lost while the client was away): the
    /// executor feeds `ConsumerFault { reconnected: true }` instead of `Reconnected`
    /// (rows G24, G25).
    pub faults: bool,
}

impl ResumeModel {
    /// The production guard resuming a watch on `scope` of a `retention` bucket,
    /// driven by the NATS executor as specified.
    pub fn new(scope: Scope, retention: Retention, bounds: Bounds) -> Self {
        Self {
            scope,
            retention,
            start: Start::Resume,
            in_hand: InHand::Discarded,
            bounds,
            mutation: Mutation::None,
            faults: false,
        }
    }

    /// The same model starting with a state-sync watch (no cursor).
    pub fn state_sync(self) -> Self {
        Self {
            start: Start::StateSync,
            ..self
        }
    }

    /// The same model with another executor handling of a delivery in hand.
    pub fn in_hand(self, in_hand: InHand) -> Self {
        Self { in_hand, ..self }
    }

    /// The same model with one decision broken.
    pub fn mutated(self, mutation: Mutation) -> Self {
        Self { mutation, ..self }
    }

    fn in_scope(&self, key: u8) -> bool {
        match self.scope {
            Scope::All => true,
            Scope::Prefix => key == 0,
        }
    }

    fn guard_mode(&self) -> GuardMode {
        match (self.scope, self.mutation) {
            (Scope::All, Mutation::NoFloorGuard) | (Scope::Prefix, _) => GuardMode::Sparse,
            (Scope::All, _) => GuardMode::Dense,
        }
    }

    fn limits(&self) -> LogLimits {
        match self.retention {
            Retention::DiscardOld => DISCARD_OLD_LIMITS,
            Retention::AgeOnly => AGE_ONLY_LIMITS,
        }
    }
}

impl fmt::Display for ResumeModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} scope, {:?} bucket, {:?} start, in hand {:?}, mutation {}{}",
            self.scope,
            self.retention,
            self.start,
            self.in_hand,
            self.mutation.name(),
            if self.faults { ", consumer faults" } else { "" }
        )
    }
}

// ===========================================================================
// State and actions
// ===========================================================================

/// One state of the model: the clock, the stream and, once started, the watch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResumeState {
    /// Model time (ms), a multiple of `CLOCK_STEP_MS`.
    pub clock_ms: u64,
    /// Clock advances outside the guard's timer so far.
    pub clock_steps: u8,
    /// Revision `i + 1` is `log[i]`.
    pub log: Vec<Message>,
    /// The watch call, once started.
    pub watch: Option<Watch>,
}

impl ResumeState {
    fn seen(&self, bits: Seen) -> bool {
        self.watch.as_ref().is_some_and(|w| w.seen.intersects(bits))
    }

    fn end(&self) -> Option<End> {
        self.watch.as_ref().and_then(|w| w.end)
    }

    fn head_evictions(&self) -> usize {
        self.log.iter().filter(|m| m.fate == Fate::Evicted).count()
    }
}

/// A step of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A client writes `key`: a new revision at the end of the stream.
    Write {
        /// The key.
        key: u8,
    },
    /// A limit evicts the oldest retained message (`DiscardOld`).
    EvictHead,
    /// Time passes by one step; an `AgeOnly` bucket ages messages out.
    AdvanceClock,
    /// The watch call starts: `watch_*_from(cursor)`.
    StartWatch {
        /// The resume cursor's revision.
        cursor: u64,
    },
    /// The watch call starts without a cursor (state-sync).
    StartStateSync,
    /// The outstanding `ProbeStream` is answered from the stream as it is now.
    AnswerProbe,
    /// The outstanding `CreateConsumer` completes (the server clamps silently).
    CreateConsumer,
    /// The consumer delivers its next retained in-scope message. If the client
    /// reconnected meanwhile, the executor notices before handing it in.
    Deliver,
    /// The ordered consumer recreates itself before its first delivery and
    /// replays from the stream start (no reconnect is visible).
    ConsumerReplays,
    /// The client reconnects and recreates its consumer at last delivered + 1
    /// (from the stream start if it delivered nothing), without any check.
    Reconnect,
    /// The executor notices the grown connect counter and feeds `Reconnected`.
    NoticeReconnect,
    /// The consumer faults after the reconnect; the executor feeds
    /// `ConsumerFault { reconnected: true }` (only with `faults`).
    ConsumerFault,
    /// The guard's idle deadline passes: the clock moves to it, `Tick` is fed.
    Tick,
}

// ===========================================================================
// The model
// ===========================================================================

/// Property names (the tests look them up by these).
pub mod names {
    /// Rows 3 and 4: nothing evicted is passed over silently.
    pub const NO_FORWARD_PAST_EVICTION: &str =
        "no post-eviction message is forwarded as if contiguous";
    /// Nothing still retained is passed over either.
    pub const NO_FORWARD_PAST_RETAINED: &str = "no retained message is passed over";
    /// No redelivery is forwarded.
    pub const FORWARDS_INCREASE: &str = "forwarded revisions strictly increase";
    /// `Skip` drops only redeliveries.
    pub const SKIPS_ONLY_REDELIVERIES: &str = "a skip drops only a redelivery";
    /// Nothing after `Expired`.
    pub const NOTHING_AFTER_END: &str = "nothing is forwarded after Expired";
    /// The executor contract (docs/architecture.md, "Kernels and machines").
    pub const DRIVE_LOOP: &str = "the guard keeps the drive-loop contract";
    /// Every maximal run.
    pub const ENDS_AT_TRUTH: &str =
        "every run forwards every retained revision after the cursor or expires";
    /// Witness.
    pub const RESUME_FORWARDS: &str = "a resume passes the pre- and post-checks and forwards";
    /// Witness.
    pub const BENIGN_GAP: &str = "a benign interior gap is forwarded";
    /// Witness.
    pub const PRE_CHECK_REFUSES: &str = "the pre-check refuses a cursor below the floor";
    /// Witness.
    pub const POST_CHECK_CATCHES_RACE: &str =
        "an eviction races consumer creation and the post-check catches it";
    /// Witness.
    pub const RECONNECT_RERESUMES: &str = "a reconnect re-resumes";
    /// Witness.
    pub const RECONNECT_EXPIRES: &str = "a reconnect after an eviction expires the watch";
    /// Witness.
    pub const REDELIVERY_SKIPPED: &str = "a redelivery is skipped";
    /// Witness (All scope).
    pub const FLOOR_GUARD_EXPIRES: &str = "the floor guard expires the watch";
    /// Witness (All scope).
    pub const IDLE_PROBE_EXPIRES: &str = "the idle floor probe expires the watch";
    /// Witness (AgeOnly bucket).
    pub const SUPERSESSION_RESUME: &str = "a supersession-only resume crosses a benign gap";
    /// Witness (with `faults`).
    pub const FAULT_RERESUMES: &str = "a consumer fault after a reconnect re-resumes";
    /// Witness (state-sync start).
    pub const STATE_SYNC_KEEPS_CONSUMER: &str =
        "a reconnect before the first delivery keeps the state-sync consumer";
}

impl ResumeModel {
    /// A terminal state: nothing can happen any more.
    fn is_terminal(&self, state: &ResumeState) -> bool {
        let mut actions = Vec::new();
        self.actions(state, &mut actions);
        actions.is_empty()
    }

    /// The end of every maximal run: the watch expired, or every retained
    /// in-scope revision after the cursor was forwarded.
    fn ends_at_truth(&self, state: &ResumeState) -> bool {
        let Some(watch) = &state.watch else {
            return false;
        };
        if !self.is_terminal(state) {
            return false;
        }
        matches!(watch.end, Some(End::Expired { .. }))
            || !state.log.iter().enumerate().any(|(index, m)| {
                m.fate == Fate::Retained
                    && self.in_scope(m.key)
                    && revision_at(index) > watch.forwarded_to
            })
    }
}

impl Model for ResumeModel {
    type State = ResumeState;
    type Action = Action;

    fn init_states(&self) -> Vec<Self::State> {
        vec![ResumeState {
            clock_ms: 0,
            clock_steps: 0,
            log: Vec::new(),
            watch: None,
        }]
    }

    fn actions(&self, state: &Self::State, actions: &mut Vec<Self::Action>) {
        // An ended watch is final; so is a violation, which keeps each
        // counterexample the shortest path to it.
        if state.end().is_some() || state.seen(Seen::VIOLATIONS) {
            return;
        }
        if state.log.len() < usize::from(self.bounds.writes) {
            actions.extend((0..self.bounds.keys).map(|key| Action::Write { key }));
        }
        if self.retention == Retention::DiscardOld
            && state.head_evictions() < usize::from(self.bounds.evictions)
            && let Some(head) = state.log.iter().position(|m| m.fate == Fate::Retained)
            && self.eviction_allowed(state, std::iter::once(head))
        {
            actions.push(Action::EvictHead);
        }
        if state.clock_steps < self.bounds.clock_steps
            && self.eviction_allowed(
                state,
                self.aged_out(&state.log, state.clock_ms + CLOCK_STEP_MS),
            )
        {
            actions.push(Action::AdvanceClock);
        }
        let Some(watch) = &state.watch else {
            match self.start {
                Start::Resume => actions.extend(
                    (1..=state.log.len() as u64).map(|cursor| Action::StartWatch { cursor }),
                ),
                Start::StateSync => actions.push(Action::StartStateSync),
            }
            return;
        };
        if watch.reconnects < self.bounds.reconnects {
            actions.push(Action::Reconnect);
        }
        if watch.replays < self.bounds.replays && watch.consumer.is_some_and(|c| !c.delivered_any) {
            actions.push(Action::ConsumerReplays);
        }
        match watch.outstanding {
            Some(Outstanding::Probe(_)) => actions.push(Action::AnswerProbe),
            Some(Outstanding::Create { .. }) => actions.push(Action::CreateConsumer),
            // `StartStateSync` completes it in the same step: never left outstanding.
            Some(Outstanding::Snapshot) => {}
            None if watch.guard.is_streaming() => {
                // The periodic connect-counter check (docs/nats-backend.md, "Resume after a
                // reconnect").
                if watch.reconnect_pending {
                    actions.push(Action::NoticeReconnect);
                    if self.faults {
                        actions.push(Action::ConsumerFault);
                    }
                }
                if watch
                    .consumer
                    .is_some_and(|c| self.deliverable(&state.log, &c).is_some())
                {
                    actions.push(Action::Deliver);
                }
                if watch.ticks < self.bounds.ticks
                    && let Some(deadline) = watch.guard.poll_timeout()
                    && self.eviction_allowed(
                        state,
                        self.aged_out(&state.log, state.clock_ms.max(deadline.0)),
                    )
                {
                    actions.push(Action::Tick);
                }
            }
            None => {}
        }
    }

    fn next_state(&self, last: &Self::State, action: Self::Action) -> Option<Self::State> {
        let mut state = last.clone();
        match action {
            Action::Write { key } => self.write(&mut state, key),
            Action::EvictHead => {
                let head = state.log.iter_mut().find(|m| m.fate == Fate::Retained)?;
                head.fate = Fate::Evicted;
            }
            Action::AdvanceClock => {
                state.clock_steps += 1;
                let clock_ms = state.clock_ms + CLOCK_STEP_MS;
                self.move_clock(&mut state, clock_ms);
            }
            Action::StartWatch { cursor } => {
                let resume_from = ResumeCursor {
                    revision: cursor,
                    written_ms: message(&state.log, cursor).map(Message::written_unix_ms),
                };
                let now = Millis(state.clock_ms);
                let guard = ResumeGuard::resumed(resume_from, self.guard_mode(), now);
                let mut watch = Watch::new(guard, cursor);
                watch.resuming = true;
                watch.anchored = true;
                watch.dense = self.scope == Scope::All;
                // The constructor queued the pre-check probe.
                self.perform_commands(&mut watch, &state.log, Probe::PreCheck, None);
                state.watch = Some(watch);
            }
            Action::StartStateSync => {
                let mode = self.guard_mode();
                let now = Millis(state.clock_ms);
                let guard = ResumeGuard::fresh(mode, now);
                // Everything below the floor left before the call began: the
                // snapshot is what the stream retains now.
                let before = first_sequence(&state.log) - 1;
                let mut watch = Watch::new(guard, before);
                // The guard asks for its own consumer (G26). The model's
                // state-sync consumer replays what the stream retains, from its
                // start (every key's latest entry is in it), and exists at once.
                self.perform_commands(&mut watch, &state.log, Probe::PreCheck, None);
                if watch.outstanding.take() != Some(Outstanding::Snapshot) {
                    watch.seen.insert(Seen::CONTRACT_BROKEN);
                }
                watch.consumer = Some(Consumer {
                    next: 1,
                    delivered_any: false,
                });
                let pending = state.log.len() as u64;
                let created = GuardEvent::SnapshotCreated { now, pending };
                self.feed(&mut watch, &state.log, created, None);
                state.watch = Some(watch);
            }
            Action::AnswerProbe => {
                let mut watch = state.watch.take()?;
                let Some(Outstanding::Probe(probe)) = watch.outstanding.take() else {
                    return None;
                };
                let facts = self.answer(&state, &mut watch, probe);
                let now = Millis(state.clock_ms);
                let event = GuardEvent::StreamProbed { now, facts };
                self.feed(&mut watch, &state.log, event, Some(probe));
                if probe == Probe::PostCheck && watch.guard.is_streaming() {
                    watch.resuming = false;
                    watch.resumes_passed += 1;
                    if watch.guard.frontier() > Some(watch.forwarded_to) {
                        watch.seen.insert(Seen::RESUMED_ACROSS_SUPERSEDED_GAP);
                    }
                    if watch.after_reconnect {
                        watch.seen.insert(Seen::RERESUMED);
                    }
                }
                state.watch = Some(watch);
            }
            Action::CreateConsumer => {
                let watch = state.watch.as_mut()?;
                let Some(Outstanding::Create { start_sequence }) = watch.outstanding.take() else {
                    return None;
                };
                watch.consumer = Some(Consumer {
                    next: start_sequence,
                    delivered_any: false,
                });
                let now = Millis(state.clock_ms);
                self.feed(watch, &state.log, GuardEvent::ConsumerCreated { now }, None);
            }
            Action::Deliver => {
                let watch = state.watch.as_mut()?;
                let consumer = watch.consumer.as_mut()?;
                let revision = self.deliverable(&state.log, consumer)?;
                consumer.next = revision + 1;
                consumer.delivered_any = true;
                watch.in_hand = Some(revision);
                if watch.reconnect_pending {
                    // Compared before handing the delivery in (docs/nats-backend.md,
                    // "Resume after a reconnect"): the guard's `DropConsumer` (G16)
                    // drops the delivery in hand with the consumer.
                    let now = Millis(state.clock_ms);
                    self.notice_reconnect(watch, &state.log, now);
                    if self.in_hand == InHand::Discarded
                        && self.mutation != Mutation::IgnoreReconnect
                    {
                        watch.in_hand = None;
                    }
                    if watch.in_hand.is_none() {
                        return Some(state);
                    }
                }
                let event = GuardEvent::Delivered {
                    now: Millis(state.clock_ms),
                    revision: Some(revision),
                    written_ms: message(&state.log, revision).map(Message::written_unix_ms),
                };
                self.feed(watch, &state.log, event, None);
            }
            Action::ConsumerReplays => {
                let watch = state.watch.as_mut()?;
                watch.replays += 1;
                watch.consumer.as_mut()?.next = 1;
            }
            Action::Reconnect => {
                let watch = state.watch.as_mut()?;
                watch.reconnects += 1;
                watch.reconnect_pending = true;
                if let Some(consumer) = watch.consumer.as_mut()
                    && !consumer.delivered_any
                {
                    // async-nats's ordered consumer, recreated before its first
                    // delivery, delivers everything from the stream start.
                    consumer.next = 1;
                }
            }
            Action::NoticeReconnect => {
                let watch = state.watch.as_mut()?;
                self.notice_reconnect(watch, &state.log, Millis(state.clock_ms));
            }
            Action::ConsumerFault => {
                let watch = state.watch.as_mut()?;
                self.consumer_fault(watch, &state.log, Millis(state.clock_ms));
            }
            Action::Tick => {
                let deadline = state.watch.as_ref()?.guard.poll_timeout()?;
                let clock_ms = state.clock_ms.max(deadline.0);
                self.move_clock(&mut state, clock_ms);
                let watch = state.watch.as_mut()?;
                watch.ticks += 1;
                let now = Millis(clock_ms);
                self.feed(watch, &state.log, GuardEvent::Tick { now }, None);
            }
        }
        Some(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        use names::*;
        let mut properties = vec![
            Property::always(NO_FORWARD_PAST_EVICTION, |_, s: &ResumeState| {
                !s.seen(Seen::FORWARD_PAST_EVICTION)
            }),
            Property::always(NO_FORWARD_PAST_RETAINED, |_, s: &ResumeState| {
                !s.seen(Seen::FORWARD_PAST_RETAINED)
            }),
            Property::always(FORWARDS_INCREASE, |_, s: &ResumeState| {
                !s.seen(Seen::FORWARD_NOT_INCREASING)
            }),
            Property::always(SKIPS_ONLY_REDELIVERIES, |_, s: &ResumeState| {
                !s.seen(Seen::SKIP_ABOVE_FORWARDED)
            }),
            Property::always(NOTHING_AFTER_END, |_, s: &ResumeState| {
                !s.seen(Seen::FORWARD_AFTER_END)
            }),
            Property::always(DRIVE_LOOP, |_, s: &ResumeState| {
                !s.seen(Seen::CONTRACT_BROKEN)
            }),
            Property::eventually(ENDS_AT_TRUTH, |m: &ResumeModel, s| m.ends_at_truth(s)),
            Property::sometimes(RESUME_FORWARDS, |_, s: &ResumeState| {
                s.seen(Seen::FORWARDED_AFTER_CHECKS)
            }),
            Property::sometimes(BENIGN_GAP, |_, s: &ResumeState| {
                s.seen(Seen::BENIGN_GAP_FORWARDED)
            }),
            Property::sometimes(POST_CHECK_CATCHES_RACE, |_, s: &ResumeState| {
                matches!(
                    s.end(),
                    Some(End::Expired {
                        cause: Cause::BelowFloor,
                        at: Some(Probe::PostCheck),
                        ..
                    })
                )
            }),
            Property::sometimes(RECONNECT_RERESUMES, |_, s: &ResumeState| {
                s.seen(Seen::RERESUMED)
            }),
            Property::sometimes(RECONNECT_EXPIRES, |_, s: &ResumeState| {
                matches!(
                    s.end(),
                    Some(End::Expired {
                        cause: Cause::BelowFloor,
                        after_reconnect: true,
                        ..
                    })
                )
            }),
            Property::sometimes(REDELIVERY_SKIPPED, |_, s: &ResumeState| {
                s.seen(Seen::REDELIVERY_SKIPPED)
            }),
        ];
        match self.start {
            Start::Resume => {
                properties.push(Property::sometimes(
                    PRE_CHECK_REFUSES,
                    |_, s: &ResumeState| {
                        s.end()
                            == Some(End::Expired {
                                cause: Cause::BelowFloor,
                                at: Some(Probe::PreCheck),
                                after_reconnect: false,
                            })
                    },
                ));
            }
            Start::StateSync => {
                properties.push(Property::sometimes(
                    STATE_SYNC_KEEPS_CONSUMER,
                    |_, s: &ResumeState| s.seen(Seen::KEPT_STATE_SYNC_CONSUMER),
                ));
            }
        }
        if self.scope == Scope::All {
            properties.push(Property::sometimes(
                FLOOR_GUARD_EXPIRES,
                |_, s: &ResumeState| {
                    matches!(
                        s.end(),
                        Some(End::Expired {
                            cause: Cause::FloorPassed,
                            at: Some(Probe::Floor),
                            ..
                        })
                    )
                },
            ));
            properties.push(Property::sometimes(
                IDLE_PROBE_EXPIRES,
                |_, s: &ResumeState| {
                    matches!(
                        s.end(),
                        Some(End::Expired {
                            cause: Cause::FloorPassed,
                            at: Some(Probe::Idle),
                            ..
                        })
                    )
                },
            ));
        }
        if self.faults {
            properties.push(Property::sometimes(
                FAULT_RERESUMES,
                |_, s: &ResumeState| s.seen(Seen::FAULT_RERESUMED),
            ));
        }
        if self.retention == Retention::AgeOnly {
            properties.push(Property::sometimes(
                SUPERSESSION_RESUME,
                |_, s: &ResumeState| s.seen(Seen::RESUMED_ACROSS_SUPERSEDED_GAP),
            ));
        }
        properties
    }
}
