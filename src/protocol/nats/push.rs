//! Push-consumer delivery tracking and liveness: a push consumer's deliveries arrive
//! with consecutive consumer sequences (read by [`super::parse_delivery`]), and a
//! quiet consumer sends an idle heartbeat. A skipped consumer sequence (a message
//! dropped between server and client) is reported as a gap, never passed over; a
//! consumer silent for longer than its heartbeat-loss limit while the client is
//! connected is reported as lost (a deleted bucket or consumer sends nothing more).
//! Pure: time comes in as [`Millis`], the deadline goes out through
//! [`PushTracker::poll_timeout`].

use crate::protocol::time::Millis;

/// What a delivery or heartbeat says about the consumer's sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PushVerdict {
    /// Consecutive: nothing was lost.
    InOrder,
    /// A consumer sequence was skipped: deliveries were lost in between.
    Gap {
        /// The consumer sequence that was due.
        expected: u64,
        /// The one that arrived (or the heartbeat's last delivered + 1).
        got: u64,
    },
}

/// What the heartbeat-loss deadline found ([`PushTracker::handle_timeout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Liveness {
    /// Not silent for long enough yet, or silent only while the client was away
    /// (nothing can arrive then; the silence timer restarted).
    Alive,
    /// Connected and silent past the limit: the consumer is taken for gone.
    HeartbeatLost {
        /// How long nothing arrived (ms).
        silent_ms: u64,
    },
}

/// Whether the client holds a connection to the server when a deadline passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientLink {
    /// Connected: silence is the consumer's.
    Connected,
    /// Disconnected or reconnecting: silence is the link's, not a fault.
    Away,
}

/// Tracks a push consumer's consumer sequence from 1 and its silence.
///
/// Drive it like every machine (see the crate docs, "Driving a sans-IO machine"):
/// report every received message with its `now` (`on_message`, `on_unreadable`,
/// `on_heartbeat`, `on_control`), sleep until [`poll_timeout`](Self::poll_timeout)
/// and call [`handle_timeout`](Self::handle_timeout) when it passes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PushTracker {
    next: u64,
    /// Silence after which a connected consumer is lost (configuration).
    heartbeat_loss_ms: u64,
    /// The last time something arrived (or the timer restarted).
    last_activity: Millis,
}

impl PushTracker {
    /// A tracker for a consumer created at `now` that has delivered nothing yet;
    /// silence longer than `heartbeat_loss_ms` while connected is a loss.
    pub fn new(heartbeat_loss_ms: u64, now: Millis) -> Self {
        Self {
            next: 1,
            heartbeat_loss_ms,
            last_activity: now,
        }
    }

    /// The consumer sequence due next.
    pub fn next_expected(&self) -> u64 {
        self.next
    }

    /// When the consumer counts as gone if nothing arrives before it.
    pub fn poll_timeout(&self) -> Option<Millis> {
        Some(self.last_activity.plus_ms(self.heartbeat_loss_ms))
    }

    fn active(&mut self, now: Millis) {
        self.last_activity = self.last_activity.max(now);
    }

    /// A delivery with this consumer sequence arrived at `now`.
    pub fn on_message(&mut self, now: Millis, consumer_sequence: u64) -> PushVerdict {
        self.active(now);
        if consumer_sequence == self.next {
            self.next = self.next.saturating_add(1);
            PushVerdict::InOrder
        } else {
            PushVerdict::Gap {
                expected: self.next,
                got: consumer_sequence,
            }
        }
    }

    /// A delivery whose reply subject could not be read arrived at `now`: it is
    /// counted as the next one (servers always send the reply subject; this keeps a
    /// later delivery from being misread as a gap).
    pub fn on_unreadable(&mut self, now: Millis) {
        self.active(now);
        self.next = self.next.saturating_add(1);
    }

    /// An idle heartbeat carrying `Nats-Last-Consumer` (the last consumer sequence the
    /// server delivered) arrived at `now`: anything but `next - 1` means deliveries
    /// were lost.
    pub fn on_heartbeat(&mut self, now: Millis, last_consumer: Option<u64>) -> PushVerdict {
        self.active(now);
        match last_consumer {
            Some(last) if last != self.next - 1 => PushVerdict::Gap {
                expected: self.next,
                got: last.saturating_add(1),
            },
            _ => PushVerdict::InOrder,
        }
    }

    /// Any other message from the consumer (a flow-control request, a status)
    /// arrived at `now`: the consumer is alive.
    pub fn on_control(&mut self, now: Millis) {
        self.active(now);
    }

    /// The executor stopped reading between the last activity and `now` (it waited
    /// on the application: back-pressure). That wait is not the server's silence:
    /// the timer restarts at `now`.
    pub fn on_paused(&mut self, now: Millis) {
        self.active(now);
    }

