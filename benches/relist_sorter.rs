//! Peak memory of the relist's external key sorter (docs/performance.md, "Relist
//! sorter memory"): each configuration runs in a fresh child process, which pushes N
//! pseudo-random keys through the sorter, drains the sorted output and reports its peak
//! resident size (`VmHWM`) and the time taken. The parent prints one table.
//!
//! `cargo bench --bench relist_sorter` (add `-- --keys 1000000` for one key count;
//! `-- --test` runs 20,000 keys as a smoke check).
//! Not a criterion benchmark: the quantity is a process's high-water mark, which only a
//! fresh process measures cleanly.

use std::process::Command;
use std::time::Instant;

/// Key counts measured by default.
const KEY_COUNTS: &[u64] = &[250_000, 1_000_000, 4_000_000];

/// Run bounds measured (held key bytes before a spill); `None` = the production bound.
const RUN_BOUNDS: &[(&str, Option<usize>)] = &[
    ("production (64 MiB)", None),
    ("8 MiB", Some(8 << 20)),
    ("1 MiB", Some(1 << 20)),
    ("never spill", Some(usize::MAX)),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        let keys: u64 = args[at + 1].parse().expect("key count");
        let bound: usize = args[at + 2].parse().expect("run bound");
        child(keys, (bound != 0).then_some(bound));
        return;
    }
    // `cargo bench -- --test` (and `cargo test --benches`): one smoke-sized run.
    let smoke = args.iter().any(|a| a == "--test");
    let counts: Vec<u64> = match args.iter().position(|a| a == "--keys") {
        Some(at) => vec![args[at + 1].parse().expect("--keys N")],
        None if smoke => vec![20_000],
        None => KEY_COUNTS.to_vec(),
    };
    let exe = std::env::current_exe().expect("own path");
    println!("| keys | run bound | runs spilled | peak RSS | baseline RSS | time |");
    println!("|---|---|---|---|---|---|");
    for &keys in &counts {
        for &(label, bound) in RUN_BOUNDS {
            let out = Command::new(&exe)
                .args([
                    "--child",
                    &keys.to_string(),
                    &bound.unwrap_or(0).to_string(),
                ])
                .output()
                .expect("run the child");
            assert!(
                out.status.success(),
                "child failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let line = String::from_utf8_lossy(&out.stdout);
            let f: Vec<&str> = line.split_whitespace().collect();
            println!(
                "| {keys} | {label} | {} | {} MiB | {} MiB | {} ms |",
                f[0], f[1], f[2], f[3]
            );
        }
    }
}

/// Sorts `keys` keys with run bound `bound` and prints `runs peak_mib baseline_mib ms`.
fn child(keys: u64, bound: Option<usize>) {
    let baseline = vm_kib("VmHWM:");
    let started = Instant::now();
    let (distinct, runs) =
        kvfold::sort_keys_external(generate(keys), None, bound).expect("the sort succeeds");
    let elapsed = started.elapsed();
    assert_eq!(distinct, keys, "every generated key is distinct");
    println!(
        "{runs} {} {} {}",
        vm_kib("VmHWM:") / 1024,
        baseline / 1024,
        elapsed.as_millis()
    );
}

/// `keys` distinct keys in a scrambled order, shaped like service configuration keys
/// (about 40 bytes each).
fn generate(keys: u64) -> impl Iterator<Item = String> {
    (0..keys).map(move |i| {
        // A bijection on 0..2^64 (odd multiplier), so the keys stay distinct.
        let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        format!(
            "tenant-{:04x}/service-{:012x}/setting",
            x >> 48,
            x & 0xFFFF_FFFF_FFFF
        )
    })
}

/// A `/proc/self/status` field in KiB.
fn vm_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("the field is present")
}
