//! Shared bench plumbing (docs/performance.md): criterion settings kept short for a
//! 2-core machine, sizes from environment variables, a tokio runtime, and a recorder
//! that pairs each kvfold figure with its reference (raw async-nats, or the same fold
//! without a store) measured in the same run and prints their ratio.
//! Include with `mod support;`. Nothing here measures anything by itself.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use criterion::Criterion;

#[cfg(feature = "nats")]
pub mod bucket;
pub mod fold;

/// Value size of every written entry, in bytes (the figures use 128).
pub const VALUE_BYTES: usize = 128;

/// Whether criterion measures for real: `cargo bench` passes `--bench`; `cargo test
/// --benches` does not (and `-- --test` or `--list` measure nothing either), and then
/// every bench shrinks its data to a smoke size.
pub fn bench_mode() -> bool {
    let has = |flag: &str| std::env::args().any(|arg| arg == flag);
    has("--bench") && !has("--test") && !has("--list")
}

/// `name` from the environment as a count, else `default`; `smoke` outside bench mode.
///
/// # Panics
///
/// If the variable is set but is not a positive integer (never a silent fallback).
pub fn size(name: &str, default: usize, smoke: usize) -> usize {
    match std::env::var(name) {
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => panic!("{name}={text:?} is not a positive integer"),
        },
        Err(_) if bench_mode() => default,
        Err(_) => smoke,
    }
}

/// Criterion with short warm-up and measurement times (a whole `cargo bench` takes a
/// few minutes on 2 cores); command-line arguments still override.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .configure_from_args()
}

/// A multi-threaded tokio runtime with 2 workers (the machine has 2 cores).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build the tokio runtime")
}

/// A value of [`VALUE_BYTES`] bytes.
pub fn value() -> Vec<u8> {
    (0..VALUE_BYTES).map(|i| b'a' + (i % 26) as u8).collect()
}

/// One timed sample: `iters` iterations took `elapsed`.
#[derive(Clone, Copy, Debug)]
struct Sample {
    iters: u64,
    elapsed: Duration,
}

/// Per-iteration samples of every `(figure, side)`, as the benches' timing closures
/// saw them. Criterion keeps its own statistics; this only pairs the sides.
static SAMPLES: Mutex<BTreeMap<(String, String), Vec<Sample>>> = Mutex::new(BTreeMap::new());

/// Records one sample of `side` (e.g. `"kvfold"`, `"raw"`) of `figure`.
pub fn record(figure: &str, side: &str, iters: u64, elapsed: Duration) {
    let mut samples = SAMPLES.lock().unwrap_or_else(|p| p.into_inner());
    samples
        .entry((figure.to_string(), side.to_string()))
        .or_default()
        .push(Sample { iters, elapsed });
}

/// Median time per iteration over the last `keep` samples of `(figure, side)`
/// (criterion's warm-up calls come first and are left out).
fn median_per_iter(figure: &str, side: &str, keep: usize) -> Option<Duration> {
    let samples = SAMPLES.lock().unwrap_or_else(|p| p.into_inner());
    let all = samples.get(&(figure.to_string(), side.to_string()))?;
    let tail = &all[all.len().saturating_sub(keep)..];
    let mut per_iter: Vec<Duration> = tail
        .iter()
        .filter(|s| s.iters > 0)
        .map(|s| s.elapsed / u32::try_from(s.iters).unwrap_or(u32::MAX))
        .collect();
    if per_iter.is_empty() {
        return None;
    }
    per_iter.sort_unstable();
    Some(per_iter[per_iter.len() / 2])
}

/// Prints (and, with `KVFOLD_BENCH_REPORT=<file>`, appends to that file) one line
/// comparing `side` with `reference` for `figure`: the median time per iteration of
/// each, the throughput when an iteration is `elements` items, and the ratio
/// `reference time / side time` (the speed of `side` relative to `reference`;
/// 1.0 is parity, below 1 slower).
pub fn report(figure: &str, side: &str, reference: &str, elements: u64, keep: usize) {
    let (Some(ours), Some(theirs)) = (
        median_per_iter(figure, side, keep),
        median_per_iter(figure, reference, keep),
    ) else {
        println!("RATIO {figure}: {side} or {reference} was not measured (filtered out?)");
        return;
    };
    let rate = |d: Duration| elements as f64 / d.as_secs_f64();
    let line = format!(
        "RATIO {figure}: {side} {} ({}/s), {reference} {} ({}/s), ratio {reference}/{side} time = {:.2}",
        human(ours),
        human_rate(rate(ours)),
        human(theirs),
        human_rate(rate(theirs)),
        theirs.as_secs_f64() / ours.as_secs_f64(),
    );
    emit(&line);
}

