//! results/index.html: every run under a results root, newest first, with its verdict, cluster,
//! workload, nemesis and date, linking to its report.
//!
//! Runs live at `ROOT/<cluster>-<workload>-<nemesis>/<timestamp>/` and checks at
//! `ROOT/check/<timestamp>/`. Bug-detection matrix summaries (`raftcheck matrix`) live at
//! `ROOT/matrix/<timestamp>/matrix.{md,json}`; the newest is shown as a table above the runs,
//! older ones as links. results.json is read as plain JSON, not as the current
//! `RunResults`, so the index still lists runs written by older or newer versions of raftcheck
//! (whose results.json may lack or add fields). Symlinks (`latest`) are not followed, so a run
//! is listed once.

use super::{esc, href, io_err, ReportError};
use crate::store::matrix::RowSummary;
use serde_json::Value;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Directories looked at per level, so a huge or odd results root stays bounded.
const MAX_ENTRIES: usize = 20_000;

/// The dir under the root holding matrix summaries; never scanned for runs.
const MATRIX_DIR: &str = "matrix";

/// Older matrix summaries listed as links.
const MAX_OLDER_MATRICES: usize = 20;

/// One run or check listed in results/index.html, taken from its results.json read as plain JSON,
/// so fields another version lacks are left empty.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexRow {
    /// The run dir relative to the root, with `/` separators.
    pub rel: String,
    /// valid / invalid / unknown, or "?" when results.json says none.
    pub verdict: String,
    /// "run" when results.json has a `run_id`, else "check" (a `raftcheck check` output dir).
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
    /// The run's seed, to rerun it with `--seed`; `None` for checks.
    pub seed: Option<u64>,
    /// Total ops (runs: from results.json's op counts).
    pub ops: Option<u64>,
    /// The page to link: report.html if it exists, else results.json.
    pub link: String,
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

/// The first 14 digits of a timestamp (RFC 3339 or a dir name like `20261123T183400Z`), and
/// the date as `YYYY-MM-DD HH:MM:SS`, or the stamp itself when it has too few digits.
fn sort_key_and_date(stamp: String) -> (String, String) {
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
    (digits, date)
}

/// A dir's path relative to the root, with `/` separators.
fn rel_path(root: &Path, dir: &Path) -> Option<String> {
    Some(
        dir.strip_prefix(root)
            .ok()?
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/"),
    )
}

