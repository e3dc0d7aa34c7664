//! The tracker's judgement of the machine's output: each command in queue order
//! (docs/protocols/fold-machine.md, "Invariants" invariants 1–14 and 16), the notices, and
//! the machine's getters after every step. Facts only: what the machine should do next is
//! never computed here, only whether what it did is allowed.

use super::{Check, Effect, Ending, Fed, InFlight, RepairCommand, Tracker, ensure, fail};
use crate::fuzz_bodies::fold_script::Item;
use crate::kv::{KvError, KvUpdate, WatchCursor};
use crate::protocol::fold::{
    ChunkSource, ExportReply, FoldCommand, FoldNotice, FoldPhase, MAX_STORE_APPLY_FAILURES,
    Pending, RepairKind, RestoreRefused, TaskEnd, Wants,
};
use crate::protocol::time::Millis;

impl Tracker {
    // -----------------------------------------------------------------------
    // Commands
    // -----------------------------------------------------------------------

    /// Judges one command, in queue order.
    pub(in crate::fuzz_bodies::fold_script) fn command(
        &mut self,
        command: &FoldCommand<Item>,
    ) -> Check {
        self.step_commands += 1;
        ensure(!self.finished, 14, || {
            format!("{command:?} queued after Finish")
        })?;
        // While a store apply is in flight the machine receives on: it may open a
        // window and answer an expiry, nothing that applies, announces or touches
        // the store (docs/protocols/fold-machine.md, "Store applies in flight").
        let beside_store = matches!(
            command,
            FoldCommand::SetTimer(_) | FoldCommand::AnswerExpiry(_)
        );
        ensure(
            self.outstanding.is_none() || self.outstanding == Some(Effect::Store) && beside_store,
            6,
            || {
                format!(
                    "{command:?} queued behind the outstanding {:?}",
                    self.outstanding
                )
            },
        )?;
        // Row K1 is a decision only: the step of a `WatchExpired` queues its
        // answer and nothing else.
        ensure(
            !self.expiry_owed || matches!(command, FoldCommand::AnswerExpiry(_)),
            0,
            || format!("{command:?} queued for a WatchExpired"),
        )?;
        match command {
            FoldCommand::SetTimer(Some(deadline)) => {
                let expected = self.now.plus_ms(self.window_ms);
                ensure(*deadline == expected, 16, || {
                    format!("window opened at {deadline:?}, expected now + window = {expected:?}")
                })?;
                self.deadline = Some(*deadline);
                if let Some(deferred) = self.deferred.take() {
                    // Row U0: the late update opens the next window.
                    self.ingest(deferred)?;
                }
            }
            FoldCommand::SetTimer(None) => {
                ensure(self.deadline.take().is_some(), 0, || {
                    "SetTimer(None) without an open window".into()
                })?;
            }
            FoldCommand::Apply(items) => self.apply(items)?,
            FoldCommand::StoreApply { raw, cursor } => self.store_apply(raw, cursor)?,
            FoldCommand::OnApplied(cursor) => self.on_applied(cursor)?,
            FoldCommand::RunExport | FoldCommand::ReplyExport(ExportReply::NoStore) => {
                let trigger = self
                    .export_step
                    .take()
                    .ok_or((0, format!("{command:?} without an export request")))?;
                self.flushed_since(trigger, 7, "an export was served")?;
                let store = matches!(command, FoldCommand::RunExport);
                ensure(store == self.has_store, 0, || {
                    format!("{command:?} with has_store = {}", self.has_store)
                })?;
                self.counts.exports += 1;
                if store {
                    self.outstanding = Some(Effect::Export);
                }
            }
            FoldCommand::ReplyExport(ExportReply::Held { until, .. }) => {
                // The scripts never report a kept key (`kept_high: None`), so no hold is set.
                return Err((
                    0,
                    format!("ReplyExport(Held until {until}) without a kept key"),
                ));
            }
            FoldCommand::ReplyExport(ExportReply::Result) => {
                ensure(self.fed == Fed::ExportDone, 0, || {
                    "ReplyExport(Result) without a finished export".into()
                })?;
            }
            FoldCommand::DiffRelist | FoldCommand::DiffRestore => {
                let relist = matches!(command, FoldCommand::DiffRelist);
                self.start_body(relist, command)?;
                self.outstanding = Some(Effect::Diff(if relist {
                    RepairCommand::DiffRelist
                } else {
                    RepairCommand::DiffRestore
                }));
            }
            FoldCommand::FilterListedLive | FoldCommand::ReadRetention => {
                let restore = self.restore_target().is_some();
                ensure(restore && self.body_started(), 0, || {
                    format!("{command:?} outside a restore")
                })?;
                self.outstanding = Some(Effect::Diff(
                    if matches!(command, FoldCommand::FilterListedLive) {
                        RepairCommand::FilterListedLive
                    } else {
                        RepairCommand::ReadRetention
                    },
                ));
            }
            FoldCommand::NextChunk { source, max } => {
                ensure(self.body_started(), 0, || {
                    format!("{command:?} outside a repair body")
                })?;
                ensure(*max == self.cap, 0, || {
                    format!("NextChunk max {max}, expected max(max, 1) = {}", self.cap)
                })?;
                let relist = matches!(
                    self.repair.as_ref().map(|r| &r.kind),
                    Some(RepairKind::Relist)
                );
                ensure(relist == (*source == ChunkSource::StaleDeletes), 0, || {
                    format!("{command:?} in a {:?}", self.repair)
                })?;
                self.last_chunk = Some(*source);
                self.outstanding = Some(Effect::Chunk(*source));
            }
            FoldCommand::DropRestored => {
                ensure(self.restore_target().is_some(), 0, || {
                    "DropRestored outside a restore".into()
                })?;
                if !self.body_started() {
                    // Row B2: the refusal is the first repair-body command.
                    self.start_body(false, command)?;
                }
            }
            FoldCommand::AckRelist => {
                let repair = self
                    .repair
                    .take()
                    .ok_or((0, "AckRelist without a repair".to_string()))?;
                ensure(matches!(repair.kind, RepairKind::Relist), 0, || {
                    format!("AckRelist ending {:?}", repair.kind)
                })?;
                ensure(
                    repair.exhausted.contains(&ChunkSource::StaleDeletes),
                    9,
                    || "AckRelist before the stale-delete source was exhausted".into(),
                )?;
                let exhausted = repair.exhausted_step.unwrap_or(self.step);
                self.flushed_since(exhausted, 9, "AckRelist")?;
                self.counts.relists += 1;
            }
            FoldCommand::ReplyRestore(reply) => self.reply_restore(reply)?,
            FoldCommand::Finish(result) => self.finish(result)?,
            // The answer to a `WatchExpired` (row K1) touches neither batch nor cursor.
            FoldCommand::AnswerExpiry(_) => {
                ensure(self.expiry_owed, 0, || {
                    "AnswerExpiry without a WatchExpired".into()
                })?;
                self.expiry_owed = false;
                self.counts.expiries += 1;
            }
        }
        Ok(())
    }

