//! The nodes of one run: start them from the spec's argv on their hosts, kill, pause, resume,
//! restart them for the nemesis, notice the ones that die on their own, and stop them all.

use super::damage::{self, Damage, DamagePlan, DirCopy};
use super::host::{Host, NodeFiles};
use super::net::Network;
use super::powerfs::{self, Discarded, PowerFs};
use super::process::{NodeProc, SpawnSpec};
use super::ClusterError;
use crate::client::Endpoint;
use crate::spec::{fill, ClusterSpec};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the harness knows of one node's process, behind its own mutex: whether its exit would be a
/// crash, whether it is paused.
struct Slot {
    /// The running process, if any.
    proc: Option<Box<dyn NodeProc>>,
    /// Set when the nemesis (or the harness) killed it: its exit is expected, not a crash.
    expected_down: bool,
    /// Set by [`Cluster::pause`], cleared by resume, kill and respawn; resume sends SIGCONT only
    /// when it is set.
    paused: bool,
    /// A crash was already reported for this incarnation.
    crash_reported: bool,
    /// Its data dir was wiped: from now on it starts with the spec's rejoin args.
    rejoining: bool,
    /// Its data dir was damaged by the corrupt fault and it has not yet been seen to start on
    /// it: an exit now is the server refusing damaged data, not a crash.
    damaged: bool,
}

/// A node that exited without being killed: a finding.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Crash {
    /// The crashed node's name (`n1`, `n2`, ...).
    pub node: String,
    /// How it ended, as the standard library prints an exit status: `exit status: 101`,
    /// `signal: 6 (SIGABRT)`.
    pub status: String,
    /// The last 20 lines of its log, for the report: usually the panic or error that ended it.
    pub log_tail: String,
}

/// The nodes of one run and the network they live on; dropping it stops every node and tears the
/// network down.
pub struct Cluster {
    /// Node names (n1, n2, ...).
    pub names: Vec<String>,
    /// Client endpoints, by node index.
    pub endpoints: Vec<Endpoint>,
    /// The nodes' hosts and links; the nemesis locks it to partition and heal, and drop tears it
    /// down.
    pub network: Mutex<Network>,
    hosts: Vec<Arc<dyn Host>>,
    argv: Vec<Vec<String>>,
    /// Per node: the spec's `rejoin_args`, filled in.
    rejoin: Vec<Vec<String>>,
    /// Per node: its data dir (wiped by the membership nemesis, damaged by storage faults when
    /// it is on this machine) and log, on its host.
    files: Vec<NodeFiles>,
    env: Vec<(String, String)>,
    /// At the end, bring remote data dirs back too (`--keep-data`).
    keep_data: std::sync::atomic::AtomicBool,
    slots: Vec<Mutex<Slot>>,
    run_id: String,
    staged: bool,
    /// Per node: its data dir on the power-loss layer, when the run mounts one.
    disks: Vec<Mutex<Option<PowerFs>>>,
    /// Per node: copies of its data dir taken by corrupt faults, oldest first (at most two: the
    /// one before the latest damage, to repair with, and the one before, to roll back to).
    copies: Vec<Mutex<Vec<DirCopy>>>,
    /// Per node: `nodes/nK`, where copies and the layer's backing dir live.
    node_dirs: Vec<PathBuf>,
    /// The spec's `corrupt_paths`, compiled.
    corrupt_paths: Vec<glob::Pattern>,
    /// Numbers the copies' directories.
    copy_seq: std::sync::atomic::AtomicU64,
    /// On loopback: the claim on this run's port base (see [`ports`]), released with the run.
    _ports_claim: Option<nix::fcntl::Flock<std::fs::File>>,
}

