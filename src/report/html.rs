//! report.html: one self-contained page per run (or per `raftcheck check --out DIR`).
//!
//! What a reader needs, in the order they need it: the verdict, big, with its reasons; the
//! command that reproduces the run; op counts, latency quantiles and unavailability; the fault
//! log; the plots; per-key verdicts; for an invalid run the counterexample as a timeline; the
//! configuration; links to node logs and raw files.
//!
//! A page is a template plus data, as Porcupine's visualization is. This file prepares the
//! data: a view of what the page shows (`RunView`, `CheckView`), computed from the inputs — the
//! verdict and its reasons, the figures, the fault-log rows, the per-key rows, the
//! counterexamples, the links to files that exist. [`templates`] lays a view out with maud,
//! which is checked at compile time and escapes every value it inserts. The one piece of
//! markup made elsewhere is the counterexample timeline ([`mod@timeline`]), inline SVG that puts
//! its own text through [`super::esc`] and places its labels so none overlaps another; the
//! templates embed it as it is.
//!
//! Self-contained as Porcupine's visualization is: no script, no network, no external font or
//! stylesheet. The PNGs are embedded as `data:` URIs (and also linked, as sibling files, for
//! full size); the counterexample timeline is inline SVG. Links point only at files that exist
//! when the page is written.
//!
//! The page stays small for big runs: plots are fixed-size images, long tables are cut with a
//! note saying where the rest is, and the timeline shows only the counterexample's few ops.

mod templates;
mod timeline;

use super::plots::{self, FaultInterval, LeaderLine, PlotData};
use super::text::{describe, outcome_word, projection_note, verdict_word};
use super::{href, io_err, CheckReport, Conclusion, ReportError};
use crate::analysis::{self, op_counts};
use crate::checker::{CheckResult, Counterexample, KeyResult, Verdict};
use crate::history::{Op, Outcome};
use crate::store::{
    FaultCounts, NemesisEvent, OpCounts, Quantiles, Recorded, RunDir, Unavailability,
    UnavailableWindow,
};
use base64::Engine;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use timeline::{timeline, timeline_ops, Timeline};

/// Rows a long table shows before it is cut ("… N more in FILE").
const MAX_ROWS: usize = 120;
/// Invalid keys whose counterexample is drawn; the rest are listed.
const MAX_COUNTEREXAMPLES: usize = 5;
/// Valid keys named in the per-key summary; the rest are "…".
const MAX_VALID_NAMED: usize = 30;

/// Read a finished run dir through the store. Leader changes come from results.json (the run
/// derived them from leaders.jsonl); when it lists none, they are derived again from the
/// samples (a results.json from an older raftcheck).
pub fn read_run(dir: &Path) -> Result<Recorded, ReportError> {
    let mut rec = RunDir::new(dir).read()?;
    if rec.results.leader_changes.is_empty() {
        rec.results.leader_changes = analysis::leader_changes(&rec.samples);
    }
    Ok(rec)
}

/// Render every report file of a finished run dir (reads results.json, history.jsonl,
/// nemesis.jsonl, leaders.jsonl there): latency.png, rate.png, leader-changes.png and
/// report.html; returns the paths written. Used by `raftcheck run` after results.json is
/// written and by `raftcheck report RUN_DIR` to re-render.
pub fn render_run(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let inputs = read_run(dir)?;
    let data = plots::plot_data(&inputs.ops, &inputs.nemesis, &inputs.results.leader_changes);
    let mut written = plots::draw_all(dir, &data, inputs.results.roles_observed)?;
    let unavail = analysis::unavailability(&inputs.ops, &inputs.results.leader_changes);
    let html = run_page(dir, &inputs, &data, &unavail);
    let path = dir.join("report.html");
    std::fs::write(&path, html).map_err(io_err(&path))?;
    written.push(path);
    Ok(written)
}

/// For `raftcheck check --out DIR`: report.html for a checked set of histories, plus a latency
/// plot per history whose ops are given (`latency.png` for a single history, `latency-N.png`
/// for the N-th of several). `ops_by_file` maps `HistoryCheck::file` to its paired ops; a file
/// missing from it (it could not be read) gets no plot. Returns the paths written.
pub fn render_check(
    dir: &Path,
    report: &CheckReport,
    ops_by_file: &BTreeMap<String, Vec<Op>>,
) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut written = Vec::new();
    let mut plots_by_file: BTreeMap<usize, String> = BTreeMap::new();
    let several = report.histories.len() > 1;
    for (i, h) in report.histories.iter().enumerate() {
        let Some(ops) = ops_by_file.get(&h.file).filter(|o| !o.is_empty()) else {
            continue;
        };
        let name = if several {
            format!("latency-{}.png", i + 1)
        } else {
            "latency.png".to_string()
        };
        let path = dir.join(&name);
        plots::draw_latency_only(&path, ops)?;
        written.push(path);
        plots_by_file.insert(i, name);
    }
    let html = check_page(dir, report, ops_by_file, &plots_by_file);
    let path = dir.join("report.html");
    std::fs::write(&path, html).map_err(io_err(&path))?;
    written.push(path);
    Ok(written)
}

