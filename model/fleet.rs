//! The `fleet` model (docs/verification.md, "Stateright models", matrix row 17): two
//! nodes fold one bucket that may evict current values, go offline (so their cursors
//! expire), restart, repair, seed from the newest published artifact and publish their
//! own. Each node's watch task is the production [`RepairMachine`], driven the way the
//! watch-task executor drives it (docs/protocols/repair.md, "Watch-task executor"); the fold's
//! half of a restore calls the production kernels (`restore_ahead`, `restore_key`,
//! `resume_window_ok`, and the export hold's `kept_high` and
//! `export_hold_after_restore`); a publish is enabled only when `export_held` is
//! false, and publishing runs the manifest kernels (`encode_manifest`,
//! `decode_manifest`, `ArtifactView::of`, `pointer_publish_allowed`). Nothing is
//! re-implemented; mutations are model-side wrappers that hide one fact from one
//! decision (docs/verification.md, "Mutations").
//!
//! Property: no write is lost silently. Every node that has not failed loudly holds, at
//! every step, a fold that together with every write after its cursor is the truth
//! (every write minus every real delete); the only reachable loss is a write that aged
//! out before any node folded it, and a node that would need it fails with a
//! `WatchError` instead. No node ever holds a key at a revision older than one it held
//! or deleted before.
//!
//! What is abstracted (docs/decisions.md, entries 113–115): one model step runs a
//! node's machine until it waits on a watch or finishes, with the bucket unchanged
//! meanwhile; every node runs `ExpiryRepair::Auto` over all keys with a store that
//! never fails (store faults are the `fold` model's); a state-sync watch takes its
//! snapshot in one step; a watch whose next revision aged out trips on the floor
//! (the `resume` model checks the guard); publish and seed go through one pointer
//! (artifact transport has not landed), `latest` and `fetch` returning the same
//! artifact; retention polls are explored once per watch, and only when they would
//! find eviction; the operator switches eviction off only after every running node
//! observed it (outside the memo's documented blind spot).
//!
//! Shared by the `model` test target (`mod fleet;`).
//!
//! [`RepairMachine`]: kvfold::protocol::repair::RepairMachine

use std::fmt;

use kvfold::protocol::fold::export_held;
use kvfold::protocol::{PointerState, pointer_publish_allowed};
use stateright::{Model, Property};

#[path = "fleet/executor.rs"]
mod executor;
#[cfg(test)]
#[path = "fleet/tests.rs"]
mod tests;

pub use executor::{Artifact, Node, Run};

// ===========================================================================
// Configuration: bounds, mutation
// ===========================================================================

/// Number of nodes in the fleet.
pub const NODES: usize = 2;

/// Every limit of one run of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bounds {
    /// Writes to the bucket over the whole run.
    pub writes: u8,
    /// Distinct keys written.
    pub keys: u8,
    /// Times a running node goes offline (its run ends; its store stays).
    pub offline: u8,
    /// Artifacts published.
    pub publishes: u8,
    /// Which bucket configurations the run starts with: `[evicting, non-evicting]`.
    pub buckets: [bool; 2],
    /// The operator may switch eviction off once (on an evicting bucket).
    pub eviction_off: bool,
    /// Running watches poll retention (one poll per watch, explored only when it
    /// would find eviction the memo lacks).
    pub polls: bool,
}

impl Bounds {
    /// The default run (seconds): three writes over two keys on an evicting bucket,
    /// two offline periods, two publishes.
    pub const DEFAULT: Bounds = Bounds {
        writes: 3,
        keys: 2,
        offline: 1,
        publishes: 1,
        buckets: [true, false],
        eviction_off: false,
        polls: false,
    };

    /// The default run on a bucket that never evicts current values (relist repairs).
    pub const NON_EVICTING: Bounds = Bounds {
        buckets: [false, true],
        ..Bounds::DEFAULT
    };