fn row(root: &Path, dir: &Path) -> Option<IndexRow> {
    let results = dir.join("results.json");
    let body = std::fs::read_to_string(&results).ok()?;
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let rel = rel_path(root, dir)?;
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
    let (digits, date) = sort_key_and_date(stamp);
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
/// `root/matrix/` holds matrix summaries, not runs, and is skipped.
pub(crate) fn scan(root: &Path) -> Vec<IndexRow> {
    let mut rows: Vec<IndexRow> = Vec::new();
    for group in subdirs(root) {
        if group.file_name().is_some_and(|n| n == MATRIX_DIR) {
            continue;
        }
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

/// One matrix summary: `ROOT/matrix/<timestamp>/` with a readable matrix.json.
#[derive(Clone, Debug)]
pub(crate) struct MatrixEntry {
    /// The summary dir relative to the root, with `/` separators.
    pub rel: String,
    /// When it was written, as `YYYY-MM-DD HH:MM:SS` (UTC), from the dir name.
    pub date: String,
    /// The rows of matrix.json, in spec order.
    pub rows: Vec<RowSummary>,
    /// Whether matrix.md exists next to matrix.json.
    pub has_markdown: bool,
}

impl MatrixEntry {
    /// The page to link: matrix.md if it exists, else matrix.json.
    fn link(&self) -> String {
        if self.has_markdown {
            format!("{}/matrix.md", self.rel)
        } else {
            format!("{}/matrix.json", self.rel)
        }
    }

    /// Rows that were run (a CI or `--row` subset leaves the others at zero runs).
    fn ran(&self) -> impl Iterator<Item = &RowSummary> {
        self.rows.iter().filter(|r| r.runs > 0)
    }
}

fn matrix_entry(root: &Path, dir: &Path) -> Option<MatrixEntry> {
    let rows = crate::store::matrix::read_summary(dir)?;
    let name = dir.file_name()?.to_string_lossy().into_owned();
    Some(MatrixEntry {
        rel: rel_path(root, dir)?,
        date: sort_key_and_date(name).1,
        rows,
        has_markdown: dir.join("matrix.md").is_file(),
    })
}

/// Matrix summaries under `root/matrix/`, newest first: at most `1 + MAX_OLDER_MATRICES`, and
/// only dirs whose matrix.json reads and parses. Timestamp dir names sort by time.
pub(crate) fn scan_matrices(root: &Path) -> Vec<MatrixEntry> {
    let mut dirs = subdirs(&root.join(MATRIX_DIR));
    dirs.reverse();
    dirs.iter()
        .filter_map(|d| matrix_entry(root, d))
        .take(1 + MAX_OLDER_MATRICES)
        .collect()
}

/// The example run's report.html relative to `root`, if the recorded dir (absolute, or relative
/// to where the matrix ran) still exists under the root.
fn example_report(root: &Path, dir: Option<&str>) -> Option<String> {
    let dir = std::fs::canonicalize(dir?).ok()?;
    let root = std::fs::canonicalize(root).ok()?;
    let report = dir.join("report.html");
    if !report.is_file() {
        return None;
    }
    rel_path(&root, &report)
}

/// The matrix section: the newest summary as a table, older ones as links. Empty when there
/// is no readable summary.
fn matrix_section(root: &Path, entries: &[MatrixEntry]) -> String {
    let Some((newest, older)) = entries.split_first() else {
        return String::new();
    };
    let mut s = String::from("<h2 id=\"matrix\">Bug-detection matrix</h2>\n");
    let ran = newest.ran().count();
    let met = newest.ran().filter(|r| r.pass).count();
    let not_run = newest.rows.len() - ran;
    let _ = write!(
        s,
        "<p>Newest summary, {}: {met} of {ran} rows met their target.{}",
        esc(&newest.date),
        if not_run > 0 {
            format!(
                " {not_run} {} of the spec not run {} not shown.",
                if not_run == 1 { "row" } else { "rows" },
                if not_run == 1 { "is" } else { "are" }
            )
        } else {
            String::new()
        }
    );
    if newest.has_markdown {
        let _ = write!(
            s,
            " <a href=\"{}\">matrix.md</a>",
            href(&format!("{}/matrix.md", newest.rel))
        );
    }
    let _ = writeln!(
        s,
        " <a href=\"{}\">matrix.json</a></p>",
        href(&format!("{}/matrix.json", newest.rel))
    );
    if ran > 0 {
        s.push_str(
            "<table><tr><th>row</th><th>expect</th><th>runs</th><th>invalid</th><th>unknown</th>\
             <th>median time to violation</th><th>target met</th><th>example finding</th></tr>\n",
        );
    }
    for r in newest.ran() {
        // Long findings are cut as in matrix.md; the whole text is the cell's tooltip.
        let example = match r.example.as_deref() {
            Some(e) if e.len() > 140 => format!(
                "<td title=\"{}\">{}…</td>",
                esc(e),
                esc(&e[..e.floor_char_boundary(140)])
            ),
            Some(e) => format!("<td>{}</td>", esc(e)),
            None => "<td>-</td>".to_string(),
        };
        // One click to the whole counterexample, when that run is still under this root.
        let example = match example_report(root, r.example_dir.as_deref()) {
            Some(rel) => example.replacen(
                "</td>",
                &format!(" <a href=\"{}\">report</a></td>", href(&rel)),
                1,
            ),
            None => example,
        };
        let _ = writeln!(
            s,
            "<tr{}><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td>{example}</tr>",
            if r.pass { "" } else { " class=\"missed\"" },
            esc(&r.row),
            esc(r.expect.name()),
            r.runs,
            r.invalid,
            r.unknown,
            r.median_first_violation_secs
                .map_or("-".into(), |t| format!("{t:.1} s")),
            target_cell(r.pass),
        );
    }
    if ran > 0 {
        s.push_str("</table>\n");
    }
    if !older.is_empty() {
        s.push_str("<p>Older summaries, newest first:</p>\n<ul>\n");
        for e in older {
            let _ = writeln!(
                s,
                "<li><a href=\"{}\">{}</a>: {} of {} rows met their target</li>",
                href(&e.link()),
                esc(&e.date),
                e.ran().filter(|r| r.pass).count(),
                e.ran().count()
            );
        }
        s.push_str("</ul>\n");
    }
    s.push_str("<h2 id=\"runs\">Runs</h2>\n");
    s
}

/// "yes" / "NO" as a badge, styled like a valid / invalid verdict.
fn target_cell(pass: bool) -> String {
    let (class, text) = if pass {
        ("v-valid", "yes")
    } else {
        ("v-invalid", "NO")
    };
    format!("<span class=\"badge {class}\">{text}</span>")
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
/// nemesis, date, link to its report; above them, the newest bug-detection matrix summary (if
/// any) and links to older ones. Returns the file written. Rewritten whole each time,
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
         tr.missed td{background:#fdecea}\n\
         </style>\n</head>\n<body>\n<h1>raftcheck results</h1>\n",
    );
    s.push_str(&matrix_section(results_root, &scan_matrices(results_root)));
    let count = |v: &str| rows.iter().filter(|r| r.verdict == v).count();
    let _ = writeln!(
        s,
        "<p>{} {}: {} valid, {} invalid, {} unknown. Newest first.{}</p>",
        rows.len(),
        if rows.len() == 1 { "run" } else { "runs" },
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

    /// A run (or check) dir `rel` under `root` holding `results_json`.
    fn fake_run(root: &Path, rel: &str, results_json: &str) -> PathBuf {
        let d = root.join(rel);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("results.json"), results_json).unwrap();
        d
    }

    #[test]
    fn index_lists_runs_newest_first_and_skips_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let mk = |rel: &str, json: &str| fake_run(root.path(), rel, json);
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

    use crate::checker::Verdict;
    use crate::matrix::{write_summary, MatrixSpec};
    use crate::store::matrix::RunRecord;

    fn spec() -> MatrixSpec {
        toml::from_str(
            "[[row]]\nname = \"stale-read\"\nworkload = \"register\"\nnemesis = \"partition\"\nexpect = \"invalid\"\nwhy = \"w\"\n\
             [[row]]\nname = \"control-raftkv\"\nworkload = \"register\"\nnemesis = \"partition\"\nexpect = \"valid\"\nwhy = \"w\"\n\
             [[row]]\nname = \"not-run\"\nworkload = \"register\"\nnemesis = \"none\"\nexpect = \"invalid\"\nwhy = \"w\"\n",
        )
        .unwrap()
    }

    fn rec(row: &str, v: Verdict, finding: Option<&str>) -> RunRecord {
        RunRecord {
            row: row.into(),
            seed: 1,
            commit: "x".into(),
            date: String::new(),
            verdict: Some(v),
            exit_code: i32::from(crate::store::Conclusion::from(v).exit_code()),
            first_violation_secs: finding.map(|_| 2.5),
            duration_secs: 10.0,
            finding: finding.map(str::to_string),
            dir: String::new(),
        }
    }

    /// A results root with one run and two matrix summaries: an older one where every row ran
    /// valid, and the newest where the bug was found (with a hostile finding) and the control
    /// went unknown (target missed).
    fn root_with_matrices() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let run = fake_run(
            root.path(),
            "raftkv-register-partition/20261101T000000.000Z",
            r#"{"verdict":"invalid","run_id":"a","cluster":"raftkv","workload":"register","nemesis":"partition","started":"2026-11-01T00:00:00+00:00","seed":1}"#,
        );
        std::fs::write(run.join("report.html"), "<html></html>").unwrap();
        let m = root.path().join("matrix");
        let mut found = rec(
            "stale-read",
            Verdict::Invalid,
            Some("key 1: read <script>alert(\"x\")</script> & 'stale'"),
        );
        found.dir = run.display().to_string();
        write_summary(
            &m.join("20261101T000000Z"),
            &spec(),
            &[
                rec("stale-read", Verdict::Valid, None),
                rec("control-raftkv", Verdict::Valid, None),
            ],
            false,
        )
        .unwrap();
        write_summary(
            &m.join("20261102T000000Z"),
            &spec(),
            &[found, rec("control-raftkv", Verdict::Unknown, None)],
            false,
        )
        .unwrap();
        // Not summaries: no matrix.json, an unparsable one, a hidden dir.
        std::fs::create_dir_all(m.join("20261103T000000Z")).unwrap();
        std::fs::create_dir_all(m.join("20261104T000000Z")).unwrap();
        std::fs::write(m.join("20261104T000000Z/matrix.json"), "{not json").unwrap();
        std::fs::create_dir_all(m.join(".20261105T000000Z")).unwrap();
        root
    }

    fn table_row<'a>(html: &'a str, name: &str) -> &'a str {
        let at = html
            .find(&format!("<td>{name}</td>"))
            .unwrap_or_else(|| panic!("no row {name}"));
        let start = html[..at].rfind("<tr").unwrap();
        let end = at + html[at..].find("</tr>").unwrap();
        &html[start..end]
    }

    #[test]
    fn index_shows_the_newest_matrix_and_links_older_ones() {
        let root = root_with_matrices();
        let html = std::fs::read_to_string(write_index(root.path()).unwrap()).unwrap();
        let section = html
            .find("<h2 id=\"matrix\">Bug-detection matrix</h2>")
            .unwrap();
        let runs = html.find("<h2 id=\"runs\">Runs</h2>").unwrap();
        assert!(section < runs && runs < html.find("1 run: ").unwrap());
        let matrix = &html[section..runs];
        // The newest readable summary (20261102), linked; the broken 03 and 04 are skipped.
        assert!(matrix.contains("2026-11-02 00:00:00"), "{matrix}");
        assert!(matrix.contains("href=\"matrix/20261102T000000Z/matrix.md\""));
        assert!(matrix.contains("href=\"matrix/20261102T000000Z/matrix.json\""));
        assert!(!matrix.contains("20261103") && !matrix.contains("20261104"));
        assert!(!matrix.contains("20261105"));
        assert!(matrix.contains("1 of 2 rows met their target"));
        assert!(
            !matrix.contains("<td>not-run</td>"),
            "rows not run are left out"
        );
        // Bug row: found, target met, hostile finding escaped.
        let bug = table_row(matrix, "stale-read");
        assert!(bug.starts_with("<tr>"), "{bug}");
        assert!(bug.contains("<td class=\"n\">2.5 s</td>"), "{bug}");
        assert!(
            bug.contains("<span class=\"badge v-valid\">yes</span>"),
            "{bug}"
        );
        assert!(bug.contains(
            "read &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;stale&#39;"
        ));
        assert!(!html.contains("<script"), "{html}");
        // The failing run's report is one click away.
        assert!(
            bug.contains(
                "<a href=\"raftkv-register-partition/20261101T000000.000Z/report.html\">report</a>"
            ),
            "{bug}"
        );
        // Control row went unknown: target missed, marked.
        let ctl = table_row(matrix, "control-raftkv");
        assert!(ctl.starts_with("<tr class=\"missed\">"), "{ctl}");
        assert!(
            ctl.contains("<span class=\"badge v-invalid\">NO</span>"),
            "{ctl}"
        );
        // The older summary is a link, not a table.
        assert!(matrix.contains(
            "<li><a href=\"matrix/20261101T000000Z/matrix.md\">2026-11-01 00:00:00</a>: 1 of 2 rows met their target</li>"
        ), "{matrix}");
        assert_eq!(matrix.matches("<table>").count(), 1);
        // Every link resolves to a file under the root.
        for link in html.split("href=\"").skip(1) {
            let link = &link[..link.find('"').unwrap()];
            if link.starts_with("data:") {
                continue;
            }
            assert!(root.path().join(link).is_file(), "dangling {link}");
        }
    }

    #[test]
    fn long_findings_are_cut_with_the_whole_text_as_tooltip() {
        let root = tempfile::tempdir().unwrap();
        let long = format!("{}<b>", "é".repeat(100));
        write_summary(
            &root.path().join("matrix/20261101T000000Z"),
            &spec(),
            &[rec("stale-read", Verdict::Invalid, Some(&long))],
            true,
        )
        .unwrap();
        let html = std::fs::read_to_string(write_index(root.path()).unwrap()).unwrap();
        let row = table_row(&html, "stale-read");
        assert!(
            row.contains(&format!(
                "<td title=\"{}&lt;b&gt;\">{}…</td>",
                "é".repeat(100),
                "é".repeat(70)
            )),
            "{row}"
        );
        assert!(!html.contains("<b>"));
        // Only the rows that ran: a table of one.
        assert!(!html.contains("<td>control-raftkv</td>"));
        assert!(html.contains("2 rows of the spec not run are not shown."));
    }

    #[test]
    fn matrix_dirs_are_not_runs() {
        let root = root_with_matrices();
        // Even a results.json under matrix/ does not make a run.
        std::fs::write(
            root.path().join("matrix/20261102T000000Z/results.json"),
            r#"{"verdict":"valid","run_id":"m"}"#,
        )
        .unwrap();
        let rows = scan(root.path());
        let rels: Vec<&str> = rows.iter().map(|r| r.rel.as_str()).collect();
        assert_eq!(rels, ["raftkv-register-partition/20261101T000000.000Z"]);
        let html = std::fs::read_to_string(write_index(root.path()).unwrap()).unwrap();
        assert!(
            html.contains("<p>1 run: 0 valid, 1 invalid, 0 unknown."),
            "{html}"
        );
    }

    #[test]
    fn older_matrices_are_capped() {
        let root = tempfile::tempdir().unwrap();
        for day in 1..=25 {
            write_summary(
                &root.path().join(format!("matrix/202611{day:02}T000000Z")),
                &spec(),
                &[],
                false,
            )
            .unwrap();
        }
        let entries = scan_matrices(root.path());
        assert_eq!(entries.len(), 1 + MAX_OLDER_MATRICES);
        assert_eq!(entries[0].rel, "matrix/20261125T000000Z");
        assert_eq!(entries[1].rel, "matrix/20261124T000000Z");
        let html = std::fs::read_to_string(write_index(root.path()).unwrap()).unwrap();
        assert_eq!(html.matches("<li>").count(), MAX_OLDER_MATRICES);
        assert!(!html.contains("20261104T000000Z"), "oldest ones dropped");
    }

    #[test]
    fn no_matrix_dir_no_matrix_section() {
        let root = tempfile::tempdir().unwrap();
        fake_run(
            root.path(),
            "raftkv-register-kill/20261101T000000.000Z",
            r#"{"verdict":"valid","run_id":"a","started":"2026-11-01T00:00:00+00:00"}"#,
        );
        let html = std::fs::read_to_string(write_index(root.path()).unwrap()).unwrap();
        assert!(!html.contains("matrix"), "{html}");
        assert!(!html.contains("<h2"), "{html}");
        // A matrix dir with nothing readable in it is no different.
        std::fs::create_dir_all(root.path().join("matrix/20261102T000000Z")).unwrap();
        let again = std::fs::read_to_string(write_index(root.path()).unwrap()).unwrap();
        assert_eq!(again, html);
    }
}
