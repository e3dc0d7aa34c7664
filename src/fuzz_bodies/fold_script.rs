//! A scripted drive of the production `FoldMachine` with an invariant checker
//! (docs/protocols/fold-machine.md, "Invariants", invariants 1–16), shared by the
//! `fold_machine` fuzz body and the proptest state machine (`tests/prop_fold.rs`). A
//! [`Script`] is a `FoldConfig` plus up to [`MAX_STEPS`] steps; each step either follows
//! `wants()` (a plausible event for the phase) or injects an arbitrary event. After every
//! step a tracker of received, applied and committed updates judges what the machine did.
//! The tracker records facts (what was fed, what came out, what completed); it never
//! re-implements a decision of the machine.

mod describe;
mod driver;
mod tracker;

use std::fmt;

use super::input::Input;
use crate::kv::WatchCursor;
use crate::protocol::fold::{
    FoldCommand, FoldConfig, FoldEvent, FoldMachine, FoldNotice, FoldPhase, Unexpected, Wants,
};
use crate::protocol::time::Millis;

pub use driver::{Summary, run, run_with};
pub use tracker::{Counts, Violation};

/// The parsed value the script's `parse` produces: every update gets a unique id,
/// so the tracker can follow each one from receipt to `Apply`.
pub type Item = u64;

/// Most steps a script runs (the fuzz body stops decoding there).
pub const MAX_STEPS: usize = 200;

/// Longest window a decoded script configures, in ms.
pub const MAX_WINDOW_MS: u64 = 50;

/// Largest `max` a decoded script configures.
pub const MAX_BATCH: usize = 5;

/// The revision an update carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rev {
    /// One above the highest revision used so far (the usual, ascending delivery).
    Next,
    /// This small revision, whatever came before (redeliveries, regressions).
    At(u8),
    /// `VersionToken::unknown()` (a synthetic update).
    Unknown,
}

/// The shape of an update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpdateKind {
    /// `KvUpdate::Put` with a non-empty value.
    Put,
    /// `KvUpdate::Delete`.
    Delete,
    /// `KvUpdate::Purge`.
    Purge,
}

/// A restore request's target cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// `applied + 1 + n` (ahead of the fold, unless the backlog overtakes it).
    Ahead(u8),
    /// This small revision.
    At(u8),
    /// `WatchCursor::none()`.
    None,
}

/// The shape of the items of a `Corrections` result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    /// What the outstanding `NextChunk` asks for (docs/protocols/fold-machine.md, "Repair
    /// phases" shape checks).
    Planned,
    /// `Put`s with known versions.
    Put,
    /// `Delete`s with an unknown version (synthetic deletes).
    SyntheticDelete,
    /// `Delete`s with a known version (never a valid correction).
    KnownDelete,
}

/// How the watch task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum End {
    /// `TaskEnd::Clean`.
    Clean,
    /// `TaskEnd::Failed(KvError::WatchError(..))`.
    Failed,
    /// `TaskEnd::Panicked(..)`.
    Panicked,
}

