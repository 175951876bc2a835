//! The counterexample timeline: inline SVG, laid out so that no two pieces of text overlap,
//! whatever the number of ops, processes or the length of their values.
//!
//! A witness can hold hundreds of ops, and a list read can hold hundreds of elements. Drawn
//! naively, each label at the start of its bar, the labels of one process run into each
//! other and those of a busy window into a grey band nobody can read. So every text of the
//! picture — tick labels, process names, leader and fault labels, op labels — goes through one
//! pure function, [`place`], which grants each label a box that keeps a gap from every box
//! granted before it, or no box at all.
//!
//! The rule for op labels, the ones that crowd:
//! - One lane per process, split into as many rows as its bars need so that no two bars of a
//!   row overlap (a process's ops are sequential, so this is one row unless an op weakened to
//!   unknown runs on to the right edge). Each row has a band for labels above its bars.
//! - An op's label starts at its bar's start and may run until the next bar of the same row
//!   starts (its zone): beside its own bar, never over a neighbour's label.
//! - The label is the longest form that fits: in full (`op 12: read -> [1, 2] — linearized #3`),
//!   then with its value cut short by an ellipsis, then `op 12 #3`, `op 12`, `12`, then nothing.
//!   The full text is always in the bar's `<title>` (a tooltip), and the table under the
//!   timeline lists every op by id.
//! - The last op of a row, when its zone ends at the right edge before its label does, may
//!   instead end at the right edge if the space to its left is free.
//!
//! Widths are computed, not measured: the page has no script, so there is no font to ask.
//! The timeline's text is set in a monospace font, where every ASCII character advances 0.6 em
//! in every common face (DejaVu Sans Mono, Liberation Mono, Menlo, Consolas, Courier); the
//! estimate uses 0.62 em, and a generous 1.36 em for anything else (a CJK character, an
//! emoji, a dash), so the drawn text is never wider than the box it was granted.
//! `tests/report.rs` loads a 300-op witness in a real browser and checks the boxes there.

use super::super::esc;
use super::super::plots::{self, FaultInterval, LeaderLine};
use super::super::text::{describe, outcome_word};
use crate::checker::Counterexample;
use crate::history::{Op, Outcome};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Ops drawn in one counterexample timeline (those nearest the unplaced op): more would not
/// be read, and the table below lists the witness op by op.
const MAX_TIMELINE_OPS: usize = 40;

/// Width of the picture in user units; the page scales it to its column (viewBox).
const WIDTH: f64 = 1200.0;
/// Right edge of the lanes and of every label.
const RIGHT: f64 = WIDTH - 8.0;
/// Font size of every text, in user units: a little smaller than the page's table text, so
/// a useful label fits beside a bar a tenth of the width long.
const FONT: f64 = 12.0;
/// The estimated advance of one ASCII character: 0.6 em in common monospace faces, plus a
/// margin so the estimate is never short.
const CELL: f64 = 0.62 * FONT;
/// Bold text (the unplaced op) may be a little wider where the face has no bold and the
/// browser emboldens it.
const BOLD: f64 = 1.08;
/// Horizontal gap kept between any two text boxes.
const GAP: f64 = 6.0;
/// A text's box above its baseline (ascent with margin: faces differ, Noto Sans Mono's is
/// 1.07 em) and below it (descent, 0.3 em in the deepest common face).
const ASCENT: f64 = 1.1 * FONT;
const DESCENT: f64 = 0.35 * FONT;
/// Height of one process row: a band for op labels, the bars under it, and a gap.
const ROW: f64 = 38.0;
/// Within a row: the op labels' baseline (their box, ASCENT + DESCENT high, ends above the
/// bars), the bars' top, their height, and the process name's baseline (beside the bars).
const LABEL_BASELINE: f64 = 14.0;
const BAR_TOP: f64 = 20.0;
const BAR_HEIGHT: f64 = 12.0;
const NAME_BASELINE: f64 = BAR_TOP + 10.0;
/// Vertical pitch of the fault-label bands under the lanes: more than a text box is high.
const FAULT_BAND: f64 = 19.0;
/// Fault labels stack into at most this many bands; the rest stay in their tooltips.
const FAULT_BANDS: usize = 3;

/// The monospace faces the widths are computed for; `monospace` last, which every browser
/// has. Set on the `<svg>` itself so the picture carries it anywhere; the page's CSS must not
/// give the SVG's text a font, as a style rule would override this attribute.
const FONT_FAMILY: &str =
    "ui-monospace, 'DejaVu Sans Mono', 'Liberation Mono', Menlo, Consolas, monospace";

/// The drawn timeline, and what a reader should be told about it.
pub(super) struct Timeline {
    /// Inline SVG, every text escaped; empty when the witness has no ops.
    pub svg: String,
    /// Ops drawn (at most [`MAX_TIMELINE_OPS`]).
    pub drawn: usize,
    /// Ops in the witness.
    pub total: usize,
    /// Op labels shortened or left out for want of room (their full text is in a tooltip).
    pub shortened: usize,
}

