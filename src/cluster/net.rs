//! The run's network: one namespace per node on a bridge the run creates (netns mode), or plain
//! loopback; and the only place that turns a partition (a [`Grudge`]) into iptables rules.
//!
//! # Names and addresses
//!
//! Every resource carries the run id, so `raftcheck clean` can find what an interrupted run left
//! behind ([`run_id_of`] recognises the names):
//!
//! | resource                | name / tag                                        |
//! |-------------------------|---------------------------------------------------|
//! | run id                  | `rc` + 4 of `[a-z0-9]`, e.g. `rc7f3a` ([`new_run_id`]) |
//! | the run's lock          | `/run/lock/raftcheck-run-rc7f3a.lock` (see [`super::runlock`]) |
//! | node k's namespace      | `rc7f3a-n1`, `rc7f3a-n2`, ...                     |
//! | the bridge              | `rc7f3a-br`                                       |
//! | node k's veth (root end)| `rc7f3a-v1`, ...; its peer is `eth0` in the namespace (named `rc7f3a-p1` for a moment while being moved) |
//! | every iptables rule     | `-m comment --comment raftcheck:rc7f3a`           |
//! | a node's environment    | `RAFTCHECK_RUN_ID=rc7f3a`                         |
//!
//! Interface names stay far below Linux's 15-character limit (a run id is at most 8).
//!
//! The subnet is a /24: given by the user, or else the first free one found from a random start
//! in 10.231.0.0/16. In it the bridge (the harness's own address) is `.1` and node `nK` is
//! `.(10+K)`, so `n1` is `10.231.X.11`, `n2` is `.12`: the last digit is the node's number.
//! "Free" means no existing address or route overlaps it and no live run holds its lock file
//! (`/run/lock/raftcheck-subnet-10.231.X.0.lock`, an `flock` released when the run's process
//! dies; teardown deletes the file, the global `clean` deletes stale ones), so concurrent runs
//! never share a subnet. The namespaces get no default route: traffic
//! from a node can only reach the bridge's subnet.
//!
//! # Partitions
//!
//! A [`Grudge`] maps a node to the nodes whose packets it drops (Jepsen's term). Node `i`
//! dropping `j` is `iptables -A INPUT -s IP_j -j DROP` inside `i`'s namespace. Source-address
//! DROP on input also stops `i`'s own connections to `j` (the answers are dropped) and
//! established connections. Node interfaces get no IPv6 address (`addrgenmode none`), so these
//! IPv4 rules cover every path between nodes. Only node addresses are ever matched, never the
//! bridge's, so the harness always reaches every node. The root namespace's FORWARD chain filters bridged traffic
//! on this machine (bridge-nf-call-iptables), hence the run's `FORWARD -i BR -o BR -j ACCEPT`.

use super::host::{run, run_stdout, Host, LocalHost, NetnsHost};
use super::runlock::RunLock;
use super::ClusterError;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every run id starts with this; resource names start with the run id.
pub const RUN_ID_PREFIX: &str = "rc";

/// Every iptables rule a run adds has the comment `raftcheck:<run_id>`.
pub(crate) const RULE_COMMENT_PREFIX: &str = "raftcheck:";

/// The pool automatic subnets come from: `10.231.X.0/24`.
pub(crate) const SUBNET_POOL: &str = "10.231.0.0/16";

/// The first two octets of [`SUBNET_POOL`].
const POOL: [u8; 2] = [10, 231];

/// The most nodes a network holds (addresses `.11` to `.110`).
pub(crate) const MAX_NODES: usize = 100;

/// Seconds iptables waits for the xtables lock: concurrent runs (and every namespace) share it.
pub(crate) const IPTABLES_WAIT: &str = "10";

/// Where nodes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetMode {
    /// Each node in its own network namespace with its own IP, on a bridge: every fault works.
    Netns,
    /// Every node on 127.0.0.1 with its own ports: no root needed, no partitions.
    Loopback,
    /// Each node on its own machine, reached over SSH (`--hosts`); partitions are iptables
    /// rules on the hosts.
    Ssh,
}

impl NetMode {
    /// The name users see (`netns`, `loopback`).
    pub fn as_str(self) -> &'static str {
        match self {
            NetMode::Netns => "netns",
            NetMode::Loopback => "loopback",
            NetMode::Ssh => "ssh",
        }
    }
}

