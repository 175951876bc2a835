//! The bug-detection matrix: proof that the harness finds what it is meant to find.
//!
//! A matrix spec (`matrix.toml`) lists rows: a raftkv bug switch with the workload and nemesis
//! chosen to expose it (expected: invalid), and controls, the correct raftkv and etcd (expected:
//! never invalid). `raftcheck matrix` runs every row with several seeds, appends one line per run
//! (seed, commit, verdict, time to first violation) to a committed JSONL table so the README's
//! figures can be reproduced row by row, and writes the summary as markdown and JSON.
//!
//! Imports [`crate::run`] to carry out runs and [`crate::store`] / [`crate::analysis`] for its
//! records and figures; never [`crate::report`], which reads the matrix's summaries from the store.

use crate::analysis::first_violation;
use crate::checker::Verdict;
use crate::run::{self, RunOptions};
use crate::spec::{load_toml, SpecError};
use crate::store::matrix::{RowSummary, RunRecord};
use crate::store::Conclusion;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One `[[row]]` of matrix.toml: a server setup (a raftkv bug switch, or a control) with the
/// workload and nemesis meant to expose it, and the verdict it must get; each row runs once per
/// seed.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    /// Row name, e.g. `stale-read` or `control-raftkv-3`.
    pub name: String,
    /// Cluster spec name or path, passed to each run as `--cluster` (default `raftkv`).
    #[serde(default = "raftkv")]
    pub cluster: String,
    /// raftkv bug switch, if any.
    #[serde(default)]
    pub bug: Option<String>,
    /// Workload spec name or path, passed to each run as `--workload`.
    pub workload: String,
    /// Nemesis spec name or path, passed to each run as `--nemesis`.
    pub nemesis: String,
    /// Replaces the cluster spec's node count (`--nodes`); `None` keeps the spec's.
    #[serde(default)]
    pub nodes: Option<usize>,
    /// Fault-phase seconds per run.
    #[serde(default = "sixty")]
    pub time_limit: f64,
    /// "invalid" for bug rows, "valid" for controls.
    pub expect: Verdict,
    /// Why this workload and nemesis expose the bug (shown in the README table).
    pub why: String,
    /// Part of the CI-sized subset.
    #[serde(default)]
    pub ci: bool,
    /// Fault-phase seconds in the CI subset (long enough for every requested fault kind to be
    /// installed at least once, or the run is rightly unknown).
    #[serde(default = "fifteen")]
    pub ci_time_limit: f64,
}

fn fifteen() -> f64 {
    15.0
}

fn raftkv() -> String {
    "raftkv".into()
}
fn sixty() -> f64 {
    60.0
}

/// matrix.toml as parsed; once loaded by [`MatrixSpec::load`], it holds no row that expects
/// `unknown`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixSpec {
    /// The `[[row]]` tables in file order, which the summary and matrix.md keep.
    pub row: Vec<Row>,
}

impl MatrixSpec {
    /// Parse matrix.toml and refuse a row whose `expect` is `unknown`: a row must expect valid (a
    /// control) or invalid (a bug switch), or it could never pass or fail.
    pub fn load(path: &Path) -> Result<MatrixSpec, SpecError> {
        let m: MatrixSpec = load_toml(path)?;
        for r in &m.row {
            if r.expect == Verdict::Unknown {
                return Err(SpecError::Invalid {
                    path: path.to_path_buf(),
                    field: format!("row {}: expect", r.name),
                    msg: "must be valid or invalid".into(),
                });
            }
        }
        Ok(m)
    }
}

