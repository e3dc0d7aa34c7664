//! The `resume` model's configuration: the watch's scope, the bucket's retention,
//! how the watch starts, what happens to a delivery in hand, the bounds, and the
//! mutations (model-side wrappers that alter one decision).

/// Which keys the watch covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `watch_all_from`: every revision is delivered; the guard runs `Dense`.
    All,
    /// `watch_prefix_from` on key 0's prefix: only key 0 is delivered; the guard runs
    /// `Sparse`. A prefix watch cannot see an in-scope eviction above its frontier while it
    /// streams (docs/operations.md, "Known limits"), so the environment makes such an
    /// eviction only where a check can see it: before the watch, during a resume (pre-check
    /// to post-check) or while the client is away.
    Prefix,
}

/// How the stream loses messages other than by per-key history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Retention {
    /// Discard-old with a byte limit, as kvfold creates buckets: a limit evicts
    /// the oldest retained message at any moment (`EvictHead`).
    DiscardOld,
    /// An age limit only (`MAX_AGE_MS`): a message leaves once it is older than
    /// the limit, as the clock moves. `plan_resume` row 4 (the supersession-only
    /// resume) applies to this bucket.
    AgeOnly,
}

/// How the watch call starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Start {
    /// `watch_*_from(cursor)` with any revision the stream has written:
    /// `ResumeGuard::resumed` (pre-check, creation, post-check).
    Resume,
    /// `watch_all` / `watch_prefix` without a cursor: `ResumeGuard::fresh`. The
    /// executor's own state-sync consumer delivers the retained messages from the
    /// stream start (with a per-key history of 1 these are exactly the last
    /// message per subject), judged `Sparse` until a reconnect makes the guard
    /// resume in the scope's mode.
    StateSync,
}

/// What the executor does with a delivery it has taken from the consumer when it
/// notices, before handing it in, that the client reconnected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InHand {
    /// docs/nats-backend.md, "Resume after a reconnect" and "The watch loop" as written:
    /// feed `Reconnected`, discard the delivery ("it will be delivered again").
    Discarded,
    /// Feed `Reconnected`; discard the delivery only if the guard dropped the consumer
    /// (G16), else hand it in (G17). The memory executor's order (docs/memory-backend.md,
    /// "Watches": the epoch is compared before the next taken entry is handed in, and only
    /// `DropConsumer` discards taken entries).
    KeptUnlessDropped,
}

/// Every limit of one run of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bounds {
    /// Writes over the whole run (before and during the watch).
    pub writes: u8,
    /// Distinct keys written (key 0 is the prefix scope's key).
    pub keys: u8,
    /// Per-key history: a write removes its key's oldest retained message once
    /// the key holds this many (a benign, superseded interior gap).
    pub history: u8,
    /// Head evictions by a limit (`DiscardOld` only).
    pub evictions: u8,
    /// Client reconnects (the client recreates its consumer without a check).
    pub reconnects: u8,
    /// Silent self-recreations of the ordered consumer before its first delivery
    /// (it then replays from the stream start).
    pub replays: u8,
    /// Idle-probe timer expiries (each moves the clock to the guard's deadline).
    pub ticks: u8,
    /// Clock advances of `CLOCK_STEP_MS` outside the guard's timer (they age
    /// messages out of an `AgeOnly` bucket).
    pub clock_steps: u8,
}

impl Bounds {
    /// The default run on a `DiscardOld` bucket (seconds).
    pub const DISCARD_OLD: Bounds = Bounds {
        writes: 5,
        keys: 2,
        history: 1,
        evictions: 2,
        reconnects: 1,
        replays: 1,
        ticks: 2,
        clock_steps: 0,
    };

    /// The default run on an `AgeOnly` bucket (seconds).
    pub const AGE_ONLY: Bounds = Bounds {
        writes: 4,
        keys: 2,
        history: 1,
        evictions: 0,
        reconnects: 1,
        replays: 1,
        ticks: 1,
        clock_steps: 2,
    };