/// The ops a timeline draws: all of them when few, else the unplaced op and those nearest it
/// in call order (more before it than after: the history leading to the violation is what
/// explains it).
pub(super) fn timeline_ops(c: &Counterexample) -> Vec<&Op> {
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
/// found as #n, faults shaded and leader changes as lines across the lanes.
pub(super) fn timeline(
    c: &Counterexample,
    faults: &[FaultInterval],
    leaders: &[LeaderLine],
) -> Timeline {
    let ops = timeline_ops(c);
    let picture = layout(&ops, c, faults, leaders);
    Timeline {
        svg: picture.as_ref().map(draw).unwrap_or_default(),
        drawn: ops.len(),
        total: c.ops.len(),
        shortened: picture.map_or(0, |p| p.shortened),
    }
}

// ---------------------------------------------------------------------------------------------
// Placement: pure geometry, no SVG.

/// A box in user units, y growing downwards.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rect {
    /// Left edge.
    pub x0: f64,
    /// Right edge.
    pub x1: f64,
    /// Top edge.
    pub y0: f64,
    /// Bottom edge.
    pub y1: f64,
}

impl Rect {
    /// Whether two boxes share height and come closer than [`GAP`] side by side: what
    /// [`place`] never lets two granted boxes do.
    fn too_close(&self, o: &Rect) -> bool {
        self.y0 < o.y1 && o.y0 < self.y1 && self.x0 < o.x1 + GAP && o.x0 < self.x1 + GAP
    }
}

/// Which way a label's box extends from its anchor, as SVG's `text-anchor` start/end/middle.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Grow {
    /// From the anchor rightwards (text-anchor start).
    Right,
    /// Leftwards to the anchor (text-anchor end).
    Left,
    /// Centred on it, at its full width only (text-anchor middle).
    Both,
}

/// One place a label may go: a box on a band `y0..y1`, anchored at `anchor`, as wide as the
/// full text (`want`) or, when something is in the way, as narrow as its shortest form (`min`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Spot {
    /// Where the text is anchored.
    pub anchor: f64,
    /// Which way it extends from there.
    pub grow: Grow,
    /// Top of the box.
    pub y0: f64,
    /// Bottom of the box.
    pub y1: f64,
    /// Width of the full text (already clipped by the caller to where the label may go).
    pub want: f64,
    /// Width of the shortest form worth showing.
    pub min: f64,
}

/// Grant boxes to labels, first come first served: `labels[i]` lists the spots label `i` may
/// take, best first; each label gets the first spot where a box at least `min` wide keeps
/// [`GAP`] from every box granted to an earlier label, as wide as it can be up to `want`, or
/// nothing. So no two granted boxes are [`Rect::too_close`], whatever the input; callers put
/// the labels that matter most first. Returns, per label, the spot's index and the box.
fn place(labels: &[Vec<Spot>]) -> Vec<Option<(usize, Rect)>> {
    // Floating point: stop a hair short of a neighbour, so "exactly GAP apart" stays apart.
    const EPS: f64 = 1e-6;
    let mut granted: Vec<Rect> = Vec::new();
    let mut out = Vec::with_capacity(labels.len());
    for spots in labels {
        let mut choice = None;
        for (i, s) in spots.iter().enumerate() {
            if !(s.want >= s.min && s.min >= 0.0 && s.y1 > s.y0 && s.anchor.is_finite()) {
                continue;
            }
            let beside = granted.iter().filter(|g| g.y0 < s.y1 && s.y0 < g.y1);
            let rect = match s.grow {
                Grow::Right => {
                    // A box [a, a+w] clears g iff a >= g.x1 + GAP or a + w + GAP <= g.x0.
                    let room = beside
                        .filter(|g| s.anchor < g.x1 + GAP)
                        .map(|g| g.x0 - GAP - s.anchor - EPS)
                        .fold(s.want, f64::min);
                    (room >= s.min).then_some(Rect {
                        x0: s.anchor,
                        x1: s.anchor + room,
                        y0: s.y0,
                        y1: s.y1,
                    })
                }
                Grow::Left => {
                    let room = beside
                        .filter(|g| g.x0 < s.anchor + GAP)
                        .map(|g| s.anchor - g.x1 - GAP - EPS)
                        .fold(s.want, f64::min);
                    (room >= s.min).then_some(Rect {
                        x0: s.anchor - room,
                        x1: s.anchor,
                        y0: s.y0,
                        y1: s.y1,
                    })
                }
                Grow::Both => {
                    let r = Rect {
                        x0: s.anchor - s.want / 2.0,
                        x1: s.anchor + s.want / 2.0,
                        y0: s.y0,
                        y1: s.y1,
                    };
                    (!granted.iter().any(|g| g.too_close(&r))).then_some(r)
                }
            };
            if let Some(r) = rect {
                granted.push(r);
                choice = Some((i, r));
                break;
            }
        }
        out.push(choice);
    }
    out
}

/// The width `s` takes in the timeline's font: never less than drawn (see the module doc).
fn text_width(s: &str) -> f64 {
    s.chars()
        .map(|c| if c.is_ascii() { 1.0 } else { 2.2 })
        .sum::<f64>()
        * CELL
}

