//! Cursor-expiry repair live against a real nats-server (docs/protocols/repair.md, "Live
//! tests"): a replica away while its cursor's successor left the stream (superseded
//! writes, a purged key, an age limit, a size limit under discard-old) repairs by a
//! relist (the key listing is the truth on a bucket without age or discard-old limits)
//! or by a restore from an artifact another replica exported, and is refused, with a
//! typed error and its fold untouched, where neither is sound. Every scenario runs on
//! one server and on a three-node cluster with three stream replicas (one body per
//! scenario, parameterised by [`Topology`]).
#![cfg(feature = "nats")]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::nats::{NatsCluster, NatsServer, connected, js_request, stream_info_json};
use common::repair::{
    ApplyGate, Replica, bucket_entries, fold_and_leave, fold_entries, fold_keys, fold_until,
    is_synthetic_delete_of, open_store,
};
use kvfold::{
    AppendLogSnapshot, Connection, DirRestore, DiscardPolicy, ExpiryRepair, KvError, KvStore,
    KvUpdate, RestoreSource, SnapshotStore, StorageType, StoreConfig, WatchCursor,
};
use serde_json::{Value, json};

/// How long a live scenario waits for the server (retention moving, a consumer
/// stalling): generous for a loaded machine, never a timing assertion.
const LIVE_WAIT: Duration = Duration::from_secs(60);

/// Where the scenario's servers run.
#[derive(Clone, Copy, Debug)]
enum Topology {
    /// One server; streams with one replica.
    Single,
    /// Three clustered servers; streams with three replicas.
    R3,
}

/// The servers of one scenario (killed on drop), a connection to them and a raw
/// client for the JetStream API.
struct Live {
    _single: Option<NatsServer>,
    _cluster: Option<NatsCluster>,
    conn: kvfold::NatsConnection,
    client: async_nats::Client,
    replicas: usize,
}

impl Live {
    async fn start(topology: Topology) -> Live {
        let (single, cluster, urls, list, replicas) = match topology {
            Topology::Single => {
                let server = NatsServer::start();
                let url = server.url();
                (Some(server), None, url.clone(), vec![url], 1)
            }
            Topology::R3 => {
                let cluster = NatsCluster::start(3);
                let (urls, list) = (cluster.urls(), cluster.url_list());
                (None, Some(cluster), urls, list, 3)
            }
        };
        let conn = connected(urls).await;
        let client = async_nats::connect(list)
            .await
            .expect("raw client connects");
        Live {
            _single: single,
            _cluster: cluster,
            conn,
            client,
            replicas,
        }
    }

    /// The bucket `config` describes, with the topology's replica count.
    async fn bucket(&self, config: StoreConfig) -> Arc<dyn KvStore> {
        let config = StoreConfig {
            num_replicas: Some(self.replicas),
            ..config
        };
        self.conn.store_with_config(config).await.unwrap()
    }

    /// The bucket stream's `state` (first and last sequence, counts).
    async fn state(&self, bucket: &Arc<dyn KvStore>) -> Value {
        let info = stream_info_json(&self.client, &format!("KV_{}", bucket.name())).await;
        info["state"].clone()
    }

    /// The stream's first sequence: the bucket's retention floor.
    async fn floor(&self, bucket: &Arc<dyn KvStore>) -> u64 {
        self.state(bucket).await["first_seq"].as_u64().unwrap()
    }

