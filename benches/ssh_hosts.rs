//! What running nodes over SSH costs against netns mode on this machine: the time to start a
//! cluster (connect, upload the binary, start every node, until every node accepts on its
//! client port) and the latency of each nemesis operation (kill until the exit is seen,
//! restart, pause, resume, installing and healing a partition, a corrupt fault's kill + copy +
//! damage of one stopped node's data dir), the two backends side by side
//! in one run, for 3 and 5 nodes. The SSH hosts are the `tools/ssh-standin.sh` stand-in: one
//! namespace with its own sshd per host, reached only over SSH.
//!
//! Needs root, ip, iptables, ssh, ssh-keygen, /usr/sbin/sshd and a built raftkv:
//! `cargo build --release --workspace && cargo bench --bench ssh_hosts`.

use raftcheck::cluster::net::{new_run_id, NetMode, Network};
use raftcheck::cluster::ssh::SshConn;
use raftcheck::cluster::supervisor::Cluster;
use raftcheck::spec::hosts::HostsFile;
use raftcheck::spec::ClusterSpec;
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROUNDS: usize = 3;
const OPS: [&str; 8] = [
    "start cluster",
    "kill",
    "restart",
    "pause",
    "resume",
    "partition",
    "heal",
    "corrupt",
];

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Wait (at most 30 s) until every endpoint accepts a TCP connection.
fn wait_accepting(c: &Cluster) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    c.endpoints.iter().all(|e| loop {
        if TcpStream::connect_timeout(&e.addr, Duration::from_millis(200)).is_ok() {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    })
}

/// One round on one backend: every operation's latency in ms.
fn round(
    spec: &ClusterSpec,
    binary: &Path,
    ssh: Option<&[Arc<SshConn>]>,
    dir: &Path,
) -> Option<BTreeMap<&'static str, f64>> {
    let lock = new_run_id().ok()?;
    let run_id = lock.run_id().to_string();
    let run_dir = dir.join(&run_id);
    let t = Instant::now();
    let network = match ssh {
        Some(conns) => Network::over_ssh(&run_id, conns),
        None => Network::create(&run_id, spec.nodes, NetMode::Netns, None),
    }
    .map_err(|e| eprintln!("network: {e}"))
    .ok()?;
    let c = Cluster::start(spec, binary, network, &run_dir, &run_id, &[], None)
        .map_err(|e| eprintln!("start: {e}"))
        .ok()?;
    if !wait_accepting(&c) {
        eprintln!("cluster never accepted connections");
        return None;
    }
    let mut out = BTreeMap::new();
    out.insert("start cluster", ms(t.elapsed()));
    let timed = |f: &dyn Fn() -> bool| {
        let t = Instant::now();
        f().then(|| ms(t.elapsed()))
    };
    out.insert("kill", timed(&|| c.kill(1).is_ok())?);
    out.insert("restart", timed(&|| c.restart(&[1]).is_ok())?);
    std::thread::sleep(Duration::from_millis(300));
    out.insert("pause", timed(&|| c.pause(2).is_ok())?);
    out.insert("resume", timed(&|| c.resume(2).is_ok())?);
    let grudge: raftcheck::cluster::net::Grudge = (0..spec.nodes)
        .map(|i| {
            let others = if i == 0 {
                (1..spec.nodes).collect()
            } else {
                [0].into_iter().collect()
            };
            (i, others)
        })
        .collect();
    out.insert(
        "partition",
        timed(&|| c.network.lock().is_ok_and(|n| n.partition(&grudge).is_ok()))?,
    );
    out.insert(
        "heal",
        timed(&|| c.network.lock().is_ok_and(|n| n.heal().is_ok()))?,
    );
    // A corrupt fault on node 2: kill it, bring its data dir here (over SSH), copy it, flip
    // bits in one file and write that file back. The node then restarts on it (not timed).
    use rand::SeedableRng;
    let rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let kinds = [raftcheck::spec::nemesis::DamageKind::Bitflip];
    out.insert(
        "corrupt",
        timed(&|| {
            let mut r = rng.clone();
            c.corrupt(2, &kinds, "bench", &mut r)
                .map_err(|e| eprintln!("corrupt: {e}"))
                .is_ok_and(|d| d.is_some())
        })?,
    );
    let _ = c.restart(&[2]);
    drop(c);
    let _ = std::fs::remove_dir_all(&run_dir);
    Some(out)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tools/ssh-standin.sh");
    if !nix::unistd::geteuid().is_root() || !Path::new("/usr/sbin/sshd").is_file() {
        eprintln!("SKIPPED: needs root and /usr/sbin/sshd (openssh-server)");
        return;
    }
    let binary = match raftcheck::cluster::find_binary("raftkv") {
        Ok(b) => b,
        Err(e) => {
            eprintln!("SKIPPED: {e} (cargo build --release --workspace)");
            return;
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let tag = format!("b{:x}", std::process::id() & 0xfff);
    let standin = dir.path().join("standin");
    let up = Command::new(&script)
        .args(["up", &tag, "5", "250"])
        .arg(&standin)
        .status()
        .expect("ssh-standin.sh");
    if !up.success() {
        eprintln!("the stand-in did not come up");
        return;
    }
    let hosts = HostsFile::load(&standin.join("hosts.toml")).expect("hosts file");
    let conns: Vec<Arc<SshConn>> = hosts
        .hosts
        .iter()
        .map(|h| Arc::new(SshConn::connect(h).expect("connect")))
        .collect();
    let mut spec = ClusterSpec::load(&root.join("clusters/raftkv.toml")).expect("spec");
    println!("ssh hosts vs netns mode, raftkv, {ROUNDS} interleaved rounds per cell, median ms");
    for nodes in [3usize, 5] {
        spec.nodes = nodes;
        let mut figs: BTreeMap<(&str, bool), Vec<f64>> = BTreeMap::new();
        for _ in 0..ROUNDS {
            for over_ssh in [false, true] {
                let got = round(
                    &spec,
                    &binary,
                    over_ssh.then_some(&conns[..nodes]),
                    dir.path(),
                );
                for (op, v) in got.into_iter().flatten() {
                    figs.entry((op, over_ssh)).or_default().push(v);
                }
            }
        }
        println!("\n{nodes} nodes\n| operation | netns | ssh | ssh / netns |\n|---|---|---|---|");
        for op in OPS {
            let mut a = figs.remove(&(op, false)).unwrap_or_default();
            let mut b = figs.remove(&(op, true)).unwrap_or_default();
            let (a, b) = (median(&mut a), median(&mut b));
            println!("| {op} | {a:.1} | {b:.1} | {:.1} |", b / a);
        }
    }
    drop(conns);
    let _ = Command::new(&script)
        .args(["down", &tag])
        .arg(&standin)
        .status();
}
