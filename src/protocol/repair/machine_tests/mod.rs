//! Exact command and notice sequences of the repair machine (docs/protocols/repair-machine.md,
//! "Transition table" and "Invariants"), one linear scenario per test, named after the rule
//! it checks. Every row has at least one test; rejected events are compared before/after.

use super::machine::{BOOTSTRAP_ADVICE, EVICTING_LOST, RELIST_REFUSED};
use super::*;
use crate::kv::{KvError, Retention, WatchCursor};
use crate::protocol::RepairMode;
use crate::protocol::manifest::{ArtifactFile, ExportManifest};
use crate::protocol::time::Millis;
use RepairCommand as C;
use RepairEvent as E;
use RepairNotice as N;

const POLL: u64 = RETENTION_POLL_MS;

fn all() -> Vec<String> {
    vec![String::new()]
}

fn cursor(rank: u64) -> WatchCursor {
    if rank == 0 {
        WatchCursor::none()
    } else {
        WatchCursor::from_u64(rank)
    }
}

fn machine(mode: RepairMode, resume: Option<u64>, unanchored: bool) -> RepairMachine {
    RepairMachine::new(RepairStart {
        mode,
        resume: resume.map(cursor),
        unanchored,
        scope: all(),
    })
}

fn commands(m: &mut RepairMachine) -> Vec<C> {
    std::iter::from_fn(|| m.poll_command()).collect()
}

fn notices(m: &mut RepairMachine) -> Vec<N> {
    std::iter::from_fn(|| m.poll_notice()).collect()
}

fn feed(m: &mut RepairMachine, event: E) {
    if let Err(e) = m.handle(event) {
        panic!("accepted: {e}");
    }
}

/// The event is rejected with `Unexpected` naming the phase, and nothing changes.
fn rejected(m: &mut RepairMachine, event: E) {
    let before = m.clone();
    let phase = m.phase();
    let name = event.name();
    assert_eq!(m.handle(event), Err(Unexpected { phase, event: name }));
    assert_eq!(*m, before, "a rejected event changes nothing");
}

fn start(m: &mut RepairMachine, now: u64) {
    feed(m, E::Start { now: Millis(now) });
}

fn retention(m: &mut RepairMachine, now: u64, r: Option<Retention>) {
    feed(
        m,
        E::Retention {
            now: Millis(now),
            result: Ok(r),
        },
    );
}

fn retention_failed(m: &mut RepairMachine, now: u64) {
    feed(
        m,
        E::Retention {
            now: Millis(now),
            result: Err(KvError::Timeout),
        },
    );
}

/// A bucket that evicts current values and already did.
fn evicted(first: u64) -> Option<Retention> {
    Some(Retention {
        evicts_current_values: true,
        first_revision: first,
    })
}

/// A bucket that never evicts current values.
fn keeps(first: u64) -> Option<Retention> {
    Some(Retention {
        evicts_current_values: false,
        first_revision: first,
    })
}

fn view(rank: u64, scope: Option<&[&str]>) -> ArtifactView {
    ArtifactView {
        cursor: cursor(rank),
        scope: scope.map(|s| s.iter().map(|p| p.to_string()).collect()),
        created_at_unix: 1_700_000_000,
    }
}

fn whole(rank: u64) -> ArtifactView {
    view(rank, Some(&[""]))
}

fn watch_ended(m: &mut RepairMachine, now: u64, result: Result<(), KvError>) {
    feed(
        m,
        E::WatchEnded {
            now: Millis(now),
            result,
        },
    );
}

fn restore_error(reason: &str) -> C {
    C::Finish(Err(KvError::WatchError(format!(
        "cursor-expired restore: {reason}"
    ))))
}

