//! Deterministic simulation of the `watch_applied` executor (docs/verification.md,
//! "Deterministic simulation", matrix rows 1, 2 and 8).
//!
//! The real `watch_applied_owned` / `watch_applied` run over `MemoryConnection`
//! (manual server clock, paused tokio clock, fault controls) and `SimStore`, a
//! fault-injecting wrapper around `AppendLogSnapshot` (`sim_support/store.rs`).
//! One seed drives every choice: the world shape (scope, batch window, channel
//! capacity, history, watch queue, compaction threshold), the schedule (writes,
//! sleeps, paused delivery, interrupted and refused watches, partitions and
//! reconnects, evictions that expire the cursor and force a re-list, manual clock
//! jumps, exports, in-process restarts, clean reboots and kills) and the
//! torn-write offsets.
//!
//! For each seed and batch size (`max` 1 and 100) a campaign runs the fault-free
//! schedule, then a crash before / after / torn at every single store-apply call
//! it made, then single transient failures and failure bursts (16 in a row
//! fail-stop the run), then random pairs of store faults. A crash is a process
//! death: RAM is dropped, the disk keeps what the crash left, the store is
//! reopened with `AppendLogSnapshot::open` and the fold resumes from its cursor
//! with a domain rebuilt from it. After every run:
//! - the fold (store contents) equals the truth in scope and leaves out-of-scope
//!   entries untouched; the one tolerated difference is `ExpiryRepair::None`'s
//!   (a key deleted while its marker was evicted may keep a value it really had);
//! - the domain state `apply` built equals the fold (up to that same exception);
//! - the store cursor never moves back, across crashes too; a reopen finds
//!   exactly what the crash left on disk; no cursor covers a hole or runs ahead
//!   of `apply`; a failed apply leaves the store's cursor alone;
//! - `apply` never sees a revision regress within one run nor a phantom write;
//! - every artifact exported mid-run, imported into a fresh replica and resumed
//!   from its cursor, converges to the truth.
//!
//! The relist tier (`ci_tier_relist_repairs_every_expiry`) runs the same campaigns
//! with `ExpiryRepair::Relist` on the main node and the artifact replicas: every
//! expired cursor is repaired, no difference is tolerated, synthetic deletes are
//! checked to be in scope and of keys the bucket really deleted, and relists must
//! really have removed stale keys.
//!
//! The restore tiers (`ci_tier_restore_repairs_every_expiry`,
//! `ci_tier_auto_repairs_every_expiry`) run restore worlds (`sim_support/restore.rs`,
//! docs/decisions.md 117–120): the bucket evicts current values by age (manual
//! clock) and by size (discard old), a fault-free exporter node publishes artifacts,
//! and the main node runs `ExpiryRepair::Restore` / `Auto` with `DirRestore` over
//! them, with every crash point of its schedule, restores included. The fold must
//! end equal to the truth except keys whose latest write aged out before the
//! exporter folded it, and only loudly; no store call of a repair may move a key
//! back, delete a value the truth still held, or delete a key live at the listing.
//!
//! A failing run prints its seed, fault plan and full schedule, and the command
//! that replays it (`KVFOLD_SIM_SEED`, see `replay_one_seed`). The CI tier is the
//! five `ci_tier_*` tests; the deep tiers are `deep_tier` and `deep_restore_tier`
//! (`--ignored`). Store files
//! go to `/dev/shm` when it exists (or `KVFOLD_SIM_TMPDIR`): on a disk the
//! fsyncs of compactions, exports and imports make the tiers about 10x slower.

mod sim_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sim_support::board::Check;
use sim_support::scenario::{Repair, Scenario};
use sim_support::sim::{Campaign, Depth, Failure, campaign, campaign_with, simulate};
use sim_support::store::{Fault, Mutation, parse_plan};