    fn body_started(&self) -> bool {
        self.repair.as_ref().is_some_and(|r| r.body_from.is_some())
    }

    /// The first repair-body command (rows B1–B3), invariants 7 and 8.
    fn start_body(&mut self, relist: bool, command: &FoldCommand<Item>) -> Check {
        let repair = self
            .repair
            .as_ref()
            .ok_or((0, format!("{command:?} without a repair")))?;
        ensure(repair.body_from.is_none(), 0, || {
            format!("{command:?} twice in one repair")
        })?;
        ensure(
            matches!(repair.kind, RepairKind::Relist) == relist,
            0,
            || format!("{command:?} for a {:?}", repair.kind),
        )?;
        let drained = repair
            .drained_step
            .ok_or((8, format!("{command:?} before BacklogDrained")))?;
        self.flushed_since(drained, 7, "the repair body started")?;
        ensure(self.uncommitted.is_empty(), 8, || {
            format!(
                "{command:?} while {} raw updates are uncommitted (settle must leave raw empty)",
                self.uncommitted.len()
            )
        })?;
        let applied = self.applied.clone();
        if let Some(repair) = self.repair.as_mut() {
            repair.body_from = Some(applied);
        }
        Ok(())
    }

    /// Whether everything ingested before step `trigger` has been flushed: every
    /// parsed item applied, every uncommitted raw update carried by a `StoreApply`
    /// at or after `trigger`, the pending cursor moved and (except for the window
    /// bound, invariant 16, where a streaming flush's store apply may still be in
    /// flight) announced, a dirty memo carried by a `StoreApply`.
    pub(super) fn flushed_since(&self, trigger: usize, invariant: u8, what: &str) -> Check {
        if let Some(r) = self.received.iter().find(|r| !r.applied) {
            return fail(
                invariant,
                format!("{what} while {:?} was not applied", r.item),
            );
        }
        if let Some(&i) = self
            .uncommitted
            .iter()
            .find(|&&i| self.received[i].sent_step.is_none_or(|s| s < trigger))
        {
            return fail(
                invariant,
                format!(
                    "{what} while raw {:?} (uncommitted) was not sent to the store since step {trigger}",
                    self.received[i].update
                ),
            );
        }
        ensure(self.last_known.is_none(), invariant, || {
            format!(
                "{what} while the cursor was not moved to {:?}",
                self.last_known
            )
        })?;
        ensure(
            self.advance_owed.is_none() || invariant == 16,
            invariant,
            || {
                format!(
                    "{what} while OnApplied({:?}) was still owed",
                    self.advance_owed
                )
            },
        )?;
        let memo_sent = self.last_store_apply_step.is_some_and(|s| s >= trigger);
        ensure(!self.memo_dirty || memo_sent, invariant, || {
            format!("{what} while the recorded eviction memo was not sent to the store")
        })
    }