/// A label's text and its shorter forms, for [`place`] to choose between by width.
#[derive(Clone, Debug)]
struct LabelText {
    /// What it says in full.
    pub full: String,
    /// `full` as (head, body, tail) when the body may be cut short with an ellipsis, keeping
    /// the head (which op) and tail (what happened to it).
    pub cut: Option<(String, String, String)>,
    /// Shorter forms, longest first; the last is the least worth showing.
    pub short: Vec<String>,
}

impl LabelText {
    /// A label that is shown whole or not at all.
    fn fixed(s: String) -> LabelText {
        LabelText {
            full: s,
            cut: None,
            short: Vec::new(),
        }
    }

    /// Width of the full text.
    fn want(&self) -> f64 {
        text_width(&self.full)
    }

    /// Width of the shortest form.
    fn min(&self) -> f64 {
        self.short.last().map_or(self.want(), |s| text_width(s))
    }

    /// The longest form that fits in `width`: the full text, the text with its body cut (at
    /// least three characters of it kept), or a shorter form; `None` if none fits.
    fn fit(&self, width: f64) -> Option<String> {
        // Widths are sums of the same few numbers; a hair of slack keeps "exactly fits" fitting.
        let width = width + 1e-9;
        if text_width(&self.full) <= width {
            return Some(self.full.clone());
        }
        if let Some((head, body, tail)) = &self.cut {
            let fixed = text_width(head) + text_width("…") + text_width(tail);
            let mut used = fixed;
            let mut keep = 0;
            for (n, c) in body.chars().enumerate() {
                used += text_width(c.encode_utf8(&mut [0; 4]));
                if used > width {
                    break;
                }
                keep = n + 1;
            }
            // Cut between words, not inside a number: "a list of 2…" would read as a list of 2.
            let chars: Vec<char> = body.chars().collect();
            let inside = |k: usize| {
                k > 0
                    && k < chars.len()
                    && chars[k - 1].is_alphanumeric()
                    && chars[k].is_alphanumeric()
            };
            if inside(keep) {
                if let Some(k) = (3..keep).rev().find(|&k| !inside(k)) {
                    keep = k;
                }
            }
            if keep >= 3 {
                let kept: String = chars[..keep].iter().collect();
                return Some(format!("{head}{}…{tail}", kept.trim_end()));
            }
        }
        self.short.iter().find(|s| text_width(s) <= width).cloned()
    }
}

// ---------------------------------------------------------------------------------------------
// Layout: where everything goes.

/// One text of the picture, placed.
#[derive(Clone, Debug)]
struct Placed {
    /// x of the text, at its anchor.
    pub x: f64,
    /// y of its baseline.
    pub baseline: f64,
    /// start, end or middle.
    pub anchor: &'static str,
    /// What is drawn.
    pub text: String,
    /// The full text, as a tooltip, when `text` is a shortened form.
    pub title: Option<String>,
    /// Extra SVG attributes (colour, weight).
    pub style: &'static str,
}

/// The picture before it is written out: the non-text shapes as SVG, and the texts placed.
struct Picture {
    /// Height in user units.
    pub height: f64,
    /// Background, shading, axis, grid, lane lines, bars and leader lines, in drawing order.
    pub shapes: String,
    /// Every text, each inside the box [`place`] granted it.
    pub texts: Vec<Placed>,
    /// Op labels shortened or left out.
    pub shortened: usize,
}

/// What a text box on a band with this baseline spans vertically.
fn band(baseline: f64) -> (f64, f64) {
    (baseline - ASCENT, baseline + DESCENT)
}

/// A label waiting for [`place`]: its text, where it may go, and how to draw it.
struct Pending {
    /// Its forms.
    text: LabelText,
    /// Its spots, best first, each with the baseline of its band.
    spots: Vec<(Spot, f64)>,
    /// Extra SVG attributes.
    style: &'static str,
    /// Text widths are scaled by this (bold text is wider).
    scale: f64,
    /// Whether it labels an op: those are counted when shortened, so the page can say so.
    op: bool,
}

impl Pending {
    /// Offer a spot on the band of `baseline`, its full width clipped to `limit` (how far the
    /// label may reach from its anchor).
    fn spot(&mut self, anchor: f64, grow: Grow, baseline: f64, limit: f64) {
        let (y0, y1) = band(baseline);
        self.spots.push((
            Spot {
                anchor,
                grow,
                y0,
                y1,
                want: (self.text.want() * self.scale).min(limit),
                min: self.text.min() * self.scale,
            },
            baseline,
        ));
    }
}