/// Summarise the runs of each row, in spec order. A bug row passes when it was found in at
/// least 90% of its runs, or (`found_once`, the CI subset with its two seeds) in at least one.
pub fn summarise(spec: &MatrixSpec, records: &[RunRecord], found_once: bool) -> Vec<RowSummary> {
    spec.row
        .iter()
        .map(|row| {
            let mine: Vec<&RunRecord> = records.iter().filter(|r| r.row == row.name).collect();
            let count = |v: Verdict| mine.iter().filter(|r| r.verdict == Some(v)).count();
            let invalid = count(Verdict::Invalid);
            let mut times: Vec<f64> = mine
                .iter()
                .filter(|r| r.verdict == Some(Verdict::Invalid))
                .filter_map(|r| r.first_violation_secs)
                .filter(|t| t.is_finite())
                .collect();
            times.sort_by(f64::total_cmp);
            // The usual median: the middle value, or the mean of the two middle ones.
            let median = match times.len() {
                0 => None,
                n if n % 2 == 1 => Some(times[n / 2]),
                n => Some((times[n / 2 - 1] + times[n / 2]) / 2.0),
            };
            let example = mine.iter().find(|r| r.verdict == Some(Verdict::Invalid));
            let runs = mine.len();
            let pass = match row.expect {
                Verdict::Invalid if found_once => invalid >= 1,
                Verdict::Invalid => runs > 0 && invalid * 10 >= runs * 9,
                _ => runs > 0 && count(Verdict::Valid) == runs,
            };
            RowSummary {
                row: row.name.clone(),
                expect: row.expect,
                runs,
                invalid,
                unknown: count(Verdict::Unknown),
                errors: mine.iter().filter(|r| r.verdict.is_none()).count(),
                median_first_violation_secs: median,
                example: example.and_then(|r| r.finding.clone()),
                example_dir: example.map(|r| r.dir.clone()).filter(|d| !d.is_empty()),
                pass,
                why: row.why.clone(),
            }
        })
        .collect()
}

/// matrix.md's table, one line per row; example findings are cut to 140 bytes and their `|` escaped
/// so a finding cannot break the table.
pub fn markdown(rows: &[RowSummary]) -> String {
    let mut out = String::from(
        "| row | expect | runs | invalid | unknown | median time to violation | target met | example finding |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let ex = r
            .example
            .as_deref()
            .map(|e| e.replace('|', "\\|"))
            .map(|e| {
                if e.len() > 140 {
                    format!("{}…", &e[..e.floor_char_boundary(140)])
                } else {
                    e
                }
            })
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.row,
            r.expect.name(),
            r.runs,
            r.invalid,
            r.unknown,
            r.median_first_violation_secs
                .map_or("-".into(), |t| format!("{t:.1} s")),
            if r.pass { "yes" } else { "NO" },
            ex
        ));
    }
    out
}

/// What `raftcheck matrix`'s flags asked for: which rows, how many seeds, where the runs and the
/// table go.
#[derive(Clone, Debug)]
pub struct MatrixOptions {
    /// Rows to run (all when empty).
    pub rows: Vec<String>,
    /// Only rows marked `ci`.
    pub ci: bool,
    /// Runs per row, seeded `first_seed`, `first_seed + 1`, ... `first_seed + seeds - 1`.
    pub seeds: u64,
    /// The seed of each row's first run; the later runs count up from it, so the same flags replay
    /// the same schedules.
    pub first_seed: u64,
    /// Override every row's time limit.
    pub time_limit: Option<f64>,
    /// Where each run's directory is created (passed to every run as its `results_root`).
    pub results_root: PathBuf,
    /// Append each run to this JSONL table.
    pub record: Option<PathBuf>,
    /// Run every row over SSH on these hosts (`--hosts`); rows with power-loss faults, whose
    /// layer serves the data dirs from this machine, are skipped and said so.
    pub hosts: Option<PathBuf>,
    /// Raised by Ctrl-C or SIGTERM: the current run ends as `run` ends (heal, stop, clean,
    /// check), is not recorded (a run cut short proves nothing either way), and no further run
    /// starts.
    pub interrupt: std::sync::Arc<run::Interrupt>,
}

/// Whether a row's nemesis names power loss (which cannot run over SSH). A nemesis that does
/// not load says no: its run then fails with the load error, recorded as such.
fn needs_local_files(nemesis: &str) -> bool {
    use crate::spec::nemesis::{FaultKind, NemesisSpec};
    crate::spec::resolve("nemesis", "nemesis", nemesis)
        .ok()
        .and_then(|p| NemesisSpec::load(&p).ok())
        .is_some_and(|n| n.names(FaultKind::PowerLoss))
}

