//! raftkv-bench: write throughput and latency of a 3-node raftkv cluster on loopback (data on
//! disk, fsync on), the same load against a 3-node etcd cluster through its HTTP/JSON
//! gateway when `etcd` is on PATH, and raftkv's failover time (SIGKILL of the leader to the
//! first acknowledged write on the new leader).
//!
//! Run: `cargo bench -p raftkv --bench cluster` (flags after `--`, e.g.
//! `-- --duration-s 2 --kills 1`). Cargo builds the raftkv binary for it (or give `--raftkv`).
//! A `[[bench]]` with `harness = false` rather than a binary of the raftkv package, so that
//! what only the benchmark needs (base64 for etcd's API, tempfile) stays out of the server's
//! dependencies.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use clap::Parser;
use serde_json::{json, Value};

/// Measure raftkv's write throughput and latency (and etcd's under the same load, when it is on
/// PATH), and raftkv's failover time.
#[derive(Debug, Parser)]
#[command(name = "cluster-bench")]
struct Flags {
    /// Seconds of load per system.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Clients writing concurrently, each issuing its requests back to back.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Leader kills for the failover measurement (0 to skip).
    #[arg(long, default_value_t = 10)]
    kills: usize,
    /// raftkv election timeout range and heartbeat (ms).
    #[arg(long, default_value_t = 300)]
    election_timeout_min_ms: u64,
    /// See --election-timeout-min-ms.
    #[arg(long, default_value_t = 600)]
    election_timeout_max_ms: u64,
    /// raftkv's leader heartbeat interval (ms), passed on as --heartbeat-ms.
    #[arg(long, default_value_t = 50)]
    heartbeat_ms: u64,
    /// Path of the raftkv binary (default: the one Cargo built with this benchmark).
    #[arg(long)]
    raftkv: Option<PathBuf>,
    /// Path of the etcd binary (default: `etcd` on PATH; skipped if absent).
    #[arg(long, default_value = "etcd")]
    etcd: String,
    /// Where data dirs go (must be a real disk for fsync to mean anything; default: Cargo's
    /// scratch dir under the target dir, not the source tree).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the data dirs and raftkv logs (raftkvN.log) instead of deleting them.
    #[arg(long)]
    keep: bool,
    /// Passed by `cargo bench` to every benchmark; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Child processes killed on drop, so a failed run leaves nothing behind.
struct Procs(Vec<Option<Child>>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in self.0.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Latency summary of one load run.
struct LoadResult {
    ok: usize,
    errors: usize,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl LoadResult {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.secs
    }
    fn print(&self, name: &str) {
        println!(
            "{name:>7}: {:>8.0} writes/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} ok, {} errors, {:.1} s)",
            self.rate(),
            self.p50_ms,
            self.p99_ms,
            self.ok,
            self.errors,
            self.secs
        );
    }
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// `clients` tasks issuing `req(client, i)` back to back for `dur`.
async fn load<F>(clients: usize, dur: Duration, req: F) -> LoadResult
where
    F: Fn(usize, u64) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let req = Arc::new(req);
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let req = req.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                let t = Instant::now();
                match req(c, i).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    LoadResult {
        ok: all.len(),
        errors,
        secs,
        p50_ms: quantile(&all, 0.5),
        p99_ms: quantile(&all, 0.99),
    }
}

struct RaftkvCluster {
    procs: Procs,
    ports: Vec<u16>,
    args: Vec<Vec<String>>,
    bin: PathBuf,
    dir: PathBuf,
    http: reqwest::Client,
}

impl RaftkvCluster {
    fn start(bin: &Path, dir: &Path, f: &Flags) -> anyhow::Result<Self> {
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_, _>>()?;
        let peers = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut args = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            args.push(vec![
                format!("--id={}", i + 1),
                format!("--listen=127.0.0.1:{p}"),
                format!("--peers={peers}"),
                format!(
                    "--data-dir={}",
                    dir.join(format!("raftkv{}", i + 1)).display()
                ),
                format!("--election-timeout-min-ms={}", f.election_timeout_min_ms),
                format!("--election-timeout-max-ms={}", f.election_timeout_max_ms),
                format!("--heartbeat-ms={}", f.heartbeat_ms),
                "--snapshot-threshold=100000".to_string(),
            ]);
        }
        let mut c = RaftkvCluster {
            procs: Procs(vec![None, None, None]),
            ports,
            args,
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        };
        for i in 0..3 {
            c.spawn(i)?;
        }
        Ok(c)
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("raftkv{}.log", i + 1)))?;
        let child = Command::new(&self.bin)
            .args(&self.args[i])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        self.procs.0[i] = Some(child);
        Ok(())
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.procs.0[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Wait until every node answers /status and has applied the leader's commit index, so
    /// the next kill leaves a working majority.
    async fn wait_all_caught_up(&self, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            let mut applied = Vec::new();
            let mut commit = None;
            for p in &self.ports {
                let r = self
                    .http
                    .get(format!("http://127.0.0.1:{p}/status"))
                    .timeout(Duration::from_millis(300))
                    .send()
                    .await;
                if let Ok(r) = r {
                    if let Ok(v) = r.json::<Value>().await {
                        applied.push(v["last_applied"].as_u64().unwrap_or(0));
                        if v["role"] == "leader" {
                            commit = v["commit_index"].as_u64();
                        }
                    }
                }
            }
            if let Some(c) = commit {
                if applied.len() == self.ports.len() && applied.iter().all(|&a| a >= c) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("raftkv nodes did not all catch up within {timeout:?}")
    }

    async fn leader(&self, timeout: Duration) -> anyhow::Result<usize> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            for (i, p) in self.ports.iter().enumerate() {
                if self.procs.0[i].is_none() {
                    continue;
                }
                let r = self
                    .http
                    .get(format!("http://127.0.0.1:{p}/status"))
                    .timeout(Duration::from_millis(300))
                    .send()
                    .await;
                if let Ok(r) = r {
                    if let Ok(v) = r.json::<Value>().await {
                        if v["role"] == "leader" {
                            return Ok(i);
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("raftkv elected no leader within {timeout:?}")
    }
}

struct EtcdCluster {
    _procs: Procs,
    client_ports: Vec<u16>,
}

impl EtcdCluster {
    fn start(bin: &str, dir: &Path) -> anyhow::Result<Self> {
        let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_, _>>()?;
        let peer_ports: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_, _>>()?;
        let initial = peer_ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("e{}=http://127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut procs = Procs(Vec::new());
        for i in 0..3 {
            let child = Command::new(bin)
                .arg(format!("--name=e{}", i + 1))
                .arg(format!(
                    "--data-dir={}",
                    dir.join(format!("etcd{}", i + 1)).display()
                ))
                .arg(format!(
                    "--listen-client-urls=http://127.0.0.1:{}",
                    client_ports[i]
                ))
                .arg(format!(
                    "--advertise-client-urls=http://127.0.0.1:{}",
                    client_ports[i]
                ))
                .arg(format!(
                    "--listen-peer-urls=http://127.0.0.1:{}",
                    peer_ports[i]
                ))
                .arg(format!(
                    "--initial-advertise-peer-urls=http://127.0.0.1:{}",
                    peer_ports[i]
                ))
                .arg(format!("--initial-cluster={initial}"))
                .arg("--initial-cluster-state=new")
                .arg("--initial-cluster-token=raftkv-bench")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("cannot start {bin}"))?;
            procs.0.push(Some(child));
        }
        Ok(EtcdCluster {
            _procs: procs,
            client_ports,
        })
    }

    /// Index of the member that is leader, via /v3/maintenance/status.
    async fn leader(&self, http: &reqwest::Client) -> anyhow::Result<usize> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            for (i, p) in self.client_ports.iter().enumerate() {
                let r = http
                    .post(format!("http://127.0.0.1:{p}/v3/maintenance/status"))
                    .json(&json!({}))
                    .timeout(Duration::from_millis(500))
                    .send()
                    .await;
                if let Ok(r) = r {
                    if let Ok(v) = r.json::<Value>().await {
                        let me = &v["header"]["member_id"];
                        if !me.is_null() && v["leader"] == *me {
                            return Ok(i);
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("etcd elected no leader within 30 s")
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn measure_failover(c: &mut RaftkvCluster, kills: usize) -> anyhow::Result<Vec<Duration>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()?;
    let mut times = Vec::new();
    for k in 0..kills {
        let leader = c.leader(Duration::from_secs(20)).await?;
        // Let the cluster settle: everyone heard from this leader for a while.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let others: Vec<u16> = (0..3)
            .filter(|&i| i != leader)
            .map(|i| c.ports[i])
            .collect();
        let t0 = Instant::now();
        c.kill(leader);
        let mut acked = None;
        let mut i = 0u64;
        while t0.elapsed() < Duration::from_secs(20) && acked.is_none() {
            for p in &others {
                i += 1;
                let r = http
                    .put(format!("http://127.0.0.1:{p}/kv/failover"))
                    .json(&json!({ "value": i }))
                    .send()
                    .await;
                if let Ok(r) = r {
                    if r.status() == 200 {
                        acked = Some(t0.elapsed());
                        break;
                    }
                }
            }
            if acked.is_none() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let Some(t) = acked else {
            bail!("no write acknowledged within 20 s after kill {k}")
        };
        println!(
            "  kill {k}: first acknowledged write after {:.0} ms",
            t.as_secs_f64() * 1e3
        );
        times.push(t);
        c.spawn(leader)?;
        c.wait_all_caught_up(Duration::from_secs(30)).await?;
    }
    times.sort();
    Ok(times)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let f = Flags::parse();
    let bin = match &f.raftkv {
        Some(p) => p.clone(),
        None => PathBuf::from(env!("CARGO_BIN_EXE_raftkv")),
    };
    if !bin.exists() {
        bail!(
            "raftkv binary not found at {} (build it or pass --raftkv)",
            bin.display()
        );
    }
    let base = match &f.work_dir {
        Some(d) => d.clone(),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
    };
    std::fs::create_dir_all(&base)
        .with_context(|| format!("cannot create work dir {}", base.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("raftkv-bench-")
        .tempdir_in(&base)?;
    let dur = Duration::from_secs(f.duration_s);
    println!(
        "3 nodes on 127.0.0.1, fsync on, data in {}, {} clients, {} s each",
        tmp.path().display(),
        f.clients,
        f.duration_s
    );

    // raftkv
    let mut rk = RaftkvCluster::start(&bin, tmp.path(), &f)?;
    let leader = rk.leader(Duration::from_secs(20)).await?;
    let port = rk.ports[leader];
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(f.clients)
        .build()?;
    let h = http.clone();
    let raftkv = load(f.clients, dur, move |c, i| {
        h.put(format!("http://127.0.0.1:{port}/kv/k{c}_{}", i % 100))
            .json(&json!({ "value": i }))
    })
    .await;
    raftkv.print("raftkv");

    // etcd
    let etcd = if which(&f.etcd) {
        let ec = EtcdCluster::start(&f.etcd, tmp.path())?;
        let leader = ec.leader(&http).await?;
        let port = ec.client_ports[leader];
        let h = http.clone();
        let r = load(f.clients, dur, move |c, i| {
            h.post(format!("http://127.0.0.1:{port}/v3/kv/put"))
                .json(&json!({
                    "key": b64(&format!("k{c}_{}", i % 100)),
                    "value": b64(&i.to_string()),
                }))
        })
        .await;
        r.print("etcd");
        Some(r)
    } else {
        println!("   etcd: `{}` not found on PATH; skipped", f.etcd);
        None
    };
    if let Some(e) = &etcd {
        println!(
            "  ratio: raftkv/etcd throughput {:.2}x, p99 raftkv {:.2} ms vs etcd {:.2} ms",
            raftkv.rate() / e.rate(),
            raftkv.p99_ms,
            e.p99_ms
        );
    }

    if f.kills > 0 {
        println!(
            "failover: SIGKILL the leader, time to first acknowledged write ({} kills, election timeout {}-{} ms, heartbeat {} ms)",
            f.kills, f.election_timeout_min_ms, f.election_timeout_max_ms, f.heartbeat_ms
        );
        let times = measure_failover(&mut rk, f.kills).await?;
        let median = times[times.len() / 2];
        println!(
            "failover: median {:.0} ms, min {:.0} ms, max {:.0} ms (election timeout {}-{} ms)",
            median.as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3,
            f.election_timeout_min_ms,
            f.election_timeout_max_ms
        );
    }
    drop(rk);
    if f.keep {
        println!("kept {}", tmp.keep().display());
    }
    Ok(())
}

fn which(bin: &str) -> bool {
    if bin.contains('/') {
        return Path::new(bin).exists();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}
