//! report.html: one self-contained page per run (or per `raftcheck check --out DIR`).
//!
//! What a reader needs, in the order they need it: the verdict, big, with its reasons; the
//! command that reproduces the run; op counts, latency quantiles and unavailability; the fault
//! log; the plots; per-key verdicts; for an invalid run the counterexample as a timeline; the
//! configuration; links to node logs and raw files.
//!
//! Self-contained as Porcupine's visualization is: no script, no network, no external font or
//! stylesheet. The PNGs are embedded as `data:` URIs (and also linked, as sibling files, for
//! full size); the counterexample timeline is inline SVG generated here. Links point only at
//! files that exist when the page is written. Every piece of text from the run (keys, values,
//! labels, reasons, paths) goes through [`esc`].
//!
//! The page stays small for big runs: plots are fixed-size images, long tables are cut with a
//! note saying where the rest is, and the timeline shows only the counterexample's few ops.

use super::plots::{self, FaultInterval, LeaderLine, PlotData};
use super::text::{describe, outcome_word, verdict_word};
use super::{esc, href, io_err, CheckReport, Conclusion, ReportError};
use crate::analysis::{self, op_counts};
use crate::checker::{CheckResult, Counterexample, KeyResult, Verdict};
use crate::history::{Op, Outcome};
use crate::store::{NemesisEvent, OpCounts, Quantiles, Recorded, RunDir, Unavailability};
use base64::Engine;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Rows a long table shows before it is cut ("… N more in FILE").
const MAX_ROWS: usize = 120;
/// Invalid keys whose counterexample is drawn; the rest are listed.
const MAX_COUNTEREXAMPLES: usize = 5;
/// Ops drawn in one counterexample timeline (those nearest the unplaced op).
const MAX_TIMELINE_OPS: usize = 40;

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
    let mut written = plots::draw_all(dir, &data)?;
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

// ---------------------------------------------------------------------------------------------
// Page pieces.

