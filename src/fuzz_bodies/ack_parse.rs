//! Fuzz body `ack_parse` (docs/verification.md, "Fuzz targets" and row 15): ACK reply
//! subjects are read from the right token or not at all, for raw strings and for subjects
//! built in both layouts; KV message decoding never panics on arbitrary header values and
//! agrees with the ACK parser and `wire_kind`.

use super::input::Input;
use crate::kv::KvUpdate;
use crate::protocol::nats::{
    AckFields, CreateOutcome, ErrorClass, MessageHeaders, WireKind, classify_error,
    classify_stream_create, decode_kv_delivery, decode_kv_message, delivery_ack,
    is_cursor_expired_text, parse_ack_subject, parse_delivery, wire_kind,
};

/// Token count of the legacy layout.
const LEGACY_TOKENS: usize = 9;
/// Fewest tokens of the modern layout.
const MODERN_TOKENS_MIN: usize = 11;
/// Trailing tokens appended to check that they never change a modern result.
const EXTRA_SUFFIXES: [&str; 4] = [".x", ".", ".1", ".$JS.ACK"];
/// Characters names are drawn from: anything but `.`, multi-byte UTF-8 included.
const NAME_CHARS: &[char] = &[
    'a', 'Z', '0', '9', '_', '-', '$', '*', '>', ' ', '+', 'é', '€', '🦀', 'K', 'V',
];
/// Longest structured name, in characters.
const NAME_LEN_MAX: u8 = 12;
/// Most trailing tokens a structured modern subject gets.
const EXTRA_TOKENS_MAX: u8 = 7;

/// Feeds `data` (lossily as UTF-8) to `parse_ack_subject`, builds a legacy or
/// modern subject from it as structured input, and feeds it through `wire_kind`
/// and `decode_kv_message` as arbitrary header values.
///
/// Asserts: never panics; `Some(a)` ⇒ the subject starts with `$JS.ACK.`, has 9
/// or ≥ 11 tokens, `a.stream_sequence > 0` and equals the token at index 5
/// (9 tokens) or 7, and the timestamp is the token two after it when readable;
/// a subject meeting every rule is never refused; extra trailing tokens on a
/// ≥ 11-token subject do not change the result; structured subjects parse back
/// to their (sequence, timestamp); a decoded update has the subject's key, the
/// reply's revision, and the kind `wire_kind` gives; decoding with the reply read
/// once by `parse_delivery` (`delivery_ack` + `decode_kv_delivery`, the watch's
/// path) gives the same update as `decode_kv_message`.
///
/// The push-consumer reader `parse_delivery` shares the tokenizer: `Some(d)` ⇒
/// `parse_ack_subject` agrees on the sequence and timestamp, the consumer
/// sequence is the plain non-zero token after the stream sequence, the delivery
/// count the plain token before it, the pending count the token after the
/// timestamp when readable; `None` while `parse_ack_subject` is `Some` ⇒ the
/// consumer sequence or the delivery count is unreadable.
///
/// Addition to the table of docs/verification.md, "Fuzz targets" (the other
/// `protocol::nats` text kernels must never panic either): the bytes also go to
/// `classify_stream_create` (a `Failed` outcome never holds facts that classify as exists
/// or limit) and to `is_cursor_expired_text` (ASCII case never changes the answer).
pub fn ack_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_subject(&text);
    check_structured(data);
    check_message(data);
    check_error_texts(data, &text);
}

/// Non-empty and ASCII digits only.
fn is_plain_digits(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit())
}

/// The value of a plain-digit token, when it fits a `u64`.
fn plain_u64(token: &str) -> Option<u64> {
    if is_plain_digits(token) {
        token.parse().ok()
    } else {
        None
    }
}

/// `parse_delivery` against `parse_ack_subject` and the raw tokens.
fn check_delivery(
    subject: &str,
    tokens: &[&str],
    parsed: Option<AckFields>,
    sequence_index: Option<usize>,
) {
    let delivery = parse_delivery(subject);
    match (delivery, parsed, sequence_index) {
        (Some(d), Some(ack), Some(index)) => {
            assert_eq!(
                (d.stream_sequence, d.timestamp_ns),
                (ack.stream_sequence, ack.timestamp_ns),
                "{subject:?}: the two readers disagree"
            );
            assert_eq!(
                plain_u64(tokens[index - 1]),
                Some(d.delivered),
                "{subject:?}"
            );
            assert_eq!(
                plain_u64(tokens[index + 1]).filter(|&seq| seq > 0),
                Some(d.consumer_sequence),
                "{subject:?}"
            );
            assert_eq!(plain_u64(tokens[index + 3]), d.pending, "{subject:?}");
        }
        (Some(d), _, _) => panic!("{subject:?}: delivery {d:?} without an ACK reading"),
        (None, Some(_), Some(index)) => {
            let readable = plain_u64(tokens[index - 1]).is_some()
                && plain_u64(tokens[index + 1]).is_some_and(|seq| seq > 0);
            assert!(!readable, "{subject:?}: a readable delivery was refused");
        }
        (None, Some(ack), None) => panic!("{subject:?}: {ack:?} with no layout"),
        (None, None, _) => {}
    }
}

