//! The templates of report.html: maud markup that lays out a view from [`super`] and decides
//! nothing: no file is read, no row chosen, no figure computed here, only numbers formatted.
//!
//! maud escapes every value spliced in with `(…)`. The only [`PreEscaped`] text is the page's
//! own CSS and the counterexample timeline, which [`super::timeline()`] builds with its text
//! escaped; never run data.

use super::{
    CheckView, CountTable, CounterexampleView, Counterexamples, Cut, FaultLog, FaultRow, Header,
    HistoryView, KeyDetail, KeysView, Link, Plot, RunView, UnavailabilityView, WitnessNote,
};
use crate::checker::Verdict;
use crate::store::{Conclusion, Quantiles};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use std::collections::BTreeMap;

const CSS: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1b1b1b;background:#fafafa;overflow-wrap:anywhere}
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
th{background:#f1f1f1;overflow-wrap:normal}td.n{text-align:right;font-variant-numeric:tabular-nums}
td.n,th.n,td a,.badge{white-space:nowrap;overflow-wrap:normal}
pre{background:#f4f4f4;padding:8px 10px;overflow-x:auto;white-space:pre-wrap;word-break:break-all;font-size:13px}
code{font-size:13px}
ul.reasons{font-size:16px}
img.plot{max-width:100%;border:1px solid #eee;display:block;margin:6px 0}
nav a{margin-right:14px}
.note{color:#555;font-size:14px}
.unplaced{color:#c62828;font-weight:700}
p.projection{background:#fff8e1;border-left:4px solid #b26a00;padding:6px 10px}
svg.timeline{display:block;max-width:100%;height:auto;margin:6px 0}
"#;

// ---------------------------------------------------------------------------------------------
// The two pages.

/// The run page: verdict, reproduce, figures, faults, plots, keys, counterexample, config,
/// files.
pub(super) fn run_page(v: &RunView) -> Markup {
    let drawn = !v.counterexamples.shown.is_empty();
    page(
        &v.title,
        &v.header,
        html! {
            section #verdict {
                h2 { "Verdict" }
                p {
                    (badge(v.verdict)) " — exit code " (v.exit_code) ". "
                    @match v.verdict {
                        Verdict::Valid => "The history is linearizable and the run exercised what it was asked to.",
                        Verdict::Invalid => {
                            "A violation was found: see the reasons below and the "
                            a href="#counterexample" { "counterexample" } "."
                        }
                        Verdict::Unknown => "The run cannot vouch for the system: see why below.",
                    }
                }
                @if !v.reasons.is_empty() {
                    ul.reasons { @for why in &v.reasons { li { (why) } } }
                }
                @for broken in &v.invariants {
                    p.unplaced { "Raft invariant broken: " (broken) }
                }
                @if !v.roles_observed {
                    p.note {
                        "Raft invariants (one leader per term, terms never go back): not \
                         observed. " (NOT_OBSERVED)
                    }
                }
                nav {
                    a href="#reproduce" { "reproduce" }
                    a href="#figures" { "figures" }
                    a href="#faults" { "faults" }
                    a href="#plots" { "plots" }
                    a href="#keys" { "keys" }
                    @if drawn { a href="#counterexample" { "counterexample" } }
                    a href="#config" { "config" }
                    a href="#files" { "files" }
                }
            }
            section #reproduce {
                h2 { "Reproduce" }
                pre { (v.command) }
                p.note {
                    "Same seed, same op sequence and fault schedule (timing-dependent \
                     interleavings may differ). Network: " (v.net_reason) "."
                }
            }
            section #figures {
                h2 { "Figures" }
                h3 { "Ops by function and outcome" }
                (op_counts(&v.op_counts))
                h3 { "Latency of ok ops" }
                (latency(v.latency))
                h3 { "Unavailability around leader changes" }
                @if v.roles_observed {
                    (unavailability(&v.unavailability))
                } @else {
                    p { "Leader changes: not observed. " (NOT_OBSERVED) }
                }
                @if !v.crashes.is_empty() {
                    h3 { "Crashes" }
                    ul { @for c in &v.crashes { li { (c) } } }
                }
            }
            section #faults {
                h2 { "Fault log" }
                @if !v.fault_counts.is_empty() {
                    table {
                        tr { th { "fault" } th { "installed" } th { "skipped" } th { "failed" } }
                        @for (label, c) in v.fault_counts {
                            tr {
                                td { (label) }
                                td.n { (c.installed) }
                                td.n { (c.skipped) }
                                td.n { (c.failed) }
                            }
                        }
                    }
                }
                @for (kind, why) in v.unsupported {
                    p.note { (kind) ": " (why) }
                }
                (fault_log(&v.fault_log))
                @if !v.roles_observed {
                    p { "Leader: not observed; faults aimed at the leader hit random nodes." }
                }
                @if let Some(l) = &v.initial_leader {
                    p {
                        "Initial leader: " (l.node) " (term " (l.term) "). Leader changes after it: "
                        (l.changes) "."
                    }
                }
            }
            section #plots {
                h2 { "Plots" }
                p.note {
                    "Points are coloured by function; ● ok, ✕ fail, △ info (unknown). Shaded: \
                     faults in force (red kill, amber pause, grey partition, cyan membership \
                     change). Vertical lines: leader changes, labelled with the new leader and \
                     term. Click a plot for the full-size file."
                }
                @for p in &v.plots { (plot(p)) }
            }
            section #keys {
                h2 { "Per-key verdicts" }
                (keys(&v.keys))
                @if let Some(names) = &v.unread_keys {
                    p.note { "The final phase could not read: " (names) }
                }
            }
            @if drawn {
                section #counterexample {
                    h2 { "Counterexample" }
                    (counterexamples(&v.counterexamples))
                }
            }
            section #config {
                h2 { "Configuration" }
                h3 { "Workload" }
                (config(&v.workload))
                h3 { "Nemesis" }
                (config(&v.nemesis))
                details {
                    summary { "Node command lines" }
                    @for argv in &v.node_argv { pre { (argv) } }
                }
            }
            section #files {
                h2 { "Files" }
                (files(&v.files))
            }
        },
    )
}