const CSS: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
main{max-width:1320px;margin:0 auto;padding:0 20px 40px}
header.verdict{padding:22px 28px;color:#fff;margin:0 0 16px}
header.verdict h1{font-size:56px;margin:0;letter-spacing:2px}
header.verdict p{margin:6px 0 0;font-size:17px}
.v-valid{background:#2e7d32}.v-invalid{background:#c62828}.v-unknown{background:#b26a00}
.badge{display:inline-block;padding:1px 8px;border-radius:4px;color:#fff;font-weight:600;font-size:13px}
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:10px 18px 16px;margin:14px 0}
h2{font-size:21px;margin:8px 0 10px}h3{font-size:17px;margin:14px 0 6px}
table{border-collapse:collapse;font-size:14px;margin:6px 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f1f1f1}td.n{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f4f4f4;padding:8px 10px;overflow-x:auto;white-space:pre-wrap;word-break:break-all;font-size:13px}
code{font-size:13px}
ul.reasons{font-size:16px}
img.plot{max-width:100%;border:1px solid #eee;display:block;margin:6px 0}
nav a{margin-right:14px}
.note{color:#555;font-size:14px}
.unplaced{color:#c62828;font-weight:700}
svg text{font-family:system-ui,"DejaVu Sans",sans-serif}
"#;

fn verdict_class(v: impl Into<Conclusion>) -> &'static str {
    match v.into() {
        Conclusion::Valid => "v-valid",
        // Bad input is shown as alarmingly as a violation: neither may pass a gate.
        Conclusion::Invalid | Conclusion::Error => "v-invalid",
        Conclusion::Unknown => "v-unknown",
    }
}

fn badge(v: impl Into<Conclusion>) -> String {
    let v = v.into();
    format!(
        "<span class=\"badge {}\">{}</span>",
        verdict_class(v),
        v.word()
    )
}

fn page_start(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <link rel=\"icon\" href=\"data:,\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(title)
    )
}

fn secs_ns(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e9)
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn op_counts_table(counts: &OpCounts) -> String {
    let mut s = String::from(
        "<table><tr><th>f</th><th>ok</th><th>fail</th><th>info</th><th>total</th></tr>\n",
    );
    let mut tot = [0usize; 3];
    for (f, by) in counts {
        let v: Vec<usize> = ["ok", "fail", "info"]
            .iter()
            .map(|k| by.get(*k).copied().unwrap_or(0))
            .collect();
        for i in 0..3 {
            tot[i] += v[i];
        }
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(f),
            v[0],
            v[1],
            v[2],
            v.iter().sum::<usize>()
        );
    }
    let _ = writeln!(
        s,
        "<tr><th>all</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr></table>",
        tot[0],
        tot[1],
        tot[2],
        tot.iter().sum::<usize>()
    );
    s
}

fn quantiles_table(q: &BTreeMap<String, Quantiles>) -> String {
    if q.is_empty() {
        return "<p class=\"note\">No op succeeded, so there are no latency figures.</p>\n".into();
    }
    let mut s = String::from(
        "<table><tr><th>f (ok ops)</th><th>count</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>\n",
    );
    for (f, v) in q {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(f),
            v.count,
            ms(v.p50),
            ms(v.p90),
            ms(v.p99),
            ms(v.max)
        );
    }
    s.push_str("</table>\n");
    s
}

fn unavailability_html(u: &Unavailability) -> String {
    let mut s = String::new();
    if u.windows.is_empty() {
        s.push_str("<p>No leader change was observed, so there is no unavailability window to measure.</p>\n");
        return s;
    }
    let _ = writeln!(
        s,
        "<p>{} leader change{}; writes unavailable (last acknowledged write before the change to \
         the first after it): median <b>{}</b>, max <b>{}</b>.</p>",
        u.windows.len(),
        if u.windows.len() == 1 { "" } else { "s" },
        u.median_ms
            .map_or("n/a".to_string(), |v| format!("{} ms", ms(v))),
        u.max_ms
            .map_or("n/a".to_string(), |v| format!("{} ms", ms(v)))
    );
    s.push_str(
        "<table><tr><th>change at s</th><th>new leader</th><th>term</th><th>last write ok before (s)</th>\
         <th>first write ok after (s)</th><th>unavailable ms</th></tr>\n",
    );
    for w in u.windows.iter().take(MAX_ROWS) {
        let _ = writeln!(
            s,
            "<tr><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            secs_ns(w.time),
            esc(&w.node),
            w.term,
            w.last_ok_before.map_or("none".into(), secs_ns),
            w.first_ok_after.map_or("none".into(), secs_ns),
            w.ms.map_or("n/a".into(), ms)
        );
    }
    s.push_str("</table>\n");
    if u.windows.len() > MAX_ROWS {
        let _ = writeln!(
            s,
            "<p class=\"note\">… {} more changes in results.json.</p>",
            u.windows.len() - MAX_ROWS
        );
    }
    s
}

fn fault_log(events: &[NemesisEvent], exists: bool) -> String {
    let mut s = String::new();
    if events.is_empty() {
        s.push_str("<p>The nemesis logged no fault.</p>\n");
        return s;
    }
    s.push_str(
        "<table><tr><th>time s</th><th>event</th><th>fault</th><th>nodes</th><th>outcome</th><th>detail</th></tr>\n",
    );
    let n = events.len();
    let (head, tail) = if n > MAX_ROWS {
        (MAX_ROWS / 2, MAX_ROWS / 2)
    } else {
        (n, 0)
    };
    let row = |s: &mut String, e: &NemesisEvent| {
        let detail = match (&e.grudge, &e.reason) {
            (_, Some(r)) => esc(r),
            (Some(g), None) => esc(&g
                .iter()
                .map(|(k, v)| format!("{k} drops {}", v.join(",")))
                .collect::<Vec<_>>()
                .join("; ")),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            s,
            "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{detail}</td></tr>",
            secs_ns(e.time),
            e.event.name(),
            esc(&e.label),
            esc(&e.nodes.join(", ")),
            e.outcome.name()
        );
    };
    for e in &events[..head] {
        row(&mut s, e);
    }
    if tail > 0 {
        let _ = writeln!(
            s,
            "<tr><td colspan=\"6\" class=\"note\">… {} events not shown{} …</td></tr>",
            n - head - tail,
            if exists {
                " (all are in nemesis.jsonl)"
            } else {
                ""
            }
        );
        for e in &events[n - tail..] {
            row(&mut s, e);
        }
    }
    s.push_str("</table>\n");
    s
}

fn embed_png(dir: &Path, name: &str, alt: &str) -> String {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => format!(
            "<a href=\"{n}\"><img class=\"plot\" alt=\"{a}\" src=\"data:image/png;base64,{b}\"></a>\n",
            n = href(name),
            a = esc(alt),
            b = base64::engine::general_purpose::STANDARD.encode(bytes)
        ),
        Err(e) => format!(
            "<p class=\"note\">{} could not be read: {}</p>\n",
            esc(name),
            esc(&e.to_string())
        ),
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

fn keys_html(check: &CheckResult, prefix: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<p>Model <b>{}</b>, {} ops over {} key{}, checked in {:.1} ms: {}.{}</p>",
        esc(check.model.name()),
        check.ops,
        check.keys.len(),
        if check.keys.len() == 1 { "" } else { "s" },
        check.millis,
        badge(check.verdict),
        check
            .reason
            .as_deref()
            .map(|r| format!(" {}", esc(r)))
            .unwrap_or_default()
    );
    let bad: Vec<&KeyResult> = check
        .keys
        .iter()
        .filter(|k| k.verdict != Verdict::Valid)
        .collect();
    let valid: Vec<&KeyResult> = check
        .keys
        .iter()
        .filter(|k| k.verdict == Verdict::Valid)
        .collect();
    if !bad.is_empty() {
        s.push_str(
            "<table><tr><th>key</th><th>verdict</th><th>ops</th><th>search states</th><th>ms</th><th>detail</th></tr>\n",
        );
        for (i, k) in bad.iter().enumerate().take(MAX_ROWS) {
            let detail = if k.counterexample.is_some() && i < MAX_COUNTEREXAMPLES {
                format!("<a href=\"#{}\">counterexample</a>", anchor(k, prefix))
            } else if let Some(c) = &k.counterexample {
                esc(&c.explanation)
            } else {
                esc(k.reason.as_deref().unwrap_or(""))
            };
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td><td>{detail}</td></tr>",
                esc(&key_name(k)),
                badge(k.verdict),
                k.ops,
                k.states,
                k.millis
            );
        }
        s.push_str("</table>\n");
        if bad.len() > MAX_ROWS {
            let _ = writeln!(
                s,
                "<p class=\"note\">… {} more keys not valid, listed in results.json.</p>",
                bad.len() - MAX_ROWS
            );
        }
    }
    if !valid.is_empty() {
        const SHOWN: usize = 30;
        let names: Vec<String> = valid.iter().take(SHOWN).map(|k| key_name(k)).collect();
        let ops: usize = valid.iter().map(|k| k.ops).sum();
        let _ = writeln!(
            s,
            "<p>{} key{} valid ({} ops): {}{}</p>",
            valid.len(),
            if valid.len() == 1 { "" } else { "s" },
            ops,
            esc(&names.join(", ")),
            if valid.len() > SHOWN { ", …" } else { "" }
        );
    }
    s
}

