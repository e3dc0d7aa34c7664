//! The guard under test: the production `ResumeGuard`, or a deliberately
//! broken wrapper (a mutant) that alters exactly one decision.

use std::collections::VecDeque;
use std::fmt;

use kvfold::protocol::resume::{
    GuardCommand, GuardEvent, GuardMode, ResumeCursor, ResumeGuard, Unexpected,
};
use kvfold::protocol::time::Millis;

use crate::stream::*;

/// What the harness drives. `ResumeGuard` implements it directly; the mutants
/// wrap it and alter exactly one decision.
pub trait Guard: Clone + PartialEq + fmt::Debug {
    fn resumed(cursor: ResumeCursor, mode: GuardMode, now: Millis) -> Self;
    fn fresh(mode: GuardMode, now: Millis) -> Self;
    fn handle(&mut self, event: GuardEvent) -> Result<(), Unexpected>;
    fn poll_command(&mut self) -> Option<GuardCommand>;
    fn poll_timeout(&self) -> Option<Millis>;
    fn is_streaming(&self) -> bool;
    fn frontier(&self) -> Option<u64>;
}

impl Guard for ResumeGuard {
    fn resumed(cursor: ResumeCursor, mode: GuardMode, now: Millis) -> Self {
        ResumeGuard::resumed(cursor, mode, now)
    }
    fn fresh(mode: GuardMode, now: Millis) -> Self {
        ResumeGuard::fresh(mode, now)
    }
    fn handle(&mut self, event: GuardEvent) -> Result<(), Unexpected> {
        ResumeGuard::handle(self, event)
    }
    fn poll_command(&mut self) -> Option<GuardCommand> {
        ResumeGuard::poll_command(self)
    }
    fn poll_timeout(&self) -> Option<Millis> {
        ResumeGuard::poll_timeout(self)
    }
    fn is_streaming(&self) -> bool {
        ResumeGuard::is_streaming(self)
    }
    fn frontier(&self) -> Option<u64> {
        ResumeGuard::frontier(self)
    }
}

/// Mutant "no floor guard": the probe a gapped delivery asks for (G6) is answered
/// inside the wrapper with facts that always pass, so the gap is forwarded at once
/// as if it were contiguous. Everything else (idle probes, resumes) is intact.
#[derive(Clone, Debug, PartialEq)]
pub struct NoFloorGuard {
    pub inner: ResumeGuard,
    pub queue: VecDeque<GuardCommand>,
}

/// Mutant "judge Dense as Sparse": the scope's mode is ignored, so neither gaps
/// nor idle time are ever probed.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseJudging(ResumeGuard);

/// Mutant "ignore reconnects": `Reconnected` is swallowed while streaming, so the
/// client's own consumer recreation continues without any window check.
#[derive(Clone, Debug, PartialEq)]
pub struct IgnoresReconnect(ResumeGuard);

/// Mutant "skip the post-create re-check": the post-check probe is answered inside
/// the wrapper with facts that always pass.
#[derive(Clone, Debug, PartialEq)]
pub struct SkipsPostCheck(ResumeGuard);

macro_rules! delegate_outputs {
    () => {
        fn poll_command(&mut self) -> Option<GuardCommand> {
            self.0.poll_command()
        }
        fn poll_timeout(&self) -> Option<Millis> {
            self.0.poll_timeout()
        }
        fn is_streaming(&self) -> bool {
            self.0.is_streaming()
        }
        fn frontier(&self) -> Option<u64> {
            self.0.frontier()
        }
    };
}

impl NoFloorGuard {
    pub fn wrap(inner: ResumeGuard) -> Self {
        Self {
            inner,
            queue: VecDeque::new(),
        }
    }
}

impl Guard for NoFloorGuard {
    fn resumed(cursor: ResumeCursor, mode: GuardMode, now: Millis) -> Self {
        Self::wrap(ResumeGuard::resumed(cursor, mode, now))
    }
    fn fresh(mode: GuardMode, now: Millis) -> Self {
        Self::wrap(ResumeGuard::fresh(mode, now))
    }
    fn handle(&mut self, event: GuardEvent) -> Result<(), Unexpected> {
        let delivered_at = match event {
            GuardEvent::Delivered { now, .. } => Some(now),
            _ => None,
        };
        self.inner.handle(event)?;
        while let Some(command) = self.inner.poll_command() {
            match (delivered_at, command) {
                (Some(now), GuardCommand::ProbeStream) => self
                    .inner
                    .handle(GuardEvent::StreamProbed {
                        now,
                        facts: ALWAYS_PASSES,
                    })
                    .expect("AwaitingFloor accepts StreamProbed"),
                (_, command) => self.queue.push_back(command),
            }
        }
        Ok(())
    }
    fn poll_command(&mut self) -> Option<GuardCommand> {
        // The constructor's commands are still inside; `handle` moves the rest out.
        self.queue.pop_front().or_else(|| self.inner.poll_command())
    }
    fn poll_timeout(&self) -> Option<Millis> {
        self.inner.poll_timeout()
    }
    fn is_streaming(&self) -> bool {
        self.inner.is_streaming()
    }
    fn frontier(&self) -> Option<u64> {
        self.inner.frontier()
    }
}

impl Guard for SparseJudging {
    fn resumed(cursor: ResumeCursor, _mode: GuardMode, now: Millis) -> Self {
        Self(ResumeGuard::resumed(cursor, GuardMode::Sparse, now))
    }
    fn fresh(_mode: GuardMode, now: Millis) -> Self {
        Self(ResumeGuard::fresh(GuardMode::Sparse, now))
    }
    fn handle(&mut self, event: GuardEvent) -> Result<(), Unexpected> {
        self.0.handle(event)
    }
    delegate_outputs!();
}

impl Guard for IgnoresReconnect {
    fn resumed(cursor: ResumeCursor, mode: GuardMode, now: Millis) -> Self {
        Self(ResumeGuard::resumed(cursor, mode, now))
    }
    fn fresh(mode: GuardMode, now: Millis) -> Self {
        Self(ResumeGuard::fresh(mode, now))
    }
    fn handle(&mut self, event: GuardEvent) -> Result<(), Unexpected> {
        if matches!(event, GuardEvent::Reconnected { .. }) && self.0.is_streaming() {
            return Ok(());
        }
        self.0.handle(event)
    }
    delegate_outputs!();
}

impl Guard for SkipsPostCheck {
    fn resumed(cursor: ResumeCursor, mode: GuardMode, now: Millis) -> Self {
        Self(ResumeGuard::resumed(cursor, mode, now))
    }
    fn fresh(mode: GuardMode, now: Millis) -> Self {
        Self(ResumeGuard::fresh(mode, now))
    }
    fn handle(&mut self, event: GuardEvent) -> Result<(), Unexpected> {
        let created_at = match event {
            GuardEvent::ConsumerCreated { now } => Some(now),
            _ => None,
        };
        self.0.handle(event)?;
        if let Some(now) = created_at
            && self.0.poll_command() == Some(GuardCommand::ProbeStream)
        {
            self.0
                .handle(GuardEvent::StreamProbed {
                    now,
                    facts: ALWAYS_PASSES,
                })
                .expect("PostCheck accepts StreamProbed");
        }
        Ok(())
    }
    delegate_outputs!();
}
