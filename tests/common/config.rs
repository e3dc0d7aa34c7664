//! `StoreConfig` builders.
#![allow(dead_code)]

use kvfold::StoreConfig;

/// A bucket `name` keeping `history` revisions a key, with no byte limit.
pub fn bucket(name: &str, history: u32) -> StoreConfig {
    StoreConfig {
        name: name.to_string(),
        max_history: Some(history),
        max_bytes: Some(-1),
        ..StoreConfig::default()
    }
}

/// [`bucket`] with `replicas` replicas.
pub fn replicated(name: &str, history: u32, replicas: usize) -> StoreConfig {
    StoreConfig {
        num_replicas: Some(replicas),
        ..bucket(name, history)
    }
}
