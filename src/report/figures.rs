//! The plots' data, computed and not drawn: every point, shaded fault interval, leader-change
//! line, throughput bucket and window around a change that a plot shows is decided here, as
//! pure functions of a run's ops, fault log and leader changes, where the golden tests pin it
//! down. [`super::plots`] only paints a [`PlotData`].

use crate::history::{Fun, Op, Outcome};
use crate::spec::nemesis::FaultKind;
use crate::store::{FaultOutcome, LeaderChange, NemesisEvent, Phase};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// At most this many latency points are drawn per plot. Past it, ok ops are thinned by a fixed
/// stride (fail and info ops are always kept: they are the interesting ones), so a long run
/// still draws in bounded time and the PNG stays small.
pub(crate) const MAX_POINTS: usize = 60_000;

/// The window drawn around each leader change, seconds relative to the change.
pub(crate) const WINDOW: (f64, f64) = (-2.0, 4.0);

/// Throughput bucket of the leader-change window, seconds.
pub(crate) const WINDOW_BUCKET: f64 = 0.2;

/// At most this many leader-change windows are drawn (the first ones); the HTML lists all.
pub(crate) const MAX_WINDOWS: usize = 24;

/// How an op ended, as plots show it: a mismatched cas is a fail (it changed nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Took effect.
    Ok,
    /// Certainly changed nothing.
    Fail,
    /// Unknown (timeout, lost connection).
    Info,
}

impl Class {
    /// The class of an op's outcome.
    pub fn of(o: Outcome) -> Class {
        match o {
            Outcome::Ok => Class::Ok,
            Outcome::Fail | Outcome::Mismatch => Class::Fail,
            Outcome::Info => Class::Info,
        }
    }

    /// Lower-case name, as in the history file.
    pub fn name(self) -> &'static str {
        match self {
            Class::Ok => "ok",
            Class::Fail => "fail",
            Class::Info => "info",
        }
    }
}

/// One op drawn on a latency plot: x its invocation, y its latency, colour its function, marker its
/// outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyPoint {
    /// Invocation time, seconds since the run started (or since the leader change, in a
    /// window), as Jepsen's latency plots place ops.
    pub t: f64,
    /// Call to completion, milliseconds. An info op's is the time until the client gave up.
    pub ms: f64,
    /// The function (the point's colour).
    pub f: Fun,
    /// The outcome (the point's marker).
    pub class: Class,
}

/// A fault in force: shaded behind every point, coloured by kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultInterval {
    /// The fault kind (the shading colour).
    pub kind: FaultKind,
    /// The nemesis's label, e.g. "kill leader".
    pub label: String,
    /// Names of the nodes the fault hit, as nemesis.jsonl logged them (for a partition, every node
    /// in the grudge).
    pub nodes: Vec<String>,
    /// Seconds since the run started, when the fault was installed.
    pub start: f64,
    /// When it was healed; the end of the plot if nemesis.jsonl has no heal for it.
    pub end: f64,
    /// True when no heal was logged (the run was cut short, or the heal failed).
    pub unhealed: bool,
}

/// A vertical line at an observed leader change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaderLine {
    /// Seconds since the run started, when the monitor first saw the new leader.
    pub t: f64,
    /// Name of the node the monitor saw take over (`n2`).
    pub node: String,
    /// The term the new leader reported, drawn in the line's label.
    pub term: u64,
    /// The label drawn at the top of the line, e.g. "n2 t3".
    pub label: String,
}

/// Throughput of one (f, outcome) pair, bucketed by completion time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateSeries {
    /// The function (the line's colour).
    pub f: Fun,
    /// The outcome (the line's dash style).
    pub class: Class,
    /// (bucket midpoint in seconds, ops per second), every bucket including empty ones, so a
    /// stall shows as a drop to zero.
    pub points: Vec<(f64, f64)>,
}

/// Latency and ok throughput around one leader change, times relative to the change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeWindow {
    /// The leader change the window is centred on: its `t` is the window's zero.
    pub change: LeaderLine,
    /// Ops invoked within [`WINDOW`] of the change.
    pub points: Vec<LatencyPoint>,
    /// (bucket midpoint, ok ops per second completed in the bucket), [`WINDOW_BUCKET`] wide.
    pub ok_rate: Vec<(f64, f64)>,
}

