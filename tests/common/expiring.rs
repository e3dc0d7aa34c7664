//! A scripted `KvWatcher` for the cursor-expiry paths: its resumed watch
//! forwards some updates and then reports `CursorExpired`, its state-sync watch
//! delivers a listing, and its status readings come from a script.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use kvfold::{BucketStatus, KvError, KvUpdate, KvWatcher, Retention, WatchCursor};
use tokio::sync::mpsc::Sender;

pub const CREATED_MS: u64 = 1_767_225_600_000;

pub fn status(created_ms: u64, first: u64, last: u64) -> BucketStatus {
    BucketStatus::new(
        "cfg",
        first,
        last,
        created_ms,
        Retention {
            evicts_current_values: false,
            first_revision: first,
        },
    )
}

/// A bucket whose resumed watch forwards `before` and then reports the cursor
/// expired, whose state-sync watch delivers `listing`, and whose status readings
/// are `statuses` in turn (the last one repeats). Counts its watch calls.
pub struct Expiring {
    before: Vec<KvUpdate>,
    listing: Vec<KvUpdate>,
    statuses: Mutex<VecDeque<BucketStatus>>,
    pub watches: AtomicUsize,
}

impl Expiring {
    pub fn new(before: Vec<KvUpdate>, listing: Vec<KvUpdate>, statuses: Vec<BucketStatus>) -> Self {
        Self {
            before,
            listing,
            statuses: Mutex::new(statuses.into()),
            watches: AtomicUsize::new(0),
        }
    }
}

async fn send_all(updates: &[KvUpdate], tx: &Sender<KvUpdate>) -> bool {
    for update in updates {
        if tx.send(update.clone()).await.is_err() {
            return false;
        }
    }
    true
}

#[async_trait]
impl KvWatcher for Expiring {
    async fn watch_all(&self, tx: Sender<KvUpdate>) -> Result<(), KvError> {
        self.watches.fetch_add(1, Ordering::SeqCst);
        send_all(&self.listing, &tx).await;
        Ok(())
    }

    async fn watch_prefix(&self, _p: &str, tx: Sender<KvUpdate>) -> Result<(), KvError> {
        self.watch_all(tx).await
    }

    async fn watch_prefixes(&self, _p: &[&str], tx: Sender<KvUpdate>) -> Result<(), KvError> {
        self.watch_all(tx).await
    }

    async fn watch_all_from(
        &self,
        _cursor: &WatchCursor,
        tx: Sender<KvUpdate>,
    ) -> Result<(), KvError> {
        self.watches.fetch_add(1, Ordering::SeqCst);
        if send_all(&self.before, &tx).await {
            Err(KvError::CursorExpired)
        } else {
            Ok(())
        }
    }

    fn bucket_name(&self) -> Option<&str> {
        Some("cfg")
    }

    async fn status(&self) -> Result<Option<BucketStatus>, KvError> {
        let mut statuses = self.statuses.lock().unwrap();
        let next = if statuses.len() > 1 {
            statuses.pop_front()
        } else {
            statuses.front().cloned()
        };
        Ok(next)
    }
}