/// Seeds of the CI tier (each runs with batch max 1 and 100).
const CI_SEEDS: std::ops::Range<u64> = 0x5EED_0000..0x5EED_0020;
const CI_DEPTH: Depth = Depth {
    steps: 40,
    pairs: 12,
    transients: 6,
};
const DEEP_DEPTH: Depth = Depth {
    steps: 120,
    pairs: 60,
    transients: 20,
};

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn report(name: &str, total: &Campaign, elapsed: Duration) {
    let s = &total.stats;
    println!(
        "{name}: {} runs ({} crash points) in {elapsed:.1?}; store calls {}, commits {}, crashes before/after/torn {}/{}/{}, \
         transient failures {}, fail-stops {}, kills {}, runs ended by CursorExpired {}, watch runs {}, evictions {}, re-lists {}, kept by the None exception {} (domain/fold divergences {}), \
         exports ok/refused {}/{}, replicas verified {}, cursor moved back {}, updates parsed while a store apply ran {}; failures {}",
        s.runs,
        total.crash_points,
        s.store_calls,
        s.commits,
        s.crashes_before,
        s.crashes_after,
        s.crashes_torn,
        s.transient_failures,
        s.fail_stops,
        s.kills,
        s.expired_ends,
        s.watch_runs,
        s.evictions,
        s.relists,
        s.kept_by_expiry,
        s.domain_kept_by_expiry,
        s.exports_ok,
        s.exports_refused,
        s.replicas_verified,
        s.cursor_moved_back,
        s.parsed_in_flight,
        total.failures.len()
    );
}

fn run_tier(
    name: &str,
    seeds: impl IntoIterator<Item = u64>,
    maxes: &[usize],
    depth: Depth,
) -> Campaign {
    let started = Instant::now();
    let mut total = Campaign::default();
    for seed in seeds {
        for &max in maxes {
            total.merge(campaign(seed, max, depth));
        }
    }
    report(name, &total, started.elapsed());
    if let Some(first) = total.failures.first() {
        for f in &total.failures {
            println!("failed: {}", f.scenario.replay_line());
        }
        panic!(
            "{} of {} simulation runs failed; the first:\n{first}",
            total.failures.len(),
            total.stats.runs
        );
    }
    total
}

/// The interesting paths really happen in the CI tier (vacuity witnesses).
fn assert_exercised(total: &Campaign) {
    let s = &total.stats;
    let witnesses = [
        ("torn crashes", s.crashes_torn),
        ("crashes after a commit", s.crashes_after),
        ("kills", s.kills),
        ("fail-stops after 16 failures", s.fail_stops),
        ("re-lists after an expired cursor", s.relists),
        (
            "keys kept by the ExpiryRepair::None exception",
            s.kept_by_expiry,
        ),
        ("refused exports", s.exports_refused),
        ("verified artifact replicas", s.replicas_verified),
        (
            "updates parsed while a store apply ran (store applies in flight)",
            s.parsed_in_flight,
        ),
    ];
    for (what, count) in witnesses {
        assert!(count > 0, "the tier never exercised {what}");
    }
}

#[test]
fn ci_tier_batch_max_1() {
    assert_exercised(&run_tier("CI tier, batch max 1", CI_SEEDS, &[1], CI_DEPTH));
}

#[test]
fn ci_tier_batch_max_100() {
    assert_exercised(&run_tier(
        "CI tier, batch max 100",
        CI_SEEDS,
        &[100],
        CI_DEPTH,
    ));
}

/// With `ExpiryRepair::Relist` every expired cursor is repaired: the fold and the
/// domain equal the truth after every run, crash and fault (the `None` exception is
/// never needed), keys outside the scope stay untouched, and relists really removed
/// stale keys. Under `ExpiryRepair::None` the same seeds need the exception
/// (`ci_tier_batch_max_*` require `kept_by_expiry > 0`), so this tier would fail
/// if the repair did nothing.
#[test]
fn ci_tier_relist_repairs_every_expiry() {
    let started = Instant::now();
    let mut total = Campaign::default();
    for seed in CI_SEEDS.take(12) {
        let base = Scenario::new(seed, 100, CI_DEPTH.steps).with_relist();
        total.merge(campaign_with(base, CI_DEPTH));
    }
    report("CI tier, relist, batch max 100", &total, started.elapsed());
    if let Some(first) = total.failures.first() {
        for f in &total.failures {
            println!("failed: {}", f.scenario.replay_line());
        }
        panic!(
            "{} relist runs failed; the first:\n{first}",
            total.failures.len()
        );
    }
    let s = &total.stats;
    assert!(s.relists_planned > 0, "no expired cursor was ever relisted");
    assert_eq!(
        s.relists, 0,
        "an armed relist never falls back to a bare re-list"
    );
    assert!(
        s.stale_key_repairs > 0,
        "no relist ever removed a stale key"
    );
    assert_eq!(
        s.kept_by_expiry, 0,
        "a fold kept a key the relist should have removed"
    );
    assert_eq!(
        s.domain_kept_by_expiry, 0,
        "a domain kept a key the relist should have removed"
    );
}