/// Lay out a timeline of `ops` (in call order): lanes, rows, bars, axis, faults, leaders and
/// every text placed by [`place`]. `None` when there are no ops.
fn layout(
    ops: &[&Op],
    c: &Counterexample,
    faults: &[FaultInterval],
    leaders: &[LeaderLine],
) -> Option<Picture> {
    let t0 = ops.iter().map(|o| o.call_time).min()?;
    let t1 = ops
        .iter()
        .map(|o| o.ret_time.unwrap_or(o.call_time).max(o.call_time))
        .max()
        .unwrap_or(t0);
    let span = (t1 - t0).max(1_000_000) as f64;
    let (lo, hi) = (t0 as f64 - span * 0.06, t1 as f64 + span * 0.12);

    // Lanes in order of first call; the margin fits the widest process name.
    let mut lanes: Vec<u64> = Vec::new();
    for o in ops {
        if !lanes.contains(&o.process) {
            lanes.push(o.process);
        }
    }
    let widest = lanes
        .iter()
        .map(|p| text_width(&format!("process {p}")))
        .fold(0.0, f64::max);
    let left = (widest + 24.0).clamp(96.0, 240.0);
    let x = |ns: f64| left + (ns - lo) / (hi - lo) * (RIGHT - left);
    let bar_end = |o: &Op| match (o.outcome == Outcome::Info, o.ret_time) {
        (false, Some(r)) => x(r as f64),
        _ => RIGHT,
    };

    // Rows: a process's bars go in its first row they do not overlap in.
    let mut rows: Vec<(u64, Vec<usize>)> = Vec::new(); // (process, indexes into ops)
    for p in &lanes {
        let first = rows.len();
        for (i, o) in ops.iter().enumerate().filter(|(_, o)| o.process == *p) {
            let xa = x(o.call_time as f64);
            let free = rows[first..].iter().position(|(_, r)| {
                r.last()
                    .is_none_or(|&j| bar_end(ops[j]).max(x(ops[j].call_time as f64) + 3.0) <= xa)
            });
            match free {
                Some(k) => rows[first + k].1.push(i),
                None => rows.push((*p, vec![i])),
            }
        }
    }

    let in_window: Vec<&LeaderLine> = leaders
        .iter()
        .filter(|l| (lo..=hi).contains(&(l.t * 1e9)))
        .collect();
    let axis_baseline = 14.0;
    let axis_y = 24.0;
    let leader_baseline = 40.0;
    let rows_top = if in_window.is_empty() { 30.0 } else { 48.0 };
    let lanes_bottom = rows_top + ROW * rows.len() as f64;
    let row_top = |r: usize| rows_top + ROW * r as f64;

    let order: BTreeMap<usize, usize> = c
        .linearized
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i + 1))
        .collect();
    let weakened: BTreeSet<usize> = c.weakened.iter().copied().collect();

    let mut s = String::new();
    let mut pending: Vec<Pending> = Vec::new();
    let label = |text: LabelText| Pending {
        text,
        spots: Vec::new(),
        style: "",
        scale: 1.0,
        op: false,
    };

    // Faults in force during the window, shaded behind the lanes, labelled under them.
    let mut fault_labels: Vec<Pending> = Vec::new();
    for f in faults {
        let (a, b) = (f.start * 1e9, f.end * 1e9);
        if b < lo || a > hi {
            continue;
        }
        let (xa, xb) = (x(a.max(lo)), x(b.min(hi)));
        let col = plots::fault_color(f.kind);
        let since = if a < lo {
            " — since before this window"
        } else {
            ""
        };
        let full = format!("{} ({}){since}", f.label, f.nodes.join(","));
        let _ = writeln!(
            s,
            "<rect x=\"{xa:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"rgb({},{},{})\" fill-opacity=\"0.14\"><title>{}</title></rect>",
            rows_top - 6.0,
            (xb - xa).max(1.0),
            lanes_bottom - rows_top + 6.0,
            col.0,
            col.1,
            col.2,
            esc(&full)
        );
        // Shorter: the label alone, then its first word (the fault's kind).
        let mut short = vec![f.label.clone()];
        short.extend(f.label.split(' ').next().map(String::from));
        short.retain(|t| !t.is_empty());
        short.dedup();
        let mut p = label(LabelText {
            full,
            cut: None,
            short,
        });
        p.style = " fill=\"#444\"";
        for k in 0..FAULT_BANDS {
            let baseline = lanes_bottom + 17.0 + FAULT_BAND * k as f64;
            p.spot(xa + 4.0, Grow::Right, baseline, RIGHT - xa - 4.0);
        }
        fault_labels.push(p);
    }

    // Time axis: ticks far enough apart for their labels.
    let _ = writeln!(
        s,
        "<line x1=\"{left:.1}\" y1=\"{axis_y}\" x2=\"{RIGHT}\" y2=\"{axis_y}\" stroke=\"#999\"/>"
    );
    let mut title = label(LabelText::fixed("ms since start".into()));
    title.style = " fill=\"#555\"";
    title.spot(8.0, Grow::Right, axis_baseline, f64::INFINITY);
    pending.push(title);
    let mut step = nice_step((hi - lo) / 6.0);
    for _ in 0..12 {
        let first = (lo / step).ceil() * step;
        let widest = [first, hi]
            .iter()
            .map(|&t| text_width(&tick_label(t, step)))
            .fold(0.0, f64::max);
        if x(lo + step) - x(lo) >= widest + 3.0 * GAP {
            break;
        }
        step = nice_step(step * 1.001);
    }
    let mut tick = (lo / step).ceil() * step;
    for _ in 0..40 {
        if tick > hi {
            break;
        }
        let xt = x(tick);
        let _ = writeln!(
            s,
            "<line x1=\"{xt:.1}\" y1=\"{:.1}\" x2=\"{xt:.1}\" y2=\"{lanes_bottom:.1}\" stroke=\"#ccc\"/>",
            axis_y - 4.0
        );
        let mut t = label(LabelText::fixed(tick_label(tick, step)));
        t.style = " fill=\"#555\"";
        let w = t.text.want();
        if xt - w / 2.0 >= 0.0 && xt + w / 2.0 <= WIDTH {
            t.spot(xt, Grow::Both, axis_baseline, f64::INFINITY);
        }
        pending.push(t);
        tick += step;
    }

    // Lanes: the process name in the margin, on every row of it.
    for (r, (p, _)) in rows.iter().enumerate() {
        let y = row_top(r);
        let _ = writeln!(
            s,
            "<line x1=\"{left:.1}\" y1=\"{0:.1}\" x2=\"{RIGHT}\" y2=\"{0:.1}\" stroke=\"#eee\"/>",
            y + ROW
        );
        let mut name = label(LabelText {
            full: format!("process {p}"),
            cut: None,
            short: vec![p.to_string()],
        });
        name.spot(8.0, Grow::Right, y + NAME_BASELINE, left - 8.0 - GAP - 8.0);
        pending.push(name);
    }

    // Leader changes: a line across the lanes, labelled in their own band.
    for l in &in_window {
        let xl = x(l.t * 1e9);
        let _ = writeln!(
            s,
            "<line x1=\"{xl:.1}\" y1=\"{axis_y}\" x2=\"{xl:.1}\" y2=\"{lanes_bottom:.1}\" stroke=\"#000\" stroke-dasharray=\"4 3\"><title>leader {}</title></line>",
            esc(&l.label)
        );
        let mut p = label(LabelText {
            full: format!("leader {}", l.label),
            cut: None,
            short: vec![l.label.clone(), l.node.clone()],
        });
        p.spot(xl + 3.0, Grow::Right, leader_baseline, RIGHT - xl - 3.0);
        pending.push(p);
    }

    // Ops: a bar each, with the full text as its tooltip, and a label in its zone.
    for (r, (_, row)) in rows.iter().enumerate() {
        let y = row_top(r) + BAR_TOP;
        for (k, &i) in row.iter().enumerate() {
            let o = ops[i];
            let xa = x(o.call_time as f64);
            let xb = bar_end(o);
            let unknown = o.outcome == Outcome::Info;
            let unplaced = c.unplaced == Some(o.id);
            let text = op_label(o, unplaced, weakened.contains(&o.id), order.get(&o.id));
            let col = plots::f_color(o.f);
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
                "<rect x=\"{xa:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{BAR_HEIGHT}\" rx=\"3\" fill=\"rgb({},{},{})\" fill-opacity=\"{}\" {stroke}><title>{}</title></rect>",
                (xb - xa).max(3.0),
                col.0,
                col.1,
                col.2,
                if unknown { "0.25" } else { "0.75" },
                esc(&op_tooltip(o, &text.full))
            );
            if let (true, Some(ret)) = (unknown, o.ret_time) {
                // Where the client gave up (or, for a weakened op, where it really returned).
                let xr = x(ret as f64);
                let _ = writeln!(
                    s,
                    "<line x1=\"{xr:.1}\" y1=\"{:.1}\" x2=\"{xr:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>",
                    y - 2.0,
                    y + BAR_HEIGHT + 2.0
                );
            }
            // Its zone: up to the next bar of the row, or the right edge.
            let next = row.get(k + 1).map(|&j| x(ops[j].call_time as f64));
            let zone_end = next.map_or(RIGHT, |n| n - GAP);
            let mut p = Pending {
                text,
                spots: Vec::new(),
                style: if unplaced {
                    " fill=\"#c62828\" font-weight=\"bold\""
                } else {
                    ""
                },
                scale: if unplaced { BOLD } else { 1.0 },
                op: true,
            };
            let baseline = row_top(r) + LABEL_BASELINE;
            let whole = p.text.want() * p.scale;
            if next.is_none() && xa + whole > RIGHT {
                // Ending at the right edge instead, only in full and only if the room is free.
                p.spot(RIGHT, Grow::Left, baseline, RIGHT - left);
                if let Some(sp) = p.spots.last_mut() {
                    sp.0.min = sp.0.want;
                }
            }
            p.spot(xa, Grow::Right, baseline, zone_end - xa);
            pending.push(p);
        }
    }
    pending.extend(fault_labels);

    let granted = place(
        &pending
            .iter()
            .map(|p| p.spots.iter().map(|(sp, _)| *sp).collect())
            .collect::<Vec<_>>(),
    );
    let mut texts = Vec::new();
    let mut shortened = 0;
    let mut bottom = lanes_bottom;
    for (p, g) in pending.iter().zip(granted) {
        let fitted = g.and_then(|(i, rect)| {
            let (spot, baseline) = p.spots[i];
            let text = p.text.fit((rect.x1 - rect.x0) / p.scale)?;
            Some((spot, baseline, rect, text))
        });
        let Some((spot, baseline, rect, text)) = fitted else {
            shortened += usize::from(p.op);
            continue;
        };
        let whole = text == p.text.full;
        shortened += usize::from(p.op && !whole);
        bottom = bottom.max(rect.y1);
        texts.push(Placed {
            x: spot.anchor,
            baseline,
            anchor: match spot.grow {
                Grow::Right => "start",
                Grow::Left => "end",
                Grow::Both => "middle",
            },
            title: (!whole).then(|| p.text.full.clone()),
            text,
            style: p.style,
        });
    }
    Some(Picture {
        height: (bottom + 8.0).ceil(),
        shapes: s,
        texts,
        shortened,
    })
}

