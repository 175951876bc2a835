//! results/index.html: every run under a results root, newest first, with its verdict, cluster,
//! workload, nemesis and date, linking to its report.
//!
//! Runs live at `ROOT/<cluster>-<workload>-<nemesis>/<timestamp>/` and checks at
//! `ROOT/check/<timestamp>/`. results.json is read as plain JSON, not as the current
//! `RunResults`, so the index still lists runs written by older or newer versions of raftcheck
//! (whose results.json may lack or add fields). Symlinks (`latest`) are not followed, so a run
//! is listed once.

use super::html::{esc, io_err, ReportError};
use serde_json::Value;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Directories looked at per level, so a huge or odd results root stays bounded.
const MAX_ENTRIES: usize = 20_000;

/// One row of the index.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexRow {
    /// The run dir relative to the root, with `/` separators.
    pub rel: String,
    /// valid / invalid / unknown, or "?" when results.json says none.
    pub verdict: String,
    /// "run" or "check".
    pub kind: String,
    /// Cluster spec name (runs).
    pub cluster: String,
    /// Workload spec name (runs).
    pub workload: String,
    /// Nemesis spec name (runs).
    pub nemesis: String,
    /// When it started, as `YYYY-MM-DD HH:MM:SS` (UTC).
    pub date: String,
    /// Sort key: digits of the date, newest first.
    sort: String,
    /// Fault-phase seconds (runs).
    pub duration: Option<f64>,
    /// Seed (runs).
    pub seed: Option<u64>,
    /// Total ops (runs: from results.json's op counts).
    pub ops: Option<u64>,
    /// The page to link: report.html if it exists, else results.json.
    pub link: String,
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

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .take(MAX_ENTRIES)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

