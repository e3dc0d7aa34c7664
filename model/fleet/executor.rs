//! The fleet model's nodes: each node's watch task is a production `RepairMachine`
//! driven as the watch-task executor drives it (docs/protocols/repair.md, "Watch-task executor");
//! the fold's half of a relist and a restore calls the production kernels; a publish
//! runs the manifest kernels. One model step runs the machine until it waits on a
//! watch or finishes (see the module docs of `model/fleet.rs` for what that leaves out).

use kvfold::protocol::fold::{
    effective_mode, export_hold_after_restore, kept_high, settle_export_hold,
};
use kvfold::protocol::manifest::{
    ARTIFACT_SCHEMA_VERSION, ArtifactFile, ExportManifest, decode_manifest, encode_manifest,
};
use kvfold::protocol::repair::{
    ArtifactView, RepairCommand, RepairEvent, RepairMachine, RepairPhase, RepairStart, arm_repair,
    eviction_observed,
};
use kvfold::protocol::time::Millis;
use kvfold::protocol::{
    KeyRestore, KeyState, RepairMode, cursor_rank, restore_ahead, restore_key, resume_window_ok,
};
use kvfold::{KvError, Retention, WatchCursor};

use super::{FleetModel, FleetState, Mutation, Seen, Slot};

/// The clock of every event but `PollDue` (which carries the machine's own deadline):
/// time matters to the machine only for its retention polls.
const NOW: Millis = Millis(0);

/// A node's run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Run {
    /// Not running (cold, stopped, or its run ended with a restartable error).
    Offline,
    /// The repair machine waits on a watch.
    Watching {
        /// The watch task's machine (phase `Watching`).
        machine: Box<RepairMachine>,
        /// The next revision the consumer delivers.
        next: u8,
        /// The rank a resumed (`_from`) watch started after; `None` for a full watch.
        resumed_from: Option<u8>,
        /// This watch's one modelled retention poll happened.
        polled: bool,
    },
    /// The run failed with a `WatchError`: the node knowingly cannot recover (loud).
    Failed,
}

/// One node: its snapshot store (survives going offline) and its run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    /// The store's keys.
    pub store: Vec<Slot>,
    /// The store's cursor rank (0 = no cursor).
    pub cursor: u8,
    /// The store cursor's eviction memo.
    pub memo: bool,
    /// Per key, the highest known revision the fold held or deleted (history).
    pub high: Vec<u8>,
    /// History: the node's machine observed eviction (`SendEvicting`) at least once.
    pub observed: bool,
    /// The fold's export hold (`FoldMachine::export_hold`): set by a restore that kept
    /// listed-live keys, settled as the cursor moves; it lives as long as the run.
    pub export_hold: Option<u8>,
    /// The current run.
    pub run: Run,
}

impl Node {
    /// A node that never ran: empty store, no cursor.
    pub fn cold(keys: u8) -> Self {
        Self {
            store: vec![None; usize::from(keys)],
            cursor: 0,
            memo: false,
            high: vec![0; usize::from(keys)],
            observed: false,
            export_hold: None,
            run: Run::Offline,
        }
    }

    /// The store's cursor as the fold persists it (memo included).
    fn watch_cursor(&self) -> WatchCursor {
        let c = if self.cursor == 0 {
            WatchCursor::none()
        } else {
            WatchCursor::from_u64(u64::from(self.cursor))
        };
        c.remembering(self.memo)
    }

    /// The fold takes a write of known revision `rev` for `key` (`slot` = the value
    /// held after it); a revision below one held or deleted before is a backward move.
    fn take(&mut self, key: u8, slot: Slot, rev: u8, seen: &mut Seen) {
        let k = usize::from(key);
        if rev < self.high[k] {
            seen.insert(Seen::BACKWARD);
        }
        self.high[k] = self.high[k].max(rev);
        self.store[k] = slot;
    }
}

/// A published artifact: the exporter's fold and cursor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Artifact {
    /// The cursor rank the fold is consistent with.
    pub cursor: u8,
    /// The cursor's eviction memo.
    pub memo: bool,
    /// The fold.
    pub slots: Vec<Slot>,
}

