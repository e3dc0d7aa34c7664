//! Raw KV messages → kvfold values (docs/nats-backend.md, "Kernels", "Subjects and filters"
//! and "Reads and the listing consumer" step 5): what kind of record a message is, and the
//! `KvUpdate` a watch delivery becomes. Header values are borrowed; nothing here reads a
//! socket or panics on input.

use super::ack::{AckFields, parse_ack_subject};
use super::parse_ascii_u64;
use crate::kv::{KvEntry, KvUpdate, VersionToken};

/// The headers of one KV message that decide what it is (values as received,
/// already trimmed by the client).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MessageHeaders<'a> {
    /// `KV-Operation`: `DEL` or `PURGE` on markers written by clients.
    pub kv_operation: Option<&'a str>,
    /// `Nats-Marker-Reason`: `MaxAge`, `Purge` or `Remove` on markers written by the server.
    pub marker_reason: Option<&'a str>,
    /// `Nats-Msg-Size`: the value length on headers-only deliveries.
    pub msg_size: Option<&'a str>,
}

/// What a KV message is on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WireKind {
    /// A write with a non-empty value.
    Value,
    /// A write with an empty value (the CAS tombstone); reads as a delete.
    EmptyValue,
    /// A delete marker (`KV-Operation: DEL`, or a server `Remove` marker).
    DeleteMarker,
    /// A purge marker (`KV-Operation: PURGE`), or a server `MaxAge`/`Purge` marker.
    PurgeMarker,
}

/// The kind of a KV message, from its headers and its payload length.
///
/// `kv_operation` `DEL` → `DeleteMarker`, `PURGE` → `PurgeMarker`; else
/// `marker_reason` `MaxAge` or `Purge` → `PurgeMarker`, `Remove` → `DeleteMarker`;
/// else the value length decides: `msg_size` when it reads as a plain ASCII-digit
/// `u64` (headers-only deliveries carry it), otherwise `payload_len`; 0 →
/// `EmptyValue`, more → `Value`. Unknown header values are ignored. Values are
/// compared exactly (case-sensitive), as the server and clients write them.
pub fn wire_kind(headers: &MessageHeaders<'_>, payload_len: u64) -> WireKind {
    match headers.kv_operation {
        Some("DEL") => return WireKind::DeleteMarker,
        Some("PURGE") => return WireKind::PurgeMarker,
        _ => {}
    }
    match headers.marker_reason {
        Some("MaxAge" | "Purge") => return WireKind::PurgeMarker,
        Some("Remove") => return WireKind::DeleteMarker,
        _ => {}
    }
    let value_len = headers
        .msg_size
        .and_then(parse_ascii_u64)
        .unwrap_or(payload_len);
    if value_len == 0 {
        WireKind::EmptyValue
    } else {
        WireKind::Value
    }
}

/// Decodes one message delivered for `bucket` into a watch update.
///
/// The key is `subject` minus `$KV.<bucket>.`; a subject outside the bucket (or
/// with an empty key) → `None`, and the caller skips the message. The version is
/// the ACK reply's stream sequence with its write time (ms), or
/// `VersionToken::unknown()` when `reply` is missing or unreadable: never a made-up
/// revision. `Value` → `Put` (the payload is the value), `EmptyValue` and
/// `DeleteMarker` → `Delete`, `PurgeMarker` → `Purge`.
pub fn decode_kv_message(
    bucket: &str,
    subject: &str,
    reply: Option<&str>,
    headers: &MessageHeaders<'_>,
    payload: &[u8],
) -> Option<KvUpdate> {
    decode_kv_delivery(
        bucket,
        subject,
        reply.and_then(parse_ack_subject),
        headers,
        payload,
    )
}

