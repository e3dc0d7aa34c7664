//! `RepairMachine`: the watch-task side of cursor-expiry repair
//! (docs/protocols/repair-machine.md, "Transition table"): start checks, retention polling
//! and the eviction memo, planning, the relist ack barrier and the two restore checks around
//! the download. Every event is checked first (a rejected event changes nothing), then
//! applied; commands and notices queue FIFO. Pure: no I/O, no clock.

use std::collections::VecDeque;

use super::types::{
    ArtifactView, RETENTION_POLL_MS, RepairCommand, RepairEvent, RepairNotice, RepairPhase,
    RepairStart, Scratch, Unexpected,
};
use super::{eviction_observed, retention_polls};
use crate::kv::{KvError, Retention, WatchCursor};
use crate::protocol::time::Millis;
use crate::protocol::{
    RepairMode, RepairPlan, cursorless_start_needs_repair, listing_truth, plan_repair,
};

/// The error text of a refused relist: why the listing cannot be trusted and the
/// three modes that work on such a bucket.
pub(super) const RELIST_REFUSED: &str = "cursor-expired relist refused: the bucket evicts (or \
     evicted) current values, so its key listing cannot tell a deleted key from an aged-out \
     one; use ExpiryRepair::Restore or ExpiryRepair::Auto (restore from an artifact), or \
     ExpiryRepair::None (re-list only, accepting that deleted keys may persist)";

/// Appended to a restore failure of a node without a cursor.
pub(super) const BOOTSTRAP_ADVICE: &str = "; this node has no cursor and can only seed from an \
     artifact: if none exists yet, start one node with ExpiryRepair::None (accepting that \
     aged-out values are gone) and publish an export from it";

/// The error of a fold loop that went away while taking the eviction memo.
pub(super) const EVICTING_LOST: &str = "fold loop ended while recording eviction";

/// What runs once `SendEvicting` is answered: the continuation `k` of `observe(r, k)`.
/// The retention reading rides along so that `listing_truth(r, memo)` is computed
/// after the memo was set by this very read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Then {
    /// `decide_start(listing_truth(r, memo))` (row S4).
    DecideStart(Option<Retention>),
    /// `enter_loop()` (row I1).
    EnterLoop,
    /// Back to `Watching` (row W3).
    BackToWatching,
    /// `plan(listing_truth(r, memo))` (row P1).
    Plan(Option<Retention>),
}

/// Private phases: the public ones, with the continuation of `SendingEvicting`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    Starting,
    CheckingStart,
    InitialPoll,
    Watching,
    Polling,
    Planning,
    SendingEvicting(Then),
    AwaitingAck,
    RestoreFloor,
    RestoreLatest,
    RestoreFetch,
    RestoreRecheck,
    AwaitingRestoreReply,
    Finished,
}

/// The watch-task repair machine. Drive it as docs/protocols/repair-machine.md, "Drive
/// loop" says: feed `Start`, perform every command in order, feed each completion,
/// and while [`phase`](RepairMachine::phase) is `Watching` select on the active watch
/// and on [`poll_timeout`](RepairMachine::poll_timeout).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RepairMachine {
    mode: RepairMode,
    scope: Vec<String>,
    /// The eviction memo: monotone, seeded from the resume cursor.
    memo: bool,
    /// The cursor the next watch resumes from (taken when it starts).
    resume: Option<WatchCursor>,
    unanchored: bool,
    /// A cursor-less start must repair before it may watch (taken by `enter_loop`).
    repair_first: bool,
    /// The cursor being repaired.
    local: WatchCursor,
    /// The floor read before the download (`None` = unknown).
    first: Option<u64>,
    /// The view of the downloaded artifact, kept by the executor.
    fetched: Option<ArtifactView>,
    /// Where the active watch started: `Some(c)` = the `_from` watch after `c`.
    watching_from: Option<WatchCursor>,
    next_poll: Option<Millis>,
    /// The start already read retention (row S4), so no initial poll.
    read_at_start: bool,
    phase: Phase,
    now: Millis,
    commands: VecDeque<RepairCommand>,
    notices: VecDeque<RepairNotice>,
}

