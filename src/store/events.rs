//! nemesis.jsonl and leaders.jsonl: what the nemesis did and what the monitor saw, one typed
//! record per line. Phases and outcomes are enums, so a rule that counts "installed starts"
//! cannot be broken by a typo in a string.

use crate::client::Role;
use crate::spec::nemesis::FaultKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One line of nemesis.jsonl: a fault's start or stop, written by the nemesis as it happens and
/// read back for the coverage rules and the plots' shading.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NemesisEvent {
    /// The sink's counter: counts up from 0 in file order.
    pub index: u64,
    /// ns since the run started.
    pub time: u64,
    /// Whether this line starts (injects) or stops (heals) the fault.
    pub event: Phase,
    /// The kind of the fault (a combination logs one line per kind); a membership fault's installed
    /// start also marks when its node's data dir was wiped.
    pub fault: FaultKind,
    /// e.g. "kill leader", "partition halves".
    pub label: String,
    /// Names of the nodes the fault hit (for a partition, every node in the grudge); empty when it
    /// was skipped before any was chosen.
    pub nodes: Vec<String>,
    /// For partitions: who drops whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grudge: Option<BTreeMap<String, Vec<String>>>,
    /// Installed, skipped or failed on a start line; healed or failed on a stop line. Only
    /// installed starts count as exercised.
    pub outcome: FaultOutcome,
    /// Why skipped or failed, or how the target was chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Power-loss and corrupt starts: per node, what its disk lost or how it was damaged, so a
    /// report shows the fault did something (or says that it found nothing to discard).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<StorageEffect>,
}

/// What a storage fault did to one node's data dir.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageEffect {
    /// The node (`n2`).
    pub node: String,
    /// One line for people: "2 file(s), 4,120 byte(s), 1 directory op(s) undone", "bitflip
    /// wal at 8192+4096 (3 bits)", or why nothing was done.
    pub summary: String,
    /// A power loss: what was discarded, file by file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discarded: Option<crate::cluster::powerfs::Discarded>,
    /// A corrupt fault: exactly what was damaged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damage: Option<crate::cluster::damage::Damage>,
}

/// Which end of a fault a nemesis.jsonl line records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The fault was injected (or tried).
    Start,
    /// The fault was healed (or its heal tried).
    Stop,
}

/// How one nemesis step ended. Start lines are installed, skipped or failed; stop lines are
/// healed or failed. Coverage rules count only `Installed` starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultOutcome {
    /// The fault took hold and lasts until its stop line; only these starts count as exercised.
    Installed,
    /// Not possible here (a 5-node shape on 3 nodes, no leader to target): nothing was done.
    Skipped,
    /// Tried and failed; the reason says how.
    Failed,
    /// The fault was lifted.
    Healed,
}

impl Phase {
    /// The word nemesis.jsonl and the report use.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::Stop => "stop",
        }
    }
}

impl FaultOutcome {
    /// The word nemesis.jsonl and the report use.
    pub fn name(self) -> &'static str {
        match self {
            FaultOutcome::Installed => "installed",
            FaultOutcome::Skipped => "skipped",
            FaultOutcome::Failed => "failed",
            FaultOutcome::Healed => "healed",
        }
    }
}

impl NemesisEvent {
    /// A start line whose fault is in force.
    pub fn installed(&self) -> bool {
        self.event == Phase::Start && self.outcome == FaultOutcome::Installed
    }
}

/// One line of leaders.jsonl.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    /// The sink's counter: counts up from 0 in file order.
    pub index: u64,
    /// ns since the run started.
    pub time: u64,
    /// Name of the node that answered this status query; a node that did not answer gets no line.
    pub node: String,
    /// The role the node reported, as its adapter maps it; election safety compares the `leader`
    /// samples.
    pub role: Role,
    /// The current term the node reported; term monotonicity wants it never to go back for one
    /// node, unless its data dir was wiped.
    pub term: u64,
    /// Name of the node this one believes leads; `None` when it knows of none (or named a node
    /// outside the cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
}
