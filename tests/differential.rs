//! Differential proptest (docs/verification.md row 16, docs/memory-backend.md, "Parity with
//! NATS"): random operation sequences run against a `MemoryConnection` bucket and a real
//! nats-server bucket with the same configuration; every observable result (values,
//! versions, errors by variant, status counters and bytes, watch outputs) must match.
#![cfg(feature = "nats")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::nats::NatsServer;
use kvfold::{
    Connection, DiscardPolicy, KvError, KvStore, KvUpdate, MemoryConnection, NatsConnection,
    StorageType, StoreConfig, StoreOptions, VersionToken,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const KEYS: [&str; 4] = ["a", "b", "c.d", "c.e"];
const PREFIXES: [&str; 3] = ["", "c.", "b"];

#[derive(Debug, Clone)]
enum Op {
    Put(usize, Vec<u8>),
    Create(usize, Vec<u8>),
    /// Update with the key's latest revision (`true`) or a stale one.
    Update(usize, Vec<u8>, bool),
    Delete(usize),
    DeleteWithVersion(usize, bool),
    Purge(usize),
    PutWithTtl(usize, Vec<u8>),
    Get(usize),
    Entry(usize),
    Keys(usize),
    Scan(usize),
    Status,
    Watch,
    WatchFrom(u64),
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        4 => prop::collection::vec(any::<u8>(), 1..4),
        1 => prop::collection::vec(any::<u8>(), 30..60),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    prop_oneof![
        4 => (key.clone(), value()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (key.clone(), value()).prop_map(|(k, v)| Op::Create(k, v)),
        2 => (key.clone(), value(), any::<bool>()).prop_map(|(k, v, f)| Op::Update(k, v, f)),
        2 => key.clone().prop_map(Op::Delete),
        1 => (key.clone(), any::<bool>()).prop_map(|(k, f)| Op::DeleteWithVersion(k, f)),
        1 => key.clone().prop_map(Op::Purge),
        1 => (key.clone(), value()).prop_map(|(k, v)| Op::PutWithTtl(k, v)),
        1 => key.clone().prop_map(Op::Get),
        1 => key.clone().prop_map(Op::Entry),
        1 => (0..PREFIXES.len()).prop_map(Op::Keys),
        1 => (0..PREFIXES.len()).prop_map(Op::Scan),
        1 => Just(Op::Status),
        1 => Just(Op::Watch),
        1 => (0u64..30).prop_map(Op::WatchFrom),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    history: u32,
    max_bytes: Option<i64>,
    discard: DiscardPolicy,
    storage: StorageType,
    ops: Vec<Op>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1u32..=3,
        prop_oneof![Just(None), Just(Some(-1)), (300i64..900).prop_map(Some)],
        prop_oneof![Just(DiscardPolicy::New), Just(DiscardPolicy::Old)],
        prop_oneof![Just(StorageType::Persistent), Just(StorageType::Memory)],
        prop::collection::vec(op(), 1..30),
    )
        .prop_map(|(history, max_bytes, discard, storage, ops)| Case {
            history,
            max_bytes,
            discard,
            storage,
            ops,
        })
}

/// What one side observed, comparable across backends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Version(Result<VersionToken, KvError>),
    Done(Result<bool, KvError>),
    Unit(Result<(), KvError>),
    Entry(Result<Option<(String, Vec<u8>, VersionToken)>, KvError>),
    Keys(Result<Vec<String>, KvError>),
    Scan(Result<Vec<(String, Vec<u8>, VersionToken)>, KvError>),
    Status(u64, u64, u64, u64),
    Watch(Vec<KvUpdate>, Option<Result<(), KvError>>),
}

/// Errors compare by variant (messages differ between backends).
fn variant<T>(r: Result<T, KvError>) -> Result<T, KvError> {
    r.map_err(|e| match e {
        KvError::OperationFailed(_) => KvError::OperationFailed(String::new()),
        KvError::WatchError(_) => KvError::WatchError(String::new()),
        KvError::ConnectionFailed(_) => KvError::ConnectionFailed(String::new()),
        other => other,
    })
}

async fn watch(store: &Arc<dyn KvStore>, from: Option<u64>, want: Option<usize>) -> Seen {
    let (mut rx, task) = common::watch::watch_all(store, from, 64);
    let mut got = Vec::new();
    // The memory side decides how many updates there are (it waits for silence);
    // the NATS side then waits for exactly that many.
    let quiet = Duration::from_millis(if want.is_some() { 300 } else { 100 });
    loop {
        if want.is_some_and(|n| got.len() >= n) {
            break;
        }
        let wait = if want.is_some() {
            Duration::from_secs(5)
        } else {
            quiet
        };
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(update)) => got.push(update),
            Ok(None) | Err(_) => break,
        }
    }
    if want.is_some()
        && let Ok(Some(extra)) = tokio::time::timeout(quiet, rx.recv()).await
    {
        got.push(extra);
    }
    drop(rx);
    let end = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .ok()
        .map(|j| variant(j.expect("watch task")));
    // A watch that is still running when the receiver is dropped ends with Ok.
    let end = match end {
        Some(Ok(())) | None => None,
        Some(err) => Some(err),
    };
    Seen::Watch(got, end)
}

