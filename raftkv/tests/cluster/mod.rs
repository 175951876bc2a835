//! A real raftkv cluster on 127.0.0.1 for process tests: free ports, a temp data dir per
//! node, stderr to a log file per node, SIGKILL and restart. Every child process is killed
//! when the [`Cluster`] is dropped, also when a test fails.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_raftkv");

/// One server process slot.
pub struct Proc {
    pub id: u64,
    pub port: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub child: Option<Child>,
    pub extra: Vec<String>,
}

/// A loopback cluster; kills its processes on drop.
pub struct Cluster {
    pub tmp: tempfile::TempDir,
    pub procs: Vec<Proc>,
    pub peers: String,
    pub flags: Vec<String>,
    pub http: reqwest::Client,
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("addr").port()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Cluster {
    /// Start `n` servers with the given extra flags and wait for a leader.
    pub async fn start(n: u64, flags: &[&str]) -> Cluster {
        let c = Cluster::spawn_all(n, flags);
        c.wait_leader(Duration::from_secs(15)).await;
        c
    }

    /// Start `n` servers without waiting for anything (for servers with no /status).
    pub fn spawn_all(n: u64, flags: &[&str]) -> Cluster {
        let tmp = tempfile::tempdir().expect("tempdir");
        let procs: Vec<Proc> = (1..=n)
            .map(|id| Proc {
                id,
                port: free_port(),
                dir: tmp.path().join(format!("n{id}")),
                log: tmp.path().join(format!("n{id}.log")),
                child: None,
                extra: Vec::new(),
            })
            .collect();
        let peers = procs
            .iter()
            .map(|p| format!("{}=127.0.0.1:{}", p.id, p.port))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            tmp,
            procs,
            peers,
            flags: flags.iter().map(|s| s.to_string()).collect(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .expect("client"),
        };
        for id in 1..=n {
            c.spawn(id);
        }
        c
    }

    pub fn addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.proc(id).port)
    }

    pub fn proc(&self, id: u64) -> &Proc {
        self.procs.iter().find(|p| p.id == id).expect("known id")
    }

    pub fn spawn(&mut self, id: u64) {
        let peers = self.peers.clone();
        let flags = self.flags.clone();
        let p = self
            .procs
            .iter_mut()
            .find(|p| p.id == id)
            .expect("known id");
        assert!(p.child.is_none(), "node {id} already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p.log)
            .expect("log file");
        let child = Command::new(BIN)
            .arg("--id")
            .arg(id.to_string())
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", p.port))
            .arg("--peers")
            .arg(&peers)
            .arg("--data-dir")
            .arg(&p.dir)
            .args(&flags)
            .args(&p.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn raftkv");
        p.child = Some(child);
    }

    /// SIGKILL (std's `Child::kill` sends SIGKILL on Unix).
    pub fn kill(&mut self, id: u64) {
        let p = self
            .procs
            .iter_mut()
            .find(|p| p.id == id)
            .expect("known id");
        if let Some(mut c) = p.child.take() {
            c.kill().expect("kill -9");
            c.wait().expect("reap");
        }
    }

    pub fn running(&self) -> Vec<u64> {
        self.procs
            .iter()
            .filter(|p| p.child.is_some())
            .map(|p| p.id)
            .collect()
    }

    pub async fn status(&self, id: u64) -> Option<Value> {
        let r = self
            .http
            .get(format!("http://{}/status", self.addr(id)))
            .timeout(Duration::from_millis(500))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// The leader according to a running node that says it is leader, with the highest term.
    pub async fn leader(&self) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for id in self.running() {
            if let Some(s) = self.status(id).await {
                if s["role"] == "leader" {
                    let term = s["term"].as_u64().unwrap_or(0);
                    if best.is_none_or(|(t, _)| term > t) {
                        best = Some((term, id));
                    }
                }
            }
        }
        best.map(|(_, id)| id)
    }

    pub async fn wait_leader(&self, limit: Duration) -> u64 {
        let start = Instant::now();
        loop {
            if let Some(l) = self.leader().await {
                return l;
            }
            assert!(
                start.elapsed() < limit,
                "no leader elected within {limit:?}; logs in {}",
                self.tmp.path().display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self, id: u64) -> String {
        std::fs::read_to_string(&self.proc(id).log).unwrap_or_default()
    }
}

/// Poll `cond` every 50 ms until it holds or `limit` passes; panic with `reason` otherwise.
pub async fn wait_until<F, Fut>(limit: Duration, reason: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for: {reason}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Send a signal by name (STOP, CONT) to a running node with kill(1).
pub fn signal(c: &Cluster, id: u64, sig: &str) {
    let pid = c.proc(id).child.as_ref().expect("running").id();
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{sig} {pid} failed");
}

/// Resumes paused nodes on drop, so a failing assertion never leaves a node stopped while
/// the rest of the test (or its cleanup) expects it to answer.
pub struct Paused<'a>(pub &'a Cluster, pub Vec<u64>);

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        for &id in &self.1 {
            if let Some(ch) = self.0.proc(id).child.as_ref() {
                let _ = Command::new("kill")
                    .arg("-CONT")
                    .arg(ch.id().to_string())
                    .status();
            }
        }
    }
}
