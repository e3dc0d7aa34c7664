//! Push-consumer delivery tracking: the full JetStream delivery reply subject and
//! the rule that a push consumer's deliveries arrive with consecutive consumer
//! sequences. A skipped consumer sequence (a message dropped between server and
//! client) is reported as a gap, never passed over. Pure.

/// Every field of a JetStream delivery's ACK reply subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeliveryFields {
    /// Stream sequence (the bucket revision).
    pub stream_sequence: u64,
    /// Consumer sequence (counts this consumer's deliveries from 1).
    pub consumer_sequence: u64,
    /// Delivery count of this message.
    pub delivered: u64,
    /// Write time in ns, when readable.
    pub timestamp_ns: Option<u64>,
    /// Messages still pending for the consumer after this one, when readable.
    pub pending: Option<u64>,
}

/// A strict ASCII-digit `u64` (no sign, no overflow, non-empty).
fn digits(token: &str) -> Option<u64> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

/// Parses a delivery reply subject: 9 tokens
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` or 11 and
/// more `$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[.…]`;
/// any other count, or a missing or zero sequence, is `None`. No allocation.
pub fn parse_delivery(reply: &str) -> Option<DeliveryFields> {
    let mut tokens: [&str; 11] = [""; 11];
    let mut count = 0usize;
    for token in reply.split('.') {
        if count < tokens.len() {
            tokens[count] = token;
        }
        count += 1;
    }
    if tokens[0] != "$JS" || tokens[1] != "ACK" {
        return None;
    }
    let base = match count {
        9 => 4,
        n if n >= 11 => 6,
        _ => return None,
    };
    let stream_sequence = digits(tokens[base + 1]).filter(|&s| s != 0)?;
    let consumer_sequence = digits(tokens[base + 2]).filter(|&s| s != 0)?;
    let delivered = digits(tokens[base])?;
    Some(DeliveryFields {
        stream_sequence,
        consumer_sequence,
        delivered,
        timestamp_ns: digits(tokens[base + 3]),
        pending: digits(tokens[base + 4]),
    })
}

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
    fn legacy_and_modern_layouts() {
        let legacy = parse_delivery("$JS.ACK.KV_b.c1.1.4.3.1795643469576797037.0").unwrap();
        assert_eq!(legacy.stream_sequence, 4);
        assert_eq!(legacy.consumer_sequence, 3);
        assert_eq!(legacy.delivered, 1);
        assert_eq!(legacy.timestamp_ns, Some(1_795_643_469_576_797_037));
        assert_eq!(legacy.pending, Some(0));
        let modern = parse_delivery("$JS.ACK.dom.acc.KV_b.c1.2.40.30.7.5.tok").unwrap();
        assert_eq!(
            (
                modern.stream_sequence,
                modern.consumer_sequence,
                modern.pending
            ),
            (40, 30, Some(5))
        );
    }

    #[test]
    fn malformed_subjects_are_none() {
        for bad in [
            "",
            "$JS.ACK.a.b.1.2.3.4",
            "$JS.ACK.a.b.c.1.2.3.4.5",
            "$JS.ACK.a.b.1.0.3.4.0",
            "$JS.ACK.a.b.1.2.0.4.0",
            "$JS.ACK.a.b.1.+2.3.4.0",
            "$JS.NAK.a.b.1.2.3.4.0",
            "$JS.ACK.a.b.1.99999999999999999999.3.4.0",
        ] {
            assert_eq!(parse_delivery(bad), None, "{bad}");
        }
    }

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