/// The ops a timeline draws: all of them when few, else the unplaced op and those nearest it
/// in call order.
fn timeline_ops(c: &Counterexample) -> Vec<&Op> {
    let mut ops: Vec<&Op> = c.ops.iter().collect();
    ops.sort_by_key(|o| o.call);
    if ops.len() <= MAX_TIMELINE_OPS {
        return ops;
    }
    let center = c
        .unplaced
        .and_then(|u| ops.iter().position(|o| o.id == u))
        .unwrap_or(ops.len() - 1);
    let start = center
        .saturating_sub(MAX_TIMELINE_OPS * 3 / 4)
        .min(ops.len() - MAX_TIMELINE_OPS);
    ops[start..start + MAX_TIMELINE_OPS].to_vec()
}

/// The counterexample as an inline SVG timeline: one lane per process, a bar from call to
/// return per op (dashed to the right edge for an op whose effect is unknown: it may take
/// effect at any later point), the op that cannot be placed in red, the linearization order
/// found as #n badges, faults shaded and leader changes as lines across the lanes.
pub(crate) fn timeline_svg(
    c: &Counterexample,
    faults: &[FaultInterval],
    leaders: &[LeaderLine],
) -> String {
    let ops = timeline_ops(c);
    if ops.is_empty() {
        return String::new();
    }
    let t0 = ops.iter().map(|o| o.call_time).min().unwrap_or(0);
    let t1 = ops
        .iter()
        .map(|o| o.ret_time.unwrap_or(o.call_time).max(o.call_time))
        .max()
        .unwrap_or(t0);
    let span = (t1 - t0).max(1_000_000) as f64;
    let (lo, hi) = (t0 as f64 - span * 0.06, t1 as f64 + span * 0.12);
    let mut lanes: Vec<u64> = Vec::new();
    for o in &ops {
        if !lanes.contains(&o.process) {
            lanes.push(o.process);
        }
    }
    let (left, right, top, lane_h) = (120.0, 1180.0, 46.0, 40.0);
    let width = 1200.0;
    let height = top + lane_h * lanes.len() as f64 + 40.0;
    let x = |ns: f64| left + (ns - lo) / (hi - lo) * (right - left);
    let order: BTreeMap<usize, usize> = c
        .linearized
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i + 1))
        .collect();
    let weakened: BTreeSet<usize> = c.weakened.iter().copied().collect();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"counterexample timeline\">"
    );
    let _ = writeln!(
        s,
        "<rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"#fff\"/>"
    );
    // Faults in force during the window.
    let lanes_bottom = top + lane_h * lanes.len() as f64;
    for f in faults {
        let (a, b) = (f.start * 1e9, f.end * 1e9);
        if b < lo || a > hi {
            continue;
        }
        let (xa, xb) = (x(a.max(lo)), x(b.min(hi)));
        let col = plots::fault_color(f.kind);
        let _ = writeln!(
            s,
            "<rect x=\"{xa:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"rgb({},{},{})\" fill-opacity=\"0.14\"/>",
            top - 6.0,
            (xb - xa).max(1.0),
            lanes_bottom - top + 6.0,
            col.0,
            col.1,
            col.2
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"#444\">{} ({}){}</text>",
            xa + 4.0,
            lanes_bottom + 16.0,
            esc(&f.label),
            esc(&f.nodes.join(",")),
            if a < lo {
                " — since before this window"
            } else {
                ""
            }
        );
    }
    // Time axis.
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{right}\" y2=\"{:.1}\" stroke=\"#999\"/>",
        top - 20.0,
        top - 20.0
    );
    let step = nice_step((hi - lo) / 6.0);
    let mut tick = (lo / step).ceil() * step;
    for _ in 0..20 {
        if tick > hi {
            break;
        }
        let _ = writeln!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{0:.1}\" y2=\"{2:.1}\" stroke=\"#ccc\"/><text x=\"{0:.1}\" y=\"{3:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#555\">{4}</text>",
            x(tick),
            top - 24.0,
            lanes_bottom,
            top - 28.0,
            tick_label(tick, step)
        );
        tick += step;
    }
    let _ = writeln!(
        s,
        "<text x=\"8\" y=\"{:.1}\" font-size=\"11\" fill=\"#555\">ms since start</text>",
        top - 28.0
    );
    // Lanes and ops.
    for (li, p) in lanes.iter().enumerate() {
        let y = top + lane_h * li as f64;
        let _ = writeln!(
            s,
            "<text x=\"8\" y=\"{:.1}\" font-size=\"13\">process {p}</text><line x1=\"{left}\" y1=\"{:.1}\" x2=\"{right}\" y2=\"{:.1}\" stroke=\"#eee\"/>",
            y + 26.0,
            y + lane_h,
            y + lane_h
        );
    }
    for o in &ops {
        let Some(li) = lanes.iter().position(|&p| p == o.process) else {
            continue;
        };
        let y = top + lane_h * li as f64 + 16.0;
        let xa = x(o.call_time as f64);
        let unknown = o.outcome == Outcome::Info;
        let xb = match (unknown, o.ret_time) {
            (false, Some(r)) => x(r as f64),
            _ => right,
        };
        let col = plots::f_color(o.f);
        let unplaced = c.unplaced == Some(o.id);
        let stroke = if unplaced {
            "stroke=\"#c62828\" stroke-width=\"3\"".to_string()
        } else if unknown {
            format!(
                "stroke=\"rgb({},{},{})\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"",
                col.0, col.1, col.2
            )
        } else {
            "stroke=\"#333\" stroke-width=\"1\"".to_string()
        };
        let _ = writeln!(
            s,
            "<rect x=\"{xa:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"14\" rx=\"3\" fill=\"rgb({},{},{})\" fill-opacity=\"{}\" {stroke}/>",
            (xb - xa).max(3.0),
            col.0,
            col.1,
            col.2,
            if unknown { "0.25" } else { "0.75" }
        );
        if unknown {
            if let Some(r) = o.ret_time {
                // Where the client gave up (or, for a weakened op, where it really returned).
                let xr = x(r as f64);
                let _ = writeln!(
                    s,
                    "<line x1=\"{xr:.1}\" y1=\"{:.1}\" x2=\"{xr:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>",
                    y - 2.0,
                    y + 16.0
                );
            }
        }
        let mut label = format!("op {}: {}", o.id, describe(o));
        if weakened.contains(&o.id) {
            label.push_str(" (treated as info)");
        } else if unknown {
            label.push_str(" (info)");
        } else if o.outcome != Outcome::Ok {
            let _ = write!(label, " ({})", outcome_word(o.outcome));
        }
        if let Some(n) = order.get(&o.id) {
            let _ = write!(label, " — linearized #{n}");
        }
        if unplaced {
            label.push_str(" — ✗ cannot be placed");
        }
        // Keep the label inside the picture: right-align it when it would run off the edge
        // (about 7 px per character at this size).
        let est = label.chars().count() as f64 * 7.0;
        let (tx, anchor) = if xa + est > width - 6.0 {
            (xb.min(width - 6.0).max(left + est.min(right - left)), "end")
        } else {
            (xa + 1.0, "start")
        };
        let _ = writeln!(
            s,
            "<text x=\"{tx:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"{anchor}\"{}>{}</text>",
            y - 3.0,
            if unplaced {
                " fill=\"#c62828\" font-weight=\"bold\""
            } else {
                ""
            },
            esc(&label)
        );
    }
    for l in leaders {
        let ns = l.t * 1e9;
        if ns < lo || ns > hi {
            continue;
        }
        let xl = x(ns);
        let _ = writeln!(
            s,
            "<line x1=\"{xl:.1}\" y1=\"{:.1}\" x2=\"{xl:.1}\" y2=\"{lanes_bottom:.1}\" stroke=\"#000\" stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">leader {}</text>",
            top - 20.0,
            xl + 3.0,
            top - 8.0,
            esc(&l.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A round tick step (1, 2 or 5 times a power of ten) in ns, at least 1 µs.
fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1e3);
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|&v| v >= raw)
        .unwrap_or(10.0 * p)
}