    /// Waits, polling the stream, until its floor passed `revision` (real time: an age
    /// limit removes messages on the server's own schedule).
    async fn wait_floor_past(&self, bucket: &Arc<dyn KvStore>, revision: u64) {
        let deadline = tokio::time::Instant::now() + LIVE_WAIT;
        loop {
            let floor = self.floor(bucket).await;
            if floor > revision {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the floor of {} stayed at {floor}, not past {revision}",
                bucket.name()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The info of the consumer on the bucket's stream that delivers from `start`
    /// (a resumed watch's; an earlier watch's consumer may linger while its delete
    /// is on its way).
    async fn consumer_from(&self, bucket: &Arc<dyn KvStore>, start: u64) -> Value {
        let list = js_request(
            &self.client,
            &format!("$JS.API.CONSUMER.LIST.KV_{}", bucket.name()),
            &json!({}),
        )
        .await
        .expect("consumer list");
        list["consumers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["config"]["opt_start_seq"].as_u64() == Some(start))
            .cloned()
            .unwrap_or_else(|| panic!("no consumer delivering from {start}: {list}"))
    }
}

/// Waits, polling the key listing, until the bucket lists no key (on a cluster each
/// replica ages messages out on its own clock, and a listing may read any of them).
async fn wait_listing_empty(bucket: &Arc<dyn KvStore>) {
    let deadline = tokio::time::Instant::now() + LIVE_WAIT;
    loop {
        let listed = bucket_entries(bucket).await;
        if listed.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} still lists {listed:?}",
            bucket.name()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// History 1, no limits: the key listing is the truth (overwrites and purges still
/// move the floor).
fn plain(name: &str) -> StoreConfig {
    common::config::bucket(name, 1)
}

/// History 1 and an age limit of one second (nats-server accepts 100 ms and up).
fn aging(name: &str) -> StoreConfig {
    StoreConfig {
        max_age: Some(Duration::from_secs(1)),
        ..plain(name)
    }
}

/// History 1, discard-old under a 4 KiB size limit: writing more removes the oldest
/// messages, current values included.
fn discarding(name: &str) -> StoreConfig {
    StoreConfig {
        max_bytes: Some(4096),
        discard: DiscardPolicy::Old,
        ..plain(name)
    }
}

/// A value big enough that a few of them push the oldest messages out of a
/// [`discarding`] bucket.
fn filler(i: usize) -> Vec<u8> {
    vec![b'a' + (i % 26) as u8; 512]
}

/// Writes fillers `f0`, `f1`, .. until the floor passed `revision`; after each write,
/// waits until `exporter` (when given) applied it, so that it is never overrun. Returns
/// the last revision written.
async fn fill_until_floor_past(
    live: &Live,
    bucket: &Arc<dyn KvStore>,
    revision: u64,
    exporter: Option<&Replica>,
) -> u64 {
    let w = bucket.writer().unwrap();
    for i in 0..64 {
        let written = w.put(&format!("f{i}"), &filler(i)).await.unwrap();
        let written = written.as_u64().expect("a NATS revision");
        if let Some(exporter) = exporter {
            exporter.wait_applied(written).await;
        }
        if live.floor(bucket).await > revision {
            return written;
        }
    }
    panic!(
        "64 fillers did not move the floor of {} past {revision}",
        bucket.name()
    );
}

/// The fold's append log, as bytes.
fn log_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Resumes the fold at `path` from `cursor` with `repair`, expects the run to end by
/// itself with a `WatchError` containing every one of `needles`, and checks that it
/// left the fold untouched: nothing applied, the same entries at the same revision,
/// and the log byte for byte unchanged. With `memo`, the one change allowed is the
/// eviction memo (docs/protocols/repair.md, "The eviction memo"): set on the cursor, committed
/// by an append to the log before the refusal.
async fn expect_refused(
    bucket: &Arc<dyn KvStore>,
    path: &Path,
    cursor: &WatchCursor,
    repair: ExpiryRepair<AppendLogSnapshot>,
    needles: &[&str],
    memo: bool,
) {
    let entries = fold_entries(&open_store(path));
    let before = log_bytes(path);
    let (end, seen) = fold_until(
        bucket,
        Some(cursor.clone()),
        repair,
        open_store(path),
        u64::MAX,
        None,
    )
    .await;
    match &end.result {
        Err(KvError::WatchError(m)) => {
            for needle in needles {
                assert!(m.contains(needle), "{needle:?} in {m:?}");
            }
        }
        other => panic!("expected a refusal naming {needles:?}, got {other:?}"),
    }
    assert!(seen.is_empty(), "nothing was applied: {seen:?}");
    let store = end.store.expect("store back");
    assert_eq!(end.applied, store.cursor(), "applied is the store's cursor");
    assert_eq!(
        store.cursor().rank(),
        cursor.rank(),
        "the cursor did not move"
    );
    assert_eq!(store.cursor().seen_evicting(), memo, "the eviction memo");
    assert_eq!(
        fold_entries(&store),
        entries,
        "the fold's entries are unchanged"
    );
    drop(store);
    let after = log_bytes(path);
    if memo {
        assert!(
            after.len() > before.len() && after.starts_with(&before),
            "the memo is appended; nothing before it changed"
        );
    } else {
        assert!(after == before, "the fold's log is byte for byte unchanged");
    }
}

fn artifacts_in(dir: &Path) -> Arc<dyn RestoreSource<AppendLogSnapshot>> {
    Arc::new(DirRestore::new(dir))
}

// ---------------------------------------------------------------------------------
// 1 (and 5, evicting half). A replica offline past `max_age`: the age limit evicts
// current values, so its listing is not the truth: `Relist` is refused and leaves the
// fold untouched; `Auto` restores from the exporter's artifact and ends identical to
// the exporter (aged-out keys kept, gap writes recovered, real deletes applied).
// ---------------------------------------------------------------------------------

async fn offline_past_max_age(topology: Topology) {
    let live = Live::start(topology).await;
    let bucket = live.bucket(aging("aging")).await;
    let w = bucket.writer().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    // Both folds run before the first write: one second is all they get to see it.
    let exporter = Replica::start(
        &bucket,
        None,
        ExpiryRepair::None,
        open_store(&dir.path().join("exporter.snap")),
    );
    let leaver = Replica::start(&bucket, None, ExpiryRepair::None, open_store(&path));
    w.put("a", b"1").await.unwrap(); // 1
    w.put("b", b"1").await.unwrap(); // 2
    w.put("c", b"1").await.unwrap(); // 3
    leaver.wait_applied(3).await;
    let (end, _) = leaver.stop().await;
    let cursor = end.result.expect("clean stop");
    drop(end.store);
    assert_eq!(cursor.rank(), 3);
    // Away: a real delete, a new key, an overwrite; the exporter folds each.
    w.delete("a").await.unwrap(); // 4
    w.put("d", b"1").await.unwrap(); // 5
    w.put("b", b"2").await.unwrap(); // 6
    exporter.wait_applied(6).await;
    // Real waiting: everything ages out, the bucket lists nothing.
    live.wait_floor_past(&bucket, 6).await;
    wait_listing_empty(&bucket).await;
    let artifacts = tempfile::tempdir().unwrap();
    let manifest = exporter.export(&artifacts.path().join("at-6")).await;
    assert_eq!(manifest.cursor.rank(), 6);
    let (end, _) = exporter.stop().await;
    let exporter_store = end.store.expect("exporter store back");

    expect_refused(
        &bucket,
        &path,
        &cursor,
        ExpiryRepair::Relist(bucket.reader()),
        &["evict", "Restore", "Auto"],
        true,
    )
    .await;

    let (end, seen) = fold_until(
        &bucket,
        Some(cursor),
        ExpiryRepair::Auto {
            reader: bucket.reader(),
            restore: artifacts_in(artifacts.path()),
        },
        open_store(&path),
        6,
        None,
    )
    .await;
    assert_eq!(end.result.as_ref().map(WatchCursor::rank), Ok(6));
    assert!(
        seen.iter().any(|u| is_synthetic_delete_of(u, "a")),
        "the restore deleted a: {seen:?}"
    );
    let store = end.store.expect("store back");
    assert_eq!(fold_entries(&store), fold_entries(&exporter_store));
    assert_eq!(fold_keys(&store), ["b", "c", "d"]);
    assert_eq!(store.get("b").unwrap().expect("b").value, b"2");
    assert_eq!(store.cursor().rank(), 6);
    assert!(store.cursor().seen_evicting(), "the eviction memo is set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_past_max_age_relist_is_refused_and_auto_restores_single() {
    offline_past_max_age(Topology::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_past_max_age_relist_is_refused_and_auto_restores_r3() {
    offline_past_max_age(Topology::R3).await;
}

// ---------------------------------------------------------------------------------
// 2. A discard-old bucket under a size limit: `Relist` is refused with the fold
// untouched; `Restore` from the exporter's artifact ends identical to the exporter.
// ---------------------------------------------------------------------------------

async fn discard_old_restore(topology: Topology) {
    let live = Live::start(topology).await;
    let bucket = live.bucket(discarding("discard")).await;
    let w = bucket.writer().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    let exporter = Replica::start(
        &bucket,
        None,
        ExpiryRepair::None,
        open_store(&dir.path().join("exporter.snap")),
    );
    w.put("a", b"1").await.unwrap(); // 1
    w.put("b", b"1").await.unwrap(); // 2
    w.put("c", b"1").await.unwrap(); // 3
    let cursor = fold_and_leave(&bucket, &path, 3).await;
    // Away: a real delete and a gap write, then enough writes to push both (and b, c)
    // out of the bucket.
    w.delete("a").await.unwrap(); // 4
    w.put("g", b"1").await.unwrap(); // 5
    exporter.wait_applied(5).await;
    let last = fill_until_floor_past(&live, &bucket, 5, Some(&exporter)).await;
    let artifacts = tempfile::tempdir().unwrap();
    let manifest = exporter
        .export(&artifacts.path().join(format!("at-{last}")))
        .await;
    assert_eq!(manifest.cursor.rank(), last);
    // A write after the artifact: the resume after it delivers it.
    w.put("h", b"1").await.unwrap();
    exporter.wait_applied(last + 1).await;
    let (end, _) = exporter.stop().await;
    let exporter_store = end.store.expect("exporter store back");
    for gone in ["b", "c", "g"] {
        assert!(
            bucket.reader().get(gone).await.unwrap().is_none(),
            "{gone} aged out of the bucket"
        );
    }

    expect_refused(
        &bucket,
        &path,
        &cursor,
        ExpiryRepair::Relist(bucket.reader()),
        &["evict", "Restore", "Auto"],
        true,
    )
    .await;

    let (end, _) = fold_until(
        &bucket,
        Some(cursor),
        ExpiryRepair::Restore {
            reader: bucket.reader(),
            restore: artifacts_in(artifacts.path()),
        },
        open_store(&path),
        last + 1,
        None,
    )
    .await;
    assert_eq!(end.result.as_ref().map(WatchCursor::rank), Ok(last + 1));
    let store = end.store.expect("store back");
    assert_eq!(fold_entries(&store), fold_entries(&exporter_store));
    let keys = fold_keys(&store);
    for kept in ["b", "c", "g", "h"] {
        assert!(keys.iter().any(|k| k == kept), "{kept} in {keys:?}");
    }
    assert!(!keys.iter().any(|k| k == "a"), "a deleted: {keys:?}");
    assert_eq!(store.cursor().rank(), last + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_old_refuses_relist_and_restores_like_the_exporter_single() {
    discard_old_restore(Topology::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_old_refuses_relist_and_restores_like_the_exporter_r3() {
    discard_old_restore(Topology::R3).await;
}

// ---------------------------------------------------------------------------------
// 3. The newest artifact's cursor is outside retention: the watch fails with the
// typed refusal and the fold is untouched.
// ---------------------------------------------------------------------------------

async fn artifact_outside_retention(topology: Topology) {
    let live = Live::start(topology).await;
    let bucket = live.bucket(discarding("outside")).await;
    let w = bucket.writer().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    w.put("a", b"1").await.unwrap(); // 1
    w.put("b", b"1").await.unwrap(); // 2
    let cursor = fold_and_leave(&bucket, &path, 2).await;
    w.put("c", b"1").await.unwrap(); // 3
    let artifacts = tempfile::tempdir().unwrap();
    common::repair::export_at(
        &bucket,
        &dir.path().join("exporter.snap"),
        &artifacts.path().join("at-3"),
        3,
    )
    .await;
    // Nobody folds on: the floor passes the artifact's successor.
    fill_until_floor_past(&live, &bucket, 4, None).await;

    expect_refused(
        &bucket,
        &path,
        &cursor,
        ExpiryRepair::Restore {
            reader: bucket.reader(),
            restore: artifacts_in(artifacts.path()),
        },
        &["cursor-expired restore", "would skip evicted messages"],
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_outside_retention_fails_the_watch_and_leaves_the_fold_single() {
    artifact_outside_retention(Topology::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_outside_retention_fails_the_watch_and_leaves_the_fold_r3() {
    artifact_outside_retention(Topology::R3).await;
}

// ---------------------------------------------------------------------------------
// 4. A floor-guard trip mid-stream: the resumed watch runs, its consumer stalls on
// flow control while `apply` is held, and everything it has not been sent yet is
// superseded (history 1) or purged under it. When `apply` goes on, the next delivery
// jumps past the floor; the guard ends the watch with `CursorExpired` and the fold
// repairs by a relist in the same `watch_applied` run, ending identical to the bucket.
// ---------------------------------------------------------------------------------

/// Values big enough that a few megabytes of them stall a flow-controlled consumer
/// whose receiver does not read.
const BIG: usize = 512 * 1024;

async fn mid_stream_floor_trip(topology: Topology) {
    let live = Live::start(topology).await;
    let bucket = live
        .bucket(StoreConfig {
            storage: StorageType::Memory,
            ..plain("midstream")
        })
        .await;
    let w = bucket.writer().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    let small = ["k0", "k1", "k2", "k3"];
    for key in small {
        w.put(key, b"1").await.unwrap(); // 1..=4
    }
    let cursor = fold_and_leave(&bucket, &path, 4).await;

    let gate = ApplyGate::closed();
    let _opens = gate.open_on_drop();
    let replica = Replica::start_gated(
        &bucket,
        Some(cursor.clone()),
        ExpiryRepair::Relist(bucket.reader()),
        // Compacts only past 1 GiB: the big values stay appended, never rewritten.
        AppendLogSnapshot::open(&path, 1 << 30).unwrap().1,
        Some(Arc::clone(&gate)),
    );
    // Big writes until the server holds some back from the consumer, whose flow
    // control goes unanswered (nats-server keeps tens of MiB in flight first); then
    // every key rewritten (history 1: everything so far superseded). Done once the
    // floor (read first) is past what the consumer was sent (read after): what lay
    // between was gone before the server could send it, so the consumer's next
    // delivery jumps the floor.
    let mut big_keys: Vec<String> = Vec::new();
    let mut superseded = false;
    while !superseded {
        assert!(
            big_keys.len() < 256,
            "256 big writes did not stall the consumer while apply was held"
        );
        for _ in 0..8 {
            let key = format!("big{}", big_keys.len());
            w.put(&key, &vec![b'x'; BIG]).await.unwrap();
            big_keys.push(key);
        }
        if !gate.has_held() {
            continue;
        }
        let before = live.consumer_from(&bucket, 5).await["delivered"]["stream_seq"].as_u64();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let last = live.state(&bucket).await["last_seq"].as_u64().unwrap();
        let after = live.consumer_from(&bucket, 5).await["delivered"]["stream_seq"].as_u64();
        if before != after || after >= Some(last) {
            continue;
        }
        for key in small.iter().map(|k| k.to_string()).chain(big_keys.clone()) {
            w.put(&key, b"2").await.unwrap();
        }
        let floor = live.floor(&bucket).await;
        let sent = live.consumer_from(&bucket, 5).await["delivered"]["stream_seq"]
            .as_u64()
            .unwrap();
        assert!(sent > 4, "the resumed watch was sent its history first");
        superseded = floor > sent + 1;
    }
    // k1 deleted and purged, a new key.
    w.delete("k1").await.unwrap();
    bucket.purge_writer().unwrap().purge("k1").await.unwrap();
    let last = w.put("n", b"1").await.unwrap().as_u64().unwrap();
    gate.open();

    replica.wait_applied(last).await;
    let (end, seen) = replica.stop().await;
    assert_eq!(end.result.as_ref().map(WatchCursor::rank), Ok(last));
    let streamed = seen
        .iter()
        .position(
            |u| matches!(u, KvUpdate::Put(e) if e.key.starts_with("big") && e.value.len() == BIG),
        )
        .expect("the resumed watch delivered before the trip");
    let deleted = seen
        .iter()
        .position(|u| is_synthetic_delete_of(u, "k1"))
        .expect("the relist deleted the purged k1 in the same run");
    assert!(
        streamed < deleted,
        "streamed, tripped, then relisted: {seen:?}"
    );
    let store = end.store.expect("store back");
    assert_eq!(fold_entries(&store), bucket_entries(&bucket).await);
    assert!(!store.cursor().seen_evicting());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mid_stream_floor_trip_repairs_in_process_single() {
    mid_stream_floor_trip(Topology::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mid_stream_floor_trip_repairs_in_process_r3() {
    mid_stream_floor_trip(Topology::R3).await;
}

// ---------------------------------------------------------------------------------
// 5. `Auto` relists on a bucket that does not evict current values (its restore
// source is empty: a restore would fail), and restores on one that does (scenario 1).
// ---------------------------------------------------------------------------------

async fn auto_relists_when_the_listing_is_the_truth(topology: Topology) {
    let live = Live::start(topology).await;
    let bucket = live.bucket(plain("autorelist")).await;
    let w = bucket.writer().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    w.put("a", b"1").await.unwrap(); // 1
    w.put("b", b"1").await.unwrap(); // 2
    w.put("c", b"1").await.unwrap(); // 3
    let cursor = fold_and_leave(&bucket, &path, 3).await;
    w.delete("a").await.unwrap(); // 4
    bucket.purge_writer().unwrap().purge("a").await.unwrap(); // 5
    w.put("n", b"1").await.unwrap(); // 6
    w.put("b", b"2").await.unwrap(); // 7
    w.put("c", b"2").await.unwrap(); // 8
    assert!(
        live.floor(&bucket).await > 4,
        "the cursor's successor is gone"
    );

    let empty = tempfile::tempdir().unwrap();
    let (end, seen) = fold_until(
        &bucket,
        Some(cursor),
        ExpiryRepair::Auto {
            reader: bucket.reader(),
            restore: artifacts_in(empty.path()),
        },
        open_store(&path),
        8,
        None,
    )
    .await;
    assert_eq!(end.result.as_ref().map(WatchCursor::rank), Ok(8));
    assert!(
        seen.iter().any(|u| is_synthetic_delete_of(u, "a")),
        "the relist deleted a: {seen:?}"
    );
    let store = end.store.expect("store back");
    assert_eq!(fold_entries(&store), bucket_entries(&bucket).await);
    assert_eq!(fold_keys(&store), ["b", "c", "n"]);
    assert!(!store.cursor().seen_evicting());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_relists_a_bucket_that_does_not_evict_single() {
    auto_relists_when_the_listing_is_the_truth(Topology::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_relists_a_bucket_that_does_not_evict_r3() {
    auto_relists_when_the_listing_is_the_truth(Topology::R3).await;
}

// ---------------------------------------------------------------------------------
// Expiry by supersession and purge on one server (the first live repair tests).
// ---------------------------------------------------------------------------------

async fn history_1_bucket(conn: &kvfold::NatsConnection, name: &str) -> Arc<dyn KvStore> {
    conn.store_with_config(common::config::bucket(name, 1))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_on_nats_removes_a_key_purged_while_the_cursor_was_expired() {
    let server = NatsServer::start();
    let conn = connected(server.url()).await;
    let bucket = history_1_bucket(&conn, "relist").await;
    let w = bucket.writer().unwrap();
    w.put("a", b"1").await.unwrap(); // 1
    w.put("b", b"1").await.unwrap(); // 2
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    let cursor = fold_and_leave(&bucket, &path, 2).await;
    // Away: `a` deleted then purged (its marker gone), `b` rewritten: the stream now
    // starts after the cursor's successor.
    w.delete("a").await.unwrap(); // 3
    w.put("b", b"2").await.unwrap(); // 4
    bucket
        .purge_writer()
        .expect("NATS purges")
        .purge("a")
        .await
        .unwrap(); // 5

    let (end, seen) = fold_until(
        &bucket,
        Some(cursor),
        ExpiryRepair::Relist(bucket.reader()),
        open_store(&path),
        5,
        None,
    )
    .await;
    assert!(end.result.is_ok(), "{:?}", end.result);
    assert!(
        seen.iter().any(|u| is_synthetic_delete_of(u, "a")),
        "the relist deleted a before the re-list: {seen:?}"
    );
    let store = end.store.expect("store back");
    assert_eq!(fold_keys(&store), ["b"]);
    assert_eq!(store.cursor().rank(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_on_nats_takes_the_artifact_and_resumes_after_it() {
    let server = NatsServer::start();
    let conn = connected(server.url()).await;
    let bucket = history_1_bucket(&conn, "restore").await;
    let w = bucket.writer().unwrap();
    w.put("a", b"1").await.unwrap(); // 1
    w.put("b", b"1").await.unwrap(); // 2
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    let cursor = fold_and_leave(&bucket, &path, 2).await;
    w.put("c", b"1").await.unwrap(); // 3
    w.delete("a").await.unwrap(); // 4
    // Another replica exports at 4.
    let artifacts = tempfile::tempdir().unwrap();
    let (end, _) = fold_until(
        &bucket,
        None,
        ExpiryRepair::None,
        open_store(&dir.path().join("exporter.snap")),
        4,
        Some(&artifacts.path().join("at-4")),
    )
    .await;
    assert!(end.result.is_ok(), "{:?}", end.result);
    w.put("b", b"2").await.unwrap(); // 5
    w.put("c", b"2").await.unwrap(); // 6
    bucket
        .purge_writer()
        .expect("NATS purges")
        .purge("a")
        .await
        .unwrap(); // 7

    let source: Arc<dyn RestoreSource<AppendLogSnapshot>> =
        Arc::new(DirRestore::new(artifacts.path()));
    let (end, seen) = fold_until(
        &bucket,
        Some(cursor),
        ExpiryRepair::Restore {
            reader: bucket.reader(),
            restore: source,
        },
        open_store(&path),
        7,
        None,
    )
    .await;
    assert!(end.result.is_ok(), "{:?}", end.result);
    let c_from_artifact = seen
        .iter()
        .position(
            |u| matches!(u, KvUpdate::Put(e) if e.key == "c" && e.version.as_u64() == Some(3)),
        )
        .expect("c taken from the artifact");
    let a_deleted = seen
        .iter()
        .position(|u| is_synthetic_delete_of(u, "a"))
        .expect("a deleted by the restore");
    assert!(c_from_artifact < a_deleted, "puts, then deletes: {seen:?}");
    let store = end.store.expect("store back");
    assert_eq!(fold_keys(&store), ["b", "c"]);
    assert_eq!(store.cursor().rank(), 7);
    let c = store.get("c").unwrap().expect("c");
    assert_eq!(
        c.value, b"2",
        "the resume delivered the write after the artifact"
    );
}