/// The page of a run: its view, laid out. Reads the PNGs (embedded) and lists the dir (links).
fn run_page(dir: &Path, inputs: &Recorded, data: &PlotData, unavail: &Unavailability) -> String {
    templates::run_page(&RunView::new(dir, inputs, data, unavail)).into_string()
}

/// The page of `raftcheck check --out DIR`: its view, laid out.
fn check_page(
    dir: &Path,
    report: &CheckReport,
    ops_by_file: &BTreeMap<String, Vec<Op>>,
    plots_by_file: &BTreeMap<usize, String>,
) -> String {
    templates::check_page(&CheckView::new(dir, report, ops_by_file, plots_by_file)).into_string()
}

// ---------------------------------------------------------------------------------------------
// The data: what each page shows, computed from the inputs. The templates only lay it out, so
// every decision (which reasons, which rows, which links) is made here; text stays unescaped
// until maud inserts it.

/// The run page, top to bottom.
struct RunView<'a> {
    /// The browser tab: verdict, names and seed.
    title: String,
    /// The verdict band.
    header: Header,
    /// The run's verdict: picks the sentence after the badge.
    verdict: Verdict,
    /// The exit code `raftcheck run` gave.
    exit_code: u8,
    /// Why the verdict is what it is: the checker's finding first, then the run's reasons.
    reasons: Vec<String>,
    /// Each broken Raft invariant, as JSON.
    invariants: Vec<String>,
    /// The command that reproduces the run.
    command: &'a str,
    /// Why the network mode.
    net_reason: &'a str,
    /// Ops by function and outcome.
    op_counts: CountTable,
    /// Latency quantiles of ok ops, by function.
    latency: &'a BTreeMap<String, Quantiles>,
    /// Unavailability around leader changes.
    unavailability: UnavailabilityView<'a>,
    /// Nodes that exited on their own, as JSON.
    crashes: Vec<String>,
    /// Outcomes by fault label.
    fault_counts: &'a BTreeMap<String, FaultCounts>,
    /// Fault kinds the network mode cannot do, with why.
    unsupported: &'a BTreeMap<String, String>,
    /// nemesis.jsonl as a table.
    fault_log: FaultLog<'a>,
    /// The leader found at start, and how many changes followed.
    initial_leader: Option<InitialLeader<'a>>,
    /// False when the spec had no status request: leaders and invariants were not observed,
    /// which the page must not show as "no leader changes".
    roles_observed: bool,
    /// latency.png, rate.png, leader-changes.png.
    plots: Vec<Plot>,
    /// The checker's answer per key.
    keys: KeysView<'a>,
    /// Keys the final phase could not read, named in one line.
    unread_keys: Option<String>,
    /// The drawn counterexamples; no section (and no nav link) when there are none.
    counterexamples: Counterexamples<'a>,
    /// The workload spec as name/value rows.
    workload: Vec<(String, String)>,
    /// The nemesis spec as name/value rows.
    nemesis: Vec<(String, String)>,
    /// Each node's command line.
    node_argv: Vec<String>,
    /// Links to the raw files and node logs that exist.
    files: Vec<Link>,
}