/// A tick in ms with as many decimals as the step needs.
fn tick_label(ns: f64, step: f64) -> String {
    let decimals = (-(step / 1e6).log10().floor()).clamp(0.0, 3.0) as usize;
    format!("{:.*}", decimals, ns / 1e6)
}

/// Faults and leader changes near the counterexample, in words: the timeline only shows what
/// falls inside its window, which is often milliseconds long.
fn context_lines(c: &Counterexample, faults: &[FaultInterval], leaders: &[LeaderLine]) -> String {
    let ops = timeline_ops(c);
    let Some(t0) = ops.iter().map(|o| o.call_time).min() else {
        return String::new();
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
    let mut s = String::from("<ul class=\"note\">");
    for i in items {
        let _ = write!(s, "<li>{}</li>", esc(&i));
    }
    s.push_str("</ul>\n");
    s
}

fn counterexample_html(
    k: &KeyResult,
    c: &Counterexample,
    faults: &[FaultInterval],
    leaders: &[LeaderLine],
    initial: Option<&LeaderLine>,
    prefix: &str,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<h3 id=\"{}\">Key {}: {}</h3>",
        anchor(k, prefix),
        esc(&key_name(k)),
        badge(k.verdict)
    );
    let _ = writeln!(s, "<p>{}</p>", esc(&c.explanation));
    let mut all_leaders: Vec<LeaderLine> = initial.into_iter().chain(leaders).cloned().collect();
    if let (Some(first), Some(_)) = (all_leaders.first_mut(), initial) {
        first.label = format!("{} (first leader)", first.label);
    }
    s.push_str(&timeline_svg(c, faults, &all_leaders));
    s.push_str(&context_lines(c, faults, &all_leaders));
    s.push_str(
        "<table><tr><th>op</th><th>process</th><th>node</th><th>operation</th><th>outcome</th><th>call ms</th><th>return ms</th><th>note</th></tr>\n",
    );
    let mut ops: Vec<&Op> = c.ops.iter().collect();
    ops.sort_by_key(|o| o.call);
    for o in ops.iter().take(MAX_ROWS) {
        let outcome = if c.weakened.contains(&o.id) {
            "(treated as info)"
        } else {
            outcome_word(o.outcome)
        };
        let ret = o
            .ret_time
            .filter(|_| o.outcome != Outcome::Info)
            .map_or("-".to_string(), |t| format!("{:.3}", t as f64 / 1e6));
        let note = if c.unplaced == Some(o.id) {
            "<span class=\"unplaced\">cannot be placed</span>".to_string()
        } else if let Some(n) = c.linearized.iter().position(|&i| i == o.id) {
            format!("#{} in the longest legal order", n + 1)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"n\">{:.3}</td><td class=\"n\">{}</td><td>{note}</td></tr>",
            o.id,
            o.process,
            esc(o.node.as_deref().unwrap_or("")),
            esc(&describe(o)),
            outcome,
            o.call_time as f64 / 1e6,
            ret
        );
    }
    s.push_str("</table>\n");
    if ops.len() > MAX_ROWS {
        let _ = writeln!(
            s,
            "<p class=\"note\">… {} more ops in results.json.</p>",
            ops.len() - MAX_ROWS
        );
    }
    let _ = writeln!(
        s,
        "<p class=\"note\">State after the longest legal order: <code>{}</code>. Call/return \
         intervals are closed; a dashed bar is an op whose effect is unknown, which may take \
         effect at any point after its call, or never.</p>",
        esc(&c.state.to_string())
    );
    s
}

