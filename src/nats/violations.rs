//! Server permissions violations of each connection kvfold dialed (decision 51):
//! nats-server answers a refused publish with `-ERR 'Permissions Violation …'` on the
//! connection, not on the request, and async-nats reports it only as a connection
//! event. The event callback feeds the texts here; a pending request listens and
//! fails at once when one names its subject (`protocol::nats::violation_blocks_request`
//! decides). Connections built with `from_client` have no entry (kvfold does not own
//! their event callback); their requests keep the 30 s bound.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use async_nats::{Client, Statistics};
use tokio::sync::broadcast;

use crate::protocol::nats::{parse_permission_violation, violation_blocks_request};

/// Violations buffered per connection for requests that are slow to read them.
const CAPACITY: usize = 64;
/// Most connections tracked at once (dead entries are pruned on every registration).
const MAX_CONNECTIONS: usize = 4_096;

/// The violation feed of one connection.
#[derive(Debug)]
pub(crate) struct Violations {
    tx: broadcast::Sender<Arc<str>>,
}

impl Violations {
    pub(crate) fn new() -> Arc<Self> {
        let (tx, _) = broadcast::channel(CAPACITY);
        Arc::new(Self { tx })
    }

    /// Feeds one server error text; only permissions violations are kept.
    pub(crate) fn note(&self, text: &str) {
        if parse_permission_violation(text).is_some() {
            // No listener = no pending request to fail; nothing to keep.
            let _ = self.tx.send(Arc::from(text));
        }
    }
}

/// Registered connections: a client is identified by its statistics block, which
/// every clone of the client shares. The `Weak` keeps the address from being
/// reused while the entry exists.
type Entry = (Weak<Statistics>, Arc<Violations>);

fn registry() -> &'static Mutex<Vec<Entry>> {
    static REGISTRY: OnceLock<Mutex<Vec<Entry>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Vec::new()))
}

fn entries() -> std::sync::MutexGuard<'static, Vec<Entry>> {
    registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Ties `violations` to `client` (and every clone of it).
pub(crate) fn register(client: &Client, violations: Arc<Violations>) {
    let stats = client.statistics();
    let mut entries = entries();
    entries.retain(|(weak, _)| weak.strong_count() > 0);
    if entries.len() >= MAX_CONNECTIONS {
        tracing::warn!("too many NATS connections to track permission violations for");
        return;
    }
    entries.push((Arc::downgrade(&stats), violations));
}

/// A listener on `client`'s violations, when kvfold dialed it.
pub(crate) fn listen(client: &Client) -> Option<broadcast::Receiver<Arc<str>>> {
    let stats = client.statistics();
    let entries = entries();
    entries
        .iter()
        .find(|(weak, _)| std::ptr::eq(weak.as_ptr(), Arc::as_ptr(&stats)))
        .map(|(_, violations)| violations.tx.subscribe())
}

/// Resolves with the server's text once a violation blocks a request published to
/// `subject`; never resolves without a listener.
pub(crate) async fn blocked(
    listener: Option<broadcast::Receiver<Arc<str>>>,
    subject: &str,
) -> String {
    let Some(mut listener) = listener else {
        return std::future::pending().await;
    };
    loop {
        match listener.recv().await {
            Ok(text) => {
                let blocks = parse_permission_violation(&text)
                    .is_some_and(|violation| violation_blocks_request(&violation, subject));
                if blocks {
                    return text.to_string();
                }
            }
            // Missed some: keep listening (a missed one costs the 30 s bound, no more).
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
        }
    }
}
