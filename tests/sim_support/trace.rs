//! A minimal `tracing` subscriber that counts the executor's warnings the
//! simulation reports on (re-lists after an expired cursor, cursor regressions).
//! Installed per simulation thread with `set_default`; a current-thread runtime
//! keeps every task of the run on that thread.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// The fold's watch task fell back to a full state-sync watch (ExpiryRepair::None).
    pub relists: u64,
    /// The memory backend's resume guard expired a cursor.
    pub guard_expiries: u64,
    /// The fold machine reported `CursorMovedBack`.
    pub cursor_moved_back: u64,
    /// A relist repair found stale keys (`StaleKeys`, more than none).
    pub stale_key_repairs: u64,
    /// The repair machine planned a relist after an expired cursor.
    pub relists_planned: u64,
}

#[derive(Clone, Default)]
pub struct Counter {
    pub counts: Arc<Mutex<Counts>>,
}

impl Counter {
    pub fn snapshot(&self) -> Counts {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Counter {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event()
            && *metadata.level() <= Level::WARN
            && metadata.target().starts_with("kvfold")
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let target = event.metadata().target();
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if target == "kvfold::repair" && message.0.contains("re-listing") {
            counts.relists += 1;
        } else if target.starts_with("kvfold::memory") && message.0.contains("cursor expired") {
            counts.guard_expiries += 1;
        } else if target == "kvfold::repair" && message.0.contains("by a relist") {
            counts.relists_planned += 1;
        } else if target == "kvfold::fold" && message.0.contains("stale keys found") {
            counts.stale_key_repairs += 1;
        } else if target == "kvfold::fold" && message.0.contains("cursor moved back") {
            counts.cursor_moved_back += 1;
        }
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}