    /// An evicting bucket whose eviction the operator may switch off (the memo),
    /// with retention polls.
    pub const EVICTION_OFF: Bounds = Bounds {
        eviction_off: true,
        polls: true,
        publishes: 0,
        ..Bounds::DEFAULT
    };

    /// The `#[ignore]`d deep run: four writes, two publishes, both bucket kinds.
    pub const DEEP: Bounds = Bounds {
        writes: 4,
        publishes: 2,
        buckets: [true, true],
        ..Bounds::DEFAULT
    };

    /// The `#[ignore]`d deep run with more churn: two offline periods, two
    /// publishes, retention polls and the eviction switch.
    pub const DEEP_CHURN: Bounds = Bounds {
        offline: 2,
        publishes: 2,
        eviction_off: true,
        polls: true,
        ..Bounds::DEFAULT
    };
}

/// A deliberately broken decision (docs/verification.md, "Mutations"), injected
/// model-side: the executor hides a fact from the production machine or skips one
/// kernel call. The production code is untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mutation {
    /// The production machine and kernels under the specified executor.
    None,
    /// "Relist on an evicting bucket": the retention reads that feed the eviction
    /// memo and the expiry planning (phases `InitialPoll`, `Polling`, `Planning`)
    /// report `evicts_current_values: false`, so the planner relists an evicting
    /// bucket.
    RelistOnEvicting,
    /// "Fresh-start relist": the retention read of a cursor-less start (phase
    /// `CheckingStart`) reports `evicts_current_values: false`, so a fresh node on an
    /// evicted bucket seeds with a bare state-sync re-list instead of an artifact.
    FreshStartRelist,
    /// "No eviction memo": the node's store never persists the memo (the `Evicting`
    /// hand-off and a restore's cursor drop it), so a restart after eviction was
    /// switched off trusts the listing again.
    NoEvictionMemo,
    /// "Artifact cursor behind its payload": the exporter labels its artifact with
    /// the cursor its run resumed from instead of the one its fold is consistent
    /// with, so a node seeding from it is handed older revisions again.
    ArtifactCursorBehind,
    /// "No export hold": the fold is not told which revision a restore's kept
    /// listed-live keys wait for (`kept_high: None`), so it exports as soon as the
    /// restore committed.
    NoExportHold,
}

impl Mutation {
    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Mutation::None => "none",
            Mutation::RelistOnEvicting => "relist-on-evicting",
            Mutation::FreshStartRelist => "fresh-start-relist",
            Mutation::NoEvictionMemo => "no-eviction-memo",
            Mutation::ArtifactCursorBehind => "artifact-cursor-behind",
            Mutation::NoExportHold => "no-export-hold",
        }
    }
}

/// The model: bounds and the executor's decisions (as specified, or one broken).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FleetModel {
    /// The run's limits.
    pub bounds: Bounds,
    /// The decision altered, if any.
    pub mutation: Mutation,
    /// Not production behaviour (docs/decisions.md, entry 127): the export hold
    /// survives the end of a run, as if the store persisted it. It shows that what
    /// the deep bounds still find is the hold ending with its run.
    pub hold_survives_restart: bool,
}

impl FleetModel {
    /// The production kernels under the specified executor.
    pub fn new(bounds: Bounds) -> Self {
        Self {
            bounds,
            mutation: Mutation::None,
            hold_survives_restart: false,
        }
    }

    /// The same model with the export hold kept across runs (entry 127).
    pub fn hold_surviving_restarts(self) -> Self {
        Self {
            hold_survives_restart: true,
            ..self
        }
    }

    /// The same model with one decision broken.
    pub fn mutated(self, mutation: Mutation) -> Self {
        Self { mutation, ..self }
    }
}

impl fmt::Display for FleetModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fleet model, mutation {}", self.mutation.name())?;
        if self.hold_survives_restart {
            write!(f, ", the export hold survives restarts")?;
        }
        Ok(())
    }
}

// ===========================================================================
// State and actions
// ===========================================================================

/// One write to the bucket: revision `i + 1` is `log[i]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Write {
    /// The key.
    pub key: u8,
    /// A put (true) or a delete marker (false).
    pub put: bool,
}