/// The raw-subject properties.
fn check_subject(subject: &str) {
    let parsed = parse_ack_subject(subject);
    let tokens: Vec<&str> = subject.split('.').collect();
    let sequence_index = match tokens.len() {
        LEGACY_TOKENS => Some(5),
        n if n >= MODERN_TOKENS_MIN => Some(7),
        _ => None,
    };
    match (parsed, sequence_index) {
        (Some(ack), Some(index)) => {
            assert!(
                subject.starts_with("$JS.ACK."),
                "{subject:?} parsed as {ack:?}"
            );
            assert!(ack.stream_sequence > 0, "{subject:?} gave sequence 0");
            assert_eq!(
                plain_u64(tokens[index]),
                Some(ack.stream_sequence),
                "{subject:?}: sequence not read from token {index}"
            );
            assert_eq!(
                ack.timestamp_ns,
                plain_u64(tokens[index + 2]),
                "{subject:?}: timestamp not read from token {}",
                index + 2
            );
        }
        (Some(ack), None) => {
            panic!(
                "{subject:?} has {} tokens but parsed as {ack:?}",
                tokens.len()
            )
        }
        (None, Some(index)) => {
            let readable = tokens[0] == "$JS"
                && tokens[1] == "ACK"
                && plain_u64(tokens[index]).is_some_and(|seq| seq > 0);
            assert!(!readable, "{subject:?} meets every rule but was refused");
        }
        (None, None) => {}
    }
    check_delivery(subject, &tokens, parsed, sequence_index);
    if tokens.len() >= MODERN_TOKENS_MIN {
        for suffix in EXTRA_SUFFIXES {
            let longer = format!("{subject}{suffix}");
            assert_eq!(
                parse_ack_subject(&longer),
                parsed,
                "{longer:?}: a trailing token changed the result"
            );
        }
    }
}

/// A dot-free name of up to `NAME_LEN_MAX` characters (possibly empty).
fn name(input: &mut Input<'_>) -> String {
    let len = input.byte() % (NAME_LEN_MAX + 1);
    (0..len)
        .map(|_| NAME_CHARS[usize::from(input.byte()) % NAME_CHARS.len()])
        .collect()
}

/// The structured-subject properties.
///
/// Layout: byte 0 = modern (bit 0), timestamp form (bits 1–2: digits, garbage,
/// empty, zero-padded digits), extra-token count (bits 3–5); then sequence,
/// timestamp, delivered, consumer sequence and pending as numbers; then the names.
fn check_structured(data: &[u8]) {
    let mut input = Input::new(data);
    let head = input.byte();
    let modern = head & 1 != 0;
    let ts_form = (head >> 1) & 0b11;
    let extra_tokens = ((head >> 3) & 0b111) % (EXTRA_TOKENS_MAX + 1);
    let sequence = input.number();
    let timestamp = input.number();
    let delivered = input.number();
    let consumer_sequence = input.number();
    let pending = input.number();
    let ts_token = match ts_form {
        0 => timestamp.to_string(),
        1 => format!("x{timestamp}"),
        2 => String::new(),
        _ => format!("000{timestamp}"),
    };
    let ts_readable = matches!(ts_form, 0 | 3);
    let stream = name(&mut input);
    let consumer = name(&mut input);
    let mut subject = if modern {
        let domain = name(&mut input);
        let account = name(&mut input);
        format!(
            "$JS.ACK.{domain}.{account}.{stream}.{consumer}.{delivered}.{sequence}.{consumer_sequence}.{ts_token}.{pending}"
        )
    } else {
        format!(
            "$JS.ACK.{stream}.{consumer}.{delivered}.{sequence}.{consumer_sequence}.{ts_token}.{pending}"
        )
    };
    let want = (sequence != 0).then_some(AckFields {
        stream_sequence: sequence,
        timestamp_ns: ts_readable.then_some(timestamp),
    });
    assert_eq!(parse_ack_subject(&subject), want, "{subject:?}");
    if modern {
        for _ in 0..extra_tokens {
            subject.push('.');
            subject.push_str(&name(&mut input));
            assert_eq!(parse_ack_subject(&subject), want, "{subject:?}");
        }
    } else if extra_tokens > 0 {
        // One more token turns a legacy subject into the 10-token trap.
        subject.push('.');
        subject.push_str(&name(&mut input));
        assert_eq!(parse_ack_subject(&subject), None, "{subject:?}");
    }
}

