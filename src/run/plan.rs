//! From flags to a plan: every spec resolved and loaded, every override applied and validated,
//! the network mode chosen, and every refusal made (a nemesis this mode or this cluster cannot
//! do, a bad `--subnet`) before anything is created on disk or started. What follows only
//! carries the plan out (ripgrep's two stages: raw flags, then a validated plan).

use super::{NetChoice, RunError, RunOptions};
use crate::analysis::Asked;
use crate::cluster::find_binary;
use crate::cluster::net::{parse_subnet24, NetMode, Network};
use crate::nemesis::{schedule, Planned};
use crate::spec::nemesis::{FaultKind, NemesisSpec, Support};
use crate::spec::workload::WorkloadSpec;
use crate::spec::{resolve, ClusterSpec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A run, resolved and validated: nothing in it can be refused any more.
#[derive(Clone, Debug)]
pub struct RunPlan {
    /// The cluster spec, with `--nodes` applied.
    pub cluster: ClusterSpec,
    /// The workload, with `--time-limit`, `--concurrency` and `--rate` applied.
    pub workload: WorkloadSpec,
    /// The nemesis spec as loaded (no flag overrides it); `asked` and `schedule` are derived from
    /// it.
    pub nemesis: NemesisSpec,
    /// Names for results: the stems of the three spec arguments (`raftkv`, `kv`, `kill`).
    pub names: [String; 3],
    /// The server binary's path, found from the spec's `binary` (a path, next to raftcheck, or on
    /// PATH) before anything starts.
    pub binary: PathBuf,
    /// netns or loopback, and why.
    pub mode: NetMode,
    /// Why that mode, as the user should read it.
    pub net_reason: String,
    /// What the nemesis is asked for, after the mode's and the cluster's filtering.
    pub asked: Asked,
    /// Every fault the nemesis will inject, with its start and end, drawn from the seed before the
    /// run starts.
    pub schedule: Vec<Planned>,
    /// Mount every data dir on the power-loss layer: the nemesis has power-loss faults, or
    /// `--storage-layer` asked for it (to measure the layer's cost).
    pub storage_layer: bool,
    /// With `--hosts`: a checked connection to each node's host, in node order.
    pub ssh: Option<Vec<std::sync::Arc<crate::cluster::ssh::SshConn>>>,
}

fn stem(name: &str) -> String {
    Path::new(name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string())
}

impl RunPlan {
    /// Resolve and validate everything the options name. Every error here is exit 2 and
    /// happens before any file or process exists.
    pub(crate) fn resolve(opts: &RunOptions) -> Result<RunPlan, RunError> {
        let cluster_path = resolve("cluster", "clusters", &opts.cluster)?;
        let workload_path = resolve("workload", "workloads", &opts.workload)?;
        let nemesis_path = resolve("nemesis", "nemesis", &opts.nemesis)?;
        let mut cluster = ClusterSpec::load(&cluster_path)?;
        let mut workload = WorkloadSpec::load(&workload_path)?;
        let nemesis = NemesisSpec::load(&nemesis_path)?;
        if let Some(n) = opts.nodes {
            if !(1..=9).contains(&n) {
                return Err(RunError::Invalid(format!(
                    "--nodes must be 1 to 9, got {n}"
                )));
            }
            cluster.nodes = n;
        }
        if let Some(t) = opts.time_limit {
            workload.duration_secs = t;
        }
        if let Some(c) = opts.concurrency {
            workload.concurrency = c;
        }
        if let Some(r) = opts.rate {
            workload.rate = r;
        }
        workload.validate(Path::new("(command-line overrides)"))?;
        let hosts = match &opts.hosts {
            Some(p) => Some(crate::spec::hosts::HostsFile::load(p)?),
            None => None,
        };
        let binary = match find_binary(&cluster.binary) {
            Ok(b) => b,
            // Every host has its own copy: nothing to upload, nothing to find here.
            Err(_)
                if hosts.as_ref().is_some_and(|h| {
                    h.hosts
                        .iter()
                        .take(cluster.nodes)
                        .all(|e| e.binary.is_some())
                }) =>
            {
                PathBuf::from(&cluster.binary)
            }
            Err(e) => return Err(e.into()),
        };

        let (mode, net_reason) = if let Some(h) = &hosts {
            if opts.net != NetChoice::Auto {
                return Err(RunError::Invalid(
                    "--net and --hosts do not go together: with --hosts every node runs on \
                     its host"
                        .into(),
                ));
            }
            if opts.subnet.is_some() {
                return Err(RunError::Invalid(
                    "--subnet is for netns mode; with --hosts the hosts' own addresses are used"
                        .into(),
                ));
            }
            if h.hosts.len() < cluster.nodes {
                return Err(RunError::Invalid(format!(
                    "{}: names {} hosts, and the cluster has {} nodes (node i runs on host i)",
                    h.path.display(),
                    h.hosts.len(),
                    cluster.nodes
                )));
            }
            (
                NetMode::Ssh,
                format!(
                    "ssh mode: node i on host i of {} ({})",
                    h.path.display(),
                    h.hosts
                        .iter()
                        .take(cluster.nodes)
                        .map(|e| e.label())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        } else {
            let (detected, why) = Network::detect();
            match opts.net {
                NetChoice::Auto => (detected, why),
                NetChoice::Loopback => (
                    NetMode::Loopback,
                    "loopback requested with --net".to_string(),
                ),
                NetChoice::Netns if detected == NetMode::Netns => (NetMode::Netns, why),
                NetChoice::Netns => {
                    return Err(RunError::Invalid(format!(
                        "--net netns is not possible here: {why}"
                    )))
                }
            }
        };
        if let Some(subnet) = &opts.subnet {
            if mode != NetMode::Netns {
                return Err(RunError::Invalid(format!(
                    "--subnet {subnet}: subnets are for netns mode, and this run is in \
                     loopback mode ({net_reason})"
                )));
            }
            parse_subnet24(subnet).map_err(|e| RunError::Invalid(format!("--subnet: {e}")))?;
        }
        // Over SSH: connect to every host and check it before anything starts; partitions
        // are wanted when the nemesis names them or takes everything ("all").
        let wants_partitions =
            nemesis.names_partition() || nemesis.faults.iter().any(|f| f == "all");
        let ssh = match &hosts {
            Some(h) => Some(preflight(
                h,
                cluster.nodes,
                &binary,
                wants_partitions,
                [cluster.client_port, cluster.peer_port()],
            )?),
            None => None,
        };
        let partitions_ok = mode != NetMode::Loopback;
        if !partitions_ok && nemesis.names_partition() {
            return Err(RunError::Invalid(format!(
                "{}: this nemesis needs network partitions, which need netns mode; this run is \
                 in loopback mode ({net_reason}). Run as root with ip and iptables installed, \
                 or pick a nemesis without partitions (kill, pause, all).",
                nemesis_path.display()
            )));
        }
        let membership_why = cluster.membership_unsupported();
        if let (Some(why), true) = (&membership_why, nemesis.names(FaultKind::Member)) {
            return Err(RunError::Invalid(format!(
                "{}: this nemesis changes membership, which {} cannot do: {why}",
                nemesis_path.display(),
                cluster_path.display()
            )));
        }
        let layer_why = if ssh.is_some() {
            Some(
                "the nodes run on other machines over SSH, and the layer serves a node's data \
                 dir from this machine"
                    .to_string(),
            )
        } else {
            crate::cluster::powerfs::available()
                .err()
                .map(|e| e.to_string())
        };
        if let Some(why) = &layer_why {
            if nemesis.names(FaultKind::PowerLoss) {
                return Err(RunError::Invalid(format!(
                    "{}: power-loss faults run on raftcheck's FUSE layer, and {why}",
                    nemesis_path.display()
                )));
            }
            if opts.storage_layer {
                return Err(RunError::Invalid(format!("--storage-layer: {why}")));
            }
        }
        let survives = |k: FaultKind| cluster.survives.contains(&k);
        let support = Support {
            partitions: partitions_ok,
            membership: membership_why.is_none(),
            power_loss: layer_why.is_none() && survives(FaultKind::PowerLoss),
            corrupt: survives(FaultKind::Corrupt),
        };
        let kinds = nemesis.kinds(support);
        let wants_all = nemesis.faults.iter().any(|f| f == "all");
        let mut unsupported = BTreeMap::new();
        if !partitions_ok && wants_all {
            unsupported.insert(
                "partition".to_string(),
                format!("skipped: loopback mode ({net_reason})"),
            );
        }
        if let (Some(why), true) = (&membership_why, wants_all) {
            unsupported.insert("member".to_string(), format!("skipped: {why}"));
        }
        for kind in [FaultKind::PowerLoss, FaultKind::Corrupt] {
            if !wants_all || kinds.contains(&kind) {
                continue;
            }
            let why = match &layer_why {
                Some(why) if survives(kind) => format!("skipped: {why}"),
                _ => format!(
                    "skipped: {} does not list {} in survives",
                    cluster_path.display(),
                    kind.name()
                ),
            };
            unsupported.insert(kind.name().to_string(), why);
        }
        let schedule = schedule(
            &nemesis,
            &kinds,
            opts.seed,
            workload.duration_secs,
            cluster.nodes,
        );
        let storage_layer = opts.storage_layer || kinds.contains(&FaultKind::PowerLoss);
        let asked = Asked {
            planned: schedule
                .iter()
                .flat_map(|p| &p.actions)
                .map(|a| a.kind())
                .collect(),
            kinds,
            unsupported,
            duration_secs: workload.duration_secs,
            cycle_secs: nemesis.fault_secs + nemesis.interval_secs,
            min_ok_ops: workload.min_ok_ops,
        };
        Ok(RunPlan {
            names: [
                stem(&opts.cluster),
                stem(&opts.workload),
                stem(&opts.nemesis),
            ],
            cluster,
            workload,
            nemesis,
            binary,
            mode,
            net_reason,
            asked,
            schedule,
            storage_layer,
            ssh,
        })
    }
}

/// Refuse a host where something already accepts connections on a port this run's node will
/// listen on: another run there, or a server left running. Its server would take this run's
/// client traffic (a server that does not exit when its bind fails, or that shares ports, would
/// let the run check a history of the other cluster). A port that refuses or does not answer
/// within the probe's timeout counts as free.
fn ports_free(ip: std::net::IpAddr, ports: [u16; 2]) -> Result<(), crate::cluster::ClusterError> {
    for port in ports {
        let addr = std::net::SocketAddr::new(ip, port);
        if std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(500))
            .is_ok()
        {
            return Err(crate::cluster::ClusterError::Other(format!(
                "something already listens on {addr}, a port this run's node would use (another \
                 run on this host, or a server left running: `raftcheck clean --hosts` removes \
                 what a killed run left)"
            )));
        }
    }
    Ok(())
}

/// Connect to the first `nodes` hosts (in parallel: an unreachable host costs its connect
/// timeout once, not once per host) and check each one; the first failure, naming its host, is
/// the error. `ports` (the spec's client and peer ports) must not answer on any host yet.
fn preflight(
    hosts: &crate::spec::hosts::HostsFile,
    nodes: usize,
    binary: &Path,
    partitions: bool,
    ports: [u16; 2],
) -> Result<Vec<std::sync::Arc<crate::cluster::ssh::SshConn>>, RunError> {
    use crate::cluster::ssh::SshConn;
    let results: Vec<Result<SshConn, crate::cluster::ClusterError>> = std::thread::scope(|s| {
        let handles: Vec<_> = hosts
            .hosts
            .iter()
            .take(nodes)
            .map(|e| {
                s.spawn(move || {
                    let c = SshConn::connect(e)?;
                    c.preflight(binary, partitions)?;
                    ports_free(e.ip, ports)?;
                    Ok(c)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(crate::cluster::ClusterError::Other(
                        "a host check panicked".into(),
                    ))
                })
            })
            .collect()
    });
    let mut conns = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(c) => conns.push(std::sync::Arc::new(c)),
            Err(e) => {
                return Err(RunError::Invalid(format!(
                    "{}: host {} of {nodes}: {e}",
                    hosts.path.display(),
                    i + 1
                )))
            }
        }
    }
    Ok(conns)
}
