//! proptest: `MemoryConnection` against a tiny reference map over random operation
//! sequences (docs/verification.md, "proptest"). The reference tracks, per key, the
//! retained entries (revision, kind, value) and checks every observable result: versions,
//! errors by variant, reads, listings, status counters and watch outputs.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use kvfold::{
    Connection, KvEntry, KvError, KvStore, KvUpdate, MemoryConnection, VersionToken, WatchCursor,
};
use proptest::prelude::*;

mod common;

const KEYS: [&str; 4] = ["a", "b", "c.d", "c.e"];

#[derive(Debug, Clone)]
enum Op {
    Put(usize, Vec<u8>),
    Create(usize, Vec<u8>),
    /// Update with the key's latest revision (`fresh`) or a stale one.
    Update(usize, Vec<u8>, bool),
    Delete(usize),
    DeleteWithVersion(usize, bool),
    Purge(usize),
    Get(usize),
    Entry(usize),
    Keys(usize),
    Scan(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let value = prop::collection::vec(any::<u8>(), 0..3);
    prop_oneof![
        (key.clone(), value.clone()).prop_map(|(k, v)| Op::Put(k, v)),
        (key.clone(), value.clone()).prop_map(|(k, v)| Op::Create(k, v)),
        (key.clone(), value, any::<bool>()).prop_map(|(k, v, f)| Op::Update(k, v, f)),
        key.clone().prop_map(Op::Delete),
        (key.clone(), any::<bool>()).prop_map(|(k, f)| Op::DeleteWithVersion(k, f)),
        key.clone().prop_map(Op::Purge),
        key.clone().prop_map(Op::Get),
        key.clone().prop_map(Op::Entry),
        (0..3usize).prop_map(Op::Keys),
        (0..3usize).prop_map(Op::Scan),
    ]
}

const PREFIXES: [&str; 3] = ["", "c.", "b"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Value,
    Delete,
    Purge,
}

#[derive(Debug, Clone)]
struct Rec {
    revision: u64,
    kind: Kind,
    value: Vec<u8>,
}

/// The reference: per key, its retained entries, oldest first.
#[derive(Debug, Default)]
struct Reference {
    history: usize,
    last: u64,
    keys: BTreeMap<&'static str, VecDeque<Rec>>,
}

impl Reference {
    fn latest(&self, key: &str) -> Option<&Rec> {
        self.keys.get(key).and_then(|d| d.back())
    }

    fn append(&mut self, key: &'static str, kind: Kind, value: Vec<u8>, rollup: bool) -> u64 {
        self.last += 1;
        let history = self.history;
        let entries = self.keys.entry(key).or_default();
        if rollup {
            entries.clear();
        }
        entries.push_back(Rec {
            revision: self.last,
            kind,
            value,
        });
        while entries.len() > history {
            entries.pop_front();
        }
        self.last
    }

    fn cas_ok(&self, key: &str, expected: u64) -> bool {
        match self.latest(key) {
            None => expected == 0,
            Some(rec) => expected != 0 && rec.revision == expected,
        }
    }

    /// A revision that is never the key's latest: 0 if the key has entries, else a big one.
    fn stale(&self, key: &str) -> u64 {
        match self.latest(key) {
            Some(rec) => {
                rec.revision
                    .saturating_sub(1)
                    .max(if rec.revision == 1 { 999 } else { 0 })
            }
            None => 999,
        }
    }

    fn fresh(&self, key: &str) -> u64 {
        self.latest(key).map_or(0, |r| r.revision)
    }

    fn live(&self, prefix: &str) -> Vec<(&'static str, &Rec)> {
        self.keys
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, d)| d.back().map(|r| (*k, r)))
            .filter(|(_, r)| r.kind == Kind::Value && !r.value.is_empty())
            .collect()
    }

    fn retained(&self) -> Vec<(&'static str, &Rec)> {
        let mut all: Vec<_> = self
            .keys
            .iter()
            .flat_map(|(k, d)| d.iter().map(move |r| (*k, r)))
            .collect();
        all.sort_by_key(|(_, r)| r.revision);
        all
    }

    fn first_revision(&self) -> u64 {
        self.retained()
            .first()
            .map_or(if self.last == 0 { 0 } else { self.last + 1 }, |(_, r)| {
                r.revision
            })
    }
}