/// The page of `raftcheck check --out DIR`: a section per history, then the files.
pub(super) fn check_page(v: &CheckView) -> Markup {
    page(
        &v.title,
        &v.header,
        html! {
            @for h in &v.histories { (history(h)) }
            section #files {
                h2 { "Files" }
                (files(&v.files))
            }
        },
    )
}

/// The frame of both pages: head with the inline CSS, the verdict band, then `main`.
fn page(title: &str, header: &Header, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // No favicon fetch.
                link rel="icon" href="data:,";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header.verdict.(verdict_class(header.verdict)) {
                    h1 { (header.verdict.word()) }
                    p { (header.summary) }
                }
                main { (main) }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sections and tables.

fn verdict_class(v: impl Into<Conclusion>) -> &'static str {
    match v.into() {
        Conclusion::Valid => "v-valid",
        // Bad input is shown as alarmingly as a violation: neither may pass a gate.
        Conclusion::Invalid | Conclusion::Error => "v-invalid",
        Conclusion::Unknown => "v-unknown",
    }
}

fn badge(v: impl Into<Conclusion>) -> Markup {
    let v = v.into();
    html! { span.badge.(verdict_class(v)) { (v.word()) } }
}

/// One history of a `raftcheck check`.
fn history(h: &HistoryView) -> Markup {
    html! {
        section id=(h.id) {
            h2 { (h.file) " " (badge(h.verdict)) }
            @if let Some(e) = h.error { pre { (e) } }
            @if let Some(counts) = &h.op_counts {
                h3 { "Ops by function and outcome" }
                (op_counts(counts))
            }
            @if let Some(q) = &h.latency {
                h3 { "Latency of ok ops" }
                (latency(q))
            }
            @if let Some(p) = &h.plot { (plot(p)) }
            @if let Some(check) = &h.check {
                @if let Some(why) = check.reason { p { (why) } }
                h3 { "Per-key verdicts" }
                (keys(&check.keys))
                (counterexamples(&check.counterexamples))
            }
        }
    }
}

