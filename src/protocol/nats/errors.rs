//! JetStream error classification (protocol.md §2.5, nats-backend.md §9): API error
//! facts → one class, and a raw `STREAM.CREATE` reply → one outcome. The executor
//! maps classes to `KvError` per operation family; nothing here decides a retry
//! count or performs one.

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

/// What a JetStream error means for the executor (nats-backend.md §9 maps each
/// class to a `KvError` per operation family).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// A compare-and-set lost: 10071, or 10164 on replicated streams.
    Conflict,
    /// Nothing was stored and repeating is safe: 10163, 10167, 429, or a 503 without an `err_code`.
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

/// Description text that marks a stream-limit refusal (compared ASCII case-insensitively).
const STREAM_LIMIT_TEXT: &str = "maximum number of streams";

/// Classifies a JetStream error; the first matching row of protocol.md §2.5 wins.
///
/// | facts | class |
/// |---|---|
/// | `err_code` 10071 or 10164 | `Conflict` |
/// | `err_code` 10163 or 10167, `code` 429, or `code` 503 with `err_code` 0 | `Retryable` |
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
    } else if matches!(err_code, 10163 | 10167) || code == 429 || (code == 503 && err_code == 0) {
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
/// (nats-backend.md §4.1 step 5); `Unreadable` and `StreamLimit` are safe to
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
                Other,
            ),
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
            10071, 10164, 10163, 10167, 10158, 10027, 10037, 10059, 10014, 10165, 10166, 10052,
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
}
