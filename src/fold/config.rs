//! Plain configuration types of the fold: the watch scope and the batching policy.
//! No behaviour: the machine (`protocol::fold`) reads them.

use std::time::Duration;

/// What to watch: every key, every key under a prefix, or the union of several prefixes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WatchScope {
    /// Every key (`watch_all` / `watch_all_from`).
    All,
    /// Keys starting with this prefix (`watch_prefix` / `watch_prefix_from`).
    Prefix(String),
    /// The union of these prefixes, on one subscription (`watch_prefixes` / `watch_prefixes_from`).
    Prefixes(Vec<String>),
}

impl WatchScope {
    /// The prefix list repairs diff against and exports record as the artifact scope:
    /// `[""]` for `All`.
    pub fn prefixes(&self) -> Vec<String> {
        match self {
            WatchScope::All => vec![String::new()],
            WatchScope::Prefix(p) => vec![p.clone()],
            WatchScope::Prefixes(ps) => ps.clone(),
        }
    }
}

/// Batching policy for `watch_applied`.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Longest time a batch stays open, from its first update; 0 flushes at the next loop turn.
    pub window: Duration,
    /// Flush as soon as the parsed or the raw batch holds this many updates; 0 = after every update.
    pub max: usize,
    /// Capacity of the watch-task → loop channel (clamped to at least 1).
    pub channel_capacity: usize,
}

impl Default for BatchConfig {
    /// Window 10 ms, max 100, channel capacity 256.
    fn default() -> Self {
        Self {
            window: Duration::from_millis(10),
            max: 100,
            channel_capacity: 256,
        }
    }
}