fn expected_update(key: &str, rec: &Rec) -> KvUpdate {
    let version = VersionToken::from_u64(rec.revision);
    match rec.kind {
        Kind::Value if !rec.value.is_empty() => KvUpdate::Put(KvEntry {
            key: key.to_string(),
            value: rec.value.clone(),
            version,
        }),
        Kind::Value | Kind::Delete => KvUpdate::Delete {
            key: key.to_string(),
            version,
        },
        Kind::Purge => KvUpdate::Purge {
            key: key.to_string(),
            version,
        },
    }
}

async fn collect(
    store: &Arc<dyn KvStore>,
    cursor: Option<WatchCursor>,
    expected: usize,
) -> (Vec<KvUpdate>, Option<Result<(), KvError>>) {
    let watcher = store.watcher().expect("memory watches");
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let task = tokio::spawn(async move {
        match cursor {
            Some(c) => watcher.watch_all_from(&c, tx).await,
            None => watcher.watch_all(tx).await,
        }
    });
    let mut got = Vec::new();
    while got.len() < expected {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(update)) => got.push(update),
            Ok(None) => break,
            Err(_) => panic!("watch stalled after {} of {expected} updates", got.len()),
        }
    }
    // Nothing more may arrive.
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(20), rx.recv()).await {
        got.push(extra);
    }
    drop(rx);
    let end = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .ok()
        .map(|j| j.expect("watch task"));
    (got, end)
}

