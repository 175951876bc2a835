//! Checker benchmarks: prints figures for the shapes in issue 3 (Porcupine's anchors).
//!
//! `cargo bench --bench checker` runs every scenario; `cargo bench --bench checker -- NAME`
//! runs one (etcd, kv50, kv10-nosplit, hard, hard-memory, million). Histories come from the seeded
//! simulator in `raftcheck::checker::synth`, so every figure is reproducible.

use raftcheck::checker::synth::{synth, SynthSpec};
use raftcheck::checker::{check, CheckOptions, Verdict};
use std::time::{Duration, Instant};

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn timed(ops: &[raftcheck::history::Op], opts: &CheckOptions) -> (Verdict, f64) {
    let t = Instant::now();
    let r = check(ops, opts).expect("synthetic histories are well formed");
    (r.verdict, t.elapsed().as_secs_f64() * 1e3)
}

fn etcd() {
    let mut times = Vec::new();
    let mut bad = 0;
    for seed in 0..200 {
        let ops = synth(&SynthSpec::etcd(seed));
        let (v, ms) = timed(&ops, &CheckOptions::default());
        if v != Verdict::Valid {
            bad += 1;
        }
        times.push(ms);
    }
    let total: f64 = times.iter().sum();
    times.sort_by(f64::total_cmp);
    println!(
        "etcd cas-register (80 ops, 5 workers, 25% info), 200 seeds: median {:.4} ms, \
         worst {:.3} ms, total {:.1} ms, non-valid {bad}",
        quantile(&times, 0.5),
        quantile(&times, 1.0),
        total
    );
}

fn kv(name: &str, workers: usize, ops: usize, keys: usize, split: bool, seeds: u64) {
    let mut times = Vec::new();
    let mut bad = 0;
    for seed in 0..seeds {
        let spec = SynthSpec {
            workers,
            ops,
            keys,
            small_values: Some(5),
            mix: [2, 1, 1, 0],
            info_rate: 0.1,
            read_info_rate: 0.02,
            mismatch: true,
            seed,
        };
        let h = synth(&spec);
        let opts = CheckOptions {
            split_keys: split,
            ..Default::default()
        };
        let (v, ms) = timed(&h, &opts);
        if v != Verdict::Valid {
            bad += 1;
        }
        times.push(ms);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{name} ({workers} workers, {ops} ops, {keys} keys, split {split}), {seeds} seeds: \
         median {:.2} ms, min {:.2} ms, max {:.2} ms, non-valid {bad}",
        quantile(&times, 0.5),
        quantile(&times, 0.0),
        quantile(&times, 1.0)
    );
}

fn million() {
    let spec = SynthSpec {
        workers: 20,
        ops: 1_000_000,
        keys: 1000,
        small_values: Some(5),
        mix: [2, 1, 1, 0],
        info_rate: 0.05,
        read_info_rate: 0.05,
        mismatch: true,
        seed: 1,
    };
    let h = synth(&spec);
    let before = peak_rss_mib();
    let (v, ms) = timed(&h, &CheckOptions::default());
    println!(
        "million (20 workers, 1,000,000 ops, 1000 keys, 5% info): {v:?} in {:.2} s = {:.0} ops/s; \
         peak RSS {:.0} MiB (history alone {:.0} MiB)",
        ms / 1e3,
        1e6 / (ms / 1e3),
        peak_rss_mib(),
        before
    );
}

fn hard(limit: Duration, memory_limit: u64) {
    let spec = SynthSpec::hard(3);
    let h = synth(&spec);
    let opts = CheckOptions {
        time_limit: Some(limit),
        memory_limit,
        ..Default::default()
    };
    let t = Instant::now();
    let r = check(&h, &opts).expect("well formed");
    let took = t.elapsed();
    println!(
        "hard (30 workers, 4000 ops on one key, 60% of writes info), limits {} s and {} MiB: \
         {:?} after {:.3} s ({:+.1}% of the time limit), {} memo states, peak memo {:.0} MiB, \
         peak RSS {:.0} MiB; {}",
        limit.as_secs_f64(),
        memory_limit >> 20,
        r.verdict,
        took.as_secs_f64(),
        (took.as_secs_f64() / limit.as_secs_f64() - 1.0) * 100.0,
        r.keys.iter().map(|k| k.states).sum::<u64>(),
        r.keys.iter().map(|k| k.peak_bytes).max().unwrap_or(0) as f64 / (1 << 20) as f64,
        peak_rss_mib(),
        r.reason.unwrap_or_default()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; anything else names scenarios.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |n: &str| args.is_empty() || args.iter().any(|a| a == n);
    if want("etcd") {
        etcd();
    }
    if want("kv50") {
        kv("kv50", 50, 2000, 10, true, 20);
    }
    if want("kv10-nosplit") {
        kv("kv10-nosplit", 10, 400, 5, false, 20);
    }
    if want("hard") {
        hard(Duration::from_secs(2), 1 << 30);
    }
    if want("hard-memory") {
        // The memory bound alone must stop it too (run by name: peak RSS is per process).
        hard(Duration::from_secs(60), 256 << 20);
    }
    if want("million") {
        // Last, and alone in its process when asked for by name, so peak RSS is its own.
        million();
    }
}