/// An op's label: `op 12: read -> [1, 2] (info) — linearized #3`, with its shorter forms.
fn op_label(o: &Op, unplaced: bool, weakened: bool, order: Option<&usize>) -> LabelText {
    let head = format!("op {}", o.id);
    let body = describe(o);
    let mut tail = String::new();
    if weakened {
        tail.push_str(" (treated as info)");
    } else if o.outcome == Outcome::Info {
        tail.push_str(" (info)");
    } else if o.outcome != Outcome::Ok {
        let _ = write!(tail, " ({})", outcome_word(o.outcome));
    }
    let mut mark = String::new();
    if let Some(n) = order {
        let _ = write!(tail, " — linearized #{n}");
        let _ = write!(mark, " #{n}");
    }
    if unplaced {
        tail.push_str(" — ✗ cannot be placed");
        mark.push_str(" ✗");
    }
    let mut short = vec![format!("{head}{mark}"), head.clone(), o.id.to_string()];
    short.dedup();
    LabelText {
        full: format!("{head}: {body}{tail}"),
        cut: Some((format!("{head}: "), body, tail)),
        short,
    }
}

/// A bar's tooltip: the label in full, and when the op ran.
fn op_tooltip(o: &Op, full: &str) -> String {
    let ret = o
        .ret_time
        .filter(|_| o.outcome != Outcome::Info)
        .map_or("unknown".to_string(), |t| {
            format!("{:.3} ms", t as f64 / 1e6)
        });
    let node = o
        .node
        .as_deref()
        .map(|n| format!(", sent to {n}"))
        .unwrap_or_default();
    format!(
        "{full}\nprocess {}{node}; called {:.3} ms, returned {ret}",
        o.process,
        o.call_time as f64 / 1e6
    )
}