/// The message-decoding properties, on arbitrary header values.
///
/// Layout: byte 0 = which headers are present (bits 0–2: KV-Operation,
/// Nats-Marker-Reason, Nats-Msg-Size), reply present (bit 3), subject built as
/// `$KV.<bucket>.<rest>` (bit 4); the rest, lossily UTF-8, split on `\n` into
/// bucket, subject, reply, the three header values and the payload.
fn check_message(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let text = String::from_utf8_lossy(input.rest());
    let mut fields = text.splitn(7, '\n');
    let mut field = || fields.next().unwrap_or("");
    let (bucket, subject_text, reply_text) = (field(), field(), field());
    let (operation, reason, size) = (field(), field(), field());
    let payload = field().as_bytes();
    let headers = MessageHeaders {
        kv_operation: (flags & 0b1 != 0).then_some(operation),
        marker_reason: (flags & 0b10 != 0).then_some(reason),
        msg_size: (flags & 0b100 != 0).then_some(size),
    };
    let reply = (flags & 0b1000 != 0).then_some(reply_text);
    let subject = if flags & 0b1_0000 != 0 {
        format!("$KV.{bucket}.{subject_text}")
    } else {
        subject_text.to_owned()
    };
    let payload_len = u64::try_from(payload.len()).unwrap_or(u64::MAX);
    let kind = wire_kind(&headers, payload_len);
    // Extreme lengths must not panic either.
    let _ = wire_kind(&headers, 0);
    let _ = wire_kind(&headers, u64::MAX);

    let decoded = decode_kv_message(bucket, &subject, reply, &headers, payload);
    // The watch's parse-once path: the reply read by `parse_delivery` and reused.
    let fields = reply.and_then(parse_delivery);
    assert_eq!(
        decode_kv_delivery(
            bucket,
            &subject,
            delivery_ack(reply, fields.as_ref()),
            &headers,
            payload
        ),
        decoded,
        "the parse-once decode disagrees for reply {reply:?}"
    );
    let Some(update) = decoded else {
        let prefix = format!("$KV.{bucket}.");
        assert!(
            subject.strip_prefix(&prefix).is_none_or(str::is_empty),
            "{subject:?} is in bucket {bucket:?} but was skipped"
        );
        return;
    };
    assert!(!update.key().is_empty());
    assert_eq!(
        format!("$KV.{bucket}.{}", update.key()),
        subject,
        "key does not rebuild the subject"
    );
    let ack = reply.and_then(parse_ack_subject);
    assert_eq!(
        update.version().as_u64(),
        ack.map(|a| a.stream_sequence),
        "version not from the reply {reply:?}"
    );
    assert_eq!(update.version().is_unknown(), ack.is_none());
    match (kind, &update) {
        (WireKind::Value, KvUpdate::Put(entry)) => assert_eq!(entry.value, payload),
        (WireKind::EmptyValue | WireKind::DeleteMarker, KvUpdate::Delete { .. })
        | (WireKind::PurgeMarker, KvUpdate::Purge { .. }) => {}
        _ => panic!("wire kind {kind:?} decoded as {update:?}"),
    }
}

/// The error-text kernels on arbitrary bytes.
fn check_error_texts(data: &[u8], text: &str) {
    if let CreateOutcome::Failed(facts) = classify_stream_create(data) {
        let class = classify_error(&facts);
        assert!(
            !matches!(class, ErrorClass::AlreadyExists | ErrorClass::StreamLimit),
            "Failed({facts:?}) classifies as {class:?}"
        );
    }
    let expired = is_cursor_expired_text(text);
    assert_eq!(is_cursor_expired_text(&text.to_ascii_uppercase()), expired);
    assert_eq!(is_cursor_expired_text(&text.to_ascii_lowercase()), expired);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_accepts_edge_inputs() {
        ack_parse(b"");
        ack_parse(b"$JS.ACK.KV_b.c.1.4.3.1795643469576797037.0");
        ack_parse(b"$JS.ACK.hub.acc.KV_b.c.2.50.9.1795643469576797037.0.tok");
        ack_parse(b"$JS.ACK.hub.acc.KV_b.c.2.50.9.1795643469576797037");
        ack_parse(b"\xff\xfe.$JS.ACK");
        ack_parse(&[0xff; 200]);
        ack_parse(b"\x1fb\nk\n$JS.ACK.KV_b.c.1.4.3.1.0\nDEL\nMaxAge\n0\npayload");
        ack_parse(b"\x1fb\nk\n$JS.ACK.KV_b.c.1.4.3.1.0\nPUT\nx\nabc\npayload");
        ack_parse(br#"{"error":{"code":400,"err_code":10058}}"#);
        ack_parse(b"optional START sequence too old");
    }
}