impl Artifact {
    /// The manifest a publisher writes for it (scope: every key).
    fn manifest(&self) -> ExportManifest {
        ExportManifest {
            schema_version: ARTIFACT_SCHEMA_VERSION,
            backend: "append-log".into(),
            backend_version: "3".into(),
            cursor: WatchCursor::from_u64(u64::from(self.cursor)).remembering(self.memo),
            created_at_unix: 0,
            files: vec![ArtifactFile {
                path: "data/fold.snap".into(),
                size: 0,
                blake3: "0".repeat(64),
            }],
            scope: Some(vec![String::new()]),
        }
    }

    /// What `RestoreSource::latest` / `fetch` hand the machine.
    fn view(&self) -> ArtifactView {
        ArtifactView::of(&self.manifest())
    }
}

/// The watch scope of every node: all keys.
fn scope() -> Vec<String> {
    vec![String::new()]
}

impl FleetModel {
    /// Whether the oldest retained message may leave the bucket: an evicting bucket
    /// ages out anything; otherwise only a superseded message is discarded.
    pub(super) fn can_age_out(&self, state: &FleetState) -> bool {
        let rev = state.floor;
        if usize::from(rev) > state.log.len() {
            return false;
        }
        let key = state.log[usize::from(rev) - 1].key;
        state.evicting || state.last_write(key).is_some_and(|(last, _)| last > rev)
    }

    /// `Start`: a run of `watch_applied` with `ExpiryRepair::Auto` and a store.
    pub(super) fn start(&self, state: &mut FleetState, i: usize) {
        let armed = arm_repair(RepairMode::Auto, true).expect("Auto with a store arms");
        // A new run: a new fold machine, without a hold.
        if !self.hold_survives_restart {
            state.nodes[i].export_hold = None;
        }
        let node = &state.nodes[i];
        let mut machine = RepairMachine::new(RepairStart {
            mode: effective_mode(RepairMode::Auto, armed),
            resume: Some(node.watch_cursor()),
            unanchored: node.cursor == 0 && node.store.iter().any(Option::is_some),
            scope: scope(),
        });
        feed(state, &mut machine, RepairEvent::Start { now: NOW });
        self.drive(state, i, machine, None);
    }

    /// Whether a retention poll of node `i` is worth exploring: its watch has a poll
    /// deadline, it has not polled during this watch, and the poll would find eviction
    /// its memo lacks (a poll that finds nothing only moves the clock).
    pub(super) fn can_poll(&self, state: &FleetState, i: usize) -> bool {
        match &state.nodes[i].run {
            Run::Watching {
                machine, polled, ..
            } => {
                !polled
                    && machine.poll_timeout().is_some()
                    && !machine.memo()
                    && eviction_observed(Some(state.retention()))
            }
            _ => false,
        }
    }

    /// `Poll`: the retention poll's deadline passes (`PollDue`); the watch stays
    /// active while the machine reads retention and hands `Evicting` to the fold.
    pub(super) fn poll(&self, state: &mut FleetState, i: usize) {
        let Run::Watching {
            machine,
            next,
            resumed_from,
            ..
        } = state.nodes[i].run.clone()
        else {
            return;
        };
        let mut machine = *machine;
        let Some(now) = machine.poll_timeout() else {
            return;
        };
        feed(state, &mut machine, RepairEvent::PollDue { now });
        self.drive(state, i, machine, Some((next, resumed_from, true)));
        if let Run::Watching { machine, .. } = &state.nodes[i].run
            && machine.memo()
        {
            state.seen.insert(Seen::POLL_OBSERVED);
        }
    }