async fn apply(store: &Arc<dyn KvStore>, op: &Op, expected: u64, want: Option<usize>) -> Seen {
    let writer = store.writer().unwrap();
    let reader = store.reader();
    let token = VersionToken::from_u64(expected);
    match op {
        Op::Put(k, v) => Seen::Version(variant(writer.put(KEYS[*k], v).await)),
        Op::Create(k, v) => Seen::Version(variant(writer.create(KEYS[*k], v).await)),
        Op::Update(k, v, _) => Seen::Version(variant(writer.update(KEYS[*k], v, &token).await)),
        Op::Delete(k) => Seen::Done(variant(writer.delete(KEYS[*k]).await)),
        Op::DeleteWithVersion(k, _) => {
            Seen::Done(variant(writer.delete_with_version(KEYS[*k], &token).await))
        }
        Op::Purge(k) => Seen::Unit(variant(store.purge_writer().unwrap().purge(KEYS[*k]).await)),
        Op::PutWithTtl(k, v) => Seen::Version(variant(
            store
                .ttl_writer()
                .expect("TTL buckets")
                .put_with_ttl(KEYS[*k], v, Duration::from_secs(3600))
                .await,
        )),
        Op::Get(k) => Seen::Entry(
            variant(reader.get(KEYS[*k]).await).map(|o| o.map(|e| (e.key, e.value, e.version))),
        ),
        Op::Entry(k) => Seen::Entry(
            variant(reader.entry(KEYS[*k]).await).map(|o| o.map(|e| (e.key, e.value, e.version))),
        ),
        Op::Keys(p) => Seen::Keys(variant(reader.keys(PREFIXES[*p]).await)),
        Op::Scan(p) => Seen::Scan(
            variant(reader.scan(PREFIXES[*p]).await)
                .map(|v| v.into_iter().map(|e| (e.key, e.value, e.version)).collect()),
        ),
        Op::Status => {
            let s = store.watcher().unwrap().status().await.unwrap().unwrap();
            Seen::Status(s.first_revision, s.last_revision, s.values, s.bytes)
        }
        Op::Watch => watch(store, None, want).await,
        Op::WatchFrom(c) => watch(store, Some(*c), want).await,
    }
}

