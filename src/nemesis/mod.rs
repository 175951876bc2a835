//! The nemesis: fault specs (`nemesis/*.toml`), partitions as data (grudges), a seeded fault
//! schedule, and the loop that injects and heals faults and logs each with its outcome.
//!
//! Partitions are data, as in Jepsen: a grudge maps each node to the nodes whose packets it
//! drops, built by pure functions here; only the cluster layer turns one into iptables rules.
//! The schedule is a pure function of (spec, seed, duration, node count): the same seed gives the
//! same schedule. Which node "leader" means is decided when the fault fires, from the monitor.
//!
//! Imports [`crate::cluster`] (grudges) and [`crate::spec`]; the loop that injects faults lives in
//! [`crate::run`].

use crate::cluster::net::Grudge;
use crate::spec::nemesis::{FaultKind, NemesisSpec, PartitionKind, Target};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What a planned fault does, before "leader" is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Action {
    /// Kill the target's nodes.
    Kill {
        /// Which nodes; resolved only when the fault fires, so `leader` is whoever the monitor last
        /// saw leading then.
        target: Target,
    },
    /// Pause the target's nodes.
    Pause {
        /// Which nodes; resolved only when the fault fires, so `leader` is whoever the monitor last
        /// saw leading then.
        target: Target,
    },
    /// Drop packets between groups of nodes (iptables, so netns mode only).
    Partition {
        /// How to split the nodes; made into a grudge when the fault fires, from the leader seen
        /// then.
        shape: PartitionKind,
    },
    /// Remove a node and add it back empty.
    Member {
        /// Whom: the leader, or (any other target) one random node.
        target: Target,
    },
    /// Kill the target's nodes and roll their data dirs back to what was durable.
    PowerLoss {
        /// Which nodes, resolved when the fault fires (`all`: a coordinated power failure).
        target: Target,
    },
    /// Kill the target's nodes and damage one file of each one's data dir.
    Corrupt {
        /// Which nodes (from the spec's `corrupt_targets`), resolved when the fault fires.
        target: Target,
    },
}

impl Action {
    /// The [`FaultKind`] of this action, its target or shape dropped: what nemesis.jsonl records
    /// and a spec's `faults` list names.
    pub fn kind(&self) -> FaultKind {
        match self {
            Action::Kill { .. } => FaultKind::Kill,
            Action::Pause { .. } => FaultKind::Pause,
            Action::Partition { .. } => FaultKind::Partition,
            Action::Member { .. } => FaultKind::Member,
            Action::PowerLoss { .. } => FaultKind::PowerLoss,
            Action::Corrupt { .. } => FaultKind::Corrupt,
        }
    }

    /// The node target of a fault that has one (every kind but partition).
    pub fn target(&self) -> Option<Target> {
        match *self {
            Action::Kill { target }
            | Action::Pause { target }
            | Action::Member { target }
            | Action::PowerLoss { target }
            | Action::Corrupt { target } => Some(target),
            Action::Partition { .. } => None,
        }
    }

    /// A short label: "kill leader", "partition halves".
    pub fn label(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or_default();
        let detail = v
            .get("target")
            .or_else(|| v.get("shape"))
            .and_then(|x| x.as_str())
            .unwrap_or("");
        format!("{} {detail}", self.kind().name())
    }
}

/// One fault in the schedule: start and end offsets from the start of the fault phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Planned {
    /// Seconds from the start of the run.
    pub start: f64,
    /// Seconds from the start of the run (heal).
    pub end: f64,
    /// What to do: one action, or several at once for a combination (kill + partition).
    pub actions: Vec<Action>,
}

fn jittered(rng: &mut ChaCha8Rng, mean: f64, jitter: f64) -> f64 {
    if jitter <= 0.0 {
        return mean;
    }
    mean * (1.0 + rng.random_range(-jitter..=jitter))
}