impl<'a> RunView<'a> {
    fn new(
        dir: &Path,
        inputs: &'a Recorded,
        data: &'a PlotData,
        unavail: &'a Unavailability,
    ) -> RunView<'a> {
        let r = &inputs.results;
        let date = r.started.get(..19).unwrap_or(&r.started).replace('T', " ");
        let net_mode = serde_json::to_value(r.net_mode)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let mut reasons: Vec<String> = Vec::new();
        let bad_keys = r
            .check
            .keys
            .iter()
            .filter(|k| k.verdict == Verdict::Invalid)
            .count();
        if bad_keys > 0 {
            reasons.push(format!(
                "checker: the history is not linearizable ({} of {} key{} invalid; model {})",
                bad_keys,
                r.check.keys.len(),
                plural(r.check.keys.len()),
                r.check.model.name()
            ));
        }
        reasons.extend(r.reasons.iter().cloned());
        // A results.json without op counts (an older raftcheck) is counted from the history.
        let counts = if r.exercised.ops.is_empty() {
            op_counts(&inputs.ops)
        } else {
            r.exercised.ops.clone()
        };
        RunView {
            title: format!(
                "{} — {} {} {} (seed {})",
                verdict_word(r.verdict),
                r.cluster,
                r.workload,
                r.nemesis,
                r.seed
            ),
            header: Header {
                verdict: r.verdict.into(),
                summary: format!(
                    "{} · {} · {} — seed {} — {} UTC — {:.1} s, {} nodes, {} mode — run {}",
                    r.cluster,
                    r.workload,
                    r.nemesis,
                    r.seed,
                    date,
                    r.duration_secs,
                    r.nodes,
                    net_mode,
                    r.run_id
                ),
            },
            verdict: r.verdict,
            exit_code: Conclusion::from(r.verdict).exit_code(),
            reasons,
            invariants: r.invariants.iter().map(json).collect(),
            command: &r.command,
            net_reason: &r.net_reason,
            op_counts: CountTable::new(&counts),
            latency: &r.latency_ms,
            unavailability: UnavailabilityView::new(unavail),
            crashes: r.crashes.iter().map(json).collect(),
            fault_counts: &r.exercised.faults,
            unsupported: &r.exercised.unsupported,
            fault_log: FaultLog::new(&inputs.nemesis, dir.join("nemesis.jsonl").is_file()),
            roles_observed: r.roles_observed,
            initial_leader: data.initial_leader.as_ref().map(|l| InitialLeader {
                node: &l.node,
                term: l.term,
                changes: data.leaders.len(),
            }),
            plots: [
                Some(Plot::read(
                    dir,
                    "latency.png",
                    "latency of every op over time",
                )),
                Some(Plot::read(dir, "rate.png", "throughput over time")),
                r.roles_observed.then(|| {
                    Plot::read(
                        dir,
                        "leader-changes.png",
                        "latency and throughput around each leader change",
                    )
                }),
            ]
            .into_iter()
            .flatten()
            .collect(),
            keys: KeysView::new(&r.check, ""),
            unread_keys: (!r.unread_keys.is_empty()).then(|| {
                r.unread_keys
                    .iter()
                    .map(|k| k.clone().unwrap_or_else(|| "(the register)".into()))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
            counterexamples: Counterexamples::new(
                &r.check,
                &data.faults,
                &data.leaders,
                data.initial_leader.as_ref(),
                "",
                "history.jsonl",
            ),
            workload: config_rows(&serde_json::to_value(&r.workload_spec).unwrap_or_default()),
            nemesis: config_rows(&serde_json::to_value(&r.nemesis_spec).unwrap_or_default()),
            node_argv: r.node_argv.iter().map(|argv| argv.join(" ")).collect(),
            files: run_files(dir),
        }
    }
}

/// One line of JSON (a crash, a broken invariant); empty if it cannot be serialized.
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The page of `raftcheck check --out DIR`: one section per history file.
struct CheckView<'a> {
    /// The browser tab.
    title: String,
    /// The verdict band: the worst conclusion over every file.
    header: Header,
    /// One per file, in command-line order.
    histories: Vec<HistoryView<'a>>,
    /// results.json and the latency plots that exist.
    files: Vec<Link>,
}

/// One history file of a `raftcheck check`.
struct HistoryView<'a> {
    /// The section id, `h1`, `h2`, …
    id: String,
    /// The file as given on the command line.
    file: &'a str,
    /// Its conclusion.
    verdict: Conclusion,
    /// Why it could not be checked.
    error: Option<&'a str>,
    /// Ops by function and outcome, when any were read.
    op_counts: Option<CountTable>,
    /// Latency of ok ops, when the ops were read.
    latency: Option<BTreeMap<String, Quantiles>>,
    /// Its latency plot, when one was drawn.
    plot: Option<Plot>,
    /// The checker's answer, when it ran.
    check: Option<HistoryCheckView<'a>>,
}

/// The checker's answer for one history file.
struct HistoryCheckView<'a> {
    /// Why the verdict is unknown, if it is.
    reason: Option<&'a str>,
    /// Per-key verdicts.
    keys: KeysView<'a>,
    /// The drawn counterexamples (no faults or leaders: a bare history has none).
    counterexamples: Counterexamples<'a>,
}