fn counterexamples_html(
    check: &CheckResult,
    faults: &[FaultInterval],
    leaders: &[LeaderLine],
    initial: Option<&LeaderLine>,
    prefix: &str,
) -> String {
    let mut s = String::new();
    let with: Vec<&KeyResult> = check
        .keys
        .iter()
        .filter(|k| k.counterexample.is_some())
        .collect();
    for k in with.iter().take(MAX_COUNTEREXAMPLES) {
        if let Some(c) = &k.counterexample {
            s.push_str(&counterexample_html(k, c, faults, leaders, initial, prefix));
        }
    }
    if with.len() > MAX_COUNTEREXAMPLES {
        let _ = writeln!(
            s,
            "<p class=\"note\">{} more invalid keys have counterexamples in results.json.</p>",
            with.len() - MAX_COUNTEREXAMPLES
        );
    }
    s
}

fn kv_table(v: &serde_json::Value) -> String {
    let mut s = String::from("<table>");
    if let Some(m) = v.as_object() {
        for (k, v) in m {
            let shown = match v {
                serde_json::Value::String(t) => t.clone(),
                other => other.to_string(),
            };
            let _ = write!(
                s,
                "<tr><th>{}</th><td><code>{}</code></td></tr>",
                esc(k),
                esc(&shown)
            );
        }
    }
    s.push_str("</table>\n");
    s
}