impl RepairMachine {
    /// A machine waiting for `Start`. A resume cursor that `is_none()` counts as no
    /// cursor; its memo still seeds the machine's.
    pub fn new(start: RepairStart) -> Self {
        let memo = start
            .resume
            .as_ref()
            .is_some_and(WatchCursor::seen_evicting);
        let resume = start.resume.filter(|c| !c.is_none());
        Self {
            mode: start.mode,
            scope: start.scope,
            memo,
            resume,
            unanchored: start.unanchored,
            repair_first: false,
            local: WatchCursor::none(),
            first: None,
            fetched: None,
            watching_from: None,
            next_poll: None,
            read_at_start: false,
            phase: Phase::Starting,
            now: Millis(0),
            commands: VecDeque::new(),
            notices: VecDeque::new(),
        }
    }

    /// The next command, FIFO.
    pub fn poll_command(&mut self) -> Option<RepairCommand> {
        self.commands.pop_front()
    }

    /// The next notice, FIFO; map it to tracing with [`RepairNotice::level`].
    pub fn poll_notice(&mut self) -> Option<RepairNotice> {
        self.notices.pop_front()
    }

    /// The next retention poll, while `Watching` and polling is still useful.
    pub fn poll_timeout(&self) -> Option<Millis> {
        match self.phase {
            Phase::Watching => self.next_poll,
            _ => None,
        }
    }

    /// What the machine waits for.
    pub fn phase(&self) -> RepairPhase {
        match self.phase {
            Phase::Starting => RepairPhase::Starting,
            Phase::CheckingStart => RepairPhase::CheckingStart,
            Phase::InitialPoll => RepairPhase::InitialPoll,
            Phase::Watching => RepairPhase::Watching,
            Phase::Polling => RepairPhase::Polling,
            Phase::Planning => RepairPhase::Planning,
            Phase::SendingEvicting(_) => RepairPhase::SendingEvicting,
            Phase::AwaitingAck => RepairPhase::AwaitingAck,
            Phase::RestoreFloor => RepairPhase::RestoreFloor,
            Phase::RestoreLatest => RepairPhase::RestoreLatest,
            Phase::RestoreFetch => RepairPhase::RestoreFetch,
            Phase::RestoreRecheck => RepairPhase::RestoreRecheck,
            Phase::AwaitingRestoreReply => RepairPhase::AwaitingRestoreReply,
            Phase::Finished => RepairPhase::Finished,
        }
    }

    /// The eviction memo: set once eviction was observed (or came with a cursor);
    /// never cleared.
    pub fn memo(&self) -> bool {
        self.memo
    }

    /// Feeds one event. An event the phase does not accept (row Z1), or any event
    /// after `Finish` (row F1), is rejected with [`Unexpected`] and changes nothing.
    pub fn handle(&mut self, event: RepairEvent) -> Result<(), Unexpected> {
        if !self.accepts(&event) {
            return Err(Unexpected {
                phase: self.phase(),
                event: event.name(),
            });
        }
        self.now = self.now.max(event.now());
        match event {
            RepairEvent::Start { .. } => self.start(),
            RepairEvent::Retention { result, .. } => self.retention(result),
            RepairEvent::EvictingSent { delivered, .. } => self.evicting_sent(delivered),
            RepairEvent::PollDue { .. } => self.poll_due(),
            RepairEvent::WatchEnded { result, .. } => self.watch_ended(result),
            RepairEvent::RelistAcked { .. } => {
                // A1: the re-list starts only now, after the fold's synthetic deletes.
                self.start_watch(None);
            }
            RepairEvent::Latest { result, .. } => self.latest(result),
            RepairEvent::Fetched { result, .. } => self.fetched(result),
            RepairEvent::RestoreReplied { result, .. } => self.restore_replied(result),
        }
        Ok(())
    }

    /// Which (phase, event) pairs have a row; everything else is Z1 (or F1).
    fn accepts(&self, event: &RepairEvent) -> bool {
        matches!(
            (&self.phase, event),
            (Phase::Starting, RepairEvent::Start { .. })
                | (
                    Phase::CheckingStart
                        | Phase::InitialPoll
                        | Phase::Polling
                        | Phase::Planning
                        | Phase::RestoreFloor
                        | Phase::RestoreRecheck,
                    RepairEvent::Retention { .. }
                )
                | (
                    Phase::Watching,
                    RepairEvent::PollDue { .. } | RepairEvent::WatchEnded { .. }
                )
                | (Phase::SendingEvicting(_), RepairEvent::EvictingSent { .. })
                | (Phase::AwaitingAck, RepairEvent::RelistAcked { .. })
                | (Phase::RestoreLatest, RepairEvent::Latest { .. })
                | (Phase::RestoreFetch, RepairEvent::Fetched { .. })
                | (
                    Phase::AwaitingRestoreReply,
                    RepairEvent::RestoreReplied { .. }
                )
        )
    }

