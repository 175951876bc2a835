//! Nemesis specs (`nemesis/*.toml`): which faults, on which targets, which partition shapes and
//! combinations, and the schedule's timing. Pure data with its validation; [`crate::nemesis`]
//! turns a spec into a seeded schedule and grudges.

use super::{load_toml, SpecError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// A fault the nemesis can inject, written in kebab case in specs and nemesis.jsonl (`kill`,
/// `member`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL, restarted with the same data dir at heal.
    Kill,
    /// SIGSTOP, SIGCONT at heal.
    Pause,
    /// iptables DROP rules inside node namespaces, removed at heal.
    Partition,
    /// Remove one node from the configuration (through the leader), kill it and wipe its data
    /// dir; at heal, start it empty and add it back. Needs an adapter that changes membership.
    Member,
    /// SIGKILL, then roll the node's data dir back to what was durable (the FUSE power-loss
    /// layer: unsynced data and directory operations lost, optionally a torn last write);
    /// restarted on the same dir at heal. Needs root and /dev/fuse.
    PowerLoss,
    /// SIGKILL, then damage one file of the node's data dir (truncate, flip bits, or roll it
    /// back to an earlier copy); restarted at heal. A minority by default.
    Corrupt,
}

/// When a directory operation becomes durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirModel {
    /// POSIX's promise: only an fsync of the directory itself (the reading ALICE calls
    /// pessimistic; btrfs comes close to it).
    #[default]
    Posix,
    /// A journalling file system such as ext4 (data=ordered) or XFS: any fsync commits the
    /// journal, and with it every directory operation made before it.
    Journaled,
}

/// A kind of damage the `corrupt` fault does to a stopped node's file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DamageKind {
    /// Cut a seeded number of bytes off the end of the file. Beyond what plain Raft survives
    /// (the node forgets acknowledged entries without knowing it); not in the default.
    Truncate,
    /// Flip seeded bits in one chunk of the file (a different chunk on every node).
    Bitflip,
    /// Put back a copy of the file taken earlier in the run. Beyond what plain Raft survives,
    /// as for `Truncate`; not in the default.
    Rollback,
}

/// Which fault kinds a run can use, from its network mode, adapter, cluster spec and machine;
/// "all" takes every supported kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Support {
    /// netns mode: partitions.
    pub partitions: bool,
    /// The adapter changes membership and the spec has rejoin_args.
    pub membership: bool,
    /// The cluster spec survives power loss and the machine can serve the layer.
    pub power_loss: bool,
    /// The cluster spec survives corruption of a minority.
    pub corrupt: bool,
}

impl FaultKind {
    /// The kebab-case name used in specs, nemesis.jsonl and fault labels (`kill`, `partition`).
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Member => "member",
            FaultKind::PowerLoss => "power-loss",
            FaultKind::Corrupt => "corrupt",
        }
    }

    /// Whether the fault stops nodes itself (kill, power loss, corruption, membership): two
    /// such kinds in one combination would fight over the same nodes.
    pub(crate) fn stops_nodes(self) -> bool {
        !matches!(self, FaultKind::Partition)
    }

    /// Every kind, in the order `all` lists them.
    pub(crate) const ALL: [FaultKind; 6] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::Member,
        FaultKind::PowerLoss,
        FaultKind::Corrupt,
    ];

    /// The kind a spec's `faults` entry names, if any (`all` is not a kind).
    pub(crate) fn parse(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Which nodes a kill or pause hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The node the monitor last saw as leader (a random node if none is known).
    Leader,
    /// One node, chosen with the run's seeded RNG.
    Random,
    /// `(n - 1) / 2` nodes but at least one (1 of 3, 2 of 5), chosen with the run's seed; on 3
    /// nodes or more the rest keep quorum.
    Minority,
    /// More than half the nodes, chosen with the run's seed: the cluster loses quorum.
    Majority,
    /// Every node at once: the cluster is down until heal.
    All,
    /// A majority first, the rest half-way through the fault: the survivors run alone for a
    /// while (campaigning, raising their terms) and then crash too, as in a rolling power loss.
    Staggered,
}

/// How a partition fault splits the nodes; [`crate::nemesis`] turns each into a grudge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionKind {
    /// Cut the current leader off from every other node.
    IsolateLeader,
    /// Cut one random node off.
    IsolateRandom,
    /// Split into a random minority and majority.
    Halves,
    /// Each node sees a majority, no two the same one (needs 5 nodes).
    MajorityRing,
    /// Two halves joined by one node that sees both (needs 5 nodes).
    Bridge,
}