/// Everything the three plots draw, computed without drawing (golden-tested).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlotData {
    /// End of the x axis, seconds: the latest time seen in any of the inputs.
    pub end: f64,
    /// Latency points, in op order (thinned past [`MAX_POINTS`]).
    pub points: Vec<LatencyPoint>,
    /// Ops that had a completion time, before thinning: `points.len()` of them are drawn.
    pub total_points: usize,
    /// Width of a throughput bucket, seconds.
    pub bucket: f64,
    /// Throughput series, by f then outcome.
    pub rate: Vec<RateSeries>,
    /// Faults in force, in start order.
    pub faults: Vec<FaultInterval>,
    /// Fault starts that installed nothing (skipped or failed): listed, not shaded.
    pub not_installed: Vec<String>,
    /// The leader found at start (the first entry of the run's leader changes): not a change.
    pub initial_leader: Option<LeaderLine>,
    /// Every later leader change.
    pub leaders: Vec<LeaderLine>,
    /// A window around each leader change (the first [`MAX_WINDOWS`]).
    pub windows: Vec<ChangeWindow>,
}

const NS: f64 = 1e9;

fn secs(ns: u64) -> f64 {
    ns as f64 / NS
}

/// Round seconds to whole nanoseconds: bucket midpoints computed in floating point carry
/// noise (0.30000000000000004) that means nothing and would make golden files brittle.
fn round_ns(t: f64) -> f64 {
    (t * NS).round() / NS
}

fn latency_ms(o: &Op) -> Option<f64> {
    o.ret_time
        .map(|r| r.saturating_sub(o.call_time) as f64 / 1e6)
}

/// Latency points of every op that completed, thinning ok ops past `max` by a fixed stride.
/// Returns the points and how many there were before thinning.
pub(crate) fn latency_points(ops: &[Op], max: usize) -> (Vec<LatencyPoint>, usize) {
    let all: Vec<LatencyPoint> = ops
        .iter()
        .filter_map(|o| {
            latency_ms(o).map(|ms| LatencyPoint {
                t: secs(o.call_time),
                ms,
                f: o.f,
                class: Class::of(o.outcome),
            })
        })
        .collect();
    let total = all.len();
    if total <= max {
        return (all, total);
    }
    let notable = all.iter().filter(|p| p.class != Class::Ok).count();
    let ok = total - notable;
    let room = max.saturating_sub(notable).max(1);
    let stride = ok.div_ceil(room).max(1);
    let mut seen_ok = 0usize;
    let kept = all
        .into_iter()
        .filter(|p| {
            if p.class != Class::Ok {
                return true;
            }
            seen_ok += 1;
            (seen_ok - 1).is_multiple_of(stride)
        })
        .collect();
    (kept, total)
}

/// A round bucket width giving about 40–60 buckets over `end` seconds.
pub(crate) fn bucket_width(end: f64) -> f64 {
    const NICE: [f64; 12] = [
        0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 300.0,
    ];
    let raw = end / 60.0;
    NICE.iter().copied().find(|&w| w >= raw).unwrap_or(600.0)
}

/// Throughput by f and outcome, in buckets of `bucket` seconds by completion time, up to `end`.
/// Ops that never completed are not counted (they have no completion time).
pub(crate) fn rate_series(ops: &[Op], end: f64, bucket: f64) -> Vec<RateSeries> {
    let n = ((end / bucket).ceil() as usize).clamp(1, 100_000);
    let mut counts: BTreeMap<(Fun, Class), Vec<u32>> = BTreeMap::new();
    for o in ops {
        let Some(r) = o.ret_time else { continue };
        let i = ((secs(r) / bucket) as usize).min(n - 1);
        counts
            .entry((o.f, Class::of(o.outcome)))
            .or_insert_with(|| vec![0; n])[i] += 1;
    }
    counts
        .into_iter()
        .map(|((f, class), c)| RateSeries {
            f,
            class,
            points: c
                .iter()
                .enumerate()
                .map(|(i, &k)| {
                    // The last bucket ends at `end`, usually part-way: divide by the part
                    // covered, or the plot shows a drop that did not happen.
                    let start = i as f64 * bucket;
                    let width = if i + 1 == n {
                        (end - start).clamp(bucket / 4.0, bucket)
                    } else {
                        bucket
                    };
                    (round_ns(start + width / 2.0), k as f64 / width)
                })
                .collect(),
        })
        .collect()
}