/// An event to feed, in the script's terms; the driver fills in the details it
/// knows (the clock, the in-flight batch for a failed store apply, the chunk
/// source for planned corrections, fresh revisions and ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// `Update` with a fresh id; `parsed` = `parse` accepted it.
    Update {
        /// Its revision.
        rev: Rev,
        /// Its shape.
        kind: UpdateKind,
        /// Its key (`k0`..`k3`).
        key: u8,
        /// `parse` returned `Some(id)`.
        parsed: bool,
    },
    /// `WindowElapsed` at the current time.
    Window,
    /// `StoreApplied { Committed }`.
    StoreCommitted,
    /// `StoreApplied { Failed }` with the in-flight batch.
    StoreFailed,
    /// `StoreApplied { Failed }` with one update too many (must be rejected).
    StoreFailedWrongLength,
    /// `StoreApplied { Lost }`.
    StoreLost,
    /// `ExportRequested`.
    ExportRequested,
    /// `ExportFinished { Done { ok } }`.
    ExportDone {
        /// The export succeeded.
        ok: bool,
    },
    /// `ExportFinished { Panicked }`.
    ExportPanicked,
    /// `RepairRequested { Evicting }`.
    Evicting,
    /// `RepairRequested { Relist }`.
    Relist,
    /// `RepairRequested { Restore { target } }`.
    Restore {
        /// The artifact's cursor.
        target: Target,
    },
    /// `BacklogDrained`.
    BacklogDrained,
    /// `RepairIo { RelistDiffed }`.
    RelistDiffed {
        /// Stale keys.
        stale: u8,
    },
    /// `RepairIo { RestoreDiffed }`.
    RestoreDiffed {
        /// Keys to rewrite.
        rewrite: u8,
        /// Delete candidates.
        delete_candidates: u8,
    },
    /// `RepairIo { LiveFiltered }`.
    LiveFiltered {
        /// Candidates left.
        remaining: u8,
    },
    /// `RepairIo { Retention }`.
    Retention {
        /// The bucket's first revision.
        first: Option<u8>,
    },
    /// `RepairIo { Corrections }` with `count` items (0 = source exhausted).
    Corrections {
        /// How many items.
        count: u8,
        /// Bit `i` set: item `i` is parsed.
        parsed_mask: u8,
        /// Their shape.
        shape: Shape,
    },
    /// `RepairIo { Failed }`.
    RepairFailed {
        /// The store was lost with it.
        store_lost: bool,
    },
    /// `Shutdown`.
    Shutdown,
    /// `WatchEnded`.
    WatchEnded(End),
    /// `WatchExpired` (row K1) with the bucket facts chosen by `facts % 4`:
    /// 0 = nothing reported; 1 = the same bucket, past the cursor; 2 = a bucket
    /// recreated since the run started; 3 = the same bucket, behind the cursor.
    WatchExpired {
        /// Which facts the executor reports.
        facts: u8,
    },
}

/// One step of a script.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// A plausible event for what the machine `wants()`, chosen by this selector
    /// (nothing when it wants nothing).
    Follow(u8),
    /// Time passes by this many ms; nothing is fed.
    Advance(u8),
    /// The next event carries a `now` this many ms in the past (the machine
    /// clamps it).
    Rewind(u8),
    /// This event, whatever the phase (it may have to be rejected).
    Inject(Event),
}

/// A configuration and the steps to run against it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// The machine's configuration.
    pub config: FoldConfig,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// What the checker drives: the production machine, or a test-side wrapper that
/// breaks one decision (to show the checker has teeth).
pub trait Subject: Clone + PartialEq + fmt::Debug {
    /// A machine at the start of a run.
    fn new(config: FoldConfig) -> Self;
    /// `FoldMachine::handle`.
    fn handle(&mut self, event: FoldEvent<Item>) -> Result<(), Unexpected>;
    /// `FoldMachine::poll_command`.
    fn poll_command(&mut self) -> Option<FoldCommand<Item>>;
    /// `FoldMachine::poll_notice`.
    fn poll_notice(&mut self) -> Option<FoldNotice>;
    /// `FoldMachine::poll_timeout`.
    fn poll_timeout(&self) -> Option<Millis>;
    /// `FoldMachine::wants`.
    fn wants(&self) -> Wants;
    /// `FoldMachine::phase`.
    fn phase(&self) -> FoldPhase;
    /// `FoldMachine::applied`.
    fn applied(&self) -> &WatchCursor;
    /// `FoldMachine::committed`.
    fn committed(&self) -> &WatchCursor;
    /// `FoldMachine::resume_cursor`.
    fn resume_cursor(&self) -> &WatchCursor;
    /// `FoldMachine::store_fail_streak`.
    fn store_fail_streak(&self) -> u32;
    /// `FoldMachine::has_store`.
    fn has_store(&self) -> bool;
}

