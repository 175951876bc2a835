//! Results: `results.json`, the human summary printed on the terminal, and results dirs.
//!
//! Everything a run or a check tells the user goes through here, so the terminal, the JSON and
//! (later) the HTML report say the same thing.

pub mod html;
pub mod index;
pub mod junit;
pub mod plots;
pub mod text;

pub use html::{render_check, render_run, ReportError};
pub use index::write_index;
pub use junit::write_junit;
pub use plots::{unavailability, Unavailability};

use crate::checker::{CheckResult, Verdict};
use crate::history::{Op, Outcome};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Op counts by function, then by outcome ("ok", "fail", "info"; mismatched cas count as fail).
pub type OpCounts = BTreeMap<String, BTreeMap<String, usize>>;

/// Count ops by f and outcome, the table every report shows first.
pub fn op_counts(ops: &[Op]) -> OpCounts {
    let mut m = OpCounts::new();
    for o in ops {
        let outcome = match o.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail | Outcome::Mismatch => "fail",
            Outcome::Info => "info",
        };
        *m.entry(o.f.name().to_string())
            .or_default()
            .entry(outcome.to_string())
            .or_default() += 1;
    }
    m
}

/// The checker's answer for one history file, as written to results.json by `raftcheck check`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HistoryCheck {
    /// The history file.
    pub file: String,
    /// Its verdict (or `None` if the file could not be checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Bad input, if the file could not be checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Ops by f and outcome.
    #[serde(default)]
    pub op_counts: OpCounts,
    /// The checker's full answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckResult>,
}

/// results.json of `raftcheck check`: the worst verdict and one entry per file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckReport {
    /// Worst verdict over the files that could be checked.
    pub verdict: Verdict,
    /// True if some file could not be checked (exit code 2).
    pub errors: bool,
    /// One entry per file, in command-line order.
    pub histories: Vec<HistoryCheck>,
}

/// Write a value as pretty JSON, creating the parent directory.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    std::fs::write(path, text + "\n")
}

/// A UTC timestamp usable as a directory name, e.g. `20261123T183400Z`.
pub fn timestamp() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}