/// [`decode_kv_message`] with the reply subject already read (`ack`, e.g. by
/// [`super::delivery_ack`] from the push consumer's one parse of it): every rule is
/// the same, `ack: None` standing for a missing or unreadable reply.
/// `decode_kv_delivery(b, s, reply.and_then(parse_ack_subject), h, p)` equals
/// `decode_kv_message(b, s, reply, h, p)`.
///
/// The value is copied out of `payload`: a received message's payload shares the
/// client's read buffer, so taking its allocation over is not possible without
/// keeping that whole buffer alive (docs/decisions.md 96).
pub fn decode_kv_delivery(
    bucket: &str,
    subject: &str,
    ack: Option<AckFields>,
    headers: &MessageHeaders<'_>,
    payload: &[u8],
) -> Option<KvUpdate> {
    let key = key_of(bucket, subject)?;
    let version = match ack {
        Some(ack) => {
            let written_ms = ack.timestamp_ns.map_or(0, |ns| ns / 1_000_000);
            VersionToken::from_u64(ack.stream_sequence).written_at(written_ms)
        }
        None => VersionToken::unknown(),
    };
    let payload_len = u64::try_from(payload.len()).unwrap_or(u64::MAX);
    let key = key.to_owned();
    Some(match wire_kind(headers, payload_len) {
        WireKind::Value => KvUpdate::Put(KvEntry {
            key,
            value: payload.to_vec(),
            version,
        }),
        WireKind::EmptyValue | WireKind::DeleteMarker => KvUpdate::Delete { key, version },
        WireKind::PurgeMarker => KvUpdate::Purge { key, version },
    })
}