    // -----------------------------------------------------------------------
    // Rows
    // -----------------------------------------------------------------------

    /// S1–S3.
    fn start(&mut self) {
        if self.resume.is_some() {
            // S3
            self.after_start();
        } else if self.mode != RepairMode::Relist
            && !(matches!(self.mode, RepairMode::Restore | RepairMode::Auto) && self.unanchored)
        {
            // S1: the decision (or a warning) depends on retention.
            self.commands.push_back(RepairCommand::ReadRetention);
            self.phase = Phase::CheckingStart;
        } else {
            // S2
            self.decide_start(None);
        }
    }

    /// S4/S5, I1/I2, W3/W4, P1/P2, T1/T2, T7/T8.
    fn retention(&mut self, result: Result<Option<Retention>, KvError>) {
        let phase = std::mem::replace(&mut self.phase, Phase::Finished);
        match (phase, result) {
            (Phase::CheckingStart, Ok(r)) => {
                self.read_at_start = true;
                self.observe(r, Then::DecideStart(r));
            }
            (Phase::InitialPoll, Ok(r)) => self.observe(r, Then::EnterLoop),
            (Phase::InitialPoll, Err(e)) => {
                self.notices.push_back(RepairNotice::RetentionPollFailed {
                    error: e.to_string(),
                });
                self.enter_loop();
            }
            (Phase::Polling, Ok(r)) => {
                self.observe(r, Then::BackToWatching);
                self.next_poll = self.polls().then(|| self.now.plus_ms(RETENTION_POLL_MS));
            }
            (Phase::Polling, Err(e)) => {
                self.notices.push_back(RepairNotice::RetentionPollFailed {
                    error: e.to_string(),
                });
                self.next_poll = Some(self.now.plus_ms(RETENTION_POLL_MS));
                self.phase = Phase::Watching;
            }
            (Phase::Planning, Ok(r)) => self.observe(r, Then::Plan(r)),
            (Phase::RestoreFloor, Ok(r)) => {
                // T1: the floor only; a restore's reads do not feed the memo.
                self.first = r.map(|r| r.first_revision);
                self.commands.push_back(RepairCommand::PeekLatest);
                self.phase = Phase::RestoreLatest;
            }
            (Phase::RestoreRecheck, Ok(r)) => self.recheck(r.map(|r| r.first_revision)),
            (Phase::RestoreRecheck, Err(e)) => {
                // T8
                self.fetched = None;
                self.commands.push_back(RepairCommand::DropFetched);
                self.finish(Err(e));
            }
            // S5, P2, T2: a failed read the decision depends on fails the run.
            (_, Err(e)) => self.finish(Err(e)),
            (phase, Ok(_)) => {
                debug_assert!(false, "accepts() admits Retention only in reading phases");
                self.phase = phase;
            }
        }
    }

    /// V1–V3.
    fn evicting_sent(&mut self, delivered: bool) {
        let Phase::SendingEvicting(k) = std::mem::replace(&mut self.phase, Phase::Finished) else {
            debug_assert!(
                false,
                "accepts() admits EvictingSent only in SendingEvicting"
            );
            return;
        };
        match (delivered, k) {
            (true, k) => self.continue_with(k),
            (false, Then::BackToWatching) => {
                self.notices.push_back(RepairNotice::RetentionPollFailed {
                    error: EVICTING_LOST.to_string(),
                });
                self.continue_with(Then::BackToWatching);
            }
            (false, _) => self.finish(Err(KvError::WatchError(EVICTING_LOST.to_string()))),
        }
    }

    /// W1/W2.
    fn poll_due(&mut self) {
        match self.next_poll {
            Some(t) if self.now >= t => {
                // W1: the watch is parked while retention is read.
                self.commands.push_back(RepairCommand::ReadRetention);
                self.phase = Phase::Polling;
            }
            // W2: stale tick.
            _ => {}
        }
    }

    /// W5/W6.
    fn watch_ended(&mut self, result: Result<(), KvError>) {
        match (&self.watching_from, result) {
            (Some(c), Err(KvError::CursorExpired)) => {
                let c = c.clone();
                self.watching_from = None;
                self.next_poll = None;
                self.expired(c);
            }
            (_, result) => self.finish(result),
        }
    }

