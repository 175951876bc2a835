//! results.json of a run and its parts: the verdict and its reasons, what was exercised,
//! latency, leader changes and the unavailability around them, Raft invariants broken, and the
//! checker's answer. Written once by the run, read back by the report, the index and the matrix
//! through [`super::RunDir`].

use super::events::Sample;
use crate::checker::{CheckResult, Verdict};
use crate::cluster::net::NetMode;
use crate::cluster::supervisor::Crash;
use crate::spec::nemesis::{FaultKind, NemesisSpec};
use crate::spec::workload::WorkloadSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Op counts by function, then by outcome ("ok", "fail", "info"; mismatched cas count as fail).
pub type OpCounts = BTreeMap<String, BTreeMap<String, usize>>;

/// A node first seen leading a higher term (or another node leading the same term) in the monitor's
/// samples; a run's first is the leader found at start, not a change.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LeaderChange {
    /// ns since the run started.
    pub time: u64,
    /// Name of the node seen leading (`n2`).
    pub node: String,
    /// The term it was seen leading; never below the previous change's.
    pub term: u64,
}

/// Outcome counts of one fault label ("kill leader").
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FaultCounts {
    /// Start lines that installed: how often the fault really took hold.
    pub installed: usize,
    /// Skipped (not possible here, e.g. a 5-node shape on 3 nodes).
    pub skipped: usize,
    /// Start lines that tried and failed; each one's reason is in nemesis.jsonl.
    pub failed: usize,
}

/// What the run actually exercised.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Exercised {
    /// Fault kinds requested (after the network mode's filtering).
    pub requested: Vec<FaultKind>,
    /// Fault kinds dropped because the mode cannot do them, with why.
    pub unsupported: BTreeMap<String, String>,
    /// Start-line outcomes per fault label ("kill leader"), from nemesis.jsonl; stop lines are not
    /// counted.
    pub faults: BTreeMap<String, FaultCounts>,
    /// Leader changes the monitor saw, the initial leader not counted (so one fewer than the
    /// entries of `leader_changes` in results.json).
    pub leader_changes: usize,
    /// Op counts by function, then outcome, a mismatched cas counted as fail; the index sums them
    /// for its ops column.
    pub ops: OpCounts,
}

/// Latency quantiles of ok ops of one function, in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Quantiles {
    /// Number of ok ops.
    pub count: usize,
    /// Median by nearest rank: the sorted value at index `round((n - 1) / 2)`, the upper middle one
    /// for an even count, not the mean of the two.
    pub p50: f64,
    /// 90th percentile by nearest rank.
    pub p90: f64,
    /// 99th percentile by nearest rank; with 50 ok ops or fewer it is `max`.
    pub p99: f64,
    /// The slowest ok op.
    pub max: f64,
}

/// A run's results.json: written once when the run ends, read back through [`super::RunDir`] by the
/// report, the index and the matrix.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResults {
    /// The run's verdict (checker + crashes + coverage).
    pub verdict: Verdict,
    /// Why, when not simply the checker's valid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Short run id (every resource the run created carries it).
    pub run_id: String,
    /// The stem of the `--cluster` argument (`raftkv` for `raftkv` or `clusters/raftkv.toml`), also
    /// the first part of the run dir's parent name.
    pub cluster: String,
    /// The stem of the `--workload` argument, as for `cluster`.
    pub workload: String,
    /// The stem of the `--nemesis` argument, as for `cluster`.
    pub nemesis: String,
    /// The seed the op generators and the fault schedule were drawn from (random unless `--seed`
    /// was given); `command` repeats it.
    pub seed: u64,
    /// The command that reproduces the run.
    pub command: String,
    /// The network mode the run used: netns (own IPs, partitions possible) or loopback (all on
    /// 127.0.0.1, no partitions).
    pub net_mode: NetMode,
    /// Why the run is in that mode (what detection found, or `--net`), in words for the report.
    pub net_reason: String,
    /// How many nodes ran: the cluster spec's count after `--nodes`.
    pub nodes: usize,
    /// Start time (UTC, RFC 3339).
    pub started: String,
    /// Fault-phase length actually run, seconds.
    pub duration_secs: f64,
    /// Whether Ctrl-C cut the run short.
    pub interrupted: bool,
    /// The workload as run (after flag overrides).
    pub workload_spec: WorkloadSpec,
    /// The nemesis spec as loaded (no flag overrides it), so the report shows what was asked even
    /// if the file changes later.
    pub nemesis_spec: NemesisSpec,
    /// Each node's argv when first started, by node index; a node rejoining after a membership
    /// fault also gets the spec's `rejoin_args`, not shown here.
    pub node_argv: Vec<Vec<String>>,
    /// Nodes that exited on their own.
    pub crashes: Vec<Crash>,
    /// What the run really did (faults by outcome, leader changes, op counts), which the coverage
    /// rules judge.
    pub exercised: Exercised,
    /// Every leader the monitor saw take over, in time order; the first entry is the leader found
    /// at start, not a change.
    pub leader_changes: Vec<LeaderChange>,
    /// Latency of ok ops by function name (`read`, `write`, ...), in ms; fail and info ops are left
    /// out.
    pub latency_ms: BTreeMap<String, Quantiles>,
    /// For each leader change, how long acknowledged writes stopped; median and max.
    #[serde(default)]
    pub unavailability: Unavailability,
    /// Raft invariants broken, as seen by the monitor (election safety, term monotonicity).
    #[serde(default)]
    pub invariants: Vec<Violation>,
    /// False when the cluster spec gives no way to ask a node for its role, term and leader:
    /// then `leader_changes`, `unavailability` and `invariants` are empty because nothing was
    /// observed, not because nothing happened, and the report says so. Files written before
    /// this field existed always had a status request.
    #[serde(default = "observed")]
    pub roles_observed: bool,
    /// Keys the final phase could not read.
    pub unread_keys: Vec<Option<String>>,
    /// The checker's answer.
    pub check: CheckResult,
}

