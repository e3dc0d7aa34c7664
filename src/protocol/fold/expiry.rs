//! The fold machine's expiry rules (docs/protocols/fold-machine.md, "Arming and expiry"):
//! which expiry repair a run may start with (`arm_expiry`), and what the watch does when
//! its resumed watch reports `CursorExpired` (`expiry_action`, row K1). Pure; the executor
//! only reports the refusal and performs the answer.

use std::fmt;

use crate::kv::WatchCursor;
use crate::protocol::RepairMode;
use crate::protocol::identity::{
    BucketFacts, BucketIdentity, ExpiredVerdict, IdentityRefusal, judge_expired,
};
use crate::protocol::repair::{ArmRefusal, arm_repair};

/// Why the fold machine does not start with the requested expiry repair mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArmRefused {
    /// `protocol::repair::arm_repair` refused the mode (a restore without a store).
    Repair(ArmRefusal),
    /// The mode arms a relist or restore repair, which this version does not carry out.
    NotImplemented {
        /// The requested mode (`Relist`, `Restore` or `Auto`).
        mode: RepairMode,
    },
}

impl fmt::Display for ArmRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArmRefused::Repair(refusal) => refusal.fmt(f),
            ArmRefused::NotImplemented { mode } => write!(
                f,
                "expiry repair {mode:?} is not available in this kvfold version: relist and restore \
                 repairs are not implemented yet; use ExpiryRepair::None (re-list on expiry)"
            ),
        }
    }
}

impl std::error::Error for ArmRefused {}

/// The machine's arming step, before it is built: `arm_repair(mode, has_store)` first
/// (its refusal wins), then every mode but `None` is refused as not implemented; `None`
/// → `Ok(false)` (no repair armed: an expiry re-lists). The `Ok` value is
/// `FoldConfig::repair_armed`.
pub fn arm_expiry(mode: RepairMode, has_store: bool) -> Result<bool, ArmRefused> {
    let armed = arm_repair(mode, has_store).map_err(ArmRefused::Repair)?;
    match mode {
        RepairMode::None => Ok(armed),
        RepairMode::Relist | RepairMode::Restore | RepairMode::Auto => {
            Err(ArmRefused::NotImplemented { mode })
        }
    }
}

/// What the watch task does after its resumed watch ended with `CursorExpired`
/// (the machine's answer, `FoldCommand::AnswerExpiry`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExpiryAction {
    /// No repair is armed: re-list with a full state-sync watch of the scope
    /// (`ExpiryRepair::None`; keys deleted while their markers were evicted may stay
    /// in the fold, docs/repair.md).
    Relist,
    /// A repair is armed: the watch task plans it (docs/repair.md, "The fold side").
    /// `arm_expiry` arms none in this version.
    Repair,
    /// The bucket is not the one the run started on, or the cursor is ahead of it:
    /// the watch task ends with this refusal, which comes back as `WatchEnded{Failed}`.
    Refuse(IdentityRefusal),
}

/// Row K1: the identity verdict of `judge_expired` first (a refusal ends the watch);
/// a cursor that only fell below the floor of the same bucket is repaired when a
/// repair is armed and re-listed otherwise.
pub fn expiry_action(
    cursor: &WatchCursor,
    started_on: Option<&BucketIdentity>,
    bucket: Option<&BucketFacts>,
    repair_armed: bool,
) -> ExpiryAction {
    match judge_expired(cursor, started_on, bucket, repair_armed) {
        ExpiredVerdict::Refuse(refusal) => ExpiryAction::Refuse(refusal),
        ExpiredVerdict::Relist if repair_armed => ExpiryAction::Repair,
        ExpiredVerdict::Relist => ExpiryAction::Relist,
    }
}