/// A `Restore` machine resumed at `local`, expired mid-watch, now peeking the latest
/// artifact after a floor read of `first`.
fn restore_at_latest(local: u64, first: Option<u64>) -> RepairMachine {
    let mut m = machine(RepairMode::Restore, Some(local), false);
    start(&mut m, 0);
    watch_ended(&mut m, 5, Err(KvError::CursorExpired));
    retention(
        &mut m,
        6,
        first.map(|f| Retention {
            evicts_current_values: true,
            first_revision: f,
        }),
    );
    assert_eq!(
        commands(&mut m),
        [
            C::StartWatch {
                from: Some(cursor(local))
            },
            C::ReadRetention,
            C::PeekLatest
        ]
    );
    notices(&mut m);
    assert_eq!(m.phase(), RepairPhase::RestoreLatest);
    m
}

/// An `Auto` machine watching from cursor 5 since t = 10, next poll at 10 + 60 s.
fn watching_auto() -> RepairMachine {
    let mut m = machine(RepairMode::Auto, Some(5), false);
    start(&mut m, 0);
    retention(&mut m, 10, keeps(1));
    commands(&mut m);
    m
}

/// A machine in `mode` resumed at 5 whose watch just expired (Planning).
fn planning(mode: RepairMode) -> RepairMachine {
    let mut m = machine(mode, Some(5), false);
    start(&mut m, 0);
    if m.phase() == RepairPhase::InitialPoll {
        retention(&mut m, 0, keeps(1));
    }
    watch_ended(&mut m, 20, Err(KvError::CursorExpired));
    commands(&mut m);
    notices(&mut m);
    assert_eq!(m.phase(), RepairPhase::Planning);
    m
}

/// A restore of local 5 that passed its first check and downloaded `arrived`.
fn restore_fetched(arrived: ArtifactView) -> RepairMachine {
    let mut m = restore_at_latest(5, Some(4));
    feed(
        &mut m,
        E::Latest {
            now: Millis(7),
            result: Ok(whole(9)),
        },
    );
    feed(
        &mut m,
        E::Fetched {
            now: Millis(8),
            result: Ok(arrived),
        },
    );
    assert_eq!(commands(&mut m), [C::FetchArtifact, C::ReadRetention]);
    assert_eq!(m.phase(), RepairPhase::RestoreRecheck);
    m
}

/// A `Restore` machine seeding a cursor-less node from an evicted bucket, after
/// both checks passed.
fn seeding_awaiting_reply() -> RepairMachine {
    let mut m = machine(RepairMode::Restore, None, false);
    start(&mut m, 0);
    retention(&mut m, 1, evicted(4));
    feed(
        &mut m,
        E::EvictingSent {
            now: Millis(2),
            delivered: true,
        },
    );
    retention(&mut m, 3, evicted(4));
    feed(
        &mut m,
        E::Latest {
            now: Millis(4),
            result: Ok(whole(9)),
        },
    );
    feed(
        &mut m,
        E::Fetched {
            now: Millis(5),
            result: Ok(whole(9)),
        },
    );
    retention(&mut m, 6, evicted(4));
    assert_eq!(
        commands(&mut m),
        [
            C::ReadRetention,
            C::SendEvicting,
            C::ReadRetention,
            C::PeekLatest,
            C::FetchArtifact,
            C::ReadRetention,
            C::SendRestore
        ]
    );
    assert_eq!(
        notices(&mut m),
        [
            N::EvictionSeen,
            N::EvictedBucketSeeding,
            N::CursorExpired {
                cursor: WatchCursor::none()
            },
            N::RestorePlanned,
            N::RestoreStarting {
                cursor: cursor(9),
                created_at_unix: 1_700_000_000,
                first: Some(4)
            }
        ]
    );
    m
}

/// One event of every kind at `now`.
fn every_event(now: u64) -> Vec<E> {
    let now = Millis(now);
    vec![
        E::Start { now },
        E::Retention {
            now,
            result: Ok(None),
        },
        E::EvictingSent {
            now,
            delivered: true,
        },
        E::PollDue { now },
        E::WatchEnded {
            now,
            result: Ok(()),
        },
        E::RelistAcked { now },
        E::Latest {
            now,
            result: Ok(whole(9)),
        },
        E::Fetched {
            now,
            result: Ok(whole(9)),
        },
        E::RestoreReplied {
            now,
            result: Ok(cursor(9)),
        },
    ]
}

mod invariants;
mod planning;
mod restore;
mod start;
mod watching;