/// The picture as SVG. It scales to its column (viewBox; the page's CSS caps its width), so
/// it never widens the page.
fn draw(p: &Picture) -> String {
    let h = p.height;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{h}\" viewBox=\"0 0 {WIDTH} {h}\" font-family=\"{FONT_FAMILY}\" font-size=\"{FONT}\" role=\"img\" aria-label=\"counterexample timeline\">"
    );
    let _ = writeln!(
        s,
        "<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{h}\" fill=\"#fff\"/>"
    );
    s.push_str(&p.shapes);
    for t in &p.texts {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{}\"{}>",
            t.x, t.baseline, t.anchor, t.style
        );
        if let Some(full) = &t.title {
            let _ = write!(s, "<title>{}</title>", esc(full));
        }
        let _ = writeln!(s, "{}</text>", esc(&t.text));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Fun;

    /// A small seeded generator, so a failing case is the same case every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn spot(anchor: f64, grow: Grow, y: f64, want: f64, min: f64) -> Spot {
        Spot {
            anchor,
            grow,
            y0: y,
            y1: y + 16.0,
            want,
            min,
        }
    }

    #[test]
    fn place_grants_the_first_free_spot_and_shortens_a_label_to_the_room_left() {
        let granted = place(&[
            // A takes 0..100.
            vec![spot(0.0, Grow::Right, 0.0, 100.0, 100.0)],
            // B's anchor is inside A: its first spot is refused, its second (ending at 300)
            // is free.
            vec![
                spot(50.0, Grow::Right, 0.0, 100.0, 20.0),
                spot(300.0, Grow::Left, 0.0, 100.0, 100.0),
            ],
            // C would run into B: it stops GAP short of it.
            vec![spot(106.0, Grow::Right, 0.0, 200.0, 10.0)],
            // D is on another band: nothing is in its way.
            vec![spot(50.0, Grow::Right, 20.0, 100.0, 100.0)],
            // E cannot be narrower than 150, and only 94 are left before B: no box.
            vec![spot(106.0, Grow::Right, 0.0, 200.0, 150.0)],
            // F, centred, clears A and C only if GAP from both: 194 + 6 = 200 is B's start.
            vec![spot(150.0, Grow::Both, 0.0, 20.0, 20.0)],
        ]);
        let boxes: Vec<Option<(usize, f64, f64)>> = granted
            .iter()
            .map(|g| g.map(|(i, r)| (i, (r.x0 * 1e3).round() / 1e3, (r.x1 * 1e3).round() / 1e3)))
            .collect();
        assert_eq!(
            boxes,
            [
                Some((0, 0.0, 100.0)),
                Some((1, 200.0, 300.0)),
                Some((0, 106.0, 194.0)),
                Some((0, 50.0, 150.0)),
                None,
                None,
            ]
        );
    }

    #[test]
    fn place_never_lets_two_boxes_come_closer_than_the_gap_and_drops_only_blocked_labels() {
        let mut rng = Rng(0x5eed_1abe1);
        for round in 0..50 {
            let labels: Vec<Vec<Spot>> = (0..300)
                .map(|_| {
                    (0..1 + rng.below(3))
                        .map(|_| {
                            let want = 5.0 + rng.below(300) as f64;
                            let grow = [Grow::Right, Grow::Left, Grow::Both][rng.below(3) as usize];
                            // Bands that overlap each other by half, so height matters too.
                            let y = 8.0 * rng.below(12) as f64;
                            spot(rng.below(1200) as f64, grow, y, want, want * 0.2)
                        })
                        .collect()
                })
                .collect();
            let granted = place(&labels);
            let boxes: Vec<Rect> = granted.iter().flatten().map(|(_, r)| *r).collect();
            assert!(
                boxes.len() > 30,
                "round {round}: only {} placed",
                boxes.len()
            );
            for (i, a) in boxes.iter().enumerate() {
                for b in &boxes[i + 1..] {
                    assert!(!a.too_close(b), "round {round}: {a:?} and {b:?}");
                }
            }
            for (spots, g) in labels.iter().zip(&granted) {
                match g {
                    Some((i, r)) => {
                        let w = r.x1 - r.x0;
                        assert!(w >= spots[*i].min - 1e-9 && w <= spots[*i].want + 1e-9);
                    }
                    // Dropped: even the narrowest box of every spot touches a granted one.
                    None => {
                        for s in spots {
                            let (x0, x1) = match s.grow {
                                Grow::Right => (s.anchor, s.anchor + s.min),
                                Grow::Left => (s.anchor - s.min, s.anchor),
                                Grow::Both => (s.anchor - s.want / 2.0, s.anchor + s.want / 2.0),
                            };
                            let r = Rect {
                                x0,
                                x1,
                                y0: s.y0,
                                y1: s.y1,
                            };
                            assert!(boxes.iter().any(|b| b.too_close(&r)), "{s:?} was free");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn fit_picks_the_longest_form_that_fits() {
        let t = LabelText {
            full: "op 12: read -> [1, 2, 3] — linearized #3".into(),
            cut: Some((
                "op 12: ".into(),
                "read -> [1, 2, 3]".into(),
                " — linearized #3".into(),
            )),
            short: vec!["op 12 #3".into(), "op 12".into(), "12".into()],
        };
        assert_eq!(t.fit(t.want()).as_deref(), Some(t.full.as_str()));
        let cut = t.fit(t.want() - CELL).expect("a cut form");
        assert_eq!(cut, "op 12: read -> [1, 2… — linearized #3");
        assert!(text_width(&cut) <= t.want() - CELL);
        // Between words where it can: not "a list of 2…", which would read as a list of 2.
        let list = LabelText {
            full: "op 7: read -> a list of 200 ending [..., 9]".into(),
            cut: Some((
                "op 7: ".into(),
                "read -> a list of 200 ending [..., 9]".into(),
                String::new(),
            )),
            short: vec!["op 7".into()],
        };
        assert_eq!(
            list.fit(text_width("op 7: read -> a list of 20…"))
                .as_deref(),
            Some("op 7: read -> a list of…")
        );
        assert_eq!(t.fit(text_width("op 12 #3")).as_deref(), Some("op 12 #3"));
        assert_eq!(t.fit(text_width("op 12 #")).as_deref(), Some("op 12"));
        assert_eq!(t.fit(text_width("12")).as_deref(), Some("12"));
        assert_eq!(t.fit(text_width("1")), None);
        assert_eq!(t.min(), text_width("12"));
    }

    /// A witness of `n` ops over `processes` processes; `long` makes every value long (reads
    /// of 200-element lists, appends of 80-character strings).
    fn witness(n: usize, processes: u64, long: bool) -> Counterexample {
        let ops: Vec<Op> = (0..n)
            .map(|i| {
                let slot = i as u64 % processes;
                let call_time = 1_000_000_000 + (i as u64 / processes) * 7_000_000 + slot * 211_000;
                let read = i % 3 == 0;
                let value = match (read, long) {
                    (true, true) => serde_json::json!((i..i + 200).collect::<Vec<usize>>()),
                    (true, false) => serde_json::json!([i, i + 1]),
                    (false, true) => serde_json::json!(format!("v{i}-{}", "y".repeat(80))),
                    (false, false) => serde_json::json!(i),
                };
                Op {
                    id: i,
                    process: 10u64.pow((slot % 9) as u32) + slot,
                    f: if read { Fun::Read } else { Fun::Append },
                    key: None,
                    value,
                    outcome: if i % 11 == 7 {
                        Outcome::Info
                    } else {
                        Outcome::Ok
                    },
                    call: 2 * i,
                    ret: Some(2 * i + 1),
                    call_time,
                    ret_time: Some(call_time + 1_500_000 + (i as u64 % 4) * 900_000),
                    node: None,
                }
            })
            .collect();
        Counterexample {
            weakened: ops
                .iter()
                .filter(|o| o.id % 13 == 3)
                .map(|o| o.id)
                .collect(),
            projection: vec![],
            linearized: ops.iter().take(n / 2).map(|o| o.id).collect(),
            state: serde_json::Value::Null,
            unplaced: ops.last().map(|o| o.id),
            candidates: vec![],
            explanation: String::new(),
            ops,
        }
    }

    /// The box each drawn text occupies at its estimated width, from what is drawn (not what
    /// was granted): pairwise apart, and inside the picture.
    fn assert_texts_apart(p: &Picture, what: &str) {
        let boxes: Vec<(Rect, &str)> = p
            .texts
            .iter()
            .map(|t| {
                let scale = if t.style.contains("bold") { BOLD } else { 1.0 };
                let w = text_width(&t.text) * scale;
                let (x0, x1) = match t.anchor {
                    "start" => (t.x, t.x + w),
                    "end" => (t.x - w, t.x),
                    _ => (t.x - w / 2.0, t.x + w / 2.0),
                };
                let (y0, y1) = band(t.baseline);
                (Rect { x0, x1, y0, y1 }, t.text.as_str())
            })
            .collect();
        for (i, (a, sa)) in boxes.iter().enumerate() {
            assert!(
                a.x0 >= 0.0 && a.x1 <= WIDTH && a.y0 >= 0.0 && a.y1 <= p.height,
                "{what}: [{sa}] {a:?} outside {WIDTH}x{}",
                p.height
            );
            for (b, sb) in &boxes[i + 1..] {
                assert!(!a.too_close(b), "{what}: [{sa}] {a:?} and [{sb}] {b:?}");
            }
        }
    }

    fn faults_and_leaders(c: &Counterexample) -> (Vec<FaultInterval>, Vec<LeaderLine>) {
        let t = |i: usize| c.ops.get(i).map_or(1.0, |o| o.call_time as f64 / 1e9);
        let fault = |label: &str, a: f64, b: f64| FaultInterval {
            kind: crate::spec::nemesis::FaultKind::Partition,
            label: label.into(),
            nodes: vec!["n1".into(), "n2".into(), "n3".into()],
            start: a,
            end: b,
            unhealed: false,
        };
        let leader = |node: &str, at: f64| LeaderLine {
            t: at,
            node: node.into(),
            term: 2,
            label: format!("{node} t2 (first leader)"),
        };
        (
            vec![
                fault("partition isolate-leader", 0.5, t(1)),
                fault("partition majorities-ring", t(0), t(2)),
                fault("partition halves", t(1), t(2) + 0.001),
            ],
            vec![
                leader("n1", t(0)),
                leader("n2", t(0) + 0.0001),
                leader("n3", t(1)),
            ],
        )
    }

    #[test]
    fn no_two_texts_of_a_timeline_overlap_whatever_its_size() {
        for n in [2, 5, 40, 300] {
            for processes in [1, 3, 12, 40] {
                for long in [false, true] {
                    let c = witness(n, processes, long);
                    let (faults, leaders) = faults_and_leaders(&c);
                    let mut ops: Vec<&Op> = c.ops.iter().collect();
                    ops.sort_by_key(|o| o.call);
                    let what = format!("{n} ops, {processes} processes, long {long}");
                    // Every op, not only the capped window the page draws.
                    let p = layout(&ops, &c, &faults, &leaders).expect("ops to draw");
                    assert_texts_apart(&p, &what);
                    let bars = p.shapes.matches("<rect x=").count() - faults.len();
                    assert!(bars >= n, "{what}: {bars} bars");
                    // Few ops with short values read in full.
                    if n <= 5 && !long && processes > 1 {
                        assert_eq!(p.shortened, 0, "{what}: {:?}", p.texts);
                    }
                    // The page's timeline: capped, and every label it drew accounted for.
                    let t = timeline(&c, &faults, &leaders);
                    assert_eq!(t.drawn, n.min(MAX_TIMELINE_OPS), "{what}");
                    assert!(t.svg.starts_with("<svg") && t.svg.contains("viewBox"));
                }
            }
        }
    }

    #[test]
    fn the_op_that_cannot_be_placed_is_named_in_full_when_there_is_room() {
        let c = witness(5, 5, false);
        let t = timeline(&c, &[], &[]);
        assert!(
            t.svg.contains("op 4: append 4 — ✗ cannot be placed</text>"),
            "{}",
            t.svg
        );
        assert_eq!(t.shortened, 0);
    }

    #[test]
    fn a_label_that_does_not_fit_keeps_its_full_text_as_a_tooltip() {
        let c = witness(40, 2, true);
        let t = timeline(&c, &[], &[]);
        assert!(t.shortened > 0, "40 long ops in two lanes fit?");
        assert!(t.svg.contains("…"), "no label was cut short");
        for o in &c.ops {
            assert!(
                t.svg.contains(&format!("<title>op {}: ", o.id)),
                "op {} has no tooltip",
                o.id
            );
        }
    }
}
