//! JetStream error classification (docs/nats-backend.md, "Kernels" and "Error mapping"):
//! API error facts → one class, and a raw `STREAM.CREATE` reply → one outcome. The executor
//! maps classes to `KvError` per operation family; nothing here decides a retry count or
//! performs one.

use serde_json::Value;

use super::contains_ascii_ci;

/// The facts of one failed JetStream request, as the executor found them
/// (`0` = absent number, empty = absent description).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ErrorFacts {
    /// The HTTP-like status (`code`), e.g. 400, 404, 503.
    pub code: i64,
    /// The JetStream error code (`err_code`), e.g. 10071.
    pub err_code: i64,
    /// The server's description text.
    pub description: String,
}

/// What a JetStream error means for the executor (docs/nats-backend.md, "Error mapping"
/// maps each class to a `KvError` per operation family).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// A compare-and-set lost: 10071, or 10164 on replicated streams.
    Conflict,
    /// Nothing was done and repeating is safe: 10008, 10009, 10163, 10167, 429, or a
    /// 503 without an `err_code` (decision 49).
    Retryable,
    /// The write may still land (10158); re-read before reporting.
    OutcomeUnknown,
    /// The stream name is in use (10058): the bucket exists.
    AlreadyExists,
    /// At the account's stream limit (10027, or 400 with "maximum number of streams"); the bucket may exist.
    StreamLimit,
    /// No message, stream or consumer (10037, 10059, 10014).
    NotFound,
    /// Invalid per-message TTL, or TTLs disabled on the stream (10165, 10166).
    TtlRejected,
    /// Invalid stream configuration (10052).
    InvalidConfig,
    /// Anything else (for example 10077, "maximum bytes exceeded", which carries code 503).
    Other,
}

/// JetStream error codes that mean "not now" (the server did nothing; the same request
/// succeeds once the cluster settles), from nats-server's error table (decision 49):
///
/// | code | constant | when |
/// |---|---|---|
/// | 10008 | `JSClusterNotAvailErr` (503) "JetStream system temporarily unavailable" | the stream's group has no leader (election) |
/// | 10009 | `JSClusterNotLeaderErr` (500) "JetStream cluster can not handle request" | the meta leader is changing |
/// | 10163 | "expected last sequence per subject temporarily unavailable" | a new stream leader is not caught up |
/// | 10167 | "too many requests" | the server sheds load |
pub const TRANSIENT_ERR_CODES: [i64; 4] = [10008, 10009, 10163, 10167];

/// Description text that marks a stream-limit refusal (compared ASCII case-insensitively).
const STREAM_LIMIT_TEXT: &str = "maximum number of streams";

/// Classifies a JetStream error; the first matching row of docs/nats-backend.md, "Kernels"
/// wins.
///
/// | facts | class |
/// |---|---|
/// | `err_code` 10071 or 10164 | `Conflict` |
/// | `err_code` in [`TRANSIENT_ERR_CODES`], `code` 429, or `code` 503 with `err_code` 0 | `Retryable` |
/// | `err_code` 10158 | `OutcomeUnknown` |
/// | 10058 in `code` or `err_code` | `AlreadyExists` |
/// | `err_code` 10027, or `code` 400 and the description contains "maximum number of streams" | `StreamLimit` |
/// | `err_code` 10037, 10059 or 10014 | `NotFound` |
/// | `err_code` 10165 or 10166 | `TtlRejected` |
/// | `err_code` 10052 | `InvalidConfig` |
/// | otherwise | `Other` |
pub fn classify_error(facts: &ErrorFacts) -> ErrorClass {
    let ErrorFacts {
        code,
        err_code,
        description,
    } = facts;
    let (code, err_code) = (*code, *err_code);
    if matches!(err_code, 10071 | 10164) {
        ErrorClass::Conflict
    } else if TRANSIENT_ERR_CODES.contains(&err_code)
        || code == 429
        || (code == 503 && err_code == 0)
    {
        ErrorClass::Retryable
    } else if err_code == 10158 {
        ErrorClass::OutcomeUnknown
    } else if code == 10058 || err_code == 10058 {
        ErrorClass::AlreadyExists
    } else if err_code == 10027
        || (code == 400 && contains_ascii_ci(description, STREAM_LIMIT_TEXT))
    {
        ErrorClass::StreamLimit
    } else if matches!(err_code, 10037 | 10059 | 10014) {
        ErrorClass::NotFound
    } else if matches!(err_code, 10165 | 10166) {
        ErrorClass::TtlRejected
    } else if err_code == 10052 {
        ErrorClass::InvalidConfig
    } else {
        ErrorClass::Other
    }
}

