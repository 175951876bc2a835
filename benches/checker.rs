//! Checker benchmarks: prints figures for the shapes in issue 3 (Porcupine's anchors).
//!
//! `cargo bench --bench checker` runs every scenario; `cargo bench --bench checker -- NAME`
//! runs one (etcd, shrink, kv50, kv10-nosplit, hard, hard-memory, million). Histories come
//! from the seeded simulator in `raftcheck::checker::synth`, so every figure is reproducible.

use raftcheck::checker::synth::{plant_violation, synth, SynthSpec};
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

/// The default check (with shrinking) against `--no-shrink` on etcd-shaped histories with a
/// planted violation each: the shrinker's whole cost, per history and in total, and the witness
/// sizes it gives. With `RAFTCHECK_JEPSEN_ETCD` naming a directory of Jepsen etcd logs (the
/// `etcd_*.log` files of Porcupine's test data), the same on those real histories.
fn shrink() {
    // Planted histories whose plain search is as easy as the real Jepsen etcd histories' (each
    // of Porcupine's 102 needs at most a few thousand states): a violation that takes the plain
    // search seconds to prove measures the search, not the shrinker. The bound is on states,
    // not time, so the set is the same on every machine.
    let planted: Vec<_> = (0..1000)
        .filter_map(|seed| plant_violation(&synth(&SynthSpec::etcd(seed)), seed, PLANTED_STATES))
        .take(100)
        .collect();
    shrink_report("planted etcd", &planted);
    if let Some(dir) = std::env::var_os("RAFTCHECK_JEPSEN_ETCD") {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("RAFTCHECK_JEPSEN_ETCD names a readable directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        files.sort();
        let set: Vec<_> = files.iter().map(|f| jepsen_etcd(f)).collect();
        shrink_report("jepsen etcd (Porcupine's logs)", &set);
    }
}

/// Plain-search states a planted history may need to be part of the shrink set.
const PLANTED_STATES: u64 = 20_000;

/// A Jepsen etcd log (`INFO  jepsen.util - 3\t:ok\t:cas\t[1 4]`) as a paired history: a failed
/// cas is a compare that did not match (Porcupine's etcd model reads it so too), `:info` an
/// unknown outcome.
fn jepsen_etcd(path: &std::path::Path) -> Vec<raftcheck::history::Op> {
    use raftcheck::history::{pair, Event, EventType, Fun, Source, Value};
    let text = std::fs::read_to_string(path).expect("a readable Jepsen log");
    let parse = |v: &str| -> Value {
        let v = v.trim();
        if v == "nil" {
            Value::Null
        } else if let Some(inner) = v.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            Value::Array(inner.split_whitespace().map(parse_int).collect())
        } else {
            parse_int(v)
        }
    };
    let mut events = Vec::new();
    for line in text.lines() {
        let Some((_, rest)) = line.split_once(" - ") else {
            continue;
        };
        let cols: Vec<&str> = rest.split('\t').collect();
        let [process, kind, f, value, ..] = cols[..] else {
            continue;
        };
        let kind = match kind {
            ":invoke" => EventType::Invoke,
            ":ok" => EventType::Ok,
            ":fail" => EventType::Fail,
            _ => EventType::Info,
        };
        let f = match f {
            ":read" => Fun::Read,
            ":write" => Fun::Write,
            _ => Fun::Cas,
        };
        let n = events.len() as u64;
        events.push(Event {
            index: n,
            kind,
            process: process.trim().parse().expect("a process number"),
            f,
            key: None,
            value: if f == Fun::Read && kind != EventType::Ok {
                Value::Null
            } else {
                parse(value)
            },
            time: n * 1_000,
            node: None,
            error: (kind == EventType::Fail && f == Fun::Cas).then(|| "mismatch".to_string()),
        });
    }
    pair(&events, &Source::memory(events.len())).expect("a well-formed Jepsen log")
}

fn parse_int(s: &str) -> raftcheck::history::Value {
    s.parse::<i64>()
        .map_or(raftcheck::history::Value::Null, Into::into)
}

fn shrink_report(name: &str, set: &[Vec<raftcheck::history::Op>]) {
    let plain = CheckOptions {
        shrink: false,
        ..CheckOptions::default()
    };
    let (mut with, mut without, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut invalid, mut max_states) = (0, 0);
    for ops in set {
        let (_, ms) = timed(ops, &plain);
        without.push(ms);
        let t = Instant::now();
        let r = check(ops, &CheckOptions::default()).expect("well formed");
        with.push(t.elapsed().as_secs_f64() * 1e3);
        max_states = max_states.max(r.keys.iter().map(|k| k.states).max().unwrap_or(0));
        if r.verdict == Verdict::Invalid {
            invalid += 1;
        }
        sizes.extend(
            r.keys
                .iter()
                .filter_map(|k| k.counterexample.as_ref())
                .map(|c| c.ops.len() as f64),
        );
    }
    let (tw, tn): (f64, f64) = (with.iter().sum(), without.iter().sum());
    with.sort_by(f64::total_cmp);
    without.sort_by(f64::total_cmp);
    sizes.sort_by(f64::total_cmp);
    println!(
        "{name}: {} histories ({invalid} invalid), ~{} ops each: default check total {tw:.1} ms \
         (max {:.2} ms) vs --no-shrink {tn:.1} ms (max {:.2} ms): {:.2}x; witness ops median {} \
         p90 {} max {}; the plain search needed at most {max_states} states",
        set.len(),
        set.iter().map(Vec::len).sum::<usize>() / set.len().max(1),
        quantile(&with, 1.0),
        quantile(&without, 1.0),
        tw / tn.max(1e-9),
        quantile(&sizes, 0.5),
        quantile(&sizes, 0.9),
        quantile(&sizes, 1.0),
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
    if want("shrink") {
        shrink();
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