fn op_counts(t: &CountTable) -> Markup {
    html! {
        table {
            tr { th { "f" } th { "ok" } th { "fail" } th { "info" } th { "total" } }
            @for (f, c) in &t.rows {
                tr {
                    td { (f) }
                    td.n { (c.ok) }
                    td.n { (c.fail) }
                    td.n { (c.info) }
                    td.n { (c.total) }
                }
            }
            tr {
                th { "all" }
                th.n { (t.all.ok) }
                th.n { (t.all.fail) }
                th.n { (t.all.info) }
                th.n { (t.all.total) }
            }
        }
    }
}

fn latency(q: &BTreeMap<String, Quantiles>) -> Markup {
    html! {
        @if q.is_empty() {
            p.note { "No op succeeded, so there are no latency figures." }
        } @else {
            table {
                tr {
                    th { "f (ok ops)" } th { "count" } th { "p50 ms" } th { "p90 ms" }
                    th { "p99 ms" } th { "max ms" }
                }
                @for (f, v) in q {
                    tr {
                        td { (f) }
                        td.n { (v.count) }
                        td.n { (ms(v.p50)) }
                        td.n { (ms(v.p90)) }
                        td.n { (ms(v.p99)) }
                        td.n { (ms(v.max)) }
                    }
                }
            }
        }
    }
}

/// Why a run without a status request shows no leaders: said wherever leaders would be.
const NOT_OBSERVED: &str = "The cluster spec gives no way to ask a node for its role, term and \
                            leader (no status request), so the run could not see them; this is \
                            not a run without leader changes.";

fn unavailability(u: &UnavailabilityView) -> Markup {
    let or_na = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{} ms", ms(v)));
    html! {
        @if u.changes == 0 {
            p { "No leader change was observed, so there is no unavailability window to measure." }
        } @else {
            p {
                (u.changes) " leader change" @if u.changes != 1 { "s" } "; writes unavailable \
                (last acknowledged write before the change to the first after it): median "
                b { (or_na(u.median_ms)) } ", max " b { (or_na(u.max_ms)) } "."
            }
            table {
                tr {
                    th { "change at s" } th { "new leader" } th { "term" }
                    th { "last write ok before (s)" } th { "first write ok after (s)" }
                    th { "unavailable ms" }
                }
                @for w in &u.windows.rows {
                    tr {
                        td.n { (secs_ns(w.time)) }
                        td { (w.node) }
                        td.n { (w.term) }
                        td.n { (w.last_ok_before.map_or("none".into(), secs_ns)) }
                        td.n { (w.first_ok_after.map_or("none".into(), secs_ns)) }
                        td.n { (w.ms.map_or("n/a".into(), ms)) }
                    }
                }
            }
            (more(&u.windows, "changes in results.json"))
        }
    }
}

fn fault_log(log: &FaultLog) -> Markup {
    let row = |e: &FaultRow| {
        html! {
            tr {
                td.n { (secs_ns(e.time)) }
                td { (e.event) }
                td { (e.label) }
                td { (e.nodes) }
                td { (e.outcome) }
                td { (e.detail) }
            }
        }
    };
    html! {
        @if log.head.is_empty() {
            p { "The nemesis logged no fault." }
        } @else {
            table {
                tr {
                    th { "time s" } th { "event" } th { "fault" } th { "nodes" } th { "outcome" }
                    th { "detail" }
                }
                @for e in &log.head { (row(e)) }
                @if let Some(h) = &log.hidden {
                    tr {
                        td colspan="6" class="note" {
                            "… " (h.count) " events not shown"
                            @if h.in_file { " (all are in nemesis.jsonl)" }
                            " …"
                        }
                    }
                }
                @for e in &log.tail { (row(e)) }
            }
        }
    }
}

fn plot(p: &Plot) -> Markup {
    html! {
        @match p {
            Plot::Embedded { href, alt, base64 } => {
                a href=(href) {
                    img.plot alt=(alt) src={ "data:image/png;base64," (base64) };
                }
            }
            Plot::Unreadable { name, error } => {
                p.note { (name) " could not be read: " (error) }
            }
        }
    }
}