impl Subject for FoldMachine<Item> {
    fn new(config: FoldConfig) -> Self {
        FoldMachine::new(config)
    }
    fn handle(&mut self, event: FoldEvent<Item>) -> Result<(), Unexpected> {
        FoldMachine::handle(self, event)
    }
    fn poll_command(&mut self) -> Option<FoldCommand<Item>> {
        FoldMachine::poll_command(self)
    }
    fn poll_notice(&mut self) -> Option<FoldNotice> {
        FoldMachine::poll_notice(self)
    }
    fn poll_timeout(&self) -> Option<Millis> {
        FoldMachine::poll_timeout(self)
    }
    fn wants(&self) -> Wants {
        FoldMachine::wants(self)
    }
    fn phase(&self) -> FoldPhase {
        FoldMachine::phase(self)
    }
    fn applied(&self) -> &WatchCursor {
        FoldMachine::applied(self)
    }
    fn committed(&self) -> &WatchCursor {
        FoldMachine::committed(self)
    }
    fn resume_cursor(&self) -> &WatchCursor {
        FoldMachine::resume_cursor(self)
    }
    fn store_fail_streak(&self) -> u32 {
        FoldMachine::store_fail_streak(self)
    }
    fn has_store(&self) -> bool {
        FoldMachine::has_store(self)
    }
}

// ===========================================================================
// Bytes <-> script
// ===========================================================================

/// A small cursor: kind 0 = `none`, 1 = revision `rev`, 2 = `rev` with the
/// eviction memo, 3 = `none` with the memo.
fn small_cursor(kind: u8, rev: u8) -> WatchCursor {
    match kind & 3 {
        0 => WatchCursor::none(),
        1 => WatchCursor::from_u64(u64::from(rev)),
        2 => WatchCursor::from_u64(u64::from(rev)).remembering(true),
        _ => WatchCursor::none().remembering(true),
    }
}

/// The kind and revision `small_cursor` would rebuild `cursor` from (lossy for
/// cursors a script cannot express).
fn small_cursor_code(cursor: &WatchCursor) -> (u8, u8) {
    let rev = u8::try_from(cursor.rank()).unwrap_or(u8::MAX);
    match (cursor.as_u64().is_some(), cursor.seen_evicting()) {
        (false, false) => (0, 0),
        (true, false) => (1, rev),
        (true, true) => (2, rev),
        (false, true) => (3, 0),
    }
}

impl Script {
    /// Decodes a script from fuzz bytes; every byte string is a valid script.
    ///
    /// Layout: 5 header bytes (window `% 51` ms; `max % 6`; flags: bit 0 store,
    /// bit 1 armed, bits 2–3 resume kind, bits 4–5 store-cursor kind (3 = the
    /// resume cursor); resume revision; store revision), then steps until the
    /// bytes run out or [`MAX_STEPS`]: a byte below `0xC0` is `Follow(byte)`,
    /// otherwise `byte - 0xC0` selects an advance, a rewind or an injected event,
    /// followed by its parameter bytes.
    pub fn decode(data: &[u8]) -> Script {
        let mut input = Input::new(data);
        let window_ms = u64::from(input.byte()) % (MAX_WINDOW_MS + 1);
        let max = usize::from(input.byte()) % (MAX_BATCH + 1);
        let flags = input.byte();
        let resume_rev = input.byte();
        let store_rev = input.byte();
        let resume = small_cursor(flags >> 2, resume_rev);
        let store_cursor = (flags & 1 == 1).then(|| match (flags >> 4) & 3 {
            3 => resume.clone(),
            kind => small_cursor(kind, store_rev),
        });
        let config = FoldConfig {
            window_ms,
            max,
            has_store: store_cursor.is_some(),
            repair_armed: flags & 2 == 2,
            resume,
            store_cursor,
        };
        let mut steps = Vec::new();
        let mut rest = input.rest();
        while !rest.is_empty() && steps.len() < MAX_STEPS {
            let mut input = Input::new(rest);
            steps.push(decode_step(&mut input));
            rest = input.rest();
        }
        Script { config, steps }
    }

    /// The bytes [`Script::decode`] turns back into this script (used to write
    /// seeds). Exact for scripts whose config fits the decoder's ranges.
    pub fn encode(&self) -> Vec<u8> {
        let config = &self.config;
        let (resume_kind, resume_rev) = small_cursor_code(&config.resume);
        let (store_kind, store_rev) = match &config.store_cursor {
            Some(store) if *store == config.resume => (3, 0),
            Some(store) => small_cursor_code(store),
            None => (0, 0),
        };
        let flags = u8::from(config.has_store)
            | u8::from(config.repair_armed) << 1
            | resume_kind << 2
            | store_kind << 4;
        let mut out = vec![
            u8::try_from(config.window_ms.min(MAX_WINDOW_MS)).unwrap_or(0),
            u8::try_from(config.max.min(MAX_BATCH)).unwrap_or(0),
            flags,
            resume_rev,
            store_rev,
        ];
        for step in &self.steps {
            encode_step(*step, &mut out);
        }
        out
    }
}