impl<'a> CheckView<'a> {
    fn new(
        dir: &Path,
        report: &'a CheckReport,
        ops_by_file: &BTreeMap<String, Vec<Op>>,
        plots_by_file: &BTreeMap<usize, String>,
    ) -> CheckView<'a> {
        let n = report.histories.len();
        let some_error = report
            .histories
            .iter()
            .any(|h| h.verdict == Conclusion::Error);
        let histories = report
            .histories
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let prefix = format!("h{}-", i + 1);
                HistoryView {
                    id: format!("h{}", i + 1),
                    file: &h.file,
                    verdict: h.verdict,
                    error: h.error.as_deref(),
                    op_counts: (!h.op_counts.is_empty()).then(|| CountTable::new(&h.op_counts)),
                    latency: ops_by_file.get(&h.file).map(|ops| analysis::latency(ops)),
                    plot: plots_by_file
                        .get(&i)
                        .map(|name| Plot::read(dir, name, "latency of every op over time")),
                    check: h.check.as_ref().map(|check| HistoryCheckView {
                        reason: check.reason.as_deref(),
                        keys: KeysView::new(check, &prefix),
                        counterexamples: Counterexamples::new(
                            check,
                            &[],
                            &[],
                            None,
                            &prefix,
                            &h.file,
                        ),
                    }),
                }
            })
            .collect();
        let mut files: Vec<Link> = Vec::new();
        files.extend(Link::to(dir, "results.json", "results.json"));
        for name in plots_by_file.values() {
            files.extend(Link::to(dir, name, name));
        }
        CheckView {
            title: format!("{} — raftcheck check", report.verdict.word()),
            header: Header {
                verdict: report.verdict,
                summary: format!(
                    "raftcheck check — {} histor{}{}",
                    n,
                    if n == 1 { "y" } else { "ies" },
                    if some_error {
                        " — some could not be checked (exit code 2)"
                    } else {
                        ""
                    }
                ),
            },
            histories,
            files,
        }
    }
}

/// The coloured band at the top of a page: the verdict, big, and one line under it.
struct Header {
    /// The word and the band's colour.
    verdict: Conclusion,
    /// What was judged: the run's names, seed, date and size, or the number of histories.
    summary: String,
}

/// "" or "s" after a count.
fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The first rows of a long table, and how many were left out ("… N more in FILE").
struct Cut<T> {
    /// At most [`MAX_ROWS`].
    rows: Vec<T>,
    /// Rows not shown.
    more: usize,
}

impl<T> Cut<T> {
    fn new(mut all: Vec<T>) -> Cut<T> {
        let more = all.len().saturating_sub(MAX_ROWS);
        all.truncate(MAX_ROWS);
        Cut { rows: all, more }
    }
}

/// A link to a file of the page's dir; made only for a file that exists.
struct Link {
    /// The relative path, percent-encoded.
    href: String,
    /// What the reader sees.
    text: String,
}

impl Link {
    fn to(dir: &Path, rel: &str, text: &str) -> Option<Link> {
        dir.join(rel).is_file().then(|| Link {
            href: href(rel),
            text: text.to_string(),
        })
    }
}

/// The Files section of a run: the raw files, the plots, then each node's log, those that
/// exist.
fn run_files(dir: &Path) -> Vec<Link> {
    let mut links: Vec<Link> = Vec::new();
    for (rel, what) in [
        ("results.json", "results.json (every figure on this page)"),
        ("history.jsonl", "history.jsonl (every op)"),
        ("nemesis.jsonl", "nemesis.jsonl (fault log)"),
        ("leaders.jsonl", "leaders.jsonl (role/term samples)"),
        ("junit.xml", "junit.xml"),
        ("latency.png", "latency.png"),
        ("rate.png", "rate.png"),
        ("leader-changes.png", "leader-changes.png"),
    ] {
        links.extend(Link::to(dir, rel, what));
    }
    let mut nodes: Vec<String> = std::fs::read_dir(dir.join("nodes"))
        .into_iter()
        .flatten()
        .flatten()
        .take(1000)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    nodes.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    for n in nodes.iter().take(100) {
        links.extend(Link::to(
            dir,
            &format!("nodes/{n}/log"),
            &format!("node {n} log"),
        ));
    }
    links
}

/// A plot: embedded as a `data:` URI and linked to its file, or a note when it cannot be read.
enum Plot {
    /// The PNG was read.
    Embedded {
        /// The file, percent-encoded, for the full-size link.
        href: String,
        /// What the image shows.
        alt: &'static str,
        /// The PNG, base64.
        base64: String,
    },
    /// The PNG could not be read.
    Unreadable {
        /// The file.
        name: String,
        /// Why.
        error: String,
    },
}

impl Plot {
    fn read(dir: &Path, name: &str, alt: &'static str) -> Plot {
        match std::fs::read(dir.join(name)) {
            Ok(bytes) => Plot::Embedded {
                href: href(name),
                alt,
                base64: base64::engine::general_purpose::STANDARD.encode(bytes),
            },
            Err(e) => Plot::Unreadable {
                name: name.to_string(),
                error: e.to_string(),
            },
        }
    }
}