    /// `Deliver`: the consumer hands the next revision to the fold, or the floor
    /// guard trips because it aged out (`CursorExpired` ends the watch).
    pub(super) fn deliver(&self, state: &mut FleetState, i: usize) {
        let Run::Watching {
            machine,
            next,
            resumed_from,
            polled,
        } = state.nodes[i].run.clone()
        else {
            return;
        };
        if next < state.floor {
            if resumed_from.is_some_and(|from| state.nodes[i].cursor > from) {
                state.seen.insert(Seen::TRIPPED_MID_WATCH);
            }
            let mut machine = *machine;
            feed(
                state,
                &mut machine,
                RepairEvent::WatchEnded {
                    now: NOW,
                    result: Err(KvError::CursorExpired),
                },
            );
            self.drive(state, i, machine, None);
            return;
        }
        let w = state.log[usize::from(next) - 1];
        let mut seen = state.seen;
        let node = &mut state.nodes[i];
        node.take(w.key, w.put.then_some(next), next, &mut seen);
        node.cursor = next;
        node.export_hold = settle(node.export_hold, next);
        node.run = Run::Watching {
            machine,
            next: next + 1,
            resumed_from,
            polled,
        };
        state.seen = seen;
    }

    /// `Publish`: export the node's fold; the manifest must pass the decoder.
    pub(super) fn publish(&self, state: &mut FleetState, i: usize) {
        let node = &state.nodes[i];
        let cursor = match (&node.run, self.mutation) {
            (
                Run::Watching {
                    resumed_from: Some(from),
                    ..
                },
                Mutation::ArtifactCursorBehind,
            ) if *from > 0 => *from,
            _ => node.cursor,
        };
        let artifact = Artifact {
            cursor,
            memo: node.memo,
            slots: node.store.clone(),
        };
        let manifest = artifact.manifest();
        let decoded = decode_manifest(&encode_manifest(&manifest))
            .expect("a publisher writes only manifests the decoder accepts");
        assert_eq!(decoded, manifest);
        state.artifact = Some(artifact);
    }

    /// The retention reading handed to the machine in `phase`: the bucket's, unless
    /// a mutation hides eviction from that decision.
    fn retention_for(&self, state: &FleetState, phase: RepairPhase) -> Retention {
        let honest = state.retention();
        let hide = match self.mutation {
            Mutation::RelistOnEvicting => matches!(
                phase,
                RepairPhase::InitialPoll | RepairPhase::Polling | RepairPhase::Planning
            ),
            Mutation::FreshStartRelist => phase == RepairPhase::CheckingStart,
            _ => false,
        };
        Retention {
            evicts_current_values: honest.evicts_current_values && !hide,
            ..honest
        }
    }

