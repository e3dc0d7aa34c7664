//! Missing permissions are reported at once, typed and final (issue 9 defect 10,
//! decision 51): a NATS user denied publish on `$KV.>`, on consumer creation and on
//! stream creation gets `is_permission_denied()` errors within seconds for writes,
//! watches and bucket creation, instead of a `Timeout` after 30 s. Reads it may do
//! keep working on the same connection.
#![cfg(feature = "nats")]

mod common;

use std::time::{Duration, Instant};

use common::nats::NatsServer;
use kvfold::{Connection, KvError, StoreConfig};

/// `admin` may do everything (and is the identity of credential-less clients, so
/// the harness's readiness probe works); `limited` may read but not write, watch
/// or create buckets.
const CONFIG: &str = r#"
authorization {
  users = [
    { user: admin, password: adminpw }
    {
      user: limited, password: limitedpw,
      permissions: {
        publish: {
          deny: ["$KV.>", "$JS.API.CONSUMER.CREATE.>", "$JS.API.STREAM.CREATE.>"]
        }
      }
    }
  ]
}
no_auth_user: admin
"#;

/// A refusal must arrive well before the 30 s request bound.
const PROMPT: Duration = Duration::from_secs(5);

use crate::common::nats::connected;

fn named(name: &str) -> StoreConfig {
    StoreConfig {
        name: name.to_string(),
        ..StoreConfig::default()
    }
}

/// Asserts `result` is a prompt permissions refusal naming `subject`.
fn assert_denied<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, KvError>,
    took: Duration,
    subject: &str,
) -> KvError {
    let error = result.expect_err(what);
    println!("{what}: {error:?} after {took:?}");
    assert!(
        error.is_permission_denied(),
        "{what}: expected a permissions refusal, got {error:?} after {took:?}"
    );
    assert!(!error.is_transient(), "{what}: a refusal is not transient");
    assert!(
        error.to_string().contains(subject),
        "{what}: the error names {subject}: {error}"
    );
    assert!(took < PROMPT, "{what}: refused after {took:?}, not at once");
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_publish_rights_is_refused_at_once_for_writes_watches_and_bucket_creation() {
    let server = NatsServer::start_with_config(CONFIG);
    let admin = connected(server.url_as("admin", "adminpw")).await;
    let bucket = admin.store_with_config(named("perm")).await.unwrap();
    bucket.writer().unwrap().put("k", b"v").await.unwrap();

    let limited = connected(server.url_as("limited", "limitedpw")).await;
    let seen = limited.store_with_config(named("perm")).await.unwrap();
    // Reads are allowed.
    let entry = seen.reader().get("k").await.unwrap().expect("k is there");
    assert_eq!(entry.value, b"v");

    // Writes.
    let writer = seen.writer().unwrap();
    let started = Instant::now();
    let put = writer.put("k", b"w").await;
    assert!(matches!(
        assert_denied("put", put, started.elapsed(), "$KV.perm.k"),
        KvError::OperationFailed(_)
    ));
    let started = Instant::now();
    let created = writer.create("fresh", b"w").await;
    assert_denied("create", created, started.elapsed(), "$KV.perm.fresh");
    let started = Instant::now();
    let deleted = writer.delete("k").await;
    assert_denied("delete", deleted, started.elapsed(), "$KV.perm.k");

    // Watches.
    let watcher = seen.watcher().unwrap();
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let started = Instant::now();
    let watched = tokio::time::timeout(Duration::from_secs(40), watcher.watch_all(tx))
        .await
        .expect("the watch setup ends");
    assert!(matches!(
        assert_denied(
            "watch_all",
            watched,
            started.elapsed(),
            "$JS.API.CONSUMER.CREATE.KV_perm"
        ),
        KvError::WatchError(_)
    ));

    // Bucket creation.
    let started = Instant::now();
    let made = limited.store_with_config(named("other")).await;
    assert!(matches!(
        assert_denied(
            "store_with_config",
            made.map(|_| ()),
            started.elapsed(),
            "$JS.API.STREAM.CREATE.KV_other"
        ),
        KvError::ConnectionFailed(_)
    ));

    // Nothing was written, and the connection still serves reads.
    let entry = seen
        .reader()
        .get("k")
        .await
        .unwrap()
        .expect("k is still there");
    assert_eq!(entry.value, b"v");
    // Listings create a consumer too: refused the same way.
    let started = Instant::now();
    let listed = seen.reader().keys("").await;
    assert_denied(
        "keys",
        listed,
        started.elapsed(),
        "$JS.API.CONSUMER.CREATE.KV_perm",
    );
}
