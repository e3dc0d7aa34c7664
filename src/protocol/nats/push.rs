//! Push-consumer delivery tracking: a push consumer's deliveries arrive with
//! consecutive consumer sequences (read by [`super::parse_delivery`]). A skipped
//! consumer sequence (a message dropped between server and client) is reported as
//! a gap, never passed over. Pure.

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

/// Tracks a push consumer's consumer sequence from 1.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PushTracker {
    next: u64,
}

impl Default for PushTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl PushTracker {
    /// A tracker for a consumer that has delivered nothing yet.
    pub fn new() -> Self {
        Self { next: 1 }
    }

    /// The consumer sequence due next.
    pub fn next_expected(&self) -> u64 {
        self.next
    }

    /// A delivery with this consumer sequence.
    pub fn on_message(&mut self, consumer_sequence: u64) -> PushVerdict {
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

    /// A delivery whose reply subject could not be read: it is counted as the next
    /// one (servers always send the reply subject; this keeps a later delivery from
    /// being misread as a gap).
    pub fn on_unreadable(&mut self) {
        self.next = self.next.saturating_add(1);
    }

    /// An idle heartbeat carrying `Nats-Last-Consumer` (the last consumer sequence the
    /// server delivered): anything but `next - 1` means deliveries were lost.
    pub fn on_heartbeat(&mut self, last_consumer: Option<u64>) -> PushVerdict {
        match last_consumer {
            Some(last) if last != self.next - 1 => PushVerdict::Gap {
                expected: self.next,
                got: last.saturating_add(1),
            },
            _ => PushVerdict::InOrder,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_reports_gaps() {
        let mut t = PushTracker::new();
        assert_eq!(t.on_message(1), PushVerdict::InOrder);
        assert_eq!(t.on_heartbeat(Some(1)), PushVerdict::InOrder);
        assert_eq!(
            t.on_message(3),
            PushVerdict::Gap {
                expected: 2,
                got: 3
            }
        );
        assert_eq!(
            t.on_heartbeat(Some(2)),
            PushVerdict::Gap {
                expected: 2,
                got: 3
            }
        );
        assert_eq!(t.on_heartbeat(None), PushVerdict::InOrder);
        t.on_unreadable();
        assert_eq!(t.on_message(3), PushVerdict::InOrder);
    }
}
