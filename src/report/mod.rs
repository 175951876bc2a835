//! What users read: the terminal summary ([`text`]), report.html ([`html`]) with its PNG plots
//! ([`plots`]), junit.xml ([`junit`]), results/index.html ([`index`]), and `raftcheck check`'s
//! results.json ([`CheckReport`]).
//!
//! Everything here renders data it is given: a run's records come from [`crate::store`] and
//! their meaning from [`crate::analysis`], so the terminal, the JSON and the page say the same
//! thing. Report imports history, checker, spec, store and analysis, never run, matrix, cluster
//! or client. Within it, the pages share only what this file defines (escaping, links, errors).

pub mod figures;
pub mod html;
pub mod index;
pub mod junit;
pub mod plots;
pub mod text;

pub use html::{render_check, render_run};
pub use index::write_index;
pub use junit::write_junit;

use crate::checker::CheckResult;
pub use crate::store::Conclusion;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// The checker's answer for one history file, as written to results.json by `raftcheck check`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HistoryCheck {
    /// The history file's path as given on the command line.
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

/// Why a report could not be written. A report is written after the verdict is known, so the
/// caller decides whether this changes the exit code; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file that could not be read or written; the message starts with it.
        path: PathBuf,
        /// Why (permission denied, a full disk, ...).
        source: std::io::Error,
    },
    /// An input file of the run dir is missing or malformed.
    #[error("{path}: {msg}")]
    Input {
        /// The run-dir input at fault; the message starts with it.
        path: PathBuf,
        /// What was wrong.
        msg: String,
    },
    /// The run dir could not be read back.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// plotters could not draw or encode a PNG.
    #[error("drawing {path}: {msg}")]
    Plot {
        /// The PNG being drawn when plotters failed.
        path: PathBuf,
        /// plotters' error, turned into text.
        msg: String,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Escape text for HTML element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode a relative path for an href: everything but unreserved characters and `/`.
/// (A `:` in a first segment would otherwise read as a URL scheme.)
pub fn href(rel: &str) -> String {
    let mut out = String::with_capacity(rel.len());
    for b in rel.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