    fn apply(&mut self, items: &[Item]) -> Check {
        self.counts.applies += 1;
        ensure(!items.is_empty(), 0, || "Apply of an empty batch".into())?;
        let pending: Vec<Item> = self
            .received
            .iter()
            .filter(|r| !r.applied)
            .filter_map(|r| r.item)
            .collect();
        // Flush step 3: the whole batch, in receive order.
        ensure(items == pending.as_slice(), 1, || {
            format!("Apply({items:?}) but the received, unapplied items are {pending:?}")
        })?;
        for r in &mut self.received {
            r.applied = true;
        }
        Ok(())
    }

    /// Invariant 1: a cursor `c` may be passed on (stored or announced) only once
    /// every parsed item received up to the last update whose version is `c` was
    /// applied; the restore target needs everything.
    fn check_cursor_after_apply(&self, cursor: &WatchCursor, what: &str) -> Check {
        let restore = self
            .restore_target()
            .is_some_and(|t| t.version() == cursor.version());
        let upto = if restore {
            self.received.len()
        } else {
            match self.received.iter().rposition(|r| {
                !r.correction
                    && !r.update.version().is_unknown()
                    && r.update.version() == cursor.version()
            }) {
                Some(i) => i + 1,
                None => 0,
            }
        };
        if let Some(r) = self.received[..upto].iter().find(|r| !r.applied) {
            return fail(
                1,
                format!(
                    "{what} {cursor:?} before the Apply holding {:?} (received before the update at that version)",
                    r.item
                ),
            );
        }
        Ok(())
    }