/// A key in a fold: `Some(revision)` of the value held, `None` = absent.
pub type Slot = Option<u8>;

/// The fold of the writes `log[..upto]`: per key, the last put's revision, or absent
/// after a delete.
pub fn fold_of(log: &[Write], upto: usize, keys: u8) -> Vec<Slot> {
    let mut slots = vec![None; usize::from(keys)];
    for (i, w) in log.iter().enumerate().take(upto) {
        slots[usize::from(w.key)] = w.put.then_some(i as u8 + 1);
    }
    slots
}

/// `slots` with every write after `cursor` applied: what a resume from `cursor` that
/// misses nothing would hold (store + tail).
pub fn with_tail(slots: &[Slot], log: &[Write], cursor: u8) -> Vec<Slot> {
    let mut out = slots.to_vec();
    for (i, w) in log.iter().enumerate().skip(usize::from(cursor)) {
        out[usize::from(w.key)] = w.put.then_some(i as u8 + 1);
    }
    out
}

/// History the properties judge, as sticky bits (history lives in the model).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Seen(u32);

impl Seen {
    /// A node took a key to a revision older than one it held or deleted.
    pub const BACKWARD: Seen = Seen(1);
    /// The machine rejected an event the executor fed.
    pub const CONTRACT_BROKEN: Seen = Seen(1 << 1);
    /// Every bit an `always` property forbids.
    pub const VIOLATIONS: Seen = Seen(0b11);
    /// A current value aged out before any node folded it.
    pub const UNFOLDED_AGED_OUT: Seen = Seen(1 << 2);
    /// A node failed loudly (`Finish(Err(WatchError))`).
    pub const LOUD: Seen = Seen(1 << 3);
    /// Witness: a node without a cursor seeded from an artifact.
    pub const SEEDED: Seen = Seen(1 << 4);
    /// Witness: a node with an expired cursor restored an artifact.
    pub const RESTORED: Seen = Seen(1 << 5);
    /// Witness: a relist repair ran.
    pub const RELISTED: Seen = Seen(1 << 6);
    /// Witness: a resumed watch tripped on the floor after applying past its start.
    pub const TRIPPED_MID_WATCH: Seen = Seen(1 << 7);
    /// Witness: a restore kept a local key because the bucket lists it live.
    pub const KEPT_LISTED_LIVE: Seen = Seen(1 << 8);
    /// Witness: a node set the eviction memo.
    pub const MEMO_SET: Seen = Seen(1 << 9);
    /// Witness: a repair planned while eviction was switched off after it happened.
    pub const PLANNED_AFTER_OFF: Seen = Seen(1 << 10);
    /// Witness: a retention poll of a running watch set the memo.
    pub const POLL_OBSERVED: Seen = Seen(1 << 11);

    /// Sets `bits`.
    pub fn insert(&mut self, bits: Seen) {
        self.0 |= bits.0;
    }

    /// Whether every bit of `bits` is set.
    pub fn contains(self, bits: Seen) -> bool {
        self.0 & bits.0 == bits.0
    }

    /// Whether any bit of `bits` is set.
    pub fn intersects(self, bits: Seen) -> bool {
        self.0 & bits.0 != 0
    }
}

/// Budgets used so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Used {
    /// Offline periods.
    pub offline: u8,
    /// Publishes.
    pub publishes: u8,
    /// The eviction switch.
    pub eviction_off: bool,
}

/// One state of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FleetState {
    /// The bucket's writes: revision `i + 1` is `log[i]`.
    pub log: Vec<Write>,
    /// The bucket evicts current values (age limit) right now.
    pub evicting: bool,
    /// The oldest revision the bucket holds (`first_revision`; `len + 1` when empty).
    pub floor: u8,
    /// The nodes.
    pub nodes: [Node; NODES],
    /// The newest published artifact (the pointer's target).
    pub artifact: Option<Artifact>,
    /// The highest revision any node's cursor reached.
    pub folded: u8,
    /// Budgets used.
    pub used: Used,
    /// History.
    pub seen: Seen,
}