/// The seeded schedule: alternate healthy and faulty periods until `duration` seconds, the
/// last heal at least one interval before the end so the cluster settles before the final
/// phase. Kinds rotate so each requested kind appears early.
///
/// Partition shapes that need more nodes than `nodes` are left out of the draw (the run logs
/// them as skipped once), unless no listed shape fits, in which case they are drawn and each
/// is logged skipped, and the run reports that it never installed a partition.
pub fn schedule(
    spec: &NemesisSpec,
    kinds: &[FaultKind],
    seed: u64,
    duration: f64,
    nodes: usize,
) -> Vec<Planned> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x004E_454D_4553_4953);
    let mut out = Vec::new();
    if kinds.is_empty() {
        return out;
    }
    // Each step injects one group of kinds at once: the spec's combinations, else one kind.
    let groups: Vec<Vec<FaultKind>> = if spec.combinations.is_empty() {
        kinds.iter().map(|&k| vec![k]).collect()
    } else {
        spec.combinations
            .iter()
            .filter(|c| c.iter().all(|k| kinds.contains(k)))
            .cloned()
            .collect()
    };
    if groups.is_empty() {
        return out;
    }
    let fitting: Vec<PartitionKind> = spec
        .partitions
        .iter()
        .copied()
        .filter(|&p| p.min_nodes() <= nodes)
        .collect();
    let shapes = if fitting.is_empty() {
        spec.partitions.clone()
    } else {
        fitting
    };
    let mut t = spec.start_after_secs;
    let mut i = 0usize;
    // Bounded: at most one fault per 10 ms of run and at most 100,000 faults.
    while out.len() < 100_000 {
        let len = jittered(&mut rng, spec.fault_secs, spec.jitter).max(0.01);
        if t + len > duration - 0.5 {
            break;
        }
        let group = &groups[i % groups.len()];
        i += 1;
        let actions = group
            .iter()
            .map(|kind| match kind {
                FaultKind::Kill => Action::Kill {
                    target: spec.targets[rng.random_range(0..spec.targets.len())],
                },
                FaultKind::Pause => Action::Pause {
                    target: spec.targets[rng.random_range(0..spec.targets.len())],
                },
                FaultKind::Partition => Action::Partition {
                    shape: shapes[rng.random_range(0..shapes.len())],
                },
                FaultKind::Member => Action::Member {
                    target: match spec.targets[rng.random_range(0..spec.targets.len())] {
                        Target::Leader => Target::Leader,
                        _ => Target::Random,
                    },
                },
                FaultKind::PowerLoss => Action::PowerLoss {
                    target: spec.targets[rng.random_range(0..spec.targets.len())],
                },
                FaultKind::Corrupt => Action::Corrupt {
                    target: spec.corrupt_targets[rng.random_range(0..spec.corrupt_targets.len())],
                },
            })
            .collect();
        out.push(Planned {
            start: t,
            end: t + len,
            actions,
        });
        t += len + jittered(&mut rng, spec.interval_secs, spec.jitter).max(0.01);
    }
    out
}

/// Resolve a kill/pause target to node indices.
pub(crate) fn resolve_target(
    target: Target,
    n: usize,
    leader: Option<usize>,
    rng: &mut ChaCha8Rng,
) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    all.shuffle(rng);
    let pick = |k: usize| {
        let mut v: Vec<usize> = all.iter().copied().take(k).collect();
        v.sort_unstable();
        v
    };
    match target {
        Target::Leader => leader
            .filter(|&l| l < n)
            .map_or_else(|| pick(1), |l| vec![l]),
        Target::Random => pick(1),
        Target::Minority => pick(((n - 1) / 2).max(1)),
        Target::Majority => pick(n / 2 + 1),
        Target::All => pick(n),
        // The first step; the nemesis kills the rest later.
        Target::Staggered => pick(n / 2 + 1),
    }
}

/// Build the grudge for a partition shape; `None` when the shape needs more nodes.
pub fn grudge(
    shape: PartitionKind,
    n: usize,
    leader: Option<usize>,
    rng: &mut ChaCha8Rng,
) -> Option<Grudge> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    match shape {
        PartitionKind::IsolateLeader => {
            let l = leader.filter(|&l| l < n).unwrap_or(order[0]);
            Some(split(&[l], &(0..n).filter(|&i| i != l).collect::<Vec<_>>()))
        }
        PartitionKind::IsolateRandom => Some(split(&order[..1], &order[1..])),
        PartitionKind::Halves => {
            let k = n / 2;
            Some(split(&order[..k], &order[k..]))
        }
        PartitionKind::MajorityRing if n >= 5 => {
            // Node order[j] sees itself and its ring neighbours; it drops everyone else.
            let mut g = Grudge::new();
            for j in 0..n {
                let me = order[j];
                let near: BTreeSet<usize> = [order[(j + n - 1) % n], me, order[(j + 1) % n]].into();
                g.insert(me, (0..n).filter(|x| !near.contains(x)).collect());
            }
            Some(g)
        }
        PartitionKind::Bridge if n >= 5 => {
            let k = n / 2;
            let (a, rest) = order.split_at(k);
            let (_bridge, b) = rest.split_at(1);
            let mut g = split(a, b);
            g.retain(|_, v| !v.is_empty());
            Some(g)
        }
        _ => None,
    }
}