async fn run_case(
    memory: &dyn Connection,
    nats: &dyn Connection,
    case: &Case,
    n: usize,
) -> Result<(), String> {
    let config = StoreConfig {
        name: format!("diff-{n}"),
        storage: case.storage,
        max_history: Some(case.history),
        max_bytes: case.max_bytes,
        discard: case.discard,
        ..StoreConfig::default()
    };
    let options = StoreOptions::new().with_ttl();
    let m = memory
        .store_with_options(config.clone(), options.clone())
        .await
        .map_err(|e| e.to_string())?;
    let s = nats
        .store_with_options(config, options)
        .await
        .map_err(|e| e.to_string())?;
    for (i, op) in case.ops.iter().enumerate() {
        // CAS expectations come from the memory side's view of the key.
        let expected = match op {
            Op::Update(k, _, fresh) | Op::DeleteWithVersion(k, fresh) => {
                let latest = m
                    .watcher()
                    .unwrap()
                    .status()
                    .await
                    .unwrap()
                    .unwrap()
                    .last_revision;
                let entry_rev = latest_revision_of(&m, KEYS[*k]).await;
                if *fresh {
                    entry_rev
                } else {
                    entry_rev
                        .saturating_sub(1)
                        .max(if entry_rev == 0 { latest + 5 } else { 0 })
                }
            }
            _ => 0,
        };
        let mine = apply(&m, op, expected, None).await;
        let want = match &mine {
            Seen::Watch(updates, _) => Some(updates.len()),
            _ => None,
        };
        let theirs = apply(&s, op, expected, want).await;
        if mine != theirs {
            return Err(format!("op {i} {op:?}: memory {mine:?} != nats {theirs:?}"));
        }
    }
    let fin = (
        apply(&m, &Op::Status, 0, None).await,
        apply(&s, &Op::Status, 0, None).await,
    );
    if fin.0 != fin.1 {
        return Err(format!(
            "final status: memory {:?} != nats {:?}",
            fin.0, fin.1
        ));
    }
    Ok(())
}

/// The revision of the key's latest retained entry of any kind, markers included
/// (what a CAS must name), read through a state-sync watch of the memory side.
async fn latest_revision_of(store: &Arc<dyn KvStore>, key: &str) -> u64 {
    if let Seen::Watch(updates, _) = watch(store, None, None).await {
        updates
            .iter()
            .filter(|u| u.key() == key)
            .filter_map(|u| u.version().as_u64())
            .max()
            .unwrap_or(0)
    } else {
        0
    }
}

#[test]
fn memory_and_nats_are_observably_identical() {
    let server = NatsServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (memory, nats) = rt.block_on(async {
        let memory = MemoryConnection::new();
        memory.connect().await.unwrap();
        let nats = NatsConnection::new(common::nats::client_config(server.url()));
        nats.connect().await.unwrap();
        (memory, nats)
    });
    let cases: u32 = std::env::var("KVFOLD_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..Config::default()
    });
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&case(), |case| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        rt.block_on(run_case(&memory, &nats, &case, n))
            .map_err(TestCaseError::fail)
    });
    if let Err(failure) = result {
        panic!("{failure}\nserver log tail:\n{}", server.log_tail(20));
    }
    println!(
        "differential: {} cases agreed",
        counter.load(std::sync::atomic::Ordering::SeqCst)
    );
}

/// Mutation: the comparison has teeth. Two backends that differ only in byte
/// accounting (a memory bucket told it is file storage vs one told it is memory
/// storage) must be told apart by the same checks.
#[test]
fn differential_detects_a_byte_accounting_difference() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let left = MemoryConnection::new();
        let right = MemoryConnection::new();
        left.connect().await.unwrap();
        right.connect().await.unwrap();
        let case = Case {
            history: 1,
            max_bytes: Some(-1),
            discard: DiscardPolicy::New,
            storage: StorageType::Persistent,
            ops: vec![Op::Put(0, b"v".to_vec()), Op::Status],
        };
        run_case(&left, &right, &case, 0)
            .await
            .expect("identical backends agree");
        let other = StoreConfig {
            name: "diff-1".to_string(),
            storage: StorageType::Memory,
            max_history: Some(1),
            max_bytes: Some(-1),
            ..StoreConfig::default()
        };
        right
            .store_with_options(other, StoreOptions::new().with_ttl())
            .await
            .unwrap();
        let verdict = run_case(&left, &right, &case, 1).await;
        assert!(
            verdict.is_err(),
            "a byte accounting difference must be reported: {verdict:?}"
        );
    });
}