    /// The backstop runs that explore a masked mutant's whole space.
    pub const BACKSTOP: Bounds = Bounds {
        writes: 4,
        keys: 2,
        history: 1,
        evictions: 2,
        reconnects: 1,
        replays: 1,
        ticks: 1,
        clock_steps: 0,
    };

    /// The `#[ignore]`d deep run on a `DiscardOld` bucket (about 15 M states
    /// for the All scope: a minute and 2.5 GB in release).
    pub const DEEP_DISCARD_OLD: Bounds = Bounds {
        writes: 6,
        keys: 2,
        history: 1,
        evictions: 2,
        reconnects: 2,
        replays: 1,
        ticks: 2,
        clock_steps: 0,
    };

    /// The `#[ignore]`d deep run with three keys and a per-key history of 2
    /// (resumed watches only: the state-sync consumer delivers every retained
    /// message, which is the last one per subject only with a history of 1).
    pub const DEEP_WIDE: Bounds = Bounds {
        writes: 5,
        keys: 3,
        history: 2,
        evictions: 2,
        reconnects: 1,
        replays: 1,
        ticks: 1,
        clock_steps: 0,
    };

    /// The `#[ignore]`d deep run on an `AgeOnly` bucket (about 17 M states for
    /// the All scope).
    pub const DEEP_AGE_ONLY: Bounds = Bounds {
        writes: 5,
        keys: 2,
        history: 1,
        evictions: 0,
        reconnects: 1,
        replays: 1,
        ticks: 1,
        clock_steps: 3,
    };
}

/// A deliberately broken variant (docs/verification.md, "Mutations"), injected model-side
/// without touching the production guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mutation {
    /// The production guard, unaltered.
    None,
    /// "Trust a clamped start" (the silent clamp): `plan_resume` row 5 is treated
    /// as `Ok`. The pre-check answer claims the gap below the floor holds no
    /// eviction (age-only limits, cursor age 0), so the guard accepts the
    /// server's clamped position, `first_sequence - 1`, as its resume point.
    TrustClampedStart,
    /// "Skip the post-create re-check": the post-check probe is answered with the
    /// facts the pre-check read before the consumer was created.
    SkipPostCheck,
    /// "No floor guard": the All-scope watch's guard is built `Sparse`.
    NoFloorGuard,
    /// "Periodic-only floor guard": the probe a gapped delivery asks for (G6) is
    /// answered without eviction information (the floor at `frontier + 1`); the
    /// idle probe still reads the real stream.
    PeriodicProbeOnly,
    /// "Ignore reconnects": the executor never feeds `Reconnected`, so the
    /// client's own consumer recreation streams on without any window check.
    IgnoreReconnect,
    /// Not a mutation the checker must catch: the pre-check alone trusts a
    /// lowered floor (`first_sequence` 1). The post-check reads the real floor
    /// after creation and must still stop every silent skip.
    PreCheckTrustsLoweredFloor,
}

impl Mutation {
    /// Every variant.
    pub const ALL: [Mutation; 7] = [
        Mutation::None,
        Mutation::TrustClampedStart,
        Mutation::SkipPostCheck,
        Mutation::NoFloorGuard,
        Mutation::PeriodicProbeOnly,
        Mutation::IgnoreReconnect,
        Mutation::PreCheckTrustsLoweredFloor,
    ];

    /// The variant called `name` (the explorer's command line).
    pub fn named(name: &str) -> Option<Mutation> {
        Mutation::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The kebab-case name (the explorer's command line).
    pub fn name(self) -> &'static str {
        match self {
            Mutation::None => "none",
            Mutation::TrustClampedStart => "trust-clamped-start",
            Mutation::SkipPostCheck => "skip-post-check",
            Mutation::NoFloorGuard => "no-floor-guard",
            Mutation::PeriodicProbeOnly => "periodic-probe-only",
            Mutation::IgnoreReconnect => "ignore-reconnect",
            Mutation::PreCheckTrustsLoweredFloor => "pre-check-trusts-lowered-floor",
        }
    }
}
