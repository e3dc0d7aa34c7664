//! `TestStore`: an in-memory `SnapshotStore` with injectable failures that
//! records each commit.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use kvfold::{ExportManifest, KvEntry, KvUpdate, SnapshotError, SnapshotStore, WatchCursor};

/// A list shared between a run's closures (or a store) and the test.
pub type Shared<T> = Arc<Mutex<Vec<T>>>;

/// One store commit: the keys of its batch and its cursor's rank.
pub type Commit = (Vec<String>, u64);

#[derive(Default, Clone, Copy, PartialEq, Eq)]
pub enum ExportMode {
    #[default]
    Refuse,
    Panic,
}

/// Failure injection shared between the test and a `TestStore`.
#[derive(Default)]
pub struct Ctl {
    /// Fail this many next applies.
    pub fail_next: u32,
    /// `Some(n)`: succeed `n` more times, then fail every apply.
    pub ok_budget: Option<usize>,
    pub export: ExportMode,
    pub has_entries_fails: bool,
    /// Panic in the next apply.
    pub panic_next: bool,
    /// The next apply blocks until this receiver gets a message (or its sender drops).
    pub hold_next: Option<std::sync::mpsc::Receiver<()>>,
}

/// An in-memory `SnapshotStore` that records each commit as (keys, cursor rank).
#[derive(Default)]
pub struct TestStore {
    pub entries: BTreeMap<String, KvEntry>,
    pub cursor: WatchCursor,
    pub ctl: Arc<Mutex<Ctl>>,
    pub commits: Shared<Commit>,
}

impl TestStore {
    pub fn at(rank: u64) -> Self {
        TestStore {
            cursor: WatchCursor::from_u64(rank),
            ..TestStore::default()
        }
    }

    pub fn commits(&self) -> Shared<Commit> {
        Arc::clone(&self.commits)
    }
}

impl SnapshotStore for TestStore {
    fn load(_path: &Path) -> Result<(WatchCursor, Self), SnapshotError> {
        Ok((WatchCursor::none(), TestStore::default()))
    }

    fn apply(&mut self, batch: &[KvUpdate], cursor: &WatchCursor) -> Result<(), SnapshotError> {
        let hold = self.ctl.lock().unwrap().hold_next.take();
        if let Some(release) = hold {
            let _ = release.recv();
        }
        let panic_now = std::mem::take(&mut self.ctl.lock().unwrap().panic_next);
        if panic_now {
            panic!("store exploded");
        }
        {
            let mut ctl = self.ctl.lock().unwrap();
            if ctl.fail_next > 0 {
                ctl.fail_next -= 1;
                return Err(SnapshotError::Backend("injected failure".into()));
            }
            match &mut ctl.ok_budget {
                Some(0) => return Err(SnapshotError::Backend("injected lasting failure".into())),
                Some(n) => *n -= 1,
                None => {}
            }
        }
        for update in batch {
            match update {
                KvUpdate::Put(e) => {
                    self.entries.insert(e.key.clone(), e.clone());
                }
                KvUpdate::Delete { key, .. } | KvUpdate::Purge { key, .. } => {
                    self.entries.remove(key);
                }
            }
        }
        self.cursor = cursor.clone();
        self.commits.lock().unwrap().push((
            batch.iter().map(|u| u.key().to_string()).collect(),
            cursor.rank(),
        ));
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<KvEntry>, SnapshotError> {
        Ok(self.entries.get(key).cloned())
    }

    fn range(&self, prefix: &str) -> Result<Vec<KvEntry>, SnapshotError> {
        Ok(self
            .entries
            .values()
            .filter(|e| e.key.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn has_entries(&self) -> Result<bool, SnapshotError> {
        if self.ctl.lock().unwrap().has_entries_fails {
            return Err(SnapshotError::Backend(
                "injected has_entries failure".into(),
            ));
        }
        Ok(!self.entries.is_empty())
    }

    fn cursor(&self) -> WatchCursor {
        self.cursor.clone()
    }

    fn export_to(&mut self, dest_dir: &Path) -> Result<ExportManifest, SnapshotError> {
        match self.ctl.lock().unwrap().export {
            ExportMode::Refuse => Err(SnapshotError::Backend(format!(
                "test store cannot export to {}",
                dest_dir.display()
            ))),
            ExportMode::Panic => panic!("export exploded"),
        }
    }
}