/// Seeds of the restore tiers (batch max 1: a restore chunk per key, so a crash
/// point between every two rewrites).
const RESTORE_SEEDS: std::ops::Range<u64> = 3..11;
const RESTORE_DEPTH: Depth = Depth {
    steps: 40,
    pairs: 8,
    transients: 4,
};

fn report_repair(name: &str, total: &Campaign, elapsed: Duration) {
    report(name, total, elapsed);
    let s = &total.stats;
    println!(
        "{name}: restores {}, rewrites {}, synthetic deletes {}, crashes during a repair {}, keys' latest writes evicted {}, \
         lost before the exporter folded them {}, final keys excused as lost (loudly) {}, domains rebuilt {}, runs with a byte limit {}",
        s.restores,
        s.restored_puts,
        s.synthetic_deletes,
        s.repair_crashes,
        s.values_evicted,
        s.lost,
        s.lost_excused,
        s.domain_rebuilt,
        s.byte_limited_runs
    );
}

/// Campaigns of restore worlds with `repair` on the main node.
fn run_restore_tier(
    name: &str,
    repair: Repair,
    seeds: impl IntoIterator<Item = u64>,
    depth: Depth,
) -> Campaign {
    let started = Instant::now();
    let mut total = Campaign::default();
    for seed in seeds {
        let base = Scenario::new(seed, 1, depth.steps).with_repair(repair);
        total.merge(campaign_with(base, depth));
    }
    report_repair(name, &total, started.elapsed());
    if let Some(first) = total.failures.first() {
        for f in &total.failures {
            println!("failed: {}", f.scenario.replay_line());
        }
        panic!(
            "{} {name} runs failed; the first:\n{first}",
            total.failures.len()
        );
    }
    total
}

/// Restore worlds (`ExpiryRepair::Restore`): the bucket evicts current values by age
/// (manual clock) and, in half the worlds, by size with discard old; the main node
/// goes offline while its cursor ages out, and restores from the exporter's
/// artifacts through `DirRestore`, with a crash before / after / torn at every
/// store call of the fault-free schedule, restores included. After every run the
/// fold equals the truth except keys whose latest write aged out before the
/// exporter folded it (and only with an error or repair warning in the run); no
/// store call moved a key back or deleted a value the truth still held or the
/// listing showed live.
#[test]
fn ci_tier_restore_repairs_every_expiry() {
    let total = run_restore_tier(
        "CI tier, restore, batch max 1",
        Repair::Restore,
        RESTORE_SEEDS,
        RESTORE_DEPTH,
    );
    assert_restore_exercised(&total);
}

/// The same worlds with `ExpiryRepair::Auto` (restore once eviction was seen,
/// relist while the listing is the truth).
#[test]
fn ci_tier_auto_repairs_every_expiry() {
    let total = run_restore_tier(
        "CI tier, auto, batch max 1",
        Repair::Auto,
        RESTORE_SEEDS.take(4),
        RESTORE_DEPTH,
    );
    assert!(total.stats.restores > 0, "auto never restored");
}

fn assert_restore_exercised(total: &Campaign) {
    let s = &total.stats;
    let witnesses = [
        ("restores", s.restores),
        ("restore rewrites", s.restored_puts),
        ("restore deletes", s.synthetic_deletes),
        ("crashes during a repair", s.repair_crashes),
        ("current values evicted", s.values_evicted),
        ("byte-limited buckets (discard old)", s.byte_limited_runs),
        ("writes lost before the exporter folded them", s.lost),
        ("final keys excused as lost", s.lost_excused),
        ("torn crashes", s.crashes_torn),
    ];
    for (what, count) in witnesses {
        assert!(count > 0, "the restore tier never exercised {what}");
    }
    assert_eq!(
        s.kept_by_expiry, 0,
        "a restore world tolerated the None exception"
    );
}

