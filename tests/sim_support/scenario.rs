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
    /// How the main node repairs an expired cursor.
    pub repair: Repair,
}

/// The main node's `ExpiryRepair`. `Restore` and `Auto` also change the world: the
/// bucket evicts current values (age limit on the manual clock, sometimes a byte limit
/// with discard old) and an exporter node publishes artifacts the main node restores
/// from (`sim_support/restore.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Repair {
    #[default]
    None,
    Relist,
    Restore,
    Auto,
}

impl Repair {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "none" => Repair::None,
            "relist" => Repair::Relist,
            "restore" => Repair::Restore,
            "auto" => Repair::Auto,
            _ => return None,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            Repair::None => "none",
            Repair::Relist => "relist",
            Repair::Restore => "restore",
            Repair::Auto => "auto",
        }
    }

    /// The world evicts current values and restores from artifacts.
    pub fn restores(self) -> bool {
        matches!(self, Repair::Restore | Repair::Auto)
    }
}

impl Scenario {
    pub fn new(seed: u64, batch_max: usize, steps: usize) -> Self {
        Self {
            seed,
            batch_max,
            plan: BTreeMap::new(),
            mutation: Mutation::None,
            steps,
            repair: Repair::None,
        }
    }

    #[must_use]
    pub fn with_relist(self) -> Self {
        self.with_repair(Repair::Relist)
    }

    #[must_use]
    pub fn with_repair(mut self, repair: Repair) -> Self {
        self.repair = repair;
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
            "KVFOLD_SIM_SEED={:#x} KVFOLD_SIM_MAX={} KVFOLD_SIM_STEPS={} KVFOLD_SIM_PLAN={} KVFOLD_SIM_MUTATION={:?} KVFOLD_SIM_REPAIR={} \
             cargo test --test sim_fold replay_one_seed -- --nocapture",
            self.seed,
            self.batch_max,
            self.steps,
            plan_label(&self.plan),
            self.mutation,
            self.repair.label()
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
    /// Bucket age limit on the manual clock (restore worlds only).
    pub max_age_ms: Option<u64>,
    /// Bucket byte limit with discard old (some restore worlds).
    pub max_bytes: Option<i64>,
}

/// The age limit of a restore world's bucket (manual clock).
pub const MAX_AGE_MS: u64 = 60_000;

impl Shape {
    /// The world `s` runs in: [`Shape::of`] its seed; a restore world keeps one
    /// revision per key and evicts current values by age, sometimes by size too.
    pub fn for_scenario(s: &Scenario) -> Self {
        let mut shape = Self::of(s.seed);
        if s.repair.restores() {
            let mut rng = Rng::derived(s.seed, 3);
            shape.max_history = 1;
            shape.max_age_ms = Some(MAX_AGE_MS);
            // About 9 messages of `$KV.sim.a/0` with a short value.
            shape.max_bytes = rng.chance(50).then_some(9 * 46);
        }
        shape
    }

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
            max_age_ms: None,
            max_bytes: None,
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
