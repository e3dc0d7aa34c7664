//! What one simulation run is: a seed, a batch size, a store fault plan and an
//! optional mutation; and the world shape the seed picks (scope, window, channel,
//! history, watch queue, compaction threshold).

use std::collections::BTreeMap;

use kvfold::WatchScope;

use super::rng::Rng;
use super::store::{Fault, Mutation, plan_label};

#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    /// `BatchConfig::max`.
    pub batch_max: usize,
    /// Store fault by store-apply call index (counted across restarts).
    pub plan: BTreeMap<u64, Fault>,
    pub mutation: Mutation,
    /// Schedule steps before the final catch-up.
    pub steps: usize,
    /// The main node runs with `ExpiryRepair::Relist` instead of `None`.
    pub relist: bool,
}

impl Scenario {
    pub fn new(seed: u64, batch_max: usize, steps: usize) -> Self {
        Self {
            seed,
            batch_max,
            plan: BTreeMap::new(),
            mutation: Mutation::None,
            steps,
            relist: false,
        }
    }

    #[must_use]
    pub fn with_relist(mut self) -> Self {
        self.relist = true;
        self
    }

    #[must_use]
    pub fn with_plan(mut self, plan: BTreeMap<u64, Fault>) -> Self {
        self.plan = plan;
        self
    }

    #[must_use]
    pub fn with_mutation(mut self, mutation: Mutation) -> Self {
        self.mutation = mutation;
        self
    }

    /// The environment that replays this run.
    pub fn replay_line(&self) -> String {
        format!(
            "KVFOLD_SIM_SEED={:#x} KVFOLD_SIM_MAX={} KVFOLD_SIM_STEPS={} KVFOLD_SIM_PLAN={} KVFOLD_SIM_MUTATION={:?} KVFOLD_SIM_RELIST={} \
             cargo test --test sim_fold replay_one_seed -- --nocapture",
            self.seed,
            self.batch_max,
            self.steps,
            plan_label(&self.plan),
            self.mutation,
            u8::from(self.relist)
        )
    }
}

/// The world a seed picks.
#[derive(Debug, Clone)]
pub struct Shape {
    pub scope: WatchScope,
    pub window_ms: u64,
    pub channel_capacity: usize,
    pub max_history: u32,
    pub watch_queue_len: usize,
    pub compact_threshold: u64,
}

impl Shape {
    pub fn of(seed: u64) -> Self {
        let mut rng = Rng::derived(seed, 0);
        let scope = match rng.below(3) {
            0 => WatchScope::All,
            1 => WatchScope::Prefix("a/".to_string()),
            _ => WatchScope::Prefixes(vec!["a/".to_string(), "c/".to_string()]),
        };
        Self {
            scope,
            window_ms: rng.pick(&[0, 2, 10]),
            channel_capacity: rng.pick(&[1, 4, 256]),
            max_history: rng.pick(&[1, 1, 4]),
            watch_queue_len: rng.pick(&[2, 8, 1024]),
            compact_threshold: rng.pick(&[600, 10 * 1024 * 1024]),
        }
    }

    pub fn scope_prefixes(&self) -> Vec<String> {
        match &self.scope {
            WatchScope::All => vec![String::new()],
            WatchScope::Prefix(p) => vec![p.clone()],
            WatchScope::Prefixes(ps) => ps.clone(),
        }
    }

    /// Scopes that exclude `b/` get an out-of-scope entry the fold must leave untouched.
    pub fn seeds_foreign(&self) -> bool {
        !matches!(self.scope, WatchScope::All)
    }
}
