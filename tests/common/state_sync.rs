//! The state-sync scenario both backends run (`memory_state_sync.rs`,
//! `nats_consumers.rs`): a history with superseded revisions, and a watch that
//! must deliver only the latest revision of every key.
#![allow(dead_code)]

use std::time::Duration;

use kvfold::{KvUpdate, KvWriter};
use tokio::sync::mpsc;

/// `(key, revision)` of an update whose version is a revision.
pub fn brief(update: &KvUpdate) -> (String, u64) {
    (
        update.key().to_string(),
        update.version().as_u64().expect("versions are revisions"),
    )
}

/// Writes x0..x9 at revisions 1–10, then y three times (11–13) and z (14);
/// returns what a state-sync watch must deliver: the latest `(key, revision)`
/// of every key, in order.
pub async fn write_superseded_history(writer: &dyn KvWriter) -> Vec<(String, u64)> {
    for i in 0..10 {
        writer.put(&format!("x{i}"), b"x").await.unwrap();
    }
    for v in [b"1", b"2", b"3"] {
        writer.put("y", v).await.unwrap();
    }
    writer.put("z", b"z").await.unwrap();
    let mut expected: Vec<(String, u64)> = (0..10).map(|i| (format!("x{i}"), i + 1)).collect();
    expected.push(("y".into(), 13));
    expected.push(("z".into(), 14));
    expected
}

/// Receives from `rx` into `got` until it holds `want` updates; panics if one
/// takes longer than `wait` or the watch ends.
pub async fn receive_until(
    rx: &mut mpsc::Receiver<KvUpdate>,
    got: &mut Vec<(String, u64)>,
    want: usize,
    wait: Duration,
) {
    while got.len() < want {
        let update = tokio::time::timeout(wait, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("stalled after {got:?}"))
            .expect("watch runs");
        got.push(brief(&update));
    }
}