impl FleetState {
    /// The retention reading: what `KvWatcher::retention` reports.
    pub fn retention(&self) -> kvfold::Retention {
        kvfold::Retention {
            evicts_current_values: self.evicting,
            first_revision: u64::from(self.floor),
        }
    }

    /// The bucket lists `key` live: its last write is a retained put.
    pub fn listed(&self, key: u8) -> bool {
        self.last_write(key)
            .is_some_and(|(rev, put)| put && rev >= self.floor)
    }

    /// The last write of `key`: its revision and whether it is a put.
    pub fn last_write(&self, key: u8) -> Option<(u8, bool)> {
        self.log
            .iter()
            .enumerate()
            .rev()
            .find(|(_, w)| w.key == key)
            .map(|(i, w)| (i as u8 + 1, w.put))
    }

    /// The truth: every write minus every real delete.
    pub fn truth(&self, keys: u8) -> Vec<Slot> {
        fold_of(&self.log, self.log.len(), keys)
    }

    /// The pointer as a publisher sees it.
    pub fn pointer(&self) -> PointerState {
        match &self.artifact {
            None => PointerState::Absent,
            Some(a) => PointerState::Present {
                rank: Some(u64::from(a.cursor)),
            },
        }
    }
}

/// A step of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A client writes `key`: a new revision at the end of the log.
    Write {
        /// The key.
        key: u8,
        /// A put (true) or a delete (false).
        put: bool,
    },
    /// The oldest retained message leaves the bucket: on an evicting bucket it ages
    /// out (even a current value); otherwise only a superseded one is discarded.
    AgeOut,
    /// The operator switches eviction off (the floor stays where it is).
    EvictionOff,
    /// An offline node starts a run (`watch_applied` with `ExpiryRepair::Auto`).
    Start(usize),
    /// A watching node's consumer delivers its next revision (or trips on the floor).
    Deliver(usize),
    /// A watching node's retention poll is due (`PollDue`).
    Poll(usize),
    /// A running node stops; its store stays.
    Offline(usize),
    /// A watching node exports its fold and publishes it as the newest artifact.
    Publish(usize),
}

// ===========================================================================
// The model
// ===========================================================================

/// Property names (the tests look them up by these).
pub mod names {
    /// Row 17: every node that has not failed loudly holds the truth up to its
    /// cursor (store + every later write = truth).
    pub const NO_SILENT_LOSS: &str =
        "every node that did not fail loudly holds the truth up to its cursor";
    /// The published artifact holds the truth up to its cursor.
    pub const ARTIFACT_SOUND: &str = "the published artifact holds the truth up to its cursor";
    /// No key moves backward on a node.
    pub const NO_BACKWARD: &str = "a node never takes a key to an older revision";
    /// The executor contract.
    pub const DRIVE_LOOP: &str = "the repair machine accepts every event the executor feeds";
    /// Every maximal run ends with each node loud or caught up with the truth.
    pub const CONVERGES: &str = "at quiescence every node failed loudly or holds the bucket";
    /// Witness: the allowed loss happens, and it is loud.
    pub const LOUD_LOSS: &str =
        "a value ages out before any node folded it and a node fails loudly";
    /// Witness.
    pub const SEEDED: &str = "a node without a cursor seeds from an artifact";
    /// Witness.
    pub const RESTORED: &str = "a node with an expired cursor restores an artifact";
    /// Witness.
    pub const RELISTED: &str = "a relist repair runs";
    /// Witness.
    pub const TRIPPED_MID_WATCH: &str = "a resumed watch trips on the floor mid-watch";
    /// Witness.
    pub const MEMO_SET: &str = "a node records the eviction memo";
    /// Witness.
    pub const KEPT_LISTED_LIVE: &str =
        "a restore keeps a local key the artifact deleted because the bucket lists it live";
    /// Witness.
    pub const POLL_OBSERVED: &str = "a retention poll of a running watch records the memo";
    /// Witness.
    pub const PLANNED_AFTER_OFF: &str = "a repair is planned after eviction was switched off";
}

