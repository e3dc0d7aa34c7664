//! Raw JetStream helpers (async), through the test's `async_nats::Client`.

use super::*;

/// One JetStream API request (`body` `Null` sends an empty payload) with a
/// 30 s timeout; an `error` object in the reply is [`JsError::Api`].
pub async fn js_request(
    client: &async_nats::Client,
    subject: &str,
    body: &Value,
) -> Result<Value, JsError> {
    let request = async_nats::Request::new()
        .payload(json_payload(body).into())
        .timeout(Some(JS_TIMEOUT));
    let reply = client
        .send_request(subject.to_owned(), request)
        .await
        .map_err(|err| match err.kind() {
            async_nats::RequestErrorKind::NoResponders => JsError::NoResponders,
            _ => JsError::Transport(err.to_string()),
        })?;
    interpret_js_reply(reply.status.map(|s| s.as_u16()), &reply.payload)
}

/// `$JS.API.STREAM.PURGE.<stream>` with `{"seq": seq}`: removes every
/// message below `seq`. Returns the number purged.
pub async fn stream_purge_below(
    client: &async_nats::Client,
    stream: &str,
    seq: u64,
) -> Result<u64, JsError> {
    let reply = js_request(
        client,
        &format!("$JS.API.STREAM.PURGE.{stream}"),
        &json!({ "seq": seq }),
    )
    .await?;
    Ok(reply["purged"].as_u64().unwrap_or(0))
}

/// `$JS.API.STREAM.PURGE.<stream>` with `{"filter": subject, "keep": keep}`:
/// removes all but the newest `keep` messages on `subject`. Returns the
/// number purged.
pub async fn stream_purge_subject(
    client: &async_nats::Client,
    stream: &str,
    subject: &str,
    keep: u64,
) -> Result<u64, JsError> {
    let reply = js_request(
        client,
        &format!("$JS.API.STREAM.PURGE.{stream}"),
        &json!({ "filter": subject, "keep": keep }),
    )
    .await?;
    Ok(reply["purged"].as_u64().unwrap_or(0))
}

/// `$JS.API.STREAM.DELETE.<stream>`.
pub async fn stream_delete(client: &async_nats::Client, stream: &str) -> Result<(), JsError> {
    js_request(
        client,
        &format!("$JS.API.STREAM.DELETE.{stream}"),
        &Value::Null,
    )
    .await
    .map(drop)
}

/// `$JS.API.STREAM.INFO.<stream>` as JSON.
///
/// # Panics
///
/// On any error (use [`js_request`] to observe errors).
pub async fn stream_info_json(client: &async_nats::Client, stream: &str) -> Value {
    js_request(
        client,
        &format!("$JS.API.STREAM.INFO.{stream}"),
        &Value::Null,
    )
    .await
    .unwrap_or_else(|err| panic!("stream info of {stream}: {err}"))
}

/// The server's JetStream API level (`$JS.API.INFO` → `api.level`).
///
/// # Panics
///
/// On any error or a reply without `api.level`.
pub async fn js_api_level(client: &async_nats::Client) -> u64 {
    let info = js_request(client, "$JS.API.INFO", &Value::Null)
        .await
        .unwrap_or_else(|err| panic!("$JS.API.INFO: {err}"));
    info["api"]["level"]
        .as_u64()
        .unwrap_or_else(|| panic!("$JS.API.INFO has no api.level: {info}"))
}

/// The stream's consumer count (`state.consumer_count` of a fresh stream info).
///
/// # Panics
///
/// On any error or a reply without the count.
pub async fn consumer_count(client: &async_nats::Client, stream: &str) -> u64 {
    let info = stream_info_json(client, stream).await;
    info["state"]["consumer_count"]
        .as_u64()
        .unwrap_or_else(|| panic!("stream info of {stream} without state.consumer_count: {info}"))
}

/// Polls [`consumer_count`] every 20 ms until it equals `want`; returns how long
/// that took, or panics naming the last count after `within`.
pub async fn wait_consumer_count(
    client: &async_nats::Client,
    stream: &str,
    want: u64,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let count = consumer_count(client, stream).await;
        if count == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{stream}: {count} consumers after {within:?}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The connection config for `url` without credentials.
pub fn client_config(url: impl Into<String>) -> kvfold::NatsConnectionConfig {
    kvfold::NatsConnectionConfig {
        url: url.into(),
        creds: None,
        creds_file: None,
    }
}

/// A `NatsConnection` to `url` without credentials, connected (panics if it
/// cannot connect).
pub async fn connected(url: String) -> kvfold::NatsConnection {
    use kvfold::Connection as _;
    let conn = kvfold::NatsConnection::new(client_config(url));
    conn.connect().await.expect("connects");
    conn
}
