//! loom: the memory backend's watch registration is atomic with commits
//! (docs/memory-backend.md, "Watches", W1–W7). A state-sync watch sees a consistent
//! snapshot at `R` and then every later commit exactly once, in order, under concurrent
//! writers; a deliberately broken registration (outside the commit lock) is caught.
//!
//! Run: `RUSTFLAGS="--cfg kvfold_loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=3 \
//!       cargo test --release --no-default-features --test loom_memory`
#![cfg(kvfold_loom)]

use std::collections::BTreeMap;
use std::sync::Arc as StdArc;

use kvfold::memory::log::{BucketLog, Entry, WriteOp};
use kvfold::memory::registry::{BucketCell, QueueLimits, Registration, SlotId, Taken};
use kvfold::{KvError, StoreConfig, StoreOptions};
use loom::sync::Arc;
use loom::thread;
use tokio::sync::Notify;

const NOW_MS: u64 = 1_000;

fn cell(len_max: usize) -> Arc<BucketCell> {
    let config = StoreConfig {
        name: "loom".to_string(),
        max_history: Some(64),
        max_bytes: Some(-1),
        ..StoreConfig::default()
    };
    let log = BucketLog::new("loom", &config, &StoreOptions::default(), NOW_MS);
    Arc::new(BucketCell::new(
        log,
        QueueLimits {
            len_max,
            bytes_max: 1 << 20,
        },
    ))
}

fn put(cell: &BucketCell, key: &str, value: &str) -> u64 {
    let op = WriteOp::Put {
        key: key.to_string(),
        value: value.as_bytes().to_vec(),
    };
    cell.commit(op, NOW_MS, 0).expect("put commits").revision
}

fn wake() -> StdArc<Notify> {
    StdArc::new(Notify::new())
}

/// Takes until the slot has nothing more; returns the revisions taken, in order.
fn drain(cell: &BucketCell, slot: SlotId) -> Vec<u64> {
    let mut out = Vec::new();
    loop {
        match cell.take(slot, 2) {
            Taken::Entries(entries) if entries.is_empty() => return out,
            Taken::Entries(entries) => out.extend(entries.iter().map(|e| e.revision)),
            Taken::Paused => panic!("nothing pauses this bucket"),
            Taken::Ended(error) => panic!("slot ended: {error}"),
        }
    }
}

/// W1–W4: the snapshot is exactly the latest entry of each key at `R`, and the
/// slot then yields exactly the commits after `R`, once each, in order.
fn assert_consistent(cell: &BucketCell, registration: &Registration, taken: &[u64]) {
    let log = cell.log_snapshot();
    let all: Vec<StdArc<Entry>> = log.entries_from(0).cloned().collect();
    let r = registration.last_revision;
    let mut latest: BTreeMap<&str, u64> = BTreeMap::new();
    for entry in all.iter().filter(|e| e.revision <= r) {
        latest.insert(&entry.key, entry.revision);
    }
    let mut expected_snapshot: Vec<u64> = latest.values().copied().collect();
    expected_snapshot.sort_unstable();
    let snapshot: Vec<u64> = registration.snapshot.iter().map(|e| e.revision).collect();
    assert_eq!(snapshot, expected_snapshot, "snapshot at R={r}");
    let expected_tail: Vec<u64> = all
        .iter()
        .map(|e| e.revision)
        .filter(|&rev| rev > r)
        .collect();
    assert_eq!(
        taken, expected_tail,
        "commits after R={r}, once each, in order"
    );
}

fn registration_races_commits(split: bool) {
    loom::model(move || {
        let cell = cell(16);
        let writers: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|key| {
                let cell = Arc::clone(&cell);
                thread::spawn(move || {
                    put(&cell, key, "1");
                    put(&cell, key, "2");
                })
            })
            .collect();
        let registration = if split {
            cell.register_sync_split_for_loom(vec![String::new()], wake())
        } else {
            cell.register_sync(vec![String::new()], wake())
                .expect("bucket is live")
        };
        for writer in writers {
            writer.join().expect("writer");
        }
        let taken = drain(&cell, registration.slot);
        assert_consistent(&cell, &registration, &taken);
    });
}

#[test]
fn state_sync_registration_is_atomic_with_commits() {
    registration_races_commits(false);
}

#[test]
fn registration_outside_the_commit_lock_is_caught() {
    let caught = std::panic::catch_unwind(|| registration_races_commits(true));
    let payload = caught.expect_err(
        "loom must find the interleaving where a commit lands between the snapshot and the slot",
    );
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_default();
    assert!(
        message.contains("once each, in order") || message.contains("snapshot at R"),
        "the broken registration must fail the W1-W4 assertion, not something else: {message}"
    );
}

#[test]
fn overflow_handoff_keeps_order_and_uniqueness() {
    loom::model(|| {
        let cell = cell(1);
        let registration = cell
            .register_sync(vec![String::new()], wake())
            .expect("bucket is live");
        let slot = registration.slot;
        let writer = {
            let cell = Arc::clone(&cell);
            thread::spawn(move || {
                for value in ["1", "2", "3"] {
                    put(&cell, "k", value);
                }
            })
        };
        let drainer = {
            let cell = Arc::clone(&cell);
            thread::spawn(move || {
                let mut seen = Vec::new();
                for _ in 0..2 {
                    if let Taken::Entries(entries) = cell.take(slot, 1) {
                        seen.extend(entries.iter().map(|e| e.revision));
                    }
                }
                seen
            })
        };
        writer.join().expect("writer");
        let mut taken = drainer.join().expect("drainer");
        taken.extend(drain(&cell, slot));
        assert_eq!(
            taken,
            vec![1, 2, 3],
            "Queue -> Lagging -> Queue hands over at a revision boundary"
        );
    });
}

#[test]
fn resume_registration_yields_exactly_the_commits_after_the_cursor() {
    loom::model(|| {
        let cell = cell(16);
        put(&cell, "k", "1");
        put(&cell, "j", "2");
        let writer = {
            let cell = Arc::clone(&cell);
            thread::spawn(move || {
                put(&cell, "k", "3");
                put(&cell, "j", "4");
            })
        };
        // Cursor at revision 1: resume from start sequence 2.
        let slot = cell
            .register_from(vec![String::new()], 2, wake())
            .expect("bucket is live");
        writer.join().expect("writer");
        assert_eq!(drain(&cell, slot), vec![2, 3, 4]);
    });
}

#[test]
fn nothing_is_taken_after_the_end_is_observed() {
    loom::model(|| {
        let cell = cell(16);
        let registration = cell
            .register_sync(vec![String::new()], wake())
            .expect("bucket is live");
        let slot = registration.slot;
        let writer = {
            let cell = Arc::clone(&cell);
            thread::spawn(move || {
                put(&cell, "k", "1");
            })
        };
        let ender = {
            let cell = Arc::clone(&cell);
            thread::spawn(move || {
                cell.end_all(&KvError::WatchError("interrupted".to_string()));
            })
        };
        let mut ended = false;
        for _ in 0..3 {
            match cell.take(slot, 4) {
                Taken::Ended(error) => {
                    assert_eq!(error, KvError::WatchError("interrupted".to_string()));
                    ended = true;
                }
                Taken::Entries(entries) => {
                    assert!(
                        !ended || entries.is_empty(),
                        "W7: an entry was taken after the end was observed"
                    );
                }
                Taken::Paused => panic!("nothing pauses this bucket"),
            }
        }
        writer.join().expect("writer");
        ender.join().expect("ender");
        assert!(matches!(cell.take(slot, 4), Taken::Ended(_)));
    });
}
