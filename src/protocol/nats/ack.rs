//! JetStream ACK reply subjects: the stream sequence and write time of a delivery, read
//! from the right token or not at all (docs/nats-backend.md, "Kernels"). Never allocates,
//! never panics, never guesses a layout.

use super::parse_ascii_u64;

/// The facts a JetStream ACK reply subject carries about one delivered message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AckFields {
    /// The stream sequence (the KV revision); never 0.
    pub stream_sequence: u64,
    /// The server's write time in Unix nanoseconds, when the token is readable.
    pub timestamp_ns: Option<u64>,
}

/// Tokens kept for inspection; the rest are only counted.
const KEPT_TOKENS: usize = 10;
/// Token count of the legacy layout
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`.
const LEGACY_TOKENS: usize = 9;
/// Fewest tokens of the modern layout
/// `$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[.<token>…]`.
const MODERN_TOKENS_MIN: usize = 11;
/// Index of the stream sequence in the legacy layout.
const LEGACY_SEQUENCE_INDEX: usize = 5;
/// Index of the stream sequence in the modern layout.
const MODERN_SEQUENCE_INDEX: usize = 7;
/// Distance from the sequence token to the timestamp token (both layouts).
const TIMESTAMP_OFFSET: usize = 2;

/// Reads the stream sequence and timestamp from a JetStream ACK reply subject.
///
/// Rules (first failing rule → `None`; callers map `None` to
/// `VersionToken::unknown()`):
/// 1. the subject splits on `.` into 9 tokens (legacy layout, sequence at index 5)
///    or 11 and more (modern layout, sequence at index 7); a 10-token subject fits
///    neither layout and is not guessed at;
/// 2. tokens 0 and 1 are `$JS` and `ACK`;
/// 3. the sequence token is an ASCII-digit `u64` (no sign, no overflow) other than 0.
///
/// The timestamp (ns) is the token two after the sequence, read the same way;
/// when unreadable the fields carry `timestamp_ns: None`. The last token is the
/// pending count, never the sequence.
pub fn parse_ack_subject(reply: &str) -> Option<AckFields> {
    let mut tokens: [&str; KEPT_TOKENS] = [""; KEPT_TOKENS];
    let mut count: usize = 0;
    for token in reply.split('.') {
        if let Some(slot) = tokens.get_mut(count) {
            *slot = token;
        }
        count = count.saturating_add(1);
    }
    let sequence_index = match count {
        LEGACY_TOKENS => LEGACY_SEQUENCE_INDEX,
        n if n >= MODERN_TOKENS_MIN => MODERN_SEQUENCE_INDEX,
        _ => return None,
    };
    if tokens[0] != "$JS" || tokens[1] != "ACK" {
        return None;
    }
    let stream_sequence = parse_ascii_u64(tokens[sequence_index]).filter(|&seq| seq != 0)?;
    let timestamp_ns = parse_ascii_u64(tokens[sequence_index + TIMESTAMP_OFFSET]);
    Some(AckFields {
        stream_sequence,
        timestamp_ns,
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
}