    /// T3/T4: the first check, on the manifest, before any download.
    fn latest(&mut self, result: Result<ArtifactView, String>) {
        match result {
            Ok(view) => match self.check(&view, self.first) {
                Ok(()) => {
                    self.commands.push_back(RepairCommand::FetchArtifact);
                    self.phase = Phase::RestoreFetch;
                }
                Err(reason) => self.refuse(reason),
            },
            Err(m) => self.refuse(format!("reading the latest artifact failed: {m}")),
        }
    }

    /// T5/T6.
    fn fetched(&mut self, result: Result<ArtifactView, String>) {
        match result {
            Ok(view) => {
                self.fetched = Some(view);
                self.commands.push_back(RepairCommand::ReadRetention);
                self.phase = Phase::RestoreRecheck;
            }
            Err(m) => self.refuse(format!("fetching the latest artifact failed: {m}")),
        }
    }

    /// T7: the second check, on what actually arrived, against a floor read after
    /// the download.
    fn recheck(&mut self, first: Option<u64>) {
        let Some(view) = self.fetched.clone() else {
            debug_assert!(
                false,
                "RestoreRecheck is entered only with a fetched view (T5)"
            );
            self.finish(Err(KvError::WatchError(
                "cursor-expired restore: no fetched artifact to check".to_string(),
            )));
            return;
        };
        match self.check(&view, first) {
            Ok(()) => {
                self.notices.push_back(RepairNotice::RestoreStarting {
                    cursor: view.cursor,
                    created_at_unix: view.created_at_unix,
                    first,
                });
                self.commands.push_back(RepairCommand::SendRestore);
                self.phase = Phase::AwaitingRestoreReply;
            }
            Err(reason) => {
                self.fetched = None;
                self.commands.push_back(RepairCommand::DropFetched);
                self.refuse(reason);
            }
        }
    }

    /// T9/T10.
    fn restore_replied(&mut self, result: Result<WatchCursor, KvError>) {
        self.fetched = None;
        match result {
            Ok(c) => {
                self.memo |= c.seen_evicting();
                self.resume = Some(c);
                self.enter_loop();
            }
            Err(e) => {
                let e = if self.local.is_none() {
                    with_advice(e)
                } else {
                    e
                };
                self.finish(Err(e));
            }
        }
    }

    // -----------------------------------------------------------------------
    // Procedures
    // -----------------------------------------------------------------------

    /// `polls()`: retention is worth reading only while a relist can be planned.
    fn polls(&self) -> bool {
        retention_polls(self.memo, self.mode)
    }

    /// `observe(r, k)`: set the memo the first time eviction is seen; with a repair
    /// armed, hand it to the fold before `k` runs.
    fn observe(&mut self, r: Option<Retention>, k: Then) {
        if !self.memo && eviction_observed(r) {
            self.memo = true;
            self.notices.push_back(RepairNotice::EvictionSeen);
            if self.mode != RepairMode::None {
                self.commands.push_back(RepairCommand::SendEvicting);
                self.phase = Phase::SendingEvicting(k);
                return;
            }
        }
        self.continue_with(k);
    }

    /// Runs a continuation; the memo this read set is already in place.
    fn continue_with(&mut self, k: Then) {
        match k {
            Then::DecideStart(r) => self.decide_start(listing_truth(r, self.memo)),
            Then::EnterLoop => self.enter_loop(),
            Then::BackToWatching => self.phase = Phase::Watching,
            Then::Plan(r) => self.plan(listing_truth(r, self.memo)),
        }
    }

    /// `decide_start(truth)`: whether a cursor-less start repairs first, with the
    /// warnings of a cursor-less start.
    fn decide_start(&mut self, truth: Option<bool>) {
        self.repair_first = cursorless_start_needs_repair(self.mode, self.unanchored, truth);
        if self.repair_first && self.unanchored {
            self.notices.push_back(RepairNotice::UnanchoredFold);
        } else if self.repair_first {
            self.notices.push_back(RepairNotice::EvictedBucketSeeding);
        } else if self.mode == RepairMode::None && truth == Some(false) {
            self.notices.push_back(RepairNotice::EvictedBucketNoRepair);
        }
        self.after_start();
    }

    /// `after_start()`: an initial poll when polling is useful and the start did not
    /// read retention already.
    fn after_start(&mut self) {
        if self.polls() && !self.read_at_start {
            self.commands.push_back(RepairCommand::ReadRetention);
            self.phase = Phase::InitialPoll;
        } else {
            self.enter_loop();
        }
    }