    /// Performs the machine's commands in order, feeding each completion, until it
    /// waits on a watch or finishes; then stores the run.
    /// `watch` is the watch still active when the machine was fed (a poll):
    /// `(next, resumed_from, polled)`.
    fn drive(
        &self,
        state: &mut FleetState,
        i: usize,
        mut machine: RepairMachine,
        mut watch: Option<(u8, Option<u8>, bool)>,
    ) {
        let mut fetched: Option<Artifact> = None;
        let mut finished: Option<Result<(), KvError>> = None;
        while let Some(command) = machine.poll_command() {
            let event = match command {
                RepairCommand::ReadRetention => {
                    let phase = machine.phase();
                    if phase == RepairPhase::Planning && state.used.eviction_off {
                        state.seen.insert(Seen::PLANNED_AFTER_OFF);
                    }
                    let r = self.retention_for(state, phase);
                    Some(RepairEvent::Retention {
                        now: NOW,
                        result: Ok(Some(r)),
                    })
                }
                RepairCommand::SendEvicting => {
                    // The fold commits the memo at once (fold.md row E1).
                    if self.mutation != Mutation::NoEvictionMemo {
                        state.nodes[i].memo = true;
                    }
                    state.nodes[i].observed = true;
                    state.seen.insert(Seen::MEMO_SET);
                    Some(RepairEvent::EvictingSent {
                        now: NOW,
                        delivered: true,
                    })
                }
                RepairCommand::StartWatch { from: None } => {
                    self.state_sync(state, i);
                    watch = Some((state.log.len() as u8 + 1, None, false));
                    None
                }
                RepairCommand::StartWatch { from: Some(c) } => {
                    let rank = cursor_rank(&c);
                    if resume_window_ok(rank, u64::from(state.floor)) {
                        let rank = rank as u8;
                        watch = Some((rank + 1, Some(rank), false));
                        None
                    } else {
                        // The resume check (ResumeGuard pre-check) reports expiry.
                        Some(RepairEvent::WatchEnded {
                            now: NOW,
                            result: Err(KvError::CursorExpired),
                        })
                    }
                }
                RepairCommand::SendRelist { .. } => {
                    self.relist(state, i);
                    Some(RepairEvent::RelistAcked { now: NOW })
                }
                RepairCommand::PeekLatest => Some(RepairEvent::Latest {
                    now: NOW,
                    result: latest(state),
                }),
                RepairCommand::FetchArtifact => {
                    fetched = state.artifact.clone();
                    Some(RepairEvent::Fetched {
                        now: NOW,
                        result: latest(state),
                    })
                }
                RepairCommand::DropFetched => {
                    fetched = None;
                    None
                }
                RepairCommand::SendRestore => {
                    let result = match fetched.take() {
                        Some(artifact) => self.restore(state, i, &artifact),
                        None => Err(KvError::WatchError("no fetched artifact".into())),
                    };
                    Some(RepairEvent::RestoreReplied { now: NOW, result })
                }
                RepairCommand::Finish(result) => {
                    finished = Some(result);
                    None
                }
            };
            if let Some(event) = event {
                if matches!(event, RepairEvent::WatchEnded { .. }) {
                    watch = None;
                }
                feed(state, &mut machine, event);
            }
        }
        while machine.poll_notice().is_some() {}
        let node = &mut state.nodes[i];
        node.run = match (finished, watch) {
            (Some(Err(KvError::WatchError(_))), _) => {
                state.seen.insert(Seen::LOUD);
                Run::Failed
            }
            (Some(_), _) => Run::Offline,
            (None, Some((next, resumed_from, polled))) => Run::Watching {
                machine: Box::new(machine),
                next,
                resumed_from,
                polled,
            },
            (None, None) => {
                state.seen.insert(Seen::CONTRACT_BROKEN);
                Run::Offline
            }
        };
        if !matches!(node.run, Run::Watching { .. }) && !self.hold_survives_restart {
            // The run's fold machine, and its hold, end with it.
            node.export_hold = None;
        }
    }

    /// `StartWatch{None}`: the full-scope state-sync watch's snapshot: the last
    /// retained message of every key (puts and delete markers), cursor at the last
    /// one delivered. Keys it does not deliver stay as they are.
    fn state_sync(&self, state: &mut FleetState, i: usize) {
        let mut seen = state.seen;
        let mut last_delivered = None;
        for key in 0..self.bounds.keys {
            if let Some((rev, put)) = state.last_write(key)
                && rev >= state.floor
            {
                state.nodes[i].take(key, put.then_some(rev), rev, &mut seen);
                last_delivered = last_delivered.max(Some(rev));
            }
        }
        if let Some(rev) = last_delivered {
            let node = &mut state.nodes[i];
            node.cursor = node.cursor.max(rev);
            node.export_hold = settle(node.export_hold, node.cursor);
        }
        state.seen = seen;
    }

    /// `SendRelist`: the relist diff (docs/protocols/repair.md §6): every fold key the bucket
    /// does not list gets a synthetic delete (unknown version); the cursor stays.
    fn relist(&self, state: &mut FleetState, i: usize) {
        state.seen.insert(Seen::RELISTED);
        for key in 0..self.bounds.keys {
            if !state.listed(key) {
                state.nodes[i].store[usize::from(key)] = None;
            }
        }
    }