impl std::fmt::Display for NetMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A grudge: node index -> node indices whose packets it drops (Jepsen's term). Pure data; the
/// nemesis builds it, [`Network::partition`] installs it. A node listed as dropping itself is
/// ignored.
pub type Grudge = BTreeMap<usize, BTreeSet<usize>>;

/// A fresh run id, with the run's lock taken on it (see [`super::runlock`]): hold the lock for
/// as long as anything carries the id, so `raftcheck clean` leaves the run alone. The id is
/// [`RUN_ID_PREFIX`] and four characters of `[a-z0-9]` (6 in all), short enough that every
/// interface name derived from it fits Linux's 15 characters. An id with a lock file, live or
/// stale, is never handed out: another is picked.
pub fn new_run_id() -> Result<RunLock, ClusterError> {
    RunLock::claim_in(&lock_dir())
}

/// A random run id, not checked against anything ([`new_run_id`] does that).
pub(crate) fn random_run_id() -> String {
    use rand::RngExt;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut id = String::from(RUN_ID_PREFIX);
    for _ in 0..4 {
        id.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    id
}

/// Whether `s` is a valid run id: [`RUN_ID_PREFIX`] then 1 to 6 of `[a-z0-9]`.
pub(crate) fn is_run_id(s: &str) -> bool {
    s.len() > RUN_ID_PREFIX.len()
        && s.len() <= 8
        && s.starts_with(RUN_ID_PREFIX)
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The run id in a resource name that raftcheck made (`rc7f3a-n1`, `rc7f3a-br`, `rc7f3a-v2`,
/// `rc7f3a-p2`), or `None` for anything else. This is how `clean` tells our leftovers from
/// other people's interfaces.
pub fn run_id_of(name: &str) -> Option<&str> {
    let (id, kind) = name.split_once('-')?;
    let numbered = |p: char| {
        kind.strip_prefix(p)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let ours = kind == "br" || numbered('n') || numbered('v') || numbered('p');
    (ours && is_run_id(id)).then_some(id)
}

/// The comment every iptables rule of run `run_id` carries.
pub fn rule_comment(run_id: &str) -> String {
    format!("{RULE_COMMENT_PREFIX}{run_id}")
}

/// Node `i`'s (0-based) namespace name.
pub(crate) fn netns_name(run_id: &str, i: usize) -> String {
    format!("{run_id}-n{}", i + 1)
}

/// `<run id>-br`: the bridge every node's veth joins, which `clean` finds by this name.
pub fn bridge_name(run_id: &str) -> String {
    format!("{run_id}-br")
}

fn veth_name(run_id: &str, i: usize) -> String {
    format!("{run_id}-v{}", i + 1)
}

fn peer_name(run_id: &str, i: usize) -> String {
    format!("{run_id}-p{}", i + 1)
}

/// Node `i`'s (0-based) address in the /24 whose network address is `subnet`: `.(11 + i)`.
pub(crate) fn node_ip(subnet: Ipv4Addr, i: usize) -> Ipv4Addr {
    let [a, b, c, _] = subnet.octets();
    Ipv4Addr::new(a, b, c, (11 + i) as u8)
}

/// The bridge's (harness's) address in the /24 whose network address is `subnet`: `.1`.
pub fn bridge_ip(subnet: Ipv4Addr) -> Ipv4Addr {
    let [a, b, c, _] = subnet.octets();
    Ipv4Addr::new(a, b, c, 1)
}

/// The run's network: how nodes are placed and the only place partitions are made.
pub struct Network {
    /// Tags every resource.
    run_id: String,
    /// Netns or loopback, fixed at creation; loopback has no fabric and cannot partition.
    mode: NetMode,
    /// One host per node, index order.
    hosts: Vec<Arc<dyn Host>>,
    /// The namespaces, bridge and veths (netns mode only).
    fabric: Option<Fabric>,
    /// Teardown has run and left nothing behind: `Drop` has nothing to do.
    clean: bool,
}

/// What netns mode creates, by name, so teardown can delete exactly that.
struct Fabric {
    /// The /24's network address.
    subnet: Ipv4Addr,
    /// The bridge's name (`<run id>-br`); it holds the harness's address, `.1`.
    bridge: String,
    /// Node i's namespace, `<run id>-n<i+1>`, by node index; the node runs inside it.
    namespaces: Vec<String>,
    /// The root-side veth of each node.
    veths: Vec<String>,
    /// The temporary name of each node's peer veth (only seen if creation failed mid-way).
    peers: Vec<String>,
    /// Each node's address.
    ips: Vec<Ipv4Addr>,
    /// Our claim on the subnet; held until teardown succeeds.
    lock: Option<SubnetLock>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("run_id", &self.run_id)
            .field("mode", &self.mode)
            .field("subnet", &self.subnet())
            .finish()
    }
}

impl Network {
    /// Pick the mode: netns when running as root with `ip` and `iptables` working, else
    /// loopback. The string says why, for the user (a run that silently lost its partitions
    /// would mislead).
    pub fn detect() -> (NetMode, String) {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            return (
                NetMode::Loopback,
                format!(
                    "loopback mode: not running as root (uid {euid}); netns mode (and partitions) \
                     needs root with `ip` and `iptables`"
                ),
            );
        }
        for probe in [
            &["ip", "netns", "list"][..],
            &["iptables", "-w", IPTABLES_WAIT, "-S", "FORWARD"][..],
        ] {
            if let Err(e) = run(probe) {
                return (
                    NetMode::Loopback,
                    format!("loopback mode: running as root, but {e}; partitions are unavailable"),
                );
            }
        }
        (
            NetMode::Netns,
            "netns mode: running as root with `ip` and `iptables`; each node gets its own \
             network namespace and address"
                .into(),
        )
    }

    /// Create the network for `nodes` nodes: namespaces, bridge, veths and the FORWARD rule in
    /// netns mode, nothing in loopback mode. `subnet` (netns only) is a /24 such as
    /// `10.231.5.0/24`; without it a free one is picked in [`SUBNET_POOL`] (loopback mode ignores
    /// it). On any failure mid-way, whatever was made is torn down again.
    pub fn create(
        run_id: &str,
        nodes: usize,
        mode: NetMode,
        subnet: Option<&str>,
    ) -> Result<Network, ClusterError> {
        if !is_run_id(run_id) {
            return Err(ClusterError::Other(format!(
                "bad run id {run_id:?}: it must be {RUN_ID_PREFIX:?} followed by 1 to 6 of \
                 [a-z0-9] (see new_run_id)"
            )));
        }
        if nodes == 0 || nodes > MAX_NODES {
            return Err(ClusterError::Other(format!(
                "a network holds 1 to {MAX_NODES} nodes, not {nodes}"
            )));
        }
        let mut net = Network {
            run_id: run_id.into(),
            mode,
            hosts: Vec::new(),
            fabric: None,
            clean: false,
        };
        match mode {
            NetMode::Ssh => {
                return Err(ClusterError::Other(
                    "ssh mode needs the hosts' connections: see Network::over_ssh".into(),
                ))
            }
            NetMode::Loopback => {
                net.hosts = (0..nodes)
                    .map(|i| Arc::new(LocalHost::new(&format!("n{}", i + 1))) as Arc<dyn Host>)
                    .collect();
                net.clean = true;
            }
            NetMode::Netns => {
                refuse_taken_names(run_id)?;
                let (net_addr, lock) = claim_subnet(subnet)?;
                net.fabric = Some(Fabric {
                    subnet: net_addr,
                    bridge: bridge_name(run_id),
                    namespaces: (0..nodes).map(|i| netns_name(run_id, i)).collect(),
                    veths: (0..nodes).map(|i| veth_name(run_id, i)).collect(),
                    peers: (0..nodes).map(|i| peer_name(run_id, i)).collect(),
                    ips: (0..nodes).map(|i| node_ip(net_addr, i)).collect(),
                    lock: Some(lock),
                });
                if let Err(e) = net.build() {
                    let left = net.teardown();
                    if !left.is_empty() {
                        tracing::warn!(run_id, ?left, "partial network not fully removed");
                    }
                    return Err(e);
                }
            }
        }
        Ok(net)
    }

    /// The network of a run over SSH: node i on `conns[i]`'s host, at its address. Nothing is
    /// created; partitions are iptables rules on the hosts, tagged with the run id.
    pub fn over_ssh(
        run_id: &str,
        conns: &[Arc<super::ssh::SshConn>],
    ) -> Result<Network, ClusterError> {
        if !is_run_id(run_id) {
            return Err(ClusterError::Other(format!("bad run id {run_id:?}")));
        }
        Ok(Network {
            run_id: run_id.into(),
            mode: NetMode::Ssh,
            hosts: conns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    Arc::new(super::ssh::SshHost::new(
                        c.clone(),
                        &format!("n{}", i + 1),
                        run_id,
                    )) as Arc<dyn Host>
                })
                .collect(),
            fabric: None,
            clean: false,
        })
    }

    /// Make the bridge, the FORWARD rule and each node's namespace and veth.
    fn build(&mut self) -> Result<(), ClusterError> {
        let comment = rule_comment(&self.run_id);
        let Some(f) = &self.fabric else {
            return Ok(());
        };
        let br = f.bridge.as_str();
        let br_addr = format!("{}/24", bridge_ip(f.subnet));
        run(&["ip", "link", "add", br, "type", "bridge"])?;
        run(&["ip", "addr", "add", &br_addr, "dev", br])?;
        run(&["ip", "link", "set", br, "up"])?;
        run(&[
            "iptables",
            "-w",
            IPTABLES_WAIT,
            "-I",
            "FORWARD",
            "-i",
            br,
            "-o",
            br,
            "-j",
            "ACCEPT",
            "-m",
            "comment",
            "--comment",
            &comment,
        ])?;
        let mut hosts: Vec<Arc<dyn Host>> = Vec::new();
        for i in 0..f.namespaces.len() {
            let (ns, veth, peer) = (&f.namespaces[i], &f.veths[i], &f.peers[i]);
            let addr = format!("{}/24", f.ips[i]);
            run(&["ip", "netns", "add", ns])?;
            run(&[
                "ip", "link", "add", veth, "type", "veth", "peer", "name", peer,
            ])?;
            run(&["ip", "link", "set", peer, "netns", ns])?;
            run(&["ip", "-n", ns, "link", "set", peer, "name", "eth0"])?;
            run(&["ip", "-n", ns, "addr", "add", &addr, "dev", "eth0"])?;
            // IPv4 only: partitions are iptables (IPv4) rules, so the node interfaces get no
            // IPv6 link-local address through which peers could still talk. Best effort: an
            // old iproute2 without addrgenmode only loses this safety margin.
            let _ = run(&["ip", "-n", ns, "link", "set", "eth0", "addrgenmode", "none"]);
            run(&["ip", "-n", ns, "link", "set", "eth0", "up"])?;
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
            run(&["ip", "link", "set", veth, "master", br])?;
            run(&["ip", "link", "set", veth, "up"])?;
            hosts.push(Arc::new(NetnsHost::new(
                &format!("n{}", i + 1),
                ns,
                f.ips[i],
            )));
        }
        self.hosts = hosts;
        tracing::info!(run_id = %self.run_id, subnet = %f.subnet, nodes = f.namespaces.len(),
            "network created");
        Ok(())
    }

    /// The mode the network was created in; partitions are possible in netns mode only.
    pub fn mode(&self) -> NetMode {
        self.mode
    }

    /// The run id every resource carries.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// One host per node, in index order (`n1` first).
    pub fn hosts(&self) -> Vec<Arc<dyn Host>> {
        self.hosts.clone()
    }

    /// The subnet (`10.231.5.0/24`), netns mode only.
    pub fn subnet(&self) -> Option<String> {
        self.fabric.as_ref().map(|f| format!("{}/24", f.subnet))
    }

    /// The harness's own address on the bridge, netns mode only. Partitions never match it.
    pub fn bridge_ip(&self) -> Option<IpAddr> {
        self.fabric
            .as_ref()
            .map(|f| IpAddr::V4(bridge_ip(f.subnet)))
    }

    /// Replace the current partition with `grudge`: heal, then for every `i -> {j...}` add
    /// `iptables -A INPUT -s IP_j -j DROP` (commented `raftcheck:<run_id>`) in `i`'s namespace.
    /// Netns mode only: loopback cannot partition, and says so rather than pretend.
    pub fn partition(&self, grudge: &Grudge) -> Result<(), ClusterError> {
        if self.mode == NetMode::Loopback {
            return Err(ClusterError::Other(
                "partitions need netns mode (root with `ip` and `iptables`); this run uses \
                 loopback mode"
                    .into(),
            ));
        }
        let n = self.hosts.len();
        for (i, peers) in grudge {
            if let Some(bad) = std::iter::once(i).chain(peers).find(|&&x| x >= n) {
                return Err(ClusterError::Other(format!(
                    "grudge names node index {bad}, but the cluster has {n} nodes"
                )));
            }
        }
        let comment = rule_comment(&self.run_id);
        let drops: Vec<Vec<IpAddr>> = (0..n)
            .map(|i| {
                grudge
                    .get(&i)
                    .map(|peers| {
                        peers
                            .iter()
                            .filter(|&&j| j != i)
                            .map(|&j| self.hosts[j].ip())
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        if let Err(e) = self.replace_drops(&comment, &drops) {
            // Half a partition is worse than none: the nemesis records a failure.
            let _ = self.heal();
            return Err(e);
        }
        tracing::debug!(run_id = %self.run_id, ?grudge, "partition installed");
        Ok(())
    }

    /// Every host's rules at once (one thread per host: over SSH each is a round trip).
    fn replace_drops(&self, comment: &str, drops: &[Vec<IpAddr>]) -> Result<(), ClusterError> {
        let failed: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .hosts
                .iter()
                .zip(drops)
                .map(|(h, d)| {
                    s.spawn(move || {
                        h.replace_drops(comment, d)
                            .map_err(|e| format!("{}: {e}", h.name()))
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| match h.join() {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e),
                    Err(_) => Some("a rule update panicked".into()),
                })
                .collect()
        });
        if failed.is_empty() {
            Ok(())
        } else {
            Err(ClusterError::Other(failed.join("; ")))
        }
    }

    /// Remove exactly this run's DROP rules from every node namespace. Idempotent; a no-op in
    /// loopback mode.
    pub fn heal(&self) -> Result<(), ClusterError> {
        if self.mode == NetMode::Loopback {
            return Ok(());
        }
        let comment = rule_comment(&self.run_id);
        let none = vec![Vec::new(); self.hosts.len()];
        self.replace_drops(&comment, &none)
            .map_err(|e| ClusterError::Other(format!("heal failed: {e}")))
    }

    /// Delete the run's processes-in-namespaces, veths, namespaces, bridge and root iptables
    /// rules. Idempotent (anything already gone is not an error); also run by `Drop`. Returns a
    /// line for each thing it could not remove. Stop the nodes first: a node still running in a
    /// namespace is SIGKILLed here, and its `NodeProcess` would report that as an exit.
    pub fn teardown(&mut self) -> Vec<String> {
        if self.mode == NetMode::Ssh {
            // The hosts' own rules; their processes and files are the cluster's to remove.
            return match self.heal() {
                Ok(()) => {
                    self.clean = true;
                    Vec::new()
                }
                Err(e) => vec![e.to_string()],
            };
        }
        let Some(f) = &mut self.fabric else {
            self.clean = true;
            return Vec::new();
        };
        let mut left = Vec::new();
        let namespaces = list_netns().unwrap_or_else(|e| {
            left.push(format!("cannot list namespaces: {e}"));
            Vec::new()
        });
        let ours: Vec<&String> = f
            .namespaces
            .iter()
            .filter(|ns| namespaces.contains(ns))
            .collect();
        // Nodes still running would keep a namespace (and its veth) alive after its name is
        // gone. Normally the run stopped them already.
        for ns in &ours {
            kill_netns_pids(ns);
        }
        let links = list_links().unwrap_or_else(|e| {
            left.push(format!("cannot list links: {e}"));
            Vec::new()
        });
        // Deleting the root end of a veth deletes its eth0 peer at once; a namespace's own
        // cleanup would do it only later, asynchronously.
        for l in f.veths.iter().chain(&f.peers).filter(|l| links.contains(l)) {
            if let Err(e) = delete_link(l) {
                left.push(format!("link {l}: {e}"));
            }
        }
        for ns in ours {
            if let Err(e) = run(&["ip", "netns", "delete", ns]) {
                left.push(format!("namespace {ns}: {e}"));
            }
        }
        if links.contains(&f.bridge) {
            if let Err(e) = delete_link(&f.bridge) {
                left.push(format!("bridge {}: {e}", f.bridge));
            }
        }
        let comment = rule_comment(&self.run_id);
        let (_, bad) = delete_rules(&run, &["FORWARD", "INPUT", "OUTPUT"], &|c| c == comment);
        left.extend(bad);
        if left.is_empty() {
            f.lock = None;
            self.clean = true;
            tracing::info!(run_id = %self.run_id, "network torn down");
        }
        left
    }
}

impl Drop for Network {
    /// Tear down whatever is still up, so a panicking run or test leaves nothing behind.
    fn drop(&mut self) {
        if !self.clean {
            let left = self.teardown();
            if !left.is_empty() {
                tracing::warn!(run_id = %self.run_id, ?left,
                    "network teardown left resources behind; `raftcheck clean` removes them");
            }
        }
    }
}

/// Refuse a run id whose names already exist (another live or dead run with the same id):
/// teardown after a failed create must never delete someone else's namespace.
fn refuse_taken_names(run_id: &str) -> Result<(), ClusterError> {
    let namespaces = list_netns()?;
    let links = list_links()?;
    let taken: Vec<&String> = namespaces
        .iter()
        .chain(&links)
        .filter(|n| run_id_of(n) == Some(run_id))
        .collect();
    if taken.is_empty() {
        Ok(())
    } else {
        Err(ClusterError::Other(format!(
            "run id {run_id} is already in use ({}); use a new run id, or `raftcheck clean`",
            taken
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

/// A held subnet lock file. Dropping it deletes the file and then unlocks it, so lock files do
/// not pile up; [`try_lock_subnet`] checks that the file it locked is still the one at the path.
struct SubnetLock {
    /// `<lock dir>/raftcheck-subnet-<network address>.lock`, deleted on drop before the flock is
    /// released.
    path: PathBuf,
    /// The flock; unlocked when this field drops, after `drop` removed the file.
    _lock: Flock<File>,
}

impl Drop for SubnetLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Claim a /24: the given one, or a free one in [`SUBNET_POOL`] from a random start. Returns its
/// network address and the lock that keeps concurrent runs off it.
fn claim_subnet(given: Option<&str>) -> Result<(Ipv4Addr, SubnetLock), ClusterError> {
    if let Some(s) = given {
        let net = parse_subnet24(s)?;
        let Some(lock) = try_lock_subnet(net)? else {
            return Err(ClusterError::Other(format!(
                "subnet {s} is in use by another raftcheck run"
            )));
        };
        if let Some(clash) = overlapping(net, &used_prefixes()?) {
            return Err(ClusterError::Other(format!(
                "subnet {s} overlaps {clash}, already on this machine; choose another"
            )));
        }
        return Ok((net, lock));
    }
    let mut used = used_prefixes()?;
    let start: u8 = rand::random();
    for k in 0..=255u8 {
        let net = Ipv4Addr::new(POOL[0], POOL[1], start.wrapping_add(k), 0);
        if overlapping(net, &used).is_some() {
            continue;
        }
        let Some(lock) = try_lock_subnet(net)? else {
            continue;
        };
        // Re-check under the lock: a run that died after adding its bridge left its lock free.
        used = used_prefixes()?;
        if overlapping(net, &used).is_none() {
            return Ok((net, lock));
        }
    }
    Err(ClusterError::Other(format!(
        "no free /24 left in {SUBNET_POOL} (try `raftcheck clean`, or give a subnet)"
    )))
}

/// Parse `A.B.C.0/24`.
pub(crate) fn parse_subnet24(s: &str) -> Result<Ipv4Addr, ClusterError> {
    let bad = || {
        ClusterError::Other(format!(
            "bad subnet {s:?}: expected a /24 such as 10.231.5.0/24"
        ))
    };
    let (addr, len) = s.trim().split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    if len != "24" || addr.octets()[3] != 0 {
        return Err(bad());
    }
    Ok(addr)
}

/// Take the subnet's lock file without waiting; `None` if a live run holds it.
fn try_lock_subnet(net: Ipv4Addr) -> Result<Option<SubnetLock>, ClusterError> {
    use std::os::unix::fs::MetadataExt;
    let path = lock_dir().join(format!("raftcheck-subnet-{net}.lock"));
    let io_err = |e: std::io::Error| ClusterError::Other(format!("{}: {e}", path.display()));
    // A few tries: the holder may delete the file between our open and our lock.
    for _ in 0..5 {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err)?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, e)) => return Err(ClusterError::Other(format!("{}: {e}", path.display()))),
        };
        let ours = lock.metadata().map_err(io_err)?.ino();
        if std::fs::metadata(&path).is_ok_and(|m| m.ino() == ours) {
            return Ok(Some(SubnetLock { path, _lock: lock }));
        }
    }
    Ok(None)
}

/// Delete subnet lock files that no live run holds (left by runs that died without teardown).
/// Returns the files removed.
pub(crate) fn remove_stale_locks() -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut removed = Vec::new();
    let Ok(dir) = std::fs::read_dir(lock_dir()) else {
        return removed;
    };
    for entry in dir.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("raftcheck-subnet-") && name.ends_with(".lock")) {
            continue;
        }
        let Ok(file) = OpenOptions::new().write(true).open(&path) else {
            continue;
        };
        let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue; // held by a live run
        };
        // Remove it only if the path still names the file we locked.
        let same =
            lock.metadata().map(|m| m.ino()).ok() == std::fs::metadata(&path).map(|m| m.ino()).ok();
        if same && std::fs::remove_file(&path).is_ok() {
            removed.push(path.display().to_string());
        }
    }
    removed
}

/// Where subnet and run lock files live: `/run/lock` (shared by every process on the machine,
/// and emptied at boot), else the temp dir.
pub(crate) fn lock_dir() -> PathBuf {
    let run_lock = PathBuf::from("/run/lock");
    if run_lock.is_dir() {
        run_lock
    } else {
        std::env::temp_dir()
    }
}

/// Every IPv4 prefix on this machine: interface addresses and routes of every table.
fn used_prefixes() -> Result<Vec<(Ipv4Addr, u8)>, ClusterError> {
    let mut used = Vec::new();
    for line in run_stdout(&["ip", "-4", "-o", "addr", "show"])?.lines() {
        let mut t = line.split_whitespace();
        if t.any(|w| w == "inet") {
            used.extend(t.next().and_then(parse_prefix));
        }
    }
    for line in run_stdout(&["ip", "-4", "route", "show", "table", "all"])?.lines() {
        // "10.0.0.0/24 dev ..." or "local 10.0.0.1 dev ... table local"; skip "default".
        let mut t = line.split_whitespace();
        let first = t.next().unwrap_or("");
        used.extend(parse_prefix(first).or_else(|| t.next().and_then(parse_prefix)));
    }
    Ok(used)
}

/// `A.B.C.D/L` or `A.B.C.D` (a /32).
fn parse_prefix(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = s.split_once('/').unwrap_or((s, "32"));
    let len: u8 = l.parse().ok().filter(|&l| l <= 32)?;
    Some((a.parse().ok()?, len))
}

/// The first prefix in `used` that overlaps the /24 `net` (a default route, /0, does not count).
fn overlapping(net: Ipv4Addr, used: &[(Ipv4Addr, u8)]) -> Option<String> {
    used.iter()
        .filter(|(_, len)| *len > 0)
        .find(|&&(a, len)| {
            let l = len.min(24);
            let mask = u32::MAX << (32 - l);
            u32::from(a) & mask == u32::from(net) & mask
        })
        .map(|(a, len)| format!("{a}/{len}"))
}

/// The names of all named network namespaces.
pub(crate) fn list_netns() -> Result<Vec<String>, ClusterError> {
    Ok(run_stdout(&["ip", "netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect())
}

/// The names of all links in the root namespace (`rc7f3a-v1@if2` is reported as `rc7f3a-v1`).
pub(crate) fn list_links() -> Result<Vec<String>, ClusterError> {
    Ok(run_stdout(&["ip", "-o", "link", "show"])?
        .lines()
        .filter_map(|l| {
            let name = l.split_whitespace().nth(1)?.trim_end_matches(':');
            Some(name.split('@').next().unwrap_or(name).to_string())
        })
        .collect())
}

/// Delete a link; one that is already gone (deleting a veth takes its peer along) is fine.
pub(crate) fn delete_link(name: &str) -> Result<(), ClusterError> {
    match run(&["ip", "link", "delete", name]) {
        Err(ClusterError::Command { msg, .. }) if msg.contains("Cannot find device") => Ok(()),
        r => r.map(|_| ()),
    }
}

/// The pids of the processes in namespace `ns` (none if it cannot be listed).
pub(crate) fn netns_pids(ns: &str) -> Vec<i32> {
    run_stdout(&["ip", "netns", "pids", ns])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// SIGKILL every process in namespace `ns` and wait (at most 2 s) until none is left. Returns
/// the pids it signalled.
pub(crate) fn kill_netns_pids(ns: &str) -> Vec<i32> {
    let first = netns_pids(ns);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut now = first.clone();
    while !now.is_empty() && Instant::now() < deadline {
        for &p in &now {
            let _ = kill(Pid::from_raw(p), Signal::SIGCONT);
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
        now = netns_pids(ns);
    }
    first
}

/// The rules of `chain` in the root namespace, as `iptables -S` prints them.
pub(crate) fn list_rules(chain: &str) -> Result<Vec<String>, ClusterError> {
    Ok(run_stdout(&["iptables", "-w", IPTABLES_WAIT, "-S", chain])?
        .lines()
        .map(String::from)
        .collect())
}

/// The comment of an `iptables -S` line, without quotes.
pub(crate) fn comment_of(rule: &str) -> Option<&str> {
    let mut t = rule.split_whitespace();
    t.find(|&w| w == "--comment")?;
    t.next().map(|c| c.trim_matches('"'))
}

/// The argv that deletes the rule an `iptables -S` line shows (`-A CHAIN ...` -> `-D CHAIN ...`).
/// Our comments contain no spaces, so splitting on whitespace is exact for our rules.
pub(crate) fn delete_argv(rule: &str) -> Option<Vec<String>> {
    let mut t = rule
        .split_whitespace()
        .map(|w| w.trim_matches('"').to_string());
    if t.next()? != "-A" {
        return None;
    }
    let mut argv: Vec<String> = ["iptables", "-w", IPTABLES_WAIT, "-D"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    argv.extend(t);
    Some(argv)
}

/// Delete every rule in `chains` whose comment satisfies `pick`, running iptables through
/// `exec` (in a namespace or the root). Returns (rules removed, failures).
pub(crate) fn delete_rules(
    exec: &dyn Fn(&[&str]) -> Result<Output, ClusterError>,
    chains: &[&str],
    pick: &dyn Fn(&str) -> bool,
) -> (Vec<String>, Vec<String>) {
    let (mut removed, mut failed) = (Vec::new(), Vec::new());
    for chain in chains {
        let listing = match exec(&["iptables", "-w", IPTABLES_WAIT, "-S", chain]) {
            Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
            Err(e) => {
                failed.push(format!("cannot list iptables {chain}: {e}"));
                continue;
            }
        };
        for rule in listing.lines() {
            let Some(c) = comment_of(rule) else { continue };
            if !pick(c) {
                continue;
            }
            let Some(argv) = delete_argv(rule) else {
                continue;
            };
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            match exec(&argv) {
                Ok(_) => removed.push(rule.to_string()),
                Err(e) => failed.push(format!("rule `{rule}`: {e}")),
            }
        }
    }
    (removed, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_short_and_recognised() {
        for _ in 0..100 {
            let id = random_run_id();
            assert_eq!(id.len(), 6, "{id}");
            assert!(is_run_id(&id), "{id}");
            // The longest interface name a 100-node run makes must fit IFNAMSIZ - 1.
            assert!(veth_name(&id, MAX_NODES - 1).len() <= 15);
        }
        assert!(!is_run_id("rc"));
        assert!(!is_run_id("xx1234"));
        assert!(!is_run_id("rcABCD"));
        assert!(!is_run_id("rc123456789"));
    }

    #[test]
    fn only_our_names_are_ours() {
        assert_eq!(run_id_of("rc7f3a-n1"), Some("rc7f3a"));
        assert_eq!(run_id_of("rc7f3a-br"), Some("rc7f3a"));
        assert_eq!(run_id_of("rc7f3a-v12"), Some("rc7f3a"));
        assert_eq!(run_id_of("rc7f3a-p2"), Some("rc7f3a"));
        for other in [
            "eth0",
            "rc7f3a",
            "rc7f3a-x1",
            "rc7f3a-n",
            "docker0",
            "rcfoo-bar",
            "rc-br",
        ] {
            assert_eq!(run_id_of(other), None, "{other}");
        }
    }

    #[test]
    fn addresses_put_the_node_number_last() {
        let net = parse_subnet24("10.231.5.0/24").unwrap();
        assert_eq!(bridge_ip(net), Ipv4Addr::new(10, 231, 5, 1));
        assert_eq!(node_ip(net, 0), Ipv4Addr::new(10, 231, 5, 11));
        assert_eq!(node_ip(net, 2), Ipv4Addr::new(10, 231, 5, 13));
        assert!(parse_subnet24("10.231.5.7/24").is_err());
        assert!(parse_subnet24("10.231.5.0/16").is_err());
        assert!(parse_subnet24("nonsense").is_err());
    }

    #[test]
    fn overlap_is_by_prefix() {
        let net = Ipv4Addr::new(10, 231, 5, 0);
        let p = |s| parse_prefix(s).unwrap();
        assert!(overlapping(net, &[p("10.231.5.1")]).is_some());
        assert!(overlapping(net, &[p("10.0.0.0/8")]).is_some());
        assert!(overlapping(net, &[p("10.231.5.128/25")]).is_some());
        assert!(overlapping(net, &[p("10.231.6.0/24"), p("0.0.0.0/0")]).is_none());
    }

    #[test]
    fn rules_are_parsed_back_into_deletions() {
        let rule = "-A INPUT -s 10.231.5.12/32 -m comment --comment \"raftcheck:rc7f3a\" -j DROP";
        assert_eq!(comment_of(rule), Some("raftcheck:rc7f3a"));
        assert_eq!(
            delete_argv(rule).unwrap().join(" "),
            "iptables -w 10 -D INPUT -s 10.231.5.12/32 -m comment --comment raftcheck:rc7f3a -j DROP"
        );
        assert_eq!(comment_of("-P INPUT ACCEPT"), None);
        assert_eq!(delete_argv("-P INPUT ACCEPT"), None);
    }

    #[test]
    fn loopback_refuses_partitions_and_heals_trivially() {
        let lock = new_run_id().unwrap();
        let net = Network::create(lock.run_id(), 3, NetMode::Loopback, None).unwrap();
        assert_eq!(net.hosts().len(), 3);
        assert_eq!(net.hosts()[2].name(), "n3");
        assert_eq!(net.hosts()[0].ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        let g: Grudge = [(0, [1].into())].into();
        let e = net.partition(&g).unwrap_err().to_string();
        assert!(e.contains("netns"), "{e}");
        net.heal().unwrap();
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(Network::create("nope", 3, NetMode::Loopback, None).is_err());
        assert!(Network::create("rcab12", 0, NetMode::Loopback, None).is_err());
    }
}
