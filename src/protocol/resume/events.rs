//! The `ResumeGuard`'s inputs (`GuardEvent`) and outputs (`GuardCommand`), and
//! the refusal of an event its phase does not accept (`Unexpected`).

use std::fmt;

use super::{ExpiryCause, StreamFacts};
use crate::kv::KvError;
use crate::protocol::time::Millis;

/// An input to the [`ResumeGuard`](super::ResumeGuard); every event carries the caller's `now`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GuardEvent {
    /// A stream probe answered.
    StreamProbed {
        /// Caller's time.
        now: Millis,
        /// The stream's facts.
        facts: StreamFacts,
    },
    /// A stream probe failed.
    ProbeFailed {
        /// Caller's time.
        now: Millis,
        /// What failed.
        error: KvError,
    },
    /// The consumer of the last `CreateConsumer` exists.
    ConsumerCreated {
        /// Caller's time.
        now: Millis,
    },
    /// The last-per-subject consumer of the last `CreateSnapshotConsumer` exists
    /// (an addition).
    SnapshotCreated {
        /// Caller's time.
        now: Millis,
        /// How many deliveries its snapshot holds, as the consumer reported at
        /// creation (NATS: `num_pending` of the creation reply).
        pending: u64,
    },
    /// Creating the consumer failed with this server text.
    ConsumerFailed {
        /// Caller's time.
        now: Millis,
        /// The error text.
        error_text: String,
    },
    /// A delivery arrived (revision and write time from its version, when known).
    Delivered {
        /// Caller's time.
        now: Millis,
        /// The delivered revision, when readable.
        revision: Option<u64>,
        /// Its write time (Unix ms), when known.
        written_ms: Option<u64>,
    },
    /// The client (re)connected since the executor last checked.
    Reconnected {
        /// Caller's time.
        now: Millis,
    },
    /// The consumer can no longer guarantee complete, ordered delivery (lost
    /// deliveries, missed heartbeats, an ended subscription). The message it
    /// came with, if any, is not handed in (rows G24, G25).
    ConsumerFault {
        /// Caller's time.
        now: Millis,
        /// The client (re)connected since the executor last reported it: the
        /// fault may be what the reconnect left behind.
        reconnected: bool,
        /// What the executor saw.
        error_text: String,
    },
    /// Time passed.
    Tick {
        /// Caller's time.
        now: Millis,
    },
}

impl GuardEvent {
    pub(super) fn name(&self) -> &'static str {
        match self {
            GuardEvent::StreamProbed { .. } => "StreamProbed",
            GuardEvent::ProbeFailed { .. } => "ProbeFailed",
            GuardEvent::ConsumerCreated { .. } => "ConsumerCreated",
            GuardEvent::SnapshotCreated { .. } => "SnapshotCreated",
            GuardEvent::ConsumerFailed { .. } => "ConsumerFailed",
            GuardEvent::Delivered { .. } => "Delivered",
            GuardEvent::Reconnected { .. } => "Reconnected",
            GuardEvent::ConsumerFault { .. } => "ConsumerFault",
            GuardEvent::Tick { .. } => "Tick",
        }
    }

    pub(super) fn now(&self) -> Millis {
        match self {
            GuardEvent::StreamProbed { now, .. }
            | GuardEvent::ProbeFailed { now, .. }
            | GuardEvent::ConsumerCreated { now }
            | GuardEvent::SnapshotCreated { now, .. }
            | GuardEvent::ConsumerFailed { now, .. }
            | GuardEvent::Delivered { now, .. }
            | GuardEvent::Reconnected { now }
            | GuardEvent::ConsumerFault { now, .. }
            | GuardEvent::Tick { now } => *now,
        }
    }
}

/// What the executor must do next for the guard.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GuardCommand {
    /// Read fresh stream facts; feed `StreamProbed` or `ProbeFailed`.
    ProbeStream,
    /// Create the watch's consumer starting at this sequence; feed `ConsumerCreated` or `ConsumerFailed`.
    CreateConsumer {
        /// First sequence to deliver.
        start_sequence: u64,
    },
    /// Create the watch's last-per-subject consumer (the latest entry of every key
    /// in scope, in revision order, then live changes); feed `SnapshotCreated` or
    /// `ConsumerFailed`. Only a state-sync guard ([`ResumeGuard::syncing`](super::ResumeGuard::syncing),
    /// [`ResumeGuard::fresh`](super::ResumeGuard::fresh)) asks for it (an addition).
    CreateSnapshotConsumer,
    /// Drop the consumer and any delivery not yet handed in.
    DropConsumer,
    /// Pass the last delivered entry on.
    Forward,
    /// Drop the last delivered entry: it is at or below the frontier.
    Skip {
        /// The dropped revision.
        revision: u64,
    },
    /// End the watch with `KvError::CursorExpired`.
    Expired(ExpiryCause),
    /// End the watch with this error.
    Fail(KvError),
}

/// An event the guard's current phase does not accept; the guard is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Unexpected {
    /// The phase the guard was in.
    pub phase: &'static str,
    /// The event it was fed.
    pub event: &'static str,
}

impl fmt::Display for Unexpected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "resume guard in phase {} does not accept {}",
            self.phase, self.event
        )
    }
}

impl std::error::Error for Unexpected {}