impl FleetModel {
    /// Whether `state` has no successor.
    fn is_terminal(&self, state: &FleetState) -> bool {
        let mut actions = Vec::new();
        self.actions(state, &mut actions);
        actions.is_empty()
    }

    /// Every node that has not failed loudly: store + tail = truth.
    fn no_silent_loss(&self, state: &FleetState) -> bool {
        let truth = state.truth(self.bounds.keys);
        state.nodes.iter().all(|n| {
            matches!(n.run, Run::Failed) || with_tail(&n.store, &state.log, n.cursor) == truth
        })
    }

    /// At the end of every maximal run: each node failed loudly or is caught up with
    /// store = truth. A state where an `always` property already failed counts as
    /// converged, so this is never a mere echo of another property.
    fn converged(&self, state: &FleetState) -> bool {
        if state.seen.intersects(Seen::VIOLATIONS) || !self.no_silent_loss(state) {
            return true;
        }
        if !self.is_terminal(state) {
            return false;
        }
        let truth = state.truth(self.bounds.keys);
        state.nodes.iter().all(|n| match &n.run {
            Run::Failed => true,
            Run::Watching { next, .. } => usize::from(*next) > state.log.len() && n.store == truth,
            Run::Offline => false,
        })
    }
}

impl Model for FleetModel {
    type State = FleetState;
    type Action = Action;

    fn init_states(&self) -> Vec<Self::State> {
        let keys = self.bounds.keys;
        [true, false]
            .into_iter()
            .zip(self.bounds.buckets)
            .filter(|(_, enabled)| *enabled)
            .map(|(evicting, _)| FleetState {
                log: Vec::new(),
                evicting,
                floor: 1,
                nodes: std::array::from_fn(|_| Node::cold(keys)),
                artifact: None,
                folded: 0,
                used: Used::default(),
                seen: Seen::default(),
            })
            .collect()
    }

    fn actions(&self, state: &Self::State, actions: &mut Vec<Self::Action>) {
        // A violation ends its path: each counterexample is the shortest to it.
        if state.seen.intersects(Seen::VIOLATIONS) || !self.no_silent_loss(state) {
            return;
        }
        let b = &self.bounds;
        if state.log.len() < usize::from(b.writes) {
            for key in 0..b.keys {
                actions.push(Action::Write { key, put: true });
                actions.push(Action::Write { key, put: false });
            }
        }
        if self.can_age_out(state) {
            actions.push(Action::AgeOut);
        }
        // Outside the memo's documented blind spot (docs/protocols/repair.md, "The eviction
        // memo"): the operator switches eviction off only after every node still
        // running has seen it happen.
        if b.eviction_off
            && state.evicting
            && !state.used.eviction_off
            && state
                .nodes
                .iter()
                .all(|n| n.observed || matches!(n.run, Run::Failed))
        {
            actions.push(Action::EvictionOff);
        }
        for (i, node) in state.nodes.iter().enumerate() {
            match &node.run {
                Run::Offline => actions.push(Action::Start(i)),
                Run::Watching { next, .. } => {
                    if usize::from(*next) <= state.log.len() {
                        actions.push(Action::Deliver(i));
                    }
                    if b.polls && self.can_poll(state, i) {
                        actions.push(Action::Poll(i));
                    }
                    if state.used.offline < b.offline {
                        actions.push(Action::Offline(i));
                    }
                    let newer = state
                        .artifact
                        .as_ref()
                        .is_none_or(|a| a.cursor < node.cursor);
                    // The fold machine's row X4: a held export does not run.
                    let held = export_held(u64::from(node.cursor), node.export_hold.map(u64::from));
                    if node.cursor > 0
                        && !held
                        && newer
                        && state.used.publishes < b.publishes
                        && pointer_publish_allowed(&state.pointer(), u64::from(node.cursor))
                    {
                        actions.push(Action::Publish(i));
                    }
                }
                Run::Failed => {}
            }
        }
    }

