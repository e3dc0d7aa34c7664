//! Every artifact exported mid-run must resume to the truth: import it into a
//! fresh replica, run the real `watch_applied` (the closing variant) from the
//! manifest cursor over the same bucket until it caught up, then reopen the
//! replica's file and compare it with the truth.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvfold::{
    AppendLogSnapshot, ExpiryRepair, ExportManifest, KvUpdate, WatchCursor, watch_applied,
};
use tokio::sync::watch;

use super::board::{Check, Item, lock};
use super::compare::{check_domain, check_fold, domain_of};
use super::store::{SimStore, fold_of};
use super::world::World;

const ROUNDS: usize = 2_000;

impl World {
    pub async fn verify_artifacts(&mut self) {
        let artifacts = std::mem::take(&mut self.artifacts);
        for (k, (dir, manifest)) in artifacts.iter().enumerate() {
            self.verify_artifact(k, dir, manifest).await;
        }
    }

    async fn verify_artifact(&mut self, k: usize, dir: &Path, manifest: &ExportManifest) {
        let what = format!("replica of the artifact at {}", manifest.cursor.rank());
        let path = self.dir.path().join(format!("replica-{k}.snap"));
        let (cursor, inner) =
            match AppendLogSnapshot::import(dir, &path, self.shape.compact_threshold) {
                Ok(opened) => opened,
                Err(e) => {
                    lock(&self.board)
                        .violate(Check::Artifact, format!("{what}: import failed: {e}"));
                    return;
                }
            };
        let id = {
            let mut b = lock(&self.board);
            if cursor != manifest.cursor {
                let text = format!(
                    "{what}: imported cursor {} != manifest {}",
                    cursor.rank(),
                    manifest.cursor.rank()
                );
                b.violate(Check::Artifact, text);
            }
            let id = b.add_node(cursor.clone());
            b.nodes[id].domain = domain_of(&fold_of(&inner));
            b.begin_run(id);
            id
        };
        let store = SimStore::new(inner, &path, id, Arc::clone(&self.board), self.s.seed);
        let (b_parse, b_apply, b_applied) = (
            Arc::clone(&self.board),
            Arc::clone(&self.board),
            Arc::clone(&self.board),
        );
        let (shutdown, shutdown_rx) = watch::channel(false);
        let run = tokio::spawn(watch_applied(
            Arc::clone(&self.spare_watcher),
            self.shape.scope.clone(),
            Some(cursor),
            if self.s.repair == super::scenario::Repair::Relist {
                ExpiryRepair::Relist(Arc::clone(&self.spare_reader))
            } else {
                ExpiryRepair::<SimStore>::None
            },
            Some(store),
            None,
            self.config(),
            move |u: &KvUpdate| lock(&b_parse).parse(id, u),
            move |items: Vec<Item>| lock(&b_apply).apply(id, items),
            move |c: WatchCursor| lock(&b_applied).on_applied(id, c),
            shutdown_rx,
        ));
        let target = {
            let b = lock(&self.board);
            b.truth.target(&b.prefixes)
        };
        for _ in 0..ROUNDS {
            tokio::time::sleep(Duration::from_millis(self.shape.window_ms + 2)).await;
            if run.is_finished() || lock(&self.board).nodes[id].committed.rank() >= target {
                break;
            }
        }
        let _ = shutdown.send(true);
        match run.await {
            Ok(Ok(c)) if c.rank() >= target => {}
            other => {
                let text = format!(
                    "{what}: the replica run ended with {other:?}, the bucket is at {target}"
                );
                lock(&self.board).violate(Check::Liveness, text);
            }
        }
        // `watch_applied` closes the store on its own thread (with a bounded wait
        // that a paused clock may cut short): wait for the close itself.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !lock(&self.board).nodes[id].closed {
            if Instant::now() > deadline {
                lock(&self.board).violate(
                    Check::Liveness,
                    format!("{what}: the store was never closed"),
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        match AppendLogSnapshot::open(&path, self.shape.compact_threshold) {
            Ok((_, reopened)) => {
                let fold = fold_of(&reopened);
                let domain = lock(&self.board).nodes[id].domain.clone();
                check_fold(&self.board, &what, &fold, &self.foreign);
                check_domain(&self.board, &what, &domain, &fold);
                lock(&self.board).stats.replicas_verified += 1;
            }
            Err(e) => {
                lock(&self.board).violate(Check::Artifact, format!("{what}: reopen failed: {e}"))
            }
        }
    }
}