/// Ops by function and outcome, with a total row.
struct CountTable {
    /// One row per function.
    rows: Vec<(String, Counts)>,
    /// The sums.
    all: Counts,
}

/// One row of [`CountTable`].
#[derive(Default)]
struct Counts {
    ok: usize,
    fail: usize,
    info: usize,
    total: usize,
}

impl CountTable {
    fn new(counts: &OpCounts) -> CountTable {
        let mut all = Counts::default();
        let rows = counts
            .iter()
            .map(|(f, by)| {
                let get = |k: &str| by.get(k).copied().unwrap_or(0);
                let (ok, fail, info) = (get("ok"), get("fail"), get("info"));
                let total = ok + fail + info;
                all.ok += ok;
                all.fail += fail;
                all.info += info;
                all.total += total;
                (
                    f.clone(),
                    Counts {
                        ok,
                        fail,
                        info,
                        total,
                    },
                )
            })
            .collect();
        CountTable { rows, all }
    }
}

/// Unavailability around leader changes: the sentence's figures and the windows.
struct UnavailabilityView<'a> {
    /// Leader changes (the initial leader excluded).
    changes: usize,
    /// Median of the measured windows, ms.
    median_ms: Option<f64>,
    /// Longest measured window, ms.
    max_ms: Option<f64>,
    /// One row per change.
    windows: Cut<&'a UnavailableWindow>,
}

impl<'a> UnavailabilityView<'a> {
    fn new(u: &'a Unavailability) -> UnavailabilityView<'a> {
        UnavailabilityView {
            changes: u.windows.len(),
            median_ms: u.median_ms,
            max_ms: u.max_ms,
            windows: Cut::new(u.windows.iter().collect()),
        }
    }
}

/// The leader found at start, which is not a change.
struct InitialLeader<'a> {
    /// The node.
    node: &'a str,
    /// Its term.
    term: u64,
    /// Leader changes after it.
    changes: usize,
}

/// nemesis.jsonl as a table: every event, or when there are many the first and last
/// [`MAX_ROWS`]` / 2` around a note saying how many are not shown.
struct FaultLog<'a> {
    /// The first rows (all of them when few); empty when the nemesis logged nothing.
    head: Vec<FaultRow<'a>>,
    /// The events not shown, when the log is cut.
    hidden: Option<HiddenFaults>,
    /// The last rows, when the log is cut.
    tail: Vec<FaultRow<'a>>,
}

/// The note in the middle of a cut fault log.
struct HiddenFaults {
    /// Events not shown.
    count: usize,
    /// Whether nemesis.jsonl exists to find them in.
    in_file: bool,
}

/// One nemesis.jsonl line.
struct FaultRow<'a> {
    /// ns since the run started.
    time: u64,
    /// start or stop.
    event: &'static str,
    /// e.g. "partition isolate-leader".
    label: &'a str,
    /// The nodes hit, comma-separated.
    nodes: String,
    /// installed, skipped or failed.
    outcome: &'static str,
    /// Why skipped or failed, else who drops whom.
    detail: String,
}

impl<'a> FaultLog<'a> {
    fn new(events: &'a [NemesisEvent], in_file: bool) -> FaultLog<'a> {
        let n = events.len();
        let (head, tail) = if n > MAX_ROWS {
            (MAX_ROWS / 2, MAX_ROWS / 2)
        } else {
            (n, 0)
        };
        FaultLog {
            head: events[..head].iter().map(FaultRow::new).collect(),
            hidden: (tail > 0).then_some(HiddenFaults {
                count: n - head - tail,
                in_file,
            }),
            tail: events[n - tail..].iter().map(FaultRow::new).collect(),
        }
    }
}

impl<'a> FaultRow<'a> {
    fn new(e: &'a NemesisEvent) -> FaultRow<'a> {
        let detail = match (&e.grudge, &e.reason) {
            (_, Some(r)) => r.clone(),
            (Some(g), None) => g
                .iter()
                .map(|(k, v)| format!("{k} drops {}", v.join(",")))
                .collect::<Vec<_>>()
                .join("; "),
            (None, None) => String::new(),
        };
        // What a storage fault did, node by node, after any reason.
        let storage: Vec<String> = e
            .storage
            .iter()
            .map(|s| format!("{}: {}", s.node, s.summary))
            .collect();
        let detail = match (detail.is_empty(), storage.is_empty()) {
            (_, true) => detail,
            (true, false) => storage.join("; "),
            (false, false) => format!("{detail}; {}", storage.join("; ")),
        };
        FaultRow {
            time: e.time,
            event: e.event.name(),
            label: &e.label,
            nodes: e.nodes.join(", "),
            outcome: e.outcome.name(),
            detail,
        }
    }
}

fn key_name(k: &KeyResult) -> String {
    k.key
        .clone()
        .unwrap_or_else(|| "(whole history)".to_string())
}

fn anchor(k: &KeyResult, prefix: &str) -> String {
    // Keys may hold any characters; an id built from their bytes stays valid and unique.
    let hex: String = key_name(k).bytes().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}ce-{hex}")
}

/// Per-key verdicts: the checker's line, a row per key that is not valid, and the valid keys
/// summarised in one line.
struct KeysView<'a> {
    /// The model's name.
    model: &'static str,
    /// Ops checked.
    ops: usize,
    /// Keys checked.
    keys: usize,
    /// Wall time of the check, ms.
    millis: f64,
    /// The merged verdict.
    verdict: Verdict,
    /// Why the verdict is unknown, if it is.
    reason: Option<&'a str>,
    /// The keys that are not valid.
    bad: Cut<KeyRow>,
    /// The valid keys, if any.
    valid: Option<ValidKeys>,
}