/// What a raw `$JS.API.STREAM.CREATE` reply says happened.
///
/// Every outcome except `Failed` must be followed by a re-verifying bucket lookup
/// (docs/nats-backend.md, "Buckets" step 5); `Unreadable` and `StreamLimit` are safe to
/// continue from only because of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CreateOutcome {
    /// The reply carries no error: the stream was created.
    Created,
    /// The stream name is in use: the bucket exists.
    Exists,
    /// The account is at its stream limit; the bucket may exist (managed services answer so).
    StreamLimit,
    /// The reply is not a JSON object: the outcome is unknown, re-verify.
    Unreadable,
    /// Any other error; the executor reports it.
    Failed(ErrorFacts),
}

/// Classifies the raw reply of a stream-create request.
///
/// Not a JSON object → `Unreadable`; no `error` member (or `"error": null`) →
/// `Created`; otherwise `classify_error` on `error.code`, `error.err_code` and
/// `error.description` (a missing or non-integer number is 0, a missing or
/// non-string description is empty): `AlreadyExists` → `Exists`, `StreamLimit`
/// → `StreamLimit`, any other class → `Failed(facts)`.
pub fn classify_stream_create(payload: &[u8]) -> CreateOutcome {
    let Ok(Value::Object(reply)) = serde_json::from_slice::<Value>(payload) else {
        return CreateOutcome::Unreadable;
    };
    let facts = match reply.get("error") {
        None | Some(Value::Null) => return CreateOutcome::Created,
        Some(error) => error_facts(error),
    };
    match classify_error(&facts) {
        ErrorClass::AlreadyExists => CreateOutcome::Exists,
        ErrorClass::StreamLimit => CreateOutcome::StreamLimit,
        _ => CreateOutcome::Failed(facts),
    }
}

/// The facts of a JSON `error` member; a bare string is taken as the description.
fn error_facts(error: &Value) -> ErrorFacts {
    let (code, err_code, description) = match error {
        Value::Object(fields) => {
            let number = |name: &str| fields.get(name).and_then(Value::as_i64).unwrap_or(0);
            let text = fields.get("description").and_then(Value::as_str);
            (number("code"), number("err_code"), text.unwrap_or_default())
        }
        Value::String(text) => (0, 0, text.as_str()),
        _ => (0, 0, ""),
    };
    ErrorFacts {
        code,
        err_code,
        description: description.to_owned(),
    }
}

/// What a server permissions violation refused (nats-server's
/// `-ERR 'Permissions Violation for <what> "<subject>"'`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PermissionOp {
    /// `Publish to "<subject>"`: the user may not publish to the subject.
    Publish,
    /// `Publish with Reply of "<subject>"`: the user may not use the reply subject.
    PublishReply,
    /// `Subscription to "<subject>"`: the user may not subscribe to the subject.
    Subscribe,
}

/// A parsed permissions violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PermissionViolation<'a> {
    /// What was refused.
    pub op: PermissionOp,
    /// The subject the server named (quotes removed).
    pub subject: &'a str,
}

/// The marker of a permissions violation text (compared ASCII case-insensitively).
const VIOLATION_TEXT: &str = "permissions violation for ";

/// Reads a server error text as a permissions violation (decision 51).
///
/// Finds `Permissions Violation for ` (ASCII case-insensitive, anywhere: clients
/// prefix it), then `Publish with Reply of `, `Publish to ` or `Subscription to `,
/// then the subject: inside double quotes when the text opens one (Go's `%q`),
/// else up to the next space. Anything else, or an empty subject, → `None`.
pub fn parse_permission_violation(text: &str) -> Option<PermissionViolation<'_>> {
    let at = find_ascii_ci(text, VIOLATION_TEXT)?;
    let rest = &text[at + VIOLATION_TEXT.len()..];
    let kinds = [
        ("publish with reply of ", PermissionOp::PublishReply),
        ("publish to ", PermissionOp::Publish),
        ("subscription to ", PermissionOp::Subscribe),
    ];
    let (rest, op) = kinds.iter().find_map(|(prefix, op)| {
        let head = rest.get(..prefix.len())?;
        head.eq_ignore_ascii_case(prefix)
            .then(|| (&rest[prefix.len()..], *op))
    })?;
    let subject = match rest.strip_prefix('"') {
        Some(quoted) => &quoted[..quoted.find('"')?],
        None => rest.split(' ').next().unwrap_or(""),
    };
    (!subject.is_empty()).then_some(PermissionViolation { op, subject })
}

