//! JetStream ACK reply subjects: the stream sequence and write time of a delivery,
//! read from the right token or not at all (docs/nats-backend.md, "Kernels"), and
//! every field a push consumer's delivery carries. One tokenizer
//! ([`delivery_tokens`]) serves both readers. Never allocates, never panics, never
//! guesses a layout.

use super::parse_ascii_u64;

/// The facts a JetStream ACK reply subject carries about one delivered message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AckFields {
    /// The stream sequence (the KV revision); never 0.
    pub stream_sequence: u64,
    /// The server's write time in Unix nanoseconds, when the token is readable.
    pub timestamp_ns: Option<u64>,
}

/// Every field of a JetStream delivery's ACK reply subject, as a push consumer
/// needs them.
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

/// Tokens kept for inspection; the rest are only counted.
const KEPT_TOKENS: usize = 11;
/// Token count of the legacy layout
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`.
const LEGACY_TOKENS: usize = 9;
/// Fewest tokens of the modern layout
/// `$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[.<token>…]`.
const MODERN_TOKENS_MIN: usize = 11;
/// Index of the delivery count in the legacy layout (the stream sequence follows it).
const LEGACY_DELIVERED_INDEX: usize = 4;
/// Index of the delivery count in the modern layout.
const MODERN_DELIVERED_INDEX: usize = 6;
/// Tokens read from the delivery count on: delivered, stream sequence, consumer
/// sequence, timestamp, pending.
const DELIVERY_TOKENS: usize = 5;

/// The one tokenizer of ACK reply subjects: the five delivery tokens
/// `[<delivered>, <sseq>, <cseq>, <ts>, <pending>]`, unparsed.
///
/// Rules (first failing rule → `None`):
/// 1. the subject splits on `.` into 9 tokens (legacy layout, delivery count at
///    index 4) or 11 and more (modern layout, delivery count at index 6); a
///    10-token subject fits neither layout and is not guessed at;
/// 2. tokens 0 and 1 are `$JS` and `ACK`.
pub fn delivery_tokens(reply: &str) -> Option<[&str; DELIVERY_TOKENS]> {
    let mut tokens: [&str; KEPT_TOKENS] = [""; KEPT_TOKENS];
    let mut count: usize = 0;
    // One pass over the bytes (a reply is read once per delivery; `split('.')`
    // searched again from every token). `.` is ASCII, so every cut is a char
    // boundary and `get` never refuses one.
    let mut start = 0;
    for end in reply
        .bytes()
        .enumerate()
        .filter_map(|(at, byte)| (byte == b'.').then_some(at))
        .chain(std::iter::once(reply.len()))
    {
        if let Some(slot) = tokens.get_mut(count) {
            *slot = reply.get(start..end).unwrap_or("");
        }
        count = count.saturating_add(1);
        start = end.saturating_add(1);
    }
    let base = match count {
        LEGACY_TOKENS => LEGACY_DELIVERED_INDEX,
        n if n >= MODERN_TOKENS_MIN => MODERN_DELIVERED_INDEX,
        _ => return None,
    };
    if tokens[0] != "$JS" || tokens[1] != "ACK" {
        return None;
    }
    let mut out = [""; DELIVERY_TOKENS];
    out.copy_from_slice(&tokens[base..base + DELIVERY_TOKENS]);
    Some(out)
}

/// Reads the stream sequence and timestamp from a JetStream ACK reply subject.
///
/// Rules (first failing rule → `None`; callers map `None` to
/// `VersionToken::unknown()`):
/// 1. the layout rules of [`delivery_tokens`] (9 tokens, or 11 and more, under
///    `$JS.ACK`);
/// 2. the sequence token is an ASCII-digit `u64` (no sign, no overflow) other than 0.
///
/// The timestamp (ns) is the token two after the sequence, read the same way;
/// when unreadable the fields carry `timestamp_ns: None`. The last token is the
/// pending count, never the sequence.
pub fn parse_ack_subject(reply: &str) -> Option<AckFields> {
    read_ack(&delivery_tokens(reply)?)
}

/// Reads every field of a push consumer's delivery: the rules of
/// [`parse_ack_subject`], and in addition the consumer sequence must be a
/// non-zero ASCII-digit `u64` and the delivery count an ASCII-digit `u64`; the
/// pending count is `None` when unreadable. No allocation.
pub fn parse_delivery(reply: &str) -> Option<DeliveryFields> {
    let tokens = delivery_tokens(reply)?;
    let ack = read_ack(&tokens)?;
    let [delivered, _, consumer, _, pending] = tokens;
    Some(DeliveryFields {
        stream_sequence: ack.stream_sequence,
        consumer_sequence: parse_ascii_u64(consumer).filter(|&seq| seq != 0)?,
        delivered: parse_ascii_u64(delivered)?,
        timestamp_ns: ack.timestamp_ns,
        pending: parse_ascii_u64(pending),
    })
}

impl DeliveryFields {
    /// The stream sequence and timestamp: exactly what [`parse_ack_subject`] reads
    /// from the same reply subject (both readers share the tokenizer and
    /// `read_ack`).
    pub fn ack(&self) -> AckFields {
        AckFields {
            stream_sequence: self.stream_sequence,
            timestamp_ns: self.timestamp_ns,
        }
    }
}

/// The ACK fields of a push delivery whose reply subject was already read once by
/// [`parse_delivery`] (`fields`), without reading it again when that succeeded:
/// `Some(f)` → `f.ack()`; `None` → [`parse_ack_subject`] of `reply` (a reply with
/// an unreadable consumer sequence or delivery count may still carry a readable
/// stream sequence). Always equal to `reply.and_then(parse_ack_subject)` when
/// `fields == reply.and_then(parse_delivery)`.
pub fn delivery_ack(reply: Option<&str>, fields: Option<&DeliveryFields>) -> Option<AckFields> {
    match fields {
        Some(fields) => Some(fields.ack()),
        None => reply.and_then(parse_ack_subject),
    }
}

/// The stream sequence (non-zero) and the timestamp out of the delivery tokens.
fn read_ack(tokens: &[&str; DELIVERY_TOKENS]) -> Option<AckFields> {
    let [_, sequence, _, timestamp, _] = *tokens;
    let stream_sequence = parse_ascii_u64(sequence).filter(|&seq| seq != 0)?;
    Some(AckFields {
        stream_sequence,
        timestamp_ns: parse_ascii_u64(timestamp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: &str = "1795643469576797037";

    fn fields(stream_sequence: u64, timestamp_ns: Option<u64>) -> Option<AckFields> {
        Some(AckFields {
            stream_sequence,
            timestamp_ns,
        })
    }

    #[test]
    fn pinned_local_server_subject_reads_sequence_four() {
        let reply = format!("$JS.ACK.KV_b.consumer.1.4.3.{TS}.0");
        assert_eq!(
            parse_ack_subject(&reply),
            fields(4, Some(1_795_643_469_576_797_037))
        );
    }

    #[test]
    fn the_last_token_is_pending_not_the_sequence() {
        // Legacy: pending 99 is last, sequence 4 at index 5.
        let reply = format!("$JS.ACK.KV_b.c.1.4.3.{TS}.99");
        assert_eq!(
            parse_ack_subject(&reply).map(|a| a.stream_sequence),
            Some(4)
        );
        // Modern: pending 99 is at index 10, sequence 50 at index 7.
        let reply = format!("$JS.ACK.hub.acc.KV_b.c.2.50.9.{TS}.99");
        assert_eq!(
            parse_ack_subject(&reply).map(|a| a.stream_sequence),
            Some(50)
        );
        // Zero pending: still the sequence, not "unknown".
        let reply = format!("$JS.ACK.KV_b.c.1.7.3.{TS}.0");
        assert_eq!(
            parse_ack_subject(&reply).map(|a| a.stream_sequence),
            Some(7)
        );
    }

    #[test]
    fn layouts_by_token_count() {
        let ts = Some(1_795_643_469_576_797_037);
        let cases: &[(&str, Option<AckFields>)] = &[
            // 9 tokens: legacy.
            ("$JS.ACK.s.c.3.100.7.{TS}.42", fields(100, ts)),
            // 11 tokens: modern, `_` domain.
            ("$JS.ACK._.acc.s.c.1.1.1.{TS}.1", fields(1, ts)),
            // 11 tokens with a domain.
            ("$JS.ACK.hub.acc.s.c.2.50.9.{TS}.0", fields(50, ts)),
            // 12 and more tokens: trailing tokens ignored.
            ("$JS.ACK.hub.acc.s.c.2.50.9.{TS}.0.rand", fields(50, ts)),
            (
                "$JS.ACK.hub.acc.s.c.2.50.9.{TS}.0.rand.future.more",
                fields(50, ts),
            ),
            // 10 tokens fit neither layout.
            ("$JS.ACK.hub.acc.s.c.2.50.9.{TS}", None),
            ("$JS.ACK.s.c.3.100.7.{TS}.42.x", None),
            // 8 tokens and fewer.
            ("$JS.ACK.s.c.3.100.7.{TS}", None),
            ("$JS.ACK.s.c.3.100", None),
            ("$JS.ACK", None),
            ("$JS", None),
            ("", None),
        ];
        for (template, want) in cases {
            let reply = template.replace("{TS}", TS);
            assert_eq!(parse_ack_subject(&reply), *want, "{reply}");
        }
    }

    #[test]
    fn prefix_must_be_js_ack() {
        for reply in [
            "$JS.FC.s.c.3.100.7.1.42",
            "$js.ack.s.c.3.100.7.1.42",
            "JS.ACK.s.c.3.100.7.1.42",
            "$JS.NAK.s.c.3.100.7.1.42",
            "x.$JS.ACK.c.3.100.7.1.42",
            "$JS.ACKX.s.c.3.100.7.1.42",
            "_INBOX.abc.def.g.h.i.j.k.l",
        ] {
            assert_eq!(parse_ack_subject(reply), None, "{reply}");
        }
    }

    #[test]
    fn sequence_must_be_plain_nonzero_digits() {
        let bad = [
            "abc",
            "+4",
            "-4",
            " 4",
            "4 ",
            "0x4",
            "٤",
            "18446744073709551616",
            "99999999999999999999999",
            "0",
            "000",
        ];
        for seq in bad {
            let legacy = format!("$JS.ACK.s.c.1.{seq}.3.1.0");
            assert_eq!(parse_ack_subject(&legacy), None, "{legacy}");
            let modern = format!("$JS.ACK.d.a.s.c.1.{seq}.3.1.0");
            assert_eq!(parse_ack_subject(&modern), None, "{modern}");
        }
        let max = format!("$JS.ACK.s.c.1.{}.3.1.0", u64::MAX);
        assert_eq!(parse_ack_subject(&max), fields(u64::MAX, Some(1)));
        assert_eq!(
            parse_ack_subject("$JS.ACK.s.c.1.0007.3.1.0"),
            fields(7, Some(1))
        );
        // A dot inside the "sequence" makes a different subject: the 9-token
        // layout gains a token (10: refused); the modern one just reads index 7.
        assert_eq!(parse_ack_subject("$JS.ACK.s.c.1.4.0.3.1.0"), None);
        assert_eq!(
            parse_ack_subject("$JS.ACK.d.a.s.c.1.4.0.3.1.0"),
            fields(4, Some(3))
        );
    }

    #[test]
    fn timestamp_is_optional() {
        for ts in ["", "abc", "+1", "18446744073709551616", "1.5"] {
            // "1.5" adds a token; it lands in the 10-token trap instead.
            let reply = format!("$JS.ACK.s.c.1.4.3.{ts}.0");
            let want = if ts.contains('.') {
                None
            } else {
                fields(4, None)
            };
            assert_eq!(parse_ack_subject(&reply), want, "{reply}");
        }
        assert_eq!(
            parse_ack_subject("$JS.ACK.d.a.s.c.1.4.3.x.0"),
            fields(4, None)
        );
        assert_eq!(
            parse_ack_subject("$JS.ACK.s.c.1.4.3.0.0"),
            fields(4, Some(0))
        );
    }

    #[test]
    fn empty_tokens() {
        // An empty sequence token is unreadable.
        assert_eq!(parse_ack_subject("$JS.ACK.s.c.1..3.1.0"), None);
        assert_eq!(parse_ack_subject("$JS.ACK.d.a.s.c.1..3.1.0"), None);
        // A trailing dot adds an (empty) token and changes the layout.
        assert_eq!(parse_ack_subject("$JS.ACK.s.c.1.4.3.1.0."), None);
        // A leading dot shifts the prefix.
        assert_eq!(parse_ack_subject(".$JS.ACK.s.c.1.4.3.1"), None);
        // Only dots: 9 empty tokens.
        assert_eq!(parse_ack_subject("........"), None);
        // Empty name tokens do not move the sequence index.
        assert_eq!(parse_ack_subject("$JS.ACK...1.4.3.1.0"), fields(4, Some(1)));
        assert_eq!(
            parse_ack_subject("$JS.ACK.....1.4.3.1.0"),
            fields(4, Some(1))
        );
    }

    #[test]
    fn extra_tokens_never_change_a_modern_result() {
        let base = format!("$JS.ACK.d.a.s.c.1.4.3.{TS}.0");
        let want = parse_ack_subject(&base);
        assert!(want.is_some());
        let mut reply = base;
        for extra in ["x", "", "99", "$JS", "ACK", "1"] {
            reply.push('.');
            reply.push_str(extra);
            assert_eq!(parse_ack_subject(&reply), want, "{reply}");
        }
    }

    #[test]
    fn delivery_fields_in_legacy_and_modern_layouts() {
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
    fn delivery_ack_reads_the_reply_once_and_agrees_with_parse_ack_subject() {
        let replies = [
            None,
            Some(""),
            Some("$JS.ACK.KV_b.c1.1.4.3.1795643469576797037.0"),
            Some("$JS.ACK.dom.acc.KV_b.c1.2.40.30.7.5.tok"),
            Some("$JS.ACK.s.c.1.4.3.x.0"),
            // Consumer sequence 0 or a signed delivery count: no delivery fields,
            // but the stream sequence is still readable.
            Some("$JS.ACK.a.b.1.2.0.4.0"),
            Some("$JS.ACK.a.b.+1.2.3.4.0"),
            Some("$JS.ACK.a.b.1.0.3.4.0"),
            Some("$JS.ACK.a.b.c.1.2.3.4.5"),
        ];
        for reply in replies {
            let fields = reply.and_then(parse_delivery);
            assert_eq!(
                delivery_ack(reply, fields.as_ref()),
                reply.and_then(parse_ack_subject),
                "{reply:?}"
            );
        }
        assert_eq!(
            delivery_ack(Some("$JS.ACK.a.b.1.2.0.4.0"), None),
            fields(2, Some(4))
        );
        // With fields in hand the reply is not read again.
        let read = parse_delivery("$JS.ACK.KV_b.c1.1.4.3.9.0");
        assert_eq!(delivery_ack(None, read.as_ref()), fields(4, Some(9)));
        assert_eq!(delivery_ack(None, None), None);
    }

    #[test]
    fn the_tokenizer_cuts_exactly_where_split_does() {
        // Layout-sized inputs with empty, multi-byte and trailing tokens: the tokens
        // `delivery_tokens` returns are the ones `split('.')` finds.
        for reply in [
            "$JS.ACK.s.c.1.4.3.5.0",
            "$JS.ACK.d.a.s.c.1.4.3.5.0",
            "$JS.ACK.d.a.s.c.1.4.3.5.0.x.y",
            "$JS.ACK...1.4.3.1.0",
            "$JS.ACK.é.€.1.4.3.1.0",
            "$JS.ACK.🦀.c.1.4.3.1.",
            "$JS.ACK.d.a.s.c.1.4.3.5.",
            "$JS.ACK.........",
        ] {
            let split: Vec<&str> = reply.split('.').collect();
            let base = match split.len() {
                LEGACY_TOKENS => LEGACY_DELIVERED_INDEX,
                n if n >= MODERN_TOKENS_MIN => MODERN_DELIVERED_INDEX,
                _ => {
                    assert_eq!(delivery_tokens(reply), None, "{reply}");
                    continue;
                }
            };
            let want: [&str; DELIVERY_TOKENS] = split[base..base + DELIVERY_TOKENS]
                .try_into()
                .expect("five tokens");
            assert_eq!(delivery_tokens(reply), Some(want), "{reply}");
        }
        for not_a_layout in [
            "",
            ".",
            "$JS",
            "$JS.ACK.s.c.1.4.3.5.0.1",
            "a.b.c.d.e.f.g.h.i",
        ] {
            assert_eq!(delivery_tokens(not_a_layout), None, "{not_a_layout}");
        }
    }

    #[test]
    fn malformed_deliveries_are_none() {
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
}