/// The deep restore tier: `KVFOLD_SIM_DEEP_RESTORE_SEEDS` seeds (default 48) from
/// `KVFOLD_SIM_DEEP_BASE`, each as a restore and an auto world, batch max 1 and 100.
#[test]
#[ignore = "deep restore tier (~11 min, 48 seeds): cargo test --all-features --test sim_fold deep_restore_tier -- --ignored --nocapture"]
fn deep_restore_tier() {
    let count = env_u64("KVFOLD_SIM_DEEP_RESTORE_SEEDS").unwrap_or(48);
    let base = env_u64("KVFOLD_SIM_DEEP_BASE").unwrap_or(0xDEE9_0000);
    let started = Instant::now();
    let mut total = Campaign::default();
    for i in 0..count {
        for repair in [Repair::Restore, Repair::Auto] {
            for max in [1, 100] {
                let base =
                    Scenario::new(base.wrapping_add(i), max, DEEP_DEPTH.steps).with_repair(repair);
                total.merge(campaign_with(base, DEEP_DEPTH));
            }
        }
    }
    report_repair("deep restore tier", &total, started.elapsed());
    if let Some(first) = total.failures.first() {
        for f in &total.failures {
            println!("failed: {}", f.scenario.replay_line());
        }
        panic!(
            "{} deep restore runs failed; the first:\n{first}",
            total.failures.len()
        );
    }
    assert_restore_exercised(&total);
}

/// The deep tier: `KVFOLD_SIM_DEEP_SEEDS` seeds (default 64) from `KVFOLD_SIM_DEEP_BASE`.
#[test]
#[ignore = "deep tier (~8 min): cargo test --test sim_fold deep_tier -- --ignored --nocapture"]
fn deep_tier() {
    let count = env_u64("KVFOLD_SIM_DEEP_SEEDS").unwrap_or(64);
    let base = env_u64("KVFOLD_SIM_DEEP_BASE").unwrap_or(0xDEE9_0000);
    run_tier(
        "deep tier",
        (0..count).map(|i| base.wrapping_add(i)),
        &[1, 100],
        DEEP_DEPTH,
    );
}

/// Replays one run: `KVFOLD_SIM_SEED` (decimal or 0x-hex), optionally
/// `KVFOLD_SIM_MAX` (default 1), `KVFOLD_SIM_STEPS` (default the CI tier's),
/// `KVFOLD_SIM_PLAN` (`before@3,torn@7,burst17@2`, `none`) and
/// `KVFOLD_SIM_MUTATION` (`DropDeletes`, `CursorOnError`, `ResumeFromOnApplied`,
/// `RepairKeepsStale`, `ListingHidesKeys`), `KVFOLD_SIM_RELIST` (1 = the main node
/// runs with `ExpiryRepair::Relist`) and `KVFOLD_SIM_REPAIR` (`none`, `relist`,
/// `restore`, `auto`; the last two run a restore world).
/// Without `KVFOLD_SIM_SEED` it does nothing.
#[test]
fn replay_one_seed() {
    let Some(seed) = env_u64("KVFOLD_SIM_SEED") else {
        return;
    };
    let max = env_u64("KVFOLD_SIM_MAX").map_or(1, |m| usize::try_from(m).expect("max fits"));
    let steps = env_u64("KVFOLD_SIM_STEPS")
        .map_or(CI_DEPTH.steps, |s| usize::try_from(s).expect("steps fit"));
    let plan = match std::env::var("KVFOLD_SIM_PLAN") {
        Ok(text) if text != "none" => parse_plan(&text).expect("KVFOLD_SIM_PLAN: label@call,..."),
        _ => BTreeMap::new(),
    };
    let mutation = match std::env::var("KVFOLD_SIM_MUTATION").as_deref() {
        Ok("DropDeletes") => Mutation::DropDeletes,
        Ok("CursorOnError") => Mutation::CursorOnError,
        Ok("ResumeFromOnApplied") => Mutation::ResumeFromOnApplied,
        Ok("RepairKeepsStale") => Mutation::RepairKeepsStale,
        Ok("ListingHidesKeys") => Mutation::ListingHidesKeys,
        _ => Mutation::None,
    };
    let mut scenario = Scenario::new(seed, max, steps)
        .with_plan(plan)
        .with_mutation(mutation);
    if env_u64("KVFOLD_SIM_RELIST") == Some(1) {
        scenario = scenario.with_relist();
    }
    if let Ok(text) = std::env::var("KVFOLD_SIM_REPAIR") {
        let repair =
            Repair::parse(&text).expect("KVFOLD_SIM_REPAIR: none, relist, restore or auto");
        scenario = scenario.with_repair(repair);
    }
    match simulate(&scenario) {
        Ok(outcome) => {
            for line in &outcome.trace {
                println!("{line}");
            }
            println!(
                "seed {seed:#x}: {} store calls, all checks hold; {:?}",
                outcome.calls, outcome.stats
            );
        }
        Err(failure) => panic!("{failure}"),
    }
}

