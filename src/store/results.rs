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

/// One leader change seen by the monitor.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LeaderChange {
    /// ns since the run started.
    pub time: u64,
    /// The new leader.
    pub node: String,
    /// Its term.
    pub term: u64,
}

/// Outcome counts of one fault label ("kill leader").
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FaultCounts {
    /// Installed.
    pub installed: usize,
    /// Skipped (not possible here, e.g. a 5-node shape on 3 nodes).
    pub skipped: usize,
    /// Tried and failed.
    pub failed: usize,
}

/// What the run actually exercised.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Exercised {
    /// Fault kinds requested (after the network mode's filtering).
    pub requested: Vec<FaultKind>,
    /// Fault kinds dropped because the mode cannot do them, with why.
    pub unsupported: BTreeMap<String, String>,
    /// Outcomes by fault label.
    pub faults: BTreeMap<String, FaultCounts>,
    /// Leader changes seen.
    pub leader_changes: usize,
    /// Ops by f and outcome.
    pub ops: OpCounts,
}

/// Latency quantiles of ok ops of one function, in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Quantiles {
    /// Number of ok ops.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

/// results.json of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResults {
    /// The run's verdict (checker + crashes + coverage).
    pub verdict: Verdict,
    /// Why, when not simply the checker's valid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Short run id (every resource the run created carries it).
    pub run_id: String,
    /// Cluster spec name.
    pub cluster: String,
    /// Workload spec name.
    pub workload: String,
    /// Nemesis spec name.
    pub nemesis: String,
    /// Seed.
    pub seed: u64,
    /// The command that reproduces the run.
    pub command: String,
    /// netns or loopback.
    pub net_mode: NetMode,
    /// Why that mode.
    pub net_reason: String,
    /// Node count.
    pub nodes: usize,
    /// Start time (UTC, RFC 3339).
    pub started: String,
    /// Fault-phase length actually run, seconds.
    pub duration_secs: f64,
    /// Whether Ctrl-C cut the run short.
    pub interrupted: bool,
    /// The workload as run (after flag overrides).
    pub workload_spec: WorkloadSpec,
    /// The nemesis as run.
    pub nemesis_spec: NemesisSpec,
    /// The argv of each node.
    pub node_argv: Vec<Vec<String>>,
    /// Nodes that exited on their own.
    pub crashes: Vec<Crash>,
    /// What was exercised.
    pub exercised: Exercised,
    /// Leader changes, in order.
    pub leader_changes: Vec<LeaderChange>,
    /// Latency quantiles by function.
    pub latency_ms: BTreeMap<String, Quantiles>,
    /// For each leader change, how long acknowledged writes stopped; median and max.
    #[serde(default)]
    pub unavailability: Unavailability,
    /// Raft invariants broken, as seen by the monitor (election safety, term monotonicity).
    #[serde(default)]
    pub invariants: Vec<Violation>,
    /// Keys the final phase could not read.
    pub unread_keys: Vec<Option<String>>,
    /// The checker's answer.
    pub check: CheckResult,
}

/// Unavailability around one leader change: how long no write was acknowledged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnavailableWindow {
    /// When the monitor first saw the new leader, ns since the run started.
    pub time: u64,
    /// The new leader.
    pub node: String,
    /// Its term.
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
    /// A sentence.
    pub explanation: String,
    /// The earlier sample.
    pub first: Sample,
    /// The later sample.
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
    /// Linearizable.
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