/// A key that is not valid.
struct KeyRow {
    /// The key, or "(whole history)".
    name: String,
    /// Its verdict.
    verdict: Verdict,
    /// Ops on it.
    ops: usize,
    /// Memo entries the search created.
    states: u64,
    /// Search time, ms.
    millis: f64,
    /// What the detail column holds.
    detail: KeyDetail,
}

/// The detail column of a [`KeyRow`].
enum KeyDetail {
    /// A link to the drawn counterexample with this anchor.
    Counterexample(String),
    /// The counterexample's sentence (not drawn), or why the key is unknown.
    Text(String),
}

/// The valid keys in one line.
struct ValidKeys {
    /// How many.
    count: usize,
    /// Their ops.
    ops: usize,
    /// The first [`MAX_VALID_NAMED`], comma-separated.
    names: String,
    /// Whether more are not named.
    more: bool,
}

impl<'a> KeysView<'a> {
    fn new(check: &'a CheckResult, prefix: &str) -> KeysView<'a> {
        let bad: Vec<KeyRow> = check
            .keys
            .iter()
            .filter(|k| k.verdict != Verdict::Valid)
            .enumerate()
            .map(|(i, k)| KeyRow {
                name: key_name(k),
                verdict: k.verdict,
                ops: k.ops,
                states: k.states,
                millis: k.millis,
                detail: match &k.counterexample {
                    Some(_) if i < MAX_COUNTEREXAMPLES => {
                        KeyDetail::Counterexample(anchor(k, prefix))
                    }
                    Some(c) => KeyDetail::Text(c.explanation.clone()),
                    None => KeyDetail::Text(k.reason.clone().unwrap_or_default()),
                },
            })
            .collect();
        let valid: Vec<&KeyResult> = check
            .keys
            .iter()
            .filter(|k| k.verdict == Verdict::Valid)
            .collect();
        KeysView {
            model: check.model.name(),
            ops: check.ops,
            keys: check.keys.len(),
            millis: check.millis,
            verdict: check.verdict,
            reason: check.reason.as_deref(),
            bad: Cut::new(bad),
            valid: (!valid.is_empty()).then(|| ValidKeys {
                count: valid.len(),
                ops: valid.iter().map(|k| k.ops).sum(),
                names: valid
                    .iter()
                    .take(MAX_VALID_NAMED)
                    .map(|k| key_name(k))
                    .collect::<Vec<_>>()
                    .join(", "),
                more: valid.len() > MAX_VALID_NAMED,
            }),
        }
    }
}

/// The counterexamples drawn (the first [`MAX_COUNTEREXAMPLES`] keys that have one).
struct Counterexamples<'a> {
    /// Drawn.
    shown: Vec<CounterexampleView<'a>>,
    /// Keys with a counterexample not drawn.
    more: usize,
}

/// One key's counterexample: the sentence, the timeline, what was going on, and the ops.
struct CounterexampleView<'a> {
    /// The heading's id, linked from the per-key table.
    anchor: String,
    /// The key, or "(whole history)".
    key: String,
    /// The key's verdict.
    verdict: Verdict,
    /// The checker's sentence.
    explanation: &'a str,
    /// Which elements a projected list-append witness shows, and why that suffices.
    projection: Option<String>,
    /// The timeline: inline SVG (its text already escaped by [`timeline()`]) and how many ops
    /// and labels it left out, so the page can say so.
    timeline: Timeline,
    /// What the timeline leaves out (ops beyond the cap, labels that did not fit), in words.
    timeline_notes: Vec<String>,
    /// Faults and leader changes near the ops, in words; empty when there are no ops.
    context: Vec<String>,
    /// The witness ops in call order.
    ops: Cut<WitnessOp<'a>>,
    /// The state after the longest legal order, as JSON.
    state: String,
}