/// Fault intervals from nemesis.jsonl: each installed start is closed by the next stop of the
/// same fault kind and label (or, for a later step of an action such as a staggered kill's
/// "(rest)", the stop of the action it belongs to); a start with no stop lasts until `end`. Starts that were skipped
/// or failed are returned separately as "label: outcome" lines (nothing was in force).
pub(crate) fn fault_intervals(
    events: &[NemesisEvent],
    end: f64,
) -> (Vec<FaultInterval>, Vec<String>) {
    let mut out: Vec<FaultInterval> = Vec::new();
    let mut not_installed = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    for e in events {
        match (e.event, e.outcome) {
            (Phase::Start, FaultOutcome::Installed) => {
                open.push(out.len());
                out.push(FaultInterval {
                    kind: e.fault,
                    label: e.label.clone(),
                    nodes: e.nodes.clone(),
                    start: secs(e.time),
                    end,
                    unhealed: true,
                });
            }
            (Phase::Start, outcome) => not_installed.push(format!(
                "{:.3} s {}: {}{}",
                secs(e.time),
                e.label,
                outcome.name(),
                e.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )),
            (Phase::Stop, _) => {
                // A heal ends every open interval it heals: those of the same kind with its
                // label, and the later steps of the same action, which the nemesis labels
                // "<label> (...)" (a staggered kill's "kill staggered (rest)"). A heal that
                // failed still ends them: the fault log says it failed.
                let step = format!("{} (", e.label);
                let mut k = 0;
                while k < open.len() {
                    let iv = &mut out[open[k]];
                    if iv.kind == e.fault && (iv.label == e.label || iv.label.starts_with(&step)) {
                        iv.end = secs(e.time).max(iv.start);
                        iv.unhealed = e.outcome != FaultOutcome::Healed;
                        open.remove(k);
                    } else {
                        k += 1;
                    }
                }
            }
        }
    }
    (out, not_installed)
}

fn line(c: &LeaderChange) -> LeaderLine {
    LeaderLine {
        t: secs(c.time),
        node: c.node.clone(),
        term: c.term,
        label: format!("{} t{}", c.node, c.term),
    }
}

/// Leader-change lines: the first entry of a run's leader changes is the leader found at start
/// (see `run::monitor::leader_changes`), returned apart; every later entry is a change.
pub(crate) fn leader_lines(changes: &[LeaderChange]) -> (Option<LeaderLine>, Vec<LeaderLine>) {
    let initial = changes.first().map(line);
    let rest = changes.iter().skip(1).map(line).collect();
    (initial, rest)
}

/// Latency points and ok throughput in [`WINDOW`] around each change (times relative to it).
pub(crate) fn change_windows(ops: &[Op], changes: &[LeaderLine]) -> Vec<ChangeWindow> {
    let (lo, hi) = WINDOW;
    let n = ((hi - lo) / WINDOW_BUCKET).round() as usize;
    let per_window = MAX_POINTS / changes.len().clamp(1, MAX_WINDOWS);
    changes
        .iter()
        .take(MAX_WINDOWS)
        .map(|c| {
            let mut ok = vec![0u32; n];
            let mut pts = Vec::new();
            for o in ops {
                let Some(r) = o.ret_time else { continue };
                let t = secs(o.call_time) - c.t;
                if (lo..hi).contains(&t) {
                    if let Some(ms) = latency_ms(o) {
                        pts.push(LatencyPoint {
                            t,
                            ms,
                            f: o.f,
                            class: Class::of(o.outcome),
                        });
                    }
                }
                let rt = secs(r) - c.t;
                if o.outcome == Outcome::Ok && (lo..hi).contains(&rt) {
                    let i = (((rt - lo) / WINDOW_BUCKET) as usize).min(n - 1);
                    ok[i] += 1;
                }
            }
            if pts.len() > per_window {
                let stride = pts.len().div_ceil(per_window);
                let mut i = 0usize;
                pts.retain(|p| {
                    i += 1;
                    p.class != Class::Ok || (i - 1).is_multiple_of(stride)
                });
            }
            ChangeWindow {
                change: c.clone(),
                points: pts,
                ok_rate: ok
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| {
                        (
                            round_ns(lo + (i as f64 + 0.5) * WINDOW_BUCKET),
                            k as f64 / WINDOW_BUCKET,
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

/// All plot data of a run: ops (paired history), nemesis.jsonl events, leader changes.
pub fn plot_data(ops: &[Op], events: &[NemesisEvent], changes: &[LeaderChange]) -> PlotData {
    let latest = ops
        .iter()
        .flat_map(|o| [Some(o.call_time), o.ret_time])
        .flatten()
        .chain(events.iter().map(|e| e.time))
        .chain(changes.iter().map(|c| c.time))
        .max()
        .unwrap_or(0);
    let end = secs(latest).max(0.001);
    let (points, total_points) = latency_points(ops, MAX_POINTS);
    let bucket = bucket_width(end);
    let (faults, not_installed) = fault_intervals(events, end);
    let (initial_leader, leaders) = leader_lines(changes);
    let windows = change_windows(ops, &leaders);
    PlotData {
        end,
        points,
        total_points,
        bucket,
        rate: rate_series(ops, end, bucket),
        faults,
        not_installed,
        initial_leader,
        leaders,
        windows,
    }
}