/// The schedule (`--` lines) and the store calls with their batches and cursors,
/// each in order. (A store call runs on a blocking thread while the schedule goes
/// on, so only the interleaving of the two logs may differ between replays.)
fn split(trace: &[String]) -> (Vec<&String>, Vec<&String>) {
    trace.iter().partition(|line| line.starts_with("--"))
}

/// A seed reproduces a run exactly: the same schedule, store calls and batches,
/// with and without crashes.
#[test]
fn a_seed_replays_the_same_run() {
    for seed in [7u64, 8, 9] {
        for (max, plan) in [
            (1, BTreeMap::new()),
            (
                1,
                BTreeMap::from([(4, Fault::Torn), (9, Fault::CrashAfter)]),
            ),
            (100, BTreeMap::from([(1, Fault::Burst(3))])),
        ] {
            let scenario = Scenario::new(seed, max, CI_DEPTH.steps).with_plan(plan);
            let first = simulate(&scenario).unwrap_or_else(|f| panic!("{f}"));
            let second = simulate(&scenario).unwrap_or_else(|f| panic!("{f}"));
            assert_eq!(
                split(&first.trace),
                split(&second.trace),
                "seed {seed:#x} max {max} ran differently twice"
            );
        }
    }
}

/// The same for restore worlds: the schedule, and each node's store calls (the
/// main node's and the exporter's run on separate blocking threads, so only their
/// interleaving may differ). The exporter publishes only while the main node is
/// down, so which artifact a restore sees is the seed's; the cursor a stop finds
/// (`run ended (stopped): Ok(..)`) is left out, as a restore's blocking steps may
/// or may not have finished when the stop arrives.
#[test]
fn a_seed_replays_the_same_restore_run() {
    fn per_node(trace: &[String]) -> (Vec<&String>, Vec<&String>, Vec<&String>) {
        let (mut schedule, calls) = split(trace);
        schedule.retain(|l| !l.starts_with("-- run ended (stopped)"));
        let (main, exporter) = calls.into_iter().partition(|l| l.starts_with("n0 "));
        (schedule, main, exporter)
    }
    for (seed, repair) in [(5u64, Repair::Restore), (9, Repair::Auto)] {
        for plan in [
            BTreeMap::new(),
            BTreeMap::from([(6, Fault::Torn), (12, Fault::CrashAfter)]),
        ] {
            let scenario = Scenario::new(seed, 1, CI_DEPTH.steps)
                .with_repair(repair)
                .with_plan(plan);
            let first = simulate(&scenario).unwrap_or_else(|f| panic!("{f}"));
            let second = simulate(&scenario).unwrap_or_else(|f| panic!("{f}"));
            assert_eq!(
                per_node(&first.trace),
                per_node(&second.trace),
                "restore seed {seed:#x} ran differently twice"
            );
        }
    }
}

// ---- Mutations: the checks have teeth (docs/verification.md, "The rule" and "Mutations") ----

const MUTATION_SEEDS: std::ops::Range<u64> = 0..8;

/// Runs `scenarios` with and without `mutation`: every control run must pass,
/// and each of the `required` checks must catch the mutation in some run.
fn assert_caught(mutation: Mutation, scenarios: &[Scenario], required: &[Check]) {
    let mut caught: Vec<Failure> = Vec::new();
    for scenario in scenarios {
        if let Err(f) = simulate(scenario) {
            panic!("control run failed (the simulation itself is wrong):\n{f}");
        }
        if let Err(f) = simulate(&scenario.clone().with_mutation(mutation)) {
            caught.push(*f);
        }
    }
    let fired: Vec<Vec<Check>> = caught.iter().map(Failure::checks).collect();
    println!(
        "mutation {mutation:?}: caught in {} of {} runs; checks that fired: {fired:?}",
        caught.len(),
        scenarios.len()
    );
    if let Some(example) = caught.first() {
        println!("for example: {}", example.violations[0]);
    }
    for check in required {
        assert!(
            fired.iter().any(|checks| checks.contains(check)),
            "mutation {mutation:?} is not caught by {check:?} in any of {} runs",
            scenarios.len()
        );
    }
}