fn decode_rev(byte: u8) -> Rev {
    match byte % 8 {
        0..=4 => Rev::Next,
        5 | 6 => Rev::At(byte >> 3),
        _ => Rev::Unknown,
    }
}

fn encode_rev(rev: Rev) -> u8 {
    match rev {
        Rev::Next => 0,
        Rev::At(n) => 5 | (n.min(31) << 3),
        Rev::Unknown => 7,
    }
}

fn decode_kind(bits: u8) -> UpdateKind {
    match bits % 4 {
        0 | 1 => UpdateKind::Put,
        2 => UpdateKind::Delete,
        _ => UpdateKind::Purge,
    }
}

fn encode_kind(kind: UpdateKind) -> u8 {
    match kind {
        UpdateKind::Put => 0,
        UpdateKind::Delete => 2,
        UpdateKind::Purge => 3,
    }
}

fn decode_shape(bits: u8) -> Shape {
    match bits % 4 {
        0 => Shape::Planned,
        1 => Shape::Put,
        2 => Shape::SyntheticDelete,
        _ => Shape::KnownDelete,
    }
}

fn encode_shape(shape: Shape) -> u8 {
    match shape {
        Shape::Planned => 0,
        Shape::Put => 1,
        Shape::SyntheticDelete => 2,
        Shape::KnownDelete => 3,
    }
}

fn decode_end(byte: u8) -> End {
    match byte % 3 {
        0 => End::Clean,
        1 => End::Failed,
        _ => End::Panicked,
    }
}

/// Opcodes above `FOLLOW_BELOW` (the low five bits; bit 5 is a flag for some).
const FOLLOW_BELOW: u8 = 0xC0;
const OP_ADVANCE: u8 = 0;
const OP_REWIND: u8 = 1;
const OP_UPDATE: u8 = 2;
const OP_WINDOW: u8 = 3;
const OP_STORE_COMMITTED: u8 = 4;
const OP_STORE_FAILED: u8 = 5;
const OP_STORE_WRONG_LENGTH: u8 = 6;
const OP_STORE_LOST: u8 = 7;
const OP_EXPORT_REQUESTED: u8 = 8;
const OP_EXPORT_DONE: u8 = 9;
const OP_EXPORT_PANICKED: u8 = 10;
const OP_EVICTING: u8 = 11;
const OP_RELIST: u8 = 12;
const OP_RESTORE: u8 = 13;
const OP_BACKLOG_DRAINED: u8 = 14;
const OP_RELIST_DIFFED: u8 = 15;
const OP_RESTORE_DIFFED: u8 = 16;
const OP_LIVE_FILTERED: u8 = 17;
const OP_RETENTION: u8 = 18;
const OP_CORRECTIONS: u8 = 19;
const OP_REPAIR_FAILED: u8 = 20;
const OP_SHUTDOWN: u8 = 21;
const OP_WATCH_ENDED: u8 = 22;
/// `Follow` of a selector at or above `FOLLOW_BELOW` (any code without a meaning
/// reads the same way).
const OP_FOLLOW_BYTE: u8 = 23;
const OP_WATCH_EXPIRED: u8 = 24;
/// Flag bit on the opcode (`ExportDone.ok`, `RepairFailed.store_lost`).
const OP_FLAG: u8 = 0x20;