fn observed() -> bool {
    true
}

/// Unavailability around one leader change: how long no write was acknowledged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnavailableWindow {
    /// When the monitor first saw the new leader, ns since the run started.
    pub time: u64,
    /// Name of the node that took over.
    pub node: String,
    /// The term it took over in.
    pub term: u64,
    /// Completion time (ns) of the last acknowledged write, cas or append at or before the
    /// change; `None` if there was none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ok_before: Option<u64>,
    /// Completion time (ns) of the first acknowledged write, cas or append after the change;
    /// `None` if there was none (the cluster never took a write again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_ok_after: Option<u64>,
    /// `first_ok_after - last_ok_before` in milliseconds, when both exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<f64>,
}

/// The unavailability figures of a run (DESIGN.md: results.json carries "the leader-change
/// unavailability windows"), what a user of a Raft store asks first: how long are writes
/// refused when the leader goes away?
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Unavailability {
    /// One entry per leader change (the initial leader excluded), in order.
    pub windows: Vec<UnavailableWindow>,
    /// Median of the measured windows (those with both ends), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_ms: Option<f64>,
    /// Longest measured window, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<f64>,
}

/// One broken invariant, with the two samples that show it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Violation {
    /// `election-safety` or `term-monotonicity`.
    pub invariant: String,
    /// A sentence naming the nodes, terms and times (s) of both samples, printed among the run's
    /// reasons.
    pub explanation: String,
    /// The earlier sample of the pair: the term's first leader, or the node's higher term.
    pub first: Sample,
    /// The later sample, which contradicts `first`: a second leader in that term, or the lower
    /// term.
    pub second: Sample,
}

/// What a check or a run concludes, as results.json, the terminal and the exit code all say it,
/// and the one place a verdict becomes an exit code: the checker's three verdicts plus `error` for input that could not
/// be read or is malformed. Kept apart from [`Verdict`] because the checker itself never says
/// `error`; kept in results.json so that a machine reading the JSON never sees `valid` where the
/// exit code says the input was bad.
///
/// Ordered by severity for [`Conclusion::merge`]: error over invalid over unknown over valid (a
/// user must fix the input before any verdict means anything).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Conclusion {
    /// Linearizable, and for a run nothing else made it invalid or unknown; exit 0.
    Valid,
    /// Not decided: a limit, or nothing to judge (an empty history).
    Unknown,
    /// A violation was found.
    Invalid,
    /// The input could not be read or contradicts itself; no verdict.
    Error,
}

impl Conclusion {
    /// The worse of two conclusions.
    pub fn merge(self, other: Conclusion) -> Conclusion {
        self.max(other)
    }

    /// The process exit code (DESIGN.md): 0, 3, 1, 2.
    pub fn exit_code(self) -> u8 {
        match self {
            Conclusion::Valid => 0,
            Conclusion::Invalid => 1,
            Conclusion::Error => 2,
            Conclusion::Unknown => 3,
        }
    }

    /// Upper-case word for the terminal and the report.
    pub fn word(self) -> &'static str {
        match self {
            Conclusion::Valid => "VALID",
            Conclusion::Invalid => "INVALID",
            Conclusion::Unknown => "UNKNOWN",
            Conclusion::Error => "ERROR",
        }
    }
}

impl From<Verdict> for Conclusion {
    fn from(v: Verdict) -> Conclusion {
        match v {
            Verdict::Valid => Conclusion::Valid,
            Verdict::Invalid => Conclusion::Invalid,
            Verdict::Unknown => Conclusion::Unknown,
        }
    }
}