/// Ports for node i: in netns mode every node has its own IP, so the spec's ports as they are;
/// on loopback, node i gets `base + i`, with the bases moved up until all are free (parallel
/// runs must not collide). A free port is not enough: two runs starting together would both
/// see the same ports free before either server binds, and a server that stays up when its
/// bind fails would leave one run's clients talking to the other's cluster. So each base is
/// also claimed with an flock on `<lock dir>/raftcheck-ports-<base>.lock`, held (the returned
/// guard) for the run's life and dropped by the kernel even when the run is killed. The lock
/// files stay: at most one per base tried, empty.
fn ports(
    spec: &ClusterSpec,
    n: usize,
    shared_ip: bool,
) -> (Vec<(u16, u16)>, Option<nix::fcntl::Flock<std::fs::File>>) {
    let (c, p) = (spec.client_port, spec.peer_port());
    if !shared_ip {
        return (vec![(c, p); n], None);
    }
    let free = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();
    // Err: another live run holds this base. Ok(None): no lock file can be made here (a
    // read-only lock dir), so only the free-port check protects the base.
    let claim = |base: u16| {
        let path = super::net::lock_dir().join(format!("raftcheck-ports-{base}.lock"));
        let Ok(file) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
        else {
            return Ok(None);
        };
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map(Some)
            .map_err(|_| ())
    };
    for shift in 0..200u16 {
        let off = shift * 10;
        let cand: Vec<(u16, u16)> = (0..n as u16)
            .map(|i| (c.saturating_add(off + i), p.saturating_add(off + i)))
            .collect();
        let Ok(guard) = claim(c.saturating_add(off)) else {
            continue;
        };
        if cand.iter().all(|&(a, b)| free(a) && (a == b || free(b))) {
            return (cand, guard);
        }
    }
    ((0..n as u16).map(|i| (c + i, p + i)).collect(), None)
}

