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

use crate::checker::{CheckResult, Verdict};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What a check concludes about a file (or a whole invocation), as results.json, the terminal and
/// the exit code all say it: the checker's three verdicts plus `error` for input that could not
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

/// The checker's answer for one history file, as written to results.json by `raftcheck check`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HistoryCheck {
    /// The history file.
    pub file: String,
    /// Its conclusion: the checker's verdict, or `error` when the file could not be checked.
    pub verdict: Conclusion,
    /// Why the file could not be checked (verdict `error`), naming the file and line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Ops by f and outcome.
    #[serde(default)]
    pub op_counts: crate::store::OpCounts,
    /// The checker's full answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckResult>,
}

/// results.json of `raftcheck check`: the worst conclusion and one entry per file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckReport {
    /// The worst conclusion over every file, unreadable ones included; the exit code says the
    /// same.
    pub verdict: Conclusion,
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