fn decode_step(input: &mut Input<'_>) -> Step {
    let op = input.byte();
    if op < FOLLOW_BELOW {
        return Step::Follow(op);
    }
    let code = op - FOLLOW_BELOW;
    let flag = code & OP_FLAG != 0;
    let event = match code & (OP_FLAG - 1) {
        OP_ADVANCE => return Step::Advance(input.byte()),
        OP_REWIND => return Step::Rewind(input.byte()),
        OP_UPDATE => {
            let rev = decode_rev(input.byte());
            let bits = input.byte();
            Event::Update {
                rev,
                kind: decode_kind(bits),
                key: (bits >> 2) % 4,
                parsed: bits & 0x10 == 0,
            }
        }
        OP_WINDOW => Event::Window,
        OP_STORE_COMMITTED => Event::StoreCommitted,
        OP_STORE_FAILED => Event::StoreFailed,
        OP_STORE_WRONG_LENGTH => Event::StoreFailedWrongLength,
        OP_STORE_LOST => Event::StoreLost,
        OP_EXPORT_REQUESTED => Event::ExportRequested,
        OP_EXPORT_DONE => Event::ExportDone { ok: !flag },
        OP_EXPORT_PANICKED => Event::ExportPanicked,
        OP_EVICTING => Event::Evicting,
        OP_RELIST => Event::Relist,
        OP_RESTORE => {
            let byte = input.byte();
            let target = match byte % 4 {
                0 | 1 => Target::Ahead(byte >> 2),
                2 => Target::At(byte >> 2),
                _ => Target::None,
            };
            Event::Restore { target }
        }
        OP_BACKLOG_DRAINED => Event::BacklogDrained,
        OP_RELIST_DIFFED => Event::RelistDiffed {
            stale: input.byte(),
        },
        OP_RESTORE_DIFFED => Event::RestoreDiffed {
            rewrite: input.byte(),
            delete_candidates: input.byte(),
        },
        OP_LIVE_FILTERED => Event::LiveFiltered {
            remaining: input.byte(),
        },
        OP_RETENTION => {
            let byte = input.byte();
            Event::Retention {
                first: byte.checked_sub(1),
            }
        }
        OP_CORRECTIONS => {
            let count = input.byte();
            let bits = input.byte();
            Event::Corrections {
                count: count % 8,
                parsed_mask: bits >> 2,
                shape: decode_shape(bits),
            }
        }
        OP_REPAIR_FAILED => Event::RepairFailed { store_lost: flag },
        OP_SHUTDOWN => Event::Shutdown,
        OP_WATCH_ENDED => Event::WatchEnded(decode_end(input.byte())),
        OP_WATCH_EXPIRED => Event::WatchExpired {
            facts: input.byte() % 4,
        },
        _ => return Step::Follow(input.byte()),
    };
    Step::Inject(event)
}

