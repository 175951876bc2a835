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
}

impl FaultKind {
    /// The kebab-case name used in specs, nemesis.jsonl and fault labels (`kill`, `partition`).
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Member => "member",
        }
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
            if !matches!(
                f.as_str(),
                "all" | "kill" | "pause" | "partition" | "member"
            ) {
                return Err(bad(
                    "faults",
                    format!("unknown fault {f:?}; expected kill, pause, partition, member or all"),
                ));
            }
        }
        if s.targets.is_empty() {
            return Err(bad("targets", "must name at least one target".into()));
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
            if c.contains(&FaultKind::Kill) && c.contains(&FaultKind::Pause) {
                return Err(bad(
                    "combinations",
                    "kill and pause would fight over the same nodes".into(),
                ));
            }
            if c.contains(&FaultKind::Member) && c.len() > 1 {
                return Err(bad(
                    "combinations",
                    "a membership change runs alone (it kills and restarts a node itself)".into(),
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

    /// The fault kinds to use where partitions and membership changes are (or are not)
    /// supported; "all" takes every supported kind.
    pub(crate) fn kinds(
        &self,
        partitions_supported: bool,
        membership_supported: bool,
    ) -> Vec<FaultKind> {
        let supported = |x: FaultKind| match x {
            FaultKind::Partition => partitions_supported,
            FaultKind::Member => membership_supported,
            _ => true,
        };
        let mut k: BTreeSet<FaultKind> = self
            .combinations
            .iter()
            .flatten()
            .copied()
            .filter(|&x| supported(x))
            .collect();
        for f in &self.faults {
            match f.as_str() {
                "kill" => {
                    k.insert(FaultKind::Kill);
                }
                "pause" => {
                    k.insert(FaultKind::Pause);
                }
                "partition" => {
                    k.insert(FaultKind::Partition);
                }
                "member" => {
                    k.insert(FaultKind::Member);
                }
                _ => {
                    k.insert(FaultKind::Kill);
                    k.insert(FaultKind::Pause);
                    if partitions_supported {
                        k.insert(FaultKind::Partition);
                    }
                    if membership_supported {
                        k.insert(FaultKind::Member);
                    }
                }
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