fn text(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn row(root: &Path, dir: &Path) -> Option<IndexRow> {
    let results = dir.join("results.json");
    let body = std::fs::read_to_string(&results).ok()?;
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let rel = dir
        .strip_prefix(root)
        .ok()?
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    let dir_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let is_run = v.get("run_id").is_some();
    let started = text(&v, "started");
    // Runs carry an RFC 3339 start; checks only their dir's timestamp (20261123T183400Z).
    let stamp = if started.is_empty() {
        dir_name.clone()
    } else {
        started.clone()
    };
    let digits: String = stamp
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    let date = if digits.len() == 14 {
        format!(
            "{}-{}-{} {}:{}:{}",
            &digits[0..4],
            &digits[4..6],
            &digits[6..8],
            &digits[8..10],
            &digits[10..12],
            &digits[12..14]
        )
    } else {
        stamp
    };
    let ops = v
        .pointer("/exercised/ops")
        .and_then(Value::as_object)
        .map(|m| {
            m.values()
                .filter_map(Value::as_object)
                .flat_map(|by| by.values().filter_map(Value::as_u64))
                .sum()
        });
    let link = if dir.join("report.html").is_file() {
        format!("{rel}/report.html")
    } else {
        format!("{rel}/results.json")
    };
    Some(IndexRow {
        verdict: v
            .get("verdict")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string(),
        kind: if is_run { "run" } else { "check" }.to_string(),
        cluster: text(&v, "cluster"),
        workload: text(&v, "workload"),
        nemesis: text(&v, "nemesis"),
        sort: digits,
        date,
        duration: v.get("duration_secs").and_then(Value::as_f64),
        seed: v.get("seed").and_then(Value::as_u64),
        ops,
        link,
        rel,
    })
}

/// Every run (or check) dir with a results.json up to two levels under `root`, newest first.
pub fn scan(root: &Path) -> Vec<IndexRow> {
    let mut rows: Vec<IndexRow> = Vec::new();
    for group in subdirs(root) {
        if let Some(r) = row(root, &group) {
            rows.push(r);
            continue;
        }
        for run in subdirs(&group) {
            rows.extend(row(root, &run));
        }
    }
    rows.sort_by(|a, b| b.sort.cmp(&a.sort).then_with(|| a.rel.cmp(&b.rel)));
    rows
}

fn verdict_cell(v: &str) -> String {
    let class = match v {
        "valid" => "v-valid",
        "invalid" => "v-invalid",
        "unknown" => "v-unknown",
        _ => "v-other",
    };
    format!(
        "<span class=\"badge {class}\">{}</span>",
        esc(&v.to_uppercase())
    )
}

/// results/index.html listing every run under a results root: verdict, cluster, workload,
/// nemesis, date, link to its report. Returns the file written. Rewritten whole each time,
/// so it is always in step with the dirs on disk.
pub fn write_index(results_root: &Path) -> Result<PathBuf, ReportError> {
    let rows = scan(results_root);
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<link rel=\"icon\" href=\"data:,\">\n\
         <title>raftcheck results</title>\n<style>\n\
         body{font-family:system-ui,\"DejaVu Sans\",sans-serif;margin:20px;color:#1b1b1b}\n\
         table{border-collapse:collapse;font-size:14px}th,td{border:1px solid #ddd;padding:4px 9px;text-align:left}\n\
         th{background:#f1f1f1}td.n{text-align:right}\n\
         .badge{display:inline-block;padding:1px 8px;border-radius:4px;color:#fff;font-weight:600;font-size:13px}\n\
         .v-valid{background:#2e7d32}.v-invalid{background:#c62828}.v-unknown{background:#b26a00}.v-other{background:#777}\n\
         </style>\n</head>\n<body>\n<h1>raftcheck results</h1>\n",
    );
    let count = |v: &str| rows.iter().filter(|r| r.verdict == v).count();
    let _ = writeln!(
        s,
        "<p>{} runs: {} valid, {} invalid, {} unknown. Newest first.{}</p>",
        rows.len(),
        count("valid"),
        count("invalid"),
        count("unknown"),
        if results_root.join("latest").join("report.html").is_file() {
            " <a href=\"latest/report.html\">Latest run</a>."
        } else {
            ""
        }
    );
    s.push_str(
        "<table><tr><th>verdict</th><th>date (UTC)</th><th>cluster</th><th>workload</th><th>nemesis</th>\
         <th>seed</th><th>seconds</th><th>ops</th><th>report</th></tr>\n",
    );
    for r in &rows {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td><a href=\"{}\">{}</a></td></tr>",
            verdict_cell(&r.verdict),
            esc(&r.date),
            esc(if r.kind == "check" { "(check)" } else { &r.cluster }),
            esc(&r.workload),
            esc(&r.nemesis),
            r.seed.map(|v| v.to_string()).unwrap_or_default(),
            r.duration.map(|v| format!("{v:.1}")).unwrap_or_default(),
            r.ops.map(|v| v.to_string()).unwrap_or_default(),
            href(&r.link),
            esc(&r.rel)
        );
    }
    s.push_str("</table>\n</body>\n</html>\n");
    std::fs::create_dir_all(results_root).map_err(io_err(results_root))?;
    let path = results_root.join("index.html");
    std::fs::write(&path, s).map_err(io_err(&path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn href_encodes_everything_that_could_break_a_relative_link() {
        assert_eq!(href("a b/c:d/é.html"), "a%20b/c%3Ad/%C3%A9.html");
    }

    #[test]
    fn index_lists_runs_newest_first_and_skips_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let mk = |rel: &str, json: &str| {
            let d = root.path().join(rel);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("results.json"), json).unwrap();
        };
        mk(
            "raftkv-register-kill/20261101T000000.000Z",
            r#"{"verdict":"valid","run_id":"a","cluster":"raftkv","workload":"register","nemesis":"kill","started":"2026-11-01T00:00:00+00:00","seed":1,"exercised":{"ops":{"read":{"ok":3,"info":1}}}}"#,
        );
        mk(
            "raftkv-register-kill/20261102T000000.000Z",
            r#"{"verdict":"invalid","run_id":"b","cluster":"raftkv","workload":"register","nemesis":"kill","started":"2026-11-02T00:00:00+00:00","seed":2}"#,
        );
        mk(
            "check/20261103T000000Z",
            r#"{"verdict":"unknown","errors":false,"histories":[]}"#,
        );
        std::os::unix::fs::symlink(
            "raftkv-register-kill/20261102T000000.000Z",
            root.path().join("latest"),
        )
        .unwrap();
        let rows = scan(root.path());
        let verdicts: Vec<&str> = rows.iter().map(|r| r.verdict.as_str()).collect();
        assert_eq!(verdicts, ["unknown", "invalid", "valid"]);
        assert_eq!(rows[2].ops, Some(4));
        assert_eq!(rows[1].date, "2026-11-02 00:00:00");
        let path = write_index(root.path()).unwrap();
        let html = std::fs::read_to_string(path).unwrap();
        assert!(html.contains("raftkv-register-kill/20261101T000000.000Z/results.json"));
    }
}
