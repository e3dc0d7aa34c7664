//! A scripted `KvWatcher`: the test feeds it updates, ends and panics one at
//! a time through a [`Feed`]; it records each watch call and counts how many
//! of its watch futures are alive.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kvfold::{KvError, KvUpdate, KvWatcher, WatchCursor};
use tokio::sync::mpsc;
use tokio::sync::mpsc::Sender;

pub enum Step {
    Update(KvUpdate),
    End(Result<(), KvError>),
    Panic(&'static str),
}

pub struct Scripted {
    steps: Mutex<Option<mpsc::UnboundedReceiver<Step>>>,
    calls: Mutex<Vec<String>>,
    live: Arc<AtomicUsize>,
}

/// The test's end of a scripted watcher. Dropping it does not end the watch:
/// once the steps run out the watch waits forever.
pub struct Feed(mpsc::UnboundedSender<Step>);

impl Feed {
    pub fn send(&self, update: KvUpdate) {
        self.0.send(Step::Update(update)).unwrap();
    }

    pub fn all(&self, updates: impl IntoIterator<Item = KvUpdate>) {
        for u in updates {
            self.send(u);
        }
    }

    pub fn end(&self, result: Result<(), KvError>) {
        self.0.send(Step::End(result)).unwrap();
    }

    pub fn panic(&self, message: &'static str) {
        self.0.send(Step::Panic(message)).unwrap();
    }
}

/// Decrements the live count when the watch future holding it is dropped.
struct Alive(Arc<AtomicUsize>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Scripted {
    pub fn new() -> (Arc<Scripted>, Feed) {
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = Arc::new(Scripted {
            steps: Mutex::new(Some(rx)),
            calls: Mutex::new(Vec::new()),
            live: Arc::new(AtomicUsize::new(0)),
        });
        (watcher, Feed(tx))
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    async fn serve(&self, call: String, tx: Sender<KvUpdate>) -> Result<(), KvError> {
        self.calls.lock().unwrap().push(call);
        self.live.fetch_add(1, Ordering::SeqCst);
        let _alive = Alive(Arc::clone(&self.live));
        let steps = self.steps.lock().unwrap().take();
        let Some(mut steps) = steps else {
            return std::future::pending().await;
        };
        loop {
            match steps.recv().await {
                Some(Step::Update(update)) => {
                    if tx.send(update).await.is_err() {
                        return Ok(());
                    }
                }
                Some(Step::End(result)) => return result,
                Some(Step::Panic(message)) => panic!("{message}"),
                None => return std::future::pending().await,
            }
        }
    }
}

#[async_trait]
impl KvWatcher for Scripted {
    async fn watch_all(&self, tx: Sender<KvUpdate>) -> Result<(), KvError> {
        self.serve("all".into(), tx).await
    }

    async fn watch_prefix(&self, prefix: &str, tx: Sender<KvUpdate>) -> Result<(), KvError> {
        self.serve(format!("prefix {prefix:?}"), tx).await
    }

    async fn watch_prefixes(&self, prefixes: &[&str], tx: Sender<KvUpdate>) -> Result<(), KvError> {
        if prefixes.is_empty() {
            // The trait contract: an empty list returns at once.
            self.calls.lock().unwrap().push("prefixes []".into());
            return Ok(());
        }
        self.serve(format!("prefixes {prefixes:?}"), tx).await
    }

    async fn watch_all_from(
        &self,
        cursor: &WatchCursor,
        tx: Sender<KvUpdate>,
    ) -> Result<(), KvError> {
        self.serve(format!("all from {}", cursor.rank()), tx).await
    }

    async fn watch_prefix_from(
        &self,
        prefix: &str,
        cursor: &WatchCursor,
        tx: Sender<KvUpdate>,
    ) -> Result<(), KvError> {
        self.serve(format!("prefix {prefix:?} from {}", cursor.rank()), tx)
            .await
    }

    async fn watch_prefixes_from(
        &self,
        prefixes: &[&str],
        cursor: &WatchCursor,
        tx: Sender<KvUpdate>,
    ) -> Result<(), KvError> {
        if prefixes.is_empty() {
            self.calls
                .lock()
                .unwrap()
                .push(format!("prefixes [] from {}", cursor.rank()));
            return Ok(());
        }
        self.serve(format!("prefixes {prefixes:?} from {}", cursor.rank()), tx)
            .await
    }

    fn bucket_name(&self) -> Option<&str> {
        Some("scripted")
    }
}