    /// The cursor a flush may move to: the last known version ingested, or the
    /// restore target at the final commit; `None` = the cursor must stay.
    fn advance_target(&self) -> Option<WatchCursor> {
        let memo = self.applied.seen_evicting();
        if let Some(version) = &self.last_known {
            return Some(WatchCursor::from_version(version.clone()).remembering(memo));
        }
        let repair = self.repair.as_ref()?;
        let RepairKind::Restore { target } = &repair.kind else {
            return None;
        };
        repair
            .exhausted
            .contains(&ChunkSource::RestoreDeletes)
            .then(|| target.clone().remembering(memo))
    }

    fn store_apply(&mut self, raw: &[KvUpdate], cursor: &WatchCursor) -> Check {
        self.counts.store_applies += 1;
        if raw.is_empty() {
            self.counts.empty_store_applies += 1;
        }
        ensure(self.has_store, 0, || "StoreApply without a store".into())?;
        // Invariant 2: every raw update received and not committed, failed ones
        // first, in receive order.
        let expected: Vec<&KvUpdate> = self
            .uncommitted
            .iter()
            .map(|&i| &self.received[i].update)
            .collect();
        let carried: Vec<&KvUpdate> = raw.iter().collect();
        ensure(carried == expected, 2, || {
            format!(
                "StoreApply carried {} updates {carried:?}; the uncommitted ones are {} {expected:?}",
                carried.len(),
                expected.len()
            )
        })?;
        self.check_cursor_after_apply(cursor, "StoreApply with cursor")?;
        match self.advance_target() {
            Some(target) => {
                let invariant = if self.last_known.is_some() { 3 } else { 9 };
                ensure(*cursor == target, invariant, || {
                    format!("StoreApply moved the cursor to {cursor:?}, expected {target:?}")
                })?;
                if self.last_known.is_none()
                    && let Some(repair) = self.repair.as_mut()
                {
                    repair.final_store_apply = true;
                }
                self.last_known = None;
                self.advance_owed = Some(cursor.clone());
                self.applied = cursor.clone();
            }
            None => {
                let invariant = if self.body_started() { 9 } else { 3 };
                ensure(*cursor == self.applied, invariant, || {
                    format!(
                        "StoreApply moved the cursor to {cursor:?} with no known version ingested (applied {:?})",
                        self.applied
                    )
                })?;
            }
        }
        for &i in &self.uncommitted {
            self.received[i].sent_step = Some(self.step);
        }
        self.last_store_apply_step = Some(self.step);
        self.in_flight = Some(InFlight {
            raw: raw.to_vec(),
            cursor: cursor.clone(),
        });
        self.outstanding = Some(Effect::Store);
        Ok(())
    }

    fn on_applied(&mut self, cursor: &WatchCursor) -> Check {
        self.counts.on_applied += 1;
        if self.has_store {
            // Invariant 11: the advance went to the store first, even with an empty batch.
            // Invariant 1 was judged when that `StoreApply` was queued (applied items
            // stay applied); judging it again now would mistake an update received
            // since, with the same version (a regressed stream), for the one that
            // moved the cursor while the store apply was in flight.
            ensure(self.advance_owed.as_ref() == Some(cursor), 11, || {
                format!(
                    "OnApplied({cursor:?}) without a StoreApply carrying it (owed {:?})",
                    self.advance_owed
                )
            })?;
            self.advance_owed = None;
        } else {
            self.check_cursor_after_apply(cursor, "OnApplied")?;
            let target = self.advance_target().ok_or((
                if self.body_started() { 9 } else { 3 },
                format!("OnApplied({cursor:?}) with no known version ingested"),
            ))?;
            ensure(*cursor == target, 3, || {
                format!("OnApplied({cursor:?}), expected {target:?}")
            })?;
            if self.last_known.is_none()
                && let Some(repair) = self.repair.as_mut()
            {
                repair.final_store_apply = true;
            }
            self.last_known = None;
            self.applied = cursor.clone();
        }
        if let Some(repair) = &self.repair
            && repair.body_from.is_some()
        {
            // Invariant 9: corrections never move the cursor; only the restore's
            // final commit does.
            ensure(repair.final_store_apply, 9, || {
                format!("OnApplied({cursor:?}) during a repair body")
            })?;
        }
        Ok(())
    }