/// One op of a counterexample's table.
struct WitnessOp<'a> {
    /// Its id.
    id: usize,
    /// Its process.
    process: u64,
    /// The node it was sent to, or "".
    node: &'a str,
    /// e.g. "read -> 1".
    operation: String,
    /// ok / fail / info, or "(treated as info)" for a weakened op.
    outcome: &'static str,
    /// Invocation, ms since the run started.
    call_ms: f64,
    /// Completion, ms, for an op that did not end info.
    return_ms: Option<f64>,
    /// Its part in the witness.
    note: WitnessNote,
}

/// The note column of a [`WitnessOp`].
enum WitnessNote {
    /// The op that cannot be placed.
    Unplaced,
    /// Its 1-based position in the longest legal order.
    Linearized(usize),
    /// Neither.
    None,
}

impl<'a> Counterexamples<'a> {
    fn new(
        check: &'a CheckResult,
        faults: &[FaultInterval],
        leaders: &[LeaderLine],
        initial: Option<&LeaderLine>,
        prefix: &str,
        history: &str,
    ) -> Counterexamples<'a> {
        let with: Vec<(&KeyResult, &Counterexample)> = check
            .keys
            .iter()
            .filter_map(|k| k.counterexample.as_ref().map(|c| (k, c)))
            .collect();
        // The first leader is labelled as such on the timeline: it is not a change.
        let mut all_leaders: Vec<LeaderLine> =
            initial.into_iter().chain(leaders).cloned().collect();
        if let (Some(first), Some(_)) = (all_leaders.first_mut(), initial) {
            first.label = format!("{} (first leader)", first.label);
        }
        Counterexamples {
            shown: with
                .iter()
                .take(MAX_COUNTEREXAMPLES)
                .map(|(k, c)| CounterexampleView::new(k, c, faults, &all_leaders, prefix, history))
                .collect(),
            more: with.len().saturating_sub(MAX_COUNTEREXAMPLES),
        }
    }
}

impl<'a> CounterexampleView<'a> {
    fn new(
        k: &KeyResult,
        c: &'a Counterexample,
        faults: &[FaultInterval],
        leaders: &[LeaderLine],
        prefix: &str,
        history: &str,
    ) -> CounterexampleView<'a> {
        let mut ops: Vec<&Op> = c.ops.iter().collect();
        ops.sort_by_key(|o| o.call);
        let ops = ops
            .into_iter()
            .map(|o| WitnessOp {
                id: o.id,
                process: o.process,
                node: o.node.as_deref().unwrap_or(""),
                operation: describe(o),
                outcome: if c.weakened.contains(&o.id) {
                    "(treated as info)"
                } else {
                    outcome_word(o.outcome)
                },
                call_ms: o.call_time as f64 / 1e6,
                return_ms: o
                    .ret_time
                    .filter(|_| o.outcome != Outcome::Info)
                    .map(|t| t as f64 / 1e6),
                note: if c.unplaced == Some(o.id) {
                    WitnessNote::Unplaced
                } else if let Some(n) = c.linearized.iter().position(|&i| i == o.id) {
                    WitnessNote::Linearized(n + 1)
                } else {
                    WitnessNote::None
                },
            })
            .collect();
        let timeline = timeline(c, faults, leaders);
        let timeline_notes = timeline_notes(c, &timeline);
        CounterexampleView {
            anchor: anchor(k, prefix),
            key: key_name(k),
            verdict: k.verdict,
            explanation: &c.explanation,
            projection: projection_note(c, history),
            timeline,
            timeline_notes,
            context: context_lines(c, faults, leaders),
            ops: Cut::new(ops),
            state: c.state.to_string(),
        }
    }
}

/// What a reader of the timeline should know it does not show: the ops beyond its cap, and
/// labels shortened to fit (the full text is in each bar's tooltip and in the table).
fn timeline_notes(c: &Counterexample, t: &Timeline) -> Vec<String> {
    let mut notes = Vec::new();
    if t.drawn < t.total {
        let which = if c.unplaced.is_some() {
            "those around the op that cannot be placed"
        } else {
            "the last ones called"
        };
        notes.push(format!(
            "The timeline draws {} of the witness's {} ops, {which}; the table below lists them \
             in call order.",
            t.drawn, t.total
        ));
    }
    if t.shortened > 0 {
        notes.push(format!(
            "{} op label{} did not fit beside {} bar and {} shortened or left out: hover over a \
             bar to see its op in full, or find it by id in the table.",
            t.shortened,
            plural(t.shortened),
            if t.shortened == 1 { "its" } else { "their" },
            if t.shortened == 1 { "is" } else { "are" },
        ));
    }
    notes
}