/// Store calls the fault-free run of `seed` makes.
fn baseline_calls(seed: u64) -> u64 {
    simulate(&Scenario::new(seed, 1, CI_DEPTH.steps))
        .unwrap_or_else(|f| panic!("{f}"))
        .calls
}

#[test]
fn mutation_a_store_that_drops_deletes_is_caught() {
    let scenarios: Vec<Scenario> = MUTATION_SEEDS
        .map(|seed| Scenario::new(seed, 1, CI_DEPTH.steps))
        .collect();
    assert_caught(
        Mutation::DropDeletes,
        &scenarios,
        &[Check::FoldTruth, Check::DomainFold],
    );
}

#[test]
fn mutation_a_failed_apply_that_moves_the_cursor_is_caught() {
    // A failure, then a crash at the retry: the cursor the failed call moved is
    // all that survives. Late in the schedule, fewer later writes hide the loss.
    let scenarios: Vec<Scenario> = MUTATION_SEEDS
        .flat_map(|seed| {
            let calls = baseline_calls(seed);
            [4u64, 3, 2]
                .into_iter()
                .filter(move |back| calls > *back)
                .map(move |back| {
                    let at = calls - back;
                    Scenario::new(seed, 1, CI_DEPTH.steps).with_plan(BTreeMap::from([
                        (at, Fault::Transient),
                        (at + 1, Fault::CrashBefore),
                    ]))
                })
        })
        .collect();
    assert_caught(
        Mutation::CursorOnError,
        &scenarios,
        &[Check::Contract, Check::FoldTruth],
    );
}

#[test]
fn mutation_resuming_from_the_on_applied_cursor_is_caught() {
    // A burst of 20 failures fail-stops the run at the 16th with `on_applied`
    // ahead of the store: resuming from it skips the re-queued batch.
    let scenarios: Vec<Scenario> = MUTATION_SEEDS
        .flat_map(|seed| {
            [1u64, 4, 8].map(move |at| {
                Scenario::new(seed, 1, CI_DEPTH.steps)
                    .with_plan(BTreeMap::from([(at, Fault::Burst(20))]))
            })
        })
        .collect();
    assert_caught(
        Mutation::ResumeFromOnApplied,
        &scenarios,
        &[Check::FoldTruth],
    );
}

/// Restore worlds a mutation test runs (fault-free schedules, batch max 1).
fn restore_scenarios(repair: Repair) -> Vec<Scenario> {
    RESTORE_SEEDS
        .map(|seed| Scenario::new(seed, 1, CI_DEPTH.steps).with_repair(repair))
        .collect()
}

#[test]
fn mutation_a_repair_that_keeps_stale_keys_is_caught() {
    let mut scenarios = restore_scenarios(Repair::Restore);
    scenarios.extend(restore_scenarios(Repair::Auto).into_iter().take(2));
    assert_caught(
        Mutation::RepairKeepsStale,
        &scenarios,
        &[Check::FoldTruth, Check::DomainFold],
    );
}

/// A listing that hides every key: the restore then deletes a key re-created after
/// its artifact (kept only because the listing shows it live), the relist deletes
/// everything. Checked apart, so each repair is shown to be caught.
#[test]
fn mutation_a_repair_that_deletes_listed_live_keys_is_caught() {
    let restores: Vec<Scenario> = (0..16)
        .map(|seed| Scenario::new(seed, 1, CI_DEPTH.steps).with_repair(Repair::Restore))
        .collect();
    assert_caught(Mutation::ListingHidesKeys, &restores, &[Check::Repair]);
    let relists: Vec<Scenario> = MUTATION_SEEDS
        .take(4)
        .map(|seed| Scenario::new(seed, 100, CI_DEPTH.steps).with_relist())
        .collect();
    assert_caught(Mutation::ListingHidesKeys, &relists, &[Check::Repair]);
}

