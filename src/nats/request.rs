//! Request plumbing of the NATS executor: one raw request path with the 30 s bound,
//! bounded retries of retryable answers (nats-backend.md §6), and the mapping of
//! failures to `KvError` per operation family (§9). Classification itself is the
//! kernel's (`protocol::nats::classify_error`); this file only gathers the facts.

use std::future::Future;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::{Client, HeaderMap, Message, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

use crate::kv::KvError;
use crate::protocol::nats::{
    ErrorClass, ErrorFacts, KV_OP_TIMEOUT_MS, MAX_RETRIES, classify_error, retry_delay,
};

/// The bound on every request/response, including its retries.
pub(crate) const OP_TIMEOUT: Duration = Duration::from_millis(KV_OP_TIMEOUT_MS);

/// Why a request failed, as facts for the kernel.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// No answer within the bound: the outcome is unknown.
    Timeout,
    /// The client refused the message as larger than the server's `max_payload`.
    PayloadTooLarge(String),
    /// A JetStream or client error, as facts.
    Js(ErrorFacts),
    /// Retryable answers until the retries ran out.
    Unavailable { attempts: u32, last: ErrorFacts },
}

impl Failure {
    pub(crate) fn text(text: impl Into<String>) -> Self {
        Failure::Js(ErrorFacts {
            code: 0,
            err_code: 0,
            description: text.into(),
        })
    }

    /// The kernel's class of a JetStream failure.
    pub(crate) fn class(&self) -> Option<ErrorClass> {
        match self {
            Failure::Js(facts) => Some(classify_error(facts)),
            _ => None,
        }
    }
}

fn describe(facts: &ErrorFacts) -> String {
    format!(
        "JetStream error {}/{}: {}",
        facts.code, facts.err_code, facts.description
    )
}

fn unavailable(attempts: u32, last: &ErrorFacts) -> String {
    format!(
        "JetStream unavailable after {attempts} attempts: {}",
        describe(last)
    )
}

/// Facts of a JSON `error` object (missing numbers are 0, a missing description empty).
pub(crate) fn facts_of_error_json(error: &Value) -> ErrorFacts {
    ErrorFacts {
        code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
        err_code: error.get("err_code").and_then(Value::as_i64).unwrap_or(0),
        description: error
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    }
}

/// One request with the given bound. Client-side outcomes become facts:
/// no responders = `503` without an err_code (nats-backend.md §9).
pub(crate) async fn request_once(
    client: &Client,
    subject: String,
    headers: Option<HeaderMap>,
    payload: Vec<u8>,
    bound: Duration,
) -> Result<Message, Failure> {
    let mut request = async_nats::client::Request::new()
        .payload(payload.into())
        .timeout(Some(bound));
    if let Some(headers) = headers {
        request = request.headers(headers);
    }
    let sent = tokio::time::timeout(bound, client.send_request(subject, request)).await;
    let message = match sent {
        Err(_) => return Err(Failure::Timeout),
        Ok(Err(error)) => {
            return Err(match error.kind() {
                RequestErrorKind::TimedOut => Failure::Timeout,
                RequestErrorKind::NoResponders => Failure::Js(ErrorFacts {
                    code: 503,
                    err_code: 0,
                    description: "no responders".to_string(),
                }),
                RequestErrorKind::MaxPayloadExceeded => {
                    Failure::PayloadTooLarge(format!("payload too large: {error}"))
                }
                _ => Failure::text(error.to_string()),
            });
        }
        Ok(Ok(message)) => message,
    };
    if message.status == Some(StatusCode::NO_RESPONDERS) {
        return Err(Failure::Js(ErrorFacts {
            code: 503,
            err_code: 0,
            description: "no responders".to_string(),
        }));
    }
    Ok(message)
}

/// A JetStream API request (`$JS.API.<api>`) with a JSON body; an `error` in the
/// reply becomes facts.
pub(crate) async fn api_once(
    client: &Client,
    api: &str,
    body: &Value,
    bound: Duration,
) -> Result<Value, Failure> {
    let payload = serde_json::to_vec(body).map_err(|e| Failure::text(e.to_string()))?;
    let message = request_once(client, format!("$JS.API.{api}"), None, payload, bound).await?;
    let reply: Value = serde_json::from_slice(&message.payload)
        .map_err(|e| Failure::text(format!("unreadable JetStream reply: {e}")))?;
    match reply.get("error") {
        Some(error) => Err(Failure::Js(facts_of_error_json(error))),
        None => Ok(reply),
    }
}