/// Runs `ops` on a fresh bucket and checks every result against the reference.
/// `sabotage` plays a broken backend that silently loses its oldest retained write.
async fn run(history: u32, ops: Vec<Op>, cursor_pick: u64, sabotage: bool) {
    let conn = MemoryConnection::new();
    conn.connect().await.unwrap();
    let store = conn
        .store_with_config(common::config::bucket("model", history))
        .await
        .unwrap();
    let writer = store.writer().unwrap();
    let purger = store.purge_writer().unwrap();
    let reader = store.reader();
    let mut reference = Reference {
        history: history as usize,
        ..Reference::default()
    };
    for op in ops {
        match op {
            Op::Put(k, v) => {
                let got = writer.put(KEYS[k], &v).await;
                let rev = reference.append(KEYS[k], Kind::Value, v, false);
                assert_eq!(got, Ok(VersionToken::from_u64(rev)));
            }
            Op::Create(k, v) => {
                let got = writer.create(KEYS[k], &v).await;
                match reference.latest(KEYS[k]).map(|r| r.kind) {
                    Some(Kind::Value) => assert_eq!(got, Err(KvError::AlreadyExists)),
                    _ => {
                        let rev = reference.append(KEYS[k], Kind::Value, v, false);
                        assert_eq!(got, Ok(VersionToken::from_u64(rev)));
                    }
                }
            }
            Op::Update(k, v, fresh) => {
                let expected = if fresh {
                    reference.fresh(KEYS[k])
                } else {
                    reference.stale(KEYS[k])
                };
                let got = writer
                    .update(KEYS[k], &v, &VersionToken::from_u64(expected))
                    .await;
                if reference.cas_ok(KEYS[k], expected) {
                    let rev = reference.append(KEYS[k], Kind::Value, v, false);
                    assert_eq!(got, Ok(VersionToken::from_u64(rev)));
                } else {
                    assert_eq!(got, Err(KvError::RevisionMismatch));
                }
            }
            Op::Delete(k) => {
                assert_eq!(writer.delete(KEYS[k]).await, Ok(true));
                reference.append(KEYS[k], Kind::Delete, Vec::new(), false);
            }
            Op::DeleteWithVersion(k, fresh) => {
                let expected = if fresh {
                    reference.fresh(KEYS[k])
                } else {
                    reference.stale(KEYS[k])
                };
                let got = writer
                    .delete_with_version(KEYS[k], &VersionToken::from_u64(expected))
                    .await;
                if reference.cas_ok(KEYS[k], expected) {
                    reference.append(KEYS[k], Kind::Value, Vec::new(), false);
                    assert_eq!(got, Ok(true));
                } else {
                    assert_eq!(got, Err(KvError::RevisionMismatch));
                }
            }
            Op::Purge(k) => {
                assert_eq!(purger.purge(KEYS[k]).await, Ok(()));
                reference.append(KEYS[k], Kind::Purge, Vec::new(), true);
            }
            Op::Get(k) => {
                let got = reader.get(KEYS[k]).await.unwrap();
                let want = reference
                    .latest(KEYS[k])
                    .filter(|r| r.kind == Kind::Value && !r.value.is_empty())
                    .map(|r| (r.value.clone(), r.revision));
                assert_eq!(got.map(|e| (e.value, e.version.as_u64().unwrap())), want);
            }
            Op::Entry(k) => {
                let got = reader.entry(KEYS[k]).await.unwrap();
                let want = reference
                    .latest(KEYS[k])
                    .filter(|r| r.kind == Kind::Value)
                    .map(|r| (r.value.clone(), r.revision));
                assert_eq!(got.map(|e| (e.value, e.version.as_u64().unwrap())), want);
            }
            Op::Keys(p) => {
                let got = reader.keys(PREFIXES[p]).await.unwrap();
                let want: Vec<String> = reference
                    .live(PREFIXES[p])
                    .iter()
                    .map(|(k, _)| k.to_string())
                    .collect();
                assert_eq!(got, want);
            }
            Op::Scan(p) => {
                let got: Vec<(String, Vec<u8>, u64)> = reader
                    .scan(PREFIXES[p])
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| (e.key, e.value, e.version.as_u64().unwrap()))
                    .collect();
                let want: Vec<(String, Vec<u8>, u64)> = reference
                    .live(PREFIXES[p])
                    .iter()
                    .map(|(k, r)| (k.to_string(), r.value.clone(), r.revision))
                    .collect();
                assert_eq!(got, want);
            }
        }
    }

    if sabotage {
        let first = reference.first_revision();
        conn.faults().evict_below("model", first + 1).unwrap();
    }

    // Status counters follow the reference.
    let status = store.watcher().unwrap().status().await.unwrap().unwrap();
    assert_eq!(status.last_revision, reference.last);
    assert_eq!(status.first_revision, reference.first_revision());
    assert_eq!(status.values, reference.retained().len() as u64);

    // State-sync watch: the latest retained entry of each key, in revision order.
    let mut snapshot: Vec<(&str, &Rec)> = reference
        .keys
        .iter()
        .filter_map(|(k, d)| d.back().map(|r| (*k, r)))
        .collect();
    snapshot.sort_by_key(|(_, r)| r.revision);
    let want: Vec<KvUpdate> = snapshot
        .iter()
        .map(|(k, r)| expected_update(k, r))
        .collect();
    let (got, _) = collect(&store, None, want.len()).await;
    assert_eq!(got, want, "state-sync watch");

    // Resumed watch from a random cursor: exactly the retained writes after it,
    // or CursorExpired when its successor is below the floor.
    let cursor = if reference.last == 0 {
        0
    } else {
        cursor_pick % (reference.last + 1)
    };
    let first = reference.first_revision();
    let after: Vec<KvUpdate> = reference
        .retained()
        .iter()
        .filter(|(_, r)| r.revision > cursor)
        .map(|(k, r)| expected_update(k, r))
        .collect();
    if cursor == 0 {
        return; // revision 0 means a state-sync watch, checked above
    }
    let (got, end) = collect(&store, Some(WatchCursor::from_u64(cursor)), after.len()).await;
    if first > cursor + 1 {
        assert!(
            got.is_empty(),
            "nothing delivered from an expired cursor: {got:?}"
        );
        assert_eq!(end, Some(Err(KvError::CursorExpired)));
    } else {
        assert_eq!(got, after, "resumed watch from {cursor}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn memory_backend_matches_the_reference(
        history in 1u32..=3,
        ops in prop::collection::vec(op(), 0..40),
        cursor_pick in any::<u64>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(run(history, ops, cursor_pick, false));
    }
}

/// Mutation: the checker has teeth. A backend that silently loses one retained
/// write must fail the same checks.
#[test]
fn checker_catches_a_silently_lost_write() {
    let ops = vec![
        Op::Put(0, b"1".to_vec()),
        Op::Put(1, b"2".to_vec()),
        Op::Put(2, b"3".to_vec()),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(run(1, ops.clone(), 1, false));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(run(1, ops, 1, true));
    }));
    assert!(
        caught.is_err(),
        "a lost write must not pass the model check"
    );
}