/// A spec (serialized) as name/value rows; strings shown bare, anything else as JSON.
fn config_rows(v: &serde_json::Value) -> Vec<(String, String)> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let shown = match v {
                serde_json::Value::String(t) => t.clone(),
                other => other.to_string(),
            };
            (k.clone(), shown)
        })
        .collect()
}

/// Faults and leader changes near the counterexample, in words: the timeline only shows what
/// falls inside its window, which is often milliseconds long. Empty when there are no ops.
fn context_lines(
    c: &Counterexample,
    faults: &[FaultInterval],
    leaders: &[LeaderLine],
) -> Vec<String> {
    let ops = timeline_ops(c);
    let Some(t0) = ops.iter().map(|o| o.call_time).min() else {
        return Vec::new();
    };
    let t1 = ops
        .iter()
        .map(|o| o.ret_time.unwrap_or(o.call_time))
        .max()
        .unwrap_or(t0);
    let (a, b) = (t0 as f64 / 1e9, t1 as f64 / 1e9);
    let mut items = Vec::new();
    for f in faults.iter().filter(|f| f.start <= b && f.end >= a) {
        items.push(format!(
            "fault in force: {} on {} from {:.3} s to {:.3} s{}",
            f.label,
            f.nodes.join(", "),
            f.start,
            f.end,
            if f.unhealed { " (no heal logged)" } else { "" }
        ));
    }
    if items.is_empty() {
        items.push("no fault was in force during these ops".to_string());
    }
    if let Some(l) = leaders.iter().rev().find(|l| l.t <= a) {
        items.push(format!(
            "last leader change before: {} (term {}) at {:.3} s, {:.0} ms before the first op",
            l.node,
            l.term,
            l.t,
            (a - l.t) * 1e3
        ));
    }
    for l in leaders.iter().filter(|l| l.t > a && l.t <= b) {
        items.push(format!(
            "leader change during: {} (term {}) at {:.3} s",
            l.node, l.term, l.t
        ));
    }
    if let Some(l) = leaders.iter().find(|l| l.t > b) {
        items.push(format!(
            "next leader change: {} (term {}) at {:.3} s, {:.0} ms after the last op",
            l.node,
            l.term,
            l.t,
            (l.t - b) * 1e3
        ));
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Fun;
    use crate::report::esc;

    #[test]
    fn esc_escapes_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn hostile_run_text_is_escaped_everywhere_on_the_page() {
        // The fixture has no PNGs (they are drawn by render_run): each plot becomes a note.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run-stale-read");
        let mut inputs = read_run(&dir).expect("the fixture reads");
        let evil = "<script>alert(1)</script>";
        let r = &mut inputs.results;
        r.cluster = evil.into();
        r.command = evil.into();
        r.reasons.push(evil.into());
        r.unread_keys.push(Some(evil.into()));
        r.check.keys[0].key = Some(evil.into());
        if let Some(c) = &mut r.check.keys[0].counterexample {
            c.explanation = evil.into();
        }
        inputs.nemesis[0].label = evil.into();
        let data = plots::plot_data(&inputs.ops, &inputs.nemesis, &inputs.results.leader_changes);
        let unavail = analysis::unavailability(&inputs.ops, &inputs.results.leader_changes);
        let page = run_page(&dir, &inputs, &data, &unavail);
        assert!(!page.contains("<script"), "unescaped run text");
        assert!(
            page.matches("&lt;script&gt;alert(1)&lt;/script&gt;")
                .count()
                >= 7
        );
        assert!(page.contains("latency.png could not be read"));
    }

    #[test]
    fn a_hostile_key_cannot_inject_markup_into_the_timeline() {
        let op = Op {
            id: 1,
            process: 2,
            f: Fun::Write,
            key: Some("<script>alert(1)</script>".into()),
            value: serde_json::json!("</text><script>x</script>"),
            outcome: Outcome::Ok,
            call: 0,
            ret: Some(1),
            call_time: 1_000_000,
            ret_time: Some(2_000_000),
            node: None,
        };
        let c = Counterexample {
            ops: vec![op],
            weakened: vec![],
            projection: vec![],
            linearized: vec![],
            state: serde_json::Value::Null,
            unplaced: Some(1),
            candidates: vec![],
            explanation: "<b>x</b>".into(),
        };
        let svg = timeline(&c, &[], &[]).svg;
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("cannot be placed"));
    }
}