/// Whether `violation` means that a request published to `request_subject` can
/// never be answered: the publish itself was refused, or a subscription to a
/// `_INBOX.` subject (where replies arrive) was. Publishes to other subjects and
/// other subscriptions belong to someone else.
pub fn violation_blocks_request(
    violation: &PermissionViolation<'_>,
    request_subject: &str,
) -> bool {
    match violation.op {
        PermissionOp::Publish => violation.subject == request_subject,
        PermissionOp::PublishReply | PermissionOp::Subscribe => {
            violation.subject.starts_with("_INBOX.")
        }
    }
}

/// Byte offset of `needle` in `haystack`, ASCII case-insensitively.
fn find_ascii_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(code: i64, err_code: i64, description: &str) -> ErrorFacts {
        ErrorFacts {
            code,
            err_code,
            description: description.to_owned(),
        }
    }

    #[test]
    fn classification_matrix() {
        use ErrorClass::*;
        let cases: &[(i64, i64, &str, ErrorClass)] = &[
            // Conflict.
            (400, 10071, "wrong last sequence: 4", Conflict),
            (400, 10164, "wrong last sequence", Conflict),
            (0, 10071, "", Conflict),
            // Retryable.
            (
                503,
                10163,
                "expected last sequence per subject temporarily unavailable",
                Retryable,
            ),
            (503, 10167, "", Retryable),
            (429, 0, "too many requests", Retryable),
            (429, 10077, "", Retryable),
            (503, 0, "", Retryable),
            (503, 0, "no responders", Retryable),
            // 503 with an err_code is final: 10077 carries code 503 (pinned).
            (503, 10077, "maximum bytes exceeded", Other),
            (
                503,
                10008,
                "JetStream system temporarily unavailable",
                Retryable,
            ),
            (
                500,
                10009,
                "JetStream cluster can not handle request",
                Retryable,
            ),
            (0, 10008, "", Retryable),
            // Other cluster errors are final.
            (
                500,
                10007,
                "JetStream cluster not assigned to this server",
                Other,
            ),
            (503, 10023, "insufficient resources", Other),
            (500, 10118, "stream is offline", Other),
            // Outcome unknown.
            (500, 10158, "", OutcomeUnknown),
            // AlreadyExists: 10058 in either field.
            (400, 10058, "stream name already in use", AlreadyExists),
            (10058, 0, "", AlreadyExists),
            (10058, 10058, "", AlreadyExists),
            // StreamLimit.
            (400, 10027, "maximum number of streams reached", StreamLimit),
            (0, 10027, "", StreamLimit),
            (400, 0, "maximum number of streams reached", StreamLimit),
            (400, 0, "MAXIMUM NUMBER OF STREAMS", StreamLimit),
            (
                400,
                0,
                "account: Maximum Number Of Streams exceeded",
                StreamLimit,
            ),
            (400, 10999, "maximum number of streams reached", StreamLimit),
            // The text alone, without code 400, is not enough.
            (500, 0, "maximum number of streams reached", Other),
            (0, 0, "maximum number of streams reached", Other),
            (400, 0, "maximum number of stream", Other),
            (400, 0, "maximum  number of streams", Other),
            // NotFound.
            (404, 10037, "no message found", NotFound),
            (404, 10059, "stream not found", NotFound),
            (404, 10014, "consumer not found", NotFound),
            // TTL.
            (400, 10165, "invalid per-message TTL", TtlRejected),
            (400, 10166, "per-message TTL is disabled", TtlRejected),
            // InvalidConfig.
            (500, 10052, "stream configuration invalid", InvalidConfig),
            // Other.
            (0, 0, "", Other),
            (0, 0, "broken pipe", Other),
            (404, 0, "", Other),
            (400, 10138, "overlapping filter subjects", Other),
            (-1, -1, "", Other),
            (i64::MAX, i64::MIN, "", Other),
        ];
        for (code, err_code, description, want) in cases {
            let f = facts(*code, *err_code, description);
            assert_eq!(classify_error(&f), *want, "{f:?}");
        }
    }

    #[test]
    fn first_match_wins() {
        // Conflict beats Retryable (503 with err_code) and everything after.
        assert_eq!(classify_error(&facts(503, 10071, "")), ErrorClass::Conflict);
        // Retryable (code 429) beats AlreadyExists (err_code 10058).
        assert_eq!(
            classify_error(&facts(429, 10058, "")),
            ErrorClass::Retryable
        );
        // OutcomeUnknown beats AlreadyExists in code.
        assert_eq!(
            classify_error(&facts(10058, 10158, "")),
            ErrorClass::OutcomeUnknown
        );
        // AlreadyExists in code beats StreamLimit in err_code.
        assert_eq!(
            classify_error(&facts(10058, 10027, "")),
            ErrorClass::AlreadyExists
        );
        // StreamLimit text beats NotFound err_code.
        assert_eq!(
            classify_error(&facts(400, 10059, "maximum number of streams")),
            ErrorClass::StreamLimit
        );
    }

    #[test]
    fn codes_only_match_their_own_field() {
        // err_code rows do not look at `code`.
        for n in [
            10071, 10164, 10008, 10009, 10163, 10167, 10158, 10027, 10037, 10059, 10014, 10165,
            10166, 10052,
        ] {
            assert_eq!(classify_error(&facts(n, 0, "")), ErrorClass::Other, "{n}");
        }
        // code rows do not look at `err_code`.
        assert_eq!(classify_error(&facts(0, 429, "")), ErrorClass::Other);
        assert_eq!(classify_error(&facts(0, 503, "")), ErrorClass::Other);
        assert_eq!(
            classify_error(&facts(0, 400, "maximum number of streams")),
            ErrorClass::Other
        );
    }

    #[test]
    fn stream_create_replies() {
        let cases: &[(&[u8], CreateOutcome)] = &[
            (
                br#"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"KV_b"}}"#,
                CreateOutcome::Created,
            ),
            (b"{}", CreateOutcome::Created),
            (br#"{"error":null}"#, CreateOutcome::Created),
            (
                br#"{"error":{"code":400,"err_code":10058,"description":"stream name already in use with a different configuration"}}"#,
                CreateOutcome::Exists,
            ),
            (br#"{"error":{"code":10058}}"#, CreateOutcome::Exists),
            (
                br#"{"error":{"code":400,"err_code":10027,"description":"maximum number of streams reached"}}"#,
                CreateOutcome::StreamLimit,
            ),
            (br#"{"error":{"err_code":10027}}"#, CreateOutcome::StreamLimit),
            (
                br#"{"error":{"code":400,"description":"Maximum Number of Streams reached"}}"#,
                CreateOutcome::StreamLimit,
            ),
            (
                br#"{"error":{"code":500,"description":"maximum number of streams reached"}}"#,
                CreateOutcome::Failed(facts(500, 0, "maximum number of streams reached")),
            ),
            (
                br#"{"error":{"code":500,"err_code":10052,"description":"bad config"}}"#,
                CreateOutcome::Failed(facts(500, 10052, "bad config")),
            ),
            (
                br#"{"error":{"code":503,"err_code":10077,"description":"maximum bytes exceeded"}}"#,
                CreateOutcome::Failed(facts(503, 10077, "maximum bytes exceeded")),
            ),
            (br#"{"error":{}}"#, CreateOutcome::Failed(facts(0, 0, ""))),
            // Mistyped members count as missing.
            (
                br#"{"error":{"code":"400","err_code":10058.5,"description":7}}"#,
                CreateOutcome::Failed(facts(0, 0, "")),
            ),
            (
                br#"{"error":{"code":18446744073709551615,"err_code":10058}}"#,
                CreateOutcome::Exists,
            ),
            (
                br#"{"error":"boom"}"#,
                CreateOutcome::Failed(facts(0, 0, "boom")),
            ),
            (br#"{"error":[1,2]}"#, CreateOutcome::Failed(facts(0, 0, ""))),
            (br#"{"error":0}"#, CreateOutcome::Failed(facts(0, 0, ""))),
            // Not a JSON object.
            (b"", CreateOutcome::Unreadable),
            (b"   ", CreateOutcome::Unreadable),
            (b"garbage", CreateOutcome::Unreadable),
            (b"<html>502 Bad Gateway</html>", CreateOutcome::Unreadable),
            (b"{\"error\":", CreateOutcome::Unreadable),
            (b"{\"error\":{}} trailing", CreateOutcome::Unreadable),
            (b"\xff\xfe\x00", CreateOutcome::Unreadable),
            (b"null", CreateOutcome::Unreadable),
            (b"[]", CreateOutcome::Unreadable),
            (br#"[{"error":{"err_code":10058}}]"#, CreateOutcome::Unreadable),
            (b"\"error\"", CreateOutcome::Unreadable),
            (b"42", CreateOutcome::Unreadable),
        ];
        for (payload, want) in cases {
            assert_eq!(
                classify_stream_create(payload),
                *want,
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
    }

    #[test]
    fn deeply_nested_reply_is_unreadable_not_a_crash() {
        let mut payload = Vec::new();
        payload.extend_from_slice(br#"{"error":"#);
        payload.extend(std::iter::repeat_n(b'[', 100_000));
        assert_eq!(classify_stream_create(&payload), CreateOutcome::Unreadable);
    }

    #[test]
    fn permission_violations_parse() {
        use PermissionOp::*;
        let cases: &[(&str, Option<(PermissionOp, &str)>)] = &[
            // As async-nats hands it over (outer single quotes trimmed).
            (
                r#"Permissions Violation for Publish to "$KV.b.k""#,
                Some((Publish, "$KV.b.k")),
            ),
            (
                r#"Permissions Violation for Publish to "$JS.API.STREAM.CREATE.KV_b""#,
                Some((Publish, "$JS.API.STREAM.CREATE.KV_b")),
            ),
            (
                r#"Permissions Violation for Subscription to "_INBOX.abc.*""#,
                Some((Subscribe, "_INBOX.abc.*")),
            ),
            (
                r#"Permissions Violation for Subscription to "x.y" using queue "q""#,
                Some((Subscribe, "x.y")),
            ),
            (
                r#"Permissions Violation for Publish with Reply of "_INBOX.r""#,
                Some((PublishReply, "_INBOX.r")),
            ),
            // Prefixed and lowercased by clients; unquoted.
            (
                r#"nats: permissions violation: permissions violation for publish to "a.b""#,
                Some((Publish, "a.b")),
            ),
            (
                "Permissions Violation for Publish to a.b c",
                Some((Publish, "a.b")),
            ),
            // Not a violation, or nothing to correlate.
            ("authorization violation", None),
            (r#"Permissions Violation for Publish to """#, None),
            (
                r#"Permissions Violation for Publish to "unterminated"#,
                None,
            ),
            ("Permissions Violation for Publish to ", None),
            (r#"Permissions Violation for Delete of "x""#, None),
            ("Permissions Violation for ", None),
            (
                "Permissions Violation for Publish to é",
                Some((Publish, "é")),
            ),
            ("", None),
            ("Maximum Payload Violation", None),
        ];
        for (text, want) in cases {
            let got = parse_permission_violation(text).map(|v| (v.op, v.subject));
            assert_eq!(got, *want, "{text}");
        }
    }

    #[test]
    fn violations_block_only_their_request() {
        let publish = PermissionViolation {
            op: PermissionOp::Publish,
            subject: "$KV.b.k",
        };
        assert!(violation_blocks_request(&publish, "$KV.b.k"));
        assert!(!violation_blocks_request(&publish, "$KV.b.k2"));
        assert!(!violation_blocks_request(&publish, "$KV.b"));
        let inbox = PermissionViolation {
            op: PermissionOp::Subscribe,
            subject: "_INBOX.abc.*",
        };
        assert!(violation_blocks_request(&inbox, "$KV.b.k"));
        let other_sub = PermissionViolation {
            op: PermissionOp::Subscribe,
            subject: "app.events",
        };
        assert!(!violation_blocks_request(&other_sub, "app.events"));
        let reply = PermissionViolation {
            op: PermissionOp::PublishReply,
            subject: "_INBOX.r",
        };
        assert!(violation_blocks_request(&reply, "$JS.API.INFO"));
    }
}
