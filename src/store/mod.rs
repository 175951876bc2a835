//! The store: everything in a run directory, written and read here and nowhere else (Jepsen's
//! `store`). A run dir holds:
//!
//! | file | written | what |
//! |---|---|---|
//! | `history.jsonl` | as ops happen ([`JsonlSink`]) | the history (DESIGN.md) |
//! | `nemesis.jsonl` | as faults happen | one [`NemesisEvent`] per start and stop |
//! | `leaders.jsonl` | as the monitor samples | one [`Sample`] per node per sample |
//! | `results.json` | once, at the end | [`RunResults`] |
//! | `nodes/nK/log` | by the node | its stdout and stderr |
//! | `nodes/nK/data` | by the node | deleted after the run unless `--keep-data` |
//!
//! [`RunDir::read`] is the one reader of a finished run, used by the report, the index and the
//! matrix. The matrix's own records ([`matrix`]) live here too.
//!
//! The store imports the types its records are made of (history, checker, specs, the cluster's
//! network mode and crash record, the client's role) and nothing that runs or renders: never
//! `run`, `report`, `matrix` or `analysis`.

pub mod events;
pub mod matrix;
pub mod results;
pub mod sink;

pub use events::{FaultOutcome, NemesisEvent, Phase, Sample, StorageEffect};
pub use results::{
    Conclusion, Exercised, FaultCounts, LeaderChange, OpCounts, Quantiles, RunResults,
    Unavailability, UnavailableWindow, Violation,
};
pub use sink::JsonlSink;

use crate::history::{self, Op};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// The history file of a run dir.
pub(crate) const HISTORY: &str = "history.jsonl";
/// The nemesis log of a run dir.
pub(crate) const NEMESIS: &str = "nemesis.jsonl";
/// The monitor's samples.
pub(crate) const LEADERS: &str = "leaders.jsonl";
/// Where [`RunResults`] is written, once, when the run ends.
pub(crate) const RESULTS: &str = "results.json";

/// A run dir that cannot be read back. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The run-dir file that could not be read or written; the message starts with it.
        path: PathBuf,
        /// Why (no results.json in a run that never finished, a full disk, ...).
        source: std::io::Error,
    },
    /// The file is not what a run writes there.
    #[error("{path}: {msg}")]
    Malformed {
        /// The file whose contents are not a run's; the message starts with it.
        path: PathBuf,
        /// What did not parse: serde_json's message, or the history reader's naming the line.
        msg: String,
    },
}

/// A run's directory: where each of its files is.
#[derive(Clone, Debug)]
pub struct RunDir {
    path: PathBuf,
}

/// Everything a finished run recorded, read back once.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// results.json, which must exist and parse: a run that never finished cannot be read back.
    pub results: RunResults,
    /// history.jsonl, paired (empty when the run wrote none).
    pub ops: Vec<Op>,
    /// nemesis.jsonl's lines that parse, in file order; empty when the file is missing.
    pub nemesis: Vec<NemesisEvent>,
    /// leaders.jsonl's samples that parse, in file order; empty when the file is missing.
    pub samples: Vec<Sample>,
}

impl RunDir {
    /// The run dir at `path` (nothing is read yet).
    pub fn new(path: impl Into<PathBuf>) -> RunDir {
        RunDir { path: path.into() }
    }

    /// The run directory as given to [`RunDir::new`] (not canonicalized).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One of the run's files by name ([`HISTORY`], [`RESULTS`], ...).
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Read results.json, the history, the nemesis log and the samples of a finished run.
    /// A missing or malformed results.json or history is an error naming the file; the two
    /// logs are read line by line (a run killed mid-line leaves a torn last line, skipped).
    pub fn read(&self) -> Result<Recorded, StoreError> {
        let results = self.results()?;
        let hpath = self.file(HISTORY);
        let ops = if hpath.exists() {
            read_history(&hpath)?
        } else {
            Vec::new()
        };
        Ok(Recorded {
            results,
            ops,
            nemesis: self.nemesis(),
            samples: self.samples(),
        })
    }

    /// Read and parse results.json only, without the history and logs; an error names the file.
    pub fn results(&self) -> Result<RunResults, StoreError> {
        let path = self.file(RESULTS);
        let text = std::fs::read_to_string(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| StoreError::Malformed {
            path,
            msg: format!("not a run's results.json: {e}"),
        })
    }

    /// nemesis.jsonl (empty if absent).
    pub fn nemesis(&self) -> Vec<NemesisEvent> {
        read_lines(&self.file(NEMESIS))
    }

    /// leaders.jsonl (empty if absent).
    pub(crate) fn samples(&self) -> Vec<Sample> {
        read_lines(&self.file(LEADERS))
    }

    /// Write results.json as pretty JSON, replacing any earlier one; returns its path for messages.
    pub(crate) fn write_results(&self, results: &RunResults) -> Result<PathBuf, StoreError> {
        let path = self.file(RESULTS);
        write_json(&path, results).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}

/// A history file, parsed and paired with the checker's rules (file order checked against
/// times and indices).
pub(crate) fn read_history(path: &Path) -> Result<Vec<Op>, StoreError> {
    let malformed = |e: history::HistoryError| StoreError::Malformed {
        path: path.to_path_buf(),
        msg: e.to_string(),
    };
    let (events, src) = history::read_file(path).map_err(malformed)?;
    history::pair(&events, &src).map_err(malformed)
}

/// The records of a JSONL log that parse; a line that does not (a torn last line) is skipped.
fn read_lines<T: DeserializeOwned>(path: &Path) -> Vec<T> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Write a value as pretty JSON, creating the parent directory.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    std::fs::write(path, text + "\n")
}