    fn reply_restore(&mut self, reply: &Result<WatchCursor, RestoreRefused>) -> Check {
        let repair = self
            .repair
            .take()
            .ok_or((0, "ReplyRestore without a repair".to_string()))?;
        let RepairKind::Restore { target } = &repair.kind else {
            return fail(0, format!("ReplyRestore ending {:?}", repair.kind));
        };
        let from = repair
            .body_from
            .clone()
            .ok_or((8, "ReplyRestore before the repair body".to_string()))?;
        match reply {
            Ok(cursor) => {
                ensure(cursor == target, 0, || {
                    format!("ReplyRestore(Ok({cursor:?})) for target {target:?}")
                })?;
                // Invariant 10.
                ensure(cursor.rank() > from.rank(), 10, || {
                    format!(
                        "restore to {} accepted over applied {} (not ahead)",
                        cursor.rank(),
                        from.rank()
                    )
                })?;
                // Invariant 9: every chunk flushed, the cursor moved only at the end.
                ensure(
                    repair.exhausted.contains(&ChunkSource::RestoreDeletes),
                    9,
                    || "ReplyRestore(Ok) before the delete source was exhausted".into(),
                )?;
                ensure(repair.final_store_apply, 9, || {
                    "ReplyRestore(Ok) before the final commit moved the cursor".into()
                })?;
                let exhausted = repair.exhausted_step.unwrap_or(self.step);
                self.flushed_since(exhausted, 9, "ReplyRestore(Ok)")?;
                ensure(self.applied.version() == target.version(), 9, || {
                    format!("ReplyRestore(Ok) with applied {:?}", self.applied)
                })?;
                self.counts.restores += 1;
            }
            Err(refusal) => {
                self.counts.refusals += 1;
                ensure(repair.corrections == 0, 9, || {
                    format!(
                        "{refusal:?} after {} corrections were folded",
                        repair.corrections
                    )
                })?;
                match refusal {
                    RestoreRefused::NotAhead { artifact, applied } => {
                        ensure(artifact == target && *applied == from, 0, || {
                            format!("{refusal:?} for target {target:?} at applied {from:?}")
                        })?;
                    }
                    RestoreRefused::EvictedDuringListing { artifact, .. } => {
                        ensure(artifact == target && repair.retention_read, 0, || {
                            format!("{refusal:?} without a retention read")
                        })?;
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, result: &Result<WatchCursor, KvError>) -> Check {
        self.counts.finishes += 1;
        let message = match result {
            Err(KvError::WatchError(m)) => Some(m.as_str()),
            _ => None,
        };
        let starts = |prefix: &str| message.is_some_and(|m| m.starts_with(prefix));
        match self.fed {
            Fed::StoreFailed if self.fail_streak >= MAX_STORE_APPLY_FAILURES => {
                // Invariant 5: fail-stop, and nothing else (flush step 7 stops).
                let prefix = format!(
                    "store apply failed {} consecutive times",
                    MAX_STORE_APPLY_FAILURES
                );
                ensure(starts(&prefix), 5, || {
                    format!("fail-stop ended with {result:?}")
                })?;
                ensure(self.step_commands == 1, 5, || {
                    "commands queued before the fail-stop's Finish".into()
                })?;
                self.counts.fail_stops += 1;
            }
            Fed::StoreLost => {
                ensure(starts("snapshot store task panicked: "), 0, || {
                    format!("a lost store ended with {result:?}")
                })?;
            }
            Fed::ExportPanicked => {
                ensure(starts("snapshot export task panicked: "), 0, || {
                    format!("a panicked export ended with {result:?}")
                })?;
            }
            Fed::RepairFailed => {
                ensure(message.is_some(), 0, || {
                    format!("a failed repair step ended with {result:?}")
                })?;
            }
            Fed::StoreFailed | Fed::ExportDone | Fed::Other => {
                let (ending, trigger) = self
                    .ending
                    .clone()
                    .ok_or((0, format!("Finish({result:?}) without a cause")))?;
                self.flushed_since(trigger, 7, "the run finished")?;
                let resume = if self.has_store {
                    &self.committed
                } else {
                    &self.applied
                };
                let ok = match (&ending, result) {
                    (Ending::Shutdown | Ending::Watch(TaskEnd::Clean), Ok(cursor)) => {
                        cursor == resume
                    }
                    (Ending::Watch(TaskEnd::Failed(e)), Err(got)) => e == got,
                    (Ending::Watch(TaskEnd::Panicked(m)), Err(KvError::WatchError(got))) => {
                        *got == format!("watch task panicked: {m}")
                    }
                    _ => false,
                };
                ensure(ok, 13, || {
                    format!("{ending:?} finished with {result:?} (resume cursor {resume:?})")
                })?;
            }
        }
        self.finished = true;
        self.deferred = None;
        Ok(())
    }

    /// Judges a notice (only the facts they carry that the tracker knows).
    pub(in crate::fuzz_bodies::fold_script) fn notice(&mut self, notice: &FoldNotice) -> Check {
        match notice {
            FoldNotice::CursorMovedBack { .. } => self.counts.moved_back += 1,
            FoldNotice::Committed { cursor, .. } => {
                ensure(*cursor == self.committed, 13, || {
                    format!(
                        "notice Committed({cursor:?}) but the store holds {:?}",
                        self.committed
                    )
                })?;
            }
            FoldNotice::StoreApplyFailed { streak, .. } | FoldNotice::FailStop { streak, .. } => {
                ensure(*streak == self.fail_streak, 5, || {
                    format!(
                        "notice streak {streak}, {} consecutive failures fed",
                        self.fail_streak
                    )
                })?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// What the machine shows after a step.
pub(in crate::fuzz_bodies::fold_script) struct Observed<'a> {
    pub(in crate::fuzz_bodies::fold_script) wants: Wants,
    pub(in crate::fuzz_bodies::fold_script) phase: FoldPhase,
    pub(in crate::fuzz_bodies::fold_script) timeout: Option<Millis>,
    pub(in crate::fuzz_bodies::fold_script) applied: &'a WatchCursor,
    pub(in crate::fuzz_bodies::fold_script) committed: &'a WatchCursor,
    pub(in crate::fuzz_bodies::fold_script) resume: &'a WatchCursor,
    pub(in crate::fuzz_bodies::fold_script) streak: u32,
    pub(in crate::fuzz_bodies::fold_script) has_store: bool,
}

impl Tracker {
    /// Judges the machine's state after a step (`before` = its getters before).
    pub(in crate::fuzz_bodies::fold_script) fn after_step(
        &mut self,
        now: &Observed<'_>,
        before_applied: &WatchCursor,
        before_committed: &WatchCursor,
        committed_event: bool,
    ) -> Check {
        ensure(!self.expiry_owed, 0, || {
            "a WatchExpired was not answered in its step".into()
        })?;
        // Invariant 12: the memo never clears.
        ensure(
            !before_applied.seen_evicting() || now.applied.seen_evicting(),
            12,
            || {
                format!(
                    "applied lost the memo: {before_applied:?} -> {:?}",
                    now.applied
                )
            },
        )?;
        ensure(
            !before_committed.seen_evicting() || now.committed.seen_evicting(),
            12,
            || {
                format!(
                    "committed lost the memo: {before_committed:?} -> {:?}",
                    now.committed
                )
            },
        )?;
        // Invariant 13: store authority.
        ensure(
            now.committed == before_committed || committed_event,
            13,
            || {
                format!(
                    "committed moved {before_committed:?} -> {:?} without a commit",
                    now.committed
                )
            },
        )?;
        ensure(*now.committed == self.committed, 13, || {
            format!(
                "committed() is {:?}, the store holds {:?}",
                now.committed, self.committed
            )
        })?;
        ensure(now.has_store == self.has_store, 13, || {
            format!(
                "has_store() is {}, expected {}",
                now.has_store, self.has_store
            )
        })?;
        let resume = if self.has_store {
            &self.committed
        } else {
            &self.applied
        };
        ensure(now.resume == resume, 13, || {
            format!("resume_cursor() is {:?}, expected {resume:?}", now.resume)
        })?;
        ensure(*now.applied == self.applied, 1, || {
            format!(
                "applied() is {:?}, the commands moved it to {:?}",
                now.applied, self.applied
            )
        })?;
        // Invariant 5: the streak is what was fed; the 16th failure ends the run.
        if !self.finished {
            ensure(now.streak == self.fail_streak, 5, || {
                format!(
                    "store_fail_streak() {} after {} consecutive failures",
                    now.streak, self.fail_streak
                )
            })?;
        }
        ensure(
            self.fail_streak < MAX_STORE_APPLY_FAILURES || self.finished,
            5,
            || {
                format!(
                    "{} consecutive failures and the run goes on",
                    self.fail_streak
                )
            },
        )?;
        // Invariant 11: a recorded memo goes to the store at once, even with an
        // empty batch (row E1 flushes), or, with a store apply in flight, with the
        // flush that waits for it.
        if let Some(memo) = self.memo_step
            && self.has_store
            && !self.finished
        {
            let sent = self.last_store_apply_step.is_some_and(|s| s >= memo);
            ensure(sent || self.outstanding == Some(Effect::Store), 11, || {
                "the recorded eviction memo was not sent to the store".into()
            })?;
        }
        // The drive-loop contract: wants() and the phase agree with the facts.
        let expected = if self.finished {
            Some(Wants::Nothing)
        } else {
            match self.outstanding {
                // A store apply in flight is awaited (a flush waits for it) or the
                // machine receives on beside it.
                Some(Effect::Store) if now.wants == Wants::Completion(Pending::Store) => {
                    Some(now.wants)
                }
                Some(Effect::Store) => None,
                Some(Effect::Export) => Some(Wants::Completion(Pending::Export)),
                Some(Effect::Diff(_) | Effect::Chunk(_)) => {
                    Some(Wants::Completion(Pending::RepairIo))
                }
                None => None,
            }
        };
        if let Some(expected) = expected {
            ensure(
                now.wants == expected,
                if self.finished { 14 } else { 6 },
                || format!("wants() is {:?}, expected {expected:?}", now.wants),
            )?;
        } else {
            let draining = self
                .repair
                .as_ref()
                .is_some_and(|r| r.drained_step.is_none());
            let expected = if draining { Wants::Backlog } else { Wants::Any };
            ensure(now.wants == expected, 8, || {
                format!("wants() is {:?}, expected {expected:?}", now.wants)
            })?;
        }
        if self.finished {
            ensure(now.phase == FoldPhase::Finished, 14, || {
                format!("phase {:?} after Finish", now.phase)
            })?;
        }
        // Invariant 16: the deadline is the one the machine announced, while batching.
        let timeout_ok = match now.phase {
            FoldPhase::Batching => now.timeout.is_some() && now.timeout == self.deadline,
            _ => now.timeout.is_none(),
        };
        ensure(timeout_ok, 16, || {
            format!(
                "poll_timeout() {:?} in phase {:?}, the window set is {:?}",
                now.timeout, now.phase, self.deadline
            )
        })?;
        ensure(
            self.deferred.is_none() || self.outstanding.is_some(),
            16,
            || "a late update was accepted but never ingested".into(),
        )?;
        if let Some(late) = self.late_step
            && self.flushed_since(late, 16, "").is_ok()
        {
            self.late_step = None;
        }
        Ok(())
    }
}