/// Runs `attempt` until it succeeds, fails with a non-retryable failure, or the
/// retries of `retry_delay(1..=MAX_RETRIES)` run out; the whole run is bounded by
/// [`OP_TIMEOUT`]. Only `Retryable` answers (nothing was stored) are repeated.
pub(crate) async fn with_retry<T, F, Fut>(mut attempt: F) -> Result<T, Failure>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let deadline = Instant::now() + OP_TIMEOUT;
    let work = async {
        let mut retry = 0u32;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Failure::Timeout);
            }
            match attempt(remaining).await {
                Err(Failure::Js(facts)) if classify_error(&facts) == ErrorClass::Retryable => {
                    retry += 1;
                    let delay = retry_delay(retry)
                        .map(|ms| Duration::from_millis(ms.0))
                        .filter(|d| Instant::now() + *d < deadline);
                    match delay {
                        Some(delay) if retry <= MAX_RETRIES => tokio::time::sleep(delay).await,
                        _ => {
                            return Err(Failure::Unavailable {
                                attempts: retry,
                                last: facts,
                            });
                        }
                    }
                }
                other => return other,
            }
        }
    };
    match tokio::time::timeout_at(deadline, work).await {
        Ok(result) => result,
        Err(_) => Err(Failure::Timeout),
    }
}

fn bucket_not_found(bucket: &str) -> String {
    format!("bucket {bucket} not found")
}

/// Reads (`get`, `entry`, listings, `status`, `retention`).
pub(crate) fn read_error(failure: Failure, bucket: &str) -> KvError {
    match failure {
        Failure::Timeout => KvError::Timeout,
        Failure::PayloadTooLarge(text) => KvError::OperationFailed(text),
        Failure::Unavailable { attempts, last } => {
            KvError::OperationFailed(unavailable(attempts, &last))
        }
        Failure::Js(facts) => match classify_error(&facts) {
            ErrorClass::NotFound => KvError::OperationFailed(bucket_not_found(bucket)),
            ErrorClass::OutcomeUnknown => KvError::Timeout,
            _ => KvError::OperationFailed(describe(&facts)),
        },
    }
}

/// Writes; `conflict` is what the `Conflict` class means for this operation.
pub(crate) fn write_error(failure: Failure, bucket: &str, conflict: Option<KvError>) -> KvError {
    match failure {
        Failure::Timeout => KvError::Timeout,
        Failure::PayloadTooLarge(text) => KvError::OperationFailed(text),
        Failure::Unavailable { attempts, last } => {
            KvError::OperationFailed(unavailable(attempts, &last))
        }
        Failure::Js(facts) => match classify_error(&facts) {
            ErrorClass::Conflict => {
                conflict.unwrap_or_else(|| KvError::OperationFailed(describe(&facts)))
            }
            ErrorClass::OutcomeUnknown => KvError::Timeout,
            ErrorClass::NotFound => KvError::OperationFailed(bucket_not_found(bucket)),
            ErrorClass::TtlRejected if facts.err_code == 10166 => {
                KvError::OperationFailed(format!(
                    "per-message TTL is disabled on bucket {bucket}; create it with StoreOptions::with_ttl"
                ))
            }
            ErrorClass::TtlRejected => {
                KvError::OperationFailed(format!("invalid ttl: {}", describe(&facts)))
            }
            _ if facts.err_code == 10077 => {
                KvError::OperationFailed(format!("bucket {bucket} is full: {}", describe(&facts)))
            }
            _ => KvError::OperationFailed(describe(&facts)),
        },
    }
}

/// Bucket get/create.
pub(crate) fn bucket_error(failure: Failure) -> KvError {
    match failure {
        Failure::Timeout => KvError::Timeout,
        Failure::PayloadTooLarge(text) => KvError::ConnectionFailed(text),
        Failure::Unavailable { attempts, last } => {
            KvError::ConnectionFailed(unavailable(attempts, &last))
        }
        Failure::Js(facts) => match classify_error(&facts) {
            ErrorClass::InvalidConfig => {
                KvError::ConnectionFailed(format!("invalid bucket config: {}", describe(&facts)))
            }
            _ => KvError::ConnectionFailed(describe(&facts)),
        },
    }
}

/// Watch setup and probes.
pub(crate) fn watch_error(failure: Failure, bucket: &str) -> KvError {
    match failure {
        Failure::Timeout => KvError::Timeout,
        Failure::PayloadTooLarge(text) => KvError::WatchError(text),
        Failure::Unavailable { attempts, last } => {
            KvError::WatchError(unavailable(attempts, &last))
        }
        Failure::Js(facts) => match classify_error(&facts) {
            ErrorClass::NotFound => KvError::WatchError(bucket_not_found(bucket)),
            _ => KvError::WatchError(describe(&facts)),
        },
    }
}

/// A failure's text for logs (never contains credentials: requests carry none).
pub(crate) fn failure_text(failure: &Failure) -> String {
    match failure {
        Failure::Timeout => "timed out".to_string(),
        Failure::PayloadTooLarge(text) => text.clone(),
        Failure::Js(facts) => describe(facts),
        Failure::Unavailable { attempts, last } => unavailable(*attempts, last),
    }
}