fn link_if(dir: &Path, rel: &str, text: &str) -> Option<String> {
    dir.join(rel)
        .is_file()
        .then(|| format!("<a href=\"{}\">{}</a>", href(rel), esc(text)))
}

fn files_html(dir: &Path) -> String {
    let mut items: Vec<String> = Vec::new();
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
        items.extend(link_if(dir, rel, what));
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
        items.extend(link_if(
            dir,
            &format!("nodes/{n}/log"),
            &format!("node {n} log"),
        ));
    }
    let mut s = String::from("<ul>");
    for i in items {
        let _ = write!(s, "<li>{i}</li>");
    }
    s.push_str("</ul>\n");
    s
}

fn run_page(dir: &Path, inputs: &Recorded, data: &PlotData, unavail: &Unavailability) -> String {
    let r = &inputs.results;
    let mut s = page_start(&format!(
        "{} — {} {} {} (seed {})",
        verdict_word(r.verdict),
        r.cluster,
        r.workload,
        r.nemesis,
        r.seed
    ));
    let date = r.started.get(..19).unwrap_or(&r.started).replace('T', " ");
    let _ = writeln!(
        s,
        "<header class=\"verdict {}\"><h1>{}</h1><p>{} · {} · {} — seed {} — {} UTC — {:.1} s, {} nodes, {} mode — run {}</p></header>\n<main>",
        verdict_class(r.verdict),
        verdict_word(r.verdict),
        esc(&r.cluster),
        esc(&r.workload),
        esc(&r.nemesis),
        r.seed,
        esc(&date),
        r.duration_secs,
        r.nodes,
        esc(&serde_json::to_value(r.net_mode).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()),
        esc(&r.run_id)
    );
    s.push_str("<section id=\"verdict\"><h2>Verdict</h2>");
    let _ = write!(
        s,
        "<p>{} — exit code {}. ",
        badge(r.verdict),
        Conclusion::from(r.verdict).exit_code()
    );
    match r.verdict {
        Verdict::Valid => s.push_str("The history is linearizable and the run exercised what it was asked to.</p>"),
        Verdict::Invalid => s.push_str("A violation was found: see the reasons below and the <a href=\"#counterexample\">counterexample</a>.</p>"),
        Verdict::Unknown => s.push_str("The run cannot vouch for the system: see why below.</p>"),
    }
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
            if r.check.keys.len() == 1 { "" } else { "s" },
            r.check.model.name()
        ));
    }
    reasons.extend(r.reasons.iter().cloned());
    if !reasons.is_empty() {
        s.push_str("<ul class=\"reasons\">");
        for why in &reasons {
            let _ = write!(s, "<li>{}</li>", esc(why));
        }
        s.push_str("</ul>");
    }
    for v in &r.invariants {
        let _ = write!(
            s,
            "<p class=\"unplaced\">Raft invariant broken: {}</p>",
            esc(&serde_json::to_string(v).unwrap_or_default())
        );
    }
    s.push_str("<nav><a href=\"#reproduce\">reproduce</a><a href=\"#figures\">figures</a><a href=\"#faults\">faults</a><a href=\"#plots\">plots</a><a href=\"#keys\">keys</a>");
    if r.check.keys.iter().any(|k| k.counterexample.is_some()) {
        s.push_str("<a href=\"#counterexample\">counterexample</a>");
    }
    s.push_str("<a href=\"#config\">config</a><a href=\"#files\">files</a></nav></section>\n");

    let _ = writeln!(
        s,
        "<section id=\"reproduce\"><h2>Reproduce</h2><pre>{}</pre><p class=\"note\">Same seed, same op sequence and fault schedule (timing-dependent interleavings may differ). Network: {}.</p></section>",
        esc(&r.command),
        esc(&r.net_reason)
    );

    s.push_str("<section id=\"figures\"><h2>Figures</h2><h3>Ops by function and outcome</h3>");
    let counts = if r.exercised.ops.is_empty() {
        op_counts(&inputs.ops)
    } else {
        r.exercised.ops.clone()
    };
    s.push_str(&op_counts_table(&counts));
    s.push_str("<h3>Latency of ok ops</h3>");
    s.push_str(&quantiles_table(&r.latency_ms));
    s.push_str("<h3>Unavailability around leader changes</h3>");
    s.push_str(&unavailability_html(unavail));
    if !r.crashes.is_empty() {
        s.push_str("<h3>Crashes</h3><ul>");
        for c in &r.crashes {
            let _ = write!(
                s,
                "<li>{}</li>",
                esc(&serde_json::to_string(c).unwrap_or_default())
            );
        }
        s.push_str("</ul>");
    }
    s.push_str("</section>\n");

    s.push_str("<section id=\"faults\"><h2>Fault log</h2>");
    if !r.exercised.faults.is_empty() {
        s.push_str(
            "<table><tr><th>fault</th><th>installed</th><th>skipped</th><th>failed</th></tr>",
        );
        for (label, c) in &r.exercised.faults {
            let _ = write!(
                s,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(label),
                c.installed,
                c.skipped,
                c.failed
            );
        }
        s.push_str("</table>");
    }
    for (k, why) in &r.exercised.unsupported {
        let _ = write!(s, "<p class=\"note\">{}: {}</p>", esc(k), esc(why));
    }
    s.push_str(&fault_log(
        &inputs.nemesis,
        dir.join("nemesis.jsonl").is_file(),
    ));
    if let Some(l) = &data.initial_leader {
        let _ = write!(
            s,
            "<p>Initial leader: {} (term {}). Leader changes after it: {}.</p>",
            esc(&l.node),
            l.term,
            data.leaders.len()
        );
    }
    s.push_str("</section>\n");

    s.push_str(
        "<section id=\"plots\"><h2>Plots</h2>\
        <p class=\"note\">Points are coloured by function; ● ok, ✕ fail, △ info (unknown). Shaded: \
        faults in force (red kill, amber pause, grey partition, cyan membership change). Vertical lines: leader changes, \
        labelled with the new leader and term. Click a plot for the full-size file.</p>",
    );
    s.push_str(&embed_png(
        dir,
        "latency.png",
        "latency of every op over time",
    ));
    s.push_str(&embed_png(dir, "rate.png", "throughput over time"));
    s.push_str(&embed_png(
        dir,
        "leader-changes.png",
        "latency and throughput around each leader change",
    ));
    s.push_str("</section>\n");

    s.push_str("<section id=\"keys\"><h2>Per-key verdicts</h2>");
    s.push_str(&keys_html(&r.check, ""));
    if !r.unread_keys.is_empty() {
        let names: Vec<String> = r
            .unread_keys
            .iter()
            .map(|k| k.clone().unwrap_or_else(|| "(the register)".into()))
            .collect();
        let _ = write!(
            s,
            "<p class=\"note\">The final phase could not read: {}</p>",
            esc(&names.join(", "))
        );
    }
    s.push_str("</section>\n");

    if r.check.keys.iter().any(|k| k.counterexample.is_some()) {
        s.push_str("<section id=\"counterexample\"><h2>Counterexample</h2>");
        s.push_str(&counterexamples_html(
            &r.check,
            &data.faults,
            &data.leaders,
            data.initial_leader.as_ref(),
            "",
        ));
        s.push_str("</section>\n");
    }

    s.push_str("<section id=\"config\"><h2>Configuration</h2><h3>Workload</h3>");
    s.push_str(&kv_table(
        &serde_json::to_value(&r.workload_spec).unwrap_or_default(),
    ));
    s.push_str("<h3>Nemesis</h3>");
    s.push_str(&kv_table(
        &serde_json::to_value(&r.nemesis_spec).unwrap_or_default(),
    ));
    s.push_str("<details><summary>Node command lines</summary>");
    for argv in &r.node_argv {
        let _ = write!(s, "<pre>{}</pre>", esc(&argv.join(" ")));
    }
    s.push_str("</details></section>\n");

    s.push_str("<section id=\"files\"><h2>Files</h2>");
    s.push_str(&files_html(dir));
    s.push_str("</section>\n</main>\n</body>\n</html>\n");
    s
}

