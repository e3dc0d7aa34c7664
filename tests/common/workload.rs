//! The batch workload of the file-system fault suites (`fault_fs_snapshot.rs`,
//! `fault_fs_artifact.rs`): numbered batches over a few shared keys, the model
//! state after them, and a store's state in the same shape.
#![allow(dead_code)]

use std::collections::BTreeMap;

use kvfold::{AppendLogSnapshot, KvUpdate, SnapshotStore, VersionToken, WatchCursor};

use super::updates::{delete, put_value};

/// Updates per batch; batch `i` (1-based) has revisions `3i-2 ..= 3i`.
pub const PER_BATCH: u64 = 3;

/// Batch `i`: overwrites and deletes over a few shared keys (so compaction has
/// something to squeeze), plus the key `u<i>` that only this batch writes,
/// with a value of `unique_len` bytes.
pub fn batch_with(i: u64, unique_len: usize) -> Vec<KvUpdate> {
    let r = PER_BATCH * i;
    let shared = |j: u64| format!("k{}", j % 5);
    let second = if i.is_multiple_of(3) {
        delete(&shared(i + 2), r - 1)
    } else {
        put_value(&shared(i + 1), b"x", r - 1)
    };
    vec![
        put_value(&shared(i), &vec![i as u8; (i % 4 * 24) as usize], r - 2),
        second,
        put_value(&format!("u{i}"), &vec![b'v'; unique_len], r),
    ]
}

/// The cursor after batch `i`.
pub fn cursor_of(i: u64) -> WatchCursor {
    WatchCursor::from_u64(PER_BATCH * i)
}

/// key → (value, version).
pub type Model = BTreeMap<String, (Vec<u8>, VersionToken)>;

/// Applies `updates` to `model`.
pub fn fold(model: &mut Model, updates: &[KvUpdate]) {
    for u in updates {
        match u {
            KvUpdate::Put(e) => {
                model.insert(e.key.clone(), (e.value.clone(), e.version.clone()));
            }
            KvUpdate::Delete { key, .. } | KvUpdate::Purge { key, .. } => {
                model.remove(key);
            }
        }
    }
}

/// The model after batches `1..=batches` of `batch`.
pub fn model_after(batches: u64, batch: impl Fn(u64) -> Vec<KvUpdate>) -> Model {
    let mut model = Model::new();
    for i in 1..=batches {
        fold(&mut model, &batch(i));
    }
    model
}

/// Everything `store` holds, as a [`Model`].
pub fn state_of(store: &AppendLogSnapshot) -> Model {
    store
        .range("")
        .expect("range")
        .into_iter()
        .map(|e| (e.key, (e.value, e.version)))
        .collect()
}

/// The faults a file-system call of `kind` is injected with: EIO and ENOSPC,
/// and a short write for writes.
#[cfg(feature = "failpoints")]
pub fn faults_of(
    kind: kvfold::snapshot::fs_faults::OpKind,
) -> &'static [kvfold::snapshot::fs_faults::Fault] {
    use kvfold::snapshot::fs_faults::{Fault, OpKind};
    if kind == OpKind::Write {
        &[Fault::Eio, Fault::Enospc, Fault::ShortWrite]
    } else {
        &[Fault::Eio, Fault::Enospc]
    }
}
