//! The matrix's records: one [`RunRecord`] per run, appended to a JSONL table (the committed
//! `docs/matrix/runs.jsonl`), and the per-row [`RowSummary`] written as `matrix.json` under
//! `results/matrix/<timestamp>/`, which the results index reads back.

use crate::checker::Verdict;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One run of one row: a line of the committed table.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct RunRecord {
    /// The matrix.toml row this run belongs to (its `name`); summaries group records by it.
    pub row: String,
    /// The run's seed: the row's first seed plus the run's position; rerun it with `--seed`.
    pub seed: u64,
    /// The commit the raftcheck binary was built from ([`crate::BUILD_COMMIT`]).
    pub commit: String,
    /// When it ran (UTC).
    pub date: String,
    /// Verdict, or `None` when the run could not be carried out.
    pub verdict: Option<Verdict>,
    /// Exit code (2 for a run error).
    pub exit_code: i32,
    /// Seconds from the run start to the first violation seen, for invalid runs.
    pub first_violation_secs: Option<f64>,
    /// Fault-phase length.
    pub duration_secs: f64,
    /// One line: the first counterexample or invariant violation, or the error.
    pub finding: Option<String>,
    /// The run's results dir.
    pub dir: String,
}

/// A row's figures over its runs.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct RowSummary {
    /// The row's `name` in matrix.toml, the first column of matrix.md.
    pub row: String,
    /// What the row must get: `invalid` for a bug switch, `valid` for a control (never `unknown`:
    /// the spec refuses it).
    pub expect: Verdict,
    /// Records of this row in the table, error runs included.
    pub runs: usize,
    /// Runs that found a violation; a bug row passes with 90% of `runs` (one, in the CI subset).
    pub invalid: usize,
    /// Runs that could not decide; a control with any of them fails, since it tested nothing.
    pub unknown: usize,
    /// Runs that could not be carried out.
    pub errors: usize,
    /// Median time to the first violation over invalid runs, seconds.
    pub median_first_violation_secs: Option<f64>,
    /// The finding of one failing run.
    pub example: Option<String>,
    /// That run's results dir (its report.html holds the whole counterexample), as recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example_dir: Option<String>,
    /// Whether the row meets its target (bugs: found in >= 90% of runs; controls: every run
    /// valid, since an unknown control tested nothing).
    pub pass: bool,
    /// Why the workload/nemesis exposes the bug.
    pub why: String,
}

/// Read a committed run table (JSONL), skipping lines that do not parse.
pub fn read_table(path: &Path) -> Vec<RunRecord> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// `matrix.json` as `raftcheck matrix` writes it; readers need only the rows.
#[derive(Deserialize)]
struct SummaryFile {
    rows: Vec<RowSummary>,
}

/// The rows of a summary dir's `matrix.json`, or `None` if it is missing or does not parse.
pub(crate) fn read_summary(dir: &Path) -> Option<Vec<RowSummary>> {
    let body = std::fs::read_to_string(dir.join("matrix.json")).ok()?;
    serde_json::from_str::<SummaryFile>(&body)
        .ok()
        .map(|f| f.rows)
}