fn encode_step(step: Step, out: &mut Vec<u8>) {
    let op = |code: u8| FOLLOW_BELOW + code;
    match step {
        Step::Follow(sel) if sel < FOLLOW_BELOW => out.push(sel),
        Step::Follow(sel) => out.extend([op(OP_FOLLOW_BYTE), sel]),
        Step::Advance(ms) => out.extend([op(OP_ADVANCE), ms]),
        Step::Rewind(ms) => out.extend([op(OP_REWIND), ms]),
        Step::Inject(event) => match event {
            Event::Update {
                rev,
                kind,
                key,
                parsed,
            } => out.extend([
                op(OP_UPDATE),
                encode_rev(rev),
                encode_kind(kind) | (key % 4) << 2 | u8::from(!parsed) << 4,
            ]),
            Event::Window => out.push(op(OP_WINDOW)),
            Event::StoreCommitted => out.push(op(OP_STORE_COMMITTED)),
            Event::StoreFailed => out.push(op(OP_STORE_FAILED)),
            Event::StoreFailedWrongLength => out.push(op(OP_STORE_WRONG_LENGTH)),
            Event::StoreLost => out.push(op(OP_STORE_LOST)),
            Event::ExportRequested => out.push(op(OP_EXPORT_REQUESTED)),
            Event::ExportDone { ok } => {
                out.push(op(OP_EXPORT_DONE | if ok { 0 } else { OP_FLAG }));
            }
            Event::ExportPanicked => out.push(op(OP_EXPORT_PANICKED)),
            Event::Evicting => out.push(op(OP_EVICTING)),
            Event::Relist => out.push(op(OP_RELIST)),
            Event::Restore { target } => {
                let byte = match target {
                    Target::Ahead(n) => n.min(63) << 2,
                    Target::At(n) => 2 | n.min(63) << 2,
                    Target::None => 3,
                };
                out.extend([op(OP_RESTORE), byte]);
            }
            Event::BacklogDrained => out.push(op(OP_BACKLOG_DRAINED)),
            Event::RelistDiffed { stale } => out.extend([op(OP_RELIST_DIFFED), stale]),
            Event::RestoreDiffed {
                rewrite,
                delete_candidates,
            } => out.extend([op(OP_RESTORE_DIFFED), rewrite, delete_candidates]),
            Event::LiveFiltered { remaining } => out.extend([op(OP_LIVE_FILTERED), remaining]),
            Event::Retention { first } => {
                let byte = first.map_or(0, |f| f.saturating_add(1));
                out.extend([op(OP_RETENTION), byte]);
            }
            Event::Corrections {
                count,
                parsed_mask,
                shape,
            } => out.extend([
                op(OP_CORRECTIONS),
                count % 8,
                encode_shape(shape) | (parsed_mask & 0x3F) << 2,
            ]),
            Event::RepairFailed { store_lost } => {
                out.push(op(OP_REPAIR_FAILED | if store_lost { OP_FLAG } else { 0 }));
            }
            Event::Shutdown => out.push(op(OP_SHUTDOWN)),
            Event::WatchEnded(end) => {
                let byte = match end {
                    End::Clean => 0,
                    End::Failed => 1,
                    End::Panicked => 2,
                };
                out.extend([op(OP_WATCH_ENDED), byte]);
            }
            Event::WatchExpired { facts } => out.extend([op(OP_WATCH_EXPIRED), facts % 4]),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips() {
        let script = Script {
            config: FoldConfig {
                window_ms: 7,
                max: 3,
                has_store: true,
                repair_armed: true,
                resume: WatchCursor::from_u64(4),
                store_cursor: Some(WatchCursor::from_u64(2).remembering(true)),
            },
            steps: vec![
                Step::Follow(3),
                Step::Follow(0xF0),
                Step::Advance(9),
                Step::Rewind(2),
                Step::Inject(Event::Update {
                    rev: Rev::At(9),
                    kind: UpdateKind::Purge,
                    key: 2,
                    parsed: false,
                }),
                Step::Inject(Event::Restore {
                    target: Target::Ahead(3),
                }),
                Step::Inject(Event::Corrections {
                    count: 2,
                    parsed_mask: 1,
                    shape: Shape::SyntheticDelete,
                }),
                Step::Inject(Event::ExportDone { ok: false }),
                Step::Inject(Event::RepairFailed { store_lost: true }),
                Step::Inject(Event::Retention { first: Some(4) }),
                Step::Inject(Event::WatchEnded(End::Panicked)),
            ],
        };
        assert_eq!(Script::decode(&script.encode()), script);
    }

    /// xorshift64*: a dependency-free source of pseudo-random scripts.
    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn pseudo_random_scripts_keep_every_invariant() {
        let mut total = Summary::default();
        for seed in 0..3000 {
            let data = bytes(seed, 5 + (seed as usize * 7) % 400);
            let script = Script::decode(&data);
            match run(&script) {
                Ok(summary) => {
                    total.counts.accepted += summary.counts.accepted;
                    total.counts.commits += summary.counts.commits;
                    total.counts.store_failures += summary.counts.store_failures;
                    total.counts.relists += summary.counts.relists;
                    total.counts.restores += summary.counts.restores;
                    total.counts.late_updates += summary.counts.late_updates;
                }
                Err(violation) => panic!("seed {seed}: {violation}"),
            }
        }
        eprintln!("{total:?}");
    }

    #[test]
    fn every_byte_string_decodes_within_bounds() {
        let data: Vec<u8> = (0..=255u8).cycle().take(4000).collect();
        let script = Script::decode(&data);
        assert!(script.steps.len() <= MAX_STEPS);
        assert!(script.config.window_ms <= MAX_WINDOW_MS);
        assert!(script.config.max <= MAX_BATCH);
        assert_eq!(
            script.config.has_store,
            script.config.store_cursor.is_some()
        );
    }
}