/// The key of `subject` in `bucket`: the rest after `$KV.<bucket>.`, if non-empty.
fn key_of<'s>(bucket: &str, subject: &'s str) -> Option<&'s str> {
    let key = subject
        .strip_prefix("$KV.")?
        .strip_prefix(bucket)?
        .strip_prefix('.')?;
    (!key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(
        kv_operation: Option<&'a str>,
        marker_reason: Option<&'a str>,
        msg_size: Option<&'a str>,
    ) -> MessageHeaders<'a> {
        MessageHeaders {
            kv_operation,
            marker_reason,
            msg_size,
        }
    }

    /// One `wire_kind` row: KV-Operation, Nats-Marker-Reason, Nats-Msg-Size, payload length, kind.
    type KindRow = (
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        u64,
        WireKind,
    );

    #[test]
    fn wire_kind_table() {
        use WireKind::*;
        let cases: &[KindRow] = &[
            // Client markers.
            (Some("DEL"), None, None, 0, DeleteMarker),
            (Some("PURGE"), None, None, 0, PurgeMarker),
            (Some("DEL"), None, None, 5, DeleteMarker),
            (Some("DEL"), Some("MaxAge"), None, 0, DeleteMarker),
            (Some("PURGE"), Some("Remove"), Some("3"), 3, PurgeMarker),
            // Server markers carry no KV-Operation.
            (None, Some("MaxAge"), None, 0, PurgeMarker),
            (None, Some("Purge"), None, 0, PurgeMarker),
            (None, Some("Remove"), None, 0, DeleteMarker),
            (None, Some("MaxAge"), Some("0"), 0, PurgeMarker),
            // Values by length.
            (None, None, None, 0, EmptyValue),
            (None, None, None, 1, Value),
            (None, None, None, u64::MAX, Value),
            // Headers-only deliveries: Nats-Msg-Size decides (pinned: 0 for an empty value).
            (None, None, Some("0"), 0, EmptyValue),
            (None, None, Some("12"), 0, Value),
            (None, None, Some("0"), 7, EmptyValue),
            (None, None, Some("18446744073709551615"), 0, Value),
            // Unparseable Nats-Msg-Size: the payload length decides.
            (None, None, Some(""), 0, EmptyValue),
            (None, None, Some("abc"), 0, EmptyValue),
            (None, None, Some("abc"), 4, Value),
            (None, None, Some("+5"), 0, EmptyValue),
            (None, None, Some("-1"), 2, Value),
            (None, None, Some("18446744073709551616"), 0, EmptyValue),
            // Unknown KV-Operation values are ignored.
            (Some("PUT"), None, None, 3, Value),
            (Some("PUT"), None, None, 0, EmptyValue),
            (Some("del"), None, None, 0, EmptyValue),
            (Some("purge"), None, None, 9, Value),
            (Some(""), None, None, 1, Value),
            (Some("DEL "), None, None, 1, Value),
            (Some("FOO"), Some("MaxAge"), None, 0, PurgeMarker),
            (Some("FOO"), Some("Remove"), None, 1, DeleteMarker),
            // Unknown marker reasons are ignored.
            (None, Some("maxage"), None, 0, EmptyValue),
            (None, Some("Expired"), None, 2, Value),
            (None, Some(""), Some("4"), 0, Value),
        ];
        for &(op, reason, size, len, want) in cases {
            let h = headers(op, reason, size);
            assert_eq!(wire_kind(&h, len), want, "{h:?} len {len}");
        }
    }

    const REPLY: &str = "$JS.ACK.KV_b.c.1.4.3.1795643469576797037.0";

    fn token(rev: u64, ms: u64) -> VersionToken {
        VersionToken::from_u64(rev).written_at(ms)
    }

    #[test]
    fn decodes_values_and_markers() {
        let none = MessageHeaders::default();
        let got = decode_kv_message("b", "$KV.b.k", Some(REPLY), &none, b"v").unwrap();
        assert_eq!(
            got,
            KvUpdate::Put(KvEntry {
                key: "k".into(),
                value: b"v".to_vec(),
                version: VersionToken::from_u64(4),
            })
        );
        assert_eq!(got.version().written_ms(), Some(1_795_643_469_576));

        let del = headers(Some("DEL"), None, None);
        assert_eq!(
            decode_kv_message("b", "$KV.b.a.b", Some(REPLY), &del, b""),
            Some(KvUpdate::Delete {
                key: "a.b".into(),
                version: token(4, 1_795_643_469_576),
            })
        );
        let purge = headers(Some("PURGE"), None, None);
        assert_eq!(
            decode_kv_message("b", "$KV.b.k", Some(REPLY), &purge, b""),
            Some(KvUpdate::Purge {
                key: "k".into(),
                version: token(4, 0),
            })
        );
        // A CAS tombstone (empty value, no KV-Operation) reads as a delete.
        assert_eq!(
            decode_kv_message("b", "$KV.b.k", Some(REPLY), &none, b""),
            Some(KvUpdate::Delete {
                key: "k".into(),
                version: token(4, 0),
            })
        );
    }

    #[test]
    fn server_markers_decode_by_reason() {
        for (reason, purge) in [("MaxAge", true), ("Purge", true), ("Remove", false)] {
            let h = headers(None, Some(reason), None);
            let got = decode_kv_message("b", "$KV.b.k", Some(REPLY), &h, b"").unwrap();
            let want = if purge {
                KvUpdate::Purge {
                    key: "k".into(),
                    version: token(4, 0),
                }
            } else {
                KvUpdate::Delete {
                    key: "k".into(),
                    version: token(4, 0),
                }
            };
            assert_eq!(got, want, "{reason}");
        }
    }

    #[test]
    fn subjects_outside_the_bucket_are_skipped() {
        let none = MessageHeaders::default();
        for (bucket, subject) in [
            ("b", "$KV.c.k"),
            ("b", "$KV.bb.k"),   // a bucket name that extends ours
            ("bb", "$KV.b.b.k"), // ours extends the subject's bucket
            ("b", "$KV.b"),      // no key part
            ("b", "$KV.b."),     // empty key
            ("b", "$KV.b_x.k"),  // prefix followed by another character
            ("b", "$KV.B.k"),    // case matters
            ("b", "KV.b.k"),     // missing `$`
            ("b", "$kv.b.k"),
            ("b", "$JS.b.k"),
            ("b", "b.k"),
            ("b", ""),
            ("", "$KV.b.k"),
        ] {
            assert_eq!(
                decode_kv_message(bucket, subject, Some(REPLY), &none, b"v"),
                None,
                "{bucket} {subject}"
            );
        }
        // A bucket name that is a prefix of another still decodes its own subjects.
        let got = decode_kv_message("b", "$KV.b.bb.k", Some(REPLY), &none, b"v").unwrap();
        assert_eq!(got.key(), "bb.k");
        let got = decode_kv_message("bb", "$KV.bb.k", Some(REPLY), &none, b"v").unwrap();
        assert_eq!(got.key(), "k");
    }

    #[test]
    fn unreadable_reply_gives_an_unknown_version() {
        let none = MessageHeaders::default();
        for reply in [
            None,
            Some(""),
            Some("_INBOX.x.y"),
            Some("$JS.ACK.d.a.KV_b.c.1.4.3.1"), // 10 tokens
            Some("$JS.ACK.KV_b.c.1.0.3.1.0"),   // sequence 0
            Some("$JS.ACK.KV_b.c.1.x.3.1.0"),   // non-numeric sequence
            Some("$JS.ACK.KV_b.c.1.+4.3.1.0"),  // signed sequence
        ] {
            let got = decode_kv_message("b", "$KV.b.k", reply, &none, b"v").unwrap();
            assert!(got.version().is_unknown(), "{reply:?}");
            assert_eq!(got.version().written_ms(), None, "{reply:?}");
        }
        // A readable sequence with an unreadable timestamp: version known, time unknown.
        let got = decode_kv_message(
            "b",
            "$KV.b.k",
            Some("$JS.ACK.KV_b.c.1.9.3.x.0"),
            &none,
            b"v",
        )
        .unwrap();
        assert_eq!(got.version().as_u64(), Some(9));
        assert_eq!(got.version().written_ms(), None);
        // The modern layout reads index 7.
        let got = decode_kv_message(
            "b",
            "$KV.b.k",
            Some("$JS.ACK.hub.acc.KV_b.c.2.50.9.2000000.0.tok"),
            &none,
            b"v",
        )
        .unwrap();
        assert_eq!(got.version().as_u64(), Some(50));
        assert_eq!(got.version().written_ms(), Some(2));
    }

    #[test]
    fn decode_with_a_parsed_reply_equals_decode_with_the_reply() {
        use crate::protocol::nats::{delivery_ack, parse_delivery};
        let headers_cases = [
            MessageHeaders::default(),
            headers(Some("DEL"), None, None),
            headers(None, Some("MaxAge"), None),
            headers(None, None, Some("0")),
        ];
        let replies = [
            None,
            Some(REPLY),
            Some("$JS.ACK.a.b.1.2.0.4.0"),
            Some("$JS.ACK.hub.acc.KV_b.c.2.50.9.2000000.0.tok"),
            Some("_INBOX.x.y"),
        ];
        for h in &headers_cases {
            for reply in replies {
                for (subject, payload) in
                    [("$KV.b.k", &b"v"[..]), ("$KV.b.k", b""), ("$KV.c.k", b"v")]
                {
                    let fields = reply.and_then(parse_delivery);
                    let ack = delivery_ack(reply, fields.as_ref());
                    assert_eq!(
                        decode_kv_delivery("b", subject, ack, h, payload),
                        decode_kv_message("b", subject, reply, h, payload),
                        "{h:?} {reply:?} {subject}"
                    );
                }
            }
        }
        let ack = AckFields {
            stream_sequence: 9,
            timestamp_ns: Some(3_000_000),
        };
        let none = MessageHeaders::default();
        let got = decode_kv_delivery("b", "$KV.b.k", Some(ack), &none, b"v").unwrap();
        assert_eq!(got.version().as_u64(), Some(9));
        assert_eq!(got.version().written_ms(), Some(3));
        let got = decode_kv_delivery("b", "$KV.b.k", None, &none, b"v").unwrap();
        assert!(got.version().is_unknown());
    }

    #[test]
    fn headers_only_size_overrides_the_payload() {
        let sized = headers(None, None, Some("0"));
        let got = decode_kv_message("b", "$KV.b.k", Some(REPLY), &sized, b"").unwrap();
        assert!(matches!(got, KvUpdate::Delete { .. }));
        let sized = headers(None, None, Some("10"));
        let got = decode_kv_message("b", "$KV.b.k", Some(REPLY), &sized, b"").unwrap();
        assert!(matches!(got, KvUpdate::Put(ref e) if e.value.is_empty()));
    }
}