    /// The [`poll_timeout`](Self::poll_timeout) deadline may have passed at `now`,
    /// with the client's connection in state `link`. Silence while the client is
    /// away is not a fault (no heartbeat can arrive; the reconnect is the guard's
    /// business): the timer restarts. Before the deadline nothing changes.
    pub fn handle_timeout(&mut self, now: Millis, link: ClientLink) -> Liveness {
        let due = self.last_activity.plus_ms(self.heartbeat_loss_ms);
        if now < due {
            return Liveness::Alive;
        }
        match link {
            ClientLink::Away => {
                self.active(now);
                Liveness::Alive
            }
            ClientLink::Connected => Liveness::HeartbeatLost {
                silent_ms: now.0.saturating_sub(self.last_activity.0),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOSS_MS: u64 = 3_500;

    fn at(ms: u64) -> Millis {
        Millis(ms)
    }

    #[test]
    fn tracker_reports_gaps() {
        let mut t = PushTracker::new(LOSS_MS, at(0));
        assert_eq!(t.on_message(at(1), 1), PushVerdict::InOrder);
        assert_eq!(t.on_heartbeat(at(2), Some(1)), PushVerdict::InOrder);
        assert_eq!(
            t.on_message(at(3), 3),
            PushVerdict::Gap {
                expected: 2,
                got: 3
            }
        );
        assert_eq!(
            t.on_heartbeat(at(4), Some(2)),
            PushVerdict::Gap {
                expected: 2,
                got: 3
            }
        );
        assert_eq!(t.on_heartbeat(at(5), None), PushVerdict::InOrder);
        t.on_unreadable(at(6));
        assert_eq!(t.on_message(at(7), 3), PushVerdict::InOrder);
        assert_eq!(t.next_expected(), 4);
    }

    #[test]
    fn deadline_is_the_last_activity_plus_the_loss_limit() {
        let mut t = PushTracker::new(LOSS_MS, at(100));
        assert_eq!(t.poll_timeout(), Some(at(100 + LOSS_MS)));
        assert_eq!(t.on_message(at(200), 1), PushVerdict::InOrder);
        assert_eq!(t.poll_timeout(), Some(at(200 + LOSS_MS)));
        t.on_unreadable(at(300));
        assert_eq!(t.poll_timeout(), Some(at(300 + LOSS_MS)));
        assert_eq!(t.on_heartbeat(at(400), Some(2)), PushVerdict::InOrder);
        assert_eq!(t.poll_timeout(), Some(at(400 + LOSS_MS)));
        t.on_control(at(500));
        assert_eq!(t.poll_timeout(), Some(at(500 + LOSS_MS)));
        t.on_paused(at(600));
        assert_eq!(t.poll_timeout(), Some(at(600 + LOSS_MS)));
    }

    #[test]
    fn a_gap_is_still_activity() {
        let mut t = PushTracker::new(LOSS_MS, at(0));
        let _ = t.on_message(at(50), 7);
        assert_eq!(t.poll_timeout(), Some(at(50 + LOSS_MS)));
    }

    #[test]
    fn activity_stamped_earlier_never_moves_the_deadline_back() {
        let mut t = PushTracker::new(LOSS_MS, at(1_000));
        t.on_control(at(10));
        assert_eq!(t.poll_timeout(), Some(at(1_000 + LOSS_MS)));
    }

    #[test]
    fn silence_before_the_deadline_is_not_a_loss() {
        let mut t = PushTracker::new(LOSS_MS, at(0));
        let before = t.clone();
        assert_eq!(
            t.handle_timeout(at(LOSS_MS - 1), ClientLink::Connected),
            Liveness::Alive
        );
        assert_eq!(
            t.handle_timeout(at(LOSS_MS - 1), ClientLink::Away),
            Liveness::Alive
        );
        assert_eq!(t, before, "an early timeout changes nothing");
    }

    #[test]
    fn silence_past_the_limit_while_connected_is_a_heartbeat_loss() {
        let mut t = PushTracker::new(LOSS_MS, at(0));
        let _ = t.on_message(at(10), 1);
        assert_eq!(
            t.handle_timeout(at(10 + LOSS_MS), ClientLink::Connected),
            Liveness::HeartbeatLost { silent_ms: LOSS_MS }
        );
        // Reported again until something arrives.
        assert_eq!(
            t.handle_timeout(at(20 + LOSS_MS), ClientLink::Connected),
            Liveness::HeartbeatLost {
                silent_ms: LOSS_MS + 10
            }
        );
        assert_eq!(
            t.on_heartbeat(at(30 + LOSS_MS), Some(1)),
            PushVerdict::InOrder
        );
        assert_eq!(
            t.handle_timeout(at(30 + LOSS_MS), ClientLink::Connected),
            Liveness::Alive
        );
    }

    #[test]
    fn silence_while_the_client_is_away_restarts_the_timer() {
        let mut t = PushTracker::new(LOSS_MS, at(0));
        assert_eq!(
            t.handle_timeout(at(5_000), ClientLink::Away),
            Liveness::Alive
        );
        assert_eq!(t.poll_timeout(), Some(at(5_000 + LOSS_MS)));
        // Back and still silent for a whole limit: now it is the consumer's silence.
        assert_eq!(
            t.handle_timeout(at(5_000 + LOSS_MS - 1), ClientLink::Connected),
            Liveness::Alive
        );
        assert_eq!(
            t.handle_timeout(at(5_000 + LOSS_MS), ClientLink::Connected),
            Liveness::HeartbeatLost { silent_ms: LOSS_MS }
        );
    }

    #[test]
    fn back_pressure_is_not_silence() {
        let mut t = PushTracker::new(LOSS_MS, at(0));
        let _ = t.on_message(at(0), 1);
        // The application held the executor for twice the limit.
        t.on_paused(at(2 * LOSS_MS));
        assert_eq!(
            t.handle_timeout(at(2 * LOSS_MS), ClientLink::Connected),
            Liveness::Alive
        );
        assert_eq!(t.poll_timeout(), Some(at(3 * LOSS_MS)));
    }

    #[test]
    fn deadline_saturates_at_the_end_of_time() {
        let t = PushTracker::new(LOSS_MS, at(u64::MAX - 1));
        assert_eq!(t.poll_timeout(), Some(at(u64::MAX)));
        let mut t = t;
        assert_eq!(
            t.handle_timeout(at(u64::MAX - 2), ClientLink::Connected),
            Liveness::Alive
        );
    }
}