    /// `enter_loop()`: repair first, else the `_from` watch, else the full watch.
    fn enter_loop(&mut self) {
        if std::mem::take(&mut self.repair_first) {
            self.expired(WatchCursor::none());
        } else {
            let from = self.resume.take();
            self.start_watch(from);
        }
    }

    /// `StartWatch{from}`, phase `Watching`, the poll deadline re-armed.
    fn start_watch(&mut self, from: Option<WatchCursor>) {
        self.commands
            .push_back(RepairCommand::StartWatch { from: from.clone() });
        self.watching_from = from;
        self.next_poll = self.polls().then(|| self.now.plus_ms(RETENTION_POLL_MS));
        self.phase = Phase::Watching;
    }

    /// `expired(c)`: the cursor `c` is being repaired.
    fn expired(&mut self, c: WatchCursor) {
        self.local = c.clone();
        self.notices
            .push_back(RepairNotice::CursorExpired { cursor: c });
        match self.mode {
            RepairMode::None => {
                self.notices.push_back(RepairNotice::ReListOnly);
                self.start_watch(None);
            }
            RepairMode::Relist | RepairMode::Auto => {
                self.commands.push_back(RepairCommand::ReadRetention);
                self.phase = Phase::Planning;
            }
            RepairMode::Restore => self.plan(None),
        }
    }

    /// `plan(truth)`: carry out `plan_repair(mode, truth)`.
    fn plan(&mut self, truth: Option<bool>) {
        match plan_repair(self.mode, truth) {
            RepairPlan::ReListOnly => {
                // Only mode None plans this, and `expired` handles None itself.
                self.notices.push_back(RepairNotice::ReListOnly);
                self.start_watch(None);
            }
            RepairPlan::RefuseRelist => {
                self.notices.push_back(RepairNotice::RelistRefused);
                self.finish(Err(KvError::WatchError(RELIST_REFUSED.to_string())));
            }
            RepairPlan::Relist => {
                self.notices.push_back(RepairNotice::RelistPlanned);
                let scratch = if self.mode == RepairMode::Auto {
                    Scratch::RestoreSourceDir
                } else {
                    Scratch::SystemTemp
                };
                self.commands
                    .push_back(RepairCommand::SendRelist { scratch });
                self.phase = Phase::AwaitingAck;
            }
            RepairPlan::Restore => {
                self.notices.push_back(RepairNotice::RestorePlanned);
                self.commands.push_back(RepairCommand::ReadRetention);
                self.phase = Phase::RestoreFloor;
            }
        }
    }

    /// `check_restore` of an artifact view against the local cursor and a floor.
    fn check(&self, view: &ArtifactView, first: Option<u64>) -> Result<(), String> {
        view.check(&self.local, first, &self.scope)
            .map_err(|refusal| refusal.to_string())
    }

    /// `refuse(reason)`: the run fails with the reason (and the bootstrap advice
    /// for a node without a cursor).
    fn refuse(&mut self, reason: String) {
        let mut text = format!("cursor-expired restore: {reason}");
        if self.local.is_none() {
            text.push_str(BOOTSTRAP_ADVICE);
        }
        self.notices
            .push_back(RepairNotice::RestoreRefused { reason });
        self.finish(Err(KvError::WatchError(text)));
    }

    /// `Finish(result)`, phase `Finished`; nothing is accepted after it.
    fn finish(&mut self, result: Result<(), KvError>) {
        self.commands.push_back(RepairCommand::Finish(result));
        self.next_poll = None;
        self.phase = Phase::Finished;
    }
}

/// The bootstrap advice appended to a restore failure's message. Variants without a
/// message keep their meaning (a `Timeout` stays transient) and are returned as they are.
fn with_advice(e: KvError) -> KvError {
    match e {
        KvError::WatchError(m) => KvError::WatchError(m + BOOTSTRAP_ADVICE),
        KvError::OperationFailed(m) => KvError::OperationFailed(m + BOOTSTRAP_ADVICE),
        KvError::ConnectionFailed(m) => KvError::ConnectionFailed(m + BOOTSTRAP_ADVICE),
        KvError::DeserializationError(m) => KvError::DeserializationError(m + BOOTSTRAP_ADVICE),
        KvError::SerializationError(m) => KvError::SerializationError(m + BOOTSTRAP_ADVICE),
        other => other,
    }
}
