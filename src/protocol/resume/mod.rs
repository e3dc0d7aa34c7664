//! Resume safety: the retention classification (`LogLimits`), the resume pre- and
//! post-checks (`plan_resume`, `recheck_resume`) and the `ResumeGuard` machine that
//! every backend's watch drives. Pure and sans-IO: facts and time come in as data.
//!
//! - `plan`: the retention facts and the pure pre-/post-check kernels;
//! - `events`: what the guard is fed (`GuardEvent`) and asks for (`GuardCommand`);
//! - `guard`: the `ResumeGuard` machine (docs/protocols/resume-guard.md).

mod events;
mod guard;
mod plan;

pub use events::{GuardCommand, GuardEvent, Unexpected};
pub use guard::{FLOOR_PROBE_IDLE_MS, MAX_STALE_RESYNCS, ResumeGuard, SYNC_STALL_MS};
pub use plan::{
    ExpiryCause, GuardMode, LogLimits, RECREATE_SLACK_MS, ResumeCursor, StreamFacts, guard_mode,
    plan_resume, recheck_resume,
};

#[cfg(test)]
mod tests;