/// Run the selected rows; returns every run's record.
pub fn run_matrix(
    spec: &MatrixSpec,
    opts: &MatrixOptions,
) -> Result<Vec<RunRecord>, std::io::Error> {
    let commit = crate::BUILD_COMMIT.to_string();
    let mut records = Vec::new();
    let mut table = match &opts.record {
        Some(p) => {
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d)?;
            }
            Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            )
        }
        None => None,
    };
    let rows: Vec<&Row> = spec
        .row
        .iter()
        .filter(|r| !opts.ci || r.ci)
        .filter(|r| opts.rows.is_empty() || opts.rows.contains(&r.name))
        .collect();
    for row in rows {
        if opts.hosts.is_some() && needs_local_files(&row.nemesis) {
            eprintln!(
                "raftcheck matrix: {}: skipped over SSH (its power-loss faults need the data \
                 dirs on this machine)",
                row.name
            );
            continue;
        }
        for s in 0..opts.seeds {
            if opts.interrupt.is_raised() {
                return Ok(records);
            }
            let seed = opts.first_seed + s;
            let secs = opts.time_limit.unwrap_or(if opts.ci {
                row.ci_time_limit
            } else {
                row.time_limit
            });
            eprintln!("raftcheck matrix: {} seed {seed}", row.name);
            let ro = RunOptions {
                cluster: row.cluster.clone(),
                workload: row.workload.clone(),
                nemesis: row.nemesis.clone(),
                time_limit: Some(secs),
                concurrency: None,
                rate: None,
                nodes: row.nodes,
                seed,
                node_args: row.bug.iter().map(|b| format!("--bug={b}")).collect(),
                results_root: opts.results_root.clone(),
                net: run::NetChoice::Auto,
                subnet: None,
                keep_data: false,
                storage_layer: false,
                hosts: opts.hosts.clone(),
                check_time_limit: Some(120.0),
                progress: false,
                command: format!(
                    "raftcheck run --cluster {} --workload {} --nemesis {}{}{} --time-limit {} --seed {seed}{}",
                    row.cluster,
                    row.workload,
                    row.nemesis,
                    row.nodes.map(|n| format!(" --nodes {n}")).unwrap_or_default(),
                    row.bug.as_deref().map(|b| format!(" --node-arg=--bug={b}")).unwrap_or_default(),
                    secs,
                    opts.hosts
                        .as_ref()
                        .map(|h| format!(" --hosts {}", h.display()))
                        .unwrap_or_default(),
                ),
                interrupt: opts.interrupt.clone(),
            };
            let rec = match run::run(&ro) {
                Ok(out) => {
                    let fv = first_violation(&out.results);
                    RunRecord {
                        row: row.name.clone(),
                        seed,
                        commit: commit.clone(),
                        date: chrono::Utc::now().to_rfc3339(),
                        verdict: Some(out.verdict),
                        exit_code: i32::from(Conclusion::from(out.verdict).exit_code()),
                        first_violation_secs: fv
                            .as_ref()
                            .map(|(t, _)| *t)
                            .filter(|t| t.is_finite()),
                        duration_secs: out.results.duration_secs,
                        finding: fv
                            .map(|(_, s)| s)
                            .or_else(|| out.results.reasons.first().cloned()),
                        dir: out.dir.display().to_string(),
                    }
                }
                Err(e) => RunRecord {
                    row: row.name.clone(),
                    seed,
                    commit: commit.clone(),
                    date: chrono::Utc::now().to_rfc3339(),
                    verdict: None,
                    exit_code: 2,
                    first_violation_secs: None,
                    duration_secs: 0.0,
                    finding: Some(format!("run error: {e}")),
                    dir: String::new(),
                },
            };
            if opts.interrupt.is_raised() {
                eprintln!(
                    "raftcheck matrix: {} seed {seed}: interrupted by {}; not recorded{}",
                    row.name,
                    opts.interrupt.cause(),
                    if rec.dir.is_empty() {
                        String::new()
                    } else {
                        format!(" (its results: {})", rec.dir)
                    }
                );
                return Ok(records);
            }
            eprintln!(
                "raftcheck matrix: {} seed {seed}: {}{}",
                row.name,
                rec.verdict.map_or("error", |v| v.name()),
                rec.first_violation_secs
                    .map(|t| format!(" (first violation at {t:.1} s)"))
                    .unwrap_or_default()
            );
            if let Some(f) = table.as_mut() {
                serde_json::to_writer(&mut *f, &rec).map_err(std::io::Error::other)?;
                f.write_all(b"\n")?;
                f.flush()?;
            }
            records.push(rec);
        }
    }
    Ok(records)
}

