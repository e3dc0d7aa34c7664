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
    /// A restore started applying (`restoring`, info).
    pub restores: u64,
    /// A repair was refused (`repair refused`, error).
    pub repair_refusals: u64,
    /// Loud events about expiry and repair: warnings and errors of `kvfold::repair`,
    /// `repair refused` of `kvfold::fold`.
    pub loud: u64,
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

thread_local! {
    /// One counting subscriber per test thread, installed for the thread's life:
    /// registering a new dispatcher per run would make `tracing` rebuild its
    /// callsite interest while other test threads emit, and lose events.
    pub static COUNTER: Counter = {
        let counter = Counter::default();
        std::mem::forget(tracing::subscriber::set_default(counter.clone()));
        counter
    };
}

/// The counts on this thread (the runtime thread of a simulation run).
pub fn current() -> Counts {
    COUNTER.with(Counter::snapshot)
}

#[derive(Default)]
struct Message {
    text: String,
}

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "message" {
            self.text = format!("{value:?}");
        }
    }
}

impl Subscriber for Counter {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event()
            && *metadata.level() <= Level::INFO
            && metadata.target().starts_with("kvfold")
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut message = Message::default();
        event.record(&mut message);
        let target = event.metadata().target();
        let level = *event.metadata().level();
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        // Loud about an expiry or a repair: the repair target's warnings and errors
        // (expired cursors, re-lists, refusals) and the fold's refused repairs. Other
        // errors (a watch that ended, a fail-stop) do not speak for a loss.
        if (level <= Level::WARN && target == "kvfold::repair")
            || (target == "kvfold::fold" && message.text.contains("repair refused"))
        {
            counts.loud += 1;
        }
        if target == "kvfold::fold" && message.text == "restoring" {
            counts.restores += 1;
        } else if target == "kvfold::fold" && message.text.contains("repair refused") {
            counts.repair_refusals += 1;
        }
        if level == Level::INFO {
            return;
        }
        if target == "kvfold::repair" && message.text.contains("re-listing") {
            counts.relists += 1;
        } else if target.starts_with("kvfold::memory") && message.text.contains("cursor expired") {
            counts.guard_expiries += 1;
        } else if target == "kvfold::repair" && message.text.contains("by a relist") {
            counts.relists_planned += 1;
        } else if target == "kvfold::fold" && message.text.contains("stale keys found") {
            counts.stale_key_repairs += 1;
        } else if target == "kvfold::fold" && message.text.contains("cursor moved back") {
            counts.cursor_moved_back += 1;
        }
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}
