//! The fold machine's expiry rules (docs/protocols/fold-machine.md, "Arming and expiry"):
//! which expiry repair a run may start with (`arm_expiry`), and what the watch does when
//! its resumed watch reports `CursorExpired` (`expiry_action`, row K1). Pure; the executor
//! only reports the refusal and performs the answer.

use crate::kv::WatchCursor;
use crate::protocol::RepairMode;
use crate::protocol::identity::{
    BucketFacts, BucketIdentity, ExpiredVerdict, IdentityRefusal, judge_expired,
};
use crate::protocol::repair::{ArmRefusal, arm_repair};

/// The machine's arming step, before it is built: `arm_repair(mode, has_store)`
/// (docs/protocols/repair.md, "Arming a repair"). The `Ok` value is `FoldConfig::repair_armed`;
/// a refusal ends the run before anything starts.
pub fn arm_expiry(mode: RepairMode, has_store: bool) -> Result<bool, ArmRefusal> {
    arm_repair(mode, has_store)
}

/// The mode the watch task's repair machine runs with: the requested mode when a repair
/// is armed, else `None` (a `Relist` without a store re-lists alone, with a warning).
pub fn effective_mode(mode: RepairMode, armed: bool) -> RepairMode {
    if armed { mode } else { RepairMode::None }
}

/// What the watch task does after its resumed watch ended with `CursorExpired`
/// (the machine's answer, `FoldCommand::AnswerExpiry`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExpiryAction {
    /// No repair is armed: re-list with a full state-sync watch of the scope
    /// (`ExpiryRepair::None`; keys deleted while their markers were evicted may stay
    /// in the fold, docs/protocols/repair.md).
    Relist,
    /// A repair is armed: the watch task's repair machine plans it (docs/protocols/repair.md).
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