/// Two sides that drop each other's packets.
fn split(a: &[usize], b: &[usize]) -> Grudge {
    let mut g: Grudge = BTreeMap::new();
    for &x in a {
        g.entry(x).or_default().extend(b.iter().copied());
    }
    for &y in b {
        g.entry(y).or_default().extend(a.iter().copied());
    }
    g
}

/// Can node `a` hear node `b` under grudge `g`?
#[cfg(test)]
pub(crate) fn hears(g: &Grudge, a: usize, b: usize) -> bool {
    !g.get(&a).is_some_and(|s| s.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::nemesis::{
        default_corrupt_targets, default_damage, default_partitions, default_targets, Support,
    };

    fn support(partitions: bool, membership: bool) -> Support {
        Support {
            partitions,
            membership,
            ..Support::default()
        }
    }

    fn spec() -> NemesisSpec {
        NemesisSpec {
            faults: vec!["all".into()],
            targets: default_targets(),
            partitions: default_partitions(),
            interval_secs: 2.0,
            fault_secs: 2.0,
            jitter: 0.3,
            start_after_secs: 1.0,
            combinations: vec![],
            torn_writes: true,
            fs_model: Default::default(),
            damage: default_damage(),
            corrupt_targets: default_corrupt_targets(),
        }
    }

    #[test]
    fn combinations_inject_their_kinds_together() {
        let mut s = spec();
        s.combinations = vec![
            vec![FaultKind::Kill, FaultKind::Partition],
            vec![FaultKind::Pause, FaultKind::Partition],
        ];
        let kinds = s.kinds(support(true, false));
        let plan = schedule(&s, &kinds, 5, 30.0, 3);
        assert!(plan.len() >= 3);
        assert_eq!(
            plan[0].actions.iter().map(|a| a.kind()).collect::<Vec<_>>(),
            vec![FaultKind::Kill, FaultKind::Partition]
        );
        assert_eq!(
            plan[1].actions.iter().map(|a| a.kind()).collect::<Vec<_>>(),
            vec![FaultKind::Pause, FaultKind::Partition]
        );
        // Without partitions (loopback) no combination that needs one is scheduled.
        assert!(schedule(&s, &s.kinds(support(false, false)), 5, 30.0, 3).is_empty());
        assert!(s.names_partition());
    }

    #[test]
    fn same_seed_same_schedule_and_faults_alternate_with_heals() {
        let kinds = spec().kinds(support(true, false));
        let a = schedule(&spec(), &kinds, 9, 30.0, 3);
        assert_eq!(a, schedule(&spec(), &kinds, 9, 30.0, 3));
        assert_ne!(a, schedule(&spec(), &kinds, 10, 30.0, 3));
        assert!(a.len() >= 5, "{a:?}");
        for w in a.windows(2) {
            assert!(w[0].end < w[1].start, "faults overlap: {w:?}");
        }
        assert!(a.last().unwrap().end <= 29.5);
        let shapes: BTreeSet<String> = a
            .iter()
            .flat_map(|p| p.actions.iter())
            .filter(|x| x.kind() == FaultKind::Partition)
            .map(|x| x.label())
            .collect();
        assert!(
            shapes
                .iter()
                .all(|l| !l.contains("ring") && !l.contains("bridge")),
            "{shapes:?}"
        );
        let seen: BTreeSet<FaultKind> = a
            .iter()
            .flat_map(|p| p.actions.iter().map(|x| x.kind()))
            .collect();
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn all_without_partitions_leaves_them_out() {
        assert_eq!(
            spec().kinds(support(false, false)),
            vec![FaultKind::Kill, FaultKind::Pause]
        );
    }

    #[test]
    fn all_takes_membership_changes_where_supported_and_they_remove_one_node() {
        assert_eq!(
            spec().kinds(support(false, true)),
            vec![FaultKind::Kill, FaultKind::Pause, FaultKind::Member]
        );
        let mut s = spec();
        s.targets = vec![Target::Majority, Target::Leader, Target::Staggered];
        let plan = schedule(&s, &[FaultKind::Member], 3, 60.0, 3);
        assert!(plan.len() >= 10, "{plan:?}");
        let targets: BTreeSet<String> = plan.iter().map(|p| p.actions[0].label()).collect();
        assert_eq!(
            targets,
            ["member leader", "member random"]
                .into_iter()
                .map(String::from)
                .collect()
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.toml");
        std::fs::write(
            &path,
            "faults = []\ncombinations = [[\"member\", \"kill\"]]\n",
        )
        .unwrap();
        let err = NemesisSpec::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("combinations") && err.contains("alone"),
            "{err}"
        );
    }

    #[test]
    fn isolate_cuts_both_ways_and_halves_leave_a_majority() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let g = grudge(PartitionKind::IsolateLeader, 3, Some(1), &mut rng).unwrap();
        assert!(!hears(&g, 1, 0) && !hears(&g, 0, 1) && hears(&g, 0, 2));
        let g = grudge(PartitionKind::Halves, 5, None, &mut rng).unwrap();
        let minority: Vec<usize> = (0..5).filter(|&i| g[&i].len() == 3).collect();
        assert_eq!(minority.len(), 2);
    }

    #[test]
    fn majority_ring_gives_every_node_a_different_majority() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let g = grudge(PartitionKind::MajorityRing, 5, None, &mut rng).unwrap();
        let views: BTreeSet<Vec<usize>> = (0..5)
            .map(|a| (0..5).filter(|&b| hears(&g, a, b)).collect())
            .collect();
        assert_eq!(views.len(), 5);
        assert!(views.iter().all(|v| v.len() == 3));
        assert!(grudge(PartitionKind::MajorityRing, 3, None, &mut rng).is_none());
    }

    #[test]
    fn bridge_node_hears_both_sides() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let g = grudge(PartitionKind::Bridge, 5, None, &mut rng).unwrap();
        let bridge: Vec<usize> = (0..5).filter(|i| !g.contains_key(i)).collect();
        assert_eq!(bridge.len(), 1);
        assert!(grudge(PartitionKind::Bridge, 3, None, &mut rng).is_none());
    }

    #[test]
    fn targets_resolve_to_the_right_sizes() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        assert_eq!(
            resolve_target(Target::Leader, 5, Some(3), &mut rng),
            vec![3]
        );
        assert_eq!(resolve_target(Target::Minority, 5, None, &mut rng).len(), 2);
        assert_eq!(resolve_target(Target::Majority, 5, None, &mut rng).len(), 3);
        assert_eq!(
            resolve_target(Target::All, 3, None, &mut rng),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn storage_faults_join_all_only_where_supported_and_corrupt_draws_its_own_targets() {
        let s = spec();
        let none = support(true, false);
        assert!(!s.kinds(none).contains(&FaultKind::PowerLoss));
        assert!(!s.kinds(none).contains(&FaultKind::Corrupt));
        let both = Support {
            power_loss: true,
            corrupt: true,
            ..none
        };
        let kinds = s.kinds(both);
        assert!(kinds.contains(&FaultKind::PowerLoss) && kinds.contains(&FaultKind::Corrupt));
        let plan = schedule(&s, &[FaultKind::Corrupt], 7, 60.0, 3);
        assert!(!plan.is_empty());
        assert!(plan.iter().flat_map(|p| &p.actions).all(|a| matches!(
            a,
            Action::Corrupt {
                target: Target::Minority
            }
        )));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.toml");
        std::fs::write(
            &path,
            "faults = []\ncombinations = [[\"power-loss\", \"kill\"]]\n",
        )
        .unwrap();
        let err = NemesisSpec::load(&path).unwrap_err().to_string();
        assert!(err.contains("power-loss and kill"), "{err}");
        std::fs::write(
            &path,
            "faults = []\ncombinations = [[\"corrupt\", \"partition\"]]\n",
        )
        .unwrap();
        assert!(NemesisSpec::load(&path).is_ok());
        std::fs::write(&path, "faults = [\"power-cut\"]\n").unwrap();
        let err = NemesisSpec::load(&path).unwrap_err().to_string();
        assert!(err.contains("power-loss, corrupt"), "{err}");
    }

    #[test]
    fn shipped_nemeses_load() {
        for name in [
            "none",
            "kill",
            "pause",
            "partition",
            "all",
            "combined",
            "kill-fast",
            "isolate-leader",
            "isolate-random",
            "power-loss",
            "power-loss-all",
            "power-loss-journaled",
            "power-loss-staggered",
            "corrupt",
            "corrupt-bitflip",
            "corrupt-lost-data",
        ] {
            let p = crate::spec::resolve("nemesis", "nemesis", name).unwrap();
            NemesisSpec::load(&p).unwrap();
        }
    }
}