impl PartitionKind {
    /// The smallest cluster the shape makes sense on.
    pub(crate) fn min_nodes(self) -> usize {
        match self {
            PartitionKind::MajorityRing | PartitionKind::Bridge => 5,
            _ => 2,
        }
    }
}

/// A nemesis spec (`nemesis/<name>.toml`): which faults, on whom, and when; [`NemesisSpec::load`]
/// validates it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NemesisSpec {
    /// Faults to inject: kill, pause, partition, member, or "all" for every fault the network
    /// mode and the cluster support. Empty: no faults.
    #[serde(default)]
    pub faults: Vec<String>,
    /// Targets for kill and pause. A membership change always removes one node: the leader
    /// for `leader`, a random node for any other target.
    #[serde(default = "default_targets")]
    pub targets: Vec<Target>,
    /// Shapes a partition fault draws from; a shape that needs more nodes than the cluster has is
    /// left out of the draw, unless none fits.
    #[serde(default = "default_partitions")]
    pub partitions: Vec<PartitionKind>,
    /// Mean healthy time between faults.
    #[serde(default = "default_interval")]
    pub interval_secs: f64,
    /// Mean time a fault lasts.
    #[serde(default = "default_interval")]
    pub fault_secs: f64,
    /// Relative jitter on both, 0 to 1.
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// Healthy time before the first fault.
    #[serde(default = "default_start")]
    pub start_after_secs: f64,
    /// Faults injected together, e.g. `[["kill", "partition"], ["pause", "partition"]]`; each
    /// scheduled fault takes the next combination (empty: one kind at a time).
    #[serde(default)]
    pub combinations: Vec<Vec<FaultKind>>,
    /// Power loss also keeps a torn prefix (cut at a seeded byte) of each node's last write not
    /// yet durable, as a write in flight when the power went might leave.
    #[serde(default = "yes")]
    pub torn_writes: bool,
    /// When the power-loss layer takes a directory operation for durable: `posix` (only an
    /// fsync of that directory; the default) or `journaled` (any fsync, as ext4 and XFS).
    #[serde(default)]
    pub fs_model: DirModel,
    /// Kinds of damage a corrupt fault draws from.
    #[serde(default = "default_damage")]
    pub damage: Vec<DamageKind>,
    /// Targets of a corrupt fault; a minority by default, since a server need not survive the
    /// same damage on every replica.
    #[serde(default = "default_corrupt_targets")]
    pub corrupt_targets: Vec<Target>,
}

fn yes() -> bool {
    true
}
/// Bit flips only: damage a server can detect with checksums and refuse, which is all Raft's
/// stable-storage assumption lets a correct server promise. A truncated or rolled-back file
/// silently forgets entries that node acknowledged, and plain Raft can then lose committed
/// writes with a single damaged replica (as the PAR paper showed for LogCabin and others);
/// a nemesis opts into those kinds by name, for servers that claim to recover from them.
pub(crate) fn default_damage() -> Vec<DamageKind> {
    vec![DamageKind::Bitflip]
}
pub(crate) fn default_corrupt_targets() -> Vec<Target> {
    vec![Target::Minority]
}

pub(crate) fn default_targets() -> Vec<Target> {
    vec![Target::Leader, Target::Random, Target::Minority]
}
pub(crate) fn default_partitions() -> Vec<PartitionKind> {
    vec![
        PartitionKind::IsolateLeader,
        PartitionKind::Halves,
        PartitionKind::MajorityRing,
        PartitionKind::Bridge,
    ]
}
fn default_interval() -> f64 {
    4.0
}
fn default_jitter() -> f64 {
    0.3
}
fn default_start() -> f64 {
    2.0
}