impl Cluster {
    /// Lay out and start every node of `spec` on `network`'s hosts. `extra_args` go after the
    /// spec's argv on every node (e.g. a raftkv `--bug` switch). Nodes are not waited for.
    pub fn start(
        spec: &ClusterSpec,
        binary: &Path,
        network: Network,
        run_dir: &Path,
        run_id: &str,
        extra_args: &[String],
        storage_layer: Option<powerfs::DirModel>,
    ) -> Result<Cluster, ClusterError> {
        let hosts = network.hosts();
        let n = hosts.len();
        let names: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        let ips: Vec<IpAddr> = hosts.iter().map(|h| h.ip()).collect();
        let shared_ip = ips.windows(2).any(|w| w[0] == w[1]);
        let (ports, ports_claim) = ports(spec, n, shared_ip);
        let mut base: Vec<BTreeMap<&str, String>> = Vec::new();
        for i in 0..n {
            let mut v = BTreeMap::new();
            v.insert("id", (i + 1).to_string());
            v.insert("name", names[i].clone());
            v.insert("ip", ips[i].to_string());
            v.insert("client_port", ports[i].0.to_string());
            v.insert("peer_port", ports[i].1.to_string());
            v.insert("run_id", run_id.to_string());
            base.push(v);
        }
        let join = |fmt: &str| {
            base.iter()
                .map(|v| fill(fmt, v))
                .collect::<Vec<_>>()
                .join(",")
        };
        let peers = join(&spec.peers_entry);
        let initial = join(&spec.initial_cluster_entry);
        let first = base
            .first()
            .map(|v| fill(&spec.join_entry, v))
            .unwrap_or_default();
        // `{seeds}`: the peers list without the node itself (a seed list to join through).
        let seeds: Vec<String> = (0..n)
            .map(|me| {
                base.iter()
                    .enumerate()
                    .filter(|&(j, _)| j != me)
                    .map(|(_, v)| fill(&spec.peers_entry, v))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        let mut argv = Vec::new();
        let mut rejoin = Vec::new();
        let mut files = Vec::new();
        let mut endpoints = Vec::new();
        let mut disks = Vec::new();
        let mut node_dirs = Vec::new();
        for (i, vars) in base.iter_mut().enumerate() {
            let node_dir = run_dir.join("nodes").join(&names[i]);
            std::fs::create_dir_all(&node_dir).map_err(|e| ClusterError::Node {
                node: names[i].clone(),
                msg: format!("creating {}: {e}", node_dir.display()),
            })?;
            let host = &hosts[i];
            let here = host.prepare(&node_dir)?;
            let node_binary = host.install(binary)?;
            let data = here.data.clone();
            let disk = if let Some(model) = storage_layer {
                if !host.files_are_local() {
                    return Err(ClusterError::Node {
                        node: names[i].clone(),
                        msg: "the power-loss layer needs the node's data dir on this machine"
                            .into(),
                    });
                }
                let fs = PowerFs::mount(
                    &data,
                    &node_dir.join("disk"),
                    &node_dir.join("disk-trash"),
                    &powerfs::fs_name(run_id, &names[i]),
                    model,
                )
                .map_err(|e| ClusterError::Node {
                    node: names[i].clone(),
                    msg: format!("mounting the power-loss layer on {}: {e}", data.display()),
                })?;
                Some(fs)
            } else {
                None
            };
            disks.push(Mutex::new(disk));
            node_dirs.push(node_dir.clone());
            vars.insert("data_dir", data.display().to_string());
            vars.insert("peers", peers.clone());
            vars.insert("initial_cluster", initial.clone());
            vars.insert("seeds", seeds[i].clone());
            vars.insert("join", first.clone());
            let mut a = vec![node_binary.display().to_string()];
            a.extend(spec.args.iter().map(|t| fill(t, vars)));
            let own = if i == 0 {
                &spec.first_args
            } else {
                &spec.join_args
            };
            a.extend(own.iter().map(|t| fill(t, vars)));
            a.extend(extra_args.iter().cloned());
            argv.push(a);
            rejoin.push(spec.rejoin_args.iter().map(|t| fill(t, vars)).collect());
            files.push(here);
            endpoints.push(Endpoint {
                index: i,
                id: i as u64 + 1,
                name: names[i].clone(),
                addr: SocketAddr::new(ips[i], ports[i].0),
            });
        }
        let env = spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let slots = (0..n)
            .map(|_| {
                Mutex::new(Slot {
                    proc: None,
                    expected_down: false,
                    paused: false,
                    crash_reported: false,
                    rejoining: false,
                    damaged: false,
                })
            })
            .collect();
        let corrupt_paths = spec
            .corrupt_paths
            .iter()
            .map(|p| glob::Pattern::new(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClusterError::Other(format!("corrupt_paths: {e}")))?;
        let c = Cluster {
            names,
            endpoints,
            network: Mutex::new(network),
            hosts,
            argv,
            rejoin,
            files,
            env,
            keep_data: std::sync::atomic::AtomicBool::new(false),
            slots,
            run_id: run_id.to_string(),
            staged: !spec.join_args.is_empty() && n > 1,
            disks,
            copies: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
            node_dirs,
            _ports_claim: ports_claim,
            corrupt_paths,
            copy_seq: std::sync::atomic::AtomicU64::new(0),
        };
        // Nodes that join the first one start once it is ready: see `start_the_rest`.
        let now = if c.staged { 1.min(n) } else { n };
        for i in 0..now {
            c.spawn(i)?;
        }
        Ok(c)
    }

    /// Whether the cluster starts in two steps: the first node alone, then (once it is ready)
    /// the nodes that join it. True when the spec gives `join_args`.
    pub(crate) fn staged(&self) -> bool {
        self.staged
    }

    /// Start every node not started yet (the joiners of a staged start).
    pub(crate) fn start_the_rest(&self) -> Result<Vec<usize>, ClusterError> {
        let all: Vec<usize> = (0..self.len()).collect();
        self.restart(&all)
    }

    /// How many nodes the run started (the spec's count after `--nodes`); indices `0..len()` name
    /// them everywhere, node `n1` being 0.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True for a cluster of no nodes (never, in practice).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The argv node i is started with (for results.json and error messages).
    pub fn argv(&self, i: usize) -> &[String] {
        &self.argv[i]
    }

    fn spawn(&self, i: usize) -> Result<(), ClusterError> {
        let mut argv = self.argv[i].clone();
        if self.slot(i).rejoining {
            argv.extend(self.rejoin[i].iter().cloned());
        }
        let p = self.hosts[i].spawn(&SpawnSpec {
            argv,
            env: self.env.clone(),
            log: self.files[i].log.clone(),
            run_id: self.run_id.clone(),
            node: self.names[i].clone(),
        })?;
        let mut s = self.slot(i);
        s.proc = Some(p);
        s.expected_down = false;
        s.paused = false;
        s.crash_reported = false;
        Ok(())
    }

    fn slot(&self, i: usize) -> std::sync::MutexGuard<'_, Slot> {
        self.slots[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// SIGKILL node i (its exit is then expected).
    pub fn kill(&self, i: usize) -> Result<(), ClusterError> {
        let mut s = self.slot(i);
        s.expected_down = true;
        s.paused = false;
        match &s.proc {
            Some(p) => p.kill(),
            None => Ok(()),
        }
    }

    /// SIGSTOP node i.
    pub fn pause(&self, i: usize) -> Result<(), ClusterError> {
        let mut s = self.slot(i);
        let Some(p) = &s.proc else {
            return Err(ClusterError::Node {
                node: self.names[i].clone(),
                msg: "not running".into(),
            });
        };
        p.pause()?;
        s.paused = true;
        Ok(())
    }

    /// SIGCONT node i if paused.
    pub fn resume(&self, i: usize) -> Result<(), ClusterError> {
        let mut s = self.slot(i);
        if let Some(p) = &s.proc {
            if s.paused {
                p.resume()?;
            }
        }
        s.paused = false;
        Ok(())
    }

    /// SIGKILL node i and wait (at most 10 s) until it has exited, so nothing writes to its
    /// data dir any more; `what` names what would have been done next, for the error.
    fn kill_and_wait(&self, i: usize, what: &str) -> Result<(), ClusterError> {
        self.kill(i)?;
        let exited = self
            .slot(i)
            .proc
            .as_ref()
            .is_none_or(|p| p.wait_exit(Duration::from_secs(10)).is_some());
        if exited {
            Ok(())
        } else {
            Err(ClusterError::Node {
                node: self.names[i].clone(),
                msg: format!("still running 10 s after SIGKILL; {what}"),
            })
        }
    }

    /// Kill node i, wait for it to exit, and empty its data dir; it restarts (at the next
    /// [`Cluster::restart`]) with the spec's rejoin args, as a new server waiting to be added.
    /// The membership nemesis calls this only after the node's removal committed.
    pub fn wipe(&self, i: usize) -> Result<(), ClusterError> {
        self.kill_and_wait(i, "data dir not wiped")?;
        let mut disk = self.disk(i);
        if let Some(fs) = disk.as_mut() {
            // A new, empty disk: nothing of the old one may come back at a power loss.
            fs.wipe().map_err(|e| ClusterError::Node {
                node: self.names[i].clone(),
                msg: format!("wiping {}: {e}", self.files[i].data.display()),
            })?;
        } else {
            self.hosts[i].wipe(&self.files[i])?;
        }
        drop(disk);
        self.slot(i).rejoining = true;
        Ok(())
    }

    fn disk(&self, i: usize) -> std::sync::MutexGuard<'_, Option<PowerFs>> {
        self.disks[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The second half of a power loss on node i (the nemesis has killed every target first,
    /// so a coordinated power failure stops them together): wait for it to exit, then roll its
    /// data dir back to what was durable (see [`powerfs`]). It stays down until restarted.
    pub fn power_loss(&self, i: usize, torn_seed: Option<u64>) -> Result<Discarded, ClusterError> {
        self.kill_and_wait(i, "its disk was not rolled back")?;
        let mut disk = self.disk(i);
        let fs = disk.as_mut().ok_or_else(|| ClusterError::Node {
            node: self.names[i].clone(),
            msg: "its data dir is not on the power-loss layer".into(),
        })?;
        fs.power_loss(torn_seed).map_err(|e| ClusterError::Node {
            node: self.names[i].clone(),
            msg: format!("power loss: {e}"),
        })
    }

    /// The second half of a corrupt fault on node i (killed first by the nemesis): wait for it
    /// to exit, copy its data dir (to repair it with, and for a later rollback), and damage one
    /// file. `Ok(None)`: no file to damage. Until [`Cluster::settle_damaged`], an exit of the
    /// node is its refusal of the damage, not a crash.
    pub fn corrupt(
        &self,
        i: usize,
        kinds: &[crate::spec::nemesis::DamageKind],
        label: &str,
        rng: &mut rand_chacha::ChaCha8Rng,
    ) -> Result<Option<Damage>, ClusterError> {
        self.kill_and_wait(i, "its data dir was not damaged")?;
        let fail = |e: damage::DamageError| ClusterError::Node {
            node: self.names[i].clone(),
            msg: format!("corrupt: {e}"),
        };
        let host = &self.hosts[i];
        let work = host.fetch_data(&self.files[i], &self.node_dirs[i].join("fetched"))?;
        let mut copies = self.copies[i].lock().unwrap_or_else(|e| e.into_inner());
        let seq = self
            .copy_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let into = self.node_dirs[i].join("copies").join(seq.to_string());
        let copy = damage::copy_dir(&work, &into, label).map_err(fail)?;
        let plan = DamagePlan {
            kinds: kinds.to_vec(),
            node: i,
            nodes: self.len(),
            paths: self.corrupt_paths.clone(),
        };
        let done = damage::choose_and_apply(&work, &plan, rng, copies.last()).map_err(fail)?;
        if let Some(d) = &done {
            host.write_back(&self.files[i], &work, Path::new(&d.file))?;
        }
        copies.push(copy);
        while copies.len() > 2 {
            let old = copies.remove(0);
            let _ = std::fs::remove_dir_all(&old.root);
        }
        drop(copies);
        if done.is_some() {
            self.slot(i).damaged = true;
        }
        Ok(done)
    }

    /// After a corrupt fault's restart: if node i has exited (it refused its damaged data),
    /// put back the copy taken before the damage (an operator restoring the replica) and
    /// return the exit status; the caller restarts it. `None`: it is running on the damage.
    pub(crate) fn refused_damage(&self, i: usize) -> Result<Option<String>, ClusterError> {
        let Some(status) = self.exit_status(i) else {
            return Ok(None);
        };
        let copies = self.copies[i].lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = copies.last() {
            self.hosts[i].restore_data(&self.files[i], c)?;
        }
        Ok(Some(status.to_string()))
    }

    /// Node i has been seen to run after its damage (or was repaired): from now on its exits
    /// are crashes again.
    pub(crate) fn settle_damaged(&self, i: usize) {
        self.slot(i).damaged = false;
    }

    /// How node i's current process ended, if it has.
    pub(crate) fn exit_status(&self, i: usize) -> Option<std::process::ExitStatus> {
        self.slot(i).proc.as_ref().and_then(|p| p.exited())
    }

    /// Whether node i is running (started and not exited).
    pub(crate) fn is_up(&self, i: usize) -> bool {
        let s = self.slot(i);
        s.proc.as_ref().is_some_and(|p| p.exited().is_none())
    }

    /// Restart every node in `nodes` that is not running, all at once (some servers, etcd among
    /// them, only open their client port after rejoining a quorum). Returns the nodes started.
    pub fn restart(&self, nodes: &[usize]) -> Result<Vec<usize>, ClusterError> {
        let mut started = Vec::new();
        for &i in nodes {
            if !self.is_up(i) {
                self.slot(i).proc = None;
                self.spawn(i)?;
                started.push(i);
            }
        }
        Ok(started)
    }

    /// Resume every paused node and restart every dead one.
    pub(crate) fn heal_processes(&self) -> Result<Vec<usize>, ClusterError> {
        for i in 0..self.len() {
            self.resume(i)?;
        }
        let all: Vec<usize> = (0..self.len()).collect();
        self.restart(&all)
    }

    /// Nodes that exited without being killed, each reported once per incarnation.
    pub(crate) fn new_crashes(&self) -> Vec<Crash> {
        let mut out = Vec::new();
        for i in 0..self.len() {
            let mut s = self.slot(i);
            if s.expected_down || s.crash_reported || s.damaged {
                continue;
            }
            if let Some(st) = s.proc.as_ref().and_then(|p| p.exited()) {
                s.crash_reported = true;
                drop(s);
                out.push(Crash {
                    node: self.names[i].clone(),
                    status: st.to_string(),
                    log_tail: self.log_tail(i, 20),
                });
            }
        }
        out
    }

    /// The last `lines` lines of node i's log.
    pub(crate) fn log_tail(&self, i: usize, lines: usize) -> String {
        self.hosts[i].tail(&self.files[i], lines)
    }

    /// Where node i's log is once the cluster is dropped: a remote host's log is copied into
    /// the run dir then, and its copy on the host removed, so that is the path to tell a user.
    pub(crate) fn log_path(&self, i: usize) -> PathBuf {
        if self.hosts[i].files_are_local() {
            self.files[i].log.clone()
        } else {
            self.node_dirs[i].join("log")
        }
    }

    /// With `keep`, remote data dirs are copied back into the run dir at the end (local ones
    /// are there already; `--keep-data` decides whether they stay).
    pub(crate) fn keep_data(&self, keep: bool) {
        self.keep_data
            .store(keep, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stop every node (SIGCONT, SIGTERM, then SIGKILL after `grace`).
    pub(crate) fn stop_all(&self, grace: Duration) {
        for i in 0..self.len() {
            let mut s = self.slot(i);
            s.expected_down = true;
            if let Some(p) = &s.proc {
                if let Err(e) = p.stop(grace) {
                    tracing::warn!("stopping {}: {e}", self.names[i]);
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all(Duration::from_secs(2));
        for (i, d) in self.disks.iter_mut().enumerate() {
            let layer = d
                .get_mut()
                .map(Option::take)
                .unwrap_or_else(|e| e.into_inner().take());
            if layer.is_none() {
                continue;
            }
            // Unmount, then leave the node's files where a run without the layer has them.
            drop(layer);
            let data = &self.files[i].data;
            let disk = self.node_dirs[i].join("disk");
            let moved = std::fs::remove_dir(data).and_then(|()| std::fs::rename(&disk, data));
            if let Err(e) = moved {
                eprintln!(
                    "raftcheck: warning: {}: the node's files stay in {} ({e})",
                    self.names[i],
                    disk.display()
                );
            }
            let _ = std::fs::remove_dir_all(self.node_dirs[i].join("disk-trash"));
        }
        for i in 0..self.copies.len() {
            let _ = std::fs::remove_dir_all(self.node_dirs[i].join("copies"));
            let _ = std::fs::remove_dir_all(self.node_dirs[i].join("fetched"));
        }
        let keep = self.keep_data.load(std::sync::atomic::Ordering::Relaxed);
        let remote = self.hosts.iter().any(|h| !h.files_are_local());
        let clean = if remote {
            "`raftcheck clean --hosts <hosts file>` once the host answers"
        } else {
            "run `raftcheck clean`"
        };
        for (i, h) in self.hosts.iter().enumerate() {
            if let Err(e) = h.collect(&self.files[i], &self.node_dirs[i], keep) {
                eprintln!(
                    "raftcheck: warning: {}: not all collected and removed, it may still run \
                     there ({clean}): {e}",
                    self.names[i]
                );
            }
        }
        let left = self
            .network
            .get_mut()
            .map(|n| n.teardown())
            .unwrap_or_default();
        for l in left {
            eprintln!("raftcheck: warning: could not remove {l} ({clean})");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_port_bases_are_claimed_so_parallel_runs_never_share_them() {
        // A base unlikely to meet another test's ports; every candidate is checked free anyway.
        let base = 40_000 + (std::process::id() % 500) as u16 * 10;
        let spec: ClusterSpec = toml::from_str(&format!(
            "binary = \"x\"\nclient = \"raftkv\"\nclient_port = {base}\npeer_port = {}\n",
            base + 5_000
        ))
        .expect("spec");
        let (a, claim_a) = ports(&spec, 3, true);
        assert!(claim_a.is_some(), "no base could be claimed");
        // A second run while the first holds its claim: another base, though the first run's
        // servers have not bound anything yet.
        let (b, claim_b) = ports(&spec, 3, true);
        assert!(claim_b.is_some());
        assert_ne!(a[0], b[0], "two live runs got the same ports");
        assert!(a.iter().all(|x| !b.contains(x)), "{a:?} overlaps {b:?}");
        // Released with the run: the next run may have the first base again.
        drop(claim_a);
        let (c, _claim_c) = ports(&spec, 3, true);
        assert_eq!(c, a);
        // Separate addresses need no claim.
        let (d, none) = ports(&spec, 3, false);
        assert!(none.is_none());
        assert_eq!(d, vec![(base, base + 5_000); 3]);
        drop((claim_b, _claim_c));
        for used in [a[0].0, b[0].0] {
            let _ = std::fs::remove_file(
                super::super::net::lock_dir().join(format!("raftcheck-ports-{used}.lock")),
            );
        }
    }
}
