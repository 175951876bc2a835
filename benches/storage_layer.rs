//! What the power-loss layer costs: write throughput and write latency of a real cluster with
//! every data dir on the FUSE layer against the same cluster on the plain disk, paired and
//! interleaved in one run so both see the same machine. raftkv always; etcd when it is on PATH.
//! Needs root and /dev/fuse (the layer) and builds nothing itself: `cargo bench --bench
//! storage_layer` after `cargo build --release --workspace`.
//!
//! Each measurement is one `raftcheck run` of a write-only register workload (8 workers, no
//! rate limit, no faults); the figures come from its results.json.

use std::path::Path;
use std::process::Command;

const SECS: &str = "10";
const ROUNDS: usize = 2;

#[derive(Clone, Copy, Default)]
struct Figures {
    writes_per_sec: f64,
    p50: f64,
    p99: f64,
}

fn run(cluster: &str, layer: bool, dir: &Path, workload: &Path) -> Option<Figures> {
    let results = dir.join(format!("{cluster}-{layer}"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_raftcheck"));
    cmd.args(["run", "--cluster", cluster, "--nemesis", "none", "--quiet"])
        .arg("--workload")
        .arg(workload)
        .args(["--time-limit", SECS, "--seed", "1"])
        .arg("--results")
        .arg(&results);
    if layer {
        cmd.arg("--storage-layer");
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!(
            "{cluster} (layer {layer}) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let path = find(&results, "results.json")?;
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
    let _ = std::fs::remove_dir_all(&results);
    let ok = r["exercised"]["ops"]["write"]["ok"].as_f64()?;
    let secs = r["duration_secs"].as_f64()?;
    let lat = &r["latency_ms"]["write"];
    Some(Figures {
        writes_per_sec: ok / secs,
        p50: lat["p50"].as_f64()?,
        p99: lat["p99"].as_f64()?,
    })
}

/// The first file called `name` under `dir` (results are nested by names and time).
fn find(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == name) {
                return Some(p);
            }
        }
    }
    None
}

fn mean(v: &[Figures]) -> Figures {
    let n = v.len().max(1) as f64;
    Figures {
        writes_per_sec: v.iter().map(|f| f.writes_per_sec).sum::<f64>() / n,
        p50: v.iter().map(|f| f.p50).sum::<f64>() / n,
        p99: v.iter().map(|f| f.p99).sum::<f64>() / n,
    }
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workload = dir.path().join("writes.toml");
    std::fs::write(
        &workload,
        "model = \"register\"\nmix = { read = 0, write = 1 }\nkeys = 10\nconcurrency = 8\n\
         rate = 0\nop_timeout_secs = 2\nduration_secs = 10\n",
    )
    .expect("workload");
    let mut clusters = vec!["raftkv"];
    if Command::new("etcd").arg("--version").output().is_ok() {
        clusters.push("etcd");
    }
    println!(
        "{:<8} {:>14} {:>14} {:>7} {:>10} {:>10} {:>10} {:>10}",
        "cluster",
        "writes/s disk",
        "writes/s FUSE",
        "ratio",
        "p50 disk",
        "p50 FUSE",
        "p99 disk",
        "p99 FUSE"
    );
    for c in clusters {
        let (mut plain, mut fuse) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            if let Some(f) = run(c, false, dir.path(), &workload) {
                plain.push(f);
            }
            if let Some(f) = run(c, true, dir.path(), &workload) {
                fuse.push(f);
            }
        }
        if plain.is_empty() || fuse.is_empty() {
            println!("{c}: no figures (see the errors above)");
            continue;
        }
        let (p, f) = (mean(&plain), mean(&fuse));
        println!(
            "{:<8} {:>14.0} {:>14.0} {:>7.2} {:>8.2}ms {:>8.2}ms {:>8.2}ms {:>8.2}ms",
            c,
            p.writes_per_sec,
            f.writes_per_sec,
            f.writes_per_sec / p.writes_per_sec,
            p.p50,
            f.p50,
            p.p99,
            f.p99
        );
    }
    println!("({ROUNDS} interleaved {SECS} s runs per cell, means; ratio = FUSE / disk)");
}