impl NemesisSpec {
    /// Parse the file and refuse values that make no sense (unknown faults, empty targets, kill
    /// with pause in one combination); errors name the file and the field.
    pub fn load(path: &Path) -> Result<NemesisSpec, SpecError> {
        let s: NemesisSpec = load_toml(path)?;
        let bad = |field: &str, msg: String| SpecError::Invalid {
            path: path.to_path_buf(),
            field: field.into(),
            msg,
        };
        for f in &s.faults {
            if f != "all" && FaultKind::parse(f).is_none() {
                return Err(bad(
                    "faults",
                    format!(
                        "unknown fault {f:?}; expected kill, pause, partition, member, \
                         power-loss, corrupt or all"
                    ),
                ));
            }
        }
        if s.targets.is_empty() {
            return Err(bad("targets", "must name at least one target".into()));
        }
        if s.corrupt_targets.is_empty() {
            return Err(bad(
                "corrupt_targets",
                "must name at least one target".into(),
            ));
        }
        if s.damage.is_empty() {
            return Err(bad(
                "damage",
                "must name at least one kind of damage".into(),
            ));
        }
        if s.partitions.is_empty() {
            return Err(bad("partitions", "must name at least one shape".into()));
        }
        for (field, secs) in [
            ("interval_secs", s.interval_secs),
            ("fault_secs", s.fault_secs),
        ] {
            if !(secs.is_finite() && secs > 0.0) {
                return Err(bad(
                    field,
                    format!("must be a positive number of seconds, got {secs}"),
                ));
            }
        }
        if !(0.0..=1.0).contains(&s.jitter) {
            return Err(bad("jitter", "must be between 0 and 1".into()));
        }
        for c in &s.combinations {
            let distinct: BTreeSet<&FaultKind> = c.iter().collect();
            if c.is_empty() || distinct.len() != c.len() {
                return Err(bad(
                    "combinations",
                    format!("{c:?}: each needs distinct kinds"),
                ));
            }
            if c.contains(&FaultKind::Member) && c.len() > 1 {
                return Err(bad(
                    "combinations",
                    "a membership change runs alone (it kills and restarts a node itself)".into(),
                ));
            }
            let stoppers: Vec<&str> = c
                .iter()
                .filter(|k| k.stops_nodes())
                .map(|k| k.name())
                .collect();
            if stoppers.len() > 1 {
                return Err(bad(
                    "combinations",
                    format!(
                        "{} would fight over the same nodes; combine one of them with partition",
                        stoppers.join(" and ")
                    ),
                ));
            }
        }
        if s.start_after_secs < 0.0 {
            return Err(bad("start_after_secs", "must be >= 0".into()));
        }
        Ok(s)
    }

    /// Whether the spec names `kind` itself (as opposed to through "all").
    pub fn names(&self, kind: FaultKind) -> bool {
        self.faults.iter().any(|f| f == kind.name())
            || self.combinations.iter().flatten().any(|k| *k == kind)
    }

    /// Whether the spec names partitions itself (as opposed to through "all").
    pub(crate) fn names_partition(&self) -> bool {
        self.names(FaultKind::Partition)
    }

    /// The fault kinds to use given what the run supports: the kinds named (in `faults` or a
    /// combination) that are supported, and for "all" every supported kind.
    pub(crate) fn kinds(&self, support: Support) -> Vec<FaultKind> {
        let supported = |x: FaultKind| match x {
            FaultKind::Partition => support.partitions,
            FaultKind::Member => support.membership,
            FaultKind::PowerLoss => support.power_loss,
            FaultKind::Corrupt => support.corrupt,
            FaultKind::Kill | FaultKind::Pause => true,
        };
        let mut k: BTreeSet<FaultKind> = self
            .combinations
            .iter()
            .flatten()
            .copied()
            .filter(|&x| supported(x))
            .collect();
        for f in &self.faults {
            match FaultKind::parse(f) {
                Some(kind) => {
                    k.insert(kind);
                }
                None => k.extend(FaultKind::ALL.into_iter().filter(|&x| supported(x))),
            }
        }
        k.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_fault_length_is_blamed_on_fault_secs_not_interval_secs() {
        let d = tempfile::tempdir().unwrap();
        for (field, text) in [
            ("fault_secs", "faults = [\"kill\"]\nfault_secs = 0\n"),
            ("interval_secs", "faults = [\"kill\"]\ninterval_secs = -1\n"),
        ] {
            let p = d.path().join(format!("{field}.toml"));
            std::fs::write(&p, text).unwrap();
            let e = NemesisSpec::load(&p).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("positive"), "{e}");
            let other = if field == "fault_secs" {
                "interval_secs"
            } else {
                "fault_secs"
            };
            assert!(!e.contains(other), "{e}");
        }
    }
}
