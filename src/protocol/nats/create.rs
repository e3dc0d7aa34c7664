//! `create` over delete and purge markers (docs/nats-backend.md, "create over
//! markers"): the NATS backend's `create` writes with an expected last sequence
//! of 0; when the key's latest message is a delete or purge marker, the key is
//! absent to kvfold's API, so the create is retried once over the marker, with
//! the marker's revision as the expected sequence. A value, or a conflict over
//! the marker (someone else wrote first), is `AlreadyExists`. A key that looks
//! free but conflicted (it was deleted by age between the two requests) gets one
//! more round. Sans-IO: the executor performs each [`CreateStep`] and reports
//! what happened as a [`CreateEvent`]; any failure that is not a conflict is the
//! executor's error to return, not an event.

use super::WireKind;

/// What the executor does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CreateStep {
    /// Publish the value with this expected last subject sequence (0 = the
    /// subject holds no message).
    Publish {
        /// `Nats-Expected-Last-Subject-Sequence`.
        expected: u64,
    },
    /// Read the key's latest message (value or marker).
    ReadLatest,
    /// The create is over.
    Done(CreateVerdict),
}

/// How a create ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CreateVerdict {
    /// Written at this revision.
    Created(u64),
    /// The key holds a value (or another writer won the race): `AlreadyExists`.
    AlreadyExists,
}

/// What the executor saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CreateEvent {
    /// The publish was stored at this revision.
    Published(u64),
    /// The publish was refused because the expected sequence did not match.
    Conflict,
    /// The key's latest message: its kind and revision, or `None` when the key
    /// has no message at all.
    Latest(Option<(WireKind, u64)>),
}

/// Where a create stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Phase {
    /// Publishing with expected 0, in round 0 or 1.
    AtZero { round: u8 },
    /// Reading the latest message after a conflict in this round.
    Reading { round: u8 },
    /// Publishing over a marker.
    OverMarker,
    /// Finished.
    Done,
}

/// Rounds of "publish at 0, read latest" before a free-looking key that keeps
/// conflicting is reported as `AlreadyExists`.
const ROUNDS: u8 = 2;

/// The create-over-markers policy, one per `create` call.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CreateOverMarkers {
    phase: Phase,
}

impl CreateOverMarkers {
    /// A new create and its first step (`Publish { expected: 0 }`).
    pub fn start() -> (Self, CreateStep) {
        (
            Self {
                phase: Phase::AtZero { round: 0 },
            },
            CreateStep::Publish { expected: 0 },
        )
    }

    /// The next step after `event`. An event that does not fit the step in
    /// flight (e.g. `Latest` while publishing) ends the create as
    /// `AlreadyExists`, never as a write.
    pub fn on_event(&mut self, event: CreateEvent) -> CreateStep {
        let step = match (self.phase, event) {
            (Phase::AtZero { .. } | Phase::OverMarker, CreateEvent::Published(revision)) => {
                CreateStep::Done(CreateVerdict::Created(revision))
            }
            (Phase::AtZero { round }, CreateEvent::Conflict) => {
                self.phase = Phase::Reading { round };
                return CreateStep::ReadLatest;
            }
            (
                Phase::Reading { .. },
                CreateEvent::Latest(Some((
                    WireKind::DeleteMarker | WireKind::PurgeMarker,
                    revision,
                ))),
            ) => {
                self.phase = Phase::OverMarker;
                return CreateStep::Publish { expected: revision };
            }
            (Phase::Reading { round }, CreateEvent::Latest(None)) if round + 1 < ROUNDS => {
                self.phase = Phase::AtZero { round: round + 1 };
                return CreateStep::Publish { expected: 0 };
            }
            _ => CreateStep::Done(CreateVerdict::AlreadyExists),
        };
        self.phase = Phase::Done;
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use CreateEvent::{Conflict, Latest, Published};
    use CreateStep::{Done, Publish, ReadLatest};
    use CreateVerdict::{AlreadyExists, Created};

    /// Runs a create through `events`, returning every step taken.
    fn run(events: &[CreateEvent]) -> Vec<CreateStep> {
        let (mut create, first) = CreateOverMarkers::start();
        let mut steps = vec![first];
        for event in events {
            steps.push(create.on_event(*event));
        }
        steps
    }

    #[test]
    fn a_free_key_is_created_at_once() {
        assert_eq!(
            run(&[Published(7)]),
            [Publish { expected: 0 }, Done(Created(7))]
        );
    }

    #[test]
    fn a_delete_or_purge_marker_is_written_over_with_its_revision() {
        for kind in [WireKind::DeleteMarker, WireKind::PurgeMarker] {
            assert_eq!(
                run(&[Conflict, Latest(Some((kind, 5))), Published(9)]),
                [
                    Publish { expected: 0 },
                    ReadLatest,
                    Publish { expected: 5 },
                    Done(Created(9))
                ]
            );
        }
    }

    #[test]
    fn a_value_is_already_there() {
        for kind in [WireKind::Value, WireKind::EmptyValue] {
            assert_eq!(
                run(&[Conflict, Latest(Some((kind, 5)))]),
                [Publish { expected: 0 }, ReadLatest, Done(AlreadyExists)]
            );
        }
    }

    #[test]
    fn a_writer_that_wins_over_the_marker_first_means_already_exists() {
        assert_eq!(
            run(&[
                Conflict,
                Latest(Some((WireKind::DeleteMarker, 5))),
                Conflict
            ]),
            [
                Publish { expected: 0 },
                ReadLatest,
                Publish { expected: 5 },
                Done(AlreadyExists)
            ]
        );
    }

    #[test]
    fn a_key_that_vanished_between_the_requests_gets_one_more_round() {
        assert_eq!(
            run(&[Conflict, Latest(None), Published(3)]),
            [
                Publish { expected: 0 },
                ReadLatest,
                Publish { expected: 0 },
                Done(Created(3))
            ]
        );
        assert_eq!(
            run(&[
                Conflict,
                Latest(None),
                Conflict,
                Latest(Some((WireKind::PurgeMarker, 8))),
                Published(10)
            ]),
            [
                Publish { expected: 0 },
                ReadLatest,
                Publish { expected: 0 },
                ReadLatest,
                Publish { expected: 8 },
                Done(Created(10))
            ]
        );
        assert_eq!(
            run(&[Conflict, Latest(None), Conflict, Latest(None)]),
            [
                Publish { expected: 0 },
                ReadLatest,
                Publish { expected: 0 },
                ReadLatest,
                Done(AlreadyExists)
            ]
        );
    }

    #[test]
    fn events_out_of_place_never_write() {
        let (mut create, _) = CreateOverMarkers::start();
        assert_eq!(create.on_event(Latest(None)), Done(AlreadyExists));
        // After Done, every event stays Done(AlreadyExists).
        assert_eq!(create.on_event(Published(4)), Done(AlreadyExists));
        let mut reading = CreateOverMarkers::start().0;
        assert_eq!(reading.on_event(Conflict), ReadLatest);
        assert_eq!(reading.on_event(Published(4)), Done(AlreadyExists));
    }
}