fn check_page(
    dir: &Path,
    report: &CheckReport,
    ops_by_file: &BTreeMap<String, Vec<Op>>,
    plots_by_file: &BTreeMap<usize, String>,
) -> String {
    let mut s = page_start(&format!("{} — raftcheck check", report.verdict.word()));
    let _ = writeln!(
        s,
        "<header class=\"verdict {}\"><h1>{}</h1><p>raftcheck check — {} histor{}{}</p></header>\n<main>",
        verdict_class(report.verdict),
        report.verdict.word(),
        report.histories.len(),
        if report.histories.len() == 1 { "y" } else { "ies" },
        if report.histories.iter().any(|h| h.verdict == Conclusion::Error) {
            " — some could not be checked (exit code 2)"
        } else {
            ""
        }
    );
    for (i, h) in report.histories.iter().enumerate() {
        let prefix = format!("h{}-", i + 1);
        let _ = writeln!(
            s,
            "<section id=\"h{}\"><h2>{} {}</h2>",
            i + 1,
            esc(&h.file),
            badge(h.verdict)
        );
        if let Some(e) = &h.error {
            let _ = writeln!(s, "<pre>{}</pre>", esc(e));
        }
        if !h.op_counts.is_empty() {
            s.push_str("<h3>Ops by function and outcome</h3>");
            s.push_str(&op_counts_table(&h.op_counts));
        }
        if let Some(ops) = ops_by_file.get(&h.file) {
            s.push_str("<h3>Latency of ok ops</h3>");
            s.push_str(&quantiles_table(&analysis::latency(ops)));
        }
        if let Some(name) = plots_by_file.get(&i) {
            s.push_str(&embed_png(dir, name, "latency of every op over time"));
        }
        if let Some(check) = &h.check {
            if let Some(why) = &check.reason {
                let _ = writeln!(s, "<p>{}</p>", esc(why));
            }
            s.push_str("<h3>Per-key verdicts</h3>");
            s.push_str(&keys_html(check, &prefix));
            s.push_str(&counterexamples_html(check, &[], &[], None, &prefix));
        }
        s.push_str("</section>\n");
    }
    s.push_str("<section id=\"files\"><h2>Files</h2><ul>");
    if let Some(l) = link_if(dir, "results.json", "results.json") {
        let _ = write!(s, "<li>{l}</li>");
    }
    for name in plots_by_file.values() {
        if let Some(l) = link_if(dir, name, name) {
            let _ = write!(s, "<li>{l}</li>");
        }
    }
    s.push_str("</ul></section>\n</main>\n</body>\n</html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Fun;

    #[test]
    fn esc_escapes_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
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
            linearized: vec![],
            state: serde_json::Value::Null,
            unplaced: Some(1),
            candidates: vec![],
            explanation: "<b>x</b>".into(),
        };
        let svg = timeline_svg(&c, &[], &[]);
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("cannot be placed"));
    }
}