fn keys(k: &KeysView) -> Markup {
    html! {
        p {
            "Model " b { (k.model) } ", " (k.ops) " ops over " (k.keys) " key"
            @if k.keys != 1 { "s" }
            ", checked in " (format!("{:.1}", k.millis)) " ms: " (badge(k.verdict)) "."
            @if let Some(r) = k.reason { " " (r) }
        }
        @if !k.bad.rows.is_empty() {
            table {
                tr {
                    th { "key" } th { "verdict" } th { "ops" } th { "search states" } th { "ms" }
                    th { "detail" }
                }
                @for row in &k.bad.rows {
                    tr {
                        td { (row.name) }
                        td { (badge(row.verdict)) }
                        td.n { (row.ops) }
                        td.n { (row.states) }
                        td.n { (format!("{:.1}", row.millis)) }
                        td {
                            @match &row.detail {
                                KeyDetail::Counterexample(id) => {
                                    a href={ "#" (id) } { "counterexample" }
                                }
                                KeyDetail::Text(t) => (t),
                            }
                        }
                    }
                }
            }
            (more(&k.bad, "keys not valid, listed in results.json"))
        }
        @if let Some(v) = &k.valid {
            p {
                (v.count) " key" @if v.count != 1 { "s" } " valid (" (v.ops) " ops): " (v.names)
                @if v.more { ", …" }
            }
        }
    }
}

fn counterexamples(c: &Counterexamples) -> Markup {
    html! {
        @for ce in &c.shown { (counterexample(ce)) }
        @if c.more > 0 {
            p.note { (c.more) " more invalid keys have counterexamples in results.json." }
        }
    }
}

fn counterexample(c: &CounterexampleView) -> Markup {
    html! {
        h3 id=(c.anchor) { "Key " (c.key) ": " (badge(c.verdict)) }
        p { (c.explanation) }
        @if let Some(note) = &c.projection { p.projection { (note) } }
        // Built by timeline(), which escapes every piece of text it draws.
        (PreEscaped(&c.timeline.svg))
        @for note in &c.timeline_notes { p.note { (note) } }
        @if !c.context.is_empty() {
            ul.note { @for line in &c.context { li { (line) } } }
        }
        table {
            tr {
                th { "op" } th { "process" } th { "node" } th { "operation" } th { "outcome" }
                th { "call ms" } th { "return ms" } th { "note" }
            }
            @for o in &c.ops.rows {
                tr {
                    td.n { (o.id) }
                    td.n { (o.process) }
                    td { (o.node) }
                    td { code { (o.operation) } }
                    td { (o.outcome) }
                    td.n { (format!("{:.3}", o.call_ms)) }
                    td.n { (o.return_ms.map_or("-".to_string(), |t| format!("{t:.3}"))) }
                    td {
                        @match o.note {
                            WitnessNote::Unplaced => span.unplaced { "cannot be placed" },
                            WitnessNote::Linearized(n) => { "#" (n) " in the longest legal order" }
                            WitnessNote::None => {}
                        }
                    }
                }
            }
        }
        (more(&c.ops, "ops in results.json"))
        p.note {
            "State after the longest legal order: " code { (c.state) } ". Call/return \
             intervals are closed; a dashed bar is an op whose effect is unknown, which may take \
             effect at any point after its call, or never."
        }
    }
}

fn config(rows: &[(String, String)]) -> Markup {
    html! {
        table {
            @for (k, v) in rows { tr { th { (k) } td { code { (v) } } } }
        }
    }
}

fn files(links: &[Link]) -> Markup {
    html! {
        ul { @for l in links { li { a href=(l.href) { (l.text) } } } }
    }
}

/// "… N more WHAT." under a cut table; nothing when nothing was cut.
fn more<T>(cut: &Cut<T>, what: &str) -> Markup {
    html! {
        @if cut.more > 0 { p.note { "… " (cut.more) " more " (what) "." } }
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers.

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
