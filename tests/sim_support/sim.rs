//! Running scenarios: one fresh current-thread runtime on a paused clock per run,
//! a thread-local tracing counter, the panic hook that keeps simulated process
//! deaths quiet, and the campaign that enumerates every crash point of a seed.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use super::board::{Board, Check, Stats, Violation, lock};
use super::rng::Rng;
use super::scenario::{Scenario, Shape};
use super::store::{Fault, SimCrash, plan_label};
use super::trace::{COUNTER, Counter};
use super::world::World;

/// A clean run's results.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub stats: Stats,
    /// Store-apply calls of the node under test (the crash points of this schedule).
    pub calls: u64,
    pub trace: Vec<String>,
}

/// A failed run: everything needed to understand and replay it.
#[derive(Debug)]
pub struct Failure {
    pub scenario: Scenario,
    pub shape: Shape,
    pub violations: Vec<Violation>,
    pub trace: Vec<String>,
}

impl Failure {
    pub fn checks(&self) -> Vec<Check> {
        let mut checks: Vec<Check> = self.violations.iter().map(|v| v.check).collect();
        checks.sort();
        checks.dedup();
        checks
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.scenario;
        writeln!(
            f,
            "kvfold simulation FAILED: seed {:#x}, batch max {}, steps {}, store faults [{}], mutation {:?}",
            s.seed,
            s.batch_max,
            s.steps,
            plan_label(&s.plan),
            s.mutation
        )?;
        writeln!(f, "world: {:?}", self.shape)?;
        writeln!(f, "violations ({}):", self.violations.len())?;
        for v in self.violations.iter().take(20) {
            writeln!(f, "  {v}")?;
        }
        writeln!(f, "trace (schedule `--`, store calls, violations):")?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        writeln!(f, "replay: {}", s.replay_line())
    }
}

fn quiet_simulated_crashes() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<SimCrash>().is_none() {
                previous(info);
            }
        }));
    });
}

/// Runs one scenario to the end and checks everything.
pub fn simulate(s: &Scenario) -> Result<Outcome, Box<Failure>> {
    quiet_simulated_crashes();
    let before = COUNTER.with(Counter::snapshot);
    let board = Arc::new(Mutex::new(Board::default()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut world = World::new(s, Arc::clone(&board)).await;
        let played = tokio::time::timeout(Duration::from_secs(24 * 3600), async {
            world.play().await;
            world.converge().await;
            world.verify_artifacts().await;
        })
        .await;
        if played.is_err() {
            lock(&board).violate(
                Check::Liveness,
                "the simulation did not finish within a virtual day",
            );
        }
    });
    drop(runtime);
    let mut b = lock(&board);
    let after = COUNTER.with(Counter::snapshot);
    b.stats.relists += after.relists - before.relists;
    b.stats.guard_expiries += after.guard_expiries - before.guard_expiries;
    b.stats.stale_key_repairs += after.stale_key_repairs - before.stale_key_repairs;
    b.stats.relists_planned += after.relists_planned - before.relists_planned;
    b.stats.cursor_moved_back += after.cursor_moved_back - before.cursor_moved_back;
    b.stats.restores += after.restores - before.restores;
    b.stats.repair_refusals += after.repair_refusals - before.repair_refusals;
    b.stats.runs += 1;
    if b.violations.is_empty() {
        Ok(Outcome {
            stats: b.stats.clone(),
            calls: b.nodes.first().map_or(0, |n| n.calls),
            trace: std::mem::take(&mut b.trace),
        })
    } else {
        Err(Box::new(Failure {
            scenario: s.clone(),
            shape: Shape::for_scenario(s),
            violations: std::mem::take(&mut b.violations),
            trace: std::mem::take(&mut b.trace),
        }))
    }
}

/// Which scenarios a campaign runs for one seed and batch size.
#[derive(Debug, Clone, Copy)]
pub struct Depth {
    pub steps: usize,
    /// Random pairs of store faults after the single-fault sweep.
    pub pairs: usize,
    /// Single transient failures and bursts.
    pub transients: usize,
}

/// Results of a campaign.
#[derive(Debug, Default)]
pub struct Campaign {
    pub stats: Stats,
    pub failures: Vec<Failure>,
    pub crash_points: u64,
}

impl Campaign {
    fn record(&mut self, result: Result<Outcome, Box<Failure>>) -> Option<Outcome> {
        match result {
            Ok(o) => {
                self.stats.add(&o.stats);
                Some(o)
            }
            Err(f) => {
                self.stats.runs += 1;
                self.failures.push(*f);
                None
            }
        }
    }

    pub fn merge(&mut self, other: Campaign) {
        self.stats.add(&other.stats);
        self.failures.extend(other.failures);
        self.crash_points += other.crash_points;
    }
}

/// The fault-free run, then a crash before / after / torn at every single store
/// call it made, then single transient failures and bursts, then random pairs.
pub fn campaign(seed: u64, batch_max: usize, depth: Depth) -> Campaign {
    campaign_with(Scenario::new(seed, batch_max, depth.steps), depth)
}

/// [`campaign`] around `base` (its seed, batch size, steps and repair mode).
pub fn campaign_with(base: Scenario, depth: Depth) -> Campaign {
    let (seed, batch_max) = (base.seed, base.batch_max);
    let mut out = Campaign::default();
    let Some(baseline) = out.record(simulate(&base)) else {
        return out;
    };
    let calls = baseline.calls;
    for call in 0..calls {
        for fault in [Fault::CrashBefore, Fault::CrashAfter, Fault::Torn] {
            out.crash_points += 1;
            let plan = BTreeMap::from([(call, fault)]);
            out.record(simulate(&base.clone().with_plan(plan)));
        }
    }
    let mut rng = Rng::derived(seed, 2 + batch_max as u64);
    let span = calls + 2;
    for _ in 0..depth.transients {
        let at = rng.below(span);
        let fault = if rng.chance(50) {
            Fault::Transient
        } else {
            Fault::Burst(u32::try_from(rng.between(2, 40)).expect("small"))
        };
        out.record(simulate(
            &base.clone().with_plan(BTreeMap::from([(at, fault)])),
        ));
    }
    let kinds = [
        Fault::Transient,
        Fault::CrashBefore,
        Fault::CrashAfter,
        Fault::Torn,
    ];
    for _ in 0..depth.pairs {
        let first = rng.below(span);
        let second = first + 1 + rng.below(span);
        let plan = BTreeMap::from([(first, rng.pick(&kinds)), (second, rng.pick(&kinds))]);
        out.record(simulate(&base.clone().with_plan(plan)));
    }
    out
}
