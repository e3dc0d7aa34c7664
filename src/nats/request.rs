//! Request plumbing of the NATS executor: one raw request path with the 30 s bound, bounded
//! retries as `protocol::nats::RetryPolicy` decides (docs/operations.md, "Transient errors
//! and leader elections"; decisions 49–50), permissions violations raced against every
//! request (decision 51), and the mapping of failures to `KvError` per operation family
//! (docs/nats-backend.md, "Error mapping"). Classification and retry decisions are the
//! kernels'; this file gathers facts, keeps the clock and sleeps.

use std::future::Future;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::{Client, HeaderMap, Message, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

use super::violations;
use crate::kv::KvError;
use crate::protocol::nats::{
    AttemptOutcome, ErrorClass, ErrorFacts, KV_OP_TIMEOUT_MS, RetryPolicy, RetryStep,
    classify_error,
};
use crate::protocol::time::Millis;

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
    /// Still transient (no answer, or `Retryable` answers) when the attempts or the
    /// deadline ran out; `last` describes the last attempt.
    Unavailable { attempts: u32, last: String },
    /// The server refused a publish or subscription of this request for lack of
    /// permissions; its text. Final: repeating cannot help.
    PermissionDenied(String),
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

fn unavailable(attempts: u32, last: &str) -> String {
    format!("JetStream unavailable after {attempts} attempts: {last}")
}

/// The stable message prefix of a permissions refusal (see `KvError::is_permission_denied`).
pub(crate) const PERMISSION_DENIED: &str = crate::kv::PERMISSION_DENIED_PREFIX;

fn permission_denied(text: &str) -> String {
    format!("{PERMISSION_DENIED}: {text}")
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

/// One request with the given bound. Client-side outcomes become facts: no responders =
/// `503` without an err_code (docs/nats-backend.md, "Error mapping").
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
    let listener = violations::listen(client);
    let sent = tokio::select! {
        sent = tokio::time::timeout(bound, client.send_request(subject.clone(), request)) => sent,
        text = violations::blocked(listener, &subject) => return Err(Failure::PermissionDenied(text)),
    };
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

/// Runs `attempt` as an idempotent request (`RetryPolicy::idempotent`): each
/// attempt bounded by 2 s, re-sent after no answer or a `Retryable` answer under
/// bounded backoff, within the 30 s deadline. For direct gets, stream info,
/// consumer create/info/delete and stream creates (always re-verified).
pub(crate) async fn with_retry<T, F, Fut>(attempt: F) -> Result<T, Failure>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    with_policy(RetryPolicy::idempotent(), attempt).await
}

/// Runs `attempt` as a write (`RetryPolicy::write`): one attempt may take the whole 30 s;
/// only `Retryable` answers (nothing stored) are repeated; an attempt without an answer
/// ends the request with `Timeout` (outcome unknown, docs/nats-backend.md, "Writes").
pub(crate) async fn with_write_retry<T, F, Fut>(attempt: F) -> Result<T, Failure>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    with_policy(RetryPolicy::write(), attempt).await
}

/// The drive loop of `RetryPolicy`: ask for the attempt's bound, send, classify the
/// failure, do what the policy says.
async fn with_policy<T, F, Fut>(policy: RetryPolicy, mut attempt: F) -> Result<T, Failure>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let started = Instant::now();
    let elapsed = || Millis(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
    let mut attempts = 0u32;
    let mut last = String::from("no attempt fitted in the deadline");
    loop {
        let Some(bound) = policy.attempt_bound(elapsed()) else {
            return Err(Failure::Unavailable { attempts, last });
        };
        attempts += 1;
        let bound = Duration::from_millis(bound.0);
        let failure = match tokio::time::timeout(bound, attempt(bound)).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(failure)) => failure,
            Err(_) => Failure::Timeout,
        };
        let outcome = match &failure {
            Failure::Timeout => AttemptOutcome::NoAnswer,
            Failure::Js(facts) if classify_error(facts) == ErrorClass::Retryable => {
                AttemptOutcome::Transient
            }
            _ => AttemptOutcome::Final,
        };
        match policy.after_failure(attempts, elapsed(), outcome) {
            RetryStep::Report => return Err(failure),
            RetryStep::Exhausted => {
                return Err(Failure::Unavailable {
                    attempts,
                    last: failure_text(&failure),
                });
            }
            RetryStep::RetryAfter(delay) => {
                last = failure_text(&failure);
                tracing::debug!(attempt = attempts, error = %last, delay_ms = delay.0, "JetStream request retried");
                tokio::time::sleep(Duration::from_millis(delay.0)).await;
            }
        }
    }
}

/// Races `work` (an async-nats call that publishes to `subject`) against a
/// permissions violation naming `subject`, bounded by [`OP_TIMEOUT`].
pub(crate) async fn unless_denied<T>(
    client: &Client,
    subject: &str,
    work: impl Future<Output = T>,
) -> Result<T, Failure> {
    let listener = violations::listen(client);
    tokio::select! {
        done = tokio::time::timeout(OP_TIMEOUT, work) => done.map_err(|_| Failure::Timeout),
        text = violations::blocked(listener, subject) => Err(Failure::PermissionDenied(text)),
    }
}

/// Still transient at the deadline → `Timeout` in every operation family
/// (decision 50): the request may succeed when repeated later; nothing was stored
/// by the transient answers, and a write whose last attempt went unanswered has an
/// unknown outcome, which is what `Timeout` already means.
fn transient(attempts: u32, last: &str) -> KvError {
    tracing::warn!(attempts, last = %last, "JetStream still unavailable at the deadline");
    KvError::Timeout
}

fn bucket_not_found(bucket: &str) -> String {
    format!("bucket {bucket} not found")
}

/// Reads (`get`, `entry`, listings, `status`, `retention`).
pub(crate) fn read_error(failure: Failure, bucket: &str) -> KvError {
    match failure {
        Failure::Timeout => KvError::Timeout,
        Failure::PayloadTooLarge(text) => KvError::OperationFailed(text),
        Failure::Unavailable { attempts, last } => transient(attempts, &last),
        Failure::PermissionDenied(text) => KvError::OperationFailed(permission_denied(&text)),
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
        Failure::Unavailable { attempts, last } => transient(attempts, &last),
        Failure::PermissionDenied(text) => KvError::OperationFailed(permission_denied(&text)),
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
        Failure::Unavailable { attempts, last } => transient(attempts, &last),
        Failure::PermissionDenied(text) => KvError::ConnectionFailed(permission_denied(&text)),
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
        Failure::Unavailable { attempts, last } => transient(attempts, &last),
        Failure::PermissionDenied(text) => KvError::WatchError(permission_denied(&text)),
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
        Failure::PermissionDenied(text) => permission_denied(text),
    }
}