/// The loss check itself: a key whose latest write was lost may differ from the
/// truth only while the run has said something loud; with nothing said it is a
/// silent loss, and a key that was not lost is never excused.
#[test]
fn a_silent_loss_is_a_violation() {
    use sim_support::board::Board;
    use sim_support::compare::check_fold;
    use sim_support::truth::{Fold, Op};
    let board = std::sync::Arc::new(std::sync::Mutex::new(Board::default()));
    {
        let mut b = board.lock().unwrap();
        b.prefixes = vec![String::new()];
        b.repairing = true;
        b.restore = true;
        b.loud_base = sim_support::trace::current().loud;
        b.truth.record(1, "a/0", Op::Put(b"old".to_vec()));
        b.truth.record(2, "a/0", Op::Put(b"new".to_vec()));
        b.truth.record(3, "a/1", Op::Put(b"kept".to_vec()));
        b.lost.insert("a/0".to_string(), 2);
    }
    let fold: Fold = [("a/0".to_string(), (1, b"old".to_vec()))].into();
    let violated = |board: &std::sync::Arc<std::sync::Mutex<Board>>| -> Vec<Check> {
        board
            .lock()
            .unwrap()
            .violations
            .iter()
            .map(|v| v.check)
            .collect()
    };
    check_fold(&board, "silent", &fold, &Fold::new());
    let checks = violated(&board);
    assert_eq!(
        checks,
        [Check::Loss, Check::FoldTruth],
        "a/0 silently lost, a/1 missing"
    );
    tracing::error!(target: "kvfold::fold", "watch finished with an error");
    board.lock().unwrap().violations.clear();
    check_fold(&board, "unrelated error", &fold, &Fold::new());
    let checks = violated(&board);
    assert_eq!(
        checks,
        [Check::Loss, Check::FoldTruth],
        "an unrelated error says nothing of a loss"
    );
    tracing::warn!(target: "kvfold::repair", "watch cursor expired");
    board.lock().unwrap().violations.clear();
    check_fold(&board, "loud", &fold, &Fold::new());
    let checks = violated(&board);
    assert_eq!(
        checks,
        [Check::FoldTruth],
        "a/0 excused once the run was loud"
    );
}

// ---- Findings, kept as regression tests ----

/// Found by the simulation (the fold's run kept going after an interrupt sent while its
/// connection was partitioned). docs/memory-backend.md, "Fault controls (`MemoryFaults`)":
/// `interrupt_watches` makes every live watch return `Err(e)` at once. A watch stalled by
/// `partition()` did not look at its ended slot, and `heal()` made it resubscribe, so the
/// interrupt was lost and the watch went on delivering. Fixed: the memory watch checks its
/// slot's end before partition or reconnect handling.
#[tokio::test(start_paused = true)]
async fn an_interrupt_during_a_partition_ends_the_watch() {
    use kvfold::memory::{ManualClock, MemoryServer};
    use kvfold::{Connection, KvError, MemoryConfig};
    let clock = ManualClock::new(1_700_000_000_000);
    let server = MemoryServer::new(MemoryConfig::new().manual_clock(&clock));
    let (watching, writing) = (server.connection(), server.connection());
    watching.connect().await.unwrap();
    writing.connect().await.unwrap();
    let watched = watching.store("b").await.unwrap();
    let writer = writing.store("b").await.unwrap().writer().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let watcher = watched.watcher().unwrap();
    let task = tokio::spawn(async move { watcher.watch_all(tx).await });
    writer.put("k", b"1").await.unwrap();
    assert!(rx.recv().await.is_some());
    watching.faults().partition();
    let ended = server
        .faults()
        .interrupt_watches("b", KvError::WatchError("interrupted".to_string()))
        .unwrap();
    assert_eq!(ended, 1);
    watching.faults().heal();
    writer.put("k", b"2").await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(5), task).await;
    match outcome {
        Ok(joined) => assert_eq!(
            joined.unwrap(),
            Err(KvError::WatchError("interrupted".to_string()))
        ),
        Err(_) => panic!(
            "the interrupted watch is still running after heal (next delivery: {:?})",
            rx.try_recv().ok().map(|u| u.version().as_u64())
        ),
    }
}
