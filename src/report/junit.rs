//! junit.xml: runs as JUnit test results, for CI systems that show test reports
//! (`raftcheck run --junit PATH`).
//!
//! One `<testsuite>` per run, named after its cluster, workload, nemesis and seed. A valid run
//! is one passing test case; an unknown run is one test case with an `<error>` (the run could
//! not vouch for the system: CI must not read that as a pass); an invalid run has one test case
//! per key, so the report names the keys that broke, plus a "run" case for findings that no
//! key carries (a crash, a broken Raft invariant). Test case names are stable across runs
//! (`run`, `key k3`) so CI trend views line up.

use super::text::verdict_word;
use super::{io_err, ReportError};
use crate::checker::Verdict;
use crate::store::RunResults;
use std::fmt::Write;
use std::path::Path;

/// Escape text for XML content and attributes, dropping characters XML 1.0 cannot carry
/// (control characters other than tab, newline and carriage return).
pub(crate) fn xml_esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// One `<testcase>` before it is written.
struct Case {
    name: String,
    time: f64,
    /// (element, type, message, body): `failure` for a violation, `error` for unknown.
    problem: Option<(&'static str, &'static str, String, String)>,
}

/// The test cases of one run; `history` is its history.jsonl, named where a projected
/// witness says its full reads are.
fn cases(r: &RunResults, history: &str) -> Vec<Case> {
    match r.verdict {
        Verdict::Valid => vec![Case {
            name: "run".into(),
            time: r.duration_secs,
            problem: None,
        }],
        Verdict::Unknown => vec![Case {
            name: "run".into(),
            time: r.duration_secs,
            problem: Some((
                "error",
                "unknown",
                r.reasons
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "the run cannot vouch for the system".into()),
                r.reasons.join("\n"),
            )),
        }],
        Verdict::Invalid => {
            let mut out: Vec<Case> = r
                .check
                .keys
                .iter()
                .map(|k| {
                    let name = match &k.key {
                        Some(key) => format!("key {key}"),
                        None => "history".to_string(),
                    };
                    let problem = match k.verdict {
                        Verdict::Valid => None,
                        Verdict::Invalid => {
                            let msg = k
                                .counterexample
                                .as_ref()
                                .map(|c| c.explanation.clone())
                                .unwrap_or_else(|| "not linearizable".into());
                            let body = k
                                .counterexample
                                .as_ref()
                                .map(|c| super::text::counterexample(c, history))
                                .unwrap_or_default();
                            Some(("failure", "invalid", msg, body))
                        }
                        Verdict::Unknown => Some((
                            "error",
                            "unknown",
                            k.reason.clone().unwrap_or_else(|| "undecided".into()),
                            String::new(),
                        )),
                    };
                    Case {
                        name,
                        time: k.millis / 1e3,
                        problem,
                    }
                })
                .collect();
            // Findings the keys do not carry: crashes, invariants, coverage.
            let other: Vec<&String> = r
                .reasons
                .iter()
                .filter(|w| !w.starts_with("checker:"))
                .collect();
            let checker_invalid = r.check.verdict == Verdict::Invalid;
            if !other.is_empty() || !checker_invalid {
                out.push(Case {
                    name: "run".into(),
                    time: r.duration_secs,
                    problem: Some((
                        "failure",
                        "invalid",
                        other
                            .first()
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "the run is invalid".into()),
                        other
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join("\n"),
                    )),
                });
            }
            out
        }
    }
}

/// JUnit XML for one or more runs: one test suite per run, one test case per run (per key
/// for invalid ones). `runs` pairs each run's dir (shown in the output) with its results.
pub(crate) fn junit_xml(runs: &[(&Path, &RunResults)]) -> String {
    let all: Vec<(&Path, &RunResults, Vec<Case>)> = runs
        .iter()
        .map(|(d, r)| {
            let history = d.join("history.jsonl").display().to_string();
            (*d, *r, cases(r, &history))
        })
        .collect();
    let count = |pred: &dyn Fn(&Case) -> bool| -> usize {
        all.iter()
            .map(|(_, _, cs)| cs.iter().filter(|c| pred(c)).count())
            .sum()
    };
    let tests = count(&|_| true);
    let failures = count(&|c| matches!(c.problem, Some(("failure", ..))));
    let errors = count(&|c| matches!(c.problem, Some(("error", ..))));
    let time: f64 = runs.iter().map(|(_, r)| r.duration_secs).sum();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"raftcheck\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\">"
    );
    for (dir, r, cs) in &all {
        let suite = format!("{}-{}-{}", r.cluster, r.workload, r.nemesis);
        let _ = writeln!(
            s,
            "  <testsuite name=\"{} seed {}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\" time=\"{:.3}\" timestamp=\"{}\">",
            xml_esc(&suite),
            r.seed,
            cs.len(),
            cs.iter()
                .filter(|c| matches!(c.problem, Some(("failure", ..))))
                .count(),
            cs.iter()
                .filter(|c| matches!(c.problem, Some(("error", ..))))
                .count(),
            r.duration_secs,
            xml_esc(r.started.get(..19).unwrap_or(&r.started))
        );
        let _ = writeln!(
            s,
            "    <properties><property name=\"verdict\" value=\"{}\"/><property name=\"seed\" value=\"{}\"/><property name=\"run_id\" value=\"{}\"/><property name=\"results\" value=\"{}\"/></properties>",
            r.verdict.name(),
            r.seed,
            xml_esc(&r.run_id),
            xml_esc(&dir.display().to_string())
        );
        for c in cs {
            let _ = write!(
                s,
                "    <testcase classname=\"raftcheck.{}\" name=\"{}\" time=\"{:.3}\">",
                xml_esc(&suite),
                xml_esc(&c.name),
                c.time
            );
            if let Some((elem, kind, msg, body)) = &c.problem {
                let _ = write!(
                    s,
                    "\n      <{elem} type=\"{kind}\" message=\"{}\">{}</{elem}>",
                    xml_esc(msg),
                    xml_esc(body)
                );
            }
            // Every reason, a passing run's too: "valid, but partitions were skipped" must not
            // reach CI as a bare pass.
            let reasons: String = r
                .reasons
                .iter()
                .map(|w| format!("\n{}", xml_esc(w)))
                .collect();
            let _ = writeln!(
                s,
                "\n      <system-out>{} — results: {}\nreproduce: {}{reasons}</system-out>\n    </testcase>",
                verdict_word(r.verdict),
                xml_esc(&dir.display().to_string()),
                xml_esc(&r.command)
            );
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}

/// Write [`junit_xml`] to `path`, creating its directory.
pub fn write_junit(path: &Path, runs: &[(&Path, &RunResults)]) -> Result<(), ReportError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    std::fs::write(path, junit_xml(runs)).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_esc_drops_control_characters_and_escapes_markup() {
        assert_eq!(xml_esc("a<b>&\"'\u{1}\n"), "a&lt;b&gt;&amp;&quot;&apos;\n");
    }
}