/// Write matrix.md and matrix.json for a set of records into `dir`.
pub fn write_summary(
    dir: &Path,
    spec: &MatrixSpec,
    records: &[RunRecord],
    found_once: bool,
) -> std::io::Result<Vec<RowSummary>> {
    let rows = summarise(spec, records, found_once);
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("matrix.md"), markdown(&rows))?;
    let mut by_row: BTreeMap<&str, Vec<&RunRecord>> = BTreeMap::new();
    for r in records {
        by_row.entry(&r.row).or_default().push(r);
    }
    crate::store::write_json(
        &dir.join("matrix.json"),
        &serde_json::json!({ "rows": rows, "runs": by_row }),
    )?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(row: &str, v: Option<Verdict>, t: Option<f64>) -> RunRecord {
        RunRecord {
            row: row.into(),
            seed: 1,
            commit: "x".into(),
            date: String::new(),
            verdict: v,
            exit_code: i32::from(v.map_or(Conclusion::Error, Conclusion::from).exit_code()),
            first_violation_secs: t,
            duration_secs: 10.0,
            finding: t.map(|_| "stale read".into()),
            dir: String::new(),
        }
    }

    #[test]
    fn the_build_commit_is_the_checkouts_head_or_unknown() {
        let c = crate::BUILD_COMMIT;
        let hash = c.strip_suffix("-dirty").unwrap_or(c);
        if hash == "unknown" || std::env::var_os("RAFTCHECK_BUILD_COMMIT").is_some() {
            return; // not built from git, or told the commit by the packager
        }
        assert!(
            hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{c}"
        );
        // build.rs reruns when HEAD moves, so this test binary carries the current HEAD.
        let head = std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("git ran for build.rs, so it runs here");
        assert_eq!(String::from_utf8_lossy(&head.stdout).trim(), hash);
    }

    #[test]
    fn targets_are_judged_per_row() {
        let spec: MatrixSpec = toml::from_str(
            "[[row]]\nname = \"bug\"\nworkload = \"register\"\nnemesis = \"none\"\nexpect = \"invalid\"\nwhy = \"w\"\n\
             [[row]]\nname = \"ctl\"\nworkload = \"register\"\nnemesis = \"none\"\nexpect = \"valid\"\nwhy = \"w\"\n",
        )
        .unwrap();
        let mut recs: Vec<RunRecord> = (0..9)
            .map(|i| rec("bug", Some(Verdict::Invalid), Some(i as f64)))
            .collect();
        recs.push(rec("bug", Some(Verdict::Valid), None));
        recs.push(rec("ctl", Some(Verdict::Valid), None));
        recs.push(rec("ctl", Some(Verdict::Unknown), None));
        let s = summarise(&spec, &recs, false);
        assert!(s[0].pass, "9 of 10 meets the target");
        assert_eq!(s[0].median_first_violation_secs, Some(4.0));
        let even: Vec<RunRecord> = [1.0, 2.0, 6.0, 9.0]
            .iter()
            .map(|&t| rec("bug", Some(Verdict::Invalid), Some(t)))
            .collect();
        let e = summarise(&spec, &even, false);
        assert_eq!(e[0].median_first_violation_secs, Some(4.0), "(2 + 6) / 2");
        assert!(!s[1].pass, "an unknown control tested nothing");
        assert_eq!(s[1].unknown, 1);
        recs.push(rec("ctl", Some(Verdict::Invalid), Some(1.0)));
        recs.push(rec("bug", Some(Verdict::Valid), None));
        let s = summarise(&spec, &recs, false);
        assert!(!s[0].pass && !s[1].pass);
        assert!(markdown(&s).contains("| NO |"));
        assert!(summarise(&spec, &recs, true)[0].pass, "found at least once");
    }

    #[test]
    fn shipped_matrix_loads_and_names_real_specs() {
        let m =
            MatrixSpec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("matrix.toml")).unwrap();
        for r in &m.row {
            crate::spec::resolve("cluster", "clusters", &r.cluster).unwrap();
            crate::spec::resolve("workload", "workloads", &r.workload).unwrap();
            crate::spec::resolve("nemesis", "nemesis", &r.nemesis).unwrap();
        }
        assert!(m.row.iter().any(|r| r.ci && r.expect == Verdict::Invalid));
        assert!(m.row.iter().any(|r| r.ci && r.expect == Verdict::Valid));
    }
}