    /// `SendRestore`: the fold's half of a restore (docs/protocols/repair.md §7.2): the
    /// authoritative ahead check, the per-key rule, the listed-live filter, the
    /// retention re-check, the rewrites and deletes, the final commit at the
    /// artifact's cursor (memo OR-ed).
    fn restore(
        &self,
        state: &mut FleetState,
        i: usize,
        artifact: &Artifact,
    ) -> Result<WatchCursor, KvError> {
        let target = u64::from(artifact.cursor);
        let applied = u64::from(state.nodes[i].cursor);
        if !restore_ahead(target, applied) {
            return Err(KvError::WatchError(
                "cursor-expired restore: the artifact is not ahead of the applied fold".into(),
            ));
        }
        let node = &state.nodes[i];
        let state_of = |slot: Slot| slot.map_or(KeyState::Absent, |r| KeyState::At(Some(r.into())));
        let mut rewrites = Vec::new();
        let mut candidates = Vec::new();
        for k in 0..usize::from(self.bounds.keys) {
            let (ours, theirs) = (node.store[k], artifact.slots[k]);
            let identical = ours.is_some() && ours == theirs;
            if theirs.is_some()
                && restore_key(state_of(ours), state_of(theirs), identical, false)
                    == KeyRestore::TakeArtifact
            {
                rewrites.push(k);
            }
            if ours.is_some()
                && theirs.is_none()
                && restore_key(state_of(ours), KeyState::Absent, false, false) == KeyRestore::Delete
            {
                candidates.push(k);
            }
        }
        let mut kept = None;
        if !candidates.is_empty() {
            let before = candidates.len();
            let mut revisions = Vec::new();
            candidates.retain(|&k| {
                let listed = state.listed(k as u8);
                let delete = restore_key(state_of(node.store[k]), KeyState::Absent, false, listed)
                    == KeyRestore::Delete;
                if !delete {
                    // `reader.entry(key)` after the listing: the key's current revision.
                    revisions.push(state.last_write(k as u8).map(|(rev, _)| u64::from(rev)));
                }
                delete
            });
            if candidates.len() < before {
                state.seen.insert(Seen::KEPT_LISTED_LIVE);
            }
            // What `FilterListedLive` reports (`RepairIo::LiveFiltered::kept_high`).
            kept = kept_high(&revisions, Some(state.log.len() as u64));
            if self.mutation == Mutation::NoExportHold {
                kept = None;
            }
            if !resume_window_ok(target, u64::from(state.floor)) {
                return Err(KvError::WatchError(
                    "cursor-expired restore: messages were evicted during the listing".into(),
                ));
            }
        }
        state.seen.insert(if applied == 0 {
            Seen::SEEDED
        } else {
            Seen::RESTORED
        });
        let mut seen = state.seen;
        let node = &mut state.nodes[i];
        for k in rewrites {
            let slot = artifact.slots[k];
            node.take(k as u8, slot, slot.unwrap_or(0), &mut seen);
        }
        for k in candidates {
            node.store[k] = None;
        }
        node.cursor = artifact.cursor;
        node.export_hold = export_hold_after_restore(
            node.export_hold.map(u64::from),
            kept,
            u64::from(artifact.cursor),
        )
        .map(|h| u8::try_from(h).unwrap_or(u8::MAX));
        if self.mutation != Mutation::NoEvictionMemo {
            node.memo |= artifact.memo;
        }
        state.seen = seen;
        Ok(node.watch_cursor())
    }
}

/// The hold after the fold committed `cursor` (`settle_export_hold`).
fn settle(hold: Option<u8>, cursor: u8) -> Option<u8> {
    settle_export_hold(hold.map(u64::from), u64::from(cursor)).map(|h| h as u8)
}

/// `RestoreSource::latest` / `fetch`: the newest published artifact's view.
fn latest(state: &FleetState) -> Result<ArtifactView, String> {
    state
        .artifact
        .as_ref()
        .map(Artifact::view)
        .ok_or_else(|| "no artifact is published".to_string())
}

/// Feeds one event; a rejection breaks the drive-loop contract.
fn feed(state: &mut FleetState, machine: &mut RepairMachine, event: RepairEvent) {
    if machine.handle(event).is_err() {
        state.seen.insert(Seen::CONTRACT_BROKEN);
    }
}