    fn next_state(&self, last: &Self::State, action: Self::Action) -> Option<Self::State> {
        let mut state = last.clone();
        match action {
            Action::Write { key, put } => state.log.push(Write { key, put }),
            Action::AgeOut => {
                let rev = state.floor;
                let w = state.log[usize::from(rev) - 1];
                let current = state.last_write(w.key) == Some((rev, w.put));
                if current && w.put && state.folded < rev {
                    state.seen.insert(Seen::UNFOLDED_AGED_OUT);
                }
                state.floor += 1;
            }
            Action::EvictionOff => {
                state.evicting = false;
                state.used.eviction_off = true;
            }
            Action::Start(i) => self.start(&mut state, i),
            Action::Deliver(i) => self.deliver(&mut state, i),
            Action::Poll(i) => self.poll(&mut state, i),
            Action::Offline(i) => {
                state.used.offline += 1;
                state.nodes[i].run = Run::Offline;
                // The run's fold machine, and its hold, end with it.
                if !self.hold_survives_restart {
                    state.nodes[i].export_hold = None;
                }
            }
            Action::Publish(i) => {
                state.used.publishes += 1;
                self.publish(&mut state, i);
            }
        }
        for node in &state.nodes {
            state.folded = state.folded.max(node.cursor);
        }
        Some(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        use names::*;
        let b = &self.bounds;
        let mut properties = vec![
            Property::always(NO_SILENT_LOSS, |m: &FleetModel, s: &FleetState| {
                m.no_silent_loss(s)
            }),
            Property::always(ARTIFACT_SOUND, |m: &FleetModel, s: &FleetState| {
                s.artifact
                    .as_ref()
                    .is_none_or(|a| with_tail(&a.slots, &s.log, a.cursor) == s.truth(m.bounds.keys))
            }),
            Property::always(NO_BACKWARD, |_, s: &FleetState| {
                !s.seen.contains(Seen::BACKWARD)
            }),
            Property::always(DRIVE_LOOP, |_, s: &FleetState| {
                !s.seen.contains(Seen::CONTRACT_BROKEN)
            }),
            Property::eventually(CONVERGES, |m: &FleetModel, s| m.converged(s)),
        ];
        let evicting = b.buckets[0];
        type Condition = fn(&FleetModel, &FleetState) -> bool;
        let witnesses: [(bool, &'static str, Condition); 9] = [
            (evicting, LOUD_LOSS, |_, s| {
                s.seen.contains(Seen::UNFOLDED_AGED_OUT) && s.seen.contains(Seen::LOUD)
            }),
            (evicting && b.publishes > 0, SEEDED, |_, s| {
                s.seen.contains(Seen::SEEDED)
            }),
            (evicting && b.publishes > 0, RESTORED, |_, s| {
                s.seen.contains(Seen::RESTORED)
            }),
            (b.buckets[1], RELISTED, |_, s| {
                s.seen.contains(Seen::RELISTED)
            }),
            (evicting && b.offline > 0, TRIPPED_MID_WATCH, |_, s| {
                s.seen.contains(Seen::TRIPPED_MID_WATCH)
            }),
            (evicting, MEMO_SET, |_, s| s.seen.contains(Seen::MEMO_SET)),
            (evicting && b.publishes > 0, KEPT_LISTED_LIVE, |_, s| {
                s.seen.contains(Seen::KEPT_LISTED_LIVE)
            }),
            (evicting && b.polls, POLL_OBSERVED, |_, s| {
                s.seen.contains(Seen::POLL_OBSERVED)
            }),
            (b.eviction_off, PLANNED_AFTER_OFF, |_, s| {
                s.seen.contains(Seen::PLANNED_AFTER_OFF)
            }),
        ];
        for (enabled, name, condition) in witnesses {
            if enabled {
                properties.push(Property::sometimes(name, condition));
            }
        }
        properties
    }
}