/// Prints one single-sided figure (no reference): median time per iteration and throughput.
pub fn report_single(figure: &str, side: &str, elements: u64, keep: usize) {
    let Some(ours) = median_per_iter(figure, side, keep) else {
        println!("FIGURE {figure}: {side} was not measured (filtered out?)");
        return;
    };
    let line = format!(
        "FIGURE {figure}: {side} {} ({}/s)",
        human(ours),
        human_rate(elements as f64 / ours.as_secs_f64())
    );
    emit(&line);
}

fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 1.0 {
        format!("{secs:.3} s")
    } else if secs >= 1e-3 {
        format!("{:.3} ms", secs * 1e3)
    } else {
        format!("{:.2} µs", secs * 1e6)
    }
}

fn human_rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.2}M", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.1}k", per_sec / 1e3)
    } else {
        format!("{per_sec:.1}")
    }
}

/// Rounds of interleaved paired trials: `KVFOLD_BENCH_ROUNDS`, default 25 (1 outside
/// bench mode).
pub fn rounds() -> usize {
    size("KVFOLD_BENCH_ROUNDS", 25, 1)
}

/// Interleaved paired trials, the ratio the docs quote: `rounds` rounds, each timing
/// one trial of `side` and one of `reference` (which goes first alternates), each trial
/// being `elements` items of work. Prints (and records as [`report`] does) the median
/// trial of each side and the median of the per-round ratios `reference time / side
/// time`: load that drifts during a run (other processes on a 2-core machine) hits both
/// sides of a round alike.
pub fn paired(
    figure: &str,
    (side, reference): (&str, &str),
    rounds: usize,
    elements: u64,
    mut side_trial: impl FnMut() -> Duration,
    mut reference_trial: impl FnMut() -> Duration,
) {
    let mut ours = Vec::with_capacity(rounds);
    let mut theirs = Vec::with_capacity(rounds);
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (a, b) = if round % 2 == 0 {
            let a = side_trial();
            (a, reference_trial())
        } else {
            let b = reference_trial();
            (side_trial(), b)
        };
        ours.push(a);
        theirs.push(b);
        ratios.push(b.as_secs_f64() / a.as_secs_f64());
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let (ours, theirs) = (median(&mut ours), median(&mut theirs));
    ratios.sort_by(f64::total_cmp);
    let rate = |d: Duration| elements as f64 / d.as_secs_f64();
    let line = format!(
        "PAIRED {figure}: {side} {} ({}/s), {reference} {} ({}/s), median ratio {reference}/{side} time = {:.2} (range {:.2}..{:.2}, {rounds} rounds of {elements})",
        human(ours),
        human_rate(rate(ours)),
        human(theirs),
        human_rate(rate(theirs)),
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
    );
    emit(&line);
}

/// Prints `line`, and appends it to `KVFOLD_BENCH_REPORT` when that is set.
fn emit(line: &str) {
    println!("{line}");
    if let Ok(path) = std::env::var("KVFOLD_BENCH_REPORT") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open KVFOLD_BENCH_REPORT={path}: {e}"));
        writeln!(file, "{line}").unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
}

/// Runs `one` `iters` times on `rt`, records the total as `side` of `figure`
/// (for [`report`]) and returns it for criterion's `iter_custom`.
pub fn timed<F>(
    rt: &tokio::runtime::Runtime,
    figure: &str,
    side: &str,
    iters: u64,
    mut one: F,
) -> Duration
where
    F: AsyncFnMut() -> Duration,
{
    let elapsed = rt.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            total += one().await;
        }
        total
    });
    record(figure, side, iters, elapsed);
    elapsed
}
